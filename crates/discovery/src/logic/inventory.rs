//! Redfish [`SystemInventory`] → the Server status fields discovery owns.

use api::common::IndicatorLED;
use api::server::{
    NetworkInterface, Processor, ServerPowerState, Storage, StorageDrive, StorageState,
    StorageVolume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use redfish::models::{IndicatorLed, LinkStatus, PowerState, ProcessorType, State};
use redfish::{NicInfo, StorageInfo, SystemInventory};

/// The inventory part of a Server's status, as discovery writes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// SKU.
    pub sku: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// BIOS version.
    pub bios_version: Option<String>,
    /// Power state as read.
    pub power_state: Option<ServerPowerState>,
    /// Indicator LED as read.
    pub indicator_led: Option<IndicatorLED>,
    /// Processors (absent sockets dropped).
    pub processors: Vec<Processor>,
    /// Total memory.
    pub total_system_memory: Option<Quantity>,
    /// Storage subsystems with drives and volumes.
    pub storages: Vec<Storage>,
    /// Network interfaces as Redfish reports them (MAC, link, IPv4).
    pub network_interfaces: Vec<NetworkInterface>,
}

/// Maps a Redfish power state; transitional and unknown values become `None` (not written).
pub fn power_state(p: Option<&PowerState>) -> Option<ServerPowerState> {
    match p? {
        PowerState::On => Some(ServerPowerState::On),
        PowerState::Off => Some(ServerPowerState::Off),
        PowerState::PoweringOn => Some(ServerPowerState::PoweringOn),
        PowerState::PoweringOff => Some(ServerPowerState::PoweringOff),
        PowerState::Paused => Some(ServerPowerState::Paused),
        _ => None,
    }
}

fn indicator_led(l: Option<&IndicatorLed>) -> Option<IndicatorLED> {
    Some(match l? {
        IndicatorLed::Lit => IndicatorLED::Lit,
        IndicatorLed::Blinking => IndicatorLED::Blinking,
        IndicatorLed::Off => IndicatorLED::Off,
        _ => IndicatorLED::Unknown,
    })
}

fn storage_state(s: Option<&State>) -> Option<StorageState> {
    s.map(|s| match s {
        State::Enabled => StorageState::Enabled,
        State::Disabled => StorageState::Disabled,
        State::Absent => StorageState::Absent,
        other => StorageState::from(other.as_str().to_string()),
    })
}

/// A byte count as a Kubernetes quantity in binary SI form (`480Gi`, or plain bytes when no
/// binary suffix divides it), like Go's `resource.NewQuantity(n, BinarySI)`.
pub fn bytes_quantity(bytes: u64) -> Quantity {
    const SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes == 0 {
        return Quantity("0".into());
    }
    let mut n = bytes;
    let mut suffix = "";
    for s in SUFFIXES {
        if !n.is_multiple_of(1024) {
            break;
        }
        n /= 1024;
        suffix = s;
    }
    Quantity(format!("{n}{suffix}"))
}

/// Total memory from `MemorySummary` (GiB, possibly fractional).
pub fn memory_quantity(gib: f64) -> Option<Quantity> {
    if !gib.is_finite() || gib <= 0.0 {
        return None;
    }
    Some(bytes_quantity(
        (gib * 1024.0 * 1024.0 * 1024.0).round() as u64
    ))
}

/// Lowercase colon-separated MAC, or `None` for an empty/zero address.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let m = metal_probe::normalize_mac(mac);
    (!m.is_empty() && m != "00:00:00:00:00:00").then_some(m)
}

fn nic(n: &NicInfo) -> Option<NetworkInterface> {
    let mac = n
        .mac_address
        .as_deref()
        .or(n.permanent_mac_address.as_deref())
        .and_then(normalize_mac)?;
    let carrier = n.link_status.as_ref().and_then(|l| match l {
        LinkStatus::LinkUp => Some("up".to_string()),
        LinkStatus::LinkDown | LinkStatus::NoLink => Some("down".to_string()),
        _ => None,
    });
    Some(NetworkInterface {
        name: n
            .id
            .clone()
            .or_else(|| n.name.clone())
            .unwrap_or_else(|| mac.clone()),
        ip: None,
        ips: n
            .ipv4_addresses
            .iter()
            .filter(|ip| {
                ip.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| !ip.is_unspecified())
            })
            .cloned()
            .collect(),
        mac_address: mac,
        carrier_status: carrier,
        neighbors: Vec::new(),
    })
}

