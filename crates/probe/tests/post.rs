//! Posting to a registry stand-in: auth header, payload shape, retries, final errors.

mod common;

use std::time::Duration;

use metal_probe::{NetworkInterface, PostError, PostOptions, Report, post_bootstate, post_with};

fn fast() -> PostOptions {
    PostOptions {
        timeout: Duration::from_secs(2),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ca_pem: None,
    }
}

#[tokio::test]
async fn posts_payload_with_bearer_token() {
    let (fake, addr) = common::Fake::start(&[]).await;
    let report = Report::new()
        .with_interface(NetworkInterface::new("eno1", "AA:BB:CC:00:00:01").with_carrier(true));
    post_with(
        &fast(),
        &format!("http://{addr}"),
        "uuid-1",
        "s3cret",
        &report,
    )
    .await
    .unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/register");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    assert_eq!(seen[0].body["systemUUID"], "uuid-1");
    assert_eq!(
        seen[0].body["data"]["networkInterfaces"][0]["macAddress"],
        "aa:bb:cc:00:00:01"
    );
    assert_eq!(
        seen[0].body["data"]["networkInterfaces"][0]["carrierStatus"],
        "up"
    );
}

#[tokio::test]
async fn retries_server_errors_then_succeeds() {
    let (fake, addr) = common::Fake::start(&[503, 500, 201]).await;
    post_with(
        &fast(),
        &format!("http://{addr}/"),
        "u",
        "t",
        &Report::new(),
    )
    .await
    .unwrap();
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test]
async fn unauthorized_is_final() {
    let (fake, addr) = common::Fake::start(&[403, 201]).await;
    let err = post_with(
        &fast(),
        &format!("http://{addr}"),
        "u",
        "wrong",
        &Report::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PostError::Unauthorized { status: 403 }),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"));
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn gives_up_after_attempts() {
    let (fake, addr) = common::Fake::start(&[503, 503, 503, 503, 503]).await;
    let err = post_with(&fast(), &format!("http://{addr}"), "u", "t", &Report::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PostError::Server {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.seen().len(), 4);
    let err = post_with(&fast(), "http://127.0.0.1:1", "u", "t", &Report::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PostError::Unreachable { attempts: 4, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn bootstate_payload() {
    let (fake, addr) = common::Fake::start(&[200]).await;
    post_bootstate(&fast(), &format!("http://{addr}"), "u-9", "t", true)
        .await
        .unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/bootstate");
    assert_eq!(
        seen[0].body,
        serde_json::json!({"systemUUID": "u-9", "booted": true})
    );
}
