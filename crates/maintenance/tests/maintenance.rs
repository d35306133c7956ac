//! metal-maintenance against a real control plane and the BMC simulator: ServerMaintenance
//! (take, approval, queue, hand-back, power) and BIOSSettings (no-op, apply in maintenance,
//! rejected values).

use api::biossettings::BIOSSettingsState;
use api::biosversion::{BIOSVersion, VersionState};
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use api::servermaintenance::ServerMaintenanceState;
use api::sets::BIOSSettingsSet;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_bmc_sim::{Knobs, PowerState};
use metal_maintenance::Maintenance;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn available_server_is_taken_powered_and_handed_back() {
    let h = Harness::new("mnt-take", "127.41.0.1", 1).await;
    h.create_sm(
        "m1",
        0,
        json!({ "policy": "Enforced", "serverPower": "On" }),
    )
    .await;
    let s = h.wait_server(0, ServerState::Maintenance, true).await;
    let r = s.spec.server_maintenance_ref.unwrap();
    assert_eq!(
        (r.namespace.as_str(), r.name.as_str()),
        (h.ns.as_str(), "m1")
    );
    eventually("power On on the BMC", || async {
        (h.system(0).power_state == PowerState::On).then_some(())
    })
    .await;
    eventually("InMaintenance with power reached", || async {
        let sm = h.sms().get("m1").await.unwrap();
        let st = sm.status.unwrap_or_default();
        let power = api::conditions::get(&st.conditions, "ServerPower")?
            .reason
            .clone();
        (st.state == Some(ServerMaintenanceState::InMaintenance) && power == "PowerReached")
            .then_some(())
    })
    .await;
    assert_eq!(h.resets(0), 1, "power on requested exactly once");

    h.sms()
        .delete("m1", &DeleteParams::default())
        .await
        .unwrap();
    h.wait_server(0, ServerState::Available, false).await;
    eventually("maintenance gone", || async {
        h.sm_state("m1").await.is_none().then_some(())
    })
    .await;
    assert_eq!(h.resets(0), 1, "hand-back sends nothing to the BMC");
}

