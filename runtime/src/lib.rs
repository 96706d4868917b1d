pub mod decider;
pub mod http;
pub mod policy;
pub mod projection;

pub use decider::{Decider, Rejection};
pub use policy::Policy;
pub use projection::{Projector, SqlValue, SqlWrite};
