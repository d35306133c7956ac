//! Cleaning released servers: a server that a `Recycle` claim released with cleaning enabled is
//! in `Cleaning` (reservation moved it there and recorded the mode in `CleaningRequested`);
//! maintenance, the owner of its BMC in that state, cleans its disks and hands the server to
//! the pool (`Available`) only when the round proves every disk clean:
//!
//! * `Metadata`: the in-band agent wipes the partition tables and signatures at either end of
//!   every disk ([`crate::cleaning_agent`]);
//! * `Full`: every drive the BMC lists with `Drive.SecureErase` is erased through Redfish;
//!   when a drive lacks the action (or the BMC lists none), the agent then overwrites every
//!   disk it finds.
//!
//! Any failure moves it to `Error` with `Cleaned=False/CleaningFailed`: a server
//! that may still hold a tenant's data is never handed out. The `retry` operation on such a
//! server starts a new round.
//!
//! Progress is recorded in the Server's `Cleaned` condition (`Unknown/Cleaning`) with the
//! Server's resourceVersion as precondition: before each drive's erase is sent, the drive is
//! named as being erased; after the BMC accepted it, it is listed as erased. A restarted
//! controller sends the erase of a drive that was named but not listed again: a repeated
//! erase costs time, a skipped one would leave data behind.
//!
//! The agent's verified report is recorded in the same condition (`wiped in-band: ...`), then
//! `Cleaned=True`; only after that are the agent's objects torn down (powered off, reference
//! cleared, deleted) and the server moved on, so a restart at any point neither repeats a
//! finished phase nor leaves objects behind.

use crate::{Caches, Ctx, Error, now, writes};
use api::conditions::{self, ConditionStatus};
use api::constants::{
    CLEANING_MODE_ANNOTATION, CleaningMode, OPERATION_ANNOTATION, Operation, condition_types,
    reasons as api_reasons,
};
use api::server::{Server, ServerState};
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use metal_probe::WipeMode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a round has done so far, as written in the `Cleaned` condition's message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Drives whose erase the BMC accepted.
    pub erased: Vec<String>,
    /// The drive whose erase was about to be sent (or sent, not yet confirmed).
    pub erasing: Option<String>,
    /// Disks the in-band agent's verified report names (empty: no agent phase done).
    pub wiped: Vec<String>,
}

const ERASED: &str = "erased: ";
const ERASING: &str = "erasing: ";
const WIPED: &str = "wiped in-band: ";

fn list(s: &str) -> Vec<String> {
    s.split(", ")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

impl Progress {
    /// The condition message (parsed back by [`Progress::parse`]).
    pub fn message(&self) -> String {
        let mut parts = vec![
            "cleaning in progress".to_string(),
            format!("{ERASED}{}", self.erased.join(", ")),
        ];
        if let Some(d) = &self.erasing {
            parts.push(format!("{ERASING}{d}"));
        }
        if !self.wiped.is_empty() {
            parts.push(format!("{WIPED}{}", self.wiped.join(", ")));
        }
        parts.join("; ")
    }

    /// Reads a message written by [`Progress::message`].
    pub fn parse(message: &str) -> Self {
        let mut p = Self::default();
        for part in message.split("; ") {
            if let Some(r) = part.strip_prefix(ERASED) {
                p.erased = list(r);
            } else if let Some(r) = part.strip_prefix(ERASING) {
                p.erasing = Some(r.trim().to_string()).filter(|d| !d.is_empty());
            } else if let Some(r) = part.strip_prefix(WIPED) {
                p.wiped = list(r);
            }
        }
        p
    }
}

/// The next step of a cleaning round (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not a server to clean now.
    Nothing,
    /// A failed cleaning with the `retry` operation: back to `Cleaning`, a new round.
    Retry,
    /// Record that drive `0` is being erased (with the progress so far), then send its erase.
    Erase(String),
    /// The in-band phase: boot the agent in this mode and wait for its report.
    Agent(WipeMode),
    /// Every disk is clean: record `Cleaned=True`.
    Done,
    /// `Cleaned=True` is recorded: tear the agent's objects down, then move to `Available`.
    Finish,
    /// The round cannot succeed: record `Cleaned=False`, tear down, then move to `Error`.
    Fail(String),
}

