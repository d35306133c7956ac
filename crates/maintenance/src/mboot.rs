//! Maintenance boot: a ServerMaintenance's `serverBootConfigurationTemplate` boots the server
//! into that configuration for the length of the maintenance, through provisioning's boot
//! server.
//!
//! Coordination is through objects only. Maintenance creates the ServerBootConfiguration
//! (owned by the maintenance, labelled [`MAINTENANCE_BOOT_LABEL`]) and points the Server's
//! `spec.maintenanceBootConfigurationRef` at it; provisioning resolves it to `Ready` and, while
//! the server is in `Maintenance`, serves it and nothing else. Maintenance, the owner of the
//! BMC in that state, boots the server: it records the boot in the maintenance's
//! `BootConfiguration` condition (resourceVersion precondition), opens the Server's boot
//! window, and only then sets the one-time network-boot override and powers the server on (or
//! restarts it). The boot server closes the window when it hands out the script; that close,
//! later than the record, is the proof of the boot (`Booted`). A restarted controller finds the
//! record and waits instead of booting again; a boot whose script is not fetched within
//! `--maintenance-boot-timeout` is recorded anew and sent again.
//!
//! When the maintenance ends, a server that was booted is powered off (so the next owner boots
//! its own configuration), the reference is cleared and the configuration deleted.

use crate::{Ctx, Error, now, writes};
use api::common::Power;
use api::conditions::{self, ConditionStatus};
use api::constants::{MAINTENANCE_BOOT_LABEL, condition_types, reasons as api_reasons};
use api::server::Server;
use api::serverbootconfiguration::{
    BootMethod, ServerBootConfiguration, ServerBootConfigurationState,
};
use api::servermaintenance::ServerMaintenance;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use std::time::Duration;

/// Reasons of the maintenance's `BootConfiguration` condition.
pub mod reasons {
    /// A configuration of the template's name exists and is not this maintenance's.
    pub const NAME_IN_USE: &str = "BootConfigurationNameInUse";
    /// The configuration is created and waits for provisioning to resolve it.
    pub const WAITING: &str = "WaitingForBootConfiguration";
    /// Provisioning cannot serve the configuration (its Ready message says why).
    pub const FAILED: &str = "BootConfigurationError";
    /// Virtual-media configurations are not booted by maintenance.
    pub const NOT_SUPPORTED: &str = "NotSupported";
    /// `serverPower: Off`: the configuration is prepared, the server stays off.
    pub const POWER_OFF: &str = "PowerOff";
    /// A boot is recorded (and, once the boot window is open, sent to the BMC).
    pub const REQUESTED: &str = "BootRequested";
    /// The BMC refused the override or the power request (retried).
    pub const REQUEST_FAILED: &str = "BootRequestFailed";
    /// The server fetched the configuration's boot script after the recorded boot.
    pub const BOOTED: &str = "Booted";
}

/// What identifies one boot: the configuration object and the generation of its spec.
pub fn boot_id(sbc: &ServerBootConfiguration) -> String {
    format!(
        "{}/{} generation {} (uid {})",
        sbc.namespace().unwrap_or_default(),
        sbc.name_any(),
        sbc.metadata.generation.unwrap_or_default(),
        sbc.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn requested_message(id: &str) -> String {
    format!("boot of {id} requested")
}

fn booted_message(id: &str) -> String {
    format!("the server fetched the boot script of {id}")
}

/// Whether `superset` carries every field of `subset` with the same value (defaults the API
/// server added to the object do not count as a difference).
pub fn contains(superset: &Value, subset: &Value) -> bool {
    match (superset, subset) {
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, v)| v.is_null() || a.get(k).is_some_and(|x| contains(x, v))),
        (a, b) => a == b,
    }
}

/// Whether provisioning reports the configuration's current generation Ready.
pub fn ready(sbc: &ServerBootConfiguration) -> Result<bool, String> {
    let Some(st) = &sbc.status else {
        return Ok(false);
    };
    let current = conditions::get(&st.conditions, condition_types::READY)
        .filter(|c| c.observed_generation == sbc.metadata.generation);
    match st.state {
        Some(ServerBootConfigurationState::Ready) => {
            Ok(current.is_some_and(|c| c.status == ConditionStatus::True.as_str()))
        }
        Some(ServerBootConfigurationState::Error) if current.is_some() => Err(current
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "the configuration is in state Error".into())),
        _ => Ok(false),
    }
}

