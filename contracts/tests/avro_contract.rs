//! The `.avsc` files and the Rust types must describe the same bytes: every payload variant
//! round-trips through its topic's schema, and union branches are the enum variants in order.
use apache_avro::{Schema, from_value, reader::datum::GenericDatumReader, schema::Schema as S, writer::datum::GenericDatumWriter};
use contracts::{
    EventEnvelope, Stream,
    account::{Account, AccountEvent, DeclineReason},
    notification::{Channel, Notification, NotificationEvent, NotificationKind},
    order::{Address, CancellationReason, Order, OrderEvent, OrderLine},
    shipment::{Shipment, ShipmentEvent, ShipmentLine, TrackingStatus},
    stock::{Stock, StockEvent},
};
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;
use strum::VariantNames;

fn union_branch_names(schema: &Schema) -> Vec<String> {
    let S::Record(record) = schema else { panic!("envelope must be a record") };
    let payload = record.fields.iter().find(|f| f.name == "payload").expect("payload field");
    let S::Union(union) = &payload.schema else { panic!("payload must be a union") };
    union
        .variants()
        .iter()
        .map(|branch| match branch {
            S::Record(r) => r.name.name().to_string(),
            other => panic!("payload branches must be records, got {other:?}"),
        })
        .collect()
}

fn round_trip<T: Stream>(variants: &[&str], payloads: Vec<T::Event>) {
    let schema = Schema::parse_str(T::EVENT_SCHEMA).expect("schema parses");
    assert_eq!(union_branch_names(&schema), variants, "{}: union order must equal enum order", T::EVENTS_TOPIC);
    assert_eq!(payloads.len(), variants.len(), "{}: one example per variant", T::EVENTS_TOPIC);
    let writer = GenericDatumWriter::builder(&schema).build().expect("writer");
    let reader = GenericDatumReader::builder(&schema).build().expect("reader");
    for (version, payload) in payloads.into_iter().enumerate() {
        let event = envelope(version as i64 + 1, payload);
        assert_round_trip(&writer, &reader, &event);
    }
}

fn assert_round_trip<P: Serialize + DeserializeOwned + PartialEq + Debug>(
    writer: &GenericDatumWriter,
    reader: &GenericDatumReader,
    event: &EventEnvelope<P>,
) {
    let bytes = writer.write_ser_to_vec(event).expect("Rust value fits the schema");
    let value = reader.read_value(&mut &bytes[..]).expect("bytes decode with the schema");
    let back: EventEnvelope<P> = from_value(&value).expect("decoded value fits the Rust type");
    assert_eq!(&back, event);
}

fn envelope<P>(version: i64, payload: P) -> EventEnvelope<P> {
    EventEnvelope {
        event_id: "5f0e5d43-8a54-4c38-9d8e-1f7e2a3b4c5d".into(),
        aggregate_id: "agg-1".into(),
        version,
        previous_event_id: (version > 1).then(|| "0b7e8c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e".into()),
        occurred_at: 1_763_700_000_000,
        correlation_id: "corr".into(),
        causation_id: "cause".into(),
        command_id: "cmd".into(),
        command_offset: 42,
        payload,
    }
}

fn address() -> Address {
    Address { name: "Ada".into(), street: "Main 1".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() }
}

fn lines() -> Vec<OrderLine> {
    vec![OrderLine { sku: "sku-1".into(), quantity: 2, unit_price_cents: 1250 }]
}

#[test]
fn order_events_match_schema() {
    use OrderEvent::*;
    let customer_id = || "cust-1".to_string();
    round_trip::<Order>(
        OrderEvent::VARIANTS,
        vec![
            OrderPlaced { customer_id: customer_id(), lines: lines(), currency: "EUR".into(), shipping_address: address(), total_cents: 2500 },
            OrderLineReserved { sku: "sku-1".into(), quantity: 2 },
            OrderStockReserved { customer_id: customer_id(), total_cents: 2500, currency: "EUR".into() },
            OrderPaid { customer_id: customer_id(), amount_cents: 2500, currency: "EUR".into(), shipping_address: address(), lines: lines() },
            OrderConfirmed { customer_id: customer_id(), carrier: "DHL".into(), tracking_number: "T1".into() },
            OrderShipped { customer_id: customer_id() },
            OrderDelivered { customer_id: customer_id() },
            OrderCancelled {
                customer_id: customer_id(),
                reason: CancellationReason::ShippingUnavailable,
                detail: "no carrier".into(),
                lines: lines(),
            },
            OrderCancellationRequested { customer_id: customer_id(), reason: CancellationReason::CustomerRequest, detail: "changed my mind".into() },
            OrderCancellationRefused { customer_id: customer_id(), reason: "shipment already dispatched".into() },
        ],
    );
}

