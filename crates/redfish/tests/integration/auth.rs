//! Sessions, basic auth, re-login, single-flight login, logout, and credentials never printed.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use redfish::{
    AuthMode, BmcEndpoint, Client, ClientOptions, Credentials, ErrorClass, Secret,
    SimpleUpdateRequest,
};

use super::support::{AuthConfig, FaultKind, ServerOptions, TEST_PASSWORD, TreeServer};
use super::*;

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

#[tokio::test]
async fn one_session_for_many_concurrent_callers() {
    let s = TreeServer::start(
        tree(DELL),
        ServerOptions {
            auth: AuthConfig {
                max_sessions: Some(1),
                ..AuthConfig::default()
            },
            ..ServerOptions::default()
        },
    );
    let c = client(&s, fast());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.systems().await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().len(), 1);
    }
    assert_eq!(s.sessions_created(), 1);
    assert_eq!(c.auth_in_use(), Some(AuthMode::Session));
    let log = s.log();
    assert!(
        log.iter()
            .filter(|l| l.path.starts_with("/redfish/v1/Systems"))
            .all(|l| l.auth == "token"),
        "{log:?}"
    );
}

#[tokio::test]
async fn relogs_in_once_after_401() {
    let s = serve(DELL);
    let c = client(&s, fast());
    c.systems().await.unwrap();
    s.expire_sessions();
    let sys = c.system(DELL_SYS).await.unwrap();
    assert_eq!(sys.model.as_deref(), Some("PowerEdge R750"));
    assert_eq!(s.sessions_created(), 2);
    // A BMC that keeps answering 401 gets exactly one re-login per call, then AuthenticationFailed.
    s.fault(
        DELL_SYS,
        FaultKind::Status {
            status: 401,
            retry_after: None,
            body: None,
        },
        None,
    );
    let before = s.sessions_created();
    let e = c.system(DELL_SYS).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::AuthenticationFailed);
    assert_eq!(s.sessions_created(), before + 1);
}

#[tokio::test]
async fn basic_auth_when_asked_and_when_there_is_no_session_service() {
    let s = serve(DMTF);
    let c = client(
        &s,
        ClientOptions {
            auth: AuthMode::Basic,
            ..fast()
        },
    );
    c.systems().await.unwrap();
    assert_eq!(s.sessions_created(), 0);
    assert!(
        s.log()
            .iter()
            .filter(|l| l.path.starts_with("/redfish/v1/Systems"))
            .all(|l| l.auth == "basic")
    );

    let s = TreeServer::start(
        tree(DMTF),
        ServerOptions {
            auth: AuthConfig {
                sessions: false,
                ..AuthConfig::default()
            },
            ..ServerOptions::default()
        },
    );
    let c = client(&s, fast());
    c.systems().await.unwrap();
    assert_eq!(c.auth_in_use(), Some(AuthMode::Basic));
    let c = client(
        &s,
        ClientOptions {
            auth: AuthMode::Session,
            ..fast()
        },
    );
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported, "{e}");
}

#[tokio::test]
async fn wrong_password_is_authentication_failed_and_not_printed() {
    let s = serve(DELL);
    let ep = BmcEndpoint::parse(&s.url()).unwrap();
    let c = Client::new(
        ep.clone(),
        Credentials::new("admin", "Wr0ng-Secret-Value"),
        fast(),
    )
    .unwrap();
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::AuthenticationFailed, "{e}");
    let text = format!("{e} {e:?} {c:?}");
    assert!(!text.contains("Wr0ng-Secret-Value"), "{text}");
    let c = Client::new(
        ep,
        Credentials::new("admin", "Wr0ng-Secret-Value"),
        ClientOptions {
            auth: AuthMode::Basic,
            ..fast()
        },
    )
    .unwrap();
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::AuthenticationFailed, "{e}");
}

