//! BMC reconciler: connect, fill status from the Manager, create one Server per bootable
//! system, handle the `graceful-restart-bmc` operation.
//!
//! Pipeline: read (BMC, secret, endpoint from the caches) → validate (resolve the connection
//! target) → reset operation → BMC I/O (manager + systems) → apply Servers → apply status.

use std::sync::Arc;
use std::time::Duration;

use api::bmc::{BMC, BMCPowerState, BMCState, BMCStatus};
use api::bmcsecret::BMCSecret;
use api::conditions::{self, ConditionStatus};
use api::constants::{OPERATION_ANNOTATION, Operation, condition_types, reasons};
use api::endpoint::Endpoint;
use api::server::Server;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use redfish::models::{Manager, PowerState};
use redfish::{ManagerSummary, SystemSummary};
use serde_json::{Value, json};

use crate::context::{Ctx, ignored, jitter, now, operation};
use crate::error::{Error, Result};
use crate::guard;
use crate::logic::autoreset;
use crate::logic::ignition::server_name;
use crate::logic::reasons::ready_reason;

/// Why the BMC cannot be talked to, before any request: condition reason + message.
struct NotReady {
    reason: &'static str,
    message: String,
}

/// Picks the Manager that is "the" BMC, as an index into `managers`: the one with `uuid` when
/// the spec pins it, else the first `BMC`-type manager with a graphical console, else the lowest
/// `@odata.id` (upstream `DiscoverManager`). An index, so callers holding the full resources
/// next to the summaries take theirs without a second lookup.
pub fn select_manager(managers: &[ManagerSummary], uuid: Option<&str>) -> Option<usize> {
    if let Some(uuid) = uuid.filter(|u| !u.is_empty()) {
        return managers.iter().position(|m| {
            m.uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
        });
    }
    let mut sorted: Vec<usize> = (0..managers.len()).collect();
    sorted.sort_by(|&a, &b| managers[a].odata_id.cmp(&managers[b].odata_id));
    let is_bmc = |m: &ManagerSummary| m.manager_type.as_deref() == Some("BMC");
    sorted
        .iter()
        .find(|&&i| {
            let m = &managers[i];
            m.has_graphical_console && (m.manager_type.is_none() || is_bmc(m))
        })
        .or_else(|| sorted.iter().find(|&&i| is_bmc(&managers[i])))
        .or(sorted.first())
        .copied()
}

fn bmc_power(p: Option<&PowerState>) -> BMCPowerState {
    match p {
        Some(PowerState::On) => BMCPowerState::On,
        Some(PowerState::Off) => BMCPowerState::Off,
        Some(PowerState::PoweringOn) => BMCPowerState::PoweringOn,
        Some(PowerState::PoweringOff) => BMCPowerState::PoweringOff,
        Some(PowerState::Paused) => BMCPowerState::Paused,
        _ => BMCPowerState::Unknown,
    }
}

/// Parses a Redfish timestamp.
pub fn parse_time(s: Option<&str>) -> Option<Time> {
    s.and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(Time)
}

/// The status discovery wants for a connected BMC (pure): identity from the Manager, address
/// from the spec or the Endpoint, conditions merged into the existing ones.
pub fn connected_status(
    current: &BMCStatus,
    manager: &Manager,
    ip: Option<String>,
    mac: Option<String>,
    generation: Option<i64>,
) -> BMCStatus {
    let mut s = current.clone();
    let non_empty = |v: &Option<String>| v.clone().filter(|x| !x.trim().is_empty());
    s.ip = ip;
    s.mac_address = mac;
    s.manufacturer = non_empty(&manager.manufacturer);
    s.model = non_empty(&manager.model);
    s.sku = non_empty(&manager.part_number);
    s.serial_number = non_empty(&manager.serial_number);
    s.firmware_version = non_empty(&manager.firmware_version);
    s.power_state = Some(bmc_power(manager.power_state.as_ref()));
    s.state = Some(
        manager
            .status
            .as_ref()
            .and_then(|st| st.state.as_ref())
            .map(|st| BMCState::from(st.as_str().to_string()))
            .unwrap_or(BMCState::Enabled),
    );
    s.last_reset_time = parse_time(manager.last_reset_time.as_deref());
    conditions::set(
        &mut s.conditions,
        conditions::new(
            condition_types::READY,
            ConditionStatus::True,
            reasons::CONNECTED,
            "connected to the BMC",
            generation,
            now(),
        ),
    );
    if conditions::is_true(&s.conditions, condition_types::RESET) {
        conditions::set(
            &mut s.conditions,
            conditions::new(
                condition_types::RESET,
                ConditionStatus::False,
                reasons::RESET_COMPLETE,
                "the BMC answers again after the reset",
                generation,
                now(),
            ),
        );
    }
    s
}

