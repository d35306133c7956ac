//! One error type for everything the client does, sorted into classes that controllers map to
//! condition reasons.

use std::fmt;
use std::time::Duration;

use http::Method;

use crate::models::Task;

/// Coarse error classes. Controllers map these to condition reasons and requeue policies, so they are
/// stable; the [`ErrorKind`] underneath carries the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ErrorClass {
    /// The BMC could not be reached: connection refused/reset, DNS, TLS handshake or certificate failure.
    Unreachable,
    /// The BMC refused the credentials (HTTP 401/403, failed session login).
    AuthenticationFailed,
    /// The BMC does not offer what was asked (404/405/501, a missing resource, a reset type or boot
    /// target outside the advertised allowable values).
    NotSupported,
    /// The BMC (HTTP 400/412/4xx) or client-side validation against what the BMC advertises (attribute
    /// registry) rejected the request as invalid.
    Rejected,
    /// The BMC answered something this client cannot use: malformed JSON, HTML, a truncated or
    /// oversized body, redirect loops, missing headers.
    BadResponse,
    /// The BMC is busy or temporarily failing (503/429/409/5xx); try again later.
    Busy,
    /// A long-running task (firmware update, ...) ended in failure; the final task is attached.
    TaskFailed,
    /// A request timeout or the operation deadline expired.
    Timeout,
    /// A bug or invalid configuration on the client side.
    Internal,
}

impl ErrorClass {
    /// CamelCase name, suitable as a Kubernetes condition reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Unreachable => "Unreachable",
            ErrorClass::AuthenticationFailed => "AuthenticationFailed",
            ErrorClass::NotSupported => "NotSupported",
            ErrorClass::Rejected => "Rejected",
            ErrorClass::BadResponse => "BadResponse",
            ErrorClass::Busy => "Busy",
            ErrorClass::TaskFailed => "TaskFailed",
            ErrorClass::Timeout => "Timeout",
            ErrorClass::Internal => "Internal",
        }
    }

    /// True for classes where the same call may succeed later without any change (back off and retry).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorClass::Unreachable | ErrorClass::Busy | ErrorClass::Timeout
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid attribute in a settings write, found by validating against the attribute registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeError {
    /// Attribute name.
    pub name: String,
    /// Why it was rejected.
    pub reason: String,
}

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

/// What went wrong, one variant per reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// TCP connect (or name resolution) failed; nothing was sent.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// TLS handshake or certificate verification failed; nothing was sent.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The connection was closed or reset before a response arrived.
    #[error("connection closed before a response arrived: {0}")]
    ConnectionClosed(String),
    /// One request took longer than the per-request timeout.
    #[error("request timed out after {0:?}")]
    RequestTimeout(Duration),
    /// The operation's deadline expired (possibly while waiting for a permit, a retry or a poll).
    #[error("operation deadline exceeded")]
    DeadlineExceeded,
    /// The BMC answered with a non-success HTTP status.
    #[error("HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `Retry-After` the BMC asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The response body was larger than the configured cap.
    #[error("response body exceeds the cap of {limit} bytes")]
    BodyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The response body ended early or the connection broke while reading it.
    #[error("response body truncated: {0}")]
    Truncated(String),
    /// The body is not valid JSON for the expected model.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The body is not JSON (e.g. an HTML page).
    #[error("unexpected content type {0:?}, expected JSON")]
    ContentType(String),
    /// Redirects did not end.
    #[error("too many redirects ({0})")]
    TooManyRedirects(u32),
    /// A redirect pointed to another host; credentials are never sent there.
    #[error("refusing redirect to another host: {0}")]
    CrossHostRedirect(String),
    /// A response lacked something the protocol requires (a Location header, a token, ...).
    #[error("unexpected response: {0}")]
    Unexpected(String),
    /// The BMC does not offer the feature or value asked for.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A resource the operation needs does not exist (account, slot, subscription).
    #[error("not found: {0}")]
    NotFound(String),
    /// Settings failed validation against the BMC's attribute registry.
    #[error("invalid attributes: {}", join(.0))]
    InvalidAttributes(Vec<AttributeError>),
    /// The caller passed something invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A task ended in failure; the final state of the task is attached.
    #[error("task {} ended in state {}", .0.odata_id.as_deref().unwrap_or("?"), .0.task_state.as_ref().map(|s| s.as_str()).unwrap_or("?"))]
    TaskFailed(Box<Task>),
    /// Invalid client configuration (endpoint, CA bundle, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn join(errors: &[AttributeError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error of every client call: the BMC it talked to, the request (method and path, never the body),
/// the HTTP status and the Redfish message (`@Message.ExtendedInfo`) when there was one.
#[derive(Debug)]
pub struct Error {
    inner: Box<ErrorInner>,
}

