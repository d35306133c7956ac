//! The committed CRD files mean the same to YAML 1.1 readers as to the code: PyYAML (YAML 1.1
//! resolution, like kubectl's go-yaml) reads every file back into exactly the generated CRD, and
//! `kubectl apply -f <file>` (not only `-k`, where kustomize re-quotes) sends the API server the
//! generated schema. Unquoted `On`/`Off` enum values fail both: YAML 1.1 reads them as booleans.

use std::path::PathBuf;
use std::process::Command;

fn committed_files() -> Vec<(PathBuf, serde_json::Value)> {
    api::crds::all()
        .iter()
        .map(|crd| {
            (
                testenv::crd_dir().join(api::crds::file_name(crd)),
                serde_json::to_value(crd).expect("CRD serializes"),
            )
        })
        .collect()
}

#[test]
fn a_yaml_1_1_reader_reads_every_crd_file_as_generated() {
    let script = testenv::repo_root().join("crates/api/scripts/pyyaml-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("venv script");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let venv = String::from_utf8_lossy(&out.stdout).trim().to_string();
    for (path, expected) in committed_files() {
        let read = run(
            Command::new(format!("{venv}/bin/python"))
                .args([
                    "-c",
                    "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
                ])
                .arg(&path),
            &format!("PyYAML on {}", path.display()),
        );
        let got: serde_json::Value = serde_json::from_slice(&read).expect("JSON");
        assert_eq!(
            got,
            expected,
            "{} reads differently under YAML 1.1",
            path.display()
        );
    }
}

#[tokio::test]
async fn kubectl_apply_of_every_crd_file_sends_the_generated_schema() {
    let cp = testenv::shared();
    let kubectl = cp
        .binaries()
        .and_then(|b| b.kubectl.clone())
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    for (path, expected) in committed_files() {
        // A server-side dry run returns what would be stored without touching the shared CRDs.
        let out = run(
            Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
                .args(["apply", "--dry-run=server", "-o", "json", "-f"])
                .arg(&path),
            &format!("kubectl apply -f {}", path.display()),
        );
        let stored: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        let schema = |v: &serde_json::Value| numbers_as_floats(&v["spec"]["versions"][0]["schema"]);
        assert_eq!(
            schema(&stored),
            schema(&expected),
            "kubectl apply -f {} changed the schema",
            path.display()
        );
    }
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds; returns its stdout.
fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The API server answers `minimum: 0.0` as `0`: compare numbers by value.
fn numbers_as_floats(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_floats).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
