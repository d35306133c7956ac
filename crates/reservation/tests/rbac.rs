//! The ClusterRole in `kustomize/reservation` is sufficient: the controller runs in-process with
//! a client that impersonates the `metal-reservation` ServiceAccount (bound to the role read
//! from the kustomize files), wins its Lease, and runs bind, release and readiness-rule flows.
//! Anything the role does not grant would surface as a Forbidden reconcile error.

mod common;

use api::ServerState;
use api::common::{Taint, TaintEffect};
use api::serverreadinessrule::{
    ConditionRequirement, EnforcementMode, RequiredStatus, ServerReadinessRule,
    ServerReadinessRuleSpec,
};
use common::*;
use kube::api::{Api, DeleteParams, PostParams};
use metal_reservation::Reservation;
use runtime::admin::AdminState;
use runtime::lease::{self, LeaseParams};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SA: &str = "metal-reservation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_cluster_role_is_enough() {
    let env = Env::new("rbac").await;
    let granted = testenv::install_component_rbac(&env.client, "reservation", &env.ns).await;
    assert!(
        !granted.iter().any(|g| g.contains('*')),
        "no wildcards: {granted:?}"
    );
    let sa_client = testenv::impersonating_client(&env.ns, SA).await;

    // Least privilege: what the role does not grant is refused.
    let denied = Api::<api::Server>::all(sa_client.clone())
        .delete("anything", &DeleteParams::default())
        .await
        .expect_err("delete servers is not granted");
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied}"
    );

    env.server("a", &[("pool", "web")], |_| {}).await;
    env.server("b", &[("pool", "web")], |_| {}).await;

    // The controller as the ServiceAccount, leader-elected in its namespace.
    let admin = AdminState::default();
    let mut config = env.config("rbac-pod");
    config.binding_lock_timeout = Duration::from_secs(4);
    let reservation = Reservation::start(sa_client.clone(), config, &admin);
    let shutdown = CancellationToken::new();
    let handle = lease::spawn(
        sa_client.clone(),
        LeaseParams::new(SA, env.ns.clone(), "rbac-pod", Duration::from_secs(4)),
        None,
    );
    let running = tokio::spawn({
        let reservation = reservation.clone();
        let shutdown = shutdown.clone();
        async move {
            lease::run_while_leading(handle, shutdown, move |token| {
                let reservation = reservation.clone();
                async move { reservation.run_controllers(token).await }
            })
            .await
        }
    });

    // Readiness rule: taint, then cleanup on deletion.
    let key = format!("{}/burn-in", env.id);
    let mut rule = ServerReadinessRule::new(
        &env.id,
        ServerReadinessRuleSpec {
            conditions: vec![ConditionRequirement {
                type_: "BurnInPassed".into(),
                required_status: RequiredStatus::True,
            }],
            enforcement_mode: EnforcementMode::Continuous,
            taint: Taint {
                key: key.clone(),
                value: None,
                effect: Some(TaintEffect::NoBind),
            },
            server_selector: Env::selector("pool", "web"),
        },
    );
    rule.metadata.labels = Some([(TEST_LABEL.to_string(), env.id.clone())].into());
    let rules: Api<ServerReadinessRule> = Api::all(env.client.clone());
    rules
        .create(&PostParams::default(), &rule)
        .await
        .expect("rule");
    env.wait_server("b", 30, |s| s.spec.taints.iter().any(|t| t.key == key))
        .await;
    rules
        .delete(&env.id, &DeleteParams::default())
        .await
        .expect("delete rule");
    env.wait_server("b", 30, |s| s.spec.taints.is_empty()).await;
    assert!(
        eventually(30, async || rules
            .get_opt(&env.id)
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(()))
        .await
        .is_some()
    );

    // Bind (selector), with boot configuration and events.
    env.claim("web", |s| {
        s.server_selector = Some(Env::selector("pool", "web"))
    })
    .await;
    let claim = env.wait_claim("web", 30, is_bound).await;
    let server = claim.spec.server_ref.unwrap().name;
    assert!(env.sbcs().get_opt("web").await.unwrap().is_some());
    // An unbound claim gets its reason written too.
    env.claim("nothing", |s| {
        s.server_selector = Some(Env::selector("pool", "none"))
    })
    .await;
    env.wait_claim("nothing", 30, |c| bound_reason(c).is_some())
        .await;

    // Release (Recycle) after provisioning's confirmation.
    env.claims()
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete claim");
    env.wait_claim("web", 30, |c| {
        bound_reason(c).as_deref() == Some("Releasing")
    })
    .await;
    env.set_powered_off("web", "True", "PowerOffConfirmed")
        .await;
    let suffix = server
        .trim_start_matches(&format!("{}-", env.id))
        .to_string();
    env.wait_server(&suffix, 30, |s| {
        state(s) == Some(ServerState::Available) && claim_of(s).is_none()
    })
    .await;
    assert!(
        eventually(30, async || env
            .get_claim("web")
            .await
            .is_none()
            .then_some(()))
        .await
        .is_some()
    );

    let metrics = admin.metrics.encode();
    assert!(
        !metrics.contains("Forbidden"),
        "a reconcile was forbidden: {}",
        metrics
            .lines()
            .filter(|l| l.contains("Forbidden"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        metrics.contains("metal_reconciliations_total"),
        "controllers ran: {metrics}"
    );
    let events =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), &env.ns)
            .list(&Default::default())
            .await
            .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reporting_controller.as_deref() == Some("metal-reservation")),
        "events written by the ServiceAccount"
    );
    let lease =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(env.client.clone(), &env.ns)
            .get(SA)
            .await
            .expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("rbac-pod")
    );
    shutdown.cancel();
    running.await.unwrap().expect("clean shutdown");
    drop(reservation);
}
