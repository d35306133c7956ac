//! The Redfish service of one BMC: fault injection, authentication, routing.

pub(crate) mod errors;
mod query;
pub(crate) mod render;
mod write;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::bmc::Bmc;
use crate::identity::rewrite_strings;
use crate::json::{ROOT, canon, percent_decode};
use crate::knobs::Fault;
use crate::server::ConnCtx;
use crate::state::accounts::Principal;
use errors::{error, json_response};
use render::{Rendered, finish, render};

/// A response of the service.
pub(crate) type Resp = Response<Full<Bytes>>;

/// Returned to hyper to drop a connection without answering.
#[derive(Debug)]
pub(crate) struct Abort(pub &'static str);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped: {}", self.0)
    }
}

impl std::error::Error for Abort {}

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// Handles one request on a BMC connection.
pub(crate) async fn handle(
    bmc: Arc<Bmc>,
    conn: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Resp, Abort> {
    let now = Instant::now();
    bmc.tick();
    let method = req.method().clone();
    let path = canon(&percent_decode(req.uri().path())).into_owned();
    bmc.count(&method, &path);
    let (knobs, unavailable, down) = {
        let m = bmc.lock();
        (m.knobs.clone(), m.unavailable_for(now), m.is_down(now))
    };
    if down && !conn.exempt.load(Ordering::Relaxed) {
        return Err(Abort("BMC is down"));
    }
    let metrics = &bmc.shared.metrics;
    if let Some(left) = unavailable {
        metrics.fault("outage");
        let resp = service_unavailable(left);
        metrics.request(&method, resp.status());
        return Ok(resp);
    }
    if knobs.wedged
        && (path.starts_with("/redfish/v1/Systems") || path.starts_with("/redfish/v1/Chassis"))
    {
        metrics.fault("wedged");
        let resp = internal_error(StatusCode::INTERNAL_SERVER_ERROR);
        metrics.request(&method, resp.status());
        return Ok(resp);
    }
    let (delay, fault) = {
        let mut rng = rand::rng();
        (knobs.latency(&mut rng), knobs.roll(&mut rng))
    };
    let shutdown = bmc.shared.shutdown.clone();
    if !delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Err(Abort("shutdown")),
        }
    }
    match fault {
        Fault::None => {}
        Fault::Reset => {
            metrics.fault("reset");
            conn.reset.store(true, Ordering::Relaxed);
            return Err(Abort("reset injected"));
        }
        Fault::Hang => {
            metrics.fault("hang");
            let mut up = bmc.up.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(knobs.hang_ms)) => {}
                _ = shutdown.cancelled() => {}
                _ = async { let _ = up.wait_for(|u| !*u).await; } => {}
            }
            return Err(Abort("hang injected"));
        }
        Fault::Error(code) => {
            metrics.fault("error");
            let resp = if code == StatusCode::SERVICE_UNAVAILABLE {
                service_unavailable(Duration::from_secs(1))
            } else {
                internal_error(code)
            };
            metrics.request(&method, resp.status());
            return Ok(resp);
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let resp = error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "GeneralError",
                "The request body is too large.",
                &[],
            );
            metrics.request(&method, resp.status());
            return Ok(resp);
        }
    };
    let mut resp = dispatch(&bmc, &conn, &parts, &path, body, now).await;
    if conn.exempt.load(Ordering::Relaxed) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    metrics.request(&method, resp.status());
    Ok(resp)
}

/// The error body a BMC sends when its Redfish service fails internally.
fn internal_error(code: StatusCode) -> Resp {
    error(
        code,
        "InternalError",
        "The request failed due to an internal service error.  The service is still operational.",
        &[],
    )
}

fn service_unavailable(left: Duration) -> Resp {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceTemporarilyUnavailable",
        "The service is temporarily unavailable.  Retry in a few seconds.",
        &[],
    );
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn dispatch(
    bmc: &Arc<Bmc>,
    conn: &ConnCtx,
    parts: &Parts,
    path: &str,
    body: Bytes,
    now: Instant,
) -> Resp {
    let tpl = &bmc.template;
    let method = &parts.method;
    let is_get = method == Method::GET || method == Method::HEAD;
    let public = (is_get
        && (path == "/redfish"
            || path == ROOT
            || path == format!("{ROOT}/odata")
            || path == format!("{ROOT}/$metadata")))
        || (method == Method::POST && path == tpl.paths.sessions);
    let who = if public {
        None
    } else {
        match authenticate(bmc, &parts.headers, now) {
            Some(p) => Some(p),
            None => return errors::unauthorized(),
        }
    };
    match *method {
        Method::GET | Method::HEAD => get(bmc, path, parts.uri.query(), now),
        Method::PATCH => match who {
            Some(who) => write::patch(bmc, &who, path, &parts.headers, &body, now),
            None => errors::unauthorized(),
        },
        Method::POST => write::post(bmc, conn, who.as_ref(), path, &body, now).await,
        Method::DELETE => match who {
            Some(who) => write::delete(bmc, &who, path, now),
            None => errors::unauthorized(),
        },
        _ => write::not_allowed(bmc, path, now),
    }
}

