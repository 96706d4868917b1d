//! Replay, end to end: after a 500-order mixed run, every service's read models rebuilt from
//! the topics equal the live ones (`replay --verify`), a rebuild swaps in while the service
//! keeps serving, applying the same partition range again changes nothing, and a deleted
//! database — with the service killed in the middle of catching up — comes back the same.
//! Runs on SQLite, and on PostgreSQL with READ_MODEL_DB=postgres (scripts/test.sh does both).
//!
//! One test function on purpose: the phases compare whole tables, so nothing else in this
//! binary may write to the shared topics meanwhile.
use runtime::{
    Backend, connect_read_model_db,
    testing::{TableDigest, shape},
};
use sqlx::{AnyPool, Row};
use std::{
    collections::BTreeMap,
    process::{Output, Stdio},
    time::{Duration, Instant},
};
use system_tests::{Stack, commands::*, services, unique};

const ORDERS: usize = 500;
const SKUS: usize = 20;
const UNITS_PER_SKU: i64 = 20;
const CUSTOMERS: usize = 25;
const PRICE: i64 = 1000;
const SETTLE: Duration = Duration::from_secs(300);
/// Tables of the runtime's own bookkeeping (positions, not read models) and of sqlx.
const NOT_READ_MODELS: [&str; 4] = ["projection_checkpoints", "projection_tips", "projection_generations", "_sqlx_migrations"];

/// Every read-model table of every service: table → digest.
type Digests = BTreeMap<String, BTreeMap<String, TableDigest>>;

#[tokio::test(flavor = "multi_thread")]
async fn read_models_rebuilt_from_the_topics_equal_the_live_ones() {
    let stack = Stack::start("replay", &[]);
    let started = Instant::now();
    let outcomes = run_mixed_orders(&stack).await;
    println!("{ORDERS} orders settled in {:?}: {outcomes:?}", started.elapsed());
    for expected in ["CONFIRMED", "OUT_OF_STOCK", "PAYMENT_DECLINED", "SHIPPING_UNAVAILABLE", "CUSTOMER_REQUEST"] {
        assert!(outcomes.contains_key(expected), "the run must include {expected}: {outcomes:?}");
    }

    // 1. A scratch rebuild of every read model equals the live one.
    for service in services() {
        let output = replay(&stack, service, &["--verify"]);
        assert!(output.status.success(), "{service} replay --verify failed:\n{}", text(&output));
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(report.contains("verified") && !report.contains("DIFFERS"), "{}", text(&output));
        println!("{report}");
    }

    // 2. A tampered live row is found by --verify (named by table and key); a rebuild swaps
    //    in correct tables while the service keeps answering, and the live run goes on.
    let before = digests(&stack).await;
    let sku = before["inventory-svc"]["stock"].rows.keys().next().expect("a stock row").clone();
    let pool = connect_read_model_db(&stack.database_url("inventory-svc"), None).await.expect("inventory database");
    sqlx::query("UPDATE stock SET on_hand = on_hand + 1 WHERE sku = $1").bind(&sku).execute(&pool).await.expect("tamper");
    pool.close().await;
    let output = replay(&stack, "inventory-svc", &["--verify"]);
    assert!(!output.status.success(), "verify must fail on a tampered row:\n{}", text(&output));
    assert!(text(&output).contains(&format!("table stock differs from its rebuild at key {sku}")), "{}", text(&output));
    for service in services() {
        let (output, answered) = replay_while_querying(&stack, service).await;
        assert!(output.status.success(), "{service} replay failed:\n{}", text(&output));
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(report.contains("events/s") && report.contains("swapped in"), "{}", text(&output));
        println!("{service} answered {answered} queries during its rebuild\n{report}");
    }
    assert_tables_equal(&before, &digests(&stack).await, "after the swaps");
    assert_no_replay_leftovers(&stack).await;
    let after_swap = place_and_settle_one_more(&stack).await;
    println!("an order placed after the swaps settled as {after_swap}");

    // 3. Applying the same partition ranges again (checkpoints rewound to 0, tips kept as the
    //    database has them) changes nothing.
    let settled = quiet_digests(&stack).await;
    for service in services() {
        stack.stop(service);
        let pool = connect_read_model_db(&stack.database_url(service), None).await.expect("service database");
        sqlx::query("UPDATE projection_checkpoints SET next_offset = 0").execute(&pool).await.expect("rewind");
        pool.close().await;
        stack.start_service(service);
    }
    wait_until_equal(&stack, &settled, "after re-applying every partition from offset 0").await;

    // 4. Deleting a database and restarting rebuilds the same read models, also when the
    //    service is killed in the middle of catching up (no gap, nothing counted twice).
    for service in services() {
        stack.stop(service);
        stack.delete_database(service);
        stack.start_service(service);
        if matches!(service, "order-svc" | "payment-svc") {
            kill_while_catching_up(&stack, service, &settled).await;
        }
    }
    wait_until_equal(&stack, &settled, "after deleting every database and restarting").await;
    println!("replay test done in {:?}", started.elapsed());
}

