//! The Redfish behaviour of simulated BMCs: auth, power, boot, BIOS, firmware, media, sessions,
//! accounts, ETags, $expand, subscriptions.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Auth, Client, image_server, refused, spec, wait_until};
use http::{Method, StatusCode};
use metal_bmc_sim::{BootEvent, Knobs, PowerState, Simulator};
use serde_json::json;

const SYS: &str = "/redfish/v1/Systems/1";

#[tokio::test]
async fn service_root_is_public_everything_else_needs_auth() {
    let sim = Simulator::start(spec("127.31.1.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let anon = c.with_auth(Auth::None);
    for p in [
        "/redfish",
        "/redfish/v1",
        "/redfish/v1/",
        "/redfish/v1/odata",
        "/redfish/v1/$metadata",
    ] {
        let r = anon.get(p).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert_eq!(r.header("odata-version"), Some("4.0"));
    }
    let root = anon.get_json("/redfish/v1/").await;
    assert_eq!(
        root["ProtocolFeaturesSupported"]["ExpandQuery"]["Levels"],
        true
    );
    assert!(
        anon.get("/redfish/v1/$metadata")
            .await
            .header("content-type")
            .unwrap()
            .contains("xml")
    );
    let r = anon.get(SYS).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    assert_eq!(r.message_ids(), ["NoValidSession"]);
    let wrong = c.with_auth(Auth::Basic("admin".into(), "wrong".into()));
    assert_eq!(wrong.get(SYS).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.with_auth(Auth::Token("bogus".into()))
            .get(SYS)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = c.get(SYS).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("etag").is_some());
    let head = c.send(Method::HEAD, SYS, None, &[]).await.unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), r.header("etag"));
    let nf = c.get("/redfish/v1/NoSuchThing").await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert_eq!(nf.message_ids(), ["ResourceMissingAtURI"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn power_transitions_and_boot_override_once() {
    let boots: Arc<Mutex<Vec<BootEvent>>> = Arc::default();
    let mut s = spec("127.31.2.1", 1);
    s.groups[0].knobs.power_delay_ms = 1000;
    s.boot_server = Some("http://127.0.0.1:8080/boot".into());
    let seen = Arc::clone(&boots);
    s.boot_hook = Some(Arc::new(move |e: BootEvent| seen.lock().unwrap().push(e)));
    let sim = Simulator::start(s).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);

    assert_eq!(c.get_json(SYS).await["PowerState"], "Off");
    let r = c.patch(SYS, json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["Boot"]["BootSourceOverrideEnabled"], "Once");

    c.reset(SYS, "On").await;
    assert_eq!(c.get_json(SYS).await["PowerState"], "PoweringOn");
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "On"
        })
        .await
    );
    let sys = c.get_json(SYS).await;
    assert_eq!(
        sys["Boot"]["BootSourceOverrideEnabled"], "Disabled",
        "Once is consumed at boot"
    );
    let st = sim.system_state(0, "1").unwrap();
    assert_eq!(st.power_state, PowerState::On);
    assert_eq!(st.boot_history.len(), 1);
    assert_eq!(st.boot_history[0].target, "Pxe");
    {
        let b = boots.lock().unwrap();
        assert_eq!(b.len(), 1);
        assert!(b[0].is_network_boot());
        assert_eq!(
            b[0].boot_server.as_deref(),
            Some("http://127.0.0.1:8080/boot")
        );
        assert_eq!(b[0].macs, sim.bmcs()[0].systems[0].macs);
        assert!(!b[0].macs.is_empty());
    }

    // A restart passes through PoweringOff and PoweringOn and boots from the boot order.
    c.reset(SYS, "ForceRestart").await;
    assert_eq!(c.get_json(SYS).await["PowerState"], "PoweringOff");
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "PoweringOn"
        })
        .await
    );
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "On"
        })
        .await
    );
    let st = sim.system_state(0, "1").unwrap();
    assert_eq!(st.boot_history.len(), 2);
    assert_eq!(st.boot_history[1].target, "None");
    assert!(st.boot_history[1].time > st.boot_history[0].time);

    // Continuous stays.
    c.patch(SYS, json!({"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous"}})).await;
    c.reset(SYS, "PowerCycle").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            sim.system_state(0, "1").unwrap().boot_history.len() == 3
        })
        .await
    );
    assert_eq!(
        c.get_json(SYS).await["Boot"]["BootSourceOverrideEnabled"],
        "Continuous"
    );
    assert_eq!(
        sim.system_state(0, "1").unwrap().boot_history[2].target,
        "Hdd"
    );

    // Graceful shutdown, then invalid requests.
    c.reset(SYS, "GracefulShutdown").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "Off"
        })
        .await
    );
    let r = c
        .post(
            &format!("{SYS}/Actions/ComputerSystem.Reset"),
            json!({"ResetType": "GracefulRestart"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = c
        .post(
            &format!("{SYS}/Actions/ComputerSystem.Reset"),
            json!({"ResetType": "Explode"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message_ids(), ["ActionParameterValueNotInList"]);
    let r = c
        .post(&format!("{SYS}/Actions/ComputerSystem.Reset"), json!({}))
        .await;
    assert_eq!(r.message_ids(), ["ActionParameterMissing"]);
    let r = c
        .send(
            Method::POST,
            &format!("{SYS}/Actions/ComputerSystem.Reset"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .patch(SYS, json!({"Boot": {"BootSourceOverrideTarget": "Floppy"}}))
        .await;
    assert_eq!(r.message_ids(), ["PropertyValueNotInList"]);
    let r = c
        .patch(
            SYS,
            json!({"Boot": {"BootSourceOverrideEnabled": "Sometimes"}}),
        )
        .await;
    assert_eq!(r.message_ids(), ["PropertyValueNotInList"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn boot_order_patch() {
    let sim = Simulator::start(spec("127.31.3.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let order = json!(["Boot0003", "Boot0001", "Boot0002", "Boot0004"]);
    let r = c.patch(SYS, json!({"Boot": {"BootOrder": order}})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(c.get_json(SYS).await["Boot"]["BootOrder"], order);
    assert_eq!(sim.system_state(0, "1").unwrap().boot.order[0], "Boot0003");
    let r = c
        .patch(
            SYS,
            json!({"Boot": {"BootOrder": ["Boot0003", "Boot9999"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .patch(
            SYS,
            json!({"Boot": {"BootOrder": ["Boot0003", "Boot0003"]}}),
        )
        .await;
    assert_eq!(r.message_ids(), ["PropertyValueFormatError"]);
    let r = c
        .patch(SYS, json!({"Boot": {"BootOrder": "Boot0001"}}))
        .await;
    assert_eq!(r.message_ids(), ["PropertyValueTypeError"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn bios_pending_settings_validated_and_applied_at_reset() {
    let sim = Simulator::start(spec("127.31.4.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let bios = format!("{SYS}/Bios");
    let settings = c.get_json(&bios).await["@Redfish.Settings"]["SettingsObject"]["@odata.id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(settings, format!("{SYS}/Bios/Settings"));

    let r = c
        .patch(&bios, json!({"Attributes": {"BootMode": "Bios"}}))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    let r = c
        .patch(&settings, json!({"Attributes": {"Bogus": 1, "BootMode": "Legacy", "SystemModelName": "x", "NumLock": "yes", "WatchdogTimeout": 99}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut ids = r.message_ids();
    ids.sort();
    assert_eq!(
        ids,
        [
            "PropertyNotWritable",
            "PropertyUnknown",
            "PropertyValueNotInList",
            "PropertyValueOutOfRange",
            "PropertyValueTypeError"
        ]
    );
    assert!(
        c.get_json(&settings).await["Attributes"]
            .as_object()
            .unwrap()
            .is_empty(),
        "nothing applied on error"
    );

    let r = c
        .patch(
            &settings,
            json!({"Attributes": {"BootMode": "Bios", "WatchdogTimeout": 30, "NumLock": false}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        c.get_json(&settings).await["Attributes"]["BootMode"],
        "Bios"
    );
    assert_eq!(
        c.get_json(&bios).await["Attributes"]["BootMode"],
        "Uefi",
        "pending until reset"
    );
    assert_eq!(sim.system_state(0, "1").unwrap().bios_pending.len(), 3);

    c.reset(SYS, "On").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["PowerState"] == "On"
        })
        .await
    );
    let attrs = c.get_json(&bios).await["Attributes"].clone();
    assert_eq!(attrs["BootMode"], "Bios");
    assert_eq!(attrs["WatchdogTimeout"], 30);
    assert_eq!(attrs["NumLock"], false);
    assert!(
        c.get_json(&settings).await["Attributes"]
            .as_object()
            .unwrap()
            .is_empty()
    );

    // ResetBios restores defaults at the next reset.
    let r = c
        .post(&format!("{bios}/Actions/Bios.ResetBios"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    c.reset(SYS, "ForceRestart").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(&bios).await["Attributes"]["BootMode"] == "Uefi"
        })
        .await
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn simple_update_tasks_and_versions() {
    let mut s = spec("127.31.5.1", 1);
    s.groups[0].knobs.task_duration_ms = 1500;
    s.groups[0].knobs.bmc_reset_downtime_ms = 800;
    let sim = Simulator::start(s).await.unwrap();
    let info = sim.bmcs()[0].clone();
    let c = Client::for_bmc(&info);
    let update = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate";

    let r = c
        .post(update, json!({"ImageURI": "http://127.0.0.1/fw/bios-2.5.0.bin", "Targets": ["/redfish/v1/UpdateService/FirmwareInventory/BIOS"]}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let monitor = r.header("location").unwrap().to_string();
    let task = r.json();
    assert!(task["TaskState"] == "New" || task["TaskState"] == "Running");
    let task_path = task["@odata.id"].as_str().unwrap().to_string();
    let m = c.get(&monitor).await;
    assert_eq!(
        m.status,
        StatusCode::ACCEPTED,
        "the monitor answers 202 while running"
    );
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(&task_path).await["TaskState"] == "Running"
        })
        .await
    );
    let pct = c.get_json(&task_path).await["PercentComplete"]
        .as_u64()
        .unwrap();
    assert!(pct < 100);
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(&task_path).await["TaskState"] == "Completed"
        })
        .await
    );
    let t = c.get_json(&task_path).await;
    assert_eq!(t["PercentComplete"], 100);
    assert!(
        t["Messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["MessageId"] == "TaskEvent.1.0.TaskCompletedOK")
    );
    assert_eq!(c.get(&monitor).await.status, StatusCode::OK);
    let tasks = c.get_json("/redfish/v1/TaskService/Tasks").await;
    assert_eq!(tasks["Members@odata.count"], 1);

    assert_eq!(
        c.get_json(SYS).await["BiosVersion"],
        "2.4.1",
        "active only after a reboot"
    );
    assert_eq!(
        sim.system_state(0, "1")
            .unwrap()
            .staged_bios_version
            .as_deref(),
        Some("2.5.0")
    );
    c.reset(SYS, "On").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(SYS).await["BiosVersion"] == "2.5.0"
        })
        .await
    );
    assert_eq!(
        c.get_json("/redfish/v1/UpdateService/FirmwareInventory/BIOS")
            .await["Version"],
        "2.5.0"
    );

    // BMC firmware: the BMC restarts by itself when the task completes, unreachable meanwhile.
    let r = c.post(update, json!({"ImageURI": "http://127.0.0.1/fw/bmc_1.13.0.bin", "Targets": ["/redfish/v1/Managers/BMC"]})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(
        wait_until(Duration::from_secs(6), || async {
            refused(info.ip, info.port).await
        })
        .await,
        "BMC restarts"
    );
    assert!(
        wait_until(Duration::from_secs(6), || async {
            !refused(info.ip, info.port).await
        })
        .await,
        "BMC is back"
    );
    assert_eq!(
        c.get_json("/redfish/v1/Managers/BMC").await["FirmwareVersion"],
        "1.13.0"
    );
    assert_eq!(
        c.get_json("/redfish/v1/UpdateService/FirmwareInventory/BMC")
            .await["Version"],
        "1.13.0"
    );
    assert_eq!(
        sim.system_state(0, "1").unwrap().bmc_version.as_deref(),
        Some("1.13.0")
    );

    // A failing task ends in Exception and changes nothing.
    sim.set_knobs(
        0,
        Knobs {
            task_fail: true,
            task_duration_ms: 200,
            ..common::fast_knobs()
        },
    )
    .unwrap();
    let r = c
        .post(
            update,
            json!({"ImageURI": "http://127.0.0.1/fw/bios-9.9.9.bin"}),
        )
        .await;
    let task_path = r.json()["@odata.id"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json(&task_path).await["TaskState"] == "Exception"
        })
        .await
    );
    assert_eq!(c.get_json(&task_path).await["TaskStatus"], "Critical");
    assert_eq!(sim.system_state(0, "1").unwrap().staged_bios_version, None);

    // Bad requests.
    assert_eq!(
        c.post(update, json!({})).await.message_ids(),
        ["ActionParameterMissing"]
    );
    let r = c
        .post(
            update,
            json!({"ImageURI": "http://x/y.bin", "Targets": ["/redfish/v1/Chassis/1"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test]
async fn manager_reset_makes_bmc_unreachable_then_back() {
    let mut s = spec("127.31.6.1", 2);
    s.groups[0].knobs.bmc_reset_downtime_ms = 700;
    let sim = Simulator::start(s).await.unwrap();
    let info = sim.bmcs()[0].clone();
    let c = Client::for_bmc(&info);
    let login = c
        .post(
            "/redfish/v1/SessionService/Sessions",
            json!({"UserName": info.username, "Password": info.password}),
        )
        .await;
    let token = login.header("x-auth-token").unwrap().to_string();
    let t = c.with_auth(Auth::Token(token));
    assert_eq!(t.get(SYS).await.status, StatusCode::OK);

    let r = c
        .post(
            "/redfish/v1/Managers/BMC/Actions/Manager.Reset",
            json!({"ResetType": "GracefulRestart"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let start = Instant::now();
    assert!(
        refused(info.ip, info.port).await,
        "connections are refused during the restart"
    );
    assert!(!sim.is_up(0).unwrap());
    assert!(sim.is_up(1).unwrap(), "other BMCs are not affected");
    assert_eq!(
        Client::for_bmc(&sim.bmcs()[1]).get(SYS).await.status,
        StatusCode::OK
    );
    assert!(
        wait_until(Duration::from_secs(6), || async {
            !refused(info.ip, info.port).await
        })
        .await
    );
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(c.get(SYS).await.status, StatusCode::OK);
    assert_eq!(
        t.get(SYS).await.status,
        StatusCode::UNAUTHORIZED,
        "sessions do not survive a BMC restart"
    );
    let r = c
        .post(
            "/redfish/v1/Managers/BMC/Actions/Manager.Reset",
            json!({"ResetType": "On"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test]
async fn virtual_media_insert_eject_and_cd_boot() {
    let (images, server) = image_server("127.31.7.200").await;
    let sim = Simulator::start(spec("127.31.7.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let cd = format!("{SYS}/VirtualMedia/CD1");
    let insert = format!("{cd}/Actions/VirtualMedia.InsertMedia");
    let eject = format!("{cd}/Actions/VirtualMedia.EjectMedia");

    let r = c
        .post(&insert, json!({"Image": format!("{images}/missing.iso")}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message_ids(), ["CouldNotEstablishConnection"]);
    let r = c
        .post(&insert, json!({"Image": "http://127.31.7.201:1/none.iso"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.post(&insert, json!({"Image": "nfs://host/x.iso"})).await;
    assert_eq!(r.message_ids(), ["SourceDoesNotSupportProtocol"]);
    assert_eq!(
        c.post(&insert, json!({})).await.message_ids(),
        ["ActionParameterMissing"]
    );

    let image = format!("{images}/boot.iso");
    let r = c
        .post(
            &insert,
            json!({"Image": image, "Inserted": true, "WriteProtected": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let v = c.get_json(&cd).await;
    assert_eq!(v["Inserted"], true);
    assert_eq!(v["Image"], image.as_str());
    assert_eq!(v["ImageName"], "boot.iso");
    assert_eq!(v["ConnectedVia"], "URI");
    assert_eq!(
        c.post(&insert, json!({"Image": image})).await.status,
        StatusCode::CONFLICT
    );

    c.patch(
        SYS,
        json!({"Boot": {"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once"}}),
    )
    .await;
    c.reset(SYS, "On").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            sim.system_state(0, "1").unwrap().boot_history.len() == 1
        })
        .await
    );
    let st = sim.system_state(0, "1").unwrap();
    assert_eq!(st.boot_history[0].target, "Cd");
    assert_eq!(
        st.boot_history[0].media_image.as_deref(),
        Some(image.as_str())
    );
    assert!(
        st.virtual_media
            .iter()
            .any(|m| m.inserted && m.image.as_deref() == Some(image.as_str()))
    );

    assert_eq!(
        c.post(&eject, json!({})).await.status,
        StatusCode::NO_CONTENT
    );
    let v = c.get_json(&cd).await;
    assert_eq!(v["Inserted"], false);
    assert!(v["Image"].is_null());
    server.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn sessions_login_logout_and_limit() {
    let mut s = spec("127.31.8.1", 1);
    s.groups[0].knobs.session_limit = 2;
    let sim = Simulator::start(s).await.unwrap();
    let info = sim.bmcs()[0].clone();
    let anon = Client::for_bmc(&info).with_auth(Auth::None);
    let sessions = "/redfish/v1/SessionService/Sessions";
    let creds = json!({"UserName": info.username, "Password": info.password});

    let r = anon
        .post(
            sessions,
            json!({"UserName": info.username, "Password": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r1 = anon.post(sessions, creds.clone()).await;
    assert_eq!(r1.status, StatusCode::CREATED);
    let loc1 = r1.header("location").unwrap().to_string();
    let t1 = anon.with_auth(Auth::Token(r1.header("x-auth-token").unwrap().into()));
    assert_eq!(r1.json()["UserName"], info.username.as_str());
    assert!(r1.json()["Password"].is_null());
    let r2 = anon.post(sessions, creds.clone()).await;
    assert_eq!(r2.status, StatusCode::CREATED);
    let r3 = anon.post(sessions, creds.clone()).await;
    assert_eq!(r3.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r3.message_ids(), ["SessionLimitExceeded"]);

    assert_eq!(t1.get_json(sessions).await["Members@odata.count"], 2);
    assert_eq!(t1.get_json(&loc1).await["UserName"], info.username.as_str());
    assert_eq!(t1.delete(&loc1).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t1.get(SYS).await.status,
        StatusCode::UNAUTHORIZED,
        "logged out"
    );
    assert_eq!(
        anon.post(sessions, creds.clone()).await.status,
        StatusCode::CREATED,
        "a slot is free again"
    );
    assert!(sim.metrics_text().contains("bmc_sim_active_sessions 2"));
    sim.shutdown().await;
}

#[tokio::test]
async fn accounts_create_patch_delete_take_effect() {
    let sim = Simulator::start(spec("127.31.9.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let accounts = "/redfish/v1/AccountService/Accounts";
    let r = c
        .post(
            accounts,
            json!({"UserName": "viewer", "Password": "viewer-pass", "RoleId": "ReadOnly"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let loc = r.header("location").unwrap().to_string();
    assert!(r.json()["Password"].is_null());
    assert_eq!(
        c.post(
            accounts,
            json!({"UserName": "viewer", "Password": "viewer-pass", "RoleId": "ReadOnly"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.post(
            accounts,
            json!({"UserName": "x", "Password": "short", "RoleId": "ReadOnly"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.post(
            accounts,
            json!({"UserName": "y", "Password": "long-enough"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );

    let viewer = c.with_auth(Auth::Basic("viewer".into(), "viewer-pass".into()));
    assert_eq!(viewer.get(SYS).await.status, StatusCode::OK);
    assert_eq!(
        viewer
            .patch(SYS, json!({"IndicatorLED": "Lit"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer
            .post(
                &format!("{SYS}/Actions/ComputerSystem.Reset"),
                json!({"ResetType": "On"})
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer
            .post(
                accounts,
                json!({"UserName": "z", "Password": "zzzzzzzzz", "RoleId": "Administrator"})
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Own password change, then the old password stops working.
    assert_eq!(
        viewer
            .patch(&loc, json!({"Password": "new-viewer-pass"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(viewer.get(SYS).await.status, StatusCode::UNAUTHORIZED);
    let viewer = c.with_auth(Auth::Basic("viewer".into(), "new-viewer-pass".into()));
    assert_eq!(viewer.get(SYS).await.status, StatusCode::OK);
    assert_eq!(
        viewer
            .patch(&loc, json!({"RoleId": "Administrator"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The admin promotes, then deletes.
    assert_eq!(
        c.patch(&loc, json!({"RoleId": "Operator"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        viewer
            .patch(SYS, json!({"IndicatorLED": "Lit"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.patch(&loc, json!({"RoleId": "God"})).await.message_ids(),
        ["PropertyValueNotInList"]
    );
    assert_eq!(c.delete(&loc).await.status, StatusCode::NO_CONTENT);
    assert_eq!(viewer.get(SYS).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.get(&loc).await.status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn etags_if_match_plain_patches_and_methods() {
    let sim = Simulator::start(spec("127.31.10.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let chassis = "/redfish/v1/Chassis/1";
    let r = c.get(chassis).await;
    let etag = r.header("etag").unwrap().to_string();
    let r = c
        .send(
            Method::PATCH,
            chassis,
            Some(json!({"IndicatorLED": "Blinking"})),
            &[("if-match", "\"stale\"")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = c
        .send(
            Method::PATCH,
            chassis,
            Some(json!({"IndicatorLED": "Blinking"})),
            &[("if-match", &etag)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["IndicatorLED"], "Blinking");
    let new_etag = r.header("etag").unwrap().to_string();
    assert_ne!(new_etag, etag);
    assert_eq!(c.get(chassis).await.header("etag"), Some(new_etag.as_str()));
    let r = c
        .send(
            Method::PATCH,
            chassis,
            Some(json!({"LocationIndicatorActive": true})),
            &[("if-match", &etag)],
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        StatusCode::PRECONDITION_FAILED,
        "the old ETag no longer matches"
    );
    assert_eq!(
        c.patch(chassis, json!({"LocationIndicatorActive": true}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(c.get_json(chassis).await["LocationIndicatorActive"], true);
    assert_eq!(
        c.patch(chassis, json!({"IndicatorLED": "Purple"}))
            .await
            .message_ids(),
        ["PropertyValueNotInList"]
    );
    assert_eq!(
        c.patch(chassis, json!({"LocationIndicatorActive": "yes"}))
            .await
            .message_ids(),
        ["PropertyValueTypeError"]
    );
    assert_eq!(
        c.patch(chassis, json!({"Model": "x"})).await.message_ids(),
        ["PropertyNotWritable"]
    );
    assert_eq!(
        c.patch(chassis, json!({"Nope": "x"})).await.message_ids(),
        ["PropertyUnknown"]
    );
    let r = c.send(Method::PATCH, chassis, None, &[]).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "an empty PATCH changes nothing");
    let bad = c
        .send(
            Method::PATCH,
            SYS,
            None,
            &[("content-type", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::OK);
    assert_eq!(
        c.patch(SYS, json!({"IndicatorLED": "Lit", "AssetTag": "rack-7"}))
            .await
            .status,
        StatusCode::OK
    );
    let sys = c.get_json(SYS).await;
    assert_eq!(
        (sys["IndicatorLED"].as_str(), sys["AssetTag"].as_str()),
        (Some("Lit"), Some("rack-7"))
    );

    // Read-only resources and unsupported methods.
    let r = c
        .patch(
            "/redfish/v1/Systems/1/Processors/CPU1",
            json!({"Model": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.header("allow").is_some());
    assert_eq!(
        c.post(SYS, json!({})).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(c.delete(SYS).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        c.send(Method::PUT, SYS, Some(json!({})), &[])
            .await
            .unwrap()
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        c.post("/redfish/v1/Nope", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    let garbage = c.send(Method::PATCH, chassis, None, &[]).await.unwrap();
    assert_eq!(garbage.status, StatusCode::OK);
    let r = c.send(Method::GET, chassis, None, &[]).await.unwrap();
    assert_eq!(r.header("allow"), Some("GET, HEAD, PATCH"));
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_get_redfish_errors() {
    let sim = Simulator::start(spec("127.31.11.1", 1)).await.unwrap();
    let info = sim.bmcs()[0].clone();
    let c = Client::for_bmc(&info);
    // Raw bytes that are not JSON.
    let r = c
        .send(Method::PATCH, SYS, Some(json!("just a string")), &[])
        .await
        .unwrap();
    assert_eq!(r.message_ids(), ["MalformedJSON"]);
    let r = c
        .send(
            Method::POST,
            "/redfish/v1/SessionService/Sessions",
            Some(json!([1, 2])),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.message_ids(), ["MalformedJSON"]);
    let r = c
        .post(
            "/redfish/v1/SessionService/Sessions",
            json!({"UserName": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test]
async fn expand_and_query_parameters() {
    let sim = Simulator::start(spec("127.31.12.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let v = c.get_json("/redfish/v1/Systems?$expand=.($levels=1)").await;
    assert_eq!(v["Members"][0]["Id"], "1");
    assert_eq!(
        v["Members"][0]["Links"]["Chassis"][0]
            .as_object()
            .unwrap()
            .len(),
        1,
        "level 1 only"
    );
    let v = c
        .get_json("/redfish/v1/Systems/1/Memory?%24expand=%2A")
        .await;
    assert_eq!(v["Members"].as_array().unwrap().len(), 8);
    assert_eq!(v["Members"][0]["CapacityMiB"], 32768);
    let v = c.get_json("/redfish/v1/Systems/1?$expand=~").await;
    assert_eq!(
        v["Links"]["Chassis"][0]["ChassisType"], "RackMount",
        "~ expands Links"
    );
    assert!(
        v["Processors"].get("Members").is_none(),
        "~ does not expand subordinates"
    );
    let v = c.get_json("/redfish/v1/Systems?$expand=.($levels=2)").await;
    assert_eq!(
        v["Members"][0]["Processors"]["Members"][0]["@odata.id"],
        "/redfish/v1/Systems/1/Processors/CPU1"
    );
    let v = c.get_json("/redfish/v1/Systems?only").await;
    assert_eq!(v["Id"], "1", "only returns the single member");
    assert_eq!(
        c.get("/redfish/v1/Systems?$filter=Id%20eq%20%271%27")
            .await
            .status,
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        c.get("/redfish/v1/Systems?$select=Id").await.status,
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        c.get("/redfish/v1/Systems?$expand=.($levels=9)")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.get("/redfish/v1/Systems?unrelated=1").await.status,
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn event_subscriptions() {
    let sim = Simulator::start(spec("127.31.13.1", 1)).await.unwrap();
    let c = Client::for_bmc(&sim.bmcs()[0]);
    let subs = "/redfish/v1/EventService/Subscriptions";
    let r = c.post(subs, json!({"Destination": "https://127.0.0.1:9443/events", "Protocol": "Redfish", "Context": "metal", "EventTypes": ["Alert"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(c.get_json(&loc).await["Context"], "metal");
    assert_eq!(c.get_json(subs).await["Members@odata.count"], 1);
    assert_eq!(
        c.patch(&loc, json!({"Context": "changed"})).await.status,
        StatusCode::OK
    );
    assert_eq!(c.get_json(&loc).await["Context"], "changed");
    assert_eq!(
        c.patch(&loc, json!({"Destination": "http://x"}))
            .await
            .message_ids(),
        ["PropertyNotWritable"]
    );
    assert_eq!(
        c.post(subs, json!({"Destination": "not a url"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.post(
            subs,
            json!({"Destination": "http://h/e", "Protocol": "SNMPv2c"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.post(subs, json!({"Context": "x"})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(c.delete(&loc).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.get_json(subs).await["Members@odata.count"], 0);
    assert_eq!(c.delete(&loc).await.status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn identities_are_unique_and_index_zero_keeps_the_template() {
    let mut s = spec("127.31.14.1", 40);
    s.groups[0].systems = Some(2);
    let sim = Simulator::start(s).await.unwrap();
    let bmcs = sim.bmcs();
    let first = &bmcs[0];
    assert_eq!(
        first.systems[0].uuid.as_deref(),
        Some("9d5e4c1a-2b7f-4e3d-8a6c-1f0e2d3c4b01")
    );
    assert_eq!(first.systems[0].serial.as_deref(), Some("CZ2240A0001"));
    assert_eq!(
        first.systems[0].macs,
        ["3c:ec:ef:10:00:01", "3c:ec:ef:10:00:02"]
    );
    let mut uuids = std::collections::HashSet::new();
    let mut macs = std::collections::HashSet::new();
    let mut serials = std::collections::HashSet::new();
    for b in &bmcs {
        assert_eq!(b.systems.len(), 2);
        assert_eq!(b.systems[1].id, "2");
        for s in &b.systems {
            assert!(uuids.insert(s.uuid.clone().unwrap()));
            assert!(serials.insert(s.serial.clone().unwrap()));
            for m in &s.macs {
                assert!(macs.insert(m.clone()), "duplicate MAC {m}");
            }
        }
    }
    // What is served matches what the handle reports, replicas included.
    let b = &bmcs[7];
    let c = Client::for_bmc(b);
    let coll = c.get_json("/redfish/v1/Systems").await;
    assert_eq!(coll["Members@odata.count"], 2);
    let s2 = c.get_json("/redfish/v1/Systems/2").await;
    assert_eq!(s2["Id"], "2");
    assert_eq!(s2["@odata.id"], "/redfish/v1/Systems/2");
    assert_eq!(s2["UUID"].as_str(), b.systems[1].uuid.as_deref());
    assert_eq!(s2["Bios"]["@odata.id"], "/redfish/v1/Systems/2/Bios");
    let nic = c
        .get_json("/redfish/v1/Systems/2/EthernetInterfaces/NIC1")
        .await;
    assert_eq!(
        nic["MACAddress"].as_str(),
        Some(b.systems[1].macs[0].as_str())
    );
    assert_eq!(
        nic["@odata.id"],
        "/redfish/v1/Systems/2/EthernetInterfaces/NIC1"
    );
    let s1 = c.get_json(SYS).await;
    assert_eq!(s1["UUID"].as_str(), b.systems[0].uuid.as_deref());
    assert_eq!(s1["SerialNumber"], "CZ2240A0001-7");
    // Replicas have their own power state.
    c.reset("/redfish/v1/Systems/2", "On").await;
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c.get_json("/redfish/v1/Systems/2").await["PowerState"] == "On"
        })
        .await
    );
    assert_eq!(c.get_json(SYS).await["PowerState"], "Off");
    assert_eq!(sim.system_state(7, "2").unwrap().boot_history.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_with_generated_ca_in_tls12_and_tls13() {
    let mut s = spec("127.31.15.1", 2);
    s.tls = true;
    let dir = tempfile::tempdir().unwrap();
    s.ca_path = Some(dir.path().join("ca.pem"));
    s.credentials_path = Some(dir.path().join("creds.yaml"));
    let sim = Simulator::start(s).await.unwrap();
    let pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    assert_eq!(Some(pem.as_str()), sim.ca_pem());
    let creds = std::fs::read_to_string(dir.path().join("creds.yaml")).unwrap();
    assert!(creds.contains("https://127.31.15.2:"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.path().join("creds.yaml"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    for info in sim.bmcs() {
        assert!(info.address.starts_with("https://"));
        let c = Client::for_bmc(&info);
        assert_eq!(c.get_json(SYS).await["Id"], "1");
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject;
            roots
                .add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                .unwrap();
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            assert_eq!(c.with_tls(cfg).get(SYS).await.status, StatusCode::OK);
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn keep_all_identity_serves_copies_of_the_template() {
    let mut s = spec("127.31.16.1", 3);
    s.identity = metal_bmc_sim::IdentityMode::KeepAll;
    let sim = Simulator::start(s).await.unwrap();
    for b in sim.bmcs() {
        assert_eq!(b.systems[0].serial.as_deref(), Some("CZ2240A0001"));
        assert_eq!(
            Client::for_bmc(&b).get_json(SYS).await["UUID"],
            "9d5e4c1a-2b7f-4e3d-8a6c-1f0e2d3c4b01"
        );
    }
    sim.shutdown().await;
    // A seed moves every identity, including index 0's.
    let mut s = spec("127.31.16.1", 1);
    s.identity_seed = 5000;
    let sim = Simulator::start(s).await.unwrap();
    assert_eq!(
        sim.bmcs()[0].systems[0].serial.as_deref(),
        Some("CZ2240A0001-5000")
    );
    sim.shutdown().await;
}
