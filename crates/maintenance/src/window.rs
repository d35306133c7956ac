//! Maintenance windows requested by Day-2 objects (BIOSSettings, BIOSVersion): one
//! ServerMaintenance `<prefix>-<name>` in the configured namespace, owned by the requester and
//! recorded in its `spec.serverMaintenanceRef`; deleted when the requester is done, failed or
//! deleted. A reference the user set to an existing maintenance is used and never deleted.

use crate::{Caches, Ctx, Error, plan, writes};
use api::biossettings::{BIOSSettings, BIOSSettingsState, BIOSSettingsStatus};
use api::biosversion::{BIOSVersion, BIOSVersionStatus, VersionState};
use api::common::{ObjectReference, ServerMaintenancePolicy};
use api::conditions::{self, ConditionStatus};
use api::constants::{OPERATION_ANNOTATION, Operation, finalizers, reasons};
use api::servermaintenance::ServerMaintenance;
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt as _};
use runtime::cache::SharedWatch;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A cluster-scoped Day-2 object that works inside a maintenance window of one server.
pub trait Requester:
    Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The finalizer that releases the maintenance before the object goes.
    const FINALIZER: &'static str;
    /// Prefix of the maintenance's name.
    const PREFIX: &'static str;
    /// The server the object is about.
    fn server(&self) -> Option<&str>;
    /// `spec.serverMaintenanceRef`.
    fn maintenance_ref(&self) -> Option<&ObjectReference>;
    /// `spec.serverMaintenancePolicy` (default `OwnerApproval`).
    fn policy(&self) -> ServerMaintenancePolicy;
    /// The status type.
    type Status: serde::Serialize + Clone + PartialEq + Default + Send + Sync;
    /// The status as stored.
    fn stored_status(&self) -> Option<&Self::Status>;
    /// Records the generation a status describes.
    fn observe(status: &mut Self::Status, generation: Option<i64>);
    /// Moves a status to `Pending`.
    fn mark_pending(status: &mut Self::Status);
    /// The status's top-level conditions.
    fn conditions(status: &mut Self::Status) -> &mut Vec<Condition>;
}

impl Requester for BIOSSettings {
    const FINALIZER: &'static str = finalizers::BIOS_SETTINGS;
    const PREFIX: &'static str = "bios";
    type Status = BIOSSettingsStatus;
    fn stored_status(&self) -> Option<&BIOSSettingsStatus> {
        self.status.as_ref()
    }
    fn observe(status: &mut BIOSSettingsStatus, generation: Option<i64>) {
        status.observed_generation = generation;
    }
    fn mark_pending(status: &mut BIOSSettingsStatus) {
        status.state = Some(BIOSSettingsState::Pending);
    }
    fn conditions(status: &mut BIOSSettingsStatus) -> &mut Vec<Condition> {
        &mut status.conditions
    }
    fn server(&self) -> Option<&str> {
        self.spec.server_ref.as_ref().map(|r| r.name.as_str())
    }
    fn maintenance_ref(&self) -> Option<&ObjectReference> {
        self.spec.server_maintenance_ref.as_ref()
    }
    fn policy(&self) -> ServerMaintenancePolicy {
        self.spec
            .template
            .server_maintenance_policy
            .unwrap_or(ServerMaintenancePolicy::OwnerApproval)
    }
}

impl Requester for BIOSVersion {
    const FINALIZER: &'static str = finalizers::BIOS_VERSION;
    const PREFIX: &'static str = "biosversion";
    type Status = BIOSVersionStatus;
    fn stored_status(&self) -> Option<&BIOSVersionStatus> {
        self.status.as_ref()
    }
    fn observe(status: &mut BIOSVersionStatus, generation: Option<i64>) {
        status.observed_generation = generation;
    }
    fn mark_pending(status: &mut BIOSVersionStatus) {
        status.state = Some(VersionState::Pending);
    }
    fn conditions(status: &mut BIOSVersionStatus) -> &mut Vec<Condition> {
        &mut status.conditions
    }
    fn server(&self) -> Option<&str> {
        self.spec.server_ref.as_ref().map(|r| r.name.as_str())
    }
    fn maintenance_ref(&self) -> Option<&ObjectReference> {
        self.spec.server_maintenance_ref.as_ref()
    }
    fn policy(&self) -> ServerMaintenancePolicy {
        self.spec
            .template
            .server_maintenance_policy
            .unwrap_or(ServerMaintenancePolicy::OwnerApproval)
    }
}

