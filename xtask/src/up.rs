//! `cargo xtask up`: the whole system on this machine. A real control plane with the CRDs, a
//! simulated rack (mixed templates, network-boot firmware), an image registry, and the four
//! controllers as processes acting as their kustomize ServiceAccounts. It then walks one claim
//! through the loop (bind → network boot → release → powered off → Available), a BIOS change,
//! a BMC firmware update and a park/unpark, and leaves
//! everything running for kubectl until Ctrl-C (`--exit-after-demo` stops after the demo).
//!
//! All along, a live view ([`crate::live`]) watches the run's Servers: on a terminal a table
//! (state, power, claim, BMC, when the state last changed) redrawn in place above the demo's
//! output, elsewhere one line per state change (`12.3s server-x Discovery -> Available`). The
//! time from the command's start to the first and to all servers Available is printed as
//! `bench up first_available_s=... all_available_s=... servers=N`.

use crate::live::{self, Live};
use anyhow::Context as _;
use api::bmc::BMC;
use api::serverclaim::ServerClaim;
use e2e::{Process, Rack, Site};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use metal_bmc_sim::{GroupSpec, TemplateSource};
use serde_json::json;
use std::time::{Duration, Instant};

/// Options of `cargo xtask up`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Exit after the demo instead of staying up until Ctrl-C (non-interactive runs, tests).
    #[arg(long)]
    pub exit_after_demo: bool,
    /// Use the controller binaries already built next to xtask (skip `cargo build`).
    #[arg(long)]
    pub no_build: bool,
}

fn groups() -> Vec<GroupSpec> {
    let mut groups = vec![e2e::default_group(5)];
    for tree in [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ] {
        match e2e::shared_tree(tree) {
            Some(dir) => groups.push(GroupSpec {
                template: TemplateSource::Path(dir),
                ..e2e::default_group(1)
            }),
            None => groups[0].count += 1,
        }
    }
    groups
}

fn build_binaries() -> anyhow::Result<()> {
    let status = crate::cargo()
        .args([
            "build",
            "-q",
            "-p",
            "metal-discovery",
            "-p",
            "metal-reservation",
            "-p",
            "metal-provisioning",
            "-p",
            "metal-maintenance",
            "--bins",
        ])
        .current_dir(testenv::repo_root())
        .status()
        .context("building the controllers")?;
    anyhow::ensure!(status.success(), "building the controllers failed");
    Ok(())
}

/// The inventory of `servers`, one line each.
fn inventory(servers: &[api::server::Server]) -> Vec<String> {
    let mut lines = vec![format!(
        "  {:<30} {:<10} {:<22} {:<24} {:<16} {:>4} {:>5}",
        "SERVER", "STATE", "MANUFACTURER", "MODEL", "SERIAL", "NICS", "IPS"
    )];
    for s in servers {
        let st = s.status.clone().unwrap_or_default();
        let ips: usize = st.network_interfaces.iter().map(|n| n.ips.len()).sum();
        lines.push(format!(
            "  {:<30} {:<10} {:<22} {:<24} {:<16} {:>4} {:>5}",
            s.metadata.name.clone().unwrap_or_default(),
            e2e::state(s),
            st.manufacturer.unwrap_or_default(),
            st.model.unwrap_or_default(),
            st.serial_number.unwrap_or_default(),
            st.network_interfaces.len(),
            ips,
        ));
    }
    lines
}

