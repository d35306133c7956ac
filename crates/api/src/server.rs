//! `Server`: one bare-metal machine (a Redfish ComputerSystem) with its inventory, power state
//! and lifecycle state.

use crate::bmc::Protocol;
use crate::common::{ImmutableObjectReference, IndicatorLED, ObjectReference, Power, Taint};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// BMC access details given inline on a Server instead of through a `BMC` object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCAccess {
    /// Management protocol, port and scheme.
    pub protocol: Protocol,
    /// Host name or IP address of the BMC.
    pub address: String,
    /// BMCSecret with the credentials.
    pub bmc_secret_ref: LocalObjectReference,
}

/// One entry of the desired boot order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct BootOrder {
    /// Display name of the boot option.
    pub name: String,
    /// Position in the boot order; lower values boot first.
    pub priority: i64,
    /// Redfish boot option reference, e.g. `Boot0001`.
    pub device: String,
}

closed_enum! {
    /// What happens to a server when its claim goes away.
    pub enum ServerReclaimPolicy {
        /// Power off and return the server to `Available` (the default).
        Recycle = "Recycle",
        /// Power off and keep it `Released` with its claim reference until an operator clears it.
        Retain = "Retain",
    }
}

/// Desired state of a Server.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "Server",
    singular = "server",
    plural = "servers",
    shortname = "srv",
    category = "metal",
    status = "ServerStatus",
    derive = "PartialEq",
    doc = "A bare-metal machine behind a BMC: inventory, power, and its place in the lifecycle (state).",
    printcolumn(name = "SystemUUID", type_ = "string", json_path = ".spec.systemUUID"),
    printcolumn(
        name = "Manufacturer",
        type_ = "string",
        json_path = ".status.manufacturer"
    ),
    printcolumn(name = "Model", type_ = "string", json_path = ".status.model"),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".status.totalSystemMemory"
    ),
    printcolumn(
        name = "SKU",
        type_ = "string",
        json_path = ".status.sku",
        priority = 1
    ),
    printcolumn(
        name = "SerialNumber",
        type_ = "string",
        json_path = ".status.serialNumber",
        priority = 1
    ),
    printcolumn(
        name = "PowerState",
        type_ = "string",
        json_path = ".status.powerState"
    ),
    printcolumn(
        name = "IndicatorLED",
        type_ = "string",
        json_path = ".status.indicatorLED",
        priority = 1
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Unclaimable",
        type_ = "boolean",
        json_path = ".spec.unclaimable",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Redfish ComputerSystem UUID (lower case); identifies the machine.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// Redfish URI of the ComputerSystem, filled in by discovery.
    #[serde(rename = "systemURI", default, skip_serializing_if = "Option::is_none")]
    pub system_uri: Option<String>,
    /// Deprecated: desired power state. Controllers clear it; express power through a
    /// ServerClaim or ServerMaintenance instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    /// Desired state of the identification LED.
    #[serde(
        rename = "indicatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub indicator_led: Option<IndicatorLED>,
    /// What happens when the claim is released; defaults to `Recycle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Recycle"))]
    pub reclaim_policy: Option<ServerReclaimPolicy>,
    /// The ServerClaim this server is bound to. Set by the reservation controller; it can be
    /// cleared but not re-pointed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_claim_ref: Option<ImmutableObjectReference>,
    /// The ServerMaintenance currently holding this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_maintenance_ref: Option<ObjectReference>,
    /// The BMC managing this server.
    #[serde(rename = "bmcRef", default, skip_serializing_if = "Option::is_none")]
    pub bmc_ref: Option<LocalObjectReference>,
    /// Inline BMC access, for servers without a BMC object.
    #[serde(rename = "bmc", default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BMCAccess>,
    /// The ServerBootConfiguration the server boots with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_configuration_ref: Option<ObjectReference>,
    /// The ServerBootConfiguration used while the server is in maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_boot_configuration_ref: Option<ObjectReference>,
    /// Desired persistent boot order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_order: Vec<BootOrder>,
    /// Deprecated: a BIOSSettings object for this server (accepted for upstream v0.7.0
    /// compatibility; `BIOSSettings.spec.serverRef` is the supported direction).
    #[serde(
        rename = "biosSettingsRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bios_settings_ref: Option<LocalObjectReference>,
    /// Taints that keep claims without a matching toleration away. Keyed by key and effect,
    /// so different writers (operators, readiness rules) can own different taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["key".into(), "effect".into()]))]
    pub taints: Vec<Taint>,
    /// Cordon: when true no new claim binds to this server; bound claims stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub unclaimable: Option<bool>,
}

