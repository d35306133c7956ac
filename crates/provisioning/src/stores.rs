//! Watch caches (reflectors) of every kind this controller reads, and the mapping from their
//! events to work: a Server event queues that server, a claim event queues its server, a
//! ServerBootConfiguration event queues itself and its server, a BMC (or BMCSecret) event queues
//! the BMC's servers. The caches run on every replica (the boot server and the metadata service
//! serve from them); the reconcilers consume the queues only while leading.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Resource, ResourceExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::index::SharedIndex;
use crate::queue::WorkQueue;

/// `namespace/name` key of a namespaced object.
pub type NsKey = (String, String);

/// The caches and indexes.
#[derive(Clone)]
pub struct Stores {
    /// Servers (filtered by the server selector).
    pub servers: Store<Server>,
    /// All ServerClaims.
    pub claims: Store<ServerClaim>,
    /// All ServerBootConfigurations.
    pub sbcs: Store<ServerBootConfiguration>,
    /// All BMCs.
    pub bmcs: Store<BMC>,
    /// All BMCSecrets.
    pub bmc_secrets: Store<BMCSecret>,
    /// MAC / UUID / IP / claim / BMC → server.
    pub index: Arc<SharedIndex>,
    /// Server name → its ServerBootConfigurations.
    pub sbc_by_server: Arc<RwLock<HashMap<String, BTreeSet<NsKey>>>>,
    /// True once every cache has listed (one waiter fans out: a kube `Store` wakes only one
    /// waiting task).
    ready: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("servers", &self.servers.len())
            .field("claims", &self.claims.len())
            .field("sbcs", &self.sbcs.len())
            .finish_non_exhaustive()
    }
}

/// Where events go.
#[derive(Clone, Debug)]
pub struct Queues {
    /// Servers to reconcile.
    pub servers: WorkQueue<String>,
    /// ServerBootConfigurations to reconcile.
    pub sbcs: WorkQueue<NsKey>,
}

fn ns_key<K: Resource>(o: &K) -> NsKey {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// Drops `managedFields` (never read; they are the largest part of most objects).
fn slim<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

fn watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    writer: Writer<K>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let stream = watcher::watcher(api, cfg)
        .default_backoff()
        .modify(|o: &mut K| slim(o));
    reflector::reflector(writer, stream)
}

trait EventExt<K> {
    fn objects(&self) -> Vec<&K>;
}

impl<K> EventExt<K> for Event<K> {
    fn objects(&self) -> Vec<&K> {
        match self {
            Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => vec![o],
            Event::Init | Event::InitDone => vec![],
        }
    }
}

async fn pump<K, F>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    shutdown: CancellationToken,
    kind: &'static str,
    mut on_event: F,
) where
    F: FnMut(&Event<K>) + Send,
{
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = shutdown.cancelled() => return,
        };
        match next {
            Some(Ok(ev)) => on_event(&ev),
            Some(Err(e)) => tracing::warn!(kind, error = %e, "watch failed; retrying with backoff"),
            None => return,
        }
    }
}

