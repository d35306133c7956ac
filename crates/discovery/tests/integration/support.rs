//! Test harness: the real control plane (metal-testenv), the BMC simulator, and discovery run
//! in-process, scoped to one test by a label selector.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::conditions;
use api::server::{Server, ServerState};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::reflector;
use metal_bmc_sim::{BmcInfo, GroupSpec, Knobs, RackSpec, SimHandle, TemplateSource};
use metal_discovery::config::Config;
use metal_discovery::context::{Ctx, Stores};
use metal_discovery::logic::macdb::MacDb;
use metal_discovery::{DiscoveryMetrics, Options};
use runtime::bmc::BmcClients;
use runtime::metrics::Metrics;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Label key scoping objects to one test.
pub const RUN_LABEL: &str = "metal.test/run";

/// Knobs that keep simulated hardware fast.
pub fn fast_knobs() -> Knobs {
    Knobs {
        power_delay_ms: 100,
        bmc_reset_downtime_ms: 500,
        task_duration_ms: 300,
        ..Knobs::default()
    }
}

/// The shared fixture directory (`$METAL_SHARED_DIR`, else `<repo>/../shared`), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("METAL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| testenv::repo_root().join("../shared"));
    dir.join("fixtures/redfish").is_dir().then_some(dir)
}

/// A real vendor tree, or `None` (with a note) when /work/shared is absent.
pub fn real_tree(name: &str) -> Option<PathBuf> {
    match shared_dir() {
        Some(d) => Some(d.join("fixtures/redfish").join(name)),
        None => {
            eprintln!("note: shared fixtures absent; skipping the {name} tree");
            None
        }
    }
}

/// A TLS rack of `count` default-template BMCs at `base`.
pub fn rack(base: &str, groups: Vec<GroupSpec>) -> RackSpec {
    RackSpec {
        base_address: base.parse().expect("base address"),
        port: 0,
        tls: true,
        groups,
        ..RackSpec::default()
    }
}

/// A group of `count` BMCs from `template` with a fixed password and fast knobs.
pub fn group(count: usize, template: TemplateSource) -> GroupSpec {
    GroupSpec {
        count,
        template,
        password: Some("sim-password".into()),
        knobs: fast_knobs(),
        ..GroupSpec::default()
    }
}

/// Starts a simulator.
pub async fn sim(spec: RackSpec) -> SimHandle {
    metal_bmc_sim::Simulator::start(spec)
        .await
        .expect("simulator starts")
}

pub use testenv::eventually;

/// Discovery running in-process against the shared control plane, scoped by a run label.
pub struct Harness {
    /// Admin client.
    pub client: kube::Client,
    /// The test's namespace (manager namespace of discovery).
    pub ns: String,
    /// The run label value.
    pub run: String,
    /// Discovery's metrics.
    pub metrics: DiscoveryMetrics,
    /// The registry they are registered in (encode it to check series).
    pub registry: Metrics,
    /// The registry URL.
    pub registry_url: String,
    /// The configuration discovery runs with.
    pub cfg: Config,
    token: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Fast test timings.
pub fn test_config(selector: &str, ns: &str) -> Config {
    let mut cfg = Config::for_tests(selector, ns);
    cfg.poll_interval = Duration::from_millis(500);
    cfg.bmc_refresh_interval = Duration::from_secs(30);
    cfg.bmc_reset_wait = Duration::from_secs(1);
    cfg.reconcile_timeout = Duration::from_secs(60);
    cfg.discovery_retry_delay = Duration::from_secs(2);
    cfg
}

/// Redfish options for tests (short deadlines).
pub fn client_options() -> redfish::ClientOptions {
    redfish::ClientOptions {
        request_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(3),
        ..redfish::ClientOptions::default()
    }
}

impl Harness {
    /// Starts discovery (controllers + registry) for a new run; `tweak` adjusts the config.
    pub async fn start(prefix: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with(prefix, None, None, tweak).await
    }

    /// Like [`Harness::start`], with a MAC database and a default CA, and optionally another
    /// client for the controllers (e.g. impersonating the ServiceAccount).
    pub async fn start_with(
        prefix: &str,
        macdb: Option<MacDb>,
        default_ca: Option<Vec<u8>>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let (client, ns) = testenv::setup(prefix).await;
        Self::start_in(client.clone(), client, ns.name, macdb, default_ca, tweak).await
    }

    /// A run without in-process discovery (the test runs the binary itself).
    pub async fn without_controllers(prefix: &str) -> Self {
        init_logging();
        let (client, ns) = testenv::setup(prefix).await;
        let run = testenv::unique_name("run");
        let selector = format!("{RUN_LABEL}={run}");
        let registry_metrics = Metrics::new();
        let metrics = DiscoveryMetrics::new(&registry_metrics);
        let cfg = test_config(&selector, &ns.name);
        Self {
            client,
            ns: ns.name,
            run,
            metrics,
            registry: registry_metrics,
            registry_url: String::new(),
            cfg,
            token: CancellationToken::new(),
        }
    }

