//! The API token: with `API_TOKEN` set, writes and `/admin/*` need `Authorization: Bearer`,
//! reads too with `API_TOKEN_READS=1`, probes and scrapes never; refusals are 401 with the JSON
//! error shape and `WWW-Authenticate: Bearer`. Without a token, `/admin/*` answers loopback
//! callers (this test is one) and the token never appears in the service's log.
use serde_json::{Value, json};
use std::time::Duration;
use system_tests::{Stack, env, unique};

const SERVICE: &str = "inventory-svc";
const TOKEN: &str = "access-control-test-token-0123456789";

async fn call(stack: &Stack, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new().request(method.clone(), stack.url(SERVICE, path));
    if method == reqwest::Method::POST {
        request = request.json(&json!({"quantity": 3}));
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_writes_and_admin_need_it_and_reads_stay_open() {
    let stack = Stack::start_on("access-token", &env("KAFKA_BROKERS"), &env("SCHEMA_REGISTRY_URL"), &[SERVICE], &[("API_TOKEN", TOKEN)]);
    let sku = unique("sku");
    let restock = format!("/stock/{sku}/restock");
    use reqwest::Method;

    for token in [None, Some("wrong-token-but-long-enough-0000")] {
        let (status, challenge, body) = call(&stack, Method::POST, &restock, token).await;
        assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")), "{token:?}: {body}");
        assert_eq!(body["status"], 401, "JSON error shape: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.contains(TOKEN)), "{body}");
        let (status, _, _) = call(&stack, Method::POST, "/admin/pause", token).await;
        assert_eq!(status, 401, "{token:?}");
    }
    let (status, _, body) = call(&stack, Method::POST, &restock, Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    stack.eventually(SERVICE, &format!("/stock/{sku}"), Duration::from_secs(60), |s| s["on_hand"] == 3).await;
    let (status, _, _) = call(&stack, Method::GET, &format!("/stock/{sku}"), None).await;
    assert_eq!(status, 200, "reads stay open without API_TOKEN_READS");
    let (status, _, body) = call(&stack, Method::POST, "/admin/pause?kind=projection", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(&stack, Method::POST, "/admin/resume", Some(TOKEN)).await;
    assert_eq!(status, 200);
    stack.stop(SERVICE);
    let log = std::fs::read_to_string(stack.dir.join("logs").join(format!("{SERVICE}.log"))).unwrap_or_default();
    assert!(!log.is_empty(), "no log to check");
    assert!(!log.contains(TOKEN), "the token is in the service's log");

    // A guessable token is refused at start, with a message saying what is wanted.
    let output = tokio::process::Command::from(stack.service_command(SERVICE))
        .env("API_TOKEN", "short")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output).await.expect("exits in time").expect("runs");
    assert!(!output.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("at least 16"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_api_token_reads_reads_need_it_too_but_probes_do_not() {
    let stack = Stack::start_on(
        "access-token-reads",
        &env("KAFKA_BROKERS"),
        &env("SCHEMA_REGISTRY_URL"),
        &[SERVICE],
        &[("API_TOKEN", TOKEN), ("API_TOKEN_READS", "1")],
    );
    use reqwest::Method;
    let (status, challenge, _) = call(&stack, Method::GET, "/stock?below=5", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    let (status, _, body) = call(&stack, Method::GET, "/stock?below=5", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    for probe in ["/health", "/metrics"] {
        let (status, _, _) = call(&stack, Method::GET, probe, None).await;
        assert_eq!(status, 200, "{probe}");
    }
    stack.stop(SERVICE);
}
