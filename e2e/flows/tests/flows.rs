//! End-to-end flows with the four controllers as processes (RBAC from kustomize, acting as their
//! ServiceAccounts), a simulated rack with network-boot firmware, and an image registry:
//! discover → claim → boot → BIOS settings in an approved maintenance window → release, in-band
//! discovery through the boot server and the probe, a BMC that refuses to power off, and
//! controllers killed at random points.

use api::serverclaim::ServerClaim;
use e2e::{
    Process, Rack, Site, bound_server, claim, default_group, eventually, server_by_name, servers,
    shared_tree, sim_system, state, wait_states,
};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use e2e::LONG;

async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head[9..12].parse().unwrap_or(0), body.to_string())
}

fn start_all(site: &Site, rack: &Rack, inspection: &str) -> BTreeMap<&'static str, Process> {
    [
        (
            "discovery",
            Process::start(
                site,
                "discovery",
                e2e::discovery_args(site, rack, inspection),
            ),
        ),
        (
            "reservation",
            Process::start(site, "reservation", e2e::reservation_args(site)),
        ),
        (
            "provisioning",
            Process::start(site, "provisioning", e2e::provisioning_args(site, rack)),
        ),
        (
            "maintenance",
            Process::start(site, "maintenance", e2e::maintenance_args(site, rack)),
        ),
    ]
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_claim_boot_release() {
    let site = Site::new("e2e-loop").await;
    let mut groups = vec![default_group(3)];
    if let Some(dell) = shared_tree("dell-poweredge-r750") {
        groups.push(metal_bmc_sim::GroupSpec {
            template: metal_bmc_sim::TemplateSource::Path(dell),
            ..default_group(1)
        });
    }
    let n = groups.iter().map(|g| g.count).sum();
    let rack = Rack::start(&site, "127.81.0.1", groups).await;
    let procs = start_all(&site, &rack, "out-of-band");

    // Discovery: every system becomes an Available, powered-off Server with its inventory.
    let all = wait_states(&site, n, "Available", "all servers Available").await;
    for s in &all {
        let st = s.status.as_ref().expect("status");
        assert!(
            st.manufacturer.as_deref().is_some_and(|m| !m.is_empty()),
            "{:?}",
            s.metadata.name
        );
        assert!(
            !st.network_interfaces.is_empty(),
            "NICs of {:?}",
            s.metadata.name
        );
    }
    for p in procs.values() {
        let (code, _) = p.admin_get("/readyz").await.expect("readyz");
        assert_eq!(code, 200, "{} ready", p.name);
    }

    // Claim one server by selector: it is bound, booted over the network into the claim's image
    // with its own script and ignition.
    let c = claim(
        &site,
        &rack,
        "web-0",
        json!({ "matchLabels": site.labels() }),
    )
    .await;
    let name = bound_server(&site, "web-0").await;
    let server = server_by_name(&site, &name).await;
    let (bmc, sys, uuid, mac) = sim_system(&rack, &server);
    let record = eventually("network boot of the claimed server", LONG, async || {
        rack.firmware
            .records(bmc, &sys)
            .into_iter()
            .rev()
            .find(|r| r.ignition.is_some())
    })
    .await;
    assert!(
        record
            .script
            .as_deref()
            .is_some_and(|s| s.contains("kernel")),
        "{record:?}"
    );
    assert!(
        record
            .ignition
            .as_deref()
            .is_some_and(|i| i.contains("web-0-ignition")),
        "{record:?}"
    );
    assert!(
        record
            .fetches
            .iter()
            .any(|f| f.url.contains(&uuid) && f.status == 200),
        "fetched its own script: {record:?}"
    );
    let power = rack.sim.system_state(bmc, &sys).expect("state").power_state;
    assert_eq!(format!("{power:?}"), "On");
    assert_eq!(state(&server_by_name(&site, &name).await), "Reserved");

    // Nobody else gets the claimed server's configuration.
    let other = all
        .iter()
        .find(|s| s.metadata.name.as_deref() != Some(name.as_str()))
        .expect("another server");
    let (_, _, _, other_mac) = sim_system(&rack, other);
    // A neighbour that knows the claimed server's MAC and UUID: its boot window was used by
    // its own firmware, and everything after the script needs its boot token.
    for url in [
        format!("{}/ipxe?mac={mac}&uuid={uuid}", rack.boot_server),
        format!("{}/ipxe/{uuid}", rack.boot_server),
        format!("{}/uefi/{uuid}", rack.boot_server),
        format!("{}/ignition/{uuid}", rack.boot_server),
        format!("{}/ignition/{uuid}?mac={other_mac}", rack.boot_server),
        format!("{}/ignition/{uuid}/{}", rack.boot_server, "A".repeat(32)),
    ] {
        let (code, body) = http_get(&url).await;
        assert_eq!(code, 404, "{url}: {body}");
        assert!(
            !body.contains("web-0") && !body.contains("kernel"),
            "{url}: {body}"
        );
    }
    let (code, body) = http_get(&format!("{}/ipxe?mac={other_mac}", rack.boot_server)).await;
    assert!(
        !body.contains("demo-os") && code != 200,
        "unclaimed server's script: {code} {body}"
    );
    let (code, _) = http_get(&format!("{}/ipxe?mac=02:00:00:00:00:99", rack.boot_server)).await;
    assert_eq!(code, 404, "unknown MAC");

    // Day 2 on the claimed server: BIOS settings need a maintenance window, which the claim's
    // owner approves; the server comes back Reserved to its claim with the settings applied.
    bios_settings_with_owner_approval(&site, &rack, &name, "web-0").await;

    // Release: deleting the claim powers the server off (BMC-confirmed) and returns it.
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    claims
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("delete claim");
    eventually("claim gone", LONG, async || {
        claims.get_opt("web-0").await.ok()?.is_none().then_some(())
    })
    .await;
    let s = server_by_name(&site, &name).await;
    assert_eq!(state(&s), "Available");
    assert!(s.spec.server_claim_ref.is_none());
    let power = rack.sim.system_state(bmc, &sys).expect("state").power_state;
    assert_eq!(format!("{power:?}"), "Off", "released only after power-off");
    drop(c);

    // The dashboard and alerts only use metrics the controllers export.
    let mut exported = String::new();
    for p in procs.values() {
        exported.push_str(&p.admin_get("/metrics").await.expect("metrics").1);
    }
    let dashboard = std::fs::read_to_string(
        testenv::repo_root().join("kustomize/monitoring/metal-dashboard.json"),
    )
    .expect("dashboard");
    let alerts =
        std::fs::read_to_string(testenv::repo_root().join("kustomize/monitoring/alerts.yaml"))
            .expect("alerts");
    let re = regex_lite(&(dashboard + &alerts));
    // Label families without any series are not encoded until their first sample; these only
    // get one on a failure.
    const SPARSE: &[&str] = &["metal_reconcile_errors_total"];
    for metric in re.into_iter().filter(|m| !SPARSE.contains(&m.as_str())) {
        let base = metric
            .trim_end_matches("_bucket")
            .trim_end_matches("_count")
            .trim_end_matches("_sum")
            .trim_end_matches("_total");
        assert!(
            exported.contains(&format!("# TYPE {base} "))
                || exported.contains(&format!("\n{metric}")),
            "the dashboard or alerts use {metric}, which no controller exports; exported:\n{}",
            exported
                .lines()
                .filter(|l| l.starts_with("# TYPE"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Applies a BIOSSettings to the claimed server `name`: maintenance is asked on the claim,
/// approved, the setting written and the server rebooted once, then handed back `Reserved`.
async fn bios_settings_with_owner_approval(site: &Site, rack: &Rack, name: &str, claim: &str) {
    use api::biossettings::BIOSSettings;
    let server = server_by_name(site, name).await;
    let (bmc, sys, _, _) = sim_system(rack, &server);
    let resets_before = e2e::resets(rack, bmc);
    let settings: Api<BIOSSettings> = Api::all(site.client.clone());
    let bios_name = format!("{name}-virtualization");
    let bios_version = server
        .status
        .as_ref()
        .and_then(|st| st.bios_version.clone())
        .expect("discovered BIOS version");
    let bs: BIOSSettings = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BIOSSettings",
        "metadata": { "name": bios_name },
        "spec": {
            "version": bios_version, "serverRef": { "name": name },
            "serverMaintenancePolicy": "OwnerApproval",
            "settingsFlow": [{ "name": "virtualization", "priority": 1,
                               "settings": { "ProcVirtualization": "Disabled" } }],
        },
    }))
    .expect("biossettings");
    settings
        .create(&Default::default(), &bs)
        .await
        .expect("create biossettings");
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    eventually("maintenance asked on the claim", LONG, async || {
        let c = claims.get(claim).await.ok()?;
        c.metadata
            .labels?
            .get(api::constants::MAINTENANCE_NEEDED_LABEL)
            .filter(|v| *v == "true")
            .map(|_| ())
    })
    .await;
    assert_eq!(
        state(&server_by_name(site, name).await),
        "Reserved",
        "nothing happens before approval"
    );
    claims
        .patch(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                api::constants::MAINTENANCE_APPROVED_LABEL: "true"
            }}})),
        )
        .await
        .expect("approve");
    eventually("BIOSSettings Applied", LONG, async || {
        let b = settings.get(&bios_name).await.ok()?;
        (b.status?.state? == api::biossettings::BIOSSettingsState::Applied).then_some(())
    })
    .await;
    let applied = rack
        .sim
        .system_state(bmc, &sys)
        .expect("state")
        .bios_changed;
    assert_eq!(
        applied.get("ProcVirtualization"),
        Some(&json!("Disabled")),
        "{applied:?}"
    );
    let back = eventually("server back to its claim", LONG, async || {
        let s = server_by_name(site, name).await;
        (state(&s) == "Reserved" && s.spec.server_maintenance_ref.is_none()).then_some(s)
    })
    .await;
    assert!(back.spec.server_claim_ref.is_some());
    assert_eq!(
        e2e::resets(rack, bmc) - resets_before,
        1,
        "one reboot applied the setting"
    );
}

