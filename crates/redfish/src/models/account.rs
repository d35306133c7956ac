//! AccountService and accounts.

use serde::{Deserialize, Serialize};

use super::{Link, de};

/// The AccountService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountService {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Enabled.
    #[serde(rename = "ServiceEnabled", deserialize_with = "de::opt_bool")]
    pub service_enabled: Option<bool>,
    /// Accounts collection.
    #[serde(rename = "Accounts", deserialize_with = "de::opt_link")]
    pub accounts: Option<Link>,
    /// Roles collection.
    #[serde(rename = "Roles", deserialize_with = "de::opt_link")]
    pub roles: Option<Link>,
    /// Minimum password length.
    #[serde(rename = "MinPasswordLength", deserialize_with = "de::opt_u32")]
    pub min_password_length: Option<u32>,
    /// Maximum password length.
    #[serde(rename = "MaxPasswordLength", deserialize_with = "de::opt_u32")]
    pub max_password_length: Option<u32>,
}

/// A ManagerAccount (BMC user). The password is never read back (Redfish returns `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagerAccount {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id (iDRAC: slot number 1..16).
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// User name (empty for a free iDRAC slot).
    #[serde(rename = "UserName", deserialize_with = "de::opt_string")]
    pub user_name: Option<String>,
    /// Role (Administrator, Operator, ReadOnly, ...).
    #[serde(rename = "RoleId", deserialize_with = "de::opt_string")]
    pub role_id: Option<String>,
    /// Enabled.
    #[serde(rename = "Enabled", deserialize_with = "de::opt_bool")]
    pub enabled: Option<bool>,
    /// Locked.
    #[serde(rename = "Locked", deserialize_with = "de::opt_bool")]
    pub locked: Option<bool>,
    /// Account types.
    #[serde(rename = "AccountTypes", deserialize_with = "de::vec_string")]
    pub account_types: Vec<String>,
}
