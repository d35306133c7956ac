//! Typed Redfish models, tolerant of vendor variance: unknown fields are ignored, everything that may be
//! absent is optional, unknown enum values are kept as `Unknown(String)`, numbers sent as strings and
//! `null`s are accepted. A field that cannot be read is dropped (becomes `None`), never fatal.

pub mod de;

mod account;
mod bios;
mod chassis;
mod common;
mod event;
mod manager;
mod network;
mod processor;
mod root;
mod storage;
mod system;
mod task;
mod update;
mod vmedia;

pub use account::{AccountService, ManagerAccount};
pub use bios::{
    AttributeEnumValue, AttributeRegistry, AttributeType, AttributeValue, Bios, RegistryAttribute,
    RegistryEntries, RegistryFile, RegistryLocation,
};
pub use chassis::{Chassis, ChassisLinks};
pub use common::{
    Action, ActionInfo, ActionParameter, Collection, Health, Link, Message, RedfishErrorBody,
    RedfishErrorInfo, Settings, State, Status,
};
pub use event::{EventDestination, EventService};
pub use manager::{CommandConnectService, Manager, ManagerActions, ManagerLinks};
pub use network::{EthernetInterface, IPv4Address, IPv6Address, LinkStatus};
pub use processor::{Memory, Processor, ProcessorType};
pub use root::{ExpandQuery, ProtocolFeatures, RootLinks, ServiceRoot};
pub use storage::{
    Drive, MediaType, SimpleStorage, SimpleStorageDevice, Storage, StorageController, Volume,
};
pub use system::{
    Boot, BootSource, BootSourceOverrideEnabled, BootSourceOverrideMode, ComputerSystem,
    IndicatorLed, MemorySummary, PowerState, ProcessorSummary, ResetType, SystemActions,
    SystemLinks,
};
pub use task::{Task, TaskService, TaskState};
pub use update::{SoftwareInventory, UpdateService, UpdateServiceActions};
pub use vmedia::{VirtualMedia, VirtualMediaActions, VirtualMediaType};

/// Parses a model from JSON bytes (the entry point of the client, the fuzzer and the fixture tests).
/// Goes through `serde_json::Value` first so that duplicate keys, which some BMCs emit, are tolerated
/// (the last one wins) instead of failing the resource.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_slice(bytes)?;
    T::deserialize(v)
}

/// Defines a Redfish string enum with an `Unknown(String)` fallback, string (de)serialization,
/// `as_str`, `Display` and `From<&str>` (case-insensitive match on known values).
macro_rules! redfish_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The Redfish string for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $s,)+
                    $name::Unknown(s) => s.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $(if s == $s { return $name::$variant; })+
                $(if s.eq_ignore_ascii_case($s) { return $name::$variant; })+
                $name::Unknown(s.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}
pub(crate) use redfish_enum;
