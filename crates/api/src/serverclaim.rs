//! `ServerClaim`: a request for one server, by name or by label selector, that the reservation
//! controller binds to exactly one matching Available server.

use crate::common::{Power, Toleration};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Secret type required for Secrets referenced by `ServerClaim.spec.userDataRef`.
pub const SECRET_TYPE_USER_DATA: &str = "metal.ironcore.dev/user-data";

/// Desired state of a ServerClaim.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "ServerClaim",
    singular = "serverclaim",
    plural = "serverclaims",
    shortname = "scl",
    category = "metal",
    namespaced,
    status = "ServerClaimStatus",
    derive = "PartialEq",
    doc = "A request for one server (by name or label selector) together with what it should boot.",
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.serverRef.name"),
    printcolumn(
        name = "Ignition",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(oldSelf.serverRef) || has(self.serverRef)")
        .message("serverRef cannot be removed once set; delete the claim to release the server"),
    validation = Rule::new("!has(oldSelf.serverSelector) || has(self.serverSelector)")
        .message("serverSelector cannot be removed once set; create a new claim instead")
)]
pub struct ServerClaimSpec {
    /// Power state the claimed server should be kept in.
    pub power: Power,
    /// A specific server to claim. When only a selector is given, the controller fills this in
    /// with the server it picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverRef is immutable; delete and recreate the claim to claim another server"
    ))]
    pub server_ref: Option<LocalObjectReference>,
    /// Labels a server must carry to be picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverSelector is immutable; create a new claim with a different selector"
    ))]
    pub server_selector: Option<LabelSelector>,
    /// Secret with the ignition (or other first-boot) configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
    /// Secret of type `metal.ironcore.dev/user-data` served to the booted server by the
    /// metadata service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_ref: Option<LocalObjectReference>,
    /// OS image to boot.
    pub image: String,
    /// Taints on servers this claim accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tolerations: Vec<Toleration>,
}

closed_enum! {
    /// Binding phase of a ServerClaim.
    pub enum Phase {
        /// Bound to a server.
        Bound = "Bound",
        /// Not bound (yet, or any more).
        Unbound = "Unbound",
    }
}

/// Observed state of a ServerClaim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerClaimStatus {
    /// Binding phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Observations, one per type (addition over upstream).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
