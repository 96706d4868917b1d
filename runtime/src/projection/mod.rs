//! Read models: the runner that applies a projection's SQL writes batch by batch with its
//! checkpoints and the version rule (`runner`), the database and the tables the runtime owns
//! in it (`store`), the rebuild and verification of a read model from the topics (`replay`),
//! and the read model every aggregate gets: what became of each command (`command_outcomes`).
pub(crate) mod command_outcomes;
mod progress;
mod renames;
pub(crate) mod replay;
pub(crate) mod runner;
pub(crate) mod store;

pub use progress::{KeyProgress, Progress};
pub use runner::Projection;
pub use store::{Backend, DbError, connect};
