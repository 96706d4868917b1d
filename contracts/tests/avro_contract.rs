//! The `.avsc` files and the Rust types must describe the same bytes: every payload variant
//! round-trips through its topic's schema, and union branches are the enum variants in order.
use apache_avro::{Schema, from_value, reader::datum::GenericDatumReader, schema::Schema as S, writer::datum::GenericDatumWriter};
use contracts::{
    EventEnvelope, Stream,
    account::{Account, AccountEvent, DeclineReason},
    notification::{Channel, Notification, NotificationEvent, NotificationKind},
    order::{Address, CancellationReason, Order, OrderEvent, OrderLine},
    shipment::{Shipment, ShipmentEvent, ShipmentLine},
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
            },
            ShipmentRejected { customer_id: "c".into(), reason: "country not served".into(), destination_country: "AQ".into() },
            ShipmentCancelled { customer_id: "c".into() },
            ShipmentDispatched { customer_id: "c".into(), lines: lines() },
            ShipmentDelivered { customer_id: "c".into() },
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
        ],
    );
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
