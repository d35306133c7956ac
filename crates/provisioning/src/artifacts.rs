//! From a ServerBootConfiguration to what the server boots: the boot source (pure), OCI
//! resolution with a small cache, and the per-server iPXE [`ScriptSpec`].
//!
//! Precedence (documented in the README): `bootMethod: VirtualMedia` boots `isoURL`;
//! otherwise `bootArtifacts` (our plain form) wins over `image` (OCI).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::serverbootconfiguration::{
    BootArtifacts, BootMethod, ServerBootConfiguration, ServerBootConfigurationSpec,
};

use crate::ipxe::ScriptSpec;
use crate::oci::{OciClient, OciError, Reference, ResolvedImage};

/// What a booting server's URLs carry so the boot server can tell it from its neighbours: its
/// system UUID (identification) and its boot token (authentication, [`crate::token`]).
#[derive(Clone, PartialEq, Eq)]
pub struct BootAuth {
    /// The server's normalized system UUID.
    pub uuid: String,
    /// The server's boot token for its active configuration.
    pub token: String,
}

impl std::fmt::Debug for BootAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootAuth")
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

/// Where a configuration's boot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// Plain URLs (`spec.bootArtifacts`).
    Artifacts(BootArtifacts),
    /// An OCI image reference (`spec.image`).
    Oci(String),
    /// Virtual media ISO (`bootMethod: VirtualMedia`, `isoURL`).
    Iso(String),
    /// Nothing to boot.
    None,
}

/// The boot source of a spec (pure).
pub fn boot_source(spec: &ServerBootConfigurationSpec) -> BootSource {
    if spec.boot_method == Some(BootMethod::VirtualMedia) {
        return match spec.iso_url.as_deref().filter(|s| !s.is_empty()) {
            Some(iso) => BootSource::Iso(iso.to_string()),
            None => BootSource::None,
        };
    }
    if let Some(a) = &spec.boot_artifacts
        && a.kernel_url.as_deref().is_some_and(|k| !k.is_empty())
    {
        return BootSource::Artifacts(a.clone());
    }
    match spec
        .image
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(image) => BootSource::Oci(image.to_string()),
        None => BootSource::None,
    }
}

struct Cached {
    at: Instant,
    result: Result<Arc<ResolvedImage>, OciError>,
}

/// Resolves configurations to scripts; shared by the controller and the boot server.
pub struct Resolver {
    oci: OciClient,
    boot_server_url: String,
    oci_kernel_args: String,
    ok_ttl: Duration,
    err_ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    blobs: Mutex<HashMap<String, Reference>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("boot_server_url", &self.boot_server_url)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver that points scripts at `boot_server_url` and boots OCI images with
    /// `oci_kernel_args`.
    pub fn new(oci: OciClient, boot_server_url: &str, oci_kernel_args: &str) -> Self {
        Self {
            oci,
            boot_server_url: boot_server_url.trim_end_matches('/').to_string(),
            oci_kernel_args: oci_kernel_args.to_string(),
            ok_ttl: Duration::from_secs(600),
            err_ttl: Duration::from_secs(5),
            cache: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
        }
    }

    /// The boot server's external URL.
    pub fn boot_server_url(&self) -> &str {
        &self.boot_server_url
    }

    /// The OCI client (for streaming blobs).
    pub fn oci(&self) -> &OciClient {
        &self.oci
    }

