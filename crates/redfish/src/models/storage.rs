//! Storage, storage controllers, drives, volumes, and the older SimpleStorage.

use serde::{Deserialize, Serialize};

use super::{Link, Status, de, redfish_enum};

redfish_enum! {
    /// Drive media type.
    MediaType {
        /// Rotating disk.
        Hdd = "HDD",
        /// Solid state.
        Ssd = "SSD",
        /// Shingled magnetic recording.
        Smr = "SMR",
    }
}

/// A storage controller (inline in `StorageControllers` or a member of the `Controllers` collection).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageController {
    /// Path (inline controllers carry a JSON-pointer path).
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id (collection members).
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Member id (inline array entries).
    #[serde(rename = "MemberId", deserialize_with = "de::opt_string")]
    pub member_id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(rename = "Model", deserialize_with = "de::opt_string")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(rename = "FirmwareVersion", deserialize_with = "de::opt_string")]
    pub firmware_version: Option<String>,
    /// Serial number.
    #[serde(rename = "SerialNumber", deserialize_with = "de::opt_string")]
    pub serial_number: Option<String>,
    /// Part number.
    #[serde(rename = "PartNumber", deserialize_with = "de::opt_string")]
    pub part_number: Option<String>,
    /// Speed in Gbit/s.
    #[serde(rename = "SpeedGbps", deserialize_with = "de::opt_f64")]
    pub speed_gbps: Option<f64>,
    /// Controller protocols (PCIe, SAS, ...).
    #[serde(
        rename = "SupportedControllerProtocols",
        deserialize_with = "de::vec_string"
    )]
    pub supported_controller_protocols: Vec<String>,
    /// Device protocols (NVMe, SATA, ...).
    #[serde(
        rename = "SupportedDeviceProtocols",
        deserialize_with = "de::vec_string"
    )]
    pub supported_device_protocols: Vec<String>,
    /// RAID levels.
    #[serde(rename = "SupportedRAIDTypes", deserialize_with = "de::vec_string")]
    pub supported_raid_types: Vec<String>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// A Storage subsystem.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Storage {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Description.
    #[serde(rename = "Description", deserialize_with = "de::opt_string")]
    pub description: Option<String>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
    /// Inline controllers (deprecated in newer schemas, still common).
    #[serde(rename = "StorageControllers", deserialize_with = "de::vec")]
    pub storage_controllers: Vec<StorageController>,
    /// Controllers collection (newer schemas).
    #[serde(rename = "Controllers", deserialize_with = "de::opt_link")]
    pub controllers: Option<Link>,
    /// Drives (links; may live under a Chassis).
    #[serde(rename = "Drives", deserialize_with = "de::vec_link")]
    pub drives: Vec<Link>,
    /// Volumes collection.
    #[serde(rename = "Volumes", deserialize_with = "de::opt_link")]
    pub volumes: Option<Link>,
}

/// A Drive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Drive {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
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
    /// Firmware revision.
    #[serde(rename = "Revision", deserialize_with = "de::opt_string")]
    pub revision: Option<String>,
    /// Capacity in bytes.
    #[serde(rename = "CapacityBytes", deserialize_with = "de::opt_u64")]
    pub capacity_bytes: Option<u64>,
    /// HDD/SSD/SMR.
    #[serde(rename = "MediaType", deserialize_with = "de::opt")]
    pub media_type: Option<MediaType>,
    /// Protocol (SATA, SAS, NVMe, ...).
    #[serde(rename = "Protocol", deserialize_with = "de::opt_string")]
    pub protocol: Option<String>,
    /// Form factor.
    #[serde(rename = "FormFactor", deserialize_with = "de::opt_string")]
    pub form_factor: Option<String>,
    /// Block size.
    #[serde(rename = "BlockSizeBytes", deserialize_with = "de::opt_u64")]
    pub block_size_bytes: Option<u64>,
    /// Rotation speed (HDD).
    #[serde(rename = "RotationSpeedRPM", deserialize_with = "de::opt_f64")]
    pub rotation_speed_rpm: Option<f64>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// A Volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Capacity in bytes.
    #[serde(rename = "CapacityBytes", deserialize_with = "de::opt_u64")]
    pub capacity_bytes: Option<u64>,
    /// RAID level (RAID0, RAID1, ...).
    #[serde(rename = "RAIDType", deserialize_with = "de::opt_string")]
    pub raid_type: Option<String>,
    /// Volume type (deprecated form).
    #[serde(rename = "VolumeType", deserialize_with = "de::opt_string")]
    pub volume_type: Option<String>,
    /// Encrypted.
    #[serde(rename = "Encrypted", deserialize_with = "de::opt_bool")]
    pub encrypted: Option<bool>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// A device of a SimpleStorage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimpleStorageDevice {
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(rename = "Model", deserialize_with = "de::opt_string")]
    pub model: Option<String>,
    /// Capacity in bytes.
    #[serde(rename = "CapacityBytes", deserialize_with = "de::opt_u64")]
    pub capacity_bytes: Option<u64>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// A SimpleStorage (fallback when a service has no Storage collection).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimpleStorage {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Description.
    #[serde(rename = "Description", deserialize_with = "de::opt_string")]
    pub description: Option<String>,
    /// UEFI device path.
    #[serde(rename = "UefiDevicePath", deserialize_with = "de::opt_string")]
    pub uefi_device_path: Option<String>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
    /// Devices.
    #[serde(rename = "Devices", deserialize_with = "de::vec")]
    pub devices: Vec<SimpleStorageDevice>,
}
