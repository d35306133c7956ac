//! Watch caches shared by the controllers of one process.
//!
//! Each kind is watched once; the reflector store is read by every controller and a fan-out of
//! change notifications triggers them. Caches run for the whole life of the process, also on a
//! standby replica (so `/readyz` means "caches synced" everywhere and a new leader starts warm);
//! controllers subscribe only while leading. `managedFields` are dropped before caching, which
//! roughly halves the memory per object (a cache may keep its own manager's entry).
//!
//! A subscriber first receives every cached object, then every change. If it falls behind the
//! fan-out buffer it receives every cached object again instead of the lost changes, so no
//! trigger is ever lost (controllers deduplicate queued objects).

use futures::{Stream, StreamExt as _};
use kube::api::Api;
use kube::runtime::reflector::{self, Lookup, Store};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt as _, watcher::Event};
use kube::{Resource, ResourceExt as _};

use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// A change seen on a watched kind.
#[derive(Debug, Clone)]
pub enum Change<K> {
    /// Created or updated (the cached object).
    Applied(Arc<K>),
    /// Deleted (the last known object).
    Deleted(Arc<K>),
}

/// One watched kind: a reflector store plus a change fan-out.
pub struct SharedWatch<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    tx: broadcast::Sender<Change<K>>,
    synced: tokio::sync::watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts watching `api` with `config`. `on_synced` runs once, after the first full list.
    pub fn spawn(
        api: Api<K>,
        config: watcher::Config,
        on_synced: impl FnOnce() + Send + 'static,
    ) -> Self {
        Self::spawn_keeping_manager(api, config, None, on_synced)
    }

    /// Like [`Self::spawn`], but keeps the `managedFields` entries of field manager `keep`: a
    /// controller that applies a subset of a list (say, some taints) needs them to tell the
    /// entries it owns from everyone else's after the reason it applied them is gone.
    pub fn spawn_keeping_manager(
        api: Api<K>,
        config: watcher::Config,
        keep: Option<&'static str>,
        on_synced: impl FnOnce() + Send + 'static,
    ) -> Self {
        let (store, writer) = reflector::store::<K>();
        let (tx, _) = broadcast::channel(4096);
        let sender = tx.clone();
        let reader = store.clone();
        let kind = K::kind(&()).to_string();
        let (synced_tx, synced) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut on_synced = Some(on_synced);
            // What the store held when a re-list began: objects missing from the new list were
            // deleted while the watch was down and get a `Deleted` of their own.
            let mut before_relist: Vec<Arc<K>> = Vec::new();
            let stream = watcher(api, config)
                .default_backoff()
                .modify(move |o| match keep {
                    Some(m) => o
                        .managed_fields_mut()
                        .retain(|e| e.manager.as_deref() == Some(m)),
                    None => o.managed_fields_mut().clear(),
                })
                .reflect(writer);
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(o)) => {
                        if let Some(cached) = reader.get(&reflector::ObjectRef::from_obj(&o)) {
                            let _ = sender.send(Change::Applied(cached));
                        }
                    }
                    Ok(Event::Delete(o)) => {
                        let _ = sender.send(Change::Deleted(Arc::new(o)));
                    }
                    Ok(Event::InitDone) => {
                        tracing::trace!(kind = %kind, cached = reader.len(), "synced");
                        for gone in vanished(std::mem::take(&mut before_relist), &reader) {
                            let _ = sender.send(Change::Deleted(gone));
                        }
                        if let Some(f) = on_synced.take() {
                            synced_tx.send_replace(true);
                            f();
                        }
                        for o in reader.state() {
                            let _ = sender.send(Change::Applied(o));
                        }
                    }
                    Ok(Event::Init) => before_relist = reader.state(),
                    Ok(Event::InitApply(_)) => {}
                    Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
                }
            }
        });
        Self {
            store,
            tx,
            synced,
            task,
        }
    }

    /// The reflector store.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every cached object, then every change (see the module docs).
    pub fn changes(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let rx = self.tx.subscribe();
        let store = self.store.clone();
        let initial: Vec<Change<K>> = store.state().into_iter().map(Change::Applied).collect();
        let live = futures::stream::unfold((rx, store), |(mut rx, store)| async move {
            let batch = match rx.recv().await {
                Ok(change) => vec![change],
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    store.state().into_iter().map(Change::Applied).collect()
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((batch, (rx, store)))
        })
        .flat_map(futures::stream::iter);
        futures::stream::iter(initial).chain(live)
    }

    /// Created or updated objects only (the trigger of a controller for this kind).
    pub fn applied(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.changes().filter_map(|c| async move {
            match c {
                Change::Applied(o) => Some(o),
                Change::Deleted(_) => None,
            }
        })
    }

    /// Every change, deletions included, as objects (for mapping to related objects).
    pub fn touched(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.changes().map(|c| match c {
            Change::Applied(o) | Change::Deleted(o) => o,
        })
    }

    /// Deletions only.
    pub fn deleted(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.changes().filter_map(|c| async move {
            match c {
                Change::Deleted(o) => Some(o),
                Change::Applied(_) => None,
            }
        })
    }

    /// Waits until the first full list is in the store. (Not `Store::wait_until_ready`: its
    /// one-shot channel wakes only the last of several concurrent waiters.)
    pub async fn ready(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }
}

/// The objects of `before` that `store` no longer holds: deletions a re-list (after a watch
/// expired, `410 Gone`) would otherwise swallow, since the reflector just replaces its state.
fn vanished<K>(before: Vec<Arc<K>>, store: &Store<K>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    before
        .into_iter()
        .filter(|o| {
            store
                .get(&reflector::ObjectRef::from_obj(o.as_ref()))
                .is_none()
        })
        .collect()
}

impl<K> std::fmt::Debug for SharedWatch<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWatch")
            .field("cached", &self.store.len())
            .finish()
    }
}

impl<K> Drop for SharedWatch<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> ConfigMap {
        let mut o = ConfigMap::default();
        o.metadata.name = Some(name.into());
        o.metadata.namespace = Some("ns".into());
        o
    }

    #[test]
    fn a_relist_reports_what_disappeared_while_the_watch_was_down() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        for n in ["a", "b", "c"] {
            writer.apply_watcher_event(&Event::Apply(cm(n)));
        }
        let before = store.state();
        // The re-list after a 410: "b" was deleted meanwhile, "d" created.
        writer.apply_watcher_event(&Event::Init);
        for n in ["a", "c", "d"] {
            writer.apply_watcher_event(&Event::InitApply(cm(n)));
        }
        writer.apply_watcher_event(&Event::InitDone);
        let gone: Vec<String> = vanished(before, &store)
            .iter()
            .map(|o| o.name_any())
            .collect();
        assert_eq!(gone, vec!["b".to_string()]);
        assert!(vanished(Vec::new(), &store).is_empty());
    }
}
