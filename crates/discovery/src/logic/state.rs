//! Server state decisions: what discovery does with a Server in a given situation.
//!
//! Everything here is pure; the reconciler gathers the facts (from the API and the BMC), asks
//! these functions, and performs the answer.

use std::time::Duration;

use api::constants::InspectionMode;
use api::server::{ServerPowerState, ServerState};
use api::state::{Controller, side_effect_owner};

/// Which part of the lifecycle a Server is in, from discovery's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No state yet: discovery writes `Initial`.
    New,
    /// `Initial`: read the inventory, then move to `Discovery`.
    Initial,
    /// `Discovery`: finish out-of-band, or run the in-band boot.
    Discovery,
    /// `Error`: waits for the operator (`retry` operation → `Initial`).
    Error,
    /// Any state whose BMC side effects belong to another controller: hands off. Discovery
    /// only cleans up the internal objects it created for a finished discovery boot.
    NotOurs(Controller),
}

/// How long discovery leaves a new server that carries a claim reference to reservation.
pub const CLAIMED_NEW_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

/// The phase of a server in `state`.
pub fn phase(state: Option<ServerState>) -> Phase {
    match state {
        None => Phase::New,
        Some(ServerState::Initial) => Phase::Initial,
        Some(ServerState::Discovery) => Phase::Discovery,
        Some(ServerState::Error) => Phase::Error,
        Some(s) => Phase::NotOurs(side_effect_owner(s)),
    }
}

/// The inspection mode: the Server's annotation, else its BMC's, else the flag default.
/// Unknown values fall back to the default (and are reported by the caller).
pub fn inspection_mode(
    server_annotation: Option<&str>,
    bmc_annotation: Option<&str>,
    default: InspectionMode,
) -> InspectionMode {
    server_annotation
        .or(bmc_annotation)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What to do in `Initial`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialStep {
    /// The BMC is not Ready: record `Discovered=False/BMCNotReady` and wait.
    WaitForBmc,
    /// `--enforce-first-boot` and the server is on: power it off first.
    PowerOff,
    /// Read the inventory and move to `Discovery`.
    ReadInventory,
}

/// Decides the `Initial` step.
pub fn initial_step(
    bmc_ready: bool,
    enforce_first_boot: bool,
    power: Option<ServerPowerState>,
) -> InitialStep {
    if !bmc_ready {
        InitialStep::WaitForBmc
    } else if enforce_first_boot
        && matches!(
            power,
            Some(ServerPowerState::On | ServerPowerState::PoweringOn)
        )
    {
        InitialStep::PowerOff
    } else {
        InitialStep::ReadInventory
    }
}

/// Facts about an in-band discovery round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InBandView {
    /// The agent's report for this round is stored.
    pub report: bool,
    /// The internal ServerBootConfiguration has `status.state: Ready`.
    pub sbc_ready: bool,
    /// `PoweringOn=True` is recorded for this round (the boot was issued).
    pub boot_issued: bool,
    /// Power state as just read from the BMC (`None` when not read).
    pub power: Option<ServerPowerState>,
    /// Time since the round started (`Discovered` went Unknown).
    pub elapsed: Duration,
    /// `--discovery-timeout`.
    pub timeout: Duration,
}

/// What to do next in an in-band round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InBandStep {
    /// Merge the report and move to `Available`.
    Merge,
    /// Give up: back to `Initial` with `Discovered=False/DiscoveryTimedOut` and this message.
    TimedOut(String),
    /// Wait for provisioning to serve the boot configuration.
    WaitForBootConfig,
    /// Record `PoweringOn`, set the PXE boot override and power on.
    IssueBoot,
    /// The boot was recorded but the server is off (a crash between recording and issuing, or
    /// the power-on was lost): issue it again. Both Redfish calls are idempotent.
    ReissueBoot,
    /// Wait for the agent's report.
    WaitForAgent,
}

