//! Test harness: a real control plane (metal-testenv), a simulated rack (metal-bmc-sim), and
//! helpers that play discovery's and reservation's parts (create BMC / BMCSecret / Server
//! objects, bind and release claims with reservation's field manager).
#![allow(dead_code)]

pub mod oci;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_bmc_sim::{BmcInfo, BootHook, GroupSpec, Knobs, RackSpec, SimHandle, Simulator};
use metal_provisioning::{Config, Handle};
use serde_json::{Value, json};

/// Label used to shard servers between parallel tests (the controller's `--server-selector`).
pub const SHARD_LABEL: &str = "test.metal.ironcore.dev/shard";
/// Reservation's field manager (we play reservation).
pub const RESERVATION: &str = "metal-reservation";
/// Discovery's field manager (we play discovery).
pub const DISCOVERY: &str = "metal-discovery";

/// Knobs that keep tests fast.
pub fn fast_knobs() -> Knobs {
    Knobs {
        power_delay_ms: 200,
        media_fetch_timeout_ms: 3000,
        ..Knobs::default()
    }
}

/// One simulated server known to the cluster.
#[derive(Clone, Debug)]
pub struct TestServer {
    /// Server object name.
    pub name: String,
    /// BMC index in the sim.
    pub bmc: usize,
    /// System id in the sim.
    pub system: String,
    /// System UUID.
    pub uuid: String,
    /// MACs.
    pub macs: Vec<String>,
}

/// Everything a test needs.
pub struct Harness {
    pub client: kube::Client,
    pub ns: String,
    pub shard: String,
    pub sim: SimHandle,
    pub bmcs: Vec<BmcInfo>,
    pub servers: Vec<TestServer>,
}

/// Options of a harness.
pub struct Options {
    pub base: &'static str,
    pub count: usize,
    pub knobs: Knobs,
    pub boot_server: Option<String>,
    pub hook: Option<Arc<dyn BootHook>>,
    pub template: Option<metal_bmc_sim::TemplateSource>,
}

