//! Runs every `api::validation_cases` example through the client-side admission check and
//! checks that every CEL rule in the CRDs is exercised by at least one example.

mod support;

use api::validation_cases::{CelCase, Check, cases};
use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::Value;
use std::collections::BTreeSet;

fn describe(c: &CelCase, errors: &[String]) -> String {
    format!("case {} ({}): {errors:#?}", c.name, c.kind)
}

#[test]
fn valid_objects_are_accepted() {
    for c in cases() {
        let created = support::admit(c.kind, &c.valid, None);
        assert!(created.accepted(), "{}", describe(&c, &created.errors()));
        assert!(
            created.unknown.is_empty(),
            "case {}: unknown fields {:?}",
            c.name,
            created.unknown
        );
        if c.update {
            let noop = support::admit(c.kind, &c.valid, Some(&c.valid));
            assert!(
                noop.accepted(),
                "no-op update: {}",
                describe(&c, &noop.errors())
            );
        }
        if let Some(accepted) = &c.accepted_update {
            let r = support::admit(c.kind, accepted, Some(&c.valid));
            assert!(
                r.accepted(),
                "accepted_update: {}",
                describe(&c, &r.errors())
            );
            assert!(
                r.unknown.is_empty(),
                "case {}: unknown fields {:?}",
                c.name,
                r.unknown
            );
        }
    }
}

#[test]
fn invalid_objects_are_rejected_with_the_expected_message() {
    for c in cases() {
        let old = c.update.then_some(&c.valid);
        let r = support::admit(c.kind, &c.invalid, old);
        assert!(
            r.unknown.is_empty(),
            "case {}: unknown fields {:?}",
            c.name,
            r.unknown
        );
        assert!(r.cel_broken.is_empty(), "{}", describe(&c, &r.cel_broken));
        let relevant = match c.check {
            Check::Cel => &r.cel,
            Check::OpenApi => &r.openapi,
        };
        assert!(
            relevant.iter().any(|e| e.contains(c.message)),
            "expected {:?} from {:?}; {}",
            c.message,
            c.check,
            describe(&c, &r.errors())
        );
        if c.update {
            // Transition rules must not fire on create: the invalid object is a fine new object.
            let created = support::admit(c.kind, &c.invalid, None);
            assert!(
                !created.cel.iter().any(|e| e.contains(c.message)),
                "transition rule fired on create: {}",
                describe(&c, &created.errors())
            );
        }
    }
}

/// Normalizes a kube-cel field path (`spec.taints[0].key`) to the rule-path notation of
/// `api::crds::RuleInfo` (`.spec.taints[*].key`).
fn normalize_path(p: &str) -> String {
    let mut out = String::from(".");
    let mut chars = p.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '[' {
            out.push_str("[*]");
            for c in chars.by_ref() {
                if c == ']' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    if out.len() > 1 {
        out.replace(".[", "[")
    } else {
        out
    }
}

#[test]
fn every_cel_rule_is_exercised() {
    let mut hit: BTreeSet<(String, String, String)> = BTreeSet::new();
    for c in cases() {
        let schema = support::schema(c.kind);
        let old = c.update.then_some(&c.valid);
        let report = support::admit(c.kind, &c.invalid, old);
        if report
            .openapi
            .iter()
            .any(|e| e.contains("were not checked"))
        {
            continue; // the apiserver would not run any rule on this object
        }
        if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, &c.invalid, old) {
            for e in errors.iter() {
                hit.insert((
                    c.kind.to_owned(),
                    normalize_path(&e.field_path),
                    e.rule.clone(),
                ));
            }
        }
    }
    let mut missing = Vec::new();
    for r in api::crds::validation_rules() {
        let key = (r.kind.clone(), r.path.clone(), r.rule.clone());
        if !hit.contains(&key) {
            missing.push(key);
        }
    }
    assert!(
        missing.is_empty(),
        "rules without a failing example: {missing:#?}\nhit: {hit:#?}"
    );
}

#[test]
fn rules_compile_and_stay_within_the_cost_budget() {
    for crd in api::crds::all() {
        let schema = api::crds::schema_json(&crd);
        let compiled = compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{}: {:?}",
            crd.spec.names.kind,
            compiled.compilation_errors()
        );
        check_costs(&crd.spec.names.kind, &schema);
    }
}

fn check_costs(kind: &str, node: &Value) {
    let Some(obj) = node.as_object() else { return };
    if let Some(Value::Array(rules)) = obj.get("x-kubernetes-validations") {
        let compiled = compile_schema(node);
        for r in rules {
            let rule = r["rule"].as_str().unwrap();
            let warnings = analyze_rule(rule, &compiled, ScopeContext::CrdValidation);
            // WrongScope is not checked: kube-cel reports comprehension variables as unknown.
            let serious: Vec<_> = warnings
                .iter()
                .filter(|w| w.kind == WarningKind::CostExceeded)
                .collect();
            assert!(serious.is_empty(), "{kind}: {rule}: {serious:?}");
        }
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        props.values().for_each(|p| check_costs(kind, p));
    }
    if let Some(items) = obj.get("items") {
        check_costs(kind, items);
    }
}

#[test]
fn bmcsecret_stays_editable_until_made_immutable() {
    let secret = |immutable: bool, password: &str| {
        serde_json::json!({
            "apiVersion": api::API_VERSION,
            "kind": "BMCSecret",
            "metadata": { "name": "s" },
            "immutable": immutable,
            "stringData": { "username": "admin", "password": password },
        })
    };
    let old = secret(false, "a");
    assert!(support::admit("BMCSecret", &secret(false, "b"), Some(&old)).accepted());
    assert!(support::admit("BMCSecret", &secret(true, "a"), Some(&old)).accepted());
    let frozen = secret(true, "a");
    assert!(!support::admit("BMCSecret", &secret(true, "b"), Some(&frozen)).accepted());
}
