//! shipping-svc: the Shipment aggregate (one per order), the policy that turns paid and
//! cancelled orders into shipment commands, and the shipments read model.
pub mod policies;
pub mod read_model;
pub mod shipment;
pub mod write_api;
