//! Cleaning released servers on the real control plane and the simulated Dell tree (three
//! drives with `Drive.SecureErase`): every drive erased once, a failed erase keeping the
//! server out of the pool until `retry`, and the controller killed at each step.

mod common;

use api::server::{Server, ServerState};
use common::*;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use metal_bmc_sim::{Knobs, TemplateSource};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DRIVES: [&str; 3] = [
    "Disk.Bay.2:Enclosure.Internal.0-1",
    "Disk.Bay.1:Enclosure.Internal.0-1",
    "Disk.Bay.0:Enclosure.Internal.0-1",
];

fn dell() -> TemplateSource {
    TemplateSource::Path(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../redfish/tests/fixtures/dell-poweredge-r750"),
    )
}

/// Plays reservation releasing the server of a `Recycle` claim with cleaning `mode`.
async fn release_into_cleaning(h: &Harness, i: usize, mode: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
        "metadata": { "name": h.server_name(i) },
        "status": { "state": "Cleaning", "conditions": [{
            "type": "CleaningRequested", "status": "True", "reason": mode,
            "message": "released by a Recycle claim", "lastTransitionTime": now,
        }]},
    });
    Api::<Server>::all(h.client.clone())
        .patch_status(
            h.server_name(i),
            &PatchParams::apply("metal-reservation").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("release into Cleaning");
}

/// SecureErase requests the BMC of server `i` received, per drive.
fn erases(h: &Harness, i: usize) -> Vec<u64> {
    let counts = h.sim.request_counts(i).unwrap().by_request;
    DRIVES
        .iter()
        .map(|d| {
            counts
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("POST ") && k.contains(d) && k.ends_with("Drive.SecureErase")
                })
                .map(|(_, n)| *n)
                .sum()
        })
        .collect()
}

