//! End-to-end harness: the built controller binaries run as processes against the real test
//! control plane, each with the RBAC from `kustomize/<controller>` (bound to its own
//! ServiceAccount in a per-test namespace and used through impersonation), against a simulated
//! rack from `metal-bmc-sim`.
//!
//! Every test gets a [`Site`]: a namespace for the controllers (leases, manager namespace,
//! ServiceAccounts), a run label `e2e-run=<id>` that scopes every controller to the test's own
//! cluster-scoped objects, and kubeconfigs that act as each controller's ServiceAccount.

pub mod oci;

use api::server::Server;
use api::serverclaim::ServerClaim;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The controllers run as processes.
pub const CONTROLLERS: &[&str] = &["discovery", "reservation", "provisioning", "maintenance"];

/// Path of a workspace binary built next to this test binary (`cargo test --workspace` builds
/// every binary of the workspace).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // Test binaries live in target/<profile>/deps, examples in target/<profile>/examples, tools
    // such as xtask in target/<profile>.
    let dir = exe.parent().expect("exe directory");
    let dir = if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    };
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (see [`testenv::unused_port`]).
pub fn free_port() -> u16 {
    testenv::unused_port()
}

pub use testenv::eventually;

/// One test's slice of the cluster.
pub struct Site {
    /// Admin client (the test's own view).
    pub client: kube::Client,
    /// Namespace of the controllers (ServiceAccounts, leases, internal objects, claims).
    pub ns: String,
    /// Value of the `e2e-run` label on every cluster-scoped object of the test.
    pub run: String,
    /// Logs and kubeconfigs.
    pub dir: tempfile::TempDir,
    kubeconfigs: BTreeMap<String, PathBuf>,
}

impl Site {
    /// Creates the namespace, installs each controller's RBAC from kustomize, and writes a
    /// kubeconfig per controller that acts as its ServiceAccount.
    pub async fn new(prefix: &str) -> Self {
        let (client, ns) = testenv::setup(prefix).await;
        let dir = tempfile::Builder::new()
            .prefix(&format!("metal-e2e-{prefix}-"))
            .tempdir()
            .expect("tempdir");
        let admin: Value = serde_yaml::from_str(
            &std::fs::read_to_string(testenv::shared().kubeconfig()).expect("kubeconfig"),
        )
        .expect("kubeconfig yaml");
        let mut kubeconfigs = BTreeMap::new();
        for c in CONTROLLERS {
            let sa = install_rbac(&client, &ns.name, c).await;
            let mut kc = admin.clone();
            kc["users"][0]["user"]["as"] = json!(format!("system:serviceaccount:{}:{sa}", ns.name));
            kc["users"][0]["user"]["as-groups"] = json!([
                "system:serviceaccounts",
                format!("system:serviceaccounts:{}", ns.name),
                "system:authenticated"
            ]);
            let path = dir.path().join(format!("{c}.kubeconfig"));
            std::fs::write(&path, serde_yaml::to_string(&kc).expect("yaml")).expect("write");
            kubeconfigs.insert(c.to_string(), path);
        }
        Self {
            client,
            run: ns.name.clone(),
            ns: ns.name,
            dir,
            kubeconfigs,
        }
    }

    /// The label selector that scopes the controllers to this test.
    pub fn selector(&self) -> String {
        format!("e2e-run={}", self.run)
    }

    /// Labels for this test's cluster-scoped objects.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [("e2e-run".to_string(), self.run.clone())].into()
    }

    /// The kubeconfig that acts as `controller`'s ServiceAccount.
    pub fn kubeconfig(&self, controller: &str) -> &Path {
        &self.kubeconfigs[controller]
    }
}

