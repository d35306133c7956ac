//! The BIOSSettings controller.
//!
//! Everything that can be checked without disturbing the server is checked first, from the
//! BMC's current values: the BIOS version, duplicate attributes, the values against the
//! attribute registry, and whether anything differs at all. Only then is a ServerMaintenance
//! requested (`bios-<name>` in the configured namespace, owned by the BIOSSettings). Inside the
//! maintenance each step (ascending priority) is written as pending attributes, the server is
//! rebooted once (the reboot is recorded in the step's status before it is sent), and the
//! step counts as applied when the BIOS reports the values. The maintenance is deleted when
//! all steps are applied or the object failed.

use crate::biosplan::{self, DEFAULT_MAX_ATTEMPTS};
use crate::{Caches, Ctx, Error, now, plan, window, writes};
use api::biossettings::{
    BIOSSettings, BIOSSettingsFlowStatus, BIOSSettingsState, BIOSSettingsStatus,
};
use api::conditions;
use api::constants::{condition_types as ct, reasons};
use api::server::Server;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use redfish::models::{AttributeValue, PowerState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Condition type (top level): whether the BIOS runs the version the settings are for.
pub const VERSION_CONDITION: &str = "VersionMatching";
/// Condition type (top level): whether the BMC could be read.
pub const BMC_CONDITION: &str = "BMCReachable";

/// How often a step in progress is checked.
const POLL: Duration = Duration::from_secs(2);

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    window::run(
        ctx,
        &caches.bios_settings,
        caches,
        shutdown,
        |bs: Arc<BIOSSettings>, ctx: Arc<Ctx>| async move { reconcile_one(&bs, &ctx).await },
    )
    .await;
}

fn api(ctx: &Ctx) -> Api<BIOSSettings> {
    Api::all(ctx.client.clone())
}