/// Status for a BMC that cannot be reached or used (pure).
pub fn failed_status(
    current: &BMCStatus,
    reason: &str,
    message: &str,
    resetting: bool,
    generation: Option<i64>,
) -> BMCStatus {
    let mut s = current.clone();
    s.state = Some(if resetting {
        BMCState::Pending
    } else {
        BMCState::Error
    });
    conditions::set(
        &mut s.conditions,
        conditions::new(
            condition_types::READY,
            ConditionStatus::False,
            reason,
            message,
            generation,
            now(),
        ),
    );
    s
}

/// The JSON apply body for a BMC status (only the fields discovery owns).
fn status_body(name: &str, s: &BMCStatus) -> Result<Value> {
    let mut status = serde_json::to_value(s)?;
    if let Some(o) = status.as_object_mut() {
        // Event subscriptions are not discovery's.
        o.remove("metricsReportSubscriptionLink");
        o.remove("eventsSubscriptionLink");
    }
    Ok(
        json!({"apiVersion": api::API_VERSION, "kind": "BMC", "metadata": {"name": name}, "status": status}),
    )
}

async fn write_status(ctx: &Ctx, bmc: &BMC, new: &BMCStatus) -> Result<Option<String>> {
    let current = bmc.status.clone().unwrap_or_default();
    if &current == new {
        return Ok(bmc.metadata.resource_version.clone());
    }
    let name = bmc.name_any();
    let api: Api<BMC> = Api::all(ctx.client.clone());
    let written = ctx
        .apply_status(&api, &name, &status_body(&name, new)?)
        .await?;
    let old_ready = conditions::get(&current.conditions, condition_types::READY);
    let new_ready = conditions::get(&new.conditions, condition_types::READY);
    if let Some(nr) = new_ready
        && old_ready.is_none_or(|o| o.status != nr.status || o.reason != nr.reason)
    {
        let t = if nr.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(bmc, t, &nr.reason, "Connect", nr.message.clone())
            .await;
    }
    Ok(written.metadata.resource_version)
}

/// What a full refresh of `bmc` is made from besides the hardware (pure): the BMC object, its
/// BMCSecret and its Endpoint, by `resourceVersion`. Equal inputs within the refresh interval
/// mean a trigger brought nothing new (typically the echo of the refresh's own status write).
pub fn inputs(
    bmc_version: Option<&str>,
    secret_version: Option<&str>,
    endpoint_version: Option<&str>,
) -> String {
    format!(
        "{}/{}/{}",
        bmc_version.unwrap_or_default(),
        secret_version.unwrap_or_default(),
        endpoint_version.unwrap_or_default()
    )
}

/// [`inputs`] of `bmc` as cached now, with the BMC at `bmc_version`.
fn inputs_now(ctx: &Ctx, bmc: &BMC, bmc_version: Option<&str>) -> String {
    let secret = ctx.secret(&bmc.spec.bmc_secret_ref.name);
    let endpoint = endpoint_of(ctx, bmc);
    inputs(
        bmc_version,
        secret
            .as_ref()
            .and_then(|s| s.metadata.resource_version.as_deref()),
        endpoint
            .as_ref()
            .and_then(|e| e.metadata.resource_version.as_deref()),
    )
}

/// The cached Endpoint `spec.endpointRef` names, if any.
fn endpoint_of(ctx: &Ctx, bmc: &BMC) -> Option<std::sync::Arc<api::endpoint::Endpoint>> {
    let r = bmc.spec.endpoint_ref.as_ref()?;
    ctx.endpoints.get(&ObjectRef::new(&r.name))
}

/// IP and MAC of the BMC: `spec.access`, else its Endpoint.
fn address(ctx: &Ctx, bmc: &BMC) -> (Option<String>, Option<String>) {
    if let Some(a) = &bmc.spec.access {
        return (a.ip.clone(), a.mac_address.clone());
    }
    match endpoint_of(ctx, bmc) {
        Some(ep) => (ep.spec.ip.clone(), ep.spec.mac_address.clone()),
        None => (None, None),
    }
}

