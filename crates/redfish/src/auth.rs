//! Authentication state: one Redfish session per client (shared by all concurrent callers, login
//! single-flighted), or HTTP basic auth — also, in `Auto` mode, for a while when the BMC has no
//! session slot left (sessions of killed processes linger until the BMC expires them).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use http::HeaderValue;

use crate::secret::Credentials;

/// How a client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Redfish session if the service offers one, else basic auth (e.g. sushy-emulator, which answers
    /// 404 on the SessionService). When the BMC refuses a session because its session slots are
    /// used up or it is temporarily unavailable (503, 429, `SessionLimitExceeded`, ...), basic auth
    /// is used until `ClientOptions::session_retry_interval` has passed, then a session is tried
    /// again.
    #[default]
    Auto,
    /// Redfish session only (`X-Auth-Token`); fails if the service has no SessionService, and with
    /// `Busy` while the BMC refuses sessions because its session slots are used up.
    Session,
    /// HTTP basic auth on every request.
    Basic,
}

/// A Redfish session: the token and the session resource (deleted on logout).
pub(crate) struct Session {
    pub token: HeaderValue,
    pub location: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<redacted>")
            .field("location", &self.location)
            .finish()
    }
}

/// The authentication in use for one request.
#[derive(Clone, Debug)]
pub(crate) enum Credential {
    /// Basic auth header (sensitive).
    Basic(HeaderValue),
    /// A session token (sensitive).
    Token(Arc<Session>),
}

#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    Unresolved,
    Basic,
    /// `Auto` mode: the BMC refused a session (no slot left, unavailable); basic auth until
    /// `retry_at`, then the next caller tries to open a session again.
    Fallback {
        retry_at: Instant,
    },
    Session(Arc<Session>),
}

pub(crate) struct AuthState {
    pub mode: AuthMode,
    pub resolved: Mutex<Resolved>,
    /// Held while logging in, so concurrent callers wait for one login instead of opening sessions.
    pub login_lock: tokio::sync::Mutex<()>,
    basic: HeaderValue,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    pub(crate) fn new(mode: AuthMode, creds: &Credentials) -> Self {
        let raw = format!("{}:{}", creds.username(), creds.password().expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut basic = HeaderValue::from_str(&format!("Basic {encoded}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
        basic.set_sensitive(true);
        Self {
            mode,
            resolved: Mutex::new(Resolved::Unresolved),
            login_lock: tokio::sync::Mutex::new(()),
            basic,
        }
    }

    pub(crate) fn basic_header(&self) -> HeaderValue {
        self.basic.clone()
    }

    pub(crate) fn current(&self) -> Option<Credential> {
        let r = self
            .resolved
            .lock()
            .map(|r| r.clone())
            .unwrap_or(Resolved::Unresolved);
        match r {
            Resolved::Unresolved => None,
            Resolved::Fallback { retry_at } if Instant::now() >= retry_at => None,
            Resolved::Basic | Resolved::Fallback { .. } => {
                Some(Credential::Basic(self.basic.clone()))
            }
            Resolved::Session(s) => Some(Credential::Token(s)),
        }
    }

    pub(crate) fn set(&self, r: Resolved) {
        if let Ok(mut g) = self.resolved.lock() {
            *g = r;
        }
    }

    /// True while basic auth stands in for a session the BMC refused (retry pending or due).
    pub(crate) fn in_fallback(&self) -> bool {
        self.resolved
            .lock()
            .is_ok_and(|g| matches!(*g, Resolved::Fallback { .. }))
    }

    /// Forgets the session if it is still the one that just got a 401 (another caller may already have
    /// logged in again).
    pub(crate) fn invalidate(&self, stale: &Arc<Session>) {
        if let Ok(mut g) = self.resolved.lock()
            && let Resolved::Session(cur) = &*g
            && Arc::ptr_eq(cur, stale)
        {
            *g = Resolved::Unresolved;
        }
    }

    /// Takes the current session out (for logout).
    pub(crate) fn take_session(&self) -> Option<Arc<Session>> {
        let mut g = self.resolved.lock().ok()?;
        match std::mem::replace(&mut *g, Resolved::Unresolved) {
            Resolved::Session(s) => Some(s),
            other => {
                *g = other;
                None
            }
        }
    }

    /// The auth mode actually in use, once resolved.
    pub(crate) fn resolved_mode(&self) -> Option<AuthMode> {
        match &*self.resolved.lock().ok()? {
            Resolved::Unresolved => None,
            Resolved::Basic | Resolved::Fallback { .. } => Some(AuthMode::Basic),
            Resolved::Session(_) => Some(AuthMode::Session),
        }
    }
}
