//! The Stock aggregate (key `sku`) as a pure decider: stock on hand, and at most one reservation
//! per order, which is then released or shipped. Release and ship come from two consumers
//! (cancelled orders, dispatched shipments) and may arrive in either order: whichever comes
//! first consumes the reservation and the other changes nothing, so one reservation is never
//! both returned to stock and taken out of it. A SKU's state holds the reservations still
//! holding stock and only the last orders whose reservation ended, not every order it had.
//!
//! Low-stock alerts: a reservation (or shipment) that leaves available stock below the SKU's
//! threshold raises `StockLow` once, and so does setting a threshold above what is available;
//! whatever lifts it back to the threshold (a restock, a release, a lower threshold) appends
//! `StockReplenished`, after which the next fall alerts again.
use contracts::CommandTarget;
use contracts::stock::{Stock, StockCommand, StockEvent};
use contracts::validate::{InvalidField, Validate};
use runtime::{Decider, RecentIds, Rejection};
use std::collections::BTreeMap;

/// The stateless rules are the contract's (`StockCommand::validate`), shared with the HTTP
/// write path and the command processor.
pub use contracts::validate::{MAX_ID_CHARS, MAX_LOW_STOCK_THRESHOLD, MAX_RESTOCK_QUANTITY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReservationStatus {
    Reserved,
    Rejected,
    Released,
    Shipped,
}

impl ReservationStatus {
    /// The name the read model stores.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "RESERVED",
            ReservationStatus::Rejected => "REJECTED",
            ReservationStatus::Released => "RELEASED",
            ReservationStatus::Shipped => "SHIPPED",
        }
    }
}

/// How many orders whose reservation of a SKU ended its state remembers (a repeated
/// `ReserveStock` for one of them changes nothing); older ones are forgotten, so a SKU's state
/// does not grow with every order it ever had.
pub const CLOSED_RESERVATIONS_REMEMBERED: usize = 1_000;

/// Quantities are i64 because repeated restocks may add up past i32.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredStockState")]
pub struct StockState {
    pub on_hand: i64,
    pub reserved: i64,
    /// The reservations still holding stock (neither shipped nor released): order → quantity.
    pub held: BTreeMap<String, i32>,
    /// The last [`CLOSED_RESERVATIONS_REMEMBERED`] orders whose reservation ended: rejected,
    /// released or shipped.
    pub closed: RecentIds,
    /// Set by `SetLowStockThreshold`; `None`: the decider's default applies.
    pub low_stock_threshold: Option<i64>,
    /// A `StockLow` was raised and no `StockReplenished` followed.
    pub low: bool,
}

impl StockState {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    pub fn threshold(&self, default: i64) -> i64 {
        self.low_stock_threshold.unwrap_or(default)
    }

    /// The order's reservation of this SKU, whatever became of it, is known.
    fn has_reservation(&self, order_id: &str) -> bool {
        self.held.contains_key(order_id) || self.closed.contains(order_id)
    }

    fn close(&mut self, order_id: &str) {
        self.held.remove(order_id);
        self.closed.remember(order_id, CLOSED_RESERVATIONS_REMEMBERED);
    }
}

/// A state as snapshots hold it, older ones included: those kept every reservation, open or
/// ended, in `reservations` (and had no alerts).
#[derive(serde::Deserialize)]
struct StoredStockState {
    on_hand: i64,
    reserved: i64,
    #[serde(default)]
    held: BTreeMap<String, i32>,
    #[serde(default)]
    closed: RecentIds,
    #[serde(default)]
    reservations: BTreeMap<String, StoredReservation>,
    #[serde(default)]
    low_stock_threshold: Option<i64>,
    #[serde(default)]
    low: bool,
}

#[derive(serde::Deserialize)]
struct StoredReservation {
    quantity: i32,
    status: ReservationStatus,
}

impl From<StoredStockState> for StockState {
    fn from(stored: StoredStockState) -> Self {
        let mut state = StockState {
            on_hand: stored.on_hand,
            reserved: stored.reserved,
            held: stored.held,
            closed: stored.closed,
            low_stock_threshold: stored.low_stock_threshold,
            low: stored.low,
        };
        for (order_id, reservation) in stored.reservations {
            match reservation.status {
                ReservationStatus::Reserved => {
                    state.held.insert(order_id, reservation.quantity);
                }
                _ => state.closed.remember(&order_id, CLOSED_RESERVATIONS_REMEMBERED),
            }
        }
        state
    }
}

