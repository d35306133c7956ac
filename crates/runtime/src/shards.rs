//! Automatic sharding: the replicas of one Deployment divide the work among themselves through
//! Leases, so adding a replica adds throughput and a dead replica's work moves on within about
//! one lease duration.
//!
//! A group (say `metal-discovery`) has a fixed number of shard Leases, `<group>-shard-<i>`, and
//! one member Lease per replica, `<group>-member-<identity>`. A work item (a BMC, by name) maps
//! to a shard by a stable hash ([`shard_of`]); each shard's wanted holder is chosen among the
//! live members by rendezvous hashing ([`owner`]), so a join or leave moves only about `1/n` of
//! the shards. Each replica acts only on items of shards whose Lease names it.
//!
//! Liveness is the member Lease: each replica renews its own once per `retry_period` (the only
//! write a round makes, whatever the number of shards), and a holder counts as gone once its
//! member Lease has not changed for `lease_duration` by the observer's own clock (robust to
//! skew). Taking a shard is a compare-and-swap write on its Lease, allowed when it is released
//! or its holder is gone. A replica that has not renewed its membership for `renew_deadline`
//! (< `lease_duration`) cancels the work of all its shards ([`ShardGuard::lost`]) before anyone
//! may count it gone.
//!
//! Hand-over without duplicated side effects: a replica that should give a shard to another
//! first refuses new work on it, waits for the work in flight to finish ([`ShardGuard`]s), and
//! only then releases the Lease; the new holder takes it only once released. One coordinator
//! loop per replica lists the group's Leases once per round.

use crate::lease::LeaseParams;
use crate::metrics::LeaderMetrics;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Label on every Lease of a group: which group.
pub const GROUP_LABEL: &str = "metal.ironcore.dev/shard-group";
/// Label on every Lease of a group: `member` or `shard`.
pub const ROLE_LABEL: &str = "metal.ironcore.dev/shard-role";

/// FNV-1a, 64 bit: stable across processes, versions and architectures (std's hasher is not).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// The shard of work item `key` among `shards` (pure, stable).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (fnv1a(key.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// The member that should hold `shard`: the highest rendezvous score among `members`, so a
/// member joining or leaving moves only the shards it wins or held (pure).
pub fn owner<'a>(shard: u32, members: &[&'a str]) -> Option<&'a str> {
    members
        .iter()
        .max_by_key(|m| {
            // Finalize the FNV hash (its low bits mix poorly for short, similar inputs).
            let mut h = fnv1a(format!("{m}/{shard}").as_bytes());
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51afd7ed558ccd);
            h ^= h >> 33;
            (h, *m)
        })
        .copied()
}

/// A Lease name for `identity`: lower case, only characters a name may hold, bounded length.
pub fn member_lease_name(group: &str, identity: &str) -> String {
    let clean: String = identity
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("{group}-member-{}", clean.trim_matches(['-', '.']));
    if name.len() <= 63 {
        name
    } else {
        format!("{}-{:08x}", &name[..54], fnv1a(identity.as_bytes()) as u32)
    }
}

/// The Lease name of shard `i`.
pub fn shard_lease_name(group: &str, i: u32) -> String {
    format!("{group}-shard-{i:02}")
}

/// What the coordinator does with one shard in one round (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStep {
    /// Not ours and not for us (or not free yet): leave it.
    Leave,
    /// Ours and still wanted: keep it (our membership renewal keeps it ours).
    Renew,
    /// Ours, wanted elsewhere, work still in flight: refuse new work, keep it.
    Drain,
    /// Ours, wanted elsewhere, nothing in flight: release the Lease.
    Release,
    /// Wanted here and free (released, absent, or its holder gone): take it.
    Take,
    /// We believed we held it but the Lease names another holder: stop at once.
    Lost,
}

/// Decides [`ShardStep`] for a shard: whether we hold it, its recorded holder, whether it is
/// wanted here, whether that holder is gone (see the coordinator), and the work in flight.
pub fn shard_step(
    held: bool,
    holder: &str,
    me: &str,
    wanted_here: bool,
    holder_gone: bool,
    in_flight: usize,
) -> ShardStep {
    if held {
        if holder != me {
            return ShardStep::Lost;
        }
        if wanted_here {
            return ShardStep::Renew;
        }
        return if in_flight == 0 {
            ShardStep::Release
        } else {
            ShardStep::Drain
        };
    }
    if wanted_here && (holder.is_empty() || holder_gone) {
        return ShardStep::Take;
    }
    if holder == me {
        // Ours by the record but not here: a take whose answer we never saw (timed out), or
        // a previous run of this identity. Nobody else may take it while we live, so give it
        // back rather than block its wanted holder.
        return ShardStep::Release;
    }
    ShardStep::Leave
}

