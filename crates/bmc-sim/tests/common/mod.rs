//! A small Redfish test client (hyper + rustls, one connection per request) and helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use metal_bmc_sim::{BmcInfo, GroupSpec, Knobs, RackSpec};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Knobs that keep tests fast.
pub fn fast_knobs() -> Knobs {
    Knobs {
        power_delay_ms: 100,
        task_duration_ms: 400,
        bmc_reset_downtime_ms: 400,
        media_fetch_timeout_ms: 3000,
        ..Knobs::default()
    }
}

/// A plain-HTTP rack on its own address range, one free port, fixed password, fast knobs.
pub fn spec(base: &str, count: usize) -> RackSpec {
    RackSpec {
        base_address: base.parse().unwrap(),
        port: 0,
        tls: false,
        groups: vec![GroupSpec {
            count,
            password: Some("secret-pw".into()),
            knobs: fast_knobs(),
            ..GroupSpec::default()
        }],
        ..RackSpec::default()
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic(String, String),
    Token(String),
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `MessageId`s of a Redfish error body.
    pub fn message_ids(&self) -> Vec<String> {
        let v = self.json();
        assert!(v["error"]["code"].is_string(), "not a Redfish error: {v}");
        v["error"]["@Message.ExtendedInfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                for k in ["MessageId", "Message", "Severity", "Resolution"] {
                    assert!(m[k].is_string(), "ExtendedInfo without {k}: {m}");
                }
                m["MessageId"]
                    .as_str()
                    .unwrap()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

/// A client for one BMC.
#[derive(Clone)]
pub struct Client {
    pub ip: Ipv4Addr,
    pub port: u16,
    tls: Option<TlsConnector>,
    pub auth: Auth,
}

impl Client {
    /// A client authenticating with the BMC's credentials, trusting only its CA.
    pub fn for_bmc(info: &BmcInfo) -> Client {
        let tls = info.ca_pem.as_ref().map(|pem| {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                .unwrap();
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            TlsConnector::from(Arc::new(cfg))
        });
        Client {
            ip: info.ip,
            port: info.port,
            tls,
            auth: Auth::Basic(info.username.clone(), info.password.clone()),
        }
    }

    /// A plain-HTTP client without credentials (for the admin API).
    pub fn plain(addr: std::net::SocketAddr) -> Client {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(v4) => v4,
            std::net::IpAddr::V6(_) => panic!("IPv4 only"),
        };
        Client {
            ip,
            port: addr.port(),
            tls: None,
            auth: Auth::None,
        }
    }

    /// The same client with other credentials.
    pub fn with_auth(&self, auth: Auth) -> Client {
        Client {
            auth,
            ..self.clone()
        }
    }

    /// The same client with a custom TLS configuration.
    pub fn with_tls(&self, cfg: rustls::ClientConfig) -> Client {
        Client {
            tls: Some(TlsConnector::from(Arc::new(cfg))),
            ..self.clone()
        }
    }

    /// Sends a request on a new connection (10 s limit).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Resp> {
        match tokio::time::timeout(
            Duration::from_secs(10),
            self.send_inner(method, path, body, headers),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in 10 s",
            )),
        }
    }

    async fn send_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Resp> {
        let tcp = TcpStream::connect((self.ip, self.port)).await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.ip, self.port));
        match &self.auth {
            Auth::None => {}
            Auth::Basic(u, p) => {
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                req = req.header("authorization", format!("Basic {b}"));
            }
            Auth::Token(t) => req = req.header("x-auth-token", t.as_str()),
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body)).unwrap();
        match &self.tls {
            Some(c) => {
                let name = ServerName::IpAddress(std::net::IpAddr::V4(self.ip).into());
                let s = c.connect(name, tcp).await?;
                exchange(s, req).await
            }
            None => exchange(tcp, req).await,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[])
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {:?}", r.body);
        r.json()
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body), &[])
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(body), &[])
            .await
            .unwrap_or_else(|e| panic!("PATCH {path}: {e}"))
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[])
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
    }

    /// Resets the system with a ResetType, expecting 204.
    pub async fn reset(&self, system: &str, reset_type: &str) {
        let r = self
            .post(
                &format!("{system}/Actions/ComputerSystem.Reset"),
                serde_json::json!({"ResetType": reset_type}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "{reset_type}: {:?}",
            r.body
        );
    }
}

async fn exchange<S>(stream: S, req: Request<Full<Bytes>>) -> std::io::Result<Resp>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io_err = |e: hyper::Error| std::io::Error::other(e);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io_err)?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(io_err)?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(io_err)?.to_bytes();
    driver.abort();
    Ok(Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Polls `check` every 25 ms until it returns true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A tiny HTTP server for images: `200` with a few bytes, `404` for paths containing `missing`.
pub async fn image_server(ip: &str) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let resp = if path.contains("missing") {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string()
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nISOIMAGE"
                        .to_string()
                };
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

/// Whether a TCP connection to the BMC is refused right now.
pub async fn refused(ip: Ipv4Addr, port: u16) -> bool {
    matches!(TcpStream::connect((ip, port)).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// The shared fixtures directory, if present (`METAL_SHARED_DIR`, default `../../../shared`).
pub fn shared_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("METAL_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
        });
    dir.join("fixtures/redfish").is_dir().then_some(dir)
}

/// Whether an error (or one of its sources) is a TCP connection reset.
pub fn is_reset(e: &std::io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionReset
        {
            return true;
        }
        cur = err.source();
    }
    false
}
