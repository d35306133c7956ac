//! The live view of `cargo xtask up`: a watch on the run's Servers that redraws a compact table in
//! place when stdout is a terminal, or prints one line per state change when it is not (logs, CI),
//! and the bring-up's timings (command start → first / all servers Available).
//!
//! The pure part ([`observe`], [`Milestones`], [`table`], [`frame`], [`bench_line`]) turns a list
//! of Servers and the previous [`Snapshot`] into rows and change lines, so it is tested without a
//! client; [`Live`] owns the terminal, the watch and the redraws.

use api::server::Server;
use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// The state every bring-up waits for.
pub const AVAILABLE: &str = "Available";

/// What the view shows of one Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Server name.
    pub name: String,
    /// Lifecycle state, `-` while unset.
    pub state: String,
    /// Power as last confirmed by the BMC, `-` while unknown.
    pub power: String,
    /// Name of the bound ServerClaim, `-` when unclaimed.
    pub claim: String,
    /// Name of the server's BMC, `-` without one.
    pub bmc: String,
    /// When the view saw the state change last (or the server first), from the command's start.
    pub changed_at: Duration,
}

impl Row {
    /// The row of `server`, as if its state changed at `now`.
    pub fn of(server: &Server, now: Duration) -> Row {
        let status = server.status.as_ref();
        let dash = || "-".to_string();
        Row {
            name: server.metadata.name.clone().unwrap_or_default(),
            state: status
                .and_then(|s| s.state.as_ref())
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(dash),
            power: status
                .and_then(|s| s.power_state.as_ref())
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(dash),
            claim: server
                .spec
                .server_claim_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_else(dash),
            bmc: server
                .spec
                .bmc_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_else(dash),
            changed_at: now,
        }
    }
}

/// The rows of the last observation, by server name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Rows by name.
    pub rows: BTreeMap<String, Row>,
}

/// A server's state changed (or it appeared, or it went away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When the view saw it, from the command's start.
    pub at: Duration,
    /// Server name.
    pub name: String,
    /// The state before; `None` for a server seen for the first time.
    pub from: Option<String>,
    /// The state now; `None` for a deleted server.
    pub to: Option<String>,
}

impl Change {
    /// `12.3s server-x Discovery -> Available`.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} -> {}",
            secs(self.at),
            self.name,
            self.from.as_deref().unwrap_or("(new)"),
            self.to.as_deref().unwrap_or("(deleted)")
        )
    }
}

/// `12.3s`.
fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The next snapshot and the state changes since `prev`, for the servers listed at `now`. A row
/// keeps its `changed_at` while its state stays the same (power or claim changes do not count).
/// Changes come sorted by server name.
pub fn observe<'a>(
    prev: &Snapshot,
    servers: impl IntoIterator<Item = &'a Server>,
    now: Duration,
) -> (Snapshot, Vec<Change>) {
    let mut next = Snapshot::default();
    let mut changes = Vec::new();
    for server in servers {
        let mut row = Row::of(server, now);
        match prev.rows.get(&row.name) {
            Some(old) if old.state == row.state => row.changed_at = old.changed_at,
            old => changes.push(Change {
                at: now,
                name: row.name.clone(),
                from: old.map(|o| o.state.clone()),
                to: Some(row.state.clone()),
            }),
        }
        next.rows.insert(row.name.clone(), row);
    }
    for (name, old) in &prev.rows {
        if !next.rows.contains_key(name) {
            changes.push(Change {
                at: now,
                name: name.clone(),
                from: Some(old.state.clone()),
                to: None,
            });
        }
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    (next, changes)
}

/// The bring-up's timings, from the command's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Milestones {
    /// The first time any server was Available.
    pub first_available: Option<Duration>,
    /// The first time the expected number of servers existed and all were Available.
    pub all_available: Option<Duration>,
}

