//! The client: request pipeline (deadline, per-BMC concurrency bound, authentication, redirects,
//! retries, observation) shared by all operations.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use tokio::sync::{OnceCell, Semaphore};

use crate::auth::{AuthMode, AuthState, Credential, Resolved, Session};
use crate::endpoint::BmcEndpoint;
use crate::error::{Error, ErrorKind, class_of_response, is_busy_message_id};
use crate::models::{RedfishErrorBody, ServiceRoot};
use crate::observe::{Observer, RequestEvent, path_template};
use crate::retry::{Decision, Failure, RetryPolicy, parse_retry_after};
use crate::secret::Credentials;
use crate::transport::{RawResponse, Transport, TransportConfig, TransportError};
use crate::vendor::VendorInfo;

/// Root of every Redfish service.
pub(crate) const ROOT: &str = "/redfish/v1/";
const MAX_REDIRECTS: u32 = 5;

/// Tuning knobs of a client. The defaults suit real BMCs (slow, fragile, shared).
#[derive(Clone)]
pub struct ClientOptions {
    /// How to authenticate (default: session where offered, else basic).
    pub auth: AuthMode,
    /// In `AuthMode::Auto`, how long basic auth stands in after the BMC refused a session for lack
    /// of slots (or 503/429), before a session is tried again (default 5 min). Sessions left by
    /// killed processes free up when the BMC expires them (`SessionTimeout`, often 30 min).
    pub session_retry_interval: Duration,
    /// Maximum requests in flight to this BMC at once (default 2).
    pub max_in_flight: usize,
    /// Timeout of one HTTP request, from sending to having the whole body (default 30 s).
    pub request_timeout: Duration,
    /// Timeout of TCP connect and, separately, of the TLS handshake (default 10 s).
    pub connect_timeout: Duration,
    /// Deadline of one operation (several requests, retries included) (default 120 s). Waits
    /// (power state, tasks) take their own deadline.
    pub operation_timeout: Duration,
    /// Largest response body accepted (default 16 MiB); larger bodies fail with `BadResponse`.
    pub max_body_bytes: usize,
    /// Retry policy for idempotent reads.
    pub retry: RetryPolicy,
    /// Use `$expand` where the service advertises it (default true).
    pub use_expand: bool,
    /// Interval between polls when waiting for a power state or a task (default 2 s).
    pub poll_interval: Duration,
    /// How long an idle pooled connection is kept before it is closed (default 5 s). Requests
    /// of one operation, and power polls, come within it; periodic polls minutes apart would not
    /// reuse a connection anyway, and BMCs close idle connections early. At 1,000 BMCs, 20 s
    /// kept ~2 connections per BMC open through onboarding (peak RSS 170 vs 145 MiB).
    pub idle_timeout: Duration,
    /// Called for every HTTP request (metrics).
    pub observer: Option<Arc<dyn Observer>>,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            auth: AuthMode::Auto,
            session_retry_interval: Duration::from_secs(300),
            max_in_flight: 2,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(120),
            max_body_bytes: 16 * 1024 * 1024,
            retry: RetryPolicy::default(),
            use_expand: true,
            poll_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            observer: None,
            user_agent: concat!("metal-redfish/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("auth", &self.auth)
            .field("session_retry_interval", &self.session_retry_interval)
            .field("max_in_flight", &self.max_in_flight)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("retry", &self.retry)
            .field("use_expand", &self.use_expand)
            .field("poll_interval", &self.poll_interval)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// A complete HTTP response from the BMC (for the low-level calls).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body (capped).
    pub body: Bytes,
}

impl Response {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> Option<&str> {
        self.headers.get(header::ETAG).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json_value(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Per-operation context: the deadline and the number of requests the operation made.
pub(crate) struct Ctx {
    pub deadline: Instant,
    requests: AtomicU32,
}

impl Ctx {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            requests: AtomicU32::new(0),
        }
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub(crate) fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A request as the pipeline sees it.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    pub body: Option<Bytes>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Strings to scrub from error messages (passwords in the body).
    pub secrets: Vec<String>,
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            body: None,
            headers: Vec::new(),
            secrets: Vec::new(),
        }
    }

