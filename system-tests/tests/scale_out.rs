//! Two instances of every service (issue 13, "N instances per service"): each service's
//! command group splits the partitions between its instances; `kill -9` of instance 1 of every
//! service during a burst of orders leaves every order settled with stock, money and
//! notifications exact (the chaos run's checks), the survivors having taken over the dead
//! instances' partitions (the takeover time is printed); every order reads the same through
//! both order-svc instances once the killed ones are back; and an instance killed and started
//! again at once gets its partitions back before the session timeout (static membership).
//!
//! Who owns a partition is seen from outside by what happens to a record on it: a probe, a
//! record that is no command, produced onto that partition of `<stream>.commands`, is
//! dead-lettered by the member that owns the partition, and only that instance's
//! `orderflow_commands_total{outcome="dead_lettered"}` rises (the shop's traffic dead-letters
//! nothing). The consumer-lag gauges cannot tell: a gauge of a partition a member lost keeps
//! its last value.
use rdkafka::producer::FutureRecord;
use runtime::kafka::KafkaProducer;
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};
use system_tests::{
    Stack,
    shop::{Journey, Shop, checks},
};

const INSTANCES: usize = 2;
const ORDERS: usize = 150;
const SEED: u64 = 13;
/// Killed during the burst and restarted only once every order settled, so the takeover is
/// the survivor's: a static member restarted at once would get its own partitions back
/// without a rebalance, and nobody would have taken over anything.
const VICTIM: usize = 1;
/// Serves the shop's HTTP traffic (the name-only `Stack` methods) throughout.
const SURVIVOR: usize = 0;
/// The burst's orders start this far apart, and the victims die once a third have started.
const ORDER_SPACING: Duration = Duration::from_millis(20);
const WAIT: Duration = Duration::from_secs(60);
/// The earliest a dead member's partitions can move to another member: the consumers'
/// `session.timeout.ms` (10 s, runtime/src/kafka/clients.rs) counts from the member's last
/// heartbeat, sent up to `heartbeat.interval.ms` (3 s) before it died.
const EARLIEST_EVICTION: Duration = Duration::from_secs(10 - 3);

/// Each service's stream: its command topic is `<stream>.commands`, and `stream` labels its
/// `orderflow_commands_total`.
const STREAMS: [(&str, &str); 5] =
    [("order-svc", "order"), ("inventory-svc", "stock"), ("payment-svc", "account"), ("shipping-svc", "shipment"), ("notify-svc", "notification")];

/// Commands the instance dead-lettered on its stream, from its `/metrics`; None when it does
/// not answer.
async fn dead_lettered(stack: &Stack, service: &str, stream: &str, instance: usize) -> Option<f64> {
    let (status, text) = stack.get_text_from(service, instance, "/metrics").await;
    if status != 200 {
        return None;
    }
    let stream_label = format!("stream=\"{stream}\"");
    let total = text
        .lines()
        .filter(|line| line.starts_with("orderflow_commands_total{") && line.contains(&stream_label) && line.contains("outcome=\"dead_lettered\""))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, value)| value.parse::<f64>().ok()))
        .sum();
    Some(total)
}

async fn send_probe(producer: &KafkaProducer, stream: &str, partition: i32) {
    let topic = format!("{stream}.commands");
    let record = FutureRecord::to(&topic).partition(partition).key("scale-out-probe").payload("scale-out probe: not a command");
    producer.send(record, Duration::from_secs(10)).await.expect("probe produced");
}

