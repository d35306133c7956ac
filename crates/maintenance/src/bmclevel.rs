//! What the BMC-level kinds (BMCVersion, BMCSettings) share: working on a BMC needs every one of
//! its servers in maintenance, so such an object requests one ServerMaintenance per server
//! (`<prefix>-<object>-<server>`, owned by the object, listed in `spec.serverMaintenanceRefs`)
//! and deletes them when it is done, failed or deleted.

use crate::{Ctx, Error, plan, writes};
use api::common::{ObjectReference, ServerMaintenancePolicy};
use api::constants::reasons;
use api::server::Server;
use api::servermaintenance::ServerMaintenance;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt as _};
use serde_json::{Value, json};
use std::sync::Arc;

/// A kind that works on a whole BMC.
pub(crate) trait BmcLevel:
    Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    /// Prefix of the maintenances' names.
    const PREFIX: &'static str;
    /// The finalizer that keeps the object until its maintenances are gone.
    const FINALIZER: &'static str;
    /// Approval policy of the maintenances.
    fn policy(&self) -> ServerMaintenancePolicy;
    /// The maintenances recorded in the spec.
    fn maintenance_refs(&self) -> Vec<ObjectReference>;
    /// `spec.serverMaintenanceRefs` as this kind spells it.
    fn refs_value(refs: &[ObjectReference]) -> Value;
}

impl BmcLevel for api::bmcversion::BMCVersion {
    const PREFIX: &'static str = "bmcversion";
    const FINALIZER: &'static str = api::constants::finalizers::BMC_VERSION;
    fn policy(&self) -> ServerMaintenancePolicy {
        self.spec
            .template
            .server_maintenance_policy
            .unwrap_or(ServerMaintenancePolicy::OwnerApproval)
    }
    fn maintenance_refs(&self) -> Vec<ObjectReference> {
        self.spec.server_maintenance_refs.clone()
    }
    fn refs_value(refs: &[ObjectReference]) -> Value {
        json!(
            refs.iter()
                .map(|r| json!({"namespace": r.namespace, "name": r.name}))
                .collect::<Vec<_>>()
        )
    }
}

impl BmcLevel for api::bmcsettings::BMCSettings {
    const PREFIX: &'static str = "bmcsettings";
    const FINALIZER: &'static str = api::constants::finalizers::BMC_SETTINGS;
    fn policy(&self) -> ServerMaintenancePolicy {
        self.spec
            .template
            .server_maintenance_policy
            .unwrap_or(ServerMaintenancePolicy::OwnerApproval)
    }
    fn maintenance_refs(&self) -> Vec<ObjectReference> {
        self.spec
            .server_maintenance_refs
            .iter()
            .filter_map(|r| r.server_maintenance_ref.clone())
            .collect()
    }
    fn refs_value(refs: &[ObjectReference]) -> Value {
        json!(
            refs.iter()
                .map(
                    |r| json!({"serverMaintenanceRef": {"namespace": r.namespace, "name": r.name}})
                )
                .collect::<Vec<_>>()
        )
    }
}

/// The servers of BMC `bmc` in this instance's cache, by name.
pub(crate) fn servers_of(ctx: &Ctx, bmc: &str) -> Vec<Arc<Server>> {
    let mut v: Vec<_> = ctx
        .servers
        .state()
        .into_iter()
        .filter(|s| s.spec.bmc_ref.as_ref().is_some_and(|r| r.name == bmc))
        .collect();
    v.sort_by_key(|s| s.name_any());
    v
}

/// Name of the maintenance `obj` of kind `K` requests for `server`.
pub(crate) fn maintenance_name<K: BmcLevel>(obj: &str, server: &str) -> String {
    crate::sets::child_name(&format!("{}-{obj}", K::PREFIX), server)
}

fn api<K: BmcLevel>(ctx: &Ctx) -> Api<K> {
    Api::all(ctx.client.clone())
}

/// Applies the finalizer and `spec.serverMaintenanceRefs` (both: an apply omitting a field its
/// manager owns removes it).
pub(crate) async fn apply_own<K: BmcLevel>(
    ctx: &Ctx,
    obj: &K,
    refs: &[ObjectReference],
) -> Result<(), Error> {
    let mut spec = json!({});
    if !refs.is_empty() {
        spec["serverMaintenanceRefs"] = K::refs_value(refs);
    }
    writes::apply(
        &api::<K>(ctx),
        &obj.name_any(),
        json!({"metadata": {"finalizers": [K::FINALIZER]}, "spec": spec}),
    )
    .await?;
    Ok(())
}

