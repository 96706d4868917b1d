//! The Stock aggregate (key `sku`) as a pure decider: stock on hand, and at most one reservation
//! per order, which is then released or shipped. Release and ship come from two consumers
//! (cancelled orders, dispatched shipments) and may arrive in either order: whichever comes
//! first consumes the reservation and the other changes nothing, so one reservation is never
//! both returned to stock and taken out of it.
use contracts::stock::{Stock, StockCommand, StockEvent};
use contracts::validate::{InvalidField, Validate};
use runtime::{Decider, Rejection};
use std::collections::BTreeMap;

/// The stateless rules are the contract's (`StockCommand::validate`), shared with the HTTP
/// write path and the command processor.
pub use contracts::validate::{MAX_ID_CHARS, MAX_RESTOCK_QUANTITY};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    /// The reserved quantity, or the requested one for a rejection.
    pub quantity: i32,
    pub status: ReservationStatus,
}

/// Quantities are i64 because repeated restocks may add up past i32.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StockState {
    pub on_hand: i64,
    pub reserved: i64,
    pub reservations: BTreeMap<String, Reservation>,
}

impl StockState {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    fn reservation_with_status(&self, order_id: &str, status: ReservationStatus) -> Option<&Reservation> {
        self.reservations.get(order_id).filter(|reservation| reservation.status == status)
    }
}

/// Has no configuration: the stock rules are fixed.
#[derive(Debug, Clone, Copy, Default)]
pub struct StockDecider;

impl Decider for StockDecider {
    type Stream = Stock;
    type State = StockState;

    fn decide(&self, state: &StockState, command: &StockCommand) -> Result<Vec<StockEvent>, Rejection> {
        command.validate().map_err(invalid)?;
        match command {
            StockCommand::RestockItem { quantity, .. } => Ok(vec![StockEvent::StockRestocked { quantity: *quantity }]),
            StockCommand::ReserveStock { order_id, quantity, .. } => {
                // At most one reservation per order and sku, whatever became of it.
                if state.reservations.contains_key(order_id) {
                    return Ok(vec![]);
                }
                let available = state.available();
                if available >= i64::from(*quantity) {
                    Ok(vec![StockEvent::StockReserved { order_id: order_id.clone(), quantity: *quantity }])
                } else {
                    Ok(vec![StockEvent::StockReservationRejected {
                        order_id: order_id.clone(),
                        requested: *quantity,
                        // Below `quantity`, so it fits an i32 unless stock is oversold (negative).
                        available: i32::try_from(available).unwrap_or(i32::MIN),
                    }])
                }
            }
            StockCommand::ReleaseStock { order_id, .. } => Ok(match state.reservation_with_status(order_id, ReservationStatus::Reserved) {
                Some(reservation) => {
                    vec![StockEvent::StockReleased { order_id: order_id.clone(), quantity: reservation.quantity }]
                }
                None => vec![],
            }),
            StockCommand::ShipStock { order_id, .. } => Ok(match state.reservation_with_status(order_id, ReservationStatus::Reserved) {
                Some(reservation) => {
                    vec![StockEvent::StockShipped { order_id: order_id.clone(), quantity: reservation.quantity }]
                }
                None => vec![],
            }),
        }
    }

