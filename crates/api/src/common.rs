//! Types shared by several kinds: references, taints and tolerations, retry and maintenance
//! policies, firmware images and BMC tasks.

use k8s_openapi::api::core::v1::SecretReference;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL rule shared by every MAC address field a user can set. Empty is accepted because
/// older Go clients serialize an unset MAC as `""`.
pub(crate) const MAC_RULE: &str =
    "self == '' || self.matches('^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$')";
/// Message for [`MAC_RULE`].
pub(crate) const MAC_MESSAGE: &str =
    "must be a MAC address of six hex octets separated by ':' or '-', e.g. 00:1a:2b:3c:4d:5e";
/// CEL rule shared by every IP address field a user can set (empty is accepted, see above).
pub(crate) const IP_RULE: &str = "self == '' || isIP(self)";
/// Message for [`IP_RULE`].
pub(crate) const IP_MESSAGE: &str =
    "must be a valid IPv4 or IPv6 address without prefix length, e.g. 10.0.0.5 or fd00::5";
/// CEL rule for TCP/UDP ports.
pub(crate) const PORT_RULE: &str = "self >= 1 && self <= 65535";
/// Message for [`PORT_RULE`].
pub(crate) const PORT_MESSAGE: &str = "port must be between 1 and 65535";

/// A reference to an object by namespace and name, used where the target may live in another
/// namespace than the referrer (or the referrer is cluster scoped).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ObjectReference {
    /// Namespace of the referenced object.
    pub namespace: String,
    /// Name of the referenced object.
    pub name: String,
}

/// A namespaced reference that can be set and cleared but never pointed elsewhere: once a
/// server is bound to a claim, it stays bound to that very claim until it is released.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ImmutableObjectReference {
    /// Namespace of the referenced object.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "namespace of this reference is immutable; clear the whole reference instead of changing it"
    ))]
    pub namespace: String,
    /// Name of the referenced object.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "name of this reference is immutable; clear the whole reference instead of changing it"
    ))]
    pub name: String,
}

impl From<&ImmutableObjectReference> for ObjectReference {
    fn from(r: &ImmutableObjectReference) -> Self {
        ObjectReference {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }
}

/// How often a failed day-2 operation is retried automatically.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Automatic retries after a failure, 0 to 10; 0 disables retries and an unset value uses
    /// the controller default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub max_attempts: Option<i32>,
}

closed_enum! {
    /// What a taint does to claims that do not tolerate it.
    pub enum TaintEffect {
        /// New claims without a matching toleration are not bound to the server.
        NoBind = "NoBind",
        /// Reserved: accepted for compatibility, currently behaves like `NoBind`.
        Evict = "Evict",
    }
}

/// A taint keeps claims away from a server unless they tolerate it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct Taint {
    /// Key of the taint, e.g. `example.com/bad-dimm`. (No `maxLength` here: it would block
    /// the CEL rules of ServerReadinessRule, which report an over-long key themselves.)
    #[x_kube(validation = Rule::new("self.size() > 0").message("taint key must not be empty"))]
    pub key: String,
    /// Optional value matched by `Equal` tolerations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub value: Option<String>,
    /// Effect on claims that do not tolerate the taint; defaults to `NoBind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "NoBind"))]
    pub effect: Option<TaintEffect>,
}

impl Taint {
    /// The effect, with the schema default applied.
    pub fn effect(&self) -> TaintEffect {
        self.effect.unwrap_or(TaintEffect::NoBind)
    }
}

closed_enum! {
    /// How a toleration compares its value with a taint's value.
    pub enum TolerationOperator {
        /// Key and value must both match.
        Equal = "Equal",
        /// Any taint with the key matches, whatever its value.
        Exists = "Exists",
    }
}

/// A toleration lets a claim bind to servers carrying a matching taint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''"
).message("value must be empty when operator is Exists"))]
pub struct Toleration {
    /// Taint key this toleration matches.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.size() > 0").message("toleration key must not be empty"))]
    pub key: String,
    /// Comparison of values; an unset operator means `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// Value matched by the `Equal` operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub value: Option<String>,
    /// Effect to tolerate; unset tolerates every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration neutralises `taint` (same rules as Kubernetes node taints).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.key != taint.key {
            return false;
        }
        if let Some(effect) = self.effect
            && effect != taint.effect()
        {
            return false;
        }
        match self.operator.unwrap_or(TolerationOperator::Equal) {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => {
                self.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
            }
        }
    }
}

