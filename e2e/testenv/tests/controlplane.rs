//! The test control plane itself: the right Kubernetes version, garbage collection of owned
//! objects by kube-controller-manager, and namespace deletion.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use std::time::{Duration, Instant};

#[tokio::test]
async fn serves_kubernetes_1_37() {
    let client = testenv::shared().client().await;
    let v = client.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    assert_eq!(v.minor, "37");
    assert!(v.git_version.starts_with("v1.37."), "{}", v.git_version);
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn owned_objects_are_garbage_collected() {
    let (client, ns) = testenv::setup("gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let parent = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("parent".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("parent");
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("child".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: "parent".into(),
                    uid: parent.metadata.uid.clone().expect("uid"),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .expect("child");
    cms.delete("parent", &DeleteParams::default())
        .await
        .expect("delete parent");
    eventually("child collected", async || {
        cms.get_opt("child").await.expect("get").is_none()
    })
    .await;
}

#[tokio::test]
async fn namespaces_are_deleted() {
    let (client, ns) = testenv::setup("nsdel").await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete(&ns.name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("namespace gone", async || {
        nss.get_opt(&ns.name).await.expect("get").is_none()
    })
    .await;
}
