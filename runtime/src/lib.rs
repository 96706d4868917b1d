//! The shared event-sourcing runtime: every service is a handful of pure parts handed to
//! [`Service`], which does all the plumbing, the same way for each.
//!
//! # Map
//! Modules depend downwards only (no cycles):
//!
//! | module | what it holds |
//! |---|---|
//! | [`decider`], [`policy`], [`projector`], `history` | the pure model a service implements: an aggregate decides and evolves, a policy reacts to another stream, a projector turns events into SQL writes; the version rule every reader applies |
//! | `shared` | the leaf: clock, derived command ids, loop kinds |
//! | [`kafka`] | clients, the partitioner, topics, loop plumbing (batches, outbox, commits, parking, a process's own records handed to its loops), reads of an event partition, the Avro codec |
//! | `observe` | Prometheus metrics, consumer lag, traces across Kafka |
//! | `snapshot` | a writer's snapshots of its partitions on `<stream>.snapshots`: written, found, checked against the log |
//! | `engine` | the consuming loops: the command processor (pure core in `command_core`), subscriptions, deadlines, pause, supervision |
//! | `projection` | read models: the runner and its commits that readers wait on, the database and the runtime's tables, replay, command outcomes |
//! | [`http`] | route state, errors, the write path, OpenAPI, operational routes, middleware |
//! | `service` | the builder that assembles a service from the parts above, and the list of services |
//! | [`testing`] | (feature `testing`) the test kit for services |
//!
//! A service uses what is re-exported here, [`http`] for its routes and [`testing`] in tests.
pub mod decider;
mod engine;
mod history;
pub mod http;
pub mod kafka;
mod observe;
pub mod policy;
mod projection;
pub mod projector;
mod service;
mod shared;
mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;

pub use decider::{Decider, RecentIds, Rejection, fold, map_as_pairs};
pub use engine::{AcceptedHistory, CommandOut, Deadlines, EventHandler, HandlerError, LoopError, command_id_for_deadline};
pub use history::HistoryGuard;
pub use kafka::{CodecError, Pace};
pub use policy::Policy;
pub use projection::{Backend, DbError, KeyProgress, Progress, Projection, connect as connect_read_model_db};
pub use projector::{Projector, RawProjector, RawRecord, SqlValue, SqlWrite};
pub use service::{Service, ServiceConfig, ServiceEntry, ServiceError, UnknownService, service, services};
pub use shared::{command_id_for_reaction, command_id_for_record, now_millis};
