//! The `metal.ironcore.dev/v1alpha1` API: every kind as a Rust type with its CRD schema
//! (OpenAPI plus CEL validation), condition helpers, well-known names, and the Server state
//! machine. Pure data and logic, no I/O, so every other crate can depend on it.
//!
//! The field names, enums, defaults and scopes follow ironcore-dev/metal-operator v0.7.0
//! (plus the later upstream additions) so its manifests apply unchanged.

// `#[kube(printcolumn(...))]` repeats `type_ = ...` keys, which clippy mistakes for duplicated
// attributes.
#![allow(clippy::duplicated_attributes)]

#[macro_use]
mod macros;

pub mod biossettings;
pub mod biosversion;
pub mod bmc;
pub mod bmcsecret;
pub mod bmcsettings;
pub mod bmcuser;
pub mod bmcversion;
pub mod bootwindow;
pub mod common;
pub mod conditions;
pub mod constants;
pub mod crds;
pub mod endpoint;
pub mod server;
pub mod serverbootconfiguration;
pub mod serverclaim;
pub mod servermaintenance;
pub mod serverreadinessrule;
pub mod sets;
pub mod state;
pub mod validation_cases;
pub mod yaml;

pub use biossettings::{BIOSSettings, BIOSSettingsSpec, BIOSSettingsStatus};
pub use biosversion::{BIOSVersion, BIOSVersionSpec, BIOSVersionStatus};
pub use bmc::{BMC, BMCSpec, BMCStatus};
pub use bmcsecret::{BMCSecret, BMCSecretFields};
pub use bmcsettings::{BMCSettings, BMCSettingsSpec, BMCSettingsStatus};
pub use bmcuser::{BMCUser, BMCUserSpec, BMCUserStatus};
pub use bmcversion::{BMCVersion, BMCVersionSpec, BMCVersionStatus};
pub use endpoint::{Endpoint, EndpointSpec};
pub use server::{Server, ServerSpec, ServerState, ServerStatus};
pub use serverbootconfiguration::{
    ServerBootConfiguration, ServerBootConfigurationSpec, ServerBootConfigurationStatus,
};
pub use serverclaim::{ServerClaim, ServerClaimSpec, ServerClaimStatus};
pub use servermaintenance::{ServerMaintenance, ServerMaintenanceSpec, ServerMaintenanceStatus};
pub use serverreadinessrule::{
    ServerReadinessRule, ServerReadinessRuleSpec, ServerReadinessRuleStatus,
};
pub use sets::{BIOSSettingsSet, BIOSVersionSet, BMCSettingsSet, BMCVersionSet};

/// API group of every kind in this crate.
pub const GROUP: &str = "metal.ironcore.dev";
/// API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` value of every kind in this crate.
pub const API_VERSION: &str = "metal.ironcore.dev/v1alpha1";

/// A string did not match any value of a closed enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {type_name} value {value:?}")]
pub struct UnknownValue {
    /// Name of the enum type.
    pub type_name: &'static str,
    /// The rejected value.
    pub value: String,
}
