//! `$metadata` and the OData service document for templates that do not carry their own.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::json::{ROOT, odata_id};

fn collect_types(v: &Value, out: &mut BTreeMap<String, BTreeSet<String>>) {
    match v {
        Value::Object(o) => {
            if let Some(t) = o.get("@odata.type").and_then(Value::as_str) {
                let t = t.trim_start_matches('#');
                if let Some((ns, _)) = t.rsplit_once('.') {
                    let base = ns.split('.').next().unwrap_or(ns).to_string();
                    let set = out.entry(base.clone()).or_default();
                    set.insert(base);
                    set.insert(ns.to_string());
                }
            }
            o.values().for_each(|x| collect_types(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_types(x, out)),
        _ => {}
    }
}

/// A CSDL `$metadata` document referencing the DMTF schema of every type in the tree.
pub(super) fn generate<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    let mut types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in values {
        collect_types(v, &mut types);
    }
    let root_ns = types
        .get("ServiceRoot")
        .and_then(|s| s.iter().rfind(|n| n.contains(".v")).cloned())
        .unwrap_or_else(|| "ServiceRoot.v1_0_0".into());
    for extra in ["Resource", "RedfishExtensions", "Message", "Settings"] {
        types.entry(extra.into()).or_default().insert(extra.into());
    }
    types
        .entry("RedfishExtensions".into())
        .or_default()
        .insert("RedfishExtensions.v1_0_0".into());
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (base, namespaces) in &types {
        xml.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{base}_v1.xml\">\n"
        ));
        for ns in namespaces {
            if ns == "RedfishExtensions.v1_0_0" {
                xml.push_str(&format!(
                    "    <edmx:Include Namespace=\"{ns}\" Alias=\"Redfish\"/>\n"
                ));
            } else {
                xml.push_str(&format!("    <edmx:Include Namespace=\"{ns}\"/>\n"));
            }
        }
        xml.push_str("  </edmx:Reference>\n");
    }
    xml.push_str(&format!(
        "  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" Extends=\"{root_ns}.ServiceContainer\"/>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n"
    ));
    xml
}

/// The OData service document: the service root and its top-level links.
pub(super) fn service_document(root: &Value) -> Value {
    let mut value =
        vec![json!({"name": "Service", "kind": "Singleton", "url": format!("{ROOT}/")})];
    if let Some(o) = root.as_object() {
        for (k, v) in o {
            if k.starts_with('@') || k == "Links" || k == "Oem" {
                continue;
            }
            if let Some(url) = odata_id(v) {
                value.push(json!({"name": k, "kind": "Singleton", "url": url}));
            }
        }
    }
    json!({"@odata.context": format!("{ROOT}/$metadata"), "value": value})
}
