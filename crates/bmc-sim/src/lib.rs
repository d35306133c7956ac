//! `metal-bmc-sim`: one process serving a fleet of simulated Redfish BMCs.
//!
//! Each BMC listens on its own loopback address (`127.0.1.1`, `127.0.1.2`, ...; all on one port)
//! and serves a Redfish tree built from a template — the built-in generic rack server or any DMTF
//! mockup directory (e.g. captured Dell/Supermicro trees) — with its own identity (see
//! [`identity`]), real state (power transitions, boot overrides consumed at boot, pending BIOS
//! settings validated against the attribute registry, firmware updates through tasks, virtual
//! media, accounts, sessions, event subscriptions) and injectable faults ([`Knobs`]).
//!
//! Start it in-process from tests:
//!
//! ```no_run
//! # async fn demo() -> Result<(), metal_bmc_sim::SimError> {
//! use metal_bmc_sim::{RackSpec, Simulator, Knobs};
//! let mut spec = RackSpec::with_count(3);
//! spec.base_address = "127.10.0.1".parse().unwrap(); // pick a range no other test uses
//! spec.port = 0;                                       // one free port shared by all BMCs
//! let sim = Simulator::start(spec).await?;
//! let bmc = &sim.bmcs()[0];
//! println!("{} {} (CA: {} bytes)", bmc.address, bmc.username, bmc.ca_pem.as_deref().unwrap_or("").len());
//! sim.set_knobs(1, Knobs { latency_ms: 200, ..Knobs::default() })?;
//! let state = sim.system_state(0, "1")?;
//! println!("{:?} booted {} times", state.power_state, state.boot_history.len());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Address allocation: the spec names the first address and the port. Tests running in parallel
//! (threads of one test binary, or several binaries) must use distinct address ranges; with
//! port 0 the simulator binds the first BMC on a free port and reuses that port number on every
//! other address, retrying with a new port if one of them has it taken.

mod admin;
mod bmc;
pub mod boot;
mod error;
mod fetch;
pub mod firmware;
pub mod identity;
mod json;
mod knobs;
mod metrics;
mod redfish;
mod server;
mod spec;
mod state;
mod template;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use boot::{BootEvent, BootHook, Fetch, NetbootRecord};
pub use error::{Result, SimError};
pub use firmware::NetbootFirmware;
pub use knobs::{Knobs, MAX_MS, Outage, OutageMode};
pub use spec::{GroupSpec, IdentityMode, RackSpec, Secret, TemplateSource, bmc_address};
pub use state::power::{BootRecord, BootSettings, PowerState};
pub use state::task::TaskState;

use bmc::{Bmc, Shared, SystemSlot};
use state::accounts::{Account, Accounts};
use state::power::SystemMachine;
use state::{BmcMachine, Clock, ManagerMachine, MediaState};
use template::Template;

/// Starts simulators.
pub struct Simulator;

/// A system behind a BMC, as its Redfish service presents it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// The system's Id (`1`, `System.Embedded.1`, ...).
    pub id: String,
    /// Its resource path (`/redfish/v1/Systems/1`).
    pub path: String,
    /// Its UUID as served.
    pub uuid: Option<String>,
    /// Its serial number as served.
    pub serial: Option<String>,
    /// MAC addresses of its EthernetInterfaces, as served.
    pub macs: Vec<String>,
}

/// One simulated BMC, with what a client needs to reach it.
#[derive(Clone)]
pub struct BmcInfo {
    /// Position in the rack.
    pub index: usize,
    /// Base URL, e.g. `https://127.0.1.1:8443`.
    pub address: String,
    /// Its IP address.
    pub ip: Ipv4Addr,
    /// Its TCP port.
    pub port: u16,
    /// Administrator user name.
    pub username: String,
    /// Administrator password (as configured or generated at start; a PATCH may change it).
    pub password: String,
    /// The CA certificate (PEM) that signed its TLS certificate; `None` for plain HTTP.
    pub ca_pem: Option<String>,
    /// The template it was built from.
    pub template: String,
    /// Its systems.
    pub systems: Vec<SystemInfo>,
}

