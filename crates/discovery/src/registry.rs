//! The probe registry: the HTTP endpoint the in-band agent reports to.
//!
//! | request | answer |
//! |---|---|
//! | `POST /register` `{systemUUID, data}` (upstream payload) | 201 stored; 400 bad body; 401 no/invalid `Authorization`; 403 wrong token or no discovery in progress; 413 body over 1 MiB |
//! | `POST /bootstate` `{systemUUID, booted}` | 200 (`BootStateReceived=True` on the internal SBC when `booted`); same errors |
//! | `POST /cleaning` `{systemUUID, mode, disks}` (the cleaning agent's wipe) | 201 stored; same errors, 403 also when no cleaning is in progress |
//! | anything else | 404 / 405 |
//!
//! Authentication: `Authorization: Bearer <token>`, compared in constant time with the `token` of
//! the server's discovery Secret (found by the `metal.ironcore.dev/system-uuid` label in the
//! manager namespace); for `/cleaning`, of its cleaning Secret (created by maintenance for the
//! round, label `metal.ironcore.dev/cleaning`). A discovery token cannot report a cleaning nor
//! the other way round. A rejected request writes nothing.
//!
//! Storage: the report is kept in the Kubernetes API, not in memory — a ConfigMap
//! `<server>-discovery-report` in the manager namespace (key `report.json`), owned by the
//! discovery Secret of the round it belongs to (so it is garbage-collected with it and can never
//! be mistaken for a later round's report). Every replica serves the registry; all state goes
//! through the API, so any replica can take any report and the leader's Server reconcile picks it
//! up through its ConfigMap watch. A cleaning report goes to `<server>-cleaning-report`, owned
//! by the cleaning Secret; maintenance reads it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use api::conditions::{self, ConditionStatus};
use api::constants::agent::{CLEANING_LABEL, CLEANING_REPORT_KEY, cleaning_report_name};
use api::constants::{condition_types, reasons};
use api::serverbootconfiguration::ServerBootConfiguration;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use metal_probe::{BootstatePayload, CleaningPayload, RegistrationPayload};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::{MANAGER, now};
use crate::logic::ignition::{
    DISCOVERY_LABEL, REPORT_KEY, SERVER_ANNOTATION, SYSTEM_UUID_LABEL, TOKEN_KEY, report_name,
    sbc_name, tokens_equal,
};
use crate::metrics::DiscoveryMetrics;

/// The owner reference that ties a report to the Secret of its round.
fn owner_of(secret: &Secret) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "name": secret.name_any(),
        "uid": secret.metadata.uid.clone().unwrap_or_default(), "controller": true,
    })
}

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the registry needs.
#[derive(Clone)]
pub struct Registry {
    client: kube::Client,
    namespace: String,
    metrics: DiscoveryMetrics,
}

/// Why a request was rejected: status code and a short message (never echoes the token).
#[derive(Debug)]
struct Reject(StatusCode, String);

