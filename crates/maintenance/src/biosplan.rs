//! BIOSSettings decisions that need no I/O: step order, duplicate attributes, typing the
//! spec's string values by the attribute registry, completion, timeouts and retry budget.

use api::biossettings::{BIOSSettingsSpec, SettingsFlowItem};
use redfish::models::{AttributeRegistry, AttributeType, AttributeValue};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Retries after a failure when the spec's `retryPolicy` does not say.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// The steps in the order they are applied (ascending priority).
pub fn ordered(spec: &BIOSSettingsSpec) -> Vec<&SettingsFlowItem> {
    let mut steps: Vec<_> = spec.template.settings_flow.iter().collect();
    steps.sort_by_key(|s| s.priority);
    steps
}

/// Attributes that appear in more than one step (ambiguous: which value wins?).
pub fn duplicate_keys(spec: &BIOSSettingsSpec) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut dups = BTreeSet::new();
    for step in &spec.template.settings_flow {
        for k in step.settings.keys() {
            if !seen.insert(k.as_str()) {
                dups.insert(k.clone());
            }
        }
    }
    dups.into_iter().collect()
}

/// Converts the spec's string values into the types the BMC expects: by the registry's
/// attribute type when there is a registry, else by the type of the current value, else as a
/// string. A value that does not parse as its type stays a string, so validation reports it.
pub fn typed(
    settings: &BTreeMap<String, String>,
    registry: Option<&AttributeRegistry>,
    current: &BTreeMap<String, AttributeValue>,
) -> BTreeMap<String, AttributeValue> {
    let attrs = registry
        .map(AttributeRegistry::attributes)
        .unwrap_or_default();
    settings
        .iter()
        .map(|(name, raw)| {
            let by_registry = attrs
                .get(name.as_str())
                .and_then(|a| a.attribute_type.clone());
            let value = match (by_registry, current.get(name)) {
                (Some(AttributeType::Integer), _) | (None, Some(AttributeValue::Integer(_))) => raw
                    .trim()
                    .parse::<i64>()
                    .map(AttributeValue::Integer)
                    .unwrap_or_else(|_| AttributeValue::String(raw.clone())),
                (Some(AttributeType::Boolean), _) | (None, Some(AttributeValue::Bool(_))) => {
                    match raw.trim().to_ascii_lowercase().as_str() {
                        "true" => AttributeValue::Bool(true),
                        "false" => AttributeValue::Bool(false),
                        _ => AttributeValue::String(raw.clone()),
                    }
                }
                _ => AttributeValue::String(raw.clone()),
            };
            (name.clone(), value)
        })
        .collect()
}

