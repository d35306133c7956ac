//! Server reconciler: the states discovery owns (Initial, Discovery, Error).
//!
//! * `(none)` → `Initial` (round starts: `Discovered=Unknown/DiscoveryStarted`).
//! * `Initial`: wait for the BMC, optionally power off (`--enforce-first-boot`), read the
//!   inventory, → `Discovery`.
//! * `Discovery`, out-of-band: → `Available` (`Discovered=True/InventoryRead`).
//! * `Discovery`, in-band: the discovery boot of docs/controllers.md (token Secret, internal
//!   ServerBootConfiguration, wait for `Ready`, PXE once + power on, wait for the agent's report),
//!   then merge → `Available` (`Discovered=True/InBandDataReceived`) and clean up; or after
//!   `--discovery-timeout` → `Initial` (`Discovered=False/DiscoveryTimedOut`).
//! * `Error` → `Initial` on the `retry` operation.
//!
//! Every `status.state` write carries the Server's `resourceVersion` (optimistic lock) and
//! produces an Event. Every BMC side effect goes through [`crate::guard`].

use std::sync::Arc;
use std::time::Duration;

use api::conditions::{self, ConditionStatus};
use api::constants::{
    INSPECTION_ANNOTATION, IS_DEFAULT_OS_IMAGE_ANNOTATION, InspectionMode, OPERATION_ANNOTATION,
    Operation, TYPE_ANNOTATION, TYPE_INTERNAL, condition_types, reasons,
};
use api::server::{Server, ServerState, ServerStatus};
use api::serverbootconfiguration::{ServerBootConfiguration, ServerBootConfigurationState};
use api::state::{Controller, transition_owner};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::bmc::client_for;
use crate::context::{Ctx, ignored, now, operation};
use crate::error::{Error, Result};
use crate::guard::{self, Effect};
use crate::logic::ignition::{
    DISCOVERY_LABEL, IGNITION_KEY, REPORT_KEY, SERVER_ANNOTATION, SYSTEM_UUID_LABEL, TOKEN_KEY,
    cmdline, ignition, new_token, report_name, sbc_name, secret_name,
};
use crate::logic::inventory::{self, Inventory};
use crate::logic::state::{
    self, HealthStep, HealthView, InBandStep, InBandView, InitialStep, Phase,
};
use crate::logic::{merge, state::in_band_step};

/// Condition types discovery owns on a Server.
const OWNED_CONDITIONS: [&str; 4] = [
    condition_types::DISCOVERED,
    condition_types::HEALTHY,
    condition_types::POWERING_ON,
    condition_types::BOOT_WINDOW,
];

/// The status apply body: every Server status field discovery owns, taken from `s`.
pub fn status_body(server: &Server, s: &ServerStatus) -> Result<Value> {
    let mut status = serde_json::to_value(s)?;
    if let Some(o) = status.as_object_mut() {
        let conds: Vec<Value> = s
            .conditions
            .iter()
            .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
            .map(serde_json::to_value)
            .collect::<std::result::Result<_, _>>()?;
        o.insert("conditions".into(), Value::Array(conds));
    }
    Ok(json!({
        "apiVersion": api::API_VERSION,
        "kind": "Server",
        "metadata": {"name": server.name_any(), "resourceVersion": server.resource_version()},
        "status": status,
    }))
}

