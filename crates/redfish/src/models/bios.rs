//! BIOS settings and attribute registries (also used for BMC attributes).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Settings, de, redfish_enum};

/// A BIOS/BMC attribute value as the service reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A non-integer number.
    Number(f64),
    /// A string (also enumeration values).
    String(String),
    /// Anything else (arrays, objects), kept verbatim.
    Other(Value),
}

impl AttributeValue {
    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            AttributeValue::Null => Value::Null,
            AttributeValue::Bool(b) => Value::Bool(*b),
            AttributeValue::Integer(i) => Value::from(*i),
            AttributeValue::Number(n) => Value::from(*n),
            AttributeValue::String(s) => Value::String(s.clone()),
            AttributeValue::Other(v) => v.clone(),
        }
    }

    /// Converts JSON into a value.
    pub fn from_json(v: Value) -> Self {
        match v {
            Value::Null => AttributeValue::Null,
            Value::Bool(b) => AttributeValue::Bool(b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => AttributeValue::Integer(i),
                None => AttributeValue::Number(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => AttributeValue::String(s),
            other => AttributeValue::Other(other),
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer (or an integral number / numeric string).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttributeValue::Integer(i) => Some(*i),
            AttributeValue::Number(n) if n.fract() == 0.0 => Some(*n as i64),
            AttributeValue::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Loose equality used to drop no-op writes: `1` equals `"1"`, `true` equals `"true"`.
    pub fn loosely_eq(&self, other: &AttributeValue) -> bool {
        if self == other {
            return true;
        }
        match (self, other) {
            (AttributeValue::Integer(a), b) | (b, AttributeValue::Integer(a)) => {
                b.as_i64() == Some(*a)
            }
            (AttributeValue::Bool(a), AttributeValue::String(s))
            | (AttributeValue::String(s), AttributeValue::Bool(a)) => {
                s.eq_ignore_ascii_case(if *a { "true" } else { "false" })
            }
            _ => false,
        }
    }
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::String(s) => f.write_str(s),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        AttributeValue::String(s.to_owned())
    }
}
impl From<String> for AttributeValue {
    fn from(s: String) -> Self {
        AttributeValue::String(s)
    }
}
impl From<i64> for AttributeValue {
    fn from(i: i64) -> Self {
        AttributeValue::Integer(i)
    }
}
impl From<bool> for AttributeValue {
    fn from(b: bool) -> Self {
        AttributeValue::Bool(b)
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(AttributeValue::from_json(Value::deserialize(d)?))
    }
}

/// Reads an `Attributes` object into typed values (anything that is not an object reads as empty).
pub(crate) fn de_attributes<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, AttributeValue>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| (k, AttributeValue::from_json(v)))
            .collect(),
        _ => BTreeMap::new(),
    })
}

/// The Bios resource (current values) or its settings object (pending values); Dell's
/// `DellAttributes` resources have the same shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bios {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Id of the attribute registry describing the attributes.
    #[serde(rename = "AttributeRegistry", deserialize_with = "de::opt_string")]
    pub attribute_registry: Option<String>,
    /// Attribute values.
    #[serde(rename = "Attributes", deserialize_with = "de_attributes")]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Where pending values go.
    #[serde(rename = "@Redfish.Settings", deserialize_with = "de::opt")]
    pub settings: Option<Settings>,
}

impl Bios {
    /// The settings object path, if any.
    pub fn settings_object(&self) -> Option<&str> {
        self.settings
            .as_ref()?
            .settings_object
            .as_ref()
            .map(|l| l.odata_id.as_str())
    }
}

redfish_enum! {
    /// Attribute type in an attribute registry.
    AttributeType {
        /// One of the listed values.
        Enumeration = "Enumeration",
        /// Free text.
        String = "String",
        /// Integer.
        Integer = "Integer",
        /// Boolean.
        Boolean = "Boolean",
        /// Password (write-only text).
        Password = "Password",
    }
}

/// One allowed value of an enumeration attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttributeEnumValue {
    /// The value to write.
    #[serde(rename = "ValueName", deserialize_with = "de::opt_string")]
    pub value_name: Option<String>,
    /// Display name (Dell shows these as current values for some attributes).
    #[serde(rename = "ValueDisplayName", deserialize_with = "de::opt_string")]
    pub value_display_name: Option<String>,
}

