//! Generated hostile commands through every service's command path, as the command processor
//! takes them: bytes → the JSON command (an error is a dead letter) → the command's stateless
//! rules (`Validate`) → `decide` against a fresh aggregate and against one with a history.
//! 10,000 per service (`FUZZ_CASES` for more), built by mutating valid commands
//! (`system_tests::hostile`). None may panic; every refusal has a reason; a command the rules
//! let through is never refused as invalid by the decider (the rules live in one place); the
//! counts per outcome are printed. tests/bad_commands_via_kafka.rs sends such commands through
//! the real command topics.
//!
//! And random bytes through each stream's event decoder (with the stream's own schema as the
//! writer's): an error or an event, never a panic, and never an allocation beyond
//! `MAX_AVRO_ALLOCATION_BYTES` however large a length the bytes claim.
use contracts::{CommandEnvelope, Stream, validate::Validate};
use proptest::{prelude::*, test_runner::TestRunner};
use runtime::{Decider, Rejection};
use serde_json::Value;
use std::collections::BTreeMap;
use system_tests::hostile::{Ids, mutate, mutated_command, templates};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
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
    let strategy = mutated_command(templates.len());
    let result = runner.run(&strategy, |(template, mutations)| {
        let bytes = mutate(&templates[template], &mutations);
        let outcome = match parse(&bytes) {
            Err(_) => "unparseable",
            Ok(envelope) if envelope.command.validate().is_err() => "invalid",
            Ok(envelope) => {
                let mut outcome = "accepted";
                for state in [D::State::default(), lived.clone()] {
                    match decider.decide(&state, &envelope.command) {
                        Ok(events) => {
                            let _ = events.iter().fold(state, D::evolve);
                        }
                        Err(Rejection::Invalid(reason)) => {
                            prop_assert!(
                                false,
                                "{reason:?}: a stateless rule the contract's `validate` lacks, for {}",
                                String::from_utf8_lossy(&bytes)
                            );
                        }
                        Err(Rejection::Refused(reason)) => {
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

/// The stream's templates and, from them, the history the second aggregate has lived.
fn templates_and_history(stream: &str, history: &[usize]) -> (Vec<Value>, Vec<Value>) {
    let templates = templates(stream, &Ids::default());
    let history = history.iter().map(|i| templates[*i].clone()).collect();
    (templates, history)
}

#[test]
fn order_commands() {
    let (templates, history) = templates_and_history("order", &[0, 2, 4]);
    let counts = fuzz(&order_svc::order::OrderDecider, &templates, &history);
    assert!(counts.get("accepted").is_some_and(|n| *n > 0) && counts.get("unparseable").is_some_and(|n| *n > 0), "{counts:?}");
}

#[test]
fn stock_commands() {
    let (templates, history) = templates_and_history("stock", &[0, 1]);
    fuzz(&inventory_svc::stock::StockDecider::default(), &templates, &history);
}

#[test]
fn account_commands() {
    let (templates, history) = templates_and_history("account", &[0, 1]);
    fuzz(&payment_svc::account::AccountDecider, &templates, &history);
}

#[test]
fn shipment_commands() {
    let (templates, history) = templates_and_history("shipment", &[0]);
    fuzz(&shipping_svc::shipment::ShipmentDecider::default(), &templates, &history);
}

#[test]
fn notification_commands() {
    let (templates, history) = templates_and_history("notification", &[1]);
    fuzz(&notify_svc::notification::NotificationDecider::default(), &templates, &history);
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
