//! The circuit breaker in front of the webhook, as a pure state machine (the caller passes the
//! time in). It judges the endpoint, not a notification: it opens only when the failures since
//! the last success come from `recipients_to_open` different customers, so one customer whose
//! notifications the receiver always refuses cannot stop everyone else's, while an endpoint
//! that is down (it fails everybody) is left alone for `cooldown` instead of being hammered.
//! Open, it lets no attempt through; after the cool-down one probe goes; the probe's success
//! closes it, its failure opens it again.
//!
//! Hand-written: the maintained crates (e.g. `failsafe`) count failures per call, with no
//! notion of who failed, and would let one bad recipient open the breaker for all.
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Different customers whose deliveries must fail (with no success in between) to open it;
    /// at least 1.
    pub recipients_to_open: usize,
    /// How long it stays open before a probe; also how long a probe may stay unanswered before
    /// another one is let through.
    pub cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Attempts go through; the customers whose deliveries failed since the last success.
    Closed { failing: BTreeSet<String> },
    /// No attempt until `until_ms`.
    Open { until_ms: i64 },
    /// One probe went at `since_ms`; the others wait for its answer.
    HalfOpen { since_ms: i64 },
}

/// Whether an attempt may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Go, as the probe of a half-open breaker.
    Probe,
    /// Not now: try again at `until_ms`. The attempt is deferred, not failed.
    Wait {
        until_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: State,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        CircuitBreaker { settings, state: State::Closed { failing: BTreeSet::new() } }
    }

    /// Asks to make an attempt at `now_ms`. A `Probe` answer is given once per cool-down.
    pub fn admit(&mut self, now_ms: i64) -> Admission {
        let cooldown_ms = self.cooldown_ms();
        match &self.state {
            State::Closed { .. } => Admission::Go,
            State::Open { until_ms } if now_ms < *until_ms => Admission::Wait { until_ms: *until_ms },
            State::HalfOpen { since_ms } if now_ms < since_ms.saturating_add(cooldown_ms) => {
                Admission::Wait { until_ms: since_ms.saturating_add(cooldown_ms) }
            }
            // Open and cooled down, or a probe that never got an answer (its attempt was
            // dropped with a revoked partition): let the next one probe.
            State::Open { .. } | State::HalfOpen { .. } => {
                self.state = State::HalfOpen { since_ms: now_ms };
                Admission::Probe
            }
        }
    }

    /// A delivery succeeded: the endpoint works.
    pub fn record_success(&mut self) {
        self.state = State::Closed { failing: BTreeSet::new() };
    }

    /// A delivery to `customer_id` failed at `now_ms`.
    pub fn record_failure(&mut self, customer_id: &str, now_ms: i64) {
        let open = State::Open { until_ms: now_ms.saturating_add(self.cooldown_ms()) };
        match &mut self.state {
            State::Closed { failing } => {
                failing.insert(customer_id.to_string());
                if failing.len() >= self.settings.recipients_to_open {
                    self.state = open;
                }
            }
            State::HalfOpen { .. } => self.state = open,
            // An attempt that started before the breaker opened: it changes nothing.
            State::Open { .. } => {}
        }
    }

    /// Whether attempts are held back now (open, or half-open waiting for its probe).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }

    fn cooldown_ms(&self) -> i64 {
        i64::try_from(self.settings.cooldown.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings { recipients_to_open: 3, cooldown: Duration::from_millis(1_000) })
    }

    #[test]
    fn one_customer_failing_again_and_again_never_opens_it() {
        let mut breaker = breaker();
        for now in 0..100 {
            breaker.record_failure("c-bad", now);
            assert_eq!(breaker.admit(now), Admission::Go);
        }
        assert!(!breaker.is_open());
    }

    #[test]
    fn failures_of_enough_different_customers_open_it_until_the_cooldown() {
        let mut breaker = breaker();
        breaker.record_failure("c-1", 10);
        breaker.record_failure("c-2", 20);
        breaker.record_failure("c-1", 25);
        assert_eq!(breaker.admit(25), Admission::Go, "two customers are not enough");
        breaker.record_failure("c-3", 30);
        assert!(breaker.is_open());
        assert_eq!(breaker.admit(31), Admission::Wait { until_ms: 1_030 });
        assert_eq!(breaker.admit(1_029), Admission::Wait { until_ms: 1_030 });
    }

    #[test]
    fn a_success_in_between_starts_the_count_afresh() {
        let mut breaker = breaker();
        breaker.record_failure("c-1", 10);
        breaker.record_failure("c-2", 20);
        breaker.record_success();
        breaker.record_failure("c-3", 30);
        breaker.record_failure("c-4", 40);
        assert_eq!(breaker.admit(41), Admission::Go);
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_and_its_answer_decides() {
        let mut breaker = breaker();
        for customer in ["c-1", "c-2", "c-3"] {
            breaker.record_failure(customer, 0);
        }
        assert_eq!(breaker.admit(1_000), Admission::Probe);
        assert_eq!(breaker.admit(1_001), Admission::Wait { until_ms: 2_000 }, "one probe at a time");
        breaker.record_failure("c-1", 1_050);
        assert_eq!(breaker.admit(1_100), Admission::Wait { until_ms: 2_050 }, "a failed probe opens it again");
        assert_eq!(breaker.admit(2_050), Admission::Probe);
        breaker.record_success();
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(2_051), Admission::Go);
    }

    #[test]
    fn a_probe_that_never_answers_is_replaced_after_a_cooldown() {
        let mut breaker = breaker();
        for customer in ["c-1", "c-2", "c-3"] {
            breaker.record_failure(customer, 0);
        }
        assert_eq!(breaker.admit(1_000), Admission::Probe);
        assert_eq!(breaker.admit(1_999), Admission::Wait { until_ms: 2_000 });
        assert_eq!(breaker.admit(2_000), Admission::Probe);
    }

    #[test]
    fn a_late_failure_while_open_does_not_extend_it() {
        let mut breaker = breaker();
        for customer in ["c-1", "c-2", "c-3"] {
            breaker.record_failure(customer, 0);
        }
        breaker.record_failure("c-4", 500);
        assert_eq!(breaker.admit(1_000), Admission::Probe);
    }
}
