//! BMC `Ready` reasons (wrong credentials, outage) and recovery; the `graceful-restart-bmc`
//! operation.

use std::time::Duration;

use api::bmcsecret::BMCSecret;
use api::conditions;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use metal_bmc_sim::{Outage, OutageMode, TemplateSource};
use serde_json::json;

use crate::support::*;

async fn events_for(h: &Harness, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(h.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// A BMC whose BMCSecret does not exist says so; one applied right after its secret never
/// does, although the two reach discovery on separate watches (the BMC's can come first: the
/// cost test saw a MissingCredentials detour, one more status write and a Warning Event).
#[tokio::test]
async fn missing_credentials_only_when_the_secret_is_really_missing() {
    let sim = sim(rack(
        "127.62.8.1",
        vec![group(6, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("nosecret", |_| {}).await;
    let infos = sim.bmcs();
    let lonely = h.name("bmc");
    h.add_bmc_object(&lonely, &infos[0], &[]).await;
    h.wait_ready(
        &lonely,
        "False",
        "MissingCredentials",
        Duration::from_secs(30),
    )
    .await;
    h.add_secret(&lonely, &infos[0], &infos[0].password).await;
    h.wait_ready(&lonely, "True", "Connected", Duration::from_secs(30))
        .await;

    let mut together = Vec::new();
    for info in &infos[1..] {
        together.push(h.add_bmc(info, &[]).await);
    }
    for bmc in &together {
        h.wait_ready(bmc, "True", "Connected", Duration::from_secs(30))
            .await;
        let detours: Vec<_> = events_for(&h, bmc)
            .await
            .into_iter()
            .filter_map(|e| e.reason)
            .filter(|r| r != "Connected")
            .collect();
        assert!(detours.is_empty(), "{bmc}: {detours:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_then_fixed_secret() {
    let sim = sim(rack(
        "127.62.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("auth", |_| {}).await;
    let info = &sim.bmcs()[0];
    let bmc = h.add_bmc_with_password(info, "not-the-password", &[]).await;
    let b = h
        .wait_ready(
            &bmc,
            "False",
            "AuthenticationFailed",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        b.status
            .as_ref()
            .unwrap()
            .state
            .as_ref()
            .map(|s| s.as_str()),
        Some("Error")
    );
    assert!(
        h.servers().await.is_empty(),
        "no servers without a connection"
    );
    let ev = eventually(
        "AuthenticationFailed event",
        Duration::from_secs(10),
        async || {
            let evs = events_for(&h, &bmc).await;
            evs.into_iter()
                .find(|e| e.reason.as_deref() == Some("AuthenticationFailed"))
        },
    )
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert!(
        !ev.note.unwrap_or_default().contains("not-the-password"),
        "credentials never in events"
    );

    // Fixing the secret is picked up without recreating anything.
    let patch = json!({"stringData": {"password": info.password}});
    Api::<BMCSecret>::all(h.client.clone())
        .patch(&bmc, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.wait_ready(&bmc, "True", "Connected", Duration::from_secs(30))
        .await;
    h.wait_state(
        &format!("{bmc}-system-0"),
        api::server::ServerState::Available,
        Duration::from_secs(60),
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn outage_gives_connection_failed_and_recovers() {
    let sim = sim(rack(
        "127.63.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("outage", |c| {
        c.bmc_refresh_interval = Duration::from_secs(1)
    })
    .await;
    let info = &sim.bmcs()[0];
    let bmc = h.add_bmc(info, &[]).await;
    h.wait_ready(&bmc, "True", "Connected", Duration::from_secs(30))
        .await;
    sim.outage(
        0,
        Outage {
            mode: OutageMode::Refuse,
            start_after_ms: 0,
            duration_ms: 6_000,
        },
    )
    .unwrap();
    let b = h
        .wait_ready(&bmc, "False", "ConnectionFailed", Duration::from_secs(20))
        .await;
    let ready = conditions::get(&b.status.unwrap().conditions, "Ready")
        .cloned()
        .unwrap();
    assert!(!ready.message.is_empty());
    assert!(
        h.registry
            .encode()
            .contains(&format!("metal_bmc_reachable{{bmc=\"{bmc}\"}} 0"))
    );
    h.wait_ready(&bmc, "True", "Connected", Duration::from_secs(40))
        .await;
    assert!(
        h.registry
            .encode()
            .contains(&format!("metal_bmc_reachable{{bmc=\"{bmc}\"}} 1"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn graceful_restart_annotation_resets_once() {
    let sim = sim(rack(
        "127.64.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("reset", |_| {}).await;
    let info = &sim.bmcs()[0];
    let bmc = h.add_bmc(info, &[]).await;
    h.wait_ready(&bmc, "True", "Connected", Duration::from_secs(30))
        .await;
    let before = h.bmc(&bmc).await.unwrap().status.unwrap().last_reset_time;
    let reset_path = "/redfish/v1/Managers/BMC/Actions/Manager.Reset";
    assert_eq!(sim.request_counts(0).unwrap().get("POST", reset_path), 0);

    let patch = json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "graceful-restart-bmc"}}});
    Api::<api::bmc::BMC>::all(h.client.clone())
        .patch(&bmc, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // The annotation goes away once the reset was issued; the Reset condition records it.
    eventually("annotation removed", Duration::from_secs(30), async || {
        let b = h.bmc(&bmc).await.unwrap();
        let gone = b
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("metal.ironcore.dev/operation"));
        gone.then_some(())
    })
    .await;
    assert_eq!(sim.request_counts(0).unwrap().get("POST", reset_path), 1);
    let b = eventually(
        "Reset=False/ResetComplete and Ready",
        Duration::from_secs(30),
        async || {
            let b = h.bmc(&bmc).await.unwrap();
            let st = b.status.clone()?;
            let reset = conditions::get(&st.conditions, "Reset")?;
            let ok = reset.status == "False"
                && reset.reason == "ResetComplete"
                && conditions::is_true(&st.conditions, "Ready");
            ok.then_some(b)
        },
    )
    .await;
    assert_ne!(
        b.status.unwrap().last_reset_time,
        before,
        "LastResetTime moved"
    );
    let evs = events_for(&h, &bmc).await;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("UserRequested")),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("ResetIssued")),
        "{evs:?}"
    );
    // Idempotent: no second reset on later reconciles.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.request_counts(0).unwrap().get("POST", reset_path), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn ignore_operation_stops_reconciling() {
    let sim = sim(rack(
        "127.73.0.1",
        vec![group(2, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("ignore", |_| {}).await;
    let infos = sim.bmcs();
    // An ignored BMC is never contacted and gets no status or Servers.
    let ignored = h
        .add_bmc(&infos[0], &[("metal.ironcore.dev/operation", "ignore")])
        .await;
    let live = h.add_bmc(&infos[1], &[]).await;
    h.wait_ready(&live, "True", "Connected", Duration::from_secs(30))
        .await;
    let server = format!("{live}-system-0");
    h.wait_state(
        &server,
        api::server::ServerState::Available,
        Duration::from_secs(60),
    )
    .await;
    assert!(h.bmc(&ignored).await.unwrap().status.is_none());
    assert_eq!(
        sim.request_counts(0).unwrap().total,
        0,
        "the ignored BMC was never contacted"
    );
    assert!(h.server(&format!("{ignored}-system-0")).await.is_none());

    // An ignored Server is not moved, even out of a state discovery owns.
    let servers: Api<api::server::Server> = Api::all(h.client.clone());
    let ann = json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "ignore"}}});
    servers
        .patch(&server, &PatchParams::default(), &Patch::Merge(&ann))
        .await
        .unwrap();
    eventually("annotation seen", Duration::from_secs(10), async || {
        h.server(&server)
            .await
            .unwrap()
            .metadata
            .annotations
            .filter(|a| a.contains_key("metal.ironcore.dev/operation"))
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.set_state_as(
        &server,
        api::server::ServerState::Initial,
        "metal-maintenance",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.server(&server).await.unwrap().status.unwrap().state,
        Some(api::server::ServerState::Initial),
        "left alone"
    );
    // Removing the annotation resumes it.
    let un = json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": null}}});
    servers
        .patch(&server, &PatchParams::default(), &Patch::Merge(&un))
        .await
        .unwrap();
    h.wait_state(
        &server,
        api::server::ServerState::Available,
        Duration::from_secs(60),
    )
    .await;
    sim.shutdown().await;
}

/// A BMC gone longer than `--error-after` puts its Available server in Error, explained by
/// `Healthy=False/BMCUnreachable`; when the BMC is Ready again the server is rediscovered and
/// Available (Healthy=True). Before the threshold nothing happens.
#[tokio::test]
async fn a_server_whose_bmc_stays_gone_enters_error_and_recovers() {
    use api::server::ServerState;
    let sim = sim(rack(
        "127.65.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("error", |c| {
        c.bmc_refresh_interval = Duration::from_secs(1);
        c.error_after = Duration::from_secs(4);
    })
    .await;
    let bmc = h.add_bmc(&sim.bmcs()[0], &[]).await;
    let server = format!("{bmc}-system-0");
    h.wait_state(&server, ServerState::Available, Duration::from_secs(60))
        .await;
    sim.outage(
        0,
        Outage {
            mode: OutageMode::Refuse,
            start_after_ms: 0,
            duration_ms: 12_000,
        },
    )
    .unwrap();
    h.wait_ready(&bmc, "False", "ConnectionFailed", Duration::from_secs(20))
        .await;
    // Younger than the threshold: still Available.
    let s = h.server(&server).await.unwrap();
    assert_eq!(s.status.unwrap().state, Some(ServerState::Available));
    let s = h
        .wait_state(&server, ServerState::Error, Duration::from_secs(20))
        .await;
    let healthy = conditions::get(&s.status.unwrap().conditions, "Healthy")
        .cloned()
        .expect("Healthy explains the Error");
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("False", "BMCUnreachable")
    );
    assert!(
        healthy.message.contains("ConnectionFailed"),
        "{}",
        healthy.message
    );
    eventually(
        "the move to Error is an event",
        Duration::from_secs(10),
        async || {
            events_for(&h, &server)
                .await
                .iter()
                .any(|e| e.note.as_deref().is_some_and(|n| n.contains("-> Error")))
                .then_some(())
        },
    )
    .await;

    let s = h
        .wait_state(&server, ServerState::Available, Duration::from_secs(60))
        .await;
    let healthy = conditions::get(&s.status.unwrap().conditions, "Healthy")
        .cloned()
        .unwrap();
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("True", "Healthy")
    );
    sim.shutdown().await;
}

/// Automatic recovery: a BMC whose Redfish service is wedged (Systems answer 500) for
/// `--bmc-auto-reset-after` gets one Manager.Reset (recorded first), comes back Ready; wedged
/// again within the window, the limit (1) holds: no second reset, a rate-limit event.
#[tokio::test]
async fn a_wedged_bmc_is_reset_automatically_within_its_rate_limit() {
    let sim = sim(rack(
        "127.66.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let h = Harness::start("autoreset", |c| {
        c.bmc_refresh_interval = Duration::from_secs(1);
        c.bmc_reset_wait = Duration::from_secs(1);
        c.bmc_auto_reset = Some(metal_discovery::logic::autoreset::Policy {
            after: Duration::from_secs(2),
            limit: 1,
            window: Duration::from_secs(3600),
        });
    })
    .await;
    let bmc = h.add_bmc(&sim.bmcs()[0], &[]).await;
    h.wait_ready(&bmc, "True", "Connected", Duration::from_secs(30))
        .await;
    let reset_path = "/redfish/v1/Managers/BMC/Actions/Manager.Reset";
    let resets = || sim.request_counts(0).unwrap().get("POST", reset_path);
    let wedge = || {
        let mut k = sim.knobs(0).unwrap();
        k.wedged = true;
        k.bmc_reset_downtime_ms = 500;
        sim.set_knobs(0, k).unwrap();
    };
    wedge();
    h.wait_ready(
        &bmc,
        "False",
        "InternalServerError",
        Duration::from_secs(20),
    )
    .await;
    eventually("one automatic reset", Duration::from_secs(30), async || {
        (resets() == 1).then_some(())
    })
    .await;
    let b = h
        .wait_ready(&bmc, "True", "Connected", Duration::from_secs(30))
        .await;
    assert!(!sim.knobs(0).unwrap().wedged, "the reset un-wedged it");
    let history = b
        .metadata
        .annotations
        .unwrap_or_default()
        .get("metal.ironcore.dev/auto-reset-history")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        history.split(',').count(),
        1,
        "the attempt is recorded: {history}"
    );

    wedge();
    h.wait_ready(
        &bmc,
        "False",
        "InternalServerError",
        Duration::from_secs(20),
    )
    .await;
    eventually(
        "the rate limit is reported",
        Duration::from_secs(30),
        async || {
            events_for(&h, &bmc)
                .await
                .iter()
                .any(|e| e.reason.as_deref() == Some("AutoResetRateLimited"))
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(resets(), 1, "never more than the limit");
    sim.shutdown().await;
}
