//! How long an order may wait for each reply of its saga: the one place that says which status
//! waits on which step ([`waiting_on`]) and how long each step may take ([`DeadlineConfig`],
//! `ORDER_DEADLINE_*_MS`). [`OrderDeadlines`] hands both to the runtime, which fires
//! `TimeOutOrder` when a wait runs out; the order decider then cancels with `TIMEOUT` if the
//! order still waits in that step. A report of stuck sagas reads the same functions.
use crate::order::{OrderDecider, OrderState, OrderStatus};
use contracts::order::{OrderCommand, SagaStep};
use std::time::Duration;

pub const STOCK_DEADLINE_ENV: &str = "ORDER_DEADLINE_STOCK_MS";
pub const PAYMENT_DEADLINE_ENV: &str = "ORDER_DEADLINE_PAYMENT_MS";
pub const SHIPMENT_DEADLINE_ENV: &str = "ORDER_DEADLINE_SHIPMENT_MS";

/// A week: the longest deadline the settings accept, far beyond any reply worth waiting for.
pub const MAX_DEADLINE_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// The step an order in `status` waits in for another service's reply, if any. Confirmed orders
/// wait for nothing the saga can time out: dispatch and delivery are a warehouse's and a
/// carrier's work, not a service's reply.
pub fn waiting_on(status: OrderStatus) -> Option<SagaStep> {
    match status {
        OrderStatus::Pending => Some(SagaStep::Stock),
        OrderStatus::StockReserved => Some(SagaStep::Payment),
        OrderStatus::Paid => Some(SagaStep::Shipment),
        OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Cancelled => None,
    }
}

/// Whether an order in `status` is past every step of its saga: no later event brings it back
/// into one (a cancellation from here on is shipping's to answer, and the order waits on no
/// service for it).
pub fn past_every_step(status: OrderStatus) -> bool {
    match status {
        OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid => false,
        OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Cancelled => true,
    }
}

/// What the order waits for in `step`, as the cancellation's detail says it.
pub fn awaited(step: SagaStep) -> &'static str {
    match step {
        SagaStep::Stock => "its stock to be reserved",
        SagaStep::Payment => "its payment",
        SagaStep::Shipment => "its shipment to be scheduled",
    }
}

/// How long each step may wait. The defaults leave a saga whose p99 is a few seconds (see the
/// README's throughput figures) far from any deadline, even under saturation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineConfig {
    pub stock: Duration,
    pub payment: Duration,
    pub shipment: Duration,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        DeadlineConfig { stock: Duration::from_secs(30), payment: Duration::from_secs(60), shipment: Duration::from_secs(120) }
    }
}

/// A deadline setting that is not a number of milliseconds in range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} must be a whole number of milliseconds from 1 to {MAX_DEADLINE_MS}, not {value:?}")]
pub struct DeadlineConfigError {
    pub variable: &'static str,
    pub value: String,
}

impl DeadlineConfig {
    /// `ORDER_DEADLINE_STOCK_MS`, `ORDER_DEADLINE_PAYMENT_MS`, `ORDER_DEADLINE_SHIPMENT_MS`; an
    /// unset or empty one keeps its default.
    pub fn from_env() -> Result<Self, DeadlineConfigError> {
        Self::from_settings(|variable| std::env::var(variable).ok())
    }

    /// Like [`DeadlineConfig::from_env`], with the settings looked up by `setting`.
    pub fn from_settings(setting: impl Fn(&'static str) -> Option<String>) -> Result<Self, DeadlineConfigError> {
        let defaults = DeadlineConfig::default();
        let read = |variable: &'static str, default: Duration| -> Result<Duration, DeadlineConfigError> {
            let Some(value) = setting(variable).filter(|value| !value.trim().is_empty()) else { return Ok(default) };
            match value.trim().parse::<u64>() {
                Ok(millis @ 1..=MAX_DEADLINE_MS) => Ok(Duration::from_millis(millis)),
                _ => Err(DeadlineConfigError { variable, value }),
            }
        };
        Ok(DeadlineConfig {
            stock: read(STOCK_DEADLINE_ENV, defaults.stock)?,
            payment: read(PAYMENT_DEADLINE_ENV, defaults.payment)?,
            shipment: read(SHIPMENT_DEADLINE_ENV, defaults.shipment)?,
        })
    }

    /// How long an order may wait in `step`.
    pub fn limit(&self, step: SagaStep) -> Duration {
        match step {
            SagaStep::Stock => self.stock,
            SagaStep::Payment => self.payment,
            SagaStep::Shipment => self.shipment,
        }
    }

    /// The step an order in `status` since `since_ms` (epoch milliseconds: the `occurred_at` of
    /// the event that put it there) waits in, and when that wait runs out.
    pub fn due(&self, status: OrderStatus, since_ms: i64) -> Option<(SagaStep, i64)> {
        let step = waiting_on(status)?;
        Some((step, since_ms.saturating_add(i64::try_from(self.limit(step).as_millis()).unwrap_or(i64::MAX))))
    }
}

