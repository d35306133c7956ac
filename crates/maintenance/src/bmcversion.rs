//! The BMCVersion controller: installs BMC firmware through Redfish `UpdateService.SimpleUpdate`,
//! walking the optional stepping-stone chain, inside maintenance windows of the BMC's servers.
//!
//! A BMC already running `spec.version` is `Completed` at once (never flashed again). Otherwise
//! one ServerMaintenance per server of the BMC is requested (`spec.serverMaintenanceRefs`), and
//! once every one holds its server, for each version of the chain: the update is recorded
//! (`VersionUpgradeIssued`, resourceVersion precondition) before SimpleUpdate is sent and its task
//! mirrored in `status.upgradeTask`. A controller killed between sending and mirroring finds its
//! task among the BMC's tasks by image and start time instead of sending a second update. The
//! BMC restarts to activate the image: while it does not answer the controller waits (that is not
//! a failure; `--firmware-timeout` bounds it). The version is verified on the Manager; a BMC that
//! staged the image but did not restart within the power timeout gets one recorded Manager reset.
//! A failed task, a refused update or the timeout counts one failed attempt
//! (`retryPolicy.maxAttempts`, default 3).

use crate::biosplan::{self, DEFAULT_MAX_ATTEMPTS};
use crate::stones::{self, Target};
use crate::{Caches, Ctx, Error, bmclevel, firmware, now, window, writes};
use api::biosversion::VersionState;
use api::bmcversion::{BMCVersion, BMCVersionStatus};
use api::common::{ImageSpec, Task, UpdatePolicy};
use api::conditions;
use api::constants::{condition_types as ct, reasons};
use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use redfish::TaskProgress;
use redfish::models::ResetType;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a running update is polled.
const POLL: Duration = Duration::from_secs(2);
/// Clock drift allowed between this controller and a BMC when recognising our own task.
const CLOCK_SLACK: Duration = bmclevel::CLOCK_SLACK;
/// Condition on the BMCVersion saying whether the BMC answers.
pub const BMC_REACHABLE: &str = "BMCReachable";

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    let store = caches.bmc_versions.store();
    let by_bmc = store.clone();
    let reconcile = |bv: Arc<BMCVersion>, ctx: Arc<Ctx>| async move {
        let work = reconcile_one(&bv, &ctx);
        let key = bv
            .spec
            .bmc_ref
            .as_ref()
            .map_or_else(|| bv.name_any(), |r| r.name.clone());
        window::instrumented(bv.as_ref(), &ctx, &key, work).await
    };
    Controller::for_shared_stream(caches.bmc_versions.applied(), store)
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        .watches_shared_stream(caches.servers.touched(), move |server| {
            let bmc = server.spec.bmc_ref.as_ref().map(|r| r.name.clone());
            by_bmc
                .state()
                .iter()
                .filter(|o| o.spec.bmc_ref.as_ref().map(|r| &r.name) == bmc.as_ref())
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(caches.maintenances.touched(), |sm| {
            sm.owner_references()
                .iter()
                .filter(|o| o.kind == "BMCVersion")
                .map(|o| ObjectRef::<BMCVersion>::new(&o.name))
                .collect::<Vec<_>>()
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, window::backoff::<BMCVersion>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "bmcversion controller");
            }
        })
        .await;
}

fn api(ctx: &Ctx) -> Api<BMCVersion> {
    Api::all(ctx.client.clone())
}

async fn write(ctx: &Ctx, bv: &BMCVersion, status: &BMCVersionStatus) -> Result<(), Error> {
    let mut status = status.clone();
    status.observed_generation = bv.metadata.generation;
    if bv.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status_if_unchanged(&api(ctx), bv, value).await?;
    Ok(())
}

/// Writes a record that precedes a side effect; returns the object as written.
async fn record(
    ctx: &Ctx,
    bv: &BMCVersion,
    status: &BMCVersionStatus,
) -> Result<BMCVersion, Error> {
    let mut status = status.clone();
    status.observed_generation = bv.metadata.generation;
    let value = serde_json::to_value(&status).unwrap_or_default();
    writes::apply_status_if_unchanged(&api(ctx), bv, value).await
}

