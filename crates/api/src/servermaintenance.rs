//! `ServerMaintenance` (deprecated upstream, kept for v0.7.0 compatibility): takes one server
//! out of normal service, with or without its owner's approval.

use crate::common::{IndicatorLED, Power, ServerMaintenancePolicy};
use crate::serverbootconfiguration::ServerBootConfigurationTemplate;
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a ServerMaintenance.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "ServerMaintenance",
    singular = "servermaintenance",
    plural = "servermaintenances",
    shortname = "sm",
    category = "metal",
    namespaced,
    status = "ServerMaintenanceStatus",
    derive = "PartialEq",
    doc = "A request to take one server into maintenance, optionally booting a maintenance image.",
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.serverRef.name"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.policy"),
    printcolumn(
        name = "BootConfiguration",
        type_ = "string",
        json_path = ".spec.serverBootConfigurationTemplate.name"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".metadata.annotations.metal\\.ironcore\\.dev\\/reason"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.serverBootConfigurationTemplate) || self.serverBootConfigurationTemplate.spec.serverRef.name == self.serverRef.name"
).message("serverBootConfigurationTemplate.spec.serverRef must name the maintained server (spec.serverRef)"))]
pub struct ServerMaintenanceSpec {
    /// Whether the claim owner must approve first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ServerMaintenancePolicy>,
    /// The server to maintain.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverRef is immutable; create a new ServerMaintenance for another server"
    ))]
    pub server_ref: LocalObjectReference,
    /// Power state to hold during maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_power: Option<Power>,
    /// Identification LED during maintenance; switched off afterwards.
    #[serde(
        rename = "locatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub locator_led: Option<IndicatorLED>,
    /// Order among maintenances of the same server: higher first, then older first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub priority: Option<i32>,
    /// Boot configuration to create and boot while in maintenance (in this maintenance's
    /// namespace, owned by it, deleted when it ends). With `serverPower: Off` it is prepared
    /// but not booted until the power is switched to On.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_boot_configuration_template: Option<ServerBootConfigurationTemplate>,
}

closed_enum! {
    /// Progress of a ServerMaintenance.
    pub enum ServerMaintenanceState {
        /// Waiting for approval or for the server.
        Pending = "Pending",
        /// The server is in maintenance.
        InMaintenance = "InMaintenance",
        /// Maintenance could not be carried out.
        Failed = "Failed",
    }
}

/// Observed state of a ServerMaintenance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerMaintenanceStatus {
    /// Progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerMaintenanceState>,
    /// Observations, one per type (addition over upstream).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
