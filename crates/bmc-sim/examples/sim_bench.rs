//! Benchmark of the simulator: memory per BMC and requests per second.
//!
//! ```text
//! cargo run --release -p metal-bmc-sim --example sim_bench -- [--bmcs 1000,10000] [--seconds 10] [--connections 64] [--no-tls] [--template DIR]
//! ```
//!
//! For each rack size it starts the simulator in this process and prints its resident memory
//! (idle, and after every BMC has served one HTTPS request, which creates its certificate), then
//! runs a keep-alive load generator over many BMCs (Basic auth on every request, like a
//! controller without sessions) against a dynamic resource (the first system: state overlay and
//! identity rewriting) and a static one (its Processors collection). Client and simulator share the
//! machine's cores, so the request rates are lower bounds.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use metal_bmc_sim::{BmcInfo, GroupSpec, RackSpec, Simulator};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

struct Args {
    template: metal_bmc_sim::TemplateSource,
    sizes: Vec<usize>,
    seconds: u64,
    connections: usize,
    tls: bool,
}

fn args() -> Args {
    let mut a = Args {
        template: metal_bmc_sim::TemplateSource::default(),
        sizes: vec![1000, 10_000],
        seconds: 10,
        connections: 64,
        tls: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--bmcs" => {
                a.sizes = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect()
            }
            "--seconds" => a.seconds = it.next().and_then(|s| s.parse().ok()).unwrap_or(10),
            "--connections" => a.connections = it.next().and_then(|s| s.parse().ok()).unwrap_or(64),
            "--no-tls" => a.tls = false,
            "--template" => {
                a.template = metal_bmc_sim::TemplateSource::parse(&it.next().unwrap_or_default())
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    host: String,
    auth: String,
}

async fn connect(b: &BmcInfo, tls: Option<&tokio_rustls::TlsConnector>) -> Conn {
    let tcp = tokio::net::TcpStream::connect((b.ip, b.port))
        .await
        .expect("connect");
    tcp.set_nodelay(true).ok();
    let sender = match tls {
        Some(c) => {
            let s = c
                .connect(
                    ServerName::IpAddress(std::net::IpAddr::V4(b.ip).into()),
                    tcp,
                )
                .await
                .expect("tls");
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            sender
        }
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            sender
        }
    };
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.username, b.password));
    Conn {
        sender,
        host: format!("{}:{}", b.ip, b.port),
        auth: format!("Basic {auth}"),
    }
}

async fn get(c: &mut Conn, path: &str) -> bool {
    if c.sender.ready().await.is_err() {
        return false;
    }
    let req = Request::get(path)
        .header("host", &c.host)
        .header("authorization", &c.auth)
        .body(Empty::new())
        .expect("request");
    match c.sender.send_request(req).await {
        Ok(r) => {
            let ok = r.status().is_success();
            ok && r.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

fn connector(pem: Option<&str>) -> Option<tokio_rustls::TlsConnector> {
    let pem = pem?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).ok()?)
        .ok()?;
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

async fn load(
    bmcs: &[BmcInfo],
    tls: Option<&tokio_rustls::TlsConnector>,
    path: &str,
    conns: usize,
    secs: u64,
) -> (f64, Duration, Duration) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let b = bmcs[i * bmcs.len() / conns].clone();
        let tls = tls.cloned();
        let (ok, failed) = (ok.clone(), failed.clone());
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&b, tls.as_ref()).await;
            let mut lat = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let t = Instant::now();
                if get(&mut c, &path).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                    lat.push(t.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    c = connect(&b, tls.as_ref()).await;
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let n = ok.load(Ordering::Relaxed);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    (n as f64 / secs as f64, pct(0.5), pct(0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    println!(
        "metal-bmc-sim bench: template {}, {} connections, {} s per run, TLS {}, {} CPUs",
        a.template,
        a.connections,
        a.seconds,
        a.tls,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut rows = Vec::new();
    for (n, &size) in a.sizes.iter().enumerate() {
        let base = rss_mib();
        let spec = RackSpec {
            base_address: Ipv4Addr::new(127, 50 + n as u8, 0, 1),
            port: 0,
            tls: a.tls,
            groups: vec![GroupSpec {
                count: size,
                template: a.template.clone(),
                password: Some("bench-password".into()),
                ..GroupSpec::default()
            }],
            ..RackSpec::default()
        };
        let t = Instant::now();
        let sim = Simulator::start(spec).await.expect("start");
        let started = t.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let idle = rss_mib() - base;
        let bmcs = sim.bmcs();
        let tls = connector(sim.ca_pem());
        let system = bmcs[0].systems[0].path.clone();
        let processors = format!("{system}/Processors");
        // One request to every BMC (creates its TLS certificate), 32 at a time.
        let t = Instant::now();
        let chunks: Vec<Vec<BmcInfo>> = bmcs
            .chunks(bmcs.len().div_ceil(32))
            .map(|c| c.to_vec())
            .collect();
        let mut tasks = Vec::new();
        for chunk in chunks {
            let tls = tls.clone();
            let system = system.clone();
            tasks.push(tokio::spawn(async move {
                for b in chunk {
                    let mut c = connect(&b, tls.as_ref()).await;
                    assert!(get(&mut c, &system).await);
                }
            }));
        }
        for t in tasks {
            t.await.expect("touch");
        }
        let touched = t.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let warm = rss_mib() - base;
        let (rps_dyn, p50_dyn, p99_dyn) =
            load(&bmcs, tls.as_ref(), &system, a.connections, a.seconds).await;
        let (rps_static, p50_s, p99_s) =
            load(&bmcs, tls.as_ref(), &processors, a.connections, a.seconds).await;
        println!(
            "\n{size} BMCs: started in {started:.2?}; every BMC served one request in {touched:.2?}"
        );
        println!(
            "  RSS idle {idle:.1} MiB ({:.1} KiB/BMC); after one request each {warm:.1} MiB ({:.1} KiB/BMC)",
            idle * 1024.0 / size as f64,
            warm * 1024.0 / size as f64
        );
        println!("  GET {system:<40} {rps_dyn:>8.0} req/s  p50 {p50_dyn:.2?}  p99 {p99_dyn:.2?}");
        println!(
            "  GET {processors:<40} {rps_static:>8.0} req/s  p50 {p50_s:.2?}  p99 {p99_s:.2?}"
        );
        rows.push((size, idle, warm, rps_dyn, rps_static));
        sim.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!(
        "\n| BMCs | RSS idle (MiB) | RSS after 1 req/BMC (MiB) | GET system (req/s) | GET its Processors (req/s) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (size, idle, warm, d, s) in rows {
        println!("| {size} | {idle:.1} | {warm:.1} | {d:.0} | {s:.0} |");
    }
}
