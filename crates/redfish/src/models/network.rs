//! Ethernet interfaces.

use serde::{Deserialize, Serialize};

use super::{Status, de, redfish_enum};

redfish_enum! {
    /// `LinkStatus` of an Ethernet interface.
    LinkStatus {
        /// Link up.
        LinkUp = "LinkUp",
        /// No link.
        NoLink = "NoLink",
        /// Link down.
        LinkDown = "LinkDown",
    }
}

/// An IPv4 address entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IPv4Address {
    /// Address.
    #[serde(rename = "Address", deserialize_with = "de::opt_string")]
    pub address: Option<String>,
    /// Subnet mask.
    #[serde(rename = "SubnetMask", deserialize_with = "de::opt_string")]
    pub subnet_mask: Option<String>,
    /// DHCP, Static, ...
    #[serde(rename = "AddressOrigin", deserialize_with = "de::opt_string")]
    pub address_origin: Option<String>,
    /// Gateway.
    #[serde(rename = "Gateway", deserialize_with = "de::opt_string")]
    pub gateway: Option<String>,
}

/// An IPv6 address entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IPv6Address {
    /// Address.
    #[serde(rename = "Address", deserialize_with = "de::opt_string")]
    pub address: Option<String>,
    /// Prefix length.
    #[serde(rename = "PrefixLength", deserialize_with = "de::opt_u32")]
    pub prefix_length: Option<u32>,
    /// Origin.
    #[serde(rename = "AddressOrigin", deserialize_with = "de::opt_string")]
    pub address_origin: Option<String>,
    /// State.
    #[serde(rename = "AddressState", deserialize_with = "de::opt_string")]
    pub address_state: Option<String>,
}

/// An EthernetInterface of a system or a manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EthernetInterface {
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
    /// Current MAC address.
    #[serde(rename = "MACAddress", deserialize_with = "de::opt_nonempty_string")]
    pub mac_address: Option<String>,
    /// Burned-in MAC address.
    #[serde(
        rename = "PermanentMACAddress",
        deserialize_with = "de::opt_nonempty_string"
    )]
    pub permanent_mac_address: Option<String>,
    /// Link state.
    #[serde(rename = "LinkStatus", deserialize_with = "de::opt")]
    pub link_status: Option<LinkStatus>,
    /// Speed in Mbit/s.
    #[serde(rename = "SpeedMbps", deserialize_with = "de::opt_u64")]
    pub speed_mbps: Option<u64>,
    /// MTU.
    #[serde(rename = "MTUSize", deserialize_with = "de::opt_u32")]
    pub mtu_size: Option<u32>,
    /// Enabled.
    #[serde(rename = "InterfaceEnabled", deserialize_with = "de::opt_bool")]
    pub interface_enabled: Option<bool>,
    /// Full duplex.
    #[serde(rename = "FullDuplex", deserialize_with = "de::opt_bool")]
    pub full_duplex: Option<bool>,
    /// Autonegotiation.
    #[serde(rename = "AutoNeg", deserialize_with = "de::opt_bool")]
    pub auto_neg: Option<bool>,
    /// Host name.
    #[serde(rename = "HostName", deserialize_with = "de::opt_string")]
    pub host_name: Option<String>,
    /// FQDN.
    #[serde(rename = "FQDN", deserialize_with = "de::opt_string")]
    pub fqdn: Option<String>,
    /// IPv4 addresses.
    #[serde(rename = "IPv4Addresses", deserialize_with = "de::vec")]
    pub ipv4_addresses: Vec<IPv4Address>,
    /// IPv6 addresses.
    #[serde(rename = "IPv6Addresses", deserialize_with = "de::vec")]
    pub ipv6_addresses: Vec<IPv6Address>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}
