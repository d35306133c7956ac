//! Per-BMC behaviour knobs: latency, injected faults, timings of simulated hardware.
//!
//! Knobs are set per BMC at start (from the rack spec) and changed at runtime through the admin API
//! or [`crate::SimHandle::set_knobs`]. The decisions they imply are pure functions of the knobs and a
//! random source, so they are unit-tested here without sockets.

use std::time::Duration;

use http::StatusCode;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// How one BMC misbehaves and how fast its simulated hardware is.
///
/// Every field has a default (see [`Knobs::default`]); in YAML and over the admin API any subset of
/// fields may be given. Probabilities are in `0.0..=1.0` and are rolled once per request, in the order
/// reset, hang, error (so their sum must not exceed 1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Fixed delay added before every Redfish response, in milliseconds.
    pub latency_ms: u64,
    /// Random extra delay, uniform in `0..jitter_ms`, added on top of `latency_ms`.
    pub jitter_ms: u64,
    /// Probability that a request gets a random `500` or `503` instead of its answer.
    pub error_rate: f64,
    /// Probability that a request is never answered.
    pub hang_rate: f64,
    /// How long a hung request is held before its connection is dropped, in milliseconds.
    pub hang_ms: u64,
    /// Probability that a request's connection is reset (TCP RST) without an answer.
    pub reset_rate: f64,
    /// A window in which the BMC is out of service; see [`Outage`].
    pub outage: Option<Outage>,
    /// Wrong-credentials mode: every authentication fails with `401`.
    pub reject_auth: bool,
    /// Duration of each power transition (PoweringOn / PoweringOff), in milliseconds.
    pub power_delay_ms: u64,
    /// Power-off actions are accepted (`204`) but the system stays `On`.
    pub refuse_power_off: bool,
    /// How long a task (firmware update) runs before it ends, in milliseconds.
    pub task_duration_ms: u64,
    /// Tasks end in `Exception` instead of `Completed`.
    pub task_fail: bool,
    /// How long the BMC is unreachable while it restarts (Manager.Reset, BMC firmware activation).
    pub bmc_reset_downtime_ms: u64,
    /// Maximum number of concurrent Redfish sessions; the next login gets `503 SessionLimitExceeded`.
    pub session_limit: usize,
    /// Time limit for fetching a virtual media image (InsertMedia), in milliseconds.
    pub media_fetch_timeout_ms: u64,
    /// Fetch the first bytes of a SimpleUpdate `ImageURI` and fail the task if that fails.
    pub verify_update_image: bool,
    /// The BMC lost its host: every request under `/redfish/v1/Systems` and
    /// `/redfish/v1/Chassis` answers `500` while the Manager still answers, until the BMC
    /// restarts (a Manager.Reset clears it). What an automatic BMC reset is for.
    pub wedged: bool,
    /// A BMC firmware update stages its image and the BMC keeps running the old version until a
    /// Manager.Reset (some vendors' BMCs do not restart on their own after an update).
    pub bmc_activation_needs_reset: bool,
    /// BMC attributes whose new value takes effect only at the next BMC restart (until then it
    /// shows in the attribute resource's settings object).
    pub bmc_attributes_need_reset: Vec<String>,
    /// Drives (by `Id`) whose `Drive.SecureErase` fails with a `500` (a drive that cannot be
    /// sanitized: what keeps a server out of the pool after a failed cleaning).
    pub secure_erase_fails: Vec<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            hang_rate: 0.0,
            hang_ms: 600_000,
            reset_rate: 0.0,
            outage: None,
            reject_auth: false,
            power_delay_ms: 1_000,
            refuse_power_off: false,
            task_duration_ms: 3_000,
            task_fail: false,
            bmc_reset_downtime_ms: 3_000,
            session_limit: 16,
            media_fetch_timeout_ms: 10_000,
            verify_update_image: false,
            wedged: false,
            bmc_activation_needs_reset: false,
            bmc_attributes_need_reset: Vec::new(),
            secure_erase_fails: Vec::new(),
        }
    }
}

/// An out-of-service window of a BMC.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// What clients see during the window.
    pub mode: OutageMode,
    /// When the window starts, in milliseconds after the knobs were set.
    #[serde(default)]
    pub start_after_ms: u64,
    /// How long the window lasts, in milliseconds.
    pub duration_ms: u64,
}

/// Longest duration any knob accepts: 30 days.
pub const MAX_MS: u64 = 30 * 24 * 3600 * 1000;

fn check_ms(name: &str, ms: u64) -> Result<(), SimError> {
    if ms > MAX_MS {
        return Err(SimError::InvalidKnobs(format!(
            "{name} must be at most {MAX_MS} (30 days), got {ms}"
        )));
    }
    Ok(())
}

impl Outage {
    /// Checks that the window is at most 30 days away and long.
    pub fn validate(&self) -> Result<(), SimError> {
        check_ms("outage.start_after_ms", self.start_after_ms)?;
        check_ms("outage.duration_ms", self.duration_ms)
    }
}

/// What an outage looks like from the network.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Every request gets `503 Service Unavailable` with `Retry-After`.
    Unavailable,
    /// The BMC is unreachable: connections are refused and open ones are closed.
    Refuse,
}

/// What to do with one request, decided before it is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer normally.
    None,
    /// Reset the connection without an answer.
    Reset,
    /// Never answer.
    Hang,
    /// Answer with this server error.
    Error(StatusCode),
}

