//! `metal-maintenance`: Day 2. Takes servers out of normal service through ServerMaintenance
//! objects (owner approval, queueing, hand-back) and applies BIOSSettings inside such
//! maintenance windows. It owns a server's BMC while the server is in `Maintenance`.
//!
//! Two controllers share one set of watch caches:
//!
//! * **maintenances** ([`servermaintenance`]): queue maintenances per server, ask the claim
//!   owner for approval, take the server (`serverMaintenanceRef`, state `Maintenance`), hold its
//!   power and LED, hand it back when the maintenance is deleted;
//! * **BIOS settings** ([`bios`]): check version and validity without disturbing the server,
//!   request a maintenance only when something must change, write pending attributes step by
//!   step, reboot once per step, verify, release the maintenance;
//! * **maintenance boot** ([`mboot`]): a maintenance's boot configuration template is
//!   created, served by provisioning's boot server and booted once per configuration;
//! * **cleaning** ([`cleaning`]): servers released into `Cleaning` get every drive erased
//!   (Redfish SecureErase) before they are Available again; a failure keeps them in `Error`;
//! * **park** ([`park`]): the `park` / `unpark` operations on Servers (state `Parked`, powered
//!   off, other controllers stand down).
//!
//! Each reconcile is a pipeline: read (caches) → validate → decide (pure [`plan`],
//! [`biosplan`]) → apply ([`writes`], BMC) → status.

pub mod args;
pub mod bios;
pub mod biosplan;
pub mod bmc;
pub(crate) mod bmclevel;
pub mod bmcsettings;
pub mod bmcversion;
pub mod cleaning;
pub mod cleaning_agent;
pub mod error;
pub mod firmware;
pub mod mboot;
pub mod metrics;
pub mod park;
pub mod plan;
pub mod servermaintenance;
pub mod sets;
pub mod stones;
pub mod window;
pub mod writes;

pub use error::Error;

use crate::bmc::Bmcs;
use api::biossettings::BIOSSettings;
use api::biosversion::BIOSVersion;
use api::bmc::BMC;
use api::bmcsettings::BMCSettings;
use api::bmcversion::BMCVersion;
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use api::servermaintenance::ServerMaintenance;
use api::sets::{BIOSSettingsSet, BIOSVersionSet, BMCSettingsSet, BMCVersionSet};
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use runtime::backoff::Backoff;
use runtime::bmc::BmcClients;
use runtime::cache::SharedWatch;
use runtime::events::Events;
use runtime::metrics::ReconcileMetrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Configuration of one maintenance instance.
#[derive(Clone)]
pub struct Config {
    /// This instance's identity (events).
    pub identity: String,
    /// Label selector limiting the Servers this instance sees; `None` = all.
    pub server_selector: Option<String>,
    /// Namespace of the ServerMaintenances that BIOSSettings request.
    pub namespace: String,
    /// Objects reconciled at once, per controller.
    pub concurrency: u16,
    /// Safety resync of every object (and the drift check of applied BIOS settings).
    pub resync: Duration,
    /// Time allowed from the first BIOS write to verified settings before the attempt fails.
    pub bios_settings_timeout: Duration,
    /// Time from starting a firmware update to the new version running before the attempt fails.
    pub firmware_timeout: Duration,
    /// Time a reboot or power change may take before it is issued again.
    pub power_timeout: Duration,
    /// Per-call timeout of BMC requests.
    pub bmc_timeout: Duration,
    /// CA bundle (PEM) for BMCs whose BMCSecret carries none.
    pub bmc_ca: Option<Vec<u8>>,
    /// Awaited after each named side-effecting step of the BMC flows: how the step-wise kill
    /// tests stop an instance exactly there. Not reachable from the command line.
    pub step_hook: Option<StepHook>,
    /// How long a maintenance boot may take until its boot script is fetched before it is
    /// sent again.
    pub maintenance_boot_timeout: Duration,
    /// Boot override of maintenance boots (`Pxe` or `UefiHttp`, as provisioning's).
    pub network_boot_target: redfish::models::BootSource,
    /// How the in-band cleaning agent is booted; `None`: cleanings that need it fail
    /// (`Metadata`, and `Full` on drives without Redfish SecureErase).
    pub cleaning_agent: Option<cleaning_agent::CleaningAgent>,
}

