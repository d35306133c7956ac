//! The controller binary killed (SIGKILL) and restarted at random points of the boot and release
//! flows: the flows complete and nothing is repeated — every server gets exactly one power-on
//! request, one boot override and one power-off (the simulator counts the requests).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, Options, network_boot};
use metal_bmc_sim::PowerState;
use rand::Rng;

struct Controller {
    child: Option<Child>,
    args: Vec<String>,
    log: std::path::PathBuf,
    restarts: u32,
}

impl Controller {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_metal-provisioning"))
            .args(&self.args)
            .env("KUBECONFIG", testenv::shared().kubeconfig())
            .env("METAL_LOG", "info,metal_provisioning=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn metal-provisioning");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
            self.restarts += 1;
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kills and restarts the controller at random intervals until `done` holds (or panics after
/// `timeout`); then lets it run undisturbed until `done` holds.
async fn chaos<F, Fut>(ctl: &mut Controller, timeout: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let mut kills = 0;
    while !done().await {
        if start.elapsed() > timeout {
            panic!(
                "{what}: not done after {timeout:?} ({kills} kills); log: {}",
                ctl.log.display()
            );
        }
        let wait = rand::rng().random_range(200..1800);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if kills < 12 {
            ctl.kill();
            kills += 1;
            ctl.spawn();
        }
    }
    eprintln!(
        "{what}: done after {:?} with {kills} kills",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_random_points_the_flows_complete_without_repeats() {
    // Slow power transitions (1 s) so that kills land inside the flows. No response latency:
    // the simulator counts a request before its latency and drops its handler when the client
    // disappears, so a kill during the latency would count a request that never took effect
    // (a lost request, which the controller rightly sends again after the confirm timeout).
    let mut opts = Options::new("127.31.40.1", 6);
    opts.knobs = metal_bmc_sim::Knobs {
        power_delay_ms: 1000,
        // Every SIGKILL leaves the killed process's Redfish session behind (as on real BMCs
        // until their session timeout); give the BMCs room for ~30 restarts.
        session_limit: 64,
        ..common::fast_knobs()
    };
    let h = Harness::new("prov-chaos", opts).await;
    let port = testenv::unused_port();
    let log = std::env::temp_dir().join(format!("{}.log", h.shard));
    let mut ctl = Controller {
        child: None,
        args: vec![
            format!("--server-selector={}={}", common::SHARD_LABEL, h.shard),
            format!("--boot-addr=127.0.0.1:{port}"),
            "--metadata-addr=none".into(),
            "--admin-addr=127.0.0.1:0".into(),
            "--power-off-timeout=3s".into(),
            "--power-confirm-timeout=6s".into(),
            "--resync-interval=5s".into(),
            "--bmc-timeout=10s".into(),
        ],
        log,
        restarts: 0,
    };
    ctl.spawn();
    for s in &h.servers {
        h.wait_status_power(&s.name, "Off", Duration::from_secs(60))
            .await;
    }
    for s in &h.servers {
        h.sim.reset_request_counts(s.bmc).unwrap();
    }

    // Boot flow under chaos.
    for (i, s) in h.servers.iter().enumerate() {
        h.bind(s, &format!("chaos-{i}"), "On", network_boot(None))
            .await;
        let wait = rand::rng().random_range(50..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        ctl.kill();
        ctl.spawn();
    }
    let booted = || async {
        for (i, s) in h.servers.iter().enumerate() {
            let on = h.system(s).power_state == PowerState::On;
            let cond = h.claim_condition(&format!("chaos-{i}"), "PoweredOn").await;
            if !on || cond.map(|c| c.0) != Some("True".into()) {
                return false;
            }
        }
        true
    };
    chaos(&mut ctl, Duration::from_secs(180), "boot", booted).await;
    // Let it settle, then count.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for s in &h.servers {
        let sys = h.system(s);
        let path = h.system_path(s);
        assert_eq!(
            h.resets(s),
            1,
            "{}: exactly one power-on request; log {}",
            s.name,
            ctl.log.display()
        );
        assert_eq!(
            h.count(s, "PATCH", &path),
            1,
            "{}: exactly one boot override",
            s.name
        );
        assert_eq!(
            sys.boot_history.len(),
            1,
            "{}: booted once: {:?}",
            s.name,
            sys.boot_history
        );
        assert_eq!(sys.boot_history[0].target, "Pxe");
    }

    // Release flow under chaos.
    for i in 0..h.servers.len() {
        h.delete_claim(&format!("chaos-{i}")).await;
        let wait = rand::rng().random_range(50..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        ctl.kill();
        ctl.spawn();
    }
    let released = || async {
        for i in 0..h.servers.len() {
            let c = h.claim_condition(&format!("chaos-{i}"), "PoweredOff").await;
            if c.map(|c| c.0) != Some("True".into()) {
                return false;
            }
        }
        true
    };
    chaos(&mut ctl, Duration::from_secs(180), "release", released).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &h.servers {
        assert_eq!(h.system(s).power_state, PowerState::Off, "{}", s.name);
        assert_eq!(
            h.resets(s),
            2,
            "{}: one power-on and one power-off request (graceful, or forced when the graceful one was lost); log {}",
            s.name,
            ctl.log.display()
        );
    }
    eprintln!("controller restarted {} times", ctl.restarts);
    h.sim.shutdown().await;
}