/// Builds (or reuses) the Redfish client of a BMC.
pub fn client_for(ctx: &Ctx, bmc: &BMC) -> std::result::Result<redfish::Client, NotReadyError> {
    let name = bmc.name_any();
    let secret_name = &bmc.spec.bmc_secret_ref.name;
    let Some(secret) = ctx.secret(secret_name) else {
        return Err(NotReadyError(NotReady {
            reason: reasons::MISSING_CREDENTIALS,
            message: format!("BMCSecret {secret_name} not found"),
        }));
    };
    let (ip, _) = address(ctx, bmc);
    let target = runtime::bmc::resolve(bmc, &secret, ip.as_deref(), ctx.default_ca.as_deref())
        .map_err(|e| {
            NotReadyError(NotReady {
                reason: match e.reason() {
                    "NoAddress" => reasons::NO_ADDRESS,
                    "MissingCredentials" => reasons::MISSING_CREDENTIALS,
                    _ => reasons::INVALID_CONFIGURATION,
                },
                message: e.to_string(),
            })
        })?;
    ctx.clients.client(&name, target).map_err(|e| {
        NotReadyError(NotReady {
            reason: reasons::INVALID_CONFIGURATION,
            message: e.to_string(),
        })
    })
}

/// Whether the object whose absence gave `reason` does exist (one live list, only on that
/// path): the watches of BMCs, BMCSecrets and Endpoints are separate streams, so a BMC applied
/// together with its secret can be seen first. Reporting that as missing credentials would
/// flap the BMC's Ready condition and write twice.
async fn cache_lags(ctx: &Ctx, bmc: &BMC, reason: &str) -> Result<bool> {
    if reason == reasons::MISSING_CREDENTIALS {
        let api: Api<BMCSecret> = Api::all(ctx.client.clone());
        return exists(&api, &bmc.spec.bmc_secret_ref.name).await;
    }
    if reason == reasons::NO_ADDRESS
        && bmc.spec.access.is_none()
        && let Some(r) = &bmc.spec.endpoint_ref
        && endpoint_of(ctx, bmc).is_none()
    {
        let api: Api<Endpoint> = Api::all(ctx.client.clone());
        return exists(&api, &r.name).await;
    }
    Ok(false)
}

/// Whether `name` exists, by a metadata list with a name selector: the verb the watch already
/// holds, so discovery needs no `get` on credentials.
async fn exists<K>(api: &Api<K>, name: &str) -> Result<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let lp = kube::api::ListParams::default()
        .fields(&format!("metadata.name={name}"))
        .limit(1);
    Ok(!api.list_metadata(&lp).await?.items.is_empty())
}

/// A BMC that cannot be used before any request is sent (missing secret, no address, ...).
pub struct NotReadyError(NotReady);

impl std::fmt::Display for NotReadyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.reason, self.0.message)
    }
}

/// A failed BMC call, with the condition reason it maps to.
struct IoFailure {
    reason: &'static str,
    message: String,
}

impl From<redfish::Error> for IoFailure {
    fn from(e: redfish::Error) -> Self {
        Self {
            reason: ready_reason(e.class(), e.status()),
            message: e.to_string(),
        }
    }
}

async fn manager(
    ctx: &Ctx,
    client: &redfish::Client,
    bmc: &BMC,
) -> std::result::Result<Manager, IoFailure> {
    let name = bmc.name_any();
    let id = match ctx.manager_id(&name) {
        Some(id) => id,
        None => {
            // The listing holds each Manager whole: pick ours from it, no second read.
            let (mut managers, summaries): (Vec<Manager>, Vec<ManagerSummary>) = client
                .manager_resources()
                .await?
                .into_iter()
                .filter_map(|m| ManagerSummary::of(&m).map(|s| (m, s)))
                .unzip();
            let Some(at) = select_manager(&summaries, bmc.spec.bmc_uuid.as_deref()) else {
                return Err(IoFailure {
                    reason: reasons::UNKNOWN_ERROR,
                    message: match &bmc.spec.bmc_uuid {
                        Some(u) => format!("the BMC has no manager with UUID {u}"),
                        None => "the BMC exposes no manager".into(),
                    },
                });
            };
            ctx.set_manager_id(&name, Some(summaries[at].odata_id.clone()));
            return Ok(managers.swap_remove(at));
        }
    };
    Ok(client.manager(&id).await?)
}

