//! What a ServerMaintenance needs next (pure: no I/O, unit-tested without a client).
//!
//! A server is held by at most one ServerMaintenance, named in `spec.serverMaintenanceRef`.
//! Taking a server is two compare-and-swap writes: the reference first, then `status.state` →
//! `Maintenance`; handing it back reverses them (state first, then the reference). While the
//! reference is set, reservation never binds the server, so the gap between the writes is safe.
//!
//! Maintenances of one server queue in this order: higher `priority` first, then `Enforced`
//! before `OwnerApproval`, then older first, then by namespace and name.

use api::common::ServerMaintenancePolicy;
use api::constants::{MAINTENANCE_APPROVED_LABEL, MAINTENANCE_NEEDED_LABEL};
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use api::servermaintenance::ServerMaintenance;
use kube::ResourceExt as _;
use std::cmp::Ordering;

/// Condition type on a ServerMaintenance: whether it holds its server, and if not, why.
pub const CONDITION: &str = "Maintenance";

/// Reasons of the [`CONDITION`] condition.
pub mod reasons {
    /// The server named in `serverRef` does not exist.
    pub const SERVER_NOT_FOUND: &str = "ServerNotFound";
    /// Another maintenance of the same server comes first.
    pub const QUEUED: &str = "Queued";
    /// The server is in a state maintenance cannot take it from (yet).
    pub const SERVER_NOT_AVAILABLE: &str = "ServerNotAvailable";
    /// The claim owner has not approved yet.
    pub const WAITING_FOR_APPROVAL: &str = "WaitingForApproval";
    /// The server's claim is not in the cache (yet).
    pub const CLAIM_NOT_FOUND: &str = "ClaimNotFound";
    /// The server is in maintenance for this object.
    pub const IN_MAINTENANCE: &str = "InMaintenance";
}

/// Namespace and name of a ServerMaintenance.
pub type Key = (String, String);

/// The key of `sm`.
pub fn key(sm: &ServerMaintenance) -> Key {
    (sm.namespace().unwrap_or_default(), sm.name_any())
}

/// Why a maintenance is not (yet) holding its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// CamelCase reason (see [`reasons`]).
    pub reason: &'static str,
    /// What the user would want to know.
    pub message: String,
}

/// The next step of one ServerMaintenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do but wait; status `Pending` with this reason.
    Wait(Waiting),
    /// Label the server's claim `maintenance-needed`, then wait for the owner's approval.
    RequestApproval,
    /// Point `spec.serverMaintenanceRef` at this maintenance (compare-and-swap).
    TakeRef,
    /// Move the server to `Maintenance` (compare-and-swap).
    Enter,
    /// The server is ours: hold it (power, LED) and report `InMaintenance`.
    Hold,
    /// Deleting: move the server back to this state (compare-and-swap).
    HandBack(ServerState),
    /// Deleting: clear `spec.serverMaintenanceRef` (compare-and-swap).
    ReleaseRef,
    /// Deleting and the server is no longer ours: drop the claim label, remove the finalizer.
    Finish,
}

fn policy(sm: &ServerMaintenance) -> ServerMaintenancePolicy {
    sm.spec
        .policy
        .unwrap_or(ServerMaintenancePolicy::OwnerApproval)
}

/// Queue order of two maintenances of the same server (`Less` = goes first).
pub fn queue_order(a: &ServerMaintenance, b: &ServerMaintenance) -> Ordering {
    let prio = |s: &ServerMaintenance| s.spec.priority.unwrap_or(0);
    let enforced = |s: &ServerMaintenance| policy(s) == ServerMaintenancePolicy::Enforced;
    let created = |s: &ServerMaintenance| s.metadata.creation_timestamp.clone().map(|t| t.0);
    prio(b)
        .cmp(&prio(a))
        .then_with(|| enforced(b).cmp(&enforced(a)))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| key(a).cmp(&key(b)))
}

/// The maintenance that may take the server next among `queue` (deleting ones excluded).
pub fn head<'a>(queue: &[&'a ServerMaintenance]) -> Option<&'a ServerMaintenance> {
    queue
        .iter()
        .copied()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .min_by(|a, b| queue_order(a, b))
}