impl fmt::Debug for BmcInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BmcInfo")
            .field("index", &self.index)
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("template", &self.template)
            .field("systems", &self.systems)
            .finish_non_exhaustive()
    }
}

/// A virtual media slot's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Resource path of the slot.
    pub path: String,
    /// Inserted image URL.
    pub image: Option<String>,
    /// Whether media is inserted.
    pub inserted: bool,
}

/// The simulated state of one system, for assertions and the admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemState {
    /// System id.
    pub id: String,
    /// Redfish `PowerState` now.
    pub power_state: PowerState,
    /// Boot override settings.
    pub boot: BootSettings,
    /// BIOS attributes waiting for the next boot.
    pub bios_pending: BTreeMap<String, Value>,
    /// BIOS attributes changed from the template's values (applied settings).
    pub bios_changed: BTreeMap<String, Value>,
    /// BIOS version running.
    pub bios_version: Option<String>,
    /// BIOS version installed, active from the next boot.
    pub staged_bios_version: Option<String>,
    /// Firmware version of the BMC managing the system.
    pub bmc_version: Option<String>,
    /// BMC firmware installed, active after the next BMC restart.
    pub staged_bmc_version: Option<String>,
    /// BMC attributes changed from the template's (in effect).
    pub bmc_attributes: std::collections::BTreeMap<String, serde_json::Value>,
    /// BMC attributes written, in effect after the next BMC restart.
    pub bmc_attributes_pending: std::collections::BTreeMap<String, serde_json::Value>,
    /// The BMC's virtual media.
    pub virtual_media: Vec<MediaInfo>,
    /// Every power-on, oldest first (at most 256).
    pub boot_history: Vec<BootRecord>,
    /// NMIs received.
    pub nmi_count: u32,
    /// What the boot hook recorded for network boots (see [`NetbootFirmware`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub netboot: Vec<NetbootRecord>,
}

/// Requests a BMC received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// All requests.
    pub total: u64,
    /// By `"METHOD /path"`.
    pub by_request: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// Requests with this method and path.
    pub fn get(&self, method: &str, path: &str) -> u64 {
        self.by_request
            .get(&format!("{method} {path}"))
            .copied()
            .unwrap_or(0)
    }

    /// Requests with this method.
    pub fn by_method(&self, method: &str) -> u64 {
        let prefix = format!("{method} ");
        self.by_request
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

pub(crate) struct Inner {
    pub bmcs: Vec<Arc<Bmc>>,
    pub shared: Arc<Shared>,
    pub ca_path: Option<PathBuf>,
    pub credentials_path: Option<PathBuf>,
    pub scheme: &'static str,
}

/// A running simulator. Dropping it stops it (without waiting); prefer [`SimHandle::shutdown`].
pub struct SimHandle {
    inner: Arc<Inner>,
    admin_addr: Option<SocketAddr>,
    port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("bmcs", &self.inner.bmcs.len())
            .field("port", &self.port)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.inner.shared.shutdown.cancel();
    }
}

fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// The id of replica `r` of a system: its trailing number counted up (`1` → `2`), else `-N`.
fn replica_id(base: &str, r: u16, taken: &HashSet<String>) -> String {
    let digits = base.chars().rev().take_while(char::is_ascii_digit).count();
    let mut id = if (1..=9).contains(&digits) {
        let (pre, num) = base.split_at(base.len() - digits);
        let n: u64 = num.parse().unwrap_or(0) + u64::from(r);
        format!("{pre}{n}")
    } else {
        format!("{base}-{}", u32::from(r) + 1)
    };
    while taken.contains(&id) {
        id.push('x');
    }
    id
}

/// Raises the soft limit of open files to the hard limit (10,000 BMCs need as many sockets).
fn raise_nofile_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