/// Writes `new` (with the resourceVersion precondition). A state change must be a transition
/// discovery owns; it is announced with an Event.
async fn write(ctx: &Ctx, server: &Server, new: &ServerStatus, why: &str) -> Result<Server> {
    let old_state = server.status.as_ref().and_then(|s| s.state);
    if new.state != old_state
        && let Some(to) = new.state
    {
        let owner = transition_owner(old_state, to);
        if owner != Some(Controller::Discovery) {
            return Err(Error::Refused {
                effect: "StateTransition",
                server: server.name_any(),
                why: format!("{old_state:?} -> {to:?} is not a transition discovery owns"),
            });
        }
    }
    let api: Api<Server> = Api::all(ctx.client.clone());
    let updated = ctx
        .apply_status(&api, &server.name_any(), &status_body(server, new)?)
        .await?;
    if new.state != old_state {
        let from = old_state.map(|s| s.as_str()).unwrap_or("<none>");
        let to = new.state.map(|s| s.as_str()).unwrap_or("<none>");
        tracing::info!(server = %server.name_any(), from, to, why, "server state changed");
        let t = if why.contains("timed out") {
            EventType::Warning
        } else {
            EventType::Normal
        };
        // The recorder folds events with the same reason and action into one series (keeping
        // the first note): one action per target state keeps every kind of move visible.
        ctx.event(
            server,
            t,
            "StateChanged",
            &format!("MoveTo{to}"),
            format!("{from} -> {to}: {why}"),
        )
        .await;
    }
    Ok(updated)
}

fn set_cond(
    s: &mut ServerStatus,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    msg: &str,
    generation: Option<i64>,
) {
    conditions::set(
        &mut s.conditions,
        conditions::new(type_, status, reason, msg, generation, now()),
    );
}

fn apply_inventory(s: &mut ServerStatus, inv: &Inventory) {
    s.manufacturer = inv.manufacturer.clone();
    s.model = inv.model.clone();
    s.sku = inv.sku.clone();
    s.serial_number = inv.serial_number.clone();
    s.bios_version = inv.bios_version.clone();
    s.power_state = inv.power_state.or(s.power_state);
    s.indicator_led = inv.indicator_led.or(s.indicator_led);
    s.processors = inv.processors.clone();
    s.total_system_memory = inv.total_system_memory.clone();
    s.storages = inv.storages.clone();
    s.network_interfaces = inv.network_interfaces.clone();
}

fn mode(ctx: &Ctx, server: &Server) -> InspectionMode {
    let ann = |m: &kube::api::ObjectMeta| {
        m.annotations
            .as_ref()
            .and_then(|a| a.get(INSPECTION_ANNOTATION).cloned())
    };
    let bmc_ann = server
        .spec
        .bmc_ref
        .as_ref()
        .and_then(|r| ctx.bmc(&r.name))
        .and_then(|b| ann(&b.metadata));
    state::inspection_mode(
        ann(&server.metadata).as_deref(),
        bmc_ann.as_deref(),
        ctx.cfg.inspection,
    )
}

fn since(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Duration {
    k8s_openapi::jiff::Timestamp::now()
        .duration_since(t.0)
        .unsigned_abs()
}

/// Start of the current discovery round (`Discovered=Unknown` since), else the creation time.
fn round_start(server: &Server) -> Duration {
    let cond = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::DISCOVERED))
        .filter(|c| c.status == "Unknown");
    match (cond, &server.metadata.creation_timestamp) {
        (Some(c), _) => since(&c.last_transition_time),
        (None, Some(t)) => since(t),
        (None, None) => Duration::ZERO,
    }
}

/// Time since the server was created.
fn age(server: &Server) -> Duration {
    server
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| {
            k8s_openapi::jiff::Timestamp::now()
                .duration_since(t.0)
                .try_into()
                .ok()
        })
        .unwrap_or_default()
}

