//! 10,000 generated bad commands (`system_tests::hostile`, 2,000 per stream) through the real
//! command topics, produced by the stack's producer as a kcat user would. Each is either
//! malformed (not a command, or breaking a stateless rule of its type) and must come out on
//! `<stream>.commands.dlq` with `dlq.error.kind` and a reason, or well-formed but refused by
//! its (empty) aggregate and must come out on `<stream>.rejections` with a reason. Every one is
//! accounted for by reading those topics back (dead letters by their source position,
//! rejections by command id); the counts per service are printed. No service dies or restarts
//! a loop, and control aggregates placed before and after the flood are unaffected.
use contracts::{CommandEnvelope, CommandTarget, Stream, validate::Validate};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};
use rdkafka::{Message, message::Headers};
use runtime::{Decider, Rejection};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use system_tests::{Stack, commands::place_order, hostile, unique};

const PER_STREAM: usize = 2_000;
const WAIT: Duration = Duration::from_secs(90);
/// Concurrent producing tasks: each awaits its deliveries one by one.
const PRODUCERS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Unparseable or breaking a stateless rule: a dead letter of the record.
    DeadLetter,
    /// Well-formed, refused by the empty aggregate: a rejection of this command id.
    Rejection(String),
}

struct Bad {
    service: &'static str,
    topic: &'static str,
    key: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// `wanted` generated commands of `D`'s stream that must not be accepted: malformed ones, and
/// well-formed ones the decider refuses on an empty aggregate of ours (`ours` are the ids the
/// templates address, unique to this run, so the real aggregates are empty too: no kept
/// command has an effect). Commands that would be accepted are left out.
fn bad_commands<D: Decider>(decider: &D, service: &'static str, ids: &hostile::Ids, wanted: usize, seed: u8) -> Vec<Bad> {
    let stream = <D::Stream as Stream>::NAME;
    let templates = hostile::templates(stream, ids);
    let ours = [&ids.order, &ids.customer, &ids.sku];
    let key = match stream {
        "order" | "shipment" => ids.order.clone(),
        "stock" => ids.sku.clone(),
        _ => ids.customer.clone(),
    };
    let strategy = hostile::mutated_command(templates.len());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]));
    let mut bad = Vec::with_capacity(wanted);
    while bad.len() < wanted {
        let (template, mutations) = strategy.new_tree(&mut runner).expect("a generated command").current();
        let bytes = hostile::mutate(&templates[template], &mutations);
        let parsed = serde_json::from_slice::<CommandEnvelope<<D::Stream as Stream>::Command>>(&bytes);
        let expect = match &parsed {
            Err(_) => Expect::DeadLetter,
            Ok(envelope) if envelope.command.validate().is_err() => Expect::DeadLetter,
            Ok(envelope) => match decider.decide(&D::State::default(), &envelope.command) {
                Err(Rejection::Refused(_)) if ours.iter().any(|id| *id == envelope.command.aggregate_id()) => Expect::Rejection(unique("bad-cmd")),
                Err(Rejection::Invalid(reason)) => panic!("{stream}: {reason:?} is a stateless rule `validate` lacks"),
                _ => continue,
            },
        };
        let bytes = match &expect {
            Expect::DeadLetter => bytes,
            Expect::Rejection(command_id) => {
                let mut command: Value = serde_json::from_slice(&bytes).expect("parsed above");
                command["command_id"] = Value::String(command_id.clone());
                serde_json::to_vec(&command).expect("json")
            }
        };
        bad.push(Bad { service, topic: <D::Stream as Stream>::COMMANDS_TOPIC, key: key.clone(), bytes, expect });
    }
    bad
}

/// What came out on the dead-letter and rejection topics since `from`.
#[derive(Default)]
struct Outcomes {
    /// (source topic, partition, offset) → (kind, reason).
    dead_letters: HashMap<(String, i32, i64), (String, String)>,
    /// command id → reason.
    rejections: HashMap<String, String>,
    /// Where reading goes on, per (topic, partition).
    next: HashMap<(String, i32), i64>,
}

fn outcome_topics() -> Vec<String> {
    contracts::COMMAND_TOPICS
        .iter()
        .flat_map(|topic| {
            let stream = topic.trim_end_matches(".commands");
            [contracts::dead_letter_topic(topic), contracts::rejections_topic(stream)]
        })
        .collect()
}

