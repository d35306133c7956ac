//! The harness the maintenance test binaries share: a control plane namespace, a simulated
//! rack with its BMC/BMCSecret/Server objects, and metal-maintenance running in-process.
#![allow(dead_code)]

use api::biossettings::{BIOSSettings, BIOSSettingsState};
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use api::servermaintenance::{ServerMaintenance, ServerMaintenanceState};
use kube::api::{Api, Patch, PatchParams, PostParams};
use metal_bmc_sim::{BmcInfo, GroupSpec, Knobs, RackSpec, SimHandle, Simulator, TemplateSource};
use metal_maintenance::{Config, Maintenance};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The BIOS version the simulator's default template reports (the settings are meant for it).
pub const SIM_BIOS_VERSION: &str = "2.4.1";

pub const T: Duration = Duration::from_secs(60);
pub const SHARD: &str = "test.metal.ironcore.dev/shard";

pub struct Harness {
    pub client: kube::Client,
    pub ns: String,
    pub sim: SimHandle,
    pub bmcs: Vec<BmcInfo>,
    pub servers: Vec<(String, String)>,
    pub config: Config,
    pub stop: CancellationToken,
    /// Prefix of this rack's object names: BMC `i` is `{shard}-{i}`, its server `{shard}-{i}-srv`.
    pub shard: String,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < T,
            "timed out after {T:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Harness {
    /// A simulated rack of `count` BMCs, their BMC/BMCSecret/Server objects (servers Available,
    /// powered off), and metal-maintenance running in-process for them.
    pub async fn new(prefix: &str, base: &str, count: usize) -> Harness {
        Self::with(prefix, base, count, Knobs::default()).await
    }

    /// [`Harness::new`] with simulator knobs (power transitions always take 200 ms).
    pub async fn with(prefix: &str, base: &str, count: usize, knobs: Knobs) -> Harness {
        Self::with_template(prefix, base, count, knobs, TemplateSource::default()).await
    }

