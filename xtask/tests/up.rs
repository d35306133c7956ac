//! `cargo xtask up --exit-after-demo` end to end, not on a terminal: the whole bring-up and demo
//! (a control plane, the simulated rack, the four controllers), its change lines and its bench
//! line. Needs the controllers built next to xtask (`cargo build --workspace --bins`).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole demo takes ~25 s on a warm 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn up_prints_state_changes_and_the_bench_line() {
    let xtask = std::path::PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    for c in ["discovery", "reservation", "provisioning", "maintenance"] {
        let bin = xtask.with_file_name(format!("metal-{c}"));
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first",
            bin.display()
        );
    }
    let mut child = Command::new(&xtask)
        .args(["up", "--exit-after-demo", "--no-build"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xtask up");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for xtask up") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            break child.wait().expect("xtask up killed");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = out.join().expect("stdout");
    let err = err.join().expect("stderr");
    assert!(
        status.success(),
        "xtask up ended with {status} after {:.0?}\n--- stdout\n{out}\n--- stderr\n{err}",
        started.elapsed()
    );

    // Not a terminal: no escape sequences, one line per state change.
    assert!(!out.contains('\x1b'), "escape sequences on a pipe:\n{out}");
    let changes: Vec<(f64, &str, &str, &str)> = out
        .lines()
        .filter_map(|l| {
            let (at, rest) = l.split_once("s ")?;
            let at: f64 = at.parse().ok()?;
            let (name, rest) = rest.split_once(' ')?;
            let (from, to) = rest.split_once(" -> ")?;
            Some((at, name, from, to))
        })
        .collect();
    let became_available: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.3 == "Available")
        .map(|c| c.1)
        .collect();
    assert_eq!(
        became_available.len(),
        8,
        "every server of the rack gets a `-> Available` line:\n{out}"
    );
    // The demo's claim shows as Available -> Reserved -> Available, the park as -> Parked.
    for want in [
        "Available -> Reserved",
        "Reserved -> Available",
        "-> Parked",
    ] {
        assert!(
            changes
                .iter()
                .any(|c| format!("{} -> {}", c.2, c.3).contains(want)),
            "no `{want}` line:\n{out}"
        );
    }
    assert!(
        changes.windows(2).all(|w| w[0].0 <= w[1].0),
        "change times go forward:\n{out}"
    );

    let bench = out
        .lines()
        .find(|l| l.starts_with("bench up "))
        .unwrap_or_else(|| panic!("no bench line:\n{out}"));
    let field = |k: &str| -> f64 {
        bench
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{bench}: no {k}"))
            .parse()
            .unwrap_or_else(|e| panic!("{bench}: {k}: {e}"))
    };
    let (first, all) = (field("first_available_s"), field("all_available_s"));
    assert_eq!(field("servers"), 8.0, "{bench}");
    // The bench line agrees with the change lines it was measured from.
    let first_line = changes
        .iter()
        .find(|c| c.3 == "Available")
        .map(|c| c.0)
        .expect("an Available line");
    assert!(
        (first - first_line).abs() <= 0.051,
        "{bench} vs the first `-> Available` at {first_line}s"
    );
    assert!(
        0.0 < first && first <= all,
        "first Available before all: {bench}"
    );
    assert!(
        all < started.elapsed().as_secs_f64(),
        "{bench}: measured from the command's start"
    );
}
