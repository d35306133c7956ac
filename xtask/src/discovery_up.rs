//! `cargo xtask up`, discovery part: a simulated mixed rack, its BMC objects, and
//! `metal-discovery` as a process; prints the servers once they are Available.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::server::{Server, ServerState};
use kube::api::{Api, ListParams, Patch, PatchParams};
use metal_bmc_sim::{GroupSpec, RackSpec, SimHandle, Simulator, TemplateSource};
use serde_json::json;

/// Label on everything the bring-up creates (and discovery's `--bmc-selector`).
const LABEL: &str = "metal.ironcore.dev/xtask-up";

/// What runs while `up` waits for Ctrl-C; dropping it stops discovery and the simulator.
pub struct DiscoveryUp {
    sim: Option<SimHandle>,
    discovery: Child,
}

impl DiscoveryUp {
    /// Stops discovery and the simulator.
    pub async fn stop(mut self) {
        let _ = self.discovery.kill();
        let _ = self.discovery.wait();
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
    }
}

fn shared_trees() -> Vec<PathBuf> {
    let dir = std::env::var_os("METAL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| testenv::repo_root().join("../shared"))
        .join("fixtures/redfish");
    [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ]
    .iter()
    .map(|t| dir.join(t))
    .filter(|p| p.is_dir())
    .collect()
}

fn rack() -> RackSpec {
    let trees = shared_trees();
    let group = |count, template| GroupSpec {
        count,
        template,
        password: Some("metal-up".into()),
        ..GroupSpec::default()
    };
    let mut groups = vec![group(8 - trees.len().min(3), TemplateSource::default())];
    groups.extend(trees.into_iter().map(|t| group(1, TemplateSource::Path(t))));
    RackSpec {
        base_address: "127.0.1.1".parse().expect("address"),
        port: 0,
        tls: true,
        groups,
        ..RackSpec::default()
    }
}

fn build_discovery() -> anyhow::Result<PathBuf> {
    let root = testenv::repo_root();
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "-q",
            "-p",
            "metal-discovery",
            "--bin",
            "metal-discovery",
        ])
        .current_dir(&root)
        .status()
        .context("building metal-discovery")?;
    if !status.success() {
        bail!("building metal-discovery failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug/metal-discovery"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(10000)
}

/// Starts the rack and discovery against `kubeconfig`, waits for the servers and prints them.
pub async fn start(kubeconfig: &Path, log_dir: &Path) -> anyhow::Result<DiscoveryUp> {
    let bin = build_discovery()?;
    let client = testenv::client_from(kubeconfig).await?;
    let sim = Simulator::start(rack())
        .await
        .context("starting metal-bmc-sim")?;
    let bmcs = sim.bmcs();
    println!(
        "metal-bmc-sim: {} BMCs from 127.0.1.1 (port {})",
        bmcs.len(),
        sim.port()
    );
    let pp = PatchParams::apply("xtask-up").force();
    for info in &bmcs {
        let name = format!("rack1-bmc{}", info.index + 1);
        let secret = json!({
            "apiVersion": api::API_VERSION, "kind": "BMCSecret",
            "metadata": {"name": name, "labels": {LABEL: "true"}},
            "stringData": {"username": info.username, "password": info.password, "ca.crt": info.ca_pem.clone().unwrap_or_default()},
        });
        Api::<BMCSecret>::all(client.clone())
            .patch(&name, &pp, &Patch::Apply(&secret))
            .await?;
        let bmc = json!({
            "apiVersion": api::API_VERSION, "kind": "BMC",
            "metadata": {"name": name, "labels": {LABEL: "true", "metadata.metal.ironcore.dev/rack": "rack1"}},
            "spec": {"access": {"ip": info.ip.to_string()}, "bmcSecretRef": {"name": name},
                     "protocol": {"name": "Redfish", "port": info.port, "scheme": "https"}},
        });
        Api::<BMC>::all(client.clone())
            .patch(&name, &pp, &Patch::Apply(&bmc))
            .await?;
        println!("  {name}: {} ({})", info.address, info.template);
    }
    let registry_port = free_port();
    let log_path = log_dir.join("metal-discovery.log");
    let log = std::fs::File::create(&log_path)?;
    let discovery = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--bmc-selector",
            &format!("{LABEL}=true"),
            "--admin-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--registry-addr",
            &format!("127.0.0.1:{registry_port}"),
            "--registry-url",
            &format!("http://127.0.0.1:{registry_port}"),
            "--manager-namespace",
            "default",
        ])
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting metal-discovery")?;
    println!("metal-discovery running (log: {})", log_path.display());
    let up = DiscoveryUp {
        sim: Some(sim),
        discovery,
    };

    let servers: Api<Server> = Api::all(client);
    let lp = ListParams::default().labels(&format!("{LABEL}=true"));
    let started = Instant::now();
    let list = loop {
        let list = servers.list(&lp).await?.items;
        let available = list
            .iter()
            .filter(|s| s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available))
            .count();
        if !list.is_empty() && available == list.len() && list.len() >= bmcs.len() {
            break list;
        }
        if started.elapsed() > Duration::from_secs(180) {
            eprintln!(
                "warning: only {available}/{} servers Available after 3 minutes",
                list.len()
            );
            break list;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!();
    println!(
        "{:<22} {:<10} {:<20} {:<30} {:<18} {:>5} {:>8}",
        "SERVER", "STATE", "MANUFACTURER", "MODEL", "SERIAL", "CPUS", "MEMORY"
    );
    for s in &list {
        let st = s.status.clone().unwrap_or_default();
        println!(
            "{:<22} {:<10} {:<20} {:<30} {:<18} {:>5} {:>8}",
            s.metadata.name.clone().unwrap_or_default(),
            st.state.map(|x| x.as_str()).unwrap_or("-"),
            st.manufacturer.unwrap_or_default(),
            st.model.unwrap_or_default(),
            st.serial_number.unwrap_or_default(),
            st.processors.len(),
            st.total_system_memory.map(|q| q.0).unwrap_or_default(),
        );
    }
    println!();
    println!("kubectl get bmcs,servers -l {LABEL}=true");
    Ok(up)
}