    /// [`Harness::with`] serving `template` (e.g. a vendor tree) instead of the default one.
    pub async fn with_template(
        prefix: &str,
        base: &str,
        count: usize,
        knobs: Knobs,
        template: TemplateSource,
    ) -> Harness {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let (client, ns) = testenv::setup(prefix).await;
        let sim = Simulator::start(RackSpec {
            base_address: base.parse().unwrap(),
            port: 0,
            tls: true,
            groups: vec![GroupSpec {
                count,
                password: Some("sim-password".into()),
                knobs: Knobs {
                    power_delay_ms: 200,
                    ..knobs
                },
                template,
                ..GroupSpec::default()
            }],
            ..RackSpec::default()
        })
        .await
        .expect("simulator");
        let bmcs = sim.bmcs();
        let shard = testenv::unique_name(prefix);
        let mut servers = Vec::new();
        for (i, b) in bmcs.iter().enumerate() {
            let base = format!("{shard}-{i}");
            let sys = &b.systems[0];
            create(
                &client,
                json!({
                    "apiVersion": api::API_VERSION, "kind": "BMCSecret",
                    "metadata": { "name": base },
                    "stringData": { "username": b.username, "password": b.password,
                                    "ca.crt": b.ca_pem.clone().unwrap_or_default() },
                }),
                Api::<api::bmcsecret::BMCSecret>::all(client.clone()),
            )
            .await;
            create(&client, json!({
                "apiVersion": api::API_VERSION, "kind": "BMC",
                "metadata": { "name": base },
                "spec": { "access": { "ip": b.ip.to_string() }, "bmcSecretRef": { "name": base },
                          "protocol": { "name": "Redfish", "port": b.port, "scheme": "https" } },
            }), Api::<api::bmc::BMC>::all(client.clone())).await;
            let name = format!("{base}-srv");
            create(
                &client,
                json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": name, "labels": { SHARD: shard } },
                    "spec": { "systemUUID": sys.uuid.clone().unwrap_or_default().to_lowercase(),
                              "systemURI": sys.path, "bmcRef": { "name": base } },
                }),
                Api::<Server>::all(client.clone()),
            )
            .await;
            set_state(&client, &name, "Available", "metal-discovery").await;
            servers.push((name, sys.id.clone()));
        }
        let mut config = Config::new("test");
        config.server_selector = Some(format!("{SHARD}={shard}"));
        config.namespace = ns.name.clone();
        config.resync = Duration::from_secs(30);
        let h = Harness {
            client,
            ns: ns.name,
            sim,
            bmcs,
            servers,
            config,
            stop: CancellationToken::new(),
            shard,
        };
        h.spawn(h.stop.clone());
        h
    }

    /// Starts a metal-maintenance instance (its own caches) running until `stop`; aborting
    /// the returned task kills it at whatever await point it is in.
    pub fn spawn(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let admin = runtime::admin::AdminState::default();
        let m = Maintenance::start(self.client.clone(), self.config.clone(), &admin);
        tokio::spawn(m.run(stop))
    }

    /// Sets (`Some`) or removes an annotation of server `i`, as a user would.
    #[allow(dead_code)]
    pub async fn annotate(&self, i: usize, key: &str, value: Option<&str>) {
        Api::<Server>::all(self.client.clone())
            .patch(
                self.server_name(i),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "metadata": { "annotations": { key: value } } })),
            )
            .await
            .unwrap();
    }

    pub fn server_name(&self, i: usize) -> &str {
        &self.servers[i].0
    }

    pub async fn server(&self, i: usize) -> Server {
        Api::<Server>::all(self.client.clone())
            .get(self.server_name(i))
            .await
            .unwrap()
    }

    pub fn system(&self, i: usize) -> metal_bmc_sim::SystemState {
        self.sim.system_state(i, &self.servers[i].1).unwrap()
    }

    /// `POST ComputerSystem.Reset` requests the BMC of server `i` received.
    pub fn resets(&self, i: usize) -> u64 {
        let path = &self.bmcs[i].systems[0].path;
        self.sim
            .request_counts(i)
            .unwrap()
            .get("POST", &format!("{path}/Actions/ComputerSystem.Reset"))
    }

    pub fn sms(&self) -> Api<ServerMaintenance> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn create_sm(&self, name: &str, server: usize, spec: Value) {
        let mut spec = spec;
        spec["serverRef"] = json!({ "name": self.server_name(server) });
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "ServerMaintenance",
                "metadata": { "name": name, "namespace": self.ns }, "spec": spec,
            }),
            self.sms(),
        )
        .await;
    }

    pub async fn sm_state(&self, name: &str) -> Option<(Option<ServerMaintenanceState>, String)> {
        let sm = self.sms().get_opt(name).await.unwrap()?;
        let status = sm.status.unwrap_or_default();
        let reason = api::conditions::get(&status.conditions, "Maintenance")
            .map(|c| c.reason.clone())
            .unwrap_or_default();
        Some((status.state, reason))
    }

    pub async fn wait_server(&self, i: usize, state: ServerState, held: bool) -> Server {
        eventually(&format!("server {i} {state} held={held}"), || async {
            let s = self.server(i).await;
            (s.state() == Some(state) && s.spec.server_maintenance_ref.is_some() == held)
                .then_some(s)
        })
        .await
    }

    /// Plays reservation: a claim bound to server `i`, the server Reserved.
    pub async fn bind(&self, i: usize, claim: &str) {
        let claims: Api<ServerClaim> = Api::namespaced(self.client.clone(), &self.ns);
        create(&self.client, json!({
            "apiVersion": api::API_VERSION, "kind": "ServerClaim",
            "metadata": { "name": claim, "namespace": self.ns },
            "spec": { "power": "On", "image": "img", "serverRef": { "name": self.server_name(i) } },
        }), claims).await;
        Api::<Server>::all(self.client.clone())
            .patch(
                self.server_name(i),
                &PatchParams::apply("metal-reservation").force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": self.server_name(i) },
                    "spec": { "serverClaimRef": { "namespace": self.ns, "name": claim } },
                })),
            )
            .await
            .unwrap();
        set_state(
            &self.client,
            self.server_name(i),
            "Reserved",
            "metal-reservation",
        )
        .await;
    }

    pub async fn claim_label(&self, claim: &str, label: &str) -> Option<String> {
        let claims: Api<ServerClaim> = Api::namespaced(self.client.clone(), &self.ns);
        claims
            .get(claim)
            .await
            .unwrap()
            .metadata
            .labels?
            .get(label)
            .cloned()
    }

    pub fn bios(&self) -> Api<BIOSSettings> {
        Api::all(self.client.clone())
    }

    pub async fn create_bios(&self, name: &str, server: usize, settings: Value, policy: &str) {
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "BIOSSettings",
                "metadata": { "name": name },
                "spec": {
                    "version": SIM_BIOS_VERSION, "serverRef": { "name": self.server_name(server) },
                    "serverMaintenancePolicy": policy,
                    "settingsFlow": [{ "name": "main", "priority": 1, "settings": settings }],
                },
            }),
            self.bios(),
        )
        .await;
    }

    pub async fn wait_bios(&self, name: &str, state: BIOSSettingsState) -> BIOSSettings {
        wait_state(self.bios(), name, state, |b| b.status.as_ref()?.state).await
    }
}

