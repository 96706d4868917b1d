//! inventory-svc: the Stock aggregate, the policies that reserve, release and ship stock, and
//! the stock view.
pub mod policies;
pub mod read_model;
pub mod stock;
pub mod write_api;
