//! Async Redfish client for the BMCs behind every server this project manages.
//!
//! Every controller that touches hardware goes through this crate, so it owns what BMCs need to be
//! driven safely: a small keep-alive connection pool per BMC (HTTP/1.1 over rustls), a timeout per
//! request and a deadline per operation, a cap on response size, Redfish sessions shared by all callers
//! of one [`Client`] (with basic auth as fallback), a per-BMC bound on in-flight requests, retries with
//! backoff for idempotent reads only, typed models that tolerate vendor variance, a table of vendor
//! quirks, and one [`Error`] type sorted into [`ErrorClass`]es that controllers map to condition reasons.
//!
//! ```no_run
//! # async fn demo() -> Result<(), redfish::Error> {
//! use redfish::{BmcEndpoint, Client, ClientOptions, Credentials};
//! let endpoint = BmcEndpoint::parse("https://10.0.0.10")?;
//! let client = Client::new(endpoint, Credentials::new("admin", "secret"), ClientOptions::default())?;
//! for system in client.systems().await? {
//!     let inventory = client.inventory(&system.odata_id).await?;
//!     println!("{:?} {:?} in {} requests", inventory.model, inventory.serial_number, inventory.requests);
//! }
//! client.logout().await?;
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod endpoint;
mod error;
pub mod models;
mod observe;
mod ops;
pub mod retry;
mod secret;
mod tls;
mod transport;
pub mod vendor;

pub use auth::AuthMode;
pub use client::{Client, ClientOptions, Response};
pub use endpoint::{BmcEndpoint, Scheme, TlsVerification};
pub use error::{AttributeError, Error, ErrorClass, ErrorKind};
pub use observe::{Observer, RequestEvent, path_template};
pub use ops::accounts::{AccountUpdate, NewAccount};
pub use ops::bios::{AttributeDiff, BiosApply, BiosSnapshot, validate_attributes};
pub use ops::boot::{BootOverride, boot_patch};
pub use ops::discovery::{ManagerSummary, SystemSummary};
pub use ops::events::{EventSubscriptionRequest, SUBSCRIPTION_CONTEXT};
pub use ops::inventory::{
    DimmInfo, DriveInfo, ManagerInfo, NicInfo, ProcessorInfo, StorageControllerInfo, StorageInfo,
    StorageSource, SystemInventory, VolumeInfo,
};
pub use ops::manager_attrs::ManagerAttributeSource;
pub use ops::power::{PowerAction, PowerOutcome, choose_reset_type};
pub use ops::update::{SimpleUpdateRequest, TaskHandle, TaskProgress, task_monitor_from_response};
pub use ops::vmedia::{InsertMedia, MediaOutcome};
pub use retry::RetryPolicy;
pub use secret::{Credentials, Secret};
pub use vendor::{QUIRKS, Quirk, QuirkId, Vendor, VendorInfo};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
