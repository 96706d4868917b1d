//! For services' tests: does the OpenAPI document list exactly the routes the service serves?
use crate::http::{ApiRoutes, QueryRoutes, openapi::documented};
use axum::http::header::CONTENT_TYPE;
use std::collections::BTreeSet;

/// Methods a route can be documented with (HEAD comes with GET in axum and is not listed).
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The test every service has: its `GET /openapi.json` parses, is titled `name` at `version`,
/// and lists exactly the routes the service serves (its own `routes` and the runtime's
/// shared ones), which are `expected` (`"METHOD /path"`).
pub async fn assert_documents_exactly(name: &str, version: &str, routes: ApiRoutes, pool: sqlx::AnyPool, expected: &[&str]) {
    let (json, documented, served) = documented_and_served(name, version, routes, pool).await;
    assert_eq!((json["info"]["title"].as_str(), json["info"]["version"].as_str()), (Some(name), Some(version)));
    assert_eq!(documented, served, "documented (left) and served (right) routes differ");
    assert_eq!(documented, expected.iter().map(|route| route.to_string()).collect::<BTreeSet<_>>());
}

/// Serves the service's own routes plus the runtime's shared ones (`GET /commands/{id}` and
/// `GET /openapi.json`), exactly as a running service does, and returns `(document,
/// documented, served)`: the `"METHOD /path"` pairs `GET /openapi.json` lists, and those the
/// router really answers. Served paths are read from the router itself; for each path, a
/// method is served unless it answers 405. Probes send a malformed JSON body, so write routes
/// answer 400 before producing anything.
pub async fn documented_and_served(
    name: &str,
    version: &str,
    routes: ApiRoutes,
    pool: sqlx::AnyPool,
) -> (serde_json::Value, BTreeSet<String>, BTreeSet<String>) {
    let routes = documented(name, version, routes);
    let paths = registered_paths(&routes);
    let base = super::serve(routes, pool).await;
    let client = reqwest::Client::new();

    let response = client.get(format!("{base}/openapi.json")).send().await.expect("GET /openapi.json");
    assert_eq!(response.status().as_u16(), 200, "GET /openapi.json");
    let text = response.text().await.expect("body of /openapi.json");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("/openapi.json is not JSON ({e}): {text}"));
    for reference in references(&json) {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        assert!(json["components"]["schemas"].get(name).is_some(), "/openapi.json refers to a missing schema {reference}");
    }
    let documented = json["paths"]
        .as_object()
        .expect("/openapi.json has paths")
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item is an object");
            METHODS.iter().filter(|method| item.contains_key(&method.to_ascii_lowercase())).map(move |method| format!("{method} {path}"))
        })
        .collect();

    let mut served = BTreeSet::new();
    for path in paths {
        let concrete = concrete_path(&path);
        for method in METHODS {
            let response = client
                .request(method.parse().expect("method"), format!("{base}{concrete}"))
                .header(CONTENT_TYPE, "application/json")
                .body("{")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {concrete}: {e}"));
            if response.status() != reqwest::StatusCode::METHOD_NOT_ALLOWED {
                served.insert(format!("{method} {path}"));
            }
        }
    }
    (json, documented, served)
}

/// Every `$ref` in a JSON document.
fn references(json: &serde_json::Value) -> Vec<String> {
    match json {
        serde_json::Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("$ref", serde_json::Value::String(reference)) => vec![reference.clone()],
                _ => references(value),
            })
            .collect(),
        serde_json::Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => vec![],
    }
}

/// `/stock/{sku}` → `/stock/probe`.
fn concrete_path(template: &str) -> String {
    template.split('/').map(|segment| if segment.starts_with('{') { "probe" } else { segment }).collect::<Vec<_>>().join("/")
}

/// The paths registered on an axum router. axum has no API to list them, but its `Debug`
/// output names them (`node: Node { paths: {RouteId(0): "/a", ...} }`); should that format
/// change, this panics rather than find no route.
pub fn registered_paths(routes: &QueryRoutes) -> BTreeSet<String> {
    const MARKER: &str = "node: Node { paths: {";
    let debug = format!("{routes:?}");
    let start = debug.find(MARKER).unwrap_or_else(|| panic!("axum's Debug output of a Router changed; no {MARKER:?} in {debug}")) + MARKER.len();
    let mut paths = BTreeSet::new();
    let mut chars = debug[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => paths.insert(chars.by_ref().take_while(|&c| c != '"').collect()),
            '}' => break,
            _ => continue,
        };
    }
    assert!(!paths.is_empty(), "no route found in axum's Debug output: {debug}");
    paths
}
