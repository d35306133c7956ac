//! The ServerClaim controller: binding, unbound explanations, and release.
//!
//! ## Binding (one reconcile, each step idempotent so a crash anywhere resumes cleanly)
//!
//! 1. **Already bound?** A server whose `serverClaimRef` names the claim (cache, then this
//!    process's holds confirmed by a live read) → continue at step 5.
//! 2. **Evaluate** the claim's target against the Server cache ([`crate::matching`]). No candidate
//!    → `phase: Unbound` and `Bound=False` with the reason; wait for Server changes.
//! 3. **Binding lock** ([`crate::lock`]): one compare-and-swap write on the claim adds the
//!    finalizer `metal.ironcore.dev/serverclaim` and records this instance as the binder.
//! 4. **Choose and claim**: under the hold lock, order candidates with the [`Strategy`]
//!    (first fit by name), hold the first, and write `serverClaimRef` with the Server's
//!    `resourceVersion` as precondition. A 409 means someone else changed the server: re-read
//!    it; if it is still free retry, else count a conflict and try the next candidate.
//! 5. **Commit on the claim**: `spec.serverRef` (selector/any claims), finalizer, lock removed.
//! 6. **Reserve**: server `Available` → `Reserved` (compare-and-swap on its status).
//! 7. **Boot configuration**: server-side apply of the claim's ServerBootConfiguration.
//! 8. **Status**: `phase: Bound`, `Bound=True`; time-to-bind metric and a `Bound` event.
//!
//! ## Release (claim deleting): see [`crate::release`] and `docs/controllers.md`.
//!
//! [`Strategy`]: crate::matching::Strategy

use crate::error::Error;
use crate::events::reasons as event_reasons;
use crate::lock::{self, BindingLock, LockDecision};
use crate::matching::{self, ClaimKey, Evaluation, Target, Unbound};
use crate::release::{self, ClaimRelease};
use crate::writes::{self, CasError, ClaimUpdate};
use crate::{Caches, Ctx, ignored, jitter};
use api::conditions::{self, ConditionStatus};
use api::constants::{condition_types, finalizers, reasons};
use api::server::{Server, ServerState};
use api::serverclaim::{Phase, ServerClaim};
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Servers tried per reconcile before giving the claim back to the queue.
const MAX_ATTEMPTS: usize = 8;
/// Compare-and-swap retries on one server that is still free after a conflict.
const SAME_SERVER_RETRIES: usize = 3;

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    let claims = ctx.claims.clone();
    let claims_for_sbc = ctx.claims.clone();
    let controller = Controller::for_shared_stream(caches.claims.applied(), ctx.claims.clone())
        .watches_shared_stream(caches.servers.touched(), move |server| {
            claims_for_server(&claims, &server)
        })
        .watches_shared_stream(caches.boot_configurations.touched(), move |sbc| {
            // The claim's boot configuration is named after it and owned by it.
            let r = ObjectRef::<ServerClaim>::new(&sbc.name_any())
                .within(&sbc.namespace().unwrap_or_default());
            let owned = sbc
                .owner_references()
                .iter()
                .any(|o| o.kind == "ServerClaim" && o.name == sbc.name_any());
            (owned && claims_for_sbc.get(&r).is_some()).then_some(r)
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.claim_concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "claim controller");
            }
        })
        .await;
}

/// The claims a Server change may concern: the claim it is bound to, claims naming it, and every
/// unbound claim (a server that changes may become claimable; upstream issue #632).
pub fn claims_for_server(
    claims: &kube::runtime::reflector::Store<ServerClaim>,
    server: &Server,
) -> Vec<ObjectRef<ServerClaim>> {
    let name = server.name_any();
    let bound = ClaimKey::bound_to(server);
    let mut out: Vec<ObjectRef<ServerClaim>> = Vec::new();
    for claim in claims.state() {
        let key = ClaimKey::of(&claim);
        let named = claim
            .spec
            .server_ref
            .as_ref()
            .is_some_and(|r| r.name == name);
        let unbound = claim.status.as_ref().and_then(|s| s.phase) != Some(Phase::Bound)
            && claim.metadata.deletion_timestamp.is_none();
        if named || unbound || bound.as_ref() == Some(&key) {
            out.push(ObjectRef::from_obj(claim.as_ref()));
        }
    }
    out
}