/// Runs the controller of requester kind `K`: triggered by its objects, by changes of their
/// servers and of the maintenances they own; with reconcile metrics, per-object backoff and
/// the caches synced before the first reconcile.
pub(crate) async fn run<K, F, Fut>(
    ctx: Arc<Ctx>,
    objects: &SharedWatch<K>,
    caches: &Caches,
    shutdown: CancellationToken,
    reconcile_one: F,
) where
    K: Requester,
    F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let store = objects.store();
    let by_server = store.clone();
    let reconcile = move |obj: Arc<K>, ctx: Arc<Ctx>| {
        let f = reconcile_one.clone();
        async move {
            let work = f(obj.clone(), ctx.clone());
            let key = ctx.server_shard_key(obj.server());
            instrumented(obj.as_ref(), &ctx, &key, work).await
        }
    };
    Controller::for_shared_stream(objects.applied(), store)
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        .watches_shared_stream(caches.servers.touched(), move |server| {
            let name = server.name_any();
            by_server
                .state()
                .iter()
                .filter(|o| o.server() == Some(name.as_str()))
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(caches.maintenances.touched(), |sm| {
            sm.owner_references()
                .iter()
                .filter(|o| o.kind == K::kind(&()))
                .map(|o| ObjectRef::<K>::new(&o.name))
                .collect::<Vec<_>>()
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, backoff::<K>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, kind = %K::kind(&()), "controller");
            }
        })
        .await;
}

/// Runs `work` as one reconcile of `obj`: after the caches synced, only if this replica holds
/// the shard of `shard_key` (dropped, as a kill would, the moment the shard is lost), counted
/// and timed in the reconcile metrics, the object's backoff forgotten on success.
pub(crate) async fn instrumented<K: Resource<DynamicType = ()>>(
    obj: &K,
    ctx: &Ctx,
    shard_key: &str,
    work: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    ctx.caches.ready().await;
    let Some(shard) = ctx.shards.enter(shard_key) else {
        // Another replica's; taking the shard later reconciles everything again.
        return Ok(Action::await_change());
    };
    let key = backoff_key(obj);
    let timer = ctx.metrics.start(&K::kind(&()));
    let result = tokio::select! {
        r = work => r,
        _ = shard.lost() => {
            timer.failure("ShardLost");
            return Ok(Action::await_change());
        }
    };
    match &result {
        Ok(_) => {
            timer.success();
            ctx.backoff.succeeded(&key);
        }
        Err(e) => timer.failure(e.reason()),
    }
    result
}

fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}/{}",
        K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The error policy of every controller here: log, then retry with the object's backoff.
pub(crate) fn backoff<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Ctx>,
) -> Action {
    let key = backoff_key(obj.as_ref());
    if matches!(error, Error::Conflict { .. }) {
        // A write from a read the cache had not caught up with: read again.
        tracing::debug!(object = %key, error = %error, "conflict, retrying");
    } else {
        tracing::warn!(object = %key, error = %error, "reconcile failed");
    }
    Action::requeue(ctx.backoff.failed(key))
}

/// Writes `status` (with the generation it describes) unless it is what is stored, only if the
/// object has not changed since it was read.
pub(crate) async fn write_status<K: Requester>(
    ctx: &Ctx,
    obj: &K,
    status: &K::Status,
) -> Result<(), Error> {
    let mut status = status.clone();
    K::observe(&mut status, obj.meta().generation);
    if obj.stored_status() == Some(&status) {
        return Ok(());
    }
    let value = serde_json::to_value(&status).unwrap_or_default();
    let api: Api<K> = Api::all(ctx.client.clone());
    // Conditional like the records themselves: a write from a stale read would drop a record
    // another reconcile made (and so repeat its side effect).
    writes::apply_status_if_unchanged(&api, obj, value).await?;
    Ok(())
}

/// `Pending` with `ServerMaintenanceWaiting` until maintenance `key` holds the server.
pub(crate) async fn wait_for_window<K: Requester>(
    ctx: &Ctx,
    obj: &K,
    mut status: K::Status,
    key: &plan::Key,
) -> Result<Action, Error> {
    K::mark_pending(&mut status);
    conditions::set(
        K::conditions(&mut status),
        condition(
            obj,
            api::constants::condition_types::SERVER_MAINTENANCE_WAITING,
            true,
            reasons::SERVER_MAINTENANCE_WAITING,
            &format!(
                "waiting for maintenance {}/{} to hold the server",
                key.0, key.1
            ),
        ),
    );
    write_status(ctx, obj, &status).await?;
    Ok(Action::requeue(ctx.config.resync))
}

