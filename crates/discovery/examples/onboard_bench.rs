//! Onboarding benchmark: N simulated BMCs (Redfish latency per request) → N Servers Available,
//! out-of-band, with `metal-discovery` running as a process against a real control plane.
//!
//! ```text
//! cargo run --release -p metal-discovery --example onboard_bench -- --bmcs 100
//! cargo run --release -p metal-discovery --example onboard_bench -- --bmcs 1000 --concurrency 128
//! cargo run --release -p metal-discovery --example onboard_bench -- --bmcs 2000 --replicas 2
//! ```
//!
//! With `--replicas N` that many discovery processes divide the BMCs through automatic sharding
//! (`--shards`, 16 by default), all started at once; the figures add up their requests and
//! writes and report the largest replica's memory.
//!
//! Prints: wall time from process start until every Server is Available, Redfish requests per
//! server (simulator counters), API writes per server (discovery's own counter), peak RSS of the
//! discovery process (VmHWM), and its RSS `--settle-secs` (30) later, once idle BMC connections
//! have closed (VmRSS).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::server::{Server, ServerState};
use clap::Parser;
use futures::StreamExt;
use kube::api::{Api, ListParams, PostParams};
use metal_bmc_sim::{GroupSpec, Knobs, RackSpec, Simulator};
use serde_json::json;

