//! Every write maintenance makes, in one place.
//!
//! Compare-and-swap writes (JSON merge patches carrying `metadata.resourceVersion`, rejected with
//! 409 when the object changed since it was read): a Server's `spec.serverMaintenanceRef` and
//! `status.state`. Everything else is server-side apply under the field manager
//! `metal-maintenance`, forced (the fields are maintenance's by contract, see
//! `docs/controllers.md`): ServerMaintenance and BIOSSettings status, the claim's
//! `maintenance-needed` label, finalizers, BIOSSettings `spec.serverMaintenanceRef`.

use crate::error::{Error, status_code};
use api::API_VERSION;
use api::server::{Server, ServerState};
use api::state::{Controller, transition_owner};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Field manager of every maintenance write.
pub const FIELD_MANAGER: &str = Controller::Maintenance.field_manager();

/// How long one write may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one API call with [`WRITE_TIMEOUT`]; a 409 becomes [`Error::Conflict`].
pub async fn call<T>(
    action: impl Into<String>,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    let action = action.into();
    match tokio::time::timeout(WRITE_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if status_code(&e) == Some(409) => Err(Error::Conflict { what: action }),
        Ok(Err(e)) => Err(Error::kube(action, e)),
        Err(_) => Err(Error::Timeout { action }),
    }
}

/// Server-side apply parameters of maintenance (forced: these fields are ours by contract).
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

fn resource_version<K: Resource>(o: &K) -> Result<String, Error> {
    o.meta()
        .resource_version
        .clone()
        .ok_or_else(|| Error::MissingField {
            what: o.meta().name.clone().unwrap_or_default(),
            field: "metadata.resourceVersion",
        })
}

/// Points (`Some((namespace, name))`) or clears `spec.serverMaintenanceRef` of `server`,
/// provided the server has not changed since it was read.
pub async fn set_maintenance_ref(
    api: &Api<Server>,
    server: &Server,
    to: Option<(&str, &str)>,
) -> Result<Server, Error> {
    set_spec_ref(api, server, "serverMaintenanceRef", to).await
}

/// Points (`Some((namespace, name))`) or clears `spec.maintenanceBootConfigurationRef` of
/// `server`, provided the server has not changed since it was read.
pub async fn set_maintenance_boot_ref(
    api: &Api<Server>,
    server: &Server,
    to: Option<(&str, &str)>,
) -> Result<Server, Error> {
    set_spec_ref(api, server, "maintenanceBootConfigurationRef", to).await
}

async fn set_spec_ref(
    api: &Api<Server>,
    server: &Server,
    field: &str,
    to: Option<(&str, &str)>,
) -> Result<Server, Error> {
    let rv = resource_version(server)?;
    let name = server.name_any();
    let value = to.map(|(ns, n)| json!({"namespace": ns, "name": n}));
    let body = json!({
        "metadata": {"resourceVersion": rv},
        "spec": {field: value},
    });
    call(
        format!("writing {field} of server {name}"),
        api.patch(&name, &merge_params(), &Patch::Merge(&body)),
    )
    .await
}

/// Server condition types maintenance writes (server-side apply owns exactly these entries).
const SERVER_CONDITIONS: &[&str] = &[
    api::constants::condition_types::PARKED,
    api::constants::condition_types::BOOT_WINDOW,
    api::constants::condition_types::CLEANED,
    api::constants::condition_types::CLEANING_AGENT_BOOT,
];

/// Records `updates` in the Server's conditions, provided the server has not changed since it
/// was read. The apply carries every condition maintenance writes (the current ones for the
/// types not updated): an apply that left one out would remove it.
pub async fn apply_server_conditions(
    api: &Api<Server>,
    server: &Server,
    updates: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
) -> Result<Server, Error> {
    let mut list: Vec<_> = server
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            SERVER_CONDITIONS.contains(&c.type_.as_str())
                && !updates.iter().any(|u| u.type_ == c.type_)
        })
        .collect();
    list.extend(updates);
    apply_status_if_unchanged(api, server, json!({ "conditions": list })).await
}

