//! `ServerReadinessRule`: keeps a taint on selected servers until they report the listed
//! conditions, so claims only land on servers that are really ready.

use crate::common::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

closed_enum! {
    /// When a readiness rule manages its taint.
    pub enum EnforcementMode {
        /// Only until the server first becomes ready; then the server is marked done for good.
        BootstrapOnly = "BootstrapOnly",
        /// Always: the taint comes back whenever the conditions stop holding.
        Continuous = "Continuous",
    }
}

closed_enum! {
    /// Status a condition must have for a requirement to hold.
    pub enum RequiredStatus {
        /// Condition status `True`.
        True = "True",
        /// Condition status `False`.
        False = "False",
        /// Condition status `Unknown`.
        Unknown = "Unknown",
    }
}

closed_enum! {
    /// Whether a rule's taint is on a server (reserved for future status reporting).
    pub enum TaintStatus {
        /// The taint is on the server.
        Present = "Present",
        /// The taint is not on the server.
        Absent = "Absent",
    }
}

/// A Server condition type and the status it must have.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionRequirement {
    /// Condition type on the Server, e.g. `Ready`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// Required status.
    pub required_status: RequiredStatus,
}

/// Desired state of a ServerReadinessRule. The whole spec is fixed at creation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "ServerReadinessRule",
    singular = "serverreadinessrule",
    plural = "serverreadinessrules",
    category = "metal",
    status = "ServerReadinessRuleStatus",
    derive = "PartialEq",
    doc = "Taints selected servers until they report the listed conditions."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message(
    "spec is immutable; delete the rule and create a new one to change it"
))]
pub struct ServerReadinessRuleSpec {
    /// Conditions that must all hold for the taint to be removed.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["type".into()]),
        validation = Rule::new("self == oldSelf").message("conditions is immutable")
    )]
    pub conditions: Vec<ConditionRequirement>,
    /// When the taint is managed.
    #[x_kube(validation = Rule::new("self == oldSelf").message("enforcementMode is immutable"))]
    pub enforcement_mode: EnforcementMode,
    /// The taint put on servers that do not meet the conditions.
    #[x_kube(
        validation = Rule::new("self.key.size() <= 253").message("taint key must be at most 253 characters"),
        validation = Rule::new("!has(oldSelf.key) || self.key == oldSelf.key").message("taint key is immutable"),
        validation = Rule::new("!has(oldSelf.effect) || (has(self.effect) && self.effect == oldSelf.effect)").message("taint effect is immutable"),
        validation = Rule::new("!has(oldSelf.value) || (has(self.value) && self.value == oldSelf.value)").message("taint value is immutable")
    )]
    pub taint: Taint,
    /// Servers the rule applies to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("serverSelector is immutable"))]
    pub server_selector: LabelSelector,
}

/// Observed state of a ServerReadinessRule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerReadinessRuleStatus {
    /// Observations about the rule, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
