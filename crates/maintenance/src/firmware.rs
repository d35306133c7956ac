//! The BIOSVersion controller: installs a BIOS firmware image through Redfish
//! `UpdateService.SimpleUpdate` inside a maintenance window.
//!
//! A server already running `spec.version` is `Completed` without a maintenance. Otherwise, in
//! maintenance: the update is recorded (`VersionUpgradeIssued`, with the object's
//! `resourceVersion` as precondition) before SimpleUpdate is sent and its task is mirrored in
//! `status.upgradeTask`, so a restarted controller polls the task instead of starting a second
//! update. When the task completed, the server is rebooted once (recorded the same way) so the
//! staged image is installed, and the object is `Completed` when the BMC reports the version.
//! A failed task or a timeout counts one failed attempt (`retryPolicy.maxAttempts`, default 3).

use crate::biosplan::{self, DEFAULT_MAX_ATTEMPTS};
use crate::stones::{self, Target};
use crate::{Caches, Ctx, Error, now, plan, window, writes};
use api::biosversion::{BIOSVersion, BIOSVersionStatus, VersionState};
use api::common::{ImageSpec, Task, UpdatePolicy};
use api::conditions;
use api::constants::{condition_types as ct, reasons};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use redfish::models::{ComputerSystem, PowerState};
use redfish::{SimpleUpdateRequest, TaskProgress};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a running update is polled.
const POLL: Duration = Duration::from_secs(2);

/// The next firmware step (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwStep {
    /// Record, then send SimpleUpdate.
    Issue,
    /// An update was recorded as sent but no task is known yet: wait (it is sent again only
    /// after the power timeout).
    WaitIssued,
    /// Poll the task at this URI.
    Poll(String),
    /// The image is staged: record, then reboot.
    Reboot,
    /// Rebooted recently: wait for the BMC to report the new version.
    WaitReboot,
}

/// Decides the step from the mirrored task and the ages of the two records.
pub fn fw_step(
    task: Option<&Task>,
    issued_age: Option<Duration>,
    reboot_age: Option<Duration>,
    timeout: Duration,
) -> FwStep {
    let fresh = |age: Option<Duration>| age.is_some_and(|a| a < timeout);
    match task {
        None if fresh(issued_age) => FwStep::WaitIssued,
        None => FwStep::Issue,
        Some(t) if t.state.as_ref().map(|s| s.as_str()) != Some("Completed") => match &t.uri {
            Some(uri) => FwStep::Poll(uri.clone()),
            // Finished synchronously: nothing to poll.
            None => reboot_or_wait(fresh(reboot_age)),
        },
        Some(_) => reboot_or_wait(fresh(reboot_age)),
    }
}

fn reboot_or_wait(rebooted_recently: bool) -> FwStep {
    if rebooted_recently {
        FwStep::WaitReboot
    } else {
        FwStep::Reboot
    }
}

/// The redfish task as mirrored into status.
pub fn mirror(uri: Option<String>, t: Option<&redfish::models::Task>) -> Task {
    let text = |v: serde_json::Value| v.as_str().map(str::to_owned);
    Task {
        uri,
        state: t
            .and_then(|t| t.task_state.as_ref())
            .and_then(|s| text(serde_json::to_value(s).ok()?))
            .map(|s| s.as_str().into()),
        status: t
            .and_then(|t| t.task_status.as_ref())
            .and_then(|s| text(serde_json::to_value(s).ok()?))
            .map(|s| s.as_str().into()),
        percent_complete: t
            .and_then(|t| t.percent_complete)
            .map(|p| p.min(100) as i32),
    }
}

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    window::run(
        ctx,
        &caches.bios_versions,
        caches,
        shutdown,
        |bv: Arc<BIOSVersion>, ctx: Arc<Ctx>| async move { reconcile_one(&bv, &ctx).await },
    )
    .await;
}

fn api(ctx: &Ctx) -> Api<BIOSVersion> {
    Api::all(ctx.client.clone())
}

fn record_age(status: &BIOSVersionStatus, type_: &str) -> Option<Duration> {
    conditions::get(&status.conditions, type_).map(|c| window::age(&c.last_transition_time))
}

/// A fresh attempt: the task and its records cleared.
fn restart(bv: &BIOSVersion, old: &BIOSVersionStatus, failed_attempts: i32) -> BIOSVersionStatus {
    let mut conditions = old.conditions.clone();
    for t in [
        ct::VERSION_UPGRADE_ISSUED,
        ct::VERSION_UPGRADE_REBOOT,
        ct::SETTINGS_UPDATE_START_TIME,
    ] {
        conditions::remove(&mut conditions, t);
    }
    BIOSVersionStatus {
        state: Some(VersionState::Pending),
        upgrade_task: None,
        failed_attempts: Some(failed_attempts),
        target_version: None,
        stepping_stones_passed: old.stepping_stones_passed,
        observed_generation: bv.metadata.generation,
        conditions,
    }
}

