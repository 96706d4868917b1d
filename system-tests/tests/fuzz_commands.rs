//! Generated hostile commands through every service's command path, as the command processor
//! takes them: bytes → the JSON command (an error is a dead letter) → the aggregate id rule →
//! `decide` against a fresh aggregate and against one with a history. 10,000 per service
//! (`FUZZ_CASES` for more), built by mutating valid commands: fields replaced by other JSON
//! (strings with control, format and astral characters, huge and negative numbers, floats,
//! nulls, nested values), fields dropped or added, the `type` changed, the bytes cut short.
//! None may panic; every refusal has a reason; the counts per outcome are printed.
//!
//! And random bytes through each stream's event decoder (with the stream's own schema as the
//! writer's): an error or an event, never a panic, and never an allocation beyond
//! `MAX_AVRO_ALLOCATION_BYTES` however large a length the bytes claim.
use contracts::{CommandEnvelope, CommandTarget, Stream};
use proptest::{prelude::*, test_runner::TestRunner};
use runtime::{Decider, Rejection};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Strings a hostile sender would try.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("\u{0}".to_string()),
        Just("o\u{202e}1".to_string()),
        Just("\u{feff}".to_string()),
        Just("\u{1b}[2J".to_string()),
        Just("x".repeat(10_000)),
        Just("EUR".to_string()),
        Just("DE".to_string()),
        Just("o-1".to_string()),
        any::<String>(),
        "\\PC{0,40}",
    ]
}