/// Metric names (`metal_...`) used in a text.
fn regex_lite(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("metal_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let word = &text[start..end];
        let before_ok = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'-');
        if before_ok && word.len() > "metal_".len() && word != "metal_fleet" {
            out.insert(word.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_discovery_through_the_boot_server_and_probe() {
    let site = Site::new("e2e-inband").await;
    let rack = Rack::start(&site, "127.82.0.1", vec![default_group(2)]).await;
    let _procs = start_all(&site, &rack, "in-band");
    let start = std::time::Instant::now();
    let all = loop {
        let all = servers(&site).await;
        if all.len() == 2 && all.iter().all(|s| state(s) == "Available") {
            break all;
        }
        if start.elapsed() > LONG {
            let records: Vec<_> = (0..2).map(|b| rack.firmware.records(b, "1")).collect();
            panic!(
                "servers not Available after in-band discovery: {:?}\nfirmware: {records:#?}",
                all.iter().map(state).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for s in &all {
        let (bmc, sys, _, _) = sim_system(&rack, s);
        let boots = rack.firmware.records(bmc, &sys);
        let probe = boots.iter().find_map(|r| r.probe.clone());
        assert!(
            probe.as_deref().is_some_and(|p| p.starts_with("posted")),
            "probe ran on {sys}: {boots:?}"
        );
        let nics = &s.status.as_ref().expect("status").network_interfaces;
        assert!(
            nics.iter().any(|n| !n.ips.is_empty()),
            "in-band data (IPs) merged: {nics:?}"
        );
        assert!(
            nics.iter().any(|n| !n.neighbors.is_empty()),
            "LLDP neighbours merged: {nics:?}"
        );
        // Discovery makes the server Available when the probe has reported; provisioning then
        // powers it off (the simulated system may still be PoweringOff at that moment).
        eventually(
            &format!("{sys} powered off once Available"),
            LONG,
            async || {
                let power = rack.sim.system_state(bmc, &sys).expect("state").power_state;
                (format!("{power:?}") == "Off").then_some(())
            },
        )
        .await;
    }
}

/// The site's only server, Available, claimed by `claim_name` and booted: its name and its
/// simulated BMC and system.
async fn one_claimed_and_booted(
    site: &Site,
    rack: &Rack,
    claim_name: &str,
) -> (String, usize, String) {
    wait_states(site, 1, "Available", "server Available").await;
    claim(
        site,
        rack,
        claim_name,
        json!({ "matchLabels": site.labels() }),
    )
    .await;
    let name = bound_server(site, claim_name).await;
    let server = server_by_name(site, &name).await;
    let (bmc, sys, _, _) = sim_system(rack, &server);
    eventually("powered on", LONG, async || {
        (format!("{:?}", rack.sim.system_state(bmc, &sys).ok()?.power_state) == "On").then_some(())
    })
    .await;
    (name, bmc, sys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_that_refuses_power_off_holds_the_release() {
    let site = Site::new("e2e-refuse").await;
    let rack = Rack::start(&site, "127.83.0.1", vec![default_group(1)]).await;
    let _procs = start_all(&site, &rack, "out-of-band");
    let (name, bmc, sys) = one_claimed_and_booted(&site, &rack, "db-0").await;
    let mut knobs = rack.sim.knobs(bmc).expect("knobs");
    knobs.refuse_power_off = true;
    rack.sim.set_knobs(bmc, knobs.clone()).expect("knobs");

    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    claims
        .delete("db-0", &DeleteParams::default())
        .await
        .expect("delete");
    let reason = eventually("PoweredOff=False on the claim", LONG, async || {
        let c = claims.get_opt("db-0").await.ok()??;
        let cond = c
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "PoweredOff")?;
        (cond.status == "False" && cond.reason != "PowerOffConfirmed").then_some(cond.reason)
    })
    .await;
    assert!(!reason.is_empty());
    // Held back for a while: still Reserved, still On, claim still there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = server_by_name(&site, &name).await;
    assert_eq!(state(&s), "Reserved");
    assert!(claims.get_opt("db-0").await.expect("get").is_some());
    assert_eq!(
        format!(
            "{:?}",
            rack.sim.system_state(bmc, &sys).expect("s").power_state
        ),
        "On"
    );

    // The BMC obeys again: the release completes.
    knobs.refuse_power_off = false;
    rack.sim.set_knobs(bmc, knobs).expect("knobs");
    eventually("released", Duration::from_secs(300), async || {
        claims.get_opt("db-0").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(state(&server_by_name(&site, &name).await), "Available");
    assert_eq!(
        format!(
            "{:?}",
            rack.sim.system_state(bmc, &sys).expect("s").power_state
        ),
        "Off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_killed_at_random_points_still_complete_the_flow() {
    let site = Site::new("e2e-chaos").await;
    const N: usize = 4;
    let rack = Rack::start(&site, "127.84.0.1", vec![default_group(N)]).await;
    let mut procs = start_all(&site, &rack, "out-of-band");
    wait_states(&site, N, "Available", "all Available").await;
    for b in 0..N {
        rack.sim.reset_request_counts(b).expect("reset counters");
    }
    // A fixed pseudo-random schedule of kills (SIGKILL: no lease release, no cleanup).
    let mut seed: u64 = 0x5eed_1234;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..N {
        claim(
            &site,
            &rack,
            &format!("job-{i}"),
            json!({ "matchLabels": site.labels() }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(next() % 1500)).await;
        let victim = if next() % 2 == 0 {
            "reservation"
        } else {
            "provisioning"
        };
        procs.get_mut(victim).expect("proc").restart();
    }
    let mut bound = std::collections::BTreeSet::new();
    for i in 0..N {
        bound.insert(bound_server(&site, &format!("job-{i}")).await);
    }
    assert_eq!(bound.len(), N, "each claim its own server");
    for name in &bound {
        let s = server_by_name(&site, name).await;
        let (bmc, sys, _, _) = sim_system(&rack, &s);
        eventually(&format!("{name} on"), LONG, async || {
            (format!("{:?}", rack.sim.system_state(bmc, &sys).ok()?.power_state) == "On")
                .then_some(())
        })
        .await;
    }
    // Settle, then check that no power command was repeated: one power-on per system.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for b in 0..N {
        assert_eq!(
            e2e::resets(&rack, b),
            1,
            "BMC {b}: exactly one ComputerSystem.Reset"
        );
    }
    // Release with more kills in between.
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    for i in 0..N {
        claims
            .delete(&format!("job-{i}"), &DeleteParams::default())
            .await
            .expect("delete");
        tokio::time::sleep(Duration::from_millis(next() % 1000)).await;
        let victim = if next() % 2 == 0 {
            "reservation"
        } else {
            "provisioning"
        };
        procs.get_mut(victim).expect("proc").restart();
    }
    wait_states(&site, N, "Available", "all released").await;
    for b in 0..N {
        let sys = &rack.sim.bmcs()[b].systems[0].id;
        assert_eq!(
            format!(
                "{:?}",
                rack.sim.system_state(b, sys).expect("s").power_state
            ),
            "Off"
        );
        assert_eq!(
            e2e::resets(&rack, b),
            2,
            "BMC {b}: one power-on and one power-off"
        );
    }
}

async fn annotate(site: &Site, server: &str, value: &str) {
    Api::<api::server::Server>::all(site.client.clone())
        .patch(
            server,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "annotations": { "metal.ironcore.dev/operation": value } }
            })),
        )
        .await
        .expect("annotate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_server_parked_and_unparked_boots_its_claim_again() {
    let site = Site::new("e2e-park").await;
    let rack = Rack::start(&site, "127.85.0.1", vec![default_group(1)]).await;
    let _procs = start_all(&site, &rack, "out-of-band");
    let (name, bmc, sys) = one_claimed_and_booted(&site, &rack, "web-0").await;
    let power = || {
        format!(
            "{:?}",
            rack.sim.system_state(bmc, &sys).expect("s").power_state
        )
    };
    assert_eq!(e2e::resets(&rack, 0), 1);

    // Parked: powered off, nobody powers it on again, the claim stays bound.
    annotate(&site, &name, "park").await;
    eventually("parked and off", LONG, async || {
        let s = server_by_name(&site, &name).await;
        (state(&s) == "Parked" && power() == "Off").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(power(), "Off", "provisioning stands down while parked");
    assert_eq!(e2e::resets(&rack, 0), 2, "one power-off, no power-on");
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    let c = claims.get("web-0").await.expect("claim");
    assert_eq!(
        c.spec.server_ref.map(|r| r.name).as_deref(),
        Some(name.as_str())
    );

    // Unparked: back to Reserved, and provisioning boots the claim again.
    annotate(&site, &name, "unpark").await;
    eventually("Reserved and booted again", LONG, async || {
        let s = server_by_name(&site, &name).await;
        (state(&s) == "Reserved" && power() == "On").then_some(())
    })
    .await;
    assert_eq!(e2e::resets(&rack, 0), 3, "one more power-on");
    let s = server_by_name(&site, &name).await;
    assert!(
        !s.annotations().contains_key("metal.ironcore.dev/parked"),
        "marker removed"
    );
}

/// A ServerMaintenance with a boot configuration template boots the claimed server into it
/// through provisioning's boot server (once), and when it ends the server is powered off and
/// provisioning boots the claim's configuration again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_boots_its_own_configuration_then_hands_the_server_back() {
    use api::servermaintenance::ServerMaintenance;
    let site = Site::new("e2e-mboot").await;
    let rack = Rack::start(&site, "127.85.1.1", vec![default_group(1)]).await;
    let _procs = start_all(&site, &rack, "out-of-band");
    let (name, bmc, sys) = one_claimed_and_booted(&site, &rack, "web-0").await;
    let claim_boots = rack.firmware.records(bmc, &sys).len();
    assert!(
        claim_boots >= 1,
        "the claim's configuration was network-booted"
    );
    assert_eq!(e2e::resets(&rack, 0), 1);

    let diag_kernel = "http://images.example.test/diag-vmlinuz";
    let sms: Api<ServerMaintenance> = Api::namespaced(site.client.clone(), &site.ns);
    let sm: ServerMaintenance = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerMaintenance",
        "metadata": { "name": "diag" },
        "spec": {
            "serverRef": { "name": name },
            "policy": "Enforced",
            "serverPower": "On",
            "serverBootConfigurationTemplate": {
                "name": "diag-boot",
                "spec": {
                    "serverRef": { "name": name },
                    "bootArtifacts": {
                        "kernelURL": diag_kernel,
                        "initrdURL": "http://images.example.test/diag-initrd",
                        "cmdline": "console=ttyS0 diag=1",
                    },
                },
            },
        },
    }))
    .expect("maintenance");
    sms.create(&Default::default(), &sm).await.expect("create");

    let booted = eventually("maintenance booted", LONG, async || {
        let sm = sms.get("diag").await.ok()?;
        let c = sm
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "BootConfiguration")?;
        (c.status == "True").then_some(c)
    })
    .await;
    assert_eq!(booted.reason, "Booted", "{booted:?}");
    let recs = rack.firmware.records(bmc, &sys);
    let diag: Vec<_> = recs
        .iter()
        .filter(|r| r.kernel.as_deref() == Some(diag_kernel))
        .collect();
    assert_eq!(
        diag.len(),
        1,
        "booted once into the maintenance configuration: {recs:#?}"
    );
    assert!(
        diag[0]
            .cmdline
            .as_deref()
            .unwrap_or_default()
            .contains("diag=1")
    );
    let s = server_by_name(&site, &name).await;
    assert_eq!(state(&s), "Maintenance");
    assert_eq!(
        s.spec
            .maintenance_boot_configuration_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("diag-boot")
    );
    // The server was on: one restart into the configuration, nothing else.
    assert_eq!(e2e::resets(&rack, 0), 2, "one restart");
    // The window is used up: the same request again gets nothing.
    let (_, _, uuid, mac) = sim_system(&rack, &s);
    let (code, body) = http_get(&format!("{}/ipxe?mac={mac}&uuid={uuid}", rack.boot_server)).await;
    assert_eq!((code, body.contains(diag_kernel)), (404, false));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(e2e::resets(&rack, 0), 2, "no second boot");

    // The end: powered off, reference and configuration gone, back to the claim's own boot.
    sms.delete("diag", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("handed back and booted the claim", LONG, async || {
        let s = server_by_name(&site, &name).await;
        let recs = rack.firmware.records(bmc, &sys);
        let last = recs.last()?;
        (state(&s) == "Reserved"
            && s.spec.maintenance_boot_configuration_ref.is_none()
            && recs.len() == claim_boots + 2
            && last.kernel.as_deref() != Some(diag_kernel)
            && last.ignition.is_some())
        .then_some(())
    })
    .await;
    assert_eq!(
        e2e::resets(&rack, 0),
        4,
        "one power-off by maintenance, one power-on by provisioning"
    );
    let sbcs: Api<api::serverbootconfiguration::ServerBootConfiguration> =
        Api::namespaced(site.client.clone(), &site.ns);
    eventually("maintenance configuration deleted", LONG, async || {
        sbcs.get_opt("diag-boot")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

/// Sets `server`'s reclaim policy to `Recycle` and its cleaning mode to `mode`.
async fn recycle_with_cleaning(site: &Site, server: &str, mode: &str) {
    Api::<api::server::Server>::all(site.client.clone())
        .patch(
            server,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "annotations": { "metal.ironcore.dev/cleaning-mode": mode } },
                "spec": { "reclaimPolicy": "Recycle" },
            })),
        )
        .await
        .expect("annotate");
}

/// Cleaning on release with the controllers as processes: three claimed servers, released by
/// deleting their `Recycle` claims. Two default-tree servers (drives without SecureErase):
/// one in `Full` mode is overwritten by the in-band agent, one in `Metadata` mode has its
/// partition tables and signatures wiped by it; each network-boots the agent once through
/// provisioning's boot server, reports through discovery's registry, is powered off and is
/// Available again. The Dell server's drive refuses its SecureErase: the server goes to
/// `Error` (Cleaned=False) and new claims do not get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_servers_are_cleaned_and_a_failed_cleaning_is_not_handed_out() {
    const FAILING: &str = "Disk.Bay.1:Enclosure.Internal.0-1";
    let site = Site::new("e2e-clean").await;
    let dell = testenv::repo_root().join("crates/redfish/tests/fixtures/dell-poweredge-r750");
    let mut failing_dell = metal_bmc_sim::GroupSpec {
        template: metal_bmc_sim::TemplateSource::Path(dell),
        ..default_group(1)
    };
    failing_dell.knobs.secure_erase_fails = vec![FAILING.into()];
    let rack = Rack::start(&site, "127.85.2.1", vec![default_group(2), failing_dell]).await;
    let _procs = start_all(&site, &rack, "out-of-band");
    let all = wait_states(&site, 3, "Available", "all Available").await;
    let mut by_bmc = BTreeMap::new();
    for s in &all {
        let (bmc, sys, _, _) = sim_system(&rack, s);
        let mode = if bmc == 1 { "Metadata" } else { "Full" };
        by_bmc.insert(bmc, (s.name_any(), sys));
        recycle_with_cleaning(&site, &s.name_any(), mode).await;
    }
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    for c in ["c-0", "c-1", "c-2"] {
        claim(&site, &rack, c, json!({ "matchLabels": site.labels() })).await;
    }
    for c in ["c-0", "c-1", "c-2"] {
        bound_server(&site, c).await;
    }
    let boots_before: Vec<usize> = (0..2)
        .map(|b| rack.firmware.records(b, &by_bmc[&b].1).len())
        .collect();
    for c in ["c-0", "c-1", "c-2"] {
        claims
            .delete(c, &DeleteParams::default())
            .await
            .expect("delete");
    }
    let cleaned = |s: &api::server::Server| {
        api::conditions::get(&s.status.as_ref()?.conditions, "Cleaned")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    for (bmc, mode, says) in [
        (0, "Full", "overwritten in-band nvme0n1, sda"),
        (
            1,
            "Metadata",
            "partition tables and signatures wiped in-band on nvme0n1, sda",
        ),
    ] {
        let (name, sys) = &by_bmc[&bmc];
        let ok = eventually("cleaned in-band and Available", LONG, async || {
            let s = server_by_name(&site, name).await;
            (state(&s) == "Available").then(|| cleaned(&s)).flatten()
        })
        .await;
        assert_eq!(
            (ok.0.as_str(), ok.1.as_str()),
            ("True", "Cleaned"),
            "{}",
            ok.2
        );
        assert!(ok.2.contains(says), "{mode}: {}", ok.2);
        let agent_boots: Vec<_> = rack.firmware.records(bmc, sys)[boots_before[bmc]..]
            .iter()
            .filter(|r| r.wipe.is_some())
            .cloned()
            .collect();
        assert_eq!(agent_boots.len(), 1, "one agent boot: {agent_boots:#?}");
        assert_eq!(agent_boots[0].wipe.as_deref(), Some(mode));
        assert!(
            agent_boots[0]
                .probe
                .as_deref()
                .is_some_and(|p| p.starts_with("posted to")),
            "{agent_boots:#?}"
        );
        let s = server_by_name(&site, name).await;
        assert!(s.spec.maintenance_boot_configuration_ref.is_none());
        assert_eq!(
            rack.sim.system_state(bmc, sys).expect("system").power_state,
            metal_bmc_sim::PowerState::Off,
            "powered off after the agent"
        );
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(site.client.clone(), &site.ns);
        eventually("agent objects gone", LONG, async || {
            secrets
                .get_opt(&format!("{name}-cleaning"))
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
    }
    let (dell_server, _) = &by_bmc[&2];
    let failed = eventually("Dell server in Error", LONG, async || {
        let s = server_by_name(&site, dell_server).await;
        (state(&s) == "Error").then(|| cleaned(&s)).flatten()
    })
    .await;
    assert_eq!(
        (failed.0.as_str(), failed.1.as_str()),
        ("False", "CleaningFailed")
    );
    assert!(failed.2.contains(FAILING), "{}", failed.2);

    // Three new claims: only the two cleaned servers can be had.
    for c in ["d-0", "d-1", "d-2"] {
        claim(&site, &rack, c, json!({ "matchLabels": site.labels() })).await;
    }
    let bound_now = async || {
        let mut bound = Vec::new();
        for c in ["d-0", "d-1", "d-2"] {
            let c = claims.get(c).await.ok()?;
            if let Some(r) = c.spec.server_ref.filter(|_| {
                c.status
                    .as_ref()
                    .and_then(|s| s.phase.as_ref())
                    .map(|p| format!("{p:?}"))
                    == Some("Bound".into())
            }) {
                bound.push(r.name);
            }
        }
        bound.sort();
        Some(bound)
    };
    eventually("two new claims bound", LONG, async || {
        bound_now().await.filter(|b| b.len() == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut want = vec![by_bmc[&0].0.clone(), by_bmc[&1].0.clone()];
    want.sort();
    assert_eq!(bound_now().await, Some(want));
    let s = server_by_name(&site, dell_server).await;
    assert_eq!(
        state(&s),
        "Error",
        "the failed server stays out of the pool"
    );
    assert!(s.spec.server_claim_ref.is_none());
}

/// metal-maintenance as a process, SIGKILLed at each step of an in-band cleaning in turn
/// (`--kill-at-step`, a test hook refused inside a cluster) and started again: every round
/// converges to Available with one agent boot and the same BMC requests as an undisturbed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_killed_at_every_step_of_an_in_band_cleaning_sends_nothing_twice() {
    const STEPS: [&str; 5] = [
        "",
        "cleaning-agent-boot-recorded",
        "cleaning-agent-window-opened",
        "cleaning-agent-report-recorded",
        "cleaning-recorded",
    ];
    // The hook refuses to run inside a cluster.
    let out = std::process::Command::new(e2e::binary("metal-maintenance"))
        .arg("--kill-at-step=cleaning-recorded")
        .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
        .output()
        .expect("run metal-maintenance");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused inside a cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let site = Site::new("e2e-stepkill").await;
    let rack = Rack::start(&site, "127.85.5.1", vec![default_group(1)]).await;
    let mut procs = start_all(&site, &rack, "out-of-band");
    let s = wait_states(&site, 1, "Available", "Available")
        .await
        .remove(0);
    let name = s.name_any();
    let (bmc, sys, _, _) = sim_system(&rack, &s);
    recycle_with_cleaning(&site, &name, "Metadata").await;
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    let mut per_round = None;
    for (round, at) in STEPS.iter().enumerate() {
        let c = format!("c-{round}");
        claim(&site, &rack, &c, json!({ "matchLabels": site.labels() })).await;
        bound_server(&site, &c).await;
        eventually("booted", LONG, async || {
            (format!("{:?}", rack.sim.system_state(bmc, &sys).ok()?.power_state) == "On")
                .then_some(())
        })
        .await;
        let (resets_before, agent_boots_before) = (
            e2e::resets(&rack, bmc),
            rack.firmware
                .records(bmc, &sys)
                .iter()
                .filter(|r| r.wipe.is_some())
                .count(),
        );
        let mut normal = e2e::maintenance_args(&site, &rack);
        // Killed between opening the window and the power-on, a restart cannot tell whether
        // the power-on left: it waits this long for the script before booting again.
        normal.push("--maintenance-boot-timeout=10s".into());
        if !at.is_empty() {
            kill_at(&mut procs, "maintenance", &normal, at);
        }
        claims
            .delete(&c, &DeleteParams::default())
            .await
            .expect("delete");
        if !at.is_empty() {
            resume_after_kill(&mut procs, "maintenance", &normal, at).await;
        }
        eventually(
            &format!("round {round} (killed at {at:?}) Available"),
            LONG,
            async || {
                let s = server_by_name(&site, &name).await;
                let cleaned = api::conditions::get(&s.status.as_ref()?.conditions, "Cleaned")?;
                (state(&s) == "Available" && cleaned.status == "True").then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let agent_boots = rack
            .firmware
            .records(bmc, &sys)
            .iter()
            .filter(|r| r.wipe.is_some())
            .count()
            - agent_boots_before;
        assert_eq!(agent_boots, 1, "killed at {at:?}: one agent boot");
        let resets = e2e::resets(&rack, bmc) - resets_before;
        // The undisturbed round sets the figure every killed round must match.
        let want = *per_round.get_or_insert(resets);
        assert_eq!(
            resets, want,
            "killed at {at:?}: the same power requests as an undisturbed round"
        );
    }
    assert_eq!(
        per_round,
        Some(3),
        "release power-off, agent boot, agent power-off"
    );
}

/// metal-reservation as a process, SIGKILLed at each binding step and at each release step in
/// turn (`--kill-at-step`) and started again: every claim ends bound to exactly one server,
/// booted with one power-on, and every release ends with the server Available after one
/// power-off; no second server is ever taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_killed_at_every_binding_and_release_step_binds_once() {
    const BIND: [&str; 4] = [
        "claim-ref-written",
        "claim-committed",
        "server-reserved",
        "boot-configuration-applied",
    ];
    const RELEASE: [&str; 2] = ["claim-ref-cleared", "server-released"];
    let site = Site::new("e2e-reskill").await;
    let rack = Rack::start(&site, "127.85.6.1", vec![default_group(2)]).await;
    let mut procs = start_all(&site, &rack, "out-of-band");
    let all = wait_states(&site, 2, "Available", "Available").await;
    for s in &all {
        let api: Api<api::server::Server> = Api::all(site.client.clone());
        api.patch(
            &s.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "reclaimPolicy": "Recycle" } })),
        )
        .await
        .expect("recycle");
    }
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    let resets = |rack: &Rack| (0..2).map(|b| e2e::resets(rack, b)).collect::<Vec<u64>>();
    let normal = e2e::reservation_args(&site);
    let mut round = 0;
    for (at, binding) in BIND
        .iter()
        .map(|a| (a, true))
        .chain(RELEASE.iter().map(|a| (a, false)))
    {
        round += 1;
        let c = format!("c-{round}");
        let before = resets(&rack);
        if binding {
            kill_at(&mut procs, "reservation", &normal, at);
            claim(&site, &rack, &c, json!({ "matchLabels": site.labels() })).await;
        } else {
            claim(&site, &rack, &c, json!({ "matchLabels": site.labels() })).await;
            let name = bound_server(&site, &c).await;
            // Released only once booted: a shutdown sent while the server is still powering
            // on may be ignored by a BMC and then escalated (a second, forced power-off),
            // which is right, but not the one power-off this round counts.
            wait_sim_power(&site, &rack, &name, "On").await;
            kill_at(&mut procs, "reservation", &normal, at);
            claims
                .delete(&c, &DeleteParams::default())
                .await
                .expect("delete");
        }
        resume_after_kill(&mut procs, "reservation", &normal, at).await;
        if binding {
            let name = bound_server(&site, &c).await;
            let bmc = wait_sim_power(&site, &rack, &name, "On").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let holders: Vec<String> = servers(&site)
                .await
                .into_iter()
                .filter(|s| {
                    s.spec
                        .server_claim_ref
                        .as_ref()
                        .is_some_and(|r| r.name == c)
                })
                .map(|s| s.name_any())
                .collect();
            assert_eq!(
                holders,
                vec![name.clone()],
                "killed at {at}: one server taken"
            );
            let after = resets(&rack);
            for b in 0..2 {
                let want = before[b] + u64::from(b == bmc);
                assert_eq!(
                    after[b], want,
                    "killed at {at}: one power-on, on the bound server only"
                );
            }
            // Undisturbed release before the next round.
            claims
                .delete(&c, &DeleteParams::default())
                .await
                .expect("delete");
            wait_states(&site, 2, "Available", "released").await;
        } else {
            eventually(
                &format!("released after a kill at {at}"),
                LONG,
                async || claims.get_opt(&c).await.ok()?.is_none().then_some(()),
            )
            .await;
            let all = wait_states(&site, 2, "Available", "released").await;
            assert!(
                all.iter().all(|s| s.spec.server_claim_ref.is_none()),
                "killed at {at}"
            );
            let after = resets(&rack);
            let spent: u64 = (0..2).map(|b| after[b] - before[b]).sum();
            assert_eq!(
                spent, 2,
                "killed at {at}: one power-on to boot, one power-off to release"
            );
        }
    }
}

/// Every password and token a run used — the BMC password, the in-band discovery and cleaning
/// agents' tokens, the boot tokens in the boot server's URLs, every Secret value the
/// controllers keep — appears in no controller's log at debug level, no Event, no object's
/// status or annotations, no report ConfigMap and no /metrics page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_reaches_logs_events_status_or_metrics() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let site = Site::new("e2e-secrets").await;
    let rack = Rack::start(&site, "127.85.4.1", vec![default_group(1)]).await;
    let debug = |mut a: Vec<String>| {
        a.push("--log-level=debug".into());
        a
    };
    let procs = [
        Process::start(
            &site,
            "discovery",
            debug(e2e::discovery_args(&site, &rack, "in-band")),
        ),
        Process::start(&site, "reservation", debug(e2e::reservation_args(&site))),
        Process::start(
            &site,
            "provisioning",
            debug(e2e::provisioning_args(&site, &rack)),
        ),
        Process::start(
            &site,
            "maintenance",
            debug(e2e::maintenance_args(&site, &rack)),
        ),
    ];
    // In-band discovery, a claim booted with its ignition, a release with in-band cleaning.
    let s = wait_states(&site, 1, "Available", "discovered in-band")
        .await
        .remove(0);
    recycle_with_cleaning(&site, &s.name_any(), "Metadata").await;
    claim(&site, &rack, "c-0", json!({ "matchLabels": site.labels() })).await;
    bound_server(&site, "c-0").await;
    let (bmc, sys, _, _) = sim_system(&rack, &s);
    eventually("the claim's ignition fetched", LONG, async || {
        rack.firmware
            .records(bmc, &sys)
            .iter()
            .any(|r| {
                r.ignition.is_some()
                    && r.fetches
                        .iter()
                        .any(|f| f.url.contains("/ignition/") && f.status == 200)
                    && r.wipe.is_none()
                    && r.probe.is_none()
            })
            .then_some(())
    })
    .await;
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    claims
        .delete("c-0", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("cleaned and Available", LONG, async || {
        let s = server_by_name(&site, &s.name_any()).await;
        let cleaned = api::conditions::get(&s.status.as_ref()?.conditions, "Cleaned")?;
        (state(&s) == "Available" && cleaned.status == "True").then_some(())
    })
    .await;

    // What must stay secret.
    let mut secrets: BTreeMap<String, String> = BTreeMap::new();
    for b in rack.sim.bmcs() {
        secrets.insert(b.password.clone(), "BMC password".into());
    }
    let mut agent_tokens = 0;
    let mut boot_tokens = 0;
    for r in rack.firmware.records(bmc, &sys) {
        if let Some(t) = r
            .ignition
            .as_deref()
            .and_then(metal_probe::ignition::token_from_ignition)
        {
            agent_tokens += 1;
            let what = if r.wipe.is_some() {
                "cleaning agent token"
            } else {
                "discovery agent token"
            };
            secrets.insert(t, what.into());
        }
        for f in &r.fetches {
            for prefix in ["/ignition/", "/artifacts/"] {
                if let Some((_, rest)) = f.url.split_once(prefix)
                    && let Some(token) = rest.split('/').nth(1)
                {
                    boot_tokens += 1;
                    secrets.insert(token.to_string(), "boot token".into());
                }
            }
        }
    }
    let kept: Api<Secret> = Api::namespaced(site.client.clone(), &site.ns);
    for sec in kept.list(&Default::default()).await.expect("secrets").items {
        let name = sec.name_any();
        for (k, v) in sec.data.unwrap_or_default() {
            let Ok(v) = String::from_utf8(v.0) else {
                continue;
            };
            if k != "username" && k != "ignition" && v.len() >= 8 {
                secrets.insert(v, format!("Secret {name}/{k}"));
            }
        }
    }
    let kinds: Vec<&str> = secrets.values().map(String::as_str).collect();
    for needed in [
        "BMC password",
        "discovery agent token",
        "cleaning agent token",
        "boot token",
    ] {
        assert!(kinds.contains(&needed), "no {needed} collected: {kinds:?}");
    }
    assert!(agent_tokens >= 2 && boot_tokens >= 2);

    // Where they must not be.
    let mut sources: Vec<(String, String)> = Vec::new();
    for p in &procs {
        let log = p.log_text();
        assert!(log.contains("DEBUG"), "{} logs at debug", p.name);
        sources.push((format!("{} log", p.name), log));
        let (code, metrics) = p.admin_get("/metrics").await.expect("metrics");
        assert_eq!(code, 200);
        sources.push((format!("{} /metrics", p.name), metrics));
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(site.client.clone());
    let events = events
        .list(&Default::default())
        .await
        .expect("events")
        .items;
    assert!(!events.is_empty());
    sources.push(("Events".into(), serde_json::to_string(&events).unwrap()));
    let core_events: Api<k8s_openapi::api::core::v1::Event> = Api::all(site.client.clone());
    let core_events = core_events
        .list(&Default::default())
        .await
        .expect("events")
        .items;
    sources.push((
        "core Events".into(),
        serde_json::to_string(&core_events).unwrap(),
    ));
    let status_and_annotations = |v: serde_json::Value| {
        json!({ "status": v["status"], "annotations": v["metadata"]["annotations"], "labels": v["metadata"]["labels"] })
            .to_string()
    };
    for s in servers(&site).await {
        sources.push((
            format!("Server {}", s.name_any()),
            status_and_annotations(serde_json::to_value(&s).unwrap()),
        ));
    }
    let bmcs: Api<api::bmc::BMC> = Api::all(site.client.clone());
    for b in bmcs
        .list(&ListParams::default().labels(&site.selector()))
        .await
        .expect("bmcs")
        .items
    {
        sources.push((
            format!("BMC {}", b.name_any()),
            status_and_annotations(serde_json::to_value(&b).unwrap()),
        ));
    }
    for c in claims
        .list(&Default::default())
        .await
        .expect("claims")
        .items
    {
        sources.push((
            format!("ServerClaim {}", c.name_any()),
            status_and_annotations(serde_json::to_value(&c).unwrap()),
        ));
    }
    let sbcs: Api<api::serverbootconfiguration::ServerBootConfiguration> =
        Api::namespaced(site.client.clone(), &site.ns);
    for b in sbcs.list(&Default::default()).await.expect("sbcs").items {
        sources.push((
            format!("ServerBootConfiguration {}", b.name_any()),
            status_and_annotations(serde_json::to_value(&b).unwrap()),
        ));
    }
    let cms: Api<ConfigMap> = Api::namespaced(site.client.clone(), &site.ns);
    for c in cms
        .list(&Default::default())
        .await
        .expect("configmaps")
        .items
    {
        sources.push((
            format!("ConfigMap {}", c.name_any()),
            serde_json::to_string(&c).unwrap(),
        ));
    }
    let mut hits = Vec::new();
    for (secret, what) in &secrets {
        for (name, text) in &sources {
            if let Some(at) = text.find(secret.as_str()) {
                // Where it is, with the secret itself masked.
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(160)
                    .map_or(0, |(i, _)| i);
                let to = (at + secret.len() + 80).min(text.len());
                let context = text
                    .get(from..to)
                    .unwrap_or_default()
                    .replace(secret.as_str(), "<SECRET>");
                hits.push(format!("{what} in {name}: ...{context}..."));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "{} secrets checked against {} sources; found: {hits:#?}",
        secrets.len(),
        sources.len()
    );
}

/// Upstream #1108: a Server created with a claim reference and no status (a restore) goes
/// straight to Reserved; discovery never takes it into Initial meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restored_with_a_claim_goes_straight_to_reserved() {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};
    let site = Site::new("e2e-1108").await;
    let rack = Rack::start(&site, "127.85.3.1", vec![default_group(1)]).await;
    let _procs = start_all(&site, &rack, "out-of-band");
    wait_states(&site, 1, "Available", "the rack's server Available").await;

    let name = format!("{}-restored", site.run);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let api: Api<api::server::Server> = Api::all(site.client.clone());
    let watch = {
        let seen = seen.clone();
        let stream = watcher(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(s)) = stream.next().await {
                seen.lock().unwrap().push(state(&s));
            }
        })
    };
    claim(
        &site,
        &rack,
        "restored",
        json!({ "matchLabels": { "restore": name } }),
    )
    .await;
    let mut labels = site.labels();
    labels.insert("restore".into(), name.clone());
    let server: api::server::Server = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "systemUUID": "00000000-0000-0000-0000-0000000001a8",
            "serverClaimRef": { "namespace": site.ns, "name": "restored" },
        },
    }))
    .expect("server");
    api.create(&Default::default(), &server)
        .await
        .expect("create");
    let s = eventually("restored server Reserved", LONG, async || {
        let s = server_by_name(&site, &name).await;
        (state(&s) == "Reserved").then_some(s)
    })
    .await;
    assert_eq!(
        s.spec.server_claim_ref.as_ref().map(|r| r.name.as_str()),
        Some("restored")
    );
    assert_eq!(bound_server(&site, "restored").await, name);
    tokio::time::sleep(Duration::from_secs(3)).await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|st| st.is_empty() || st == "Reserved"),
        "states seen: {seen:?}"
    );
    let s = server_by_name(&site, &name).await;
    assert_eq!(state(&s), "Reserved", "still Reserved");
    assert!(
        s.status
            .as_ref()
            .is_none_or(|st| st.conditions.iter().all(|c| c.type_ != "Discovered")),
        "discovery left it alone"
    );
}