#[derive(Debug)]
struct Slot {
    held: bool,
    draining: bool,
    in_flight: usize,
    token: CancellationToken,
}

#[derive(Debug)]
struct Inner {
    shards: u32,
    /// `None`: not sharded, everything is ours.
    slots: Option<Vec<Mutex<Slot>>>,
    idle: Notify,
    acquired: watch::Sender<u64>,
    /// Start of the round of our last successful membership renewal.
    member_renewed: Mutex<Option<Instant>>,
}

/// Which shards this replica holds; cheap to clone, consulted by every reconcile.
#[derive(Debug, Clone)]
pub struct Shards {
    inner: Arc<Inner>,
}

/// Work on one shard in flight: while it lives the shard is not released voluntarily.
#[derive(Debug)]
pub struct ShardGuard {
    inner: Arc<Inner>,
    shard: Option<u32>,
    token: CancellationToken,
}

impl ShardGuard {
    /// Resolves when the shard was lost (renewal failed, or taken): the work must stop now.
    pub async fn lost(&self) {
        self.token.cancelled().await
    }
}

impl Drop for ShardGuard {
    fn drop(&mut self) {
        if let (Some(i), Some(slots)) = (self.shard, &self.inner.slots) {
            let mut s = slots[i as usize].lock().unwrap_or_else(|p| p.into_inner());
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                self.inner.idle.notify_waiters();
            }
        }
    }
}