#[derive(Debug)]
struct ErrorInner {
    bmc: String,
    method: Option<Method>,
    path: Option<String>,
    redfish_message: Option<String>,
    message_ids: Vec<String>,
    kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(bmc: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            inner: Box::new(ErrorInner {
                bmc: bmc.into(),
                method: None,
                path: None,
                redfish_message: None,
                message_ids: Vec::new(),
                kind,
            }),
        }
    }

    pub(crate) fn with_request(mut self, method: &Method, path: &str) -> Self {
        self.inner.method = Some(method.clone());
        self.inner.path = Some(path.to_owned());
        self
    }

    pub(crate) fn with_redfish(mut self, message: Option<String>, ids: Vec<String>) -> Self {
        self.inner.redfish_message = message;
        self.inner.message_ids = ids;
        self
    }

    /// Removes every occurrence of the given secrets from the messages this error carries (BMCs like to
    /// echo rejected property values, passwords included).
    pub(crate) fn scrub(mut self, secrets: &[&str]) -> Self {
        for s in secrets.iter().filter(|s| s.len() >= 3) {
            if let Some(m) = &mut self.inner.redfish_message {
                *m = m.replace(s, "<redacted>");
            }
            match &mut self.inner.kind {
                ErrorKind::Connect(m)
                | ErrorKind::Tls(m)
                | ErrorKind::ConnectionClosed(m)
                | ErrorKind::Truncated(m)
                | ErrorKind::InvalidJson(m)
                | ErrorKind::Unexpected(m)
                | ErrorKind::NotSupported(m)
                | ErrorKind::NotFound(m)
                | ErrorKind::InvalidInput(m)
                | ErrorKind::Config(m) => *m = m.replace(s, "<redacted>"),
                _ => {}
            }
        }
        self
    }

    /// The class controllers map to a condition reason.
    pub fn class(&self) -> ErrorClass {
        match &self.inner.kind {
            ErrorKind::Connect(_) | ErrorKind::Tls(_) | ErrorKind::ConnectionClosed(_) => {
                ErrorClass::Unreachable
            }
            ErrorKind::RequestTimeout(_) | ErrorKind::DeadlineExceeded => ErrorClass::Timeout,
            ErrorKind::Status { status, .. } => class_of_response(*status, &self.inner.message_ids),
            ErrorKind::BodyTooLarge { .. }
            | ErrorKind::Truncated(_)
            | ErrorKind::InvalidJson(_)
            | ErrorKind::ContentType(_)
            | ErrorKind::TooManyRedirects(_)
            | ErrorKind::CrossHostRedirect(_)
            | ErrorKind::Unexpected(_) => ErrorClass::BadResponse,
            ErrorKind::NotSupported(_) | ErrorKind::NotFound(_) => ErrorClass::NotSupported,
            ErrorKind::InvalidAttributes(_) | ErrorKind::InvalidInput(_) => ErrorClass::Rejected,
            ErrorKind::TaskFailed(_) => ErrorClass::TaskFailed,
            ErrorKind::Config(_) => ErrorClass::Internal,
        }
    }

    /// The detailed reason.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The BMC address (`host:port`) the error came from.
    pub fn bmc(&self) -> &str {
        &self.inner.bmc
    }

    /// The HTTP method of the failing request, if a request was involved.
    pub fn method(&self) -> Option<&Method> {
        self.inner.method.as_ref()
    }

    /// The path of the failing request, if a request was involved.
    pub fn path(&self) -> Option<&str> {
        self.inner.path.as_deref()
    }

    /// The HTTP status, if the BMC answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match &self.inner.kind {
            ErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `Retry-After` delay the BMC asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.inner.kind {
            ErrorKind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The human-readable Redfish message from the error body (`@Message.ExtendedInfo`), if any.
    pub fn redfish_message(&self) -> Option<&str> {
        self.inner.redfish_message.as_deref()
    }

    /// The Redfish `MessageId`s from the error body (e.g. `Base.1.8.ResourceAlreadyExists`).
    pub fn message_ids(&self) -> &[String] {
        &self.inner.message_ids
    }

    /// The final task, when the error is a failed task.
    pub fn task(&self) -> Option<&Task> {
        match &self.inner.kind {
            ErrorKind::TaskFailed(t) => Some(t),
            _ => None,
        }
    }
}

/// Parts of Redfish `MessageId`s that say "out of sessions / temporarily unavailable, try later"
/// (`Base.1.x.SessionLimitExceeded`, `Base.1.x.ServiceTemporarilyUnavailable`, iDRAC's `RAC0218`
/// "maximum number of user sessions is reached", ...), whatever the HTTP status says.
const BUSY_MESSAGE_IDS: &[&str] = &[
    "sessionlimitexceeded",
    "servicetemporarilyunavailable",
    "toomanysessions",
    "maximumsessions",
    "rac0218",
];

