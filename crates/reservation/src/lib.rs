//! `metal-reservation`: binds ServerClaims to Servers and releases them, and keeps the taints of
//! ServerReadinessRules on Servers. Pure Kubernetes scheduling: it never talks to a BMC.
//!
//! Three controllers share one set of watch caches ([`runtime::cache`]):
//!
//! * **claims** ([`claim`]): bind (pick a server, compare-and-swap `serverClaimRef`, set the
//!   claim's `serverRef`, move the server `Available` → `Reserved`, create the claim's
//!   ServerBootConfiguration, report `Bound`), explain unbound claims, and release deleting
//!   claims after provisioning confirmed power off;
//! * **servers** ([`server`]): transitions without a claim to drive them (`Released` →
//!   `Available` when an operator clears `serverClaimRef`, orphaned references) and the
//!   readiness-rule taints of each server;
//! * **rules** ([`rule`]): the rule finalizer and taint cleanup when a rule is deleted.
//!
//! Each reconcile is a pipeline: read (caches) → validate → decide (pure modules
//! [`matching`], [`release`], [`readiness`], [`lock`]) → apply ([`writes`]) → status.
//!
//! ```no_run
//! # async fn doc(client: kube::Client) {
//! use metal_reservation::{Config, Reservation};
//! let admin = runtime::admin::AdminState::default();
//! let reservation = Reservation::start(client, Config::new("pod-0"), &admin);
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! reservation.run(shutdown).await;
//! # }
//! ```

pub mod args;
pub mod claim;
pub mod error;
pub mod events;
pub mod holds;
pub mod lock;
pub mod matching;
pub mod metrics;
pub mod readiness;
pub mod release;
pub mod rule;
pub mod server;
pub mod writes;

pub use error::Error;

use crate::events::Events;
use crate::holds::Holds;
use crate::matching::{FirstFit, Strategy};
use crate::metrics::ReservationMetrics;
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use api::serverreadinessrule::ServerReadinessRule;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use runtime::cache::SharedWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Configuration of one reservation instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// This instance's identity (written into binding locks and events).
    pub identity: String,
    /// Label selector (Kubernetes syntax) limiting the Servers this instance sees; `None` = all.
    /// Servers outside it are invisible: never bound, tainted or released by this instance.
    pub server_selector: Option<String>,
    /// Label selector limiting the ServerReadinessRules this instance manages; `None` = all.
    pub rule_selector: Option<String>,
    /// Namespace whose ServerClaims this instance handles; `None` = all namespaces.
    pub claim_namespace: Option<String>,
    /// Claims reconciled at once.
    pub claim_concurrency: u16,
    /// Servers and rules reconciled at once.
    pub concurrency: u16,
    /// Lifetime of a binding lock (see [`lock`]); the holder writes during the first half.
    pub binding_lock_timeout: Duration,
    /// Safety resync of every object, on top of the watch-driven triggers.
    pub resync: Duration,
    /// How a server released by a `Recycle` claim is cleaned when it carries no
    /// `metal.ironcore.dev/cleaning-mode` annotation (`Disabled`: straight back to Available).
    pub cleaning_mode: api::constants::CleaningMode,
    /// Passed at each named binding and release write (`claim-ref-written`, `claim-committed`,
    /// `server-reserved`, `boot-configuration-applied`, `claim-ref-cleared`,
    /// `server-released`): how the step-wise kill tests stop an instance exactly there.
    pub steps: runtime::steps::Steps,
}

impl Config {
    /// Defaults for instance `identity`: everything in scope, 16 concurrent claims and servers,
    /// 30 s binding locks, 10 min resync.
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            server_selector: None,
            rule_selector: None,
            claim_namespace: None,
            claim_concurrency: 16,
            concurrency: 16,
            binding_lock_timeout: Duration::from_secs(30),
            resync: Duration::from_secs(600),
            cleaning_mode: api::constants::CleaningMode::Disabled,
            steps: Default::default(),
        }
    }

    fn claim_api<K>(&self, client: &kube::Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.claim_namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    /// Whether a claim in namespace `ns` is this instance's to handle.
    pub fn claim_in_scope(&self, ns: &str) -> bool {
        self.claim_namespace.as_deref().is_none_or(|n| n == ns)
    }
}

/// The watch caches of one process.
#[derive(Debug)]
pub(crate) struct Caches {
    servers: SharedWatch<Server>,
    claims: SharedWatch<ServerClaim>,
    rules: SharedWatch<ServerReadinessRule>,
    boot_configurations: SharedWatch<ServerBootConfiguration>,
}

impl Caches {
    fn start(client: &kube::Client, config: &Config, admin: &runtime::admin::AdminState) -> Self {
        let with_labels = |sel: &Option<String>| match sel {
            Some(s) => watcher::Config::default().labels(s),
            None => watcher::Config::default(),
        };
        let gate = |name: &str| {
            let g = admin.readiness.gate(name);
            move || g.ready()
        };
        Self {
            // Reservation's own managedFields entry stays: it says which taints are ours.
            servers: SharedWatch::spawn_keeping_manager(
                Api::all(client.clone()),
                with_labels(&config.server_selector),
                Some(writes::FIELD_MANAGER),
                gate("cache/servers"),
            ),
            claims: SharedWatch::spawn(
                config.claim_api(client),
                watcher::Config::default(),
                gate("cache/serverclaims"),
            ),
            rules: SharedWatch::spawn(
                Api::all(client.clone()),
                with_labels(&config.rule_selector),
                gate("cache/serverreadinessrules"),
            ),
            boot_configurations: SharedWatch::spawn(
                config.claim_api(client),
                watcher::Config::default(),
                gate("cache/serverbootconfigurations"),
            ),
        }
    }