/// Runs the bring-up until Ctrl-C (or to the end of the demo with `--exit-after-demo`).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = live::command_started();
    if !args.no_build {
        build_binaries()?;
        println!(
            "controllers built ({:.1?} since the command started)",
            started.elapsed()
        );
    }
    // Found once, before the view owns the terminal (locating the binaries prints a line).
    let kubectl = kubectl();
    let mut live = Live::start(started);
    let cp = testenv::shared();
    live.say(format!(
        "control plane ready in {:.1?} (CRDs installed from {})",
        cp.started_in(),
        testenv::crd_dir().display()
    ));
    let site = Site::new("metal").await;
    let n: usize = groups().iter().map(|g| g.count).sum();
    live.watch(
        site.client.clone(),
        &site.selector(),
        &format!("{}-", site.run),
        n,
    );
    let rack = Rack::start(&site, "127.0.1.1", groups()).await;
    // Two BMCs are inspected in-band (a discovery boot into the probe), the rest out-of-band.
    let bmcs: Api<BMC> = Api::all(site.client.clone());
    for name in rack.bmc_names.iter().take(2) {
        bmcs.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                api::constants::INSPECTION_ANNOTATION: "in-band"
            }}})),
        )
        .await?;
    }
    live.say(format!(
        "metal-bmc-sim: {} BMCs on 127.0.1.x:{} (CA {}), boot server {}, images on {}",
        rack.bmc_names.len(),
        rack.sim.port(),
        rack.ca_file.display(),
        rack.boot_server,
        rack.images.host
    ));
    let procs = [
        Process::start(
            &site,
            "discovery",
            e2e::discovery_args(&site, &rack, "out-of-band"),
        ),
        Process::start(&site, "reservation", e2e::reservation_args(&site)),
        Process::start(&site, "provisioning", e2e::provisioning_args(&site, &rack)),
        Process::start(&site, "maintenance", e2e::maintenance_args(&site, &rack)),
    ];
    for p in &procs {
        live.say(format!("metal-{}: admin http://{} ", p.name, p.admin));
    }
    live.say(format!(
        "controller logs, kubeconfigs: {}",
        site.dir.path().display()
    ));
    live.say(format!("namespace: {}", site.ns));

    // Ctrl-C during the demo stops it; the view restores the terminal either way.
    let interrupted = tokio::select! {
        r = demo(&live, &site, &rack, n) => { r?; false }
        _ = tokio::signal::ctrl_c() => true,
    };
    if !interrupted && !args.exit_after_demo {
        live.say(format!(
            "\nThe rack keeps running ({:.0?} so far). Use it:\n\n  export KUBECONFIG={}\n  {kubectl} get servers,bmcs -o wide\n  {kubectl} -n {} get serverclaims,servermaintenances\n  {kubectl} get biossettings,bmcversions\n\nPress Ctrl-C to stop.",
            live.elapsed(),
            cp.kubeconfig().display(),
            site.ns,
        ));
        tokio::signal::ctrl_c().await?;
    }
    live.finish();
    drop(procs);
    rack.sim.shutdown().await;
    Ok(())
}