/// Rewrites a kustomize RBAC document for namespace `ns`: namespaced objects move into it and
/// cluster-scoped ones get a per-namespace name, so parallel tests do not share bindings.
pub fn rewrite_rbac(mut doc: Value, ns: &str) -> Value {
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "ClusterRole" | "ClusterRoleBinding" => {
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            doc["metadata"]["name"] = json!(format!("{name}-{ns}"));
        }
        _ => doc["metadata"]["namespace"] = json!(ns),
    }
    if doc["roleRef"]["kind"] == "ClusterRole" {
        let name = doc["roleRef"]["name"].as_str().unwrap_or_default();
        doc["roleRef"]["name"] = json!(format!("{name}-{ns}"));
    }
    if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            if s["kind"] == "ServiceAccount" {
                s["namespace"] = json!(ns);
            }
        }
    }
    doc
}

async fn apply<K>(api: Api<K>, doc: &Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = doc["metadata"]["name"].as_str().expect("name");
    api.patch(
        name,
        &PatchParams::apply("metal-e2e").force(),
        &Patch::Apply(doc),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {} {name}: {e}", doc["kind"]));
}

/// Applies `kustomize/<controller>`'s ServiceAccount and RBAC into `ns`; returns the
/// ServiceAccount name.
pub async fn install_rbac(client: &kube::Client, ns: &str, controller: &str) -> String {
    let dir = testenv::repo_root().join("kustomize").join(controller);
    let mut sa_name = None;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for d in serde_yaml::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(d).expect("yaml");
            if doc.is_null() {
                continue;
            }
            let doc = rewrite_rbac(doc, ns);
            match doc["kind"].as_str().unwrap_or_default() {
                "ServiceAccount" => {
                    sa_name = doc["metadata"]["name"].as_str().map(str::to_string);
                    apply::<ServiceAccount>(Api::namespaced(client.clone(), ns), &doc).await;
                }
                "ClusterRole" => apply::<ClusterRole>(Api::all(client.clone()), &doc).await,
                "ClusterRoleBinding" => {
                    apply::<ClusterRoleBinding>(Api::all(client.clone()), &doc).await
                }
                "Role" => apply::<Role>(Api::namespaced(client.clone(), ns), &doc).await,
                "RoleBinding" => {
                    apply::<RoleBinding>(Api::namespaced(client.clone(), ns), &doc).await
                }
                _ => {}
            }
        }
    }
    sa_name.unwrap_or_else(|| panic!("kustomize/{controller} has no ServiceAccount"))
}

/// A controller binary running as a process.
pub struct Process {
    /// Short name (`discovery`, ...).
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    kubeconfig: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    reaper: Option<Child>,
    starts: u32,
    /// The admin address (`/metrics`, `/healthz`, `/readyz`).
    pub admin: String,
}

