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

/// The `metal-provisioning` binary of this harness (its servers only, loopback listeners),
/// killed at step `kill_at` when given; its log goes to `log`.
fn spawn_binary(h: &Harness, kill_at: Option<&str>, log: &std::path::Path) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_metal-provisioning"));
    cmd.arg("--kubeconfig")
        .arg(testenv::shared().kubeconfig())
        .args([
            "--admin-addr=127.0.0.1:0",
            "--boot-addr=127.0.0.1:0",
            "--metadata-addr=none",
            "--power-off-timeout=5s",
            "--power-confirm-timeout=10s",
        ])
        .arg(format!(
            "--server-selector={}={}",
            common::SHARD_LABEL,
            h.shard
        ))
        .arg(format!("--lease-namespace={}", h.ns))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    if let Some(at) = kill_at {
        cmd.arg(format!("--kill-at-step={at}"));
    }
    cmd.spawn().expect("metal-provisioning")
}

/// Mutating requests (not GET, not sessions) the server's BMC received, by `METHOD /path`.
fn side_effects(h: &Harness, s: &common::TestServer) -> std::collections::BTreeMap<String, u64> {
    h.sim
        .request_counts(s.bmc)
        .unwrap()
        .by_request
        .into_iter()
        .filter(|(k, _)| !(k.starts_with("GET ") || k.contains("/SessionService/")))
        .collect()
}

/// `metal-provisioning` as a process, SIGKILLed right after it inserted the virtual media and
/// right after it ejected it: after a restart each bind-and-release cycle has sent exactly the
/// requests of an undisturbed cycle (one insert, one override, one power-on, one power-off,
/// one eject).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provisioning_killed_after_inserting_and_after_ejecting_media_sends_each_once() {
    let h = Harness::new("prov-vmkill", Options::new("127.31.22.1", 1)).await;
    let s = h.servers[0].clone();
    let images = common::static_server(b"CD001-fake-iso-image").await;
    let iso = format!("{images}/os.iso");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("provisioning.log");
    let mut ctl = spawn_binary(&h, None, &log);
    h.wait_status_power(&s.name, "Off", T).await;
    let cycle = async |claim: &str, kill: Option<(&str, bool)>, ctl: &mut std::process::Child| {
        let killed_on_bind = kill.filter(|(_, on_bind)| *on_bind).map(|(at, _)| at);
        let killed_on_release = kill.filter(|(_, on_bind)| !*on_bind).map(|(at, _)| at);
        let killed = async |ctl: &mut std::process::Child, at: &str| {
            let out = tokio::task::block_in_place(|| {
                let status = ctl.wait().expect("wait");
                (status, std::fs::read_to_string(&log).unwrap_or_default())
            });
            assert!(!out.0.success(), "killed at {at}");
            assert!(
                out.1.contains(&format!("reached {at}; SIGKILL")),
                "{}",
                out.1
            );
            *ctl = spawn_binary(&h, None, &log);
        };
        if let Some(at) = killed_on_bind {
            ctl.kill().ok();
            ctl.wait().ok();
            *ctl = spawn_binary(&h, Some(at), &log);
        }
        h.bind(
            &s,
            claim,
            "On",
            json!({ "bootMethod": "VirtualMedia", "isoURL": iso }),
        )
        .await;
        if let Some(at) = killed_on_bind {
            killed(ctl, at).await;
        }
        h.wait_power(&s, PowerState::On, T).await;
        eventually(T, "claim PoweredOn=True", || async {
            (h.claim_condition(claim, "PoweredOn").await?.0 == "True").then_some(())
        })
        .await;
        if let Some(at) = killed_on_release {
            ctl.kill().ok();
            ctl.wait().ok();
            *ctl = spawn_binary(&h, Some(at), &log);
        }
        h.delete_claim(claim).await;
        if let Some(at) = killed_on_release {
            killed(ctl, at).await;
        }
        eventually(T, "claim PoweredOff=True", || async {
            (h.claim_condition(claim, "PoweredOff").await?.0 == "True").then_some(())
        })
        .await;
        h.finish_release(&s, claim).await;
        assert!(
            h.system(&s).virtual_media.iter().all(|m| !m.inserted),
            "ejected"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let start = side_effects(&h, &s);
    cycle("vm-0", None, &mut ctl).await;
    let mut before = side_effects(&h, &s);
    let diff = |a: &std::collections::BTreeMap<String, u64>,
                b: &std::collections::BTreeMap<String, u64>| {
        b.iter()
            .map(|(k, n)| (k.clone(), n - a.get(k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let baseline = diff(&start, &before);
    assert!(
        baseline.keys().any(|k| k.contains("InsertMedia"))
            && baseline.keys().any(|k| k.contains("EjectMedia")),
        "{baseline:?}"
    );
    for (i, (at, on_bind)) in [("media-inserted", true), ("media-ejected", false)]
        .into_iter()
        .enumerate()
    {
        cycle(&format!("vm-{}", i + 1), Some((at, on_bind)), &mut ctl).await;
        let after = side_effects(&h, &s);
        assert_eq!(
            diff(&before, &after),
            baseline,
            "killed at {at}: the undisturbed cycle's requests, each once"
        );
        before = after;
    }
    ctl.kill().ok();
    ctl.wait().ok();
    h.sim.shutdown().await;
}
