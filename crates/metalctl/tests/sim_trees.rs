//! `metalctl bmc inspect` against each real captured BMC tree served by `metal-bmc-sim` over TLS:
//! the complete inventory with exact values (serial, model, BIOS version, BMC firmware version, CPU
//! count, total memory, every system NIC's MAC).

use metal_bmc_sim::{GroupSpec, IdentityMode, RackSpec, Simulator, TemplateSource};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("METAL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    dir.join("fixtures/redfish").is_dir().then_some(dir)
}

struct Expect {
    tree: &'static str,
    serial: &'static str,
    model: &'static str,
    bios: &'static str,
    bmc_fw: &'static str,
    cpus: u64,
    memory_gib: f64,
    macs: &'static [&'static str],
}

const TREES: &[Expect] = &[
    Expect {
        tree: "dell-poweredge-r750",
        serial: "CNIVC0014M0388",
        model: "PowerEdge R750",
        bios: "1.8.2",
        bmc_fw: "6.00.30.00",
        cpus: 2,
        memory_gib: 512.0,
        macs: &[
            "70:B5:E8:F0:52:DC",
            "70:B5:E8:F0:52:DD",
            "B8:3F:D2:90:97:C4",
            "E4:3D:1A:13:27:F0",
            "E4:3D:1A:13:27:F1",
        ],
    },
    Expect {
        tree: "supermicro-sys-821ge",
        serial: "S889914X3710910",
        model: "SYS-821GE-TNHR",
        bios: "1.4",
        bmc_fw: "11.01.01",
        cpus: 2,
        memory_gib: 2048.0,
        macs: &[
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
            "BE:3A:F2:B6:05:9F",
        ],
    },
    Expect {
        tree: "dmtf-public-rackmount1",
        serial: "437XR1138R2",
        model: "3500",
        bios: "P79 v1.45 (12/06/2017)",
        bmc_fw: "1.45.455b66-rev4",
        // CPU2 of the DMTF mockup is Absent: one CPU is installed.
        cpus: 1,
        memory_gib: 96.0,
        macs: &[
            "12:44:6A:3B:04:11",
            "12:44:6A:3B:04:11",
            "AA:BB:CC:DD:EE:00",
            "AA:BB:CC:DD:EE:FE",
        ],
    },
];

#[tokio::test]
async fn inspect_reads_every_real_tree_exactly() {
    let Some(shared) = shared_dir() else {
        eprintln!("note: ../shared/fixtures/redfish not found (set METAL_SHARED_DIR); skipping");
        return;
    };
    let mut spec = RackSpec::with_count(0);
    spec.base_address = "127.91.0.1".parse().expect("addr");
    spec.port = 0;
    spec.tls = true;
    spec.identity = IdentityMode::KeepAll;
    spec.groups = TREES
        .iter()
        .map(|e| GroupSpec {
            count: 1,
            template: TemplateSource::Path(shared.join("fixtures/redfish").join(e.tree)),
            systems: None,
            username: "admin".into(),
            password: Some("inspect-pass".into()),
            knobs: Default::default(),
        })
        .collect();
    let sim = Simulator::start(spec).await.expect("simulator");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("pw"), "inspect-pass\n").expect("pw");
    std::fs::write(dir.path().join("ca.pem"), sim.ca_pem().expect("tls CA")).expect("ca");

    for (bmc, want) in sim.bmcs().iter().zip(TREES) {
        let out = tokio::task::spawn_blocking({
            let address = bmc.address.clone();
            let dir = dir.path().to_path_buf();
            move || {
                Command::new(env!("CARGO_BIN_EXE_metalctl"))
                    .args(["bmc", "inspect", &address, "--username", "admin"])
                    .arg("--password-file")
                    .arg(dir.join("pw"))
                    .arg("--ca-file")
                    .arg(dir.join("ca.pem"))
                    .args(["-o", "json"])
                    .output()
                    .expect("run metalctl")
            }
        })
        .await
        .expect("join");
        assert!(
            out.status.success(),
            "{}: {}",
            want.tree,
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("json");
        let inv = &json[0];
        let t = want.tree;
        assert_eq!(inv["serial_number"], want.serial, "{t}");
        assert_eq!(inv["model"], want.model, "{t}");
        assert_eq!(inv["bios_version"], want.bios, "{t}");
        assert_eq!(inv["bmc_firmware_version"], want.bmc_fw, "{t}");
        assert_eq!(inv["cpu_count"], want.cpus, "{t}");
        assert_eq!(
            inv["total_memory_gib"].as_f64(),
            Some(want.memory_gib),
            "{t}"
        );
        let mut macs: Vec<String> = inv["nics"]
            .as_array()
            .expect("nics")
            .iter()
            .map(|n| n["mac_address"].as_str().unwrap_or_default().to_string())
            .collect();
        macs.sort();
        let mut expected: Vec<String> = want.macs.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(macs, expected, "{t}");
        assert!(
            !inv["storages"].as_array().expect("storages").is_empty(),
            "{t}: storage read"
        );
    }
    sim.shutdown().await;
}
