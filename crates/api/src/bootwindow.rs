//! The boot window: when the boot server may hand a server its boot script.
//!
//! A boot script carries the server's per-configuration boot token (in its ignition, artifact
//! and metadata URLs), and the request that fetches it can only identify the machine by MAC and
//! system UUID, which a neighbour on the same network may know. So the script is handed out
//! only for a power-on that a controller recorded (`BootWindow=True`, written together with
//! `PoweringOn=True`), at most once per power-on (the boot server records `BootWindow=False`
//! with the Server's `resourceVersion` as precondition before it answers), and only for
//! `window` after the power-on was recorded. Pure functions, shared by every writer.

use crate::conditions::{self, ConditionStatus};
use crate::constants::{condition_types::BOOT_WINDOW, reasons};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

/// Opens a fresh window in `list`: `lastTransitionTime` is `now` even when a window of an
/// earlier power-on is still open, so the window always counts from the latest power-on.
pub fn open(list: &mut Vec<Condition>, message: &str, generation: Option<i64>, now: Time) {
    conditions::remove(list, BOOT_WINDOW);
    conditions::set(
        list,
        conditions::new(
            BOOT_WINDOW,
            ConditionStatus::True,
            reasons::BOOT_WINDOW_OPEN,
            message,
            generation,
            now,
        ),
    );
}

/// Closes the window in `list` (the script of this power-on was handed out).
pub fn close(list: &mut Vec<Condition>, message: &str, generation: Option<i64>, now: Time) {
    conditions::set(
        list,
        conditions::new(
            BOOT_WINDOW,
            ConditionStatus::False,
            reasons::BOOT_SCRIPT_SERVED,
            message,
            generation,
            now,
        ),
    );
}

/// Whether a script may be handed out now: a window is open and was opened less than
/// `window` ago (a clock running backwards counts as "just opened").
pub fn is_open(list: &[Condition], now: &Time, window: Duration) -> bool {
    let Some(c) = conditions::get(list, BOOT_WINDOW) else {
        return false;
    };
    if c.status != ConditionStatus::True.as_str() {
        return false;
    }
    let opened = c.last_transition_time.0;
    let age = now.0.duration_since(opened);
    age.as_secs_f64() < window.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    const W: Duration = Duration::from_secs(600);

    #[test]
    fn no_condition_no_window() {
        assert!(!is_open(&[], &at(0), W));
    }

    #[test]
    fn open_until_served_or_expired() {
        let mut l = Vec::new();
        open(&mut l, "power-on", Some(1), at(0));
        assert!(is_open(&l, &at(0), W));
        assert!(is_open(&l, &at(599), W));
        assert!(!is_open(&l, &at(600), W), "expired");
        close(&mut l, "served", Some(1), at(10));
        assert!(!is_open(&l, &at(11), W), "served once");
    }

    #[test]
    fn a_new_power_on_reopens_and_restarts_the_clock() {
        let mut l = Vec::new();
        open(&mut l, "first", Some(1), at(0));
        open(&mut l, "second", Some(1), at(500));
        assert!(is_open(&l, &at(900), W), "counts from the second power-on");
        close(&mut l, "served", Some(1), at(901));
        open(&mut l, "third", Some(1), at(2000));
        assert!(is_open(&l, &at(2001), W));
    }

    #[test]
    fn clock_skew_backwards_counts_as_just_opened() {
        let mut l = Vec::new();
        open(&mut l, "power-on", None, at(100));
        let earlier = Time(at(100).0 - SignedDuration::from_secs(30));
        assert!(is_open(&l, &earlier, W));
    }
}
