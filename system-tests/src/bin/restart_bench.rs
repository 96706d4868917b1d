//! Restart benchmark (`scripts/bench-restart.sh`): what a restart of order-svc costs as its
//! history grows. order-svc runs alone on a durable broker of its own; its order log is filled
//! with the histories of N orders (written straight to `order.events`, five events each up to
//! CONFIRMED, as its writer appends them), then order-svc is killed (-9) and started again, with
//! snapshots off (`SNAPSHOT_EVERY_EVENTS=0`: the whole log is read) and on. Each restart is timed
//! to `/ready` and to a new order's first decision being visible; the table and summary.json
//! give those with the resident memory of the process at that decision and once every loop
//! has rebuilt and the rebuilds' garbage was given back ([`RSS_SETTLE`] later).
use clap::Parser;
use contracts::{
    EventEnvelope, Stream,
    order::{Address, Order, OrderEvent, OrderLine},
};
use rdkafka::producer::FutureRecord;
use runtime::kafka::KafkaProducer;
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    process::{Child, ExitCode},
    time::{Duration, Instant},
};
use system_tests::{Stack, free_port, infra};

#[derive(Parser, Debug)]
#[command(about = "order-svc restart-to-ready as its history grows, with snapshots off and on")]
struct Args {
    /// History sizes to measure at, in orders (cumulative), comma-separated.
    #[arg(long, default_value = "1000,10000,100000", value_delimiter = ',')]
    orders: Vec<usize>,
    /// Restarts per history size and setting; the table shows their median.
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Which settings to restart with: snapshots `off` (the whole log is read), `on`, or `both`.
    #[arg(long, value_enum, default_value_t = Snapshots::Both)]
    snapshots: Snapshots,
    /// The run folder: broker storage, logs, summary.json (order-svc's own folder is made
    /// under `TEST_RUN_DIR`, which scripts/bench-restart.sh sets to the same).
    #[arg(long, env = "TEST_RUN_DIR")]
    dir: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Snapshots {
    Off,
    On,
    Both,
}

impl Snapshots {
    /// The settings to restart with, as (name, `SNAPSHOT_EVERY_EVENTS` when not the default).
    fn settings(self) -> Vec<(&'static str, Option<&'static str>)> {
        let (off, on) = (("snapshots off", Some("0")), ("snapshots on", None));
        match self {
            Snapshots::Off => vec![off],
            Snapshots::On => vec![on],
            Snapshots::Both => vec![off, on],
        }
    }
}

const SERVICE: &str = "order-svc";
/// How long a probe order waits for its stock before it is cancelled.
const PROBE_DEADLINE_MS: &str = "1000";
/// Longest any one step may take before the run gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(900);
/// The settled resident memory is read this long after every loop rebuilt: past the service's
/// heap trim, which comes two seconds after the last rebuild.
const RSS_SETTLE: Duration = Duration::from_secs(4);
/// How long after the deadlines the saga metrics' rebuild may come; the run goes on without it.
const ACCEPTED_HISTORY_WAIT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).expect("run folder");
    let broker = infra::Broker::start(&args.dir.join("broker"));
    let registry = infra::Registry::start(&broker.address(), &args.dir);
    let http_port = free_port();
    let port_env = format!("127.0.0.1:{http_port}");
    // Probe orders wait for stock that nothing reserves: a short deadline ends them before the
    // next restart, so no restart inherits the earlier ones as sagas in flight.
    let stack = Stack::start_on(
        "restart-bench",
        &broker.address(),
        &registry.url,
        &[SERVICE],
        &[("PARTITIONS", "1"), ("ORDER_DEADLINE_STOCK_MS", PROBE_DEADLINE_MS)],
    );
    stack.kill(SERVICE);
    let codec = runtime::kafka::EventCodec::<Order>::new(&registry.url).expect("codec");
    let producer: KafkaProducer = runtime::kafka::producer(&broker.address()).expect("producer");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    let base = format!("http://{port_env}");
    println!("[restart] order-svc alone on {} (durable sqlite storage), 1 partition; runs under {}", broker.address(), args.dir.display());

    let mut rows = Vec::new();
    let mut written = 0usize;
    let mut next_offset = 0i64;
    for &orders in &args.orders {
        let started = Instant::now();
        while written < orders {
            let batch = (orders - written).min(2_000);
            next_offset = write_histories(&codec, &producer, written, batch, next_offset).await;
            written += batch;
        }
        println!("[restart] {orders} orders in the log ({next_offset} events), written in {:.1} s", started.elapsed().as_secs_f64());
        // Once with everything as it is now, so that the read models have caught up and the
        // writer had its chance to write a snapshot; not measured.
        let warm = Instant::now();
        let mut child = start(&stack, &port_env, None);
        let probe = place_and_wait(&http, &base, STEP_TIMEOUT).await;
        // The writer snapshots once the log it read is long enough (runtime::snapshot).
        if next_offset as usize >= 10_000.max(orders) {
            wait_for_snapshot(&stack, next_offset).await;
        }
        wait_cancelled(&http, &base, &probe).await;
        // Every loop at the end of the log, the saga metrics' too (`/ready` reports every
        // consuming loop's lag): one killed while behind would start the measured restarts from
        // a checkpoint older than any snapshot, and read the log from its start at the same time.
        wait_caught_up(&http, &base).await;
        kill(&mut child);
        println!("[restart] caught up in {:.1} s", warm.elapsed().as_secs_f64());
        for (setting, every) in args.snapshots.settings() {
            let mut ready = Vec::new();
            let mut first = Vec::new();
            let (mut rss, mut rss_settled) = (Vec::new(), Vec::new());
            let (mut rehydrate, mut deadlines, mut settled) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..args.restarts {
                let log_from = log_len(&stack);
                let restarted = Instant::now();
                let mut child = start(&stack, &port_env, every);
                wait_ready(&http, &base, restarted).await;
                ready.push(restarted.elapsed().as_secs_f64());
                let probe = place_and_wait(&http, &base, STEP_TIMEOUT).await;
                first.push(restarted.elapsed().as_secs_f64());
                rss.push(resident_mib(child.id()));
                // Every loop that folds order.events has rebuilt what it keeps: the deadlines
                // are the last (nothing waits for them to answer a request).
                let log = log_path(&stack);
                assert!(
                    logged_by(&stack, log_from, "deadlines rebuilt from the log", restarted + STEP_TIMEOUT).await,
                    "the deadlines were not rebuilt in {STEP_TIMEOUT:?}; see {}",
                    log.display()
                );
                settled.push(restarted.elapsed().as_secs_f64());
                // The saga metrics' accepted history, rebuilt once its group assigned it the
                // partition, is the last rebuild of all; the heap is trimmed after it.
                logged_by(&stack, log_from, "accepted history rebuilt", Instant::now() + ACCEPTED_HISTORY_WAIT).await;
                let all_rebuilt = tokio::time::Instant::now();
                let logged = log_since(&stack, log_from);
                wait_cancelled(&http, &base, &probe).await;
                tokio::time::sleep_until(all_rebuilt + RSS_SETTLE).await;
                rss_settled.push(resident_mib(child.id()));
                rehydrate.push(logged_ms(&logged, "rehydrated partition", "elapsed_ms"));
                deadlines.push(logged_ms(&logged, "deadlines rebuilt from the log", "took_ms"));
                kill(&mut child);
            }
            let row = json!({
                "orders": orders, "events": next_offset, "setting": setting,
                "ready_s": median(&mut ready), "first_decision_s": median(&mut first), "rss_mib": median(&mut rss),
                "rss_settled_mib": median(&mut rss_settled),
                "rehydrate_s": median(&mut rehydrate), "deadlines_s": median(&mut deadlines), "all_rebuilt_s": median(&mut settled),
            });
            println!(
                "[restart] {orders:>7} orders, {setting:<13}: ready {:.2} s, first decision {:.2} s, every loop rebuilt {:.2} s (writer {:.2} s, deadlines {:.2} s), RSS {:.0} MiB, {:.0} MiB settled (medians of {})",
                row["ready_s"].as_f64().unwrap_or_default(),
                row["first_decision_s"].as_f64().unwrap_or_default(),
                row["all_rebuilt_s"].as_f64().unwrap_or_default(),
                row["rehydrate_s"].as_f64().unwrap_or_default(),
                row["deadlines_s"].as_f64().unwrap_or_default(),
                row["rss_mib"].as_f64().unwrap_or_default(),
                row["rss_settled_mib"].as_f64().unwrap_or_default(),
                args.restarts
            );
            rows.push(row);
        }
    }
    println!(
        "\n| orders | events | setting | restart to /ready | to a new order's first decision | to every loop rebuilt | writer's rebuild | deadlines' rebuild | RSS at that decision | RSS settled |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.0} MiB | {:.0} MiB |",
            row["orders"],
            row["events"],
            row["setting"].as_str().unwrap_or_default(),
            row["ready_s"].as_f64().unwrap_or_default(),
            row["first_decision_s"].as_f64().unwrap_or_default(),
            row["all_rebuilt_s"].as_f64().unwrap_or_default(),
            row["rehydrate_s"].as_f64().unwrap_or_default(),
            row["deadlines_s"].as_f64().unwrap_or_default(),
            row["rss_mib"].as_f64().unwrap_or_default(),
            row["rss_settled_mib"].as_f64().unwrap_or_default()
        );
    }
    let summary = json!({ "rows": rows, "partitions": 1, "storage": "sqlite" });
    std::fs::write(args.dir.join("summary.json"), serde_json::to_vec_pretty(&summary).expect("json")).expect("summary.json");
    println!("\n[restart] summary: {}", args.dir.join("summary.json").display());
    drop(registry);
    drop(broker);
    ExitCode::SUCCESS
}

