//! Wiring: watches, caches, triggers and the four reconcilers (Endpoint, BMC, Server, BMCUser).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::bmcuser::BMCUser;
use api::endpoint::Endpoint;
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};
use runtime::admin::Gate;
use runtime::bmc::BmcClients;
use runtime::cache::SharedWatch;
use runtime::shards::Shards;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::context::{Ctx, Stores};
use crate::error::{Error, Result};
use crate::logic::ignition::DISCOVERY_LABEL;
use crate::logic::macdb::MacDb;
use crate::metrics::DiscoveryMetrics;
use crate::server::server_of;

/// Everything [`run_controllers`] needs besides the client.
#[derive(Clone, Debug)]
pub struct Options {
    /// Configuration.
    pub cfg: Config,
    /// Redfish client options (the metrics observer is added).
    pub client_options: redfish::ClientOptions,
    /// MAC-prefix database for Endpoints.
    pub macdb: Option<MacDb>,
    /// Default CA bundle for BMC TLS.
    pub default_ca: Option<Vec<u8>>,
    /// The BMCs this replica acts on ([`Shards::all`] unless sharded).
    pub shards: Shards,
}

fn selected(cfg: &Config) -> watcher::Config {
    let wc = watcher::Config::default();
    if cfg.selector.trim().is_empty() {
        wc
    } else {
        wc.labels(&cfg.selector)
    }
}

fn internal(_: &Config) -> watcher::Config {
    watcher::Config::default().labels(&format!("{DISCOVERY_LABEL}=true"))
}

fn error_policy<K: Resource>(kind: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Ctx>) -> Action {
    move |obj, err, ctx| {
        let key = format!("err/{kind}/{}", obj.meta().name.clone().unwrap_or_default());
        if err.is_conflict() {
            return Action::requeue(Duration::from_millis(300));
        }
        let wait = ctx.backoff(&key, Duration::from_secs(300));
        tracing::warn!(kind, name = ?obj.meta().name, error = %err, retry_in = ?wait, "reconcile failed");
        Action::requeue(wait)
    }
}

/// The sharding key of a Server or BMCUser: its BMC, so a BMC and all its systems are
/// handled by one replica (an object naming no BMC is its own key).
fn bmc_key(
    bmc_ref: Option<&k8s_openapi::api::core::v1::LocalObjectReference>,
    name: &str,
) -> String {
    bmc_ref.map_or_else(|| name.to_string(), |r| r.name.clone())
}

/// Runs one reconcile under the deadline, with metrics, if this replica holds the object's
/// shard; the reconcile is dropped (as a SIGKILL would) the moment the shard is lost.
async fn guarded<K, F, Fut>(
    kind: &'static str,
    key: String,
    obj: Arc<K>,
    ctx: Arc<Ctx>,
    f: F,
) -> Result<Action>
where
    K: Resource,
    F: FnOnce(Arc<K>, Arc<Ctx>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let Some(shard) = ctx.shards.enter(&key) else {
        // Another replica's; a shard taken later reconciles everything again.
        return Ok(Action::await_change());
    };
    tracing::trace!(kind, %name, "reconcile queued");
    let timer = ctx.metrics.reconcile.start(kind);
    let run = tokio::time::timeout(ctx.cfg.reconcile_timeout, f(obj, ctx.clone()));
    let outcome = tokio::select! {
        r = run => r,
        _ = shard.lost() => {
            timer.failure("ShardLost");
            return Ok(Action::await_change());
        }
    };
    match outcome {
        Ok(Ok(action)) => {
            timer.success();
            ctx.succeeded(&format!("err/{kind}/{name}"));
            Ok(action)
        }
        Ok(Err(e)) => {
            timer.failure(e.reason());
            Err(e)
        }
        Err(_) => {
            timer.failure("Deadline");
            Err(Error::Deadline)
        }
    }
}

fn drain<S, T, E>(stream: S, what: &'static str) -> impl Future<Output = ()>
where
    S: futures::Stream<Item = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    stream.for_each(move |r| {
        if let Err(e) = r {
            tracing::debug!(controller = what, error = %e, "controller event");
        }
        futures::future::ready(())
    })
}

