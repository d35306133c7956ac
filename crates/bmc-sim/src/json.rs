//! Small helpers over `serde_json::Value` trees and Redfish paths.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The root of every Redfish tree, in canonical form.
pub(crate) const ROOT: &str = "/redfish/v1";

/// Canonical form of a resource path: no trailing slash (the service root is `/redfish/v1`), no
/// repeated slashes, no fragment.
pub(crate) fn canon(path: &str) -> Cow<'_, str> {
    let path = path.split('#').next().unwrap_or(path);
    let needs_fix = path.contains("//") || (path.len() > 1 && path.ends_with('/'));
    if !needs_fix {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// The `@odata.id` of a reference object, canonical.
pub(crate) fn odata_id(v: &Value) -> Option<String> {
    v.get("@odata.id")
        .and_then(Value::as_str)
        .map(|s| canon(s).into_owned())
}

/// The canonical `@odata.id` of the reference stored under `key`.
pub(crate) fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(odata_id)
}

/// Canonical member paths of a collection resource.
pub(crate) fn members(v: &Value) -> Vec<String> {
    v.get("Members")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(odata_id).collect())
        .unwrap_or_default()
}

/// The short type name of a resource (`#ComputerSystem.v1_16_0.ComputerSystem` → `ComputerSystem`).
pub(crate) fn type_name(v: &Value) -> Option<&str> {
    let t = v.get("@odata.type")?.as_str()?;
    t.rsplit('.').next()
}

/// The last path segment.
pub(crate) fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A list of strings stored under `key`.
pub(crate) fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key)?.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    })
}

/// A `{"@odata.id": path}` reference.
pub(crate) fn reference(path: &str) -> Value {
    let mut m = Map::new();
    m.insert("@odata.id".into(), Value::String(path.to_string()));
    Value::Object(m)
}

/// Decodes `%XX` escapes (and nothing else); invalid escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        assert_eq!(canon("/redfish/v1/"), "/redfish/v1");
        assert_eq!(canon("/redfish/v1"), "/redfish/v1");
        assert_eq!(canon("/redfish/v1/Chassis/1/"), "/redfish/v1/Chassis/1");
        assert_eq!(canon("/redfish//v1/Systems"), "/redfish/v1/Systems");
        assert_eq!(
            canon("/redfish/v1/Chassis/1/Thermal#/Fans/0"),
            "/redfish/v1/Chassis/1/Thermal"
        );
        assert_eq!(canon("/"), "/");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("%24expand=.(%24levels%3D1)"),
            "$expand=.($levels=1)"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn type_names() {
        let v = serde_json::json!({"@odata.type": "#ComputerSystem.v1_16_0.ComputerSystem"});
        assert_eq!(type_name(&v), Some("ComputerSystem"));
    }
}
