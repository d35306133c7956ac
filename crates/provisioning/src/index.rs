//! The per-server index: MAC → server, system UUID → server, IP → server (for the boot server
//! and the metadata service), claim → server and BMC → server (for enqueueing). Kept up to date
//! from the Server watch stream, so a request never lists servers.
//!
//! Identification (pure, [`ServerIndex::identify`]) serves only unambiguous matches: a MAC, UUID
//! or IP that two servers share identifies neither, and a UUID together with a MAC that is not
//! one of that server's NICs identifies nothing.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use api::server::Server;
use kube::runtime::watcher::Event;

/// Normalizes a MAC address to lower-case, colon-separated hex (`AA-BB-..` → `aa:bb:..`).
/// Returns `None` for anything that is not six hex octets.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let hex: String = mac
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(
        hex.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Normalizes a UUID to lower-case hyphenated form; `None` if it is not a UUID.
pub fn normalize_uuid(uuid: &str) -> Option<String> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The same UUID with its first three fields byte-swapped. Firmware and BMCs disagree on the
/// SMBIOS UUID byte order, so a UUID that does not match is tried in the other order too.
pub fn swap_uuid_endianness(uuid: &str) -> Option<String> {
    let u = normalize_uuid(uuid)?;
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    let b = hex.as_bytes();
    let sw = |r: std::ops::Range<usize>| -> String {
        let s = &b[r];
        s.chunks(2)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect()
    };
    let rest = std::str::from_utf8(&b[16..32]).unwrap_or_default();
    normalize_uuid(&format!("{}{}{}{}", sw(0..8), sw(8..12), sw(12..16), rest))
}

/// What identifies one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Normalized MACs of its NICs.
    pub macs: BTreeSet<String>,
    /// Normalized system UUID.
    pub uuid: Option<String>,
    /// IPs of its NICs.
    pub ips: BTreeSet<IpAddr>,
    /// Its claim (`namespace/name`).
    pub claim: Option<String>,
    /// Its BMC object.
    pub bmc: Option<String>,
}

impl Keys {
    /// The keys of a server object.
    pub fn of(server: &Server) -> Keys {
        let mut k = Keys {
            uuid: normalize_uuid(&server.spec.system_uuid),
            claim: server
                .spec
                .server_claim_ref
                .as_ref()
                .map(|r| format!("{}/{}", r.namespace, r.name)),
            bmc: server.spec.bmc_ref.as_ref().map(|r| r.name.clone()),
            ..Keys::default()
        };
        if let Some(st) = &server.status {
            for nic in &st.network_interfaces {
                if let Some(m) = normalize_mac(&nic.mac_address) {
                    k.macs.insert(m);
                }
                for ip in nic.ips.iter().chain(nic.ip.iter()) {
                    if let Ok(ip) = ip.split('/').next().unwrap_or_default().parse() {
                        k.ips.insert(ip);
                    }
                }
            }
        }
        k
    }
}

/// A boot request's claims about who is asking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// MAC of the booting NIC.
    pub mac: Option<String>,
    /// System UUID.
    pub uuid: Option<String>,
}

type Multi<K> = HashMap<K, BTreeSet<String>>;

/// The index. Not synchronized; wrap it (see [`SharedIndex`]).
#[derive(Debug, Default, Clone)]
pub struct ServerIndex {
    entries: HashMap<String, Keys>,
    by_mac: Multi<String>,
    by_uuid: Multi<String>,
    by_ip: Multi<IpAddr>,
    by_claim: Multi<String>,
    by_bmc: Multi<String>,
}

fn add<K: std::hash::Hash + Eq>(m: &mut Multi<K>, k: K, name: &str) {
    m.entry(k).or_default().insert(name.to_string());
}

fn del<K: std::hash::Hash + Eq>(m: &mut Multi<K>, k: &K, name: &str) {
    if let Some(set) = m.get_mut(k) {
        set.remove(name);
        if set.is_empty() {
            m.remove(k);
        }
    }
}

fn unique<K: std::hash::Hash + Eq>(m: &Multi<K>, k: &K) -> Option<String> {
    m.get(k)
        .filter(|s| s.len() == 1)
        .and_then(|s| s.iter().next().cloned())
}

impl ServerIndex {
    /// Adds or replaces a server.
    pub fn upsert(&mut self, name: &str, keys: Keys) {
        if self.entries.get(name) == Some(&keys) {
            return;
        }
        self.remove(name);
        for m in &keys.macs {
            add(&mut self.by_mac, m.clone(), name);
        }
        if let Some(u) = &keys.uuid {
            add(&mut self.by_uuid, u.clone(), name);
        }
        for ip in &keys.ips {
            add(&mut self.by_ip, *ip, name);
        }
        if let Some(c) = &keys.claim {
            add(&mut self.by_claim, c.clone(), name);
        }
        if let Some(b) = &keys.bmc {
            add(&mut self.by_bmc, b.clone(), name);
        }
        self.entries.insert(name.to_string(), keys);
    }

