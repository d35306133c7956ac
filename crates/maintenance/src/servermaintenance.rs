//! The ServerMaintenance controller: runs [`plan::next`] and carries out its steps.
//!
//! Steps that write the Server are compare-and-swap writes; after each one the pipeline
//! continues with the object the API server returned, so one reconcile takes a free server all
//! the way into `Maintenance` without waiting for the cache.

use crate::bmc::BmcError;
use crate::plan::{self, Key, Step, Waiting};
use crate::writes;
use crate::{Caches, Ctx, Error, ignored, now};
use api::common::{IndicatorLED, Power};
use api::conditions::{self, ConditionStatus};
use api::constants::{MAINTENANCE_NEEDED_LABEL, finalizers};
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use api::servermaintenance::{ServerMaintenance, ServerMaintenanceState};
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use redfish::models::{ComputerSystem, IndicatorLed};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Condition type: the power state the maintenance asked for, and whether the BMC reached it.
pub const POWER_CONDITION: &str = "ServerPower";

/// Condition type: whether the maintenance boot configuration is served.
pub const BOOT_CONDITION: &str = "BootConfiguration";

/// Reasons of the [`POWER_CONDITION`] condition.
pub mod power_reasons {
    /// The power change was requested from the BMC and is not confirmed yet.
    pub const REQUESTED: &str = "PowerRequested";
    /// The BMC reports the requested power state.
    pub const REACHED: &str = "PowerReached";
}

/// How often a pending power change is polled.
const POWER_POLL: Duration = Duration::from_secs(2);

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    let by_server = ctx.maintenances.clone();
    let by_claim = ctx.maintenances.clone();
    let by_peer = ctx.maintenances.clone();
    let servers = ctx.servers.clone();
    Controller::for_shared_stream(caches.maintenances.applied(), ctx.maintenances.clone())
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        .watches_shared_stream(caches.boot_configurations.touched(), |sbc| {
            // Created from a maintenance's template: labelled with its name.
            let owner = sbc
                .labels()
                .get(api::constants::MAINTENANCE_BOOT_LABEL)?
                .clone();
            Some(ObjectRef::<ServerMaintenance>::new(&owner).within(&sbc.namespace()?))
        })
        .watches_shared_stream(caches.servers.touched(), move |server| {
            refs_for_server(&by_server, &server.name_any())
        })
        .watches_shared_stream(caches.claims.touched(), move |claim| {
            // The claim's server is the one whose maintenances wait for its approval.
            let bound = claim.spec.server_ref.as_ref().map(|r| r.name.clone());
            let server = bound.filter(|n| servers.get(&ObjectRef::new(n)).is_some());
            server.map_or_else(Vec::new, |s| refs_for_server(&by_claim, &s))
        })
        .watches_shared_stream(caches.maintenances.deleted(), move |sm| {
            // The next maintenance in the queue of the same server may go.
            refs_for_server(&by_peer, &sm.spec.server_ref.name)
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, crate::window::backoff::<ServerMaintenance>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "maintenance controller");
            }
        })
        .await;
}

fn refs_for_server(
    store: &kube::runtime::reflector::Store<ServerMaintenance>,
    server: &str,
) -> Vec<ObjectRef<ServerMaintenance>> {
    store
        .state()
        .iter()
        .filter(|m| m.spec.server_ref.name == server)
        .map(|m| ObjectRef::from_obj(m.as_ref()))
        .collect()
}

fn key_string(k: &Key) -> String {
    format!("{}/{}", k.0, k.1)
}

async fn reconcile(sm: Arc<ServerMaintenance>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = ctx.server_shard_key(Some(sm.spec.server_ref.name.as_str()));
    crate::window::instrumented(sm.as_ref(), &ctx, &key, reconcile_one(&sm, &ctx)).await
}

