//! BMC firmware through metal-maintenance against a real control plane and the BMC simulator:
//! BMCVersion (install surviving the BMC's own restart, already running, failed task and retry,
//! a stepping-stone chain, a BMC that needs a reset to activate), BIOSVersion stepping stones,
//! and the step-wise kill loop (SIGKILL-equivalent abort at every side-effecting step).

use api::biosversion::{BIOSVersion, VersionState};
use api::bmcversion::BMCVersion;
use api::server::ServerState;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use metal_bmc_sim::Knobs;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;
use common::*;

/// The BMC firmware version the simulator's default template reports.
fn running_bmc_version(h: &Harness, i: usize) -> String {
    h.system(i)
        .bmc_version
        .expect("the template reports a BMC version")
}

impl Harness {
    fn bmc_versions(&self) -> Api<BMCVersion> {
        Api::all(self.client.clone())
    }

    fn bmc_name(&self, i: usize) -> String {
        format!("{}-{i}", self.shard)
    }

    /// BMCVersions are cluster-scoped: each test's names carry its rack's prefix.
    fn obj(&self, name: &str) -> String {
        format!("{}-{name}", self.shard)
    }

    /// A BMCVersion for BMC `i` (Enforced windows) installing `version`, through `stones`.
    async fn create_bmc_version(
        &self,
        name: &str,
        i: usize,
        version: &str,
        stones: &[&str],
        max_attempts: i32,
    ) {
        let stones: Vec<Value> = stones
            .iter()
            .map(|v| json!({ "version": v, "image": { "URI": bmc_image(v) } }))
            .collect();
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "BMCVersion",
                "metadata": { "name": self.obj(name) },
                "spec": {
                    "version": version, "bmcRef": { "name": self.bmc_name(i) },
                    "serverMaintenancePolicy": "Enforced",
                    "image": { "URI": bmc_image(version) },
                    "steppingStones": stones,
                    "retryPolicy": { "maxAttempts": max_attempts },
                },
            }),
            self.bmc_versions(),
        )
        .await;
    }

    async fn wait_bmc_version(&self, name: &str, state: VersionState) -> BMCVersion {
        wait_state(self.bmc_versions(), &self.obj(name), state, |b| {
            b.status.as_ref()?.state
        })
        .await
    }

    /// The images of the update tasks BMC `i` ran, oldest first.
    async fn task_images(&self, i: usize) -> Vec<String> {
        let mut tasks = redfish_client(self, i).tasks().await.unwrap();
        tasks.sort_by_key(|t| t.id.as_deref().and_then(|s| s.parse::<u64>().ok()));
        tasks.iter().filter_map(|t| t.update_image()).collect()
    }

    async fn no_maintenances_left(&self) {
        eventually("maintenances deleted", || async {
            self.sms()
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty()
                .then_some(())
        })
        .await;
    }
}

/// An image name the simulator installs on the BMC (it contains "bmc") as `version`.
fn bmc_image(version: &str) -> String {
    format!("http://127.0.0.1:9/bmc-{version}.bin")
}

fn bmc_tasks(downtime_ms: u64) -> Knobs {
    Knobs {
        task_duration_ms: 500,
        bmc_reset_downtime_ms: downtime_ms,
        ..Knobs::default()
    }
}

