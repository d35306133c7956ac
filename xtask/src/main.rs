//! Project tasks behind `cargo xtask`: the two README commands (`up`, `test`) and CRD generation.

mod book;
mod bootimage;
mod docs;
mod fuzz;
mod images;
mod live;
mod up;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "metal project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring the system up locally (control plane, simulated rack, the controllers), walk the
    /// demo with a live view of the servers, and stay up until Ctrl-C.
    Up(up::Args),
    /// Run the whole test suite (what CI runs): fmt, clippy, unit, integration and e2e tests.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Seconds the Redfish fuzz target runs after the tests (0 skips it).
        #[arg(long, default_value_t = 60)]
        fuzz_seconds: u64,
        /// Extra arguments passed to `cargo test` (after `--workspace`).
        #[arg(trailing_var_arg = true)]
        cargo_args: Vec<String>,
    },
    /// Run the Redfish model fuzz target (stable toolchain, libFuzzer) for a bounded time.
    Fuzz {
        /// How long libFuzzer runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Write the generated CRD YAML to kustomize/base/crd.
    Crdgen,
    /// Build (or find cached) control-plane binaries and print their directory.
    ControlPlane,
    /// Build one OCI image layout per deployable (static musl binaries, crane) and print sizes.
    Images {
        /// Output directory of the layouts (default: target/images).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also push each image to this registry as `<registry>/<name>:<version>`.
        #[arg(long)]
        push: Option<String>,
    },
    /// Regenerate the book's API reference (docs/reference) from the CRDs; `--build` also
    /// builds the book (installing mdBook into the cache when missing) and checks its links.
    Docs {
        /// Only check that the committed reference is up to date (write nothing).
        #[arg(long)]
        check: bool,
        /// Build the book into this directory (default: target/book) and check every link.
        #[arg(long)]
        build: bool,
        /// Output directory of `--build`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn root() -> PathBuf {
    testenv::repo_root()
}

fn run(step: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("==> {step}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {step}"))?;
    eprintln!("<== {step}: {status} in {:.1?}", started.elapsed());
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR` and config).
fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version=1", "--no-deps"])
        .current_dir(root())
        .output()
        .context("cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// The cargo of this build, without `cargo run`'s package variables (see
/// [`testenv::cargo_command`]).
fn cargo() -> Command {
    testenv::cargo_command()
}

fn crdgen(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let crds = api::crds::all();
    for crd in &crds {
        let name = api::crds::file_name(crd);
        std::fs::write(dir.join(&name), api::crds::render_yaml(crd))
            .with_context(|| format!("writing {name}"))?;
    }
    std::fs::write(
        dir.join("kustomization.yaml"),
        api::crds::kustomization_yaml(),
    )?;
    // The validation reference is generated from the same cases the apiserver tests run.
    let doc = dir.join("../../../docs/api-validation.md");
    std::fs::write(&doc, api::crds::validation_doc()).context("writing docs/api-validation.md")?;
    // The book's API reference is generated from the same CRDs.
    docs::write(&root())?;
    eprintln!("wrote {} CRDs to {}", crds.len(), dir.display());
    Ok(())
}

fn test(no_lint: bool, fuzz_seconds: u64, cargo_args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    if !no_lint {
        run(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
        run(
            "cargo clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    run(
        "control plane binaries",
        Command::new("bash").arg("e2e/scripts/build-control-plane.sh"),
    )?;
    // The images' static release build, timed on its own; their test reuses it.
    images::build(&root(), &target_dir()?, &target_dir()?.join("images"))?;
    run(
        "cargo test",
        cargo().args(["test", "--workspace"]).args(cargo_args),
    )?;
    // Conformance of the simulator: the DMTF Redfish Service Validator must report 0 FAIL.
    run(
        "build metal-bmc-sim",
        cargo().args(["build", "--quiet", "-p", "metal-bmc-sim"]),
    )?;
    run(
        "redfish service validator (metal-bmc-sim)",
        Command::new("bash")
            .arg("crates/bmc-sim/scripts/service-validator.sh")
            .arg(target_dir()?.join("debug/metal-bmc-sim")),
    )?;
    if fuzz_seconds > 0 {
        fuzz::run(&root(), &target_dir()?, fuzz_seconds)?;
    }
    eprintln!("all tests passed in {:.1?}", started.elapsed());
    Ok(())
}

fn up(args: up::Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(up::run(args))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Up(args) => up(args),
        Cmd::Test {
            no_lint,
            fuzz_seconds,
            cargo_args,
        } => test(no_lint, fuzz_seconds, &cargo_args),
        Cmd::Fuzz { seconds } => fuzz::run(&root(), &target_dir()?, seconds),
        Cmd::Crdgen => crdgen(&root().join("kustomize/base/crd")),
        Cmd::Docs { check, build, out } => {
            if check {
                let stale = docs::stale(&root());
                if !stale.is_empty() {
                    bail!("the API reference is out of date, run `cargo xtask docs`: {stale:?}");
                }
            } else {
                docs::write(&root())?;
            }
            if build {
                let out = match out {
                    Some(out) => out,
                    None => target_dir()?.join("book"),
                };
                book::build_and_check(&root(), &out)?;
            }
            Ok(())
        }
        Cmd::Images { out, push } => {
            let out = match out {
                Some(out) => out,
                None => target_dir()?.join("images"),
            };
            let built = images::build(&root(), &target_dir()?, &out)?;
            match push {
                Some(registry) => images::push(&built, &registry),
                None => Ok(()),
            }
        }
        Cmd::ControlPlane => {
            let b = testenv::Binaries::locate()?;
            println!(
                "{}",
                b.kube_apiserver
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    /// `cargo test` sets the package variables for this test as `cargo run` does for xtask:
    /// the cargo that xtask starts must not see them.
    #[test]
    fn cargo_commands_drop_the_package_variables_of_this_process() {
        assert!(
            std::env::var_os("CARGO_PKG_NAME").is_some(),
            "cargo sets it"
        );
        let cmd = super::cargo();
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for k in ["CARGO_PKG_NAME", "CARGO_PKG_VERSION", "CARGO_MANIFEST_DIR"] {
            assert!(removed.iter().any(|r| r == k), "{k} kept: {removed:?}");
        }
        assert!(
            !removed
                .iter()
                .any(|r| r == "CARGO_HOME" || r == "CARGO_TARGET_DIR"),
            "{removed:?}"
        );
    }
}