async fn reconcile_one(bs: &BIOSSettings, ctx: &Ctx) -> Result<Action, Error> {
    if let Some(done) = window::prologue(ctx, bs).await? {
        return Ok(done);
    }
    let status = bs.status.clone().unwrap_or_default();
    // Failed is sticky until the retry annotation; Applied is re-checked against the BMC on
    // every reconcile, so a changed spec needs no generation bookkeeping (our own writes of
    // spec.serverMaintenanceRef bump the generation too).
    let failed = status.state == Some(BIOSSettingsState::Failed);
    if let Some(done) =
        window::sticky_failure(ctx, bs, &status, failed, |old| restart(bs, old, 0)).await?
    {
        return Ok(done);
    }
    let mut status = status;

    // Validate what needs no server.
    let dups = biosplan::duplicate_keys(&bs.spec);
    if !dups.is_empty() {
        let msg = format!("attributes set in more than one step: {}", dups.join(", "));
        return fail(
            ctx,
            bs,
            status,
            ct::SETTINGS_DUPLICATE_KEYS,
            reasons::SETTINGS_DUPLICATE_KEYS_FOUND,
            &msg,
        )
        .await;
    }
    let Some(server_name) = bs.spec.server_ref.as_ref().map(|r| r.name.clone()) else {
        return pending(
            ctx,
            bs,
            status,
            "ServerNotFound",
            "spec.serverRef is not set",
        )
        .await;
    };
    let Some(server) = ctx.servers.get(&ObjectRef::new(&server_name)) else {
        let msg = format!("server {server_name} does not exist");
        return pending(ctx, bs, status, "ServerNotFound", &msg).await;
    };

    if let Some(key) = window::waiting_for(ctx, bs, &server) {
        return window::wait_for_window(ctx, bs, status, &key).await;
    }
    // Read the BMC (no side effects).
    let facts = match read_bios(ctx, &server).await {
        Ok(f) => f,
        Err(e) => {
            conditions::set(
                &mut status.conditions,
                window::condition(bs, BMC_CONDITION, false, e.reason(), &e.to_string()),
            );
            window::write_status(ctx, bs, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    conditions::set(
        &mut status.conditions,
        window::condition(bs, BMC_CONDITION, true, "Reachable", "the BMC answered"),
    );
    let wanted = bs.spec.template.version.as_str();
    if !biosplan::version_matches(wanted, facts.version.as_deref()) {
        let msg = format!(
            "the BIOS runs version {}; these settings are for {wanted}",
            facts.version.as_deref().unwrap_or("(unknown)")
        );
        conditions::set(
            &mut status.conditions,
            window::condition(bs, VERSION_CONDITION, false, "VersionMismatch", &msg),
        );
        window::release(ctx, bs).await?;
        return pending_with(ctx, bs, status).await;
    }
    conditions::set(
        &mut status.conditions,
        window::condition(
            bs,
            VERSION_CONDITION,
            true,
            "VersionMatches",
            "the BIOS runs the version the settings are for",
        ),
    );

    let steps = biosplan::ordered(&bs.spec);
    let typed: Vec<BTreeMap<String, AttributeValue>> = steps
        .iter()
        .map(|s| biosplan::typed(&s.settings, facts.registry.as_deref(), &facts.current))
        .collect();
    if let Some(registry) = &facts.registry {
        let mut errors = Vec::new();
        for t in &typed {
            if let Err(errs) = redfish::validate_attributes(registry, t) {
                errors.extend(errs.iter().map(|e| e.to_string()));
            }
        }
        if !errors.is_empty() {
            let msg = format!(
                "the BMC's attribute registry rejects: {}",
                errors.join("; ")
            );
            return fail(
                ctx,
                bs,
                status,
                ct::SETTINGS_VALIDATION_FAILED,
                ct::SETTINGS_VALIDATION_FAILED,
                &msg,
            )
            .await;
        }
    }
    let differing: Vec<Vec<String>> = typed
        .iter()
        .map(|t| biosplan::differing(&facts.current, t))
        .collect();
    status.flow_state = flow_status(bs, &status, &differing);
    let Some(current) = differing.iter().position(|d| !d.is_empty()) else {
        return applied(ctx, bs, status).await;
    };

    // Something must change: that needs the server in maintenance.
    let Some(sm_key) = window::ensure(ctx, bs).await? else {
        status.state = Some(BIOSSettingsState::Pending);
        return pending_with(ctx, bs, status).await;
    };
    if !plan::holds(&server, &sm_key) {
        return window::wait_for_window(ctx, bs, status, &sm_key).await;
    }
    conditions::remove(&mut status.conditions, ct::SERVER_MAINTENANCE_WAITING);

    // In maintenance: the attempt's clock.
    if status.state != Some(BIOSSettingsState::InProgress) {
        // A new attempt: records of an earlier one must not hold this one back.
        for f in &mut status.flow_state {
            conditions::remove(&mut f.conditions, ct::REBOOT_POST_UPDATE);
            conditions::remove(&mut f.conditions, ct::SETTINGS_UPDATE_ISSUED);
        }
        status.state = Some(BIOSSettingsState::InProgress);
        conditions::set(
            &mut status.conditions,
            window::condition(
                bs,
                ct::SETTINGS_UPDATE_START_TIME,
                true,
                reasons::SETTINGS_UPDATE_STARTED,
                "applying settings",
            ),
        );
    }
    let started = conditions::get(&status.conditions, ct::SETTINGS_UPDATE_START_TIME)
        .map(|c| window::age(&c.last_transition_time))
        .unwrap_or_default();
    if biosplan::timed_out(started, ctx.config.bios_settings_timeout) {
        let failed = status.failed_attempts.unwrap_or(0) + 1;
        let max = bs
            .spec
            .template
            .retry_policy
            .as_ref()
            .and_then(|r| r.max_attempts);
        let msg = format!(
            "settings not applied within {:?} (attempt {failed} of {})",
            ctx.config.bios_settings_timeout,
            max.unwrap_or(DEFAULT_MAX_ATTEMPTS) + 1
        );
        if biosplan::may_retry(failed - 1, max) {
            let mut next = restart(bs, &status, failed);
            next.state = Some(BIOSSettingsState::Pending);
            conditions::set(
                &mut next.conditions,
                window::condition(
                    bs,
                    ct::SETTINGS_TIMED_OUT,
                    true,
                    reasons::SETTINGS_TIMED_OUT_DURING_UPDATE,
                    &msg,
                ),
            );
            window::write_status(ctx, bs, &next).await?;
            return Ok(Action::requeue(POLL));
        }
        status.failed_attempts = Some(failed);
        return fail(
            ctx,
            bs,
            status,
            ct::SETTINGS_TIMED_OUT,
            reasons::SETTINGS_TIMED_OUT_DURING_UPDATE,
            &msg,
        )
        .await;
    }

    let step = steps[current];
    let desired = &typed[current];
    let (bmc, system) = (facts.client.clone(), facts.system.clone());
    let flow = status
        .flow_state
        .iter_mut()
        .find(|f| f.name.as_deref() == Some(step.name.as_str()))
        .expect("flow_status covers every step");
    if !biosplan::all_pending(&facts.pending, desired, &facts.current) {
        let write = bmc.set_bios_attributes(&system, desired).await;
        ctx.requests.observe("bios_settings", &write);
        ctx.step("bios-settings-sent").await;
        match write {
            Ok(applied) => {
                let names: Vec<_> = applied.changed.keys().cloned().collect();
                conditions::set(
                    &mut flow.conditions,
                    window::condition(
                        bs,
                        ct::SETTINGS_UPDATE_ISSUED,
                        true,
                        reasons::SETTINGS_UPDATE_ISSUED,
                        &format!("wrote {}", names.join(", ")),
                    ),
                );
                conditions::remove(&mut flow.conditions, ct::REBOOT_POST_UPDATE);
                ctx.events.normal(
                    bs,
                    reasons::SETTINGS_UPDATE_ISSUED,
                    format!("step {}: wrote {}", step.name, names.join(", ")),
                );
                if !applied.reset_required {
                    // Applied at once: the next reconcile verifies.
                    window::write_status(ctx, bs, &status).await?;
                    return Ok(Action::requeue(POLL));
                }
            }
            Err(e) => {
                conditions::set(
                    &mut status.conditions,
                    window::condition(
                        bs,
                        BMC_CONDITION,
                        false,
                        "BMCError",
                        &format!("writing step {}: {e}", step.name),
                    ),
                );
                window::write_status(ctx, bs, &status).await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        }
        // Written as pending: the reboot below follows in this reconcile.
    }

    // Pending and still differing: the BIOS takes them at the next boot.
    let reboot_age = conditions::get(&flow.conditions, ct::REBOOT_POST_UPDATE)
        .map(|c| window::age(&c.last_transition_time));
    if reboot_age.is_some_and(|a| a < ctx.config.power_timeout) {
        window::write_status(ctx, bs, &status).await?;
        return Ok(Action::requeue(POLL));
    }
    let power = facts.power;
    let how = if power == Some(PowerState::On) {
        "restart"
    } else {
        "power on"
    };
    // Recorded before it is sent: a restarted controller waits instead of rebooting again.
    let mut record = window::condition(
        bs,
        ct::REBOOT_POST_UPDATE,
        true,
        reasons::REBOOT_POST_SETTING_UPDATE,
        &format!("{how} to apply step {}", step.name),
    );
    record.last_transition_time = now();
    conditions::remove(&mut flow.conditions, ct::REBOOT_POST_UPDATE);
    flow.conditions.push(record);
    status.observed_generation = bs.metadata.generation;
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status_if_unchanged(&api(ctx), bs, value).await?;
    ctx.step("bios-reboot-recorded").await;
    let sent = if power == Some(PowerState::On) {
        bmc.restart(&system, false).await
    } else {
        bmc.power_on(&system).await
    };
    ctx.requests.observe("reboot", &sent);
    ctx.step("bios-reboot-sent").await;
    match sent {
        Ok(_) => ctx.events.normal(
            bs,
            reasons::REBOOT_POST_SETTING_UPDATE,
            format!("{how} to apply step {}", step.name),
        ),
        Err(e) => ctx.events.warning(
            bs,
            "RebootFailed",
            format!("{how} for step {} failed: {e}", step.name),
        ),
    }
    Ok(Action::requeue(POLL))
}

/// A fresh attempt: steps and their records cleared, top-level conditions kept.
fn restart(
    bs: &BIOSSettings,
    old: &BIOSSettingsStatus,
    failed_attempts: i32,
) -> BIOSSettingsStatus {
    let mut conditions = old.conditions.clone();
    for t in [
        ct::SETTINGS_UPDATE_START_TIME,
        ct::SETTINGS_TIMED_OUT,
        ct::SETTINGS_VALIDATION_FAILED,
        ct::SETTINGS_DUPLICATE_KEYS,
    ] {
        conditions::remove(&mut conditions, t);
    }
    BIOSSettingsStatus {
        state: Some(BIOSSettingsState::Pending),
        flow_state: Vec::new(),
        last_applied_time: old.last_applied_time.clone(),
        failed_attempts: Some(failed_attempts),
        observed_generation: bs.metadata.generation,
        conditions,
    }
}

/// Per-step status: applied steps `Applied`, the first differing one `InProgress` (once in
/// maintenance) or `Pending`, later ones `Pending`; each keeps its conditions.
fn flow_status(
    bs: &BIOSSettings,
    old: &BIOSSettingsStatus,
    differing: &[Vec<String>],
) -> Vec<BIOSSettingsFlowStatus> {
    let steps = biosplan::ordered(&bs.spec);
    let first = differing.iter().position(|d| !d.is_empty());
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let prev = old
                .flow_state
                .iter()
                .find(|f| f.name.as_deref() == Some(s.name.as_str()));
            let state = if differing[i].is_empty() {
                BIOSSettingsState::Applied
            } else if Some(i) == first && old.state == Some(BIOSSettingsState::InProgress) {
                BIOSSettingsState::InProgress
            } else {
                BIOSSettingsState::Pending
            };
            let was_applied = prev.and_then(|p| p.state) == Some(BIOSSettingsState::Applied);
            BIOSSettingsFlowStatus {
                state: Some(state),
                name: Some(s.name.clone()),
                priority: Some(s.priority),
                conditions: prev.map(|p| p.conditions.clone()).unwrap_or_default(),
                last_applied_time: match (state, was_applied) {
                    (BIOSSettingsState::Applied, true) => {
                        prev.and_then(|p| p.last_applied_time.clone())
                    }
                    (BIOSSettingsState::Applied, false) => Some(now()),
                    _ => None,
                },
            }
        })
        .collect()
}

/// What the BMC says about the server's BIOS.
struct BiosFacts {
    client: redfish::Client,
    system: String,
    version: Option<String>,
    power: Option<PowerState>,
    current: BTreeMap<String, AttributeValue>,
    pending: BTreeMap<String, AttributeValue>,
    registry: Option<Arc<redfish::models::AttributeRegistry>>,
}

async fn read_bios(ctx: &Ctx, server: &Server) -> Result<BiosFacts, crate::bmc::BmcError> {
    let (client, system) = ctx.bmcs.for_server(server).await?;
    let snapshot = client.bios_snapshot(&system).await?;
    let registry = ctx
        .bmcs
        .bios_registry(server, &client, &snapshot.bios)
        .await;
    Ok(BiosFacts {
        client,
        system,
        version: snapshot.system.bios_version,
        power: snapshot.system.power_state,
        current: snapshot.bios.attributes,
        pending: snapshot.pending,
        registry,
    })
}

async fn pending(
    ctx: &Ctx,
    bs: &BIOSSettings,
    mut status: BIOSSettingsStatus,
    reason: &str,
    msg: &str,
) -> Result<Action, Error> {
    conditions::set(
        &mut status.conditions,
        window::condition(bs, "ServerFound", false, reason, msg),
    );
    window::release(ctx, bs).await?;
    pending_with(ctx, bs, status).await
}

async fn pending_with(
    ctx: &Ctx,
    bs: &BIOSSettings,
    mut status: BIOSSettingsStatus,
) -> Result<Action, Error> {
    status.state = Some(BIOSSettingsState::Pending);
    window::write_status(ctx, bs, &status).await?;
    Ok(Action::requeue(ctx.config.resync))
}

async fn fail(
    ctx: &Ctx,
    bs: &BIOSSettings,
    mut status: BIOSSettingsStatus,
    type_: &str,
    reason: &str,
    msg: &str,
) -> Result<Action, Error> {
    status.state = Some(BIOSSettingsState::Failed);
    conditions::set(
        &mut status.conditions,
        window::condition(bs, type_, true, reason, msg),
    );
    window::write_status(ctx, bs, &status).await?;
    ctx.events.warning(bs, reason, msg.to_string());
    window::release(ctx, bs).await?;
    Ok(Action::await_change())
}

async fn applied(
    ctx: &Ctx,
    bs: &BIOSSettings,
    mut status: BIOSSettingsStatus,
) -> Result<Action, Error> {
    if status.state != Some(BIOSSettingsState::Applied) {
        status.state = Some(BIOSSettingsState::Applied);
        status.last_applied_time = Some(now());
        conditions::set(
            &mut status.conditions,
            window::condition(
                bs,
                ct::VERIFY_SETTINGS_POST_UPDATE,
                true,
                "SettingsVerified",
                "the BIOS reports every setting",
            ),
        );
        conditions::remove(&mut status.conditions, ct::SETTINGS_UPDATE_START_TIME);
        ctx.events.normal(
            bs,
            "SettingsApplied",
            "the BIOS reports every setting".to_string(),
        );
    }
    window::write_status(ctx, bs, &status).await?;
    window::release(ctx, bs).await?;
    // The resync doubles as the drift check.
    Ok(Action::requeue(ctx.config.resync))
}
