//! Tasks (firmware updates) whose state is a pure function of time.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Redfish `TaskState` values the simulator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Created, not started.
    New,
    /// In progress.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Exception,
}

impl TaskState {
    /// The Redfish string.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "New",
            TaskState::Running => "Running",
            TaskState::Completed => "Completed",
            TaskState::Exception => "Exception",
        }
    }

    /// Whether the task has ended.
    pub fn is_done(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Exception)
    }
}

/// A firmware component an update targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Component {
    /// The BIOS of the system with this index.
    Bios(usize),
    /// The firmware of the manager with this index.
    Bmc(usize),
}

/// One task.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub id: u32,
    pub created: Instant,
    pub start_time: DateTime<Utc>,
    pub duration: Duration,
    /// Why it fails, if it will.
    pub failure: Option<String>,
    pub image: String,
    pub version: String,
    pub components: Vec<Component>,
    /// Whether completion effects were applied.
    pub finished: bool,
}

impl Task {
    /// Time spent in `New` before `Running`.
    fn new_phase(&self) -> Duration {
        (self.duration / 10).min(Duration::from_millis(500))
    }

    /// When the task ends.
    pub(crate) fn done_at(&self) -> Instant {
        self.created + self.duration
    }

    /// The state at `now`.
    pub(crate) fn state(&self, now: Instant) -> TaskState {
        let elapsed = now.saturating_duration_since(self.created);
        if elapsed >= self.duration {
            if self.failure.is_some() {
                TaskState::Exception
            } else {
                TaskState::Completed
            }
        } else if elapsed < self.new_phase() {
            TaskState::New
        } else {
            TaskState::Running
        }
    }

    /// `PercentComplete` at `now` (100 once completed).
    pub(crate) fn percent(&self, now: Instant) -> u32 {
        match self.state(now) {
            TaskState::Completed => 100,
            TaskState::New => 0,
            _ => {
                let elapsed = now.saturating_duration_since(self.created).as_secs_f64();
                let total = self.duration.as_secs_f64().max(f64::EPSILON);
                ((elapsed / total * 100.0) as u32).min(99)
            }
        }
    }
}

/// The version an image installs: a `version=` query parameter of the URI, else the last
/// dotted-number token of the file name (`bios-2.1.0.bin` → `2.1.0`,
/// `BIOS_X13DEG_20230804_1.4_STDsp.bin` → `1.4`), else the file name without extension.
pub(crate) fn version_from_image(uri: &str) -> String {
    if let Ok(u) = url::Url::parse(uri)
        && let Some((_, v)) = u.query_pairs().find(|(k, _)| k == "version")
        && !v.is_empty()
    {
        return v.into_owned();
    }
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = match file.rsplit_once('.') {
        Some((s, ext)) if !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphabetic()) => s,
        _ => file,
    };
    let is_version = |t: &str| {
        let parts: Vec<&str> = t.split('.').collect();
        parts.len() >= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
            && parts[0].chars().all(|c| c.is_ascii_digit())
    };
    stem.split(['_', '-', ' ', '+'])
        .rfind(|t| is_version(t.trim_start_matches(['v', 'V'])))
        .map(|t| t.trim_start_matches(['v', 'V']).to_string())
        .unwrap_or_else(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(ms: u64, fail: bool) -> (Task, Instant) {
        let t0 = Instant::now();
        (
            Task {
                id: 1,
                created: t0,
                start_time: Utc::now(),
                duration: Duration::from_millis(ms),
                failure: fail.then(|| "boom".to_string()),
                image: "x".into(),
                version: "1".into(),
                components: vec![],
                finished: false,
            },
            t0,
        )
    }

    #[test]
    fn progresses_new_running_completed() {
        let (t, t0) = task(1000, false);
        assert_eq!(t.state(t0), TaskState::New);
        assert_eq!(t.state(t0 + Duration::from_millis(150)), TaskState::Running);
        assert_eq!(t.percent(t0 + Duration::from_millis(500)), 50);
        assert_eq!(
            t.state(t0 + Duration::from_millis(1000)),
            TaskState::Completed
        );
        assert_eq!(t.percent(t0 + Duration::from_millis(1000)), 100);
    }

    #[test]
    fn failing_task_ends_in_exception() {
        let (t, t0) = task(100, true);
        assert_eq!(t.state(t0 + Duration::from_millis(50)), TaskState::Running);
        assert_eq!(
            t.state(t0 + Duration::from_millis(100)),
            TaskState::Exception
        );
        assert!(t.state(t0 + Duration::from_secs(1)).is_done());
    }

    #[test]
    fn zero_duration_completes_at_once() {
        let (t, t0) = task(0, false);
        assert_eq!(t.state(t0), TaskState::Completed);
    }

    #[test]
    fn versions_from_image_names() {
        assert_eq!(version_from_image("http://h/fw/bios-2.1.0.bin"), "2.1.0");
        assert_eq!(
            version_from_image("http://h/BIOS_X13DEG-OAD-1D14_20230804_1.4_STDsp.bin"),
            "1.4"
        );
        assert_eq!(
            version_from_image(
                "http://h/iDRAC-with-Lifecycle-Controller_Firmware_XXX_WN64_7.00.00.00_A00.EXE"
            ),
            "7.00.00.00"
        );
        assert_eq!(version_from_image("http://h/bmc_v11.02.03.bin"), "11.02.03");
        assert_eq!(version_from_image("http://h/image.bin?version=9.9"), "9.9");
        assert_eq!(version_from_image("http://h/firmware.bin"), "firmware");
    }
}