fn cond(
    bv: &BMCVersion,
    type_: &str,
    ok: bool,
    reason: &str,
    msg: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    window::condition(bv, type_, ok, reason, msg)
}

fn record_age(status: &BMCVersionStatus, type_: &str) -> Option<Duration> {
    conditions::get(&status.conditions, type_).map(|c| window::age(&c.last_transition_time))
}

/// The per-step records of one version of the chain.
const STEP_RECORDS: [&str; 4] = [
    ct::VERSION_UPGRADE_ISSUED,
    ct::VERSION_UPGRADE_REBOOT,
    ct::VERSION_UPGRADE_COMPLETED,
    ct::SETTINGS_UPDATE_START_TIME,
];

/// A fresh attempt (or the next version of the chain): the task and step records cleared.
fn restart(status: &BMCVersionStatus, failed_attempts: i32) -> BMCVersionStatus {
    let mut next = status.clone();
    for t in STEP_RECORDS {
        conditions::remove(&mut next.conditions, t);
    }
    next.state = Some(VersionState::Pending);
    next.upgrade_task = None;
    next.failed_attempts = Some(failed_attempts);
    next
}

async fn fail(
    ctx: &Ctx,
    bv: &BMCVersion,
    mut status: BMCVersionStatus,
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
        let mut next = restart(&status, failed);
        conditions::set(
            &mut next.conditions,
            cond(bv, ct::VERSION_UPGRADE_VERIFICATION, false, reason, &msg),
        );
        write(ctx, bv, &next).await?;
        return Ok(Action::requeue(POLL));
    }
    status.state = Some(VersionState::Failed);
    status.failed_attempts = Some(failed);
    conditions::set(
        &mut status.conditions,
        cond(bv, ct::VERSION_UPGRADE_VERIFICATION, false, reason, &msg),
    );
    write(ctx, bv, &status).await?;
    bmclevel::release(ctx, bv).await?;
    Ok(Action::await_change())
}

/// A task for `image` the BMC runs or ran since `recorded_at`: the update a killed controller
/// sent but could not mirror.
pub(crate) async fn adoptable_task(
    bmc: &redfish::Client,
    image: &str,
    recorded_at: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Option<Task> {
    let tasks = bmc.tasks().await.ok()?;
    tasks.into_iter().find_map(|t| {
        let start = t
            .start_time
            .as_deref()
            .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok());
        let running = !t.task_state.as_ref().is_some_and(|s| s.is_terminal());
        stones::is_our_task(
            t.update_image().as_deref(),
            start,
            running,
            image,
            recorded_at.0,
            CLOCK_SLACK,
        )
        .then(|| {
            let uri = t.task_monitor.clone().or(t.odata_id.clone());
            firmware::mirror(uri, Some(&t))
        })
    })
}

/// Condition of a BMCVersion that waits for an older one of the same BMC.
pub const CONFLICT: &str = "Conflict";

/// The oldest other BMCVersion (by creation, then name) naming BMC `bmc`, if it is older than
/// `bv`.
fn earlier_for_bmc(ctx: &Ctx, bv: &BMCVersion, bmc: &str) -> Option<String> {
    let key = |o: &BMCVersion| {
        (
            o.metadata.creation_timestamp.clone().map(|t| t.0),
            o.name_any(),
        )
    };
    ctx.caches
        .bmc_versions
        .store()
        .state()
        .into_iter()
        .filter(|o| o.spec.bmc_ref.as_ref().is_some_and(|r| r.name == bmc))
        .filter(|o| o.metadata.deletion_timestamp.is_none() && o.uid() != bv.uid())
        .filter(|o| key(o) < key(bv))
        .min_by_key(|o| key(o))
        .map(|o| o.name_any())
}

