//! A minimal leader-elected worker, used by the leader-election tests as a real process that can
//! be killed: prints `leading`, `tick` every 100 ms while leading, `stopped` when the work stops,
//! and releases the Lease on SIGTERM.
//!
//! Usage: `lease_holder <kubeconfig> <namespace> <lease> <identity> <lease-seconds>`

use metal_runtime::lease::{LeaseParams, run_while_leading, spawn};
use std::io::Write as _;
use std::time::Duration;

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 6,
        "usage: lease_holder <kubeconfig> <namespace> <lease> <identity> <lease-seconds>"
    );
    let kc = kube::config::Kubeconfig::read_from(&args[1])?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let params = LeaseParams::new(
        args[3].clone(),
        args[2].clone(),
        args[4].clone(),
        Duration::from_secs_f64(args[5].parse()?),
    );
    let shutdown = metal_runtime::shutdown::on_signal();
    let handle = spawn(client, params, None);
    run_while_leading(handle, shutdown, |token| async move {
        say("leading");
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => say("tick"),
            }
        }
        say("stopped");
    })
    .await?;
    say("exited");
    Ok(())
}
