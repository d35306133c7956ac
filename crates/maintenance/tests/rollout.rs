//! Set roll-outs against a real control plane and the BMC simulator: the `maxInMaintenance`
//! limit checked on every Server watch event, the pause after `pauseAfterFailures` failed
//! children (and resuming), and a BMCVersionSet rolling out BMC by BMC.

use api::biosversion::VersionState;
use api::bmcversion::BMCVersion;
use api::server::{Server, ServerState};
use api::sets::{BIOSVersionSet, BMCVersionSet};
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use metal_bmc_sim::Knobs;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

mod common;
use common::*;

impl Harness {
    async fn label_all(&self, key: &str, value: &str) {
        for i in 0..self.servers.len() {
            Api::<Server>::all(self.client.clone())
                .patch(
                    self.server_name(i),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "labels": { key: value } } })),
                )
                .await
                .unwrap();
        }
    }

    async fn create_bios_version_set(
        &self,
        name: &str,
        pool: &str,
        version: &str,
        rollout: serde_json::Value,
    ) {
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "BIOSVersionSet",
                "metadata": { "name": name },
                "spec": {
                    "serverSelector": { "matchLabels": { "pool": pool } },
                    "biosVersionTemplate": {
                        "version": version, "serverMaintenancePolicy": "Enforced",
                        "image": { "URI": format!("http://127.0.0.1:9/bios-{version}.bin") },
                        "retryPolicy": { "maxAttempts": 0 },
                    },
                    "rollout": rollout,
                },
            }),
            Api::<BIOSVersionSet>::all(self.client.clone()),
        )
        .await;
    }
}

