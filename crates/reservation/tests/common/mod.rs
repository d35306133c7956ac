//! Helpers shared by the integration tests: a scoped controller per test (unique server label,
//! own namespace) against the real control plane of `metal-testenv`.

#![allow(dead_code)]

use api::common::Power;
use api::server::{Server, ServerSpec};
use api::serverclaim::{Phase, ServerClaim, ServerClaimSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use metal_reservation::{Config, Reservation};
use runtime::admin::AdminState;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Label every server of a test carries; the controller under test only sees its own.
pub const TEST_LABEL: &str = "metal-test-id";

/// One test's world: a namespace for claims and a unique label for servers and rules.
pub struct Env {
    pub client: Client,
    pub ns: String,
    pub id: String,
}

impl Env {
    pub async fn new(prefix: &str) -> Self {
        let filter = std::env::var("METAL_TEST_LOG").unwrap_or_else(|_| "warn".to_string());
        let _ = runtime::logging::init(&filter, runtime::flags::LogFormat::Text);
        let (client, ns) = testenv::setup(prefix).await;
        Self {
            client,
            ns: ns.name,
            id: testenv::unique_name(prefix),
        }
    }

    /// Controller configuration scoped to this test.
    pub fn config(&self, identity: &str) -> Config {
        let mut c = Config::new(identity);
        c.server_selector = Some(format!("{TEST_LABEL}={}", self.id));
        c.rule_selector = Some(format!("{TEST_LABEL}={}", self.id));
        c.claim_namespace = Some(self.ns.clone());
        c.binding_lock_timeout = Duration::from_secs(4);
        c
    }

    /// Starts a controller instance in this process.
    pub fn start(&self, identity: &str) -> Running {
        self.start_with(self.client.clone(), self.config(identity))
    }

    pub fn start_with(&self, client: Client, config: Config) -> Running {
        let admin = AdminState::default();
        let reservation = Reservation::start(client, config, &admin);
        Running::spawn(reservation, admin)
    }

    pub fn servers(&self) -> Api<Server> {
        Api::all(self.client.clone())
    }

    pub fn claims(&self) -> Api<ServerClaim> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn sbcs(&self) -> Api<api::ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn server_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// Creates an Available, powered-off server `<id>-<suffix>` with extra `labels`, then lets
    /// `edit` change spec and status as discovery and provisioning would have.
    pub async fn server(
        &self,
        suffix: &str,
        labels: &[(&str, &str)],
        edit: impl FnOnce(&mut Server),
    ) -> Server {
        let name = self.server_name(suffix);
        let mut s = Server::new(
            &name,
            ServerSpec {
                system_uuid: format!("uuid-{name}"),
                ..Default::default()
            },
        );
        let mut l: std::collections::BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(TEST_LABEL.into(), self.id.clone());
        s.metadata.labels = Some(l);
        s.status = Some(api::ServerStatus {
            state: Some(api::ServerState::Available),
            power_state: Some(api::server::ServerPowerState::Off),
            ..Default::default()
        });
        edit(&mut s);
        let status = s.status.take();
        let created = self
            .servers()
            .create(&PostParams::default(), &s)
            .await
            .expect("create server");
        if let Some(status) = status {
            return self
                .servers()
                .patch_status(
                    &name,
                    &PatchParams::apply("test-discovery").force(),
                    &Patch::Apply(json!({
                        "apiVersion": api::API_VERSION,
                        "kind": "Server",
                        "status": status,
                    })),
                )
                .await
                .expect("server status");
        }
        created
    }

    /// Creates claim `name` (image `img`, power On) after `edit`.
    pub async fn claim(&self, name: &str, edit: impl FnOnce(&mut ServerClaimSpec)) -> ServerClaim {
        let mut spec = ServerClaimSpec {
            power: Power::On,
            server_ref: None,
            server_selector: None,
            ignition_secret_ref: None,
            user_data_ref: None,
            image: "ghcr.io/example/os:1".into(),
            tolerations: vec![],
        };
        edit(&mut spec);
        let c = ServerClaim::new(name, spec);
        self.claims()
            .create(&PostParams::default(), &c)
            .await
            .expect("create claim")
    }

    pub async fn get_server(&self, suffix: &str) -> Server {
        self.servers()
            .get(&self.server_name(suffix))
            .await
            .expect("get server")
    }

    pub async fn get_claim(&self, name: &str) -> Option<ServerClaim> {
        self.claims().get_opt(name).await.expect("get claim")
    }

    /// Waits until the claim satisfies `pred` (panics with the last seen claim after `secs`).
    pub async fn wait_claim(
        &self,
        name: &str,
        secs: u64,
        pred: impl Fn(&ServerClaim) -> bool,
    ) -> ServerClaim {
        let mut last = None;
        let ok = eventually(secs, async || {
            let c = self.get_claim(name).await?;
            let ok = pred(&c);
            last = Some(c.clone());
            ok.then_some(c)
        })
        .await;
        ok.unwrap_or_else(|| panic!("claim {name} did not reach the expected state: {last:#?}"))
    }

    pub async fn wait_server(
        &self,
        suffix: &str,
        secs: u64,
        pred: impl Fn(&Server) -> bool,
    ) -> Server {
        let mut last = None;
        let ok = eventually(secs, async || {
            let s = self.get_server(suffix).await;
            let ok = pred(&s);
            last = Some(s.clone());
            ok.then_some(s)
        })
        .await;
        ok.unwrap_or_else(|| panic!("server {suffix} did not reach the expected state: {last:#?}"))
    }

    /// Plays provisioning: writes the claim's `PoweredOff` condition under provisioning's
    /// field manager.
    pub async fn set_powered_off(&self, claim: &str, status: &str, reason: &str) {
        self.claims()
            .patch_status(
                claim,
                &PatchParams::apply("metal-provisioning").force(),
                &Patch::Apply(json!({
                    "apiVersion": api::API_VERSION,
                    "kind": "ServerClaim",
                    "status": {"conditions": [{
                        "type": "PoweredOff",
                        "status": status,
                        "reason": reason,
                        "message": "test plays provisioning",
                        "lastTransitionTime": "2025-01-01T00:00:00Z",
                    }]},
                })),
            )
            .await
            .expect("write PoweredOff");
    }

    /// A merge patch on a server as an operator would do with kubectl.
    pub async fn patch_server(&self, suffix: &str, body: serde_json::Value) -> Server {
        self.servers()
            .patch(
                &self.server_name(suffix),
                &PatchParams::default(),
                &Patch::Merge(body),
            )
            .await
            .expect("patch server")
    }

    /// A label selector for `key=value`.
    pub fn selector(key: &str, value: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some([(key.to_string(), value.to_string())].into()),
            ..Default::default()
        }
    }
}