/// True when a `MessageId` says the BMC is out of sessions or temporarily unavailable.
pub(crate) fn is_busy_message_id(id: &str) -> bool {
    let id = id.to_ascii_lowercase();
    BUSY_MESSAGE_IDS.iter().any(|b| id.contains(b))
}

/// Maps an HTTP error status and the Redfish `MessageId`s of its body to a class: a 4xx that says
/// "session limit exceeded" (some BMCs answer 400 or 409 to a login when their slots are full) is
/// `Busy`; 401/403 stay `AuthenticationFailed` whatever the body says.
pub(crate) fn class_of_response(status: u16, message_ids: &[String]) -> ErrorClass {
    if (400..500).contains(&status)
        && !matches!(status, 401 | 403)
        && message_ids.iter().any(|id| is_busy_message_id(id))
    {
        return ErrorClass::Busy;
    }
    class_of_status(status)
}

/// Maps an HTTP error status to its class.
pub(crate) fn class_of_status(status: u16) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::AuthenticationFailed,
        404 | 405 | 501 => ErrorClass::NotSupported,
        408 => ErrorClass::Timeout,
        409 | 429 => ErrorClass::Busy,
        500..=599 => ErrorClass::Busy,
        _ => ErrorClass::Rejected,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BMC {}", self.inner.bmc)?;
        if let (Some(m), Some(p)) = (&self.inner.method, &self.inner.path) {
            write!(f, ": {m} {p}")?;
        }
        write!(f, ": {} ({})", self.inner.kind, self.class())?;
        if let Some(msg) = &self.inner.redfish_message {
            write!(f, ": {msg}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_statuses() {
        assert_eq!(class_of_status(401), ErrorClass::AuthenticationFailed);
        assert_eq!(class_of_status(403), ErrorClass::AuthenticationFailed);
        assert_eq!(class_of_status(404), ErrorClass::NotSupported);
        assert_eq!(class_of_status(405), ErrorClass::NotSupported);
        assert_eq!(class_of_status(501), ErrorClass::NotSupported);
        assert_eq!(class_of_status(503), ErrorClass::Busy);
        assert_eq!(class_of_status(500), ErrorClass::Busy);
        assert_eq!(class_of_status(409), ErrorClass::Busy);
        assert_eq!(class_of_status(400), ErrorClass::Rejected);
        assert_eq!(class_of_status(412), ErrorClass::Rejected);
    }

    #[test]
    fn session_limit_messages_are_busy_except_on_401() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let limit = ids(&["Base.1.8.SessionLimitExceeded", "Base.1.8.GeneralError"]);
        assert_eq!(class_of_response(400, &limit), ErrorClass::Busy);
        assert_eq!(class_of_response(409, &limit), ErrorClass::Busy);
        assert_eq!(
            class_of_response(400, &ids(&["Base.1.16.ServiceTemporarilyUnavailable"])),
            ErrorClass::Busy
        );
        assert_eq!(
            class_of_response(400, &ids(&["IDRAC.2.8.RAC0218"])),
            ErrorClass::Busy
        );
        assert_eq!(
            class_of_response(401, &limit),
            ErrorClass::AuthenticationFailed
        );
        assert_eq!(
            class_of_response(400, &ids(&["Base.1.8.PropertyMissing"])),
            ErrorClass::Rejected
        );
        assert_eq!(class_of_response(404, &[]), ErrorClass::NotSupported);
        let e = Error::new(
            "b",
            ErrorKind::Status {
                status: 400,
                retry_after: None,
            },
        )
        .with_redfish(None, limit);
        assert_eq!(e.class(), ErrorClass::Busy);
    }

    #[test]
    fn display_carries_bmc_method_path_status_and_message() {
        let e = Error::new(
            "10.0.0.1:443",
            ErrorKind::Status {
                status: 400,
                retry_after: None,
            },
        )
        .with_request(&Method::PATCH, "/redfish/v1/Systems/1")
        .with_redfish(
            Some("The value 'x' for Password is bad".into()),
            vec!["Base.1.0.X".into()],
        )
        .scrub(&["x'"]);
        let s = e.to_string();
        assert!(s.contains("10.0.0.1:443"), "{s}");
        assert!(s.contains("PATCH /redfish/v1/Systems/1"), "{s}");
        assert!(s.contains("HTTP 400"), "{s}");
        assert!(s.contains("Rejected"), "{s}");
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.message_ids(), ["Base.1.0.X"]);
    }

    #[test]
    fn scrub_removes_secrets() {
        let e = Error::new(
            "b",
            ErrorKind::InvalidInput("password s3cr3t! rejected".into()),
        )
        .with_redfish(Some("value s3cr3t! invalid".into()), vec![])
        .scrub(&["s3cr3t!"]);
        let s = format!("{e} {e:?}");
        assert!(!s.contains("s3cr3t!"), "{s}");
    }
}
