//! The client against the project's BMC simulator (`metal-bmc-sim`): inventory of every template
//! compared with what the simulator says it serves, every operation checked against the simulated
//! state, and faults injected through knobs.
//!
//! Addresses 127.77.x.y are used so that these tests never collide with the simulator's own tests.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use metal_bmc_sim::{
    BmcInfo, GroupSpec, IdentityMode, Knobs, RackSpec, SimHandle, Simulator, TemplateSource,
};
use redfish::models::{AttributeValue, BootSource, IndicatorLed, PowerState, ResetType, TaskState};
use redfish::{
    AccountUpdate, AuthMode, BmcEndpoint, BootOverride, Client, ClientOptions, Credentials,
    ErrorClass, EventSubscriptionRequest, InsertMedia, MediaOutcome, NewAccount, PowerOutcome,
    RetryPolicy, Secret, SimpleUpdateRequest,
};

const PASSWORD: &str = "sim-Passw0rd";

fn knobs() -> Knobs {
    Knobs {
        power_delay_ms: 150,
        task_duration_ms: 300,
        bmc_reset_downtime_ms: 300,
        ..Knobs::default()
    }
}

fn group(template: TemplateSource) -> GroupSpec {
    GroupSpec {
        count: 1,
        template,
        password: Some(PASSWORD.into()),
        knobs: knobs(),
        ..GroupSpec::default()
    }
}

async fn start(base: &str, groups: Vec<GroupSpec>) -> SimHandle {
    let spec = RackSpec {
        base_address: base.parse().unwrap(),
        port: 0,
        tls: true,
        identity: IdentityMode::KeepAll,
        groups,
        ..RackSpec::default()
    };
    Simulator::start(spec).await.unwrap()
}

fn opts() -> ClientOptions {
    ClientOptions {
        poll_interval: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        ..ClientOptions::default()
    }
}

