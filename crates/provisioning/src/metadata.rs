//! The metadata service (upstream's `metaldata`): a booted server asks for its own metadata and
//! user-data. The caller is identified by its source address among the Servers'
//! `status.networkInterfaces[].ips`; every request needs `Metadata-Flavor: IronCore Metal`
//! (else `403`).
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /v1/` | JSON: static metadata, `server-name`, the server's `metadata.metal.ironcore.dev/*` annotations and labels (prefix stripped), and `user-data` (a map) when there is any |
//! | `GET /v1/{field}` | that metadata value as text |
//! | `GET /v1/user-data` | JSON map of the claim's `userDataRef` Secret (type `metal.ironcore.dev/user-data`) |
//! | `GET /v1/user-data/{key}` | one key of it, raw |
//!
//! With `--metadata-auth=token` (the default) the caller must also present its boot token
//! (`Authorization: Bearer <token>`; the booted OS reads it from `metal.boot-token=` on its
//! kernel command line): the token of the server its address identifies, for that server's
//! active configuration, so a neighbour that borrows the address still gets nothing.
//!
//! Unknown callers, wrong or missing tokens, unknown fields and absent user-data get
//! `404 not found`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api::constants::{METADATA_FLAVOR_HEADER, METADATA_FLAVOR_VALUE, METADATA_PREFIX};
use api::server::Server;
use api::serverclaim::{SECRET_TYPE_USER_DATA, ServerClaim};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use crate::config::MetadataAuth;
use crate::http::{Body, not_found, text};
use crate::metrics::ProvisioningMetrics;
use crate::stores::Stores;
use crate::token::TokenKey;

/// Shared state of the metadata service.
pub struct MetadataServer {
    /// Watch caches.
    pub stores: Stores,
    /// Kubernetes client (user-data Secrets are read on request, never cached).
    pub client: kube::Client,
    /// Static metadata from flags.
    pub static_metadata: BTreeMap<String, String>,
    /// Metrics.
    pub metrics: ProvisioningMetrics,
    /// Set once the caches have synced.
    pub ready: Arc<AtomicBool>,
    /// Key of the boot tokens.
    pub key: TokenKey,
    /// How callers are authenticated.
    pub auth: MetadataAuth,
}

impl std::fmt::Debug for MetadataServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataServer").finish_non_exhaustive()
    }
}

/// The metadata of a server (pure): static values, `server-name`, then the prefixed
/// annotations and labels (labels win).
pub fn metadata_of(
    server: &Server,
    static_metadata: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut md = static_metadata.clone();
    md.insert("server-name".into(), server.name_any());
    for (k, v) in server.annotations().iter().chain(server.labels().iter()) {
        if let Some(key) = k.strip_prefix(METADATA_PREFIX) {
            md.insert(key.to_string(), v.clone());
        }
    }
    md
}

enum UserData {
    None,
    Some(BTreeMap<String, Vec<u8>>),
    WrongType(String),
}

impl MetadataServer {
    /// Whether the request carries `server`'s boot token for its active configuration.
    fn token_ok(&self, req: &Request<Incoming>, server: &Server) -> bool {
        let Some(presented) = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let Some(sbc) = crate::active::served_configuration(&self.stores, server) else {
            return false;
        };
        self.key.verify(
            presented.trim(),
            server.metadata.uid.as_deref().unwrap_or_default(),
            sbc.metadata.uid.as_deref().unwrap_or_default(),
            sbc.metadata.generation.unwrap_or_default(),
        )
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (endpoint, resp) = self.route(&req, peer).await;
        let result = match resp.status() {
            StatusCode::OK => "served",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "error",
        };
        self.metrics.request(endpoint, result);
        tracing::debug!(%peer, path = req.uri().path(), status = resp.status().as_u16(), "metadata request");
        resp
    }

    async fn route(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> (&'static str, Response<Body>) {
        let path = req.uri().path();
        if !path.starts_with("/v1/") {
            return ("other", not_found());
        }
        let flavor_ok = req
            .headers()
            .get(METADATA_FLAVOR_HEADER)
            .is_some_and(|v| v.as_bytes() == METADATA_FLAVOR_VALUE.as_bytes());
        if !flavor_ok {
            return (
                "metadata",
                text(
                    StatusCode::FORBIDDEN,
                    "text/plain; charset=utf-8",
                    format!(
                        "missing required header: {METADATA_FLAVOR_HEADER}: {METADATA_FLAVOR_VALUE}\n"
                    ),
                ),
            );
        }
        if req.method() != Method::GET {
            return (
                "metadata",
                text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain",
                    "method not allowed\n",
                ),
            );
        }
        if !self.ready.load(Ordering::Acquire) {
            return (
                "metadata",
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "temporarily unavailable\n",
                ),
            );
        }
        let Some(name) = self.stores.index.read(|i| i.by_ip(peer.ip())) else {
            return ("metadata", not_found());
        };
        let Some(server) = self.stores.servers.get(&ObjectRef::new(&name)) else {
            return ("metadata", not_found());
        };
        if self.auth == MetadataAuth::Token && !self.token_ok(req, &server) {
            tracing::debug!(server = %server.name_any(), %peer, "metadata request without the server's boot token");
            return ("metadata", not_found());
        }
        let rest = &path["/v1/".len()..];
        let segments: Vec<&str> = if rest.is_empty() {
            vec![]
        } else {
            rest.split('/').collect()
        };
        match segments.as_slice() {
            [] => {
                let md = metadata_of(&server, &self.static_metadata);
                let mut v = serde_json::to_value(&md).unwrap_or_default();
                match self.user_data(&server).await {
                    Ok(UserData::Some(ud)) => {
                        v["user-data"] = serde_json::to_value(strings(&ud)).unwrap_or_default();
                    }
                    Ok(UserData::None) => {}
                    Ok(UserData::WrongType(t)) => return ("metadata", wrong_type(&t)),
                    Err(r) => return ("metadata", r),
                }
                (
                    "metadata",
                    text(StatusCode::OK, "application/json", v.to_string()),
                )
            }
            ["user-data"] => match self.user_data(&server).await {
                Ok(UserData::Some(ud)) => (
                    "user_data",
                    text(
                        StatusCode::OK,
                        "application/json",
                        serde_json::to_string(&strings(&ud)).unwrap_or_default(),
                    ),
                ),
                Ok(UserData::None) => ("user_data", not_found()),
                Ok(UserData::WrongType(t)) => ("user_data", wrong_type(&t)),
                Err(r) => ("user_data", r),
            },
            ["user-data", key] => match self.user_data(&server).await {
                Ok(UserData::Some(ud)) => match ud.get(*key) {
                    Some(v) => (
                        "user_data",
                        text(StatusCode::OK, "text/plain; charset=utf-8", v.clone()),
                    ),
                    None => ("user_data", not_found()),
                },
                Ok(UserData::None) => ("user_data", not_found()),
                Ok(UserData::WrongType(t)) => ("user_data", wrong_type(&t)),
                Err(r) => ("user_data", r),
            },
            [field] => {
                let md = metadata_of(&server, &self.static_metadata);
                match md.get(*field) {
                    Some(v) => (
                        "metadata",
                        text(StatusCode::OK, "text/plain; charset=utf-8", v.clone()),
                    ),
                    None => ("metadata", not_found()),
                }
            }
            _ => ("metadata", not_found()),
        }
    }

    /// The user-data of the server's claim, read uncached.
    async fn user_data(&self, server: &Server) -> Result<UserData, Response<Body>> {
        let Some(r) = &server.spec.server_claim_ref else {
            return Ok(UserData::None);
        };
        let Some(claim): Option<Arc<ServerClaim>> = self
            .stores
            .claims
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
        else {
            return Ok(UserData::None);
        };
        let Some(ud) = &claim.spec.user_data_ref else {
            return Ok(UserData::None);
        };
        match Api::<Secret>::namespaced(self.client.clone(), &r.namespace)
            .get_opt(&ud.name)
            .await
        {
            Ok(None) => Ok(UserData::None),
            Ok(Some(s)) => {
                let t = s.type_.clone().unwrap_or_default();
                if t != SECRET_TYPE_USER_DATA {
                    return Ok(UserData::WrongType(t));
                }
                Ok(UserData::Some(
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading user-data Secret failed");
                Err(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "temporarily unavailable\n",
                ))
            }
        }
    }
}

fn strings(m: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn wrong_type(t: &str) -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        format!("wrong secret type for user-data {t:?}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_merges_static_name_annotations_labels() {
        let s: Server = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": {
                "name": "s1",
                "labels": { "metadata.metal.ironcore.dev/rack": "r7", "other": "x" },
                "annotations": { "metadata.metal.ironcore.dev/rack": "ann", "metadata.metal.ironcore.dev/site": "fra" }
            },
            "spec": { "systemUUID": "u" }
        }))
        .unwrap();
        let st: BTreeMap<String, String> = [("region".to_string(), "eu".to_string())].into();
        let md = metadata_of(&s, &st);
        assert_eq!(md.get("server-name").map(String::as_str), Some("s1"));
        assert_eq!(md.get("rack").map(String::as_str), Some("r7"), "labels win");
        assert_eq!(md.get("site").map(String::as_str), Some("fra"));
        assert_eq!(md.get("region").map(String::as_str), Some("eu"));
        assert!(!md.contains_key("other"));
    }
}
