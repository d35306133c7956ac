//! Transport robustness: every fault gives a clear error class, no panic, and nothing outlives its
//! deadline.

use std::time::{Duration, Instant};

use http::Method;
use redfish::{ClientOptions, ErrorClass, ErrorKind, RetryPolicy};
use serde_json::Value;

use super::support::{FaultKind, ServerOptions, TreeServer};
use super::*;

const SYSTEMS: &str = "/redfish/v1/Systems";

fn no_retry() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy::none(),
        ..fast()
    }
}

#[tokio::test]
async fn recovers_from_503_honouring_retry_after() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    c.service_root().await.unwrap();
    s.fault(
        SYSTEMS,
        FaultKind::Status {
            status: 503,
            retry_after: Some(1),
            body: None,
        },
        Some(1),
    );
    let t = Instant::now();
    let systems = c.get::<Value>(SYSTEMS).await.unwrap();
    assert!(systems["Members"].is_array());
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "Retry-After not honoured: {:?}",
        t.elapsed()
    );
    assert_eq!(s.requests(&Method::GET, SYSTEMS).len(), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_fails_fast_as_busy() {
    let s = serve(DMTF);
    let c = client(
        &s,
        ClientOptions {
            operation_timeout: Duration::from_secs(5),
            ..fast()
        },
    );
    s.fault(
        SYSTEMS,
        FaultKind::Status {
            status: 503,
            retry_after: Some(30),
            body: None,
        },
        None,
    );
    let t = Instant::now();
    let e = c.get::<Value>(SYSTEMS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Busy, "{e}");
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(e.to_string().contains("GET /redfish/v1/Systems"), "{e}");
}

#[tokio::test]
async fn actions_are_not_retried_on_503() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    s.fault_method(
        Method::POST,
        "/redfish/v1/Systems/437XR1138R2/Actions",
        FaultKind::Status {
            status: 503,
            retry_after: Some(0),
            body: None,
        },
        None,
    );
    let e = c.force_off(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Busy);
    assert_eq!(
        s.requests(&Method::POST, "/redfish/v1/Systems/437XR1138R2/Actions")
            .len(),
        1,
        "an action was repeated"
    );
}

#[tokio::test]
async fn hang_times_out_and_leaves_nothing_running() {
    let s = serve(DMTF);
    let c = client(
        &s,
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..no_retry()
        },
    );
    c.service_root().await.unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    s.fault(SYSTEMS, FaultKind::Hang, None);
    let t = Instant::now();
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Timeout, "{e}");
    assert!(matches!(e.kind(), ErrorKind::RequestTimeout(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The connection driver of the hung request is gone: no task outlives the timeout.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Only the drivers of idle pooled connections may remain.
    assert_eq!(
        metrics.num_alive_tasks(),
        c.idle_connections(),
        "a task outlived the request timeout"
    );
    // The hung connection is not reused: the next call works on a fresh one.
    s.clear_faults();
    assert!(!c.systems().await.unwrap().is_empty());
}

#[tokio::test]
async fn operation_deadline_bounds_everything() {
    let s = serve(DMTF);
    let c = client(
        &s,
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_millis(400),
            ..fast()
        },
    );
    // The Manager is read beside the (expanded) System: one of two requests in flight hangs.
    s.fault("/redfish/v1/Managers/BMC", FaultKind::Hang, None);
    let metrics = tokio::runtime::Handle::current().metrics();
    let t = Instant::now();
    let e = c.inventory(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Timeout, "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        c.idle_connections(),
        "a request outlived the operation deadline"
    );
    assert!(c.idle_connections() <= 2);
}

#[tokio::test]
async fn slow_body_within_the_timeout_is_fine_beyond_it_times_out() {
    let s = serve(DMTF);
    s.fault(
        DMTF_SYS,
        FaultKind::SlowBody {
            chunk: 512,
            delay: Duration::from_millis(20),
        },
        Some(1),
    );
    let c = client(&s, fast());
    let sys = c.system(DMTF_SYS).await.unwrap();
    assert_eq!(sys.serial_number.as_deref(), Some("437XR1138R2"));
    s.fault(
        DMTF_SYS,
        FaultKind::SlowBody {
            chunk: 64,
            delay: Duration::from_millis(50),
        },
        None,
    );
    let c = client(
        &s,
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..no_retry()
        },
    );
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Timeout, "{e}");
}

