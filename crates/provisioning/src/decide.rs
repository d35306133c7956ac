//! The power decision table: from the server's state, its claim, its boot configuration, what the
//! BMC reports and what this controller recorded earlier (conditions), decide the one next power
//! step. Pure: no client, no clock (the caller passes `now`), unit-tested exhaustively below.
//!
//! | state | claim | wanted |
//! |---|---|---|
//! | Available, Released | any | Off |
//! | Reserved | none, gone or deleting (release) | Off |
//! | Reserved | `power: Off` | Off |
//! | Reserved | `power: On` | On (booted once per power-on with the configuration's override) |
//!
//! Wanted On: BMC `On` → confirm; `PoweringOn` → wait; `Off` → if a power-on we recorded is
//! younger than the confirm timeout wait, if older record the timeout, else (configuration Ready)
//! start a boot: record `PoweringOn=True`, then override + power-on. A server already On is never
//! powered on again and never gets an override.
//!
//! Wanted Off: BMC `Off` → confirm; otherwise record `WaitingForPowerOff=True` and request a
//! graceful shutdown, escalate to a forced power-off after `--power-off-timeout` (if set), and
//! report `PowerOffRefused` once the last request is older than the confirm timeout and the BMC
//! still reports the server on.

use std::time::Duration;

use api::common::Power;
use api::conditions::ConditionStatus;
use api::server::ServerState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::reasons;

/// The power state as the BMC reports it, reduced to what decisions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BmcPower {
    /// On.
    On,
    /// Off.
    Off,
    /// Turning on.
    PoweringOn,
    /// Turning off.
    PoweringOff,
    /// Paused (treated as on: it is not off).
    Paused,
    /// Not reported or not understood.
    Unknown,
}

impl From<Option<&redfish::models::PowerState>> for BmcPower {
    fn from(p: Option<&redfish::models::PowerState>) -> Self {
        use redfish::models::PowerState as P;
        match p {
            Some(P::On) => BmcPower::On,
            Some(P::Off) => BmcPower::Off,
            Some(P::PoweringOn) => BmcPower::PoweringOn,
            Some(P::PoweringOff) => BmcPower::PoweringOff,
            Some(P::Paused) => BmcPower::Paused,
            _ => BmcPower::Unknown,
        }
    }
}

impl BmcPower {
    /// The Server `status.powerState` value, if there is one.
    pub fn server_power_state(self) -> Option<api::server::ServerPowerState> {
        use api::server::ServerPowerState as S;
        match self {
            BmcPower::On => Some(S::On),
            BmcPower::Off => Some(S::Off),
            BmcPower::PoweringOn => Some(S::PoweringOn),
            BmcPower::PoweringOff => Some(S::PoweringOff),
            BmcPower::Paused => Some(S::Paused),
            BmcPower::Unknown => None,
        }
    }
}

/// The server's claim as far as power is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimView {
    /// No `spec.serverClaimRef`.
    Unclaimed,
    /// The referenced claim object does not exist (any more).
    Gone,
    /// The claim is being deleted (release in progress).
    Deleting,
    /// The claim exists and asks for this power state.
    Active(Power),
}

/// How the active boot configuration boots, if it can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootView {
    /// No Ready configuration (missing, Pending or Error).
    NotReady,
    /// Network boot from the boot server.
    Network,
    /// Boot from this ISO inserted as virtual CD.
    VirtualMedia(String),
}

/// Timeouts that shape the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Escalate a graceful shutdown to a forced power-off after this long (`None`: never).
    pub power_off_timeout: Option<Duration>,
    /// How long the BMC has to confirm a requested power change.
    pub confirm_timeout: Duration,
}

