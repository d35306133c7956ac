//! Redfish clients per BMC, shared by all reconciles of a process so connections and Redfish
//! sessions are reused (a BMC's session limit is never hit) and rebuilt only when the BMC's
//! address, credentials or TLS settings change.
//!
//! TLS: verification is on by default. The CA bundle comes from the BMCSecret's `ca.crt` key, else
//! from the process-wide `--bmc-ca-file`, else the webpki roots. Skipping verification must be
//! asked for per BMC with the annotation [`INSECURE_ANNOTATION`]` = "true"`.

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use redfish::{BmcEndpoint, Client, ClientOptions, Credentials};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// BMC annotation that disables TLS verification for that BMC only (our addition).
pub const INSECURE_ANNOTATION: &str = "metal.ironcore.dev/insecure-skip-tls-verify";
/// BMCSecret key holding a PEM CA bundle for that BMC (our addition).
pub const CA_KEY: &str = "ca.crt";

/// Why a BMC's connection parameters could not be built; each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Neither `spec.access.ip` nor an Endpoint IP is known.
    #[error("BMC {bmc} has no address: set spec.access.ip or an Endpoint with an IP")]
    NoAddress {
        /// BMC name.
        bmc: String,
    },
    /// The BMCSecret lacks `username` or `password`.
    #[error("BMCSecret {secret} has no {key}")]
    MissingCredential {
        /// Secret name.
        secret: String,
        /// The missing key.
        key: &'static str,
    },
    /// The address or CA bundle is not usable.
    #[error("BMC {bmc}: {source}")]
    Invalid {
        /// BMC name.
        bmc: String,
        /// The client's complaint.
        #[source]
        source: redfish::Error,
    },
}

impl ResolveError {
    /// A CamelCase reason for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoAddress { .. } => "NoAddress",
            Self::MissingCredential { .. } => "MissingCredentials",
            Self::Invalid { .. } => "InvalidConfiguration",
        }
    }
}

/// Everything needed to talk to one BMC.
pub struct BmcTarget {
    /// Where and how (TLS) to connect.
    pub endpoint: BmcEndpoint,
    /// Login.
    pub credentials: Credentials,
    fingerprint: u64,
}

impl std::fmt::Debug for BmcTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcTarget")
            .field("endpoint", &self.endpoint.base_url())
            .field("username", &self.credentials.username())
            .finish_non_exhaustive()
    }
}

/// Builds the connection parameters of `bmc` from its spec, its secret and, for the deprecated
/// Endpoint path, the Endpoint's IP. Pure: no I/O.
pub fn resolve(
    bmc: &BMC,
    secret: &BMCSecret,
    endpoint_ip: Option<&str>,
    default_ca: Option<&[u8]>,
) -> Result<BmcTarget, ResolveError> {
    let name = bmc.metadata.name.clone().unwrap_or_default();
    let ip = bmc
        .spec
        .access
        .as_ref()
        .and_then(|a| a.ip.clone())
        .or_else(|| endpoint_ip.map(str::to_string))
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| ResolveError::NoAddress { bmc: name.clone() })?;
    let scheme = bmc
        .spec
        .protocol
        .scheme
        .as_ref()
        .map(|s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "https".into())
        })
        .unwrap_or_else(|| "https".into());
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    let url = format!("{scheme}://{host}:{}", bmc.spec.protocol.port);
    let invalid = |source| ResolveError::Invalid {
        bmc: name.clone(),
        source,
    };
    let mut endpoint = BmcEndpoint::parse(&url).map_err(invalid)?;
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let ca = secret.spec.get(CA_KEY);
    let insecure = bmc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INSECURE_ANNOTATION))
        .is_some_and(|v| v == "true");
    if insecure {
        endpoint = endpoint.insecure();
    } else if let Some(pem) = ca.as_deref().map(str::as_bytes).or(default_ca) {
        endpoint = endpoint.with_ca_bundle_pem(pem).map_err(invalid)?;
    }
    let username = secret
        .spec
        .username()
        .ok_or_else(|| ResolveError::MissingCredential {
            secret: secret_name.clone(),
            key: "username",
        })?;
    let password = secret
        .spec
        .password()
        .ok_or(ResolveError::MissingCredential {
            secret: secret_name,
            key: "password",
        })?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    username.hash(&mut h);
    password.hash(&mut h);
    insecure.hash(&mut h);
    ca.hash(&mut h);
    default_ca.hash(&mut h);
    Ok(BmcTarget {
        endpoint,
        credentials: Credentials::new(username, password),
        fingerprint: h.finish(),
    })
}

/// A cache of Redfish clients keyed by BMC name.
pub struct BmcClients {
    options: ClientOptions,
    clients: Mutex<HashMap<String, (u64, Client)>>,
}

