//! End-to-end tests: the real binary against a real broker (`KAFKA_BROKERS`).

mod common;

use apache_avro::types::Value as Avro;
use common::{Registry, record_schema};
use reqwest::{Method, StatusCode};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde_json::json;

const F_ID: &str = r#"{"name":"id","type":"string"}"#;
const F_AMOUNT: &str = r#"{"name":"amount","type":"long"}"#;
const F_NOTE_NO_DEFAULT: &str = r#"{"name":"note","type":"string"}"#;
const F_NOTE_DEFAULT: &str = r#"{"name":"note","type":"string","default":""}"#;

#[tokio::test]
async fn converter_encodes_and_decodes_through_the_registry() {
    let registry = Registry::start().await;
    let schema = record_schema("Order", &[F_ID, F_AMOUNT]);
    let settings = SrSettings::new(registry.url.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let decoder = AvroDecoder::new(settings);
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema("orders".to_string(), false, SuppliedSchema::new(None, SchemaType::Avro, schema));

    let bytes = encoder.encode(vec![("id", Avro::String("o-1".into())), ("amount", Avro::Long(42))], strategy).await.expect("encode via registry");

    let (status, latest) = registry.get("/subjects/orders-value/versions/latest").await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    assert_eq!(latest["version"], 1);
    let id = latest["id"].as_u64().expect("id") as u32;
    // Confluent wire format: magic byte 0, then the schema id as 4 big-endian bytes.
    assert_eq!(bytes[0], 0);
    assert_eq!(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]), id);

    let decoded = decoder.decode(Some(&bytes)).await.expect("decode via registry");
    assert_eq!(decoded.value, Avro::Record(vec![("id".to_string(), Avro::String("o-1".into())), ("amount".to_string(), Avro::Long(42)),]));
}

