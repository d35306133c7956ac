//! One simulated BMC at run time: its static description, its state machine behind a mutex, its
//! request counters, its availability (watched by its listener and connections) and its timer.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::boot::{BootEvent, BootHook};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::spec::{IdentityMode, Secret, TemplateSource};
use crate::state::{BmcMachine, Clock, Event};
use crate::template::Template;
use crate::tls::Tls;

/// What every BMC of one simulator shares.
pub(crate) struct Shared {
    pub metrics: Metrics,
    pub hook: Option<Arc<dyn BootHook>>,
    pub boot_server: Option<String>,
    pub shutdown: CancellationToken,
    pub tls: Option<Tls>,
    pub clock: Clock,
}

/// A system of a BMC: one of the template's, or a replica of its first.
#[derive(Clone, Debug)]
pub(crate) struct SystemSlot {
    /// Index into the template's systems.
    pub tpl: usize,
    /// 0 for the template's own systems.
    pub replica: u16,
    pub id: String,
    pub path: String,
}

/// How many distinct request keys a BMC counts before lumping the rest together.
const COUNTER_KEYS: usize = 4096;

/// One simulated BMC.
pub(crate) struct Bmc {
    pub index: usize,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub template: Arc<Template>,
    pub template_source: TemplateSource,
    pub systems: Vec<SystemSlot>,
    pub identity_number: u32,
    pub identity_mode: IdentityMode,
    pub username: String,
    pub password: Secret,
    pub machine: Mutex<BmcMachine>,
    pub counters: Mutex<HashMap<String, u64>>,
    /// `true` while the BMC is reachable.
    pub up: watch::Sender<bool>,
    pub shared: Arc<Shared>,
    pub acceptor: OnceLock<tokio_rustls::TlsAcceptor>,
    timer: Mutex<Option<Instant>>,
}

impl Bmc {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        ip: Ipv4Addr,
        port: u16,
        template: Arc<Template>,
        template_source: TemplateSource,
        systems: Vec<SystemSlot>,
        identity_number: u32,
        identity_mode: IdentityMode,
        username: String,
        password: Secret,
        machine: BmcMachine,
        shared: Arc<Shared>,
    ) -> Self {
        Bmc {
            index,
            ip,
            port,
            template,
            template_source,
            systems,
            identity_number,
            identity_mode,
            username,
            password,
            machine: Mutex::new(machine),
            counters: Mutex::new(HashMap::new()),
            up: watch::Sender::new(true),
            shared,
            acceptor: OnceLock::new(),
            timer: Mutex::new(None),
        }
    }

    /// The state machine, locked (a poisoned lock is taken over: state stays usable).
    pub(crate) fn lock(&self) -> MutexGuard<'_, BmcMachine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity of resources of a system replica.
    pub(crate) fn identity(&self, replica: u16) -> Identity {
        let keep = replica == 0
            && match self.identity_mode {
                IdentityMode::KeepAll => true,
                IdentityMode::KeepFirst => self.identity_number == 0,
                IdentityMode::DeriveAll => false,
            };
        Identity {
            number: self.identity_number,
            replica,
            keep,
        }
    }

    /// Counts a request.
    pub(crate) fn count(&self, method: &http::Method, path: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{method} {path}");
        if c.len() >= COUNTER_KEYS && !c.contains_key(&key) {
            *c.entry(format!("{method} (other)")).or_insert(0) += 1;
        } else {
            *c.entry(key).or_insert(0) += 1;
        }
    }

    /// Advances the state machine to now, publishes availability, fires boot hooks and arms the
    /// timer for the next deadline.
    pub(crate) fn tick(self: &Arc<Self>) {
        let now = Instant::now();
        let (events, up, deadline) = {
            let mut m = self.lock();
            let events = m.advance(now);
            (events, !m.is_down(now), m.next_deadline(now))
        };
        self.up.send_if_modified(|cur| {
            let changed = *cur != up;
            *cur = up;
            changed
        });
        for e in events {
            self.fire(e);
        }
        self.schedule(deadline);
    }

    fn fire(&self, event: Event) {
        match event {
            Event::Booted { system, record } => {
                self.shared.metrics.boots.inc();
                tracing::debug!(bmc = self.index, system, target = %record.target, "system booted");
                if let Some(hook) = &self.shared.hook {
                    let slot = &self.systems[system];
                    let (uuid, macs) = crate::redfish::system_identity(self, system);
                    hook.on_boot(BootEvent {
                        bmc_index: self.index,
                        bmc_address: self.ip,
                        system_id: slot.id.clone(),
                        system_uuid: uuid,
                        macs,
                        record,
                        boot_server: self.shared.boot_server.clone(),
                    });
                }
            }
        }
    }

    /// Arms a timer that ticks at `at` unless an earlier one is armed.
    fn schedule(self: &Arc<Self>, at: Option<Instant>) {
        let Some(at) = at else { return };
        {
            let mut t = self.timer.lock().unwrap_or_else(|e| e.into_inner());
            if t.is_some_and(|cur| cur <= at) {
                return;
            }
            *t = Some(at);
        }
        let me = Arc::clone(self);
        let shutdown = self.shared.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = shutdown.cancelled() => return,
            }
            {
                let mut t = me.timer.lock().unwrap_or_else(|e| e.into_inner());
                if *t == Some(at) {
                    *t = None;
                }
            }
            me.tick();
        });
    }
}