/// The cleaning mode of a server in `Cleaning`: what reservation recorded, else the server's
/// annotation, else `Full` (the cautious choice).
pub fn mode(server: &Server) -> CleaningMode {
    let conds = server
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    conditions::get(conds, condition_types::CLEANING_REQUESTED)
        .and_then(|c| c.reason.parse().ok())
        .or_else(|| {
            server
                .annotations()
                .get(CLEANING_MODE_ANNOTATION)
                .and_then(|v| v.parse().ok())
        })
        .filter(|m| *m != CleaningMode::Disabled)
        .unwrap_or(CleaningMode::Full)
}

/// This round's `Cleaned` record: not older than the round's start (`CleaningRequested`).
fn this_round(server: &Server) -> Option<&Condition> {
    let conds = server
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    // Compared in whole seconds: condition times are written with second precision, so a
    // record made in the round's first second must count.
    let started = conditions::get(conds, condition_types::CLEANING_REQUESTED)
        .map(|c| c.last_transition_time.0.as_second());
    conditions::get(conds, condition_types::CLEANED)
        .filter(|c| started.is_none_or(|s| c.last_transition_time.0.as_second() >= s))
}

/// This round's progress: the `Cleaned=Unknown` record of this round, else nothing done yet.
pub fn progress(server: &Server) -> Progress {
    match this_round(server) {
        Some(c) if c.status == ConditionStatus::Unknown.as_str() => Progress::parse(&c.message),
        _ => Progress::default(),
    }
}

fn failed_cleaning(server: &Server) -> bool {
    server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::CLEANED))
        .is_some_and(|c| c.status == ConditionStatus::False.as_str())
}

/// Decides the next step for `server` with the BMC's `drives` (`(id, has SecureErase)`, read
/// only when the server is in `Cleaning`).
pub fn next(server: &Server, drives: Option<&[(String, bool)]>) -> Step {
    if api::constants::ignored(&server.metadata) || server.metadata.deletion_timestamp.is_some() {
        return Step::Nothing;
    }
    match server.state() {
        Some(ServerState::Error) => {
            let retry = server
                .annotations()
                .get(OPERATION_ANNOTATION)
                .is_some_and(|v| v == Operation::Retry.as_str());
            if retry && failed_cleaning(server) {
                Step::Retry
            } else {
                Step::Nothing
            }
        }
        Some(ServerState::Cleaning) => {
            match this_round(server) {
                Some(c) if c.status == ConditionStatus::True.as_str() => return Step::Finish,
                Some(c) if c.status == ConditionStatus::False.as_str() => {
                    return Step::Fail(c.message.clone());
                }
                _ => {}
            }
            let Some(drives) = drives else {
                return Step::Nothing;
            };
            let done = progress(server);
            let agent_done = !done.wiped.is_empty();
            if mode(server) == CleaningMode::Metadata {
                return if agent_done {
                    Step::Done
                } else {
                    Step::Agent(WipeMode::Metadata)
                };
            }
            if let Some((id, _)) = drives
                .iter()
                .find(|(id, erasable)| *erasable && !done.erased.contains(id))
            {
                return Step::Erase(id.clone());
            }
            let all_erased = !drives.is_empty() && drives.iter().all(|(_, erasable)| *erasable);
            if all_erased || agent_done {
                Step::Done
            } else {
                Step::Agent(WipeMode::Full)
            }
        }
        _ => Step::Nothing,
    }
}

fn cleaned(server: &Server, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    conditions::new(
        condition_types::CLEANED,
        status,
        reason,
        message,
        server.metadata.generation,
        now(),
    )
}

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    Controller::for_shared_stream(caches.servers.applied(), ctx.servers.clone())
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, crate::window::backoff::<Server>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "cleaning controller");
            }
        })
        .await;
}

fn relevant(server: &Server) -> bool {
    match server.state() {
        Some(ServerState::Cleaning) => true,
        Some(ServerState::Error) => failed_cleaning(server),
        _ => false,
    }
}

async fn reconcile(server: Arc<Server>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !relevant(&server) {
        return Ok(Action::await_change());
    }
    let key = ctx.server_shard_key(Some(&server.name_any()));
    crate::window::instrumented(server.as_ref(), &ctx, &key, reconcile_one(&server, &ctx)).await
}

