//! Helpers for `status.conditions` lists (`metav1.Condition`), so every controller follows the
//! same rules: one entry per type, `lastTransitionTime` moves only when `status` changes, and
//! `observedGeneration` records the spec generation the observation is based on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

closed_enum! {
    /// The status of a condition.
    pub enum ConditionStatus {
        /// The condition holds.
        True = "True",
        /// The condition does not hold.
        False = "False",
        /// It is not known whether the condition holds.
        Unknown = "Unknown",
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// Builds a condition. `generation` is the `metadata.generation` of the object the observation
/// was made on; `now` becomes `lastTransitionTime` unless [`set`] keeps an older one.
pub fn new(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    debug_assert!(
        is_valid_reason(reason),
        "invalid condition reason {reason:?}"
    );
    Condition {
        type_: type_.to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: now,
    }
}

/// The condition of `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The status of the condition of `type_`; `None` if absent or not one of the three values.
pub fn status(conditions: &[Condition], type_: &str) -> Option<ConditionStatus> {
    get(conditions, type_).and_then(|c| c.status.parse().ok())
}

/// Whether the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    status(conditions, type_) == Some(ConditionStatus::True)
}

/// Whether the condition of `type_` is present with status `False`.
pub fn is_false(conditions: &[Condition], type_: &str) -> bool {
    status(conditions, type_) == Some(ConditionStatus::False)
}

/// Inserts or updates `condition` by type and reports whether the list changed.
///
/// When a condition of the same type exists with the same status, its `lastTransitionTime` is
/// kept and only reason, message and observedGeneration are updated. A changed status takes
/// the new condition's `lastTransitionTime`. New types are appended, so existing entries keep
/// their position.
pub fn set(conditions: &mut Vec<Condition>, condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        None => {
            conditions.push(condition);
            true
        }
        Some(existing) => {
            let mut updated = condition;
            if existing.status == updated.status {
                updated.last_transition_time = existing.last_transition_time.clone();
            }
            if *existing == updated {
                false
            } else {
                *existing = updated;
                true
            }
        }
    }
}

/// Removes the condition of `type_` and returns it.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> Option<Condition> {
    let index = conditions.iter().position(|c| c.type_ == type_)?;
    Some(conditions.remove(index))
}

/// Whether `reason` is a valid condition reason: CamelCase-style, starting with a letter and
/// made of letters, digits, `_`, `,` and `:`, at most 1024 characters (the CRD enforces the
/// same pattern).
pub fn is_valid_reason(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    if bytes.len() > 1024 || !first.is_ascii_alphabetic() {
        return false;
    }
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':');
    if !rest.iter().all(allowed) {
        return false;
    }
    rest.last()
        .is_none_or(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    #[test]
    fn new_fills_every_field() {
        let c = new(
            "Ready",
            ConditionStatus::True,
            "Connected",
            "ok",
            Some(3),
            t(0),
        );
        assert_eq!(c.type_, "Ready");
        assert_eq!(c.status, "True");
        assert_eq!(c.reason, "Connected");
        assert_eq!(c.message, "ok");
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, t(0));
    }

    #[test]
    fn set_appends_new_types() {
        let mut list = Vec::new();
        assert!(set(
            &mut list,
            new("A", ConditionStatus::True, "R", "", None, t(0))
        ));
        assert!(set(
            &mut list,
            new("B", ConditionStatus::False, "R", "", None, t(0))
        ));
        assert_eq!(
            list.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_the_rest() {
        let mut list = vec![new(
            "Ready",
            ConditionStatus::False,
            "ConnectionFailed",
            "a",
            Some(1),
            t(0),
        )];
        let changed = set(
            &mut list,
            new(
                "Ready",
                ConditionStatus::False,
                "AuthenticationFailed",
                "b",
                Some(2),
                t(60),
            ),
        );
        assert!(changed);
        let c = get(&list, "Ready").unwrap();
        assert_eq!(c.last_transition_time, t(0));
        assert_eq!(c.reason, "AuthenticationFailed");
        assert_eq!(c.message, "b");
        assert_eq!(c.observed_generation, Some(2));
    }

    #[test]
    fn status_change_moves_transition_time() {
        let mut list = vec![new(
            "Ready",
            ConditionStatus::False,
            "ConnectionFailed",
            "",
            Some(1),
            t(0),
        )];
        assert!(set(
            &mut list,
            new(
                "Ready",
                ConditionStatus::True,
                "Connected",
                "",
                Some(1),
                t(60)
            )
        ));
        assert_eq!(get(&list, "Ready").unwrap().last_transition_time, t(60));
        assert!(is_true(&list, "Ready"));
        assert!(!is_false(&list, "Ready"));
    }

    #[test]
    fn identical_condition_is_not_a_change() {
        let mut list = vec![new(
            "Ready",
            ConditionStatus::True,
            "Connected",
            "m",
            Some(1),
            t(0),
        )];
        assert!(!set(
            &mut list,
            new(
                "Ready",
                ConditionStatus::True,
                "Connected",
                "m",
                Some(1),
                t(99)
            )
        ));
        assert_eq!(list[0].last_transition_time, t(0));
    }

    #[test]
    fn remove_returns_the_condition() {
        let mut list = vec![
            new("A", ConditionStatus::True, "R", "", None, t(0)),
            new("B", ConditionStatus::True, "R", "", None, t(0)),
        ];
        assert_eq!(remove(&mut list, "A").unwrap().type_, "A");
        assert!(remove(&mut list, "A").is_none());
        assert_eq!(list.len(), 1);
        assert_eq!(status(&list, "B"), Some(ConditionStatus::True));
        assert_eq!(status(&list, "A"), None);
    }

    #[test]
    fn reason_validation_follows_the_crd_pattern() {
        for ok in ["Connected", "A", "Reset_Done", "a:b,c_1"] {
            assert!(is_valid_reason(ok), "{ok}");
        }
        for bad in [
            "",
            "1Up",
            "Has Space",
            "Trailing:",
            "Dash-ed",
            &"A".repeat(1025),
        ] {
            assert!(!is_valid_reason(bad), "{bad}");
        }
    }

    #[test]
    fn bool_maps_to_status() {
        assert_eq!(ConditionStatus::from(true), ConditionStatus::True);
        assert_eq!(ConditionStatus::from(false), ConditionStatus::False);
    }
}
