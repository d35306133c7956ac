//! Power, boot override and pending-BIOS state of one simulated computer system.
//!
//! Time is passed in (`Instant`), never read, so every transition is unit-tested exactly. A
//! transition that has completed is applied by [`SystemMachine::advance`], with events dated at the
//! moment they happened (not when they were noticed).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Clock;

/// How many boot records a system keeps.
pub(crate) const HISTORY_LIMIT: usize = 256;

/// Redfish `PowerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Powering on (or the on half of a restart).
    PoweringOn,
    /// Powering off (or the off half of a restart).
    PoweringOff,
}

impl PowerState {
    /// The Redfish string.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "On",
            PowerState::Off => "Off",
            PowerState::PoweringOn => "PoweringOn",
            PowerState::PoweringOff => "PoweringOff",
        }
    }
}

/// Redfish `ResetType` values of `ComputerSystem.Reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetType {
    On,
    ForceOn,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    PowerCycle,
    Nmi,
    PushPowerButton,
}

impl FromStr for ResetType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "On" => ResetType::On,
            "ForceOn" => ResetType::ForceOn,
            "ForceOff" => ResetType::ForceOff,
            "GracefulShutdown" => ResetType::GracefulShutdown,
            "GracefulRestart" => ResetType::GracefulRestart,
            "ForceRestart" => ResetType::ForceRestart,
            "PowerCycle" => ResetType::PowerCycle,
            "Nmi" => ResetType::Nmi,
            "PushPowerButton" => ResetType::PushPowerButton,
            _ => return Err(()),
        })
    }
}

/// What a reset request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetOutcome {
    /// A transition started.
    Started,
    /// Nothing to do (already in the requested state).
    NoOp,
    /// Accepted but ignored (the "refuses to power off" knob).
    Ignored,
}

/// Why a reset request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetError {
    /// Another transition is in progress, or the request makes no sense in this state.
    Conflict(&'static str),
}

/// Boot source override settings (`Boot` of a ComputerSystem).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSettings {
    /// `BootSourceOverrideEnabled`: `Disabled`, `Once` or `Continuous`.
    pub enabled: String,
    /// `BootSourceOverrideTarget` (`None`, `Pxe`, `Cd`, `Hdd`, `UefiHttp`, ...).
    pub target: String,
    /// `BootSourceOverrideMode` (`UEFI`, `Legacy`), when the template has it.
    pub mode: Option<String>,
    /// `BootOrder` (boot option references).
    pub order: Vec<String>,
}

/// One power-on of a system: what it booted from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRecord {
    /// When the system reached `On`.
    pub time: DateTime<Utc>,
    /// The boot target used: the override target when an override was enabled, else `None`
    /// (the boot order).
    pub target: String,
    /// The override setting in force at that boot (`Disabled`, `Once`, `Continuous`).
    pub override_enabled: String,
    /// The boot mode in force.
    pub mode: Option<String>,
    /// The virtual media image inserted at that time, if any.
    pub media_image: Option<String>,
    /// The BIOS version the system booted with.
    pub bios_version: Option<String>,
}

impl BootRecord {
    /// Whether this boot went to the network (`Pxe` or `UefiHttp`).
    pub fn network_boot(&self) -> bool {
        self.target == "Pxe" || self.target == "UefiHttp"
    }
}

#[derive(Clone, Copy, Debug)]
struct Transition {
    /// PoweringOn or PoweringOff.
    state: PowerState,
    until: Instant,
    /// For restarts: after powering off, power on again taking this long.
    then_on: Option<Duration>,
}

/// The simulated hardware state of one system.
#[derive(Clone, Debug)]
pub(crate) struct SystemMachine {
    power: PowerState,
    transition: Option<Transition>,
    pub boot: BootSettings,
    /// Current BIOS attributes that differ from the template.
    pub bios_overrides: BTreeMap<String, Value>,
    /// Pending BIOS attributes, applied at the next boot.
    pub bios_pending: BTreeMap<String, Value>,
    /// `Bios.ResetBios` was requested: defaults are restored at the next boot.
    pub bios_reset_pending: bool,
    /// Current BIOS version when it differs from the template's.
    pub bios_version: Option<String>,
    /// The template's BIOS version (what runs until an update is activated).
    pub template_bios_version: Option<String>,
    /// BIOS version installed by an update, active from the next boot.
    pub staged_bios_version: Option<String>,
    pub history: Vec<BootRecord>,
    pub last_reset: Option<DateTime<Utc>>,
    pub nmi_count: u32,
}

