//! Named side-effecting steps: a controller passes each one (after its record is written,
//! after its request is sent) through an optional hook. Tests stop an instance exactly there —
//! in process through the hook, or, for the binary, with `--kill-at-step`, which SIGKILLs it.

use std::sync::Arc;

/// Awaited at each named step; `None` in production.
pub type StepHook = Arc<
    dyn Fn(&'static str) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// An optional [`StepHook`] in a configuration that derives `Debug`.
#[derive(Clone, Default)]
pub struct Steps(pub Option<StepHook>);

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Steps(hook)"
        } else {
            "Steps(none)"
        })
    }
}

impl Steps {
    /// Passes step `name` through the hook, if any.
    pub async fn pass(&self, name: &'static str) {
        pass(self.0.as_ref(), name).await;
    }
}

/// Why `--kill-at-step` was refused.
#[derive(Debug, thiserror::Error)]
#[error("--kill-at-step is a test hook that kills the process; it is refused inside a cluster")]
pub struct InCluster;

/// The hook of `--kill-at-step`: SIGKILLs the process at step `at` (no shutdown, no lease
/// release, nothing after the step written or sent). Refused when the process runs inside a
/// cluster (`KUBERNETES_SERVICE_HOST` set), so a production deployment cannot enable it.
pub fn kill_at(at: Option<&str>) -> Result<Option<StepHook>, InCluster> {
    let Some(at) = at.map(str::to_string) else {
        return Ok(None);
    };
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Err(InCluster);
    }
    Ok(Some(Arc::new(move |name: &'static str| {
        if name == at {
            eprintln!("--kill-at-step: reached {name}; SIGKILL");
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::process::abort();
        }
        Box::pin(async {})
    })))
}

/// Passes step `name` through `hook`, if any.
pub async fn pass(hook: Option<&StepHook>, name: &'static str) {
    if let Some(hook) = hook {
        hook(name).await;
    }
}
