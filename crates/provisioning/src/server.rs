//! The Server reconcile, as a pipeline:
//!
//! 1. **boot reference**: point `spec.bootConfigurationRef` at the active configuration (the
//!    claim's when Reserved, the internal discovery one in Initial/Discovery, none when
//!    Available/Released) — provisioning is its single writer;
//! 2. **guard**: stop unless the state makes provisioning the BMC's side-effect owner
//!    ([`crate::guard`]);
//! 3. **observe**: read the ComputerSystem once (power, override, boot order, LED);
//! 4. **reset annotations**: record, issue, remove the annotation, complete;
//! 5. **decide** ([`crate::decide`], pure);
//! 6. **record, then act**: every intent (power-on with override, power-off) is written to the
//!    Server's conditions with its `resourceVersion` as precondition *before* the BMC request,
//!    so a restarted controller sees it and does not repeat the request;
//! 7. **day 2**: boot order and indicator LED, when no power change is in flight;
//! 8. **report**: `status.powerState`, conditions, the claim's `PoweredOn` / `PoweredOff`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::common::ObjectReference;
use api::conditions::{self, ConditionStatus};
use api::constants::{OPERATION_ANNOTATION, Operation};
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use redfish::models::{BootSource, ComputerSystem, IndicatorLed};
use redfish::{ErrorClass, PowerAction, PowerOutcome};
use serde_json::json;

use crate::active::{claim_sbc, desired_boot_ref, served_configuration};
use crate::artifacts::{BootSource as Source, boot_source};
use crate::conditions::{
    POWERED_OFF, POWERED_ON, POWERING_ON, RESET_IN_PROGRESS, WAITING_FOR_POWER_OFF, reasons,
};
use crate::context::Ctx;
use crate::decide::{self, BmcPower, BootView, ClaimView, Input, Step, Wanted};
use crate::error::ReconcileError;
use crate::guard::{self, GuardedBmc, Permit};
use crate::status::{self, ServerDraft};

const SHORT: Duration = Duration::from_millis(200);
/// How long a ComputerSystem reading may be reused by the next reconcile (when nothing was
/// changed on the BMC in between).
const OBSERVATION_TTL: Duration = Duration::from_secs(1);

/// Reconciles one server and schedules the next reconcile.
pub async fn reconcile(ctx: Arc<Ctx>, name: String) {
    let timer = ctx.reconciles.start("Server");
    let Some(server) = ctx.stores.servers.get(&ObjectRef::new(&name)) else {
        ctx.forget(&name);
        timer.success();
        return;
    };
    let Some(shard) = ctx.shards.enter(&Ctx::shard_key(&server)) else {
        // Another replica's; taking the shard later requeues it.
        timer.success();
        return;
    };
    let outcome = tokio::select! {
        r = reconcile_server(&ctx, &server) => r,
        _ = shard.lost() => {
            // Dropped where it waited, as a kill would; the new holder picks it up.
            timer.failure("ShardLost");
            return;
        }
    };
    match outcome {
        Ok(next) => {
            ctx.memo(&name, |m| m.failures = 0);
            let d = next.unwrap_or(ctx.config.resync).min(ctx.config.resync);
            ctx.queues.servers.add_after(name, d);
            timer.success();
        }
        Err(e) => {
            let failures = ctx.memo(&name, |m| {
                m.failures = m.failures.saturating_add(1);
                m.failures
            });
            let retry = Ctx::backoff(failures);
            tracing::warn!(server = %name, error = %e, ?retry, "reconcile failed");
            ctx.queues.servers.add_after(name, retry);
            timer.failure(&e.reason());
        }
    }
}

/// The claim of a server as far as power is concerned, with the object when it exists.
async fn claim_of(
    ctx: &Ctx,
    server: &Server,
) -> Result<(ClaimView, Option<Arc<ServerClaim>>), ReconcileError> {
    let Some(r) = &server.spec.server_claim_ref else {
        return Ok((ClaimView::Unclaimed, None));
    };
    let cached = ctx
        .stores
        .claims
        .get(&ObjectRef::new(&r.name).within(&r.namespace));
    let claim = match cached {
        Some(c) => Some(c),
        // Never power a server off on a cache miss: confirm with the API server.
        None => {
            let _slot = ctx.api_slots.acquire().await;
            Api::<ServerClaim>::namespaced(ctx.client.clone(), &r.namespace)
                .get_opt(&r.name)
                .await?
                .map(Arc::new)
        }
    };
    Ok(match claim {
        None => (ClaimView::Gone, None),
        Some(c) if c.metadata.deletion_timestamp.is_some() => (ClaimView::Deleting, Some(c)),
        Some(c) => (ClaimView::Active(c.spec.power), Some(c)),
    })
}

