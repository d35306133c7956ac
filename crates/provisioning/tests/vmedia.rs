//! Virtual media boot against the simulator: insert the ISO, one-time Cd override, power on,
//! eject on release; the slot under the System (generic tree) and under the Manager (Supermicro).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Harness, Options, eventually, get};
use metal_bmc_sim::{PowerState, TemplateSource};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

/// Serves a fake ISO, starts the controller, waits until the Available server is off, then binds
/// it to claim `vm` booting that ISO. Returns the controller, the ISO URL and the BMC's reset
/// count before the bind.
async fn start_and_bind_iso(
    h: &Harness,
    s: &common::TestServer,
) -> (metal_provisioning::Handle, String, u64) {
    let images = common::static_server(b"CD001-fake-iso-image").await;
    let iso = format!("{images}/os.iso");
    let ctl = h.start(h.config()).await;
    // Available servers are kept off (the Supermicro tree starts powered on).
    h.wait_status_power(&s.name, "Off", T).await;
    let resets_before = h.resets(s);
    h.bind(
        s,
        "vm",
        "On",
        json!({ "bootMethod": "VirtualMedia", "isoURL": iso }),
    )
    .await;
    (ctl, iso, resets_before)
}

async fn virtual_media_flow(h: Harness, ejectable: bool) {
    let s = h.servers[0].clone();
    let (ctl, iso, resets_before) = start_and_bind_iso(&h, &s).await;

    h.wait_power(&s, PowerState::On, T).await;
    let sys = h.system(&s);
    assert_eq!(sys.boot_history.len(), 1, "{:?}", sys.boot_history);
    let boot = &sys.boot_history[0];
    assert_eq!(
        (boot.target.as_str(), boot.override_enabled.as_str()),
        ("Cd", "Once")
    );
    assert_eq!(boot.media_image.as_deref(), Some(iso.as_str()));
    assert!(
        sys.virtual_media
            .iter()
            .any(|m| m.inserted && m.image.as_deref() == Some(iso.as_str()))
    );
    assert_eq!(h.resets(&s) - resets_before, 1, "one power-on");
    eventually(T, "claim PoweredOn=True", || async {
        let c = h.claim_condition("vm", "PoweredOn").await?;
        (c.0 == "True").then_some(())
    })
    .await;
    // Not a network boot: the boot server has nothing for it.
    let (st, _, _) = get(&format!("{}/ipxe/{}", ctl.boot_url, s.uuid), None, &[]).await;
    assert_eq!(st, 404);

    // Already inserted: a later reconcile does not insert again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inserts: u64 = h
        .sim
        .request_counts(s.bmc)
        .unwrap()
        .by_request
        .iter()
        .filter(|(k, _)| k.starts_with("POST") && k.contains("InsertMedia"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(inserts, 1);

    // Release: powered off, then ejected, then confirmed.
    h.delete_claim("vm").await;
    eventually(T, "claim PoweredOff=True", || async {
        let c = h.claim_condition("vm", "PoweredOff").await?;
        (c.0 == "True").then_some(())
    })
    .await;
    let sys = h.system(&s);
    assert_eq!(sys.power_state, PowerState::Off);
    if ejectable {
        assert!(
            sys.virtual_media.iter().all(|m| !m.inserted),
            "ejected on release: {:?}",
            sys.virtual_media
        );
    } else {
        // The captured Supermicro slot advertises no EjectMedia action and refuses PATCH (405):
        // the release is not held back, and a warning event says why the media stayed.
        let events: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(h.client.clone(), "default");
        eventually(T, "MediaEjectNotSupported event", || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("MediaEjectNotSupported")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(s.name.as_str())
                })
                .then_some(())
        })
        .await;
    }
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn virtual_media_under_the_system() {
    let h = Harness::new("prov-vm", Options::new("127.31.20.1", 1)).await;
    virtual_media_flow(h, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn virtual_media_under_the_manager_supermicro() {
    let shared = std::env::var_os("METAL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let tree = shared.join("fixtures/redfish/supermicro-sys-821ge");
    if !tree.is_dir() {
        // Like the other real-tree tests: the captured trees live beside the checkout.
        eprintln!(
            "note: fixture {} not found (set METAL_SHARED_DIR); skipping",
            tree.display()
        );
        return;
    }
    let mut opts = Options::new("127.31.21.1", 1);
    opts.template = Some(TemplateSource::Path(tree));
    let h = Harness::new("prov-vm-smc", opts).await;
    virtual_media_flow(h, false).await;
}

/// Media inserted for a claim whose boot configuration is deleted while the controller is down
/// is still ejected: the server's `bootConfigurationRef` (in the API, not in memory) still
/// names the deleted configuration when the new instance starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_of_a_configuration_deleted_during_a_restart_is_ejected() {
    let h = Harness::new("prov-vm-restart", Options::new("127.31.22.1", 1)).await;
    let s = h.servers[0].clone();
    let (ctl, _, _) = start_and_bind_iso(&h, &s).await;
    h.wait_power(&s, PowerState::On, T).await;
    eventually(
        T,
        "bootConfigurationRef names the configuration",
        || async {
            let srv = h.server(&s.name).await;
            (srv.spec.boot_configuration_ref?.name == "vm").then_some(())
        },
    )
    .await;
    assert!(h.system(&s).virtual_media.iter().any(|m| m.inserted));
    ctl.shutdown().await;

    kube::Api::<api::ServerBootConfiguration>::namespaced(h.client.clone(), &h.ns)
        .delete("vm", &Default::default())
        .await
        .expect("delete configuration");
    let ctl = h.start(h.config()).await;
    eventually(T, "media ejected", || async {
        h.system(&s)
            .virtual_media
            .iter()
            .all(|m| !m.inserted)
            .then_some(())
    })
    .await;
    eventually(T, "bootConfigurationRef cleared", || async {
        h.server(&s.name)
            .await
            .spec
            .boot_configuration_ref
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        h.system(&s).power_state,
        PowerState::On,
        "the claim still wants it on"
    );
    ctl.shutdown().await;
    h.sim.shutdown().await;
}
