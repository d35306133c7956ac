//! The admin HTTP server: `/metrics` (OpenMetrics text), `/healthz` (the process is alive) and
//! `/readyz` (every readiness gate, e.g. each watch cache, has synced).
//!
//! | path | 200 | 503 |
//! |---|---|---|
//! | `/metrics` | OpenMetrics text | never |
//! | `/healthz` | `ok` | `unhealthy: <reason>` once [`Health::fail`] was called |
//! | `/readyz` | `ok` | `not ready: <gate>, ...` listing gates not yet ready |
//!
//! Anything else is 404; methods other than GET/HEAD are 405.

use crate::metrics::Metrics;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the admin server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("binding admin server to {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

/// Named readiness gates; `/readyz` answers 200 only when all are ready.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    gates: Arc<Mutex<BTreeMap<String, bool>>>,
}

/// One readiness gate; see [`Readiness::gate`].
#[derive(Clone, Debug)]
pub struct Gate {
    name: String,
    gates: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    /// A readiness set with no gates (ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a gate named `name` that starts not ready.
    pub fn gate(&self, name: &str) -> Gate {
        self.lock().insert(name.to_string(), false);
        Gate {
            name: name.to_string(),
            gates: self.gates.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Names of the gates that are not ready yet.
    pub fn pending(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Gate {
    /// Marks the gate ready (or not ready again).
    pub fn set(&self, ready: bool) {
        self.gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(self.name.clone(), ready);
    }

    /// Marks the gate ready.
    pub fn ready(&self) {
        self.set(true);
    }
}

/// Liveness: healthy until a component reports an unrecoverable failure.
#[derive(Clone, Debug, Default)]
pub struct Health {
    failure: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// A healthy state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the process unhealthy so that the kubelet restarts it.
    pub fn fail(&self, reason: impl Into<String>) {
        *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.into());
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What the admin server serves.
#[derive(Clone, Debug, Default)]
pub struct AdminState {
    /// The process's metrics.
    pub metrics: Metrics,
    /// Readiness gates.
    pub readiness: Readiness,
    /// Liveness.
    pub health: Health,
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Answers one admin request (pure with respect to I/O; used by the server and by tests).
pub fn respond<B>(state: &AdminState, req: &Request<B>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            PLAIN,
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            state.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" | "/livez" => match state.health.failure() {
            None => text(StatusCode::OK, "ok\n".into(), PLAIN),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unhealthy: {reason}\n"),
                PLAIN,
            ),
        },
        "/readyz" => {
            let pending = state.readiness.pending();
            if pending.is_empty() {
                text(StatusCode::OK, "ok\n".into(), PLAIN)
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", pending.join(", ")),
                    PLAIN,
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}

/// Binds `addr` and serves the admin endpoints until `shutdown` is cancelled.
///
/// Returns the bound address (useful with port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), AdminError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    let state = Arc::new(state);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin server accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let state = state.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = respond(&state, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(state: &AdminState, path: &str) -> (StatusCode, String) {
        use http_body_util::BodyExt as _;
        let resp = respond(state, &Request::get(path).body(()).expect("request"));
        let status = resp.status();
        let body = futures::executor::block_on(resp.into_body().collect())
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn readiness_gates() {
        let state = AdminState::default();
        assert_eq!(get(&state, "/readyz").0, StatusCode::OK);
        let a = state.readiness.gate("servers");
        let b = state.readiness.gate("bmcs");
        let (code, body) = get(&state, "/readyz");
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: bmcs, servers\n");
        a.ready();
        assert_eq!(get(&state, "/readyz").1, "not ready: bmcs\n");
        b.ready();
        assert_eq!(get(&state, "/readyz"), (StatusCode::OK, "ok\n".into()));
    }

    #[test]
    fn health_and_routes() {
        let state = AdminState::default();
        assert_eq!(get(&state, "/healthz"), (StatusCode::OK, "ok\n".into()));
        state.health.fail("lost lease");
        assert_eq!(
            get(&state, "/healthz"),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unhealthy: lost lease\n".into()
            )
        );
        assert_eq!(get(&state, "/nope").0, StatusCode::NOT_FOUND);
        let resp = respond(&state, &Request::post("/metrics").body(()).expect("req"));
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let (code, body) = get(&state, "/metrics");
        assert_eq!(code, StatusCode::OK);
        assert!(body.ends_with("# EOF\n"));
    }
}
