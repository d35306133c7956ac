//! The boot server: what a network-booting server fetches.
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /boot.ipxe` | chain-loader: `chain <url>/ipxe?mac=${net0/mac}&uuid=${uuid}`, retried a few times (same for everyone) |
//! | `GET /ipxe?mac=<mac>&uuid=<uuid>`, `GET /ipxe/<uuid>` | the server's iPXE script, once per boot window |
//! | `GET /uefi/<uuid>`, `GET /uefi?mac=<mac>&uuid=<uuid>` | `302` to the EFI image for UEFI HTTP boot (the image's UKI, else its EFI-stub kernel), once per boot window |
//! | `GET /ignition/<uuid>/<token>` | the `ignition` key of the configuration's `ignitionSecretRef` |
//! | `GET /artifacts/<uuid>/<token>/<digest>` | a kernel / initrd / root image blob of a resolved OCI image, streamed from the registry |
//!
//! A request is answered only for the server it identifies (MAC and/or system UUID, see
//! [`crate::index`]) and only with its active configuration ([`crate::active`]: what
//! `spec.bootConfigurationRef` points at), when that configuration names the server and is
//! Ready. The two *identifying* endpoints (script, UEFI redirect) answer only inside the
//! server's boot window ([`api::bootwindow`]: opened by the recorded network-boot power-on,
//! closed, with the Server's resourceVersion as precondition, before the answer leaves), so a
//! neighbour that knows a MAC and UUID cannot fetch the script, and a second fetch in the same
//! boot gets nothing. Everything after the script carries the boot token ([`crate::token`]).
//! Unknown servers, contradicting MAC/UUID pairs, servers without an active configuration,
//! closed windows, wrong tokens: all get the same `404 not found`.

use std::net::SocketAddr;

/// `path` fit for a log: the boot token segment of `/ignition/<uuid>/<token>` and
/// `/artifacts/<uuid>/<token>/<digest>` is masked (a token in a log would let its reader fetch
/// the server's ignition).
pub fn redacted(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    if matches!(parts.get(1), Some(&"ignition" | &"artifacts")) && parts.len() > 3 {
        parts[3] = "<token>";
    }
    parts.join("/")
}
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

use crate::artifacts::{BootAuth, BootSource, Resolver, ScriptError, boot_source};
use crate::http::{Body, not_found, query, text};
use crate::index::{Query, normalize_uuid};
use crate::ipxe;
use crate::metrics::ProvisioningMetrics;
use crate::status::{self, ServerDraft};
use crate::stores::Stores;
use crate::token::TokenKey;

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
    /// Key of the boot tokens.
    pub key: TokenKey,
    /// How long a recorded power-on's boot window stays open.
    pub window: std::time::Duration,
}

/// How long an identifying request waits for the watch cache to show a window that was just
/// opened (the power-on record and the firmware's first request may race the watch).
const WINDOW_CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes tried per request before giving up with 503 (each after the cache caught up).
const CLOSE_ATTEMPTS: usize = 3;

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

    /// The boot token of `server` booting `sbc`.
    fn auth(&self, server: &Server, sbc: &ServerBootConfiguration) -> BootAuth {
        BootAuth {
            uuid: normalize_uuid(&server.spec.system_uuid).unwrap_or_default(),
            token: self.key.token(
                server.metadata.uid.as_deref().unwrap_or_default(),
                sbc.metadata.uid.as_deref().unwrap_or_default(),
                sbc.metadata.generation.unwrap_or_default(),
            ),
        }
    }

    /// The identified server and its active configuration, when `token` is its boot token.
    fn authenticated(
        &self,
        uuid: &str,
        token: &str,
    ) -> Option<(Arc<Server>, Arc<ServerBootConfiguration>)> {
        let (server, sbc) = self.active(&Query {
            mac: None,
            uuid: Some(uuid.to_string()),
        })?;
        let ok = self.key.verify(
            token,
            server.metadata.uid.as_deref().unwrap_or_default(),
            sbc.metadata.uid.as_deref().unwrap_or_default(),
            sbc.metadata.generation.unwrap_or_default(),
        );
        ok.then_some((server, sbc))
    }

    /// For an identifying request: the server and its configuration when its boot window is
    /// open, after closing the window (so the answer is given once per power-on). `Err` is the
    /// response to give instead (`404`, or `503` when the close could not be written).
    ///
    /// A conflicting close means the cache was behind the Server (typically: this very window
    /// was closed a moment ago by the previous answer). Rather than a 503 the firmware would
    /// have to retry, the decision is taken again once the cache has caught up, so a second
    /// fetch in the same boot gets the same 404 as any later one.
    async fn take_window(
        &self,
        q: &Query,
        peer: SocketAddr,
    ) -> Result<(Arc<Server>, Arc<ServerBootConfiguration>), Response<Body>> {
        let mut started = tokio::time::Instant::now();
        let mut stale: Option<String> = None;
        for _ in 0..CLOSE_ATTEMPTS {
            let (server, sbc) = loop {
                let Some((server, sbc)) = self.active(q) else {
                    return Err(not_found());
                };
                let behind = stale.is_some() && server.metadata.resource_version == stale;
                let conds = server
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default();
                if !behind && api::bootwindow::is_open(conds, &status::now(), self.window) {
                    break (server, sbc);
                }
                if started.elapsed() >= WINDOW_CACHE_WAIT {
                    if behind {
                        return Err(unavailable());
                    }
                    tracing::info!(server = %server.name_any(), %peer, "boot script refused: no open boot window (no recorded network-boot power-on, or its script was already served)");
                    return Err(not_found());
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            let mut draft = ServerDraft::of(&server);
            api::bootwindow::close(
                &mut draft.conditions,
                &format!("boot script served to {}", peer.ip()),
                server.metadata.generation,
                status::now(),
            );
            match status::apply_server(&self.client, &server, &draft, true).await {
                Ok(_) => return Ok((server, sbc)),
                Err(e) if status::is_conflict(&e) => {
                    // Another replica served it, or the Server changed since the cache saw it:
                    // decide again on the newer object.
                    stale = server.metadata.resource_version.clone();
                    started = tokio::time::Instant::now();
                }
                Err(e) => {
                    tracing::warn!(server = %server.name_any(), error = %e, "cannot record the served boot script");
                    return Err(unavailable());
                }
            }
        }
        Err(unavailable())
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path().to_string();
        let (endpoint, resp) = self.route(&req, &path, peer).await;
        let result = match resp.status() {
            StatusCode::OK | StatusCode::FOUND => "served",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::METHOD_NOT_ALLOWED => "bad_request",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "error",
        };
        self.metrics.request(endpoint, result);
        tracing::debug!(%peer, path = %redacted(&path), status = resp.status().as_u16(), "boot request");
        resp
    }

    async fn route(
        &self,
        req: &Request<Incoming>,
        path: &str,
        peer: SocketAddr,
    ) -> (&'static str, Response<Body>) {
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
            ["ipxe"] => ("ipxe", self.script(&q(None), peer).await),
            ["ipxe", uuid] => ("ipxe", self.script(&q(Some(uuid)), peer).await),
            ["ignition", uuid, token] => ("ignition", self.ignition(uuid, token).await),
            ["uefi"] => ("uefi", self.uefi(&q(None), peer).await),
            ["uefi", uuid] => ("uefi", self.uefi(&q(Some(uuid)), peer).await),
            ["artifacts", uuid, token, digest] => {
                ("artifact", self.artifact(uuid, token, digest).await)
            }
            _ => ("other", not_found()),
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    async fn script(&self, q: &Query, peer: SocketAddr) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        if let Some((_, sbc)) = self.active(q)
            && matches!(boot_source(&sbc.spec), BootSource::Iso(_))
        {
            return not_found();
        }
        let (server, sbc) = match self.take_window(q, peer).await {
            Ok(v) => v,
            Err(r) => return r,
        };
        let auth = self.auth(&server, &sbc);
        match self.resolver.script_spec(&sbc, &auth).await {
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

    async fn ignition(&self, uuid: &str, token: &str) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        let Some((_, sbc)) = self.authenticated(uuid, token) else {
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

    async fn uefi(&self, q: &Query, peer: SocketAddr) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        let (server, sbc) = match self.take_window(q, peer).await {
            Ok(v) => v,
            Err(r) => return r,
        };
        let auth = self.auth(&server, &sbc);
        match self.resolver.efi_url(&sbc, &auth).await {
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

    async fn artifact(&self, uuid: &str, token: &str, digest: &str) -> Response<Body> {
        if !self.is_ready() {
            return unavailable();
        }
        let Some((_, sbc)) = self.authenticated(uuid, token) else {
            return not_found();
        };
        // Only blobs of the image this server's configuration boots.
        let BootSource::Oci(image) = boot_source(&sbc.spec) else {
            return not_found();
        };
        match self.resolver.resolve_image(&image).await {
            Ok(r) if r.digests().iter().any(|d| d == digest) => {}
            Ok(_) => return not_found(),
            Err(e) if e.is_transient() => return unavailable(),
            Err(_) => return not_found(),
        }
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

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn tokens_are_masked_in_logged_paths() {
        assert_eq!(redacted("/ignition/u-1/s3cr3t"), "/ignition/u-1/<token>");
        assert_eq!(
            redacted("/artifacts/u-1/s3cr3t/sha256:ab"),
            "/artifacts/u-1/<token>/sha256:ab"
        );
        assert_eq!(redacted("/ipxe?mac=aa&uuid=u-1"), "/ipxe?mac=aa&uuid=u-1");
        assert_eq!(redacted("/ignition/u-1"), "/ignition/u-1");
        assert_eq!(redacted("/boot.ipxe"), "/boot.ipxe");
    }
}
