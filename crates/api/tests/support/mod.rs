//! Test-only admission check without a cluster: a small OpenAPI validator for the keywords our
//! schemas use (wording follows the apiserver's messages) plus client-side CEL evaluation with
//! kube-cel. It approximates the apiserver; the real one is exercised by the integration tests
//! that run against `metal-testenv`.

#![allow(dead_code)]

use kube::core::cel::{ErrorKind, Validator, apply_defaults};
use serde_json::Value;

/// The schema of `kind`'s CRD.
pub fn schema(kind: &str) -> Value {
    let crd = api::crds::by_kind(kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
    api::crds::schema_json(&crd)
}

/// Result of checking one object.
#[derive(Debug, Default)]
pub struct Report {
    /// OpenAPI violations, apiserver-style.
    pub openapi: Vec<String>,
    /// CEL rule failures (rule messages).
    pub cel: Vec<String>,
    /// CEL rules that could not be evaluated (compile or runtime errors).
    pub cel_broken: Vec<String>,
    /// Fields the apiserver would prune.
    pub unknown: Vec<String>,
}

impl Report {
    pub fn errors(&self) -> Vec<String> {
        self.openapi
            .iter()
            .chain(&self.cel)
            .chain(&self.cel_broken)
            .cloned()
            .collect()
    }

    pub fn accepted(&self) -> bool {
        self.errors().is_empty()
    }
}

/// Checks `obj` (and, for updates, `old`) against `kind`'s schema like admission would.
pub fn admit(kind: &str, obj: &Value, old: Option<&Value>) -> Report {
    let schema = schema(kind);
    let defaulted = apply_defaults(&schema, obj);
    let mut report = Report::default();
    walk(&schema, &defaulted, "", &mut report);
    // Like the apiserver, skip CEL when an OpenAPI error makes the object unsafe to evaluate.
    let blocking = [
        "Unsupported value",
        "must be of type",
        "Too long",
        "Too many",
    ];
    if report
        .openapi
        .iter()
        .any(|e| blocking.iter().any(|b| e.contains(b)))
    {
        report
            .openapi
            .push("some validation rules were not checked because the object was invalid".into());
        return report;
    }
    match Validator::new().validate(&schema, obj, old) {
        Ok(()) => {}
        Err(errors) => {
            for e in errors.iter() {
                if e.kind == ErrorKind::ValidationFailure {
                    report.cel.push(format!("{}: {}", e.field_path, e.message));
                } else {
                    report.cel_broken.push(format!(
                        "{:?} {}: {} ({})",
                        e.kind, e.field_path, e.message, e.rule
                    ));
                }
            }
        }
    }
    report
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &Value, value: &Value, path: &str, report: &mut Report) {
    let here = if path.is_empty() { "<root>" } else { path };
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_string() || type_name(value) == "integer") {
            report
                .openapi
                .push(format!("{here}: must be an integer or a string"));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        if actual != expected && !(expected == "number" && actual == "integer") {
            report.openapi.push(format!(
                "{here} in body must be of type {expected}: \"{actual}\""
            ));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        report.openapi.push(format!(
            "{here}: Unsupported value: {value}: supported values: {allowed:?}"
        ));
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                report.openapi.push(format!(
                    "{here}: Too long: may not be more than {max} bytes"
                ));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                report.openapi.push(format!(
                    "{here} in body should be at least {min} chars long"
                ));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let re = regex::Regex::new(pattern).expect("schema pattern compiles");
                if !re.is_match(s) {
                    report
                        .openapi
                        .push(format!("{here} in body should match '{pattern}'"));
                }
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or_default();
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                report.openapi.push(format!(
                    "{here} in body should be less than or equal to {max}"
                ));
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                report.openapi.push(format!(
                    "{here} in body should be greater than or equal to {min}"
                ));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                report.openapi.push(format!(
                    "{here}: Too many: {len}: must have at most {max} items"
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                report
                    .openapi
                    .push(format!("{here} in body should have at least {min} items"));
            }
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut seen = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let key: Vec<&Value> = keys.iter().map(|k| &item[*k]).collect();
                    if seen.contains(&key) {
                        report
                            .openapi
                            .push(format!("{here}[{i}]: Duplicate value: {key:?}"));
                    }
                    seen.push(key);
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), report);
                }
            }
        }
        Value::Object(map) => {
            if path.ends_with(".metadata") || path == ".metadata" {
                return;
            }
            if let Some(Value::Array(required)) = schema.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        report.openapi.push(format!("{path}.{r}: Required value"));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve =
                schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            for (k, v) in map {
                let child = format!("{path}.{k}");
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    walk(s, v, &child, report);
                } else if let Some(s @ Value::Object(_)) = additional {
                    walk(s, v, &child, report);
                } else if !preserve {
                    report.unknown.push(child);
                }
            }
        }
        _ => {}
    }
}

/// Deserializes `obj` into the Rust type of its `kind` and serializes it back.
pub fn typed_roundtrip(obj: &Value) -> Result<Value, String> {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
        let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    match obj["kind"].as_str().unwrap_or_default() {
        "Endpoint" => rt::<api::Endpoint>(obj),
        "BMC" => rt::<api::BMC>(obj),
        "BMCSecret" => rt::<api::BMCSecret>(obj),
        "BMCUser" => rt::<api::BMCUser>(obj),
        "Server" => rt::<api::Server>(obj),
        "ServerClaim" => rt::<api::ServerClaim>(obj),
        "ServerBootConfiguration" => rt::<api::ServerBootConfiguration>(obj),
        "ServerReadinessRule" => rt::<api::ServerReadinessRule>(obj),
        "ServerMaintenance" => rt::<api::ServerMaintenance>(obj),
        "BIOSSettings" => rt::<api::BIOSSettings>(obj),
        "BIOSVersion" => rt::<api::BIOSVersion>(obj),
        "BMCSettings" => rt::<api::BMCSettings>(obj),
        "BMCVersion" => rt::<api::BMCVersion>(obj),
        "BIOSSettingsSet" => rt::<api::BIOSSettingsSet>(obj),
        "BIOSVersionSet" => rt::<api::BIOSVersionSet>(obj),
        "BMCSettingsSet" => rt::<api::BMCSettingsSet>(obj),
        "BMCVersionSet" => rt::<api::BMCVersionSet>(obj),
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// Parses every YAML document in `text`, skipping empty ones.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}