fn storage(s: &StorageInfo) -> Storage {
    Storage {
        name: s.name.clone().or_else(|| s.id.clone()),
        state: None,
        drives: s
            .drives
            .iter()
            .map(|d| StorageDrive {
                name: d.name.clone().or_else(|| d.id.clone()),
                media_type: d.media_type.as_ref().map(|m| m.as_str().to_string()),
                type_: d.protocol.clone(),
                capacity: d.capacity_bytes.map(bytes_quantity),
                vendor: d.manufacturer.clone(),
                model: d.model.clone(),
                state: storage_state(d.state.as_ref()),
            })
            .collect(),
        volumes: s
            .volumes
            .iter()
            .map(|v| StorageVolume {
                name: v.name.clone().or_else(|| v.id.clone()),
                capacity: v.capacity_bytes.map(bytes_quantity),
                state: storage_state(v.state.as_ref()),
                raid_type: v.raid_type.clone(),
                volume_usage: None,
            })
            .collect(),
    }
}

/// Maps a full inventory to the status fields.
pub fn from_redfish(inv: &SystemInventory) -> Inventory {
    let non_empty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
    Inventory {
        manufacturer: non_empty(&inv.manufacturer),
        model: non_empty(&inv.model),
        sku: non_empty(&inv.sku),
        serial_number: non_empty(&inv.serial_number),
        bios_version: non_empty(&inv.bios_version),
        power_state: power_state(inv.power_state.as_ref()),
        indicator_led: indicator_led(inv.indicator_led.as_ref()),
        processors: inv
            .processors
            .iter()
            .filter(|p| p.state != Some(State::Absent))
            .map(|p| Processor {
                id: p
                    .id
                    .clone()
                    .or_else(|| p.socket.clone())
                    .unwrap_or_default(),
                type_: p
                    .processor_type
                    .as_ref()
                    .map(|t: &ProcessorType| t.as_str().to_string()),
                architecture: p.architecture.clone(),
                instruction_set: p.instruction_set.clone(),
                manufacturer: p.manufacturer.clone(),
                model: p.model.clone(),
                max_speed_mhz: p.max_speed_mhz.map(|v| v as i32),
                total_cores: p.total_cores.map(|v| v as i32),
                total_threads: p.total_threads.map(|v| v as i32),
            })
            .collect(),
        total_system_memory: inv.total_memory_gib.and_then(memory_quantity),
        storages: inv.storages.iter().map(storage).collect(),
        network_interfaces: inv.nics.iter().filter_map(nic).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(bytes_quantity(480 * 1024 * 1024 * 1024).0, "480Gi");
        assert_eq!(bytes_quantity(1_920_383_410_176).0, "1875374424Ki");
        assert_eq!(bytes_quantity(1000).0, "1000");
        assert_eq!(bytes_quantity(0).0, "0");
        assert_eq!(memory_quantity(256.0).unwrap().0, "256Gi");
        assert_eq!(memory_quantity(0.5).unwrap().0, "512Mi");
        assert!(memory_quantity(0.0).is_none());
    }

    #[test]
    fn macs() {
        assert_eq!(
            normalize_mac("3C:EC:EF:10:00:01").as_deref(),
            Some("3c:ec:ef:10:00:01")
        );
        assert_eq!(normalize_mac("00:00:00:00:00:00"), None);
        assert_eq!(normalize_mac(""), None);
    }

    #[test]
    fn power_states() {
        assert_eq!(
            power_state(Some(&PowerState::On)),
            Some(ServerPowerState::On)
        );
        assert_eq!(
            power_state(Some(&PowerState::Off)),
            Some(ServerPowerState::Off)
        );
        assert_eq!(power_state(None), None);
    }
}