/// Decides the next in-band step.
pub fn in_band_step(v: &InBandView) -> InBandStep {
    if v.report {
        return InBandStep::Merge;
    }
    if v.elapsed > v.timeout {
        return InBandStep::TimedOut(timeout_message(v));
    }
    if !v.sbc_ready {
        return InBandStep::WaitForBootConfig;
    }
    if !v.boot_issued {
        return InBandStep::IssueBoot;
    }
    if v.power == Some(ServerPowerState::Off) {
        return InBandStep::ReissueBoot;
    }
    InBandStep::WaitForAgent
}

/// Says why a round timed out, from what was (not) reached.
pub fn timeout_message(v: &InBandView) -> String {
    let t = humantime(v.timeout);
    let why = if !v.sbc_ready {
        "the discovery boot configuration never became Ready (is metal-provisioning running?)"
            .to_string()
    } else if !v.boot_issued {
        "the discovery boot was never issued".to_string()
    } else if v.power != Some(ServerPowerState::On) {
        format!(
            "the server did not power on (power state {})",
            v.power.map(|p| p.as_str()).unwrap_or("unknown")
        )
    } else {
        "the server powered on but the probe agent never reported (PXE boot, ignition or registry unreachable?)"
            .to_string()
    };
    format!("no in-band report within {t}: {why}; retrying from Initial")
}

/// `90s`, `30m`, `2h` style rendering for messages.
pub fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Facts for deciding whether a server is in, or leaves, `Error` (discovery's part of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthView {
    /// The server's state.
    pub state: Option<ServerState>,
    /// A claim reference is set (a binding in progress on an Available server).
    pub claimed: bool,
    /// How long the BMC's `Ready` has been False, with its reason and message; `None` when
    /// Ready (or not known yet).
    pub bmc_not_ready: Option<(Duration, String)>,
    /// How long the inventory has been unreadable while the BMC answers
    /// (`Discovered=False/InventoryUnreadable`), with the message.
    pub inventory_unreadable: Option<(Duration, String)>,
    /// Reason of the `Healthy=False` condition that explains a current `Error`.
    pub unhealthy_reason: Option<String>,
    /// `--error-after` (zero: never move a server to Error).
    pub threshold: Duration,
}

/// What the health check asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthStep {
    /// Nothing to do about health.
    Fine,
    /// A problem younger than the threshold: look again after this long.
    RecheckIn(Duration),
    /// Move to `Error` with `Healthy=False`, this reason and message.
    EnterError(&'static str, String),
    /// The cause of a discovery-written `Error` is gone: back to `Initial` (rediscovery).
    Recover,
}

/// Decides the health step: a server in Initial, Discovery or (unclaimed) Available whose BMC
/// stayed unreachable, or whose inventory stayed unreadable, for the threshold goes to
/// `Error`; an `Error` caused by an unreachable BMC ends when the BMC is Ready again (an
/// unreadable inventory waits for the operator's `retry`: the BMC answers, so only a change
/// on the server side can fix it).
pub fn health_step(v: &HealthView) -> HealthStep {
    match v.state {
        Some(ServerState::Error) => {
            if v.unhealthy_reason.as_deref() == Some(api::constants::reasons::BMC_UNREACHABLE)
                && v.bmc_not_ready.is_none()
            {
                HealthStep::Recover
            } else {
                HealthStep::Fine
            }
        }
        Some(ServerState::Initial | ServerState::Discovery) => problem(v),
        Some(ServerState::Available) if !v.claimed => problem(v),
        _ => HealthStep::Fine,
    }
}