impl SystemMachine {
    /// A system in the given power state with the given boot settings.
    pub(crate) fn new(on: bool, boot: BootSettings) -> Self {
        SystemMachine {
            power: if on { PowerState::On } else { PowerState::Off },
            transition: None,
            boot,
            bios_overrides: BTreeMap::new(),
            bios_pending: BTreeMap::new(),
            bios_reset_pending: false,
            bios_version: None,
            template_bios_version: None,
            staged_bios_version: None,
            history: Vec::new(),
            last_reset: None,
            nmi_count: 0,
        }
    }

    /// The Redfish `PowerState` now (call [`advance`](Self::advance) first).
    pub(crate) fn power_state(&self) -> PowerState {
        self.transition.map(|t| t.state).unwrap_or(self.power)
    }

    /// When the current transition step ends.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.transition.map(|t| t.until)
    }

    /// Applies every transition step that ended by `now`; returns the boots that happened.
    /// `media` is the virtual media image inserted (recorded in boot records).
    pub(crate) fn advance(
        &mut self,
        now: Instant,
        clock: &Clock,
        media: Option<&str>,
    ) -> Vec<BootRecord> {
        let mut boots = Vec::new();
        while let Some(t) = self.transition {
            if t.until > now {
                break;
            }
            match t.state {
                PowerState::PoweringOff => {
                    self.power = PowerState::Off;
                    self.transition = t.then_on.map(|d| Transition {
                        state: PowerState::PoweringOn,
                        until: t.until + d,
                        then_on: None,
                    });
                }
                _ => {
                    self.power = PowerState::On;
                    self.transition = None;
                    boots.push(self.boot_at(clock.utc(t.until), media));
                }
            }
        }
        boots
    }

    fn boot_at(&mut self, time: DateTime<Utc>, media: Option<&str>) -> BootRecord {
        if let Some(v) = self.staged_bios_version.take() {
            self.bios_version = Some(v);
        }
        if self.bios_reset_pending {
            self.bios_overrides.clear();
            self.bios_reset_pending = false;
        }
        let pending = std::mem::take(&mut self.bios_pending);
        self.bios_overrides.extend(pending);
        let overriding = self.boot.enabled != "Disabled";
        let target = if overriding {
            self.boot.target.clone()
        } else {
            "None".to_string()
        };
        let uses_media = matches!(
            target.as_str(),
            "Cd" | "Usb" | "UsbCd" | "Floppy" | "RemoteDrive"
        );
        let record = BootRecord {
            time,
            target,
            override_enabled: self.boot.enabled.clone(),
            mode: self.boot.mode.clone(),
            media_image: if uses_media {
                media.map(String::from)
            } else {
                None
            },
            bios_version: self
                .bios_version
                .clone()
                .or_else(|| self.template_bios_version.clone()),
        };
        if self.boot.enabled == "Once" {
            self.boot.enabled = "Disabled".into();
        }
        self.last_reset = Some(time);
        if self.history.len() >= HISTORY_LIMIT {
            self.history.remove(0);
        }
        self.history.push(record.clone());
        record
    }

    fn start(
        &mut self,
        state: PowerState,
        now: Instant,
        delay: Duration,
        then_on: Option<Duration>,
    ) {
        self.transition = Some(Transition {
            state,
            until: now + delay,
            then_on,
        });
    }

    /// Handles `ComputerSystem.Reset` at `now` (after [`advance`](Self::advance)).
    pub(crate) fn reset(
        &mut self,
        rt: ResetType,
        now: Instant,
        delay: Duration,
        refuse_power_off: bool,
    ) -> Result<ResetOutcome, ResetError> {
        use PowerState::*;
        let state = self.power_state();
        let busy = Err(ResetError::Conflict("a power transition is in progress"));
        Ok(match rt {
            ResetType::On | ResetType::ForceOn => match state {
                Off => {
                    self.start(PoweringOn, now, delay, None);
                    ResetOutcome::Started
                }
                On | PoweringOn => ResetOutcome::NoOp,
                PoweringOff => return busy,
            },
            ResetType::ForceOff => match state {
                _ if refuse_power_off => ResetOutcome::Ignored,
                Off => ResetOutcome::NoOp,
                PoweringOff
                    if self
                        .transition
                        .is_some_and(|t| t.then_on.is_none() && t.until <= now + delay) =>
                {
                    ResetOutcome::NoOp
                }
                _ => {
                    self.start(PoweringOff, now, delay, None);
                    ResetOutcome::Started
                }
            },
            ResetType::GracefulShutdown => match state {
                _ if refuse_power_off && state != Off => ResetOutcome::Ignored,
                Off => ResetOutcome::NoOp,
                On => {
                    self.start(PoweringOff, now, delay, None);
                    ResetOutcome::Started
                }
                PoweringOn | PoweringOff => return busy,
            },
            ResetType::PushPowerButton => match state {
                On if refuse_power_off => ResetOutcome::Ignored,
                On => {
                    self.start(PoweringOff, now, delay, None);
                    ResetOutcome::Started
                }
                Off => {
                    self.start(PoweringOn, now, delay, None);
                    ResetOutcome::Started
                }
                PoweringOn | PoweringOff => return busy,
            },
            ResetType::GracefulRestart => match state {
                On => {
                    self.start(PoweringOff, now, delay, Some(delay));
                    ResetOutcome::Started
                }
                Off => {
                    return Err(ResetError::Conflict(
                        "the system is powered off; a graceful restart needs a running system",
                    ));
                }
                PoweringOn | PoweringOff => return busy,
            },
            ResetType::ForceRestart | ResetType::PowerCycle => match state {
                Off => {
                    self.start(PoweringOn, now, delay, None);
                    ResetOutcome::Started
                }
                _ => {
                    self.start(PoweringOff, now, delay, Some(delay));
                    ResetOutcome::Started
                }
            },
            ResetType::Nmi => match state {
                On => {
                    self.nmi_count += 1;
                    ResetOutcome::NoOp
                }
                _ => return Err(ResetError::Conflict("the system is not running")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(enabled: &str, target: &str) -> BootSettings {
        BootSettings {
            enabled: enabled.into(),
            target: target.into(),
            mode: Some("UEFI".into()),
            order: vec![],
        }
    }

    fn setup(on: bool) -> (SystemMachine, Instant, Clock) {
        let t0 = Instant::now();
        (
            SystemMachine::new(on, boot("Disabled", "None")),
            t0,
            Clock::new(t0, Utc::now()),
        )
    }

    const D: Duration = Duration::from_secs(2);

    #[test]
    fn power_on_passes_through_powering_on() {
        let (mut m, t0, c) = setup(false);
        assert_eq!(
            m.reset(ResetType::On, t0, D, false),
            Ok(ResetOutcome::Started)
        );
        assert_eq!(m.power_state(), PowerState::PoweringOn);
        assert!(m.advance(t0 + D / 2, &c, None).is_empty());
        assert_eq!(m.power_state(), PowerState::PoweringOn);
        let boots = m.advance(t0 + D, &c, None);
        assert_eq!(boots.len(), 1);
        assert_eq!(boots[0].time, c.utc(t0 + D));
        assert_eq!(m.power_state(), PowerState::On);
        assert_eq!(
            m.reset(ResetType::On, t0 + D, D, false),
            Ok(ResetOutcome::NoOp)
        );
    }

    #[test]
    fn zero_delay_is_immediate() {
        let (mut m, t0, c) = setup(true);
        m.reset(ResetType::ForceOff, t0, Duration::ZERO, false)
            .unwrap();
        m.advance(t0, &c, None);
        assert_eq!(m.power_state(), PowerState::Off);
    }

    #[test]
    fn once_override_is_consumed_at_next_boot() {
        let (mut m, t0, c) = setup(false);
        m.boot = boot("Once", "Pxe");
        m.reset(ResetType::On, t0, D, false).unwrap();
        let b = m.advance(t0 + D, &c, None);
        assert_eq!(b[0].target, "Pxe");
        assert!(b[0].network_boot());
        assert_eq!(m.boot.enabled, "Disabled");
        assert_eq!(
            m.boot.target, "Pxe",
            "the target is kept, only the override is disabled"
        );
        m.reset(ResetType::ForceRestart, t0 + D, D, false).unwrap();
        assert_eq!(m.power_state(), PowerState::PoweringOff);
        m.advance(t0 + D + D, &c, None);
        assert_eq!(m.power_state(), PowerState::PoweringOn);
        let b = m.advance(t0 + D * 3, &c, None);
        assert_eq!(b[0].target, "None");
        assert_eq!(m.history.len(), 2);
    }

    #[test]
    fn continuous_override_persists() {
        let (mut m, t0, c) = setup(true);
        m.boot = boot("Continuous", "Hdd");
        for i in 0..3u32 {
            m.reset(ResetType::PowerCycle, t0 + D * (2 * i), D, false)
                .unwrap();
            let b = m.advance(t0 + D * (2 * i + 2), &c, None);
            assert_eq!(b[0].target, "Hdd");
        }
        assert_eq!(m.boot.enabled, "Continuous");
    }

    #[test]
    fn restart_of_a_running_system_boots_once_through_both_phases() {
        let (mut m, t0, c) = setup(true);
        m.reset(ResetType::GracefulRestart, t0, D, false).unwrap();
        let boots = m.advance(t0 + D * 5, &c, None);
        assert_eq!(boots.len(), 1);
        assert_eq!(boots[0].time, c.utc(t0 + D * 2));
        assert_eq!(m.power_state(), PowerState::On);
    }

    #[test]
    fn refuse_power_off_keeps_system_on() {
        let (mut m, t0, c) = setup(true);
        for rt in [
            ResetType::ForceOff,
            ResetType::GracefulShutdown,
            ResetType::PushPowerButton,
        ] {
            assert_eq!(m.reset(rt, t0, D, true), Ok(ResetOutcome::Ignored));
            m.advance(t0 + D * 10, &c, None);
            assert_eq!(m.power_state(), PowerState::On);
        }
        // Restarts still work.
        assert_eq!(
            m.reset(ResetType::ForceRestart, t0, D, true),
            Ok(ResetOutcome::Started)
        );
    }

    #[test]
    fn conflicts_and_preemption() {
        let (mut m, t0, c) = setup(true);
        m.reset(ResetType::GracefulShutdown, t0, D, false).unwrap();
        assert!(m.reset(ResetType::On, t0, D, false).is_err());
        assert!(m.reset(ResetType::GracefulRestart, t0, D, false).is_err());
        // A forced power off preempts a graceful shutdown.
        assert_eq!(
            m.reset(ResetType::ForceOff, t0 + D / 2, D / 4, false),
            Ok(ResetOutcome::Started)
        );
        m.advance(t0 + D, &c, None);
        assert_eq!(m.power_state(), PowerState::Off);
        assert!(
            m.reset(ResetType::GracefulRestart, t0 + D, D, false)
                .is_err()
        );
        assert!(m.reset(ResetType::Nmi, t0 + D, D, false).is_err());
        assert_eq!(
            m.reset(ResetType::ForceOff, t0 + D, D, false),
            Ok(ResetOutcome::NoOp)
        );
        // ForceRestart from Off powers on.
        m.reset(ResetType::ForceRestart, t0 + D, D, false).unwrap();
        assert_eq!(m.power_state(), PowerState::PoweringOn);
    }

    #[test]
    fn pending_bios_and_staged_firmware_apply_at_boot() {
        let (mut m, t0, c) = setup(true);
        m.bios_pending
            .insert("BootMode".into(), Value::from("Legacy"));
        m.staged_bios_version = Some("2.0.0".into());
        m.reset(ResetType::ForceRestart, t0, D, false).unwrap();
        m.advance(t0 + D, &c, None);
        assert_eq!(m.power_state(), PowerState::PoweringOn);
        assert!(m.bios_overrides.is_empty(), "not applied before the boot");
        let b = m.advance(t0 + D * 2, &c, None);
        assert_eq!(m.bios_overrides["BootMode"], "Legacy");
        assert!(m.bios_pending.is_empty());
        assert_eq!(m.bios_version.as_deref(), Some("2.0.0"));
        assert_eq!(b[0].bios_version.as_deref(), Some("2.0.0"));
        m.bios_reset_pending = true;
        m.reset(ResetType::PowerCycle, t0 + D * 2, D, false)
            .unwrap();
        m.advance(t0 + D * 4, &c, None);
        assert!(m.bios_overrides.is_empty());
    }

    #[test]
    fn media_is_recorded_for_cd_boots() {
        let (mut m, t0, c) = setup(false);
        m.boot = boot("Once", "Cd");
        m.reset(ResetType::On, t0, D, false).unwrap();
        let b = m.advance(t0 + D, &c, Some("http://x/boot.iso"));
        assert_eq!(b[0].media_image.as_deref(), Some("http://x/boot.iso"));
    }

    #[test]
    fn history_is_bounded() {
        let (mut m, t0, c) = setup(false);
        for i in 0..(HISTORY_LIMIT as u32 + 10) {
            m.reset(ResetType::PowerCycle, t0 + D * (2 * i), D, false)
                .unwrap();
            m.advance(t0 + D * (2 * i + 2), &c, None);
        }
        assert_eq!(m.history.len(), HISTORY_LIMIT);
    }
}
