//! Probe report → the Server's `status.networkInterfaces`.
//!
//! The agent's view wins: its interfaces carry the OS names, link state, all addresses and LLDP
//! neighbours (merged by interface name, as upstream). Redfish NICs whose MAC the agent did not
//! report (e.g. a port without a driver in the probe OS) are kept after them, so no MAC that
//! Redfish knows disappears from the inventory.

use api::server::{LLDPNeighbor, NetworkInterface};
use metal_probe::Report;

use super::inventory::normalize_mac;

fn opt(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// Merges the agent's report with the interfaces read over Redfish.
pub fn network_interfaces(redfish: &[NetworkInterface], report: &Report) -> Vec<NetworkInterface> {
    let mut out: Vec<NetworkInterface> = Vec::new();
    for iface in &report.network_interfaces {
        let Some(mac) = normalize_mac(&iface.mac_address) else {
            continue;
        };
        let mut ips: Vec<String> = iface.ip_addresses.clone();
        if ips.is_empty() && !iface.ip_address.is_empty() {
            ips.push(iface.ip_address.clone());
        }
        let ips = ips
            .into_iter()
            .filter_map(|ip| {
                // Accept `10.0.0.5` and `10.0.0.5/24`; drop anything else.
                let addr = ip.split('/').next().unwrap_or_default();
                addr.parse::<std::net::IpAddr>().ok().map(|a| a.to_string())
            })
            .collect();
        let neighbors = report
            .neighbors_of(&iface.name)
            .iter()
            .map(|n| LLDPNeighbor {
                mac_address: opt(&n.chassis_id),
                port_id: opt(&n.port_id),
                port_description: opt(&n.port_description),
                system_name: opt(&n.system_name),
                system_description: opt(&n.system_description),
            })
            .collect();
        out.push(NetworkInterface {
            name: iface.name.clone(),
            ip: None,
            ips,
            mac_address: mac,
            carrier_status: opt(&iface.carrier_status),
            neighbors,
        });
    }
    for nic in redfish {
        if !out
            .iter()
            .any(|o| o.mac_address.eq_ignore_ascii_case(&nic.mac_address))
        {
            out.push(nic.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use metal_probe::{Neighbor, NetworkInterface as ProbeIface};

    fn rf(name: &str, mac: &str) -> NetworkInterface {
        NetworkInterface {
            name: name.into(),
            mac_address: mac.into(),
            carrier_status: Some("up".into()),
            ..Default::default()
        }
    }

    #[test]
    fn agent_wins_and_redfish_only_macs_are_kept() {
        let report = Report::new()
            .with_interface(
                ProbeIface::new("eno1", "AA:BB:CC:00:00:01")
                    .with_carrier(true)
                    .with_ip("10.0.0.5")
                    .with_ip("fe80::1"),
            )
            .with_interface(
                ProbeIface::new("eno2", "aa:bb:cc:00:00:02")
                    .with_ip("not-an-ip")
                    .with_ip("10.1.0.1/24"),
            )
            .with_interface(ProbeIface::new("bond0", ""))
            .with_neighbor(
                "eno1",
                Neighbor {
                    chassis_id: "e8:eb:d3:e4:5a:2e".into(),
                    port_id: "swp1".into(),
                    system_name: "leaf1".into(),
                    ..Default::default()
                },
            );
        let merged = network_interfaces(
            &[
                rf("NIC1", "aa:bb:cc:00:00:01"),
                rf("NIC3", "aa:bb:cc:00:00:03"),
            ],
            &report,
        );
        let names: Vec<&str> = merged.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["eno1", "eno2", "NIC3"]);
        assert_eq!(merged[0].mac_address, "aa:bb:cc:00:00:01");
        assert_eq!(merged[0].ips, ["10.0.0.5", "fe80::1"]);
        assert_eq!(merged[0].carrier_status.as_deref(), Some("up"));
        assert_eq!(merged[0].neighbors.len(), 1);
        assert_eq!(
            merged[0].neighbors[0].mac_address.as_deref(),
            Some("e8:eb:d3:e4:5a:2e")
        );
        assert_eq!(merged[0].neighbors[0].port_id.as_deref(), Some("swp1"));
        assert_eq!(merged[0].neighbors[0].port_description, None);
        assert_eq!(merged[1].ips, ["10.1.0.1"]);
        assert_eq!(merged[1].carrier_status.as_deref(), Some("down"));
        assert!(merged[1].neighbors.is_empty());
    }

    #[test]
    fn deprecated_single_ip_is_used_as_fallback() {
        let mut iface = ProbeIface::new("eth0", "aa:bb:cc:00:00:09");
        iface.ip_address = "192.168.1.9".into();
        let merged = network_interfaces(&[], &Report::new().with_interface(iface));
        assert_eq!(merged[0].ips, ["192.168.1.9"]);
    }
}
