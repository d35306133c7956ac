//! Simulated network-boot firmware (and, for the discovery image, the booted OS): a
//! [`BootHook`] that, when a system powers on with a `Pxe` or `UefiHttp` boot, does what iPXE
//! would with the rack's boot server (as a DHCP option would name it):
//!
//! 1. `GET <boot_server>/boot.ipxe` and follow its `chain` (with `${net0/mac}` = the first NIC's
//!    MAC and `${uuid}` = the system UUID) to the server's own script;
//! 2. run the script far enough to know what it boots (`set`, `kernel`, `initrd`, `boot`, `chain`,
//!    `goto`, `sleep`, labels, `exit`; `${var}` expansion; a failed `chain ... || goto label`
//!    goes on at the label, so retry loops work) — artifacts are not downloaded;
//! 3. `GET` the `ignition.config.url` from the kernel command line (retried a few times, as
//!    Ignition does);
//! 4. when the command line carries `metal.registry=<url>`, or the ignition starts a `metal-probe`
//!    systemd unit (the discovery image, as the booted OS would run it), play the in-band probe: build a report from the system's hardware as its Redfish tree shows it (its
//!    NICs and MACs, link up, an address, an LLDP neighbour) with the `metal_probe` library and post
//!    it to the registry with the token the ignition writes to `/etc/metal/probe-token`.
//!
//! Everything it fetched is recorded per system ([`NetbootRecord`], in
//! [`crate::SystemState::netboot`]). Plain `http://`, and `https://` once the firmware trusts a
//! CA ([`NetbootFirmware::trusting`], as iPXE built with `TRUST=` does; the booted probe trusts
//! the CA its ignition writes to `/etc/metal/registry-ca.pem`); addresses: the first NIC gets `10.a.b.c` for BMC `127.a.b.c`, every NIC an IPv6
//! `fd00::a:b:c:<n>` unique per system.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::boot::{BootEvent, BootHook, Fetch, NetbootRecord};

/// Records kept per system.
const KEEP: usize = 32;
/// Largest script / ignition accepted.
const BODY_LIMIT: usize = 1024 * 1024;
/// Most script fetches of one boot (chains and retries), like a firmware that gives up.
const MAX_FETCHES: usize = 32;
/// Attempts of the booted OS (Ignition) to fetch its config.
const IGNITION_ATTEMPTS: u32 = 5;
/// Pause between two of them.
const IGNITION_RETRY: Duration = Duration::from_secs(2);
/// Longest `sleep` honoured between two fetches.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Records per (BMC index, system id).
type Records = HashMap<(usize, String), Vec<NetbootRecord>>;

/// The firmware hook. Cheap to clone; clones share the records.
#[derive(Clone, Default)]
pub struct NetbootFirmware {
    records: Arc<Mutex<Records>>,
    probe_attempts: u32,
    /// TLS client settings trusting the CA given to [`NetbootFirmware::trusting`].
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for NetbootFirmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetbootFirmware").finish_non_exhaustive()
    }
}

impl NetbootFirmware {
    /// A firmware hook (posts to the registry with up to 3 attempts).
    pub fn new() -> Self {
        Self {
            records: Arc::default(),
            probe_attempts: 3,
            tls: None,
        }
    }