    pub(crate) fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(Bytes::from(body.to_string()));
        self
    }

    pub(crate) fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub(crate) fn secret(mut self, s: &str) -> Self {
        if !s.is_empty() {
            self.secrets.push(s.to_owned());
        }
        self
    }
}

pub(crate) struct Inner {
    pub endpoint: BmcEndpoint,
    pub bmc: String,
    pub creds: Credentials,
    pub opts: ClientOptions,
    transport: Arc<Transport>,
    permits: Semaphore,
    requests: AtomicU64,
    pub auth: AuthState,
    root: OnceCell<Arc<ServiceRoot>>,
    pub vendor: OnceCell<VendorInfo>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: close the session on the BMC so that dropped clients do not eat its session
        // slots. Bounded by a short timeout; skipped outside a runtime.
        let Some(session) = self.auth.take_session() else {
            return;
        };
        let Some(location) = session.location.clone() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let transport = self.transport.clone();
        let authority = self.endpoint.authority();
        let max = self.opts.max_body_bytes;
        handle.spawn(async move {
            let Ok(mut req) = Request::builder()
                .method(Method::DELETE)
                .uri(location.as_str())
                .header(header::HOST, authority.as_str())
                .body(Full::new(Bytes::new()))
            else {
                return;
            };
            req.headers_mut().insert(
                HeaderName::from_static("x-auth-token"),
                session.token.clone(),
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), transport.send(req, max)).await;
        });
    }
}

/// An async Redfish client for one BMC. Cheap to clone (clones share the connection pool, the session
/// and the concurrency bound), safe to use from many tasks at once.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("bmc", &self.inner.bmc)
            .field("credentials", &self.inner.creds)
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

fn classify_failure(e: &Error) -> Failure {
    match e.kind() {
        ErrorKind::Connect(_) | ErrorKind::Tls(_) => Failure::NotSent,
        ErrorKind::Status {
            status,
            retry_after,
        } => Failure::Status {
            status: *status,
            retry_after: *retry_after,
        },
        ErrorKind::ConnectionClosed(_) | ErrorKind::RequestTimeout(_) | ErrorKind::Truncated(_) => {
            Failure::Transport
        }
        // Deterministic answers (oversized body, ...) do not get better by asking again.
        _ => Failure::Status {
            status: 0,
            retry_after: None,
        },
    }
}

/// Extracts the human message and message ids from a Redfish error body, or a short summary of an
/// HTML/text error page.
pub(crate) fn error_details(headers: &HeaderMap, body: &[u8]) -> (Option<String>, Vec<String>) {
    if body.is_empty() {
        return (None, Vec::new());
    }
    if let Ok(err) = serde_json::from_slice::<RedfishErrorBody>(body) {
        let mut ids = Vec::new();
        let mut msgs = Vec::new();
        if let Some(e) = &err.error {
            for m in &e.extended_info {
                if let Some(id) = &m.message_id {
                    ids.push(id.clone());
                }
                if let Some(msg) = m.message.as_ref().or(m.message_id.as_ref()) {
                    msgs.push(msg.clone());
                }
            }
            if msgs.is_empty()
                && let Some(m) = &e.message
            {
                msgs.push(m.clone());
            }
            if let Some(code) = &e.code {
                ids.push(code.clone());
            }
        }
        // Some BMCs put ExtendedInfo at the top level (task monitors, action responses).
        for m in &err.extended_info {
            if let Some(id) = &m.message_id {
                ids.push(id.clone());
            }
            if let Some(msg) = &m.message {
                msgs.push(msg.clone());
            }
        }
        let msg = if msgs.is_empty() {
            None
        } else {
            Some(msgs.join("; "))
        };
        return (msg, ids);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    if ct.contains("html") || text.trim_start().starts_with('<') {
        let lower = text.to_ascii_lowercase();
        let title = lower.find("<title>").and_then(|s| {
            lower[s + 7..]
                .find("</title>")
                .map(|e| text[s + 7..s + 7 + e].trim().to_owned())
        });
        return (
            Some(format!(
                "HTML error page{}",
                title.map(|t| format!(": {t}")).unwrap_or_default()
            )),
            Vec::new(),
        );
    }
    let snippet: String = text.chars().take(200).collect();
    (Some(snippet.trim().to_owned()), Vec::new())
}

/// True when a failed session login says "no session for now" (slots used up, service temporarily
/// unavailable) rather than "wrong credentials" or "no sessions here": 503, 429, or a 4xx other
/// than 401/403 whose `MessageId` is `SessionLimitExceeded`, `ServiceTemporarilyUnavailable` or
/// the like.
fn session_refused_for_now(status: u16, message_ids: &[String]) -> bool {
    match status {
        429 | 503 => true,
        401 | 403 => false,
        400..=499 => message_ids.iter().any(|id| is_busy_message_id(id)),
        _ => false,
    }
}

/// Characters that cannot appear raw in a request path (everything else, `%` included, is kept).
const PATH_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'#');

