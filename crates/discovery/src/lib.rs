//! `metal-discovery`: the controller that turns BMC addresses and credentials into Servers with
//! their inventory, and owns the Server states Initial and Discovery.
//!
//! * [`endpoint`]: Endpoint + MAC-prefix database → BMCSecret + BMC (deprecated upstream path).
//! * [`bmc`]: BMC status from the Redfish Manager, `Ready`/`Reset` conditions, one Server per
//!   bootable system (owned by the BMC), the `graceful-restart-bmc` operation.
//! * [`server`]: `(none)` → Initial → Discovery → Available, out-of-band (Redfish inventory) or
//!   in-band (discovery boot into [`metal_probe`], docs/controllers.md).
//! * [`bmcuser`]: BMC accounts with verified password rotation.
//! * [`registry`]: the HTTP endpoint the probe agent posts to (reports stored in the API).
//! * [`guard`]: the one place BMC side effects go through.
//! * [`logic`]: the pure parts, unit-tested without a client.
//!
//! [`run`] is the binary; [`controllers::run_controllers`] and [`registry::Registry`] run the same
//! parts in-process (tests, benchmarks).

pub mod bmc;
pub mod bmcuser;
pub mod config;
pub mod context;
pub mod controllers;
pub mod endpoint;
pub mod error;
pub mod guard;
pub mod logic;
pub mod metrics;
pub mod registry;
pub mod server;

use std::time::Duration;

use anyhow::Context as _;
use runtime::admin::{AdminState, serve};
use runtime::lease::{LeaseParams, run_while_leading, spawn};
use runtime::metrics::LeaderMetrics;
use tokio_util::sync::CancellationToken;

pub use config::{Args, Config};
pub use controllers::{Options, run_controllers};
pub use metrics::DiscoveryMetrics;

/// The default Lease name: one per shard (selector), so shards elect leaders independently.
pub fn lease_name(selector: &str) -> String {
    if selector.trim().is_empty() {
        return "metal-discovery".into();
    }
    let h = selector.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("metal-discovery-{:08x}", h as u32)
}

/// Runs the binary: admin server, registry (every replica), controllers (leader only when
/// `--leader-elect`), until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    runtime::logging::init(&args.common.log_level, args.common.log_format)?;
    let shutdown = runtime::shutdown::on_signal();
    let client = args
        .common
        .client()
        .await
        .context("building the Kubernetes client")?;
    let mut cfg = args.config()?;
    let macdb = match &args.mac_prefixes_file {
        Some(p) => Some(logic::macdb::MacDb::load(p)?),
        None => None,
    };
    let default_ca = match &args.bmc_ca_file {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let state = AdminState::default();
    let metrics = DiscoveryMetrics::new(&state.metrics);
    let gate = state.readiness.gate("caches");
    let (admin_addr, admin_task) =
        serve(args.common.admin_addr, state.clone(), shutdown.clone()).await?;
    tracing::info!(%admin_addr, "admin server listening");
    let registry = registry::Registry::new(
        client.clone(),
        cfg.manager_namespace.clone(),
        metrics.clone(),
    );
    if let Some(f) = args
        .registry_ca_file
        .as_ref()
        .or(args.registry_tls_cert_file.as_ref())
    {
        cfg.registry_ca = Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading the registry CA bundle {}", f.display()))?,
        );
    }
    let registry_tls = match (&args.registry_tls_cert_file, &args.registry_tls_key_file) {
        (Some(cert), Some(key)) => Some(
            runtime::tls::acceptor(cert, key)
                .context("--registry-tls-cert-file / --registry-tls-key-file")?,
        ),
        _ => None,
    };
    let (_, registry_task) = registry
        .serve(args.registry_addr, registry_tls, shutdown.clone())
        .await
        .context("starting the registry")?;
    if cfg.registry_url.is_none() {
        tracing::warn!("no --registry-url: in-band discovery cannot run");
    }
    let mut opts = Options {
        cfg: cfg.clone(),
        client_options: args.client_options(),
        macdb,
        default_ca,
        shards: runtime::shards::Shards::all(),
    };
    let group = args
        .common
        .lease_name
        .clone()
        .unwrap_or_else(|| lease_name(&cfg.selector));
    if args.common.leader_elect && args.common.shards > 0 {
        // Every replica runs the controllers, each acting on the BMCs of the shards it holds.
        let mut lease = args.common.lease_params(group.clone());
        lease.identity = cfg.identity.clone();
        let coordinator = runtime::shards::spawn(
            client.clone(),
            runtime::shards::ShardParams {
                group,
                shards: args.common.shards,
                lease,
            },
            Some(LeaderMetrics::new(&state.metrics)),
        );
        opts.shards = coordinator.shards();
        let result = run_controllers(client, opts, metrics, Some(gate), shutdown.clone()).await;
        coordinator.stop().await;
        result?;
    } else if args.common.leader_elect {
        let params = LeaseParams::new(
            group,
            args.common.lease_namespace(),
            cfg.identity.clone(),
            args.common.lease_duration,
        );
        let handle = spawn(
            client.clone(),
            params,
            Some(LeaderMetrics::new(&state.metrics)),
        );
        run_while_leading(handle, shutdown.clone(), move |token: CancellationToken| {
            let client = client.clone();
            let opts = opts.clone();
            let metrics = metrics.clone();
            let gate = gate.clone();
            async move {
                if let Err(e) = run_controllers(client, opts, metrics, Some(gate), token).await {
                    tracing::error!(error = %e, "controllers stopped");
                }
            }
        })
        .await?;
    } else {
        run_controllers(client, opts, metrics, Some(gate), shutdown.clone()).await?;
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = registry_task.await;
        let _ = admin_task.await;
    })
    .await;
    Ok(())
}