impl Process {
    /// Starts `metal-<name>` with `args` (plus `--kubeconfig` and `--admin-addr`).
    pub fn start(site: &Site, name: &str, args: Vec<String>) -> Self {
        let admin = format!("127.0.0.1:{}", free_port());
        let mut p = Self {
            name: name.to_string(),
            bin: binary(&format!("metal-{name}")),
            args,
            kubeconfig: site.kubeconfig(name).to_path_buf(),
            log: site.dir.path().join(format!("{name}.log")),
            child: None,
            reaper: None,
            starts: 0,
            admin,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--admin-addr={}", self.admin))
            .args(&self.args)
            .env(
                "METAL_LOG",
                std::env::var("METAL_E2E_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("POD_NAME", format!("{}-{}", self.name, self.starts))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        // Never outlive the test binary, even if it is killed.
        let reaper = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null && kill -0 {} 2>/dev/null; do sleep 0.5; done; kill -9 {} 2>/dev/null",
                std::process::id(),
                child.id(),
                child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        self.starts += 1;
        self.child = Some(child);
        self.reaper = reaper;
    }

    /// SIGKILL: no shutdown, no lease release.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut r) = self.reaper.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }

    /// Replaces the arguments the next start uses.
    pub fn set_args(&mut self, args: Vec<String>) {
        self.args = args;
    }

    /// Kills and starts again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The process's whole log (every start of it).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// GETs a path of the admin server.
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        Some((head.get(9..12)?.parse().ok()?, body.to_string()))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log tail ---\n{}", self.name, self.log_tail(150));
        }
        self.kill();
    }
}

/// A simulated rack wired to the test's controllers: the simulator (with network-boot firmware
/// pointed at provisioning's boot server), an image registry, and BMC objects for every
/// simulated BMC.
pub struct Rack {
    /// The simulator.
    pub sim: metal_bmc_sim::SimHandle,
    /// What each system's firmware fetched on network boots.
    pub firmware: metal_bmc_sim::NetbootFirmware,
    /// OS images for claims and the discovery boot.
    pub images: oci::ImageRegistry,
    /// PEM file of the simulator's CA (passed to the controllers as `--bmc-ca-file`).
    pub ca_file: PathBuf,
    /// Provisioning's boot server URL (as a DHCP option would tell the firmware).
    pub boot_server: String,
    /// Address provisioning's boot server binds.
    pub boot_addr: String,
    /// Names of the BMC objects, by simulator index.
    pub bmc_names: Vec<String>,
    /// Port of discovery's probe registry (the discovery and the cleaning agents report there).
    pub registry_port: u16,
    /// The TLS of the boot server and the registry (a test CA; the firmware trusts it), when
    /// the rack was started with [`Rack::start_https`].
    pub tls: Option<testenv::tls::TlsFiles>,
}

/// Default-template groups of `count` BMCs with one system each.
pub fn default_group(count: usize) -> metal_bmc_sim::GroupSpec {
    metal_bmc_sim::GroupSpec {
        count,
        template: metal_bmc_sim::TemplateSource::Builtin("default".into()),
        systems: None,
        username: "admin".into(),
        password: Some("e2e-password".into()),
        knobs: metal_bmc_sim::Knobs {
            power_delay_ms: 100,
            ..Default::default()
        },
    }
}

/// The shared real vendor trees (`../shared/fixtures/redfish`), when present.
pub fn shared_tree(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("METAL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| testenv::repo_root().join("../shared"))
        .join("fixtures/redfish")
        .join(name);
    dir.is_dir().then_some(dir)
}

impl Rack {
    /// Starts the simulator on `base` (a `127.X.Y.1` range of the test's own) and the image
    /// registry, and creates a BMCSecret and a BMC (labelled for the site) per simulated BMC.
    pub async fn start(site: &Site, base: &str, groups: Vec<metal_bmc_sim::GroupSpec>) -> Self {
        let rack = Self::start_unregistered(site, base, groups).await;
        for i in 0..rack.bmc_names.len() {
            rack.register(site, i).await;
        }
        rack
    }

    /// Creates the BMCSecret and BMC objects of simulated BMC `index` (server-side apply, so a
    /// second call changes nothing): tests that onboard BMCs one at a time call it per round.
    pub async fn register(&self, site: &Site, index: usize) {
        let b = self.sim.bmc(index).expect("simulated BMC");
        let name = &self.bmc_names[index];
        let labels = site.labels();
        let pp = PatchParams::apply("metal-e2e").force();
        let secret = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret",
            "metadata": { "name": name, "labels": labels },
            "stringData": { "username": b.username, "password": b.password },
        });
        let secrets: Api<api::bmcsecret::BMCSecret> = Api::all(site.client.clone());
        secrets
            .patch(name, &pp, &Patch::Apply(&secret))
            .await
            .expect("BMCSecret");
        let bmc = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "access": { "ip": b.ip.to_string() },
                "bmcSecretRef": { "name": name },
                "protocol": { "name": "Redfish", "port": b.port, "scheme": "https" },
            },
        });
        let bmcs: Api<api::bmc::BMC> = Api::all(site.client.clone());
        bmcs.patch(name, &pp, &Patch::Apply(&bmc))
            .await
            .expect("BMC");
    }

    /// `https` when the rack's boot server and registry serve TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Like [`Rack::start`], with the boot server and the registry on HTTPS: a test CA signs
    /// their loopback certificate, and the simulated firmware trusts only that CA.
    pub async fn start_https(
        site: &Site,
        base: &str,
        groups: Vec<metal_bmc_sim::GroupSpec>,
    ) -> Self {
        let dir = site.dir.path().join("boot-tls");
        std::fs::create_dir_all(&dir).expect("tls dir");
        let tls = testenv::tls::loopback_tls(&dir);
        let rack = Self::start_with(site, base, groups, Some(tls)).await;
        for i in 0..rack.bmc_names.len() {
            rack.register(site, i).await;
        }
        rack
    }

    /// Like [`Rack::start`], but creates no objects: [`Rack::register`] adds each BMC.
    pub async fn start_unregistered(
        site: &Site,
        base: &str,
        groups: Vec<metal_bmc_sim::GroupSpec>,
    ) -> Self {
        Self::start_with(site, base, groups, None).await
    }

    async fn start_with(
        site: &Site,
        base: &str,
        groups: Vec<metal_bmc_sim::GroupSpec>,
        tls: Option<testenv::tls::TlsFiles>,
    ) -> Self {
        let boot_port = free_port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let boot_server = format!("{scheme}://127.0.0.1:{boot_port}");
        let firmware = match &tls {
            Some(t) => metal_bmc_sim::NetbootFirmware::new()
                .trusting(&t.ca_pem)
                .expect("firmware CA"),
            None => metal_bmc_sim::NetbootFirmware::new(),
        };
        let mut spec = metal_bmc_sim::RackSpec::with_count(0);
        spec.base_address = base.parse().expect("base address");
        spec.port = 0;
        spec.tls = true;
        spec.groups = groups;
        spec.boot_server = Some(boot_server.clone());
        spec.boot_hook = Some(std::sync::Arc::new(firmware.clone()));
        let sim = metal_bmc_sim::Simulator::start(spec)
            .await
            .expect("simulator");
        let ca_file = site.dir.path().join("bmc-ca.pem");
        std::fs::write(&ca_file, sim.ca_pem().expect("simulator CA")).expect("write CA");
        let images =
            oci::ImageRegistry::start(&[("metal/demo-os", "1.0"), ("metal/probe-os", "1.0")])
                .await
                .expect("image registry");
        let bmc_names = sim
            .bmcs()
            .iter()
            .map(|b| format!("{}-bmc-{}", site.run, b.index))
            .collect();
        Self {
            sim,
            firmware,
            images,
            ca_file,
            boot_addr: format!("127.0.0.1:{boot_port}"),
            boot_server,
            bmc_names,
            registry_port: free_port(),
            tls,
        }
    }
}