impl std::fmt::Debug for BmcClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcClients")
            .field("clients", &self.len())
            .finish()
    }
}

impl BmcClients {
    /// An empty cache; every client is built with `options`.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Client)>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The client for BMC `name`, built from `target` unless a client for the same target
    /// already exists. A client for an outdated target (new address or credentials) is replaced;
    /// the old one logs out when its last user drops it.
    pub fn client(&self, name: &str, target: BmcTarget) -> Result<Client, redfish::Error> {
        if let Some((fp, c)) = self.lock().get(name)
            && *fp == target.fingerprint
        {
            return Ok(c.clone());
        }
        let client = Client::new(target.endpoint, target.credentials, self.options.clone())?;
        self.lock()
            .insert(name.to_string(), (target.fingerprint, client.clone()));
        Ok(client)
    }

    /// Drops the client of BMC `name` (e.g. the BMC was deleted), logging out its session.
    pub async fn forget(&self, name: &str) {
        let removed = self.lock().remove(name);
        if let Some((_, client)) = removed {
            let _ = client.logout().await;
        }
    }

    /// Number of cached clients.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bmc(ip: Option<&str>, annotations: &[(&str, &str)]) -> BMC {
        let mut v = serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC",
            "metadata": { "name": "b1", "annotations": {} },
            "spec": {
                "bmcSecretRef": { "name": "s1" },
                "protocol": { "name": "Redfish", "port": 8443, "scheme": "https" }
            }
        });
        if let Some(ip) = ip {
            v["spec"]["access"] = serde_json::json!({ "ip": ip });
        }
        for (k, val) in annotations {
            v["metadata"]["annotations"][k] = serde_json::json!(val);
        }
        serde_json::from_value(v).expect("bmc")
    }

    fn secret(pass: &str) -> BMCSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret",
            "metadata": { "name": "s1" },
            "stringData": { "username": "admin", "password": pass }
        }))
        .expect("secret")
    }

    #[test]
    fn resolves_address_and_credentials_without_leaking_them() {
        let t =
            resolve(&bmc(Some("127.0.1.5"), &[]), &secret("hunter2"), None, None).expect("resolve");
        assert_eq!(t.endpoint.base_url(), "https://127.0.1.5:8443");
        assert_eq!(t.credentials.username(), "admin");
        assert!(!format!("{t:?}").contains("hunter2"));
        let v6 = resolve(&bmc(Some("fd00::1"), &[]), &secret("x"), None, None).expect("v6");
        assert_eq!(v6.endpoint.host(), "fd00::1");
    }

    #[test]
    fn endpoint_ip_is_the_fallback_and_missing_address_is_an_error() {
        let t = resolve(&bmc(None, &[]), &secret("x"), Some("10.1.1.1"), None).expect("ep");
        assert_eq!(t.endpoint.host(), "10.1.1.1");
        let e = resolve(&bmc(None, &[]), &secret("x"), None, None).expect_err("no address");
        assert_eq!(e.reason(), "NoAddress");
    }

    #[test]
    fn missing_password_is_reported() {
        let s: BMCSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret",
            "metadata": { "name": "s1" }, "stringData": { "username": "admin" }
        }))
        .expect("secret");
        let e = resolve(&bmc(Some("127.0.0.1"), &[]), &s, None, None).expect_err("no password");
        assert_eq!(e.reason(), "MissingCredentials");
        assert!(e.to_string().contains("password"));
    }

    #[test]
    fn insecure_only_by_annotation_and_cache_rebuilds_on_change() {
        let secure = resolve(&bmc(Some("127.0.0.1"), &[]), &secret("a"), None, None).expect("r");
        assert!(!matches!(
            secure.endpoint.tls(),
            redfish::TlsVerification::Insecure
        ));
        let insecure = resolve(
            &bmc(Some("127.0.0.1"), &[(INSECURE_ANNOTATION, "true")]),
            &secret("a"),
            None,
            None,
        )
        .expect("r");
        assert!(matches!(
            insecure.endpoint.tls(),
            redfish::TlsVerification::Insecure
        ));

        let cache = BmcClients::new(ClientOptions::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let target = |p: &str| resolve(&bmc(Some("127.0.0.1"), &[]), &secret(p), None, None);
            let a = cache.client("b1", target("a").expect("t")).expect("client");
            let a2 = cache.client("b1", target("a").expect("t")).expect("client");
            assert_eq!(cache.len(), 1);
            // Same target: the very same pooled client (shared request counter).
            assert_eq!(a.request_count(), a2.request_count());
            let _b = cache.client("b1", target("b").expect("t")).expect("client");
            assert_eq!(cache.len(), 1, "replaced, not added");
            cache.forget("b1").await;
            assert!(cache.is_empty());
        });
    }
}