impl Milestones {
    /// Records what `snapshot`, observed at `now`, reaches for the first time; `expected` is the
    /// number of servers of the rack. Returns whether anything was recorded.
    pub fn update(&mut self, snapshot: &Snapshot, expected: usize, now: Duration) -> bool {
        let before = *self;
        let available = snapshot
            .rows
            .values()
            .filter(|r| r.state == AVAILABLE)
            .count();
        if self.first_available.is_none() && available > 0 {
            self.first_available = Some(now);
        }
        if self.all_available.is_none()
            && expected > 0
            && snapshot.rows.len() >= expected
            && available == snapshot.rows.len()
        {
            self.all_available = Some(now);
        }
        *self != before
    }
}

/// `bench up first_available_s=... all_available_s=... servers=N` (`none` for a milestone not
/// reached).
pub fn bench_line(m: &Milestones, servers: usize) -> String {
    let s = |d: Option<Duration>| {
        d.map(|d| format!("{:.2}", d.as_secs_f64()))
            .unwrap_or_else(|| "none".into())
    };
    format!(
        "bench up first_available_s={} all_available_s={} servers={servers}",
        s(m.first_available),
        s(m.all_available)
    )
}

/// The server table: a header and one line per server, names without `prefix`, columns as wide
/// as their widest cell.
pub fn table(snapshot: &Snapshot, prefix: &str) -> Vec<String> {
    let short = |s: &str| s.strip_prefix(prefix).unwrap_or(s).to_string();
    let header = ["SERVER", "STATE", "POWER", "CLAIM", "BMC", "CHANGED"].map(String::from);
    let mut cells = vec![header];
    for r in snapshot.rows.values() {
        cells.push([
            short(&r.name),
            r.state.clone(),
            r.power.clone(),
            r.claim.clone(),
            short(&r.bmc),
            secs(r.changed_at),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    cells
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (i, (c, w)) in row.iter().zip(widths).enumerate() {
                if i == row.len() - 1 {
                    // The time is right-aligned, and the line ends there.
                    line.push_str(&format!("{c:>w$}"));
                } else {
                    line.push_str(&format!("{c:<w$}  "));
                }
            }
            line
        })
        .collect()
}

/// What one redraw of the terminal shows.
pub struct FrameInput<'a> {
    /// The servers.
    pub snapshot: &'a Snapshot,
    /// The timings so far.
    pub milestones: &'a Milestones,
    /// Servers of the rack.
    pub expected: usize,
    /// Prefix left off the names (the run's namespace and a dash).
    pub prefix: &'a str,
    /// The demo's output so far; the frame shows its tail.
    pub log: &'a [String],
    /// The watch's last error, while it lasts.
    pub error: Option<&'a str>,
    /// Terminal size (columns, rows).
    pub size: (usize, usize),
}