/// Whether a server counts as in maintenance: taken, or held by a maintenance.
fn in_maintenance(s: &Server) -> bool {
    s.spec.server_maintenance_ref.is_some() || s.state() == Some(ServerState::Maintenance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_set_over_20_servers_never_has_more_than_5_in_maintenance() {
    let h = Harness::with("roll-limit", "127.43.1.1", 20, fast_tasks()).await;
    h.label_all("pool", "limit").await;
    // Every Server event from the start: the limit holds at each one.
    let servers: Api<Server> = Api::all(h.client.clone());
    let selector = format!("{SHARD}={}", h.shard);
    let mut events = watcher(servers, watcher::Config::default().labels(&selector))
        .applied_objects()
        .boxed();
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    // The watch is running before the set exists.
    let first = events.next().await.unwrap().unwrap();
    state.insert(first.name_any(), in_maintenance(&first));
    h.create_bios_version_set("limit", "limit", "2.7.0", json!({ "maxInMaintenance": 5 }))
        .await;
    let sets: Api<BIOSVersionSet> = Api::all(h.client.clone());
    let mut max = 0;
    let mut events_seen = 0;
    let done = tokio::time::timeout(Duration::from_secs(240), async {
        loop {
            tokio::select! {
                ev = events.next() => {
                    let s = ev.expect("watch open").expect("watch event");
                    state.insert(s.name_any(), in_maintenance(&s));
                    events_seen += 1;
                    let now = state.values().filter(|v| **v).count();
                    max = max.max(now);
                    assert!(now <= 5, "{now} servers in maintenance at once: {state:?}");
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let st = sets.get("limit").await.unwrap().status.unwrap_or_default();
                    assert!(st.in_maintenance.unwrap_or(0) <= 5, "status {st:?}");
                    if st.completed == Some(20) {
                        return;
                    }
                }
            }
        }
    })
    .await;
    if done.is_err() {
        let st = sets.get("limit").await.unwrap().status;
        panic!("not rolled out: {st:?}");
    }
    for i in 0..20 {
        assert_eq!(
            h.system(i).bios_version.as_deref(),
            Some("2.7.0"),
            "server {i}"
        );
        assert_eq!(h.updates(i), 1, "server {i}: one update");
    }
    assert!(
        max >= 3,
        "the roll-out ran servers side by side (at most {max} at once over {events_seen} events)"
    );
    println!("limit 5: at most {max} of 20 servers in maintenance over {events_seen} watch events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_pause_a_roll_out_until_the_threshold_is_raised() {
    let knobs = Knobs {
        task_fail: true,
        ..fast_tasks()
    };
    let h = Harness::with("roll-pause", "127.43.2.1", 6, knobs).await;
    h.label_all("pool", "pause").await;
    h.create_bios_version_set(
        "pause",
        "pause",
        "2.8.0",
        json!({ "maxInMaintenance": 2, "pauseAfterFailures": 2 }),
    )
    .await;
    let sets: Api<BIOSVersionSet> = Api::all(h.client.clone());
    // Paused with `want` or more failed and nothing left running (a child started when the
    // first failure freed its slot may fail after the pause).
    let paused = |want: i32| {
        let sets = sets.clone();
        async move {
            let mut last = None;
            let found = tokio::time::timeout(Duration::from_secs(90), async {
                loop {
                    let st = sets.get("pause").await.unwrap().status.unwrap_or_default();
                    if st.paused == Some(true)
                        && st.failed.unwrap_or(0) >= want
                        && st.failed == st.available
                    {
                        return st;
                    }
                    last = Some(st);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await;
            found.unwrap_or_else(|_| panic!("not paused after {want} failures: {last:?}"))
        }
    };
    let st = paused(2).await;
    let started = st.available.unwrap_or(0);
    assert!(started < 6, "the pause held some servers back: {st:?}");
    // Paused stays paused: no new child, no update sent to the rest.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = sets.get("pause").await.unwrap().status.unwrap_or_default();
    assert_eq!(
        (st.available, st.paused),
        (Some(started), Some(true)),
        "{st:?}"
    );
    let sent: u64 = (0..6).map(|i| h.updates(i)).sum();
    assert_eq!(
        sent, started as u64,
        "one update per started server, none after the pause"
    );
    // Raising the threshold resumes until it is reached again.
    let threshold = (started + 2).min(6);
    sets.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "rollout": { "pauseAfterFailures": threshold } } })),
    )
    .await
    .unwrap();
    let st = paused(threshold).await;
    assert!(st.available.unwrap_or(0) > started, "resumed: {st:?}");
    for i in 0..6 {
        h.wait_server(i, ServerState::Available, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bmc_version_set_updates_one_bmc_at_a_time() {
    let knobs = Knobs {
        task_duration_ms: 500,
        bmc_reset_downtime_ms: 1_000,
        ..Knobs::default()
    };
    let h = Harness::with("roll-bmc", "127.43.3.1", 3, knobs).await;
    for i in 0..3 {
        Api::<api::bmc::BMC>::all(h.client.clone())
            .patch(
                &format!("{}-{i}", h.shard),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { "rack": h.shard } } })),
            )
            .await
            .unwrap();
    }
    create(
        &h.client,
        json!({
            "apiVersion": api::API_VERSION, "kind": "BMCVersionSet",
            "metadata": { "name": "bmc-roll" },
            "spec": {
                "bmcSelector": { "matchLabels": { "rack": h.shard } },
                "bmcVersionTemplate": {
                    "version": "7.40.0", "serverMaintenancePolicy": "Enforced",
                    "image": { "URI": "http://127.0.0.1:9/bmc-7.40.0.bin" },
                },
                "rollout": { "maxInMaintenance": 1 },
            },
        }),
        Api::<BMCVersionSet>::all(h.client.clone()),
    )
    .await;
    let sets: Api<BMCVersionSet> = Api::all(h.client.clone());
    let children: Api<BMCVersion> = Api::all(h.client.clone());
    let done = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let running = children
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|c| {
                    c.labels().get("metal.ironcore.dev/set").map(String::as_str) == Some("bmc-roll")
                })
                .filter(|c| {
                    c.status.as_ref().and_then(|s| s.state) != Some(VersionState::Completed)
                })
                .count();
            assert!(running <= 1, "{running} BMCs updating at once");
            let mut held = 0;
            for i in 0..3 {
                held += usize::from(in_maintenance(&h.server(i).await));
            }
            assert!(held <= 1, "{held} servers in maintenance at once");
            let st = sets
                .get("bmc-roll")
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            if st.completed == Some(3) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("all three BMCs updated");
    assert_eq!(done.fully_labeled_bmcs, Some(3));
    for i in 0..3 {
        assert_eq!(
            h.system(i).bmc_version.as_deref(),
            Some("7.40.0"),
            "BMC {i}"
        );
        assert_eq!(h.updates(i), 1);
    }
}