fn error_policy(claim: Arc<ServerClaim>, error: &Error, ctx: Arc<Ctx>) -> Action {
    let key = ClaimKey::of(&claim).to_string();
    tracing::warn!(claim = %key, error = %error, "reconciling claim failed");
    Action::requeue(ctx.backoff.failed(format!("claim/{key}")))
}

async fn reconcile(claim: Arc<ServerClaim>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.caches.ready().await;
    let timer = ctx.metrics.reconcile.start("ServerClaim");
    let result = reconcile_claim(&claim, &ctx).await;
    match &result {
        Ok(_) => {
            timer.success();
            ctx.backoff
                .succeeded(&format!("claim/{}", ClaimKey::of(&claim)));
        }
        Err(e) => timer.failure(e.metric_reason()),
    }
    result
}

async fn reconcile_claim(claim: &ServerClaim, ctx: &Ctx) -> Result<Action, Error> {
    if claim.metadata.deletion_timestamp.is_some() {
        return release_claim(claim, ctx).await;
    }
    if ignored(&claim.metadata) {
        tracing::debug!(claim = %ClaimKey::of(claim), "ignored by annotation");
        return Ok(Action::await_change());
    }
    bind(claim, ctx).await
}

// ---------------------------------------------------------------------------------------------
// Binding

