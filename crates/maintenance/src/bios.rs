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
use crate::{Caches, Ctx, Error, ignored, now, plan, writes};
use api::biossettings::{
    BIOSSettings, BIOSSettingsFlowStatus, BIOSSettingsState, BIOSSettingsStatus,
};
use api::common::ServerMaintenancePolicy;
use api::conditions::{self, ConditionStatus};
use api::constants::{OPERATION_ANNOTATION, Operation, condition_types as ct, finalizers, reasons};
use api::server::Server;
use api::servermaintenance::ServerMaintenance;
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use redfish::models::{AttributeValue, ComputerSystem, PowerState};
use serde_json::json;
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
    let store = caches.bios_settings.store();
    let by_server = store.clone();
    Controller::for_shared_stream(caches.bios_settings.applied(), store)
        .watches_shared_stream(caches.servers.touched(), move |server| {
            let name = server.name_any();
            by_server
                .state()
                .iter()
                .filter(|b| b.spec.server_ref.as_ref().is_some_and(|r| r.name == name))
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(caches.maintenances.touched(), |sm| {
            sm.owner_references()
                .iter()
                .filter(|o| o.kind == "BIOSSettings")
                .map(|o| ObjectRef::<BIOSSettings>::new(&o.name))
                .collect::<Vec<_>>()
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "bios settings controller");
            }
        })
        .await;
}

fn error_policy(bs: Arc<BIOSSettings>, error: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(biossettings = %bs.name_any(), error = %error, "reconciling BIOSSettings failed");
    Action::requeue(ctx.backoff.failed(format!("bios/{}", bs.name_any())))
}

async fn reconcile(bs: Arc<BIOSSettings>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.caches.ready().await;
    let timer = ctx.metrics.start("BIOSSettings");
    let result = reconcile_one(&bs, &ctx).await;
    match &result {
        Ok(_) => {
            timer.success();
            ctx.backoff.succeeded(&format!("bios/{}", bs.name_any()));
        }
        Err(e) => timer.failure(e.reason()),
    }
    result
}

fn api(ctx: &Ctx) -> Api<BIOSSettings> {
    Api::all(ctx.client.clone())
}

fn condition(bs: &BIOSSettings, type_: &str, ok: bool, reason: &str, message: &str) -> Condition {
    conditions::new(
        type_,
        ConditionStatus::from(ok),
        reason,
        message,
        bs.metadata.generation,
        now(),
    )
}

/// Name of the maintenance a BIOSSettings requests.
pub fn maintenance_name(bs: &BIOSSettings) -> String {
    format!("bios-{}", bs.name_any())
}

