//! The one guard every BMC side effect goes through.
//!
//! Provisioning may drive a server's BMC only while the server's `status.state` names it as the
//! side-effect owner (`api::state::side_effect_owner`: Available, Reserved, Released). A
//! [`Permit`] is the proof of that check, and [`GuardedBmc`], the only handle on a Redfish client
//! in this crate, takes a `&Permit` for every call. A permit cannot be built any other way, and
//! the raw client never leaves this module (a unit test checks that no other module calls a
//! mutating Redfish method). Status records written before a side effect carry the Server's
//! `resourceVersion` as precondition, so a state change between the check and the record aborts
//! the side effect.

use api::constants::{OPERATION_ANNOTATION, Operation, PARKED_ANNOTATION};
use api::server::{Server, ServerState};
use api::state::{Controller, side_effect_owner};
use redfish::models::{BootSource, ComputerSystem, IndicatorLed, VirtualMedia};
use redfish::{BootOverride, InsertMedia, MediaOutcome, PowerAction, PowerOutcome};

use crate::metrics::ProvisioningMetrics;

/// Why provisioning may not touch a server's BMC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The server has no state yet (discovery's).
    #[error("server has no state yet; its BMC belongs to discovery")]
    NoState,
    /// Another controller owns the BMC in this state.
    #[error("server is {state}; its BMC belongs to {owner}")]
    NotOwner {
        /// The state.
        state: ServerState,
        /// The owner.
        owner: Controller,
    },
    /// The server is being deleted.
    #[error("server is being deleted")]
    Deleting,
    /// The server is parked (maintenance's).
    #[error("server is parked")]
    Parked,
    /// The operation annotation says `ignore`.
    #[error("server carries the ignore operation annotation")]
    Ignored,
}

/// Proof that provisioning may cause BMC side effects on one server right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    server: String,
    state: ServerState,
    resource_version: Option<String>,
}

impl Permit {
    /// The server's name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The state the permit was granted in.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The `resourceVersion` the decision is based on (the precondition of records).
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

/// Checks whether provisioning may drive `server`'s BMC (pure).
pub fn permit(server: &Server) -> Result<Permit, Refused> {
    let state = server.state().ok_or(Refused::NoState)?;
    let owner = side_effect_owner(state);
    if owner != Controller::Provisioning {
        return Err(Refused::NotOwner { state, owner });
    }
    if server.metadata.deletion_timestamp.is_some() {
        return Err(Refused::Deleting);
    }
    let annotations = server.metadata.annotations.clone().unwrap_or_default();
    if annotations
        .get(PARKED_ANNOTATION)
        .is_some_and(|v| v == "true")
    {
        return Err(Refused::Parked);
    }
    if annotations
        .get(OPERATION_ANNOTATION)
        .is_some_and(|v| v == Operation::Ignore.as_str())
    {
        return Err(Refused::Ignored);
    }
    Ok(Permit {
        server: server.metadata.name.clone().unwrap_or_default(),
        state,
        resource_version: server.metadata.resource_version.clone(),
    })
}

/// A server's BMC, usable only with a [`Permit`] for that server.
#[derive(Clone)]
pub struct GuardedBmc {
    client: redfish::Client,
    system: String,
    server: String,
    metrics: ProvisioningMetrics,
    mutated: std::sync::Arc<std::sync::atomic::AtomicBool>,
    steps: runtime::steps::Steps,
}

impl std::fmt::Debug for GuardedBmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedBmc")
            .field("server", &self.server)
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

fn outcome_label(r: &Result<PowerOutcome, redfish::Error>) -> String {
    match r {
        Ok(PowerOutcome::Issued(_)) => "issued".into(),
        Ok(PowerOutcome::AlreadyInState(_)) => "skipped".into(),
        Err(e) => format!("{:?}", e.class()),
    }
}

impl GuardedBmc {
    /// Wraps the client of the server `permit` was granted for.
    pub(crate) fn new(
        permit: &Permit,
        client: redfish::Client,
        system: String,
        metrics: ProvisioningMetrics,
        steps: runtime::steps::Steps,
    ) -> Self {
        Self {
            client,
            system,
            server: permit.server.clone(),
            metrics,
            mutated: Default::default(),
            steps,
        }
    }