/// Attributes of `desired` whose current value differs (pending values do not count: a
/// setting is applied only once the BIOS runs with it).
pub fn differing(
    current: &BTreeMap<String, AttributeValue>,
    desired: &BTreeMap<String, AttributeValue>,
) -> Vec<String> {
    desired
        .iter()
        .filter(|(k, v)| !current.get(*k).is_some_and(|c| c.loosely_eq(v)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Whether every attribute of `desired` is already pending with the desired value.
pub fn all_pending(
    pending: &BTreeMap<String, AttributeValue>,
    desired: &BTreeMap<String, AttributeValue>,
    current: &BTreeMap<String, AttributeValue>,
) -> bool {
    desired.iter().all(|(k, v)| {
        current.get(k).is_some_and(|c| c.loosely_eq(v))
            || pending.get(k).is_some_and(|p| p.loosely_eq(v))
    })
}

/// Whether the BIOS runs the version the settings are meant for. An empty `spec.version`
/// accepts any version; versions compare exactly, after trimming.
pub fn version_matches(wanted: &str, running: Option<&str>) -> bool {
    let wanted = wanted.trim();
    wanted.is_empty() || running.is_some_and(|r| r.trim() == wanted)
}

/// Whether `elapsed` since the update started exceeds `timeout`.
pub fn timed_out(elapsed: Duration, timeout: Duration) -> bool {
    elapsed > timeout
}

/// Whether another attempt is allowed after `failed` failed ones.
pub fn may_retry(failed: i32, max_attempts: Option<i32>) -> bool {
    failed < max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(flow: serde_json::Value) -> BIOSSettingsSpec {
        serde_json::from_value(json!({ "version": "1.0", "settingsFlow": flow })).unwrap()
    }

    #[test]
    fn steps_sort_by_priority_and_duplicates_are_found() {
        let s = spec(json!([
            { "name": "b", "priority": 20, "settings": { "X": "1", "Y": "2" } },
            { "name": "a", "priority": 10, "settings": { "Y": "3" } },
        ]));
        let names: Vec<_> = ordered(&s).iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(duplicate_keys(&s), ["Y"]);
        let ok = spec(json!([{ "name": "a", "priority": 1, "settings": { "X": "1" } }]));
        assert!(duplicate_keys(&ok).is_empty());
    }

    #[test]
    fn values_are_typed_by_registry_then_current_value() {
        let registry: AttributeRegistry = serde_json::from_value(json!({
            "RegistryEntries": { "Attributes": [
                { "AttributeName": "Cores", "Type": "Integer" },
                { "AttributeName": "Smt", "Type": "Boolean" },
                { "AttributeName": "Mode", "Type": "Enumeration" },
            ]}
        }))
        .unwrap();
        let settings: BTreeMap<String, String> = [
            ("Cores", "8"),
            ("Smt", "True"),
            ("Mode", "Uefi"),
            ("Other", "5"),
            ("Bad", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let current: BTreeMap<String, AttributeValue> = [
            ("Other".to_string(), AttributeValue::Integer(1)),
            ("Bad".to_string(), AttributeValue::Integer(1)),
        ]
        .into();
        let t = typed(&settings, Some(&registry), &current);
        assert_eq!(t["Cores"], AttributeValue::Integer(8));
        assert_eq!(t["Smt"], AttributeValue::Bool(true));
        assert_eq!(t["Mode"], AttributeValue::String("Uefi".into()));
        assert_eq!(t["Other"], AttributeValue::Integer(5));
        assert_eq!(t["Bad"], AttributeValue::String("x".into()));
        let untyped = typed(&settings, None, &BTreeMap::new());
        assert_eq!(untyped["Cores"], AttributeValue::String("8".into()));
    }

    #[test]
    fn differing_ignores_pending_and_compares_loosely() {
        let current: BTreeMap<String, AttributeValue> = [
            ("A".to_string(), AttributeValue::Integer(1)),
            ("B".to_string(), AttributeValue::String("x".into())),
        ]
        .into();
        let desired: BTreeMap<String, AttributeValue> = [
            ("A".to_string(), AttributeValue::String("1".into())),
            ("B".to_string(), AttributeValue::String("y".into())),
            ("C".to_string(), AttributeValue::Bool(true)),
        ]
        .into();
        assert_eq!(differing(&current, &desired), ["B", "C"]);
        let pending: BTreeMap<String, AttributeValue> = [
            ("B".to_string(), AttributeValue::String("y".into())),
            ("C".to_string(), AttributeValue::String("true".into())),
        ]
        .into();
        assert!(all_pending(&pending, &desired, &current));
        assert!(!all_pending(&BTreeMap::new(), &desired, &current));
    }

    #[test]
    fn version_timeout_and_retries() {
        assert!(version_matches("", None));
        assert!(version_matches("2.1", Some(" 2.1 ")));
        assert!(!version_matches("2.1", Some("2.0")));
        assert!(!version_matches("2.1", None));
        assert!(timed_out(Duration::from_secs(11), Duration::from_secs(10)));
        assert!(!timed_out(Duration::from_secs(10), Duration::from_secs(10)));
        assert!(may_retry(0, None));
        assert!(!may_retry(3, None));
        assert!(!may_retry(0, Some(0)));
        assert!(may_retry(4, Some(5)));
    }
}
