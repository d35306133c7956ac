//! Collecting a [`Report`] from a Linux root directory.
//!
//! Everything is read from files below a root (`/` on a live system, a captured tree in tests):
//!
//! | what | from |
//! |---|---|
//! | DMI identity | `sys/class/dmi/id/*` |
//! | memory modules | `sys/firmware/dmi/tables/DMI` (SMBIOS type 17) |
//! | total memory | `proc/meminfo` (`MemTotal`) |
//! | CPUs | `proc/cpuinfo` (grouped by `physical id`) |
//! | disks | `sys/block/*` (loop, ram and zram devices skipped) |
//! | NICs | `sys/class/net/*` (`address`, `carrier`, `operstate`, `speed`, `device/uevent`) |
//! | PCI devices | `sys/bus/pci/devices/*` |
//! | IP addresses | `ip -j addr` (live) or the captured `ip-addr.json`; fallback `proc/net/if_inet6` |
//! | LLDP | `lldpctl -f json` (live, when installed) or the captured `lldpctl.json` |
//!
//! A section that cannot be read is skipped with a warning (like upstream's agent); collection
//! itself never fails, so a half-readable machine still reports its NICs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::lldp::parse_lldpctl;
use crate::report::{
    BiosInformation, BlockDevice, BoardInformation, CARRIER_DOWN, CARRIER_UP, CpuInfo, Dmi,
    LldpInterface, NetworkInterface, Nic, PciDevice, Report, SystemInformation, normalize_mac,
};
use crate::smbios;

/// File name of a captured `ip -j addr` output below the root.
pub const CAPTURED_IP_ADDR: &str = "ip-addr.json";
/// File name of a captured `lldpctl -f json` output below the root.
pub const CAPTURED_LLDPCTL: &str = "lldpctl.json";

/// Where and how to collect.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// Root of the tree to read (`/` on a live system).
    pub root: PathBuf,
    /// Run `ip -j addr` and `lldpctl -f json` when no captured file is present. Only meaningful
    /// for the live root; [`CollectOptions::for_root`] enables it exactly for `/`.
    pub run_commands: bool,
}

impl CollectOptions {
    /// Options for `root`: commands run only when `root` is `/`.
    pub fn for_root(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let run_commands = root == Path::new("/");
        Self { root, run_commands }
    }
}

/// A collected report plus what could not be read.
#[derive(Clone, Debug, Default)]
pub struct Collection {
    /// The report (timestamped now).
    pub report: Report,
    /// One message per skipped section or unreadable item.
    pub warnings: Vec<String>,
}

/// Collects a report from `root` (see the module docs for the files read). Sections that cannot
/// be read are left empty; use [`collect_with`] to see why.
pub fn collect(root: &Path) -> Report {
    collect_with(&CollectOptions::for_root(root)).report
}

/// Collects a report with explicit options, returning the warnings too.
pub fn collect_with(opts: &CollectOptions) -> Collection {
    let mut warnings = Vec::new();
    let root = opts.root.as_path();
    let mut report = Report::new();
    report.system_info = read_dmi(root);
    match fs::read_to_string(root.join("proc/cpuinfo")) {
        Ok(text) => report.cpu = parse_cpuinfo(&text),
        Err(e) => warnings.push(format!("proc/cpuinfo: {e}")),
    }
    match fs::read_to_string(root.join("proc/meminfo")) {
        Ok(text) => report.memory_total_bytes = parse_meminfo_total(&text),
        Err(e) => warnings.push(format!("proc/meminfo: {e}")),
    }
    match fs::read(root.join("sys/firmware/dmi/tables/DMI")) {
        Ok(table) => report.memory = smbios::memory_devices(&table),
        Err(e) => warnings.push(format!("sys/firmware/dmi/tables/DMI: {e}")),
    }
    report.storage = read_block_devices(root, &mut warnings);
    let (ifaces, nics) = read_net(root, &mut warnings);
    report.network_interfaces = ifaces;
    report.nics = nics;
    report.pci_devices = read_pci(root);
    let ips = read_ips(opts, &mut warnings);
    for iface in &mut report.network_interfaces {
        if let Some(addrs) = ips.get(&iface.name) {
            iface.ip_addresses = addrs.clone();
        }
    }
    match read_lldp(opts) {
        Ok(lldp) => report.lldp = lldp,
        Err(e) => warnings.push(e),
    }
    Collection { report, warnings }
}

