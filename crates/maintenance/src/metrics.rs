//! Maintenance's own metrics, next to the runtime's standard reconcile metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `metal_day2_objects` | gauge, counted from the caches on every scrape | kind (`ServerMaintenance`, `BIOSSettings`, `BIOSVersion`), state |
//! | `metal_maintenance_bmc_requests_total` | counter: side effects sent to BMCs | operation (`power`, `reboot`, `bios_settings`, `firmware_update`), result (`ok`, `error`) |
//! | `metal_reconciliations_total`, `metal_reconcile_errors_total`, `metal_reconcile_duration_seconds` | runtime standard | controller=`maintenance`, kind |

use api::biossettings::BIOSSettings;
use api::biosversion::BIOSVersion;
use api::servermaintenance::ServerMaintenance;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use runtime::metrics::Metrics;
use std::collections::BTreeMap;

/// Labels of a BMC request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// What was sent.
    pub operation: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Counts the side effects sent to BMCs.
#[derive(Clone, Debug, Default)]
pub struct BmcRequests {
    family: Family<RequestLabels, Counter>,
}

impl BmcRequests {
    /// Counts one `operation` with its outcome.
    pub fn observe<T, E>(&self, operation: &'static str, result: &Result<T, E>) {
        let result = if result.is_ok() { "ok" } else { "error" };
        self.family
            .get_or_create(&RequestLabels { operation, result })
            .inc();
    }
}

/// The caches the object gauge counts from.
#[derive(Debug)]
pub struct Stores {
    /// ServerMaintenances.
    pub maintenances: Store<ServerMaintenance>,
    /// BIOSSettings.
    pub bios_settings: Store<BIOSSettings>,
    /// BIOSVersions.
    pub bios_versions: Store<BIOSVersion>,
}

/// Registers the gauge and the request counter in `metrics`.
pub fn register(metrics: &Metrics, stores: Stores) -> BmcRequests {
    let requests = BmcRequests::default();
    metrics.register(|r| {
        r.register(
            "maintenance_bmc_requests",
            "Side effects metal-maintenance sent to BMCs, by operation and result",
            requests.family.clone(),
        );
        r.register_collector(Box::new(stores));
    });
    requests
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: &'static str,
    state: String,
}

/// Counts `states` (objects without a state count as `Pending`).
pub fn count<S: ToString>(states: impl IntoIterator<Item = Option<S>>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for s in states {
        let key = s.map_or_else(|| "Pending".to_string(), |s| s.to_string());
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

impl Collector for Stores {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families = [
            (
                "ServerMaintenance",
                count(
                    self.maintenances
                        .state()
                        .iter()
                        .map(|o| o.status.as_ref().and_then(|s| s.state)),
                ),
            ),
            (
                "BIOSSettings",
                count(
                    self.bios_settings
                        .state()
                        .iter()
                        .map(|o| o.status.as_ref().and_then(|s| s.state)),
                ),
            ),
            (
                "BIOSVersion",
                count(
                    self.bios_versions
                        .state()
                        .iter()
                        .map(|o| o.status.as_ref().and_then(|s| s.state)),
                ),
            ),
        ];
        let mut family = encoder.encode_descriptor(
            "day2_objects",
            "Day-2 objects in the cache by kind and state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, counts) in families {
            for (state, n) in counts {
                ConstGauge::new(n).encode(family.encode_family(&ObjectLabels { kind, state })?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::servermaintenance::ServerMaintenanceState;

    #[test]
    fn objects_are_counted_by_state_and_requests_by_outcome() {
        assert_eq!(
            count([
                Some(ServerMaintenanceState::InMaintenance),
                None,
                Some(ServerMaintenanceState::InMaintenance)
            ]),
            BTreeMap::from([("InMaintenance".to_string(), 2), ("Pending".to_string(), 1)])
        );
        let metrics = Metrics::new();
        let (maintenances, mut w) = kube::runtime::reflector::store::<ServerMaintenance>();
        let sm: ServerMaintenance = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerMaintenance",
            "metadata": { "name": "m", "namespace": "ns" },
            "spec": { "serverRef": { "name": "s" } },
            "status": { "state": "InMaintenance" },
        }))
        .unwrap();
        w.apply_watcher_event(&kube::runtime::watcher::Event::Apply(sm));
        let requests = register(
            &metrics,
            Stores {
                maintenances,
                bios_settings: kube::runtime::reflector::store().0,
                bios_versions: kube::runtime::reflector::store().0,
            },
        );
        requests.observe("reboot", &Ok::<(), ()>(()));
        requests.observe("reboot", &Err::<(), ()>(()));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"metal_day2_objects{kind="ServerMaintenance",state="InMaintenance"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"metal_maintenance_bmc_requests_total{operation="reboot",result="error"} 1"#
            ),
            "{text}"
        );
    }
}
