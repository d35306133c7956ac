//! The Prometheus registry of a process and the standard reconcile metrics, so every controller
//! exposes the same series under the same names.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `metal_reconciliations_total` | counter | controller, kind |
//! | `metal_reconcile_errors_total` | counter | controller, kind, reason |
//! | `metal_reconcile_duration_seconds` | histogram | controller, kind |
//! | `metal_leader` | gauge (0/1) | lease |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A process-wide registry that components register into and the admin server encodes.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with the `metal` prefix.
    pub fn new() -> Self {
        Self {
            registry: Arc::new(RwLock::new(Registry::with_prefix("metal"))),
        }
    }

    /// Runs `f` with mutable access to the registry to register metrics.
    pub fn register<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut reg = self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut reg)
    }

    /// Encodes every registered metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let reg = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}

/// Labels identifying a controller and the kind it reconciles.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The controller's name (e.g. `discovery`).
    pub controller: String,
    /// The reconciled kind (e.g. `Server`).
    pub kind: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller's name.
    pub controller: String,
    /// The reconciled kind.
    pub kind: String,
    /// A short CamelCase error reason (bounded set, never free text).
    pub reason: String,
}

/// Labels of the leadership gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    /// `namespace/name` of the Lease.
    pub lease: String,
}

/// Count, errors by reason and duration of reconciles for one controller.
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    controller: String,
    total: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
}

impl ReconcileMetrics {
    /// Registers the reconcile metrics for `controller` in `metrics`.
    ///
    /// Several controllers in one process share the series (the `controller` label differs).
    pub fn new(metrics: &Metrics, controller: &str) -> Self {
        let total = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.5, 14))) as fn() -> Histogram,
        );
        metrics.register(|r| {
            r.register(
                "reconciliations",
                "Reconciles run, by controller and kind",
                total.clone(),
            );
            r.register(
                "reconcile_errors",
                "Reconciles that failed, by controller, kind and reason",
                errors.clone(),
            );
            r.register_with_unit(
                "reconcile_duration",
                "Time spent in one reconcile",
                prometheus_client::registry::Unit::Seconds,
                duration.clone(),
            );
        });
        Self {
            controller: controller.to_string(),
            total,
            errors,
            duration,
        }
    }

    fn labels(&self, kind: &str) -> KindLabels {
        KindLabels {
            controller: self.controller.clone(),
            kind: kind.to_string(),
        }
    }

    /// Starts timing one reconcile of `kind`; call [`ReconcileTimer::success`] or
    /// [`ReconcileTimer::failure`] when it ends (dropping it counts a success).
    pub fn start(&self, kind: &str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            kind: kind.to_string(),
            started: Instant::now(),
            done: false,
        }
    }

    /// Records one finished reconcile.
    pub fn observe(&self, kind: &str, elapsed: Duration, error_reason: Option<&str>) {
        let labels = self.labels(kind);
        self.total.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(reason) = error_reason {
            self.errors
                .get_or_create(&ErrorLabels {
                    controller: self.controller.clone(),
                    kind: kind.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
    }
}

/// Times one reconcile; see [`ReconcileMetrics::start`].
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: ReconcileMetrics,
    kind: String,
    started: Instant,
    done: bool,
}

impl ReconcileTimer {
    /// The reconcile succeeded.
    pub fn success(mut self) {
        self.done = true;
        self.metrics
            .observe(&self.kind, self.started.elapsed(), None);
    }

    /// The reconcile failed for `reason` (a short CamelCase word).
    pub fn failure(mut self, reason: &str) {
        self.done = true;
        self.metrics
            .observe(&self.kind, self.started.elapsed(), Some(reason));
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        if !self.done {
            self.metrics
                .observe(&self.kind, self.started.elapsed(), None);
        }
    }
}

/// The `metal_leader` gauge family.
#[derive(Clone, Debug, Default)]
pub struct LeaderMetrics {
    gauge: Family<LeaseLabels, Gauge>,
}

impl LeaderMetrics {
    /// Registers `metal_leader` in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let gauge = Family::<LeaseLabels, Gauge>::default();
        metrics.register(|r| {
            r.register(
                "leader",
                "1 while this replica holds the Lease",
                gauge.clone(),
            )
        });
        Self { gauge }
    }

    /// Sets whether this replica holds `lease`.
    pub fn set(&self, lease: &str, leading: bool) {
        self.gauge
            .get_or_create(&LeaseLabels {
                lease: lease.to_string(),
            })
            .set(i64::from(leading));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_metrics_encode() {
        let m = Metrics::new();
        let rm = ReconcileMetrics::new(&m, "discovery");
        rm.start("Server").success();
        rm.start("Server").failure("BmcUnreachable");
        drop(rm.start("BMC"));
        let text = m.encode();
        assert!(
            text.contains(r#"metal_reconciliations_total{controller="discovery",kind="Server"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"metal_reconcile_errors_total{controller="discovery",kind="Server",reason="BmcUnreachable"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"metal_reconcile_duration_seconds_count{controller="discovery",kind="BMC"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn leader_gauge() {
        let m = Metrics::new();
        let lm = LeaderMetrics::new(&m);
        lm.set("ns/lease", true);
        assert!(m.encode().contains(r#"metal_leader{lease="ns/lease"} 1"#));
        lm.set("ns/lease", false);
        assert!(m.encode().contains(r#"metal_leader{lease="ns/lease"} 0"#));
    }
}