fn cleaned(s: &Server) -> Option<(String, String, String)> {
    let c = api::conditions::get(&s.status.as_ref()?.conditions, "Cleaned")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_server_gets_every_drive_erased_once_then_is_available() {
    let h = Harness::with_template("cln-ok", "127.46.1.1", 1, Knobs::default(), dell()).await;
    release_into_cleaning(&h, 0, "Full").await;
    let s = h.wait_server(0, ServerState::Available, false).await;
    let (status, reason, message) = cleaned(&s).expect("Cleaned");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Cleaned"),
        "{message}"
    );
    for d in DRIVES {
        assert!(message.contains(d), "{message}");
    }
    assert_eq!(
        erases(&h, 0),
        vec![1, 1, 1],
        "each drive erased exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_erase_keeps_the_server_out_of_the_pool_until_retry() {
    let knobs = Knobs {
        secure_erase_fails: vec![DRIVES[1].to_string()],
        ..Knobs::default()
    };
    let h = Harness::with_template("cln-fail", "127.46.2.1", 1, knobs, dell()).await;
    release_into_cleaning(&h, 0, "Full").await;
    let s = h.wait_server(0, ServerState::Error, false).await;
    let (status, reason, message) = cleaned(&s).expect("Cleaned");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CleaningFailed")
    );
    assert!(message.contains(DRIVES[1]), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.server(0).await.state(),
        Some(ServerState::Error),
        "not handed out"
    );

    // The drive works again; the operator retries: a new round, then Available.
    h.sim.set_knobs(0, Knobs::default()).unwrap();
    h.annotate(0, "metal.ironcore.dev/operation", Some("retry"))
        .await;
    let s = h.wait_server(0, ServerState::Available, false).await;
    assert_eq!(cleaned(&s).map(|c| c.0).as_deref(), Some("True"));
    assert!(!s.annotations().contains_key("metal.ironcore.dev/operation"));
    // Round one stopped at the failing drive; round two erased all three.
    assert_eq!(erases(&h, 0), vec![2, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_step_of_a_cleaning_no_drive_is_skipped() {
    // (step, erases of the first drive after convergence): killed after the record and
    // before the send, the erase is sent once; killed after the send and before the
    // confirmation, it is sent again (a repeat costs time, a skip would leave data); killed
    // after the result is recorded, nothing is erased again.
    const STEPS: [(&str, u64); 3] = [
        ("cleaning-erase-recorded", 1),
        ("cleaning-erase-sent", 2),
        ("cleaning-recorded", 1),
    ];
    let h = Harness::with_template(
        "cln-kill",
        "127.46.3.1",
        STEPS.len(),
        Knobs::default(),
        dell(),
    )
    .await;
    h.stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, (at, first)) in STEPS.iter().enumerate() {
        release_into_cleaning(&h, i, "Full").await;
        kill_at(&h, at).await;

        let stop = CancellationToken::new();
        let fresh = spawn_with(&h, h.config.clone(), stop.clone());
        let s = h.wait_server(i, ServerState::Available, false).await;
        stop.cancel();
        let _ = fresh.await;
        assert_eq!(
            cleaned(&s).map(|c| c.0).as_deref(),
            Some("True"),
            "killed at {at}"
        );
        assert_eq!(erases(&h, i), vec![*first, 1, 1], "killed at {at}");
    }
}

/// Plays provisioning, the boot server and the booted agent for every cleaning server of `h`
/// until `stop`: the agent's configuration is Ready, a boot window opened while the system is
/// on is closed (the script handed out), and a booted agent's report is stored owned by the
/// round's Secret, as discovery's registry does. Runs forever.
async fn play_the_agent(h: &Harness) {
    use api::serverbootconfiguration::ServerBootConfiguration;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let client = h.client.clone();
    let ns = h.ns.clone();
    let servers: Vec<(usize, String)> = (0..h.servers.len())
        .map(|i| (i, h.server_name(i).to_string()))
        .collect();
    {
        let sbcs: Api<ServerBootConfiguration> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let api: Api<Server> = Api::all(client.clone());
        loop {
            for (i, name) in &servers {
                let agent = format!("{name}-cleaning");
                if let Ok(Some(sbc)) = sbcs.get_opt(&agent).await {
                    let ready = json!({
                        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
                        "metadata": { "name": agent, "namespace": ns },
                        "status": { "state": "Ready", "conditions": [{
                            "type": "Ready", "status": "True", "reason": "ImageResolved", "message": "",
                            "observedGeneration": sbc.metadata.generation,
                            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                        }]},
                    });
                    let _ = sbcs
                        .patch_status(
                            &agent,
                            &PatchParams::apply("metal-provisioning").force(),
                            &Patch::Apply(&ready),
                        )
                        .await;
                }
                let Ok(s) = api.get(name).await else { continue };
                let conds = s.status.map(|s| s.conditions).unwrap_or_default();
                let on = h
                    .sim
                    .system_state(*i, &h.servers[*i].1)
                    .is_ok_and(|st| st.power_state == metal_bmc_sim::PowerState::On);
                let window = api::conditions::get(&conds, "BootWindow");
                if on && window.is_some_and(|w| w.status == "True") {
                    let closed = json!({
                        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
                        "metadata": { "name": name },
                        "status": { "conditions": [{
                            "type": "BootWindow", "status": "False", "reason": "BootScriptServed",
                            "message": "script served",
                            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                        }]},
                    });
                    let _ = api
                        .patch_status(
                            name,
                            &PatchParams::apply("metal-provisioning").force(),
                            &Patch::Apply(&closed),
                        )
                        .await;
                }
                let booted = api::conditions::get(&conds, "CleaningAgentBoot")
                    .is_some_and(|c| c.status == "True");
                if let (true, Ok(Some(secret))) = (booted, secrets.get_opt(&agent).await) {
                    let payload = metal_probe::CleaningPayload {
                        system_uuid: s.spec.system_uuid.clone(),
                        mode: metal_probe::WipeMode::Metadata,
                        disks: vec![metal_probe::WipedDisk {
                            name: "sda".into(),
                            size_bytes: 1 << 30,
                            bytes_written: 2 << 20,
                            error: None,
                        }],
                    };
                    let cm = json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": { "name": format!("{name}-cleaning-report"), "namespace": ns,
                            "ownerReferences": [{ "apiVersion": "v1", "kind": "Secret",
                                "name": agent, "uid": secret.metadata.uid, "controller": true }] },
                        "data": { "cleaning.json": serde_json::to_string(&payload).unwrap() },
                    });
                    let _ = cms
                        .patch(
                            &format!("{name}-cleaning-report"),
                            &PatchParams::apply("metal-discovery").force(),
                            &Patch::Apply(&cm),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn with_agent(h: &Harness) -> metal_maintenance::Config {
    let mut c = h.config.clone();
    c.maintenance_boot_timeout = Duration::from_secs(5);
    c.cleaning_agent = Some(metal_maintenance::cleaning_agent::CleaningAgent {
        registry_url: "http://127.0.0.1:1".into(),
        registry_ca: None,
        image: metal_probe::ignition::AgentImage {
            image: "registry.test/metal/probe-os:1.0".into(),
            ..Default::default()
        },
        timeout: Duration::from_secs(600),
    });
    c
}

/// The in-band phase (Metadata mode) killed at each of its steps: after restart the agent is
/// booted once and powered off once (two resets in all, never more), the report is taken,
/// and the round's objects are gone once the server is Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_step_of_an_in_band_cleaning_the_agent_boots_once() {
    use api::serverbootconfiguration::ServerBootConfiguration;
    use k8s_openapi::api::core::v1::Secret;
    const STEPS: [&str; 4] = [
        "cleaning-agent-boot-recorded",
        "cleaning-agent-window-opened",
        "cleaning-agent-report-recorded",
        "cleaning-recorded",
    ];
    let h = Harness::new("cln-agent", "127.46.4.1", STEPS.len()).await;
    h.stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(h.client.clone(), &h.ns);
    let mut agent_config = with_agent(&h);
    let body = async {
        for (i, at) in STEPS.iter().enumerate() {
            release_into_cleaning(&h, i, "Metadata").await;
            let reached = std::sync::Arc::new(tokio::sync::Notify::new());
            agent_config.step_hook = Some(stop_at(at, reached.clone()));
            let doomed = spawn_with(&h, agent_config.clone(), CancellationToken::new());
            tokio::time::timeout(Duration::from_secs(60), reached.notified())
                .await
                .unwrap_or_else(|_| panic!("step {at} not reached"));
            doomed.abort();
            let _ = doomed.await;

            let stop = CancellationToken::new();
            let mut fresh_config = agent_config.clone();
            fresh_config.step_hook = None;
            let fresh = spawn_with(&h, fresh_config, stop.clone());
            let s = h.wait_server(i, ServerState::Available, false).await;
            stop.cancel();
            let _ = fresh.await;
            let (status, _, message) = cleaned(&s).expect("Cleaned");
            assert_eq!(status, "True", "killed at {at}: {message}");
            assert!(message.contains("wiped in-band on sda"), "{message}");
            assert_eq!(
                h.resets(i),
                2,
                "killed at {at}: one power-on, one power-off"
            );
            assert_eq!(
                h.system(i).power_state,
                metal_bmc_sim::PowerState::Off,
                "killed at {at}"
            );
            assert!(s.spec.maintenance_boot_configuration_ref.is_none());
            let name = format!("{}-cleaning", h.server_name(i));
            assert!(
                secrets.get_opt(&name).await.unwrap().is_none(),
                "killed at {at}"
            );
            assert!(
                sbcs.get_opt(&name).await.unwrap().is_none(),
                "killed at {at}"
            );
        }
    };
    tokio::select! {
        () = play_the_agent(&h) => unreachable!("the player runs forever"),
        () = body => {}
    }
}

/// Without `--cleaning-registry-url` a Metadata round cannot be done: the server goes to
/// Error with a reason that says what to configure, and nothing was booted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_band_cleaning_without_the_agent_configured_fails_clearly() {
    let h = Harness::new("cln-noagent", "127.46.5.1", 1).await;
    release_into_cleaning(&h, 0, "Metadata").await;
    let s = h.wait_server(0, ServerState::Error, false).await;
    let (status, reason, message) = cleaned(&s).expect("Cleaned");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CleaningFailed")
    );
    assert!(message.contains("--cleaning-registry-url"), "{message}");
    assert_eq!(h.resets(0), 0);
}
