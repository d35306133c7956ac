//! OCI distribution: resolve an image reference (upstream's `ServerBootConfiguration.spec.image`)
//! to boot artifacts, and fetch their blobs for the boot server to stream.
//!
//! Resolution follows what ironcore's boot-operator does for gardenlinux / IronCore OS images:
//! `GET /v2/<repo>/manifests/<tag|digest>`; an image index selects the manifest for the
//! configured architecture (an entry annotated `cname: metal_pxe*` with `architecture: <arch>`
//! first, else `platform.architecture`); the manifest's layers are picked by media type:
//!
//! | artifact | media types |
//! |---|---|
//! | kernel | `application/vnd.ironcore.image.kernel`, `application/io.gardenlinux.kernel` |
//! | initrd | `application/vnd.ironcore.image.initramfs`, `application/io.gardenlinux.initrd` |
//! | root image | `application/vnd.ironcore.image.squashfs`, `application/io.gardenlinux.squashfs` |
//! | UKI | `application/vnd.ironcore.image.uki` |
//!
//! Registries that answer `401` with a `Bearer` challenge get the anonymous (or, with
//! credentials, basic-authenticated) token flow. Manifests fetched by digest are verified.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::http_client::{HttpClient, HttpError};

/// OCI image index media type.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list media type.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker manifest media type.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Kernel layer media types.
pub const KERNEL_TYPES: &[&str] = &[
    "application/vnd.ironcore.image.kernel",
    "application/io.gardenlinux.kernel",
];
/// Initrd layer media types.
pub const INITRD_TYPES: &[&str] = &[
    "application/vnd.ironcore.image.initramfs",
    "application/io.gardenlinux.initrd",
];
/// Root image (squashfs) layer media types.
pub const SQUASHFS_TYPES: &[&str] = &[
    "application/vnd.ironcore.image.squashfs",
    "application/io.gardenlinux.squashfs",
];
/// Unified kernel image layer media type.
pub const UKI_TYPES: &[&str] = &["application/vnd.ironcore.image.uki"];

const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;

/// Why an image cannot be resolved or a blob fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// The reference is not an image reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The registry does not know the image (404).
    #[error("{what} not found in the registry")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// The registry refused access (401/403 after the token flow).
    #[error("the registry refused access to {what} (HTTP {status})")]
    Unauthorized {
        /// What was asked for.
        what: String,
        /// HTTP status.
        status: u16,
    },
    /// The image exists but cannot be booted (no kernel layer, no manifest for the
    /// architecture, bad digest, unknown format).
    #[error("{0}")]
    Unbootable(String),
    /// The registry could not be reached or answered with a server error; worth retrying.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
}

impl OciError {
    /// Whether retrying later may help (network, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        matches!(self, OciError::Unavailable(_))
    }
}

impl From<HttpError> for OciError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::InvalidUrl { .. } => OciError::Unbootable(e.to_string()),
            other => OciError::Unavailable(other.to_string()),
        }
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), e.g. `ghcr.io`, `registry-1.docker.io`.
    pub registry: String,
    /// Repository, e.g. `gardenlinux/gardenlinux`.
    pub repository: String,
    /// Tag, if given (default `latest` when there is no digest either).
    pub tag: Option<String>,
    /// Digest, if given (`sha256:...`).
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `[registry/]repository[:tag][@digest]` the way container tools do: the first
    /// component is a registry when it contains `.` or `:` or is `localhost`; Docker Hub is the
    /// default (`library/` for single-component names).
    pub fn parse(s: &str) -> Result<Reference, OciError> {
        let bad = |reason: &str| OciError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("empty or contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let (alg, hex) = d
                    .split_once(':')
                    .ok_or_else(|| bad("digest needs algorithm:hex"))?;
                if alg != "sha256" || hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(bad("only sha256 digests are supported"));
                }
                (r, Some(d.to_ascii_lowercase()))
            }
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => ("registry-1.docker.io".to_string(), rest.to_string()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path, None),
        };
        if repository.is_empty() {
            return Err(bad("no repository"));
        }
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if !repository.chars().all(valid) {
            return Err(bad("repository must be lower-case [a-z0-9._-/]"));
        }
        let repository = if registry == "registry-1.docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        if let Some(t) = &tag
            && (t.is_empty() || t.len() > 128)
        {
            return Err(bad("tag must be 1 to 128 characters"));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to put after `/manifests/`: the digest if given, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Platform (index entries).
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// Platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
}