/// Without provisioning to resolve it, a maintenance boot configuration is prepared (owned,
/// labelled, referenced by the server) and nothing is booted; the end removes it all and,
/// since nothing was booted, sends nothing to the BMC.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_boot_template_is_prepared_and_waits_for_provisioning() {
    let h = Harness::new("mnt-mboot", "127.41.0.2", 1).await;
    h.create_sm(
        "m1",
        0,
        json!({ "policy": "Enforced", "serverPower": "On",
                "serverBootConfigurationTemplate": { "name": "m1-boot",
                    "spec": { "serverRef": { "name": h.server_name(0) }, "image": "maint:1" } } }),
    )
    .await;
    h.wait_server(0, ServerState::Maintenance, true).await;
    let waiting = eventually("waiting for the configuration", || async {
        let sm = h.sms().get("m1").await.ok()?;
        let c = api::conditions::get(&sm.status?.conditions, "BootConfiguration")?.clone();
        (c.reason == "WaitingForBootConfiguration" && c.message.contains("to be Ready"))
            .then_some(c)
    })
    .await;
    assert_eq!(waiting.status, "False");
    let sbcs: Api<api::serverbootconfiguration::ServerBootConfiguration> =
        Api::namespaced(h.client.clone(), &h.ns);
    let sbc = sbcs.get("m1-boot").await.expect("configuration created");
    let sm = h.sms().get("m1").await.unwrap();
    assert_eq!(sbc.owner_references()[0].uid, sm.uid().unwrap());
    assert_eq!(
        sbc.labels()
            .get("metal.ironcore.dev/maintenance-boot")
            .map(String::as_str),
        Some("m1")
    );
    assert_eq!(sbc.spec.image.as_deref(), Some("maint:1"));
    let s = h.server(0).await;
    let r = s
        .spec
        .maintenance_boot_configuration_ref
        .expect("referenced");
    assert_eq!(
        (r.namespace.as_str(), r.name.as_str()),
        (h.ns.as_str(), "m1-boot")
    );
    assert_eq!(
        h.resets(0),
        0,
        "nothing booted before the configuration is Ready"
    );

    h.sms()
        .delete("m1", &DeleteParams::default())
        .await
        .unwrap();
    let s = h.wait_server(0, ServerState::Available, false).await;
    assert!(s.spec.maintenance_boot_configuration_ref.is_none());
    eventually("configuration deleted", || async {
        sbcs.get_opt("m1-boot").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(h.resets(0), 0, "never booted, so never powered off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claimed_server_waits_for_the_owners_approval_and_returns_reserved() {
    let h = Harness::new("mnt-approve", "127.41.1.1", 1).await;
    h.bind(0, "c1").await;
    h.create_sm("m1", 0, json!({ "policy": "OwnerApproval" }))
        .await;
    eventually("approval requested on the claim", || async {
        h.claim_label("c1", api::constants::MAINTENANCE_NEEDED_LABEL)
            .await
            .filter(|v| v == "true")
    })
    .await;
    eventually("maintenance waits for approval", || async {
        let (state, reason) = h.sm_state("m1").await?;
        (state == Some(ServerMaintenanceState::Pending) && reason == "WaitingForApproval")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.server(0).await.state(),
        Some(ServerState::Reserved),
        "not taken without approval"
    );

    let claims: Api<ServerClaim> = Api::namespaced(h.client.clone(), &h.ns);
    claims
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "labels": { api::constants::MAINTENANCE_APPROVED_LABEL: "true" } }
            })),
        )
        .await
        .unwrap();
    h.wait_server(0, ServerState::Maintenance, true).await;

    h.sms()
        .delete("m1", &DeleteParams::default())
        .await
        .unwrap();
    let back = h.wait_server(0, ServerState::Reserved, false).await;
    assert!(
        back.spec.server_claim_ref.is_some(),
        "still bound to its claim"
    );
    eventually("maintenance-needed label removed", || async {
        h.claim_label("c1", api::constants::MAINTENANCE_NEEDED_LABEL)
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenances_of_one_server_queue_by_priority() {
    let h = Harness::new("mnt-queue", "127.41.2.1", 1).await;
    h.create_sm("low", 0, json!({ "policy": "Enforced", "priority": 1 }))
        .await;
    h.wait_server(0, ServerState::Maintenance, true).await;
    h.create_sm("high", 0, json!({ "policy": "Enforced", "priority": 9 }))
        .await;
    h.create_sm("mid", 0, json!({ "policy": "Enforced", "priority": 5 }))
        .await;
    eventually("later ones queued", || async {
        let (_, a) = h.sm_state("high").await?;
        let (_, b) = h.sm_state("mid").await?;
        (a == "Queued" && b == "Queued").then_some(())
    })
    .await;
    // The holder keeps the server; then the highest priority goes next.
    h.sms()
        .delete("low", &DeleteParams::default())
        .await
        .unwrap();
    let s = eventually("high takes over", || async {
        let s = h.server(0).await;
        (s.spec.server_maintenance_ref.as_ref()?.name == "high"
            && s.state() == Some(ServerState::Maintenance))
        .then_some(s)
    })
    .await;
    assert_eq!(s.spec.server_maintenance_ref.unwrap().name, "high");
    assert_eq!(h.sm_state("mid").await.unwrap().1, "Queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bios_settings_in_place_need_no_maintenance() {
    let h = Harness::new("mnt-bios-noop", "127.41.3.1", 1).await;
    let current = h.system(0);
    assert!(current.bios_pending.is_empty());
    // Whatever the simulator runs now is already applied.
    let client = redfish_client(&h, 0);
    let bios = client.bios(&h.bmcs[0].systems[0].path).await.unwrap();
    let value = bios
        .attributes
        .get("ProcVirtualization")
        .unwrap()
        .to_string();
    h.create_bios(
        "noop",
        0,
        json!({ "ProcVirtualization": value.trim_matches('"') }),
        "Enforced",
    )
    .await;
    let b = h.wait_bios("noop", BIOSSettingsState::Applied).await;
    assert!(
        b.spec.server_maintenance_ref.is_none(),
        "no maintenance requested"
    );
    assert!(
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(h.resets(0), 0);
    assert_eq!(h.server(0).await.state(), Some(ServerState::Available));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bios_settings_are_applied_in_a_maintenance_window() {
    let h = Harness::new("mnt-bios", "127.41.4.1", 1).await;
    let client = redfish_client(&h, 0);
    let path = h.bmcs[0].systems[0].path.clone();
    let before = client.bios(&path).await.unwrap().attributes;
    let want = if before.get("ProcVirtualization").and_then(|v| v.as_str()) == Some("Enabled") {
        "Disabled"
    } else {
        "Enabled"
    };
    h.create_bios(
        "apply",
        0,
        json!({ "ProcVirtualization": want, "WatchdogTimeout": "20" }),
        "Enforced",
    )
    .await;
    // It asks for a maintenance and the server goes into it.
    h.wait_server(0, ServerState::Maintenance, true).await;
    let b = h.wait_bios("apply", BIOSSettingsState::Applied).await;
    let after = client.bios(&path).await.unwrap().attributes;
    assert_eq!(
        after.get("ProcVirtualization").and_then(|v| v.as_str()),
        Some(want)
    );
    assert_eq!(
        after.get("WatchdogTimeout").and_then(|v| v.as_i64()),
        Some(20)
    );
    let st = b.status.unwrap();
    assert_eq!(st.flow_state.len(), 1);
    assert_eq!(st.flow_state[0].state, Some(BIOSSettingsState::Applied));
    assert!(st.last_applied_time.is_some());
    assert_eq!(h.resets(0), 1, "one power action applies the step");
    // The maintenance is released and the server handed back.
    h.wait_server(0, ServerState::Available, false).await;
    eventually("maintenance deleted", || async {
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        h.bios()
            .get("apply")
            .await
            .unwrap()
            .spec
            .server_maintenance_ref
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_bios_values_fail_without_touching_the_server() {
    let h = Harness::new("mnt-bios-bad", "127.41.5.1", 1).await;
    h.create_bios("bad", 0, json!({ "BootMode": "Floppy" }), "Enforced")
        .await;
    let b = h.wait_bios("bad", BIOSSettingsState::Failed).await;
    let st = b.status.unwrap();
    let c = api::conditions::get(&st.conditions, "SettingsValidationFailed").unwrap();
    assert!(c.message.contains("BootMode"), "{}", c.message);
    assert!(
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(h.server(0).await.state(), Some(ServerState::Available));
    assert_eq!(h.resets(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_random_points_the_bios_flow_reboots_once() {
    let mut h = Harness::new("mnt-kill", "127.41.6.1", 2).await;
    // The instance Harness::new started is stopped; instances below are killed instead. A
    // kill between recording a reboot and sending it costs one power timeout.
    h.stop.cancel();
    h.config.power_timeout = Duration::from_secs(5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..2 {
        h.create_bios(
            &format!("kill-{i}"),
            i,
            json!({ "ProcVirtualization": "Disabled" }),
            "Enforced",
        )
        .await;
    }
    let start = Instant::now();
    let mut kills = 0;
    loop {
        let task = h.spawn(CancellationToken::new());
        let live = Duration::from_millis(40 + rand::random::<u64>() % 260);
        tokio::time::sleep(live).await;
        let mut done = 0;
        for i in 0..2 {
            let b = h.bios().get(&format!("kill-{i}")).await.unwrap();
            if b.status.and_then(|s| s.state) == Some(BIOSSettingsState::Applied) {
                done += 1;
            }
        }
        if done == 2 {
            task.abort();
            break;
        }
        task.abort();
        let _ = task.await;
        kills += 1;
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not applied after {kills} kills"
        );
    }
    // A last instance cleans up (releases the maintenances) after the final kill.
    let last = CancellationToken::new();
    let _last = h.spawn(last.clone());
    let _stop_last = last.drop_guard();
    for i in 0..2 {
        h.wait_server(i, ServerState::Available, false).await;
        assert_eq!(
            h.resets(i),
            1,
            "server {i}: one reboot despite {kills} kills"
        );
        let bios = h.system(i).bios_changed;
        assert_eq!(bios.get("ProcVirtualization"), Some(&json!("Disabled")));
    }
    eventually("maintenances deleted", || async {
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    // How many kills land before the flow completes depends on the machine's speed; at least
    // one must have interrupted it.
    assert!(kills >= 1, "the flow was interrupted ({kills} kills)");
}

/// Two instances without a Lease (a split brain, or one reading a stale cache) react to the
/// same events at once: records before side effects carry a precondition, so only one of them
/// reboots each server, powers it on, or starts its firmware update.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_at_once_send_each_request_once() {
    let h = Harness::with("mnt-twin", "127.41.7.1", 5, fast_tasks()).await;
    let twin = CancellationToken::new();
    let _twin = h.spawn(twin.clone());
    let _stop_twin = twin.drop_guard();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        h.create_bios(
            &format!("twin-{i}"),
            i,
            json!({ "ProcVirtualization": "Disabled" }),
            "Enforced",
        )
        .await;
    }
    h.create_sm(
        "twin-power",
        3,
        json!({ "policy": "Enforced", "serverPower": "On" }),
    )
    .await;
    for i in 0..3 {
        h.wait_bios(&format!("twin-{i}"), BIOSSettingsState::Applied)
            .await;
        h.wait_server(i, ServerState::Available, false).await;
        assert_eq!(h.resets(i), 1, "server {i}: one reboot from two instances");
    }
    let reached = tokio::time::timeout(T, async {
        loop {
            let sm = h.sms().get("twin-power").await.unwrap();
            let st = sm.status.clone().unwrap_or_default();
            if api::conditions::get(&st.conditions, "ServerPower")
                .is_some_and(|c| c.reason == "PowerReached")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if reached.is_err() {
        let sm = h.sms().get("twin-power").await.unwrap();
        panic!(
            "power not reached: {:#?} {:?}",
            sm.status,
            h.system(3).power_state
        );
    }
    assert_eq!(h.resets(3), 1, "one power-on from two instances");
    h.create_version("twin-fw", 4, "3.0.1", 2).await;
    h.wait_version("twin-fw", VersionState::Completed).await;
    assert_eq!(h.updates(4), 1, "one SimpleUpdate from two instances");
    assert_eq!(h.resets(4), 1, "one reboot from two instances");
}

impl Harness {
    fn versions(&self) -> Api<BIOSVersion> {
        Api::all(self.client.clone())
    }

    async fn create_version(&self, name: &str, server: usize, version: &str, max_attempts: i32) {
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "BIOSVersion",
                "metadata": { "name": name },
                "spec": {
                    "version": version, "serverRef": { "name": self.server_name(server) },
                    "serverMaintenancePolicy": "Enforced",
                    "image": { "URI": format!("http://127.0.0.1:9/bios-{version}.bin") },
                    "retryPolicy": { "maxAttempts": max_attempts },
                },
            }),
            self.versions(),
        )
        .await;
    }

    async fn wait_version(&self, name: &str, state: VersionState) -> BIOSVersion {
        wait_state(self.versions(), name, state, |b| b.status.as_ref()?.state).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bios_version_is_installed_through_a_task_and_one_reboot() {
    let h = Harness::with("mnt-fw", "127.41.8.1", 1, fast_tasks()).await;
    let before = h.system(0).bios_version;
    assert_ne!(before.as_deref(), Some("2.5.0"));
    h.create_version("fw", 0, "2.5.0", 2).await;
    h.wait_server(0, ServerState::Maintenance, true).await;
    let v = h.wait_version("fw", VersionState::Completed).await;
    assert_eq!(h.system(0).bios_version.as_deref(), Some("2.5.0"));
    let st = v.status.unwrap();
    let task = st.upgrade_task.expect("task mirrored");
    assert!(task.uri.is_some());
    assert_eq!(
        task.state.map(|s| s.as_str().to_string()).as_deref(),
        Some("Completed")
    );
    assert_eq!(h.updates(0), 1, "one SimpleUpdate");
    assert_eq!(h.resets(0), 1, "one reboot installs the staged image");
    h.wait_server(0, ServerState::Available, false).await;
    eventually("maintenance deleted", || async {
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bios_version_already_running_needs_nothing() {
    let h = Harness::with("mnt-fw-noop", "127.41.9.1", 1, fast_tasks()).await;
    let running = h.system(0).bios_version.expect("a BIOS version");
    h.create_version("same", 0, &running, 2).await;
    h.wait_version("same", VersionState::Completed).await;
    assert_eq!(h.updates(0), 0);
    assert_eq!(h.resets(0), 0);
    assert!(
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_update_task_fails_after_its_retries() {
    let knobs = Knobs {
        task_fail: true,
        ..fast_tasks()
    };
    let h = Harness::with("mnt-fw-fail", "127.41.10.1", 1, knobs).await;
    h.create_version("bad", 0, "9.9.9", 1).await;
    let v = h.wait_version("bad", VersionState::Failed).await;
    let st = v.status.unwrap();
    assert_eq!(st.failed_attempts, Some(2));
    let c = api::conditions::get(&st.conditions, "VersionUpgradeCompleted").unwrap();
    assert_eq!(c.reason, "UpgradeTaskFailed", "{}", c.message);
    assert_eq!(h.updates(0), 2, "the first attempt and one retry");
    assert_eq!(h.resets(0), 0, "nothing staged, nothing rebooted");
    h.wait_server(0, ServerState::Available, false).await;
    assert_ne!(h.system(0).bios_version.as_deref(), Some("9.9.9"));
    // Failed is sticky until the retry annotation, which starts a new round of attempts.
    h.versions()
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "retry"}}}),
            ),
        )
        .await
        .unwrap();
    eventually("a new SimpleUpdate after the retry", || async {
        (h.updates(0) > 2).then_some(())
    })
    .await;
    let v = h.versions().get("bad").await.unwrap();
    assert!(
        v.annotations()
            .get("metal.ironcore.dev/operation")
            .is_none(),
        "annotation removed"
    );
}

impl Harness {
    /// A BIOSSettingsSet `name` (Enforced) disabling ProcVirtualization on servers labelled
    /// `pool`.
    async fn create_virtualization_set(&self, name: &str, pool: &str) {
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "BIOSSettingsSet",
                "metadata": { "name": name },
                "spec": {
                    "serverSelector": { "matchLabels": { "pool": pool } },
                    "biosSettingsTemplate": {
                        "version": SIM_BIOS_VERSION, "serverMaintenancePolicy": "Enforced",
                        "settingsFlow": [{ "name": "v", "priority": 1,
                                           "settings": { "ProcVirtualization": "Disabled" } }],
                    },
                },
            }),
            Api::<BIOSSettingsSet>::all(self.client.clone()),
        )
        .await;
    }

    async fn label(&self, i: usize, key: &str, value: Option<&str>) {
        Api::<Server>::all(self.client.clone())
            .patch(
                self.server_name(i),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { key: value } } })),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bios_settings_set_rolls_out_to_the_selected_servers() {
    let h = Harness::new("mnt-set", "127.41.11.1", 4).await;
    let pool = testenv::unique_name("pool");
    for i in 0..3 {
        h.label(i, "pool", Some(&pool)).await;
    }
    let sets: Api<BIOSSettingsSet> = Api::all(h.client.clone());
    let set_name = testenv::unique_name("set");
    h.create_virtualization_set(&set_name, &pool).await;
    let counts = |want: (i32, i32, i32)| {
        let sets = sets.clone();
        let set_name = set_name.clone();
        async move {
            let st = sets.get(&set_name).await.ok()?.status?;
            let got = (
                st.fully_labeled_servers.unwrap_or(-1),
                st.available.unwrap_or(-1),
                st.completed.unwrap_or(-1),
            );
            (got == want).then_some(())
        }
    };
    eventually("3 of 3 applied", || counts((3, 3, 3))).await;
    for i in 0..3 {
        assert_eq!(
            h.system(i).bios_changed.get("ProcVirtualization"),
            Some(&json!("Disabled"))
        );
        h.wait_server(i, ServerState::Available, false).await;
    }
    assert!(
        h.system(3).bios_changed.is_empty(),
        "the unselected server is untouched"
    );
    let children = |n: usize| {
        let bios = h.bios();
        let set_name = set_name.clone();
        async move {
            let l = bios
                .list(
                    &kube::api::ListParams::default()
                        .labels(&format!("metal.ironcore.dev/set={set_name}")),
                )
                .await
                .ok()?;
            (l.items.len() == n).then_some(())
        }
    };
    // A server that leaves the selection loses its (finished) child.
    h.label(2, "pool", None).await;
    eventually("2 selected", || counts((2, 2, 2))).await;
    eventually("2 children", || children(2)).await;
    // Deleting the set deletes its children (garbage collection of owned objects).
    sets.delete(&set_name, &DeleteParams::default())
        .await
        .unwrap();
    eventually("children collected", || children(0)).await;
}

/// The ClusterRole and Role in `kustomize/maintenance` are sufficient: the controller runs as
/// its ServiceAccount (impersonated), wins its Lease, and carries a BIOSSettingsSet, a
/// BIOSVersion with image credentials and a ServerMaintenance with power to the end. A missing
/// grant surfaces as a Forbidden reconcile error and the flow never completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kustomize_rbac_is_enough() {
    let h = Harness::with("mnt-rbac", "127.41.12.1", 4, fast_tasks()).await;
    h.stop.cancel();
    let granted = testenv::install_component_rbac(&h.client, "maintenance", &h.ns).await;
    assert!(!granted.iter().any(|g| g.contains('*')), "{granted:?}");
    let sa = testenv::impersonating_client(&h.ns, "metal-maintenance").await;
    let denied = Api::<Server>::all(sa.clone())
        .delete(h.server_name(0), &DeleteParams::default())
        .await
        .expect_err("deleting servers is not granted");
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied}"
    );

    let admin = runtime::admin::AdminState::default();
    let m = Maintenance::start(sa.clone(), h.config.clone(), &admin);
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let handle = runtime::lease::spawn(
        sa.clone(),
        runtime::lease::LeaseParams::new(
            "metal-maintenance",
            h.ns.clone(),
            "rbac-pod",
            Duration::from_secs(4),
        ),
        None,
    );
    tokio::spawn(runtime::lease::run_while_leading(
        handle,
        stop,
        move |token| {
            let m = m.clone();
            async move { m.run_controllers(token).await }
        },
    ));

    let pool = testenv::unique_name("rbac");
    for i in 0..2 {
        h.label(i, "pool", Some(&pool)).await;
    }
    h.create_virtualization_set(&pool, &pool).await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "images", "namespace": h.ns },
        "stringData": { "username": "fw", "password": "image-server-password" },
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    create(
        &h.client,
        json!({
            "apiVersion": api::API_VERSION, "kind": "BIOSVersion",
            "metadata": { "name": format!("{pool}-fw") },
            "spec": {
                "version": "4.0.2", "serverRef": { "name": h.server_name(2) },
                "serverMaintenancePolicy": "Enforced",
                "image": { "URI": "http://127.0.0.1:9/bios-4.0.2.bin",
                           "secretRef": { "name": "images", "namespace": h.ns } },
            },
        }),
        h.versions(),
    )
    .await;
    h.create_sm(
        "rbac-power",
        3,
        json!({ "policy": "Enforced", "serverPower": "On" }),
    )
    .await;

    for i in 0..2 {
        let child = sets_child(&pool, h.server_name(i));
        h.wait_bios(&child, BIOSSettingsState::Applied).await;
    }
    h.wait_version(&format!("{pool}-fw"), VersionState::Completed)
        .await;
    assert_eq!(h.system(2).bios_version.as_deref(), Some("4.0.2"));
    eventually("power reached as the ServiceAccount", || async {
        let sm = h.sms().get("rbac-power").await.ok()?;
        let c = api::conditions::get(&sm.status?.conditions, "ServerPower")?.clone();
        (c.reason == "PowerReached").then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(h.client.clone());
    let from_us = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("metal-maintenance"))
        .count();
    assert!(from_us > 0, "events written as the ServiceAccount");
}

fn sets_child(set: &str, server: &str) -> String {
    metal_maintenance::sets::child_name(set, server)
}

impl Harness {
    /// Sets (or with `None` removes) an annotation of server `i`, as `kubectl annotate` would.
    /// The server's `Parked` condition reason, if any.
    fn parked_reason(s: &Server) -> Option<String> {
        api::conditions::get(&s.status.as_ref()?.conditions, "Parked").map(|c| c.reason.clone())
    }

    /// Event reasons maintenance wrote about server `i`.
    async fn server_events(&self, i: usize) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.client.clone());
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(self.server_name(i))
            })
            .filter_map(|e| e.reason)
            .collect()
    }
}

const OP: &str = "metal.ironcore.dev/operation";
const PARKED: &str = "metal.ironcore.dev/parked";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn park_powers_off_holds_and_unpark_resumes_to_the_right_state() {
    let h = Harness::new("mnt-park", "127.41.9.1", 2).await;
    // A short resync: the step below waits for it to see a power-on behind its back (with the
    // harness' 30 s, that step sat close to the 60 s wait on a loaded machine).
    h.stop.cancel();
    let mut config = h.config.clone();
    config.resync = Duration::from_secs(10);
    let stop = CancellationToken::new();
    let _instance = spawn_with(&h, config, stop.clone());
    let _stop = stop.drop_guard();
    let bmc = redfish_client(&h, 0);
    bmc.power_on(&h.bmcs[0].systems[0].path).await.unwrap();
    eventually("server 0 on", || async {
        (h.system(0).power_state == PowerState::On).then_some(())
    })
    .await;
    h.sim.reset_request_counts(0).unwrap();

    // Available → Parked: powered off once, marker set, request removed.
    h.annotate(0, OP, Some("park")).await;
    let s = eventually("server 0 parked and off", || async {
        let s = h.server(0).await;
        (s.state() == Some(ServerState::Parked)
            && Harness::parked_reason(&s).as_deref() == Some("ServerParked"))
        .then_some(s)
    })
    .await;
    assert_eq!(
        s.annotations().get(PARKED).map(String::as_str),
        Some("true")
    );
    assert_eq!(s.annotations().get(OP), None, "the park request is removed");
    assert_eq!(h.system(0).power_state, PowerState::Off);
    assert_eq!(h.resets(0), 1, "one power-off");

    // While parked a power operation is dropped, not carried out.
    h.annotate(0, OP, Some("force-on-server")).await;
    eventually("force-on dropped", || async {
        h.server(0)
            .await
            .annotations()
            .get(OP)
            .is_none()
            .then_some(())
    })
    .await;
    eventually("ParkedOperationDropped event", || async {
        h.server_events(0)
            .await
            .iter()
            .any(|r| r == "ParkedOperationDropped")
            .then_some(())
    })
    .await;
    assert_eq!(h.system(0).power_state, PowerState::Off);
    assert_eq!(h.resets(0), 1);
    // Someone powers the parked server on behind our back: the resync powers it off again.
    bmc.power_on(&h.bmcs[0].systems[0].path).await.unwrap();
    eventually("parked server off again", || async {
        (h.resets(0) == 3 && h.system(0).power_state == PowerState::Off).then_some(())
    })
    .await;

    // Unpark an unclaimed server: Available, marker gone, condition Unparked.
    h.annotate(0, OP, Some("unpark")).await;
    let s = eventually("server 0 unparked", || async {
        let s = h.server(0).await;
        (s.state() == Some(ServerState::Available)
            && s.annotations().get(PARKED).is_none()
            && s.annotations().get(OP).is_none())
        .then_some(s)
    })
    .await;
    assert_eq!(Harness::parked_reason(&s).as_deref(), Some("Unparked"));
    assert_eq!(h.resets(0), 3, "unpark sends nothing");

    // Park in a state that cannot be parked waits, request kept; it goes once the server is
    // claimable, and a claimed server returns to Reserved.
    set_state(&h.client, h.server_name(1), "Discovery", "metal-discovery").await;
    h.annotate(1, OP, Some("park")).await;
    eventually("ParkDeferred event", || async {
        h.server_events(1)
            .await
            .iter()
            .any(|r| r == "ParkDeferred")
            .then_some(())
    })
    .await;
    let s = h.server(1).await;
    assert_eq!(s.state(), Some(ServerState::Discovery));
    assert_eq!(s.annotations().get(OP).map(String::as_str), Some("park"));
    h.bind(1, "job-1").await;
    h.wait_server(1, ServerState::Parked, false).await;
    h.annotate(1, OP, Some("unpark")).await;
    eventually("server 1 back to Reserved", || async {
        let s = h.server(1).await;
        (s.state() == Some(ServerState::Reserved) && s.annotations().get(PARKED).is_none())
            .then_some(())
    })
    .await;
    assert_eq!(h.resets(1), 0, "server 1 was off: nothing sent");
}
