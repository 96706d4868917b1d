//! notify-svc: the Notification aggregate (one per customer), the policies that turn order and
//! account events into notifications, their delivery ([`sender`]) and the notifications read model.
pub mod delivery;
pub mod notification;
pub mod policies;
pub mod read_model;
pub mod sender;
pub mod write_api;
