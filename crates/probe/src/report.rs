//! The report the agent sends to the registry.
//!
//! The JSON shape is upstream metal-operator's registry payload (`internal/api/registry`):
//! `POST /register` carries [`RegistrationPayload`] `{systemUUID, data: Report}`, and
//! `POST /bootstate` carries [`BootstatePayload`] `{systemUUID, booted}`. Field names are kept
//! byte-for-byte so an upstream `metalprobe` and this agent are interchangeable; decoding is
//! lenient (`null` lists, missing fields) because Go encodes nil slices as `null`.
//!
//! Every type is plain data with public fields and `Default`, so a caller that *synthesizes*
//! hardware (the BMC simulator playing a booted server) can build a report directly, or with the
//! small builder methods ([`Report::new`], [`Report::with_interface`], [`Report::with_neighbor`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Decodes `null` as the type's default (Go encodes empty slices as `null`).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Body of `POST /register`: which system reports, and what it found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationPayload {
    /// The system's UUID (as on the Server's `spec.systemUUID`; compared case-insensitively).
    #[serde(default, deserialize_with = "nullable", rename = "systemUUID")]
    pub system_uuid: String,
    /// The hardware report.
    #[serde(default, deserialize_with = "nullable")]
    pub data: Report,
}

/// Body of `POST /bootstate`: the system says it has booted the discovery image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstatePayload {
    /// The system's UUID.
    #[serde(default, deserialize_with = "nullable", rename = "systemUUID")]
    pub system_uuid: String,
    /// Whether it booted.
    #[serde(default, deserialize_with = "nullable")]
    pub booted: bool,
}

/// Everything the agent found on one server (upstream `registry.Server`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When the report was collected (RFC 3339); the registry ignores reports that are too old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// DMI / SMBIOS identity: BIOS, system and board.
    #[serde(default, deserialize_with = "nullable")]
    pub system_info: Dmi,
    /// One entry per CPU package.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cpu: Vec<CpuInfo>,
    /// Network interfaces with MAC, link state and addresses.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub network_interfaces: Vec<NetworkInterface>,
    /// LLDP neighbours per interface.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub lldp: Vec<LldpInterface>,
    /// Block devices (disks).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub storage: Vec<BlockDevice>,
    /// Memory modules (SMBIOS type 17).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub memory: Vec<MemoryDevice>,
    /// Physical NICs (PCI address, speed, driver firmware).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nics: Vec<Nic>,
    /// PCI devices.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pci_devices: Vec<PciDevice>,
    /// Total usable memory in bytes as the kernel sees it (`/proc/meminfo` `MemTotal`).
    /// An addition beyond upstream; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
}

/// DMI identity (upstream `registry.DMI`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dmi {
    /// Firmware (BIOS/UEFI) vendor, version and date.
    #[serde(default, deserialize_with = "nullable")]
    pub bios_information: BiosInformation,
    /// The system (product) identity.
    #[serde(default, deserialize_with = "nullable")]
    pub system_information: SystemInformation,
    /// The main board identity.
    #[serde(default, deserialize_with = "nullable")]
    pub board_information: BoardInformation,
}

/// Firmware identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BiosInformation {
    /// Firmware vendor.
    #[serde(default, deserialize_with = "nullable")]
    pub vendor: String,
    /// Firmware version.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// Firmware release date as DMI reports it (`MM/DD/YYYY`).
    #[serde(default, deserialize_with = "nullable")]
    pub date: String,
}

/// System (product) identity (upstream `ServerInformation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInformation {
    /// System manufacturer.
    #[serde(default, deserialize_with = "nullable")]
    pub manufacturer: String,
    /// Product name (model).
    #[serde(default, deserialize_with = "nullable")]
    pub product_name: String,
    /// Product version.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// System serial number.
    #[serde(default, deserialize_with = "nullable")]
    pub serial_number: String,
    /// System UUID (SMBIOS).
    #[serde(default, deserialize_with = "nullable")]
    pub uuid: String,
    /// SKU number.
    #[serde(default, deserialize_with = "nullable")]
    pub sku_number: String,
    /// Product family.
    #[serde(default, deserialize_with = "nullable")]
    pub family: String,
}

/// Main board identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardInformation {
    /// Board manufacturer.
    #[serde(default, deserialize_with = "nullable")]
    pub manufacturer: String,
    /// Board product name.
    #[serde(default, deserialize_with = "nullable")]
    pub product: String,
    /// Board version.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// Board serial number.
    #[serde(default, deserialize_with = "nullable")]
    pub serial_number: String,
    /// Board asset tag.
    #[serde(default, deserialize_with = "nullable")]
    pub asset_tag: String,
}