/// What the boot flow sees in one reconcile (pure input).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The configuration of the template's name, if it exists.
    pub sbc: Option<&'a ServerBootConfiguration>,
    /// Whether it is this maintenance's (controller reference to its uid).
    pub owned: bool,
    /// Whether its spec carries the template's.
    pub spec_matches: bool,
    /// Whether the Server's `spec.maintenanceBootConfigurationRef` points at it.
    pub referenced: bool,
    /// Whether power On is wanted (`serverPower` is not Off).
    pub power_on: bool,
    /// The maintenance's `BootConfiguration` condition.
    pub record: Option<&'a Condition>,
    /// The Server's `BootWindow` condition.
    pub window: Option<&'a Condition>,
    /// Now.
    pub now: Timestamp,
    /// How long a recorded boot may take to fetch its script.
    pub timeout: Duration,
}

/// The next step of the boot flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create or update the configuration from the template (server-side apply).
    Apply,
    /// The name belongs to another object: report, touch nothing.
    NameInUse,
    /// Point `spec.maintenanceBootConfigurationRef` at the configuration (compare-and-swap).
    Reference,
    /// Wait for provisioning to resolve the configuration.
    WaitReady,
    /// The configuration cannot be served (message from its Ready condition).
    Failed(String),
    /// A virtual-media configuration: report, do not boot.
    NotSupported,
    /// Prepared; the server is to stay off.
    Prepared,
    /// Record a boot (a fresh record), open the window, send override and power.
    Boot {
        /// An earlier boot of the same configuration timed out.
        again: bool,
    },
    /// A boot is recorded but its window was never opened (a restart between the two): open
    /// it and send (nothing was sent for this record yet).
    Send,
    /// A boot is sent: wait for the boot server to hand out the script.
    Await,
    /// The script was fetched after the recorded boot: report `Booted`.
    Confirm,
    /// Booted and reported.
    Done,
}

