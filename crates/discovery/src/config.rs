//! Flags of `metal-discovery` (each with an environment fallback) and the resolved [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use api::constants::InspectionMode;
use clap::{Parser, ValueEnum};
use runtime::flags::{CommonArgs, parse_duration};

/// `--inspection` values (mirrors [`InspectionMode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Inspection {
    /// Redfish only: one inventory read, no boot.
    OutOfBand,
    /// Boot the probe agent to add links, IPs and LLDP neighbours.
    InBand,
}

impl From<Inspection> for InspectionMode {
    fn from(i: Inspection) -> Self {
        match i {
            Inspection::OutOfBand => InspectionMode::OutOfBand,
            Inspection::InBand => InspectionMode::InBand,
        }
    }
}

/// Command line of `metal-discovery`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "metal-discovery",
    version,
    about = "Discovers BMCs and servers and owns the Initial/Discovery states"
)]
pub struct Args {
    /// Flags every controller shares.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Label selector of the BMCs this replica handles (sharding). It also selects Servers (BMC
    /// labels are propagated to them), Endpoints and BMCUsers. Empty = all.
    #[arg(long, env = "METAL_BMC_SELECTOR", default_value = "")]
    pub bmc_selector: String,

    /// Default inspection mode; the annotation `metal.ironcore.dev/inspection` on a Server (or its
    /// BMC) overrides it.
    #[arg(long, env = "METAL_INSPECTION", value_enum, default_value_t = Inspection::OutOfBand)]
    pub inspection: Inspection,

    /// Namespace for the internal discovery objects (boot configurations, token Secrets, reports).
    /// Defaults to `$POD_NAMESPACE`, else `default`.
    #[arg(long, env = "METAL_MANAGER_NAMESPACE")]
    pub manager_namespace: Option<String>,

    /// Address the probe registry listens on (every replica serves it).
    #[arg(long, env = "METAL_REGISTRY_ADDR", default_value = "0.0.0.0:10000")]
    pub registry_addr: SocketAddr,

