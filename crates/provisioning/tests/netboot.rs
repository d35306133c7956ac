//! End to end through the simulated firmware: a claimed server network-boots its own
//! configuration (the simulator records the script and ignition it fetched), other machines get
//! nothing of it, and the in-band discovery boot closes the loop — the simulator fetches the probe
//! image's script and ignition and posts a probe report, with the token from the ignition, to
//! the registry named on the kernel command line.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::serverbootconfiguration::ServerBootConfiguration;
use bytes::Bytes;
use common::{Harness, Options, TestServer, eventually, get, network_boot};
use http_body_util::{BodyExt, Full};
use kube::api::{Api, PostParams};
use metal_bmc_sim::{NetbootFirmware, PowerState};
use metal_provisioning::Listen;
use serde_json::json;

const T: Duration = Duration::from_secs(60);

/// A harness whose simulator boots from the controller's boot server.
async fn harness(
    prefix: &str,
    base: &'static str,
    count: usize,
) -> (Harness, NetbootFirmware, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let firmware = NetbootFirmware::new();
    let mut opts = Options::new(base, count);
    opts.boot_server = Some(url);
    opts.hook = Some(Arc::new(firmware.clone()));
    (Harness::new(prefix, opts).await, firmware, listener)
}

/// Plays discovery: puts the server in `state` (one provisioning leaves alone), sets PXE once
/// and powers it on.
async fn pxe_boot_as_discovery(h: &Harness, s: &TestServer, state: &str) {
    h.set_state(&s.name, state).await;
    // Discovery records its power-on with the boot window, before the BMC requests.
    h.open_boot_window(&s.name).await;
    let rf = h.redfish(s);
    let path = h.system_path(s);
    rf.set_boot_override(
        &path,
        redfish::models::BootSource::Pxe,
        redfish::BootOverride::Once,
    )
    .await
    .unwrap();
    rf.power(&path, redfish::PowerAction::On).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claimed_server_boots_its_own_configuration_and_nobody_else_gets_it() {
    let (h, _firmware, listener) = harness("prov-netboot", "127.31.60.1", 2).await;
    let (a, b) = (h.servers[0].clone(), h.servers[1].clone());
    let mut cfg = h.config();
    cfg.boot_listen = Listen::Bound(listener);
    let ctl = h.start(cfg).await;
    let base = ctl.boot_url.clone();
    h.ignition_secret(
        "a-ign",
        r#"{"ignition":{"version":"3.4.0"},"owner":"tenant-a"}"#,
    )
    .await;
    h.bind(&a, "tenant-a", "On", network_boot(Some("a-ign")))
        .await;

    let rec = eventually(
        T,
        "a's simulated network boot fetched its ignition",
        || async {
            h.system(&a)
                .netboot
                .into_iter()
                .find(|r| r.ignition.is_some())
        },
    )
    .await;
    // The chain loader, then a's script (found by its MAC and UUID), then a's ignition.
    assert_eq!(rec.fetches.len(), 3, "{:#?}", rec.fetches);
    assert_eq!(rec.fetches[0].url, format!("{base}/boot.ipxe"));
    assert_eq!(
        rec.fetches[1].url,
        format!("{base}/ipxe?mac={}&uuid={}", a.macs[0], a.uuid)
    );
    let token = common::token_of(rec.script.as_deref().expect("script"));
    assert_eq!(
        rec.fetches[2].url,
        format!("{base}/ignition/{}/{token}", a.uuid)
    );
    assert!(
        rec.fetches.iter().all(|f| f.status == 200),
        "{:#?}",
        rec.fetches
    );
    assert_eq!(
        rec.kernel.as_deref(),
        Some("http://images.example.test/vmlinuz")
    );
    assert_eq!(
        rec.initrd.as_deref(),
        Some("http://images.example.test/initrd")
    );
    assert!(
        rec.cmdline
            .as_deref()
            .unwrap()
            .contains("gl.url=http://images.example.test/root.squashfs"),
        "${{rootfs-url}} expanded by the firmware: {:?}",
        rec.cmdline
    );
    assert!(rec.ignition.as_deref().unwrap().contains("tenant-a"));
    assert_eq!(h.system(&a).power_state, PowerState::On);

    // Another machine network-boots without a configuration: the chain leads to a 404.
    // Initial is discovery's state: provisioning leaves the BMC alone.
    pxe_boot_as_discovery(&h, &b, "Initial").await;
    let rec_b = eventually(T, "b's simulated network boot", || async {
        h.system(&b)
            .netboot
            .into_iter()
            .find(|r| r.fetches.len() >= 2)
    })
    .await;
    assert_eq!(rec_b.fetches[1].status, 404);
    assert!(rec_b.script.is_none() && rec_b.ignition.is_none() && rec_b.kernel.is_none());
    // A neighbour that knows a's MAC and UUID (and b's MAC with a's UUID), asking after a's
    // boot: the window of a's power-on is used up, the ignition needs a's token. 0 bytes of a.
    for url in [
        format!("{base}/ipxe?mac={}&uuid={}", a.macs[0], a.uuid),
        format!("{base}/ipxe/{}", a.uuid),
        format!("{base}/uefi/{}", a.uuid),
        format!("{base}/ipxe?mac={}&uuid={}", b.macs[0], a.uuid),
        format!("{base}/ignition/{}", a.uuid),
        format!("{base}/ignition/{}?mac={}", a.uuid, b.macs[0]),
        format!("{base}/ignition/{}/{}", a.uuid, "A".repeat(32)),
        format!("{base}/ignition/{}/{token}", b.uuid),
    ] {
        let (s, body, _) = get(&url, None, &[]).await;
        assert_eq!(s, 404, "{url}");
        assert!(
            !body.contains("tenant-a") && !body.contains(&token),
            "{url}: {body}"
        );
    }
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

/// A registry stand-in: `POST /register` with `Authorization: Bearer <token>`.
struct TestRegistry {
    url: String,
    reports: Arc<Mutex<Vec<serde_json::Value>>>,
    rejected: Arc<Mutex<u32>>,
}

async fn test_registry(token: &'static str) -> TestRegistry {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let reports = Arc::new(Mutex::new(Vec::new()));
    let rejected = Arc::new(Mutex::new(0));
    let (r, x) = (Arc::clone(&reports), Arc::clone(&rejected));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (r, x) = (Arc::clone(&r), Arc::clone(&x));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (r, x) = (Arc::clone(&r), Arc::clone(&x));
                        async move {
                            let ok = req.uri().path() == "/register"
                                && req
                                    .headers()
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    == Some(&format!("Bearer {token}"));
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status = if ok {
                                r.lock()
                                    .unwrap()
                                    .push(serde_json::from_slice(&body).unwrap_or_default());
                                201
                            } else {
                                *x.lock().unwrap() += 1;
                                401
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestRegistry {
        url,
        reports,
        rejected,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inband_discovery_boot_posts_a_probe_report_with_the_token() {
    const TOKEN: &str = "tok-3f9a_Zq8-secret";
    let registry = test_registry(TOKEN).await;
    let (h, _firmware, listener) = harness("prov-inband", "127.31.61.1", 1).await;
    let s = h.servers[0].clone();
    let mut cfg = h.config();
    cfg.boot_listen = Listen::Bound(listener);
    let ctl = h.start(cfg).await;

    // Play discovery: Server in Discovery, PXE once and power on — here before the boot server
    // knows the configuration (as when the SBC's Ready reaches discovery before this replica's
    // cache): the chain-loader retries until it does.
    pxe_boot_as_discovery(&h, &s, "Discovery").await;
    eventually(T, "a first script request answered 404", || async {
        let rec = h.system(&s).netboot.pop()?;
        (rec.fetches.get(1)?.status == 404).then_some(())
    })
    .await;

    // Then the token Secret with the ignition, and the internal SBC.
    let ignition = json!({
        "ignition": { "version": "3.4.0" },
        "storage": { "files": [{ "path": "/etc/metal/probe-token", "mode": 384,
            "contents": { "source": format!("data:,{TOKEN}") } }] },
    })
    .to_string();
    h.ignition_secret(&format!("{}-discovery", s.name), &ignition)
        .await;
    let sbc: ServerBootConfiguration = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "ServerBootConfiguration",
        "metadata": { "name": s.name, "annotations": {
            "metal.ironcore.dev/type": "Internal", "metal.ironcore.dev/is-default-os-image": "true" } },
        "spec": {
            "serverRef": { "name": s.name },
            "image": "ghcr.io/ironcore-dev/gardenlinux:metal-probe",
            "ignitionSecretRef": { "name": format!("{}-discovery", s.name) },
            "bootArtifacts": {
                "kernelURL": "http://images.example.test/probe/vmlinuz",
                "initrdURL": "http://images.example.test/probe/initrd",
                "cmdline": format!("metal.registry={} metal.server-uuid={}", registry.url, s.uuid),
            },
        },
    }))
    .unwrap();
    Api::<ServerBootConfiguration>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &sbc)
        .await
        .unwrap();
    // provisioning points the server at it.
    eventually(T, "bootConfigurationRef → internal SBC", || async {
        let r = h.server(&s.name).await.spec.boot_configuration_ref?;
        (r.name == s.name && r.namespace == h.ns).then_some(())
    })
    .await;

    let report = eventually(T, "probe report in the registry", || async {
        registry.reports.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(*registry.rejected.lock().unwrap(), 0);
    assert_eq!(report["systemUUID"], json!(s.uuid));
    let nics = report["data"]["networkInterfaces"].as_array().unwrap();
    let macs: Vec<&str> = nics
        .iter()
        .filter_map(|n| n["macAddress"].as_str())
        .collect();
    assert!(
        macs.contains(&s.macs[0].as_str()),
        "{macs:?} vs {:?}",
        s.macs
    );
    assert!(nics.iter().all(|n| n["carrierStatus"] == json!("up")));
    assert!(
        nics[0]["ipAddresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ip| ip == "10.31.61.1"),
        "{nics:?}"
    );
    let lldp = report["data"]["lldp"].as_array().unwrap();
    assert_eq!(
        lldp[0]["neighbors"][0]["systemName"],
        json!("sim-leaf-31-61")
    );
    let rec = h.system(&s).netboot.pop().unwrap();
    let script_statuses: Vec<u16> = rec
        .fetches
        .iter()
        .filter(|f| f.url.contains("/ipxe?"))
        .map(|f| f.status)
        .collect();
    assert_eq!(script_statuses.first(), Some(&404), "{:#?}", rec.fetches);
    assert_eq!(script_statuses.last(), Some(&200), "{:#?}", rec.fetches);
    assert!(
        rec.fetches.iter().all(|f| f.url.contains("/boot.ipxe")
            || f.url.contains("/ipxe?")
            || f.url.contains("/ignition/")),
        "the chain-loader is fetched once, then only this server's script and ignition: {:#?}",
        rec.fetches
    );
    assert_eq!(
        rec.probe.as_deref(),
        Some(format!("posted to {}", registry.url).as_str())
    );
    assert_eq!(
        rec.kernel.as_deref(),
        Some("http://images.example.test/probe/vmlinuz")
    );
    // provisioning drove nothing on this BMC: discovery's state.
    assert_eq!(h.resets(&s), 1, "only the test's (discovery's) power-on");
    ctl.shutdown().await;
    h.sim.shutdown().await;
}
