//! Against sushy-emulator (OpenStack's independent Redfish implementation, PyPI `sushy-tools==2.2.0`,
//! fake driver) over TLS with basic auth: power on/off/restart, boot override, virtual media insert and
//! eject (the emulator downloads the image from a tiny local HTTP server), inventory.
//!
//! The venv is made by `scripts/sushy-venv.sh` (cached in `${METAL_CACHE:-~/.cache/metal}/sushy-venv`).
//! The test skips, with a message, only when `python3` is missing; any other problem fails it.

#[path = "support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use redfish::models::{BootSource, BootSourceOverrideEnabled, PowerState, ResetType};
use redfish::{
    AuthMode, BmcEndpoint, BootOverride, Client, ClientOptions, Credentials, InsertMedia,
    MediaOutcome, PowerOutcome,
};

const UUID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
const USER: &str = "sushy-admin";
const PASSWORD: &str = "Sushy-Test-Pw-9";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv() -> Option<PathBuf> {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIP: python3 not found; the sushy-emulator test needs it (sushy-tools from PyPI)"
        );
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sushy-venv.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run sushy-venv.sh");
    assert!(out.status.success(), "{} failed", script.display());
    Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
}

/// Serves a fake ISO on 127.0.0.1 for the emulator to download.
async fn iso_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    let mut iso = b"CD001".to_vec();
                    iso.resize(64 * 1024, 0x20);
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/octet-stream")
                            .body(Full::new(Bytes::from(iso)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, task)
}

struct Emulator {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
    ca_pem: String,
}

