//! The ServerBootConfiguration reconcile: decide whether the configuration can be served and
//! report it as `status.state` (Pending → Ready or Error) with a `Ready` condition.
//!
//! | state | Ready | reason | when |
//! |---|---|---|---|
//! | Ready | True | `ImageResolved` | `image` resolved to a kernel (+ initrd, root image) |
//! | Ready | True | `BootArtifactsSpecified` | `bootArtifacts` given |
//! | Ready | True | `ISOSpecified` | `bootMethod: VirtualMedia` with `isoURL` |
//! | Pending | False | `IgnitionSecretMissing` / `IgnitionKeyMissing` | retried with backoff |
//! | Pending | False | `RegistryUnreachable` | retried with backoff |
//! | Error | False | `ImageUnresolvable` | no such image, no kernel layer, access refused (re-checked every 5 min) |
//! | Error | False | `NoBootSource` / `InvalidSpec` | needs a spec change |

use std::sync::Arc;
use std::time::Duration;

use api::conditions::{self, ConditionStatus};
use api::serverbootconfiguration::{ServerBootConfiguration, ServerBootConfigurationState};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use crate::artifacts::{BootSource, boot_source};
use crate::conditions::{READY, reasons};
use crate::context::Ctx;
use crate::ipxe::ScriptSpec;
use crate::status;
use crate::stores::NsKey;

/// The outcome of evaluating a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `status.state`.
    pub state: ServerBootConfigurationState,
    /// Ready condition reason.
    pub reason: &'static str,
    /// Ready condition message.
    pub message: String,
}

impl Verdict {
    fn new(
        state: ServerBootConfigurationState,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            state,
            reason,
            message: message.into(),
        }
    }
}

/// Reconciles one configuration and schedules the next look.
pub async fn reconcile(ctx: Arc<Ctx>, key: NsKey) {
    let (ns, name) = key.clone();
    let timer = ctx.reconciles.start("ServerBootConfiguration");
    let Some(sbc) = ctx.stores.sbcs.get(&ObjectRef::new(&name).within(&ns)) else {
        ctx.forget(&format!("sbc:{ns}/{name}"));
        timer.success();
        return;
    };
    let memo_key = format!("sbc:{ns}/{name}");
    if !in_shard(&ctx, &sbc) {
        // Another instance (another shard's selector) owns this server and writes this status;
        // a server that joins this shard later requeues its configurations.
        ctx.forget(&memo_key);
        timer.success();
        return;
    }
    let verdict = evaluate(&ctx, &sbc).await;
    let result = write(&ctx, &sbc, &verdict).await;
    let failures = ctx.memo(&memo_key, |m| {
        if verdict.state == ServerBootConfigurationState::Pending || result.is_err() {
            m.failures = m.failures.saturating_add(1);
        } else {
            m.failures = 0;
        }
        m.failures
    });
    let next = match (&result, verdict.state) {
        (Err(_), _) | (Ok(()), ServerBootConfigurationState::Pending) => {
            Ctx::backoff(failures).min(Duration::from_secs(60))
        }
        (Ok(()), ServerBootConfigurationState::Error) => Duration::from_secs(300),
        (Ok(()), ServerBootConfigurationState::Ready) => ctx.config.resync * 5,
    };
    ctx.queues.sbcs.add_after(key, next);
    match result {
        Ok(()) => timer.success(),
        Err(e) => {
            tracing::warn!(namespace = %ns, name = %name, error = %e, "writing boot configuration status failed");
            timer.failure("KubernetesError");
        }
    }
}

/// Whether this instance handles the configuration: without `--server-selector` always, with
/// one only when the configuration's server is among the selected (watched) Servers, so that
/// instances with different selectors never fight over one status; and, sharded, only while
/// it holds the shard of the server's BMC.
fn in_shard(ctx: &Ctx, sbc: &ServerBootConfiguration) -> bool {
    let server = ctx
        .stores
        .servers
        .get(&ObjectRef::new(&sbc.spec.server_ref.name));
    let selected = ctx
        .config
        .server_selector
        .as_deref()
        .is_none_or(str::is_empty)
        || server.is_some();
    // Automatic sharding: the holder of the server's shard writes its configurations' status
    // (one configuration naming an unknown server is judged by the holder of that name's).
    let key = server
        .as_deref()
        .map_or_else(|| sbc.spec.server_ref.name.clone(), Ctx::shard_key);
    selected && ctx.shards.owns(&key)
}