/// Reconciles one Server.
pub async fn reconcile(server: Arc<Server>, ctx: Arc<Ctx>) -> Result<Action> {
    if ignored(&server.metadata) || server.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let status = server.status.clone().unwrap_or_default();
    let generation = server.metadata.generation;
    let mut recheck = None;
    match state::health_step(&health_view(&ctx, &server)) {
        HealthStep::Fine => {}
        HealthStep::RecheckIn(d) => recheck = Some(d),
        HealthStep::EnterError(reason, msg) => {
            let mut s = status.clone();
            s.state = Some(ServerState::Error);
            set_cond(
                &mut s,
                condition_types::HEALTHY,
                ConditionStatus::False,
                reason,
                &msg,
                generation,
            );
            write(&ctx, &server, &s, &msg).await?;
            return Ok(Action::await_change());
        }
        HealthStep::Recover => {
            let mut s = status.clone();
            s.state = Some(ServerState::Initial);
            set_cond(
                &mut s,
                condition_types::HEALTHY,
                ConditionStatus::True,
                reasons::HEALTHY,
                "the BMC is Ready again",
                generation,
            );
            set_cond(
                &mut s,
                condition_types::DISCOVERED,
                ConditionStatus::Unknown,
                reasons::DISCOVERY_STARTED,
                "rediscovery after the BMC came back",
                generation,
            );
            write(&ctx, &server, &s, "the BMC is Ready again").await?;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    match state::phase(status.state) {
        // Created with a claim reference and no status (a restore, upstream #1108): reservation
        // adopts it straight into Reserved once the claim exists. Discovery keeps off it for
        // CLAIMED_NEW_GRACE (the claim may be restored after the server); a server whose
        // claim never appears is then discovered, and reservation clears the stale reference.
        Phase::New
            if server.spec.server_claim_ref.is_some()
                && age(&server) < state::CLAIMED_NEW_GRACE =>
        {
            Ok(Action::requeue(Duration::from_secs(10)))
        }
        // Out-of-band with nothing to power off, a round is reads and one write: go straight
        // from no status to Available (a kill before the write just reads again).
        Phase::New
            if mode(&ctx, &server) == InspectionMode::OutOfBand && !ctx.cfg.enforce_first_boot =>
        {
            initial(&ctx, &server).await
        }
        Phase::New => {
            let mut s = status.clone();
            s.state = Some(ServerState::Initial);
            set_cond(
                &mut s,
                condition_types::DISCOVERED,
                ConditionStatus::Unknown,
                reasons::DISCOVERY_STARTED,
                "discovery started",
                generation,
            );
            write(&ctx, &server, &s, "new server").await?;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Phase::NotOurs(_) => {
            cleanup_if_left_over(&ctx, &server).await?;
            Ok(recheck.map_or_else(Action::await_change, Action::requeue))
        }
        Phase::Error => {
            // A failed cleaning is maintenance's to retry (back to Cleaning, never to
            // rediscovery, which would hand out a server that may hold a tenant's data).
            let cleaning_failed = conditions::get(&status.conditions, condition_types::CLEANED)
                .is_some_and(|c| c.status == ConditionStatus::False.as_str());
            if !cleaning_failed && operation(&server.metadata) == Some(Operation::Retry.as_str()) {
                let mut s = status.clone();
                s.state = Some(ServerState::Initial);
                set_cond(
                    &mut s,
                    condition_types::DISCOVERED,
                    ConditionStatus::Unknown,
                    reasons::DISCOVERY_STARTED,
                    "retry requested",
                    generation,
                );
                if conditions::get(&s.conditions, condition_types::HEALTHY).is_some() {
                    set_cond(
                        &mut s,
                        condition_types::HEALTHY,
                        ConditionStatus::True,
                        reasons::HEALTHY,
                        "retry requested",
                        generation,
                    );
                }
                write(&ctx, &server, &s, "retry requested").await?;
                let api: Api<Server> = Api::all(ctx.client.clone());
                ctx.merge_patch(
                    &api,
                    &server.name_any(),
                    &json!({"metadata": {"annotations": {OPERATION_ANNOTATION: null}}}),
                )
                .await?;
            }
            Ok(Action::await_change())
        }
        Phase::Initial => initial(&ctx, &server).await,
        Phase::Discovery => discovery(&ctx, &server, None).await,
    }
}

/// The facts [`state::health_step`] needs, from the caches and the server's conditions.
fn health_view(ctx: &Ctx, server: &Server) -> HealthView {
    let conds = server
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let bmc_not_ready = server
        .spec
        .bmc_ref
        .as_ref()
        .and_then(|r| ctx.bmc(&r.name))
        .and_then(|b| {
            let c = conditions::get(&b.status.as_ref()?.conditions, condition_types::READY)?;
            (c.status == "False").then(|| {
                (
                    since(&c.last_transition_time),
                    format!("{}: {}", c.reason, c.message),
                )
            })
        });
    let inventory_unreadable = conditions::get(conds, condition_types::DISCOVERED)
        .filter(|c| c.status == "False" && c.reason == reasons::INVENTORY_UNREADABLE)
        .map(|c| (since(&c.last_transition_time), c.message.clone()));
    let unhealthy_reason = conditions::get(conds, condition_types::HEALTHY)
        .filter(|c| c.status == "False")
        .map(|c| c.reason.clone());
    HealthView {
        state: server.status.as_ref().and_then(|s| s.state),
        claimed: server.spec.server_claim_ref.is_some(),
        bmc_not_ready,
        inventory_unreadable,
        unhealthy_reason,
        threshold: ctx.cfg.error_after,
    }
}

struct Hardware {
    client: redfish::Client,
    system: String,
}

/// The BMC client and system of a server, or the reason why it is not usable (as a condition).
async fn hardware(ctx: &Ctx, server: &Server) -> Result<std::result::Result<Hardware, String>> {
    let Some(bmc_name) = server.spec.bmc_ref.as_ref().map(|r| r.name.clone()) else {
        return Ok(Err(
            "the server has no spec.bmcRef (inline spec.bmc is not supported)".into(),
        ));
    };
    let Some(bmc) = ctx.bmc(&bmc_name) else {
        return Ok(Err(format!("BMC {bmc_name} not found")));
    };
    let ready = bmc
        .status
        .as_ref()
        .map(|s| conditions::is_true(&s.conditions, condition_types::READY))
        .unwrap_or(false);
    if !ready {
        let why = bmc
            .status
            .as_ref()
            .and_then(|s| conditions::get(&s.conditions, condition_types::READY))
            .map(|c| format!("BMC {bmc_name} is not ready: {}: {}", c.reason, c.message))
            .unwrap_or_else(|| format!("BMC {bmc_name} has not connected yet"));
        return Ok(Err(why));
    }
    let Some(system) = server.spec.system_uri.clone() else {
        return Ok(Err("the server has no spec.systemURI yet".into()));
    };
    match client_for(ctx, &bmc) {
        Ok(client) => Ok(Ok(Hardware { client, system })),
        Err(e) => Ok(Err(e.to_string())),
    }
}

async fn bmc_not_ready(ctx: &Ctx, server: &Server, why: &str) -> Result<Action> {
    // A server just created by its BMC's refresh is often seen before that refresh's Ready
    // status reaches our BMC cache: look again shortly instead of recording a condition.
    if server.status.is_none() && age(server) < NEW_SERVER_PATIENCE {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    not_discovered(ctx, server, reasons::BMC_NOT_READY, why).await
}

/// How long a server without status waits quietly for its BMC to show Ready.
const NEW_SERVER_PATIENCE: Duration = Duration::from_secs(10);

/// The BMC answers but the inventory cannot be read: `Discovered=False/InventoryUnreadable`
/// (its age decides when the server goes to Error).
async fn inventory_unreadable(ctx: &Ctx, server: &Server, why: &str) -> Result<Action> {
    not_discovered(ctx, server, reasons::INVENTORY_UNREADABLE, why).await
}

/// Records `Discovered=False` with `reason` (when it changes) and polls again.
async fn not_discovered(ctx: &Ctx, server: &Server, reason: &str, why: &str) -> Result<Action> {
    let mut s = server.status.clone().unwrap_or_default();
    set_cond(
        &mut s,
        condition_types::DISCOVERED,
        ConditionStatus::False,
        reason,
        why,
        server.metadata.generation,
    );
    if Some(&s) != server.status.as_ref() {
        write(ctx, server, &s, why).await?;
    }
    Ok(Action::requeue(
        ctx.cfg.poll_interval.max(Duration::from_secs(5)),
    ))
}

async fn initial(ctx: &Ctx, server: &Server) -> Result<Action> {
    // After a timed-out round, pause so the condition stays visible and a broken boot path is
    // not retried in a tight loop.
    if let Some(c) = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::DISCOVERED))
        .filter(|c| c.status == "False" && c.reason == reasons::DISCOVERY_TIMED_OUT)
    {
        let waited = since(&c.last_transition_time);
        if waited < ctx.cfg.discovery_retry_delay {
            return Ok(Action::requeue(ctx.cfg.discovery_retry_delay - waited));
        }
    }
    let hw = match hardware(ctx, server).await? {
        Ok(hw) => hw,
        Err(why) => return bmc_not_ready(ctx, server, &why).await,
    };
    let name = server.name_any();
    let power = if ctx.cfg.enforce_first_boot {
        match hw.client.system(&hw.system).await {
            Ok(sys) => inventory::power_state(sys.power_state.as_ref()),
            Err(e) => {
                return bmc_not_ready(ctx, server, &format!("reading the system failed: {e}"))
                    .await;
            }
        }
    } else {
        None
    };
    match state::initial_step(true, ctx.cfg.enforce_first_boot, power) {
        InitialStep::WaitForBmc => return unreachable_step(),
        InitialStep::PowerOff => {
            guard::server_effect(ctx, &hw.client, &name, &hw.system, Effect::PowerOff).await?;
            ctx.event(
                server,
                EventType::Normal,
                "PoweringOff",
                "EnforceFirstBoot",
                "server was on; powering off before discovery".into(),
            )
            .await;
            return Ok(Action::requeue(ctx.cfg.poll_interval));
        }
        InitialStep::ReadInventory => {}
    }
    let inv = match hw.client.inventory(&hw.system).await {
        Ok(inv) => inventory::from_redfish(&inv),
        Err(e) => {
            return inventory_unreadable(
                ctx,
                server,
                &format!("reading the inventory failed: {e}"),
            )
            .await;
        }
    };
    let mode = mode(ctx, server);
    let mut s = server.status.clone().unwrap_or_default();
    apply_inventory(&mut s, &inv);
    if mode == InspectionMode::OutOfBand {
        // Nothing happens between recording the inventory and being done: one write.
        return finish_out_of_band(ctx, server, s).await;
    }
    s.state = Some(ServerState::Discovery);
    conditions::remove(&mut s.conditions, condition_types::POWERING_ON);
    let (reason, msg) = match mode {
        InspectionMode::OutOfBand => (reasons::INVENTORY_READ, "inventory read over Redfish"),
        InspectionMode::InBand => (
            reasons::WAITING_FOR_AGENT,
            "inventory read; booting the probe agent",
        ),
    };
    set_cond(
        &mut s,
        condition_types::DISCOVERED,
        ConditionStatus::Unknown,
        reason,
        msg,
        server.metadata.generation,
    );
    let updated = write(
        ctx,
        server,
        &s,
        &format!("inventory read ({})", mode.as_str()),
    )
    .await?;
    discovery(ctx, &updated, Some((hw, inv))).await
}

/// Records the inventory read over Redfish and `Available` in one write.
async fn finish_out_of_band(ctx: &Ctx, server: &Server, s: ServerStatus) -> Result<Action> {
    finish(
        ctx,
        server,
        s,
        reasons::INVENTORY_READ,
        "inventory read over Redfish",
        InspectionMode::OutOfBand,
    )
    .await
}

fn unreachable_step() -> Result<Action> {
    Err(Error::Config(
        "internal: WaitForBmc after the BMC was found ready".into(),
    ))
}

async fn finish(
    ctx: &Ctx,
    server: &Server,
    mut s: ServerStatus,
    reason: &str,
    msg: &str,
    mode: InspectionMode,
) -> Result<Action> {
    let elapsed = round_start(server);
    s.state = Some(ServerState::Available);
    conditions::remove(&mut s.conditions, condition_types::POWERING_ON);
    conditions::remove(&mut s.conditions, condition_types::BOOT_WINDOW);
    set_cond(
        &mut s,
        condition_types::DISCOVERED,
        ConditionStatus::True,
        reason,
        msg,
        server.metadata.generation,
    );
    write(ctx, server, &s, msg).await?;
    ctx.step("inventory-recorded").await;
    ctx.metrics.discovered(mode.as_str(), elapsed.as_secs_f64());
    // Out-of-band rounds create no internal objects (unless the mode changed mid-round).
    if mode == InspectionMode::InBand || has_internal_objects(ctx, &server.name_any()) {
        cleanup(ctx, &server.name_any()).await?;
    }
    Ok(Action::await_change())
}

async fn discovery(
    ctx: &Ctx,
    server: &Server,
    fresh: Option<(Hardware, Inventory)>,
) -> Result<Action> {
    let mode = mode(ctx, server);
    let (hw, inv) = match fresh {
        Some((hw, inv)) => (hw, Some(inv)),
        None => match hardware(ctx, server).await? {
            Ok(hw) => (hw, None),
            Err(why) => return bmc_not_ready(ctx, server, &why).await,
        },
    };
    let status = server.status.clone().unwrap_or_default();
    if mode == InspectionMode::OutOfBand {
        let mut s = status.clone();
        if inv.is_none() {
            // Resumed after a restart between the two writes: read once more.
            match hw.client.inventory(&hw.system).await {
                Ok(i) => apply_inventory(&mut s, &inventory::from_redfish(&i)),
                Err(e) => {
                    return bmc_not_ready(
                        ctx,
                        server,
                        &format!("reading the inventory failed: {e}"),
                    )
                    .await;
                }
            }
        }
        return finish_out_of_band(ctx, server, s).await;
    }
    in_band(ctx, server, hw).await
}

fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> Option<OwnerReference> {
    obj.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    })
}

