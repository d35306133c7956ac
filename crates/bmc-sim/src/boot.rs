//! Extension point for what a simulated system does when it powers on.
//!
//! Real firmware that boots from the network fetches an iPXE script (PXE) or an EFI image
//! (UEFI HTTP boot) from a boot server. The simulator calls a [`BootHook`] on every boot with
//! everything such firmware would know (its MACs, UUID, the boot target, the rack's boot server
//! URL), so a hook can play the firmware's part: fetch `boot_server` with the MAC and UUID, then,
//! e.g., report back like the in-band probe agent. [`crate::firmware::NetbootFirmware`] is such a
//! hook: it plays network-boot firmware and, for the discovery image, the probe agent; what it
//! fetched shows up in [`crate::SystemState::netboot`].

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::power::BootRecord;

/// One HTTP fetch made by simulated firmware.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// The URL.
    pub url: String,
    /// HTTP status (0 when no answer).
    pub status: u16,
    /// Why there was no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What simulated firmware did on one network boot, for tests and the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetbootRecord {
    /// When the boot started.
    pub time: Option<DateTime<Utc>>,
    /// Every fetch, in order (chain-loader, script, ignition).
    pub fetches: Vec<Fetch>,
    /// The server's own iPXE script, as fetched.
    pub script: Option<String>,
    /// Kernel URL the script boots.
    pub kernel: Option<String>,
    /// Initrd URL the script loads.
    pub initrd: Option<String>,
    /// Kernel command line (iPXE variables expanded).
    pub cmdline: Option<String>,
    /// The ignition document fetched from `ignition.config.url`.
    pub ignition: Option<String>,
    /// Outcome of the probe run (`metal.registry=` on the command line): `posted to <url>` or
    /// the error.
    pub probe: Option<String>,
    /// The wipe mode of a cleaning agent's boot (`metal-probe --wipe` in the ignition): the
    /// simulated OS wiped its disks and reported that instead of the hardware.
    pub wipe: Option<String>,
    /// Why the boot stopped early, if it did.
    pub error: Option<String>,
}

/// Everything known about one boot of a simulated system.
#[derive(Clone, Debug)]
pub struct BootEvent {
    /// Index of the BMC in the rack.
    pub bmc_index: usize,
    /// Address of the BMC.
    pub bmc_address: Ipv4Addr,
    /// Id of the system (`1`, `System.Embedded.1`, ...).
    pub system_id: String,
    /// The system's (derived) UUID, as served.
    pub system_uuid: Option<String>,
    /// The system's NIC MAC addresses, as served.
    pub macs: Vec<String>,
    /// What it booted from.
    pub record: BootRecord,
    /// The rack's `boot_server` URL.
    pub boot_server: Option<String>,
}

impl BootEvent {
    /// Whether firmware would now fetch from the boot server (`Pxe` or `UefiHttp` boot).
    pub fn is_network_boot(&self) -> bool {
        self.record.network_boot()
    }
}

/// Called by the simulator every time a simulated system reaches `On`.
///
/// Hooks run on the simulator's runtime, outside any lock; they must return quickly and spawn
/// their own task for I/O.
pub trait BootHook: Send + Sync + 'static {
    /// A system booted.
    fn on_boot(&self, event: BootEvent);

    /// What the hook recorded for a system's network boots (oldest first); shown in
    /// [`crate::SystemState::netboot`]. Hooks that record nothing keep the default.
    fn netboot_records(&self, _bmc_index: usize, _system_id: &str) -> Vec<NetbootRecord> {
        Vec::new()
    }
}

impl<F> BootHook for F
where
    F: Fn(BootEvent) + Send + Sync + 'static,
{
    fn on_boot(&self, event: BootEvent) {
        self(event)
    }
}
