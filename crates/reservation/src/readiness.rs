//! ServerReadinessRule evaluation (pure): which rule taints a server should carry and which
//! BootstrapOnly rules it has completed.
//!
//! For every rule that is not being deleted and whose `serverSelector` matches the server:
//!
//! * `BootstrapOnly` and the server carries `readiness.metal.ironcore.dev/bootstrap-completed-<rule>`:
//!   the rule is done for this server and never evaluated again;
//! * all required condition types are present on the server with the required status: the rule's
//!   taint is not wanted; for `BootstrapOnly` the completion annotation is set;
//! * otherwise the rule's taint is wanted.
//!
//! Taints are identified by key and effect (the list-map key of `Server.spec.taints`); when two
//! rules want the same key and effect, the rule whose name sorts first decides the value.
//! The result is written with server-side apply, so reservation owns exactly its taint entries
//! and completion annotations; taints set by operators are untouched.

use api::API_VERSION;
use api::common::Taint;
use api::constants::{BOOTSTRAP_COMPLETED_PREFIX, bootstrap_completed_annotation};
use api::server::Server;
use api::serverreadinessrule::{EnforcementMode, ServerReadinessRule};
use kube::ResourceExt as _;
use kube::core::{Selector, SelectorExt as _};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Whether `rule` selects `server` (a selector that does not parse selects nothing).
pub fn selects(rule: &ServerReadinessRule, server: &Server) -> bool {
    Selector::try_from(rule.spec.server_selector.clone()).is_ok_and(|s| s.matches(server.labels()))
}

/// Whether every condition `rule` requires is present on `server` with the required status.
pub fn requirements_met(rule: &ServerReadinessRule, server: &Server) -> bool {
    let conds = server
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    rule.spec.conditions.iter().all(|req| {
        conds
            .iter()
            .any(|c| c.type_ == req.type_ && c.status == req.required_status.as_str())
    })
}

/// Whether `server` completed the BootstrapOnly rule named `rule`.
pub fn bootstrap_completed(server: &Server, rule: &str) -> bool {
    server
        .annotations()
        .contains_key(&bootstrap_completed_annotation(rule))
}

/// The taint a rule manages, with its effect made explicit (the list-map key needs it).
pub fn rule_taint(rule: &ServerReadinessRule) -> Taint {
    Taint {
        key: rule.spec.taint.key.clone(),
        value: rule.spec.taint.value.clone().filter(|v| !v.is_empty()),
        effect: Some(rule.spec.taint.effect()),
    }
}

fn same_key(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect() == b.effect()
}

fn same_taint(a: &Taint, b: &Taint) -> bool {
    same_key(a, b) && a.value.as_deref().unwrap_or("") == b.value.as_deref().unwrap_or("")
}

/// What reservation wants on a server from the readiness rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Rule taints the server must carry, one per key and effect.
    pub taints: Vec<Taint>,
    /// Completion annotations (keys) the server must carry, including ones already there.
    pub completed: BTreeSet<String>,
}

/// Evaluates every rule in `rules` against `server`.
pub fn desired(server: &Server, rules: &[Arc<ServerReadinessRule>]) -> Desired {
    let mut rules: Vec<&Arc<ServerReadinessRule>> = rules
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    rules.sort_by_key(|r| r.name_any());
    let mut out = Desired {
        taints: Vec::new(),
        completed: server
            .annotations()
            .keys()
            .filter(|k| k.starts_with(BOOTSTRAP_COMPLETED_PREFIX))
            .cloned()
            .collect(),
    };
    for rule in rules {
        let name = rule.name_any();
        if !selects(rule, server) {
            continue;
        }
        let bootstrap = rule.spec.enforcement_mode == EnforcementMode::BootstrapOnly;
        if bootstrap && bootstrap_completed(server, &name) {
            continue;
        }
        if requirements_met(rule, server) {
            if bootstrap {
                out.completed.insert(bootstrap_completed_annotation(&name));
            }
            continue;
        }
        let taint = rule_taint(rule);
        if !out.taints.iter().any(|t| same_key(t, &taint)) {
            out.taints.push(taint);
        }
    }
    out
}