async fn ensure_secret(ctx: &Ctx, server: &Server, registry_url: &str) -> Result<Secret> {
    let ns = &ctx.cfg.manager_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = secret_name(&server.name_any());
    if let Some(s) = api.get_opt(&name).await? {
        return Ok(s);
    }
    let uuid = server.spec.system_uuid.to_ascii_lowercase();
    let token = new_token();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {DISCOVERY_LABEL: "true", SYSTEM_UUID_LABEL: uuid},
            "annotations": {SERVER_ANNOTATION: server.name_any()},
            "ownerReferences": owner_ref(server).into_iter().collect::<Vec<_>>(),
        },
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token, IGNITION_KEY: ignition(registry_url, &uuid, &token, ctx.cfg.registry_ca.as_deref())},
    }))?;
    ctx.metrics.write("Secret", "create");
    match api
        .create(
            &PostParams {
                field_manager: Some(crate::context::MANAGER.into()),
                ..Default::default()
            },
            &secret,
        )
        .await
    {
        Ok(s) => {
            ctx.step("discovery-secret-created").await;
            Ok(s)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(&name).await?),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_sbc(
    ctx: &Ctx,
    server: &Server,
    registry_url: &str,
) -> Result<ServerBootConfiguration> {
    let ns = &ctx.cfg.manager_namespace;
    let api: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), ns);
    let name = sbc_name(&server.name_any());
    if let Some(s) = api.get_opt(&name).await? {
        return Ok(s);
    }
    let uuid = server.spec.system_uuid.to_ascii_lowercase();
    let spec = metal_probe::ignition::AgentImage {
        image: ctx.cfg.probe_os_image.clone(),
        kernel_url: ctx.cfg.probe_kernel_url.clone(),
        initrd_url: ctx.cfg.probe_initrd_url.clone(),
        rootfs_url: ctx.cfg.probe_rootfs_url.clone(),
    }
    .boot_spec(
        &server.name_any(),
        &secret_name(&server.name_any()),
        &cmdline(registry_url, &uuid),
    );
    let body = json!({
        "apiVersion": api::API_VERSION,
        "kind": "ServerBootConfiguration",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {DISCOVERY_LABEL: "true"},
            "annotations": {
                TYPE_ANNOTATION: TYPE_INTERNAL,
                IS_DEFAULT_OS_IMAGE_ANNOTATION: "true",
                SERVER_ANNOTATION: server.name_any(),
            },
            "ownerReferences": owner_ref(server).into_iter().collect::<Vec<_>>(),
        },
        "spec": spec,
    });
    let sbc = ctx.apply(&api, &name, &body, false).await?;
    ctx.step("discovery-boot-configuration-applied").await;
    Ok(sbc)
}

