//! Runs the `metalctl` binary against the Redfish crate's static tree server.

#[path = "../../redfish/tests/support/mod.rs"]
#[allow(missing_docs)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http::Method;
use serde_json::Value;
use support::{ServerOptions, TEST_PASSWORD, TreeServer};

fn tree(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../redfish/tests/fixtures")
        .join(name)
}

struct Env {
    server: TreeServer,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(t: &str, opts: ServerOptions) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), format!("{TEST_PASSWORD}\n")).unwrap();
        let server = TreeServer::start(tree(t), opts);
        if let Some(ca) = &server.ca_pem {
            std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        }
        Env { server, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], extra: &[&str]) -> Output {
        let url = self.server.url();
        let pw = self.dir.path().join("password");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_metalctl"));
        cmd.args(args)
            .arg(&url)
            .args(["--username", "admin", "--password-file"])
            .arg(&pw)
            .args(extra);
        cmd.output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "metalctl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn inspect_prints_the_inventory_in_every_format() {
    let env = Env::new("dell-poweredge-r750", ServerOptions::default());
    let json: Value =
        serde_json::from_str(&stdout(&env.run(&["bmc", "inspect", "-o", "json"]))).unwrap();
    let inv = &json[0];
    assert_eq!(inv["serial_number"], "CNIVC0014M0388");
    assert_eq!(inv["model"], "PowerEdge R750");
    assert_eq!(inv["bios_version"], "1.8.2");
    assert_eq!(inv["bmc_firmware_version"], "6.00.30.00");
    assert_eq!(inv["cpu_count"], 2);
    assert_eq!(inv["total_memory_gib"], 512.0);
    assert_eq!(inv["dimms"].as_array().unwrap().len(), 16);
    let mut macs: Vec<&str> = inv["nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["mac_address"].as_str().unwrap())
        .collect();
    macs.sort();
    assert_eq!(
        macs,
        [
            "70:B5:E8:F0:52:DC",
            "70:B5:E8:F0:52:DD",
            "B8:3F:D2:90:97:C4",
            "E4:3D:1A:13:27:F0",
            "E4:3D:1A:13:27:F1"
        ]
    );

    let yaml = stdout(&env.run(&["bmc", "inspect", "-o", "yaml"]));
    let y: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(y[0]["uuid"], "4c4c4544-0035-3410-8050-c6c04f314733");
    assert_eq!(y[0]["power_state"], "On");

    let table = stdout(&env.run(&["bmc", "inspect"]));
    for needle in [
        "PowerEdge R750",
        "CNIVC0014M0388",
        "1.8.2",
        "6.00.30.00",
        "512 GiB",
        "E4:3D:1A:13:27:F0",
        "Disk.Bay.0:Enclosure.Internal.0-1",
        "Dell Ent NVMe CM6 RI 1.92TB",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
}

#[test]
fn power_and_boot_are_sent_once() {
    let env = Env::new("dell-poweredge-r750", ServerOptions::default());
    let out = stdout(&env.run(&["bmc", "power", "on"]));
    assert!(out.contains("already On, nothing sent"), "{out}");
    let out = stdout(&env.run(&["bmc", "power", "force-off"]));
    assert!(out.contains("ForceOff issued"), "{out}");
    let out = stdout(&env.run_with(&["bmc", "power", "cycle"], &["--wait", "5"]));
    assert!(out.contains("PowerCycle issued"), "{out}");
    let resets = env.server.requests(
        &Method::POST,
        "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset",
    );
    assert_eq!(resets.len(), 2);

    let out = stdout(&env.run(&["bmc", "boot", "pxe"]));
    assert!(out.contains("boot from Pxe (next boot) set"), "{out}");
    let out = stdout(&env.run(&["bmc", "boot", "pxe"]));
    assert!(out.contains("already set"), "{out}");
    let out = stdout(&env.run(&["bmc", "boot", "uefi-http", "--continuous"]));
    assert!(out.contains("UefiHttp (every boot)"), "{out}");
    let patches = env
        .server
        .requests(&Method::PATCH, "/redfish/v1/Systems/System.Embedded.1");
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[1].body.as_ref().unwrap()["Boot"]["BootSourceOverrideEnabled"],
        "Continuous"
    );
}

#[test]
fn tls_needs_the_ca_or_explicit_insecure_and_errors_are_clean() {
    let env = Env::new(
        "dmtf-public-rackmount1",
        ServerOptions {
            tls: true,
            ..ServerOptions::default()
        },
    );
    let ca = env.dir.path().join("ca.pem");
    let out = env.run_with(
        &["bmc", "inspect", "-o", "json"],
        &["--ca-file", ca.to_str().unwrap()],
    );
    assert!(stdout(&out).contains("437XR1138R2"));
    let out = env.run(&["bmc", "inspect"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[Unreachable]") && err.contains("certificate"),
        "{err}"
    );
    let out = env.run_with(&["bmc", "inspect"], &["--insecure"]);
    assert!(stdout(&out).contains("Contoso"));

    // Wrong password: a clear class, and the password is not printed.
    std::fs::write(env.dir.path().join("password"), "Not-The-Password-42\n").unwrap();
    let out = env.run_with(&["bmc", "power", "on"], &["--insecure"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[AuthenticationFailed]"), "{err}");
    assert!(!err.contains("Not-The-Password-42"), "{err}");
}
