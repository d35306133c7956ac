//! Feeds arbitrary bytes to every model parser: none may panic, and any JSON object must parse into
//! every model (unknown or wrongly typed fields are dropped, never fatal).
//!
//! ```text
//! cargo xtask fuzz --seconds 60      # stable toolchain, seeded from ../tests/fixtures
//! cd crates/redfish/fuzz && cargo +nightly fuzz run parse_models   # with cargo-fuzz, ASan
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;
use redfish::models::*;

fn all(data: &[u8]) -> usize {
    let mut ok = 0;
    macro_rules! p {
        ($($t:ty),*) => {$( if parse::<$t>(data).is_ok() { ok += 1; } )*};
    }
    p!(
        ServiceRoot,
        Collection,
        ComputerSystem,
        Processor,
        Memory,
        Storage,
        StorageController,
        Drive,
        Volume,
        SimpleStorage,
        EthernetInterface,
        Manager,
        Chassis,
        Bios,
        AttributeRegistry,
        RegistryFile,
        UpdateService,
        SoftwareInventory,
        TaskService,
        Task,
        VirtualMedia,
        AccountService,
        ManagerAccount,
        EventService,
        EventDestination,
        ActionInfo,
        RedfishErrorBody
    );
    ok
}

fuzz_target!(|data: &[u8]| {
    let ok = all(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if v.is_object() {
            assert_eq!(ok, 27, "a model rejected a JSON object");
        }
    }
});
