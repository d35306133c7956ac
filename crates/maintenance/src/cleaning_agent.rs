//! The in-band part of a cleaning round: the server network-boots the agent (`metal-probe
//! --wipe <mode>`), which wipes every disk and reports to discovery's registry.
//!
//! Coordination goes through objects, as for a maintenance boot: maintenance creates a
//! cleaning Secret (per-round token and the agent's ignition, labelled
//! [`CLEANING_LABEL`] with the system UUID, which is how the registry authenticates the
//! report) and a ServerBootConfiguration of the agent OS, both named `<server>-cleaning` in
//! maintenance's namespace (discovery's registry namespace) and owned by the Server. It points
//! `spec.maintenanceBootConfigurationRef` at the configuration; provisioning resolves it and,
//! while the server is in `Cleaning`, serves it. The boot is recorded in the Server's
//! `CleaningAgentBoot` condition before the override and power-on are sent, confirmed when
//! the boot server hands out the script, and sent again when no script is fetched within
//! `--maintenance-boot-timeout` (a wipe is idempotent). The registry stores the report as
//! `<server>-cleaning-report`, owned by the Secret, so a report never outlives its round.
//!
//! The round's objects exist only while the round runs: they are created in `Cleaning` and
//! deleted ([`tear_down`]) before the server leaves it, whichever way it ends.

use crate::mboot::{self, Facts, Step};
use crate::{Ctx, Error, now, writes};
use api::conditions::{self, ConditionStatus};
use api::constants::agent::{
    CLEANING_LABEL, CLEANING_REPORT_KEY, IGNITION_KEY, SERVER_ANNOTATION, SYSTEM_UUID_LABEL,
    TOKEN_KEY, cleaning_name, cleaning_report_name,
};
use api::constants::condition_types;
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, PostParams};
use metal_probe::ignition::{AgentBoot, AgentImage};
use metal_probe::{CleaningPayload, WipeMode};
use serde_json::json;
use std::time::Duration;

/// How maintenance boots the cleaning agent (`--cleaning-*` flags).
#[derive(Clone, PartialEq, Eq)]
pub struct CleaningAgent {
    /// Discovery's registry, where the agent reports (`--cleaning-registry-url`).
    pub registry_url: String,
    /// CA bundle (PEM) of an `https://` registry, written into the agent's ignition.
    pub registry_ca: Option<String>,
    /// The agent OS.
    pub image: AgentImage,
    /// Time from the agent's boot to its report before the round fails (a full overwrite of
    /// large disks takes hours).
    pub timeout: Duration,
}

impl std::fmt::Debug for CleaningAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleaningAgent")
            .field("registry_url", &self.registry_url)
            .field("registry_ca", &self.registry_ca.is_some())
            .field("image", &self.image)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Reasons of the `CleaningAgentBoot` condition (the maintenance boot's, shared).
pub use crate::mboot::reasons;

/// Where the in-band phase stands after one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not done yet; look again after this long.
    Wait(Duration),
    /// The agent's report proves every disk it found wiped (their names).
    Wiped(Vec<String>),
    /// The phase cannot succeed (why).
    Failed(String),
}

fn boot_condition(server: &Server, status: ConditionStatus, reason: &str, msg: &str) -> Condition {
    conditions::new(
        condition_types::CLEANING_AGENT_BOOT,
        status,
        reason,
        msg,
        server.metadata.generation,
        now(),
    )
}

fn record_of(server: &Server) -> Option<&Condition> {
    server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::CLEANING_AGENT_BOOT))
}

fn owned_by(meta: &kube::api::ObjectMeta, server: &Server) -> bool {
    meta.owner_references.as_ref().is_some_and(|o| {
        o.iter()
            .any(|r| r.controller == Some(true) && Some(&r.uid) == server.metadata.uid.as_ref())
    })
}

fn owner(server: &Server) -> serde_json::Value {
    json!({
        "apiVersion": api::API_VERSION, "kind": "Server", "name": server.name_any(),
        "uid": server.metadata.uid, "controller": true, "blockOwnerDeletion": true,
    })
}

/// Decides the agent's verdict from the round's stored report, if there is one (pure).
pub fn verdict(report: &CleaningPayload, mode: WipeMode) -> Outcome {
    match report.verdict(mode) {
        Ok(()) => Outcome::Wiped(report.disks.iter().map(|d| d.name.clone()).collect()),
        Err(m) => Outcome::Failed(m),
    }
}