fn sm_api(ctx: &Ctx, sm: &ServerMaintenance) -> Api<ServerMaintenance> {
    Api::namespaced(ctx.client.clone(), &sm.namespace().unwrap_or_default())
}

async fn reconcile_one(sm: &ServerMaintenance, ctx: &Ctx) -> Result<Action, Error> {
    if ignored(&sm.metadata) {
        return Ok(Action::await_change());
    }
    if !ctx.in_scope(&sm.spec.server_ref.name) {
        return Ok(Action::await_change());
    }
    let api = sm_api(ctx, sm);
    let name = sm.name_any();
    let has_finalizer = sm
        .finalizers()
        .iter()
        .any(|f| f == finalizers::SERVER_MAINTENANCE);
    if sm.metadata.deletion_timestamp.is_none() && !has_finalizer {
        writes::set_finalizer(&api, &name, finalizers::SERVER_MAINTENANCE, true).await?;
        return Ok(Action::await_change());
    }
    if sm.metadata.deletion_timestamp.is_some() && !has_finalizer {
        return Ok(Action::await_change());
    }

    let me = plan::key(sm);
    let server_api: Api<Server> = Api::all(ctx.client.clone());
    let mut server: Option<Server> = ctx
        .servers
        .get(&ObjectRef::new(&sm.spec.server_ref.name))
        .map(|s| (*s).clone());
    let queue_arcs = ctx.maintenances_of(&sm.spec.server_ref.name);
    let queue: Vec<&ServerMaintenance> = queue_arcs.iter().map(AsRef::as_ref).collect();

    // At most one step per kind of write; each continues with the API server's answer.
    for _ in 0..6 {
        let claim = server.as_ref().and_then(|s| claim_of(ctx, s));
        let step = plan::next(sm, server.as_ref(), claim.as_deref(), &queue);
        tracing::debug!(maintenance = %key_string(&me), ?step, "step");
        match step {
            Step::Wait(w) => {
                write_status(ctx, sm, ServerMaintenanceState::Pending, waiting(&w, sm)).await?;
                return Ok(Action::requeue(ctx.config.resync));
            }
            Step::RequestApproval => {
                let claim = claim.expect("RequestApproval implies a claim");
                label_claim(ctx, &claim, true).await?;
                ctx.events.normal(
                    sm,
                    api::constants::reasons::SERVER_MAINTENANCE_WAITING,
                    format!(
                        "asked the owner of claim {}/{} for approval",
                        claim.namespace().unwrap_or_default(),
                        claim.name_any()
                    ),
                );
                return Ok(Action::await_change());
            }
            Step::TakeRef => {
                let s = server.as_ref().expect("TakeRef implies a server");
                server =
                    Some(writes::set_maintenance_ref(&server_api, s, Some((&me.0, &me.1))).await?);
            }
            Step::Enter => {
                let s = server.as_ref().expect("Enter implies a server");
                let entered = writes::set_state(&server_api, s, ServerState::Maintenance).await?;
                ctx.events.normal(
                    sm,
                    "InMaintenance",
                    format!(
                        "server {} is in maintenance (was {})",
                        entered.name_any(),
                        s.state().map_or("-".to_string(), |x| x.to_string())
                    ),
                );
                server = Some(entered);
            }
            Step::Hold => {
                let s = server.as_ref().expect("Hold implies a server");
                return hold(ctx, sm, s).await;
            }
            Step::HandBack(to) => {
                let s = server.as_ref().expect("HandBack implies a server");
                if s.spec.maintenance_boot_configuration_ref.is_some()
                    || sm.spec.server_boot_configuration_template.is_some()
                {
                    match end_boot(ctx, sm, s).await? {
                        Some(s) => server = Some(s),
                        None => return Ok(Action::requeue(POWER_POLL)),
                    }
                    let s = server.as_ref().expect("still the server");
                    if s.spec.maintenance_boot_configuration_ref.is_some() {
                        continue;
                    }
                }
                let s = server.as_ref().expect("HandBack implies a server");
                if sm.spec.locator_led.is_some_and(|l| l != IndicatorLED::Off)
                    && let Ok((bmc, system)) = ctx.bmcs.for_server(s).await
                    && let Err(e) = bmc.set_indicator_led(&system, IndicatorLed::Off).await
                {
                    tracing::info!(server = %s.name_any(), error = %e, "switching the LED off failed");
                }
                let back = writes::set_state(&server_api, s, to).await?;
                ctx.events.normal(
                    sm,
                    "MaintenanceEnded",
                    format!("server {} handed back as {to}", back.name_any()),
                );
                server = Some(back);
            }
            Step::ReleaseRef => {
                let s = server.as_ref().expect("ReleaseRef implies a server");
                server = Some(writes::set_maintenance_ref(&server_api, s, None).await?);
            }
            Step::Finish => {
                if !plan::others_pending(&me, &queue)
                    && let Some(claim) = server.as_ref().and_then(|s| claim_of(ctx, s))
                    && plan::approval_requested(&claim)
                {
                    label_claim(ctx, &claim, false).await?;
                }
                writes::set_finalizer(&api, &name, finalizers::SERVER_MAINTENANCE, false).await?;
                return Ok(Action::await_change());
            }
        }
    }
    // Every write above changes the object, so the watch brings us back.
    Ok(Action::requeue(Duration::from_millis(200)))
}

