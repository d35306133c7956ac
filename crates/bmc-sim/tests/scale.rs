//! A thousand BMCs in one process.

mod common;

use common::Client;
use metal_bmc_sim::Simulator;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bmcs_start_and_answer() {
    let before = rss_kib();
    let mut spec = common::spec("127.34.0.1", 1000);
    spec.tls = true;
    let t = std::time::Instant::now();
    let sim = Simulator::start(spec).await.unwrap();
    let started = t.elapsed();
    let bmcs = sim.bmcs();
    assert_eq!(bmcs.len(), 1000);
    assert_eq!(bmcs[999].ip.to_string(), "127.34.3.238");
    // Every BMC listens on its own address, same port.
    for b in &bmcs {
        assert_eq!(b.port, sim.port());
        tokio::net::TcpStream::connect((b.ip, b.port))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.address));
    }
    // A sample answers Redfish over TLS with its own identity.
    let mut serials = std::collections::HashSet::new();
    for b in bmcs.iter().step_by(50).chain(std::iter::once(&bmcs[999])) {
        let c = Client::for_bmc(b);
        let sys = c.get_json("/redfish/v1/Systems/1").await;
        assert_eq!(sys["SerialNumber"].as_str(), b.systems[0].serial.as_deref());
        assert!(serials.insert(sys["SerialNumber"].as_str().unwrap().to_string()));
    }
    if let (Some(a), Some(b)) = (before, rss_kib()) {
        eprintln!(
            "1,000 BMCs started in {started:?}; RSS grew by {} KiB ({} bytes per BMC, debug build)",
            b.saturating_sub(a),
            b.saturating_sub(a) * 1024 / 1000
        );
    }
    sim.shutdown().await;
    // Shutting down releases every address: a new simulator can take the same range at once.
    let again = Simulator::start(common::spec("127.34.0.1", 1000))
        .await
        .unwrap();
    again.shutdown().await;
}
