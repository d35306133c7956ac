//! Accounts and sessions of one BMC.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;

/// Privilege class of a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Privilege {
    /// No access.
    None,
    /// Read, log in, change own password.
    ReadOnly,
    /// Also configure components (power, boot, BIOS, media, updates).
    Operator,
    /// Also manage accounts.
    Administrator,
}

impl Privilege {
    pub(crate) fn of_role(role: &str) -> Privilege {
        match role {
            "Administrator" => Privilege::Administrator,
            "Operator" => Privilege::Operator,
            "ReadOnly" => Privilege::ReadOnly,
            _ => Privilege::None,
        }
    }
}

/// A local account.
#[derive(Clone)]
pub(crate) struct Account {
    pub id: String,
    pub username: String,
    /// `None`: captured from a template, no known password; it cannot log in.
    pub password: Option<String>,
    pub role: String,
    pub enabled: bool,
    pub locked: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A Redfish session.
#[derive(Clone)]
pub(crate) struct Session {
    pub id: String,
    pub token: String,
    pub username: String,
    pub created: Instant,
    pub last_used: Instant,
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    pub username: String,
    pub privilege: Privilege,
    /// Set when authenticated by session token.
    pub session: Option<String>,
}

/// Why a login failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginError {
    BadCredentials,
    LimitExceeded,
}

/// Accounts and sessions.
#[derive(Default)]
pub(crate) struct Accounts {
    pub list: Vec<Account>,
    sessions: HashMap<String, Session>,
}

fn random_hex(rng: &mut impl Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl Accounts {
    pub(crate) fn new(list: Vec<Account>) -> Self {
        Accounts {
            list,
            sessions: HashMap::new(),
        }
    }

    fn check(&self, username: &str, password: &str) -> Option<&Account> {
        self.list.iter().find(|a| {
            a.enabled
                && !a.locked
                && a.username == username
                && a.password.as_deref() == Some(password)
        })
    }

    /// Basic authentication.
    pub(crate) fn basic(&self, username: &str, password: &str) -> Option<Principal> {
        self.check(username, password).map(|a| Principal {
            username: a.username.clone(),
            privilege: Privilege::of_role(&a.role),
            session: None,
        })
    }

    /// Token authentication; refreshes the session's idle timer.
    pub(crate) fn token(
        &mut self,
        token: &str,
        now: Instant,
        timeout: Duration,
    ) -> Option<Principal> {
        let s = self.sessions.get_mut(token)?;
        if now.saturating_duration_since(s.last_used) > timeout {
            self.sessions.remove(token);
            return None;
        }
        s.last_used = now;
        let username = s.username.clone();
        let id = s.id.clone();
        let account = self
            .list
            .iter()
            .find(|a| a.username == username && a.enabled)?;
        Some(Principal {
            username,
            privilege: Privilege::of_role(&account.role),
            session: Some(id),
        })
    }

    /// Drops sessions idle for longer than `timeout`; returns how many.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        let before = self.sessions.len();
        self.sessions
            .retain(|_, s| now.saturating_duration_since(s.last_used) <= timeout);
        before - self.sessions.len()
    }

    /// Creates a session (after expiring idle ones).
    pub(crate) fn login(
        &mut self,
        username: &str,
        password: &str,
        now: Instant,
        timeout: Duration,
        limit: usize,
        rng: &mut impl Rng,
    ) -> Result<Session, LoginError> {
        let account = self
            .check(username, password)
            .ok_or(LoginError::BadCredentials)?;
        if Privilege::of_role(&account.role) == Privilege::None {
            return Err(LoginError::BadCredentials);
        }
        let username = account.username.clone();
        self.expire(now, timeout);
        if self.sessions.len() >= limit {
            return Err(LoginError::LimitExceeded);
        }
        let s = Session {
            id: random_hex(rng, 8),
            token: random_hex(rng, 16),
            username,
            created: now,
            last_used: now,
        };
        self.sessions.insert(s.token.clone(), s.clone());
        Ok(s)
    }

    /// Sessions, oldest first.
    pub(crate) fn sessions(&self) -> Vec<&Session> {
        let mut v: Vec<&Session> = self.sessions.values().collect();
        v.sort_by_key(|s| s.created);
        v
    }

    /// A session by id.
    pub(crate) fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.values().find(|s| s.id == id)
    }

    /// Number of live sessions.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Deletes a session by id.
    pub(crate) fn logout(&mut self, id: &str) -> bool {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.id != id);
        before != self.sessions.len()
    }

    /// Drops every session (BMC restart); returns how many.
    pub(crate) fn clear_sessions(&mut self) -> usize {
        let n = self.sessions.len();
        self.sessions.clear();
        n
    }

    /// Drops the sessions of a user; returns how many.
    pub(crate) fn drop_sessions_of(&mut self, username: &str) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.username != username);
        before - self.sessions.len()
    }

    /// The next free numeric account id.
    pub(crate) fn next_id(&self) -> String {
        let max = self
            .list
            .iter()
            .filter_map(|a| a.id.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        (max + 1).to_string()
    }

    /// An account by id.
    pub(crate) fn get(&self, id: &str) -> Option<&Account> {
        self.list.iter().find(|a| a.id == id)
    }

    /// An account by id, mutable.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.list.iter_mut().find(|a| a.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn accounts() -> Accounts {
        Accounts::new(vec![
            Account {
                id: "1".into(),
                username: "admin".into(),
                password: Some("pw".into()),
                role: "Administrator".into(),
                enabled: true,
                locked: false,
            },
            Account {
                id: "2".into(),
                username: "root".into(),
                password: None,
                role: "Administrator".into(),
                enabled: true,
                locked: false,
            },
        ])
    }

    #[test]
    fn basic_auth_checks_password_and_state() {
        let mut a = accounts();
        assert_eq!(
            a.basic("admin", "pw").unwrap().privilege,
            Privilege::Administrator
        );
        assert!(a.basic("admin", "bad").is_none());
        assert!(
            a.basic("root", "").is_none(),
            "template accounts without password cannot log in"
        );
        a.get_mut("1").unwrap().enabled = false;
        assert!(a.basic("admin", "pw").is_none());
    }

    #[test]
    fn sessions_limit_and_expire() {
        let mut a = accounts();
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let timeout = Duration::from_secs(60);
        let s1 = a.login("admin", "pw", t0, timeout, 2, &mut rng).unwrap();
        let _s2 = a.login("admin", "pw", t0, timeout, 2, &mut rng).unwrap();
        assert_eq!(
            a.login("admin", "pw", t0, timeout, 2, &mut rng).err(),
            Some(LoginError::LimitExceeded)
        );
        assert_eq!(
            a.login("admin", "bad", t0, timeout, 2, &mut rng).err(),
            Some(LoginError::BadCredentials)
        );
        assert_eq!(
            a.token(&s1.token, t0 + Duration::from_secs(30), timeout)
                .unwrap()
                .session,
            Some(s1.id.clone())
        );
        assert!(a.logout(&s1.id));
        assert!(a.token(&s1.token, t0, timeout).is_none());
        // The other session idles out, freeing its slot.
        let later = t0 + Duration::from_secs(120);
        assert!(a.login("admin", "pw", later, timeout, 1, &mut rng).is_ok());
        assert_eq!(a.session_count(), 1);
    }

    #[test]
    fn next_id_counts_up() {
        assert_eq!(accounts().next_id(), "3");
    }
}