fn age(now: Timestamp, c: &Condition) -> Duration {
    now.duration_since(c.last_transition_time.0)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

/// Decides the next step (pure).
pub fn next(f: &Facts<'_>) -> Step {
    let Some(sbc) = f.sbc else {
        return Step::Apply;
    };
    if !f.owned {
        return Step::NameInUse;
    }
    if !f.spec_matches {
        return Step::Apply;
    }
    if !f.referenced {
        return Step::Reference;
    }
    match ready(sbc) {
        Err(m) => return Step::Failed(m),
        Ok(false) => return Step::WaitReady,
        Ok(true) => {}
    }
    if sbc.spec.boot_method == Some(BootMethod::VirtualMedia) {
        return Step::NotSupported;
    }
    if !f.power_on {
        return Step::Prepared;
    }
    let id = boot_id(sbc);
    let record = f.record.filter(|c| c.message.contains(&id));
    let Some(record) = record else {
        return Step::Boot { again: false };
    };
    if record.reason == reasons::BOOTED {
        return Step::Done;
    }
    if record.reason != reasons::REQUESTED {
        return Step::Boot { again: false };
    }
    // Only a window opened (or closed) at or after the record belongs to this boot.
    let window = f.window.filter(|w| {
        w.last_transition_time.0.as_second() >= record.last_transition_time.0.as_second()
    });
    match window {
        None => Step::Send,
        Some(w)
            if w.status == ConditionStatus::False.as_str()
                && w.reason == api_reasons::BOOT_SCRIPT_SERVED =>
        {
            Step::Confirm
        }
        Some(_) if age(f.now, record) < f.timeout => Step::Await,
        Some(_) => Step::Boot { again: true },
    }
}

/// The configuration's object reference as `(namespace, name)` of maintenance `sm`.
fn target(sm: &ServerMaintenance) -> Option<(String, String)> {
    let t = sm.spec.server_boot_configuration_template.as_ref()?;
    Some((sm.namespace().unwrap_or_default(), t.name.clone()))
}

fn points_at(server: &Server, ns: &str, name: &str) -> bool {
    server
        .spec
        .maintenance_boot_configuration_ref
        .as_ref()
        .is_some_and(|r| r.namespace == ns && r.name == name)
}

/// The result of one pass of the boot flow for `hold`.
#[derive(Debug)]
pub struct Outcome {
    /// The maintenance's `BootConfiguration` condition to report.
    pub condition: Condition,
    /// Whether the regular `serverPower` handling is to stand down (the boot flow owns power).
    pub owns_power: bool,
    /// When to look again.
    pub requeue: Duration,
    /// The Server after any write of this pass.
    pub server: Server,
    /// A boot to send once `condition` is recorded.
    pub send: Option<PendingBoot>,
}

/// A boot to send after its record is written ([`send`]).
#[derive(Debug, Clone)]
pub struct PendingBoot {
    /// The boot's [`boot_id`].
    pub id: String,
    /// An earlier boot timed out.
    pub again: bool,
    /// `condition` is a new record: drop the old one first.
    pub fresh_record: bool,
}

fn condition(
    sm: &ServerMaintenance,
    status: ConditionStatus,
    reason: &str,
    msg: &str,
) -> Condition {
    conditions::new(
        crate::servermaintenance::BOOT_CONDITION,
        status,
        reason,
        msg,
        sm.metadata.generation,
        now(),
    )
}

/// Runs the boot flow of maintenance `sm` holding `server` (template present): the writes of
/// the preparing steps happen here; the caller records the returned condition with the others
/// and then, for [`Outcome::send`], calls [`send`].
pub(crate) async fn run(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    server: &Server,
) -> Result<Outcome, Error> {
    let (ns, name) = target(sm).expect("run is only called with a template");
    let template = sm
        .spec
        .server_boot_configuration_template
        .as_ref()
        .expect("template");
    let mut spec = serde_json::to_value(&template.spec).unwrap_or_default();
    spec["serverRef"] = json!({"name": server.name_any()});
    let cached = ctx
        .boot_configurations
        .get(&ObjectRef::new(&name).within(&ns));
    let owned = cached.as_ref().is_some_and(|s| {
        s.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == sm.metadata.uid.as_ref())
    });
    let spec_matches = cached
        .as_ref()
        .is_some_and(|s| contains(&serde_json::to_value(&s.spec).unwrap_or_default(), &spec));
    let server_api: Api<Server> = Api::all(ctx.client.clone());
    let mut server = server.clone();
    let record = sm
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, crate::servermaintenance::BOOT_CONDITION));
    let window = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::BOOT_WINDOW))
        .cloned();
    let facts = Facts {
        sbc: cached.as_deref(),
        owned,
        spec_matches,
        referenced: points_at(&server, &ns, &name),
        power_on: sm.spec.server_power != Some(Power::Off),
        record,
        window: window.as_ref(),
        now: Timestamp::now(),
        timeout: ctx.config.maintenance_boot_timeout,
    };
    let step = next(&facts);
    tracing::debug!(maintenance = %sm.name_any(), ?step, "maintenance boot");
    let pending = |reason: &str, msg: String, requeue: Duration, server: Server| Outcome {
        condition: condition(sm, ConditionStatus::False, reason, &msg),
        owns_power: facts.power_on,
        requeue,
        server,
        send: None,
    };
    match step {
        Step::Apply => {
            let api: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), &ns);
            let owner = json!({
                "apiVersion": api::API_VERSION, "kind": "ServerMaintenance",
                "name": sm.name_any(), "uid": sm.metadata.uid,
                "controller": true, "blockOwnerDeletion": true,
            });
            writes::apply(
                &api,
                &name,
                json!({
                    "metadata": {
                        "namespace": ns,
                        "labels": { MAINTENANCE_BOOT_LABEL: sm.name_any() },
                        "ownerReferences": [owner],
                    },
                    "spec": spec,
                }),
            )
            .await?;
            Ok(pending(
                reasons::WAITING,
                format!("ServerBootConfiguration {ns}/{name} applied; waiting for it to be Ready"),
                Duration::from_secs(2),
                server,
            ))
        }
        Step::NameInUse => Ok(pending(
            reasons::NAME_IN_USE,
            format!(
                "ServerBootConfiguration {ns}/{name} exists and is not this maintenance's; rename the template"
            ),
            ctx.config.resync,
            server,
        )),
        Step::Reference => {
            server =
                writes::set_maintenance_boot_ref(&server_api, &server, Some((&ns, &name))).await?;
            Ok(pending(
                reasons::WAITING,
                format!("server points at ServerBootConfiguration {ns}/{name}"),
                Duration::from_millis(200),
                server,
            ))
        }
        Step::WaitReady => Ok(pending(
            reasons::WAITING,
            format!("waiting for ServerBootConfiguration {ns}/{name} to be Ready"),
            Duration::from_secs(5),
            server,
        )),
        Step::Failed(m) => Ok(pending(
            reasons::FAILED,
            format!("ServerBootConfiguration {ns}/{name} cannot be served: {m}"),
            Duration::from_secs(30),
            server,
        )),
        Step::NotSupported => Ok(Outcome {
            owns_power: false,
            ..pending(
                reasons::NOT_SUPPORTED,
                "virtual-media maintenance boots are not supported; use image or bootArtifacts"
                    .into(),
                ctx.config.resync,
                server,
            )
        }),
        Step::Prepared => Ok(pending(
            reasons::POWER_OFF,
            format!(
                "ServerBootConfiguration {ns}/{name} is Ready; serverPower is Off, so the server boots it once serverPower is On"
            ),
            ctx.config.resync,
            server,
        )),
        Step::Boot { again } => {
            let sbc = cached.expect("Boot implies a configuration");
            let id = boot_id(&sbc);
            // A fresh record (the caller drops the old one so its transition time starts
            // now), written before anything is sent.
            Ok(Outcome {
                condition: condition(
                    sm,
                    ConditionStatus::False,
                    reasons::REQUESTED,
                    &requested_message(&id),
                ),
                owns_power: true,
                requeue: Duration::from_secs(2),
                server,
                send: Some(PendingBoot {
                    id,
                    again,
                    fresh_record: true,
                }),
            })
        }
        Step::Send => {
            let sbc = cached.expect("Send implies a configuration");
            Ok(Outcome {
                condition: record.cloned().expect("Send implies a record"),
                owns_power: true,
                requeue: Duration::from_secs(2),
                server,
                send: Some(PendingBoot {
                    id: boot_id(&sbc),
                    again: false,
                    fresh_record: false,
                }),
            })
        }
        Step::Await => Ok(Outcome {
            condition: record.cloned().expect("Await implies a record"),
            owns_power: true,
            requeue: Duration::from_secs(2),
            server,
            send: None,
        }),
        Step::Confirm | Step::Done => {
            let sbc = cached.expect("Confirm implies a configuration");
            let id = boot_id(&sbc);
            if step == Step::Confirm {
                ctx.events.normal(
                    sm,
                    reasons::BOOTED,
                    format!(
                        "server {} fetched its maintenance boot script",
                        server.name_any()
                    ),
                );
            }
            Ok(Outcome {
                condition: condition(
                    sm,
                    ConditionStatus::True,
                    reasons::BOOTED,
                    &booted_message(&id),
                ),
                owns_power: true,
                requeue: ctx.config.resync,
                server,
                send: None,
            })
        }
    }
}