impl Simulator {
    /// Loads the templates, binds every BMC's address and starts serving.
    pub async fn start(spec: RackSpec) -> Result<SimHandle> {
        spec.validate()?;
        raise_nofile_limit();
        let sources: Vec<TemplateSource> = spec.groups.iter().map(|g| g.template.clone()).collect();
        let templates = tokio::task::spawn_blocking(move || {
            sources
                .iter()
                .map(Template::get)
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| SimError::InvalidSpec(format!("template loader failed: {e}")))??;

        let tls = if spec.tls {
            Some(tls::Tls::new()?)
        } else {
            None
        };
        let ca_pem = tls.as_ref().map(|t| t.ca_pem().to_string());
        if let (Some(path), Some(pem)) = (&spec.ca_path, &ca_pem) {
            write_file(path, pem.as_bytes(), false)?;
        }

        let count = spec.count();
        let ips: Vec<Ipv4Addr> = (0..count)
            .map(|i| {
                bmc_address(spec.base_address, i)
                    .ok_or_else(|| SimError::InvalidSpec("address range".into()))
            })
            .collect::<Result<_>>()?;
        let (port, std_listeners) = server::bind_all(&ips, spec.port)?;

        let now = Instant::now();
        let shared = Arc::new(Shared {
            metrics: metrics::Metrics::new(),
            hook: spec.boot_hook.clone(),
            boot_server: spec.boot_server.clone(),
            shutdown: CancellationToken::new(),
            tls,
            clock: Clock::new(now, chrono::Utc::now()),
        });
        shared.metrics.bmcs.set(count as i64);

        let mut bmcs = Vec::with_capacity(count);
        let mut index = 0usize;
        for (group, template) in spec.groups.iter().zip(&templates) {
            let slots = system_slots(template, group.systems)?;
            for _ in 0..group.count {
                let password = group
                    .password
                    .clone()
                    .unwrap_or_else(|| Secret(random_password()));
                let machine = new_machine(template, &slots, group, &password, shared.clock, now);
                bmcs.push(Arc::new(Bmc::new(
                    index,
                    ips[index],
                    port,
                    Arc::clone(template),
                    group.template.clone(),
                    slots.clone(),
                    spec.identity_seed.wrapping_add(index as u32),
                    spec.identity,
                    group.username.clone(),
                    password,
                    machine,
                    Arc::clone(&shared),
                )));
                index += 1;
            }
        }

        let inner = Arc::new(Inner {
            bmcs,
            shared: Arc::clone(&shared),
            ca_path: spec.ca_path.clone(),
            credentials_path: spec.credentials_path.clone(),
            scheme: if spec.tls { "https" } else { "http" },
        });
        let mut tasks = Vec::with_capacity(count + 1);
        for (bmc, l) in inner.bmcs.iter().zip(std_listeners) {
            let l = tokio::net::TcpListener::from_std(l).map_err(|source| SimError::Bind {
                addr: SocketAddr::from((bmc.ip, port)),
                source,
            })?;
            tasks.push(tokio::spawn(server::run_listener(Arc::clone(bmc), l)));
            bmc.tick();
        }
        let admin_addr = match spec.admin_address {
            Some(addr) => {
                let (bound, task) = admin::start(addr, Arc::clone(&inner)).await?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };
        let handle = SimHandle {
            inner,
            admin_addr,
            port,
            tasks,
        };
        if let Some(path) = &spec.credentials_path {
            let text = handle.credentials_yaml();
            write_file(path, text.as_bytes(), true)?;
        }
        tracing::info!(bmcs = count, port, first = %ips[0], tls = spec.tls, "simulator started");
        Ok(handle)
    }
}

fn system_slots(template: &Template, systems: Option<usize>) -> Result<Vec<SystemSlot>> {
    let own = template.systems.len();
    let want = systems.unwrap_or(own);
    if want < own {
        return Err(SimError::InvalidSpec(format!(
            "template {} has {own} systems; `systems` can add copies but not remove ({want} asked)",
            template.name
        )));
    }
    let mut slots: Vec<SystemSlot> = template
        .systems
        .iter()
        .enumerate()
        .map(|(i, s)| SystemSlot {
            tpl: i,
            replica: 0,
            id: s.id.clone(),
            path: s.path.clone(),
        })
        .collect();
    let mut taken: HashSet<String> = slots.iter().map(|s| s.id.clone()).collect();
    let first = &template.systems[0];
    for r in 1..=(want - own) {
        let r = u16::try_from(r)
            .map_err(|_| SimError::InvalidSpec("too many systems per BMC".into()))?;
        let id = replica_id(&first.id, r, &taken);
        taken.insert(id.clone());
        slots.push(SystemSlot {
            tpl: 0,
            replica: r,
            path: format!("{}/{id}", template.paths.systems),
            id,
        });
    }
    Ok(slots)
}

fn new_machine(
    template: &Template,
    slots: &[SystemSlot],
    group: &GroupSpec,
    password: &Secret,
    clock: Clock,
    now: Instant,
) -> BmcMachine {
    let systems = slots
        .iter()
        .map(|slot| {
            let t = &template.systems[slot.tpl];
            let mut s = SystemMachine::new(
                t.power_on,
                state::power::BootSettings {
                    enabled: t.boot_enabled.clone(),
                    target: t.boot_target.clone(),
                    mode: t.boot_mode.clone(),
                    order: t.boot_order.clone(),
                },
            );
            s.template_bios_version = t.bios_version.clone();
            s.bios_pending = t.bios_pending.iter().cloned().collect();
            s
        })
        .collect();
    let mut list: Vec<Account> = template
        .accounts
        .iter()
        .map(|a| Account {
            id: a.id.clone(),
            username: a.username.clone(),
            password: None,
            role: a.role.clone(),
            enabled: a.enabled,
            locked: false,
        })
        .collect();
    match list.iter_mut().find(|a| a.username == group.username) {
        Some(a) => {
            a.password = Some(password.expose().to_string());
            a.enabled = true;
            a.role = "Administrator".into();
        }
        None => {
            let id = Accounts::new(list.clone()).next_id();
            list.push(Account {
                id,
                username: group.username.clone(),
                password: Some(password.expose().to_string()),
                role: "Administrator".into(),
                enabled: true,
                locked: false,
            });
        }
    }
    let mut m = BmcMachine {
        systems,
        managers: template
            .managers
            .iter()
            .map(|_| ManagerMachine::default())
            .collect(),
        media: template
            .media
            .iter()
            .map(|md| MediaState {
                image: md.image.clone(),
                inserted: md.inserted,
                write_protected: md.write_protected,
            })
            .collect(),
        accounts: Accounts::new(list),
        tasks: Vec::new(),
        next_task: 0,
        subscriptions: Vec::new(),
        next_subscription: 0,
        patches: Default::default(),
        knobs: Knobs::default(),
        down: None,
        unavailable: None,
        session_timeout: std::time::Duration::from_secs(template.session_timeout_s),
        restarts: 0,
        clock,
    };
    m.set_knobs(group.knobs.clone(), now);
    m
}

fn write_file(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let err = |source| SimError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, data).map_err(err)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    let _ = private;
    Ok(())
}

impl SimHandle {
    fn get(&self, index: usize) -> Result<&Arc<Bmc>> {
        self.inner.bmcs.get(index).ok_or(SimError::NoSuchBmc(index))
    }