/// Writes `spec.bootConfigurationRef` when it differs; returns the updated Server.
async fn ensure_boot_ref(
    ctx: &Ctx,
    server: &Server,
    desired: Option<ObjectReference>,
) -> Result<Option<Server>, kube::Error> {
    if server.spec.boot_configuration_ref == desired {
        return Ok(None);
    }
    let api = Api::<Server>::all(ctx.client.clone());
    let _slot = ctx.bulk_slots.acquire().await;
    let updated = match &desired {
        Some(r) => {
            let body = json!({
                "apiVersion": api::API_VERSION, "kind": "Server",
                "metadata": { "name": server.name_any() },
                "spec": { "bootConfigurationRef": r },
            });
            api.patch(
                &server.name_any(),
                &PatchParams::apply(status::FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await?
        }
        None => {
            api.patch(
                &server.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "bootConfigurationRef": null } })),
            )
            .await?
        }
    };
    tracing::info!(server = %server.name_any(), boot_configuration = ?desired, "spec.bootConfigurationRef updated");
    Ok(Some(updated))
}

/// A status write with the Server's resourceVersion as precondition: the new object, or `None`
/// when the Server changed meanwhile (the caller requeues and decides again).
async fn record(
    ctx: &Ctx,
    server: &Server,
    draft: &ServerDraft,
) -> Result<Option<Server>, kube::Error> {
    let _slot = ctx.api_slots.acquire().await;
    record_inner(ctx, server, draft).await
}

/// [`record`] for reports nobody waits on (confirmations, powerState).
async fn record_report(
    ctx: &Ctx,
    server: &Server,
    draft: &ServerDraft,
) -> Result<Option<Server>, kube::Error> {
    let _slot = ctx.bulk_slots.acquire().await;
    record_inner(ctx, server, draft).await
}

