//! A chaos run (`scripts/chaos.sh`): the whole system on a durable broker behind a
//! fault-injecting proxy, a shop's orders at a constant rate, and on a seeded schedule kill -9
//! of services and of the broker, registry (and PostgreSQL) restarts, reset, refused and slow
//! connections, a stalled process and an operator pause. Then, with the faults over, it checks
//! that every order is terminal, that stock, money and notifications add up and that every
//! service's read models equal a rebuild, and prints each figure and the time to recover.
mod faults;

use clap::Parser;
use faults::{Injector, schedule};
use serde_json::json;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};
use system_tests::{
    Stack,
    fault_proxy::FaultProxy,
    free_port, infra, services,
    shop::{Journey, Shop, checks},
};

#[derive(Parser, Debug)]
#[command(about = "Faults on a seeded schedule while orders flow; then every invariant is checked")]
struct Args {
    /// Orders per minute, at a constant arrival rate.
    #[arg(long, default_value_t = 600)]
    rate: u32,
    /// How long orders arrive and faults happen, e.g. `45s`, `3m`.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and of the orders (default: drawn and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Partitions per topic (`scripts/up.sh`'s default on Nisshi is 1).
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// How long, after the last fault, everything may take to add up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    settle: Duration,
    /// A script that restarts the PostgreSQL server of the read models (READ_MODEL_DB=postgres).
    #[arg(long, env = "CHAOS_POSTGRES_RESTART")]
    postgres_restart: Option<PathBuf>,
    /// The run folder: broker storage, logs, summary.json.
    #[arg(long, env = "TEST_RUN_DIR")]
    dir: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |at| text.split_at(at));
    let number: u64 = number.parse().map_err(|_| format!("{text:?}: a whole number with s or m, e.g. 45s or 3m"))?;
    match unit {
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?}: the unit is s or m")),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    let orders = (u64::from(args.rate) * args.duration.as_secs() / 60) as usize;
    println!(
        "[chaos] seed {seed}: {orders} orders at {} orders/min for {:?}, then at most {:?} to settle; {} partition(s) per topic",
        args.rate, args.duration, args.settle, args.partitions
    );
    std::fs::create_dir_all(&args.dir).expect("run folder");

    // Every connection to the broker goes through the proxy: the broker advertises it.
    let broker_port = free_port();
    let proxy = Arc::new(FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], broker_port))));
    let broker = infra::Broker::start_behind(&args.dir.join("broker"), broker_port, &proxy.address());
    let registry = infra::Registry::start(&proxy.address(), &args.dir);
    let registry_url = registry.url.clone();
    let proxy_address = proxy.address();
    let partitions = args.partitions.to_string();
    let stack = Arc::new(
        tokio::task::spawn_blocking(move || {
            // As `scripts/up.sh` runs them: one static group member per service, so a restarted
            // service takes its partitions back at once.
            Stack::start_on("chaos", &proxy_address, &registry_url, &services(), &[("SERVICE_INSTANCE", "0"), ("PARTITIONS", &partitions)])
        })
        .await
        .expect("stack"),
    );
    println!(
        "[chaos] broker 127.0.0.1:{broker_port} (sqlite storage) behind proxy {}; services' logs in {}",
        proxy.address(),
        stack.dir.join("logs").display()
    );
    let shop = Arc::new(Shop::open(&stack, orders).await);

    let plan = schedule(seed, args.duration, args.postgres_restart.is_some());
    println!("[chaos] fault schedule ({} faults):", plan.len());
    for planned in &plan {
        println!("[chaos]   t={:>6.1}s  {}", planned.at.as_secs_f64(), planned.fault);
    }
    let injector = Injector {
        stack: stack.clone(),
        broker,
        registry,
        proxy: proxy.clone(),
        postgres_restart: args.postgres_restart.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let start = Instant::now();
    let faults = std::thread::spawn({
        let plan = plan.clone();
        move || injector.run(&plan, start)
    });

    // Journeys may go on after the load while faults still run late; the checks' own deadline
    // is counted from the last fault.
    let deadline = start + args.duration + args.settle + Duration::from_secs(60);
    let mut journeys = tokio::task::JoinSet::new();
    let mut arrivals = tokio::time::interval(Duration::from_secs(60) / args.rate.max(1));
    for index in 0..orders {
        arrivals.tick().await;
        journeys.spawn(Journey::draw(seed, index).run(stack.clone(), shop.clone(), deadline));
    }
    let (injector, injected) = match tokio::task::spawn_blocking(move || faults.join()).await.expect("join") {
        Ok(done) => done,
        Err(panic) => {
            eprintln!("[chaos] a fault could not be carried out: {panic:?}");
            return ExitCode::FAILURE;
        }
    };
    let faults_over = Instant::now();
    println!("[chaos] faults over at t={:.1}s; waiting for every order", start.elapsed().as_secs_f64());
    let journeys: Vec<Journey> = journeys.join_all().await;

    let (verdicts, passed_at) = checks::settle(&stack, &shop, &journeys, faults_over + args.settle).await;
    let replays = verify_replays(&stack).await;
    drop(injector);

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for fault in &injected {
        *kinds.entry(fault.fault.kind()).or_default() += 1;
    }
    let mut settled: Vec<Duration> = journeys.iter().filter_map(|j| j.settled_after).collect();
    settled.sort_unstable();
    let quantile = |q: f64| settled.get(((settled.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default();
    let within_5s = settled.iter().filter(|d| **d <= Duration::from_secs(5)).count();
    let retries: u32 = journeys.iter().map(|j| j.retries).sum();
    let recovery = passed_at.map(|at| at.saturating_duration_since(faults_over));

    println!("\n[chaos] ===== summary (seed {seed}) =====");
    println!("[chaos] faults injected: {} ({kinds:?})", injected.len());
    println!(
        "[chaos] place -> CONFIRMED/CANCELLED: p50 {:.2?}, p99 {:.2?}, {:.1} % within 5 s; {retries} requests retried",
        quantile(0.5),
        quantile(0.99),
        100.0 * within_5s as f64 / settled.len().max(1) as f64
    );
    for verdict in &verdicts {
        println!("[chaos] {:<13} {}  {}", verdict.name, if verdict.passed() { "ok  " } else { "FAIL" }, verdict.figures);
        for failure in &verdict.failures {
            println!("[chaos]                 - {failure}");
        }
    }
    for (service, passed) in &replays {
        println!("[chaos] replay --verify {service}: {}", if *passed { "read models equal a rebuild" } else { "FAIL (see its log)" });
    }
    match recovery {
        Some(recovery) => println!("[chaos] recovered {recovery:.1?} after the last fault (at most {:?})", args.settle),
        None => println!("[chaos] NOT recovered within {:?} of the last fault", args.settle),
    }
    let passed = recovery.is_some() && replays.iter().all(|(_, passed)| *passed);
    let summary = json!({
        "seed": seed,
        "rate_per_min": args.rate,
        "duration_s": args.duration.as_secs(),
        "faults": injected.iter().map(|f| json!({"at_s": f.at.as_secs_f64(), "fault": f.fault.to_string(), "took_s": f.took.as_secs_f64()})).collect::<Vec<_>>(),
        "faults_by_kind": kinds,
        "orders_offered": journeys.len(),
        "orders_placed": journeys.iter().filter(|j| j.placed).count(),
        "settle_p50_s": quantile(0.5).as_secs_f64(),
        "settle_p99_s": quantile(0.99).as_secs_f64(),
        "checks": verdicts.iter().map(|v| json!({"name": v.name, "passed": v.passed(), "figures": v.figures, "failures": v.failures})).collect::<Vec<_>>(),
        "replay_verified": replays.iter().map(|(s, p)| json!({"service": s, "passed": p})).collect::<Vec<_>>(),
        "recovery_s": recovery.map(|r| r.as_secs_f64()),
        "passed": passed,
    });
    let summary_file = args.dir.join("summary.json");
    std::fs::write(&summary_file, serde_json::to_string_pretty(&summary).expect("json")).expect("summary.json");
    println!("[chaos] {} ({})", if passed { "PASSED" } else { "FAILED" }, summary_file.display());
    if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `<service> replay --verify` for every service, next to the running system: each rebuilds
/// its read models from the topics into scratch tables and compares them with the live ones.
async fn verify_replays(stack: &Arc<Stack>) -> Vec<(&'static str, bool)> {
    let mut results = Vec::new();
    for service in services() {
        let stack = stack.clone();
        let passed = tokio::task::spawn_blocking(move || {
            let log = std::fs::File::create(stack.dir.join("logs").join(format!("{service}-replay-verify.log"))).expect("replay log");
            let mut command = stack.service_command(service);
            // A one-shot process: no HTTP listener of its own.
            command.env("HTTP_ADDR", "127.0.0.1:0").args(["replay", "--verify"]).stdout(log.try_clone().expect("log")).stderr(log);
            command.status().is_ok_and(|status| status.success())
        })
        .await
        .unwrap_or(false);
        results.push((service, passed));
    }
    results
}