fn claim_of(ctx: &Ctx, server: &Server) -> Option<Arc<ServerClaim>> {
    let r = server.spec.server_claim_ref.as_ref()?;
    ctx.claims
        .get(&ObjectRef::new(&r.name).within(&r.namespace))
}

/// Adds or removes the `maintenance-needed` label (ours alone through server-side apply).
async fn label_claim(ctx: &Ctx, claim: &ServerClaim, on: bool) -> Result<(), Error> {
    let api: Api<ServerClaim> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let labels = if on {
        json!({ MAINTENANCE_NEEDED_LABEL: "true" })
    } else {
        json!({})
    };
    writes::apply(
        &api,
        &claim.name_any(),
        json!({"metadata": {"labels": labels}}),
    )
    .await?;
    Ok(())
}

fn waiting(w: &Waiting, sm: &ServerMaintenance) -> Condition {
    conditions::new(
        plan::CONDITION,
        ConditionStatus::False,
        w.reason,
        &w.message,
        sm.metadata.generation,
        now(),
    )
}

/// Writes state and one condition (keeping the others and unchanged transition times); skips
/// the write when nothing changes.
async fn write_status(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    state: ServerMaintenanceState,
    condition: Condition,
) -> Result<(), Error> {
    write_conditions(ctx, sm, state, vec![condition], &[]).await?;
    Ok(())
}

/// Writes state and `updates` (keeping the other conditions and unchanged transition times);
/// `fresh` names records that start anew (their old entry is dropped first, so the transition
/// time is now). Returns the written object, `None` when nothing changed.
async fn write_conditions(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    state: ServerMaintenanceState,
    updates: Vec<Condition>,
    fresh: &[&str],
) -> Result<Option<ServerMaintenance>, Error> {
    let old = sm.status.clone().unwrap_or_default();
    let mut list = old.conditions.clone();
    let mut changed = old.state != Some(state);
    if !fresh.is_empty() {
        list.retain(|c| !fresh.contains(&c.type_.as_str()));
        changed = true;
    }
    for c in updates {
        changed |= conditions::set(&mut list, c);
    }
    if !changed {
        return Ok(None);
    }
    // Only from an up-to-date read: records precede side effects, and a write from a stale
    // read would drop a record another reconcile made.
    let status = json!({"state": state, "conditions": list});
    Ok(Some(
        writes::apply_status_if_unchanged(&sm_api(ctx, sm), sm, status).await?,
    ))
}

