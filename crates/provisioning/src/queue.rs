//! A small work queue: each key is reconciled by at most one task at a time, duplicates while
//! queued collapse, a key added while it runs runs once more afterwards, and delayed requeues
//! keep only the earliest deadline. Every reconcile runs as its own task, so a reconcile stuck
//! on a slow BMC holds nothing but its own key (and one slot of a large bound).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct State<K> {
    queued: HashSet<K>,
    running: HashSet<K>,
    dirty: HashSet<K>,
    delayed: HashMap<K, Instant>,
}

/// The queue; clones share it.
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    tx: mpsc::UnboundedSender<K>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<K>>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            tx: self.tx.clone(),
            rx: Arc::clone(&self.rx),
        }
    }
}

impl<K> std::fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkQueue")
    }
}

impl<K> Default for WorkQueue<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K> WorkQueue<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// An empty queue.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            state: Arc::new(Mutex::new(State {
                queued: HashSet::new(),
                running: HashSet::new(),
                dirty: HashSet::new(),
                delayed: HashMap::new(),
            })),
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now.
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.running.contains(&key) {
            s.dirty.insert(key);
        } else if s.queued.insert(key.clone()) {
            let _ = self.tx.send(key);
        }
    }

    /// Queues `key` after `delay` (an earlier pending deadline wins).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let deadline = Instant::now() + delay;
        {
            let mut s = self.lock();
            if s.delayed.get(&key).is_some_and(|d| *d <= deadline) {
                return;
            }
            s.delayed.insert(key.clone(), deadline);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let due = {
                let mut s = q.lock();
                if s.delayed.get(&key) == Some(&deadline) {
                    s.delayed.remove(&key);
                    true
                } else {
                    false
                }
            };
            if due {
                q.add(key);
            }
        });
    }

    /// Takes the next key and marks it running.
    pub async fn next(&self) -> Option<K> {
        let key = self.rx.lock().await.recv().await?;
        let mut s = self.lock();
        s.queued.remove(&key);
        s.running.insert(key.clone());
        Some(key)
    }

    /// Marks `key` finished; it runs again if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let again = {
            let mut s = self.lock();
            s.running.remove(key);
            s.dirty.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }

    /// Puts every key marked running back into the queue (after their tasks were aborted).
    pub fn requeue_running(&self) {
        let keys: Vec<K> = {
            let mut s = self.lock();
            let keys: Vec<K> = s.running.drain().collect();
            s.dirty.clear();
            keys
        };
        for k in keys {
            self.add(k);
        }
    }

    /// Keys queued or running (for tests and metrics).
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.queued.len() + s.running.len()
    }

    /// Whether nothing is queued or running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `f` for every key of `queue`, at most `max_parallel` at once, until `shutdown`; then
/// aborts what is still running (a reconcile is always safe to interrupt) and returns.
pub async fn run<K, F, Fut>(
    queue: WorkQueue<K>,
    max_parallel: usize,
    shutdown: CancellationToken,
    f: F,
) where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    F: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(max_parallel.max(1)));
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&sem).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let key = tokio::select! {
            k = queue.next() => match k { Some(k) => k, None => break },
            _ = shutdown.cancelled() => break,
        };
        let q = queue.clone();
        let f = Arc::clone(&f);
        tasks.spawn(async move {
            f(key.clone()).await;
            q.done(&key);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    queue.requeue_running();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn duplicates_collapse_and_running_keys_rerun_once() {
        let q: WorkQueue<String> = WorkQueue::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.next().await.as_deref(), Some("a"));
        // Added while running: runs once more after done.
        q.add("a".into());
        q.add("a".into());
        assert_eq!(q.next().await.as_deref(), Some("b"));
        q.done(&"b".to_string());
        q.done(&"a".to_string());
        assert_eq!(q.next().await.as_deref(), Some("a"));
        q.done(&"a".to_string());
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn delayed_keeps_earliest_deadline() {
        let q: WorkQueue<u32> = WorkQueue::new();
        q.add_after(1, Duration::from_millis(1000));
        q.add_after(1, Duration::from_millis(100));
        q.add_after(1, Duration::from_millis(500));
        let start = Instant::now();
        assert_eq!(q.next().await, Some(1));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_millis(500),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn runner_never_runs_a_key_twice_at_once() {
        let q: WorkQueue<u32> = WorkQueue::new();
        let active = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (a, m, r) = (Arc::clone(&active), Arc::clone(&max), Arc::clone(&runs));
        let runner = tokio::spawn(run(q.clone(), 8, stop.clone(), move |_k: u32| {
            let (a, m, r) = (Arc::clone(&a), Arc::clone(&m), Arc::clone(&r));
            async move {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                a.fetch_sub(1, Ordering::SeqCst);
                r.fetch_add(1, Ordering::SeqCst);
            }
        }));
        for _ in 0..10 {
            q.add(7);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(max.load(Ordering::SeqCst), 1);
        assert!(runs.load(Ordering::SeqCst) >= 2);
        stop.cancel();
        runner.await.unwrap();
    }
}
