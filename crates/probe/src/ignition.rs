//! The Ignition config that boots this agent: written by whoever boots it (discovery for an
//! in-band discovery, maintenance for an in-band cleaning) and read back by the BMC
//! simulator's firmware, which plays the booted OS. One builder, so the unit the OS starts and
//! the flags this binary parses cannot drift apart.

use base64::Engine as _;
use rand::RngCore;
use serde_json::json;

use crate::wipe::WipeMode;

/// Where the ignition writes the bearer token on the booted system.
pub const TOKEN_PATH: &str = "/etc/metal/probe-token";
/// Where the ignition puts the registry's CA bundle for the agent.
pub const CA_PATH: &str = "/etc/metal/registry-ca.pem";

/// The OS the agent runs in: a ServerBootConfiguration spec names it by image and, for a
/// plain boot, by kernel, initrd and root image URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentImage {
    /// OCI image of the agent OS.
    pub image: String,
    /// Kernel URL (plain boot form; optional).
    pub kernel_url: Option<String>,
    /// Initrd URL (optional).
    pub initrd_url: Option<String>,
    /// Root image URL (optional).
    pub rootfs_url: Option<String>,
}

impl AgentImage {
    /// The boot configuration spec booting `server` into the agent, its ignition in Secret
    /// `ignition_secret` and, for a plain boot, the kernel command line `cmdline`.
    pub fn boot_spec(
        &self,
        server: &str,
        ignition_secret: &str,
        cmdline: &str,
    ) -> serde_json::Value {
        let mut spec = json!({
            "serverRef": {"name": server},
            "image": self.image,
            "ignitionSecretRef": {"name": ignition_secret},
        });
        if let Some(kernel) = &self.kernel_url {
            let mut artifacts = json!({"kernelURL": kernel, "cmdline": cmdline});
            if let Some(i) = &self.initrd_url {
                artifacts["initrdURL"] = json!(i);
            }
            if let Some(r) = &self.rootfs_url {
                artifacts["rootImageURL"] = json!(r);
            }
            spec["bootArtifacts"] = artifacts;
        }
        spec
    }
}

/// The kernel command line of the agent OS (read by the agent OS's boot scripts).
pub fn cmdline(registry_url: &str, system_uuid: &str) -> String {
    format!("metal.registry={registry_url} metal.server-uuid={system_uuid}")
}

/// What the booted agent is told.
#[derive(Debug, Clone, Copy)]
pub struct AgentBoot<'a> {
    /// Registry base URL the agent posts to.
    pub registry_url: &'a str,
    /// The system's UUID (lowercase), as the registry looks it up.
    pub system_uuid: &'a str,
    /// The per-round bearer token.
    pub token: &'a str,
    /// CA bundle (PEM) of an `https://` registry.
    pub registry_ca: Option<&'a str>,
    /// Wipe the disks in this mode and report that, instead of the hardware report.
    pub wipe: Option<WipeMode>,
}

/// The Ignition v3 config: the token at [`TOKEN_PATH`] (mode 0600), the registry's CA bundle
/// at [`CA_PATH`] when given, and a `metal-probe` unit with the matching flags.
pub fn ignition(boot: &AgentBoot<'_>) -> String {
    let AgentBoot {
        registry_url,
        system_uuid,
        token,
        registry_ca,
        wipe,
    } = *boot;
    let ca_arg = registry_ca.map_or(String::new(), |_| format!(" --registry-ca-file {CA_PATH}"));
    // A failed run is restarted; a wipe is idempotent, so repeating it is safe.
    let (what, wipe_arg) = match wipe {
        Some(m) => ("in-band cleaning agent", format!(" --wipe {}", m.as_str())),
        None => ("in-band discovery agent", String::new()),
    };
    let unit = format!(
        "[Unit]\nDescription=metal {what}\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nExecStart=/usr/local/bin/metal-probe --registry-url {registry_url} --server-uuid {system_uuid} --token-file {TOKEN_PATH}{ca_arg}{wipe_arg}\n\
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

/// The token of an ignition produced by [`ignition`].
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

/// The wipe mode the ignition's `metal-probe` unit runs with, if it is a cleaning boot.
pub fn wipe_from_ignition(ignition: &str) -> Option<WipeMode> {
    let v: serde_json::Value = serde_json::from_str(ignition).ok()?;
    v["systemd"]["units"].as_array()?.iter().find_map(|u| {
        let contents = u["contents"].as_str()?;
        let exec = contents
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))?;
        let mut words = exec.split_whitespace();
        words.find(|w| *w == "--wipe")?;
        words.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot<'a>(ca: Option<&'a str>, wipe: Option<WipeMode>) -> AgentBoot<'a> {
        AgentBoot {
            registry_url: "http://10.0.0.1:10000",
            system_uuid: "uuid-1",
            token: "tok",
            registry_ca: ca,
            wipe,
        }
    }

    #[test]
    fn carries_token_and_command() {
        let ign = ignition(&boot(None, None));
        let v: serde_json::Value = serde_json::from_str(&ign).unwrap();
        assert_eq!(v["ignition"]["version"], "3.4.0");
        assert_eq!(v["storage"]["files"][0]["mode"], 384);
        let unit = v["systemd"]["units"][0]["contents"].as_str().unwrap();
        assert!(unit.contains("--registry-url http://10.0.0.1:10000 --server-uuid uuid-1 --token-file /etc/metal/probe-token"));
        assert!(!unit.contains("--wipe"));
        assert_eq!(token_from_ignition(&ign).as_deref(), Some("tok"));
        assert_eq!(wipe_from_ignition(&ign), None);
    }

    #[test]
    fn a_cleaning_boot_names_its_wipe_mode() {
        for m in [WipeMode::Metadata, WipeMode::Full] {
            let ign = ignition(&boot(None, Some(m)));
            assert_eq!(wipe_from_ignition(&ign), Some(m));
            assert_eq!(token_from_ignition(&ign).as_deref(), Some("tok"));
        }
    }

    #[test]
    fn an_https_registry_gets_its_ca_bundle_into_the_agent() {
        let ign = ignition(&boot(Some("-----BEGIN CERTIFICATE-----"), None));
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
        assert!(!ignition(&boot(None, None)).contains(CA_PATH));
    }
}
