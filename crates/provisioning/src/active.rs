//! Which ServerBootConfiguration is active for a server (pure over the watch caches): the
//! claim's when Reserved, the internal discovery one in Initial / Discovery, none when
//! Available / Released, the maintenance's (`spec.maintenanceBootConfigurationRef`) in
//! Maintenance and Cleaning (the cleaning agent's). The reconcile writes it into `spec.bootConfigurationRef`; the boot
//! server uses the same rule, so it never serves a configuration the reconcile would not point
//! at, and needs no write before a boot can start.

use std::sync::Arc;

use api::common::ObjectReference;
use api::constants::{TYPE_ANNOTATION, TYPE_INTERNAL};
use api::server::{Server, ServerState};
use api::serverbootconfiguration::ServerBootConfiguration;
use api::serverclaim::ServerClaim;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::decide::ClaimView;
use crate::stores::Stores;

/// The claim view from the cache only (the boot server never calls the API for this).
pub fn claim_view_cached(
    stores: &Stores,
    server: &Server,
) -> (ClaimView, Option<Arc<ServerClaim>>) {
    let Some(r) = &server.spec.server_claim_ref else {
        return (ClaimView::Unclaimed, None);
    };
    match stores
        .claims
        .get(&ObjectRef::new(&r.name).within(&r.namespace))
    {
        None => (ClaimView::Gone, None),
        Some(c) if c.metadata.deletion_timestamp.is_some() => (ClaimView::Deleting, Some(c)),
        Some(c) => (ClaimView::Active(c.spec.power), Some(c)),
    }
}

/// The active configuration of `server`: the desired reference where provisioning decides it,
/// else (states it leaves alone) `spec.bootConfigurationRef`.
pub fn active_boot_configuration(stores: &Stores, server: &Server) -> Option<ObjectReference> {
    if matches!(
        server.state(),
        Some(ServerState::Maintenance | ServerState::Cleaning)
    ) {
        // Maintenance boots (and powers) the server into its own configuration, if any (a
        // maintenance's, or the cleaning agent's); the claim's configuration is not served
        // while the server is out of its owner's hands.
        return server.spec.maintenance_boot_configuration_ref.clone();
    }
    let (view, claim) = claim_view_cached(stores, server);
    match desired_boot_ref(stores, server, view, claim.as_deref()) {
        Some(desired) => desired,
        None => server.spec.boot_configuration_ref.clone(),
    }
}

/// The configuration the boot server serves `server` right now (caches only): its active
/// configuration, naming it, and Ready. A network boot is started only when this is the claim's
/// configuration, so the machine never asks before this process's caches can answer it.
pub fn served_configuration(
    stores: &Stores,
    server: &Server,
) -> Option<Arc<ServerBootConfiguration>> {
    let r = active_boot_configuration(stores, server)?;
    let sbc = stores
        .sbcs
        .get(&ObjectRef::new(&r.name).within(&r.namespace))?;
    (sbc.spec.server_ref.name == server.name_any() && crate::status::sbc_ready(&sbc)).then_some(sbc)
}

/// The claim's ServerBootConfiguration (named after the claim, in its namespace, naming this
/// server).
pub fn claim_sbc(
    stores: &Stores,
    server: &str,
    claim: &ServerClaim,
) -> Option<Arc<ServerBootConfiguration>> {
    stores
        .sbcs
        .get(&ObjectRef::new(&claim.name_any()).within(&claim.namespace().unwrap_or_default()))
        .filter(|s| s.spec.server_ref.name == server)
}

/// Whether a configuration is controller-internal (discovery's).
pub fn is_internal(sbc: &ServerBootConfiguration) -> bool {
    sbc.annotations()
        .get(TYPE_ANNOTATION)
        .is_some_and(|v| v == TYPE_INTERNAL)
}

/// A reference to a configuration.
pub fn reference(sbc: &ServerBootConfiguration) -> ObjectReference {
    ObjectReference {
        namespace: sbc.namespace().unwrap_or_default(),
        name: sbc.name_any(),
    }
}

