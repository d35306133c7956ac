//! Benchmark: a BIOSSettingsSet rolled out to N servers at once: time from the set's creation
//! to each server's settings verified (p50, p99, all), Redfish requests and reboots per server,
//! and the controller's memory.
//!
//! ```text
//! cargo build --release -p metal-maintenance --bin metal-maintenance
//! cargo run --release -p metal-maintenance --example rollout_bench -- --servers 1000 [--concurrency 32]
//! ```
//!
//! Runs the real control plane (metal-testenv), a simulated rack of N BMCs (one system each,
//! TLS, no artificial latency, instant power transitions), and the release binary of the
//! controller as its own process (so its RSS is its own). Plays discovery (BMC, BMCSecret,
//! Server objects, Available and Off). Every server goes through the whole flow: a
//! ServerMaintenance (Enforced), the server taken into Maintenance, the attribute written,
//! one reboot, verification, the maintenance released and the server handed back Available.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use api::biossettings::{BIOSSettings, BIOSSettingsState};
use api::server::Server;
use kube::api::{Api, ListParams, PostParams};
use metal_bmc_sim::Knobs;
use serde_json::json;
use testenv::bench::{arg, percentile, rss_kib};

/// The BIOS version the simulator's default template reports (the settings are meant for it).
const SIM_BIOS_VERSION: &str = "2.4.1";

mod support;
use support::{Bench, LABEL};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n = arg("--servers", 100);
    let concurrency = arg("--concurrency", 32);
    let bench = Bench::start(
        "rollout",
        "127.62.0.1",
        n,
        Knobs {
            power_delay_ms: 0,
            session_limit: 64,
            ..Knobs::default()
        },
        concurrency,
    )
    .await?;
    let (client, shard, sim, log, rss_idle) = (
        bench.client.clone(),
        bench.shard.clone(),
        &bench.sim,
        bench.log.clone(),
        bench.rss_idle,
    );
    let pid = bench.pid();
    let label = LABEL;
    let pp = PostParams::default();

    let sets: Api<api::sets::BIOSSettingsSet> = Api::all(client.clone());
    let set: api::sets::BIOSSettingsSet = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BIOSSettingsSet",
        "metadata": { "name": shard },
        "spec": {
            "serverSelector": { "matchLabels": { label: shard } },
            "biosSettingsTemplate": {
                "version": SIM_BIOS_VERSION, "serverMaintenancePolicy": "Enforced",
                "settingsFlow": [{ "name": "virtualization", "priority": 1,
                                   "settings": { "ProcVirtualization": "Disabled" } }],
            },
        },
    }))?;
    let started = Instant::now();
    sets.create(&pp, &set).await?;

    let bios: Api<BIOSSettings> = Api::all(client.clone());
    let servers: Api<Server> = Api::all(client.clone());
    let children = ListParams::default().labels(&format!("metal.ironcore.dev/set={shard}"));
    let mine = ListParams::default().labels(&format!("{label}={shard}"));
    let mut applied: HashMap<String, Duration> = HashMap::new();
    let mut peak = 0;
    loop {
        for b in bios.list(&children).await?.items {
            if b.status.as_ref().and_then(|s| s.state) == Some(BIOSSettingsState::Applied) {
                let name = b.metadata.name.clone().unwrap_or_default();
                applied.entry(name).or_insert_with(|| started.elapsed());
            }
        }
        peak = peak.max(rss_kib(pid).1);
        let back = servers
            .list(&mine)
            .await?
            .items
            .iter()
            .filter(|s| {
                s.state().map(|x| x.to_string()).as_deref() == Some("Available")
                    && s.spec.server_maintenance_ref.is_none()
            })
            .count();
        if applied.len() == n && back == n {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!(
                "not done: {}/{n} applied, {back}/{n} handed back (log {})",
                applied.len(),
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = started.elapsed();
    let (rss_end, hwm) = rss_kib(pid);
    let mut secs: Vec<f64> = applied.values().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let (mut requests, mut resets) = (0u64, 0u64);
    for i in 0..n {
        let counts = sim.request_counts(i)?;
        requests += counts.by_request.values().sum::<u64>();
        resets += counts
            .by_request
            .iter()
            .filter(|(k, _)| k.starts_with("POST ") && k.ends_with("ComputerSystem.Reset"))
            .map(|(_, v)| *v)
            .sum::<u64>();
    }
    println!(
        "rollout of {n} servers (concurrency {concurrency}): all verified and handed back in {:.1} s",
        total.as_secs_f64()
    );
    println!(
        "  set created → server's settings verified: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        percentile(&secs, 0.5),
        percentile(&secs, 0.99),
        percentile(&secs, 1.0)
    );
    println!(
        "  per server: {:.1} Redfish requests, {:.2} reboots",
        requests as f64 / n as f64,
        resets as f64 / n as f64
    );
    println!(
        "  metal-maintenance RSS: idle {:.1} MiB, end {:.1} MiB, peak {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        peak.max(hwm) as f64 / 1024.0
    );
    bench.stop().await;
    Ok(())
}