/// Whether the claim owner approved maintenance (label `maintenance-approved: "true"`).
pub fn approved(claim: &ServerClaim) -> bool {
    claim
        .labels()
        .get(MAINTENANCE_APPROVED_LABEL)
        .is_some_and(|v| v == "true")
}

/// Whether the claim already carries the `maintenance-needed` label.
pub fn approval_requested(claim: &ServerClaim) -> bool {
    claim
        .labels()
        .get(MAINTENANCE_NEEDED_LABEL)
        .is_some_and(|v| v == "true")
}

/// The state a server returns to when maintenance ends: `Reserved` while it is bound to a
/// claim, `Available` otherwise.
pub fn hand_back_state(server: &Server) -> ServerState {
    if server.spec.server_claim_ref.is_some() {
        ServerState::Reserved
    } else {
        ServerState::Available
    }
}

fn holder(server: &Server) -> Option<Key> {
    server
        .spec
        .server_maintenance_ref
        .as_ref()
        .map(|r| (r.namespace.clone(), r.name.clone()))
}

/// Whether `server` is held by the maintenance `key` and in state `Maintenance`: the condition
/// under which maintenance may cause side effects on its BMC for that maintenance.
pub fn holds(server: &Server, key: &Key) -> bool {
    holder(server).as_ref() == Some(key) && server.state() == Some(ServerState::Maintenance)
}

/// The next step for `sm`. `queue` holds every maintenance naming the same server (`sm`
/// included); `claim` is the server's claim from the cache, if it is there.
pub fn next(
    sm: &ServerMaintenance,
    server: Option<&Server>,
    claim: Option<&ServerClaim>,
    queue: &[&ServerMaintenance],
) -> Step {
    let me = key(sm);
    let Some(server) = server else {
        if sm.metadata.deletion_timestamp.is_some() {
            return Step::Finish;
        }
        return Step::Wait(Waiting {
            reason: reasons::SERVER_NOT_FOUND,
            message: format!("server {} does not exist", sm.spec.server_ref.name),
        });
    };
    let state = server.state();
    let held_by = holder(server);

    if sm.metadata.deletion_timestamp.is_some() {
        return match (held_by == Some(me), state) {
            (true, Some(ServerState::Maintenance)) => Step::HandBack(hand_back_state(server)),
            (true, _) => Step::ReleaseRef,
            (false, _) => Step::Finish,
        };
    }

    match held_by {
        Some(k) if k == me => {
            return match state {
                Some(ServerState::Maintenance) => Step::Hold,
                Some(ServerState::Available | ServerState::Reserved) => Step::Enter,
                other => Step::Wait(Waiting {
                    reason: reasons::SERVER_NOT_AVAILABLE,
                    message: format!(
                        "server is {}; maintenance resumes when it is Available or Reserved",
                        other.map_or("without state".to_string(), |s| s.to_string())
                    ),
                }),
            };
        }
        Some(other) if queue.iter().any(|s| key(s) == other) => {
            return Step::Wait(Waiting {
                reason: reasons::QUEUED,
                message: format!(
                    "server is in maintenance {}/{}; this one follows",
                    other.0, other.1
                ),
            });
        }
        // Free, or held by a maintenance that no longer exists (its reference is stale).
        _ => {}
    }

    if let Some(first) = head(queue)
        && key(first) != me
    {
        return Step::Wait(Waiting {
            reason: reasons::QUEUED,
            message: format!(
                "maintenance {}/{} of the same server goes first",
                first.namespace().unwrap_or_default(),
                first.name_any()
            ),
        });
    }

    match state {
        Some(ServerState::Available | ServerState::Maintenance) => Step::TakeRef,
        Some(ServerState::Reserved) => {
            if policy(sm) == ServerMaintenancePolicy::Enforced {
                return Step::TakeRef;
            }
            let Some(claim) = claim else {
                return Step::Wait(Waiting {
                    reason: reasons::CLAIM_NOT_FOUND,
                    message: "the server's claim is not known yet; approval is asked on it"
                        .to_string(),
                });
            };
            if approved(claim) {
                Step::TakeRef
            } else if approval_requested(claim) {
                Step::Wait(Waiting {
                    reason: reasons::WAITING_FOR_APPROVAL,
                    message: format!(
                        "waiting for the owner of claim {}/{} to label it {MAINTENANCE_APPROVED_LABEL}=true",
                        claim.namespace().unwrap_or_default(),
                        claim.name_any()
                    ),
                })
            } else {
                Step::RequestApproval
            }
        }
        other => Step::Wait(Waiting {
            reason: reasons::SERVER_NOT_AVAILABLE,
            message: format!(
                "server is {}; maintenance starts when it is Available or Reserved",
                other.map_or("without state".to_string(), |s| s.to_string())
            ),
        }),
    }
}