/// Reads only the LLDP section (the agent refreshes it while waiting for neighbours).
pub fn collect_lldp(opts: &CollectOptions) -> Result<Vec<LldpInterface>, String> {
    read_lldp(opts)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn read_dmi(root: &Path) -> Dmi {
    let dir = root.join("sys/class/dmi/id");
    let f = |name: &str| read_trimmed(&dir.join(name)).unwrap_or_default();
    Dmi {
        bios_information: BiosInformation {
            vendor: f("bios_vendor"),
            version: f("bios_version"),
            date: f("bios_date"),
        },
        system_information: SystemInformation {
            manufacturer: f("sys_vendor"),
            product_name: f("product_name"),
            version: f("product_version"),
            serial_number: f("product_serial"),
            uuid: f("product_uuid"),
            sku_number: f("product_sku"),
            family: f("product_family"),
        },
        board_information: BoardInformation {
            manufacturer: f("board_vendor"),
            product: f("board_name"),
            version: f("board_version"),
            serial_number: f("board_serial"),
            asset_tag: f("board_asset_tag"),
        },
    }
}

/// Groups `/proc/cpuinfo` entries into packages by `physical id`.
pub fn parse_cpuinfo(text: &str) -> Vec<CpuInfo> {
    #[derive(Default)]
    struct Pkg {
        vendor: String,
        model: String,
        flags: Vec<String>,
        threads: u32,
        cores_field: Option<u32>,
        core_ids: std::collections::BTreeSet<String>,
    }
    let mut pkgs: BTreeMap<i64, Pkg> = BTreeMap::new();
    for block in text.split("\n\n") {
        let kv: BTreeMap<&str, &str> = block
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        if !kv.contains_key("processor") {
            continue;
        }
        let id = kv
            .get("physical id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let pkg = pkgs.entry(id).or_default();
        pkg.threads += 1;
        if pkg.vendor.is_empty() {
            pkg.vendor = kv
                .get("vendor_id")
                .or(kv.get("CPU implementer"))
                .unwrap_or(&"")
                .to_string();
        }
        if pkg.model.is_empty() {
            pkg.model = kv
                .get("model name")
                .or(kv.get("Processor"))
                .unwrap_or(&"")
                .to_string();
        }
        if pkg.flags.is_empty() {
            pkg.flags = kv
                .get("flags")
                .or(kv.get("Features"))
                .map(|f| f.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
        }
        if let Some(c) = kv.get("cpu cores").and_then(|v| v.parse().ok()) {
            pkg.cores_field = Some(c);
        }
        if let Some(c) = kv.get("core id") {
            pkg.core_ids.insert(c.to_string());
        }
    }
    pkgs.into_iter()
        .map(|(id, p)| CpuInfo {
            id,
            total_cores: p.cores_field.unwrap_or(if p.core_ids.is_empty() {
                p.threads
            } else {
                p.core_ids.len() as u32
            }),
            total_hardware_threads: p.threads,
            vendor: p.vendor,
            model: p.model,
            capabilities: p.flags,
        })
        .collect()
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    Some(match parts.next() {
        Some("kB") | None => n * 1024,
        Some("MB") => n * 1024 * 1024,
        Some(_) => n,
    })
}

fn read_block_devices(root: &Path, warnings: &mut Vec<String>) -> Vec<BlockDevice> {
    let dir = root.join("sys/block");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("sys/block: {e}"));
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
        .map(|name| {
            let d = dir.join(&name);
            let num = |p: &str| {
                read_trimmed(&d.join(p))
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let s = |p: &str| read_trimmed(&d.join(p)).unwrap_or_default();
            BlockDevice {
                path: format!("/dev/{name}"),
                rotational: num("queue/rotational") == 1,
                removable: num("removable") == 1,
                read_only: num("ro") == 1,
                vendor: s("device/vendor"),
                model: s("device/model"),
                serial: Some(s("device/serial"))
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| s("serial")),
                wwid: Some(s("wwid"))
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| s("device/wwid")),
                physical_block_size: num("queue/physical_block_size"),
                logical_block_size: num("queue/logical_block_size"),
                hw_sector_size: num("queue/hw_sector_size"),
                // `size` counts 512-byte sectors regardless of the device's block size.
                size_bytes: num("size") * 512,
                numa_node_id: read_trimmed(&d.join("device/numa_node"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1),
                name,
            }
        })
        .collect()
}

fn read_net(root: &Path, warnings: &mut Vec<String>) -> (Vec<NetworkInterface>, Vec<Nic>) {
    let dir = root.join("sys/class/net");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("sys/class/net: {e}"));
            return (Vec::new(), Vec::new());
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut ifaces = Vec::new();
    let mut nics = Vec::new();
    for name in names {
        let d = dir.join(&name);
        // ARPHRD_LOOPBACK = 772; skip tunnels and the docker bridge as upstream does.
        let loopback = name == "lo" || read_trimmed(&d.join("type")).as_deref() == Some("772");
        if loopback || name.starts_with("tun") || name.starts_with("docker0") {
            continue;
        }
        let mac = normalize_mac(&read_trimmed(&d.join("address")).unwrap_or_default());
        // `carrier` is unreadable (EINVAL) on an interface that is administratively down.
        let carrier = read_trimmed(&d.join("carrier")).as_deref() == Some("1");
        let operstate = read_trimmed(&d.join("operstate")).unwrap_or_default();
        let up = carrier && operstate != "down";
        ifaces.push(NetworkInterface {
            name: name.clone(),
            mac_address: mac.clone(),
            carrier_status: if up { CARRIER_UP } else { CARRIER_DOWN }.to_string(),
            ..NetworkInterface::default()
        });
        if d.join("device").exists() {
            let speed = read_trimmed(&d.join("speed"))
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|s| *s > 0 && up)
                .map(|s| format!("{s}Mb/s"))
                .unwrap_or_default();
            let pci = read_trimmed(&d.join("device/uevent"))
                .and_then(|u| {
                    u.lines()
                        .find_map(|l| l.strip_prefix("PCI_SLOT_NAME=").map(str::to_string))
                })
                .or_else(|| {
                    fs::read_link(d.join("device"))
                        .ok()
                        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                })
                .unwrap_or_else(|| "unknown".to_string());
            nics.push(Nic {
                name,
                mac,
                pci_address: pci,
                speed,
                ..Nic::default()
            });
        }
    }
    (ifaces, nics)
}

