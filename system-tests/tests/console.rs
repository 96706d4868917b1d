//! The web console in a real browser: Debian's headless Chromium, driven over WebDriver
//! (chromedriver), against the five real services, broker, registry and database. An order
//! placed from the page reaches CONFIRMED in the list and in its detail without a reload, its
//! timeline is the same as `GET /orders/{id}/timeline`, the filters work, and every service's
//! readiness shows. A screenshot is written to the run folder.
//!
//! `CHROMIUM` and `CHROMEDRIVER` name the binaries (default Debian's, which `scripts/install.sh`
//! installs).
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::{
    collections::BTreeSet,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};
use system_tests::{Stack, free_port, test_dir};

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("console", &[]))
}

/// chromedriver, stopped when dropped together with the browser it started: they share a
/// process group of their own, so a failed test leaves no Chromium behind.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

/// Starts chromedriver on a free loopback port and waits until it says it is ready.
async fn start_driver() -> Driver {
    let port = free_port();
    let log = test_dir("chromedriver.log");
    std::fs::create_dir_all(log.parent().expect("a parent folder")).expect("run folder");
    let log_file = std::fs::File::create(&log).expect("chromedriver log");
    let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    let child = Command::new(&chromedriver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log handle"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|error| panic!("{chromedriver} does not start ({error}); scripts/install.sh installs it"));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Option<Value> = match http.get(format!("{}/status", driver.url)).send().await {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        if status.as_ref().is_some_and(|status| status["value"]["ready"] == true) {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver not ready within 30 s: {status:?}; its log: {}", log.display());
        tokio::time::sleep(POLL).await;
    }
}

/// A headless Chromium session. The flags keep it off the network this machine does not
/// have (background services, updates, sync) and let it run as root in a container.
async fn browser(driver: &Driver) -> Client {
    let profile = test_dir("chromium-profile");
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary("CHROMIUM", "/usr/bin/chromium"),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--window-size=1400,1000", format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Evaluates `script` in the page until `done` holds for its result; panics with the last
/// result at the deadline.
async fn page_until(client: &Client, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = client.execute(script, vec![]).await.unwrap_or_else(|error| panic!("{what}: {error}"));
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}; last seen {value}");
        tokio::time::sleep(POLL).await;
    }
}

async fn fill(client: &Client, id: &str, text: &str) {
    let input = client.find(Locator::Id(id)).await.unwrap_or_else(|error| panic!("#{id}: {error}"));
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Clicks what `css` finds, as a person would. The order list is drawn again whenever a stream
/// brings news, so the element found can be replaced before the click reaches it (a stale
/// element reference): then it is looked up again, until the deadline.
async fn click_live(client: &Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = match client.find(Locator::Css(css)).await {
            Ok(element) => element.click().await.map(|_| ()),
            Err(error) => Err(error),
        };
        match clicked {
            Ok(()) => return,
            Err(error) if error.is_stale_element_reference() => {}
            Err(error) => panic!("click {css}: {error}"),
        }
        assert!(Instant::now() < deadline, "click {css}: the element kept being replaced for {WAIT:?}");
        tokio::time::sleep(POLL).await;
    }
}

