//! The ClusterRole in `kustomize/discovery` is sufficient: the RBAC YAML is applied (namespace
//! rewritten to the test's), and discovery — controllers, registry and leader election — runs
//! in-process with a client impersonating the `metal-discovery` ServiceAccount. It onboards a
//! BMC out-of-band, runs an in-band discovery through the registry and creates a BMCUser;
//! anything the role does not grant would surface as a Forbidden error and stall the flow.

use std::time::Duration;

use api::bmcuser::BMCUser;
use api::server::ServerState;
use api::serverbootconfiguration::ServerBootConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_bmc_sim::TemplateSource;
use runtime::lease::{self, LeaseParams};
use serde_json::json;

use crate::support::*;

const SA: &str = "metal-discovery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_cluster_role_is_enough() {
    let sim = sim(rack(
        "127.71.0.1",
        vec![group(2, TemplateSource::default())],
    ))
    .await;
    let (admin, ns) = testenv::setup("rbac").await;
    let _ = testenv::install_component_rbac(&admin, "discovery", &ns.name).await;
    let sa = testenv::impersonating_client(&ns.name, SA).await;

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