/// The environment variable of [`StockDecider::default_low_stock_threshold`].
pub const LOW_STOCK_THRESHOLD_ENV: &str = "LOW_STOCK_THRESHOLD";

#[derive(Debug, Clone, Copy, Default)]
pub struct StockDecider {
    /// The threshold of a SKU that has none of its own; `0` (the default): no alerts.
    pub default_low_stock_threshold: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("{LOW_STOCK_THRESHOLD_ENV} must be a whole number from 0 to {MAX_LOW_STOCK_THRESHOLD}, not {0:?}")]
pub struct ThresholdConfigError(String);

impl StockDecider {
    /// `LOW_STOCK_THRESHOLD`; unset or empty: 0.
    pub fn from_env() -> Result<Self, ThresholdConfigError> {
        Self::from_setting(std::env::var(LOW_STOCK_THRESHOLD_ENV).ok())
    }

    pub fn from_setting(value: Option<String>) -> Result<Self, ThresholdConfigError> {
        let Some(value) = value.filter(|value| !value.trim().is_empty()) else { return Ok(StockDecider::default()) };
        match value.trim().parse::<i64>() {
            Ok(threshold @ 0..=MAX_LOW_STOCK_THRESHOLD) => Ok(StockDecider { default_low_stock_threshold: threshold }),
            _ => Err(ThresholdConfigError(value)),
        }
    }

    /// What the command's `events` do to the alert: `StockLow` when they leave the SKU below
    /// its threshold by taking stock (or by raising the threshold) while no alert stands,
    /// `StockReplenished` when they lift it back while one does.
    fn alert(&self, state: &StockState, sku: &str, events: &[StockEvent]) -> Option<StockEvent> {
        // Where the events leave stock and threshold, as `evolve` says; the reservations of
        // other orders do not count, so they are not copied.
        let counters = StockState {
            on_hand: state.on_hand,
            reserved: state.reserved,
            held: BTreeMap::new(),
            closed: RecentIds::default(),
            low_stock_threshold: state.low_stock_threshold,
            low: state.low,
        };
        let after = events.iter().fold(counters, Self::evolve);
        let (available, threshold) = (after.available(), after.threshold(self.default_low_stock_threshold));
        let may_raise = events.iter().any(|event| {
            matches!(event, StockEvent::StockReserved { .. } | StockEvent::StockShipped { .. } | StockEvent::LowStockThresholdSet { .. })
        });
        let sku = sku.to_string();
        if !state.low && may_raise && available < threshold {
            Some(StockEvent::StockLow { sku, available, threshold })
        } else if state.low && available >= threshold {
            Some(StockEvent::StockReplenished { sku, available, threshold })
        } else {
            None
        }
    }
}

impl Decider for StockDecider {
    type Stream = Stock;
    type State = StockState;

    fn decide(&self, state: &StockState, command: &StockCommand) -> Result<Vec<StockEvent>, Rejection> {
        command.validate().map_err(invalid)?;
        let mut events = decide_stock(state, command);
        events.extend(self.alert(state, command.aggregate_id(), &events));
        Ok(events)
    }

    fn evolve(mut state: StockState, event: &StockEvent) -> StockState {
        match event {
            StockEvent::StockRestocked { quantity } => state.on_hand += i64::from(*quantity),
            StockEvent::StockReserved { order_id, quantity } => {
                state.held.insert(order_id.clone(), *quantity);
                state.reserved += i64::from(*quantity);
            }
            StockEvent::StockReservationRejected { order_id, .. } => state.close(order_id),
            StockEvent::StockReleased { order_id, quantity } => {
                state.close(order_id);
                state.reserved -= i64::from(*quantity);
            }
            StockEvent::StockShipped { order_id, quantity } => {
                state.close(order_id);
                state.reserved -= i64::from(*quantity);
                state.on_hand -= i64::from(*quantity);
            }
            StockEvent::LowStockThresholdSet { threshold } => state.low_stock_threshold = Some(*threshold),
            StockEvent::StockLow { .. } => state.low = true,
            StockEvent::StockReplenished { .. } => state.low = false,
        }
        state
    }
}

