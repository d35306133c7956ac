//! Parsing `lldpctl -f json` output (lldpd) into [`LldpInterface`]s.
//!
//! lldpctl's JSON is irregular: `lldp.interface` is an array of one-key objects or a plain
//! object; a key that appears once is an object, several times an array (`capability`, `vlan`,
//! `mgmt-ip`); a chassis without a system name is not keyed by name. The parser walks the JSON
//! leniently and takes what is there, like upstream's `ParseLLDPCTL` (same fields, same choices:
//! first management address, the PVID VLAN else the first, enabled capabilities only).

use serde_json::Value;

use crate::report::{LldpInterface, Neighbor};

/// Why lldpctl output could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum LldpError {
    /// Not JSON at all.
    #[error("lldpctl output is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but `lldp.interface` has an unexpected type.
    #[error("lldpctl output has an unexpected shape: {0}")]
    Shape(&'static str),
}

/// Parses `lldpctl -f json` output. Interfaces are returned in document order; an interface that
/// appears several times (one entry per neighbour) is merged into one entry.
pub fn parse_lldpctl(data: &[u8]) -> Result<Vec<LldpInterface>, LldpError> {
    let v: Value = serde_json::from_slice(data)?;
    let Some(lldp) = v.get("lldp") else {
        return Ok(Vec::new());
    };
    let entries: Vec<(String, &Value)> = match lldp.get("interface") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|o| o.iter().map(|(k, v)| (k.clone(), v)))
            .collect(),
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(_) => {
            return Err(LldpError::Shape(
                "lldp.interface is neither array nor object",
            ));
        }
    };
    let mut out: Vec<LldpInterface> = Vec::new();
    for (name, details) in entries {
        let neighbors = neighbors_of(details);
        match out.iter_mut().find(|i| i.name == name) {
            Some(existing) => existing.neighbors.extend(neighbors),
            None => out.push(LldpInterface { name, neighbors }),
        }
    }
    Ok(out)
}

