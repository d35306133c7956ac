//! Reservation's own metrics, registered into the process registry next to the runtime's
//! standard reconcile metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `metal_serverclaims` | gauge, computed from the claim cache on every scrape | phase (`Bound`, `Unbound`, `Pending`) |
//! | `metal_reservation_time_to_bind_seconds` | histogram: claim `creationTimestamp` → `Bound` written | |
//! | `metal_reservation_bind_conflicts_total` | counter: `serverClaimRef` writes that lost a race | |
//! | `metal_reconciliations_total`, `metal_reconcile_errors_total`, `metal_reconcile_duration_seconds` | runtime standard | controller=`reservation`, kind |

use api::serverclaim::{Phase, ServerClaim};
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use runtime::metrics::{Metrics, ReconcileMetrics};
use std::time::Duration;

/// Handles to reservation's metrics.
#[derive(Clone, Debug)]
pub struct ReservationMetrics {
    /// Standard reconcile metrics (controller label `reservation`).
    pub reconcile: ReconcileMetrics,
    time_to_bind: Histogram,
    conflicts: Counter,
}

impl ReservationMetrics {
    /// Registers the metrics in `metrics`; `claims` backs the per-phase gauge.
    pub fn register(metrics: &Metrics, claims: Store<ServerClaim>) -> Self {
        let reconcile = ReconcileMetrics::new(metrics, "reservation");
        let time_to_bind = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let conflicts = Counter::default();
        metrics.register(|r| {
            r.register_with_unit(
                "reservation_time_to_bind",
                "Time from a claim's creation to the controller writing Bound",
                prometheus_client::registry::Unit::Seconds,
                time_to_bind.clone(),
            );
            r.register(
                "reservation_bind_conflicts",
                "Writes of Server.spec.serverClaimRef that lost to a concurrent writer",
                conflicts.clone(),
            );
            r.register_collector(Box::new(ClaimPhases { claims }));
        });
        Self {
            reconcile,
            time_to_bind,
            conflicts,
        }
    }

    /// Records a claim that just became Bound, `elapsed` after its creation.
    pub fn observe_bound(&self, elapsed: Duration) {
        self.time_to_bind.observe(elapsed.as_secs_f64());
    }

    /// Records a lost `serverClaimRef` race.
    pub fn conflict(&self) {
        self.conflicts.inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Counts claims by phase from the cache when scraped, so the gauge never drifts.
#[derive(Debug)]
struct ClaimPhases {
    claims: Store<ServerClaim>,
}

/// Counts `claims` by phase label; claims without a phase yet count as `Pending`.
pub fn count_phases<'a>(
    claims: impl IntoIterator<Item = &'a ServerClaim>,
) -> [(&'static str, i64); 3] {
    let (mut bound, mut unbound, mut pending) = (0, 0, 0);
    for c in claims {
        match c.status.as_ref().and_then(|s| s.phase) {
            Some(Phase::Bound) => bound += 1,
            Some(Phase::Unbound) => unbound += 1,
            None => pending += 1,
        }
    }
    [("Bound", bound), ("Unbound", unbound), ("Pending", pending)]
}

impl Collector for ClaimPhases {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.claims.state();
        let counts = count_phases(state.iter().map(|c| c.as_ref()));
        let mut family = encoder.encode_descriptor(
            "serverclaims",
            "ServerClaims in the cache by phase",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (phase, n) in counts {
            let gauge = ConstGauge::new(n);
            gauge.encode(family.encode_family(&PhaseLabels { phase })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::serverclaim::{ServerClaimSpec, ServerClaimStatus};

    fn claim(phase: Option<Phase>) -> ServerClaim {
        let mut c = ServerClaim::new(
            "c",
            ServerClaimSpec {
                power: api::common::Power::On,
                server_ref: None,
                server_selector: None,
                ignition_secret_ref: None,
                user_data_ref: None,
                image: "i".into(),
                tolerations: vec![],
            },
        );
        c.status = phase.map(|p| ServerClaimStatus {
            phase: Some(p),
            conditions: vec![],
        });
        c
    }

    #[test]
    fn phases_are_counted_and_encoded() {
        let claims = [
            claim(Some(Phase::Bound)),
            claim(Some(Phase::Bound)),
            claim(Some(Phase::Unbound)),
            claim(None),
        ];
        assert_eq!(
            count_phases(&claims),
            [("Bound", 2), ("Unbound", 1), ("Pending", 1)]
        );
        let metrics = Metrics::new();
        let (store, mut writer) = kube::runtime::reflector::store::<ServerClaim>();
        for (i, c) in claims.iter().enumerate() {
            let mut c = c.clone();
            c.metadata.name = Some(format!("c{i}"));
            c.metadata.namespace = Some("ns".into());
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(c));
        }
        let m = ReservationMetrics::register(&metrics, store);
        m.observe_bound(Duration::from_millis(300));
        m.conflict();
        let text = metrics.encode();
        assert!(
            text.contains(r#"metal_serverclaims{phase="Bound"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"metal_serverclaims{phase="Pending"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("metal_reservation_time_to_bind_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("metal_reservation_bind_conflicts_total 1"),
            "{text}"
        );
    }
}
