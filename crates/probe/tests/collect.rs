//! Collection from the captured tree under tests/fixtures/tree (a trimmed Dell PowerEdge R750).

mod common;

use metal_probe::{CollectOptions, collect, collect_with};

#[test]
fn captured_tree_yields_full_report() {
    let c = collect_with(&CollectOptions::for_root(common::fixture_tree()));
    assert!(c.warnings.is_empty(), "warnings: {:?}", c.warnings);
    let r = c.report;
    assert!(r.timestamp.is_some());

    let sys = &r.system_info.system_information;
    assert_eq!(sys.manufacturer, "Dell Inc.");
    assert_eq!(sys.product_name, "PowerEdge R750");
    assert_eq!(sys.serial_number, "7XJ8K93");
    assert_eq!(sys.uuid, "4c4c4544-0058-4a10-8038-b7c04f4b3933");
    assert_eq!(r.system_info.bios_information.version, "1.13.2");
    assert_eq!(r.system_info.board_information.product, "0PJPW3");

    assert_eq!(r.cpu.len(), 2);
    for (i, cpu) in r.cpu.iter().enumerate() {
        assert_eq!(cpu.id, i as i64);
        assert_eq!(cpu.total_cores, 4);
        assert_eq!(cpu.total_hardware_threads, 8);
        assert_eq!(cpu.vendor, "GenuineIntel");
        assert_eq!(cpu.model, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
        assert!(cpu.capabilities.iter().any(|f| f == "avx512f"));
    }
    assert_eq!(r.memory_total_bytes, Some(263_578_316 * 1024));
    let dimms: Vec<(&str, i64, &str)> = r
        .memory
        .iter()
        .map(|m| {
            (
                m.device_locator.as_str(),
                m.size_bytes >> 30,
                m.vendor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        dimms,
        [
            ("A1", 32, "Hynix"),
            ("A2", 32, "Hynix"),
            ("B1", 64, "Samsung"),
            ("B2", 128, "Samsung")
        ]
    );
    assert_eq!(r.memory[0].memory_type, "DDR4");
    assert_eq!(r.memory[0].speed, "3200 MT/s");

    let disks: Vec<(&str, u64)> = r
        .storage
        .iter()
        .map(|d| (d.name.as_str(), d.size_bytes))
        .collect();
    assert_eq!(
        disks,
        [
            ("nvme0n1", 3_750_748_848 * 512),
            ("nvme1n1", 3_750_748_848 * 512),
            ("sda", 937_703_088 * 512)
        ]
    );
    assert_eq!(r.storage[0].model, "Dell Ent NVMe CM6 RI 1.92TB");
    assert_eq!(r.storage[0].serial, "Y1K0A0BZTCE8");
    assert_eq!(r.storage[1].numa_node_id, 1);
    assert_eq!(r.storage[2].physical_block_size, 4096);
    assert_eq!(r.storage[2].vendor, "DELLBOSS");

    let ifaces: Vec<(&str, &str, &str)> = r
        .network_interfaces
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.mac_address.as_str(),
                i.carrier_status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ifaces,
        [
            ("eno12399", "b4:96:91:2a:1c:40", "up"),
            ("eno12409", "b4:96:91:2a:1c:41", "down"),
            ("ens3f0np0", "0c:42:a1:5e:3b:70", "up"),
            ("ens6f0np0", "0c:42:a1:5e:9d:10", "up"),
        ]
    );
    assert_eq!(
        r.network_interfaces[0].ip_addresses,
        ["10.20.30.41", "fe80::b696:91ff:fe2a:1c40"]
    );
    assert!(r.network_interfaces[1].ip_addresses.is_empty());
    assert_eq!(
        r.network_interfaces[2].ip_addresses,
        ["2001:db8:100::41", "fe80::e42:a1ff:fe5e:3b70"]
    );

    let nics: Vec<(&str, &str, &str)> = r
        .nics
        .iter()
        .map(|n| (n.name.as_str(), n.pci_address.as_str(), n.speed.as_str()))
        .collect();
    assert_eq!(
        nics,
        [
            ("eno12399", "0000:31:00.0", "25000Mb/s"),
            ("eno12409", "0000:31:00.1", ""),
            ("ens3f0np0", "0000:4b:00.0", "100000Mb/s"),
            ("ens6f0np0", "0000:98:00.0", "100000Mb/s"),
        ]
    );
    assert_eq!(r.pci_devices.len(), 5);
    assert_eq!(r.pci_devices[2].vendor_id, "15b3");

    assert_eq!(r.lldp.len(), 3);
    let n = &r.neighbors_of("ens3f0np0")[0];
    assert_eq!(n.system_name, "leaf-r12-a");
    assert_eq!(n.port_id, "swp17");
    assert_eq!(n.chassis_id, "e8:eb:d3:e4:5a:2e");
    assert_eq!(n.mgmt_ip, "192.168.30.242");
    assert_eq!(n.vlan_id, "1963");
    assert_eq!(n.capabilities, ["Bridge", "Router"]);
    assert_eq!(r.neighbors_of("eno12399")[0].port_id, "Ethernet1/21");
}

#[test]
fn missing_sections_warn_but_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let c = collect_with(&CollectOptions::for_root(dir.path()));
    assert!(c.report.network_interfaces.is_empty());
    assert!(c.report.cpu.is_empty());
    assert!(c.warnings.iter().any(|w| w.contains("sys/class/net")));
    assert!(c.warnings.iter().any(|w| w.contains("proc/cpuinfo")));
    // A partial tree still reports what is there.
    std::fs::create_dir_all(dir.path().join("sys/class/net/eth0")).unwrap();
    std::fs::write(
        dir.path().join("sys/class/net/eth0/address"),
        "AA:BB:CC:00:00:01\n",
    )
    .unwrap();
    let r = collect(dir.path());
    assert_eq!(r.network_interfaces[0].mac_address, "aa:bb:cc:00:00:01");
    assert_eq!(r.network_interfaces[0].carrier_status, "down");
}

#[test]
fn if_inet6_fallback_without_ip_json() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::fixture_tree();
    for f in [
        "sys/class/net/eno12399/address",
        "sys/class/net/eno12399/carrier",
        "sys/class/net/eno12399/operstate",
        "proc/net/if_inet6",
    ] {
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), to).unwrap();
    }
    let c = collect_with(&CollectOptions::for_root(dir.path()));
    assert_eq!(
        c.report.network_interfaces[0].ip_addresses,
        ["fe80::b696:91ff:fe2a:1c40"]
    );
    assert!(c.warnings.iter().any(|w| w.contains("if_inet6")));
}
