//! The BMCSettings controller: BMC (manager) attributes, with `$(VAR)` variables resolved from a
//! field of the object, a field of a BMC, a ConfigMap key or a Secret key, applied inside
//! maintenance windows of every server of the BMC.
//!
//! Attributes already as wanted need nothing (no maintenance). Otherwise, once every server of
//! the BMC is held: the write is recorded (`SettingsUpdateIssued`, resourceVersion precondition,
//! with whether the manager attribute registry says it needs a BMC reset) before the attributes
//! are PATCHed, then marked sent. A write recorded but not marked sent is adopted when the BMC
//! shows the values (current or pending in its settings object) and sent again only after the
//! power timeout. A write that needs a reset (or whose values stay pending) gets one recorded
//! `Manager.Reset` (`BMCResetIssued`); a recorded reset the Manager's `LastResetTime` does not
//! show after another power timeout is sent again. The values are verified on the BMC before the
//! object is `Applied` and the maintenances released. Variable values (Secrets) never appear in
//! conditions, events or logs: those name attributes and variables only.

use crate::biosplan::{self, DEFAULT_MAX_ATTEMPTS};
use crate::bmclevel;
use crate::{Caches, Ctx, Error, now, window, writes};
use api::bmcsettings::{BMCSettings, BMCSettingsState, BMCSettingsStatus, VariableSourceValueFrom};
use api::conditions;
use api::constants::{condition_types as ct, reasons};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use redfish::models::{AttributeValue, ResetType};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a write in progress is looked at.
const POLL: Duration = Duration::from_secs(2);
/// Condition: the variables resolved.
pub const VARIABLES_RESOLVED: &str = "VariablesResolved";
/// Condition: the BMC runs the firmware version the settings are meant for.
pub const VERSION_MATCHES: &str = "BMCVersionMatches";
/// Record of the BMC reset that makes the settings take effect.
pub const BMC_RESET_ISSUED: &str = "BMCResetIssued";
/// Reasons of `SettingsUpdateIssued`.
const RECORDED: &str = "Recorded";
const RECORDED_RESET: &str = "RecordedResetRequired";
const SENT: &str = "Sent";
const SENT_RESET: &str = "SentResetRequired";

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    let store = caches.bmc_settings.store();
    let by_bmc = store.clone();
    let reconcile = |bs: Arc<BMCSettings>, ctx: Arc<Ctx>| async move {
        let work = reconcile_one(&bs, &ctx);
        window::instrumented(bs.as_ref(), &ctx, &bs.spec.bmc_ref.name, work).await
    };
    Controller::for_shared_stream(caches.bmc_settings.applied(), store)
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        .watches_shared_stream(caches.servers.touched(), move |server| {
            let bmc = server.spec.bmc_ref.as_ref().map(|r| r.name.clone());
            by_bmc
                .state()
                .iter()
                .filter(|o| Some(&o.spec.bmc_ref.name) == bmc.as_ref())
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(caches.maintenances.touched(), |sm| {
            sm.owner_references()
                .iter()
                .filter(|o| o.kind == "BMCSettings")
                .map(|o| ObjectRef::<BMCSettings>::new(&o.name))
                .collect::<Vec<_>>()
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, window::backoff::<BMCSettings>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "bmcsettings controller");
            }
        })
        .await;
}

fn api(ctx: &Ctx) -> Api<BMCSettings> {
    Api::all(ctx.client.clone())
}

fn cond(bs: &BMCSettings, type_: &str, ok: bool, reason: &str, msg: &str) -> Condition {
    window::condition(bs, type_, ok, reason, msg)
}

async fn write(ctx: &Ctx, bs: &BMCSettings, status: &BMCSettingsStatus) -> Result<(), Error> {
    let mut status = status.clone();
    status.observed_generation = bs.metadata.generation;
    if bs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status_if_unchanged(&api(ctx), bs, value).await?;
    Ok(())
}

/// Writes a record that precedes a side effect; returns the object as written.
async fn record(
    ctx: &Ctx,
    bs: &BMCSettings,
    status: &BMCSettingsStatus,
) -> Result<BMCSettings, Error> {
    let mut status = status.clone();
    status.observed_generation = bs.metadata.generation;
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status_if_unchanged(&api(ctx), bs, value).await
}