/// An image manifest or index (both shapes in one type).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    /// Media type, when the document names it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Index entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

impl ManifestDoc {
    fn is_index(&self, content_type: Option<&str>) -> bool {
        let mt = self.media_type.as_deref().or(content_type).unwrap_or("");
        mt == MEDIA_INDEX
            || mt == MEDIA_DOCKER_LIST
            || (!self.manifests.is_empty() && self.layers.is_empty())
    }
}

/// Picks the manifest for `arch` from an index (pure).
pub fn select_manifest<'a>(index: &'a ManifestDoc, arch: &str) -> Option<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| {
            m.annotations
                .get("cname")
                .is_some_and(|c| c.starts_with("metal_pxe"))
                && m.annotations.get("architecture").map(String::as_str) == Some(arch)
        })
        .or_else(|| {
            index.manifests.iter().find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.architecture == arch && (p.os.is_empty() || p.os == "linux"))
            })
        })
        .or_else(|| (index.manifests.len() == 1).then(|| &index.manifests[0]))
}

/// The boot artifacts of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    /// Kernel layer.
    pub kernel: Option<Descriptor>,
    /// Initrd layer.
    pub initrd: Option<Descriptor>,
    /// Root image layer.
    pub squashfs: Option<Descriptor>,
    /// Unified kernel image layer.
    pub uki: Option<Descriptor>,
}

/// Picks the boot layers from a manifest (pure). An image without a kernel and without a UKI
/// cannot be network-booted.
pub fn artifacts(manifest: &ManifestDoc) -> Result<Artifacts, OciError> {
    let find = |types: &[&str]| {
        manifest
            .layers
            .iter()
            .find(|l| types.contains(&l.media_type.as_str()))
            .cloned()
    };
    let a = Artifacts {
        kernel: find(KERNEL_TYPES),
        initrd: find(INITRD_TYPES),
        squashfs: find(SQUASHFS_TYPES),
        uki: find(UKI_TYPES),
    };
    if a.kernel.is_none() && a.uki.is_none() {
        let types: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        return Err(OciError::Unbootable(format!(
            "the image has no kernel layer ({}) and no UKI; its layers are [{}]",
            KERNEL_TYPES.join(" or "),
            types.join(", ")
        )));
    }
    Ok(a)
}

/// A `WWW-Authenticate: Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// Token endpoint.
    pub realm: String,
    /// `service` parameter.
    pub service: Option<String>,
    /// `scope` parameter.
    pub scope: Option<String>,
}

/// Parses a `Bearer realm="...",service="...",scope="..."` challenge (pure).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut c = Challenge::default();
    let mut s = params.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        match key {
            "realm" => c.realm = value.to_string(),
            "service" => c.service = Some(value.to_string()),
            "scope" => c.scope = Some(value.to_string()),
            _ => {}
        }
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    (!c.realm.is_empty()).then_some(c)
}

/// An image resolved to its boot artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// Where the blobs live.
    pub reference: Reference,
    /// Digest of the (architecture) manifest the artifacts come from.
    pub manifest_digest: String,
    /// The artifacts.
    pub artifacts: Artifacts,
}

impl ResolvedImage {
    /// Every blob digest of the artifacts.
    pub fn digests(&self) -> Vec<String> {
        let a = &self.artifacts;
        [&a.kernel, &a.initrd, &a.squashfs, &a.uki]
            .into_iter()
            .flatten()
            .map(|d| d.digest.clone())
            .collect()
    }
}