impl Options {
    pub fn new(base: &'static str, count: usize) -> Self {
        Self {
            base,
            count,
            knobs: fast_knobs(),
            boot_server: None,
            hook: None,
            template: None,
        }
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Polls `f` until it returns `Some`, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Harness {
    /// Starts a sim and creates BMC, BMCSecret and Server objects for each BMC.
    pub async fn new(prefix: &str, opts: Options) -> Harness {
        init_logging();
        let (client, ns) = testenv::setup(prefix).await;
        let spec = RackSpec {
            base_address: opts.base.parse().unwrap(),
            port: 0,
            tls: true,
            boot_server: opts.boot_server.clone(),
            boot_hook: opts.hook.clone(),
            groups: vec![GroupSpec {
                count: opts.count,
                password: Some("sim-password".into()),
                knobs: opts.knobs.clone(),
                template: opts.template.clone().unwrap_or_default(),
                ..GroupSpec::default()
            }],
            ..RackSpec::default()
        };
        let sim = Simulator::start(spec).await.expect("simulator");
        let bmcs = sim.bmcs();
        let shard = testenv::unique_name(prefix);
        let mut h = Harness {
            client,
            ns: ns.name,
            shard,
            sim,
            bmcs,
            servers: Vec::new(),
        };
        for i in 0..opts.count {
            let s = h.create_server(i).await;
            h.servers.push(s);
        }
        h
    }

    /// Controller configuration scoped to this harness's servers.
    pub fn config(&self) -> Config {
        let mut c = Config::for_tests();
        c.server_selector = Some(format!("{SHARD_LABEL}={}", self.shard));
        c.boot_token_secret.0 = self.ns.clone();
        c
    }

    /// Opens the server's boot window as a recorded network-boot power-on does (for tests that
    /// fetch boot scripts themselves instead of letting the simulated firmware boot).
    pub async fn open_boot_window(&self, name: &str) {
        let mut conditions = Vec::new();
        api::bootwindow::open(
            &mut conditions,
            "test: recorded power-on",
            None,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        );
        Api::<Server>::all(self.client.clone())
            .patch_status(
                name,
                &PatchParams::apply("test-power-on").force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": name },
                    "status": { "conditions": conditions },
                })),
            )
            .await
            .expect("open boot window");
    }

    /// Starts the controller in-process.
    pub async fn start(&self, config: Config) -> Handle {
        let metrics = runtime::metrics::Metrics::new();
        metal_provisioning::start(self.client.clone(), config, &metrics, None)
            .await
            .expect("start provisioning")
    }

    async fn create_server(&self, i: usize) -> TestServer {
        let b = &self.bmcs[i];
        let sys = &b.systems[0];
        let base = format!("{}-{i}", self.shard);
        let secrets: Api<api::bmcsecret::BMCSecret> = Api::all(self.client.clone());
        let secret: api::bmcsecret::BMCSecret = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "BMCSecret",
            "metadata": { "name": format!("{base}-bmc") },
            "stringData": {
                "username": b.username, "password": b.password,
                "ca.crt": b.ca_pem.clone().unwrap_or_default(),
            }
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("bmcsecret");
        let bmcs: Api<api::bmc::BMC> = Api::all(self.client.clone());
        let bmc: api::bmc::BMC = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "BMC",
            "metadata": { "name": format!("{base}-bmc") },
            "spec": {
                "access": { "ip": b.ip.to_string() },
                "bmcSecretRef": { "name": format!("{base}-bmc") },
                "protocol": { "name": "Redfish", "port": b.port, "scheme": "https" },
            }
        }))
        .unwrap();
        bmcs.create(&PostParams::default(), &bmc)
            .await
            .expect("bmc");
        let name = format!("{base}-srv");
        let server: Server = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "Server",
            "metadata": { "name": name, "labels": { SHARD_LABEL: self.shard } },
            "spec": {
                "systemUUID": sys.uuid.clone().unwrap_or_default().to_lowercase(),
                "systemURI": sys.path,
                "bmcRef": { "name": format!("{base}-bmc") },
            }
        }))
        .unwrap();
        let api: Api<Server> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &server)
            .await
            .expect("server");
        let nics: Vec<Value> = sys
            .macs
            .iter()
            .enumerate()
            .map(|(n, m)| json!({ "name": format!("eth{n}"), "macAddress": m.to_lowercase() }))
            .collect();
        api.patch_status(
            &name,
            &PatchParams::apply(DISCOVERY).force(),
            &Patch::Apply(json!({
                "apiVersion": api::API_VERSION, "kind": "Server",
                "metadata": { "name": name },
                "status": { "state": "Available", "networkInterfaces": nics },
            })),
        )
        .await
        .expect("server status");
        TestServer {
            name,
            bmc: i,
            system: sys.id.clone(),
            uuid: sys.uuid.clone().unwrap_or_default().to_lowercase(),
            macs: sys.macs.iter().map(|m| m.to_lowercase()).collect(),
        }
    }

    /// Sets IPs on a server's first NIC (as the in-band discovery would).
    pub async fn set_ips(&self, s: &TestServer, ips: &[&str]) {
        let nics: Vec<Value> = s
            .macs
            .iter()
            .enumerate()
            .map(|(n, m)| {
                let mut v = json!({ "name": format!("eth{n}"), "macAddress": m });
                if n == 0 {
                    v["ips"] = json!(ips);
                }
                v
            })
            .collect();
        Api::<Server>::all(self.client.clone())
            .patch_status(
                &s.name,
                &PatchParams::apply(DISCOVERY).force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": s.name },
                    "status": { "state": "Available", "networkInterfaces": nics },
                })),
            )
            .await
            .expect("ips");
    }

    /// The current Server object.
    pub async fn server(&self, name: &str) -> Server {
        Api::<Server>::all(self.client.clone())
            .get(name)
            .await
            .expect("get server")
    }

    /// The current claim, if it exists.
    pub async fn claim(&self, name: &str) -> Option<ServerClaim> {
        Api::<ServerClaim>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .expect("get claim")
    }

    /// Writes `status.state` (as the owning controller would).
    pub async fn set_state(&self, name: &str, state: &str) {
        let manager = match state {
            "Reserved" | "Released" => RESERVATION,
            "Maintenance" | "Parked" => "metal-maintenance",
            _ => DISCOVERY,
        };
        Api::<Server>::all(self.client.clone())
            .patch_status(
                name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": name },
                    "status": { "state": state },
                })),
            )
            .await
            .expect("set state");
    }

    /// Creates an ignition Secret.
    pub async fn ignition_secret(&self, name: &str, ignition: &str) {
        let s: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name },
            "stringData": { "ignition": ignition },
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &s)
            .await
            .expect("ignition secret");
    }

    /// Plays reservation: creates a claim (with reservation's finalizer) and its boot
    /// configuration (`boot` is the SBC spec minus serverRef), then binds the server
    /// (`spec.serverClaimRef` and `status.state: Reserved`).
    pub async fn bind(&self, s: &TestServer, claim: &str, power: &str, boot: Value) {
        let claims: Api<ServerClaim> = Api::namespaced(self.client.clone(), &self.ns);
        let c: ServerClaim = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "ServerClaim",
            "metadata": { "name": claim, "finalizers": ["metal.ironcore.dev/serverclaim"] },
            "spec": { "power": power, "serverRef": { "name": s.name }, "image": "ghcr.io/example/os:1" },
        }))
        .unwrap();
        let c = claims
            .create(&PostParams::default(), &c)
            .await
            .expect("claim");
        let mut spec = boot;
        spec["serverRef"] = json!({ "name": s.name });
        let sbc: ServerBootConfiguration = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "ServerBootConfiguration",
            "metadata": {
                "name": claim,
                "ownerReferences": [{
                    "apiVersion": api::API_VERSION, "kind": "ServerClaim", "name": claim,
                    "uid": c.metadata.uid, "controller": true,
                }],
            },
            "spec": spec,
        }))
        .unwrap();
        Api::<ServerBootConfiguration>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &sbc)
            .await
            .expect("sbc");
        self.bind_only(s, claim).await;
    }

    /// Plays reservation's binding of an existing claim.
    pub async fn bind_only(&self, s: &TestServer, claim: &str) {
        Api::<Server>::all(self.client.clone())
            .patch(
                &s.name,
                &PatchParams::apply(RESERVATION).force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": s.name },
                    "spec": { "serverClaimRef": { "namespace": self.ns, "name": claim } },
                })),
            )
            .await
            .expect("bind");
        self.set_state(&s.name, "Reserved").await;
    }

    /// Deletes a claim (reservation's finalizer keeps it while the server is released).
    pub async fn delete_claim(&self, claim: &str) {
        Api::<ServerClaim>::namespaced(self.client.clone(), &self.ns)
            .delete(claim, &DeleteParams::default())
            .await
            .expect("delete claim");
    }

    /// Plays reservation's release once the claim says PoweredOff=True: Recycle the server
    /// (clear claimRef, Available), delete the SBC, drop the finalizer.
    pub async fn finish_release(&self, s: &TestServer, claim: &str) {
        let api: Api<Server> = Api::all(self.client.clone());
        api.patch(
            &s.name,
            &PatchParams::apply(RESERVATION).force(),
            &Patch::Apply(json!({
                "apiVersion": api::API_VERSION, "kind": "Server",
                "metadata": { "name": s.name },
                "spec": {},
            })),
        )
        .await
        .expect("clear claim ref");
        self.set_state(&s.name, "Available").await;
        let _ = Api::<ServerBootConfiguration>::namespaced(self.client.clone(), &self.ns)
            .delete(claim, &DeleteParams::default())
            .await;
        let _ = Api::<ServerClaim>::namespaced(self.client.clone(), &self.ns)
            .patch(
                claim,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
            )
            .await;
    }

    /// Condition of a claim: (status, reason, message).
    pub async fn claim_condition(
        &self,
        claim: &str,
        type_: &str,
    ) -> Option<(String, String, String)> {
        let c = self.claim(claim).await?;
        let st = c.status?;
        api::conditions::get(&st.conditions, type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }

    /// Condition of a server.
    pub async fn server_condition(
        &self,
        name: &str,
        type_: &str,
    ) -> Option<api::conditions::ConditionStatus> {
        let s = self.server(name).await;
        api::conditions::status(&s.status?.conditions, type_)
    }

    /// Sim system state of a test server.
    pub fn system(&self, s: &TestServer) -> metal_bmc_sim::SystemState {
        self.sim
            .system_state(s.bmc, &s.system)
            .expect("system state")
    }

    /// Number of requests `METHOD path` a server's BMC received.
    pub fn count(&self, s: &TestServer, method: &str, path: &str) -> u64 {
        self.sim
            .request_counts(s.bmc)
            .expect("counts")
            .get(method, path)
    }

    /// `POST .../Actions/ComputerSystem.Reset` requests of a server's BMC.
    pub fn resets(&self, s: &TestServer) -> u64 {
        self.count(
            s,
            "POST",
            &format!("{}/Actions/ComputerSystem.Reset", self.system_path(s)),
        )
    }

    /// A Redfish client for a server's BMC (for assertions).
    pub fn redfish(&self, s: &TestServer) -> redfish::Client {
        let b = &self.bmcs[s.bmc];
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

    /// The Redfish path of a server's system.
    pub fn system_path(&self, s: &TestServer) -> String {
        self.bmcs[s.bmc].systems[0].path.clone()
    }

    /// Sets an annotation on a server.
    pub async fn annotate(&self, name: &str, key: &str, value: &str) {
        Api::<Server>::all(self.client.clone())
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
            )
            .await
            .expect("annotate");
    }

    /// Waits until the Server's `status.powerState` reads `want` (as reservation requires
    /// `Off` before binding).
    pub async fn wait_status_power(&self, name: &str, want: &str, timeout: Duration) {
        eventually(
            timeout,
            &format!("{name} status.powerState {want}"),
            || async {
                let s = self.server(name).await;
                (s.status
                    .and_then(|st| st.power_state)
                    .map(|p| p.to_string())
                    .as_deref()
                    == Some(want))
                .then_some(())
            },
        )
        .await;
    }

    /// Waits until the sim reports the server's power state.
    pub async fn wait_power(
        &self,
        s: &TestServer,
        want: metal_bmc_sim::PowerState,
        timeout: Duration,
    ) {
        eventually(timeout, &format!("{} power {want:?}", s.name), || async {
            (self.system(s).power_state == want).then_some(())
        })
        .await;
    }
}

