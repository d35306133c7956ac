//! Release decisions (pure): what to do next for a deleting claim, and for servers whose claim is
//! gone or whose `serverClaimRef` an operator cleared. See `docs/controllers.md`, "Release
//! protocol".
//!
//! The invariant: a server that was handed to provisioning (state `Reserved`) goes back to
//! `Available` or to `Released` only after provisioning confirmed power off — on the deleting
//! claim (`PoweredOff=True`), or, when the claim object is already gone, on the Server
//! (`WaitingForPowerOff=False/PowerOffConfirmed` at the Server's current generation) — and the
//! Server's `status.powerState` reads `Off`.

use crate::matching::ClaimKey;
use api::conditions::{self, ConditionStatus};
use api::constants::{condition_types, reasons};
use api::server::{Server, ServerPowerState, ServerReclaimPolicy, ServerState};
use api::serverclaim::ServerClaim;
use kube::ResourceExt as _;

/// The next step of releasing a deleting claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRelease {
    /// No server holds the claim (any more): delete its boot configuration, drop the finalizer.
    Finish,
    /// The server is bound but was never handed to provisioning (still `Available`): clear its
    /// `serverClaimRef`; no power-off is needed.
    ClearClaimRef,
    /// Waiting for provisioning to confirm power off; the message says what is missing.
    WaitForPowerOff(String),
    /// `Retain`: move the server `Reserved` → `Released`, keeping its `serverClaimRef`.
    MarkReleased,
    /// `Recycle`: clear the server's `serverClaimRef` (then [`ClaimRelease::RecycleToAvailable`]).
    RecycleClearRef,
    /// `Recycle`, reference already cleared: move the server `Reserved` → `Available`.
    RecycleToAvailable,
    /// The server is in a state another controller owns (e.g. `Maintenance`): wait for it.
    WaitForState(String),
}

/// Whether provisioning confirmed power off for the deleting `claim` and `server` agrees.
pub fn claim_power_off_confirmed(claim: &ServerClaim, server: &Server) -> Result<(), String> {
    let conds = claim
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    match conditions::get(conds, condition_types::POWERED_OFF) {
        None => {
            return Err(format!(
                "waiting for provisioning to power off server {} (no PoweredOff condition yet)",
                server.name_any()
            ));
        }
        Some(c) if c.status != ConditionStatus::True.as_str() => {
            return Err(format!(
                "waiting for provisioning to power off server {} (PoweredOff={}, {}: {})",
                server.name_any(),
                c.status,
                c.reason,
                c.message
            ));
        }
        Some(_) => {}
    }
    power_state_off(server)
}

fn power_state_off(server: &Server) -> Result<(), String> {
    let power = server.status.as_ref().and_then(|s| s.power_state);
    if power == Some(ServerPowerState::Off) {
        Ok(())
    } else {
        Err(format!(
            "power off confirmed, but server {} reports powerState {}",
            server.name_any(),
            power.map_or("(none)".to_string(), |p| p.to_string())
        ))
    }
}

/// Decides the next release step for the deleting `claim`. `server` is the server bound to it:
/// the one whose `serverClaimRef` names the claim, or else the server named by the claim's
/// `spec.serverRef` (to resume a `Recycle` that already cleared the reference).
pub fn claim_release(claim: &ServerClaim, server: Option<&Server>) -> ClaimRelease {
    let Some(server) = server else {
        return ClaimRelease::Finish;
    };
    let key = ClaimKey::of(claim);
    let state = server.state();
    if !key.is_bound_to(server) {
        // Resuming a Recycle whose reference was already cleared: only the claim's own server,
        // still Reserved without a reference, after provisioning confirmed power off for this
        // claim (which it does only for the claim it powered off). Anything else is not ours.
        let ours = claim.spec.server_ref.as_ref().map(|r| r.name.as_str())
            == Some(server.name_any().as_str())
            && server.spec.server_claim_ref.is_none()
            && state == Some(ServerState::Reserved)
            && claim_power_off_confirmed(claim, server).is_ok();
        return if ours {
            ClaimRelease::RecycleToAvailable
        } else {
            ClaimRelease::Finish
        };
    }
    match state {
        None | Some(ServerState::Available) => ClaimRelease::ClearClaimRef,
        Some(ServerState::Reserved) => match claim_power_off_confirmed(claim, server) {
            Err(m) => ClaimRelease::WaitForPowerOff(m),
            Ok(()) => match server.reclaim_policy() {
                ServerReclaimPolicy::Retain => ClaimRelease::MarkReleased,
                ServerReclaimPolicy::Recycle => ClaimRelease::RecycleClearRef,
            },
        },
        Some(ServerState::Released) => ClaimRelease::Finish,
        Some(other) => ClaimRelease::WaitForState(format!(
            "server {} is in state {other}; waiting for it to return before releasing",
            server.name_any()
        )),
    }
}

