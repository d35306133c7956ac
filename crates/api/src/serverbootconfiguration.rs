//! `ServerBootConfiguration`: what a server boots (image and ignition); the provisioning
//! controller serves it and reports readiness.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a ServerBootConfiguration.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "ServerBootConfiguration",
    singular = "serverbootconfiguration",
    plural = "serverbootconfigurations",
    shortname = "sbc",
    category = "metal",
    namespaced,
    status = "ServerBootConfigurationStatus",
    derive = "PartialEq",
    doc = "The boot image and ignition for one server; ready once the boot side can serve it.",
    printcolumn(
        name = "ServerRef",
        type_ = "string",
        json_path = ".spec.serverRef.name"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(
        name = "IgnitionRef",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServerBootConfigurationSpec {
    /// The server that boots with this configuration.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverRef is immutable; create a new ServerBootConfiguration for another server"
    ))]
    pub server_ref: LocalObjectReference,
    /// OS image to boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Secret with the ignition configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
}

closed_enum! {
    /// Readiness of a boot configuration.
    pub enum ServerBootConfigurationState {
        /// Not yet servable.
        Pending = "Pending",
        /// Servable; the server may be booted.
        Ready = "Ready",
        /// Cannot be served.
        Error = "Error",
    }
}

/// Observed state of a ServerBootConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBootConfigurationStatus {
    /// Readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerBootConfigurationState>,
    /// Observations such as `BootStateReceived`, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A named ServerBootConfiguration spec, used where another object tells a controller which
/// boot configuration to create (e.g. during maintenance).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServerBootConfigurationTemplate {
    /// Name of the ServerBootConfiguration to create.
    pub name: String,
    /// Its spec.
    pub spec: ServerBootConfigurationSpec,
}
