//! The web console at `/`: one page for operators and customer service, built into the binary
//! (no CDN, no build step): recent orders with live status, filters by status and customer,
//! an order's detail with its timeline across every service, stuck sagas, each service's
//! readiness and lag, and a form to place a test order.
//!
//! The page uses only the service's public routes (`GET /orders/events`, `GET /orders/{id}`,
//! `GET /orders/{id}/events`, `GET /sagas/stuck`, `POST /orders`) and every service's
//! `/ready`, whose addresses `GET /console/services` tells it. It is not part of the OpenAPI
//! document: it is a page, not an API.
use axum::{
    Json,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use runtime::http::ApiRoutes;
use serde::Serialize;

/// The environment variable naming where each service answers, for the console's readiness
/// and lag panel: `name=url,name=url`. Unset: each service on the page's own host, at its
/// port in `services.tsv`.
pub const SERVICE_URLS_ENV: &str = "CONSOLE_SERVICE_URLS";

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The page's scripts and styles are its own files, so the policy can forbid inline ones;
/// `connect-src` is open because the other services' `/ready` are on other origins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src *; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Where the console finds one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleService {
    pub name: &'static str,
    /// Its base URL; `None`: the page's host at `port`.
    pub url: Option<String>,
    pub port: u16,
}

/// A `CONSOLE_SERVICE_URLS` that does not say where the services are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SERVICE_URLS_ENV}={value:?}: {reason}")]
pub struct ConsoleConfigError {
    value: String,
    reason: String,
}

/// The services the console shows, from [`SERVICE_URLS_ENV`].
pub fn services_from_env() -> Result<Vec<ConsoleService>, ConsoleConfigError> {
    services_from_setting(std::env::var(SERVICE_URLS_ENV).ok().as_deref())
}

/// Every service of `services.tsv`, with the URL the setting gives it, if any. A name that is
/// no service, a URL that is not `http(s)://…`, or a service named twice is refused.
pub fn services_from_setting(setting: Option<&str>) -> Result<Vec<ConsoleService>, ConsoleConfigError> {
    let mut services: Vec<ConsoleService> =
        runtime::services().into_iter().map(|entry| ConsoleService { name: entry.name, url: None, port: entry.port }).collect();
    let Some(value) = setting.filter(|value| !value.trim().is_empty()) else { return Ok(services) };
    let refuse = |reason: String| ConsoleConfigError { value: value.to_string(), reason };
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (name, url) = item.split_once('=').ok_or_else(|| refuse(format!("{item:?} is not name=url")))?;
        let url = url.trim().trim_end_matches('/');
        let service = services.iter_mut().find(|service| service.name == name.trim()).ok_or_else(|| refuse(format!("{name:?} is no service")))?;
        let scheme_ok = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).is_some_and(|rest| !rest.is_empty());
        if !scheme_ok {
            return Err(refuse(format!("{url:?} is not an http:// or https:// URL")));
        }
        if service.url.is_some() {
            return Err(refuse(format!("{name} is named twice")));
        }
        service.url = Some(url.to_string());
    }
    Ok(services)
}

/// `/`, its script and style, and `GET /console/services`: routes without OpenAPI documentation.
pub fn routes(services: Vec<ConsoleService>) -> ApiRoutes {
    ApiRoutes::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/console/console.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/console/console.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/console/services", get(move || async move { Json(services.clone()) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // A new binary serves a new page; no stale script against a changed API.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_every_service_is_on_the_pages_host_at_its_own_port() {
        let services = services_from_setting(None).expect("no setting is fine");
        assert_eq!(services.iter().map(|s| s.name).collect::<Vec<_>>(), runtime::services().iter().map(|s| s.name).collect::<Vec<_>>());
        assert!(services.iter().all(|s| s.url.is_none() && s.port > 0), "{services:?}");
        assert_eq!(services_from_setting(Some("  ")), Ok(services));
    }

    #[test]
    fn a_setting_moves_the_services_it_names() {
        let services = services_from_setting(Some("inventory-svc=http://10.0.0.2:9000/, order-svc=https://shop.example")).expect("valid");
        let url = |name: &str| services.iter().find(|s| s.name == name).and_then(|s| s.url.clone());
        assert_eq!(url("inventory-svc").as_deref(), Some("http://10.0.0.2:9000"));
        assert_eq!(url("order-svc").as_deref(), Some("https://shop.example"));
        assert_eq!(url("payment-svc"), None);
    }

    #[test]
    fn a_setting_that_does_not_say_where_services_are_is_refused() {
        for (setting, reason) in [
            ("inventory-svc", "is not name=url"),
            ("billing-svc=http://x", "is no service"),
            ("order-svc=ftp://x", "not an http"),
            ("order-svc=http://", "not an http"),
            ("order-svc=http://a,order-svc=http://b", "named twice"),
        ] {
            let error = services_from_setting(Some(setting)).expect_err(setting);
            assert!(error.to_string().contains(reason), "{setting}: {error}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_script_and_style() {
        assert!(PAGE.contains(r#"<script src="/console/console.js" defer></script>"#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="/console/console.css">"#));
        for external in ["http://", "https://", "//cdn"] {
            assert!(!PAGE.contains(external) && !SCRIPT.contains(external) && !STYLE.contains(external), "{external} in the console");
        }
        assert!(!PAGE.contains("<script>") && !PAGE.contains(" style="), "inline script or style, which the policy forbids");
    }
}