/// Writes a record that precedes a side effect: only from an up-to-date read.
/// Returns the object as written: later writes of the same reconcile must use its
/// `resourceVersion`.
async fn record(
    ctx: &Ctx,
    bv: &BIOSVersion,
    status: &BIOSVersionStatus,
) -> Result<BIOSVersion, Error> {
    let mut status = status.clone();
    status.observed_generation = bv.metadata.generation;
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status_if_unchanged(&api(ctx), bv, value).await
}

async fn fail(
    ctx: &Ctx,
    bv: &BIOSVersion,
    mut status: BIOSVersionStatus,
    reason: &str,
    msg: &str,
) -> Result<Action, Error> {
    let failed = status.failed_attempts.unwrap_or(0) + 1;
    let max = bv
        .spec
        .template
        .retry_policy
        .as_ref()
        .and_then(|r| r.max_attempts);
    let msg = format!(
        "{msg} (attempt {failed} of {})",
        max.unwrap_or(DEFAULT_MAX_ATTEMPTS) + 1
    );
    ctx.events.warning(bv, reason, msg.clone());
    if biosplan::may_retry(failed - 1, max) {
        let mut next = restart(bv, &status, failed);
        conditions::set(
            &mut next.conditions,
            window::condition(bv, ct::VERSION_UPGRADE_COMPLETED, false, reason, &msg),
        );
        window::write_status(ctx, bv, &next).await?;
        return Ok(Action::requeue(POLL));
    }
    status.state = Some(VersionState::Failed);
    status.failed_attempts = Some(failed);
    conditions::set(
        &mut status.conditions,
        window::condition(bv, ct::VERSION_UPGRADE_COMPLETED, false, reason, &msg),
    );
    window::write_status(ctx, bv, &status).await?;
    window::release(ctx, bv).await?;
    Ok(Action::await_change())
}

