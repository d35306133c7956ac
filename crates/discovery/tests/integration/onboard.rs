//! BMC objects become Servers whose inventory equals what the simulator serves; deleting a BMC
//! removes its Servers (garbage collection by kube-controller-manager).

use std::time::Duration;

use api::bmc::BMC;
use api::conditions;
use api::server::ServerState;
use kube::api::{Api, DeleteParams};
use metal_bmc_sim::TemplateSource;
use metal_discovery::logic::inventory::{from_redfish, normalize_mac};

use crate::support::*;

#[tokio::test]
async fn bmcs_become_servers_with_the_simulators_inventory() {
    let mut groups = vec![group(2, TemplateSource::default())];
    let mut templates = vec![TemplateSource::default(), TemplateSource::default()];
    for tree in [
        "dell-poweredge-r750",
        "supermicro-sys-821ge",
        "dmtf-public-rackmount1",
    ] {
        if let Some(dir) = real_tree(tree) {
            groups.push(group(1, TemplateSource::Path(dir.clone())));
            templates.push(TemplateSource::Path(dir));
        }
    }
    let sim = sim(rack("127.61.0.1", groups)).await;
    let h = Harness::start("onboard", |_| {}).await;
    let infos = sim.bmcs();
    let mut names = Vec::new();
    for info in &infos {
        names.push(h.add_bmc(info, &[]).await);
    }

    for ((info, bmc_name), template) in infos.iter().zip(&names).zip(&templates) {
        let bootable: Vec<_> = info
            .systems
            .iter()
            .filter(|s| {
                template_resource(template, &s.path)["Boot"]
                    .get("BootSourceOverrideTarget")
                    .is_some()
            })
            .collect();
        assert!(
            !bootable.is_empty(),
            "{}: no bootable system",
            info.template
        );
        for (i, sys) in bootable.iter().enumerate() {
            let server_name = format!("{bmc_name}-system-{i}");
            let server = h
                .wait_state(
                    &server_name,
                    ServerState::Available,
                    Duration::from_secs(90),
                )
                .await;
            let tree = template_resource(template, &sys.path);
            let status = server.status.clone().unwrap();
            // Identity: the simulator's (derived) UUID, serial and MACs.
            assert_eq!(
                server.spec.system_uuid,
                sys.uuid.clone().unwrap().to_lowercase(),
                "{server_name}"
            );
            assert_eq!(server.spec.system_uri.as_deref(), Some(sys.path.as_str()));
            assert_eq!(
                server.spec.bmc_ref.as_ref().map(|r| r.name.as_str()),
                Some(bmc_name.as_str())
            );
            assert_eq!(
                status.serial_number,
                sys.serial.clone(),
                "{server_name} serial"
            );
            let mut macs: Vec<String> = status
                .network_interfaces
                .iter()
                .map(|n| n.mac_address.clone())
                .collect();
            let mut want: Vec<String> = sys.macs.iter().filter_map(|m| normalize_mac(m)).collect();
            macs.sort();
            want.sort();
            assert_eq!(macs, want, "{server_name} MACs");
            // The tree's own values.
            let s = |k: &str| {
                tree[k]
                    .as_str()
                    .filter(|v| !v.trim().is_empty())
                    .map(str::to_string)
            };
            assert_eq!(status.manufacturer, s("Manufacturer"), "{server_name}");
            assert_eq!(status.model, s("Model"), "{server_name}");
            assert_eq!(status.bios_version, s("BiosVersion"), "{server_name}");
            if let Some(gib) = tree["MemorySummary"]["TotalSystemMemoryGiB"].as_f64() {
                assert_eq!(
                    status.total_system_memory.as_ref().map(|q| q.0.clone()),
                    metal_discovery::logic::inventory::memory_quantity(gib).map(|q| q.0),
                    "{server_name} memory"
                );
            }
            // Everything else equals an independent read of the same BMC.
            let client = redfish_client(info, &info.password);
            let expected = from_redfish(&client.inventory(&sys.path).await.expect("inventory"));
            // The simulator derives per-BMC identities (Dell service tag = SKU), so the SKU is
            // compared with what the BMC serves rather than the template.
            assert_eq!(status.sku, expected.sku, "{server_name} sku");
            assert_eq!(
                status.processors, expected.processors,
                "{server_name} processors"
            );
            assert!(
                !status.processors.is_empty(),
                "{server_name} has processors"
            );
            assert_eq!(status.storages, expected.storages, "{server_name} storages");
            assert_eq!(
                status.network_interfaces, expected.network_interfaces,
                "{server_name} NICs"
            );
            let d = conditions::get(&status.conditions, "Discovered").expect("Discovered");
            assert_eq!(
                (d.status.as_str(), d.reason.as_str()),
                ("True", "InventoryRead")
            );
            // Owned by its BMC, labels propagated.
            let owner = &server.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.controller),
                ("BMC", bmc_name.as_str(), Some(true))
            );
            assert_eq!(
                server.metadata.labels.as_ref().unwrap().get(RUN_LABEL),
                Some(&h.run)
            );
        }
        // BMC status from its Manager.
        let bmc = h
            .wait_ready(bmc_name, "True", "Connected", Duration::from_secs(30))
            .await;
        let st = bmc.status.unwrap();
        let managers = template_resource(template, "/redfish/v1/Managers");
        let mgr_path = managers["Members"][0]["@odata.id"]
            .as_str()
            .unwrap()
            .to_string();
        let mgr = template_resource(template, &mgr_path);
        assert_eq!(
            st.manufacturer.as_deref(),
            mgr["Manufacturer"].as_str().filter(|v| !v.is_empty()),
            "{bmc_name}"
        );
        assert_eq!(
            st.firmware_version.as_deref(),
            mgr["FirmwareVersion"].as_str(),
            "{bmc_name}"
        );
        assert_eq!(
            st.model.as_deref(),
            mgr["Model"].as_str().filter(|v| !v.is_empty()),
            "{bmc_name}"
        );
        assert_eq!(st.ip.as_deref(), Some(info.ip.to_string().as_str()));
    }
    // Metrics: every state is listed (also the ones nobody is in), BMCs reachable, writes counted.
    let text = h.registry.encode();
    for state in [
        "Initial",
        "Discovery",
        "Available",
        "Reserved",
        "Released",
        "Error",
        "Maintenance",
        "Parked",
    ] {
        assert!(
            text.contains(&format!("metal_servers{{state=\"{state}\"}}")),
            "{state} missing:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "metal_servers{{state=\"Available\"}} {}",
            h.servers().await.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("metal_bmc_reachable{{bmc=\"{}\"}} 1", names[0])),
        "{text}"
    );
    assert!(
        text.contains("metal_redfish_requests_total{method=\"GET\",class=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("metal_discovery_duration_seconds_count{mode=\"out-of-band\"}"),
        "{text}"
    );
    assert!(h.metrics.writes_total() > 0);

    // Deleting a BMC garbage-collects its Servers.
    let victim = names[0].clone();
    let before: Vec<String> = h
        .servers()
        .await
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .filter(|n| n.starts_with(&victim))
        .collect();
    assert!(!before.is_empty());
    Api::<BMC>::all(h.client.clone())
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "servers of the deleted BMC collected",
        Duration::from_secs(60),
        async || {
            let left = h
                .servers()
                .await
                .into_iter()
                .filter(|s| {
                    s.metadata
                        .name
                        .as_deref()
                        .unwrap_or("")
                        .starts_with(&format!("{victim}-system-"))
                })
                .count();
            (left == 0).then_some(())
        },
    )
    .await;
    // The other BMCs' servers stay.
    assert!(h.server(&format!("{}-system-0", names[1])).await.is_some());
    sim.shutdown().await;
}
