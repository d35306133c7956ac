//! The admin server over real HTTP: `/metrics`, `/healthz` and `/readyz` as documented.

use metal_runtime::admin::{AdminState, serve};
use metal_runtime::metrics::ReconcileMetrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let (head, body) = buf.split_once("\r\n\r\n").expect("http response");
    let code = head[9..12].parse().expect("status");
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (code, ctype, body.to_string())
}

#[tokio::test]
async fn endpoints_answer_as_documented() {
    let state = AdminState::default();
    let rm = ReconcileMetrics::new(&state.metrics, "test");
    rm.start("Server").failure("Conflict");
    let gate = state.readiness.gate("server-cache");
    let shutdown = CancellationToken::new();
    let (addr, task) = serve(
        "127.0.0.1:0".parse().expect("addr"),
        state.clone(),
        shutdown.clone(),
    )
    .await
    .expect("serve");

    let (code, _, body) = get(addr, "/readyz").await;
    assert_eq!((code, body.as_str()), (503, "not ready: server-cache\n"));
    gate.ready();
    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert_eq!(get(addr, "/healthz").await.2, "ok\n");

    let (code, ctype, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(
        body.contains(
            r#"metal_reconcile_errors_total{controller="test",kind="Server",reason="Conflict"} 1"#
        ),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"));

    state.health.fail("fatal");
    assert_eq!(get(addr, "/healthz").await.0, 503);
    assert_eq!(get(addr, "/other").await.0, 404);

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(2), task)
        .await
        .expect("server stops on shutdown")
        .expect("join");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}