async fn reconcile_one(bv: &BIOSVersion, ctx: &Ctx) -> Result<Action, Error> {
    if let Some(done) = window::prologue(ctx, bv).await? {
        return Ok(done);
    }
    let status = bv.status.clone().unwrap_or_default();
    // Failed is sticky until the retry annotation; Completed is re-checked against the
    // running version on every reconcile.
    let failed = status.state == Some(VersionState::Failed);
    if let Some(done) =
        window::sticky_failure(ctx, bv, &status, failed, |old| restart(bv, old, 0)).await?
    {
        return Ok(done);
    }
    let mut status = status;
    let server_name = bv.spec.server_ref.as_ref().map(|r| r.name.clone());
    let Some(server) = server_name
        .as_deref()
        .and_then(|n| ctx.servers.get(&ObjectRef::new(n)))
    else {
        conditions::set(
            &mut status.conditions,
            window::condition(
                bv,
                "ServerFound",
                false,
                "ServerNotFound",
                &format!(
                    "server {} does not exist",
                    server_name.as_deref().unwrap_or("(spec.serverRef not set)")
                ),
            ),
        );
        status.state = Some(VersionState::Pending);
        window::write_status(ctx, bv, &status).await?;
        window::release(ctx, bv).await?;
        return Ok(Action::requeue(ctx.config.resync));
    };

    if let Some(key) = window::waiting_for(ctx, bv, &server) {
        return window::wait_for_window(ctx, bv, status, &key).await;
    }
    // What runs now (no side effects).
    let read = async {
        let (client, system) = ctx.bmcs.for_server(&server).await?;
        let sys: ComputerSystem = client.get(&system).await?;
        Ok::<_, crate::bmc::BmcError>((client, system, sys))
    };
    let (bmc, system, sys) = match read.await {
        Ok(r) => r,
        Err(e) => {
            conditions::set(
                &mut status.conditions,
                window::condition(
                    bv,
                    crate::bios::BMC_CONDITION,
                    false,
                    e.reason(),
                    &e.to_string(),
                ),
            );
            window::write_status(ctx, bv, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    conditions::set(
        &mut status.conditions,
        window::condition(
            bv,
            crate::bios::BMC_CONDITION,
            true,
            "Reachable",
            "the BMC answered",
        ),
    );
    let running = sys.bios_version.clone().unwrap_or_default();
    let tpl = &bv.spec.template;
    let recorded = status.stepping_stones_passed.unwrap_or(0).max(0) as usize;
    let passed = stones::passed(&tpl.stepping_stones, &running, recorded);
    if passed > recorded {
        // A stepping stone runs: verified; the next version of the chain starts afresh.
        let stone = tpl.stepping_stones[passed - 1].version.clone();
        ctx.events.normal(
            bv,
            reasons::VERSION_UPDATE_VERIFIED,
            format!("the BIOS runs stepping stone {stone}"),
        );
        let mut next = restart(bv, &status, status.failed_attempts.unwrap_or(0));
        next.state = status.state;
        next.target_version = status.target_version.clone();
        next.stepping_stones_passed = Some(passed as i32);
        conditions::set(
            &mut next.conditions,
            window::condition(
                bv,
                ct::VERSION_UPGRADE_VERIFICATION,
                true,
                reasons::VERSION_UPDATE_VERIFIED,
                &format!("stepping stone {stone} runs"),
            ),
        );
        window::write_status(ctx, bv, &next).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let target = stones::next(
        &tpl.version,
        &tpl.image,
        &tpl.stepping_stones,
        &running,
        recorded,
    );
    let (wanted, image) = match target {
        Target::Done => (tpl.version.trim().to_string(), tpl.image.clone()),
        Target::Install { version, image, .. } => (version.trim().to_string(), image.clone()),
    };
    let wanted = wanted.as_str();
    if target == Target::Done {
        if status.state != Some(VersionState::Completed) {
            status.state = Some(VersionState::Completed);
            status.target_version = None;
            if !tpl.stepping_stones.is_empty() {
                status.stepping_stones_passed = Some(tpl.stepping_stones.len() as i32);
            }
            conditions::set(
                &mut status.conditions,
                window::condition(
                    bv,
                    ct::VERSION_UPGRADE_VERIFICATION,
                    true,
                    reasons::VERSION_UPDATE_VERIFIED,
                    &format!("the BIOS runs {wanted}"),
                ),
            );
            for t in [
                ct::VERSION_UPGRADE_ISSUED,
                ct::VERSION_UPGRADE_REBOOT,
                ct::SETTINGS_UPDATE_START_TIME,
            ] {
                conditions::remove(&mut status.conditions, t);
            }
            ctx.events.normal(
                bv,
                reasons::VERSION_UPDATE_VERIFIED,
                format!("the BIOS runs {wanted}"),
            );
        }
        window::write_status(ctx, bv, &status).await?;
        window::release(ctx, bv).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }

    // Installing needs the server in maintenance.
    let Some(sm_key) = window::ensure(ctx, bv).await? else {
        status.state = Some(VersionState::Pending);
        window::write_status(ctx, bv, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    };
    if !plan::holds(&server, &sm_key) {
        return window::wait_for_window(ctx, bv, status, &sm_key).await;
    }
    conditions::remove(&mut status.conditions, ct::SERVER_MAINTENANCE_WAITING);
    if status.state != Some(VersionState::InProgress)
        || status.target_version.as_deref() != Some(wanted)
    {
        // A new attempt: the task and records of an earlier one must not steer this one.
        let failed = status.failed_attempts.unwrap_or(0);
        status = BIOSVersionStatus {
            conditions: status.conditions.clone(),
            ..restart(bv, &status, failed)
        };
        for t in [
            ct::VERSION_UPGRADE_ISSUED,
            ct::VERSION_UPGRADE_REBOOT,
            ct::SETTINGS_UPDATE_START_TIME,
        ] {
            conditions::remove(&mut status.conditions, t);
        }
        status.state = Some(VersionState::InProgress);
        status.target_version = Some(wanted.to_string());
        conditions::set(
            &mut status.conditions,
            window::condition(
                bv,
                ct::SETTINGS_UPDATE_START_TIME,
                true,
                "UpgradeStarted",
                &format!("installing {wanted} (runs {running})"),
            ),
        );
    }
    let started = record_age(&status, ct::SETTINGS_UPDATE_START_TIME).unwrap_or_default();
    if started > ctx.config.firmware_timeout {
        let msg = format!(
            "{wanted} not running within {:?}",
            ctx.config.firmware_timeout
        );
        return fail(ctx, bv, status, reasons::VERSION_VERIFICATION_FAILED, &msg).await;
    }

    let step = fw_step(
        status.upgrade_task.as_ref(),
        record_age(&status, ct::VERSION_UPGRADE_ISSUED),
        record_age(&status, ct::VERSION_UPGRADE_REBOOT),
        ctx.config.power_timeout,
    );
    if matches!(step, FwStep::WaitIssued | FwStep::Issue)
        && let Some(rec) = conditions::get(&status.conditions, ct::VERSION_UPGRADE_ISSUED)
        && let Some(task) =
            crate::bmcversion::adoptable_task(&bmc, &image.uri, &rec.last_transition_time).await
    {
        // Sent by an instance that did not live to mirror its task: follow that one.
        status.upgrade_task = Some(task);
        window::write_status(ctx, bv, &status).await?;
        return Ok(Action::requeue(POLL));
    }
    match step {
        FwStep::WaitIssued | FwStep::WaitReboot => {
            window::write_status(ctx, bv, &status).await?;
            Ok(Action::requeue(POLL))
        }
        FwStep::Issue => {
            let req = update_request(
                ctx,
                &image,
                bv.spec.template.update_policy == Some(UpdatePolicy::Force),
            )
            .await?;
            conditions::remove(&mut status.conditions, ct::VERSION_UPGRADE_ISSUED);
            let mut issued = window::condition(
                bv,
                ct::VERSION_UPGRADE_ISSUED,
                true,
                reasons::UPGRADE_ISSUED,
                &format!("SimpleUpdate {} ({wanted})", image.uri),
            );
            issued.last_transition_time = now();
            status.conditions.push(issued);
            let recorded = record(ctx, bv, &status).await?;
            ctx.step("bios-update-recorded").await;
            let started = bmc.simple_update(&req).await;
            ctx.requests.observe("firmware_update", &started);
            ctx.step("bios-update-sent").await;
            match started {
                Ok(handle) => {
                    let mut task = mirror(handle.monitor.clone(), None);
                    if handle.monitor.is_none() {
                        task.state = Some("Completed".into());
                    }
                    status.upgrade_task = Some(task);
                    ctx.events.normal(
                        bv,
                        reasons::UPGRADE_ISSUED,
                        format!("installing {} from {}", wanted, image.uri),
                    );
                    window::write_status(ctx, &recorded, &status).await?;
                    Ok(Action::requeue(POLL))
                }
                Err(e) => {
                    fail(
                        ctx,
                        &recorded,
                        status,
                        reasons::UPGRADE_ISSUE_FAILED,
                        &format!("SimpleUpdate refused: {e}"),
                    )
                    .await
                }
            }
        }
        FwStep::Poll(uri) => match bmc.task_progress(&uri).await {
            Ok(TaskProgress::Running(t)) => {
                status.upgrade_task = Some(Task {
                    uri: Some(uri.clone()),
                    ..mirror(Some(uri), t.as_ref())
                });
                if status
                    .upgrade_task
                    .as_ref()
                    .is_some_and(|t| t.state.is_none())
                {
                    status.upgrade_task.as_mut().expect("set above").state = Some("Running".into());
                }
                window::write_status(ctx, bv, &status).await?;
                Ok(Action::requeue(POLL))
            }
            Ok(TaskProgress::Done(t)) => {
                let failed = t.task_state.as_ref().is_some_and(|s| s.is_failure())
                    || t.task_status == Some(redfish::models::Health::Critical);
                if failed {
                    let msg = t
                        .messages
                        .iter()
                        .filter_map(|m| m.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ");
                    return fail(
                        ctx,
                        bv,
                        status,
                        reasons::UPGRADE_TASK_FAILED,
                        &format!("the update task failed: {msg}"),
                    )
                    .await;
                }
                let mut task = mirror(Some(uri), Some(&t));
                task.state = Some("Completed".into());
                status.upgrade_task = Some(task);
                conditions::set(
                    &mut status.conditions,
                    window::condition(
                        bv,
                        ct::VERSION_UPGRADE_COMPLETED,
                        true,
                        reasons::UPGRADE_TASK_COMPLETED,
                        "the BMC staged the image",
                    ),
                );
                window::write_status(ctx, bv, &status).await?;
                Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) if e.status() == Some(404) => {
                // The BMC dropped the finished task: the reboot and the version check decide.
                let mut task = mirror(Some(uri), None);
                task.state = Some("Completed".into());
                status.upgrade_task = Some(task);
                window::write_status(ctx, bv, &status).await?;
                Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => {
                conditions::set(
                    &mut status.conditions,
                    window::condition(
                        bv,
                        crate::bios::BMC_CONDITION,
                        false,
                        "BMCError",
                        &format!("polling the update task: {e}"),
                    ),
                );
                window::write_status(ctx, bv, &status).await?;
                Ok(Action::requeue(Duration::from_secs(10)))
            }
        },
        FwStep::Reboot => {
            let on = sys.power_state == Some(PowerState::On);
            let how = if on { "restart" } else { "power on" };
            conditions::remove(&mut status.conditions, ct::VERSION_UPGRADE_REBOOT);
            let mut rebooted = window::condition(
                bv,
                ct::VERSION_UPGRADE_REBOOT,
                true,
                reasons::REBOOT_POWER_ON,
                &format!("{how} to install {wanted}"),
            );
            rebooted.last_transition_time = now();
            status.conditions.push(rebooted);
            record(ctx, bv, &status).await?;
            ctx.step("bios-update-reboot-recorded").await;
            let sent = if on {
                bmc.restart(&system, false).await
            } else {
                bmc.power_on(&system).await
            };
            ctx.requests.observe("reboot", &sent);
            ctx.step("bios-update-reboot-sent").await;
            match sent {
                Ok(_) => ctx.events.normal(
                    bv,
                    reasons::REBOOT_POWER_ON,
                    format!("{how} to install {wanted}"),
                ),
                Err(e) => ctx
                    .events
                    .warning(bv, "RebootFailed", format!("{how} failed: {e}")),
            }
            Ok(Action::requeue(POLL))
        }
    }
}

/// The SimpleUpdate request: image, protocol, force, and credentials from `image.secretRef`
/// (never logged: the password is a [`redfish::Secret`]).
pub(crate) async fn update_request(
    ctx: &Ctx,
    image: &ImageSpec,
    force: bool,
) -> Result<SimpleUpdateRequest, Error> {
    let mut req = SimpleUpdateRequest {
        image_uri: image.uri.clone(),
        transfer_protocol: image.transfer_protocol.clone(),
        force_update: force.then_some(true),
        ..SimpleUpdateRequest::default()
    };
    if let Some(r) = &image.secret_ref {
        let ns = r
            .namespace
            .clone()
            .unwrap_or_else(|| ctx.config.namespace.clone());
        let name = r.name.clone().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let secret = writes::call(
            format!("reading image secret {ns}/{name}"),
            secrets.get(&name),
        )
        .await?;
        let data = secret.data.unwrap_or_default();
        let text = |k: &str| {
            data.get(k)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        req.username = text("username");
        req.password = text("password").map(redfish::Secret::new);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: &str, uri: Option<&str>) -> Task {
        Task {
            uri: uri.map(str::to_owned),
            state: Some(state.into()),
            ..Task::default()
        }
    }

    #[test]
    fn an_update_is_issued_once_polled_then_rebooted_once() {
        let t = Duration::from_secs(300);
        let s = Duration::from_secs(5);
        let old = Duration::from_secs(301);
        assert_eq!(fw_step(None, None, None, t), FwStep::Issue);
        assert_eq!(fw_step(None, Some(s), None, t), FwStep::WaitIssued);
        assert_eq!(fw_step(None, Some(old), None, t), FwStep::Issue);
        let running = task("Running", Some("/redfish/v1/TaskService/Tasks/1"));
        assert_eq!(
            fw_step(Some(&running), Some(s), None, t),
            FwStep::Poll("/redfish/v1/TaskService/Tasks/1".into())
        );
        let done = task("Completed", Some("/t"));
        assert_eq!(fw_step(Some(&done), Some(old), None, t), FwStep::Reboot);
        assert_eq!(
            fw_step(Some(&done), Some(old), Some(s), t),
            FwStep::WaitReboot
        );
        assert_eq!(
            fw_step(Some(&done), Some(old), Some(old), t),
            FwStep::Reboot
        );
        let sync = Task {
            uri: None,
            ..task("Running", None)
        };
        assert_eq!(fw_step(Some(&sync), None, None, t), FwStep::Reboot);
    }

    #[test]
    fn tasks_are_mirrored_with_their_state_health_and_progress() {
        let t: redfish::models::Task = serde_json::from_value(serde_json::json!({
            "TaskState": "Running", "TaskStatus": "OK", "PercentComplete": 40
        }))
        .unwrap();
        let m = mirror(Some("/t/1".into()), Some(&t));
        assert_eq!(m.uri.as_deref(), Some("/t/1"));
        assert_eq!(m.state.as_ref().map(|s| s.as_str()), Some("Running"));
        assert_eq!(m.status.as_ref().map(|s| s.as_str()), Some("OK"));
        assert_eq!(m.percent_complete, Some(40));
        assert_eq!(mirror(None, None), Task::default());
    }
}
