//! `metal-bmc-sim`: serve a rack of simulated Redfish BMCs until interrupted.
//!
//! `metal-bmc-sim --count 20` starts 20 BMCs of the built-in template on
//! `https://127.0.1.1:8443` ... `https://127.0.1.20:8443`, writes the CA certificate and a
//! credentials file into the state directory, and serves the admin API on `127.0.0.1:9100`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use metal_bmc_sim::{IdentityMode, RackSpec, Secret, Simulator, TemplateSource};

#[derive(Parser, Debug)]
#[command(
    name = "metal-bmc-sim",
    version,
    about = "A fleet of simulated Redfish BMCs on loopback addresses"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML rack description; the flags below override its fields.
    #[arg(global = true, long, short = 'c', env = "METAL_BMC_SIM_CONFIG")]
    config: Option<PathBuf>,
    /// Number of BMCs (one group; replaces the config's groups).
    #[arg(global = true, long, short = 'n')]
    count: Option<usize>,
    /// Template: `default` or a DMTF mockup directory (with --count).
    #[arg(global = true, long, short = 't')]
    template: Option<String>,
    /// Systems per BMC (extra ones copy the template's first system; with --count).
    #[arg(global = true, long)]
    systems: Option<usize>,
    /// Address of the first BMC (127.0.0.0/8).
    #[arg(global = true, long)]
    base_address: Option<Ipv4Addr>,
    /// Port of every BMC (0: pick a free one).
    #[arg(global = true, long, short = 'p')]
    port: Option<u16>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(global = true, long)]
    no_tls: bool,
    /// Admin API address, or `none`.
    #[arg(global = true, long, default_value = "127.0.0.1:9100")]
    admin_address: String,
    /// Administrator user name of every BMC (with --count).
    #[arg(global = true, long)]
    username: Option<String>,
    /// Administrator password of every BMC (default: random per BMC, see the credentials file).
    #[arg(
        global = true,
        long,
        env = "METAL_BMC_SIM_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Every BMC serves the template's identity unchanged (same UUIDs, serials, MACs).
    #[arg(global = true, long)]
    keep_identity: bool,
    /// Identity mode: keep_first (default), keep_all, derive_all.
    #[arg(global = true, long, value_parser = parse_identity)]
    identity: Option<IdentityMode>,
    /// Added to BMC indices before deriving identities.
    #[arg(global = true, long)]
    identity_seed: Option<u32>,
    /// Knobs of every BMC as JSON or YAML, e.g. '{power_delay_ms: 500, latency_ms: 20}'.
    #[arg(global = true, long)]
    knobs: Option<String>,
    /// Boot server URL (as a DHCP option would name it): systems that boot from the network
    /// fetch `<url>/boot.ipxe` and follow it like iPXE (see `firmware`).
    #[arg(global = true, long)]
    boot_server: Option<String>,
    /// Directory for the CA certificate and the credentials file.
    #[arg(global = true, long, env = "METAL_BMC_SIM_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Log as JSON.
    #[arg(global = true, long)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the rack (the default).
    Serve,
    /// Write a template as a DMTF mockup tree (`redfish/v1/.../index.json`).
    ExportTemplate {
        /// Output directory (the template is chosen with --template, default `default`).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the effective rack description as YAML and exit.
    PrintSpec,
}

fn parse_identity(s: &str) -> Result<IdentityMode, String> {
    serde_yaml::from_str(s)
        .map_err(|_| format!("unknown identity mode {s:?} (keep_first, keep_all, derive_all)"))
}

fn default_state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("metal-bmc-sim"),
        None => std::env::temp_dir().join("metal-bmc-sim"),
    }
}

