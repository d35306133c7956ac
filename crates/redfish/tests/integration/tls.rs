//! TLS: verification on by default, a CA bundle per BMC, IP-address server names, explicit insecure mode.

use redfish::{BmcEndpoint, Client, ErrorClass, ErrorKind};

use super::support::{ServerOptions, TreeServer, test_pki};
use super::*;

fn tls_server() -> TreeServer {
    TreeServer::start(
        tree(DMTF),
        ServerOptions {
            tls: true,
            ..ServerOptions::default()
        },
    )
}

#[tokio::test]
async fn ca_bundle_verifies_an_ip_address_certificate() {
    let s = tls_server();
    assert!(s.url().starts_with("https://127.0.0.1:"));
    let c = client(&s, fast());
    let inv = c.inventory(DMTF_SYS).await.unwrap();
    assert_eq!(inv.serial_number.as_deref(), Some("437XR1138R2"));
}

#[tokio::test]
async fn public_roots_reject_a_private_ca_and_insecure_must_be_explicit() {
    let s = tls_server();
    let ep = BmcEndpoint::parse(&s.url()).unwrap();
    let c = Client::new(ep.clone(), s.credentials(), fast()).unwrap();
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unreachable, "{e}");
    assert!(
        matches!(e.kind(), ErrorKind::Tls(m) if m.contains("certificate")),
        "{e:?}"
    );

    let other_ca = test_pki().ca_pem;
    let c = Client::new(
        ep.clone().with_ca_bundle_pem(other_ca.as_bytes()).unwrap(),
        s.credentials(),
        fast(),
    )
    .unwrap();
    assert_eq!(
        c.systems().await.unwrap_err().class(),
        ErrorClass::Unreachable
    );

    let c = Client::new(ep.insecure(), s.credentials(), fast()).unwrap();
    assert_eq!(c.systems().await.unwrap().len(), 1);
}