/// What sending a network boot came to: `Ok(Some(restarted))` sent (`restarted`: the server
/// was on), `Ok(None)` a power request that timed out (it may have reached the BMC, so the
/// record stands and the boot timeout decides), `Err((reason, message))` refused.
pub(crate) type Sent = Result<Option<bool>, (String, String)>;

/// Opens the Server's boot window for `what` (then passes step `step`), sets the one-time
/// network-boot override and powers the server on, or restarts it when it is on. Shared by the
/// maintenance boot and the cleaning agent's boot.
pub(crate) async fn network_boot(
    ctx: &Ctx,
    server: &Server,
    what: &str,
    step: &'static str,
) -> Result<(Server, Sent), Error> {
    let server_api: Api<Server> = Api::all(ctx.client.clone());
    let mut list = Vec::new();
    api::bootwindow::open(&mut list, what, server.metadata.generation, now());
    let server = writes::apply_server_conditions(&server_api, server, list).await?;
    ctx.step(step).await;
    let refused = |reason: &str, msg: String| Err((reason.to_string(), msg));
    let (bmc, system) = match ctx.bmcs.for_server(&server).await {
        Ok(v) => v,
        Err(e) => return Ok((server, refused(e.reason(), e.to_string()))),
    };
    let set = bmc
        .set_boot_override(
            &system,
            ctx.config.network_boot_target.clone(),
            redfish::BootOverride::Once,
        )
        .await;
    ctx.requests.observe("boot_override", &set);
    if let Err(e) = set {
        let msg = format!("setting the boot override failed: {e}");
        return Ok((server, refused(reasons::REQUEST_FAILED, msg)));
    }
    let sys: redfish::models::ComputerSystem = match bmc.get(&system).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("reading the system failed: {e}");
            return Ok((server, refused(reasons::REQUEST_FAILED, msg)));
        }
    };
    let on = sys.power_state == Some(redfish::models::PowerState::On);
    let sent = if on {
        bmc.restart(&system, false).await
    } else {
        bmc.power_on(&system).await
    };
    ctx.requests
        .observe(if on { "restart" } else { "power" }, &sent);
    match sent {
        Ok(_) => Ok((server, Ok(Some(on)))),
        Err(e) if e.class() == redfish::ErrorClass::Timeout => Ok((server, Ok(None))),
        Err(e) => {
            let msg = format!("the power request failed: {e}");
            Ok((server, refused(reasons::REQUEST_FAILED, msg)))
        }
    }
}