fn nasty_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(0), Just(-1), Just(i64::from(i32::MAX) + 1)].prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// The field keeps its JSON type (a string stays a string, a number a number), so the
    /// command still parses and its values reach the decider.
    SameKind(usize, String, i64),
    Replace(usize, Value),
    Drop(usize),
    Add(String, Value),
    Type(String),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), nasty_string(), prop_oneof![any::<i64>(), Just(0), Just(-1), Just(i64::from(i32::MAX) + 1), Just(i64::MAX)])
            .prop_map(|(i, text, number)| Mutation::SameKind(i, text, number)),
        2 => (any::<usize>(), nasty_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<usize>().prop_map(Mutation::Drop),
        1 => ("[a-z_]{1,12}", nasty_value()).prop_map(|(k, v)| Mutation::Add(k, v)),
        1 => nasty_string().prop_map(Mutation::Type),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Replaces the strings and numbers in `value` (down into lines and addresses) by `text` and
/// `number`.
fn same_kind(value: &mut Value, text: &str, number: i64) {
    match value {
        Value::String(s) => *s = text.to_string(),
        Value::Number(n) => *n = number.into(),
        Value::Array(items) => items.iter_mut().take(1).for_each(|item| same_kind(item, text, number)),
        Value::Object(fields) => {
            let pick = number.unsigned_abs() as usize % fields.len().max(1);
            if let Some((_, field)) = fields.iter_mut().nth(pick) {
                same_kind(field, text, number);
            }
        }
        _ => {}
    }
}

/// A valid command changed by `mutations`, as the bytes a producer would send.
fn mutate(template: &Value, mutations: &[Mutation]) -> Vec<u8> {
    let mut command = template.clone();
    let mut truncate = None;
    if let Value::Object(fields) = &mut command {
        for mutation in mutations {
            let keys: Vec<String> = fields.keys().cloned().collect();
            match mutation {
                Mutation::SameKind(i, text, number) if !keys.is_empty() => {
                    let key = &keys[i % keys.len()];
                    if key != "type"
                        && let Some(field) = fields.get_mut(key)
                    {
                        same_kind(field, text, *number);
                    }
                }
                Mutation::Replace(i, value) if !keys.is_empty() => {
                    fields.insert(keys[i % keys.len()].clone(), value.clone());
                }
                Mutation::Drop(i) if !keys.is_empty() => {
                    fields.remove(&keys[i % keys.len()]);
                }
                Mutation::Add(key, value) => {
                    fields.insert(key.clone(), value.clone());
                }
                Mutation::Type(name) => {
                    fields.insert("type".into(), Value::String(name.clone()));
                }
                Mutation::Truncate(at) => truncate = Some(*at),
                _ => {}
            }
        }
    }
    let mut bytes = serde_json::to_vec(&command).unwrap_or_default();
    if let Some(at) = truncate {
        bytes.truncate(at % (bytes.len() + 1));
    }
    bytes
}

/// Runs generated commands through one decider, against an empty aggregate and against the
/// state `history` (valid commands decided in order) leads to; returns the outcome counts.
fn fuzz<D: Decider>(decider: &D, templates: &[Value], history: &[Value]) -> BTreeMap<&'static str, u32> {
    let parse = |bytes: &[u8]| serde_json::from_slice::<CommandEnvelope<<D::Stream as Stream>::Command>>(bytes);
    let mut lived = D::State::default();
    for command in history {
        let envelope = parse(&serde_json::to_vec(command).expect("json")).unwrap_or_else(|e| panic!("history command {command}: {e}"));
        let events = decider.decide(&lived, &envelope.command).unwrap_or_else(|r| panic!("history command {command}: {r}"));
        lived = events.iter().fold(lived, D::evolve);
    }
    // The runner takes an `Fn`: the counts are kept behind a cell.
    let counts: std::cell::RefCell<BTreeMap<&'static str, u32>> = Default::default();
    let mut runner = TestRunner::new(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() });
    let strategy = (0..templates.len(), prop::collection::vec(mutation(), 1..4));
    let result = runner.run(&strategy, |(template, mutations)| {
        let bytes = mutate(&templates[template], &mutations);
        let outcome = match parse(&bytes) {
            Err(_) => "unparseable",
            Ok(envelope) if contracts::validate::id(D::Stream::AGGREGATE_ID_FIELD, envelope.command.aggregate_id()).is_err() => "invalid id",
            Ok(envelope) => {
                let mut outcome = "accepted";
                for state in [D::State::default(), lived.clone()] {
                    match decider.decide(&state, &envelope.command) {
                        Ok(events) => {
                            let _ = events.iter().fold(state, D::evolve);
                        }
                        Err(Rejection::Invalid(reason) | Rejection::Refused(reason)) => {
                            prop_assert!(!reason.trim().is_empty(), "a rejection without a reason for {}", String::from_utf8_lossy(&bytes));
                            outcome = "rejected";
                        }
                    }
                }
                outcome
            }
        };
        *counts.borrow_mut().entry(outcome).or_default() += 1;
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{}: {failure}", D::Stream::NAME);
    }
    let counts = counts.into_inner();
    println!("{}: {} generated commands: {counts:?}", D::Stream::NAME, counts.values().sum::<u32>());
    counts
}

