//! `/ready` follows the broker: 503 naming the broker while it is down, 200 again once it is
//! back, with no restart of the service; and it follows every supervised loop: 503 naming a
//! command processor that cannot run. A stop does not wait for a broker that hangs. Each test
//! uses a broker and registry of its own (the shared broker is never stopped).
use runtime::kafka::TopicSpec;
use serde_json::Value;
use std::time::{Duration, Instant};
use system_tests::{
    Stack,
    infra::{Broker, Registry},
    test_dir,
};

async fn ready_until(stack: &Stack, expected: u16, timeout: Duration) -> Value {
    ready_when(stack, expected, timeout, |_| true).await
}

/// Polls `/ready` until it answers `expected` with a body `done` accepts.
async fn ready_when(stack: &Stack, expected: u16, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = stack.get("order-svc", "/ready").await;
        if status == expected && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "/ready not {expected} as expected within {timeout:?}; last answer {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_the_broker_is_down_and_200_after_it_is_back() {
    let dir = test_dir("readiness");
    let mut broker = Broker::start(&dir.join("broker"));
    let registry = Registry::start(&broker.address(), &dir);
    let stack = Stack::start_on("readiness", &broker.address(), &registry.url, &["order-svc"], &[]);

    let body = ready_until(&stack, 200, Duration::from_secs(60)).await;
    assert_eq!(body["status"], "ready", "{body}");

    broker.stop();
    let body = ready_until(&stack, 503, Duration::from_secs(30)).await;
    assert!(body["not_ready"]["broker"].is_string(), "503 should name the broker: {body}");
    let (status, _) = stack.get("order-svc", "/health").await;
    assert_eq!(status, 200, "the process stays alive while the broker is down");

    broker.start_again();
    let body = ready_until(&stack, 200, Duration::from_secs(90)).await;
    assert_eq!(body["status"], "ready", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_naming_a_command_processor_that_cannot_run() {
    const PROCESSOR: &str = "order.commands command processor";
    let dir = test_dir("readiness-loop");
    let broker = Broker::start(&dir.join("broker"));
    let registry = Registry::start(&broker.address(), &dir);
    // Commands on two partitions, events on one: order-svc's command processor refuses to run
    // (they must be co-partitioned), fails at every start and is restarted again and again.
    let topics = [("order.commands", 2), ("order.events", 1)].map(|(name, partitions)| TopicSpec { name: name.into(), partitions, configs: vec![] });
    runtime::kafka::ensure_topics(&broker.address(), &topics).await.expect("topics created");
    let stack = Stack::start_on("readiness-loop", &broker.address(), &registry.url, &["order-svc"], &[]);

    let body = ready_when(&stack, 503, Duration::from_secs(60), |body| body["not_ready"]["loops"][PROCESSOR]["state"] == "restarting").await;
    let processor = &body["not_ready"]["loops"][PROCESSOR];
    assert_eq!((processor["kind"].as_str(), processor["cause"].as_str()), (Some("command"), Some("error")), "{body}");
    assert!(processor["reason"].as_str().is_some_and(|r| r.contains("co-partitioned")), "{body}");
    assert!(processor["restarts"].as_u64().is_some_and(|n| n >= 1), "{body}");
    let not_ready = body["not_ready"].as_object().expect("not_ready is an object");
    assert!(!not_ready.contains_key("broker") && !not_ready.contains_key("registry"), "only the loop is the problem: {body}");
    let down: Vec<&String> = body["not_ready"]["loops"].as_object().expect("loops is an object").keys().collect();
    assert_eq!(down, [PROCESSOR], "the service's other loops run: {body}");

    // It stays down (and /ready 503) however often it is restarted; every restart is counted.
    let body = ready_when(&stack, 503, Duration::from_secs(60), |body| body["not_ready"]["loops"][PROCESSOR]["restarts"].as_u64() >= Some(3)).await;
    assert_eq!(body["status"], "not ready");
    let (status, metrics) = stack.get_text("order-svc", "/metrics").await;
    assert_eq!(status, 200);
    let restarts = metrics
        .lines()
        .find(|line| {
            line.starts_with("orderflow_loop_restarts_total{") && line.contains(&format!("loop=\"{PROCESSOR}\"")) && line.contains("cause=\"error\"")
        })
        .unwrap_or_else(|| panic!("no restart counter for {PROCESSOR} in /metrics:\n{metrics}"));
    let counted: f64 = restarts.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_default();
    assert!(counted >= 3.0, "{restarts}");
    assert_eq!(stack.get("order-svc", "/health").await.0, 200, "the process stays alive");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_ends_within_its_grace_while_the_broker_hangs() {
    let dir = test_dir("stop-broker-hangs");
    let broker = Broker::start(&dir.join("broker"));
    let registry = Registry::start(&broker.address(), &dir);
    let stack = Stack::start_on("stop-broker-hangs", &broker.address(), &registry.url, &["order-svc"], &[]);
    ready_until(&stack, 200, Duration::from_secs(60)).await;

    // Connections stay open and nothing answers: a consumer's close waits for its group
    // coordinator until the session times out (10 s), and other waits have no end at all.
    broker.freeze();
    let stopping = Instant::now();
    let stack = tokio::task::spawn_blocking(move || {
        stack.stop("order-svc");
        stack
    })
    .await
    .expect("stop");
    let took = stopping.elapsed();
    broker.thaw();
    assert!(took < Duration::from_secs(20), "order-svc took {took:?} to stop with the broker hanging");
    let gave_up = stack.logged("order-svc", "Kafka clients still closing: exiting without waiting for them");
    assert_eq!(gave_up.len(), 1, "the stop ended by its grace, not by the session timeout (took {took:?})");
    drop(registry);
}