/// Places the orders and waits until each is CONFIRMED or CANCELLED; returns how many ended
/// how (CONFIRMED or the cancellation reason).
async fn run_mixed_orders(stack: &Stack) -> BTreeMap<String, usize> {
    // Every fifth customer cannot pay; demand (~625 units) exceeds stock (400).
    let deposits: Vec<i64> = (0..CUSTOMERS).map(|c| if c % 5 == 4 { 500 } else { 200_000 }).collect();
    let (skus, customers) = stack.stock_and_accounts("replay", SKUS, UNITS_PER_SKU, &deposits).await;
    let orders: Vec<String> = (0..ORDERS).map(|_| unique("replay-order")).collect();
    for (i, order_id) in orders.iter().enumerate() {
        let lines: Vec<(&str, i64, i64)> = if i % 4 == 0 {
            vec![(skus[i % SKUS].as_str(), 1, PRICE), (skus[(i + 7) % SKUS].as_str(), 1, PRICE)]
        } else {
            vec![(skus[i % SKUS].as_str(), 1, PRICE)]
        };
        // Antarctica is not served: those orders end SHIPPING_UNAVAILABLE (if they get that far).
        let country = if i % 23 == 0 { "AQ" } else { "DE" };
        stack.send("order.commands", order_id, &place_order(order_id, &customers[i % CUSTOMERS], &lines, "EUR", country)).await;
        if i % 10 == 3 {
            stack.send("order.commands", order_id, &cancel(order_id)).await;
        }
    }
    let mut outcomes = BTreeMap::new();
    let mut confirmed = Vec::new();
    for order_id in &orders {
        let view =
            stack.eventually("order-svc", &format!("/orders/{order_id}"), SETTLE, |o| o["status"] == "CONFIRMED" || o["status"] == "CANCELLED").await;
        let outcome = view["cancellation_reason"].as_str().unwrap_or("CONFIRMED").to_string();
        if outcome == "CONFIRMED" {
            confirmed.push(order_id.clone());
        }
        *outcomes.entry(outcome).or_default() += 1;
    }
    // Some confirmed orders travel on: dispatched, and some of those delivered.
    for (i, order_id) in confirmed.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        stack.send("shipment.commands", order_id, &dispatch(order_id)).await;
        if i % 10 == 0 {
            stack.send("shipment.commands", order_id, &deliver(order_id)).await;
        }
    }
    for (i, order_id) in confirmed.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let status = if i % 10 == 0 { "DELIVERED" } else { "SHIPPED" };
        stack.eventually("order-svc", &format!("/orders/{order_id}"), SETTLE, |o| o["status"] == status).await;
    }
    // The notifications of the last orders are the last events of the run.
    for order_id in &orders {
        stack
            .eventually("notify-svc", &format!("/notifications?order_id={order_id}"), SETTLE, |n| n.as_array().is_some_and(|all| !all.is_empty()))
            .await;
    }
    outcomes
}

async fn place_and_settle_one_more(stack: &Stack) -> String {
    let (sku, customer, order_id) = (unique("replay-sku"), unique("replay-cust"), unique("replay-order"));
    stack.send("stock.commands", &sku, &restock(&sku, 1)).await;
    stack.send("account.commands", &customer, &deposit(&customer, 5_000, "EUR")).await;
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), SETTLE, |a| a["balance_cents"] == 5_000).await;
    stack.send("order.commands", &order_id, &place_order(&order_id, &customer, &[(&sku, 1, PRICE)], "EUR", "DE")).await;
    let view = stack.order_reaches(&order_id, "CONFIRMED").await;
    stack
        .eventually("notify-svc", &format!("/notifications?order_id={order_id}"), SETTLE, |n| n.as_array().is_some_and(|all| !all.is_empty()))
        .await;
    view["status"].to_string()
}

/// `<service> replay <args>` as a one-shot process with the service's own settings.
fn replay(stack: &Stack, service: &str, args: &[&str]) -> Output {
    stack.service_command(service).arg("replay").args(args).env("HTTP_ADDR", "127.0.0.1:0").output().expect("replay runs")
}

