//! Configuration of a provisioning instance, independent of how it was given (flags in the
//! binary, struct literals in tests and benchmarks).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use redfish::models::BootSource;

use crate::decide::Timing;
use crate::oci::RegistryCredentials;

/// Where a server listens.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address (port 0 picks one).
    Addr(SocketAddr),
    /// Use this already bound listener (tests bind first to learn the port).
    Bound(std::net::TcpListener),
}

/// Everything a provisioning instance needs besides the Kubernetes client.
#[derive(Debug)]
pub struct Config {
    /// Label selector limiting the Servers this instance handles (sharding).
    pub server_selector: Option<String>,
    /// Boot server listener.
    pub boot_listen: Listen,
    /// URL servers reach the boot server under (default: `http://<bound address>`).
    pub boot_server_url: Option<String>,
    /// Metadata service listener (`None`: not started).
    pub metadata_listen: Option<Listen>,
    /// Extra key/values every server sees in its metadata.
    pub static_metadata: BTreeMap<String, String>,
    /// Power timeouts.
    pub timing: Timing,
    /// Reconcile every server at least this often (refreshes `status.powerState`).
    pub resync: Duration,
    /// Maximum reconciles in flight.
    pub max_reconciles: usize,
    /// Maximum Kubernetes writes in flight.
    pub api_concurrency: usize,
    /// Deadline of one BMC operation.
    pub bmc_timeout: Duration,
    /// Requests in flight per BMC.
    pub bmc_in_flight: usize,
    /// Poll interval of BMC waits.
    pub bmc_poll_interval: Duration,
    /// Default CA bundle (PEM) for BMCs whose BMCSecret has no `ca.crt`.
    pub bmc_ca: Option<Vec<u8>>,
    /// How to authenticate to BMCs.
    pub bmc_auth: redfish::AuthMode,
    /// Boot override target for network boots (`Pxe` or `UefiHttp`).
    pub network_boot_target: BootSource,
    /// CPU architecture selected from OCI image indexes.
    pub architecture: String,
    /// Kernel command line for OCI images (the image's boot layers carry none).
    pub oci_kernel_args: String,
    /// Registries spoken to over plain HTTP (`host:port`).
    pub insecure_registries: Vec<String>,
    /// Extra CA bundle (PEM) for registries.
    pub registry_ca: Option<Vec<u8>>,
    /// Registry credentials.
    pub registry_credentials: RegistryCredentials,
    /// Leader election (`None`: run unconditionally).
    pub leader_election: Option<LeaderElection>,
    /// Secret (namespace, name) holding the boot token key; created when missing.
    pub boot_token_secret: (String, String),
    /// How long after a recorded network-boot power-on the boot script may be fetched (once).
    pub boot_window: Duration,
    /// How the metadata service authenticates callers.
    pub metadata_auth: MetadataAuth,
    /// Certificate and key (PEM files) to serve the boot server and the metadata service over
    /// HTTPS (`None`: plain HTTP). Boot tokens then never cross the network in clear text.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Name of this instance in events (pod name).
    pub instance: Option<String>,
    /// Named side-effecting steps (the kill suite's hook; none in production).
    pub steps: runtime::steps::Steps,
}

/// Leader election parameters.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
    /// Lease duration.
    pub duration: Duration,
    /// Divide the servers among all replicas in this many Lease shards (`0`: one leader).
    pub shards: u32,
}

/// Name of the Secret holding the boot token key.
pub const DEFAULT_BOOT_TOKEN_SECRET: &str = "metal-provisioning-boot-token";

/// How the metadata service tells which server is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataAuth {
    /// Source address and the server's boot token (`Authorization: Bearer <token>`; the booted
    /// OS finds the token as `metal.boot-token=` on its kernel command line).
    Token,
    /// Source address only, as upstream's metaldata (any neighbour able to use the address
    /// can read the server's user data: only for networks where addresses cannot be spoofed).
    SourceAddress,
}

/// Gardenlinux live boot, as ironcore's boot-operator renders it.
pub const DEFAULT_OCI_KERNEL_ARGS: &str = "gl.ovl=/:tmpfs gl.url=${rootfs-url} gl.live=1 ip=dhcp ignition.firstboot=1 ignition.platform.id=metal console=ttyS0,115200 console=tty0 consoleblank=0";

