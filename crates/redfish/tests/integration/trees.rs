//! Full inventory of each real tree with exact values (read from the tree files), with and without
//! `$expand`, against a server that ignores `$expand`, and against the full captures when present.

use std::path::Path;

use redfish::models::{IndicatorLed, PowerState};
use redfish::{ClientOptions, StorageSource, SystemInventory, Vendor};

use super::support::{ServerOptions, TreeServer};
use super::*;

fn sorted(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().collect();
    v.sort();
    v
}

fn macs(inv: &SystemInventory) -> Vec<String> {
    sorted(
        inv.nics
            .iter()
            .map(|n| n.mac_address.clone().unwrap_or_default()),
    )
}

fn drive_serials(inv: &SystemInventory) -> Vec<String> {
    sorted(
        inv.storages
            .iter()
            .flat_map(|s| s.drives.iter())
            .filter_map(|d| d.serial_number.clone()),
    )
}

fn check(tree: &str, inv: &SystemInventory) {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    match tree {
        DELL => {
            assert_eq!(inv.odata_id, DELL_SYS);
            assert_eq!(s(&inv.manufacturer), "Dell Inc.");
            assert_eq!(s(&inv.model), "PowerEdge R750");
            assert_eq!(s(&inv.serial_number), "CNIVC0014M0388");
            assert_eq!(s(&inv.sku), "F54P1G3");
            assert_eq!(s(&inv.uuid), "4c4c4544-0035-3410-8050-c6c04f314733");
            assert_eq!(s(&inv.bios_version), "1.8.2");
            assert_eq!(s(&inv.bmc_firmware_version), "6.00.30.00");
            assert_eq!(inv.power_state, Some(PowerState::On));
            assert_eq!(inv.indicator_led, Some(IndicatorLed::Lit));
            assert_eq!(inv.vendor, Vendor::Dell);
            assert_eq!(inv.cpu_count, 2);
            assert_eq!(inv.processors.len(), 3, "2 CPUs and a GPU");
            assert!(
                inv.processors
                    .iter()
                    .filter(|p| p.id.as_deref().unwrap_or("").starts_with("CPU"))
                    .all(|p| p.model.as_deref()
                        == Some("Intel(R) Xeon(R) Gold 6354 CPU @ 3.00GHz")
                        && p.total_cores == Some(18)),
                "{:?}",
                inv.processors
            );
            assert_eq!(inv.total_memory_gib, Some(512.0));
            assert_eq!(inv.dimms.len(), 16);
            assert!(inv.dimms.iter().all(|d| d.capacity_mib == Some(32768)));
            assert_eq!(
                macs(inv),
                [
                    "70:B5:E8:F0:52:DC",
                    "70:B5:E8:F0:52:DD",
                    "B8:3F:D2:90:97:C4",
                    "E4:3D:1A:13:27:F0",
                    "E4:3D:1A:13:27:F1"
                ]
            );
            assert_eq!(
                sorted(inv.storages.iter().map(|s| s.id.clone().unwrap())),
                ["AHCI.Embedded.1-1", "AHCI.Embedded.2-1", "CPU.1"]
            );
            let cpu1 = inv
                .storages
                .iter()
                .find(|s| s.id.as_deref() == Some("CPU.1"))
                .unwrap();
            assert_eq!(cpu1.source, StorageSource::Storage);
            assert_eq!(cpu1.drives.len(), 3);
            assert_eq!(cpu1.volumes.len(), 3);
            assert!(
                cpu1.drives
                    .iter()
                    .all(|d| d.capacity_bytes == Some(1_920_383_410_176)
                        && d.model.as_deref() == Some("Dell Ent NVMe CM6 RI 1.92TB"))
            );
            assert_eq!(
                drive_serials(inv),
                ["61M0A08ZTCD8", "61P0A06CTCD8", "61X0A002TCD8"]
            );
            let ahci = inv
                .storages
                .iter()
                .find(|s| s.id.as_deref() == Some("AHCI.Embedded.1-1"))
                .unwrap();
            assert_eq!(ahci.controllers.len(), 1);
        }
        SMC => {
            assert_eq!(inv.odata_id, SMC_SYS);
            assert_eq!(s(&inv.manufacturer), "Supermicro");
            assert_eq!(s(&inv.model), "SYS-821GE-TNHR");
            assert_eq!(s(&inv.serial_number), "S889914X3710910");
            assert_eq!(s(&inv.sku), "0x1D1415D9");
            assert_eq!(s(&inv.uuid), "00000000-0000-0000-0000-7CC25550A8FF");
            assert_eq!(s(&inv.bios_version), "1.4");
            assert_eq!(s(&inv.bmc_firmware_version), "11.01.01");
            assert_eq!(inv.vendor, Vendor::Supermicro);
            assert_eq!(inv.indicator_led, Some(IndicatorLed::Off));
            assert_eq!(inv.cpu_count, 2);
            assert!(inv.processors.iter().all(|p| p.model.as_deref()
                == Some("Intel(R) Xeon(R) Platinum 8462Y+")
                && p.total_cores == Some(32)));
            assert_eq!(inv.total_memory_gib, Some(2048.0));
            assert_eq!(inv.dimms.len(), 32);
            assert!(inv.dimms.iter().all(|d| d.capacity_mib == Some(65536)));
            assert_eq!(
                macs(inv),
                [
                    "7c:c2:55:79:3f:8e",
                    "7c:c2:55:79:3f:8f",
                    "94:6d:ae:91:09:c2",
                    "94:6d:ae:91:67:6a",
                    "94:6d:ae:91:6a:9a",
                    "94:6d:ae:91:73:8a",
                    "94:6d:ae:91:75:9a",
                    "94:6d:ae:91:75:ba",
                    "94:6d:ae:91:dd:1a",
                    "94:6d:ae:91:fb:22",
                    "94:6d:ae:b2:b1:4e",
                    "BE:3A:F2:B6:05:9F"
                ]
            );
            assert_eq!(inv.storages.len(), 1);
            assert_eq!(inv.storages[0].id.as_deref(), Some("NVMeSSD"));
            assert_eq!(inv.storages[0].controllers.len(), 1);
            assert_eq!(inv.storages[0].drives.len(), 8);
            assert!(
                inv.storages[0]
                    .drives
                    .iter()
                    .all(|d| d.capacity_bytes == Some(7_681_501_126_656))
            );
            assert_eq!(
                drive_serials(inv),
                [
                    "S6CKNN0W501980",
                    "S6CKNN0W502111",
                    "S6CKNN0W502114",
                    "S6CKNN0W502279",
                    "S6CKNN0W502286",
                    "S6CKNN0W502287",
                    "S6CKNN0W502288",
                    "S6CKNN0W502373"
                ]
            );
        }
        DMTF => {
            assert_eq!(inv.odata_id, DMTF_SYS);
            assert_eq!(s(&inv.manufacturer), "Contoso");
            assert_eq!(s(&inv.model), "3500");
            assert_eq!(s(&inv.serial_number), "437XR1138R2");
            assert_eq!(s(&inv.sku), "8675309");
            assert_eq!(s(&inv.uuid), "38947555-7742-3448-3784-823347823834");
            assert_eq!(s(&inv.bios_version), "P79 v1.45 (12/06/2017)");
            assert_eq!(s(&inv.bmc_firmware_version), "1.45.455b66-rev4");
            assert_eq!(inv.vendor, Vendor::Generic);
            assert_eq!(inv.cpu_count, 1, "CPU2 is Absent");
            assert_eq!(inv.processors.len(), 3);
            assert_eq!(inv.total_memory_gib, Some(96.0));
            assert_eq!(inv.dimms.len(), 4);
            assert_eq!(
                macs(inv),
                [
                    "12:44:6A:3B:04:11",
                    "12:44:6A:3B:04:11",
                    "AA:BB:CC:DD:EE:00",
                    "AA:BB:CC:DD:EE:FE"
                ]
            );
            assert_eq!(inv.storages.len(), 1, "SimpleStorage fallback");
            assert_eq!(inv.storages[0].source, StorageSource::SimpleStorage);
            assert_eq!(inv.storages[0].drives.len(), 4);
            assert_eq!(
                inv.storages[0].drives[0].capacity_bytes,
                Some(8_000_000_000_000)
            );
        }
        other => panic!("unknown tree {other}"),
    }
}

