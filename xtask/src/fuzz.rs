//! `cargo xtask fuzz`: the Redfish model fuzz target on the stable toolchain, for a bounded
//! time, so CI exercises it on every run.
//!
//! cargo-fuzz needs nightly only for its sanitizer flags; the coverage instrumentation libFuzzer
//! feeds on (`sancov-module` and its LLVM options) is available on stable, so the target is
//! built with those directly and without AddressSanitizer (the parsers are safe Rust; what is
//! looked for is panics, which libFuzzer reports as crashes with the input saved).

use anyhow::{Context as _, bail};
use std::path::Path;
use std::process::Command;

/// Instrumentation libFuzzer needs: edge counters, the PC table and comparison tracing.
const COVERAGE_FLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cdebug-assertions --cfg fuzzing";

/// Builds `parse_models` and runs it for `seconds`, seeded with every captured BMC document in
/// the repository. A crash fails the run and leaves the input under `<target>/fuzz/artifacts`.
pub fn run(root: &Path, target: &Path, seconds: u64) -> anyhow::Result<()> {
    let host = host_triple()?;
    let dir = target.join("fuzz");
    let manifest = root.join("crates/redfish/fuzz/Cargo.toml");
    // Cross-style (`--target`) so the flags reach the fuzzed crates but not build scripts.
    crate::run(
        "build fuzz target parse_models (stable, sancov)",
        crate::cargo()
            .env("RUSTFLAGS", COVERAGE_FLAGS)
            .args(["build", "--release", "--quiet", "--bin", "parse_models"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target")
            .arg(&host)
            .arg("--target-dir")
            .arg(&dir),
    )?;
    let corpus = dir.join("corpus/parse_models");
    let artifacts = dir.join("artifacts/parse_models");
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let seeds = seed(&root.join("crates/redfish/tests/fixtures"), &corpus)?;
    eprintln!(
        "fuzz corpus: {seeds} seed documents in {}",
        corpus.display()
    );
    let bin = dir.join(&host).join("release/parse_models");
    // libFuzzer prints a line per new input; that goes to a log, and its end to the console.
    let log_path = dir.join("parse_models.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let started = std::time::Instant::now();
    eprintln!(
        "==> fuzz parse_models for {seconds}s (log: {})",
        log_path.display()
    );
    let status = Command::new(bin)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        .arg("-print_funcs=0")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("starting the fuzz target")?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let keep = if status.success() { 8 } else { 80 };
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(keep)..] {
        eprintln!("    {l}");
    }
    eprintln!(
        "<== fuzz parse_models: {status} in {:.1?}",
        started.elapsed()
    );
    if !status.success() {
        bail!(
            "the fuzz target found a crash ({status}); the input is in {}",
            artifacts.display()
        );
    }
    Ok(())
}

/// Copies every file under `fixtures` into `corpus` (flat, numbered); returns how many.
fn seed(fixtures: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let mut stack = vec![fixtures.to_path_buf()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                std::fs::copy(&p, corpus.join(format!("seed-{n:04}.json")))
                    .with_context(|| format!("copying {}", p.display()))?;
                n += 1;
            }
        }
    }
    if n == 0 {
        bail!("no seed documents under {}", fixtures.display());
    }
    Ok(n)
}

/// The host target triple, from `rustc -vV`.
fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host triple")
}