/// Basic or session (`X-Auth-Token`) authentication.
fn authenticate(bmc: &Bmc, headers: &HeaderMap, now: Instant) -> Option<Principal> {
    let mut m = bmc.lock();
    if m.knobs.reject_auth {
        return None;
    }
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        let timeout = m.session_timeout;
        if let Some(p) = m.accounts.token(token, now, timeout) {
            return Some(p);
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    m.accounts.basic(user, pass)
}

fn get(bmc: &Arc<Bmc>, path: &str, raw_query: Option<&str>, now: Instant) -> Resp {
    // Captured trees may hold pages of a collection under `path?$skip=N` (a nextLink).
    if let Some(q) = raw_query {
        let full = format!("{path}?{}", percent_decode(q));
        if bmc.template.resources.contains_key(full.as_str()) {
            return get(bmc, &full, None, now);
        }
    }
    let q = match query::parse(bmc, raw_query) {
        Ok(q) => q,
        Err(query::QueryError::NotSupported(what)) => {
            return error(
                StatusCode::NOT_IMPLEMENTED,
                "QueryNotSupported",
                &format!("Querying with {what} is not supported by the implementation."),
                &[],
            );
        }
        Err(query::QueryError::Malformed(what)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "QueryParameterValueFormatError",
                &format!(
                    "The value of the query parameter {what} is of a different format than the parameter can accept."
                ),
                &[what],
            );
        }
    };
    let m = bmc.lock();
    let monitors = &bmc.template.paths.task_monitors;
    if let Some(id) = path
        .strip_prefix(monitors.as_str())
        .and_then(|r| r.strip_prefix('/'))
    {
        return match m.tasks.iter().find(|t| t.id.to_string() == id) {
            Some(t) => {
                let v = render::task_value(bmc, &m, t, now);
                let running = !t.state(now).is_done();
                let (body, _) = finish(v, false);
                let mut r = json_response(
                    if running {
                        StatusCode::ACCEPTED
                    } else {
                        StatusCode::OK
                    },
                    body,
                );
                if running {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    if let Ok(loc) = HeaderValue::from_str(path) {
                        r.headers_mut().insert(header::LOCATION, loc);
                    }
                }
                r
            }
            None => errors::not_found(path),
        };
    }
    let Some(rendered) = render(bmc, &m, path, now) else {
        return errors::not_found(path);
    };
    let allow = write::allow_for(bmc, path);
    let plain = q == query::Query::default();
    let (body, etag) = match rendered {
        Rendered::Raw(ct, b) => {
            let mut r = Response::new(Full::new(b));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut()
                .insert("odata-version", HeaderValue::from_static("4.0"));
            return r;
        }
        Rendered::Cached(b, e) if plain => (b, e),
        other => {
            let flagged = matches!(
                other,
                Rendered::Value {
                    etag_in_body: true,
                    ..
                }
            );
            let Some(mut v) = other.into_value() else {
                return errors::not_found(path);
            };
            let etag_in_body = flagged || v.get("@odata.etag").is_some();
            if q.only
                && let Some([one]) = v
                    .get("Members")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                && let Some(p) = one.get("@odata.id").and_then(Value::as_str)
                && let Some(member) = render(bmc, &m, &canon(p), now).and_then(Rendered::into_value)
            {
                v = member;
            }
            if q.top.is_some() || q.skip.is_some() {
                query::page(&mut v, path, q.top, q.skip);
            }
            if let Some((kind, levels)) = q.expand {
                query::expand(bmc, &m, &mut v, kind, levels, now);
            }
            if let Some(names) = &q.select {
                query::select(&mut v, names);
            }
            finish(v, etag_in_body)
        }
    };
    drop(m);
    let mut r = json_response(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The served UUID, serial number and NIC MACs of a system slot.
pub(crate) fn system_identity(bmc: &Bmc, slot: usize) -> (Option<String>, Vec<String>) {
    let (uuid, _, macs) = system_facts(bmc, slot);
    (uuid, macs)
}

/// The served UUID, serial number and NIC MACs of a system slot (template values, rewritten).
pub(crate) fn system_facts(
    bmc: &Bmc,
    slot: usize,
) -> (Option<String>, Option<String>, Vec<String>) {
    let s = &bmc.systems[slot];
    let tpl = &bmc.template;
    let ts = &tpl.systems[s.tpl];
    let id = bmc.identity(s.replica);
    let fix = |v: &Value| -> Option<String> {
        let mut v = v.clone();
        rewrite_strings(&mut v, &|x| tpl.tokens.rewrite(id, x));
        v.as_str().map(String::from)
    };
    let sys = tpl.json(&ts.path);
    let uuid = sys.and_then(|v| v.get("UUID")).and_then(fix);
    let serial = sys.and_then(|v| v.get("SerialNumber")).and_then(fix);
    let macs = ts
        .ethernet
        .iter()
        .filter_map(|p| tpl.json(p))
        .filter_map(|e| e.get("MACAddress").or_else(|| e.get("PermanentMACAddress")))
        .filter_map(fix)
        .filter(|m| !m.is_empty())
        .collect();
    (uuid, serial, macs)
}
