//! `metal-probe` binary: see the library docs and crates/probe/README.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use metal_probe::{
    AgentConfig, CleaningPayload, CollectOptions, PostOptions, Token, WipeMode, parse_duration,
};

/// In-band discovery agent: collects hardware facts and posts them to the metal-discovery registry.
#[derive(Parser, Debug)]
#[command(name = "metal-probe", version)]
struct Args {
    /// Registry base URL, e.g. http://10.0.0.1:10000.
    #[arg(long, env = "METAL_PROBE_REGISTRY_URL")]
    registry_url: Option<String>,
    /// The server's system UUID (default: DMI product_uuid below --root).
    #[arg(long, env = "METAL_PROBE_SERVER_UUID")]
    server_uuid: Option<String>,
    /// CA bundle (PEM) an `https://` registry's certificate must chain to (written by the
    /// discovery ignition to /etc/metal/registry-ca.pem when the registry serves HTTPS).
    #[arg(long, env = "METAL_PROBE_REGISTRY_CA_FILE")]
    registry_ca_file: Option<PathBuf>,
    /// File holding the bearer token (written by the discovery ignition to /etc/metal/probe-token).
    #[arg(long, env = "METAL_PROBE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Root directory to read (a captured tree instead of the live system).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Post once and exit (exit code 1 if the post fails for good).
    #[arg(long)]
    once: bool,
    /// Re-post interval (LLDP is refreshed before each re-post).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    interval: Duration,
    /// How long to wait for LLDP neighbours before the first post (0 = don't wait).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lldp_wait: Duration,
    /// Poll period while waiting for LLDP neighbours.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lldp_poll: Duration,
    /// Deadline of one post attempt.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Attempts per post (retries with exponential backoff and jitter).
    #[arg(long, default_value_t = 6)]
    attempts: u32,
    /// First backoff between attempts (doubles, capped at 10s).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    backoff: Duration,
    /// Post /bootstate {booted: true} before the first report.
    #[arg(long)]
    post_bootstate: bool,
    /// Cleaning boot: wipe every disk (`Metadata`: partition tables and signatures at either
    /// end; `Full`: every byte), post the result to `/cleaning` once and exit, instead of the
    /// hardware report.
    #[arg(long, value_parser = |s: &str| s.parse::<WipeMode>())]
    wipe: Option<WipeMode>,
    /// Print the collected report as JSON to stdout and exit without posting.
    #[arg(long)]
    print: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let collect = CollectOptions::for_root(&args.root);
    if args.print {
        let c = metal_probe::collect_with(&collect);
        for w in &c.warnings {
            tracing::warn!(warning = %w, "collection incomplete");
        }
        println!("{}", serde_json::to_string_pretty(&c.report)?);
        return Ok(());
    }
    let Some(registry_url) = args.registry_url else {
        bail!("--registry-url is required")
    };
    let server_uuid = match args.server_uuid {
        Some(u) => u,
        None => {
            let u = metal_probe::collect(&args.root)
                .system_info
                .system_information
                .uuid
                .to_lowercase();
            if u.is_empty() {
                bail!(
                    "--server-uuid is required (no DMI product_uuid below {})",
                    args.root.display()
                );
            }
            u
        }
    };
    let token = match args.token_file {
        Some(p) => std::fs::read_to_string(&p)
            .with_context(|| format!("reading token file {}", p.display()))?
            .trim()
            .to_string(),
        None => std::env::var("METAL_PROBE_TOKEN")
            .context("--token-file or METAL_PROBE_TOKEN is required")?,
    };
    let post = PostOptions {
        timeout: args.timeout,
        max_attempts: args.attempts,
        initial_backoff: args.backoff,
        ca_pem: match &args.registry_ca_file {
            Some(p) => {
                Some(std::fs::read(p).with_context(|| format!("reading CA file {}", p.display()))?)
            }
            None => None,
        },
        ..PostOptions::default()
    };
    if let Some(mode) = args.wipe {
        let disks = metal_probe::wipe::wipe(&args.root, mode)
            .with_context(|| format!("listing disks below {}", args.root.display()))?;
        for d in &disks {
            match &d.error {
                None => tracing::info!(disk = %d.name, bytes = d.bytes_written, "wiped"),
                Some(e) => tracing::error!(disk = %d.name, error = %e, "not wiped"),
            }
        }
        let payload = CleaningPayload {
            system_uuid: server_uuid,
            mode,
            disks,
        };
        metal_probe::post_cleaning(&post, &registry_url, &token, &payload).await?;
        return Ok(());
    }
    let cfg = AgentConfig {
        registry_url,
        server_uuid,
        token: Token(token),
        collect,
        interval: (!args.once).then_some(args.interval),
        lldp_wait: args.lldp_wait,
        lldp_poll: args.lldp_poll,
        post_bootstate: args.post_bootstate,
        post,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    metal_probe::agent::run(cfg, shutdown).await?;
    Ok(())
}
