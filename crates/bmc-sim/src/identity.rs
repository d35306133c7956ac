//! Identity rewriting: every simulated BMC gets its own UUIDs, serial numbers and MAC addresses.
//!
//! # The rule
//!
//! *Identity tokens* are collected once per template: every UUID-shaped value under a key named
//! `UUID` or ending in `UUID`/`GUID`, every MAC-shaped value under a key ending in `MACAddress`,
//! and every non-placeholder value under `SerialNumber` or `ServiceTag`. When a resource is
//! served, every string value anywhere in it (except under `Id` and `@odata.*`) that equals a
//! token (MACs compared by their six bytes, UUIDs case-insensitively) is replaced by the token's
//! derived value, so a value repeated elsewhere (a Dell `SKU` equal to the service tag, a service
//! root `UUID` equal to the system's) stays consistent.
//!
//! The *identity number* `n` is `identity_seed + BMC index`; `r` is the system replica (0 for the
//! template's own systems, 1.. for copies added by `systems:`).
//!
//! - identity number 0 with `r = 0` keeps the template's values unchanged (mode `keep_first`, the
//!   default); mode `keep_all` keeps them on every BMC; `derive_all` derives everywhere;
//! - a UUID becomes a version-4 UUID made of the first 16 bytes of
//!   `SHA-256("uuid|{n}|{r}|{lower-case template UUID}")`, in the template's letter case;
//! - a MAC becomes `02:HH:LL:NN:NN:NN` (locally administered): `HHLL` is `r × M + k` where `M` is
//!   the number of MAC tokens in the template and `k` this token's position among them sorted,
//!   `NNNNNN` is `n` (24 bits), written with the template's separator and letter case;
//! - a serial number `S` becomes `S-{n}` (`S-{n}-{r}` for replicas).
//!
//! MACs are therefore unique across all BMCs of a rack (up to 2^24) and all systems of a BMC.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What kind of identity value a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Uuid,
    Mac,
    Serial,
}

/// The identity tokens of one template.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    uuids: HashMap<String, u32>,
    macs: HashMap<[u8; 6], u32>,
    serials: HashMap<String, u32>,
}

/// Which identity a rendered resource carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `identity_seed + index`.
    pub number: u32,
    /// System replica, 0 outside replicated systems.
    pub replica: u16,
    /// Serve template values unchanged.
    pub keep: bool,
}

const PLACEHOLDERS: &[&str] = &[
    "n/a",
    "na",
    "none",
    "null",
    "unknown",
    "not specified",
    "not available",
    "notavailable",
    "to be filled by o.e.m.",
    "default string",
    "system serial number",
    "chassis serial number",
    "serial number",
    "0123456789",
    "123456789",
];

fn is_placeholder_serial(s: &str) -> bool {
    let t = s.trim();
    if t.len() < 3 {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    if PLACEHOLDERS.contains(&lower.as_str()) {
        return true;
    }
    let first = t.chars().next().unwrap_or(' ');
    if t.chars().all(|c| c == first) {
        return true;
    }
    // Certificate serial numbers (`89:03:8B:...`) identify a certificate, not a machine.
    t.split(':').count() > 2
        && t.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parses a MAC written as `aa:bb:cc:dd:ee:ff`, `aa-bb-…` or `aabbccddeeff`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let hex: String = match s.len() {
        17 => {
            let sep = s.as_bytes()[2];
            if sep != b':' && sep != b'-' {
                return None;
            }
            for i in [2, 5, 8, 11, 14] {
                if s.as_bytes()[i] != sep {
                    return None;
                }
            }
            s.chars().filter(|c| *c != sep as char).collect()
        }
        12 => s.to_string(),
        _ => return None,
    };
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn skip_key(k: &str) -> bool {
    k == "Id" || k == "MemberId" || k.starts_with("@odata.")
}

impl Tokens {
    /// Collects the tokens of a set of resources.
    pub(crate) fn scan<'a>(values: impl Iterator<Item = &'a Value>) -> Self {
        let mut uuids = BTreeSet::new();
        let mut macs = BTreeSet::new();
        let mut serials = BTreeSet::new();
        for v in values {
            collect(v, &mut uuids, &mut macs, &mut serials);
        }
        Tokens {
            uuids: uuids
                .into_iter()
                .enumerate()
                .map(|(i, u)| (u, i as u32))
                .collect(),
            macs: macs
                .into_iter()
                .enumerate()
                .map(|(i, m)| (m, i as u32))
                .collect(),
            serials: serials
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, i as u32))
                .collect(),
        }
    }

    /// Number of MAC tokens.
    pub(crate) fn mac_count(&self) -> usize {
        self.macs.len()
    }

    /// Whether the string is a token, and which.
    pub(crate) fn lookup(&self, s: &str) -> Option<(TokenKind, u32)> {
        if s.len() == 36 && is_uuid(s) {
            return self
                .uuids
                .get(&s.to_ascii_lowercase())
                .map(|o| (TokenKind::Uuid, *o));
        }
        if (s.len() == 17 || s.len() == 12)
            && let Some(m) = parse_mac(s)
            && let Some(o) = self.macs.get(&m)
        {
            return Some((TokenKind::Mac, *o));
        }
        self.serials.get(s).map(|o| (TokenKind::Serial, *o))
    }

    /// Whether any string value of the tree is a token.
    pub(crate) fn occurs_in(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.lookup(s).is_some(),
            Value::Array(a) => a.iter().any(|x| self.occurs_in(x)),
            Value::Object(o) => o.iter().any(|(k, x)| !skip_key(k) && self.occurs_in(x)),
            _ => false,
        }
    }

    /// The derived value of a string under an identity, `None` when it stays as it is.
    pub(crate) fn rewrite(&self, id: Identity, s: &str) -> Option<String> {
        if id.keep {
            return None;
        }
        let (kind, ordinal) = self.lookup(s)?;
        Some(match kind {
            TokenKind::Uuid => {
                let upper = s.bytes().any(|b| b.is_ascii_uppercase());
                let d = derive_uuid(s, id.number, id.replica);
                if upper { d.to_ascii_uppercase() } else { d }
            }
            TokenKind::Mac => {
                let bytes = derive_mac(ordinal, self.mac_count(), id.number, id.replica);
                format_mac_like(&bytes, s)
            }
            TokenKind::Serial => derive_serial(s, id.number, id.replica),
        })
    }
}

