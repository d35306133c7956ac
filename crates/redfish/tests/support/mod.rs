//! A small static Redfish server for tests: serves a DMTF mockup tree from disk (with an in-memory
//! overlay for writes), basic auth and sessions, `$expand`, generic action semantics (reset, virtual
//! media, SimpleUpdate with tasks, accounts, subscriptions), a request log, and fault knobs
//! (401/503/hang/slow/malformed/HTML/wrong type/truncated/large/redirect loop/reset).
//!
//! It runs on its own thread and runtime, so that tests can check that the client leaves nothing
//! running in its own runtime.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Where fixtures live.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The shared real trees (`METAL_SHARED_DIR`, default `../../../shared` from this crate), if present.
pub fn shared_trees_dir() -> Option<PathBuf> {
    let base = std::env::var_os("METAL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = base.join("fixtures/redfish");
    dir.is_dir().then_some(dir)
}

/// How a tree maps URLs to files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `redfish/v1/Systems/1/index.json` (DMTF mockup creator layout).
    Mockup,
    /// The tree root is the service root (`Systems/1/index.json` = `/redfish/v1/Systems/1`).
    Flat,
}

impl Layout {
    /// Guesses the layout of a tree directory.
    pub fn detect(dir: &Path) -> Layout {
        if dir.join("redfish/v1/index.json").is_file() {
            Layout::Mockup
        } else {
            Layout::Flat
        }
    }
}

/// A fault to inject on matching requests.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer with this status (and optional Retry-After seconds, optional body).
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: Option<String>,
    },
    /// Never answer.
    Hang,
    /// Serve the real body in small chunks with a delay between them.
    SlowBody { chunk: usize, delay: Duration },
    /// Invalid JSON.
    MalformedJson,
    /// An HTML error page with this status.
    HtmlPage { status: u16 },
    /// `text/plain`, not JSON.
    WrongContentType,
    /// Announce more bytes than are sent, then break the connection.
    Truncated,
    /// A valid JSON body of about this many bytes.
    Large { bytes: usize },
    /// Redirect to the same path forever.
    RedirectLoop,
    /// Redirect to another path.
    Redirect { to: String },
    /// Close the connection without an answer (RST).
    Reset,
    /// Wait this long, then answer normally.
    Delay { delay: Duration },
}

/// A fault rule: which requests, how often.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Path prefix; matched against the path without query unless it contains `?`; empty matches all.
    pub path_prefix: String,
    /// Only this method, if set.
    pub method: Option<Method>,
    /// What to do.
    pub kind: FaultKind,
    /// Apply this many times, then stop (None = forever).
    pub times: Option<usize>,
}

/// How the server authenticates.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    pub basic: bool,
    pub sessions: bool,
    pub max_sessions: Option<usize>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            username: "admin".into(),
            password: "p4ssw0rd-test".into(),
            basic: true,
            sessions: true,
            max_sessions: None,
        }
    }
}

/// How async operations behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStyle {
    /// 202 + Location: task URI (standard, Dell).
    Location,
    /// 202 with body `{"TaskMonitor": ...}` and no Location (HPE).
    BodyTaskMonitor,
    /// 202 with body `{"@odata.id": task}` and no Location (Lenovo).
    BodyOdataId,
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub auth: AuthConfig,
    pub tls: bool,
    pub honor_expand: bool,
    pub task_style: TaskStyle,
    /// Polls of a task before it finishes.
    pub task_polls: u32,
    /// Power transitions take effect after this long.
    pub power_delay: Duration,
    /// POST to these collection paths answers 405 (iDRAC accounts).
    pub post_405: Vec<String>,
    /// DELETE under these prefixes answers 405.
    pub delete_405: Vec<String>,
    /// Answer 412 to actions carrying If-Match (iDRAC SimpleUpdate).
    pub reject_if_match_on_actions: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            auth: AuthConfig::default(),
            tls: false,
            honor_expand: true,
            task_style: TaskStyle::Location,
            task_polls: 2,
            power_delay: Duration::ZERO,
            post_405: Vec::new(),
            delete_405: Vec::new(),
            reject_if_match_on_actions: false,
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub auth: &'static str,
    pub if_match: Option<String>,
}

