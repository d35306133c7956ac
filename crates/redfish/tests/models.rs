//! Model parsing against real captured trees: the trimmed copies in tests/fixtures (always) and the
//! full trees in $METAL_SHARED_DIR/fixtures/redfish (skipped with a note when absent). Plus a corpus of
//! mutated fixture bytes that every parser must survive without panicking.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use rand::{Rng, SeedableRng};
use redfish::models::*;
use serde_json::Value;

/// Parses one resource with the model its `@odata.type` names; returns the model name used.
fn parse_typed(bytes: &[u8]) -> Result<&'static str, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let ty = v.get("@odata.type").and_then(Value::as_str).unwrap_or("");
    let name = ty.rsplit('.').next().unwrap_or("");
    macro_rules! check {
        ($t:ty, $label:expr) => {{
            let m: $t = parse(bytes).map_err(|e| format!("{}: {e}", $label))?;
            let back = serde_json::to_value(&m).map_err(|e| e.to_string())?;
            let _: $t =
                serde_json::from_value(back).map_err(|e| format!("{} round trip: {e}", $label))?;
            Ok($label)
        }};
    }
    if name.ends_with("Collection") {
        // Members@odata.count is not checked: real captures disagree with their own member lists.
        let c: Collection = parse(bytes).map_err(|e| e.to_string())?;
        assert!(c.members.iter().all(|m| !m.odata_id.is_empty()));
        return Ok("Collection");
    }
    match name {
        "ServiceRoot" => check!(ServiceRoot, "ServiceRoot"),
        "ComputerSystem" => check!(ComputerSystem, "ComputerSystem"),
        "Processor" => check!(Processor, "Processor"),
        "Memory" => check!(Memory, "Memory"),
        "Storage" => check!(Storage, "Storage"),
        "StorageController" => check!(StorageController, "StorageController"),
        "Drive" => check!(Drive, "Drive"),
        "Volume" => check!(Volume, "Volume"),
        "SimpleStorage" => check!(SimpleStorage, "SimpleStorage"),
        "EthernetInterface" => check!(EthernetInterface, "EthernetInterface"),
        "Manager" => check!(Manager, "Manager"),
        "Chassis" => check!(Chassis, "Chassis"),
        "Bios" | "DellAttributes" => check!(Bios, "Bios"),
        "AttributeRegistry" => check!(AttributeRegistry, "AttributeRegistry"),
        "MessageRegistryFile" => check!(RegistryFile, "RegistryFile"),
        "UpdateService" => check!(UpdateService, "UpdateService"),
        "SoftwareInventory" => check!(SoftwareInventory, "SoftwareInventory"),
        "TaskService" => check!(TaskService, "TaskService"),
        "Task" => check!(Task, "Task"),
        "VirtualMedia" => check!(VirtualMedia, "VirtualMedia"),
        "AccountService" => check!(AccountService, "AccountService"),
        "ManagerAccount" => check!(ManagerAccount, "ManagerAccount"),
        "EventService" => check!(EventService, "EventService"),
        "EventDestination" => check!(EventDestination, "EventDestination"),
        "ActionInfo" => check!(ActionInfo, "ActionInfo"),
        _ => Ok("other"),
    }
}

fn parse_tree(dir: &Path) -> std::collections::BTreeMap<&'static str, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (path, bytes) in support::tree_files(dir) {
        if path.contains("JsonSchemas")
            || path.contains("$metadata")
            || path.ends_with("headers.json")
        {
            continue;
        }
        match parse_typed(&bytes) {
            Ok(model) => *counts.entry(model).or_insert(0) += 1,
            Err(e) if serde_json::from_slice::<Value>(&bytes).is_err() => {
                panic!("{path}: fixture is not JSON: {e}")
            }
            Err(e) => panic!("{}/{path}: {e}", dir.display()),
        }
    }
    counts
}

fn mini(tree: &str) -> std::path::PathBuf {
    support::fixtures_dir().join(tree)
}

