//! The fleet by rack (pure): servers grouped by their location and rack labels, each rack
//! listed top unit first, as the visualizer draws it.

use crate::view::ServerView;
use serde::Serialize;

/// Name of the group of servers without a rack label.
pub const UNRACKED: &str = "unracked";

/// One rack and the servers in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rack {
    /// Location label shared by the rack's servers (`None` when unset).
    pub location: Option<String>,
    /// Rack label.
    pub name: String,
    /// Highest occupied unit (shelf + height - 1), at least 1.
    pub units: u32,
    /// Top unit first; servers without a shelf come last, by name.
    pub servers: Vec<ServerView>,
}

/// The whole fleet as the visualizer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fleet {
    /// Racks by location, then rack name (natural order: `r2` before `r10`).
    pub racks: Vec<Rack>,
    /// Servers without a rack label, by name.
    pub unracked: Vec<ServerView>,
    /// Server count by state, sorted by state.
    pub states: Vec<(String, usize)>,
    /// Things the operator should know about the layout.
    pub warnings: Vec<String>,
}

/// Splits a string into digit and non-digit runs so `r2` sorts before `r10`.
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    let flush = |cur: &mut String, digits: bool, out: &mut Vec<(u8, u64, String)>| {
        if cur.is_empty() {
            return;
        }
        if digits {
            out.push((0, cur.parse().unwrap_or(u64::MAX), String::new()));
        } else {
            out.push((1, 0, std::mem::take(cur)));
        }
        cur.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() != digits {
            flush(&mut cur, digits, &mut out);
            digits = c.is_ascii_digit();
        }
        cur.push(c);
    }
    flush(&mut cur, digits, &mut out);
    out
}

/// Groups `servers` by rack.
pub fn layout(servers: Vec<ServerView>) -> Fleet {
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    let mut racks: Vec<Rack> = Vec::new();
    let mut unracked = Vec::new();
    for s in servers {
        *states.entry(s.state.clone()).or_default() += 1;
        let Some(rack) = s.rack.clone() else {
            unracked.push(s);
            continue;
        };
        match racks
            .iter_mut()
            .find(|r| r.name == rack && r.location == s.location)
        {
            Some(r) => r.servers.push(s),
            None => racks.push(Rack {
                location: s.location.clone(),
                name: rack,
                units: 1,
                servers: vec![s],
            }),
        }
    }
    for r in &mut racks {
        r.servers.sort_by(|a, b| match (a.shelf, b.shelf) {
            (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.name.cmp(&b.name)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => natural_key(&a.name).cmp(&natural_key(&b.name)),
        });
        r.units = r
            .servers
            .iter()
            .filter_map(|s| s.shelf.map(|sh| sh + s.height.unwrap_or(1).max(1) - 1))
            .max()
            .unwrap_or(1)
            .max(1);
    }
    racks.sort_by(|a, b| {
        a.location
            .as_deref()
            .map(natural_key)
            .cmp(&b.location.as_deref().map(natural_key))
            .then_with(|| natural_key(&a.name).cmp(&natural_key(&b.name)))
    });
    unracked.sort_by_cached_key(|s| natural_key(&s.name));
    let mut warnings = Vec::new();
    if !unracked.is_empty() {
        warnings.push(format!(
            "no rack labels on {} server{}; they are shown under '{UNRACKED}'",
            unracked.len(),
            if unracked.len() == 1 { "" } else { "s" }
        ));
    }
    Fleet {
        racks,
        unracked,
        states: states.into_iter().collect(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, rack: Option<&str>, shelf: Option<u32>, height: Option<u32>) -> ServerView {
        ServerView {
            name: name.into(),
            state: "Available".into(),
            power: "Off".into(),
            claim: None,
            health: None,
            conditions: vec![],
            cordoned: false,
            parked: false,
            pending: None,
            location: Some("fra".into()),
            rack: rack.map(String::from),
            shelf,
            height,
        }
    }

    fn names(servers: &[ServerView]) -> Vec<&str> {
        servers.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn racks_sort_naturally_and_servers_top_down() {
        let f = layout(vec![
            s("a", Some("r10"), Some(1), None),
            s("b", Some("r2"), Some(3), Some(2)),
            s("c", Some("r2"), Some(10), None),
            s("d", Some("r2"), None, None),
            s("e", Some("r2"), Some(1), None),
        ]);
        assert_eq!(
            f.racks.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["r2", "r10"]
        );
        assert_eq!(names(&f.racks[0].servers), ["c", "b", "e", "d"]);
        assert_eq!(f.racks[0].units, 10);
        assert!(f.unracked.is_empty() && f.warnings.is_empty());
        assert_eq!(f.states, vec![("Available".to_string(), 5)]);
    }

    #[test]
    fn same_rack_name_in_two_locations_is_two_racks() {
        let mut other = s("x", Some("r1"), Some(1), None);
        other.location = Some("ams".into());
        let f = layout(vec![s("y", Some("r1"), Some(1), None), other]);
        assert_eq!(
            f.racks
                .iter()
                .map(|r| (r.location.as_deref(), names(&r.servers)))
                .collect::<Vec<_>>(),
            [(Some("ams"), vec!["x"]), (Some("fra"), vec!["y"])]
        );
    }

    #[test]
    fn servers_without_rack_are_unracked_with_a_warning() {
        let f = layout(vec![
            s("n10", None, None, None),
            s("n9", None, Some(4), None),
            s("r", Some("r1"), Some(2), Some(3)),
        ]);
        assert_eq!(names(&f.unracked), ["n9", "n10"]);
        assert_eq!(
            f.warnings,
            ["no rack labels on 2 servers; they are shown under 'unracked'"]
        );
        assert_eq!(f.racks[0].units, 4);
    }
}
