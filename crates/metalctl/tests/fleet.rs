//! The fleet commands of the real `metalctl` binary (and through the `kubectl-metal` plugin
//! name) against a real kube-apiserver: list, cordon, park, approve, console against a
//! simulated BMC, crds, and the visualizer rendered in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use api::server::Server;
use api::serverclaim::ServerClaim;
use kube::api::{Api, Patch, PatchParams, PostParams};
use metal_bmc_sim::{GroupSpec, RackSpec, Simulator, TemplateSource};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
/// Label that scopes each test's servers (Servers are cluster-scoped, tests run at once).
const SEL: &str = "test.metal.ironcore.dev/metalctl";

async fn metalctl_in(program: &Path, args: &[&str], path_env: Option<&str>) -> Output {
    let cp = testenv::shared();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env("KUBECONFIG", cp.kubeconfig());
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("metalctl finished in time")
        .expect("metalctl runs")
}

async fn metalctl(args: &[&str]) -> Output {
    metalctl_in(Path::new(env!("CARGO_BIN_EXE_metalctl")), args, None).await
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "metalctl failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("utf-8")
}

fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "metalctl should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn servers(client: &kube::Client) -> Api<Server> {
    Api::all(client.clone())
}

/// Creates server `name` labelled `SEL=group` (plus `labels`) with `spec` and `status`.
async fn server(
    client: &kube::Client,
    name: &str,
    group: &str,
    labels: Value,
    spec: Value,
    status: Value,
) {
    let mut l = labels;
    l[SEL] = json!(group);
    let mut spec = spec;
    spec["systemUUID"] = json!(format!("uuid-{name}"));
    let obj: Server = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "Server",
        "metadata": { "name": name, "labels": l }, "spec": spec,
    }))
    .unwrap();
    servers(client)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    set_status(client, name, status).await;
}

/// A client, a fresh namespace and a unique group name for one test's servers.
async fn start(prefix: &str) -> (kube::Client, testenv::TestNamespace, String) {
    let (client, ns) = testenv::setup(&format!("mctl-{prefix}")).await;
    (client, ns, testenv::unique_name(prefix))
}

/// A server of group `g` with no labels or spec beyond the required, in `status`.
async fn bare(client: &kube::Client, name: &str, g: &str, status: Value) {
    server(client, name, g, json!({}), json!({}), status).await;
}

/// Writes `status` as a controller would (server-side apply on the status subresource).
async fn set_status(client: &kube::Client, name: &str, status: Value) {
    servers(client)
        .patch_status(
            name,
            &PatchParams::apply("metalctl-test").force(),
            &Patch::Apply(json!({
                "apiVersion": api::API_VERSION, "kind": "Server",
                "metadata": { "name": name }, "status": status,
            })),
        )
        .await
        .unwrap();
}

fn cond(type_: &str, status: &str, reason: &str) -> Value {
    json!({ "type": type_, "status": status, "reason": reason, "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z" })
}