fn read(tree: &str, rel: &str) -> Vec<u8> {
    let base = mini(tree);
    let base = if base.join("redfish/v1").is_dir() {
        base.join("redfish/v1")
    } else {
        base
    };
    std::fs::read(base.join(rel).join("index.json")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_resource_of_the_trimmed_trees_parses() {
    for tree in [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ] {
        let counts = parse_tree(&mini(tree));
        for needed in [
            "ServiceRoot",
            "ComputerSystem",
            "Processor",
            "Memory",
            "EthernetInterface",
            "Manager",
            "Collection",
            "AccountService",
            "ManagerAccount",
            "EventService",
            "UpdateService",
            "TaskService",
            "Chassis",
        ] {
            assert!(
                counts.get(needed).copied().unwrap_or(0) > 0,
                "{tree}: no {needed} parsed: {counts:?}"
            );
        }
    }
}

#[test]
fn every_resource_of_the_full_trees_parses() {
    let Some(dir) = support::shared_trees_dir() else {
        eprintln!(
            "SKIP: full Redfish trees not found (set METAL_SHARED_DIR); trimmed copies were tested instead"
        );
        return;
    };
    for tree in [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ] {
        let counts = parse_tree(&dir.join(tree));
        let total: usize = counts.values().sum();
        eprintln!("{tree}: {total} resources parsed: {counts:?}");
        assert!(counts["ComputerSystem"] >= 1);
        assert!(
            counts.get("Drive").copied().unwrap_or(0) >= 1 || tree == "dmtf-public-rackmount1",
            "{tree}: {counts:?}"
        );
    }
}

#[test]
fn service_roots() {
    let dell: ServiceRoot = parse(&read("dell-poweredge-r750", "")).unwrap();
    assert_eq!(dell.vendor.as_deref(), Some("Dell"));
    assert_eq!(dell.redfish_version.as_deref(), Some("1.13.1"));
    assert_eq!(dell.expand_levels(), Some(1));
    assert_eq!(
        dell.links.unwrap().sessions.unwrap().odata_id,
        "/redfish/v1/SessionService/Sessions"
    );
    let smc: ServiceRoot = parse(&read("supermicro-sys-821ge", "")).unwrap();
    assert_eq!(smc.vendor, None);
    assert_eq!(smc.oem_keys(), ["Supermicro"]);
    assert_eq!(smc.expand_levels(), Some(2));
    let dmtf: ServiceRoot = parse(&read("dmtf-public-rackmount1", "")).unwrap();
    assert_eq!(dmtf.expand_levels(), Some(6));
    assert_eq!(dmtf.systems.unwrap().odata_id, "/redfish/v1/Systems");
}

#[test]
fn computer_systems() {
    let s: ComputerSystem =
        parse(&read("dell-poweredge-r750", "Systems/System.Embedded.1")).unwrap();
    assert_eq!(s.serial_number.as_deref(), Some("CNIVC0014M0388"));
    assert_eq!(s.sku.as_deref(), Some("F54P1G3"));
    assert_eq!(s.power_state, Some(PowerState::On));
    assert_eq!(s.indicator_led, Some(IndicatorLed::Lit));
    assert_eq!(
        s.memory_summary.as_ref().unwrap().total_system_memory_gib,
        Some(512.0)
    );
    assert_eq!(s.processor_summary.as_ref().unwrap().count, Some(2));
    let boot = s.boot.as_ref().unwrap();
    assert_eq!(boot.override_mode, Some(BootSourceOverrideMode::Uefi));
    assert_eq!(
        boot.override_enabled,
        Some(BootSourceOverrideEnabled::Disabled)
    );
    assert!(
        boot.override_target_allowable
            .contains(&BootSource::UefiHttp)
    );
    assert!(boot.override_target_allowable.contains(&BootSource::SdCard));
    assert_eq!(
        boot.boot_order,
        ["Boot0000", "Boot0001", "Boot0003", "Boot0004", "Boot0002"]
    );
    let reset = s.reset_action().unwrap();
    assert_eq!(reset.allowable("ResetType").unwrap().len(), 8);
    assert_eq!(
        s.manager_link().unwrap().odata_id,
        "/redfish/v1/Managers/iDRAC.Embedded.1"
    );

    let s: ComputerSystem = parse(&read("supermicro-sys-821ge", "Systems/1")).unwrap();
    let reset = s.reset_action().unwrap();
    assert_eq!(reset.allowable("ResetType"), None);
    assert_eq!(
        reset.action_info.as_deref(),
        Some("/redfish/v1/Systems/1/ResetActionInfo")
    );
    // An unknown enum value is kept verbatim.
    assert!(
        s.boot
            .unwrap()
            .override_target_allowable
            .contains(&BootSource::Unknown("UsbCd".into()))
    );
    assert_eq!(
        s.virtual_media.unwrap().odata_id,
        "/redfish/v1/Managers/1/VirtualMedia"
    );
    let ai: ActionInfo = parse(&read("supermicro-sys-821ge", "Systems/1/ResetActionInfo")).unwrap();
    assert!(
        ai.allowable("ResetType")
            .unwrap()
            .iter()
            .any(|v| v == "ForceOff"),
        "{ai:?}"
    );
}

#[test]
fn managers_bios_registries() {
    let m: Manager = parse(&read("dell-poweredge-r750", "Managers/iDRAC.Embedded.1")).unwrap();
    assert_eq!(m.firmware_version.as_deref(), Some("6.00.30.00"));
    assert_eq!(
        m.reset_action().unwrap().allowable("ResetType").unwrap(),
        ["GracefulRestart"]
    );
    assert_eq!(m.dell_attribute_links().len(), 3);
    assert_eq!(m.power_state, Some(PowerState::On));
    let b: Bios = parse(&read(
        "dell-poweredge-r750",
        "Systems/System.Embedded.1/Bios",
    ))
    .unwrap();
    assert_eq!(
        b.settings_object(),
        Some("/redfish/v1/Systems/System.Embedded.1/Bios/Settings")
    );
    assert!(
        b.settings
            .as_ref()
            .unwrap()
            .supported_apply_times
            .iter()
            .any(|t| t == "OnReset")
    );
    assert!(!b.attributes.is_empty());
    let r: AttributeRegistry = parse(&read(
        "dell-poweredge-r750",
        "Systems/System.Embedded.1/Bios/BiosRegistry",
    ))
    .unwrap();
    let attrs = r.attributes();
    for name in b.attributes.keys() {
        assert!(attrs.contains_key(name.as_str()), "registry lacks {name}");
    }
    let f: RegistryFile = parse(&read(
        "dell-poweredge-r750",
        "Registries/BiosAttributeRegistry.v1_0_0",
    ))
    .unwrap();
    assert_eq!(
        f.uri(),
        Some("/redfish/v1/Systems/System.Embedded.1/Bios/BiosRegistry")
    );
    let dmtf: Bios = parse(&read("dmtf-public-rackmount1", "Systems/437XR1138R2/Bios")).unwrap();
    assert_eq!(
        dmtf.attributes["ProcCoreDisable"],
        AttributeValue::Integer(0)
    );
    assert_eq!(
        dmtf.attributes["BootMode"],
        AttributeValue::String("Uefi".into())
    );
}

#[test]
fn storage_nics_vmedia_accounts_tasks() {
    let st: Storage = parse(&read("supermicro-sys-821ge", "Systems/1/Storage/NVMeSSD")).unwrap();
    assert_eq!(st.storage_controllers.len(), 1);
    assert_eq!(
        st.storage_controllers[0].firmware_version.as_deref(),
        Some("03")
    );
    assert_eq!(st.drives.len(), 8);
    assert!(
        st.drives[0]
            .odata_id
            .starts_with("/redfish/v1/Chassis/NVMeSSD.0.Group.0.StorageBackplane/Drives/")
    );
    let d: Drive = parse(&read(
        "dell-poweredge-r750",
        "Systems/System.Embedded.1/Storage/CPU.1/Drives/Disk.Bay.0:Enclosure.Internal.0-1",
    ))
    .unwrap();
    assert_eq!(d.capacity_bytes, Some(1_920_383_410_176));
    let ss: SimpleStorage = parse(&read(
        "dmtf-public-rackmount1",
        "Systems/437XR1138R2/SimpleStorage/1",
    ))
    .unwrap();
    assert_eq!(ss.devices.len(), 4);
    let nic: EthernetInterface = parse(&read(
        "supermicro-sys-821ge",
        "Systems/1/EthernetInterfaces/1",
    ))
    .unwrap();
    assert_eq!(nic.mac_address.as_deref(), Some("94:6d:ae:91:fb:22"));
    assert_eq!(nic.link_status, Some(LinkStatus::LinkDown));
    assert_eq!(nic.speed_mbps, Some(0));
    let vm: VirtualMedia = parse(&read(
        "dell-poweredge-r750",
        "Systems/System.Embedded.1/VirtualMedia/1",
    ))
    .unwrap();
    assert!(vm.is_optical() || !vm.media_types.is_empty(), "{vm:?}");
    let accounts: Collection =
        parse(&read("dell-poweredge-r750", "AccountService/Accounts")).unwrap();
    assert_eq!(accounts.members.len(), 16);
    let slot: ManagerAccount =
        parse(&read("dell-poweredge-r750", "AccountService/Accounts/3")).unwrap();
    assert_eq!(slot.id.as_deref(), Some("3"));
    let t: Task = parse(&read("dmtf-public-rackmount1", "TaskService/Tasks/545")).unwrap();
    assert!(t.task_state.is_some(), "{t:?}");
    let fw: SoftwareInventory = parse(&read(
        "dell-poweredge-r750",
        "UpdateService/FirmwareInventory/Installed-25227-6.00.30.00__iDRAC.Embedded.1-1",
    ))
    .unwrap();
    assert_eq!(fw.version.as_deref(), Some("6.00.30.00"));
    let us: UpdateService = parse(&read("dell-poweredge-r750", "UpdateService")).unwrap();
    assert!(us.simple_update().unwrap().target.is_some());
}

#[test]
fn vendor_variance_is_tolerated() {
    // Numbers as strings, nulls, unknown enum values, wrong types, duplicate keys.
    let s: ComputerSystem = parse(
        br#"{"@odata.id": "/redfish/v1/Systems/1", "PowerState": "Sleeping", "ProcessorSummary": {"Count": "2"},
            "MemorySummary": {"TotalSystemMemoryGiB": "1024"}, "SerialNumber": null, "UUID": 12,
            "Boot": {"BootOrder": null, "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", 7, "Foo"]},
            "Status": "OK", "Links": {"ManagedBy": "/redfish/v1/Managers/1"}, "Model": "a", "Model": "b"}"#,
    )
    .unwrap();
    assert_eq!(s.power_state, Some(PowerState::Unknown("Sleeping".into())));
    assert_eq!(s.processor_summary.unwrap().count, Some(2));
    assert_eq!(
        s.memory_summary.unwrap().total_system_memory_gib,
        Some(1024.0)
    );
    assert_eq!(s.serial_number, None);
    assert_eq!(s.uuid.as_deref(), Some("12"));
    assert_eq!(s.status, None);
    assert_eq!(s.model.as_deref(), Some("b"));
    assert_eq!(
        s.boot.unwrap().override_target_allowable,
        [BootSource::Pxe, BootSource::Unknown("Foo".into())]
    );
    let e: RedfishErrorBody = parse(
        br#"{"error": {"code": "Base.1.8.GeneralError", "message": "m", "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.PropertyUnknown", "Message": "The property Foo is not in the list", "MessageArgs": ["Foo"], "Severity": "Warning"}]}}"#,
    )
    .unwrap();
    let info = e.error.unwrap();
    assert_eq!(info.extended_info[0].message_args, ["Foo"]);
}