/// See [`Config::step_hook`].
pub use runtime::steps::StepHook;

impl Config {
    /// Defaults for instance `identity`: everything in scope, maintenances in
    /// `metal-system`, 8 at once, 10 min resync, 2 h settings and firmware timeouts, 5 min power
    /// timeout.
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            server_selector: None,
            namespace: "metal-system".to_string(),
            concurrency: 8,
            resync: Duration::from_secs(600),
            bios_settings_timeout: Duration::from_secs(2 * 3600),
            firmware_timeout: Duration::from_secs(2 * 3600),
            power_timeout: Duration::from_secs(300),
            bmc_timeout: Duration::from_secs(30),
            bmc_ca: None,
            step_hook: None,
            maintenance_boot_timeout: Duration::from_secs(15 * 60),
            network_boot_target: redfish::models::BootSource::Pxe,
            cleaning_agent: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("identity", &self.identity)
            .field("server_selector", &self.server_selector)
            .field("namespace", &self.namespace)
            .field("concurrency", &self.concurrency)
            .field("resync", &self.resync)
            .field("bios_settings_timeout", &self.bios_settings_timeout)
            .field("firmware_timeout", &self.firmware_timeout)
            .field("power_timeout", &self.power_timeout)
            .field("bmc_timeout", &self.bmc_timeout)
            .field("bmc_ca_bytes", &self.bmc_ca.as_ref().map(Vec::len))
            .field("step_hook", &self.step_hook.is_some())
            .field("maintenance_boot_timeout", &self.maintenance_boot_timeout)
            .field("network_boot_target", &self.network_boot_target)
            .field("cleaning_agent", &self.cleaning_agent)
            .finish()
    }
}

/// The watch caches of one process.
#[derive(Debug)]
pub(crate) struct Caches {
    servers: SharedWatch<Server>,
    claims: SharedWatch<ServerClaim>,
    maintenances: SharedWatch<ServerMaintenance>,
    bios_settings: SharedWatch<BIOSSettings>,
    bios_versions: SharedWatch<BIOSVersion>,
    bios_settings_sets: SharedWatch<BIOSSettingsSet>,
    bios_version_sets: SharedWatch<BIOSVersionSet>,
    bmcs: SharedWatch<BMC>,
    bmc_versions: SharedWatch<BMCVersion>,
    bmc_version_sets: SharedWatch<BMCVersionSet>,
    bmc_settings: SharedWatch<BMCSettings>,
    bmc_settings_sets: SharedWatch<BMCSettingsSet>,
    /// Only the configurations maintenances created (by label).
    boot_configurations: SharedWatch<ServerBootConfiguration>,
}

impl Caches {
    fn start(client: &kube::Client, config: &Config, admin: &runtime::admin::AdminState) -> Self {
        let gate = |name: &str| {
            let g = admin.readiness.gate(name);
            move || g.ready()
        };
        let servers = match &config.server_selector {
            Some(s) => watcher::Config::default().labels(s),
            None => watcher::Config::default(),
        };
        Self {
            servers: SharedWatch::spawn(Api::all(client.clone()), servers, gate("cache/servers")),
            claims: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/serverclaims"),
            ),
            maintenances: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/servermaintenances"),
            ),
            bios_settings: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/biossettings"),
            ),
            bios_versions: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/biosversions"),
            ),
            bios_settings_sets: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/biossettingssets"),
            ),
            bios_version_sets: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/biosversionsets"),
            ),
            bmcs: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/bmcs"),
            ),
            bmc_versions: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/bmcversions"),
            ),
            bmc_version_sets: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/bmcversionsets"),
            ),
            bmc_settings: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/bmcsettings"),
            ),
            bmc_settings_sets: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default(),
                gate("cache/bmcsettingssets"),
            ),
            boot_configurations: SharedWatch::spawn(
                Api::all(client.clone()),
                watcher::Config::default().labels(api::constants::MAINTENANCE_BOOT_LABEL),
                gate("cache/serverbootconfigurations"),
            ),
        }
    }

    async fn ready(&self) {
        self.servers.ready().await;
        self.claims.ready().await;
        self.maintenances.ready().await;
        self.bios_settings.ready().await;
        self.bios_versions.ready().await;
        self.bios_settings_sets.ready().await;
        self.bios_version_sets.ready().await;
        self.bmcs.ready().await;
        self.bmc_versions.ready().await;
        self.bmc_version_sets.ready().await;
        self.bmc_settings.ready().await;
        self.bmc_settings_sets.ready().await;
        self.boot_configurations.ready().await;
    }
}

