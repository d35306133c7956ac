//! The agent loop: collect, wait briefly for LLDP neighbours, post, then re-post periodically.

use std::future::Future;
use std::time::Duration;

use crate::collect::{CollectOptions, collect_lldp, collect_with};
use crate::post::{PostError, PostOptions, post_bootstate, post_with};
use crate::report::Report;

/// What the agent needs to run.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Registry base URL (`http://host:port`).
    pub registry_url: String,
    /// The server's system UUID.
    pub server_uuid: String,
    /// The per-server bearer token.
    pub token: Token,
    /// Where to read the hardware from.
    pub collect: CollectOptions,
    /// Re-post interval; `None` posts once and returns.
    pub interval: Option<Duration>,
    /// How long to wait for LLDP neighbours to appear before the first post (lldpd needs up to
    /// ~30 s to hear from switches); `0` posts immediately. Later posts refresh LLDP.
    pub lldp_wait: Duration,
    /// Poll period while waiting for LLDP neighbours.
    pub lldp_poll: Duration,
    /// Whether to post `/bootstate {booted: true}` before the first report.
    pub post_bootstate: bool,
    /// Retries and timeouts of each post.
    pub post: PostOptions,
}

/// A bearer token that redacts itself in `Debug`.
#[derive(Clone, Default)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Runs the agent until `shutdown` resolves (or after one successful post without `interval`).
///
/// Returns an error only when a post fails for good in `--once` mode, or when the registry
/// refuses the token before ever accepting it (re-posting with the same token cannot succeed).
/// A refusal after an accepted report ends the agent successfully: discovery revokes the token
/// when the round is over.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, PostError> {
    tokio::pin!(shutdown);
    let collection = collect_with(&cfg.collect);
    for w in &collection.warnings {
        tracing::warn!(warning = %w, "collection incomplete");
    }
    let mut report = collection.report;
    if !cfg.lldp_wait.is_zero() && !has_neighbors(&report) {
        let deadline = tokio::time::Instant::now() + cfg.lldp_wait;
        while tokio::time::Instant::now() < deadline && !has_neighbors(&report) {
            tokio::select! {
                _ = &mut shutdown => return Ok(report),
                _ = tokio::time::sleep(cfg.lldp_poll) => {}
            }
            match collect_lldp(&cfg.collect) {
                Ok(lldp) => report.lldp = lldp,
                // No lldpctl (or unreadable output): waiting longer will not help.
                Err(_) => break,
            }
        }
    }
    if cfg.post_bootstate {
        let r = tokio::select! {
            _ = &mut shutdown => return Ok(report),
            r = post_bootstate(&cfg.post, &cfg.registry_url, &cfg.server_uuid, &cfg.token.0, true) => r,
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "posting boot state failed");
            if e.is_unauthorized() {
                return Err(e);
            }
        }
    }
    let mut accepted_once = false;
    loop {
        report.touch();
        let r = tokio::select! {
            _ = &mut shutdown => return Ok(report),
            r = post_with(&cfg.post, &cfg.registry_url, &cfg.server_uuid, &cfg.token.0, &report) => r,
        };
        match (&r, cfg.interval) {
            // Discovery revokes the token when the round is done: a refusal after an accepted
            // report means "finished", not "failed".
            (Err(e), _) if e.is_unauthorized() && accepted_once => {
                tracing::info!("registry no longer accepts the token: discovery finished");
                return Ok(report);
            }
            (Ok(()), _) => tracing::info!(
                uuid = %cfg.server_uuid,
                interfaces = report.network_interfaces.len(),
                lldp = report.lldp.len(),
                "report posted"
            ),
            (Err(e), _) if e.is_unauthorized() => return Err(r.unwrap_err()),
            (Err(_), None) => return Err(r.unwrap_err()),
            (Err(e), Some(_)) => {
                tracing::warn!(error = %e, "report not posted; retrying at the next interval")
            }
        }
        accepted_once |= r.is_ok();
        let Some(interval) = cfg.interval else {
            return Ok(report);
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(report),
            _ = tokio::time::sleep(interval) => {}
        }
        // Only LLDP changes while the agent runs (upstream refreshes just that, too).
        match collect_lldp(&cfg.collect) {
            Ok(lldp) => report.lldp = lldp,
            Err(e) => {
                tracing::warn!(error = %e, "LLDP refresh failed; keeping the previous neighbours")
            }
        }
    }
}

fn has_neighbors(r: &Report) -> bool {
    r.lldp.iter().any(|i| !i.neighbors.is_empty())
}
