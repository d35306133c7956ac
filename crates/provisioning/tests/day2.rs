//! Reset annotations, boot order and indicator LED against the simulator.

mod common;

use std::time::Duration;

use common::{Harness, Options, eventually, network_boot};
use metal_bmc_sim::PowerState;
use serde_json::json;

const T: Duration = Duration::from_secs(60);
const OP: &str = "metal.ironcore.dev/operation";

async fn annotation(h: &Harness, name: &str) -> Option<String> {
    h.server(name)
        .await
        .metadata
        .annotations
        .and_then(|a| a.get(OP).cloned())
}

async fn reset_condition(h: &Harness, name: &str) -> Option<(String, String, String)> {
    let s = h.server(name).await;
    let c = api::conditions::get(&s.status?.conditions, "ResetInProgress")?.clone();
    Some((c.status, c.reason, c.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_annotations_are_issued_once_and_removed() {
    let h = Harness::new("prov-reset", Options::new("127.31.30.1", 1)).await;
    let s = h.servers[0].clone();
    let ctl = h.start(h.config()).await;
    h.bind(&s, "r1", "On", network_boot(None)).await;
    h.wait_power(&s, PowerState::On, T).await;
    eventually(T, "claim PoweredOn", || async {
        let c = h.claim_condition("r1", "PoweredOn").await?;
        (c.0 == "True").then_some(())
    })
    .await;

    for (op, reset_type) in [
        ("graceful-restart-server", "GracefulRestart"),
        ("hard-restart-server", "ForceRestart"),
        ("power-cycle-server", "PowerCycle"),
        // The same operation again is a new request and runs again.
        ("power-cycle-server", "PowerCycle"),
    ] {
        let resets = h.resets(&s);
        let boots = h.system(&s).boot_history.len();
        h.annotate(&s.name, OP, op).await;
        eventually(T, &format!("{op} annotation removed"), || async {
            annotation(&h, &s.name).await.is_none().then_some(())
        })
        .await;
        let (status, reason, message) = eventually(T, "ResetInProgress=False", || async {
            reset_condition(&h, &s.name)
                .await
                .filter(|c| c.0 == "False")
        })
        .await;
        assert_eq!(reason, "ResetIssued", "{message}");
        assert!(message.starts_with(reset_type), "{op}: {status} {message}");
        assert_eq!(
            h.resets(&s),
            resets + 1,
            "{op}: exactly one ComputerSystem.Reset"
        );
        // The restart boots the server again (from its boot order, no override).
        eventually(T, &format!("{op} reboot"), || async {
            let sys = h.system(&s);
            (sys.boot_history.len() > boots && sys.power_state == PowerState::On).then_some(())
        })
        .await;
        let last = h.system(&s).boot_history.last().cloned().unwrap();
        assert_eq!(
            last.target, "None",
            "no boot override for a reset: {last:?}"
        );
    }

    // force-off on a server whose claim asks for Off: it stays off.
    let claims: kube::Api<api::serverclaim::ServerClaim> =
        kube::Api::namespaced(h.client.clone(), &h.ns);
    claims
        .patch(
            "r1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "power": "Off" } })),
        )
        .await
        .unwrap();
    h.wait_power(&s, PowerState::Off, T).await;
    let resets = h.resets(&s);
    h.annotate(&s.name, OP, "force-on-server").await;
    h.wait_power(&s, PowerState::On, T).await;
    eventually(T, "force-on annotation removed", || async {
        annotation(&h, &s.name).await.is_none().then_some(())
    })
    .await;
    // Level-triggered: the claim still asks for Off, so the server is powered off again.
    h.wait_power(&s, PowerState::Off, T).await;
    assert!(h.resets(&s) >= resets + 2);

    // Other operation values are not ours: left alone.
    h.annotate(&s.name, OP, "park").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(annotation(&h, &s.name).await.as_deref(), Some("park"));
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boot_order_and_indicator_led_are_applied_once() {
    let h = Harness::new("prov-day2", Options::new("127.31.31.1", 1)).await;
    let s = h.servers[0].clone();
    let ctl = h.start(h.config()).await;
    h.wait_status_power(&s.name, "Off", T).await;
    let api: kube::Api<api::server::Server> = kube::Api::all(h.client.clone());
    api.patch(
        &s.name,
        &kube::api::PatchParams::apply("operator").force(),
        &kube::api::Patch::Apply(json!({
            "apiVersion": api::API_VERSION, "kind": "Server",
            "metadata": { "name": s.name },
            "spec": {
                "systemUUID": s.uuid,
                "indicatorLED": "Blinking",
                "bootOrder": [
                    { "name": "pxe", "priority": 2, "device": "Boot0001" },
                    { "name": "disk", "priority": 1, "device": "Boot0003" },
                ],
            },
        })),
    )
    .await
    .unwrap();
    eventually(T, "boot order applied", || async {
        let order = h.system(&s).boot.order;
        order
            .starts_with(&["Boot0003".to_string(), "Boot0001".to_string()])
            .then_some(())
    })
    .await;
    let rf = h.redfish(&s);
    let path = h.system_path(&s);
    eventually(T, "indicator LED Blinking", || async {
        let sys = rf.system(&path).await.ok()?;
        (sys.indicator_led == Some(redfish::models::IndicatorLed::Blinking)).then_some(())
    })
    .await;
    let patches = h.count(&s, "PATCH", &path);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.count(&s, "PATCH", &path),
        patches,
        "applied once, not on every resync"
    );
    assert_eq!(patches, 2, "one PATCH for the boot order, one for the LED");
    ctl.shutdown().await;
    h.sim.shutdown().await;
}