/// The lines of one redraw: a summary, the server table and the tail of the demo's output,
/// each line cut to the terminal's width and the whole to one line less than its height (so the
/// last newline never scrolls).
pub fn frame(f: &FrameInput) -> Vec<String> {
    let (cols, rows) = f.size;
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for r in f.snapshot.rows.values() {
        *by_state.entry(r.state.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let at = |d: Option<Duration>| d.map(secs).unwrap_or_else(|| "-".into());
    let mut lines = vec![
        format!(
            "metal up: {}/{} servers ({}); names without {:?}",
            f.snapshot.rows.len(),
            f.expected,
            if counts.is_empty() {
                "none yet".to_string()
            } else {
                counts.join(", ")
            },
            f.prefix
        ),
        format!(
            "first Available {}, all Available {} (from the command's start); Ctrl-C stops",
            at(f.milestones.first_available),
            at(f.milestones.all_available)
        ),
    ];
    if let Some(e) = f.error {
        lines.push(format!("watch: {e}"));
    }
    lines.push(String::new());
    if !f.snapshot.rows.is_empty() {
        lines.extend(table(f.snapshot, f.prefix));
        lines.push(String::new());
    }
    let room = rows.saturating_sub(1).saturating_sub(lines.len());
    lines.extend(f.log[f.log.len().saturating_sub(room)..].iter().cloned());
    let fits = rows.saturating_sub(1);
    if lines.len() > fits && fits > 0 {
        // The table is taller than the terminal: say so on the last line rather than cut silently.
        let hidden = lines.len() - (fits - 1);
        lines.truncate(fits - 1);
        lines.push(format!(
            "... {hidden} more lines: enlarge the terminal to see them"
        ));
    }
    lines.truncate(fits);
    lines
        .into_iter()
        .map(|l| l.chars().take(cols).collect())
        .collect()
}

/// This process's age from `/proc/self/stat` and `/proc/uptime` (clock ticks of `USER_HZ`, 100).
pub fn process_age(stat: &str, uptime: &str) -> Option<Duration> {
    // The fields after the command name: field 3 (state) first, field 22 (starttime) 20th.
    let start_ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let age = up - start_ticks as f64 / 100.0;
    (age >= 0.0).then(|| Duration::from_secs_f64(age))
}

/// When the command started: the start of this process (`cargo run`, behind `cargo xtask`,
/// replaces itself with xtask, so that is when `cargo xtask up` was typed), or now if unknown.
pub fn command_started() -> Instant {
    let now = Instant::now();
    let age = process_age(
        &std::fs::read_to_string("/proc/self/stat").unwrap_or_default(),
        &std::fs::read_to_string("/proc/uptime").unwrap_or_default(),
    );
    age.and_then(|a| now.checked_sub(a)).unwrap_or(now)
}

struct View {
    log: Vec<String>,
    snapshot: Snapshot,
    milestones: Milestones,
    expected: usize,
    prefix: String,
    error: Option<String>,
    size: (usize, usize),
    last_frame: Vec<String>,
}

struct Shared {
    view: Mutex<View>,
    redraw: Notify,
    milestones: watch::Sender<Milestones>,
}

/// The live view: owns stdout while it runs.
pub struct Live {
    shared: Arc<Shared>,
    started: Instant,
    tty: bool,
    tasks: Vec<JoinHandle<()>>,
}

const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";
/// Redraws at most this often (about three times a second), and only after a change.
const REDRAW_EVERY: Duration = Duration::from_millis(300);
/// Lines of the demo's output kept for the terminal.
const LOG_LINES: usize = 500;

/// Terminal size (columns, rows) from `stty size` on the controlling terminal.
fn terminal_size() -> (usize, usize) {
    let out = std::fs::File::open("/dev/tty").ok().and_then(|tty| {
        std::process::Command::new("stty")
            .arg("size")
            .stdin(tty)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
    });
    let parsed = out.and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut it = text.split_whitespace().map(|v| v.parse::<usize>().ok());
        let rows = it.next()??;
        let cols = it.next()??;
        (rows > 0 && cols > 0).then_some((cols, rows))
    });
    parsed.unwrap_or((120, 40))
}

impl Live {
    /// Starts the view; times count from `started`. On a terminal the screen is cleared and
    /// redrawn from here on.
    pub fn start(started: Instant) -> Live {
        let tty = std::io::stdout().is_terminal();
        let (milestones, _) = watch::channel(Milestones::default());
        let shared = Arc::new(Shared {
            view: Mutex::new(View {
                log: Vec::new(),
                snapshot: Snapshot::default(),
                milestones: Milestones::default(),
                expected: 0,
                prefix: String::new(),
                error: None,
                size: if tty { terminal_size() } else { (120, 40) },
                last_frame: Vec::new(),
            }),
            redraw: Notify::new(),
            milestones,
        });
        let mut tasks = Vec::new();
        if tty {
            print!("{HIDE_CURSOR}\x1b[2J\x1b[H");
            let _ = std::io::stdout().flush();
            tasks.push(tokio::spawn(redraw_loop(shared.clone())));
        }
        Live {
            shared,
            started,
            tty,
            tasks,
        }
    }

    /// Time since the command started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints the demo's output: straight to stdout when it is not a terminal, else below the
    /// table at the next redraw.
    pub fn say(&self, text: impl AsRef<str>) {
        let mut v = self.shared.view.lock().expect("view");
        if !self.tty {
            println!("{}", text.as_ref());
            return;
        }
        v.log.extend(text.as_ref().lines().map(str::to_string));
        let excess = v.log.len().saturating_sub(LOG_LINES);
        v.log.drain(..excess);
        drop(v);
        self.shared.redraw.notify_one();
    }