fn power_of(p: Power) -> redfish::models::PowerState {
    match p {
        Power::On => redfish::models::PowerState::On,
        Power::Off => redfish::models::PowerState::Off,
    }
}

/// What to do about power in one reconcile (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerStep {
    /// The BMC reports the requested state.
    Reached,
    /// A request is recorded and younger than the power timeout: poll.
    Wait,
    /// Send the request (`retry`: an earlier one timed out).
    Issue {
        /// Whether an earlier request timed out.
        retry: bool,
    },
}

/// Decides the power step: `observed` is the BMC's state, `requested_age` the age of the
/// recorded request for this spec generation and target, if any. Nothing is sent while the
/// BMC reports a power transition.
pub fn power_step(
    want: redfish::models::PowerState,
    observed: Option<redfish::models::PowerState>,
    requested_age: Option<Duration>,
    timeout: Duration,
) -> PowerStep {
    use redfish::models::PowerState::{PoweringOff, PoweringOn};
    if observed == Some(want) {
        return PowerStep::Reached;
    }
    // A transition under way ends on its own; BMCs refuse (409) or drop a request sent into
    // it, so wait for it unless a request of ours has already timed out.
    let moving = matches!(observed, Some(PoweringOn | PoweringOff));
    match requested_age {
        _ if moving && requested_age.is_none_or(|age| age < timeout) => PowerStep::Wait,
        Some(age) if age < timeout => PowerStep::Wait,
        Some(_) => PowerStep::Issue { retry: true },
        None => PowerStep::Issue { retry: false },
    }
}

/// Age of the recorded power request for `power` at the current generation, if any.
fn requested_age(sm: &ServerMaintenance, power: Power) -> Option<Duration> {
    let status = sm.status.as_ref()?;
    let c = conditions::get(&status.conditions, POWER_CONDITION)?;
    let current = c.reason == power_reasons::REQUESTED
        && c.observed_generation == sm.metadata.generation
        && c.message == requested_message(power);
    current.then(|| {
        let secs = k8s_openapi::jiff::Timestamp::now()
            .duration_since(c.last_transition_time.0)
            .as_secs();
        Duration::from_secs(secs.max(0) as u64)
    })
}

fn requested_message(power: Power) -> String {
    format!("requested power {power}")
}

