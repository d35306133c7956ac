//! UpdateService and software/firmware inventory.

use serde::{Deserialize, Serialize};

use super::{Action, Link, Status, de};

/// `Actions` of the update service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateServiceActions {
    /// `#UpdateService.SimpleUpdate`.
    #[serde(rename = "#UpdateService.SimpleUpdate", deserialize_with = "de::opt")]
    pub simple_update: Option<Action>,
    /// `#UpdateService.StartUpdate`.
    #[serde(rename = "#UpdateService.StartUpdate", deserialize_with = "de::opt")]
    pub start_update: Option<Action>,
}

/// The UpdateService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateService {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Enabled.
    #[serde(rename = "ServiceEnabled", deserialize_with = "de::opt_bool")]
    pub service_enabled: Option<bool>,
    /// Where to push an image with a plain HTTP POST.
    #[serde(rename = "HttpPushUri", deserialize_with = "de::opt_string")]
    pub http_push_uri: Option<String>,
    /// Where to push an image with a multipart POST.
    #[serde(rename = "MultipartHttpPushUri", deserialize_with = "de::opt_string")]
    pub multipart_http_push_uri: Option<String>,
    /// Largest image accepted.
    #[serde(rename = "MaxImageSizeBytes", deserialize_with = "de::opt_u64")]
    pub max_image_size_bytes: Option<u64>,
    /// Firmware inventory collection.
    #[serde(rename = "FirmwareInventory", deserialize_with = "de::opt_link")]
    pub firmware_inventory: Option<Link>,
    /// Software inventory collection.
    #[serde(rename = "SoftwareInventory", deserialize_with = "de::opt_link")]
    pub software_inventory: Option<Link>,
    /// Actions.
    #[serde(rename = "Actions", deserialize_with = "de::opt")]
    pub actions: Option<UpdateServiceActions>,
}

impl UpdateService {
    /// The SimpleUpdate action, if offered.
    pub fn simple_update(&self) -> Option<&Action> {
        self.actions.as_ref()?.simple_update.as_ref()
    }
}

/// A SoftwareInventory entry (firmware component).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SoftwareInventory {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Version.
    #[serde(rename = "Version", deserialize_with = "de::opt_string")]
    pub version: Option<String>,
    /// Whether it can be updated.
    #[serde(rename = "Updateable", deserialize_with = "de::opt_bool")]
    pub updateable: Option<bool>,
    /// Software id.
    #[serde(rename = "SoftwareId", deserialize_with = "de::opt_string")]
    pub software_id: Option<String>,
    /// Release date.
    #[serde(rename = "ReleaseDate", deserialize_with = "de::opt_string")]
    pub release_date: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Lowest version it may be downgraded to.
    #[serde(rename = "LowestSupportedVersion", deserialize_with = "de::opt_string")]
    pub lowest_supported_version: Option<String>,
    /// Resources this software belongs to.
    #[serde(rename = "RelatedItem", deserialize_with = "de::vec_link")]
    pub related_item: Vec<Link>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}
