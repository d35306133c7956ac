//! The binary as a process, SIGKILLed in the middle of onboarding and restarted: no duplicate
//! Servers, none stuck.

use std::collections::BTreeSet;
use std::time::Duration;

use metal_bmc_sim::{Knobs, TemplateSource};

use crate::support::*;

fn spawn(h: &Harness, log: &std::path::Path) -> tokio::process::Child {
    spawn_discovery(h, log, &[])
}

#[tokio::test]
async fn sigkill_in_the_middle_of_onboarding_loses_nothing() {
    let n = 16;
    let mut g = group(n, TemplateSource::default());
    g.knobs = Knobs {
        latency_ms: 80,
        ..fast_knobs()
    };
    let sim = sim(rack("127.72.0.1", vec![g])).await;
    let h = Harness::without_controllers("sigkill").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("discovery.log");
    let mut bmcs = Vec::new();
    for info in sim.bmcs() {
        bmcs.push(h.add_bmc(&info, &[]).await);
    }
    let mut child = spawn(&h, &log);
    // Kill it once onboarding is under way but not finished.
    eventually(
        "onboarding under way",
        Duration::from_secs(90),
        async || (h.available().await >= 1).then_some(()),
    )
    .await;
    let done_at_kill = h.available().await;
    child.kill().await.expect("SIGKILL");
    assert!(
        done_at_kill < n,
        "killed before the end ({done_at_kill}/{n} available)"
    );

    let mut child = spawn(&h, &log);
    eventually(
        "all servers Available after the restart",
        Duration::from_secs(180),
        async || (h.available().await == n).then_some(()),
    )
    .await;
    let servers = h.servers().await;
    assert_eq!(servers.len(), n, "one Server per system, no duplicates");
    let uuids: BTreeSet<String> = servers.iter().map(|s| s.spec.system_uuid.clone()).collect();
    assert_eq!(uuids.len(), n, "distinct system UUIDs");
    let names: BTreeSet<String> = servers
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let want: BTreeSet<String> = bmcs.iter().map(|b| format!("{b}-system-0")).collect();
    assert_eq!(names, want);
    for s in &servers {
        let st = s.status.as_ref().unwrap();
        assert!(
            st.manufacturer.is_some() && !st.processors.is_empty(),
            "{:?} has its inventory",
            s.metadata.name
        );
    }
    child.kill().await.unwrap();
    eprintln!(
        "killed with {done_at_kill}/{n} Available; log: {}",
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    );
    sim.shutdown().await;
}