/// Model parsers that must never panic, whatever the bytes.
fn run_all_parsers(bytes: &[u8]) -> usize {
    let mut ok = 0;
    macro_rules! p {
        ($($t:ty),*) => {$( if parse::<$t>(bytes).is_ok() { ok += 1; } )*};
    }
    p!(
        ServiceRoot,
        Collection,
        ComputerSystem,
        Processor,
        Memory,
        Storage,
        StorageController,
        Drive,
        Volume,
        SimpleStorage,
        EthernetInterface,
        Manager,
        Chassis,
        Bios,
        AttributeRegistry,
        RegistryFile,
        UpdateService,
        SoftwareInventory,
        TaskService,
        Task,
        VirtualMedia,
        AccountService,
        ManagerAccount,
        EventService,
        EventDestination,
        ActionInfo,
        RedfishErrorBody
    );
    ok
}

const PARSERS: usize = 27;

fn mutate_types(v: &mut Value, rng: &mut rand::rngs::StdRng) {
    match v {
        Value::Object(m) => m.values_mut().for_each(|c| mutate_types(c, rng)),
        Value::Array(a) => a.iter_mut().for_each(|c| mutate_types(c, rng)),
        scalar => {
            *scalar = match rng.random_range(0..8) {
                0 => Value::Null,
                1 => Value::String(scalar.to_string()),
                2 => serde_json::json!([scalar.clone()]),
                3 => serde_json::json!({"x": scalar.clone()}),
                4 => serde_json::json!(-1),
                5 => serde_json::json!(1e308),
                _ => scalar.clone(),
            }
        }
    }
}

#[test]
fn mutated_fixture_corpus_never_panics_and_objects_always_parse() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_f00d);
    let mut runs = 0usize;
    for tree in [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ] {
        for (path, bytes) in support::tree_files(&mini(tree)) {
            // Truncations.
            for i in 1..=6 {
                let cut = bytes.len() * i / 7;
                run_all_parsers(&bytes[..cut]);
                runs += 1;
            }
            // Random byte flips.
            for _ in 0..6 {
                let mut b = bytes.clone();
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                run_all_parsers(&b);
                runs += 1;
            }
            // Type confusion: any JSON object must parse into every model (fields just drop out).
            let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            if !v.is_object() {
                continue;
            }
            for _ in 0..2 {
                mutate_types(&mut v, &mut rng);
                let b = serde_json::to_vec(&v).unwrap();
                assert_eq!(
                    run_all_parsers(&b),
                    PARSERS,
                    "{tree}/{path}: a model rejected a JSON object"
                );
                runs += 1;
            }
        }
    }
    assert!(runs > 1000, "{runs}");
}