async fn reconcile_one(bv: &BMCVersion, ctx: &Ctx) -> Result<Action, Error> {
    if api::constants::ignored(bv.meta()) {
        return Ok(Action::await_change());
    }
    let bmc_name = bv.spec.bmc_ref.as_ref().map(|r| r.name.clone());
    let servers = bmc_name
        .as_deref()
        .map(|b| bmclevel::servers_of(ctx, b))
        .unwrap_or_default();
    // A sharded instance acts for BMCs whose servers it sees.
    if ctx.config.server_selector.is_some() && servers.is_empty() {
        return Ok(Action::await_change());
    }
    if let Some(done) = bmclevel::lifecycle(ctx, bv).await? {
        return Ok(done);
    }
    let mut status = bv.status.clone().unwrap_or_default();
    // Two BMCVersions of one BMC would flash it back and forth: the oldest acts, the others
    // wait and say for which.
    if let Some(first) = bmc_name
        .as_deref()
        .and_then(|b| earlier_for_bmc(ctx, bv, b))
    {
        status.state = Some(VersionState::Pending);
        conditions::set(
            &mut status.conditions,
            cond(
                bv,
                CONFLICT,
                true,
                "OtherBMCVersion",
                &format!("BMCVersion {first} is older and names the same BMC; delete one of them"),
            ),
        );
        write(ctx, bv, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    conditions::remove(&mut status.conditions, CONFLICT);
    let failed = status.state == Some(VersionState::Failed);
    if window::retry_requested(bv) {
        if failed {
            let mut next = restart(&status, 0);
            conditions::set(
                &mut next.conditions,
                cond(
                    bv,
                    ct::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    true,
                    reasons::RETRY_OF_FAILED_RESOURCE_ISSUED,
                    "retry requested by annotation",
                ),
            );
            write(ctx, bv, &next).await?;
        }
        window::clear_retry(ctx, bv).await?;
        return Ok(Action::await_change());
    }
    if failed {
        bmclevel::release(ctx, bv).await?;
        return Ok(Action::await_change());
    }
    let Some(bmc_name) = bmc_name else {
        conditions::set(
            &mut status.conditions,
            cond(
                bv,
                "BMCFound",
                false,
                "BMCNotFound",
                "spec.bmcRef is not set",
            ),
        );
        status.state = Some(VersionState::Pending);
        write(ctx, bv, &status).await?;
        return Ok(Action::await_change());
    };

    // What runs now (no side effects). Unreachable while it restarts after an update.
    let read = async {
        let client = ctx.bmcs.for_bmc(&bmc_name).await?;
        let managers = client.managers().await?;
        let m = managers
            .iter()
            .find(|m| m.manager_type.as_deref() == Some("BMC"))
            .or(managers.first())
            .cloned()
            .ok_or_else(|| crate::bmc::BmcError::Redfish("the BMC lists no Manager".into()))?;
        Ok::<_, crate::bmc::BmcError>((client, m))
    };
    let (bmc, manager) = match read.await {
        Ok(r) => r,
        Err(e) => {
            let updating = status.state == Some(VersionState::InProgress)
                && conditions::get(&status.conditions, ct::VERSION_UPGRADE_ISSUED).is_some();
            let msg = if updating {
                format!("{e} (expected while the BMC restarts into new firmware)")
            } else {
                e.to_string()
            };
            conditions::set(
                &mut status.conditions,
                cond(bv, BMC_REACHABLE, false, e.reason(), &msg),
            );
            if updating
                && record_age(&status, ct::SETTINGS_UPDATE_START_TIME).unwrap_or_default()
                    > ctx.config.firmware_timeout
            {
                let msg = format!(
                    "the BMC did not come back within {:?}",
                    ctx.config.firmware_timeout
                );
                return fail(ctx, bv, status, reasons::VERSION_VERIFICATION_FAILED, &msg).await;
            }
            write(ctx, bv, &status).await?;
            return Ok(Action::requeue(if updating {
                POLL
            } else {
                Duration::from_secs(30)
            }));
        }
    };
    conditions::set(
        &mut status.conditions,
        cond(bv, BMC_REACHABLE, true, "Reachable", "the BMC answered"),
    );
    let running = manager.firmware_version.clone().unwrap_or_default();
    let tpl = &bv.spec.template;
    let recorded = status.stepping_stones_passed.unwrap_or(0).max(0) as usize;
    let passed = stones::passed(&tpl.stepping_stones, &running, recorded);
    if passed > recorded {
        // A stepping stone runs: verified; the next version of the chain starts afresh.
        let stone = &tpl.stepping_stones[passed - 1].version;
        ctx.events.normal(
            bv,
            reasons::VERSION_UPDATE_VERIFIED,
            format!("the BMC runs stepping stone {stone}"),
        );
        let failed_attempts = status.failed_attempts.unwrap_or(0);
        let mut next = restart(&status, failed_attempts);
        next.state = status.state;
        next.stepping_stones_passed = Some(passed as i32);
        conditions::set(
            &mut next.conditions,
            cond(
                bv,
                ct::VERSION_UPGRADE_VERIFICATION,
                true,
                reasons::VERSION_UPDATE_VERIFIED,
                &format!("stepping stone {stone} runs"),
            ),
        );
        write(ctx, bv, &next).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let (wanted, image) = match stones::next(
        &tpl.version,
        &tpl.image,
        &tpl.stepping_stones,
        &running,
        recorded,
    ) {
        Target::Done => {
            if status.state != Some(VersionState::Completed) {
                let wanted = tpl.version.trim();
                let mut next = restart(&status, status.failed_attempts.unwrap_or(0));
                next.state = Some(VersionState::Completed);
                next.target_version = None;
                next.stepping_stones_passed =
                    (!tpl.stepping_stones.is_empty()).then_some(tpl.stepping_stones.len() as i32);
                // The last task stays visible.
                next.upgrade_task = status.upgrade_task.clone();
                conditions::set(
                    &mut next.conditions,
                    cond(
                        bv,
                        ct::VERSION_UPGRADE_VERIFICATION,
                        true,
                        reasons::VERSION_UPDATE_VERIFIED,
                        &format!("the BMC runs {wanted}"),
                    ),
                );
                ctx.events.normal(
                    bv,
                    reasons::VERSION_UPDATE_VERIFIED,
                    format!("the BMC runs {wanted}"),
                );
                status = next;
            }
            write(ctx, bv, &status).await?;
            bmclevel::release(ctx, bv).await?;
            return Ok(Action::requeue(ctx.config.resync));
        }
        Target::Install { version, image, .. } => (version.trim().to_string(), image.clone()),
    };

    // Installing needs every server of the BMC in maintenance.
    if !bmclevel::ensure_windows(ctx, bv, &servers).await? {
        status.state = Some(VersionState::Pending);
        conditions::set(
            &mut status.conditions,
            cond(
                bv,
                ct::SERVER_MAINTENANCE_WAITING,
                true,
                reasons::SERVER_MAINTENANCE_WAITING,
                &format!(
                    "waiting for the maintenances of {} server(s) to hold them",
                    servers.len()
                ),
            ),
        );
        write(ctx, bv, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    conditions::remove(&mut status.conditions, ct::SERVER_MAINTENANCE_WAITING);
    if status.state != Some(VersionState::InProgress)
        || status.target_version.as_deref() != Some(wanted.as_str())
    {
        let failed_attempts = status.failed_attempts.unwrap_or(0);
        status = restart(&status, failed_attempts);
        status.state = Some(VersionState::InProgress);
        status.target_version = Some(wanted.clone());
        conditions::set(
            &mut status.conditions,
            cond(
                bv,
                ct::SETTINGS_UPDATE_START_TIME,
                true,
                "UpgradeStarted",
                &format!("installing {wanted} (runs {running})"),
            ),
        );
        write(ctx, bv, &status).await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = record_age(&status, ct::SETTINGS_UPDATE_START_TIME).unwrap_or_default();
    if started > ctx.config.firmware_timeout {
        let msg = format!(
            "{wanted} not running within {:?}",
            ctx.config.firmware_timeout
        );
        return fail(ctx, bv, status, reasons::VERSION_VERIFICATION_FAILED, &msg).await;
    }

    let issued = conditions::get(&status.conditions, ct::VERSION_UPGRADE_ISSUED).cloned();
    match (status.upgrade_task.clone(), issued) {
        (None, Some(rec)) => {
            // Sent (or about to be) by an instance that did not live to mirror its task.
            if let Some(task) = adoptable_task(&bmc, &image.uri, &rec.last_transition_time).await {
                status.upgrade_task = Some(task);
                write(ctx, bv, &status).await?;
                return Ok(Action::requeue(POLL));
            }
            if window::age(&rec.last_transition_time) < ctx.config.power_timeout {
                write(ctx, bv, &status).await?;
                return Ok(Action::requeue(POLL));
            }
            // Never arrived: send it now.
            issue(ctx, bv, status, &bmc, &wanted, &image).await
        }
        (None, None) => issue(ctx, bv, status, &bmc, &wanted, &image).await,
        (Some(task), _) => {
            let done = task.state.as_ref().map(|s| s.as_str()) == Some("Completed");
            match (&task.uri, done) {
                (Some(uri), false) => poll(ctx, bv, status, &bmc, uri.clone()).await,
                _ => after_task(ctx, bv, status, &bmc, &manager.odata_id, &wanted).await,
            }
        }
    }
}

/// Records, then sends SimpleUpdate, then mirrors its task.
async fn issue(
    ctx: &Ctx,
    bv: &BMCVersion,
    mut status: BMCVersionStatus,
    bmc: &redfish::Client,
    wanted: &str,
    image: &ImageSpec,
) -> Result<Action, Error> {
    let req = firmware::update_request(
        ctx,
        image,
        bv.spec.template.update_policy == Some(UpdatePolicy::Force),
    )
    .await?;
    conditions::remove(&mut status.conditions, ct::VERSION_UPGRADE_ISSUED);
    let mut rec = cond(
        bv,
        ct::VERSION_UPGRADE_ISSUED,
        true,
        reasons::UPGRADE_ISSUED,
        &format!("SimpleUpdate {} ({wanted})", image.uri),
    );
    rec.last_transition_time = now();
    status.conditions.push(rec);
    let recorded = record(ctx, bv, &status).await?;
    ctx.step("bmc-update-recorded").await;
    let started = bmc.simple_update(&req).await;
    ctx.requests.observe("bmc_firmware_update", &started);
    ctx.step("bmc-update-sent").await;
    match started {
        Ok(handle) => {
            let mut task = firmware::mirror(handle.monitor.clone(), None);
            if handle.monitor.is_none() {
                task.state = Some("Completed".into());
            }
            status.upgrade_task = Some(task);
            ctx.events.normal(
                bv,
                reasons::UPGRADE_ISSUED,
                format!("installing BMC firmware {wanted} from {}", image.uri),
            );
            write(ctx, &recorded, &status).await?;
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

/// Follows the task; an unreachable BMC is one restarting into its new firmware.
async fn poll(
    ctx: &Ctx,
    bv: &BMCVersion,
    mut status: BMCVersionStatus,
    bmc: &redfish::Client,
    uri: String,
) -> Result<Action, Error> {
    match bmc.task_progress(&uri).await {
        Ok(TaskProgress::Running(t)) => {
            let mut task = firmware::mirror(Some(uri), t.as_ref());
            task.state.get_or_insert_with(|| "Running".into());
            status.upgrade_task = Some(task);
            write(ctx, bv, &status).await?;
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
                status.upgrade_task = Some(firmware::mirror(Some(uri), Some(&t)));
                return fail(
                    ctx,
                    bv,
                    status,
                    reasons::UPGRADE_TASK_FAILED,
                    &format!("the update task failed: {msg}"),
                )
                .await;
            }
            let mut task = firmware::mirror(Some(uri), Some(&t));
            task.state = Some("Completed".into());
            status.upgrade_task = Some(task);
            conditions::set(
                &mut status.conditions,
                cond(
                    bv,
                    ct::VERSION_UPGRADE_COMPLETED,
                    true,
                    reasons::UPGRADE_TASK_COMPLETED,
                    "the BMC installed the image; waiting for it to run",
                ),
            );
            write(ctx, bv, &status).await?;
            ctx.step("bmc-task-completed").await;
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(e) if e.status() == Some(404) => {
            // The BMC restarted and forgot its task: the version decides.
            let mut task = firmware::mirror(Some(uri), None);
            task.state = Some("Completed".into());
            status.upgrade_task = Some(task);
            conditions::set(
                &mut status.conditions,
                cond(
                    bv,
                    ct::VERSION_UPGRADE_COMPLETED,
                    true,
                    reasons::UPGRADE_TASK_COMPLETED,
                    "the BMC no longer lists the task; waiting for the version",
                ),
            );
            write(ctx, bv, &status).await?;
            ctx.step("bmc-task-completed").await;
            Ok(Action::requeue(POLL))
        }
        Err(e) => {
            conditions::set(
                &mut status.conditions,
                cond(
                    bv,
                    BMC_REACHABLE,
                    false,
                    "BMCRestarting",
                    &format!("polling the update task: {e} (expected while the BMC restarts)"),
                ),
            );
            write(ctx, bv, &status).await?;
            Ok(Action::requeue(POLL))
        }
    }
}

/// The image is installed but another version runs: wait for the BMC's own restart; one that
/// does not restart within the power timeout gets one recorded Manager reset. A recorded reset
/// the BMC's `LastResetTime` does not show after another power timeout was never sent (the
/// controller died between record and send): it is recorded afresh and sent. A BMC that does not
/// report `LastResetTime` is never reset a second time; the firmware timeout ends the attempt.
async fn after_task(
    ctx: &Ctx,
    bv: &BMCVersion,
    mut status: BMCVersionStatus,
    bmc: &redfish::Client,
    manager: &str,
    wanted: &str,
) -> Result<Action, Error> {
    if conditions::get(&status.conditions, ct::VERSION_UPGRADE_COMPLETED).is_none() {
        conditions::set(
            &mut status.conditions,
            cond(
                bv,
                ct::VERSION_UPGRADE_COMPLETED,
                true,
                reasons::UPGRADE_TASK_COMPLETED,
                "the update finished; waiting for the version",
            ),
        );
        write(ctx, bv, &status).await?;
        ctx.step("bmc-task-completed").await;
        return Ok(Action::requeue(POLL));
    }
    let waited = record_age(&status, ct::VERSION_UPGRADE_COMPLETED).unwrap_or_default();
    if let Some(rec) = conditions::get(&status.conditions, ct::VERSION_UPGRADE_REBOOT) {
        let lost = bmclevel::reset_seen(bmc, manager, &rec.last_transition_time).await
            == bmclevel::ResetSeen::No
            && window::age(&rec.last_transition_time) > ctx.config.power_timeout;
        if !lost {
            write(ctx, bv, &status).await?;
            return Ok(Action::requeue(POLL));
        }
        ctx.events.warning(
            bv,
            "ResetNotSeen",
            "the recorded BMC reset did not happen; sending it".to_string(),
        );
    } else if waited < ctx.config.power_timeout {
        write(ctx, bv, &status).await?;
        return Ok(Action::requeue(POLL));
    }
    let mut rec = cond(
        bv,
        ct::VERSION_UPGRADE_REBOOT,
        true,
        reasons::RESET_ISSUED,
        &format!("resetting the BMC to activate {wanted}"),
    );
    rec.last_transition_time = now();
    conditions::set(&mut status.conditions, rec);
    record(ctx, bv, &status).await?;
    ctx.step("bmc-reset-recorded").await;
    let sent = bmc.reset_manager(manager, ResetType::GracefulRestart).await;
    ctx.requests.observe("bmc_reset", &sent);
    match sent {
        Ok(()) => ctx.events.normal(
            bv,
            reasons::RESET_ISSUED,
            format!("reset the BMC to activate {wanted}"),
        ),
        Err(e) => ctx
            .events
            .warning(bv, "ResetFailed", format!("BMC reset failed: {e}")),
    }
    Ok(Action::requeue(POLL))
}