/// Runs a rebuild while querying the service; every query must succeed. Returns the rebuild's
/// output and how many queries were answered meanwhile.
async fn replay_while_querying(stack: &Stack, service: &str) -> (Output, usize) {
    let child = stack
        .service_command(service)
        .arg("replay")
        .env("HTTP_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("replay starts");
    let done = tokio::task::spawn_blocking(move || child.wait_with_output());
    let path = match service {
        "order-svc" => "/orders?limit=20",
        "inventory-svc" => "/stock?below=1000",
        "payment-svc" => "/commands/none",
        "shipping-svc" => "/shipments?status=SCHEDULED",
        _ => "/notifications?customer_id=nobody",
    };
    let mut answered = 0;
    while !done.is_finished() {
        let (status, body) = stack.get(service, path).await;
        assert!(status == 200, "{service}{path} answered {status} {body} during the rebuild");
        answered += 1;
        // Paced, so the queries measure availability without starving the rebuild of CPU.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (done.await.expect("replay joined").expect("replay output"), answered)
}

/// Kills `service` once its projections have written some but not all rows, then restarts it.
async fn kill_while_catching_up(stack: &Stack, service: &'static str, expected: &Digests) {
    let url = stack.database_url(service);
    let total: usize = expected[service].values().map(|d| d.rows.len()).sum();
    let deadline = Instant::now() + SETTLE;
    loop {
        let rows = row_count(&url, &expected[service]).await;
        if rows > 0 && rows < total {
            stack.kill(service);
            println!("killed -9 {service} with {rows} of {total} rows rebuilt");
            break;
        }
        if rows >= total {
            println!("{service} caught up before it could be killed ({rows} rows); nothing to kill mid-batch");
            return;
        }
        assert!(Instant::now() < deadline, "{service} made no progress rebuilding");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.start_service(service);
}

async fn row_count(url: &str, tables: &BTreeMap<String, TableDigest>) -> usize {
    let Ok(pool) = connect_read_model_db(url, None).await else { return 0 };
    let mut rows = 0;
    for table in tables.keys() {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        if let Ok(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await {
            rows += row.try_get::<i64, _>(0).unwrap_or(0) as usize;
        }
    }
    pool.close().await;
    rows
}

async fn wait_until_equal(stack: &Stack, expected: &Digests, when: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = digests(stack).await;
        if now == *expected {
            return;
        }
        if Instant::now() > deadline {
            assert_tables_equal(expected, &now, when);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The digests once the live read models have stopped changing: the last order's command
/// outcomes and other read models off the saga's path follow their topics with a longer fetch
/// wait (`Pace::Background`, 1 s) and, once parked, probe them as seldom (1 s, up to 3 s for a
/// loop that was parked long, after a probe that can wait behind the fetch still open at the
/// pause), so they may still be a step behind when the order view is done. Two snapshots
/// further apart than that, and equal, are the settled state.
async fn quiet_digests(stack: &Stack) -> Digests {
    let quiet_for = (runtime::Pace::Background.fetch_wait() + runtime::Pace::Background.quiet_probe()) * 2;
    let deadline = Instant::now() + SETTLE;
    let mut last = digests(stack).await;
    loop {
        tokio::time::sleep(quiet_for).await;
        let now = digests(stack).await;
        if now == last {
            return now;
        }
        assert!(Instant::now() < deadline, "the read models kept changing for {SETTLE:?} with no traffic");
        last = now;
    }
}

fn assert_tables_equal(expected: &Digests, actual: &Digests, when: &str) {
    for (service, tables) in expected {
        for (table, digest) in tables {
            let other = actual.get(service).and_then(|t| t.get(table)).unwrap_or_else(|| panic!("{service}: table {table} missing {when}"));
            if let Some((key, difference)) = digest.differences(other).next() {
                panic!("{service}: table {table} differs {when} at key {key}: {difference}");
            }
        }
    }
}

async fn digests(stack: &Stack) -> Digests {
    let mut all = Digests::new();
    for service in services() {
        let url = stack.database_url(service);
        let backend = Backend::of(&url);
        let pool: AnyPool = connect_read_model_db(&url, None).await.expect("service database");
        let mut conn = pool.acquire().await.expect("connection");
        let tables_sql = match backend {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            Backend::Postgres => "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()",
        };
        let names: Vec<String> = sqlx::query(tables_sql)
            .fetch_all(&mut *conn)
            .await
            .expect("tables")
            .iter()
            .map(|row| row.try_get::<String, _>(0).expect("name"))
            .filter(|name| !NOT_READ_MODELS.contains(&name.as_str()))
            .collect();
        let mut tables = BTreeMap::new();
        for name in names {
            let shape = shape(&mut conn, backend, &name).await.expect("table shape");
            tables.insert(name.clone(), TableDigest::read(&mut conn, &shape, &name).await.expect("table digest"));
        }
        drop(conn);
        pool.close().await;
        all.insert(service.to_string(), tables);
    }
    all
}

/// After a swap (and after a verify) only the live tables are left, and on SQLite their
/// indexes have the names the migrations gave them.
async fn assert_no_replay_leftovers(stack: &Stack) {
    for service in services() {
        let url = stack.database_url(service);
        let pool = connect_read_model_db(&url, None).await.expect("service database");
        let sql = match Backend::of(&url) {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE name LIKE '%\\_\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            Backend::Postgres => {
                "SELECT CAST(relname AS TEXT) FROM pg_class WHERE relnamespace = CAST(current_schema() AS regnamespace) AND relname LIKE '%\\_\\_%' ESCAPE '\\'"
            }
        };
        let leftovers: Vec<String> = sqlx::query(sql).fetch_all(&pool).await.expect("catalog").iter().map(|row| row.get(0)).collect();
        pool.close().await;
        assert!(leftovers.is_empty(), "{service}: replay left {leftovers:?} behind");
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