    /// Removes a server.
    pub fn remove(&mut self, name: &str) {
        let Some(keys) = self.entries.remove(name) else {
            return;
        };
        for m in &keys.macs {
            del(&mut self.by_mac, m, name);
        }
        if let Some(u) = &keys.uuid {
            del(&mut self.by_uuid, u, name);
        }
        for ip in &keys.ips {
            del(&mut self.by_ip, ip, name);
        }
        if let Some(c) = &keys.claim {
            del(&mut self.by_claim, c, name);
        }
        if let Some(b) = &keys.bmc {
            del(&mut self.by_bmc, b, name);
        }
    }

    /// Number of servers indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The server a boot request comes from, if it is known unambiguously (see module docs).
    pub fn identify(&self, q: &Query) -> Option<String> {
        let mac = match &q.mac {
            Some(m) => Some(normalize_mac(m)?),
            None => None,
        };
        let uuid = match &q.uuid {
            Some(u) => Some(normalize_uuid(u)?),
            None => None,
        };
        let by_uuid = uuid.as_ref().and_then(|u| {
            unique(&self.by_uuid, u).or_else(|| {
                let swapped = swap_uuid_endianness(u)?;
                unique(&self.by_uuid, &swapped)
            })
        });
        match (by_uuid, mac) {
            (Some(name), Some(mac)) => {
                let keys = self.entries.get(&name)?;
                // A MAC the server does not have contradicts the UUID; a server whose NICs are
                // not known yet (before discovery) is identified by its UUID alone.
                (keys.macs.is_empty() || keys.macs.contains(&mac)).then_some(name)
            }
            (Some(name), None) => Some(name),
            (None, Some(mac)) => unique(&self.by_mac, &mac),
            (None, None) => None,
        }
    }

    /// The server with this system UUID (exactly one), trying both byte orders.
    pub fn by_uuid(&self, uuid: &str) -> Option<String> {
        self.identify(&Query {
            mac: None,
            uuid: Some(uuid.to_string()),
        })
    }

    /// The server that has this IP (exactly one).
    pub fn by_ip(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        unique(&self.by_ip, &ip)
    }

