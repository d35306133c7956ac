//! The simulated hardware and BMC state, as pure state machines over explicit time.
//!
//! Nothing here does I/O or reads the clock: the HTTP layer passes `now`, calls
//! [`BmcMachine::advance`] before looking at state, and arms a timer for
//! [`BmcMachine::next_deadline`] so that effects with a real-time side (the BMC going offline,
//! boot hooks) happen on time even when nobody asks.

pub(crate) mod accounts;
pub(crate) mod bios;
pub(crate) mod power;
pub(crate) mod task;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::knobs::{Knobs, Outage, OutageMode};
use accounts::Accounts;
use power::{BootRecord, SystemMachine};
use task::{Component, Task};

/// Maps monotonic instants to wall-clock times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    base: Instant,
    base_utc: DateTime<Utc>,
}

impl Clock {
    /// A clock on which `base` is `base_utc`.
    pub(crate) fn new(base: Instant, base_utc: DateTime<Utc>) -> Self {
        Clock { base, base_utc }
    }

    /// The wall-clock time of an instant.
    pub(crate) fn utc(&self, at: Instant) -> DateTime<Utc> {
        match at.checked_duration_since(self.base) {
            Some(d) => self.base_utc + chrono::Duration::from_std(d).unwrap_or_default(),
            None => self.base_utc - chrono::Duration::from_std(self.base - at).unwrap_or_default(),
        }
    }
}

/// Firmware state of a manager.
#[derive(Clone, Debug, Default)]
pub(crate) struct ManagerMachine {
    /// Running firmware version when it differs from the template's.
    pub firmware_version: Option<String>,
    /// Installed by an update, active after the next BMC restart.
    pub staged: Option<String>,
    pub last_reset: Option<DateTime<Utc>>,
    /// Attribute values changed from the template's.
    pub attributes: BTreeMap<String, Value>,
    /// Attribute values written that take effect at the next BMC restart.
    pub attributes_pending: BTreeMap<String, Value>,
}

/// State of a virtual media slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MediaState {
    pub image: Option<String>,
    pub inserted: bool,
    pub write_protected: bool,
}

/// An event subscription.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub id: String,
    pub body: Map<String, Value>,
}

/// A window in which the BMC is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Down {
    pub from: Instant,
    pub until: Instant,
    /// A BMC restart (sessions lost, staged firmware activated), not just a network outage.
    pub restart: bool,
}

/// Something that happened while advancing, for the I/O layer to act on.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// A system powered on.
    Booted { system: usize, record: BootRecord },
}

/// All state of one BMC.
pub(crate) struct BmcMachine {
    pub systems: Vec<SystemMachine>,
    pub managers: Vec<ManagerMachine>,
    pub media: Vec<MediaState>,
    pub accounts: Accounts,
    pub tasks: Vec<Task>,
    pub next_task: u32,
    pub subscriptions: Vec<Subscription>,
    pub next_subscription: u32,
    /// Merged PATCHes of plain properties (IndicatorLED, AssetTag, ...), by resource path.
    pub patches: HashMap<String, Value>,
    pub knobs: Knobs,
    pub down: Option<Down>,
    /// `503` window of an `unavailable` outage.
    pub unavailable: Option<(Instant, Instant)>,
    pub session_timeout: Duration,
    pub clock: Clock,
    /// BMC restarts begun (Manager.Reset, firmware activation): what took effect, unlike the
    /// request counters, which also count a request its client dropped before it was handled.
    pub restarts: u64,
}

/// How many finished tasks a BMC keeps.
const TASK_LIMIT: usize = 64;

impl BmcMachine {
    /// Applies everything that happened up to `now`.
    pub(crate) fn advance(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let downtime = self.knobs.bmc_downtime();
        let self_restart = !self.knobs.bmc_activation_needs_reset;
        let mut restarts = Vec::new();
        for t in self
            .tasks
            .iter_mut()
            .filter(|t| !t.finished && t.done_at() <= now)
        {
            t.finished = true;
            if t.failure.is_some() {
                continue;
            }
            for c in &t.components {
                match *c {
                    Component::Bios(i) => {
                        if let Some(s) = self.systems.get_mut(i) {
                            s.staged_bios_version = Some(t.version.clone());
                        }
                    }
                    Component::Bmc(m) => {
                        if let Some(mg) = self.managers.get_mut(m) {
                            mg.staged = Some(t.version.clone());
                            if self_restart {
                                restarts.push(t.done_at());
                            }
                        }
                    }
                }
            }
        }
        for at in restarts {
            self.begin_restart(at, downtime);
        }
        let media = self
            .media
            .iter()
            .find(|m| m.inserted)
            .and_then(|m| m.image.clone());
        for (i, s) in self.systems.iter_mut().enumerate() {
            for record in s.advance(now, &self.clock, media.as_deref()) {
                events.push(Event::Booted { system: i, record });
            }
        }
        if let Some(d) = self.down
            && d.until <= now
        {
            if d.restart {
                for m in &mut self.managers {
                    if let Some(v) = m.staged.take() {
                        m.firmware_version = Some(v);
                    }
                    let pending = std::mem::take(&mut m.attributes_pending);
                    m.attributes.extend(pending);
                    m.last_reset = Some(self.clock.utc(d.until));
                }
            }
            self.down = None;
        }
        if self.unavailable.is_some_and(|(_, until)| until <= now) {
            self.unavailable = None;
        }
        events
    }