/// The table's lines, each split into its columns (no column value holds a space here except
/// PARKED's "(... requested)").
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_list_shows_state_power_claim_health_cordon_and_park() {
    let (client, ns, g) = start("list").await;
    let n = |s: &str| format!("{g}-{s}");
    server(
        &client,
        &n("a"),
        &g,
        json!({}),
        json!({ "serverClaimRef": { "namespace": ns.name, "name": "c1" } }),
        json!({ "state": "Reserved", "powerState": "On",
                "conditions": [cond("Healthy", "True", "Healthy"), cond("Discovered", "True", "Done")] }),
    )
    .await;
    server(
        &client,
        &n("b"),
        &g,
        json!({}),
        json!({ "unclaimable": true }),
        json!({ "state": "Available", "powerState": "Off",
                "conditions": [cond("Healthy", "False", "BMCUnreachable")] }),
    )
    .await;
    bare(
        &client,
        &n("c"),
        &g,
        json!({ "state": "Parked", "powerState": "Off" }),
    )
    .await;
    // Not selected: another group.
    server(
        &client,
        &format!("{g}x-other"),
        "other",
        json!({}),
        json!({}),
        json!({ "state": "Available" }),
    )
    .await;

    let sel = format!("{SEL}={g}");
    let t = table(&ok(&metalctl(&["server", "list", "-l", &sel]).await));
    assert_eq!(
        t[0],
        [
            "NAME", "STATE", "POWER", "CLAIM", "HEALTH", "CORDONED", "PARKED"
        ]
    );
    let claim = format!("{}/c1", ns.name);
    assert_eq!(
        &t[1..],
        [
            vec![
                n("a"),
                "Reserved".into(),
                "On".into(),
                claim.clone(),
                "Healthy".into(),
                "no".into(),
                "no".into()
            ],
            vec![
                n("b"),
                "Available".into(),
                "Off".into(),
                "-".into(),
                "BMCUnreachable".into(),
                "yes".into(),
                "no".into()
            ],
            vec![
                n("c"),
                "Parked".into(),
                "Off".into(),
                "-".into(),
                "-".into(),
                "no".into(),
                "yes".into()
            ],
        ]
    );

    let json: Value = serde_json::from_str(&ok(&metalctl(&[
        "server", "list", "-l", &sel, "-o", "json",
    ])
    .await))
    .unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["name"], n("a"));
    assert_eq!(rows[0]["claim"], claim);
    assert_eq!(
        rows[0]["conditions"],
        json!(["Healthy=True", "Discovered=True"])
    );
    assert_eq!(rows[1]["cordoned"], true);
    assert_eq!(rows[2]["parked"], true);

    let yaml: serde_yaml::Value = serde_yaml::from_str(&ok(&metalctl(&[
        "server", "list", "-l", &sel, "-o", "yaml",
    ])
    .await))
    .unwrap();
    assert_eq!(yaml[1]["health"].as_str(), Some("BMCUnreachable"));

    let none = ok(&metalctl(&["server", "list", "-l", &format!("{SEL}=nothing-{g}")]).await);
    assert_eq!(none, "No servers found.\n");
}

/// Server `name` without the fields metalctl may change and the server-maintained metadata.
fn rest(s: &Server) -> Value {
    let mut v = serde_json::to_value(s).unwrap();
    for p in ["resourceVersion", "managedFields", "generation"] {
        v["metadata"].as_object_mut().unwrap().remove(p);
    }
    v
}

