//! Which servers a claim may bind, which one it binds, and why a claim stays unbound.
//!
//! Pure logic over cached objects (no I/O), so every rule is unit-tested without a client. The
//! API write with a `resourceVersion` precondition stays the real guard against races; this
//! module only decides what to try.
//!
//! A server is a *candidate* for a claim when it matches the claim's target (name and/or
//! selector) and passes [`check_server`]:
//!
//! 1. not claimed by another claim (`spec.serverClaimRef`, or an in-process hold, or a state that
//!    only bound servers have: `Reserved`, `Released`);
//! 2. `status.state` is `Available`;
//! 3. not cordoned (`spec.unclaimable`);
//! 4. `status.powerState` is `Off`;
//! 5. every `NoBind` taint is tolerated by one of the claim's tolerations (Kubernetes semantics:
//!    keys equal; `Exists` ignores the value, `Equal` (or unset) compares it; an unset toleration
//!    effect tolerates every effect). `Evict` taints are reserved upstream and do not block.

use api::common::{TaintEffect, Toleration};
use api::server::{Server, ServerPowerState, ServerState};
use api::serverclaim::ServerClaim;
use api::{common::Taint, constants::reasons};
use kube::ResourceExt as _;
use kube::core::{Selector, SelectorExt as _};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Namespace and name of a claim: the identity written into `Server.spec.serverClaimRef`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey {
    /// Namespace of the claim.
    pub namespace: String,
    /// Name of the claim.
    pub name: String,
}

impl ClaimKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of `claim`.
    pub fn of(claim: &ServerClaim) -> Self {
        Self::new(claim.namespace().unwrap_or_default(), claim.name_any())
    }

    /// The claim `server` is bound to, if any.
    pub fn bound_to(server: &Server) -> Option<Self> {
        server
            .spec
            .server_claim_ref
            .as_ref()
            .map(|r| Self::new(r.namespace.clone(), r.name.clone()))
    }

    /// Whether `server` references this claim.
    pub fn is_bound_to(&self, server: &Server) -> bool {
        server
            .spec
            .server_claim_ref
            .as_ref()
            .is_some_and(|r| r.namespace == self.namespace && r.name == self.name)
    }
}

impl fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The claim's `spec.serverSelector` could not be turned into a label selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid serverSelector: {0}")]
pub struct InvalidSelector(pub String);

/// Which servers a claim asks for.
#[derive(Debug, Clone)]
pub enum Target {
    /// `spec.serverRef` names the server; a selector, when also given, must match it too.
    Named {
        /// The server's name.
        name: String,
        /// The claim's selector, if any.
        selector: Option<Selector>,
    },
    /// Any server matching the selector.
    Selected(Selector),
    /// Neither reference nor selector: any server (upstream's "best effort").
    Any,
}

impl Target {
    /// The target of `claim`.
    pub fn of(claim: &ServerClaim) -> Result<Self, InvalidSelector> {
        let selector = claim
            .spec
            .server_selector
            .clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|e| InvalidSelector(e.0))?;
        Ok(match (&claim.spec.server_ref, selector) {
            (Some(r), selector) => Target::Named {
                name: r.name.clone(),
                selector,
            },
            (None, Some(selector)) => Target::Selected(selector),
            (None, None) => Target::Any,
        })
    }

    /// Whether `server` is what the claim asks for (ignoring claimability).
    pub fn matches(&self, server: &Server) -> bool {
        match self {
            Target::Named { name, selector } => {
                server.name_any() == *name
                    && selector.as_ref().is_none_or(|s| s.matches(server.labels()))
            }
            Target::Selected(selector) => selector.matches(server.labels()),
            Target::Any => true,
        }
    }
}

/// Why a matching server cannot be bound to a claim right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// Bound to, held for, or still in use by another claim (`None` when only the state says so).
    Taken {
        /// The claim holding it, when known.
        by: Option<ClaimKey>,
    },
    /// `status.state` is not `Available`.
    NotAvailable {
        /// The state it is in.
        state: Option<ServerState>,
    },
    /// Cordoned (`spec.unclaimable: true`).
    Cordoned,
    /// Held by a ServerMaintenance (`spec.serverMaintenanceRef`), possibly between its two
    /// writes into `Maintenance`.
    InMaintenance,
    /// `status.powerState` is not `Off` (provisioning has not confirmed power off).
    PoweredOn {
        /// The reported power state.
        power: Option<ServerPowerState>,
    },
    /// Carries `NoBind` taints the claim does not tolerate.
    NotTolerated {
        /// The taints, formatted `key=value:Effect`.
        taints: Vec<String>,
    },
}