/// One CPU package (upstream `CPUInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuInfo {
    /// Package id (`physical id`).
    #[serde(default, deserialize_with = "nullable")]
    pub id: i64,
    /// Physical cores in the package.
    #[serde(default, deserialize_with = "nullable")]
    pub total_cores: u32,
    /// Hardware threads in the package.
    #[serde(default, deserialize_with = "nullable")]
    pub total_hardware_threads: u32,
    /// Vendor id (`GenuineIntel`, `AuthenticAMD`).
    #[serde(default, deserialize_with = "nullable")]
    pub vendor: String,
    /// Model name.
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    /// CPU flags.
    #[serde(default, deserialize_with = "nullable")]
    pub capabilities: Vec<String>,
}

/// A network interface as the OS sees it (upstream `NetworkInterface`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Interface name (`eno1`, `ens3f0np0`).
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Deprecated single address, kept for decoding old agents; this agent leaves it empty.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub ip_address: String,
    /// All addresses (IPv4 and IPv6, without prefix length; loopback excluded).
    #[serde(default, deserialize_with = "nullable")]
    pub ip_addresses: Vec<String>,
    /// MAC address, lowercase colon-separated.
    #[serde(default, deserialize_with = "nullable")]
    pub mac_address: String,
    /// Link state: `up` (carrier present) or `down`.
    #[serde(default, deserialize_with = "nullable")]
    pub carrier_status: String,
}

impl NetworkInterface {
    /// An interface with the given name and MAC, link down, no addresses.
    pub fn new(name: impl Into<String>, mac: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            mac_address: normalize_mac(&mac.into()),
            carrier_status: CARRIER_DOWN.to_string(),
            ..Self::default()
        }
    }

    /// Sets the link state.
    pub fn with_carrier(mut self, up: bool) -> Self {
        self.carrier_status = if up { CARRIER_UP } else { CARRIER_DOWN }.to_string();
        self
    }

    /// Adds an address (no prefix length, e.g. `10.0.0.5` or `fd00::5`).
    pub fn with_ip(mut self, ip: impl Into<String>) -> Self {
        self.ip_addresses.push(ip.into());
        self
    }
}

/// `carrierStatus` of an interface with link.
pub const CARRIER_UP: &str = "up";
/// `carrierStatus` of an interface without link.
pub const CARRIER_DOWN: &str = "down";

/// LLDP neighbours seen on one interface (upstream `LLDPInterface`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LldpInterface {
    /// Local interface name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Neighbours seen on it.
    #[serde(default, deserialize_with = "nullable")]
    pub neighbors: Vec<Neighbor>,
}

/// One LLDP neighbour (a switch port), upstream `Neighbor`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Neighbor {
    /// Chassis id (usually the switch MAC).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub chassis_id: String,
    /// Port id (`Ethernet1/21`, `swp1s0`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub port_id: String,
    /// Port description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub port_description: String,
    /// Switch system name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub system_name: String,
    /// Switch system description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub system_description: String,
    /// Switch management address (the first one when several are advertised).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mgmt_ip: String,
    /// Enabled capabilities (`Bridge`, `Router`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub capabilities: Vec<String>,
    /// Port VLAN id (the PVID when several VLANs are advertised).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub vlan_id: String,
}

/// A block device (upstream `BlockDevice`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDevice {
    /// Device path (`/dev/nvme0n1`).
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    /// Kernel name (`nvme0n1`, `sda`).
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Spinning disk.
    #[serde(default, deserialize_with = "nullable")]
    pub rotational: bool,
    /// Removable medium.
    #[serde(default, deserialize_with = "nullable")]
    pub removable: bool,
    /// Read-only.
    #[serde(default, deserialize_with = "nullable")]
    pub read_only: bool,
    /// Vendor.
    #[serde(default, deserialize_with = "nullable")]
    pub vendor: String,
    /// Model.
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    /// Serial number.
    #[serde(default, deserialize_with = "nullable")]
    pub serial: String,
    /// World-wide id.
    #[serde(default, deserialize_with = "nullable")]
    pub wwid: String,
    /// Physical block size in bytes.
    #[serde(default, deserialize_with = "nullable")]
    pub physical_block_size: u64,
    /// Logical block size in bytes.
    #[serde(default, deserialize_with = "nullable")]
    pub logical_block_size: u64,
    /// Hardware sector size in bytes (upstream spells the key `hWSectorSize`).
    #[serde(default, deserialize_with = "nullable", rename = "hWSectorSize")]
    pub hw_sector_size: u64,
    /// Size in bytes.
    #[serde(default, deserialize_with = "nullable")]
    pub size_bytes: u64,
    /// NUMA node (-1 when unknown).
    #[serde(default, deserialize_with = "nullable", rename = "numaNodeID")]
    pub numa_node_id: i64,
}

