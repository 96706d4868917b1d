//! The Shipment aggregate (key `order_id`) as a pure decider: scheduling for paid orders,
//! cancellation, dispatch by the warehouse and delivery confirmation by the carrier.
//!
//! Dispatch is the point of no return of an order, and this aggregate decides it: a
//! `CancelShipment` before dispatch cancels the shipment (`ShipmentCancelled`, after which it can
//! be neither scheduled nor dispatched), after dispatch it is answered with
//! `ShipmentCancellationRefused`. Exactly one of the two happens to a shipment, so the order is
//! either cancelled (refund, stock released) or shipped (stock shipped), never both.
//!
//! Between dispatch and delivery the carrier reports where the shipment is
//! (`RecordTrackingUpdate` → `ShipmentTrackingUpdated`); the same report twice is recorded once.
use contracts::order::Address;
use contracts::shipment::{Shipment, ShipmentCommand, ShipmentEvent, ShipmentLine, TrackingStatus};
use contracts::validate::{InvalidField, Validate};
use runtime::{Decider, Rejection};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Countries served when `SHIPPING_COUNTRIES` is unset or blank (comma-separated ISO-3166 alpha-2).
pub const DEFAULT_SHIPPING_COUNTRIES: &str = "DE,AT,CH,FR,NL,BE,LU,DK,PL,CZ,IT,ES,SE,GB,IE,US,CA";
pub const SHIPPING_COUNTRIES_ENV: &str = "SHIPPING_COUNTRIES";

/// Parses a comma-separated country list; entries are trimmed and upper-cased, blanks skipped.
pub fn parse_shipping_countries(list: &str) -> BTreeSet<String> {
    list.split(',').map(|code| code.trim().to_ascii_uppercase()).filter(|code| !code.is_empty()).collect()
}

/// The served countries from `SHIPPING_COUNTRIES`, or [`DEFAULT_SHIPPING_COUNTRIES`] when it is
/// unset or lists no country.
pub fn shipping_countries_from_env() -> BTreeSet<String> {
    let configured = std::env::var(SHIPPING_COUNTRIES_ENV).map(|list| parse_shipping_countries(&list)).unwrap_or_default();
    if configured.is_empty() { parse_shipping_countries(DEFAULT_SHIPPING_COUNTRIES) } else { configured }
}

/// Carrier serving a destination; a fixed table so that replays choose the same carrier.
pub fn carrier_for(country: &str) -> &'static str {
    match country {
        "DE" | "AT" | "CH" | "PL" | "CZ" => "DHL",
        "US" | "CA" => "UPS",
        _ => "DPD",
    }
}

/// Tracking number derived from the order id alone, so every replay produces the same one:
/// carrier prefix + first 12 hex digits of uuid v5(OID namespace, order_id), upper-cased.
pub fn tracking_number_for(carrier: &str, order_id: &str) -> String {
    let digest = Uuid::new_v5(&Uuid::NAMESPACE_OID, order_id.as_bytes()).simple().to_string();
    format!("{carrier}{}", digest[..12].to_ascii_uppercase())
}

#[derive(Debug, Clone)]
pub struct ShipmentDecider {
    pub shipping_countries: BTreeSet<String>,
}

impl ShipmentDecider {
    pub fn new(shipping_countries: BTreeSet<String>) -> Self {
        ShipmentDecider { shipping_countries }
    }

    pub fn from_env() -> Self {
        ShipmentDecider::new(shipping_countries_from_env())
    }
}

impl Default for ShipmentDecider {
    fn default() -> Self {
        ShipmentDecider::new(parse_shipping_countries(DEFAULT_SHIPPING_COUNTRIES))
    }
}

