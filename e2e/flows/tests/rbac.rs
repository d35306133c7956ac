//! Least privilege, pinned: each controller's ServiceAccount gets exactly the permissions in the
//! tables below, as the real `kubectl auth can-i --list` prints them, in the controller's own
//! namespace (where its Role applies: `metal-system` in an install, a test namespace here) and in
//! any other namespace (only the ClusterRole: namespaced rules must not leak). The RBAC is
//! installed from `kustomize/<controller>/rbac.yaml` as the e2e flows install it
//! ([`e2e::install_rbac`]), so a widened (or narrowed) rule changes a table and fails here; the
//! flows and each crate's rbac test prove the rules are still enough.
//!
//! The first rows of every table (`selfsubject…`, the non-resource URLs) are what every
//! authenticated identity gets from the built-in `system:basic-user`, `system:discovery` and
//! `system:public-info-viewer` roles.

use std::process::Command;

/// Granted to every authenticated identity by the built-in cluster roles.
const BASELINE: &str = "
selfsubjectreviews.authentication.k8s.io [] [] [create]
selfsubjectaccessreviews.authorization.k8s.io [] [] [create]
selfsubjectrulesreviews.authorization.k8s.io [] [] [create]
clustertrustbundles.certificates.k8s.io [] [] [get list watch]
[/.well-known/openid-configuration/] [] [get]
[/.well-known/openid-configuration] [] [get]
[/api/*] [] [get]
[/api] [] [get]
[/apis/*] [] [get]
[/apis] [] [get]
[/healthz] [] [get]
[/healthz] [] [get]
[/livez] [] [get]
[/livez] [] [get]
[/openapi/*] [] [get]
[/openapi] [] [get]
[/openid/v1/jwks/] [] [get]
[/openid/v1/jwks] [] [get]
[/readyz] [] [get]
[/readyz] [] [get]
[/version/] [] [get]
[/version/] [] [get]
[/version] [] [get]
[/version] [] [get]
";

/// metal-discovery's Role in its manager namespace: the internal Secrets, report ConfigMaps and
/// boot configurations, and the Lease.
/// In its own namespace these rows replace the row of the same resource in
/// [`DISCOVERY_OTHER`] or are added.
const DISCOVERY_OWN: &str = "
configmaps [] [] [get list watch create patch delete]
leases.coordination.k8s.io [] [] [get list create update delete]
secrets [] [] [get list create delete]
serverbootconfigurations.metal.ironcore.dev [] [] [get list watch create patch delete]
serverbootconfigurations.metal.ironcore.dev/status [] [] [patch]
";

/// metal-discovery in any other namespace: no Secret, ConfigMap, boot configuration or Lease.
const DISCOVERY_OTHER: &str = "
bmcs.metal.ironcore.dev [] [] [list watch create patch]
bmcs.metal.ironcore.dev/finalizers [] [] [update]
bmcs.metal.ironcore.dev/status [] [] [patch]
bmcsecrets.metal.ironcore.dev [] [] [list watch create patch delete]
bmcusers.metal.ironcore.dev [] [] [list watch patch]
bmcusers.metal.ironcore.dev/finalizers [] [] [update]
bmcusers.metal.ironcore.dev/status [] [] [patch]
endpoints.metal.ironcore.dev [] [] [list watch]
events.events.k8s.io [] [] [create patch]
servers.metal.ironcore.dev [] [] [get list watch create patch]
servers.metal.ironcore.dev/finalizers [] [] [update]
servers.metal.ironcore.dev/status [] [] [patch]
";

/// metal-reservation's Role: the Lease.
/// In its own namespace these rows replace the row of the same resource in
/// [`RESERVATION_OTHER`] or are added.
const RESERVATION_OWN: &str = "
leases.coordination.k8s.io [] [] [get create update]
";

/// metal-reservation in any namespace: claims and their boot configurations live in user
/// namespaces, so everything but the Lease is cluster-wide.
const RESERVATION_OTHER: &str = "
events.events.k8s.io [] [] [create patch]
serverbootconfigurations.metal.ironcore.dev [] [] [create list watch patch delete]
serverclaims.metal.ironcore.dev [] [] [get list watch patch]
serverclaims.metal.ironcore.dev/finalizers [] [] [update]
serverclaims.metal.ironcore.dev/status [] [] [patch]
serverreadinessrules.metal.ironcore.dev [] [] [get list watch patch]
servers.metal.ironcore.dev [] [] [get list watch patch]
servers.metal.ironcore.dev/status [] [] [patch]
";

/// metal-provisioning's Role: the boot token key (Secret create; get is cluster-wide) and the
/// Lease.
/// In its own namespace these rows replace the row of the same resource in
/// [`PROVISIONING_OTHER`] or are added.
const PROVISIONING_OWN: &str = "
leases.coordination.k8s.io [] [] [get list create update delete]
secrets [] [] [get create]
";

/// metal-provisioning in any other namespace: Secret get only (ignition and user data named by
/// boot configurations in claim namespaces).
const PROVISIONING_OTHER: &str = "
bmcs.metal.ironcore.dev [] [] [list watch]
bmcsecrets.metal.ironcore.dev [] [] [list watch]
events.events.k8s.io [] [] [create patch]
secrets [] [] [get]
serverbootconfigurations.metal.ironcore.dev [] [] [list watch]
serverbootconfigurations.metal.ironcore.dev/status [] [] [patch]
serverclaims.metal.ironcore.dev [] [] [get list watch]
serverclaims.metal.ironcore.dev/status [] [] [patch]
servers.metal.ironcore.dev [] [] [list watch patch]
servers.metal.ironcore.dev/status [] [] [patch]
";

/// metal-maintenance's Role: the cleaning agent's Secrets (create, delete; get is cluster-wide)
/// and the Lease.
/// In its own namespace these rows replace the row of the same resource in
/// [`MAINTENANCE_OTHER`] or are added.
const MAINTENANCE_OWN: &str = "
leases.coordination.k8s.io [] [] [get list create update delete]
secrets [] [] [get create delete]
";

/// metal-maintenance in any other namespace: ConfigMap and Secret get for BMCSettings variables,
/// which may name any namespace.
const MAINTENANCE_OTHER: &str = "
biossettings.metal.ironcore.dev [] [] [list watch create patch delete]
biossettings.metal.ironcore.dev/finalizers [] [] [update]
biossettings.metal.ironcore.dev/status [] [] [patch]
biossettingssets.metal.ironcore.dev [] [] [list watch]
biossettingssets.metal.ironcore.dev/finalizers [] [] [update]
biossettingssets.metal.ironcore.dev/status [] [] [patch]
biosversions.metal.ironcore.dev [] [] [list watch create patch delete]
biosversions.metal.ironcore.dev/finalizers [] [] [update]
biosversions.metal.ironcore.dev/status [] [] [patch]
biosversionsets.metal.ironcore.dev [] [] [list watch]
biosversionsets.metal.ironcore.dev/finalizers [] [] [update]
biosversionsets.metal.ironcore.dev/status [] [] [patch]
bmcs.metal.ironcore.dev [] [] [get list watch]
bmcsecrets.metal.ironcore.dev [] [] [get]
bmcsettings.metal.ironcore.dev [] [] [list watch create patch delete]
bmcsettings.metal.ironcore.dev/finalizers [] [] [update]
bmcsettings.metal.ironcore.dev/status [] [] [patch]
bmcsettingssets.metal.ironcore.dev [] [] [list watch]
bmcsettingssets.metal.ironcore.dev/finalizers [] [] [update]
bmcsettingssets.metal.ironcore.dev/status [] [] [patch]
bmcversions.metal.ironcore.dev [] [] [list watch create patch delete]
bmcversions.metal.ironcore.dev/finalizers [] [] [update]
bmcversions.metal.ironcore.dev/status [] [] [patch]
bmcversionsets.metal.ironcore.dev [] [] [list watch]
bmcversionsets.metal.ironcore.dev/finalizers [] [] [update]
bmcversionsets.metal.ironcore.dev/status [] [] [patch]
configmaps [] [] [get]
events.events.k8s.io [] [] [create patch]
secrets [] [] [get]
serverbootconfigurations.metal.ironcore.dev [] [] [get list watch create patch delete]
serverclaims.metal.ironcore.dev [] [] [list watch patch]
servermaintenances.metal.ironcore.dev [] [] [list watch create patch delete]
servermaintenances.metal.ironcore.dev/finalizers [] [] [update]
servermaintenances.metal.ironcore.dev/status [] [] [patch]
servers.metal.ironcore.dev [] [] [list watch patch]
servers.metal.ironcore.dev/status [] [] [patch]
";

/// One `kubectl auth can-i --list` row, whitespace-normalized: `resource [urls] [names] [verbs]`
/// (the resource is absent on non-resource URL rows).
fn rows(table: &str) -> Vec<String> {
    let mut out: Vec<String> = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with("Resources "))
        .collect();
    out.sort();
    out
}

/// The whole table: the baseline and `table`.
fn expected(table: &str) -> Vec<String> {
    rows(&format!("{BASELINE}{table}"))
}

/// The whole table in the controller's own namespace: `cluster` with `own`'s rows in place of
/// those for the same resource.
fn expected_own(cluster: &str, own: &str) -> Vec<String> {
    let resource = |row: &str| {
        row.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let own = rows(own);
    let replaced: Vec<String> = own.iter().map(|r| resource(r)).collect();
    let mut all: Vec<String> = rows(cluster)
        .into_iter()
        .filter(|r| !replaced.contains(&resource(r)))
        .chain(own)
        .collect();
    all.extend(rows(BASELINE));
    all.sort();
    all
}

/// The real `kubectl auth can-i --list` of ServiceAccount `sa_ns/sa` in namespace `ns`.
fn can_i_list(sa_ns: &str, sa: &str, ns: &str) -> Vec<String> {
    let kubectl = testenv::Binaries::locate()
        .expect("binaries")
        .kubectl
        .expect("kubectl was not built");
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(testenv::shared().kubeconfig())
        .args(["auth", "can-i", "--list", "-n", ns])
        .arg(format!("--as=system:serviceaccount:{sa_ns}:{sa}"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl auth can-i --list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rows(&String::from_utf8_lossy(&out.stdout))
}

/// Compares both tables of `controller` (`own`: in its namespace, `other`: in any other one),
/// printing both actual tables (without the baseline) on a difference.
async fn check(controller: &str, own: &str, other: &str) {
    let (client, ns) = testenv::setup(&format!("rbac-{controller}")).await;
    let (_, elsewhere) = testenv::setup(&format!("rbac-{controller}-other")).await;
    let sa = e2e::install_rbac(&client, &ns.name, controller).await;
    let base = rows(BASELINE);
    let mut report = String::new();
    let mut differs = false;
    for (where_, in_ns, want) in [
        ("own namespace", &ns.name, expected_own(other, own)),
        ("another namespace", &elsewhere.name, expected(other)),
    ] {
        let got = can_i_list(&ns.name, &sa, in_ns);
        if got != want {
            differs = true;
            report.push_str(&format!(
                "\n{controller} in its {where_}:\nmissing: {:#?}\nunexpected: {:#?}\n\
                 actual (without the baseline):\n{}\n",
                want.iter().filter(|r| !got.contains(r)).collect::<Vec<_>>(),
                got.iter().filter(|r| !want.contains(r)).collect::<Vec<_>>(),
                got.iter()
                    .filter(|r| !base.contains(r))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(
        !differs,
        "`kubectl auth can-i --list` differs from the pinned table{report}"
    );
}

#[tokio::test]
async fn discovery_can_i_table() {
    check("discovery", DISCOVERY_OWN, DISCOVERY_OTHER).await;
}

#[tokio::test]
async fn reservation_can_i_table() {
    check("reservation", RESERVATION_OWN, RESERVATION_OTHER).await;
}

#[tokio::test]
async fn provisioning_can_i_table() {
    check("provisioning", PROVISIONING_OWN, PROVISIONING_OTHER).await;
}

#[tokio::test]
async fn maintenance_can_i_table() {
    check("maintenance", MAINTENANCE_OWN, MAINTENANCE_OTHER).await;
}

/// The pinned tables catch a widening: the same install with one verb more on discovery's
/// namespaced Secrets, and one cluster-wide rule more, no longer matches.
#[tokio::test]
async fn a_widened_rule_changes_the_table() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
    use kube::api::{Api, Patch, PatchParams};
    let (client, ns) = testenv::setup("rbac-widened").await;
    let sa = e2e::install_rbac(&client, &ns.name, "discovery").await;
    assert_eq!(
        can_i_list(&ns.name, &sa, &ns.name),
        expected_own(DISCOVERY_OTHER, DISCOVERY_OWN)
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns.name);
    let mut role = roles.get("metal-discovery").await.expect("role");
    for rule in role.rules.iter_mut().flatten() {
        if rule.resources.iter().flatten().any(|r| r == "secrets") {
            rule.verbs.push("watch".into());
        }
    }
    role.metadata.managed_fields = None;
    roles
        .patch(
            "metal-discovery",
            &PatchParams::apply("metal-e2e").force(),
            &Patch::Apply(&role),
        )
        .await
        .expect("widen role");
    let got = can_i_list(&ns.name, &sa, &ns.name);
    assert_ne!(got, expected_own(DISCOVERY_OTHER, DISCOVERY_OWN));
    assert!(
        got.contains(&"secrets [] [] [get list create delete watch]".to_string()),
        "{got:#?}"
    );
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let name = format!("metal-discovery-{}", ns.name);
    cluster_roles
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(serde_json::json!([{
                    "op": "add", "path": "/rules/-",
                    "value": { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"] }
                }]))
                .expect("json patch"),
            ),
        )
        .await
        .expect("widen cluster role");
    let (_, other) = testenv::setup("rbac-widened-other").await;
    let got = can_i_list(&ns.name, &sa, &other.name);
    assert_ne!(got, expected(DISCOVERY_OTHER));
    assert!(got.contains(&"secrets [] [] [get]".to_string()), "{got:#?}");
}
