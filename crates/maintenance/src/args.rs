//! Command-line flags of `metal-maintenance` (on top of [`runtime::flags::CommonArgs`]).

use crate::Config;
use clap::Args;
use runtime::flags::{CommonArgs, parse_duration};
use std::path::PathBuf;
use std::time::Duration;

/// Maintenance's own flags; flatten next to [`CommonArgs`].
#[derive(Debug, Clone, Args)]
pub struct MaintenanceArgs {
    /// Only consider Servers matching this label selector.
    #[arg(long, env = "METAL_SERVER_SELECTOR")]
    pub server_selector: Option<String>,

    /// Namespace of the ServerMaintenances that BIOSSettings request.
    #[arg(
        long,
        env = "METAL_MAINTENANCE_NAMESPACE",
        default_value = "metal-system"
    )]
    pub maintenance_namespace: String,

    /// Safety resync of every object; also how often applied BIOS settings are checked for drift.
    #[arg(long, env = "METAL_RESYNC", default_value = "10m", value_parser = parse_duration)]
    pub resync: Duration,

    /// Time from the first BIOS write to verified settings before the attempt counts as failed.
    #[arg(long, env = "METAL_BIOS_SETTINGS_TIMEOUT", default_value = "2h", value_parser = parse_duration)]
    pub bios_settings_timeout: Duration,

    /// Time from starting a firmware update to the new version running before the attempt fails.
    #[arg(long, env = "METAL_FIRMWARE_TIMEOUT", default_value = "2h", value_parser = parse_duration)]
    pub firmware_timeout: Duration,

    /// Time a power change or reboot may take before it is requested again.
    #[arg(long, env = "METAL_POWER_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub power_timeout: Duration,

    /// Timeout of one BMC operation.
    #[arg(long, env = "METAL_BMC_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub bmc_timeout: Duration,

    /// Time a maintenance boot may take until the server fetches its boot script before the
    /// boot is sent again.
    #[arg(long, env = "METAL_MAINTENANCE_BOOT_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    pub maintenance_boot_timeout: Duration,

    /// Boot override of maintenance boots: `Pxe` or `UefiHttp` (as provisioning's).
    #[arg(long, env = "METAL_NETWORK_BOOT_TARGET", default_value = "Pxe", value_parser = runtime::flags::parse_network_boot_target)]
    pub network_boot_target: redfish::models::BootSource,

    /// Discovery's registry URL the in-band cleaning agent reports to (needed by `Metadata`
    /// cleaning and by `Full` cleaning of drives without Redfish SecureErase; without it those
    /// rounds fail and the server stays out of the pool).
    #[arg(long, env = "METAL_CLEANING_REGISTRY_URL")]
    pub cleaning_registry_url: Option<String>,

    /// CA bundle (PEM file) the cleaning agent verifies an `https://` registry against.
    #[arg(long, env = "METAL_CLEANING_REGISTRY_CA_FILE")]
    pub cleaning_registry_ca_file: Option<PathBuf>,

    /// OCI image of the cleaning agent's OS (the probe OS; it runs `metal-probe --wipe`).
    #[arg(
        long,
        env = "METAL_CLEANING_AGENT_IMAGE",
        default_value = "ghcr.io/ironcore-dev/metal-probe-os:latest"
    )]
    pub cleaning_agent_image: String,

    /// Kernel URL of the agent OS (plain boot form; optional).
    #[arg(long, env = "METAL_CLEANING_AGENT_KERNEL_URL")]
    pub cleaning_agent_kernel_url: Option<String>,

    /// Initrd URL of the agent OS (optional).
    #[arg(long, env = "METAL_CLEANING_AGENT_INITRD_URL")]
    pub cleaning_agent_initrd_url: Option<String>,

    /// Root image URL of the agent OS (optional).
    #[arg(long, env = "METAL_CLEANING_AGENT_ROOTFS_URL")]
    pub cleaning_agent_rootfs_url: Option<String>,

    /// Time from the agent's boot to its report before the round fails.
    #[arg(long, env = "METAL_CLEANING_AGENT_TIMEOUT", default_value = "6h", value_parser = parse_duration)]
    pub cleaning_agent_timeout: Duration,

    /// Test hook of the step-wise kill suite: SIGKILL this process when it reaches the named
    /// side-effecting step (e.g. `cleaning-agent-boot-recorded`). Refused inside a cluster.
    #[arg(long, hide = true)]
    pub kill_at_step: Option<String>,

    /// CA bundle (PEM file) for BMCs whose BMCSecret carries no `ca.crt`.
    #[arg(long, env = "METAL_BMC_CA")]
    pub bmc_ca: Option<PathBuf>,
}