/// What every reconcile needs.
pub(crate) struct Ctx {
    pub(crate) client: kube::Client,
    pub(crate) config: Arc<Config>,
    pub(crate) caches: Arc<Caches>,
    pub(crate) servers: Store<Server>,
    pub(crate) claims: Store<ServerClaim>,
    pub(crate) maintenances: Store<ServerMaintenance>,
    pub(crate) boot_configurations: Store<ServerBootConfiguration>,
    pub(crate) bmcs: Arc<Bmcs>,
    pub(crate) metrics: ReconcileMetrics,
    pub(crate) requests: metrics::BmcRequests,
    pub(crate) events: Events,
    pub(crate) backoff: Backoff,
    pub(crate) shards: runtime::shards::Shards,
}

impl Ctx {
    /// The shard key of server `name`: its BMC (one replica drives a BMC and all its systems);
    /// the name itself when the server or its BMC reference is unknown.
    pub(crate) fn server_shard_key(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return String::new();
        };
        self.servers
            .get(&kube::runtime::reflector::ObjectRef::new(name))
            .and_then(|s| s.spec.bmc_ref.as_ref().map(|r| r.name.clone()))
            .unwrap_or_else(|| name.to_string())
    }

    /// Whether server `name` is this instance's: always without a server selector; with one,
    /// only servers in the cache (a sharded instance cannot tell "missing" from "another
    /// shard's", so it leaves objects naming unknown servers to the other instances).
    pub(crate) fn in_scope(&self, name: &str) -> bool {
        self.config.server_selector.is_none()
            || self
                .servers
                .get(&kube::runtime::reflector::ObjectRef::new(name))
                .is_some()
    }

    /// Passes named side-effecting step `name` ([`Config::step_hook`]).
    pub(crate) async fn step(&self, name: &'static str) {
        runtime::steps::pass(self.config.step_hook.as_ref(), name).await;
    }

    /// Sends a power-off the caller has recorded (forced when a graceful one timed out); a
    /// refusal becomes a warning event on `regarding`, and the record's timeout decides what
    /// follows.
    pub(crate) async fn send_power_off<K: kube::Resource<DynamicType = ()>>(
        &self,
        regarding: &K,
        bmc: &redfish::Client,
        system: &str,
        force: bool,
        what: &str,
    ) {
        let sent = if force {
            bmc.force_off(system).await
        } else {
            bmc.power_off(system).await
        };
        self.requests.observe("power", &sent);
        if let Err(e) = sent {
            self.events.warning(
                regarding,
                "PowerRequestFailed",
                format!("{what}: requesting power Off failed: {e}"),
            );
        }
    }

    /// Every maintenance naming server `name`.
    pub(crate) fn maintenances_of(&self, name: &str) -> Vec<Arc<ServerMaintenance>> {
        self.maintenances
            .state()
            .into_iter()
            .filter(|m| m.spec.server_ref.name == name)
            .collect()
    }
}

/// One maintenance instance: caches (started at once) and controllers (run while leading).
/// Cheap to clone.
#[derive(Clone)]
pub struct Maintenance {
    client: kube::Client,
    config: Arc<Config>,
    caches: Arc<Caches>,
    bmcs: Arc<Bmcs>,
    metrics: ReconcileMetrics,
    requests: metrics::BmcRequests,
    events: Events,
    shards: runtime::shards::Shards,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance")
            .field("config", &self.config)
            .finish()
    }
}