fn read_pci(root: &Path) -> Vec<PciDevice> {
    let dir = root.join("sys/bus/pci/devices");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|address| {
            let d = dir.join(&address);
            let hex = |p: &str| {
                read_trimmed(&d.join(p))
                    .map(|v| v.trim_start_matches("0x").to_string())
                    .unwrap_or_default()
            };
            PciDevice {
                vendor_id: hex("vendor"),
                product_id: hex("device"),
                numa_node_id: read_trimmed(&d.join("numa_node"))
                    .and_then(|v| v.parse().ok())
                    .filter(|n: &i64| *n >= 0)
                    .unwrap_or(0),
                address,
                ..PciDevice::default()
            }
        })
        .collect()
}

fn read_ips(opts: &CollectOptions, warnings: &mut Vec<String>) -> BTreeMap<String, Vec<String>> {
    let captured = opts.root.join(CAPTURED_IP_ADDR);
    let json = if captured.exists() {
        fs::read(&captured).map_err(|e| format!("{CAPTURED_IP_ADDR}: {e}"))
    } else if opts.run_commands {
        run("ip", &["-j", "addr"])
    } else {
        Err(format!("no {CAPTURED_IP_ADDR} below the root"))
    };
    match json.and_then(|j| parse_ip_addr_json(&j)) {
        Ok(m) => m,
        Err(e) => {
            warnings.push(format!(
                "ip addresses: {e}; falling back to proc/net/if_inet6 (IPv6 only)"
            ));
            fs::read_to_string(opts.root.join("proc/net/if_inet6"))
                .map(|t| parse_if_inet6(&t))
                .unwrap_or_default()
        }
    }
}