/// The demo: discovery (timed), a claim through the loop, day-2 operations, park/unpark.
async fn demo(live: &Live, site: &Site, rack: &Rack, n: usize) -> anyhow::Result<()> {
    live.say(format!("\n== discovery ({} in-band)", 2));
    let servers = e2e::wait_states(site, n, "Available", "all servers Available").await;
    // The watch may see the last server Available a moment after the listing above.
    let m = live.all_available(Duration::from_secs(30)).await;
    for line in inventory(&servers) {
        live.say(line);
    }
    let at = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    live.say(format!(
        "  from the command's start: first server Available after {}, all {n} after {}",
        at(m.first_available),
        at(m.all_available)
    ));
    live.say(live::bench_line(&m, n));

    live.say("\n== claim: ServerClaim demo (power On, image metal/demo-os:1.0)");
    let claim_started = Instant::now();
    e2e::claim(site, rack, "demo", json!({ "matchLabels": site.labels() })).await;
    let name = e2e::bound_server(site, "demo").await;
    live.say(format!(
        "  bound to {name} in {:.1?}",
        claim_started.elapsed()
    ));
    let server = e2e::server_by_name(site, &name).await;
    let (bmc, sys, _, _) = e2e::sim_system(rack, &server);
    let record = e2e::eventually("the network boot", e2e::LONG, async || {
        rack.firmware
            .records(bmc, &sys)
            .into_iter()
            .rev()
            .find(|r| r.ignition.is_some())
    })
    .await;
    live.say(format!(
        "  booted in {:.1?}: kernel {}",
        claim_started.elapsed(),
        record.kernel.unwrap_or_default()
    ));
    for f in &record.fetches {
        live.say(format!("    GET {} -> {}", f.url, f.status));
    }

    live.say("\n== release: delete the claim");
    let claims: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    claims.delete("demo", &DeleteParams::default()).await?;
    e2e::eventually("the release", e2e::LONG, async || {
        claims.get_opt("demo").await.ok()?.is_none().then_some(())
    })
    .await;
    let power = rack.sim.system_state(bmc, &sys)?.power_state;
    let s = e2e::server_by_name(site, &name).await;
    live.say(format!(
        "  {name}: {} and powered {power:?} (BMC-confirmed)",
        e2e::state(&s)
    ));

    live.say(format!(
        "\n== day 2: BIOSSettings ProcVirtualization=Disabled for {name} (maintenance window, one reboot)"
    ));
    let day2_started = Instant::now();
    // The settings are meant for the BIOS version the server runs (an empty version is rejected).
    let bios_version = s
        .status
        .as_ref()
        .and_then(|st| st.bios_version.clone())
        .unwrap_or_default();
    let settings: Api<api::biossettings::BIOSSettings> = Api::all(site.client.clone());
    let bios: api::biossettings::BIOSSettings = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BIOSSettings",
        "metadata": { "name": format!("{name}-virtualization") },
        "spec": {
            "version": bios_version, "serverRef": { "name": name },
            "serverMaintenancePolicy": "Enforced",
            "settingsFlow": [{ "name": "virtualization", "priority": 1,
                               "settings": { "ProcVirtualization": "Disabled" } }],
        },
    }))?;
    settings.create(&Default::default(), &bios).await?;
    e2e::eventually("the BIOS settings", e2e::LONG, async || {
        let b = settings.get(&format!("{name}-virtualization")).await.ok()?;
        (b.status?.state? == api::biossettings::BIOSSettingsState::Applied).then_some(())
    })
    .await;
    let s = e2e::eventually("the hand-back", e2e::LONG, async || {
        let s = e2e::server_by_name(site, &name).await;
        s.spec.server_maintenance_ref.is_none().then_some(s)
    })
    .await;
    live.say(format!(
        "  applied in {:.1?}; the BIOS reports ProcVirtualization={}; {name} is {} again",
        day2_started.elapsed(),
        rack.sim
            .system_state(bmc, &sys)?
            .bios_changed
            .get("ProcVirtualization")
            .and_then(|v| v.as_str())
            .unwrap_or("(unchanged)"),
        e2e::state(&s)
    ));

    let bmc_name = s
        .spec
        .bmc_ref
        .as_ref()
        .map(|r| r.name.clone())
        .context("the server has a BMC")?;
    let before = rack
        .sim
        .system_state(bmc, &sys)?
        .bmc_version
        .unwrap_or_default();
    live.say(format!(
        "\n== day 2: BMCVersion 9.10.0 for BMC {bmc_name} (runs {before}; SimpleUpdate, the BMC's own restart waited out)"
    ));
    let fw_started = Instant::now();
    let versions: Api<api::bmcversion::BMCVersion> = Api::all(site.client.clone());
    let fw: api::bmcversion::BMCVersion = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BMCVersion",
        "metadata": { "name": format!("{bmc_name}-firmware") },
        "spec": {
            "version": "9.10.0", "bmcRef": { "name": bmc_name },
            "serverMaintenancePolicy": "Enforced",
            "image": { "URI": "http://127.0.0.1:9/bmc-9.10.0.bin" },
        },
    }))?;
    versions.create(&Default::default(), &fw).await?;
    let mut saw_dark = false;
    e2e::eventually("the BMC firmware update", e2e::LONG, async || {
        let v = versions.get(&format!("{bmc_name}-firmware")).await.ok()?;
        let st = v.status?;
        if api::conditions::get(&st.conditions, "BMCReachable").is_some_and(|c| c.status == "False")
        {
            saw_dark = true;
        }
        (st.state? == api::biosversion::VersionState::Completed).then_some(())
    })
    .await;
    let s = e2e::eventually("the hand-back", e2e::LONG, async || {
        let s = e2e::server_by_name(site, &name).await;
        s.spec.server_maintenance_ref.is_none().then_some(s)
    })
    .await;
    live.say(format!(
        "  installed in {:.1?}; the Manager reports {}{}; {name} is {} again",
        fw_started.elapsed(),
        rack.sim
            .system_state(bmc, &sys)?
            .bmc_version
            .unwrap_or_default(),
        if saw_dark {
            " (the BMC was unreachable while it restarted)"
        } else {
            ""
        },
        e2e::state(&s)
    ));

    live.say(format!(
        "\n== park / unpark {name} (annotation metal.ironcore.dev/operation)"
    ));
    let servers: Api<api::server::Server> = Api::all(site.client.clone());
    let annotate = async |value: &str| {
        servers
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": { "annotations": { "metal.ironcore.dev/operation": value } }
                })),
            )
            .await
    };
    annotate("park").await?;
    e2e::eventually("the park", e2e::LONG, async || {
        let s = e2e::server_by_name(site, &name).await;
        (e2e::state(&s) == "Parked").then_some(())
    })
    .await;
    live.say(format!(
        "  {name}: Parked, powered {:?}",
        rack.sim.system_state(bmc, &sys)?.power_state
    ));
    annotate("unpark").await?;
    let s = e2e::eventually("the unpark", e2e::LONG, async || {
        let s = e2e::server_by_name(site, &name).await;
        (e2e::state(&s) != "Parked").then_some(s)
    })
    .await;
    live.say(format!("  {name}: {} again", e2e::state(&s)));

    Ok(())
}

fn kubectl() -> String {
    testenv::Binaries::locate()
        .ok()
        .and_then(|b| b.kubectl)
        .map(|k| k.display().to_string())
        .unwrap_or_else(|| "kubectl".into())
}