#[test]
fn stock_events_match_schema() {
    use StockEvent::*;
    round_trip::<Stock>(
        StockEvent::VARIANTS,
        vec![
            StockRestocked { quantity: 5 },
            StockReserved { order_id: "o1".into(), quantity: 2 },
            StockReservationRejected { order_id: "o1".into(), requested: 3, available: 1 },
            StockReleased { order_id: "o1".into(), quantity: 2 },
            StockShipped { order_id: "o1".into(), quantity: 2 },
            LowStockThresholdSet { threshold: 5 },
            StockLow { sku: "sku-1".into(), available: 3, threshold: 5 },
            StockReplenished { sku: "sku-1".into(), available: 3_000_000_000, threshold: 5 },
        ],
    );
}

#[test]
fn account_events_match_schema() {
    use AccountEvent::*;
    round_trip::<Account>(
        AccountEvent::VARIANTS,
        vec![
            FundsDeposited { amount_cents: 10_000, currency: "EUR".into() },
            PaymentCaptured { order_id: "o1".into(), amount_cents: 2500, currency: "EUR".into() },
            PaymentDeclined { order_id: "o1".into(), amount_cents: 2500, reason: DeclineReason::InsufficientFunds },
            PaymentRefunded { order_id: "o1".into(), amount_cents: 2500, currency: "EUR".into() },
        ],
    );
}

#[test]
fn shipment_events_match_schema() {
    use ShipmentEvent::*;
    let lines = || vec![ShipmentLine { sku: "sku-1".into(), quantity: 2 }];
    round_trip::<Shipment>(
        ShipmentEvent::VARIANTS,
        vec![
            ShipmentScheduled {
                customer_id: "c".into(),
                carrier: "DHL".into(),
                tracking_number: "T1".into(),
                destination_country: "DE".into(),
                lines: lines(),
                shipping_address: None,
            },
            ShipmentRejected { customer_id: "c".into(), reason: "country not served".into(), destination_country: "AQ".into() },
            ShipmentCancelled { customer_id: "c".into() },
            ShipmentDispatched { customer_id: "c".into(), lines: lines() },
            ShipmentDelivered { customer_id: "c".into() },
            ShipmentCancellationRefused { customer_id: "c".into(), reason: "shipment already dispatched".into() },
            ShipmentTrackingUpdated {
                customer_id: "c".into(),
                status: TrackingStatus::OutForDelivery,
                location: "Berlin".into(),
                at: 1_764_700_000_000,
            },
        ],
    );
}

#[test]
fn notification_events_match_schema() {
    use NotificationEvent::*;
    round_trip::<Notification>(
        NotificationEvent::VARIANTS,
        vec![
            PreferencesSet { channel: Channel::Sms, recipient: "+49 30 1234".into() },
            NotificationSent {
                order_id: "o1".into(),
                kind: NotificationKind::RefundIssued,
                channel: Channel::Email,
                recipient: "a@example.org".into(),
                message: "refunded".into(),
            },
            NotificationDeliveryFailed {
                order_id: "o1".into(),
                kind: NotificationKind::RefundIssued,
                attempt: 2,
                error: "webhook answered HTTP 500".into(),
            },
            NotificationDelivered { order_id: "o1".into(), kind: NotificationKind::OrderShipped, attempts: 3 },
            NotificationParked {
                order_id: "o1".into(),
                kind: NotificationKind::OrderConfirmed,
                attempts: 8,
                reason: "webhook answered HTTP 503".into(),
            },
            OptOutSet { kinds: vec![NotificationKind::OrderShipped, NotificationKind::StockLow] },
        ],
    );
}

#[test]
fn every_notification_kind_is_a_symbol_of_the_schema() {
    let schema = Schema::parse_str(Notification::EVENT_SCHEMA).expect("schema parses");
    let writer = GenericDatumWriter::builder(&schema).build().expect("writer");
    let reader = GenericDatumReader::builder(&schema).build().expect("reader");
    use NotificationKind::*;
    for kind in [
        OrderConfirmed,
        OrderCancelled,
        OrderShipped,
        RefundIssued,
        OrderCancellationRefused,
        StockLow,
        ShipmentOutForDelivery,
        ShipmentDeliveryFailed,
    ] {
        let sent = NotificationEvent::NotificationSent {
            order_id: "o1".into(),
            kind,
            channel: Channel::Email,
            recipient: "a@example.org".into(),
            message: "m".into(),
        };
        assert_round_trip(&writer, &reader, &envelope(1, sent));
    }
}

