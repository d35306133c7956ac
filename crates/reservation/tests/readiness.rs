//! ServerReadinessRule taints against a real kube-apiserver: Continuous and BootstrapOnly, the
//! finalizer, cleanup on rule deletion, and operator taints left alone.

mod common;

use api::common::{Taint, TaintEffect};
use api::server::Server;
use api::serverreadinessrule::{
    ConditionRequirement, EnforcementMode, RequiredStatus, ServerReadinessRule,
    ServerReadinessRuleSpec,
};
use common::*;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

fn rule(env: &Env, name: &str, mode: EnforcementMode, key: &str) -> ServerReadinessRule {
    let mut r = ServerReadinessRule::new(
        name,
        ServerReadinessRuleSpec {
            conditions: vec![ConditionRequirement {
                type_: "BurnInPassed".into(),
                required_status: RequiredStatus::True,
            }],
            enforcement_mode: mode,
            taint: Taint {
                key: key.into(),
                value: Some("true".into()),
                effect: Some(TaintEffect::NoBind),
            },
            server_selector: Env::selector("pool", "web"),
        },
    );
    r.metadata.labels = Some([(TEST_LABEL.to_string(), env.id.clone())].into());
    r
}

async fn create_rule(env: &Env, r: &ServerReadinessRule) -> ServerReadinessRule {
    Api::<ServerReadinessRule>::all(env.client.clone())
        .create(&PostParams::default(), r)
        .await
        .expect("create rule")
}

/// Plays the condition's owner (e.g. a burn-in job) on the server.
async fn set_condition(env: &Env, suffix: &str, status: &str) {
    env.servers()
        .patch_status(
            &env.server_name(suffix),
            &PatchParams::apply("burn-in-job").force(),
            &Patch::Apply(json!({
                "apiVersion": api::API_VERSION, "kind": "Server",
                "status": {"conditions": [{
                    "type": "BurnInPassed", "status": status, "reason": "Tested",
                    "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z",
                }]},
            })),
        )
        .await
        .expect("set condition");
}

fn has_taint(s: &Server, key: &str) -> bool {
    s.spec.taints.iter().any(|t| t.key == key)
}

#[tokio::test]
async fn continuous_rules_follow_the_conditions() {
    let env = Env::new("cont").await;
    env.server("a", &[("pool", "web")], |s| {
        // An operator's own taint must survive everything below.
        s.spec.taints = vec![Taint {
            key: "operator/hold".into(),
            value: None,
            effect: Some(TaintEffect::NoBind),
        }];
    })
    .await;
    env.server("other", &[("pool", "db")], |_| {}).await;
    let ctl = env.start("i1");
    let key = format!("{}/not-burned-in", env.id);
    let created = create_rule(
        &env,
        &rule(&env, &env.id, EnforcementMode::Continuous, &key),
    )
    .await;
    let rules: Api<ServerReadinessRule> = Api::all(env.client.clone());
    assert!(
        eventually(30, async || rules
            .get(&created.name_any())
            .await
            .ok()
            .filter(|r| r.finalizers().contains(
                &"readiness.metal.ironcore.dev/cleanup-taints".to_string()
            )))
        .await
        .is_some(),
        "finalizer added"
    );
    // No condition yet: tainted.
    env.wait_server("a", 30, |s| {
        has_taint(s, &key) && has_taint(s, "operator/hold")
    })
    .await;
    // Passed: untainted.
    set_condition(&env, "a", "True").await;
    env.wait_server("a", 30, |s| {
        !has_taint(s, &key) && has_taint(s, "operator/hold")
    })
    .await;
    // Regressed: tainted again.
    set_condition(&env, "a", "False").await;
    env.wait_server("a", 30, |s| has_taint(s, &key)).await;
    assert!(
        !has_taint(&env.get_server("other").await, &key),
        "not selected"
    );
    // The taint entry is reservation's (server-side apply manager).
    let a = env.get_server("a").await;
    let managers: Vec<String> = a
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains(&key))
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["metal-reservation"]);

    // Deleting the rule removes its taint everywhere, then the rule goes.
    rules
        .delete(&created.name_any(), &DeleteParams::default())
        .await
        .expect("delete rule");
    env.wait_server("a", 30, |s| {
        !has_taint(s, &key) && has_taint(s, "operator/hold")
    })
    .await;
    assert!(
        eventually(30, async || rules
            .get_opt(&created.name_any())
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(()))
        .await
        .is_some(),
        "rule finalizer removed"
    );
    ctl.stop().await;
}

