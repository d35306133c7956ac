//! Benchmark: Redfish requests and wall time for one full inventory of each template, with and
//! without `$expand`, on a fresh client (service root + login included) and on a warm one.
//!
//! ```text
//! cargo run -p redfish --example inventory_bench                      # against metal-bmc-sim
//! cargo run -p redfish --example inventory_bench -- --latency-ms 20   # simulated BMC latency
//! cargo run -p redfish --example inventory_bench -- --static          # against the tests' static server
//! cargo run -p redfish --example inventory_bench -- --full            # full captured trees (METAL_SHARED_DIR)
//! ```

#[path = "../tests/support/mod.rs"]
#[allow(missing_docs)]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use metal_bmc_sim::{GroupSpec, IdentityMode, Knobs, RackSpec, Simulator, TemplateSource};
use redfish::{BmcEndpoint, Client, ClientOptions, Credentials};

struct Target {
    name: String,
    url: String,
    ca_pem: Option<String>,
    username: String,
    password: String,
    system: String,
}

async fn measure(t: &Target, expand: bool) -> (u32, u32, Duration, Duration) {
    let mut ep = BmcEndpoint::parse(&t.url).expect("endpoint");
    if let Some(ca) = &t.ca_pem {
        ep = ep.with_ca_bundle_pem(ca.as_bytes()).expect("CA");
    }
    let client = Client::new(
        ep,
        Credentials::new(t.username.clone(), t.password.clone()),
        ClientOptions {
            use_expand: expand,
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let start = Instant::now();
    let cold = client.inventory(&t.system).await.expect("inventory");
    let cold_time = start.elapsed();
    let start = Instant::now();
    let warm = client.inventory(&t.system).await.expect("inventory");
    let warm_time = start.elapsed();
    let _ = client.logout().await;
    (cold.requests, warm.requests, cold_time, warm_time)
}

fn trees(full: bool) -> Vec<(String, PathBuf)> {
    let base = if full {
        support::shared_trees_dir().expect("--full needs the shared trees (METAL_SHARED_DIR)")
    } else {
        support::fixtures_dir()
    };
    [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ]
    .iter()
    .map(|t| (t.to_string(), base.join(t)))
    .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--full");
    let use_static = args.iter().any(|a| a == "--static");
    let latency_ms: u64 = args
        .iter()
        .position(|a| a == "--latency-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let mut targets = Vec::new();
    let mut _servers = Vec::new();
    let mut sim = None;
    let source;
    if use_static {
        source = "tests/support static tree server (no latency)".to_owned();
        for (name, dir) in trees(full) {
            let s = support::TreeServer::start(&dir, support::ServerOptions::default());
            let system = match name.as_str() {
                "dell-poweredge-r750" => "/redfish/v1/Systems/System.Embedded.1",
                "supermicro-sys-821ge" => "/redfish/v1/Systems/1",
                _ => "/redfish/v1/Systems/437XR1138R2",
            };
            targets.push(Target {
                name,
                url: s.url(),
                ca_pem: None,
                username: "admin".into(),
                password: support::TEST_PASSWORD.into(),
                system: system.into(),
            });
            _servers.push(s);
        }
    } else {
        source = format!("metal-bmc-sim over TLS, {latency_ms} ms latency per request");
        let knobs = Knobs {
            latency_ms,
            ..Knobs::default()
        };
        let mut groups = vec![GroupSpec {
            template: TemplateSource::default(),
            knobs: knobs.clone(),
            ..GroupSpec::default()
        }];
        let names: Vec<String> = std::iter::once("default".to_owned())
            .chain(trees(full).into_iter().map(|(n, _)| n))
            .collect();
        for (_, dir) in trees(full) {
            groups.push(GroupSpec {
                template: TemplateSource::Path(dir),
                knobs: knobs.clone(),
                ..GroupSpec::default()
            });
        }
        let spec = RackSpec {
            base_address: "127.78.0.1".parse().unwrap(),
            port: 0,
            tls: true,
            identity: IdentityMode::KeepAll,
            groups,
            ..RackSpec::default()
        };
        let handle = Simulator::start(spec).await.expect("simulator");
        for (bmc, name) in handle.bmcs().into_iter().zip(names) {
            targets.push(Target {
                name,
                url: bmc.address.clone(),
                ca_pem: bmc.ca_pem.clone(),
                username: bmc.username.clone(),
                password: bmc.password.clone(),
                system: bmc.systems[0].path.clone(),
            });
        }
        sim = Some(handle);
    }

    println!("inventory benchmark: {source}");
    println!(
        "{:<24} {:>7} {:>14} {:>14} {:>12} {:>12}",
        "template", "$expand", "requests cold", "requests warm", "time cold", "time warm"
    );
    for t in &targets {
        for expand in [true, false] {
            let (cold, warm, ct, wt) = measure(t, expand).await;
            println!(
                "{:<24} {:>7} {:>14} {:>14} {:>10.1}ms {:>10.1}ms",
                t.name,
                if expand { "yes" } else { "no" },
                cold,
                warm,
                ct.as_secs_f64() * 1e3,
                wt.as_secs_f64() * 1e3
            );
        }
    }
    if let Some(s) = sim {
        s.shutdown().await;
    }
}
