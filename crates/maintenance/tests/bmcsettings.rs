//! BMCSettings through metal-maintenance against a real control plane and the simulator serving
//! the captured Dell iDRAC tree (DellAttributes): variables from a ConfigMap, a Secret and a
//! field, one write and one BMC reset, values verified, the secret never shown; settings already
//! in place; a missing variable source; attributes that stay pending until the reset; and the
//! step-wise kill loop.

use api::bmcsettings::{BMCSettings, BMCSettingsState};
use api::server::ServerState;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use metal_bmc_sim::{Knobs, TemplateSource};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;
use common::*;

const DELL_BMC_VERSION: &str = "6.00.30.00";
const SETTINGS_OBJECT: &str =
    "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1/Settings";
const SECRET_VALUE: &str = "s3cr3t-community-Zq9";

fn dell() -> TemplateSource {
    TemplateSource::Path(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../redfish/tests/fixtures/dell-poweredge-r750"),
    )
}

fn knobs() -> Knobs {
    Knobs {
        bmc_reset_downtime_ms: 1_000,
        ..Knobs::default()
    }
}

impl Harness {
    fn settings(&self) -> Api<BMCSettings> {
        Api::all(self.client.clone())
    }

    fn obj(&self, name: &str) -> String {
        format!("{}-{name}", self.shard)
    }

    async fn create_settings(&self, name: &str, i: usize, settings: Value, variables: Value) {
        create(
            &self.client,
            json!({
                "apiVersion": api::API_VERSION, "kind": "BMCSettings",
                "metadata": { "name": self.obj(name), "labels": { "site": "fra1" } },
                "spec": {
                    "version": DELL_BMC_VERSION, "BMCRef": { "name": format!("{}-{i}", self.shard) },
                    "serverMaintenancePolicy": "Enforced",
                    "settings": settings, "variables": variables,
                },
            }),
            self.settings(),
        )
        .await;
    }

    async fn wait_settings(&self, name: &str, state: BMCSettingsState) -> BMCSettings {
        wait_state(self.settings(), &self.obj(name), state, |b| {
            b.status.as_ref()?.state
        })
        .await
    }

    /// PATCHes of BMC `i`'s iDRAC attribute settings object.
    fn attribute_writes(&self, i: usize) -> u64 {
        self.sim
            .request_counts(i)
            .unwrap()
            .get("PATCH", SETTINGS_OBJECT)
    }

    fn attribute(&self, i: usize, name: &str) -> Option<Value> {
        self.system(i).bmc_attributes.get(name).cloned()
    }

    async fn sources(&self, with_secret: bool) {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "bmc-site" }, "data": { "ntp": "10.1.2.3" },
        }))
        .unwrap();
        let _ = cms.create(&PostParams::default(), &cm).await;
        if with_secret {
            self.secret().await;
        }
    }

    async fn secret(&self) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let s: Secret = serde_json::from_value(json!({
            "metadata": { "name": "bmc-snmp" }, "stringData": { "community": SECRET_VALUE },
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }

    fn variables(&self) -> Value {
        json!([
            { "key": "NTP", "valueFrom": { "configMapKeyRef": { "namespace": self.ns, "name": "bmc-site", "key": "ntp" } } },
            { "key": "COMMUNITY", "valueFrom": { "secretKeyRef": { "namespace": self.ns, "name": "bmc-snmp", "key": "community" } } },
            { "key": "SITE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels[site]" } } },
        ])
    }
}

