//! The order view against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use axum::{
    Json,
    extract::{Path, Query, State},
};
use contracts::order::{CancellationReason, OrderEvent};
use contracts::shipment::ShipmentEvent;
use order_svc::MIGRATOR;
use order_svc::read_model::{
    CancellationRequestView, GetOrderParams, ListOrdersParams, OrderView, PaymentView, ShipmentView, get_order, get_timeline, list_orders,
    load_order, project_notification, project_order, project_order_view, project_payment, project_shipment,
};
use runtime::http::{ProjectionProgress, ReadDb};
use runtime::testing::{apply, envelope, read_model_db};

mod fixtures;

use fixtures::{happy_path, lines, placed};

#[tokio::test]
async fn the_projected_happy_path_reads_back_through_the_routes() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    for (index, event) in happy_path().into_iter().enumerate() {
        apply(&pool, &project_order(&envelope("o1", index as i64 + 1, event))).await;
    }
    let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
    assert_eq!(
        order,
        OrderView {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            status: "DELIVERED".into(),
            cancellation_reason: None,
            cancellation_detail: None,
            cancellation_request: None,
            currency: "EUR".into(),
            total_cents: 3000,
            lines: lines(),
            payment: None,
            shipment: Some(ShipmentView { carrier: Some("DHL".into()), tracking_number: Some("T1".into()), status: "SCHEDULED".into() }),
            notifications: vec![],
            created_at: 1_700_000_000_001,
            updated_at: 1_700_000_000_007,
            version: 7,
        }
    );

    let query = |customer_id: Option<&str>, limit: Option<i64>| {
        Ok(Query(ListOrdersParams { customer_id: customer_id.map(Into::into), limit, ..Default::default() }))
    };
    let Json(listed) = list_orders(State(ReadDb(pool.clone())), query(Some("c1"), None)).await.unwrap();
    assert_eq!(listed.orders, [order]);
    assert_eq!(listed.next_cursor, None);
    let Json(none) = list_orders(State(ReadDb(pool.clone())), query(Some("c2"), None)).await.unwrap();
    assert_eq!(none.orders, []);
    for (customer_id, limit) in [(Some("c1"), Some(0)), (Some("c1"), Some(1001))] {
        let error = list_orders(State(ReadDb(pool.clone())), query(customer_id, limit)).await.unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_cancelled_order_shows_why_and_an_unknown_one_is_not_found() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    apply(&pool, &project_order(&envelope("o1", 1, placed()))).await;
    let cancelled = OrderEvent::OrderCancelled {
        customer_id: "c1".into(),
        reason: CancellationReason::PaymentDeclined,
        detail: "INSUFFICIENT_FUNDS".into(),
        lines: lines(),
    };
    apply(&pool, &project_order(&envelope("o1", 2, cancelled))).await;
    let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
    assert_eq!(order.status, "CANCELLED");
    assert_eq!(order.cancellation_reason.as_deref(), Some("PAYMENT_DECLINED"));
    assert_eq!(order.cancellation_detail.as_deref(), Some("INSUFFICIENT_FUNDS"));
    assert_eq!(order.shipment, None);

    let error = get_order(State(ReadDb(pool)), State(ProjectionProgress::default()), Path("nope".into()), Ok(Query(GetOrderParams::default())))
        .await
        .unwrap_err();
    assert_eq!(error.status, axum::http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_cancellation_request_shows_while_pending_and_how_shipping_answered() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let requested = || OrderEvent::OrderCancellationRequested {
        customer_id: "c1".into(),
        reason: CancellationReason::CustomerRequest,
        detail: "changed my mind".into(),
    };
    let confirmed: Vec<OrderEvent> = happy_path().into_iter().take(5).collect();
    for order_id in ["accepted", "refused"] {
        for (version, event) in (1..).zip(confirmed.iter().cloned().chain([requested()])) {
            apply(&pool, &project_order(&envelope(order_id, version, event))).await;
        }
    }
    let pending = load_order(&pool, "accepted").await.unwrap().expect("order");
    assert_eq!((pending.status.as_str(), pending.cancellation_reason.as_deref()), ("CONFIRMED", None));
    let request = |status: &str, refusal: Option<&str>| {
        Some(CancellationRequestView {
            status: status.into(),
            reason: Some("CUSTOMER_REQUEST".into()),
            detail: Some("changed my mind".into()),
            refusal: refusal.map(Into::into),
        })
    };
    assert_eq!(pending.cancellation_request, request("REQUESTED", None));

    let cancelled = OrderEvent::OrderCancelled {
        customer_id: "c1".into(),
        reason: CancellationReason::CustomerRequest,
        detail: "changed my mind".into(),
        lines: lines(),
    };
    apply(&pool, &project_order(&envelope("accepted", 7, cancelled))).await;
    let accepted = load_order(&pool, "accepted").await.unwrap().expect("order");
    assert_eq!((accepted.status.as_str(), accepted.cancellation_reason.as_deref()), ("CANCELLED", Some("CUSTOMER_REQUEST")));
    assert_eq!(accepted.cancellation_request, request("ACCEPTED", None));

    apply(&pool, &project_order(&envelope("refused", 7, OrderEvent::OrderShipped { customer_id: "c1".into() }))).await;
    let refusal = OrderEvent::OrderCancellationRefused { customer_id: "c1".into(), reason: "shipment already dispatched".into() };
    apply(&pool, &project_order(&envelope("refused", 8, refusal))).await;
    let refused = load_order(&pool, "refused").await.unwrap().expect("order");
    assert_eq!((refused.status.as_str(), refused.cancellation_reason.as_deref(), refused.version), ("SHIPPED", None, 8));
    assert_eq!(refused.cancellation_request, request("REFUSED", Some("shipment already dispatched")));

    // A replayed OrderPlaced starts the row over, request included.
    apply(&pool, &project_order(&envelope("refused", 1, placed()))).await;
    assert_eq!(load_order(&pool, "refused").await.unwrap().expect("order").cancellation_request, None);
}

#[tokio::test]
async fn other_streams_join_in_whatever_order_they_arrive_and_pages_follow_the_cursor() {
    use contracts::account::AccountEvent;
    use contracts::notification::{Channel, NotificationEvent, NotificationKind};
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    // The payment arrives before the order it belongs to.
    let captured = AccountEvent::PaymentCaptured { order_id: "o1".into(), amount_cents: 3000, currency: "EUR".into() };
    apply(&pool, &project_payment(&envelope("c1", 2, captured))).await;
    apply(&pool, &project_order_view(&envelope("o1", 1, placed()))).await;
    let scheduled = ShipmentEvent::ShipmentScheduled {
        customer_id: "c1".into(),
        carrier: "DHL".into(),
        tracking_number: "T1".into(),
        destination_country: "DE".into(),
        lines: vec![],
    };
    apply(&pool, &project_shipment(&envelope("o1", 1, scheduled))).await;
    apply(&pool, &project_shipment(&envelope("o1", 2, ShipmentEvent::ShipmentDispatched { customer_id: "c1".into(), lines: vec![] }))).await;
    let sent = NotificationEvent::NotificationSent {
        order_id: "o1".into(),
        kind: NotificationKind::OrderConfirmed,
        channel: Channel::Email,
        recipient: "a@b".into(),
        message: "hi".into(),
    };
    apply(&pool, &project_notification(&envelope("c1", 3, sent))).await;
    let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
    assert_eq!(order.payment, Some(PaymentView { status: "CAPTURED".into(), amount_cents: 3000 }));
    assert_eq!(order.shipment, Some(ShipmentView { carrier: Some("DHL".into()), tracking_number: Some("T1".into()), status: "DISPATCHED".into() }));
    assert_eq!(order.notifications, ["ORDER_CONFIRMED"]);
    let Json(timeline) = get_timeline(State(ReadDb(pool.clone())), Path("o1".into())).await.unwrap();
    // The test kit names events `<aggregate>-e<version>`, so the order's and the shipment's
    // first events share the id `o1-e1` and one entry is kept; real event ids are unique.
    assert_eq!(timeline.len(), 4);

    for n in 2..=3 {
        apply(&pool, &project_order_view(&envelope(&format!("o{n}"), 1, placed()))).await;
    }
    let page = |cursor: Option<String>| Ok(Query(ListOrdersParams { customer_id: Some("c1".into()), limit: Some(2), cursor, status: None }));
    let Json(first) = list_orders(State(ReadDb(pool.clone())), page(None)).await.unwrap();
    assert_eq!(first.orders.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["o1", "o2"]);
    let Json(second) = list_orders(State(ReadDb(pool.clone())), page(first.next_cursor)).await.unwrap();
    assert_eq!(second.orders.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["o3"]);
    assert_eq!(second.next_cursor, None);
    let error = list_orders(State(ReadDb(pool.clone())), page(Some("zz".into()))).await.unwrap_err();
    assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
    let by_status = Ok(Query(ListOrdersParams { status: Some("NOPE".into()), ..Default::default() }));
    assert_eq!(list_orders(State(ReadDb(pool)), by_status).await.unwrap_err().status, axum::http::StatusCode::BAD_REQUEST);
}
