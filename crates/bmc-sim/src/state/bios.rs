//! BIOS attribute registry and validation of pending-settings PATCHes.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The type of a BIOS attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrType {
    Enumeration,
    String,
    Integer,
    Boolean,
    Password,
    Other,
}

/// One attribute of the registry.
#[derive(Clone, Debug)]
pub(crate) struct AttrDef {
    pub ty: AttrType,
    pub read_only: bool,
    pub values: Vec<String>,
    pub lower: Option<i64>,
    pub upper: Option<i64>,
    pub min_len: Option<u64>,
    pub max_len: Option<u64>,
}

/// The BIOS attribute registry of a template.
#[derive(Clone, Debug, Default)]
pub(crate) struct BiosRegistry {
    pub attrs: HashMap<String, AttrDef>,
}

/// Why an attribute of a PATCH is refused, as a Base registry message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Base message key (`PropertyUnknown`, ...).
    pub key: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Message arguments.
    pub args: Vec<String>,
}

impl BiosRegistry {
    /// Parses an `AttributeRegistry` resource; `None` if it has no attribute list.
    pub(crate) fn from_value(v: &Value) -> Option<BiosRegistry> {
        let list = v.get("RegistryEntries")?.get("Attributes")?.as_array()?;
        let mut attrs = HashMap::with_capacity(list.len());
        for a in list {
            let Some(name) = a.get("AttributeName").and_then(Value::as_str) else {
                continue;
            };
            let ty = match a.get("Type").and_then(Value::as_str).unwrap_or("") {
                "Enumeration" => AttrType::Enumeration,
                "String" => AttrType::String,
                "Integer" => AttrType::Integer,
                "Boolean" => AttrType::Boolean,
                "Password" => AttrType::Password,
                _ => AttrType::Other,
            };
            let flag = |k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
            attrs.insert(
                name.to_string(),
                AttrDef {
                    ty,
                    read_only: flag("ReadOnly") || flag("Immutable"),
                    values: a
                        .get("Value")
                        .and_then(Value::as_array)
                        .map(|vs| {
                            vs.iter()
                                .filter_map(|x| {
                                    x.get("ValueName").and_then(Value::as_str).map(String::from)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    lower: a.get("LowerBound").and_then(Value::as_i64),
                    upper: a.get("UpperBound").and_then(Value::as_i64),
                    min_len: a.get("MinLength").and_then(Value::as_u64),
                    max_len: a.get("MaxLength").and_then(Value::as_u64),
                },
            );
        }
        Some(BiosRegistry { attrs })
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(name: &str, v: &Value) -> Violation {
    Violation {
        key: "PropertyValueTypeError",
        message: format!(
            "The value '{v}' for the property {name} is of a different type than the property can accept."
        ),
        args: vec![v.to_string(), name.to_string()],
    }
}

/// Checks every attribute of `patch` against the registry (or, without one, against the names and
/// JSON types of the current attributes). Returns all violations; empty means valid.
pub(crate) fn validate(
    registry: Option<&BiosRegistry>,
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (name, v) in patch {
        let unknown = || Violation {
            key: "PropertyUnknown",
            message: format!(
                "The property {name} is not in the list of valid properties for the resource."
            ),
            args: vec![name.clone()],
        };
        let Some(reg) = registry else {
            match current.get(name) {
                None => out.push(unknown()),
                Some(cur) if json_type(cur) != json_type(v) && !cur.is_null() => {
                    out.push(type_error(name, v))
                }
                Some(_) if v.is_null() => out.push(type_error(name, v)),
                Some(_) => {}
            }
            continue;
        };
        let Some(def) = reg.attrs.get(name) else {
            out.push(unknown());
            continue;
        };
        if def.read_only {
            out.push(Violation {
                key: "PropertyNotWritable",
                message: format!(
                    "The property {name} is a read only property and cannot be assigned a value."
                ),
                args: vec![name.clone()],
            });
            continue;
        }
        match def.ty {
            AttrType::Enumeration => match v.as_str() {
                None => out.push(type_error(name, v)),
                Some(s) if !def.values.is_empty() && !def.values.iter().any(|x| x == s) => out.push(Violation {
                    key: "PropertyValueNotInList",
                    message: format!("The value '{s}' for the property {name} is not in the list of acceptable values."),
                    args: vec![s.to_string(), name.clone()],
                }),
                Some(_) => {}
            },
            AttrType::String | AttrType::Password => match v.as_str() {
                None => out.push(type_error(name, v)),
                Some(s) => {
                    let len = s.chars().count() as u64;
                    if def.max_len.is_some_and(|m| len > m) || def.min_len.is_some_and(|m| len < m) {
                        out.push(Violation {
                            key: "PropertyValueFormatError",
                            message: format!(
                                "The value '{s}' for the property {name} is of a different format than the property can accept."
                            ),
                            args: vec![s.to_string(), name.clone()],
                        });
                    }
                }
            },
            AttrType::Integer => match v.as_i64() {
                None => out.push(type_error(name, v)),
                Some(n) => {
                    if def.lower.is_some_and(|l| n < l) || def.upper.is_some_and(|u| n > u) {
                        out.push(Violation {
                            key: "PropertyValueOutOfRange",
                            message: format!("The value '{n}' for the property {name} is not in the supported range of acceptable values."),
                            args: vec![n.to_string(), name.clone()],
                        });
                    }
                }
            },
            AttrType::Boolean => {
                if !v.is_boolean() {
                    out.push(type_error(name, v));
                }
            }
            AttrType::Other => {
                if v.is_null() || v.is_object() || v.is_array() {
                    out.push(type_error(name, v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> BiosRegistry {
        BiosRegistry::from_value(&json!({"RegistryEntries": {"Attributes": [
            {"AttributeName": "BootMode", "Type": "Enumeration", "ReadOnly": false,
             "Value": [{"ValueName": "Uefi"}, {"ValueName": "Bios"}]},
            {"AttributeName": "SerialNumber", "Type": "String", "ReadOnly": true},
            {"AttributeName": "AssetTag", "Type": "String", "MaxLength": 4},
            {"AttributeName": "NumLock", "Type": "Boolean"},
            {"AttributeName": "Timeout", "Type": "Integer", "LowerBound": 1, "UpperBound": 60},
            {"AttributeName": "Fixed", "Type": "Integer", "Immutable": true}
        ]}}))
        .unwrap()
    }

    fn keys(v: &[Violation]) -> Vec<&'static str> {
        v.iter().map(|x| x.key).collect()
    }

    #[test]
    fn valid_patch_passes() {
        let p = json!({"BootMode": "Bios", "AssetTag": "ab", "NumLock": true, "Timeout": 5});
        assert!(validate(Some(&registry()), &Map::new(), p.as_object().unwrap()).is_empty());
    }

    #[test]
    fn each_violation_is_reported() {
        let r = registry();
        let check = |p: Value| keys(&validate(Some(&r), &Map::new(), p.as_object().unwrap()));
        assert_eq!(check(json!({"Nope": 1})), ["PropertyUnknown"]);
        assert_eq!(check(json!({"SerialNumber": "x"})), ["PropertyNotWritable"]);
        assert_eq!(check(json!({"Fixed": 3})), ["PropertyNotWritable"]);
        assert_eq!(check(json!({"BootMode": 1})), ["PropertyValueTypeError"]);
        assert_eq!(
            check(json!({"BootMode": "Legacy"})),
            ["PropertyValueNotInList"]
        );
        assert_eq!(check(json!({"NumLock": "yes"})), ["PropertyValueTypeError"]);
        assert_eq!(check(json!({"Timeout": 61})), ["PropertyValueOutOfRange"]);
        assert_eq!(check(json!({"Timeout": "5"})), ["PropertyValueTypeError"]);
        assert_eq!(
            check(json!({"AssetTag": "toolong"})),
            ["PropertyValueFormatError"]
        );
        assert_eq!(check(json!({"Nope": 1, "BootMode": "Legacy"})).len(), 2);
    }

    #[test]
    fn without_registry_current_attributes_decide() {
        let cur = json!({"A": "x", "B": 3}).as_object().unwrap().clone();
        let check = |p: Value| keys(&validate(None, &cur, p.as_object().unwrap()));
        assert!(check(json!({"A": "y", "B": 4})).is_empty());
        assert_eq!(check(json!({"C": 1})), ["PropertyUnknown"]);
        assert_eq!(check(json!({"B": "4"})), ["PropertyValueTypeError"]);
    }
}