/// Network boot configuration with plain artifacts and an ignition Secret.
pub fn network_boot(ignition_secret: Option<&str>) -> Value {
    let mut v = json!({
        "bootArtifacts": {
            "kernelURL": "http://images.example.test/vmlinuz",
            "initrdURL": "http://images.example.test/initrd",
            "rootImageURL": "http://images.example.test/root.squashfs",
            "cmdline": "gl.url=${rootfs-url} console=ttyS0",
        }
    });
    if let Some(s) = ignition_secret {
        v["ignitionSecretRef"] = json!({ "name": s });
    }
    v
}

/// Serves `body` for every GET (a stand-in image server); returns its base URL.
pub async fn static_server(body: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(body),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A plain HTTP GET from a chosen local address (the metadata service identifies callers by
/// source IP): returns status and body.
/// The boot token a script carries (`metal.boot-token=` on its kernel command line).
pub fn token_of(script: &str) -> String {
    let at = script
        .find("metal.boot-token=")
        .unwrap_or_else(|| panic!("no boot token in {script}"));
    script[at + "metal.boot-token=".len()..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

pub async fn get(
    url: &str,
    from: Option<std::net::IpAddr>,
    headers: &[(&str, &str)],
) -> (u16, String, BTreeMap<String, String>) {
    let u = url::Url::parse(url).unwrap();
    let addr: SocketAddr = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let stream = socket.connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path = format!("{path}?{q}");
    }
    let mut req = hyper::Request::get(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let hdrs = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), hdrs)
}