/// Benchmark options.
#[derive(Parser, Debug)]
struct Args {
    /// Number of simulated BMCs (one system each).
    #[arg(long, default_value_t = 100)]
    bmcs: usize,
    /// Redfish latency per request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Reconciles in flight per controller (`--concurrency` of metal-discovery).
    #[arg(long, default_value_t = 64)]
    concurrency: u16,
    /// First simulator address.
    #[arg(long, default_value = "127.80.0.1")]
    base: String,
    /// Seconds to wait after all are Available before reading the settled RSS.
    #[arg(long, default_value_t = 30)]
    settle_secs: u64,
    /// Run discovery under this program (for example `heaptrack` to profile its memory); the
    /// RSS figures are then the wrapper's.
    #[arg(long)]
    wrap: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// Discovery processes sharing the BMCs through automatic sharding (`--shards`); with 1 and
    /// no `--shards`, one unsharded process.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Shards of the group when sharded (implied 16 when `--replicas` > 1).
    #[arg(long)]
    shards: Option<u32>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

fn discovery_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("locating the target directory")?;
    let profile = if dir.ends_with("release") {
        "--release"
    } else {
        "--profile=dev"
    };
    let status = testenv::cargo_command()
        .args([
            "build",
            "-q",
            profile,
            "-p",
            "metal-discovery",
            "--bin",
            "metal-discovery",
        ])
        .current_dir(testenv::repo_root())
        .status()?;
    if !status.success() {
        bail!("building metal-discovery failed");
    }
    Ok(dir.join("metal-discovery"))
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`: peak RSS, `VmRSS`: current RSS).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Pids of the processes running program `name` whose arguments mention `needle` (the control
/// plane's directory).
fn pids_with(needle: &str, name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                let program = c.split('\0').next().unwrap_or_default();
                program.rsplit('/').next() == Some(name) && c.contains(needle)
            })
        })
        .collect()
}

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text)
}

fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l.as_bytes().get(name.len()) == Some(&b'{')
                    || l.as_bytes().get(name.len()) == Some(&b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let bin = discovery_binary()?;
    eprintln!("starting a control plane ...");
    let cp = tokio::task::spawn_blocking(|| {
        testenv::ControlPlane::start(testenv::Options {
            controller_manager: false,
            ..Default::default()
        })
    })
    .await??;
    let client = cp.client().await;
    eprintln!(
        "starting {} simulated BMCs ({} ms latency) ...",
        args.bmcs, args.latency_ms
    );
    let sim = Simulator::start(RackSpec {
        base_address: args.base.parse()?,
        port: 0,
        tls: true,
        groups: vec![GroupSpec {
            count: args.bmcs,
            password: Some("bench-password".into()),
            knobs: Knobs {
                latency_ms: args.latency_ms,
                ..Knobs::default()
            },
            ..GroupSpec::default()
        }],
        ..RackSpec::default()
    })
    .await?;
    let infos = sim.bmcs();
    let run = "bench";
    let labels = json!({"metal.bench/run": run});
    eprintln!("creating {} BMCSecrets and BMCs ...", infos.len());
    let secrets: Api<BMCSecret> = Api::all(client.clone());
    let bmcs: Api<BMC> = Api::all(client.clone());
    futures::stream::iter(infos.iter().enumerate())
        .for_each_concurrent(32, |(i, info)| {
            let (secrets, bmcs, labels) = (secrets.clone(), bmcs.clone(), labels.clone());
            async move {
                let name = format!("bench-{i:05}");
                let s: BMCSecret = serde_json::from_value(json!({
                    "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret",
                    "metadata": {"name": name, "labels": labels},
                    "stringData": {"username": info.username, "password": info.password, "ca.crt": info.ca_pem.clone().unwrap_or_default()}
                }))
                .unwrap();
                secrets.create(&PostParams::default(), &s).await.expect("secret");
                let b: BMC = serde_json::from_value(json!({
                    "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"access": {"ip": info.ip.to_string()}, "bmcSecretRef": {"name": name},
                             "protocol": {"name": "Redfish", "port": info.port, "scheme": "https"}}
                }))
                .unwrap();
                bmcs.create(&PostParams::default(), &b).await.expect("bmc");
            }
        })
        .await;
    for i in 0..infos.len() {
        sim.reset_request_counts(i)?;
    }

    let shards = args.shards.or((args.replicas > 1).then_some(16));
    // What bounds the run: CPU seconds of each part over the onboarding.
    let cp_dir = cp
        .dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let parts = [
        ("kube-apiserver", pids_with(&cp_dir, "kube-apiserver")),
        ("etcd", pids_with(&cp_dir, "etcd")),
        ("simulator + bench", vec![std::process::id()]),
    ];
    let cpu_at = |pids: &[u32]| pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let parts_before: Vec<f64> = parts.iter().map(|(_, p)| cpu_at(p)).collect();
    let started = Instant::now();
    let mut children = Vec::new();
    for r in 0..args.replicas.max(1) {
        let admin_port = free_port();
        let mut cmd = match &args.wrap {
            Some(w) => {
                let mut c = tokio::process::Command::new(w);
                c.arg(&bin);
                c
            }
            None => tokio::process::Command::new(&bin),
        };
        cmd.arg("--kubeconfig").arg(cp.kubeconfig()).args([
            "--bmc-selector",
            &format!("metal.bench/run={run}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin_port}"),
            "--registry-addr",
            "127.0.0.1:0",
            "--concurrency",
            &args.concurrency.to_string(),
            "--bmc-refresh-interval",
            "30m",
            "--log-level",
            "warn",
        ]);
        if let Some(n) = shards {
            cmd.args([
                "--leader-elect",
                "--lease-namespace",
                "default",
                "--lease-name",
                "bench",
                "--lease-duration",
                "15s",
                "--shards",
                &n.to_string(),
                "--identity",
                &format!("replica-{r}"),
            ]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("pid")?;
        children.push((child, pid, admin_port));
    }
    let servers: Api<Server> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("metal.bench/run={run}"));
    let mut last = 0;
    let wall = loop {
        let list = servers.list_metadata(&lp).await?;
        let total = list.items.len();
        let avail = servers
            .list(&lp)
            .await?
            .items
            .iter()
            .filter(|s| s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available))
            .count();
        if avail != last {
            eprintln!(
                "{:>6.1}s  servers {total:>5}  available {avail:>5}",
                started.elapsed().as_secs_f64()
            );
            last = avail;
        }
        if avail == args.bmcs {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            bail!("timed out with {avail}/{} available", args.bmcs);
        }
        for (child, _, _) in &mut children {
            if let Some(status) = child.try_wait()? {
                bail!("metal-discovery exited: {status}");
            }
        }
        tokio::time::sleep(Duration::from_millis(if args.bmcs > 200 {
            1000
        } else {
            250
        }))
        .await;
    };
    let discovery_pids: Vec<u32> = children.iter().map(|(_, pid, _)| *pid).collect();
    let mut cpu: Vec<(&str, f64)> = parts
        .iter()
        .zip(&parts_before)
        .map(|((name, pids), before)| (*name, cpu_at(pids) - before))
        .collect();
    cpu.push(("discovery (all replicas)", cpu_at(&discovery_pids)));
    // Every replica's metrics, concatenated (the sums below add them up); the largest peak RSS.
    let mut metrics = String::new();
    let mut hwm = 0;
    for (_, pid, port) in &children {
        metrics.push_str(&scrape(*port).await);
        hwm = hwm.max(status_kib(*pid, "VmHWM").unwrap_or(0));
    }
    // Settled: after the Redfish client's idle timeout, pooled connections are closed.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let settled = children
        .iter()
        .map(|(_, pid, _)| status_kib(*pid, "VmRSS").unwrap_or(0))
        .max()
        .unwrap_or(0);
    if args.wrap.is_some() {
        // Let the wrapper (a profiler) see a clean exit and write its report.
        let _ = Command::new("pkill")
            .args(["-TERM", "-f", "metal-discovery --kubeconfig"])
            .status();
        for (child, _, _) in &mut children {
            let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
        }
    }
    for (child, _, _) in &mut children {
        child.kill().await?;
    }
    let n = args.bmcs as f64;
    let sim_requests: u64 = (0..infos.len())
        .map(|i| sim.request_counts(i).map(|c| c.total).unwrap_or(0))
        .sum();
    let writes = sum_metric(&metrics, "metal_discovery_api_writes_total");
    let client_requests = sum_metric(&metrics, "metal_redfish_requests_total");
    println!();
    println!(
        "| BMCs | replicas | latency | concurrency | wall time to all Available | servers/min | Redfish req/server (sim) | API writes/server | peak RSS (VmHWM, largest replica) | RSS {}s later |",
        args.settle_secs
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} ms | {} | {:.1} s | {:.0} | {:.1} | {:.1} | {:.1} MiB | {:.1} MiB |",
        args.bmcs,
        children.len(),
        args.latency_ms,
        args.concurrency,
        wall.as_secs_f64(),
        n / wall.as_secs_f64() * 60.0,
        sim_requests as f64 / n,
        writes / n,
        hwm as f64 / 1024.0,
        settled as f64 / 1024.0
    );
    eprintln!(
        "(discovery counted {client_requests} Redfish requests; the simulator {sim_requests})"
    );
    // Where the requests and writes go, per server, so a change to either shows its cause.
    let mut by_request: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..infos.len() {
        if let Ok(c) = sim.request_counts(i) {
            for (k, v) in c.by_request {
                *by_request.entry(k).or_default() += v;
            }
        }
    }
    println!();
    println!(
        "| process | CPU seconds during onboarding | cores busy (of {}) |",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("|---|---|---|");
    let total: f64 = cpu.iter().map(|(_, c)| c).sum();
    for (name, c) in &cpu {
        println!("| {name} | {c:.1} | {:.2} |", c / wall.as_secs_f64());
    }
    println!("| all | {total:.1} | {:.2} |", total / wall.as_secs_f64());
    println!();
    println!("| Redfish request | per server |");
    println!("|---|---|");
    for (k, v) in &by_request {
        println!("| `{k}` | {:.2} |", *v as f64 / n);
    }
    println!();
    println!("| API write (kind, op) | per server |");
    println!("|---|---|");
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("metal_discovery_api_writes_total{"))
    {
        if let Some((labels, v)) = l.rsplit_once(' ') {
            let v: f64 = v.parse().unwrap_or(0.0);
            let labels = labels.trim_start_matches("metal_discovery_api_writes_total");
            println!("| `{labels}` | {:.2} |", v / n);
        }
    }
    println!(
        "bench onboard bmcs={} replicas={} latency_ms={} concurrency={} wall_s={:.2} servers_per_s={:.1} redfish_per_server={:.2} api_writes_per_server={:.2} peak_rss_mib={:.1} settled_rss_mib={:.1} cores_busy={:.2}",
        args.bmcs,
        children.len(),
        args.latency_ms,
        args.concurrency,
        wall.as_secs_f64(),
        n / wall.as_secs_f64(),
        sim_requests as f64 / n,
        writes / n,
        hwm as f64 / 1024.0,
        settled as f64 / 1024.0,
        total / wall.as_secs_f64()
    );
    sim.shutdown().await;
    drop(cp);
    Ok(())
}