    /// The label selector of this run.
    pub fn selector(&self) -> String {
        format!("{RUN_LABEL}={}", self.run)
    }

    /// Starts discovery with `controller_client` in namespace `ns`.
    pub async fn start_in(
        client: kube::Client,
        controller_client: kube::Client,
        ns: String,
        macdb: Option<MacDb>,
        default_ca: Option<Vec<u8>>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        init_logging();
        let run = testenv::unique_name("run");
        let selector = format!("{RUN_LABEL}={run}");
        let registry_metrics = Metrics::new();
        let metrics = DiscoveryMetrics::new(&registry_metrics);
        let token = CancellationToken::new();
        let registry = metal_discovery::registry::Registry::new(
            controller_client.clone(),
            ns.clone(),
            metrics.clone(),
        );
        let (addr, _) = registry
            .serve("127.0.0.1:0".parse().unwrap(), None, token.clone())
            .await
            .expect("registry");
        let registry_url = format!("http://{addr}");
        let mut cfg = test_config(&selector, &ns);
        cfg.registry_url = Some(registry_url.clone());
        tweak(&mut cfg);
        let opts = Options {
            cfg: cfg.clone(),
            client_options: client_options(),
            macdb,
            default_ca,
            shards: runtime::shards::Shards::all(),
        };
        let t = token.clone();
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) =
                metal_discovery::run_controllers(controller_client, opts, m, None, t).await
            {
                eprintln!("controllers stopped: {e}");
            }
        });
        Self {
            client,
            ns,
            run,
            metrics,
            registry: registry_metrics,
            registry_url,
            cfg,
            token,
        }
    }

    /// Labels every object of this run carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [(RUN_LABEL.to_string(), self.run.clone())].into()
    }

    /// A unique cluster-scoped name for this run.
    pub fn name(&self, what: &str) -> String {
        testenv::unique_name(what)
    }

    /// Creates the BMCSecret and BMC for a simulated BMC; returns the BMC name.
    pub async fn add_bmc(&self, info: &BmcInfo, annotations: &[(&str, &str)]) -> String {
        self.add_bmc_with_password(info, &info.password.clone(), annotations)
            .await
    }

    /// Like [`Harness::add_bmc`] with a given password.
    pub async fn add_bmc_with_password(
        &self,
        info: &BmcInfo,
        password: &str,
        annotations: &[(&str, &str)],
    ) -> String {
        let name = self.name("bmc");
        self.add_secret(&name, info, password).await;
        self.add_bmc_object(&name, info, annotations).await;
        name
    }

    /// The BMCSecret `name` with `info`'s user and `password`.
    pub async fn add_secret(&self, name: &str, info: &BmcInfo, password: &str) {
        let mut string_data = json!({"username": info.username, "password": password});
        if let Some(ca) = &info.ca_pem {
            string_data["ca.crt"] = json!(ca);
        }
        let secret: BMCSecret = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret",
            "metadata": {"name": name, "labels": self.labels()},
            "stringData": string_data,
        }))
        .unwrap();
        Api::<BMCSecret>::all(self.client.clone())
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }

    /// The BMC `name` for `info`, its credentials in the BMCSecret of the same name.
    pub async fn add_bmc_object(&self, name: &str, info: &BmcInfo, annotations: &[(&str, &str)]) {
        let ann: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let scheme = if info.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        let bmc: BMC = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC",
            "metadata": {"name": name, "labels": self.labels(), "annotations": ann},
            "spec": {
                "access": {"ip": info.ip.to_string(), "macAddress": format!("02:00:00:00:{:02x}:{:02x}", info.ip.octets()[2], info.ip.octets()[3])},
                "bmcSecretRef": {"name": name},
                "protocol": {"name": "Redfish", "port": info.port, "scheme": scheme},
            }
        }))
        .unwrap();
        Api::<BMC>::all(self.client.clone())
            .create(&PostParams::default(), &bmc)
            .await
            .expect("bmc");
    }

    /// Servers of this run.
    pub async fn servers(&self) -> Vec<Server> {
        Api::<Server>::all(self.client.clone())
            .list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run)))
            .await
            .expect("list servers")
            .items
    }

    /// How many Servers of this run are Available.
    pub async fn available(&self) -> usize {
        self.servers()
            .await
            .iter()
            .filter(|s| s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available))
            .count()
    }

    /// A server by name.
    pub async fn server(&self, name: &str) -> Option<Server> {
        Api::<Server>::all(self.client.clone())
            .get_opt(name)
            .await
            .expect("get server")
    }

    /// A BMC by name.
    pub async fn bmc(&self, name: &str) -> Option<BMC> {
        Api::<BMC>::all(self.client.clone())
            .get_opt(name)
            .await
            .expect("get bmc")
    }

    /// Waits until `server` is in `state`.
    pub async fn wait_state(&self, server: &str, state: ServerState, timeout: Duration) -> Server {
        eventually(&format!("{server} in {state:?}"), timeout, async || {
            self.server(server)
                .await
                .filter(|s| s.status.as_ref().and_then(|st| st.state) == Some(state))
        })
        .await
    }

    /// Waits until the BMC's Ready condition has `status`/`reason`.
    pub async fn wait_ready(
        &self,
        bmc: &str,
        status: &str,
        reason: &str,
        timeout: Duration,
    ) -> BMC {
        eventually(
            &format!("{bmc} Ready={status}/{reason}"),
            timeout,
            async || {
                self.bmc(bmc).await.filter(|b| {
                    b.status
                        .as_ref()
                        .and_then(|s| conditions::get(&s.conditions, "Ready"))
                        .is_some_and(|c| c.status == status && c.reason == reason)
                })
            },
        )
        .await
    }

    /// Sets a server's `status.state` as another controller would (its own field manager).
    pub async fn set_state_as(&self, server: &str, state: ServerState, manager: &str) {
        let api: Api<Server> = Api::all(self.client.clone());
        let s = api.get(server).await.unwrap();
        let body = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": server, "resourceVersion": s.metadata.resource_version},
            "status": {"state": state.as_str()},
        });
        api.patch_status(
            server,
            &kube::api::PatchParams::apply(manager).force(),
            &kube::api::Patch::Apply(&body),
        )
        .await
        .expect("set state");
    }
}