async fn record_inner(
    ctx: &Ctx,
    server: &Server,
    draft: &ServerDraft,
) -> Result<Option<Server>, kube::Error> {
    match status::apply_server(&ctx.client, server, draft, true).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if status::is_conflict(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn redfish_message(e: &redfish::Error) -> String {
    e.to_string()
}

fn is_connection_failure(e: &redfish::Error) -> bool {
    matches!(e.class(), ErrorClass::Unreachable | ErrorClass::Timeout)
}

/// Reconciles one server; returns when to look again.
async fn reconcile_server(
    ctx: &Arc<Ctx>,
    cached: &Arc<Server>,
) -> Result<Option<Duration>, ReconcileError> {
    let name = cached.name_any();
    if cached.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let state = cached.state();

    // 1. spec.bootConfigurationRef (not a BMC side effect).
    let (claim_view, claim) = claim_of(ctx, cached).await?;
    let desired_ref = desired_boot_ref(&ctx.stores, cached, claim_view, claim.as_deref());
    let server = cached;

    // 2. The guard.
    let permit = match guard::permit(server) {
        Ok(p) => p,
        Err(refused) => {
            tracing::trace!(server = %name, %refused, "not touching the BMC");
            if let Some(desired) = desired_ref {
                ensure_boot_ref(ctx, server, desired).await?;
            }
            return Ok(None);
        }
    };
    let state = state.unwrap_or(ServerState::Available);
    let sbc = claim
        .as_deref()
        .and_then(|c| claim_sbc(&ctx.stores, &name, c));
    let boot = match &sbc {
        Some(s) if status::sbc_ready(s) => match boot_source(&s.spec) {
            Source::Iso(iso) => BootView::VirtualMedia(iso),
            Source::None => BootView::NotReady,
            // The boot server answers from the caches: wait until they serve this configuration
            // (the claim may so far be known only from a live read).
            _ if served_configuration(&ctx.stores, server)
                .is_none_or(|served| served.uid() != s.uid()) =>
            {
                BootView::NotReady
            }
            _ => BootView::Network,
        },
        _ => BootView::NotReady,
    };
    let releasing = state == ServerState::Reserved
        && matches!(claim_view, ClaimView::Deleting | ClaimView::Gone);
    if let (ServerState::Reserved, ClaimView::Active(_), Some(c)) = (state, claim_view, &claim) {
        let uid = c.uid().unwrap_or_default();
        ctx.memo(&name, |m| {
            if m.reserved_seen.as_ref().map(|(u, _)| u) != Some(&uid) {
                m.reserved_seen = Some((uid, Instant::now()));
                m.media_inserted = false;
            }
        });
    }

    // 3. Observe.
    let bmc = match ctx.bmcs.for_server(&permit, server) {
        Ok(b) => b,
        Err(e) => {
            if releasing && let Some(c) = &claim {
                report_claim_off(
                    ctx,
                    c,
                    (
                        ConditionStatus::False,
                        reasons::BMC_UNREACHABLE,
                        e.to_string(),
                    ),
                )
                .await?;
            }
            return match e {
                crate::bmc::BmcError::BackingOff { retry_in, .. } => Ok(Some(retry_in)),
                e => Err(e.into()),
            };
        }
    };
    // A reading younger than a second is reused: reconciles triggered by our own writes come
    // in bursts, and every mutating call reads the system again before it acts.
    // Taken out: only a reconcile that ends without touching the BMC puts a reading back.
    let recent = ctx.memo(&name, |m| {
        m.observed
            .take()
            .filter(|(t, _)| t.elapsed() < OBSERVATION_TTL)
    });
    let (read, read_at) = match recent {
        Some((t, s)) => (Ok(s), t),
        None => (bmc.read_system(&permit).await, Instant::now()),
    };
    let sys = match read {
        Ok(s) => {
            ctx.bmcs.record(server, Ok(()));
            s
        }
        Err(e) => {
            ctx.bmcs.record(server, Err(&e));
            if releasing && let Some(c) = &claim {
                report_claim_off(
                    ctx,
                    c,
                    (
                        ConditionStatus::False,
                        reasons::BMC_UNREACHABLE,
                        redfish_message(&e),
                    ),
                )
                .await?;
            }
            return Err(e.into());
        }
    };
    let power = BmcPower::from(sys.power_state.as_ref());

    // 4. Reset annotations.
    if let Some(next) = handle_reset(ctx, server, &permit, &bmc).await? {
        return Ok(Some(next));
    }

    // 5. Decide.
    let draft = ServerDraft::of(server);
    let since_retry = ctx.memo(&name, |m| m.last_off_retry.map(|t| t.elapsed()));
    let reset_settling = draft.get(RESET_IN_PROGRESS).is_some_and(|c| {
        let age: Duration = Timestamp::now()
            .duration_since(c.last_transition_time.0)
            .try_into()
            .unwrap_or_default();
        age < ctx.config.timing.confirm_timeout
            && ["GracefulRestart", "ForceRestart", "PowerCycle"]
                .iter()
                .any(|t| c.message.starts_with(t) || c.reason == *t)
    });
    let input = Input {
        now: Timestamp::now(),
        state,
        claim: claim_view,
        boot: boot.clone(),
        bmc: power,
        powering_on: draft.get(POWERING_ON),
        waiting_off: draft.get(WAITING_FOR_POWER_OFF),
        since_last_off_retry: since_retry,
        reset_settling,
        timing: ctx.config.timing,
    };
    let d = decide::decide(&input);
    tracing::debug!(server = %name, ?state, ?claim_view, ?power, step = ?d.step, "decided");

    // 6. Record, then act.
    let generation = server.metadata.generation;
    let mut current: Server = (**server).clone();
    let mut next = draft.clone();
    if let Some(p) = power.server_power_state() {
        next.power_state = Some(p);
    }
    if d.cancel_power_on {
        status::set(
            &mut next.conditions,
            POWERING_ON,
            ConditionStatus::False,
            reasons::POWER_ON_CANCELLED,
            "power-on no longer wanted",
            generation,
        );
    }
    if d.cancel_power_off {
        status::set(
            &mut next.conditions,
            WAITING_FOR_POWER_OFF,
            ConditionStatus::False,
            reasons::POWER_OFF_CANCELLED,
            "power-off no longer wanted: the claim asks for power On",
            generation,
        );
    }
    let mut claim_off: Option<decide::ClaimCondition> = None;
    let mut requeue = d.requeue;
    let off_action = |force: bool| {
        if force {
            PowerAction::ForceOff
        } else {
            PowerAction::GracefulOff
        }
    };

    match &d.step {
        Step::StartBoot => {
            let method = match &boot {
                BootView::VirtualMedia(_) => "VirtualMedia",
                _ => "Network",
            };
            status::set(
                &mut next.conditions,
                POWERING_ON,
                ConditionStatus::True,
                reasons::SERVER_POWER_ON,
                &format!(
                    "{method} boot: one-time boot override and power-on requested; waiting for the BMC to report On"
                ),
                generation,
            );
            if method == "Network" {
                // In the same write: this power-on may fetch its boot script, once.
                api::bootwindow::open(
                    &mut next.conditions,
                    "network boot of the claim's configuration",
                    generation,
                    status::now(),
                );
            }
            match record(ctx, &current, &next).await? {
                Some(s) => current = s,
                None => return Ok(Some(SHORT)),
            }
            ctx.config.steps.pass("boot-recorded").await;
            match start_boot(ctx, &permit, &bmc, &boot, &name).await {
                Ok((override_set, issued)) => {
                    let target = match &boot {
                        BootView::VirtualMedia(_) => "Cd",
                        _ => ctx.config.network_boot_target.as_str(),
                    };
                    if override_set {
                        ctx.event(
                            &current,
                            false,
                            "BootOverrideSet",
                            "SetBootOverride",
                            format!("one-time boot override {target} set for the next boot"),
                        );
                    }
                    ctx.event(
                        &current,
                        false,
                        "PowerOn",
                        "PowerOn",
                        format!(
                            "{method} boot: one-time boot override {target} set, power-on {}",
                            if issued {
                                "issued"
                            } else {
                                "not needed (already on)"
                            }
                        ),
                    );
                    if issued && let Some(c) = &claim {
                        measure_boot(ctx, &name, c, method);
                    }
                }
                Err((stage, e)) => {
                    if stage == "power-on" && e.class() == ErrorClass::Timeout {
                        // The request may have reached the BMC: keep the record, so the
                        // confirm timeout decides instead of a second power-on.
                        return Err(e.into());
                    }
                    let msg = format!("{stage} failed: {}", redfish_message(&e));
                    status::set(
                        &mut next.conditions,
                        POWERING_ON,
                        ConditionStatus::False,
                        reasons::POWER_ON_FAILED,
                        &msg,
                        generation,
                    );
                    ctx.event(&current, true, "PowerOnFailed", "PowerOn", msg);
                    record(ctx, &current, &next).await?;
                    return Err(e.into());
                }
            }
        }
        Step::PowerOnTimedOut => {
            let msg = format!(
                "the BMC did not report On within {:?} of the power-on request; a new boot follows",
                ctx.config.timing.confirm_timeout
            );
            status::set(
                &mut next.conditions,
                POWERING_ON,
                ConditionStatus::False,
                reasons::POWER_ON_TIMED_OUT,
                &msg,
                generation,
            );
            ctx.event(&current, true, "PowerOnTimedOut", "PowerOn", msg);
        }
        Step::ConfirmOn => {
            status::set(
                &mut next.conditions,
                POWERING_ON,
                ConditionStatus::False,
                reasons::SERVER_POWERED_ON,
                "the BMC reports PowerState On",
                generation,
            );
        }
        Step::StartPowerOff { issue } => {
            status::set(
                &mut next.conditions,
                WAITING_FOR_POWER_OFF,
                ConditionStatus::True,
                reasons::WAITING_FOR_POWER_OFF,
                &format!(
                    "graceful shutdown requested; waiting for the BMC to report Off (now {})",
                    power_label(power)
                ),
                generation,
            );
            match record(ctx, &current, &next).await? {
                Some(s) => current = s,
                None => return Ok(Some(SHORT)),
            }
            ctx.config.steps.pass("power-off-recorded").await;
            if *issue {
                match bmc.power(&permit, PowerAction::GracefulOff).await {
                    Ok(PowerOutcome::Issued(_)) => ctx.event(
                        &current,
                        false,
                        "PowerOff",
                        "PowerOff",
                        "graceful shutdown requested".into(),
                    ),
                    Ok(PowerOutcome::AlreadyInState(_)) => {}
                    Err(e)
                        if e.class() == ErrorClass::NotSupported
                            && ctx.config.timing.power_off_timeout.is_some() =>
                    {
                        // No graceful shutdown on this BMC: force right away.
                        status::set(
                            &mut next.conditions,
                            WAITING_FOR_POWER_OFF,
                            ConditionStatus::True,
                            reasons::FORCE_OFF_REQUESTED,
                            &format!(
                                "graceful shutdown not supported ({e}); forced power-off requested"
                            ),
                            generation,
                        );
                        match record(ctx, &current, &next).await? {
                            Some(s) => current = s,
                            None => return Ok(Some(SHORT)),
                        }
                        if let Err(e) = bmc.power(&permit, PowerAction::ForceOff).await {
                            off_failed(ctx, &current, &mut next, &mut claim_off, &e, generation);
                        } else {
                            ctx.event(
                                &current,
                                false,
                                "ForceOff",
                                "PowerOff",
                                "forced power-off requested".into(),
                            );
                        }
                    }
                    Err(e) => off_failed(ctx, &current, &mut next, &mut claim_off, &e, generation),
                }
            }
        }
        Step::ForceOff => {
            status::set(
                &mut next.conditions,
                WAITING_FOR_POWER_OFF,
                ConditionStatus::True,
                reasons::FORCE_OFF_REQUESTED,
                &format!(
                    "graceful shutdown did not finish within {:?}; forced power-off requested",
                    ctx.config.timing.power_off_timeout.unwrap_or_default()
                ),
                generation,
            );
            match record(ctx, &current, &next).await? {
                Some(s) => current = s,
                None => return Ok(Some(SHORT)),
            }
            match bmc.power(&permit, PowerAction::ForceOff).await {
                Ok(PowerOutcome::Issued(_)) => ctx.event(
                    &current,
                    false,
                    "ForceOff",
                    "PowerOff",
                    "graceful shutdown timed out; forced power-off requested".into(),
                ),
                Ok(_) => {}
                Err(e) => off_failed(ctx, &current, &mut next, &mut claim_off, &e, generation),
            }
        }
        Step::DeclareRefused { elapsed } => {
            let msg = format!(
                "the BMC accepted the power-off request but still reports PowerState {} after {}s",
                power_label(power),
                elapsed.as_secs()
            );
            status::set(
                &mut next.conditions,
                WAITING_FOR_POWER_OFF,
                ConditionStatus::True,
                reasons::POWER_OFF_REFUSED,
                &msg,
                generation,
            );
            ctx.event(&current, true, "PowerOffRefused", "PowerOff", msg.clone());
            claim_off = Some((ConditionStatus::False, reasons::POWER_OFF_REFUSED, msg));
        }
        Step::RetryPowerOff { force } => {
            ctx.memo(&name, |m| m.last_off_retry = Some(Instant::now()));
            match bmc.power(&permit, off_action(*force)).await {
                Ok(_) => {}
                Err(e) => off_failed(ctx, &current, &mut next, &mut claim_off, &e, generation),
            }
        }
        Step::ConfirmOff => {
            if releasing {
                let vm = matches!(boot, BootView::VirtualMedia(_))
                    || sbc
                        .as_ref()
                        .is_some_and(|s| matches!(boot_source(&s.spec), Source::Iso(_)))
                    || sbc.is_none()
                    || ctx.memo(&name, |m| m.media_inserted);
                if vm {
                    match bmc.eject_media(&permit).await {
                        Ok(redfish::MediaOutcome::Ejected) => {
                            ctx.memo(&name, |m| m.media_inserted = false);
                            ctx.event(
                                &current,
                                false,
                                "MediaEjected",
                                "EjectMedia",
                                "virtual media ejected on release".into(),
                            );
                        }
                        Ok(_) => {}
                        Err(e) if e.class() == ErrorClass::NotSupported => {
                            // Nothing to eject with (no slot, no eject action): do not hold
                            // the release back for it, but say so.
                            ctx.event(
                                &current,
                                true,
                                "MediaEjectNotSupported",
                                "EjectMedia",
                                format!("cannot eject virtual media: {e}"),
                            );
                        }
                        Err(e) => {
                            if let Some(c) = &claim {
                                report_claim_off(
                                    ctx,
                                    c,
                                    (
                                        ConditionStatus::False,
                                        reasons::WAITING_FOR_POWER_OFF,
                                        format!("powered off; ejecting virtual media failed: {e}"),
                                    ),
                                )
                                .await?;
                            }
                            return Err(e.into());
                        }
                    }
                }
            }
            let was_waiting = decide::is_pending(draft.get(WAITING_FOR_POWER_OFF));
            status::set(
                &mut next.conditions,
                WAITING_FOR_POWER_OFF,
                ConditionStatus::False,
                reasons::POWER_OFF_CONFIRMED,
                "the BMC reports PowerState Off",
                generation,
            );
            if matches!(claim_view, ClaimView::Deleting) {
                claim_off = Some((
                    ConditionStatus::True,
                    reasons::POWER_OFF_CONFIRMED,
                    "the BMC reports PowerState Off".into(),
                ));
            }
            if was_waiting {
                ctx.event(
                    &current,
                    false,
                    "PowerOffConfirmed",
                    "PowerOff",
                    "the BMC reports PowerState Off".into(),
                );
                if releasing && let Some(c) = &claim {
                    ctx.event(
                        &**c,
                        false,
                        "PowerOffConfirmed",
                        "Release",
                        format!("server {name} is powered off (confirmed by its BMC)"),
                    );
                }
            }
        }
        Step::AwaitPowerOn
        | Step::AwaitPowerOff
        | Step::Unknown
        | Step::Idle
        | Step::WaitForBootConfiguration => {}
    }

    // Media inserted for a claim whose configuration is gone: eject it. Known from memory
    // (inserted by this process), or from `spec.bootConfigurationRef` still naming a
    // configuration that no longer exists (deleted while no instance was running; the
    // reference is cleared below, so this is tried once per deletion).
    let ref_orphaned = current
        .spec
        .boot_configuration_ref
        .as_ref()
        .is_some_and(|r| {
            ctx.stores
                .sbcs
                .get(&ObjectRef::new(&r.name).within(&r.namespace))
                .is_none()
        });
    if state == ServerState::Reserved
        && matches!(claim_view, ClaimView::Active(_))
        && sbc.is_none()
        && (ref_orphaned || ctx.memo(&name, |m| m.media_inserted))
    {
        match bmc.eject_media(&permit).await {
            Ok(outcome) => {
                ctx.memo(&name, |m| m.media_inserted = false);
                if outcome == redfish::MediaOutcome::Ejected {
                    ctx.event(
                        &current,
                        false,
                        "MediaEjected",
                        "EjectMedia",
                        "the boot configuration was removed; virtual media ejected".into(),
                    );
                }
            }
            // No virtual media on this BMC: nothing can have been inserted.
            Err(e) if e.class() == ErrorClass::NotSupported => {
                ctx.memo(&name, |m| m.media_inserted = false);
            }
            Err(e) => {
                // Retried by this process while it runs.
                ctx.memo(&name, |m| m.media_inserted = true);
                tracing::warn!(server = %name, error = %e, "ejecting virtual media failed");
            }
        }
    }

    // 7. Day 2, only while no power change is in flight.
    if matches!(
        d.step,
        Step::Idle | Step::ConfirmOn | Step::ConfirmOff | Step::WaitForBootConfiguration
    ) {
        day2(ctx, &current, &permit, &bmc, &sys).await;
    }

    // 8. Report (the boot reference last: the boot server applies the same rule already).
    if next != ServerDraft::of(&current) && record_report(ctx, &current, &next).await?.is_none() {
        return Ok(Some(SHORT));
    }
    if let Some(desired) = desired_ref {
        ensure_boot_ref(ctx, &current, desired).await?;
    }
    if let Some(c) = &claim {
        if releasing && matches!(claim_view, ClaimView::Deleting) && claim_off.is_none() {
            let waiting = next.get(WAITING_FOR_POWER_OFF);
            claim_off = Some(match waiting {
                Some(w) if w.reason == reasons::POWER_OFF_REFUSED => (
                    ConditionStatus::False,
                    reasons::POWER_OFF_REFUSED,
                    w.message.clone(),
                ),
                _ => (
                    ConditionStatus::False,
                    reasons::WAITING_FOR_POWER_OFF,
                    format!(
                        "waiting for the BMC to report PowerState Off (now {})",
                        power_label(power)
                    ),
                ),
            });
        }
        let on = decide::claim_powered_on(claim_view, &boot, &d);
        report_claim(ctx, c, on, claim_off).await?;
    }
    if d.wanted == Wanted::On && d.step == Step::WaitForBootConfiguration {
        requeue = requeue.or(Some(Duration::from_secs(30)));
    }
    remember(ctx, &name, &bmc, read_at, sys);
    Ok(requeue)
}

/// Keeps the reading for the next reconcile unless this one changed something on the BMC.
fn remember(ctx: &Ctx, name: &str, bmc: &GuardedBmc, read_at: Instant, sys: ComputerSystem) {
    let keep = !bmc.mutated();
    ctx.memo(name, |m| {
        m.observed = keep.then_some((read_at, sys));
    });
}

fn power_label(p: BmcPower) -> &'static str {
    match p {
        BmcPower::On => "On",
        BmcPower::Off => "Off",
        BmcPower::PoweringOn => "PoweringOn",
        BmcPower::PoweringOff => "PoweringOff",
        BmcPower::Paused => "Paused",
        BmcPower::Unknown => "unknown",
    }
}

/// A power-off request failed: a connection failure keeps waiting (retried), anything else is
/// the BMC refusing, reported with its message.
fn off_failed(
    ctx: &Arc<Ctx>,
    server: &Server,
    next: &mut ServerDraft,
    claim_off: &mut Option<decide::ClaimCondition>,
    e: &redfish::Error,
    generation: Option<i64>,
) {
    let msg = format!("the BMC refused the power-off request: {e}");
    if is_connection_failure(e) {
        *claim_off = Some((
            ConditionStatus::False,
            reasons::BMC_UNREACHABLE,
            e.to_string(),
        ));
        return;
    }
    status::set(
        &mut next.conditions,
        WAITING_FOR_POWER_OFF,
        ConditionStatus::True,
        reasons::POWER_OFF_REFUSED,
        &msg,
        generation,
    );
    ctx.event(server, true, "PowerOffRefused", "PowerOff", msg.clone());
    *claim_off = Some((ConditionStatus::False, reasons::POWER_OFF_REFUSED, msg));
}

/// Inserts media (virtual media boots), sets the one-time override and powers on. Returns
/// whether the override was written (false: already set) and whether a power-on request was sent
/// (false: the BMC already reported On).
async fn start_boot(
    ctx: &Ctx,
    permit: &Permit,
    bmc: &GuardedBmc,
    boot: &BootView,
    name: &str,
) -> Result<(bool, bool), (&'static str, redfish::Error)> {
    let target = match boot {
        BootView::VirtualMedia(iso) => {
            bmc.insert_media(permit, iso)
                .await
                .map_err(|e| ("inserting virtual media", e))?;
            ctx.memo(name, |m| m.media_inserted = true);
            BootSource::Cd
        }
        _ => ctx.config.network_boot_target.clone(),
    };
    let override_set = bmc
        .set_boot_override_once(permit, target)
        .await
        .map_err(|e| ("setting the boot override", e))?;
    let outcome = bmc
        .power(permit, PowerAction::On)
        .await
        .map_err(|e| ("power-on", e))?;
    Ok((override_set, matches!(outcome, PowerOutcome::Issued(_))))
}

/// Records the time from the claim binding to the power-on request, once per claim.
fn measure_boot(ctx: &Ctx, name: &str, claim: &ServerClaim, method: &str) {
    let uid = claim.uid().unwrap_or_default();
    let seen = ctx.memo(name, |m| {
        if m.boot_measured.as_deref() == Some(uid.as_str()) {
            return None;
        }
        m.boot_measured = Some(uid.clone());
        m.reserved_seen
            .as_ref()
            .filter(|(u, _)| *u == uid)
            .map(|(_, t)| *t)
    });
    let Some(seen) = seen else { return };
    let mut secs = seen.elapsed().as_secs_f64();
    // After a restart the claim's Bound condition tells the real start.
    if let Some(bound) = claim
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, "Bound"))
        .filter(|c| c.status == "True")
    {
        let since: Duration = Timestamp::now()
            .duration_since(bound.last_transition_time.0)
            .try_into()
            .unwrap_or_default();
        if since.as_secs_f64() > secs + 2.0 {
            secs = since.as_secs_f64();
        }
    }
    ctx.metrics.boot(method, secs);
}