    /// Servers bound to claim `namespace/name`.
    pub fn by_claim(&self, claim: &str) -> Vec<String> {
        self.by_claim
            .get(claim)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Servers managed by BMC object `bmc`.
    pub fn by_bmc(&self, bmc: &str) -> Vec<String> {
        self.by_bmc
            .get(bmc)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The keys of a server.
    pub fn keys(&self, name: &str) -> Option<&Keys> {
        self.entries.get(name)
    }
}

/// The index shared between the watch stream (writer) and the servers (readers), with the
/// relist protocol of a watcher: a restarted watch builds a fresh index and swaps it in once the
/// listing is complete, so servers deleted while the watch was down disappear.
#[derive(Debug, Default)]
pub struct SharedIndex {
    live: std::sync::RwLock<ServerIndex>,
    building: std::sync::Mutex<Option<ServerIndex>>,
}

impl SharedIndex {
    /// Applies one watch event.
    pub fn apply(&self, event: &Event<Server>) {
        let name = |s: &Server| s.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Apply(s) => self.write().upsert(&name(s), Keys::of(s)),
            Event::Delete(s) => self.write().remove(&name(s)),
            Event::Init => *self.lock_building() = Some(ServerIndex::default()),
            Event::InitApply(s) => {
                if let Some(b) = self.lock_building().as_mut() {
                    b.upsert(&name(s), Keys::of(s));
                }
            }
            Event::InitDone => {
                if let Some(b) = self.lock_building().take() {
                    *self.write() = b;
                }
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ServerIndex> {
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_building(&self) -> std::sync::MutexGuard<'_, Option<ServerIndex>> {
        self.building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` with the current index.
    pub fn read<R>(&self, f: impl FnOnce(&ServerIndex) -> R) -> R {
        let g = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(macs: &[&str], uuid: &str, ips: &[&str]) -> Keys {
        Keys {
            macs: macs.iter().map(|m| normalize_mac(m).unwrap()).collect(),
            uuid: normalize_uuid(uuid),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            claim: None,
            bmc: None,
        }
    }

    const U1: &str = "38947555-7742-3448-3784-823347823834";
    const U2: &str = "00000000-0000-0000-0000-000000000002";

    fn index() -> ServerIndex {
        let mut i = ServerIndex::default();
        i.upsert("a", keys(&["AA:BB:CC:00:00:01"], U1, &["10.0.0.1"]));
        i.upsert("b", keys(&["aa-bb-cc-00-00-02"], U2, &["10.0.0.2"]));
        i
    }

    fn q(mac: Option<&str>, uuid: Option<&str>) -> Query {
        Query {
            mac: mac.map(String::from),
            uuid: uuid.map(String::from),
        }
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize_mac("AA-BB-CC-00-00-0F").as_deref(),
            Some("aa:bb:cc:00:00:0f")
        );
        assert_eq!(
            normalize_mac("aabb.cc00.000f").as_deref(),
            Some("aa:bb:cc:00:00:0f")
        );
        assert_eq!(normalize_mac("nope"), None);
        assert_eq!(
            normalize_uuid("38947555774234483784823347823834").as_deref(),
            Some(U1)
        );
        assert_eq!(
            swap_uuid_endianness(U1).as_deref(),
            Some("55759438-4277-4834-3784-823347823834")
        );
    }

    #[test]
    fn identifies_by_mac_uuid_or_both() {
        let i = index();
        assert_eq!(
            i.identify(&q(Some("aa:bb:cc:00:00:01"), None)).as_deref(),
            Some("a")
        );
        assert_eq!(
            i.identify(&q(None, Some(&U2.to_uppercase()))).as_deref(),
            Some("b")
        );
        assert_eq!(
            i.identify(&q(Some("aa:bb:cc:00:00:02"), Some(U2)))
                .as_deref(),
            Some("b")
        );
        // Byte-swapped UUID from firmware still matches.
        let swapped = swap_uuid_endianness(U1).unwrap();
        assert_eq!(i.identify(&q(None, Some(&swapped))).as_deref(), Some("a"));
    }

    #[test]
    fn contradicting_or_unknown_requests_identify_nothing() {
        let i = index();
        // UUID of a, MAC of b.
        assert_eq!(i.identify(&q(Some("aa:bb:cc:00:00:02"), Some(U1))), None);
        assert_eq!(i.identify(&q(Some("aa:bb:cc:00:00:99"), None)), None);
        assert_eq!(
            i.identify(&q(None, Some("11111111-1111-1111-1111-111111111111"))),
            None
        );
        assert_eq!(i.identify(&q(Some("garbage"), Some(U1))), None);
        assert_eq!(i.identify(&q(None, None)), None);
    }

    #[test]
    fn server_without_known_nics_is_identified_by_uuid() {
        let mut i = index();
        i.upsert("c", keys(&[], "00000000-0000-0000-0000-00000000000c", &[]));
        assert_eq!(
            i.identify(&q(
                Some("aa:bb:cc:00:00:0c"),
                Some("00000000-0000-0000-0000-00000000000c")
            ))
            .as_deref(),
            Some("c")
        );
    }

    #[test]
    fn shared_keys_are_ambiguous() {
        let mut i = index();
        i.upsert("dup", keys(&["aa:bb:cc:00:00:01"], U2, &["10.0.0.1"]));
        assert_eq!(i.identify(&q(Some("aa:bb:cc:00:00:01"), None)), None);
        assert_eq!(i.identify(&q(None, Some(U2))), None);
        assert_eq!(i.by_ip("10.0.0.1".parse().unwrap()), None);
        i.remove("dup");
        assert_eq!(i.by_ip("10.0.0.1".parse().unwrap()).as_deref(), Some("a"));
        assert_eq!(i.identify(&q(None, Some(U2))).as_deref(), Some("b"));
    }

    #[test]
    fn ipv4_mapped_ipv6_source_matches() {
        let i = index();
        assert_eq!(
            i.by_ip("::ffff:10.0.0.2".parse().unwrap()).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn relist_swaps_in_a_fresh_index() {
        let shared = SharedIndex::default();
        let mk = |name: &str, uuid: &str| -> Server {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
                "metadata": { "name": name },
                "spec": { "systemUUID": uuid }
            }))
            .unwrap()
        };
        shared.apply(&Event::Apply(mk("a", U1)));
        shared.apply(&Event::Init);
        shared.apply(&Event::InitApply(mk("b", U2)));
        // Until the listing is done the old index serves.
        assert_eq!(shared.read(|i| i.by_uuid(U1)).as_deref(), Some("a"));
        shared.apply(&Event::InitDone);
        assert_eq!(shared.read(|i| i.by_uuid(U1)), None);
        assert_eq!(shared.read(|i| i.by_uuid(U2)).as_deref(), Some("b"));
    }
}