/// A memory module (upstream `MemoryDevice`, from SMBIOS type 17).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryDevice {
    /// Size in bytes.
    #[serde(default, deserialize_with = "nullable", rename = "size")]
    pub size_bytes: i64,
    /// Device set.
    #[serde(default, deserialize_with = "nullable")]
    pub device_set: String,
    /// Slot (`DIMM_A1`).
    #[serde(default, deserialize_with = "nullable")]
    pub device_locator: String,
    /// Bank.
    #[serde(default, deserialize_with = "nullable")]
    pub bank_locator: String,
    /// Memory type (`DDR4`, `DDR5`).
    #[serde(default, deserialize_with = "nullable")]
    pub memory_type: String,
    /// Rated speed (`3200 MT/s`).
    #[serde(default, deserialize_with = "nullable")]
    pub speed: String,
    /// Vendor.
    #[serde(default, deserialize_with = "nullable")]
    pub vendor: String,
    /// Serial number.
    #[serde(default, deserialize_with = "nullable")]
    pub serial_number: String,
    /// Asset tag.
    #[serde(default, deserialize_with = "nullable")]
    pub asset_tag: String,
    /// Part number.
    #[serde(default, deserialize_with = "nullable")]
    pub part_number: String,
    /// Configured speed (`3200 MT/s`).
    #[serde(default, deserialize_with = "nullable")]
    pub configured_memory_speed: String,
    /// Minimum voltage (`1.2 V`).
    #[serde(default, deserialize_with = "nullable")]
    pub minimum_voltage: String,
    /// Maximum voltage.
    #[serde(default, deserialize_with = "nullable")]
    pub maximum_voltage: String,
    /// Configured voltage.
    #[serde(default, deserialize_with = "nullable")]
    pub configured_voltage: String,
}

/// A physical NIC (upstream `NIC`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    /// Interface name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// MAC address.
    #[serde(default, deserialize_with = "nullable")]
    pub mac: String,
    /// PCI address (`0000:3b:00.0`) or `unknown`.
    #[serde(default, deserialize_with = "nullable")]
    pub pci_address: String,
    /// Link speed (`25000Mb/s`), empty without link.
    #[serde(default, deserialize_with = "nullable")]
    pub speed: String,
    /// Supported link modes (needs ethtool; this agent leaves it empty).
    #[serde(default, deserialize_with = "nullable")]
    pub link_modes: Vec<String>,
    /// Supported ports (needs ethtool; empty here).
    #[serde(default, deserialize_with = "nullable")]
    pub supported_ports: Vec<String>,
    /// Firmware version (needs ethtool; empty here).
    #[serde(default, deserialize_with = "nullable")]
    pub firmware_version: String,
}

/// A PCI device (upstream `PCIDevice`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PciDevice {
    /// Bus address (`0000:3b:00.0`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub address: String,
    /// Vendor name (needs pci.ids; empty here).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub vendor: String,
    /// Vendor id (`8086`).
    #[serde(
        default,
        deserialize_with = "nullable",
        rename = "vendorID",
        skip_serializing_if = "String::is_empty"
    )]
    pub vendor_id: String,
    /// Product name (needs pci.ids; empty here).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub product: String,
    /// Product id (`159b`).
    #[serde(
        default,
        deserialize_with = "nullable",
        rename = "productID",
        skip_serializing_if = "String::is_empty"
    )]
    pub product_id: String,
    /// NUMA node.
    #[serde(
        default,
        deserialize_with = "nullable",
        rename = "numaNodeID",
        skip_serializing_if = "is_zero"
    )]
    pub numa_node_id: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Report {
    /// An empty report stamped with the current time; fill it with the builder methods or fields.
    pub fn new() -> Self {
        Self {
            timestamp: Some(Utc::now()),
            ..Self::default()
        }
    }

    /// Sets the DMI identity.
    pub fn with_system_info(mut self, dmi: Dmi) -> Self {
        self.system_info = dmi;
        self
    }

    /// Adds a network interface (replacing one with the same name).
    pub fn with_interface(mut self, iface: NetworkInterface) -> Self {
        self.network_interfaces.retain(|i| i.name != iface.name);
        self.network_interfaces.push(iface);
        self
    }

    /// Adds an LLDP neighbour seen on interface `iface`.
    pub fn with_neighbor(mut self, iface: &str, neighbor: Neighbor) -> Self {
        match self.lldp.iter_mut().find(|l| l.name == iface) {
            Some(l) => l.neighbors.push(neighbor),
            None => self.lldp.push(LldpInterface {
                name: iface.to_string(),
                neighbors: vec![neighbor],
            }),
        }
        self
    }

    /// The LLDP neighbours reported for interface `iface`.
    pub fn neighbors_of(&self, iface: &str) -> &[Neighbor] {
        self.lldp
            .iter()
            .find(|l| l.name == iface)
            .map(|l| l.neighbors.as_slice())
            .unwrap_or(&[])
    }

    /// Stamps the report with the current time (done before every post).
    pub fn touch(&mut self) {
        self.timestamp = Some(Utc::now());
    }
}

