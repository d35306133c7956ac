//! What onboarding costs, pinned: out-of-band, each BMC is read once per resource (service
//! root, session, Managers, Systems, the Manager, and the System with its inventory collections
//! in one `$expand` read; with the simulator's `MaxLevels` of 3, the storage controller and the
//! volume, a fourth level down, are read alone: eight requests) and each server costs three
//! object writes (the BMC's status, the Server, its
//! status) and two Events. The echo of discovery's own BMC status write and a Server seen
//! before its BMC's Ready status reaches the cache used to repeat reads and writes (13.3
//! Redfish requests and 9.2 writes per server); this fails if any of that comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use api::server::ServerState;
use metal_bmc_sim::TemplateSource;

use crate::support::*;

const BMCS: usize = 4;

#[tokio::test]
async fn out_of_band_onboarding_reads_each_resource_once_and_writes_three_objects() {
    let sim = sim(rack(
        "127.74.0.1",
        vec![group(BMCS, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("cost", |_| {}).await;
    let mut names = Vec::new();
    for info in sim.bmcs() {
        names.push(h.add_bmc(&info, &[]).await);
    }
    for name in &names {
        h.wait_state(
            &format!("{name}-system-0"),
            ServerState::Available,
            Duration::from_secs(60),
        )
        .await;
    }
    // Echoes of the last writes arrive now; anything they repeat would show.
    tokio::time::sleep(Duration::from_secs(3)).await;

    for i in 0..BMCS {
        let counts = sim.request_counts(i).unwrap();
        let repeated: BTreeMap<&String, &u64> =
            counts.by_request.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            repeated.is_empty(),
            "BMC {i}: requests sent other than once: {repeated:?} (all: {:?})",
            counts.by_request
        );
        assert!(
            counts.total <= 8,
            "BMC {i}: {} requests: {:?}",
            counts.total,
            counts.by_request
        );
    }
    let n = BMCS as u64;
    let writes = |kind, op| h.metrics.writes(kind, op);
    assert_eq!(writes("BMC", "apply"), n, "one BMC status write per BMC");
    assert_eq!(
        writes("Server", "apply"),
        2 * n,
        "the Server and one status write"
    );
    assert_eq!(
        writes("Event", "event"),
        2 * n,
        "BMC connected, server Available"
    );
    assert_eq!(h.metrics.writes_total(), 5 * n, "nothing else is written");
}
