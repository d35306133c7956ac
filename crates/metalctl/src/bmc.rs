//! `metalctl bmc ...`: one BMC directly over Redfish (through the same client the controllers
//! use), to inspect what discovery would record and to do the manual power and boot operations.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use redfish::models::{BootSource, PowerState};
use redfish::{
    BmcEndpoint, BootOverride, Client, ClientOptions, Credentials, PowerAction, PowerOutcome,
    SystemInventory,
};

use crate::Output;

/// `metalctl bmc ...`.
#[derive(Subcommand)]
pub enum BmcCommand {
    /// Print the inventory discovery would record for every system (or one) behind the BMC.
    Inspect {
        #[command(flatten)]
        conn: Connection,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Change the power of a system.
    Power {
        /// What to do.
        #[arg(value_enum)]
        action: PowerArg,
        #[command(flatten)]
        conn: Connection,
        /// Wait until the system reports the resulting power state (seconds, 0 = don't wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Set a boot override (next boot only, or every boot with --continuous).
    Boot {
        /// Boot device.
        #[arg(value_enum)]
        target: BootArg,
        #[command(flatten)]
        conn: Connection,
        /// Keep the override for every boot.
        #[arg(long)]
        continuous: bool,
    },
}

/// Where a BMC is and how to log in.
#[derive(Args)]
pub struct Connection {
    /// BMC address, e.g. https://10.0.0.10 (a bare address means HTTPS).
    address: String,
    /// BMC user name.
    #[arg(short, long, env = "METAL_BMC_USERNAME")]
    username: String,
    /// File holding the BMC password (never pass passwords on the command line).
    #[arg(long)]
    password_file: PathBuf,
    /// PEM file with the CA certificate(s) that signed the BMC's certificate.
    #[arg(long, conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// Do not verify the BMC's TLS certificate.
    #[arg(long)]
    insecure: bool,
    /// Only this system (`@odata.id`, e.g. /redfish/v1/Systems/1); default: all (inspect) or the only
    /// one (power, boot).
    #[arg(long)]
    system: Option<String>,
    /// Deadline of each operation, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// Power actions, by their `metalctl` names.
#[derive(Clone, Copy, ValueEnum)]
pub enum PowerArg {
    On,
    Off,
    ForceOff,
    Restart,
    ForceRestart,
    Cycle,
}

/// Boot devices, by their `metalctl` names.
#[derive(Clone, Copy, ValueEnum)]
pub enum BootArg {
    Pxe,
    Cd,
    Hdd,
    UefiHttp,
}

impl Connection {
    fn client(&self) -> Result<Client> {
        let password = std::fs::read_to_string(&self.password_file)
            .with_context(|| format!("reading password file {}", self.password_file.display()))?;
        let password = password.trim_end_matches(['\r', '\n']).to_owned();
        let mut endpoint = BmcEndpoint::parse(&self.address)?;
        if let Some(ca) = &self.ca_file {
            let pem =
                std::fs::read(ca).with_context(|| format!("reading CA file {}", ca.display()))?;
            endpoint = endpoint.with_ca_bundle_pem(&pem)?;
        } else if self.insecure {
            endpoint = endpoint.insecure();
        }
        let opts = ClientOptions {
            operation_timeout: Duration::from_secs(self.timeout),
            ..ClientOptions::default()
        };
        Ok(Client::new(
            endpoint,
            Credentials::new(self.username.clone(), password),
            opts,
        )?)
    }

    async fn single_system(&self, client: &Client) -> Result<String> {
        if let Some(s) = &self.system {
            return Ok(s.clone());
        }
        let systems = client.systems().await?;
        match systems.as_slice() {
            [one] => Ok(one.odata_id.clone()),
            [] => bail!("the BMC exposes no system"),
            many => bail!(
                "the BMC exposes {} systems, choose one with --system: {}",
                many.len(),
                many.iter()
                    .map(|s| s.odata_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn gib(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.1} GB", b as f64 / 1e9))
        .unwrap_or_else(|| "-".into())
}

fn print_table(inv: &SystemInventory) {
    let row = |k: &str, v: &str| println!("{k:<18} {v}");
    row("System", &inv.odata_id);
    row("Manufacturer", opt(&inv.manufacturer));
    row("Model", opt(&inv.model));
    row("Serial", opt(&inv.serial_number));
    row("SKU", opt(&inv.sku));
    row("UUID", opt(&inv.uuid));
    row(
        "Power",
        &inv.power_state
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    row(
        "Health",
        &inv.health
            .as_ref()
            .map(|h| h.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    row("BIOS version", opt(&inv.bios_version));
    row("BMC firmware", opt(&inv.bmc_firmware_version));
    row("Vendor", inv.vendor.as_str());
    row("CPUs", &inv.cpu_count.to_string());
    for p in &inv.processors {
        println!(
            "  {:<16} {:<6} {} ({} cores, {} threads)",
            opt(&p.id),
            p.processor_type
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            opt(&p.model),
            p.total_cores
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            p.total_threads
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    row(
        "Memory",
        &inv.total_memory_gib
            .map(|m| format!("{m} GiB"))
            .unwrap_or_else(|| "-".into()),
    );
    row("DIMMs", &inv.dimms.len().to_string());
    for d in &inv.dimms {
        println!(
            "  {:<16} {:<14} {:>10} {}",
            opt(&d.id),
            opt(&d.device_locator),
            d.capacity_mib
                .map(|c| format!("{c} MiB"))
                .unwrap_or_else(|| "-".into()),
            opt(&d.memory_device_type)
        );
    }
    row("Storage", &inv.storages.len().to_string());
    for s in &inv.storages {
        println!(
            "  {} ({:?}, {} drives, {} volumes)",
            opt(&s.id),
            s.source,
            s.drives.len(),
            s.volumes.len()
        );
        for d in &s.drives {
            let id =
                d.id.as_ref()
                    .or(d.name.as_ref())
                    .map(String::as_str)
                    .unwrap_or("-");
            println!(
                "    {:<36} {:>10} {} {}",
                id,
                gib(d.capacity_bytes),
                opt(&d.model),
                opt(&d.serial_number)
            );
        }
    }
    row("NICs", &inv.nics.len().to_string());
    for n in &inv.nics {
        println!(
            "  {:<24} {:<18} {}",
            opt(&n.id),
            opt(&n.mac_address),
            n.link_status
                .as_ref()
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    row("Requests", &inv.requests.to_string());
}

/// Runs one `metalctl bmc` command.
pub async fn run(cmd: BmcCommand) -> Result<()> {
    match cmd {
        BmcCommand::Inspect { conn, output } => {
            let client = conn.client()?;
            let systems = match &conn.system {
                Some(s) => vec![s.clone()],
                None => client
                    .systems()
                    .await?
                    .into_iter()
                    .map(|s| s.odata_id)
                    .collect(),
            };
            let mut inventories = Vec::with_capacity(systems.len());
            for s in &systems {
                inventories.push(client.inventory(s).await?);
            }
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&inventories)?),
                Output::Yaml => print!("{}", serde_yaml::to_string(&inventories)?),
                Output::Table => {
                    for (i, inv) in inventories.iter().enumerate() {
                        if i > 0 {
                            println!();
                        }
                        print_table(inv);
                    }
                }
            }
            let _ = client.logout().await;
        }
        BmcCommand::Power { action, conn, wait } => {
            let client = conn.client()?;
            let system = conn.single_system(&client).await?;
            let (action, expect) = match action {
                PowerArg::On => (PowerAction::On, PowerState::On),
                PowerArg::Off => (PowerAction::GracefulOff, PowerState::Off),
                PowerArg::ForceOff => (PowerAction::ForceOff, PowerState::Off),
                PowerArg::Restart => (PowerAction::GracefulRestart, PowerState::On),
                PowerArg::ForceRestart => (PowerAction::ForceRestart, PowerState::On),
                PowerArg::Cycle => (PowerAction::PowerCycle, PowerState::On),
            };
            match client.power(&system, action).await? {
                PowerOutcome::AlreadyInState(s) => println!("{system}: already {s}, nothing sent"),
                PowerOutcome::Issued(rt) => println!("{system}: {rt} issued"),
            }
            if wait > 0 {
                client
                    .wait_for_power_state(&system, expect.clone(), Duration::from_secs(wait))
                    .await?;
                println!("{system}: {expect}");
            }
            let _ = client.logout().await;
        }
        BmcCommand::Boot {
            target,
            conn,
            continuous,
        } => {
            let client = conn.client()?;
            let system = conn.single_system(&client).await?;
            let target = match target {
                BootArg::Pxe => BootSource::Pxe,
                BootArg::Cd => BootSource::Cd,
                BootArg::Hdd => BootSource::Hdd,
                BootArg::UefiHttp => BootSource::UefiHttp,
            };
            let mode = if continuous {
                BootOverride::Continuous
            } else {
                BootOverride::Once
            };
            let how = if continuous {
                "every boot"
            } else {
                "next boot"
            };
            if client
                .set_boot_override(&system, target.clone(), mode)
                .await?
            {
                println!("{system}: boot from {target} ({how}) set");
            } else {
                println!("{system}: boot from {target} ({how}) already set, nothing sent");
            }
            let _ = client.logout().await;
        }
    }
    Ok(())
}
