//! Chassis.

use serde::{Deserialize, Serialize};

use super::{IndicatorLed, Link, PowerState, Status, de};

/// `Links` of a chassis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChassisLinks {
    /// Systems in this chassis.
    #[serde(rename = "ComputerSystems", deserialize_with = "de::vec_link")]
    pub computer_systems: Vec<Link>,
    /// Managers of this chassis.
    #[serde(rename = "ManagedBy", deserialize_with = "de::vec_link")]
    pub managed_by: Vec<Link>,
    /// Drives in this chassis.
    #[serde(rename = "Drives", deserialize_with = "de::vec_link")]
    pub drives: Vec<Link>,
}

/// A Chassis (enclosure, rack-mount box, backplane).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Chassis {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// RackMount, Blade, Enclosure, ...
    #[serde(rename = "ChassisType", deserialize_with = "de::opt_string")]
    pub chassis_type: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(rename = "Model", deserialize_with = "de::opt_string")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(rename = "SerialNumber", deserialize_with = "de::opt_string")]
    pub serial_number: Option<String>,
    /// Part number.
    #[serde(rename = "PartNumber", deserialize_with = "de::opt_string")]
    pub part_number: Option<String>,
    /// SKU.
    #[serde(rename = "SKU", deserialize_with = "de::opt_string")]
    pub sku: Option<String>,
    /// Asset tag.
    #[serde(rename = "AssetTag", deserialize_with = "de::opt_string")]
    pub asset_tag: Option<String>,
    /// Power state.
    #[serde(rename = "PowerState", deserialize_with = "de::opt")]
    pub power_state: Option<PowerState>,
    /// Indicator LED.
    #[serde(rename = "IndicatorLED", deserialize_with = "de::opt")]
    pub indicator_led: Option<IndicatorLed>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
    /// Drives collection.
    #[serde(rename = "Drives", deserialize_with = "de::opt_link")]
    pub drives: Option<Link>,
    /// Network adapters collection.
    #[serde(rename = "NetworkAdapters", deserialize_with = "de::opt_link")]
    pub network_adapters: Option<Link>,
    /// Links.
    #[serde(rename = "Links", deserialize_with = "de::opt")]
    pub links: Option<ChassisLinks>,
}
