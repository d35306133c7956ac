//! Posting reports to the metal-discovery registry, with retries.
//!
//! `POST <registry>/register` with [`RegistrationPayload`] and `POST <registry>/bootstate` with
//! [`BootstatePayload`], both with `Authorization: Bearer <token>`. Transport failures, timeouts,
//! `408`, `429` and `5xx` are retried with exponential backoff and jitter; other answers
//! (`401`/`403` for a wrong token, `400`, `404`, `413`) are final. The token never appears in
//! errors or logs.
//!
//! `http://` and `https://` registry URLs; an `https://` registry is verified against the CA
//! bundle in [`PostOptions::ca_pem`] only (no system roots: the registry's CA is the site's).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::report::{BootstatePayload, RegistrationPayload, Report};

/// How posts are sent and retried.
#[derive(Clone, Debug)]
pub struct PostOptions {
    /// Deadline of one attempt (connect + request + response).
    pub timeout: Duration,
    /// Attempts in total (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles per attempt.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between attempts.
    pub max_backoff: Duration,
    /// CA bundle (PEM) an `https://` registry's certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for PostOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

/// Why a post failed (after all retries, for retryable causes).
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The registry URL is not an `http://host[:port][/path]` URL.
    #[error("invalid registry URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry did not accept the token (`401`: missing or malformed, `403`: wrong).
    #[error("registry refused the token (HTTP {status})")]
    Unauthorized {
        /// `401` or `403`.
        status: u16,
    },
    /// The registry rejected the request (any other 4xx); retrying will not help.
    #[error("registry rejected the request (HTTP {status}): {body}")]
    Rejected {
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The registry answered with a retryable status until attempts ran out.
    #[error("registry failed (HTTP {status}) after {attempts} attempts: {body}")]
    Server {
        /// The last status code.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The start of the last response body.
        body: String,
    },
    /// The registry's certificate is not vouched for by the CA bundle.
    #[error("registry TLS: {0}")]
    Tls(String),
    /// The registry could not be reached or did not answer in time until attempts ran out.
    #[error("registry unreachable after {attempts} attempts: {reason}")]
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// The last transport error.
        reason: String,
    },
}

impl PostError {
    /// Whether the failure is about the token (so re-posting with the same token is pointless).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, PostError::Unauthorized { .. })
    }
}

/// Posts `report` for `server_uuid` to `<registry_url>/register` with default retries.
pub async fn post(
    registry_url: &str,
    server_uuid: &str,
    token: &str,
    report: &Report,
) -> Result<(), PostError> {
    post_with(
        &PostOptions::default(),
        registry_url,
        server_uuid,
        token,
        report,
    )
    .await
}

/// Posts `report` with explicit options.
pub async fn post_with(
    opts: &PostOptions,
    registry_url: &str,
    server_uuid: &str,
    token: &str,
    report: &Report,
) -> Result<(), PostError> {
    let payload = RegistrationPayload {
        system_uuid: server_uuid.to_string(),
        data: report.clone(),
    };
    send(opts, registry_url, "register", token, &payload).await
}

/// Tells the registry the system booted the discovery image (`POST /bootstate`).
pub async fn post_bootstate(
    opts: &PostOptions,
    registry_url: &str,
    server_uuid: &str,
    token: &str,
    booted: bool,
) -> Result<(), PostError> {
    let payload = BootstatePayload {
        system_uuid: server_uuid.to_string(),
        booted,
    };
    send(opts, registry_url, "bootstate", token, &payload).await
}

/// Reports a cleaning round's wipe (`POST /cleaning`).
pub async fn post_cleaning(
    opts: &PostOptions,
    registry_url: &str,
    token: &str,
    payload: &crate::wipe::CleaningPayload,
) -> Result<(), PostError> {
    send(opts, registry_url, "cleaning", token, payload).await
}

struct Target {
    authority: String,
    path: String,
    /// For `https://`: the name the certificate must carry.
    tls_name: Option<String>,
}

fn target(registry_url: &str, endpoint: &str) -> Result<Target, PostError> {
    let invalid = |reason: &str| PostError::InvalidUrl {
        url: registry_url.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(registry_url).map_err(|e| invalid(&e.to_string()))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(invalid("only http:// and https:// are supported")),
    };
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let tls_name = tls.then(|| host.trim_matches(|c| c == '[' || c == ']').to_string());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let base = url.path().trim_end_matches('/');
    Ok(Target {
        authority: format!("{host}:{port}"),
        path: format!("{base}/{endpoint}"),
        tls_name,
    })
}

enum Attempt {
    Done,
    Final(PostError),
    Retry { status: Option<u16>, reason: String },
}

