//! Discovery's metrics (all prefixed `metal_` by the process registry).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `metal_server_state` | gauge, one series per server and **every** state (1 = current) | server, state |
//! | `metal_servers` | gauge, count per state (every state, also 0) | state |
//! | `metal_server_power_state` | gauge, one series per server and every power state | server, power_state |
//! | `metal_servers_by_power_state` | gauge, count per power state | power_state |
//! | `metal_bmc_reachable` | gauge 0/1 | bmc |
//! | `metal_redfish_requests_total` | counter | method, class (`ok` or the redfish error class) |
//! | `metal_redfish_request_duration_seconds` | histogram | method |
//! | `metal_discovery_duration_seconds` | histogram (creation or round start → Available) | mode |
//! | `metal_discovery_api_writes_total` | counter | kind, op |
//! | `metal_discovery_side_effects_total` | counter | effect, result (`allowed`/`refused`) |
//! | `metal_discovery_registry_requests_total` | counter | path, code |
//! | plus `metal_reconciliations_total`, `metal_reconcile_errors_total`, `metal_reconcile_duration_seconds` (controller="discovery") |

use std::sync::{Arc, RwLock};

use api::server::{Server, ServerPowerState, ServerState};
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;
use runtime::metrics::{Metrics, ReconcileMetrics};

/// Labels of a per-BMC series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BmcLabels {
    /// BMC name.
    pub bmc: String,
}

/// Labels of Redfish request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedfishLabels {
    /// HTTP method.
    pub method: String,
    /// `ok` or the error class.
    pub class: String,
}

/// Labels of the Redfish latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// HTTP method.
    pub method: String,
}

/// Labels of the API write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// Kind written.
    pub kind: String,
    /// `create`, `apply`, `patch`, `delete`, `event`.
    pub op: String,
}

/// Labels of the side-effect counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EffectLabels {
    /// The effect.
    pub effect: String,
    /// `allowed` or `refused`.
    pub result: String,
}

/// Labels of the registry request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    /// Request path.
    pub path: String,
    /// HTTP status code.
    pub code: String,
}