/// The Server object discovery wants for the `index`-th bootable system of `bmc` (pure).
pub fn desired_server(bmc: &BMC, index: usize, system: &SystemSummary) -> Option<(String, Value)> {
    let uuid = system.uuid.as_deref()?.trim().to_ascii_lowercase();
    if uuid.is_empty() {
        return None;
    }
    let name = server_name(&bmc.name_any(), index);
    let owner = bmc.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    });
    let body = json!({
        "apiVersion": api::API_VERSION,
        "kind": "Server",
        "metadata": {
            "name": name,
            "labels": bmc.metadata.labels.clone().unwrap_or_default(),
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "systemUUID": uuid,
            "systemURI": system.odata_id,
            "bmcRef": {"name": bmc.name_any()},
        }
    });
    Some((name, body))
}

/// Whether an existing Server already matches what [`desired_server`] would write.
pub fn server_up_to_date(existing: &Server, bmc: &BMC, system: &SystemSummary) -> bool {
    let uuid = system
        .uuid
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let labels_ok = bmc.metadata.labels.as_ref().is_none_or(|want| {
        let have = existing.metadata.labels.clone().unwrap_or_default();
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    });
    let owner_ok = existing
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| {
            o.iter()
                .any(|r| Some(&r.uid) == bmc.metadata.uid.as_ref() && r.controller == Some(true))
        });
    labels_ok
        && owner_ok
        && existing.spec.system_uuid == uuid
        && existing.spec.system_uri.as_deref() == Some(system.odata_id.as_str())
        && existing.spec.bmc_ref.as_ref().map(|r| r.name.as_str()) == Some(bmc.name_any().as_str())
}

async fn ensure_servers(ctx: &Ctx, bmc: &BMC, systems: &[SystemSummary]) -> Result<()> {
    let api: Api<Server> = Api::all(ctx.client.clone());
    for (i, sys) in systems.iter().filter(|s| s.bootable).enumerate() {
        let Some((name, body)) = desired_server(bmc, i, sys) else {
            tracing::warn!(bmc = %bmc.name_any(), system = %sys.odata_id, "system has no UUID; no Server created");
            continue;
        };
        if let Some(existing) = ctx.servers.get(&ObjectRef::new(&name))
            && server_up_to_date(&existing, bmc, sys)
        {
            continue;
        }
        ctx.apply(&api, &name, &body, true).await?;
        tracing::info!(bmc = %bmc.name_any(), server = %name, "server applied");
        ctx.step("server-applied").await;
    }
    Ok(())
}

/// Whether the reset recorded at `requested` already took effect (a process that sent it may
/// have died before removing the annotation), from the Manager's `LastResetTime`: `before` is
/// the value in our status when the reset was recorded (the reset branch never refreshes it),
/// `now` the one read now. A change means the BMC restarted. Without a `before`, the reset time
/// must be later than the request, which both round to seconds and which BMC clock skew can
/// defeat: a reset within the second of its request looked not done and was sent again.
pub fn reset_happened(
    before: Option<k8s_openapi::jiff::Timestamp>,
    now: Option<k8s_openapi::jiff::Timestamp>,
    requested: Option<k8s_openapi::jiff::Timestamp>,
) -> bool {
    match (before, now, requested) {
        (Some(b), Some(n), _) => n != b,
        (None, Some(n), Some(q)) => n > q,
        _ => false,
    }
}

fn reset_requested(c: Option<&Condition>) -> bool {
    c.is_some_and(|c| {
        c.status == "True"
            && (c.reason == reasons::USER_REQUESTED || c.reason == reasons::AUTO_RESETTING)
    })
}