/// Formats a taint as `kubectl` does: `key=value:Effect` (or `key:Effect` without a value).
pub fn format_taint(t: &Taint) -> String {
    match t.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={}:{}", t.key, v, t.effect()),
        _ => format!("{}:{}", t.key, t.effect()),
    }
}

/// The `NoBind` taints in `taints` that no toleration in `tolerations` tolerates.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Vec<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect() == TaintEffect::NoBind)
        .filter(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
        .collect()
}

/// Whether `server` can be bound to `claim` now. `holder` is the claim holding the server in this
/// process (see [`crate::holds`]), if any.
pub fn check_server(
    server: &Server,
    claim: &ClaimKey,
    tolerations: &[Toleration],
    holder: Option<&ClaimKey>,
) -> Result<(), Blocker> {
    if let Some(other) = ClaimKey::bound_to(server).filter(|c| c != claim) {
        return Err(Blocker::Taken { by: Some(other) });
    }
    if let Some(other) = holder.filter(|c| *c != claim) {
        return Err(Blocker::Taken {
            by: Some(other.clone()),
        });
    }
    let state = server.state();
    if matches!(state, Some(ServerState::Reserved | ServerState::Released))
        && !claim.is_bound_to(server)
    {
        return Err(Blocker::Taken { by: None });
    }
    if state != Some(ServerState::Available) {
        return Err(Blocker::NotAvailable { state });
    }
    if server.is_unclaimable() {
        return Err(Blocker::Cordoned);
    }
    if server.spec.server_maintenance_ref.is_some() {
        return Err(Blocker::InMaintenance);
    }
    let power = server.status.as_ref().and_then(|s| s.power_state);
    if power != Some(ServerPowerState::Off) {
        return Err(Blocker::PoweredOn { power });
    }
    let taints = untolerated(&server.spec.taints, tolerations);
    if !taints.is_empty() {
        return Err(Blocker::NotTolerated {
            taints: taints.into_iter().map(format_taint).collect(),
        });
    }
    Ok(())
}

/// The servers a claim's target matches, split into candidates and blocked ones.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// How many servers match the target.
    pub matched: usize,
    /// Matching servers that can be bound now, in the order they were seen.
    pub candidates: Vec<Arc<Server>>,
    /// Matching servers that cannot, by name, with the reason.
    pub blocked: Vec<(String, Blocker)>,
    /// For a named target: the server exists but does not match the claim's selector.
    pub selector_mismatch: bool,
}

/// Evaluates `servers` against the claim `key` with `tolerations` and `target`. `holder` answers
/// which claim holds a server in this process; `skip` names servers known to be taken although
/// the cache does not show it yet (they lost a race in this reconcile).
pub fn evaluate<'a>(
    key: &ClaimKey,
    tolerations: &[Toleration],
    target: &Target,
    servers: impl IntoIterator<Item = &'a Arc<Server>>,
    holder: impl Fn(&str) -> Option<ClaimKey>,
    skip: impl Fn(&str) -> bool,
) -> Evaluation {
    let mut eval = Evaluation::default();
    for server in servers {
        let name = server.name_any();
        if let Target::Named { name: want, .. } = target
            && name != *want
        {
            continue;
        }
        if !target.matches(server) {
            eval.selector_mismatch = true;
            continue;
        }
        eval.matched += 1;
        if skip(&name) {
            // Lost a race for it in this reconcile: the cache has not caught up yet.
            eval.blocked.push((name, Blocker::Taken { by: None }));
            continue;
        }
        match check_server(server, key, tolerations, holder(&name).as_ref()) {
            Ok(()) => eval.candidates.push(server.clone()),
            Err(b) => eval.blocked.push((name, b)),
        }
    }
    eval
}

/// Orders candidates; the controller tries them in this order. The seam for scoring (bin-packing,
/// spreading over racks, preferring smaller machines) without touching the binding protocol.
pub trait Strategy: Send + Sync + fmt::Debug {
    /// Sorts `candidates` for `claim`, best first. Must be deterministic for equal input.
    fn order(&self, claim: &ServerClaim, candidates: &mut [Arc<Server>]);
}

/// First fit by server name: candidates are tried in lexicographic name order. Deterministic and
/// cheap; upstream takes the first match in list order, which is not stable.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstFit;

