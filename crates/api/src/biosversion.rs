//! `BIOSVersion`: a BIOS firmware version to install on one server.

use crate::common::{
    ImageSpec, ObjectReference, RetryPolicy, ServerMaintenancePolicy, SteppingStone, Task,
    UpdatePolicy,
};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The part of a BIOSVersion spec that a BIOSVersionSet stamps out for every server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BIOSVersionTemplate {
    /// BIOS version to end up with, compared with the server's reported version.
    #[x_kube(validation = Rule::new("self != ''").message(
        "version must not be empty: give the BIOS version to install, as the BMC reports it"
    ))]
    pub version: String,
    /// Whether the update may bypass the vendor's update policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<UpdatePolicy>,
    /// Firmware image to install.
    pub image: ImageSpec,
    /// Versions installed first, in this order, each verified before the next; stones the
    /// server has already passed (it runs one of them, or a later one was verified) are skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stepping_stones: Vec<SteppingStone>,
    /// Whether the server owner must approve the maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_policy: Option<ServerMaintenancePolicy>,
    /// Automatic retries after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
}

/// Desired state of a BIOSVersion.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BIOSVersion",
    singular = "biosversion",
    plural = "biosversions",
    shortname = "biosv",
    category = "metal",
    status = "BIOSVersionStatus",
    derive = "PartialEq",
    doc = "A BIOS firmware version to install on one server.",
    printcolumn(name = "BIOSVersion", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "UpdatePolicy",
        type_ = "string",
        json_path = ".spec.updatePolicy"
    ),
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
    printcolumn(
        name = "TaskState",
        type_ = "string",
        json_path = ".status.upgradeTask.state"
    ),
    printcolumn(
        name = "TaskStatus",
        type_ = "string",
        json_path = ".status.upgradeTask.status"
    ),
    printcolumn(
        name = "TaskProgress",
        type_ = "integer",
        json_path = ".status.upgradeTask.percentageComplete"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BIOSVersionSpec {
    /// What to install.
    #[serde(flatten)]
    pub template: BIOSVersionTemplate,
    /// The ServerMaintenance the controller requested for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_ref: Option<ObjectReference>,
    /// The server to update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverRef is immutable; create a new BIOSVersion for another server"
    ))]
    pub server_ref: Option<LocalObjectReference>,
}

closed_enum! {
    /// Progress of a firmware version object.
    pub enum VersionState {
        /// Waiting (for maintenance or the server).
        Pending = "Pending",
        /// Update issued, task running or verification pending.
        InProgress = "InProgress",
        /// The requested version is running.
        Completed = "Completed",
        /// Gave up after the retry budget.
        Failed = "Failed",
    }
}

/// Observed state of a BIOSVersion.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BIOSVersionStatus {
    /// Overall progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VersionState>,
    /// The update task on the BMC, recorded before polling so a restart does not re-issue it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_task: Option<Task>,
    /// Automatic retries used so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,
    /// The version being installed now (a stepping stone or `spec.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// How many of `spec.steppingStones` have been verified running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepping_stones_passed: Option<i32>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