const SYSTEMS: [(&str, &str); 3] = [(DELL, DELL_SYS), (SMC, SMC_SYS), (DMTF, DMTF_SYS)];

async fn inventory_of(dir: &Path, sys: &str, expand: bool, honor: bool) -> SystemInventory {
    let s = TreeServer::start(
        dir,
        ServerOptions {
            honor_expand: honor,
            ..ServerOptions::default()
        },
    );
    let c = client(
        &s,
        ClientOptions {
            use_expand: expand,
            ..fast()
        },
    );
    let inv = c.inventory(sys).await.unwrap();
    assert_eq!(inv.requests as u64, c.request_count());
    // A second inventory on the warm client skips the root and the login.
    let warm = c.inventory(sys).await.unwrap();
    assert_eq!(
        warm.requests + 2,
        inv.requests,
        "warm client should save root + login"
    );
    inv
}

#[tokio::test]
async fn inventory_of_each_trimmed_tree_is_exact_with_and_without_expand() {
    for (t, sys) in SYSTEMS {
        let with = inventory_of(&tree(t), sys, true, true).await;
        check(t, &with);
        assert!(with.used_expand);
        let without = inventory_of(&tree(t), sys, false, true).await;
        check(t, &without);
        assert!(!without.used_expand);
        assert!(
            with.requests < without.requests,
            "{t}: $expand did not save requests ({} vs {})",
            with.requests,
            without.requests
        );
        // A service that advertises $expand but ignores it still gives the full inventory.
        let ignored = inventory_of(&tree(t), sys, true, false).await;
        check(t, &ignored);
        eprintln!(
            "{t}: {} requests with $expand, {} without",
            with.requests, without.requests
        );
    }
}

