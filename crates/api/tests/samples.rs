//! The samples under `kustomize/samples/`: one per kind, each valid under the generated schema
//! and representable by our types without losing fields.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

fn samples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kustomize/samples")
}

fn samples() -> Vec<(String, serde_json::Value)> {
    let kustomization = std::fs::read_to_string(samples_dir().join("kustomization.yaml")).unwrap();
    let k = &support::yaml_documents(&kustomization)[0];
    k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            let f = f.as_str().unwrap().to_owned();
            let text = std::fs::read_to_string(samples_dir().join(&f)).unwrap();
            support::yaml_documents(&text)
                .into_iter()
                .map(move |d| (f.clone(), d))
        })
        .collect()
}

#[test]
fn kustomization_lists_every_sample_file() {
    let listed: BTreeSet<String> = samples().into_iter().map(|(f, _)| f).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("metal_v1alpha1_"))
        .collect();
    assert_eq!(listed, on_disk);
}

#[test]
fn one_sample_per_kind() {
    let kinds: Vec<String> = samples()
        .iter()
        .map(|(_, d)| d["kind"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<String> = kinds.iter().cloned().collect();
    assert_eq!(kinds.len(), unique.len(), "{kinds:?}");
    let all: BTreeSet<String> = api::crds::all()
        .into_iter()
        .map(|c| c.spec.names.kind)
        .collect();
    assert_eq!(unique, all);
}

#[test]
fn samples_are_valid_and_lossless() {
    for (file, doc) in samples() {
        let kind = doc["kind"].as_str().unwrap();
        assert_eq!(doc["apiVersion"], api::API_VERSION, "{file}");
        assert!(
            doc["metadata"].get("namespace").is_none(),
            "{file}: carries a namespace"
        );
        let report = support::admit(kind, &doc, None);
        assert!(report.accepted(), "{file}: {:#?}", report.errors());
        assert!(
            report.unknown.is_empty(),
            "{file}: unknown fields {:?}",
            report.unknown
        );
        let back = support::typed_roundtrip(&doc).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(back, doc, "{file}: typed round trip changed the object");
    }
}