/// A fresh attempt: the step records cleared.
fn restart(status: &BMCSettingsStatus, failed_attempts: i32) -> BMCSettingsStatus {
    let mut next = status.clone();
    for t in [
        ct::SETTINGS_UPDATE_ISSUED,
        BMC_RESET_ISSUED,
        ct::SETTINGS_UPDATE_START_TIME,
    ] {
        conditions::remove(&mut next.conditions, t);
    }
    next.state = Some(BMCSettingsState::Pending);
    next.failed_attempts = Some(failed_attempts);
    next
}

async fn fail(
    ctx: &Ctx,
    bs: &BMCSettings,
    mut status: BMCSettingsStatus,
    reason: &str,
    msg: &str,
) -> Result<Action, Error> {
    let failed = status.failed_attempts.unwrap_or(0) + 1;
    let max = bs
        .spec
        .template
        .retry_policy
        .as_ref()
        .and_then(|r| r.max_attempts);
    let msg = format!(
        "{msg} (attempt {failed} of {})",
        max.unwrap_or(DEFAULT_MAX_ATTEMPTS) + 1
    );
    ctx.events.warning(bs, reason, msg.clone());
    let verify = |ok| cond(bs, ct::VERIFY_SETTINGS_POST_UPDATE, ok, reason, &msg);
    if biosplan::may_retry(failed - 1, max) {
        let mut next = restart(&status, failed);
        conditions::set(&mut next.conditions, verify(false));
        write(ctx, bs, &next).await?;
        return Ok(Action::requeue(POLL));
    }
    status.state = Some(BMCSettingsState::Failed);
    status.failed_attempts = Some(failed);
    conditions::set(&mut status.conditions, verify(false));
    write(ctx, bs, &status).await?;
    bmclevel::release(ctx, bs).await?;
    Ok(Action::await_change())
}

/// Why the variables did not resolve; names only, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// A source object or key is missing (it may appear later).
    #[error("variable {var}: {what} not found")]
    NotFound {
        /// The variable.
        var: String,
        /// What is missing.
        what: String,
    },
    /// A setting names a variable that is not declared (before it).
    #[error("setting {setting} uses $({var}), which is not declared")]
    Undeclared {
        /// The setting.
        setting: String,
        /// The variable.
        var: String,
    },
}

