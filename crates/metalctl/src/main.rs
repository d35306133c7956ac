//! `metalctl`: the operator CLI, also a kubectl plugin (installed as `kubectl-metal`, it runs as
//! `kubectl metal ...`). `metalctl bmc ...` talks to one BMC directly over Redfish; the fleet
//! commands (`server`, `maintenance`, `console`, `visualizer`) go through the Kubernetes API of
//! the current kubeconfig; `crds` prints the CustomResourceDefinitions.

mod bmc;
mod console;
mod fleet;
mod patch;
mod rack;
mod view;
mod visualizer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

/// Operator CLI for bare-metal servers: the fleet through Kubernetes, one BMC through Redfish.
#[derive(Parser)]
#[command(name = "metalctl", version, about)]
struct Cli {
    #[command(flatten)]
    kube: fleet::KubeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Talk to a BMC directly.
    #[command(subcommand)]
    Bmc(bmc::BmcCommand),
    /// List and operate Servers.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Operate ServerMaintenances.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Show the console a server's BMC offers and how to open it (credentials are not printed).
    Console {
        /// Server name.
        server: String,
        /// PEM CA bundle for BMCs whose BMCSecret has no `ca.crt`.
        #[arg(long, env = "METAL_BMC_CA_FILE")]
        bmc_ca_file: Option<PathBuf>,
        /// Deadline of the BMC requests, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Print the CustomResourceDefinitions (the YAML under kustomize/base/crd).
    Crds,
    /// Serve a live web page of the fleet by rack.
    Visualizer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: SocketAddr,
        /// Only servers matching this label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// List servers: state, power, claim, health, cordon and park.
    List {
        /// Label selector, e.g. `metadata.metal.ironcore.dev/rack=r1`.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Keep new claims away from a server (`spec.unclaimable: true`); a bound claim stays.
    Cordon {
        /// Server name.
        name: String,
    },
    /// Let claims bind to a cordoned server again.
    Uncordon {
        /// Server name.
        name: String,
    },
    /// Take a server out of the claim lifecycle and power it off (when Available or Reserved).
    Park {
        /// Server name.
        name: String,
    },
    /// Return a parked server to the claim lifecycle.
    Unpark {
        /// Server name.
        name: String,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Approve a ServerMaintenance as the owner of the claimed server (labels the claim).
    Approve {
        /// ServerMaintenance name.
        name: String,
        /// Namespace of the ServerMaintenance (default: the kubeconfig context's).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
}

/// Output format of listings.
#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// The name to show in usage: `kubectl metal` when run as the plugin binary `kubectl-metal`.
fn display_name(argv0: &str) -> &'static str {
    let file = Path::new(argv0)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    if file.starts_with("kubectl-metal") {
        "kubectl metal"
    } else {
        "metalctl"
    }
}

/// Writes to stdout; a closed pipe (`metalctl crds | head`) ends the program quietly.
fn emit(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

fn print_output<T: serde::Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<()> {
    emit(&match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        Output::Yaml => serde_yaml::to_string(value)?,
        Output::Table => table(),
    })
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bmc(cmd) => bmc::run(cmd).await,
        Command::Crds => {
            let all: String = api::crds::all()
                .iter()
                .map(api::crds::render_yaml)
                .collect();
            emit(&all)
        }
        Command::Server(cmd) => {
            let client = cli.kube.client().await?;
            let msg = match cmd {
                ServerCommand::List { selector, output } => {
                    let views = fleet::list(&client, selector.as_deref()).await?;
                    return print_output(output, &views, || {
                        let rows: Vec<Vec<String>> = views.iter().map(view::row).collect();
                        if rows.is_empty() {
                            "No servers found.\n".to_string()
                        } else {
                            view::render_table(&view::HEADERS, &rows)
                        }
                    });
                }
                ServerCommand::Cordon { name } => fleet::cordon(&client, &name, true).await?,
                ServerCommand::Uncordon { name } => fleet::cordon(&client, &name, false).await?,
                ServerCommand::Park { name } => fleet::park(&client, &name, true).await?,
                ServerCommand::Unpark { name } => fleet::park(&client, &name, false).await?,
            };
            emit(&format!("{msg}\n"))
        }
        Command::Maintenance(MaintenanceCommand::Approve { name, namespace }) => {
            let client = cli.kube.client().await?;
            let ns = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            emit(&format!("{}\n", fleet::approve(&client, &ns, &name).await?))
        }
        Command::Console {
            server,
            bmc_ca_file,
            timeout,
        } => {
            let client = cli.kube.client().await?;
            let text = fleet::console(
                &client,
                &server,
                bmc_ca_file.as_deref(),
                Duration::from_secs(timeout),
            )
            .await?;
            emit(&text)
        }
        Command::Visualizer { listen, selector } => {
            let client = cli.kube.client().await?;
            visualizer::serve(client, listen, selector).await
        }
    }
}

fn main() {
    let argv0 = std::env::args().next().unwrap_or_default();
    let matches = Cli::command()
        .name(display_name(&argv0))
        .bin_name(display_name(&argv0))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The visualizer serves connections concurrently; the other commands are sequential.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        let class = e
            .downcast_ref::<redfish::Error>()
            .map(|r| format!(" [{}]", r.class()))
            .unwrap_or_default();
        eprintln!("error{class}: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_name_from_argv0() {
        assert_eq!(
            display_name("/usr/local/bin/kubectl-metal"),
            "kubectl metal"
        );
        assert_eq!(display_name("kubectl-metal"), "kubectl metal");
        assert_eq!(display_name("./target/debug/metalctl"), "metalctl");
        assert_eq!(display_name(""), "metalctl");
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