/// Sends the maintenance boot recorded as `id` ([`network_boot`]); a refusal comes back as
/// the condition to report instead of the record.
pub(crate) async fn send(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    server: &Server,
    id: &str,
    again: bool,
) -> Result<(Server, Option<Condition>), Error> {
    let what = format!("maintenance boot of {id}");
    let (server, sent) = network_boot(ctx, server, &what, "maintenance-boot-window-opened").await?;
    match sent {
        Err((reason, msg)) => Ok((
            server,
            Some(condition(sm, ConditionStatus::False, &reason, &msg)),
        )),
        Ok(None) => Ok((server, None)),
        Ok(Some(on)) => {
            ctx.events.normal(
                sm,
                reasons::REQUESTED,
                format!(
                    "{} server {} into {id}{}",
                    if on { "restarted" } else { "powered on" },
                    server.name_any(),
                    if again {
                        " again (the earlier boot fetched no script in time)"
                    } else {
                        ""
                    }
                ),
            );
            Ok((server, None))
        }
    }
}

/// Whether this maintenance booted the server (a boot record, requested or confirmed).
pub fn booted(sm: &ServerMaintenance) -> bool {
    sm.status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, crate::servermaintenance::BOOT_CONDITION))
        .is_some_and(|c| c.reason == reasons::REQUESTED || c.reason == reasons::BOOTED)
}