/// The stock movements a valid command makes, before any alert.
fn decide_stock(state: &StockState, command: &StockCommand) -> Vec<StockEvent> {
    match command {
        StockCommand::RestockItem { quantity, .. } => vec![StockEvent::StockRestocked { quantity: *quantity }],
        StockCommand::ReserveStock { order_id, quantity, .. } => {
            // At most one reservation per order and sku, whatever became of it.
            if state.has_reservation(order_id) {
                return vec![];
            }
            let available = state.available();
            if available >= i64::from(*quantity) {
                vec![StockEvent::StockReserved { order_id: order_id.clone(), quantity: *quantity }]
            } else {
                vec![StockEvent::StockReservationRejected {
                    order_id: order_id.clone(),
                    requested: *quantity,
                    // Below `quantity`, so it fits an i32 unless stock is oversold (negative).
                    available: i32::try_from(available).unwrap_or(i32::MIN),
                }]
            }
        }
        StockCommand::ReleaseStock { order_id, .. } => match state.held.get(order_id) {
            Some(quantity) => vec![StockEvent::StockReleased { order_id: order_id.clone(), quantity: *quantity }],
            None => vec![],
        },
        StockCommand::ShipStock { order_id, .. } => match state.held.get(order_id) {
            Some(quantity) => vec![StockEvent::StockShipped { order_id: order_id.clone(), quantity: *quantity }],
            None => vec![],
        },
        StockCommand::SetLowStockThreshold { threshold, .. } => {
            if state.low_stock_threshold == Some(*threshold) {
                vec![]
            } else {
                vec![StockEvent::LowStockThresholdSet { threshold: *threshold }]
            }
        }
    }
}

