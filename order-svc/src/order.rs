//! The Order aggregate (key `order_id`) as a pure decider: it validates orders, then follows the
//! saga by recording what stock, payment and shipping report back.
use crate::deadlines;
use contracts::order::{Address, CancellationReason, Order, OrderCommand, OrderEvent, OrderLine, SagaStep, order_total_cents};
use contracts::validate::{InvalidField, Validate};
use runtime::{Decider, Rejection};
use std::collections::BTreeSet;

/// The stateless rules are the contract's (`OrderCommand::validate`), shared with the HTTP
/// write path and the command processor.
pub use contracts::validate::{
    MAX_ADDRESS_FIELD_CHARS, MAX_CANCEL_REASON_CHARS, MAX_ID_CHARS, MAX_LINE_QUANTITY, MAX_ORDER_LINES, is_assigned_alpha2,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OrderStatus {
    Pending,
    StockReserved,
    Paid,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// Every status, in saga order.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::StockReserved,
        OrderStatus::Paid,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The status a read model stores under `name` (see [`OrderStatus::as_str`]).
    pub fn named(name: &str) -> Option<OrderStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// The name the read model stores and the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::StockReserved => "STOCK_RESERVED",
            OrderStatus::Paid => "PAID",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }
}

/// An order after `OrderPlaced`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlacedOrder {
    pub customer_id: String,
    pub lines: Vec<OrderLine>,
    pub currency: String,
    pub shipping_address: Address,
    pub total_cents: i64,
    pub status: OrderStatus,
    /// Lines whose stock is reserved; the order moves on once this covers every line.
    pub reserved_skus: BTreeSet<String>,
    /// `None` unless a cancellation was asked for from payment on (see [`PlacedOrder::cancel`]).
    pub cancellation_request: Option<CancellationRequest>,
}

/// A cancellation of a paid order: only the Shipment can say whether it is still possible.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CancellationRequest {
    /// Shipping has not answered yet; if it cancels the shipment, the order is cancelled with
    /// this reason and detail.
    Pending { reason: CancellationReason, detail: String },
    /// Shipping answered that the shipment had already been dispatched.
    Refused,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OrderState {
    #[default]
    NotPlaced,
    /// Boxed: the state is cloned per command, and most of it is the order.
    Placed(Box<PlacedOrder>),
}

/// Has no configuration: every rule of the order saga is fixed.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderDecider;

impl Decider for OrderDecider {
    type Stream = Order;
    type State = OrderState;

    fn decide(&self, state: &OrderState, command: &OrderCommand) -> Result<Vec<OrderEvent>, Rejection> {
        command.validate().map_err(invalid)?;
        match command {
            OrderCommand::PlaceOrder { customer_id, lines, currency, shipping_address, .. } => {
                let total_cents = order_total_cents(lines);
                if let OrderState::Placed(_) = state {
                    return Err(Rejection::Refused("order already exists".into()));
                }
                Ok(vec![OrderEvent::OrderPlaced {
                    customer_id: customer_id.clone(),
                    lines: lines.clone(),
                    currency: currency.clone(),
                    shipping_address: shipping_address.clone(),
                    total_cents,
                }])
            }
            OrderCommand::CancelOrder { reason, .. } => {
                let OrderState::Placed(order) = state else {
                    return Err(Rejection::Refused("order not found".into()));
                };
                match (order.status, &order.cancellation_request) {
                    (OrderStatus::Shipped | OrderStatus::Delivered, _) => {
                        Err(Rejection::Refused("order already shipped; it can no longer be cancelled".into()))
                    }
                    (OrderStatus::Cancelled, _) => Err(Rejection::Refused("order already cancelled".into())),
                    (_, Some(CancellationRequest::Refused)) => {
                        Err(Rejection::Refused("order already dispatched; it can no longer be cancelled".into()))
                    }
                    (OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid | OrderStatus::Confirmed, _) => {
                        Ok(order.cancel(CancellationReason::CustomerRequest, reason.clone().unwrap_or_default()))
                    }
                }
            }
            OrderCommand::TimeOutOrder { step, deadline_ms, .. } => {
                let OrderState::Placed(order) = state else {
                    return Err(Rejection::Refused("order not found".into()));
                };
                // The reply came in time (or the order moved on otherwise): the deadline is moot.
                if order.waiting_on() != Some(*step) {
                    return Ok(vec![]);
                }
                let detail = match deadline_ms {
                    Some(millis) => format!("waited longer than {millis} ms for {}", deadlines::awaited(*step)),
                    None => format!("waited too long for {}", deadlines::awaited(*step)),
                };
                Ok(order.cancel(CancellationReason::Timeout, detail))
            }
            // Record* commands report facts from other services; for an order we never saw, or
            // one that has moved past the step they concern, there is nothing left to do.
            record => match state {
                OrderState::NotPlaced => Ok(vec![]),
                OrderState::Placed(order) => Ok(order.record(record)),
            },
        }
    }

    fn evolve(state: OrderState, event: &OrderEvent) -> OrderState {
        match (state, event) {
            (OrderState::NotPlaced, OrderEvent::OrderPlaced { customer_id, lines, currency, shipping_address, total_cents }) => {
                OrderState::Placed(Box::new(PlacedOrder {
                    customer_id: customer_id.clone(),
                    lines: lines.clone(),
                    currency: currency.clone(),
                    shipping_address: shipping_address.clone(),
                    total_cents: *total_cents,
                    status: OrderStatus::Pending,
                    reserved_skus: BTreeSet::new(),
                    cancellation_request: None,
                }))
            }
            (OrderState::Placed(mut order), event) => {
                order.apply(event);
                OrderState::Placed(order)
            }
            // A well-formed history starts with OrderPlaced; anything else before it is ignored.
            (OrderState::NotPlaced, _) => OrderState::NotPlaced,
        }
    }
}