impl Outcomes {
    /// Starts at the current end of every outcome topic: what comes later is this test's.
    fn from_end(brokers: &str) -> Outcomes {
        let reader = runtime::kafka::reader(brokers).expect("reader");
        let mut outcomes = Outcomes::default();
        for topic in outcome_topics() {
            let partitions = runtime::kafka::partition_count(&reader, &topic).expect("outcome topic exists");
            for partition in 0..partitions {
                let (_, high) = runtime::kafka::watermarks(&reader, &topic, partition).expect("watermarks");
                outcomes.next.insert((topic.clone(), partition), high);
            }
        }
        outcomes
    }

    /// Reads what was appended since the last call.
    fn read_more(&mut self, brokers: &str) {
        let reader = runtime::kafka::reader(brokers).expect("reader");
        for ((topic, partition), next) in self.next.iter_mut() {
            let (_, high) = runtime::kafka::watermarks(&reader, topic, *partition).expect("watermarks");
            if high <= *next {
                continue;
            }
            let (dead_letters, rejections) = (&mut self.dead_letters, &mut self.rejections);
            runtime::kafka::read_range(&reader, topic, *partition, *next, high, |m| {
                let header = |name: &str| {
                    m.headers()
                        .and_then(|hs| hs.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                if topic.ends_with(".dlq") {
                    let source = (
                        header("dlq.source.topic").unwrap_or_default(),
                        header("dlq.source.partition").and_then(|p| p.parse().ok()).unwrap_or(-1),
                        header("dlq.source.offset").and_then(|o| o.parse().ok()).unwrap_or(-1),
                    );
                    dead_letters.insert(source, (header("dlq.error.kind").unwrap_or_default(), header("dlq.error.reason").unwrap_or_default()));
                } else if let Some(record) = m.payload().and_then(|p| serde_json::from_slice::<Value>(p).ok()) {
                    let reason = record["reason"].as_str().unwrap_or_default().to_string();
                    rejections.insert(record["command_id"].as_str().unwrap_or_default().to_string(), reason);
                }
            })
            .expect("read");
            *next = high;
        }
    }

    /// Where `bad`, produced at (`partition`, `offset`), came out: its kind (`unparseable`,
    /// `invalid` or `rejected`) and reason, or `None` while it has not.
    fn of(&self, bad: &Bad, partition: i32, offset: i64) -> Option<(String, String)> {
        match &bad.expect {
            Expect::DeadLetter => self.dead_letters.get(&(bad.topic.to_string(), partition, offset)).cloned(),
            Expect::Rejection(command_id) => self.rejections.get(command_id).map(|reason| ("rejected".to_string(), reason.clone())),
        }
    }
}

/// The sum of the samples of `metric` in a Prometheus text page.
fn metric_total(page: &str, metric: &str) -> f64 {
    page.lines()
        .filter(|line| line.strip_prefix(metric).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit(' ').next().and_then(|value| value.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_bad_commands_are_each_dead_lettered_or_rejected_and_change_nothing_else() {
    let stack = Arc::new(Stack::start("bad-commands", &[]));

    // Controls: an order confirmed before the flood, and a SKU nobody orders.
    let (skus, customers) = stack.stock_and_accounts("control", 2, 10, &[100_000]).await;
    let (sku, untouched_sku, customer) = (&skus[0], &skus[1], &customers[0]);
    stack.stock_is(untouched_sku, 0, 10).await;
    let before = unique("order-before");
    stack.send("order.commands", &before, &place_order(&before, customer, &[(sku, 1, 500)], "EUR", "DE")).await;
    stack.order_reaches(&before, "CONFIRMED").await;

    let ids = hostile::Ids { order: unique("bad-order"), customer: unique("bad-cust"), sku: unique("bad-sku") };
    let generated_at = Instant::now();
    let mut bad = bad_commands(&order_svc::order::OrderDecider, "order-svc", &ids, PER_STREAM, 1);
    bad.extend(bad_commands(&inventory_svc::stock::StockDecider::default(), "inventory-svc", &ids, PER_STREAM, 2));
    bad.extend(bad_commands(&payment_svc::account::AccountDecider, "payment-svc", &ids, PER_STREAM, 3));
    bad.extend(bad_commands(&shipping_svc::shipment::ShipmentDecider::default(), "shipping-svc", &ids, PER_STREAM, 4));
    bad.extend(bad_commands(&notify_svc::notification::NotificationDecider::default(), "notify-svc", &ids, PER_STREAM, 5));
    let bad = Arc::new(bad);
    println!("generated {} bad commands in {:?}", bad.len(), generated_at.elapsed());

    let brokers = stack.brokers.clone();
    let mut outcomes = tokio::task::spawn_blocking(move || Outcomes::from_end(&brokers)).await.expect("reader task");
    let produced_at = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for first in 0..PRODUCERS {
        let (stack, bad) = (stack.clone(), bad.clone());
        producers.spawn(async move {
            let mut positions = Vec::new();
            for index in (first..bad.len()).step_by(PRODUCERS) {
                let command = &bad[index];
                positions.push((index, stack.send_record(command.topic, Some(command.key.as_bytes()), Some(&command.bytes)).await));
            }
            positions
        });
    }
    let mut positions = vec![(0, 0); bad.len()];
    while let Some(done) = producers.join_next().await {
        for (index, position) in done.expect("producer task") {
            positions[index] = position;
        }
    }
    println!("produced {} in {:?}", bad.len(), produced_at.elapsed());

    let deadline = Instant::now() + WAIT;
    let missing = loop {
        let brokers = stack.brokers.clone();
        outcomes = tokio::task::spawn_blocking(move || {
            outcomes.read_more(&brokers);
            outcomes
        })
        .await
        .expect("reader task");
        let missing: Vec<usize> = (0..bad.len()).filter(|i| outcomes.of(&bad[*i], positions[*i].0, positions[*i].1).is_none()).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("accounted for in {:?}", produced_at.elapsed());
    let show = |i: &usize| {
        format!("{} {:?}: {}", bad[*i].topic, bad[*i].expect, String::from_utf8_lossy(&bad[*i].bytes).chars().take(200).collect::<String>())
    };
    assert!(
        missing.is_empty(),
        "{} of {} bad commands came out nowhere, e.g. {:?}",
        missing.len(),
        bad.len(),
        missing.iter().take(5).map(show).collect::<Vec<_>>()
    );

    let mut counts: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for (i, command) in bad.iter().enumerate() {
        let (kind, reason) = outcomes.of(command, positions[i].0, positions[i].1).expect("accounted for");
        assert!(!reason.trim().is_empty(), "no reason for {}", show(&i));
        let expected_kinds: &[&str] = if command.expect == Expect::DeadLetter { &["unparseable", "invalid"] } else { &["rejected"] };
        assert!(expected_kinds.contains(&kind.as_str()), "{kind}: {reason} for {}", show(&i));
        *counts.entry(command.service).or_default().entry(kind).or_default() += 1;
    }
    for (service, kinds) in &counts {
        println!("{service}: {} bad commands: {kinds:?}", kinds.values().sum::<usize>());
    }
    assert_eq!(counts.len(), 5, "{counts:?}");

    // Every service lived through it, in the same process, without restarting a loop.
    for service in system_tests::services() {
        assert!(stack.signal(service, 0), "{service} is no longer running");
        let (status, _) = stack.get(service, "/health").await;
        assert_eq!(status, 200, "{service} /health");
        let (status, page) = stack.get_text(service, "/metrics").await;
        assert_eq!(status, 200, "{service} /metrics");
        assert_eq!(metric_total(&page, "orderflow_loop_restarts_total"), 0.0, "{service} restarted a loop");
    }

    // The controls: the order before is still confirmed, one placed after is confirmed too,
    // the unordered SKU is as it was, and the aggregates the bad commands named never came to be.
    let after = unique("order-after");
    stack.send("order.commands", &after, &place_order(&after, customer, &[(sku, 1, 500)], "EUR", "DE")).await;
    stack.order_reaches(&after, "CONFIRMED").await;
    stack.order_reaches(&before, "CONFIRMED").await;
    stack.stock_is(sku, 2, 10).await;
    stack.stock_is(untouched_sku, 0, 10).await;
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == 100_000 - 2 * 500).await;
    for (service, path) in [
        ("order-svc", format!("/orders/{}", ids.order)),
        ("inventory-svc", format!("/stock/{}", ids.sku)),
        ("payment-svc", format!("/accounts/{}", ids.customer)),
    ] {
        let (status, view) = stack.get(service, &path).await;
        assert_eq!(status, 404, "{service}{path} exists after the bad commands: {view}");
    }
}
