//! The boot server, the metadata service and ServerBootConfiguration readiness against the real
//! control plane: every endpoint serves only the server it identifies, unknown and
//! unauthorized callers get the same 404; OCI images resolve through a registry with the token
//! flow and their layers are streamed.

mod common;

use std::time::Duration;

use api::serverbootconfiguration::ServerBootConfiguration;
use common::{Harness, Options, eventually, get, network_boot};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

async fn sbc_state(h: &Harness, name: &str) -> Option<(String, String, String)> {
    let sbc = Api::<ServerBootConfiguration>::namespaced(h.client.clone(), &h.ns)
        .get_opt(name)
        .await
        .ok()??;
    let st = sbc.status?;
    let c = api::conditions::get(&st.conditions, "Ready")?;
    Some((st.state?.to_string(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boot_endpoints_serve_only_the_identified_server() {
    let h = Harness::new("prov-bootsrv", Options::new("127.31.10.1", 3)).await;
    let (a, b, c) = (
        h.servers[0].clone(),
        h.servers[1].clone(),
        h.servers[2].clone(),
    );
    let ctl = h.start(h.config()).await;
    let base = ctl.boot_url.clone();
    h.ignition_secret("ign-a", r#"{"ignition":{"version":"3.4.0"},"owner":"a"}"#)
        .await;
    h.ignition_secret("ign-b", r#"{"ignition":{"version":"3.4.0"},"owner":"b"}"#)
        .await;
    h.bind(&a, "ca", "Off", network_boot(Some("ign-a"))).await;
    let mut boot_b = network_boot(Some("ign-b"));
    boot_b["bootArtifacts"]["kernelURL"] = json!("http://images.example.test/b/vmlinuz");
    h.bind(&b, "cb", "Off", boot_b).await;
    // c stays Available (known, but without a boot configuration).

    // Without a recorded power-on (no boot window) nobody gets a script, not even with the
    // right MAC and UUID.
    eventually(T, "a's configuration Ready", || async {
        sbc_state(&h, "ca").await.filter(|s| s.0 == "Ready")
    })
    .await;
    let (s, body, _) = get(
        &format!("{base}/ipxe?mac={}&uuid={}", a.macs[0], a.uuid),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 404, "no boot window: {body}");

    h.open_boot_window(&a.name).await;
    h.open_boot_window(&b.name).await;
    let script_a = eventually(T, "a's script", || async {
        let (status, body, _) = get(
            &format!("{base}/ipxe?mac={}&uuid={}", a.macs[0], a.uuid),
            None,
            &[],
        )
        .await;
        (status == 200).then_some(body)
    })
    .await;
    let token_a = common::token_of(&script_a);
    assert!(script_a.starts_with("#!ipxe\n"), "{script_a}");
    assert!(script_a.contains(
        "kernel http://images.example.test/vmlinuz initrd=initrd gl.url=${rootfs-url} console=ttyS0"
    ));
    assert!(script_a.contains(&format!(
        "ignition.config.url={base}/ignition/{}/{token_a}",
        a.uuid
    )));
    assert!(script_a.contains("initrd --name initrd http://images.example.test/initrd"));
    assert!(!script_a.contains("/b/vmlinuz"));
    // Once per power-on: the window is closed on the Server before the answer leaves.
    let (s, _, _) = get(&format!("{base}/ipxe/{}", a.uuid), None, &[]).await;
    assert_eq!(s, 404, "second fetch in the same boot");
    let server_a = h.server(&a.name).await;
    let window = api::conditions::get(&server_a.status.as_ref().unwrap().conditions, "BootWindow");
    assert_eq!(
        window.map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("False", "BootScriptServed")),
        "{window:?}"
    );
    // By UUID path in a new window, and the chain loader.
    h.open_boot_window(&a.name).await;
    let by_uuid = eventually(T, "a's script by UUID", || async {
        let (s, body, _) = get(&format!("{base}/ipxe/{}", a.uuid), None, &[]).await;
        (s == 200).then_some(body)
    })
    .await;
    assert_eq!(by_uuid, script_a, "same configuration, same token");
    let (s, chain, _) = get(&format!("{base}/boot.ipxe"), None, &[]).await;
    assert_eq!(s, 200);
    assert!(chain.contains(&format!(
        "chain {base}/ipxe?mac=${{net0/mac}}&uuid=${{uuid}}"
    )));

    // Ignition only with the server's own token.
    let (s, ign, hdrs) = get(&format!("{base}/ignition/{}/{token_a}", a.uuid), None, &[]).await;
    assert_eq!(s, 200);
    assert!(ign.contains("\"owner\":\"a\""));
    assert_eq!(
        hdrs.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let script_b = eventually(T, "b's script", || async {
        let (s, body, _) = get(&format!("{base}/ipxe/{}", b.uuid), None, &[]).await;
        (s == 200).then_some(body)
    })
    .await;
    let token_b = common::token_of(&script_b);
    assert_ne!(token_a, token_b);
    let (s, ign_b, _) = get(&format!("{base}/ignition/{}/{token_b}", b.uuid), None, &[]).await;
    assert_eq!(s, 200);
    assert!(ign_b.contains("\"owner\":\"b\""));

    // Unknown, contradicting, unconfigured, windowless and wrongly authenticated callers: one
    // identical 404, and not a byte of another server's data.
    let mut wrong = token_a.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    let probes = [
        format!("{base}/ipxe?mac={}&uuid={}", b.macs[0], a.uuid),
        format!("{base}/ipxe?mac=02:00:00:00:00:99"),
        format!("{base}/ipxe/00000000-0000-4000-8000-000000000099"),
        format!("{base}/ipxe?mac={}&uuid={}", c.macs[0], c.uuid),
        format!("{base}/ipxe/{}", a.uuid),
        format!("{base}/uefi/{}", a.uuid),
        format!("{base}/uefi?mac={}&uuid={}", a.macs[0], a.uuid),
        format!("{base}/ignition/{}", a.uuid),
        format!("{base}/ignition/{}/{wrong}", a.uuid),
        format!("{base}/ignition/{}/{token_a}", b.uuid),
        format!("{base}/ignition/{}/{token_b}", a.uuid),
        format!("{base}/ignition/00000000-0000-4000-8000-000000000099/{token_a}"),
        format!("{base}/ignition/{}/{token_a}", c.uuid),
        format!("{base}/uefi/{}", c.uuid),
        format!("{base}/ipxe"),
        format!("{base}/artifacts/sha256:{}", "0".repeat(64)),
        format!(
            "{base}/artifacts/{}/{token_a}/sha256:{}",
            a.uuid,
            "0".repeat(64)
        ),
        format!(
            "{base}/artifacts/{}/{wrong}/sha256:{}",
            a.uuid,
            "0".repeat(64)
        ),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for p in &probes {
        let (s, body, _) = get(p, None, &[]).await;
        assert_eq!(s, 404, "{p}: {body}");
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1, "every refusal looks the same: {bodies:?}");

    // UEFI HTTP boot (an identifying request like the script): redirect to the EFI-stub kernel.
    h.open_boot_window(&a.name).await;
    let hdrs = eventually(T, "a's UEFI redirect", || async {
        let (s, _, hdrs) = get(&format!("{base}/uefi/{}", a.uuid), None, &[]).await;
        (s == 302).then_some(hdrs)
    })
    .await;
    assert_eq!(
        hdrs.get("location").map(String::as_str),
        Some("http://images.example.test/vmlinuz")
    );

    // Released: the configuration is no longer served, not even in a window, and its token
    // opens nothing.
    h.delete_claim("ca").await;
    eventually(T, "a's configuration withdrawn", || async {
        h.open_boot_window(&a.name).await;
        let (s, _, _) = get(&format!("{base}/ipxe/{}", a.uuid), None, &[]).await;
        (s == 404).then_some(())
    })
    .await;
    let (s, _, _) = get(&format!("{base}/ignition/{}/{token_a}", a.uuid), None, &[]).await;
    assert_eq!(s, 404);
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_service_identifies_callers_by_source_ip() {
    let h = Harness::new("prov-meta", Options::new("127.31.11.1", 2)).await;
    let (a, b) = (h.servers[0].clone(), h.servers[1].clone());
    h.set_ips(&a, &["127.31.11.200"]).await;
    h.set_ips(&b, &["127.31.11.201"]).await;
    let mut cfg = h.config();
    cfg.metadata_listen = Some(metal_provisioning::Listen::Addr(
        "127.0.0.1:0".parse().unwrap(),
    ));
    cfg.static_metadata = [("region".to_string(), "eu-test".to_string())].into();
    let ctl = h.start(cfg).await;
    let md = format!("http://{}", ctl.metadata_addr.unwrap());
    // a: claimed, with user-data.
    let ud: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "metal.ironcore.dev/user-data",
        "metadata": { "name": "ud-a" }, "stringData": { "cloud-config": "#cloud-config\nhostname: a" },
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.ns)
        .create(&PostParams::default(), &ud)
        .await
        .unwrap();
    h.bind(&a, "ma", "Off", network_boot(None)).await;
    kube::Api::<api::serverclaim::ServerClaim>::namespaced(h.client.clone(), &h.ns)
        .patch(
            "ma",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "userDataRef": { "name": "ud-a" } } })),
        )
        .await
        .unwrap();
    let ip_a = Some("127.31.11.200".parse().unwrap());
    let ip_b = Some("127.31.11.201".parse().unwrap());
    // a's boot token, as its booted OS finds it on the kernel command line.
    h.open_boot_window(&a.name).await;
    let base = ctl.boot_url.clone();
    let script = eventually(T, "a's script", || async {
        let (s, body, _) = get(&format!("{base}/ipxe/{}", a.uuid), None, &[]).await;
        (s == 200).then_some(body)
    })
    .await;
    let bearer = format!("Bearer {}", common::token_of(&script));
    let flavor = [("Metadata-Flavor", "IronCore Metal")];
    let authed = [
        ("Metadata-Flavor", "IronCore Metal"),
        ("Authorization", bearer.as_str()),
    ];

    let full = eventually(T, "a's metadata with user-data", || async {
        let (s, body, _) = get(&format!("{md}/v1/"), ip_a, &authed).await;
        (s == 200 && body.contains("user-data")).then_some(body)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(v["server-name"], json!(a.name));
    assert_eq!(v["region"], json!("eu-test"));
    assert_eq!(
        v["user-data"]["cloud-config"],
        json!("#cloud-config\nhostname: a")
    );
    let (s, name, _) = get(&format!("{md}/v1/server-name"), ip_a, &authed).await;
    assert_eq!((s, name.as_str()), (200, a.name.as_str()));
    let (s, cc, _) = get(&format!("{md}/v1/user-data/cloud-config"), ip_a, &authed).await;
    assert_eq!((s, cc.as_str()), (200, "#cloud-config\nhostname: a"));

    // Without the header: 403.
    let (s, _, _) = get(&format!("{md}/v1/"), ip_a, &[]).await;
    assert_eq!(s, 403);
    // From a's address without (or with a wrong) token: nothing, on every endpoint.
    let wrong = [
        ("Metadata-Flavor", "IronCore Metal"),
        ("Authorization", "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ];
    for path in [
        "/v1/",
        "/v1/server-name",
        "/v1/user-data",
        "/v1/user-data/cloud-config",
    ] {
        for headers in [&flavor[..], &wrong[..]] {
            let (s, body, _) = get(&format!("{md}{path}"), ip_a, headers).await;
            assert_eq!(s, 404, "{path} {headers:?}: {body}");
            assert!(
                !body.contains("hostname") && !body.contains(&a.name),
                "{body}"
            );
        }
        // a's token from b's address: b's data is not a's, and a's is not served to b.
        let (s, body, _) = get(&format!("{md}{path}"), ip_b, &authed).await;
        assert_eq!(s, 404, "{path} from b with a's token: {body}");
    }
    // Unknown source address: 404.
    let (s, body, _) = get(
        &format!("{md}/v1/"),
        Some("127.31.11.250".parse().unwrap()),
        &authed,
    )
    .await;
    assert_eq!(s, 404, "{body}");
    let (s, _, _) = get(&format!("{md}/v1/no-such-field"), ip_a, &authed).await;
    assert_eq!(s, 404);
    ctl.shutdown().await;

    // Upstream metaldata behaviour on request: source address only. b (unclaimed) sees only
    // its own metadata, no user-data.
    let mut cfg = h.config();
    cfg.metadata_listen = Some(metal_provisioning::Listen::Addr(
        "127.0.0.1:0".parse().unwrap(),
    ));
    cfg.metadata_auth = metal_provisioning::MetadataAuth::SourceAddress;
    let ctl = h.start(cfg).await;
    let md = format!("http://{}", ctl.metadata_addr.unwrap());
    let body = eventually(T, "b's metadata by address", || async {
        let (s, body, _) = get(&format!("{md}/v1/"), ip_b, &flavor).await;
        (s == 200).then_some(body)
    })
    .await;
    assert!(
        body.contains(&b.name) && !body.contains(&a.name) && !body.contains("user-data"),
        "{body}"
    );
    let (s, _, _) = get(&format!("{md}/v1/user-data"), ip_b, &flavor).await;
    assert_eq!(s, 404);
    let (s, cc, _) = get(&format!("{md}/v1/user-data/cloud-config"), ip_a, &flavor).await;
    assert_eq!((s, cc.as_str()), (200, "#cloud-config\nhostname: a"));
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oci_images_resolve_through_the_registry_and_layers_stream() {
    let reg = common::oci::start().await;
    let h = Harness::new("prov-oci", Options::new("127.31.12.1", 2)).await;
    let (a, b) = (h.servers[0].clone(), h.servers[1].clone());
    let mut cfg = h.config();
    cfg.insecure_registries = vec![reg.host.clone()];
    let ctl = h.start(cfg).await;
    let base = ctl.boot_url.clone();
    let image = format!("{}/{}:1.0", reg.host, reg.repo);
    h.ignition_secret("oci-ign", "{}").await;
    h.bind(
        &a,
        "oa",
        "Off",
        json!({ "image": image, "ignitionSecretRef": { "name": "oci-ign" } }),
    )
    .await;
    let (state, reason, message) = eventually(T, "SBC Ready/ImageResolved", || async {
        sbc_state(&h, "oa").await.filter(|s| s.0 == "Ready")
    })
    .await;
    assert_eq!(reason, "ImageResolved");
    assert!(message.contains(&reg.manifest_digest), "{state}: {message}");
    assert!(
        reg.token_requests.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "token flow used"
    );

    h.open_boot_window(&a.name).await;
    let script = eventually(T, "script of an OCI configuration", || async {
        let (s, body, _) = get(&format!("{base}/ipxe/{}", a.uuid), None, &[]).await;
        (s == 200).then_some(body)
    })
    .await;
    let token = common::token_of(&script);
    let blobs = format!("{base}/artifacts/{}/{token}", a.uuid);
    let kernel_url = format!("{blobs}/{}", reg.kernel.1);
    assert!(
        script.contains(&format!(
            "kernel {kernel_url} initrd=initrd gl.ovl=/:tmpfs gl.url=${{rootfs-url}}"
        )),
        "{script}"
    );
    assert!(script.contains(&format!("set rootfs-url {blobs}/{}", reg.squashfs.1)));
    assert!(script.contains(&format!("initrd --name initrd {blobs}/{}", reg.initrd.1)));
    let (s, body, _) = get(&kernel_url, None, &[]).await;
    assert_eq!((s, body.as_bytes()), (200, reg.kernel.0.as_ref()));
    let (s, body, _) = get(&format!("{blobs}/{}", reg.squashfs.1), None, &[]).await;
    assert_eq!((s, body.as_bytes()), (200, reg.squashfs.0.as_ref()));
    // The blobs need a's token: another server's UUID, a wrong token, no token: nothing.
    for url in [
        format!("{base}/artifacts/{}", reg.kernel.1),
        format!("{base}/artifacts/{}/{token}/{}", b.uuid, reg.kernel.1),
        format!(
            "{base}/artifacts/{}/{}/{}",
            a.uuid,
            "A".repeat(32),
            reg.kernel.1
        ),
    ] {
        let (s, body, _) = get(&url, None, &[]).await;
        assert_eq!(s, 404, "{url}");
        assert_ne!(body.as_bytes(), reg.kernel.0.as_ref(), "{url}");
    }

    // An image without a kernel layer: Error/ImageUnresolvable. A missing tag likewise.
    h.bind(
        &b,
        "ob",
        "Off",
        json!({ "image": format!("{}/{}:no-kernel", reg.host, reg.repo) }),
    )
    .await;
    let (state, reason, message) = eventually(T, "SBC Error", || async {
        sbc_state(&h, "ob").await.filter(|s| s.0 == "Error")
    })
    .await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("Error", "ImageUnresolvable")
    );
    assert!(message.contains("no kernel layer"), "{message}");
    let (s, _, _) = get(&format!("{base}/ipxe/{}", b.uuid), None, &[]).await;
    assert_eq!(s, 404);
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boot_configuration_waits_for_its_ignition_secret() {
    let h = Harness::new("prov-sbc", Options::new("127.31.13.1", 1)).await;
    let a = h.servers[0].clone();
    let ctl = h.start(h.config()).await;
    h.bind(&a, "sa", "On", network_boot(Some("late-ign"))).await;
    let (state, reason, _) = eventually(T, "SBC Pending", || async {
        sbc_state(&h, "sa").await.filter(|s| s.0 == "Pending")
    })
    .await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("Pending", "IgnitionSecretMissing")
    );
    eventually(
        T,
        "claim PoweredOn=False/WaitingForBootConfiguration",
        || async {
            let c = h.claim_condition("sa", "PoweredOn").await?;
            (c.1 == "WaitingForBootConfiguration").then_some(())
        },
    )
    .await;
    assert_eq!(
        h.resets(&a),
        0,
        "no power-on before the configuration is Ready"
    );
    h.ignition_secret("late-ign", "{}").await;
    eventually(T, "SBC Ready", || async {
        sbc_state(&h, "sa").await.filter(|s| s.0 == "Ready")
    })
    .await;
    h.wait_power(&a, metal_bmc_sim::PowerState::On, T).await;
    assert_eq!(h.resets(&a), 1);
    ctl.shutdown().await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_shard_that_holds_the_server_writes_its_boot_configuration() {
    let h = Harness::new("prov-shard", Options::new("127.31.14.1", 1)).await;
    let a = h.servers[0].clone();
    // An instance for another shard (its selector matches none of this harness's servers).
    let mut other = h.config();
    other.server_selector = Some(format!("{}=another-rack", common::SHARD_LABEL));
    let other = h.start(other).await;
    h.bind(&a, "sh", "On", network_boot(Some("sh-ign"))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sbc_state(&h, "sh").await,
        None,
        "the other shard's instance leaves the configuration alone"
    );
    // The owning shard's instance writes it.
    let ctl = h.start(h.config()).await;
    let (_, reason, _) = eventually(T, "SBC Pending", || async {
        sbc_state(&h, "sh").await.filter(|s| s.0 == "Pending")
    })
    .await;
    assert_eq!(reason, "IgnitionSecretMissing");
    h.ignition_secret("sh-ign", "{}").await;
    eventually(T, "SBC Ready", || async {
        sbc_state(&h, "sh").await.filter(|s| s.0 == "Ready")
    })
    .await;
    ctl.shutdown().await;
    // Still Ready with only the other shard's instance left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sbc_state(&h, "sh").await.map(|s| s.0), Some("Ready".into()));
    other.shutdown().await;
    h.sim.shutdown().await;
}
