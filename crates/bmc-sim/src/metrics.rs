//! Prometheus metrics of the simulator (OpenMetrics text on the admin API's `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub method: String,
    pub code: u16,
}

/// Labels of the fault counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FaultLabels {
    pub kind: &'static str,
}

/// All metrics; gauges that are cheap to compute are set just before each scrape.
pub(crate) struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub faults: Family<FaultLabels, Counter>,
    pub sessions: Gauge,
    pub bmcs: Gauge,
    pub bmcs_down: Gauge,
    pub connections: Gauge,
    pub boots: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("bmc_sim");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Redfish requests answered, by method and status code",
            requests.clone(),
        );
        let faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "faults_injected",
            "Faults injected by knobs, by kind",
            faults.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "active_sessions",
            "Redfish sessions open on all BMCs",
            sessions.clone(),
        );
        let bmcs = Gauge::default();
        registry.register("bmcs", "Simulated BMCs", bmcs.clone());
        let bmcs_down = Gauge::default();
        registry.register(
            "bmcs_down",
            "Simulated BMCs currently unreachable",
            bmcs_down.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on all BMCs",
            connections.clone(),
        );
        let boots = Counter::default();
        registry.register(
            "system_boots",
            "Simulated systems that reached On",
            boots.clone(),
        );
        Metrics {
            registry,
            requests,
            faults,
            sessions,
            bmcs,
            bmcs_down,
            connections,
            boots,
        }
    }

    /// Counts one answered request.
    pub(crate) fn request(&self, method: &http::Method, code: http::StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.as_str().to_string(),
                code: code.as_u16(),
            })
            .inc();
    }

    /// Counts one injected fault.
    pub(crate) fn fault(&self, kind: &'static str) {
        self.faults.get_or_create(&FaultLabels { kind }).inc();
    }

    /// The OpenMetrics text.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
