//! A read model built from a log that no longer exists is rebuilt from the current one, not
//! served on: inventory-svc builds its stock view on one broker, then starts with the same
//! database against a new, empty broker (as after `scripts/down.sh` and `scripts/up.sh
//! --memory`). Its checkpoints lie past the end of the new log; it must drop what the old log
//! said, show what the new log says, and count the rebuild.
use std::time::Duration;
use system_tests::{
    Stack,
    commands::restock,
    infra::{Broker, Registry},
    test_dir, unique,
};

const SERVICE: &str = "inventory-svc";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_read_model_whose_log_was_replaced_is_rebuilt_from_the_new_log() {
    let dir = test_dir("replaced-log");
    let old_broker = Broker::start(&dir.join("old-broker"));
    let old_registry = Registry::start(&old_broker.address(), &dir);
    let mut stack = Stack::start_on("replaced-log", &old_broker.address(), &old_registry.url, &[SERVICE], &[]);

    // Several events on the old log, so the checkpoints end well past the new log's first ones.
    let old_skus: Vec<String> = (0..3).map(|_| unique("old-sku")).collect();
    for sku in &old_skus {
        stack.send("stock.commands", sku, &restock(sku, 5)).await;
    }
    for sku in &old_skus {
        stack.eventually(SERVICE, &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == 5).await;
    }

    stack.stop(SERVICE);
    drop(old_registry);
    drop(old_broker);
    let new_broker = Broker::start(&dir.join("new-broker"));
    let new_registry = Registry::start(&new_broker.address(), &dir);
    stack.move_to(&new_broker.address(), &new_registry.url);
    stack.start_service(SERVICE);

    let new_sku = unique("new-sku");
    stack.send("stock.commands", &new_sku, &restock(&new_sku, 7)).await;
    stack.eventually(SERVICE, &format!("/stock/{new_sku}"), WAIT, |s| s["on_hand"] == 7).await;
    for sku in &old_skus {
        let (status, body) = stack.get(SERVICE, &format!("/stock/{sku}")).await;
        assert_eq!(status, 404, "{sku} exists only in the replaced log, yet the stock view still serves it: {body}");
    }
    let (_, metrics) = stack.get_text(SERVICE, "/metrics").await;
    let rebuilds: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("orderflow_projection_rebuilds_total") && l.contains("log_replaced")).collect();
    assert!(rebuilds.iter().any(|l| l.contains("projection=\"stock\"")), "no log_replaced rebuild of the stock view counted: {rebuilds:?}");
    stack.stop(SERVICE);
}