    fn evolve(mut state: StockState, event: &StockEvent) -> StockState {
        let mut record = |order_id: &String, quantity: i32, status: ReservationStatus| {
            state.reservations.insert(order_id.clone(), Reservation { quantity, status });
        };
        match event {
            StockEvent::StockRestocked { quantity } => state.on_hand += i64::from(*quantity),
            StockEvent::StockReserved { order_id, quantity } => {
                record(order_id, *quantity, ReservationStatus::Reserved);
                state.reserved += i64::from(*quantity);
            }
            StockEvent::StockReservationRejected { order_id, requested, .. } => {
                record(order_id, *requested, ReservationStatus::Rejected);
            }
            StockEvent::StockReleased { order_id, quantity } => {
                record(order_id, *quantity, ReservationStatus::Released);
                state.reserved -= i64::from(*quantity);
            }
            StockEvent::StockShipped { order_id, quantity } => {
                record(order_id, *quantity, ReservationStatus::Shipped);
                state.reserved -= i64::from(*quantity);
                state.on_hand -= i64::from(*quantity);
            }
        }
        state
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
        given(&StockDecider, vec![]).when(restock(5)).then(vec![restocked(5)]);
        given(&StockDecider, ten_with_three_reserved()).when(restock(MAX_RESTOCK_QUANTITY)).then(vec![restocked(MAX_RESTOCK_QUANTITY)]);
    }

    #[test]
    fn restock_rejects_quantities_outside_1_to_a_million() {
        for quantity in [0, -5, MAX_RESTOCK_QUANTITY + 1] {
            given(&StockDecider, vec![]).when(restock(quantity)).then_invalid("quantity");
        }
    }

    #[test]
    fn restock_rejects_skus_that_are_empty_or_longer_than_128() {
        given(&StockDecider, vec![]).when(RestockItem { sku: String::new(), quantity: 1 }).then_invalid("sku");
        given(&StockDecider, vec![]).when(RestockItem { sku: "s".repeat(MAX_ID_CHARS + 1), quantity: 1 }).then_invalid("sku");
        given(&StockDecider, vec![]).when(RestockItem { sku: "s".repeat(MAX_ID_CHARS), quantity: 1 }).then(vec![restocked(1)]);
    }

    // ---- ReserveStock --------------------------------------------------------------------

    #[test]
    fn reserve_takes_from_available_stock() {
        given(&StockDecider, ten_with_three_reserved()).when(reserve("o2", 4)).then(vec![reserved("o2", 4)]);
    }

    #[test]
    fn reserve_may_take_exactly_what_is_available() {
        given(&StockDecider, ten_with_three_reserved()).when(reserve("o2", 7)).then(vec![reserved("o2", 7)]);
    }

    #[test]
    fn reserve_beyond_available_is_rejected_with_what_is_available() {
        given(&StockDecider, ten_with_three_reserved()).when(reserve("o2", 8)).then(vec![rejected("o2", 8, 7)]);
    }

    #[test]
    fn reserve_of_an_unknown_sku_is_rejected_with_nothing_available() {
        given(&StockDecider, vec![]).when(reserve("o1", 1)).then(vec![rejected("o1", 1, 0)]);
    }

