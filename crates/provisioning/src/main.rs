//! `metal-provisioning`: boot configurations, the boot server and metadata service, virtual
//! media, and power and boot of Available, Reserved and Released servers.

use anyhow::Context as _;
use clap::Parser;
use metal_provisioning::ProvisioningArgs;
use runtime::admin::{self, AdminState};
use runtime::flags::CommonArgs;

#[derive(Parser, Debug)]
#[command(name = "metal-provisioning", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    provisioning: ProvisioningArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime::logging::init(&cli.common.log_level, cli.common.log_format)?;
    let shutdown = runtime::shutdown::on_signal();
    let state = AdminState::default();
    let (admin_addr, _admin) = admin::serve(cli.common.admin_addr, state.clone(), shutdown.clone())
        .await
        .context("admin server")?;
    tracing::info!(%admin_addr, "admin server listening");
    let client = cli.common.client().await.context("kubernetes client")?;
    let config = metal_provisioning::config_from_args(&cli.common, &cli.provisioning)?;
    let handle = metal_provisioning::start(client, config, &state.metrics, Some(&state.readiness))
        .await
        .context("starting")?;
    if let Err(e) = handle.run_until(shutdown).await {
        state.health.fail(e.to_string());
        return Err(e).context("leader election");
    }
    Ok(())
}