    /// Passes the kill suite's step `name` when `sent` (a request went out; skipped calls
    /// send nothing, so there is no step to stop at).
    async fn sent(&self, sent: bool, name: &'static str) {
        if sent {
            self.steps.pass(name).await;
        }
    }

    fn check(&self, permit: &Permit) {
        debug_assert_eq!(permit.server, self.server, "permit for another server");
    }

    fn mutate(&self, permit: &Permit) {
        self.check(permit);
        self.mutated
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a mutating call was made through this handle.
    pub fn mutated(&self) -> bool {
        self.mutated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The Redfish system path.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Reads the ComputerSystem (power, boot override, boot order, LED).
    pub async fn read_system(&self, permit: &Permit) -> Result<ComputerSystem, redfish::Error> {
        self.check(permit);
        self.client.system(&self.system).await
    }

    /// Power action (idempotent: On skipped when On, off actions skipped when Off).
    pub async fn power(
        &self,
        permit: &Permit,
        action: PowerAction,
    ) -> Result<PowerOutcome, redfish::Error> {
        self.mutate(permit);
        let r = self.client.power(&self.system, action).await;
        let op = match action {
            PowerAction::On => "power_on",
            PowerAction::GracefulOff => "graceful_off",
            PowerAction::ForceOff => "force_off",
            PowerAction::GracefulRestart | PowerAction::ForceRestart | PowerAction::PowerCycle => {
                "reset"
            }
        };
        self.metrics.power_op(op, &outcome_label(&r));
        let step = match action {
            PowerAction::On => "power-on-sent",
            PowerAction::GracefulOff | PowerAction::ForceOff => "power-off-sent",
            _ => "reset-sent",
        };
        self.sent(matches!(r, Ok(PowerOutcome::Issued(_))), step)
            .await;
        r
    }

    /// Sets a one-time boot override (skipped when exactly this override is set).
    pub async fn set_boot_override_once(
        &self,
        permit: &Permit,
        target: BootSource,
    ) -> Result<bool, redfish::Error> {
        self.mutate(permit);
        let r = self
            .client
            .set_boot_override(&self.system, target, BootOverride::Once)
            .await;
        self.metrics.power_op(
            "boot_override",
            &match &r {
                Ok(true) => "issued".into(),
                Ok(false) => "skipped".into(),
                Err(e) => format!("{:?}", e.class()),
            },
        );
        self.sent(matches!(r, Ok(true)), "boot-override-sent").await;
        r
    }

    /// Sets the persistent boot order (skipped when equal).
    pub async fn set_boot_order(
        &self,
        permit: &Permit,
        order: &[String],
    ) -> Result<bool, redfish::Error> {
        self.mutate(permit);
        let r = self.client.set_boot_order(&self.system, order).await;
        self.metrics.power_op(
            "boot_order",
            &match &r {
                Ok(true) => "issued".into(),
                Ok(false) => "skipped".into(),
                Err(e) => format!("{:?}", e.class()),
            },
        );
        self.sent(matches!(r, Ok(true)), "boot-order-sent").await;
        r
    }

    /// Sets the indicator LED (skipped when equal).
    pub async fn set_indicator_led(
        &self,
        permit: &Permit,
        led: IndicatorLed,
    ) -> Result<bool, redfish::Error> {
        self.mutate(permit);
        let r = self.client.set_indicator_led(&self.system, led).await;
        self.metrics.power_op(
            "indicator_led",
            &match &r {
                Ok(true) => "issued".into(),
                Ok(false) => "skipped".into(),
                Err(e) => format!("{:?}", e.class()),
            },
        );
        self.sent(matches!(r, Ok(true)), "indicator-led-sent").await;
        r
    }

    /// The virtual media slots (the redfish crate finds them under the system or manager).
    pub async fn virtual_media(
        &self,
        permit: &Permit,
    ) -> Result<Vec<VirtualMedia>, redfish::Error> {
        self.check(permit);
        self.client.virtual_media(&self.system).await
    }

    /// Inserts `iso` into the virtual CD (skipped when already inserted).
    pub async fn insert_media(
        &self,
        permit: &Permit,
        iso: &str,
    ) -> Result<MediaOutcome, redfish::Error> {
        self.mutate(permit);
        let r = self
            .client
            .insert_media(
                &self.system,
                &InsertMedia {
                    image: iso.to_string(),
                    write_protected: Some(true),
                    ..Default::default()
                },
            )
            .await;
        self.metrics.power_op("insert_media", &media_label(&r));
        self.sent(
            matches!(r, Ok(MediaOutcome::Inserted { .. })),
            "media-inserted",
        )
        .await;
        r
    }

    /// Ejects the virtual CD (skipped when empty).
    pub async fn eject_media(&self, permit: &Permit) -> Result<MediaOutcome, redfish::Error> {
        self.mutate(permit);
        let r = self.client.eject_media(&self.system).await;
        self.metrics.power_op("eject_media", &media_label(&r));
        self.sent(matches!(r, Ok(MediaOutcome::Ejected)), "media-ejected")
            .await;
        r
    }
}

fn media_label(r: &Result<MediaOutcome, redfish::Error>) -> String {
    match r {
        Ok(MediaOutcome::Inserted { .. }) | Ok(MediaOutcome::Ejected) => "issued".into(),
        Ok(_) => "skipped".into(),
        Err(e) => format!("{:?}", e.class()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(state: Option<&str>, annotations: &[(&str, &str)], deleting: bool) -> Server {
        let mut v = serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": { "name": "s1", "resourceVersion": "42", "annotations": {} },
            "spec": { "systemUUID": "u" },
            "status": {}
        });
        if let Some(s) = state {
            v["status"]["state"] = serde_json::json!(s);
        }
        for (k, val) in annotations {
            v["metadata"]["annotations"][k] = serde_json::json!(val);
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
            v["metadata"]["finalizers"] = serde_json::json!(["x"]);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn permits_only_in_provisioning_states() {
        for s in ["Available", "Reserved", "Released"] {
            let p = permit(&server(Some(s), &[], false)).unwrap();
            assert_eq!(p.server(), "s1");
            assert_eq!(p.resource_version(), Some("42"));
        }
        for s in ["Initial", "Discovery", "Error", "Maintenance", "Parked"] {
            let e = permit(&server(Some(s), &[], false)).unwrap_err();
            assert!(matches!(e, Refused::NotOwner { .. }), "{s}: {e}");
        }
        assert_eq!(permit(&server(None, &[], false)), Err(Refused::NoState));
    }

    #[test]
    fn refuses_deleting_parked_ignored() {
        assert_eq!(
            permit(&server(Some("Reserved"), &[], true)),
            Err(Refused::Deleting)
        );
        assert_eq!(
            permit(&server(
                Some("Available"),
                &[(PARKED_ANNOTATION, "true")],
                false
            )),
            Err(Refused::Parked)
        );
        assert_eq!(
            permit(&server(
                Some("Reserved"),
                &[(OPERATION_ANNOTATION, "ignore")],
                false
            )),
            Err(Refused::Ignored)
        );
        // A reset annotation does not block the permit.
        assert!(
            permit(&server(
                Some("Reserved"),
                &[(OPERATION_ANNOTATION, "power-cycle-server")],
                false
            ))
            .is_ok()
        );
    }

    /// No module but this one calls a mutating Redfish method or holds a raw client handle.
    #[test]
    fn only_the_guard_touches_the_bmc() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let forbidden = [
            ".power(",
            ".power_on(",
            ".power_off(",
            ".force_off(",
            ".restart(",
            ".power_cycle(",
            ".set_boot_override(",
            ".set_boot_order(",
            ".set_indicator_led(",
            ".insert_media(",
            ".eject_media(",
            ".set_bios_attributes(",
            ".reset_manager(",
        ];
        let mut offenders = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name == "guard.rs" || !name.ends_with(".rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                // Calls through the guard pass a permit as the first argument.
                if forbidden.iter().any(|f| line.contains(f)) && !line.contains("permit") {
                    offenders.push(format!("{name}:{}: {}", i + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "BMC side effects outside the guard: {offenders:#?}"
        );
    }
}
