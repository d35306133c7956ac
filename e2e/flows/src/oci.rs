//! A small OCI distribution registry on loopback that serves boot images the way ironcore's OS
//! images are laid out (a manifest whose layers are a kernel, an initramfs and a squashfs, told
//! apart by media type), so that a ServerClaim's `image` resolves in end-to-end runs and in the
//! local bring-up without internet access.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Media type of the kernel layer.
pub const KERNEL: &str = "application/vnd.ironcore.image.kernel";
/// Media type of the initramfs layer.
pub const INITRAMFS: &str = "application/vnd.ironcore.image.initramfs";
/// Media type of the root file system layer.
pub const SQUASHFS: &str = "application/vnd.ironcore.image.squashfs";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[derive(Default)]
struct Content {
    manifests: HashMap<(String, String), Bytes>,
    blobs: HashMap<String, Bytes>,
}

/// A running registry.
pub struct ImageRegistry {
    /// `host:port`.
    pub host: String,
    task: tokio::task::JoinHandle<()>,
}

impl ImageRegistry {
    /// The image reference for `repo:tag` on this registry.
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    /// Starts a registry serving each `(repo, tag)` as an OS image with small fake artifacts.
    pub async fn start(images: &[(&str, &str)]) -> std::io::Result<Self> {
        let mut content = Content::default();
        for (repo, tag) in images {
            let kernel = Bytes::from(format!("MZ fake kernel of {repo}:{tag}"));
            let initrd = Bytes::from(format!("070701 fake initramfs of {repo}:{tag}"));
            let rootfs = Bytes::from(format!("hsqs fake rootfs of {repo}:{tag}"));
            let config = Bytes::from_static(b"{}");
            let layer = |mt: &str, b: &Bytes| serde_json::json!({ "mediaType": mt, "digest": digest(b), "size": b.len() });
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": layer("application/vnd.ironcore.image.config.v1+json", &config),
                "layers": [layer(KERNEL, &kernel), layer(INITRAMFS, &initrd), layer(SQUASHFS, &rootfs)],
            });
            let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default());
            for b in [kernel, initrd, rootfs, config] {
                content.blobs.insert(digest(&b), b);
            }
            content
                .manifests
                .insert((repo.to_string(), digest(&manifest)), manifest.clone());
            content
                .manifests
                .insert((repo.to_string(), tag.to_string()), manifest);
        }
        let content = Arc::new(content);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let host = listener.local_addr()?.to_string();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let content = content.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let resp = respond(&content, req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { host, task })
    }
}

impl Drop for ImageRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(content: &Content, path: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        if let Ok(v) = http::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        r
    };
    if path == "/v2/" || path == "/v2" {
        return reply(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{}"),
        );
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return reply(StatusCode::NOT_FOUND, "text/plain", Bytes::new());
    };
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        if let Some(m) = content
            .manifests
            .get(&(repo.to_string(), reference.to_string()))
        {
            let mut r = reply(StatusCode::OK, MANIFEST, m.clone());
            if let Ok(v) = http::HeaderValue::from_str(&digest(m)) {
                r.headers_mut().insert("docker-content-digest", v);
            }
            return r;
        }
    } else if let Some((_, d)) = rest.rsplit_once("/blobs/")
        && let Some(b) = content.blobs.get(d)
    {
        return reply(StatusCode::OK, "application/octet-stream", b.clone());
    }
    reply(
        StatusCode::NOT_FOUND,
        "application/json",
        Bytes::from_static(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not found"}]}"#),
    )
}
