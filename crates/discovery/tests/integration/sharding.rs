//! Automatic sharding with the binary as processes: two replicas divide the BMCs through shard
//! Leases, and when one is SIGKILLed mid-onboarding, then the other mid-reset, the survivor
//! takes its shards within about a lease duration. No BMC is worked by two replicas: while both
//! run, each BMC sees every request once, and across both kills every BMC reset is sent once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, Patch, PatchParams};
use metal_bmc_sim::{Knobs, TemplateSource};
use serde_json::json;

use crate::support::*;

const SHARDS: usize = 8;
const LEASE: Duration = Duration::from_secs(3);
const RESET: &str = "/redfish/v1/Managers/BMC/Actions/Manager.Reset";

fn spawn(h: &Harness, identity: &str, log: &Path) -> tokio::process::Child {
    let shards = SHARDS.to_string();
    spawn_discovery(
        h,
        log,
        &[
            "--bmc-reset-wait",
            "1s",
            "--leader-elect",
            "--lease-namespace",
            &h.ns,
            "--lease-name",
            "shards",
            "--lease-duration",
            "3s",
            "--shards",
            &shards,
            "--identity",
            identity,
        ],
    )
}

/// Holder of each shard Lease (shard name → holder; released shards hold "").
async fn holders(h: &Harness) -> BTreeMap<String, String> {
    Api::<Lease>::namespaced(h.client.clone(), &h.ns)
        .list(&ListParams::default().labels("metal.ironcore.dev/shard-role=shard"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|l| {
            let holder = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
            (l.metadata.name.unwrap_or_default(), holder)
        })
        .collect()
}

/// Waits until every shard is held and the holders are exactly `who`; returns the split.
async fn divided(h: &Harness, who: &[&str], what: &str) -> BTreeMap<String, String> {
    let want: BTreeSet<String> = who.iter().map(|s| s.to_string()).collect();
    eventually(what, Duration::from_secs(60), async || {
        let hs = holders(h).await;
        let by: BTreeSet<String> = hs.values().cloned().collect();
        (hs.len() == SHARDS && by == want).then_some(hs)
    })
    .await
}

#[tokio::test]
async fn replicas_divide_the_bmcs_and_take_over_from_a_killed_one() {
    let n = 16;
    let mut g = group(n, TemplateSource::default());
    g.knobs = Knobs {
        latency_ms: 60,
        ..fast_knobs()
    };
    let sim = sim(rack("127.75.0.1", vec![g])).await;
    let h = Harness::without_controllers("shard").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("discovery.log");
    let mut a = spawn(&h, "replica-a", &log);
    let mut b = spawn(&h, "replica-b", &log);
    let split = divided(&h, &["replica-a", "replica-b"], "shards divided").await;
    let per = |who: &str| split.values().filter(|v| *v == who).count();
    eprintln!(
        "divided: replica-a {} shards, replica-b {}",
        per("replica-a"),
        per("replica-b")
    );

    // Onboarding with both: each BMC is worked by one replica, so each request is sent once.
    let infos = sim.bmcs();
    let mut bmcs = Vec::new();
    for info in &infos[..n / 2] {
        bmcs.push(h.add_bmc(info, &[]).await);
    }
    eventually(
        "first half Available",
        Duration::from_secs(90),
        async || (h.available().await == n / 2).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..n / 2 {
        let counts = sim.request_counts(i).unwrap();
        let repeated: Vec<_> = counts.by_request.iter().filter(|(_, c)| **c != 1).collect();
        assert!(
            repeated.is_empty(),
            "BMC {i} was worked twice: {repeated:?}"
        );
    }

    // SIGKILL replica-b in the middle of onboarding the second half.
    for info in &infos[n / 2..] {
        bmcs.push(h.add_bmc(info, &[]).await);
    }
    eventually(
        "second half under way",
        Duration::from_secs(90),
        async || (h.available().await > n / 2).then_some(()),
    )
    .await;
    b.kill().await.expect("SIGKILL replica-b");
    let killed = Instant::now();
    divided(&h, &["replica-a"], "replica-a holds every shard").await;
    let takeover = killed.elapsed();
    eventually(
        "all Available after the kill",
        Duration::from_secs(120),
        async || (h.available().await == n).then_some(()),
    )
    .await;
    let servers = h.servers().await;
    let names: BTreeSet<String> = servers
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let want: BTreeSet<String> = bmcs.iter().map(|b| format!("{b}-system-0")).collect();
    assert_eq!(names, want, "one Server per system, none duplicated");

    // replica-b comes back and gets shards again; then every BMC is reset and replica-a is
    // SIGKILLed while the resets are in flight.
    let mut b = spawn(&h, "replica-b", &log);
    divided(&h, &["replica-a", "replica-b"], "shards divided again").await;
    let api = Api::<api::bmc::BMC>::all(h.client.clone());
    let op = json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "graceful-restart-bmc"}}});
    for bmc in &bmcs {
        api.patch(bmc, &PatchParams::default(), &Patch::Merge(&op))
            .await
            .unwrap();
    }
    // Restarts that took effect: a reset POST that replica-a's death cut off before the BMC
    // handled it is counted as a request, rightly sent again, and restarts the BMC once.
    let resets = || {
        (0..n)
            .map(|i| sim.restarts(i).unwrap())
            .collect::<Vec<u64>>()
    };
    let posts = || {
        (0..n)
            .map(|i| sim.request_counts(i).unwrap().get("POST", RESET))
            .sum::<u64>()
    };
    eventually("resets under way", Duration::from_secs(60), async || {
        (resets().iter().sum::<u64>() >= 1).then_some(())
    })
    .await;
    let at_kill = resets().iter().sum::<u64>();
    a.kill().await.expect("SIGKILL replica-a");
    let killed = Instant::now();
    divided(&h, &["replica-b"], "replica-b holds every shard").await;
    let takeover2 = killed.elapsed();
    eventually("every reset done", Duration::from_secs(120), async || {
        let mut done = 0;
        for bmc in &bmcs {
            let b = api.get(bmc).await.ok()?;
            let pending = b
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("metal.ironcore.dev/operation"));
            done += usize::from(!pending);
        }
        (done == n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(resets(), vec![1; n], "every BMC reset exactly once");
    let resent = posts() - n as u64;
    eprintln!(
        "bench shard_handover takeover_onboarding_s={:.1} takeover_reset_s={:.1} lease_s={} resets_before_kill={at_kill} reset_posts_cut_off={resent}",
        takeover.as_secs_f64(),
        takeover2.as_secs_f64(),
        LEASE.as_secs()
    );
    // A dead replica's shards move after its Leases stop changing for a lease duration, seen
    // by the survivor's clock, plus at most two rounds (0.4 s each at this lease duration).
    let bound = LEASE + Duration::from_secs(3);
    assert!(takeover <= bound, "hand-over took {takeover:?}");
    assert!(takeover2 <= bound, "hand-over took {takeover2:?}");
    b.kill().await.unwrap();
    sim.shutdown().await;
}
