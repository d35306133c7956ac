//! Manager (the BMC itself).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bios::de_attributes;
use super::{Action, AttributeValue, Link, PowerState, Settings, Status, de};

/// `Actions` of a manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagerActions {
    /// `#Manager.Reset`.
    #[serde(rename = "#Manager.Reset", deserialize_with = "de::opt")]
    pub reset: Option<Action>,
    /// `#Manager.ResetToDefaults`.
    #[serde(rename = "#Manager.ResetToDefaults", deserialize_with = "de::opt")]
    pub reset_to_defaults: Option<Action>,
}

/// `Links` of a manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagerLinks {
    /// Systems this manager manages.
    #[serde(rename = "ManagerForServers", deserialize_with = "de::vec_link")]
    pub manager_for_servers: Vec<Link>,
    /// Chassis this manager manages.
    #[serde(rename = "ManagerForChassis", deserialize_with = "de::vec_link")]
    pub manager_for_chassis: Vec<Link>,
    /// OEM links (Dell: `Oem.Dell.DellAttributes`).
    #[serde(
        rename = "Oem",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub oem: Option<Value>,
}

/// Graphical/serial console capabilities (used to pick the "real" BMC among several managers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandConnectService {
    /// Enabled.
    #[serde(rename = "ServiceEnabled", deserialize_with = "de::opt_bool")]
    pub service_enabled: Option<bool>,
    /// Maximum sessions.
    #[serde(rename = "MaxConcurrentSessions", deserialize_with = "de::opt_u32")]
    pub max_concurrent_sessions: Option<u32>,
    /// Connection types.
    #[serde(rename = "ConnectTypesSupported", deserialize_with = "de::vec_string")]
    pub connect_types_supported: Vec<String>,
}

/// A Manager (BMC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Manager {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// BMC, EnclosureManager, ...
    #[serde(rename = "ManagerType", deserialize_with = "de::opt_string")]
    pub manager_type: Option<String>,
    /// Manager UUID.
    #[serde(rename = "UUID", deserialize_with = "de::opt_string")]
    pub uuid: Option<String>,
    /// Firmware version of the BMC.
    #[serde(rename = "FirmwareVersion", deserialize_with = "de::opt_string")]
    pub firmware_version: Option<String>,
    /// Model.
    #[serde(rename = "Model", deserialize_with = "de::opt_string")]
    pub model: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Serial number.
    #[serde(rename = "SerialNumber", deserialize_with = "de::opt_string")]
    pub serial_number: Option<String>,
    /// Part number.
    #[serde(rename = "PartNumber", deserialize_with = "de::opt_string")]
    pub part_number: Option<String>,
    /// Power state (absent on HPE iLO 6).
    #[serde(rename = "PowerState", deserialize_with = "de::opt")]
    pub power_state: Option<PowerState>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
    /// Current date and time of the BMC.
    #[serde(rename = "DateTime", deserialize_with = "de::opt_string")]
    pub date_time: Option<String>,
    /// Time zone offset.
    #[serde(rename = "DateTimeLocalOffset", deserialize_with = "de::opt_string")]
    pub date_time_local_offset: Option<String>,
    /// When the BMC was last reset.
    #[serde(rename = "LastResetTime", deserialize_with = "de::opt_string")]
    pub last_reset_time: Option<String>,
    /// The BMC's own network interfaces.
    #[serde(rename = "EthernetInterfaces", deserialize_with = "de::opt_link")]
    pub ethernet_interfaces: Option<Link>,
    /// Virtual media collection (older location; newer services put it under the system).
    #[serde(rename = "VirtualMedia", deserialize_with = "de::opt_link")]
    pub virtual_media: Option<Link>,
    /// Network protocol settings.
    #[serde(rename = "NetworkProtocol", deserialize_with = "de::opt_link")]
    pub network_protocol: Option<Link>,
    /// Graphical console.
    #[serde(rename = "GraphicalConsole", deserialize_with = "de::opt")]
    pub graphical_console: Option<CommandConnectService>,
    /// Actions.
    #[serde(rename = "Actions", deserialize_with = "de::opt")]
    pub actions: Option<ManagerActions>,
    /// Links.
    #[serde(rename = "Links", deserialize_with = "de::opt")]
    pub links: Option<ManagerLinks>,
    /// BMC attributes (services that expose them on the manager with a settings object).
    #[serde(
        rename = "Attributes",
        deserialize_with = "de_attributes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// `@Redfish.Settings` (BMC attributes through a settings object).
    #[serde(rename = "@Redfish.Settings", deserialize_with = "de::opt")]
    pub settings: Option<Settings>,
    /// OEM extensions.
    #[serde(
        rename = "Oem",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub oem: Option<Value>,
}

impl Manager {
    /// The reset action, if advertised.
    pub fn reset_action(&self) -> Option<&Action> {
        self.actions.as_ref()?.reset.as_ref()
    }

    /// Dell: the `DellAttributes` resources linked from `Links.Oem.Dell`.
    pub fn dell_attribute_links(&self) -> Vec<String> {
        let Some(oem) = self.links.as_ref().and_then(|l| l.oem.as_ref()) else {
            return Vec::new();
        };
        oem.pointer("/Dell/DellAttributes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|l| {
                        l.get("@odata.id")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