/// Lowercases a MAC address and writes it colon-separated (`AA-BB-..`, `aabb..` accepted).
pub fn normalize_mac(mac: &str) -> String {
    let hex: String = mac
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 12 {
        return mac.trim().to_ascii_lowercase();
    }
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_go_nulls_and_missing_fields() {
        let json = r#"{"systemUUID":"ABC","data":{"timestamp":"2024-01-02T03:04:05Z","systemInfo":{"biosInformation":{"vendor":"Dell Inc.","version":"1.2","date":""},"systemInformation":null,"boardInformation":{}},
            "networkInterfaces":[{"name":"eno1","ipAddresses":null,"macAddress":"aa:bb:cc:dd:ee:ff","carrierStatus":"up"}],
            "lldp":[{"name":"eno1","neighbors":null}],"cpu":null,"storage":[{"name":"sda","hWSectorSize":512,"numaNodeID":-1}]}}"#;
        let p: RegistrationPayload = serde_json::from_str(json).unwrap();
        assert_eq!(p.system_uuid, "ABC");
        assert_eq!(p.data.system_info.bios_information.vendor, "Dell Inc.");
        assert!(p.data.network_interfaces[0].ip_addresses.is_empty());
        assert!(p.data.lldp[0].neighbors.is_empty());
        assert_eq!(p.data.storage[0].hw_sector_size, 512);
        assert_eq!(p.data.storage[0].numa_node_id, -1);
        assert!(p.data.timestamp.is_some());
    }

    #[test]
    fn encodes_upstream_key_names() {
        let r = Report::new()
            .with_interface(
                NetworkInterface::new("eno1", "AA-BB-CC-DD-EE-01")
                    .with_carrier(true)
                    .with_ip("10.0.0.5"),
            )
            .with_neighbor(
                "eno1",
                Neighbor {
                    port_id: "Ethernet1/1".into(),
                    system_name: "leaf1".into(),
                    ..Neighbor::default()
                },
            );
        let v = serde_json::to_value(RegistrationPayload {
            system_uuid: "u".into(),
            data: r,
        })
        .unwrap();
        assert_eq!(v["systemUUID"], "u");
        let nic = &v["data"]["networkInterfaces"][0];
        assert_eq!(nic["macAddress"], "aa:bb:cc:dd:ee:01");
        assert_eq!(nic["carrierStatus"], "up");
        assert_eq!(nic["ipAddresses"][0], "10.0.0.5");
        assert!(nic.get("ipAddress").is_none());
        assert_eq!(
            v["data"]["lldp"][0]["neighbors"][0]["portId"],
            "Ethernet1/1"
        );
        assert!(
            v["data"]["lldp"][0]["neighbors"][0]
                .get("chassisId")
                .is_none()
        );
        assert!(
            v["data"]["systemInfo"]["systemInformation"]
                .get("skuNumber")
                .is_some()
        );
    }

    #[test]
    fn with_interface_replaces_same_name() {
        let r = Report::default()
            .with_interface(NetworkInterface::new("eno1", "aa:bb:cc:dd:ee:01"))
            .with_interface(NetworkInterface::new("eno1", "aa:bb:cc:dd:ee:02"));
        assert_eq!(r.network_interfaces.len(), 1);
        assert_eq!(r.network_interfaces[0].mac_address, "aa:bb:cc:dd:ee:02");
    }

    #[test]
    fn normalizes_macs() {
        assert_eq!(normalize_mac("AABBCCDDEEFF"), "aa:bb:cc:dd:ee:ff");
        assert_eq!(normalize_mac("aa-bb-cc-dd-ee-ff"), "aa:bb:cc:dd:ee:ff");
        assert_eq!(normalize_mac("xx"), "xx");
    }
}