fn collect(
    v: &Value,
    uuids: &mut BTreeSet<String>,
    macs: &mut BTreeSet<[u8; 6]>,
    serials: &mut BTreeSet<String>,
) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| collect(x, uuids, macs, serials)),
        Value::Object(o) => {
            for (k, x) in o {
                if let Value::String(s) = x {
                    let lk = k.to_ascii_lowercase();
                    if (lk == "uuid" || lk.ends_with("uuid") || lk.ends_with("guid"))
                        && is_uuid(s)
                        && s.bytes().any(|b| b != b'0' && b != b'-')
                    {
                        uuids.insert(s.to_ascii_lowercase());
                    } else if lk.ends_with("macaddress") {
                        if let Some(m) = parse_mac(s)
                            && m != [0; 6]
                            && m != [0xff; 6]
                        {
                            macs.insert(m);
                        }
                    } else if (k == "SerialNumber" || k == "ServiceTag")
                        && !is_placeholder_serial(s)
                    {
                        serials.insert(s.clone());
                    }
                } else {
                    collect(x, uuids, macs, serials);
                }
            }
        }
        _ => {}
    }
}

/// Rewrites every string value of a tree (outside `Id` and `@odata.*`) through `f`.
pub(crate) fn rewrite_strings(v: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(n) = f(s) {
                *s = n;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_strings(x, f)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if !skip_key(k) {
                    rewrite_strings(x, f);
                }
            }
        }
        _ => {}
    }
}