/// Everything a decision is based on.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// Now.
    pub now: Timestamp,
    /// The server's lifecycle state (only Available, Reserved, Released are decided here).
    pub state: ServerState,
    /// Its claim.
    pub claim: ClaimView,
    /// Its active boot configuration.
    pub boot: BootView,
    /// What the BMC reports.
    pub bmc: BmcPower,
    /// The server's `PoweringOn` condition, if any.
    pub powering_on: Option<&'a Condition>,
    /// The server's `WaitingForPowerOff` condition, if any.
    pub waiting_off: Option<&'a Condition>,
    /// Time since this process last re-sent a refused power-off (`None`: never).
    pub since_last_off_retry: Option<Duration>,
    /// A restart / power cycle was issued recently: a server reading Off is between its off
    /// and on halves, not in need of a boot.
    pub reset_settling: bool,
    /// Timeouts.
    pub timing: Timing,
}

/// What power the server should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Powered on (booted with the claim's configuration).
    On,
    /// Powered off.
    Off,
}

/// The next power step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Power matches what is wanted; nothing to do.
    Idle,
    /// Wanted On, the server is off and its configuration not Ready: wait, touch nothing.
    WaitForBootConfiguration,
    /// Record `PoweringOn=True`, then (insert media,) set the boot override once and power on.
    StartBoot,
    /// A recorded power-on waits for the BMC; do not send anything.
    AwaitPowerOn,
    /// A recorded power-on was not confirmed in time: record `PoweringOn=False/PowerOnTimedOut`
    /// (the next reconcile starts a new boot).
    PowerOnTimedOut,
    /// The BMC reports On: record `PoweringOn=False/ServerPoweredOn` if a power-on was pending.
    ConfirmOn,
    /// Record `WaitingForPowerOff=True`, then request a graceful shutdown (`issue == false`
    /// when the BMC already reports `PoweringOff`: just wait).
    StartPowerOff {
        /// Whether to send the shutdown request.
        issue: bool,
    },
    /// Record `WaitingForPowerOff=True/ForceOffRequested`, then request a forced power-off.
    ForceOff,
    /// A requested power-off waits for the BMC; do not send anything.
    AwaitPowerOff,
    /// The BMC accepted the power-off but still reports the server on: record
    /// `PowerOffRefused`.
    DeclareRefused {
        /// Time since the first power-off request.
        elapsed: Duration,
    },
    /// The BMC refused before: send the power-off again (forced if configured).
    RetryPowerOff {
        /// Send ForceOff instead of GracefulShutdown.
        force: bool,
    },
    /// The BMC reports Off: record `WaitingForPowerOff=False/PowerOffConfirmed`.
    ConfirmOff,
    /// The BMC's power state is unknown: read again later.
    Unknown,
}

/// The decision: the step plus the cancellations of records that no longer apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What is wanted.
    pub wanted: Wanted,
    /// The step.
    pub step: Step,
    /// A pending power-on record is obsolete (power-off wanted): mark it cancelled.
    pub cancel_power_on: bool,
    /// A pending power-off record is obsolete (power-on wanted): mark it cancelled.
    pub cancel_power_off: bool,
    /// When to look again (`None`: on the next change or the regular resync).
    pub requeue: Option<Duration>,
}

/// What power the server should have in `state` with `claim`.
pub fn wanted(state: ServerState, claim: ClaimView) -> Wanted {
    match (state, claim) {
        (ServerState::Reserved, ClaimView::Active(Power::On)) => Wanted::On,
        _ => Wanted::Off,
    }
}

fn pending(c: Option<&Condition>) -> Option<&Condition> {
    c.filter(|c| c.status == ConditionStatus::True.as_str())
}

fn elapsed(now: Timestamp, c: &Condition) -> Duration {
    let since = c.last_transition_time.0;
    let d = now.duration_since(since);
    d.try_into().unwrap_or(Duration::ZERO)
}

const POLL: Duration = Duration::from_secs(2);

