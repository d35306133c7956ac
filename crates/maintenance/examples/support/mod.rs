//! What the maintenance benchmarks share: a simulated rack with its BMC, BMCSecret and Server
//! objects (discovery played: Available, Off), and the release controller as its own process.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::server::Server;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use metal_bmc_sim::{GroupSpec, Knobs, RackSpec, SimHandle, Simulator};
use serde_json::json;

/// The label every object of one run carries.
pub const LABEL: &str = "bench.metal.ironcore.dev/shard";

/// One benchmark's rack and controller.
#[allow(dead_code)] // each benchmark uses a part
pub struct Bench {
    pub client: kube::Client,
    pub shard: String,
    pub sim: SimHandle,
    pub child: Child,
    pub log: std::path::PathBuf,
    /// The controller's RSS right after it started, KiB.
    pub rss_idle: u64,
}

impl Bench {
    /// `n` BMCs on `base` with `knobs`, objects named `<shard>-<i>` (BMCs and Servers labelled
    /// [`LABEL`]), and metal-maintenance started for them with `--concurrency`.
    pub async fn start(
        name: &str,
        base: &str,
        n: usize,
        knobs: Knobs,
        concurrency: usize,
    ) -> Result<Bench> {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/release/metal-maintenance");
        if !bin.exists() {
            bail!(
                "{} not found: cargo build --release -p metal-maintenance --bin metal-maintenance",
                bin.display()
            );
        }
        let (client, ns) = testenv::setup(name).await;
        let ns = ns.name;
        let shard = testenv::unique_name(name);
        let sim = Simulator::start(RackSpec {
            base_address: base.parse()?,
            port: 0,
            tls: true,
            groups: vec![GroupSpec {
                count: n,
                password: Some("bench-password".into()),
                knobs,
                ..GroupSpec::default()
            }],
            ..RackSpec::default()
        })
        .await?;
        let bmcs = sim.bmcs();
        println!("simulator: {n} BMCs");

        let setup = Instant::now();
        let pp = PostParams::default();
        futures::stream::iter(0..n)
            .map(|i| {
                let (client, shard, b, pp) = (client.clone(), shard.clone(), bmcs[i].clone(), pp.clone());
                let name = format!("{shard}-{i}");
                async move {
                    let sys = &b.systems[0];
                    let secret: api::bmcsecret::BMCSecret = serde_json::from_value(json!({
                        "apiVersion": api::API_VERSION, "kind": "BMCSecret", "metadata": { "name": name },
                        "stringData": { "username": b.username, "password": b.password, "ca.crt": b.ca_pem },
                    }))?;
                    Api::<api::bmcsecret::BMCSecret>::all(client.clone()).create(&pp, &secret).await?;
                    let bmc: api::bmc::BMC = serde_json::from_value(json!({
                        "apiVersion": api::API_VERSION, "kind": "BMC",
                        "metadata": { "name": name, "labels": { LABEL: shard } },
                        "spec": { "access": { "ip": b.ip.to_string() }, "bmcSecretRef": { "name": name },
                                  "protocol": { "name": "Redfish", "port": b.port, "scheme": "https" } },
                    }))?;
                    Api::<api::bmc::BMC>::all(client.clone()).create(&pp, &bmc).await?;
                    let server: Server = serde_json::from_value(json!({
                        "apiVersion": api::API_VERSION, "kind": "Server",
                        "metadata": { "name": name, "labels": { LABEL: shard } },
                        "spec": { "systemUUID": sys.uuid.clone().unwrap_or_default().to_lowercase(),
                                  "systemURI": sys.path, "bmcRef": { "name": name } },
                    }))?;
                    let servers = Api::<Server>::all(client.clone());
                    servers.create(&pp, &server).await?;
                    servers
                        .patch_status(&name, &PatchParams::apply("metal-discovery").force(), &Patch::Apply(json!({
                            "apiVersion": api::API_VERSION, "kind": "Server", "metadata": { "name": name },
                            "status": { "state": "Available", "powerState": "Off" },
                        })))
                        .await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        println!("objects created in {:?}", setup.elapsed());

        let log = std::env::temp_dir().join(format!("{shard}.log"));
        let child = Command::new(&bin)
            .args([
                format!("--server-selector={LABEL}={shard}"),
                format!("--maintenance-namespace={ns}"),
                format!("--concurrency={concurrency}"),
                "--admin-addr=127.0.0.1:0".into(),
                "--log-level=warn".into(),
            ])
            .env("KUBECONFIG", testenv::shared().kubeconfig())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the controller")?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (rss_idle, _) = testenv::bench::rss_kib(child.id());
        for i in 0..n {
            sim.reset_request_counts(i)?;
        }
        Ok(Bench {
            client,
            shard,
            sim,
            child,
            log,
            rss_idle,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the controller and the simulator.
    pub async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.sim.shutdown().await;
    }
}
