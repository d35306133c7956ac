//! The boot server: what a network-booting server fetches.
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /boot.ipxe` | chain-loader: `chain <url>/ipxe?mac=${net0/mac}&uuid=${uuid}`, retried a few times (same for everyone) |
//! | `GET /ipxe?mac=<mac>&uuid=<uuid>`, `GET /ipxe/<uuid>` | the server's iPXE script |
//! | `GET /ignition/<uuid>[?mac=<mac>]` | the `ignition` key of the configuration's `ignitionSecretRef` |
//! | `GET /uefi/<uuid>`, `GET /uefi?mac=<mac>&uuid=<uuid>` | `302` to the EFI image for UEFI HTTP boot (the image's UKI, else its EFI-stub kernel) |
//! | `GET /artifacts/<digest>` | a kernel / initrd / root image blob of a resolved OCI image, streamed from the registry |
//!
//! A request is answered only for the server it identifies (MAC and/or system UUID, see
//! [`crate::index`]) and only with its active configuration ([`crate::active`]: what
//! `spec.bootConfigurationRef` points at), when that configuration names the server and is Ready. Unknown servers, contradicting MAC/UUID
//! pairs, servers without an active configuration: all get the same `404 not found`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use crate::artifacts::{BootSource, Resolver, ScriptError, boot_source};
use crate::http::{Body, not_found, query, text};
use crate::index::{Query, normalize_uuid};
use crate::ipxe;
use crate::metrics::ProvisioningMetrics;
use crate::stores::Stores;

const IPXE: &str = "text/plain; charset=utf-8";

/// Shared state of the boot server.
pub struct BootServer {
    /// Watch caches.
    pub stores: Stores,
    /// Script / artifact resolution.
    pub resolver: Arc<Resolver>,
    /// Kubernetes client (ignition Secrets are read on request, never cached).
    pub client: kube::Client,
    /// Metrics.
    pub metrics: ProvisioningMetrics,
    /// Set once the caches have synced; before that per-server requests get 503.
    pub ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for BootServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootServer").finish_non_exhaustive()
    }
}

fn unavailable() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        "temporarily unavailable\n",
    )
}

impl BootServer {
    /// The server a request identifies and its active, Ready, network-boot configuration.
    fn active(&self, q: &Query) -> Option<(Arc<Server>, Arc<ServerBootConfiguration>)> {
        let name = self.stores.index.read(|i| i.identify(q))?;
        let server = self.stores.servers.get(&ObjectRef::new(&name))?;
        let sbc = crate::active::served_configuration(&self.stores, &server)?;
        Some((server, sbc))
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path().to_string();
        let (endpoint, resp) = self.route(&req, &path).await;
        let result = match resp.status() {
            StatusCode::OK | StatusCode::FOUND => "served",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::METHOD_NOT_ALLOWED => "bad_request",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "error",
        };
        self.metrics.request(endpoint, result);
        tracing::debug!(%peer, path, status = resp.status().as_u16(), "boot request");
        resp
    }

    async fn route(&self, req: &Request<Incoming>, path: &str) -> (&'static str, Response<Body>) {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (
                "other",
                text(StatusCode::METHOD_NOT_ALLOWED, IPXE, "method not allowed\n"),
            );
        }
        let params = query(req);
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let q = |uuid: Option<&str>| Query {
            mac: params.get("mac").cloned().filter(|m| !m.is_empty()),
            uuid: uuid
                .map(str::to_string)
                .or_else(|| params.get("uuid").cloned())
                .filter(|u| !u.is_empty()),
        };
        match segments.as_slice() {
            ["boot.ipxe"] => (
                "chain",
                text(
                    StatusCode::OK,
                    IPXE,
                    ipxe::render_chain_script(self.resolver.boot_server_url()),
                ),
            ),
            ["ipxe"] => ("ipxe", self.script(&q(None)).await),
            ["ipxe", uuid] => ("ipxe", self.script(&q(Some(uuid))).await),
            ["ignition", uuid] => ("ignition", self.ignition(&q(Some(uuid))).await),
            ["uefi"] => ("uefi", self.uefi(&q(None)).await),
            ["uefi", uuid] => ("uefi", self.uefi(&q(Some(uuid))).await),
            ["artifacts", digest] => ("artifact", self.artifact(digest).await),
            _ => ("other", not_found()),
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    async fn script(&self, q: &Query) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        let Some((server, sbc)) = self.active(q) else {
            return not_found();
        };
        if matches!(boot_source(&sbc.spec), BootSource::Iso(_)) {
            return not_found();
        }
        let uuid = normalize_uuid(&server.spec.system_uuid).unwrap_or_default();
        match self.resolver.script_spec(&sbc, &uuid).await {
            Ok(spec) => match ipxe::render_server_script(&spec) {
                Ok(s) => text(StatusCode::OK, IPXE, s),
                Err(e) => {
                    tracing::warn!(server = %server.name_any(), error = %e, "cannot render boot script");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        IPXE,
                        "cannot render boot script\n",
                    )
                }
            },
            Err(ScriptError::Oci(e)) if e.is_transient() => unavailable(),
            Err(e) => {
                tracing::warn!(server = %server.name_any(), error = %e, "no boot script");
                not_found()
            }
        }
    }

    async fn ignition(&self, q: &Query) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        let Some((_, sbc)) = self.active(q) else {
            return not_found();
        };
        let Some(r) = &sbc.spec.ignition_secret_ref else {
            return not_found();
        };
        let ns = sbc.namespace().unwrap_or_default();
        match Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get_opt(&r.name)
            .await
        {
            Ok(Some(secret)) => {
                let data = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get("ignition"))
                    .map(|b| Bytes::from(b.0.clone()))
                    .or_else(|| {
                        secret
                            .string_data
                            .as_ref()
                            .and_then(|d| d.get("ignition"))
                            .map(|s| Bytes::from(s.clone()))
                    });
                match data {
                    Some(d) => text(StatusCode::OK, "application/json", d),
                    None => not_found(),
                }
            }
            Ok(None) => not_found(),
            Err(e) => {
                tracing::warn!(error = %e, "reading ignition Secret failed");
                unavailable()
            }
        }
    }

    async fn uefi(&self, q: &Query) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        let Some((_, sbc)) = self.active(q) else {
            return not_found();
        };
        match self.resolver.efi_url(&sbc).await {
            Ok(url) => {
                let mut r = text(StatusCode::FOUND, IPXE, "");
                if let Ok(v) = header::HeaderValue::from_str(&url) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Err(ScriptError::Oci(e)) if e.is_transient() => unavailable(),
            Err(_) => not_found(),
        }
    }

    async fn artifact(&self, digest: &str) -> Response<Body> {
        let Some(reference) = self.resolver.blob_source(digest) else {
            return not_found();
        };
        match self.resolver.oci().blob(&reference, digest).await {
            Ok(upstream) => {
                let length = upstream.headers().get(header::CONTENT_LENGTH).cloned();
                let body = upstream.into_body().map_err(|e| Box::new(e) as _).boxed();
                let mut r = Response::new(body);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/octet-stream"),
                );
                if let Some(l) = length {
                    r.headers_mut().insert(header::CONTENT_LENGTH, l);
                }
                r
            }
            Err(e) if e.is_transient() => unavailable(),
            Err(e) => {
                tracing::warn!(digest, error = %e, "artifact not available");
                not_found()
            }
        }
    }
}
