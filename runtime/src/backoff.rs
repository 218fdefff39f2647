//! Per-object requeue backoff. kube-runtime's `error_policy` returns a fixed action; CAPI
//! controllers back off per object (controller-runtime's rate limiter), so a broken object does not
//! hammer the cloud while healthy ones keep their pace.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Counts consecutive failures per key and turns them into capped, jittered exponential delays.
pub struct FailureBackoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl FailureBackoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying it.
    pub fn next_delay(&self, key: &str) -> Duration {
        let attempt = {
            let mut map = self.failures.lock().expect("backoff map poisoned");
            let n = map.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Forgets `key`'s failures after a success.
    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff map poisoned").remove(key);
    }

    /// How many failures in a row `key` has had.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .expect("backoff map poisoned")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

impl Default for FailureBackoff {
    /// 1 s doubling up to 5 minutes, as CAPI's controllers back off.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let b = FailureBackoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d1 = b.next_delay("a");
        let d2 = b.next_delay("a");
        let d3 = b.next_delay("a");
        // Jitter adds up to one delay's worth on top: 100..200, 200..400, 400..800 ms.
        assert!(
            d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200),
            "{d1:?}"
        );
        assert!(
            d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400),
            "{d2:?}"
        );
        assert!(
            d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800),
            "{d3:?}"
        );
        for _ in 0..20 {
            assert!(b.next_delay("a") <= Duration::from_secs(2));
        }
        assert_eq!(b.failures("a"), 23);
        assert_eq!(b.failures("b"), 0, "keys are independent");
        b.reset("a");
        assert_eq!(b.failures("a"), 0);
        assert!(b.next_delay("a") <= Duration::from_millis(200));
    }
}
