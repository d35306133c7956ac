//! Claim benchmark across all controllers (run as processes, as in production):
//! with N Available servers (default 1,000) discovered from simulated BMCs, the time from
//! ServerClaim creation to `Bound` and to the power-on request reaching the BMC, p50 / p99, for
//! one claim at a time and for 100 claims at once; then each controller's peak RSS, and one
//! `bench claim key=value ...` line of it all to compare runs.
//!
//! ```sh
//! cargo build --release -p metal-discovery -p metal-reservation -p metal-provisioning --bins
//! cargo run --release -p metal-e2e --example claim_bench -- [servers] [rounds]
//! ```

use api::serverclaim::ServerClaim;
use e2e::{Process, Rack, Site};
use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn fmt(v: &[Duration]) -> String {
    format!(
        "p50 {:>7.1?}  p99 {:>7.1?}  max {:>7.1?}  (n={})",
        pct(v.to_vec(), 0.5),
        pct(v.to_vec(), 0.99),
        v.iter().max().copied().unwrap_or_default(),
        v.len()
    )
}

type Seen = Arc<Mutex<HashMap<String, (SystemTime, String)>>>;

/// Records when each claim was first seen Bound (and to which server).
fn watch_bound(site: &Site) -> Seen {
    let seen: Seen = Arc::default();
    let api: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    let s = seen.clone();
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(c)) = stream.next().await {
            let bound = c
                .status
                .as_ref()
                .and_then(|st| st.phase.as_ref())
                .is_some_and(|p| format!("{p:?}") == "Bound");
            if let (true, Some(server)) = (bound, c.spec.server_ref.as_ref()) {
                let name = c.metadata.name.clone().unwrap_or_default();
                s.lock()
                    .expect("lock")
                    .entry(name)
                    .or_insert((SystemTime::now(), server.name.clone()));
            }
        }
    });
    seen
}

/// The time the server's system powered on after `after` (the simulator's boot record).
fn power_on_at(
    rack: &Rack,
    site_server: &api::server::Server,
    after: SystemTime,
) -> Option<SystemTime> {
    let (bmc, sys, _, _) = e2e::sim_system(rack, site_server);
    let state = rack.sim.system_state(bmc, &sys).ok()?;
    state
        .boot_history
        .iter()
        .map(|r| SystemTime::from(r.time))
        .find(|t| *t >= after)
}

async fn run_round(
    site: &Site,
    rack: &Rack,
    seen: &Seen,
    names: &[String],
) -> (Vec<Duration>, Vec<Duration>) {
    let t0 = SystemTime::now();
    let creates = names
        .iter()
        .map(|n| e2e::claim(site, rack, n, json!({ "matchLabels": site.labels() })));
    futures::future::join_all(creates).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = {
            let s = seen.lock().expect("lock");
            names.iter().all(|n| s.contains_key(n))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut bind = Vec::new();
    let mut power = Vec::new();
    let bound: Vec<(SystemTime, String)> = {
        let s = seen.lock().expect("lock");
        names.iter().filter_map(|n| s.get(n).cloned()).collect()
    };
    for (at, server) in bound {
        bind.push(at.duration_since(t0).unwrap_or_default());
        let srv = e2e::server_by_name(site, &server).await;
        let on = e2e::eventually(
            "power-on at the BMC",
            Duration::from_secs(600),
            async || power_on_at(rack, &srv, t0),
        )
        .await;
        power.push(on.duration_since(t0).unwrap_or_default());
    }
    (bind, power)
}

/// The e2e flows use 3 s leases for fast fail-over tests; a benchmark runs with the production
/// default, as a deployment would.
fn production_lease(args: Vec<String>) -> Vec<String> {
    args.into_iter()
        .map(|a| {
            if a.starts_with("--lease-duration=") {
                "--lease-duration=15s".to_string()
            } else {
                a
            }
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let site = Site::new("bench").await;
    let mut group = e2e::default_group(n);
    group.knobs.power_delay_ms = 0;
    let rack = Rack::start(&site, "127.120.0.1", vec![group]).await;
    let mut disc = e2e::discovery_args(&site, &rack, "out-of-band");
    disc.push("--concurrency=64".into());
    let procs = [
        Process::start(&site, "discovery", production_lease(disc)),
        Process::start(
            &site,
            "reservation",
            production_lease(e2e::reservation_args(&site)),
        ),
        Process::start(
            &site,
            "provisioning",
            production_lease(e2e::provisioning_args(&site, &rack)),
        ),
    ];
    let started = Instant::now();
    // Onboarding a large fleet outlasts the flows' two-minute waits: about 1.5 s per 100.
    let onboarding = Duration::from_secs(120 + n as u64 * 3 / 20);
    e2e::eventually("all servers Available", onboarding, async || {
        let all = e2e::servers(&site).await;
        (all.len() == n && all.iter().all(|s| e2e::state(s) == "Available")).then_some(())
    })
    .await;
    println!("{n} servers Available after {:.1?}", started.elapsed());
    let seen = watch_bound(&site);

    let mut bind1 = Vec::new();
    let mut power1 = Vec::new();
    for r in 0..rounds {
        let (b, p) = run_round(&site, &rack, &seen, &[format!("single-{r}")]).await;
        bind1.extend(b);
        power1.extend(p);
    }
    println!("1 claim at a time ({rounds} rounds):");
    println!("  claim -> Bound          {}", fmt(&bind1));
    println!("  claim -> power-on (BMC) {}", fmt(&power1));

    let names: Vec<String> = (0..100).map(|i| format!("burst-{i}")).collect();
    let (b, p) = run_round(&site, &rack, &seen, &names).await;
    println!("100 claims at once:");
    println!("  claim -> Bound          {}", fmt(&b));
    println!("  claim -> power-on (BMC) {}", fmt(&p));

    let mut rss = String::new();
    for p in &procs {
        let mib = p.peak_rss_kib().unwrap_or_default() as f64 / 1024.0;
        println!("metal-{:<13} peak RSS {mib:>7.1} MiB", p.name);
        rss.push_str(&format!(" {}_peak_rss_mib={mib:.1}", p.name));
    }
    let ms = |v: &[Duration], q| pct(v.to_vec(), q).as_secs_f64() * 1000.0;
    println!(
        "bench claim servers={n} rounds={rounds} single_bound_p99_ms={:.0} single_power_p99_ms={:.0} burst100_bound_p50_ms={:.0} burst100_bound_p99_ms={:.0} burst100_power_p99_ms={:.0}{rss}",
        ms(&bind1, 0.99),
        ms(&power1, 0.99),
        ms(&b, 0.5),
        ms(&b, 0.99),
        ms(&p, 0.99),
    );
}