/// Basic credentials per registry host, from a Docker `config.json` (`auths.<host>.auth`).
#[derive(Clone, Default)]
pub struct RegistryCredentials {
    by_host: HashMap<String, String>,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RegistryCredentials {
    /// Reads `{"auths": {"host": {"auth": "base64(user:pass)"} | {"username","password"}}}`.
    pub fn from_docker_config(json: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut by_host = HashMap::new();
        if let Some(auths) = v.get("auths").and_then(|a| a.as_object()) {
            for (host, entry) in auths {
                let host = host
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let auth = match (
                    entry.get("auth"),
                    entry.get("username"),
                    entry.get("password"),
                ) {
                    (Some(a), _, _) => a.as_str().map(str::to_string),
                    (None, Some(u), Some(p)) => {
                        Some(base64::engine::general_purpose::STANDARD.encode(format!(
                            "{}:{}",
                            u.as_str().unwrap_or(""),
                            p.as_str().unwrap_or("")
                        )))
                    }
                    _ => None,
                };
                if let Some(a) = auth {
                    by_host.insert(host, a);
                }
            }
        }
        Ok(Self { by_host })
    }

    fn basic(&self, registry: &str) -> Option<String> {
        let key = if registry == "registry-1.docker.io" {
            self.by_host
                .get(registry)
                .or_else(|| self.by_host.get("index.docker.io"))
                .or_else(|| self.by_host.get("docker.io"))
        } else {
            self.by_host.get(registry)
        };
        key.map(|a| format!("Basic {a}"))
    }
}

/// The registry client.
#[derive(Debug)]
pub struct OciClient {
    http: HttpClient,
    plain_http: HashSet<String>,
    credentials: RegistryCredentials,
    arch: String,
    tokens: Mutex<HashMap<(String, String), String>>,
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl OciClient {
    /// A client for `arch`; registries in `plain_http` (host\[:port\]) are spoken to over HTTP.
    pub fn new(
        http: HttpClient,
        plain_http: impl IntoIterator<Item = String>,
        credentials: RegistryCredentials,
        arch: impl Into<String>,
    ) -> Self {
        Self {
            http,
            plain_http: plain_http.into_iter().collect(),
            credentials,
            arch: arch.into(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn base(&self, r: &Reference) -> String {
        let scheme = if self.plain_http.contains(&r.registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", r.registry, r.repository)
    }

    fn token(&self, r: &Reference) -> Option<String> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(r.registry.clone(), r.repository.clone()))
            .cloned()
    }

    async fn fetch_token(&self, r: &Reference, challenge: &Challenge) -> Result<String, OciError> {
        let mut url = url::Url::parse(&challenge.realm).map_err(|e| {
            OciError::Unavailable(format!("token realm {:?}: {e}", challenge.realm))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &challenge.service {
                q.append_pair("service", s);
            }
            let scope = challenge
                .scope
                .clone()
                .unwrap_or_else(|| format!("repository:{}:pull", r.repository));
            q.append_pair("scope", &scope);
        }
        let mut headers = HeaderMap::new();
        if let Some(basic) = self.credentials.basic(&r.registry)
            && let Ok(v) = HeaderValue::from_str(&basic)
        {
            headers.insert(header::AUTHORIZATION, v);
        }
        let resp = self
            .http
            .get_buffered(url.as_str(), &headers, 64 * 1024)
            .await?;
        if resp.status == StatusCode::UNAUTHORIZED || resp.status == StatusCode::FORBIDDEN {
            return Err(OciError::Unauthorized {
                what: format!("a pull token for {}", r.repository),
                status: resp.status.as_u16(),
            });
        }
        if !resp.status.is_success() {
            return Err(OciError::Unavailable(format!(
                "token endpoint answered HTTP {}",
                resp.status
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&resp.body)
            .map_err(|e| OciError::Unavailable(format!("token response: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| OciError::Unavailable("token response without a token".into()))?;
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((r.registry.clone(), r.repository.clone()), token.clone());
        Ok(token)
    }

    fn auth_headers(&self, r: &Reference, extra: &HeaderMap) -> HeaderMap {
        let mut h = extra.clone();
        if let Some(t) = self.token(r)
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
        {
            h.insert(header::AUTHORIZATION, v);
        } else if let Some(basic) = self.credentials.basic(&r.registry)
            && let Ok(v) = HeaderValue::from_str(&basic)
        {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    /// GET with the token flow: on a `401` with a Bearer challenge, fetch a token once and
    /// retry.
    async fn get_authed(
        &self,
        r: &Reference,
        url: &str,
        extra: &HeaderMap,
    ) -> Result<http::Response<Incoming>, OciError> {
        let resp = self.http.get(url, &self.auth_headers(r, extra)).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let Some(challenge) = challenge else {
            return Err(OciError::Unauthorized {
                what: url.to_string(),
                status: 401,
            });
        };
        self.fetch_token(r, &challenge).await?;
        Ok(self.http.get(url, &self.auth_headers(r, extra)).await?)
    }

    async fn manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<(ManifestDoc, Option<String>, String), OciError> {
        let url = format!("{}/manifests/{reference}", self.base(r));
        let mut extra = HeaderMap::new();
        extra.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT));
        let resp = self.get_authed(r, &url, &extra).await?;
        let status = resp.status();
        let what = format!("manifest {r}");
        match status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(OciError::NotFound { what }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(OciError::Unauthorized {
                    what,
                    status: status.as_u16(),
                });
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                return Err(OciError::Unavailable(format!("{what}: HTTP {s}")));
            }
            s => return Err(OciError::Unbootable(format!("{what}: HTTP {s}"))),
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let body = collect_limited(resp, MANIFEST_LIMIT).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(OciError::Unbootable(format!(
                "{what}: content digest {digest} does not match {reference}"
            )));
        }
        let doc: ManifestDoc = serde_json::from_slice(&body)
            .map_err(|e| OciError::Unbootable(format!("{what}: not a manifest: {e}")))?;
        Ok((doc, content_type, digest))
    }

    /// Resolves an image reference to its boot artifacts.
    pub async fn resolve(&self, image: &str) -> Result<ResolvedImage, OciError> {
        let r = Reference::parse(image)?;
        let (doc, ct, mut digest) = self.manifest(&r, r.manifest_ref()).await?;
        let manifest = if doc.is_index(ct.as_deref()) {
            let entry = select_manifest(&doc, &self.arch).ok_or_else(|| {
                OciError::Unbootable(format!(
                    "image index {r} has no manifest for architecture {}",
                    self.arch
                ))
            })?;
            let (m, _, d) = self.manifest(&r, &entry.digest).await?;
            digest = d;
            m
        } else {
            doc
        };
        Ok(ResolvedImage {
            artifacts: artifacts(&manifest)?,
            reference: r,
            manifest_digest: digest,
        })
    }

    /// Starts fetching a blob; the response body streams. Follows registry redirects (to
    /// storage) without sending the registry token along.
    pub async fn blob(
        &self,
        r: &Reference,
        digest: &str,
    ) -> Result<http::Response<Incoming>, OciError> {
        let mut url = format!("{}/blobs/{digest}", self.base(r));
        let mut resp = self.get_authed(r, &url, &HeaderMap::new()).await?;
        for _ in 0..5 {
            if !resp.status().is_redirection() {
                break;
            }
            let Some(loc) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                break;
            };
            let next = url::Url::parse(&url)
                .and_then(|u| u.join(loc))
                .map_err(|e| OciError::Unavailable(format!("redirect {loc:?}: {e}")))?;
            let same_host = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(String::from))
                == next.host_str().map(String::from);
            url = next.to_string();
            resp = if same_host {
                self.get_authed(r, &url, &HeaderMap::new()).await?
            } else {
                self.http.get(&url, &HeaderMap::new()).await?
            };
        }
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(OciError::NotFound {
                what: format!("blob {digest}"),
            }),
            s => Err(OciError::Unavailable(format!("blob {digest}: HTTP {s}"))),
        }
    }
}

async fn collect_limited(resp: http::Response<Incoming>, limit: usize) -> Result<Bytes, OciError> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| OciError::Unavailable(format!("reading manifest: {e}")))?;
    Ok(body.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_container_tools() {
        let r = Reference::parse("ghcr.io/gardenlinux/gardenlinux:1877.0").unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "gardenlinux/gardenlinux");
        assert_eq!(r.tag.as_deref(), Some("1877.0"));
        assert_eq!(r.manifest_ref(), "1877.0");
        let r = Reference::parse("ubuntu").unwrap();
        assert_eq!(r.registry, "registry-1.docker.io");
        assert_eq!(r.repository, "library/ubuntu");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = Reference::parse("localhost:5000/os/img").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "os/img");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/os/img:1.0@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert!(Reference::parse("Bad/Upper").is_err());
        assert!(Reference::parse("x@md5:abc").is_err());
        assert!(Reference::parse("with space").is_err());
    }

    #[test]
    fn challenge_parses() {
        let c = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:gardenlinux/gardenlinux:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://ghcr.io/token");
        assert_eq!(c.service.as_deref(), Some("ghcr.io"));
        assert_eq!(
            c.scope.as_deref(),
            Some("repository:gardenlinux/gardenlinux:pull")
        );
        assert_eq!(parse_challenge("Basic realm=\"x\""), None);
    }

    fn doc(v: serde_json::Value) -> ManifestDoc {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn index_selection_prefers_metal_pxe_cname_then_platform() {
        let idx = doc(serde_json::json!({
            "mediaType": MEDIA_INDEX,
            "manifests": [
                { "mediaType": MEDIA_MANIFEST, "digest": "sha256:arm", "size": 1,
                  "platform": { "architecture": "arm64", "os": "linux" } },
                { "mediaType": MEDIA_MANIFEST, "digest": "sha256:kvm", "size": 1,
                  "annotations": { "cname": "kvm_amd64", "architecture": "amd64" },
                  "platform": { "architecture": "amd64", "os": "linux" } },
                { "mediaType": MEDIA_MANIFEST, "digest": "sha256:pxe", "size": 1,
                  "annotations": { "cname": "metal_pxe-gardener", "architecture": "amd64" } }
            ]
        }));
        assert!(idx.is_index(None));
        assert_eq!(select_manifest(&idx, "amd64").unwrap().digest, "sha256:pxe");
        assert_eq!(select_manifest(&idx, "arm64").unwrap().digest, "sha256:arm");
        assert_eq!(select_manifest(&idx, "riscv64"), None);
    }

    #[test]
    fn layers_by_media_type() {
        let m = doc(serde_json::json!({
            "mediaType": MEDIA_MANIFEST,
            "layers": [
                { "mediaType": "application/io.gardenlinux.kernel", "digest": "sha256:k", "size": 10 },
                { "mediaType": "application/vnd.ironcore.image.initramfs", "digest": "sha256:i", "size": 20 },
                { "mediaType": "application/vnd.ironcore.image.squashfs", "digest": "sha256:s", "size": 30 },
                { "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:x", "size": 1 }
            ]
        }));
        let a = artifacts(&m).unwrap();
        assert_eq!(a.kernel.unwrap().digest, "sha256:k");
        assert_eq!(a.initrd.unwrap().digest, "sha256:i");
        assert_eq!(a.squashfs.unwrap().digest, "sha256:s");
        assert!(a.uki.is_none());
        let none = doc(serde_json::json!({ "layers": [
            { "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:x", "size": 1 }
        ]}));
        let e = artifacts(&none).unwrap_err();
        assert!(matches!(e, OciError::Unbootable(_)));
        assert!(e.to_string().contains("no kernel layer"));
    }

    #[test]
    fn docker_config_credentials() {
        let c = RegistryCredentials::from_docker_config(
            r#"{"auths":{"https://reg.example.com/v1/":{"auth":"dXNlcjpwYXNz"},"other.io":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.basic("reg.example.com").as_deref(),
            Some("Basic dXNlcjpwYXNz")
        );
        assert_eq!(c.basic("other.io").as_deref(), Some("Basic dTpw"));
        assert!(!format!("{c:?}").contains("dXNlcjpwYXNz"));
    }
}
