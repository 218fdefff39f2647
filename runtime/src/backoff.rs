//! Per-object requeue backoff. kube-runtime's `error_policy` returns a fixed action; CAPI
//! controllers back off per object (controller-runtime's rate limiter), so a broken object does not
//! hammer the cloud while healthy ones keep their pace.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use kube::Resource;

/// Which object a backoff (or a log line) is about: kind, namespace and name, so that a
/// DCSCluster and a DCSMachine that share a name never share a failure count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of<K: Resource<DynamicType = ()>>(o: &K) -> Self {
        ObjectKey {
            kind: K::kind(&()).into_owned(),
            namespace: o.meta().namespace.clone().unwrap_or_default(),
            name: o.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `namespace/name`, as kubectl and controller-runtime log an object (the kind is in the span).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

struct Failures {
    count: u32,
    last: Instant,
}

/// Counts consecutive failures per object and turns them into capped, jittered exponential
/// delays. An entry goes on success ([`FailureBackoff::reset`]) or, for an object that was
/// deleted while failing and is never reconciled again, once it has not failed for twice the
/// longest delay: the map holds only objects that are failing now.
pub struct FailureBackoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<ObjectKey, Failures>>,
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
    pub fn next_delay(&self, key: &ObjectKey) -> Duration {
        let now = Instant::now();
        let attempt = {
            let mut map = self.failures.lock().expect("backoff map poisoned");
            let stale_after = self.max * 2;
            map.retain(|k, f| k == key || now.duration_since(f.last) < stale_after);
            let f = map.entry(key.clone()).or_insert(Failures { count: 0, last: now });
            f.count = f.count.saturating_add(1);
            f.last = now;
            f.count
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

    /// Forgets `key`'s failures after a success or once the object is gone.
    pub fn reset(&self, key: &ObjectKey) {
        self.failures.lock().expect("backoff map poisoned").remove(key);
    }

    /// How many failures in a row `key` has had.
    pub fn failures(&self, key: &ObjectKey) -> u32 {
        self.failures
            .lock()
            .expect("backoff map poisoned")
            .get(key)
            .map(|f| f.count)
            .unwrap_or(0)
    }

    /// How many objects are failing now.
    pub fn len(&self) -> usize {
        self.failures.lock().expect("backoff map poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn grows_caps_and_resets() {
        let b = FailureBackoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let a = key("DCSMachine", "a");
        let d1 = b.next_delay(&a);
        let d2 = b.next_delay(&a);
        let d3 = b.next_delay(&a);
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
            assert!(b.next_delay(&a) <= Duration::from_secs(2));
        }
        assert_eq!(b.failures(&a), 23);
        assert_eq!(b.failures(&key("DCSMachine", "b")), 0, "keys are independent");
        b.reset(&a);
        assert_eq!(b.failures(&a), 0);
        assert!(b.next_delay(&a) <= Duration::from_millis(200));
    }

    /// Issue 10 §2: an InfraCluster and an InfraMachine with the same name used to share one
    /// count (the key was `namespace/name`).
    #[test]
    fn same_name_of_two_kinds_backs_off_independently() {
        let b = FailureBackoff::default();
        let cluster = key("DCSCluster", "prod");
        let machine = key("DCSMachine", "prod");
        for _ in 0..5 {
            b.next_delay(&cluster);
        }
        assert_eq!(b.failures(&cluster), 5);
        assert_eq!(b.failures(&machine), 0);
        assert!(b.next_delay(&machine) <= Duration::from_secs(2));
    }

    /// Issue 10 §2: the map used to grow by every object that ever failed.
    #[test]
    fn objects_that_stopped_failing_are_forgotten() {
        let b = FailureBackoff::new(Duration::from_millis(1), Duration::from_millis(5));
        for i in 0..100 {
            b.next_delay(&key("DCSMachine", &format!("gone-{i}")));
        }
        assert_eq!(b.len(), 100);
        std::thread::sleep(Duration::from_millis(20));
        b.next_delay(&key("DCSMachine", "still-failing"));
        assert_eq!(b.len(), 1, "only the object failing now is kept");
    }
}
