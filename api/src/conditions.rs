//! `metav1.Condition` helpers with the semantics CAPI's `conditions.Set` has: a condition's
//! `lastTransitionTime` only moves when its status changes, and every write records the
//! generation it was computed from.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types Capstan sets.
pub const READY: &str = "Ready";
pub const PAUSED: &str = "Paused";
pub const DELETING: &str = "Deleting";

/// Reasons shared by every controller.
pub const REASON_PAUSED: &str = "Paused";
pub const REASON_NOT_PAUSED: &str = "NotPaused";

/// The status of a condition; the only three values the API allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    /// A condition's `status` string; anything but `True`/`False` is `Unknown`, as upstream reads it.
    pub fn parse(s: &str) -> Self {
        match s {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

/// A condition to set: everything but the timestamps, which [`set`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition {
    pub type_: String,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

impl NewCondition {
    pub fn new(type_: &str, status: Status, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn truthy(type_: &str, reason: &str) -> Self {
        Self::new(type_, Status::True, reason, "")
    }
    pub fn falsy(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, Status::False, reason, message)
    }
}

/// Sets (adds or replaces) a condition. `lastTransitionTime` is kept when the status is the same
/// as before, so re-setting an unchanged condition does not churn the object. Returns whether
/// anything changed.
pub fn set(conditions: &mut Option<Vec<Condition>>, new: NewCondition, observed_generation: Option<i64>) -> bool {
    set_at(conditions, new, observed_generation, Time(Timestamp::now()))
}

/// [`set`] with an explicit clock, for tests and for setting several conditions at one instant.
pub fn set_at(
    conditions: &mut Option<Vec<Condition>>,
    new: NewCondition,
    observed_generation: Option<i64>,
    now: Time,
) -> bool {
    let list = conditions.get_or_insert_with(Vec::new);
    let status = new.status.as_str();
    match list.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let transition = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                now
            };
            let updated = Condition {
                type_: new.type_,
                status: status.to_string(),
                reason: new.reason,
                message: new.message,
                observed_generation,
                last_transition_time: transition,
            };
            if *existing == updated {
                return false;
            }
            *existing = updated;
            true
        }
        None => {
            list.push(Condition {
                type_: new.type_,
                status: status.to_string(),
                reason: new.reason,
                message: new.message,
                observed_generation,
                last_transition_time: now,
            });
            true
        }
    }
}

/// Replaces the whole list with `desired`, keeping each type's `lastTransitionTime` when its
/// status did not change. Conditions of types not in `desired` are dropped. Returns whether
/// anything changed.
pub fn merge(
    conditions: &mut Option<Vec<Condition>>,
    desired: Vec<NewCondition>,
    observed_generation: Option<i64>,
) -> bool {
    let now = Time(Timestamp::now());
    let mut next = Some(conditions.clone().unwrap_or_default());
    let keep: Vec<String> = desired.iter().map(|d| d.type_.clone()).collect();
    for d in desired {
        set_at(&mut next, d, observed_generation, now.clone());
    }
    if let Some(list) = next.as_mut() {
        list.retain(|c| keep.contains(&c.type_));
    }
    if *conditions == next {
        return false;
    }
    *conditions = next;
    true
}

/// Removes a condition type. Returns whether it was there.
pub fn delete(conditions: &mut Option<Vec<Condition>>, type_: &str) -> bool {
    let Some(list) = conditions.as_mut() else { return false };
    let before = list.len();
    list.retain(|c| c.type_ != type_);
    before != list.len()
}

pub fn get<'a>(conditions: &'a Option<Vec<Condition>>, type_: &str) -> Option<&'a Condition> {
    conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &Option<Vec<Condition>>, type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

/// The `Paused` condition every controller surfaces, v1beta2 style.
pub fn paused(is_paused: bool) -> NewCondition {
    if is_paused {
        NewCondition::truthy(PAUSED, REASON_PAUSED)
    } else {
        NewCondition::falsy(PAUSED, REASON_NOT_PAUSED, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64) -> Time {
        Time(Timestamp::from_second(sec).unwrap())
    }

    #[test]
    fn transition_time_moves_only_with_status() {
        let mut c = None;
        assert!(set_at(
            &mut c,
            NewCondition::falsy(READY, "Waiting", "a"),
            Some(1),
            t(10)
        ));
        // Same status, new reason and message: the transition time stays.
        assert!(set_at(
            &mut c,
            NewCondition::falsy(READY, "StillWaiting", "b"),
            Some(2),
            t(20)
        ));
        let ready = get(&c, READY).unwrap();
        assert_eq!(ready.last_transition_time, t(10));
        assert_eq!(ready.reason, "StillWaiting");
        assert_eq!(ready.observed_generation, Some(2));
        // Identical: nothing changes, not even the clock.
        assert!(!set_at(
            &mut c,
            NewCondition::falsy(READY, "StillWaiting", "b"),
            Some(2),
            t(30)
        ));
        // Status flips: the transition time moves.
        assert!(set_at(&mut c, NewCondition::truthy(READY, "Ready"), Some(2), t(40)));
        assert_eq!(get(&c, READY).unwrap().last_transition_time, t(40));
        assert!(is_true(&c, READY));
    }

    #[test]
    fn merge_keeps_times_and_drops_stale_types() {
        let mut c = None;
        set_at(&mut c, NewCondition::truthy(READY, "Ready"), Some(1), t(10));
        set_at(&mut c, NewCondition::truthy("Old", "X"), Some(1), t(10));
        assert!(merge(
            &mut c,
            vec![NewCondition::truthy(READY, "Ready"), paused(false)],
            Some(1)
        ));
        let list = c.as_ref().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(get(&c, READY).unwrap().last_transition_time, t(10));
        assert!(get(&c, "Old").is_none());
        assert_eq!(get(&c, PAUSED).unwrap().status, "False");
        // Merging the same thing again is a no-op.
        assert!(!merge(
            &mut c,
            vec![NewCondition::truthy(READY, "Ready"), paused(false)],
            Some(1)
        ));
        assert!(delete(&mut c, PAUSED));
        assert!(!delete(&mut c, PAUSED));
    }
}