#[tokio::test]
async fn logout_and_drop_close_the_session() {
    let s = serve(DELL);
    let c = client(&s, fast());
    c.systems().await.unwrap();
    assert_eq!(s.open_sessions(), 1);
    c.logout().await.unwrap();
    assert_eq!(s.open_sessions(), 0);
    assert_eq!(s.requests(&Method::DELETE, SESSIONS).len(), 1);
    // Later calls log in again.
    c.systems().await.unwrap();
    assert_eq!(s.open_sessions(), 1);
    drop(c);
    for _ in 0..50 {
        if s.open_sessions() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        s.open_sessions(),
        0,
        "dropping the client did not delete its session"
    );
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

/// A current-thread runtime and a TRACE subscriber (set for this thread while the guard lives)
/// whose output lands in the returned capture.
fn capturing_runtime() -> (
    Capture,
    tracing::subscriber::DefaultGuard,
    tokio::runtime::Runtime,
) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (capture, guard, rt)
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn credentials_never_reach_logs_debug_or_errors() {
    let (capture, _guard, rt) = capturing_runtime();
    let image_password = "Img-Server-Pa55";
    let texts = rt.block_on(async {
        let s = serve(DELL);
        // A BMC that echoes the rejected value (iDRAC does), password included.
        let echo = format!(
            r#"{{"error":{{"code":"Base.1.8.GeneralError","message":"x","@Message.ExtendedInfo":[{{"MessageId":"Base.1.8.PropertyValueFormatError","Message":"The value '{image_password}' for the property Password is of a different format"}}]}}}}"#
        );
        s.fault("/redfish/v1/UpdateService/Actions", FaultKind::Status { status: 400, retry_after: None, body: Some(echo) }, Some(1));
        let c = client(&s, fast());
        let mut texts = vec![format!("{c:?}"), format!("{:?}", s.credentials())];
        c.inventory(DELL_SYS).await.unwrap();
        let req = SimpleUpdateRequest {
            image_uri: "http://10.0.0.5/fw.exe".into(),
            username: Some("fw".into()),
            password: Some(Secret::new(image_password)),
            ..SimpleUpdateRequest::default()
        };
        texts.push(format!("{req:?}"));
        let e = c.simple_update(&req).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Rejected);
        texts.push(format!("{e} {e:?}"));
        s.expire_sessions();
        c.systems().await.unwrap();
        let bad = Client::new(BmcEndpoint::parse(&s.url()).unwrap(), Credentials::new("admin", "Another-Bad-Pw"), fast()).unwrap();
        let e = bad.systems().await.unwrap_err();
        texts.push(format!("{e} {e:?} {bad:?}"));
        c.logout().await.unwrap();
        texts
    });
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Redfish session opened"),
        "trace logs were not captured: {logs}"
    );
    for t in texts.iter().chain(std::iter::once(&logs)) {
        for secret in [TEST_PASSWORD, image_password, "Another-Bad-Pw"] {
            assert!(!t.contains(secret), "secret {secret} leaked into: {t}");
        }
        assert!(!t.contains("tok-"), "session token leaked into: {t}");
    }
}

/// Options whose session retry after a refused login comes quickly.
fn quick_session_retry(auth: AuthMode) -> ClientOptions {
    ClientOptions {
        auth,
        session_retry_interval: Duration::from_millis(400),
        ..fast()
    }
}

fn systems_auth(s: &TreeServer) -> Vec<&'static str> {
    s.log()
        .iter()
        .filter(|l| l.path.starts_with("/redfish/v1/Systems"))
        .map(|l| l.auth)
        .collect()
}

/// The Dell tree on a BMC whose session slots are all taken: every login gets 503.
fn dell_without_session_slots() -> TreeServer {
    TreeServer::start(
        tree(DELL),
        ServerOptions {
            auth: AuthConfig {
                max_sessions: Some(0),
                ..AuthConfig::default()
            },
            ..ServerOptions::default()
        },
    )
}

#[tokio::test]
async fn session_limit_falls_back_to_basic_then_back_to_a_session() {
    // A BMC whose session slots are all taken (killed controllers' sessions linger): 503.
    let s = dell_without_session_slots();
    let c = client(&s, quick_session_retry(AuthMode::Auto));
    assert_eq!(c.systems().await.unwrap().len(), 1);
    c.system(DELL_SYS).await.unwrap();
    assert_eq!(c.auth_in_use(), Some(AuthMode::Basic));
    assert_eq!(s.sessions_created(), 0);
    assert_eq!(systems_auth(&s), ["basic", "basic"]);
    assert_eq!(
        s.requests(&Method::POST, SESSIONS).len(),
        1,
        "no new login attempt before the retry interval"
    );

    // Still full when the interval has passed: one more attempt, then basic again.
    tokio::time::sleep(Duration::from_millis(450)).await;
    c.system(DELL_SYS).await.unwrap();
    assert_eq!(s.requests(&Method::POST, SESSIONS).len(), 2);
    assert_eq!(c.auth_in_use(), Some(AuthMode::Basic));

    // Slots freed: after the interval the client is back on a session.
    s.with_options(|o| o.auth.max_sessions = None);
    c.system(DELL_SYS).await.unwrap();
    assert_eq!(s.sessions_created(), 0, "not before the interval");
    tokio::time::sleep(Duration::from_millis(450)).await;
    c.system(DELL_SYS).await.unwrap();
    c.systems().await.unwrap();
    assert_eq!(s.sessions_created(), 1);
    assert_eq!(c.auth_in_use(), Some(AuthMode::Session));
    assert_eq!(
        systems_auth(&s).last().copied(),
        Some("token"),
        "{:?}",
        systems_auth(&s)
    );
    c.logout().await.unwrap();
    assert_eq!(s.open_sessions(), 0);
}

