//! ComputerSystem and what hangs directly off it (power, boot, summaries, reset action).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Action, Link, Status, de, redfish_enum};

redfish_enum! {
    /// Power state of a system or manager.
    PowerState {
        /// Powered on.
        On = "On",
        /// Powered off.
        Off = "Off",
        /// Transitioning to on.
        PoweringOn = "PoweringOn",
        /// Transitioning to off.
        PoweringOff = "PoweringOff",
        /// Paused.
        Paused = "Paused",
    }
}

redfish_enum! {
    /// `ResetType` of `ComputerSystem.Reset` / `Manager.Reset`.
    ResetType {
        /// Turn on.
        On = "On",
        /// Turn off immediately.
        ForceOff = "ForceOff",
        /// Orderly shutdown.
        GracefulShutdown = "GracefulShutdown",
        /// Orderly restart.
        GracefulRestart = "GracefulRestart",
        /// Immediate restart.
        ForceRestart = "ForceRestart",
        /// Non-maskable interrupt.
        Nmi = "Nmi",
        /// Turn on immediately.
        ForceOn = "ForceOn",
        /// Simulate pressing the power button.
        PushPowerButton = "PushPowerButton",
        /// Off then on.
        PowerCycle = "PowerCycle",
        /// Suspend.
        Suspend = "Suspend",
        /// Pause.
        Pause = "Pause",
        /// Resume.
        Resume = "Resume",
        /// Full power cycle including auxiliary power.
        FullPowerCycle = "FullPowerCycle",
    }
}

redfish_enum! {
    /// `BootSourceOverrideTarget` values.
    BootSource {
        /// No override.
        None = "None",
        /// Network (PXE) boot.
        Pxe = "Pxe",
        /// Floppy.
        Floppy = "Floppy",
        /// CD/DVD (virtual media).
        Cd = "Cd",
        /// USB.
        Usb = "Usb",
        /// Hard disk.
        Hdd = "Hdd",
        /// BIOS setup.
        BiosSetup = "BiosSetup",
        /// Utilities.
        Utilities = "Utilities",
        /// Diagnostics.
        Diags = "Diags",
        /// UEFI shell.
        UefiShell = "UefiShell",
        /// The UEFI device path in `UefiTargetBootSourceOverride`.
        UefiTarget = "UefiTarget",
        /// SD card.
        SdCard = "SDCard",
        /// UEFI HTTP boot.
        UefiHttp = "UefiHttp",
        /// Remote drive.
        RemoteDrive = "RemoteDrive",
        /// `BootNext` boot option.
        UefiBootNext = "UefiBootNext",
        /// Recovery.
        Recovery = "Recovery",
    }
}

redfish_enum! {
    /// `BootSourceOverrideEnabled`.
    BootSourceOverrideEnabled {
        /// No override.
        Disabled = "Disabled",
        /// Override on the next boot only.
        Once = "Once",
        /// Override on every boot.
        Continuous = "Continuous",
    }
}

redfish_enum! {
    /// `BootSourceOverrideMode`.
    BootSourceOverrideMode {
        /// Legacy BIOS.
        Legacy = "Legacy",
        /// UEFI.
        Uefi = "UEFI",
    }
}

redfish_enum! {
    /// `IndicatorLED` (deprecated in newer schemas in favour of `LocationIndicatorActive`).
    IndicatorLed {
        /// On.
        Lit = "Lit",
        /// Blinking.
        Blinking = "Blinking",
        /// Off.
        Off = "Off",
    }
}

/// `Boot` object of a system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Boot {
    /// Override enabled (Disabled/Once/Continuous).
    #[serde(
        rename = "BootSourceOverrideEnabled",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_enabled: Option<BootSourceOverrideEnabled>,
    /// Override target.
    #[serde(
        rename = "BootSourceOverrideTarget",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_target: Option<BootSource>,
    /// Targets the service accepts.
    #[serde(
        rename = "BootSourceOverrideTarget@Redfish.AllowableValues",
        deserialize_with = "de::vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub override_target_allowable: Vec<BootSource>,
    /// Override mode (Legacy/UEFI), when the service reports it.
    #[serde(
        rename = "BootSourceOverrideMode",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_mode: Option<BootSourceOverrideMode>,
    /// Modes the service accepts.
    #[serde(
        rename = "BootSourceOverrideMode@Redfish.AllowableValues",
        deserialize_with = "de::vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub override_mode_allowable: Vec<BootSourceOverrideMode>,
    /// UEFI device path for `UefiTarget`.
    #[serde(
        rename = "UefiTargetBootSourceOverride",
        deserialize_with = "de::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub uefi_target: Option<String>,
    /// Persistent boot order (boot option references).
    #[serde(
        rename = "BootOrder",
        deserialize_with = "de::vec_string",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub boot_order: Vec<String>,
    /// `BootNext` boot option reference.
    #[serde(
        rename = "BootNext",
        deserialize_with = "de::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub boot_next: Option<String>,
    /// Boot options collection.
    #[serde(
        rename = "BootOptions",
        deserialize_with = "de::opt_link",
        skip_serializing_if = "Option::is_none"
    )]
    pub boot_options: Option<Link>,
}