    /// Number of BMCs.
    pub fn len(&self) -> usize {
        self.inner.bmcs.len()
    }

    /// Whether the rack is empty (never true for a started simulator).
    pub fn is_empty(&self) -> bool {
        self.inner.bmcs.is_empty()
    }

    /// The port every BMC listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Address of the admin API, if started.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The CA certificate (PEM), when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.inner.shared.tls.as_ref().map(|t| t.ca_pem())
    }

    /// Where the CA certificate was written.
    pub fn ca_path(&self) -> Option<&Path> {
        self.inner.ca_path.as_deref()
    }

    /// Where the credentials file was written.
    pub fn credentials_path(&self) -> Option<&Path> {
        self.inner.credentials_path.as_deref()
    }

    /// Every BMC with its address and credentials.
    pub fn bmcs(&self) -> Vec<BmcInfo> {
        self.inner.bmcs.iter().map(|b| self.info(b)).collect()
    }

    /// One BMC.
    pub fn bmc(&self, index: usize) -> Result<BmcInfo> {
        Ok(self.info(self.get(index)?))
    }

    fn info(&self, b: &Bmc) -> BmcInfo {
        BmcInfo {
            index: b.index,
            address: format!("{}://{}:{}", self.inner.scheme, b.ip, b.port),
            ip: b.ip,
            port: b.port,
            username: b.username.clone(),
            password: b.password.expose().to_string(),
            ca_pem: self.ca_pem().map(String::from),
            template: b.template_source.to_string(),
            systems: system_infos(b),
        }
    }