impl Shards {
    /// No sharding: every item is this replica's.
    pub fn all() -> Self {
        let (acquired, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                shards: 1,
                slots: None,
                idle: Notify::new(),
                acquired,
                member_renewed: Mutex::new(None),
            }),
        }
    }

    fn sharded(shards: u32) -> Self {
        let (acquired, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                shards,
                slots: Some(
                    (0..shards)
                        .map(|_| {
                            Mutex::new(Slot {
                                held: false,
                                draining: false,
                                in_flight: 0,
                                token: CancellationToken::new(),
                            })
                        })
                        .collect(),
                ),
                idle: Notify::new(),
                acquired,
                member_renewed: Mutex::new(None),
            }),
        }
    }

    /// Whether this replica divides work with others.
    pub fn is_sharded(&self) -> bool {
        self.inner.slots.is_some()
    }

    /// Starts work on `key` if its shard is held and not being handed over; `None` means
    /// another replica does (or will do) it.
    pub fn enter(&self, key: &str) -> Option<ShardGuard> {
        let Some(slots) = &self.inner.slots else {
            return Some(ShardGuard {
                inner: self.inner.clone(),
                shard: None,
                token: CancellationToken::new(),
            });
        };
        let i = shard_of(key, self.inner.shards);
        let mut s = slots[i as usize].lock().unwrap_or_else(|p| p.into_inner());
        if !s.held || s.draining {
            return None;
        }
        s.in_flight += 1;
        Some(ShardGuard {
            inner: self.inner.clone(),
            shard: Some(i),
            token: s.token.clone(),
        })
    }

    /// Whether `key`'s shard is held here now (no guard; for filters such as metrics).
    pub fn owns(&self, key: &str) -> bool {
        match &self.inner.slots {
            None => true,
            Some(slots) => {
                let s = slots[shard_of(key, self.inner.shards) as usize]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                s.held && !s.draining
            }
        }
    }

    /// The shards held now.
    pub fn held(&self) -> Vec<u32> {
        match &self.inner.slots {
            None => vec![0],
            Some(slots) => (0..self.inner.shards)
                .filter(|i| slots[*i as usize].lock().is_ok_and(|s| s.held))
                .collect(),
        }
    }

    /// Ticks once per shard acquisition: the controllers reconcile everything then, so items
    /// of a newly held shard start without waiting for their resync.
    pub fn acquisitions(&self) -> watch::Receiver<u64> {
        self.inner.acquired.subscribe()
    }

    /// [`Shards::acquisitions`] as a stream of ticks, for `Controller::reconcile_all_on`.
    pub fn acquisition_ticks(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.acquisitions(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }

    fn slot(&self, i: u32) -> std::sync::MutexGuard<'_, Slot> {
        self.inner.slots.as_ref().expect("sharded")[i as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Timing and identity of a sharded group.
#[derive(Debug, Clone)]
pub struct ShardParams {
    /// Group name (the Lease name prefix).
    pub group: String,
    /// Number of shards (fixed for the group's lifetime; changing it reshuffles every item).
    pub shards: u32,
    /// Namespace, identity and timings, as for a single Lease.
    pub lease: LeaseParams,
}

/// The coordinator of this replica's shards; [`ShardCoordinator::stop`] hands everything over.
#[derive(Debug)]
pub struct ShardCoordinator {
    shards: Shards,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ShardCoordinator {
    /// The handle the controllers consult.
    pub fn shards(&self) -> Shards {
        self.shards.clone()
    }

    /// Stops taking shards, cancels the work of every held shard, waits for it (up to the
    /// fencing margin) and releases the Leases, so the others take over at once.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts this replica's coordinator for `params` in the background.
pub fn spawn(
    client: kube::Client,
    params: ShardParams,
    metrics: Option<LeaderMetrics>,
) -> ShardCoordinator {
    let shards = Shards::sharded(params.shards.max(1));
    let stop = CancellationToken::new();
    let mut c = Coordinator {
        api: Api::namespaced(client, &params.lease.namespace),
        member: member_lease_name(&params.group, &params.lease.identity),
        params,
        shards: shards.clone(),
        seen: HashMap::new(),
        metrics,
    };
    let stop2 = stop.clone();
    // The fencing watchdog: a round may wait on a slow API server for longer than the renew
    // deadline, so the deadline is checked beside the rounds, not only in them.
    let watchdog = {
        let (shards, stop, p, metrics) = (
            shards.clone(),
            stop.clone(),
            c.params.clone(),
            c.metrics.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(p.lease.retry_period / 2) => {}
                    _ = stop.cancelled() => break,
                }
                fence_expired(&shards, &p, metrics.as_ref());
            }
        })
    };
    let task = tokio::spawn(async move {
        loop {
            c.round().await;
            let d = c
                .params
                .lease
                .retry_period
                .mul_f64(1.0 + rand::random::<f64>() * 0.2);
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stop2.cancelled() => break,
            }
        }
        watchdog.abort();
        c.hand_over().await;
    });
    ShardCoordinator { shards, stop, task }
}

/// Stops the work of every held shard once our membership has not been renewed for the renew
/// deadline: from then on the others may soon count us gone and take our shards.
fn fence_expired(shards: &Shards, p: &ShardParams, metrics: Option<&LeaderMetrics>) {
    let deadline = p.lease.renew_deadline;
    let renewed = *shards
        .inner
        .member_renewed
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if renewed.is_some_and(|t| t.elapsed() < deadline) {
        return;
    }
    for i in 0..p.shards {
        let mut s = shards.slot(i);
        if s.held {
            tracing::error!(lease = %format!("{}/{}", p.lease.namespace, shard_lease_name(&p.group, i)), "could not renew membership within the renew deadline; stopping the shard's work");
            s.held = false;
            s.draining = false;
            s.token.cancel();
            drop(s);
            if let Some(m) = metrics {
                m.set(
                    &format!("{}/{}", p.lease.namespace, shard_lease_name(&p.group, i)),
                    false,
                );
            }
        }
    }
}

struct Coordinator {
    api: Api<Lease>,
    params: ShardParams,
    member: String,
    shards: Shards,
    /// Per Lease name: its last observed `(holder, renewTime)` and when we saw it change.
    seen: HashMap<String, ((String, Option<String>), Instant)>,
    metrics: Option<LeaderMetrics>,
}

impl Coordinator {
    fn key(&self, i: u32) -> String {
        format!(
            "{}/{}",
            self.params.lease.namespace,
            shard_lease_name(&self.params.group, i)
        )
    }