/// Whether every `NoBind`/`Evict` taint in `taints` is tolerated by one of `tolerations`.
pub fn tolerates_all(tolerations: &[Toleration], taints: &[Taint]) -> bool {
    taints
        .iter()
        .all(|taint| tolerations.iter().any(|t| t.tolerates(taint)))
}

closed_enum! {
    /// A desired power state.
    pub enum Power {
        /// Powered on.
        On = "On",
        /// Powered off.
        Off = "Off",
    }
}

closed_enum! {
    /// State of a server's identification LED.
    pub enum IndicatorLED {
        /// The state cannot be determined.
        Unknown = "Unknown",
        /// Lit steadily.
        Lit = "Lit",
        /// Blinking.
        Blinking = "Blinking",
        /// Off.
        Off = "Off",
    }
}

closed_enum! {
    /// Whether day-2 work on a claimed server waits for its owner.
    pub enum ServerMaintenancePolicy {
        /// Wait until the claim owner approves (label `metal.ironcore.dev/maintenance-approved`).
        OwnerApproval = "OwnerApproval",
        /// Take the server into maintenance without asking.
        Enforced = "Enforced",
    }
}

closed_enum! {
    /// Whether a firmware update may bypass the vendor's update policy.
    pub enum UpdatePolicy {
        /// Respect the vendor's policy (used by upstream samples, the implicit default).
        Normal = "Normal",
        /// Ask the BMC to force the update (Redfish `ForceUpdate`).
        Force = "Force",
    }
}

/// Where a firmware image is fetched from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Secret with `username`/`password` keys for the image server, if it needs credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Network protocol the BMC uses to fetch the image (Redfish `TransferProtocol`, e.g. HTTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_protocol: Option<String>,
    /// Location of the image, handed to the BMC's `SimpleUpdate` action.
    #[serde(rename = "URI")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("image URI must not be empty"))]
    pub uri: String,
}

/// An intermediate firmware version installed (and verified) on the way to the target, for
/// vendors whose upgrade paths must pass through certain releases.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SteppingStone {
    /// The version this image installs, as the BMC reports it once it runs.
    #[x_kube(validation = Rule::new("self != ''").message(
        "steppingStones[].version must not be empty: give the version the image installs"
    ))]
    pub version: String,
    /// Firmware image of this version.
    pub image: ImageSpec,
}

/// How fast a set rolls out: how many of its targets may be in maintenance at once, and when it
/// stops starting new ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// At most this many targets worked on at once: a count (`5`) or a percentage of the
    /// selected targets (`"10%"`, rounded down, at least 1). Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string")]
    #[x_kube(validation = Rule::new(
        "string(self).matches('^[1-9][0-9]*$|^[1-9][0-9]?%$|^100%$')"
    ).message(
        "maxInMaintenance must be a positive count (5) or a percentage from 1% to 100% (\"10%\")"
    ))]
    pub max_in_maintenance: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    /// Stop starting new targets once this many children have failed (retrying or deleting
    /// failed children, or raising the number, resumes). Unset: never pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message(
        "pauseAfterFailures must be at least 1"
    ))]
    pub pause_after_failures: Option<i32>,
}

/// Schema of an int-or-string field without the Quantity pattern k8s-openapi attaches (which
/// would reject percentages).
fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
    })
}

impl Rollout {
    /// The limit for `selected` targets (`None`: unlimited).
    pub fn limit(&self, selected: usize) -> Option<usize> {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match self.max_in_maintenance.as_ref()? {
            IntOrString::Int(n) => Some((*n).max(1) as usize),
            IntOrString::String(s) => match s.strip_suffix('%') {
                Some(pct) => {
                    let pct: usize = pct.parse().ok()?;
                    Some((selected * pct.min(100) / 100).max(1))
                }
                None => Some(s.parse::<usize>().ok()?.max(1)),
            },
        }
    }
}

open_enum! {
    /// State of a Redfish task, copied from the BMC.
    pub enum TaskState {
        /// Created, not yet started.
        New = "New",
        /// Starting.
        Starting = "Starting",
        /// Running.
        Running = "Running",
        /// Suspended.
        Suspended = "Suspended",
        /// Interrupted.
        Interrupted = "Interrupted",
        /// Pending.
        Pending = "Pending",
        /// Stopping.
        Stopping = "Stopping",
        /// Finished successfully.
        Completed = "Completed",
        /// Killed.
        Killed = "Killed",
        /// Failed with an exception.
        Exception = "Exception",
        /// Running as a service.
        Service = "Service",
        /// Being cancelled.
        Cancelling = "Cancelling",
        /// Cancelled.
        Cancelled = "Cancelled",
    }
}

