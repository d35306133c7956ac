//! `BIOSSettings`: BIOS attributes to apply to one server, in ordered steps, through a
//! maintenance window.

use crate::common::{ObjectReference, RetryPolicy, ServerMaintenancePolicy};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One step of BIOS settings; steps are applied in ascending `priority`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SettingsFlowItem {
    /// Name of the step, unique within the flow.
    #[schemars(length(min = 1, max = 1000))]
    pub name: String,
    /// BIOS attribute names and the values to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// Order of the step; lower values are applied first, and each value is used once.
    #[schemars(range(min = 1, max = 2147483645))]
    pub priority: i32,
}

/// The part of a BIOSSettings spec that a BIOSSettingsSet stamps out for every server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BIOSSettingsTemplate {
    /// BIOS version the settings are meant for; the server must run it before they are applied.
    #[x_kube(validation = Rule::new("self != ''").message(
        "version must not be empty: give the BIOS version the settings are meant for, as the BMC reports it"
    ))]
    pub version: String,
    /// Steps of settings, applied in ascending priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
            .message("settingsFlow names must be unique"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.priority == a.priority))")
            .message("settingsFlow priorities must be unique; they define the order in which steps are applied")
    )]
    pub settings_flow: Vec<SettingsFlowItem>,
    /// Automatic retries after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Whether the server owner must approve the maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_policy: Option<ServerMaintenancePolicy>,
}

/// Desired state of a BIOSSettings.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BIOSSettings",
    singular = "biossettings",
    plural = "biossettings",
    shortname = "bioss",
    category = "metal",
    status = "BIOSSettingsStatus",
    derive = "PartialEq",
    doc = "BIOS attributes to apply to one server in ordered steps.",
    printcolumn(name = "BIOSVersion", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "ServerRef",
        type_ = "string",
        json_path = ".spec.serverRef.name"
    ),
    printcolumn(
        name = "ServerMaintenanceRef",
        type_ = "string",
        json_path = ".spec.serverMaintenanceRef.name"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "AppliedOn",
        type_ = "date",
        json_path = ".status.lastAppliedTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BIOSSettingsSpec {
    /// What to apply.
    #[serde(flatten)]
    pub template: BIOSSettingsTemplate,
    /// The ServerMaintenance the controller requested for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_ref: Option<ObjectReference>,
    /// The server to configure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverRef is immutable; create a new BIOSSettings for another server"
    ))]
    pub server_ref: Option<LocalObjectReference>,
}

closed_enum! {
    /// Progress of a BIOSSettings object (and of each of its steps).
    pub enum BIOSSettingsState {
        /// Waiting (for maintenance, the server, or the BIOS version).
        Pending = "Pending",
        /// Being applied.
        InProgress = "InProgress",
        /// Applied and verified.
        Applied = "Applied",
        /// Gave up after the retry budget.
        Failed = "Failed",
    }
}

/// Progress of one settings step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BIOSSettingsFlowStatus {
    /// Progress of this step.
    #[serde(rename = "flowState", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BIOSSettingsState>,
    /// Name of the step in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Priority of the step in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Observations about this step, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When this step was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<Time>,
}

/// Observed state of a BIOSSettings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BIOSSettingsStatus {
    /// Overall progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BIOSSettingsState>,
    /// Progress of each step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow_state: Vec<BIOSSettingsFlowStatus>,
    /// When the last step was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<Time>,
    /// Automatic retries used so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