impl Config {
    /// Defaults suitable for tests: loopback listeners on free ports, short timeouts.
    pub fn for_tests() -> Self {
        Self {
            server_selector: None,
            boot_listen: Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0))),
            boot_server_url: None,
            metadata_listen: None,
            static_metadata: BTreeMap::new(),
            timing: Timing {
                power_off_timeout: Some(Duration::from_secs(5)),
                confirm_timeout: Duration::from_secs(10),
            },
            resync: Duration::from_secs(30),
            max_reconciles: 256,
            api_concurrency: 32,
            bmc_timeout: Duration::from_secs(10),
            bmc_in_flight: 2,
            bmc_poll_interval: Duration::from_millis(200),
            bmc_ca: None,
            bmc_auth: redfish::AuthMode::Auto,
            network_boot_target: BootSource::Pxe,
            architecture: "amd64".into(),
            oci_kernel_args: DEFAULT_OCI_KERNEL_ARGS.into(),
            insecure_registries: Vec::new(),
            registry_ca: None,
            registry_credentials: RegistryCredentials::default(),
            leader_election: None,
            instance: None,
            boot_token_secret: ("default".into(), DEFAULT_BOOT_TOKEN_SECRET.into()),
            boot_window: Duration::from_secs(600),
            metadata_auth: MetadataAuth::Token,
            tls: None,
            steps: runtime::steps::Steps::default(),
        }
    }
}

/// The binary's own flags (the runtime's common flags are flattened next to them).
#[derive(Debug, Clone, Args)]
pub struct ProvisioningArgs {
    /// Handle only Servers matching this label selector (sharding; e.g. `rack=r1`).
    #[arg(long, env = "METAL_SERVER_SELECTOR")]
    pub server_selector: Option<String>,

    /// Boot server listen address (iPXE, ignition, UEFI HTTP boot, OCI artifacts).
    #[arg(long, env = "METAL_BOOT_ADDR", default_value = "0.0.0.0:8082")]
    pub boot_addr: SocketAddr,

    /// URL servers reach the boot server under (goes into scripts and ignition URLs).
    #[arg(long, env = "METAL_BOOT_SERVER_URL")]
    pub boot_server_url: Option<String>,

    /// Metadata service listen address, or `none`.
    #[arg(long, env = "METAL_METADATA_ADDR", default_value = "0.0.0.0:10002")]
    pub metadata_addr: String,

    /// Extra metadata for every server, `key=value` (repeatable; `server-name` and
    /// `user-data` are reserved).
    #[arg(long = "static-metadata", value_parser = parse_kv)]
    pub static_metadata: Vec<(String, String)>,

    /// Force a server off when a graceful shutdown has not finished after this long
    /// (unset: never force).
    #[arg(long, env = "METAL_POWER_OFF_TIMEOUT", value_parser = runtime::flags::parse_duration)]
    pub power_off_timeout: Option<Duration>,

    /// How long the BMC has to confirm a requested power change before the request counts as
    /// failed (power-on retried, power-off reported PowerOffRefused).
    #[arg(long, env = "METAL_POWER_CONFIRM_TIMEOUT", default_value = "2m", value_parser = runtime::flags::parse_duration)]
    pub power_confirm_timeout: Duration,

    /// Reconcile every server at least this often (refreshes status.powerState).
    #[arg(long, env = "METAL_RESYNC_INTERVAL", default_value = "2m", value_parser = runtime::flags::parse_duration)]
    pub resync_interval: Duration,

    /// Maximum reconciles in flight (each BMC is bounded separately).
    #[arg(long, env = "METAL_MAX_RECONCILES", default_value_t = 1024)]
    pub max_reconciles: usize,

    /// Deadline of one BMC operation.
    #[arg(long, env = "METAL_BMC_TIMEOUT", default_value = "30s", value_parser = runtime::flags::parse_duration)]
    pub bmc_timeout: Duration,

    /// Requests in flight per BMC.
    #[arg(long, env = "METAL_BMC_CONCURRENCY", default_value_t = 2)]
    pub bmc_concurrency: usize,

    /// PEM CA bundle for BMCs whose BMCSecret has no `ca.crt`.
    #[arg(long, env = "METAL_BMC_CA_FILE")]
    pub bmc_ca_file: Option<std::path::PathBuf>,

    /// BMC authentication: `auto` (a Redfish session where offered), `session`, or `basic`
    /// (no session to leak when the process is killed; for BMCs with few session slots).
    #[arg(long, env = "METAL_BMC_AUTH", default_value = "auto", value_parser = parse_auth)]
    pub bmc_auth: redfish::AuthMode,

    /// Boot override for network boots: `Pxe` or `UefiHttp`.
    #[arg(long, env = "METAL_NETWORK_BOOT_TARGET", default_value = "Pxe", value_parser = runtime::flags::parse_network_boot_target)]
    pub network_boot_target: BootSource,