/// The taints (key, effect) that field manager `manager` owns on `server` through server-side
/// apply of the main resource, read from its `managedFields` entry.
///
/// This is what keeps a taint from outliving its rule: a rule's deletion is cleaned up from the
/// watch cache, which may not yet show a taint applied a moment before; once the rule is gone,
/// only ownership tells reservation's taint from an operator's with the same key.
pub fn owned_taints(server: &Server, manager: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in server.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(manager)
            || entry.operation.as_deref() != Some("Apply")
            || entry.subresource.as_deref().is_some_and(|s| !s.is_empty())
        {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        let Some(taints) = fields
            .0
            .pointer("/f:spec/f:taints")
            .and_then(|t| t.as_object())
        else {
            continue;
        };
        for item in taints.keys() {
            let Some(json) = item.strip_prefix("k:") else {
                continue;
            };
            let Ok(key) = serde_json::from_str::<serde_json::Value>(json) else {
                continue;
            };
            if let Some(k) = key.get("key").and_then(|v| v.as_str()) {
                let effect = key
                    .get("effect")
                    .and_then(|v| v.as_str())
                    .unwrap_or(api::common::TaintEffect::NoBind.as_str());
                out.push((k.to_string(), effect.to_string()));
            }
        }
    }
    out
}

/// Whether `server` differs from `desired`: a wanted taint or annotation is missing, or the
/// server carries a taint that is no longer wanted and is reservation's: of one of `rules`
/// (deleting ones included), or owned by `manager` (a rule that is gone).
pub fn needs_apply(
    server: &Server,
    desired: &Desired,
    rules: &[Arc<ServerReadinessRule>],
    manager: &str,
) -> bool {
    let have = &server.spec.taints;
    if desired
        .taints
        .iter()
        .any(|d| !have.iter().any(|h| same_taint(h, d)))
    {
        return true;
    }
    if desired
        .completed
        .iter()
        .any(|k| server.annotations().get(k).map(String::as_str) != Some("true"))
    {
        return true;
    }
    let owned = owned_taints(server, manager);
    have.iter().any(|h| {
        let ours = rules.iter().any(|r| same_taint(h, &rule_taint(r)))
            || owned
                .iter()
                .any(|(k, e)| *k == h.key && e == h.effect().as_str());
        ours && !desired.taints.iter().any(|d| same_taint(h, d))
    })
}

