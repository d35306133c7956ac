//! `metal-reservation`: binds ServerClaims to Servers, releases them, and manages
//! ServerReadinessRule taints. See the crate README for flags and deployment.

use anyhow::Context as _;
use clap::Parser;
use metal_reservation::Reservation;
use metal_reservation::args::ReservationArgs;
use runtime::admin::{self, AdminState};
use runtime::flags::CommonArgs;
use runtime::lease;

/// Command line of `metal-reservation`.
#[derive(Debug, Parser)]
#[command(name = "metal-reservation", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    reservation: ReservationArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime::logging::init(&cli.common.log_level, cli.common.log_format)?;
    if cli.common.shards > 0 {
        // Binding is one decision over all servers (no two claims may take one server), so
        // reservation stays a single leader; its work is API-only and measured to keep up.
        anyhow::bail!(
            "--shards: metal-reservation runs as one leader (--leader-elect); it is not sharded"
        );
    }
    let config = cli.reservation.config(&cli.common)?;
    tracing::info!(?config, "starting metal-reservation");

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
    let reservation = Reservation::start(client.clone(), config, &state);

    let result = lease::lead_or_run(
        &cli.common,
        "metal-reservation",
        client,
        &state,
        shutdown.clone(),
        move |token| {
            let reservation = reservation.clone();
            async move { reservation.run_controllers(token).await }
        },
    )
    .await;
    shutdown.cancel();
    let _ = admin_task.await;
    result.context("leader election")?;
    tracing::info!("metal-reservation stopped");
    Ok(())
}
