//! Names of the objects discovery creates, the per-server token and the discovery ignition
//! (docs/controllers.md, "In-band discovery boot").

/// Label on every object discovery creates for a discovery boot (SBC, Secret, report
/// ConfigMap), so one label-selected watch sees them all.
pub const DISCOVERY_LABEL: &str = "metal.ironcore.dev/discovery";
/// ConfigMap key holding the agent's report (JSON, upstream payload `data`).
pub const REPORT_KEY: &str = "report.json";
/// Shared with maintenance's cleaning boot.
pub use api::constants::agent::{IGNITION_KEY, SERVER_ANNOTATION, SYSTEM_UUID_LABEL, TOKEN_KEY};
/// The agent's ignition lives with the agent ([`metal_probe::ignition`]).
pub use metal_probe::ignition::{
    CA_PATH, TOKEN_PATH, cmdline, new_token, token_from_ignition, tokens_equal,
};

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

/// The discovery agent's Ignition config (the agent posts its hardware report).
pub fn ignition(
    registry_url: &str,
    system_uuid: &str,
    token: &str,
    registry_ca: Option<&str>,
) -> String {
    metal_probe::ignition::ignition(&metal_probe::ignition::AgentBoot {
        registry_url,
        system_uuid,
        token,
        registry_ca,
        wipe: None,
    })
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
    fn the_discovery_agent_reports_hardware_and_wipes_nothing() {
        let ign = ignition("http://10.0.0.1:10000", "uuid-1", "tok", None);
        assert_eq!(token_from_ignition(&ign).as_deref(), Some("tok"));
        assert_eq!(metal_probe::ignition::wipe_from_ignition(&ign), None);
        assert!(ign.contains("--server-uuid uuid-1 --token-file /etc/metal/probe-token"));
        assert_eq!(
            cmdline("http://r", "u"),
            "metal.registry=http://r metal.server-uuid=u"
        );
    }
}
