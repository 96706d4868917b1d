//! The Grafana dashboard (`observability/grafana/dashboards/orderflow.json`) queries only what
//! the services export: every metric of every panel query and template variable, with the
//! labels it filters and groups by, is found on the `/metrics` of a running system after real
//! traffic (an order confirmed, one cancelled out of stock, a command rejected, one dead-lettered,
//! and a loop restarting).
//!
//! The queries are read with a small PromQL scanner (selectors, label matchers, `by`/`without`
//! /`on`/`ignoring` lists; functions and keywords are not metrics); `name_bucket`, `name_sum`
//! and `name_count` belong to the histogram `name`. A restart does not happen in a healthy
//! system, so one order-svc runs on a broker of its own whose order topics are not
//! co-partitioned: its command processor fails at every start (as in `readiness.rs`) and
//! `orderflow_loop_restarts_total` shows.
use runtime::kafka::TopicSpec;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use system_tests::{
    Stack,
    commands::*,
    infra::{Broker, Registry},
    services, test_dir, unique,
};

const WAIT: Duration = Duration::from_secs(60);

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root").join("observability/grafana/dashboards/orderflow.json")
}

fn dashboard() -> Value {
    let path = dashboard_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

// ------------------------------------------------------------------ the dashboard's queries

/// One query of the dashboard: a panel target's `expr` or a template variable's query.
#[derive(Debug)]
struct Query {
    /// Where it is, for messages: `panel "<title>" target A` or `variable service`.
    place: String,
    expr: String,
    /// Labels named in the target's `legendFormat` (`{{label}}`).
    legend: Vec<String>,
    /// Labels a template variable takes the values of (`label_values(selector, label)`).
    values_of: Vec<String>,
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Every panel, rows' nested panels (collapsed rows keep theirs inside) included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    let mut pending: Vec<&Value> = array(dashboard, "panels").iter().rev().collect();
    while let Some(panel) = pending.pop() {
        found.push(panel);
        pending.extend(array(panel, "panels").iter().rev());
    }
    found
}

fn legend_labels(format: &str) -> Vec<String> {
    format.split("{{").skip(1).filter_map(|rest| rest.split_once("}}")).map(|(label, _)| label.trim().to_string()).collect()
}

fn queries(dashboard: &Value) -> Vec<Query> {
    let mut found = Vec::new();
    for panel in panels(dashboard) {
        let title = panel.get("title").and_then(Value::as_str).unwrap_or("?");
        for target in array(panel, "targets") {
            let Some(expr) = target.get("expr").and_then(Value::as_str) else { continue };
            let ref_id = target.get("refId").and_then(Value::as_str).unwrap_or("?");
            let legend = legend_labels(target.get("legendFormat").and_then(Value::as_str).unwrap_or_default());
            found.push(Query { place: format!("panel \"{title}\" target {ref_id}"), expr: expr.to_string(), legend, values_of: vec![] });
        }
    }
    for variable in array(&dashboard["templating"], "list") {
        if variable.get("type").and_then(Value::as_str) != Some("query") {
            continue;
        }
        let name = variable.get("name").and_then(Value::as_str).unwrap_or("?");
        let query = variable.get("query").map(|q| q.get("query").unwrap_or(q)).and_then(Value::as_str).unwrap_or_default();
        let place = format!("variable {name}");
        // Grafana's `label_values(selector, label)`; anything else is a PromQL query.
        match query.trim().strip_prefix("label_values(").and_then(|rest| rest.strip_suffix(')')) {
            Some(arguments) => {
                let (selector, label) = arguments.rsplit_once(',').unwrap_or_else(|| panic!("{place}: label_values without a selector: {query}"));
                found.push(Query { place, expr: selector.trim().to_string(), legend: vec![], values_of: vec![label.trim().to_string()] });
            }
            None => found.push(Query { place, expr: query.to_string(), legend: vec![], values_of: vec![] }),
        }
    }
    found
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// A number or a duration (`0.99`, `5m`).
    Number,
    /// A Grafana variable outside a string (`$__rate_interval`, `${service}`).
    Variable,
    Punct(String),
}

fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        i += 1;
        if c.is_whitespace() {
            continue;
        }
        if c == '#' {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut text = String::new();
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                    i += 1;
                }
                text.push(chars[i]);
                i += 1;
            }
            assert!(i < chars.len(), "unterminated string in {expr}");
            i += 1;
            out.push(Token::Str(text));
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Number);
        } else if c == '$' {
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            out.push(Token::Variable);
        } else {
            let two: String = chars[start..(start + 2).min(chars.len())].iter().collect();
            if ["!=", "=~", "!~", "==", "<=", ">="].contains(&two.as_str()) {
                i += 1;
                out.push(Token::Punct(two));
            } else {
                out.push(Token::Punct(c.to_string()));
            }
        }
    }
    out
}

