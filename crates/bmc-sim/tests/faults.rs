//! Fault injection knobs and the admin API.

mod common;

use std::time::{Duration, Instant};

use common::{Auth, Client, is_reset, refused, spec, wait_until};
use http::{Method, StatusCode};
use metal_bmc_sim::{Knobs, Outage, OutageMode, Simulator};
use serde_json::json;

const SYS: &str = "/redfish/v1/Systems/1";

#[tokio::test]
async fn latency_with_jitter() {
    let sim = Simulator::start(spec("127.32.1.1", 2)).await.unwrap();
    sim.set_knobs(
        0,
        Knobs {
            latency_ms: 1000,
            jitter_ms: 100,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let slow = Client::for_bmc(&sim.bmcs()[0]);
    let fast = Client::for_bmc(&sim.bmcs()[1]);
    let t = Instant::now();
    assert_eq!(slow.get(SYS).await.status, StatusCode::OK);
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(1000) && e < Duration::from_millis(5000),
        "{e:?}"
    );
    let t = Instant::now();
    assert_eq!(fast.get(SYS).await.status, StatusCode::OK);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "other BMCs keep their own knobs"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_hangs_and_resets() {
    let sim = Simulator::start(spec("127.32.2.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);

    sim.set_knobs(
        0,
        Knobs {
            error_rate: 1.0,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        let r = c.get(SYS).await;
        assert!(
            r.status == StatusCode::INTERNAL_SERVER_ERROR
                || r.status == StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(!r.message_ids().is_empty());
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(r.header("retry-after").is_some());
        }
        seen.insert(r.status);
    }
    assert_eq!(seen.len(), 2, "both 500 and 503 occur");

    sim.set_knobs(
        0,
        Knobs {
            hang_rate: 1.0,
            hang_ms: 400,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let t = Instant::now();
    let r = c.send(Method::GET, SYS, None, &[]).await;
    assert!(r.is_err(), "a hung request gets no answer: {r:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    sim.set_knobs(
        0,
        Knobs {
            reset_rate: 1.0,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let e = c.send(Method::GET, SYS, None, &[]).await.unwrap_err();
    assert!(is_reset(&e), "expected a connection reset, got {e:?}");

    sim.set_knobs(0, common::fast_knobs()).unwrap();
    assert_eq!(c.get(SYS).await.status, StatusCode::OK);
    let m = sim.metrics_text();
    for kind in ["error", "hang", "reset"] {
        assert!(
            m.contains(&format!("bmc_sim_faults_injected_total{{kind=\"{kind}\"}}")),
            "{m}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn outage_windows() {
    let sim = Simulator::start(spec("127.32.3.1", 1)).await.unwrap();
    let info = sim.bmcs()[0].clone();
    let c = Client::for_bmc(&info);

    sim.outage(
        0,
        Outage {
            mode: OutageMode::Unavailable,
            start_after_ms: 0,
            duration_ms: 600,
        },
    )
    .unwrap();
    let r = c.get(SYS).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.message_ids(), ["ServiceTemporarilyUnavailable"]);
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get(SYS).await.status == StatusCode::OK
        })
        .await
    );

    let knobs = Knobs {
        outage: Some(Outage {
            mode: OutageMode::Refuse,
            start_after_ms: 1000,
            duration_ms: 500,
        }),
        ..common::fast_knobs()
    };
    sim.set_knobs(0, knobs.clone()).unwrap();
    assert_eq!(
        c.get(SYS).await.status,
        StatusCode::OK,
        "the window has not started"
    );
    assert!(
        wait_until(Duration::from_secs(6), || async {
            refused(info.ip, info.port).await
        })
        .await
    );
    assert!(!sim.is_up(0).unwrap());
    assert!(
        wait_until(Duration::from_secs(6), || async {
            !refused(info.ip, info.port).await
        })
        .await
    );
    // Setting the same knobs again does not restart the window.
    sim.set_knobs(0, knobs).unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(c.get(SYS).await.status, StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn open_connections_are_closed_when_the_bmc_goes_down() {
    let sim = Simulator::start(spec("127.32.4.1", 1)).await.unwrap();
    let info = sim.bmcs()[0].clone();
    sim.set_knobs(
        0,
        Knobs {
            hang_rate: 1.0,
            hang_ms: 10_000,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let c = Client::for_bmc(&info);
    let pending = tokio::spawn(async move { c.send(Method::GET, SYS, None, &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    sim.outage(
        0,
        Outage {
            mode: OutageMode::Refuse,
            start_after_ms: 0,
            duration_ms: 500,
        },
    )
    .unwrap();
    let r = pending.await.unwrap();
    assert!(r.is_err());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "dropped at the outage, not after hang_ms"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_mode() {
    let sim = Simulator::start(spec("127.32.5.1", 1)).await.unwrap();
    let info = sim.bmcs()[0].clone();
    let c = Client::for_bmc(&info);
    sim.set_knobs(
        0,
        Knobs {
            reject_auth: true,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    assert_eq!(c.get(SYS).await.status, StatusCode::UNAUTHORIZED);
    let r = c
        .with_auth(Auth::None)
        .post(
            "/redfish/v1/SessionService/Sessions",
            json!({"UserName": info.username, "Password": info.password}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.with_auth(Auth::None).get("/redfish/v1/").await.status,
        StatusCode::OK,
        "the root stays public"
    );
    sim.set_knobs(0, common::fast_knobs()).unwrap();
    assert_eq!(c.get(SYS).await.status, StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn refuses_to_power_off() {
    let sim = Simulator::start(spec("127.32.6.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    c.reset(SYS, "On").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "On"
        })
        .await
    );
    sim.set_knobs(
        0,
        Knobs {
            refuse_power_off: true,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    c.reset(SYS, "ForceOff").await;
    c.reset(SYS, "GracefulShutdown").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get_json(SYS).await["PowerState"], "On");
    sim.set_knobs(0, common::fast_knobs()).unwrap();
    c.reset(SYS, "ForceOff").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "Off"
        })
        .await
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_power_transitions() {
    let sim = Simulator::start(spec("127.32.7.1", 1)).await.unwrap();
    sim.set_knobs(
        0,
        Knobs {
            power_delay_ms: 800,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let t = Instant::now();
    c.reset(SYS, "On").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "On"
        })
        .await
    );
    assert!(
        t.elapsed() >= Duration::from_millis(750),
        "{:?}",
        t.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_api() {
    let mut s = spec("127.32.8.1", 3);
    s.admin_address = Some("127.32.8.250:0".parse().unwrap());
    s.groups[0].password = None;
    let sim = Simulator::start(s).await.unwrap();
    let admin = Client::plain(sim.admin_addr().unwrap());
    let bmcs = sim.bmcs();
    assert_ne!(
        bmcs[0].password, bmcs[1].password,
        "generated passwords differ per BMC"
    );

    assert_eq!(admin.get("/healthz").await.status, StatusCode::OK);
    let list = admin.get("/bmcs").await;
    let text = String::from_utf8_lossy(&list.body).to_string();
    for b in &bmcs {
        assert!(
            !text.contains(&b.password),
            "passwords never leave through the admin API"
        );
    }
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[1]["address"].as_str(), Some(bmcs[1].address.as_str()));
    assert_eq!(list[1]["username"], "admin");
    assert!(list[1].get("password").is_none());
    assert_eq!(
        list[1]["systems"][0]["uuid"].as_str(),
        bmcs[1].systems[0].uuid.as_deref()
    );
    assert_eq!(admin.get("/bmcs/2").await.json()["index"], 2);
    assert_eq!(admin.get("/bmcs/9").await.status, StatusCode::NOT_FOUND);

    let r = admin
        .patch(
            "/bmcs/1/knobs",
            json!({"latency_ms": 7, "power_delay_ms": 50}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(sim.knobs(1).unwrap().latency_ms, 7);
    assert_eq!(
        sim.knobs(1).unwrap().task_duration_ms,
        common::fast_knobs().task_duration_ms,
        "PATCH merges"
    );
    assert_eq!(admin.get("/bmcs/1/knobs").await.json()["latency_ms"], 7);
    assert_eq!(
        admin
            .patch("/bmcs/1/knobs", json!({"error_rate": 3}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin
            .patch("/bmcs/1/knobs", json!({"nonsense": 3}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = admin
        .send(
            Method::PUT,
            "/bmcs/1/knobs",
            Some(json!({"jitter_ms": 1})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(sim.knobs(1).unwrap().latency_ms, 0, "PUT replaces");
    assert_eq!(
        admin
            .patch("/knobs", json!({"refuse_power_off": true}))
            .await
            .status,
        StatusCode::OK
    );
    assert!((0..3).all(|i| sim.knobs(i).unwrap().refuse_power_off));

    let c = Client::for_bmc(&bmcs[0]);
    for _ in 0..3 {
        c.get(SYS).await;
    }
    c.patch(SYS, json!({"IndicatorLED": "Lit"})).await;
    let counts = admin.get("/bmcs/0/requests").await.json();
    assert_eq!(counts["by_request"]["GET /redfish/v1/Systems/1"], 3);
    assert_eq!(counts["by_request"]["PATCH /redfish/v1/Systems/1"], 1);
    assert_eq!(counts["total"], 4);
    assert_eq!(sim.request_counts(0).unwrap().get("GET", SYS), 3);
    assert_eq!(sim.request_counts(0).unwrap().by_method("PATCH"), 1);
    assert_eq!(
        admin.delete("/bmcs/0/requests").await.status,
        StatusCode::OK
    );
    assert_eq!(sim.request_counts(0).unwrap().total, 0);

    let st = admin.get("/bmcs/0/systems").await.json();
    assert_eq!(st[0]["id"], "1");
    assert_eq!(st[0]["power_state"], "Off");
    assert_eq!(st[0]["bios_version"], "2.4.1");
    assert_eq!(st[0]["bmc_version"], "1.12.0");
    assert!(st[0]["boot_history"].as_array().unwrap().is_empty());
    assert_eq!(
        admin.get("/bmcs/0/systems/1").await.json()["boot"]["enabled"],
        "Disabled"
    );
    assert_eq!(
        admin.get("/bmcs/0/systems/7").await.status,
        StatusCode::NOT_FOUND
    );

    let r = admin
        .post(
            "/bmcs/2/outage",
            json!({"mode": "unavailable", "duration_ms": 5000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        Client::for_bmc(&bmcs[2]).get(SYS).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let m = admin.get("/metrics").await;
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8_lossy(&m.body).to_string();
    assert!(text.contains("bmc_sim_bmcs 3"), "{text}");
    assert!(
        text.contains("bmc_sim_requests_total{method=\"GET\",code=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("bmc_sim_requests_total{method=\"GET\",code=\"503\"} 1"),
        "{text}"
    );
    assert!(text.contains("bmc_sim_active_sessions 0"));
    assert!(text.trim_end().ends_with("# EOF"));
    let ca = admin.get("/ca.pem").await;
    assert_eq!(
        ca.status,
        StatusCode::NOT_FOUND,
        "plain HTTP rack has no CA"
    );
    assert_eq!(admin.get("/nope").await.status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}