    /// Resolves an image (cached: successes for 10 minutes, failures for 5 seconds).
    pub async fn resolve_image(&self, image: &str) -> Result<Arc<ResolvedImage>, OciError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(image) {
                let ttl = if c.result.is_ok() {
                    self.ok_ttl
                } else {
                    self.err_ttl
                };
                if c.at.elapsed() < ttl {
                    return c.result.clone();
                }
            }
        }
        let result = self.oci.resolve(image).await.map(Arc::new);
        if let Ok(r) = &result {
            let mut blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
            for d in r.digests() {
                blobs.insert(d, r.reference.clone());
            }
        }
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            image.to_string(),
            Cached {
                at: Instant::now(),
                result: result.clone(),
            },
        );
        result
    }

    /// The repository a blob digest was resolved from, if it belongs to a resolved image (the
    /// boot server streams only those).
    pub fn blob_source(&self, digest: &str) -> Option<Reference> {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    /// The URL the boot server serves a blob under.
    pub fn artifact_url(&self, auth: &BootAuth, digest: &str) -> String {
        format!(
            "{}/artifacts/{}/{}/{digest}",
            self.boot_server_url, auth.uuid, auth.token
        )
    }

    /// The ignition URL of a server.
    pub fn ignition_url(&self, auth: &BootAuth) -> String {
        format!(
            "{}/ignition/{}/{}",
            self.boot_server_url, auth.uuid, auth.token
        )
    }

    /// The iPXE script spec of a network-booted configuration for the server with `uuid`.
    pub async fn script_spec(
        &self,
        sbc: &ServerBootConfiguration,
        auth: &BootAuth,
    ) -> Result<ScriptSpec, ScriptError> {
        let ignition_url = sbc
            .spec
            .ignition_secret_ref
            .as_ref()
            .map(|_| self.ignition_url(auth));
        // The booted OS presents the token to the metadata service.
        let with_token = |cmdline: &str| {
            let base = cmdline.trim();
            let sep = if base.is_empty() { "" } else { " " };
            format!("{base}{sep}metal.boot-token={}", auth.token)
        };
        match boot_source(&sbc.spec) {
            BootSource::Artifacts(a) => Ok(ScriptSpec {
                kernel_url: a.kernel_url.clone().unwrap_or_default(),
                initrd_url: a.initrd_url.clone(),
                rootfs_url: a.root_image_url.clone(),
                cmdline: with_token(a.cmdline.as_deref().unwrap_or_default()),
                ignition_url,
            }),
            BootSource::Oci(image) => {
                let r = self.resolve_image(&image).await.map_err(ScriptError::Oci)?;
                let a = &r.artifacts;
                let kernel =
                    a.kernel.as_ref().or(a.uki.as_ref()).ok_or_else(|| {
                        ScriptError::Oci(OciError::Unbootable("no kernel".into()))
                    })?;
                Ok(ScriptSpec {
                    kernel_url: self.artifact_url(auth, &kernel.digest),
                    initrd_url: a
                        .initrd
                        .as_ref()
                        .map(|d| self.artifact_url(auth, &d.digest)),
                    rootfs_url: a
                        .squashfs
                        .as_ref()
                        .map(|d| self.artifact_url(auth, &d.digest)),
                    cmdline: with_token(&self.oci_kernel_args),
                    ignition_url,
                })
            }
            BootSource::Iso(_) => Err(ScriptError::NotNetworkBoot),
            BootSource::None => Err(ScriptError::NoSource),
        }
    }

    /// The EFI image for UEFI HTTP boot: the UKI layer of an OCI image, else the kernel (an
    /// EFI-stub kernel boots directly).
    pub async fn efi_url(
        &self,
        sbc: &ServerBootConfiguration,
        auth: &BootAuth,
    ) -> Result<String, ScriptError> {
        match boot_source(&sbc.spec) {
            BootSource::Artifacts(a) => Ok(a.kernel_url.unwrap_or_default()),
            BootSource::Oci(image) => {
                let r = self.resolve_image(&image).await.map_err(ScriptError::Oci)?;
                let d = r
                    .artifacts
                    .uki
                    .as_ref()
                    .or(r.artifacts.kernel.as_ref())
                    .ok_or_else(|| ScriptError::Oci(OciError::Unbootable("no kernel".into())))?;
                Ok(self.artifact_url(auth, &d.digest))
            }
            BootSource::Iso(_) => Err(ScriptError::NotNetworkBoot),
            BootSource::None => Err(ScriptError::NoSource),
        }
    }
}

/// Why no script can be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScriptError {
    /// The configuration boots from virtual media.
    #[error("the configuration boots from virtual media, not the network")]
    NotNetworkBoot,
    /// The configuration names nothing to boot.
    #[error("the configuration has neither bootArtifacts nor image")]
    NoSource,
    /// The image could not be resolved.
    #[error(transparent)]
    Oci(OciError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> ServerBootConfigurationSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn precedence_iso_then_artifacts_then_image() {
        let s = spec(serde_json::json!({
            "serverRef": {"name": "s"}, "image": "ghcr.io/a/b:1",
            "bootArtifacts": {"kernelURL": "http://k"},
        }));
        assert!(matches!(boot_source(&s), BootSource::Artifacts(_)));
        let s = spec(serde_json::json!({"serverRef": {"name": "s"}, "image": "ghcr.io/a/b:1"}));
        assert_eq!(boot_source(&s), BootSource::Oci("ghcr.io/a/b:1".into()));
        let s = spec(serde_json::json!({
            "serverRef": {"name": "s"}, "image": "ghcr.io/a/b:1",
            "bootMethod": "VirtualMedia", "isoURL": "http://x/os.iso",
        }));
        assert_eq!(boot_source(&s), BootSource::Iso("http://x/os.iso".into()));
        let s = spec(serde_json::json!({"serverRef": {"name": "s"}, "bootMethod": "VirtualMedia"}));
        assert_eq!(boot_source(&s), BootSource::None);
        let s = spec(serde_json::json!({"serverRef": {"name": "s"}, "image": "  "}));
        assert_eq!(boot_source(&s), BootSource::None);
    }
}