    /// Serve the registry over HTTPS with this certificate chain (PEM; needs
    /// `--registry-tls-key-file`): the probe's token then never crosses the network in clear.
    #[arg(
        long,
        env = "METAL_REGISTRY_TLS_CERT_FILE",
        requires = "registry_tls_key_file"
    )]
    pub registry_tls_cert_file: Option<std::path::PathBuf>,

    /// CA bundle (PEM) the probe agent verifies an `https://` registry against; defaults to
    /// `--registry-tls-cert-file` (enough for a self-signed registry certificate).
    #[arg(long, env = "METAL_REGISTRY_CA_FILE")]
    pub registry_ca_file: Option<std::path::PathBuf>,

    /// Private key (PEM) of `--registry-tls-cert-file`.
    #[arg(
        long,
        env = "METAL_REGISTRY_TLS_KEY_FILE",
        requires = "registry_tls_cert_file"
    )]
    pub registry_tls_key_file: Option<std::path::PathBuf>,

    /// Registry URL the probe agent is told to post to (ignition and kernel command line).
    /// Defaults to `http://$REGISTRY_ADDRESS:<registry port>`; required for in-band discovery.
    #[arg(long, env = "METAL_REGISTRY_URL")]
    pub registry_url: Option<String>,

    /// OS image of the internal discovery boot configuration.
    #[arg(
        long,
        env = "METAL_PROBE_OS_IMAGE",
        default_value = "ghcr.io/ironcore-dev/metal-probe-os:latest"
    )]
    pub probe_os_image: String,

    /// Kernel URL of the probe OS (plain boot form of the boot configuration; optional).
    #[arg(long, env = "METAL_PROBE_KERNEL_URL")]
    pub probe_kernel_url: Option<String>,

    /// Initrd URL of the probe OS (optional).
    #[arg(long, env = "METAL_PROBE_INITRD_URL")]
    pub probe_initrd_url: Option<String>,

    /// Root image URL of the probe OS (optional).
    #[arg(long, env = "METAL_PROBE_ROOTFS_URL")]
    pub probe_rootfs_url: Option<String>,

    /// How often a BMC is re-read (status, systems); ±10 % jitter.
    #[arg(long, env = "METAL_BMC_REFRESH_INTERVAL", default_value = "2m", value_parser = parse_duration)]
    pub bmc_refresh_interval: Duration,

    /// Poll period while waiting (for the boot configuration, the agent, a BMC reset).
    #[arg(long, env = "METAL_POLL_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// An in-band discovery without a report for this long goes back to Initial.
    #[arg(long, env = "METAL_DISCOVERY_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub discovery_timeout: Duration,

    /// After a discovery timeout, wait this long in Initial (condition visible) before the next round.
    #[arg(long, env = "METAL_DISCOVERY_RETRY_DELAY", default_value = "1m", value_parser = parse_duration)]
    pub discovery_retry_delay: Duration,

    /// Move a server in Initial, Discovery or Available to Error when its BMC has not been
    /// Ready, or its inventory not readable, for this long (0s: never). An unreachable-BMC
    /// Error ends by itself when the BMC is Ready again; the others need `retry`.
    #[arg(long, env = "METAL_ERROR_AFTER", default_value = "15m", value_parser = parse_duration)]
    pub error_after: Duration,

    /// Power off a server found powered on in Initial before discovering it.
    #[arg(long, env = "METAL_ENFORCE_FIRST_BOOT", default_value_t = false)]
    pub enforce_first_boot: bool,

    /// MAC-prefix database (upstream format) turning Endpoints into BMCs.
    #[arg(long, env = "METAL_MAC_PREFIXES_FILE")]
    pub mac_prefixes_file: Option<PathBuf>,

    /// PEM CA bundle for BMC TLS when the BMCSecret carries no `ca.crt`.
    #[arg(long, env = "METAL_BMC_CA_FILE")]
    pub bmc_ca_file: Option<PathBuf>,

    /// Scheme for Endpoint-derived BMCs whose MAC-prefix entry names none.
    #[arg(long, env = "METAL_ENDPOINT_SCHEME", default_value = "https")]
    pub endpoint_scheme: String,

    /// Skip TLS verification when probing an Endpoint's default credentials (the BMC's CA is not
    /// known yet). Off by default.
    #[arg(long, env = "METAL_ENDPOINT_INSECURE", default_value_t = false)]
    pub endpoint_insecure: bool,

    /// Redfish requests in flight per BMC.
    #[arg(long, env = "METAL_REDFISH_MAX_IN_FLIGHT", default_value_t = 2)]
    pub redfish_max_in_flight: usize,

    /// Timeout of one Redfish request.
    #[arg(long, env = "METAL_REDFISH_REQUEST_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub redfish_request_timeout: Duration,

    /// Deadline of one Redfish operation (several requests, retries included).
    #[arg(long, env = "METAL_REDFISH_OPERATION_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub redfish_operation_timeout: Duration,

    /// Deadline of one reconcile; a hung BMC never holds a worker longer.
    #[arg(long, env = "METAL_RECONCILE_TIMEOUT", default_value = "3m", value_parser = parse_duration)]
    pub reconcile_timeout: Duration,

    /// After a BMC reset: how long to wait before declaring it complete once it answers again.
    #[arg(long, env = "METAL_BMC_RESET_WAIT", default_value = "5s", value_parser = parse_duration)]
    pub bmc_reset_wait: Duration,

    /// Reset a BMC's Manager automatically once its Ready has been False (connection failed,
    /// 5xx, unknown errors) this long. Unset: never (the default).
    #[arg(long, env = "METAL_BMC_AUTO_RESET_AFTER", value_parser = parse_duration)]
    pub bmc_auto_reset_after: Option<Duration>,

    /// At most this many automatic resets per BMC within `--bmc-auto-reset-window`.
    #[arg(long, env = "METAL_BMC_AUTO_RESET_LIMIT", default_value_t = 3)]
    pub bmc_auto_reset_limit: u32,

    /// The rate-limit window of automatic BMC resets.
    #[arg(long, env = "METAL_BMC_AUTO_RESET_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub bmc_auto_reset_window: Duration,

    /// Test hook of the step-wise kill suite: SIGKILL this process when it reaches the named
    /// side-effecting step (e.g. `power-on-sent`). Refused inside a cluster.
    #[arg(long, hide = true)]
    pub kill_at_step: Option<String>,
}

/// Resolved configuration shared by every part of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// Label selector (empty = all).
    pub selector: String,
    /// Default inspection mode.
    pub inspection: InspectionMode,
    /// Namespace for internal objects.
    pub manager_namespace: String,
    /// Registry URL advertised to the agent.
    pub registry_url: Option<String>,
    /// CA bundle (PEM) the agent verifies an `https://` registry against (written into its
    /// ignition).
    pub registry_ca: Option<String>,
    /// Probe OS image.
    pub probe_os_image: String,
    /// Probe kernel URL.
    pub probe_kernel_url: Option<String>,
    /// Probe initrd URL.
    pub probe_initrd_url: Option<String>,
    /// Probe root image URL.
    pub probe_rootfs_url: Option<String>,
    /// BMC refresh interval.
    pub bmc_refresh_interval: Duration,
    /// Poll period while waiting.
    pub poll_interval: Duration,
    /// Discovery timeout.
    pub discovery_timeout: Duration,
    /// Pause in Initial after a timed-out round.
    pub discovery_retry_delay: Duration,
    /// Time a problem may last before the server goes to Error (zero: never).
    pub error_after: Duration,
    /// Power off servers found on in Initial.
    pub enforce_first_boot: bool,
    /// Default scheme for Endpoint BMCs.
    pub endpoint_scheme: String,
    /// Skip TLS verification for Endpoint probing.
    pub endpoint_insecure: bool,
    /// Per-reconcile deadline.
    pub reconcile_timeout: Duration,
    /// BMC reset settle time.
    pub bmc_reset_wait: Duration,
    /// Automatic BMC resets (`None`: off).
    pub bmc_auto_reset: Option<crate::logic::autoreset::Policy>,
    /// Reconciles in flight per controller.
    pub concurrency: u16,
    /// Identity of this replica (events).
    pub identity: String,
    /// Named side-effecting steps (the kill suite's hook; none in production).
    pub steps: runtime::steps::Steps,
}