/// Labels of the discovery duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `out-of-band` or `in-band`.
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerStateLabels {
    server: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerPowerLabels {
    server: String,
    power_state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PowerLabels {
    power_state: String,
}

/// Every power-state label value (`Unknown` for servers without one).
const POWER_STATES: [&str; 6] = [
    "On",
    "Off",
    "Paused",
    "PoweringOn",
    "PoweringOff",
    "Unknown",
];

/// Computes the server gauges from the Server watch cache at scrape time.
#[derive(Debug, Default, Clone)]
struct ServerCollector {
    store: Arc<RwLock<Option<Store<Server>>>>,
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let per_server = Family::<ServerStateLabels, Gauge>::default();
        let counts = Family::<StateLabels, Gauge>::default();
        let per_power = Family::<ServerPowerLabels, Gauge>::default();
        let power_counts = Family::<PowerLabels, Gauge>::default();
        for s in ServerState::ALL {
            counts
                .get_or_create(&StateLabels {
                    state: s.as_str().into(),
                })
                .set(0);
        }
        for p in POWER_STATES {
            power_counts
                .get_or_create(&PowerLabels {
                    power_state: p.into(),
                })
                .set(0);
        }
        let store = self
            .store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(store) = store {
            for server in store.state() {
                let name = server.metadata.name.clone().unwrap_or_default();
                let status = server.status.as_ref();
                let state = status.and_then(|s| s.state);
                for s in ServerState::ALL {
                    per_server
                        .get_or_create(&ServerStateLabels {
                            server: name.clone(),
                            state: s.as_str().into(),
                        })
                        .set(i64::from(state == Some(*s)));
                }
                if let Some(s) = state {
                    counts
                        .get_or_create(&StateLabels {
                            state: s.as_str().into(),
                        })
                        .inc();
                }
                let power = status
                    .and_then(|s| s.power_state)
                    .map(|p: ServerPowerState| p.as_str())
                    .unwrap_or("Unknown");
                for p in POWER_STATES {
                    per_server_power(&per_power, &name, p, power == p);
                }
                power_counts
                    .get_or_create(&PowerLabels {
                        power_state: power.into(),
                    })
                    .inc();
            }
        }
        let m = encoder.encode_descriptor(
            "server_state",
            "Server state as an enum: 1 for the current state, 0 for every other state",
            None,
            per_server.metric_type(),
        )?;
        per_server.encode(m)?;
        let m = encoder.encode_descriptor(
            "servers",
            "Servers per state (every state listed)",
            None,
            counts.metric_type(),
        )?;
        counts.encode(m)?;
        let m = encoder.encode_descriptor(
            "server_power_state",
            "Server power state as an enum: 1 for the current power state",
            None,
            per_power.metric_type(),
        )?;
        per_power.encode(m)?;
        let m = encoder.encode_descriptor(
            "servers_by_power_state",
            "Servers per power state",
            None,
            power_counts.metric_type(),
        )?;
        power_counts.encode(m)
    }
}

fn per_server_power(f: &Family<ServerPowerLabels, Gauge>, server: &str, p: &str, on: bool) {
    f.get_or_create(&ServerPowerLabels {
        server: server.to_string(),
        power_state: p.to_string(),
    })
    .set(i64::from(on));
}

/// All of discovery's metrics; cheap to clone.
#[derive(Clone, Debug)]
pub struct DiscoveryMetrics {
    /// Reconcile count, errors and duration.
    pub reconcile: ReconcileMetrics,
    bmc_reachable: Family<BmcLabels, Gauge>,
    redfish_requests: Family<RedfishLabels, Counter>,
    redfish_latency: Family<MethodLabels, Histogram>,
    discovery_duration: Family<ModeLabels, Histogram>,
    api_writes: Family<WriteLabels, Counter>,
    side_effects: Family<EffectLabels, Counter>,
    registry_requests: Family<RegistryLabels, Counter>,
    servers: ServerCollector,
}

impl DiscoveryMetrics {
    /// Registers everything in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let m = Self {
            reconcile: ReconcileMetrics::new(metrics, "discovery"),
            bmc_reachable: Family::default(),
            redfish_requests: Family::default(),
            redfish_latency: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.005, 2.0, 14))) as fn() -> Histogram,
            ),
            discovery_duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.25, 2.0, 16))) as fn() -> Histogram,
            ),
            api_writes: Family::default(),
            side_effects: Family::default(),
            registry_requests: Family::default(),
            servers: ServerCollector::default(),
        };
        metrics.register(|r| {
            r.register(
                "bmc_reachable",
                "1 when the last call to the BMC succeeded",
                m.bmc_reachable.clone(),
            );
            r.register(
                "redfish_requests",
                "Redfish HTTP requests by method and outcome class",
                m.redfish_requests.clone(),
            );
            r.register_with_unit(
                "redfish_request_duration",
                "Redfish request latency",
                Unit::Seconds,
                m.redfish_latency.clone(),
            );
            r.register_with_unit(
                "discovery_duration",
                "Time from a server's creation (or its discovery round's start) to Available",
                Unit::Seconds,
                m.discovery_duration.clone(),
            );
            r.register(
                "discovery_api_writes",
                "Kubernetes API writes by discovery",
                m.api_writes.clone(),
            );
            r.register(
                "discovery_side_effects",
                "BMC side effects requested through the guard",
                m.side_effects.clone(),
            );
            r.register(
                "discovery_registry_requests",
                "Probe registry requests",
                m.registry_requests.clone(),
            );
            r.register_collector(Box::new(m.servers.clone()));
        });
        m
    }

    /// Lets the server gauges read the Server watch cache.
    pub fn set_server_store(&self, store: Store<Server>) {
        *self
            .servers
            .store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(store);
    }

    /// Records whether `bmc` answered.
    pub fn bmc_reachable(&self, bmc: &str, up: bool) {
        self.bmc_reachable
            .get_or_create(&BmcLabels { bmc: bmc.into() })
            .set(i64::from(up));
    }

    /// Drops a deleted BMC's series.
    pub fn forget_bmc(&self, bmc: &str) {
        self.bmc_reachable.remove(&BmcLabels { bmc: bmc.into() });
    }

    /// Counts one API write.
    pub fn write(&self, kind: &str, op: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                kind: kind.into(),
                op: op.into(),
            })
            .inc();
    }

    /// API writes of one kind and operation so far (what a cost test pins).
    pub fn writes(&self, kind: &str, op: &str) -> u64 {
        self.api_writes
            .get(&WriteLabels {
                kind: kind.into(),
                op: op.into(),
            })
            .map_or(0, |c| c.get())
    }

    /// Total API writes so far (benchmark).
    pub fn writes_total(&self) -> u64 {
        let mut total = 0;
        for kind in [
            "Server",
            "BMC",
            "BMCSecret",
            "BMCUser",
            "ServerBootConfiguration",
            "Secret",
            "ConfigMap",
            "Event",
            "Endpoint",
        ] {
            for op in ["create", "apply", "patch", "delete", "event"] {
                if let Some(c) = self.api_writes.get(&WriteLabels {
                    kind: kind.into(),
                    op: op.into(),
                }) {
                    total += c.get();
                }
            }
        }
        total
    }

    /// Counts a side effect decision.
    pub fn side_effect(&self, effect: &str, allowed: bool) {
        self.side_effects
            .get_or_create(&EffectLabels {
                effect: effect.into(),
                result: if allowed { "allowed" } else { "refused" }.into(),
            })
            .inc();
    }

    /// Counts a registry request.
    pub fn registry(&self, path: &str, code: u16) {
        self.registry_requests
            .get_or_create(&RegistryLabels {
                path: path.into(),
                code: code.to_string(),
            })
            .inc();
    }

    /// Observes one finished discovery.
    pub fn discovered(&self, mode: &str, seconds: f64) {
        self.discovery_duration
            .get_or_create(&ModeLabels { mode: mode.into() })
            .observe(seconds.max(0.0));
    }

    /// The Redfish request observer feeding the request metrics.
    pub fn redfish_observer(&self) -> Arc<dyn redfish::Observer> {
        let requests = self.redfish_requests.clone();
        let latency = self.redfish_latency.clone();
        Arc::new(move |e: &redfish::RequestEvent<'_>| {
            let method = e.method.as_str().to_string();
            let class = e.class.map(|c| c.as_str()).unwrap_or("ok").to_string();
            requests
                .get_or_create(&RedfishLabels {
                    method: method.clone(),
                    class,
                })
                .inc();
            latency
                .get_or_create(&MethodLabels { method })
                .observe(e.latency.as_secs_f64());
        })
    }
}
