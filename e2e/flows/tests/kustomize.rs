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

#[test]
fn every_kustomization_builds() {
    let root = testenv::repo_root().join("kustomize");
    for dir in [
        "base/crd",
        "samples",
        "discovery",
        "reservation",
        "provisioning",
        "maintenance",
        "monitoring",
        "default",
        "overlays/example-site",
    ] {
        e2e::kustomize_build(&root.join(dir)).unwrap_or_else(|e| panic!("kustomize/{dir}: {e}"));
    }
}

#[test]
fn the_site_overlay_has_every_part() {
    let out = e2e::kustomize_build(&testenv::repo_root().join("kustomize/overlays/example-site"))
        .expect("build");
    let all = docs(&out);
    let count = |kind: &str| all.iter().filter(|d| d["kind"] == kind).count();
    assert_eq!(count("CustomResourceDefinition"), 17);
    assert_eq!(count("Deployment"), 4, "one Deployment per controller");
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