/// Whether the claim named by a Server's `serverClaimRef` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimPresence {
    /// The server has no `serverClaimRef`.
    NoRef,
    /// The claim exists (it may be deleting; the claim path releases it then).
    Present,
    /// The claim does not exist.
    Gone,
    /// The claim lives outside the namespaces this instance watches: not ours to judge.
    OutOfScope,
    /// No `serverClaimRef`, but a deleting claim whose `spec.serverRef` names the server is
    /// still releasing it (a `Recycle` between clearing the reference and `Available`): the
    /// claim path finishes that release, so the server path does not race it.
    Releasing,
}

/// A server-level lifecycle step (no claim to drive it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Nothing to do.
    Nothing,
    /// No state yet but a `serverClaimRef` to an existing claim: adopt as `Reserved`.
    Adopt,
    /// `Released` and an operator cleared `serverClaimRef`: back to `Available`.
    ReleasedToAvailable,
    /// `Available` with a `serverClaimRef` to a claim that no longer exists (its binding never
    /// completed): clear the reference.
    ClearOrphanRef,
    /// `Reserved`, its claim gone (finalizer removed by hand), power off confirmed, `Retain`:
    /// move to `Released`.
    OrphanRetain,
    /// `Reserved`, its claim gone or the reference cleared, power off confirmed: clear the
    /// reference (if any) and move to `Available`.
    OrphanRecycle,
    /// `Reserved` without a live claim, but power off not confirmed on the Server yet.
    WaitForPowerOff(String),
}

/// Whether provisioning confirmed power off on the Server itself (used when no claim exists):
/// `WaitingForPowerOff=False/PowerOffConfirmed` observed at the current generation, and
/// `powerState: Off`.
pub fn server_power_off_confirmed(server: &Server) -> Result<(), String> {
    let conds = server
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let c = conditions::get(conds, condition_types::WAITING_FOR_POWER_OFF);
    let confirmed = c.is_some_and(|c| {
        c.status == ConditionStatus::False.as_str()
            && c.reason == reasons::POWER_OFF_CONFIRMED
            && c.observed_generation.is_some()
            && c.observed_generation == server.metadata.generation
    });
    if !confirmed {
        return Err(format!(
            "server {} has no claim; waiting for WaitingForPowerOff=False/PowerOffConfirmed at generation {}",
            server.name_any(),
            server.metadata.generation.unwrap_or_default()
        ));
    }
    power_state_off(server)
}

