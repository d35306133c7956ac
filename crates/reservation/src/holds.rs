//! In-process holds: which server a claim is about to bind (or just bound) in this process.
//!
//! Concurrent reconciles of different claims read the same (possibly slightly stale) Server
//! cache; without holds they would all pick the same first-fit server and all but one would lose
//! the API race. Selection and taking the hold happen under one lock, so two reconciles in this
//! process never try the same server. Holds are an optimisation and a courtesy, not the guard:
//! the `resourceVersion` precondition on the Server write decides. A hold lapses after its
//! time-to-live (by then the cache shows the `serverClaimRef`) or when it is released.

use crate::matching::ClaimKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Hold {
    claim: ClaimKey,
    since: Instant,
}

/// Server name → the claim holding it in this process.
#[derive(Debug)]
pub struct Holds {
    ttl: Duration,
    inner: Mutex<HashMap<String, Hold>>,
}

/// A read view of the holds, valid while [`Holds::select`] runs.
#[derive(Debug)]
pub struct HoldView<'a> {
    map: &'a HashMap<String, Hold>,
    ttl: Duration,
    now: Instant,
}

impl HoldView<'_> {
    /// The claim holding `server`, if the hold is still live.
    pub fn holder(&self, server: &str) -> Option<ClaimKey> {
        self.map
            .get(server)
            .filter(|h| self.now.duration_since(h.since) < self.ttl)
            .map(|h| h.claim.clone())
    }
}

impl Holds {
    /// Holds that lapse after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Hold>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `choose` with a view of the live holds and takes a hold for `claim` on the server it
    /// returns, atomically with respect to other selections.
    pub fn select<T>(
        &self,
        claim: &ClaimKey,
        choose: impl FnOnce(&HoldView<'_>) -> Option<(String, T)>,
    ) -> Option<T> {
        let mut map = self.lock();
        let now = Instant::now();
        let ttl = self.ttl;
        map.retain(|_, h| now.duration_since(h.since) < ttl);
        let (server, value) = choose(&HoldView {
            map: &map,
            ttl,
            now,
        })?;
        map.insert(
            server,
            Hold {
                claim: claim.clone(),
                since: now,
            },
        );
        Some(value)
    }

    /// The claim holding `server`, if any.
    pub fn holder(&self, server: &str) -> Option<ClaimKey> {
        let map = self.lock();
        HoldView {
            map: &map,
            ttl: self.ttl,
            now: Instant::now(),
        }
        .holder(server)
    }

    /// The servers `claim` holds (normally at most one).
    pub fn held_by(&self, claim: &ClaimKey) -> Vec<String> {
        let now = Instant::now();
        let mut servers: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, h)| h.claim == *claim && now.duration_since(h.since) < self.ttl)
            .map(|(s, _)| s.clone())
            .collect();
        servers.sort();
        servers
    }

    /// Drops the hold on `server` if `claim` holds it.
    pub fn release(&self, server: &str, claim: &ClaimKey) {
        let mut map = self.lock();
        if map.get(server).is_some_and(|h| h.claim == *claim) {
            map.remove(server);
        }
    }

    /// Drops every hold of `claim`.
    pub fn release_claim(&self, claim: &ClaimKey) {
        self.lock().retain(|_, h| h.claim != *claim);
    }

    /// Number of live holds (for tests and debugging).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|h| now.duration_since(h.since) < self.ttl)
            .count()
    }

    /// Whether there are no live holds.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_takes_a_hold_that_others_see() {
        let holds = Holds::new(Duration::from_secs(60));
        let a = ClaimKey::new("ns", "a");
        let b = ClaimKey::new("ns", "b");
        let got = holds.select(&a, |v| {
            assert_eq!(v.holder("s1"), None);
            Some(("s1".to_string(), 1))
        });
        assert_eq!(got, Some(1));
        assert_eq!(holds.holder("s1"), Some(a.clone()));
        // b sees a's hold during its own selection and picks something else.
        holds.select(&b, |v| {
            assert_eq!(v.holder("s1"), Some(a.clone()));
            Some(("s2".to_string(), ()))
        });
        assert_eq!(holds.held_by(&b), vec!["s2".to_string()]);
        // Releasing by the wrong claim does nothing.
        holds.release("s1", &b);
        assert_eq!(holds.holder("s1"), Some(a.clone()));
        holds.release("s1", &a);
        assert_eq!(holds.holder("s1"), None);
        holds.release_claim(&b);
        assert!(holds.is_empty());
    }

    #[test]
    fn choosing_nothing_takes_no_hold() {
        let holds = Holds::new(Duration::from_secs(60));
        let got: Option<()> = holds.select(&ClaimKey::new("ns", "a"), |_| None);
        assert!(got.is_none());
        assert_eq!(holds.len(), 0);
    }

    #[test]
    fn holds_lapse() {
        let holds = Holds::new(Duration::from_millis(1));
        let a = ClaimKey::new("ns", "a");
        holds.select(&a, |_| Some(("s1".to_string(), ())));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(holds.holder("s1"), None);
        assert!(holds.held_by(&a).is_empty());
    }

    #[test]
    fn concurrent_selections_never_share_a_server() {
        let holds = std::sync::Arc::new(Holds::new(Duration::from_secs(60)));
        let servers: Vec<String> = (0..50).map(|i| format!("s{i:02}")).collect();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let holds = holds.clone();
                let servers = servers.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..5 {
                        let claim = ClaimKey::new("ns", format!("c{t}-{i}"));
                        if let Some(s) = holds.select(&claim, |v| {
                            servers
                                .iter()
                                .find(|s| v.holder(s).is_none())
                                .map(|s| (s.clone(), s.clone()))
                        }) {
                            mine.push(s);
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(all.len(), 40);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 40, "a server was handed out twice");
    }
}
