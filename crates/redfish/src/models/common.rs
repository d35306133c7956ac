//! Shared building blocks: links, status, collections, actions, settings, messages, error bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::de;
use super::redfish_enum;

/// A reference to another resource (`{"@odata.id": "..."}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The resource path.
    #[serde(rename = "@odata.id", default, deserialize_with = "de_string_or_empty")]
    pub odata_id: String,
}

fn de_string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(de::opt_string(d)?.unwrap_or_default())
}

impl Link {
    /// A link to a path.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            odata_id: path.into(),
        }
    }
}

redfish_enum! {
    /// `Status.State`.
    State {
        /// Enabled.
        Enabled = "Enabled",
        /// Disabled.
        Disabled = "Disabled",
        /// Not present.
        Absent = "Absent",
        /// In standby, offline.
        StandbyOffline = "StandbyOffline",
        /// Standby spare.
        StandbySpare = "StandbySpare",
        /// Being tested.
        InTest = "InTest",
        /// Starting.
        Starting = "Starting",
        /// Present but unavailable.
        UnavailableOffline = "UnavailableOffline",
        /// Deferring.
        Deferring = "Deferring",
        /// Quiesced.
        Quiesced = "Quiesced",
        /// Updating.
        Updating = "Updating",
        /// Qualified.
        Qualified = "Qualified",
        /// Degraded.
        Degraded = "Degraded",
    }
}

redfish_enum! {
    /// `Status.Health` / `HealthRollup` / `TaskStatus`.
    Health {
        /// Normal.
        Ok = "OK",
        /// Needs attention.
        Warning = "Warning",
        /// Needs immediate attention.
        Critical = "Critical",
    }
}

/// Common `Status` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// State of the resource.
    #[serde(
        rename = "State",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<State>,
    /// Health of the resource itself.
    #[serde(
        rename = "Health",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub health: Option<Health>,
    /// Health of the resource and its dependents.
    #[serde(
        rename = "HealthRollup",
        deserialize_with = "de::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_rollup: Option<Health>,
}

/// A resource collection (`Members` are links; when the response was expanded, the members' own
/// content is available through [`Collection::raw_members`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Collection {
    /// Path of the collection.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Member links.
    #[serde(rename = "Members", deserialize_with = "de::vec_link")]
    pub members: Vec<Link>,
    /// `Members@odata.count`.
    #[serde(rename = "Members@odata.count", deserialize_with = "de::opt_u64")]
    pub members_count: Option<u64>,
    /// `Members@odata.nextLink` (paging).
    #[serde(rename = "Members@odata.nextLink", deserialize_with = "de::opt_string")]
    pub next_link: Option<String>,
}

/// An action (`#Resource.Action`): its target, optional `@Redfish.ActionInfo`, and every
/// `<Parameter>@Redfish.AllowableValues` list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Action {
    /// Where to POST.
    pub target: Option<String>,
    /// Path of the ActionInfo resource describing the parameters, if given.
    pub action_info: Option<String>,
    /// Allowable values per parameter name.
    pub allowable_values: BTreeMap<String, Vec<String>>,
}

impl Action {
    /// The allowable values of one parameter, if advertised inline.
    pub fn allowable(&self, parameter: &str) -> Option<&[String]> {
        self.allowable_values.get(parameter).map(Vec::as_slice)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let mut a = Action::default();
        if let Value::Object(map) = v {
            for (k, v) in map {
                if k == "target" {
                    a.target = v.as_str().map(str::to_owned);
                } else if k == "@Redfish.ActionInfo" {
                    a.action_info = v.as_str().map(str::to_owned).or_else(|| {
                        v.get("@odata.id")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    });
                } else if let Some(param) = k.strip_suffix("@Redfish.AllowableValues") {
                    let vals = match v {
                        Value::Array(items) => items
                            .into_iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect(),
                        _ => Vec::new(),
                    };
                    a.allowable_values.insert(param.to_owned(), vals);
                }
            }
        }
        Ok(a)
    }
}