#[tokio::test]
async fn malformed_html_wrong_type_truncated_are_bad_responses() {
    let s = serve(DMTF);
    let c = client(&s, no_retry());
    c.service_root().await.unwrap();

    s.fault(DMTF_SYS, FaultKind::MalformedJson, Some(1));
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadResponse, "{e}");
    assert!(matches!(e.kind(), ErrorKind::InvalidJson(_)), "{e:?}");

    s.fault(DMTF_SYS, FaultKind::HtmlPage { status: 200 }, Some(1));
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadResponse, "{e}");
    assert!(
        matches!(e.kind(), ErrorKind::ContentType(t) if t.contains("html")),
        "{e:?}"
    );

    s.fault(DMTF_SYS, FaultKind::HtmlPage { status: 503 }, Some(1));
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Busy, "{e}");
    assert_eq!(
        e.redfish_message(),
        Some("HTML error page: Service Unavailable"),
        "{e}"
    );

    s.fault(DMTF_SYS, FaultKind::WrongContentType, Some(1));
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadResponse, "{e}");
    assert!(e.to_string().contains("text/plain"), "{e}");

    s.fault(DMTF_SYS, FaultKind::Truncated, Some(1));
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadResponse, "{e}");
    assert!(matches!(e.kind(), ErrorKind::Truncated(_)), "{e:?}");

    // And the client still works afterwards.
    assert_eq!(
        c.system(DMTF_SYS).await.unwrap().model.as_deref(),
        Some("3500")
    );
}

#[tokio::test]
async fn truncated_reads_are_retried() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    s.fault(DMTF_SYS, FaultKind::Truncated, Some(1));
    assert_eq!(
        c.system(DMTF_SYS).await.unwrap().model.as_deref(),
        Some("3500")
    );
}

#[tokio::test]
async fn ten_mib_body_is_read_and_a_body_over_the_cap_is_refused() {
    let s = serve(DMTF);
    let c = client(&s, no_retry());
    s.fault(
        "/redfish/v1/Chassis",
        FaultKind::Large {
            bytes: 10 * 1024 * 1024,
        },
        Some(1),
    );
    let v: Value = c.get("/redfish/v1/Chassis").await.unwrap();
    assert_eq!(v["Pad"].as_str().unwrap().len(), 10 * 1024 * 1024);

    s.fault(
        "/redfish/v1/Chassis",
        FaultKind::Large {
            bytes: 17 * 1024 * 1024,
        },
        Some(1),
    );
    let e = c.get::<Value>("/redfish/v1/Chassis").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadResponse, "{e}");
    assert!(
        matches!(e.kind(), ErrorKind::BodyTooLarge { limit } if *limit == 16 * 1024 * 1024),
        "{e:?}"
    );

    let small = client(
        &s,
        ClientOptions {
            max_body_bytes: 4096,
            ..no_retry()
        },
    );
    let e = small.inventory(DMTF_SYS).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::BodyTooLarge { limit: 4096 }),
        "{e:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_host_but_loops_and_other_hosts_fail() {
    let s = serve(DMTF);
    let c = client(&s, no_retry());
    s.fault(
        "/redfish/v1/Systems/node-0",
        FaultKind::Redirect {
            to: DMTF_SYS.into(),
        },
        None,
    );
    let sys = c.system("/redfish/v1/Systems/node-0").await.unwrap();
    assert_eq!(sys.id.as_deref(), Some("437XR1138R2"));

    s.fault("/redfish/v1/Systems/loop", FaultKind::RedirectLoop, None);
    let e = c.system("/redfish/v1/Systems/loop").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadResponse);
    assert!(matches!(e.kind(), ErrorKind::TooManyRedirects(5)), "{e:?}");

    s.fault(
        "/redfish/v1/Systems/away",
        FaultKind::Redirect {
            to: "https://evil.example/redfish/v1/Systems/1".into(),
        },
        None,
    );
    let e = c.system("/redfish/v1/Systems/away").await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::CrossHostRedirect(_)), "{e:?}");
    assert!(s.log().iter().all(|l| !l.path.contains("evil")));
}