/// One pass of the in-band phase for `server` in `mode`; returns the Server after this pass's
/// writes.
pub(crate) async fn run(
    ctx: &Ctx,
    server: &Server,
    mode: WipeMode,
) -> Result<(Server, Outcome), Error> {
    let Some(agent) = ctx.config.cleaning_agent.as_ref() else {
        return Ok((
            server.clone(),
            Outcome::Failed(format!(
                "{} cleaning needs the in-band agent, and maintenance runs without --cleaning-registry-url (the discovery registry the agent reports to)",
                mode.as_str()
            )),
        ));
    };
    let ns = ctx.config.namespace.as_str();
    let name = cleaning_name(&server.name_any());
    let secret = match ensure_secret(ctx, server, agent, mode).await? {
        Ok(s) => s,
        Err(m) => return Ok((server.clone(), Outcome::Failed(m))),
    };
    if let Some(report) = report(ctx, server, &secret).await? {
        return Ok((server.clone(), verdict(&report, mode)));
    }
    let uuid = server.spec.system_uuid.to_ascii_lowercase();
    let spec = agent.image.boot_spec(
        &server.name_any(),
        &name,
        &metal_probe::ignition::cmdline(&agent.registry_url, &uuid),
    );
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), ns);
    let sbc = sbcs
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube(format!("reading ServerBootConfiguration {ns}/{name}"), e))?;
    let record = record_of(server).cloned();
    let window = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::BOOT_WINDOW))
        .cloned();
    let facts = Facts {
        sbc: sbc.as_ref(),
        owned: sbc.as_ref().is_some_and(|s| owned_by(&s.metadata, server)),
        spec_matches: sbc.as_ref().is_some_and(|s| {
            mboot::contains(&serde_json::to_value(&s.spec).unwrap_or_default(), &spec)
        }),
        referenced: server
            .spec
            .maintenance_boot_configuration_ref
            .as_ref()
            .is_some_and(|r| r.namespace == ns && r.name == name),
        power_on: true,
        record: record.as_ref(),
        window: window.as_ref(),
        now: Timestamp::now(),
        timeout: ctx.config.maintenance_boot_timeout,
    };
    let server_api: Api<Server> = Api::all(ctx.client.clone());
    let step = mboot::next(&facts);
    tracing::debug!(server = %server.name_any(), ?step, "cleaning agent");
    let wait = |d: u64| Outcome::Wait(Duration::from_secs(d));
    match step {
        Step::Apply => {
            writes::apply(
                &sbcs,
                &name,
                json!({
                    "metadata": {
                        "namespace": ns,
                        "labels": { CLEANING_LABEL: "true" },
                        "annotations": { SERVER_ANNOTATION: server.name_any() },
                        "ownerReferences": [owner(server)],
                    },
                    "spec": spec,
                }),
            )
            .await?;
            Ok((server.clone(), wait(2)))
        }
        Step::NameInUse => Ok((
            server.clone(),
            Outcome::Failed(format!(
                "ServerBootConfiguration {ns}/{name} exists and is not this server's cleaning configuration"
            )),
        )),
        Step::Reference => {
            let s =
                writes::set_maintenance_boot_ref(&server_api, server, Some((ns, &name))).await?;
            Ok((s, Outcome::Wait(Duration::from_millis(200))))
        }
        Step::WaitReady => Ok((server.clone(), wait(2))),
        Step::Failed(m) => Ok((
            server.clone(),
            Outcome::Failed(format!(
                "the agent's boot configuration {ns}/{name} cannot be served: {m}"
            )),
        )),
        // Never virtual media, always powered on: not reached.
        Step::NotSupported | Step::Prepared => Ok((server.clone(), wait(30))),
        Step::Boot { .. } | Step::Send => {
            let sbc = sbc.as_ref().expect("a boot implies a configuration");
            let id = mboot::boot_id(sbc);
            let mut s = server.clone();
            if matches!(step, Step::Boot { .. }) {
                // The record comes first: a kill after it waits for the boot instead of
                // sending a second one.
                let c = boot_condition(
                    &s,
                    ConditionStatus::False,
                    reasons::REQUESTED,
                    &format!("boot of {id} requested"),
                );
                s = writes::apply_server_conditions(&server_api, &s, vec![c]).await?;
                ctx.step("cleaning-agent-boot-recorded").await;
            }
            let what = format!("cleaning agent boot of {id}");
            let (s, sent) =
                mboot::network_boot(ctx, &s, &what, "cleaning-agent-window-opened").await?;
            match sent {
                Err((reason, msg)) => {
                    // Not a cleaning failure: the next pass records and sends a new boot.
                    let c = boot_condition(&s, ConditionStatus::False, &reason, &msg);
                    let s = writes::apply_server_conditions(&server_api, &s, vec![c]).await?;
                    Ok((s, wait(10)))
                }
                Ok(on) => {
                    ctx.events.normal(
                        &s,
                        "CleaningAgentBooted",
                        format!(
                            "server {}: network boot into the {} wipe agent sent{}",
                            s.name_any(),
                            mode.as_str(),
                            if on == Some(true) { " (restarted)" } else { "" }
                        ),
                    );
                    Ok((s, wait(2)))
                }
            }
        }
        Step::Await => Ok((server.clone(), wait(2))),
        Step::Confirm => {
            let sbc = sbc.as_ref().expect("Confirm implies a configuration");
            let c = boot_condition(
                server,
                ConditionStatus::True,
                reasons::BOOTED,
                &format!(
                    "the server fetched the boot script of {}",
                    mboot::boot_id(sbc)
                ),
            );
            let s = writes::apply_server_conditions(&server_api, server, vec![c]).await?;
            Ok((s, wait(2)))
        }
        Step::Done => {
            let booted = record.as_ref().map(|c| c.last_transition_time.0);
            let age = booted
                .and_then(|t| Timestamp::now().duration_since(t).try_into().ok())
                .unwrap_or(Duration::ZERO);
            if age > agent.timeout {
                Ok((
                    server.clone(),
                    Outcome::Failed(format!(
                        "the agent booted {}s ago and reported no wipe within --cleaning-agent-timeout ({}s)",
                        age.as_secs(),
                        agent.timeout.as_secs()
                    )),
                ))
            } else {
                Ok((server.clone(), wait(5)))
            }
        }
    }
}

