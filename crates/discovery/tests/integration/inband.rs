//! In-band discovery: the test plays provisioning (sets the internal ServerBootConfiguration
//! Ready) and the booted server (runs the metal-probe binary on a captured tree); the registry
//! rejects wrong tokens without changing anything.

use std::time::Duration;

use api::conditions;
use api::server::ServerState;
use api::serverbootconfiguration::ServerBootConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use metal_bmc_sim::{PowerState, TemplateSource};
use metal_discovery::logic::ignition::token_from_ignition;
use metal_probe::{PostError, PostOptions, Report};
use serde_json::json;

use crate::support::*;

fn fast_post() -> PostOptions {
    PostOptions {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(50),
        ..PostOptions::default()
    }
}

#[tokio::test]
async fn probe_agent_reports_through_the_registry() {
    let sim = sim(rack(
        "127.65.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("inband", |c| {
        c.inspection = api::constants::InspectionMode::InBand;
        c.probe_kernel_url = Some("http://boot.example/probe/vmlinuz".into());
        c.probe_initrd_url = Some("http://boot.example/probe/initrd".into());
    })
    .await;
    let info = sim.bmcs()[0].clone();
    let system = &info.systems[0];
    let uuid = system.uuid.clone().unwrap().to_lowercase();
    let bmc = h.add_bmc(&info, &[]).await;
    let server = format!("{bmc}-system-0");

    // Discovery: the internal objects appear; nothing is booted before provisioning serves them.
    let s = h
        .wait_state(&server, ServerState::Discovery, Duration::from_secs(60))
        .await;
    let d = conditions::get(&s.status.as_ref().unwrap().conditions, "Discovered")
        .unwrap()
        .clone();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("Unknown", "WaitingForAgent")
    );
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(h.client.clone(), &h.ns);
    let sbc = eventually("internal SBC", Duration::from_secs(30), async || {
        sbcs.get_opt(&server).await.unwrap()
    })
    .await;
    let ann = sbc.metadata.annotations.clone().unwrap();
    assert_eq!(
        ann.get("metal.ironcore.dev/type").map(String::as_str),
        Some("Internal")
    );
    assert_eq!(
        ann.get("metal.ironcore.dev/is-default-os-image")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(sbc.spec.server_ref.name, server);
    assert_eq!(
        sbc.spec.ignition_secret_ref.as_ref().unwrap().name,
        format!("{server}-discovery")
    );
    let artifacts = sbc.spec.boot_artifacts.clone().unwrap();
    assert_eq!(
        artifacts.cmdline.as_deref(),
        Some(format!("metal.registry={} metal.server-uuid={uuid}", h.registry_url).as_str())
    );
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let secret = secrets.get(&format!("{server}-discovery")).await.unwrap();
    let data = secret.data.clone().unwrap();
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    assert!(token.len() >= 43);
    let ignition = String::from_utf8(data["ignition"].0.clone()).unwrap();
    assert_eq!(
        token_from_ignition(&ignition).as_deref(),
        Some(token.as_str())
    );
    assert!(ignition.contains(&format!(
        "--registry-url {} --server-uuid {uuid} --token-file /etc/metal/probe-token",
        h.registry_url
    )));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sim.system_state(0, &system.id).unwrap().power_state,
        PowerState::Off,
        "no boot before the SBC is Ready"
    );

    // Provisioning's part: the boot configuration is served.
    let ready = json!({"apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
        "metadata": {"name": server, "namespace": h.ns}, "status": {"state": "Ready"}});
    sbcs.patch_status(
        &server,
        &PatchParams::apply("metal-provisioning").force(),
        &Patch::Apply(&ready),
    )
    .await
    .unwrap();
    let booted = eventually(
        "PXE boot of the server",
        Duration::from_secs(30),
        async || {
            let st = sim.system_state(0, &system.id).unwrap();
            (st.power_state == PowerState::On).then_some(st)
        },
    )
    .await;
    assert!(
        booted.boot_history.last().unwrap().network_boot(),
        "{:?}",
        booted.boot_history
    );
    let s = h.server(&server).await.unwrap();
    assert!(conditions::is_true(
        &s.status.unwrap().conditions,
        "PoweringOn"
    ));

    // Rejected posts change nothing.
    let probe = probe_bin();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let out = tokio::process::Command::new(&probe)
        .args([
            "--root",
            fixture_tree().to_str().unwrap(),
            "--registry-url",
            &h.registry_url,
            "--server-uuid",
            &uuid,
            "--once",
            "--lldp-wait",
            "0",
        ])
        .arg("--token-file")
        .arg(&wrong)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused the token (HTTP 403)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = metal_probe::post_with(&fast_post(), &h.registry_url, &uuid, "", &Report::new())
        .await
        .unwrap_err();
    assert!(matches!(e, PostError::Unauthorized { status: 401 }), "{e}");
    let e = metal_probe::post_with(
        &fast_post(),
        &h.registry_url,
        "00000000-0000-0000-0000-000000000000",
        &token,
        &Report::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, PostError::Unauthorized { status: 403 }),
        "token of another system: {e}"
    );
    let mut huge = Report::new();
    huge.system_info.system_information.family = "x".repeat(2 * 1024 * 1024);
    let e = metal_probe::post_with(&fast_post(), &h.registry_url, &uuid, &token, &huge)
        .await
        .unwrap_err();
    assert!(matches!(e, PostError::Rejected { status: 413, .. }), "{e}");
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    assert!(
        cms.get_opt(&format!("{server}-discovery-report"))
            .await
            .unwrap()
            .is_none(),
        "nothing stored"
    );
    assert_eq!(
        h.server(&server).await.unwrap().status.unwrap().state,
        Some(ServerState::Discovery)
    );

    // The agent says it booted: BootStateReceived on the internal SBC.
    metal_probe::post_bootstate(&fast_post(), &h.registry_url, &uuid, &token, true)
        .await
        .unwrap();
    let sbc = sbcs.get(&server).await.unwrap();
    let c = conditions::get(
        &sbc.status.as_ref().unwrap().conditions,
        "BootStateReceived",
    )
    .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "BootStateReceived")
    );
    assert_eq!(
        sbc.status.unwrap().state.map(|s| s.as_str()),
        Some("Ready"),
        "provisioning's state kept"
    );

    // The real agent run on the captured tree.
    let tokfile = dir.path().join("token");
    std::fs::write(&tokfile, format!("{token}\n")).unwrap();
    let out = tokio::process::Command::new(&probe)
        .args([
            "--root",
            fixture_tree().to_str().unwrap(),
            "--registry-url",
            &h.registry_url,
            "--server-uuid",
            &uuid,
            "--once",
            "--lldp-wait",
            "0",
        ])
        .arg("--token-file")
        .arg(&tokfile)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = h
        .wait_state(&server, ServerState::Available, Duration::from_secs(30))
        .await;
    let st = s.status.unwrap();
    let d = conditions::get(&st.conditions, "Discovered").unwrap();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "InBandDataReceived")
    );
    assert!(conditions::get(&st.conditions, "PoweringOn").is_none());
    let nic = |name: &str| {
        st.network_interfaces
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", st.network_interfaces))
    };
    let eno = nic("eno12399");
    assert_eq!(eno.mac_address, "b4:96:91:2a:1c:40");
    assert_eq!(eno.carrier_status.as_deref(), Some("up"));
    assert_eq!(eno.ips, ["10.20.30.41", "fe80::b696:91ff:fe2a:1c40"]);
    assert_eq!(eno.neighbors.len(), 1);
    assert_eq!(eno.neighbors[0].port_id.as_deref(), Some("Ethernet1/21"));
    assert_eq!(eno.neighbors[0].system_name.as_deref(), Some("oob-sw-r12"));
    let uplink = nic("ens3f0np0");
    assert_eq!(
        uplink.neighbors[0].mac_address.as_deref(),
        Some("e8:eb:d3:e4:5a:2e")
    );
    assert_eq!(
        uplink.neighbors[0].system_name.as_deref(),
        Some("leaf-r12-a")
    );
    assert_eq!(nic("eno12409").carrier_status.as_deref(), Some("down"));
    // Redfish-only MACs are kept.
    for mac in &system.macs {
        let mac = mac.to_lowercase();
        assert!(
            st.network_interfaces.iter().any(|n| n.mac_address == mac),
            "{mac} kept"
        );
    }
    // The inventory read over Redfish stays.
    assert_eq!(st.manufacturer.as_deref(), Some("Contoso"));
    // Cleanup of the round's objects.
    eventually(
        "internal objects deleted",
        Duration::from_secs(20),
        async || {
            let sbc = sbcs.get_opt(&server).await.unwrap();
            let sec = secrets
                .get_opt(&format!("{server}-discovery"))
                .await
                .unwrap();
            let cm = cms
                .get_opt(&format!("{server}-discovery-report"))
                .await
                .unwrap();
            (sbc.is_none() && sec.is_none() && cm.is_none()).then_some(())
        },
    )
    .await;
    // A late re-post is refused: the token was revoked with the Secret.
    let e = metal_probe::post_with(&fast_post(), &h.registry_url, &uuid, &token, &Report::new())
        .await
        .unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    let text = h.registry.encode();
    assert!(
        text.contains("metal_discovery_registry_requests_total{path=\"/register\",code=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("metal_discovery_duration_seconds_count{mode=\"in-band\"} 1"),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn discovery_timeout_returns_to_initial_with_reason() {
    let sim = sim(rack(
        "127.66.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("timeout", |c| {
        c.inspection = api::constants::InspectionMode::InBand;
        c.discovery_timeout = Duration::from_secs(3);
        c.discovery_retry_delay = Duration::from_secs(30);
    })
    .await;
    let bmc = h.add_bmc(&sim.bmcs()[0], &[]).await;
    let server = format!("{bmc}-system-0");
    h.wait_state(&server, ServerState::Discovery, Duration::from_secs(60))
        .await;
    // Nobody serves the boot configuration: the round times out.
    let s = h
        .wait_state(&server, ServerState::Initial, Duration::from_secs(30))
        .await;
    let d = conditions::get(&s.status.as_ref().unwrap().conditions, "Discovered")
        .unwrap()
        .clone();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("False", "DiscoveryTimedOut")
    );
    assert!(
        d.message.contains("no in-band report within 3s"),
        "{}",
        d.message
    );
    assert!(d.message.contains("never became Ready"), "{}", d.message);
    // The round's objects are gone and the server stays in Initial while the retry delay runs.
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(h.client.clone(), &h.ns);
    eventually("SBC deleted", Duration::from_secs(10), async || {
        sbcs.get_opt(&server).await.unwrap().is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.server(&server).await.unwrap().status.unwrap().state,
        Some(ServerState::Initial)
    );
    assert_eq!(
        sim.system_state(0, &sim.bmcs()[0].systems[0].id)
            .unwrap()
            .power_state,
        PowerState::Off
    );
    sim.shutdown().await;
}

/// The cleaning agent's report: the real `metal-probe --wipe` on a disk tree posts it with the
/// cleaning Secret's token; the registry stores it owned by that Secret. A discovery token
/// cannot report a cleaning, a cleaning token cannot register hardware, and without a
/// cleaning Secret nothing is stored.
#[tokio::test]
async fn the_cleaning_agent_reports_its_wipe_through_the_registry() {
    use api::constants::agent::{CLEANING_LABEL, CLEANING_REPORT_KEY, cleaning_report_name};
    let h = Harness::start("cleaning-report", |_| {}).await;
    let server = "wiped-0";
    let uuid = "5c3f6e1a-0000-4000-8000-0000000000c1";
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    let payload = metal_probe::CleaningPayload {
        system_uuid: uuid.into(),
        mode: metal_probe::WipeMode::Metadata,
        disks: vec![],
    };
    let token = metal_probe::ignition::new_token();
    let e = metal_probe::post_cleaning(&fast_post(), &h.registry_url, &token, &payload)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PostError::Unauthorized { status: 403 }),
        "no cleaning in progress: {e}"
    );

    let secret = |name: &str, label: &str, token: &str| -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": {label: "true", "metal.ironcore.dev/system-uuid": uuid},
                "annotations": {"metal.ironcore.dev/server": server}},
            "stringData": {"token": token},
        }))
        .unwrap()
    };
    let discovery_token = metal_probe::ignition::new_token();
    secrets
        .create(
            &Default::default(),
            &secret(
                "wiped-0-discovery",
                "metal.ironcore.dev/discovery",
                &discovery_token,
            ),
        )
        .await
        .unwrap();
    let e = metal_probe::post_cleaning(&fast_post(), &h.registry_url, &discovery_token, &payload)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PostError::Unauthorized { status: 403 }),
        "a discovery token reports no cleaning: {e}"
    );
    let owner = secrets
        .create(
            &Default::default(),
            &secret("wiped-0-cleaning", CLEANING_LABEL, &token),
        )
        .await
        .unwrap();
    let e = metal_probe::post_with(&fast_post(), &h.registry_url, uuid, &token, &Report::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, PostError::Unauthorized { status: 403 }),
        "a cleaning token registers no hardware: {e}"
    );
    assert!(
        cms.get_opt(&cleaning_report_name(server))
            .await
            .unwrap()
            .is_none()
    );

    // The real agent wipes a disk tree and reports.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sys/block/sda")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("sys/block/sda/size"), "8192\n").unwrap();
    std::fs::write(root.join("dev/sda"), vec![0xAAu8; 8192 * 512]).unwrap();
    let tokfile = root.join("token");
    std::fs::write(&tokfile, &token).unwrap();
    let out = tokio::process::Command::new(probe_bin())
        .arg("--root")
        .arg(root)
        .args(["--registry-url", &h.registry_url, "--server-uuid", uuid])
        .args(["--wipe", "metadata", "--attempts", "2"])
        .arg("--token-file")
        .arg(&tokfile)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let disk = std::fs::read(root.join("dev/sda")).unwrap();
    assert!(disk[..1 << 20].iter().all(|b| *b == 0), "head zeroed");
    assert!(disk[(3 << 20)..].iter().all(|b| *b == 0), "tail zeroed");
    assert!(disk[(1 << 20)..(3 << 20)].iter().all(|b| *b == 0xAA));
    let cm = cms.get(&cleaning_report_name(server)).await.unwrap();
    assert_eq!(
        cm.metadata.owner_references.unwrap()[0].uid,
        owner.metadata.uid.unwrap(),
        "owned by the round's Secret"
    );
    let stored: metal_probe::CleaningPayload =
        serde_json::from_str(&cm.data.unwrap()[CLEANING_REPORT_KEY]).unwrap();
    assert_eq!(stored.mode, metal_probe::WipeMode::Metadata);
    assert_eq!(stored.disks.len(), 1);
    assert_eq!(stored.disks[0].name, "sda");
    assert_eq!(stored.disks[0].bytes_written, 2 << 20);
    assert_eq!(stored.verdict(metal_probe::WipeMode::Metadata), Ok(()));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&token),
        "the token is not logged"
    );
}