/// The order saga's deadlines, as the runtime's deadline loop fires them.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderDeadlines(pub DeadlineConfig);

impl runtime::Deadlines for OrderDeadlines {
    type Decider = OrderDecider;
    type Step = SagaStep;
    const NAME: &'static str = "order-deadlines";

    fn waiting(&self, state: &OrderState) -> Option<(SagaStep, Duration)> {
        let OrderState::Placed(order) = state else { return None };
        order.waiting_on().map(|step| (step, self.0.limit(step)))
    }

    fn finished(&self, state: &OrderState) -> bool {
        matches!(state, OrderState::Placed(order) if past_every_step(order.status))
    }

    fn timed_out(&self, order_id: &str, step: SagaStep, limit: Duration) -> OrderCommand {
        OrderCommand::TimeOutOrder { order_id: order_id.to_string(), step, deadline_ms: i64::try_from(limit.as_millis()).ok() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(settings: &[(&'static str, &str)]) -> Result<DeadlineConfig, DeadlineConfigError> {
        let settings: HashMap<&str, String> = settings.iter().map(|(k, v)| (*k, v.to_string())).collect();
        DeadlineConfig::from_settings(|variable| settings.get(variable).cloned())
    }

    #[test]
    fn each_waiting_status_waits_on_its_step_and_the_others_on_nothing() {
        let waits: Vec<_> = OrderStatus::ALL.into_iter().map(|status| (status.as_str(), waiting_on(status))).collect();
        assert_eq!(
            waits,
            [
                ("PENDING", Some(SagaStep::Stock)),
                ("STOCK_RESERVED", Some(SagaStep::Payment)),
                ("PAID", Some(SagaStep::Shipment)),
                ("CONFIRMED", None),
                ("SHIPPED", None),
                ("DELIVERED", None),
                ("CANCELLED", None),
            ]
        );
    }

    #[test]
    fn unset_or_empty_settings_keep_the_defaults() {
        assert_eq!(config(&[]), Ok(DeadlineConfig::default()));
        assert_eq!(config(&[(PAYMENT_DEADLINE_ENV, "  ")]), Ok(DeadlineConfig::default()));
        assert_eq!(
            DeadlineConfig::default(),
            DeadlineConfig { stock: Duration::from_secs(30), payment: Duration::from_secs(60), shipment: Duration::from_secs(120) }
        );
    }

    #[test]
    fn each_step_has_its_own_setting() {
        let config = config(&[(STOCK_DEADLINE_ENV, "1"), (PAYMENT_DEADLINE_ENV, "2500"), (SHIPMENT_DEADLINE_ENV, &MAX_DEADLINE_MS.to_string())])
            .expect("valid settings");
        assert_eq!(config.limit(SagaStep::Stock), Duration::from_millis(1));
        assert_eq!(config.limit(SagaStep::Payment), Duration::from_millis(2500));
        assert_eq!(config.limit(SagaStep::Shipment), Duration::from_millis(MAX_DEADLINE_MS));
    }

    #[test]
    fn a_setting_that_is_not_milliseconds_in_range_is_refused_by_name() {
        for bad in ["0", "-5", "1.5", "30s", "abc", &(MAX_DEADLINE_MS + 1).to_string(), "99999999999999999999999"] {
            let error = config(&[(SHIPMENT_DEADLINE_ENV, bad)]).expect_err(bad);
            assert_eq!(error, DeadlineConfigError { variable: SHIPMENT_DEADLINE_ENV, value: bad.to_string() });
            let message = error.to_string();
            assert!(message.starts_with("ORDER_DEADLINE_SHIPMENT_MS must be a whole number of milliseconds"), "{message}");
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
    }

    #[test]
    fn a_wait_is_due_its_steps_limit_after_it_began() {
        let config = DeadlineConfig::default();
        assert_eq!(config.due(OrderStatus::Pending, 1_000), Some((SagaStep::Stock, 31_000)));
        assert_eq!(config.due(OrderStatus::StockReserved, 1_000), Some((SagaStep::Payment, 61_000)));
        assert_eq!(config.due(OrderStatus::Paid, 1_000), Some((SagaStep::Shipment, 121_000)));
        assert_eq!(config.due(OrderStatus::Confirmed, 1_000), None);
    }

    #[test]
    fn a_timed_out_wait_becomes_a_time_out_order_with_its_step_and_limit() {
        let deadlines = OrderDeadlines(DeadlineConfig::default());
        let command = runtime::Deadlines::timed_out(&deadlines, "o-1", SagaStep::Payment, Duration::from_secs(60));
        assert_eq!(command, OrderCommand::TimeOutOrder { order_id: "o-1".into(), step: SagaStep::Payment, deadline_ms: Some(60_000) });
        let json = serde_json::to_value(&command).expect("a command serialises");
        assert_eq!(json, serde_json::json!({"type": "TimeOutOrder", "order_id": "o-1", "step": "PAYMENT", "deadline_ms": 60_000}));
    }
}
