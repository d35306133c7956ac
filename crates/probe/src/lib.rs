//! `metal-probe`: the in-band discovery agent, as a library and a binary.
//!
//! A server in in-band discovery boots a small OS that runs this agent. It reads what Redfish
//! cannot see (link state, IP addresses, LLDP neighbours, plus DMI, CPUs, memory, disks, PCI)
//! and posts it to the `metal-discovery` registry, authenticated with the per-server token.
//!
//! The library has three parts that callers combine freely:
//!
//! * **collect** a [`Report`] from a root directory: [`collect()`] (`/` on a live system, a captured
//!   tree in tests) or [`collect_with`] for options and warnings;
//! * **build** a [`Report`] from given data (the BMC simulator synthesizes one from its own state):
//!   plain public fields plus [`Report::new`], [`Report::with_interface`],
//!   [`Report::with_neighbor`], [`NetworkInterface::new`];
//! * **post** it: [`post()`] (`POST /register` with retries and backoff), [`post_with`] for
//!   options, [`post_bootstate`] for `POST /bootstate`; [`agent::run`] is the whole agent loop;
//! * **wipe** the disks for a cleaning ([`wipe::wipe`]) and report it ([`post_cleaning`]);
//! * **boot** it: [`ignition::ignition`] is the config that starts it on the booted OS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), metal_probe::PostError> {
//! use metal_probe::{NetworkInterface, Neighbor, Report};
//! let report = Report::new()
//!     .with_interface(NetworkInterface::new("eno1", "aa:bb:cc:00:00:01").with_carrier(true).with_ip("10.0.0.5"))
//!     .with_neighbor("eno1", Neighbor { system_name: "leaf-1".into(), port_id: "Ethernet1/1".into(), ..Default::default() });
//! metal_probe::post("http://127.0.0.1:10000", "3f1c...uuid", "token", &report).await?;
//! let captured = metal_probe::collect(std::path::Path::new("crates/probe/tests/fixtures/tree"));
//! # let _ = captured; Ok(()) }
//! ```

pub mod agent;
pub mod collect;
pub mod ignition;
pub mod lldp;
pub mod post;
pub mod report;
pub mod smbios;
pub mod wipe;

pub use agent::{AgentConfig, Token};
pub use collect::{CollectOptions, Collection, collect, collect_with};
pub use lldp::{LldpError, parse_lldpctl};
pub use post::{PostError, PostOptions, post, post_bootstate, post_cleaning, post_with};
pub use report::{
    BiosInformation, BlockDevice, BoardInformation, BootstatePayload, CpuInfo, Dmi, LldpInterface,
    MemoryDevice, Neighbor, NetworkInterface, Nic, PciDevice, RegistrationPayload, Report,
    SystemInformation, normalize_mac,
};
pub use wipe::{CleaningPayload, WipeMode, WipedDisk};

/// Parses a duration like `30s`, `500ms`, `5m`, `1h` or plain seconds (`10`). Used by the CLIs.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s, m, h)")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(
            super::parse_duration("30s").unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            super::parse_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            super::parse_duration("2m").unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(
            super::parse_duration("1.5").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(super::parse_duration("3d").is_err());
        assert!(super::parse_duration("x").is_err());
    }
}