fn neighbors_of(details: &Value) -> Vec<Neighbor> {
    let port = details.get("port");
    let port_id = port
        .and_then(|p| p.get("id"))
        .map(id_value)
        .unwrap_or_default();
    let port_description = port
        .and_then(|p| p.get("descr"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let vlan_id = vlan_of(details.get("vlan"));
    let chassis: Vec<(String, &Value)> = match details.get("chassis") {
        Some(Value::Object(o)) if o.contains_key("id") && is_id(&o["id"]) => vec![(
            String::new(),
            details.get("chassis").unwrap_or(&Value::Null),
        )],
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|o| o.iter().map(|(k, v)| (k.clone(), v)))
            .collect(),
        _ => Vec::new(),
    };
    chassis
        .into_iter()
        .map(|(system_name, ch)| Neighbor {
            chassis_id: ch.get("id").map(id_value).unwrap_or_default(),
            port_id: port_id.clone(),
            port_description: port_description.to_string(),
            system_name,
            system_description: ch
                .get("descr")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            mgmt_ip: first_str(ch.get("mgmt-ip")),
            capabilities: one_or_many(ch.get("capability"))
                .into_iter()
                .filter(|c| c.get("enabled").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|c| c.get("type").and_then(Value::as_str).map(str::to_string))
                .collect(),
            vlan_id: vlan_id.clone(),
        })
        .collect()
}

fn is_id(v: &Value) -> bool {
    v.get("type").is_some() && v.get("value").is_some()
}

fn id_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

fn first_str(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .find_map(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

fn one_or_many(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

fn vlan_of(v: Option<&Value>) -> String {
    let vlans = one_or_many(v);
    let id = |v: &Value| v.get("vlan-id").and_then(Value::as_str).map(str::to_string);
    vlans
        .iter()
        .find(|v| v.get("pvid").and_then(Value::as_bool).unwrap_or(false))
        .and_then(|v| id(v))
        .or_else(|| vlans.first().and_then(|v| id(v)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETE: &str = include_str!("../tests/fixtures/lldpctl/lldpctl_complete.json");
    const MGMT_ARRAY: &str = include_str!("../tests/fixtures/lldpctl/lldpctl_mgmtip_array.json");
    const SINGLE: &str = include_str!("../tests/fixtures/lldpctl/lldpctl_single.json");
    const PARTIAL: &str = include_str!("../tests/fixtures/lldpctl/lldpctl_partial.json");
    const INCOMPLETE: &str = include_str!("../tests/fixtures/lldpctl/lldpctl_incomplete.json");

    #[test]
    fn complete_output() {
        let ifaces = parse_lldpctl(COMPLETE.as_bytes()).unwrap();
        assert_eq!(
            ifaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["ens3f0np0", "ens6f0np0", "eno12399"]
        );
        let n = &ifaces[1].neighbors[0];
        assert_eq!(n.system_name, "chassis2");
        assert_eq!(n.mgmt_ip, "10.17.125.124");
        assert_eq!(n.port_id, "Eth1/17");
        assert_eq!(n.vlan_id, "1963");
        assert_eq!(n.capabilities, ["Bridge", "Router"]);
        let n = &ifaces[2].neighbors[0];
        assert_eq!(n.port_id, "Ethernet1/21");
        assert_eq!(n.port_description, "*** node008-bb097 L1 ***");
        assert_eq!(n.vlan_id, "101");
    }

    #[test]
    fn mgmt_ip_array_takes_first() {
        let ifaces = parse_lldpctl(MGMT_ARRAY.as_bytes()).unwrap();
        let n = &ifaces[0].neighbors[0];
        assert_eq!(n.mgmt_ip, "192.168.30.242");
        assert_eq!(n.system_name, "sw-test-spine-1");
        assert_eq!(n.chassis_id, "e8:eb:d3:e4:5a:2e");
        assert_eq!(n.system_description, "Cumulus Linux version 5.11.5");
        assert_eq!(n.port_id, "swp1s0");
        assert_eq!(n.vlan_id, "");
    }

    #[test]
    fn single_partial_and_incomplete_do_not_fail() {
        let single = parse_lldpctl(SINGLE.as_bytes()).unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].name, "ens3f0np0");
        let partial = parse_lldpctl(PARTIAL.as_bytes()).unwrap();
        assert_eq!(partial[0].name, "eth0");
        assert_eq!(partial[0].neighbors[0].system_name, "neighbor1");
        assert_eq!(partial[0].neighbors[0].port_id, "");
        assert!(parse_lldpctl(INCOMPLETE.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn object_form_unnamed_chassis_and_vlan_array() {
        let doc = r#"{"lldp":{"interface":{"eth0":{"chassis":{"id":{"type":"mac","value":"00:11:22:33:44:55"},"descr":"sw","capability":{"type":"Bridge","enabled":true}},
            "port":{"id":{"type":"ifname","value":"ge-0/0/1"}},"vlan":[{"vlan-id":"10","pvid":false},{"vlan-id":"20","pvid":true}]}}}}"#;
        let ifaces = parse_lldpctl(doc.as_bytes()).unwrap();
        let n = &ifaces[0].neighbors[0];
        assert_eq!(n.chassis_id, "00:11:22:33:44:55");
        assert_eq!(n.system_name, "");
        assert_eq!(n.capabilities, ["Bridge"]);
        assert_eq!(n.vlan_id, "20");
    }

    #[test]
    fn repeated_interface_merges_neighbors() {
        let doc = r#"{"lldp":{"interface":[{"eth0":{"chassis":{"a":{"id":{"type":"mac","value":"1"}}},"port":{"id":{"type":"local","value":"p1"}}}},
            {"eth0":{"chassis":{"b":{"id":{"type":"mac","value":"2"}}},"port":{"id":{"type":"local","value":"p2"}}}}]}}"#;
        let ifaces = parse_lldpctl(doc.as_bytes()).unwrap();
        assert_eq!(ifaces.len(), 1);
        assert_eq!(ifaces[0].neighbors.len(), 2);
        assert_eq!(ifaces[0].neighbors[1].port_id, "p2");
    }

    #[test]
    fn empty_and_garbage() {
        assert!(parse_lldpctl(br#"{"lldp":{}}"#).unwrap().is_empty());
        assert!(parse_lldpctl(br#"{"lldp":[]}"#).unwrap().is_empty());
        assert!(parse_lldpctl(b"not json").is_err());
        assert!(parse_lldpctl(br#"{"lldp":{"interface":5}}"#).is_err());
    }
}