/// Keeps only the path (and query) of a URI; absolute URLs from `Location` headers and `@odata.id`s
/// are reduced to their path, which is then always sent to this client's own BMC. Characters that are
/// not allowed in a request path (spaces, quotes, ...) are percent-encoded.
pub(crate) fn path_of(uri: &str) -> String {
    let p = if let Some(rest) = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
    {
        match rest.find('/') {
            Some(i) => rest[i..].to_owned(),
            None => "/".to_owned(),
        }
    } else if uri.starts_with('/') {
        uri.to_owned()
    } else {
        format!("/{uri}")
    };
    let (path, query) = match p.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (p.as_str(), None),
    };
    let mut out = percent_encoding::utf8_percent_encode(path, PATH_ESCAPE).to_string();
    if let Some(q) = query {
        out.push('?');
        out.push_str(&percent_encoding::utf8_percent_encode(q, PATH_ESCAPE).to_string());
    }
    out
}

impl Client {
    /// Creates a client for one BMC. Nothing is sent until the first call; the first call reads the
    /// service root and logs in (a session where offered, else basic auth, per `options.auth`).
    pub fn new(
        endpoint: BmcEndpoint,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let bmc = endpoint.authority();
        let transport = Transport::new(
            &endpoint,
            TransportConfig {
                connect_timeout: options.connect_timeout,
                idle_timeout: options.idle_timeout,
                max_idle: options.max_in_flight.max(1),
            },
        )
        .map_err(|e| Error::new(bmc.clone(), ErrorKind::Config(e)))?;
        let auth = AuthState::new(options.auth, &credentials);
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(options.max_in_flight.max(1)),
                endpoint,
                bmc,
                creds: credentials,
                opts: options,
                transport: Arc::new(transport),
                requests: AtomicU64::new(0),
                auth,
                root: OnceCell::new(),
                vendor: OnceCell::new(),
            }),
        })
    }

    /// The BMC endpoint.
    pub fn endpoint(&self) -> &BmcEndpoint {
        &self.inner.endpoint
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Total HTTP requests this client (and its clones) has sent, logins and retries included.
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The authentication actually in use once the first call resolved it (`Session` or `Basic`).
    pub fn auth_in_use(&self) -> Option<AuthMode> {
        self.inner.auth.resolved_mode()
    }

    /// Idle pooled connections to the BMC right now (diagnostics).
    pub fn idle_connections(&self) -> usize {
        self.inner.transport.idle_connections()
    }

    pub(crate) fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.inner.bmc.clone(), kind)
    }

    pub(crate) fn ctx(&self) -> Ctx {
        Ctx::new(self.inner.opts.operation_timeout)
    }

    /// Runs an operation under its deadline: when the deadline passes, the future (and every request
    /// and connection it holds) is dropped.
    pub(crate) async fn within<T>(
        &self,
        ctx: &Ctx,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout_at(ctx.deadline.into(), fut).await {
            Ok(r) => r,
            Err(_) => Err(self.err(ErrorKind::DeadlineExceeded)),
        }
    }

    /// Sends exactly one HTTP request (no auth logic, no retries) and observes it.
    async fn send_once(
        &self,
        ctx: &Ctx,
        req: &Req<'_>,
        path: &str,
        method: &Method,
        cred: Option<&Credential>,
        attempt: u32,
    ) -> Result<RawResponse, Error> {
        let inner = &self.inner;
        let permit = tokio::time::timeout_at(ctx.deadline.into(), inner.permits.acquire())
            .await
            .map_err(|_| {
                self.err(ErrorKind::DeadlineExceeded)
                    .with_request(method, path)
            })?
            .map_err(|_| self.err(ErrorKind::Config("client closed".into())))?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, inner.endpoint.authority())
            .header(header::ACCEPT, "application/json")
            .header(HeaderName::from_static("odata-version"), "4.0")
            .header(header::USER_AGENT, inner.opts.user_agent.as_str());
        if req.body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        for (n, v) in &req.headers {
            builder = builder.header(n, v);
        }
        match cred {
            Some(Credential::Basic(v)) => builder = builder.header(header::AUTHORIZATION, v),
            Some(Credential::Token(s)) => {
                builder = builder.header(HeaderName::from_static("x-auth-token"), s.token.clone())
            }
            None => {}
        }
        let body = Full::new(req.body.clone().unwrap_or_default());
        let request = builder
            .body(body)
            .map_err(|e| self.err(ErrorKind::InvalidInput(format!("invalid request: {e}"))))?;
        let timeout = inner.opts.request_timeout.min(ctx.remaining());
        let started = Instant::now();
        inner.requests.fetch_add(1, Ordering::Relaxed);
        ctx.requests.fetch_add(1, Ordering::Relaxed);
        let result = tokio::time::timeout(
            timeout,
            inner.transport.send(request, inner.opts.max_body_bytes),
        )
        .await;
        drop(permit);
        let latency = started.elapsed();
        let result = match result {
            Err(_) => Err(self.err(if ctx.remaining().is_zero() {
                ErrorKind::DeadlineExceeded
            } else {
                ErrorKind::RequestTimeout(timeout)
            })),
            Ok(Err(e)) => Err(self.err(match e {
                TransportError::Connect(m) => ErrorKind::Connect(m),
                TransportError::Tls(m) => ErrorKind::Tls(m),
                TransportError::Closed(m) => ErrorKind::ConnectionClosed(m),
                TransportError::BodyTooLarge { limit } => ErrorKind::BodyTooLarge { limit },
                TransportError::Truncated(m) => ErrorKind::Truncated(m),
            })),
            Ok(Ok(r)) => Ok(r),
        }
        .map_err(|e| e.with_request(method, path));
        if let Some(obs) = &inner.opts.observer {
            let status = result.as_ref().ok().map(|r| r.status.as_u16());
            let class = match &result {
                Ok(r) if r.status.is_client_error() => {
                    let (_, ids) = error_details(&r.headers, &r.body);
                    Some(class_of_response(r.status.as_u16(), &ids))
                }
                Ok(r) if r.status.is_server_error() => {
                    Some(crate::error::class_of_status(r.status.as_u16()))
                }
                Ok(_) => None,
                Err(e) => Some(e.class()),
            };
            let tmpl = path_template(path);
            obs.on_request(&RequestEvent {
                bmc: &inner.bmc,
                method,
                path_template: &tmpl,
                status,
                class,
                latency,
                attempt,
            });
        }
        if let Err(e) = &result {
            tracing::debug!(bmc = %inner.bmc, %method, path, error = %e, "Redfish request failed");
        }
        result
    }

    /// Builds the error for a non-success status.
    fn status_error(&self, method: &Method, path: &str, resp: &RawResponse) -> Error {
        let retry_after = resp
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let (msg, ids) = error_details(&resp.headers, &resp.body);
        self.err(ErrorKind::Status {
            status: resp.status.as_u16(),
            retry_after,
        })
        .with_request(method, path)
        .with_redfish(msg, ids)
    }

    /// The full pipeline: authentication (with one re-login on 401), redirects on the same host,
    /// retries for idempotent requests, errors with Redfish messages and secrets scrubbed.
    pub(crate) async fn execute(&self, ctx: &Ctx, req: Req<'_>) -> Result<Response, Error> {
        let mut secrets: Vec<String> = req.secrets.clone();
        secrets.push(self.inner.creds.password().expose().to_owned());
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        self.execute_inner(ctx, &req)
            .await
            .map_err(|e| e.scrub(&refs))
    }

    async fn execute_inner(&self, ctx: &Ctx, req: &Req<'_>) -> Result<Response, Error> {
        let idempotent = req.method == Method::GET || req.method == Method::HEAD;
        let mut path = path_of(req.path);
        let mut method = req.method.clone();
        let mut attempt = 0u32;
        let mut relogged = false;
        let mut redirects = 0u32;
        loop {
            attempt += 1;
            let cred = self.credential(ctx).await?;
            let result = self
                .send_once(ctx, req, &path, &method, Some(&cred), attempt)
                .await;
            let err = match result {
                Ok(resp) if resp.status.is_success() => {
                    return Ok(Response {
                        status: resp.status.as_u16(),
                        headers: resp.headers,
                        body: resp.body,
                    });
                }
                Ok(resp) if resp.status.is_redirection() => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(self
                            .err(ErrorKind::TooManyRedirects(redirects - 1))
                            .with_request(&method, &path));
                    }
                    let Some(loc) = resp
                        .headers
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                    else {
                        return Err(self
                            .err(ErrorKind::Unexpected(format!(
                                "redirect {} without Location",
                                resp.status
                            )))
                            .with_request(&method, &path));
                    };
                    path = self
                        .same_host_path(loc)
                        .map_err(|e| e.with_request(&method, &path))?;
                    if resp.status == StatusCode::SEE_OTHER {
                        method = Method::GET;
                    }
                    attempt -= 1;
                    continue;
                }
                Ok(resp) if resp.status == StatusCode::UNAUTHORIZED => {
                    if let Credential::Token(s) = &cred
                        && !relogged
                    {
                        tracing::debug!(bmc = %self.inner.bmc, "session rejected (401), logging in again");
                        self.inner.auth.invalidate(s);
                        relogged = true;
                        attempt -= 1;
                        continue;
                    }
                    self.status_error(&method, &path, &resp)
                }
                Ok(resp) => self.status_error(&method, &path, &resp),
                Err(e) => e,
            };
            let jitter: f64 = rand::random();
            match self.inner.opts.retry.decide(
                idempotent,
                attempt,
                &classify_failure(&err),
                ctx.remaining(),
                jitter,
            ) {
                Decision::RetryAfter(d) => {
                    tracing::debug!(bmc = %self.inner.bmc, %method, path, attempt, delay = ?d, error = %err, "retrying");
                    tokio::time::sleep(d).await;
                }
                Decision::GiveUp => return Err(err),
            }
        }
    }

    fn same_host_path(&self, location: &str) -> Result<String, Error> {
        if location.starts_with('/') {
            return Ok(location.to_owned());
        }
        let url = url::Url::parse(location).map_err(|e| {
            self.err(ErrorKind::Unexpected(format!(
                "invalid redirect location: {e}"
            )))
        })?;
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        };
        if !host.eq_ignore_ascii_case(self.inner.endpoint.host())
            || url.port_or_known_default() != Some(self.inner.endpoint.port())
        {
            return Err(self.err(ErrorKind::CrossHostRedirect(format!(
                "{}://{}",
                url.scheme(),
                url.host_str().unwrap_or("?")
            ))));
        }
        let mut p = url.path().to_owned();
        if let Some(q) = url.query() {
            p.push('?');
            p.push_str(q);
        }
        Ok(p)
    }

    /// The credential for the next request, logging in first if needed (single-flighted).
    async fn credential(&self, ctx: &Ctx) -> Result<Credential, Error> {
        if let Some(c) = self.inner.auth.current() {
            return Ok(c);
        }
        let _guard =
            tokio::time::timeout_at(ctx.deadline.into(), self.inner.auth.login_lock.lock())
                .await
                .map_err(|_| self.err(ErrorKind::DeadlineExceeded))?;
        if let Some(c) = self.inner.auth.current() {
            return Ok(c);
        }
        match self.inner.auth.mode {
            AuthMode::Basic => self.inner.auth.set(Resolved::Basic),
            AuthMode::Session | AuthMode::Auto => self.login(ctx).await?,
        }
        self.inner
            .auth
            .current()
            .ok_or_else(|| self.err(ErrorKind::Unexpected("login produced no credential".into())))
    }

    async fn login(&self, ctx: &Ctx) -> Result<(), Error> {
        let auto = self.inner.auth.mode == AuthMode::Auto;
        let root = self.service_root_ctx(ctx).await?;
        let sessions = root
            .links
            .as_ref()
            .and_then(|l| l.sessions.as_ref())
            .map(|l| l.odata_id.clone())
            .unwrap_or_else(|| "/redfish/v1/SessionService/Sessions".to_owned());
        if auto
            && root.session_service.is_none()
            && root
                .links
                .as_ref()
                .and_then(|l| l.sessions.as_ref())
                .is_none()
        {
            tracing::debug!(bmc = %self.inner.bmc, "service root offers no sessions, using basic auth");
            self.inner.auth.set(Resolved::Basic);
            return Ok(());
        }
        let creds = &self.inner.creds;
        let body = serde_json::json!({"UserName": creds.username(), "Password": creds.password().expose()});
        let req = Req::new(Method::POST, &sessions).json(&body);
        let path = path_of(&sessions);
        let resp = self
            .send_once(ctx, &req, &path, &Method::POST, None, 1)
            .await?;
        if resp.status.is_success() {
            let Some(token) = resp.headers.get("x-auth-token").cloned() else {
                return Err(self
                    .err(ErrorKind::Unexpected(
                        "session login answered without X-Auth-Token".into(),
                    ))
                    .with_request(&Method::POST, &path));
            };
            let mut token = token;
            token.set_sensitive(true);
            let location = resp
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(path_of)
                .or_else(|| {
                    serde_json::from_slice::<serde_json::Value>(&resp.body)
                        .ok()
                        .and_then(|v| v.get("@odata.id").and_then(|v| v.as_str()).map(path_of))
                });
            if self.inner.auth.in_fallback() {
                tracing::info!(bmc = %self.inner.bmc, session = ?location, "Redfish session opened again, basic auth no longer needed");
            } else {
                tracing::debug!(bmc = %self.inner.bmc, session = ?location, "Redfish session opened");
            }
            self.inner
                .auth
                .set(Resolved::Session(Arc::new(Session { token, location })));
            return Ok(());
        }
        if auto && matches!(resp.status.as_u16(), 404 | 405 | 501) {
            tracing::debug!(bmc = %self.inner.bmc, status = %resp.status, "no session service, using basic auth");
            self.inner.auth.set(Resolved::Basic);
            return Ok(());
        }
        let pw = creds.password().expose();
        let err = self.status_error(&Method::POST, &path, &resp).scrub(&[pw]);
        if auto && session_refused_for_now(resp.status.as_u16(), err.message_ids()) {
            let retry_in = self.inner.opts.session_retry_interval;
            if self.inner.auth.in_fallback() {
                tracing::debug!(bmc = %self.inner.bmc, status = %resp.status, ?retry_in, "BMC still refuses a Redfish session, staying on basic auth");
            } else {
                tracing::warn!(
                    bmc = %self.inner.bmc,
                    status = %resp.status,
                    message_ids = ?err.message_ids(),
                    ?retry_in,
                    "BMC refused a Redfish session (session limit reached or service unavailable); using basic auth and trying a session again later"
                );
            }
            self.inner.auth.set(Resolved::Fallback {
                retry_at: Instant::now() + retry_in,
            });
            return Ok(());
        }
        Err(err)
    }

    /// Closes the Redfish session (DELETE on the session resource). Later calls log in again.
    pub async fn logout(&self) -> Result<(), Error> {
        let _guard = self.inner.auth.login_lock.lock().await;
        let Some(session) = self.inner.auth.take_session() else {
            return Ok(());
        };
        let Some(location) = session.location.clone() else {
            return Ok(());
        };
        let ctx = Ctx::new(self.inner.opts.request_timeout);
        let req = Req::new(Method::DELETE, &location);
        let cred = Credential::Token(session);
        let resp = self
            .within(
                &ctx,
                self.send_once(&ctx, &req, &location, &Method::DELETE, Some(&cred), 1),
            )
            .await?;
        if resp.status.is_success()
            || resp.status == StatusCode::NOT_FOUND
            || resp.status == StatusCode::UNAUTHORIZED
        {
            tracing::debug!(bmc = %self.inner.bmc, "Redfish session closed");
            Ok(())
        } else {
            Err(self.status_error(&Method::DELETE, &location, &resp))
        }
    }

    /// The service root (read once per client, without authentication as the spec allows; with basic
    /// auth if the BMC insists).
    pub async fn service_root(&self) -> Result<Arc<ServiceRoot>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.service_root_ctx(&ctx)).await
    }

    pub(crate) async fn service_root_ctx(&self, ctx: &Ctx) -> Result<Arc<ServiceRoot>, Error> {
        self.inner
            .root
            .get_or_try_init(|| async {
                let req = Req::new(Method::GET, ROOT);
                let mut attempt = 0;
                let mut cred: Option<Credential> = None;
                loop {
                    attempt += 1;
                    let r = self
                        .send_once(ctx, &req, ROOT, &Method::GET, cred.as_ref(), attempt)
                        .await;
                    let err = match r {
                        Ok(resp) if resp.status.is_success() => {
                            let root: ServiceRoot =
                                self.parse_body(&Method::GET, ROOT, &resp.headers, &resp.body)?;
                            return Ok(Arc::new(root));
                        }
                        Ok(resp) if resp.status == StatusCode::UNAUTHORIZED && cred.is_none() => {
                            cred = Some(Credential::Basic(self.inner.auth.basic_header()));
                            attempt -= 1;
                            continue;
                        }
                        Ok(resp) => self.status_error(&Method::GET, ROOT, &resp),
                        Err(e) => e,
                    };
                    let jitter: f64 = rand::random();
                    match self.inner.opts.retry.decide(
                        true,
                        attempt,
                        &classify_failure(&err),
                        ctx.remaining(),
                        jitter,
                    ) {
                        Decision::RetryAfter(d) => tokio::time::sleep(d).await,
                        Decision::GiveUp => return Err(err),
                    }
                }
            })
            .await
            .cloned()
    }

    /// Parses a JSON body into a model, refusing HTML pages and non-JSON content types.
    pub(crate) fn parse_body<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<T, Error> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let json_like =
            ct.is_empty() || ct.contains("json") || ct.starts_with("application/octet-stream");
        if !json_like {
            return Err(self
                .err(ErrorKind::ContentType(ct))
                .with_request(method, path));
        }
        crate::models::parse(body).map_err(|e| {
            let msg = if body.is_empty() {
                "empty body".to_owned()
            } else {
                e.to_string()
            };
            self.err(ErrorKind::InvalidJson(msg))
                .with_request(method, path)
        })
    }

    /// GET + parse within an operation.
    pub(crate) async fn get_ctx<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<T, Error> {
        let resp = self.execute(ctx, Req::new(Method::GET, path)).await?;
        self.parse_body(&Method::GET, path, &resp.headers, &resp.body)
    }

    /// GET + parse, also returning the ETag.
    pub(crate) async fn get_with_etag<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<(T, Option<String>), Error> {
        let resp = self.execute(ctx, Req::new(Method::GET, path)).await?;
        let v = self.parse_body(&Method::GET, path, &resp.headers, &resp.body)?;
        Ok((v, resp.etag().map(str::to_owned)))
    }

    /// Sends a JSON body with a method (POST/PATCH/PUT/DELETE) within an operation.
    pub(crate) async fn send_json(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Response, Error> {
        self.execute(ctx, Req::new(method, path).json(body)).await
    }

    /// GET a resource and parse it into a model (or `serde_json::Value`).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.get_ctx(&ctx, path)).await
    }

    /// PATCH a resource with a JSON body. Never retried once sent.
    pub async fn patch(&self, path: &str, body: &serde_json::Value) -> Result<Response, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.send_json(&ctx, Method::PATCH, path, body))
            .await
    }

    /// POST a JSON body (actions, creations). Never retried once sent.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Response, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.send_json(&ctx, Method::POST, path, body))
            .await
    }

    /// DELETE a resource. Never retried once sent.
    pub async fn delete(&self, path: &str) -> Result<Response, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.execute(&ctx, Req::new(Method::DELETE, path)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_uris() {
        assert_eq!(path_of("/redfish/v1/Tasks/1"), "/redfish/v1/Tasks/1");
        assert_eq!(
            path_of("https://10.0.0.1/redfish/v1/Tasks/1"),
            "/redfish/v1/Tasks/1"
        );
        assert_eq!(path_of("http://h:80"), "/");
        assert_eq!(path_of("redfish/v1"), "/redfish/v1");
        assert_eq!(
            path_of("/redfish/v1/Drives/Disk 0:Bay\"1\""),
            "/redfish/v1/Drives/Disk%200:Bay%221%22"
        );
        assert_eq!(
            path_of("/redfish/v1/Systems?$expand=.($levels=1)"),
            "/redfish/v1/Systems?$expand=.($levels=1)"
        );
        assert_eq!(path_of("/a%20b"), "/a%20b");
    }

    #[test]
    fn session_refusals_that_allow_basic_auth() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(session_refused_for_now(503, &[]));
        assert!(session_refused_for_now(429, &[]));
        assert!(session_refused_for_now(
            400,
            &ids(&["Base.1.8.SessionLimitExceeded"])
        ));
        assert!(session_refused_for_now(
            409,
            &ids(&["Base.1.16.ServiceTemporarilyUnavailable"])
        ));
        assert!(!session_refused_for_now(
            401,
            &ids(&["Base.1.8.SessionLimitExceeded"])
        ));
        assert!(!session_refused_for_now(403, &[]));
        assert!(!session_refused_for_now(
            400,
            &ids(&["Base.1.8.PropertyMissing"])
        ));
        assert!(!session_refused_for_now(409, &[]));
        assert!(!session_refused_for_now(500, &[]));
    }

    #[test]
    fn error_details_from_redfish_body() {
        let body = br#"{"error":{"code":"Base.1.8.GeneralError","message":"A general error has occurred.",
            "@Message.ExtendedInfo":[{"MessageId":"Base.1.8.PropertyValueNotInList","Message":"The value 'Foo' for the property BootSourceOverrideTarget is not in the list of acceptable values."}]}}"#;
        let (m, ids) = error_details(&HeaderMap::new(), body);
        assert!(m.unwrap().contains("BootSourceOverrideTarget"));
        assert_eq!(
            ids,
            ["Base.1.8.PropertyValueNotInList", "Base.1.8.GeneralError"]
        );
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        let (m, _) = error_details(
            &h,
            b"<html><head><title>502 Bad Gateway</title></head></html>",
        );
        assert_eq!(m.as_deref(), Some("HTML error page: 502 Bad Gateway"));
    }
}