#[tokio::test]
async fn connection_resets_are_unreachable_and_actions_are_sent_once() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    c.service_root().await.unwrap();
    s.fault(DMTF_SYS, FaultKind::Reset, Some(1));
    // A read is retried on a new connection.
    assert!(c.system(DMTF_SYS).await.is_ok());
    s.fault(DMTF_SYS, FaultKind::Reset, None);
    let e = c.system(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable, "{e}");
    s.clear_faults();
    s.clear_log();
    s.fault_method(
        Method::POST,
        "/redfish/v1/Systems/437XR1138R2/Actions",
        FaultKind::Reset,
        None,
    );
    let e = c.force_off(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable, "{e}");
    assert_eq!(
        s.requests(&Method::POST, "/redfish/v1/Systems/437XR1138R2/Actions")
            .len(),
        1
    );
}

#[tokio::test]
async fn refused_connections_are_unreachable() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let ep = redfish::BmcEndpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let c = redfish::Client::new(ep, redfish::Credentials::new("a", "b"), fast()).unwrap();
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable, "{e}");
    assert!(matches!(e.kind(), ErrorKind::Connect(_)));
    assert_eq!(
        c.request_count(),
        3,
        "connect failures are retried (nothing was sent)"
    );
}

#[tokio::test]
async fn concurrency_is_bounded_per_bmc_and_connections_are_reused() {
    let s = TreeServer::start(tree(SMC), ServerOptions::default());
    s.fault(
        "/redfish/v1/Systems/1/Memory/",
        FaultKind::Delay {
            delay: Duration::from_millis(15),
        },
        None,
    );
    let c = client(
        &s,
        ClientOptions {
            use_expand: false,
            ..fast()
        },
    );
    let inv = c.inventory(SMC_SYS).await.unwrap();
    assert_eq!(inv.dimms.len(), 32);
    assert_eq!(
        s.max_in_flight(),
        2,
        "the per-BMC bound (2) is not used or exceeded"
    );
    assert!(
        s.total_connections() <= 2,
        "connections {}",
        s.total_connections()
    );

    let s = TreeServer::start(tree(SMC), ServerOptions::default());
    s.fault(
        "/redfish/v1/Systems/1/Memory/",
        FaultKind::Delay {
            delay: Duration::from_millis(15),
        },
        None,
    );
    let c = client(
        &s,
        ClientOptions {
            use_expand: false,
            max_in_flight: 5,
            ..fast()
        },
    );
    c.inventory(SMC_SYS).await.unwrap();
    assert!(
        s.max_in_flight() <= 5 && s.max_in_flight() > 2,
        "max in flight {}",
        s.max_in_flight()
    );
}

#[tokio::test]
async fn observer_sees_every_request_with_templates() {
    use std::sync::{Arc, Mutex};
    let s = serve(DELL);
    type Seen = Vec<(String, String, Option<u16>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = seen.clone();
    let obs = move |e: &redfish::RequestEvent<'_>| {
        sink.lock()
            .unwrap()
            .push((e.method.to_string(), e.path_template.to_owned(), e.status));
    };
    let c = client(
        &s,
        ClientOptions {
            observer: Some(Arc::new(obs)),
            ..fast()
        },
    );
    let inv = c.inventory(DELL_SYS).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, c.request_count());
    assert_eq!(seen.len() as u32, inv.requests);
    assert!(
        seen.iter().any(|(m, p, st)| m == "GET"
            && p == "/redfish/v1/Systems/{id}/Processors"
            && *st == Some(200)),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(_, p, _)| !p.contains("CPU.Socket")),
        "ids leak into templates: {seen:?}"
    );
}

/// An idle pooled connection is closed when its idle timeout passes, not at the next request
/// to that BMC (which may come minutes later): its socket and buffers are given back.
#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let s = serve(DMTF);
    let c = client(
        &s,
        ClientOptions {
            idle_timeout: Duration::from_millis(300),
            ..no_retry()
        },
    );
    c.service_root().await.unwrap();
    assert_eq!(c.idle_connections(), 1);
    // Reused while fresh.
    c.systems().await.unwrap();
    assert_eq!(
        s.total_connections(),
        1,
        "the fresh idle connection is reused"
    );
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.open_connections(),
        0,
        "idle connection closed by the client"
    );
    assert_eq!(c.idle_connections(), 0);
    assert_eq!(metrics.num_alive_tasks(), 0, "no driver task left");
    // The next request opens a new connection.
    c.systems().await.unwrap();
    assert_eq!(s.total_connections(), 2);
}
