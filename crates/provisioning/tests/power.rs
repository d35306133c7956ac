//! Power and boot of Available, Reserved and Released servers against the real control plane
//! and the simulated rack: boot once with the override, release with a BMC-confirmed power-off,
//! a BMC that refuses to power off, and the guard (no BMC side effect in other states).

mod common;

use std::time::Duration;

use api::conditions::ConditionStatus;
use common::{Harness, Options, eventually, network_boot};
use metal_bmc_sim::{Knobs, PowerState};

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserved_server_boots_once_and_release_is_confirmed_by_the_bmc() {
    let h = Harness::new("prov-boot", Options::new("127.31.0.1", 1)).await;
    let s = h.servers[0].clone();
    let ctl = h.start(h.config()).await;

    // Available: kept off, powerState reported, no power-on.
    eventually(T, "powerState Off", || async {
        let srv = h.server(&s.name).await;
        (srv.status
            .and_then(|st| st.power_state)
            .map(|p| p.to_string())
            == Some("Off".into()))
        .then_some(())
    })
    .await;
    assert_eq!(h.resets(&s), 0);

    h.ignition_secret("c1-ignition", r#"{"ignition":{"version":"3.4.0"}}"#)
        .await;
    h.bind(&s, "c1", "On", network_boot(Some("c1-ignition")))
        .await;

    // Boots: one override, one power-on, recorded, claim PoweredOn.
    h.wait_power(&s, PowerState::On, T).await;
    eventually(T, "claim PoweredOn=True", || async {
        let c = h.claim_condition("c1", "PoweredOn").await?;
        (c.0 == "True" && c.1 == "ServerPoweredOn").then_some(())
    })
    .await;
    let sys = h.system(&s);
    assert_eq!(sys.boot_history.len(), 1, "{:?}", sys.boot_history);
    assert_eq!(sys.boot_history[0].target, "Pxe");
    assert_eq!(sys.boot_history[0].override_enabled, "Once");
    assert_eq!(h.resets(&s), 1, "exactly one ComputerSystem.Reset");
    let srv = h.server(&s.name).await;
    let boot_ref = srv
        .spec
        .boot_configuration_ref
        .clone()
        .expect("bootConfigurationRef");
    assert_eq!(
        (boot_ref.namespace.as_str(), boot_ref.name.as_str()),
        (h.ns.as_str(), "c1")
    );
    assert_eq!(
        h.server_condition(&s.name, "PoweringOn").await,
        Some(ConditionStatus::False)
    );

    // Stays on across resyncs without further power requests.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.resets(&s), 1);
    assert_eq!(h.system(&s).boot_history.len(), 1);

    // Release: claim deleted → powered off, confirmed only once the BMC reports Off.
    h.delete_claim("c1").await;
    let (status, reason, _) = eventually(T, "claim PoweredOff=True", || async {
        let c = h.claim_condition("c1", "PoweredOff").await?;
        (c.0 == "True").then_some(c)
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "PowerOffConfirmed")
    );
    assert_eq!(
        h.system(&s).power_state,
        PowerState::Off,
        "confirmed only after Off"
    );
    let srv = h.server(&s.name).await;
    let st = srv.status.clone().unwrap();
    let wfpo = api::conditions::get(&st.conditions, "WaitingForPowerOff").unwrap();
    assert_eq!(
        (wfpo.status.as_str(), wfpo.reason.as_str()),
        ("False", "PowerOffConfirmed")
    );
    assert_eq!(wfpo.observed_generation, srv.metadata.generation);
    assert!(
        srv.spec.boot_configuration_ref.is_none(),
        "bootConfigurationRef cleared on release"
    );

    // Reservation recycles the server; it stays off.
    h.finish_release(&s, "c1").await;
    let resets = h.resets(&s);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.system(&s).power_state, PowerState::Off);
    assert_eq!(h.resets(&s), resets);
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bmc_refusing_to_power_off_holds_the_server_back() {
    let h = Harness::new("prov-refuse", Options::new("127.31.1.1", 1)).await;
    let s = h.servers[0].clone();
    let mut cfg = h.config();
    cfg.timing.power_off_timeout = Some(Duration::from_secs(2));
    cfg.timing.confirm_timeout = Duration::from_secs(3);
    let ctl = h.start(cfg).await;
    h.bind(&s, "c2", "On", network_boot(None)).await;
    h.wait_power(&s, PowerState::On, T).await;

    h.sim
        .set_knobs(
            s.bmc,
            Knobs {
                refuse_power_off: true,
                ..common::fast_knobs()
            },
        )
        .unwrap();
    h.delete_claim("c2").await;
    let (_, _, message) = eventually(T, "claim PoweredOff=False/PowerOffRefused", || async {
        let c = h.claim_condition("c2", "PoweredOff").await?;
        (c.0 == "False" && c.1 == "PowerOffRefused").then_some(c)
    })
    .await;
    assert!(message.contains("still reports PowerState On"), "{message}");
    let srv = h.server(&s.name).await;
    let st = srv.status.unwrap();
    assert_eq!(st.power_state.map(|p| p.to_string()).as_deref(), Some("On"));
    let wfpo = api::conditions::get(&st.conditions, "WaitingForPowerOff").unwrap();
    assert_eq!(
        (wfpo.status.as_str(), wfpo.reason.as_str()),
        ("True", "PowerOffRefused")
    );
    assert_eq!(h.system(&s).power_state, PowerState::On);
    // Graceful, then forced (then retries at most once per confirm timeout).
    let resets = h.resets(&s);
    assert!(
        (3..=4).contains(&resets),
        "power-on + graceful + force (+1 retry): {resets}"
    );

    // Once the BMC behaves, the release completes.
    h.sim.set_knobs(s.bmc, common::fast_knobs()).unwrap();
    eventually(
        T,
        "claim PoweredOff=True after the BMC recovers",
        || async {
            let c = h.claim_condition("c2", "PoweredOff").await?;
            (c.0 == "True").then_some(())
        },
    )
    .await;
    assert_eq!(h.system(&s).power_state, PowerState::Off);
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_in_other_states_are_never_touched() {
    let h = Harness::new("prov-guard", Options::new("127.31.2.1", 5)).await;
    // Reserved with a powered-on claim, but the state belongs to someone else.
    let states = ["Initial", "Discovery", "Maintenance", "Parked", "Error"];
    for (s, state) in h.servers.iter().zip(states) {
        h.bind(s, &format!("g-{}", s.bmc), "On", network_boot(None))
            .await;
        h.set_state(&s.name, state).await;
    }
    for s in &h.servers {
        h.sim.reset_request_counts(s.bmc).unwrap();
    }
    let ctl = h.start(h.config()).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    for s in &h.servers {
        let counts = h.sim.request_counts(s.bmc).unwrap();
        assert_eq!(
            counts.total, 0,
            "{} got BMC requests: {:?}",
            s.name, counts.by_request
        );
        assert_eq!(h.system(s).power_state, PowerState::Off);
        let srv = h.server(&s.name).await;
        assert!(
            srv.status.unwrap().power_state.is_none(),
            "powerState is not ours to write"
        );
    }
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_power_off_and_on_again_boots_again() {
    let h = Harness::new("prov-toggle", Options::new("127.31.3.1", 1)).await;
    let s = h.servers[0].clone();
    let ctl = h.start(h.config()).await;
    h.bind(&s, "c3", "On", network_boot(None)).await;
    h.wait_power(&s, PowerState::On, T).await;
    let claims: kube::Api<api::serverclaim::ServerClaim> =
        kube::Api::namespaced(h.client.clone(), &h.ns);
    let patch = |p: &str| serde_json::json!({ "spec": { "power": p } });
    claims
        .patch(
            "c3",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch("Off")),
        )
        .await
        .unwrap();
    h.wait_power(&s, PowerState::Off, T).await;
    eventually(T, "claim PoweredOn=False/PowerOffRequested", || async {
        let c = h.claim_condition("c3", "PoweredOn").await?;
        (c.1 == "PowerOffRequested").then_some(())
    })
    .await;
    claims
        .patch(
            "c3",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch("On")),
        )
        .await
        .unwrap();
    h.wait_power(&s, PowerState::On, T).await;
    let history = h.system(&s).boot_history;
    assert_eq!(history.len(), 2);
    assert!(
        history.iter().all(|b| b.target == "Pxe"),
        "each power-on boots the configuration: {history:?}"
    );
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_bmc_stalls_only_its_own_server() {
    let h = Harness::new("prov-hung", Options::new("127.31.4.1", 3)).await;
    let (hung, ok1, ok2) = (
        h.servers[0].clone(),
        h.servers[1].clone(),
        h.servers[2].clone(),
    );
    let mut cfg = h.config();
    cfg.bmc_timeout = Duration::from_secs(3);
    cfg.max_reconciles = 2; // fewer slots than hung requests would need, were they held
    let ctl = h.start(cfg).await;
    for s in &h.servers {
        h.wait_status_power(&s.name, "Off", T).await;
    }
    h.sim
        .set_knobs(
            hung.bmc,
            Knobs {
                hang_rate: 1.0,
                hang_ms: 600_000,
                ..common::fast_knobs()
            },
        )
        .unwrap();
    let start = std::time::Instant::now();
    h.bind(&hung, "h0", "On", network_boot(None)).await;
    h.bind(&ok1, "h1", "On", network_boot(None)).await;
    h.bind(&ok2, "h2", "On", network_boot(None)).await;
    h.wait_power(&ok1, PowerState::On, T).await;
    h.wait_power(&ok2, PowerState::On, T).await;
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "healthy servers booted in {:?}",
        start.elapsed()
    );
    assert_eq!(h.system(&hung).power_state, PowerState::Off);
    // Releasing the server behind the hung BMC says why it cannot be confirmed.
    h.delete_claim("h0").await;
    eventually(T, "claim PoweredOff=False/BMCUnreachable", || async {
        let c = h.claim_condition("h0", "PoweredOff").await?;
        (c.0 == "False" && c.1 == "BMCUnreachable").then_some(())
    })
    .await;
    ctl.shutdown().await;
    h.sim.shutdown().await;
}