impl Knobs {
    /// Checks that rates are probabilities whose sum is at most 1.
    pub fn validate(&self) -> Result<(), SimError> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("hang_rate", self.hang_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::InvalidKnobs(format!(
                    "{name} must be in 0..=1, got {rate}"
                )));
            }
        }
        if self.error_rate + self.hang_rate + self.reset_rate > 1.0 + 1e-9 {
            return Err(SimError::InvalidKnobs(
                "error_rate + hang_rate + reset_rate must not exceed 1".into(),
            ));
        }
        if self.session_limit == 0 {
            return Err(SimError::InvalidKnobs(
                "session_limit must be at least 1".into(),
            ));
        }
        for (name, ms) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
            ("hang_ms", self.hang_ms),
            ("power_delay_ms", self.power_delay_ms),
            ("task_duration_ms", self.task_duration_ms),
            ("bmc_reset_downtime_ms", self.bmc_reset_downtime_ms),
            ("media_fetch_timeout_ms", self.media_fetch_timeout_ms),
        ] {
            check_ms(name, ms)?;
        }
        if let Some(o) = &self.outage {
            o.validate()?;
        }
        Ok(())
    }

    /// Applies a JSON merge patch (RFC 7386) to these knobs; unknown fields are an error.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Knobs, SimError> {
        let mut base =
            serde_json::to_value(self).map_err(|e| SimError::InvalidKnobs(e.to_string()))?;
        merge_patch(&mut base, patch);
        let knobs: Knobs =
            serde_json::from_value(base).map_err(|e| SimError::InvalidKnobs(e.to_string()))?;
        knobs.validate()?;
        Ok(knobs)
    }

    /// The delay to add before answering one request.
    pub(crate) fn latency(&self, rng: &mut impl Rng) -> Duration {
        let jitter = if self.jitter_ms > 0 {
            rng.random_range(0..self.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(jitter))
    }

    /// Rolls the dice for one request.
    pub(crate) fn roll(&self, rng: &mut impl Rng) -> Fault {
        if self.reset_rate <= 0.0 && self.hang_rate <= 0.0 && self.error_rate <= 0.0 {
            return Fault::None;
        }
        let u: f64 = rng.random();
        if u < self.reset_rate {
            Fault::Reset
        } else if u < self.reset_rate + self.hang_rate {
            Fault::Hang
        } else if u < self.reset_rate + self.hang_rate + self.error_rate {
            if rng.random_bool(0.5) {
                Fault::Error(StatusCode::INTERNAL_SERVER_ERROR)
            } else {
                Fault::Error(StatusCode::SERVICE_UNAVAILABLE)
            }
        } else {
            Fault::None
        }
    }

    /// Power transition time as a duration.
    pub(crate) fn power_delay(&self) -> Duration {
        Duration::from_millis(self.power_delay_ms)
    }

    /// Task run time as a duration.
    pub(crate) fn task_duration(&self) -> Duration {
        Duration::from_millis(self.task_duration_ms)
    }

    /// BMC restart downtime as a duration.
    pub(crate) fn bmc_downtime(&self) -> Duration {
        Duration::from_millis(self.bmc_reset_downtime_ms)
    }
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes, anything else replaces.
pub(crate) fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(p) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(Default::default());
            }
            if let serde_json::Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn defaults_are_valid_and_faultless() {
        let k = Knobs::default();
        k.validate().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            assert_eq!(k.roll(&mut rng), Fault::None);
            assert_eq!(k.latency(&mut rng), Duration::ZERO);
        }
    }

    #[test]
    fn rates_are_honoured() {
        let k = Knobs {
            reset_rate: 0.2,
            hang_rate: 0.3,
            error_rate: 0.5,
            ..Knobs::default()
        };
        k.validate().unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let (mut resets, mut hangs, mut errors) = (0, 0, 0);
        for _ in 0..10_000 {
            match k.roll(&mut rng) {
                Fault::Reset => resets += 1,
                Fault::Hang => hangs += 1,
                Fault::Error(s) => {
                    assert!(
                        s == StatusCode::INTERNAL_SERVER_ERROR
                            || s == StatusCode::SERVICE_UNAVAILABLE
                    );
                    errors += 1
                }
                Fault::None => panic!("rates sum to 1"),
            }
        }
        assert!((1700..2300).contains(&resets), "{resets}");
        assert!((2700..3300).contains(&hangs), "{hangs}");
        assert!((4700..5300).contains(&errors), "{errors}");
    }

    #[test]
    fn latency_has_jitter_within_bounds() {
        let k = Knobs {
            latency_ms: 10,
            jitter_ms: 5,
            ..Knobs::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let d = k.latency(&mut rng);
            assert!(d >= Duration::from_millis(10) && d < Duration::from_millis(15));
        }
    }

    #[test]
    fn invalid_rates_are_rejected() {
        assert!(
            Knobs {
                error_rate: 1.5,
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Knobs {
                error_rate: 0.6,
                hang_rate: 0.6,
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Knobs {
                session_limit: 0,
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Knobs {
                power_delay_ms: u64::MAX,
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
        let far = Outage {
            mode: OutageMode::Refuse,
            start_after_ms: u64::MAX,
            duration_ms: 1,
        };
        assert!(
            Knobs {
                outage: Some(far),
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn merge_patch_changes_only_given_fields() {
        let k = Knobs::default();
        let m = k
            .merged(&serde_json::json!({"latency_ms": 25, "outage": {"mode": "refuse", "duration_ms": 100}}))
            .unwrap();
        assert_eq!(m.latency_ms, 25);
        assert_eq!(m.power_delay_ms, k.power_delay_ms);
        assert_eq!(
            m.outage,
            Some(Outage {
                mode: OutageMode::Refuse,
                start_after_ms: 0,
                duration_ms: 100
            })
        );
        let cleared = m.merged(&serde_json::json!({"outage": null})).unwrap();
        assert_eq!(cleared.outage, None);
        assert!(k.merged(&serde_json::json!({"no_such_knob": 1})).is_err());
    }
}