/// Starts the watches. `server_selector` limits the Servers (sharding); everything else is
/// watched cluster-wide.
pub fn start(
    client: &kube::Client,
    server_selector: Option<&str>,
    queues: Queues,
    shutdown: CancellationToken,
) -> (Stores, Vec<JoinHandle<()>>) {
    let (servers, server_w) = reflector::store::<Server>();
    let (claims, claim_w) = reflector::store::<ServerClaim>();
    let (sbcs, sbc_w) = reflector::store::<ServerBootConfiguration>();
    let (bmcs, bmc_w) = reflector::store::<BMC>();
    let (bmc_secrets, secret_w) = reflector::store::<BMCSecret>();
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let stores = Stores {
        servers,
        claims,
        sbcs,
        bmcs: bmcs.clone(),
        bmc_secrets,
        index: Arc::new(SharedIndex::default()),
        sbc_by_server: Arc::new(RwLock::new(HashMap::new())),
        ready,
    };
    let mut server_cfg = watcher::Config::default().any_semantic();
    let sharded = server_selector.is_some_and(|s| !s.is_empty());
    if let Some(sel) = server_selector.filter(|s| !s.is_empty()) {
        server_cfg = server_cfg.labels(sel);
    }
    let all = || watcher::Config::default().any_semantic();
    let mut tasks = Vec::new();
    {
        let st = stores.clone();
        tasks.push(tokio::spawn(async move {
            let all = async {
                st.servers.wait_until_ready().await?;
                st.claims.wait_until_ready().await?;
                st.sbcs.wait_until_ready().await?;
                st.bmcs.wait_until_ready().await?;
                st.bmc_secrets.wait_until_ready().await
            };
            if all.await.is_ok() {
                let _ = ready_tx.send(true);
            }
        }));
    }

    {
        let index = Arc::clone(&stores.index);
        let by_server = Arc::clone(&stores.sbc_by_server);
        let q = queues.servers.clone();
        let sbc_q = queues.sbcs.clone();
        let stream = watch(Api::<Server>::all(client.clone()), server_cfg, server_w);
        tasks.push(tokio::spawn(pump(
            stream,
            shutdown.clone(),
            "Server",
            move |ev| {
                index.apply(ev);
                let map = by_server.read().unwrap_or_else(|e| e.into_inner());
                for s in ev.objects() {
                    let name = s.name_any();
                    // Sharded: a server entering this shard makes this instance the writer of
                    // its configurations' status.
                    if sharded {
                        for key in map.get(&name).into_iter().flatten() {
                            sbc_q.add(key.clone());
                        }
                    }
                    q.add(name);
                }
            },
        )));
    }
    {
        let index = Arc::clone(&stores.index);
        let q = queues.servers.clone();
        let stream = watch(Api::<ServerClaim>::all(client.clone()), all(), claim_w);
        tasks.push(tokio::spawn(pump(
            stream,
            shutdown.clone(),
            "ServerClaim",
            move |ev| {
                for c in ev.objects() {
                    let (ns, name) = ns_key(c);
                    let mut targets: BTreeSet<String> =
                        index.read(|i| i.by_claim(&format!("{ns}/{name}")).into_iter().collect());
                    if let Some(r) = &c.spec.server_ref {
                        targets.insert(r.name.clone());
                    }
                    for t in targets {
                        q.add(t);
                    }
                }
            },
        )));
    }
    {
        let by_server = Arc::clone(&stores.sbc_by_server);
        let queues = queues.clone();
        let stream = watch(
            Api::<ServerBootConfiguration>::all(client.clone()),
            all(),
            sbc_w,
        );
        tasks.push(tokio::spawn(pump(
            stream,
            shutdown.clone(),
            "ServerBootConfiguration",
            move |ev| {
                let mut map = by_server.write().unwrap_or_else(|e| e.into_inner());
                if matches!(ev, Event::Init) {
                    map.clear();
                }
                for sbc in ev.objects() {
                    let key = ns_key(sbc);
                    let server = sbc.spec.server_ref.name.clone();
                    if matches!(ev, Event::Delete(_)) {
                        if let Some(set) = map.get_mut(&server) {
                            set.remove(&key);
                            if set.is_empty() {
                                map.remove(&server);
                            }
                        }
                    } else {
                        map.entry(server.clone()).or_default().insert(key.clone());
                    }
                    queues.sbcs.add(key);
                    queues.servers.add(server);
                }
            },
        )));
    }
    {
        let index = Arc::clone(&stores.index);
        let q = queues.servers.clone();
        let stream = watch(Api::<BMC>::all(client.clone()), all(), bmc_w);
        tasks.push(tokio::spawn(pump(
            stream,
            shutdown.clone(),
            "BMC",
            move |ev| {
                for b in ev.objects() {
                    for s in index.read(|i| i.by_bmc(&b.name_any())) {
                        q.add(s);
                    }
                }
            },
        )));
    }
    {
        let index = Arc::clone(&stores.index);
        let q = queues.servers.clone();
        let stream = watch(Api::<BMCSecret>::all(client.clone()), all(), secret_w);
        tasks.push(tokio::spawn(pump(
            stream,
            shutdown,
            "BMCSecret",
            move |ev| {
                for s in ev.objects() {
                    let name = s.name_any();
                    for b in bmcs.state() {
                        if b.spec.bmc_secret_ref.name == name {
                            for srv in index.read(|i| i.by_bmc(&b.name_any())) {
                                q.add(srv);
                            }
                        }
                    }
                }
            },
        )));
    }
    (stores, tasks)
}

impl Stores {
    /// Waits until every cache has completed its first listing; `false` if the caches
    /// stopped first.
    pub async fn wait_ready(&self) -> bool {
        let mut rx = self.ready.clone();
        rx.wait_for(|r| *r).await.is_ok()
    }

    /// Whether every cache has completed its first listing.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The ServerBootConfigurations that name `server`.
    pub fn sbcs_of(&self, server: &str) -> Vec<Arc<ServerBootConfiguration>> {
        let keys: Vec<NsKey> = self
            .sbc_by_server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter()
            .filter_map(|(ns, name)| self.sbcs.get(&reflector::ObjectRef::new(name).within(ns)))
            .collect()
    }
}

#[cfg(test)]
impl Stores {
    /// Caches filled with `servers`, `claims` and `sbcs`, as if listed (for pure-rule tests).
    pub(crate) fn listed(
        servers: Vec<Server>,
        claims: Vec<ServerClaim>,
        sbcs: Vec<ServerBootConfiguration>,
    ) -> Self {
        fn fill<K>(items: Vec<K>) -> Store<K>
        where
            K: kube::Resource + Clone + 'static,
            K::DynamicType: Default + Eq + std::hash::Hash + Clone,
        {
            let mut w: Writer<K> = Writer::default();
            for o in items {
                w.apply_watcher_event(&Event::Apply(o));
            }
            w.as_reader()
        }
        let index = SharedIndex::default();
        for s in &servers {
            index.apply(&Event::Apply(s.clone()));
        }
        let mut by_server: HashMap<String, BTreeSet<NsKey>> = HashMap::new();
        for s in &sbcs {
            by_server
                .entry(s.spec.server_ref.name.clone())
                .or_default()
                .insert(ns_key(s));
        }
        Self {
            servers: fill(servers),
            claims: fill(claims),
            sbcs: fill(sbcs),
            bmcs: fill(Vec::new()),
            bmc_secrets: fill(Vec::new()),
            index: Arc::new(index),
            sbc_by_server: Arc::new(RwLock::new(by_server)),
            ready: tokio::sync::watch::channel(true).1,
        }
    }
}