fn problem(v: &HealthView) -> HealthStep {
    if v.threshold.is_zero() {
        return HealthStep::Fine;
    }
    let (reason, (age, why), what) = if let Some(p) = &v.bmc_not_ready {
        (
            api::constants::reasons::BMC_UNREACHABLE,
            p,
            "the BMC has not been Ready",
        )
    } else if let Some(p) = &v.inventory_unreadable {
        (
            api::constants::reasons::INVENTORY_UNREADABLE,
            p,
            "the inventory has been unreadable",
        )
    } else {
        return HealthStep::Fine;
    };
    if *age >= v.threshold {
        HealthStep::EnterError(
            reason,
            format!(
                "{what} for {} (threshold {}): {why}",
                humantime(*age),
                humantime(v.threshold)
            ),
        )
    } else {
        HealthStep::RecheckIn(v.threshold - *age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> InBandView {
        InBandView {
            report: false,
            sbc_ready: true,
            boot_issued: true,
            power: Some(ServerPowerState::On),
            elapsed: Duration::from_secs(10),
            timeout: Duration::from_secs(1800),
        }
    }

    #[test]
    fn phases_follow_side_effect_ownership() {
        assert_eq!(phase(None), Phase::New);
        assert_eq!(phase(Some(ServerState::Initial)), Phase::Initial);
        assert_eq!(phase(Some(ServerState::Discovery)), Phase::Discovery);
        assert_eq!(phase(Some(ServerState::Error)), Phase::Error);
        for s in [
            ServerState::Available,
            ServerState::Reserved,
            ServerState::Released,
        ] {
            assert_eq!(phase(Some(s)), Phase::NotOurs(Controller::Provisioning));
        }
        for s in [ServerState::Maintenance, ServerState::Parked] {
            assert_eq!(phase(Some(s)), Phase::NotOurs(Controller::Maintenance));
        }
    }

    #[test]
    fn inspection_mode_precedence() {
        use InspectionMode::*;
        assert_eq!(inspection_mode(None, None, OutOfBand), OutOfBand);
        assert_eq!(inspection_mode(None, Some("in-band"), OutOfBand), InBand);
        assert_eq!(
            inspection_mode(Some("out-of-band"), Some("in-band"), InBand),
            OutOfBand
        );
        assert_eq!(inspection_mode(Some("bogus"), None, InBand), InBand);
    }

    #[test]
    fn initial_steps() {
        assert_eq!(
            initial_step(false, true, Some(ServerPowerState::On)),
            InitialStep::WaitForBmc
        );
        assert_eq!(
            initial_step(true, true, Some(ServerPowerState::On)),
            InitialStep::PowerOff
        );
        assert_eq!(
            initial_step(true, false, Some(ServerPowerState::On)),
            InitialStep::ReadInventory
        );
        assert_eq!(
            initial_step(true, true, Some(ServerPowerState::Off)),
            InitialStep::ReadInventory
        );
        assert_eq!(initial_step(true, true, None), InitialStep::ReadInventory);
    }

    #[test]
    fn in_band_steps() {
        assert_eq!(
            in_band_step(&InBandView {
                report: true,
                elapsed: Duration::from_secs(9999),
                ..view()
            }),
            InBandStep::Merge
        );
        assert_eq!(
            in_band_step(&InBandView {
                sbc_ready: false,
                ..view()
            }),
            InBandStep::WaitForBootConfig
        );
        assert_eq!(
            in_band_step(&InBandView {
                boot_issued: false,
                power: Some(ServerPowerState::Off),
                ..view()
            }),
            InBandStep::IssueBoot
        );
        assert_eq!(
            in_band_step(&InBandView {
                power: Some(ServerPowerState::Off),
                ..view()
            }),
            InBandStep::ReissueBoot
        );
        assert_eq!(in_band_step(&view()), InBandStep::WaitForAgent);
        assert_eq!(
            in_band_step(&InBandView {
                power: None,
                ..view()
            }),
            InBandStep::WaitForAgent
        );
    }

    #[test]
    fn timeouts_say_why() {
        let late = |v: InBandView| match in_band_step(&InBandView {
            elapsed: Duration::from_secs(1801),
            ..v
        }) {
            InBandStep::TimedOut(m) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            late(InBandView {
                sbc_ready: false,
                ..view()
            })
            .contains("never became Ready")
        );
        assert!(
            late(InBandView {
                boot_issued: false,
                ..view()
            })
            .contains("never issued")
        );
        assert!(
            late(InBandView {
                power: Some(ServerPowerState::Off),
                ..view()
            })
            .contains("did not power on (power state Off)")
        );
        let m = late(view());
        assert!(m.contains("never reported"), "{m}");
        assert!(m.starts_with("no in-band report within 30m"), "{m}");
    }

    #[test]
    fn durations_render() {
        assert_eq!(humantime(Duration::from_secs(7200)), "2h");
        assert_eq!(humantime(Duration::from_secs(90)), "90s");
        assert_eq!(humantime(Duration::from_millis(300)), "300ms");
    }

    fn health() -> HealthView {
        HealthView {
            state: Some(ServerState::Available),
            claimed: false,
            bmc_not_ready: None,
            inventory_unreadable: None,
            unhealthy_reason: None,
            threshold: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_bmc_gone_longer_than_the_threshold_means_error() {
        let gone = |secs| {
            Some((
                Duration::from_secs(secs),
                "ConnectionFailed: refused".into(),
            ))
        };
        assert_eq!(health_step(&health()), HealthStep::Fine);
        assert_eq!(
            health_step(&HealthView {
                bmc_not_ready: gone(60),
                ..health()
            }),
            HealthStep::RecheckIn(Duration::from_secs(540))
        );
        for state in [
            ServerState::Initial,
            ServerState::Discovery,
            ServerState::Available,
        ] {
            match health_step(&HealthView {
                state: Some(state),
                bmc_not_ready: gone(600),
                ..health()
            }) {
                HealthStep::EnterError(r, m) => {
                    assert_eq!(r, "BMCUnreachable");
                    assert!(
                        m.contains("for 10m") && m.contains("ConnectionFailed"),
                        "{m}"
                    );
                }
                other => panic!("{state}: {other:?}"),
            }
        }
        // Claimed (binding in progress), or another controller's state: never.
        assert_eq!(
            health_step(&HealthView {
                claimed: true,
                bmc_not_ready: gone(9999),
                ..health()
            }),
            HealthStep::Fine
        );
        for state in [
            ServerState::Reserved,
            ServerState::Maintenance,
            ServerState::Parked,
        ] {
            assert_eq!(
                health_step(&HealthView {
                    state: Some(state),
                    bmc_not_ready: gone(9999),
                    ..health()
                }),
                HealthStep::Fine
            );
        }
        // Disabled.
        assert_eq!(
            health_step(&HealthView {
                threshold: Duration::ZERO,
                bmc_not_ready: gone(9999),
                ..health()
            }),
            HealthStep::Fine
        );
    }

    #[test]
    fn unreadable_inventory_means_error_and_waits_for_retry() {
        let v = HealthView {
            state: Some(ServerState::Initial),
            inventory_unreadable: Some((Duration::from_secs(700), "bad JSON".into())),
            ..health()
        };
        assert!(matches!(
            health_step(&v),
            HealthStep::EnterError("InventoryUnreadable", _)
        ));
        let err = HealthView {
            state: Some(ServerState::Error),
            unhealthy_reason: Some("InventoryUnreadable".into()),
            ..health()
        };
        assert_eq!(health_step(&err), HealthStep::Fine);
    }

    #[test]
    fn an_unreachable_bmc_error_ends_when_the_bmc_is_ready() {
        let err = HealthView {
            state: Some(ServerState::Error),
            unhealthy_reason: Some("BMCUnreachable".into()),
            ..health()
        };
        assert_eq!(health_step(&err), HealthStep::Recover);
        assert_eq!(
            health_step(&HealthView {
                bmc_not_ready: Some((Duration::from_secs(1), "x".into())),
                ..err.clone()
            }),
            HealthStep::Fine
        );
        // An Error someone else wrote (no Healthy reason of ours) is left alone.
        assert_eq!(
            health_step(&HealthView {
                unhealthy_reason: None,
                ..err
            }),
            HealthStep::Fine
        );
    }
}

/// Property tests: the health and in-band decisions only ask for transitions the state table
/// gives discovery, and only when their cause is there.
#[cfg(test)]
mod props {
    use super::*;
    use api::state::{Controller, transition_owner};
    use proptest::prelude::*;

    const STATES: [ServerState; 9] = [
        ServerState::Initial,
        ServerState::Discovery,
        ServerState::Available,
        ServerState::Reserved,
        ServerState::Released,
        ServerState::Maintenance,
        ServerState::Parked,
        ServerState::Cleaning,
        ServerState::Error,
    ];

    fn problem() -> impl Strategy<Value = Option<(Duration, String)>> {
        prop::option::of((0u64..4000).prop_map(|s| (Duration::from_secs(s), "why".to_string())))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn health_moves_only_along_discoverys_transitions_and_only_for_a_cause(
            state in prop::option::of(0..STATES.len()),
            claimed in any::<bool>(),
            bmc in problem(),
            inventory in problem(),
            reason in prop::option::of(prop_oneof![
                Just(api::constants::reasons::BMC_UNREACHABLE.to_string()),
                Just(api::constants::reasons::INVENTORY_UNREADABLE.to_string()),
            ]),
            threshold in 0u64..3000,
        ) {
            let v = HealthView {
                state: state.map(|i| STATES[i]),
                claimed,
                bmc_not_ready: bmc.clone(),
                inventory_unreadable: inventory.clone(),
                unhealthy_reason: reason.clone(),
                threshold: Duration::from_secs(threshold),
            };
            let oldest = bmc.as_ref().or(inventory.as_ref()).map(|(age, _)| *age);
            match health_step(&v) {
                HealthStep::EnterError(r, _) => {
                    prop_assert_eq!(
                        transition_owner(v.state, ServerState::Error),
                        Some(Controller::Discovery)
                    );
                    prop_assert!(!(v.state == Some(ServerState::Available) && claimed));
                    prop_assert!(threshold > 0 && oldest.is_some_and(|a| a >= v.threshold));
                    let want = if bmc.is_some() {
                        api::constants::reasons::BMC_UNREACHABLE
                    } else {
                        api::constants::reasons::INVENTORY_UNREADABLE
                    };
                    prop_assert_eq!(r, want);
                }
                HealthStep::Recover => {
                    prop_assert_eq!(v.state, Some(ServerState::Error));
                    prop_assert_eq!(
                        transition_owner(v.state, ServerState::Initial),
                        Some(Controller::Discovery)
                    );
                    prop_assert!(bmc.is_none());
                    prop_assert_eq!(reason.as_deref(), Some(api::constants::reasons::BMC_UNREACHABLE));
                }
                HealthStep::RecheckIn(d) => {
                    let age = oldest.expect("a recheck has a cause");
                    prop_assert!(age < v.threshold && d == v.threshold - age && !d.is_zero());
                }
                HealthStep::Fine => {
                    let can_err = matches!(v.state, Some(ServerState::Initial | ServerState::Discovery))
                        || (v.state == Some(ServerState::Available) && !claimed);
                    prop_assert!(!can_err || threshold == 0 || oldest.is_none());
                }
            }
        }

        #[test]
        fn an_in_band_round_merges_a_report_and_boots_only_when_served(
            report in any::<bool>(),
            sbc_ready in any::<bool>(),
            boot_issued in any::<bool>(),
            power in prop::option::of(prop_oneof![Just(ServerPowerState::On), Just(ServerPowerState::Off)]),
            elapsed in 0u64..100,
            timeout in 1u64..100,
        ) {
            let v = InBandView {
                report,
                sbc_ready,
                boot_issued,
                power,
                elapsed: Duration::from_secs(elapsed),
                timeout: Duration::from_secs(timeout),
            };
            let step = in_band_step(&v);
            prop_assert_eq!(step == InBandStep::Merge, report, "a report always wins");
            if matches!(step, InBandStep::IssueBoot | InBandStep::ReissueBoot) {
                prop_assert!(sbc_ready, "no boot before the configuration is served");
                prop_assert!(elapsed <= timeout, "no boot after the round timed out");
            }
            if let InBandStep::TimedOut(_) = step {
                prop_assert!(!report && elapsed > timeout);
                prop_assert_eq!(transition_owner(Some(ServerState::Discovery), ServerState::Initial), Some(Controller::Discovery));
            }
        }
    }
}