impl PlacedOrder {
    /// Cancelling the order now, whatever the cause. Before payment it is cancelled at once.
    /// From payment on, dispatch is the point of no return and the Shipment decides it, so this
    /// only asks (`OrderCancellationRequested`): the order is cancelled, refunded and its stock
    /// released when shipping answers `ShipmentCancelled`, and carries on when it refuses.
    /// Nothing while a request is pending or after one was refused, nor once the order is
    /// shipped, delivered or cancelled: callers that must refuse those check first.
    pub fn cancel(&self, reason: CancellationReason, detail: String) -> Vec<OrderEvent> {
        use OrderStatus::*;
        match (self.status, &self.cancellation_request) {
            (Pending | StockReserved, _) => vec![self.cancelled(reason, detail)],
            (Paid | Confirmed, None) => {
                vec![OrderEvent::OrderCancellationRequested { customer_id: self.customer_id.clone(), reason, detail }]
            }
            (Paid | Confirmed, Some(_)) | (Shipped | Delivered | Cancelled, _) => vec![],
        }
    }

    /// The step the order waits in for another service's reply ([`deadlines::waiting_on`] of
    /// its status); nothing once a cancellation was asked for, which only shipping can answer.
    pub fn waiting_on(&self) -> Option<SagaStep> {
        match self.cancellation_request {
            None => deadlines::waiting_on(self.status),
            Some(_) => None,
        }
    }

    fn record(&self, command: &OrderCommand) -> Vec<OrderEvent> {
        use OrderStatus::*;
        match (command, self.status) {
            (OrderCommand::RecordStockReserved { sku, quantity, .. }, Pending) => self.line_reserved(sku, *quantity),
            (OrderCommand::RecordStockRejected { sku, requested, available, .. }, Pending) => {
                let detail = format!("sku {sku}: requested {requested}, available {available}");
                vec![self.cancelled(CancellationReason::OutOfStock, detail)]
            }
            (OrderCommand::RecordPaymentCaptured { amount_cents, .. }, StockReserved) => {
                vec![OrderEvent::OrderPaid {
                    customer_id: self.customer_id.clone(),
                    amount_cents: *amount_cents,
                    currency: self.currency.clone(),
                    shipping_address: self.shipping_address.clone(),
                    lines: self.lines.clone(),
                }]
            }
            (OrderCommand::RecordPaymentDeclined { reason, .. }, StockReserved) => {
                vec![self.cancelled(CancellationReason::PaymentDeclined, reason.clone())]
            }
            (OrderCommand::RecordShipmentScheduled { carrier, tracking_number, .. }, Paid) => {
                vec![OrderEvent::OrderConfirmed {
                    customer_id: self.customer_id.clone(),
                    carrier: carrier.clone(),
                    tracking_number: tracking_number.clone(),
                }]
            }
            (OrderCommand::RecordShipmentRejected { reason, .. }, Paid) => {
                vec![self.cancelled(CancellationReason::ShippingUnavailable, reason.clone())]
            }
            (OrderCommand::RecordShipmentDispatched { .. }, Confirmed) => {
                vec![OrderEvent::OrderShipped { customer_id: self.customer_id.clone() }]
            }
            (OrderCommand::RecordShipmentDelivered { .. }, Shipped) => {
                vec![OrderEvent::OrderDelivered { customer_id: self.customer_id.clone() }]
            }
            // A paid order whose shipment is cancelled can no longer ship: cancelled, for the
            // requested reason, or (a shipment cancelled without the order asking) as unshippable.
            (OrderCommand::RecordShipmentCancelled { .. }, Paid | Confirmed) => match &self.cancellation_request {
                Some(CancellationRequest::Pending { reason, detail }) => vec![self.cancelled(*reason, detail.clone())],
                Some(CancellationRequest::Refused) | None => {
                    vec![self.cancelled(CancellationReason::ShippingUnavailable, "the shipment was cancelled".into())]
                }
            },
            (OrderCommand::RecordShipmentCancellationRefused { reason, .. }, Paid | Confirmed | Shipped | Delivered)
                if matches!(self.cancellation_request, Some(CancellationRequest::Pending { .. })) =>
            {
                vec![OrderEvent::OrderCancellationRefused { customer_id: self.customer_id.clone(), reason: reason.clone() }]
            }
            // Late or duplicate reports, and reports that no longer matter (e.g. after a cancel).
            _ => vec![],
        }
    }

    fn line_reserved(&self, sku: &str, quantity: i32) -> Vec<OrderEvent> {
        let is_line_of_order = self.lines.iter().any(|line| line.sku == sku);
        if !is_line_of_order || self.reserved_skus.contains(sku) {
            return vec![];
        }
        let mut events = vec![OrderEvent::OrderLineReserved { sku: sku.to_string(), quantity }];
        let all_lines_reserved = self.lines.iter().all(|line| line.sku == sku || self.reserved_skus.contains(&line.sku));
        if all_lines_reserved {
            events.push(OrderEvent::OrderStockReserved {
                customer_id: self.customer_id.clone(),
                total_cents: self.total_cents,
                currency: self.currency.clone(),
            });
        }
        events
    }

    fn cancelled(&self, reason: CancellationReason, detail: String) -> OrderEvent {
        OrderEvent::OrderCancelled { customer_id: self.customer_id.clone(), reason, detail, lines: self.lines.clone() }
    }

    fn apply(&mut self, event: &OrderEvent) {
        self.record_event(event);
        self.forget_what_no_decision_needs();
    }

    /// Its writer holds every order it may still be told about, so an order keeps only what its
    /// decisions from its status on still read: the reserved lines only while pending, the
    /// address and currency until it is paid (`OrderPaid` carries them on), the lines until it
    /// can no longer be cancelled (`OrderCancelled` carries them, for the stock to be released).
    fn forget_what_no_decision_needs(&mut self) {
        use OrderStatus::*;
        if self.status != Pending {
            self.reserved_skus = BTreeSet::new();
        }
        if matches!(self.status, Paid | Confirmed | Shipped | Delivered | Cancelled) {
            self.currency = String::new();
            self.shipping_address =
                Address { name: String::new(), street: String::new(), city: String::new(), postal_code: String::new(), country: String::new() };
        }
        if matches!(self.status, Shipped | Delivered | Cancelled) {
            self.lines = Vec::new();
        }
    }