#[tokio::test]
async fn expand_refused_on_a_collection_falls_back_to_members() {
    let s = TreeServer::start(tree(SMC), ServerOptions::default());
    // The System's own two-level expansion refused too: then each collection is read alone.
    s.fault(
        "/redfish/v1/Systems/1?$expand",
        super::support::FaultKind::Status {
            status: 400,
            retry_after: None,
            body: None,
        },
        None,
    );
    s.fault(
        "/redfish/v1/Systems/1/Memory?$expand",
        super::support::FaultKind::Status {
            status: 400,
            retry_after: None,
            body: None,
        },
        None,
    );
    let c = client(&s, fast());
    let inv = c.inventory(SMC_SYS).await.unwrap();
    check(SMC, &inv);
    assert_eq!(
        s.requests(&http::Method::GET, "/redfish/v1/Systems/1/Memory/")
            .len(),
        32
    );
}

/// Where `$levels` goes to 2 or more (Supermicro: 2, DMTF: 6), the System comes with its
/// collections and their members: no collection or member is read on its own. Dell (1 level)
/// reads each collection once.
#[tokio::test]
async fn a_bmc_expanding_two_levels_gives_the_inventory_in_the_system_read() {
    for (t, sys, deep) in [
        (SMC, SMC_SYS, true),
        (DMTF, DMTF_SYS, true),
        (DELL, DELL_SYS, false),
    ] {
        let s = TreeServer::start(tree(t), ServerOptions::default());
        let c = client(&s, fast());
        let inv = c.inventory(sys).await.unwrap();
        check(t, &inv);
        let paths: Vec<String> = s
            .requests(&http::Method::GET, "/")
            .into_iter()
            .map(|l| l.path)
            .collect();
        // Reads of `base` itself, with or without a query.
        let reads = |base: &str| {
            paths
                .iter()
                .filter(|p| *p == base || p.starts_with(&format!("{base}?")))
                .count()
        };
        let system_reads = reads(sys);
        let collection_reads: usize = ["Processors", "Memory", "EthernetInterfaces"]
            .iter()
            .map(|c| reads(&format!("{sys}/{c}")))
            .sum();
        let expected = if deep { (1, 0) } else { (1, 3) };
        assert_eq!(
            (system_reads, collection_reads),
            expected,
            "{t}: (System reads, CPU/memory/NIC collection reads): {paths:?}"
        );
        if deep {
            assert!(
                paths
                    .iter()
                    .any(|p| p.starts_with(&format!("{sys}?$expand"))),
                "{t}: the System read is expanded: {paths:?}"
            );
        }
    }
}

#[tokio::test]
async fn inventory_of_each_full_tree_is_exact() {
    let Some(dir) = super::support::shared_trees_dir() else {
        eprintln!(
            "SKIP: full Redfish trees not found (set METAL_SHARED_DIR); the trimmed trees were checked instead"
        );
        return;
    };
    for (t, sys) in SYSTEMS {
        let with = inventory_of(&dir.join(t), sys, true, true).await;
        check(t, &with);
        let without = inventory_of(&dir.join(t), sys, false, true).await;
        check(t, &without);
        eprintln!(
            "{t} (full tree): {} requests with $expand, {} without",
            with.requests, without.requests
        );
    }
}
