//! Spawns the registry binary against the broker in `KAFKA_BROKERS` and talks HTTP to it.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS not set: run scripts/test.sh")
}

pub fn unique_topic() -> String {
    format!("_schemas_test_{}", uuid::Uuid::new_v4().simple())
}

/// A running registry process; killed when dropped.
pub struct Registry {
    child: Child,
    pub url: String,
    pub topic: String,
    client: reqwest::Client,
}

impl Registry {
    pub async fn start() -> Registry {
        Registry::start_on(&unique_topic()).await
    }

    pub async fn start_on(topic: &str) -> Registry {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_schema-registry"))
            .env("KAFKA_BROKERS", brokers())
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("SCHEMAS_TOPIC", topic)
            .env("RUST_LOG", std::env::var("REGISTRY_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn schema-registry binary");
        let mut registry = Registry {
            child,
            url: format!("http://127.0.0.1:{port}"),
            topic: topic.to_string(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client"),
        };
        registry.wait_ready().await;
        registry
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("schema-registry exited during startup: {status}");
            }
            let ready = self.client.get(format!("{}/subjects", self.url)).send().await.is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "schema-registry did not become ready on {}", self.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a request with a JSON body (if any) and returns the status and the JSON answer.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.call_raw(method, path, body.as_deref(), CONTENT_TYPE).await
    }

    pub async fn call_raw(&self, method: Method, path: &str, body: Option<&str>, content_type: &str) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(body.to_string());
        }
        let response = request.send().await.expect("request to registry");
        let status = response.status();
        let text = response.text().await.expect("response body");
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer ({status}) {text:?}: {e}"));
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Registers `schema` under `subject`, asserting success; returns the id.
    pub async fn register(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self.post(&format!("/subjects/{subject}/versions"), serde_json::json!({ "schema": schema })).await;
        assert_eq!(status, StatusCode::OK, "register {subject}: {body}");
        body["id"].as_u64().expect("id in register answer")
    }

    pub fn stop(self) {
        // Drop does the work.
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("find a free port").port()
}

pub fn record_schema(name: &str, fields: &[&str]) -> String {
    format!(r#"{{"type":"record","name":"{name}","namespace":"test","fields":[{}]}}"#, fields.join(","))
}
