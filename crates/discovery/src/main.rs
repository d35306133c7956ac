//! `metal-discovery` binary: see the library docs and crates/discovery/README.md.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    metal_discovery::run(metal_discovery::Args::parse()).await
}
