//! Endpoints with a MAC-prefix database; BMCUser create, rotate (verified), delete.

use std::time::Duration;

use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::bmcuser::BMCUser;
use api::endpoint::Endpoint;
use api::server::ServerState;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_bmc_sim::TemplateSource;
use metal_discovery::logic::macdb::MacDb;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn endpoint_with_mac_prefix_database_becomes_bmc() {
    let sim = sim(rack(
        "127.69.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let info = sim.bmcs()[0].clone();
    let db = MacDb::parse(&format!(
        "macPrefixes:\n- macPrefix: \"AA:BB:CC\"\n  manufacturer: Contoso\n  protocol: Redfish\n  protocolScheme: https\n  port: {}\n  type: bmc\n  defaultCredentials:\n    - username: {}\n      password: wrong-default\n    - username: {}\n      password: {}\n  console:\n    type: SSH\n    port: 22\n",
        info.port, info.username, info.username, info.password
    ))
    .unwrap();
    let h = Harness::start_with(
        "endpoint",
        Some(db),
        info.ca_pem.clone().map(String::into_bytes),
        |_| {},
    )
    .await;
    let name = h.name("ep");
    let ep: Endpoint = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Endpoint",
        "metadata": {"name": name, "labels": h.labels()},
        "spec": {"macAddress": "aa:bb:cc:00:00:01", "ip": info.ip.to_string()}
    }))
    .unwrap();
    Api::<Endpoint>::all(h.client.clone())
        .create(&PostParams::default(), &ep)
        .await
        .unwrap();

    let secret = eventually(
        "BMCSecret from the endpoint",
        Duration::from_secs(60),
        async || {
            Api::<BMCSecret>::all(h.client.clone())
                .get_opt(&name)
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(
        secret.spec.username().as_deref(),
        Some(info.username.as_str())
    );
    assert_eq!(
        secret.spec.password().as_deref(),
        Some(info.password.as_str()),
        "the working default credential"
    );
    let bmc = h
        .wait_ready(&name, "True", "Connected", Duration::from_secs(60))
        .await;
    assert_eq!(
        bmc.spec.endpoint_ref.as_ref().map(|r| r.name.as_str()),
        Some(name.as_str())
    );
    assert_eq!(bmc.spec.protocol.port, i32::from(info.port));
    assert_eq!(bmc.spec.console_protocol.as_ref().map(|c| c.port), Some(22));
    assert_eq!(
        bmc.spec.bmc_uuid.as_deref(),
        Some("3f8c1b52-6d0a-4c6e-9b0e-5a1d2c3b4e02"),
        "manager UUID discovered"
    );
    let st = bmc.status.unwrap();
    assert_eq!(st.ip.as_deref(), Some(info.ip.to_string().as_str()));
    assert_eq!(st.mac_address.as_deref(), Some("aa:bb:cc:00:00:01"));
    h.wait_state(
        &format!("{name}-system-0"),
        ServerState::Available,
        Duration::from_secs(60),
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn bmcuser_create_rotate_verify_delete() {
    let sim = sim(rack(
        "127.70.0.1",
        vec![group(1, TemplateSource::default())],
    ))
    .await;
    let info = sim.bmcs()[0].clone();
    let h = Harness::start("bmcuser", |_| {}).await;
    let bmc = h.add_bmc(&info, &[]).await;
    h.wait_ready(&bmc, "True", "Connected", Duration::from_secs(30))
        .await;
    let users: Api<BMCUser> = Api::all(h.client.clone());
    let secrets: Api<BMCSecret> = Api::all(h.client.clone());
    let name = h.name("user");
    let user: BMCUser = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCUser",
        "metadata": {"name": name, "labels": h.labels()},
        "spec": {"userName": "metal-ops", "roleID": "Operator", "bmcRef": {"name": bmc}}
    }))
    .unwrap();
    users.create(&PostParams::default(), &user).await.unwrap();

    let effective = |u: &BMCUser| {
        u.status
            .as_ref()
            .and_then(|s| s.effective_bmc_secret_ref.as_ref())
            .map(|r| r.name.clone())
    };
    let u = eventually("effective secret", Duration::from_secs(60), async || {
        let u = users.get(&name).await.unwrap();
        (effective(&u).is_some()
            && effective(&u) == u.spec.bmc_secret_ref.as_ref().map(|r| r.name.clone()))
        .then_some(u)
    })
    .await;
    let first = effective(&u).unwrap();
    let st = u.status.clone().unwrap();
    assert!(st.id.is_some() && st.last_rotation.is_some());
    assert!(api::conditions::is_true(&st.conditions, "Ready"));
    let s1 = secrets.get(&first).await.unwrap();
    assert_eq!(s1.spec.immutable, Some(true));
    assert_eq!(s1.metadata.owner_references.as_ref().unwrap()[0].name, name);
    let pw1 = s1.spec.password().unwrap();
    assert_eq!(s1.spec.username().as_deref(), Some("metal-ops"));
    // The account exists and the generated password works on the BMC.
    let admin = redfish_client(&info, &info.password);
    assert!(
        admin
            .accounts()
            .await
            .unwrap()
            .iter()
            .any(|a| a.user_name.as_deref() == Some("metal-ops"))
    );
    let as_user = |pw: &str| {
        let mut i = info.clone();
        i.username = "metal-ops".into();
        redfish_client(&i, pw)
    };
    as_user(&pw1)
        .managers()
        .await
        .expect("generated password works");

    // Rotation on request.
    let rot = json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "rotate-credentials"}}});
    users
        .patch(&name, &PatchParams::default(), &Patch::Merge(&rot))
        .await
        .unwrap();
    let u = eventually("rotated", Duration::from_secs(60), async || {
        let u = users.get(&name).await.unwrap();
        (effective(&u).is_some_and(|e| e != first)
            && effective(&u) == u.spec.bmc_secret_ref.as_ref().map(|r| r.name.clone()))
        .then_some(u)
    })
    .await;
    assert!(
        u.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("metal.ironcore.dev/operation"))
    );
    let second = effective(&u).unwrap();
    let pw2 = secrets.get(&second).await.unwrap().spec.password().unwrap();
    assert_ne!(pw1, pw2);
    as_user(&pw2).managers().await.expect("new password works");
    let old = as_user(&pw1)
        .managers()
        .await
        .expect_err("old password no longer works");
    assert_eq!(old.class(), redfish::ErrorClass::AuthenticationFailed);
    eventually(
        "previous generated secret deleted",
        Duration::from_secs(30),
        async || {
            secrets
                .get_opt(&first)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    // Rotation by period.
    let period = json!({"spec": {"rotationPeriod": "3s"}});
    users
        .patch(&name, &PatchParams::default(), &Patch::Merge(&period))
        .await
        .unwrap();
    eventually("rotated by period", Duration::from_secs(60), async || {
        let u = users.get(&name).await.unwrap();
        let e = effective(&u)?;
        (e != second && e != first && u.status.as_ref()?.password_expiration.is_some())
            .then_some(())
    })
    .await;

    // Deleting the BMCUser removes the account.
    users.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("BMCUser gone", Duration::from_secs(30), async || {
        users.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        !admin
            .accounts()
            .await
            .unwrap()
            .iter()
            .any(|a| a.user_name.as_deref() == Some("metal-ops"))
    );
    let _ = Api::<BMC>::all(h.client.clone());
    sim.shutdown().await;
}