open_enum! {
    /// Health of a Redfish task, copied from the BMC.
    pub enum TaskHealth {
        /// Normal.
        Ok = "OK",
        /// Needs attention.
        Warning = "Warning",
        /// Needs immediate attention.
        Critical = "Critical",
    }
}

/// Progress of a firmware update task running on a BMC, mirrored into status so a restarted
/// controller resumes polling instead of starting a second update.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Redfish URI of the task.
    #[serde(rename = "URI", default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Task state reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Task health reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskHealth>,
    /// Completion in percent.
    #[serde(
        rename = "percentageComplete",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub percent_complete: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_limit_is_a_count_or_a_percentage_of_the_selected() {
        let r = |v: serde_json::Value| -> Rollout {
            serde_json::from_value(serde_json::json!({ "maxInMaintenance": v })).unwrap()
        };
        assert_eq!(r(serde_json::json!(5)).limit(100), Some(5));
        assert_eq!(
            r(serde_json::json!("5")).limit(100),
            Some(5),
            "a count as a string"
        );
        assert_eq!(r(serde_json::json!("10%")).limit(1000), Some(100));
        assert_eq!(
            r(serde_json::json!("10%")).limit(5),
            Some(1),
            "at least one"
        );
        assert_eq!(r(serde_json::json!("100%")).limit(7), Some(7));
        assert_eq!(Rollout::default().limit(7), None);
    }

    fn taint(key: &str, value: Option<&str>, effect: Option<TaintEffect>) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect,
        }
    }

    fn toleration(
        key: &str,
        op: Option<TolerationOperator>,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.into(),
            operator: op,
            value: value.map(Into::into),
            effect,
        }
    }

    #[test]
    fn equal_toleration_needs_same_value() {
        let t = taint("a", Some("1"), None);
        assert!(toleration("a", None, Some("1"), None).tolerates(&t));
        assert!(!toleration("a", None, Some("2"), None).tolerates(&t));
        assert!(!toleration("b", None, Some("1"), None).tolerates(&t));
    }

    #[test]
    fn exists_toleration_ignores_value() {
        let t = taint("a", Some("1"), Some(TaintEffect::NoBind));
        assert!(toleration("a", Some(TolerationOperator::Exists), None, None).tolerates(&t));
    }

    #[test]
    fn effect_must_match_when_set() {
        let t = taint("a", None, None);
        assert!(
            toleration(
                "a",
                Some(TolerationOperator::Exists),
                None,
                Some(TaintEffect::NoBind)
            )
            .tolerates(&t)
        );
        assert!(
            !toleration(
                "a",
                Some(TolerationOperator::Exists),
                None,
                Some(TaintEffect::Evict)
            )
            .tolerates(&t)
        );
    }

    #[test]
    fn tolerates_all_requires_every_taint() {
        let taints = [taint("a", None, None), taint("b", None, None)];
        let one = [toleration(
            "a",
            Some(TolerationOperator::Exists),
            None,
            None,
        )];
        assert!(!tolerates_all(&one, &taints));
        let both = [
            toleration("a", Some(TolerationOperator::Exists), None, None),
            toleration("b", Some(TolerationOperator::Exists), None, None),
        ];
        assert!(tolerates_all(&both, &taints));
        assert!(tolerates_all(&[], &[]));
    }

    #[test]
    fn open_enum_keeps_unknown_values() {
        let s: TaskState = serde_json::from_str("\"Frobnicating\"").unwrap();
        assert_eq!(s, TaskState::Other("Frobnicating".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"Frobnicating\"");
        let s: TaskState = serde_json::from_str("\"Completed\"").unwrap();
        assert_eq!(s, TaskState::Completed);
    }

    #[test]
    fn closed_enum_rejects_unknown_values() {
        assert!(serde_json::from_str::<Power>("\"Sideways\"").is_err());
        assert_eq!("On".parse::<Power>().unwrap(), Power::On);
        assert!("on".parse::<Power>().is_err());
        assert_eq!(Power::Off.to_string(), "Off");
    }
}
