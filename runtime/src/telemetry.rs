//! Logging: JSON lines when stdout is not a terminal (log files, collectors), human format
//! otherwise; `RUST_LOG` sets levels.
use std::io::IsTerminal;
use tracing_subscriber::{EnvFilter, fmt};

pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let result = if std::io::stdout().is_terminal() {
        fmt().with_env_filter(filter).try_init()
    } else {
        fmt().json().with_current_span(true).with_env_filter(filter).try_init()
    };
    if result.is_ok() {
        tracing::debug!(service, "logging initialised");
    }
}
