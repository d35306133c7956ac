//! Every kustomize directory builds, and the site overlay's result carries what users rely on:
//! the CRDs, each controller as its own Deployment with probes, least-privilege RBAC (no
//! wildcards), the monitoring objects, and the overlay's patches.

use std::path::Path;

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// Every directory under `kustomize/` with a `kustomization.yaml`.
const LISTED: &[&str] = &[
    "base/crd",
    "samples",
    "discovery",
    "reservation",
    "provisioning",
    "maintenance",
    "monitoring",
    "default",
    "overlays/example-site",
    "base/namespace",
    "components/discovery",
    "components/reservation",
    "components/provisioning",
    "components/maintenance",
    "components/monitoring",
    "overlays/example-site/discovery-shard-b",
    "overlays/without-maintenance",
];

fn kustomizations(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.join("kustomization.yaml").exists() {
                let rel = p.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
            kustomizations(root, &p, out);
        }
    }
}

#[test]
fn every_kustomization_builds() {
    let root = testenv::repo_root().join("kustomize");
    for dir in LISTED {
        e2e::kustomize_build(&root.join(dir)).unwrap_or_else(|e| panic!("kustomize/{dir}: {e}"));
    }
    // No kustomization is left out of the list above.
    let mut found = Vec::new();
    kustomizations(&root, &root, &mut found);
    let mut missing: Vec<_> = found
        .iter()
        .filter(|d| !LISTED.contains(&d.as_str()))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "not built by this test: {missing:?}");
}

#[test]
fn the_site_overlay_has_every_part() {
    let out = e2e::kustomize_build(&testenv::repo_root().join("kustomize/overlays/example-site"))
        .expect("build");
    let all = docs(&out);
    let count = |kind: &str| all.iter().filter(|d| d["kind"] == kind).count();
    assert_eq!(count("CustomResourceDefinition"), 17);
    assert_eq!(
        count("Deployment"),
        5,
        "one Deployment per controller, and discovery's second shard"
    );
    assert!(count("ServiceMonitor") >= 1 && count("PrometheusRule") >= 1);
    for d in all.iter().filter(|d| d["kind"] == "Deployment") {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(d["metadata"]["namespace"], "metal-system");
        assert!(
            c["readinessProbe"]["httpGet"]["path"] == "/readyz",
            "{}",
            d["metadata"]["name"]
        );
        assert!(c["livenessProbe"]["httpGet"]["path"] == "/healthz");
        assert!(
            c["image"].as_str().is_some_and(|i| i.ends_with(":v0.1.0")),
            "overlay image tag"
        );
        // What the images (`cargo xtask images`) are built for: their name, uid 65532 and a
        // root filesystem nothing writes to.
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            c["image"].as_str().is_some_and(|i| {
                // A shard runs its controller's image.
                let image = name.trim_end_matches("-shard-b");
                i.starts_with(&format!("ghcr.io/metal-rs/{image}:"))
            }),
            "{name}: image {}",
            c["image"]
        );
        let pod = &d["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(pod["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["runAsUser"], 65532, "{name}");
        assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
    }
    let discovery = all
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "metal-discovery")
        .expect("discovery");
    let args = discovery["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--inspection=in-band"),
        "overlay patch applied: {args}"
    );
    let maintenance = all
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "metal-maintenance")
        .expect("maintenance");
    let args = maintenance["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--bios-settings-timeout=3h"),
        "overlay patch applied: {args}"
    );
    for role in all
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        let rules = role["rules"].to_string();
        assert!(
            !rules.contains("\"*\""),
            "wildcard in {}: {rules}",
            role["metadata"]["name"]
        );
    }
    assert!(
        Path::new(&testenv::repo_root().join("kustomize/monitoring/metal-dashboard.json")).exists()
    );
}

fn deployment<'a>(all: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("Deployment {name}"))
}

/// The container's arguments.
fn args(d: &serde_json::Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect()
}

/// The last value of `--flag` (later flags override earlier ones).
fn flag(d: &serde_json::Value, flag: &str) -> Option<String> {
    args(d)
        .iter()
        .rev()
        .find_map(|a| a.strip_prefix(&format!("{flag}=")).map(str::to_string))
}

