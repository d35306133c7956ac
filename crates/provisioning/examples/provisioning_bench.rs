//! Benchmark: time from a server becoming Reserved (claim bound) to the power-on request
//! arriving at its BMC, for N servers bound at once, and the controller's memory.
//!
//! ```text
//! cargo build --release -p metal-provisioning --bin metal-provisioning
//! cargo run --release -p metal-provisioning --example provisioning_bench -- --servers 1000
//! ```
//!
//! Runs the real control plane (metal-testenv), a simulated rack of N BMCs (one system each,
//! TLS, no artificial latency, instant power transitions), and the release binary of the
//! controller as a separate process (so its RSS is its own). Plays discovery (BMC, BMCSecret,
//! Server objects, Available) and reservation (claims with their boot configurations, then the
//! binding: `spec.serverClaimRef` and `status.state: Reserved`, 32 bindings in flight). The
//! simulator's boot hook timestamps each power-on as it reaches the BMC.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::server::Server;
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use metal_bmc_sim::{BootEvent, GroupSpec, Knobs, RackSpec, Simulator};
use serde_json::json;
use testenv::bench::{arg, percentile, rss_kib};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n = arg("--servers", 100);
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/release/metal-provisioning");
    if !bin.exists() {
        bail!(
            "{} not found: cargo build --release -p metal-provisioning --bin metal-provisioning",
            bin.display()
        );
    }
    let (client, ns) = testenv::setup("prov-bench").await;
    let ns = ns.name;
    let shard = testenv::unique_name("bench");

    let booted: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let hook_booted = Arc::clone(&booted);
    let spec = RackSpec {
        base_address: "127.60.0.1".parse()?,
        port: 0,
        tls: true,
        boot_hook: Some(Arc::new(move |ev: BootEvent| {
            hook_booted
                .lock()
                .unwrap()
                .entry(ev.bmc_index)
                .or_insert_with(Instant::now);
        })),
        groups: vec![GroupSpec {
            count: n,
            password: Some("bench-password".into()),
            knobs: Knobs {
                power_delay_ms: 0,
                session_limit: 64,
                ..Knobs::default()
            },
            ..GroupSpec::default()
        }],
        ..RackSpec::default()
    };
    let sim = Simulator::start(spec).await?;
    let bmcs = sim.bmcs();
    println!("simulator: {n} BMCs");

    // Discovery's part: BMCSecret, BMC, Server (Available); reservation's: claim + SBC.
    let setup = Instant::now();
    let pp = PostParams::default();
    let names: Vec<String> = (0..n).map(|i| format!("{shard}-{i}")).collect();
    futures::stream::iter(0..n)
        .map(|i| {
            let (client, ns, shard, b, name) = (client.clone(), ns.clone(), shard.clone(), bmcs[i].clone(), names[i].clone());
            let pp = pp.clone();
            async move {
                let sys = &b.systems[0];
                let secret: api::bmcsecret::BMCSecret = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "BMCSecret", "metadata": { "name": name },
                    "stringData": { "username": b.username, "password": b.password, "ca.crt": b.ca_pem },
                }))?;
                Api::<api::bmcsecret::BMCSecret>::all(client.clone()).create(&pp, &secret).await?;
                let bmc: api::bmc::BMC = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "BMC", "metadata": { "name": name },
                    "spec": { "access": { "ip": b.ip.to_string() }, "bmcSecretRef": { "name": name },
                              "protocol": { "name": "Redfish", "port": b.port, "scheme": "https" } },
                }))?;
                Api::<api::bmc::BMC>::all(client.clone()).create(&pp, &bmc).await?;
                let server: Server = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "Server",
                    "metadata": { "name": name, "labels": { "bench.metal.ironcore.dev/shard": shard } },
                    "spec": { "systemUUID": sys.uuid.clone().unwrap_or_default().to_lowercase(),
                              "systemURI": sys.path, "bmcRef": { "name": name } },
                }))?;
                let servers = Api::<Server>::all(client.clone());
                servers.create(&pp, &server).await?;
                servers
                    .patch_status(&name, &PatchParams::apply("metal-discovery").force(), &Patch::Apply(json!({
                        "apiVersion": api::API_VERSION, "kind": "Server", "metadata": { "name": name },
                        "status": { "state": "Available",
                            "networkInterfaces": [{ "name": "eth0", "macAddress": sys.macs.first().cloned().unwrap_or_default().to_lowercase() }] },
                    })))
                    .await?;
                let claim: ServerClaim = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "ServerClaim",
                    "metadata": { "name": name, "finalizers": ["metal.ironcore.dev/serverclaim"] },
                    "spec": { "power": "On", "serverRef": { "name": name }, "image": "ghcr.io/example/os:1" },
                }))?;
                Api::<ServerClaim>::namespaced(client.clone(), &ns).create(&pp, &claim).await?;
                let sbc: ServerBootConfiguration = serde_json::from_value(json!({
                    "apiVersion": api::API_VERSION, "kind": "ServerBootConfiguration", "metadata": { "name": name },
                    "spec": { "serverRef": { "name": name },
                              "bootArtifacts": { "kernelURL": "http://images.example.test/vmlinuz", "cmdline": "console=ttyS0" } },
                }))?;
                Api::<ServerBootConfiguration>::namespaced(client.clone(), &ns).create(&pp, &sbc).await?;
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
    let boot_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(&bin)
        .args([
            format!("--server-selector=bench.metal.ironcore.dev/shard={shard}"),
            format!("--boot-addr=127.0.0.1:{boot_port}"),
            "--metadata-addr=none".into(),
            "--admin-addr=127.0.0.1:0".into(),
            "--log-level=warn".into(),
        ])
        .env("KUBECONFIG", testenv::shared().kubeconfig())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the controller")?;
    let pid = child.id();

    // Wait until every server is reported Off and every boot configuration Ready.
    let servers = Api::<Server>::all(client.clone());
    let sbcs = Api::<ServerBootConfiguration>::namespaced(client.clone(), &ns);
    let lp =
        kube::api::ListParams::default().labels(&format!("bench.metal.ironcore.dev/shard={shard}"));
    let ready_start = Instant::now();
    loop {
        let off = servers
            .list(&lp)
            .await?
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|st| st.power_state)
                    .map(|p| p.to_string())
                    .as_deref()
                    == Some("Off")
            })
            .count();
        let ready = sbcs
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|st| st.state)
                    .map(|x| x.to_string())
                    .as_deref()
                    == Some("Ready")
            })
            .count();
        if off == n && ready == n {
            break;
        }
        if ready_start.elapsed() > Duration::from_secs(600) {
            bail!(
                "not ready: {off}/{n} off, {ready}/{n} Ready (log {})",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "controller synced: {n} servers Available/Off, configurations Ready in {:?}",
        ready_start.elapsed()
    );
    let (rss_idle, _) = rss_kib(pid);
    for i in 0..n {
        sim.reset_request_counts(i)?;
    }

    // Reservation binds all claims at once (32 bindings in flight).
    let burst = Instant::now();
    let bound: Vec<(usize, Instant)> = futures::stream::iter(0..n)
        .map(|i| {
            let (servers, name, ns) = (servers.clone(), names[i].clone(), ns.clone());
            async move {
                servers
                    .patch(&name, &PatchParams::apply("metal-reservation").force(), &Patch::Apply(json!({
                        "apiVersion": api::API_VERSION, "kind": "Server", "metadata": { "name": name },
                        "spec": { "serverClaimRef": { "namespace": ns, "name": name } },
                    })))
                    .await?;
                servers
                    .patch_status(&name, &PatchParams::apply("metal-reservation").force(), &Patch::Apply(json!({
                        "apiVersion": api::API_VERSION, "kind": "Server", "metadata": { "name": name },
                        "status": { "state": "Reserved" },
                    })))
                    .await?;
                anyhow::Ok((i, Instant::now()))
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    println!("bound {n} claims in {:?}", burst.elapsed());
    let deadline = Instant::now() + Duration::from_secs(600);
    while booted.lock().unwrap().len() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} servers powered on (log {})",
                booted.lock().unwrap().len(),
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_on = burst.elapsed();
    let times = booted.lock().unwrap().clone();
    let mut lat: Vec<f64> = bound
        .iter()
        .map(|(i, t0)| times[i].saturating_duration_since(*t0).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, hwm) = rss_kib(pid);
    let requests: u64 = (0..n)
        .map(|i| sim.request_counts(i).map(|c| c.total).unwrap_or(0))
        .sum();
    let resets: u64 = (0..n)
        .map(|i| {
            sim.request_counts(i)
                .map(|c| c.get("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"))
                .unwrap_or(0)
        })
        .sum();
    println!();
    println!("servers                      {n}");
    println!(
        "Reserved -> power-on p50     {:.0} ms",
        percentile(&lat, 0.50)
    );
    println!(
        "Reserved -> power-on p90     {:.0} ms",
        percentile(&lat, 0.90)
    );
    println!(
        "Reserved -> power-on p99     {:.0} ms",
        percentile(&lat, 0.99)
    );
    println!(
        "Reserved -> power-on max     {:.0} ms",
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!("all {n} powered on after     {all_on:?} (from the first binding)");
    println!(
        "power-on requests            {resets} ({:.2} per server)",
        resets as f64 / n as f64
    );
    println!(
        "Redfish requests per boot    {:.1}",
        requests as f64 / n as f64
    );
    println!(
        "controller RSS idle / after  {} / {} MiB (peak {} MiB)",
        rss_idle / 1024,
        rss / 1024,
        hwm / 1024
    );
    let _ = child.kill();
    let _ = child.wait();
    sim.shutdown().await;
    Ok(())
}