/// Requests one maintenance per server of the BMC; `Ok(true)` when every one exists and holds
/// its server.
pub(crate) async fn ensure_windows<K: BmcLevel>(
    ctx: &Ctx,
    obj: &K,
    servers: &[Arc<Server>],
) -> Result<bool, Error> {
    let ns = ctx.config.namespace.clone();
    let policy = obj.policy();
    let owner = obj
        .controller_owner_ref(&())
        .expect("a stored object has a name and uid");
    let mut refs = obj.maintenance_refs();
    let mut all_hold = true;
    let mut changed = false;
    for server in servers {
        let name = maintenance_name::<K>(&obj.name_any(), &server.name_any());
        let key = (ns.clone(), name.clone());
        if !refs.iter().any(|r| r.namespace == ns && r.name == name) {
            refs.push(ObjectReference {
                namespace: ns.clone(),
                name: name.clone(),
            });
            changed = true;
        }
        let exists = ctx
            .maintenances
            .get(&ObjectRef::new(&name).within(&ns))
            .is_some();
        if !exists {
            all_hold = false;
            let sm: ServerMaintenance = serde_json::from_value(json!({
                "apiVersion": api::API_VERSION, "kind": "ServerMaintenance",
                "metadata": {
                    "name": name, "namespace": ns, "ownerReferences": [owner],
                    "annotations": {
                        api::constants::REASON_ANNOTATION:
                            format!("{} {}", K::kind(&()), obj.name_any())
                    },
                },
                "spec": { "serverRef": { "name": server.name_any() }, "policy": policy },
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
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        } else if !plan::holds(server, &key) {
            all_hold = false;
        }
    }
    if changed {
        apply_own(ctx, obj, &refs).await?;
    }
    Ok(all_hold)
}

/// The finalizer's part of a reconcile: a deleted object releases its maintenances and drops
/// the finalizer; one without the finalizer gets it. `Some` when the reconcile ends there.
pub(crate) async fn lifecycle<K: BmcLevel>(
    ctx: &Ctx,
    obj: &K,
) -> Result<Option<kube::runtime::controller::Action>, Error> {
    let has_finalizer = obj.finalizers().iter().any(|f| f == K::FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        if has_finalizer {
            release(ctx, obj).await?;
            writes::set_finalizer(&api::<K>(ctx), &obj.name_any(), K::FINALIZER, false).await?;
        }
        return Ok(Some(kube::runtime::controller::Action::await_change()));
    }
    if !has_finalizer {
        apply_own(ctx, obj, &obj.maintenance_refs()).await?;
        return Ok(Some(kube::runtime::controller::Action::await_change()));
    }
    Ok(None)
}

/// Deletes every maintenance the object owns and clears the references.
pub(crate) async fn release<K: BmcLevel>(ctx: &Ctx, obj: &K) -> Result<(), Error> {
    let refs = obj.maintenance_refs();
    if refs.is_empty() {
        return Ok(());
    }
    let uid = obj.uid().unwrap_or_default();
    for r in &refs {
        let owned = ctx
            .maintenances
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
            .is_some_and(|sm| sm.owner_references().iter().any(|o| o.uid == uid));
        if !owned {
            continue;
        }
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
        apply_own(ctx, obj, &[]).await?;
    }
    Ok(())
}

/// Clock drift allowed between this controller and a BMC.
pub(crate) const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(120);

/// What the Manager says about a BMC reset recorded at `recorded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetSeen {
    /// `LastResetTime` is at or after the record (allowing for clock drift).
    Yes,
    /// `LastResetTime` is before the record.
    No,
    /// The Manager reports no `LastResetTime`.
    Unknown,
    /// The Manager did not answer (it may be restarting).
    Unreachable,
}

/// Whether the BMC was reset since `recorded`, by its Manager's `LastResetTime`.
pub(crate) async fn reset_seen(
    bmc: &redfish::Client,
    manager: &str,
    recorded: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> ResetSeen {
    let Ok(m) = bmc.manager(manager).await else {
        return ResetSeen::Unreachable;
    };
    let Some(at) = m
        .last_reset_time
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
    else {
        return ResetSeen::Unknown;
    };
    let earliest = recorded
        .0
        .checked_sub(k8s_openapi::jiff::SignedDuration::try_from(CLOCK_SLACK).unwrap_or_default())
        .unwrap_or(recorded.0);
    if at >= earliest {
        ResetSeen::Yes
    } else {
        ResetSeen::No
    }
}