/// The round's Secret: created with a fresh token and the agent's ignition, or the existing
/// one (a restarted reconcile keeps the token the booted agent has). `Err` when the name
/// belongs to another object.
async fn ensure_secret(
    ctx: &Ctx,
    server: &Server,
    agent: &CleaningAgent,
    mode: WipeMode,
) -> Result<Result<Secret, String>, Error> {
    let ns = ctx.config.namespace.as_str();
    let name = cleaning_name(&server.name_any());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let read = |e| Error::kube(format!("reading Secret {ns}/{name}"), e);
    if let Some(s) = api.get_opt(&name).await.map_err(read)? {
        return Ok(if owned_by(&s.metadata, server) {
            Ok(s)
        } else {
            Err(format!(
                "Secret {ns}/{name} exists and is not this server's cleaning Secret"
            ))
        });
    }
    let uuid = server.spec.system_uuid.to_ascii_lowercase();
    let token = metal_probe::ignition::new_token();
    let ignition = metal_probe::ignition::ignition(&AgentBoot {
        registry_url: &agent.registry_url,
        system_uuid: &uuid,
        token: &token,
        registry_ca: agent.registry_ca.as_deref(),
        wipe: Some(mode),
    });
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": { CLEANING_LABEL: "true", SYSTEM_UUID_LABEL: uuid },
            "annotations": { SERVER_ANNOTATION: server.name_any() },
            "ownerReferences": [owner(server)],
        },
        "type": "Opaque",
        "stringData": { TOKEN_KEY: token, IGNITION_KEY: ignition },
    }))
    .map_err(|e| Error::InvalidSpec(format!("building Secret {ns}/{name}: {e}")))?;
    let params = PostParams {
        field_manager: Some(writes::FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &secret).await {
        Ok(s) => Ok(Ok(s)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Ok(api.get(&name).await.map_err(read)?)),
        Err(e) => Err(Error::kube(format!("creating Secret {ns}/{name}"), e)),
    }
}

/// The round's report: the ConfigMap must be owned by the round's Secret.
async fn report(
    ctx: &Ctx,
    server: &Server,
    secret: &Secret,
) -> Result<Option<CleaningPayload>, Error> {
    let ns = ctx.config.namespace.as_str();
    let name = cleaning_report_name(&server.name_any());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(cm) = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube(format!("reading ConfigMap {ns}/{name}"), e))?
    else {
        return Ok(None);
    };
    Ok(
        api::constants::agent::round_report(&cm, secret, CLEANING_REPORT_KEY)
            .and_then(|j| serde_json::from_str(j).ok()),
    )
}

/// Ends the in-band phase, however the round ended: a server the agent was booted on is
/// powered off (the agent has nothing to save), the reference is cleared and the Secret and
/// configuration are deleted (the report goes with the Secret). Idempotent; a no-op for a
/// round without the agent. `None` while the power-off is under way (the server is handed
/// on only once it is off).
pub(crate) async fn tear_down(ctx: &Ctx, server: &Server) -> Result<Option<Server>, Error> {
    let ns = ctx.config.namespace.as_str();
    let name = cleaning_name(&server.name_any());
    let server_api: Api<Server> = Api::all(ctx.client.clone());
    let mut server = server.clone();
    let ours = server
        .spec
        .maintenance_boot_configuration_ref
        .as_ref()
        .is_some_and(|r| r.namespace == ns && r.name == name);
    if ours {
        if record_of(&server).is_some() {
            let bmc_error = |e: String| Error::Bmc {
                action: format!("powering server {} off after cleaning", server.name_any()),
                message: e,
            };
            let (bmc, system) = ctx
                .bmcs
                .for_server(&server)
                .await
                .map_err(|e| bmc_error(e.to_string()))?;
            let sys: redfish::models::ComputerSystem = bmc
                .get(&system)
                .await
                .map_err(|e| bmc_error(e.to_string()))?;
            match sys.power_state {
                Some(redfish::models::PowerState::Off) => {}
                Some(redfish::models::PowerState::PoweringOff) => return Ok(None),
                _ => {
                    ctx.send_power_off(&server, &bmc, &system, true, "end of the cleaning agent")
                        .await;
                    return Ok(None);
                }
            }
        }
        server = writes::set_maintenance_boot_ref(&server_api, &server, None).await?;
    }
    let sbcs: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for (kind, result) in [
        (
            "ServerBootConfiguration",
            sbcs.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        ),
        (
            "Secret",
            secrets
                .delete(&name, &DeleteParams::background())
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("deleting {kind} {ns}/{name}"), e)),
        }
    }
    Ok(Some(server))
}
