//! Release against a real kube-apiserver. The test plays provisioning: it writes the deleting
//! claim's `PoweredOff` condition (or the Server's `WaitingForPowerOff`) under provisioning's
//! field manager, and checks on every watch event that the server is never handed back before.

mod common;

use api::ServerState;
use api::server::{Server, ServerReclaimPolicy};
use common::*;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records every version of the test's servers: (when seen, name, state, bound claim).
type Seen = Arc<Mutex<Vec<(Instant, String, Option<ServerState>, Option<String>)>>>;

fn watch_servers(env: &Env) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let stream = watcher(
        env.servers(),
        watcher::Config::default().labels(&format!("{TEST_LABEL}={}", env.id)),
    )
    .applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(server)) = stream.next().await {
            let server: Server = server;
            s.lock().unwrap().push((
                Instant::now(),
                kube::ResourceExt::name_any(&server),
                server.state(),
                claim_of(&server),
            ));
        }
    });
    (seen, task)
}

async fn bound_claim(env: &Env, suffix: &str, claim: &str) {
    env.claim(claim, |s| {
        s.server_ref = Some(LocalObjectReference {
            name: env.server_name(suffix),
        })
    })
    .await;
    env.wait_claim(claim, 30, is_bound).await;
}

/// Waits until the claim is gone; reservation deletes its boot configuration on release.
async fn gone(env: &Env, claim: &str) {
    claim_gone(env, claim).await;
    assert!(
        eventually(30, async || env
            .sbcs()
            .get_opt(claim)
            .await
            .unwrap()
            .is_none()
            .then_some(()))
        .await
        .is_some(),
        "boot configuration of {claim} deleted"
    );
}

async fn claim_gone(env: &Env, claim: &str) {
    assert!(
        eventually(30, async || env
            .get_claim(claim)
            .await
            .is_none()
            .then_some(()))
        .await
        .is_some(),
        "claim {claim} still exists"
    );
}