fn condition(bv: &BMCVersion, type_: &str) -> Option<(String, String)> {
    let st = bv.status.as_ref()?;
    api::conditions::get(&st.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bmc_firmware_is_installed_and_its_restart_is_survived() {
    // Five seconds of downtime: the controller polls every two, so it meets the dark BMC.
    let h = Harness::with("bmc-fw", "127.42.1.1", 1, bmc_tasks(5_000)).await;
    assert_ne!(running_bmc_version(&h, 0), "7.10.0");
    h.create_bmc_version("fw", 0, "7.10.0", &[], 2).await;
    h.wait_server(0, ServerState::Maintenance, true).await;
    let mut saw_dark = false;
    let done = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let bv = h.bmc_versions().get(&h.obj("fw")).await.unwrap();
            if condition(&bv, "BMCReachable").is_some_and(|(s, _)| s == "False") {
                saw_dark = true;
            }
            if bv.status.as_ref().and_then(|s| s.state) == Some(VersionState::Completed) {
                return bv;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("BMCVersion Completed");
    assert!(saw_dark, "the BMC's restart was seen and waited out");
    assert_eq!(running_bmc_version(&h, 0), "7.10.0");
    assert_eq!(h.updates(0), 1, "one SimpleUpdate");
    assert_eq!(h.manager_resets(0), 0, "the BMC restarted on its own");
    assert_eq!(h.resets(0), 0, "the host was not rebooted");
    let st = done.status.unwrap();
    assert_eq!(
        condition_of(&st.conditions, "VersionUpgradeVerification"),
        Some("True".into())
    );
    assert!(
        st.upgrade_task.and_then(|t| t.uri).is_some(),
        "task mirrored"
    );
    h.wait_server(0, ServerState::Available, false).await;
    h.no_maintenances_left().await;
    let bv = h.bmc_versions().get(&h.obj("fw")).await.unwrap();
    assert!(
        bv.spec.server_maintenance_refs.is_empty(),
        "references cleared"
    );
}

fn condition_of(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    t: &str,
) -> Option<String> {
    api::conditions::get(conds, t).map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bmc_running_the_version_is_not_flashed_again() {
    let h = Harness::with("bmc-noop", "127.42.2.1", 1, bmc_tasks(500)).await;
    let running = running_bmc_version(&h, 0);
    h.create_bmc_version("same", 0, &running, &[], 2).await;
    h.wait_bmc_version("same", VersionState::Completed).await;
    assert_eq!(h.updates(0), 0);
    assert_eq!(h.manager_resets(0), 0);
    assert!(
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no maintenance requested"
    );
    assert_eq!(h.server(0).await.state(), Some(ServerState::Available));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_bmc_update_follows_its_retry_policy() {
    let knobs = Knobs {
        task_fail: true,
        ..bmc_tasks(500)
    };
    let h = Harness::with("bmc-fail", "127.42.3.1", 1, knobs).await;
    let before = running_bmc_version(&h, 0);
    h.create_bmc_version("bad", 0, "9.9.9", &[], 1).await;
    let bv = h.wait_bmc_version("bad", VersionState::Failed).await;
    let st = bv.status.clone().unwrap();
    assert_eq!(st.failed_attempts, Some(2));
    let c = api::conditions::get(&st.conditions, "VersionUpgradeVerification").unwrap();
    assert_eq!(c.reason, "UpgradeTaskFailed", "{}", c.message);
    assert!(c.message.contains("attempt 2 of 2"), "{}", c.message);
    assert_eq!(h.updates(0), 2, "the first attempt and one retry");
    assert_eq!(running_bmc_version(&h, 0), before);
    h.wait_server(0, ServerState::Available, false).await;
    h.no_maintenances_left().await;
    // Failed is sticky until the retry annotation.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.updates(0), 2, "no attempt while Failed");
    h.bmc_versions()
        .patch(
            &h.obj("bad"),
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
    let bv = h.bmc_versions().get(&h.obj("bad")).await.unwrap();
    assert!(
        bv.annotations()
            .get("metal.ironcore.dev/operation")
            .is_none(),
        "annotation removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bmc_stepping_stone_chain_is_installed_in_order() {
    let h = Harness::with("bmc-stones", "127.42.4.1", 1, bmc_tasks(1_000)).await;
    h.create_bmc_version("chain", 0, "8.0.0", &["7.1.0", "7.5.0"], 2)
        .await;
    let bv = h.wait_bmc_version("chain", VersionState::Completed).await;
    assert_eq!(running_bmc_version(&h, 0), "8.0.0");
    assert_eq!(
        h.task_images(0).await,
        vec![bmc_image("7.1.0"), bmc_image("7.5.0"), bmc_image("8.0.0")],
        "each version once, in order"
    );
    assert_eq!(h.updates(0), 3);
    let st = bv.status.unwrap();
    assert_eq!(st.stepping_stones_passed, Some(2));
    h.wait_server(0, ServerState::Available, false).await;
    h.no_maintenances_left().await;

    // A BMC already past the first stone starts at the second (the first object goes: one
    // BMCVersion acts per BMC).
    h.bmc_versions()
        .delete(&h.obj("chain"), &Default::default())
        .await
        .unwrap();
    h.create_bmc_version("chain-2", 0, "9.0.0", &["7.5.0", "8.5.0"], 2)
        .await;
    h.wait_bmc_version("chain-2", VersionState::Completed).await;
    let images = h.task_images(0).await;
    assert_eq!(
        images[3..],
        [bmc_image("8.5.0"), bmc_image("9.0.0")],
        "a stone older than the running version is skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bmc_that_does_not_restart_by_itself_gets_one_reset() {
    let knobs = Knobs {
        bmc_activation_needs_reset: true,
        ..bmc_tasks(500)
    };
    let mut h = Harness::with("bmc-reset", "127.42.5.1", 1, knobs).await;
    h.stop.cancel();
    h.config.power_timeout = Duration::from_secs(2);
    let stop = CancellationToken::new();
    let _m = h.spawn(stop.clone());
    let _stop = stop.drop_guard();
    h.create_bmc_version("fw", 0, "7.20.0", &[], 2).await;
    let bv = h.wait_bmc_version("fw", VersionState::Completed).await;
    assert_eq!(running_bmc_version(&h, 0), "7.20.0");
    assert_eq!(h.updates(0), 1);
    assert_eq!(h.manager_resets(0), 1, "one reset activates the image");
    let st = bv.status.unwrap();
    assert!(api::conditions::get(&st.conditions, "VersionUpgradeVerification").is_some());
}

fn bios_image(version: &str) -> String {
    format!("http://127.0.0.1:9/bios-{version}.bin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bios_stepping_stone_is_installed_and_verified_first() {
    let h = Harness::with("bios-stones", "127.42.6.1", 1, bmc_tasks(500)).await;
    let versions: Api<BIOSVersion> = Api::all(h.client.clone());
    create(
        &h.client,
        json!({
            "apiVersion": api::API_VERSION, "kind": "BIOSVersion",
            "metadata": { "name": "bios-chain" },
            "spec": {
                "version": "3.0.0", "serverRef": { "name": h.server_name(0) },
                "serverMaintenancePolicy": "Enforced",
                "image": { "URI": bios_image("3.0.0") },
                "steppingStones": [{ "version": "2.8.0", "image": { "URI": bios_image("2.8.0") } }],
            },
        }),
        versions.clone(),
    )
    .await;
    let v = wait_state(versions, "bios-chain", VersionState::Completed, |b| {
        b.status.as_ref()?.state
    })
    .await;
    assert_eq!(h.system(0).bios_version.as_deref(), Some("3.0.0"));
    assert_eq!(
        h.task_images(0).await,
        vec![bios_image("2.8.0"), bios_image("3.0.0")]
    );
    assert_eq!(h.updates(0), 2);
    assert_eq!(h.resets(0), 2, "one reboot per version");
    assert_eq!(v.status.unwrap().stepping_stones_passed, Some(1));
    h.wait_server(0, ServerState::Available, false).await;
}

/// Records the steps a (fresh) instance passes.
fn recorder(seen: Arc<Mutex<Vec<&'static str>>>) -> metal_maintenance::StepHook {
    Arc::new(move |name| {
        seen.lock().unwrap().push(name);
        Box::pin(async {})
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_step_of_a_bmc_update_nothing_is_sent_twice() {
    const STEPS: [&str; 4] = [
        "bmc-update-recorded",
        "bmc-update-sent",
        "bmc-task-completed",
        "bmc-reset-recorded",
    ];
    // BMCs 2 and 3 need a reset to activate: one that restarts by itself runs the new version
    // when it answers again, which the controller verifies before it looks at the task, so the
    // task and reset steps are only reached on such a BMC.
    let mut h = Harness::with("bmc-kill", "127.42.7.1", STEPS.len(), bmc_tasks(1_000)).await;
    for i in [2, 3] {
        h.sim
            .set_knobs(
                i,
                Knobs {
                    bmc_activation_needs_reset: true,
                    power_delay_ms: 200,
                    ..bmc_tasks(1_000)
                },
            )
            .unwrap();
    }
    h.stop.cancel();
    // A kill between recording a send and mirroring it costs one power timeout before a lost
    // send is retried (adoption finds a sent one at once).
    h.config.power_timeout = Duration::from_secs(3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, at) in STEPS.iter().enumerate() {
        let name = format!("kill-{i}");
        h.create_bmc_version(&name, i, "7.30.0", &[], 2).await;
        kill_at(&h, at).await;

        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut config = h.config.clone();
        config.step_hook = Some(recorder(seen.clone()));
        let stop = CancellationToken::new();
        let fresh = spawn_with(&h, config, stop.clone());
        h.wait_bmc_version(&name, VersionState::Completed).await;
        h.wait_server(i, ServerState::Available, false).await;
        stop.cancel();
        let _ = fresh.await;
        assert_eq!(running_bmc_version(&h, i), "7.30.0", "killed at {at}");
        assert_eq!(h.updates(i), 1, "killed at {at}: one SimpleUpdate");
        let want_resets = u64::from(i >= 2);
        assert_eq!(
            h.manager_resets(i),
            want_resets,
            "killed at {at}: BMC resets (steps after the kill: {:?})",
            seen.lock().unwrap()
        );
    }
    h.no_maintenances_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_bmc_version_of_one_bmc_waits_for_the_first() {
    let h = Harness::with("bmc-two", "127.42.8.1", 1, bmc_tasks(500)).await;
    h.create_bmc_version("first", 0, "7.50.0", &[], 2).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.create_bmc_version("second", 0, "7.60.0", &[], 2).await;
    h.wait_bmc_version("first", VersionState::Completed).await;
    let second = h.bmc_versions().get(&h.obj("second")).await.unwrap();
    let c = api::conditions::get(&second.status.unwrap().conditions, "Conflict")
        .cloned()
        .expect("Conflict condition");
    assert!(c.message.contains(&h.obj("first")), "{}", c.message);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running_bmc_version(&h, 0),
        "7.50.0",
        "not pulled to the second's version"
    );
    assert_eq!(h.updates(0), 1);
    // Deleting the first lets the second act.
    h.bmc_versions()
        .delete(&h.obj("first"), &Default::default())
        .await
        .unwrap();
    h.wait_bmc_version("second", VersionState::Completed).await;
    assert_eq!(running_bmc_version(&h, 0), "7.60.0");
    assert_eq!(h.updates(0), 2);
}
