//! Generated hostile commands, shared by the in-process fuzzing of the deciders
//! (tests/fuzz_commands.rs) and the flood of bad commands through the real command topics
//! (tests/bad_commands_via_kafka.rs). Commands are made by mutating valid ones ([`templates`]):
//! fields replaced by other JSON (strings with control, format and astral characters, huge and
//! negative numbers, floats, nulls, nested values), fields dropped or added, the `type`
//! changed, the bytes cut short.
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Strings a hostile sender would try.
pub fn nasty_string() -> impl Strategy<Value = String> {
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

pub fn nasty_value() -> impl Strategy<Value = Value> {
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
pub enum Mutation {
    /// The field keeps its JSON type (a string stays a string, a number a number), so the
    /// command still parses and its values reach the rules and the decider.
    SameKind(usize, String, i64),
    Replace(usize, Value),
    Drop(usize),
    Add(String, Value),
    Type(String),
    Truncate(usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
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

/// Which of `templates` templates to mutate, and how: 1 to 3 mutations.
pub fn mutated_command(templates: usize) -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (0..templates, prop::collection::vec(mutation(), 1..4))
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
pub fn mutate(template: &Value, mutations: &[Mutation]) -> Vec<u8> {
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

/// The aggregates the templates address.
#[derive(Debug, Clone)]
pub struct Ids {
    pub order: String,
    pub customer: String,
    pub sku: String,
}

impl Default for Ids {
    fn default() -> Self {
        Ids { order: "o-1".into(), customer: "c-1".into(), sku: "s-1".into() }
    }
}

fn address() -> Value {
    json!({"name": "Ada", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

/// One valid command of every type of the stream called `stream` (`order`, `stock`, ...), the
/// ones a history starts with first (see each stream's arm).
pub fn templates(stream: &str, ids: &Ids) -> Vec<Value> {
    let Ids { order, customer, sku } = ids;
    match stream {
        // PlaceOrder first, then RecordStockReserved (2) and RecordPaymentCaptured (4) for a history.
        "order" => vec![
            json!({"type": "PlaceOrder", "order_id": order, "customer_id": customer, "currency": "EUR",
                "lines": [{"sku": sku, "quantity": 2, "unit_price_cents": 500}], "shipping_address": address()}),
            json!({"type": "CancelOrder", "order_id": order, "reason": "changed my mind"}),
            json!({"type": "RecordStockReserved", "order_id": order, "sku": sku, "quantity": 2}),
            json!({"type": "RecordStockRejected", "order_id": order, "sku": sku, "requested": 2, "available": 0}),
            json!({"type": "RecordPaymentCaptured", "order_id": order, "amount_cents": 1000}),
            json!({"type": "RecordPaymentDeclined", "order_id": order, "reason": "INSUFFICIENT_FUNDS"}),
            json!({"type": "RecordShipmentScheduled", "order_id": order, "carrier": "DHL", "tracking_number": "T1"}),
            json!({"type": "RecordShipmentRejected", "order_id": order, "reason": "country"}),
            json!({"type": "RecordShipmentDispatched", "order_id": order}),
            json!({"type": "RecordShipmentDelivered", "order_id": order}),
            json!({"type": "TimeOutOrder", "order_id": order, "step": "PAYMENT", "deadline_ms": 60000}),
            json!({"type": "RecordShipmentCancelled", "order_id": order}),
            json!({"type": "RecordShipmentCancellationRefused", "order_id": order, "reason": "dispatched"}),
        ],
        // RestockItem, then ReserveStock.
        "stock" => vec![
            json!({"type": "RestockItem", "sku": sku, "quantity": 10}),
            json!({"type": "ReserveStock", "sku": sku, "order_id": order, "quantity": 2}),
            json!({"type": "ReleaseStock", "sku": sku, "order_id": order}),
            json!({"type": "ShipStock", "sku": sku, "order_id": order}),
            json!({"type": "SetLowStockThreshold", "sku": sku, "threshold": 5}),
        ],
        // DepositFunds, then CapturePayment.
        "account" => vec![
            json!({"type": "DepositFunds", "customer_id": customer, "amount_cents": 10000, "currency": "EUR"}),
            json!({"type": "CapturePayment", "customer_id": customer, "order_id": order, "amount_cents": 1000, "currency": "EUR"}),
            json!({"type": "RefundPayment", "customer_id": customer, "order_id": order}),
        ],
        // ScheduleShipment first.
        "shipment" => vec![
            json!({"type": "ScheduleShipment", "order_id": order, "customer_id": customer, "destination_country": "DE",
                "lines": [{"sku": sku, "quantity": 2}]}),
            json!({"type": "CancelShipment", "order_id": order, "customer_id": customer}),
            json!({"type": "DispatchShipment", "order_id": order}),
            json!({"type": "ConfirmDelivery", "order_id": order}),
            json!({"type": "RecordTrackingUpdate", "order_id": order, "status": "IN_TRANSIT", "location": "Hamburg hub", "at": 1_764_700_000_000_i64}),
        ],
        // SendNotification second: the outcomes after it concern it.
        "notification" => vec![
            json!({"type": "SetPreferences", "customer_id": customer, "channel": "SMS", "recipient": "+49 30 1", "opt_out": ["ORDER_SHIPPED"]}),
            json!({"type": "SendNotification", "customer_id": customer, "order_id": order, "kind": "ORDER_CONFIRMED", "fields": {"carrier": "DHL", "tracking_number": "T1"}}),
            json!({"type": "RecordDeliveryFailure", "customer_id": customer, "order_id": order, "kind": "ORDER_CONFIRMED", "attempt": 1, "error": "500"}),
            json!({"type": "RecordDelivered", "customer_id": customer, "order_id": order, "kind": "ORDER_CONFIRMED", "attempts": 1}),
            json!({"type": "ParkDelivery", "customer_id": customer, "order_id": order, "kind": "ORDER_CONFIRMED", "attempts": 8, "reason": "500"}),
        ],
        other => panic!("no templates for stream {other:?}"),
    }
}
