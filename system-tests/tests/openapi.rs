//! Every service's `GET /openapi.json` lists exactly the routes the service serves: the one
//! OpenAPI test for all services (no broker needed: the routes are served in process over a
//! migrated read-model database).
use runtime::{
    http::ApiRoutes,
    testing::{
        openapi::{assert_documents_exactly, documented_and_served},
        read_model_db,
    },
};
use sqlx::migrate::Migrator;

/// Routes every service serves besides its own.
const SHARED: [&str; 2] = ["GET /commands/{command_id}", "GET /openapi.json"];

struct Case {
    name: &'static str,
    version: &'static str,
    routes: fn() -> ApiRoutes,
    migrator: &'static Migrator,
    own: &'static [&'static str],
}

fn cases() -> [Case; 5] {
    [
        Case {
            name: "order-svc",
            version: order_svc::VERSION,
            routes: order_svc::routes,
            migrator: &order_svc::MIGRATOR,
            own: &[
                "GET /orders",
                "GET /orders/events",
                "GET /orders/{id}",
                "GET /orders/{id}/events",
                "GET /orders/{id}/timeline",
                "GET /sagas/stuck",
                "POST /orders",
                "POST /orders/{id}/cancel",
            ],
        },
        Case {
            name: "inventory-svc",
            version: inventory_svc::VERSION,
            routes: inventory_svc::routes,
            migrator: &inventory_svc::MIGRATOR,
            own: &["GET /reservations/{order_id}", "GET /stock", "GET /stock/{sku}", "POST /stock/{sku}/restock", "PUT /stock/{sku}/threshold"],
        },
        Case {
            name: "payment-svc",
            version: payment_svc::VERSION,
            routes: payment_svc::routes,
            migrator: &payment_svc::MIGRATOR,
            own: &["GET /accounts/{customer_id}", "GET /payments/{order_id}", "POST /accounts/{customer_id}/deposits"],
        },
        Case {
            name: "shipping-svc",
            version: shipping_svc::VERSION,
            routes: shipping_svc::routes,
            migrator: &shipping_svc::MIGRATOR,
            own: &[
                "GET /shipments",
                "GET /shipments/{order_id}",
                "GET /shipments/{order_id}/label",
                "POST /shipments/{order_id}/deliver",
                "POST /shipments/{order_id}/dispatch",
                "POST /shipments/{order_id}/tracking",
            ],
        },
        Case {
            name: "notify-svc",
            version: notify_svc::VERSION,
            routes: notify_svc::routes,
            migrator: &notify_svc::MIGRATOR,
            own: &["GET /notifications", "PUT /preferences/{customer_id}"],
        },
    ]
}

#[tokio::test]
async fn every_service_documents_exactly_the_routes_it_serves() {
    let listed: Vec<&str> = runtime::services().iter().map(|service| service.name).collect();
    assert_eq!(cases().map(|case| case.name).to_vec(), listed, "one case per line of services.tsv");
    for case in cases() {
        let (pool, _db) = read_model_db(case.migrator).await;
        let expected: Vec<&str> = case.own.iter().chain(&SHARED).copied().collect();
        assert_documents_exactly(case.name, case.version, (case.routes)(), pool, &expected).await;
    }
}

#[tokio::test]
async fn a_route_registered_without_an_annotation_is_found_undocumented() {
    let (pool, _db) = read_model_db(&inventory_svc::MIGRATOR).await;
    let undocumented = inventory_svc::routes().route("/stock/{sku}/audit", axum::routing::get(|| async { "audit" }));
    let (_, documented, served) = documented_and_served("inventory-svc", inventory_svc::VERSION, undocumented, pool).await;
    assert_eq!(served.difference(&documented).collect::<Vec<_>>(), ["GET /stock/{sku}/audit"]);
}

#[tokio::test]
async fn post_orders_documents_its_idempotency_key_header() {
    let (pool, _db) = read_model_db(&order_svc::MIGRATOR).await;
    let (json, _, _) = documented_and_served("order-svc", order_svc::VERSION, order_svc::routes(), pool).await;
    let parameters = json["paths"]["/orders"]["post"]["parameters"].as_array().cloned().unwrap_or_default();
    let key = parameters.iter().find(|p| p["name"] == "Idempotency-Key").unwrap_or_else(|| panic!("no Idempotency-Key in {parameters:?}"));
    assert_eq!((key["in"].as_str(), key["required"].as_bool()), (Some("header"), Some(false)), "{key}");
    let bad_request = &json["paths"]["/orders"]["post"]["responses"]["400"]["description"];
    assert!(bad_request.as_str().is_some_and(|d| d.contains("Idempotency-Key")), "{bad_request}");
}
