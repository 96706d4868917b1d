//! payment-svc: the Account aggregate (one per customer), the policy that turns order events
//! into payment commands, and the accounts/payments read model.
pub mod account;
pub mod policies;
pub mod read_model;
pub mod write_api;