#[tokio::test]
async fn bootstrap_only_rules_complete_once() {
    let env = Env::new("boot").await;
    env.server("a", &[("pool", "web")], |_| {}).await;
    env.server("b", &[("pool", "web")], |_| {}).await;
    let ctl = env.start("i1");
    let name = env.id.clone();
    let key = format!("{}/bootstrapping", env.id);
    create_rule(
        &env,
        &rule(&env, &name, EnforcementMode::BootstrapOnly, &key),
    )
    .await;
    env.wait_server("a", 30, |s| has_taint(s, &key)).await;
    env.wait_server("b", 30, |s| has_taint(s, &key)).await;
    set_condition(&env, "a", "True").await;
    let annotation = format!("readiness.metal.ironcore.dev/bootstrap-completed-{name}");
    let a = env
        .wait_server("a", 30, |s| {
            !has_taint(s, &key)
                && s.annotations().get(&annotation).map(String::as_str) == Some("true")
        })
        .await;
    assert!(
        has_taint(&env.get_server("b").await, &key),
        "b not done yet"
    );
    // Never evaluated again: a regression does not bring the taint back.
    set_condition(&env, "a", "False").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a2 = env.get_server("a").await;
    assert!(!has_taint(&a2, &key));
    assert!(a2.annotations().contains_key(&annotation));
    assert!(
        a2.metadata.resource_version != a.metadata.resource_version,
        "condition written"
    );
    // b completes too.
    set_condition(&env, "b", "True").await;
    env.wait_server("b", 30, |s| !has_taint(s, &key)).await;
    ctl.stop().await;
}

#[tokio::test]
async fn rule_taints_keep_claims_away_until_ready() {
    let env = Env::new("gate").await;
    env.server("a", &[("pool", "web")], |_| {}).await;
    let ctl = env.start("i1");
    let key = format!("{}/not-ready", env.id);
    create_rule(
        &env,
        &rule(&env, &env.id, EnforcementMode::BootstrapOnly, &key),
    )
    .await;
    env.wait_server("a", 30, |s| has_taint(s, &key)).await;
    env.claim("web", |s| {
        s.server_selector = Some(Env::selector("pool", "web"))
    })
    .await;
    let c = env
        .wait_claim("web", 30, |c| {
            bound_reason(c).as_deref() == Some("NotTolerated")
        })
        .await;
    assert!(bound_condition(&c).unwrap().2.contains(&key));
    set_condition(&env, "a", "True").await;
    env.wait_claim("web", 30, is_bound).await;
    ctl.stop().await;
}

/// The race behind a failure of `rbac`: a rule deleted while its taint's apply is still on the
/// way. The rule's cleanup saw no carrier in the cache and let the rule go; the taint landed
/// after. Reproduced deterministically: the taint is applied as reservation's manager with no
/// rule left. Reservation owns it (managedFields), so it is removed; an operator's taint with a
/// similar key stays.
#[tokio::test]
async fn a_taint_whose_rule_is_gone_is_removed() {
    let env = Env::new("orphan").await;
    env.server("a", &[("pool", "web")], |_| {}).await;
    let orphan = format!("{}/deleted-rule", env.id);
    let operator = format!("{}/operator-hold", env.id);
    // Each taint applied under its own field manager, as its owner would.
    let apply_taint = async |manager: &str, taint: serde_json::Value| {
        env.servers()
            .patch(
                &env.server_name("a"),
                &PatchParams::apply(manager).force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "spec": {"taints": [taint]},
                })),
            )
            .await
            .expect("apply taint");
    };
    apply_taint(
        "metal-reservation",
        json!({"key": orphan, "value": "true", "effect": "NoBind"}),
    )
    .await;
    apply_taint("operator", json!({"key": operator, "effect": "NoBind"})).await;
    let ctl = env.start("i1");
    env.wait_server("a", 30, |s| {
        !has_taint(s, &orphan) && has_taint(s, &operator)
    })
    .await;
    // And it stays that way: nothing re-adds or fights over the operator's entry.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = env.get_server("a").await;
    assert!(
        !has_taint(&a, &orphan) && has_taint(&a, &operator),
        "{:?}",
        a.spec.taints
    );
    ctl.stop().await;
}