    /// The knobs of a BMC.
    pub fn knobs(&self, index: usize) -> Result<Knobs> {
        Ok(self.get(index)?.lock().knobs.clone())
    }

    /// Replaces the knobs of a BMC (a changed `outage` starts now).
    pub fn set_knobs(&self, index: usize, knobs: Knobs) -> Result<()> {
        set_knobs(self.get(index)?, knobs)
    }

    /// Replaces the knobs of every BMC.
    pub fn set_all_knobs(&self, knobs: Knobs) -> Result<()> {
        knobs.validate()?;
        for b in &self.inner.bmcs {
            set_knobs(b, knobs.clone())?;
        }
        Ok(())
    }

    /// Starts an outage window on a BMC now (even if the same outage was set before).
    pub fn outage(&self, index: usize, outage: Outage) -> Result<()> {
        outage.validate()?;
        start_outage(self.get(index)?, outage);
        Ok(())
    }

    /// The state of one system of a BMC.
    pub fn system_state(&self, index: usize, system_id: &str) -> Result<SystemState> {
        let b = self.get(index)?;
        system_states(b)
            .into_iter()
            .find(|s| s.id == system_id)
            .ok_or_else(|| SimError::NoSuchSystem {
                index,
                system: system_id.into(),
            })
    }

    /// The state of every system of a BMC.
    pub fn system_states(&self, index: usize) -> Result<Vec<SystemState>> {
        Ok(system_states(self.get(index)?))
    }

    /// Requests a BMC has received.
    pub fn request_counts(&self, index: usize) -> Result<RequestCounts> {
        Ok(request_counts(self.get(index)?))
    }

    /// How many restarts a BMC has begun (each Manager.Reset that took effect).
    pub fn restarts(&self, index: usize) -> Result<u64> {
        let b = self.get(index)?;
        b.tick();
        Ok(b.lock().restarts)
    }

    /// Forgets the request counts of a BMC.
    pub fn reset_request_counts(&self, index: usize) -> Result<()> {
        self.get(index)?
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// Whether a BMC is reachable now.
    pub fn is_up(&self, index: usize) -> Result<bool> {
        Ok(*self.get(index)?.up.borrow())
    }

    /// The Prometheus metrics text (as served on the admin API's `/metrics`).
    pub fn metrics_text(&self) -> String {
        admin::metrics_text(&self.inner)
    }

    /// The credentials of every BMC as YAML (what the credentials file holds).
    pub fn credentials_yaml(&self) -> String {
        #[derive(Serialize)]
        struct Entry<'a> {
            index: usize,
            address: &'a str,
            username: &'a str,
            password: &'a str,
        }
        let infos = self.bmcs();
        let entries: Vec<Entry<'_>> = infos
            .iter()
            .map(|b| Entry {
                index: b.index,
                address: &b.address,
                username: &b.username,
                password: &b.password,
            })
            .collect();
        serde_yaml::to_string(&entries).unwrap_or_default()
    }