async fn reconcile_one(bs: &BIOSSettings, ctx: &Ctx) -> Result<Action, Error> {
    if ignored(&bs.metadata) {
        return Ok(Action::await_change());
    }
    if let Some(r) = &bs.spec.server_ref
        && !ctx.in_scope(&r.name)
    {
        return Ok(Action::await_change());
    }
    let name = bs.name_any();
    let has_finalizer = bs
        .finalizers()
        .iter()
        .any(|f| f == finalizers::BIOS_SETTINGS);
    if bs.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            release_maintenance(ctx, bs).await?;
            writes::set_finalizer(&api(ctx), &name, finalizers::BIOS_SETTINGS, false).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        let current = bs.spec.server_maintenance_ref.clone();
        apply_own(
            ctx,
            bs,
            current
                .as_ref()
                .map(|r| (r.namespace.as_str(), r.name.as_str())),
        )
        .await?;
        return Ok(Action::await_change());
    }

    let mut status = bs.status.clone().unwrap_or_default();
    let state = status.state;
    let retry_requested = bs
        .annotations()
        .get(OPERATION_ANNOTATION)
        .is_some_and(|v| v == Operation::Retry.as_str());
    if retry_requested {
        if state == Some(BIOSSettingsState::Failed) {
            status = restart(bs, &status, 0);
            conditions::set(
                &mut status.conditions,
                condition(
                    bs,
                    ct::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    true,
                    reasons::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    "retry requested by annotation",
                ),
            );
            write_status(ctx, bs, &status).await?;
        }
        let body = json!({"metadata": {"annotations": {OPERATION_ANNOTATION: null}}});
        writes::call(
            format!("removing the retry annotation of {name}"),
            api(ctx).patch(&name, &PatchParams::default(), &Patch::Merge(&body)),
        )
        .await?;
        return Ok(Action::await_change());
    }
    let new_spec = status.observed_generation != bs.metadata.generation;
    if new_spec
        && matches!(
            state,
            Some(BIOSSettingsState::Applied | BIOSSettingsState::Failed)
        )
    {
        status = restart(bs, &status, 0);
    }
    if status.state == Some(BIOSSettingsState::Failed) {
        release_maintenance(ctx, bs).await?;
        return Ok(Action::await_change());
    }

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

    // Read the BMC (no side effects).
    let facts = match read_bios(ctx, &server).await {
        Ok(f) => f,
        Err(e) => {
            conditions::set(
                &mut status.conditions,
                condition(bs, BMC_CONDITION, false, e.reason(), &e.to_string()),
            );
            write_status(ctx, bs, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    conditions::set(
        &mut status.conditions,
        condition(bs, BMC_CONDITION, true, "Reachable", "the BMC answered"),
    );
    let wanted = bs.spec.template.version.as_str();
    if !biosplan::version_matches(wanted, facts.version.as_deref()) {
        let msg = format!(
            "the BIOS runs version {}; these settings are for {wanted}",
            facts.version.as_deref().unwrap_or("(unknown)")
        );
        conditions::set(
            &mut status.conditions,
            condition(bs, VERSION_CONDITION, false, "VersionMismatch", &msg),
        );
        release_maintenance(ctx, bs).await?;
        return pending_with(ctx, bs, status).await;
    }
    conditions::set(
        &mut status.conditions,
        condition(
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
        .map(|s| biosplan::typed(&s.settings, facts.registry.as_ref(), &facts.current))
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
    let Some(sm_key) = ensure_maintenance(ctx, bs).await? else {
        status.state = Some(BIOSSettingsState::Pending);
        return pending_with(ctx, bs, status).await;
    };
    if !plan::holds(&server, &sm_key) {
        status.state = Some(BIOSSettingsState::Pending);
        conditions::set(
            &mut status.conditions,
            condition(
                bs,
                ct::SERVER_MAINTENANCE_WAITING,
                true,
                reasons::SERVER_MAINTENANCE_WAITING,
                &format!(
                    "waiting for maintenance {}/{} to hold server {server_name}",
                    sm_key.0, sm_key.1
                ),
            ),
        );
        write_status(ctx, bs, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    conditions::remove(&mut status.conditions, ct::SERVER_MAINTENANCE_WAITING);

    // In maintenance: the attempt's clock.
    if status.state != Some(BIOSSettingsState::InProgress) {
        status.state = Some(BIOSSettingsState::InProgress);
        conditions::set(
            &mut status.conditions,
            condition(
                bs,
                ct::SETTINGS_UPDATE_START_TIME,
                true,
                reasons::SETTINGS_UPDATE_STARTED,
                "applying settings",
            ),
        );
    }
    let started = conditions::get(&status.conditions, ct::SETTINGS_UPDATE_START_TIME)
        .map(|c| age(&c.last_transition_time))
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
                condition(
                    bs,
                    ct::SETTINGS_TIMED_OUT,
                    true,
                    reasons::SETTINGS_TIMED_OUT_DURING_UPDATE,
                    &msg,
                ),
            );
            write_status(ctx, bs, &next).await?;
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
        match write {
            Ok(applied) => {
                let names: Vec<_> = applied.changed.keys().cloned().collect();
                conditions::set(
                    &mut flow.conditions,
                    condition(
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
            }
            Err(e) => {
                conditions::set(
                    &mut status.conditions,
                    condition(
                        bs,
                        BMC_CONDITION,
                        false,
                        "BMCError",
                        &format!("writing step {}: {e}", step.name),
                    ),
                );
                write_status(ctx, bs, &status).await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        }
        write_status(ctx, bs, &status).await?;
        return Ok(Action::requeue(POLL));
    }

    // Pending and still differing: the BIOS takes them at the next boot.
    let reboot_age = conditions::get(&flow.conditions, ct::REBOOT_POST_UPDATE)
        .map(|c| age(&c.last_transition_time));
    if reboot_age.is_some_and(|a| a < ctx.config.power_timeout) {
        write_status(ctx, bs, &status).await?;
        return Ok(Action::requeue(POLL));
    }
    let power = facts.power;
    let how = if power == Some(PowerState::On) {
        "restart"
    } else {
        "power on"
    };
    // Recorded before it is sent: a restarted controller waits instead of rebooting again.
    let mut record = condition(
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
    let sent = if power == Some(PowerState::On) {
        bmc.restart(&system, false).await
    } else {
        bmc.power_on(&system).await
    };
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

fn age(t: &Time) -> Duration {
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(t.0)
        .as_secs();
    Duration::from_secs(secs.max(0) as u64)
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
    registry: Option<redfish::models::AttributeRegistry>,
}

async fn read_bios(ctx: &Ctx, server: &Server) -> Result<BiosFacts, crate::bmc::BmcError> {
    let (client, system) = ctx.bmcs.for_server(server).await?;
    let sys: ComputerSystem = client.get(&system).await?;
    let bios = client.bios(&system).await?;
    let pending = client.bios_pending(&system).await?;
    // A BMC without a registry is validated by the BMC itself when the settings are written.
    let registry = client.bios_registry(&system).await.ok();
    Ok(BiosFacts {
        client,
        system,
        version: sys.bios_version,
        power: sys.power_state,
        current: bios.attributes,
        pending,
        registry,
    })
}

async fn write_status(
    ctx: &Ctx,
    bs: &BIOSSettings,
    status: &BIOSSettingsStatus,
) -> Result<(), Error> {
    let mut status = status.clone();
    status.observed_generation = bs.metadata.generation;
    if bs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status(&api(ctx), &bs.name_any(), value).await?;
    Ok(())
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
        condition(bs, "ServerFound", false, reason, msg),
    );
    release_maintenance(ctx, bs).await?;
    pending_with(ctx, bs, status).await
}

async fn pending_with(
    ctx: &Ctx,
    bs: &BIOSSettings,
    mut status: BIOSSettingsStatus,
) -> Result<Action, Error> {
    status.state = Some(BIOSSettingsState::Pending);
    write_status(ctx, bs, &status).await?;
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
        condition(bs, type_, true, reason, msg),
    );
    write_status(ctx, bs, &status).await?;
    ctx.events.warning(bs, reason, msg.to_string());
    release_maintenance(ctx, bs).await?;
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
            condition(
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
    write_status(ctx, bs, &status).await?;
    release_maintenance(ctx, bs).await?;
    // The resync doubles as the drift check.
    Ok(Action::requeue(ctx.config.resync))
}

/// The maintenance this object works under, requested if needed. `None` while the request is
/// being recorded (the next reconcile continues).
async fn ensure_maintenance(ctx: &Ctx, bs: &BIOSSettings) -> Result<Option<plan::Key>, Error> {
    if let Some(r) = &bs.spec.server_maintenance_ref {
        let exists = ctx
            .maintenances
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
            .is_some();
        if exists {
            return Ok(Some((r.namespace.clone(), r.name.clone())));
        }
    }
    let ns = ctx.config.namespace.clone();
    let name = maintenance_name(bs);
    let owner = bs
        .controller_owner_ref(&())
        .expect("BIOSSettings has a name and uid");
    let server = bs
        .spec
        .server_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let policy = bs
        .spec
        .template
        .server_maintenance_policy
        .unwrap_or(ServerMaintenancePolicy::OwnerApproval);
    let sm: ServerMaintenance = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "ServerMaintenance",
        "metadata": {
            "name": name, "namespace": ns, "ownerReferences": [owner],
            "annotations": { api::constants::REASON_ANNOTATION: format!("BIOSSettings {}", bs.name_any()) },
        },
        "spec": { "serverRef": { "name": server }, "policy": policy },
    }))
    .expect("a valid ServerMaintenance");
    let sms: Api<ServerMaintenance> = Api::namespaced(ctx.client.clone(), &ns);
    match writes::call(
        format!("creating ServerMaintenance {ns}/{name}"),
        sms.create(&PostParams::default(), &sm),
    )
    .await
    {
        Ok(_) => ctx.events.normal(
            bs,
            reasons::SERVER_MAINTENANCE_CREATED,
            format!("requested maintenance {ns}/{name} ({policy})"),
        ),
        // Already there (an earlier reconcile created it): adopt it below.
        Err(Error::Conflict { .. }) => {}
        Err(e) => return Err(e),
    }
    apply_own(ctx, bs, Some((&ns, &name))).await?;
    Ok(None)
}

/// Deletes the maintenance this object requested (only one it owns) and clears the reference.
async fn release_maintenance(ctx: &Ctx, bs: &BIOSSettings) -> Result<(), Error> {
    let Some(r) = &bs.spec.server_maintenance_ref else {
        return Ok(());
    };
    let uid = bs.uid().unwrap_or_default();
    let sms: Api<ServerMaintenance> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let owned = ctx
        .maintenances
        .get(&ObjectRef::new(&r.name).within(&r.namespace))
        .is_some_and(|sm| sm.owner_references().iter().any(|o| o.uid == uid));
    if owned {
        match writes::call(
            format!("deleting ServerMaintenance {}/{}", r.namespace, r.name),
            sms.delete(&r.name, &DeleteParams::default()),
        )
        .await
        {
            Ok(_) => ctx.events.normal(
                bs,
                reasons::SERVER_MAINTENANCE_DELETED,
                format!("released maintenance {}/{}", r.namespace, r.name),
            ),
            Err(Error::Kube { source, .. }) if crate::error::status_code(&source) == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    if bs.metadata.deletion_timestamp.is_none() {
        apply_own(ctx, bs, None).await?;
    }
    Ok(())
}

/// Applies everything maintenance owns on a BIOSSettings outside its status: our finalizer and
/// `spec.serverMaintenanceRef`. Always both: an apply that omits a field its manager owns
/// removes it.
async fn apply_own(
    ctx: &Ctx,
    bs: &BIOSSettings,
    maintenance: Option<(&str, &str)>,
) -> Result<(), Error> {
    let reference = maintenance.map(|(ns, name)| json!({"namespace": ns, "name": name}));
    let mut spec = json!({});
    if let Some(r) = reference {
        spec["serverMaintenanceRef"] = r;
    }
    writes::apply(
        &api(ctx),
        &bs.name_any(),
        json!({"metadata": {"finalizers": [finalizers::BIOS_SETTINGS]}, "spec": spec}),
    )
    .await?;
    Ok(())
}
