//! A tiny OCI distribution registry for tests: one repository with an image index, a manifest
//! with kernel / initrd / squashfs layers, and the Bearer token flow (401 with a challenge,
//! `/token`, then `Authorization: Bearer`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use sha2::{Digest, Sha256};

/// The registry's content and counters.
pub struct Registry {
    /// `host:port`.
    pub host: String,
    /// Repository.
    pub repo: String,
    /// Kernel layer bytes and digest.
    pub kernel: (Bytes, String),
    /// Initrd layer.
    pub initrd: (Bytes, String),
    /// Squashfs layer.
    pub squashfs: (Bytes, String),
    /// Manifest digest.
    pub manifest_digest: String,
    /// Token requests served.
    pub token_requests: Arc<AtomicUsize>,
    /// Blob requests served.
    pub blob_requests: Arc<AtomicUsize>,
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Starts the registry on loopback.
pub async fn start() -> Registry {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let repo = "os/gardenlinux".to_string();
    let kernel = Bytes::from_static(b"MZ-fake-efi-stub-kernel");
    let initrd = Bytes::from_static(b"070701-fake-initramfs");
    let squashfs = Bytes::from_static(b"hsqs-fake-rootfs");
    let config = Bytes::from_static(b"{}");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.ironcore.image.config.v1+json", "digest": digest(&config), "size": config.len() },
        "layers": [
            { "mediaType": "application/vnd.ironcore.image.kernel", "digest": digest(&kernel), "size": kernel.len() },
            { "mediaType": "application/vnd.ironcore.image.initramfs", "digest": digest(&initrd), "size": initrd.len() },
            { "mediaType": "application/vnd.ironcore.image.squashfs", "digest": digest(&squashfs), "size": squashfs.len() },
        ]
    });
    let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let arm = Bytes::from_static(b"{\"schemaVersion\":2,\"layers\":[]}");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&arm), "size": arm.len(),
              "platform": { "architecture": "arm64", "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len(),
              "annotations": { "cname": "metal_pxe-gardener_prod", "architecture": "amd64" },
              "platform": { "architecture": "amd64", "os": "linux" } },
        ]
    });
    let index = Bytes::from(serde_json::to_vec(&index).unwrap());
    let mut manifests: HashMap<String, (Bytes, &'static str)> = HashMap::new();
    manifests.insert(
        "1.0".into(),
        (index.clone(), "application/vnd.oci.image.index.v1+json"),
    );
    manifests.insert(
        digest(&index),
        (index, "application/vnd.oci.image.index.v1+json"),
    );
    manifests.insert(
        digest(&manifest),
        (
            manifest.clone(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
    );
    manifests.insert(
        digest(&arm),
        (arm, "application/vnd.oci.image.manifest.v1+json"),
    );
    // A tag without a kernel layer.
    let nokernel = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "layers": [ { "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(b"x"), "size": 1 } ]
        }))
        .unwrap(),
    );
    manifests.insert(
        "no-kernel".into(),
        (nokernel, "application/vnd.oci.image.manifest.v1+json"),
    );
    let mut blobs: HashMap<String, Bytes> = HashMap::new();
    for b in [&kernel, &initrd, &squashfs, &config] {
        blobs.insert(digest(b), b.clone());
    }
    let token_requests = Arc::new(AtomicUsize::new(0));
    let blob_requests = Arc::new(AtomicUsize::new(0));
    let state = Arc::new((
        manifests,
        blobs,
        host.clone(),
        repo.clone(),
        Arc::clone(&token_requests),
        Arc::clone(&blob_requests),
    ));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = Arc::clone(&state);
                        async move {
                            let (manifests, blobs, host, repo, tokens, blob_count) = &*state;
                            let path = req.uri().path().to_string();
                            let resp = |status: u16, ct: &str, body: Bytes| {
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", ct)
                                    .body(Full::new(body))
                                    .unwrap()
                            };
                            if path == "/token" {
                                tokens.fetch_add(1, Ordering::SeqCst);
                                return Ok::<_, std::convert::Infallible>(resp(
                                    200,
                                    "application/json",
                                    Bytes::from_static(b"{\"token\":\"test-token\"}"),
                                ));
                            }
                            let authed = req
                                .headers()
                                .get("authorization")
                                .is_some_and(|v| v == "Bearer test-token");
                            if !authed {
                                let mut r =
                                    resp(401, "application/json", Bytes::from_static(b"{}"));
                                r.headers_mut().insert(
                                "www-authenticate",
                                format!(
                                    "Bearer realm=\"http://{host}/token\",service=\"test-registry\",scope=\"repository:{repo}:pull\""
                                )
                                .parse()
                                .unwrap(),
                            );
                                return Ok(r);
                            }
                            let prefix = format!("/v2/{repo}/");
                            let Some(rest) = path.strip_prefix(&prefix) else {
                                return Ok(resp(404, "application/json", Bytes::new()));
                            };
                            if let Some(r) = rest.strip_prefix("manifests/") {
                                return Ok(match manifests.get(r) {
                                    Some((b, ct)) => resp(200, ct, b.clone()),
                                    None => resp(
                                        404,
                                        "application/json",
                                        Bytes::from_static(
                                            b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}",
                                        ),
                                    ),
                                });
                            }
                            if let Some(d) = rest.strip_prefix("blobs/") {
                                blob_count.fetch_add(1, Ordering::SeqCst);
                                return Ok(match blobs.get(d) {
                                    Some(b) => resp(200, "application/octet-stream", b.clone()),
                                    None => resp(404, "application/json", Bytes::new()),
                                });
                            }
                            Ok(resp(404, "application/json", Bytes::new()))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Registry {
        host,
        repo,
        kernel: (kernel.clone(), digest(&kernel)),
        initrd: (initrd.clone(), digest(&initrd)),
        squashfs: (squashfs.clone(), digest(&squashfs)),
        manifest_digest: digest(&manifest),
        token_requests,
        blob_requests,
    }
}
