//! Automatic BMC recovery: when a BMC has answered with errors (or not at all) for a while,
//! reset its Manager, at most `limit` times per `window`. Off unless configured.
//!
//! Every attempt is recorded (annotation [`HISTORY_ANNOTATION`], compare-and-swap) before the
//! reset is sent, and attempts are at least `after` apart, so a controller killed between
//! record and request never sends twice and never exceeds the limit.

use std::time::Duration;

use api::constants::reasons;
use k8s_openapi::jiff::Timestamp;

/// BMC annotation: RFC 3339 times of the automatic resets within the window, comma-separated.
pub const HISTORY_ANNOTATION: &str = "metal.ironcore.dev/auto-reset-history";

/// When and how often to reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The BMC's Ready has been False this long (and the last attempt is this old).
    pub after: Duration,
    /// At most this many resets per `window`.
    pub limit: u32,
    /// The rate-limit window.
    pub window: Duration,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not needed (Ready, an ineligible reason, too early, or disabled).
    Nothing,
    /// Record this history (the new attempt last), then reset.
    Reset(Vec<Timestamp>),
    /// The limit is reached; the next attempt may go at this time.
    RateLimited(Timestamp),
}

/// Ready=False reasons a reset can cure: the BMC answers with errors, or not at all. Wrong
/// credentials and missing configuration are not the BMC's fault.
fn eligible(reason: &str) -> bool {
    [
        reasons::CONNECTION_FAILED,
        reasons::INTERNAL_SERVER_ERROR,
        reasons::UNKNOWN_ERROR,
    ]
    .contains(&reason)
}

/// Decides: `not_ready` is the reason of a False Ready condition and since when.
pub fn decide(
    policy: Option<&Policy>,
    not_ready: Option<(&str, Timestamp)>,
    history: &[Timestamp],
    now: Timestamp,
) -> Step {
    let (Some(p), Some((reason, since))) = (policy, not_ready) else {
        return Step::Nothing;
    };
    let age = |t: Timestamp| now.duration_since(t).unsigned_abs();
    if p.limit == 0 || !eligible(reason) || age(since) < p.after {
        return Step::Nothing;
    }
    let mut recent: Vec<Timestamp> = history
        .iter()
        .copied()
        .filter(|t| age(*t) < p.window)
        .collect();
    recent.sort();
    if recent.last().is_some_and(|t| age(*t) < p.after) {
        return Step::Nothing;
    }
    if recent.len() >= p.limit as usize {
        let oldest = recent[recent.len() - p.limit as usize];
        return Step::RateLimited(oldest + p.window);
    }
    recent.push(now);
    Step::Reset(recent)
}

/// Reads the history annotation (unparsable entries are dropped).
pub fn parse_history(value: Option<&str>) -> Vec<Timestamp> {
    value
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

/// Writes the history annotation value.
pub fn format_history(history: &[Timestamp]) -> String {
    history
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        after: Duration::from_secs(300),
        limit: 2,
        window: Duration::from_secs(3600),
    };

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn resets_only_when_enabled_eligible_and_long_enough() {
        let down = Some(("ConnectionFailed", t(0)));
        assert_eq!(decide(None, down, &[], t(9999)), Step::Nothing);
        assert_eq!(decide(Some(&P), None, &[], t(9999)), Step::Nothing);
        assert_eq!(decide(Some(&P), down, &[], t(299)), Step::Nothing);
        assert_eq!(
            decide(Some(&P), down, &[], t(300)),
            Step::Reset(vec![t(300)])
        );
        for r in ["InternalServerError", "UnknownError"] {
            assert!(matches!(
                decide(Some(&P), Some((r, t(0))), &[], t(300)),
                Step::Reset(_)
            ));
        }
        for r in ["AuthenticationFailed", "MissingCredentials", "NoAddress"] {
            assert_eq!(
                decide(Some(&P), Some((r, t(0))), &[], t(9999)),
                Step::Nothing
            );
        }
    }

    #[test]
    fn attempts_are_spaced_and_rate_limited() {
        let down = Some(("InternalServerError", t(0)));
        // A recorded attempt (sent or not) is not repeated before `after`.
        assert_eq!(decide(Some(&P), down, &[t(300)], t(599)), Step::Nothing);
        assert_eq!(
            decide(Some(&P), down, &[t(300)], t(600)),
            Step::Reset(vec![t(300), t(600)])
        );
        // Two within the hour: limited until the older leaves the window.
        assert_eq!(
            decide(Some(&P), down, &[t(600), t(300)], t(1000)),
            Step::RateLimited(t(3900))
        );
        // Old attempts are forgotten.
        assert_eq!(
            decide(Some(&P), down, &[t(300), t(600)], t(3900)),
            Step::Reset(vec![t(600), t(3900)])
        );
        let zero = Policy { limit: 0, ..P };
        assert_eq!(decide(Some(&zero), down, &[], t(9999)), Step::Nothing);
    }

    #[test]
    fn history_round_trips_and_tolerates_garbage() {
        let h = vec![t(1), t(2)];
        assert_eq!(parse_history(Some(&format_history(&h))), h);
        assert_eq!(parse_history(Some("garbage,")), vec![]);
        assert_eq!(parse_history(None), vec![]);
    }
}
