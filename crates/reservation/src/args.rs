//! Command-line flags of `metal-reservation` (on top of the runtime's [`runtime::flags::CommonArgs`]).

use crate::Config;
use clap::Args;
use runtime::flags::{CommonArgs, parse_duration};
use std::time::Duration;

/// Reservation's own flags; flatten next to [`CommonArgs`].
#[derive(Debug, Clone, Args)]
pub struct ReservationArgs {
    /// Only consider Servers matching this label selector (e.g. `rack in (r1,r2)`), to shard or
    /// scope an instance. Servers outside it are never bound, tainted or released by it.
    #[arg(long, env = "METAL_SERVER_SELECTOR")]
    pub server_selector: Option<String>,

    /// Only manage ServerReadinessRules matching this label selector.
    #[arg(long, env = "METAL_RULE_SELECTOR")]
    pub rule_selector: Option<String>,

    /// Only handle ServerClaims (and their ServerBootConfigurations) in this namespace.
    #[arg(long, env = "METAL_CLAIM_NAMESPACE")]
    pub claim_namespace: Option<String>,

    /// ServerClaims reconciled at once (Servers and rules use `--concurrency`).
    #[arg(long, env = "METAL_CLAIM_CONCURRENCY", default_value_t = 16)]
    pub claim_concurrency: u16,

    /// Lifetime of a claim's binding lock (the holder starts writes only in its first half).
    #[arg(long, env = "METAL_BINDING_LOCK_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub binding_lock_timeout: Duration,

    /// Safety resync of every object on top of watch-driven reconciles.
    #[arg(long, env = "METAL_RESYNC", default_value = "10m", value_parser = parse_duration)]
    pub resync: Duration,

    /// Disk cleaning of servers released by `Recycle` claims, unless the Server's
    /// `metal.ironcore.dev/cleaning-mode` annotation says otherwise: `Disabled`, `Metadata` or
    /// `Full` (carried out by metal-maintenance while the server is in `Cleaning`).
    #[arg(long, env = "METAL_CLEANING_MODE", default_value = "Disabled")]
    pub cleaning_mode: api::constants::CleaningMode,

    /// Test hook of the step-wise kill suite: SIGKILL this process when it reaches the named
    /// binding or release step (e.g. `claim-ref-written`). Refused inside a cluster.
    #[arg(long, hide = true)]
    pub kill_at_step: Option<String>,
}

impl ReservationArgs {
    /// The instance configuration from these flags and the common ones.
    pub fn config(&self, common: &CommonArgs) -> Result<Config, runtime::steps::InCluster> {
        Ok(Config {
            identity: common.identity(),
            server_selector: self.server_selector.clone().filter(|s| !s.is_empty()),
            rule_selector: self.rule_selector.clone().filter(|s| !s.is_empty()),
            claim_namespace: self.claim_namespace.clone().filter(|s| !s.is_empty()),
            claim_concurrency: self.claim_concurrency.max(1),
            concurrency: common.concurrency.max(1),
            binding_lock_timeout: self.binding_lock_timeout.max(Duration::from_secs(2)),
            resync: self.resync.max(Duration::from_secs(10)),
            cleaning_mode: self.cleaning_mode,
            steps: runtime::steps::Steps(runtime::steps::kill_at(self.kill_at_step.as_deref())?),
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
        reservation: ReservationArgs,
    }

    #[test]
    fn flags_parse_into_a_config() {
        let cli = Cli::try_parse_from([
            "metal-reservation",
            "--server-selector=rack=r1",
            "--claim-namespace=tenants",
            "--claim-concurrency=32",
            "--concurrency=4",
            "--binding-lock-timeout=20s",
            "--identity=pod-0",
        ])
        .expect("flags parse");
        let c = cli.reservation.config(&cli.common).expect("config");
        assert_eq!(c.server_selector.as_deref(), Some("rack=r1"));
        assert_eq!(c.claim_namespace.as_deref(), Some("tenants"));
        assert_eq!(c.rule_selector, None);
        assert_eq!(c.claim_concurrency, 32);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.binding_lock_timeout, Duration::from_secs(20));
        assert_eq!(c.identity, "pod-0");
        let cli = Cli::try_parse_from(["metal-reservation", "--server-selector="]).expect("parse");
        assert_eq!(
            cli.reservation.config(&cli.common).unwrap().server_selector,
            None
        );
    }
}
