//! Virtual media.

use serde::{Deserialize, Serialize};

use super::{Action, de, redfish_enum};

redfish_enum! {
    /// Media types a virtual media slot accepts.
    VirtualMediaType {
        /// CD.
        Cd = "CD",
        /// DVD.
        Dvd = "DVD",
        /// Floppy.
        Floppy = "Floppy",
        /// USB stick.
        UsbStick = "USBStick",
    }
}

impl VirtualMediaType {
    /// True for optical media (the slot an ISO goes into).
    pub fn is_optical(&self) -> bool {
        matches!(self, VirtualMediaType::Cd | VirtualMediaType::Dvd)
    }
}

/// `Actions` of a virtual media slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualMediaActions {
    /// `#VirtualMedia.InsertMedia`.
    #[serde(rename = "#VirtualMedia.InsertMedia", deserialize_with = "de::opt")]
    pub insert_media: Option<Action>,
    /// `#VirtualMedia.EjectMedia`.
    #[serde(rename = "#VirtualMedia.EjectMedia", deserialize_with = "de::opt")]
    pub eject_media: Option<Action>,
}

/// A virtual media slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualMedia {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Media types accepted.
    #[serde(rename = "MediaTypes", deserialize_with = "de::vec")]
    pub media_types: Vec<VirtualMediaType>,
    /// Image URL (an empty string is read as none).
    #[serde(rename = "Image", deserialize_with = "de::opt_nonempty_string")]
    pub image: Option<String>,
    /// Image name.
    #[serde(rename = "ImageName", deserialize_with = "de::opt_nonempty_string")]
    pub image_name: Option<String>,
    /// Whether media is inserted.
    #[serde(rename = "Inserted", deserialize_with = "de::opt_bool")]
    pub inserted: Option<bool>,
    /// Write protection.
    #[serde(rename = "WriteProtected", deserialize_with = "de::opt_bool")]
    pub write_protected: Option<bool>,
    /// How the media is connected (URI, Applet, ...).
    #[serde(rename = "ConnectedVia", deserialize_with = "de::opt_string")]
    pub connected_via: Option<String>,
    /// Transfer protocol of the image.
    #[serde(rename = "TransferProtocolType", deserialize_with = "de::opt_string")]
    pub transfer_protocol_type: Option<String>,
    /// Actions.
    #[serde(rename = "Actions", deserialize_with = "de::opt")]
    pub actions: Option<VirtualMediaActions>,
}

impl VirtualMedia {
    /// True when the slot takes CDs/DVDs.
    pub fn is_optical(&self) -> bool {
        self.media_types.iter().any(VirtualMediaType::is_optical)
    }

    /// True when media is inserted (an image URL without `Inserted` counts as inserted).
    pub fn is_inserted(&self) -> bool {
        match self.inserted {
            Some(b) => b,
            None => self.image.is_some(),
        }
    }
}
