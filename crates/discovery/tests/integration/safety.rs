//! Safety: discovery never drives a server whose state it does not own; `--enforce-first-boot`.

use std::time::Duration;

use api::server::ServerState;
use api::serverbootconfiguration::ServerBootConfiguration;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use metal_bmc_sim::{PowerState, TemplateSource};
use metal_discovery::error::Error;
use metal_discovery::guard::{self, Effect};
use serde_json::json;

use crate::support::*;

fn writes_to_system(counts: &metal_bmc_sim::RequestCounts, system: &str) -> Vec<String> {
    counts
        .by_request
        .keys()
        .filter(|k| (k.starts_with("POST ") || k.starts_with("PATCH ")) && k.contains(system))
        .cloned()
        .collect()
}

#[tokio::test]
async fn reserved_server_is_never_powered_or_rebooted() {
    let sim = sim(rack(
        "127.67.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("safety", |c| {
        c.enforce_first_boot = true;
        c.bmc_refresh_interval = Duration::from_secs(1);
    })
    .await;
    let info = sim.bmcs()[0].clone();
    let system = info.systems[0].clone();
    let bmc = h.add_bmc(&info, &[]).await;
    let server = format!("{bmc}-system-0");
    h.wait_state(&server, ServerState::Available, Duration::from_secs(60))
        .await;

    // Reservation takes the server; its tenant powers it on.
    h.set_state_as(&server, ServerState::Reserved, "metal-reservation")
        .await;
    let tenant = redfish_client(&info, &info.password);
    tenant.power_on(&system.path).await.unwrap();
    eventually("tenant's power-on", Duration::from_secs(10), async || {
        (sim.system_state(0, &system.id).unwrap().power_state == PowerState::On).then_some(())
    })
    .await;
    let boots_before = sim.system_state(0, &system.id).unwrap().boot_history.len();
    sim.reset_request_counts(0).unwrap();

    // Everything that makes discovery act: in-band inspection asked for on the server and its
    // BMC, a leftover internal boot configuration marked Ready, BMC refreshes, server edits.
    let servers: Api<api::server::Server> = Api::all(h.client.clone());
    let ann = json!({"metadata": {"annotations": {"metal.ironcore.dev/inspection": "in-band"}}});
    servers
        .patch(&server, &PatchParams::default(), &Patch::Merge(&ann))
        .await
        .unwrap();
    Api::<api::bmc::BMC>::all(h.client.clone())
        .patch(&bmc, &PatchParams::default(), &Patch::Merge(&ann))
        .await
        .unwrap();
    let sbc: ServerBootConfiguration = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
        "metadata": {"name": server, "namespace": h.ns, "labels": {"metal.ironcore.dev/discovery": "true"},
                     "annotations": {"metal.ironcore.dev/server": server}},
        "spec": {"serverRef": {"name": server}, "image": "x"}
    }))
    .unwrap();
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(h.client.clone(), &h.ns);
    sbcs.create(&PostParams::default(), &sbc).await.unwrap();
    let ready = json!({"apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
        "metadata": {"name": server, "namespace": h.ns}, "status": {"state": "Ready"}});
    let _ = sbcs
        .patch_status(
            &server,
            &PatchParams::apply("metal-provisioning").force(),
            &Patch::Apply(&ready),
        )
        .await;
    for i in 0..3 {
        let touch = json!({"metadata": {"labels": {"touch": i.to_string()}}});
        servers
            .patch(&server, &PatchParams::default(), &Patch::Merge(&touch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // The guard itself refuses, and says why.
    let ctx = bare_ctx(h.client.clone(), h.cfg.clone(), h.metrics.clone());
    for effect in [Effect::PowerOn, Effect::PowerOff, Effect::PxeBootOnce] {
        match guard::server_effect(&ctx, &tenant, &server, &system.path, effect).await {
            Err(Error::Refused { why, .. }) => {
                assert!(why.contains("Reserved belongs to provisioning"), "{why}")
            }
            other => panic!("{effect:?} not refused: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let counts = sim.request_counts(0).unwrap();
    assert!(counts.total > 0, "discovery kept reading the BMC");
    assert_eq!(
        writes_to_system(&counts, &system.path),
        Vec::<String>::new(),
        "no POST/PATCH to the reserved system"
    );
    let st = sim.system_state(0, &system.id).unwrap();
    assert_eq!(st.power_state, PowerState::On, "not powered off");
    assert_eq!(st.boot_history.len(), boots_before, "not rebooted");
    assert_eq!(st.boot.target, "None", "no boot override");
    let s = h.server(&server).await.unwrap();
    assert_eq!(
        s.status.unwrap().state,
        Some(ServerState::Reserved),
        "state untouched"
    );
    assert!(
        h.registry.encode().contains(
            "metal_discovery_side_effects_total{effect=\"PowerOff\",result=\"refused\"} 1"
        )
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn enforce_first_boot_powers_off_before_discovery() {
    let sim = sim(rack(
        "127.68.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let info = sim.bmcs()[0].clone();
    let system = info.systems[0].clone();
    redfish_client(&info, &info.password)
        .power_on(&system.path)
        .await
        .unwrap();
    eventually("powered on", Duration::from_secs(10), async || {
        (sim.system_state(0, &system.id).unwrap().power_state == PowerState::On).then_some(())
    })
    .await;
    let h = Harness::start("firstboot", |c| c.enforce_first_boot = true).await;
    let bmc = h.add_bmc(&info, &[]).await;
    let server = format!("{bmc}-system-0");
    let s = h
        .wait_state(&server, ServerState::Available, Duration::from_secs(60))
        .await;
    assert_eq!(
        sim.system_state(0, &system.id).unwrap().power_state,
        PowerState::Off
    );
    assert_eq!(
        s.status.unwrap().power_state.map(|p| p.as_str()),
        Some("Off")
    );
    let evs = Api::<Event>::namespaced(h.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("PoweringOff")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(server.as_str())),
        "PoweringOff event"
    );
    sim.shutdown().await;
}