    /// The firmware with `ca_pem` built in: it then fetches `https://` boot scripts and
    /// ignition from servers whose certificates that CA signed (and refuses any other).
    pub fn trusting(mut self, ca_pem: &str) -> Result<Self, String> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.map_err(|e| format!("CA bundle: {e}"))?)
                .map_err(|e| format!("CA bundle: {e}"))?;
        }
        if roots.is_empty() {
            return Err("CA bundle: no certificate".into());
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        self.tls = Some(Arc::new(cfg));
        Ok(self)
    }

    /// The records of one system.
    pub fn records(&self, bmc_index: usize, system_id: &str) -> Vec<NetbootRecord> {
        self.lock()
            .get(&(bmc_index, system_id.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, key: &(usize, String), index: usize, rec: &NetbootRecord) {
        let mut m = self.lock();
        let list = m.entry(key.clone()).or_default();
        if let Some(slot) = list.get_mut(index) {
            *slot = rec.clone();
        }
    }

    async fn run(&self, event: BootEvent) {
        let Some(server) = event.boot_server.clone() else {
            return;
        };
        let key = (event.bmc_index, event.system_id.clone());
        let mut rec = NetbootRecord {
            time: Some(event.record.time),
            ..NetbootRecord::default()
        };
        let index = {
            let mut m = self.lock();
            let list = m.entry(key.clone()).or_default();
            if list.len() >= KEEP {
                list.remove(0);
            }
            list.push(rec.clone());
            list.len() - 1
        };
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Some(mac) = event.macs.first() {
            vars.insert("net0/mac".into(), mac.to_lowercase());
            vars.insert("mac".into(), mac.to_lowercase());
        }
        if let Some(u) = &event.system_uuid {
            vars.insert("uuid".into(), u.to_lowercase());
        }
        let mut url = format!("{}/boot.ipxe", server.trim_end_matches('/'));
        // The script that chained to `url` and its failure label, to go on with when the fetch
        // fails (`chain ... || goto retry`).
        let mut caller: Option<(String, String)> = None;
        let mut outcome = None;
        for _ in 0..MAX_FETCHES {
            let (fetch, body) = get(&url, self.tls.as_ref()).await;
            let ok = fetch.status == 200;
            rec.fetches.push(fetch);
            self.store(&key, index, &rec);
            let step = if ok {
                let text = String::from_utf8_lossy(&body).into_owned();
                let step = interpret(&text, &mut vars);
                (text, step)
            } else if let Some((text, label)) = caller.take() {
                let step = interpret_from(&text, Some(&label), &mut vars);
                (text, step)
            } else {
                rec.error = Some(format!("no boot script at {url}"));
                break;
            };
            match step {
                (text, Ok(Script::Chain(chain))) => {
                    if !chain.slept.is_zero() {
                        tokio::time::sleep(chain.slept.min(MAX_SLEEP)).await;
                    }
                    url = resolve(&url, &chain.url);
                    caller = chain.on_failure.map(|label| (text, label));
                }
                (text, Ok(Script::Boot(b))) => {
                    rec.script = Some(text);
                    outcome = Some(b);
                    break;
                }
                (_, Ok(Script::Exit)) => {
                    rec.error = Some(if ok {
                        "the script exits to the next boot device".into()
                    } else {
                        format!("no boot script at {url}; the script gave up and exits")
                    });
                    break;
                }
                (_, Err(e)) => {
                    rec.error = Some(e);
                    break;
                }
            }
        }
        let Some(boot) = outcome else {
            self.store(&key, index, &rec);
            return;
        };
        rec.kernel = Some(boot.kernel.clone());
        rec.initrd = boot.initrd.clone();
        rec.cmdline = Some(boot.cmdline.clone());
        self.store(&key, index, &rec);
        let args = kernel_args(&boot.cmdline);
        if let Some(ign_url) = args.get("ignition.config.url") {
            // Ignition retries its config fetch with a back-off, as the booted OS would.
            for attempt in 0..IGNITION_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(IGNITION_RETRY).await;
                }
                let (fetch, body) = get(ign_url, self.tls.as_ref()).await;
                let ok = fetch.status == 200;
                if ok {
                    rec.ignition = Some(String::from_utf8_lossy(&body).into_owned());
                }
                rec.fetches.push(fetch);
                self.store(&key, index, &rec);
                if ok {
                    break;
                }
            }
        }
        // The probe runs when the command line names a registry (`metal.registry=`), or when
        // the ignition starts a `metal-probe` unit, as the booted OS would.
        let from_ignition = rec.ignition.as_deref().and_then(probe_from_ignition);
        let registry_and_uuid = args
            .get("metal.registry")
            .map(|r| (r.clone(), args.get("metal.server-uuid").cloned()))
            .or(from_ignition);
        if let Some((registry, uuid)) = registry_and_uuid {
            let registry = &registry;
            let uuid = uuid
                .or_else(|| event.system_uuid.clone())
                .unwrap_or_default();
            rec.probe = Some(
                match rec.ignition.as_deref().and_then(token_from_ignition) {
                    None => "no probe token in the ignition".into(),
                    Some(token) => {
                        let opts = metal_probe::PostOptions {
                            max_attempts: self.probe_attempts,
                            ca_pem: rec.ignition.as_deref().and_then(|i| {
                                file_from_ignition(i, metal_probe::ignition::CA_PATH)
                                    .map(String::into_bytes)
                            }),
                            ..Default::default()
                        };
                        let wipe = rec
                            .ignition
                            .as_deref()
                            .and_then(metal_probe::ignition::wipe_from_ignition);
                        rec.wipe = wipe.map(|m| m.as_str().to_string());
                        let posted = match wipe {
                            // The cleaning agent: the simulated disks are wiped, the result
                            // reported.
                            Some(mode) => {
                                let payload = wiped(&uuid, mode);
                                metal_probe::post_cleaning(&opts, registry, &token, &payload).await
                            }
                            None => {
                                let report = report(&event);
                                metal_probe::post_with(&opts, registry, &uuid, &token, &report)
                                    .await
                            }
                        };
                        match posted {
                            Ok(()) => format!("posted to {registry}"),
                            Err(e) => format!("posting to {registry} failed: {e}"),
                        }
                    }
                },
            );
            self.store(&key, index, &rec);
        }
        tracing::debug!(bmc = event.bmc_index, system = %event.system_id, kernel = ?rec.kernel, "simulated network boot");
    }
}