/// Arguments shared by every controller of a site: leader election in the site's namespace with
/// a short lease (fast take-over after a kill in restart tests) and JSON-free text logs.
pub fn common_args(site: &Site) -> Vec<String> {
    vec![
        "--leader-elect".into(),
        format!("--lease-namespace={}", site.ns),
        "--lease-duration=3s".into(),
    ]
}

/// [`common_args`] plus automatic sharding: the controllers that talk to BMCs run sharded in
/// every flow (one replica holding all shards unless a test starts more), so the kill suites
/// exercise the shard hand-over path.
pub fn sharded_args(site: &Site) -> Vec<String> {
    let mut a = common_args(site);
    a.push("--shards=4".into());
    a
}

/// `metal-discovery` for the site and rack.
pub fn discovery_args(site: &Site, rack: &Rack, inspection: &str) -> Vec<String> {
    let registry = rack.registry_port;
    let mut a = sharded_args(site);
    a.extend([
        format!("--bmc-selector={}", site.selector()),
        format!("--manager-namespace={}", site.ns),
        format!("--registry-addr=127.0.0.1:{registry}"),
        format!("--registry-url={}://127.0.0.1:{registry}", rack.scheme()),
        format!(
            "--probe-os-image={}",
            rack.images.image("metal/probe-os", "1.0")
        ),
        format!("--bmc-ca-file={}", rack.ca_file.display()),
        format!("--inspection={inspection}"),
        "--poll-interval=1s".into(),
        "--bmc-refresh-interval=30s".into(),
    ]);
    if let Some(t) = &rack.tls {
        a.push(format!("--registry-tls-cert-file={}", t.cert.display()));
        a.push(format!("--registry-tls-key-file={}", t.key.display()));
        let ca = site.dir.path().join("boot-tls/ca.pem");
        std::fs::write(&ca, &t.ca_pem).expect("write CA");
        a.push(format!("--registry-ca-file={}", ca.display()));
    }
    a
}

