//! The race: 200 claims created at once for 100 servers, with two controller instances running
//! side by side without leader election (each with 16 concurrent reconciles). Exactly 100 claims
//! bind, each server to one claim, and the other 100 report `AllMatchingServersTaken`. The
//! invariants are checked on every watch event, not just at the end:
//!
//! * a server's `serverClaimRef` only goes from none to a claim, never from one claim to another;
//! * no two servers ever reference the same claim;
//! * no claim's `spec.serverRef` ever names two different servers.

mod common;

use api::server::Server;
use api::serverclaim::{Phase, ServerClaim};
use common::*;
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::runtime::watcher::{self, Event};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

const SERVERS: usize = 100;
const CLAIMS: usize = 200;

enum Seen {
    Server(Box<Server>),
    Claim(Box<ServerClaim>),
    Synced,
}

/// Checks the invariants incrementally over the merged event stream.
#[derive(Default)]
struct Checker {
    server_claim: HashMap<String, Option<String>>,
    claim_server: HashMap<String, String>,
    claim_ref: HashMap<String, String>,
    violations: Vec<String>,
    events: usize,
}

impl Checker {
    fn server(&mut self, s: &Server) {
        self.events += 1;
        let name = s.name_any();
        let now = claim_of(s);
        let before = self.server_claim.get(&name).cloned().flatten();
        if let (Some(a), Some(b)) = (&before, &now)
            && a != b
        {
            self.violations
                .push(format!("server {name} switched from claim {a} to {b}"));
        }
        if let Some(a) = &before
            && now.as_ref() != Some(a)
            && self.claim_server.get(a) == Some(&name)
        {
            self.claim_server.remove(a);
        }
        if let Some(c) = &now {
            match self.claim_server.get(c) {
                Some(other) if *other != name => self.violations.push(format!(
                    "claim {c} referenced by servers {other} and {name} at once"
                )),
                _ => {
                    self.claim_server.insert(c.clone(), name.clone());
                }
            }
        }
        self.server_claim.insert(name, now);
    }

    fn claim(&mut self, c: &ServerClaim) {
        self.events += 1;
        let Some(r) = &c.spec.server_ref else {
            return;
        };
        match self.claim_ref.get(&c.name_any()) {
            Some(first) if *first != r.name => self.violations.push(format!(
                "claim {} serverRef changed from {first} to {}",
                c.name_any(),
                r.name
            )),
            _ => {
                self.claim_ref.insert(c.name_any(), r.name.clone());
            }
        }
    }
}

