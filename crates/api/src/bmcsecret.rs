//! `BMCSecret`: credentials for a BMC, shaped like a core `Secret` but cluster scoped so
//! cluster-scoped BMCs can reference it.

use k8s_openapi::ByteString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of the user name in `data`/`stringData`.
pub const USERNAME_KEY: &str = "username";
/// Key of the password in `data`/`stringData`.
pub const PASSWORD_KEY: &str = "password";

/// Binary secret values, base64 encoded on the wire. `Debug` prints only the keys.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretData(pub BTreeMap<String, ByteString>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl JsonSchema for SecretData {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretData".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": { "type": "string", "format": "byte" },
        })
    }
}

/// Plain-text secret values. `Debug` prints only the keys.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct SecretStringData(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretStringData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The credential fields of a BMCSecret; they sit at the top level of the object like in a
/// core `Secret` (there is no `spec`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "BMCSecret",
    singular = "bmcsecret",
    plural = "bmcsecrets",
    shortname = "bmcsec",
    category = "metal",
    status = "BMCSecretStatus",
    derive = "PartialEq",
    no_spec,
    doc = "Credentials (username and password) for a BMC, shaped like a core Secret.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(
        "!has(oldSelf.immutable) || !oldSelf.immutable || (has(self.immutable) && self.immutable)"
    ).message("immutable cannot be unset once it is true; create a new BMCSecret instead"),
    validation = Rule::new(
        "!has(oldSelf.immutable) || !oldSelf.immutable || (has(self.data) == has(oldSelf.data) && (!has(self.data) || self.data == oldSelf.data))"
    ).message("data cannot change while immutable is true; create a new BMCSecret to rotate credentials"),
    validation = Rule::new(
        "!has(oldSelf.immutable) || !oldSelf.immutable || (has(self.stringData) == has(oldSelf.stringData) && (!has(self.stringData) || self.stringData == oldSelf.stringData))"
    ).message("stringData cannot change while immutable is true; create a new BMCSecret to rotate credentials")
)]
#[serde(rename_all = "camelCase")]
pub struct BMCSecretFields {
    /// When true, `data` and `stringData` can no longer change and `immutable` cannot be
    /// reverted (enforced by the CRD schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Base64 encoded values, normally `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<SecretData>,
    /// Plain-text values; unlike a core Secret they are stored as given, and take precedence
    /// over `data` for the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_data: Option<SecretStringData>,
    /// Free-form type marker, as on a core Secret.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// Observed state of a BMCSecret (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BMCSecretStatus {}

impl BMCSecretFields {
    /// Looks up `key`, preferring `stringData` over `data`. Values that are not UTF-8 are
    /// treated as absent.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.string_data.as_ref().and_then(|d| d.0.get(key)) {
            return Some(v.clone());
        }
        self.data
            .as_ref()
            .and_then(|d| d.0.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    }

    /// The user name, if present.
    pub fn username(&self) -> Option<String> {
        self.get(USERNAME_KEY)
    }

    /// The password, if present.
    pub fn password(&self) -> Option<String> {
        self.get(PASSWORD_KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_wins_over_data() {
        let s: BMCSecretFields = serde_json::from_value(serde_json::json!({
            "data": {"username": "YWRtaW4=", "password": "b2xk"},
            "stringData": {"password": "new"}
        }))
        .unwrap();
        assert_eq!(s.username().as_deref(), Some("admin"));
        assert_eq!(s.password().as_deref(), Some("new"));
    }

    #[test]
    fn debug_never_prints_values() {
        let s: BMCSecretFields = serde_json::from_value(serde_json::json!({
            "data": {"password": "c2VjcmV0LWJ5dGVz"},
            "stringData": {"username": "root", "password": "hunter2"}
        }))
        .unwrap();
        let secret = BMCSecret::new("x", s);
        let dbg = format!("{secret:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("secret-bytes"), "{dbg}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
        assert!(dbg.contains("password"), "{dbg}");
        assert_eq!(format!("{:?}", secret.spec.data), r#"Some({"password"})"#);
        assert_eq!(
            format!("{:?}", secret.spec.string_data),
            r#"Some({"password", "username"})"#
        );
    }
}