async fn bind(claim: &ServerClaim, ctx: &Ctx) -> Result<Action, Error> {
    let key = ClaimKey::of(claim);
    let target = match Target::of(claim) {
        Ok(t) => t,
        Err(e) => {
            let unbound = Unbound {
                reason: reasons::NO_MATCHING_SERVER,
                message: e.to_string(),
            };
            set_unbound(claim, &unbound, ctx).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(server) = find_bound(claim, &key, ctx).await? {
        return complete(claim, server, ctx).await;
    }

    // Anything to try at all? (No writes for claims that cannot be bound.)
    let eval = evaluate(claim, &key, &target, ctx, &HashSet::new(), None);
    if eval.candidates.is_empty() {
        set_unbound(claim, &matching::summarize(&target, &eval), ctx).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }

    // The binding lock (and the finalizer, before anything is bound).
    let timeout = ctx.config.binding_lock_timeout;
    let current = claim
        .annotations()
        .get(lock::ANNOTATION)
        .and_then(|v| BindingLock::parse(v));
    let mut claim_now = claim.clone();
    let budget = match lock::decide(
        current.as_ref(),
        &ctx.config.identity,
        lock::now_millis(),
        timeout,
    ) {
        LockDecision::Wait { wait } => {
            tracing::debug!(claim = %key, ?wait, "another instance is binding this claim");
            return Ok(Action::requeue(wait + jitter(Duration::from_millis(200))));
        }
        LockDecision::Held { budget } => budget,
        LockDecision::Acquire { takeover } => {
            if takeover && let Some(server) = find_bound_live(&key, ctx).await? {
                return complete(claim, server, ctx).await;
            }
            let update = ClaimUpdate {
                finalizer: Some(true),
                lock: Some(Some(
                    BindingLock {
                        holder: ctx.config.identity.clone(),
                        since_millis: lock::now_millis(),
                    }
                    .format(),
                )),
                server_ref: None,
            };
            match writes::update_claim(&ctx.claim_api(&key.namespace), claim, &update).await {
                Ok(updated) => claim_now = updated,
                // The claim changed (or another instance locked it): the watch brings the new
                // version and we decide again.
                Err(CasError::Conflict) => {
                    return Ok(Action::requeue(jitter(Duration::from_millis(100))));
                }
                Err(CasError::NotFound) => return Ok(Action::await_change()),
                Err(CasError::Failed(e)) => return Err(e),
            }
            timeout / 2
        }
    };
    let deadline = Instant::now() + budget;

    let api = ctx.server_api();
    let mut lost: HashSet<String> = HashSet::new();
    let mut conflict_reported = false;
    for _ in 0..MAX_ATTEMPTS {
        if Instant::now() >= deadline {
            // Our lock is too old to start another write; take it again on the next round.
            return Ok(Action::requeue(Duration::from_millis(10)));
        }
        let mut last_eval = None;
        let picked = ctx.holds.select(&key, |view| {
            let mut eval = evaluate(claim, &key, &target, ctx, &lost, Some(view));
            ctx.strategy.order(claim, &mut eval.candidates);
            let first = eval.candidates.first().cloned();
            last_eval = Some(eval);
            first.map(|s| (s.name_any(), s))
        });
        let Some(server) = picked else {
            let eval = last_eval.unwrap_or_default();
            set_unbound(&claim_now, &matching::summarize(&target, &eval), ctx).await?;
            return Ok(Action::requeue(ctx.config.resync));
        };
        let name = server.name_any();
        match claim_server(&api, &server, &key, claim, &target).await {
            Ok(Some(bound)) => {
                tracing::debug!(claim = %key, server = %name, "bound");
                ctx.config.steps.pass("claim-ref-written").await;
                return complete(&claim_now, Arc::new(bound), ctx).await;
            }
            Ok(None) => {
                ctx.metrics.conflict();
                ctx.holds.release(&name, &key);
                lost.insert(name.clone());
                if !conflict_reported {
                    conflict_reported = true;
                    ctx.events.normal(
                        claim,
                        event_reasons::BIND_CONFLICT,
                        format!(
                            "server {name} was claimed concurrently; trying the next candidate"
                        ),
                    );
                }
            }
            Err(e) => {
                ctx.holds.release(&name, &key);
                return Err(e);
            }
        }
    }
    Err(Error::Contention {
        claim: key.to_string(),
    })
}

/// Evaluates the claim against the cache: only the named server for named claims.
fn evaluate(
    claim: &ServerClaim,
    key: &ClaimKey,
    target: &Target,
    ctx: &Ctx,
    lost: &HashSet<String>,
    holds: Option<&crate::holds::HoldView<'_>>,
) -> Evaluation {
    let holder = |n: &str| match holds {
        Some(v) => v.holder(n),
        None => ctx.holds.holder(n),
    };
    let skip = |n: &str| lost.contains(n);
    let tolerations = &claim.spec.tolerations;
    match target {
        Target::Named { name, .. } => {
            let one: Vec<Arc<Server>> =
                ctx.servers.get(&ObjectRef::new(name)).into_iter().collect();
            matching::evaluate(key, tolerations, target, &one, holder, skip)
        }
        _ => matching::evaluate(key, tolerations, target, &ctx.servers.state(), holder, skip),
    }
}

/// Tries to write `serverClaimRef` on `server`. `Ok(Some)` = bound, `Ok(None)` = lost the race.
async fn claim_server(
    api: &kube::Api<Server>,
    server: &Server,
    key: &ClaimKey,
    claim: &ServerClaim,
    target: &Target,
) -> Result<Option<Server>, Error> {
    let mut current = server.clone();
    for _ in 0..SAME_SERVER_RETRIES {
        match writes::set_claim_ref(api, &current, Some(key)).await {
            Ok(bound) => return Ok(Some(bound)),
            Err(CasError::NotFound) => return Ok(None),
            Err(CasError::Failed(e)) => return Err(e),
            Err(CasError::Conflict) => {
                // Changed since the cache saw it: still free (e.g. a power-state refresh)?
                let Some(fresh) = writes::get(api, &current.name_any()).await? else {
                    return Ok(None);
                };
                if key.is_bound_to(&fresh) {
                    return Ok(Some(fresh));
                }
                let free = target.matches(&fresh)
                    && matching::check_server(&fresh, key, &claim.spec.tolerations, None).is_ok()
                    && fresh.spec.server_claim_ref.is_none();
                if !free {
                    return Ok(None);
                }
                current = fresh;
            }
        }
    }
    Ok(None)
}

/// The server bound to the claim: by `spec.serverRef`, by a cache scan, or (cache not caught up
/// yet) a server this process holds for the claim, confirmed live.
async fn find_bound(
    claim: &ServerClaim,
    key: &ClaimKey,
    ctx: &Ctx,
) -> Result<Option<Arc<Server>>, Error> {
    if let Some(r) = &claim.spec.server_ref
        && let Some(s) = ctx.servers.get(&ObjectRef::new(&r.name))
        && key.is_bound_to(&s)
    {
        return Ok(Some(s));
    }
    if let Some(s) = ctx.servers.find(|s| key.is_bound_to(s)) {
        return Ok(Some(s));
    }
    for name in ctx.holds.held_by(key) {
        if let Some(s) = writes::get(&ctx.server_api(), &name).await?
            && key.is_bound_to(&s)
        {
            return Ok(Some(Arc::new(s)));
        }
    }
    Ok(None)
}

/// A live look-up of the server bound to the claim (after taking over a lapsed lock: the
/// previous holder's last write may not be in our cache yet).
async fn find_bound_live(key: &ClaimKey, ctx: &Ctx) -> Result<Option<Arc<Server>>, Error> {
    let mut lp = kube::api::ListParams::default();
    if let Some(sel) = &ctx.config.server_selector {
        lp = lp.labels(sel);
    }
    let list = ctx
        .server_api()
        .list(&lp)
        .await
        .map_err(|e| Error::kube("listing servers", e))?;
    Ok(list
        .items
        .into_iter()
        .find(|s| key.is_bound_to(s))
        .map(Arc::new))
}

/// Steps 5–8: the server's `serverClaimRef` names the claim; finish the binding.
async fn complete(claim: &ServerClaim, server: Arc<Server>, ctx: &Ctx) -> Result<Action, Error> {
    let key = ClaimKey::of(claim);
    let name = server.name_any();
    let claims = ctx.claim_api(&key.namespace);

    // 5. Commit on the claim.
    let needs_commit = !writes::has_finalizer(claim, finalizers::SERVER_CLAIM)
        || claim.spec.server_ref.is_none()
        || claim.annotations().contains_key(lock::ANNOTATION);
    let claim = if needs_commit {
        let update = ClaimUpdate {
            finalizer: Some(true),
            lock: Some(None),
            server_ref: Some(name.clone()),
        };
        match writes::update_claim_retrying(&claims, claim, &update).await? {
            Some(c) => {
                ctx.config.steps.pass("claim-committed").await;
                c
            }
            None => return Ok(Action::await_change()),
        }
    } else {
        claim.clone()
    };

    // 6. Reserve.
    let api = ctx.server_api();
    let mut server = (*server).clone();
    for _ in 0..SAME_SERVER_RETRIES {
        match server.state() {
            Some(ServerState::Reserved) => break,
            None | Some(ServerState::Available) => {
                match writes::set_state(&api, &server, ServerState::Reserved).await {
                    Ok(s) => {
                        server = s;
                        ctx.config.steps.pass("server-reserved").await;
                        break;
                    }
                    Err(CasError::Conflict) => match writes::get(&api, &name).await? {
                        Some(fresh) if key.is_bound_to(&fresh) => server = fresh,
                        _ => return Ok(Action::requeue(jitter(Duration::from_millis(100)))),
                    },
                    Err(e) => return Err(e.into_error(format!("server {name}"))),
                }
            }
            Some(ServerState::Maintenance | ServerState::Parked) => {
                // Maintenance owns the server now; it hands it back as Reserved.
                return Ok(Action::await_change());
            }
            Some(other) => {
                let unbound = Unbound {
                    reason: reasons::SERVER_NOT_AVAILABLE,
                    message: format!(
                        "server {name} is bound to this claim but in state {other}; waiting"
                    ),
                };
                set_unbound(&claim, &unbound, ctx).await?;
                return Ok(Action::await_change());
            }
        }
    }
    if server.state() != Some(ServerState::Reserved) {
        return Err(Error::Conflict {
            what: format!("state of server {name}"),
        });
    }

    // 7. Boot configuration.
    let sbc_ref = ObjectRef::new(&claim.name_any()).within(&key.namespace);
    let wanted = writes::boot_configuration_spec(&claim, &name);
    let up_to_date = ctx.boot_configurations.get(&sbc_ref).is_some_and(|sbc| {
        writes::boot_configuration_matches(&sbc.spec, &wanted)
            && sbc
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == claim.metadata.uid.as_ref())
    });
    if !up_to_date {
        let sbcs = ctx.boot_configuration_api(&key.namespace);
        match writes::apply_boot_configuration(&sbcs, &claim, &name).await {
            Ok(()) => ctx.config.steps.pass("boot-configuration-applied").await,
            Err(CasError::Failed(Error::Kube {
                source: kube::Error::Api(s),
                ..
            })) if s.code == 422 => {
                // Its serverRef is immutable and points elsewhere (left from an earlier
                // binding): replace it.
                writes::delete(&sbcs, &claim.name_any()).await?;
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            Err(e) => return Err(e.into_error(format!("boot configuration {key}"))),
        }
    }

    // 8. Status.
    set_bound(&claim, &name, ctx).await?;
    Ok(Action::requeue(ctx.config.resync))
}

// ---------------------------------------------------------------------------------------------
// Status

fn now() -> Time {
    Time(Timestamp::now())
}

fn bound_condition(claim: &ServerClaim) -> Option<&Condition> {
    claim
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::BOUND))
}