fn wanted() -> Value {
    json!({
        "NTPConfigGroup.1.NTP1": "$(NTP)",
        "SNMP.1.AgentCommunity": "$(COMMUNITY)",
        "SysLog.1.Server1": "syslog.$(SITE).example",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bmc_settings_are_resolved_written_once_and_take_effect_after_one_reset() {
    let h = Harness::with_template("bmcs-apply", "127.44.1.1", 1, knobs(), dell()).await;
    h.sources(true).await;
    h.create_settings("site", 0, wanted(), h.variables()).await;
    h.wait_server(0, ServerState::Maintenance, true).await;
    let done = h.wait_settings("site", BMCSettingsState::Applied).await;
    assert_eq!(
        h.attribute(0, "NTPConfigGroup.1.NTP1"),
        Some(json!("10.1.2.3"))
    );
    assert_eq!(
        h.attribute(0, "SNMP.1.AgentCommunity"),
        Some(json!(SECRET_VALUE))
    );
    assert_eq!(
        h.attribute(0, "SysLog.1.Server1"),
        Some(json!("syslog.fra1.example"))
    );
    assert_eq!(
        h.attribute_writes(0),
        1,
        "one write of the three attributes"
    );
    assert_eq!(
        h.manager_resets(0),
        1,
        "NTP and SNMP need a BMC reset (registry): exactly one"
    );
    h.wait_server(0, ServerState::Available, false).await;
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
    // The secret's value is nowhere but on the BMC.
    let shown = serde_json::to_string(&done).unwrap();
    assert!(
        !shown.contains(SECRET_VALUE),
        "status shows the secret: {shown}"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(h.client.clone());
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
    assert!(!events.contains(SECRET_VALUE), "an event shows the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bmc_settings_in_place_need_nothing() {
    let h = Harness::with_template("bmcs-noop", "127.44.2.1", 1, knobs(), dell()).await;
    h.create_settings(
        "same",
        0,
        json!({ "SNMP.1.AgentCommunity": "public", "WebServer.1.Timeout": "1800" }),
        json!([]),
    )
    .await;
    h.wait_settings("same", BMCSettingsState::Applied).await;
    assert_eq!(h.attribute_writes(0), 0);
    assert_eq!(h.manager_resets(0), 0);
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
async fn a_missing_variable_source_waits_without_touching_the_bmc() {
    let h = Harness::with_template("bmcs-wait", "127.44.3.1", 1, knobs(), dell()).await;
    h.sources(false).await;
    h.create_settings("later", 0, wanted(), h.variables()).await;
    let name = h.obj("later");
    eventually("VariablesResolved=False", || async {
        let b = h.settings().get(&name).await.unwrap();
        let st = b.status?;
        let c = api::conditions::get(&st.conditions, "VariablesResolved")?;
        (c.status == "False" && c.reason == "VariableNotFound")
            .then(|| assert!(c.message.contains("bmc-snmp"), "{}", c.message))
    })
    .await;
    assert_eq!(h.attribute_writes(0), 0);
    assert!(
        h.sms()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    h.secret().await;
    h.wait_settings("later", BMCSettingsState::Applied).await;
    assert_eq!(
        h.attribute(0, "SNMP.1.AgentCommunity"),
        Some(json!(SECRET_VALUE))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attributes_pending_until_the_reset_are_activated_by_it() {
    let pending = Knobs {
        bmc_attributes_need_reset: vec!["EmailAlert.1.Address".into()],
        ..knobs()
    };
    let h = Harness::with_template("bmcs-pend", "127.44.4.1", 1, pending, dell()).await;
    h.create_settings(
        "mail",
        0,
        json!({ "EmailAlert.1.Address": "ops@example.com" }),
        json!([]),
    )
    .await;
    h.wait_settings("mail", BMCSettingsState::Applied).await;
    assert_eq!(
        h.attribute(0, "EmailAlert.1.Address"),
        Some(json!("ops@example.com"))
    );
    assert!(h.system(0).bmc_attributes_pending.is_empty());
    assert_eq!(h.attribute_writes(0), 1);
    assert_eq!(
        h.manager_resets(0),
        1,
        "the reset activates the pending value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_step_of_a_bmc_settings_change_nothing_is_sent_twice() {
    const STEPS: [&str; 3] = [
        "bmc-settings-recorded",
        "bmc-settings-sent",
        "bmc-settings-reset-recorded",
    ];
    let mut h =
        Harness::with_template("bmcs-kill", "127.44.5.1", STEPS.len(), knobs(), dell()).await;
    h.stop.cancel();
    // A kill between a record and its send costs one power timeout before the send is repeated.
    h.config.power_timeout = Duration::from_secs(3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, at) in STEPS.iter().enumerate() {
        let name = format!("kill-{i}");
        h.create_settings(
            &name,
            i,
            json!({ "NTPConfigGroup.1.NTP1": "10.9.9.9", "SysLog.1.Server1": "10.9.9.8" }),
            json!([]),
        )
        .await;
        kill_at(&h, at).await;

        let stop = CancellationToken::new();
        let fresh = spawn_with(&h, h.config.clone(), stop.clone());
        h.wait_settings(&name, BMCSettingsState::Applied).await;
        h.wait_server(i, ServerState::Available, false).await;
        stop.cancel();
        let _ = fresh.await;
        assert_eq!(
            h.attribute(i, "NTPConfigGroup.1.NTP1"),
            Some(json!("10.9.9.9")),
            "killed at {at}"
        );
        assert_eq!(h.attribute_writes(i), 1, "killed at {at}: one write");
        assert_eq!(h.manager_resets(i), 1, "killed at {at}: one BMC reset");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bmc_settings_set_configures_its_bmcs_one_at_a_time() {
    let h = Harness::with_template("bmcs-set", "127.44.6.1", 2, knobs(), dell()).await;
    for i in 0..2 {
        Api::<api::bmc::BMC>::all(h.client.clone())
            .patch(
                &format!("{}-{i}", h.shard),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({ "metadata": { "labels": { "rack": h.shard } } })),
            )
            .await
            .unwrap();
    }
    let sets: Api<api::sets::BMCSettingsSet> = Api::all(h.client.clone());
    create(
        &h.client,
        json!({
            "apiVersion": api::API_VERSION, "kind": "BMCSettingsSet",
            "metadata": { "name": h.obj("set") },
            "spec": {
                "bmcSelector": { "matchLabels": { "rack": h.shard } },
                "bmcSettingsTemplate": {
                    "version": DELL_BMC_VERSION, "serverMaintenancePolicy": "Enforced",
                    "settings": { "SysLog.1.Server1": "10.7.7.7" },
                },
                "rollout": { "maxInMaintenance": 1 },
            },
        }),
        sets.clone(),
    )
    .await;
    let done = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let mut held = 0;
            for i in 0..2 {
                held += usize::from(h.server(i).await.spec.server_maintenance_ref.is_some());
            }
            assert!(held <= 1, "{held} servers in maintenance at once");
            let st = sets
                .get(&h.obj("set"))
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            if st.completed == Some(2) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("both BMCs configured");
    assert_eq!(done.fully_labeled_bmcs, Some(2));
    for i in 0..2 {
        assert_eq!(h.attribute(i, "SysLog.1.Server1"), Some(json!("10.7.7.7")));
        assert_eq!(h.attribute_writes(i), 1);
    }
}
