//! `BMCSettings`: BMC attributes to apply to one BMC, with variables resolved from other
//! objects.

use crate::common::{ObjectReference, RetryPolicy, ServerMaintenancePolicy};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Selects a field of the BMCSettings object itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRefSelector {
    /// Dotted path of a string field, e.g. `spec.BMCRef.name`.
    #[schemars(length(min = 1, max = 256))]
    pub field_path: String,
}

/// Selects a field of a named cluster-scoped object (only `BMC` is accepted).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldRefSelector {
    /// Kind of the object; must be `BMC`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the object; may use `$(VAR)` of variables declared earlier.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Path of the field, dotted with `[key]` for map keys containing dots or slashes.
    #[schemars(length(min = 1, max = 256))]
    pub field_path: String,
}

/// Selects a key of a namespaced ConfigMap or Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NamespacedKeySelector {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the object.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Key within the object.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where a variable's value comes from; exactly one source is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "(has(self.fieldRef) ? 1 : 0) + (has(self.objectFieldRef) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) == 1"
    ).message("set exactly one of fieldRef, objectFieldRef, configMapKeyRef or secretKeyRef"),
    validation = Rule::new("!has(self.objectFieldRef) || self.objectFieldRef.kind == 'BMC'")
        .message("objectFieldRef.kind must be BMC")
)]
pub struct VariableSourceValueFrom {
    /// A field of this BMCSettings object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRefSelector>,
    /// A field of a named BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_field_ref: Option<ObjectFieldRefSelector>,
    /// A ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<NamespacedKeySelector>,
    /// A Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<NamespacedKeySelector>,
}

/// A named value substituted as `$(key)` into setting values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// Variable name.
    #[schemars(length(min = 1, max = 63))]
    pub key: String,
    /// Source of the value.
    pub value_from: VariableSourceValueFrom,
}

/// The part of a BMCSettings spec that a BMCSettingsSet stamps out for every BMC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCSettingsTemplate {
    /// BMC firmware version the settings are meant for.
    #[x_kube(validation = Rule::new("self != ''").message(
        "version must not be empty: give the BMC firmware version the settings are meant for, as the BMC reports it"
    ))]
    pub version: String,
    /// BMC attribute names and values; values may reference variables as `$(key)`.
    #[serde(
        rename = "settings",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub settings: BTreeMap<String, String>,
    /// Variables for the settings, resolved in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.all(v, self.exists_one(w, w.key == v.key))")
        .message("variable keys must be unique"))]
    pub variables: Vec<Variable>,
    /// Automatic retries after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Whether the owners of the BMC's servers must approve the maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_policy: Option<ServerMaintenancePolicy>,
}

/// A reference to a ServerMaintenance created for one of the BMC's servers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerMaintenanceRefItem {
    /// The ServerMaintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_ref: Option<ObjectReference>,
}

/// Desired state of a BMCSettings.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMCSettings",
    singular = "bmcsettings",
    plural = "bmcsettings",
    category = "metal",
    status = "BMCSettingsStatus",
    derive = "PartialEq",
    doc = "BMC attributes to apply to one BMC.",
    printcolumn(name = "BMCVersion", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "BMCRef", type_ = "string", json_path = ".spec.BMCRef.name")
)]
#[serde(rename_all = "camelCase")]
pub struct BMCSettingsSpec {
    /// What to apply.
    #[serde(flatten)]
    pub template: BMCSettingsTemplate,
    /// ServerMaintenances the controller created for the BMC's servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_maintenance_refs: Vec<ServerMaintenanceRefItem>,
    /// The BMC to configure.
    #[serde(rename = "BMCRef")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "BMCRef is immutable; create a new BMCSettings for another BMC"
    ))]
    pub bmc_ref: LocalObjectReference,
}

closed_enum! {
    /// Progress of a BMCSettings object.
    pub enum BMCSettingsState {
        /// Waiting (for maintenance or the BMC).
        Pending = "Pending",
        /// Being applied.
        InProgress = "InProgress",
        /// Applied and verified.
        Applied = "Applied",
        /// Gave up after the retry budget.
        Failed = "Failed",
    }
}

/// Observed state of a BMCSettings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCSettingsStatus {
    /// Overall progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BMCSettingsState>,
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
