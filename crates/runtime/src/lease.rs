//! Lease-based leader election with fencing (kube has none).
//!
//! One [`spawn`] call runs one election on one `coordination.k8s.io/v1` Lease; a process may run
//! several (one per shard later). The protocol follows client-go's, with compare-and-swap writes
//! (`resourceVersion` preconditions) so two candidates can never both believe they won:
//!
//! * A candidate takes the Lease when it is absent, released (no holder), or has not changed for
//!   `lease_duration` **as measured by the candidate's own clock** since it last saw it change
//!   (robust to clock skew between nodes).
//! * The holder renews every `retry_period`. If it cannot renew for `renew_deadline`
//!   (< `lease_duration`), or sees another holder, it steps down: its [`LeaderHandle`] reports
//!   the loss and [`run_while_leading`] cancels the work, aborts it if it has not stopped within
//!   half the remaining fencing margin, and fails (the binary then exits) only if it still runs.
//!   So a replica that lost its Lease stops before another can take it, and stays a standby.
//! * On shutdown the holder releases the Lease (empty holder, 1 s duration) after its work has
//!   stopped, and a standby takes over at once.

use crate::metrics::LeaderMetrics;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timing and identity of one election.
#[derive(Debug, Clone)]
pub struct LeaseParams {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity, written as `holderIdentity`.
    pub identity: String,
    /// How long others wait after the last observed change before taking the Lease.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it steps down (< `lease_duration`).
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts; also the timeout of each API call.
    pub retry_period: Duration,
}

impl LeaseParams {
    /// Parameters with client-go's proportions: renew deadline 2/3 and retry period 2/15 of the
    /// lease duration.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
        lease_duration: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry_period: lease_duration.mul_f64(2.0 / 15.0),
        }
    }

    /// The time a holder that stepped down has left to stop its work before a standby may take
    /// over: `lease_duration - renew_deadline`, less a tenth for scheduling slack.
    pub fn fencing_margin(&self) -> Duration {
        self.lease_duration
            .saturating_sub(self.renew_deadline)
            .mul_f64(0.9)
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What an election attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease (acquired or renewed).
    Leading,
    /// Another replica holds a valid Lease.
    HeldByOther,
}

/// Why an election step failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API call failed.
    #[error("lease {lease}: {source}")]
    Api {
        /// `namespace/name`.
        lease: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API call did not answer within the renew deadline.
    #[error("lease {lease}: API call timed out")]
    Timeout {
        /// `namespace/name`.
        lease: String,
    },
    /// The work did not stop within the fencing margin after leadership was lost.
    #[error(
        "lease {lease}: work still running {margin:?} after losing leadership; exiting to fence"
    )]
    FencingTimeout {
        /// `namespace/name`.
        lease: String,
        /// The margin that was exceeded.
        margin: Duration,
    },
}

/// The Lease record fields that matter for the election (pure, comparable).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Current holder, empty when released.
    pub holder: String,
    /// Renew time as written by the holder (opaque to others).
    pub renew_time: Option<String>,
    /// Number of holder changes.
    pub transitions: i32,
}