fn managers(s: &Server) -> Vec<String> {
    s.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_and_uncordon_set_and_clear_only_unclaimable() {
    let (client, _ns, g) = start("cordon").await;
    let name = format!("{g}-s");
    server(
        &client,
        &name,
        &g,
        json!({ "keep": "me" }),
        json!({ "power": "Off" }),
        json!({ "state": "Available" }),
    )
    .await;
    let before = servers(&client).get(&name).await.unwrap();
    assert!(!before.is_unclaimable());

    let out = ok(&metalctl(&["server", "cordon", &name]).await);
    assert!(out.contains("cordoned"), "{out}");
    let after = servers(&client).get(&name).await.unwrap();
    assert_eq!(after.spec.unclaimable, Some(true));
    let mut expect = rest(&before);
    expect["spec"]["unclaimable"] = json!(true);
    assert_eq!(rest(&after), expect, "only spec.unclaimable changed");
    assert!(managers(&after).contains(&"metalctl".to_string()));
    // The reservation rule reads exactly this.
    assert!(after.is_unclaimable());

    let again = ok(&metalctl(&["server", "cordon", &name]).await);
    assert!(again.contains("already cordoned"), "{again}");
    assert_eq!(
        servers(&client)
            .get(&name)
            .await
            .unwrap()
            .metadata
            .resource_version,
        after.metadata.resource_version,
        "a repeated cordon writes nothing"
    );

    ok(&metalctl(&["server", "uncordon", &name]).await);
    let back = servers(&client).get(&name).await.unwrap();
    assert_eq!(back.spec.unclaimable, Some(false), "back to the default");
    assert_eq!(rest(&back), rest(&before));

    let missing = format!("{g}-missing");
    let err = failed(&metalctl(&["server", "cordon", &missing]).await);
    assert!(
        err.contains(&format!("server {missing} not found")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn park_and_unpark_request_what_maintenance_acts_on() {
    use metal_maintenance::park::{Step, next};
    let (client, _ns, g) = start("park").await;
    let name = format!("{g}-s");
    bare(
        &client,
        &name,
        &g,
        json!({ "state": "Available", "powerState": "On" }),
    )
    .await;
    let before = servers(&client).get(&name).await.unwrap();
    assert_eq!(next(&before), Step::Nothing);

    let out = ok(&metalctl(&["server", "park", &name]).await);
    assert!(out.contains("park requested"), "{out}");
    let after = servers(&client).get(&name).await.unwrap();
    assert_eq!(
        after
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(api::constants::OPERATION_ANNOTATION)
            .map(String::as_str),
        Some("park")
    );
    let mut expect = rest(&before);
    expect["metadata"]["annotations"] = json!({ api::constants::OPERATION_ANNOTATION: "park" });
    assert_eq!(
        rest(&after),
        expect,
        "only the operation annotation was added"
    );
    assert_eq!(next(&after), Step::Enter, "the park flow enters Parked");
    let listed = ok(&metalctl(&["server", "list", "-l", &format!("{SEL}={g}")]).await);
    assert!(listed.contains("no (park requested)"), "{listed}");

    // Play maintenance: Parked, marker set, request removed.
    set_status(
        &client,
        &name,
        json!({ "state": "Parked", "powerState": "Off" }),
    )
    .await;
    servers(&client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": {
                api::constants::OPERATION_ANNOTATION: null, api::constants::PARKED_ANNOTATION: "true" } } })),
        )
        .await
        .unwrap();
    let again = ok(&metalctl(&["server", "park", &name]).await);
    assert!(again.contains("already parked"), "{again}");

    ok(&metalctl(&["server", "unpark", &name]).await);
    let unparking = servers(&client).get(&name).await.unwrap();
    let ann = unparking.metadata.annotations.clone().unwrap();
    assert_eq!(
        ann.get(api::constants::OPERATION_ANNOTATION)
            .map(String::as_str),
        Some("unpark")
    );
    assert_eq!(
        ann.get(api::constants::PARKED_ANNOTATION)
            .map(String::as_str),
        Some("true"),
        "the marker is maintenance's to remove"
    );
    assert_eq!(
        next(&unparking),
        Step::Leave(api::server::ServerState::Available)
    );

    let other = format!("{g}-free");
    bare(&client, &other, &g, json!({ "state": "Available" })).await;
    let rv = servers(&client)
        .get(&other)
        .await
        .unwrap()
        .metadata
        .resource_version;
    let out = ok(&metalctl(&["server", "unpark", &other]).await);
    assert!(out.contains("not parked"), "{out}");
    assert_eq!(
        servers(&client)
            .get(&other)
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_approve_labels_the_claim_of_the_maintained_server() {
    let (client, ns, g) = start("appr").await;
    let name = format!("{g}-s");
    bare(&client, &name, &g, json!({ "state": "Reserved" })).await;
    let claims: Api<ServerClaim> = Api::namespaced(client.clone(), &ns.name);
    let claim: ServerClaim = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "ServerClaim",
        "metadata": { "name": "c1", "namespace": ns.name,
                      "labels": { api::constants::MAINTENANCE_NEEDED_LABEL: "true", "team": "a" } },
        "spec": { "power": "On", "image": "img", "serverRef": { "name": name } },
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    servers(&client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "serverClaimRef": { "namespace": ns.name, "name": "c1" } } }),
            ),
        )
        .await
        .unwrap();
    let sms: Api<api::servermaintenance::ServerMaintenance> =
        Api::namespaced(client.clone(), &ns.name);
    for (sm, target, policy) in [
        ("m1", name.as_str(), "OwnerApproval"),
        ("m2", "", "OwnerApproval"),
        ("m3", name.as_str(), "Enforced"),
    ] {
        let target = if target.is_empty() {
            let free = format!("{g}-free");
            bare(&client, &free, &g, json!({ "state": "Available" })).await;
            free
        } else {
            target.to_string()
        };
        sms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": api::API_VERSION, "kind": "ServerMaintenance",
                "metadata": { "name": sm, "namespace": ns.name },
                "spec": { "policy": policy, "serverRef": { "name": target } },
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    let before = claims.get("c1").await.unwrap();
    assert!(!metal_maintenance::plan::approved(&before));

    let out = ok(&metalctl(&["maintenance", "approve", "m1", "-n", &ns.name]).await);
    assert!(
        out.contains(&format!("serverclaim {}/c1", ns.name)),
        "{out}"
    );
    let after = claims.get("c1").await.unwrap();
    assert!(
        metal_maintenance::plan::approved(&after),
        "maintenance sees the approval"
    );
    let mut labels = before.metadata.labels.clone().unwrap();
    labels.insert(
        api::constants::MAINTENANCE_APPROVED_LABEL.into(),
        "true".into(),
    );
    assert_eq!(
        after.metadata.labels.unwrap(),
        labels,
        "only the approval label added"
    );
    assert_eq!(after.spec, before.spec);

    let out = ok(&metalctl(&["maintenance", "approve", "m3", "-n", &ns.name]).await);
    assert!(out.contains("needs no approval"), "{out}");
    let err = failed(&metalctl(&["maintenance", "approve", "m2", "-n", &ns.name]).await);
    assert!(err.contains("is not claimed"), "{err}");
    let err = failed(&metalctl(&["maintenance", "approve", "nope", "-n", &ns.name]).await);
    assert!(
        err.contains(&format!("servermaintenance {}/nope not found", ns.name)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_prints_the_committed_files() {
    let dir = testenv::crd_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 17, "the CRD files are there: {files:?}");
    let committed: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let printed = ok(&metalctl(&["crds"]).await);
    assert!(
        printed == committed,
        "metalctl crds differs from {} (regenerate with `cargo run -q -p xtask -- crdgen`)",
        dir.display()
    );
    // `metalctl crds | kubectl apply -f -`, as the README has it (dry run: the test control
    // plane already has them).
    if let Some(kubectl) = testenv::shared().binaries().and_then(|b| b.kubectl.clone()) {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new(&kubectl)
            .args(["apply", "--dry-run=server", "-f", "-"])
            .env("KUBECONFIG", testenv::shared().kubeconfig())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(printed.as_bytes()).await.unwrap();
        drop(stdin);
        let o = child.wait_with_output().await.unwrap();
        let out = ok(&o);
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("(server dry run)"))
                .count(),
            files.len(),
            "kubectl applied every CRD: {out}"
        );
    }
}

