use crate::kafka;

/// Settings every service reads from the environment.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub name: &'static str,
    pub kafka_brokers: String,
    pub schema_registry_url: String,
    pub database_url: String,
    pub http_addr: String,
    pub run_dir: String,
    pub partitions: i32,
}

impl ServiceConfig {
    /// `KAFKA_BROKERS`, `SCHEMA_REGISTRY_URL`, `DATABASE_URL`, `HTTP_ADDR` (default: the
    /// service's port in `services.tsv`), `RUN_DIR`, `PARTITIONS`.
    pub fn from_env(name: &'static str) -> Result<Self, UnknownService> {
        let default_port = super::list::service(name).ok_or(UnknownService(name))?.port;
        let var = |key: &str, default: String| std::env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or(default);
        let run_dir = var("RUN_DIR", "run".into());
        Ok(ServiceConfig {
            name,
            kafka_brokers: var("KAFKA_BROKERS", "127.0.0.1:9092".into()),
            schema_registry_url: var("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081".into()),
            database_url: var("DATABASE_URL", format!("sqlite://{run_dir}/data/{name}.db?mode=rwc")),
            http_addr: var("HTTP_ADDR", format!("127.0.0.1:{default_port}")),
            partitions: var("PARTITIONS", kafka::DEFAULT_PARTITIONS.to_string()).parse().unwrap_or(kafka::DEFAULT_PARTITIONS),
            run_dir,
        })
    }
}

/// A service binary whose name has no line in `services.tsv`.
#[derive(Debug, thiserror::Error)]
#[error("service {0} is not in services.tsv (add a line: name, port, crate)")]
pub struct UnknownService(pub &'static str);
