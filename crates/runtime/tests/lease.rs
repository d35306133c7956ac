//! Leader election against a real kube-apiserver: one leader at a time, take-over after a kill
//! within the lease duration, immediate hand-over on clean shutdown, and fencing of a leader that
//! cannot renew.

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use metal_runtime::lease::{LeaseParams, run_while_leading, spawn};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LEASE_SECS: f64 = 3.0;

fn example_bin() -> PathBuf {
    // target/<profile>/deps/lease-xxxx -> target/<profile>/examples/lease_holder
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("examples/lease_holder")
}

type Log = Arc<Mutex<Vec<(Instant, String)>>>;

struct Holder {
    identity: String,
    child: Child,
    log: Log,
}

impl Holder {
    async fn start(ns: &str, lease: &str, identity: &str) -> Self {
        let cp = testenv::shared();
        let mut child = Command::new(example_bin())
            .arg(cp.kubeconfig())
            .arg(ns)
            .arg(lease)
            .arg(identity)
            .arg(LEASE_SECS.to_string())
            .env("METAL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start lease_holder example (built by cargo test)");
        let log: Log = Arc::default();
        let out = child.stdout.take().expect("stdout");
        let l = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                l.lock().expect("log").push((Instant::now(), line));
            }
        });
        Self {
            identity: identity.to_string(),
            child,
            log,
        }
    }

    fn first(&self, what: &str) -> Option<Instant> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .find(|(_, l)| l == what)
            .map(|(t, _)| *t)
    }

    fn is_leading(&self) -> bool {
        let log = self.log.lock().expect("log");
        let last_lead = log.iter().rposition(|(_, l)| l == "leading");
        let last_stop = log.iter().rposition(|(_, l)| l == "stopped");
        match (last_lead, last_stop) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => true,
            _ => false,
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid");
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn holder_of(client: &kube::Client, ns: &str, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    api.get(lease)
        .await
        .ok()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Starts two holders and returns (leader, standby) once one leads.
async fn two_holders(ns: &str, lease: &str) -> (Holder, Holder) {
    let a = Holder::start(ns, lease, "replica-a").await;
    let b = Holder::start(ns, lease, "replica-b").await;
    wait_for("a leader", Duration::from_secs(20), || {
        a.is_leading() || b.is_leading()
    })
    .await;
    if a.is_leading() { (a, b) } else { (b, a) }
}

#[tokio::test]
async fn exactly_one_leads_and_kill_hands_over_within_lease_duration() {
    let (client, ns) = testenv::setup("lease-kill").await;
    let (leader, standby) = two_holders(&ns.name, "kill").await;
    // For a while, exactly one leads and the Lease names it.
    for _ in 0..20 {
        assert!(leader.is_leading() && !standby.is_leading());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        holder_of(&client, &ns.name, "kill").await.as_deref(),
        Some(leader.identity.as_str())
    );
    // SIGKILL: no release; the standby must wait for expiry, then lead within the duration.
    let killed_at = Instant::now();
    leader.signal("KILL");
    wait_for("standby to lead", Duration::from_secs(15), || {
        standby.is_leading()
    })
    .await;
    let took = standby.first("leading").expect("leading") - killed_at;
    let bound = Duration::from_secs_f64(LEASE_SECS * 1.5);
    assert!(
        took <= bound,
        "standby took {took:?} to lead after the kill (bound {bound:?})"
    );
    assert!(
        took >= Duration::from_secs_f64(LEASE_SECS * 0.5),
        "standby led after {took:?}: it must not take an unexpired lease"
    );
    assert_eq!(
        holder_of(&client, &ns.name, "kill").await.as_deref(),
        Some(standby.identity.as_str())
    );
}

#[tokio::test]
async fn clean_shutdown_hands_over_at_once() {
    let (client, ns) = testenv::setup("lease-term").await;
    let (leader, standby) = two_holders(&ns.name, "term").await;
    let term_at = Instant::now();
    leader.signal("TERM");
    wait_for("standby to lead", Duration::from_secs(10), || {
        standby.is_leading()
    })
    .await;
    let took = standby.first("leading").expect("leading") - term_at;
    // The standby retries every 2/15 of the lease duration (+20% jitter): well below expiry.
    assert!(
        took < Duration::from_secs_f64(LEASE_SECS * 0.5),
        "hand-over took {took:?}"
    );
    // The old leader stopped its work before the Lease was released.
    let stopped = leader.first("stopped").expect("old leader stopped");
    assert!(stopped <= standby.first("leading").expect("leading"));
    wait_for("old leader to exit", Duration::from_secs(5), || {
        leader.first("exited").is_some()
    })
    .await;
    assert_eq!(
        holder_of(&client, &ns.name, "term").await.as_deref(),
        Some(standby.identity.as_str())
    );
}

/// A TCP proxy in front of the API server that can be cut, to make one replica unable to renew.
async fn cuttable_proxy(target: String, cut: CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = tokio::select! {
                _ = cut.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            };
            let target = target.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.cancelled() => {}
                    }
                }
            });
        }
    });
    format!("https://{addr}")
}

/// A TCP proxy in front of the API server that delays every chunk sent to the server by `delay`.
async fn slow_proxy(target: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let (mut in_r, mut in_w) = inbound.into_split();
                let (mut out_r, mut out_w) = outbound.into_split();
                let upstream = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match in_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                tokio::time::sleep(delay).await;
                                if out_w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                };
                let downstream = tokio::io::copy(&mut out_r, &mut in_w);
                tokio::select! {
                    _ = upstream => {}
                    _ = downstream => {}
                }
            });
        }
    });
    format!("https://{addr}")
}