/// Appends the histories of orders `first..first + count` to `order.events` (partition 0 of 1),
/// as their writer would: one version after another, each naming its predecessor, every
/// decision complete. Returns the log's end.
async fn write_histories(codec: &runtime::kafka::EventCodec<Order>, producer: &KafkaProducer, first: usize, count: usize, mut offset: i64) -> i64 {
    let mut pending = Vec::with_capacity(count * 5);
    let now = chrono_millis();
    for i in first..first + count {
        let order_id = format!("history-{i:07}");
        let customer_id = format!("customer-{}", i % 500);
        let lines = vec![OrderLine { sku: format!("sku-{}", i % 50), quantity: 1, unit_price_cents: 1_250 }];
        let address = Address {
            name: "Ada Lovelace".into(),
            street: "1 Analytical Row".into(),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "GB".into(),
        };
        let payloads = [
            OrderEvent::OrderPlaced {
                customer_id: customer_id.clone(),
                lines: lines.clone(),
                currency: "EUR".into(),
                shipping_address: address.clone(),
                total_cents: 1_250,
            },
            OrderEvent::OrderLineReserved { sku: lines[0].sku.clone(), quantity: 1 },
            OrderEvent::OrderStockReserved { customer_id: customer_id.clone(), total_cents: 1_250, currency: "EUR".into() },
            OrderEvent::OrderPaid { customer_id: customer_id.clone(), amount_cents: 1_250, currency: "EUR".into(), shipping_address: address, lines },
            OrderEvent::OrderConfirmed { customer_id, carrier: "DHL".into(), tracking_number: format!("TRK{i:09}") },
        ];
        let mut previous: Option<String> = None;
        for (k, payload) in payloads.into_iter().enumerate() {
            let event_id = uuid::Uuid::new_v4().to_string();
            let command_id = uuid::Uuid::new_v4().to_string();
            let event = EventEnvelope {
                event_id: event_id.clone(),
                aggregate_id: order_id.clone(),
                version: k as i64 + 1,
                previous_event_id: previous.replace(event_id),
                occurred_at: now,
                correlation_id: order_id.clone(),
                causation_id: command_id.clone(),
                command_id,
                command_offset: offset,
                payload,
            };
            let bytes = codec.encode(&event).await.expect("encode");
            let headers = runtime::kafka::headers(&[("command_id", &event.command_id), ("decision_part", "1/1")]);
            let record = FutureRecord::to(Order::EVENTS_TOPIC).partition(0).key(&order_id).payload(&bytes).headers(headers);
            pending.push(producer.send_result(record).map_err(|(error, _)| error).expect("queue"));
            offset += 1;
        }
    }
    for delivery in pending {
        delivery.await.expect("delivered").map_err(|(error, _)| error).expect("acknowledged");
    }
    offset
}