/// One parameter of an ActionInfo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionParameter {
    /// Parameter name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Whether the parameter is required.
    #[serde(rename = "Required", deserialize_with = "de::opt_bool")]
    pub required: Option<bool>,
    /// Data type.
    #[serde(rename = "DataType", deserialize_with = "de::opt_string")]
    pub data_type: Option<String>,
    /// Allowable values.
    #[serde(rename = "AllowableValues", deserialize_with = "de::vec_string")]
    pub allowable_values: Vec<String>,
}

/// An ActionInfo resource (Supermicro advertises reset types this way).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionInfo {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Parameters.
    #[serde(rename = "Parameters", deserialize_with = "de::vec")]
    pub parameters: Vec<ActionParameter>,
}

impl ActionInfo {
    /// Allowable values of one parameter.
    pub fn allowable(&self, parameter: &str) -> Option<&[String]> {
        self.parameters
            .iter()
            .find(|p| p.name.as_deref() == Some(parameter))
            .map(|p| p.allowable_values.as_slice())
    }
}

/// `@Redfish.Settings`: where pending settings are written and when they can apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The settings (pending) resource.
    #[serde(rename = "SettingsObject", deserialize_with = "de::opt_link")]
    pub settings_object: Option<Link>,
    /// Apply times the service supports (`Immediate`, `OnReset`, ...).
    #[serde(rename = "SupportedApplyTimes", deserialize_with = "de::vec_string")]
    pub supported_apply_times: Vec<String>,
    /// ETag of the settings object when last applied.
    #[serde(rename = "ETag", deserialize_with = "de::opt_string")]
    pub etag: Option<String>,
    /// When the settings were last applied.
    #[serde(rename = "Time", deserialize_with = "de::opt_string")]
    pub time: Option<String>,
    /// Messages about the last application.
    #[serde(rename = "Messages", deserialize_with = "de::vec")]
    pub messages: Vec<Message>,
}

/// A Redfish message (error details, task messages).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Registry message id, e.g. `Base.1.8.Success`.
    #[serde(rename = "MessageId", deserialize_with = "de::opt_string")]
    pub message_id: Option<String>,
    /// Human-readable text.
    #[serde(rename = "Message", deserialize_with = "de::opt_string")]
    pub message: Option<String>,
    /// Arguments substituted into the message.
    #[serde(rename = "MessageArgs", deserialize_with = "de::vec_string")]
    pub message_args: Vec<String>,
    /// Severity (deprecated form).
    #[serde(rename = "Severity", deserialize_with = "de::opt_string")]
    pub severity: Option<String>,
    /// Severity.
    #[serde(rename = "MessageSeverity", deserialize_with = "de::opt_string")]
    pub message_severity: Option<String>,
    /// What to do about it.
    #[serde(rename = "Resolution", deserialize_with = "de::opt_string")]
    pub resolution: Option<String>,
    /// JSON pointers to the properties concerned.
    #[serde(rename = "RelatedProperties", deserialize_with = "de::vec_string")]
    pub related_properties: Vec<String>,
}

/// The `error` object of a Redfish error response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedfishErrorInfo {
    /// Message id of the overall error.
    #[serde(rename = "code", deserialize_with = "de::opt_string")]
    pub code: Option<String>,
    /// Overall message.
    #[serde(rename = "message", deserialize_with = "de::opt_string")]
    pub message: Option<String>,
    /// Detailed messages.
    #[serde(rename = "@Message.ExtendedInfo", deserialize_with = "de::vec")]
    pub extended_info: Vec<Message>,
}

/// A Redfish error response body (`{"error": {...}}`); some BMCs also put `@Message.ExtendedInfo` at
/// the top level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedfishErrorBody {
    /// The error object.
    #[serde(rename = "error", deserialize_with = "de::opt")]
    pub error: Option<RedfishErrorInfo>,
    /// Top-level extended info.
    #[serde(rename = "@Message.ExtendedInfo", deserialize_with = "de::vec")]
    pub extended_info: Vec<Message>,
}
