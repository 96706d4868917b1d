//! order-svc: the Order aggregate, the policies that move the order saga along, and the order view.
pub mod order;
pub mod policies;
pub mod read_model;
pub mod saga_metrics;
pub mod write_api;
