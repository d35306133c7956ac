//! Control-plane faults with the four controllers as processes: kube-apiserver SIGKILLed and
//! restarted during onboarding and again during binding, etcd SIGKILLed and restarted in
//! between. Every watch drops and every request fails for a while; the controllers must resync
//! and lose nothing: every server onboarded, every claim bound and booted once, no BMC request
//! repeated. Its own test binary, so the restarts disturb no other test.

use e2e::{
    Process, Rack, Site, bound_server, claim, default_group, eventually, servers, sim_system, state,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(90);
/// How long a killed component stays down.
const OUTAGE: Duration = Duration::from_secs(3);

fn restart(component: &str) -> Duration {
    let t = Instant::now();
    testenv::shared()
        .restart(component, OUTAGE, READY)
        .unwrap_or_else(|e| panic!("restarting {component}: {e}"));
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_lose_nothing_when_the_api_server_and_etcd_restart() {
    let site = Site::new("e2e-faults").await;
    let rack = Rack::start(&site, "127.86.0.1", vec![default_group(4)]).await;
    let mut procs: BTreeMap<&str, Process> = [
        (
            "discovery",
            Process::start(
                &site,
                "discovery",
                e2e::discovery_args(&site, &rack, "out-of-band"),
            ),
        ),
        (
            "reservation",
            Process::start(&site, "reservation", e2e::reservation_args(&site)),
        ),
        (
            "provisioning",
            Process::start(&site, "provisioning", e2e::provisioning_args(&site, &rack)),
        ),
        (
            "maintenance",
            Process::start(&site, "maintenance", e2e::maintenance_args(&site, &rack)),
        ),
    ]
    .into();

    // Mid-onboarding: the first Server exists, the others are on their way.
    eventually("onboarding under way", e2e::LONG, async || {
        (!servers(&site).await.is_empty()).then_some(())
    })
    .await;
    let down = restart("kube-apiserver");
    eprintln!("kube-apiserver restarted mid-onboarding in {down:?}");
    let all = e2e::wait_states(&site, 4, "Available", "all Available after the restart").await;
    assert_eq!(all.len(), 4);
    all_running(&mut procs);

    let down = restart("etcd");
    eprintln!("etcd restarted in {down:?}");

    // Mid-binding: two claims created, the API server goes away at once.
    for c in ["c-0", "c-1"] {
        claim(
            &site,
            &rack,
            c,
            serde_json::json!({ "matchLabels": site.labels() }),
        )
        .await;
    }
    let down = restart("kube-apiserver");
    eprintln!("kube-apiserver restarted mid-binding in {down:?}");
    let bound = [
        bound_server(&site, "c-0").await,
        bound_server(&site, "c-1").await,
    ];
    assert_ne!(bound[0], bound[1], "two claims, two servers");
    all_running(&mut procs);
    let mut booted = Vec::new();
    for name in &bound {
        let s = e2e::server_by_name(&site, name).await;
        let (bmc, sys, _, _) = sim_system(&rack, &s);
        eventually("booted", e2e::LONG, async || {
            (format!("{:?}", rack.sim.system_state(bmc, &sys).ok()?.power_state) == "On")
                .then_some(())
        })
        .await;
        booted.push(bmc);
    }
    // Settle: anything repeated after the restarts would show now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for s in servers(&site).await {
        let (bmc, _, _, _) = sim_system(&rack, &s);
        let want = u64::from(booted.contains(&bmc));
        assert_eq!(
            e2e::resets(&rack, bmc),
            want,
            "{}: one power-on per bound server, none for the others",
            s.metadata.name.unwrap_or_default()
        );
        let st = state(&s);
        assert!(st == "Reserved" || st == "Available", "{st}");
    }
    all_running(&mut procs);
}

/// No controller exited: a replica that loses its Lease while the API server is away must stop
/// its work within the fencing margin and stand by, not exit (here nothing would restart it, and
/// on a cluster every outage would cost a restart per pod). Even before its caches synced.
fn all_running(procs: &mut BTreeMap<&str, Process>) {
    for (name, p) in procs.iter_mut() {
        assert!(
            p.running(),
            "metal-{name} exited during the control-plane outage:\n{}",
            p.log_tail(120)
        );
    }
}