impl Registry {
    /// A registry storing reports in `namespace`.
    pub fn new(
        client: kube::Client,
        namespace: impl Into<String>,
        metrics: DiscoveryMetrics,
    ) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            metrics,
        }
    }

    /// Binds `addr` and serves until `shutdown` (over TLS when `tls` is set); returns the
    /// bound address.
    pub async fn serve(
        self,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let this = Arc::new(self);
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "registry accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let this = this.clone();
                let shutdown = shutdown.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let stream = match runtime::tls::accept(tls.as_ref(), stream).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, "registry: TLS handshake failed");
                            return;
                        }
                    };
                    let svc = service_fn(move |req| {
                        let this = this.clone();
                        async move { Ok::<_, Infallible>(this.handle(req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = shutdown.cancelled() => {}
                    }
                });
            }
        });
        tracing::info!(addr = %local, "registry listening");
        Ok((local, task))
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let result = match (req.method(), path.as_str()) {
            (&Method::POST, "/register") => self.register(req).await,
            (&Method::POST, "/bootstate") => self.bootstate(req).await,
            (&Method::POST, "/cleaning") => self.cleaning(req).await,
            (_, "/register" | "/bootstate" | "/cleaning") => {
                Err(Reject(StatusCode::METHOD_NOT_ALLOWED, "only POST".into()))
            }
            _ => Err(Reject(StatusCode::NOT_FOUND, "not found".into())),
        };
        let (status, body) = match result {
            Ok((s, b)) => (s, b),
            Err(Reject(s, b)) => (s, b),
        };
        let label = if matches!(path.as_str(), "/register" | "/bootstate" | "/cleaning") {
            path.as_str()
        } else {
            "other"
        };
        self.metrics.registry(label, status.as_u16());
        let mut resp = Response::new(Full::new(Bytes::from(body + "\n")));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }

    /// Reads the bearer token and the (size-capped) body.
    async fn read(req: Request<Incoming>) -> Result<(String, Bytes), Reject> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Reject(StatusCode::UNAUTHORIZED, "missing bearer token".into()))?;
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > MAX_BODY
        {
            return Err(Reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes"),
            ));
        }
        let body = Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| {
                Reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body larger than {MAX_BODY} bytes"),
                )
            })?
            .to_bytes();
        Ok((token, body))
    }

    /// The Secret of `uuid` carrying `purpose` (the discovery or the cleaning label) whose token
    /// equals `token`.
    async fn authenticate(&self, purpose: &str, uuid: &str, token: &str) -> Result<Secret, Reject> {
        let uuid = uuid.trim().to_ascii_lowercase();
        let valid_label = !uuid.is_empty()
            && uuid.len() <= 63
            && uuid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid_label {
            return Err(Reject(StatusCode::BAD_REQUEST, "invalid systemUUID".into()));
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp =
            ListParams::default().labels(&format!("{purpose}=true,{SYSTEM_UUID_LABEL}={uuid}"));
        let secrets = api.list(&lp).await.map_err(|e| {
            tracing::warn!(error = %e, "registry: listing agent secrets failed");
            Reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token right now".into(),
            )
        })?;
        let forbidden = || {
            Reject(
                StatusCode::FORBIDDEN,
                "token not accepted for this system".into(),
            )
        };
        secrets
            .items
            .into_iter()
            .find(|s| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get(TOKEN_KEY))
                    .is_some_and(|stored| tokens_equal(&stored.0, token.as_bytes()))
            })
            .ok_or_else(forbidden)
    }

    async fn register(&self, req: Request<Incoming>) -> Result<(StatusCode, String), Reject> {
        let (token, body) = Self::read(req).await?;
        let payload: RegistrationPayload = serde_json::from_slice(&body)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, format!("invalid payload: {e}")))?;
        let secret = self
            .authenticate(DISCOVERY_LABEL, &payload.system_uuid, &token)
            .await?;
        let Some(server) = secret.annotations().get(SERVER_ANNOTATION).cloned() else {
            return Err(Reject(
                StatusCode::FORBIDDEN,
                "token not accepted for this system".into(),
            ));
        };
        let report = serde_json::to_string(&payload.data)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))?;
        let name = report_name(&server);
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {DISCOVERY_LABEL: "true", SYSTEM_UUID_LABEL: payload.system_uuid.trim().to_ascii_lowercase()},
                "annotations": {SERVER_ANNOTATION: server, "metal.ironcore.dev/received-at": now().0.to_string()},
                "ownerReferences": [owner_of(&secret)],
            },
            "data": {REPORT_KEY: report},
        });
        self.store(&name, &server, &body).await?;
        tracing::info!(server = %server, interfaces = payload.data.network_interfaces.len(), "registry: report stored");
        Ok((StatusCode::CREATED, "registered".into()))
    }

    /// Stores a cleaning agent's report for maintenance, which decides whether it proves the
    /// disks clean.
    async fn cleaning(&self, req: Request<Incoming>) -> Result<(StatusCode, String), Reject> {
        let (token, body) = Self::read(req).await?;
        let payload: CleaningPayload = serde_json::from_slice(&body)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, format!("invalid payload: {e}")))?;
        let secret = self
            .authenticate(CLEANING_LABEL, &payload.system_uuid, &token)
            .await?;
        let Some(server) = secret.annotations().get(SERVER_ANNOTATION).cloned() else {
            return Err(Reject(
                StatusCode::FORBIDDEN,
                "token not accepted for this system".into(),
            ));
        };
        let report = serde_json::to_string(&payload)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))?;
        let name = cleaning_report_name(&server);
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {CLEANING_LABEL: "true", SYSTEM_UUID_LABEL: payload.system_uuid.trim().to_ascii_lowercase()},
                "annotations": {SERVER_ANNOTATION: server, "metal.ironcore.dev/received-at": now().0.to_string()},
                "ownerReferences": [owner_of(&secret)],
            },
            "data": {CLEANING_REPORT_KEY: report},
        });
        self.store(&name, &server, &body).await?;
        tracing::info!(server = %server, disks = payload.disks.len(), "registry: cleaning report stored");
        Ok((StatusCode::CREATED, "cleaning report stored".into()))
    }

    /// Applies a report ConfigMap (the latest report of a round wins).
    async fn store(
        &self,
        name: &str,
        server: &str,
        body: &serde_json::Value,
    ) -> Result<(), Reject> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        self.metrics.write("ConfigMap", "apply");
        api.patch(
            name,
            &kube::api::PatchParams::apply(MANAGER).force(),
            &kube::api::Patch::Apply(body),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, server = %server, "registry: storing report failed");
            Reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "storing the report failed; retry".into(),
            )
        })?;
        Ok(())
    }

    async fn bootstate(&self, req: Request<Incoming>) -> Result<(StatusCode, String), Reject> {
        let (token, body) = Self::read(req).await?;
        let payload: BootstatePayload = serde_json::from_slice(&body)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, format!("invalid payload: {e}")))?;
        let secret = self
            .authenticate(DISCOVERY_LABEL, &payload.system_uuid, &token)
            .await?;
        if !payload.booted {
            return Ok((StatusCode::OK, "noted".into()));
        }
        let Some(server) = secret.annotations().get(SERVER_ANNOTATION).cloned() else {
            return Err(Reject(
                StatusCode::FORBIDDEN,
                "token not accepted for this system".into(),
            ));
        };
        let cond = conditions::new(
            condition_types::BOOT_STATE_RECEIVED,
            ConditionStatus::True,
            reasons::BOOT_STATE_RECEIVED,
            "the discovery agent reported that it booted",
            None,
            now(),
        );
        let name = sbc_name(&server);
        let body = json!({
            "apiVersion": api::API_VERSION, "kind": "ServerBootConfiguration",
            "metadata": {"name": name, "namespace": self.namespace},
            "status": {"conditions": [cond]},
        });
        let api: Api<ServerBootConfiguration> =
            Api::namespaced(self.client.clone(), &self.namespace);
        self.metrics.write("ServerBootConfiguration", "apply");
        api.patch_status(
            &name,
            &kube::api::PatchParams::apply(MANAGER).force(),
            &kube::api::Patch::Apply(&body),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, server = %server, "registry: recording boot state failed");
            Reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "recording the boot state failed; retry".into(),
            )
        })?;
        Ok((StatusCode::OK, "boot state recorded".into()))
    }
}