/// `path` inside the container is mounted from the ConfigMap generated as `configmap` (the
/// generated name carries a hash suffix).
fn mounts_configmap(d: &serde_json::Value, path: &str, configmap: &str) -> bool {
    let spec = &d["spec"]["template"]["spec"];
    let Some(mount) = spec["containers"][0]["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["mountPath"] == path))
    else {
        return false;
    };
    spec["volumes"].as_array().is_some_and(|vs| {
        vs.iter().any(|v| {
            v["name"] == mount["name"]
                && v["configMap"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{configmap}-")))
        })
    })
}

/// What the site overlay shows a site how to set: replicas per controller, a second discovery
/// shard, the BMC CA bundle, the MAC-prefix database, the boot server address, resources.
#[test]
fn the_site_overlay_shows_the_site_settings() {
    let root = testenv::repo_root().join("kustomize");
    let all = docs(&e2e::kustomize_build(&root.join("overlays/example-site")).expect("build"));
    let base = docs(&e2e::kustomize_build(&root.join("default")).expect("build"));
    let replicas: Vec<_> = [
        "metal-discovery",
        "metal-discovery-shard-b",
        "metal-reservation",
        "metal-provisioning",
        "metal-maintenance",
    ]
    .iter()
    .map(|n| (*n, deployment(&all, n)["spec"]["replicas"].as_i64()))
    .collect();
    assert_eq!(
        replicas,
        [
            ("metal-discovery", Some(3)),
            ("metal-discovery-shard-b", Some(2)),
            ("metal-reservation", Some(2)),
            ("metal-provisioning", Some(3)),
            ("metal-maintenance", Some(2)),
        ]
    );

    // Shards: disjoint BMC selectors, one Lease each, the same ServiceAccount, own pods.
    let a = deployment(&all, "metal-discovery");
    let b = deployment(&all, "metal-discovery-shard-b");
    for d in [a, b] {
        let n = args(d)
            .iter()
            .filter(|a| a.starts_with("--bmc-selector="))
            .count();
        assert_eq!(n, 1, "one --bmc-selector: {:?}", args(d));
    }
    assert_eq!(
        flag(a, "--bmc-selector").as_deref(),
        Some("metal.ironcore.dev/shard!=b")
    );
    assert_eq!(
        flag(b, "--bmc-selector").as_deref(),
        Some("metal.ironcore.dev/shard=b")
    );
    assert_eq!(
        flag(a, "--lease-name"),
        None,
        "default Lease metal-discovery"
    );
    for d in [a, b] {
        assert_eq!(
            flag(d, "--shards").as_deref(),
            Some("16"),
            "replicas of each label shard divide its BMCs"
        );
    }
    assert_eq!(
        flag(b, "--lease-name").as_deref(),
        Some("metal-discovery-shard-b")
    );
    assert_eq!(
        b["spec"]["template"]["spec"]["serviceAccountName"],
        "metal-discovery"
    );
    assert_ne!(
        a["spec"]["selector"], b["spec"]["selector"],
        "the shards' pods are told apart"
    );
    for d in [a, b] {
        let sel = &d["spec"]["selector"]["matchLabels"];
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        for (k, v) in sel.as_object().expect("matchLabels") {
            assert_eq!(&labels[k], v, "the selector selects its own pods");
        }
    }
    let count = |kind: &str| all.iter().filter(|d| d["kind"] == kind).count();
    assert_eq!(
        count("ServiceAccount"),
        4,
        "the shard has no identity of its own"
    );
    assert!(
        all.iter()
            .find(|d| d["kind"] == "ServiceMonitor")
            .expect("ServiceMonitor")["spec"]["selector"]
            .to_string()
            .contains("metal-discovery-shard-b"),
        "shard b is scraped"
    );

    // BMC CA bundle and MAC-prefix database from ConfigMaps.
    for (d, ca_flag) in [
        (a, "--bmc-ca-file"),
        (b, "--bmc-ca-file"),
        (deployment(&all, "metal-provisioning"), "--bmc-ca-file"),
        (deployment(&all, "metal-maintenance"), "--bmc-ca"),
    ] {
        let name = &d["metadata"]["name"];
        assert_eq!(
            flag(d, ca_flag).as_deref(),
            Some("/etc/metal/bmc-ca/ca.crt"),
            "{name}"
        );
        assert!(
            mounts_configmap(d, "/etc/metal/bmc-ca", "metal-bmc-ca"),
            "{name}"
        );
    }
    for d in [a, b] {
        assert_eq!(
            flag(d, "--mac-prefixes-file").as_deref(),
            Some("/etc/metal/macdb/macdb.yaml")
        );
        assert!(mounts_configmap(
            d,
            "/etc/metal/macdb",
            "metal-mac-prefixes"
        ));
    }
    let cm = |prefix: &str| {
        all.iter()
            .find(|d| {
                d["kind"] == "ConfigMap"
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("ConfigMap {prefix}"))
    };
    assert!(
        cm("metal-bmc-ca-")["data"]["ca.crt"]
            .as_str()
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")),
        "a PEM CA bundle"
    );
    let macdb: serde_json::Value = serde_yaml::from_str(
        cm("metal-mac-prefixes-")["data"]["macdb.yaml"]
            .as_str()
            .expect("macdb.yaml"),
    )
    .expect("macdb yaml");
    assert!(
        macdb["macPrefixes"]
            .as_array()
            .is_some_and(|p| !p.is_empty() && p.iter().all(|e| e["macPrefix"].is_string())),
        "{macdb}"
    );

    // The boot server's address.
    assert_eq!(
        flag(deployment(&all, "metal-provisioning"), "--boot-server-url").as_deref(),
        Some("http://boot.fra-dc5.example.net:8082")
    );

    // Resources: the overlay sets its own for discovery and provisioning.
    for name in [
        "metal-discovery",
        "metal-discovery-shard-b",
        "metal-provisioning",
    ] {
        let resources = |all: &[serde_json::Value], name: &str| {
            deployment(all, name)["spec"]["template"]["spec"]["containers"][0]["resources"].clone()
        };
        let got = resources(&all, name);
        let default = resources(&base, name.trim_end_matches("-shard-b"));
        assert!(
            got["requests"]["cpu"].is_string() && got["limits"]["memory"].is_string(),
            "{name}: {got}"
        );
        assert_ne!(got, default, "{name}: the overlay's resources");
    }
}

/// A site picks controllers by listing their components: the overlay without maintenance has
/// exactly the other three, each with its identity, and nothing of maintenance.
#[test]
fn components_pick_controllers() {
    let root = testenv::repo_root().join("kustomize");
    let all =
        docs(&e2e::kustomize_build(&root.join("overlays/without-maintenance")).expect("build"));
    let names = |kind: &str| {
        let mut n: Vec<String> = all
            .iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| {
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        n.sort();
        n
    };
    let three = ["metal-discovery", "metal-provisioning", "metal-reservation"];
    assert_eq!(names("Deployment"), three);
    assert_eq!(names("ServiceAccount"), three);
    assert!(!out_mentions(&all, "metal-maintenance"));
    assert_eq!(names("CustomResourceDefinition").len(), 17);
    assert_eq!(names("Namespace"), ["metal-system"]);
    assert!(names("ServiceMonitor").is_empty());
    // The default install is all four components.
    let default = docs(&e2e::kustomize_build(&root.join("default")).expect("build"));
    let mut deployments: Vec<_> = default
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| d["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    deployments.sort();
    assert_eq!(
        deployments,
        [
            "metal-discovery",
            "metal-maintenance",
            "metal-provisioning",
            "metal-reservation"
        ]
    );
}

fn out_mentions(all: &[serde_json::Value], what: &str) -> bool {
    all.iter().any(|d| d.to_string().contains(what))
}

/// A stand-in for one of the Prometheus Operator's CRDs (the kind, not its schema), so that the
/// monitoring objects can be applied with a server-side dry run.
fn stand_in_crd(kind: &str) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{ name: {plural}.monitoring.coreos.com }}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{ kind: {kind}, plural: {plural} }}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{ openAPIV3Schema: {{ type: object, x-kubernetes-preserve-unknown-fields: true }} }}
"
    )
}

