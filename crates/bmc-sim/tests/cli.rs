//! The binary: a YAML rack starts, prints where everything is, serves, and stops on SIGTERM-like kill.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Client;
use http::StatusCode;

#[tokio::test]
async fn binary_serves_a_yaml_rack() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rack.yaml");
    std::fs::write(
        &config,
        "base_address: 127.35.0.1\nport: 0\ntls: true\ngroups:\n  - count: 2\n    password: yaml-password\n    knobs: {power_delay_ms: 50}\n  - count: 1\n    username: root\n    systems: 2\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_metal-bmc-sim"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--admin-address",
            "127.35.0.250:0",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("admin API:");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .expect("the binary printed its addresses")
        .unwrap();
    let text = lines.join("\n");
    assert!(text.contains("3 BMCs"), "{text}");
    assert!(
        !text.contains("yaml-password"),
        "passwords are never printed"
    );
    let third = lines.iter().find(|l| l.starts_with("  [2] ")).unwrap();
    assert!(
        third.contains("user root") && third.contains("systems 1,2"),
        "{third}"
    );
    let address = lines
        .iter()
        .find(|l| l.starts_with("  [0] "))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(address.starts_with("https://127.35.0.1:"));
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();

    let ca = std::fs::read_to_string(dir.path().join("state/ca.pem")).unwrap();
    let creds = std::fs::read_to_string(dir.path().join("state/credentials.yaml")).unwrap();
    assert!(creds.contains("yaml-password") && creds.contains("username: root"));
    let info = metal_bmc_sim::BmcInfo {
        index: 0,
        address: address.clone(),
        ip: "127.35.0.1".parse().unwrap(),
        port,
        username: "admin".into(),
        password: "yaml-password".into(),
        ca_pem: Some(ca),
        template: "default".into(),
        systems: vec![],
    };
    let c = Client::for_bmc(&info);
    assert_eq!(c.get_json("/redfish/v1/Systems/1").await["Id"], "1");

    let admin_line = lines.iter().find(|l| l.starts_with("admin API:")).unwrap();
    let admin_addr = admin_line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let admin = Client::plain(admin_addr);
    let list = admin.get("/bmcs").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json().as_array().unwrap().len(), 3);
    assert_eq!(
        admin.get("/bmcs/0/knobs").await.json()["power_delay_ms"],
        50
    );

    child.kill().unwrap();
    child.wait().unwrap();
}