    /// CPU architecture picked from OCI image indexes.
    #[arg(long, env = "METAL_ARCHITECTURE", default_value = "amd64")]
    pub architecture: String,

    /// Kernel command line for OCI images (`${rootfs-url}` is the squashfs layer).
    #[arg(long, env = "METAL_OCI_KERNEL_ARGS", default_value = DEFAULT_OCI_KERNEL_ARGS)]
    pub oci_kernel_args: String,

    /// Registry spoken to over plain HTTP, `host:port` (repeatable; development only).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,

    /// PEM CA bundle for registries.
    #[arg(long, env = "METAL_REGISTRY_CA_FILE")]
    pub registry_ca_file: Option<std::path::PathBuf>,

    /// Docker `config.json` with registry credentials.
    #[arg(long, env = "METAL_REGISTRY_CREDENTIALS_FILE")]
    pub registry_credentials_file: Option<std::path::PathBuf>,

    /// Secret with the boot token key, in the controller's namespace (the Lease namespace);
    /// created with a random key when missing.
    #[arg(long, env = "METAL_BOOT_TOKEN_SECRET", default_value = DEFAULT_BOOT_TOKEN_SECRET)]
    pub boot_token_secret: String,

    /// How long after a recorded network-boot power-on the server may fetch its boot script
    /// (once per power-on).
    #[arg(long, env = "METAL_BOOT_WINDOW", default_value = "10m", value_parser = runtime::flags::parse_duration)]
    pub boot_window: Duration,

    /// Metadata caller authentication: `token` (source address and boot token) or
    /// `source-address` (upstream metaldata compatible, spoofable).
    #[arg(long, env = "METAL_METADATA_AUTH", default_value = "token", value_parser = parse_metadata_auth)]
    pub metadata_auth: MetadataAuth,

    /// Serve the boot server and the metadata service over HTTPS with this certificate chain
    /// (PEM; needs `--tls-key-file`; point `--boot-server-url` at `https://`).
    #[arg(long, env = "METAL_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// Private key (PEM) of `--tls-cert-file`.
    #[arg(long, env = "METAL_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,

    /// Test hook of the step-wise kill suite: SIGKILL this process when it reaches the named
    /// side-effecting step (e.g. `boot-override-sent`). Refused inside a cluster.
    #[arg(long, hide = true)]
    pub kill_at_step: Option<String>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    if k.is_empty() {
        return Err("empty key".into());
    }
    if k == "server-name" || k == "user-data" {
        return Err(format!("{k} is reserved"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn parse_auth(s: &str) -> Result<redfish::AuthMode, String> {
    match s {
        "auto" => Ok(redfish::AuthMode::Auto),
        "session" => Ok(redfish::AuthMode::Session),
        "basic" => Ok(redfish::AuthMode::Basic),
        other => Err(format!("{other:?}: use auto, session or basic")),
    }
}

fn parse_metadata_auth(s: &str) -> Result<MetadataAuth, String> {
    match s {
        "token" => Ok(MetadataAuth::Token),
        "source-address" => Ok(MetadataAuth::SourceAddress),
        other => Err(format!("{other:?}: use token or source-address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        p: ProvisioningArgs,
    }

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "x",
            "--server-selector=rack=r1",
            "--power-off-timeout=30s",
            "--static-metadata=region=eu",
            "--network-boot-target=UefiHttp",
            "--insecure-registry=127.0.0.1:5000",
        ])
        .unwrap();
        assert_eq!(c.p.server_selector.as_deref(), Some("rack=r1"));
        assert_eq!(c.p.power_off_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.p.power_confirm_timeout, Duration::from_secs(120));
        assert_eq!(c.p.static_metadata, vec![("region".into(), "eu".into())]);
        assert_eq!(c.p.network_boot_target, BootSource::UefiHttp);
        assert!(Cli::try_parse_from(["x", "--static-metadata=user-data=x"]).is_err());
        assert!(Cli::try_parse_from(["x", "--network-boot-target=Cd"]).is_err());
        assert_eq!(c.p.metadata_auth, MetadataAuth::Token);
        assert_eq!(c.p.boot_window, Duration::from_secs(600));
        let c = Cli::try_parse_from(["x", "--metadata-auth=source-address", "--boot-window=2m"])
            .unwrap();
        assert_eq!(c.p.metadata_auth, MetadataAuth::SourceAddress);
        assert_eq!(c.p.boot_window, Duration::from_secs(120));
        assert!(Cli::try_parse_from(["x", "--metadata-auth=none"]).is_err());
    }
}
