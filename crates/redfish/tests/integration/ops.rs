//! Every operation against the trimmed vendor trees, checking what was sent (vendor quirks included)
//! and that repeating an operation repeats no side effect.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use redfish::models::{AttributeValue, BootSource, IndicatorLed, PowerState, ResetType, TaskState};
use redfish::{
    AccountUpdate, BootOverride, ErrorClass, ErrorKind, EventSubscriptionRequest, InsertMedia,
    ManagerAttributeSource, MediaOutcome, NewAccount, PowerAction, PowerOutcome, Secret,
    SimpleUpdateRequest, Vendor,
};
use serde_json::{Value, json};

use super::support::{FaultKind, ServerOptions, TaskStyle, TreeServer};
use super::*;

fn body(l: &super::support::Logged) -> Value {
    l.body.clone().unwrap_or(Value::Null)
}

#[tokio::test]
async fn discovery_lists_systems_managers_and_detects_vendors() {
    for (t, sys, uuid, vendor) in [
        (
            DELL,
            DELL_SYS,
            "4c4c4544-0035-3410-8050-c6c04f314733",
            Vendor::Dell,
        ),
        (
            SMC,
            SMC_SYS,
            "00000000-0000-0000-0000-7CC25550A8FF",
            Vendor::Supermicro,
        ),
        (
            DMTF,
            DMTF_SYS,
            "38947555-7742-3448-3784-823347823834",
            Vendor::Generic,
        ),
    ] {
        let s = serve(t);
        let c = client(&s, fast());
        let systems = c.systems().await.unwrap();
        assert_eq!(systems.len(), 1);
        assert_eq!(systems[0].odata_id, sys);
        assert_eq!(systems[0].uuid.as_deref(), Some(uuid));
        let managers = c.managers().await.unwrap();
        assert_eq!(managers.len(), 1, "{t}");
        assert!(
            managers[0].has_graphical_console || t == DMTF,
            "{t}: {managers:?}"
        );
        assert_eq!(c.vendor().await.unwrap().vendor, vendor, "{t}");
    }
}

#[tokio::test]
async fn power_is_idempotent_and_checked_against_allowable_values() {
    let s = serve(DELL);
    let c = client(&s, fast());
    assert_eq!(
        c.power_on(DELL_SYS).await.unwrap(),
        PowerOutcome::AlreadyInState(PowerState::On)
    );
    assert!(
        s.requests(&Method::POST, DELL_SYS).is_empty(),
        "power on of an On system sent a reset"
    );
    assert_eq!(
        c.force_off(DELL_SYS).await.unwrap(),
        PowerOutcome::Issued(ResetType::ForceOff)
    );
    assert_eq!(
        c.system(DELL_SYS).await.unwrap().power_state,
        Some(PowerState::Off)
    );
    assert_eq!(
        c.power_off(DELL_SYS).await.unwrap(),
        PowerOutcome::AlreadyInState(PowerState::Off)
    );
    assert_eq!(
        c.power_on(DELL_SYS).await.unwrap(),
        PowerOutcome::Issued(ResetType::On)
    );
    assert_eq!(
        c.restart(DELL_SYS, true).await.unwrap(),
        PowerOutcome::Issued(ResetType::GracefulRestart)
    );
    assert_eq!(
        c.restart(DELL_SYS, false).await.unwrap(),
        PowerOutcome::Issued(ResetType::ForceRestart)
    );
    assert_eq!(
        c.power_cycle(DELL_SYS).await.unwrap(),
        PowerOutcome::Issued(ResetType::PowerCycle)
    );
    assert_eq!(
        c.power(DELL_SYS, PowerAction::GracefulOff).await.unwrap(),
        PowerOutcome::Issued(ResetType::GracefulShutdown)
    );
    let posts: Vec<Value> = s
        .requests(
            &Method::POST,
            &format!("{DELL_SYS}/Actions/ComputerSystem.Reset"),
        )
        .iter()
        .map(body)
        .collect();
    assert_eq!(
        posts,
        [
            "ForceOff",
            "On",
            "GracefulRestart",
            "ForceRestart",
            "PowerCycle",
            "GracefulShutdown"
        ]
        .map(|t| json!({"ResetType": t}))
    );

    // DMTF does not allow PowerCycle: ForceRestart is the fallback; restrict further and it is refused.
    let s = serve(DMTF);
    let c = client(&s, fast());
    assert_eq!(
        c.power_cycle(DMTF_SYS).await.unwrap(),
        PowerOutcome::Issued(ResetType::ForceRestart)
    );
    let mut sys = s.resource(DMTF_SYS).unwrap();
    sys["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"] =
        json!(["On", "ForceOff"]);
    s.put_resource(DMTF_SYS, sys);
    s.clear_log();
    let e = c.power_cycle(DMTF_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported, "{e}");
    assert!(e.to_string().contains("On, ForceOff"), "{e}");
    assert!(s.requests(&Method::POST, DMTF_SYS).is_empty());
}