/// Sends a probe onto `partition` of the service's command topic and returns the instances
/// among `instances` whose dead-letter count rose (one, unless something else was
/// dead-lettered meanwhile), with how long after sending the first rise was seen.
async fn probe(
    stack: &Stack,
    producer: &KafkaProducer,
    (service, stream): (&str, &str),
    partition: i32,
    instances: &[usize],
) -> (Vec<usize>, Duration) {
    let mut before = Vec::new();
    for &instance in instances {
        before.push(dead_lettered(stack, service, stream, instance).await.unwrap_or_else(|| panic!("{service}-{instance} /metrics")));
    }
    let sent = Instant::now();
    send_probe(producer, stream, partition).await;
    loop {
        let mut rose = Vec::new();
        for (&instance, before) in instances.iter().zip(&before) {
            if dead_lettered(stack, service, stream, instance).await.is_some_and(|now| now > *before) {
                rose.push(instance);
            }
        }
        if !rose.is_empty() {
            return (rose, sent.elapsed());
        }
        assert!(sent.elapsed() < WAIT, "{service}: nobody dead-lettered the probe on {stream}.commands partition {partition} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The instance that owns each partition of the service's command group, once the group has
/// settled: probed partition by partition until two rounds in a row find the same owners and
/// every instance owns some. One round may straddle a rebalance, and a fresh group may still
/// hold members of an earlier test's processes until their session times out.
async fn split(stack: &Stack, producer: &KafkaProducer, service_stream: (&str, &str), partitions: i32) -> Vec<usize> {
    let instances: Vec<usize> = (0..INSTANCES).collect();
    let deadline = Instant::now() + WAIT;
    let mut previous: Option<Vec<usize>> = None;
    loop {
        let mut owners = Vec::new();
        for partition in 0..partitions {
            match probe(stack, producer, service_stream, partition, &instances).await.0.as_slice() {
                [owner] => owners.push(*owner),
                // Both counted a dead letter, one not the probe's: measure again.
                _ => break,
            }
        }
        let complete = owners.len() == partitions as usize && instances.iter().all(|instance| owners.contains(instance));
        if complete && previous.as_ref() == Some(&owners) {
            return owners;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the command group never settled on a split of its {partitions} partitions: owners {owners:?}",
            service_stream.0
        );
        previous = complete.then_some(owners);
    }
}

fn shares(owners: &[usize]) -> BTreeMap<usize, Vec<i32>> {
    let mut shares: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for (partition, owner) in owners.iter().enumerate() {
        shares.entry(*owner).or_default().push(partition as i32);
    }
    shares
}

/// Measures every service's split at once; asserts both instances own a share.
async fn splits(stack: &Arc<Stack>, producer: &KafkaProducer, partitions: i32) -> BTreeMap<&'static str, Vec<usize>> {
    let mut measuring = tokio::task::JoinSet::new();
    for service_stream in STREAMS {
        let (stack, producer) = (stack.clone(), producer.clone());
        measuring.spawn(async move { (service_stream.0, split(&stack, &producer, service_stream, partitions).await) });
    }
    let measured: BTreeMap<&'static str, Vec<usize>> = measuring.join_all().await.into_iter().collect();
    for (service, owners) in &measured {
        let shares = shares(owners);
        println!("{service}: command group split {shares:?} (instance: partitions)");
        assert_eq!(shares.len(), INSTANCES, "{service}: every instance owns a share");
        assert_eq!(shares.values().map(Vec::len).sum::<usize>(), partitions as usize, "{service}: together they own every partition once");
    }
    measured
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_split_the_partitions_and_the_survivors_take_over_after_kill_9() {
    let started = Instant::now();
    let stack = Arc::new(Stack::start_scaled("scale-out", INSTANCES, &[]));
    let producer = runtime::kafka::producer(&stack.brokers).expect("producer");
    let partitions = stack.partitions_of("order.commands").await;
    assert!(partitions >= 2, "a split needs at least 2 partitions, the command topics have {partitions}");
    println!("{} processes up in {:?}", STREAMS.len() * INSTANCES, started.elapsed());

    // (a) The partitions are split.
    let owners = splits(&stack, &producer, partitions).await;
    println!("split measured at {:?}", started.elapsed());

    // (b) A burst of orders, and kill -9 of instance 1 of every service while it is in flight.
    let shop = Arc::new(Shop::open(&stack, ORDERS).await);
    let burst_started = Instant::now();
    let deadline = burst_started + Duration::from_secs(120);
    let mut journeys = tokio::task::JoinSet::new();
    let mut takeovers = tokio::task::JoinSet::new();
    for index in 0..ORDERS {
        journeys.spawn(Journey::draw(SEED, index).run(stack.clone(), shop.clone(), deadline));
        if index == ORDERS / 3 {
            for (service, _) in STREAMS {
                stack.kill_instance(service, VICTIM);
            }
            let killed_at = Instant::now();
            println!("kill -9 of instance {VICTIM} of every service, {index} orders into the burst");
            // The survivor has taken over once it handles a record on a partition the victim
            // owned, sent right after the kill.
            for (service, stream) in STREAMS {
                let (stack, producer) = (stack.clone(), producer.clone());
                let orphan = owners[service].iter().position(|owner| *owner == VICTIM).expect("the victim owned a partition") as i32;
                takeovers.spawn(async move {
                    probe(&stack, &producer, (service, stream), orphan, &[SURVIVOR]).await;
                    (service, orphan, killed_at.elapsed())
                });
            }
        }
        tokio::time::sleep(ORDER_SPACING).await;
    }
    for (service, orphan, takeover) in takeovers.join_all().await {
        println!(
            "{service}: takeover {takeover:.1?} (kill -9 of instance {VICTIM} → instance {SURVIVOR} handles a record of its partition {orphan})"
        );
    }
    let journeys: Vec<Journey> = journeys.join_all().await;
    let (verdicts, passed_at) = checks::settle(&stack, &shop, &journeys, deadline).await;
    for verdict in &verdicts {
        println!(
            "{}: {}{}",
            verdict.name,
            verdict.figures,
            if verdict.passed() { String::new() } else { format!("\n  FAILED: {:#?}", verdict.failures) }
        );
    }
    let Some(passed_at) = passed_at else { panic!("the checks did not all pass within {:?} of the burst", deadline - burst_started) };
    println!("{ORDERS} orders: every check passed {:?} after the burst started", passed_at - burst_started);

    // (c) Reads: the killed instances come back (their static members rejoin) and every order
    // reads the same through both order-svc instances, each from its own database.
    for (service, _) in STREAMS {
        stack.start_instance(service, VICTIM);
    }
    for journey in journeys.iter().filter(|journey| journey.placed) {
        let path = format!("/orders/{}", journey.order_id);
        let (status, through_survivor) = stack.get_from("order-svc", SURVIVOR, &path).await;
        assert_eq!(status, 200, "{path} through instance {SURVIVOR}: {through_survivor}");
        let wait = Instant::now() + WAIT;
        loop {
            let (status, through_victim) = stack.get_from("order-svc", VICTIM, &path).await;
            if status == 200 && through_victim["status"] == through_survivor["status"] {
                break;
            }
            assert!(Instant::now() < wait, "{path}: instance {VICTIM} shows {status} {through_victim}, instance {SURVIVOR} {through_survivor}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("every order reads the same through both order-svc instances");
    let owners = splits(&stack, &producer, partitions).await;

    // (d) Static membership: an instance killed and started again at once gets its partitions
    // back without waiting for the session timeout (no rebalance; a new dynamic member would
    // wait for the dead one to time out).
    let mut comebacks = tokio::task::JoinSet::new();
    for (service, stream) in STREAMS {
        let killed_at = Instant::now();
        stack.kill_instance(service, VICTIM);
        let restarting = stack.clone();
        tokio::task::spawn_blocking(move || restarting.start_instance(service, VICTIM)).await.expect("restart");
        let (stack, producer) = (stack.clone(), producer.clone());
        let own = owners[service].iter().position(|owner| *owner == VICTIM).expect("the victim owns a partition again") as i32;
        comebacks.spawn(async move {
            probe(&stack, &producer, (service, stream), own, &[VICTIM]).await;
            (service, own, killed_at.elapsed())
        });
    }
    for (service, own, comeback) in comebacks.join_all().await {
        println!("{service}: kill -9 and restart of instance {VICTIM} → it handles a record of its partition {own} after {comeback:.1?}");
        assert!(
            comeback < EARLIEST_EVICTION,
            "{service}: instance {VICTIM} got its partition back only after {comeback:?}, as if it had waited for its dead self's session to time out"
        );
    }
    println!("scale-out test done in {:?}", started.elapsed());
}