fn forward<K, F>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    tx: mpsc::UnboundedSender<Seen>,
    wrap: F,
) -> tokio::task::JoinHandle<()>
where
    K: Send + 'static,
    F: Fn(K) -> Seen + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let seen = match ev {
                Ok(Event::Apply(o) | Event::InitApply(o)) => wrap(o),
                Ok(Event::InitDone) => Seen::Synced,
                _ => continue,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_claims_race_for_one_hundred_servers() {
    let env = Env::new("race").await;
    futures::stream::iter(0..SERVERS)
        .for_each_concurrent(16, |i| {
            let env = &env;
            async move {
                env.server(&format!("s{i:03}"), &[], |_| {}).await;
            }
        })
        .await;

    // Watch everything before the first claim exists.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let label = format!("{TEST_LABEL}={}", env.id);
    let w1 = forward(
        watcher::watcher(env.servers(), watcher::Config::default().labels(&label)),
        tx.clone(),
        |s| Seen::Server(Box::new(s)),
    );
    let w2 = forward(
        watcher::watcher(env.claims(), watcher::Config::default()),
        tx,
        |c| Seen::Claim(Box::new(c)),
    );
    let mut checker = Checker::default();
    let mut synced = 0;
    while synced < 2 {
        match rx.recv().await.expect("watch") {
            Seen::Synced => synced += 1,
            Seen::Server(s) => checker.server(&s),
            Seen::Claim(c) => checker.claim(&c),
        }
    }

    // Two instances, no leader election.
    let mut config_a = env.config("instance-a");
    config_a.claim_concurrency = 16;
    let mut config_b = env.config("instance-b");
    config_b.claim_concurrency = 16;
    let a = env.start_with(env.client.clone(), config_a);
    let b = env.start_with(env.client.clone(), config_b);

    let selector = Env::selector(TEST_LABEL, &env.id);
    let names: Vec<String> = (0..CLAIMS).map(|i| format!("c{i:03}")).collect();
    futures::stream::iter(names.iter())
        .for_each_concurrent(64, |n| {
            let env = &env;
            let selector = selector.clone();
            async move {
                env.claim(n, |s| s.server_selector = Some(selector)).await;
            }
        })
        .await;

    // Consume events until the outcome settles.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let mut claims: HashMap<String, ServerClaim> = HashMap::new();
    let settled = |claims: &HashMap<String, ServerClaim>| {
        let bound = claims.values().filter(|c| is_bound(c)).count();
        let taken = claims
            .values()
            .filter(|c| {
                phase(c) == Some(Phase::Unbound)
                    && bound_reason(c).as_deref() == Some("AllMatchingServersTaken")
            })
            .count();
        bound == SERVERS && taken == CLAIMS - SERVERS
    };
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| {
                let bound = claims.values().filter(|c| is_bound(c)).count();
                panic!(
                    "not settled in time: {bound} bound of {} claims seen; violations: {:?}",
                    claims.len(),
                    checker.violations
                )
            })
            .expect("watch");
        match ev {
            Seen::Server(s) => checker.server(&s),
            Seen::Claim(c) => {
                checker.claim(&c);
                claims.insert(c.name_any(), *c);
            }
            Seen::Synced => {}
        }
        if settled(&claims) {
            break;
        }
    }
    // Let the instances run a little longer: nothing may change any more.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(ev)) = tokio::time::timeout_at(quiet_until, rx.recv()).await {
        match ev {
            Seen::Server(s) => checker.server(&s),
            Seen::Claim(c) => {
                checker.claim(&c);
                claims.insert(c.name_any(), *c);
            }
            Seen::Synced => {}
        }
    }
    let conflicts: Vec<String> = [&a, &b]
        .iter()
        .map(|i| {
            i.admin
                .metrics
                .encode()
                .lines()
                .find(|l| l.starts_with("metal_reservation_bind_conflicts_total"))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    a.stop().await;
    b.stop().await;
    w1.abort();
    w2.abort();

    assert!(
        checker.violations.is_empty(),
        "invariants violated:\n{}",
        checker.violations.join("\n")
    );
    assert!(settled(&claims), "outcome changed after settling");
    // End state: 100 servers, each bound to a distinct bound claim that names it.
    let bound_servers: HashMap<&String, &String> = checker
        .server_claim
        .iter()
        .filter_map(|(s, c)| c.as_ref().map(|c| (c, s)))
        .collect();
    assert_eq!(bound_servers.len(), SERVERS, "every server bound once");
    for c in claims.values().filter(|c| is_bound(c)) {
        let server = bound_servers
            .get(&c.name_any())
            .unwrap_or_else(|| panic!("bound claim {} holds no server", c.name_any()));
        assert_eq!(&&c.spec.server_ref.as_ref().unwrap().name, server);
    }
    for c in claims.values().filter(|c| !is_bound(c)) {
        assert!(!bound_servers.contains_key(&c.name_any()));
        let (_, _, message) = bound_condition(c).unwrap();
        assert_eq!(message, "100 servers match the selector; 100 are claimed");
    }
    eprintln!(
        "race: {} watch events checked, {} claims bound, {} unbound; conflicts per instance: {conflicts:?}",
        checker.events,
        SERVERS,
        CLAIMS - SERVERS
    );
}