/// `metric{label op "value", ...}` in a query.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// What a query reads: its selectors, and the labels of its `by`/`without`/`on`/`ignoring`/
/// `group_left`/`group_right` lists.
#[derive(Debug, Default, PartialEq)]
struct Reads {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

const AGGREGATIONS: &[&str] =
    &["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"];
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];

fn reads(expr: &str) -> Reads {
    let tokens = tokens(expr);
    let punct = |i: usize, p: &str| matches!(tokens.get(i), Some(Token::Punct(q)) if q == p);
    let mut reads = Reads::default();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(name) if GROUPING.contains(&name.to_lowercase().as_str()) => {
                i += 1;
                if punct(i, "(") {
                    i += 1;
                    while i < tokens.len() && !punct(i, ")") {
                        if let Token::Ident(label) = &tokens[i] {
                            reads.grouping.push(label.clone());
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(name) if AGGREGATIONS.contains(&name.to_lowercase().as_str()) || KEYWORDS.contains(&name.to_lowercase().as_str()) => i += 1,
            // A function call.
            Token::Ident(_) if punct(i + 1, "(") => i += 1,
            Token::Ident(name) => {
                let metric = name.clone();
                i += 1;
                let matchers = if punct(i, "{") { matchers(&tokens, &mut i, expr) } else { vec![] };
                reads.selectors.push(Selector { metric, matchers });
            }
            Token::Punct(p) if p == "{" => {
                let matchers = matchers(&tokens, &mut i, expr);
                let metric = matchers
                    .iter()
                    .find(|(label, op, _)| label == "__name__" && op == "=")
                    .map(|(_, _, name)| name.clone())
                    .unwrap_or_else(|| panic!("a selector without a metric name in {expr}"));
                reads.selectors.push(Selector { metric, matchers });
            }
            // Range and subquery brackets hold durations (and Grafana's interval variables).
            Token::Punct(p) if p == "[" => {
                while i < tokens.len() && !punct(i, "]") {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    reads
}

/// The matchers of `{...}` starting at `tokens[*i]` (the `{`); leaves `*i` after the `}`.
fn matchers(tokens: &[Token], i: &mut usize, expr: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    *i += 1;
    loop {
        match (tokens.get(*i), tokens.get(*i + 1), tokens.get(*i + 2)) {
            (Some(Token::Punct(close)), _, _) if close == "}" => {
                *i += 1;
                return found;
            }
            (Some(Token::Punct(comma)), _, _) if comma == "," => *i += 1,
            (Some(Token::Ident(label)), Some(Token::Punct(op)), Some(Token::Str(value))) if ["=", "!=", "=~", "!~"].contains(&op.as_str()) => {
                found.push((label.clone(), op.clone(), value.clone()));
                *i += 3;
            }
            other => panic!("cannot read the label matchers of {expr} at {other:?}"),
        }
    }
}

// ------------------------------------------------------------------ what the services export

/// One sample's labels.
type Labels = BTreeMap<String, String>;

/// The samples of one `/metrics` scrape, by sample name (`x_bucket` apart from `x_count`), and
/// the `# TYPE` of each family.
#[derive(Debug, Default)]
struct Exported {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, Vec<Labels>>,
}

/// `name{a="x",b="y"} value` → (name, labels); label values may hold `,`, `}` and escapes.
fn sample(line: &str) -> Option<(String, Labels)> {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = line[..end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = line[end..].chars().peekable();
    if rest.peek() == Some(&'{') {
        rest.next();
        loop {
            let label: String = rest.by_ref().take_while(|c| *c != '=').collect::<String>().trim().trim_start_matches(',').trim().to_string();
            if label.starts_with('}') || label.is_empty() {
                break;
            }
            if rest.next() != Some('"') {
                return None;
            }
            let mut value = String::new();
            while let Some(c) = rest.next() {
                match c {
                    '\\' => value.push(rest.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(label, value);
            match rest.next() {
                Some(',') if rest.peek() == Some(&'}') => {
                    rest.next();
                    break;
                }
                Some(',') => {}
                Some('}') => break,
                _ => return None,
            }
        }
    }
    Some((name, labels))
}

fn exported(text: &str) -> Exported {
    let mut exported = Exported::default();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((family, kind)) = rest.split_once(' ') {
                exported.types.insert(family.to_string(), kind.trim().to_string());
            }
        } else if !line.starts_with('#')
            && let Some((name, labels)) = sample(line)
        {
            exported.samples.entry(name).or_default().push(labels);
        }
    }
    exported
}

/// Why `reads` of `query` does not match what the services export (empty: it does). `scrapes`
/// are the services' `/metrics`, by service.
fn problems(query: &Query, scrapes: &BTreeMap<String, Exported>) -> Vec<String> {
    let reads = reads(&query.expr);
    let mut problems = Vec::new();
    if reads.selectors.is_empty() {
        problems.push(format!("{}: no metric in `{}`", query.place, query.expr));
    }
    // The samples of each metric the query reads, from every service exporting it.
    let mut read: Vec<(&str, Vec<&Labels>)> = Vec::new();
    for selector in &reads.selectors {
        let metric = selector.metric.as_str();
        let histogram_part = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| metric.strip_suffix(suffix));
        let family = histogram_part.filter(|base| scrapes.values().any(|e| e.types.get(*base).is_some_and(|t| t == "histogram"))).unwrap_or(metric);
        let samples: Vec<&Labels> =
            scrapes.values().filter(|e| e.types.contains_key(family)).flat_map(|e| e.samples.get(metric).into_iter().flatten()).collect();
        if samples.is_empty() {
            let what = if family == metric { String::new() } else { format!(" (of the histogram {family})") };
            problems.push(format!("{}: {metric}{what} is not exported by any service", query.place));
            continue;
        }
        for (label, op, value) in &selector.matchers {
            if label == "__name__" {
                continue;
            }
            if !samples.iter().any(|s| s.contains_key(label)) {
                problems.push(format!("{}: {metric} has no label {label}", query.place));
            } else if op == "=" && !value.contains('$') && !samples.iter().any(|s| s.get(label) == Some(value)) {
                problems.push(format!("{}: no sample of {metric} has {label}=\"{value}\"", query.place));
            }
        }
        read.push((metric, samples));
    }
    if read.is_empty() {
        return problems;
    }
    let names: Vec<&str> = read.iter().map(|(metric, _)| *metric).collect();
    let labelled = |label: &str| read.iter().any(|(_, samples)| samples.iter().any(|s| s.contains_key(label)));
    for (what, labels) in [("groups by", &reads.grouping), ("names in its legend", &query.legend), ("takes the values of", &query.values_of)] {
        for label in labels.iter().filter(|label| !labelled(label)) {
            problems.push(format!("{}: {what} {label}, a label none of {names:?} has", query.place));
        }
    }
    problems
}

// ------------------------------------------------------------------------------ the tests

#[test]
fn the_query_scanner_finds_metrics_matchers_and_grouping_labels() {
    let expr = r#"histogram_quantile(0.99, sum by (le, service) (rate(orderflow_x_bucket{service=~"$service", route!~"/(a|b)"}[$__rate_interval])))
        / on (service) group_left sum without (pod) (orderflow_y) > bool 0 and {__name__="orderflow_z", outcome="dead_lettered"} offset 5m"#;
    let matcher = |l: &str, op: &str, v: &str| (l.to_string(), op.to_string(), v.to_string());
    assert_eq!(
        reads(expr),
        Reads {
            selectors: vec![
                Selector {
                    metric: "orderflow_x_bucket".into(),
                    matchers: vec![matcher("service", "=~", "$service"), matcher("route", "!~", "/(a|b)")]
                },
                Selector { metric: "orderflow_y".into(), matchers: vec![] },
                Selector {
                    metric: "orderflow_z".into(),
                    matchers: vec![matcher("__name__", "=", "orderflow_z"), matcher("outcome", "=", "dead_lettered")]
                },
            ],
            grouping: vec!["le".into(), "service".into(), "service".into(), "pod".into()],
        }
    );
    let text = "# TYPE a counter\na{route=\"/orders/{id}\",q=\"x\\\"y,z\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n";
    let scrape = exported(text);
    assert_eq!(scrape.types.get("h").map(String::as_str), Some("histogram"));
    assert_eq!(scrape.samples["a"][0], BTreeMap::from([("route".into(), "/orders/{id}".into()), ("q".into(), "x\"y,z".into())]));
    let scrapes = BTreeMap::from([("svc".to_string(), scrape)]);
    let query = |expr: &str| Query { place: "test".into(), expr: expr.into(), legend: vec!["route".into()], values_of: vec![] };
    assert!(problems(&query("sum by (route) (rate(a{q=\"x\\\"y,z\"}[5m])) + h_count"), &scrapes).is_empty());
    // A histogram's own name, an unknown metric, label or value are each found wanting.
    for bad in ["h", "a_bucket", "orderflow_unknown", "a{nope=\"1\"}", "a{route=\"/other\"}", "sum by (nope) (a)"] {
        assert!(!problems(&query(bad), &scrapes).is_empty(), "{bad} should be reported");
    }
}

#[test]
fn the_dashboard_is_templated_on_a_prometheus_datasource_and_every_panel_has_queries_and_a_unit() {
    let dashboard = dashboard();
    assert!(dashboard.get("uid").and_then(Value::as_str).is_some_and(|uid| !uid.is_empty()), "the dashboard needs a uid");
    let variables = array(&dashboard["templating"], "list");
    let datasource = variables.iter().find(|v| v["name"] == "datasource").expect("a template variable `datasource`");
    assert_eq!((datasource["type"].as_str(), datasource["query"].as_str()), (Some("datasource"), Some("prometheus")), "{datasource}");
    let templated = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut ids = BTreeSet::new();
    let all = panels(&dashboard);
    assert_eq!(all.first().map(|p| &p["type"]), Some(&json!("row")), "the panels are in rows");
    for panel in all {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(ids.insert(panel["id"].as_i64().unwrap_or_else(|| panic!("{title}: no id"))), "{title}: id {} used twice", panel["id"]);
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_i64().zip(grid["w"].as_i64()).is_some_and(|(x, w)| x >= 0 && w > 0 && x + w <= 24), "{title}: gridPos {grid}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"], templated, "{title}: the panel's datasource must be the variable");
        let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
        assert!(!unit.is_empty(), "{title}: no unit");
        let targets = array(panel, "targets");
        assert!(!targets.is_empty(), "{title}: no queries");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            assert!(target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title}: a target without expr: {target}");
            assert!(target.get("datasource").is_none_or(|d| *d == templated), "{title}: a target's datasource must be the variable");
            assert!(ref_ids.insert(target["refId"].as_str().unwrap_or_default()), "{title}: refId {} twice", target["refId"]);
        }
    }
    for query in queries(&dashboard) {
        assert!(!reads(&query.expr).selectors.is_empty(), "{}: no metric found in `{}`", query.place, query.expr);
    }
}

/// `POST /orders` on order-svc (retried with the same command_id when no answer came); returns
/// the order id.
async fn place_over_http(stack: &Stack, customer: &str, sku: &str, quantity: i64) -> String {
    let order_id = unique("order");
    let request = json!({
        "order_id": order_id,
        "command_id": unique("cmd"),
        "customer_id": customer,
        "currency": "EUR",
        "lines": [{"sku": sku, "quantity": quantity, "unit_price_cents": 1000}],
        "shipping_address": {"name": "Ada Lovelace", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    });
    let (status, body) = stack.post_answered("order-svc", "/orders", &request, 3).await;
    assert_eq!(status, 202, "POST /orders answered {body}");
    order_id
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_queries_is_exported_by_a_running_service() {
    let queries = queries(&dashboard());
    assert!(!queries.is_empty(), "the dashboard has no queries");

    // An order-svc whose command processor cannot run (commands on two partitions, events on
    // one), restarted again and again: the restart counter exists only after a restart.
    let dir = test_dir("dashboard-restarts");
    let broker = Broker::start(&dir.join("broker"));
    let registry = Registry::start(&broker.address(), &dir);
    let topics = [("order.commands", 2), ("order.events", 1)].map(|(name, partitions)| TopicSpec { name: name.into(), partitions, configs: vec![] });
    runtime::kafka::ensure_topics(&broker.address(), &topics).await.expect("topics created");
    let restarting = Stack::start_on("dashboard-restarts", &broker.address(), &registry.url, &["order-svc"], &[]);

    // The whole system with real traffic: an order confirmed, one cancelled out of stock, a
    // command refused (cancelling an unknown order) and one dead-lettered (not JSON).
    let stack = Stack::start("dashboard", &[]);
    let (sku, customer) = (unique("sku"), unique("cust"));
    stack.send("stock.commands", &sku, &restock(&sku, 100)).await;
    stack.send("account.commands", &customer, &deposit(&customer, 1_000_000, "EUR")).await;
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == 100).await;
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == 1_000_000).await;
    let confirmed = place_over_http(&stack, &customer, &sku, 1).await;
    let out_of_stock = place_over_http(&stack, &customer, &sku, 1000).await;
    stack.order_reaches(&confirmed, "CONFIRMED").await;
    stack.order_reaches(&out_of_stock, "CANCELLED").await;
    let unknown = unique("order");
    stack.send("order.commands", &unknown, &cancel(&unknown)).await;
    stack.send_raw("order.commands", Some(&unique("order")), b"{not json").await;

    // Scrape until every query finds what it reads (gauges refresh every second or two, counters
    // appear at their first increment), or report what is missing.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut scrapes = BTreeMap::new();
        for service in services() {
            let (status, text) = stack.get_text(service, "/metrics").await;
            scrapes.insert(service.to_string(), if status == 200 { exported(&text) } else { Exported::default() });
        }
        let (status, text) = restarting.get_text("order-svc", "/metrics").await;
        scrapes.insert("order-svc (restarting)".to_string(), if status == 200 { exported(&text) } else { Exported::default() });

        let problems: Vec<String> = queries.iter().flat_map(|query| problems(query, &scrapes)).collect();
        if problems.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let families: Vec<String> =
                scrapes.iter().map(|(service, e)| format!("{service}: {}", e.types.keys().cloned().collect::<Vec<_>>().join(", "))).collect();
            panic!(
                "the dashboard {} queries what no service exports:\n  {}\nexported families:\n  {}",
                dashboard_path().display(),
                problems.join("\n  "),
                families.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