/// A client of the shared control plane that connects through `proxy` (TLS handshake included
/// in `connect_timeout`).
async fn client_via(
    proxy: impl AsyncFnOnce(String) -> String,
    connect_timeout: Duration,
) -> kube::Client {
    let cp = testenv::shared();
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let target = config
        .cluster_url
        .authority()
        .expect("authority")
        .to_string();
    config.cluster_url = proxy(target).await.parse().expect("url");
    config.connect_timeout = Some(connect_timeout);
    kube::Client::try_from(config).expect("client")
}

#[tokio::test]
async fn a_slow_api_server_does_not_cost_the_lease() {
    let (_client, ns) = testenv::setup("lease-slow").await;
    // Every chunk waits 250 ms on its way in: a GET takes ~0.25 s and a PUT (headers, then body)
    // ~0.5 s, more than the 0.4 s retry period; a whole renewal still fits the 2 s deadline.
    let slow = client_via(
        async |t| slow_proxy(t, Duration::from_millis(250)).await,
        Duration::from_secs(10),
    )
    .await;
    let params = LeaseParams::new(
        "slow",
        ns.name.clone(),
        "a",
        Duration::from_secs_f64(LEASE_SECS),
    );
    let mut a = spawn(slow, params, None);
    assert!(
        tokio::time::timeout(Duration::from_secs(20), a.acquired())
            .await
            .unwrap_or(false),
        "a never became leader through the slow connection"
    );
    let mut state = a.subscribe();
    let held = tokio::time::timeout(
        Duration::from_secs_f64(LEASE_SECS * 3.0),
        state.wait_for(|leading| !leading),
    )
    .await;
    assert!(
        held.is_err(),
        "a stepped down although every renewal succeeded"
    );
}

/// A direct client, its test namespace, and a second client whose connection is cut when the
/// token is cancelled.
async fn behind_a_cuttable_proxy(
    prefix: &str,
) -> (kube::Client, String, CancellationToken, kube::Client) {
    let (client, ns) = testenv::setup(prefix).await;
    let cut = CancellationToken::new();
    let c = cut.clone();
    let proxied = client_via(
        async move |t| cuttable_proxy(t, c).await,
        Duration::from_millis(300),
    )
    .await;
    (client, ns.name.clone(), cut, proxied)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test]
async fn leader_that_cannot_renew_stops_before_another_starts() {
    let (client, ns, cut, proxied) = behind_a_cuttable_proxy("lease-fence").await;
    let params = |id: &str| LeaseParams::new("fence", ns.clone(), id, secs(LEASE_SECS));
    // Replica A (through the proxy) leads first and ticks while it leads.
    let ticks = Arc::new(AtomicU64::new(0));
    let stopped_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let a = spawn(proxied, params("a"), None);
    let shutdown_a = CancellationToken::new();
    let (t, s) = (ticks.clone(), stopped_at.clone());
    let run_a = tokio::spawn(run_while_leading(a, shutdown_a.clone(), move |token| {
        let (t, s) = (t.clone(), s.clone());
        async move {
            while !token.is_cancelled() {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            *s.lock().expect("lock") = Some(Instant::now());
        }
    }));
    wait_for("a to tick", Duration::from_secs(15), || {
        ticks.load(Ordering::SeqCst) > 5
    })
    .await;

    // Replica B joins with a direct connection, then A's connection is cut.
    let mut b = spawn(client.clone(), params("b"), None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.is_leader(), "b must not lead while a renews");
    cut.cancel();
    let cut_at = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_secs(15), b.acquired())
            .await
            .unwrap_or(false),
        "b never became leader"
    );
    let b_led_at = Instant::now();
    let a_stopped = stopped_at
        .lock()
        .expect("lock")
        .expect("a's work must have stopped before b leads");
    assert!(a_stopped < b_led_at, "a stopped after b started leading");
    assert!(
        a_stopped - cut_at <= Duration::from_secs_f64(LEASE_SECS * 2.0 / 3.0 + 0.5),
        "a kept working {:?} after losing the API",
        a_stopped - cut_at
    );
    let ticks_at_stop = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        ticks_at_stop,
        "a ticks after stopping"
    );
    shutdown_a.cancel();
    let _ = run_a.await;
    b.release().await;
}

/// Work that ignores its token (a reconcile waiting on an API server that waits for etcd) is
/// dropped within the fencing margin, before another replica leads; the replica stays up as a
/// standby instead of exiting.
#[tokio::test]
async fn work_that_ignores_the_loss_is_aborted_and_the_replica_stands_by() {
    let (client, ns, cut, proxied) = behind_a_cuttable_proxy("lease-abort").await;
    let params = |id: &str| LeaseParams::new("abort", ns.clone(), id, secs(LEASE_SECS));
    let ticks = Arc::new(AtomicU64::new(0));
    let a = spawn(proxied, params("a"), None);
    let shutdown_a = CancellationToken::new();
    let t = ticks.clone();
    let run_a = tokio::spawn(run_while_leading(a, shutdown_a.clone(), move |_token| {
        let t = t.clone();
        async move {
            loop {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }));
    wait_for("a to tick", Duration::from_secs(15), || {
        ticks.load(Ordering::SeqCst) > 5
    })
    .await;

    let mut b = spawn(client.clone(), params("b"), None);
    cut.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(15), b.acquired())
            .await
            .unwrap_or(false),
        "b never became leader"
    );
    let at_b = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        at_b,
        "a's work still ran after b took over"
    );
    assert!(!run_a.is_finished(), "a exited instead of standing by");
    shutdown_a.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), run_a)
        .await
        .expect("a stops on shutdown")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
    b.release().await;
}
