//! When a failed delivery is tried again: exponential back-off with jitter, `backon`'s schedule.
//! The jitter is seeded by the notification, so a notification's schedule is the same after a
//! restart (its next attempt is due when the log says, not sooner) while notifications that
//! failed together spread their retries out instead of coming back at the same instant.
use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts a notification gets before it is parked (at least 1).
    pub max_attempts: i64,
    /// The wait after the first failed attempt; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest wait before jitter.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based) before the next one:
    /// `first_delay · 2^(attempt-1)`, at most `max_delay`, plus a jitter of up to as much again.
    pub fn delay_after(&self, attempt: i64, seed: u64) -> Duration {
        let skip = usize::try_from(attempt.saturating_sub(1)).unwrap_or(0);
        ExponentialBuilder::new()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_jitter_seed(seed)
            .without_max_times()
            .build()
            .nth(skip)
            .unwrap_or(self.max_delay)
    }

    /// Whether a notification that failed `attempts` times gets no further attempt.
    pub fn exhausted(&self, attempts: i64) -> bool {
        attempts >= self.max_attempts
    }
}

/// The jitter seed of a notification: a stable hash (FNV-1a) of its event id, the same in every
/// process and release (std's hasher promises neither).
pub fn jitter_seed(event_id: &str) -> u64 {
    event_id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 8, first_delay: Duration::from_millis(100), max_delay: Duration::from_millis(1_000) }
    }

    #[test]
    fn the_wait_doubles_up_to_the_cap_with_at_most_as_much_again_of_jitter() {
        let policy = policy();
        for seed in [0, 1, jitter_seed("a"), jitter_seed("b")] {
            for (attempt, base_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000), (6, 1_000), (20, 1_000)] {
                let delay = policy.delay_after(attempt, seed);
                let base = Duration::from_millis(base_ms);
                assert!(delay >= base && delay <= base * 2, "attempt {attempt}, seed {seed}: {delay:?} not in [{base:?}, {:?}]", base * 2);
            }
        }
    }

    #[test]
    fn the_schedule_of_a_notification_is_the_same_every_time_and_differs_between_notifications() {
        let policy = policy();
        let schedule = |event_id: &str| (1..=6).map(|attempt| policy.delay_after(attempt, jitter_seed(event_id))).collect::<Vec<_>>();
        assert_eq!(schedule("5f0e5d43-8a54-4c38-9d8e-1f7e2a3b4c5d"), schedule("5f0e5d43-8a54-4c38-9d8e-1f7e2a3b4c5d"));
        assert_ne!(schedule("5f0e5d43-8a54-4c38-9d8e-1f7e2a3b4c5d"), schedule("0b7e8c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e"));
    }

    #[test]
    fn a_nonsensical_attempt_number_gets_the_first_wait() {
        let policy = policy();
        assert_eq!(policy.delay_after(0, 7), policy.delay_after(1, 7));
        assert_eq!(policy.delay_after(-3, 7), policy.delay_after(1, 7));
    }

    #[test]
    fn attempts_run_out_at_the_maximum() {
        let policy = policy();
        assert!(!policy.exhausted(7));
        assert!(policy.exhausted(8));
        assert!(policy.exhausted(9));
    }

    #[test]
    fn the_seed_is_a_stable_fnv1a_hash() {
        // Published FNV-1a 64 test vectors: the seed must not change between releases.
        assert_eq!(jitter_seed(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(jitter_seed("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