impl BootHook for NetbootFirmware {
    fn on_boot(&self, event: BootEvent) {
        if !event.is_network_boot() || event.boot_server.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.run(event).await });
    }

    fn netboot_records(&self, bmc_index: usize, system_id: &str) -> Vec<NetbootRecord> {
        self.records(bmc_index, system_id)
    }
}

/// The registry URL and server UUID of a `metal-probe` systemd unit in an Ignition config
/// (`ExecStart=... metal-probe --registry-url <url> --server-uuid <uuid> ...`), if it has one.
pub fn probe_from_ignition(ignition: &str) -> Option<(String, Option<String>)> {
    let doc: serde_json::Value = serde_json::from_str(ignition).ok()?;
    let units = doc.pointer("/systemd/units")?.as_array()?;
    for unit in units {
        let contents = unit
            .get("contents")
            .and_then(|c| c.as_str())
            .unwrap_or_default();
        for line in contents.lines() {
            let Some(cmd) = line.trim().strip_prefix("ExecStart=") else {
                continue;
            };
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if !words.iter().any(|w| w.ends_with("metal-probe")) {
                continue;
            }
            let flag = |name: &str| {
                words.iter().enumerate().find_map(|(i, w)| {
                    w.strip_prefix(&format!("{name}="))
                        .map(str::to_string)
                        .or_else(|| {
                            (*w == name)
                                .then(|| words.get(i + 1).map(|v| v.to_string()))
                                .flatten()
                        })
                })
            };
            if let Some(registry) = flag("--registry-url") {
                return Some((registry, flag("--server-uuid")));
            }
        }
    }
    None
}

/// What a script boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// Kernel URL.
    pub kernel: String,
    /// Initrd URL.
    pub initrd: Option<String>,
    /// Kernel command line.
    pub cmdline: String,
}

/// How a script ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// `chain <url>`: fetch and run that next.
    Chain(Chain),
    /// `kernel` + `boot`.
    Boot(Boot),
    /// `exit` (or the end without booting): next boot device.
    Exit,
}