/// A context for calling discovery's internals directly (the guard), with empty caches.
pub fn bare_ctx(client: kube::Client, cfg: Config, metrics: DiscoveryMetrics) -> Ctx {
    let (bmcs, _) = reflector::store();
    let (secrets, _) = reflector::store();
    let (endpoints, _) = reflector::store();
    let (servers, _) = reflector::store();
    let (internal_sbcs, _) = reflector::store();
    Ctx::new(
        client,
        cfg,
        BmcClients::new(client_options()),
        None,
        None,
        metrics,
        Stores {
            bmcs,
            secrets,
            endpoints,
            servers,
            internal_sbcs,
        },
    )
}

/// A Redfish client for a simulated BMC (independent of discovery's).
pub fn redfish_client(info: &BmcInfo, password: &str) -> redfish::Client {
    let mut ep = redfish::BmcEndpoint::parse(&info.address).unwrap();
    if let Some(ca) = &info.ca_pem {
        ep = ep.with_ca_bundle_pem(ca.as_bytes()).unwrap();
    }
    redfish::Client::new(
        ep,
        redfish::Credentials::new(info.username.as_str(), password),
        client_options(),
    )
    .unwrap()
}

/// Reads a resource of a template: the built-in default JSON or a mockup directory.
pub fn template_resource(template: &TemplateSource, path: &str) -> serde_json::Value {
    match template {
        TemplateSource::Builtin(_) => {
            let file = testenv::repo_root().join("crates/bmc-sim/templates/default.json");
            let all: serde_json::Value =
                serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
            all[path].clone()
        }
        TemplateSource::Path(dir) => {
            // Mockups hold `redfish/v1/...`, or the service root's content directly in the folder.
            let rel = if dir.join("redfish/v1").is_dir() {
                path.trim_start_matches('/').to_string()
            } else {
                path.trim_start_matches("/redfish/v1")
                    .trim_start_matches('/')
                    .to_string()
            };
            let file = dir.join(rel).join("index.json");
            serde_json::from_slice(
                &std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            )
            .unwrap()
        }
    }
}

/// The captured probe tree of crates/probe (a trimmed Dell PowerEdge R750).
pub fn fixture_tree() -> PathBuf {
    testenv::repo_root().join("crates/probe/tests/fixtures/tree")
}

/// The `metal-probe` binary, built once per test run (`CARGO_BIN_EXE_*` only exists for a
/// package's own binaries, so it is built with cargo).
pub fn probe_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = testenv::repo_root();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "metal-probe", "--bin", "metal-probe"])
            .current_dir(&root)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building metal-probe failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug/metal-probe")
    })
    .clone()
}

/// The `metal-discovery` binary as a process for `h` (its selector and namespace, fast
/// polling), logging to `log`, with `extra` arguments; killed when dropped.
pub fn spawn_discovery(h: &Harness, log: &Path, extra: &[&str]) -> tokio::process::Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_metal-discovery"))
        .arg("--kubeconfig")
        .arg(testenv::shared().kubeconfig())
        .args([
            "--bmc-selector",
            &h.selector(),
            "--manager-namespace",
            &h.ns,
            "--admin-addr",
            "127.0.0.1:0",
            "--registry-addr",
            "127.0.0.1:0",
            "--concurrency",
            "4",
            "--poll-interval",
            "500ms",
            "--log-level",
            "info",
        ])
        .args(extra)
        .stdout(std::process::Stdio::from(out.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .expect("start metal-discovery")
}