    /// Watches the Servers matching `selector` (names shown without `prefix`); the rack has
    /// `expected` of them.
    pub fn watch(&mut self, client: kube::Client, selector: &str, prefix: &str, expected: usize) {
        {
            let mut v = self.shared.view.lock().expect("view");
            v.expected = expected;
            v.prefix = prefix.to_string();
        }
        let config = watcher::Config::default().labels(selector);
        self.tasks.push(tokio::spawn(watch_servers(
            self.shared.clone(),
            Api::all(client),
            config,
            self.started,
            self.tty,
        )));
    }

    /// Waits (at most `timeout`) until all servers were seen Available, and returns the
    /// timings then.
    pub async fn all_available(&self, timeout: Duration) -> Milestones {
        let mut rx = self.shared.milestones.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|m| m.all_available.is_some())).await;
        *rx.borrow()
    }

    /// Stops the watch and the redraws; a terminal gets its last frame and its cursor back.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if self.tty {
            self.tty = false;
            draw(&self.shared, true);
            let v = self.shared.view.lock().expect("view");
            println!("{SHOW_CURSOR}\n{}", bench_line(&v.milestones, v.expected));
            let _ = std::io::stdout().flush();
        }
    }
}

impl Drop for Live {
    /// Also on a panic or an error: the terminal never keeps a hidden cursor.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redraws after each change, at most every [`REDRAW_EVERY`], and after a terminal resize.
async fn redraw_loop(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut resized = signal(SignalKind::window_change()).ok();
    loop {
        let resize = async {
            match resized.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let force = tokio::select! {
            _ = shared.redraw.notified() => false,
            _ = resize => {
                shared.view.lock().expect("view").size = terminal_size();
                true
            }
        };
        draw(&shared, force);
        tokio::time::sleep(REDRAW_EVERY).await;
    }
}

/// Draws the frame in place (home, each line cleared to its end, the rest of the screen
/// cleared), unless it is the frame already shown.
fn draw(shared: &Shared, force: bool) {
    let mut v = shared.view.lock().expect("view");
    let lines = frame(&FrameInput {
        snapshot: &v.snapshot,
        milestones: &v.milestones,
        expected: v.expected,
        prefix: &v.prefix,
        log: &v.log,
        error: v.error.as_deref(),
        size: v.size,
    });
    if !force && lines == v.last_frame {
        return;
    }
    let mut out = String::from("\x1b[H");
    for l in &lines {
        out.push_str(l);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    v.last_frame = lines;
}

async fn watch_servers(
    shared: Arc<Shared>,
    api: Api<Server>,
    config: watcher::Config,
    started: Instant,
    tty: bool,
) {
    let (reader, writer) = reflector::store();
    let mut events = std::pin::pin!(reflector(writer, watcher(api, config).default_backoff()));
    while let Some(event) = events.next().await {
        let now = started.elapsed();
        let mut v = shared.view.lock().expect("view");
        match event {
            Err(e) => {
                if !tty && v.error.is_none() {
                    eprintln!("{} watching servers: {e}", secs(now));
                }
                v.error = Some(e.to_string());
            }
            Ok(_) => {
                v.error = None;
                let servers = reader.state();
                let (next, changes) = observe(&v.snapshot, servers.iter().map(|s| &**s), now);
                if !tty {
                    for c in &changes {
                        println!("{}", c.line());
                    }
                }
                v.snapshot = next;
                let expected = v.expected;
                let mut m = v.milestones;
                if m.update(&v.snapshot, expected, now) {
                    v.milestones = m;
                    shared.milestones.send_replace(m);
                }
            }
        }
        drop(v);
        shared.redraw.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(name: &str, state: Option<&str>, power: Option<&str>, claim: Option<&str>) -> Server {
        let mut status = json!({});
        if let Some(s) = state {
            status["state"] = json!(s);
        }
        if let Some(p) = power {
            status["powerState"] = json!(p);
        }
        let mut spec = json!({ "systemUUID": "0000", "bmcRef": { "name": "run-bmc-0" } });
        if let Some(c) = claim {
            spec["serverClaimRef"] = json!({ "namespace": "run", "name": c });
        }
        serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "Server",
            "metadata": { "name": name },
            "spec": spec,
            "status": status,
        }))
        .expect("server")
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(Change::line).collect()
    }

    #[test]
    fn change_lines_for_new_changed_and_deleted_servers() {
        let (s1, c) = observe(
            &Snapshot::default(),
            &[
                server("run-b", None, None, None),
                server("run-a", Some("Initial"), None, None),
            ],
            at(1_000),
        );
        assert_eq!(
            lines(&c),
            ["1.0s run-a (new) -> Initial", "1.0s run-b (new) -> -"]
        );

        let (s2, c) = observe(
            &s1,
            &[
                server("run-a", Some("Discovery"), Some("On"), None),
                server("run-b", Some("Initial"), None, None),
            ],
            at(5_250),
        );
        assert_eq!(
            lines(&c),
            ["5.2s run-a Initial -> Discovery", "5.2s run-b - -> Initial"]
        );

        let (s3, c) = observe(
            &s2,
            &[server("run-a", Some("Available"), Some("Off"), None)],
            at(12_345),
        );
        assert_eq!(
            lines(&c),
            [
                "12.3s run-a Discovery -> Available",
                "12.3s run-b Initial -> (deleted)"
            ]
        );
        assert_eq!(s3.rows.len(), 1);
        assert_eq!(s3.rows["run-a"].changed_at, at(12_345));
    }

    #[test]
    fn power_or_claim_changes_update_the_row_but_are_no_state_change() {
        let (s1, _) = observe(
            &Snapshot::default(),
            &[server("run-a", Some("Available"), Some("Off"), None)],
            at(2_000),
        );
        let (s2, c) = observe(
            &s1,
            &[server("run-a", Some("Available"), Some("On"), Some("demo"))],
            at(3_000),
        );
        assert!(c.is_empty(), "{c:?}");
        let r = &s2.rows["run-a"];
        assert_eq!((r.power.as_str(), r.claim.as_str()), ("On", "demo"));
        assert_eq!(r.changed_at, at(2_000), "the state did not change");
        // Nothing changed at all: the same snapshot, nothing to print.
        let (s3, c) = observe(
            &s2,
            &[server("run-a", Some("Available"), Some("On"), Some("demo"))],
            at(4_000),
        );
        assert!(c.is_empty());
        assert_eq!(s3, s2);
    }

    #[test]
    fn first_and_all_available_are_recorded_once() {
        let mut m = Milestones::default();
        let (s, _) = observe(
            &Snapshot::default(),
            &[server("run-a", Some("Discovery"), None, None)],
            at(1_000),
        );
        assert!(!m.update(&s, 2, at(1_000)));
        assert_eq!(m, Milestones::default());

        // One of the two Available, and it is the only server so far: not all of them.
        let (s, _) = observe(
            &s,
            &[server("run-a", Some("Available"), None, None)],
            at(4_000),
        );
        assert!(m.update(&s, 2, at(4_000)));
        assert_eq!(m.first_available, Some(at(4_000)));
        assert_eq!(m.all_available, None);

        let (s, _) = observe(
            &s,
            &[
                server("run-a", Some("Available"), None, None),
                server("run-b", Some("Initial"), None, None),
            ],
            at(5_000),
        );
        assert!(!m.update(&s, 2, at(5_000)));

        let (s, _) = observe(
            &s,
            &[
                server("run-a", Some("Available"), None, None),
                server("run-b", Some("Available"), None, None),
            ],
            at(9_000),
        );
        assert!(m.update(&s, 2, at(9_000)));
        assert_eq!(
            m,
            Milestones {
                first_available: Some(at(4_000)),
                all_available: Some(at(9_000)),
            }
        );

        // Later states (a claim, a park) never move the timings.
        let (s, _) = observe(
            &s,
            &[
                server("run-a", Some("Reserved"), None, Some("demo")),
                server("run-b", Some("Available"), None, None),
            ],
            at(20_000),
        );
        assert!(!m.update(&s, 2, at(20_000)));
        assert_eq!(m.first_available, Some(at(4_000)));
        assert_eq!(m.all_available, Some(at(9_000)));
        assert_eq!(
            bench_line(&m, 2),
            "bench up first_available_s=4.00 all_available_s=9.00 servers=2"
        );
        assert_eq!(
            bench_line(&Milestones::default(), 8),
            "bench up first_available_s=none all_available_s=none servers=8"
        );
    }

    #[test]
    fn table_rows_are_aligned_and_without_the_prefix() {
        let (s, _) = observe(
            &Snapshot::default(),
            &[
                server("run-bmc-0-system-0", Some("Available"), Some("Off"), None),
                server("run-bmc-1-system-0", None, None, Some("demo")),
            ],
            at(12_345),
        );
        assert_eq!(
            table(&s, "run-"),
            [
                "SERVER          STATE      POWER  CLAIM  BMC    CHANGED",
                "bmc-0-system-0  Available  Off    -      bmc-0    12.3s",
                "bmc-1-system-0  -          -      demo   bmc-0    12.3s",
            ]
        );
    }

    #[test]
    fn frame_fits_the_terminal_and_shows_the_log_tail() {
        let (s, _) = observe(
            &Snapshot::default(),
            &[server("run-a", Some("Available"), Some("Off"), None)],
            at(3_000),
        );
        let m = Milestones {
            first_available: Some(at(3_000)),
            all_available: None,
        };
        let log: Vec<String> = (0..50).map(|i| format!("log line {i}")).collect();
        let input = |size| FrameInput {
            snapshot: &s,
            milestones: &m,
            expected: 2,
            prefix: "run-",
            log: &log,
            error: None,
            size,
        };
        let f = frame(&input((200, 12)));
        assert_eq!(f.len(), 11, "{f:#?}");
        assert_eq!(
            f[0],
            "metal up: 1/2 servers (1 Available); names without \"run-\""
        );
        assert!(f[1].starts_with("first Available 3.0s, all Available -"));
        assert_eq!(f[3], "SERVER  STATE      POWER  CLAIM  BMC    CHANGED");
        assert_eq!(f[4], "a       Available  Off    -      bmc-0     3.0s");
        assert_eq!(
            &f[6..],
            [
                "log line 45",
                "log line 46",
                "log line 47",
                "log line 48",
                "log line 49"
            ]
        );
        let narrow = frame(&input((10, 40)));
        assert!(
            narrow.iter().all(|l| l.chars().count() <= 10),
            "{narrow:#?}"
        );
        assert_eq!(narrow.last().map(String::as_str), Some("log line 4"));
    }

    #[test]
    fn a_table_taller_than_the_terminal_ends_with_how_much_is_hidden() {
        let servers: Vec<Server> = (0..30)
            .map(|i| server(&format!("run-s{i:02}"), Some("Available"), None, None))
            .collect();
        let (s, _) = observe(&Snapshot::default(), &servers, at(1_000));
        let m = Milestones::default();
        let log = vec!["demo output".to_string()];
        let f = frame(&FrameInput {
            snapshot: &s,
            milestones: &m,
            expected: 30,
            prefix: "run-",
            log: &log,
            error: None,
            size: (80, 10),
        });
        assert_eq!(f.len(), 9, "one line less than the terminal: {f:#?}");
        assert!(f[0].starts_with("metal up: 30/30 servers (30 Available)"));
        assert!(f[3].starts_with("SERVER"), "{f:#?}");
        assert!(f[4].starts_with("s00 "), "{f:#?}");
        // 2 summary lines, a blank, the header, 30 rows and a blank (no room for the log): 35, 8 shown.
        assert_eq!(
            f[8], "... 27 more lines: enlarge the terminal to see them",
            "{f:#?}"
        );
    }

    #[test]
    fn process_age_from_proc() {
        let stat = "4242 (cargo xtask) R 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345 1000 100";
        // Started 12345 ticks (123.45 s) after boot, 200.45 s up now: 77 s old.
        let age = process_age(stat, "200.45 300.00").expect("age");
        assert!((age.as_secs_f64() - 77.0).abs() < 1e-6, "{age:?}");
        // A process name with spaces and parentheses does not shift the fields.
        let odd = stat.replace("(cargo xtask)", "(a) b (c)");
        assert_eq!(process_age(&odd, "200.45"), Some(age));
        assert_eq!(process_age(stat, "100.0"), None, "started in the future");
        assert_eq!(process_age("garbage", "1.0"), None);
    }
}