async fn write(ctx: &Ctx, sbc: &ServerBootConfiguration, v: &Verdict) -> Result<(), kube::Error> {
    let st = sbc.status.clone().unwrap_or_default();
    let mut list = status::owned(&st.conditions, &[READY]);
    let changed_cond = status::set(
        &mut list,
        READY,
        ConditionStatus::from(v.state == ServerBootConfigurationState::Ready),
        v.reason,
        &v.message,
        sbc.metadata.generation,
    );
    if !changed_cond && st.state == Some(v.state) {
        return Ok(());
    }
    let Some(ready) = conditions::get(&list, READY).cloned() else {
        return Ok(());
    };
    let _slot = ctx.api_slots.acquire().await;
    match status::apply_sbc(&ctx.client, sbc, v.state, &ready).await {
        Err(e) if status::is_not_found(&e) => Ok(()),
        other => other,
    }?;
    tracing::info!(namespace = %sbc.namespace().unwrap_or_default(), name = %sbc.name_any(), state = %v.state, reason = v.reason, "boot configuration status");
    Ok(())
}

/// Decides whether a configuration can be served (reads its ignition Secret, resolves its
/// image).
pub async fn evaluate(ctx: &Ctx, sbc: &ServerBootConfiguration) -> Verdict {
    use ServerBootConfigurationState::{Error, Pending, Ready};
    let source = boot_source(&sbc.spec);
    let ready = match &source {
        BootSource::None => {
            return Verdict::new(
                Error,
                reasons::NO_BOOT_SOURCE,
                if sbc.spec.boot_method
                    == Some(api::serverbootconfiguration::BootMethod::VirtualMedia)
                {
                    "bootMethod VirtualMedia needs isoURL"
                } else {
                    "the configuration names neither image nor bootArtifacts"
                },
            );
        }
        BootSource::Iso(iso) => {
            if iso.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Verdict::new(Error, reasons::INVALID_SPEC, "isoURL contains whitespace");
            }
            Verdict::new(
                Ready,
                reasons::ISO_SPECIFIED,
                format!("boots {iso} from virtual media"),
            )
        }
        BootSource::Artifacts(a) => {
            let spec = ScriptSpec {
                kernel_url: a.kernel_url.clone().unwrap_or_default(),
                initrd_url: a.initrd_url.clone(),
                rootfs_url: a.root_image_url.clone(),
                cmdline: a.cmdline.clone().unwrap_or_default(),
                ignition_url: None,
            };
            if let Err(e) = spec.validate() {
                return Verdict::new(Error, reasons::INVALID_SPEC, e.to_string());
            }
            Verdict::new(
                Ready,
                reasons::BOOT_ARTIFACTS_SPECIFIED,
                format!("boots kernel {}", spec.kernel_url),
            )
        }
        BootSource::Oci(image) => match ctx.resolver.resolve_image(image).await {
            Ok(r) => {
                let a = &r.artifacts;
                let d = |x: &Option<crate::oci::Descriptor>| {
                    x.as_ref()
                        .map(|d| d.digest.clone())
                        .unwrap_or_else(|| "-".into())
                };
                Verdict::new(
                    Ready,
                    reasons::IMAGE_RESOLVED,
                    format!(
                        "{image} resolved (manifest {}): kernel {}, initrd {}, root image {}",
                        r.manifest_digest,
                        d(&a.kernel.clone().or_else(|| a.uki.clone())),
                        d(&a.initrd),
                        d(&a.squashfs)
                    ),
                )
            }
            Err(e) if e.is_transient() => {
                return Verdict::new(Pending, reasons::REGISTRY_UNREACHABLE, e.to_string());
            }
            Err(e) => return Verdict::new(Error, reasons::IMAGE_UNRESOLVABLE, e.to_string()),
        },
    };
    if let Some(r) = &sbc.spec.ignition_secret_ref {
        let ns = sbc.namespace().unwrap_or_default();
        let got = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&r.name)
            .await;
        match got {
            Ok(None) => {
                return Verdict::new(
                    Pending,
                    reasons::IGNITION_SECRET_MISSING,
                    format!("ignition Secret {ns}/{} does not exist", r.name),
                );
            }
            Ok(Some(s)) => {
                let has_key = s.data.as_ref().is_some_and(|d| d.contains_key("ignition"))
                    || s.string_data
                        .as_ref()
                        .is_some_and(|d| d.contains_key("ignition"));
                if !has_key {
                    return Verdict::new(
                        Pending,
                        reasons::IGNITION_KEY_MISSING,
                        format!("ignition Secret {ns}/{} has no key \"ignition\"", r.name),
                    );
                }
            }
            Err(e) => {
                return Verdict::new(
                    Pending,
                    reasons::IGNITION_SECRET_MISSING,
                    format!("reading ignition Secret {ns}/{}: {e}", r.name),
                );
            }
        }
    }
    ready
}