fn build_spec(cli: &Cli) -> Result<RackSpec> {
    let mut spec = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut spec = RackSpec::from_yaml(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            // Template directories are relative to the config file.
            let base = path.parent().unwrap_or(std::path::Path::new("."));
            for g in &mut spec.groups {
                if let TemplateSource::Path(p) = &g.template
                    && p.is_relative()
                {
                    g.template = TemplateSource::Path(base.join(p));
                }
            }
            spec
        }
        None => RackSpec::with_count(cli.count.unwrap_or(1)),
    };
    if let Some(n) = cli.count {
        let mut group = spec.groups.first().cloned().unwrap_or_default();
        group.count = n;
        spec.groups = vec![group];
    }
    if cli.template.is_some()
        || cli.systems.is_some()
        || cli.username.is_some()
        || cli.password.is_some()
        || cli.knobs.is_some()
    {
        if spec.groups.len() != 1 {
            bail!(
                "--template/--systems/--username/--password/--knobs need a single group (use --count or edit the config)"
            );
        }
        let g = &mut spec.groups[0];
        if let Some(t) = &cli.template {
            g.template = TemplateSource::parse(t);
        }
        if let Some(s) = cli.systems {
            g.systems = Some(s);
        }
        if let Some(u) = &cli.username {
            g.username = u.clone();
        }
        if let Some(p) = &cli.password {
            g.password = Some(Secret(p.clone()));
        }
        if let Some(k) = &cli.knobs {
            let patch: serde_json::Value = serde_yaml::from_str(k).context("parsing --knobs")?;
            g.knobs = g.knobs.merged(&patch)?;
        }
    }
    if let Some(a) = cli.base_address {
        spec.base_address = a;
    }
    if let Some(p) = cli.port {
        spec.port = p;
    }
    if cli.no_tls {
        spec.tls = false;
    }
    if cli.keep_identity {
        spec.identity = IdentityMode::KeepAll;
    }
    if let Some(m) = cli.identity {
        spec.identity = m;
    }
    if let Some(s) = cli.identity_seed {
        spec.identity_seed = s;
    }
    if let Some(b) = &cli.boot_server {
        spec.boot_server = Some(b.clone());
    }
    spec.admin_address = match cli.admin_address.as_str() {
        "none" | "" => None,
        a => Some(
            a.parse::<SocketAddr>()
                .with_context(|| format!("--admin-address {a}"))?,
        ),
    };
    let dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    if spec.tls && spec.ca_path.is_none() {
        spec.ca_path = Some(dir.join("ca.pem"));
    }
    if spec.credentials_path.is_none() {
        spec.credentials_path = Some(dir.join("credentials.yaml"));
    }
    spec.validate()?;
    Ok(spec)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if cli.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    match &cli.command {
        Some(Command::ExportTemplate { out }) => {
            let template = cli.template.as_deref().unwrap_or("default");
            let n = metal_bmc_sim::export_template(&TemplateSource::parse(template), out)?;
            println!("wrote {n} resources under {}", out.display());
            return Ok(());
        }
        Some(Command::PrintSpec) => {
            print!("{}", serde_yaml::to_string(&build_spec(&cli)?)?);
            return Ok(());
        }
        Some(Command::Serve) | None => {}
    }
    let mut spec = build_spec(&cli)?;
    if spec.boot_server.is_some() {
        // Play network-boot firmware (and the probe agent of the discovery image).
        spec.boot_hook = Some(std::sync::Arc::new(metal_bmc_sim::NetbootFirmware::new()));
    }
    let sim = Simulator::start(spec).await?;
    let bmcs = sim.bmcs();
    let first = bmcs.first().map(|b| b.address.clone()).unwrap_or_default();
    let last = bmcs.last().map(|b| b.address.clone()).unwrap_or_default();
    println!("metal-bmc-sim: {} BMCs, {first} .. {last}", bmcs.len());
    for b in bmcs.iter().take(20) {
        let systems: Vec<&str> = b.systems.iter().map(|s| s.id.as_str()).collect();
        println!(
            "  [{}] {}  user {}  template {}  systems {}",
            b.index,
            b.address,
            b.username,
            b.template,
            systems.join(",")
        );
    }
    if bmcs.len() > 20 {
        println!(
            "  ... {} more (GET /bmcs on the admin API lists all)",
            bmcs.len() - 20
        );
    }
    if let Some(p) = sim.ca_path() {
        println!("CA certificate: {}", p.display());
    }
    if let Some(p) = sim.credentials_path() {
        println!(
            "credentials:    {} (passwords are only in this file)",
            p.display()
        );
    }
    if let Some(a) = sim.admin_addr() {
        println!(
            "admin API:      http://{a}  (GET /bmcs, /bmcs/{{i}}/systems, /metrics; PATCH /bmcs/{{i}}/knobs)"
        );
    }
    shutdown_signal().await;
    println!("metal-bmc-sim: stopping");
    sim.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
