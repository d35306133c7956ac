//! The side-effect guard: the one place through which discovery changes anything on a BMC.
//!
//! Before every server side effect (power on/off, boot override) the guard re-reads the Server
//! from the API server (not the watch cache, which may lag behind a state change discovery itself
//! just wrote) and checks that discovery is the side-effect owner of its current state
//! (`api::state::side_effect_owner`), that the server is not ignored and that the Redfish system is
//! the one the Server names. Anything else is refused and counted; nothing is sent to the BMC.
//! Because every transition out of Initial/Discovery/Error belongs to discovery itself (and the
//! reconciler handles one server at a time), the state cannot change between the check and the
//! call. BMC-level effects (a user-requested Manager reset) are checked against the BMC's
//! `ignore` annotation only: they change no server's power or boot settings.

use api::server::{Server, ServerState};
use api::state::{Controller, side_effect_owner};
use kube::api::Api;
use redfish::models::{BootSource, ResetType};
use redfish::{BootOverride, PowerOutcome};

use crate::context::{Ctx, ignored};
use crate::error::{Error, Result};

/// A side effect on a server's system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Power on (no-op when already on).
    PowerOn,
    /// Graceful power off (no-op when already off).
    PowerOff,
    /// Boot once from the network (PXE).
    PxeBootOnce,
}

impl Effect {
    /// Metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::PowerOn => "PowerOn",
            Effect::PowerOff => "PowerOff",
            Effect::PxeBootOnce => "PxeBootOnce",
        }
    }

    /// The kill suite's name of the step right after the request was sent.
    pub fn step(&self) -> &'static str {
        match self {
            Effect::PowerOn => "power-on-sent",
            Effect::PowerOff => "power-off-sent",
            Effect::PxeBootOnce => "pxe-boot-override-sent",
        }
    }
}

/// Whether discovery may cause side effects on a server in `state` (pure; the rule the guard
/// enforces). A server without a state has not been taken over by anyone yet: no effects.
pub fn may_drive(state: Option<ServerState>) -> bool {
    state.is_some_and(|s| side_effect_owner(s) == Controller::Discovery)
}

/// Re-reads `server_name` and checks it may be driven by discovery through `system_uri`.
async fn check(ctx: &Ctx, server_name: &str, system_uri: &str, effect: &'static str) -> Result<()> {
    let api: Api<Server> = Api::all(ctx.client.clone());
    let fresh = api.get(server_name).await?;
    let state = fresh.status.as_ref().and_then(|s| s.state);
    let why = if !may_drive(state) {
        Some(format!(
            "state {} belongs to {}",
            state.map(|s| s.as_str()).unwrap_or("<none>"),
            state
                .map(|s| side_effect_owner(s).as_str())
                .unwrap_or("nobody yet")
        ))
    } else if ignored(&fresh.metadata) {
        Some("the server carries metal.ironcore.dev/operation: ignore".into())
    } else if fresh.spec.system_uri.as_deref() != Some(system_uri) {
        Some(format!(
            "system {system_uri} is not the server's ({:?})",
            fresh.spec.system_uri
        ))
    } else {
        None
    };
    ctx.metrics.side_effect(effect, why.is_none());
    match why {
        None => Ok(()),
        Some(why) => {
            tracing::warn!(server = server_name, effect, %why, "side effect refused");
            Err(Error::Refused {
                effect,
                server: server_name.to_string(),
                why,
            })
        }
    }
}

/// Performs `effect` on the server's system if the guard allows it. Returns whether the BMC was
/// asked to change anything (`false` = already in the desired state).
pub async fn server_effect(
    ctx: &Ctx,
    client: &redfish::Client,
    server_name: &str,
    system_uri: &str,
    effect: Effect,
) -> Result<bool> {
    check(ctx, server_name, system_uri, effect.as_str()).await?;
    let changed = match effect {
        Effect::PowerOn => !matches!(
            client.power_on(system_uri).await?,
            PowerOutcome::AlreadyInState(_)
        ),
        Effect::PowerOff => !matches!(
            client.power_off(system_uri).await?,
            PowerOutcome::AlreadyInState(_)
        ),
        Effect::PxeBootOnce => {
            client
                .set_boot_override(system_uri, BootSource::Pxe, BootOverride::Once)
                .await?
        }
    };
    tracing::info!(
        server = server_name,
        effect = effect.as_str(),
        changed,
        "side effect issued"
    );
    ctx.step(effect.step()).await;
    Ok(changed)
}

/// Resets a BMC (Manager.Reset GracefulRestart) unless the BMC is ignored.
pub async fn reset_bmc(
    ctx: &Ctx,
    client: &redfish::Client,
    bmc: &api::bmc::BMC,
    manager: &str,
) -> Result<()> {
    let allowed = !ignored(&bmc.metadata);
    ctx.metrics.side_effect("ResetBMC", allowed);
    if !allowed {
        return Err(Error::Refused {
            effect: "ResetBMC",
            server: String::new(),
            why: "the BMC carries metal.ironcore.dev/operation: ignore".into(),
        });
    }
    client
        .reset_manager(manager, ResetType::GracefulRestart)
        .await?;
    ctx.step("bmc-reset-sent").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_discovery_states_may_be_driven() {
        assert!(!may_drive(None));
        for s in ServerState::ALL {
            let expected = matches!(
                s,
                ServerState::Initial | ServerState::Discovery | ServerState::Error
            );
            assert_eq!(may_drive(Some(*s)), expected, "{s:?}");
        }
    }
}
