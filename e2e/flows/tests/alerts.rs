//! The alerts in `kustomize/monitoring/alerts.yaml` fire when they should and stay quiet when they
//! should not: `promtool test rules` (Debian's `prometheus` package; `.ci/run` installs it) runs
//! `kustomize/monitoring/tests/alerts_test.yaml` against the PrometheusRule's groups, and every
//! alert must have a case in which it fires.

use serde_yaml::Value;
use std::collections::BTreeSet;
use std::process::Command;

fn monitoring() -> std::path::PathBuf {
    testenv::repo_root().join("kustomize/monitoring")
}

fn read_yaml(name: &str) -> Value {
    let path = monitoring().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn alert_names(rule: &Value) -> BTreeSet<String> {
    rule["spec"]["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_alert_has_a_case_in_which_it_fires() {
    let alerts = alert_names(&read_yaml("alerts.yaml"));
    let tests = read_yaml("tests/alerts_test.yaml");
    let firing: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .flat_map(|t| {
            t["alert_rule_test"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()))
        .filter_map(|c| c["alertname"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<_> = alerts.difference(&firing).collect();
    assert!(
        missing.is_empty(),
        "alerts without a firing case in alerts_test.yaml: {missing:?}"
    );
    let unknown: Vec<_> = firing.difference(&alerts).collect();
    assert!(unknown.is_empty(), "cases for unknown alerts: {unknown:?}");
}

#[test]
fn promtool_rule_tests_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = read_yaml("alerts.yaml");
    let groups = serde_yaml::to_string(&serde_yaml::Mapping::from_iter([(
        Value::from("groups"),
        rule["spec"]["groups"].clone(),
    )]))
    .expect("rules");
    std::fs::write(dir.path().join("rules.yaml"), groups).expect("rules.yaml");
    std::fs::copy(
        monitoring().join("tests/alerts_test.yaml"),
        dir.path().join("alerts_test.yaml"),
    )
    .expect("copy tests");
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let check = Command::new(&promtool)
        .args(["check", "rules", "rules.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{promtool} not found ({e}): install Debian's `prometheus` package (.ci/run does)"
            )
        });
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new(&promtool)
        .args(["test", "rules", "alerts_test.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