impl Strategy for FirstFit {
    fn order(&self, _claim: &ServerClaim, candidates: &mut [Arc<Server>]) {
        candidates.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
}

/// Why a claim is unbound: the `Bound=False` condition's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbound {
    /// One of the `api::constants::reasons` claim reasons.
    pub reason: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn is_are(n: usize) -> &'static str {
    if n == 1 { "is" } else { "are" }
}

/// Explains why a claim whose evaluation has no candidates is unbound.
pub fn summarize(target: &Target, eval: &Evaluation) -> Unbound {
    if let Target::Named { name, .. } = target {
        return summarize_named(name, eval);
    }
    let what = match target {
        Target::Selected(_) => "match the selector",
        _ => "exist (the claim has no serverRef and no serverSelector)",
    };
    if eval.matched == 0 {
        return Unbound {
            reason: reasons::NO_MATCHING_SERVER,
            message: match target {
                Target::Selected(s) => format!("no server matches the selector {s}"),
                _ => "no servers exist".to_string(),
            },
        };
    }
    let mut taken = 0;
    let mut cordoned = 0;
    let mut in_maintenance = 0;
    let mut powered = 0;
    let mut untolerated_servers = 0;
    let mut untolerated_taints: Vec<String> = Vec::new();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for (_, b) in &eval.blocked {
        match b {
            Blocker::Taken { .. } => taken += 1,
            Blocker::Cordoned => cordoned += 1,
            Blocker::InMaintenance => in_maintenance += 1,
            Blocker::PoweredOn { .. } => powered += 1,
            Blocker::NotAvailable { state } => {
                *states
                    .entry(state.map_or("(none)".to_string(), |s| s.to_string()))
                    .or_default() += 1
            }
            Blocker::NotTolerated { taints } => {
                untolerated_servers += 1;
                for t in taints {
                    if !untolerated_taints.contains(t) {
                        untolerated_taints.push(t.clone());
                    }
                }
            }
        }
    }
    let mut parts = Vec::new();
    if taken > 0 {
        parts.push(format!("{taken} {} claimed", is_are(taken)));
    }
    for (state, n) in &states {
        parts.push(format!("{n} {} in state {state}", is_are(*n)));
    }
    if cordoned > 0 {
        parts.push(format!("{cordoned} {} cordoned", is_are(cordoned)));
    }
    if in_maintenance > 0 {
        parts.push(format!(
            "{in_maintenance} {} held by a maintenance",
            is_are(in_maintenance)
        ));
    }
    if powered > 0 {
        parts.push(format!("{powered} {} not powered off", is_are(powered)));
    }
    if untolerated_servers > 0 {
        untolerated_taints.sort();
        let shown: Vec<&str> = untolerated_taints
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        let more = untolerated_taints.len().saturating_sub(3);
        parts.push(format!(
            "{untolerated_servers} {} untolerated taints ({}{})",
            if untolerated_servers == 1 {
                "has"
            } else {
                "have"
            },
            shown.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        ));
    }
    let n = eval.matched;
    let head = format!(
        "{} {}",
        plural(n, "server", "servers"),
        if n == 1 {
            what.replacen("match", "matches", 1)
                .replacen("exist", "exists", 1)
        } else {
            what.to_string()
        }
    );
    let reason = if untolerated_servers > 0 {
        reasons::NOT_TOLERATED
    } else if cordoned + powered + states.values().sum::<usize>() > 0 {
        reasons::SERVER_NOT_AVAILABLE
    } else {
        reasons::ALL_MATCHING_SERVERS_TAKEN
    };
    Unbound {
        reason,
        message: format!("{head}; {}", parts.join(", ")),
    }
}

