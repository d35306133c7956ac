//! Finding a server's BMC: the BMC object (or the inline `spec.bmc`), its BMCSecret, the shared
//! Redfish client cache, and a per-BMC backoff so that a dead BMC costs one timeout per backoff
//! period instead of one per server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::server::Server;
use kube::runtime::reflector::{ObjectRef, Store};
use runtime::bmc::{BmcClients, resolve};

use crate::guard::{GuardedBmc, Permit};
use crate::metrics::ProvisioningMetrics;

/// Why a server's BMC cannot be used now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BmcError {
    /// The server names no BMC.
    #[error("server has neither spec.bmcRef nor spec.bmc")]
    NoBmc,
    /// The server has no Redfish system path yet.
    #[error("server has no spec.systemURI yet")]
    NoSystem,
    /// The BMC object does not exist.
    #[error("BMC {0} not found")]
    BmcNotFound(String),
    /// The BMCSecret does not exist.
    #[error("BMCSecret {0} not found")]
    SecretNotFound(String),
    /// The connection parameters are unusable.
    #[error("{0}")]
    Config(String),
    /// The BMC failed recently; calls are paused until the backoff ends.
    #[error("BMC {bmc} failed recently ({reason}); retrying in {retry_in:?}")]
    BackingOff {
        /// BMC name.
        bmc: String,
        /// The last failure.
        reason: String,
        /// Time left.
        retry_in: Duration,
    },
}

impl BmcError {
    /// A CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            BmcError::NoBmc | BmcError::NoSystem => "NoBMC",
            BmcError::BmcNotFound(_) => "BMCNotFound",
            BmcError::SecretNotFound(_) => "BMCSecretNotFound",
            BmcError::Config(_) => "InvalidBMCConfiguration",
            BmcError::BackingOff { .. } => "BMCUnreachable",
        }
    }
}

struct Health {
    failures: u32,
    until: Instant,
    reason: String,
}

/// The BMCs of this process: client cache plus backoff state.
pub struct Bmcs {
    clients: BmcClients,
    bmcs: Store<BMC>,
    secrets: Store<BMCSecret>,
    default_ca: Option<Vec<u8>>,
    health: Mutex<HashMap<String, Health>>,
    metrics: ProvisioningMetrics,
    steps: runtime::steps::Steps,
}

impl std::fmt::Debug for Bmcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmcs").finish_non_exhaustive()
    }
}

/// The BMC name a server's calls are grouped under (its BMC object, or `server/<name>` for
/// inline access).
pub fn bmc_key(server: &Server) -> Option<String> {
    if let Some(r) = &server.spec.bmc_ref {
        return Some(r.name.clone());
    }
    server.spec.bmc.as_ref().map(|_| {
        format!(
            "server/{}",
            server.metadata.name.clone().unwrap_or_default()
        )
    })
}

impl Bmcs {
    /// A BMC directory over the watch caches.
    pub fn new(
        clients: BmcClients,
        bmcs: Store<BMC>,
        secrets: Store<BMCSecret>,
        default_ca: Option<Vec<u8>>,
        metrics: ProvisioningMetrics,
        steps: runtime::steps::Steps,
    ) -> Self {
        Self {
            clients,
            bmcs,
            secrets,
            default_ca,
            health: Mutex::new(HashMap::new()),
            metrics,
            steps,
        }
    }

    /// The guarded BMC of the server `permit` was granted for.
    pub fn for_server(&self, permit: &Permit, server: &Server) -> Result<GuardedBmc, BmcError> {
        let key = bmc_key(server).ok_or(BmcError::NoBmc)?;
        let system = server
            .spec
            .system_uri
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(BmcError::NoSystem)?;
        {
            let h = self.health.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = h.get(&key) {
                let now = Instant::now();
                if h.until > now {
                    return Err(BmcError::BackingOff {
                        bmc: key,
                        reason: h.reason.clone(),
                        retry_in: h.until - now,
                    });
                }
            }
        }
        let (bmc, secret_name) = match &server.spec.bmc_ref {
            Some(r) => {
                let bmc = self
                    .bmcs
                    .get(&ObjectRef::new(&r.name))
                    .ok_or_else(|| BmcError::BmcNotFound(r.name.clone()))?;
                let secret = bmc.spec.bmc_secret_ref.name.clone();
                ((*bmc).clone(), secret)
            }
            None => {
                let access = server.spec.bmc.as_ref().ok_or(BmcError::NoBmc)?;
                let v = serde_json::json!({
                    "apiVersion": api::API_VERSION, "kind": "BMC",
                    "metadata": { "name": key },
                    "spec": {
                        "access": { "ip": access.address },
                        "bmcSecretRef": { "name": access.bmc_secret_ref.name },
                        "protocol": access.protocol,
                    }
                });
                let bmc: BMC =
                    serde_json::from_value(v).map_err(|e| BmcError::Config(e.to_string()))?;
                (bmc, access.bmc_secret_ref.name.clone())
            }
        };
        let secret = self
            .secrets
            .get(&ObjectRef::new(&secret_name))
            .ok_or(BmcError::SecretNotFound(secret_name))?;
        let target = resolve(&bmc, &secret, None, self.default_ca.as_deref())
            .map_err(|e| BmcError::Config(e.to_string()))?;
        let client = self
            .clients
            .client(&key, target)
            .map_err(|e| BmcError::Config(e.to_string()))?;
        Ok(GuardedBmc::new(
            permit,
            client,
            system,
            self.metrics.clone(),
            self.steps.clone(),
        ))
    }

    /// Records the outcome of talking to a server's BMC: connection-level failures start (or
    /// lengthen) a jittered exponential backoff for the whole BMC; anything else clears it.
    pub fn record(&self, server: &Server, result: Result<(), &redfish::Error>) {
        let Some(key) = bmc_key(server) else { return };
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Err(e)
                if matches!(
                    e.class(),
                    redfish::ErrorClass::Unreachable | redfish::ErrorClass::Timeout
                ) =>
            {
                let entry = h.entry(key).or_insert(Health {
                    failures: 0,
                    until: Instant::now(),
                    reason: String::new(),
                });
                entry.failures = entry.failures.saturating_add(1);
                let base = Duration::from_secs(1) * 2u32.saturating_pow(entry.failures.min(8));
                let jitter = 0.8 + rand::random::<f64>() * 0.4;
                entry.until = Instant::now() + base.min(Duration::from_secs(300)).mul_f64(jitter);
                entry.reason = e.to_string();
            }
            _ => {
                h.remove(&key);
            }
        }
    }
}