    /// Stops every BMC and the admin API and waits until their sockets are closed.
    pub async fn shutdown(mut self) {
        self.inner.shared.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

pub(crate) fn system_infos(b: &Bmc) -> Vec<SystemInfo> {
    (0..b.systems.len())
        .map(|i| {
            let (uuid, serial, macs) = redfish::system_facts(b, i);
            SystemInfo {
                id: b.systems[i].id.clone(),
                path: b.systems[i].path.clone(),
                uuid,
                serial,
                macs,
            }
        })
        .collect()
}

pub(crate) fn set_knobs(b: &Arc<Bmc>, knobs: Knobs) -> Result<()> {
    knobs.validate()?;
    b.lock().set_knobs(knobs, Instant::now());
    b.tick();
    Ok(())
}

pub(crate) fn start_outage(b: &Arc<Bmc>, outage: Outage) {
    {
        let mut m = b.lock();
        m.schedule_outage(Some(&outage), Instant::now());
        m.knobs.outage = Some(outage);
    }
    b.tick();
}

pub(crate) fn request_counts(b: &Bmc) -> RequestCounts {
    let c = b.counters.lock().unwrap_or_else(|e| e.into_inner());
    RequestCounts {
        total: c.values().sum(),
        by_request: c.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    }
}

pub(crate) fn system_states(b: &Arc<Bmc>) -> Vec<SystemState> {
    b.tick();
    let m = b.lock();
    let tpl = &b.template;
    b.systems
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let ts = &tpl.systems[slot.tpl];
            let s = &m.systems[i];
            let mgr = ts.manager;
            let bmc_version = mgr.and_then(|mi| {
                m.managers[mi]
                    .firmware_version
                    .clone()
                    .or_else(|| tpl.managers[mi].firmware_version.clone())
            });
            SystemState {
                id: slot.id.clone(),
                power_state: s.power_state(),
                boot: s.boot.clone(),
                bios_pending: s.bios_pending.clone(),
                bios_changed: s.bios_overrides.clone(),
                bios_version: s.bios_version.clone().or_else(|| ts.bios_version.clone()),
                staged_bios_version: s.staged_bios_version.clone(),
                bmc_version,
                staged_bmc_version: mgr.and_then(|mi| m.managers[mi].staged.clone()),
                bmc_attributes: mgr
                    .map(|mi| m.managers[mi].attributes.clone())
                    .unwrap_or_default(),
                bmc_attributes_pending: mgr
                    .map(|mi| m.managers[mi].attributes_pending.clone())
                    .unwrap_or_default(),
                virtual_media: tpl
                    .media
                    .iter()
                    .zip(&m.media)
                    .map(|(t, st)| MediaInfo {
                        path: t.path.clone(),
                        image: st.image.clone(),
                        inserted: st.inserted,
                    })
                    .collect(),
                boot_history: s.history.clone(),
                nmi_count: s.nmi_count,
                netboot: b
                    .shared
                    .hook
                    .as_ref()
                    .map(|h| h.netboot_records(b.index, &slot.id))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Writes a template (e.g. the built-in `default`) as a DMTF mockup tree under `out`; returns the
/// number of resources written.
pub fn export_template(source: &TemplateSource, out: &Path) -> Result<usize> {
    template::export(source, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_count_up() {
        let taken: HashSet<String> = ["1".to_string()].into();
        assert_eq!(replica_id("1", 1, &taken), "2");
        assert_eq!(
            replica_id("System.Embedded.1", 2, &taken),
            "System.Embedded.3"
        );
        assert_eq!(replica_id("BMC", 1, &taken), "BMC-2");
        let taken: HashSet<String> = ["2".to_string()].into();
        assert_eq!(replica_id("1", 1, &taken), "2x");
    }
}