/// The server is ours: reach the requested power (sent once per spec generation and target,
/// again only after the power timeout), set the LED, and report `InMaintenance`. A power
/// request is recorded in status before it is sent, so a restarted controller polls instead
/// of sending it again.
async fn hold(ctx: &Ctx, sm: &ServerMaintenance, server: &Server) -> Result<Action, Error> {
    let held = conditions::new(
        plan::CONDITION,
        ConditionStatus::True,
        plan::reasons::IN_MAINTENANCE,
        &format!("server {} is in maintenance", server.name_any()),
        sm.metadata.generation,
        now(),
    );
    let mut updates = vec![held];
    let mut requeue = ctx.config.resync;
    let mut fresh = Vec::new();
    let boot = if sm.spec.server_boot_configuration_template.is_some() {
        let outcome = crate::mboot::run(ctx, sm, server).await?;
        requeue = requeue.min(outcome.requeue);
        updates.push(outcome.condition.clone());
        if outcome.send.as_ref().is_some_and(|b| b.fresh_record) {
            fresh.push(BOOT_CONDITION);
        }
        Some(outcome)
    } else {
        None
    };
    let (boot_server, pending_boot) = match boot {
        Some(b) => (Some(b.server), b.send.filter(|_| b.owns_power)),
        None => (None, None),
    };
    let boot_owns_power = sm.spec.server_boot_configuration_template.is_some()
        && sm.spec.server_power != Some(Power::Off);
    let server = boot_server.as_ref().unwrap_or(server);
    let mut send: Option<(redfish::Client, String, Power, bool)> = None;
    if sm.spec.server_power.is_some() || sm.spec.locator_led.is_some() {
        match bmc_facts(ctx, sm, server).await {
            Err(e) => {
                updates.push(power_condition(
                    sm,
                    ConditionStatus::False,
                    e.reason(),
                    &e.to_string(),
                ));
                requeue = Duration::from_secs(10);
            }
            Ok((bmc, system, observed)) => {
                if let Some(power) = sm.spec.server_power.filter(|_| !boot_owns_power) {
                    let step = power_step(
                        power_of(power),
                        observed,
                        requested_age(sm, power),
                        ctx.config.power_timeout,
                    );
                    match step {
                        PowerStep::Reached => updates.push(power_condition(
                            sm,
                            ConditionStatus::True,
                            power_reasons::REACHED,
                            &format!("the BMC reports power {power}"),
                        )),
                        PowerStep::Wait => requeue = POWER_POLL,
                        PowerStep::Issue { retry } => {
                            // A new record: drop the old one so the transition time restarts.
                            updates.push(power_condition(
                                sm,
                                ConditionStatus::False,
                                power_reasons::REQUESTED,
                                &requested_message(power),
                            ));
                            requeue = POWER_POLL;
                            fresh.push(POWER_CONDITION);
                            send = Some((bmc, system, power, retry));
                        }
                    }
                }
            }
        }
    }
    let written = write_conditions(
        ctx,
        sm,
        ServerMaintenanceState::InMaintenance,
        updates,
        &fresh,
    )
    .await?;
    if let Some(pending) = pending_boot {
        let sm_now = written.as_ref().unwrap_or(sm);
        ctx.step("maintenance-boot-recorded").await;
        let (_, failure) =
            crate::mboot::send(ctx, sm_now, server, &pending.id, pending.again).await?;
        if let Some(c) = failure {
            requeue = Duration::from_secs(10);
            write_conditions(
                ctx,
                sm_now,
                ServerMaintenanceState::InMaintenance,
                vec![c],
                &[],
            )
            .await?;
        } else {
            ctx.step("maintenance-boot-sent").await;
        }
    }
    if let Some((bmc, system, power, retry)) = send {
        let sent = match (power, retry) {
            (Power::On, _) => bmc.power_on(&system).await,
            (Power::Off, false) => bmc.power_off(&system).await,
            (Power::Off, true) => bmc.force_off(&system).await,
        };
        ctx.requests.observe("power", &sent);
        match sent {
            Ok(_) => ctx.events.normal(
                sm,
                power_reasons::REQUESTED,
                format!(
                    "requested power {power} from the BMC{}",
                    if retry { " again" } else { "" }
                ),
            ),
            Err(e) => ctx.events.warning(
                sm,
                "PowerRequestFailed",
                format!("requesting power {power} failed: {e}"),
            ),
        }
    }
    Ok(Action::requeue(requeue))
}

/// Ends the maintenance boot before the server is handed back: a server this maintenance
/// booted is powered off first (recorded like `serverPower`, so its next owner boots its own
/// configuration), then the reference is cleared and the configuration deleted. `None` while
/// the power-off is pending.
async fn end_boot(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    server: &Server,
) -> Result<Option<Server>, Error> {
    if crate::mboot::booted(sm) {
        let state = ServerMaintenanceState::InMaintenance;
        let observed = match ctx.bmcs.for_server(server).await {
            Ok((bmc, system)) => match bmc.get::<ComputerSystem>(&system).await {
                Ok(sys) => Ok((bmc, system, sys.power_state)),
                Err(e) => {
                    let msg = e.to_string();
                    Err((BmcError::from(e).reason(), msg))
                }
            },
            Err(e) => Err((e.reason(), e.to_string())),
        };
        let (bmc, system, power) = match observed {
            Ok(v) => v,
            Err((reason, msg)) => {
                let c = power_condition(sm, ConditionStatus::False, reason, &msg);
                write_conditions(ctx, sm, state, vec![c], &[]).await?;
                return Ok(None);
            }
        };
        let step = power_step(
            redfish::models::PowerState::Off,
            power,
            requested_age(sm, Power::Off),
            ctx.config.power_timeout,
        );
        match step {
            PowerStep::Reached => {}
            PowerStep::Wait => return Ok(None),
            PowerStep::Issue { retry } => {
                let c = power_condition(
                    sm,
                    ConditionStatus::False,
                    power_reasons::REQUESTED,
                    &requested_message(Power::Off),
                );
                write_conditions(ctx, sm, state, vec![c], &[POWER_CONDITION]).await?;
                ctx.send_power_off(sm, &bmc, &system, retry, "end of the maintenance boot")
                    .await;
                return Ok(None);
            }
        }
    }
    Ok(Some(crate::mboot::tear_down(ctx, sm, server).await?))
}

