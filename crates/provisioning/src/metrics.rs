//! Provisioning's own metrics (in addition to the runtime's reconcile metrics):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `metal_provisioning_time_to_boot_seconds` | histogram | method (`Network`, `VirtualMedia`) |
//! | `metal_provisioning_power_operations_total` | counter | operation, result |
//! | `metal_provisioning_boot_requests_total` | counter | endpoint, result |
//!
//! `time_to_boot` measures from the claim binding (the claim's `Bound` condition, else the
//! moment this process first saw the server Reserved) to the power-on request accepted by the
//! BMC, for the first boot of each claim.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use runtime::metrics::Metrics;

/// Labels of a power operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PowerOpLabels {
    /// `power_on`, `graceful_off`, `force_off`, `boot_override`, `insert_media`, `eject_media`,
    /// `reset`, `boot_order`, `indicator_led`.
    pub operation: String,
    /// `issued`, `skipped` (the BMC already was in that state), or an error class.
    pub result: String,
}

/// Labels of a boot server request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `chain`, `ipxe`, `ignition`, `uefi`, `artifact`, `metadata`, `user_data`.
    pub endpoint: String,
    /// `served`, `not_found`, `forbidden`, `bad_request`, `error`, `unavailable`.
    pub result: String,
}

/// Labels of the boot time histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BootLabels {
    /// Boot method.
    pub method: String,
}

/// The provisioning metrics.
#[derive(Clone, Debug)]
pub struct ProvisioningMetrics {
    time_to_boot: Family<BootLabels, Histogram>,
    power_ops: Family<PowerOpLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
}

impl ProvisioningMetrics {
    /// Registers the metrics in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let time_to_boot = Family::<BootLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.05, 2.0, 14))) as fn() -> Histogram,
        );
        let power_ops = Family::<PowerOpLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        metrics.register(|r| {
            let r = r.sub_registry_with_prefix("provisioning");
            r.register_with_unit(
                "time_to_boot",
                "Time from a claim binding to the power-on request accepted by the BMC",
                prometheus_client::registry::Unit::Seconds,
                time_to_boot.clone(),
            );
            r.register(
                "power_operations",
                "BMC power, boot and media operations by result",
                power_ops.clone(),
            );
            r.register(
                "boot_requests",
                "Boot server and metadata service requests by endpoint and result",
                requests.clone(),
            );
        });
        Self {
            time_to_boot,
            power_ops,
            requests,
        }
    }

    /// Records a boot's latency.
    pub fn boot(&self, method: &str, seconds: f64) {
        self.time_to_boot
            .get_or_create(&BootLabels {
                method: method.to_string(),
            })
            .observe(seconds);
    }

    /// Counts a BMC operation.
    pub fn power_op(&self, operation: &str, result: &str) {
        self.power_ops
            .get_or_create(&PowerOpLabels {
                operation: operation.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Counts a boot server request.
    pub fn request(&self, endpoint: &str, result: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                result: result.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_their_names() {
        let m = Metrics::new();
        let p = ProvisioningMetrics::new(&m);
        p.boot("Network", 0.3);
        p.power_op("power_on", "issued");
        p.request("ipxe", "not_found");
        let text = m.encode();
        assert!(
            text.contains("metal_provisioning_time_to_boot_seconds_count{method=\"Network\"} 1"),
            "{text}"
        );
        assert!(text.contains("metal_provisioning_power_operations_total{operation=\"power_on\",result=\"issued\"} 1"), "{text}");
        assert!(
            text.contains(
                "metal_provisioning_boot_requests_total{endpoint=\"ipxe\",result=\"not_found\"} 1"
            ),
            "{text}"
        );
    }
}