fn invalid(error: InvalidField) -> Rejection {
    Rejection::Invalid(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use StockCommand::*;
    use StockEvent::*;
    use runtime::testing::given;

    // ---- fixtures ------------------------------------------------------------------------

    const SKU: &str = "SKU-A";

    fn restock(quantity: i32) -> StockCommand {
        RestockItem { sku: SKU.into(), quantity }
    }
    fn reserve(order_id: &str, quantity: i32) -> StockCommand {
        ReserveStock { sku: SKU.into(), order_id: order_id.into(), quantity }
    }
    fn release(order_id: &str) -> StockCommand {
        ReleaseStock { sku: SKU.into(), order_id: order_id.into() }
    }
    fn ship(order_id: &str) -> StockCommand {
        ShipStock { sku: SKU.into(), order_id: order_id.into() }
    }

    fn restocked(quantity: i32) -> StockEvent {
        StockRestocked { quantity }
    }
    fn reserved(order_id: &str, quantity: i32) -> StockEvent {
        StockReserved { order_id: order_id.into(), quantity }
    }
    fn rejected(order_id: &str, requested: i32, available: i32) -> StockEvent {
        StockReservationRejected { order_id: order_id.into(), requested, available }
    }
    fn released(order_id: &str, quantity: i32) -> StockEvent {
        StockReleased { order_id: order_id.into(), quantity }
    }
    fn shipped(order_id: &str, quantity: i32) -> StockEvent {
        StockShipped { order_id: order_id.into(), quantity }
    }

    /// Ten on hand, three of them reserved by o1.
    fn ten_with_three_reserved() -> Vec<StockEvent> {
        vec![restocked(10), reserved("o1", 3)]
    }

    fn with(mut history: Vec<StockEvent>, more: impl IntoIterator<Item = StockEvent>) -> Vec<StockEvent> {
        history.extend(more);
        history
    }

    // ---- RestockItem ---------------------------------------------------------------------

    #[test]
    fn restock_adds_stock() {
        given(&StockDecider::default(), vec![]).when(restock(5)).then(vec![restocked(5)]);
        given(&StockDecider::default(), ten_with_three_reserved()).when(restock(MAX_RESTOCK_QUANTITY)).then(vec![restocked(MAX_RESTOCK_QUANTITY)]);
    }

    #[test]
    fn restock_rejects_quantities_outside_1_to_a_million() {
        for quantity in [0, -5, MAX_RESTOCK_QUANTITY + 1] {
            given(&StockDecider::default(), vec![]).when(restock(quantity)).then_invalid("quantity");
        }
    }

    #[test]
    fn restock_rejects_skus_that_are_empty_or_longer_than_128() {
        given(&StockDecider::default(), vec![]).when(RestockItem { sku: String::new(), quantity: 1 }).then_invalid("sku");
        given(&StockDecider::default(), vec![]).when(RestockItem { sku: "s".repeat(MAX_ID_CHARS + 1), quantity: 1 }).then_invalid("sku");
        given(&StockDecider::default(), vec![]).when(RestockItem { sku: "s".repeat(MAX_ID_CHARS), quantity: 1 }).then(vec![restocked(1)]);
    }

    // ---- ReserveStock --------------------------------------------------------------------

    #[test]
    fn reserve_takes_from_available_stock() {
        given(&StockDecider::default(), ten_with_three_reserved()).when(reserve("o2", 4)).then(vec![reserved("o2", 4)]);
    }

    #[test]
    fn reserve_may_take_exactly_what_is_available() {
        given(&StockDecider::default(), ten_with_three_reserved()).when(reserve("o2", 7)).then(vec![reserved("o2", 7)]);
    }

    #[test]
    fn reserve_beyond_available_is_rejected_with_what_is_available() {
        given(&StockDecider::default(), ten_with_three_reserved()).when(reserve("o2", 8)).then(vec![rejected("o2", 8, 7)]);
    }

    #[test]
    fn reserve_of_an_unknown_sku_is_rejected_with_nothing_available() {
        given(&StockDecider::default(), vec![]).when(reserve("o1", 1)).then(vec![rejected("o1", 1, 0)]);
    }

    #[test]
    fn reserve_counts_released_and_shipped_stock_correctly() {
        // 10 on hand; o1 took 3 and shipped them, o2 took 2 and released them: 7 available.
        let history = vec![restocked(10), reserved("o1", 3), reserved("o2", 2), shipped("o1", 3), released("o2", 2)];
        given(&StockDecider::default(), history.clone()).when(reserve("o3", 7)).then(vec![reserved("o3", 7)]);
        given(&StockDecider::default(), history).when(reserve("o3", 8)).then(vec![rejected("o3", 8, 7)]);
    }

    #[test]
    fn reserve_again_for_the_same_order_is_a_no_op_whatever_became_of_the_first() {
        let histories = [
            ten_with_three_reserved(),
            vec![rejected("o1", 3, 0), restocked(10)],
            with(ten_with_three_reserved(), [released("o1", 3)]),
            with(ten_with_three_reserved(), [shipped("o1", 3)]),
        ];
        for history in histories {
            given(&StockDecider::default(), history).when(reserve("o1", 3)).then_nothing();
        }
    }

    #[test]
    fn reserve_rejects_malformed_commands() {
        for quantity in [0, -1, contracts::validate::MAX_LINE_QUANTITY + 1] {
            given(&StockDecider::default(), ten_with_three_reserved()).when(reserve("o2", quantity)).then_invalid("quantity");
        }
        given(&StockDecider::default(), vec![]).when(reserve("", 1)).then_invalid("order_id");
        given(&StockDecider::default(), vec![]).when(reserve(&"o".repeat(MAX_ID_CHARS + 1), 1)).then_invalid("order_id");
        given(&StockDecider::default(), vec![]).when(ReserveStock { sku: String::new(), order_id: "o1".into(), quantity: 1 }).then_invalid("sku");
    }

    // ---- ReleaseStock --------------------------------------------------------------------

    #[test]
    fn release_returns_a_reservation_to_available_stock() {
        given(&StockDecider::default(), ten_with_three_reserved()).when(release("o1")).then(vec![released("o1", 3)]);
    }

    #[test]
    fn release_without_an_active_reservation_is_a_no_op() {
        let histories = [
            vec![],
            ten_with_three_reserved(), // for another order, below
            vec![rejected("o2", 5, 0)],
            with(ten_with_three_reserved(), [released("o1", 3)]),
            with(ten_with_three_reserved(), [shipped("o1", 3)]),
        ];
        let orders = ["o1", "o2", "o2", "o1", "o1"];
        for (history, order_id) in histories.into_iter().zip(orders) {
            given(&StockDecider::default(), history).when(release(order_id)).then_nothing();
        }
    }

    // ---- ShipStock -----------------------------------------------------------------------

    #[test]
    fn ship_takes_a_reservation_out_of_stock() {
        given(&StockDecider::default(), ten_with_three_reserved()).when(ship("o1")).then(vec![shipped("o1", 3)]);
    }

    #[test]
    fn ship_without_an_active_reservation_is_a_no_op() {
        let histories = [
            vec![],
            ten_with_three_reserved(),
            vec![rejected("o2", 5, 0)],
            with(ten_with_three_reserved(), [released("o1", 3)]),
            with(ten_with_three_reserved(), [shipped("o1", 3)]),
        ];
        let orders = ["o1", "o2", "o2", "o1", "o1"];
        for (history, order_id) in histories.into_iter().zip(orders) {
            given(&StockDecider::default(), history).when(ship(order_id)).then_nothing();
        }
    }

    #[test]
    fn release_and_ship_must_name_a_sku_and_an_order() {
        for command in [release(""), ship(""), ReleaseStock { sku: String::new(), order_id: "o1".into() }] {
            let outcome = given(&StockDecider::default(), ten_with_three_reserved()).when(command.clone()).0;
            assert!(matches!(&outcome, Err(Rejection::Invalid(_))), "{command:?}: {outcome:?}");
        }
        given(&StockDecider::default(), ten_with_three_reserved()).when(ship(&"o".repeat(MAX_ID_CHARS + 1))).then_invalid("order_id");
        given(&StockDecider::default(), ten_with_three_reserved()).when(ShipStock { sku: String::new(), order_id: "o1".into() }).then_invalid("sku");
    }

    // ---- one reservation: released or shipped, never both ---------------------------------

    #[test]
    fn release_and_ship_of_one_reservation_exclude_each_other_in_either_order() {
        let released_first = with(ten_with_three_reserved(), [released("o1", 3)]);
        given(&StockDecider::default(), released_first.clone()).when(ship("o1")).then_nothing();
        let state = state_after(&released_first);
        assert_eq!((state.on_hand, state.reserved), (10, 0));

        let shipped_first = with(ten_with_three_reserved(), [shipped("o1", 3)]);
        given(&StockDecider::default(), shipped_first.clone()).when(release("o1")).then_nothing();
        let state = state_after(&shipped_first);
        assert_eq!((state.on_hand, state.reserved), (7, 0));
    }

    #[test]
    fn releasing_or_shipping_one_order_leaves_another_orders_reservation_alone() {
        let history = with(ten_with_three_reserved(), [reserved("o2", 2), shipped("o1", 3)]);
        given(&StockDecider::default(), history.clone()).when(release("o2")).then(vec![released("o2", 2)]);
        given(&StockDecider::default(), history).when(ship("o2")).then(vec![shipped("o2", 2)]);
    }

    // ---- low-stock alerts -----------------------------------------------------------------

    fn alerting_below(threshold: i64) -> StockDecider {
        StockDecider { default_low_stock_threshold: threshold }
    }
    fn low(available: i64, threshold: i64) -> StockEvent {
        StockLow { sku: SKU.into(), available, threshold }
    }
    fn replenished(available: i64, threshold: i64) -> StockEvent {
        StockReplenished { sku: SKU.into(), available, threshold }
    }
    fn set_threshold(threshold: i64) -> StockCommand {
        SetLowStockThreshold { sku: SKU.into(), threshold }
    }

    #[test]
    fn a_reservation_that_crosses_the_threshold_raises_stock_low_once() {
        let decider = alerting_below(5);
        given(&decider, ten_with_three_reserved()).when(reserve("o2", 3)).then(vec![reserved("o2", 3), low(4, 5)]);
        // Already low: the next reservation takes stock without a second alert.
        let crossed = with(ten_with_three_reserved(), [reserved("o2", 3), low(4, 5)]);
        given(&decider, crossed.clone()).when(reserve("o3", 1)).then(vec![reserved("o3", 1)]);
        given(&decider, crossed).when(ship("o1")).then(vec![shipped("o1", 3)]);
    }

    #[test]
    fn staying_at_or_above_the_threshold_raises_nothing() {
        given(&alerting_below(5), ten_with_three_reserved()).when(reserve("o2", 2)).then(vec![reserved("o2", 2)]);
        given(&alerting_below(0), ten_with_three_reserved()).when(reserve("o2", 7)).then(vec![reserved("o2", 7)]);
    }

    #[test]
    fn a_rejected_reservation_or_a_small_restock_never_raises_an_alert() {
        // An unknown sku asked for is below any threshold, but nothing was taken.
        given(&alerting_below(5), vec![]).when(reserve("o1", 1)).then(vec![rejected("o1", 1, 0)]);
        given(&alerting_below(5), vec![]).when(restock(2)).then(vec![restocked(2)]);
    }

    #[test]
    fn what_lifts_stock_back_to_the_threshold_replenishes_and_rearms_the_alert() {
        let decider = alerting_below(5);
        let crossed = with(ten_with_three_reserved(), [reserved("o2", 3), low(4, 5)]);
        given(&decider, crossed.clone()).when(restock(1)).then(vec![restocked(1), replenished(5, 5)]);
        given(&decider, crossed.clone()).when(release("o2")).then(vec![released("o2", 3), replenished(7, 5)]);
        // Still below after the restock: the alert stands.
        let deeper = with(crossed.clone(), [reserved("o3", 4)]);
        given(&decider, deeper).when(restock(2)).then(vec![restocked(2)]);
        // Once replenished, the next fall alerts again.
        let back = with(crossed, [restocked(1), replenished(5, 5)]);
        given(&decider, back).when(reserve("o3", 1)).then(vec![reserved("o3", 1), low(4, 5)]);
    }

    #[test]
    fn a_sku_threshold_overrides_the_default_and_is_checked_when_set() {
        let decider = alerting_below(5);
        // 7 available: raising the threshold to 8 makes the sku low at once.
        given(&decider, ten_with_three_reserved()).when(set_threshold(8)).then(vec![LowStockThresholdSet { threshold: 8 }, low(7, 8)]);
        // 0 turns alerts off, and clears one that stands.
        let crossed = with(ten_with_three_reserved(), [reserved("o2", 3), low(4, 5)]);
        given(&decider, crossed).when(set_threshold(0)).then(vec![LowStockThresholdSet { threshold: 0 }, replenished(4, 0)]);
        let off = with(ten_with_three_reserved(), [LowStockThresholdSet { threshold: 0 }]);
        given(&decider, off.clone()).when(reserve("o2", 7)).then(vec![reserved("o2", 7)]);
        // The same threshold again changes nothing.
        given(&decider, off).when(set_threshold(0)).then_nothing();
    }

    #[test]
    fn thresholds_outside_0_to_a_billion_are_invalid() {
        for threshold in [-1, MAX_LOW_STOCK_THRESHOLD + 1] {
            given(&StockDecider::default(), vec![]).when(set_threshold(threshold)).then_invalid("threshold");
        }
        given(&StockDecider::default(), vec![]).when(SetLowStockThreshold { sku: String::new(), threshold: 1 }).then_invalid("sku");
    }

    #[test]
    fn the_default_threshold_comes_from_the_environment_setting() {
        assert_eq!(StockDecider::from_setting(None).map(|d| d.default_low_stock_threshold).ok(), Some(0));
        assert_eq!(StockDecider::from_setting(Some(" ".into())).map(|d| d.default_low_stock_threshold).ok(), Some(0));
        assert_eq!(StockDecider::from_setting(Some("25".into())).map(|d| d.default_low_stock_threshold).ok(), Some(25));
        for bad in ["-1", "ten", "1000000001"] {
            let error = StockDecider::from_setting(Some(bad.into())).expect_err(bad);
            assert!(error.to_string().contains(LOW_STOCK_THRESHOLD_ENV), "{error}");
        }
    }

    #[test]
    fn evolve_follows_the_threshold_and_the_alert() {
        let state = state_after(&[restocked(10), LowStockThresholdSet { threshold: 5 }, reserved("o1", 6), low(4, 5)]);
        assert_eq!((state.low_stock_threshold, state.low), (Some(5), true));
        let state = state_after(&[restocked(10), reserved("o1", 6), low(4, 5), released("o1", 6), replenished(10, 5)]);
        assert_eq!((state.low_stock_threshold, state.low), (None, false));
    }

    #[test]
    fn a_snapshot_from_before_alerts_still_reads() {
        let old = r#"{"on_hand":10,"reserved":3,"reservations":{"o1":{"quantity":3,"status":"Reserved"}}}"#;
        let state: StockState = serde_json::from_str(old).expect("an old snapshot's state reads");
        assert_eq!((state.available(), state.low_stock_threshold, state.low), (7, None, false));
    }

    // ---- evolve --------------------------------------------------------------------------

    fn state_after(history: &[StockEvent]) -> StockState {
        runtime::decider::fold::<StockDecider>(history)
    }

    #[test]
    fn evolve_starts_empty() {
        let state = state_after(&[]);
        assert_eq!((state.on_hand, state.reserved, state.available()), (0, 0, 0));
        assert!(state.held.is_empty() && state.closed.is_empty());
    }

    #[test]
    fn evolve_tracks_on_hand_reserved_and_each_reservation() {
        let state = state_after(&[
            restocked(10),
            restocked(5),
            reserved("o1", 3),
            reserved("o2", 4),
            rejected("o3", 50, 8),
            released("o2", 4),
            reserved("o4", 2),
            shipped("o1", 3),
        ]);
        assert_eq!((state.on_hand, state.reserved, state.available()), (12, 2, 10));
        assert_eq!(state.held.into_iter().collect::<Vec<_>>(), [("o4".to_string(), 2)]);
        assert_eq!(state.closed.iter().collect::<Vec<_>>(), ["o3", "o2", "o1"]);
    }

    #[test]
    fn a_sku_remembers_only_the_last_ended_reservations_and_every_held_one() {
        let orders = CLOSED_RESERVATIONS_REMEMBERED + 500;
        let mut history = vec![restocked(MAX_RESTOCK_QUANTITY), reserved("held", 1)];
        for n in 0..orders {
            history.extend([reserved(&format!("o{n}"), 1), shipped(&format!("o{n}"), 1)]);
        }
        let state = state_after(&history);
        assert_eq!(state.held.len(), 1);
        assert_eq!(state.closed.len(), CLOSED_RESERVATIONS_REMEMBERED);
        assert_eq!(state.on_hand, i64::from(MAX_RESTOCK_QUANTITY) - orders as i64);
        // The last one ended is still known; the first, long forgotten, would be new again.
        let last = format!("o{}", orders - 1);
        given(&StockDecider::default(), history.clone()).when(reserve(&last, 1)).then_nothing();
        given(&StockDecider::default(), history.clone()).when(reserve("o0", 1)).then(vec![reserved("o0", 1)]);
        given(&StockDecider::default(), history).when(ship("held")).then(vec![shipped("held", 1)]);
    }

    #[test]
    fn a_snapshot_that_kept_every_reservation_still_reads() {
        let old = r#"{"on_hand":10,"reserved":3,"reservations":{
            "o1":{"quantity":3,"status":"Reserved"},"o2":{"quantity":4,"status":"Released"},
            "o3":{"quantity":50,"status":"Rejected"},"o4":{"quantity":1,"status":"Shipped"}}}"#;
        let state: StockState = serde_json::from_str(old).expect("an old snapshot's state reads");
        assert_eq!(state.held.iter().map(|(order, quantity)| (order.as_str(), *quantity)).collect::<Vec<_>>(), [("o1", 3)]);
        assert_eq!(state.closed.iter().collect::<Vec<_>>(), ["o2", "o3", "o4"]);
        let again: StockState = serde_json::to_string(&state).and_then(|json| serde_json::from_str(&json)).expect("round trip");
        assert_eq!(again, state);
    }

    #[test]
    fn evolve_adds_restocks_beyond_the_i32_range() {
        let history = vec![restocked(MAX_RESTOCK_QUANTITY); 3000];
        assert_eq!(state_after(&history).on_hand, 3_000_000_000);
    }

    #[test]
    fn reserve_works_when_stock_exceeds_the_i32_range() {
        let history = vec![restocked(MAX_RESTOCK_QUANTITY); 3000];
        let most = contracts::validate::MAX_LINE_QUANTITY;
        given(&StockDecider::default(), history).when(reserve("o1", most)).then(vec![reserved("o1", most)]);
    }

    #[test]
    fn reservation_status_names_match_the_read_model() {
        let names = [ReservationStatus::Reserved, ReservationStatus::Rejected, ReservationStatus::Released, ReservationStatus::Shipped]
            .map(ReservationStatus::as_str);
        assert_eq!(names, ["RESERVED", "REJECTED", "RELEASED", "SHIPPED"]);
    }
}
