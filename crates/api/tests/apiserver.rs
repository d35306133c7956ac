//! The API against a real kube-apiserver: every CRD installs, a valid object of every kind is
//! created, read back and gets its status through the status subresource, every validation rule
//! rejects its bad case with its message and accepts its good case, the printer columns are
//! served, and the samples apply.

use api::validation_cases::{CelCase, cases};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use std::path::Path;

fn resource(kind: &str) -> (ApiResource, bool) {
    let crd = api::crds::by_kind(kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
    let gvk = GroupVersionKind::gvk(&crd.spec.group, &crd.spec.versions[0].name, kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
    (ar, crd.spec.scope == "Namespaced")
}

fn dyn_api(client: &kube::Client, kind: &str, ns: &str) -> Api<DynamicObject> {
    let (ar, namespaced) = resource(kind);
    if namespaced {
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    }
}

fn to_dyn(v: &Value) -> DynamicObject {
    serde_json::from_value(v.clone()).expect("object JSON")
}

/// Cluster-scoped objects of parallel tests share one namespace-less space: make names unique.
fn uniquify(mut v: Value, suffix: &str) -> Value {
    let name = v["metadata"]["name"].as_str().expect("name").to_string();
    v["metadata"]["name"] = json!(format!("{name}-{suffix}"));
    v
}

fn err_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn every_crd_is_established() {
    let (client, _ns) = testenv::setup("crds").await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let expected = api::crds::all();
    assert_eq!(expected.len(), 17, "every kind of the brief");
    for crd in expected {
        let name = crd.metadata.name.clone().expect("name");
        let got = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The installed schema is the generated one (the committed YAML is checked elsewhere).
        assert_eq!(
            api::crds::schema_json(&got),
            api::crds::schema_json(&crd),
            "{name}: installed schema differs from the generated one"
        );
        let established = got
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} not established");
    }
}

/// A status each kind accepts, to prove the status subresource works.
fn status_for(kind: &str) -> Value {
    let cond = json!([{
        "type": "Ready", "status": "True", "reason": "Tested", "message": "written by the test",
        "lastTransitionTime": "2026-01-01T00:00:00Z"
    }]);
    match kind {
        "Server" => json!({ "state": "Available", "powerState": "Off", "conditions": cond }),
        "BMC" => json!({ "state": "Enabled", "powerState": "On", "conditions": cond }),
        "ServerClaim" => json!({ "phase": "Bound" }),
        "ServerBootConfiguration" => json!({ "state": "Ready", "conditions": cond }),
        "ServerMaintenance" => json!({ "state": "InMaintenance" }),
        "BIOSSettings" | "BIOSVersion" | "BMCSettings" | "BMCVersion" => {
            json!({ "state": "Pending" })
        }
        "BMCUser" => json!({ "id": "3" }),
        "ServerReadinessRule" => json!({ "conditions": cond }),
        _ => json!({}),
    }
}

fn samples() -> Vec<Value> {
    let dir = testenv::repo_root().join("kustomize/samples");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("kustomize/samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).expect("sample");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    out
}

#[tokio::test]
async fn samples_apply_and_status_subresource_works_for_every_kind() {
    let (client, ns) = testenv::setup("samples").await;
    let samples = samples();
    let mut kinds: Vec<String> = samples
        .iter()
        .map(|s| s["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut expected: Vec<String> = api::crds::all()
        .iter()
        .map(|c| c.spec.names.kind.clone())
        .collect();
    expected.sort();
    for kind in &expected {
        assert!(kinds.contains(kind), "no sample for {kind}");
    }
    let pp = PatchParams::apply("metal-test").force();
    for sample in samples {
        let kind = sample["kind"].as_str().expect("kind").to_string();
        if !expected.contains(&kind) {
            // Supporting objects (Secrets) of the samples.
            continue;
        }
        let obj = uniquify(sample, &ns.name);
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let api = dyn_api(&client, &kind, &ns.name);
        api.patch(&name, &pp, &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("applying sample {kind}/{name}: {}", err_message(&e)));
        let read = api.get(&name).await.expect("read back");
        assert_subset(&obj["spec"], &read.data["spec"], &format!("{kind}.spec"));
        let status = status_for(&kind);
        let patched = api
            .patch_status(
                &name,
                &pp,
                &Patch::Apply(json!({
                    "apiVersion": obj["apiVersion"], "kind": kind, "status": status
                })),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind}: status subresource: {}", err_message(&e)));
        for (k, v) in status.as_object().expect("status object") {
            assert_eq!(&patched.data["status"][k], v, "{kind}: status.{k} written");
        }
        // A write to the main resource cannot change status.
        api.replace(&name, &PostParams::default(), &{
            let mut cur = api.get(&name).await.expect("get");
            cur.data["status"] = json!({ "bogus": true });
            cur
        })
        .await
        .expect("replace main resource");
        let after = api.get(&name).await.expect("get");
        for (k, v) in status.as_object().expect("status object") {
            assert_eq!(
                &after.data["status"][k], v,
                "{kind}: main resource write left status alone"
            );
        }
        api.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
    }
}

/// Every value of `want` is in `got` (the apiserver may add defaults).
fn assert_subset(want: &Value, got: &Value, path: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                assert_subset(v, g.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}: list length");
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                assert_subset(a, b, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{path}: value round-trips unchanged"),
    }
}

async fn run_case(client: &kube::Client, ns: &str, case: &CelCase) -> Result<(), String> {
    let api = dyn_api(client, case.kind, ns);
    let valid = uniquify(case.valid.clone(), ns);
    let name = valid["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let created = api
        .create(&PostParams::default(), &to_dyn(&valid))
        .await
        .map_err(|e| format!("{}: valid object rejected: {}", case.name, err_message(&e)))?;
    let result = if case.update {
        let rv = created.metadata.resource_version.clone();
        let mut bad = uniquify(case.invalid.clone(), ns);
        bad["metadata"]["resourceVersion"] = json!(rv);
        match api
            .replace(&name, &PostParams::default(), &to_dyn(&bad))
            .await
        {
            Ok(_) => Err(format!("{}: invalid update accepted", case.name)),
            Err(e) if err_message(&e).contains(case.message) => Ok(()),
            Err(e) => Err(format!(
                "{}: rejected with {:?}, expected message containing {:?}",
                case.name,
                err_message(&e),
                case.message
            )),
        }
        .and(match &case.accepted_update {
            None => Ok(()),
            Some(good) => {
                let current = api.get(&name).await.map_err(|e| e.to_string())?;
                let mut good = uniquify(good.clone(), ns);
                good["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
                api.replace(&name, &PostParams::default(), &to_dyn(&good))
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        format!(
                            "{}: accepted update rejected: {}",
                            case.name,
                            err_message(&e)
                        )
                    })
            }
        })
    } else {
        let bad = uniquify(case.invalid.clone(), &format!("{ns}-bad"));
        match api.create(&PostParams::default(), &to_dyn(&bad)).await {
            Ok(_) => Err(format!("{}: invalid object accepted", case.name)),
            Err(e) if err_message(&e).contains(case.message) => Ok(()),
            Err(e) => Err(format!(
                "{}: rejected with {:?}, expected message containing {:?}",
                case.name,
                err_message(&e),
                case.message
            )),
        }
    };
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

#[tokio::test]
async fn every_validation_rule_rejects_its_bad_case_with_its_message() {
    let (client, ns) = testenv::setup("cel").await;
    let all = cases();
    assert!(
        all.len() >= 30,
        "expected a case per rule, got {}",
        all.len()
    );
    let mut failures = Vec::new();
    for case in &all {
        if let Err(f) = run_case(&client, &ns.name, case).await {
            failures.push(f);
        }
    }
    // Every CEL rule in the generated CRDs has at least one case.
    let mut uncovered = Vec::new();
    for rule in api::crds::validation_rules() {
        if !all
            .iter()
            .any(|c| c.kind == rule.kind && c.message.len() > 3 && rule.message.contains(c.message))
        {
            uncovered.push(format!("{} {}: {}", rule.kind, rule.path, rule.message));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert!(
        uncovered.is_empty(),
        "rules without a case:\n{}",
        uncovered.join("\n")
    );
}

#[tokio::test]
async fn printer_columns_are_served() {
    let (client, ns) = testenv::setup("columns").await;
    for crd in api::crds::all() {
        let kind = crd.spec.names.kind.clone();
        let (ar, namespaced) = resource(&kind);
        let path = if namespaced {
            format!(
                "/apis/{}/{}/namespaces/{}/{}",
                ar.group, ar.version, ns.name, ar.plural
            )
        } else {
            format!("/apis/{}/{}/{}", ar.group, ar.version, ar.plural)
        };
        let req = http::Request::get(&path)
            .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
            .body(Vec::new())
            .expect("request");
        let table: Value = client.request(req).await.expect("table");
        assert_eq!(table["kind"], "Table", "{kind}");
        let served: Vec<(String, i64)> = table["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["priority"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        let declared = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert_eq!(served[0].0, "Name", "{kind}");
        if declared.is_empty() {
            // Upstream declares none for this kind: the apiserver's default columns.
            assert_eq!(served.len(), 2, "{kind}: {served:?}");
        }
        for col in declared {
            assert!(
                served
                    .iter()
                    .any(|(n, p)| *n == col.name && *p == i64::from(col.priority.unwrap_or(0))),
                "{kind}: column {} (priority {:?}) not served: {served:?}",
                col.name,
                col.priority
            );
        }
    }
}

#[test]
fn crd_dir_matches_generated() {
    // Checked in detail by tests/crdgen.rs; here only that testenv installs what the code generates.
    let dir = testenv::crd_dir();
    for crd in api::crds::all() {
        assert!(Path::new(&dir).join(api::crds::file_name(&crd)).exists());
    }
}

/// `kubectl apply` prints the CRD's deprecation warning on every write; the day-2 kinds are
/// first class here, so only `Endpoint` (replaced by `BMC.spec.access`) may warn.
#[tokio::test]
async fn kubectl_apply_warns_only_for_the_deprecated_endpoint_kind() {
    let (_client, ns) = testenv::setup("deprecation").await;
    let ns = ns.name.clone();
    let cp = testenv::shared();
    let kubectl = cp
        .binaries()
        .and_then(|b| b.kubectl.clone())
        .unwrap_or_else(|| std::path::PathBuf::from("kubectl"));
    let dir = testenv::repo_root().join("kustomize/samples");
    let mut checked = Vec::new();
    for sample in samples() {
        let kind = sample["kind"].as_str().expect("kind").to_string();
        if !kind_is_ours(&kind) {
            continue;
        }
        let file = std::env::temp_dir().join(format!("metal-deprecation-{ns}-{kind}.json"));
        std::fs::write(&file, serde_json::to_vec(&sample).unwrap()).unwrap();
        let out = std::process::Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .args(["apply", "--dry-run=server", "-n", &ns, "-f"])
            .arg(&file)
            .current_dir(&dir)
            .output()
            .expect("kubectl");
        let _ = std::fs::remove_file(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl apply {kind}: {stderr}");
        let warns = stderr.contains("is deprecated");
        assert_eq!(
            warns,
            kind == "Endpoint",
            "kubectl apply of a {kind}: deprecation warning {warns}: {stderr}"
        );
        checked.push(kind);
    }
    for kind in [
        "BIOSSettings",
        "BMCVersion",
        "BMCSettingsSet",
        "ServerMaintenance",
        "Endpoint",
    ] {
        assert!(
            checked.iter().any(|k| k == kind),
            "no {kind} sample checked"
        );
    }
}

fn kind_is_ours(kind: &str) -> bool {
    api::crds::by_kind(kind).is_some()
}
