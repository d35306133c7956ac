//! `metal-provisioning`: ServerBootConfigurations, the boot server (iPXE / UEFI HTTP boot,
//! ignition), the metadata service, virtual media, and power and boot of Available, Reserved
//! and Released servers.
//!
//! The pieces, each in its module:
//!
//! * [`stores`]: watch caches and the event → work mapping; [`index`]: MAC / UUID / IP → server;
//! * [`sbc`]: ServerBootConfiguration `status.state` (Pending → Ready / Error) and `Ready`;
//! * [`server`]: the Server pipeline (boot reference, guard, observe, resets, decide, record,
//!   act, day 2, report); [`decide`]: the pure power decision table; [`guard`]: the one guard
//!   every BMC side effect goes through;
//! * [`bootserver`], [`metadata`]: the HTTP endpoints servers fetch; [`ipxe`]: script
//!   rendering; [`artifacts`] + [`oci`]: what a configuration boots;
//! * [`metrics`], [`queue`], [`status`], [`config`].
//!
//! [`start`] wires everything: caches, boot server and metadata service run on every replica;
//! the reconcilers run while this replica holds the leader Lease (or always, without election).

pub mod active;
pub mod artifacts;
pub mod bmc;
pub mod bootserver;
pub mod conditions;
pub mod config;
pub mod context;
pub mod decide;
pub mod error;
pub mod guard;
pub mod http;
pub mod http_client;
pub mod index;
pub mod ipxe;
pub mod metadata;
pub mod metrics;
pub mod oci;
pub mod queue;
pub mod sbc;
pub mod server;
pub mod status;
pub mod stores;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use runtime::admin::Readiness;
use runtime::bmc::BmcClients;
use runtime::lease::{self, LeaseError, LeaseParams};
use runtime::metrics::{LeaderMetrics, Metrics, ReconcileMetrics};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Config, LeaderElection, Listen, MetadataAuth, ProvisioningArgs};
pub use error::{ReconcileError, StartError};

use crate::artifacts::Resolver;
use crate::bmc::Bmcs;
use crate::bootserver::BootServer;
use crate::context::Ctx;
use crate::http_client::HttpClient;
use crate::metadata::MetadataServer;
use crate::metrics::ProvisioningMetrics;
use crate::oci::{OciClient, RegistryCredentials};
use crate::queue::WorkQueue;
use crate::stores::Queues;

/// A running provisioning instance.
#[derive(Debug)]
pub struct Handle {
    /// Where the boot server listens.
    pub boot_addr: SocketAddr,
    /// The boot server URL written into scripts.
    pub boot_url: String,
    /// Where the metadata service listens.
    pub metadata_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    controllers: JoinHandle<Result<(), LeaseError>>,
}