/// The requests of BMC `b` that change something (every method but GET and HEAD), by
/// `"METHOD /path"`. Sessions are left out: a SIGKILLed process cannot log out, so its
/// successor opens a new session and the old one expires on the BMC's SessionTimeout.
fn side_effects(rack: &Rack, b: usize) -> BTreeMap<String, u64> {
    rack.sim
        .request_counts(b)
        .expect("counts")
        .by_request
        .into_iter()
        .filter(|(k, _)| {
            !(k.starts_with("GET ") || k.starts_with("HEAD ") || k.contains("/SessionService/"))
        })
        .collect()
}

/// Waits until BMC `b` has sent no new side effect for 3 s and returns them.
async fn settled_side_effects(rack: &Rack, b: usize) -> BTreeMap<String, u64> {
    let mut last = side_effects(rack, b);
    let mut quiet = 0;
    while quiet < 6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = side_effects(rack, b);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    last
}

/// Waits until the simulator reports server `name` powered `want` (`On`, `Off`); returns the
/// index of its BMC.
async fn wait_sim_power(site: &Site, rack: &Rack, name: &str, want: &str) -> usize {
    let s = server_by_name(site, name).await;
    let (bmc, sys, _, _) = sim_system(rack, &s);
    eventually(&format!("{name} powered {want}"), LONG, async || {
        (format!("{:?}", rack.sim.system_state(bmc, &sys).ok()?.power_state) == want).then_some(())
    })
    .await;
    bmc
}

