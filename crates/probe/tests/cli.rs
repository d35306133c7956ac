//! The binary as a process: `--print` on the captured tree, `--once` against a registry stand-in.

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_metal-probe");

#[test]
fn print_dumps_report_json() {
    let out = Command::new(BIN)
        .arg("--root")
        .arg(common::fixture_tree())
        .arg("--print")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["systemInfo"]["systemInformation"]["productName"],
        "PowerEdge R750"
    );
    assert_eq!(v["networkInterfaces"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn once_posts_and_exits() {
    let (fake, addr) = common::Fake::start(&[503]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let out = tokio::process::Command::new(BIN)
        .arg("--root")
        .arg(common::fixture_tree())
        .args([
            "--registry-url",
            &format!("http://{addr}"),
            "--once",
            "--backoff",
            "10ms",
            "--post-bootstate",
        ])
        .arg("--token-file")
        .arg(&token)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = fake.seen();
    // bootstate answered 503 once and was retried, then one register.
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/bootstate", "/bootstate", "/register"]);
    let reg = &seen[2];
    assert_eq!(reg.authorization.as_deref(), Some("Bearer tok-123"));
    // The UUID defaults to the DMI product_uuid.
    assert_eq!(
        reg.body["systemUUID"],
        "4c4c4544-0058-4a10-8038-b7c04f4b3933"
    );
    assert_eq!(reg.body["data"]["lldp"].as_array().unwrap().len(), 3);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("tok-123"));
}

#[tokio::test]
async fn once_fails_on_wrong_token() {
    let (_fake, addr) = common::Fake::start(&[401]).await;
    let out = tokio::process::Command::new(BIN)
        .arg("--root")
        .arg(common::fixture_tree())
        .args([
            "--registry-url",
            &format!("http://{addr}"),
            "--once",
            "--server-uuid",
            "x",
        ])
        .env("METAL_PROBE_TOKEN", "nope")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));
}

#[tokio::test]
async fn periodic_mode_reposts_and_ends_when_the_token_is_revoked() {
    // Accepted twice, then discovery finished and revoked the token.
    let (fake, addr) = common::Fake::start(&[201, 201, 403]).await;
    let out = tokio::process::Command::new(BIN)
        .arg("--root")
        .arg(common::fixture_tree())
        .args([
            "--registry-url",
            &format!("http://{addr}"),
            "--server-uuid",
            "u1",
            "--interval",
            "100ms",
            "--lldp-wait",
            "0",
        ])
        .env("METAL_PROBE_TOKEN", "tok")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.path == "/register"));
    // Each re-post carries a fresh timestamp.
    assert_ne!(
        seen[0].body["data"]["timestamp"],
        seen[1].body["data"]["timestamp"]
    );
}