async fn send<T: Serialize>(
    opts: &PostOptions,
    registry_url: &str,
    endpoint: &str,
    token: &str,
    payload: &T,
) -> Result<(), PostError> {
    let target = target(registry_url, endpoint)?;
    let tls = match &target.tls_name {
        None => None,
        Some(name) => Some(connector(opts, registry_url, name)?),
    };
    let body = Bytes::from(serde_json::to_vec(payload).unwrap_or_default());
    let attempts = opts.max_attempts.max(1);
    let mut backoff = opts.initial_backoff;
    let mut last = (None, String::new());
    for attempt in 1..=attempts {
        let outcome = match tokio::time::timeout(
            opts.timeout,
            once(&target, tls.as_ref(), token, body.clone()),
        )
        .await
        {
            Ok(o) => o,
            Err(_) => Attempt::Retry {
                status: None,
                reason: format!("no answer within {:?}", opts.timeout),
            },
        };
        match outcome {
            Attempt::Done => return Ok(()),
            Attempt::Final(e) => return Err(e),
            Attempt::Retry { status, reason } => {
                tracing::warn!(attempt, endpoint, status, %reason, "registry post failed");
                last = (status, reason);
            }
        }
        if attempt < attempts {
            let jitter = rand::rng().random_range(0.8..1.2);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(opts.max_backoff);
        }
    }
    Err(match last {
        (Some(status), body) => PostError::Server {
            status,
            attempts,
            body,
        },
        (None, reason) => PostError::Unreachable { attempts, reason },
    })
}

/// The TLS connector for an `https://` registry: its CA bundle and the name to verify.
fn connector(
    opts: &PostOptions,
    registry_url: &str,
    name: &str,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
    PostError,
> {
    let invalid = |reason: String| PostError::InvalidUrl {
        url: registry_url.to_string(),
        reason,
    };
    let pem = opts.ca_pem.as_deref().ok_or_else(|| {
        invalid("an https:// registry needs a CA bundle (--registry-ca-file)".into())
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]).filter_map(Result::ok) {
        roots
            .add(c)
            .map_err(|e| invalid(format!("CA bundle: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid("the CA bundle holds no certificate".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| invalid(format!("host {name}: {e}")))?;
    Ok((
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        server_name,
    ))
}

type Tls = (
    tokio_rustls::TlsConnector,
    rustls::pki_types::ServerName<'static>,
);

async fn once(target: &Target, tls: Option<&Tls>, token: &str, body: Bytes) -> Attempt {
    let retry = |reason: String| Attempt::Retry {
        status: None,
        reason,
    };
    let stream = match TcpStream::connect(&target.authority).await {
        Ok(s) => s,
        Err(e) => return retry(format!("connect {}: {e}", target.authority)),
    };
    let _ = stream.set_nodelay(true);
    match tls {
        None => exchange(stream, target, token, body).await,
        Some((connector, name)) => match connector.connect(name.clone(), stream).await {
            Ok(s) => exchange(s, target, token, body).await,
            // A certificate the CA does not vouch for will not change: final.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Attempt::Final(PostError::Tls(e.to_string()))
            }
            Err(e) => retry(format!("TLS handshake: {e}")),
        },
    }
}

async fn exchange<S>(stream: S, target: &Target, token: &str, body: Bytes) -> Attempt
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let retry = |reason: String| Attempt::Retry {
        status: None,
        reason,
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return retry(format!("handshake: {e}")),
    };
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri(&target.path)
        .header(header::HOST, &target.authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("metal-probe/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(body));
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Final(PostError::InvalidUrl {
                url: target.path.clone(),
                reason: e.to_string(),
            });
        }
    };
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            conn.abort();
            return retry(format!("request: {e}"));
        }
    };
    let status = resp.status();
    let text = match Limited::new(resp.into_body(), 4096).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes())
            .trim()
            .chars()
            .take(512)
            .collect(),
        Err(_) => String::new(),
    };
    conn.abort();
    classify(status, text)
}

fn classify(status: StatusCode, body: String) -> Attempt {
    match status.as_u16() {
        200..=299 => Attempt::Done,
        401 | 403 => Attempt::Final(PostError::Unauthorized {
            status: status.as_u16(),
        }),
        408 | 429 | 500..=599 => Attempt::Retry {
            status: Some(status.as_u16()),
            reason: body,
        },
        s => Attempt::Final(PostError::Rejected { status: s, body }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = target("http://10.0.0.1:10000", "register").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("10.0.0.1:10000", "/register")
        );
        let t = target("http://registry.metal.svc/prefix/", "bootstate").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("registry.metal.svc:80", "/prefix/bootstate")
        );
        let t = target("http://[fd00::1]:8080", "register").unwrap();
        assert_eq!(t.authority, "[fd00::1]:8080");
        let t = target("https://registry.metal.svc", "register").unwrap();
        assert_eq!(t.authority, "registry.metal.svc:443");
        assert_eq!(t.tls_name.as_deref(), Some("registry.metal.svc"));
        assert!(target("http://x", "register").unwrap().tls_name.is_none());
        assert!(matches!(
            target("ftp://x", "register"),
            Err(PostError::InvalidUrl { .. })
        ));
        assert!(matches!(
            target("nope", "register"),
            Err(PostError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn classification() {
        assert!(matches!(
            classify(StatusCode::CREATED, String::new()),
            Attempt::Done
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, String::new()),
            Attempt::Final(PostError::Unauthorized { status: 403 })
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, String::new()),
            Attempt::Final(PostError::Rejected { .. })
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, String::new()),
            Attempt::Retry {
                status: Some(503),
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, String::new()),
            Attempt::Retry { .. }
        ));
    }
}
