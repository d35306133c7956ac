//! A leader that loses its Lease before its caches have synced stops at once. Here the Server
//! cache can never sync (the identity may list claims but not servers), so a claim reconcile
//! that waited for the caches inside the controller held graceful shutdown forever; under
//! `run_while_leading` that meant exceeding the fencing margin and exiting the process whenever
//! the API server was away at start-up.

mod common;

use common::*;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use metal_reservation::Reservation;
use runtime::admin::AdminState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SA: &str = "claims-only";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_stop_at_once_when_cancelled_before_the_caches_synced() {
    let env = Env::new("unsynced").await;
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(env.ns.clone()),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(SA),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["metal.ironcore.dev".into()]),
            resources: Some(vec![
                "serverclaims".into(),
                "serverbootconfigurations".into(),
            ]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding = RoleBinding {
        metadata: meta(SA),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: SA.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SA.into(),
            namespace: Some(env.ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    env.claim("waiting", |spec| {
        spec.server_selector = Some(Env::selector("pool", "none"));
    })
    .await;

    let client = testenv::impersonating_client(&env.ns, SA).await;
    let reservation = Reservation::start(client, env.config("unsynced"), &AdminState::default());
    let token = CancellationToken::new();
    let running = tokio::spawn({
        let reservation = reservation.clone();
        let token = token.clone();
        async move { reservation.run_controllers(token).await }
    });
    // Long enough for the claim cache to sync and its claim to be queued.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!running.is_finished(), "runs until cancelled");
    token.cancel();
    tokio::time::timeout(Duration::from_secs(1), running)
        .await
        .expect("stopped within 1 s of losing leadership, synced or not")
        .expect("no panic");
}