fn chrono_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Starts order-svc on `port` (the stack's environment; `SNAPSHOT_EVERY_EVENTS` when given).
fn start(stack: &Stack, port: &str, snapshot_every: Option<&str>) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(stack)).expect("log file");
    let mut command = stack.service_command(SERVICE);
    // A static member, as scripts/up.sh starts it: the restarted process gets its partitions
    // back at once instead of after the session timeout of the one killed.
    command.env("HTTP_ADDR", port).env("SERVICE_INSTANCE", "0").stdout(log.try_clone().expect("log handle")).stderr(log);
    if let Some(every) = snapshot_every {
        command.env("SNAPSHOT_EVERY_EVENTS", every);
    }
    command.spawn().expect("order-svc starts")
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_ready(http: &reqwest::Client, base: &str, since: Instant) {
    loop {
        if let Ok(response) = http.get(format!("{base}/ready")).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(since.elapsed() < STEP_TIMEOUT, "order-svc not ready after {STEP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Places an order and waits until order-svc's view shows it decided (PENDING: placed, waiting
/// for stock, which nothing reserves here).
async fn place_and_wait(http: &reqwest::Client, base: &str, timeout: Duration) -> String {
    let started = Instant::now();
    let order_id = system_tests::unique("probe");
    let body = json!({
        "order_id": order_id,
        "customer_id": "probe-customer",
        "lines": [{"sku": "sku-probe", "quantity": 1, "unit_price_cents": 100}],
        "currency": "EUR",
        "shipping_address": {"name": "Ada Lovelace", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    });
    loop {
        match http.post(format!("{base}/orders")).json(&body).send().await {
            Ok(response) if response.status().is_success() || response.status().as_u16() == 202 => break,
            _ => {}
        }
        assert!(started.elapsed() < timeout, "POST /orders not answered in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    loop {
        if let Ok(response) = http.get(format!("{base}/orders/{order_id}")).send().await
            && response.status().is_success()
            && let Ok(view) = response.json::<Value>().await
            && view["status"].as_str().is_some()
        {
            return order_id;
        }
        assert!(started.elapsed() < timeout, "order {order_id} not decided in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the probe order is over (its stock deadline cancelled it).
async fn wait_cancelled(http: &reqwest::Client, base: &str, order_id: &str) {
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(format!("{base}/orders/{order_id}")).send().await
            && let Ok(view) = response.json::<Value>().await
            && view["status"] == "CANCELLED"
        {
            return;
        }
        assert!(started.elapsed() < STEP_TIMEOUT, "probe {order_id} was not cancelled by its deadline in {STEP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until order-svc's log says it wrote a snapshot covering the whole history (`covers`).
async fn wait_for_snapshot(stack: &Stack, history_end: i64) {
    let started = Instant::now();
    let log = log_path(stack);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let covered = text
            .lines()
            .filter(|line| line.contains("snapshot written") && line.contains("order.events"))
            // JSON logs (`"covers":123`), or text ones on a terminal (`covers=123`).
            .filter_map(|line| {
                let rest = line.split("\"covers\":").nth(1).or_else(|| line.split("covers=").nth(1))?;
                rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<i64>().ok()
            })
            .max();
        if covered.is_some_and(|covers| covers >= history_end) {
            return;
        }
        assert!(started.elapsed() < STEP_TIMEOUT, "no snapshot of order.events covering {history_end} in {STEP_TIMEOUT:?}; see {}", log.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Until `/ready` gives every loop a lag of 0, three times in a row.
async fn wait_caught_up(http: &reqwest::Client, base: &str) {
    let started = Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 3 {
        let lags: Option<Value> = match http.get(format!("{base}/ready")).send().await {
            Ok(response) => response.json::<Value>().await.ok().map(|ready| ready["lag"].clone()),
            Err(_) => None,
        };
        let caught_up = lags.as_ref().and_then(Value::as_object).is_some_and(|lags| lags.values().all(|lag| lag.as_i64() == Some(0)));
        in_a_row = if caught_up { in_a_row + 1 } else { 0 };
        assert!(started.elapsed() < STEP_TIMEOUT, "order-svc's loops did not catch up in {STEP_TIMEOUT:?}: {lags:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// order-svc's log file, which every start of it appends to.
fn log_path(stack: &Stack) -> PathBuf {
    stack.dir.join("logs").join("order-svc.log")
}

/// How long order-svc's log is now: where the lines of what comes next begin.
fn log_len(stack: &Stack) -> u64 {
    std::fs::metadata(log_path(stack)).map_or(0, |m| m.len())
}

/// order-svc's JSON log lines written after byte `from`.
fn log_since(stack: &Stack, from: u64) -> Vec<Value> {
    let text = std::fs::read(log_path(stack)).unwrap_or_default();
    let tail = text.get(from as usize..).unwrap_or_default();
    String::from_utf8_lossy(tail).lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// Whether order-svc logged `message` after byte `from` of its log by `deadline` (polled).
async fn logged_by(stack: &Stack, from: u64, message: &str, deadline: Instant) -> bool {
    loop {
        if log_since(stack, from).iter().any(|line| line["fields"]["message"] == message) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seconds in field `field` of the first line of `order.events` saying `message` (0 if none).
fn logged_ms(lines: &[Value], message: &str, field: &str) -> f64 {
    lines
        .iter()
        .find(|line| line["fields"]["message"] == message && line["fields"]["topic"] == Order::EVENTS_TOPIC)
        .and_then(|line| line["fields"][field].as_f64())
        .map_or(0.0, |ms| ms / 1000.0)
}

fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}