/// `kubectl <args>` against the shared control plane with `stdin`; its stdout, or the failure.
fn kubectl(args: &[&str], stdin: &str, cache: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bin = testenv::Binaries::locate()
        .expect("binaries")
        .kubectl
        .expect("kubectl was not built");
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(testenv::shared().kubeconfig())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("kubectl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn to_yaml(docs: &[&serde_json::Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Every overlay applies to the real control plane: the CRDs and the Namespace for real, then
/// everything else with a server-side dry run (the API server validates and admits each object
/// against the CRDs' schemas and the built-in types without running the workloads).
#[test]
fn every_overlay_applies() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cache = cache.path();
    kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=metal-e2e",
            "-f",
            "-",
        ],
        &format!(
            "{}---\n{}",
            stand_in_crd("ServiceMonitor"),
            stand_in_crd("PrometheusRule")
        ),
        cache,
    )
    .expect("Prometheus Operator CRD stand-ins");
    let root = testenv::repo_root().join("kustomize");
    for overlay in [
        "default",
        "overlays/example-site",
        "overlays/without-maintenance",
    ] {
        let all = docs(&e2e::kustomize_build(&root.join(overlay)).expect("build"));
        let (first, rest): (Vec<_>, Vec<_>) = all
            .iter()
            .partition(|d| d["kind"] == "CustomResourceDefinition" || d["kind"] == "Namespace");
        let apply = [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=metal-e2e",
            "-f",
            "-",
        ];
        kubectl(&apply, &to_yaml(&first), cache)
            .unwrap_or_else(|e| panic!("{overlay}: CRDs and Namespace: {e}"));
        kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "--all",
            ],
            "",
            cache,
        )
        .unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let mut dry = apply.to_vec();
        dry.insert(1, "--dry-run=server");
        let out = kubectl(&dry, &to_yaml(&rest), cache)
            .unwrap_or_else(|e| panic!("{overlay}: server-side dry run: {e}"));
        let applied = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            applied,
            rest.len(),
            "{overlay}: every object admitted:\n{out}"
        );
    }
}