impl Handle {
    /// Stops everything and waits for it.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.controllers.await;
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Runs until `stop` is cancelled (then shuts down cleanly) or the controllers fail (a
    /// replica that could not stop in time after losing its Lease).
    pub async fn run_until(mut self, stop: CancellationToken) -> Result<(), LeaseError> {
        tokio::select! {
            _ = stop.cancelled() => {
                self.shutdown().await;
                Ok(())
            }
            r = &mut self.controllers => {
                self.shutdown.cancel();
                for t in self.tasks {
                    let _ = t.await;
                }
                r.unwrap_or(Ok(()))
            }
        }
    }
}

fn bind(listen: Listen, what: &'static str) -> Result<tokio::net::TcpListener, StartError> {
    let std = match listen {
        Listen::Addr(a) => {
            std::net::TcpListener::bind(a).map_err(|source| StartError::Bind { what, source })?
        }
        Listen::Bound(l) => l,
    };
    std.set_nonblocking(true)
        .map_err(|source| StartError::Bind { what, source })?;
    tokio::net::TcpListener::from_std(std).map_err(|source| StartError::Bind { what, source })
}

/// Builds a [`Config`] from the binary's flags (reads the CA and credentials files).
pub fn config_from_args(
    common: &runtime::flags::CommonArgs,
    args: &ProvisioningArgs,
) -> Result<Config, StartError> {
    let read = |p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, StartError> {
        p.as_ref()
            .map(|p| {
                std::fs::read(p).map_err(|source| StartError::Bind {
                    what: "reading a file given by flag",
                    source,
                })
            })
            .transpose()
    };
    let metadata_listen = match args.metadata_addr.as_str() {
        "none" | "" => None,
        a => Some(Listen::Addr(a.parse().map_err(|_| {
            StartError::Http(format!("invalid --metadata-addr {a:?}"))
        })?)),
    };
    let credentials = match read(&args.registry_credentials_file)? {
        Some(b) => RegistryCredentials::from_docker_config(&String::from_utf8_lossy(&b))
            .map_err(|e| StartError::Http(format!("--registry-credentials-file: {e}")))?,
        None => RegistryCredentials::default(),
    };
    Ok(Config {
        server_selector: args.server_selector.clone(),
        boot_listen: Listen::Addr(args.boot_addr),
        boot_server_url: args.boot_server_url.clone(),
        metadata_listen,
        static_metadata: args.static_metadata.iter().cloned().collect(),
        timing: decide::Timing {
            power_off_timeout: args.power_off_timeout,
            confirm_timeout: args.power_confirm_timeout,
        },
        resync: args.resync_interval,
        max_reconciles: args.max_reconciles,
        api_concurrency: usize::from(common.concurrency).max(1) * 4,
        bmc_timeout: args.bmc_timeout,
        bmc_in_flight: args.bmc_concurrency,
        bmc_poll_interval: Duration::from_secs(2),
        bmc_ca: read(&args.bmc_ca_file)?,
        bmc_auth: args.bmc_auth,
        network_boot_target: args.network_boot_target.clone(),
        architecture: args.architecture.clone(),
        oci_kernel_args: args.oci_kernel_args.clone(),
        insecure_registries: args.insecure_registries.clone(),
        registry_ca: read(&args.registry_ca_file)?,
        registry_credentials: credentials,
        leader_election: common.leader_elect.then(|| LeaderElection {
            name: common
                .lease_name
                .clone()
                .unwrap_or_else(|| "metal-provisioning".into()),
            namespace: common.lease_namespace(),
            identity: common.identity(),
            duration: common.lease_duration,
            shards: common.shards,
        }),
        instance: common.identity.clone(),
        boot_token_secret: (common.lease_namespace(), args.boot_token_secret.clone()),
        boot_window: args.boot_window,
        metadata_auth: args.metadata_auth,
        tls: args.tls_cert_file.clone().zip(args.tls_key_file.clone()),
        steps: runtime::steps::Steps(runtime::steps::kill_at(args.kill_at_step.as_deref())?),
    })
}

/// Starts a provisioning instance: caches, boot server, metadata service, and the reconcilers
/// (under leader election when configured).
pub async fn start(
    client: kube::Client,
    config: Config,
    metrics: &Metrics,
    readiness: Option<&Readiness>,
) -> Result<Handle, StartError> {
    if let Some(sel) = &config.server_selector
        && sel.chars().any(char::is_whitespace)
    {
        return Err(StartError::Selector(sel.clone()));
    }
    let mut config = config;
    let shutdown = CancellationToken::new();
    let pm = ProvisioningMetrics::new(metrics);
    let rm = ReconcileMetrics::new(metrics, "provisioning");

    let boot_listener = bind(
        std::mem::replace(
            &mut config.boot_listen,
            Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0))),
        ),
        "the boot server",
    )?;
    let boot_addr = boot_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            what: "the boot server",
            source,
        })?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(runtime::tls::acceptor(cert, key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let boot_url = config
        .boot_server_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{boot_addr}"));
    let metadata_listener = config
        .metadata_listen
        .take()
        .map(|l| bind(l, "the metadata service"))
        .transpose()?;
    let metadata_addr = metadata_listener.as_ref().and_then(|l| l.local_addr().ok());

    let queues = Queues {
        servers: WorkQueue::new(),
        sbcs: WorkQueue::new(),
    };
    let (stores, mut tasks) = stores::start(
        &client,
        config.server_selector.as_deref(),
        queues.clone(),
        shutdown.clone(),
    );

    let http = HttpClient::new(
        config.registry_ca.as_deref(),
        Duration::from_secs(10),
        Duration::from_secs(30),
    )
    .map_err(|e| StartError::Http(e.to_string()))?;
    let oci = OciClient::new(
        http,
        config.insecure_registries.clone(),
        config.registry_credentials.clone(),
        config.architecture.clone(),
    );
    let resolver = Arc::new(Resolver::new(oci, &boot_url, &config.oci_kernel_args));

    let options = redfish::ClientOptions {
        operation_timeout: config.bmc_timeout,
        request_timeout: config.bmc_timeout.min(Duration::from_secs(15)),
        connect_timeout: config.bmc_timeout.min(Duration::from_secs(5)),
        max_in_flight: config.bmc_in_flight.max(1),
        poll_interval: config.bmc_poll_interval,
        auth: config.bmc_auth,
        ..redfish::ClientOptions::default()
    };
    let bmcs = Bmcs::new(
        BmcClients::new(options),
        stores.bmcs.clone(),
        stores.bmc_secrets.clone(),
        config.bmc_ca.clone(),
        pm.clone(),
        config.steps.clone(),
    );

    let ready = Arc::new(AtomicBool::new(false));
    {
        let stores = stores.clone();
        let ready = Arc::clone(&ready);
        let gate = readiness.map(|r| r.gate("caches"));
        tasks.push(tokio::spawn(async move {
            if stores.wait_ready().await {
                ready.store(true, Ordering::Release);
                if let Some(g) = gate {
                    g.ready();
                }
                tracing::info!("watch caches synced");
            }
        }));
    }

    let (key_ns, key_name) = &config.boot_token_secret;
    let key = token::load_or_create(&client, key_ns, key_name).await?;
    let boot = Arc::new(BootServer {
        stores: stores.clone(),
        resolver: Arc::clone(&resolver),
        client: client.clone(),
        metrics: pm.clone(),
        ready: Arc::clone(&ready),
        key: key.clone(),
        window: config.boot_window,
    });
    tasks.push(http::serve(
        boot_listener,
        tls.clone(),
        shutdown.clone(),
        move |req, peer| {
            let boot = Arc::clone(&boot);
            async move { boot.handle(req, peer).await }
        },
    ));
    tracing::info!(addr = %boot_addr, url = %boot_url, "boot server listening");
    if let Some(l) = metadata_listener {
        let md = Arc::new(MetadataServer {
            stores: stores.clone(),
            client: client.clone(),
            static_metadata: config.static_metadata.clone(),
            metrics: pm.clone(),
            ready: Arc::clone(&ready),
            key: key.clone(),
            auth: config.metadata_auth,
        });
        tasks.push(http::serve(
            l,
            tls.clone(),
            shutdown.clone(),
            move |req, peer| {
                let md = Arc::clone(&md);
                async move { md.handle(req, peer).await }
            },
        ));
        tracing::info!(addr = ?metadata_addr, "metadata service listening");
    }

    let election = config.leader_election.clone();
    let mut ctx = Ctx::new(
        client.clone(),
        stores,
        bmcs,
        resolver,
        config,
        pm,
        rm,
        queues,
    );
    let leader_metrics = election.as_ref().map(|_| LeaderMetrics::new(metrics));
    // Sharded: every replica reconciles, each the servers of the shards it holds.
    let coordinator = election.as_ref().filter(|le| le.shards > 0).map(|le| {
        runtime::shards::spawn(
            client.clone(),
            runtime::shards::ShardParams {
                group: le.name.clone(),
                shards: le.shards,
                lease: LeaseParams::new(&le.name, &le.namespace, &le.identity, le.duration),
            },
            leader_metrics.clone(),
        )
    });
    if let Some(c) = &coordinator {
        ctx.shards = c.shards();
    }
    let ctx = Arc::new(ctx);
    let stop = shutdown.clone();
    let controllers = tokio::spawn(async move {
        match election {
            None => {
                run_reconcilers(ctx, stop).await;
                Ok(())
            }
            Some(_) if let Some(c) = coordinator => {
                run_reconcilers(ctx, stop).await;
                c.stop().await;
                Ok(())
            }
            Some(le) => {
                let params = LeaseParams::new(le.name, le.namespace, le.identity, le.duration);
                let handle = lease::spawn(client, params, leader_metrics);
                lease::run_while_leading(handle, stop, move |token| {
                    run_reconcilers(Arc::clone(&ctx), token)
                })
                .await
            }
        }
    });
    Ok(Handle {
        boot_addr,
        boot_url,
        metadata_addr,
        shutdown,
        tasks,
        controllers,
    })
}

/// Runs both reconcilers until `token` is cancelled.
async fn run_reconcilers(ctx: Arc<Ctx>, token: CancellationToken) {
    tokio::select! {
        r = ctx.stores.wait_ready() => if !r { return },
        _ = token.cancelled() => return,
    }
    tracing::info!("reconcilers starting");
    for s in ctx.stores.sbcs.state() {
        ctx.queues
            .sbcs
            .add((s.namespace().unwrap_or_default(), s.name_any()));
    }
    for s in ctx.stores.servers.state() {
        ctx.queues.servers.add(s.name_any());
    }
    // A shard taken from another replica: its servers and their configurations are looked at
    // now, not at their next resync.
    let requeue = {
        let ctx = Arc::clone(&ctx);
        let mut taken = ctx.shards.acquisitions();
        let token = token.clone();
        async move {
            loop {
                tokio::select! {
                    r = taken.changed() => if r.is_err() { break },
                    _ = token.cancelled() => break,
                }
                for s in ctx.stores.servers.state() {
                    if ctx.shards.owns(&Ctx::shard_key(&s)) {
                        ctx.queues.servers.add(s.name_any());
                    }
                }
                for s in ctx.stores.sbcs.state() {
                    ctx.queues
                        .sbcs
                        .add((s.namespace().unwrap_or_default(), s.name_any()));
                }
            }
        }
    };
    let max = ctx.config.max_reconciles;
    let servers = {
        let ctx = Arc::clone(&ctx);
        queue::run(ctx.queues.servers.clone(), max, token.clone(), move |k| {
            server::reconcile(Arc::clone(&ctx), k)
        })
    };
    let sbcs = {
        let ctx = Arc::clone(&ctx);
        queue::run(ctx.queues.sbcs.clone(), max, token.clone(), move |k| {
            sbc::reconcile(Arc::clone(&ctx), k)
        })
    };
    tokio::join!(servers, sbcs, requeue);
    tracing::info!("reconcilers stopped");
}
