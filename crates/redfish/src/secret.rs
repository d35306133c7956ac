//! Secrets and credentials that must never show up in logs, `Debug` output, events or status.

use std::fmt;

/// A secret string (password, session token) whose `Debug` output is redacted and which has no
/// `Display`, so it cannot be formatted into a log line or an error by accident.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value; call this only where the value is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// The user name and password a client authenticates with (to open a session or for basic auth).
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: Secret,
}

impl Credentials {
    /// Builds credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name (not secret on its own; shown in `Debug`).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password, wrapped so that it is not printed by accident.
    pub fn password(&self) -> &Secret {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password() {
        let c = Credentials::new("root", "hunter2-very-secret");
        let dbg = format!("{c:?} {:?} {:#?}", c.password(), c);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("root"));
        assert!(dbg.contains("redacted"));
        assert_eq!(c.password().expose(), "hunter2-very-secret");
    }
}