/// The derived UUID of `template_uuid` for identity number `n`, replica `r` (lower case).
pub fn derive_uuid(template_uuid: &str, n: u32, r: u16) -> String {
    let digest = Sha256::digest(format!(
        "uuid|{n}|{r}|{}",
        template_uuid.to_ascii_lowercase()
    ));
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// The derived MAC of the `k`-th of `m` template MACs for identity number `n`, replica `r`.
pub fn derive_mac(k: u32, m: usize, n: u32, r: u16) -> [u8; 6] {
    let slot = (r as u32).wrapping_mul(m as u32).wrapping_add(k) as u16;
    [
        0x02,
        (slot >> 8) as u8,
        slot as u8,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ]
}

/// The derived serial number of `template_serial` for identity number `n`, replica `r`.
pub fn derive_serial(template_serial: &str, n: u32, r: u16) -> String {
    if r == 0 {
        format!("{template_serial}-{n}")
    } else {
        format!("{template_serial}-{n}-{r}")
    }
}

fn format_mac_like(b: &[u8; 6], like: &str) -> String {
    let upper = like.bytes().any(|c| c.is_ascii_uppercase());
    let sep = if like.len() == 17 {
        Some(like.as_bytes()[2] as char)
    } else {
        None
    };
    let mut out = String::with_capacity(17);
    for (i, byte) in b.iter().enumerate() {
        if i > 0
            && let Some(s) = sep
        {
            out.push(s);
        }
        if upper {
            out.push_str(&format!("{byte:02X}"));
        } else {
            out.push_str(&format!("{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> Vec<Value> {
        vec![
            json!({"Id": "1", "UUID": "4C4C4544-0035-3410-8050-C6C04F314733", "SerialNumber": "CN123",
                   "SKU": "TAG1", "Oem": {"Dell": {"ServiceTag": "TAG1"}}, "AssetTag": ""}),
            json!({"Id": "NIC1", "MACAddress": "b0:7b:25:d6:51:82", "PermanentMACAddress": "B0-7B-25-D6-51-82",
                   "AssociatedNetworkAddresses": ["B0:7B:25:D6:51:82"]}),
            json!({"Id": "B07B25D65183", "MACAddress": "B07B25D65183", "SerialNumber": "N/A",
                   "Certificate": {"SerialNumber": "89:03:8B:6F:E8:59:8C:21"},
                   "UUID": "00000000-0000-0000-0000-000000000000"}),
        ]
    }

    #[test]
    fn scan_finds_identity_values_only() {
        let t = Tokens::scan(tree().iter());
        assert_eq!(t.uuids.len(), 1, "all-zero UUID is not a token");
        assert_eq!(t.macs.len(), 2);
        assert_eq!(t.serials.len(), 2, "{:?}", t.serials);
        assert!(t.lookup("N/A").is_none());
        assert_eq!(
            t.lookup("4c4c4544-0035-3410-8050-c6c04f314733")
                .map(|x| x.0),
            Some(TokenKind::Uuid)
        );
        assert_eq!(
            t.lookup("B0:7B:25:D6:51:82").map(|x| x.0),
            Some(TokenKind::Mac)
        );
    }

    #[test]
    fn keep_serves_template_values() {
        let t = Tokens::scan(tree().iter());
        let keep = Identity {
            number: 0,
            replica: 0,
            keep: true,
        };
        let mut v = tree()[0].clone();
        rewrite_strings(&mut v, &|s| t.rewrite(keep, s));
        assert_eq!(v, tree()[0]);
    }

    #[test]
    fn derived_values_are_consistent_and_unique() {
        let t = Tokens::scan(tree().iter());
        let mut seen = std::collections::HashSet::new();
        for n in 1..200u32 {
            for r in 0..3u16 {
                let id = Identity {
                    number: n,
                    replica: r,
                    keep: false,
                };
                let mut nic = tree()[1].clone();
                rewrite_strings(&mut nic, &|s| t.rewrite(id, s));
                let mac = nic["MACAddress"].as_str().unwrap().to_string();
                assert!(mac.starts_with("02:"), "{mac}");
                assert_eq!(
                    nic["PermanentMACAddress"].as_str().unwrap(),
                    mac.to_uppercase().replace(':', "-")
                );
                assert_eq!(
                    nic["AssociatedNetworkAddresses"][0].as_str().unwrap(),
                    mac.to_uppercase()
                );
                assert!(seen.insert(mac.clone()), "duplicate MAC {mac}");
                let mut other = tree()[2].clone();
                rewrite_strings(&mut other, &|s| t.rewrite(id, s));
                assert_eq!(other["Id"], "B07B25D65183", "Id is never rewritten");
                assert!(seen.insert(other["MACAddress"].as_str().unwrap().to_string()));
                let mut sys = tree()[0].clone();
                rewrite_strings(&mut sys, &|s| t.rewrite(id, s));
                let uuid = sys["UUID"].as_str().unwrap();
                assert!(
                    uuid.chars().all(|c| !c.is_ascii_lowercase()),
                    "case kept: {uuid}"
                );
                assert!(seen.insert(uuid.to_string()));
                assert_eq!(sys["SKU"], sys["Oem"]["Dell"]["ServiceTag"]);
                let serial = sys["SerialNumber"].as_str().unwrap();
                assert!(seen.insert(serial.to_string()), "duplicate serial {serial}");
            }
        }
    }

    #[test]
    fn derivation_is_deterministic() {
        assert_eq!(derive_uuid("A", 5, 0), derive_uuid("a", 5, 0));
        assert_ne!(derive_uuid("a", 5, 0), derive_uuid("a", 6, 0));
        assert_eq!(derive_mac(3, 10, 0x010203, 1), [0x02, 0, 13, 1, 2, 3]);
        assert_eq!(derive_serial("S1", 42, 0), "S1-42");
        assert_eq!(derive_serial("S1", 42, 2), "S1-42-2");
        let u = derive_uuid("x", 1, 0);
        assert_eq!(uuid::Uuid::parse_str(&u).unwrap().get_version_num(), 4);
    }
}
