//! Delivery of every `NotificationSent` once it is in the log: the side effect runs after the
//! decision is durable, so nothing is delivered that was not decided.
//!
//! * [`scheduler`] (pure) derives from the log which notifications still wait and when each
//!   attempt is due: per customer, in order, with back-off ([`retry`]) and a circuit breaker
//!   ([`breaker`]) in front of the endpoint;
//! * [`runner`] follows `notification.events` (its partitions split by a consumer group), makes
//!   the attempts (each with a timeout), and records each outcome as a command of the
//!   Notification aggregate (`RecordDeliveryFailure`, `RecordDelivered`, `ParkDelivery`); a
//!   parked notification's `NotificationSent` record goes to `notification.events.dlq` first.
//!
//! The outcome events are the checkpoint: after a restart or a rebalance, what the log says was
//! delivered or parked is not sent again. Between a receiver's 2xx and its `NotificationDelivered`
//! in the log (a crash, a partition moving to another member) a notification can go out twice:
//! delivery is at least once, and the `event_id` each delivery carries is the receivers'
//! idempotency key.
pub mod breaker;
pub mod retry;
pub mod runner;
pub mod scheduler;

use breaker::BreakerSettings;
use retry::RetryPolicy;
use std::time::Duration;

/// Attempts a notification gets before it is parked.
pub const MAX_ATTEMPTS_ENV: &str = "NOTIFY_MAX_ATTEMPTS";
/// Milliseconds of the wait after the first failed attempt (it doubles with each failure).
pub const RETRY_FIRST_DELAY_ENV: &str = "NOTIFY_RETRY_FIRST_DELAY_MS";
/// Milliseconds of the longest wait between two attempts (before jitter).
pub const RETRY_MAX_DELAY_ENV: &str = "NOTIFY_RETRY_MAX_DELAY_MS";
/// Milliseconds an attempt may take (connecting, sending, the answer).
pub const TIMEOUT_ENV: &str = "NOTIFY_TIMEOUT_MS";
/// Different customers whose deliveries must fail in a row to open the circuit breaker.
pub const BREAKER_RECIPIENTS_ENV: &str = "NOTIFY_BREAKER_RECIPIENTS";
/// Milliseconds the open breaker holds attempts back before a probe.
pub const BREAKER_COOLDOWN_ENV: &str = "NOTIFY_BREAKER_COOLDOWN_MS";
/// Most attempts under way at once.
pub const MAX_IN_FLIGHT_ENV: &str = "NOTIFY_MAX_IN_FLIGHT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub retry: RetryPolicy,
    pub breaker: BreakerSettings,
    pub timeout: Duration,
    pub max_in_flight: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry: RetryPolicy { max_attempts: 8, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(300) },
            breaker: BreakerSettings { recipients_to_open: 3, cooldown: Duration::from_secs(30) },
            timeout: Duration::from_secs(10),
            max_in_flight: 16,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl DeliveryConfig {
    /// The defaults, overridden by the `NOTIFY_*` variables that are set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The defaults, overridden by what `lookup` finds (blank counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = DeliveryConfig::default();
        let number = |variable: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(variable).filter(|value| !value.trim().is_empty()) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(parsed) if parsed > 0 => Ok(parsed),
                    _ => Err(ConfigError { variable, value, expected: "a whole number above 0" }),
                },
            }
        };
        let millis = |variable: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            number(variable, u64::try_from(default.as_millis()).unwrap_or(u64::MAX)).map(Duration::from_millis)
        };
        let first_delay = millis(RETRY_FIRST_DELAY_ENV, defaults.retry.first_delay)?;
        let max_delay = millis(RETRY_MAX_DELAY_ENV, defaults.retry.max_delay)?;
        if max_delay < first_delay {
            return Err(ConfigError {
                variable: RETRY_MAX_DELAY_ENV,
                value: max_delay.as_millis().to_string(),
                expected: "at least NOTIFY_RETRY_FIRST_DELAY_MS",
            });
        }
        Ok(DeliveryConfig {
            retry: RetryPolicy {
                max_attempts: i64::try_from(number(MAX_ATTEMPTS_ENV, defaults.retry.max_attempts as u64)?).unwrap_or(i64::MAX),
                first_delay,
                max_delay,
            },
            breaker: BreakerSettings {
                recipients_to_open: usize::try_from(number(BREAKER_RECIPIENTS_ENV, defaults.breaker.recipients_to_open as u64)?)
                    .unwrap_or(usize::MAX),
                cooldown: millis(BREAKER_COOLDOWN_ENV, defaults.breaker.cooldown)?,
            },
            timeout: millis(TIMEOUT_ENV, defaults.timeout)?,
            max_in_flight: usize::try_from(number(MAX_IN_FLIGHT_ENV, defaults.max_in_flight as u64)?).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<DeliveryConfig, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DeliveryConfig::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn unset_and_blank_variables_keep_the_defaults() {
        assert_eq!(config(&[]), Ok(DeliveryConfig::default()));
        assert_eq!(config(&[(MAX_ATTEMPTS_ENV, " ")]), Ok(DeliveryConfig::default()));
    }

    #[test]
    fn every_variable_overrides_its_setting() {
        let config = config(&[
            (MAX_ATTEMPTS_ENV, "4"),
            (RETRY_FIRST_DELAY_ENV, "50"),
            (RETRY_MAX_DELAY_ENV, "200"),
            (TIMEOUT_ENV, "1500"),
            (BREAKER_RECIPIENTS_ENV, "5"),
            (BREAKER_COOLDOWN_ENV, "700"),
            (MAX_IN_FLIGHT_ENV, "2"),
        ])
        .expect("valid");
        assert_eq!(
            config,
            DeliveryConfig {
                retry: RetryPolicy { max_attempts: 4, first_delay: Duration::from_millis(50), max_delay: Duration::from_millis(200) },
                breaker: BreakerSettings { recipients_to_open: 5, cooldown: Duration::from_millis(700) },
                timeout: Duration::from_millis(1500),
                max_in_flight: 2,
            }
        );
    }

    #[test]
    fn unusable_values_are_refused_with_the_variable_named() {
        assert_eq!(config(&[(MAX_ATTEMPTS_ENV, "0")]).unwrap_err().variable, MAX_ATTEMPTS_ENV);
        assert_eq!(config(&[(TIMEOUT_ENV, "ten")]).unwrap_err().to_string(), "NOTIFY_TIMEOUT_MS=\"ten\": a whole number above 0");
        assert_eq!(config(&[(RETRY_FIRST_DELAY_ENV, "500"), (RETRY_MAX_DELAY_ENV, "100")]).unwrap_err().variable, RETRY_MAX_DELAY_ENV);
    }
}