/// The server-side apply body for `desired` on the Server `name`: exactly the fields
/// reservation owns (omitted fields it owned before are removed by the API server).
pub fn apply_body(name: &str, desired: &Desired) -> serde_json::Value {
    let mut metadata = serde_json::json!({ "name": name });
    if !desired.completed.is_empty() {
        metadata["annotations"] = desired
            .completed
            .iter()
            .map(|k| (k.clone(), serde_json::Value::String("true".into())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    let mut body = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "Server",
        "metadata": metadata,
    });
    if !desired.taints.is_empty() {
        body["spec"] = serde_json::json!({ "taints": desired.taints });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::common::TaintEffect;
    use api::server::{ServerSpec, ServerStatus};
    use api::serverreadinessrule::{ConditionRequirement, RequiredStatus, ServerReadinessRuleSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, FieldsV1, LabelSelector, ManagedFieldsEntry, Time,
    };
    use k8s_openapi::jiff::Timestamp;

    fn rule(
        name: &str,
        mode: EnforcementMode,
        key: &str,
        req: &[(&str, RequiredStatus)],
    ) -> Arc<ServerReadinessRule> {
        Arc::new(ServerReadinessRule::new(
            name,
            ServerReadinessRuleSpec {
                conditions: req
                    .iter()
                    .map(|(t, s)| ConditionRequirement {
                        type_: (*t).into(),
                        required_status: *s,
                    })
                    .collect(),
                enforcement_mode: mode,
                taint: Taint {
                    key: key.into(),
                    value: Some("true".into()),
                    effect: None,
                },
                server_selector: LabelSelector {
                    match_labels: Some([("pool".to_string(), "a".to_string())].into()),
                    ..Default::default()
                },
            },
        ))
    }

    fn server(conds: &[(&str, &str)]) -> Server {
        let mut s = Server::new(
            "s",
            ServerSpec {
                system_uuid: "u".into(),
                ..Default::default()
            },
        );
        s.metadata.labels = Some([("pool".to_string(), "a".to_string())].into());
        s.status = Some(ServerStatus {
            conditions: conds
                .iter()
                .map(|(t, st)| Condition {
                    type_: (*t).into(),
                    status: (*st).into(),
                    reason: "R".into(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..Default::default()
        });
        s
    }

    fn taint_keys(d: &Desired) -> Vec<&str> {
        d.taints.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn unmet_requirements_taint_and_met_ones_do_not() {
        let r = rule(
            "burn-in",
            EnforcementMode::Continuous,
            "not-ready",
            &[
                ("BurnIn", RequiredStatus::True),
                ("Disks", RequiredStatus::False),
            ],
        );
        let rules = [r];
        // Missing condition type: taint.
        assert_eq!(
            taint_keys(&desired(&server(&[("BurnIn", "True")]), &rules)),
            ["not-ready"]
        );
        // Wrong status: taint.
        assert_eq!(
            taint_keys(&desired(
                &server(&[("BurnIn", "True"), ("Disks", "True")]),
                &rules
            )),
            ["not-ready"]
        );
        // All met: no taint, no annotation in Continuous mode.
        let d = desired(&server(&[("BurnIn", "True"), ("Disks", "False")]), &rules);
        assert!(d.taints.is_empty());
        assert!(d.completed.is_empty());
    }

    #[test]
    fn selector_and_deletion_exclude_rules() {
        let r = rule(
            "r",
            EnforcementMode::Continuous,
            "k",
            &[("A", RequiredStatus::True)],
        );
        let mut other = server(&[]);
        other.metadata.labels = Some([("pool".to_string(), "b".to_string())].into());
        assert!(desired(&other, std::slice::from_ref(&r)).taints.is_empty());
        let mut deleting = (*r).clone();
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(
            desired(&server(&[]), &[Arc::new(deleting)])
                .taints
                .is_empty()
        );
    }

    #[test]
    fn bootstrap_only_completes_once_and_is_never_evaluated_again() {
        let r = rule(
            "boot",
            EnforcementMode::BootstrapOnly,
            "k",
            &[("A", RequiredStatus::True)],
        );
        let rules = [r];
        let unmet = server(&[("A", "False")]);
        assert_eq!(taint_keys(&desired(&unmet, &rules)), ["k"]);
        let met = server(&[("A", "True")]);
        let d = desired(&met, &rules);
        assert!(d.taints.is_empty());
        let key = "readiness.metal.ironcore.dev/bootstrap-completed-boot";
        assert!(d.completed.contains(key));
        // Completed and then the condition regresses: still no taint, annotation kept.
        let mut regressed = unmet.clone();
        regressed.metadata.annotations = Some([(key.to_string(), "true".to_string())].into());
        let d = desired(&regressed, &rules);
        assert!(d.taints.is_empty());
        assert!(d.completed.contains(key));
        // Continuous would taint again.
        let c = rule(
            "cont",
            EnforcementMode::Continuous,
            "k2",
            &[("A", RequiredStatus::True)],
        );
        assert_eq!(taint_keys(&desired(&regressed, &[c])), ["k2"]);
    }

    #[test]
    fn one_taint_per_key_and_effect() {
        let a = rule(
            "a",
            EnforcementMode::Continuous,
            "same",
            &[("A", RequiredStatus::True)],
        );
        let b = rule(
            "b",
            EnforcementMode::Continuous,
            "same",
            &[("B", RequiredStatus::True)],
        );
        let d = desired(&server(&[]), &[b, a]);
        assert_eq!(d.taints.len(), 1);
        assert_eq!(d.taints[0].effect, Some(TaintEffect::NoBind));
    }

    #[test]
    fn needs_apply_detects_missing_and_stale_taints() {
        let r = rule(
            "r",
            EnforcementMode::Continuous,
            "k",
            &[("A", RequiredStatus::True)],
        );
        let rules = [r.clone()];
        let mut s = server(&[]);
        let d = desired(&s, &rules);
        assert!(
            needs_apply(&s, &d, &rules, "metal-reservation"),
            "taint missing"
        );
        s.spec.taints = vec![rule_taint(&r)];
        assert!(!needs_apply(&s, &d, &rules, "metal-reservation"), "in sync");
        // Conditions met now: our taint is stale.
        let mut met = server(&[("A", "True")]);
        met.spec.taints = vec![rule_taint(&r)];
        let d = desired(&met, &rules);
        assert!(needs_apply(&met, &d, &rules, "metal-reservation"));
        // An operator's unrelated taint never triggers an apply.
        let mut op = server(&[("A", "True")]);
        op.spec.taints = vec![Taint {
            key: "operator".into(),
            value: None,
            effect: None,
        }];
        assert!(!needs_apply(
            &op,
            &desired(&op, &rules),
            &rules,
            "metal-reservation"
        ));
        // Missing completion annotation.
        let b = rule(
            "b",
            EnforcementMode::BootstrapOnly,
            "kb",
            &[("A", RequiredStatus::True)],
        );
        let s = server(&[("A", "True")]);
        assert!(needs_apply(
            &s,
            &desired(&s, std::slice::from_ref(&b)),
            &[b],
            "metal-reservation"
        ));
    }

    fn owned_by(
        manager: &str,
        subresource: Option<&str>,
        keys: &[(&str, &str)],
    ) -> ManagedFieldsEntry {
        let taints: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|(k, e)| {
                (
                    format!("k:{}", serde_json::json!({"effect": e, "key": k})),
                    serde_json::json!({".": {}, "f:effect": {}, "f:key": {}}),
                )
            })
            .collect();
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            subresource: subresource.map(str::to_string),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(
                serde_json::json!({"f:spec": {"f:taints": taints}}),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_taint_reservation_owns_is_removed_after_its_rule_is_gone() {
        let taint = |k: &str| Taint {
            key: k.into(),
            value: None,
            effect: Some(TaintEffect::NoBind),
        };
        let mut s = server(&[]);
        s.spec.taints = vec![taint("gone-rule"), taint("operator")];
        s.metadata.managed_fields = Some(vec![
            owned_by("metal-reservation", None, &[("gone-rule", "NoBind")]),
            owned_by("kubectl", None, &[("operator", "NoBind")]),
        ]);
        assert_eq!(
            owned_taints(&s, "metal-reservation"),
            [("gone-rule".to_string(), "NoBind".to_string())]
        );
        // No rule left: the owned taint is stale, the operator's is not ours.
        assert!(needs_apply(&s, &desired(&s, &[]), &[], "metal-reservation"));
        s.spec.taints = vec![taint("operator")];
        assert!(!needs_apply(
            &s,
            &desired(&s, &[]),
            &[],
            "metal-reservation"
        ));
        // Same key under another manager, or in a status entry: not ours.
        s.spec.taints = vec![taint("gone-rule")];
        s.metadata.managed_fields = Some(vec![
            owned_by("kubectl", None, &[("gone-rule", "NoBind")]),
            owned_by(
                "metal-reservation",
                Some("status"),
                &[("gone-rule", "NoBind")],
            ),
        ]);
        assert!(owned_taints(&s, "metal-reservation").is_empty());
        assert!(!needs_apply(
            &s,
            &desired(&s, &[]),
            &[],
            "metal-reservation"
        ));
        // A different effect is a different list entry.
        s.metadata.managed_fields = Some(vec![owned_by(
            "metal-reservation",
            None,
            &[("gone-rule", "Evict")],
        )]);
        assert!(!needs_apply(
            &s,
            &desired(&s, &[]),
            &[],
            "metal-reservation"
        ));
    }

    #[test]
    fn apply_body_holds_only_owned_fields() {
        let d = Desired {
            taints: vec![Taint {
                key: "k".into(),
                value: Some("v".into()),
                effect: Some(TaintEffect::NoBind),
            }],
            completed: ["readiness.metal.ironcore.dev/bootstrap-completed-x".to_string()].into(),
        };
        let body = apply_body("s", &d);
        assert_eq!(
            body,
            serde_json::json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1",
                "kind": "Server",
                "metadata": {
                    "name": "s",
                    "annotations": {"readiness.metal.ironcore.dev/bootstrap-completed-x": "true"}
                },
                "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoBind"}]}
            })
        );
        let empty = apply_body("s", &Desired::default());
        assert!(empty.get("spec").is_none());
        assert!(empty["metadata"].get("annotations").is_none());
    }
}