/// Reconciles one BMC.
pub async fn reconcile(bmc: Arc<BMC>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = bmc.name_any();
    tracing::debug!(bmc = %name, "reconciling BMC");
    if ignored(&bmc.metadata) {
        return Ok(Action::await_change());
    }
    if bmc.metadata.deletion_timestamp.is_some() {
        ctx.clients.forget(&name).await;
        ctx.metrics.forget_bmc(&name);
        ctx.set_manager_id(&name, None);
        ctx.set_refreshed(&name, None);
        return Ok(Action::await_change());
    }
    if let Some(left) = ctx.fresh_for(
        &name,
        &inputs_now(&ctx, &bmc, bmc.metadata.resource_version.as_deref()),
        ctx.cfg.bmc_refresh_interval,
    ) {
        return Ok(Action::requeue(left.max(Duration::from_millis(100))));
    }
    ctx.set_refreshed(&name, None);
    let current = bmc.status.clone().unwrap_or_default();
    let generation = bmc.metadata.generation;
    let reset_cond = conditions::get(&current.conditions, condition_types::RESET).cloned();
    let resetting = reset_requested(reset_cond.as_ref());

    let client = match client_for(&ctx, &bmc) {
        Ok(c) => c,
        Err(NotReadyError(nr)) => {
            if cache_lags(&ctx, &bmc, nr.reason).await? {
                // Created together with the BMC, its secret or Endpoint has not reached our
                // watch yet: its watch event reconciles again, no MissingCredentials detour.
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            ctx.metrics.bmc_reachable(&name, false);
            write_status(
                &ctx,
                &bmc,
                &failed_status(&current, nr.reason, &nr.message, resetting, generation),
            )
            .await?;
            return Ok(Action::requeue(
                ctx.backoff(&name, ctx.cfg.bmc_refresh_interval),
            ));
        }
    };

    // The reset operation: record the request, then issue it once, then drop the annotation.
    let wants_reset = operation(&bmc.metadata) == Some(Operation::GracefulRestartBmc.as_str());
    if wants_reset && !resetting {
        let mut s = current.clone();
        s.state = Some(BMCState::Pending);
        conditions::set(
            &mut s.conditions,
            conditions::new(
                condition_types::RESET,
                ConditionStatus::True,
                reasons::USER_REQUESTED,
                "graceful restart requested through metal.ironcore.dev/operation",
                generation,
                now(),
            ),
        );
        write_status(&ctx, &bmc, &s).await?;
        ctx.step("bmc-reset-recorded").await;
        ctx.event(
            &*bmc,
            EventType::Normal,
            reasons::USER_REQUESTED,
            "ResetBMC",
            "BMC reset requested".into(),
        )
        .await;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if wants_reset {
        let requested_at = reset_cond.as_ref().map(|c| c.last_transition_time.0);
        let m = match manager(&ctx, &client, &bmc).await {
            Ok(m) => m,
            Err(e) => return fail(&ctx, &bmc, &current, e, true).await,
        };
        let reset_since = parse_time(m.last_reset_time.as_deref()).map(|t| t.0);
        let before = current.last_reset_time.as_ref().map(|t| t.0);
        let already = reset_happened(before, reset_since, requested_at);
        if !already {
            let id = m.odata_id.clone().unwrap_or_default();
            if let Err(e) = guard::reset_bmc(&ctx, &client, &bmc, &id).await {
                return match e {
                    Error::Redfish(e) => fail(&ctx, &bmc, &current, e.into(), true).await,
                    other => Err(other),
                };
            }
            ctx.event(
                &*bmc,
                EventType::Normal,
                reasons::RESET_ISSUED,
                "ResetBMC",
                "Manager.Reset GracefulRestart issued".into(),
            )
            .await;
        }
        let api: Api<BMC> = Api::all(ctx.client.clone());
        ctx.merge_patch(
            &api,
            &name,
            &json!({"metadata": {"annotations": {OPERATION_ANNOTATION: null}}}),
        )
        .await?;
        return Ok(Action::requeue(ctx.cfg.bmc_reset_wait));
    }
    if resetting && let Some(c) = &reset_cond {
        let since = k8s_openapi::jiff::Timestamp::now().duration_since(c.last_transition_time.0);
        let wait =
            k8s_openapi::jiff::SignedDuration::try_from(ctx.cfg.bmc_reset_wait).unwrap_or_default();
        if since < wait {
            let left = (wait - since).unsigned_abs();
            return Ok(Action::requeue(left.max(Duration::from_millis(100))));
        }
    }

    if let Some(action) = auto_reset(&ctx, &bmc, &client, &current).await? {
        return Ok(action);
    }

    let m = match manager(&ctx, &client, &bmc).await {
        Ok(m) => m,
        Err(e) => return fail(&ctx, &bmc, &current, e, resetting).await,
    };
    let systems = match client.systems().await {
        Ok(s) => s,
        Err(e) => return fail(&ctx, &bmc, &current, e.into(), resetting).await,
    };
    ctx.metrics.bmc_reachable(&name, true);
    // Ready first, then the Servers: a new Server's first reconcile then finds its BMC Ready.
    let (ip, mac) = address(&ctx, &bmc);
    let version = write_status(
        &ctx,
        &bmc,
        &connected_status(&current, &m, ip, mac, generation),
    )
    .await?;
    ensure_servers(&ctx, &bmc, &systems).await?;
    ctx.set_refreshed(&name, Some(inputs_now(&ctx, &bmc, version.as_deref())));
    ctx.succeeded(&name);
    Ok(Action::requeue(jitter(ctx.cfg.bmc_refresh_interval, 0.1)))
}

/// Automatic recovery ([`autoreset`]): records the attempt on the BMC (annotation,
/// `resourceVersion` precondition), then sends Manager.Reset and marks `Reset=True/AutoResetting`.
/// `Some(action)` when it reset.
async fn auto_reset(
    ctx: &Ctx,
    bmc: &BMC,
    client: &redfish::Client,
    current: &BMCStatus,
) -> Result<Option<Action>> {
    let not_ready = conditions::get(&current.conditions, condition_types::READY)
        .filter(|c| c.status == "False")
        .map(|c| (c.reason.as_str(), c.last_transition_time.0));
    let history = autoreset::parse_history(
        bmc.annotations()
            .get(autoreset::HISTORY_ANNOTATION)
            .map(String::as_str),
    );
    let at = k8s_openapi::jiff::Timestamp::now();
    match autoreset::decide(ctx.cfg.bmc_auto_reset.as_ref(), not_ready, &history, at) {
        autoreset::Step::Nothing => Ok(None),
        autoreset::Step::RateLimited(next) => {
            ctx.event(
                bmc,
                EventType::Warning,
                "AutoResetRateLimited",
                "ResetBMC",
                format!("automatic reset limit reached; the next one may go at {next}"),
            )
            .await;
            Ok(None)
        }
        autoreset::Step::Reset(history) => {
            let name = bmc.name_any();
            let api: Api<BMC> = Api::all(ctx.client.clone());
            // The record: a stale read gets 409 and sends nothing.
            let recorded: BMC = ctx
                .merge_patch(
                    &api,
                    &name,
                    &json!({"metadata": {
                        "resourceVersion": bmc.resource_version(),
                        "annotations": {
                            autoreset::HISTORY_ANNOTATION: autoreset::format_history(&history),
                        },
                    }}),
                )
                .await?;
            let sent = match manager(ctx, client, bmc).await {
                Ok(m) => guard::reset_bmc(ctx, client, bmc, &m.odata_id.unwrap_or_default())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.message),
            };
            let why = not_ready.map(|(r, _)| r).unwrap_or_default();
            match sent {
                Ok(()) => {
                    let mut s = current.clone();
                    s.state = Some(BMCState::Pending);
                    conditions::set(
                        &mut s.conditions,
                        conditions::new(
                            condition_types::RESET,
                            ConditionStatus::True,
                            reasons::AUTO_RESETTING,
                            &format!(
                                "automatic reset {} of at most {} per window: the BMC was not Ready ({why})",
                                history.len(),
                                ctx.cfg.bmc_auto_reset.map_or(0, |p| p.limit)
                            ),
                            recorded.metadata.generation,
                            now(),
                        ),
                    );
                    write_status(ctx, &recorded, &s).await?;
                    ctx.event(
                        bmc,
                        EventType::Warning,
                        reasons::AUTO_RESETTING,
                        "ResetBMC",
                        format!("Manager.Reset GracefulRestart sent automatically ({why})"),
                    )
                    .await;
                    Ok(Some(Action::requeue(ctx.cfg.bmc_reset_wait)))
                }
                Err(e) => {
                    ctx.event(
                        bmc,
                        EventType::Warning,
                        "AutoResetFailed",
                        "ResetBMC",
                        format!(
                            "automatic reset could not be sent (counted against the limit): {e}"
                        ),
                    )
                    .await;
                    Ok(None)
                }
            }
        }
    }
}

async fn fail(
    ctx: &Ctx,
    bmc: &BMC,
    current: &BMCStatus,
    e: IoFailure,
    resetting: bool,
) -> Result<Action> {
    let name = bmc.name_any();
    ctx.metrics.bmc_reachable(&name, false);
    ctx.set_manager_id(&name, None);
    tracing::info!(bmc = %name, reason = e.reason, error = %e.message, "BMC not ready");
    write_status(
        ctx,
        bmc,
        &failed_status(
            current,
            e.reason,
            &e.message,
            resetting,
            bmc.metadata.generation,
        ),
    )
    .await?;
    let cap = if resetting {
        ctx.cfg.poll_interval
    } else {
        ctx.cfg.bmc_refresh_interval
    };
    Ok(Action::requeue(ctx.backoff(&name, cap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_is_done_when_the_reset_time_changed() {
        let t = |s: &str| Some(s.parse::<k8s_openapi::jiff::Timestamp>().unwrap());
        let q = t("2026-12-08T03:46:47Z");
        // Same second as the request, rounded: done, since the BMC's time moved.
        assert!(reset_happened(
            t("2024-01-01T00:00:00Z"),
            t("2026-12-08T03:46:47Z"),
            q
        ));
        assert!(!reset_happened(
            t("2024-01-01T00:00:00Z"),
            t("2024-01-01T00:00:00Z"),
            q
        ));
        // A BMC clock behind ours: still done.
        assert!(reset_happened(
            t("2020-01-01T00:00:00Z"),
            t("2020-01-02T00:00:00Z"),
            q
        ));
        // Nothing known before: only a time after the request counts.
        assert!(reset_happened(None, t("2026-12-08T03:46:48Z"), q));
        assert!(!reset_happened(None, t("2026-12-08T03:46:47Z"), q));
        assert!(!reset_happened(t("2024-01-01T00:00:00Z"), None, q));
    }

    fn ms(id: &str, uuid: &str, t: Option<&str>, console: bool) -> ManagerSummary {
        ManagerSummary {
            odata_id: id.into(),
            id: None,
            uuid: Some(uuid.into()),
            name: None,
            manager_type: t.map(str::to_string),
            manufacturer: None,
            model: None,
            firmware_version: None,
            power_state: None,
            has_graphical_console: console,
        }
    }

    #[test]
    fn manager_selection() {
        let ms = vec![
            ms(
                "/redfish/v1/Managers/2",
                "B",
                Some("EnclosureManager"),
                false,
            ),
            ms("/redfish/v1/Managers/1", "A", Some("BMC"), true),
        ];
        assert_eq!(
            select_manager(&ms, None).map(|i| ms[i].uuid.as_deref()),
            Some(Some("A"))
        );
        assert_eq!(
            select_manager(&ms, Some("b")).map(|i| ms[i].uuid.as_deref()),
            Some(Some("B"))
        );
        assert!(select_manager(&ms, Some("C")).is_none());
        assert!(select_manager(&[], None).is_none());
    }

    #[test]
    fn statuses() {
        let m: Manager = serde_json::from_value(json!({
            "@odata.id": "/redfish/v1/Managers/BMC", "Manufacturer": "Contoso", "Model": "BMC 2",
            "FirmwareVersion": "1.12.0", "SerialNumber": "S1", "PartNumber": "P1", "PowerState": "On",
            "LastResetTime": "2024-01-01T00:00:00Z", "Status": {"State": "Enabled"}
        }))
        .unwrap();
        let s = connected_status(
            &BMCStatus::default(),
            &m,
            Some("10.0.0.1".into()),
            None,
            Some(1),
        );
        assert_eq!(s.manufacturer.as_deref(), Some("Contoso"));
        assert_eq!(s.sku.as_deref(), Some("P1"));
        assert_eq!(s.state, Some(BMCState::Enabled));
        assert_eq!(s.power_state, Some(BMCPowerState::On));
        assert!(s.last_reset_time.is_some());
        assert!(conditions::is_true(&s.conditions, condition_types::READY));
        assert!(conditions::get(&s.conditions, condition_types::RESET).is_none());
        let f = failed_status(&s, reasons::AUTHENTICATION_FAILED, "401", false, Some(1));
        assert_eq!(f.state, Some(BMCState::Error));
        assert_eq!(
            conditions::get(&f.conditions, "Ready").unwrap().reason,
            "AuthenticationFailed"
        );
        // Identical input produces identical status: no write.
        let again = connected_status(&s, &m, Some("10.0.0.1".into()), None, Some(1));
        assert_eq!(again, s);
    }
}
