//! Benchmark: time from ServerClaim creation to `Bound` with 1,000 Available servers, for one
//! claim at a time and for 100 claims created at once, and the controller's memory.
//!
//! ```sh
//! cargo build --release -p metal-reservation --bin metal-reservation
//! cargo run --release -p metal-reservation --example bind_bench
//! ```
//!
//! It starts a real control plane (metal-testenv), creates the servers, then runs the
//! `metal-reservation` binary next to this example (`target/release/metal-reservation`) as a
//! process and reads its `/proc/<pid>/status`. Without the binary it runs the controller
//! in-process and reports this process's memory instead (which then includes the benchmark's own
//! clients). Latency is measured from just before the create call to the watch event that shows
//! `status.phase: Bound`.
//!
//! Environment: `BENCH_SERVERS` (default 1000), `BENCH_SINGLE` (single-claim rounds, default 20),
//! `BENCH_BURST` (claims created at once, default 100).

use api::serverclaim::{Phase, ServerClaim, ServerClaimSpec};
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn proc_status(pid: u32) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    buf.starts_with(b"HTTP/1.1 200")
}

/// Bound times of claims as the watch reports them.
type BoundAt = Arc<Mutex<HashMap<String, Instant>>>;

async fn wait_bound(bound: &BoundAt, names: &[String], timeout: Duration) {
    let start = Instant::now();
    loop {
        {
            let b = bound.lock().unwrap();
            if names.iter().all(|n| b.contains_key(n)) {
                return;
            }
        }
        assert!(start.elapsed() < timeout, "claims not bound in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn claim(name: &str) -> ServerClaim {
    ServerClaim::new(
        name,
        ServerClaimSpec {
            power: api::common::Power::On,
            server_ref: None,
            server_selector: None,
            ignition_secret_ref: None,
            user_data_ref: None,
            image: "ghcr.io/example/os:1".into(),
            tolerations: vec![],
        },
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let servers = env_usize("BENCH_SERVERS", 1000);
    let single = env_usize("BENCH_SINGLE", 20);
    let burst = env_usize("BENCH_BURST", 100);
    let cp = testenv::ControlPlane::start(testenv::Options::default())?;
    let client = cp.client().await;
    let id = testenv::unique_name("bench");
    let ns = testenv::TestNamespace::create(&client, "bench").await.name;
    let label = format!("bench-id={id}");

    // Servers, Available and powered off.
    let t = Instant::now();
    let server_api: Api<api::Server> = Api::all(client.clone());
    futures::stream::iter(0..servers)
        .for_each_concurrent(32, |i| {
            let api = server_api.clone();
            let id = id.clone();
            async move {
                let name = format!("{id}-{i:04}");
                let mut s = api::Server::new(
                    &name,
                    api::ServerSpec {
                        system_uuid: format!("uuid-{name}"),
                        ..Default::default()
                    },
                );
                s.metadata.labels = Some([("bench-id".to_string(), id.clone())].into());
                api.create(&PostParams::default(), &s)
                    .await
                    .expect("create server");
                api.patch_status(
                    &name,
                    &PatchParams::apply("bench-discovery").force(),
                    &Patch::Apply(json!({
                        "apiVersion": api::API_VERSION, "kind": "Server",
                        "status": {"state": "Available", "powerState": "Off"},
                    })),
                )
                .await
                .expect("server status");
            }
        })
        .await;
    eprintln!("created {servers} servers in {:.1?}", t.elapsed());

    // The controller: the release binary as a process if built, else in-process.
    let binary = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("metal-reservation"))
        .filter(|p| p.is_file());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = None;
    let mut in_process = None;
    let started = Instant::now();
    match &binary {
        Some(path) => {
            eprintln!("running {}", path.display());
            child = Some(
                tokio::process::Command::new(path)
                    .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
                    .arg(format!("--server-selector={label}"))
                    .arg(format!("--claim-namespace={ns}"))
                    .arg(format!("--admin-addr=127.0.0.1:{port}"))
                    .arg("--identity=bench")
                    .arg("--log-level=warn")
                    .kill_on_drop(true)
                    .spawn()?,
            );
            while !http_ok(port, "/readyz").await {
                anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "never ready");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        None => {
            eprintln!("release binary not found; running the controller in-process");
            let mut config = metal_reservation::Config::new("bench");
            config.server_selector = Some(label.clone());
            config.claim_namespace = Some(ns.clone());
            let admin = runtime::admin::AdminState::default();
            let r = metal_reservation::Reservation::start(client.clone(), config, &admin);
            r.ready().await;
            let token = tokio_util::sync::CancellationToken::new();
            in_process = Some((token.clone(), tokio::spawn(r.run(token))));
        }
    }
    eprintln!(
        "controller ready (caches synced) in {:.1?}",
        started.elapsed()
    );

    // Watch claims for Bound.
    let claims: Api<ServerClaim> = Api::namespaced(client.clone(), &ns);
    let bound: BoundAt = Arc::default();
    let b = bound.clone();
    let stream = watcher(claims.clone(), watcher::Config::default()).applied_objects();
    let watch = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(c)) = stream.next().await {
            let c: ServerClaim = c;
            if c.status.as_ref().and_then(|s| s.phase) == Some(Phase::Bound) {
                b.lock()
                    .unwrap()
                    .entry(c.name_any())
                    .or_insert_with(Instant::now);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // One claim at a time.
    let mut singles = Vec::new();
    for i in 0..single {
        let name = format!("single-{i:03}");
        let t0 = Instant::now();
        claims.create(&PostParams::default(), &claim(&name)).await?;
        wait_bound(&bound, std::slice::from_ref(&name), Duration::from_secs(60)).await;
        singles.push(bound.lock().unwrap()[&name] - t0);
    }
    singles.sort();

    // A burst created at once.
    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i:03}")).collect();
    let starts: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t_burst = Instant::now();
    futures::stream::iter(names.iter())
        .for_each_concurrent(burst, |n| {
            let claims = claims.clone();
            let starts = starts.clone();
            async move {
                starts.lock().unwrap().insert(n.clone(), Instant::now());
                claims
                    .create(&PostParams::default(), &claim(n))
                    .await
                    .expect("create claim");
            }
        })
        .await;
    wait_bound(&bound, &names, Duration::from_secs(300)).await;
    let makespan = t_burst.elapsed();
    let mut bursts: Vec<Duration> = {
        let b = bound.lock().unwrap();
        let s = starts.lock().unwrap();
        names.iter().map(|n| b[n] - s[n]).collect()
    };
    bursts.sort();
    watch.abort();

    let (rss, hwm, whose) = match &child {
        Some(c) => {
            let (rss, hwm) = proc_status(c.id().unwrap_or_default());
            (rss, hwm, "controller process")
        }
        None => {
            let (rss, hwm) = proc_status(std::process::id());
            (rss, hwm, "benchmark process incl. controller")
        }
    };
    println!(
        "metal-reservation bind benchmark ({servers} Available servers, real kube-apiserver + etcd on this machine)"
    );
    println!(
        "  1 claim at a time ({single} rounds): p50 {}  p99 {}  max {}",
        ms(percentile(&singles, 0.50)),
        ms(percentile(&singles, 0.99)),
        ms(*singles.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "  {burst} claims at once:              p50 {}  p99 {}  all bound after {}",
        ms(percentile(&bursts, 0.50)),
        ms(percentile(&bursts, 0.99)),
        ms(makespan)
    );
    println!("  memory ({whose}): VmRSS {rss}, VmHWM {hwm}");

    if let Some(mut c) = child {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    if let Some((token, task)) = in_process {
        token.cancel();
        let _ = task.await;
    }
    Ok(())
}