fn summarize_named(name: &str, eval: &Evaluation) -> Unbound {
    if eval.selector_mismatch {
        return Unbound {
            reason: reasons::NO_MATCHING_SERVER,
            message: format!("server {name} does not match the claim's serverSelector"),
        };
    }
    let Some((_, blocker)) = eval.blocked.first() else {
        return Unbound {
            reason: reasons::SERVER_NOT_FOUND,
            message: format!("server {name} does not exist"),
        };
    };
    let (reason, message) = match blocker {
        Blocker::Taken { by: Some(c) } => (
            reasons::ALL_MATCHING_SERVERS_TAKEN,
            format!("server {name} is claimed by {c}"),
        ),
        Blocker::Taken { by: None } => (
            reasons::ALL_MATCHING_SERVERS_TAKEN,
            format!("server {name} is still in use by another claim"),
        ),
        Blocker::NotAvailable { state } => (
            reasons::SERVER_NOT_AVAILABLE,
            format!(
                "server {name} is in state {}, not Available",
                state.map_or("(none)".to_string(), |s| s.to_string())
            ),
        ),
        Blocker::InMaintenance => (
            reasons::SERVER_NOT_AVAILABLE,
            format!("server {name} is held by a ServerMaintenance"),
        ),
        Blocker::Cordoned => (
            reasons::SERVER_NOT_AVAILABLE,
            format!("server {name} is cordoned (spec.unclaimable)"),
        ),
        Blocker::PoweredOn { power } => (
            reasons::SERVER_NOT_AVAILABLE,
            format!(
                "server {name} is not powered off (powerState {})",
                power.map_or("unknown".to_string(), |p| p.to_string())
            ),
        ),
        Blocker::NotTolerated { taints } => (
            reasons::NOT_TOLERATED,
            format!(
                "server {name} has taints the claim does not tolerate: {}",
                taints.join(", ")
            ),
        ),
    };
    Unbound { reason, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::common::{ImmutableObjectReference, TolerationOperator};
    use api::server::{ServerSpec, ServerStatus};
    use api::serverclaim::ServerClaimSpec;
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn server(name: &str) -> Server {
        let mut s = Server::new(
            name,
            ServerSpec {
                system_uuid: format!("uuid-{name}"),
                ..Default::default()
            },
        );
        s.status = Some(ServerStatus {
            state: Some(ServerState::Available),
            power_state: Some(ServerPowerState::Off),
            ..Default::default()
        });
        s.metadata.labels = Some([("pool".to_string(), "a".to_string())].into());
        s
    }

    fn claim(server_ref: Option<&str>, selector: Option<LabelSelector>) -> ServerClaim {
        let mut c = ServerClaim::new(
            "c",
            ServerClaimSpec {
                power: api::common::Power::On,
                server_ref: server_ref.map(|n| LocalObjectReference { name: n.into() }),
                server_selector: selector,
                ignition_secret_ref: None,
                user_data_ref: None,
                image: "img".into(),
                tolerations: vec![],
            },
        );
        c.metadata.namespace = Some("ns".into());
        c
    }

    fn sel(k: &str, v: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            ..Default::default()
        }
    }

    fn taint(key: &str, value: Option<&str>, effect: Option<TaintEffect>) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect,
        }
    }

    fn tol(
        key: &str,
        op: Option<TolerationOperator>,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.into(),
            operator: op,
            value: value.map(Into::into),
            effect,
        }
    }

    fn me() -> ClaimKey {
        ClaimKey::new("ns", "c")
    }

    #[test]
    fn available_off_server_is_a_candidate() {
        assert_eq!(check_server(&server("a"), &me(), &[], None), Ok(()));
    }

    #[test]
    fn state_power_cordon_and_claim_ref_block() {
        let mut s = server("a");
        s.status.as_mut().unwrap().state = Some(ServerState::Discovery);
        assert_eq!(
            check_server(&s, &me(), &[], None),
            Err(Blocker::NotAvailable {
                state: Some(ServerState::Discovery)
            })
        );
        let mut s = server("a");
        s.status.as_mut().unwrap().power_state = Some(ServerPowerState::On);
        assert!(matches!(
            check_server(&s, &me(), &[], None),
            Err(Blocker::PoweredOn { .. })
        ));
        let mut s = server("a");
        s.status.as_mut().unwrap().power_state = None;
        assert!(
            matches!(
                check_server(&s, &me(), &[], None),
                Err(Blocker::PoweredOn { power: None })
            ),
            "unknown power is not off"
        );
        let mut s = server("a");
        s.spec.unclaimable = Some(true);
        assert_eq!(check_server(&s, &me(), &[], None), Err(Blocker::Cordoned));
        let mut s = server("a");
        s.spec.server_maintenance_ref = Some(api::common::ObjectReference {
            namespace: "ops".into(),
            name: "bios-a".into(),
        });
        assert_eq!(
            check_server(&s, &me(), &[], None),
            Err(Blocker::InMaintenance)
        );
        let mut s = server("a");
        s.spec.server_claim_ref = Some(ImmutableObjectReference {
            namespace: "ns".into(),
            name: "other".into(),
        });
        assert_eq!(
            check_server(&s, &me(), &[], None),
            Err(Blocker::Taken {
                by: Some(ClaimKey::new("ns", "other"))
            })
        );
        // Our own claimRef is fine.
        s.spec.server_claim_ref = Some(ImmutableObjectReference {
            namespace: "ns".into(),
            name: "c".into(),
        });
        assert_eq!(check_server(&s, &me(), &[], None), Ok(()));
        // Reserved without a claimRef is still in use.
        let mut s = server("a");
        s.status.as_mut().unwrap().state = Some(ServerState::Reserved);
        assert_eq!(
            check_server(&s, &me(), &[], None),
            Err(Blocker::Taken { by: None })
        );
    }

    #[test]
    fn in_process_hold_blocks_other_claims_only() {
        let other = ClaimKey::new("ns", "other");
        assert_eq!(
            check_server(&server("a"), &me(), &[], Some(&other)),
            Err(Blocker::Taken { by: Some(other) })
        );
        assert_eq!(check_server(&server("a"), &me(), &[], Some(&me())), Ok(()));
    }

    #[test]
    fn toleration_semantics() {
        use TaintEffect::*;
        use TolerationOperator::*;
        let t = taint("k", Some("v"), Some(NoBind));
        // Equal needs the same value; unset operator means Equal.
        assert!(
            untolerated(
                std::slice::from_ref(&t),
                &[tol("k", Some(Equal), Some("v"), None)]
            )
            .is_empty()
        );
        assert!(
            untolerated(std::slice::from_ref(&t), &[tol("k", None, Some("v"), None)]).is_empty()
        );
        assert_eq!(
            untolerated(
                std::slice::from_ref(&t),
                &[tol("k", Some(Equal), Some("w"), None)]
            )
            .len(),
            1
        );
        // Exists ignores the value.
        assert!(
            untolerated(
                std::slice::from_ref(&t),
                &[tol("k", Some(Exists), None, None)]
            )
            .is_empty()
        );
        // Different key never matches.
        assert_eq!(
            untolerated(
                std::slice::from_ref(&t),
                &[tol("x", Some(Exists), None, None)]
            )
            .len(),
            1
        );
        // Empty effect tolerates every effect; a set effect must match.
        assert!(
            untolerated(
                std::slice::from_ref(&t),
                &[tol("k", Some(Exists), None, Some(NoBind))]
            )
            .is_empty()
        );
        assert_eq!(
            untolerated(
                std::slice::from_ref(&t),
                &[tol("k", Some(Exists), None, Some(Evict))]
            )
            .len(),
            1
        );
        // A taint without effect defaults to NoBind.
        let t2 = taint("k", None, None);
        assert_eq!(untolerated(std::slice::from_ref(&t2), &[]).len(), 1);
        assert!(untolerated(&[t2], &[tol("k", None, None, Some(NoBind))]).is_empty());
        // Evict taints never block binding (reserved upstream).
        assert!(untolerated(&[taint("k", None, Some(Evict))], &[]).is_empty());
        // Every NoBind taint must be tolerated.
        let two = [taint("a", None, None), taint("b", None, None)];
        assert_eq!(
            untolerated(&two, &[tol("a", Some(Exists), None, None)])
                .iter()
                .map(|t| t.key.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn tainted_server_blocks_with_formatted_taints() {
        let mut s = server("a");
        s.spec.taints = vec![taint("k", Some("v"), None), taint("e", None, None)];
        assert_eq!(
            check_server(&s, &me(), &[], None),
            Err(Blocker::NotTolerated {
                taints: vec!["k=v:NoBind".into(), "e:NoBind".into()]
            })
        );
    }

    #[test]
    fn targets_match_by_name_selector_or_anything() {
        let a = server("a");
        let c = claim(Some("a"), None);
        assert!(Target::of(&c).unwrap().matches(&a));
        assert!(!Target::of(&claim(Some("b"), None)).unwrap().matches(&a));
        assert!(
            !Target::of(&claim(Some("a"), Some(sel("pool", "b"))))
                .unwrap()
                .matches(&a)
        );
        assert!(
            Target::of(&claim(None, Some(sel("pool", "a"))))
                .unwrap()
                .matches(&a)
        );
        assert!(
            !Target::of(&claim(None, Some(sel("pool", "b"))))
                .unwrap()
                .matches(&a)
        );
        assert!(matches!(
            Target::of(&claim(None, None)).unwrap(),
            Target::Any
        ));
        let bad = LabelSelector {
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "k".into(),
                    operator: "Sometimes".into(),
                    values: None,
                },
            ]),
            ..Default::default()
        };
        assert!(Target::of(&claim(None, Some(bad))).is_err());
    }

    fn eval_all(c: &ServerClaim, servers: &[Arc<Server>]) -> Evaluation {
        evaluate(
            &ClaimKey::of(c),
            &c.spec.tolerations,
            &Target::of(c).unwrap(),
            servers,
            |_| None,
            |_| false,
        )
    }

    #[test]
    fn first_fit_is_deterministic_by_name() {
        let servers: Vec<Arc<Server>> = ["c", "a", "b"]
            .into_iter()
            .map(|n| Arc::new(server(n)))
            .collect();
        let c = claim(None, None);
        let mut eval = eval_all(&c, &servers);
        FirstFit.order(&c, &mut eval.candidates);
        let names: Vec<_> = eval.candidates.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let mut reversed: Vec<Arc<Server>> = servers.iter().rev().cloned().collect();
        FirstFit.order(&c, &mut reversed);
        assert_eq!(reversed[0].name_any(), "a");
    }

    #[test]
    fn skip_and_holder_are_applied() {
        let servers: Vec<Arc<Server>> = ["a", "b", "c"]
            .into_iter()
            .map(|n| Arc::new(server(n)))
            .collect();
        let c = claim(None, None);
        let other = ClaimKey::new("ns", "x");
        let eval = evaluate(
            &ClaimKey::of(&c),
            &[],
            &Target::Any,
            &servers,
            |n| (n == "b").then(|| other.clone()),
            |n| n == "a",
        );
        assert_eq!(eval.matched, 3);
        assert_eq!(eval.candidates.len(), 1);
        assert_eq!(eval.candidates[0].name_any(), "c");
        assert_eq!(
            eval.blocked,
            vec![
                ("a".to_string(), Blocker::Taken { by: None }),
                ("b".to_string(), Blocker::Taken { by: Some(other) })
            ]
        );
    }

    #[test]
    fn summary_for_selector_claims() {
        let c = claim(None, Some(sel("pool", "a")));
        // Nothing matches.
        let u = summarize(&Target::of(&c).unwrap(), &eval_all(&c, &[]));
        assert_eq!(u.reason, reasons::NO_MATCHING_SERVER);
        assert_eq!(u.message, "no server matches the selector pool=a");
        // 3 match: 2 claimed, 1 cordoned.
        let mut s1 = server("s1");
        s1.spec.server_claim_ref = Some(ImmutableObjectReference {
            namespace: "ns".into(),
            name: "x".into(),
        });
        let mut s2 = s1.clone();
        s2.metadata.name = Some("s2".into());
        let mut s3 = server("s3");
        s3.spec.unclaimable = Some(true);
        let servers = [s1, s2, s3].map(Arc::new);
        let u = summarize(&Target::of(&c).unwrap(), &eval_all(&c, &servers));
        assert_eq!(u.reason, reasons::SERVER_NOT_AVAILABLE);
        assert_eq!(
            u.message,
            "3 servers match the selector; 2 are claimed, 1 is cordoned"
        );
        // All taken.
        let u = summarize(&Target::of(&c).unwrap(), &eval_all(&c, &servers[..2]));
        assert_eq!(u.reason, reasons::ALL_MATCHING_SERVERS_TAKEN);
        assert_eq!(u.message, "2 servers match the selector; 2 are claimed");
        // A taint wins as the reason: adding a toleration would help.
        let mut s4 = server("s4");
        s4.spec.taints = vec![taint("gpu", Some("broken"), None)];
        let mut s5 = server("s5");
        s5.status.as_mut().unwrap().state = Some(ServerState::Initial);
        let servers = [servers[0].clone(), Arc::new(s4), Arc::new(s5)];
        let u = summarize(&Target::of(&c).unwrap(), &eval_all(&c, &servers));
        assert_eq!(u.reason, reasons::NOT_TOLERATED);
        assert_eq!(
            u.message,
            "3 servers match the selector; 1 is claimed, 1 is in state Initial, 1 has untolerated taints (gpu=broken:NoBind)"
        );
        // One matching, powered on.
        let mut s6 = server("s6");
        s6.status.as_mut().unwrap().power_state = Some(ServerPowerState::On);
        let u = summarize(&Target::of(&c).unwrap(), &eval_all(&c, &[Arc::new(s6)]));
        assert_eq!(
            u.message,
            "1 server matches the selector; 1 is not powered off"
        );
    }

    #[test]
    fn summary_for_named_and_any_claims() {
        let c = claim(Some("a"), None);
        let t = Target::of(&c).unwrap();
        assert_eq!(
            summarize(&t, &eval_all(&c, &[])).reason,
            reasons::SERVER_NOT_FOUND
        );
        let mut a = server("a");
        a.spec.unclaimable = Some(true);
        let u = summarize(&t, &eval_all(&c, &[Arc::new(a)]));
        assert_eq!(u.reason, reasons::SERVER_NOT_AVAILABLE);
        assert_eq!(u.message, "server a is cordoned (spec.unclaimable)");
        let mut a = server("a");
        a.status.as_mut().unwrap().state = Some(ServerState::Discovery);
        let u = summarize(&t, &eval_all(&c, &[Arc::new(a)]));
        assert_eq!(u.message, "server a is in state Discovery, not Available");
        let mut a = server("a");
        a.spec.server_claim_ref = Some(ImmutableObjectReference {
            namespace: "ns".into(),
            name: "x".into(),
        });
        let u = summarize(&t, &eval_all(&c, &[Arc::new(a)]));
        assert_eq!(u.reason, reasons::ALL_MATCHING_SERVERS_TAKEN);
        assert_eq!(u.message, "server a is claimed by ns/x");
        let mut a = server("a");
        a.spec.taints = vec![taint("t", None, None)];
        let u = summarize(&t, &eval_all(&c, &[Arc::new(a)]));
        assert_eq!(u.reason, reasons::NOT_TOLERATED);
        assert_eq!(
            u.message,
            "server a has taints the claim does not tolerate: t:NoBind"
        );
        // Named plus a selector that the server does not satisfy.
        let c = claim(Some("a"), Some(sel("pool", "b")));
        let u = summarize(
            &Target::of(&c).unwrap(),
            &eval_all(&c, &[Arc::new(server("a"))]),
        );
        assert_eq!(u.reason, reasons::NO_MATCHING_SERVER);
        // Any claim, no servers.
        let c = claim(None, None);
        let u = summarize(&Target::Any, &eval_all(&c, &[]));
        assert_eq!(u.reason, reasons::NO_MATCHING_SERVER);
        let mut x = server("x");
        x.spec.unclaimable = Some(true);
        let u = summarize(&Target::Any, &eval_all(&c, &[Arc::new(x)]));
        assert_eq!(
            u.message,
            "1 server exists (the claim has no serverRef and no serverSelector); 1 is cordoned"
        );
    }
}