/// A BMC, its secret and its server for simulated BMC `b`.
async fn bmc_objects(
    client: &kube::Client,
    g: &str,
    i: usize,
    b: &metal_bmc_sim::BmcInfo,
) -> String {
    let base = format!("{g}-{i}");
    let secret: api::bmcsecret::BMCSecret = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BMCSecret",
        "metadata": { "name": base },
        "stringData": { "username": b.username, "password": b.password,
                        "ca.crt": b.ca_pem.clone().unwrap_or_default() },
    }))
    .unwrap();
    Api::<api::bmcsecret::BMCSecret>::all(client.clone())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let bmc: api::bmc::BMC = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BMC",
        "metadata": { "name": base },
        "spec": { "access": { "ip": b.ip.to_string() }, "bmcSecretRef": { "name": base },
                  "protocol": { "name": "Redfish", "port": b.port, "scheme": "https" } },
    }))
    .unwrap();
    Api::<api::bmc::BMC>::all(client.clone())
        .create(&PostParams::default(), &bmc)
        .await
        .unwrap();
    let name = format!("{base}-srv");
    server(
        client,
        &name,
        g,
        json!({}),
        json!({ "systemURI": b.systems[0].path, "bmcRef": { "name": base } }),
        json!({ "state": "Available" }),
    )
    .await;
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_prints_the_offer_and_no_password() {
    let (client, _ns) = testenv::setup("mctl-console").await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../redfish/tests/fixtures");
    let group = |template: TemplateSource, password: &str| GroupSpec {
        count: 1,
        template,
        password: Some(password.into()),
        ..GroupSpec::default()
    };
    let sim = Simulator::start(RackSpec {
        base_address: "127.87.0.1".parse().unwrap(),
        port: 0,
        tls: true,
        groups: vec![
            group(
                TemplateSource::Path(fixtures.join("supermicro-sys-821ge")),
                "console-Secret-1",
            ),
            group(TemplateSource::default(), "console-Secret-2"),
        ],
        ..RackSpec::default()
    })
    .await
    .expect("simulator");
    let g = testenv::unique_name("console");
    let bmcs = sim.bmcs();
    let with = bmc_objects(&client, &g, 0, &bmcs[0]).await;
    let without = bmc_objects(&client, &g, 1, &bmcs[1]).await;

    let o = metalctl(&["console", &with]).await;
    let out = ok(&o);
    let host = bmcs[0].ip.to_string();
    for want in [
        "System SerialConsole: SSH, IPMI".to_string(),
        format!("ssh -p 22 <username>@{host}"),
        "then run on the BMC: cd system1/sol1; start".to_string(),
        format!("ipmitool -I lanplus -H {host} -p 623 -U <username> -E sol activate"),
        "Manager CommandShell: SSH".to_string(),
        "Manager GraphicalConsole: KVMIP (max 4 sessions)".to_string(),
        format!("open https://{host}/ in a browser"),
        format!("BMCSecret {g}-0 (not printed)"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    let all = format!("{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !all.contains(&bmcs[0].password),
        "the password is never printed:\n{all}"
    );
    println!("{out}");

    // A server with its BMC inline (spec.bmc) instead of a BMC object.
    let inline = format!("{g}-inline");
    server(
        &client,
        &inline,
        &g,
        json!({}),
        json!({ "systemURI": bmcs[0].systems[0].path,
                "bmc": { "address": host, "bmcSecretRef": { "name": format!("{g}-0") },
                         "protocol": { "name": "Redfish", "port": bmcs[0].port, "scheme": "https" } } }),
        json!({ "state": "Available" }),
    )
    .await;
    let out = ok(&metalctl(&["console", &inline]).await);
    assert!(
        out.contains(&format!("Consoles of server {inline} (BMC {inline})"))
            && out.contains("Manager GraphicalConsole: KVMIP"),
        "{out}"
    );
    assert!(!out.contains(&bmcs[0].password));

    let o = metalctl(&["console", &without]).await;
    let err = failed(&o);
    assert!(
        err.contains(&format!(
            "the BMC {g}-1 of server {without} offers no console"
        )),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&bmcs[1].password));
    assert!(!err.contains(&bmcs[1].password));

    let err = failed(&metalctl(&["console", &format!("{g}-missing")]).await);
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_plugin_runs_as_kubectl_metal() {
    let (client, _ns, g) = start("plugin").await;
    let name = format!("{g}-s");
    bare(
        &client,
        &name,
        &g,
        json!({ "state": "Available", "powerState": "Off" }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-metal");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_metalctl"), &plugin).unwrap();
    let sel = format!("{SEL}={g}");

    let out = ok(&metalctl_in(&plugin, &["server", "list", "-l", &sel], None).await);
    let t = table(&out);
    assert_eq!(t[1][..3], [name.clone(), "Available".into(), "Off".into()]);
    let help = ok(&metalctl_in(&plugin, &["--help"], None).await);
    assert!(help.contains("Usage: kubectl metal"), "{help}");

    match testenv::shared().binaries().and_then(|b| b.kubectl.clone()) {
        Some(kubectl) => {
            let path = format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let o = metalctl_in(
                &kubectl,
                &["metal", "server", "list", "-l", &sel],
                Some(&path),
            )
            .await;
            let t = table(&ok(&o));
            assert_eq!(t[1][0], name, "kubectl found the plugin");
            println!(
                "kubectl metal server list ran through {}",
                kubectl.display()
            );
        }
        None => println!("no kubectl among the control-plane binaries: only the symlink was run"),
    }
}

/// Kills the child when dropped.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn get(port: u16, path: &str) -> (String, String) {
    let raw = testenv::tls::plain_get(port, path).await;
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

fn chromium(args: &[&str], url: &str) -> Output {
    let profile = tempfile::tempdir().unwrap();
    std::process::Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visualizer_serves_the_fleet_by_rack_live() {
    let (client, _ns, g) = start("vis").await;
    let n = |s: &str| format!("{g}-{s}");
    use api::constants::{LABEL_HEIGHT, LABEL_LOCATION, LABEL_RACK, LABEL_SHELF};
    let racked = |rack: &str, shelf: u32, height: u32| {
        json!({ LABEL_LOCATION: "fra-dc5", LABEL_RACK: rack, LABEL_SHELF: shelf.to_string(),
                LABEL_HEIGHT: height.to_string() })
    };
    let layout = [
        ("a1", racked("r10", 1, 1), "Available", "Off", json!({})),
        (
            "a2",
            racked("r10", 3, 2),
            "Reserved",
            "On",
            json!({ "serverClaimRef": { "namespace": "team", "name": "web-1" } }),
        ),
        ("b1", racked("r2", 5, 1), "Maintenance", "On", json!({})),
        (
            "b2",
            racked("r2", 1, 1),
            "Error",
            "Off",
            json!({ "unclaimable": true }),
        ),
        ("loose", json!({}), "Discovery", "On", json!({})),
    ];
    for (s, labels, state, power, spec) in &layout {
        server(
            &client,
            &n(s),
            &g,
            labels.clone(),
            spec.clone(),
            json!({ "state": state, "powerState": power }),
        )
        .await;
    }

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_metalctl"))
        .args([
            "visualizer",
            "--listen",
            "127.0.0.1:0",
            "-l",
            &format!("{SEL}={g}"),
        ])
        .env("KUBECONFIG", testenv::shared().kubeconfig())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the visualizer");
    let stdout = child.stdout.take().unwrap();
    let child = Child(child);
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(T, lines.next_line())
        .await
        .expect("the visualizer announced its address")
        .unwrap()
        .expect("a line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let (head, page) = get(port, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(page.contains("<title>metal fleet</title>") && page.contains("/api/fleet"));

    let fleet = |body: &str| serde_json::from_str::<Value>(body).expect("fleet JSON");
    let (_, body) = get(port, "/api/fleet").await;
    let f = fleet(&body);
    let racks: Vec<(String, Vec<String>)> = f["racks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["servers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["name"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        racks,
        [
            ("r2".to_string(), vec![n("b1"), n("b2")]),
            ("r10".to_string(), vec![n("a2"), n("a1")]),
        ],
        "racks in natural order, top unit first"
    );
    assert_eq!(f["racks"][1]["units"], 4);
    assert_eq!(f["racks"][1]["servers"][0]["claim"], "team/web-1");
    assert_eq!(f["racks"][1]["servers"][0]["power"], "On");
    assert_eq!(f["racks"][0]["servers"][1]["cordoned"], true);
    assert_eq!(f["unracked"][0]["name"], n("loose"));
    assert_eq!(
        f["warnings"],
        json!(["no rack labels on 1 server; they are shown under 'unracked'"])
    );

    // Live: a state change shows up without restarting the visualizer.
    set_status(
        &client,
        &n("a1"),
        json!({ "state": "Reserved", "powerState": "On" }),
    )
    .await;
    testenv::eventually("the visualizer shows a1 Reserved", T, async || {
        let (_, body) = get(port, "/api/fleet").await;
        let f = fleet(&body);
        (f["racks"][1]["servers"][1]["state"] == "Reserved").then_some(())
    })
    .await;

    // The page in a real browser: its script fetched the JSON and drew every server.
    let chromium_bin = Path::new("/usr/bin/chromium");
    assert!(
        chromium_bin.exists(),
        "/usr/bin/chromium is missing: install it (apt-get install chromium; .ci/run does)"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("visualizer.png");
    let _ = std::fs::remove_file(&shot);
    let o = tokio::task::spawn_blocking({
        let (url, shot) = (url.clone(), shot.clone());
        move || {
            chromium(
                &[
                    &format!("--screenshot={}", shot.display()),
                    "--window-size=1280,800",
                ],
                &url,
            )
        }
    })
    .await
    .unwrap();
    assert!(
        shot.exists() && std::fs::metadata(&shot).unwrap().len() > 10_000,
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    println!("visualizer screenshot: {}", shot.display());
    let o = tokio::task::spawn_blocking(move || chromium(&["--dump-dom"], &url))
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    for (s, state) in [
        ("a1", "Reserved"),
        ("a2", "Reserved"),
        ("b1", "Maintenance"),
        ("b2", "Error"),
        ("loose", "Discovery"),
    ] {
        assert!(
            dom.contains(&format!("data-server=\"{}\" data-state=\"{state}\"", n(s))),
            "the rendered page shows {} as {state}:\n{dom}",
            n(s)
        );
    }
    assert!(dom.contains("claim team/web-1"), "{dom}");
    let polls: u32 = dom
        .split("data-polls=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(polls >= 2, "the page keeps polling (polls={polls}): {dom}");
    assert!(dom.contains("5 servers in 2 racks"), "{dom}");
    drop(child);
}