/// `ProcessorSummary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorSummary {
    /// Number of processors (sockets).
    #[serde(rename = "Count", deserialize_with = "de::opt_u32")]
    pub count: Option<u32>,
    /// Total cores.
    #[serde(rename = "CoreCount", deserialize_with = "de::opt_u32")]
    pub core_count: Option<u32>,
    /// Total logical processors.
    #[serde(rename = "LogicalProcessorCount", deserialize_with = "de::opt_u32")]
    pub logical_processor_count: Option<u32>,
    /// Processor model.
    #[serde(rename = "Model", deserialize_with = "de::opt_string")]
    pub model: Option<String>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// `MemorySummary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemorySummary {
    /// Total system memory in GiB.
    #[serde(rename = "TotalSystemMemoryGiB", deserialize_with = "de::opt_f64")]
    pub total_system_memory_gib: Option<f64>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// `Links` of a system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemLinks {
    /// Chassis containing the system.
    #[serde(rename = "Chassis", deserialize_with = "de::vec_link")]
    pub chassis: Vec<Link>,
    /// Managers (BMCs) managing the system.
    #[serde(rename = "ManagedBy", deserialize_with = "de::vec_link")]
    pub managed_by: Vec<Link>,
}

/// `Actions` of a system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemActions {
    /// `#ComputerSystem.Reset`.
    #[serde(rename = "#ComputerSystem.Reset", deserialize_with = "de::opt")]
    pub reset: Option<Action>,
}

/// A ComputerSystem (a server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputerSystem {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// ETag, when the service puts one in the body.
    #[serde(
        rename = "@odata.etag",
        deserialize_with = "de::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_etag: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Physical, Virtual, ...
    #[serde(rename = "SystemType", deserialize_with = "de::opt_string")]
    pub system_type: Option<String>,
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
    /// SKU (Dell: the service tag).
    #[serde(rename = "SKU", deserialize_with = "de::opt_string")]
    pub sku: Option<String>,
    /// System UUID.
    #[serde(rename = "UUID", deserialize_with = "de::opt_string")]
    pub uuid: Option<String>,
    /// Asset tag.
    #[serde(rename = "AssetTag", deserialize_with = "de::opt_string")]
    pub asset_tag: Option<String>,
    /// Host name.
    #[serde(rename = "HostName", deserialize_with = "de::opt_string")]
    pub host_name: Option<String>,
    /// BIOS version.
    #[serde(rename = "BiosVersion", deserialize_with = "de::opt_string")]
    pub bios_version: Option<String>,
    /// Power state.
    #[serde(rename = "PowerState", deserialize_with = "de::opt")]
    pub power_state: Option<PowerState>,
    /// Indicator LED.
    #[serde(rename = "IndicatorLED", deserialize_with = "de::opt")]
    pub indicator_led: Option<IndicatorLed>,
    /// Location indicator (newer replacement for `IndicatorLED`).
    #[serde(rename = "LocationIndicatorActive", deserialize_with = "de::opt_bool")]
    pub location_indicator_active: Option<bool>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
    /// Boot settings.
    #[serde(rename = "Boot", deserialize_with = "de::opt")]
    pub boot: Option<Boot>,
    /// Processor summary.
    #[serde(rename = "ProcessorSummary", deserialize_with = "de::opt")]
    pub processor_summary: Option<ProcessorSummary>,
    /// Memory summary.
    #[serde(rename = "MemorySummary", deserialize_with = "de::opt")]
    pub memory_summary: Option<MemorySummary>,
    /// Processors collection.
    #[serde(rename = "Processors", deserialize_with = "de::opt_link")]
    pub processors: Option<Link>,
    /// Memory collection.
    #[serde(rename = "Memory", deserialize_with = "de::opt_link")]
    pub memory: Option<Link>,
    /// Ethernet interfaces collection.
    #[serde(rename = "EthernetInterfaces", deserialize_with = "de::opt_link")]
    pub ethernet_interfaces: Option<Link>,
    /// Storage collection.
    #[serde(rename = "Storage", deserialize_with = "de::opt_link")]
    pub storage: Option<Link>,
    /// SimpleStorage collection (older services).
    #[serde(rename = "SimpleStorage", deserialize_with = "de::opt_link")]
    pub simple_storage: Option<Link>,
    /// BIOS resource.
    #[serde(rename = "Bios", deserialize_with = "de::opt_link")]
    pub bios: Option<Link>,
    /// Virtual media collection (may point under the manager).
    #[serde(rename = "VirtualMedia", deserialize_with = "de::opt_link")]
    pub virtual_media: Option<Link>,
    /// Links.
    #[serde(rename = "Links", deserialize_with = "de::opt")]
    pub links: Option<SystemLinks>,
    /// Actions.
    #[serde(rename = "Actions", deserialize_with = "de::opt")]
    pub actions: Option<SystemActions>,
    /// OEM extensions.
    #[serde(
        rename = "Oem",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub oem: Option<Value>,
}

impl ComputerSystem {
    /// The reset action, if the system advertises one.
    pub fn reset_action(&self) -> Option<&Action> {
        self.actions.as_ref()?.reset.as_ref()
    }

    /// The first manager managing this system.
    pub fn manager_link(&self) -> Option<&Link> {
        self.links.as_ref()?.managed_by.first()
    }
}
