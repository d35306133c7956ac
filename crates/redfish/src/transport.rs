//! HTTP/1.1 transport to one BMC: TCP (+ rustls), a small keep-alive pool, bounded response bodies.
//!
//! Each connection's driver task is aborted when the connection is dropped, so a request cancelled by
//! a timeout or deadline leaves nothing running behind it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::endpoint::{BmcEndpoint, Scheme};

/// Largest read buffer a connection may grow (hyper's default is ~400 KiB, kept per connection
/// after one large response). Bodies larger than this are read in several steps.
const READ_BUFFER_MAX: usize = 64 * 1024;

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
    idle: Arc<IdleMark>,
}

/// Whether a connection is idle, shared by the pool and the connection's driver task. The
/// driver closes the connection once it has been idle for the idle timeout, so an unused
/// connection does not keep its socket and buffers (tens of KiB each) until the next request to
/// that BMC, which with thousands of BMCs polled every few minutes added up to ~50 KiB per BMC.
/// Claiming from the pool and expiring decide under one lock, so a connection is never handed
/// out as it closes.
#[derive(Default)]
struct IdleMark {
    state: Mutex<IdleState>,
    changed: Notify,
}

#[derive(Default, Clone, Copy)]
enum IdleState {
    /// In use (or not yet pooled).
    #[default]
    Busy,
    /// Pooled since then.
    Since(Instant),
    /// Closed by its driver for idleness.
    Expired,
}

impl IdleMark {
    fn set_idle(&self) {
        if let Ok(mut st) = self.state.lock() {
            *st = IdleState::Since(Instant::now());
        }
        self.changed.notify_one();
    }

    /// Takes an idle connection for a request; `false` if it expired or is about to.
    fn claim(&self, timeout: Duration) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        match *st {
            IdleState::Since(t) if t.elapsed() < timeout => {
                *st = IdleState::Busy;
                true
            }
            _ => false,
        }
    }

    /// Completes once the connection has been idle for `timeout`.
    async fn expired(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let since = match self.state.lock() {
                Ok(st) => *st,
                Err(_) => return,
            };
            match since {
                IdleState::Since(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until((t + timeout).into()) => {
                            if let Ok(mut st) = self.state.lock()
                                && matches!(*st, IdleState::Since(now) if now == t)
                            {
                                *st = IdleState::Expired;
                                return;
                            }
                        }
                        _ = changed => {}
                    }
                }
                IdleState::Busy => changed.await,
                IdleState::Expired => return,
            }
        }
    }
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
    /// Shared with each connection's driver, which drops its handle when it closes: a closed
    /// connection's handle still holds its request channel (about 10 KiB).
    idle: Arc<Mutex<Vec<Conn>>>,
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
            idle: Arc::new(Mutex::new(Vec::new())),
            cfg,
        })
    }

    /// Number of connection handles in the pool (for tests and diagnostics); closed ones are
    /// dropped by their drivers, so this is also the number of open idle connections.
    pub(crate) fn idle_connections(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(c) = idle.pop() {
            if !c.sender.is_closed() && c.idle.claim(self.cfg.idle_timeout) {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            // Drop handles of connections their drivers already closed.
            idle.retain(|c| !c.sender.is_closed());
            if idle.len() < self.cfg.max_idle {
                conn.idle.set_idle();
                idle.push(conn);
            }
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
            .max_buf_size(READ_BUFFER_MAX)
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| TransportError::Connect(describe(&e)))?;
        let idle = Arc::new(IdleMark::default());
        let mark = Arc::clone(&idle);
        let timeout = self.cfg.idle_timeout;
        let pool = Arc::downgrade(&self.idle);
        let driver = tokio::spawn(async move {
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "BMC connection ended with an error");
                    }
                }
                _ = mark.expired(timeout) => {}
            }
            // The connection is gone (its half of the request channel with it): drop the
            // pooled handle now rather than at the next request to this BMC.
            if let Some(pool) = pool.upgrade()
                && let Ok(mut idle) = pool.lock()
            {
                idle.retain(|c| !c.sender.is_closed());
            }
        });
        Ok(Conn {
            sender,
            _driver: AbortOnDrop(driver.abort_handle()),
            idle,
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