fn client(bmc: &BmcInfo, opts: ClientOptions) -> Client {
    let mut ep = BmcEndpoint::parse(&bmc.address).unwrap();
    if let Some(ca) = &bmc.ca_pem {
        ep = ep.with_ca_bundle_pem(ca.as_bytes()).unwrap();
    }
    Client::new(
        ep,
        Credentials::new(bmc.username.clone(), bmc.password.clone()),
        opts,
    )
    .unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.iter_mut().for_each(|m| *m = m.to_ascii_lowercase());
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_of_every_template_matches_the_simulator() {
    let fixtures = support::fixtures_dir();
    let sim = start(
        "127.77.1.1",
        vec![
            group(TemplateSource::default()),
            group(TemplateSource::Path(fixtures.join("dell-poweredge-r750"))),
            group(TemplateSource::Path(fixtures.join("supermicro-sys-821ge"))),
            group(TemplateSource::Path(
                fixtures.join("dmtf-public-rackmount1"),
            )),
        ],
    )
    .await;
    let expect: [(&str, u32, f64); 4] = [
        ("default", 0, 0.0),
        ("dell", 2, 512.0),
        ("supermicro", 2, 2048.0),
        ("dmtf", 1, 96.0),
    ];
    for (bmc, (name, cpus, mem)) in sim.bmcs().iter().zip(expect) {
        for expand in [true, false] {
            let c = client(
                bmc,
                ClientOptions {
                    use_expand: expand,
                    ..opts()
                },
            );
            let systems = c.systems().await.unwrap();
            assert_eq!(systems.len(), bmc.systems.len(), "{name}");
            for info in &bmc.systems {
                let inv = c.inventory(&info.path).await.unwrap();
                assert_eq!(inv.uuid, info.uuid, "{name}");
                assert_eq!(inv.serial_number, info.serial, "{name}");
                assert_eq!(
                    sorted(
                        inv.nics
                            .iter()
                            .filter_map(|n| n.mac_address.clone())
                            .collect()
                    ),
                    sorted(info.macs.clone()),
                    "{name}"
                );
                let state = sim.system_state(bmc.index, &info.id).unwrap();
                assert_eq!(inv.bios_version, state.bios_version, "{name}");
                assert_eq!(inv.bmc_firmware_version, state.bmc_version, "{name}");
                if name != "default" {
                    assert_eq!(inv.cpu_count, cpus, "{name}");
                    assert_eq!(inv.total_memory_gib, Some(mem), "{name}");
                } else {
                    assert!(
                        inv.cpu_count > 0
                            && inv.total_memory_gib.is_some()
                            && !inv.dimms.is_empty()
                            && !inv.storages.is_empty(),
                        "{inv:?}"
                    );
                }
                eprintln!(
                    "bmc-sim {name}: {} requests (expand: {expand})",
                    inv.requests
                );
            }
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_the_simulator() {
    let sim = start("127.77.2.1", vec![group(TemplateSource::default())]).await;
    let bmc = sim.bmcs()[0].clone();
    let sys = bmc.systems[0].path.clone();
    let id = bmc.systems[0].id.clone();
    let c = client(&bmc, opts());

    // Power.
    assert_eq!(
        c.power_on(&sys).await.unwrap(),
        PowerOutcome::Issued(ResetType::On)
    );
    c.wait_for_power_state(&sys, PowerState::On, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", sim.system_state(0, &id).unwrap().power_state),
        "On"
    );
    assert_eq!(
        c.power_on(&sys).await.unwrap(),
        PowerOutcome::AlreadyInState(PowerState::On)
    );
    assert_eq!(
        c.restart(&sys, false).await.unwrap(),
        PowerOutcome::Issued(ResetType::ForceRestart)
    );
    c.wait_for_power_state(&sys, PowerState::On, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        c.power_off(&sys).await.unwrap(),
        PowerOutcome::Issued(ResetType::GracefulShutdown)
    );
    c.wait_for_power_state(&sys, PowerState::Off, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        c.force_off(&sys).await.unwrap(),
        PowerOutcome::AlreadyInState(PowerState::Off)
    );

    // Boot override and order.
    assert!(
        c.set_boot_override(&sys, BootSource::Pxe, BootOverride::Once)
            .await
            .unwrap()
    );
    assert!(
        !c.set_boot_override(&sys, BootSource::Pxe, BootOverride::Once)
            .await
            .unwrap()
    );
    let boot = c.system(&sys).await.unwrap().boot.unwrap();
    assert_eq!(boot.override_target, Some(BootSource::Pxe));
    let mut order = c.boot_order(&sys).await.unwrap();
    order.reverse();
    assert!(c.set_boot_order(&sys, &order).await.unwrap());
    assert_eq!(c.boot_order(&sys).await.unwrap(), order);

    // BIOS: validated against the registry, pending until reset.
    let bad: BTreeMap<String, AttributeValue> =
        [("BootMode".to_owned(), AttributeValue::from("Floppy"))].into();
    assert_eq!(
        c.set_bios_attributes(&sys, &bad).await.unwrap_err().class(),
        ErrorClass::Rejected
    );
    let good: BTreeMap<String, AttributeValue> = [
        (
            "ProcVirtualization".to_owned(),
            AttributeValue::from("Disabled"),
        ),
        ("WatchdogTimeout".to_owned(), AttributeValue::Integer(20)),
    ]
    .into();
    let apply = c.set_bios_attributes(&sys, &good).await.unwrap();
    assert_eq!(apply.changed.len(), 2);
    let pending = c.bios_pending(&sys).await.unwrap();
    assert_eq!(
        pending.get("ProcVirtualization"),
        Some(&AttributeValue::from("Disabled"))
    );
    assert!(
        sim.system_state(0, &id)
            .unwrap()
            .bios_pending
            .contains_key("ProcVirtualization")
    );
    assert!(
        c.set_bios_attributes(&sys, &good)
            .await
            .unwrap()
            .changed
            .is_empty(),
        "pending values re-written"
    );

    // Firmware update through a task.
    let task = c
        .update_firmware(
            &SimpleUpdateRequest {
                image_uri: "http://127.0.0.1:9/bios-2.5.0.bin".into(),
                transfer_protocol: Some("HTTP".into()),
                ..SimpleUpdateRequest::default()
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(task.task_state, Some(TaskState::Completed), "{task:?}");

    // Manager reset and back.
    let mgr = c.managers().await.unwrap()[0].odata_id.clone();
    assert_eq!(
        c.reset_manager(&mgr, ResetType::On)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::NotSupported
    );
    c.reset_manager(&mgr, ResetType::GracefulRestart)
        .await
        .unwrap();
    c.wait_for_manager(&mgr, Duration::from_secs(10))
        .await
        .unwrap();

    // Virtual media from a local image server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = vec![b'x'; 2048];
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    let image = format!("http://127.0.0.1:{port}/boot.iso");
    let media = InsertMedia {
        image: image.clone(),
        ..InsertMedia::default()
    };
    assert_eq!(
        c.insert_media(&sys, &media).await.unwrap(),
        MediaOutcome::Inserted { ejected: None }
    );
    assert_eq!(
        c.insert_media(&sys, &media).await.unwrap(),
        MediaOutcome::AlreadyInserted
    );
    assert!(
        sim.system_state(0, &id)
            .unwrap()
            .virtual_media
            .iter()
            .any(|m| m.image.as_deref() == Some(image.as_str()) && m.inserted)
    );
    assert_eq!(c.eject_media(&sys).await.unwrap(), MediaOutcome::Ejected);
    assert_eq!(
        c.eject_media(&sys).await.unwrap(),
        MediaOutcome::NothingToEject
    );
    server.abort();

    // LED.
    assert!(
        c.set_indicator_led(&sys, IndicatorLed::Blinking)
            .await
            .unwrap()
    );
    assert_eq!(
        c.system(&sys).await.unwrap().indicator_led,
        Some(IndicatorLed::Blinking)
    );

    // Accounts.
    let new = NewAccount {
        username: "metal".into(),
        password: Secret::new("Metal-Pw-123"),
        role: "Operator".into(),
        enabled: true,
    };
    let uri = c.create_account(&new).await.unwrap();
    assert!(
        c.accounts()
            .await
            .unwrap()
            .iter()
            .any(|a| a.odata_id.as_deref() == Some(uri.as_str()))
    );
    c.update_account(
        "metal",
        &AccountUpdate {
            password: Some(Secret::new("Metal-Pw-456")),
            ..AccountUpdate::default()
        },
    )
    .await
    .unwrap();
    let ep = BmcEndpoint::parse(&bmc.address)
        .unwrap()
        .with_ca_bundle_pem(bmc.ca_pem.as_ref().unwrap().as_bytes())
        .unwrap();
    let as_metal = Client::new(ep, Credentials::new("metal", "Metal-Pw-456"), opts()).unwrap();
    assert_eq!(
        as_metal.systems().await.unwrap().len(),
        1,
        "the new password does not work"
    );
    as_metal.logout().await.unwrap();
    assert!(c.delete_account("metal").await.unwrap());
    assert!(!c.delete_account("metal").await.unwrap());

    // Event subscriptions.
    let req = EventSubscriptionRequest::new("https://127.0.0.1:9443/events");
    let sub = c.create_event_subscription(&req).await.unwrap();
    assert_eq!(
        c.create_event_subscription(&req).await.unwrap(),
        sub,
        "duplicate not recovered"
    );
    assert!(c.delete_event_subscription(&sub).await.unwrap());

    c.logout().await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_faults_map_to_error_classes() {
    let sim = start("127.77.3.1", vec![group(TemplateSource::default())]).await;
    let bmc = sim.bmcs()[0].clone();
    let sys = bmc.systems[0].path.clone();
    let c = client(&bmc, opts());
    c.system(&sys).await.unwrap();

    // One session for many concurrent callers, even with a session limit of 1.
    c.logout().await.unwrap();
    sim.set_knobs(
        0,
        Knobs {
            session_limit: 1,
            ..knobs()
        },
    )
    .unwrap();
    let fresh = client(&bmc, opts());
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = fresh.clone();
            let s = sys.clone();
            tokio::spawn(async move { c.system(&s).await.map(|_| ()) })
        })
        .collect();
    for t in calls {
        t.await.unwrap().unwrap();
    }
    // A second client cannot log in while the first holds the only session: in Session mode that
    // is Busy, not a crash; in Auto mode (the default) it works with basic auth.
    let other = client(
        &bmc,
        ClientOptions {
            auth: AuthMode::Session,
            ..opts()
        },
    );
    assert_eq!(
        other.system(&sys).await.unwrap_err().class(),
        ErrorClass::Busy
    );
    let auto = client(&bmc, opts());
    auto.system(&sys).await.unwrap();
    assert_eq!(auto.auth_in_use(), Some(AuthMode::Basic));
    fresh.logout().await.unwrap();

    sim.set_knobs(
        0,
        Knobs {
            error_rate: 1.0,
            ..knobs()
        },
    )
    .unwrap();
    assert_eq!(c.system(&sys).await.unwrap_err().class(), ErrorClass::Busy);
    sim.set_knobs(
        0,
        Knobs {
            reset_rate: 1.0,
            ..knobs()
        },
    )
    .unwrap();
    assert_eq!(
        c.system(&sys).await.unwrap_err().class(),
        ErrorClass::Unreachable
    );
    sim.set_knobs(
        0,
        Knobs {
            hang_rate: 1.0,
            hang_ms: 10_000,
            ..knobs()
        },
    )
    .unwrap();
    let quick = client(
        &bmc,
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            retry: RetryPolicy::none(),
            ..opts()
        },
    );
    let t = std::time::Instant::now();
    assert_eq!(
        quick.service_root().await.unwrap_err().class(),
        ErrorClass::Timeout
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    sim.set_knobs(
        0,
        Knobs {
            reject_auth: true,
            ..knobs()
        },
    )
    .unwrap();
    let fresh = client(&bmc, opts());
    assert_eq!(
        fresh.system(&sys).await.unwrap_err().class(),
        ErrorClass::AuthenticationFailed
    );
    sim.set_knobs(0, knobs()).unwrap();
    assert!(c.system(&sys).await.is_ok());
    sim.shutdown().await;
}

/// Sessions left behind by killed processes fill the BMC: a new client still works (basic auth),
/// and is back on a session once the BMC has freed slots and the retry interval has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit_reached_by_leftover_sessions() {
    const LIMIT: usize = 3;
    let mut g = group(TemplateSource::default());
    g.knobs.session_limit = LIMIT;
    let sim = start("127.77.4.1", vec![g]).await;
    let bmc = sim.bmcs()[0].clone();
    let sys = bmc.systems[0].path.clone();
    let sessions = "/redfish/v1/SessionService/Sessions";

    // Earlier incarnations of a controller logged in and were SIGKILLed: nobody logs them out.
    let admin = client(
        &bmc,
        ClientOptions {
            auth: AuthMode::Basic,
            ..opts()
        },
    );
    let login = serde_json::json!({"UserName": bmc.username, "Password": bmc.password});
    for _ in 0..LIMIT {
        assert_eq!(admin.post(sessions, &login).await.unwrap().status, 201);
    }
    let r = admin.post(sessions, &login).await.unwrap_err();
    assert_eq!((r.status(), r.class()), (Some(503), ErrorClass::Busy));

    // The new process: every call works, with basic auth.
    let retry = Duration::from_secs(1);
    let c = client(
        &bmc,
        ClientOptions {
            session_retry_interval: retry,
            ..opts()
        },
    );
    let before = sim.request_counts(0).unwrap();
    assert!(c.system(&sys).await.unwrap().power_state.is_some());
    c.set_indicator_led(&sys, IndicatorLed::Blinking)
        .await
        .unwrap();
    c.inventory(&sys).await.unwrap();
    assert_eq!(c.auth_in_use(), Some(AuthMode::Basic));
    let after = sim.request_counts(0).unwrap();
    assert_eq!(
        after.get("POST", sessions) - before.get("POST", sessions),
        1,
        "one login attempt, then basic auth until the retry interval"
    );

    // The BMC frees the slots (expired or deleted).
    let list: serde_json::Value = admin.get(sessions).await.unwrap();
    let members = list["Members"].as_array().unwrap().clone();
    assert_eq!(members.len(), LIMIT);
    for m in members {
        admin
            .delete(m["@odata.id"].as_str().unwrap())
            .await
            .unwrap();
    }
    tokio::time::sleep(retry + Duration::from_millis(100)).await;
    c.system(&sys).await.unwrap();
    c.system(&sys).await.unwrap();
    assert_eq!(c.auth_in_use(), Some(AuthMode::Session));
    let list: serde_json::Value = admin.get(sessions).await.unwrap();
    assert_eq!(list["Members@odata.count"], 1, "the client's own session");
    c.logout().await.unwrap();
    let list: serde_json::Value = admin.get(sessions).await.unwrap();
    assert_eq!(list["Members@odata.count"], 0);
    sim.shutdown().await;
}
