//! Names of the objects discovery creates, the per-server token and the discovery ignition
//! (docs/controllers.md, "In-band discovery boot").

use base64::Engine as _;
use rand::RngCore;
use serde_json::json;

/// Label on every object discovery creates for a discovery boot (SBC, Secret, report
/// ConfigMap), so one label-selected watch sees them all.
pub const DISCOVERY_LABEL: &str = "metal.ironcore.dev/discovery";
/// Label on the discovery Secret and report: the server's system UUID (lowercase), how the
/// registry finds the token for a report.
pub const SYSTEM_UUID_LABEL: &str = "metal.ironcore.dev/system-uuid";
/// Annotation on the discovery objects naming their Server (names can exceed label limits).
pub const SERVER_ANNOTATION: &str = "metal.ironcore.dev/server";
/// Secret key holding the bearer token.
pub const TOKEN_KEY: &str = "token";
/// Secret key holding the Ignition config.
pub const IGNITION_KEY: &str = "ignition";
/// ConfigMap key holding the agent's report (JSON, upstream payload `data`).
pub const REPORT_KEY: &str = "report.json";
/// Where the ignition writes the token on the booted system.
pub const TOKEN_PATH: &str = "/etc/metal/probe-token";

/// `<bmc>-system-<index>`: the Server for the index-th bootable system of a BMC (upstream).
pub fn server_name(bmc: &str, index: usize) -> String {
    format!("{bmc}-system-{index}")
}

/// The internal ServerBootConfiguration of a server is named after it.
pub fn sbc_name(server: &str) -> String {
    server.to_string()
}

/// The per-server discovery Secret (token + ignition).
pub fn secret_name(server: &str) -> String {
    format!("{server}-discovery")
}

/// The ConfigMap holding the agent's report.
pub fn report_name(server: &str) -> String {
    format!("{server}-discovery-report")
}

/// A fresh random token: 32 bytes, URL-safe base64 without padding (43 characters).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The kernel command line of the probe image.
pub fn cmdline(registry_url: &str, system_uuid: &str) -> String {
    format!("metal.registry={registry_url} metal.server-uuid={system_uuid}")
}

/// Where the ignition puts the registry's CA bundle for the agent.
pub const CA_PATH: &str = "/etc/metal/registry-ca.pem";

/// The Ignition v3 config: writes the token to [`TOKEN_PATH`] (mode 0600), the registry's CA
/// bundle to [`CA_PATH`] when given, and runs `metal-probe --registry-url <url> --server-uuid
/// <uuid> --token-file <path> [--registry-ca-file <path>]`.
pub fn ignition(
    registry_url: &str,
    system_uuid: &str,
    token: &str,
    registry_ca: Option<&str>,
) -> String {
    let ca_arg = registry_ca.map_or(String::new(), |_| format!(" --registry-ca-file {CA_PATH}"));
    let unit = format!(
        "[Unit]\nDescription=metal in-band discovery agent\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nExecStart=/usr/local/bin/metal-probe --registry-url {registry_url} --server-uuid {system_uuid} --token-file {TOKEN_PATH}{ca_arg}\n\
         Restart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n"
    );
    let mut files = vec![json!({
        "path": TOKEN_PATH,
        "mode": 0o600,
        "overwrite": true,
        // The token is URL-safe base64, so it needs no further escaping in a data URL.
        "contents": {"source": format!("data:,{token}")}
    })];
    if let Some(ca) = registry_ca {
        use base64::Engine as _;
        files.push(json!({
            "path": CA_PATH,
            "mode": 0o644,
            "overwrite": true,
            "contents": {"source": format!(
                "data:;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(ca)
            )}
        }));
    }
    json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": files},
        "systemd": {"units": [{"name": "metal-probe.service", "enabled": true, "contents": unit}]}
    })
    .to_string()
}

/// Reads the token back out of an ignition produced by [`ignition`] (for tests and for
/// whoever plays the booted server).
pub fn token_from_ignition(ignition: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(ignition).ok()?;
    v["storage"]["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == TOKEN_PATH)?["contents"]["source"]
        .as_str()?
        .strip_prefix("data:,")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(server_name("rack1-bmc3", 0), "rack1-bmc3-system-0");
        assert_eq!(secret_name("s"), "s-discovery");
        assert_eq!(report_name("s"), "s-discovery-report");
        assert_eq!(sbc_name("s"), "s");
    }

    #[test]
    fn tokens() {
        let t = new_token();
        assert_eq!(t.len(), 43);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, new_token());
        assert!(tokens_equal(t.as_bytes(), t.clone().as_bytes()));
        assert!(!tokens_equal(t.as_bytes(), new_token().as_bytes()));
        assert!(!tokens_equal(b"abc", b"abcd"));
    }

    #[test]
    fn ignition_carries_token_and_command() {
        let ign = ignition("http://10.0.0.1:10000", "uuid-1", "tok", None);
        let v: serde_json::Value = serde_json::from_str(&ign).unwrap();
        assert_eq!(v["ignition"]["version"], "3.4.0");
        assert_eq!(v["storage"]["files"][0]["mode"], 384);
        let unit = v["systemd"]["units"][0]["contents"].as_str().unwrap();
        assert!(unit.contains("--registry-url http://10.0.0.1:10000 --server-uuid uuid-1 --token-file /etc/metal/probe-token"));
        assert_eq!(token_from_ignition(&ign).as_deref(), Some("tok"));
        assert_eq!(
            cmdline("http://r", "u"),
            "metal.registry=http://r metal.server-uuid=u"
        );
    }

    #[test]
    fn an_https_registry_gets_its_ca_bundle_into_the_agent() {
        let ign = ignition(
            "https://10.0.0.1:10000",
            "uuid-1",
            "tok",
            Some("-----BEGIN CERTIFICATE-----"),
        );
        let v: serde_json::Value = serde_json::from_str(&ign).unwrap();
        let files = v["storage"]["files"].as_array().unwrap();
        let ca = files
            .iter()
            .find(|f| f["path"] == CA_PATH)
            .expect("CA file");
        assert!(
            ca["contents"]["source"]
                .as_str()
                .unwrap()
                .starts_with("data:;base64,")
        );
        let unit = v["systemd"]["units"][0]["contents"].as_str().unwrap();
        assert!(
            unit.contains(&format!("--registry-ca-file {CA_PATH}")),
            "{unit}"
        );
        assert_eq!(token_from_ignition(&ign).as_deref(), Some("tok"));
        let plain = ignition("http://10.0.0.1:10000", "uuid-1", "tok", None);
        assert!(!plain.contains(CA_PATH));
    }
}