    async fn ready(&self) {
        self.servers.ready().await;
        self.claims.ready().await;
        self.rules.ready().await;
        self.boot_configurations.ready().await;
    }
}

pub use runtime::backoff::backoff_delay;
pub(crate) use runtime::backoff::{Backoff, jitter};

/// What every reconcile needs: client, caches, holds, metrics, events.
pub(crate) struct Ctx {
    pub(crate) client: kube::Client,
    pub(crate) config: Arc<Config>,
    pub(crate) caches: Arc<Caches>,
    pub(crate) servers: Store<Server>,
    pub(crate) claims: Store<ServerClaim>,
    pub(crate) rules: Store<ServerReadinessRule>,
    pub(crate) boot_configurations: Store<ServerBootConfiguration>,
    pub(crate) holds: Arc<Holds>,
    pub(crate) metrics: ReservationMetrics,
    pub(crate) events: Events,
    pub(crate) strategy: Arc<dyn Strategy>,
    pub(crate) backoff: Backoff,
}

impl Ctx {
    pub(crate) fn server_api(&self) -> Api<Server> {
        Api::all(self.client.clone())
    }

    pub(crate) fn claim_api(&self, ns: &str) -> Api<ServerClaim> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub(crate) fn boot_configuration_api(&self, ns: &str) -> Api<ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub(crate) fn rule_api(&self) -> Api<ServerReadinessRule> {
        Api::all(self.client.clone())
    }
}

/// One reservation instance: caches (started at once) and controllers (run on demand, e.g.
/// while leading). Cheap to clone; the caches stop when the last clone is dropped.
#[derive(Clone)]
pub struct Reservation {
    client: kube::Client,
    config: Arc<Config>,
    caches: Arc<Caches>,
    holds: Arc<Holds>,
    metrics: ReservationMetrics,
    events: Events,
    strategy: Arc<dyn Strategy>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("config", &self.config)
            .finish()
    }
}

impl Reservation {
    /// Starts the caches, registers the metrics in `admin.metrics` and readiness gates
    /// (`cache/...`, ready once each cache has synced) in `admin.readiness`.
    pub fn start(client: kube::Client, config: Config, admin: &runtime::admin::AdminState) -> Self {
        let caches = Arc::new(Caches::start(&client, &config, admin));
        let metrics = ReservationMetrics::register(&admin.metrics, caches.claims.store());
        let events = Events::new(client.clone(), writes::FIELD_MANAGER, &config.identity);
        let holds = Arc::new(Holds::new(config.binding_lock_timeout));
        Self {
            client,
            config: Arc::new(config),
            caches,
            holds,
            metrics,
            events,
            strategy: Arc::new(FirstFit),
        }
    }

    /// Replaces the candidate ordering (default [`FirstFit`]).
    pub fn with_strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = strategy;
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

    /// Runs the three controllers until `shutdown` is cancelled; reconciles in flight finish
    /// first (graceful shutdown).
    pub async fn run_controllers(&self, shutdown: CancellationToken) {
        let ctx = Arc::new(Ctx {
            client: self.client.clone(),
            config: self.config.clone(),
            caches: self.caches.clone(),
            servers: self.caches.servers.store(),
            claims: self.caches.claims.store(),
            rules: self.caches.rules.store(),
            boot_configurations: self.caches.boot_configurations.store(),
            holds: self.holds.clone(),
            metrics: self.metrics.clone(),
            events: self.events.clone(),
            strategy: self.strategy.clone(),
            backoff: Backoff::default(),
        });
        // Start only once every cache has synced, and give up at once if leadership goes first:
        // a reconcile parked on an unsynced cache would hold graceful shutdown past the fencing
        // margin (the API server down at start-up), and the process would exit to fence.
        tokio::select! {
            _ = self.caches.ready() => {}
            _ = shutdown.cancelled() => return,
        }
        tracing::info!(identity = %self.config.identity, "reservation controllers starting");
        tokio::join!(
            claim::run(ctx.clone(), &self.caches, shutdown.clone()),
            server::run(ctx.clone(), &self.caches, shutdown.clone()),
            rule::run(ctx, &self.caches, shutdown),
        );
        tracing::info!("reservation controllers stopped");
    }

    /// Runs the controllers until `shutdown`, then stops the caches.
    pub async fn run(self, shutdown: CancellationToken) {
        self.run_controllers(shutdown).await;
    }
}

pub use api::constants::ignored;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_annotation() {
        let mut meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::default();
        assert!(!ignored(&meta));
        meta.annotations = Some(
            [(
                "metal.ironcore.dev/operation".to_string(),
                "ignore".to_string(),
            )]
            .into(),
        );
        assert!(ignored(&meta));
        meta.annotations = Some(
            [(
                "metal.ironcore.dev/operation".to_string(),
                "retry".to_string(),
            )]
            .into(),
        );
        assert!(!ignored(&meta));
    }

    #[test]
    fn claim_scope() {
        let mut c = Config::new("me");
        assert!(c.claim_in_scope("a"));
        c.claim_namespace = Some("b".into());
        assert!(!c.claim_in_scope("a"));
        assert!(c.claim_in_scope("b"));
    }
}