closed_enum! {
    /// Observed power state of a server.
    pub enum ServerPowerState {
        /// On.
        On = "On",
        /// Off (the BMC and auxiliary power may remain on).
        Off = "Off",
        /// Paused.
        Paused = "Paused",
        /// Transitioning to On.
        PoweringOn = "PoweringOn",
        /// Transitioning to Off.
        PoweringOff = "PoweringOff",
    }
}

closed_enum! {
    /// Lifecycle state of a server. The state also names the controller that may drive the
    /// server's BMC, see [`crate::state`].
    pub enum ServerState {
        /// Known, inventory not yet complete; the discovery boot is being prepared.
        Initial = "Initial",
        /// Booted into the discovery agent, waiting for its report.
        Discovery = "Discovery",
        /// Discovered, powered off and free to be claimed.
        Available = "Available",
        /// Bound to a ServerClaim.
        Reserved = "Reserved",
        /// Its claim is gone but `reclaimPolicy: Retain` keeps it out of the pool.
        Released = "Released",
        /// Unusable until an operator intervenes.
        Error = "Error",
        /// Held by a ServerMaintenance or a day-2 operation.
        Maintenance = "Maintenance",
        /// Taken out of the claim lifecycle (annotation `park`) for out-of-band work.
        Parked = "Parked",
        /// Our addition: a released server's disks are being wiped before it is Available
        /// again (cleaning mode `Metadata` or `Full`).
        Cleaning = "Cleaning",
    }
}

open_enum! {
    /// State of a storage controller, drive or volume, as reported by Redfish.
    pub enum StorageState {
        /// Enabled.
        Enabled = "Enabled",
        /// Disabled.
        Disabled = "Disabled",
        /// Not present.
        Absent = "Absent",
    }
}

/// Observed state of a Server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Manufacturer of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Running BIOS version.
    #[serde(
        rename = "biosVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bios_version: Option<String>,
    /// Model of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Stock keeping unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Serial number of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Power state as last confirmed by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<ServerPowerState>,
    /// State of the identification LED as last read from the BMC.
    #[serde(
        rename = "indicatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub indicator_led: Option<IndicatorLED>,
    /// Lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerState>,
    /// Network interfaces with addresses and LLDP neighbours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Installed memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_system_memory: Option<Quantity>,
    /// Installed processors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<Processor>,
    /// Storage controllers with their drives and volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<Storage>,
    /// Observations such as `PoweringOn` or `WaitingForPowerOff`, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One processor socket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    /// Redfish id of the processor.
    pub id: String,
    /// Processor type, e.g. `CPU`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Architecture, e.g. `x86`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Instruction set, e.g. `x86-64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_set: Option<String>,
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Maximum clock in MHz.
    #[serde(
        rename = "maxSpeedMHz",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_speed_mhz: Option<i32>,
    /// Number of cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cores: Option<i32>,
    /// Number of hardware threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_threads: Option<i32>,
}

/// One network interface, merged from Redfish and the discovery agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Interface name as seen by the OS.
    pub name: String,
    /// Deprecated single address; always empty, use `ips`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// IPv4 and IPv6 addresses on the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address.
    pub mac_address: String,
    /// Carrier (link) status, e.g. `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_status: Option<String>,
    /// LLDP neighbours seen on the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<LLDPNeighbor>,
}

/// A switch port seen through LLDP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LLDPNeighbor {
    /// Chassis MAC address of the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Port id of the neighbour.
    #[serde(rename = "portID", default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// Port description of the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_description: Option<String>,
    /// System name of the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_name: Option<String>,
    /// System description of the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_description: Option<String>,
}

/// One physical drive.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageDrive {
    /// Name of the drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Media type, e.g. `SSD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Drive type or protocol.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Capacity in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// State reported by Redfish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StorageState>,
}

/// One logical volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageVolume {
    /// Name of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Capacity in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// State reported by Redfish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StorageState>,
    /// RAID level, e.g. `RAID1`.
    #[serde(rename = "raidType", default, skip_serializing_if = "Option::is_none")]
    pub raid_type: Option<String>,
    /// Intended use of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_usage: Option<String>,
}

/// One storage controller with what hangs off it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Storage {
    /// Name of the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// State reported by Redfish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StorageState>,
    /// Logical volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<StorageVolume>,
    /// Physical drives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drives: Vec<StorageDrive>,
}

impl Server {
    /// The lifecycle state, if one has been written.
    pub fn state(&self) -> Option<ServerState> {
        self.status.as_ref().and_then(|s| s.state)
    }

    /// Whether the server is cordoned (`spec.unclaimable`).
    pub fn is_unclaimable(&self) -> bool {
        self.spec.unclaimable.unwrap_or(false)
    }

    /// The reclaim policy with its default applied.
    pub fn reclaim_policy(&self) -> ServerReclaimPolicy {
        self.spec
            .reclaim_policy
            .unwrap_or(ServerReclaimPolicy::Recycle)
    }
}