/// Decides the next power step (pure).
pub fn decide(input: &Input<'_>) -> Decision {
    let wanted = wanted(input.state, input.claim);
    let powering_on = pending(input.powering_on);
    let waiting_off = pending(input.waiting_off);
    let t = input.timing;
    let mut d = Decision {
        wanted,
        step: Step::Idle,
        cancel_power_on: false,
        cancel_power_off: false,
        requeue: None,
    };
    match wanted {
        Wanted::On => {
            // A power-off we recorded is superseded once power-on is wanted again.
            d.cancel_power_off = waiting_off.is_some();
            d.step = match input.bmc {
                BmcPower::On | BmcPower::Paused => Step::ConfirmOn,
                BmcPower::PoweringOn => Step::AwaitPowerOn,
                BmcPower::Unknown => Step::Unknown,
                // Let a shutdown finish before powering on again.
                BmcPower::PoweringOff => Step::AwaitPowerOff,
                BmcPower::Off if input.reset_settling => Step::AwaitPowerOn,
                BmcPower::Off => match powering_on {
                    Some(c) if elapsed(input.now, c) < t.confirm_timeout => Step::AwaitPowerOn,
                    Some(_) => Step::PowerOnTimedOut,
                    None if input.boot == BootView::NotReady => Step::WaitForBootConfiguration,
                    None => Step::StartBoot,
                },
            };
            if matches!(d.step, Step::ConfirmOn) && powering_on.is_none() {
                d.step = Step::Idle;
            }
        }
        Wanted::Off => {
            d.cancel_power_on = powering_on.is_some();
            d.step = match input.bmc {
                BmcPower::Off => Step::ConfirmOff,
                BmcPower::Unknown => Step::Unknown,
                bmc => match waiting_off {
                    None => Step::StartPowerOff {
                        issue: bmc != BmcPower::PoweringOff,
                    },
                    Some(c) => {
                        let e = elapsed(input.now, c);
                        match c.reason.as_str() {
                            reasons::POWER_OFF_REFUSED => match input.since_last_off_retry {
                                Some(s) if s < t.confirm_timeout => Step::AwaitPowerOff,
                                _ => Step::RetryPowerOff {
                                    force: t.power_off_timeout.is_some(),
                                },
                            },
                            reasons::FORCE_OFF_REQUESTED => {
                                let limit =
                                    t.power_off_timeout.unwrap_or_default() + t.confirm_timeout;
                                if e >= limit {
                                    Step::DeclareRefused { elapsed: e }
                                } else {
                                    Step::AwaitPowerOff
                                }
                            }
                            _ => match t.power_off_timeout {
                                Some(pot) if e >= pot => Step::ForceOff,
                                Some(_) => Step::AwaitPowerOff,
                                None if e >= t.confirm_timeout => {
                                    Step::DeclareRefused { elapsed: e }
                                }
                                None => Step::AwaitPowerOff,
                            },
                        }
                    }
                },
            };
        }
    }
    d.requeue = match d.step {
        Step::AwaitPowerOn | Step::AwaitPowerOff | Step::Unknown => Some(POLL),
        Step::StartBoot | Step::StartPowerOff { .. } | Step::ForceOff => Some(POLL),
        Step::RetryPowerOff { .. } | Step::DeclareRefused { .. } => Some(t.confirm_timeout),
        Step::PowerOnTimedOut => Some(Duration::from_millis(100)),
        Step::WaitForBootConfiguration => Some(Duration::from_secs(30)),
        Step::Idle | Step::ConfirmOn | Step::ConfirmOff => None,
    };
    d
}