/// Decides the server-level lifecycle step for `server` given whether its claim exists.
pub fn server_step(server: &Server, claim: ClaimPresence) -> ServerStep {
    let has_ref = server.spec.server_claim_ref.is_some();
    match (server.state(), has_ref, claim) {
        (None, true, ClaimPresence::Present) => ServerStep::Adopt,
        (Some(ServerState::Released), false, _) => ServerStep::ReleasedToAvailable,
        (Some(ServerState::Available), true, ClaimPresence::Gone) => ServerStep::ClearOrphanRef,
        (Some(ServerState::Reserved), false, ClaimPresence::Releasing) => ServerStep::Nothing,
        (Some(ServerState::Reserved), true, ClaimPresence::Gone)
        | (Some(ServerState::Reserved), false, _) => match server_power_off_confirmed(server) {
            Err(m) => ServerStep::WaitForPowerOff(m),
            Ok(()) if has_ref && server.reclaim_policy() == ServerReclaimPolicy::Retain => {
                ServerStep::OrphanRetain
            }
            Ok(()) => ServerStep::OrphanRecycle,
        },
        _ => ServerStep::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::common::{ImmutableObjectReference, Power};
    use api::server::{ServerSpec, ServerStatus};
    use api::serverclaim::{Phase, ServerClaimSpec, ServerClaimStatus};
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    fn cond(type_: &str, status: &str, reason: &str, gen_: Option<i64>) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            observed_generation: gen_,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    fn server(state: ServerState, bound: bool) -> Server {
        let mut s = Server::new(
            "s",
            ServerSpec {
                system_uuid: "u".into(),
                ..Default::default()
            },
        );
        if bound {
            s.spec.server_claim_ref = Some(ImmutableObjectReference {
                namespace: "ns".into(),
                name: "c".into(),
            });
        }
        s.metadata.generation = Some(3);
        s.status = Some(ServerStatus {
            state: Some(state),
            power_state: Some(ServerPowerState::Off),
            ..Default::default()
        });
        s
    }

    fn claim(powered_off: Option<&str>) -> ServerClaim {
        let mut c = ServerClaim::new(
            "c",
            ServerClaimSpec {
                power: Power::On,
                server_ref: Some(LocalObjectReference { name: "s".into() }),
                server_selector: None,
                ignition_secret_ref: None,
                user_data_ref: None,
                image: "i".into(),
                tolerations: vec![],
            },
        );
        c.metadata.namespace = Some("ns".into());
        c.status = Some(ServerClaimStatus {
            phase: Some(Phase::Bound),
            conditions: powered_off
                .map(|s| vec![cond("PoweredOff", s, "PowerOffConfirmed", Some(1))])
                .unwrap_or_default(),
        });
        c
    }

    #[test]
    fn nothing_bound_finishes() {
        assert_eq!(claim_release(&claim(None), None), ClaimRelease::Finish);
        // A server bound to another claim is not ours.
        let mut s = server(ServerState::Reserved, false);
        s.spec.server_claim_ref = Some(ImmutableObjectReference {
            namespace: "ns".into(),
            name: "other".into(),
        });
        assert_eq!(claim_release(&claim(None), Some(&s)), ClaimRelease::Finish);
    }

    #[test]
    fn available_server_is_cleared_without_power_off() {
        assert_eq!(
            claim_release(&claim(None), Some(&server(ServerState::Available, true))),
            ClaimRelease::ClearClaimRef
        );
    }

    #[test]
    fn reserved_server_waits_for_powered_off_true() {
        let s = server(ServerState::Reserved, true);
        assert!(matches!(
            claim_release(&claim(None), Some(&s)),
            ClaimRelease::WaitForPowerOff(m) if m.contains("no PoweredOff condition")
        ));
        assert!(matches!(
            claim_release(&claim(Some("False")), Some(&s)),
            ClaimRelease::WaitForPowerOff(m) if m.contains("PoweredOff=False")
        ));
        assert!(matches!(
            claim_release(&claim(Some("Unknown")), Some(&s)),
            ClaimRelease::WaitForPowerOff(_)
        ));
        // Confirmed, but the server still reports On: wait.
        let mut on = s.clone();
        on.status.as_mut().unwrap().power_state = Some(ServerPowerState::On);
        assert!(matches!(
            claim_release(&claim(Some("True")), Some(&on)),
            ClaimRelease::WaitForPowerOff(m) if m.contains("powerState On")
        ));
        assert_eq!(
            claim_release(&claim(Some("True")), Some(&s)),
            ClaimRelease::RecycleClearRef
        );
        let mut retain = s.clone();
        retain.spec.reclaim_policy = Some(ServerReclaimPolicy::Retain);
        assert_eq!(
            claim_release(&claim(Some("True")), Some(&retain)),
            ClaimRelease::MarkReleased
        );
    }

    #[test]
    fn recycle_resumes_after_the_reference_was_cleared() {
        let s = server(ServerState::Reserved, false);
        assert_eq!(
            claim_release(&claim(Some("True")), Some(&s)),
            ClaimRelease::RecycleToAvailable
        );
        // Without confirmed power off for this claim the server is not ours (e.g. a named claim
        // that never got it, while another claim's release is half-way).
        assert_eq!(claim_release(&claim(None), Some(&s)), ClaimRelease::Finish);
        assert_eq!(
            claim_release(&claim(Some("False")), Some(&s)),
            ClaimRelease::Finish
        );
        // Once Available, we are done.
        assert_eq!(
            claim_release(
                &claim(Some("True")),
                Some(&server(ServerState::Available, false))
            ),
            ClaimRelease::Finish
        );
    }

    #[test]
    fn released_finishes_and_foreign_states_wait() {
        assert_eq!(
            claim_release(&claim(None), Some(&server(ServerState::Released, true))),
            ClaimRelease::Finish
        );
        assert!(matches!(
            claim_release(&claim(Some("True")), Some(&server(ServerState::Maintenance, true))),
            ClaimRelease::WaitForState(m) if m.contains("Maintenance")
        ));
    }

    #[test]
    fn server_steps() {
        use ClaimPresence::*;
        let mut fresh = server(ServerState::Available, true);
        fresh.status.as_mut().unwrap().state = None;
        assert_eq!(server_step(&fresh, Present), ServerStep::Adopt);
        assert_eq!(server_step(&fresh, Gone), ServerStep::Nothing);
        assert_eq!(
            server_step(&server(ServerState::Released, false), NoRef),
            ServerStep::ReleasedToAvailable
        );
        assert_eq!(
            server_step(&server(ServerState::Released, true), Gone),
            ServerStep::Nothing,
            "Released keeps its reference until an operator clears it"
        );
        assert_eq!(
            server_step(&server(ServerState::Available, true), Gone),
            ServerStep::ClearOrphanRef
        );
        assert_eq!(
            server_step(&server(ServerState::Available, true), Present),
            ServerStep::Nothing
        );
        assert_eq!(
            server_step(&server(ServerState::Available, true), OutOfScope),
            ServerStep::Nothing
        );
        assert_eq!(
            server_step(&server(ServerState::Reserved, true), Present),
            ServerStep::Nothing
        );
    }

    #[test]
    fn orphaned_reserved_server_needs_confirmation_at_current_generation() {
        let mut s = server(ServerState::Reserved, true);
        assert!(matches!(
            server_step(&s, ClaimPresence::Gone),
            ServerStep::WaitForPowerOff(_)
        ));
        s.status.as_mut().unwrap().conditions = vec![cond(
            "WaitingForPowerOff",
            "False",
            "PowerOffConfirmed",
            Some(2),
        )];
        assert!(
            matches!(
                server_step(&s, ClaimPresence::Gone),
                ServerStep::WaitForPowerOff(_)
            ),
            "stale generation"
        );
        s.status.as_mut().unwrap().conditions = vec![cond(
            "WaitingForPowerOff",
            "True",
            "WaitingForPowerOff",
            Some(3),
        )];
        assert!(matches!(
            server_step(&s, ClaimPresence::Gone),
            ServerStep::WaitForPowerOff(_)
        ));
        s.status.as_mut().unwrap().conditions = vec![cond(
            "WaitingForPowerOff",
            "False",
            "PowerOffConfirmed",
            Some(3),
        )];
        assert_eq!(
            server_step(&s, ClaimPresence::Gone),
            ServerStep::OrphanRecycle
        );
        s.spec.reclaim_policy = Some(ServerReclaimPolicy::Retain);
        assert_eq!(
            server_step(&s, ClaimPresence::Gone),
            ServerStep::OrphanRetain
        );
        // Reference cleared by an operator: always Available once confirmed.
        s.spec.server_claim_ref = None;
        assert_eq!(
            server_step(&s, ClaimPresence::NoRef),
            ServerStep::OrphanRecycle
        );
        // ... unless by the Recycle of a claim still deleting: that claim's path finishes it.
        assert_eq!(
            server_step(&s, ClaimPresence::Releasing),
            ServerStep::Nothing
        );
        s.status.as_mut().unwrap().power_state = Some(ServerPowerState::On);
        assert!(matches!(
            server_step(&s, ClaimPresence::NoRef),
            ServerStep::WaitForPowerOff(_)
        ));
    }
}