/// One attribute of an attribute registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryAttribute {
    /// Attribute name.
    #[serde(rename = "AttributeName", deserialize_with = "de::opt_string")]
    pub attribute_name: Option<String>,
    /// Display name.
    #[serde(rename = "DisplayName", deserialize_with = "de::opt_string")]
    pub display_name: Option<String>,
    /// Type.
    #[serde(rename = "Type", deserialize_with = "de::opt")]
    pub attribute_type: Option<AttributeType>,
    /// Read-only.
    #[serde(rename = "ReadOnly", deserialize_with = "de::opt_bool")]
    pub read_only: Option<bool>,
    /// Dell manager registries spell it `Readonly`.
    #[serde(
        rename = "Readonly",
        deserialize_with = "de::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub readonly_dell: Option<bool>,
    /// Immutable.
    #[serde(rename = "Immutable", deserialize_with = "de::opt_bool")]
    pub immutable: Option<bool>,
    /// Hidden.
    #[serde(rename = "Hidden", deserialize_with = "de::opt_bool")]
    pub hidden: Option<bool>,
    /// Whether a reset is needed to apply (absent: assume yes).
    #[serde(rename = "ResetRequired", deserialize_with = "de::opt_bool")]
    pub reset_required: Option<bool>,
    /// Allowed values of an enumeration.
    #[serde(rename = "Value", deserialize_with = "de::vec")]
    pub value: Vec<AttributeEnumValue>,
    /// Lowest integer value (may be negative on Dell).
    #[serde(rename = "LowerBound", deserialize_with = "de::opt_i64")]
    pub lower_bound: Option<i64>,
    /// Highest integer value.
    #[serde(rename = "UpperBound", deserialize_with = "de::opt_i64")]
    pub upper_bound: Option<i64>,
    /// Integer step.
    #[serde(rename = "ScalarIncrement", deserialize_with = "de::opt_i64")]
    pub scalar_increment: Option<i64>,
    /// Minimum string length.
    #[serde(rename = "MinLength", deserialize_with = "de::opt_u64")]
    pub min_length: Option<u64>,
    /// Maximum string length.
    #[serde(rename = "MaxLength", deserialize_with = "de::opt_u64")]
    pub max_length: Option<u64>,
    /// Regular expression strings must match.
    #[serde(rename = "ValueExpression", deserialize_with = "de::opt_string")]
    pub value_expression: Option<String>,
    /// Default value.
    #[serde(rename = "DefaultValue", deserialize_with = "de::opt")]
    pub default_value: Option<AttributeValue>,
    /// Write-only.
    #[serde(rename = "WriteOnly", deserialize_with = "de::opt_bool")]
    pub write_only: Option<bool>,
}

impl RegistryAttribute {
    /// Read-only under either spelling.
    pub fn is_read_only(&self) -> bool {
        self.read_only.or(self.readonly_dell).unwrap_or(false)
    }
}

/// `RegistryEntries` of an attribute registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryEntries {
    /// Attributes.
    #[serde(rename = "Attributes", deserialize_with = "de::vec")]
    pub attributes: Vec<RegistryAttribute>,
}

/// An attribute registry (BIOS or manager), used to validate writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttributeRegistry {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id, e.g. `BiosAttributeRegistry.v1_0_3`.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Registry version.
    #[serde(rename = "RegistryVersion", deserialize_with = "de::opt_string")]
    pub registry_version: Option<String>,
    /// Owner (Dell, ...).
    #[serde(rename = "OwningEntity", deserialize_with = "de::opt_string")]
    pub owning_entity: Option<String>,
    /// Language.
    #[serde(rename = "Language", deserialize_with = "de::opt_string")]
    pub language: Option<String>,
    /// Entries.
    #[serde(rename = "RegistryEntries", deserialize_with = "de::opt")]
    pub registry_entries: Option<RegistryEntries>,
}

impl AttributeRegistry {
    /// Attributes by name.
    pub fn attributes(&self) -> BTreeMap<&str, &RegistryAttribute> {
        self.registry_entries
            .iter()
            .flat_map(|e| e.attributes.iter())
            .filter_map(|a| a.attribute_name.as_deref().map(|n| (n, a)))
            .collect()
    }
}

/// One location of a registry file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryLocation {
    /// Language.
    #[serde(rename = "Language", deserialize_with = "de::opt_string")]
    pub language: Option<String>,
    /// Where the registry can be read.
    #[serde(rename = "Uri", deserialize_with = "de::opt_string")]
    pub uri: Option<String>,
}

/// A member of `/redfish/v1/Registries` (MessageRegistryFile) pointing to the registry itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryFile {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Registry name and version.
    #[serde(rename = "Registry", deserialize_with = "de::opt_string")]
    pub registry: Option<String>,
    /// Locations.
    #[serde(rename = "Location", deserialize_with = "de::vec")]
    pub location: Vec<RegistryLocation>,
}

impl RegistryFile {
    /// The first location's URI.
    pub fn uri(&self) -> Option<&str> {
        self.location.iter().find_map(|l| l.uri.as_deref())
    }
}