const ROW_STATUS: &str = r#"const row = document.querySelector(`#orders tr[data-order-id="${window.placedOrder}"]`);
return row ? row.querySelector("td.status").textContent : null;"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_order_placed_from_the_console_is_followed_live_to_confirmed_with_its_timeline() {
    let stack = stack();
    let (status, page) = stack.get_text("order-svc", "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Orders console"), "{page}");

    let (sku, customer) = stack.stocked(5, 10_000).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&stack.url("order-svc", "/")).await.expect("the console loads");

    // Every service's readiness, read from its own /ready.
    let services = page_until(
        &client,
        "every service shown ready",
        "return [...document.querySelectorAll('#services li.ready')].map(li => li.dataset.service)",
        |names| names.as_array().is_some_and(|names| names.len() == system_tests::services().len()),
    )
    .await;
    assert_eq!(
        services.as_array().expect("names").iter().filter_map(Value::as_str).collect::<BTreeSet<_>>(),
        system_tests::services().into_iter().collect::<BTreeSet<_>>()
    );

    // A mark in the page's memory: it survives only if the page is never reloaded.
    client.execute("window.consoleMark = 'still the same page'; return true", vec![]).await.expect("mark");
    fill(&client, "place-customer", &customer).await;
    fill(&client, "place-sku", &sku).await;
    fill(&client, "place-quantity", "2").await;
    fill(&client, "place-price", "1500").await;
    client.find(Locator::Id("place")).await.expect("the place button").click().await.expect("click");
    let placed = page_until(
        &client,
        "the placed order's id",
        "const id = document.getElementById('placed-order-id'); return id ? id.textContent : null",
        |id| id.as_str().is_some_and(|id| !id.is_empty()),
    )
    .await;
    let order_id = placed.as_str().expect("an id").to_string();
    client.execute("window.placedOrder = arguments[0]; return true", vec![json!(order_id)]).await.expect("remember the order");

    // Live: the list and the detail reach CONFIRMED by themselves.
    page_until(&client, "the order's row reaches CONFIRMED", ROW_STATUS, |status| status == "CONFIRMED").await;
    page_until(&client, "the detail shows CONFIRMED", "return document.getElementById('detail-status').textContent", |status| {
        status.as_str().is_some_and(|status| status.starts_with("CONFIRMED"))
    })
    .await;
    let mark = client.execute("return window.consoleMark || null", vec![]).await.expect("mark");
    assert_eq!(mark, "still the same page", "the page was reloaded");
    let view = stack.get("order-svc", &format!("/orders/{order_id}")).await.1;
    assert_eq!((view["customer_id"].as_str(), view["total_cents"].as_i64()), (Some(customer.as_str()), Some(3000)), "{view}");

    // The timeline across services, the same entries as the API's.
    let timeline_ids = "return [...document.querySelectorAll('#timeline tbody tr')].map(r => [r.dataset.topic, r.dataset.eventType])";
    let shown = page_until(&client, "the timeline shows the confirmation", timeline_ids, |rows| {
        rows.as_array().is_some_and(|rows| rows.iter().any(|row| row[1] == "OrderConfirmed"))
    })
    .await;
    let topics: BTreeSet<&str> = shown.as_array().expect("rows").iter().filter_map(|row| row[0].as_str()).collect();
    for topic in ["order.events", "stock.events", "account.events", "shipment.events"] {
        assert!(topics.contains(topic), "no {topic} entry in the console's timeline: {shown}");
    }
    let api: Value = stack.get("order-svc", &format!("/orders/{order_id}/timeline")).await.1;
    let api_entries = api.as_array().expect("a timeline").len();
    page_until(&client, "the console's timeline has every entry of the API's", timeline_ids, |rows| {
        rows.as_array().is_some_and(|rows| rows.len() >= api_entries)
    })
    .await;

    // Filters: by status (in the page) and by customer (a stream of the customer's orders).
    let select = client.find(Locator::Id("filter-status")).await.expect("status filter");
    select.select_by_value("CANCELLED").await.expect("select CANCELLED");
    page_until(&client, "a CONFIRMED order is not listed under CANCELLED", ROW_STATUS, Value::is_null).await;
    select.select_by_value("").await.expect("select any");
    fill(&client, "filter-customer", &customer).await;
    client.find(Locator::Css("#filters button[type=submit]")).await.expect("filter button").click().await.expect("filter");
    let customers = page_until(
        &client,
        "only the customer's orders",
        "return [...document.querySelectorAll('#orders tbody tr')].map(r => r.cells[1].textContent)",
        |names| names.as_array().is_some_and(|names| !names.is_empty()),
    )
    .await;
    assert!(customers.as_array().expect("names").iter().all(|name| name == customer.as_str()), "{customers}");

    // Opening the order from the list shows it again.
    click_live(&client, &format!("#orders tr[data-order-id=\"{order_id}\"]")).await;
    page_until(&client, "the opened order's id", "return document.getElementById('detail-order-id').textContent", |id| id == order_id.as_str()).await;

    let screenshot = test_dir("console").with_extension("png");
    std::fs::write(&screenshot, client.screenshot().await.expect("a screenshot")).expect("write the screenshot");
    println!("console screenshot: {}", screenshot.display());
    client.close().await.expect("close the browser");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_served_from_the_binary_with_a_strict_content_policy() {
    let stack = stack();
    let http = reqwest::Client::new();
    for (path, content_type) in [("/", "text/html"), ("/console/console.js", "text/javascript"), ("/console/console.css", "text/css")] {
        let response = http.get(stack.url("order-svc", path)).send().await.expect("order-svc answers");
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert!(header("content-type").starts_with(content_type), "{path}: {}", header("content-type"));
        assert!(header("content-security-policy").contains("script-src 'self'"), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    let (status, services) = stack.get("order-svc", "/console/services").await;
    assert_eq!(status, 200);
    let urls: Vec<(String, String)> = services
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| (s["name"].as_str().unwrap_or_default().to_string(), s["url"].as_str().unwrap_or_default().to_string()))
        .collect();
    let expected: Vec<(String, String)> = system_tests::services().into_iter().map(|name| (name.to_string(), stack.url(name, ""))).collect();
    assert_eq!(urls, expected);
    // Another origin's page may read /ready: the console is one.
    let ready = http.get(stack.url("inventory-svc", "/ready")).send().await.expect("inventory-svc answers");
    assert_eq!(ready.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));
    let body: Value = ready.json().await.expect("JSON");
    assert!(body["lag"].as_object().is_some_and(|lag| !lag.is_empty()), "the lag of each loop: {body}");
}
