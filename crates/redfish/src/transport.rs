//! HTTP/1.1 transport to one BMC: TCP (+ rustls), a small keep-alive pool, bounded response bodies.
//!
//! Each connection's driver task is aborted when the connection is dropped, so a request cancelled by
//! a timeout or deadline leaves nothing running behind it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::endpoint::{BmcEndpoint, Scheme};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Aborts the connection driver task when the connection handle goes away.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    _driver: AbortOnDrop,
    idle_since: Instant,
}

/// A complete response: status, headers and the whole (capped) body.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Transport-level failures.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// TCP connect failed: nothing was sent.
    Connect(String),
    /// TLS handshake failed: nothing was sent.
    Tls(String),
    /// The connection closed or reset before the response head arrived.
    Closed(String),
    /// The body exceeded the cap.
    BodyTooLarge { limit: usize },
    /// The body broke off.
    Truncated(String),
}

/// Connection settings for the transport.
pub(crate) struct TransportConfig {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
}

pub(crate) struct Transport {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    idle: Mutex<Vec<Conn>>,
    cfg: TransportConfig,
}

/// Describes an error with its source chain (hyper's own messages are terse).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = inner.source();
    }
    s
}

impl Transport {
    pub(crate) fn new(endpoint: &BmcEndpoint, cfg: TransportConfig) -> Result<Self, String> {
        let tls = match endpoint.scheme() {
            Scheme::Http => None,
            Scheme::Https => {
                let config = crate::tls::client_config(endpoint.tls())?;
                let name = crate::tls::server_name(endpoint.host())?;
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
        };
        Ok(Self {
            host: endpoint.host().to_owned(),
            port: endpoint.port(),
            tls,
            idle: Mutex::new(Vec::new()),
            cfg,
        })
    }

    /// Number of idle pooled connections (for tests and diagnostics).
    pub(crate) fn idle_connections(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(c) = idle.pop() {
            if !c.sender.is_closed() && c.idle_since.elapsed() < self.cfg.idle_timeout {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, mut conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        conn.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.cfg.max_idle
        {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, TransportError> {
        let tcp = tokio::time::timeout(
            self.cfg.connect_timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            TransportError::Connect(format!(
                "connect timed out after {:?}",
                self.cfg.connect_timeout
            ))
        })?
        .map_err(|e| TransportError::Connect(describe(&e)))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.cfg.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| TransportError::Tls("TLS handshake timed out".into()))?
                .map_err(|e| TransportError::Tls(describe(&e)))?;
                Box::new(tls)
            }
        };
        let (sender, conn) = http1::Builder::new()
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| TransportError::Connect(describe(&e)))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "BMC connection ended with an error");
            }
        });
        Ok(Conn {
            sender,
            _driver: AbortOnDrop(driver.abort_handle()),
            idle_since: Instant::now(),
        })
    }

    /// Sends one request and reads the whole response body (at most `max_body` bytes). A pooled
    /// connection that turns out to be stale is replaced transparently, but only when hyper proves the
    /// request was not sent on it. The caller applies timeouts by dropping this future.
    pub(crate) async fn send(
        &self,
        req: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<RawResponse, TransportError> {
        let mut req = req;
        loop {
            let (mut conn, reused) = match self.take_idle() {
                Some(c) => (c, true),
                None => (self.connect().await?, false),
            };
            if let Err(e) = conn.sender.ready().await {
                if reused {
                    continue;
                }
                return Err(TransportError::Closed(describe(&e)));
            }
            let resp = match conn.sender.try_send_request(req).await {
                Ok(resp) => resp,
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        req = unsent;
                        continue;
                    }
                    _ => return Err(TransportError::Closed(describe(e.error()))),
                },
            };
            let (parts, mut body) = resp.into_parts();
            if let Some(len) = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                && len > max_body as u64
            {
                return Err(TransportError::BodyTooLarge { limit: max_body });
            }
            let mut buf = BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| TransportError::Truncated(describe(&e)))?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > max_body {
                        return Err(TransportError::BodyTooLarge { limit: max_body });
                    }
                    buf.extend_from_slice(&data);
                }
            }
            let close = parts
                .headers
                .get(http::header::CONNECTION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if !close {
                self.put_idle(conn);
            }
            return Ok(RawResponse {
                status: parts.status,
                headers: parts.headers,
                body: buf.freeze(),
            });
        }
    }
}