/// Restarts controller `name` with `--kill-at-step=<at>` added to its `normal` arguments.
fn kill_at(procs: &mut BTreeMap<&'static str, Process>, name: &str, normal: &[String], at: &str) {
    let p = procs.get_mut(name).expect("controller");
    let mut a = normal.to_vec();
    a.push(format!("--kill-at-step={at}"));
    p.set_args(a);
    p.restart();
}

/// Waits until controller `name` killed itself at step `at`, then restarts it undisturbed.
async fn resume_after_kill(
    procs: &mut BTreeMap<&'static str, Process>,
    name: &str,
    normal: &[String],
    at: &str,
) {
    eventually(&format!("{name} killed at {at}"), LONG, async || {
        (!procs.get_mut(name).expect("controller").running()).then_some(())
    })
    .await;
    let p = procs.get_mut(name).expect("controller");
    assert!(
        p.log_text().contains(&format!("reached {at}; SIGKILL")),
        "{name} killed at {at}"
    );
    p.set_args(normal.to_vec());
    p.restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_killed_at_every_onboarding_and_reset_step_sends_each_request_once() {
    const ONBOARDING: [&str; 7] = [
        "server-applied",
        "discovery-secret-created",
        "discovery-boot-configuration-applied",
        "discovery-boot-recorded",
        "pxe-boot-override-sent",
        "power-on-sent",
        "inventory-recorded",
    ];
    const RESET: [&str; 2] = ["bmc-reset-recorded", "bmc-reset-sent"];
    let site = Site::new("e2e-diskill").await;
    let rack = Rack::start_unregistered(
        &site,
        "127.85.7.1",
        vec![default_group(ONBOARDING.len() + 1)],
    )
    .await;
    let mut procs = start_all(&site, &rack, "in-band");
    let normal = e2e::discovery_args(&site, &rack, "in-band");
    // The undisturbed onboarding: what one in-band round sends to a BMC.
    rack.register(&site, 0).await;
    wait_states(&site, 1, "Available", "undisturbed onboarding").await;
    let baseline = settled_side_effects(&rack, 0).await;
    assert!(
        baseline.keys().any(|k| k.ends_with("ComputerSystem.Reset")),
        "an in-band round powers the server on: {baseline:?}"
    );
    for (i, at) in ONBOARDING.iter().enumerate() {
        let b = i + 1;
        kill_at(&mut procs, "discovery", &normal, at);
        rack.register(&site, b).await;
        resume_after_kill(&mut procs, "discovery", &normal, at).await;
        wait_states(
            &site,
            b + 1,
            "Available",
            &format!("onboarded after a kill at {at}"),
        )
        .await;
        assert_eq!(
            settled_side_effects(&rack, b).await,
            baseline,
            "killed at {at}: the BMC got the undisturbed round's requests, each once"
        );
    }
    // A user-requested BMC reset, killed after its record and after its request.
    let bmcs: Api<api::bmc::BMC> = Api::all(site.client.clone());
    let manager_resets = |rack: &Rack| -> u64 {
        side_effects(rack, 0)
            .iter()
            .filter(|(k, _)| k.ends_with("Manager.Reset"))
            .map(|(_, n)| *n)
            .sum()
    };
    for at in RESET {
        let before = manager_resets(&rack);
        kill_at(&mut procs, "discovery", &normal, at);
        bmcs.patch(
            &rack.bmc_names[0],
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "annotations": { "metal.ironcore.dev/operation": "graceful-restart-bmc" } }
            })),
        )
        .await
        .expect("request a reset");
        resume_after_kill(&mut procs, "discovery", &normal, at).await;
        eventually(
            &format!("reset done after a kill at {at}"),
            LONG,
            async || {
                let b = bmcs.get(&rack.bmc_names[0]).await.ok()?;
                let pending = b.annotations().contains_key("metal.ironcore.dev/operation");
                (!pending && b.status?.state?.as_str() == "Enabled").then_some(())
            },
        )
        .await;
        settled_side_effects(&rack, 0).await;
        assert_eq!(
            manager_resets(&rack) - before,
            1,
            "killed at {at}: one Manager.Reset"
        );
    }
    // A BMCUser with a generated password: killed after the secret, after the write's record
    // and after the write. Each user ends with one secret, effective, written once.
    const USER: [&str; 3] = [
        "bmc-secret-created",
        "bmc-account-write-recorded",
        "bmc-account-written",
    ];
    let users: Api<api::bmcuser::BMCUser> = Api::all(site.client.clone());
    let secrets: Api<api::bmcsecret::BMCSecret> = Api::all(site.client.clone());
    let mut before = settled_side_effects(&rack, 0).await;
    let mut baseline = None;
    for (i, at) in undisturbed_then(&USER) {
        if let Some(at) = at {
            kill_at(&mut procs, "discovery", &normal, at);
        }
        let name = format!("{}-ops-{i}", site.run);
        let user: api::bmcuser::BMCUser = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCUser",
            "metadata": { "name": name, "labels": site.labels() },
            "spec": {
                "userName": format!("ops{i}"), "roleID": "Operator",
                "bmcRef": { "name": rack.bmc_names[0] },
            },
        }))
        .expect("user");
        users
            .create(&Default::default(), &user)
            .await
            .expect("create user");
        if let Some(at) = at {
            resume_after_kill(&mut procs, "discovery", &normal, at).await;
        }
        let what = at.map_or("undisturbed".to_string(), |a| format!("killed at {a}"));
        let u = eventually(&format!("user effective ({what})"), LONG, async || {
            let u = users.get(&name).await.ok()?;
            let effective = u
                .status
                .as_ref()?
                .effective_bmc_secret_ref
                .as_ref()?
                .name
                .clone();
            (u.spec.bmc_secret_ref.as_ref()?.name == effective).then_some(u)
        })
        .await;
        let owned: Vec<String> = secrets
            .list(&ListParams::default())
            .await
            .expect("secrets")
            .items
            .into_iter()
            .filter(|s| {
                s.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == u.metadata.uid.as_ref())
            })
            .map(|s| s.name_any())
            .collect();
        assert_eq!(owned.len(), 1, "{what}: one generated secret: {owned:?}");
        let after = settled_side_effects(&rack, 0).await;
        let spent = delta(&before, &after);
        before = after;
        same_as_undisturbed(&mut baseline, spent, "/AccountService/Accounts", &what);
    }
}