/// A controller instance running in a task.
pub struct Running {
    pub admin: AdminState,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    pub fn spawn(reservation: Reservation, admin: AdminState) -> Self {
        let token = CancellationToken::new();
        let handle = tokio::spawn(reservation.run(token.clone()));
        Self {
            admin,
            token,
            handle,
        }
    }

    /// Graceful stop.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.handle).await;
    }

    /// Kills the instance mid-flight (like a crash: in-flight reconciles are dropped).
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Polls `f` every 100 ms until it returns `Some` or `secs` pass.
pub async fn eventually<T>(secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Phase of a claim.
pub fn phase(c: &ServerClaim) -> Option<Phase> {
    c.status.as_ref().and_then(|s| s.phase)
}

/// The `Bound` condition's (status, reason, message).
pub fn bound_condition(c: &ServerClaim) -> Option<(String, String, String)> {
    c.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Bound")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

pub fn bound_reason(c: &ServerClaim) -> Option<String> {
    bound_condition(c).map(|(_, r, _)| r)
}

pub fn is_bound(c: &ServerClaim) -> bool {
    phase(c) == Some(Phase::Bound)
}

/// Name of the claim a server is bound to.
pub fn claim_of(s: &Server) -> Option<String> {
    s.spec.server_claim_ref.as_ref().map(|r| r.name.clone())
}

pub fn state(s: &Server) -> Option<api::ServerState> {
    s.state()
}
