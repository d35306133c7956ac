//! Every write reservation makes, in one place.
//!
//! Compare-and-swap writes (JSON merge patches carrying `metadata.resourceVersion`, so the API
//! server rejects them with 409 when the object changed since it was read):
//!
//! * `Server.spec.serverClaimRef` (bind, clear) — one claim per server under any contention;
//! * `Server.status.state` — the state machine's transitions, checked against
//!   [`api::state::transition_owner`] first;
//! * ServerClaim `metadata.finalizers` + the binding-lock annotation (+ `spec.serverRef`).
//!
//! Everything else is server-side apply under the field manager `metal-reservation`, forced
//! (the fields are reservation's by contract, see `docs/controllers.md`): the claim's status
//! (`phase`, condition `Bound`), the claim's ServerBootConfiguration, and the readiness-rule
//! taints and completion annotations on Servers.

use crate::error::{Error, status_code};
use crate::matching::ClaimKey;
use api::constants::finalizers;
use api::server::{Server, ServerState};
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use api::state::{Controller, transition_owner};
use api::{API_VERSION, serverreadinessrule::ServerReadinessRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Field manager of every reservation write.
pub const FIELD_MANAGER: &str = Controller::Reservation.field_manager();

/// How long one write may take before its outcome counts as unknown.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Outcome of a compare-and-swap write that did not succeed.
#[derive(Debug)]
pub enum CasError {
    /// The object changed since it was read (HTTP 409).
    Conflict,
    /// The object is gone (HTTP 404).
    NotFound,
    /// Anything else.
    Failed(Error),
}

impl CasError {
    /// Turns the outcome into a reconcile error.
    pub fn into_error(self, what: impl Into<String>) -> Error {
        match self {
            CasError::Conflict => Error::Conflict { what: what.into() },
            CasError::NotFound => Error::Conflict {
                what: format!("{} (gone)", what.into()),
            },
            CasError::Failed(e) => e,
        }
    }
}

async fn call<T>(
    action: impl Into<String>,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, CasError> {
    let action = action.into();
    match tokio::time::timeout(WRITE_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => match status_code(&e) {
            Some(409) => Err(CasError::Conflict),
            Some(404) => Err(CasError::NotFound),
            _ => Err(CasError::Failed(Error::kube(action, e))),
        },
        Err(_) => Err(CasError::Failed(Error::Timeout { action })),
    }
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// Server-side apply parameters of reservation (forced: these fields are ours by contract).
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn resource_version<K: Resource>(o: &K) -> Result<String, CasError> {
    o.meta().resource_version.clone().ok_or_else(|| {
        CasError::Failed(Error::MissingField {
            what: o.meta().name.clone().unwrap_or_default(),
            field: "metadata.resourceVersion",
        })
    })
}

/// Sets (`Some`) or clears (`None`) `spec.serverClaimRef` on `server`, provided it has not
/// changed since it was read.
pub async fn set_claim_ref(
    api: &Api<Server>,
    server: &Server,
    claim: Option<&ClaimKey>,
) -> Result<Server, CasError> {
    let rv = resource_version(server)?;
    let name = server.name_any();
    let claim_ref = claim.map(|c| json!({"namespace": c.namespace, "name": c.name}));
    let body = json!({
        "metadata": {"resourceVersion": rv},
        "spec": {"serverClaimRef": claim_ref},
    });
    call(
        format!("writing serverClaimRef of server {name}"),
        api.patch(&name, &merge_params(), &Patch::Merge(&body)),
    )
    .await
}

/// Moves `server` to state `to`, provided its status has not changed since it was read and the
/// transition is reservation's to write.
pub async fn set_state(
    api: &Api<Server>,
    server: &Server,
    to: ServerState,
) -> Result<Server, CasError> {
    let name = server.name_any();
    let from = server.state();
    if transition_owner(from, to) != Some(Controller::Reservation) {
        return Err(CasError::Failed(Error::Transition {
            server: name,
            from: from.map_or("(none)".to_string(), |s| s.to_string()),
            to: to.to_string(),
        }));
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

/// Moves a released `server` (`Reserved`, reference cleared) to `Cleaning` and records the mode
/// in `CleaningRequested` in the same write, provided the server has not changed since it was
/// read (server-side apply: reservation owns exactly this condition entry).
pub async fn start_cleaning(
    api: &Api<Server>,
    server: &Server,
    mode: api::constants::CleaningMode,
) -> Result<Server, CasError> {
    let name = server.name_any();
    if transition_owner(server.state(), ServerState::Cleaning) != Some(Controller::Reservation) {
        return Err(CasError::Failed(Error::Transition {
            server: name,
            from: server
                .state()
                .map_or("(none)".to_string(), |s| s.to_string()),
            to: ServerState::Cleaning.to_string(),
        }));
    }
    let rv = resource_version(server)?;
    let condition = api::conditions::new(
        api::constants::condition_types::CLEANING_REQUESTED,
        api::conditions::ConditionStatus::True,
        mode.as_str(),
        &format!("released by a Recycle claim; cleaning mode {mode}"),
        server.metadata.generation,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let body = json!({
        "apiVersion": api::API_VERSION, "kind": "Server",
        "metadata": {"name": name, "resourceVersion": rv},
        "status": {"state": ServerState::Cleaning, "conditions": [condition]},
    });
    call(
        format!("moving server {name} to Cleaning"),
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        ),
    )
    .await
}

/// The cleaning mode of a server released by a `Recycle` claim: its annotation, else `default`.
pub fn cleaning_mode(
    server: &Server,
    default: api::constants::CleaningMode,
) -> api::constants::CleaningMode {
    server
        .annotations()
        .get(api::constants::CLEANING_MODE_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `o` carries finalizer `f`.
pub fn has_finalizer<K: Resource>(o: &K, f: &str) -> bool {
    o.meta()
        .finalizers
        .as_ref()
        .is_some_and(|fs| fs.iter().any(|x| x == f))
}

/// What to change on a claim in one compare-and-swap metadata write.
#[derive(Debug, Clone, Default)]
pub struct ClaimUpdate {
    /// Add (`Some(true)`) or remove (`Some(false)`) reservation's finalizer.
    pub finalizer: Option<bool>,
    /// Set (`Some(Some(v))`) or remove (`Some(None)`) the binding-lock annotation.
    pub lock: Option<Option<String>>,
    /// Set `spec.serverRef` (write-once: CEL rejects any change of an existing value).
    pub server_ref: Option<String>,
}

/// Applies `update` to `claim`, provided the claim has not changed since it was read.
pub async fn update_claim(
    api: &Api<ServerClaim>,
    claim: &ServerClaim,
    update: &ClaimUpdate,
) -> Result<ServerClaim, CasError> {
    let rv = resource_version(claim)?;
    let name = claim.name_any();
    let mut metadata = json!({"resourceVersion": rv});
    if let Some(add) = update.finalizer {
        let mut list: Vec<String> = claim.finalizers().to_vec();
        list.retain(|f| f != finalizers::SERVER_CLAIM);
        if add {
            list.push(finalizers::SERVER_CLAIM.to_string());
        }
        metadata["finalizers"] = json!(list);
    }
    if let Some(lock) = &update.lock {
        metadata["annotations"] = json!({ crate::lock::ANNOTATION: lock });
    }
    let mut body = json!({ "metadata": metadata });
    if let Some(server) = &update.server_ref {
        body["spec"] = json!({"serverRef": {"name": server}});
    }
    call(
        format!("updating claim {}", ClaimKey::of(claim)),
        api.patch(&name, &merge_params(), &Patch::Merge(&body)),
    )
    .await
}

/// Applies `update` to the claim, re-reading it after a conflict (for updates that are right
/// whatever else changed on the claim, e.g. dropping the finalizer). Returns `None` when the
/// claim is gone.
pub async fn update_claim_retrying(
    api: &Api<ServerClaim>,
    claim: &ServerClaim,
    update: &ClaimUpdate,
) -> Result<Option<ServerClaim>, Error> {
    let what = format!("claim {}", ClaimKey::of(claim));
    let mut current = claim.clone();
    for _ in 0..4 {
        match update_claim(api, &current, update).await {
            Ok(c) => return Ok(Some(c)),
            Err(CasError::NotFound) => return Ok(None),
            Err(CasError::Conflict) => match get(api, &current.name_any()).await? {
                Some(fresh) => current = fresh,
                None => return Ok(None),
            },
            Err(CasError::Failed(e)) => return Err(e),
        }
    }
    Err(Error::Conflict { what })
}

/// Reads an object live from the API server.
pub async fn get<K>(api: &Api<K>, name: &str) -> Result<Option<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match call(format!("reading {name}"), api.get_opt(name)).await {
        Ok(v) => Ok(v),
        Err(CasError::NotFound) => Ok(None),
        Err(e) => Err(e.into_error(name)),
    }
}

/// Writes the claim's `status.phase` and its `Bound` condition (server-side apply), provided the
/// claim is still at the `resourceVersion` it was read at: the caller decided from that version
/// (and counts metrics and events from it), so a stale read must not write. `Ok(false)` means
/// the claim moved on; its newer version triggers another reconcile.
pub async fn apply_claim_status(
    api: &Api<ServerClaim>,
    claim: &ServerClaim,
    phase: api::serverclaim::Phase,
    condition: &Condition,
) -> Result<bool, Error> {
    let name = claim.name_any();
    let rv = resource_version(claim).map_err(|e| e.into_error(&name))?;
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": "ServerClaim",
        "metadata": {"name": name, "namespace": claim.namespace(), "resourceVersion": rv},
        "status": {"phase": phase, "conditions": [condition]},
    });
    match call(
        format!("writing status of claim {}", ClaimKey::of(claim)),
        api.patch_status(&name, &apply_params(), &Patch::Apply(&body)),
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(CasError::Conflict | CasError::NotFound) => Ok(false),
        Err(CasError::Failed(e)) => Err(e),
    }
}

/// The ServerBootConfiguration spec reservation wants for `claim` bound to `server`.
pub fn boot_configuration_spec(
    claim: &ServerClaim,
    server: &str,
) -> api::serverbootconfiguration::ServerBootConfigurationSpec {
    api::serverbootconfiguration::ServerBootConfigurationSpec {
        server_ref: k8s_openapi::api::core::v1::LocalObjectReference {
            name: server.to_string(),
        },
        image: Some(claim.spec.image.clone()),
        ignition_secret_ref: claim.spec.ignition_secret_ref.clone(),
        ..Default::default()
    }
}

/// Whether `have` already carries every field of `want` that reservation writes
/// (`serverRef`, `image`, `ignitionSecretRef`; other fields belong to other writers).
pub fn boot_configuration_matches(
    have: &api::serverbootconfiguration::ServerBootConfigurationSpec,
    want: &api::serverbootconfiguration::ServerBootConfigurationSpec,
) -> bool {
    have.server_ref == want.server_ref
        && have.image == want.image
        && have.ignition_secret_ref == want.ignition_secret_ref
}

/// Creates or updates the claim's ServerBootConfiguration (named after the claim, owned by it).
pub async fn apply_boot_configuration(
    api: &Api<ServerBootConfiguration>,
    claim: &ServerClaim,
    server: &str,
) -> Result<(), CasError> {
    let name = claim.name_any();
    let uid = claim.uid().ok_or_else(|| {
        CasError::Failed(Error::MissingField {
            what: format!("claim {}", ClaimKey::of(claim)),
            field: "metadata.uid",
        })
    })?;
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": "ServerBootConfiguration",
        "metadata": {
            "name": name,
            "namespace": claim.namespace(),
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": "ServerClaim",
                "name": name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": boot_configuration_spec(claim, server),
    });
    call(
        format!("applying ServerBootConfiguration {}", ClaimKey::of(claim)),
        api.patch(&name, &apply_params(), &Patch::Apply(&body)),
    )
    .await
    .map(|_| ())
}

/// Deletes an object; absent is fine.
pub async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match call(
        format!("deleting {name}"),
        api.delete(name, &DeleteParams::default()),
    )
    .await
    {
        Ok(_) | Err(CasError::NotFound) => Ok(()),
        Err(e) => Err(e.into_error(name)),
    }
}

/// Applies the readiness-rule taints and completion annotations on a Server.
pub async fn apply_server_readiness(
    api: &Api<Server>,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), CasError> {
    call(
        format!("applying readiness taints of server {name}"),
        api.patch(name, &apply_params(), &Patch::Apply(body)),
    )
    .await
    .map(|_| ())
}

/// Adds or removes reservation's finalizer on a ServerReadinessRule (compare-and-swap, retried
/// after conflicts).
pub async fn set_rule_finalizer(
    api: &Api<ServerReadinessRule>,
    rule: &ServerReadinessRule,
    present: bool,
) -> Result<(), Error> {
    let mut current = rule.clone();
    let name = rule.name_any();
    for _ in 0..4 {
        let rv = resource_version(&current).map_err(|e| e.into_error(&name))?;
        let mut list: Vec<String> = current.finalizers().to_vec();
        list.retain(|f| f != finalizers::SERVER_READINESS_RULE);
        if present {
            list.push(finalizers::SERVER_READINESS_RULE.to_string());
        }
        let body = json!({"metadata": {"resourceVersion": rv, "finalizers": list}});
        match call(
            format!("updating finalizers of rule {name}"),
            api.patch(&name, &merge_params(), &Patch::Merge(&body)),
        )
        .await
        {
            Ok(_) | Err(CasError::NotFound) => return Ok(()),
            Err(CasError::Conflict) => match get(api, &name).await? {
                Some(fresh) => current = fresh,
                None => return Ok(()),
            },
            Err(CasError::Failed(e)) => return Err(e),
        }
    }
    Err(Error::Conflict {
        what: format!("rule {name}"),
    })
}