/// A `chain` to follow, and where the calling script goes on when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The URL to fetch (variables expanded).
    pub url: String,
    /// `chain ... || goto <label>`: the label the script resumes at when the fetch fails
    /// (`None`: a failed chain ends the boot).
    pub on_failure: Option<String>,
    /// Total `sleep` seconds the script ran before reaching the `chain`.
    pub slept: Duration,
}

/// Most lines one interpretation runs (a script that loops without fetching is cut off).
const MAX_STEPS: usize = 10_000;

fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let name = &after[..j];
                let base = name.split(':').next().unwrap_or(name);
                out.push_str(vars.get(base).map(String::as_str).unwrap_or(""));
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The command and arguments of one statement, options dropped (`--name x` / `-n x` /
/// `--timeout x` take a value).
fn words(statement: &str) -> (&str, Vec<&str>) {
    let mut words = statement.split_whitespace();
    let cmd = words.next().unwrap_or_default();
    let mut args: Vec<&str> = Vec::new();
    let mut skip_value = false;
    for w in words {
        if skip_value {
            skip_value = false;
        } else if !args.is_empty() {
            args.push(w);
        } else if let Some(opt) = w.strip_prefix("--").or_else(|| w.strip_prefix('-')) {
            skip_value = !opt.contains('=') && matches!(opt, "name" | "n" | "timeout" | "t");
        } else {
            args.push(w);
        }
    }
    (cmd, args)
}

/// Runs an iPXE script from its start far enough to know what it boots (pure).
pub fn interpret(script: &str, vars: &mut HashMap<String, String>) -> Result<Script, String> {
    interpret_from(script, None, vars)
}

/// Runs an iPXE script from `label` (its start when `None`) far enough to know what it boots:
/// `set`, `chain`, `kernel`, `initrd`, `boot`, `goto`, `sleep`, labels, `exit` / `reboot`, and
/// `cmd || goto label` failure branches of `chain` (pure; `sleep`s are added up, not slept).
pub fn interpret_from(
    script: &str,
    label: Option<&str>,
    vars: &mut HashMap<String, String>,
) -> Result<Script, String> {
    let mut lines = script.lines();
    match lines.next().map(str::trim) {
        Some(l) if l.starts_with("#!ipxe") => {}
        _ => return Err("not an iPXE script (no #!ipxe line)".into()),
    }
    let lines: Vec<&str> = lines.map(str::trim).collect();
    let target = |name: &str| {
        lines
            .iter()
            .position(|l| l.strip_prefix(':').map(str::trim) == Some(name))
            .ok_or_else(|| format!("goto {name}: no such label"))
    };
    let mut pc = match label {
        Some(l) => target(l)? + 1,
        None => 0,
    };
    let mut kernel: Option<(String, String)> = None;
    let mut initrd = None;
    let mut slept = Duration::ZERO;
    for _ in 0..MAX_STEPS {
        let Some(line) = lines.get(pc) else {
            return Ok(Script::Exit);
        };
        pc += 1;
        let (statement, on_failure) = match line.split_once("||") {
            Some((s, f)) => (s.trim(), f.trim()),
            None => (*line, ""),
        };
        if statement.is_empty() || statement.starts_with('#') || statement.starts_with(':') {
            continue;
        }
        let (cmd, args) = words(statement);
        match cmd {
            "set" => {
                if let Some((k, v)) = args.split_first() {
                    let value = expand(&v.join(" "), vars);
                    vars.insert((*k).to_string(), value);
                }
            }
            "chain" | "imgexec" => {
                let url = args.first().ok_or("chain without URL")?;
                let (fcmd, fargs) = words(on_failure);
                let on_failure = (fcmd == "goto")
                    .then(|| fargs.first().map(|l| l.to_string()))
                    .flatten();
                return Ok(Script::Chain(Chain {
                    url: expand(url, vars),
                    on_failure,
                    slept,
                }));
            }
            "kernel" | "imgselect" => {
                let (url, rest) = args.split_first().ok_or("kernel without URL")?;
                kernel = Some((expand(url, vars), expand(&rest.join(" "), vars)));
            }
            "initrd" | "imgfetch" => {
                initrd = args.first().map(|u| expand(u, vars));
            }
            "boot" => {
                let (kernel, cmdline) = kernel.ok_or("boot without kernel")?;
                return Ok(Script::Boot(Boot {
                    kernel,
                    initrd,
                    cmdline,
                }));
            }
            "sleep" => {
                let secs = args
                    .first()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                slept += Duration::from_secs(secs);
            }
            "goto" => {
                let name = args.first().ok_or("goto without label")?;
                pc = target(name)? + 1;
            }
            "exit" | "reboot" | "shell" | "poweroff" => return Ok(Script::Exit),
            _ => {}
        }
    }
    Err(format!(
        "the script runs more than {MAX_STEPS} lines without booting"
    ))
}

/// `key=value` words of a kernel command line (pure).
pub fn kernel_args(cmdline: &str) -> HashMap<String, String> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The probe token the discovery ignition writes to `/etc/metal/probe-token` (pure).
pub fn token_from_ignition(ignition: &str) -> Option<String> {
    file_from_ignition(ignition, metal_probe::ignition::TOKEN_PATH).map(|s| s.trim().to_string())
}

/// The contents of the file an ignition writes to `path` from a `data:` URL (pure).
pub fn file_from_ignition(ignition: &str, path: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(ignition).ok()?;
    let source = v["storage"]["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == path)?["contents"]["source"]
        .as_str()?
        .to_string();
    let (meta, data) = source.strip_prefix("data:")?.split_once(',')?;
    if meta.ends_with(";base64") {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        return String::from_utf8(b).ok();
    }
    Some(percent_decode(data))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Size of each simulated disk.
const SIM_DISK_BYTES: u64 = 960 * 1000 * 1000 * 1000;

/// The cleaning report of the simulated OS: two disks, each wiped as `mode` asks.
fn wiped(uuid: &str, mode: metal_probe::WipeMode) -> metal_probe::CleaningPayload {
    let written = match mode {
        metal_probe::WipeMode::Metadata => 2 * metal_probe::wipe::METADATA_SPAN,
        metal_probe::WipeMode::Full => SIM_DISK_BYTES,
    };
    metal_probe::CleaningPayload {
        system_uuid: uuid.to_string(),
        mode,
        disks: ["nvme0n1", "sda"]
            .into_iter()
            .map(|name| metal_probe::WipedDisk {
                name: name.into(),
                size_bytes: SIM_DISK_BYTES,
                bytes_written: written,
                error: None,
            })
            .collect(),
    }
}

/// The report the simulated OS would send: every NIC up, an address, an LLDP neighbour.
fn report(event: &BootEvent) -> metal_probe::Report {
    let [_, a, b, c] = event.bmc_address.octets();
    let v4 = Ipv4Addr::new(10, a, b, c);
    let system_hash = event
        .system_id
        .bytes()
        .fold(0u16, |h, x| h.wrapping_mul(31).wrapping_add(u16::from(x)));
    let mut report = metal_probe::Report::new();
    report.system_info.system_information.uuid = event.system_uuid.clone().unwrap_or_default();
    for (n, mac) in event.macs.iter().enumerate() {
        let name = format!("eth{n}");
        let v6 = Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            u16::from(a),
            u16::from(b),
            u16::from(c),
            system_hash.wrapping_add(n as u16),
        );
        let mut nic = metal_probe::NetworkInterface::new(&name, mac.as_str())
            .with_carrier(true)
            .with_ip(v6.to_string());
        if n == 0 {
            nic = nic.with_ip(v4.to_string());
        }
        report = report.with_interface(nic).with_neighbor(
            &name,
            metal_probe::Neighbor {
                chassis_id: format!("02:00:00:{a:02x}:{b:02x}:00"),
                system_name: format!("sim-leaf-{a}-{b}"),
                port_id: format!("Ethernet{c}/{}", n + 1),
                port_description: format!("bmc {} {name}", event.bmc_index),
                ..Default::default()
            },
        );
    }
    report
}

fn resolve(base: &str, next: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(next))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| next.to_string())
}

