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
    load_customer_orders, load_order, load_timeline, order_events, project_notification, project_order, project_order_view, project_payment,
    project_shipment,
};
use runtime::http::{ProjectionProgress, ReadDb};
use runtime::testing::{apply, envelope, read_model_db};

mod fixtures;

use fixtures::{happy_path, lines, placed};

/// Shipping's events of order o1 (customer c1): scheduled with DHL (tracking number T1) at
/// version 1, dispatched at 2.
async fn ship_o1_with_dhl(pool: &sqlx::AnyPool) {
    let scheduled = ShipmentEvent::ShipmentScheduled {
        customer_id: "c1".into(),
        carrier: "DHL".into(),
        tracking_number: "T1".into(),
        destination_country: "DE".into(),
        lines: vec![],
        shipping_address: None,
    };
    apply(pool, &project_shipment(&envelope("o1", 1, scheduled))).await;
    apply(pool, &project_shipment(&envelope("o1", 2, ShipmentEvent::ShipmentDispatched { customer_id: "c1".into(), lines: vec![] }))).await;
}

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
            shipment: Some(ShipmentView {
                carrier: Some("DHL".into()),
                tracking_number: Some("T1".into()),
                status: "SCHEDULED".into(),
                tracking: None
            }),
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
    ship_o1_with_dhl(&pool).await;
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
    assert_eq!(
        order.shipment,
        Some(ShipmentView { carrier: Some("DHL".into()), tracking_number: Some("T1".into()), status: "DISPATCHED".into(), tracking: None })
    );
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

#[tokio::test]
async fn the_shipment_shows_the_carriers_latest_report_and_operations_alerts_stay_out() {
    use contracts::notification::{Channel, NotificationEvent, NotificationKind};
    use contracts::shipment::TrackingStatus;
    use order_svc::read_model::TrackingView;
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    apply(&pool, &project_order_view(&envelope("o1", 1, placed()))).await;
    ship_o1_with_dhl(&pool).await;
    let report =
        |status, location: &str, at| ShipmentEvent::ShipmentTrackingUpdated { customer_id: "c1".into(), status, location: location.into(), at };
    apply(&pool, &project_shipment(&envelope("o1", 3, report(TrackingStatus::OutForDelivery, "Berlin", 2_000)))).await;
    // An earlier report the carrier sent late does not replace the later one.
    apply(&pool, &project_shipment(&envelope("o1", 4, report(TrackingStatus::InTransit, "Hamburg hub", 1_000)))).await;
    let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
    let tracking = order.shipment.and_then(|shipment| shipment.tracking);
    assert_eq!(tracking, Some(TrackingView { status: "OUT_FOR_DELIVERY".into(), location: "Berlin".into(), at: 2_000 }));
    let Json(timeline) = get_timeline(State(ReadDb(pool.clone())), Path("o1".into())).await.unwrap();
    assert_eq!(timeline.iter().filter(|entry| entry.event_type == "ShipmentTrackingUpdated").count(), 2, "{timeline:?}");

    // An operations alert names no order: it joins no order's view or timeline.
    let alert = NotificationEvent::NotificationSent {
        order_id: "o1".into(),
        kind: NotificationKind::StockLow,
        channel: Channel::Email,
        recipient: "ops".into(),
        message: "Stock of sku-1 is low".into(),
    };
    assert_eq!(project_notification(&envelope("ops", 1, alert)), vec![]);
}

/// (event, id) of each event in an SSE body.
fn sse_events(body: &str) -> Vec<(String, Option<String>)> {
    body.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::to_string);
            Some((field("event: ")?, field("id: ")))
        })
        .collect()
}

#[tokio::test]
async fn a_final_orders_event_stream_is_its_view_its_entries_and_end_and_resumes_after_any_id() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    for (index, event) in happy_path().into_iter().enumerate() {
        apply(&pool, &project_order_view(&envelope("o1", index as i64 + 1, event))).await;
    }
    let stream = |order_id: &str, last_event_id: Option<&str>| {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(id) = last_event_id {
            headers.insert("last-event-id", id.parse().expect("header value"));
        }
        order_events(State(ReadDb(pool.clone())), State(ProjectionProgress::default()), Path(order_id.into()), headers)
    };
    let read = |response: axum::response::Response| async move {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body that ends");
        sse_events(std::str::from_utf8(&bytes).expect("utf-8"))
    };
    // DELIVERED is final, so the stream ends by itself.
    let full = read(stream("o1", None).await.expect("a stream")).await;
    let kinds: Vec<&str> = full.iter().map(|(event, _)| event.as_str()).collect();
    assert_eq!(kinds, ["view", "timeline", "timeline", "timeline", "timeline", "timeline", "timeline", "timeline", "end"]);
    assert!(full.iter().all(|(event, id)| id.is_some() == (event == "timeline")), "{full:?}");
    assert_eq!(load_timeline(&pool, "o1").await.unwrap().len(), 7);

    let ids: Vec<String> = full.iter().filter_map(|(_, id)| id.clone()).collect();
    for (k, id) in ids.iter().enumerate() {
        let resumed = read(stream("o1", Some(id)).await.expect("a stream")).await;
        let again: Vec<String> = resumed.iter().filter_map(|(_, id)| id.clone()).collect();
        assert_eq!(again, ids[k + 1..], "resumed after {id}");
        assert_eq!((resumed.first().map(|e| e.0.as_str()), resumed.last().map(|e| e.0.as_str())), (Some("view"), Some("end")));
    }

    assert_eq!(stream("nope", None).await.err().map(|e| e.status.as_u16()), Some(404));
    assert_eq!(stream("o1", Some("order.events:~:x")).await.err().map(|e| e.status.as_u16()), Some(400));
    // The customer stream's read: every order with its own notifications, as one order's read.
    use contracts::notification::{Channel, NotificationEvent, NotificationKind};
    apply(&pool, &project_order_view(&envelope("o2", 1, placed()))).await;
    for (version, (order_id, kind)) in
        [("o1", NotificationKind::OrderConfirmed), ("o2", NotificationKind::OrderCancelled), ("o1", NotificationKind::OrderShipped)]
            .into_iter()
            .enumerate()
    {
        let sent = NotificationEvent::NotificationSent {
            order_id: order_id.into(),
            kind,
            channel: Channel::Email,
            recipient: "a@b".into(),
            message: "hi".into(),
        };
        apply(&pool, &project_notification(&envelope("c1", version as i64 + 1, sent))).await;
    }
    let o1 = load_order(&pool, "o1").await.unwrap().expect("order o1");
    let o2 = load_order(&pool, "o2").await.unwrap().expect("order o2");
    assert_eq!((o1.notifications.len(), o2.notifications.len()), (2, 1));
    assert_eq!(load_customer_orders(&pool, "c1").await.unwrap(), [o1, o2]);
    assert_eq!(load_customer_orders(&pool, "c2").await.unwrap(), []);
}