#[test]
fn a_cancel_shipment_without_a_customer_still_parses() {
    use contracts::{CommandEnvelope, shipment::ShipmentCommand};
    let parsed: CommandEnvelope<ShipmentCommand> = serde_json::from_str(r#"{"type":"CancelShipment","order_id":"o-1"}"#).expect("parses");
    assert_eq!(parsed.command, ShipmentCommand::CancelShipment { order_id: "o-1".into(), customer_id: None });
}

#[test]
fn commands_parse_from_kcat_json() {
    use contracts::{CommandEnvelope, CommandTarget, order::OrderCommand};
    let json = r#"{"type":"PlaceOrder","order_id":"o-1","customer_id":"c-1","lines":[{"sku":"s","quantity":1,"unit_price_cents":100}],"currency":"EUR","shipping_address":{"name":"n","street":"s","city":"c","postal_code":"p","country":"DE"}}"#;
    let parsed: CommandEnvelope<OrderCommand> = serde_json::from_str(json).expect("parses");
    assert_eq!(parsed.command_id, None);
    assert_eq!(parsed.command.aggregate_id(), "o-1");
    assert_eq!(parsed.command.command_type(), "PlaceOrder");
    let with_id: CommandEnvelope<OrderCommand> =
        serde_json::from_str(r#"{"type":"CancelOrder","order_id":"o-1","command_id":"abc"}"#).expect("parses");
    assert_eq!(with_id.command_id.as_deref(), Some("abc"));
    assert!(serde_json::from_str::<CommandEnvelope<OrderCommand>>(r#"{"type":"Nope","order_id":"o"}"#).is_err());
}

/// The `CancellationReason` Avro enum as the schema file declares it.
fn cancellation_reason_symbols(schema_json: &serde_json::Value) -> Vec<String> {
    fn find(value: &serde_json::Value) -> Option<&serde_json::Value> {
        match value {
            serde_json::Value::Object(map) if map.get("name").and_then(|n| n.as_str()) == Some("CancellationReason") => Some(value),
            serde_json::Value::Object(map) => map.values().find_map(find),
            serde_json::Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let reason = find(schema_json).expect("the schema declares CancellationReason");
    reason["symbols"].as_array().expect("an enum has symbols").iter().map(|s| s.as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn every_cancellation_reason_is_a_symbol_in_order_and_round_trips() {
    use strum::VariantArray;
    let json: serde_json::Value = serde_json::from_str(Order::EVENT_SCHEMA).expect("the schema is JSON");
    let names: Vec<&'static str> = CancellationReason::VARIANTS.iter().map(|reason| reason.into()).collect();
    assert_eq!(cancellation_reason_symbols(&json), names, "enum symbols must be the variants, in order (append only)");
    let schema = Schema::parse_str(Order::EVENT_SCHEMA).expect("schema parses");
    let writer = GenericDatumWriter::builder(&schema).build().expect("writer");
    let reader = GenericDatumReader::builder(&schema).build().expect("reader");
    for reason in CancellationReason::VARIANTS {
        let cancelled = OrderEvent::OrderCancelled { customer_id: "cust-1".into(), reason: *reason, detail: "why".into(), lines: lines() };
        assert_round_trip(&writer, &reader, &envelope(3, cancelled));
    }
}

/// `TIMEOUT` was appended to the enum: the new schema must read what the schema without it
/// wrote, the registry's BACKWARD check (the same apache-avro check, schema-registry/src/compatibility.rs).
#[test]
fn appending_timeout_to_the_cancellation_reasons_is_backward_compatible() {
    use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
    let before = Order::EVENT_SCHEMA.replace(",\n                  \"TIMEOUT\"", "");
    assert_ne!(before, Order::EVENT_SCHEMA, "the schema lists TIMEOUT where this test expects it");
    let (old, new) = (Schema::parse_str(&before).expect("old schema"), Schema::parse_str(Order::EVENT_SCHEMA).expect("new schema"));
    assert!(matches!(SchemaCompatibility::can_read(&old, &new), Ok(Compatibility::Full)), "the new schema reads what the old one wrote");
}

#[test]
fn a_time_out_order_parses_with_or_without_its_deadline_and_only_for_a_known_step() {
    use contracts::{CommandEnvelope, CommandTarget, order::OrderCommand, order::SagaStep};
    let parse = |json: &str| serde_json::from_str::<CommandEnvelope<OrderCommand>>(json).map(|envelope| envelope.command);
    let typed = parse(r#"{"type":"TimeOutOrder","order_id":"o-1","step":"STOCK"}"#).expect("parses");
    assert_eq!(typed, OrderCommand::TimeOutOrder { order_id: "o-1".into(), step: SagaStep::Stock, deadline_ms: None });
    assert_eq!(typed.aggregate_id(), "o-1");
    let fired = parse(r#"{"type":"TimeOutOrder","order_id":"o-1","step":"SHIPMENT","deadline_ms":120000}"#).expect("parses");
    assert_eq!(fired, OrderCommand::TimeOutOrder { order_id: "o-1".into(), step: SagaStep::Shipment, deadline_ms: Some(120_000) });
    assert!(parse(r#"{"type":"TimeOutOrder","order_id":"o-1","step":"SOON"}"#).is_err());
    assert!(parse(r#"{"type":"TimeOutOrder","order_id":"o-1"}"#).is_err(), "the step is required");
}

/// `schema_json` as it was before `branches` were appended to its payload union.
fn without_payload_branches(schema_json: &str, branches: &[&str]) -> String {
    let mut schema: serde_json::Value = serde_json::from_str(schema_json).expect("schema is JSON");
    let fields = schema["fields"].as_array_mut().expect("fields");
    let payload = fields.iter_mut().find(|field| field["name"] == "payload").expect("payload field");
    let union = payload["type"].as_array_mut().expect("payload is a union");
    let before = union.len();
    union.retain(|branch| !branches.iter().any(|name| branch["name"] == *name));
    assert_eq!(union.len() + branches.len(), before, "every branch named is in the schema");
    schema.to_string()
}

/// `schema_json` as it was before `appended` were appended to the enum `enum_name`.
fn without_symbols(schema_json: &str, enum_name: &str, appended: &[&str]) -> String {
    fn visit(value: &mut serde_json::Value, enum_name: &str, appended: &[&str]) -> bool {
        match value {
            serde_json::Value::Object(object)
                if object.get("type").is_some_and(|t| t == "enum") && object.get("name").is_some_and(|n| n == enum_name) =>
            {
                let symbols = object.get_mut("symbols").and_then(|s| s.as_array_mut()).expect("symbols");
                let kept = symbols.len() - appended.len();
                assert_eq!(
                    symbols[kept..],
                    appended.iter().map(|symbol| serde_json::json!(symbol)).collect::<Vec<_>>(),
                    "{enum_name} ends with {appended:?}"
                );
                symbols.truncate(kept);
                true
            }
            serde_json::Value::Object(object) => object.values_mut().any(|child| visit(child, enum_name, appended)),
            serde_json::Value::Array(items) => items.iter_mut().any(|child| visit(child, enum_name, appended)),
            _ => false,
        }
    }
    let mut schema: serde_json::Value = serde_json::from_str(schema_json).expect("schema is JSON");
    assert!(visit(&mut schema, enum_name, appended), "the schema defines the enum {enum_name}");
    schema.to_string()
}

/// Low-stock alerts appended three branches to `stock.events`, tracking updates one to
/// `shipment.events`, both their kinds to the notifications and opting out a branch there:
/// the new schemas pass the registry's
/// BACKWARD check over the ones before them, and what the old ones wrote still reads as the
/// same Rust value.
#[test]
fn the_shops_additions_evolve_the_schemas_backward_compatibly() {
    use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
    let stock_before = without_payload_branches(Stock::EVENT_SCHEMA, &["LowStockThresholdSet", "StockLow", "StockReplenished"]);
    let shipment_before = without_payload_branches(Shipment::EVENT_SCHEMA, &["ShipmentTrackingUpdated"]);
    let notification_before = without_symbols(
        &without_payload_branches(Notification::EVENT_SCHEMA, &["OptOutSet"]),
        "NotificationKind",
        &["STOCK_LOW", "SHIPMENT_OUT_FOR_DELIVERY", "SHIPMENT_DELIVERY_FAILED"],
    );
    for (before, now) in
        [(&stock_before, Stock::EVENT_SCHEMA), (&shipment_before, Shipment::EVENT_SCHEMA), (&notification_before, Notification::EVENT_SCHEMA)]
    {
        let (old, new) = (Schema::parse_str(before).expect("old schema"), Schema::parse_str(now).expect("new schema"));
        assert!(matches!(SchemaCompatibility::can_read(&old, &new), Ok(Compatibility::Full)), "the new schema reads what the old one wrote");
    }

    // Readers decode with the writer's schema (the registry hands it out by id) and map its
    // branches to ours by name (runtime's EventCodec). Resolving against the new schema instead
    // would not do: apache-avro takes the first branch the record fits, so a StockShipped
    // {order_id, quantity} would come out as a StockRestocked {quantity}.
    let old = Schema::parse_str(&stock_before).expect("old schema");
    let event = envelope(4, StockEvent::StockShipped { order_id: "o1".into(), quantity: 2 });
    let bytes = GenericDatumWriter::builder(&old).build().expect("writer").write_ser_to_vec(&event).expect("fits the old schema");
    let value = GenericDatumReader::builder(&old).build().expect("reader").read_value(&mut &bytes[..]).expect("old bytes read");
    assert_eq!(from_value::<EventEnvelope<StockEvent>>(&value).expect("fits the Rust type"), event);
}