fn address() -> Value {
    json!({"name": "Ada", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

#[test]
fn order_commands() {
    let place = json!({"type": "PlaceOrder", "order_id": "o-1", "customer_id": "c-1", "currency": "EUR",
        "lines": [{"sku": "s-1", "quantity": 2, "unit_price_cents": 500}], "shipping_address": address()});
    let templates = [
        place.clone(),
        json!({"type": "CancelOrder", "order_id": "o-1", "reason": "changed my mind"}),
        json!({"type": "RecordStockReserved", "order_id": "o-1", "sku": "s-1", "quantity": 2}),
        json!({"type": "RecordStockRejected", "order_id": "o-1", "sku": "s-1", "requested": 2, "available": 0}),
        json!({"type": "RecordPaymentCaptured", "order_id": "o-1", "amount_cents": 1000}),
        json!({"type": "RecordPaymentDeclined", "order_id": "o-1", "reason": "INSUFFICIENT_FUNDS"}),
        json!({"type": "RecordShipmentScheduled", "order_id": "o-1", "carrier": "DHL", "tracking_number": "T1"}),
        json!({"type": "RecordShipmentRejected", "order_id": "o-1", "reason": "country"}),
        json!({"type": "RecordShipmentDispatched", "order_id": "o-1"}),
        json!({"type": "RecordShipmentDelivered", "order_id": "o-1"}),
        json!({"type": "TimeOutOrder", "order_id": "o-1", "step": "PAYMENT", "deadline_ms": 60000}),
        json!({"type": "RecordShipmentCancelled", "order_id": "o-1"}),
        json!({"type": "RecordShipmentCancellationRefused", "order_id": "o-1", "reason": "dispatched"}),
    ];
    let history = [place, templates[2].clone(), templates[4].clone()];
    let counts = fuzz(&order_svc::order::OrderDecider, &templates, &history);
    assert!(counts.get("accepted").is_some_and(|n| *n > 0) && counts.get("unparseable").is_some_and(|n| *n > 0), "{counts:?}");
}

#[test]
fn stock_commands() {
    let templates = [
        json!({"type": "RestockItem", "sku": "s-1", "quantity": 10}),
        json!({"type": "ReserveStock", "sku": "s-1", "order_id": "o-1", "quantity": 2}),
        json!({"type": "ReleaseStock", "sku": "s-1", "order_id": "o-1"}),
        json!({"type": "ShipStock", "sku": "s-1", "order_id": "o-1"}),
    ];
    let history = [templates[0].clone(), templates[1].clone()];
    fuzz(&inventory_svc::stock::StockDecider, &templates, &history);
}

#[test]
fn account_commands() {
    let templates = [
        json!({"type": "DepositFunds", "customer_id": "c-1", "amount_cents": 10000, "currency": "EUR"}),
        json!({"type": "CapturePayment", "customer_id": "c-1", "order_id": "o-1", "amount_cents": 1000, "currency": "EUR"}),
        json!({"type": "RefundPayment", "customer_id": "c-1", "order_id": "o-1"}),
    ];
    let history = [templates[0].clone(), templates[1].clone()];
    fuzz(&payment_svc::account::AccountDecider, &templates, &history);
}

#[test]
fn shipment_commands() {
    let schedule = json!({"type": "ScheduleShipment", "order_id": "o-1", "customer_id": "c-1", "destination_country": "DE",
        "lines": [{"sku": "s-1", "quantity": 2}]});
    let templates = [
        schedule.clone(),
        json!({"type": "CancelShipment", "order_id": "o-1", "customer_id": "c-1"}),
        json!({"type": "DispatchShipment", "order_id": "o-1"}),
        json!({"type": "ConfirmDelivery", "order_id": "o-1"}),
    ];
    fuzz(&shipping_svc::shipment::ShipmentDecider::default(), &templates, &[schedule]);
}

#[test]
fn notification_commands() {
    let send = json!({"type": "SendNotification", "customer_id": "c-1", "order_id": "o-1", "kind": "ORDER_CONFIRMED", "message": "ok"});
    let templates = [
        json!({"type": "SetPreferences", "customer_id": "c-1", "channel": "SMS", "recipient": "+49 30 1"}),
        send.clone(),
        json!({"type": "RecordDeliveryFailure", "customer_id": "c-1", "order_id": "o-1", "kind": "ORDER_CONFIRMED", "attempt": 1, "error": "500"}),
        json!({"type": "RecordDelivered", "customer_id": "c-1", "order_id": "o-1", "kind": "ORDER_CONFIRMED", "attempts": 1}),
        json!({"type": "ParkDelivery", "customer_id": "c-1", "order_id": "o-1", "kind": "ORDER_CONFIRMED", "attempts": 8, "reason": "500"}),
    ];
    fuzz(&notify_svc::notification::NotificationDecider, &templates, &[send]);
}

fn fuzz_decoder<S: Stream>() -> BTreeMap<&'static str, u32> {
    let codec = runtime::kafka::EventCodec::<S>::new("http://127.0.0.1:9").expect("codec");
    assert_eq!(runtime::kafka::limit_avro_allocation(), runtime::kafka::MAX_AVRO_ALLOCATION_BYTES);
    let schema = apache_avro::Schema::parse_str(S::EVENT_SCHEMA).expect("schema");
    let counts: std::cell::RefCell<BTreeMap<&'static str, u32>> = Default::default();
    let mut runner = TestRunner::new(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() });
    let result = runner.run(&prop::collection::vec(any::<u8>(), 0..400), |bytes| {
        let outcome = match codec.decode_body(1, &schema, &mut bytes.as_slice()) {
            Ok(_) => "decoded",
            Err(runtime::CodecError::Avro(_)) => "malformed",
            Err(_) => "other error",
        };
        *counts.borrow_mut().entry(outcome).or_default() += 1;
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{}: {failure}", S::EVENTS_TOPIC);
    }
    let counts = counts.into_inner();
    println!("{}: {} random bodies: {counts:?}", S::EVENTS_TOPIC, counts.values().sum::<u32>());
    counts
}

#[test]
fn event_decoders_take_any_bytes() {
    fuzz_decoder::<contracts::order::Order>();
    fuzz_decoder::<contracts::stock::Stock>();
    fuzz_decoder::<contracts::account::Account>();
    fuzz_decoder::<contracts::shipment::Shipment>();
    fuzz_decoder::<contracts::notification::Notification>();
}

/// A valid `stock.events` body (a `StockRestocked`), bytes flipped, cut or inserted: the
/// decoder must still answer an event or an error.
#[test]
fn a_valid_event_body_mutated_decodes_or_fails_cleanly() {
    use apache_avro::{types::Value as Avro, writer::datum::GenericDatumWriter};
    let schema = apache_avro::Schema::parse_str(contracts::stock::Stock::EVENT_SCHEMA).expect("schema");
    let uuid = |text: &str| Avro::Uuid(uuid::Uuid::parse_str(text).expect("uuid"));
    let event = Avro::Record(vec![
        ("event_id".into(), uuid("6f1c1c52-3f0e-4c39-9a55-0a4f4b1c2d3e")),
        ("aggregate_id".into(), Avro::String("s-1".into())),
        ("version".into(), Avro::Long(2)),
        ("previous_event_id".into(), Avro::Union(1, Box::new(uuid("0b7d2a10-5c4e-4f7a-8e21-9d3c6b5a4f10")))),
        ("occurred_at".into(), Avro::TimestampMillis(1_700_000_000_000)),
        ("correlation_id".into(), Avro::String("corr".into())),
        ("causation_id".into(), Avro::String("cause".into())),
        ("command_id".into(), Avro::String("cmd".into())),
        ("command_offset".into(), Avro::Long(7)),
        ("payload".into(), Avro::Union(0, Box::new(Avro::Record(vec![("quantity".into(), Avro::Int(10))])))),
    ]);
    let valid = GenericDatumWriter::builder(&schema).build().expect("writer").write_value_to_vec(event).expect("encodes");
    let codec = runtime::kafka::EventCodec::<contracts::stock::Stock>::new("http://127.0.0.1:9").expect("codec");
    assert!(codec.decode_body(1, &schema, &mut valid.as_slice()).is_ok(), "the unmutated body decodes");
    let counts: std::cell::RefCell<BTreeMap<&'static str, u32>> = Default::default();
    let mut runner = TestRunner::new(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() });
    let edits = prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..6);
    let result = runner.run(&edits, |edits| {
        let mut bytes = valid.clone();
        for (at, byte, how) in edits {
            let at = at % (bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
        }
        let outcome = if codec.decode_body(1, &schema, &mut bytes.as_slice()).is_ok() { "decoded" } else { "error" };
        *counts.borrow_mut().entry(outcome).or_default() += 1;
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let counts = counts.into_inner();
    println!("stock.events: {} mutated bodies: {counts:?}", counts.values().sum::<u32>());
    assert!(counts.get("decoded").is_some_and(|n| *n > 0) && counts.get("error").is_some_and(|n| *n > 0), "{counts:?}");
}