/// Whether any maintenance in `queue` other than `me` still wants the server (so the claim
/// keeps its `maintenance-needed` label).
pub fn others_pending(me: &Key, queue: &[&ServerMaintenance]) -> bool {
    queue
        .iter()
        .any(|s| key(s) != *me && s.metadata.deletion_timestamp.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn sm(name: &str, policy: &str, priority: i32, age_s: i64) -> ServerMaintenance {
        let created = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_s).unwrap();
        let mut s: ServerMaintenance = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerMaintenance",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "serverRef": { "name": "s1" }, "policy": policy, "priority": priority }
        }))
        .unwrap();
        s.metadata.creation_timestamp = Some(Time(created));
        s
    }

    fn server(state: &str, claimed: bool, holder: Option<&str>) -> Server {
        let mut spec = json!({ "systemUUID": "u" });
        if claimed {
            spec["serverClaimRef"] = json!({ "namespace": "t", "name": "c" });
        }
        if let Some(h) = holder {
            spec["serverMaintenanceRef"] = json!({ "namespace": "ns", "name": h });
        }
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": { "name": "s1" }, "spec": spec, "status": { "state": state }
        }))
        .unwrap()
    }

    fn claim(labels: &[(&str, &str)]) -> ServerClaim {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerClaim",
            "metadata": { "name": "c", "namespace": "t", "labels": labels },
            "spec": { "power": "On", "image": "img" }
        }))
        .unwrap()
    }

    fn deleting(mut s: ServerMaintenance) -> ServerMaintenance {
        s.metadata.deletion_timestamp = s.metadata.creation_timestamp.clone();
        s
    }

    #[test]
    fn queue_orders_by_priority_then_enforced_then_age_then_name() {
        let low_old = sm("a", "Enforced", 0, 100);
        let high_new = sm("b", "OwnerApproval", 5, 1);
        let enforced_new = sm("c", "Enforced", 5, 1);
        let approval_old = sm("d", "OwnerApproval", 5, 50);
        let all = [&low_old, &high_new, &enforced_new, &approval_old];
        let mut sorted = all.to_vec();
        sorted.sort_by(|a, b| queue_order(a, b));
        let names: Vec<_> = sorted.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["c", "d", "b", "a"]);
        assert_eq!(head(&all).unwrap().name_any(), "c");
        let gone = deleting(enforced_new.clone());
        assert_eq!(
            head(&[&low_old, &gone, &approval_old]).unwrap().name_any(),
            "d"
        );
    }

    #[test]
    fn available_server_is_taken_then_entered_then_held() {
        let m = sm("m", "OwnerApproval", 0, 1);
        let q = [&m];
        assert_eq!(
            next(&m, Some(&server("Available", false, None)), None, &q),
            Step::TakeRef
        );
        assert_eq!(
            next(&m, Some(&server("Available", false, Some("m"))), None, &q),
            Step::Enter
        );
        assert_eq!(
            next(&m, Some(&server("Maintenance", false, Some("m"))), None, &q),
            Step::Hold
        );
    }

    #[test]
    fn claimed_server_needs_approval_unless_enforced() {
        let m = sm("m", "OwnerApproval", 0, 1);
        let s = server("Reserved", true, None);
        assert_eq!(
            next(&m, Some(&s), Some(&claim(&[])), &[&m]),
            Step::RequestApproval
        );
        let asked = claim(&[(MAINTENANCE_NEEDED_LABEL, "true")]);
        assert!(matches!(
            next(&m, Some(&s), Some(&asked), &[&m]),
            Step::Wait(Waiting {
                reason: reasons::WAITING_FOR_APPROVAL,
                ..
            })
        ));
        let ok = claim(&[
            (MAINTENANCE_NEEDED_LABEL, "true"),
            (MAINTENANCE_APPROVED_LABEL, "true"),
        ]);
        assert_eq!(next(&m, Some(&s), Some(&ok), &[&m]), Step::TakeRef);
        assert!(matches!(
            next(&m, Some(&s), None, &[&m]),
            Step::Wait(Waiting {
                reason: reasons::CLAIM_NOT_FOUND,
                ..
            })
        ));
        let e = sm("e", "Enforced", 0, 1);
        assert_eq!(next(&e, Some(&s), None, &[&e]), Step::TakeRef);
    }

    #[test]
    fn other_states_and_missing_server_wait() {
        let m = sm("m", "Enforced", 0, 1);
        for state in ["Initial", "Discovery", "Released", "Error"] {
            assert!(
                matches!(
                    next(&m, Some(&server(state, false, None)), None, &[&m]),
                    Step::Wait(Waiting {
                        reason: reasons::SERVER_NOT_AVAILABLE,
                        ..
                    })
                ),
                "{state}"
            );
        }
        assert!(matches!(
            next(&m, None, None, &[&m]),
            Step::Wait(Waiting {
                reason: reasons::SERVER_NOT_FOUND,
                ..
            })
        ));
        assert_eq!(next(&deleting(m), None, None, &[]), Step::Finish);
    }

    #[test]
    fn second_maintenance_waits_for_the_holder_and_the_head() {
        let first = sm("first", "OwnerApproval", 0, 10);
        let second = sm("second", "Enforced", 0, 1);
        let held = server("Maintenance", false, Some("first"));
        assert!(matches!(
            next(&second, Some(&held), None, &[&first, &second]),
            Step::Wait(Waiting {
                reason: reasons::QUEUED,
                ..
            })
        ));
        // Free server: the enforced one is the head even though it is newer.
        let free = server("Available", false, None);
        assert_eq!(
            next(&second, Some(&free), None, &[&first, &second]),
            Step::TakeRef
        );
        assert!(matches!(
            next(&first, Some(&free), None, &[&first, &second]),
            Step::Wait(Waiting {
                reason: reasons::QUEUED,
                ..
            })
        ));
        // A reference to a maintenance that no longer exists is stale and taken over.
        let stale = server("Maintenance", false, Some("gone"));
        assert_eq!(
            next(&second, Some(&stale), None, &[&first, &second]),
            Step::TakeRef
        );
    }

    #[test]
    fn deletion_hands_back_then_releases_then_finishes() {
        let m = deleting(sm("m", "Enforced", 0, 1));
        assert_eq!(
            next(
                &m,
                Some(&server("Maintenance", true, Some("m"))),
                None,
                &[&m]
            ),
            Step::HandBack(ServerState::Reserved)
        );
        assert_eq!(
            next(
                &m,
                Some(&server("Maintenance", false, Some("m"))),
                None,
                &[&m]
            ),
            Step::HandBack(ServerState::Available)
        );
        assert_eq!(
            next(
                &m,
                Some(&server("Available", false, Some("m"))),
                None,
                &[&m]
            ),
            Step::ReleaseRef
        );
        assert_eq!(
            next(&m, Some(&server("Available", false, None)), None, &[&m]),
            Step::Finish
        );
        assert_eq!(
            next(
                &m,
                Some(&server("Maintenance", false, Some("x"))),
                None,
                &[&m]
            ),
            Step::Finish
        );
    }

    #[test]
    fn holds_needs_both_reference_and_state() {
        let k = ("ns".to_string(), "m".to_string());
        assert!(holds(&server("Maintenance", false, Some("m")), &k));
        assert!(!holds(&server("Available", false, Some("m")), &k));
        assert!(!holds(&server("Maintenance", false, Some("x")), &k));
        let m = sm("m", "Enforced", 0, 1);
        let o = sm("o", "Enforced", 0, 1);
        assert!(others_pending(&k, &[&m, &o]));
        assert!(!others_pending(&k, &[&m, &deleting(o)]));
    }
}
