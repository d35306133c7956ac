//! Benchmark: a BMCVersionSet over N simulated BMCs with a roll-out limit: total time from the
//! set's creation to every BMC running the new firmware and every server handed back, against the
//! floor `ceil(N / limit) × one update's time` (one update measured alone first), Redfish
//! requests per server, and the controller's peak memory.
//!
//! ```text
//! cargo build --release -p metal-maintenance --bin metal-maintenance
//! cargo run --release -p metal-maintenance --example bmc_rollout_bench -- --servers 1000 --limit 100
//! ```
//!
//! Runs the real control plane (metal-testenv), a simulated rack of N BMCs (one system each,
//! TLS, BMC update task 2 s, 2 s of BMC downtime while it restarts into the new firmware), and
//! the release binary of the controller as its own process. Plays discovery (BMC, BMCSecret,
//! Server objects, Available and Off). Each BMC goes through the whole flow: a ServerMaintenance
//! for its server (Enforced), SimpleUpdate, the task followed, the BMC's restart waited out,
//! the version verified on the Manager, the maintenance released.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use api::biosversion::VersionState;
use api::bmcversion::BMCVersion;
use api::server::Server;
use kube::api::{Api, ListParams, PostParams};
use metal_bmc_sim::Knobs;
use serde_json::json;
use testenv::bench::{arg, rss_kib};

mod support;
use support::{Bench, LABEL};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n = arg("--servers", 100);
    let limit = arg("--limit", 10);
    let concurrency = arg("--concurrency", 32);
    let bench = Bench::start(
        "bmcroll",
        "127.63.0.1",
        n,
        Knobs {
            power_delay_ms: 0,
            session_limit: 64,
            task_duration_ms: 2_000,
            bmc_reset_downtime_ms: 2_000,
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

    let versions: Api<BMCVersion> = Api::all(client.clone());
    let servers: Api<Server> = Api::all(client.clone());
    let mine = ListParams::default().labels(&format!("{label}={shard}"));
    let handed_back = |list: Vec<Server>| {
        list.iter()
            .filter(|s| {
                s.state().map(|x| x.to_string()).as_deref() == Some("Available")
                    && s.spec.server_maintenance_ref.is_none()
            })
            .count()
    };

    // One update alone: the unit of the floor.
    let single: BMCVersion = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BMCVersion",
        "metadata": { "name": format!("{shard}-single") },
        "spec": {
            "version": "7.90.0", "bmcRef": { "name": format!("{shard}-0") },
            "serverMaintenancePolicy": "Enforced",
            "image": { "URI": "http://127.0.0.1:9/bmc-7.90.0.bin" },
        },
    }))?;
    let t = Instant::now();
    versions.create(&pp, &single).await?;
    loop {
        let v = versions.get(&format!("{shard}-single")).await?;
        let back = handed_back(servers.list(&mine).await?.items);
        if v.status.and_then(|s| s.state) == Some(VersionState::Completed) && back == n {
            break;
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("the single update did not complete (log {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let one = t.elapsed();
    println!("one BMC update alone: {:.2} s", one.as_secs_f64());
    // Two BMCVersions for one BMC would pull it back and forth: the single one goes first.
    versions
        .delete(&format!("{shard}-single"), &Default::default())
        .await?;
    while versions
        .get_opt(&format!("{shard}-single"))
        .await?
        .is_some()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..n {
        sim.reset_request_counts(i)?;
    }

    let sets: Api<api::sets::BMCVersionSet> = Api::all(client.clone());
    let set: api::sets::BMCVersionSet = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BMCVersionSet",
        "metadata": { "name": shard },
        "spec": {
            "bmcSelector": { "matchLabels": { label: shard } },
            "bmcVersionTemplate": {
                "version": "8.0.0", "serverMaintenancePolicy": "Enforced",
                "image": { "URI": "http://127.0.0.1:9/bmc-8.0.0.bin" },
            },
            "rollout": { "maxInMaintenance": limit },
        },
    }))?;
    let started = Instant::now();
    sets.create(&pp, &set).await?;

    let children = ListParams::default().labels(&format!("metal.ironcore.dev/set={shard}"));
    let mut peak = 0;
    let mut most_held = 0;
    loop {
        let done = versions
            .list(&children)
            .await?
            .items
            .iter()
            .filter(|v| v.status.as_ref().and_then(|s| s.state) == Some(VersionState::Completed))
            .count();
        peak = peak.max(rss_kib(pid).1);
        let list = servers.list(&mine).await?.items;
        let held = list
            .iter()
            .filter(|s| s.spec.server_maintenance_ref.is_some())
            .count();
        most_held = most_held.max(held);
        if done == n && handed_back(list) == n {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("not done: {done}/{n} updated (log {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = started.elapsed();
    let (rss_end, hwm) = rss_kib(pid);
    let (mut requests, mut updates) = (0u64, 0u64);
    for i in 0..n {
        let counts = sim.request_counts(i)?;
        requests += counts.by_request.values().sum::<u64>();
        updates += counts
            .by_request
            .iter()
            .filter(|(k, _)| k.starts_with("POST ") && k.ends_with("SimpleUpdate"))
            .map(|(_, v)| *v)
            .sum::<u64>();
    }
    let waves = n.div_ceil(limit);
    let floor = one.as_secs_f64() * waves as f64;
    println!(
        "BMCVersionSet over {n} BMCs, limit {limit}: all updated and handed back in {:.1} s",
        total.as_secs_f64()
    );
    println!(
        "  floor ceil({n}/{limit}) x one update = {waves} x {:.2} s = {floor:.1} s; overhead {:+.1} s ({:+.0}%)",
        one.as_secs_f64(),
        total.as_secs_f64() - floor,
        (total.as_secs_f64() / floor - 1.0) * 100.0
    );
    println!(
        "  per server: {:.1} Redfish requests, {:.2} SimpleUpdates; at most {most_held} servers held at once",
        requests as f64 / n as f64,
        updates as f64 / n as f64
    );
    println!(
        "  metal-maintenance RSS: idle {:.1} MiB, end {:.1} MiB, peak {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        peak.max(hwm) as f64 / 1024.0
    );
    println!(
        "bench bmc_rollout servers={n} limit={limit} total_s={:.1} floor_s={floor:.1} one_s={:.2} requests_per_server={:.1} peak_rss_mib={:.1}",
        total.as_secs_f64(),
        one.as_secs_f64(),
        requests as f64 / n as f64,
        peak.max(hwm) as f64 / 1024.0
    );
    bench.stop().await;
    Ok(())
}
