//! Cleaning released servers on the real control plane and the simulated Dell tree (three
//! drives with `Drive.SecureErase`): every drive erased once, a failed erase keeping the
//! server out of the pool until `retry`, and the controller killed at each step.

mod common;

use api::server::{Server, ServerState};
use common::*;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use metal_bmc_sim::{Knobs, TemplateSource};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DRIVES: [&str; 3] = [
    "Disk.Bay.2:Enclosure.Internal.0-1",
    "Disk.Bay.1:Enclosure.Internal.0-1",
    "Disk.Bay.0:Enclosure.Internal.0-1",
];

fn dell() -> TemplateSource {
    TemplateSource::Path(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../redfish/tests/fixtures/dell-poweredge-r750"),
    )
}

/// Plays reservation releasing the server of a `Recycle` claim with cleaning `mode`.
async fn release_into_cleaning(h: &Harness, i: usize, mode: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
        "metadata": { "name": h.server_name(i) },
        "status": { "state": "Cleaning", "conditions": [{
            "type": "CleaningRequested", "status": "True", "reason": mode,
            "message": "released by a Recycle claim", "lastTransitionTime": now,
        }]},
    });
    Api::<Server>::all(h.client.clone())
        .patch_status(
            h.server_name(i),
            &PatchParams::apply("metal-reservation").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("release into Cleaning");
}

/// SecureErase requests the BMC of server `i` received, per drive.
fn erases(h: &Harness, i: usize) -> Vec<u64> {
    let counts = h.sim.request_counts(i).unwrap().by_request;
    DRIVES
        .iter()
        .map(|d| {
            counts
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("POST ") && k.contains(d) && k.ends_with("Drive.SecureErase")
                })
                .map(|(_, n)| *n)
                .sum()
        })
        .collect()
}

fn cleaned(s: &Server) -> Option<(String, String, String)> {
    let c = api::conditions::get(&s.status.as_ref()?.conditions, "Cleaned")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_server_gets_every_drive_erased_once_then_is_available() {
    let h = Harness::with_template("cln-ok", "127.46.1.1", 1, Knobs::default(), dell()).await;
    release_into_cleaning(&h, 0, "Full").await;
    let s = h.wait_server(0, ServerState::Available, false).await;
    let (status, reason, message) = cleaned(&s).expect("Cleaned");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Cleaned"),
        "{message}"
    );
    for d in DRIVES {
        assert!(message.contains(d), "{message}");
    }
    assert_eq!(
        erases(&h, 0),
        vec![1, 1, 1],
        "each drive erased exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_erase_keeps_the_server_out_of_the_pool_until_retry() {
    let knobs = Knobs {
        secure_erase_fails: vec![DRIVES[1].to_string()],
        ..Knobs::default()
    };
    let h = Harness::with_template("cln-fail", "127.46.2.1", 1, knobs, dell()).await;
    release_into_cleaning(&h, 0, "Metadata").await;
    let s = h.wait_server(0, ServerState::Error, false).await;
    let (status, reason, message) = cleaned(&s).expect("Cleaned");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CleaningFailed")
    );
    assert!(message.contains(DRIVES[1]), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.server(0).await.state(),
        Some(ServerState::Error),
        "not handed out"
    );

    // The drive works again; the operator retries: a new round, then Available.
    h.sim.set_knobs(0, Knobs::default()).unwrap();
    h.annotate(0, "metal.ironcore.dev/operation", Some("retry"))
        .await;
    let s = h.wait_server(0, ServerState::Available, false).await;
    assert_eq!(cleaned(&s).map(|c| c.0).as_deref(), Some("True"));
    assert!(!s.annotations().contains_key("metal.ironcore.dev/operation"));
    // Round one stopped at the failing drive; round two erased all three.
    assert_eq!(erases(&h, 0), vec![2, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_step_of_a_cleaning_no_drive_is_skipped() {
    // (step, erases of the first drive after convergence): killed after the record and
    // before the send, the erase is sent once; killed after the send and before the
    // confirmation, it is sent again (a repeat costs time, a skip would leave data).
    const STEPS: [(&str, u64); 2] = [("cleaning-erase-recorded", 1), ("cleaning-erase-sent", 2)];
    let h = Harness::with_template(
        "cln-kill",
        "127.46.3.1",
        STEPS.len(),
        Knobs::default(),
        dell(),
    )
    .await;
    h.stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, (at, first)) in STEPS.iter().enumerate() {
        release_into_cleaning(&h, i, "Full").await;
        kill_at(&h, at).await;

        let stop = CancellationToken::new();
        let fresh = spawn_with(&h, h.config.clone(), stop.clone());
        let s = h.wait_server(i, ServerState::Available, false).await;
        stop.cancel();
        let _ = fresh.await;
        assert_eq!(
            cleaned(&s).map(|c| c.0).as_deref(),
            Some("True"),
            "killed at {at}"
        );
        assert_eq!(erases(&h, i), vec![*first, 1, 1], "killed at {at}");
    }
}