/// Runs the controllers until `shutdown` is cancelled. Marks `ready` once every cache synced.
pub async fn run_controllers(
    client: kube::Client,
    opts: Options,
    metrics: DiscoveryMetrics,
    ready: Option<Gate>,
    shutdown: CancellationToken,
) -> Result<()> {
    let cfg = opts.cfg.clone();
    let ns = cfg.manager_namespace.clone();
    let concurrency = ControllerConfig::default().concurrency(cfg.concurrency.max(1));

    // One watch per kind, shared by the controllers, their triggers and the lookups, cached
    // without `managedFields` (about half of each object, never read here).
    let watch_bmcs = SharedWatch::spawn(Api::<BMC>::all(client.clone()), selected(&cfg), || {});
    let watch_secrets = SharedWatch::spawn(
        Api::<BMCSecret>::all(client.clone()),
        watcher::Config::default(),
        || {},
    );
    let watch_endpoints =
        SharedWatch::spawn(Api::<Endpoint>::all(client.clone()), selected(&cfg), || {});
    let watch_servers =
        SharedWatch::spawn(Api::<Server>::all(client.clone()), selected(&cfg), || {});
    let watch_users =
        SharedWatch::spawn(Api::<BMCUser>::all(client.clone()), selected(&cfg), || {});
    let watch_sbcs = SharedWatch::spawn(
        Api::<ServerBootConfiguration>::namespaced(client.clone(), &ns),
        internal(&cfg),
        || {},
    );

    let stores = Stores {
        bmcs: watch_bmcs.store(),
        secrets: watch_secrets.store(),
        endpoints: watch_endpoints.store(),
        servers: watch_servers.store(),
        internal_sbcs: watch_sbcs.store(),
    };
    metrics.set_server_store(stores.servers.clone());
    let mut client_options = opts.client_options.clone();
    client_options.observer = Some(metrics.redfish_observer());
    let mut ctx = Ctx::new(
        client.clone(),
        cfg.clone(),
        BmcClients::new(client_options),
        opts.default_ca.clone(),
        opts.macdb.clone(),
        metrics,
        stores.clone(),
    );
    ctx.shards = opts.shards.clone();
    let ctx = Arc::new(ctx);

    // The controllers start only once every cache synced (a reconcile must not act on a partial
    // view), and not at all when leadership goes first: nothing parked on an unsynced cache can
    // then hold graceful shutdown past the fencing margin. The shared watches replay their
    // cache to each new subscriber, so no trigger from before the start is lost.
    let synced = async {
        watch_bmcs.ready().await;
        watch_secrets.ready().await;
        watch_endpoints.ready().await;
        watch_servers.ready().await;
        watch_users.ready().await;
        watch_sbcs.ready().await;
    };
    tokio::select! {
        _ = synced => {}
        _ = shutdown.cancelled() => return Ok(()),
    }
    tracing::info!("watch caches synced; reconciling");
    if let Some(g) = ready {
        g.ready();
    }

    // A shard taken from another replica: everything is looked at again (objects of other
    // shards return at once).
    let taken = || opts.shards.acquisition_ticks();
    let endpoint_ctrl =
        Controller::for_shared_stream(watch_endpoints.applied(), watch_endpoints.store())
            .with_config(concurrency.clone())
            .reconcile_all_on(taken());
    let bmc_ctrl = Controller::for_shared_stream(watch_bmcs.applied(), watch_bmcs.store())
        .with_config(concurrency.clone())
        .reconcile_all_on(taken());
    let server_ctrl = Controller::for_shared_stream(watch_servers.applied(), watch_servers.store())
        .with_config(concurrency.clone())
        .reconcile_all_on(taken());
    let user_ctrl = Controller::for_shared_stream(watch_users.applied(), watch_users.store())
        .with_config(concurrency.clone())
        .reconcile_all_on(taken());

    // BMC: triggered by its BMCSecret and Endpoint changes.
    let bmcs_for_secret = stores.bmcs.clone();
    let bmcs_for_ep = stores.bmcs.clone();
    let bmc_ctrl = bmc_ctrl
        .watches_shared_stream(watch_secrets.touched(), move |s: Arc<BMCSecret>| {
            let name = s.name_any();
            refs(&bmcs_for_secret, move |b: &BMC| {
                b.spec.bmc_secret_ref.name == name
            })
        })
        .watches_shared_stream(watch_endpoints.touched(), move |e: Arc<Endpoint>| {
            let name = e.name_any();
            refs(&bmcs_for_ep, move |b: &BMC| {
                b.spec.endpoint_ref.as_ref().is_some_and(|r| r.name == name)
            })
        });

    // Server: triggered by its BMC, its internal boot configuration and its report.
    let servers_for_bmc = stores.servers.clone();
    let server_ctrl = server_ctrl
        .watches_shared_stream(watch_bmcs.touched(), move |b: Arc<BMC>| {
            let name = b.name_any();
            refs(&servers_for_bmc, move |s: &Server| {
                s.spec.bmc_ref.as_ref().is_some_and(|r| r.name == name)
            })
        })
        .watches_shared_stream(watch_sbcs.touched(), |sbc: Arc<ServerBootConfiguration>| {
            server_of(&sbc.metadata).map(|n| ObjectRef::new(&n))
        })
        .watches(
            Api::<ConfigMap>::namespaced(client.clone(), &ns),
            internal(&cfg),
            |cm: ConfigMap| server_of(&cm.metadata).map(|n| ObjectRef::new(&n)),
        );

    // BMCUser: triggered by its secrets and its BMC.
    let users = watch_users.store();
    let users_for_bmc = users.clone();
    let user_ctrl = user_ctrl
        .watches_shared_stream(watch_secrets.touched(), move |s: Arc<BMCSecret>| {
            let name = s.name_any();
            let owners: Vec<String> = s
                .metadata
                .owner_references
                .iter()
                .flatten()
                .map(|r| r.uid.clone())
                .collect();
            refs(&users, move |u: &BMCUser| {
                u.spec
                    .bmc_secret_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
                    || u.status
                        .as_ref()
                        .and_then(|st| st.effective_bmc_secret_ref.as_ref())
                        .is_some_and(|r| r.name == name)
                    || u.metadata
                        .uid
                        .as_ref()
                        .is_some_and(|uid| owners.contains(uid))
            })
        })
        .watches_shared_stream(watch_bmcs.touched(), move |b: Arc<BMC>| {
            let name = b.name_any();
            refs(&users_for_bmc, move |u: &BMCUser| {
                u.spec.bmc_ref.as_ref().is_some_and(|r| r.name == name)
            })
        });

    let stop = || {
        let t = shutdown.clone();
        async move { t.cancelled().await }
    };
    let endpoint_run = endpoint_ctrl.graceful_shutdown_on(stop()).run(
        |o, c| guarded("Endpoint", o.name_any(), o, c, crate::endpoint::reconcile),
        error_policy("Endpoint"),
        ctx.clone(),
    );
    let bmc_run = bmc_ctrl.graceful_shutdown_on(stop()).run(
        |o, c| guarded("BMC", o.name_any(), o, c, crate::bmc::reconcile),
        error_policy("BMC"),
        ctx.clone(),
    );
    let server_run = server_ctrl.graceful_shutdown_on(stop()).run(
        |o, c| {
            let key = bmc_key(o.spec.bmc_ref.as_ref(), &o.name_any());
            guarded("Server", key, o, c, crate::server::reconcile)
        },
        error_policy("Server"),
        ctx.clone(),
    );
    let user_run = user_ctrl.graceful_shutdown_on(stop()).run(
        |o, c| {
            let key = bmc_key(o.spec.bmc_ref.as_ref(), &o.name_any());
            guarded("BMCUser", key, o, c, crate::bmcuser::reconcile)
        },
        error_policy("BMCUser"),
        ctx.clone(),
    );

    futures::future::join4(
        drain(endpoint_run, "endpoint"),
        drain(bmc_run, "bmc"),
        drain(server_run, "server"),
        drain(user_run, "bmcuser"),
    )
    .await;
    Ok(())
}

fn refs<K>(store: &Store<K>, pred: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| pred(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}