#[tokio::test]
async fn supermicro_reset_types_come_from_action_info() {
    let s = serve(SMC);
    let c = client(&s, fast());
    assert_eq!(
        c.force_off(SMC_SYS).await.unwrap(),
        PowerOutcome::Issued(ResetType::ForceOff)
    );
    assert_eq!(
        s.requests(&Method::GET, "/redfish/v1/Systems/1/ResetActionInfo")
            .len(),
        1
    );
    let mut ai = s.resource("/redfish/v1/Systems/1/ResetActionInfo").unwrap();
    ai["Parameters"][0]["AllowableValues"] = json!(["On", "ForceOff"]);
    s.put_resource("/redfish/v1/Systems/1/ResetActionInfo", ai);
    let e = c.restart(SMC_SYS, true).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported, "{e}");
}

#[tokio::test]
async fn wait_for_power_state_polls_until_the_state_or_the_deadline() {
    let s = TreeServer::start(
        tree(DMTF),
        ServerOptions {
            power_delay: Duration::from_millis(300),
            ..ServerOptions::default()
        },
    );
    let c = client(&s, fast());
    c.force_off(DMTF_SYS).await.unwrap();
    assert_eq!(
        c.system(DMTF_SYS).await.unwrap().power_state,
        Some(PowerState::PoweringOff)
    );
    c.wait_for_power_state(DMTF_SYS, PowerState::Off, Duration::from_secs(5))
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let e = c
        .wait_for_power_state(DMTF_SYS, PowerState::On, Duration::from_millis(400))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Timeout);
    assert!(e.to_string().contains("still Off"), "{e}");
    assert!(t.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn boot_override_with_mode_quirks_and_skip_when_already_set() {
    // Dell reports UEFI: no mode sent.
    let s = serve(DELL);
    let c = client(&s, fast());
    assert!(
        c.set_boot_override(DELL_SYS, BootSource::Pxe, BootOverride::Once)
            .await
            .unwrap()
    );
    let p = s.requests(&Method::PATCH, DELL_SYS);
    assert_eq!(
        body(&p[0]),
        json!({"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}})
    );
    assert!(
        !c.set_boot_override(DELL_SYS, BootSource::Pxe, BootOverride::Once)
            .await
            .unwrap(),
        "identical override re-sent"
    );
    assert_eq!(s.requests(&Method::PATCH, DELL_SYS).len(), 1);
    assert!(
        c.set_boot_override(DELL_SYS, BootSource::UefiHttp, BootOverride::Continuous)
            .await
            .unwrap()
    );

    // Supermicro: UEFI always sent when the mode is reported.
    let s = serve(SMC);
    let c = client(&s, fast());
    c.set_boot_override(SMC_SYS, BootSource::Cd, BootOverride::Once)
        .await
        .unwrap();
    let p = s.requests(&Method::PATCH, SMC_SYS);
    assert_eq!(
        body(&p[0]),
        json!({"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Cd", "BootSourceOverrideMode": "UEFI"}})
    );

    // DMTF does not allow UefiHttp.
    let s = serve(DMTF);
    let c = client(&s, fast());
    let e = c
        .set_boot_override(DMTF_SYS, BootSource::UefiHttp, BootOverride::Once)
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported);
    assert!(s.requests(&Method::PATCH, DMTF_SYS).is_empty());
    assert!(
        c.set_boot_override(DMTF_SYS, BootSource::Hdd, BootOverride::Continuous)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn boot_order_get_and_set() {
    let s = serve(DELL);
    let c = client(&s, fast());
    let order = c.boot_order(DELL_SYS).await.unwrap();
    assert_eq!(
        order,
        ["Boot0000", "Boot0001", "Boot0003", "Boot0004", "Boot0002"]
    );
    let mut new = order.clone();
    new.reverse();
    assert!(c.set_boot_order(DELL_SYS, &new).await.unwrap());
    assert_eq!(c.boot_order(DELL_SYS).await.unwrap(), new);
    assert!(!c.set_boot_order(DELL_SYS, &new).await.unwrap());
    let e = c
        .set_boot_order(DELL_SYS, &["Boot9999".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Rejected);
}

fn attrs(v: Value) -> BTreeMap<String, AttributeValue> {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn bios_read_pending_and_validated_write_on_reset() {
    let s = serve(DELL);
    let c = client(&s, fast());
    let bios = c.bios(DELL_SYS).await.unwrap();
    assert_eq!(
        bios.attributes["ProcVirtualization"],
        AttributeValue::from("Enabled")
    );
    assert!(c.bios_pending(DELL_SYS).await.unwrap().is_empty());
    let reg = c.bios_registry(DELL_SYS).await.unwrap();
    assert!(reg.attributes().contains_key("SysProfile"));

    // Invalid: clear errors per attribute, nothing written.
    let e = c
        .set_bios_attributes(DELL_SYS, &attrs(json!({"ProcVirtualization": "Maybe", "NoSuchAttr": 1, "AcPwrRcvryUserDelay": "soon"})))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Rejected);
    let ErrorKind::InvalidAttributes(list) = e.kind() else {
        panic!("{e:?}")
    };
    let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["AcPwrRcvryUserDelay", "NoSuchAttr", "ProcVirtualization"]
    );
    assert!(s.requests(&Method::PATCH, "/redfish/v1/Systems").is_empty());

    // Valid: written to the settings object, to apply on reset; unchanged values dropped.
    let apply = c
        .set_bios_attributes(
            DELL_SYS,
            &attrs(json!({"ProcVirtualization": "Disabled", "SysProfile": "PerfOptimized"})),
        )
        .await
        .unwrap();
    assert!(apply.reset_required);
    assert_eq!(
        apply.changed.keys().collect::<Vec<_>>(),
        ["ProcVirtualization"]
    );
    let p = s.requests(
        &Method::PATCH,
        "/redfish/v1/Systems/System.Embedded.1/Bios/Settings",
    );
    assert_eq!(
        body(&p[0]),
        json!({"Attributes": {"ProcVirtualization": "Disabled"}, "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}})
    );
    assert_eq!(
        c.bios_pending(DELL_SYS).await.unwrap(),
        attrs(json!({"ProcVirtualization": "Disabled"}))
    );
    // Repeating writes nothing.
    let again = c
        .set_bios_attributes(DELL_SYS, &attrs(json!({"ProcVirtualization": "Disabled"})))
        .await
        .unwrap();
    assert!(again.changed.is_empty());
    assert_eq!(
        s.requests(
            &Method::PATCH,
            "/redfish/v1/Systems/System.Embedded.1/Bios/Settings"
        )
        .len(),
        1
    );

    // DMTF: pending values that differ from current; no registry: types follow current values.
    let s = serve(DMTF);
    let c = client(&s, fast());
    let pending = c.bios_pending(DMTF_SYS).await.unwrap();
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["AdminPhone", "EmbeddedSata", "NicBoot2", "ProcTurboMode"]
    );
    let e = c
        .set_bios_attributes(DMTF_SYS, &attrs(json!({"ProcCoreDisable": "two"})))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Rejected);
    let apply = c
        .set_bios_attributes(DMTF_SYS, &attrs(json!({"ProcCoreDisable": 2})))
        .await
        .unwrap();
    assert_eq!(
        apply.target.as_deref(),
        Some("/redfish/v1/Systems/437XR1138R2/Bios/Settings")
    );
    let p = s.requests(
        &Method::PATCH,
        "/redfish/v1/Systems/437XR1138R2/Bios/Settings",
    );
    assert_eq!(
        body(&p[0]),
        json!({"Attributes": {"ProcCoreDisable": 2}}),
        "apply time sent although not advertised"
    );
}

#[tokio::test]
async fn dell_bmc_attributes_via_oem_links() {
    let s = serve(DELL);
    let c = client(&s, fast());
    let mgr = "/redfish/v1/Managers/iDRAC.Embedded.1";
    let src = c.manager_attribute_source(mgr).await.unwrap();
    assert!(
        matches!(&src, ManagerAttributeSource::DellOem(l) if l.len() == 3),
        "{src:?}"
    );
    let a = c.manager_attributes(mgr).await.unwrap();
    assert_eq!(a["SNMP.1.AgentCommunity"], AttributeValue::from("public"));
    let apply = c
        .set_manager_attributes(
            mgr,
            &attrs(json!({"SNMP.1.AgentCommunity": "metal", "SysLog.1.SysLogEnable": "Disabled"})),
        )
        .await
        .unwrap();
    assert_eq!(
        apply.changed.keys().collect::<Vec<_>>(),
        ["SNMP.1.AgentCommunity"]
    );
    let settings =
        "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1/Settings";
    let p = s.requests(&Method::PATCH, settings);
    assert_eq!(p.len(), 1);
    assert_eq!(
        body(&p[0]),
        json!({"Attributes": {"SNMP.1.AgentCommunity": "metal"}, "@Redfish.SettingsApplyTime": {"ApplyTime": "Immediate"}})
    );
    assert!(
        p[0].if_match.is_some(),
        "If-Match missing on DellAttributes PATCH"
    );
    let e = c
        .set_manager_attributes(mgr, &attrs(json!({"SNMP.1.AgentEnable": "Sometimes"})))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Rejected, "{e}");
    // Generic BMCs without attributes say so.
    let s = serve(DMTF);
    let c = client(&s, fast());
    let e = c
        .manager_attributes("/redfish/v1/Managers/BMC")
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported);
}

#[tokio::test]
async fn firmware_update_follows_every_task_monitor_style() {
    for style in [
        TaskStyle::Location,
        TaskStyle::BodyTaskMonitor,
        TaskStyle::BodyOdataId,
    ] {
        let s = TreeServer::start(
            tree(DMTF),
            ServerOptions {
                task_style: style,
                ..ServerOptions::default()
            },
        );
        let c = client(&s, fast());
        let req = SimpleUpdateRequest {
            image_uri: "http://10.0.0.5/bmc-1.2.bin".into(),
            transfer_protocol: Some("HTTP".into()),
            targets: vec!["/redfish/v1/UpdateService/FirmwareInventory/BMC".into()],
            ..SimpleUpdateRequest::default()
        };
        let task = c
            .update_firmware(&req, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(task.task_state, Some(TaskState::Completed), "{style:?}");
        assert_eq!(
            task.messages[0].message_id.as_deref(),
            Some("Base.1.8.Success")
        );
        let posts = s.requests(
            &Method::POST,
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
        );
        assert_eq!(posts.len(), 1);
        assert_eq!(
            body(&posts[0]),
            json!({"ImageURI": "http://10.0.0.5/bmc-1.2.bin", "TransferProtocol": "HTTP", "Targets": ["/redfish/v1/UpdateService/FirmwareInventory/BMC"]})
        );
    }
    // A failing update is TaskFailed with the final task and its messages.
    let s = serve(DMTF);
    let c = client(&s, fast());
    let req = SimpleUpdateRequest {
        image_uri: "http://10.0.0.5/fail.bin".into(),
        ..SimpleUpdateRequest::default()
    };
    let e = c
        .update_firmware(&req, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::TaskFailed, "{e}");
    assert_eq!(e.task().unwrap().task_state, Some(TaskState::Exception));
    assert!(e.to_string().contains("image rejected"), "{e}");
}

#[tokio::test]
async fn dell_simple_update_quirks() {
    let s = TreeServer::start(
        tree(DELL),
        ServerOptions {
            reject_if_match_on_actions: true,
            ..ServerOptions::default()
        },
    );
    let c = client(&s, fast());
    let req = SimpleUpdateRequest {
        image_uri: "http://10.0.0.5/BIOS_1.9.exe".into(),
        transfer_protocol: Some("HTTP".into()),
        username: Some("fw".into()),
        password: Some(Secret::new("fw-pass")),
        ..SimpleUpdateRequest::default()
    };
    let h = c.simple_update(&req).await.unwrap();
    assert!(
        h.monitor
            .as_deref()
            .unwrap()
            .starts_with("/redfish/v1/TaskService/Tasks/")
    );
    let p = s.requests(
        &Method::POST,
        "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
    );
    assert_eq!(p[0].if_match, None);
    assert_eq!(body(&p[0])["@Redfish.OperationApplyTime"], "Immediate");
    assert_eq!(body(&p[0])["Password"], "fw-pass");
    let t = c
        .wait_for_task(h.monitor.as_deref().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(t.percent_complete, Some(100));
    let e = c
        .simple_update(&SimpleUpdateRequest {
            image_uri: "x".into(),
            transfer_protocol: Some("SCP".into()),
            ..SimpleUpdateRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported, "{e}");
    let fw = c.firmware_inventory().await.unwrap();
    assert!(
        fw.iter()
            .any(|f| f.version.as_deref() == Some("6.00.30.00")),
        "{fw:?}"
    );
}

#[tokio::test]
async fn manager_reset_checks_allowed_values() {
    let s = serve(DELL);
    let c = client(&s, fast());
    let mgr = "/redfish/v1/Managers/iDRAC.Embedded.1";
    let e = c
        .reset_manager(mgr, ResetType::ForceRestart)
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported);
    assert!(s.requests(&Method::POST, mgr).is_empty());
    c.reset_manager(mgr, ResetType::GracefulRestart)
        .await
        .unwrap();
    let p = s.requests(&Method::POST, &format!("{mgr}/Actions/Manager.Reset"));
    assert_eq!(body(&p[0]), json!({"ResetType": "GracefulRestart"}));
    let m = c
        .wait_for_manager(mgr, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(m.firmware_version.as_deref(), Some("6.00.30.00"));
    // A manager without PowerState (HPE iLO 6) still counts as back.
    let mut doc = s.resource(mgr).unwrap();
    doc.as_object_mut().unwrap().remove("PowerState");
    s.put_resource(mgr, doc);
    assert!(
        c.wait_for_manager(mgr, Duration::from_secs(2))
            .await
            .unwrap()
            .power_state
            .is_none()
    );
}

#[tokio::test]
async fn virtual_media_insert_and_eject_are_idempotent_in_every_layout() {
    let iso = "http://10.0.0.5/boot.iso";
    for (t, sys, slot) in [
        (
            DELL,
            DELL_SYS,
            "/redfish/v1/Systems/System.Embedded.1/VirtualMedia/1",
        ),
        (
            SMC,
            SMC_SYS,
            "/redfish/v1/Managers/1/VirtualMedia/VirtualMedia1",
        ),
    ] {
        let s = serve(t);
        let c = client(&s, fast());
        assert_eq!(
            c.eject_media(sys).await.unwrap(),
            MediaOutcome::NothingToEject,
            "{t}"
        );
        let m = InsertMedia {
            image: iso.into(),
            ..InsertMedia::default()
        };
        assert_eq!(
            c.insert_media(sys, &m).await.unwrap(),
            MediaOutcome::Inserted { ejected: None },
            "{t}"
        );
        let p = s.requests(
            &Method::POST,
            &format!("{slot}/Actions/VirtualMedia.InsertMedia"),
        );
        assert_eq!(
            body(&p[0]),
            json!({"Image": iso, "Inserted": true, "WriteProtected": true}),
            "{t}"
        );
        assert_eq!(
            c.insert_media(sys, &m).await.unwrap(),
            MediaOutcome::AlreadyInserted,
            "{t}"
        );
        assert_eq!(
            s.requests(
                &Method::POST,
                &format!("{slot}/Actions/VirtualMedia.InsertMedia")
            )
            .len(),
            1,
            "{t}"
        );
        let other = InsertMedia {
            image: "http://10.0.0.5/other.iso".into(),
            ..InsertMedia::default()
        };
        assert_eq!(
            c.insert_media(sys, &other).await.unwrap(),
            MediaOutcome::Inserted {
                ejected: Some(iso.into())
            },
            "{t}"
        );
        assert_eq!(
            s.resource(slot).unwrap()["Image"],
            "http://10.0.0.5/other.iso"
        );
        assert_eq!(
            c.eject_media(sys).await.unwrap(),
            MediaOutcome::Ejected,
            "{t}"
        );
        assert_eq!(s.resource(slot).unwrap()["Inserted"], false);
    }
    // Supermicro has no EjectMedia action: ejected with a PATCH.
    let s = serve(SMC);
    let c = client(&s, fast());
    c.insert_media(
        SMC_SYS,
        &InsertMedia {
            image: iso.into(),
            ..InsertMedia::default()
        },
    )
    .await
    .unwrap();
    c.eject_media(SMC_SYS).await.unwrap();
    let p = s.requests(
        &Method::PATCH,
        "/redfish/v1/Managers/1/VirtualMedia/VirtualMedia1",
    );
    assert_eq!(body(&p[0]), json!({"Image": null, "Inserted": false}));
    // DMTF: the CD is already inserted with another image and has no actions: PATCH both ways.
    let s = serve(DMTF);
    let c = client(&s, fast());
    let r = c
        .insert_media(
            DMTF_SYS,
            &InsertMedia {
                image: iso.into(),
                write_protected: Some(false),
                ..InsertMedia::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        MediaOutcome::Inserted {
            ejected: Some("redfish.dmtf.org/freeImages/freeOS.1.1.iso".into())
        }
    );
    let p = s.requests(
        &Method::PATCH,
        "/redfish/v1/Systems/437XR1138R2/VirtualMedia/CD1",
    );
    assert_eq!(p.len(), 2);
    assert_eq!(
        body(&p[1]),
        json!({"Image": iso, "Inserted": true, "WriteProtected": false})
    );
}

#[tokio::test]
async fn indicator_led() {
    let s = serve(DELL);
    let c = client(&s, fast());
    assert!(
        c.set_indicator_led(DELL_SYS, IndicatorLed::Off)
            .await
            .unwrap()
    );
    assert_eq!(
        body(&s.requests(&Method::PATCH, DELL_SYS)[0]),
        json!({"IndicatorLED": "Off"})
    );
    assert!(
        !c.set_indicator_led(DELL_SYS, IndicatorLed::Off)
            .await
            .unwrap()
    );
    assert_eq!(s.requests(&Method::PATCH, DELL_SYS).len(), 1);
}

#[tokio::test]
async fn dell_accounts_use_slots() {
    let s = serve(DELL);
    let c = client(&s, fast());
    let new = NewAccount {
        username: "metal".into(),
        password: Secret::new("Metal-Pw-1"),
        role: "Administrator".into(),
        enabled: true,
    };
    let uri = c.create_account(&new).await.unwrap();
    assert_eq!(
        uri, "/redfish/v1/AccountService/Accounts/5",
        "first empty slot after Id 1"
    );
    assert!(
        s.requests(&Method::POST, "/redfish/v1/AccountService/Accounts")
            .is_empty(),
        "iDRAC: no POST"
    );
    let p = s.requests(&Method::PATCH, &uri);
    assert_eq!(
        body(&p[0]),
        json!({"UserName": "metal", "Password": "Metal-Pw-1", "RoleId": "Administrator", "Enabled": true})
    );
    let e = c
        .update_account(
            "metal",
            &AccountUpdate {
                role: Some("Operator".into()),
                ..AccountUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.class(),
        ErrorClass::Rejected,
        "iDRAC needs the password in account PATCH: {e}"
    );
    c.update_account_password("metal", Secret::new("Metal-Pw-2"))
        .await
        .unwrap();
    assert_eq!(
        body(&s.requests(&Method::PATCH, &uri)[1]),
        json!({"Password": "Metal-Pw-2"})
    );
    assert!(c.delete_account("metal").await.unwrap());
    assert!(
        s.requests(&Method::DELETE, "/redfish/v1/AccountService")
            .is_empty()
    );
    assert_eq!(
        body(&s.requests(&Method::PATCH, &uri)[2]),
        json!({"UserName": "", "Enabled": false})
    );
    assert!(!c.delete_account("metal").await.unwrap());
}

#[tokio::test]
async fn generic_accounts_post_and_fall_back_on_405() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    let new = NewAccount {
        username: "metal".into(),
        password: Secret::new("Metal-Pw-1"),
        role: "Operator".into(),
        enabled: true,
    };
    let uri = c.create_account(&new).await.unwrap();
    assert!(uri.starts_with("/redfish/v1/AccountService/Accounts/"));
    assert_eq!(
        s.requests(&Method::POST, "/redfish/v1/AccountService/Accounts")
            .len(),
        1
    );
    // Creating again updates instead.
    assert_eq!(c.create_account(&new).await.unwrap(), uri);
    assert_eq!(
        s.requests(&Method::POST, "/redfish/v1/AccountService/Accounts")
            .len(),
        1
    );
    c.update_account(
        "metal",
        &AccountUpdate {
            enabled: Some(false),
            ..AccountUpdate::default()
        },
    )
    .await
    .unwrap();
    assert!(c.delete_account("metal").await.unwrap());
    assert_eq!(s.requests(&Method::DELETE, &uri).len(), 1);

    // POST 405 -> PATCH an empty slot; DELETE 405 -> PATCH blank.
    let s = TreeServer::start(
        tree(DMTF),
        ServerOptions {
            post_405: vec!["/redfish/v1/AccountService/Accounts".into()],
            delete_405: vec!["/redfish/v1/AccountService/Accounts/".into()],
            ..ServerOptions::default()
        },
    );
    let c = client(&s, fast());
    let e = c.create_account(&new).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported, "no free slot: {e}");
    // Add an empty slot (as iDRAC has them).
    let slot = "/redfish/v1/AccountService/Accounts/9";
    s.put_resource(
        slot,
        json!({"@odata.id": slot, "Id": "9", "UserName": "", "Enabled": false}),
    );
    let mut coll = s.resource("/redfish/v1/AccountService/Accounts").unwrap();
    coll["Members"]
        .as_array_mut()
        .unwrap()
        .push(json!({"@odata.id": slot}));
    s.put_resource("/redfish/v1/AccountService/Accounts", coll);
    assert_eq!(c.create_account(&new).await.unwrap(), slot);
    assert!(c.delete_account("metal").await.unwrap());
    let p = s.requests(&Method::PATCH, slot);
    assert_eq!(
        body(p.last().unwrap()),
        json!({"UserName": "", "Enabled": false})
    );
}

#[tokio::test]
async fn event_subscriptions_create_recover_and_delete() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    let req = EventSubscriptionRequest::new("https://10.0.0.1:8443/events");
    let uri = c.create_event_subscription(&req).await.unwrap();
    let p = s.requests(&Method::POST, "/redfish/v1/EventService/Subscriptions");
    assert_eq!(
        body(&p[0]),
        json!({"Destination": "https://10.0.0.1:8443/events", "EventFormatType": "Event", "Protocol": "Redfish",
               "Context": "metal-operator", "DeliveryRetryPolicy": "TerminateAfterRetries", "EventTypes": []})
    );
    // Creating again returns the existing one without a POST.
    assert_eq!(c.create_event_subscription(&req).await.unwrap(), uri);
    assert_eq!(
        s.requests(&Method::POST, "/redfish/v1/EventService/Subscriptions")
            .len(),
        1
    );
    // The listing misses it but the BMC says it exists: recovered.
    s.fault_method(
        Method::GET,
        "/redfish/v1/EventService/Subscriptions",
        FaultKind::Status {
            status: 200,
            retry_after: None,
            body: Some(r#"{"Members": []}"#.into()),
        },
        Some(1),
    );
    assert_eq!(c.create_event_subscription(&req).await.unwrap(), uri);
    assert_eq!(
        s.requests(&Method::POST, "/redfish/v1/EventService/Subscriptions")
            .len(),
        2
    );
    assert!(
        c.event_subscriptions()
            .await
            .unwrap()
            .iter()
            .any(|e| e.odata_id.as_deref() == Some(uri.as_str()))
    );
    assert!(c.delete_event_subscription(&uri).await.unwrap());
    assert!(!c.delete_event_subscription(&uri).await.unwrap());

    // HPE iLO: no DeliveryRetryPolicy.
    let s = serve(DMTF);
    let mut root = s.resource("/redfish/v1").unwrap();
    root["Vendor"] = json!("HPE");
    s.put_resource("/redfish/v1", root);
    let c = client(&s, fast());
    c.create_event_subscription(&req).await.unwrap();
    let p = s.requests(&Method::POST, "/redfish/v1/EventService/Subscriptions");
    assert!(
        body(&p[0]).get("DeliveryRetryPolicy").is_none(),
        "{:?}",
        p[0].body
    );
}

#[tokio::test]
async fn task_quirks_hpe_success_in_error_body_and_lenovo_jobs() {
    let s = serve(DMTF);
    let c = client(&s, fast());
    // HPE iLO: the finished monitor answers an error body whose message id says Success.
    let monitor = "/redfish/v1/TaskMonitors/ilo-1";
    let body = r#"{"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo",
        "@Message.ExtendedInfo": [{"MessageId": "iLO.2.14.Success"}]}}"#;
    s.fault(
        monitor,
        FaultKind::Status {
            status: 400,
            retry_after: None,
            body: Some(body.into()),
        },
        None,
    );
    let t = c
        .wait_for_task(monitor, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(t.task_state, Some(TaskState::Completed));
    assert_eq!(
        t.messages[0].message_id.as_deref(),
        Some("iLO.2.14.Success")
    );

    // Lenovo XCC: a completed task hands over to a job, which is followed to its end.
    let task = "/redfish/v1/TaskService/Tasks/lenovo-1";
    let job = "/redfish/v1/JobService/Jobs/7";
    s.put_resource(
        task,
        json!({"@odata.id": task, "Id": "lenovo-1", "TaskState": "Completed", "TaskStatus": "OK",
        "Messages": [{"MessageId": "Task.1.0.OperationTransitionedToJob", "MessageArgs": [job]}]}),
    );
    s.put_resource(job, json!({"@odata.id": job, "Id": "7", "JobState": "Completed", "JobStatus": "OK", "PercentComplete": 100}));
    let t = c.wait_for_task(task, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        (t.id.as_deref(), t.task_state.clone()),
        (Some("7"), Some(TaskState::Completed))
    );
    s.put_resource(
        job,
        json!({"@odata.id": job, "Id": "7", "JobState": "Exception", "JobStatus": "Critical",
        "Messages": [{"MessageId": "Job.1.0.Failed", "Message": "flash failed"}]}),
    );
    let e = c
        .wait_for_task(task, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::TaskFailed);
    assert!(e.to_string().contains("flash failed"), "{e}");

    // A task that never ends: Timeout with the last state in the message.
    let running = "/redfish/v1/TaskService/Tasks/slow";
    s.put_resource(
        running,
        json!({"@odata.id": running, "TaskState": "Running", "PercentComplete": 40}),
    );
    let e = c
        .wait_for_task(running, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Timeout);
    assert!(e.to_string().contains("task still Running (40%)"), "{e}");
}

#[tokio::test]
async fn bmc_attributes_through_manager_settings() {
    let s = serve(DMTF);
    let mgr = "/redfish/v1/Managers/BMC";
    let settings = "/redfish/v1/Managers/BMC/Settings";
    let mut m = s.resource(mgr).unwrap();
    m["Attributes"] =
        json!({"NtpServer": "pool.ntp.org", "SshEnabled": true, "SessionTimeout": 300});
    m["@Redfish.Settings"] = json!({"SettingsObject": {"@odata.id": settings}});
    s.put_resource(mgr, m);
    s.put_resource(settings, json!({"@odata.id": settings, "Attributes": {}}));
    let c = client(&s, fast());
    assert_eq!(
        c.manager_attribute_source(mgr).await.unwrap(),
        ManagerAttributeSource::Settings(settings.into())
    );
    assert_eq!(
        c.manager_attributes(mgr).await.unwrap()["SessionTimeout"],
        AttributeValue::Integer(300)
    );
    let e = c
        .set_manager_attributes(mgr, &attrs(json!({"SshEnabled": "no", "Unknown": 1})))
        .await
        .unwrap_err();
    let ErrorKind::InvalidAttributes(list) = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(list.len(), 2);
    let apply = c
        .set_manager_attributes(
            mgr,
            &attrs(json!({"SshEnabled": false, "SessionTimeout": 300})),
        )
        .await
        .unwrap();
    assert_eq!(apply.changed.keys().collect::<Vec<_>>(), ["SshEnabled"]);
    let p = s.requests(&Method::PATCH, settings);
    assert_eq!(
        body(&p[0]),
        json!({"Attributes": {"SshEnabled": false}, "@Redfish.SettingsApplyTime": {"ApplyTime": "Immediate"}})
    );
    assert_eq!(
        c.manager_pending_attributes(mgr).await.unwrap(),
        attrs(json!({"SshEnabled": false}))
    );
}
