//! The admin HTTP API (plain HTTP, loopback): list BMCs, change knobs, read state, counters and
//! metrics.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | `ok` |
//! | GET | `/metrics` | Prometheus metrics (OpenMetrics text) |
//! | GET | `/ca.pem` | the CA certificate |
//! | GET | `/bmcs` | every BMC: index, address, username (never the password), template, up, systems |
//! | GET | `/bmcs/{i}` | one BMC |
//! | GET, PUT, PATCH | `/bmcs/{i}/knobs` | its knobs (PUT replaces, PATCH merges) |
//! | PUT, PATCH | `/knobs` | the knobs of every BMC |
//! | POST | `/bmcs/{i}/outage` | start an outage now: `{"mode": "refuse", "duration_ms": 5000}` |
//! | GET, DELETE | `/bmcs/{i}/requests` | request counters by method and path (DELETE resets) |
//! | GET | `/bmcs/{i}/systems` | state of every system |
//! | GET | `/bmcs/{i}/systems/{id}` | state of one system |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::error::SimError;
use crate::knobs::{Knobs, Outage};
use crate::{Inner, request_counts, set_knobs, start_outage, system_infos, system_states};

type Resp = Response<Full<Bytes>>;

/// Binds the admin API and serves it until shutdown.
pub(crate) async fn start(
    addr: SocketAddr,
    inner: Arc<Inner>,
) -> Result<(SocketAddr, JoinHandle<()>), SimError> {
    let std = crate::server::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
    let listener =
        tokio::net::TcpListener::from_std(std).map_err(|source| SimError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let shutdown = inner.shared.shutdown.clone();
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => { tokio::time::sleep(Duration::from_millis(20)).await; continue }
                },
                _ = shutdown.cancelled() => return,
            };
            let inner = Arc::clone(&inner);
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let inner = Arc::clone(&inner);
                    async move { Ok::<_, std::convert::Infallible>(route(&inner, req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    });
    Ok((bound, task))
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, ct: &'static str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    r
}

fn problem(status: StatusCode, msg: impl std::fmt::Display) -> Resp {
    json(status, &json!({"error": msg.to_string()}))
}

/// Metrics text with the gauges refreshed.
pub(crate) fn metrics_text(inner: &Inner) -> String {
    let m = &inner.shared.metrics;
    let now = std::time::Instant::now();
    let (mut sessions, mut down) = (0i64, 0i64);
    for b in &inner.bmcs {
        let st = b.lock();
        sessions += st.accounts.session_count() as i64;
        down += i64::from(st.is_down(now));
    }
    m.sessions.set(sessions);
    m.bmcs_down.set(down);
    m.encode()
}

fn summary(inner: &Inner, i: usize) -> Value {
    let b = &inner.bmcs[i];
    json!({
        "index": b.index,
        "address": format!("{}://{}:{}", inner.scheme, b.ip, b.port),
        "ip": b.ip.to_string(),
        "port": b.port,
        "username": b.username,
        "template": b.template_source.to_string(),
        "up": *b.up.borrow(),
        "systems": system_infos(b),
    })
}

async fn route(inner: &Arc<Inner>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return problem(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let parse = || {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| Box::new(problem(StatusCode::BAD_REQUEST, e)))
    };
    let bmc = |s: &str| -> Result<usize, Box<Resp>> {
        s.parse::<usize>()
            .ok()
            .filter(|i| *i < inner.bmcs.len())
            .ok_or_else(|| Box::new(problem(StatusCode::NOT_FOUND, format!("no BMC {s}"))))
    };
    macro_rules! try_resp {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(r) => return *r,
            }
        };
    }
    match (&method, segs.as_slice()) {
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, ["metrics"]) => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics_text(inner),
        ),
        (&Method::GET, ["ca.pem"]) => match inner.shared.tls.as_ref() {
            Some(t) => text(
                StatusCode::OK,
                "application/x-pem-file",
                t.ca_pem().to_string(),
            ),
            None => problem(StatusCode::NOT_FOUND, "plain HTTP: no CA"),
        },
        (&Method::GET, ["bmcs"]) => {
            let all: Vec<Value> = (0..inner.bmcs.len()).map(|i| summary(inner, i)).collect();
            json(StatusCode::OK, &all)
        }
        (&Method::GET, ["bmcs", i]) => json(StatusCode::OK, &summary(inner, try_resp!(bmc(i)))),
        (&Method::GET, ["bmcs", i, "knobs"]) => {
            let i = try_resp!(bmc(i));
            json(StatusCode::OK, &inner.bmcs[i].lock().knobs.clone())
        }
        (m, ["bmcs", i, "knobs"]) if m == Method::PUT || m == Method::PATCH => {
            let i = try_resp!(bmc(i));
            let v = try_resp!(parse());
            let b = &inner.bmcs[i];
            let knobs = if m == Method::PUT {
                serde_json::from_value::<Knobs>(v)
                    .map_err(|e| SimError::InvalidKnobs(e.to_string()))
            } else {
                let cur = b.lock().knobs.clone();
                cur.merged(&v)
            };
            match knobs.and_then(|k| set_knobs(b, k.clone()).map(|_| k)) {
                Ok(k) => json(StatusCode::OK, &k),
                Err(e) => problem(StatusCode::BAD_REQUEST, e),
            }
        }
        (m, ["knobs"]) if m == Method::PUT || m == Method::PATCH => {
            let v = try_resp!(parse());
            for b in &inner.bmcs {
                let knobs = if m == Method::PUT {
                    serde_json::from_value::<Knobs>(v.clone())
                        .map_err(|e| SimError::InvalidKnobs(e.to_string()))
                } else {
                    let cur = b.lock().knobs.clone();
                    cur.merged(&v)
                };
                if let Err(e) = knobs.and_then(|k| set_knobs(b, k)) {
                    return problem(StatusCode::BAD_REQUEST, e);
                }
            }
            json(StatusCode::OK, &json!({"bmcs": inner.bmcs.len()}))
        }
        (&Method::POST, ["bmcs", i, "outage"]) => {
            let i = try_resp!(bmc(i));
            let v = try_resp!(parse());
            match serde_json::from_value::<Outage>(v)
                .map_err(|e| e.to_string())
                .and_then(|o| o.validate().map(|_| o).map_err(|e| e.to_string()))
            {
                Ok(o) => {
                    start_outage(&inner.bmcs[i], o.clone());
                    json(StatusCode::OK, &o)
                }
                Err(e) => problem(StatusCode::BAD_REQUEST, e),
            }
        }
        (&Method::GET, ["bmcs", i, "requests"]) => json(
            StatusCode::OK,
            &request_counts(&inner.bmcs[try_resp!(bmc(i))]),
        ),
        (&Method::DELETE, ["bmcs", i, "requests"]) => {
            let i = try_resp!(bmc(i));
            inner.bmcs[i]
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            json(StatusCode::OK, &json!({}))
        }
        (&Method::GET, ["bmcs", i, "systems"]) => json(
            StatusCode::OK,
            &system_states(&inner.bmcs[try_resp!(bmc(i))]),
        ),
        (&Method::GET, ["bmcs", i, "systems", id]) => {
            let b = &inner.bmcs[try_resp!(bmc(i))];
            match system_states(b).into_iter().find(|s| s.id == *id) {
                Some(s) => json(StatusCode::OK, &s),
                None => problem(StatusCode::NOT_FOUND, format!("no system {id}")),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, format!("no route {method} {path}")),
    }
}