/// What `spec.bootConfigurationRef` should be (`None`: leave it alone in this state).
pub fn desired_boot_ref(
    stores: &Stores,
    server: &Server,
    claim_view: ClaimView,
    claim: Option<&ServerClaim>,
) -> Option<Option<ObjectReference>> {
    let name = server.name_any();
    match server.state()? {
        ServerState::Reserved => Some(match (claim_view, claim) {
            (ClaimView::Active(_), Some(c)) => claim_sbc(stores, &name, c).map(|s| reference(&s)),
            _ => None,
        }),
        ServerState::Initial | ServerState::Discovery => {
            let mut internal: Vec<_> = stores
                .sbcs_of(&name)
                .into_iter()
                .filter(|s| is_internal(s) && s.metadata.deletion_timestamp.is_none())
                .collect();
            internal.sort_by_key(|s| s.metadata.creation_timestamp.clone().map(|t| t.0));
            Some(internal.last().map(|s| reference(s)))
        }
        ServerState::Available | ServerState::Released => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(state: &str, claim: Option<&str>) -> Server {
        let mut s = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": "s1", "uid": "u-s1"},
            "spec": {"systemUUID": "uuid-s1"},
            "status": {"state": state},
        });
        if let Some(c) = claim {
            s["spec"]["serverClaimRef"] = json!({"namespace": "ns", "name": c});
        }
        serde_json::from_value(s).expect("server")
    }

    fn claim(name: &str) -> ServerClaim {
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}")},
            "spec": {"power": "On", "serverRef": {"name": "s1"}, "image": "os:1"},
        }))
        .expect("claim")
    }

    fn sbc(name: &str, server: &str, ready: bool, internal: bool) -> ServerBootConfiguration {
        let mut b = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"), "generation": 1},
            "spec": {"serverRef": {"name": server}, "image": "os:1"},
            "status": {"state": if ready { "Ready" } else { "Pending" }},
        });
        if internal {
            b["metadata"]["annotations"] = json!({TYPE_ANNOTATION: TYPE_INTERNAL});
        }
        serde_json::from_value(b).expect("sbc")
    }

    fn served(stores: &Stores, s: &Server) -> Option<String> {
        served_configuration(stores, s).map(|b| b.name_any())
    }

    #[test]
    fn a_reserved_server_is_served_its_claims_ready_configuration() {
        let s = server("Reserved", Some("c"));
        let stores = Stores::listed(
            vec![s.clone()],
            vec![claim("c")],
            vec![sbc("c", "s1", true, false)],
        );
        assert_eq!(served(&stores, &s).as_deref(), Some("c"));
    }

    /// The reconcile may know the claim from a live read before the claims cache does; the boot
    /// server answers from the cache, so nothing is served yet and no network boot may start.
    #[test]
    fn nothing_is_served_while_the_claim_is_missing_from_the_cache() {
        let s = server("Reserved", Some("c"));
        let stores = Stores::listed(vec![s.clone()], vec![], vec![sbc("c", "s1", true, false)]);
        assert_eq!(served(&stores, &s), None);
    }

    #[test]
    fn nothing_is_served_before_the_configuration_is_ready_or_for_another_server() {
        let s = server("Reserved", Some("c"));
        let pending = Stores::listed(
            vec![s.clone()],
            vec![claim("c")],
            vec![sbc("c", "s1", false, false)],
        );
        assert_eq!(served(&pending, &s), None);
        let foreign = Stores::listed(
            vec![s.clone()],
            vec![claim("c")],
            vec![sbc("c", "s2", true, false)],
        );
        assert_eq!(served(&foreign, &s), None);
    }

    #[test]
    fn a_server_in_maintenance_is_served_the_maintenance_configuration_only() {
        let mut s = server("Maintenance", Some("c"));
        s.spec.boot_configuration_ref = Some(ObjectReference {
            namespace: "ns".into(),
            name: "c".into(),
        });
        let sbcs = vec![sbc("c", "s1", true, false), sbc("diag", "s1", true, false)];
        let stores = Stores::listed(vec![s.clone()], vec![claim("c")], sbcs.clone());
        assert_eq!(served(&stores, &s), None, "not the claim's configuration");
        s.spec.maintenance_boot_configuration_ref = Some(ObjectReference {
            namespace: "ns".into(),
            name: "diag".into(),
        });
        let stores = Stores::listed(vec![s.clone()], vec![claim("c")], sbcs);
        assert_eq!(served(&stores, &s).as_deref(), Some("diag"));
    }

    #[test]
    fn a_server_in_cleaning_is_served_the_cleaning_agent_only() {
        let mut s = server("Cleaning", None);
        let sbcs = vec![sbc("s1-cleaning", "s1", true, false)];
        let stores = Stores::listed(vec![s.clone()], vec![], sbcs.clone());
        assert_eq!(served(&stores, &s), None, "nothing without the reference");
        s.spec.maintenance_boot_configuration_ref = Some(ObjectReference {
            namespace: "ns".into(),
            name: "s1-cleaning".into(),
        });
        let stores = Stores::listed(vec![s.clone()], vec![], sbcs);
        assert_eq!(served(&stores, &s).as_deref(), Some("s1-cleaning"));
    }

    #[test]
    fn a_deleting_claim_is_served_nothing() {
        let s = server("Reserved", Some("c"));
        let mut c = claim("c");
        c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        c.metadata.finalizers = Some(vec!["f".into()]);
        let stores = Stores::listed(vec![s.clone()], vec![c], vec![sbc("c", "s1", true, false)]);
        assert_eq!(served(&stores, &s), None);
    }

    #[test]
    fn discovery_is_served_the_internal_configuration_and_available_nothing() {
        let s = server("Discovery", None);
        let boots = vec![
            sbc("user", "s1", true, false),
            sbc("discover-s1", "s1", true, true),
        ];
        let stores = Stores::listed(vec![s.clone()], vec![], boots.clone());
        assert_eq!(served(&stores, &s).as_deref(), Some("discover-s1"));
        let idle = server("Available", None);
        let stores = Stores::listed(vec![idle.clone()], vec![], boots);
        assert_eq!(served(&stores, &idle), None);
    }
}