    /// The next instant at which [`advance`](Self::advance) has something to do.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let tasks = self.tasks.iter().filter(|t| !t.finished).map(Task::done_at);
        let systems = self.systems.iter().filter_map(SystemMachine::deadline);
        let down = self.down.iter().flat_map(|d| [d.from, d.until]);
        let unavailable = self.unavailable.iter().flat_map(|(a, b)| [*a, *b]);
        tasks
            .chain(systems)
            .chain(down)
            .chain(unavailable)
            .filter(|t| *t > now)
            .min()
            .or_else(|| {
                // Something already due that advance has not applied yet.
                let due = self.tasks.iter().any(|t| !t.finished && t.done_at() <= now)
                    || self
                        .systems
                        .iter()
                        .any(|s| s.deadline().is_some_and(|d| d <= now));
                due.then_some(now)
            })
    }

    /// Whether the BMC is unreachable at `now`.
    pub(crate) fn is_down(&self, now: Instant) -> bool {
        self.down.is_some_and(|d| d.from <= now && now < d.until)
    }

    /// Time left in a `503` outage window at `now`.
    pub(crate) fn unavailable_for(&self, now: Instant) -> Option<Duration> {
        self.unavailable
            .filter(|(from, until)| *from <= now && now < *until)
            .map(|(_, until)| until - now)
    }

    /// Starts a BMC restart at `at`: unreachable for `downtime`, sessions lost.
    pub(crate) fn begin_restart(&mut self, at: Instant, downtime: Duration) {
        // A restart un-wedges the Redfish service.
        self.knobs.wedged = false;
        self.restarts += 1;
        let until = at + downtime;
        self.down = Some(match self.down {
            Some(d) if d.until > at => Down {
                from: d.from.min(at),
                until: d.until.max(until),
                restart: true,
            },
            _ => Down {
                from: at,
                until,
                restart: true,
            },
        });
        self.accounts.clear_sessions();
    }

    /// Schedules (or with `None` cancels) an outage window starting `start_after_ms` after `now`.
    pub(crate) fn schedule_outage(&mut self, outage: Option<&Outage>, now: Instant) {
        match outage {
            None => {
                self.unavailable = None;
                if self.down.is_some_and(|d| !d.restart) {
                    self.down = None;
                }
            }
            Some(o) => {
                let from = now + Duration::from_millis(o.start_after_ms);
                let until = from + Duration::from_millis(o.duration_ms);
                match o.mode {
                    OutageMode::Unavailable => self.unavailable = Some((from, until)),
                    OutageMode::Refuse => {
                        if !self.down.is_some_and(|d| d.restart && d.until > now) {
                            self.down = Some(Down {
                                from,
                                until,
                                restart: false,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Replaces the knobs; a changed `outage` is (re)scheduled from `now`.
    pub(crate) fn set_knobs(&mut self, knobs: Knobs, now: Instant) {
        if knobs.outage != self.knobs.outage {
            self.schedule_outage(knobs.outage.as_ref(), now);
        }
        self.knobs = knobs;
    }

    /// Starts a firmware update task; returns its id.
    pub(crate) fn start_update(
        &mut self,
        now: Instant,
        image: String,
        version: String,
        components: Vec<Component>,
        failure: Option<String>,
    ) -> u32 {
        self.next_task += 1;
        let id = self.next_task;
        let failure = failure.or_else(|| {
            self.knobs
                .task_fail
                .then(|| "The update failed (simulated by the task_fail knob).".to_string())
        });
        self.tasks.push(Task {
            id,
            created: now,
            start_time: self.clock.utc(now),
            duration: self.knobs.task_duration(),
            failure,
            image,
            version,
            components,
            finished: false,
        });
        if self.tasks.len() > TASK_LIMIT
            && let Some(pos) = self.tasks.iter().position(|t| t.finished)
        {
            self.tasks.remove(pos);
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use power::BootSettings;

    fn machine(t0: Instant) -> BmcMachine {
        BmcMachine {
            systems: vec![SystemMachine::new(
                true,
                BootSettings {
                    enabled: "Disabled".into(),
                    target: "None".into(),
                    mode: None,
                    order: vec![],
                },
            )],
            managers: vec![ManagerMachine::default()],
            media: vec![],
            accounts: Accounts::default(),
            tasks: vec![],
            next_task: 0,
            subscriptions: vec![],
            next_subscription: 0,
            patches: HashMap::new(),
            knobs: Knobs {
                task_duration_ms: 1000,
                bmc_reset_downtime_ms: 500,
                ..Knobs::default()
            },
            down: None,
            unavailable: None,
            session_timeout: Duration::from_secs(60),
            restarts: 0,
            clock: Clock::new(t0, Utc::now()),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bmc_update_restarts_the_bmc_then_activates() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        m.start_update(
            t0,
            "img".into(),
            "2.0".into(),
            vec![Component::Bmc(0)],
            None,
        );
        assert_eq!(m.next_deadline(t0), Some(t0 + 1000 * MS));
        m.advance(t0 + 999 * MS);
        assert!(!m.is_down(t0 + 999 * MS));
        m.advance(t0 + 1000 * MS);
        assert!(m.is_down(t0 + 1000 * MS));
        assert_eq!(m.managers[0].staged.as_deref(), Some("2.0"));
        assert_eq!(
            m.managers[0].firmware_version, None,
            "not active while restarting"
        );
        assert_eq!(m.next_deadline(t0 + 1000 * MS), Some(t0 + 1500 * MS));
        m.advance(t0 + 1500 * MS);
        assert!(!m.is_down(t0 + 1500 * MS));
        assert_eq!(m.managers[0].firmware_version.as_deref(), Some("2.0"));
    }

    #[test]
    fn a_bmc_needing_a_reset_stages_until_the_manager_reset() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        m.knobs.bmc_activation_needs_reset = true;
        m.start_update(
            t0,
            "img".into(),
            "2.0".into(),
            vec![Component::Bmc(0)],
            None,
        );
        m.advance(t0 + 5000 * MS);
        assert!(!m.is_down(t0 + 5000 * MS), "no restart of its own");
        assert_eq!(m.managers[0].staged.as_deref(), Some("2.0"));
        assert_eq!(m.managers[0].firmware_version, None);
        m.begin_restart(t0 + 5000 * MS, 500 * MS);
        m.advance(t0 + 5500 * MS);
        assert_eq!(m.managers[0].firmware_version.as_deref(), Some("2.0"));
    }

    #[test]
    fn bios_update_is_staged_until_reboot() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        m.start_update(
            t0,
            "img".into(),
            "3.1".into(),
            vec![Component::Bios(0)],
            None,
        );
        m.advance(t0 + 2000 * MS);
        assert!(
            !m.is_down(t0 + 2000 * MS),
            "a BIOS update does not restart the BMC"
        );
        assert_eq!(m.systems[0].staged_bios_version.as_deref(), Some("3.1"));
        m.systems[0]
            .reset(
                power::ResetType::ForceRestart,
                t0 + 2000 * MS,
                Duration::ZERO,
                false,
            )
            .unwrap();
        let ev = m.advance(t0 + 2000 * MS);
        assert!(matches!(ev[0], Event::Booted { system: 0, .. }));
        assert_eq!(m.systems[0].bios_version.as_deref(), Some("3.1"));
    }

    #[test]
    fn failed_task_changes_nothing() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        m.knobs.task_fail = true;
        let id = m.start_update(
            t0,
            "img".into(),
            "2.0".into(),
            vec![Component::Bmc(0)],
            None,
        );
        m.advance(t0 + 5000 * MS);
        let t = m.tasks.iter().find(|t| t.id == id).unwrap();
        assert_eq!(t.state(t0 + 5000 * MS), task::TaskState::Exception);
        assert!(m.managers[0].staged.is_none());
        assert!(m.down.is_none());
    }

    #[test]
    fn outages_follow_knob_changes() {
        let t0 = Instant::now();
        let mut m = machine(t0);
        let outage = Outage {
            mode: OutageMode::Refuse,
            start_after_ms: 100,
            duration_ms: 200,
        };
        m.set_knobs(
            Knobs {
                outage: Some(outage.clone()),
                ..m.knobs.clone()
            },
            t0,
        );
        assert!(!m.is_down(t0));
        assert!(m.is_down(t0 + 150 * MS));
        // Changing another knob does not restart the window.
        m.set_knobs(
            Knobs {
                latency_ms: 5,
                ..m.knobs.clone()
            },
            t0 + 250 * MS,
        );
        assert!(m.is_down(t0 + 250 * MS));
        m.advance(t0 + 300 * MS);
        assert!(!m.is_down(t0 + 300 * MS));
        m.set_knobs(
            Knobs {
                outage: Some(Outage {
                    mode: OutageMode::Unavailable,
                    start_after_ms: 0,
                    duration_ms: 100,
                }),
                ..m.knobs.clone()
            },
            t0 + 400 * MS,
        );
        assert_eq!(m.unavailable_for(t0 + 450 * MS), Some(50 * MS));
        m.set_knobs(
            Knobs {
                outage: None,
                ..m.knobs.clone()
            },
            t0 + 460 * MS,
        );
        assert_eq!(m.unavailable_for(t0 + 470 * MS), None);
    }

    #[test]
    fn clock_maps_instants() {
        let t0 = Instant::now();
        let base = Utc::now();
        let c = Clock::new(t0, base);
        assert_eq!(
            c.utc(t0 + Duration::from_secs(2)),
            base + chrono::Duration::seconds(2)
        );
    }
}