/// The BMC client, the system path and the power state the BMC reports; sets the LED on the
/// way (idempotent: the client skips the write when the LED already matches).
async fn bmc_facts(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    server: &Server,
) -> Result<(redfish::Client, String, Option<redfish::models::PowerState>), BmcError> {
    let (bmc, system) = ctx.bmcs.for_server(server).await?;
    if let Some(want) = sm.spec.locator_led.and_then(led_of) {
        bmc.set_indicator_led(&system, want).await?;
    }
    let sys: ComputerSystem = bmc.get(&system).await?;
    Ok((bmc, system, sys.power_state))
}

fn led_of(led: IndicatorLED) -> Option<IndicatorLed> {
    match led {
        IndicatorLED::Lit => Some(IndicatorLed::Lit),
        IndicatorLED::Blinking => Some(IndicatorLed::Blinking),
        IndicatorLED::Off => Some(IndicatorLed::Off),
        IndicatorLED::Unknown => None,
    }
}

fn power_condition(
    sm: &ServerMaintenance,
    status: ConditionStatus,
    reason: &str,
    message: &str,
) -> Condition {
    conditions::new(
        POWER_CONDITION,
        status,
        reason,
        message,
        sm.metadata.generation,
        now(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use redfish::models::PowerState::{Off, On};

    #[test]
    fn power_is_sent_once_then_polled_then_sent_again_after_the_timeout() {
        let t = Duration::from_secs(300);
        assert_eq!(power_step(On, Some(On), None, t), PowerStep::Reached);
        assert_eq!(
            power_step(On, Some(Off), None, t),
            PowerStep::Issue { retry: false }
        );
        assert_eq!(
            power_step(On, Some(Off), Some(Duration::from_secs(5)), t),
            PowerStep::Wait
        );
        assert_eq!(
            power_step(On, Some(Off), Some(Duration::from_secs(301)), t),
            PowerStep::Issue { retry: true }
        );
        assert_eq!(
            power_step(Off, None, None, t),
            PowerStep::Issue { retry: false }
        );
        assert_eq!(
            power_step(Off, Some(Off), Some(Duration::from_secs(999)), t),
            PowerStep::Reached
        );
    }

    #[test]
    fn nothing_is_sent_into_a_power_transition() {
        use redfish::models::PowerState::{PoweringOff, PoweringOn};
        let t = Duration::from_secs(300);
        // Powered on behind our back and still booting: a shutdown now would be refused.
        assert_eq!(power_step(Off, Some(PoweringOn), None, t), PowerStep::Wait);
        assert_eq!(power_step(On, Some(PoweringOff), None, t), PowerStep::Wait);
        assert_eq!(
            power_step(Off, Some(PoweringOn), Some(Duration::from_secs(5)), t),
            PowerStep::Wait
        );
        // A transition that outlasts our own timed-out request: send again.
        assert_eq!(
            power_step(Off, Some(PoweringOn), Some(Duration::from_secs(301)), t),
            PowerStep::Issue { retry: true }
        );
    }
}
