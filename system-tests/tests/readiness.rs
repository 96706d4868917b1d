//! `/ready` follows the broker: 503 naming the broker while it is down, 200 again once it is
//! back, with no restart of the service. Uses a broker and registry of its own (the shared
//! broker is never stopped).
use serde_json::Value;
use std::time::{Duration, Instant};
use system_tests::{
    Stack,
    infra::{Broker, Registry},
    unique,
};

async fn ready_until(stack: &Stack, expected: u16, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = stack.get("order-svc", "/ready").await;
        if status == expected {
            return body;
        }
        assert!(Instant::now() < deadline, "/ready not {expected} within {timeout:?}; last answer {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_the_broker_is_down_and_200_after_it_is_back() {
    let dir = std::env::var("TEST_RUN_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir()).join(unique("readiness"));
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