/// A condition observed on `obj` now.
pub(crate) fn condition<K: Resource>(
    obj: &K,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    conditions::new(
        type_,
        ConditionStatus::from(ok),
        reason,
        message,
        obj.meta().generation,
        crate::now(),
    )
}

/// Time since `t`.
pub(crate) fn age(t: &Time) -> Duration {
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(t.0)
        .as_secs();
    Duration::from_secs(secs.max(0) as u64)
}

/// The maintenance `obj` requested, when it exists but does not hold `server` yet: the object
/// then waits without reading the BMC (the need for the window was decided when it was
/// requested; the window's own changes bring the object back).
pub(crate) fn waiting_for<K: Requester>(
    ctx: &Ctx,
    obj: &K,
    server: &api::server::Server,
) -> Option<plan::Key> {
    let r = obj.maintenance_ref()?;
    let key = (r.namespace.clone(), r.name.clone());
    let exists = ctx
        .maintenances
        .get(&ObjectRef::new(&r.name).within(&r.namespace))
        .is_some();
    (exists && !plan::holds(server, &key)).then_some(key)
}

/// Name of the maintenance `obj` requests.
pub fn maintenance_name<K: Requester>(obj: &K) -> String {
    format!("{}-{}", K::PREFIX, obj.name_any())
}

/// Whether the finalizer is on `obj`.
pub fn has_finalizer<K: Requester>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == K::FINALIZER)
}

/// Applies everything maintenance owns on `obj` outside its status: the finalizer and
/// `spec.serverMaintenanceRef`. Always both: an apply that omits a field its manager owns
/// removes it.
pub(crate) async fn apply_own<K: Requester>(
    ctx: &Ctx,
    obj: &K,
    maintenance: Option<(&str, &str)>,
) -> Result<(), Error> {
    let mut spec = json!({});
    if let Some((ns, name)) = maintenance {
        spec["serverMaintenanceRef"] = json!({"namespace": ns, "name": name});
    }
    let api: Api<K> = Api::all(ctx.client.clone());
    writes::apply(
        &api,
        &obj.name_any(),
        json!({"metadata": {"finalizers": [K::FINALIZER]}, "spec": spec}),
    )
    .await?;
    Ok(())
}

/// Adds the finalizer (keeping the reference as it is).
pub(crate) async fn add_finalizer<K: Requester>(ctx: &Ctx, obj: &K) -> Result<(), Error> {
    let current = obj.maintenance_ref().cloned();
    apply_own(
        ctx,
        obj,
        current
            .as_ref()
            .map(|r| (r.namespace.as_str(), r.name.as_str())),
    )
    .await
}

/// The common start of every requester's reconcile: skip ignored objects and servers of other
/// shards, finish deleting objects, add the finalizer. `Some(action)` ends the reconcile.
pub(crate) async fn prologue<K: Requester>(ctx: &Ctx, obj: &K) -> Result<Option<Action>, Error> {
    if api::constants::ignored(obj.meta()) || obj.server().is_some_and(|s| !ctx.in_scope(s)) {
        return Ok(Some(Action::await_change()));
    }
    if obj.meta().deletion_timestamp.is_some() {
        if has_finalizer(obj) {
            finish(ctx, obj).await?;
        }
        return Ok(Some(Action::await_change()));
    }
    if !has_finalizer(obj) {
        add_finalizer(ctx, obj).await?;
        return Ok(Some(Action::await_change()));
    }
    Ok(None)
}

/// Whether the user asked to retry (`metal.ironcore.dev/operation: retry`).
pub fn retry_requested<K: Resource>(obj: &K) -> bool {
    obj.annotations()
        .get(OPERATION_ANNOTATION)
        .is_some_and(|v| v == Operation::Retry.as_str())
}

/// Removes the retry annotation (the user's field: a merge patch, not an apply).
pub(crate) async fn clear_retry<K>(ctx: &Ctx, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let name = obj.name_any();
    let body = json!({"metadata": {"annotations": {OPERATION_ANNOTATION: null}}});
    let api: Api<K> = Api::all(ctx.client.clone());
    writes::call(
        format!("removing the retry annotation of {name}"),
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)),
    )
    .await?;
    Ok(())
}