    #[test]
    fn reserve_counts_released_and_shipped_stock_correctly() {
        // 10 on hand; o1 took 3 and shipped them, o2 took 2 and released them: 7 available.
        let history = vec![restocked(10), reserved("o1", 3), reserved("o2", 2), shipped("o1", 3), released("o2", 2)];
        given(&StockDecider, history.clone()).when(reserve("o3", 7)).then(vec![reserved("o3", 7)]);
        given(&StockDecider, history).when(reserve("o3", 8)).then(vec![rejected("o3", 8, 7)]);
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
            given(&StockDecider, history).when(reserve("o1", 3)).then_nothing();
        }
    }

    #[test]
    fn reserve_rejects_malformed_commands() {
        for quantity in [0, -1, contracts::validate::MAX_LINE_QUANTITY + 1] {
            given(&StockDecider, ten_with_three_reserved()).when(reserve("o2", quantity)).then_invalid("quantity");
        }
        given(&StockDecider, vec![]).when(reserve("", 1)).then_invalid("order_id");
        given(&StockDecider, vec![]).when(reserve(&"o".repeat(MAX_ID_CHARS + 1), 1)).then_invalid("order_id");
        given(&StockDecider, vec![]).when(ReserveStock { sku: String::new(), order_id: "o1".into(), quantity: 1 }).then_invalid("sku");
    }

    // ---- ReleaseStock --------------------------------------------------------------------

    #[test]
    fn release_returns_a_reservation_to_available_stock() {
        given(&StockDecider, ten_with_three_reserved()).when(release("o1")).then(vec![released("o1", 3)]);
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
            given(&StockDecider, history).when(release(order_id)).then_nothing();
        }
    }

    // ---- ShipStock -----------------------------------------------------------------------

    #[test]
    fn ship_takes_a_reservation_out_of_stock() {
        given(&StockDecider, ten_with_three_reserved()).when(ship("o1")).then(vec![shipped("o1", 3)]);
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
            given(&StockDecider, history).when(ship(order_id)).then_nothing();
        }
    }

    #[test]
    fn release_and_ship_must_name_a_sku_and_an_order() {
        for command in [release(""), ship(""), ReleaseStock { sku: String::new(), order_id: "o1".into() }] {
            let outcome = given(&StockDecider, ten_with_three_reserved()).when(command.clone()).0;
            assert!(matches!(&outcome, Err(Rejection::Invalid(_))), "{command:?}: {outcome:?}");
        }
        given(&StockDecider, ten_with_three_reserved()).when(ship(&"o".repeat(MAX_ID_CHARS + 1))).then_invalid("order_id");
        given(&StockDecider, ten_with_three_reserved()).when(ShipStock { sku: String::new(), order_id: "o1".into() }).then_invalid("sku");
    }

    // ---- one reservation: released or shipped, never both ---------------------------------

    #[test]
    fn release_and_ship_of_one_reservation_exclude_each_other_in_either_order() {
        let released_first = with(ten_with_three_reserved(), [released("o1", 3)]);
        given(&StockDecider, released_first.clone()).when(ship("o1")).then_nothing();
        let state = state_after(&released_first);
        assert_eq!((state.on_hand, state.reserved), (10, 0));

        let shipped_first = with(ten_with_three_reserved(), [shipped("o1", 3)]);
        given(&StockDecider, shipped_first.clone()).when(release("o1")).then_nothing();
        let state = state_after(&shipped_first);
        assert_eq!((state.on_hand, state.reserved), (7, 0));
    }

    #[test]
    fn releasing_or_shipping_one_order_leaves_another_orders_reservation_alone() {
        let history = with(ten_with_three_reserved(), [reserved("o2", 2), shipped("o1", 3)]);
        given(&StockDecider, history.clone()).when(release("o2")).then(vec![released("o2", 2)]);
        given(&StockDecider, history).when(ship("o2")).then(vec![shipped("o2", 2)]);
    }

    // ---- evolve --------------------------------------------------------------------------

    fn state_after(history: &[StockEvent]) -> StockState {
        runtime::decider::fold::<StockDecider>(history)
    }

    #[test]
    fn evolve_starts_empty() {
        let state = state_after(&[]);
        assert_eq!((state.on_hand, state.reserved, state.available()), (0, 0, 0));
        assert!(state.reservations.is_empty());
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
        let statuses: Vec<_> =
            state.reservations.iter().map(|(order_id, reservation)| (order_id.as_str(), reservation.quantity, reservation.status)).collect();
        assert_eq!(
            statuses,
            [
                ("o1", 3, ReservationStatus::Shipped),
                ("o2", 4, ReservationStatus::Released),
                ("o3", 50, ReservationStatus::Rejected),
                ("o4", 2, ReservationStatus::Reserved),
            ]
        );
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
        given(&StockDecider, history).when(reserve("o1", most)).then(vec![reserved("o1", most)]);
    }

    #[test]
    fn reservation_status_names_match_the_read_model() {
        let names = [ReservationStatus::Reserved, ReservationStatus::Rejected, ReservationStatus::Released, ReservationStatus::Shipped]
            .map(ReservationStatus::as_str);
        assert_eq!(names, ["RESERVED", "REJECTED", "RELEASED", "SHIPPED"]);
    }
}
