//! What every reconcile shares: the client, the caches, the BMC directory, the resolver,
//! metrics, events, queues, and small per-server memory that does not need to survive a restart
//! (everything that must is recorded in status).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use runtime::metrics::ReconcileMetrics;
use tokio::sync::Semaphore;

use crate::artifacts::Resolver;
use crate::bmc::Bmcs;
use crate::config::Config;
use crate::metrics::ProvisioningMetrics;
use crate::stores::{Queues, Stores};

/// In-memory notes about one server.
#[derive(Debug, Default, Clone)]
pub struct Memo {
    /// When this process first saw the server Reserved for a claim (claim uid, instant).
    pub reserved_seen: Option<(String, Instant)>,
    /// Claim uids whose first boot was already measured.
    pub boot_measured: Option<String>,
    /// When a refused power-off was last re-sent.
    pub last_off_retry: Option<Instant>,
    /// Consecutive reconcile failures (for backoff).
    pub failures: u32,
    /// Media was inserted for the current claim.
    pub media_inserted: bool,
    /// The last ComputerSystem reading and when it was taken.
    pub observed: Option<(Instant, redfish::models::ComputerSystem)>,
}

/// The shared reconcile context.
pub struct Ctx {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Watch caches.
    pub stores: Stores,
    /// BMC clients.
    pub bmcs: Bmcs,
    /// Resolver for images and scripts.
    pub resolver: Arc<Resolver>,
    /// Configuration.
    pub config: Config,
    /// Provisioning metrics.
    pub metrics: ProvisioningMetrics,
    /// Reconcile metrics.
    pub reconciles: ReconcileMetrics,
    /// Work queues.
    pub queues: Queues,
    /// Bound on concurrent Kubernetes calls on the critical path (intents recorded before a
    /// BMC side effect, live reads).
    pub api_slots: Semaphore,
    /// A smaller bound for writes nobody waits on (confirmations, claim conditions, the boot
    /// reference, events), so a burst of them cannot starve the critical path at the API
    /// server.
    pub bulk_slots: Arc<Semaphore>,
    /// The shards (BMCs) this replica acts on ([`runtime::shards::Shards::all`] unless
    /// sharded).
    pub shards: runtime::shards::Shards,
    recorder: Recorder,
    memo: Mutex<HashMap<String, Memo>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The shard key of `server`: its BMC, so one replica drives a BMC and all its systems.
    pub fn shard_key(server: &api::server::Server) -> String {
        server
            .spec
            .bmc_ref
            .as_ref()
            .map_or_else(|| kube::ResourceExt::name_any(server), |r| r.name.clone())
    }

    /// Builds the context.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        stores: Stores,
        bmcs: Bmcs,
        resolver: Arc<Resolver>,
        config: Config,
        metrics: ProvisioningMetrics,
        reconciles: ReconcileMetrics,
        queues: Queues,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: crate::status::FIELD_MANAGER.into(),
                instance: config.instance.clone(),
            },
        );
        Self {
            api_slots: Semaphore::new(config.api_concurrency.max(1)),
            bulk_slots: Arc::new(Semaphore::new((config.api_concurrency / 4).max(2))),
            client,
            stores,
            bmcs,
            resolver,
            config,
            metrics,
            reconciles,
            queues,
            shards: runtime::shards::Shards::all(),
            recorder,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// Reads or updates the memo of a server.
    pub fn memo<R>(&self, server: &str, f: impl FnOnce(&mut Memo) -> R) -> R {
        let mut m = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(server.to_string()).or_default())
    }

    /// Forgets a deleted server.
    pub fn forget(&self, server: &str) {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(server);
    }

    /// Publishes an event about `obj` in the background (events never delay a reconcile).
    pub fn event<K: Resource<DynamicType = ()>>(
        self: &Arc<Self>,
        obj: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let reference: ObjectReference = obj.object_ref(&());
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let _slot = me.bulk_slots.acquire().await;
            if let Err(e) = me.recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, reason = %ev.reason, "publishing event failed");
            }
        });
    }

    /// Backoff after `failures` consecutive failures: 1 s doubling to 2 min, ±20 % jitter.
    pub fn backoff(failures: u32) -> Duration {
        let base = Duration::from_secs(1) * 2u32.saturating_pow(failures.min(7));
        base.min(Duration::from_secs(120))
            .mul_f64(0.8 + rand::random::<f64>() * 0.4)
    }
}