/// `metal-reservation` for the site.
pub fn reservation_args(site: &Site) -> Vec<String> {
    let mut a = common_args(site);
    a.extend([
        format!("--server-selector={}", site.selector()),
        format!("--claim-namespace={}", site.ns),
    ]);
    a
}

/// `metal-provisioning` for the site and rack.
pub fn provisioning_args(site: &Site, rack: &Rack) -> Vec<String> {
    let mut a = sharded_args(site);
    a.extend([
        format!("--server-selector={}", site.selector()),
        format!("--boot-addr={}", rack.boot_addr),
        format!("--boot-server-url={}", rack.boot_server),
        format!("--metadata-addr=127.0.0.1:{}", free_port()),
        format!("--bmc-ca-file={}", rack.ca_file.display()),
        format!("--insecure-registry={}", rack.images.host),
        "--resync-interval=20s".into(),
        // A kill between recording a power-on and sending it leaves the server off until
        // this timeout retries the boot; the default (2m) outlasts the tests' waits.
        "--power-confirm-timeout=20s".into(),
    ]);
    if let Some(t) = &rack.tls {
        a.push(format!("--tls-cert-file={}", t.cert.display()));
        a.push(format!("--tls-key-file={}", t.key.display()));
    }
    a
}

/// `metal-maintenance` for the site and rack (maintenances requested in the site namespace).
pub fn maintenance_args(site: &Site, rack: &Rack) -> Vec<String> {
    let mut a = sharded_args(site);
    a.extend([
        format!("--server-selector={}", site.selector()),
        format!("--maintenance-namespace={}", site.ns),
        format!("--bmc-ca={}", rack.ca_file.display()),
        "--power-timeout=30s".into(),
        format!(
            "--cleaning-registry-url={}://127.0.0.1:{}",
            rack.scheme(),
            rack.registry_port
        ),
        format!(
            "--cleaning-agent-image={}",
            rack.images.image("metal/probe-os", "1.0")
        ),
    ]);
    if let Some(t) = &rack.tls {
        // The cleaning agent verifies the registry against the CA its ignition carries.
        let ca = site.dir.path().join("boot-tls/ca.pem");
        std::fs::write(&ca, &t.ca_pem).expect("write CA");
        a.push(format!("--cleaning-registry-ca-file={}", ca.display()));
    }
    a
}

/// Renders a kustomize directory with the kubectl built for the test control plane.
pub fn kustomize_build(dir: &Path) -> Result<String, String> {
    let kubectl = testenv::Binaries::locate()
        .map_err(|e| e.to_string())?
        .kubectl
        .ok_or("kubectl was not built")?;
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// How long the flows wait for one step.
pub const LONG: Duration = Duration::from_secs(120);

/// The test's Servers.
pub async fn servers(site: &Site) -> Vec<Server> {
    let api: Api<Server> = Api::all(site.client.clone());
    api.list(&ListParams::default().labels(&site.selector()))
        .await
        .expect("list servers")
        .items
}

/// A Server's state as text (empty when unset).
pub fn state(s: &Server) -> String {
    s.status
        .as_ref()
        .and_then(|st| st.state.as_ref())
        .map(|st| format!("{st:?}"))
        .unwrap_or_default()
}

/// Waits until there are `n` Servers, all in state `want`.
pub async fn wait_states(site: &Site, n: usize, want: &str, what: &str) -> Vec<Server> {
    eventually(what, LONG, async || {
        let all = servers(site).await;
        (all.len() == n && all.iter().all(|s| state(s) == want)).then_some(all)
    })
    .await
}

/// Creates an ignition Secret named `name` in the site's namespace.
pub async fn ignition_secret(site: &Site, name: &str) {
    let api: Api<Secret> = Api::namespaced(site.client.clone(), &site.ns);
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": name },
        "stringData": { "ignition": format!("{{\"ignition\":{{\"version\":\"3.4.0\"}},\"passwd\":{{\"users\":[{{\"name\":\"{name}\"}}]}}}}") },
    }))
    .expect("secret");
    api.create(&PostParams::default(), &s)
        .await
        .expect("ignition secret");
}

