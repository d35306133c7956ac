//! Named steps of side-effecting flows, for the step-wise kill tests.
//!
//! A flow calls [`reached`] at each step that matters for crash safety, typically right after a
//! record is written and right after the side effect was sent ("bmcversion/update-recorded",
//! "bmcversion/update-sent"). In debug builds (the ones tests run) two environment variables
//! make the steps visible to a test that runs the controller as a process:
//!
//! * `METAL_CHECKPOINT_DIR=<dir>`: every step reached is appended as a line to `<dir>/reached`;
//!   a first run of a flow lists its steps, so a test can loop over all of them.
//! * `METAL_PAUSE_AT=<step>[,<step>...]`: at the first of these steps the process writes the step
//!   to `<dir>/paused` and stops making progress in that task, so the test can SIGKILL it exactly
//!   there and check that the restarted controller neither repeats nor loses the side effect.
//!
//! Release builds (what is deployed) compile [`reached`] to nothing: no environment variable can
//! pause a production controller.

/// Marks that the flow reached `step`. A no-op in release builds and without
/// `METAL_CHECKPOINT_DIR`.
pub async fn reached(step: &str) {
    #[cfg(debug_assertions)]
    debug::reached(step).await;
    #[cfg(not(debug_assertions))]
    let _ = step;
}

#[cfg(debug_assertions)]
mod debug {
    use std::io::Write as _;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Only the first matching step pauses: later tasks pass, so the kill lands on one step.
    static PAUSED: AtomicBool = AtomicBool::new(false);

    fn dir() -> Option<PathBuf> {
        std::env::var_os("METAL_CHECKPOINT_DIR").map(PathBuf::from)
    }

    fn append(path: PathBuf, line: &str) {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "checkpoint not recorded");
        }
    }

    pub(super) async fn reached(step: &str) {
        let Some(dir) = dir() else { return };
        let pause_at = std::env::var("METAL_PAUSE_AT").unwrap_or_default();
        reached_in(&dir, &pause_at, &PAUSED, step).await;
    }

    /// [`reached`] with its settings passed in (unit-testable without the environment).
    pub(super) async fn reached_in(
        dir: &std::path::Path,
        pause_at: &str,
        paused: &AtomicBool,
        step: &str,
    ) {
        append(dir.join("reached"), step);
        let pause = pause_at.split(',').any(|s| s.trim() == step);
        if pause && !paused.swap(true, Ordering::SeqCst) {
            tracing::warn!(step, "paused at checkpoint (METAL_PAUSE_AT)");
            append(dir.join("paused"), step);
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use std::time::Duration;

    // One test: the environment is process-wide.
    #[tokio::test]
    async fn steps_are_listed_and_the_named_one_pauses() {
        let dir = tempfile_dir();
        let flag = std::sync::atomic::AtomicBool::new(false);
        let step = |s: &'static str| debug::reached_in(&dir, "x/other, b/sent", &flag, s);
        step("a/recorded").await;
        let paused = tokio::time::timeout(Duration::from_millis(200), step("b/sent")).await;
        assert!(paused.is_err(), "b/sent must pause");
        // Only the first match pauses.
        tokio::time::timeout(Duration::from_millis(200), step("b/sent"))
            .await
            .expect("a second task passes");
        // Without the environment nothing is recorded or paused.
        reached("b/sent").await;
        let listed = std::fs::read_to_string(dir.join("reached")).unwrap();
        assert_eq!(listed, "a/recorded\nb/sent\nb/sent\n");
        assert_eq!(
            std::fs::read_to_string(dir.join("paused")).unwrap(),
            "b/sent\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("metal-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
