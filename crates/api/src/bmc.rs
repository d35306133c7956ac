//! `BMC`: a baseboard management controller reachable over the network, with the credentials
//! to talk to it. Every Redfish ComputerSystem behind it becomes a `Server`.

use crate::common::{IP_MESSAGE, IP_RULE, MAC_MESSAGE, MAC_RULE, PORT_MESSAGE, PORT_RULE};
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

closed_enum! {
    /// Management protocol spoken to a BMC.
    pub enum ProtocolName {
        /// DMTF Redfish over HTTP(S).
        Redfish = "Redfish",
        /// Redfish against a local development mock (accepted for upstream compatibility).
        RedfishLocal = "RedfishLocal",
        /// Redfish against a mock that also fakes the discovery agent (upstream test helper).
        RedfishWithRegistryPatch = "RedfishWithRegistryPatch",
        /// IPMI (declared, not implemented by the controllers).
        Ipmi = "IPMI",
        /// SSH (declared, not implemented by the controllers).
        Ssh = "SSH",
    }
}

closed_enum! {
    /// URL scheme used for HTTP based protocols.
    pub enum ProtocolScheme {
        /// Plain HTTP.
        Http = "http",
        /// HTTP over TLS.
        Https = "https",
    }
}

/// How to reach a BMC's management API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct Protocol {
    /// Protocol spoken on `port`.
    pub name: ProtocolName,
    /// TCP port of the management API.
    #[x_kube(validation = Rule::new(PORT_RULE).message(PORT_MESSAGE))]
    pub port: i32,
    /// URL scheme; controllers fall back to their configured default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<ProtocolScheme>,
}

closed_enum! {
    /// Serial-over-LAN console flavour.
    pub enum ConsoleProtocolName {
        /// IPMI serial over LAN.
        Ipmi = "IPMI",
        /// SSH to the BMC's console.
        Ssh = "SSH",
        /// SSH with Lenovo XCC console commands.
        SshLenovo = "SSHLenovo",
    }
}

/// How to open a text console through the BMC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct ConsoleProtocol {
    /// Console flavour.
    pub name: ConsoleProtocolName,
    /// TCP port of the console service.
    #[x_kube(validation = Rule::new(PORT_RULE).message(PORT_MESSAGE))]
    pub port: i32,
}

/// Network identity of a BMC given inline (replaces the deprecated `Endpoint` kind).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineEndpoint {
    /// MAC address of the BMC's management port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 17))]
    #[x_kube(validation = Rule::new(MAC_RULE).message(MAC_MESSAGE))]
    pub mac_address: Option<String>,
    /// IP address of the BMC's management port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 45))]
    #[x_kube(validation = Rule::new(IP_RULE).message(IP_MESSAGE))]
    pub ip: Option<String>,
}

/// Desired state of a BMC.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMC",
    singular = "bmc",
    plural = "bmcs",
    category = "metal",
    status = "BMCStatus",
    derive = "PartialEq",
    doc = "A baseboard management controller and how to reach it; the discovery controller creates a Server for every system behind it.",
    printcolumn(
        name = "MACAddress",
        type_ = "string",
        json_path = ".status.macAddress"
    ),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip"),
    printcolumn(name = "Model", type_ = "string", json_path = ".status.model"),
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
        name = "FirmwareVersion",
        type_ = "string",
        json_path = ".status.firmwareVersion",
        priority = 1
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "PowerState",
        type_ = "string",
        json_path = ".status.powerState"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.access) != has(self.endpointRef)").message(
    "exactly one of access or endpointRef must be set; prefer access, endpointRef is deprecated"
))]
pub struct BMCSpec {
    /// Redfish Manager UUID; pins the manager when the BMC exposes several. Filled by discovery
    /// when unset.
    #[serde(rename = "bmcUUID", default, skip_serializing_if = "Option::is_none")]
    pub bmc_uuid: Option<String>,
    /// Deprecated: the `Endpoint` holding this BMC's address. Use `access` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "endpointRef is immutable; create a new BMC to point at another endpoint"
    ))]
    pub endpoint_ref: Option<LocalObjectReference>,
    /// MAC and IP address of the BMC.
    #[serde(rename = "access", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "access is immutable; create a new BMC for a different address"
    ))]
    pub access: Option<InlineEndpoint>,
    /// The `BMCSecret` with the credentials for this BMC.
    pub bmc_secret_ref: LocalObjectReference,
    /// Management protocol, port and scheme.
    pub protocol: Protocol,
    /// Console access, if the BMC offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_protocol: Option<ConsoleProtocol>,
    /// Deprecated: a `BMCSettings` object for this BMC (accepted for upstream v0.7.0
    /// compatibility; `BMCSettings.spec.BMCRef` is the supported direction).
    #[serde(
        rename = "bmcSettingsRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bmc_settings_ref: Option<LocalObjectReference>,
    /// DNS name of the BMC, used for TLS verification and DNS records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub hostname: Option<String>,
}

closed_enum! {
    /// Power state of a BMC as reported by its Redfish Manager.
    pub enum BMCPowerState {
        /// On.
        On = "On",
        /// Off (auxiliary power may remain).
        Off = "Off",
        /// Paused.
        Paused = "Paused",
        /// Transitioning to On.
        PoweringOn = "PoweringOn",
        /// Transitioning to Off.
        PoweringOff = "PoweringOff",
        /// The BMC did not report a power state.
        Unknown = "Unknown",
    }
}

open_enum! {
    /// State of a BMC. Controllers write `Enabled`, `Error` or `Pending`; other Redfish
    /// `Status.State` values written by older controllers are preserved.
    pub enum BMCState {
        /// Reachable and working.
        Enabled = "Enabled",
        /// Unusable until an operator or an automatic reset fixes it.
        Error = "Error",
        /// Not yet (or not currently) connected, e.g. while a reset settles.
        Pending = "Pending",
    }
}

/// Observed state of a BMC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCStatus {
    /// MAC address of the management port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$"))]
    pub mac_address: Option<String>,
    /// IP address of the management port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Manufacturer of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Stock keeping unit (Redfish `PartNumber`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Serial number of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Firmware version running on the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Overall state; `Pending` until the first successful connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Pending"))]
    pub state: Option<BMCState>,
    /// Power state of the BMC itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<BMCPowerState>,
    /// When the BMC was last reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reset_time: Option<Time>,
    /// Redfish event subscription for metric reports, so it can be removed on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_report_subscription_link: Option<String>,
    /// Redfish event subscription for alerts, so it can be removed on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_subscription_link: Option<String>,
    /// Observations such as `Ready` and `Reset`, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