pub async fn create<K>(_client: &kube::Client, v: Value, api: Api<K>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let o: K = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &o).await.unwrap();
}

/// Waits until object `name` is in `want` (by `state_of`); on timeout panics with its last
/// status.
pub async fn wait_state<K, S>(
    api: Api<K>,
    name: &str,
    want: S,
    state_of: impl Fn(&K) -> Option<S>,
) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    S: PartialEq + std::fmt::Display,
{
    let mut last = None;
    let found = tokio::time::timeout(T, async {
        loop {
            // Not there yet (e.g. a set's child about to be created) counts as not done.
            if let Some(o) = api.get_opt(name).await.unwrap() {
                if state_of(&o).as_ref() == Some(&want) {
                    return o;
                }
                last = Some(o);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{name} not {want} after {T:?}: {last:#?}"))
}

pub async fn set_state(client: &kube::Client, name: &str, state: &str, manager: &str) {
    Api::<Server>::all(client.clone())
        .patch_status(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(json!({
                "apiVersion": api::API_VERSION, "kind": "Server",
                "metadata": { "name": name }, "status": { "state": state, "powerState": "Off" },
            })),
        )
        .await
        .unwrap();
}

impl Harness {
    /// `POST ...SimpleUpdate` requests the BMC of server `i` received.
    pub fn updates(&self, i: usize) -> u64 {
        self.sim
            .request_counts(i)
            .unwrap()
            .by_request
            .iter()
            .filter(|(k, _)| k.starts_with("POST ") && k.ends_with("UpdateService.SimpleUpdate"))
            .map(|(_, n)| *n)
            .sum()
    }
}

pub fn fast_tasks() -> Knobs {
    Knobs {
        task_duration_ms: 500,
        ..Knobs::default()
    }
}

pub fn redfish_client(h: &Harness, i: usize) -> redfish::Client {
    let b = &h.bmcs[i];
    let ep = redfish::BmcEndpoint::parse(&b.address)
        .unwrap()
        .with_ca_bundle_pem(b.ca_pem.as_deref().unwrap_or_default().as_bytes())
        .unwrap();
    redfish::Client::new(
        ep,
        redfish::Credentials::new(b.username.as_str(), b.password.as_str()),
        redfish::ClientOptions::default(),
    )
    .unwrap()
}

impl Harness {
    /// `POST Manager.Reset` requests the BMC `i` received.
    pub fn manager_resets(&self, i: usize) -> u64 {
        self.sim
            .request_counts(i)
            .unwrap()
            .by_request
            .iter()
            .filter(|(k, _)| k.starts_with("POST ") && k.ends_with("Manager.Reset"))
            .map(|(_, n)| *n)
            .sum()
    }
}

/// A hook that lets an instance run until it reaches `at`, then parks it there (the test then
/// aborts it: the same as SIGKILL at that point, nothing after the step runs).
pub fn stop_at(at: &'static str, reached: Arc<tokio::sync::Notify>) -> metal_maintenance::StepHook {
    Arc::new(move |name| {
        let reached = reached.clone();
        Box::pin(async move {
            if name == at {
                reached.notify_one();
                std::future::pending::<()>().await;
            }
        })
    })
}

/// Runs an instance until it reaches step `at`, then kills it there (aborts its task: nothing
/// after the step runs).
pub async fn kill_at(h: &Harness, at: &'static str) {
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut config = h.config.clone();
    config.step_hook = Some(stop_at(at, reached.clone()));
    let doomed = spawn_with(h, config, CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(60), reached.notified())
        .await
        .unwrap_or_else(|_| panic!("step {at} not reached"));
    doomed.abort();
    let _ = doomed.await;
}

pub fn spawn_with(
    h: &Harness,
    config: metal_maintenance::Config,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let admin = runtime::admin::AdminState::default();
    let m = metal_maintenance::Maintenance::start(h.client.clone(), config, &admin);
    tokio::spawn(m.run(stop))
}