/// Ending the maintenance: clears the Server's reference and deletes the configuration
/// (a missing one is fine). The caller powered a booted server off first.
pub(crate) async fn tear_down(
    ctx: &Ctx,
    sm: &ServerMaintenance,
    server: &Server,
) -> Result<Server, Error> {
    let server_api: Api<Server> = Api::all(ctx.client.clone());
    let server = if server.spec.maintenance_boot_configuration_ref.is_some() {
        writes::set_maintenance_boot_ref(&server_api, server, None).await?
    } else {
        server.clone()
    };
    if let Some((ns, name)) = target(sm) {
        let owned = ctx
            .boot_configurations
            .get(&ObjectRef::new(&name).within(&ns))
            .is_some_and(|s| {
                s.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == sm.metadata.uid.as_ref())
            });
        if owned {
            let api: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), &ns);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(Error::kube(
                        format!("deleting ServerBootConfiguration {ns}/{name}"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn sbc(ready_state: &str, vmedia: bool) -> ServerBootConfiguration {
        let mut spec = json!({"serverRef": {"name": "s1"}, "image": "diag:1"});
        if vmedia {
            spec = json!({"serverRef": {"name": "s1"}, "bootMethod": "VirtualMedia", "isoURL": "http://x/y.iso"});
        }
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
            "metadata": {"name": "diag", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": spec,
            "status": {"state": ready_state, "conditions": [{
                "type": "Ready", "status": if ready_state == "Ready" { "True" } else { "False" },
                "reason": "x", "message": "no such image", "observedGeneration": 2,
                "lastTransitionTime": "2027-01-15T08:00:00Z",
            }]},
        }))
        .unwrap()
    }

    fn cond(status: ConditionStatus, reason: &str, msg: &str, at: i64) -> Condition {
        conditions::new("X", status, reason, msg, None, Time(ts(at)))
    }

    fn facts<'a>(sbc: Option<&'a ServerBootConfiguration>) -> Facts<'a> {
        Facts {
            sbc,
            owned: true,
            spec_matches: true,
            referenced: true,
            power_on: true,
            record: None,
            window: None,
            now: ts(100),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn prepares_the_configuration_before_anything_is_booted() {
        assert_eq!(next(&facts(None)), Step::Apply);
        let s = sbc("Ready", false);
        let mut f = facts(Some(&s));
        f.owned = false;
        assert_eq!(next(&f), Step::NameInUse);
        let mut f = facts(Some(&s));
        f.spec_matches = false;
        assert_eq!(next(&f), Step::Apply);
        let mut f = facts(Some(&s));
        f.referenced = false;
        assert_eq!(next(&f), Step::Reference);
        let pending = sbc("Pending", false);
        assert_eq!(next(&facts(Some(&pending))), Step::WaitReady);
        let failed = sbc("Error", false);
        assert_eq!(
            next(&facts(Some(&failed))),
            Step::Failed("no such image".into())
        );
        let iso = sbc("Ready", true);
        assert_eq!(next(&facts(Some(&iso))), Step::NotSupported);
        let mut f = facts(Some(&s));
        f.power_on = false;
        assert_eq!(next(&f), Step::Prepared);
    }

    #[test]
    fn boots_once_per_record_and_confirms_by_the_window_closing_later() {
        let s = sbc("Ready", false);
        let id = boot_id(&s);
        assert_eq!(next(&facts(Some(&s))), Step::Boot { again: false });
        // Recorded, window not opened after the record (killed in between): send.
        let rec = cond(
            ConditionStatus::False,
            reasons::REQUESTED,
            &requested_message(&id),
            90,
        );
        let stale = cond(
            ConditionStatus::False,
            api_reasons::BOOT_SCRIPT_SERVED,
            "old boot",
            10,
        );
        let mut f = facts(Some(&s));
        f.record = Some(&rec);
        f.window = Some(&stale);
        assert_eq!(
            next(&f),
            Step::Send,
            "a window served before the record is not this boot's"
        );
        // Window open after the record: wait, then boot again after the timeout.
        let open = cond(ConditionStatus::True, api_reasons::BOOT_WINDOW_OPEN, "", 90);
        f.window = Some(&open);
        assert_eq!(next(&f), Step::Await);
        f.now = ts(151);
        assert_eq!(next(&f), Step::Boot { again: true });
        // Served after the record: booted.
        let served = cond(
            ConditionStatus::False,
            api_reasons::BOOT_SCRIPT_SERVED,
            "",
            95,
        );
        f.now = ts(100);
        f.window = Some(&served);
        assert_eq!(next(&f), Step::Confirm);
        let done = cond(
            ConditionStatus::True,
            reasons::BOOTED,
            &booted_message(&id),
            96,
        );
        f.record = Some(&done);
        assert_eq!(next(&f), Step::Done);
    }

    #[test]
    fn a_new_generation_of_the_configuration_boots_again() {
        let s = sbc("Ready", false);
        let done = cond(
            ConditionStatus::True,
            reasons::BOOTED,
            &booted_message("ns/diag generation 1 (uid u1)"),
            50,
        );
        let mut f = facts(Some(&s));
        f.record = Some(&done);
        assert_eq!(next(&f), Step::Boot { again: false });
    }

    #[test]
    fn defaults_added_by_the_api_server_are_no_difference() {
        let have = json!({"serverRef": {"name": "s1"}, "image": "a", "bootMethod": "Network"});
        assert!(contains(
            &have,
            &json!({"serverRef": {"name": "s1"}, "image": "a"})
        ));
        assert!(!contains(&have, &json!({"image": "b"})));
        assert!(contains(&have, &json!({"ignitionSecretRef": null})));
    }
}
