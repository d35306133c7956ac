//! Firmware: SimpleUpdate, task monitors (202 + Location, or the task in the body) and polling to the
//! end.

use std::time::Duration;

use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{Client, Ctx, Req};
use crate::error::{Error, ErrorKind};
use crate::models::{Health, Message, SoftwareInventory, Task, TaskState, UpdateService};
use crate::secret::Secret;
use crate::vendor::{QuirkId, has_quirk};

/// Parameters of `UpdateService.SimpleUpdate`. The password is a [`Secret`]: never logged, scrubbed
/// from error messages.
#[derive(Debug, Clone, Default)]
pub struct SimpleUpdateRequest {
    /// Where the BMC downloads the image.
    pub image_uri: String,
    /// HTTP, HTTPS, ... (checked against the allowable values when advertised).
    pub transfer_protocol: Option<String>,
    /// Components to update (`@odata.id`s), empty = the BMC decides.
    pub targets: Vec<String>,
    /// User name for the image server.
    pub username: Option<String>,
    /// Password for the image server.
    pub password: Option<Secret>,
    /// Force the update even if the version is the same.
    pub force_update: Option<bool>,
}

/// One look at a running task ([`Client::task_progress`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TaskProgress {
    /// Still running; the task as last reported, if the monitor shows it.
    Running(Option<Task>),
    /// Ended (successfully or not: see `task_state` and `task_status`).
    Done(Task),
}

/// What a started update returned: where to follow it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskHandle {
    /// Task monitor (or task) URI to poll; `None` when the BMC finished synchronously.
    pub monitor: Option<String>,
    /// HTTP status of the request that started it.
    pub status: u16,
    /// Messages returned when the update was accepted.
    pub messages: Vec<Message>,
}

/// Finds the task monitor of a 202 response (pure): the `Location` header (standard, Dell), the body's
/// `TaskMonitor` (HPE), `Task.@odata.id` (Dell) or `@odata.id` (Lenovo, Dell).
pub fn task_monitor_from_response(location: Option<&str>, body: &Value) -> Option<String> {
    if let Some(l) = location.filter(|l| !l.trim().is_empty()) {
        return Some(crate::client::path_of(l.trim()));
    }
    let candidates = [
        body.get("TaskMonitor").and_then(Value::as_str),
        body.pointer("/Task/@odata.id").and_then(Value::as_str),
        body.get("@odata.id").and_then(Value::as_str),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .map(crate::client::path_of)
}

pub(crate) fn messages_of(body: &Value) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for p in [
        "/@Message.ExtendedInfo",
        "/error/@Message.ExtendedInfo",
        "/Messages",
    ] {
        if let Some(Value::Array(a)) = body.pointer(p) {
            out.extend(
                a.iter()
                    .filter_map(|m| serde_json::from_value(m.clone()).ok()),
            );
        }
    }
    out
}

fn completed(messages: Vec<Message>) -> Task {
    Task {
        task_state: Some(TaskState::Completed),
        task_status: Some(Health::Ok),
        percent_complete: Some(100),
        messages,
        ..Task::default()
    }
}

impl Client {
    async fn update_service(&self, ctx: &Ctx) -> Result<UpdateService, Error> {
        let root = self.service_root_ctx(ctx).await?;
        let Some(link) = &root.update_service else {
            return Err(self.err(ErrorKind::NotSupported(
                "service has no UpdateService".into(),
            )));
        };
        self.get_ctx(ctx, &link.odata_id).await
    }

