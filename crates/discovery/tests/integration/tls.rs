//! The probe registry over HTTPS (`--registry-tls-cert-file`): the agent's token never crosses
//! the network in clear text, and a wrong token is still refused.

use http::Method;
use metal_discovery::DiscoveryMetrics;
use testenv::tls::{https_request, loopback_tls, plain_get};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_speaks_https_only_and_still_checks_the_token() {
    let (client, ns) = testenv::setup("disc-tls").await;
    let dir = tempfile::tempdir().unwrap();
    let tls = loopback_tls(dir.path());
    let acceptor = runtime::tls::acceptor(&tls.cert, &tls.key).expect("acceptor");
    let metrics = DiscoveryMetrics::new(&runtime::metrics::Metrics::new());
    let registry = metal_discovery::registry::Registry::new(client, ns.name.clone(), metrics);
    let stop = CancellationToken::new();
    let (addr, _) = registry
        .serve("127.0.0.1:0".parse().unwrap(), Some(acceptor), stop.clone())
        .await
        .expect("registry");
    let body = serde_json::to_vec(&serde_json::json!({
        "systemUUID": "00000000-0000-0000-0000-000000000001", "data": {},
    }))
    .unwrap();
    let (status, answer) = https_request(
        addr.port(),
        &tls.ca_pem,
        Method::POST,
        "/register",
        &[
            ("authorization", "Bearer not-the-token"),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
    .expect("https");
    assert!(status == 401 || status == 403, "{status}");
    assert!(!String::from_utf8_lossy(&answer).contains("not-the-token"));
    // The probe agent's own client over HTTPS: with the CA it reaches the registry (which
    // refuses the token); with another CA it refuses the registry at once.
    let url = format!("https://127.0.0.1:{}", addr.port());
    let report = metal_probe::Report::default();
    let opts = |ca: &str| metal_probe::post::PostOptions {
        max_attempts: 1,
        ca_pem: Some(ca.as_bytes().to_vec()),
        ..Default::default()
    };
    let e = metal_probe::post::post_with(&opts(&tls.ca_pem), &url, "uuid-x", "wrong", &report)
        .await
        .unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    let other = loopback_tls(tempfile::tempdir().unwrap().path());
    let e = metal_probe::post::post_with(&opts(&other.ca_pem), &url, "uuid-x", "wrong", &report)
        .await
        .unwrap_err();
    assert!(matches!(e, metal_probe::post::PostError::Tls(_)), "{e}");
    let no_ca = metal_probe::post::PostOptions::default();
    let e = metal_probe::post::post_with(&no_ca, &url, "uuid-x", "wrong", &report)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs a CA bundle"), "{e}");

    let plain = plain_get(addr.port(), "/register").await;
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP answered: {plain:?}"
    );
    stop.cancel();
}