impl Maintenance {
    /// Starts the caches and registers metrics and readiness gates (`cache/...`) in `admin`.
    pub fn start(client: kube::Client, config: Config, admin: &runtime::admin::AdminState) -> Self {
        let caches = Arc::new(Caches::start(&client, &config, admin));
        let metrics = ReconcileMetrics::new(&admin.metrics, "maintenance");
        let requests = metrics::register(
            &admin.metrics,
            metrics::Stores {
                maintenances: caches.maintenances.store(),
                bios_settings: caches.bios_settings.store(),
                bios_versions: caches.bios_versions.store(),
            },
        );
        let events = Events::new(client.clone(), writes::FIELD_MANAGER, &config.identity);
        let options = redfish::ClientOptions {
            operation_timeout: config.bmc_timeout,
            request_timeout: config.bmc_timeout.min(Duration::from_secs(15)),
            connect_timeout: config.bmc_timeout.min(Duration::from_secs(5)),
            max_in_flight: 1,
            ..redfish::ClientOptions::default()
        };
        let bmcs = Arc::new(Bmcs::new(
            BmcClients::new(options),
            client.clone(),
            config.bmc_ca.clone(),
        ));
        Self {
            client,
            config: Arc::new(config),
            caches,
            bmcs,
            metrics,
            requests,
            events,
            shards: runtime::shards::Shards::all(),
        }
    }

    /// Acts only on the BMCs of the shards `shards` holds (automatic sharding).
    pub fn with_shards(mut self, shards: runtime::shards::Shards) -> Self {
        self.shards = shards;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Waits until every cache has synced.
    pub async fn ready(&self) {
        self.caches.ready().await;
    }

    /// Runs both controllers until `shutdown`; reconciles in flight finish first.
    pub async fn run_controllers(&self, shutdown: CancellationToken) {
        let ctx = Arc::new(Ctx {
            client: self.client.clone(),
            config: self.config.clone(),
            caches: self.caches.clone(),
            servers: self.caches.servers.store(),
            claims: self.caches.claims.store(),
            maintenances: self.caches.maintenances.store(),
            boot_configurations: self.caches.boot_configurations.store(),
            bmcs: self.bmcs.clone(),
            metrics: self.metrics.clone(),
            requests: self.requests.clone(),
            events: self.events.clone(),
            backoff: Backoff::default(),
            shards: self.shards.clone(),
        });
        // Start only once every cache has synced, and give up at once if leadership goes first:
        // a reconcile parked on an unsynced cache would hold graceful shutdown past the fencing
        // margin (the API server down at start-up), and the process would exit to fence.
        tokio::select! {
            _ = self.caches.ready() => {}
            _ = shutdown.cancelled() => return,
        }
        tracing::info!(identity = %self.config.identity, "maintenance controllers starting");
        tokio::join!(
            servermaintenance::run(ctx.clone(), &self.caches, shutdown.clone()),
            bios::run(ctx.clone(), &self.caches, shutdown.clone()),
            firmware::run(ctx.clone(), &self.caches, shutdown.clone()),
            bmcversion::run(ctx.clone(), &self.caches, shutdown.clone()),
            bmcsettings::run(ctx.clone(), &self.caches, shutdown.clone()),
            park::run(ctx.clone(), &self.caches, shutdown.clone()),
            cleaning::run(ctx.clone(), &self.caches, shutdown.clone()),
            sets::run(
                ctx.clone(),
                &self.caches.bios_settings_sets,
                &self.caches.bios_settings,
                &self.caches,
                shutdown.clone(),
            ),
            sets::run(
                ctx.clone(),
                &self.caches.bios_version_sets,
                &self.caches.bios_versions,
                &self.caches,
                shutdown.clone(),
            ),
            sets::run(
                ctx.clone(),
                &self.caches.bmc_version_sets,
                &self.caches.bmc_versions,
                &self.caches,
                shutdown.clone(),
            ),
            sets::run(
                ctx,
                &self.caches.bmc_settings_sets,
                &self.caches.bmc_settings,
                &self.caches,
                shutdown,
            ),
        );
        tracing::info!("maintenance controllers stopped");
    }

    /// Runs the controllers until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        self.run_controllers(shutdown).await;
    }
}

pub use api::constants::ignored;

/// Now, as a Kubernetes timestamp.
pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}