/// Writes the claim's conditions when they change.
async fn report_claim(
    ctx: &Ctx,
    claim: &ServerClaim,
    on: Option<decide::ClaimCondition>,
    off: Option<decide::ClaimCondition>,
) -> Result<(), kube::Error> {
    let existing = claim.status.clone().unwrap_or_default().conditions;
    let mut mine = status::owned(&existing, status::CLAIM_CONDITIONS);
    let before = mine.clone();
    let generation = claim.metadata.generation;
    if let Some((s, r, m)) = on {
        status::set(&mut mine, POWERED_ON, s, r, &m, generation);
    }
    let releasing = off.is_some();
    if let Some((s, r, m)) = off {
        status::set(&mut mine, POWERED_OFF, s, r, &m, generation);
    }
    if mine == before {
        return Ok(());
    }
    // A release waits for PoweredOff; PoweredOn is information.
    let _slot = if releasing {
        ctx.api_slots.acquire().await
    } else {
        ctx.bulk_slots.acquire().await
    };
    match status::apply_claim(&ctx.client, claim, &mine).await {
        Ok(_) => Ok(()),
        Err(e) if status::is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn report_claim_off(
    ctx: &Ctx,
    claim: &ServerClaim,
    off: decide::ClaimCondition,
) -> Result<(), kube::Error> {
    if claim.metadata.deletion_timestamp.is_none() {
        return Ok(());
    }
    report_claim(ctx, claim, None, Some(off)).await
}

/// The reset annotations (graceful-restart-server, hard-restart-server, power-cycle-server,
/// force-off-server, force-on-server): record `ResetInProgress=True` (precondition), issue,
/// remove the annotation, record `False/ResetIssued`. A restart between record and removal does
/// not issue again (at most once). Returns `Some(requeue)` when it wrote anything.
async fn handle_reset(
    ctx: &Arc<Ctx>,
    server: &Server,
    permit: &Permit,
    bmc: &GuardedBmc,
) -> Result<Option<Duration>, ReconcileError> {
    let value = server.annotations().get(OPERATION_ANNOTATION).cloned();
    let op = value
        .as_deref()
        .and_then(|v| v.parse::<Operation>().ok())
        .filter(|o| o.redfish_reset_type().is_some() && *o != Operation::GracefulRestartBmc);
    let draft = ServerDraft::of(server);
    let in_progress = draft
        .get(RESET_IN_PROGRESS)
        .filter(|c| c.status == ConditionStatus::True.as_str())
        .cloned();
    let generation = server.metadata.generation;
    let Some(op) = op else {
        if let Some(c) = in_progress {
            // The annotation is gone (removed by us before a restart, or by the user).
            let mut next = draft.clone();
            status::set(
                &mut next.conditions,
                RESET_IN_PROGRESS,
                ConditionStatus::False,
                reasons::RESET_ISSUED,
                &c.message,
                generation,
            );
            record(ctx, server, &next).await?;
            return Ok(Some(SHORT));
        }
        return Ok(None);
    };
    let reset_type = op.redfish_reset_type().unwrap_or_default();
    let mut current = server.clone();
    let mut next = draft.clone();
    let already = in_progress.as_ref().is_some_and(|c| c.reason == reset_type);
    let mut outcome = format!(
        "{reset_type} issued (annotation {OPERATION_ANNOTATION}={})",
        op.as_str()
    );
    if !already {
        status::set(
            &mut next.conditions,
            RESET_IN_PROGRESS,
            ConditionStatus::True,
            reset_type,
            &format!(
                "{reset_type} requested by annotation {OPERATION_ANNOTATION}={}",
                op.as_str()
            ),
            generation,
        );
        if op != Operation::ForceOffServer {
            // A reset through the API is an authorized boot: if the server network-boots
            // (a live OS), its firmware may fetch the boot script once.
            api::bootwindow::open(
                &mut next.conditions,
                &format!("reset {reset_type}"),
                generation,
                status::now(),
            );
        }
        match record(ctx, &current, &next).await? {
            Some(s) => current = s,
            None => return Ok(Some(SHORT)),
        }
        let action = match op {
            Operation::GracefulRestartServer => PowerAction::GracefulRestart,
            Operation::HardRestartServer => PowerAction::ForceRestart,
            Operation::PowerCycleServer => PowerAction::PowerCycle,
            Operation::ForceOffServer => PowerAction::ForceOff,
            _ => PowerAction::On,
        };
        match bmc.power(permit, action).await {
            Ok(r) => {
                if let PowerOutcome::AlreadyInState(s) = r {
                    outcome = format!("{reset_type} not needed: the server already is {s}");
                }
                ctx.event(&current, false, "ResetIssued", "Reset", outcome.clone());
            }
            Err(e) if e.class() == ErrorClass::Unreachable => {
                // Nothing was sent: retry later.
                status::set(
                    &mut next.conditions,
                    RESET_IN_PROGRESS,
                    ConditionStatus::False,
                    reasons::RESET_FAILED,
                    &e.to_string(),
                    generation,
                );
                record(ctx, &current, &next).await?;
                return Err(e.into());
            }
            Err(e) => {
                outcome = format!("{reset_type} failed: {e}");
                ctx.event(&current, true, "ResetFailed", "Reset", outcome.clone());
            }
        }
    }
    // Remove the annotation we acted on; the resourceVersion precondition keeps a value the
    // user wrote meanwhile.
    let removed = {
        let _slot = ctx.api_slots.acquire().await;
        Api::<Server>::all(ctx.client.clone())
            .patch(
                &server.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": {
                    "resourceVersion": current.metadata.resource_version,
                    "annotations": { OPERATION_ANNOTATION: null },
                } })),
            )
            .await
    };
    match removed {
        Ok(s) => current = s,
        Err(e) if status::is_conflict(&e) || status::is_not_found(&e) => return Ok(Some(SHORT)),
        Err(e) => return Err(e.into()),
    }
    let failed = outcome.contains("failed");
    status::set(
        &mut next.conditions,
        RESET_IN_PROGRESS,
        ConditionStatus::False,
        if failed {
            reasons::RESET_FAILED
        } else {
            reasons::RESET_ISSUED
        },
        &outcome,
        generation,
    );
    record(ctx, &current, &next).await?;
    Ok(Some(Duration::from_secs(1)))
}