    fn record_event(&mut self, event: &OrderEvent) {
        match event {
            // Only the first OrderPlaced of a history counts.
            OrderEvent::OrderPlaced { .. } => {}
            OrderEvent::OrderLineReserved { sku, .. } => {
                self.reserved_skus.insert(sku.clone());
            }
            OrderEvent::OrderStockReserved { .. } => self.status = OrderStatus::StockReserved,
            OrderEvent::OrderPaid { .. } => self.status = OrderStatus::Paid,
            OrderEvent::OrderConfirmed { .. } => self.status = OrderStatus::Confirmed,
            OrderEvent::OrderShipped { .. } => self.status = OrderStatus::Shipped,
            OrderEvent::OrderDelivered { .. } => self.status = OrderStatus::Delivered,
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
            OrderEvent::OrderCancellationRequested { reason, detail, .. } => {
                self.cancellation_request = Some(CancellationRequest::Pending { reason: *reason, detail: detail.clone() });
            }
            OrderEvent::OrderCancellationRefused { .. } => self.cancellation_request = Some(CancellationRequest::Refused),
        }
    }
}

fn invalid(error: InvalidField) -> Rejection {
    Rejection::Invalid(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use CancellationReason::*;
    use OrderCommand::*;
    use OrderEvent::*;
    use runtime::testing::given;

    // ---- fixtures ------------------------------------------------------------------------

    const ORDER: &str = "order-1";
    const CUSTOMER: &str = "customer-1";

    fn address() -> Address {
        Address {
            name: "Ada Lovelace".into(),
            street: "1 Analytical Way".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }
    }

    fn line(sku: &str, quantity: i32, unit_price_cents: i64) -> OrderLine {
        OrderLine { sku: sku.into(), quantity, unit_price_cents }
    }

    fn two_lines() -> Vec<OrderLine> {
        vec![line("SKU-A", 2, 1500), line("SKU-B", 1, 2500)]
    }

    fn place_with(edit: impl FnOnce(&mut String, &mut String, &mut Vec<OrderLine>, &mut String, &mut Address)) -> OrderCommand {
        let (mut order_id, mut customer_id, mut lines, mut currency, mut address) =
            (ORDER.to_string(), CUSTOMER.to_string(), two_lines(), "EUR".to_string(), address());
        edit(&mut order_id, &mut customer_id, &mut lines, &mut currency, &mut address);
        PlaceOrder { order_id, customer_id, lines, currency, shipping_address: address }
    }

    fn place() -> OrderCommand {
        place_with(|_, _, _, _, _| {})
    }

    fn place_lines(lines: Vec<OrderLine>) -> OrderCommand {
        place_with(|_, _, l, _, _| *l = lines)
    }

    fn place_address(edit: impl FnOnce(&mut Address)) -> OrderCommand {
        place_with(|_, _, _, _, a| edit(a))
    }

    fn order_placed() -> OrderEvent {
        OrderPlaced { customer_id: CUSTOMER.into(), lines: two_lines(), currency: "EUR".into(), shipping_address: address(), total_cents: 5500 }
    }

    fn line_reserved(sku: &str, quantity: i32) -> OrderEvent {
        OrderLineReserved { sku: sku.into(), quantity }
    }

    fn stock_reserved() -> OrderEvent {
        OrderStockReserved { customer_id: CUSTOMER.into(), total_cents: 5500, currency: "EUR".into() }
    }

    fn order_paid() -> OrderEvent {
        OrderPaid { customer_id: CUSTOMER.into(), amount_cents: 5500, currency: "EUR".into(), shipping_address: address(), lines: two_lines() }
    }

    fn order_confirmed() -> OrderEvent {
        OrderConfirmed { customer_id: CUSTOMER.into(), carrier: "DHL".into(), tracking_number: "DHL-123".into() }
    }

    fn cancelled(reason: CancellationReason, detail: &str) -> OrderEvent {
        OrderCancelled { customer_id: CUSTOMER.into(), reason, detail: detail.into(), lines: two_lines() }
    }

    // Histories, one per status.
    fn pending() -> Vec<OrderEvent> {
        vec![order_placed()]
    }
    fn with(mut history: Vec<OrderEvent>, more: impl IntoIterator<Item = OrderEvent>) -> Vec<OrderEvent> {
        history.extend(more);
        history
    }
    fn partly_reserved() -> Vec<OrderEvent> {
        with(pending(), [line_reserved("SKU-A", 2)])
    }
    fn stock_reserved_history() -> Vec<OrderEvent> {
        with(partly_reserved(), [line_reserved("SKU-B", 1), stock_reserved()])
    }
    fn paid() -> Vec<OrderEvent> {
        with(stock_reserved_history(), [order_paid()])
    }
    fn confirmed() -> Vec<OrderEvent> {
        with(paid(), [order_confirmed()])
    }
    fn shipped() -> Vec<OrderEvent> {
        with(confirmed(), [OrderShipped { customer_id: CUSTOMER.into() }])
    }
    fn delivered() -> Vec<OrderEvent> {
        with(shipped(), [OrderDelivered { customer_id: CUSTOMER.into() }])
    }
    fn cancelled_history() -> Vec<OrderEvent> {
        with(pending(), [cancelled(CustomerRequest, "")])
    }

    fn every_status() -> Vec<(OrderStatus, Vec<OrderEvent>)> {
        vec![
            (OrderStatus::Pending, pending()),
            (OrderStatus::StockReserved, stock_reserved_history()),
            (OrderStatus::Paid, paid()),
            (OrderStatus::Confirmed, confirmed()),
            (OrderStatus::Shipped, shipped()),
            (OrderStatus::Delivered, delivered()),
            (OrderStatus::Cancelled, cancelled_history()),
        ]
    }

    /// Asserts `command` is a no-op in every status except `acting_in`.
    fn no_op_outside(acting_in: OrderStatus, command: OrderCommand) {
        for (status, history) in every_status() {
            if status != acting_in {
                let outcome = given(&OrderDecider, history).when(command.clone()).0;
                assert_eq!(outcome, Ok(vec![]), "{command:?} in {status:?}");
            }
        }
    }

    fn record_stock_reserved(sku: &str, quantity: i32) -> OrderCommand {
        RecordStockReserved { order_id: ORDER.into(), sku: sku.into(), quantity }
    }
    fn record_stock_rejected() -> OrderCommand {
        RecordStockRejected { order_id: ORDER.into(), sku: "SKU-B".into(), requested: 1, available: 0 }
    }
    fn record_payment_captured() -> OrderCommand {
        RecordPaymentCaptured { order_id: ORDER.into(), amount_cents: 5500 }
    }
    fn record_payment_declined() -> OrderCommand {
        RecordPaymentDeclined { order_id: ORDER.into(), reason: "INSUFFICIENT_FUNDS".into() }
    }
    fn record_shipment_scheduled() -> OrderCommand {
        RecordShipmentScheduled { order_id: ORDER.into(), carrier: "DHL".into(), tracking_number: "DHL-123".into() }
    }
    fn record_shipment_rejected() -> OrderCommand {
        RecordShipmentRejected { order_id: ORDER.into(), reason: "destination country DE is not served".into() }
    }
    fn record_shipment_dispatched() -> OrderCommand {
        RecordShipmentDispatched { order_id: ORDER.into() }
    }
    fn record_shipment_delivered() -> OrderCommand {
        RecordShipmentDelivered { order_id: ORDER.into() }
    }
    fn record_shipment_cancelled() -> OrderCommand {
        RecordShipmentCancelled { order_id: ORDER.into() }
    }
    fn record_cancellation_refused() -> OrderCommand {
        RecordShipmentCancellationRefused { order_id: ORDER.into(), reason: "shipment already dispatched".into() }
    }
    /// One of each command by which another service reports back.
    fn every_record_command() -> Vec<OrderCommand> {
        vec![
            record_stock_reserved("SKU-A", 2),
            record_stock_rejected(),
            record_payment_captured(),
            record_payment_declined(),
            record_shipment_scheduled(),
            record_shipment_rejected(),
            record_shipment_dispatched(),
            record_shipment_delivered(),
            record_shipment_cancelled(),
            record_cancellation_refused(),
        ]
    }
    fn cancel(reason: Option<&str>) -> OrderCommand {
        CancelOrder { order_id: ORDER.into(), reason: reason.map(Into::into) }
    }
    fn cancellation_requested(detail: &str) -> OrderEvent {
        OrderCancellationRequested { customer_id: CUSTOMER.into(), reason: CustomerRequest, detail: detail.into() }
    }
    fn cancellation_refused() -> OrderEvent {
        OrderCancellationRefused { customer_id: CUSTOMER.into(), reason: "shipment already dispatched".into() }
    }
    /// Paid, then confirmed, with a customer's cancellation waiting for shipping's answer.
    fn paid_requested() -> Vec<OrderEvent> {
        with(paid(), [cancellation_requested("changed my mind")])
    }
    fn confirmed_requested() -> Vec<OrderEvent> {
        with(confirmed(), [cancellation_requested("changed my mind")])
    }

    /// Every decision from each status on is tested above on states folded this way; this
    /// pins down what the writer stops holding, status by status.
    #[test]
    fn an_order_holds_only_what_its_later_decisions_read() {
        let held = |history: Vec<OrderEvent>| {
            let OrderState::Placed(order) = runtime::fold::<OrderDecider>(&history) else { panic!("placed") };
            (order.reserved_skus.len(), order.currency.is_empty(), order.shipping_address.street.is_empty(), order.lines.len())
        };
        assert_eq!(held(partly_reserved()), (1, false, false, 2), "pending: counts its reserved lines");
        assert_eq!(held(stock_reserved_history()), (0, false, false, 2), "payment still needs address and currency");
        assert_eq!(held(confirmed()), (0, true, true, 2), "a cancellation still releases the lines");
        assert_eq!(held(delivered()), (0, true, true, 0));
        assert_eq!(held(cancelled_history()), (0, true, true, 0));
    }

    /// What the deadlines forget (`OrderDeadlines::finished`) must stay forgettable: from a
    /// status past every step, whatever command comes and whatever the decider makes of it,
    /// the order waits on no step again.
    #[test]
    fn an_order_past_every_step_never_waits_again_whatever_it_is_told() {
        let commands = || {
            let mut all = vec![place(), cancel(Some("changed my mind"))];
            all.extend(every_record_command());
            all.push(TimeOutOrder { order_id: ORDER.into(), step: SagaStep::Shipment, deadline_ms: None });
            all
        };
        let histories = [confirmed(), confirmed_requested(), shipped(), delivered(), cancelled_history()];
        let mut finished = 0;
        for history in histories {
            // Two commands in a row, each decided on the state the one before left.
            for first in commands() {
                for second in commands() {
                    let mut state = runtime::fold::<OrderDecider>(&history);
                    for command in [first.clone(), second] {
                        let events = OrderDecider.decide(&state, &command).unwrap_or_default();
                        state = events.iter().fold(state, OrderDecider::evolve);
                        let OrderState::Placed(order) = &state else { panic!("an order that was placed stays placed") };
                        assert!(crate::deadlines::past_every_step(order.status), "{:?} after {command:?}", order.status);
                        assert_eq!(order.waiting_on(), None, "after {command:?}");
                    }
                    finished += 1;
                }
            }
        }
        assert_eq!(finished, 5 * 13 * 13);
    }
    /// Dispatched while the request was on its way to shipping.
    fn shipped_requested() -> Vec<OrderEvent> {
        with(confirmed_requested(), [OrderShipped { customer_id: CUSTOMER.into() }])
    }

    // ---- PlaceOrder ----------------------------------------------------------------------

    #[test]
    fn place_order_places_it_with_the_total_of_its_lines() {
        given(&OrderDecider, vec![]).when(place()).then(vec![order_placed()]);
    }

    #[test]
    fn place_order_accepts_the_boundaries() {
        let long_id = "x".repeat(MAX_ID_CHARS);
        let command = place_with(|order_id, customer_id, lines, _, address| {
            *order_id = long_id.clone();
            *customer_id = "c".into();
            *lines = vec![line(&long_id, MAX_LINE_QUANTITY, 0), line("S", 1, 7)];
            address.name = "n".repeat(MAX_ADDRESS_FIELD_CHARS);
        });
        let outcome = given(&OrderDecider, vec![]).when(command).0;
        let Ok(events) = outcome else { panic!("{outcome:?}") };
        assert!(matches!(events.as_slice(), [OrderPlaced { total_cents: 7, .. }]), "{events:?}");
    }

    #[test]
    fn place_order_counts_characters_not_bytes() {
        given(&OrderDecider, vec![]).when(place_with(|id, _, _, _, _| *id = "ü".repeat(MAX_ID_CHARS))).then(vec![order_placed()]);
    }

    #[test]
    fn place_order_for_an_existing_order_is_refused() {
        given(&OrderDecider, pending()).when(place()).then_refused_exactly("order already exists");
        given(&OrderDecider, cancelled_history()).when(place()).then_refused_exactly("order already exists");
    }

    #[test]
    fn place_order_checks_validity_before_existence() {
        given(&OrderDecider, pending()).when(place_lines(vec![])).then_invalid("lines must hold 1 to 100 items, got 0");
    }

    #[test]
    fn place_order_needs_at_least_one_line() {
        given(&OrderDecider, vec![]).when(place_lines(vec![])).then_invalid("lines must hold 1 to 100 items, got 0");
    }

    #[test]
    fn place_order_takes_at_most_100_lines() {
        let lines = |n: usize| (0..n).map(|i| line(&format!("SKU-{i}"), 1, 100)).collect::<Vec<_>>();
        given(&OrderDecider, vec![]).when(place_lines(lines(MAX_ORDER_LINES + 1))).then_invalid("lines must hold 1 to 100 items, got 101");
        assert!(OrderDecider.decide(&OrderState::NotPlaced, &place_lines(lines(MAX_ORDER_LINES))).is_ok());
    }

    #[test]
    fn place_order_rejects_quantities_outside_1_to_10000() {
        for quantity in [0, -1, MAX_LINE_QUANTITY + 1] {
            given(&OrderDecider, vec![]).when(place_lines(vec![line("SKU-A", quantity, 100)])).then_invalid("quantity");
        }
    }

    #[test]
    fn place_order_rejects_negative_prices() {
        given(&OrderDecider, vec![]).when(place_lines(vec![line("SKU-A", 1, -1)])).then_invalid("unit_price_cents");
    }

    #[test]
    fn place_order_rejects_ids_that_are_empty_or_longer_than_128() {
        let too_long = "x".repeat(MAX_ID_CHARS + 1);
        given(&OrderDecider, vec![]).when(place_with(|id, _, _, _, _| id.clear())).then_invalid("order_id");
        given(&OrderDecider, vec![]).when(place_with(|id, _, _, _, _| *id = too_long.clone())).then_invalid("order_id");
        given(&OrderDecider, vec![]).when(place_with(|_, customer, _, _, _| customer.clear())).then_invalid("customer_id");
        given(&OrderDecider, vec![]).when(place_with(|_, customer, _, _, _| *customer = too_long.clone())).then_invalid("customer_id");
        given(&OrderDecider, vec![]).when(place_lines(vec![line("", 1, 1)])).then_invalid("sku");
        given(&OrderDecider, vec![]).when(place_lines(vec![line(&too_long, 1, 1)])).then_invalid("sku");
    }

    #[test]
    fn place_order_rejects_a_sku_in_two_lines() {
        given(&OrderDecider, vec![])
            .when(place_lines(vec![line("SKU-A", 1, 1), line("SKU-B", 1, 1), line("SKU-A", 2, 1)]))
            .then_invalid("SKU-A appears in more than one line");
    }

    #[test]
    fn place_order_rejects_a_total_that_overflows() {
        given(&OrderDecider, vec![]).when(place_lines(vec![line("SKU-A", 2, i64::MAX / 2 + 1)])).then_invalid("total");
        given(&OrderDecider, vec![]).when(place_lines(vec![line("SKU-A", 1, i64::MAX), line("SKU-B", 1, 1)])).then_invalid("total");
    }

    #[test]
    fn place_order_rejects_currencies_that_are_not_three_upper_case_ascii_letters() {
        for currency in ["eur", "EU", "EURO", "", "E1R", "ÉUR", "EÜ"] {
            given(&OrderDecider, vec![]).when(place_with(|_, _, _, c, _| *c = currency.into())).then_invalid("currency");
        }
    }

    #[test]
    fn address_lines_and_cancel_reasons_must_be_readable() {
        given(&OrderDecider, vec![])
            .when(place_address(|a| a.street = "Main\u{202e}1".into()))
            .then_invalid("shipping_address.street must not contain");
        given(&OrderDecider, vec![]).when(place_address(|a| a.name = "Ada\nBcc".into())).then_invalid("U+000A");
        given(&OrderDecider, pending()).when(cancel(Some("\u{1b}[31m"))).then_invalid("reason must not contain");
        given(&OrderDecider, pending()).when(cancel(Some(&"x".repeat(MAX_CANCEL_REASON_CHARS + 1)))).then_invalid("at most 500 characters");
    }

    #[test]
    fn place_order_rejects_countries_that_are_not_iso_alpha2() {
        for country in ["XX", "UK", "de", "DEU", ""] {
            given(&OrderDecider, vec![]).when(place_address(|a| a.country = country.into())).then_invalid("country");
        }
    }

    #[test]
    fn place_order_rejects_empty_or_overlong_address_fields() {
        let too_long = "a".repeat(MAX_ADDRESS_FIELD_CHARS + 1);
        type Field = fn(&mut Address) -> &mut String;
        let fields: [(&str, Field); 4] =
            [("name", |a| &mut a.name), ("street", |a| &mut a.street), ("city", |a| &mut a.city), ("postal_code", |a| &mut a.postal_code)];
        for (name, field) in fields {
            for bad in ["", "   ", too_long.as_str()] {
                given(&OrderDecider, vec![]).when(place_address(|a| *field(a) = bad.into())).then_invalid(&format!("shipping_address.{name}"));
            }
        }
    }

    // ---- RecordStockReserved -------------------------------------------------------------

    #[test]
    fn a_reserved_line_is_recorded_while_others_are_outstanding() {
        given(&OrderDecider, pending()).when(record_stock_reserved("SKU-A", 2)).then(vec![line_reserved("SKU-A", 2)]);
    }

    #[test]
    fn the_last_reserved_line_also_reserves_the_order() {
        given(&OrderDecider, partly_reserved()).when(record_stock_reserved("SKU-B", 1)).then(vec![line_reserved("SKU-B", 1), stock_reserved()]);
    }

    #[test]
    fn a_single_line_order_is_reserved_by_its_only_line() {
        let single = OrderPlaced {
            customer_id: CUSTOMER.into(),
            lines: vec![line("SKU-A", 3, 100)],
            currency: "EUR".into(),
            shipping_address: address(),
            total_cents: 300,
        };
        given(&OrderDecider, vec![single])
            .when(record_stock_reserved("SKU-A", 3))
            .then(vec![line_reserved("SKU-A", 3), OrderStockReserved { customer_id: CUSTOMER.into(), total_cents: 300, currency: "EUR".into() }]);
    }

    #[test]
    fn a_duplicate_line_reservation_is_a_no_op() {
        given(&OrderDecider, partly_reserved()).when(record_stock_reserved("SKU-A", 2)).then_nothing();
    }

    #[test]
    fn a_reservation_for_a_sku_not_in_the_order_is_a_no_op() {
        given(&OrderDecider, pending()).when(record_stock_reserved("SKU-Z", 1)).then_nothing();
    }

    #[test]
    fn a_line_reservation_outside_pending_is_a_no_op() {
        no_op_outside(OrderStatus::Pending, record_stock_reserved("SKU-A", 2));
    }

    // ---- RecordStockRejected -------------------------------------------------------------

    #[test]
    fn a_stock_rejection_cancels_a_pending_order_as_out_of_stock() {
        given(&OrderDecider, pending()).when(record_stock_rejected()).then(vec![cancelled(OutOfStock, "sku SKU-B: requested 1, available 0")]);
    }

    #[test]
    fn a_stock_rejection_cancels_a_partly_reserved_order_with_all_lines() {
        given(&OrderDecider, partly_reserved())
            .when(record_stock_rejected())
            .then(vec![cancelled(OutOfStock, "sku SKU-B: requested 1, available 0")]);
    }

    #[test]
    fn a_stock_rejection_outside_pending_is_a_no_op() {
        no_op_outside(OrderStatus::Pending, record_stock_rejected());
    }

    // ---- payment -------------------------------------------------------------------------

    #[test]
    fn a_captured_payment_pays_a_reserved_order() {
        given(&OrderDecider, stock_reserved_history()).when(record_payment_captured()).then(vec![order_paid()]);
    }

    #[test]
    fn a_captured_payment_outside_stock_reserved_is_a_no_op() {
        no_op_outside(OrderStatus::StockReserved, record_payment_captured());
    }

    #[test]
    fn a_declined_payment_cancels_a_reserved_order() {
        given(&OrderDecider, stock_reserved_history()).when(record_payment_declined()).then(vec![cancelled(PaymentDeclined, "INSUFFICIENT_FUNDS")]);
    }

    #[test]
    fn a_declined_payment_outside_stock_reserved_is_a_no_op() {
        no_op_outside(OrderStatus::StockReserved, record_payment_declined());
    }

    // ---- shipment ------------------------------------------------------------------------

    #[test]
    fn a_scheduled_shipment_confirms_a_paid_order() {
        given(&OrderDecider, paid()).when(record_shipment_scheduled()).then(vec![order_confirmed()]);
    }

    #[test]
    fn a_scheduled_shipment_outside_paid_is_a_no_op() {
        no_op_outside(OrderStatus::Paid, record_shipment_scheduled());
    }

    #[test]
    fn a_rejected_shipment_cancels_a_paid_order() {
        given(&OrderDecider, paid())
            .when(record_shipment_rejected())
            .then(vec![cancelled(ShippingUnavailable, "destination country DE is not served")]);
    }

    #[test]
    fn a_rejected_shipment_outside_paid_is_a_no_op() {
        no_op_outside(OrderStatus::Paid, record_shipment_rejected());
    }

    #[test]
    fn a_dispatched_shipment_ships_a_confirmed_order() {
        given(&OrderDecider, confirmed()).when(record_shipment_dispatched()).then(vec![OrderShipped { customer_id: CUSTOMER.into() }]);
    }

    #[test]
    fn a_dispatched_shipment_outside_confirmed_is_a_no_op() {
        no_op_outside(OrderStatus::Confirmed, record_shipment_dispatched());
    }

    #[test]
    fn a_delivered_shipment_delivers_a_shipped_order() {
        given(&OrderDecider, shipped()).when(record_shipment_delivered()).then(vec![OrderDelivered { customer_id: CUSTOMER.into() }]);
    }

    #[test]
    fn a_delivered_shipment_outside_shipped_is_a_no_op() {
        no_op_outside(OrderStatus::Shipped, record_shipment_delivered());
    }

    #[test]
    fn every_record_command_for_an_unknown_order_is_a_no_op() {
        for command in every_record_command() {
            given(&OrderDecider, vec![]).when(command).then_nothing();
        }
    }

    // ---- CancelOrder ---------------------------------------------------------------------

    #[test]
    fn cancel_order_before_payment_cancels_at_once() {
        for history in [pending(), partly_reserved(), stock_reserved_history()] {
            given(&OrderDecider, history).when(cancel(Some("changed my mind"))).then(vec![cancelled(CustomerRequest, "changed my mind")]);
        }
    }

    #[test]
    fn cancel_order_from_payment_on_asks_shipping_first() {
        for history in [paid(), confirmed()] {
            given(&OrderDecider, history).when(cancel(Some("changed my mind"))).then(vec![cancellation_requested("changed my mind")]);
        }
    }

    #[test]
    fn cancel_order_while_a_request_is_pending_is_a_no_op() {
        for history in [paid_requested(), confirmed_requested()] {
            given(&OrderDecider, history).when(cancel(Some("really"))).then_nothing();
        }
    }

    #[test]
    fn cancel_order_after_shipping_refused_is_refused() {
        given(&OrderDecider, with(confirmed_requested(), [cancellation_refused()]))
            .when(cancel(None))
            .then_refused_exactly("order already dispatched; it can no longer be cancelled");
    }

    #[test]
    fn cancel_order_shipped_while_its_request_was_pending_is_refused_as_shipped() {
        given(&OrderDecider, shipped_requested()).when(cancel(None)).then_refused_exactly("order already shipped; it can no longer be cancelled");
    }

    #[test]
    fn cancel_decides_immediate_or_request_by_status_for_any_reason() {
        let order = |history: Vec<OrderEvent>| match runtime::decider::fold::<OrderDecider>(&history) {
            OrderState::Placed(order) => order,
            OrderState::NotPlaced => panic!("not placed"),
        };
        assert_eq!(order(stock_reserved_history()).cancel(PaymentDeclined, "late".into()), vec![cancelled(PaymentDeclined, "late")]);
        assert_eq!(
            order(paid()).cancel(PaymentDeclined, "late".into()),
            vec![OrderCancellationRequested { customer_id: CUSTOMER.into(), reason: PaymentDeclined, detail: "late".into() }]
        );
        for history in [paid_requested(), with(confirmed_requested(), [cancellation_refused()]), shipped(), delivered(), cancelled_history()] {
            assert_eq!(order(history.clone()).cancel(PaymentDeclined, "late".into()), vec![], "{history:?}");
        }
    }

    // ---- shipping's answer to a cancellation request --------------------------------------

    #[test]
    fn a_cancelled_shipment_cancels_the_order_that_asked_with_its_reason() {
        for history in [paid_requested(), confirmed_requested()] {
            given(&OrderDecider, history).when(record_shipment_cancelled()).then(vec![cancelled(CustomerRequest, "changed my mind")]);
        }
    }

    #[test]
    fn a_request_for_another_reason_is_cancelled_with_that_reason() {
        let requested = OrderCancellationRequested { customer_id: CUSTOMER.into(), reason: PaymentDeclined, detail: "chargeback".into() };
        given(&OrderDecider, with(confirmed(), [requested])).when(record_shipment_cancelled()).then(vec![cancelled(PaymentDeclined, "chargeback")]);
    }

    #[test]
    fn a_shipment_cancelled_without_a_request_cancels_a_paid_order_as_unshippable() {
        for history in [paid(), confirmed()] {
            given(&OrderDecider, history).when(record_shipment_cancelled()).then(vec![cancelled(ShippingUnavailable, "the shipment was cancelled")]);
        }
    }

    #[test]
    fn a_cancelled_shipment_before_payment_or_after_shipping_is_a_no_op() {
        for (status, history) in every_status() {
            if !matches!(status, OrderStatus::Paid | OrderStatus::Confirmed) {
                given(&OrderDecider, history).when(record_shipment_cancelled()).then_nothing();
            }
        }
    }

    #[test]
    fn a_refused_cancellation_is_recorded_and_the_order_carries_on() {
        for history in [confirmed_requested(), shipped_requested()] {
            given(&OrderDecider, history).when(record_cancellation_refused()).then(vec![cancellation_refused()]);
        }
        let refused_then_dispatched = with(confirmed_requested(), [cancellation_refused()]);
        given(&OrderDecider, refused_then_dispatched).when(record_shipment_dispatched()).then(vec![OrderShipped { customer_id: CUSTOMER.into() }]);
    }

    #[test]
    fn a_dispatch_recorded_while_a_request_is_pending_ships_the_order() {
        given(&OrderDecider, confirmed_requested()).when(record_shipment_dispatched()).then(vec![OrderShipped { customer_id: CUSTOMER.into() }]);
    }

    #[test]
    fn a_refusal_without_a_pending_request_is_a_no_op() {
        for (_, history) in every_status() {
            given(&OrderDecider, history).when(record_cancellation_refused()).then_nothing();
        }
        given(&OrderDecider, with(confirmed_requested(), [cancellation_refused()])).when(record_cancellation_refused()).then_nothing();
    }

    #[test]
    fn cancel_order_without_a_reason_has_an_empty_detail() {
        given(&OrderDecider, pending()).when(cancel(None)).then(vec![cancelled(CustomerRequest, "")]);
    }

    #[test]
    fn cancel_order_for_an_unknown_order_is_refused() {
        given(&OrderDecider, vec![]).when(cancel(None)).then_refused_exactly("order not found");
    }

    #[test]
    fn cancel_order_after_shipping_is_refused() {
        for history in [shipped(), delivered()] {
            given(&OrderDecider, history).when(cancel(None)).then_refused_exactly("order already shipped; it can no longer be cancelled");
        }
    }

    #[test]
    fn cancel_order_twice_is_refused() {
        given(&OrderDecider, cancelled_history()).when(cancel(None)).then_refused_exactly("order already cancelled");
    }

    // ---- evolve --------------------------------------------------------------------------

    fn status_after(history: &[OrderEvent]) -> Option<OrderStatus> {
        match runtime::decider::fold::<OrderDecider>(history) {
            OrderState::NotPlaced => None,
            OrderState::Placed(order) => Some(order.status),
        }
    }

    #[test]
    fn evolve_walks_the_happy_path() {
        for (status, history) in every_status() {
            assert_eq!(status_after(&history), Some(status), "{history:?}");
        }
    }

    #[test]
    fn evolve_keeps_the_placed_order_and_the_reserved_lines() {
        let OrderState::Placed(order) = runtime::decider::fold::<OrderDecider>(&partly_reserved()) else { panic!("not placed") };
        assert_eq!(
            *order,
            PlacedOrder {
                customer_id: CUSTOMER.into(),
                lines: two_lines(),
                currency: "EUR".into(),
                shipping_address: address(),
                total_cents: 5500,
                status: OrderStatus::Pending,
                reserved_skus: BTreeSet::from(["SKU-A".to_string()]),
                cancellation_request: None,
            }
        );
    }

    #[test]
    fn evolve_remembers_a_request_and_its_refusal_without_changing_the_status() {
        let request_after = |history: &[OrderEvent]| match runtime::decider::fold::<OrderDecider>(history) {
            OrderState::Placed(order) => (order.status, order.cancellation_request),
            OrderState::NotPlaced => panic!("not placed"),
        };
        let pending = CancellationRequest::Pending { reason: CustomerRequest, detail: "changed my mind".into() };
        assert_eq!(request_after(&confirmed()), (OrderStatus::Confirmed, None));
        assert_eq!(request_after(&confirmed_requested()), (OrderStatus::Confirmed, Some(pending.clone())));
        assert_eq!(request_after(&shipped_requested()), (OrderStatus::Shipped, Some(pending)));
        assert_eq!(request_after(&with(shipped_requested(), [cancellation_refused()])), (OrderStatus::Shipped, Some(CancellationRequest::Refused)));
    }

    #[test]
    fn evolve_cancels_from_any_status() {
        for (_, history) in every_status() {
            let history = with(history, [cancelled(OutOfStock, "x")]);
            assert_eq!(status_after(&history), Some(OrderStatus::Cancelled));
        }
    }

    #[test]
    fn evolve_ignores_events_before_the_order_is_placed() {
        assert_eq!(status_after(&[stock_reserved(), order_paid()]), None);
    }

    #[test]
    fn evolve_ignores_a_second_order_placed() {
        let second =
            OrderPlaced { customer_id: "someone-else".into(), lines: vec![], currency: "USD".into(), shipping_address: address(), total_cents: 0 };
        assert_eq!(runtime::decider::fold::<OrderDecider>(&with(pending(), [second])), runtime::decider::fold::<OrderDecider>(&pending()));
    }

    #[test]
    fn status_names_match_the_read_model() {
        let names: Vec<_> = every_status().into_iter().map(|(status, _)| status.as_str()).collect();
        assert_eq!(names, ["PENDING", "STOCK_RESERVED", "PAID", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"]);
    }

    // ---- TimeOutOrder --------------------------------------------------------------------

    fn time_out(step: SagaStep) -> OrderCommand {
        TimeOutOrder { order_id: ORDER.into(), step, deadline_ms: Some(30_000) }
    }

    fn order_in(history: &[OrderEvent]) -> PlacedOrder {
        match runtime::decider::fold::<OrderDecider>(history) {
            OrderState::Placed(order) => *order,
            OrderState::NotPlaced => panic!("not placed"),
        }
    }

    #[test]
    fn a_time_out_cancels_an_order_still_waiting_for_stock_or_payment() {
        for history in [pending(), partly_reserved()] {
            given(&OrderDecider, history)
                .when(time_out(SagaStep::Stock))
                .then(vec![cancelled(Timeout, "waited longer than 30000 ms for its stock to be reserved")]);
        }
        given(&OrderDecider, stock_reserved_history())
            .when(time_out(SagaStep::Payment))
            .then(vec![cancelled(Timeout, "waited longer than 30000 ms for its payment")]);
    }

    #[test]
    fn a_time_out_waiting_for_the_shipment_asks_shipping_to_cancel() {
        given(&OrderDecider, paid()).when(time_out(SagaStep::Shipment)).then(vec![OrderCancellationRequested {
            customer_id: CUSTOMER.into(),
            reason: Timeout,
            detail: "waited longer than 30000 ms for its shipment to be scheduled".into(),
        }]);
    }

    #[test]
    fn a_time_out_without_its_deadline_still_says_what_was_awaited() {
        given(&OrderDecider, pending())
            .when(TimeOutOrder { order_id: ORDER.into(), step: SagaStep::Stock, deadline_ms: None })
            .then(vec![cancelled(Timeout, "waited too long for its stock to be reserved")]);
    }

    #[test]
    fn a_time_out_of_a_step_the_order_has_left_is_a_no_op() {
        for step in [SagaStep::Stock, SagaStep::Payment, SagaStep::Shipment] {
            for (status, history) in every_status() {
                if deadlines::waiting_on(status) != Some(step) {
                    let outcome = given(&OrderDecider, history).when(time_out(step)).0;
                    assert_eq!(outcome, Ok(vec![]), "{step:?} in {status:?}");
                }
            }
            // A cancellation already asked for waits on shipping's answer, not on the deadline.
            for history in [paid_requested(), with(confirmed_requested(), [cancellation_refused()])] {
                given(&OrderDecider, history).when(time_out(step)).then_nothing();
            }
        }
    }

    #[test]
    fn a_time_out_of_an_unknown_order_is_refused_and_of_a_bad_id_invalid() {
        given(&OrderDecider, vec![]).when(time_out(SagaStep::Stock)).then_refused_exactly("order not found");
        given(&OrderDecider, pending())
            .when(TimeOutOrder { order_id: String::new(), step: SagaStep::Stock, deadline_ms: None })
            .then_invalid("order_id");
    }

    #[test]
    fn an_order_waits_on_the_step_of_its_status_until_a_cancellation_is_asked_for() {
        assert_eq!(order_in(&pending()).waiting_on(), Some(SagaStep::Stock));
        assert_eq!(order_in(&partly_reserved()).waiting_on(), Some(SagaStep::Stock));
        assert_eq!(order_in(&stock_reserved_history()).waiting_on(), Some(SagaStep::Payment));
        assert_eq!(order_in(&paid()).waiting_on(), Some(SagaStep::Shipment));
        assert_eq!(order_in(&paid_requested()).waiting_on(), None);
        for history in [confirmed(), shipped(), delivered(), cancelled_history()] {
            assert_eq!(order_in(&history).waiting_on(), None, "{history:?}");
        }
    }

    #[test]
    fn the_order_deadlines_give_each_waiting_order_its_steps_limit() {
        use crate::deadlines::{DeadlineConfig, OrderDeadlines};
        use runtime::Deadlines;
        use std::time::Duration;
        let config = DeadlineConfig { stock: Duration::from_secs(1), payment: Duration::from_secs(2), shipment: Duration::from_secs(3) };
        let deadlines = OrderDeadlines(config);
        let waiting = |history: Vec<OrderEvent>| deadlines.waiting(&runtime::decider::fold::<OrderDecider>(&history));
        assert_eq!(waiting(vec![]), None, "no order, no wait");
        assert_eq!(waiting(partly_reserved()), Some((SagaStep::Stock, Duration::from_secs(1))));
        assert_eq!(waiting(stock_reserved_history()), Some((SagaStep::Payment, Duration::from_secs(2))));
        assert_eq!(waiting(paid()), Some((SagaStep::Shipment, Duration::from_secs(3))));
        assert_eq!(waiting(confirmed()), None);
    }
}
