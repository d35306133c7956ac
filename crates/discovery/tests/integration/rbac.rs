//! The ClusterRole in `kustomize/discovery` is sufficient: the RBAC YAML is applied (namespace
//! rewritten to the test's), and discovery — controllers, registry and leader election — runs
//! in-process with a client impersonating the `metal-discovery` ServiceAccount. It onboards a
//! BMC out-of-band, runs an in-band discovery through the registry and creates a BMCUser;
//! anything the role does not grant would surface as a Forbidden error and stall the flow.

use std::time::Duration;

use api::bmcuser::BMCUser;
use api::server::ServerState;
use api::serverbootconfiguration::ServerBootConfiguration;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_bmc_sim::TemplateSource;
use runtime::lease::{self, LeaseParams};
use serde_json::json;

use crate::support::*;

const SA: &str = "metal-discovery";

fn manifests(file: &str, ns: &str) -> Vec<serde_yaml::Value> {
    let path = testenv::repo_root().join("kustomize/discovery").join(file);
    let text = std::fs::read_to_string(&path)
        .expect("read manifest")
        .replace("namespace: metal-system", &format!("namespace: {ns}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect()
}

async fn install_rbac(client: &kube::Client, ns: &str) {
    let pp = PostParams::default();
    for doc in manifests("serviceaccount.yaml", ns) {
        let sa: ServiceAccount = serde_yaml::from_value(doc).unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .create(&pp, &sa)
            .await
            .expect("service account");
    }
    for doc in manifests("rbac.yaml", ns) {
        match doc["kind"].as_str().unwrap_or_default() {
            "ClusterRole" => {
                let r: ClusterRole = serde_yaml::from_value(doc).unwrap();
                for rule in r.rules.iter().flatten() {
                    assert!(!rule.verbs.iter().any(|v| v == "*"), "no wildcard verbs");
                    assert!(
                        !rule.resources.iter().flatten().any(|v| v == "*"),
                        "no wildcard resources"
                    );
                }
                Api::<ClusterRole>::all(client.clone())
                    .create(&pp, &r)
                    .await
                    .expect("cluster role");
            }
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = serde_yaml::from_value(doc).unwrap();
                Api::<ClusterRoleBinding>::all(client.clone())
                    .create(&pp, &b)
                    .await
                    .expect("binding");
            }
            "Role" => {
                let r: Role = serde_yaml::from_value(doc).unwrap();
                Api::<Role>::namespaced(client.clone(), ns)
                    .create(&pp, &r)
                    .await
                    .expect("role");
            }
            "RoleBinding" => {
                let b: RoleBinding = serde_yaml::from_value(doc).unwrap();
                Api::<RoleBinding>::namespaced(client.clone(), ns)
                    .create(&pp, &b)
                    .await
                    .expect("role binding");
            }
            other => panic!("unexpected kind {other}"),
        }
    }
}

async fn impersonating_client(ns: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(testenv::shared().kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{SA}"));
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_cluster_role_is_enough() {
    let sim = sim(rack(
        "127.71.0.1",
        vec![group(2, TemplateSource::default())],
    ))
    .await;
    let (admin, ns) = testenv::setup("rbac").await;
    install_rbac(&admin, &ns.name).await;
    let sa = impersonating_client(&ns.name).await;

    // Least privilege: what the role does not grant is refused.
    let denied = Api::<api::server::Server>::all(sa.clone())
        .delete("anything", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied}"
    );

    // Leader election with the namespaced Role.
    let handle = lease::spawn(
        sa.clone(),
        LeaseParams::new(
            "metal-discovery",
            &ns.name,
            "rbac-test",
            Duration::from_secs(6),
        ),
        None,
    );
    let mut watch = handle.subscribe();
    tokio::time::timeout(Duration::from_secs(20), watch.wait_for(|l| *l))
        .await
        .expect("lease acquired")
        .unwrap();

    let h = Harness::start_in(
        admin.clone(),
        sa.clone(),
        ns.name.clone(),
        None,
        None,
        |_| {},
    )
    .await;
    let infos = sim.bmcs();
    let oob = h.add_bmc(&infos[0], &[]).await;
    let inband = h
        .add_bmc(&infos[1], &[("metal.ironcore.dev/inspection", "in-band")])
        .await;
    h.wait_state(
        &format!("{oob}-system-0"),
        ServerState::Available,
        Duration::from_secs(60),
    )
    .await;

    // In-band through the registry (serving as the ServiceAccount).
    let server = format!("{inband}-system-0");
    h.wait_state(&server, ServerState::Discovery, Duration::from_secs(60))
        .await;
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(admin.clone(), &ns.name);
    eventually("internal SBC", Duration::from_secs(30), async || {
        sbcs.get_opt(&server).await.unwrap()
    })
    .await;
    let ready = json!({"apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
        "metadata": {"name": server, "namespace": ns.name}, "status": {"state": "Ready"}});
    sbcs.patch_status(
        &server,
        &PatchParams::apply("metal-provisioning").force(),
        &Patch::Apply(&ready),
    )
    .await
    .unwrap();
    let secret = Api::<Secret>::namespaced(admin.clone(), &ns.name)
        .get(&format!("{server}-discovery"))
        .await
        .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let uuid = infos[1].systems[0].uuid.clone().unwrap().to_lowercase();
    let report = metal_probe::collect(&fixture_tree());
    metal_probe::post_bootstate(&Default::default(), &h.registry_url, &uuid, &token, true)
        .await
        .expect("bootstate as the ServiceAccount");
    metal_probe::post(&h.registry_url, &uuid, &token, &report)
        .await
        .expect("register as the ServiceAccount");
    h.wait_state(&server, ServerState::Available, Duration::from_secs(60))
        .await;
    eventually(
        "internal objects cleaned up",
        Duration::from_secs(30),
        async || sbcs.get_opt(&server).await.unwrap().is_none().then_some(()),
    )
    .await;

    // A BMCUser: generated secret, account, verification, finalizer.
    let users: Api<BMCUser> = Api::all(admin.clone());
    let name = h.name("user");
    let user: BMCUser = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCUser",
        "metadata": {"name": name, "labels": h.labels()},
        "spec": {"userName": "rbac-ops", "roleID": "ReadOnly", "bmcRef": {"name": oob}}
    }))
    .unwrap();
    users.create(&PostParams::default(), &user).await.unwrap();
    eventually("BMCUser effective", Duration::from_secs(60), async || {
        users
            .get(&name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.effective_bmc_secret_ref)
            .map(|_| ())
    })
    .await;
    users.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("BMCUser deleted", Duration::from_secs(30), async || {
        users.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;

    // Nothing failed for lack of permission.
    let text = h.registry.encode();
    assert!(
        !text.contains("reason=\"KubeApi\""),
        "reconciles failed with API errors:\n{text}"
    );
    handle.release().await;
    sim.shutdown().await;
}
