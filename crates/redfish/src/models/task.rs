//! TaskService and tasks (long-running operations such as firmware updates).

use serde::{Deserialize, Serialize};

use super::{Health, Link, Message, de, redfish_enum};

redfish_enum! {
    /// `TaskState`.
    TaskState {
        /// Created, not started.
        New = "New",
        /// Starting.
        Starting = "Starting",
        /// Running.
        Running = "Running",
        /// Suspended.
        Suspended = "Suspended",
        /// Interrupted.
        Interrupted = "Interrupted",
        /// Pending (waiting for a reset or a window).
        Pending = "Pending",
        /// Stopping.
        Stopping = "Stopping",
        /// Finished successfully.
        Completed = "Completed",
        /// Killed.
        Killed = "Killed",
        /// Failed.
        Exception = "Exception",
        /// Running as a service.
        Service = "Service",
        /// Being cancelled.
        Cancelling = "Cancelling",
        /// Cancelled.
        Cancelled = "Cancelled",
    }
}

impl TaskState {
    /// True when the task will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Killed | TaskState::Exception | TaskState::Cancelled
        )
    }

    /// True when the task ended in failure.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            TaskState::Killed | TaskState::Exception | TaskState::Cancelled
        )
    }

    /// Maps a Redfish `JobState` (Lenovo converts tasks to jobs) to a task state.
    pub fn from_job_state(s: &str) -> TaskState {
        match s {
            "New" => TaskState::New,
            "Starting" => TaskState::Starting,
            "Running" => TaskState::Running,
            "Suspended" | "UserIntervention" => TaskState::Suspended,
            "Interrupted" => TaskState::Interrupted,
            "Pending" => TaskState::Pending,
            "Stopping" => TaskState::Stopping,
            "Completed" => TaskState::Completed,
            "Cancelled" => TaskState::Cancelled,
            "Exception" => TaskState::Exception,
            "Service" => TaskState::Service,
            "Continue" => TaskState::Running,
            other => TaskState::Unknown(other.to_owned()),
        }
    }
}

/// A Task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// State.
    #[serde(rename = "TaskState", deserialize_with = "de::opt")]
    pub task_state: Option<TaskState>,
    /// Health of the task (OK/Warning/Critical).
    #[serde(rename = "TaskStatus", deserialize_with = "de::opt")]
    pub task_status: Option<Health>,
    /// Progress.
    #[serde(rename = "PercentComplete", deserialize_with = "de::opt_u32")]
    pub percent_complete: Option<u32>,
    /// Start time.
    #[serde(rename = "StartTime", deserialize_with = "de::opt_string")]
    pub start_time: Option<String>,
    /// End time.
    #[serde(rename = "EndTime", deserialize_with = "de::opt_string")]
    pub end_time: Option<String>,
    /// Task monitor URI.
    #[serde(rename = "TaskMonitor", deserialize_with = "de::opt_string")]
    pub task_monitor: Option<String>,
    /// Messages.
    #[serde(rename = "Messages", deserialize_with = "de::vec")]
    pub messages: Vec<Message>,
    /// The request that started the task (absent when the BMC hides it).
    #[serde(rename = "Payload", skip_serializing_if = "Option::is_none")]
    pub payload: Option<TaskPayload>,
}

/// The request a task runs, as the BMC recorded it: how a restarted client recognises its own
/// update among the BMC's tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskPayload {
    /// Target of the request (the action's URI).
    #[serde(rename = "TargetUri", deserialize_with = "de::opt_string")]
    pub target_uri: Option<String>,
    /// Its body, as a JSON string.
    #[serde(rename = "JsonBody", deserialize_with = "de::opt_string")]
    pub json_body: Option<String>,
}

impl Task {
    /// The `ImageURI` of the SimpleUpdate this task runs, when its payload shows one.
    pub fn update_image(&self) -> Option<String> {
        let body = self.payload.as_ref()?.json_body.as_deref()?;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v.get("ImageURI")?.as_str().map(str::to_owned)
    }
}

/// The TaskService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskService {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Enabled.
    #[serde(rename = "ServiceEnabled", deserialize_with = "de::opt_bool")]
    pub service_enabled: Option<bool>,
    /// Tasks collection.
    #[serde(rename = "Tasks", deserialize_with = "de::opt_link")]
    pub tasks: Option<Link>,
    /// What happens when the task list is full.
    #[serde(
        rename = "CompletedTaskOverWritePolicy",
        deserialize_with = "de::opt_string"
    )]
    pub completed_task_overwrite_policy: Option<String>,
    /// Current time.
    #[serde(rename = "DateTime", deserialize_with = "de::opt_string")]
    pub date_time: Option<String>,
}