impl Args {
    /// Resolves defaults that depend on the environment; refuses `--kill-at-step` inside a
    /// cluster.
    pub fn config(&self) -> Result<Config, runtime::steps::InCluster> {
        let registry_url = self.registry_url.clone().or_else(|| {
            std::env::var("REGISTRY_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .map(|a| {
                    let scheme = if self.registry_tls_cert_file.is_some() {
                        "https"
                    } else {
                        "http"
                    };
                    format!("{scheme}://{a}:{}", self.registry_addr.port())
                })
        });
        Ok(Config {
            selector: self.bmc_selector.clone(),
            inspection: self.inspection.into(),
            manager_namespace: self
                .manager_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            registry_url,
            registry_ca: None,
            probe_os_image: self.probe_os_image.clone(),
            probe_kernel_url: self.probe_kernel_url.clone(),
            probe_initrd_url: self.probe_initrd_url.clone(),
            probe_rootfs_url: self.probe_rootfs_url.clone(),
            bmc_refresh_interval: self.bmc_refresh_interval,
            poll_interval: self.poll_interval,
            discovery_timeout: self.discovery_timeout,
            discovery_retry_delay: self.discovery_retry_delay,
            error_after: self.error_after,
            enforce_first_boot: self.enforce_first_boot,
            endpoint_scheme: self.endpoint_scheme.clone(),
            endpoint_insecure: self.endpoint_insecure,
            reconcile_timeout: self.reconcile_timeout,
            bmc_reset_wait: self.bmc_reset_wait,
            bmc_auto_reset: self.bmc_auto_reset_after.map(|after| {
                crate::logic::autoreset::Policy {
                    after,
                    limit: self.bmc_auto_reset_limit,
                    window: self.bmc_auto_reset_window,
                }
            }),
            concurrency: self.common.concurrency,
            identity: self.common.identity(),
            steps: runtime::steps::Steps(runtime::steps::kill_at(self.kill_at_step.as_deref())?),
        })
    }

    /// Redfish client options from the flags.
    pub fn client_options(&self) -> redfish::ClientOptions {
        redfish::ClientOptions {
            max_in_flight: self.redfish_max_in_flight.max(1),
            request_timeout: self.redfish_request_timeout,
            operation_timeout: self.redfish_operation_timeout,
            connect_timeout: self.redfish_request_timeout.min(Duration::from_secs(10)),
            user_agent: concat!("metal-discovery/", env!("CARGO_PKG_VERSION")).into(),
            ..redfish::ClientOptions::default()
        }
    }
}

impl Config {
    /// A configuration with defaults for tests and embedding (selector and namespace given).
    pub fn for_tests(selector: &str, namespace: &str) -> Self {
        let args = Args::parse_from(["metal-discovery"]);
        let mut c = args.config().expect("no --kill-at-step");
        c.selector = selector.to_string();
        c.manager_namespace = namespace.to_string();
        c.identity = "test".into();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let a = Args::parse_from(["x"]);
        assert_eq!(a.bmc_refresh_interval, Duration::from_secs(120));
        assert_eq!(a.discovery_timeout, Duration::from_secs(1800));
        assert_eq!(a.inspection, Inspection::OutOfBand);
        let a = Args::parse_from([
            "x",
            "--inspection=in-band",
            "--bmc-selector=rack=r1",
            "--registry-url=http://10.0.0.1:10000",
            "--enforce-first-boot",
            "--discovery-timeout=5m",
        ]);
        let c = a.config().unwrap();
        assert_eq!(c.inspection, InspectionMode::InBand);
        assert_eq!(c.selector, "rack=r1");
        assert_eq!(c.registry_url.as_deref(), Some("http://10.0.0.1:10000"));
        assert!(c.enforce_first_boot);
        assert_eq!(c.discovery_timeout, Duration::from_secs(300));
    }
}
