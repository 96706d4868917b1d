//! What the system tells its operators: Prometheus metrics (`metrics`), consumer lag per loop
//! (`lag`), the partitions a writer is rebuilding (`rebuilds`) and traces that follow a command
//! across Kafka (`telemetry`).
pub(crate) mod lag;
pub(crate) mod metrics;
pub(crate) mod rebuilds;
pub(crate) mod telemetry;
