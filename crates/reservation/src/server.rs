//! The Server controller: lifecycle transitions that no claim drives ([`crate::release::server_step`])
//! and the ServerReadinessRule taints of each server ([`crate::readiness`]).

use crate::error::Error;
use crate::matching::ClaimKey;
use crate::readiness;
use crate::release::{self, ClaimPresence, ServerStep};
use crate::writes::{self, CasError};
use crate::{Caches, Ctx, ignored, jitter};
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use api::serverreadinessrule::ServerReadinessRule;
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    let servers = ctx.servers.clone();
    let servers2 = ctx.servers.clone();
    let controller = Controller::for_shared_stream(caches.servers.applied(), ctx.servers.clone())
        .watches_shared_stream(caches.rules.touched(), move |rule| {
            servers_for_rule(&servers, &rule)
        })
        .watches_shared_stream(caches.claims.deleted(), move |claim| {
            servers_for_claim(&servers2, &claim)
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "server controller");
            }
        })
        .await;
}

/// The servers a rule change may concern: those it selects and those carrying its taint.
pub fn servers_for_rule(
    servers: &Store<Server>,
    rule: &ServerReadinessRule,
) -> Vec<ObjectRef<Server>> {
    let taint = readiness::rule_taint(rule);
    servers
        .state_filter(|s| {
            readiness::selects(rule, s)
                || s.spec
                    .taints
                    .iter()
                    .any(|t| t.key == taint.key && t.effect() == taint.effect())
        })
        .iter()
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// The servers a deleted claim concerns: the one bound to it or named by it.
pub fn servers_for_claim(servers: &Store<Server>, claim: &ServerClaim) -> Vec<ObjectRef<Server>> {
    let key = ClaimKey::of(claim);
    let named = claim.spec.server_ref.as_ref().map(|r| r.name.clone());
    servers
        .state_filter(|s| key.is_bound_to(s) || Some(s.name_any()) == named)
        .iter()
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn error_policy(server: Arc<Server>, error: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(server = %server.name_any(), error = %error, "reconciling server failed");
    Action::requeue(ctx.backoff.failed(format!("server/{}", server.name_any())))
}

async fn reconcile(server: Arc<Server>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.caches.ready().await;
    let timer = ctx.metrics.reconcile.start("Server");
    let result = reconcile_server(&server, &ctx).await;
    match &result {
        Ok(_) => {
            timer.success();
            ctx.backoff
                .succeeded(&format!("server/{}", server.name_any()));
        }
        Err(e) => timer.failure(e.metric_reason()),
    }
    result
}

async fn reconcile_server(server: &Server, ctx: &Ctx) -> Result<Action, Error> {
    if ignored(&server.metadata) || server.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let lifecycle = lifecycle(server, ctx).await?;
    apply_readiness(server, ctx).await?;
    Ok(lifecycle.unwrap_or(Action::requeue(ctx.config.resync)))
}

/// Looks up the claim a server references: cache first, then a live read before calling it gone.
async fn claim_presence(server: &Server, ctx: &Ctx) -> Result<ClaimPresence, Error> {
    let Some(key) = ClaimKey::bound_to(server) else {
        return Ok(if releasing_claim(server, ctx) {
            ClaimPresence::Releasing
        } else {
            ClaimPresence::NoRef
        });
    };
    if !ctx.config.claim_in_scope(&key.namespace) {
        return Ok(ClaimPresence::OutOfScope);
    }
    if ctx
        .claims
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
        .is_some()
    {
        return Ok(ClaimPresence::Present);
    }
    let live: Option<ServerClaim> = writes::get(&ctx.claim_api(&key.namespace), &key.name).await?;
    Ok(if live.is_some() {
        ClaimPresence::Present
    } else {
        ClaimPresence::Gone
    })
}

/// Whether a deleting claim in scope (still holding our finalizer, so its release runs) names
/// `server` in `spec.serverRef` while the server is
/// `Reserved` without a reference: the middle of that claim's `Recycle`. A scan of the claim
/// cache, only in that transient state.
fn releasing_claim(server: &Server, ctx: &Ctx) -> bool {
    if server.state() != Some(ServerState::Reserved) {
        return false;
    }
    let name = server.name_any();
    ctx.claims.state().iter().any(|c| {
        c.metadata.deletion_timestamp.is_some()
            && writes::has_finalizer(c.as_ref(), api::constants::finalizers::SERVER_CLAIM)
            && c.spec.server_ref.as_ref().is_some_and(|r| r.name == name)
            && c.namespace()
                .is_some_and(|ns| ctx.config.claim_in_scope(&ns))
    })
}

/// Runs the lifecycle step; `Some(action)` overrides the default requeue.
async fn lifecycle(server: &Server, ctx: &Ctx) -> Result<Option<Action>, Error> {
    let presence = claim_presence(server, ctx).await?;
    let step = release::server_step(server, presence);
    let api = ctx.server_api();
    let name = server.name_any();
    let result = match &step {
        ServerStep::Nothing => return Ok(None),
        ServerStep::WaitForPowerOff(why) => {
            tracing::debug!(server = %name, why, "waiting for power off");
            return Ok(None);
        }
        ServerStep::Adopt => writes::set_state(&api, server, ServerState::Reserved).await,
        ServerStep::ReleasedToAvailable => {
            writes::set_state(&api, server, ServerState::Available).await
        }
        ServerStep::ClearOrphanRef => writes::set_claim_ref(&api, server, None).await,
        ServerStep::OrphanRetain => writes::set_state(&api, server, ServerState::Released).await,
        ServerStep::OrphanRecycle => {
            let cleared = if server.spec.server_claim_ref.is_some() {
                writes::set_claim_ref(&api, server, None).await
            } else {
                Ok(server.clone())
            };
            match cleared {
                Ok(s) => match writes::cleaning_mode(&s, ctx.config.cleaning_mode) {
                    api::constants::CleaningMode::Disabled => {
                        writes::set_state(&api, &s, ServerState::Available).await
                    }
                    mode => writes::start_cleaning(&api, &s, mode).await,
                },
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(_) => {
            tracing::info!(server = %name, step = ?step, "server lifecycle step done");
            Ok(None)
        }
        // The server changed meanwhile; its new version triggers another reconcile.
        Err(CasError::Conflict | CasError::NotFound) => {
            Ok(Some(Action::requeue(jitter(Duration::from_millis(200)))))
        }
        Err(CasError::Failed(e)) => Err(e),
    }
}

/// Brings the server's rule taints and completion annotations in line with the rules.
async fn apply_readiness(server: &Server, ctx: &Ctx) -> Result<(), Error> {
    let rules = ctx.rules.state();
    let desired = readiness::desired(server, &rules);
    if !readiness::needs_apply(server, &desired, &rules, crate::writes::FIELD_MANAGER) {
        return Ok(());
    }
    let name = server.name_any();
    let body = readiness::apply_body(&name, &desired);
    match writes::apply_server_readiness(&ctx.server_api(), &name, &body).await {
        Ok(()) | Err(CasError::NotFound) => Ok(()),
        Err(e) => Err(e.into_error(format!("server {name}"))),
    }
}

/// Re-applies readiness for `server` (used by the rule controller while cleaning up).
pub(crate) async fn reapply_readiness(server: &Server, ctx: &Ctx) -> Result<(), Error> {
    apply_readiness(server, ctx).await
}
