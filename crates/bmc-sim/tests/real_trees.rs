//! Each captured vendor tree in `../shared/fixtures/redfish` (when present) is served unchanged by
//! BMC 0, with derived identities on the others, and its state machine works.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Client, shared_dir, spec, wait_until};
use http::StatusCode;
use metal_bmc_sim::{Simulator, TemplateSource};
use serde_json::{Value, json};

fn tree_root(dir: &Path) -> PathBuf {
    let nested = dir.join("redfish/v1");
    if nested.join("index.json").is_file() {
        nested
    } else {
        dir.to_path_buf()
    }
}

fn read(root: &Path, path: &str) -> Value {
    let rel = path
        .trim_start_matches("/redfish/v1")
        .trim_start_matches('/');
    let file = root.join(rel).join("index.json");
    serde_json::from_slice(
        &std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
    )
    .unwrap()
}

fn id(v: &Value, key: &str) -> String {
    v[key]["@odata.id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} link"))
        .trim_end_matches('/')
        .to_string()
}

fn members(v: &Value) -> Vec<String> {
    v["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["@odata.id"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_string()
        })
        .collect()
}

/// Every `index.json` of the tree, as (URL path, file).
fn all_resources(root: &Path) -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &format!("{rel}/{name}"), out);
            } else if name == "index.json" {
                out.push((
                    if rel.is_empty() {
                        "/redfish/v1".into()
                    } else {
                        format!("/redfish/v1{rel}")
                    },
                    e.path(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

#[tokio::test]
async fn real_trees_are_served_faithfully() {
    let Some(shared) = shared_dir() else {
        eprintln!(
            "note: ../shared/fixtures/redfish not found (set METAL_SHARED_DIR); skipping the real-tree test"
        );
        return;
    };
    for (n, name) in [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ]
    .iter()
    .enumerate()
    {
        let dir = shared.join("fixtures/redfish").join(name);
        check_tree(&dir, &format!("127.33.{}.1", n + 1)).await;
    }
}

async fn check_tree(dir: &Path, base: &str) {
    let root = tree_root(dir);
    let mut s = spec(base, 3);
    s.groups[0].template = TemplateSource::Path(dir.to_path_buf());
    let sim = Simulator::start(s)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let bmcs = sim.bmcs();
    let c0 = Client::for_bmc(&bmcs[0]);
    let c1 = Client::for_bmc(&bmcs[1]);

    // 1. BMC 0 serves every captured resource unchanged (dynamic collections aside).
    let dynamic = [
        "/SessionService/Sessions",
        "/TaskService/Tasks",
        "/EventService/Subscriptions",
        "/AccountService/Accounts",
    ];
    let mut compared = 0;
    for (path, file) in all_resources(&root) {
        if dynamic.iter().any(|d| path.contains(d)) {
            continue;
        }
        let Ok(expected) = serde_json::from_slice::<Value>(&std::fs::read(&file).unwrap()) else {
            continue;
        };
        let got = c0.get(&path).await;
        assert_eq!(got.status, StatusCode::OK, "{}: GET {path}", dir.display());
        assert_eq!(
            got.json(),
            expected,
            "{}: {path} differs from the capture",
            dir.display()
        );
        compared += 1;
    }
    assert!(compared > 50, "{compared}");

    // 2. Exact inventory on BMC 0, derived identity on BMC 1.
    let root_v = read(&root, "/redfish/v1");
    let sys_path = members(&read(&root, &id(&root_v, "Systems")))[0].clone();
    let sys = read(&root, &sys_path);
    let mgr_path = members(&read(&root, &id(&root_v, "Managers")))[0].clone();
    let mgr = read(&root, &mgr_path);
    let nics: Vec<String> = members(&read(&root, &id(&sys, "EthernetInterfaces")))
        .iter()
        .filter_map(|p| read(&root, p)["MACAddress"].as_str().map(String::from))
        .filter(|m| !m.is_empty())
        .collect();
    let s0 = c0.get_json(&sys_path).await;
    let s1 = c1.get_json(&sys_path).await;
    for key in [
        "SerialNumber",
        "Model",
        "BiosVersion",
        "UUID",
        "Manufacturer",
    ] {
        assert_eq!(s0[key], sys[key], "{key}");
    }
    assert_eq!(
        s0["ProcessorSummary"]["Count"],
        sys["ProcessorSummary"]["Count"]
    );
    assert_eq!(
        s0["MemorySummary"]["TotalSystemMemoryGiB"],
        sys["MemorySummary"]["TotalSystemMemoryGiB"]
    );
    assert_eq!(
        c0.get_json(&mgr_path).await["FirmwareVersion"],
        mgr["FirmwareVersion"]
    );
    assert_eq!(
        bmcs[0].systems[0].serial.as_deref(),
        sys["SerialNumber"].as_str()
    );
    assert_eq!(bmcs[0].systems[0].macs, nics);
    for key in ["Model", "BiosVersion", "Manufacturer"] {
        assert_eq!(s1[key], sys[key], "{key} is not identity");
    }
    assert_ne!(s1["SerialNumber"], sys["SerialNumber"]);
    assert_ne!(s1["UUID"], sys["UUID"]);
    assert_eq!(
        s1["SerialNumber"].as_str(),
        bmcs[1].systems[0].serial.as_deref()
    );
    assert_eq!(
        c1.get_json(&mgr_path).await["FirmwareVersion"],
        mgr["FirmwareVersion"]
    );
    // A VLAN interface may repeat its parent's MAC within one system; across BMCs none repeats.
    let mut all_macs = HashSet::new();
    for b in &bmcs {
        assert_eq!(b.systems[0].macs.len(), nics.len());
        let own: HashSet<String> = b.systems[0]
            .macs
            .iter()
            .map(|m| m.to_ascii_lowercase())
            .collect();
        for m in own {
            assert!(all_macs.insert(m.clone()), "MAC {m} repeats across BMCs");
        }
    }
    let served_macs: Vec<String> = members(&c1.get_json(&id(&sys, "EthernetInterfaces")).await)
        .iter()
        .map(|p| read(&root, p))
        .zip(bmcs[1].systems[0].macs.iter())
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(served_macs, bmcs[1].systems[0].macs);

    // 3. Behaviour: boot override, power, BIOS settings, firmware update.
    let r = c1.patch(&sys_path, json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}: {:?}", dir.display(), r.body);

    let bios_path = id(&sys, "Bios");
    let bios = c1.get_json(&bios_path).await;
    let settings = bios["@Redfish.Settings"]["SettingsObject"]["@odata.id"]
        .as_str()
        .map(|s| s.trim_end_matches('/').to_string())
        .unwrap_or(format!("{bios_path}/Settings"));
    let r = c1
        .patch(&settings, json!({"Attributes": {"NoSuchAttribute_xyz": 1}}))
        .await;
    assert_eq!(r.message_ids(), ["PropertyUnknown"]);
    let (attr, value) = pick_bios_change(&root, &bios_path, &bios);
    let r = c1
        .patch(
            &settings,
            json!({"Attributes": {attr.clone(): value.clone()}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}: {attr}={value}: {:?}",
        dir.display(),
        r.body
    );
    assert_eq!(c1.get_json(&settings).await["Attributes"][&attr], value);

    let r = c1
        .post(
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
            json!({"ImageURI": "http://127.0.0.1/fw/bios-77.1.2.bin", "Targets": [sys_path.clone()]}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}: {:?}",
        dir.display(),
        r.body
    );
    let task = r.json()["@odata.id"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(6), || async {
            c1.get_json(&task).await["TaskState"] == "Completed"
        })
        .await
    );

    let allowed = reset_types(&c1, &s1).await;
    let rt = ["ForceRestart", "GracefulRestart", "PowerCycle"]
        .into_iter()
        .find(|t| allowed.iter().any(|a| a == t))
        .unwrap();
    if s1["PowerState"] == "On" {
        c1.reset(&sys_path, rt).await;
    } else {
        c1.reset(&sys_path, "On").await;
    }
    assert!(
        wait_until(Duration::from_secs(6), || async {
            sim.system_state(1, bmcs[1].systems[0].id.as_str())
                .unwrap()
                .boot_history
                .len()
                == 1
        })
        .await
    );
    let st = sim.system_state(1, &bmcs[1].systems[0].id).unwrap();
    assert_eq!(st.boot_history[0].target, "Pxe");
    let after = c1.get_json(&sys_path).await;
    assert_eq!(after["PowerState"], "On");
    assert_eq!(after["BiosVersion"], "77.1.2");
    assert_eq!(after["Boot"]["BootSourceOverrideEnabled"], "Disabled");
    assert_eq!(
        c1.get_json(&bios_path).await["Attributes"][&attr],
        value,
        "applied at the reset"
    );
    // BMC 0 was not touched.
    assert_eq!(
        c0.get_json(&sys_path).await["BiosVersion"],
        sys["BiosVersion"]
    );
    sim.shutdown().await;
}

/// The ResetType values the system allows (inline or through its ActionInfo).
async fn reset_types(c: &Client, sys: &Value) -> Vec<String> {
    let a = &sys["Actions"]["#ComputerSystem.Reset"];
    if let Some(v) = a["ResetType@Redfish.AllowableValues"].as_array() {
        return v
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
    }
    let info = c.get_json(a["@Redfish.ActionInfo"].as_str().unwrap()).await;
    info["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Name"] == "ResetType")
        .unwrap()["AllowableValues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

/// A valid BIOS change: an enumeration attribute moved to another allowed value when the tree has
/// the registry, else a string attribute set to a new string.
fn pick_bios_change(root: &Path, bios_path: &str, bios: &Value) -> (String, Value) {
    let attrs = bios["Attributes"].as_object().unwrap();
    let registry = std::fs::read_dir(root.join(bios_path.trim_start_matches("/redfish/v1/")))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("index.json"))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .find(|v| v.get("RegistryEntries").is_some());
    if let Some(reg) = registry {
        for a in reg["RegistryEntries"]["Attributes"].as_array().unwrap() {
            let name = a["AttributeName"].as_str().unwrap_or_default();
            let writable = a["ReadOnly"] != true && a["Immutable"] != true;
            let Some(cur) = attrs.get(name) else { continue };
            if a["Type"] == "Enumeration"
                && writable
                && let Some(other) = a["Value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| &v["ValueName"])
                    .find(|v| *v != cur)
            {
                return (name.to_string(), other.clone());
            }
        }
        panic!("no writable enumeration attribute");
    }
    let (k, _) = attrs.iter().find(|(_, v)| v.is_string()).unwrap();
    (k.clone(), json!("changed-by-test"))
}
