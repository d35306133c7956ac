//! Command-line flags every controller shares, each with an environment-variable fallback so the
//! same binary is configured by flags in development and by env in a Deployment.

use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Flags shared by every controller binary; flatten into the binary's own `Parser`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Kubeconfig to use; in-cluster configuration (or `~/.kube/config`) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log filter in `tracing` EnvFilter syntax (e.g. `info,metal_discovery=debug`).
    #[arg(long, env = "METAL_LOG", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "METAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of the admin server (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "METAL_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Run only while holding the leader Lease.
    #[arg(long, env = "METAL_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Name of the leader Lease (defaults to the controller's name).
    #[arg(long, env = "METAL_LEASE_NAME")]
    pub lease_name: Option<String>,

    /// Namespace of the leader Lease (defaults to the pod's namespace, else `default`).
    #[arg(long, env = "METAL_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a Lease stays valid without renewal (e.g. `15s`).
    #[arg(long, env = "METAL_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// Identity of this replica in the Lease (defaults to `$POD_NAME`, else hostname + pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Maximum number of objects reconciled at once, per controller.
    #[arg(long, env = "METAL_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// With `--leader-elect`, divide the BMCs among all replicas in this many Lease shards
    /// (`<lease-name>-shard-NN`) instead of one leader doing everything. `0`: one leader. Keep it
    /// fixed for a group: changing it moves every BMC to another shard at once.
    #[arg(long, env = "METAL_SHARDS", default_value_t = 0)]
    pub shards: u32,
}

impl CommonArgs {
    /// The Lease namespace: flag, `$POD_NAMESPACE`, or `default`.
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_string())
    }

    /// This replica's identity: flag / `$POD_NAME`, else `<hostname>-<pid>`.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".to_string());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Lease timing and identity for Lease `name` from these flags.
    pub fn lease_params(&self, name: String) -> crate::lease::LeaseParams {
        crate::lease::LeaseParams::new(
            name,
            self.lease_namespace(),
            self.identity(),
            self.lease_duration,
        )
    }

    /// Builds a Kubernetes client from `--kubeconfig` or the environment.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(kube::Error::InferKubeconfig)?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(kube::Error::InferKubeconfig)?
            }
            None => kube::Config::infer()
                .await
                .map_err(kube::Error::InferConfig)?,
        };
        kube::Client::try_from(config)
    }
}

/// Parses durations such as `500ms`, `15s`, `2m`, `1h` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 15s, 2m, 1h"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a network-boot override target (`Pxe` or `UefiHttp`), shared by the controllers that
/// boot servers over the network.
pub fn parse_network_boot_target(s: &str) -> Result<redfish::models::BootSource, String> {
    match s {
        "Pxe" => Ok(redfish::models::BootSource::Pxe),
        "UefiHttp" => Ok(redfish::models::BootSource::UefiHttp),
        other => Err(format!("{other:?}: use Pxe or UefiHttp")),
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
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn flags_have_defaults_and_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--leader-elect",
            "--lease-duration=4s",
            "--log-format=json",
            "--admin-addr=127.0.0.1:9999",
            "--concurrency=3",
        ])
        .expect("flags parse");
        assert!(cli.common.leader_elect);
        assert_eq!(cli.common.lease_duration, Duration::from_secs(4));
        assert_eq!(cli.common.log_format, LogFormat::Json);
        assert_eq!(cli.common.admin_addr.port(), 9999);
        assert_eq!(cli.common.concurrency, 3);
        assert!(Cli::try_parse_from(["x", "--log-format=xml"]).is_err());
    }
}
