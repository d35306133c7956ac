//! Reaching a server's BMC: the BMC object (or inline `spec.bmc` is not supported here), its
//! BMCSecret, and the shared Redfish client cache. Day-2 work is rare, so the BMC and secret are
//! read from the API when needed instead of being watched.

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::server::Server;
use kube::api::Api;
use redfish::models::{AttributeRegistry, Bios};
use runtime::bmc::{BmcClients, resolve};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a server's BMC cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BmcError {
    /// The server names no BMC object.
    #[error("server has no spec.bmcRef")]
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
    /// The connection parameters are unusable, or the API could not be read.
    #[error("{0}")]
    Config(String),
    /// The BMC failed a call.
    #[error("{0}")]
    Redfish(String),
}

impl BmcError {
    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            BmcError::NoBmc | BmcError::NoSystem => "NoBMC",
            BmcError::BmcNotFound(_) => "BMCNotFound",
            BmcError::SecretNotFound(_) => "BMCSecretNotFound",
            BmcError::Config(_) => "InvalidBMCConfiguration",
            BmcError::Redfish(_) => "BMCError",
        }
    }
}

impl From<redfish::Error> for BmcError {
    fn from(e: redfish::Error) -> Self {
        BmcError::Redfish(e.to_string())
    }
}

/// Attribute registries by BMC and registry name: they describe the firmware, not its state,
/// and are the largest documents a BMC serves.
type Registries = HashMap<(String, String), Option<Arc<AttributeRegistry>>>;

/// The BMCs of this process.
pub struct Bmcs {
    clients: BmcClients,
    client: kube::Client,
    default_ca: Option<Vec<u8>>,
    registries: Mutex<Registries>,
}

impl std::fmt::Debug for Bmcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmcs").finish_non_exhaustive()
    }
}

impl Bmcs {
    /// A directory reading BMC objects and secrets through `client`.
    pub fn new(clients: BmcClients, client: kube::Client, default_ca: Option<Vec<u8>>) -> Self {
        Self {
            clients,
            client,
            default_ca,
            registries: Mutex::new(HashMap::new()),
        }
    }

    /// The BIOS attribute registry `bios` names, fetched once per BMC and registry version
    /// (`None`: the BMC publishes none, or it could not be read; then the BMC itself validates).
    pub async fn bios_registry(
        &self,
        server: &Server,
        client: &redfish::Client,
        bios: &Bios,
    ) -> Option<Arc<AttributeRegistry>> {
        let bmc = server.spec.bmc_ref.as_ref()?.name.clone();
        let key = (bmc, bios.attribute_registry.clone().unwrap_or_default());
        let lock = |m: &Mutex<Registries>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
                .cloned()
        };
        if let Some(cached) = lock(&self.registries) {
            return cached;
        }
        let fetched = match client.registry_of(bios).await {
            Ok(r) => r.map(Arc::new),
            // Not cached: a transient failure is retried on the next read.
            Err(_) => return None,
        };
        self.registries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, fetched.clone());
        fetched
    }

    /// The Redfish client of `server`'s BMC and the server's system path.
    pub async fn for_server(&self, server: &Server) -> Result<(redfish::Client, String), BmcError> {
        let bmc_name = server
            .spec
            .bmc_ref
            .as_ref()
            .map(|r| r.name.clone())
            .ok_or(BmcError::NoBmc)?;
        let system = server.spec.system_uri.clone().ok_or(BmcError::NoSystem)?;
        Ok((self.for_bmc(&bmc_name).await?, system))
    }

    /// The Redfish client of BMC object `bmc_name` (its BMCSecret read now).
    pub async fn for_bmc(&self, bmc_name: &str) -> Result<redfish::Client, BmcError> {
        let read = |e: kube::Error| BmcError::Config(e.to_string());
        let bmc = Api::<BMC>::all(self.client.clone())
            .get_opt(bmc_name)
            .await
            .map_err(read)?
            .ok_or_else(|| BmcError::BmcNotFound(bmc_name.to_string()))?;
        let secret_name = bmc.spec.bmc_secret_ref.name.clone();
        let secret = Api::<BMCSecret>::all(self.client.clone())
            .get_opt(&secret_name)
            .await
            .map_err(read)?
            .ok_or_else(|| BmcError::SecretNotFound(secret_name.clone()))?;
        let target = resolve(&bmc, &secret, None, self.default_ca.as_deref())
            .map_err(|e| BmcError::Config(e.to_string()))?;
        Ok(self.clients.client(bmc_name, target)?)
    }
}
