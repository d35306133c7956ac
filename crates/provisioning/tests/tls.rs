//! The boot server and the metadata service over HTTPS (`--tls-cert-file`/`--tls-key-file`):
//! boot tokens never cross the network in clear text. Real control plane, real listeners.

mod common;

use std::time::Duration;

use common::{Harness, Options, eventually, network_boot};
use http::Method;
use testenv::tls::{https_request, loopback_tls, plain_get};

const T: Duration = Duration::from_secs(60);

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boot_server_and_metadata_speak_https_only_and_still_authenticate() {
    let h = Harness::new("prov-tls", Options::new("127.31.14.1", 2)).await;
    let (a, b) = (h.servers[0].clone(), h.servers[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let tls = loopback_tls(dir.path());
    let mut cfg = h.config();
    cfg.tls = Some((tls.cert.clone(), tls.key.clone()));
    cfg.metadata_listen = Some(metal_provisioning::Listen::Addr(
        "127.0.0.1:0".parse().unwrap(),
    ));
    let ctl = h.start(cfg).await;
    assert!(ctl.boot_url.starts_with("https://"), "{}", ctl.boot_url);
    let boot = port_of(&ctl.boot_url);
    let md = ctl.metadata_addr.unwrap().port();

    // The chain loader over HTTPS; plain HTTP gets no HTTP answer at all.
    let (status, body) = https_request(boot, &tls.ca_pem, Method::GET, "/boot.ipxe", &[], vec![])
        .await
        .expect("https");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("chain"));
    let plain = plain_get(boot, "/boot.ipxe").await;
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP answered: {plain:?}"
    );
    assert!(!plain_get(md, "/v1/metadata").await.starts_with(b"HTTP/"));
    // A client that does not trust the CA gets no connection.
    let other = loopback_tls(tempfile::tempdir().unwrap().path());
    assert!(
        https_request(boot, &other.ca_pem, Method::GET, "/boot.ipxe", &[], vec![])
            .await
            .is_err()
    );

    // a is claimed and boots: its script over HTTPS, once; b's ignition is not a's.
    h.ignition_secret("ign-a", r#"{"ignition":{"version":"3.4.0"},"owner":"a"}"#)
        .await;
    h.bind(&a, "ca", "Off", network_boot(Some("ign-a"))).await;
    h.open_boot_window(&a.name).await;
    let script = eventually(T, "a's script over https", || async {
        let (s, body) = https_request(
            boot,
            &tls.ca_pem,
            Method::GET,
            &format!("/ipxe/{}", a.uuid),
            &[],
            vec![],
        )
        .await
        .ok()?;
        (s == 200).then(|| String::from_utf8_lossy(&body).to_string())
    })
    .await;
    assert!(
        script.contains("https://"),
        "URLs in the script use the https base: {script}"
    );
    let token = common::token_of(&script);
    let (s, body) = https_request(
        boot,
        &tls.ca_pem,
        Method::GET,
        &format!("/ignition/{}/{token}", a.uuid),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"owner\":\"a\""));
    // b with a's token: nothing of a's.
    let (s, body) = https_request(
        boot,
        &tls.ca_pem,
        Method::GET,
        &format!("/ignition/{}/{token}", b.uuid),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(s, 404);
    assert!(!String::from_utf8_lossy(&body).contains("owner"));
}