/// Rounds of a kill suite: first undisturbed (`None`), then killed at each step in turn.
fn undisturbed_then(steps: &[&'static str]) -> impl Iterator<Item = (usize, Option<&'static str>)> {
    std::iter::once(None)
        .chain(steps.iter().copied().map(Some))
        .enumerate()
}

/// Keeps the undisturbed round's requests (which must include one whose key contains
/// `marker`) and checks that every killed round sent exactly those.
fn same_as_undisturbed(
    baseline: &mut Option<BTreeMap<String, u64>>,
    spent: BTreeMap<String, u64>,
    marker: &str,
    what: &str,
) {
    match baseline {
        None => {
            assert!(
                spent.keys().any(|k| k.contains(marker)),
                "{what}: {spent:?}"
            );
            *baseline = Some(spent);
        }
        Some(want) => assert_eq!(
            &spent, want,
            "{what}: the undisturbed round's requests, each once"
        ),
    }
}

/// The difference `after - before` of two side-effect tallies.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_killed_at_every_boot_and_power_off_step_sends_each_request_once() {
    const BOOT: [&str; 3] = ["boot-recorded", "boot-override-sent", "power-on-sent"];
    const RELEASE: [&str; 2] = ["power-off-recorded", "power-off-sent"];
    let site = Site::new("e2e-provkill").await;
    let rack = Rack::start(&site, "127.85.8.1", vec![default_group(1)]).await;
    let mut procs = start_all(&site, &rack, "out-of-band");
    let all = wait_states(&site, 1, "Available", "Available").await;
    let server = all[0].name_any();
    Api::<api::server::Server>::all(site.client.clone())
        .patch(
            &server,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "reclaimPolicy": "Recycle" } })),
        )
        .await
        .expect("recycle");
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    let normal = e2e::provisioning_args(&site, &rack);
    let power = async |want: &str| {
        wait_sim_power(&site, &rack, &server, want).await;
    };
    let released = async |c: &str| {
        eventually(&format!("claim {c} released"), LONG, async || {
            claims.get_opt(c).await.ok()?.is_none().then_some(())
        })
        .await;
        wait_states(&site, 1, "Available", "Available again").await;
    };
    // The undisturbed claim and release: what one cycle sends to the BMC.
    let start = settled_side_effects(&rack, 0).await;
    claim(&site, &rack, "c-0", json!({ "matchLabels": site.labels() })).await;
    bound_server(&site, "c-0").await;
    power("On").await;
    claims
        .delete("c-0", &DeleteParams::default())
        .await
        .expect("delete");
    released("c-0").await;
    power("Off").await;
    let mut before = settled_side_effects(&rack, 0).await;
    let baseline = delta(&start, &before);
    assert!(
        baseline.keys().any(|k| k.ends_with("ComputerSystem.Reset")),
        "a cycle powers on and off: {baseline:?}"
    );
    for (round, (at, booting)) in BOOT
        .iter()
        .map(|a| (a, true))
        .chain(RELEASE.iter().map(|a| (a, false)))
        .enumerate()
    {
        let c = format!("c-{}", round + 1);
        if booting {
            kill_at(&mut procs, "provisioning", &normal, at);
            claim(&site, &rack, &c, json!({ "matchLabels": site.labels() })).await;
            resume_after_kill(&mut procs, "provisioning", &normal, at).await;
            power("On").await;
            claims
                .delete(&c, &DeleteParams::default())
                .await
                .expect("delete");
        } else {
            claim(&site, &rack, &c, json!({ "matchLabels": site.labels() })).await;
            bound_server(&site, &c).await;
            power("On").await;
            kill_at(&mut procs, "provisioning", &normal, at);
            claims
                .delete(&c, &DeleteParams::default())
                .await
                .expect("delete");
            resume_after_kill(&mut procs, "provisioning", &normal, at).await;
        }
        released(&c).await;
        power("Off").await;
        let after = settled_side_effects(&rack, 0).await;
        assert_eq!(
            delta(&before, &after),
            baseline,
            "killed at {at}: the cycle sent the undisturbed cycle's requests, each once"
        );
        before = after;
    }
}