/// Writes `phase` and the `Bound` condition unless they already say exactly that; `true` when
/// written (from exactly the version `claim` was read at).
async fn write_status(
    claim: &ServerClaim,
    phase: Phase,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    ctx: &Ctx,
) -> Result<bool, Error> {
    let current_phase = claim.status.as_ref().and_then(|s| s.phase);
    let mut list: Vec<Condition> = claim
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let condition = conditions::new(
        condition_types::BOUND,
        status,
        reason,
        message,
        claim.metadata.generation,
        now(),
    );
    let changed = conditions::set(&mut list, condition);
    if !changed && current_phase == Some(phase) {
        return Ok(false);
    }
    let Some(condition) = conditions::get(&list, condition_types::BOUND).cloned() else {
        return Ok(false);
    };
    writes::apply_claim_status(
        &ctx.claim_api(&ClaimKey::of(claim).namespace),
        claim,
        phase,
        &condition,
    )
    .await
}

async fn set_unbound(claim: &ServerClaim, unbound: &Unbound, ctx: &Ctx) -> Result<(), Error> {
    let previous = bound_condition(claim).map(|c| c.reason.clone());
    let written = write_status(
        claim,
        Phase::Unbound,
        ConditionStatus::False,
        unbound.reason,
        &unbound.message,
        ctx,
    )
    .await?;
    if written && previous.as_deref() != Some(unbound.reason) {
        ctx.events
            .normal(claim, event_reasons::UNBOUND, unbound.message.clone());
    }
    Ok(())
}