/// The stored report of this round: the ConfigMap must belong to the current token Secret.
async fn report(
    ctx: &Ctx,
    server: &Server,
    secret: &Secret,
) -> Result<Option<metal_probe::Report>> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.cfg.manager_namespace);
    let Some(cm) = api.get_opt(&report_name(&server.name_any())).await? else {
        return Ok(None);
    };
    Ok(api::constants::agent::round_report(&cm, secret, REPORT_KEY)
        .and_then(|j| serde_json::from_str(j).ok()))
}

async fn in_band(ctx: &Ctx, server: &Server, hw: Hardware) -> Result<Action> {
    let name = server.name_any();
    let generation = server.metadata.generation;
    let status = server.status.clone().unwrap_or_default();
    let Some(registry_url) = ctx.cfg.registry_url.clone() else {
        let mut s = status.clone();
        let msg = "in-band discovery needs --registry-url (or $REGISTRY_ADDRESS)";
        set_cond(
            &mut s,
            condition_types::DISCOVERED,
            ConditionStatus::Unknown,
            reasons::WAITING_FOR_AGENT,
            msg,
            generation,
        );
        if s != status {
            write(ctx, server, &s, msg).await?;
        }
        return Ok(Action::requeue(ctx.cfg.bmc_refresh_interval));
    };
    let secret = ensure_secret(ctx, server, &registry_url).await?;
    let sbc = ensure_sbc(ctx, server, &registry_url).await?;
    let report = report(ctx, server, &secret).await?;
    let boot_issued = conditions::is_true(&status.conditions, condition_types::POWERING_ON);
    let power = if boot_issued && report.is_none() {
        match hw.client.system(&hw.system).await {
            Ok(sys) => inventory::power_state(sys.power_state.as_ref()),
            Err(e) => {
                tracing::info!(server = %name, error = %e, "reading power state failed");
                None
            }
        }
    } else {
        status.power_state
    };
    let view = InBandView {
        report: report.is_some(),
        sbc_ready: sbc.status.as_ref().and_then(|s| s.state)
            == Some(ServerBootConfigurationState::Ready),
        boot_issued,
        power,
        elapsed: round_start(server),
        timeout: ctx.cfg.discovery_timeout,
    };
    let wait = ctx
        .cfg
        .poll_interval
        .min(ctx.cfg.discovery_timeout.saturating_sub(view.elapsed) + Duration::from_millis(200));
    match in_band_step(&view) {
        InBandStep::Merge => {
            let report = report.unwrap_or_default();
            let mut s = status.clone();
            s.network_interfaces = merge::network_interfaces(&status.network_interfaces, &report);
            s.power_state = power.or(s.power_state);
            finish(
                ctx,
                server,
                s,
                reasons::IN_BAND_DATA_RECEIVED,
                "in-band report received and merged",
                InspectionMode::InBand,
            )
            .await
        }
        InBandStep::TimedOut(msg) => {
            let mut s = status.clone();
            s.state = Some(ServerState::Initial);
            conditions::remove(&mut s.conditions, condition_types::POWERING_ON);
            conditions::remove(&mut s.conditions, condition_types::BOOT_WINDOW);
            set_cond(
                &mut s,
                condition_types::DISCOVERED,
                ConditionStatus::False,
                reasons::DISCOVERY_TIMED_OUT,
                &msg,
                generation,
            );
            write(ctx, server, &s, &format!("discovery timed out: {msg}")).await?;
            cleanup(ctx, &name).await?;
            Ok(Action::requeue(ctx.cfg.poll_interval))
        }
        InBandStep::WaitForBootConfig | InBandStep::WaitForAgent => Ok(Action::requeue(wait)),
        step @ (InBandStep::IssueBoot | InBandStep::ReissueBoot) => {
            // Recorded before the side effects, so a restart never mistakes an issued boot for
            // a missing one (and vice versa: a recorded boot is checked on the BMC). A reissued
            // boot is a new power-on, so it opens a new boot window: the boot server hands the
            // probe's boot script out once per power-on.
            let mut s = status.clone();
            if step == InBandStep::IssueBoot {
                set_cond(
                    &mut s,
                    condition_types::POWERING_ON,
                    ConditionStatus::True,
                    reasons::SERVER_POWER_ON,
                    "discovery boot: PXE once and power on",
                    generation,
                );
            }
            api::bootwindow::open(
                &mut s.conditions,
                "discovery boot",
                generation,
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
            );
            let server = write(ctx, server, &s, "discovery boot").await?;
            ctx.step("discovery-boot-recorded").await;
            guard::server_effect(ctx, &hw.client, &name, &hw.system, Effect::PxeBootOnce).await?;
            let powered =
                guard::server_effect(ctx, &hw.client, &name, &hw.system, Effect::PowerOn).await?;
            let note = if powered {
                "PXE boot override set and server powered on".to_string()
            } else {
                "PXE boot override set; the server was already on, so it boots the probe on its next reboot (see --enforce-first-boot)"
                    .to_string()
            };
            ctx.event(
                &server,
                EventType::Normal,
                "DiscoveryBoot",
                "Discover",
                note,
            )
            .await;
            Ok(Action::requeue(wait))
        }
    }
}

