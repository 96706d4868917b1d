pub mod codec;
pub mod command_bus;
pub mod command_processor;
pub mod event_log;
pub mod consume;
pub mod db;
pub mod decider;
pub mod history;
pub mod kafka;
pub mod partitioner;
pub mod http;
pub mod policy;
pub mod projection;
pub mod projection_runner;
pub mod service;
pub mod subscription;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;

pub use decider::{Decider, Rejection};
pub use policy::Policy;
pub use projection::{Projector, SqlValue, SqlWrite};
pub use service::{Service, ServiceConfig, ServiceError};
pub use projection_runner::Projection;
pub use subscription::{CommandOut, EventHandler, HandlerError};
