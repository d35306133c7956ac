//! Keeps the committed CRD YAML (`kustomize/base/crd/`) and `docs/api-validation.md` in sync
//! with the code. Fails when they differ; `METAL_UPDATE_CRDS=1 cargo test -p api --test crdgen`
//! rewrites them instead.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn update_mode() -> bool {
    std::env::var("METAL_UPDATE_CRDS").is_ok_and(|v| v == "1")
}

/// Every generated file with its expected content.
fn expected_files() -> Vec<(PathBuf, String)> {
    let root = repo_root();
    let crd_dir = root.join("kustomize/base/crd");
    let mut files: Vec<(PathBuf, String)> = api::crds::all()
        .iter()
        .map(|crd| {
            (
                crd_dir.join(api::crds::file_name(crd)),
                api::crds::render_yaml(crd),
            )
        })
        .collect();
    files.push((
        crd_dir.join("kustomization.yaml"),
        api::crds::kustomization_yaml(),
    ));
    files.push((
        root.join("docs/api-validation.md"),
        api::crds::validation_doc(),
    ));
    files
}

#[test]
fn generated_files_are_up_to_date() {
    let files = expected_files();
    if update_mode() {
        let crd_dir = repo_root().join("kustomize/base/crd");
        std::fs::create_dir_all(&crd_dir).unwrap();
        // Drop CRD files of kinds that no longer exist.
        for entry in std::fs::read_dir(&crd_dir).unwrap() {
            let path = entry.unwrap().path();
            let generated = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("metal.ironcore.dev_") && n.ends_with(".yaml"));
            if generated && !files.iter().any(|(p, _)| *p == path) {
                std::fs::remove_file(&path).unwrap();
            }
        }
        for (path, content) in &files {
            std::fs::write(path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        return;
    }
    let mut stale = Vec::new();
    for (path, content) in &files {
        match std::fs::read_to_string(path) {
            Ok(current) if current == *content => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are missing or out of date: {stale:#?}\nrun `METAL_UPDATE_CRDS=1 cargo test -p api --test crdgen` (or `cargo xtask crdgen`)"
    );
}

#[test]
fn committed_crds_parse_back_into_the_same_definitions() {
    for crd in api::crds::all() {
        let yaml = api::crds::render_yaml(&crd);
        let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed, crd, "{}", crd.spec.names.kind);
    }
}