async fn set_bound(claim: &ServerClaim, server: &str, ctx: &Ctx) -> Result<(), Error> {
    let was_bound = claim.status.as_ref().and_then(|s| s.phase) == Some(Phase::Bound);
    let message = format!("bound to server {server}");
    let written = write_status(
        claim,
        Phase::Bound,
        ConditionStatus::True,
        reasons::BOUND,
        &message,
        ctx,
    )
    .await?;
    if written && !was_bound {
        if let Some(created) = &claim.metadata.creation_timestamp {
            let ms = Timestamp::now().as_millisecond() - created.0.as_millisecond();
            ctx.metrics
                .observe_bound(Duration::from_millis(ms.max(0) as u64));
        }
        ctx.events.normal(claim, event_reasons::BOUND, message);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Release

async fn release_claim(claim: &ServerClaim, ctx: &Ctx) -> Result<Action, Error> {
    if !writes::has_finalizer(claim, finalizers::SERVER_CLAIM) {
        return Ok(Action::await_change());
    }
    let key = ClaimKey::of(claim);
    let api = ctx.server_api();
    let mut server: Option<Server> = find_bound(claim, &key, ctx).await?.map(|s| (*s).clone());
    if server.is_none() {
        // Another instance may be half-way through binding this claim.
        let current = claim
            .annotations()
            .get(lock::ANNOTATION)
            .and_then(|v| BindingLock::parse(v));
        if let LockDecision::Wait { wait } = lock::decide(
            current.as_ref(),
            &ctx.config.identity,
            lock::now_millis(),
            ctx.config.binding_lock_timeout,
        ) {
            return Ok(Action::requeue(wait));
        }
        // The claim's own server, read live (the cache may lag behind a binding or a release).
        if let Some(r) = &claim.spec.server_ref {
            server = writes::get(&api, &r.name).await?;
        }
    }

    let mut released: Option<String> = None;
    for _ in 0..6 {
        let step = release::claim_release(claim, server.as_ref());
        let Some(current) = server.clone() else {
            break;
        };
        let name = current.name_any();
        let result = match &step {
            ClaimRelease::Finish => break,
            ClaimRelease::WaitForPowerOff(message) | ClaimRelease::WaitForState(message) => {
                write_status(
                    claim,
                    Phase::Bound,
                    ConditionStatus::True,
                    reasons::RELEASING,
                    message,
                    ctx,
                )
                .await?;
                return Ok(Action::requeue(ctx.config.resync));
            }
            ClaimRelease::ClearClaimRef | ClaimRelease::RecycleClearRef => {
                writes::set_claim_ref(&api, &current, None).await
            }
            ClaimRelease::MarkReleased => {
                writes::set_state(&api, &current, ServerState::Released).await
            }
            ClaimRelease::RecycleToAvailable => {
                match writes::cleaning_mode(&current, ctx.config.cleaning_mode) {
                    api::constants::CleaningMode::Disabled => {
                        writes::set_state(&api, &current, ServerState::Available).await
                    }
                    mode => writes::start_cleaning(&api, &current, mode).await,
                }
            }
        };
        match result {
            Ok(s) => {
                ctx.config
                    .steps
                    .pass(match step {
                        ClaimRelease::ClearClaimRef | ClaimRelease::RecycleClearRef => {
                            "claim-ref-cleared"
                        }
                        _ => "server-released",
                    })
                    .await;
                if matches!(
                    step,
                    ClaimRelease::MarkReleased | ClaimRelease::RecycleToAvailable
                ) {
                    released = Some(format!(
                        "released server {name} ({})",
                        s.state().map_or("(none)".to_string(), |s| s.to_string())
                    ));
                }
                server = Some(s);
            }
            Err(CasError::Conflict) => server = writes::get(&api, &name).await?,
            Err(CasError::NotFound) => server = None,
            Err(CasError::Failed(e)) => return Err(e),
        }
    }
    if let Some(s) = &server
        && release::claim_release(claim, Some(s)) != ClaimRelease::Finish
    {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }

    writes::delete(
        &ctx.boot_configuration_api(&key.namespace),
        &claim.name_any(),
    )
    .await?;
    let update = ClaimUpdate {
        finalizer: Some(false),
        ..Default::default()
    };
    writes::update_claim_retrying(&ctx.claim_api(&key.namespace), claim, &update).await?;
    ctx.holds.release_claim(&key);
    if let Some(note) = released {
        ctx.events.normal(claim, event_reasons::RELEASED, note);
    }
    tracing::debug!(claim = %key, "released");
    Ok(Action::await_change())
}
