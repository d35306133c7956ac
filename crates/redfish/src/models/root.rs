//! The service root.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Link;
use super::de;

/// `ProtocolFeaturesSupported.ExpandQuery`: which `$expand` forms the service implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpandQuery {
    /// `$expand=*` supported.
    #[serde(rename = "ExpandAll", deserialize_with = "de::opt_bool")]
    pub expand_all: Option<bool>,
    /// `$levels` supported.
    #[serde(rename = "Levels", deserialize_with = "de::opt_bool")]
    pub levels: Option<bool>,
    /// `$expand=~` (links) supported.
    #[serde(rename = "Links", deserialize_with = "de::opt_bool")]
    pub links: Option<bool>,
    /// `$expand=.` (no links) supported.
    #[serde(rename = "NoLinks", deserialize_with = "de::opt_bool")]
    pub no_links: Option<bool>,
    /// Maximum `$levels`.
    #[serde(rename = "MaxLevels", deserialize_with = "de::opt_u32")]
    pub max_levels: Option<u32>,
}

impl ExpandQuery {
    /// The deepest `$expand=.($levels=n)` the service accepts, or `None` if it does not support
    /// expanding subordinate resources.
    pub fn no_links_levels(&self) -> Option<u32> {
        if self.no_links != Some(true) {
            return None;
        }
        if self.levels == Some(true) {
            Some(self.max_levels.unwrap_or(1).max(1))
        } else {
            Some(1)
        }
    }
}

/// `ProtocolFeaturesSupported`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtocolFeatures {
    /// `$expand` support.
    #[serde(rename = "ExpandQuery", deserialize_with = "de::opt")]
    pub expand_query: Option<ExpandQuery>,
    /// `$filter` support.
    #[serde(rename = "FilterQuery", deserialize_with = "de::opt_bool")]
    pub filter_query: Option<bool>,
    /// `$select` support.
    #[serde(rename = "SelectQuery", deserialize_with = "de::opt_bool")]
    pub select_query: Option<bool>,
    /// `only` support.
    #[serde(rename = "OnlyMemberQuery", deserialize_with = "de::opt_bool")]
    pub only_member_query: Option<bool>,
}

/// `Links` of the service root.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootLinks {
    /// The sessions collection (where to log in).
    #[serde(rename = "Sessions", deserialize_with = "de::opt_link")]
    pub sessions: Option<Link>,
}

/// The service root `/redfish/v1/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceRoot {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Redfish protocol version.
    #[serde(rename = "RedfishVersion", deserialize_with = "de::opt_string")]
    pub redfish_version: Option<String>,
    /// Service UUID.
    #[serde(rename = "UUID", deserialize_with = "de::opt_string")]
    pub uuid: Option<String>,
    /// Vendor (Redfish 1.5+), e.g. `Dell`, `HPE`, `Lenovo`.
    #[serde(rename = "Vendor", deserialize_with = "de::opt_string")]
    pub vendor: Option<String>,
    /// Product, e.g. `Integrated Dell Remote Access Controller`.
    #[serde(rename = "Product", deserialize_with = "de::opt_string")]
    pub product: Option<String>,
    /// Systems collection.
    #[serde(rename = "Systems", deserialize_with = "de::opt_link")]
    pub systems: Option<Link>,
    /// Managers collection.
    #[serde(rename = "Managers", deserialize_with = "de::opt_link")]
    pub managers: Option<Link>,
    /// Chassis collection.
    #[serde(rename = "Chassis", deserialize_with = "de::opt_link")]
    pub chassis: Option<Link>,
    /// Account service.
    #[serde(rename = "AccountService", deserialize_with = "de::opt_link")]
    pub account_service: Option<Link>,
    /// Session service.
    #[serde(rename = "SessionService", deserialize_with = "de::opt_link")]
    pub session_service: Option<Link>,
    /// Event service.
    #[serde(rename = "EventService", deserialize_with = "de::opt_link")]
    pub event_service: Option<Link>,
    /// Update service.
    #[serde(rename = "UpdateService", deserialize_with = "de::opt_link")]
    pub update_service: Option<Link>,
    /// Task service.
    #[serde(rename = "Tasks", deserialize_with = "de::opt_link")]
    pub tasks: Option<Link>,
    /// Registries collection.
    #[serde(rename = "Registries", deserialize_with = "de::opt_link")]
    pub registries: Option<Link>,
    /// Links.
    #[serde(rename = "Links", deserialize_with = "de::opt")]
    pub links: Option<RootLinks>,
    /// Protocol features.
    #[serde(rename = "ProtocolFeaturesSupported", deserialize_with = "de::opt")]
    pub protocol_features: Option<ProtocolFeatures>,
    /// OEM extensions (their keys name the vendor).
    #[serde(
        rename = "Oem",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub oem: Option<Value>,
}

impl ServiceRoot {
    /// The `$levels` usable with `$expand=.`, if any.
    pub fn expand_levels(&self) -> Option<u32> {
        self.protocol_features
            .as_ref()?
            .expand_query
            .as_ref()?
            .no_links_levels()
    }

    /// Keys of the `Oem` object (vendor names).
    pub fn oem_keys(&self) -> Vec<String> {
        match &self.oem {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}
