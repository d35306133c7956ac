//! The ClusterRole in `kustomize/provisioning` is sufficient: the controller runs in-process with
//! a client that impersonates the `metal-provisioning` ServiceAccount (bound to the roles read
//! from the kustomize files), wins its Lease, and runs a boot, the boot server, the metadata
//! service and a release. Anything the roles do not grant would stall a flow (Forbidden) or
//! lose an event, which this test checks.

mod common;

use std::time::Duration;

use common::{Harness, Options, eventually, get, network_boot};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};
use metal_bmc_sim::PowerState;
use metal_provisioning::{LeaderElection, Listen};
use serde_json::json;

const SA: &str = "metal-provisioning";
const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_role_suffices_for_boot_and_release() {
    let h = Harness::new("prov-rbac", Options::new("127.31.50.1", 1)).await;
    let s = h.servers[0].clone();
    let _ = testenv::install_component_rbac(&h.client, "provisioning", &h.ns).await;
    let sa_client = testenv::impersonating_client(&h.ns, SA).await;
    // The impersonated identity cannot do what the role does not grant.
    let denied = Api::<Secret>::namespaced(sa_client.clone(), &h.ns)
        .list(&Default::default())
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{denied:?}"
    );

    h.set_ips(&s, &["127.31.50.200"]).await;
    let mut cfg = h.config();
    cfg.metadata_listen = Some(Listen::Addr("127.0.0.1:0".parse().unwrap()));
    cfg.leader_election = Some(LeaderElection {
        name: "metal-provisioning".into(),
        namespace: h.ns.clone(),
        identity: "rbac-test".into(),
        duration: Duration::from_secs(6),
        // Sharded, so the role is proven for the shard and member Leases too.
        shards: 4,
    });
    let metrics = runtime::metrics::Metrics::new();
    let ctl = metal_provisioning::start(sa_client, cfg, &metrics, None)
        .await
        .unwrap();

    h.ignition_secret("rbac-ign", r#"{"ignition":{"version":"3.4.0"}}"#)
        .await;
    let ud: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "metal.ironcore.dev/user-data",
        "metadata": { "name": "rbac-ud" }, "stringData": { "k": "v" },
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &ud)
        .await
        .unwrap();
    h.bind(&s, "rbac", "On", network_boot(Some("rbac-ign")))
        .await;
    kube::Api::<api::serverclaim::ServerClaim>::namespaced(h.client.clone(), &h.ns)
        .patch(
            "rbac",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "userDataRef": { "name": "rbac-ud" } } })),
        )
        .await
        .unwrap();

    // Boot: SBC status, server spec + status, claim status, BMC access.
    h.wait_power(&s, PowerState::On, T).await;
    eventually(T, "claim PoweredOn=True", || async {
        let c = h.claim_condition("rbac", "PoweredOn").await?;
        (c.0 == "True").then_some(())
    })
    .await;
    // The boot server closes the power-on's boot window (server status patch) and reads
    // Secrets (get), as does the metadata service; the token key Secret was created (create).
    let (st, script, _) = get(&format!("{}/ipxe/{}", ctl.boot_url, s.uuid), None, &[]).await;
    assert_eq!(st, 200, "{script}");
    let token = common::token_of(&script);
    let (st, ign, _) = get(
        &format!("{}/ignition/{}/{token}", ctl.boot_url, s.uuid),
        None,
        &[],
    )
    .await;
    assert_eq!((st, ign.contains("3.4.0")), (200, true), "{ign}");
    let md = format!("http://{}/v1/user-data/k", ctl.metadata_addr.unwrap());
    let bearer = format!("Bearer {token}");
    let (st, v, _) = get(
        &md,
        Some("127.31.50.200".parse().unwrap()),
        &[
            ("Metadata-Flavor", "IronCore Metal"),
            ("Authorization", bearer.as_str()),
        ],
    )
    .await;
    assert_eq!((st, v.as_str()), (200, "v"));

    // Reset annotation: server patch (annotation removal).
    h.annotate(
        &s.name,
        "metal.ironcore.dev/operation",
        "graceful-restart-server",
    )
    .await;
    eventually(T, "reset annotation removed", || async {
        let a = h
            .server(&s.name)
            .await
            .metadata
            .annotations
            .unwrap_or_default();
        (!a.contains_key("metal.ironcore.dev/operation")).then_some(())
    })
    .await;

    // Release.
    h.delete_claim("rbac").await;
    eventually(T, "claim PoweredOff=True", || async {
        let c = h.claim_condition("rbac", "PoweredOff").await?;
        (c.0 == "True").then_some(())
    })
    .await;
    assert_eq!(h.system(&s).power_state, PowerState::Off);

    // Events were written (create/patch on events.k8s.io) and the Lease is held.
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    eventually(T, "PowerOffConfirmed event on the claim", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("PowerOffConfirmed"))
            .then_some(())
    })
    .await;
    // Every shard Lease is held by the one replica, and so is its member Lease.
    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(h.client.clone(), &h.ns)
            .list(
                &kube::api::ListParams::default()
                    .labels("metal.ironcore.dev/shard-group=metal-provisioning"),
            )
            .await
            .unwrap();
    let mut held: Vec<(String, String)> = leases
        .items
        .into_iter()
        .map(|l| {
            (
                l.metadata.name.unwrap_or_default(),
                l.spec.and_then(|s| s.holder_identity).unwrap_or_default(),
            )
        })
        .collect();
    held.sort();
    let want: Vec<(String, String)> = [
        "metal-provisioning-member-rbac-test",
        "metal-provisioning-shard-00",
        "metal-provisioning-shard-01",
        "metal-provisioning-shard-02",
        "metal-provisioning-shard-03",
    ]
    .iter()
    .map(|n| (n.to_string(), "rbac-test".to_string()))
    .collect();
    assert_eq!(held, want);
    ctl.shutdown().await;
    h.sim.shutdown().await;
}