#[tokio::test]
async fn busy_session_logins_fall_back_in_auto_and_fail_busy_in_session_mode() {
    let limit_body = |status: u16| {
        format!(
            r#"{{"error":{{"code":"Base.1.8.GeneralError","message":"x","@Message.ExtendedInfo":[{{"MessageId":"Base.1.8.SessionLimitExceeded","Message":"The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation ({status})."}}]}}}}"#
        )
    };
    let cases = [
        (400, Some(limit_body(400))),
        (409, Some(limit_body(409))),
        (429, None),
        (503, None),
    ];
    for (status, body) in cases {
        let s = serve(DELL);
        s.fault_method(
            Method::POST,
            SESSIONS,
            FaultKind::Status {
                status,
                retry_after: None,
                body: body.clone(),
            },
            None,
        );
        let c = client(&s, quick_session_retry(AuthMode::Auto));
        c.system(DELL_SYS).await.unwrap();
        assert_eq!(c.auth_in_use(), Some(AuthMode::Basic), "{status}");
        assert_eq!(systems_auth(&s), ["basic"], "{status}");

        let c = client(&s, quick_session_retry(AuthMode::Session));
        let e = c.system(DELL_SYS).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Busy, "{status}: {e}");
        assert_eq!(e.status(), Some(status));
        assert_eq!(systems_auth(&s), ["basic"], "no basic auth in Session mode");
    }
}

#[tokio::test]
async fn rejected_or_unauthorized_logins_do_not_fall_back() {
    // Wrong password: 401 on the login, AuthenticationFailed, basic auth never tried.
    let s = serve(DELL);
    let bad = Client::new(
        BmcEndpoint::parse(&s.url()).unwrap(),
        Credentials::new("admin", "Wr0ng-Secret-Value"),
        quick_session_retry(AuthMode::Auto),
    )
    .unwrap();
    let e = bad.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::AuthenticationFailed, "{e}");
    assert_eq!(bad.auth_in_use(), None);
    assert!(systems_auth(&s).is_empty(), "{:?}", s.log());

    // A 401 stays AuthenticationFailed even when its body talks about sessions.
    let limit401 = r#"{"error":{"code":"Base.1.8.SessionLimitExceeded","message":"x","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.SessionLimitExceeded"}]}}"#;
    let s = serve(DELL);
    s.fault_method(
        Method::POST,
        SESSIONS,
        FaultKind::Status {
            status: 401,
            retry_after: None,
            body: Some(limit401.into()),
        },
        None,
    );
    let c = client(&s, quick_session_retry(AuthMode::Auto));
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::AuthenticationFailed, "{e}");
    assert!(systems_auth(&s).is_empty());

    // Any other 4xx is a real rejection.
    let s = serve(DELL);
    s.fault_method(
        Method::POST,
        SESSIONS,
        FaultKind::Status {
            status: 400,
            retry_after: None,
            body: Some(r#"{"error":{"code":"Base.1.8.GeneralError","message":"x","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.PropertyMissing"}]}}"#.into()),
        },
        None,
    );
    let c = client(&s, quick_session_retry(AuthMode::Auto));
    let e = c.systems().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Rejected, "{e}");
    assert!(systems_auth(&s).is_empty());
}

#[test]
fn session_fallback_warns_once_without_credentials() {
    let (capture, _guard, rt) = capturing_runtime();
    rt.block_on(async {
        let s = dell_without_session_slots();
        let c = client(&s, quick_session_retry(AuthMode::Auto));
        for _ in 0..2 {
            c.systems().await.unwrap();
            c.system(DELL_SYS).await.unwrap();
            tokio::time::sleep(Duration::from_millis(450)).await;
        }
        c.systems().await.unwrap();
        assert_eq!(s.requests(&Method::POST, SESSIONS).len(), 3);
    });
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let warns: Vec<&str> = logs.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warns.len(), 1, "{logs}");
    assert!(warns[0].contains("using basic auth"), "{}", warns[0]);
    assert!(warns[0].contains("SessionLimitExceeded"), "{}", warns[0]);
    assert!(
        !logs.contains(TEST_PASSWORD),
        "password leaked into: {logs}"
    );
}
