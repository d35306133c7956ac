//! `metal-maintenance`: takes servers into maintenance and applies
//! BIOS settings in maintenance windows. See the crate README for flags and deployment.

use anyhow::Context as _;
use clap::Parser;
use metal_maintenance::Maintenance;
use metal_maintenance::args::MaintenanceArgs;
use runtime::admin::{self, AdminState};
use runtime::flags::CommonArgs;
use runtime::lease;

/// Command line of `metal-maintenance`.
#[derive(Debug, Parser)]
#[command(name = "metal-maintenance", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    maintenance: MaintenanceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime::logging::init(&cli.common.log_level, cli.common.log_format)?;
    let config = cli.maintenance.config(&cli.common)?;
    tracing::info!(?config, "starting metal-maintenance");

    let shutdown = runtime::shutdown::on_signal();
    let state = AdminState::default();
    let (addr, admin_task) = admin::serve(cli.common.admin_addr, state.clone(), shutdown.clone())
        .await
        .context("starting the admin server")?;
    tracing::info!(%addr, "admin server listening");

    let client = cli
        .common
        .client()
        .await
        .context("building the Kubernetes client")?;
    let maintenance = Maintenance::start(client.clone(), config, &state);

    if cli.common.leader_elect && cli.common.shards > 0 {
        // Every replica runs the controllers, each for the BMCs of the shards it holds.
        let group = cli
            .common
            .lease_name
            .clone()
            .unwrap_or_else(|| "metal-maintenance".into());
        let coordinator = runtime::shards::spawn(
            client,
            runtime::shards::ShardParams {
                lease: cli.common.lease_params(group.clone()),
                group,
                shards: cli.common.shards,
            },
            Some(runtime::metrics::LeaderMetrics::new(&state.metrics)),
        );
        maintenance
            .with_shards(coordinator.shards())
            .run_controllers(shutdown.clone())
            .await;
        coordinator.stop().await;
        shutdown.cancel();
        let _ = admin_task.await;
        tracing::info!("metal-maintenance stopped");
        return Ok(());
    }
    let result = lease::lead_or_run(
        &cli.common,
        "metal-maintenance",
        client,
        &state,
        shutdown.clone(),
        move |token| {
            let maintenance = maintenance.clone();
            async move { maintenance.run_controllers(token).await }
        },
    )
    .await;
    shutdown.cancel();
    let _ = admin_task.await;
    result.context("leader election")?;
    tracing::info!("metal-maintenance stopped");
    Ok(())
}
