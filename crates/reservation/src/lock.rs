//! The per-claim binding lock: which reservation instance may try to bind a claim right now.
//!
//! The `resourceVersion` precondition on `Server.spec.serverClaimRef` makes sure a *server* is
//! bound to one claim. A *claim* could still end up referenced by two servers if two instances
//! (e.g. two replicas during a fencing failure, or shards) picked different servers for it at
//! once. So before its first Server write an instance records itself on the claim, with the
//! claim's `resourceVersion` as precondition, in the annotation [`ANNOTATION`]
//! (`<identity>@<unix-millis>`). While the lock is fresh only its holder writes
//! `serverClaimRef`s for the claim, one server at a time; the holder stops starting writes after
//! half the timeout, so another instance can take over a lapsed lock (after the full timeout)
//! without overlapping. The lock is removed in the same write that sets `spec.serverRef`.
//!
//! Assumptions (documented in the README): clocks of the instances agree within a quarter of the
//! timeout, and a Server write either completes or times out within a quarter of it.

use std::time::Duration;

/// Annotation on a ServerClaim naming the instance that is binding it, and since when.
pub const ANNOTATION: &str = "reservation.metal.ironcore.dev/binding-lock";

/// A parsed binding lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingLock {
    /// Identity of the instance holding the lock.
    pub holder: String,
    /// When it was taken, in Unix milliseconds by the holder's clock.
    pub since_millis: i64,
}

impl BindingLock {
    /// Parses the annotation value; `None` when absent or malformed (treated as no lock).
    pub fn parse(value: &str) -> Option<Self> {
        let (holder, millis) = value.rsplit_once('@')?;
        if holder.is_empty() {
            return None;
        }
        Some(Self {
            holder: holder.to_string(),
            since_millis: millis.parse().ok()?,
        })
    }

    /// The annotation value.
    pub fn format(&self) -> String {
        format!("{}@{}", self.holder, self.since_millis)
    }
}

/// What an instance may do about a claim's binding lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockDecision {
    /// We hold a fresh lock: Server writes may start during `budget`.
    Held {
        /// Time left in which to start Server writes.
        budget: Duration,
    },
    /// No usable lock: take (or refresh, or take over) the lock before any Server write.
    Acquire {
        /// Whether another instance's lapsed lock is being taken over; the new holder must then
        /// look up the servers afresh in case the previous holder's last write landed.
        takeover: bool,
    },
    /// Another instance holds a fresh lock: do nothing for `wait`.
    Wait {
        /// Until the lock lapses.
        wait: Duration,
    },
}

/// Decides about `lock` for instance `me` at `now_millis` with lock `timeout`.
pub fn decide(
    lock: Option<&BindingLock>,
    me: &str,
    now_millis: i64,
    timeout: Duration,
) -> LockDecision {
    let Some(lock) = lock else {
        return LockDecision::Acquire { takeover: false };
    };
    let age = Duration::from_millis(now_millis.saturating_sub(lock.since_millis).max(0) as u64);
    if lock.holder == me {
        let budget = (timeout / 2).saturating_sub(age);
        if budget.is_zero() {
            LockDecision::Acquire { takeover: false }
        } else {
            LockDecision::Held { budget }
        }
    } else if age < timeout {
        LockDecision::Wait {
            wait: timeout - age,
        }
    } else {
        LockDecision::Acquire { takeover: true }
    }
}

/// Current wall-clock time in Unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(30);

    fn lock(holder: &str, since: i64) -> BindingLock {
        BindingLock {
            holder: holder.into(),
            since_millis: since,
        }
    }

    #[test]
    fn parse_and_format_round_trip() {
        let l = lock("pod-a@zone", 1234);
        assert_eq!(BindingLock::parse(&l.format()), Some(l));
        assert_eq!(BindingLock::parse("nonsense"), None);
        assert_eq!(BindingLock::parse("@12"), None);
        assert_eq!(BindingLock::parse("a@x"), None);
    }

    #[test]
    fn absent_lock_is_acquired() {
        assert_eq!(
            decide(None, "a", 0, T),
            LockDecision::Acquire { takeover: false }
        );
    }

    #[test]
    fn own_lock_is_used_for_half_the_timeout() {
        assert_eq!(
            decide(Some(&lock("a", 1_000)), "a", 6_000, T),
            LockDecision::Held {
                budget: Duration::from_secs(10)
            }
        );
        assert_eq!(
            decide(Some(&lock("a", 1_000)), "a", 16_000, T),
            LockDecision::Acquire { takeover: false },
            "refresh after half the timeout"
        );
    }

    #[test]
    fn foreign_lock_is_respected_until_it_lapses() {
        assert_eq!(
            decide(Some(&lock("b", 1_000)), "a", 11_000, T),
            LockDecision::Wait {
                wait: Duration::from_secs(20)
            }
        );
        assert_eq!(
            decide(Some(&lock("b", 1_000)), "a", 31_000, T),
            LockDecision::Acquire { takeover: true }
        );
        // A lock from the future (clock skew) counts as just taken.
        assert_eq!(
            decide(Some(&lock("b", 50_000)), "a", 31_000, T),
            LockDecision::Wait { wait: T }
        );
    }
}
