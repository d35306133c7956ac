//! Extension point for what a simulated system does when it powers on.
//!
//! Real firmware that boots from the network fetches an iPXE script (PXE) or an EFI image
//! (UEFI HTTP boot) from a boot server. The simulator calls a [`BootHook`] on every boot with
//! everything such firmware would know (its MACs, UUID, the boot target, the rack's boot server
//! URL), so a hook can play the firmware's part: fetch `boot_server` with the MAC and UUID, then,
//! e.g., report back like the in-band probe agent. The simulator ships no such hook yet.

use std::net::Ipv4Addr;

use crate::state::power::BootRecord;

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
}

impl<F> BootHook for F
where
    F: Fn(BootEvent) + Send + Sync + 'static,
{
    fn on_boot(&self, event: BootEvent) {
        self(event)
    }
}
