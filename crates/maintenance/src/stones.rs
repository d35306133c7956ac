//! Pure decisions shared by the firmware controllers (BIOSVersion, BMCVersion): which version of a
//! stepping-stone chain to install next, and whether a task the BMC lists is the update a
//! killed controller started but did not record.

use api::common::{ImageSpec, SteppingStone};
use std::time::Duration;

/// What to install next.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<'a> {
    /// The final version runs: nothing to do.
    Done,
    /// Install `version` from `image`; `stone` is its index in the chain (`None`: the final
    /// version).
    Install {
        /// The version to end up with in this step.
        version: &'a str,
        /// Its image.
        image: &'a ImageSpec,
        /// Index among the stepping stones, `None` for the final version.
        stone: Option<usize>,
    },
}

/// How many stones are passed: the recorded count, or more when the running version is a
/// stone or newer than one (a server already half-way along the chain, or past it, skips what
/// it has instead of being walked back down).
pub fn passed(stones: &[SteppingStone], running: &str, recorded: usize) -> usize {
    let running = running.trim();
    let at = stones
        .iter()
        .rposition(|s| {
            let stone = s.version.trim();
            stone == running || compare(running, stone) == Some(std::cmp::Ordering::Greater)
        })
        .map_or(0, |i| i + 1);
    at.max(recorded).min(stones.len())
}

/// Best-effort order of two vendor version strings by their numeric runs ("2.10.1" > "2.9",
/// "7.00.00.171" > "6.10.80.00"); `None` when either has no digits, so such versions are only
/// ever compared for equality.
pub fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn numbers(v: &str) -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().unwrap_or(u64::MAX))
            .collect()
    }
    let (x, y) = (numbers(a), numbers(b));
    if x.is_empty() || y.is_empty() {
        return None;
    }
    Some(x.cmp(&y))
}

/// The next step of the chain `stones` → (`version`, `image`) for a BMC that runs `running`
/// with `recorded` stones verified earlier.
pub fn next<'a>(
    version: &'a str,
    image: &'a ImageSpec,
    stones: &'a [SteppingStone],
    running: &str,
    recorded: usize,
) -> Target<'a> {
    if running.trim() == version.trim() {
        return Target::Done;
    }
    let n = passed(stones, running, recorded);
    match stones.get(n) {
        Some(s) => Target::Install {
            version: &s.version,
            image: &s.image,
            stone: Some(n),
        },
        None => Target::Install {
            version,
            image,
            stone: None,
        },
    }
}

/// Whether a task the BMC lists is ours: it runs a SimpleUpdate of `image` and started no
/// earlier than `slack` before we recorded the request (BMC clocks drift; a task from an earlier
/// attempt of the same image started before that attempt's record and failed or was adopted
/// then). `start` is the task's StartTime; a task without one is ours only while it is still
/// running (a second concurrent update of the same image must not be started either way).
pub fn is_our_task(
    task_image: Option<&str>,
    start: Option<k8s_openapi::jiff::Timestamp>,
    running: bool,
    image: &str,
    recorded_at: k8s_openapi::jiff::Timestamp,
    slack: Duration,
) -> bool {
    if task_image != Some(image) {
        return false;
    }
    match start {
        Some(t) => {
            let earliest = recorded_at
                .checked_sub(k8s_openapi::jiff::SignedDuration::try_from(slack).unwrap_or_default())
                .unwrap_or(recorded_at);
            t >= earliest
        }
        None => running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(uri: &str) -> ImageSpec {
        ImageSpec {
            uri: uri.into(),
            ..ImageSpec::default()
        }
    }

    fn stones() -> Vec<SteppingStone> {
        ["1.5", "2.0"]
            .iter()
            .map(|v| SteppingStone {
                version: v.to_string(),
                image: img(&format!("http://x/bmc-{v}.bin")),
            })
            .collect()
    }

    fn version(t: &Target) -> Option<(String, Option<usize>)> {
        match t {
            Target::Done => None,
            Target::Install { version, stone, .. } => Some((version.to_string(), *stone)),
        }
    }

    #[test]
    fn a_chain_is_walked_in_order_and_what_runs_is_skipped() {
        let s = stones();
        let fin = img("http://x/bmc-3.0.bin");
        let step = |running: &str, recorded| version(&next("3.0", &fin, &s, running, recorded));
        assert_eq!(step("1.0", 0), Some(("1.5".into(), Some(0))));
        assert_eq!(step("1.5", 0), Some(("2.0".into(), Some(1))));
        assert_eq!(step("1.5", 1), Some(("2.0".into(), Some(1))));
        assert_eq!(step("2.0", 1), Some(("3.0".into(), None)));
        // A version outside the chain after stones were verified: never back down the chain.
        assert_eq!(step("2.1", 2), Some(("3.0".into(), None)));
        assert_eq!(step("3.0", 0), None);
        assert_eq!(step(" 3.0 ", 2), None);
        // Without stones: straight to the version.
        assert_eq!(
            version(&next("3.0", &fin, &[], "1.0", 0)),
            Some(("3.0".into(), None))
        );
        assert_eq!(passed(&s, "2.0", 0), 2);
        assert_eq!(passed(&s, "0.9", 7), 2, "clamped to the chain");
        // Newer than a stone but not listed: that stone and the ones before it are passed.
        assert_eq!(step("1.7", 0), Some(("2.0".into(), Some(1))));
        assert_eq!(step("2.5", 0), Some(("3.0".into(), None)));
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(compare("2.10.1", "2.9"), Some(Greater));
        assert_eq!(compare("7.00.00.171", "6.10.80.00"), Some(Greater));
        assert_eq!(compare("1.5", "1.5.0"), Some(Less));
        assert_eq!(compare("U46 v2.90", "U46 v2.80"), Some(Greater));
        assert_eq!(compare("golden", "1.0"), None);
    }

    #[test]
    fn only_a_task_of_our_image_started_after_our_record_is_adopted() {
        let at: k8s_openapi::jiff::Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let slack = Duration::from_secs(60);
        let t = |s: &str| Some(s.parse::<k8s_openapi::jiff::Timestamp>().unwrap());
        let img = "http://x/bmc.bin";
        assert!(is_our_task(
            Some(img),
            t("2026-12-06T10:00:05Z"),
            false,
            img,
            at,
            slack
        ));
        assert!(is_our_task(
            Some(img),
            t("2026-12-06T09:59:30Z"),
            false,
            img,
            at,
            slack
        ));
        assert!(!is_our_task(
            Some(img),
            t("2026-12-06T09:50:00Z"),
            false,
            img,
            at,
            slack
        ));
        assert!(!is_our_task(
            Some("http://x/other.bin"),
            t("2026-12-06T10:00:05Z"),
            true,
            img,
            at,
            slack
        ));
        assert!(is_our_task(Some(img), None, true, img, at, slack));
        assert!(!is_our_task(Some(img), None, false, img, at, slack));
        assert!(!is_our_task(None, None, true, img, at, slack));
    }
}
