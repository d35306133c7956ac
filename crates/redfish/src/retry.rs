//! Retry policy (pure): which failures are retried, after how long.
//!
//! Only idempotent reads are retried after the request may have reached the BMC. Actions (reset,
//! update, insert media, PATCH) are never blindly repeated; the operations make them safe by reading
//! state first. The one exception is a failure that provably happened before anything was sent
//! (TCP connect or TLS handshake failed): repeating such a request repeats nothing.

use std::time::{Duration, SystemTime};

/// Backoff parameters. Delays grow exponentially from `initial_backoff`, capped at `max_backoff`, with
/// "equal jitter" (half fixed, half random) so that many clients do not retry in lockstep.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound for a computed delay (a `Retry-After` from the BMC may be longer).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// How one attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Nothing reached the BMC (connect or TLS handshake failed).
    NotSent,
    /// The request may have reached the BMC but no usable response came back (connection closed,
    /// timeout, truncated body).
    Transport,
    /// The BMC answered with an error status.
    Status {
        /// HTTP status code.
        status: u16,
        /// `Retry-After`, if the BMC sent one.
        retry_after: Option<Duration>,
    },
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Give up and report the failure.
    GiveUp,
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Backoff before retry number `attempt` (1 = first retry); `jitter` in `[0, 1]`.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let half = base / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Decides whether to retry after `attempt` attempts failed with `failure`, given whether the
    /// request is idempotent and how much time is left until the operation deadline.
    pub fn decide(
        &self,
        idempotent: bool,
        attempt: u32,
        failure: &Failure,
        remaining: Duration,
        jitter: f64,
    ) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        let delay = match failure {
            Failure::NotSent => self.backoff(attempt, jitter),
            Failure::Transport if idempotent => self.backoff(attempt, jitter),
            Failure::Status {
                status,
                retry_after,
            } if idempotent && retryable_status(*status) => match retry_after {
                Some(ra) => *ra,
                None => self.backoff(attempt, jitter),
            },
            _ => return Decision::GiveUp,
        };
        // Never sleep into the deadline: a retry that cannot finish in time is pointless.
        if delay >= remaining {
            return Decision::GiveUp;
        }
        Decision::RetryAfter(delay)
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::try_from(date.timestamp()).ok()?))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(8));
        assert!(p.backoff(30, 0.0) >= Duration::from_secs(4));
    }

    #[test]
    fn reads_retry_on_transient_failures() {
        let p = RetryPolicy::default();
        for f in [
            Failure::NotSent,
            Failure::Transport,
            Failure::Status {
                status: 503,
                retry_after: None,
            },
            Failure::Status {
                status: 500,
                retry_after: None,
            },
            Failure::Status {
                status: 504,
                retry_after: None,
            },
        ] {
            assert!(
                matches!(p.decide(true, 1, &f, LONG, 0.5), Decision::RetryAfter(_)),
                "{f:?}"
            );
        }
    }

    #[test]
    fn reads_do_not_retry_client_errors() {
        let p = RetryPolicy::default();
        for s in [400, 401, 403, 404, 405, 409, 412] {
            let f = Failure::Status {
                status: s,
                retry_after: None,
            };
            assert_eq!(p.decide(true, 1, &f, LONG, 0.5), Decision::GiveUp, "{s}");
        }
    }

    #[test]
    fn actions_are_never_repeated_once_sent() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(false, 1, &Failure::Transport, LONG, 0.5),
            Decision::GiveUp
        );
        let f = Failure::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(p.decide(false, 1, &f, LONG, 0.5), Decision::GiveUp);
        // ...but a request that never left the client may be sent (for the first time) again.
        assert!(matches!(
            p.decide(false, 1, &Failure::NotSent, LONG, 0.5),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_deadline() {
        let p = RetryPolicy::default();
        let f = Failure::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(20)),
        };
        assert_eq!(
            p.decide(true, 1, &f, Duration::from_secs(60), 0.5),
            Decision::RetryAfter(Duration::from_secs(20))
        );
        assert_eq!(
            p.decide(true, 1, &f, Duration::from_secs(10), 0.5),
            Decision::GiveUp
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(matches!(
            p.decide(true, 2, &Failure::Transport, LONG, 0.0),
            Decision::RetryAfter(_)
        ));
        assert_eq!(
            p.decide(true, 3, &Failure::Transport, LONG, 0.0),
            Decision::GiveUp
        );
        assert_eq!(
            RetryPolicy::none().decide(true, 1, &Failure::NotSent, LONG, 0.0),
            Decision::GiveUp
        );
    }

    #[test]
    fn parses_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