struct TaskSim {
    polls: u32,
    fail: bool,
}

struct State {
    dir: PathBuf,
    layout: Layout,
    opts: Mutex<ServerOptions>,
    overlay: Mutex<HashMap<String, Value>>,
    deleted: Mutex<Vec<String>>,
    sessions: Mutex<HashMap<String, String>>,
    sessions_created: AtomicUsize,
    counter: AtomicUsize,
    log: Mutex<Vec<Logged>>,
    faults: Mutex<Vec<Fault>>,
    tasks: Mutex<HashMap<String, TaskSim>>,
    open_connections: AtomicUsize,
    total_connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running test server.
pub struct TreeServer {
    pub addr: SocketAddr,
    pub ca_pem: Option<String>,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TreeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Test CA and a leaf for 127.0.0.1 signed by it (rustls refuses a self-signed CA as end entity).
pub struct TestPki {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub leaf_key_pem: String,
}

pub fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "metal test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        leaf_pem: leaf.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

fn tls_acceptor(pki: &TestPki) -> tokio_rustls::TlsAcceptor {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pki.leaf_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut pki.leaf_key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

impl TreeServer {
    /// Serves a tree directory.
    pub fn start(dir: impl Into<PathBuf>, opts: ServerOptions) -> TreeServer {
        let dir = dir.into();
        assert!(dir.is_dir(), "tree {} missing", dir.display());
        let layout = Layout::detect(&dir);
        let tls = opts.tls;
        let state = Arc::new(State {
            dir,
            layout,
            opts: Mutex::new(opts),
            overlay: Mutex::new(HashMap::new()),
            deleted: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
            sessions_created: AtomicUsize::new(0),
            counter: AtomicUsize::new(100),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            tasks: Mutex::new(HashMap::new()),
            open_connections: AtomicUsize::new(0),
            total_connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let pki = tls.then(test_pki);
        let acceptor = pki.as_ref().map(tls_acceptor);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut rx => break,
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    };
                    // Keep a second handle on the socket so that the Reset fault can turn the close into
                    // an RST (SO_LINGER 0) for this connection only.
                    let std = tcp.into_std().unwrap();
                    let sock = socket2::Socket::from(std);
                    let ctl = Arc::new(sock.try_clone().unwrap());
                    let std: std::net::TcpStream = sock.into();
                    std.set_nonblocking(true).unwrap();
                    let tcp = tokio::net::TcpStream::from_std(std).unwrap();
                    let st = st.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        st.total_connections.fetch_add(1, Ordering::SeqCst);
                        st.open_connections.fetch_add(1, Ordering::SeqCst);
                        let svc = {
                            let st = st.clone();
                            service_fn(move |req| {
                                let st = st.clone();
                                let ctl = ctl.clone();
                                async move {
                                    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                                    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
                                    let r = handle(st.clone(), req, &ctl).await;
                                    st.in_flight.fetch_sub(1, Ordering::SeqCst);
                                    r
                                }
                            })
                        };
                        match acceptor {
                            Some(a) => {
                                if let Ok(tls) = a.accept(tcp).await {
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(tls), svc)
                                        .await;
                                }
                            }
                            None => {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(tcp), svc)
                                    .await;
                            }
                        }
                        st.open_connections.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        TreeServer {
            addr,
            ca_pem: pki.map(|p| p.ca_pem),
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:port` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Username and password the server accepts.
    pub fn credentials(&self) -> redfish::Credentials {
        let o = self.state.opts.lock().unwrap();
        redfish::Credentials::new(o.auth.username.clone(), o.auth.password.clone())
    }

    /// Adds a fault rule.
    pub fn fault(&self, path_prefix: &str, kind: FaultKind, times: Option<usize>) {
        self.state.faults.lock().unwrap().push(Fault {
            path_prefix: path_prefix.into(),
            method: None,
            kind,
            times,
        });
    }

    /// Adds a fault rule for one method.
    pub fn fault_method(
        &self,
        method: Method,
        path_prefix: &str,
        kind: FaultKind,
        times: Option<usize>,
    ) {
        self.state.faults.lock().unwrap().push(Fault {
            path_prefix: path_prefix.into(),
            method: Some(method),
            kind,
            times,
        });
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Requests seen so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Requests with this method whose path starts with the prefix.
    pub fn requests(&self, method: &Method, prefix: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.method == method && l.path.starts_with(prefix))
            .collect()
    }

    /// Invalidates every session token (as a BMC reboot would).
    pub fn expire_sessions(&self) {
        self.state.sessions.lock().unwrap().clear();
    }

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.state.sessions.lock().unwrap().len()
    }

    /// Sessions ever created.
    pub fn sessions_created(&self) -> usize {
        self.state.sessions_created.load(Ordering::SeqCst)
    }

    /// TCP connections currently open.
    pub fn open_connections(&self) -> usize {
        self.state.open_connections.load(Ordering::SeqCst)
    }

    /// TCP connections ever accepted.
    pub fn total_connections(&self) -> usize {
        self.state.total_connections.load(Ordering::SeqCst)
    }

    /// Most requests ever handled at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Current JSON of a resource (with overlay).
    pub fn resource(&self, path: &str) -> Option<Value> {
        self.state.load(&norm(path))
    }

    /// Replaces a resource.
    pub fn put_resource(&self, path: &str, v: Value) {
        self.state.overlay.lock().unwrap().insert(norm(path), v);
    }

    /// Changes options.
    pub fn with_options(&self, f: impl FnOnce(&mut ServerOptions)) {
        f(&mut self.state.opts.lock().unwrap());
    }
}

fn norm(path: &str) -> String {
    let p = path.split('?').next().unwrap_or_default();
    let p = percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .to_string();
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_owned()
    }
}

fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

impl State {
    fn file_for(&self, path: &str) -> Option<PathBuf> {
        let rel = match self.layout {
            Layout::Mockup => path.trim_start_matches('/').to_owned(),
            Layout::Flat => {
                let r = path
                    .trim_start_matches("/redfish/v1")
                    .trim_start_matches('/');
                if path != "/redfish/v1" && !path.starts_with("/redfish/v1/") {
                    return None;
                }
                r.to_owned()
            }
        };
        let base = self.dir.join(&rel);
        let idx = base.join("index.json");
        if idx.is_file() {
            return Some(idx);
        }
        if base.is_file() {
            return Some(base);
        }
        None
    }

    fn load(&self, path: &str) -> Option<Value> {
        if self.deleted.lock().unwrap().iter().any(|d| d == path) {
            return None;
        }
        if let Some(v) = self.overlay.lock().unwrap().get(path) {
            return Some(v.clone());
        }
        let f = self.file_for(path)?;
        let text = std::fs::read_to_string(f).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn store(&self, path: &str, v: Value) {
        self.overlay.lock().unwrap().insert(path.to_owned(), v);
    }

    fn expand(&self, v: &mut Value, levels: u32, key: &str) {
        if levels == 0 {
            return;
        }
        match v {
            Value::Object(m) => {
                let is_stub = m.len() == 1 && m.contains_key("@odata.id");
                if is_stub {
                    let id = m["@odata.id"].as_str().unwrap_or_default().to_owned();
                    if !id.contains('#')
                        && let Some(mut r) = self.load(&norm(&id))
                    {
                        self.expand(&mut r, levels - 1, "");
                        *v = r;
                    }
                    return;
                }
                for (k, child) in m.iter_mut() {
                    if k == "Links"
                        || k == "Actions"
                        || k == "Oem"
                        || k.starts_with('@')
                        || k.contains("@odata")
                        || key == "Links"
                    {
                        continue;
                    }
                    self.expand(child, levels, k);
                }
            }
            Value::Array(items) => {
                for i in items {
                    if let Value::Object(m) = i
                        && m.len() == 1
                        && m.contains_key("@odata.id")
                    {
                        self.expand(i, levels, key);
                    }
                }
            }
            _ => {}
        }
    }
}

fn full(status: StatusCode, v: &Value, headers: &[(&str, String)]) -> Response<Body> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    )
    .unwrap()
}

fn empty(status: StatusCode, headers: &[(&str, String)]) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
    .unwrap()
}

fn redfish_error(status: StatusCode, id: &str, msg: &str) -> Response<Body> {
    full(
        status,
        &json!({"error": {"code": "Base.1.8.GeneralError", "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{"MessageId": id, "Message": msg, "Severity": "Warning"}]}}),
        &[],
    )
}

fn auth_kind(state: &State, headers: &HeaderMap) -> (&'static str, bool) {
    let opts = state.opts.lock().unwrap().auth.clone();
    if let Some(t) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return ("token", state.sessions.lock().unwrap().contains_key(t));
    }
    if let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let expected = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", opts.username, opts.password));
        return ("basic", opts.basic && a == format!("Basic {expected}"));
    }
    ("none", false)
}

fn fault_response(
    kind: &FaultKind,
    path: &str,
    body: Option<Value>,
) -> Option<Result<Response<Body>, std::io::Error>> {
    Some(Ok(match kind {
        FaultKind::Status {
            status,
            retry_after,
            body,
        } => {
            let mut h = vec![];
            if let Some(r) = retry_after {
                h.push(("retry-after", r.to_string()));
            }
            let st = StatusCode::from_u16(*status).unwrap();
            match body {
                Some(b) => {
                    let mut r = empty(st, &h);
                    *r.body_mut() = Full::new(Bytes::from(b.clone()))
                        .map_err(|never| match never {})
                        .boxed();
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    r
                }
                None => {
                    let mut r = redfish_error(
                        st,
                        "Base.1.8.ServiceTemporarilyUnavailable",
                        "fault injected",
                    );
                    for (k, v) in h {
                        r.headers_mut().insert(k, v.parse().unwrap());
                    }
                    r
                }
            }
        }
        FaultKind::Hang => return None,
        FaultKind::SlowBody { chunk, delay } => {
            let data = body.unwrap_or(json!({})).to_string().into_bytes();
            let chunk = (*chunk).max(1);
            let delay = *delay;
            let chunks: Vec<Vec<u8>> = data.chunks(chunk).map(<[u8]>::to_vec).collect();
            let stream = futures::stream::unfold(chunks.into_iter(), move |mut it| async move {
                let next = it.next()?;
                tokio::time::sleep(delay).await;
                Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(next))), it))
            });
            Response::builder()
                .header("content-type", "application/json")
                .header("content-length", data.len().to_string())
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
        FaultKind::MalformedJson => {
            let mut r = empty(
                StatusCode::OK,
                &[("content-type", "application/json".into())],
            );
            *r.body_mut() = Full::new(Bytes::from_static(b"{\"Id\": \"1\", \"Name\": "))
                .map_err(|never| match never {})
                .boxed();
            r
        }
        FaultKind::HtmlPage { status } => {
            let mut r = empty(
                StatusCode::from_u16(*status).unwrap(),
                &[("content-type", "text/html".into())],
            );
            *r.body_mut() = Full::new(Bytes::from_static(
                b"<html><head><title>Service Unavailable</title></head><body>busy</body></html>",
            ))
            .map_err(|never| match never {})
            .boxed();
            r
        }
        FaultKind::WrongContentType => {
            let mut r = empty(StatusCode::OK, &[("content-type", "text/plain".into())]);
            *r.body_mut() = Full::new(Bytes::from_static(b"OK, not JSON"))
                .map_err(|never| match never {})
                .boxed();
            r
        }
        FaultKind::Truncated => {
            // Send the head and part of the body (flushed), then break the connection.
            let stream = futures::stream::unfold(0u8, |step| async move {
                match step {
                    0 => Some((
                        Ok(Frame::data(Bytes::from_static(
                            b"{\"Id\": \"1\", \"Name\": \"trunc",
                        ))),
                        1,
                    )),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Err(std::io::Error::other("truncated on purpose")), 2))
                    }
                    _ => None,
                }
            });
            Response::builder()
                .header("content-type", "application/json")
                .header("content-length", "1000")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
        FaultKind::Large { bytes } => {
            let pad = "x".repeat(*bytes);
            full(
                StatusCode::OK,
                &json!({"@odata.id": path, "Id": "large", "Pad": pad}),
                &[],
            )
        }
        FaultKind::RedirectLoop => empty(
            StatusCode::TEMPORARY_REDIRECT,
            &[("location", path.to_owned())],
        ),
        FaultKind::Redirect { to } => {
            empty(StatusCode::TEMPORARY_REDIRECT, &[("location", to.clone())])
        }
        FaultKind::Reset => return Some(Err(std::io::Error::other("reset on purpose"))),
        FaultKind::Delay { .. } => unreachable!("handled before"),
    }))
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    ctl: &socket2::Socket,
) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().clone();
    let full_path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let path = norm(&full_path);
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let (auth, auth_ok) = auth_kind(&state, &headers);
    state.log.lock().unwrap().push(Logged {
        method: method.clone(),
        path: full_path.clone(),
        body: body.clone(),
        auth,
        if_match: headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });

    // Faults first.
    let fault = {
        let mut faults = state.faults.lock().unwrap();
        let idx = faults.iter().position(|f| {
            let subject = if f.path_prefix.contains('?') {
                full_path.as_str()
            } else {
                path.as_str()
            };
            subject.starts_with(&f.path_prefix)
                && f.method.as_ref().is_none_or(|m| *m == method)
                && f.times != Some(0)
        });
        idx.map(|i| {
            if let Some(t) = &mut faults[i].times {
                *t -= 1;
            }
            faults[i].kind.clone()
        })
    };
    if let Some(kind) = fault.clone() {
        if let FaultKind::Delay { delay } = kind {
            tokio::time::sleep(delay).await;
        } else {
            if matches!(kind, FaultKind::Reset) {
                let _ = ctl.set_linger(Some(Duration::ZERO));
            }
            let current = state.load(&path);
            match fault_response(&kind, &path, current) {
                Some(r) => return r,
                None => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(empty(StatusCode::OK, &[]));
                }
            }
        }
    }

    let opts = state.opts.lock().unwrap().clone();
    let sessions_path = "/redfish/v1/SessionService/Sessions";
    let public = method == Method::GET && (path == "/redfish/v1" || path == "/redfish");
    let login = method == Method::POST && path == sessions_path;
    if !public && !login && !auth_ok {
        return Ok(redfish_error(
            StatusCode::UNAUTHORIZED,
            "Base.1.8.NoValidSession",
            "authentication required",
        ));
    }

    if login {
        if !opts.auth.sessions {
            return Ok(redfish_error(
                StatusCode::NOT_FOUND,
                "Base.1.8.ResourceMissingAtURI",
                "no sessions",
            ));
        }
        let b = body.unwrap_or(Value::Null);
        if b["UserName"] != json!(opts.auth.username) || b["Password"] != json!(opts.auth.password)
        {
            return Ok(redfish_error(
                StatusCode::UNAUTHORIZED,
                "Base.1.8.InvalidCredentials",
                "bad credentials",
            ));
        }
        let mut sessions = state.sessions.lock().unwrap();
        if opts.auth.max_sessions.is_some_and(|m| sessions.len() >= m) {
            return Ok(redfish_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Base.1.8.SessionLimitExceeded",
                "too many sessions",
            ));
        }
        let n = state.counter.fetch_add(1, Ordering::SeqCst);
        let token = format!("tok-{n}-{:016x}", rand::random::<u64>());
        let id = format!("{sessions_path}/{n}");
        sessions.insert(token.clone(), id.clone());
        state.sessions_created.fetch_add(1, Ordering::SeqCst);
        return Ok(full(
            StatusCode::CREATED,
            &json!({"@odata.id": id, "Id": n.to_string(), "UserName": opts.auth.username}),
            &[("x-auth-token", token), ("location", id.clone())],
        ));
    }

    match method {
        Method::GET => get(&state, &opts, &path, &query),
        Method::PATCH => Ok(patch(&state, &path, body.unwrap_or(Value::Null))),
        Method::POST => Ok(post(
            &state,
            &opts,
            &path,
            body.unwrap_or(Value::Null),
            &headers,
        )),
        Method::DELETE => Ok(delete(&state, &opts, &path)),
        _ => Ok(redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "method",
        )),
    }
}

fn get(
    state: &State,
    opts: &ServerOptions,
    path: &str,
    query: &str,
) -> Result<Response<Body>, std::io::Error> {
    // Task simulation.
    let task_info = {
        let mut tasks = state.tasks.lock().unwrap();
        tasks.get_mut(path).map(|t| {
            t.polls += 1;
            (t.polls, t.fail)
        })
    };
    if let Some((polls, fail)) = task_info {
        let mut t = state.load(path).unwrap_or(json!({}));
        let done = polls >= opts.task_polls;
        t["TaskState"] = json!(if !done {
            "Running"
        } else if fail {
            "Exception"
        } else {
            "Completed"
        });
        t["TaskStatus"] = json!(if done && fail { "Critical" } else { "OK" });
        t["PercentComplete"] = json!(if done { 100 } else { 50 });
        if done {
            t["Messages"] = json!([{"MessageId": if fail { "Update.1.0.ApplyFailed" } else { "Base.1.8.Success" },
                                    "Message": if fail { "image rejected" } else { "done" }}]);
        }
        state.store(path, t.clone());
        let status = if done {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return Ok(full(status, &t, &[]));
    }
    let Some(mut v) = state.load(path) else {
        return Ok(redfish_error(
            StatusCode::NOT_FOUND,
            "Base.1.8.ResourceMissingAtURI",
            &format!("{path} not found"),
        ));
    };
    if opts.honor_expand
        && let Some(levels) = parse_expand(query)
    {
        state.expand(&mut v, levels, "");
    }
    Ok(full(
        StatusCode::OK,
        &v,
        &[("etag", format!("W/\"{}\"", etag_of(&v)))],
    ))
}

fn etag_of(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish() % 1_000_000
}

fn parse_expand(query: &str) -> Option<u32> {
    let q = percent_encoding::percent_decode_str(query)
        .decode_utf8_lossy()
        .to_string();
    let e = q.split('&').find_map(|kv| kv.strip_prefix("$expand="))?;
    if let Some(rest) = e
        .strip_prefix(".($levels=")
        .or_else(|| e.strip_prefix("*($levels="))
    {
        return rest.trim_end_matches(')').parse().ok();
    }
    (e == "." || e == "*").then_some(1)
}

fn patch(state: &State, path: &str, body: Value) -> Response<Body> {
    let Some(mut v) = state.load(path) else {
        return redfish_error(StatusCode::NOT_FOUND, "Base.1.8.ResourceMissingAtURI", path);
    };
    if v.get("Members").is_some() {
        return redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "collection",
        );
    }
    let mut b = body;
    if let Some(o) = b.as_object_mut() {
        o.remove("Password");
    }
    merge(&mut v, &b);
    state.store(path, v);
    empty(StatusCode::NO_CONTENT, &[])
}

fn parent_of_action(path: &str) -> String {
    path.split("/Actions/").next().unwrap_or(path).to_owned()
}

fn post(
    state: &Arc<State>,
    opts: &ServerOptions,
    path: &str,
    body: Value,
    headers: &HeaderMap,
) -> Response<Body> {
    if let Some(action) = path.split("/Actions/").nth(1) {
        if opts.reject_if_match_on_actions && headers.contains_key("if-match") {
            return redfish_error(
                StatusCode::PRECONDITION_FAILED,
                "Base.1.8.PreconditionFailed",
                "If-Match not allowed here",
            );
        }
        let target = parent_of_action(path);
        let action = action.rsplit('/').next().unwrap_or(action);
        return match action {
            "ComputerSystem.Reset" => {
                let Some(mut sys) = state.load(&target) else {
                    return redfish_error(
                        StatusCode::NOT_FOUND,
                        "Base.1.8.ResourceMissingAtURI",
                        &target,
                    );
                };
                let rt = body["ResetType"].as_str().unwrap_or_default().to_owned();
                let allowed = sys
                    .pointer("/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues")
                    .and_then(Value::as_array)
                    .cloned();
                if let Some(a) = allowed
                    && !a.iter().any(|x| x == &json!(rt))
                {
                    return redfish_error(
                        StatusCode::BAD_REQUEST,
                        "Base.1.8.ActionParameterValueNotInList",
                        &format!("ResetType {rt} not allowed"),
                    );
                }
                let new = match rt.as_str() {
                    "On" | "ForceOn" | "ForceRestart" | "GracefulRestart" | "PowerCycle" => "On",
                    "ForceOff" | "GracefulShutdown" => "Off",
                    _ => {
                        return redfish_error(
                            StatusCode::BAD_REQUEST,
                            "Base.1.8.ActionParameterValueNotInList",
                            "ResetType",
                        );
                    }
                };
                if opts.power_delay.is_zero() {
                    sys["PowerState"] = json!(new);
                    state.store(&target, sys);
                } else {
                    sys["PowerState"] = json!(if new == "On" {
                        "PoweringOn"
                    } else {
                        "PoweringOff"
                    });
                    state.store(&target, sys);
                    let delay = opts.power_delay;
                    let state = state.clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Some(mut s) = state.load(&target) {
                            s["PowerState"] = json!(new);
                            state.store(&target, s);
                        }
                    });
                }
                empty(StatusCode::NO_CONTENT, &[])
            }
            "Manager.Reset" => empty(StatusCode::NO_CONTENT, &[]),
            "VirtualMedia.InsertMedia" => {
                let Some(mut vm) = state.load(&target) else {
                    return redfish_error(
                        StatusCode::NOT_FOUND,
                        "Base.1.8.ResourceMissingAtURI",
                        &target,
                    );
                };
                if vm["Inserted"] == json!(true) {
                    return redfish_error(
                        StatusCode::BAD_REQUEST,
                        "Base.1.8.ActionNotSupported",
                        "media already inserted",
                    );
                }
                vm["Image"] = body["Image"].clone();
                vm["Inserted"] = json!(true);
                vm["WriteProtected"] = body.get("WriteProtected").cloned().unwrap_or(json!(true));
                state.store(&target, vm);
                empty(StatusCode::NO_CONTENT, &[])
            }
            "VirtualMedia.EjectMedia" => {
                let Some(mut vm) = state.load(&target) else {
                    return redfish_error(
                        StatusCode::NOT_FOUND,
                        "Base.1.8.ResourceMissingAtURI",
                        &target,
                    );
                };
                vm["Image"] = json!("");
                vm["Inserted"] = json!(false);
                state.store(&target, vm);
                empty(StatusCode::NO_CONTENT, &[])
            }
            "UpdateService.SimpleUpdate" => {
                let n = state.counter.fetch_add(1, Ordering::SeqCst);
                let task = format!("/redfish/v1/TaskService/Tasks/sim{n}");
                let fail = body["ImageURI"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("fail");
                state.store(&task, json!({"@odata.id": task, "Id": format!("sim{n}"), "Name": "Firmware update", "TaskState": "New"}));
                state
                    .tasks
                    .lock()
                    .unwrap()
                    .insert(task.clone(), TaskSim { polls: 0, fail });
                match opts.task_style {
                    TaskStyle::Location => {
                        full(StatusCode::ACCEPTED, &json!({}), &[("location", task)])
                    }
                    TaskStyle::BodyTaskMonitor => {
                        full(StatusCode::ACCEPTED, &json!({"TaskMonitor": task}), &[])
                    }
                    TaskStyle::BodyOdataId => {
                        full(StatusCode::ACCEPTED, &json!({"@odata.id": task}), &[])
                    }
                }
            }
            _ => empty(StatusCode::NO_CONTENT, &[]),
        };
    }
    if opts.post_405.iter().any(|p| p == path) {
        return redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "POST not allowed",
        );
    }
    let Some(mut coll) = state.load(path) else {
        return redfish_error(StatusCode::NOT_FOUND, "Base.1.8.ResourceMissingAtURI", path);
    };
    let Some(members) = coll.get("Members").and_then(Value::as_array).cloned() else {
        return redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "not a collection",
        );
    };
    // Duplicate subscriptions.
    if path.ends_with("/Subscriptions") {
        for m in &members {
            if let Some(existing) = m["@odata.id"].as_str().and_then(|id| state.load(&norm(id)))
                && existing["Destination"] == body["Destination"]
            {
                return redfish_error(
                    StatusCode::BAD_REQUEST,
                    "Base.1.8.ResourceAlreadyExists",
                    "subscription exists",
                );
            }
        }
    }
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let id = format!("{path}/{n}");
    let mut new = body;
    if let Some(o) = new.as_object_mut() {
        o.remove("Password");
        o.insert("@odata.id".into(), json!(id));
        o.insert("Id".into(), json!(n.to_string()));
    }
    state.store(&id, new.clone());
    let mut members = members;
    members.push(json!({"@odata.id": id}));
    coll["Members@odata.count"] = json!(members.len());
    coll["Members"] = Value::Array(members);
    state.store(path, coll);
    full(StatusCode::CREATED, &new, &[("location", id)])
}

fn delete(state: &State, opts: &ServerOptions, path: &str) -> Response<Body> {
    if path.starts_with("/redfish/v1/SessionService/Sessions/") {
        let mut sessions = state.sessions.lock().unwrap();
        let before = sessions.len();
        sessions.retain(|_, id| id != path);
        return if sessions.len() < before {
            empty(StatusCode::NO_CONTENT, &[])
        } else {
            redfish_error(StatusCode::NOT_FOUND, "Base.1.8.ResourceMissingAtURI", path)
        };
    }
    if opts.delete_405.iter().any(|p| path.starts_with(p.as_str())) {
        return redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "DELETE not allowed",
        );
    }
    if state.load(path).is_none() {
        return redfish_error(StatusCode::NOT_FOUND, "Base.1.8.ResourceMissingAtURI", path);
    }
    let parent = path
        .rsplit_once('/')
        .map(|(p, _)| p.to_owned())
        .unwrap_or_default();
    if let Some(mut coll) = state.load(&parent)
        && let Some(members) = coll.get("Members").and_then(Value::as_array).cloned()
    {
        let members: Vec<Value> = members
            .into_iter()
            .filter(|m| m["@odata.id"].as_str().map(norm).as_deref() != Some(path))
            .collect();
        coll["Members@odata.count"] = json!(members.len());
        coll["Members"] = Value::Array(members);
        state.store(&parent, coll);
    }
    state.deleted.lock().unwrap().push(path.to_owned());
    empty(StatusCode::NO_CONTENT, &[])
}

/// Reads a whole tree's JSON files (for the fixture tests): relative path -> parsed JSON.
pub fn tree_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_string_lossy().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

pub const TEST_PASSWORD: &str = "p4ssw0rd-test";

/// Converts a count in the log.
pub fn count(log: &[Logged], method: &Method, prefix: &str) -> usize {
    log.iter()
        .filter(|l| l.method == method && l.path.starts_with(prefix))
        .count()
}