#[tokio::test]
async fn rest_endpoints_answer_like_confluent() {
    let registry = Registry::start().await;
    let (status, root) = registry.get("/").await;
    assert_eq!((status, root), (StatusCode::OK, json!({})));
    assert_eq!(registry.get("/subjects").await.1, json!([]));

    let schema = record_schema("Payment", &[F_ID, F_AMOUNT]);
    let id = registry.register("payments-value", &schema).await;
    // Same schema, same subject: same id, no new version. Whitespace does not matter.
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&schema).unwrap()).unwrap();
    assert_eq!(registry.register("payments-value", &pretty).await, id);
    // Same schema, another subject: id reused, version 1 there.
    assert_eq!(registry.register("other-value", &schema).await, id);
    // Clients append query parameters we do not know; they must be ignored.
    let (status, body) = registry.post("/subjects/payments-value/versions?normalize=false", json!({"schema": schema, "schemaType": "AVRO"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": id})));

    assert_eq!(registry.get("/subjects").await.1, json!(["other-value", "payments-value"]));
    assert_eq!(registry.get("/subjects/payments-value/versions").await.1, json!([1]));
    let expected = json!({"subject": "payments-value", "version": 1, "id": id, "schema": schema});
    assert_eq!(registry.get("/subjects/payments-value/versions/latest").await.1, expected);
    assert_eq!(registry.get("/subjects/payments-value/versions/1").await.1, expected);
    assert_eq!(registry.get(&format!("/schemas/ids/{id}?deleted=true")).await.1, json!({"schema": schema}));

    // Lookup.
    let (status, found) = registry.post("/subjects/payments-value?deleted=false", json!({"schema": pretty})).await;
    assert_eq!((status, found), (StatusCode::OK, expected));
    let unknown = record_schema("Payment", &[F_ID]);
    let (status, body) = registry.post("/subjects/payments-value", json!({"schema": unknown})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], 40403);
    let (status, body) = registry.post("/subjects/nobody-value", json!({"schema": schema})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], 40401);

    // Config.
    assert_eq!(registry.get("/config").await.1, json!({"compatibilityLevel": "BACKWARD"}));
    let (status, body) = registry.put("/config", json!({"compatibility": "FULL"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"compatibility": "FULL"})));
    assert_eq!(registry.get("/config").await.1, json!({"compatibilityLevel": "FULL"}));
    // A subject without its own level falls back to the global one.
    assert_eq!(registry.get("/config/payments-value").await.1, json!({"compatibilityLevel": "FULL"}));
    let (status, body) = registry.put("/config/payments-value", json!({"compatibility": "NONE"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"compatibility": "NONE"})));
    assert_eq!(registry.get("/config/payments-value").await.1, json!({"compatibilityLevel": "NONE"}));
    assert_eq!(registry.get("/config").await.1, json!({"compatibilityLevel": "FULL"}));

    // Compatibility endpoint, against `other-value` (FULL via the global level).
    let with_default = record_schema("Payment", &[F_ID, F_AMOUNT, F_NOTE_DEFAULT]);
    let changed_type = record_schema("Payment", &[F_ID, r#"{"name":"amount","type":"string"}"#]);
    for version in ["latest", "1"] {
        let path = format!("/compatibility/subjects/other-value/versions/{version}");
        let (status, body) = registry.post(&path, json!({"schema": with_default})).await;
        assert_eq!((status, &body["is_compatible"]), (StatusCode::OK, &json!(true)), "{body}");
        let (status, body) = registry.post(&path, json!({"schema": changed_type})).await;
        assert_eq!((status, &body["is_compatible"]), (StatusCode::OK, &json!(false)), "{body}");
    }
    // Level NONE on payments-value: anything goes.
    let (_, body) = registry.post("/compatibility/subjects/payments-value/versions/latest", json!({"schema": changed_type})).await;
    assert_eq!(body["is_compatible"], true);

    // Delete: soft-deletes all versions; the id stays resolvable for old data.
    let (status, body) = registry.call(Method::DELETE, "/subjects/other-value", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!([1])));
    assert_eq!(registry.get("/subjects").await.1, json!(["payments-value"]));
    let (status, body) = registry.get("/subjects/other-value/versions").await;
    assert_eq!((status, body["error_code"].clone()), (StatusCode::NOT_FOUND, json!(40401)));
    assert_eq!(registry.get(&format!("/schemas/ids/{id}")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn backward_compatibility_is_enforced() {
    let registry = Registry::start().await;
    let subject = "/subjects/shipments-value/versions";
    let v1 = registry.register("shipments-value", &record_schema("Shipment", &[F_ID])).await;

    let incompatible = record_schema("Shipment", &[F_ID, F_NOTE_NO_DEFAULT]);
    let (status, body) = registry.post(subject, json!({"schema": incompatible})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error_code"], 409);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("incompatible")), "{body}");
    assert_eq!(registry.get(subject).await.1, json!([1]));

    let compatible = record_schema("Shipment", &[F_ID, F_NOTE_DEFAULT]);
    let v2 = registry.register("shipments-value", &compatible).await;
    assert_ne!(v1, v2);
    assert_eq!(registry.get(subject).await.1, json!([1, 2]));
    let (_, latest) = registry.get(&format!("{subject}/latest")).await;
    assert_eq!((latest["version"].clone(), latest["id"].clone()), (json!(2), json!(v2)));

    // BACKWARD only compares with the latest version, BACKWARD_TRANSITIVE with all of them:
    // v3 (only `note`, no default) reads v2 data, but not v1 data, which has no `note`.
    let v3 = record_schema("Shipment", &[F_NOTE_NO_DEFAULT]);
    registry.put("/config/shipments-value", json!({"compatibility": "BACKWARD_TRANSITIVE"})).await;
    let (status, body) = registry.post(subject, json!({"schema": v3})).await;
    assert_eq!((status, body["error_code"].clone()), (StatusCode::CONFLICT, json!(409)), "{body}");
    registry.put("/config/shipments-value", json!({"compatibility": "BACKWARD"})).await;
    registry.register("shipments-value", &v3).await;
    assert_eq!(registry.get(subject).await.1, json!([1, 2, 3]));
}

#[tokio::test]
async fn restart_rebuilds_the_same_state_from_the_topic() {
    let registry = Registry::start().await;
    let topic = registry.topic.clone();
    let a = registry.register("a-value", &record_schema("A", &[F_ID])).await;
    let b = registry.register("b-value", &record_schema("B", &[F_ID])).await;
    let a2 = registry.register("a-value", &record_schema("A", &[F_ID, F_NOTE_DEFAULT])).await;
    registry.put("/config", json!({"compatibility": "FORWARD"})).await;
    registry.put("/config/b-value", json!({"compatibility": "NONE"})).await;
    registry.call(Method::DELETE, "/subjects/b-value", None).await;

    let before = snapshot(&registry).await;
    registry.stop();

    let registry = Registry::start_on(&topic).await;
    assert_eq!(snapshot(&registry).await, before);
    assert_eq!(registry.get("/subjects").await.1, json!(["a-value"]));
    assert_eq!(registry.get(&format!("/schemas/ids/{b}")).await.0, StatusCode::OK);

    // New ids continue after the highest one ever used; versions after the highest one.
    let c = registry.register("c-value", &record_schema("C", &[F_ID])).await;
    assert_eq!(c, a.max(b).max(a2) + 1);
    registry.register("b-value", &record_schema("B", &[F_ID])).await;
    assert_eq!(registry.get("/subjects/b-value/versions").await.1, json!([2]));
}

async fn snapshot(registry: &Registry) -> Vec<serde_json::Value> {
    let mut out = vec![registry.get("/subjects").await.1, registry.get("/config").await.1];
    for path in [
        "/subjects/a-value/versions",
        "/subjects/a-value/versions/1",
        "/subjects/a-value/versions/2",
        "/subjects/b-value/versions",
        "/config/a-value",
        "/config/b-value",
        "/schemas/ids/1",
        "/schemas/ids/2",
        "/schemas/ids/3",
    ] {
        out.push(registry.get(path).await.1);
    }
    out
}

#[tokio::test]
async fn errors_use_confluent_codes_and_never_kill_the_server() {
    let registry = Registry::start().await;
    registry.register("e-value", &record_schema("E", &[F_ID])).await;

    let cases: Vec<(Method, &str, Option<serde_json::Value>, StatusCode, u64)> = vec![
        (Method::GET, "/subjects/missing/versions", None, StatusCode::NOT_FOUND, 40401),
        (Method::GET, "/subjects/missing/versions/latest", None, StatusCode::NOT_FOUND, 40401),
        (Method::DELETE, "/subjects/missing", None, StatusCode::NOT_FOUND, 40401),
        (Method::GET, "/subjects/e-value/versions/7", None, StatusCode::NOT_FOUND, 40402),
        (Method::GET, "/schemas/ids/9999", None, StatusCode::NOT_FOUND, 40403),
        (Method::GET, "/schemas/ids/abc", None, StatusCode::NOT_FOUND, 40403),
        (Method::GET, "/subjects/e-value/versions/abc", None, StatusCode::UNPROCESSABLE_ENTITY, 42202),
        (Method::GET, "/subjects/e-value/versions/0", None, StatusCode::UNPROCESSABLE_ENTITY, 42202),
        (
            Method::POST,
            "/subjects/e-value/versions",
            Some(json!({"schema": "{\"type\":\"record\",\"name\":"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (Method::POST, "/subjects/e-value/versions", Some(json!({"schema": "{\"type\":\"nonsense\"}"})), StatusCode::UNPROCESSABLE_ENTITY, 42201),
        (Method::POST, "/subjects/e-value/versions", Some(json!({"schema": 42})), StatusCode::UNPROCESSABLE_ENTITY, 42201),
        (Method::PUT, "/config", Some(json!({"compatibility": "SIDEWAYS"})), StatusCode::UNPROCESSABLE_ENTITY, 42203),
        (Method::PUT, "/config/e-value", Some(json!({"level": "FULL"})), StatusCode::UNPROCESSABLE_ENTITY, 42203),
    ];
    for (method, path, body, status, code) in cases {
        let (got_status, got) = registry.call(method.clone(), path, body).await;
        assert_eq!((got_status, &got["error_code"]), (status, &json!(code)), "{method} {path}: {got}");
        assert!(got["message"].is_string(), "{got}");
    }

    for garbage in ["{not json", "", "\u{0}\u{1}", "[1,2", "null"] {
        for ct in [common::CONTENT_TYPE, "application/json", "application/vnd.schemaregistry+json"] {
            let (status, body) = registry.call_raw(Method::POST, "/subjects/e-value/versions", Some(garbage), ct).await;
            assert!(status.is_client_error(), "{garbage:?} -> {status} {body}");
            assert!(body["error_code"].is_u64(), "{body}");
        }
    }
    let (status, body) = registry.call_raw(Method::PUT, "/config", Some("]]"), "text/plain").await;
    assert!(status.is_client_error(), "{status} {body}");

    // Still alive and unchanged.
    assert_eq!(registry.get("/subjects").await.1, json!(["e-value"]));
    assert_eq!(registry.get("/config").await.1, json!({"compatibilityLevel": "BACKWARD"}));
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_ids() {
    let registry = std::sync::Arc::new(Registry::start().await);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                let schema = record_schema(&format!("C{i}"), &[F_ID]);
                registry.register(&format!("c{i}-value"), &schema).await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("register task"));
    }
    ids.sort();
    assert_eq!(ids, (1..=8).collect::<Vec<u64>>());
}

/// The project's own contract over what is already deployed: `tests/fixtures/released/` holds
/// the event schemas as they were registered before the shop's additions (commit 14c879c);
/// each is registered, then the working copy's `schemas/` version over it, under the BACKWARD
/// rule the system runs with. A change that could not read events already in the log is
/// refused here (409), before any broker sees it.
#[tokio::test]
async fn the_projects_schemas_register_over_the_released_versions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let registry = Registry::start().await;
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/fixtures/released")).expect("the released schemas") {
        let released_path = entry.expect("a released schema").path();
        let file = released_path.file_name().and_then(|name| name.to_str()).expect("a file name").to_string();
        let released = std::fs::read_to_string(&released_path).expect("the released version");
        let current = std::fs::read_to_string(root.join("../schemas").join(&file)).expect("the same file in schemas/");
        assert_ne!(released, current, "{file}: unchanged since its release, so nothing to check: drop its fixture");
        let subject = format!("{}-value", file.trim_end_matches(".avsc"));
        let old = registry.register(&subject, &released).await;
        let (status, body) = registry.post(&format!("/subjects/{subject}/versions"), json!({ "schema": current })).await;
        assert_eq!(status, StatusCode::OK, "{file}: the working copy over the released version: {body}");
        assert_ne!(body["id"].as_u64(), Some(old), "{file}: a new version");
        assert_eq!(registry.get(&format!("/subjects/{subject}/versions")).await.1, json!([1, 2]), "{file}");
        checked.push(file);
    }
    checked.sort();
    assert_eq!(checked, ["notification.events.avsc", "shipment.events.avsc", "stock.events.avsc"]);
}