/// Creates an ignition Secret and a ServerClaim (power On, the demo image) for `selector`.
pub async fn claim(site: &Site, rack: &Rack, name: &str, selector: Value) -> ServerClaim {
    let api: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    let c: ServerClaim = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerClaim",
        "metadata": { "name": name },
        "spec": {
            "power": "On",
            "image": rack.images.image("metal/demo-os", "1.0"),
            "ignitionSecretRef": { "name": format!("{name}-ignition") },
            "serverSelector": selector,
        },
    }))
    .expect("claim");
    ignition_secret(site, &format!("{name}-ignition")).await;
    api.create(&PostParams::default(), &c)
        .await
        .expect("create claim")
}

/// Waits until claim `name` is Bound and returns its server's name.
pub async fn bound_server(site: &Site, name: &str) -> String {
    let api: Api<ServerClaim> = Api::namespaced(site.client.clone(), &site.ns);
    eventually(&format!("claim {name} bound"), LONG, async || {
        let c = api.get(name).await.ok()?;
        let phase = c.status.as_ref().and_then(|s| s.phase.as_ref())?;
        (format!("{phase:?}") == "Bound").then_some(())?;
        c.spec.server_ref.map(|r| r.name)
    })
    .await
}

/// `ComputerSystem.Reset` requests (power on, off, restart) the simulated BMC `bmc` received:
/// how the flows prove a power action was sent exactly once.
pub fn resets(rack: &Rack, bmc: usize) -> u64 {
    rack.sim
        .request_counts(bmc)
        .expect("counts")
        .by_request
        .iter()
        .filter(|(k, _)| k.starts_with("POST ") && k.ends_with("ComputerSystem.Reset"))
        .map(|(_, n)| *n)
        .sum()
}

/// (bmc index, system id, uuid, first MAC) of a Server, from the simulator.
pub fn sim_system(rack: &Rack, server: &Server) -> (usize, String, String, String) {
    let uuid = server.spec.system_uuid.to_lowercase();
    for b in rack.sim.bmcs() {
        for s in &b.systems {
            if s.uuid.as_deref().map(str::to_lowercase).as_deref() == Some(uuid.as_str()) {
                return (
                    b.index,
                    s.id.clone(),
                    uuid,
                    s.macs.first().cloned().unwrap_or_default(),
                );
            }
        }
    }
    panic!("server {uuid} not in the simulator");
}

/// Reads a Server.
pub async fn server_by_name(site: &Site, name: &str) -> Server {
    let api: Api<Server> = Api::all(site.client.clone());
    api.get(name).await.expect("server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_rewrite_scopes_names_and_namespaces() {
        let crb = rewrite_rbac(
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "metal-x"},
                   "roleRef": {"kind": "ClusterRole", "name": "metal-x"},
                   "subjects": [{"kind": "ServiceAccount", "name": "metal-x", "namespace": "metal-system"}]}),
            "t1",
        );
        assert_eq!(crb["metadata"]["name"], "metal-x-t1");
        assert_eq!(crb["roleRef"]["name"], "metal-x-t1");
        assert_eq!(crb["subjects"][0]["namespace"], "t1");
        let rb = rewrite_rbac(
            json!({"kind": "RoleBinding", "metadata": {"name": "le", "namespace": "metal-system"},
                   "roleRef": {"kind": "Role", "name": "le"}}),
            "t1",
        );
        assert_eq!(rb["metadata"]["namespace"], "t1");
        assert_eq!(rb["roleRef"]["name"], "le");
    }
}