impl Record {
    fn from_spec(spec: Option<&LeaseSpec>) -> Self {
        let spec = spec.cloned().unwrap_or_default();
        Self {
            holder: spec.holder_identity.unwrap_or_default(),
            renew_time: spec.renew_time.map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// Decides whether `me` may write itself as holder, given the record, whether it has been
/// unchanged for a full lease duration by our clock. Pure; the heart of the election.
pub fn may_take(record: &Record, me: &str, unchanged_for_lease_duration: bool) -> bool {
    record.holder.is_empty() || record.holder == me || unchanged_for_lease_duration
}

/// One candidate's view of one Lease.
struct Elector {
    api: Api<Lease>,
    params: LeaseParams,
    observed: Option<(Record, Instant)>,
}

impl Elector {
    fn new(client: kube::Client, params: LeaseParams) -> Self {
        Self {
            api: Api::namespaced(client, &params.namespace),
            params,
            observed: None,
        }
    }

    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaseError> {
        // A slow answer is still an answer: give each call up to the renew deadline (the leading
        // loop stops waiting at its own deadline anyway). Timing out at `retry_period` made a
        // leader behind a loaded API server (calls > 0.4 s at a 3 s lease) step down while every
        // renewal would have succeeded.
        match tokio::time::timeout(self.params.renew_deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(LeaseError::Api {
                lease: self.params.key(),
                source,
            }),
            Err(_) => Err(LeaseError::Timeout {
                lease: self.params.key(),
            }),
        }
    }

    fn spec_for_me(&self, previous: &Record, acquire: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let changed_holder = previous.holder != self.params.identity;
        LeaseSpec {
            holder_identity: Some(self.params.identity.clone()),
            lease_duration_seconds: Some(self.params.lease_duration.as_secs().max(1) as i32),
            acquire_time: if changed_holder {
                Some(now.clone())
            } else {
                acquire.or_else(|| Some(now.clone()))
            },
            renew_time: Some(now),
            lease_transitions: Some(if changed_holder && !previous.holder.is_empty() {
                previous.transitions + 1
            } else {
                previous.transitions
            }),
            ..Default::default()
        }
    }

    /// One acquire-or-renew step with compare-and-swap semantics.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, LeaseError> {
        let name = self.params.name.clone();
        let existing = self.call(self.api.get_opt(&name)).await?;
        let Some(lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.params.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec_for_me(&Record::default(), None)),
            };
            return match self
                .call(self.api.create(&PostParams::default(), &lease))
                .await
            {
                Ok(created) => {
                    self.observe(Record::from_spec(created.spec.as_ref()));
                    Ok(Attempt::Leading)
                }
                Err(LeaseError::Api {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 409 => Ok(Attempt::HeldByOther),
                Err(e) => Err(e),
            };
        };
        let record = Record::from_spec(lease.spec.as_ref());
        self.observe(record.clone());
        let unchanged_long_enough = self
            .observed
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= self.params.lease_duration);
        if !may_take(&record, &self.params.identity, unchanged_long_enough) {
            return Ok(Attempt::HeldByOther);
        }
        let mut updated = lease.clone();
        updated.spec = Some(self.spec_for_me(
            &record,
            lease.spec.as_ref().and_then(|s| s.acquire_time.clone()),
        ));
        match self
            .call(self.api.replace(&name, &PostParams::default(), &updated))
            .await
        {
            Ok(written) => {
                self.observe(Record::from_spec(written.spec.as_ref()));
                Ok(Attempt::Leading)
            }
            Err(LeaseError::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 409 => Ok(Attempt::HeldByOther),
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, record: Record) {
        match &self.observed {
            Some((r, _)) if *r == record => {}
            _ => self.observed = Some((record, Instant::now())),
        }
    }

    /// Gives the Lease up if we still hold it, so a standby takes over at once.
    async fn release(&mut self) -> Result<(), LeaseError> {
        let name = self.params.name.clone();
        let Some(mut lease) = self.call(self.api.get_opt(&name)).await? else {
            return Ok(());
        };
        let held = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.params.identity.as_str());
        if !held {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .call(self.api.replace(&name, &PostParams::default(), &lease))
            .await
        {
            Ok(_) => Ok(()),
            // Someone else wrote in between: it is not ours to release any more.
            Err(LeaseError::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A running election: observe leadership, and release it on shutdown.
#[derive(Debug)]
pub struct LeaderHandle {
    params: LeaseParams,
    state: watch::Receiver<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LeaderHandle {
    /// Whether this replica currently holds the Lease.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// A receiver that changes whenever leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }

    /// The election's parameters.
    pub fn params(&self) -> &LeaseParams {
        &self.params
    }

    /// Waits until this replica leads. Returns `false` if the election stopped first.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|l| *l).await.is_ok()
    }

    /// Waits until this replica no longer leads.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|l| !*l).await;
    }

    /// Stops the election and releases the Lease if held. Call after the work has stopped.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts an election on `params` in the background.
pub fn spawn(
    client: kube::Client,
    params: LeaseParams,
    metrics: Option<LeaderMetrics>,
) -> LeaderHandle {
    let (tx, rx) = watch::channel(false);
    let stop = CancellationToken::new();
    let mut elector = Elector::new(client, params.clone());
    let key = params.key();
    let stop2 = stop.clone();
    let set = move |leading: bool| {
        if let Some(m) = &metrics {
            m.set(&key, leading);
        }
        tx.send_if_modified(|cur| {
            let changed = *cur != leading;
            *cur = leading;
            changed
        });
    };
    let task = tokio::spawn(async move {
        let p = elector.params.clone();
        set(false);
        'outer: loop {
            // Candidate: try until we lead.
            let mut attempt_start;
            loop {
                attempt_start = Instant::now();
                match elector.try_acquire_or_renew().await {
                    Ok(Attempt::Leading) => break,
                    Ok(Attempt::HeldByOther) => {}
                    Err(e) => tracing::warn!(error = %e, "lease acquire attempt failed"),
                }
                if sleep_or_stop(jittered(p.retry_period), &stop2).await {
                    break 'outer;
                }
            }
            tracing::info!(lease = %p.key(), identity = %p.identity, "became leader");
            set(true);
            // Leader: renew until we can't. The deadline counts from the *start* of the last
            // successful renewal, which is no later than the write others observe.
            let mut deadline = attempt_start + p.renew_deadline;
            loop {
                tokio::select! {
                    _ = stop2.cancelled() => {
                        set(false);
                        match elector.release().await {
                            Ok(()) => tracing::info!(lease = %p.key(), "released lease"),
                            Err(e) => tracing::warn!(error = %e, "releasing lease failed"),
                        }
                        break 'outer;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::error!(lease = %p.key(), "could not renew within the renew deadline; stepping down");
                        break;
                    }
                    _ = tokio::time::sleep(p.retry_period) => {}
                }
                let start = Instant::now();
                let outcome = tokio::select! {
                    r = elector.try_acquire_or_renew() => Some(r),
                    _ = tokio::time::sleep_until(deadline) => None,
                };
                match outcome {
                    Some(Ok(Attempt::Leading)) => deadline = start + p.renew_deadline,
                    Some(Ok(Attempt::HeldByOther)) => {
                        tracing::warn!(lease = %p.key(), "lease taken by another replica; stepping down");
                        break;
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
                    None => {
                        tracing::error!(lease = %p.key(), "could not renew within the renew deadline; stepping down");
                        break;
                    }
                }
            }
            set(false);
        }
        set(false);
    });
    LeaderHandle {
        params,
        state: rx,
        stop,
        task,
    }
}

fn jittered(d: Duration) -> Duration {
    let f: f64 = rand::random::<f64>() * 0.2;
    d.mul_f64(1.0 + f)
}

/// Sleeps `d`; returns true if `stop` was cancelled first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}

/// What a controller's `main` does after start-up: with `--leader-elect`, runs `work` only while
/// this replica holds the Lease (default name `default_lease`); without, runs it at once. Both
/// until `shutdown`. A lease failure also fails `/healthz`, so the pod is restarted.
pub async fn lead_or_run<F, Fut>(
    common: &crate::flags::CommonArgs,
    default_lease: &str,
    client: kube::Client,
    state: &crate::admin::AdminState,
    shutdown: CancellationToken,
    mut work: F,
) -> Result<(), LeaseError>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if !common.leader_elect {
        work(shutdown).await;
        return Ok(());
    }
    let params = LeaseParams::new(
        common
            .lease_name
            .clone()
            .unwrap_or_else(|| default_lease.to_string()),
        common.lease_namespace(),
        common.identity(),
        common.lease_duration,
    );
    let handle = spawn(client, params, Some(LeaderMetrics::new(&state.metrics)));
    let result = run_while_leading(handle, shutdown, work).await;
    if let Err(e) = &result {
        state.health.fail(e.to_string());
    }
    result
}

/// Runs `work` whenever this replica leads, until `shutdown`.
///
/// `work` receives a token that is cancelled when leadership is lost or on shutdown; it should
/// return promptly then. When leadership is lost, `work` gets half the fencing margin to stop;
/// then it is aborted (dropped at its next await, like a killed process), and only if even that
/// does not end it within the margin this returns [`LeaseError::FencingTimeout`] (the caller
/// exits the process). Work must therefore not `tokio::spawn` side effects that outlive it. After `work` has
/// stopped on shutdown, the Lease is released so a standby takes over at once.
pub async fn run_while_leading<F, Fut>(
    mut handle: LeaderHandle,
    shutdown: CancellationToken,
    mut work: F,
) -> Result<(), LeaseError>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let margin = handle.params.fencing_margin();
    loop {
        tokio::select! {
            ok = handle.acquired() => if !ok { return Ok(()); },
            _ = shutdown.cancelled() => { handle.release().await; return Ok(()); }
        }
        let token = shutdown.child_token();
        let mut running = tokio::spawn(work(token.clone()));
        let lost = tokio::select! {
            _ = handle.lost() => true,
            _ = shutdown.cancelled() => false,
            _ = &mut running => {
                // The work ended on its own (e.g. a fatal error): give up leadership.
                handle.release().await;
                return Ok(());
            }
        };
        token.cancel();
        if lost {
            // Half the margin to stop gracefully; then drop the work wherever it waits (a
            // reconcile blocked on an API server that waits for etcd, say). Dropping is what a
            // SIGKILL does, which every step is built to survive, but the process stays up as a
            // standby. Only work that does not even yield is fenced by exiting.
            let graceful = margin / 2;
            if tokio::time::timeout(graceful, &mut running).await.is_ok() {
                tracing::info!(lease = %handle.params.key(), "work stopped after losing leadership");
            } else {
                running.abort();
                if tokio::time::timeout(margin - graceful, &mut running)
                    .await
                    .is_err()
                {
                    return Err(LeaseError::FencingTimeout {
                        lease: handle.params.key(),
                        margin,
                    });
                }
                tracing::warn!(
                    lease = %handle.params.key(),
                    after = ?graceful,
                    "work did not stop after losing leadership; aborted it"
                );
            }
        } else {
            let _ = running.await;
            handle.release().await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str) -> Record {
        Record {
            holder: holder.into(),
            renew_time: None,
            transitions: 0,
        }
    }

    #[test]
    fn take_rules() {
        assert!(may_take(&rec(""), "a", false), "released lease is free");
        assert!(may_take(&rec("a"), "a", false), "own lease is renewed");
        assert!(!may_take(&rec("b"), "a", false), "valid foreign lease");
        assert!(may_take(&rec("b"), "a", true), "expired foreign lease");
    }

    #[test]
    fn params_proportions_leave_a_fencing_margin() {
        let p = LeaseParams::new("l", "ns", "me", Duration::from_secs(15));
        assert_eq!(p.renew_deadline, Duration::from_secs(10));
        assert_eq!(p.retry_period, Duration::from_secs(2));
        assert_eq!(p.fencing_margin(), Duration::from_millis(4500));
        assert!(p.renew_deadline + p.fencing_margin() < p.lease_duration);
    }
}