/// A GET (the whole body, capped), recorded as a [`Fetch`]: plain HTTP, or HTTPS verified
/// against `tls`'s roots when the firmware trusts a CA.
async fn get(url: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> (Fetch, Bytes) {
    let fail = |e: String| {
        (
            Fetch {
                url: url.to_string(),
                status: 0,
                error: Some(e),
            },
            Bytes::new(),
        )
    };
    let (parsed, tls) = match url::Url::parse(url) {
        Ok(u) if u.scheme() == "http" => (u, None),
        Ok(u) if u.scheme() == "https" => match tls {
            Some(t) => (u, Some(t.clone())),
            None => return fail("https needs a trusted CA built into the firmware".into()),
        },
        Ok(u) => {
            return fail(format!(
                "the simulated firmware speaks http and https, not {}",
                u.scheme()
            ));
        }
        Err(e) => return fail(e.to_string()),
    };
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path.push('?');
        path.push_str(q);
    }
    let fut = async {
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let req = Request::get(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::USER_AGENT, "iPXE/1.21 (metal-bmc-sim)")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        match tls {
            Some(cfg) => {
                let name =
                    rustls::pki_types::ServerName::try_from(bare).map_err(|e| e.to_string())?;
                let stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                exchange(stream, req).await
            }
            None => exchange(tcp, req).await,
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(Ok((status, body))) => (
            Fetch {
                url: url.to_string(),
                status,
                error: None,
            },
            body,
        ),
        Ok(Err(e)) => fail(e),
        Err(_) => fail("no answer within 10 s".into()),
    }
}

/// One HTTP/1.1 request over `stream`: the status and the whole body (capped).
async fn exchange<S>(stream: S, req: Request<Empty<Bytes>>) -> Result<(u16, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [
            ("net0/mac".to_string(), "aa:bb:cc:00:00:01".to_string()),
            ("uuid".to_string(), "u-1".to_string()),
        ]
        .into()
    }

    #[test]
    fn chain_loader_expands_mac_and_uuid() {
        let s = "#!ipxe\nchain http://b:8082/ipxe?mac=${net0/mac}&uuid=${uuid} || goto none\n:none\nexit\n";
        assert_eq!(
            interpret(s, &mut vars()),
            Ok(Script::Chain(Chain {
                url: "http://b:8082/ipxe?mac=aa:bb:cc:00:00:01&uuid=u-1".into(),
                on_failure: Some("none".into()),
                slept: Duration::ZERO,
            }))
        );
        assert_eq!(
            interpret_from(s, Some("none"), &mut vars()),
            Ok(Script::Exit)
        );
    }

    #[test]
    fn failure_branches_retry_with_sleeps_then_give_up() {
        let s = "#!ipxe\nchain http://b/x || goto r1\n:r1\necho again\nsleep 3\n\
                 chain http://b/x || goto r2\n:r2\nsleep 3\ngoto none\n:none\nexit\n";
        let Ok(Script::Chain(first)) = interpret(s, &mut vars()) else {
            panic!("no chain")
        };
        assert_eq!(first.on_failure.as_deref(), Some("r1"));
        let Ok(Script::Chain(second)) = interpret_from(s, Some("r1"), &mut vars()) else {
            panic!("no retry")
        };
        assert_eq!(
            (
                second.url.as_str(),
                second.on_failure.as_deref(),
                second.slept
            ),
            ("http://b/x", Some("r2"), Duration::from_secs(3))
        );
        assert_eq!(interpret_from(s, Some("r2"), &mut vars()), Ok(Script::Exit));
        assert!(interpret_from(s, Some("nowhere"), &mut vars()).is_err());
        let looping = "#!ipxe\n:top\ngoto top\n";
        assert!(interpret(looping, &mut vars()).is_err());
    }

    #[test]
    fn server_script_yields_kernel_initrd_cmdline() {
        let s = "#!ipxe\nset rootfs-url http://i/root\nset ignition-url http://b/ignition/u-1\n\
                 kernel http://i/k initrd=initrd gl.url=${rootfs-url} ignition.config.url=http://b/ignition/u-1 || goto failed\n\
                 initrd --name initrd http://i/initrd || goto failed\nboot || goto failed\n:failed\nreboot\n";
        let Ok(Script::Boot(b)) = interpret(s, &mut vars()) else {
            panic!("no boot")
        };
        assert_eq!(b.kernel, "http://i/k");
        assert_eq!(b.initrd.as_deref(), Some("http://i/initrd"));
        assert_eq!(
            b.cmdline,
            "initrd=initrd gl.url=http://i/root ignition.config.url=http://b/ignition/u-1"
        );
        assert_eq!(
            kernel_args(&b.cmdline)
                .get("ignition.config.url")
                .map(String::as_str),
            Some("http://b/ignition/u-1")
        );
    }

    #[test]
    fn exit_and_garbage() {
        assert_eq!(
            interpret("#!ipxe\necho hi\nexit\n", &mut vars()),
            Ok(Script::Exit)
        );
        assert!(interpret("not found\n", &mut vars()).is_err());
        assert!(interpret("#!ipxe\nboot\n", &mut vars()).is_err());
    }

    #[test]
    fn the_probe_finds_the_registry_ca_its_ignition_writes() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let ign = metal_probe::ignition::ignition(&metal_probe::ignition::AgentBoot {
            registry_url: "https://10.0.0.1:10000",
            system_uuid: "u-1",
            token: "t0k",
            registry_ca: Some(ca),
            wipe: None,
        });
        assert_eq!(
            file_from_ignition(&ign, metal_probe::ignition::CA_PATH).as_deref(),
            Some(ca)
        );
        assert_eq!(token_from_ignition(&ign).as_deref(), Some("t0k"));
    }

    #[test]
    fn https_needs_a_trusted_ca_and_a_bad_bundle_is_refused() {
        assert!(NetbootFirmware::new().trusting("not a PEM").is_err());
        let (fetch, _) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(get("https://127.0.0.1:1/boot.ipxe", None));
        assert!(
            fetch
                .error
                .as_deref()
                .is_some_and(|e| e.contains("trusted CA")),
            "{fetch:?}"
        );
    }

    #[test]
    fn token_from_data_urls() {
        let plain = r#"{"storage":{"files":[{"path":"/etc/metal/probe-token","contents":{"source":"data:,abc-DEF_1"}}]}}"#;
        assert_eq!(token_from_ignition(plain).as_deref(), Some("abc-DEF_1"));
        let b64 = r#"{"storage":{"files":[{"path":"/etc/metal/probe-token","contents":{"source":"data:text/plain;base64,dG9rZW4="}}]}}"#;
        assert_eq!(token_from_ignition(b64).as_deref(), Some("token"));
        let pct = r#"{"storage":{"files":[{"path":"/etc/metal/probe-token","contents":{"source":"data:,a%2Fb"}}]}}"#;
        assert_eq!(token_from_ignition(pct).as_deref(), Some("a/b"));
        assert_eq!(token_from_ignition("{}"), None);
        let ign = r#"{"systemd":{"units":[{"name":"metal-probe.service","contents":"[Service]\nExecStart=/usr/local/bin/metal-probe --registry-url http://10.0.0.1:10000 --server-uuid abc --token-file /etc/metal/probe-token\n"}]}}"#;
        assert_eq!(
            probe_from_ignition(ign),
            Some(("http://10.0.0.1:10000".into(), Some("abc".into())))
        );
        assert_eq!(probe_from_ignition(r#"{"systemd":{"units":[]}}"#), None);
    }
}
