//! Writing status with server-side apply under the field manager `metal-provisioning`: the
//! Server's `powerState` and provisioning's conditions (with the Server's `resourceVersion` as
//! precondition when the write records an intent before a side effect), the claim's `PoweredOn`
//! / `PoweredOff`, and the ServerBootConfiguration's `state` and `Ready`.

use api::conditions::{self, ConditionStatus};
use api::server::{Server, ServerPowerState};
use api::serverbootconfiguration::{ServerBootConfiguration, ServerBootConfigurationState};
use api::serverclaim::ServerClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::conditions::{
    BOOT_WINDOW, POWERED_OFF, POWERED_ON, POWERING_ON, READY, RESET_IN_PROGRESS,
    WAITING_FOR_POWER_OFF,
};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = api::state::Controller::Provisioning.field_manager();

/// Server condition types provisioning owns.
pub const SERVER_CONDITIONS: &[&str] = &[
    POWERING_ON,
    WAITING_FOR_POWER_OFF,
    RESET_IN_PROGRESS,
    BOOT_WINDOW,
];
/// Claim condition types provisioning owns.
pub const CLAIM_CONDITIONS: &[&str] = &[POWERED_ON, POWERED_OFF];

/// Now, as a condition time.
pub fn now() -> Time {
    Time(Timestamp::now())
}

/// Sets a condition in `list` (keeping `lastTransitionTime` when the status does not change);
/// returns whether anything changed.
pub fn set(
    list: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> bool {
    conditions::set(
        list,
        conditions::new(type_, status, reason, message, generation, now()),
    )
}

/// The conditions of `types` in `all`.
pub fn owned(all: &[Condition], types: &[&str]) -> Vec<Condition> {
    all.iter()
        .filter(|c| types.contains(&c.type_.as_str()))
        .cloned()
        .collect()
}

/// What provisioning writes into a Server's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDraft {
    /// `status.powerState`.
    pub power_state: Option<ServerPowerState>,
    /// Provisioning's conditions.
    pub conditions: Vec<Condition>,
}

impl ServerDraft {
    /// The draft as currently stored on `server`.
    pub fn of(server: &Server) -> Self {
        let st = server.status.clone().unwrap_or_default();
        Self {
            power_state: st.power_state,
            conditions: owned(&st.conditions, SERVER_CONDITIONS),
        }
    }

    /// The condition of `type_`.
    pub fn get(&self, type_: &str) -> Option<&Condition> {
        conditions::get(&self.conditions, type_)
    }
}

/// Whether a Kubernetes error is a `resourceVersion` conflict.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a Kubernetes error is "not found".
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Applies `draft` to the Server's status. With `precondition`, the write fails with a conflict
/// unless the Server is still at the `resourceVersion` of `server`.
pub async fn apply_server(
    client: &kube::Client,
    server: &Server,
    draft: &ServerDraft,
    precondition: bool,
) -> Result<Server, kube::Error> {
    let mut meta = json!({ "name": server.name_any() });
    if precondition && let Some(rv) = &server.metadata.resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    let mut status = json!({ "conditions": draft.conditions });
    if let Some(p) = draft.power_state {
        status["powerState"] = json!(p);
    }
    let body = json!({
        "apiVersion": api::API_VERSION,
        "kind": "Server",
        "metadata": meta,
        "status": status,
    });
    Api::<Server>::all(client.clone())
        .patch_status(
            &server.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
}

/// Applies provisioning's conditions to a claim's status.
pub async fn apply_claim(
    client: &kube::Client,
    claim: &ServerClaim,
    conditions: &[Condition],
) -> Result<ServerClaim, kube::Error> {
    let body = json!({
        "apiVersion": api::API_VERSION,
        "kind": "ServerClaim",
        "metadata": { "name": claim.name_any(), "namespace": claim.namespace() },
        "status": { "conditions": conditions },
    });
    Api::<ServerClaim>::namespaced(client.clone(), &claim.namespace().unwrap_or_default())
        .patch_status(
            &claim.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
}

/// Applies a ServerBootConfiguration's `state` and `Ready` condition.
pub async fn apply_sbc(
    client: &kube::Client,
    sbc: &ServerBootConfiguration,
    state: ServerBootConfigurationState,
    ready: &Condition,
) -> Result<(), kube::Error> {
    let body = json!({
        "apiVersion": api::API_VERSION,
        "kind": "ServerBootConfiguration",
        "metadata": { "name": sbc.name_any(), "namespace": sbc.namespace() },
        "status": { "state": state, "conditions": [ready] },
    });
    Api::<ServerBootConfiguration>::namespaced(client.clone(), &sbc.namespace().unwrap_or_default())
        .patch_status(
            &sbc.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map(|_| ())
}

/// Whether a ServerBootConfiguration is Ready for its current spec.
pub fn sbc_ready(sbc: &ServerBootConfiguration) -> bool {
    let Some(st) = &sbc.status else { return false };
    if st.state != Some(ServerBootConfigurationState::Ready) {
        return false;
    }
    match conditions::get(&st.conditions, READY) {
        Some(c) => {
            c.status == ConditionStatus::True.as_str()
                && c.observed_generation == sbc.metadata.generation
        }
        None => true,
    }
}