#[tokio::test]
async fn recycle_waits_for_confirmed_power_off() {
    let env = Env::new("recycle").await;
    env.server("s", &[], |_| {}).await;
    let ctl = env.start("i1");
    bound_claim(&env, "s", "web").await;
    let (seen, watch) = watch_servers(&env);

    env.claims()
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete claim");
    let c = env
        .wait_claim("web", 30, |c| {
            bound_reason(c).as_deref() == Some("Releasing")
        })
        .await;
    assert!(
        bound_condition(&c)
            .unwrap()
            .2
            .contains("no PoweredOff condition"),
        "{c:?}"
    );
    // Provisioning is still powering off.
    env.set_powered_off("web", "False", "WaitingForPowerOff")
        .await;
    env.wait_claim("web", 30, |c| {
        bound_condition(c).is_some_and(|(_, _, m)| m.contains("PoweredOff=False"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = env.get_server("s").await;
    assert_eq!(state(&s), Some(ServerState::Reserved));
    assert_eq!(claim_of(&s).as_deref(), Some("web"));
    assert!(
        env.get_claim("web").await.is_some(),
        "finalizer holds the claim"
    );

    // Confirmed: released.
    let confirmed_at = Instant::now();
    env.set_powered_off("web", "True", "PowerOffConfirmed")
        .await;
    env.wait_server("s", 30, |s| {
        state(s) == Some(ServerState::Available) && claim_of(s).is_none()
    })
    .await;
    gone(&env, "web").await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for (at, name, state, claim) in seen.iter() {
        if *state == Some(ServerState::Available) || claim.is_none() {
            assert!(
                *at >= confirmed_at,
                "server {name} was released ({state:?}, claim {claim:?}) before PoweredOff=True"
            );
        }
    }
    ctl.stop().await;
}

#[tokio::test]
async fn retain_keeps_the_reference_until_an_operator_clears_it() {
    let env = Env::new("retain").await;
    env.server("s", &[], |s| {
        s.spec.reclaim_policy = Some(ServerReclaimPolicy::Retain);
    })
    .await;
    let ctl = env.start("i1");
    bound_claim(&env, "s", "db").await;
    env.claims()
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete claim");
    env.wait_claim("db", 30, |c| {
        bound_reason(c).as_deref() == Some("Releasing")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        state(&env.get_server("s").await),
        Some(ServerState::Reserved)
    );
    env.set_powered_off("db", "True", "PowerOffConfirmed").await;
    let s = env
        .wait_server("s", 30, |s| state(s) == Some(ServerState::Released))
        .await;
    assert_eq!(
        claim_of(&s).as_deref(),
        Some("db"),
        "Retain keeps the reference"
    );
    gone(&env, "db").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        state(&env.get_server("s").await),
        Some(ServerState::Released),
        "stays Released"
    );

    // The operator clears the reference: Released -> Available.
    env.patch_server("s", json!({"spec": {"serverClaimRef": null}}))
        .await;
    env.wait_server("s", 30, |s| state(s) == Some(ServerState::Available))
        .await;
    ctl.stop().await;
}

#[tokio::test]
async fn a_claim_removed_by_hand_is_released_after_the_server_confirms_power_off() {
    let env = Env::new("orphan").await;
    env.server("s", &[], |_| {}).await;
    let ctl = env.start("i1");
    bound_claim(&env, "s", "gone").await;
    // Someone strips the finalizer and deletes the claim.
    env.claims()
        .patch(
            "gone",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("strip finalizer");
    env.claims()
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    // (Its boot configuration is left to the garbage collector: the owner is gone.)
    claim_gone(&env, "gone").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = env.get_server("s").await;
    assert_eq!(
        state(&s),
        Some(ServerState::Reserved),
        "no release without confirmation"
    );
    // A confirmation for an older generation does not count.
    let generation = s.metadata.generation.unwrap();
    let confirm = |gen_: i64| {
        json!({
            "apiVersion": api::API_VERSION, "kind": "Server",
            "status": {"conditions": [{
                "type": "WaitingForPowerOff", "status": "False", "reason": "PowerOffConfirmed",
                "message": "test plays provisioning", "observedGeneration": gen_,
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }]},
        })
    };
    let pp = PatchParams::apply("metal-provisioning").force();
    env.servers()
        .patch_status(
            &env.server_name("s"),
            &pp,
            &Patch::Apply(confirm(generation - 1)),
        )
        .await
        .expect("stale confirmation");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        state(&env.get_server("s").await),
        Some(ServerState::Reserved)
    );
    env.servers()
        .patch_status(
            &env.server_name("s"),
            &pp,
            &Patch::Apply(confirm(generation)),
        )
        .await
        .expect("confirmation");
    env.wait_server("s", 30, |s| {
        state(s) == Some(ServerState::Available) && claim_of(s).is_none()
    })
    .await;
    ctl.stop().await;
}

/// A `Recycle` release with cleaning enabled hands the server to maintenance in `Cleaning`,
/// the mode recorded with the move: the Server's annotation first, else `--cleaning-mode`.
#[tokio::test]
async fn recycle_with_cleaning_moves_the_server_to_cleaning_with_its_mode() {
    let env = Env::new("cleaning").await;
    env.server("a", &[], |s| {
        s.metadata.annotations = Some(
            [(
                "metal.ironcore.dev/cleaning-mode".to_string(),
                "Full".to_string(),
            )]
            .into(),
        );
    })
    .await;
    env.server("b", &[], |_| {}).await;
    let mut config = env.config("i1");
    config.cleaning_mode = api::constants::CleaningMode::Metadata;
    let ctl = env.start_with(env.client.clone(), config);
    for (suffix, claim, mode) in [("a", "web-a", "Full"), ("b", "web-b", "Metadata")] {
        bound_claim(&env, suffix, claim).await;
        env.claims()
            .delete(claim, &DeleteParams::default())
            .await
            .expect("delete claim");
        env.set_powered_off(claim, "True", "PowerOffConfirmed")
            .await;
        let s = env
            .wait_server(suffix, 30, |s| state(s) == Some(ServerState::Cleaning))
            .await;
        assert_eq!(claim_of(&s), None, "the reference is cleared first");
        let c = api::conditions::get(&s.status.as_ref().unwrap().conditions, "CleaningRequested")
            .expect("mode recorded with the move")
            .clone();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", mode));
        gone(&env, claim).await;
    }
    ctl.stop().await;
}
