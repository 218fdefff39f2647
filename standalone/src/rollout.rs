//! The arithmetic of a MachineDeployment rollout, free of Kubernetes so it can be tested alone.
//! It follows upstream (and Deployments): surge rounds up, unavailability rounds down, and old sets
//! only shrink while enough Machines stay available.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `maxSurge`/`maxUnavailable` resolved against the desired replica count.
pub fn resolve_bounds(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let scaled = |v: Option<&IntOrString>, default: i32, round_up: bool| -> i32 {
        match v {
            None => default,
            Some(IntOrString::Int(i)) => *i,
            Some(IntOrString::String(s)) => {
                let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
                let exact = pct * replicas as f64 / 100.0;
                if round_up {
                    exact.ceil() as i32
                } else {
                    exact.floor() as i32
                }
            }
        }
    };
    let surge = scaled(surge, 1, true).max(0);
    let mut unavailable = scaled(unavailable, 0, false).max(0);
    // Both zero would deadlock the rollout; upstream allows one unavailable then.
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas.max(0)))
}

/// One MachineSet as the rollout sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetState {
    /// `spec.replicas`.
    pub replicas: i32,
    /// Machines of the set that are Available.
    pub available: i32,
}

/// The new set's replicas after scaling it up as far as the surge allows.
pub fn scale_up_new(desired: i32, surge: i32, new: &SetState, old: &[SetState]) -> i32 {
    if new.replicas >= desired {
        return desired;
    }
    let total: i32 = new.replicas + old.iter().map(|s| s.replicas).sum::<i32>();
    let room = desired + surge - total;
    if room <= 0 {
        return new.replicas;
    }
    (new.replicas + room).min(desired)
}

/// How far each old set (oldest first) may shrink now: first sets' unavailable Machines, then
/// available ones while total availability stays at `desired - max_unavailable`.
pub fn scale_down_old(desired: i32, max_unavailable: i32, new: &SetState, old: &[SetState]) -> Vec<i32> {
    let min_available = desired - max_unavailable;
    let total: i32 = new.replicas + old.iter().map(|s| s.replicas).sum::<i32>();
    let new_unavailable = (new.replicas - new.available).max(0);
    let mut budget = total - min_available - new_unavailable;
    let mut next: Vec<i32> = old.iter().map(|s| s.replicas).collect();
    if budget <= 0 {
        return next;
    }
    // Machines that are not available anyway go first: removing them costs no availability.
    for (i, s) in old.iter().enumerate() {
        let unhealthy = (s.replicas - s.available).max(0).min(budget);
        next[i] -= unhealthy;
        budget -= unhealthy;
        if budget == 0 {
            return next;
        }
    }
    let available: i32 = new.available + old.iter().map(|s| s.available).sum::<i32>();
    let mut allowed = (available - min_available).max(0);
    for (i, s) in old.iter().enumerate() {
        if allowed == 0 {
            break;
        }
        let left_available = s.available.min(next[i]);
        let cut = left_available.min(allowed);
        next[i] -= cut;
        allowed -= cut;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(replicas: i32, available: i32) -> SetState {
        SetState { replicas, available }
    }

    #[test]
    fn bounds_round_like_upstream() {
        let pct = |p: &str| IntOrString::String(p.into());
        assert_eq!(resolve_bounds(None, None, 3), (1, 0));
        assert_eq!(resolve_bounds(Some(&pct("25%")), Some(&pct("25%")), 3), (1, 0));
        assert_eq!(
            resolve_bounds(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(resolve_bounds(Some(&pct("50%")), Some(&pct("50%")), 5), (3, 2));
    }

    #[test]
    fn surge_limits_the_new_set() {
        assert_eq!(scale_up_new(3, 1, &s(0, 0), &[s(3, 3)]), 1);
        assert_eq!(scale_up_new(3, 1, &s(1, 0), &[s(3, 3)]), 1);
        assert_eq!(scale_up_new(3, 1, &s(1, 1), &[s(2, 2)]), 2);
        assert_eq!(scale_up_new(3, 0, &s(5, 5), &[]), 3);
    }

    #[test]
    fn old_sets_shrink_only_within_availability() {
        // New machine not available yet: nothing old may go (maxUnavailable 0).
        assert_eq!(scale_down_old(3, 0, &s(1, 0), &[s(3, 3)]), vec![3]);
        // It became available: one old may go.
        assert_eq!(scale_down_old(3, 0, &s(1, 1), &[s(3, 3)]), vec![2]);
        // Unavailable old machines go first and cost nothing.
        assert_eq!(scale_down_old(3, 0, &s(1, 1), &[s(3, 2)]), vec![2]);
        // maxUnavailable 1 lets one go before anything new is up.
        assert_eq!(scale_down_old(2, 1, &s(1, 0), &[s(2, 2)]), vec![1]);
    }

    #[test]
    fn availability_never_drops_below_the_bound_in_a_simulated_rollout() {
        for (desired, surge, unavailable) in [(2, 1, 0), (3, 1, 1), (4, 2, 1), (3, 0, 1)] {
            // Each step: sets resize, new machines become available one step after creation.
            let mut new = s(0, 0);
            let mut old = vec![s(desired, desired)];
            for _ in 0..50 {
                new.replicas = scale_up_new(desired, surge, &new, &old);
                let next = scale_down_old(desired, unavailable, &new, &old);
                for (o, n) in old.iter_mut().zip(next) {
                    o.replicas = n;
                    o.available = o.available.min(n);
                }
                let available = new.available + old.iter().map(|o| o.available).sum::<i32>();
                assert!(
                    available >= desired - unavailable,
                    "{desired}/{surge}/{unavailable}: {available}"
                );
                new.available = new.replicas;
            }
            assert_eq!((new.replicas, old[0].replicas), (desired, 0));
        }
    }
}