    fn labels(&self, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (GROUP_LABEL.to_string(), self.params.group.clone()),
            (ROLE_LABEL.to_string(), role.to_string()),
        ])
    }

    /// Records an observation; returns how long the record has been unchanged by our clock.
    fn observe(&mut self, name: &str, spec: Option<&LeaseSpec>) -> Duration {
        let rec = (
            spec.and_then(|s| s.holder_identity.clone())
                .unwrap_or_default(),
            spec.and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
        );
        match self.seen.get(name) {
            Some((r, since)) if *r == rec => since.elapsed(),
            _ => {
                self.seen.insert(name.to_string(), (rec, Instant::now()));
                Duration::ZERO
            }
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, holder: Option<&str>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let prev_holder = previous
            .and_then(|s| s.holder_identity.as_deref())
            .unwrap_or_default();
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        let changed = holder.is_some_and(|h| h != prev_holder);
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(if holder.is_some() {
                self.params.lease.lease_duration.as_secs().max(1) as i32
            } else {
                1
            }),
            acquire_time: if changed {
                Some(now.clone())
            } else {
                previous.and_then(|s| s.acquire_time.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if changed && !prev_holder.is_empty() {
                transitions + 1
            } else {
                transitions
            }),
            ..Default::default()
        }
    }

    /// Writes `holder` to the Lease `name` (creating it), compare-and-swap on `existing`.
    async fn write(
        &self,
        name: &str,
        role: &str,
        existing: Option<&Lease>,
        holder: Option<&str>,
    ) -> Result<(), kube::Error> {
        let timeout = self.params.lease.renew_deadline;
        let fut = async {
            match existing {
                Some(l) => {
                    let mut l = l.clone();
                    l.spec = Some(self.spec(l.spec.as_ref(), holder));
                    self.api
                        .replace(name, &PostParams::default(), &l)
                        .await
                        .map(|_| ())
                }
                None => {
                    let l = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.to_string()),
                            labels: Some(self.labels(role)),
                            ..Default::default()
                        },
                        spec: Some(self.spec(None, holder)),
                    };
                    self.api
                        .create(&PostParams::default(), &l)
                        .await
                        .map(|_| ())
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Service("lease write timed out".into())),
        }
    }

    async fn list(&self) -> Result<Vec<Lease>, kube::Error> {
        let lp = ListParams::default().labels(&format!("{GROUP_LABEL}={}", self.params.group));
        match tokio::time::timeout(self.params.lease.renew_deadline, self.api.list(&lp)).await {
            Ok(r) => r.map(|l| l.items),
            Err(_) => Err(kube::Error::Service("lease list timed out".into())),
        }
    }

    fn set_held(&self, i: u32, held: bool) {
        if let Some(m) = &self.metrics {
            m.set(&self.key(i), held);
        }
    }

    fn fence_expired(&self) {
        fence_expired(&self.shards, &self.params, self.metrics.as_ref());
    }

    /// One round: read the group, renew our membership, then take, keep, drain or release
    /// each shard. Only the member Lease is written every round: a shard's holder is alive
    /// while its member Lease changes, so holding costs no write per shard.
    async fn round(&mut self) {
        let me = self.params.lease.identity.clone();
        let start = Instant::now();
        let leases = match self.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(group = %self.params.group, error = %e, "listing the shard Leases failed");
                self.fence_expired();
                return;
            }
        };
        let by_name: HashMap<String, &Lease> = leases
            .iter()
            .filter_map(|l| l.metadata.name.clone().map(|n| (n, l)))
            .collect();
        let member = self.member.clone();
        let renewed = match self
            .write(&member, "member", by_name.get(&member).copied(), Some(&me))
            .await
        {
            Ok(()) => {
                *self
                    .shards
                    .inner
                    .member_renewed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(start);
                true
            }
            Err(e) => {
                tracing::warn!(group = %self.params.group, error = %e, "renewing the member Lease failed");
                false
            }
        };
        self.fence_expired();

        // Members: ourselves, and every member Lease with a holder that changed within a
        // lease duration by our clock (alive); long-dead ones are removed.
        let mut alive: HashMap<String, bool> = HashMap::new();
        let role_of = |l: &Lease| {
            l.metadata
                .labels
                .as_ref()
                .and_then(|m| m.get(ROLE_LABEL))
                .cloned()
        };
        for l in &leases {
            let Some(name) = l.metadata.name.clone() else {
                continue;
            };
            if role_of(l).as_deref() != Some("member") || name == self.member {
                continue;
            }
            let unchanged = self.observe(&name, l.spec.as_ref());
            let holder = l
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default();
            if holder.is_empty() {
                continue;
            }
            let live = unchanged < self.params.lease.lease_duration;
            *alive.entry(holder).or_default() |= live;
            if unchanged >= self.params.lease.lease_duration * 4 {
                let _ = self.api.delete(&name, &DeleteParams::default()).await;
                self.seen.remove(&name);
            }
        }
        let mut live: Vec<&str> = alive
            .iter()
            .filter(|(_, a)| **a)
            .map(|(m, _)| m.as_str())
            .collect();
        live.push(&me);
        live.sort();
        live.dedup();

        let mut acquired = false;
        for i in 0..self.params.shards {
            let name = shard_lease_name(&self.params.group, i);
            let existing = by_name.get(&name).copied();
            let holder = existing
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default();
            let unchanged = self.observe(&name, existing.and_then(|l| l.spec.as_ref()));
            // A holder is gone once its membership stopped changing for a lease duration; one
            // without a member Lease (removed by hand) once the shard Lease itself stood still
            // that long. Our own name from a previous run of this identity is free at once.
            let holder_gone = holder == me
                || match alive.get(&holder) {
                    Some(a) => !a,
                    None => unchanged >= self.params.lease.lease_duration,
                };
            let wanted_here = renewed && owner(i, &live) == Some(me.as_str());
            let (held, in_flight) = {
                let s = self.shards.slot(i);
                (s.held, s.in_flight)
            };
            match shard_step(held, &holder, &me, wanted_here, holder_gone, in_flight) {
                ShardStep::Leave | ShardStep::Renew => {}
                ShardStep::Lost => {
                    tracing::warn!(lease = %self.key(i), holder, "shard taken by another replica; stopping its work");
                    let mut s = self.shards.slot(i);
                    s.held = false;
                    s.draining = false;
                    s.token.cancel();
                    drop(s);
                    self.set_held(i, false);
                }
                ShardStep::Drain => {
                    let mut s = self.shards.slot(i);
                    if !s.draining {
                        tracing::info!(lease = %self.key(i), "shard wanted by another replica; finishing its work");
                    }
                    s.draining = true;
                }
                ShardStep::Release => {
                    {
                        let mut s = self.shards.slot(i);
                        s.held = false;
                        s.draining = false;
                    }
                    self.set_held(i, false);
                    match self.write(&name, "shard", existing, None).await {
                        Ok(()) => {
                            tracing::info!(lease = %self.key(i), "shard handed over")
                        }
                        // Not released: it is free once our membership lapses (our work on it
                        // has stopped).
                        Err(e) => {
                            tracing::warn!(lease = %self.key(i), error = %e, "releasing the shard failed")
                        }
                    }
                }
                ShardStep::Take => {
                    if self
                        .write(&name, "shard", existing, Some(&me))
                        .await
                        .is_ok()
                    {
                        let mut s = self.shards.slot(i);
                        s.held = true;
                        s.draining = false;
                        s.token = CancellationToken::new();
                        drop(s);
                        self.set_held(i, true);
                        tracing::info!(lease = %self.key(i), "took shard");
                        acquired = true;
                    }
                }
            }
        }
        if acquired {
            self.shards.inner.acquired.send_modify(|n| *n += 1);
        }
    }

    /// Shutdown: refuse new work, cancel the work in flight, wait for it (up to the fencing
    /// margin), release every shard and the membership.
    async fn hand_over(&mut self) {
        for i in 0..self.params.shards {
            let mut s = self.shards.slot(i);
            s.draining = true;
            s.token.cancel();
        }
        let margin = self.params.lease.fencing_margin();
        let _ = tokio::time::timeout(margin, async {
            loop {
                let idle = self.shards.inner.idle.notified();
                let busy = (0..self.params.shards).any(|i| self.shards.slot(i).in_flight > 0);
                if !busy {
                    break;
                }
                idle.await;
            }
        })
        .await;
        let Ok(leases) = self.list().await else {
            return;
        };
        let me = self.params.lease.identity.clone();
        for l in &leases {
            let held = l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(&me);
            if let (true, Some(name)) = (held, l.metadata.name.clone()) {
                let role = if name == self.member {
                    "member"
                } else {
                    "shard"
                };
                let _ = self.write(&name, role, Some(l), None).await;
            }
        }
        for i in 0..self.params.shards {
            let mut s = self.shards.slot(i);
            s.held = false;
            drop(s);
            self.set_held(i, false);
        }
        tracing::info!(group = %self.params.group, "released every shard");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_spread_over_shards_and_stay_put() {
        let mut counts = [0usize; 16];
        for i in 0..16_000 {
            counts[shard_of(&format!("bmc-{i}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of("rack-1-bmc-7", 32), shard_of("rack-1-bmc-7", 32));
        assert_eq!(shard_of("x", 0), 0, "no division by zero");
    }

    #[test]
    fn rendezvous_moves_only_the_shards_of_who_joins_or_leaves() {
        let three = ["a", "b", "c"];
        let four = ["a", "b", "c", "d"];
        let mut per = BTreeMap::new();
        let mut moved = 0;
        for s in 0..64 {
            let before = owner(s, &three).unwrap();
            let after = owner(s, &four).unwrap();
            *per.entry(after).or_insert(0) += 1;
            if before != after {
                assert_eq!(after, "d", "a shard moves only to the newcomer");
                moved += 1;
            }
            let without_b = ["a", "c"];
            if before != "b" {
                assert_eq!(owner(s, &without_b), Some(before), "only b's shards move");
            }
        }
        assert!((8..=24).contains(&moved), "about a quarter moved: {moved}");
        assert!(
            per.values().all(|n| *n >= 8),
            "each member gets some: {per:?}"
        );
        assert_eq!(owner(0, &[]), None);
    }

    #[test]
    fn shard_steps() {
        use ShardStep::*;
        // held, holder, me, wanted, expired, in flight
        assert_eq!(shard_step(true, "a", "a", true, false, 3), Renew);
        assert_eq!(shard_step(true, "a", "a", false, false, 3), Drain);
        assert_eq!(shard_step(true, "a", "a", false, false, 0), Release);
        assert_eq!(shard_step(true, "b", "a", true, false, 0), Lost);
        assert_eq!(shard_step(false, "", "a", true, false, 0), Take, "released");
        assert_eq!(
            shard_step(false, "b", "a", true, false, 0),
            Leave,
            "valid holder"
        );
        assert_eq!(
            shard_step(false, "b", "a", true, true, 0),
            Take,
            "holder gone"
        );
        assert_eq!(
            shard_step(false, "", "a", false, false, 0),
            Leave,
            "not ours"
        );
        assert_eq!(shard_step(false, "a", "a", true, true, 0), Take);
        assert_eq!(
            shard_step(false, "a", "a", false, true, 0),
            Release,
            "a take whose answer was lost, wanted elsewhere: given back, not kept forever"
        );
    }

    #[test]
    fn names_are_valid() {
        assert_eq!(
            member_lease_name("metal-discovery", "Host_1:42"),
            "metal-discovery-member-host-1-42"
        );
        let long = member_lease_name("metal-discovery", &"x".repeat(100));
        assert!(long.len() <= 63, "{long}");
        assert_eq!(shard_lease_name("g", 3), "g-shard-03");
    }

    #[tokio::test]
    async fn guards_count_work_and_unsharded_owns_all() {
        let all = Shards::all();
        assert!(all.enter("anything").is_some());
        assert!(all.owns("anything"));
        let s = Shards::sharded(4);
        assert!(s.enter("bmc-1").is_none(), "nothing held yet");
        let i = shard_of("bmc-1", 4);
        s.slot(i).held = true;
        let g = s.enter("bmc-1").expect("held");
        assert_eq!(s.slot(i).in_flight, 1);
        s.slot(i).draining = true;
        assert!(s.enter("bmc-1").is_none(), "draining refuses new work");
        drop(g);
        assert_eq!(s.slot(i).in_flight, 0);
        s.slot(i).token.cancel();
        s.slot(i).draining = false;
        let g = s.enter("bmc-1").expect("held");
        tokio::time::timeout(Duration::from_secs(1), g.lost())
            .await
            .expect("a lost shard resolves its guards");
    }
}