/// `Failed` is sticky: a failed object only releases its maintenance, until the retry
/// annotation restarts it (`fresh` builds the restarted status). `Some(action)` ends the
/// reconcile.
pub(crate) async fn sticky_failure<K: Requester>(
    ctx: &Ctx,
    obj: &K,
    status: &K::Status,
    failed: bool,
    fresh: impl FnOnce(&K::Status) -> K::Status,
) -> Result<Option<Action>, Error> {
    if retry_requested(obj) {
        if failed {
            let mut next = fresh(status);
            conditions::set(
                K::conditions(&mut next),
                condition(
                    obj,
                    api::constants::condition_types::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    true,
                    reasons::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    "retry requested by annotation",
                ),
            );
            write_status(ctx, obj, &next).await?;
        }
        clear_retry(ctx, obj).await?;
        return Ok(Some(Action::await_change()));
    }
    if failed {
        release(ctx, obj).await?;
        return Ok(Some(Action::await_change()));
    }
    Ok(None)
}

/// Releases the maintenance and removes the finalizer (the object is being deleted).
pub(crate) async fn finish<K: Requester>(ctx: &Ctx, obj: &K) -> Result<(), Error> {
    release(ctx, obj).await?;
    let api: Api<K> = Api::all(ctx.client.clone());
    writes::set_finalizer(&api, &obj.name_any(), K::FINALIZER, false).await
}

/// The maintenance `obj` works under, requested if needed. `None` while the request is being
/// recorded (the next reconcile continues).
pub(crate) async fn ensure<K: Requester>(ctx: &Ctx, obj: &K) -> Result<Option<plan::Key>, Error> {
    if let Some(r) = obj.maintenance_ref() {
        let exists = ctx
            .maintenances
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
            .is_some();
        if exists {
            return Ok(Some((r.namespace.clone(), r.name.clone())));
        }
    }
    let ns = ctx.config.namespace.clone();
    let name = maintenance_name(obj);
    let owner = obj
        .controller_owner_ref(&())
        .expect("a stored object has a name and uid");
    let policy = obj.policy();
    let sm: ServerMaintenance = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "ServerMaintenance",
        "metadata": {
            "name": name, "namespace": ns, "ownerReferences": [owner],
            "annotations": {
                api::constants::REASON_ANNOTATION: format!("{} {}", K::kind(&()), obj.name_any())
            },
        },
        "spec": { "serverRef": { "name": obj.server().unwrap_or_default() }, "policy": policy },
    }))
    .expect("a valid ServerMaintenance");
    let sms: Api<ServerMaintenance> = Api::namespaced(ctx.client.clone(), &ns);
    match writes::call(
        format!("creating ServerMaintenance {ns}/{name}"),
        sms.create(&PostParams::default(), &sm),
    )
    .await
    {
        Ok(_) => ctx.events.normal(
            obj,
            reasons::SERVER_MAINTENANCE_CREATED,
            format!("requested maintenance {ns}/{name} ({policy})"),
        ),
        // Already there (an earlier reconcile created it): adopt it.
        Err(Error::Conflict { .. }) => {}
        Err(e) => return Err(e),
    }
    apply_own(ctx, obj, Some((&ns, &name))).await?;
    Ok(None)
}

/// Deletes the maintenance `obj` requested (only one it owns) and clears the reference.
pub(crate) async fn release<K: Requester>(ctx: &Ctx, obj: &K) -> Result<(), Error> {
    let Some(r) = obj.maintenance_ref() else {
        return Ok(());
    };
    let uid = obj.uid().unwrap_or_default();
    let owned = ctx
        .maintenances
        .get(&ObjectRef::new(&r.name).within(&r.namespace))
        .is_some_and(|sm| sm.owner_references().iter().any(|o| o.uid == uid));
    if owned {
        let sms: Api<ServerMaintenance> = Api::namespaced(ctx.client.clone(), &r.namespace);
        match writes::call(
            format!("deleting ServerMaintenance {}/{}", r.namespace, r.name),
            sms.delete(&r.name, &DeleteParams::default()),
        )
        .await
        {
            Ok(_) => ctx.events.normal(
                obj,
                reasons::SERVER_MAINTENANCE_DELETED,
                format!("released maintenance {}/{}", r.namespace, r.name),
            ),
            Err(Error::Kube { source, .. }) if crate::error::status_code(&source) == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    if obj.meta().deletion_timestamp.is_none() {
        apply_own(ctx, obj, None).await?;
    }
    Ok(())
}