/// The string at a dotted path of `v` (`a.b[key.with.dots].c`); numbers and booleans as text.
pub fn field_at(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    let mut rest = path.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        let (key, tail) = if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        cur = cur.get(key)?;
        rest = tail;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `template` with every `$(NAME)` of `vars` substituted; an unknown name is an error.
pub fn substitute(
    setting: &str,
    template: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, VariableError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(VariableError::Undeclared {
                    setting: setting.to_string(),
                    var: name.to_string(),
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves the variables in order (a later one may use earlier ones in an object name) and
/// substitutes them into the settings.
async fn resolve(ctx: &Ctx, bs: &BMCSettings) -> Result<BTreeMap<String, String>, VariableError> {
    let mut vars = BTreeMap::new();
    let own = serde_json::to_value(bs).unwrap_or_default();
    for v in &bs.spec.template.variables {
        let not_found = |what: String| VariableError::NotFound {
            var: v.key.clone(),
            what,
        };
        let value = match &v.value_from {
            VariableSourceValueFrom {
                field_ref: Some(f), ..
            } => field_at(&own, &f.field_path)
                .ok_or_else(|| not_found(format!("field {}", f.field_path)))?,
            VariableSourceValueFrom {
                object_field_ref: Some(o),
                ..
            } => {
                let name = substitute(&v.key, &o.name, &vars)?;
                let bmc = ctx
                    .caches
                    .bmcs
                    .store()
                    .get(&ObjectRef::new(&name))
                    .ok_or_else(|| not_found(format!("BMC {name}")))?;
                let bmc = serde_json::to_value(bmc.as_ref()).unwrap_or_default();
                field_at(&bmc, &o.field_path)
                    .ok_or_else(|| not_found(format!("field {} of BMC {name}", o.field_path)))?
            }
            VariableSourceValueFrom {
                config_map_key_ref: Some(k),
                ..
            } => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &k.namespace);
                let cm = api.get_opt(&k.name).await.ok().flatten();
                cm.and_then(|c| c.data?.get(&k.key).cloned())
                    .ok_or_else(|| {
                        not_found(format!(
                            "key {} of ConfigMap {}/{}",
                            k.key, k.namespace, k.name
                        ))
                    })?
            }
            VariableSourceValueFrom {
                secret_key_ref: Some(k),
                ..
            } => {
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &k.namespace);
                let secret = api.get_opt(&k.name).await.ok().flatten();
                secret
                    .and_then(|s| s.data?.get(&k.key).cloned())
                    .and_then(|b| String::from_utf8(b.0).ok())
                    .ok_or_else(|| {
                        not_found(format!(
                            "key {} of Secret {}/{}",
                            k.key, k.namespace, k.name
                        ))
                    })?
            }
            _ => return Err(not_found("a source".into())),
        };
        vars.insert(v.key.clone(), value);
    }
    bs.spec
        .template
        .settings
        .iter()
        .map(|(k, t)| Ok((k.clone(), substitute(k, t, &vars)?)))
        .collect()
}

async fn reconcile_one(bs: &BMCSettings, ctx: &Ctx) -> Result<Action, Error> {
    if api::constants::ignored(bs.meta()) {
        return Ok(Action::await_change());
    }
    let bmc_name = bs.spec.bmc_ref.name.clone();
    let servers = bmclevel::servers_of(ctx, &bmc_name);
    if ctx.config.server_selector.is_some() && servers.is_empty() {
        return Ok(Action::await_change());
    }
    if let Some(done) = bmclevel::lifecycle(ctx, bs).await? {
        return Ok(done);
    }
    let mut status = bs.status.clone().unwrap_or_default();
    let failed = status.state == Some(BMCSettingsState::Failed);
    if window::retry_requested(bs) {
        if failed {
            let mut next = restart(&status, 0);
            conditions::set(
                &mut next.conditions,
                cond(
                    bs,
                    ct::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    true,
                    reasons::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    "retry requested by annotation",
                ),
            );
            write(ctx, bs, &next).await?;
        }
        window::clear_retry(ctx, bs).await?;
        return Ok(Action::await_change());
    }
    if failed {
        bmclevel::release(ctx, bs).await?;
        return Ok(Action::await_change());
    }

    let settings = match resolve(ctx, bs).await {
        Ok(s) => {
            conditions::set(
                &mut status.conditions,
                cond(
                    bs,
                    VARIABLES_RESOLVED,
                    true,
                    "Resolved",
                    "every variable resolved",
                ),
            );
            s
        }
        Err(e) => {
            let reason = match e {
                VariableError::NotFound { .. } => "VariableNotFound",
                VariableError::Undeclared { .. } => "VariableUndeclared",
            };
            conditions::set(
                &mut status.conditions,
                cond(bs, VARIABLES_RESOLVED, false, reason, &e.to_string()),
            );
            status.state.get_or_insert(BMCSettingsState::Pending);
            write(ctx, bs, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };

    // What the BMC has now (no side effects). Unreachable while it restarts after a reset.
    let read = async {
        let client = ctx.bmcs.for_bmc(&bmc_name).await?;
        let managers = client.managers().await?;
        let m = managers
            .iter()
            .find(|m| m.manager_type.as_deref() == Some("BMC"))
            .or(managers.first())
            .cloned()
            .ok_or_else(|| crate::bmc::BmcError::Redfish("the BMC lists no Manager".into()))?;
        let current = client.manager_attributes(&m.odata_id).await?;
        let pending = client.manager_pending_attributes(&m.odata_id).await?;
        Ok::<_, crate::bmc::BmcError>((client, m, current, pending))
    };
    let (bmc, manager, current, pending) = match read.await {
        Ok(r) => r,
        Err(e) => {
            let resetting = conditions::get(&status.conditions, BMC_RESET_ISSUED).is_some();
            let msg = if resetting {
                format!("{e} (expected while the BMC restarts)")
            } else {
                e.to_string()
            };
            conditions::set(
                &mut status.conditions,
                cond(
                    bs,
                    crate::bmcversion::BMC_REACHABLE,
                    false,
                    e.reason(),
                    &msg,
                ),
            );
            write(ctx, bs, &status).await?;
            return Ok(Action::requeue(if resetting {
                POLL
            } else {
                Duration::from_secs(30)
            }));
        }
    };
    conditions::set(
        &mut status.conditions,
        cond(
            bs,
            crate::bmcversion::BMC_REACHABLE,
            true,
            "Reachable",
            "the BMC answered",
        ),
    );
    let running = manager.firmware_version.clone().unwrap_or_default();
    if running.trim() != bs.spec.template.version.trim() {
        conditions::set(
            &mut status.conditions,
            cond(
                bs,
                VERSION_MATCHES,
                false,
                "BMCVersionMismatch",
                &format!(
                    "the BMC runs {running}, the settings are for {}",
                    bs.spec.template.version
                ),
            ),
        );
        status.state = Some(BMCSettingsState::Pending);
        write(ctx, bs, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    conditions::set(
        &mut status.conditions,
        cond(
            bs,
            VERSION_MATCHES,
            true,
            "VersionMatches",
            &format!("the BMC runs {running}"),
        ),
    );
    let desired = biosplan::typed(&settings, None, &current);
    let differing = biosplan::differing(&current, &desired);
    let staged: Vec<&String> = differing
        .iter()
        .filter(|k| {
            pending
                .get(*k)
                .zip(desired.get(*k))
                .is_some_and(|(p, d)| p.loosely_eq(d))
        })
        .collect();
    let issued = conditions::get(&status.conditions, ct::SETTINGS_UPDATE_ISSUED).cloned();
    let reset = conditions::get(&status.conditions, BMC_RESET_ISSUED).cloned();
    let needs_reset = issued
        .as_ref()
        .is_some_and(|c| c.reason == RECORDED_RESET || c.reason == SENT_RESET);

    if differing.is_empty() && issued.as_ref().is_none_or(|c| c.reason != RECORDED_RESET) {
        // A write that needs a reset is in effect once the reset happened.
        if (needs_reset || reset.is_some())
            && let Some(wait) = reset_bmc(
                ctx,
                bs,
                &mut status,
                &bmc,
                &manager.odata_id,
                reset.as_ref(),
            )
            .await?
        {
            return Ok(wait);
        }
        if status.state != Some(BMCSettingsState::Applied) {
            let mut next = restart(&status, status.failed_attempts.unwrap_or(0));
            next.state = Some(BMCSettingsState::Applied);
            conditions::set(
                &mut next.conditions,
                cond(
                    bs,
                    ct::VERIFY_SETTINGS_POST_UPDATE,
                    true,
                    reasons::CHANGES_VERIFIED,
                    &format!("{} attribute(s) as wanted", desired.len()),
                ),
            );
            ctx.events.normal(
                bs,
                reasons::CHANGES_VERIFIED,
                format!("the BMC has the {} attribute(s)", desired.len()),
            );
            status = next;
        }
        write(ctx, bs, &status).await?;
        bmclevel::release(ctx, bs).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }

    // Changing needs every server of the BMC in maintenance.
    if !bmclevel::ensure_windows(ctx, bs, &servers).await? {
        status.state = Some(BMCSettingsState::Pending);
        conditions::set(
            &mut status.conditions,
            cond(
                bs,
                ct::SERVER_MAINTENANCE_WAITING,
                true,
                reasons::SERVER_MAINTENANCE_WAITING,
                &format!(
                    "waiting for the maintenances of {} server(s) to hold them",
                    servers.len()
                ),
            ),
        );
        write(ctx, bs, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    conditions::remove(&mut status.conditions, ct::SERVER_MAINTENANCE_WAITING);
    if status.state != Some(BMCSettingsState::InProgress) {
        status.state = Some(BMCSettingsState::InProgress);
        let mut start = cond(
            bs,
            ct::SETTINGS_UPDATE_START_TIME,
            true,
            "UpdateStarted",
            &format!("changing {}", differing.join(", ")),
        );
        start.last_transition_time = now();
        conditions::set(&mut status.conditions, start);
        write(ctx, bs, &status).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = conditions::get(&status.conditions, ct::SETTINGS_UPDATE_START_TIME)
        .map(|c| window::age(&c.last_transition_time))
        .unwrap_or_default();
    if started > ctx.config.bios_settings_timeout {
        let msg = format!(
            "{} not in effect within {:?}",
            differing.join(", "),
            ctx.config.bios_settings_timeout
        );
        return fail(ctx, bs, status, reasons::SETTINGS_VALIDATION_FAILED, &msg).await;
    }
    let mgr = manager.odata_id.clone();
    match issued {
        None => send(ctx, bs, status, &bmc, &mgr, &desired, &differing).await,
        Some(rec) if rec.reason == RECORDED || rec.reason == RECORDED_RESET => {
            // Recorded by an instance that may have died before or after sending.
            let arrived = differing.len() == staged.len();
            if arrived {
                let sent = if rec.reason == RECORDED {
                    SENT
                } else {
                    SENT_RESET
                };
                let mut c = rec.clone();
                c.reason = sent.into();
                conditions::set(&mut status.conditions, c);
                write(ctx, bs, &status).await?;
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            if window::age(&rec.last_transition_time) < ctx.config.power_timeout {
                write(ctx, bs, &status).await?;
                return Ok(Action::requeue(POLL));
            }
            send(ctx, bs, status, &bmc, &mgr, &desired, &differing).await
        }
        Some(_) if differing.len() == staged.len() => {
            // Written; the values wait for a BMC reset.
            let wait = reset_bmc(ctx, bs, &mut status, &bmc, &mgr, reset.as_ref()).await?;
            Ok(wait.unwrap_or_else(|| Action::requeue(POLL)))
        }
        Some(_) => {
            let msg = format!(
                "the BMC did not keep {} after the write",
                differing.join(", ")
            );
            fail(ctx, bs, status, reasons::SETTINGS_VALIDATION_FAILED, &msg).await
        }
    }
}

/// Records, then PATCHes the differing attributes, then marks the record sent.
async fn send(
    ctx: &Ctx,
    bs: &BMCSettings,
    mut status: BMCSettingsStatus,
    bmc: &redfish::Client,
    manager: &str,
    desired: &BTreeMap<String, AttributeValue>,
    differing: &[String],
) -> Result<Action, Error> {
    let changes: BTreeMap<String, AttributeValue> = differing
        .iter()
        .filter_map(|k| desired.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let reset_required = match bmc.check_manager_attributes(manager, &changes).await {
        Ok(r) => r,
        Err(e) if e.class() == redfish::ErrorClass::Rejected => {
            let msg = format!("the BMC rejects the settings: {e}");
            return fail(ctx, bs, status, reasons::SETTINGS_VALIDATION_FAILED, &msg).await;
        }
        Err(e) => {
            conditions::set(
                &mut status.conditions,
                cond(
                    bs,
                    crate::bmcversion::BMC_REACHABLE,
                    false,
                    "RedfishError",
                    &format!("checking the settings: {e}"),
                ),
            );
            write(ctx, bs, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    };
    let names = differing.join(", ");
    let mut rec = cond(
        bs,
        ct::SETTINGS_UPDATE_ISSUED,
        true,
        if reset_required {
            RECORDED_RESET
        } else {
            RECORDED
        },
        &format!("writing {names}"),
    );
    rec.last_transition_time = now();
    conditions::remove(&mut status.conditions, ct::SETTINGS_UPDATE_ISSUED);
    status.conditions.push(rec.clone());
    let recorded = record(ctx, bs, &status).await?;
    ctx.step("bmc-settings-recorded").await;
    let sent = bmc.set_manager_attributes(manager, &changes).await;
    ctx.requests.observe("bmc_settings", &sent);
    ctx.step("bmc-settings-sent").await;
    match sent {
        Ok(_) => {
            rec.reason = if reset_required { SENT_RESET } else { SENT }.into();
            conditions::set(&mut status.conditions, rec);
            ctx.events.normal(
                bs,
                reasons::SETTINGS_UPDATE_ISSUED,
                format!("wrote {names}"),
            );
            write(ctx, &recorded, &status).await?;
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(e) => {
            let msg = format!("writing {names}: {e}");
            fail(
                ctx,
                &recorded,
                status,
                reasons::SETTINGS_VALIDATION_FAILED,
                &msg,
            )
            .await
        }
    }
}

/// One recorded Manager.Reset. `None` once a recorded reset happened (the Manager's
/// `LastResetTime` is after the record; without one, once the power timeout passed); a recorded
/// one that did not happen within the power timeout was never sent and is sent now.
async fn reset_bmc(
    ctx: &Ctx,
    bs: &BMCSettings,
    status: &mut BMCSettingsStatus,
    bmc: &redfish::Client,
    manager: &str,
    recorded: Option<&Condition>,
) -> Result<Option<Action>, Error> {
    if let Some(rec) = recorded {
        let waited = window::age(&rec.last_transition_time) > ctx.config.power_timeout;
        let seen = bmclevel::reset_seen(bmc, manager, &rec.last_transition_time).await;
        match seen {
            bmclevel::ResetSeen::Yes => return Ok(None),
            bmclevel::ResetSeen::Unknown if waited => return Ok(None),
            bmclevel::ResetSeen::No if waited => ctx.events.warning(
                bs,
                "ResetNotSeen",
                "the recorded BMC reset did not happen; sending it".to_string(),
            ),
            _ => {
                write(ctx, bs, status).await?;
                return Ok(Some(Action::requeue(POLL)));
            }
        }
    }
    let mut rec = cond(
        bs,
        BMC_RESET_ISSUED,
        true,
        reasons::RESET_ISSUED,
        "resetting the BMC so the settings take effect",
    );
    rec.last_transition_time = now();
    conditions::set(&mut status.conditions, rec);
    record(ctx, bs, status).await?;
    ctx.step("bmc-settings-reset-recorded").await;
    let sent = bmc.reset_manager(manager, ResetType::GracefulRestart).await;
    ctx.requests.observe("bmc_reset", &sent);
    match sent {
        Ok(()) => ctx.events.normal(
            bs,
            reasons::RESET_ISSUED,
            "reset the BMC so the settings take effect".to_string(),
        ),
        Err(e) => ctx
            .events
            .warning(bs, "ResetFailed", format!("BMC reset failed: {e}")),
    }
    Ok(Some(Action::requeue(POLL)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_by_dotted_paths_with_bracketed_keys() {
        let v = json!({
            "spec": { "BMCRef": { "name": "bmc-1" }, "port": 623, "on": true },
            "metadata": { "labels": { "metal.ironcore.dev/site": "fra1" } },
        });
        assert_eq!(field_at(&v, "spec.BMCRef.name").as_deref(), Some("bmc-1"));
        assert_eq!(
            field_at(&v, "metadata.labels[metal.ironcore.dev/site]").as_deref(),
            Some("fra1")
        );
        assert_eq!(field_at(&v, "spec.port").as_deref(), Some("623"));
        assert_eq!(field_at(&v, "spec.on").as_deref(), Some("true"));
        assert_eq!(field_at(&v, "spec.BMCRef"), None, "an object is no value");
        assert_eq!(field_at(&v, "spec.missing"), None);
        assert_eq!(field_at(&v, "metadata.labels[unclosed"), None);
    }

    #[test]
    fn variables_are_substituted_and_unknown_ones_named() {
        let vars = BTreeMap::from([
            ("NTP".to_string(), "10.0.0.1".to_string()),
            ("SITE".to_string(), "fra1".to_string()),
        ]);
        assert_eq!(
            substitute("a", "ntp.$(SITE).example:$(NTP)", &vars).unwrap(),
            "ntp.fra1.example:10.0.0.1"
        );
        assert_eq!(substitute("a", "plain", &vars).unwrap(), "plain");
        assert_eq!(substitute("a", "half $(", &vars).unwrap(), "half $(");
        assert_eq!(
            substitute("NTP1", "$(MISSING)", &vars),
            Err(VariableError::Undeclared {
                setting: "NTP1".into(),
                var: "MISSING".into()
            })
        );
    }
}
