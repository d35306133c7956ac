//! A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback for
//! integration tests, end-to-end tests and the local bring-up.
//!
//! The binaries come from `$KUBEBUILDER_ASSETS` when set (the envtest convention), otherwise they
//! are built from Go modules by `e2e/scripts/build-control-plane.sh` and cached outside the
//! repository. With `USE_EXISTING_CLUSTER=true` the cluster of `$KUBECONFIG` is used instead.
//!
//! Tests share one control plane per test binary through [`shared`] and isolate themselves with a
//! namespace each ([`TestNamespace`]) or a unique name prefix for cluster-scoped kinds
//! ([`unique_name`]). Processes never outlive the test binary: a small reaper process watches the
//! parent and kills the control plane's process group when it is gone, even after a panic or a
//! `SIGKILL`.

pub mod bench;
mod pki;
pub mod tls;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why the control plane could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control-plane binary is missing or could not be built.
    #[error("control plane binaries unavailable: {0}")]
    Binaries(String),
    /// Generating certificates failed.
    #[error("generating certificates: {0}")]
    Pki(String),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A component did not become ready in time; the tail of its log is included.
    #[error("{component} not ready after {waited:?}; log tail:\n{log_tail}")]
    NotReady {
        /// Which component.
        component: String,
        /// How long we waited.
        waited: Duration,
        /// The last lines it logged.
        log_tail: String,
    },
    /// Talking to the API server failed.
    #[error("kubernetes: {0}")]
    Kube(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// A command running the cargo of this build (`$CARGO`), without the variables `cargo run` or
/// `cargo test` set for this process (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...): ring's build
/// script reruns when they change, so a cargo started with them rebuilt ring and everything
/// above it on each switch between a plain `cargo build` and one started from xtask or a bench
/// (45 s of a warm `cargo xtask up`, minutes of a release bench).
pub fn cargo_command() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Where the CRD manifests are read from: `$METAL_CRD_DIR`, else `kustomize/base/crd`.
pub fn crd_dir() -> PathBuf {
    std::env::var_os("METAL_CRD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("kustomize/base/crd"))
}

/// The repository root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Paths of the control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `etcd`
    pub etcd: PathBuf,
    /// `kube-apiserver`
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`, absent in plain envtest asset bundles (then no garbage collection).
    pub kube_controller_manager: Option<PathBuf>,
    /// `kubectl`, for users of the local bring-up.
    pub kubectl: Option<PathBuf>,
}

impl Binaries {
    /// Finds the binaries in `$KUBEBUILDER_ASSETS`, or builds them from Go modules (cached).
    pub fn locate() -> Result<Self, Error> {
        let dir = match std::env::var_os("KUBEBUILDER_ASSETS") {
            Some(dir) => PathBuf::from(dir),
            None => build_from_go_modules()?,
        };
        let required = |name: &str| -> Result<PathBuf, Error> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Binaries(format!("{} not found", p.display())))
            }
        };
        let optional = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        Ok(Self {
            etcd: required("etcd")?,
            kube_apiserver: required("kube-apiserver")?,
            kube_controller_manager: optional("kube-controller-manager"),
            kubectl: optional("kubectl"),
        })
    }
}

fn build_from_go_modules() -> Result<PathBuf, Error> {
    let script = repo_root().join("e2e/scripts/build-control-plane.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(io_err(format!("running {}", script.display())))?;
    if !out.status.success() {
        return Err(Error::Binaries(format!(
            "{} failed with {}",
            script.display(),
            out.status
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .last()
        .ok_or_else(|| Error::Binaries("build script printed no directory".into()))?;
    Ok(PathBuf::from(dir.trim()))
}

/// Options for [`ControlPlane::start`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Install the CRDs found in this directory (all `*.yaml` files but `kustomization.yaml`).
    pub crd_dir: Option<PathBuf>,
    /// Start kube-controller-manager (garbage collection, namespace deletion).
    pub controller_manager: bool,
    /// How long each component may take to become ready.
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            crd_dir: Some(crd_dir()),
            controller_manager: true,
            ready_timeout: Duration::from_secs(90),
        }
    }
}

/// A running control plane (or an existing cluster). Dropping it stops the processes.
pub struct ControlPlane {
    kubeconfig: PathBuf,
    dir: Option<tempfile::TempDir>,
    processes: std::sync::Mutex<Vec<(String, Child)>>,
    /// How each process was started (program, arguments, process group, log directory), so a
    /// fault test can restart one.
    commands: Vec<(String, Spawned)>,
    reaper: Option<Child>,
    binaries: Option<Binaries>,
    started_in: Duration,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("kubeconfig", &self.kubeconfig)
            .field("processes", &self.commands.len())
            .finish()
    }
}

/// How a control-plane process was started.
#[derive(Debug, Clone)]
struct Spawned {
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    pgid: Option<u32>,
    dir: PathBuf,
}

/// Starts `cmd` with its output appended to `<dir>/<name>.log` (a restart keeps the log).
fn spawn_logged(
    name: &str,
    cmd: &mut Command,
    dir: &Path,
    pgid: Option<u32>,
) -> Result<Child, Error> {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .map_err(io_err(format!("opening {name}.log")))?;
    let log2 = log.try_clone().map_err(io_err("cloning log handle"))?;
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(pgid.map_or(0, |p| p as i32));
    cmd.spawn().map_err(io_err(format!("starting {name}")))
}

fn free_port() -> Result<u16, Error> {
    Ok(unused_port())
}

/// A port on 127.0.0.1 that is free now and stays free until a process we start binds it.
///
/// Not `bind(:0)`: that hands out a port of the kernel's ephemeral range, which any outgoing
/// connection (a controller's to the API server, say) may take as its source port before the
/// process we pass it to binds it; under load that failed a test with "Address already in use".
/// Ports below the ephemeral range are never taken that way, and a process-wide cursor (offset
/// by the process id, for concurrent test binaries) keeps this process from handing one out twice.
pub fn unused_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let floor = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u32, floor.clamp(11_000, 65_535));
    let span = high - low;
    let offset = ((u64::from(std::process::id()) * 7919) % u64::from(span)) as u32;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (offset + n) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no unused port in {low}..{high}");
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn kubeconfig_yaml(server: &str, ca: &str, cert: &str, key: &str, user: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: metal-testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: metal-testenv\n  context:\n    cluster: metal-testenv\n    user: {user}\ncurrent-context: metal-testenv\n",
        ca = b64(ca),
        cert = b64(cert),
        key = b64(key),
    );
    s
}

/// Runs a future to completion on a private runtime in its own thread, so the synchronous start-up
/// works both inside and outside an async test. It runs without a tracing subscriber: start-up
/// failures come back as errors, and the expected ones while polling are not worth a log line.
fn block_on_thread<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a tokio runtime for the control plane start-up");
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            rt.block_on(f())
        })
    })
    .join()
    .expect("control plane start-up thread panicked")
}

impl ControlPlane {
    /// Starts a fresh control plane, or attaches to `$KUBECONFIG` when `USE_EXISTING_CLUSTER=true`.
    pub fn start(opts: Options) -> Result<Self, Error> {
        let started = Instant::now();
        if std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true" || v == "1") {
            let kubeconfig = std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
                .ok_or_else(|| Error::Kube("USE_EXISTING_CLUSTER set but no KUBECONFIG".into()))?;
            let mut cp = Self {
                kubeconfig,
                dir: None,
                processes: Default::default(),
                commands: vec![],
                reaper: None,
                binaries: None,
                started_in: Duration::ZERO,
            };
            cp.install_crds(&opts)?;
            cp.started_in = started.elapsed();
            return Ok(cp);
        }
        let binaries = Binaries::locate()?;
        let dir = tempfile::Builder::new()
            .prefix("metal-testenv-")
            .tempdir()
            .map_err(io_err("creating a temporary directory"))?;
        let d = dir.path().to_path_buf();
        let pki = pki::Pki::generate()?;
        let write = |name: &str, content: &str| -> Result<PathBuf, Error> {
            let p = d.join(name);
            std::fs::write(&p, content).map_err(io_err(format!("writing {}", p.display())))?;
            Ok(p)
        };
        let ca = write("ca.crt", &pki.ca_cert)?;
        let serving_cert = write("apiserver.crt", &pki.serving_cert)?;
        let serving_key = write("apiserver.key", &pki.serving_key)?;
        let sa_key = write("sa.key", &pki.sa_key)?;
        let sa_pub = write("sa.pub", &pki.sa_pub)?;

        let mut cp = Self {
            kubeconfig: d.join("kubeconfig"),
            dir: None,
            processes: Default::default(),
            commands: vec![],
            reaper: None,
            binaries: Some(binaries.clone()),
            started_in: Duration::ZERO,
        };

        // etcd, leader of the process group that the reaper kills.
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = cp.spawn(
            "etcd",
            Command::new(&binaries.etcd)
                .arg("--name=metal-testenv")
                .arg(format!("--data-dir={}", d.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=metal-testenv={peer_url}"))
                .arg("--unsafe-no-fsync=true")
                .arg("--quota-backend-bytes=8589934592")
                .arg("--log-level=warn"),
            &d,
            None,
        )?;
        let pgid = etcd;
        cp.reaper = Some(spawn_reaper(pgid, &d)?);
        cp.dir = Some(dir);
        wait_tcp(etcd_port, opts.ready_timeout).map_err(|waited| Error::NotReady {
            component: "etcd".into(),
            waited,
            log_tail: log_tail(&d.join("etcd.log")),
        })?;

        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        cp.spawn(
            "kube-apiserver",
            Command::new(&binaries.kube_apiserver)
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg(format!("--cert-dir={}", d.display()))
                .arg(format!("--secure-port={api_port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--tls-cert-file={}", serving_cert.display()))
                .arg(format!("--tls-private-key-file={}", serving_key.display()))
                .arg(format!("--client-ca-file={}", ca.display()))
                .arg(format!("--requestheader-client-ca-file={}", ca.display()))
                .arg("--requestheader-allowed-names=front-proxy-client")
                .arg(format!("--service-account-key-file={}", sa_pub.display()))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    sa_key.display()
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                .arg("--authorization-mode=RBAC")
                .arg("--allow-privileged=true")
                .arg("--endpoint-reconciler-type=none")
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg("--v=0"),
            &d,
            Some(pgid),
        )?;
        std::fs::write(
            &cp.kubeconfig,
            kubeconfig_yaml(
                &server,
                &pki.ca_cert,
                &pki.admin_cert,
                &pki.admin_key,
                "metal-testenv-admin",
            ),
        )
        .map_err(io_err("writing kubeconfig"))?;
        cp.wait_ready(opts.ready_timeout).map_err(|e| match e {
            Error::NotReady {
                component, waited, ..
            } => Error::NotReady {
                component,
                waited,
                log_tail: log_tail(&d.join("kube-apiserver.log")),
            },
            other => other,
        })?;

        if let Some(kcm) = binaries
            .kube_controller_manager
            .as_ref()
            .filter(|_| opts.controller_manager)
        {
            let kcm_kubeconfig = write(
                "kcm.kubeconfig",
                &kubeconfig_yaml(
                    &server,
                    &pki.ca_cert,
                    &pki.kcm_cert,
                    &pki.kcm_key,
                    "system:kube-controller-manager",
                ),
            )?;
            let kcm_port = free_port()?;
            cp.spawn(
                    "kube-controller-manager",
                    Command::new(kcm)
                        .arg(format!("--kubeconfig={}", kcm_kubeconfig.display()))
                        .arg(format!(
                            "--authentication-kubeconfig={}",
                            kcm_kubeconfig.display()
                        ))
                        .arg(format!(
                            "--authorization-kubeconfig={}",
                            kcm_kubeconfig.display()
                        ))
                        .arg("--leader-elect=false")
                        .arg(format!("--secure-port={kcm_port}"))
                        .arg("--bind-address=127.0.0.1")
                        .arg("--controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token")
                        .arg(format!(
                            "--service-account-private-key-file={}",
                            sa_key.display()
                        ))
                        .arg(format!("--root-ca-file={}", ca.display()))
                        .arg("--use-service-account-credentials=false")
                        .arg("--concurrent-gc-syncs=10")
                        .arg("--v=0"),
                    &d,
                    Some(pgid),
                )?;
        }
        cp.install_crds(&opts)?;
        cp.started_in = started.elapsed();
        Ok(cp)
    }

    fn spawn(
        &mut self,
        name: &str,
        cmd: &mut Command,
        dir: &Path,
        pgid: Option<u32>,
    ) -> Result<u32, Error> {
        let spawned = Spawned {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(|a| a.to_owned()).collect(),
            pgid,
            dir: dir.to_path_buf(),
        };
        let child = spawn_logged(name, cmd, dir, pgid)?;
        let pid = child.id();
        self.processes
            .get_mut()
            .expect("process list")
            .push((name.to_string(), child));
        self.commands.push((name.to_string(), spawned));
        Ok(pid)
    }

    /// SIGKILLs component `name` (`kube-apiserver`, `etcd`), leaves it down for `down_for`,
    /// starts it again as before, then waits until the API server is ready: the control-plane
    /// fault of the fault tests.
    pub fn restart(
        &self,
        name: &str,
        down_for: Duration,
        ready_timeout: Duration,
    ) -> Result<(), Error> {
        let (_, how) = self
            .commands
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Kube(format!("no component {name}")))?;
        {
            let mut procs = self.processes.lock().expect("process list");
            let i = procs
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| Error::Kube(format!("{name} is not running")))?;
            let (_, mut old) = procs.remove(i);
            let _ = old.kill();
            let _ = old.wait();
            std::thread::sleep(down_for);
            let mut cmd = Command::new(&how.program);
            cmd.args(&how.args);
            let child = spawn_logged(name, &mut cmd, &how.dir, how.pgid)?;
            procs.push((name.to_string(), child));
        }
        self.poll_ready(ready_timeout)
    }

    /// Polls `/readyz` until it answers `ok`, failing early if a process exits.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        self.poll_ready(timeout)
    }

    fn poll_ready(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < timeout {
            for (name, child) in self.processes.lock().expect("process list").iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(Error::NotReady {
                        component: format!("{name} (exited with {status})"),
                        waited: started.elapsed(),
                        log_tail: String::new(),
                    });
                }
            }
            let kubeconfig = self.kubeconfig.clone();
            // Refused connections and 500s are expected while the server starts; kube's trace
            // layer would log each at ERROR level, hence no subscriber in `block_on_thread`.
            let probe = block_on_thread(move || {
                Box::pin(async move {
                    let client = client_from(&kubeconfig).await?;
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| Error::Kube(e.to_string()))?;
                    client
                        .request_text(req)
                        .await
                        .map_err(|e| Error::Kube(e.to_string()))
                })
            });
            match probe {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::NotReady {
            component: "kube-apiserver".into(),
            waited: timeout,
            log_tail: last,
        })
    }

    fn install_crds(&self, opts: &Options) -> Result<(), Error> {
        let Some(dir) = opts.crd_dir.clone() else {
            return Ok(());
        };
        let crds = read_crds(&dir)?;
        if crds.is_empty() {
            return Ok(());
        }
        let kubeconfig = self.kubeconfig.clone();
        let timeout = opts.ready_timeout;
        block_on_thread(move || {
            Box::pin(async move {
                let client = client_from(&kubeconfig).await?;
                install_crds(&client, crds, timeout).await
            })
        })
    }

    /// The kubeconfig file to use with kubectl or a controller.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Where the binaries came from (`None` for an existing cluster).
    pub fn binaries(&self) -> Option<&Binaries> {
        self.binaries.as_ref()
    }

    /// How long the start took (binaries already built).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The directory holding logs and certificates (`None` for an existing cluster).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// A new client for the control plane, bound to the caller's tokio runtime.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig)
            .await
            .expect("building a client for the test control plane")
    }

    /// Stops all processes (also done on drop).
    pub fn stop(&mut self) {
        let procs = self.processes.get_mut().expect("process list");
        for (_, child) in procs.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        procs.clear();
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds a client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<kube::Client, Error> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| Error::Kube(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kube(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(config).map_err(|e| Error::Kube(e.to_string()))
}

fn read_crds(dir: &Path) -> Result<Vec<CustomResourceDefinition>, Error> {
    let mut crds = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(crds),
        Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    paths.sort();
    for p in paths {
        let text =
            std::fs::read_to_string(&p).map_err(io_err(format!("reading {}", p.display())))?;
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
            .map_err(|e| Error::Kube(format!("parsing {}: {e}", p.display())))?;
        crds.push(crd);
    }
    Ok(crds)
}

/// Applies CRDs with server-side apply and waits until each is established.
pub async fn install_crds(
    client: &kube::Client,
    crds: Vec<CustomResourceDefinition>,
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("metal-testenv").force();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &kube::api::Patch::Apply(crd))
            .await
            .map_err(|e| Error::Kube(format!("applying CRD {name}: {e}")))?;
    }
    let started = Instant::now();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let got = api
                .get(&name)
                .await
                .map_err(|e| Error::Kube(format!("reading CRD {name}: {e}")))?;
            let established = got
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if started.elapsed() > timeout {
                return Err(Error::NotReady {
                    component: format!("CRD {name}"),
                    waited: timeout,
                    log_tail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn wait_tcp(port: u16, timeout: Duration) -> Result<(), Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(timeout)
}

/// Starts a detached shell that kills the control plane's process group and removes its
/// directory once this process is gone, however it ended.
fn spawn_reaper(pgid: u32, dir: &Path) -> Result<Child, Error> {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
         kill -TERM -{pgid} 2>/dev/null; sleep 2; kill -KILL -{pgid} 2>/dev/null; \
         rm -rf '{dir}'",
        dir = dir.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(io_err("starting the reaper"))
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane shared by all tests of this test binary, started on first use.
///
/// Panics with the start-up error (including the failing component's log tail) if it cannot be
/// started: a test that needs Kubernetes must not silently pass without it.
pub fn shared() -> &'static ControlPlane {
    let cp = SHARED.get_or_init(|| {
        let cp = ControlPlane::start(Options::default()).map_err(|e| e.to_string())?;
        eprintln!(
            "metal-testenv: control plane ready in {:?} (KUBECONFIG={})",
            cp.started_in(),
            cp.kubeconfig().display()
        );
        Ok(cp)
    });
    match cp {
        Ok(cp) => cp,
        Err(e) => panic!("metal-testenv: {e}"),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name that is unique within this test binary and across binaries running at once.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::random();
    format!("{prefix}-{:x}-{n}", r & 0xfffff)
}

/// A namespace created for one test.
#[derive(Debug, Clone)]
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates a fresh namespace named after `prefix`.
    pub async fn create(client: &kube::Client, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(
                        [("metal.ironcore.dev/test".to_string(), "true".to_string())].into(),
                    ),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("creating a test namespace");
        Self { name }
    }
}

/// A client and a fresh namespace on the shared control plane: the usual start of a test.
pub async fn setup(prefix: &str) -> (kube::Client, TestNamespace) {
    let cp = shared();
    let client = cp.client().await;
    let ns = TestNamespace::create(&client, prefix).await;
    (client, ns)
}

/// Polls `f` every 200 ms until it returns `Some`, panicking with `what` after `timeout`: the
/// one way integration tests wait for controllers to converge.
pub async fn eventually<T>(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The YAML documents of `kustomize/<component>/<file>`, moved from `metal-system` into `ns`.
pub fn kustomize_manifests(component: &str, file: &str, ns: &str) -> Vec<serde_yaml::Value> {
    let path = repo_root().join("kustomize").join(component).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .replace("namespace: metal-system", &format!("namespace: {ns}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect()
}

/// Installs a component's ServiceAccount and RBAC exactly as its kustomize directory declares
/// them (in namespace `ns`), asserting least privilege (no wildcard verbs or resources), so that
/// a test can run the controller as that identity ([`impersonating_client`]). Returns what the
/// ClusterRole grants, one `resource: verb,verb` line per resource.
pub async fn install_component_rbac(
    client: &kube::Client,
    component: &str,
    ns: &str,
) -> Vec<String> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::api::{Api, PostParams};
    /// Creates `obj` through `api`, failing the test with `what`.
    async fn create<K>(api: Api<K>, obj: &K, what: &str)
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        api.create(&PostParams::default(), obj)
            .await
            .unwrap_or_else(|e| panic!("creating {what}: {e}"));
    }
    fn parse<K: serde::de::DeserializeOwned>(doc: serde_yaml::Value, what: &str) -> K {
        serde_yaml::from_value(doc).unwrap_or_else(|e| panic!("{what} yaml: {e}"))
    }
    let mut granted = Vec::new();
    for doc in kustomize_manifests(component, "serviceaccount.yaml", ns) {
        let sa: ServiceAccount = parse(doc, "service account");
        create(Api::namespaced(client.clone(), ns), &sa, "service account").await;
    }
    for doc in kustomize_manifests(component, "rbac.yaml", ns) {
        match doc["kind"].as_str().unwrap_or_default() {
            "ClusterRole" => {
                let r: ClusterRole = parse(doc, "cluster role");
                for rule in r.rules.iter().flatten() {
                    assert!(!rule.verbs.iter().any(|v| v == "*"), "no wildcard verbs");
                    assert!(
                        !rule.resources.iter().flatten().any(|v| v == "*"),
                        "no wildcard resources"
                    );
                    for res in rule.resources.iter().flatten() {
                        granted.push(format!("{res}: {}", rule.verbs.join(",")));
                    }
                }
                create(Api::all(client.clone()), &r, "cluster role").await;
            }
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = parse(doc, "cluster role binding");
                create(Api::all(client.clone()), &b, "cluster role binding").await;
            }
            "Role" => {
                let r: Role = parse(doc, "role");
                create(Api::namespaced(client.clone(), ns), &r, "role").await;
            }
            "RoleBinding" => {
                let b: RoleBinding = parse(doc, "role binding");
                create(Api::namespaced(client.clone(), ns), &b, "role binding").await;
            }
            other => panic!("unexpected kind {other} in kustomize/{component}/rbac.yaml"),
        }
    }
    granted
}

/// A client of the shared control plane acting as ServiceAccount `ns/sa`.
pub async fn impersonating_client(ns: &str, sa: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(shared().kubeconfig()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{sa}"));
    kube::Client::try_from(config).expect("client")
}