/// The boot path over HTTPS end to end: the boot server and the registry serve TLS with a
/// site CA; the firmware (trusting only that CA) fetches every script and ignition over
/// `https://`, the probe posts its inventory over `https://`, a claim boots; and the boot
/// server answers no plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_discovery_and_a_claim_boot_over_https() {
    let site = Site::new("e2e-https").await;
    let rack = Rack::start_https(&site, "127.85.9.1", vec![default_group(1)]).await;
    assert!(rack.boot_server.starts_with("https://"));
    let _procs = start_all(&site, &rack, "in-band");
    let all = wait_states(
        &site,
        1,
        "Available",
        "Available after in-band discovery over HTTPS",
    )
    .await;
    let (bmc, sys, _, _) = sim_system(&rack, &all[0]);
    let discovery = rack.firmware.records(bmc, &sys);
    let probe = discovery
        .iter()
        .find_map(|r| r.probe.clone())
        .expect("the probe ran");
    assert!(
        probe.starts_with("posted to https://"),
        "the probe posted over TLS: {probe}"
    );
    claim(&site, &rack, "web", json!({ "matchLabels": site.labels() })).await;
    bound_server(&site, "web").await;
    let records = eventually("the claim's boot fetched its ignition", LONG, async || {
        let r = rack.firmware.records(bmc, &sys);
        (r.len() > discovery.len() && r.last()?.ignition.is_some()).then_some(r)
    })
    .await;
    let fetches: Vec<_> = records.iter().flat_map(|r| r.fetches.iter()).collect();
    assert!(!fetches.is_empty());
    for f in &fetches {
        assert!(
            f.url.starts_with("https://") && f.status == 200,
            "every boot fetch is HTTPS and answered: {f:?}"
        );
    }
    // No plain HTTP on the boot server's port: a request in clear gets no HTTP answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(&rack.boot_addr)
        .await
        .expect("connect");
    s.write_all(b"GET /boot.ipxe HTTP/1.1\r\nHost: boot\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "the boot server must not answer plain HTTP: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// metal-maintenance as a process, SIGKILLed after each BIOS settings step (write, reboot
/// record, reboot), each BIOS version step (update record and request, reboot record and
/// request) and each park step (power-off record and request), one server per killed round:
/// every round sends the mutating requests of the undisturbed round on another server, each
/// once, and ends Applied / Completed / Parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_killed_at_every_bios_and_park_step_sends_each_request_once() {
    use api::biossettings::{BIOSSettings, BIOSSettingsState};
    use api::biosversion::{BIOSVersion, VersionState};
    const SETTINGS: [&str; 3] = [
        "bios-settings-sent",
        "bios-reboot-recorded",
        "bios-reboot-sent",
    ];
    const VERSION: [&str; 4] = [
        "bios-update-recorded",
        "bios-update-sent",
        "bios-update-reboot-recorded",
        "bios-update-reboot-sent",
    ];
    const PARK: [&str; 2] = ["park-power-off-recorded", "park-power-off-sent"];
    let site = Site::new("e2e-mtkill").await;
    let rack = Rack::start(&site, "127.85.10.1", vec![default_group(1 + VERSION.len())]).await;
    let mut procs = start_all(&site, &rack, "out-of-band");
    let all = wait_states(&site, 1 + VERSION.len(), "Available", "Available").await;
    let normal = e2e::maintenance_args(&site, &rack);
    let mut names: Vec<(usize, String)> = all
        .iter()
        .map(|s| (sim_system(&rack, s).0, s.name_any()))
        .collect();
    names.sort();
    let settings: Api<BIOSSettings> = Api::all(site.client.clone());
    let versions: Api<BIOSVersion> = Api::all(site.client.clone());

    // One round per server: undisturbed on the first, killed at one step on each other.
    async fn round<K, F>(
        procs: &mut BTreeMap<&'static str, Process>,
        rack: &Rack,
        normal: &[String],
        server: (usize, &str),
        at: Option<&str>,
        create: F,
        done: impl AsyncFn() -> bool,
    ) -> BTreeMap<String, u64>
    where
        F: AsyncFnOnce() -> K,
    {
        // Each server's previous round ended settled.
        let before = side_effects(rack, server.0);
        if let Some(at) = at {
            kill_at(procs, "maintenance", normal, at);
        }
        create().await;
        if let Some(at) = at {
            resume_after_kill(procs, "maintenance", normal, at).await;
        }
        let what = format!("{} {at:?}", server.1);
        eventually(&what, LONG, async || done().await.then_some(())).await;
        delta(&before, &settled_side_effects(rack, server.0).await)
    }

    let mut baseline = None;
    for (i, at) in undisturbed_then(&SETTINGS) {
        let (b, name) = &names[i];
        let s = server_by_name(&site, name).await;
        let version = s
            .status
            .as_ref()
            .and_then(|st| st.bios_version.clone())
            .expect("BIOS version");
        let bs_name = format!("{name}-virt");
        let spent = round(
            &mut procs,
            &rack,
            &normal,
            (*b, name),
            at,
            async || {
                let bs: BIOSSettings = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "BIOSSettings",
                    "metadata": { "name": bs_name },
                    "spec": {
                        "version": version, "serverRef": { "name": name },
                        "serverMaintenancePolicy": "Enforced",
                        "settingsFlow": [{ "name": "virtualization", "priority": 1,
                                           "settings": { "ProcVirtualization": "Disabled" } }],
                    },
                }))
                .expect("settings");
                settings
                    .create(&Default::default(), &bs)
                    .await
                    .expect("create settings");
            },
            async || {
                let applied = settings
                    .get(&bs_name)
                    .await
                    .ok()
                    .and_then(|b| b.status?.state)
                    == Some(BIOSSettingsState::Applied);
                applied && state(&server_by_name(&site, name).await) == "Available"
            },
        )
        .await;
        same_as_undisturbed(
            &mut baseline,
            spent,
            "/Bios",
            &format!("BIOS settings {at:?}"),
        );
        settings
            .delete(&bs_name, &Default::default())
            .await
            .expect("delete settings");
    }

    let mut baseline = None;
    for (i, at) in undisturbed_then(&VERSION) {
        let (b, name) = &names[i];
        let bv_name = format!("{name}-bios");
        let spent = round(
            &mut procs,
            &rack,
            &normal,
            (*b, name),
            at,
            async || {
                let bv: BIOSVersion = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "BIOSVersion",
                    "metadata": { "name": bv_name },
                    "spec": {
                        "version": "9.9.9", "serverRef": { "name": name },
                        "serverMaintenancePolicy": "Enforced",
                        "image": { "URI": "http://127.0.0.1:9/bios-9.9.9.bin" },
                    },
                }))
                .expect("version");
                versions
                    .create(&Default::default(), &bv)
                    .await
                    .expect("create version");
            },
            async || {
                let completed = versions
                    .get(&bv_name)
                    .await
                    .ok()
                    .and_then(|v| v.status?.state)
                    == Some(VersionState::Completed);
                completed && state(&server_by_name(&site, name).await) == "Available"
            },
        )
        .await;
        same_as_undisturbed(
            &mut baseline,
            spent,
            "SimpleUpdate",
            &format!("BIOS version {at:?}"),
        );
    }

    // Park a claimed (powered-on) server, undisturbed and killed at each park step; each park
    // costs one power-off, then an undisturbed unpark boots the claim again.
    let (b, name) = names[0].clone();
    claim(
        &site,
        &rack,
        "parked",
        json!({ "matchLabels": site.labels() }),
    )
    .await;
    let bound = bound_server(&site, "parked").await;
    let (b, name) = names
        .iter()
        .find(|(_, n)| *n == bound)
        .cloned()
        .unwrap_or((b, name));
    wait_sim_power(&site, &rack, &name, "On").await;
    for (_, at) in undisturbed_then(&PARK) {
        let spent = round(
            &mut procs,
            &rack,
            &normal,
            (b, &name),
            at,
            async || annotate(&site, &name, "park").await,
            async || {
                let s = server_by_name(&site, &name).await;
                state(&s) == "Parked"
                    && format!(
                        "{:?}",
                        rack.sim
                            .system_state(b, &sim_system(&rack, &s).1)
                            .map(|x| x.power_state)
                            .ok()
                    ) == "Some(Off)"
            },
        )
        .await;
        let offs: u64 = spent
            .iter()
            .filter(|(k, _)| k.ends_with("ComputerSystem.Reset"))
            .map(|(_, n)| *n)
            .sum();
        assert_eq!(offs, 1, "park killed at {at:?}: one power-off: {spent:?}");
        annotate(&site, &name, "unpark").await;
        eventually("unparked and booted", LONG, async || {
            (state(&server_by_name(&site, &name).await) == "Reserved").then_some(())
        })
        .await;
        wait_sim_power(&site, &rack, &name, "On").await;
    }
}
