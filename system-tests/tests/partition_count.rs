//! A stream whose partition count changed under its log is refused, not silently served:
//! keys would hash to other partitions, aggregates would rehydrate empty and the single-writer
//! rule would break. inventory-svc starts once (its topics get one partition, and the count
//! is recorded), `stock.events` is then created again with two partitions, and the next start must
//! exit with an error naming the topic and both counts.
use rdkafka::admin::AdminOptions;
use std::{
    process::Stdio,
    time::{Duration, Instant},
};
use system_tests::{
    Stack,
    infra::{Broker, Registry},
    test_dir,
};

const SERVICE: &str = "inventory-svc";

#[tokio::test(flavor = "multi_thread")]
async fn a_service_refuses_to_start_when_a_streams_partition_count_changed() {
    let dir = test_dir("partition-count");
    let broker = Broker::start(&dir.join("broker"));
    let registry = Registry::start(&broker.address(), &dir);
    let stack = Stack::start_on("partition-count", &broker.address(), &registry.url, &[SERVICE], &[("PARTITIONS", "1")]);
    stack.stop(SERVICE);

    // Nisshi has no CreatePartitions: the topic is deleted and created again with two, which
    // moves keys just the same.
    let admin = runtime::kafka::admin(&broker.address()).expect("admin");
    for result in admin.delete_topics(&["stock.events"], &AdminOptions::new()).await.expect("delete topic") {
        result.unwrap_or_else(|(topic, code)| panic!("deleting {topic}: {code}"));
    }
    let spec = runtime::kafka::all_topics(2).into_iter().find(|t| t.name == "stock.events").expect("stock.events spec");
    runtime::kafka::ensure_topics(&broker.address(), &[spec]).await.expect("create stock.events with two partitions");

    let mut service = stack.service_command(SERVICE).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start the service");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = service.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = service.kill();
            panic!("{SERVICE} kept running on a stream whose partition count changed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(service.stderr.as_mut().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(!status.success(), "{SERVICE} exited successfully on a changed partition count");
    assert!(
        stderr.contains("stock.events has 2 partitions, but its log was written with 1"),
        "the error must name the topic and both counts; {SERVICE} said:\n{stderr}"
    );
}
