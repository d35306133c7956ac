//! The four `*Set` kinds: stamp out one BIOSSettings/BIOSVersion per selected server, or one
//! BMCSettings/BMCVersion per selected BMC, and count their progress.

use crate::biossettings::BIOSSettingsTemplate;
use crate::biosversion::BIOSVersionTemplate;
use crate::bmcsettings::BMCSettingsTemplate;
use crate::bmcversion::BMCVersionTemplate;
use crate::common::Rollout;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL rule that rejects an empty label selector (which would select every object).
pub(crate) const NON_EMPTY_SELECTOR_RULE: &str = "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)";

/// Desired state of a BIOSSettingsSet.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BIOSSettingsSet",
    singular = "biossettingsset",
    plural = "biossettingssets",
    shortname = "biosss",
    category = "metal",
    status = "BIOSSettingsSetStatus",
    derive = "PartialEq",
    doc = "Creates one BIOSSettings per server matching the selector.",
    printcolumn(
        name = "BIOSVersion",
        type_ = "string",
        json_path = ".spec.biosSettingsTemplate.version"
    ),
    printcolumn(
        name = "TotalServers",
        type_ = "string",
        json_path = ".status.fullyLabeledServers"
    ),
    printcolumn(
        name = "AvailableBIOSSettings",
        type_ = "string",
        json_path = ".status.availableBIOSSettings"
    ),
    printcolumn(
        name = "Pending",
        type_ = "string",
        json_path = ".status.pendingBIOSSettings"
    ),
    printcolumn(
        name = "InProgress",
        type_ = "string",
        json_path = ".status.inProgressBIOSSettings"
    ),
    printcolumn(
        name = "Completed",
        type_ = "string",
        json_path = ".status.completedBIOSSettings"
    ),
    printcolumn(
        name = "Failed",
        type_ = "string",
        json_path = ".status.failedBIOSSettings"
    ),
    printcolumn(
        name = "InMaintenance",
        type_ = "integer",
        json_path = ".status.inMaintenance"
    ),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".status.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BIOSSettingsSetSpec {
    /// Template for the BIOSSettings created per server.
    #[serde(
        rename = "biosSettingsTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bios_settings_template: Option<BIOSSettingsTemplate>,
    /// Servers to configure.
    #[x_kube(validation = Rule::new(NON_EMPTY_SELECTOR_RULE).message(
        "serverSelector must have matchLabels or matchExpressions; an empty selector would select every server"
    ))]
    pub server_selector: LabelSelector,
    /// How many targets are worked on at once, and when the roll-out pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Observed state of a BIOSSettingsSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BIOSSettingsSetStatus {
    /// Servers matched by the selector.
    #[serde(
        rename = "fullyLabeledServers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fully_labeled_servers: Option<i32>,
    /// BIOSSettings created by the set.
    #[serde(
        rename = "availableBIOSSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub available: Option<i32>,
    /// Of those, pending.
    #[serde(
        rename = "pendingBIOSSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pending: Option<i32>,
    /// Of those, in progress.
    #[serde(
        rename = "inProgressBIOSSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_progress: Option<i32>,
    /// Of those, applied.
    #[serde(
        rename = "completedBIOSSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completed: Option<i32>,
    /// Of those, failed.
    #[serde(
        rename = "failedBIOSSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failed: Option<i32>,
    /// Children being worked on now (what `rollout.maxInMaintenance` limits).
    #[serde(
        rename = "inMaintenance",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_maintenance: Option<i32>,
    /// Whether the roll-out stopped starting children (`rollout.pauseAfterFailures` reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Desired state of a BIOSVersionSet.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BIOSVersionSet",
    singular = "biosversionset",
    plural = "biosversionsets",
    shortname = "biosvs",
    category = "metal",
    status = "BIOSVersionSetStatus",
    derive = "PartialEq",
    doc = "Creates one BIOSVersion per server matching the selector.",
    printcolumn(
        name = "BIOSVersion",
        type_ = "string",
        json_path = ".spec.biosVersionTemplate.version"
    ),
    printcolumn(
        name = "selectedServers",
        type_ = "integer",
        json_path = ".status.fullyLabeledServers"
    ),
    printcolumn(
        name = "AvailableBIOSVersion",
        type_ = "integer",
        json_path = ".status.availableBIOSVersion"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pendingBIOSVersion"
    ),
    printcolumn(
        name = "InProgress",
        type_ = "integer",
        json_path = ".status.inProgressBIOSVersion"
    ),
    printcolumn(
        name = "Completed",
        type_ = "integer",
        json_path = ".status.completedBIOSVersion"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failedBIOSVersion"
    ),
    printcolumn(
        name = "InMaintenance",
        type_ = "integer",
        json_path = ".status.inMaintenance"
    ),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".status.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BIOSVersionSetSpec {
    /// Servers to update.
    #[x_kube(validation = Rule::new(NON_EMPTY_SELECTOR_RULE).message(
        "serverSelector must have matchLabels or matchExpressions; an empty selector would select every server"
    ))]
    pub server_selector: LabelSelector,
    /// Template for the BIOSVersion created per server.
    #[serde(
        rename = "biosVersionTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bios_version_template: Option<BIOSVersionTemplate>,
    /// How many targets are worked on at once, and when the roll-out pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Observed state of a BIOSVersionSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BIOSVersionSetStatus {
    /// Servers matched by the selector.
    #[serde(
        rename = "fullyLabeledServers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fully_labeled_servers: Option<i32>,
    /// BIOSVersions created by the set.
    #[serde(
        rename = "availableBIOSVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub available: Option<i32>,
    /// Of those, pending.
    #[serde(
        rename = "pendingBIOSVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pending: Option<i32>,
    /// Of those, in progress.
    #[serde(
        rename = "inProgressBIOSVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_progress: Option<i32>,
    /// Of those, completed.
    #[serde(
        rename = "completedBIOSVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completed: Option<i32>,
    /// Of those, failed.
    #[serde(
        rename = "failedBIOSVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failed: Option<i32>,
    /// Children being worked on now (what `rollout.maxInMaintenance` limits).
    #[serde(
        rename = "inMaintenance",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_maintenance: Option<i32>,
    /// Whether the roll-out stopped starting children (`rollout.pauseAfterFailures` reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Desired state of a BMCSettingsSet.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMCSettingsSet",
    singular = "bmcsettingsset",
    plural = "bmcsettingssets",
    category = "metal",
    status = "BMCSettingsSetStatus",
    derive = "PartialEq",
    doc = "Creates one BMCSettings per BMC matching the selector.",
    printcolumn(
        name = "BMCVersion",
        type_ = "string",
        json_path = ".spec.bmcSettingsTemplate.version"
    ),
    printcolumn(
        name = "TotalBMCs",
        type_ = "integer",
        json_path = ".status.fullyLabeledBMCs"
    ),
    printcolumn(
        name = "AvailableBMCSettings",
        type_ = "integer",
        json_path = ".status.availableBMCSettings"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pendingBMCSettings"
    ),
    printcolumn(
        name = "InProgress",
        type_ = "integer",
        json_path = ".status.inProgressBMCSettings"
    ),
    printcolumn(
        name = "Completed",
        type_ = "integer",
        json_path = ".status.completedBMCSettings"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failedBMCSettings"
    ),
    printcolumn(
        name = "InMaintenance",
        type_ = "integer",
        json_path = ".status.inMaintenance"
    ),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".status.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BMCSettingsSetSpec {
    /// Template for the BMCSettings created per BMC.
    #[serde(rename = "bmcSettingsTemplate")]
    pub bmc_settings_template: BMCSettingsTemplate,
    /// BMCs to configure.
    #[serde(rename = "bmcSelector")]
    #[x_kube(validation = Rule::new(NON_EMPTY_SELECTOR_RULE).message(
        "bmcSelector must have matchLabels or matchExpressions; an empty selector would select every BMC"
    ))]
    pub bmc_selector: LabelSelector,
    /// How many targets are worked on at once, and when the roll-out pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Observed state of a BMCSettingsSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BMCSettingsSetStatus {
    /// BMCs matched by the selector.
    #[serde(
        rename = "fullyLabeledBMCs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fully_labeled_bmcs: Option<i32>,
    /// BMCSettings created by the set.
    #[serde(
        rename = "availableBMCSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub available: Option<i32>,
    /// Of those, pending.
    #[serde(
        rename = "pendingBMCSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pending: Option<i32>,
    /// Of those, in progress.
    #[serde(
        rename = "inProgressBMCSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_progress: Option<i32>,
    /// Of those, applied.
    #[serde(
        rename = "completedBMCSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completed: Option<i32>,
    /// Of those, failed.
    #[serde(
        rename = "failedBMCSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failed: Option<i32>,
    /// Children being worked on now (what `rollout.maxInMaintenance` limits).
    #[serde(
        rename = "inMaintenance",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_maintenance: Option<i32>,
    /// Whether the roll-out stopped starting children (`rollout.pauseAfterFailures` reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Desired state of a BMCVersionSet.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMCVersionSet",
    singular = "bmcversionset",
    plural = "bmcversionsets",
    shortname = "bmcvs",
    category = "metal",
    status = "BMCVersionSetStatus",
    derive = "PartialEq",
    doc = "Creates one BMCVersion per BMC matching the selector.",
    printcolumn(
        name = "BMCVersion",
        type_ = "string",
        json_path = ".spec.bmcVersionTemplate.version"
    ),
    printcolumn(
        name = "selectedBMCs",
        type_ = "integer",
        json_path = ".status.fullyLabeledBMCs"
    ),
    printcolumn(
        name = "AvailableBMCVersion",
        type_ = "integer",
        json_path = ".status.availableBMCVersion"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pendingBMCVersion"
    ),
    printcolumn(
        name = "InProgress",
        type_ = "integer",
        json_path = ".status.inProgressBMCVersion"
    ),
    printcolumn(
        name = "Completed",
        type_ = "integer",
        json_path = ".status.completedBMCVersion"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failedBMCVersion"
    ),
    printcolumn(
        name = "InMaintenance",
        type_ = "integer",
        json_path = ".status.inMaintenance"
    ),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".status.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BMCVersionSetSpec {
    /// BMCs to update.
    #[serde(rename = "bmcSelector")]
    #[x_kube(validation = Rule::new(NON_EMPTY_SELECTOR_RULE).message(
        "bmcSelector must have matchLabels or matchExpressions; an empty selector would select every BMC"
    ))]
    pub bmc_selector: LabelSelector,
    /// Template for the BMCVersion created per BMC.
    #[serde(
        rename = "bmcVersionTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bmc_version_template: Option<BMCVersionTemplate>,
    /// How many targets are worked on at once, and when the roll-out pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Observed state of a BMCVersionSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BMCVersionSetStatus {
    /// BMCs matched by the selector.
    #[serde(
        rename = "fullyLabeledBMCs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fully_labeled_bmcs: Option<i32>,
    /// BMCVersions created by the set.
    #[serde(
        rename = "availableBMCVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub available: Option<i32>,
    /// Of those, pending.
    #[serde(
        rename = "pendingBMCVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pending: Option<i32>,
    /// Of those, in progress.
    #[serde(
        rename = "inProgressBMCVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_progress: Option<i32>,
    /// Of those, completed.
    #[serde(
        rename = "completedBMCVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completed: Option<i32>,
    /// Of those, failed.
    #[serde(
        rename = "failedBMCVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failed: Option<i32>,
    /// Children being worked on now (what `rollout.maxInMaintenance` limits).
    #[serde(
        rename = "inMaintenance",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub in_maintenance: Option<i32>,
    /// Whether the roll-out stopped starting children (`rollout.pauseAfterFailures` reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}