/// Property tests: for random fleets and claims, the evaluation agrees with a plain reading of
/// the binding rules, whatever order the servers come in.
#[cfg(test)]
mod props {
    use super::Strategy as _;
    use super::{ClaimKey, Evaluation, FirstFit, Target, evaluate};
    use api::common::{TaintEffect, Toleration};
    use api::server::{Server, ServerPowerState, ServerState};
    use api::serverclaim::ServerClaim;
    use kube::ResourceExt as _;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::Arc;

    const STATES: [&str; 8] = [
        "Initial",
        "Discovery",
        "Available",
        "Reserved",
        "Released",
        "Maintenance",
        "Cleaning",
        "Error",
    ];

    /// (state, powered off, cordoned, in maintenance, bound to claim 0..3 (3 = none), rack
    /// label 0..3, taints (key 0..3, effect NoBind/Evict))
    type Facts = (usize, bool, bool, bool, u8, u8, Vec<(u8, bool)>);

    fn server(i: usize, f: &Facts) -> Arc<Server> {
        let (state, off, cordoned, maint, bound, rack, taints) = f;
        let mut spec = json!({
            "systemUUID": format!("u-{i}"),
            "unclaimable": cordoned,
            "taints": taints.iter().map(|(k, no_bind)| json!({
                "key": format!("t{k}"), "value": "x", "effect": if *no_bind { "NoBind" } else { "Evict" },
            })).collect::<Vec<_>>(),
        });
        if *maint {
            spec["serverMaintenanceRef"] = json!({"namespace": "ns", "name": "m"});
        }
        if *bound < 3 {
            spec["serverClaimRef"] = json!({"namespace": "ns", "name": format!("c{bound}")});
        }
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
                "metadata": {"name": format!("s{i:02}"), "labels": {"rack": format!("r{rack}")}},
                "spec": spec,
                "status": {"state": STATES[*state], "powerState": if *off { "Off" } else { "On" }},
            }))
            .unwrap(),
        )
    }

    fn facts() -> impl Strategy<Value = Facts> {
        (
            0..STATES.len(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u8..4,
            0u8..3,
            prop::collection::vec((0u8..3, any::<bool>()), 0..3),
        )
    }

    /// The binding rules, read plainly.
    fn bindable(s: &Server, me: &ClaimKey, tolerations: &[Toleration]) -> bool {
        let st = s.status.as_ref().unwrap();
        let free = ClaimKey::bound_to(s).is_none_or(|c| c == *me);
        free && st.state == Some(ServerState::Available)
            && st.power_state == Some(ServerPowerState::Off)
            && !s.is_unclaimable()
            && s.spec.server_maintenance_ref.is_none()
            && s.spec
                .taints
                .iter()
                .filter(|t| t.effect() == TaintEffect::NoBind)
                .all(|t| tolerations.iter().any(|tol| tol.tolerates(t)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn evaluation_partitions_the_matching_servers_by_the_binding_rules(
            fleet in prop::collection::vec(facts(), 0..24),
            rack in prop::option::of(0u8..3),
            tolerated in prop::collection::vec(0u8..3, 0..3),
        ) {
            let servers: Vec<Arc<Server>> =
                fleet.iter().enumerate().map(|(i, f)| server(i, f)).collect();
            let me = ClaimKey::new("ns", "c0");
            let claim: ServerClaim = serde_json::from_value(json!({
                "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerClaim",
                "metadata": {"namespace": "ns", "name": "c0"},
                "spec": {
                    "power": "On",
                    "image": "os:1",
                    "serverSelector": rack.map(|r| json!({"matchLabels": {"rack": format!("r{r}")}})),
                    "tolerations": tolerated.iter().map(|k| json!({"key": format!("t{k}"), "operator": "Exists"})).collect::<Vec<_>>(),
                },
            }))
            .unwrap();
            let target = Target::of(&claim).unwrap();
            let tolerations = claim.spec.tolerations.clone();
            let eval = evaluate(&me, &tolerations, &target, &servers, |_| None, |_| false);

            let matching: Vec<&Arc<Server>> = servers.iter().filter(|s| target.matches(s)).collect();
            prop_assert_eq!(eval.matched, matching.len());
            prop_assert_eq!(eval.candidates.len() + eval.blocked.len(), eval.matched);
            for c in &eval.candidates {
                prop_assert!(target.matches(c));
                prop_assert!(bindable(c, &me, &tolerations), "{} is no candidate", c.name_any());
            }
            for (name, why) in &eval.blocked {
                let s = servers.iter().find(|s| s.name_any() == *name).unwrap();
                prop_assert!(!bindable(s, &me, &tolerations), "{name} blocked by {why:?}");
            }
            // Whatever order the cache lists them in, the same servers are candidates.
            let mut reversed = servers.clone();
            reversed.reverse();
            let again = evaluate(&me, &tolerations, &target, &reversed, |_| None, |_| false);
            let names = |e: &Evaluation| {
                let mut n: Vec<String> = e.candidates.iter().map(|s| s.name_any()).collect();
                n.sort();
                n
            };
            prop_assert_eq!(names(&eval), names(&again));
            // First fit tries them in name order, deterministically.
            let mut ordered = again.candidates.clone();
            FirstFit.order(&claim, &mut ordered);
            let order: Vec<String> = ordered.iter().map(|s| s.name_any()).collect();
            prop_assert_eq!(order, names(&eval));
        }

        #[test]
        fn a_server_held_for_another_claim_is_never_a_candidate(
            fleet in prop::collection::vec(facts(), 1..12),
            held in 0usize..12,
        ) {
            let servers: Vec<Arc<Server>> =
                fleet.iter().enumerate().map(|(i, f)| server(i, f)).collect();
            let me = ClaimKey::new("ns", "c0");
            let other = ClaimKey::new("ns", "c9");
            let held = servers[held % servers.len()].name_any();
            let eval = evaluate(&me, &[], &Target::Any, &servers, |n| (n == held).then(|| other.clone()), |_| false);
            prop_assert!(eval.candidates.iter().all(|s| s.name_any() != held));
        }
    }
}