async fn start_emulator(venv: &Path) -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::test_pki();
    std::fs::write(dir.path().join("leaf.crt"), &pki.leaf_pem).unwrap();
    std::fs::write(dir.path().join("leaf.key"), &pki.leaf_key_pem).unwrap();
    // bcrypt with a low cost: sushy checks it on every request.
    let hash = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", &format!("import bcrypt; print(bcrypt.hashpw(b'{PASSWORD}', bcrypt.gensalt(rounds=4)).decode())")])
        .output()
        .unwrap();
    assert!(hash.status.success());
    std::fs::write(
        dir.path().join("htpasswd"),
        format!("{USER}:{}", String::from_utf8(hash.stdout).unwrap().trim()),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = {port}
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_STATE_DIR = '{d}/state'
SUSHY_EMULATOR_AUTH_FILE = '{d}/htpasswd'
SUSHY_EMULATOR_SSL_CERT = '{d}/leaf.crt'
SUSHY_EMULATOR_SSL_KEY = '{d}/leaf.key'
SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{UUID}', 'name': 'node-0', 'power_state': 'Off',
                                'nics': [{{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.1'}}]}}]
SUSHY_EMULATOR_STORAGE = {{'{UUID}': [{{'Id': '1', 'Name': 'Local Storage Controller',
    'StorageControllers': [{{'MemberId': '0', 'Name': 'Contoso Integrated RAID', 'SpeedGbps': 12}}],
    'Drives': ['32ADF365C6C1B7BD']}}]}}
SUSHY_EMULATOR_DRIVES = {{('{UUID}', '1'): [{{'Id': '32ADF365C6C1B7BD', 'Name': 'Drive Sample',
    'CapacityBytes': 899527000000, 'Protocol': 'SAS'}}]}}
"#
    );
    std::fs::write(dir.path().join("emulator.conf"), conf).unwrap();
    let child = tokio::process::Command::new(venv.join("bin/sushy-emulator"))
        .arg("--config")
        .arg(dir.path().join("emulator.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("emulator.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start sushy-emulator");
    Emulator {
        child,
        _dir: dir,
        port,
        ca_pem: pki.ca_pem,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_emulator_over_tls_with_basic_auth() {
    let Some(venv) = venv() else { return };
    let mut emu = start_emulator(&venv).await;
    let ep = BmcEndpoint::parse(&format!("https://127.0.0.1:{}", emu.port))
        .unwrap()
        .with_ca_bundle_pem(emu.ca_pem.as_bytes())
        .unwrap();
    let opts = ClientOptions {
        poll_interval: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let client = Client::new(ep, Credentials::new(USER, PASSWORD), opts).unwrap();

    // Wait for the emulator to listen.
    let started = Instant::now();
    loop {
        if client.service_root().await.is_ok() {
            break;
        }
        if let Some(status) = emu.child.try_wait().unwrap() {
            let log =
                std::fs::read_to_string(emu._dir.path().join("emulator.log")).unwrap_or_default();
            panic!("sushy-emulator exited with {status}: {log}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sushy-emulator did not come up"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let systems = client.systems().await.unwrap();
    assert_eq!(systems.len(), 1);
    let sys = systems[0].odata_id.clone();
    assert_eq!(systems[0].uuid.as_deref(), Some(UUID));
    assert_eq!(
        client.auth_in_use(),
        Some(AuthMode::Basic),
        "sushy has no SessionService: basic auth"
    );

    let inv = client.inventory(&sys).await.unwrap();
    assert_eq!(inv.uuid.as_deref(), Some(UUID));
    assert_eq!(inv.manufacturer.as_deref(), Some("Sushy Emulator"));
    assert_eq!(
        inv.nics
            .iter()
            .map(|n| n.mac_address.clone().unwrap_or_default().to_lowercase())
            .collect::<Vec<_>>(),
        ["52:54:00:00:00:01"]
    );
    assert_eq!(inv.storages.len(), 1);
    assert_eq!(inv.storages[0].drives.len(), 1);
    assert_eq!(
        inv.storages[0].drives[0].capacity_bytes,
        Some(899_527_000_000)
    );
    assert_eq!(inv.storages[0].controllers.len(), 1);
    // The fake driver answers 500 on Volumes (they need libvirt): left out, not fatal.
    assert!(inv.storages[0].volumes.is_empty());
    assert!(inv.bmc_firmware_version.is_some());

    // Power: on (from Off), restart, off; the fake driver settles after 1-11 s.
    let settle = Duration::from_secs(40);
    assert_eq!(
        client.power_on(&sys).await.unwrap(),
        PowerOutcome::Issued(ResetType::On)
    );
    client
        .wait_for_power_state(&sys, PowerState::On, settle)
        .await
        .unwrap();
    assert_eq!(
        client.power_on(&sys).await.unwrap(),
        PowerOutcome::AlreadyInState(PowerState::On)
    );
    assert_eq!(
        client.restart(&sys, true).await.unwrap(),
        PowerOutcome::Issued(ResetType::GracefulRestart)
    );
    client
        .wait_for_power_state(&sys, PowerState::On, settle)
        .await
        .unwrap();
    assert_eq!(
        client.force_off(&sys).await.unwrap(),
        PowerOutcome::Issued(ResetType::ForceOff)
    );
    client
        .wait_for_power_state(&sys, PowerState::Off, settle)
        .await
        .unwrap();

    // Boot override (sushy always reads Continuous back).
    assert!(
        client
            .set_boot_override(&sys, BootSource::Pxe, BootOverride::Once)
            .await
            .unwrap()
    );
    let boot = client.system(&sys).await.unwrap().boot.unwrap();
    assert_eq!(boot.override_target, Some(BootSource::Pxe));
    assert!(
        client
            .set_boot_override(&sys, BootSource::Cd, BootOverride::Continuous)
            .await
            .unwrap()
    );
    let boot = client.system(&sys).await.unwrap().boot.unwrap();
    assert_eq!(
        (boot.override_target, boot.override_enabled),
        (
            Some(BootSource::Cd),
            Some(BootSourceOverrideEnabled::Continuous)
        )
    );
    assert!(
        !client
            .set_boot_override(&sys, BootSource::Cd, BootOverride::Continuous)
            .await
            .unwrap(),
        "identical override re-sent"
    );

    // Virtual media from a local HTTP server.
    let (iso_port, iso_task) = iso_server().await;
    let image = format!("http://127.0.0.1:{iso_port}/boot.iso");
    assert_eq!(
        client.eject_media(&sys).await.unwrap(),
        MediaOutcome::NothingToEject
    );
    let media = InsertMedia {
        image: image.clone(),
        ..InsertMedia::default()
    };
    assert_eq!(
        client.insert_media(&sys, &media).await.unwrap(),
        MediaOutcome::Inserted { ejected: None }
    );
    let cd = client
        .virtual_media(&sys)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.is_optical())
        .unwrap();
    assert_eq!(cd.image.as_deref(), Some(image.as_str()));
    assert_eq!(cd.inserted, Some(true));
    assert_eq!(
        client.insert_media(&sys, &media).await.unwrap(),
        MediaOutcome::AlreadyInserted
    );
    assert_eq!(
        client.eject_media(&sys).await.unwrap(),
        MediaOutcome::Ejected
    );
    let cd = client
        .virtual_media(&sys)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.is_optical())
        .unwrap();
    assert_eq!(
        cd.image, None,
        "an empty slot reads Image: \"\" and must be read as none"
    );
    assert!(!cd.is_inserted());
    iso_task.abort();
    eprintln!(
        "sushy-emulator: {} requests in {:?}",
        client.request_count(),
        started.elapsed()
    );
}