/// Deletes the internal discovery objects of a server (absent is fine).
pub async fn cleanup(ctx: &Ctx, server: &str) -> Result<()> {
    let ns = &ctx.cfg.manager_namespace;
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    ctx.delete(&sbcs, &sbc_name(server)).await?;
    ctx.delete(&cms, &report_name(server)).await?;
    ctx.delete(&secrets, &secret_name(server)).await?;
    Ok(())
}

/// A server that left discovery's states while its internal boot objects still exist (e.g. a
/// restart between the state write and the cleanup): remove them.
fn has_internal_objects(ctx: &Ctx, server: &str) -> bool {
    let key = kube::runtime::reflector::ObjectRef::new(&sbc_name(server))
        .within(&ctx.cfg.manager_namespace);
    ctx.internal_sbcs.get(&key).is_some()
}

async fn cleanup_if_left_over(ctx: &Ctx, server: &Server) -> Result<()> {
    let name = server.name_any();
    let key = kube::runtime::reflector::ObjectRef::new(&sbc_name(&name))
        .within(&ctx.cfg.manager_namespace);
    let leftover = ctx.internal_sbcs.get(&key).is_some();
    if leftover {
        tracing::info!(server = %name, "removing left-over discovery objects");
        cleanup(ctx, &name).await?;
    }
    Ok(())
}

/// Maps an internal discovery object (SBC, ConfigMap) to its Server.
pub fn server_of(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(SERVER_ANNOTATION).cloned()
}