/// A condition to write on the claim: (status, reason, message).
pub type ClaimCondition = (ConditionStatus, &'static str, String);

/// The claim's `PoweredOn` condition for a decision, or `None` to leave it as it is.
pub fn claim_powered_on(claim: ClaimView, boot: &BootView, d: &Decision) -> Option<ClaimCondition> {
    use ConditionStatus::{False, True};
    match claim {
        ClaimView::Unclaimed | ClaimView::Gone => None,
        ClaimView::Deleting => Some((
            False,
            reasons::RELEASING,
            "the claim is being deleted; the server is powered off and released".into(),
        )),
        ClaimView::Active(Power::Off) => Some((
            False,
            reasons::POWER_OFF_REQUESTED,
            "the claim asks for power Off".into(),
        )),
        ClaimView::Active(Power::On) => Some(match d.step {
            Step::Idle | Step::ConfirmOn => (
                True,
                reasons::SERVER_POWERED_ON,
                "the BMC reports the server On".into(),
            ),
            Step::WaitForBootConfiguration => (
                False,
                reasons::WAITING_FOR_BOOT_CONFIGURATION,
                "waiting for the claim's ServerBootConfiguration to become Ready".into(),
            ),
            _ if *boot == BootView::NotReady && d.step != Step::AwaitPowerOn => (
                False,
                reasons::WAITING_FOR_BOOT_CONFIGURATION,
                "waiting for the claim's ServerBootConfiguration to become Ready".into(),
            ),
            _ => (
                False,
                reasons::POWERING_ON,
                "power-on requested, waiting for the BMC to report On".into(),
            ),
        }),
    }
}

/// Whether `c` is a True condition (helper for callers).
pub fn is_pending(c: Option<&Condition>) -> bool {
    pending(c).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn cond(type_: &str, status: ConditionStatus, reason: &str, at: i64) -> Condition {
        api::conditions::new(type_, status, reason, "", None, Time(ts(at)))
    }

    const TIMING: Timing = Timing {
        power_off_timeout: Some(Duration::from_secs(60)),
        confirm_timeout: Duration::from_secs(120),
    };

    fn input(state: ServerState, claim: ClaimView, bmc: BmcPower) -> Input<'static> {
        Input {
            now: ts(1000),
            state,
            claim,
            boot: BootView::Network,
            bmc,
            powering_on: None,
            waiting_off: None,
            since_last_off_retry: None,
            reset_settling: false,
            timing: TIMING,
        }
    }

    use BmcPower as B;
    use ClaimView as C;
    use ServerState as S;

    #[test]
    fn wanted_power_per_state_and_claim() {
        assert_eq!(wanted(S::Available, C::Unclaimed), Wanted::Off);
        assert_eq!(wanted(S::Available, C::Active(Power::On)), Wanted::Off);
        assert_eq!(wanted(S::Released, C::Active(Power::On)), Wanted::Off);
        assert_eq!(wanted(S::Reserved, C::Active(Power::On)), Wanted::On);
        assert_eq!(wanted(S::Reserved, C::Active(Power::Off)), Wanted::Off);
        assert_eq!(wanted(S::Reserved, C::Deleting), Wanted::Off);
        assert_eq!(wanted(S::Reserved, C::Gone), Wanted::Off);
        assert_eq!(wanted(S::Reserved, C::Unclaimed), Wanted::Off);
    }

    #[test]
    fn reserved_off_server_boots_once() {
        let i = input(S::Reserved, C::Active(Power::On), B::Off);
        assert_eq!(decide(&i).step, Step::StartBoot);
        // Recorded and young: wait, never a second power-on.
        let po = cond(
            "PoweringOn",
            ConditionStatus::True,
            reasons::SERVER_POWER_ON,
            990,
        );
        let i2 = Input {
            powering_on: Some(&po),
            ..i.clone()
        };
        assert_eq!(decide(&i2).step, Step::AwaitPowerOn);
        // Recorded long ago and still off: time out (a new boot follows).
        let old = cond(
            "PoweringOn",
            ConditionStatus::True,
            reasons::SERVER_POWER_ON,
            0,
        );
        let i3 = Input {
            powering_on: Some(&old),
            ..i.clone()
        };
        assert_eq!(decide(&i3).step, Step::PowerOnTimedOut);
        // A finished power-on (False) does not block a new boot.
        let done = cond(
            "PoweringOn",
            ConditionStatus::False,
            reasons::SERVER_POWERED_ON,
            990,
        );
        let i4 = Input {
            powering_on: Some(&done),
            ..i
        };
        assert_eq!(decide(&i4).step, Step::StartBoot);
    }

    #[test]
    fn server_already_on_is_never_powered_on_or_overridden() {
        for bmc in [B::On, B::Paused] {
            let i = input(S::Reserved, C::Active(Power::On), bmc);
            assert_eq!(decide(&i).step, Step::Idle);
            let po = cond(
                "PoweringOn",
                ConditionStatus::True,
                reasons::SERVER_POWER_ON,
                990,
            );
            let i2 = Input {
                powering_on: Some(&po),
                ..i
            };
            assert_eq!(decide(&i2).step, Step::ConfirmOn);
        }
        let i = input(S::Reserved, C::Active(Power::On), B::PoweringOn);
        assert_eq!(decide(&i).step, Step::AwaitPowerOn);
    }

    #[test]
    fn boot_waits_for_configuration() {
        let mut i = input(S::Reserved, C::Active(Power::On), B::Off);
        i.boot = BootView::NotReady;
        let d = decide(&i);
        assert_eq!(d.step, Step::WaitForBootConfiguration);
        assert_eq!(
            claim_powered_on(i.claim, &i.boot, &d).unwrap().1,
            reasons::WAITING_FOR_BOOT_CONFIGURATION
        );
        // Already on: leave it on, the claim is satisfied.
        i.bmc = B::On;
        let d = decide(&i);
        assert_eq!(d.step, Step::Idle);
        assert_eq!(
            claim_powered_on(i.claim, &i.boot, &d).unwrap().1,
            reasons::SERVER_POWERED_ON
        );
    }

    #[test]
    fn a_restart_in_progress_is_not_a_reason_to_boot() {
        let mut i = input(S::Reserved, C::Active(Power::On), B::Off);
        i.reset_settling = true;
        assert_eq!(decide(&i).step, Step::AwaitPowerOn);
    }

    #[test]
    fn shutdown_finishes_before_power_on() {
        let i = input(S::Reserved, C::Active(Power::On), B::PoweringOff);
        assert_eq!(decide(&i).step, Step::AwaitPowerOff);
    }

    #[test]
    fn power_off_sequence_graceful_then_forced_then_refused() {
        let base = input(S::Reserved, C::Deleting, B::On);
        assert_eq!(decide(&base).step, Step::StartPowerOff { issue: true });
        // Graceful requested 30 s ago: wait.
        let g = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::WAITING_FOR_POWER_OFF,
            970,
        );
        let i = Input {
            waiting_off: Some(&g),
            ..base.clone()
        };
        assert_eq!(decide(&i).step, Step::AwaitPowerOff);
        // 60 s passed: force.
        let g = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::WAITING_FOR_POWER_OFF,
            940,
        );
        let i = Input {
            waiting_off: Some(&g),
            ..base.clone()
        };
        assert_eq!(decide(&i).step, Step::ForceOff);
        // Forced, within timeout + confirm: wait; beyond: refused.
        let f = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::FORCE_OFF_REQUESTED,
            900,
        );
        let i = Input {
            waiting_off: Some(&f),
            ..base.clone()
        };
        assert_eq!(decide(&i).step, Step::AwaitPowerOff);
        let f = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::FORCE_OFF_REQUESTED,
            800,
        );
        let i = Input {
            waiting_off: Some(&f),
            ..base.clone()
        };
        assert!(matches!(decide(&i).step, Step::DeclareRefused { .. }));
        // Refused: retried at most once per confirm timeout.
        let r = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::POWER_OFF_REFUSED,
            800,
        );
        let i = Input {
            waiting_off: Some(&r),
            since_last_off_retry: Some(Duration::from_secs(5)),
            ..base.clone()
        };
        assert_eq!(decide(&i).step, Step::AwaitPowerOff);
        let i = Input {
            waiting_off: Some(&r),
            since_last_off_retry: None,
            ..base.clone()
        };
        assert_eq!(decide(&i).step, Step::RetryPowerOff { force: true });
    }

    #[test]
    fn without_force_graceful_is_refused_after_confirm_timeout() {
        let mut base = input(S::Available, C::Unclaimed, B::On);
        base.timing.power_off_timeout = None;
        let g = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::WAITING_FOR_POWER_OFF,
            950,
        );
        let i = Input {
            waiting_off: Some(&g),
            ..base.clone()
        };
        assert_eq!(decide(&i).step, Step::AwaitPowerOff);
        let g = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::WAITING_FOR_POWER_OFF,
            850,
        );
        let i = Input {
            waiting_off: Some(&g),
            ..base
        };
        assert!(matches!(decide(&i).step, Step::DeclareRefused { .. }));
    }

    #[test]
    fn off_is_confirmed_and_a_shutdown_in_progress_is_not_interrupted() {
        for (state, claim) in [
            (S::Available, C::Unclaimed),
            (S::Released, C::Gone),
            (S::Reserved, C::Deleting),
            (S::Reserved, C::Active(Power::Off)),
        ] {
            assert_eq!(decide(&input(state, claim, B::Off)).step, Step::ConfirmOff);
            assert_eq!(
                decide(&input(state, claim, B::PoweringOff)).step,
                Step::StartPowerOff { issue: false }
            );
        }
    }

    #[test]
    fn stale_records_are_cancelled() {
        let po = cond(
            "PoweringOn",
            ConditionStatus::True,
            reasons::SERVER_POWER_ON,
            990,
        );
        let i = Input {
            powering_on: Some(&po),
            ..input(S::Reserved, C::Deleting, B::On)
        };
        let d = decide(&i);
        assert!(d.cancel_power_on);
        assert_eq!(d.wanted, Wanted::Off);
        let wo = cond(
            "WaitingForPowerOff",
            ConditionStatus::True,
            reasons::WAITING_FOR_POWER_OFF,
            990,
        );
        let i = Input {
            waiting_off: Some(&wo),
            ..input(S::Reserved, C::Active(Power::On), B::On)
        };
        let d = decide(&i);
        assert!(d.cancel_power_off);
        assert_eq!(d.step, Step::Idle);
    }

    #[test]
    fn unknown_power_state_only_reads_again() {
        for claim in [C::Active(Power::On), C::Deleting] {
            let d = decide(&input(S::Reserved, claim, B::Unknown));
            assert_eq!(d.step, Step::Unknown);
            assert!(d.requeue.is_some());
        }
    }

    #[test]
    fn virtual_media_boot_is_a_boot_too() {
        let mut i = input(S::Reserved, C::Active(Power::On), B::Off);
        i.boot = BootView::VirtualMedia("https://x/os.iso".into());
        assert_eq!(decide(&i).step, Step::StartBoot);
    }

    #[test]
    fn claim_conditions() {
        let on = decide(&input(S::Reserved, C::Active(Power::On), B::On));
        assert_eq!(
            claim_powered_on(C::Active(Power::On), &BootView::Network, &on)
                .unwrap()
                .0,
            ConditionStatus::True
        );
        let off = decide(&input(S::Reserved, C::Active(Power::Off), B::Off));
        assert_eq!(
            claim_powered_on(C::Active(Power::Off), &BootView::Network, &off)
                .unwrap()
                .1,
            reasons::POWER_OFF_REQUESTED
        );
        let rel = decide(&input(S::Reserved, C::Deleting, B::On));
        assert_eq!(
            claim_powered_on(C::Deleting, &BootView::Network, &rel)
                .unwrap()
                .1,
            reasons::RELEASING
        );
        assert!(claim_powered_on(C::Gone, &BootView::Network, &rel).is_none());
    }
}
