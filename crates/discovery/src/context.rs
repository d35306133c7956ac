//! What every reconciler and the registry share: the API client, watch caches, the Redfish
//! client cache, configuration, metrics, events, and the write helpers (every API write goes
//! through [`Ctx`] so it is counted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::endpoint::Endpoint;
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use api::state::Controller;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rand::Rng;
use runtime::bmc::BmcClients;
use serde_json::Value;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::logic::macdb::MacDb;
use crate::metrics::DiscoveryMetrics;

/// Field manager of every discovery write.
pub const MANAGER: &str = Controller::Discovery.field_manager();

/// Shared state of the controllers.
pub struct Ctx {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Configuration.
    pub cfg: Config,
    /// Redfish clients per BMC.
    pub clients: BmcClients,
    /// Default CA bundle for BMC TLS.
    pub default_ca: Option<Vec<u8>>,
    /// MAC-prefix database.
    pub macdb: Option<MacDb>,
    /// Metrics.
    pub metrics: DiscoveryMetrics,
    /// BMC watch cache (selected BMCs).
    pub bmcs: Store<BMC>,
    /// BMCSecret watch cache.
    pub secrets: Store<BMCSecret>,
    /// Endpoint watch cache (selected).
    pub endpoints: Store<Endpoint>,
    /// Server watch cache (selected).
    pub servers: Store<Server>,
    /// Internal discovery boot configurations in the manager namespace.
    pub internal_sbcs: Store<ServerBootConfiguration>,
    /// The shards (BMCs) this replica acts on.
    pub shards: runtime::shards::Shards,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    manager_ids: Mutex<HashMap<String, String>>,
    refreshed: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Watch caches the controllers read.
#[derive(Clone)]
pub struct Stores {
    /// BMCs.
    pub bmcs: Store<BMC>,
    /// BMCSecrets.
    pub secrets: Store<BMCSecret>,
    /// Endpoints.
    pub endpoints: Store<Endpoint>,
    /// Servers.
    pub servers: Store<Server>,
    /// Internal discovery boot configurations.
    pub internal_sbcs: Store<ServerBootConfiguration>,
}

impl Ctx {
    /// Builds the shared context.
    pub fn new(
        client: kube::Client,
        cfg: Config,
        clients: BmcClients,
        default_ca: Option<Vec<u8>>,
        macdb: Option<MacDb>,
        metrics: DiscoveryMetrics,
        stores: Stores,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: Some(cfg.identity.clone()),
            },
        );
        Self {
            client,
            cfg,
            clients,
            default_ca,
            macdb,
            metrics,
            bmcs: stores.bmcs,
            secrets: stores.secrets,
            endpoints: stores.endpoints,
            servers: stores.servers,
            internal_sbcs: stores.internal_sbcs,
            shards: runtime::shards::Shards::all(),
            recorder,
            failures: Mutex::new(HashMap::new()),
            manager_ids: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(HashMap::new()),
        }
    }

    /// A cached BMC by name.
    pub fn bmc(&self, name: &str) -> Option<Arc<BMC>> {
        self.bmcs.get(&ObjectRef::new(name))
    }

    /// A cached BMCSecret by name.
    pub fn secret(&self, name: &str) -> Option<Arc<BMCSecret>> {
        self.secrets.get(&ObjectRef::new(name))
    }

    /// Server-side apply of `body` (a full object fragment) under [`MANAGER`], counted.
    pub async fn apply<K>(&self, api: &Api<K>, name: &str, body: &Value, force: bool) -> Result<K>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let mut pp = PatchParams::apply(MANAGER);
        pp.force = force;
        self.metrics.write(&K::kind(&Default::default()), "apply");
        Ok(api.patch(name, &pp, &Patch::Apply(body)).await?)
    }

    /// Server-side apply to the status subresource (forced: the caller's resourceVersion
    /// precondition, when given, is what guards against concurrent writers), counted.
    pub async fn apply_status<K>(&self, api: &Api<K>, name: &str, body: &Value) -> Result<K>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.metrics.write(&K::kind(&Default::default()), "apply");
        match api
            .patch_status(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
        {
            Ok(o) => Ok(o),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Conflict(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// A JSON merge patch (metadata edits such as removing an annotation), counted.
    pub async fn merge_patch<K>(&self, api: &Api<K>, name: &str, body: &Value) -> Result<K>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.metrics.write(&K::kind(&Default::default()), "patch");
        Ok(api
            .patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await?)
    }

    /// Deletes an object; absent is fine. Counted.
    pub async fn delete<K>(&self, api: &Api<K>, name: &str) -> Result<()>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.metrics.write(&K::kind(&Default::default()), "delete");
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(e) if crate::error::is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Passes the named side-effecting step (after its write or request) through the kill
    /// suite's hook, if any.
    pub async fn step(&self, name: &'static str) {
        self.cfg.steps.pass(name).await;
    }

    /// Publishes an Event about `obj` (best effort: a failed event never fails a reconcile).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let reference: ObjectReference = obj.object_ref(&());
        self.metrics.write("Event", "event");
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, object = %obj.name_any(), "publishing event failed");
        }
    }

    /// Records a failure of `key` and returns the backoff before the next attempt: 2 s doubling
    /// up to `cap`, ±20 % jitter (so failing BMCs do not retry in lock-step).
    pub fn backoff(&self, key: &str, cap: Duration) -> Duration {
        let n = {
            let mut f = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = f.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let base = Duration::from_secs(2).saturating_mul(1u32 << (n - 1).min(16));
        jitter(base.min(cap), 0.2)
    }

    /// Clears the failure count of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// The remembered Manager `@odata.id` of a BMC.
    pub fn manager_id(&self, bmc: &str) -> Option<String> {
        self.manager_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(bmc)
            .cloned()
    }

    /// Remembers (or forgets, with `None`) the Manager `@odata.id` of a BMC.
    pub fn set_manager_id(&self, bmc: &str, id: Option<String>) {
        let mut m = self
            .manager_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match id {
            Some(id) => m.insert(bmc.to_string(), id),
            None => m.remove(bmc),
        };
    }
}

impl Ctx {
    /// How long the last full refresh of `bmc` stays good, if it was made from exactly these
    /// inputs (see [`crate::bmc::inputs`]) less than `interval` ago. Its own status write
    /// triggers the BMC again; this makes that echo free instead of a second round of reads.
    pub fn fresh_for(&self, bmc: &str, inputs: &str, interval: Duration) -> Option<Duration> {
        let m = self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (seen, at) = m.get(bmc)?;
        (seen == inputs)
            .then(|| interval.checked_sub(at.elapsed()))
            .flatten()
    }

    /// Records a successful full refresh of `bmc` from `inputs` (or forgets it, with `None`).
    pub fn set_refreshed(&self, bmc: &str, inputs: Option<String>) {
        let mut m = self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match inputs {
            Some(i) => m.insert(bmc.to_string(), (i, Instant::now())),
            None => m.remove(bmc),
        };
    }
}

/// `d` ± `frac` (uniform).
pub fn jitter(d: Duration, frac: f64) -> Duration {
    let f = rand::rng().random_range((1.0 - frac)..=(1.0 + frac));
    d.mul_f64(f)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The `metal.ironcore.dev/operation` value of an object, if any.
pub fn operation(meta: &kube::api::ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(api::constants::OPERATION_ANNOTATION)
        .map(String::as_str)
}

pub use api::constants::ignored;

/// The current time as a Kubernetes `Time`.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}
