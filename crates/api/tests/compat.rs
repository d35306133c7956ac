//! Compatibility with ironcore-dev/metal-operator v0.7.0 (fixtures in `tests/fixtures/upstream`):
//! upstream samples deserialize into our types and pass our schema, and our CRDs declare every
//! upstream property, enum value, default, list type and rule. Deliberate differences are listed
//! explicitly below so that any new one fails the test.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream/v0.7.0")
}

fn read_dir_sorted(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Upstream samples our schema rejects, with the reason. Upstream's own CRDs reject them too:
/// YAML (1.1 in kubectl, 1.2 here) reads the unquoted value as a boolean. (kubectl's YAML 1.1
/// also turns `serverPower: Off` in the ServerMaintenance sample into `false`; YAML 1.2 keeps it
/// a string, so that sample passes here.)
const INVALID_UPSTREAM_SAMPLES: &[(&str, &str)] = &[(
    "metal_v1alpha1_serverreadinessrule.yaml",
    "requiredStatus: True is a YAML boolean, not the string \"True\"",
)];

/// Unknown fields in the upstream BMCUser sample. Like upstream's CRD, ours does not declare
/// them: kubectl's default strict field validation rejects the sample, `--validate=false` prunes.
const PRUNED_UPSTREAM_FIELDS: &[&str] = &[".spec.enabled", ".spec.BMCControllerUser"];

#[test]
fn upstream_samples_deserialize_and_validate() {
    let mut checked = 0;
    for path in read_dir_sorted(&fixtures().join("samples")) {
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        for doc in support::yaml_documents(&std::fs::read_to_string(&path).unwrap()) {
            let kind = doc["kind"].as_str().unwrap();
            let report = support::admit(kind, &doc, None);
            let typed = support::typed_roundtrip(&doc);
            if INVALID_UPSTREAM_SAMPLES.iter().any(|(f, _)| *f == file) {
                assert!(
                    !report.accepted() && typed.is_err(),
                    "{file} unexpectedly valid"
                );
                // Quoting the value fixes it, and then it is accepted.
                let mut fixed = doc.clone();
                fixed["spec"]["conditions"][0]["requiredStatus"] = Value::from("True");
                assert!(
                    support::admit(kind, &fixed, None).accepted(),
                    "{file} (quoted)"
                );
                support::typed_roundtrip(&fixed).unwrap();
                checked += 1;
                continue;
            }
            assert!(report.accepted(), "{file}: {:#?}", report.errors());
            for field in &report.unknown {
                assert!(
                    PRUNED_UPSTREAM_FIELDS.contains(&field.as_str()),
                    "{file}: unknown field {field}"
                );
            }
            let back = typed.unwrap_or_else(|e| panic!("{file}: {e}"));
            // Apart from pruned fields, the round trip through our types keeps everything.
            let mut expected = doc.clone();
            for field in &report.unknown {
                let name = field.rsplit('.').next().unwrap();
                expected["spec"].as_object_mut().unwrap().remove(name);
            }
            assert_eq!(back, expected, "{file}: round trip changed the object");
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}

fn load_upstream_crds() -> BTreeMap<String, Value> {
    read_dir_sorted(&fixtures().join("crd"))
        .into_iter()
        .map(|p| {
            let doc = support::yaml_documents(&std::fs::read_to_string(&p).unwrap()).remove(0);
            (doc["metadata"]["name"].as_str().unwrap().to_owned(), doc)
        })
        .collect()
}

fn ours() -> BTreeMap<String, Value> {
    api::crds::all()
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap(),
                serde_json::to_value(c).unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_crds_names_scopes_and_columns() {
    let upstream = load_upstream_crds();
    let ours = ours();
    assert_eq!(
        upstream.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (name, up) in &upstream {
        let our = &ours[name];
        assert_eq!(our["spec"]["scope"], up["spec"]["scope"], "{name}");
        for key in ["kind", "listKind", "plural", "singular", "shortNames"] {
            assert_eq!(
                our["spec"]["names"][key], up["spec"]["names"][key],
                "{name} {key}"
            );
        }
        let (uv, ov) = (&up["spec"]["versions"][0], &our["spec"]["versions"][0]);
        assert_eq!(ov["name"], uv["name"]);
        // Upstream marks its day-2 kinds deprecated; here they are first class. Only Endpoint
        // (replaced by BMC.spec.access) stays deprecated.
        assert_eq!(
            ov["deprecated"].as_bool().unwrap_or(false),
            our["spec"]["names"]["kind"] == "Endpoint",
            "{name} deprecated"
        );
        assert!(ov["subresources"]["status"].is_object(), "{name}");
        let columns = |v: &Value| -> Vec<(Value, Value, Value, bool)> {
            v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    let wide = c["priority"].as_i64().unwrap_or(0) > 0;
                    (
                        c["name"].clone(),
                        c["type"].clone(),
                        c["jsonPath"].clone(),
                        wide,
                    )
                })
                .collect()
        };
        // Upstream's columns, in order; the additions are the sets' roll-out columns.
        let added = ["InMaintenance", "Paused"];
        let ours_upstream: Vec<_> = columns(ov)
            .into_iter()
            .filter(|c| !added.iter().any(|a| c.0 == *a))
            .collect();
        assert_eq!(ours_upstream, columns(uv), "{name} printer columns");
        if name.ends_with("sets.metal.ironcore.dev") {
            let names: Vec<_> = columns(ov).into_iter().map(|c| c.0).collect();
            for a in added {
                assert!(names.contains(&Value::from(a)), "{name} shows {a}");
            }
        }
    }
}

/// Flattens a schema into `path -> node` (`[*]` for items, `{*}` for map values).
fn flatten(node: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    if let Some(Value::Object(props)) = node.get("properties") {
        for (k, v) in props {
            flatten(v, format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        flatten(items, format!("{path}[*]"), out);
    }
    if let Some(additional @ Value::Object(_)) = node.get("additionalProperties") {
        flatten(additional, format!("{path}{{*}}"), out);
    }
    out.insert(
        if path.is_empty() { ".".into() } else { path },
        node.clone(),
    );
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Fields we added a closed value set to (upstream accepts any string there).
const NEW_ENUMS: &[&str] = &[
    ".spec.power",
    ".spec.indicatorLED",
    ".spec.bmc.protocol.name",
    ".spec.bmc.protocol.scheme",
    ".spec.protocol.name",
    ".spec.protocol.scheme",
    ".spec.serverPower",
    ".spec.locatorLED",
    ".spec.policy",
    ".spec.serverMaintenancePolicy",
    ".spec.updatePolicy",
    ".spec.biosSettingsTemplate.serverMaintenancePolicy",
    ".spec.biosVersionTemplate.serverMaintenancePolicy",
    ".spec.biosVersionTemplate.updatePolicy",
    ".spec.bmcSettingsTemplate.serverMaintenancePolicy",
    ".spec.bmcVersionTemplate.serverMaintenancePolicy",
    ".spec.bmcVersionTemplate.updatePolicy",
    ".status.state",
    ".status.phase",
    ".status.powerState",
    ".status.indicatorLED",
    ".status.flowState[*].flowState",
];

/// Upstream `minLength: 1` bounds we replaced by a CEL rule with a clearer message.
const MIN_LENGTH_AS_CEL: &[&str] = &[
    ".spec.tolerations[*].key",
    ".spec.taint.key",
    ".spec.taints[*].key",
];

/// Upstream rules we express at a different node (kind, upstream path, our path).
const MOVED_RULES: &[(&str, &str, &str)] = &[
    ("BMCSettings", ".spec", ".spec.variables"),
    (
        "BMCSettingsSet",
        ".spec.bmcSettingsTemplate",
        ".spec.bmcSettingsTemplate.variables",
    ),
];

#[test]
fn every_upstream_property_exists_with_compatible_constraints() {
    let upstream = load_upstream_crds();
    let ours = ours();
    let mut problems = Vec::new();
    for (name, up) in &upstream {
        let kind = up["spec"]["names"]["kind"].as_str().unwrap();
        let mut up_nodes = BTreeMap::new();
        flatten(
            &up["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            String::new(),
            &mut up_nodes,
        );
        let mut our_nodes = BTreeMap::new();
        flatten(
            &ours[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            String::new(),
            &mut our_nodes,
        );
        for (path, u) in &up_nodes {
            let Some(o) = our_nodes.get(path) else {
                problems.push(format!("{kind}: missing property {path}"));
                continue;
            };
            // Types (int-or-string is expressed without a type on our side).
            let u_ios = u.get("x-kubernetes-int-or-string").is_some();
            let o_ios = o.get("x-kubernetes-int-or-string").is_some();
            if u_ios != o_ios || (!u_ios && u.get("type") != o.get("type")) {
                problems.push(format!(
                    "{kind}{path}: type {:?} vs ours {:?}",
                    u.get("type"),
                    o.get("type")
                ));
            }
            // Enums: every upstream value stays accepted; new enums must be deliberate.
            match (u.get("enum"), o.get("enum")) {
                (Some(ue), Some(oe)) if !strings(ue).is_subset(&strings(oe)) => {
                    problems.push(format!("{kind}{path}: enum {ue} not within ours {oe}"));
                }
                (Some(_), None) => problems.push(format!("{kind}{path}: upstream enum missing")),
                (None, Some(_))
                    if !NEW_ENUMS.contains(&path.as_str()) && !path.contains(".conditions[*]") =>
                {
                    problems.push(format!("{kind}{path}: new enum not listed in NEW_ENUMS"));
                }
                _ => {}
            }
            if let Some(d) = u.get("default")
                && o.get("default") != Some(d)
            {
                problems.push(format!(
                    "{kind}{path}: default {d} vs ours {:?}",
                    o.get("default")
                ));
            }
            // No field may become required that upstream leaves optional.
            let extra_required: Vec<_> = strings(&o["required"])
                .difference(&strings(&u["required"]))
                .filter(|r| !(path == "." && *r == "spec"))
                .cloned()
                .collect();
            if !extra_required.is_empty() {
                problems.push(format!("{kind}{path}: newly required {extra_required:?}"));
            }
            for key in [
                "x-kubernetes-list-type",
                "x-kubernetes-list-map-keys",
                "x-kubernetes-map-type",
            ] {
                if let Some(v) = u.get(key)
                    && o.get(key) != Some(v)
                {
                    problems.push(format!("{kind}{path}: {key} {v} vs ours {:?}", o.get(key)));
                }
            }
            for bound in [
                "minimum",
                "maximum",
                "minLength",
                "maxLength",
                "minItems",
                "maxItems",
                "pattern",
            ] {
                if bound == "minLength" && MIN_LENGTH_AS_CEL.contains(&path.as_str()) {
                    let has_rule = o["x-kubernetes-validations"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r["rule"] == "self.size() > 0"));
                    if !has_rule {
                        problems.push(format!("{kind}{path}: minLength replaced but no CEL rule"));
                    }
                    continue;
                }
                if let Some(v) = u.get(bound) {
                    let same = match (v.as_f64(), o.get(bound).and_then(Value::as_f64)) {
                        (Some(a), Some(b)) => a == b,
                        _ => o.get(bound) == Some(v),
                    };
                    if !same {
                        problems.push(format!(
                            "{kind}{path}: {bound} {v} vs ours {:?}",
                            o.get(bound)
                        ));
                    }
                }
            }
            // Every upstream CEL rule has a counterpart at the same node (or the moved one).
            let up_rules = u["x-kubernetes-validations"].as_array().map_or(0, Vec::len);
            if up_rules > 0 {
                let target = MOVED_RULES
                    .iter()
                    .find(|(k, from, _)| *k == kind && from == path)
                    .map(|(_, _, to)| to.to_string())
                    .unwrap_or_else(|| path.clone());
                let our_rules = our_nodes
                    .get(&target)
                    .and_then(|n| n["x-kubernetes-validations"].as_array().map(Vec::len))
                    .unwrap_or(0);
                if our_rules < up_rules.min(1) {
                    problems.push(format!(
                        "{kind}{path}: {up_rules} upstream rules, none at {target}"
                    ));
                }
                if target == *path && our_rules < up_rules {
                    problems.push(format!(
                        "{kind}{path}: {up_rules} upstream rules, {our_rules} ours"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
