//! What an operator wants to see of one Server, taken from the object alone (pure), so
//! `server list` and the visualizer show the same thing.

use api::conditions;
use api::constants::{
    LABEL_HEIGHT, LABEL_LOCATION, LABEL_RACK, LABEL_SHELF, Operation, PARKED_ANNOTATION,
    condition_types,
};
use api::server::{Server, ServerState};
use kube::ResourceExt as _;
use serde::Serialize;

/// One Server as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerView {
    /// Server name.
    pub name: String,
    /// Lifecycle state (`-` while unset).
    pub state: String,
    /// Observed power (`-` while unknown).
    pub power: String,
    /// `namespace/name` of the bound claim.
    pub claim: Option<String>,
    /// `Healthy` when the Healthy condition is True, else its reason; `None` without one.
    pub health: Option<String>,
    /// Every condition as `Type=Status`, in the object's order.
    pub conditions: Vec<String>,
    /// `spec.unclaimable`.
    pub cordoned: bool,
    /// In state Parked or carrying the parked marker.
    pub parked: bool,
    /// A park or unpark request not yet carried out.
    pub pending: Option<String>,
    /// Location labels (see [`api::constants::LABEL_LOCATION`] and siblings).
    pub location: Option<String>,
    /// Rack label.
    pub rack: Option<String>,
    /// Bottom-up rack unit, when the label is a number.
    pub shelf: Option<u32>,
    /// Height in rack units, when the label is a number.
    pub height: Option<u32>,
}

impl ServerView {
    /// Summarises `server`.
    pub fn of(server: &Server) -> ServerView {
        let labels = server.labels();
        let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        let number = |k: &str| labels.get(k).and_then(|v| v.trim().parse::<u32>().ok());
        let status = server.status.as_ref();
        let conds = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
        let health = conditions::get(conds, condition_types::HEALTHY).map(|c| {
            if c.status == "True" {
                "Healthy".to_string()
            } else {
                c.reason.clone()
            }
        });
        let op = Operation::from_annotations(server.annotations()).and_then(Result::ok);
        let marked = server
            .annotations()
            .get(PARKED_ANNOTATION)
            .is_some_and(|v| v == "true");
        let parked = server.state() == Some(ServerState::Parked) || marked;
        let pending = match op {
            Some(Operation::Park) if !parked => Some(Operation::Park.as_str().to_string()),
            Some(Operation::Unpark) if parked => Some(Operation::Unpark.as_str().to_string()),
            _ => None,
        };
        ServerView {
            name: server.name_any(),
            state: server
                .state()
                .map_or_else(|| "-".to_string(), |s| s.to_string()),
            power: status
                .and_then(|s| s.power_state)
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            claim: server
                .spec
                .server_claim_ref
                .as_ref()
                .map(|r| format!("{}/{}", r.namespace, r.name)),
            health,
            conditions: conds
                .iter()
                .map(|c| format!("{}={}", c.type_, c.status))
                .collect(),
            cordoned: server.is_unclaimable(),
            parked,
            pending,
            location: label(LABEL_LOCATION),
            rack: label(LABEL_RACK),
            shelf: number(LABEL_SHELF),
            height: number(LABEL_HEIGHT),
        }
    }
}

/// Column headers of `server list`.
pub const HEADERS: [&str; 7] = [
    "NAME", "STATE", "POWER", "CLAIM", "HEALTH", "CORDONED", "PARKED",
];

/// The table cells of one server, in [`HEADERS`] order.
pub fn row(v: &ServerView) -> Vec<String> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let parked = match &v.pending {
        Some(op) => format!("{} ({op} requested)", yes_no(v.parked)),
        None => yes_no(v.parked),
    };
    vec![
        v.name.clone(),
        v.state.clone(),
        v.power.clone(),
        v.claim.clone().unwrap_or_else(|| "-".into()),
        v.health.clone().unwrap_or_else(|| "-".into()),
        yes_no(v.cordoned),
        parked,
    ]
}

/// Renders rows under headers as kubectl does: left-aligned columns three spaces apart.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}   "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::constants::OPERATION_ANNOTATION;
    use serde_json::json;

    fn server(v: serde_json::Value) -> Server {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_bare_server_shows_dashes() {
        let v = ServerView::of(&server(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": { "name": "s1" }, "spec": { "systemUUID": "u" }
        })));
        assert_eq!(
            row(&v),
            ["s1", "-", "-", "-", "-", "no", "no"].map(String::from)
        );
        assert_eq!(v.rack, None);
    }

    #[test]
    fn every_column_comes_from_its_field() {
        let v = ServerView::of(&server(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": { "name": "s2",
                "labels": { LABEL_RACK: "r1", LABEL_SHELF: "7", LABEL_HEIGHT: "2", LABEL_LOCATION: "fra" },
                "annotations": { OPERATION_ANNOTATION: "park" } },
            "spec": { "systemUUID": "u", "unclaimable": true,
                      "serverClaimRef": { "namespace": "team", "name": "c1" } },
            "status": { "state": "Reserved", "powerState": "On", "conditions": [
                { "type": "Healthy", "status": "False", "reason": "BMCUnreachable", "message": "",
                  "lastTransitionTime": "2026-01-01T00:00:00Z" },
                { "type": "Discovered", "status": "True", "reason": "Done", "message": "",
                  "lastTransitionTime": "2026-01-01T00:00:00Z" }] }
        })));
        assert_eq!(
            row(&v),
            [
                "s2",
                "Reserved",
                "On",
                "team/c1",
                "BMCUnreachable",
                "yes",
                "no (park requested)"
            ]
            .map(String::from)
        );
        assert_eq!(v.conditions, ["Healthy=False", "Discovered=True"]);
        assert_eq!(
            (v.location.as_deref(), v.rack.as_deref(), v.shelf, v.height),
            (Some("fra"), Some("r1"), Some(7), Some(2))
        );
    }

    #[test]
    fn parked_by_state_or_marker() {
        let parked = |state: &str, marker: bool, op: Option<&str>| {
            let mut ann = serde_json::Map::new();
            if marker {
                ann.insert(PARKED_ANNOTATION.into(), "true".into());
            }
            if let Some(op) = op {
                ann.insert(OPERATION_ANNOTATION.into(), op.into());
            }
            let v = ServerView::of(&server(json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
                "metadata": { "name": "s", "annotations": ann }, "spec": { "systemUUID": "u" },
                "status": { "state": state }
            })));
            row(&v)[6].clone()
        };
        assert_eq!(parked("Parked", false, None), "yes");
        assert_eq!(parked("Available", true, None), "yes");
        assert_eq!(
            parked("Parked", true, Some("unpark")),
            "yes (unpark requested)"
        );
        assert_eq!(parked("Available", false, Some("unpark")), "no");
        assert_eq!(parked("Parked", true, Some("park")), "yes");
    }

    #[test]
    fn table_columns_align() {
        let t = render_table(
            &["NAME", "STATE"],
            &[
                vec!["a".into(), "Available".into()],
                vec!["longer-name".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME          STATE\na             Available\nlonger-name   -\n"
        );
    }
}