impl MaintenanceArgs {
    /// The instance configuration from these flags and the common ones.
    pub fn config(&self, common: &CommonArgs) -> anyhow::Result<Config> {
        let bmc_ca = match &self.bmc_ca {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| anyhow::anyhow!("reading --bmc-ca {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let cleaning_agent = match &self.cleaning_registry_url {
            None => None,
            Some(url) => Some(crate::cleaning_agent::CleaningAgent {
                registry_url: url.clone(),
                registry_ca: match &self.cleaning_registry_ca_file {
                    Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                        anyhow::anyhow!("reading --cleaning-registry-ca-file {}: {e}", p.display())
                    })?),
                    None => None,
                },
                image: metal_probe::ignition::AgentImage {
                    image: self.cleaning_agent_image.clone(),
                    kernel_url: self.cleaning_agent_kernel_url.clone(),
                    initrd_url: self.cleaning_agent_initrd_url.clone(),
                    rootfs_url: self.cleaning_agent_rootfs_url.clone(),
                },
                timeout: self.cleaning_agent_timeout.max(Duration::from_secs(10)),
            }),
        };
        let step_hook = runtime::steps::kill_at(self.kill_at_step.as_deref())?;
        Ok(Config {
            step_hook,
            identity: common.identity(),
            server_selector: self.server_selector.clone().filter(|s| !s.is_empty()),
            namespace: self.maintenance_namespace.clone(),
            concurrency: common.concurrency.max(1),
            resync: self.resync.max(Duration::from_secs(10)),
            bios_settings_timeout: self.bios_settings_timeout.max(Duration::from_secs(10)),
            firmware_timeout: self.firmware_timeout.max(Duration::from_secs(10)),
            power_timeout: self.power_timeout.max(Duration::from_secs(5)),
            bmc_timeout: self.bmc_timeout.max(Duration::from_secs(1)),
            bmc_ca,
            maintenance_boot_timeout: self.maintenance_boot_timeout.max(Duration::from_secs(5)),
            network_boot_target: self.network_boot_target.clone(),
            cleaning_agent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        maintenance: MaintenanceArgs,
    }

    #[test]
    fn flags_parse_into_a_config() {
        let cli = Cli::try_parse_from([
            "metal-maintenance",
            "--server-selector=rack=r1",
            "--maintenance-namespace=ops",
            "--bios-settings-timeout=30m",
            "--power-timeout=1m",
            "--identity=pod-0",
            "--cleaning-registry-url=https://registry.metal:10000",
            "--cleaning-agent-timeout=2h",
        ])
        .expect("flags parse");
        let c = cli.maintenance.config(&cli.common).expect("config");
        assert_eq!(c.server_selector.as_deref(), Some("rack=r1"));
        assert_eq!(c.namespace, "ops");
        assert_eq!(c.bios_settings_timeout, Duration::from_secs(1800));
        assert_eq!(c.power_timeout, Duration::from_secs(60));
        assert_eq!(c.identity, "pod-0");
        let agent = c.cleaning_agent.expect("cleaning agent");
        assert_eq!(agent.registry_url, "https://registry.metal:10000");
        assert_eq!(agent.timeout, Duration::from_secs(7200));
        assert!(agent.image.image.contains("metal-probe-os"));
        assert!(c.step_hook.is_none(), "no test hook unless asked for");
        let bad =
            Cli::try_parse_from(["metal-maintenance", "--bmc-ca=/nonexistent/ca.pem"]).unwrap();
        let err = bad.maintenance.config(&bad.common).unwrap_err().to_string();
        assert!(err.contains("--bmc-ca"), "{err}");
    }
}