/// `None` until the first event: no shipment was ever requested for this order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShipmentState {
    pub shipment: Option<ShipmentRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShipmentRecord {
    pub customer_id: String,
    pub status: ShipmentStatus,
    pub lines: Vec<ShipmentLine>,
    /// The carrier's reports so far. The default keeps snapshots from before tracking readable.
    #[serde(default)]
    pub tracking: Vec<TrackingReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackingReport {
    pub status: TrackingStatus,
    pub location: String,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShipmentStatus {
    Scheduled,
    Rejected,
    Cancelled,
    Dispatched,
    Delivered,
}

impl Decider for ShipmentDecider {
    type Stream = Shipment;
    type State = ShipmentState;

    fn decide(&self, state: &ShipmentState, command: &ShipmentCommand) -> Result<Vec<ShipmentEvent>, Rejection> {
        // The stateless rules are the contract's, shared with the HTTP write path and the
        // command processor.
        command.validate().map_err(invalid)?;
        match command {
            ShipmentCommand::ScheduleShipment { order_id, customer_id, destination_country, lines, shipping_address } => {
                self.schedule(state, order_id, customer_id, destination_country, lines, shipping_address.as_ref())
            }
            ShipmentCommand::CancelShipment { customer_id, .. } => self.cancel(state, customer_id.as_deref()),
            ShipmentCommand::DispatchShipment { .. } => {
                let shipment = state.shipment.as_ref().ok_or_else(|| refused("no shipment for this order"))?;
                match shipment.status {
                    ShipmentStatus::Scheduled => {
                        Ok(vec![ShipmentEvent::ShipmentDispatched { customer_id: shipment.customer_id.clone(), lines: shipment.lines.clone() }])
                    }
                    ShipmentStatus::Cancelled => Err(refused("shipment was cancelled")),
                    ShipmentStatus::Rejected => Err(refused("shipment was rejected")),
                    ShipmentStatus::Dispatched | ShipmentStatus::Delivered => Err(refused("shipment already dispatched")),
                }
            }
            ShipmentCommand::ConfirmDelivery { .. } => match &state.shipment {
                Some(shipment) if shipment.status == ShipmentStatus::Dispatched => {
                    Ok(vec![ShipmentEvent::ShipmentDelivered { customer_id: shipment.customer_id.clone() }])
                }
                Some(shipment) if shipment.status == ShipmentStatus::Delivered => Err(refused("shipment already delivered")),
                _ => Err(refused("shipment has not been dispatched")),
            },
            ShipmentCommand::RecordTrackingUpdate { status, location, at, .. } => match &state.shipment {
                Some(shipment) if shipment.status == ShipmentStatus::Dispatched => {
                    let report = TrackingReport { status: *status, location: location.clone(), at: *at };
                    // A carrier that reports again (a webhook retried) tells nothing new.
                    if shipment.tracking.contains(&report) {
                        return Ok(vec![]);
                    }
                    Ok(vec![ShipmentEvent::ShipmentTrackingUpdated {
                        customer_id: shipment.customer_id.clone(),
                        status: *status,
                        location: location.clone(),
                        at: *at,
                    }])
                }
                Some(shipment) if shipment.status == ShipmentStatus::Delivered => Err(refused("shipment already delivered")),
                _ => Err(refused("shipment has not been dispatched")),
            },
        }
    }

    fn evolve(mut state: ShipmentState, event: &ShipmentEvent) -> ShipmentState {
        let (customer_id, status) = match event {
            ShipmentEvent::ShipmentScheduled { customer_id, lines, .. } => {
                state.shipment = Some(ShipmentRecord {
                    customer_id: customer_id.clone(),
                    status: ShipmentStatus::Scheduled,
                    lines: lines.clone(),
                    tracking: vec![],
                });
                return state;
            }
            ShipmentEvent::ShipmentTrackingUpdated { status, location, at, .. } => {
                if let Some(shipment) = &mut state.shipment {
                    shipment.tracking.push(TrackingReport { status: *status, location: location.clone(), at: *at });
                }
                return state;
            }
            ShipmentEvent::ShipmentRejected { customer_id, .. } => (customer_id, ShipmentStatus::Rejected),
            ShipmentEvent::ShipmentCancelled { customer_id } => (customer_id, ShipmentStatus::Cancelled),
            ShipmentEvent::ShipmentDispatched { customer_id, .. } => (customer_id, ShipmentStatus::Dispatched),
            ShipmentEvent::ShipmentDelivered { customer_id } => (customer_id, ShipmentStatus::Delivered),
            // An answer, not a change: the shipment stays on its way.
            ShipmentEvent::ShipmentCancellationRefused { .. } => return state,
        };
        state.shipment.get_or_insert_with(|| ShipmentRecord { customer_id: customer_id.clone(), status, lines: vec![], tracking: vec![] }).status =
            status;
        state
    }
}

impl ShipmentDecider {
    fn cancel(&self, state: &ShipmentState, customer_id: Option<&str>) -> Result<Vec<ShipmentEvent>, Rejection> {
        let Some(shipment) = &state.shipment else {
            // Not scheduled yet. A cancel that names the customer (a paid order's request) takes
            // the shipment's place, so a ScheduleShipment arriving later finds one and changes
            // nothing; one that does not (an order cancelled before payment) has nothing to do.
            return Ok(customer_id
                .map(|customer_id| ShipmentEvent::ShipmentCancelled { customer_id: customer_id.to_string() })
                .into_iter()
                .collect());
        };
        let refused =
            |reason: &str| ShipmentEvent::ShipmentCancellationRefused { customer_id: shipment.customer_id.clone(), reason: reason.to_string() };
        Ok(match shipment.status {
            ShipmentStatus::Scheduled => vec![ShipmentEvent::ShipmentCancelled { customer_id: shipment.customer_id.clone() }],
            ShipmentStatus::Dispatched => vec![refused("shipment already dispatched")],
            ShipmentStatus::Delivered => vec![refused("shipment already delivered")],
            // Nothing left to cancel, and the order has already heard why.
            ShipmentStatus::Rejected | ShipmentStatus::Cancelled => vec![],
        })
    }

    fn schedule(
        &self,
        state: &ShipmentState,
        order_id: &str,
        customer_id: &str,
        destination_country: &str,
        lines: &[ShipmentLine],
        shipping_address: Option<&Address>,
    ) -> Result<Vec<ShipmentEvent>, Rejection> {
        // One shipment per order, whatever became of it: a repeated request changes nothing.
        if state.shipment.is_some() {
            return Ok(vec![]);
        }
        let country = destination_country.trim().to_ascii_uppercase();
        if !self.shipping_countries.contains(&country) {
            return Ok(vec![ShipmentEvent::ShipmentRejected {
                customer_id: customer_id.to_string(),
                reason: format!("destination country {country} is not served"),
                destination_country: country,
            }]);
        }
        let carrier = carrier_for(&country);
        Ok(vec![ShipmentEvent::ShipmentScheduled {
            customer_id: customer_id.to_string(),
            carrier: carrier.to_string(),
            tracking_number: tracking_number_for(carrier, order_id),
            destination_country: country,
            lines: lines.to_vec(),
            shipping_address: shipping_address.cloned(),
        }])
    }
}

fn refused(reason: &str) -> Rejection {
    Rejection::Refused(reason.to_string())
}

fn invalid(error: InvalidField) -> Rejection {
    Rejection::Invalid(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::decider::fold;
    use runtime::testing::given;

    const ORDER: &str = "o-1";

    fn lines() -> Vec<ShipmentLine> {
        vec![ShipmentLine { sku: "sku-1".into(), quantity: 2 }, ShipmentLine { sku: "sku-2".into(), quantity: 1 }]
    }
    fn schedule_to(country: &str) -> ShipmentCommand {
        ShipmentCommand::ScheduleShipment {
            order_id: ORDER.into(),
            customer_id: "c-1".into(),
            destination_country: country.into(),
            lines: lines(),
            shipping_address: None,
        }
    }
    fn cancel() -> ShipmentCommand {
        ShipmentCommand::CancelShipment { order_id: ORDER.into(), customer_id: Some("c-1".into()) }
    }
    fn cancel_without_customer() -> ShipmentCommand {
        ShipmentCommand::CancelShipment { order_id: ORDER.into(), customer_id: None }
    }
    fn cancellation_refused(reason: &str) -> ShipmentEvent {
        ShipmentEvent::ShipmentCancellationRefused { customer_id: "c-1".into(), reason: reason.into() }
    }
    fn dispatch() -> ShipmentCommand {
        ShipmentCommand::DispatchShipment { order_id: ORDER.into() }
    }
    fn confirm() -> ShipmentCommand {
        ShipmentCommand::ConfirmDelivery { order_id: ORDER.into() }
    }
    fn scheduled_to(country: &str) -> ShipmentEvent {
        let carrier = carrier_for(country);
        ShipmentEvent::ShipmentScheduled {
            customer_id: "c-1".into(),
            carrier: carrier.into(),
            tracking_number: tracking_number_for(carrier, ORDER),
            destination_country: country.into(),
            lines: lines(),
            shipping_address: None,
        }
    }
    fn scheduled() -> ShipmentEvent {
        scheduled_to("DE")
    }
    fn rejected() -> ShipmentEvent {
        ShipmentEvent::ShipmentRejected {
            customer_id: "c-1".into(),
            reason: "destination country JP is not served".into(),
            destination_country: "JP".into(),
        }
    }
    fn cancelled() -> ShipmentEvent {
        ShipmentEvent::ShipmentCancelled { customer_id: "c-1".into() }
    }
    fn dispatched() -> ShipmentEvent {
        ShipmentEvent::ShipmentDispatched { customer_id: "c-1".into(), lines: lines() }
    }
    fn delivered() -> ShipmentEvent {
        ShipmentEvent::ShipmentDelivered { customer_id: "c-1".into() }
    }

    #[test]
    fn the_shipping_address_goes_on_the_scheduled_shipment_for_its_label() {
        let address =
            Address { name: "Ada".into(), street: "Main 1".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() };
        let ShipmentCommand::ScheduleShipment { order_id, customer_id, destination_country, lines, .. } = schedule_to("DE") else { unreachable!() };
        let command = |shipping_address| ShipmentCommand::ScheduleShipment {
            order_id: order_id.clone(),
            customer_id: customer_id.clone(),
            destination_country: destination_country.clone(),
            lines: lines.clone(),
            shipping_address,
        };
        let ShipmentEvent::ShipmentScheduled { carrier, tracking_number, .. } = scheduled() else { unreachable!() };
        given(&ShipmentDecider::default(), vec![]).when(command(Some(address.clone()))).then(vec![ShipmentEvent::ShipmentScheduled {
            customer_id: "c-1".into(),
            carrier,
            tracking_number,
            destination_country: "DE".into(),
            lines: self::lines(),
            shipping_address: Some(address.clone()),
        }]);
        let unnamed = Address { name: " ".into(), ..address };
        given(&ShipmentDecider::default(), vec![]).when(command(Some(unnamed))).then_invalid("shipping_address.name");
    }

    // tracking updates

    fn track(status: TrackingStatus, location: &str, at: i64) -> ShipmentCommand {
        ShipmentCommand::RecordTrackingUpdate { order_id: ORDER.into(), status, location: location.into(), at }
    }
    fn tracked(status: TrackingStatus, location: &str, at: i64) -> ShipmentEvent {
        ShipmentEvent::ShipmentTrackingUpdated { customer_id: "c-1".into(), status, location: location.into(), at }
    }

    #[test]
    fn a_dispatched_shipment_records_each_tracking_report_once() {
        let decider = ShipmentDecider::default();
        let on_its_way = vec![scheduled(), dispatched()];
        given(&decider, on_its_way.clone()).when(track(TrackingStatus::InTransit, "Hamburg hub", 1_000)).then(vec![tracked(
            TrackingStatus::InTransit,
            "Hamburg hub",
            1_000,
        )]);
        let reported = vec![scheduled(), dispatched(), tracked(TrackingStatus::InTransit, "Hamburg hub", 1_000)];
        given(&decider, reported.clone()).when(track(TrackingStatus::InTransit, "Hamburg hub", 1_000)).then_nothing();
        given(&decider, reported).when(track(TrackingStatus::DeliveryFailed, "Berlin", 2_000)).then(vec![tracked(
            TrackingStatus::DeliveryFailed,
            "Berlin",
            2_000,
        )]);
        let state = fold::<ShipmentDecider>(&[scheduled(), dispatched(), tracked(TrackingStatus::OutForDelivery, "Berlin", 3_000)]);
        let shipment = state.shipment.expect("a shipment");
        assert_eq!((shipment.status, shipment.tracking.len()), (ShipmentStatus::Dispatched, 1));
    }

    #[test]
    fn tracking_is_refused_before_dispatch_and_after_delivery() {
        let decider = ShipmentDecider::default();
        let update = || track(TrackingStatus::InTransit, "Hamburg hub", 1_000);
        for history in [vec![], vec![scheduled()], vec![cancelled()], vec![rejected()]] {
            given(&decider, history).when(update()).then_refused("shipment has not been dispatched");
        }
        given(&decider, vec![scheduled(), dispatched(), delivered()]).when(update()).then_refused("shipment already delivered");
    }

    #[test]
    fn a_tracking_report_needs_a_location_and_a_plausible_time() {
        let decider = ShipmentDecider::default();
        let on_its_way = vec![scheduled(), dispatched()];
        given(&decider, on_its_way.clone()).when(track(TrackingStatus::InTransit, " ", 1_000)).then_invalid("location");
        given(&decider, on_its_way.clone()).when(track(TrackingStatus::InTransit, "Hamburg\nhub", 1_000)).then_invalid("location");
        for at in [0, -5, contracts::validate::MAX_EPOCH_MS + 1] {
            given(&decider, on_its_way.clone()).when(track(TrackingStatus::InTransit, "Hamburg hub", at)).then_invalid("at");
        }
    }

    #[test]
    fn a_snapshot_from_before_tracking_still_reads() {
        let old = r#"{"shipment":{"customer_id":"c-1","status":"Dispatched","lines":[]}}"#;
        let state: ShipmentState = serde_json::from_str(old).expect("an old snapshot's state reads");
        assert_eq!(state.shipment.map(|shipment| shipment.tracking), Some(vec![]));
    }

    // configuration and derived values

    #[test]
    fn default_countries_are_the_documented_list() {
        let countries = parse_shipping_countries(DEFAULT_SHIPPING_COUNTRIES);
        assert_eq!(countries.len(), 17);
        assert!(countries.contains("DE") && countries.contains("US") && !countries.contains("JP"));
        assert_eq!(ShipmentDecider::default().shipping_countries, countries);
    }

    #[test]
    fn country_list_is_trimmed_upper_cased_and_skips_blanks() {
        let countries = parse_shipping_countries(" de, fr ,,JP,");
        assert_eq!(countries.into_iter().collect::<Vec<_>>(), vec!["DE", "FR", "JP"]);
        assert!(parse_shipping_countries(" , ").is_empty());
    }

    #[test]
    fn carrier_is_chosen_by_country() {
        for country in ["DE", "AT", "CH", "PL", "CZ"] {
            assert_eq!(carrier_for(country), "DHL");
        }
        assert_eq!(carrier_for("US"), "UPS");
        assert_eq!(carrier_for("CA"), "UPS");
        assert_eq!(carrier_for("FR"), "DPD");
    }

    #[test]
    fn tracking_number_is_stable_per_order() {
        let tracking = tracking_number_for("DHL", "o-1");
        assert_eq!(tracking, tracking_number_for("DHL", "o-1"));
        assert_ne!(tracking, tracking_number_for("DHL", "o-2"));
        assert_eq!(tracking.len(), 3 + 12);
        assert!(tracking.starts_with("DHL"));
        assert!(tracking[3..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }

    // ScheduleShipment

    #[test]
    fn schedule_to_a_served_country_picks_carrier_and_tracking() {
        given(&ShipmentDecider::default(), vec![]).when(schedule_to("DE")).then(vec![scheduled_to("DE")]);
        given(&ShipmentDecider::default(), vec![]).when(schedule_to("US")).then(vec![scheduled_to("US")]);
        given(&ShipmentDecider::default(), vec![]).when(schedule_to("FR")).then(vec![scheduled_to("FR")]);
    }

    #[test]
    fn schedule_normalises_the_country_code() {
        given(&ShipmentDecider::default(), vec![]).when(schedule_to(" de ")).then(vec![scheduled_to("DE")]);
    }

    #[test]
    fn schedule_to_an_unserved_country_is_rejected_as_an_event() {
        given(&ShipmentDecider::default(), vec![]).when(schedule_to("JP")).then(vec![rejected()]);
    }

    #[test]
    fn schedule_honours_the_configured_countries() {
        let only_japan = ShipmentDecider::new(parse_shipping_countries("JP"));
        given(&only_japan, vec![]).when(schedule_to("JP")).then(vec![scheduled_to("JP")]);
        assert!(matches!(given(&only_japan, vec![]).when(schedule_to("DE")).0.as_deref(), Ok([ShipmentEvent::ShipmentRejected { .. }])));
    }

    #[test]
    fn schedule_when_a_shipment_exists_is_a_no_op() {
        for history in [
            vec![scheduled()],
            vec![rejected()],
            vec![scheduled(), cancelled()],
            vec![scheduled(), dispatched()],
            vec![scheduled(), dispatched(), delivered()],
        ] {
            given(&ShipmentDecider::default(), history).when(schedule_to("DE")).then(vec![]);
        }
    }

    #[test]
    fn schedule_must_be_well_formed() {
        let with = |order_id: &str, customer_id: &str, lines: Vec<ShipmentLine>| ShipmentCommand::ScheduleShipment {
            order_id: order_id.into(),
            customer_id: customer_id.into(),
            destination_country: "DE".into(),
            lines,
            shipping_address: None,
        };
        given(&ShipmentDecider::default(), vec![]).when(with("", "c-1", lines())).then_invalid("order_id");
        given(&ShipmentDecider::default(), vec![]).when(with(&"o".repeat(129), "c-1", lines())).then_invalid("order_id");
        given(&ShipmentDecider::default(), vec![]).when(with(ORDER, "", lines())).then_invalid("customer_id");
        given(&ShipmentDecider::default(), vec![]).when(with(ORDER, "c-1", vec![])).then_invalid("lines must hold 1 to 100 items, got 0");
        given(&ShipmentDecider::default(), vec![])
            .when(with(ORDER, "c-1", vec![ShipmentLine { sku: "s".into(), quantity: 0 }]))
            .then_invalid("lines[0].quantity must be between 1 and 10000, got 0");
        given(&ShipmentDecider::default(), vec![])
            .when(with(ORDER, "c-1", vec![ShipmentLine { sku: String::new(), quantity: 1 }]))
            .then_invalid("lines[0].sku must be 1 to 128 characters, got 0");
    }

    // CancelShipment

    #[test]
    fn cancel_of_a_scheduled_shipment() {
        given(&ShipmentDecider::default(), vec![scheduled()]).when(cancel()).then(vec![cancelled()]);
        given(&ShipmentDecider::default(), vec![scheduled()]).when(cancel_without_customer()).then(vec![cancelled()]);
    }

    #[test]
    fn cancel_after_dispatch_is_refused_as_an_event() {
        given(&ShipmentDecider::default(), vec![scheduled(), dispatched()])
            .when(cancel())
            .then(vec![cancellation_refused("shipment already dispatched")]);
        given(&ShipmentDecider::default(), vec![scheduled(), dispatched(), delivered()])
            .when(cancel())
            .then(vec![cancellation_refused("shipment already delivered")]);
    }

    #[test]
    fn cancel_before_scheduling_stands_in_for_the_shipment() {
        given(&ShipmentDecider::default(), vec![]).when(cancel()).then(vec![cancelled()]);
        let cancelled_first = vec![cancelled()];
        given(&ShipmentDecider::default(), cancelled_first.clone()).when(schedule_to("DE")).then(vec![]);
        given(&ShipmentDecider::default(), cancelled_first.clone()).when(dispatch()).then_refused_exactly("shipment was cancelled");
        given(&ShipmentDecider::default(), cancelled_first).when(cancel()).then(vec![]);
    }

    #[test]
    fn cancel_of_a_rejected_or_cancelled_shipment_is_a_no_op() {
        for history in [vec![rejected()], vec![scheduled(), cancelled()]] {
            given(&ShipmentDecider::default(), history).when(cancel()).then(vec![]);
        }
    }

    #[test]
    fn dispatch_and_cancel_exclude_each_other_whichever_comes_first() {
        let decider = ShipmentDecider::default();
        given(&decider, vec![scheduled(), cancelled()]).when(dispatch()).then_refused_exactly("shipment was cancelled");
        given(&decider, vec![scheduled(), dispatched()]).when(cancel()).then(vec![cancellation_refused("shipment already dispatched")]);
        let refused_then = fold::<ShipmentDecider>(&[scheduled(), dispatched(), cancellation_refused("shipment already dispatched")]);
        assert_eq!(refused_then.shipment.map(|s| s.status), Some(ShipmentStatus::Dispatched));
    }

    #[test]
    fn cancel_must_be_well_formed() {
        given(&ShipmentDecider::default(), vec![])
            .when(ShipmentCommand::CancelShipment { order_id: String::new(), customer_id: Some("c-1".into()) })
            .then_invalid("order_id");
        given(&ShipmentDecider::default(), vec![scheduled()])
            .when(ShipmentCommand::CancelShipment { order_id: ORDER.into(), customer_id: Some(String::new()) })
            .then_invalid("customer_id");
    }

    #[test]
    fn cancel_before_scheduling_without_a_customer_is_a_no_op() {
        given(&ShipmentDecider::default(), vec![]).when(cancel_without_customer()).then(vec![]);
    }

    // DispatchShipment

    #[test]
    fn dispatch_of_a_scheduled_shipment_carries_its_lines() {
        given(&ShipmentDecider::default(), vec![scheduled()]).when(dispatch()).then(vec![dispatched()]);
    }

    #[test]
    fn dispatch_without_a_shipment_is_refused() {
        given(&ShipmentDecider::default(), vec![]).when(dispatch()).then_refused_exactly("no shipment for this order");
    }

    #[test]
    fn dispatch_of_a_cancelled_shipment_is_refused() {
        given(&ShipmentDecider::default(), vec![scheduled(), cancelled()]).when(dispatch()).then_refused_exactly("shipment was cancelled");
    }

    #[test]
    fn dispatch_of_a_rejected_shipment_is_refused() {
        given(&ShipmentDecider::default(), vec![rejected()]).when(dispatch()).then_refused_exactly("shipment was rejected");
    }

    #[test]
    fn dispatch_twice_is_refused() {
        given(&ShipmentDecider::default(), vec![scheduled(), dispatched()]).when(dispatch()).then_refused_exactly("shipment already dispatched");
        given(&ShipmentDecider::default(), vec![scheduled(), dispatched(), delivered()])
            .when(dispatch())
            .then_refused_exactly("shipment already dispatched");
    }

    #[test]
    fn dispatch_must_name_an_order() {
        given(&ShipmentDecider::default(), vec![]).when(ShipmentCommand::DispatchShipment { order_id: String::new() }).then_invalid("order_id");
    }

    // ConfirmDelivery

    #[test]
    fn confirm_delivery_of_a_dispatched_shipment() {
        given(&ShipmentDecider::default(), vec![scheduled(), dispatched()]).when(confirm()).then(vec![delivered()]);
    }

    #[test]
    fn confirm_delivery_twice_is_refused() {
        given(&ShipmentDecider::default(), vec![scheduled(), dispatched(), delivered()])
            .when(confirm())
            .then_refused_exactly("shipment already delivered");
    }

    #[test]
    fn confirm_delivery_before_dispatch_is_refused() {
        for history in [vec![], vec![scheduled()], vec![rejected()], vec![scheduled(), cancelled()]] {
            given(&ShipmentDecider::default(), history).when(confirm()).then_refused_exactly("shipment has not been dispatched");
        }
    }

    #[test]
    fn confirm_delivery_must_name_an_order() {
        given(&ShipmentDecider::default(), vec![]).when(ShipmentCommand::ConfirmDelivery { order_id: String::new() }).then_invalid("order_id");
    }

    // evolve

    #[test]
    fn default_state_has_no_shipment() {
        assert_eq!(ShipmentState::default().shipment, None);
    }

    #[test]
    fn evolve_follows_the_lifecycle() {
        let status_after = |events: &[ShipmentEvent]| fold::<ShipmentDecider>(events).shipment.map(|s| s.status);
        assert_eq!(status_after(&[scheduled()]), Some(ShipmentStatus::Scheduled));
        assert_eq!(status_after(&[rejected()]), Some(ShipmentStatus::Rejected));
        assert_eq!(status_after(&[scheduled(), cancelled()]), Some(ShipmentStatus::Cancelled));
        assert_eq!(status_after(&[scheduled(), dispatched()]), Some(ShipmentStatus::Dispatched));
        assert_eq!(status_after(&[scheduled(), dispatched(), delivered()]), Some(ShipmentStatus::Delivered));
        assert_eq!(status_after(&[cancelled()]), Some(ShipmentStatus::Cancelled));
        assert_eq!(status_after(&[scheduled(), dispatched(), delivered(), cancellation_refused("x")]), Some(ShipmentStatus::Delivered));
    }

    #[test]
    fn evolve_keeps_customer_and_lines_from_scheduling() {
        let state = fold::<ShipmentDecider>(&[scheduled(), dispatched()]);
        assert_eq!(
            state.shipment,
            Some(ShipmentRecord { customer_id: "c-1".into(), status: ShipmentStatus::Dispatched, lines: lines(), tracking: vec![] })
        );
    }
}