/// Moves `server` to `to`, provided it has not changed since it was read. Only the
/// transitions the state table gives maintenance are written.
pub async fn set_state(
    api: &Api<Server>,
    server: &Server,
    to: ServerState,
) -> Result<Server, Error> {
    let name = server.name_any();
    if transition_owner(server.state(), to) != Some(Controller::Maintenance) {
        return Err(Error::Conflict {
            what: format!(
                "server {name}: {} → {to} is not maintenance's transition",
                server
                    .state()
                    .map_or("(none)".to_string(), |s| s.to_string())
            ),
        });
    }
    let rv = resource_version(server)?;
    let body = json!({
        "metadata": {"resourceVersion": rv},
        "status": {"state": to},
    });
    call(
        format!("moving server {name} to {to}"),
        api.patch_status(&name, &merge_params(), &Patch::Merge(&body)),
    )
    .await
}

/// Applies `status` to object `name` of kind `K` (server-side apply, status subresource).
pub async fn apply_status<K>(api: &Api<K>, name: &str, status: Value) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": K::kind(&()),
        "metadata": {"name": name},
        "status": status,
    });
    call(
        format!("writing status of {} {name}", K::kind(&())),
        api.patch_status(name, &apply_params(), &Patch::Apply(&body)),
    )
    .await
}

/// Applies `status` to `object` only if the object has not changed since it was read (its
/// `resourceVersion` rides along as a precondition; a stale read gets 409). Records written
/// before a side effect go through here: a reconcile working from an outdated cache cannot
/// record, and therefore cannot send, a second request.
pub async fn apply_status_if_unchanged<K>(
    api: &Api<K>,
    object: &K,
    status: Value,
) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let name = object.name_any();
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": K::kind(&()),
        "metadata": {"name": name, "resourceVersion": resource_version(object)?},
        "status": status,
    });
    call(
        format!("recording in the status of {} {name}", K::kind(&())),
        api.patch_status(&name, &apply_params(), &Patch::Apply(&body)),
    )
    .await
}

/// Applies metadata and spec fields (`patch`: a partial object without apiVersion/kind).
pub async fn apply<K>(api: &Api<K>, name: &str, mut patch: Value) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    patch["apiVersion"] = json!(API_VERSION);
    patch["kind"] = json!(K::kind(&()));
    patch["metadata"]["name"] = json!(name);
    call(
        format!("applying {} {name}", K::kind(&())),
        api.patch(name, &apply_params(), &Patch::Apply(&patch)),
    )
    .await
}

/// Adds (`true`) or removes our `finalizer` (server-side apply owns only our entry). Only for
/// kinds where the finalizer is the only non-status field maintenance applies: an apply that
/// omits a field its manager owns removes it.
pub async fn set_finalizer<K>(
    api: &Api<K>,
    name: &str,
    finalizer: &str,
    on: bool,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let finalizers: Vec<&str> = if on { vec![finalizer] } else { vec![] };
    match apply(api, name, json!({"metadata": {"finalizers": finalizers}})).await {
        Ok(_) => Ok(()),
        // Removing from an object that is already gone is done.
        Err(Error::Kube { source, .. }) if !on && status_code(&source) == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets (`Some`) or removes (`None`) annotations of `server`, provided it has not changed
/// since it was read: the park flow removes a user's operation request only after acting on
/// exactly that request.
pub async fn set_annotations(
    api: &Api<Server>,
    server: &Server,
    changes: &[(&str, Option<&str>)],
) -> Result<Server, Error> {
    let rv = resource_version(server)?;
    let name = server.name_any();
    let annotations: serde_json::Map<String, Value> = changes
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.map_or(Value::Null, |v| json!(v))))
        .collect();
    let body = json!({
        "metadata": {"resourceVersion": rv, "annotations": annotations},
    });
    call(
        format!("writing annotations of server {name}"),
        api.patch(&name, &merge_params(), &Patch::Merge(&body)),
    )
    .await
}