/// Addresses per interface from `ip -j addr` output (loopback addresses dropped).
pub fn parse_ip_addr_json(data: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
    let v: Value = serde_json::from_slice(data).map_err(|e| format!("ip -j addr output: {e}"))?;
    let links = v.as_array().ok_or("ip -j addr output is not an array")?;
    let mut out = BTreeMap::new();
    for link in links {
        let Some(name) = link.get("ifname").and_then(Value::as_str) else {
            continue;
        };
        let addrs: Vec<String> = link
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("local").and_then(Value::as_str))
            .filter(|ip| {
                ip.parse::<std::net::IpAddr>()
                    .map(|ip| !ip.is_loopback())
                    .unwrap_or(false)
            })
            .map(str::to_string)
            .collect();
        out.insert(name.to_string(), addrs);
    }
    Ok(out)
}

/// IPv6 addresses per interface from `/proc/net/if_inet6`.
pub fn parse_if_inet6(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0].len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(f[0], 16) else {
            continue;
        };
        let ip = std::net::Ipv6Addr::from(bits);
        if ip.is_loopback() {
            continue;
        }
        out.entry(f[5].to_string())
            .or_default()
            .push(ip.to_string());
    }
    out
}

fn read_lldp(opts: &CollectOptions) -> Result<Vec<LldpInterface>, String> {
    let captured = opts.root.join(CAPTURED_LLDPCTL);
    let json = if captured.exists() {
        fs::read(&captured).map_err(|e| format!("{CAPTURED_LLDPCTL}: {e}"))?
    } else if opts.run_commands {
        run("lldpctl", &["-f", "json"])?
    } else {
        return Ok(Vec::new());
    };
    parse_lldpctl(&json).map_err(|e| e.to_string())
}

fn run(cmd: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} exited with {}", out.status));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_groups_packages() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\ncore id\t: 0\ncpu cores\t: 2\nflags\t: fpu sse\n\n\
                    processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 1\ncore id\t: 0\ncpu cores\t: 2\nflags\t: fpu sse\n\n\
                    processor\t: 2\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\ncore id\t: 1\ncpu cores\t: 2\nflags\t: fpu sse\n";
        let cpus = parse_cpuinfo(text);
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[0].total_hardware_threads, 2);
        assert_eq!(cpus[0].total_cores, 2);
        assert_eq!(cpus[1].total_hardware_threads, 1);
        assert_eq!(cpus[0].capabilities, ["fpu", "sse"]);
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn ip_json_and_if_inet6() {
        let j = br#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1"}]},
                     {"ifname":"eno1","addr_info":[{"family":"inet","local":"10.0.0.5","prefixlen":24},{"family":"inet6","local":"fe80::1"}]}]"#;
        let m = parse_ip_addr_json(j).unwrap();
        assert!(m["lo"].is_empty());
        assert_eq!(m["eno1"], ["10.0.0.5", "fe80::1"]);
        let m = parse_if_inet6(
            "fe800000000000000a0027fffe2d3a4e 02 40 20 80     eth0\n00000000000000000000000000000001 01 80 10 80       lo\n",
        );
        assert_eq!(m["eth0"], ["fe80::a00:27ff:fe2d:3a4e"]);
        assert!(!m.contains_key("lo"));
    }
}