    /// The firmware inventory (versions of every component).
    pub async fn firmware_inventory(&self) -> Result<Vec<SoftwareInventory>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let us = self.update_service(&ctx).await?;
            let Some(link) = &us.firmware_inventory else {
                return Ok(Vec::new());
            };
            let root = self.service_root_ctx(&ctx).await?;
            let values = self
                .collection_values(&ctx, &link.odata_id, self.expand_levels(&root).map(|_| 1))
                .await?;
            Ok(values
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect())
        })
        .await
    }

    /// Starts `UpdateService.SimpleUpdate`. Sent once; never retried (an update must not be started
    /// twice) and never with `If-Match` (iDRAC answers 412). Returns where to follow the task.
    pub async fn simple_update(&self, req: &SimpleUpdateRequest) -> Result<TaskHandle, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let us = self.update_service(&ctx).await?;
            let Some(action) = us.simple_update() else {
                return Err(self.err(ErrorKind::NotSupported("UpdateService has no SimpleUpdate action".into())));
            };
            if let (Some(p), Some(allowed)) = (&req.transfer_protocol, action.allowable("TransferProtocol"))
                && !allowed.iter().any(|a| a.eq_ignore_ascii_case(p)) {
                    return Err(self.err(ErrorKind::NotSupported(format!(
                        "transfer protocol {p} not allowed; allowed: [{}]",
                        allowed.join(", ")
                    ))));
                }
            let target = action
                .target
                .clone()
                .unwrap_or_else(|| "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate".into());
            let mut body = json!({ "ImageURI": req.image_uri });
            if let Some(p) = &req.transfer_protocol {
                body["TransferProtocol"] = json!(p);
            }
            if !req.targets.is_empty() {
                body["Targets"] = json!(req.targets);
            }
            if let Some(u) = &req.username {
                body["Username"] = json!(u);
            }
            if let Some(p) = &req.password {
                body["Password"] = json!(p.expose());
            }
            if let Some(f) = req.force_update {
                body["ForceUpdate"] = json!(f);
            }
            let vendor = self.vendor_ctx(&ctx, None).await?;
            if has_quirk(&vendor, QuirkId::SimpleUpdateApplyImmediate) {
                body["@Redfish.OperationApplyTime"] = json!("Immediate");
            }
            let mut r = Req::new(Method::POST, &target).json(&body);
            if let Some(p) = &req.password {
                r = r.secret(p.expose());
            }
            let resp = self.execute(&ctx, r).await?;
            let v = resp.json_value();
            let monitor = task_monitor_from_response(resp.location(), &v);
            if resp.status == 202 && monitor.is_none() {
                return Err(self
                    .err(ErrorKind::Unexpected("SimpleUpdate accepted (202) without a task monitor".into()))
                    .with_request(&Method::POST, &target));
            }
            tracing::info!(bmc = %self.inner.bmc, image = %req.image_uri, monitor = ?monitor, "firmware update started");
            Ok(TaskHandle { monitor, status: resp.status, messages: messages_of(&v) })
        })
        .await
    }

    /// Every task the TaskService lists (with their payloads where the BMC shows them): what a
    /// restarted controller searches for an update it started but did not record.
    pub async fn tasks(&self) -> Result<Vec<Task>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let root = self.service_root_ctx(&ctx).await?;
            let Some(link) = &root.tasks else {
                return Ok(Vec::new());
            };
            let ts: crate::models::TaskService = self.get_ctx(&ctx, &link.odata_id).await?;
            let Some(list) = &ts.tasks else {
                return Ok(Vec::new());
            };
            let values = self
                .collection_values(&ctx, &list.odata_id, self.expand_levels(&root).map(|_| 1))
                .await?;
            Ok(values
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect())
        })
        .await
    }

    /// Reads a task monitor once, with the vendor quirks of [`Client::wait_for_task`]: for a
    /// controller that polls across reconciles instead of holding a connection open.
    pub async fn task_progress(&self, monitor: &str) -> Result<TaskProgress, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            Ok(match self.poll_task(&ctx, monitor).await? {
                (Some(done), _) => TaskProgress::Done(done),
                (None, running) => TaskProgress::Running(running),
            })
        })
        .await
    }

    /// Reads a task monitor once: `Ok(Some(task))` when the task ended, `Ok(None)` while it runs.
    async fn poll_task(
        &self,
        ctx: &Ctx,
        monitor: &str,
    ) -> Result<(Option<Task>, Option<Task>), Error> {
        let resp = match self.execute(ctx, Req::new(Method::GET, monitor)).await {
            Ok(r) => r,
            Err(e) => {
                // iLO: a finished monitor answers an error body whose message id says Success.
                if e.status().is_some() && e.message_ids().iter().any(|id| id.contains("Success")) {
                    let msg = Message {
                        message_id: e.message_ids().first().cloned(),
                        message: e.redfish_message().map(str::to_owned),
                        ..Message::default()
                    };
                    return Ok((Some(completed(vec![msg])), None));
                }
                return Err(e);
            }
        };
        let v = resp.json_value();
        let task: Task = serde_json::from_value(v.clone()).unwrap_or_default();
        let Some(state) = task.task_state.clone() else {
            if resp.status == 202 {
                return Ok((None, None));
            }
            // A monitor that answers with the operation's own response: done.
            return Ok((Some(completed(messages_of(&v))), None));
        };
        if state == TaskState::Completed {
            // Lenovo: the task hands over to a job.
            if let Some(job) = task
                .messages
                .iter()
                .find(|m| {
                    m.message_id
                        .as_deref()
                        .is_some_and(|id| id.contains("OperationTransitionedToJob"))
                })
                .and_then(|m| m.message_args.first())
            {
                let jv: Value = self.get_ctx(ctx, job).await?;
                let mut t: Task = serde_json::from_value(jv.clone()).unwrap_or_default();
                t.task_state = jv
                    .get("JobState")
                    .and_then(Value::as_str)
                    .map(TaskState::from_job_state);
                t.task_status = jv
                    .get("JobStatus")
                    .and_then(|s| serde_json::from_value(s.clone()).ok());
                return Ok(match &t.task_state {
                    Some(s) if s.is_terminal() => (Some(t), None),
                    _ => (None, Some(t)),
                });
            }
        }
        if state.is_terminal() {
            Ok((Some(task), None))
        } else {
            Ok((None, Some(task)))
        }
    }

    /// Polls a task monitor until the task ends or `timeout` passes. Returns the final task; a task
    /// that ended in Exception/Killed/Cancelled is an error of class `TaskFailed` carrying it.
    pub async fn wait_for_task(&self, monitor: &str, timeout: Duration) -> Result<Task, Error> {
        let ctx = Ctx::new(timeout);
        let mut last: Option<Task> = None;
        let r = self
            .within(&ctx, async {
                loop {
                    match self.poll_task(&ctx, monitor).await {
                        Ok((Some(t), _)) => return Ok(t),
                        Ok((None, running)) => {
                            if running.is_some() {
                                last = running;
                            }
                        }
                        Err(e) if e.class().is_transient() => {
                            tracing::debug!(error = %e, "task poll failed, will retry")
                        }
                        Err(e) => return Err(e),
                    }
                    tokio::time::sleep(self.inner.opts.poll_interval.min(ctx.remaining())).await;
                }
            })
            .await;
        match r {
            Ok(t)
                if t.task_state.as_ref().is_some_and(TaskState::is_failure)
                    || t.task_status == Some(Health::Critical) =>
            {
                Err(self
                    .err(ErrorKind::TaskFailed(Box::new(t.clone())))
                    .with_request(&Method::GET, monitor)
                    .with_redfish(
                        Some(
                            t.messages
                                .iter()
                                .filter_map(|m| m.message.clone().or(m.message_id.clone()))
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                        t.messages
                            .iter()
                            .filter_map(|m| m.message_id.clone())
                            .collect(),
                    ))
            }
            Err(e) if matches!(e.kind(), ErrorKind::DeadlineExceeded) => {
                Err(e.with_request(&Method::GET, monitor).with_redfish(
                    last.map(|t| {
                        format!(
                            "task still {} ({}%)",
                            t.task_state.map(|s| s.to_string()).unwrap_or_default(),
                            t.percent_complete.unwrap_or(0)
                        )
                    }),
                    Vec::new(),
                ))
            }
            other => other,
        }
    }

    /// SimpleUpdate and wait for the task to end (within `timeout`).
    pub async fn update_firmware(
        &self,
        req: &SimpleUpdateRequest,
        timeout: Duration,
    ) -> Result<Task, Error> {
        let handle = self.simple_update(req).await?;
        match &handle.monitor {
            Some(m) => self.wait_for_task(m, timeout).await,
            None => Ok(completed(handle.messages)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_monitor_sources() {
        assert_eq!(
            task_monitor_from_response(
                Some("https://10.0.0.1/redfish/v1/TaskService/Tasks/JID_1"),
                &Value::Null
            )
            .as_deref(),
            Some("/redfish/v1/TaskService/Tasks/JID_1")
        );
        assert_eq!(
            task_monitor_from_response(None, &json!({"TaskMonitor": "/redfish/v1/TaskMonitors/5"}))
                .as_deref(),
            Some("/redfish/v1/TaskMonitors/5")
        );
        assert_eq!(
            task_monitor_from_response(
                None,
                &json!({"Task": {"@odata.id": "/redfish/v1/TaskService/Tasks/7"}})
            )
            .as_deref(),
            Some("/redfish/v1/TaskService/Tasks/7")
        );
        assert_eq!(
            task_monitor_from_response(
                Some(""),
                &json!({"@odata.id": "/redfish/v1/TaskService/Tasks/8"})
            )
            .as_deref(),
            Some("/redfish/v1/TaskService/Tasks/8")
        );
        assert_eq!(task_monitor_from_response(None, &json!({})), None);
    }

    #[test]
    fn request_debug_redacts_password() {
        let r = SimpleUpdateRequest {
            image_uri: "http://x/fw.bin".into(),
            password: Some(Secret::new("pw-123456")),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("pw-123456"));
    }
}
