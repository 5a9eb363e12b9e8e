//! When to try a failed delivery again: exponential backoff with jitter, or
//! the wait the service asked for.

use std::time::Duration;

/// How a target retries, and when it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    /// The wait after the first failure; doubled after each further one.
    pub initial: Duration,
    pub max: Duration,
    /// Dead-letter a delivery failing for this long (None: never give up,
    /// for streams whose consumers must see every change).
    pub give_up_after: Option<Duration>,
}

impl RetrySettings {
    /// For notifiers: a day of retries, then a dead letter.
    pub fn notifier() -> RetrySettings {
        RetrySettings {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            give_up_after: Some(Duration::from_secs(24 * 3600)),
        }
    }

    /// For streams: retried until they work (the pipeline waits when the
    /// queue is full, and sources shed load at the edge).
    pub fn stream() -> RetrySettings {
        RetrySettings {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            give_up_after: None,
        }
    }

    /// The wait before attempt `failures + 1`. `retry_after`, when the
    /// service sent one, is honoured (plus up to 10 % so that many
    /// deliveries do not return at the same instant); otherwise "equal
    /// jitter": half the exponential delay, plus a random part of the
    /// other half, so retries spread out but never come back at once.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait + jitter(wait / 10);
        }
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
            .min(self.max);
        exp / 2 + jitter(exp / 2)
    }
}

/// A uniformly random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    if us == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(rand::random_range(0..=us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds() {
        let r = RetrySettings {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: None,
        };
        for (failures, exp) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)] {
            let exp = Duration::from_secs(exp);
            for _ in 0..200 {
                let d = r.delay(failures, None);
                assert!(
                    d >= exp / 2 && d <= exp,
                    "failure {failures}: {d:?} not in [{:?}, {exp:?}]",
                    exp / 2
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_retries() {
        let r = RetrySettings::notifier();
        let mut seen: Vec<Duration> = (0..50).map(|_| r.delay(4, None)).collect();
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 10, "50 delays, only {} distinct", seen.len());
    }

    #[test]
    fn a_requested_wait_is_honoured() {
        let r = RetrySettings::notifier();
        for _ in 0..100 {
            let d = r.delay(1, Some(Duration::from_secs(30)));
            assert!(
                d >= Duration::from_secs(30) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
    }
}
