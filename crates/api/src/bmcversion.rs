//! `BMCVersion`: a BMC firmware version to install on one BMC.

use crate::biosversion::VersionState;
use crate::common::{
    ImageSpec, ObjectReference, RetryPolicy, ServerMaintenancePolicy, SteppingStone, Task,
    UpdatePolicy,
};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The part of a BMCVersion spec that a BMCVersionSet stamps out for every BMC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCVersionTemplate {
    /// BMC firmware version to end up with.
    #[x_kube(validation = Rule::new("self != ''").message(
        "version must not be empty: give the BMC firmware version to install, as the BMC reports it"
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
    /// Automatic retries after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Whether the owners of the BMC's servers must approve the maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_policy: Option<ServerMaintenancePolicy>,
}

/// Desired state of a BMCVersion.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMCVersion",
    singular = "bmcversion",
    plural = "bmcversions",
    shortname = "bmcv",
    category = "metal",
    status = "BMCVersionStatus",
    derive = "PartialEq",
    doc = "A BMC firmware version to install on one BMC.",
    printcolumn(name = "BMCVersion", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "UpdatePolicy",
        type_ = "string",
        json_path = ".spec.updatePolicy"
    ),
    printcolumn(name = "BMCRef", type_ = "string", json_path = ".spec.bmcRef.name"),
    printcolumn(
        name = "TaskProgress",
        type_ = "integer",
        json_path = ".status.upgradeTask.percentageComplete"
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
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BMCVersionSpec {
    /// What to install.
    #[serde(flatten)]
    pub template: BMCVersionTemplate,
    /// ServerMaintenances the controller created for the BMC's servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_maintenance_refs: Vec<ObjectReference>,
    /// The BMC to update.
    #[serde(rename = "bmcRef", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "bmcRef is immutable; create a new BMCVersion for another BMC"
    ))]
    pub bmc_ref: Option<LocalObjectReference>,
}

/// Observed state of a BMCVersion.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCVersionStatus {
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