async fn reconcile_one(server: &Server, ctx: &Ctx) -> Result<Action, Error> {
    let api: Api<Server> = Api::all(ctx.client.clone());
    let name = server.name_any();
    if next(server, None) == Step::Retry {
        let mut s = writes::apply_server_conditions(
            &api,
            server,
            vec![cleaned(
                server,
                ConditionStatus::Unknown,
                api_reasons::CLEANING,
                &Progress::default().message(),
            )],
        )
        .await?;
        s = writes::set_state(&api, &s, ServerState::Cleaning).await?;
        writes::set_annotations(&api, &s, &[(OPERATION_ANNOTATION, None)]).await?;
        ctx.events.normal(
            server,
            "CleaningRetried",
            format!("server {name}: cleaning starts again"),
        );
        return Ok(Action::await_change());
    }
    if server.state() != Some(ServerState::Cleaning) {
        return Ok(Action::await_change());
    }
    match next(server, None) {
        Step::Finish => return finish(ctx, &api, server).await,
        Step::Fail(msg) => return fail(ctx, &api, server, &msg).await,
        _ => {}
    }
    let mode = mode(server);
    // Only a Full round reads the drives (a Metadata round is the agent's alone).
    let (bmc, drives) = if mode == CleaningMode::Full {
        let (bmc, system) = match ctx.bmcs.for_server(server).await {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(server = %name, error = %e, "cleaning waits for the BMC");
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        };
        match bmc.drives(&system).await {
            Ok(d) => (Some(bmc), d),
            Err(e) => {
                // Not a cleaning failure: the BMC did not answer; try again.
                tracing::info!(server = %name, error = %e, "reading the drives failed");
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        }
    } else {
        (None, Vec::new())
    };
    let view: Vec<(String, bool)> = drives
        .iter()
        .map(|d| (d.id.clone(), d.secure_erase.is_some()))
        .collect();
    let mut server = server.clone();
    // Each erase is recorded before it is sent and after it was accepted.
    for _ in 0..drives.len() + 3 {
        match next(&server, Some(&view)) {
            Step::Nothing | Step::Retry => return Ok(Action::await_change()),
            Step::Erase(id) => {
                let bmc = bmc
                    .as_ref()
                    .expect("only a Full round erases, and it has the BMC");
                let mut p = progress(&server);
                p.erasing = Some(id.clone());
                server = record_progress(&api, &server, &p).await?;
                ctx.step("cleaning-erase-recorded").await;
                let target = drives
                    .iter()
                    .find(|d| d.id == id)
                    .and_then(|d| d.secure_erase.clone())
                    .expect("next only erases drives with SecureErase");
                let sent = bmc.secure_erase(&target).await;
                ctx.requests.observe("secure_erase", &sent);
                let outcome = match sent {
                    Ok(h) => match h.monitor {
                        None => Ok(()),
                        Some(m) => wait_task(bmc, &m, ctx.config.firmware_timeout).await,
                    },
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = outcome {
                    return fail(
                        ctx,
                        &api,
                        &server,
                        &format!("drive {id}: secure erase failed: {e}"),
                    )
                    .await;
                }
                ctx.step("cleaning-erase-sent").await;
                p.erased.push(id);
                p.erasing = None;
                server = record_progress(&api, &server, &p).await?;
            }
            Step::Agent(wipe) => {
                let (s, outcome) = crate::cleaning_agent::run(ctx, &server, wipe).await?;
                server = s;
                match outcome {
                    crate::cleaning_agent::Outcome::Wait(d) => return Ok(Action::requeue(d)),
                    crate::cleaning_agent::Outcome::Failed(m) => {
                        return fail(ctx, &api, &server, &m).await;
                    }
                    crate::cleaning_agent::Outcome::Wiped(disks) => {
                        let mut p = progress(&server);
                        p.wiped = disks;
                        server = record_progress(&api, &server, &p).await?;
                        ctx.step("cleaning-agent-report-recorded").await;
                    }
                }
            }
            Step::Done => {
                let msg = summary(mode, &progress(&server));
                server = writes::apply_server_conditions(
                    &api,
                    &server,
                    vec![cleaned(
                        &server,
                        ConditionStatus::True,
                        api_reasons::CLEANED,
                        &msg,
                    )],
                )
                .await?;
                ctx.step("cleaning-recorded").await;
            }
            Step::Finish => return finish(ctx, &api, &server).await,
            Step::Fail(msg) => return fail(ctx, &api, &server, &msg).await,
        }
    }
    Ok(Action::requeue(Duration::from_millis(200)))
}

/// The `Cleaned=True` message: what the round did.
pub fn summary(mode: CleaningMode, p: &Progress) -> String {
    let mut parts = Vec::new();
    if !p.erased.is_empty() {
        parts.push(format!("secure-erased {}", p.erased.join(", ")));
    }
    if !p.wiped.is_empty() {
        let how = if mode == CleaningMode::Metadata {
            "partition tables and signatures wiped in-band on"
        } else {
            "overwritten in-band"
        };
        parts.push(format!("{how} {}", p.wiped.join(", ")));
    }
    format!("{mode} cleaning: every disk clean ({})", parts.join("; "))
}

/// The round succeeded and is recorded: the agent's objects go, then the server is Available.
async fn finish(ctx: &Ctx, api: &Api<Server>, server: &Server) -> Result<Action, Error> {
    let Some(s) = crate::cleaning_agent::tear_down(ctx, server).await? else {
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let s = writes::set_state(api, &s, ServerState::Available).await?;
    let msg = this_round(&s)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ctx.events.normal(
        &s,
        "Cleaned",
        format!("server {}: {msg}; Available again", s.name_any()),
    );
    Ok(Action::await_change())
}

async fn record_progress(
    api: &Api<Server>,
    server: &Server,
    p: &Progress,
) -> Result<Server, Error> {
    let c = cleaned(
        server,
        ConditionStatus::Unknown,
        api_reasons::CLEANING,
        &p.message(),
    );
    writes::apply_server_conditions(api, server, vec![c]).await
}

/// Polls an erase task until it ends; `Err` with the task's message when it did not complete.
async fn wait_task(bmc: &redfish::Client, monitor: &str, timeout: Duration) -> Result<(), String> {
    match bmc.wait_for_task(monitor, timeout).await {
        Ok(t) if t.task_state == Some(redfish::models::TaskState::Completed) => Ok(()),
        Ok(t) => Err(format!("task ended {:?}", t.task_state)),
        Err(e) => Err(e.to_string()),
    }
}

async fn fail(ctx: &Ctx, api: &Api<Server>, server: &Server, msg: &str) -> Result<Action, Error> {
    let recorded = this_round(server).is_some_and(|c| c.status == ConditionStatus::False.as_str());
    let s = if recorded {
        server.clone()
    } else {
        writes::apply_server_conditions(
            api,
            server,
            vec![cleaned(
                server,
                ConditionStatus::False,
                api_reasons::CLEANING_FAILED,
                msg,
            )],
        )
        .await?
    };
    let Some(s) = crate::cleaning_agent::tear_down(ctx, &s).await? else {
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let s = writes::set_state(api, &s, ServerState::Error).await?;
    ctx.events.warning(
        &s,
        api_reasons::CLEANING_FAILED,
        format!(
            "server {}: {msg}; kept out of the pool (state Error, `retry` to clean again)",
            s.name_any()
        ),
    );
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(state: &str, conds: serde_json::Value, annotations: serde_json::Value) -> Server {
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": "s", "annotations": annotations},
            "spec": {"systemUUID": "u"},
            "status": {"state": state, "conditions": conds},
        }))
        .unwrap()
    }

    fn cond(t: &str, status: &str, reason: &str, msg: &str, at: &str) -> serde_json::Value {
        json!({"type": t, "status": status, "reason": reason, "message": msg, "lastTransitionTime": at})
    }

    fn drives(ids: &[(&str, bool)]) -> Vec<(String, bool)> {
        ids.iter().map(|(i, e)| (i.to_string(), *e)).collect()
    }

    #[test]
    fn progress_survives_its_message() {
        let p = Progress {
            erased: vec!["Disk.Bay.0:Enclosure.Internal.0-1".into(), "1".into()],
            erasing: Some("2".into()),
            ..Default::default()
        };
        assert_eq!(Progress::parse(&p.message()), p);
        assert_eq!(
            Progress::parse(&Progress::default().message()),
            Progress::default()
        );
    }

    #[test]
    fn every_drive_is_erased_once_in_order_and_then_the_server_is_done() {
        let d = drives(&[("0", true), ("1", true)]);
        let req = cond(
            "CleaningRequested",
            "True",
            "Full",
            "",
            "2027-01-01T00:00:00Z",
        );
        let s = server("Cleaning", json!([req]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Erase("0".into()));
        // Killed after naming drive 0: it is sent again (never skipped).
        let p = Progress {
            erased: vec![],
            erasing: Some("0".into()),
            ..Default::default()
        };
        let c = cond(
            "Cleaned",
            "Unknown",
            "Cleaning",
            &p.message(),
            "2027-01-01T00:00:01Z",
        );
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Erase("0".into()));
        let p = Progress {
            erased: vec!["0".into()],
            erasing: None,
            ..Default::default()
        };
        let c = cond(
            "Cleaned",
            "Unknown",
            "Cleaning",
            &p.message(),
            "2027-01-01T00:00:01Z",
        );
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Erase("1".into()));
        let p = Progress {
            erased: vec!["0".into(), "1".into()],
            erasing: None,
            ..Default::default()
        };
        let c = cond(
            "Cleaned",
            "Unknown",
            "Cleaning",
            &p.message(),
            "2027-01-01T00:00:01Z",
        );
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Done);
    }

    #[test]
    fn progress_of_an_earlier_round_does_not_count() {
        let d = drives(&[("0", true)]);
        let old = Progress {
            erased: vec!["0".into()],
            erasing: None,
            ..Default::default()
        };
        let c = cond(
            "Cleaned",
            "Unknown",
            "Cleaning",
            &old.message(),
            "2027-01-01T00:00:00Z",
        );
        let req = cond(
            "CleaningRequested",
            "True",
            "Full",
            "",
            "2027-02-01T00:00:00Z",
        );
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Erase("0".into()));
        assert_eq!(mode(&s), CleaningMode::Full);
    }

    #[test]
    fn drives_without_secure_erase_are_overwritten_by_the_agent_after_the_others_are_erased() {
        let req = cond(
            "CleaningRequested",
            "True",
            "Full",
            "",
            "2027-01-01T00:00:00Z",
        );
        let s = server("Cleaning", json!([req]), json!({}));
        let d = drives(&[("0", true), ("1", false)]);
        assert_eq!(next(&s, Some(&d)), Step::Erase("0".into()));
        let erased = Progress {
            erased: vec!["0".into()],
            ..Default::default()
        };
        let at = "2027-01-01T00:00:05Z";
        let c = cond("Cleaned", "Unknown", "Cleaning", &erased.message(), at);
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Agent(WipeMode::Full));
        // A BMC that lists no drives: the agent finds the disks.
        let bare = server("Cleaning", json!([req]), json!({}));
        assert_eq!(next(&bare, Some(&[])), Step::Agent(WipeMode::Full));
        let wiped = Progress {
            wiped: vec!["sda".into()],
            ..erased.clone()
        };
        assert_eq!(Progress::parse(&wiped.message()), wiped);
        let c = cond("Cleaned", "Unknown", "Cleaning", &wiped.message(), at);
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Done);
        assert_eq!(
            summary(CleaningMode::Full, &wiped),
            "Full cleaning: every disk clean (secure-erased 0; overwritten in-band sda)"
        );
    }

    #[test]
    fn a_metadata_round_is_the_agents_alone() {
        let req = cond(
            "CleaningRequested",
            "True",
            "Metadata",
            "",
            "2027-01-01T00:00:00Z",
        );
        let s = server("Cleaning", json!([req]), json!({}));
        let d = drives(&[("0", true)]);
        assert_eq!(next(&s, Some(&d)), Step::Agent(WipeMode::Metadata));
        assert_eq!(next(&s, Some(&[])), Step::Agent(WipeMode::Metadata));
        let wiped = Progress {
            wiped: vec!["nvme0n1".into(), "sda".into()],
            ..Default::default()
        };
        let c = cond(
            "Cleaned",
            "Unknown",
            "Cleaning",
            &wiped.message(),
            "2027-01-01T00:00:02Z",
        );
        let s = server("Cleaning", json!([req, c]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Done);
    }

    #[test]
    fn a_recorded_result_is_carried_out_not_redone() {
        let req = cond(
            "CleaningRequested",
            "True",
            "Full",
            "",
            "2027-01-01T00:00:00Z",
        );
        let d = drives(&[("0", true)]);
        let ok = cond("Cleaned", "True", "Cleaned", "x", "2027-01-01T00:00:09Z");
        let s = server("Cleaning", json!([req, ok]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Finish, "killed before Available");
        assert_eq!(next(&s, None), Step::Finish);
        let bad = cond(
            "Cleaned",
            "False",
            "CleaningFailed",
            "why",
            "2027-01-01T00:00:09Z",
        );
        let s = server("Cleaning", json!([req, bad]), json!({}));
        assert_eq!(
            next(&s, None),
            Step::Fail("why".into()),
            "killed before Error"
        );
        // A result of an earlier round does not count.
        let old = cond("Cleaned", "True", "Cleaned", "x", "2026-12-01T00:00:00Z");
        let s = server("Cleaning", json!([req, old]), json!({}));
        assert_eq!(next(&s, Some(&d)), Step::Erase("0".into()));
    }

    #[test]
    fn only_retry_restarts_a_failed_round() {
        let failed = cond(
            "Cleaned",
            "False",
            "CleaningFailed",
            "x",
            "2027-01-01T00:00:00Z",
        );
        let e = server("Error", json!([failed]), json!({}));
        assert_eq!(next(&e, None), Step::Nothing);
        let e = server(
            "Error",
            json!([failed]),
            json!({"metal.ironcore.dev/operation": "retry"}),
        );
        assert_eq!(next(&e, None), Step::Retry);
        let other = server(
            "Error",
            json!([]),
            json!({"metal.ironcore.dev/operation": "retry"}),
        );
        assert_eq!(
            next(&other, None),
            Step::Nothing,
            "discovery's Error, not ours"
        );
        assert_eq!(mode(&other), CleaningMode::Full);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::{BTreeMap, BTreeSet};

        fn drive_id() -> impl Strategy<Value = String> {
            "[A-Za-z0-9][A-Za-z0-9.:_-]{0,30}"
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// A round run to its end through its own records: each erasable drive is
            /// erased once (Full only), the agent runs once exactly when Redfish cannot clean
            /// everything (or always, for Metadata), and it ends in Done.
            #[test]
            fn a_round_erases_each_drive_once_and_ends(
                drives in prop::collection::btree_map(drive_id(), any::<bool>(), 0..6),
                metadata in any::<bool>(),
            ) {
                let drives: Vec<(String, bool)> = drives.into_iter().collect();
                let mode = if metadata { "Metadata" } else { "Full" };
                let req = cond("CleaningRequested", "True", mode, "", "2027-01-01T00:00:00Z");
                let mut p = Progress::default();
                let mut erased: BTreeMap<String, u32> = BTreeMap::new();
                let mut agent = 0;
                let mut done = false;
                for _ in 0..drives.len() + 2 {
                    let c = cond("Cleaned", "Unknown", "Cleaning", &p.message(), "2027-01-01T00:00:01Z");
                    let s = server("Cleaning", json!([req, c]), json!({}));
                    prop_assert_eq!(Progress::parse(&p.message()), p.clone());
                    match next(&s, Some(&drives)) {
                        Step::Erase(id) => {
                            prop_assert!(drives.iter().any(|(d, e)| *d == id && *e), "{id} cannot be erased");
                            *erased.entry(id.clone()).or_default() += 1;
                            p.erased.push(id);
                        }
                        Step::Agent(m) => {
                            prop_assert_eq!(m.as_str(), mode);
                            agent += 1;
                            p.wiped = vec!["sda".into()];
                        }
                        Step::Done => {
                            done = true;
                            break;
                        }
                        other => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                prop_assert!(done, "the round never ended");
                prop_assert!(erased.values().all(|n| *n == 1));
                if metadata {
                    prop_assert!(erased.is_empty());
                    prop_assert_eq!(agent, 1);
                } else {
                    let erasable: BTreeSet<&String> =
                        drives.iter().filter(|(_, e)| *e).map(|(d, _)| d).collect();
                    prop_assert_eq!(erased.keys().collect::<BTreeSet<_>>(), erasable);
                    let needs_agent = drives.is_empty() || drives.iter().any(|(_, e)| !e);
                    prop_assert_eq!(agent, usize::from(needs_agent));
                }
            }
        }
    }
}
