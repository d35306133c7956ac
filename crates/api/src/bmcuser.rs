//! `BMCUser` (deprecated upstream): an account on a BMC whose password the controller can
//! generate and rotate.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// CEL rule for Go-style durations such as `720h`, `1h30m` or `90s`.
pub(crate) const DURATION_RULE: &str =
    r"self.matches('^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$')";

/// Desired state of a BMCUser.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMCUser",
    singular = "bmcuser",
    plural = "bmcusers",
    shortname = "bmcu",
    category = "metal",
    status = "BMCUserStatus",
    derive = "PartialEq",
    doc = "Deprecated: an account on a BMC with an optionally generated and rotated password.",
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "UserName", type_ = "string", json_path = ".spec.userName"),
    printcolumn(name = "RoleID", type_ = "string", json_path = ".spec.roleID"),
    printcolumn(
        name = "LastRotation",
        type_ = "date",
        json_path = ".status.lastRotation"
    ),
    printcolumn(
        name = "PasswordExpiration",
        type_ = "date",
        json_path = ".status.passwordExpiration"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BMCUserSpec {
    /// Account name on the BMC.
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.size() > 0").message("userName must not be empty"))]
    pub user_name: String,
    /// Redfish role of the account, e.g. `Administrator`, `Operator`, `ReadOnly`.
    #[serde(rename = "roleID")]
    pub role_id: String,
    /// Free-text description of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How often the password is rotated, as a Go duration (e.g. `720h`); unset means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "rotationPeriod must be a duration such as 720h, 1h30m or 90s"
    ))]
    pub rotation_period: Option<String>,
    /// BMCSecret with the desired credentials; when unset the controller generates a password.
    #[serde(
        rename = "bmcSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bmc_secret_ref: Option<LocalObjectReference>,
    /// BMC on which the account lives.
    #[serde(rename = "bmcRef", default, skip_serializing_if = "Option::is_none")]
    pub bmc_ref: Option<LocalObjectReference>,
}

/// Observed state of a BMCUser.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BMCUserStatus {
    /// BMCSecret whose credentials are currently active on the BMC.
    #[serde(
        rename = "effectiveBMCSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub effective_bmc_secret_ref: Option<LocalObjectReference>,
    /// When the password was last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<Time>,
    /// When the current password expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_expiration: Option<Time>,
    /// Account id on the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Observations, one per type (addition over upstream).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