/// Boot order and indicator LED (idempotent: compared with what the BMC reports first).
async fn day2(
    ctx: &Arc<Ctx>,
    server: &Server,
    permit: &Permit,
    bmc: &GuardedBmc,
    sys: &ComputerSystem,
) {
    if !server.spec.boot_order.is_empty() {
        let mut wanted = server.spec.boot_order.clone();
        wanted.sort_by_key(|b| b.priority);
        let devices: Vec<String> = wanted.into_iter().map(|b| b.device).collect();
        let current = sys
            .boot
            .as_ref()
            .map(|b| b.boot_order.clone())
            .unwrap_or_default();
        if !current.starts_with(&devices) {
            match bmc.set_boot_order(permit, &devices).await {
                Ok(true) => ctx.event(
                    server,
                    false,
                    "BootOrderSet",
                    "SetBootOrder",
                    format!("boot order set to [{}]", devices.join(", ")),
                ),
                Ok(false) => {}
                Err(e) => ctx.event(
                    server,
                    true,
                    "BootOrderFailed",
                    "SetBootOrder",
                    format!("setting the boot order failed: {e}"),
                ),
            }
        }
    }
    let led = match server.spec.indicator_led {
        Some(api::common::IndicatorLED::Lit) => Some(IndicatorLed::Lit),
        Some(api::common::IndicatorLED::Blinking) => Some(IndicatorLed::Blinking),
        Some(api::common::IndicatorLED::Off) => Some(IndicatorLed::Off),
        _ => None,
    };
    if let Some(led) = led {
        let differs = match (&sys.indicator_led, sys.location_indicator_active) {
            (Some(cur), _) => *cur != led,
            (None, Some(active)) => active != (led != IndicatorLed::Off),
            (None, None) => true,
        };
        if differs {
            match bmc.set_indicator_led(permit, led.clone()).await {
                Ok(true) => ctx.event(
                    server,
                    false,
                    "IndicatorLEDSet",
                    "SetIndicatorLED",
                    format!("indicator LED set to {}", led.as_str()),
                ),
                Ok(false) => {}
                Err(e) => ctx.event(
                    server,
                    true,
                    "IndicatorLEDFailed",
                    "SetIndicatorLED",
                    format!("setting the indicator LED failed: {e}"),
                ),
            }
        }
    }
}
