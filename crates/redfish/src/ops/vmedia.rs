//! Virtual media: find the CD/DVD slot (under the system or the manager), insert and eject
//! idempotently.

use http::Method;
use serde::Serialize;
use serde_json::json;

use crate::client::{Client, Ctx, Req};
use crate::error::{Error, ErrorKind};
use crate::models::{ComputerSystem, Manager, VirtualMedia};
use crate::secret::Secret;

/// What to insert.
#[derive(Debug, Clone, Default)]
pub struct InsertMedia {
    /// Image URL the BMC fetches.
    pub image: String,
    /// Write protection (default true).
    pub write_protected: Option<bool>,
    /// Transfer protocol (HTTP, HTTPS, NFS, CIFS, ...), when the BMC needs it.
    pub transfer_protocol_type: Option<String>,
    /// User name for the image server.
    pub username: Option<String>,
    /// Password for the image server.
    pub password: Option<Secret>,
}

/// What an insert or eject did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MediaOutcome {
    /// The same image was already inserted; nothing sent.
    AlreadyInserted,
    /// Inserted; a different image that was inserted before was ejected first.
    Inserted {
        /// The image ejected first, if any.
        ejected: Option<String>,
    },
    /// Ejected.
    Ejected,
    /// Nothing was inserted; nothing sent.
    NothingToEject,
}

impl Client {
    /// All virtual media slots of a system: the system's `VirtualMedia` link, then each managing
    /// manager's (vendors differ; see quirk `VirtualMediaUnderManager`).
    pub async fn virtual_media(&self, system: &str) -> Result<Vec<VirtualMedia>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.virtual_media_ctx(&ctx, system))
            .await
    }

    async fn virtual_media_ctx(&self, ctx: &Ctx, system: &str) -> Result<Vec<VirtualMedia>, Error> {
        let sys: ComputerSystem = self.get_ctx(ctx, system).await?;
        let mut collections = Vec::new();
        if let Some(l) = &sys.virtual_media {
            collections.push(l.odata_id.clone());
        }
        let mut slots = Vec::new();
        for c in &collections {
            if let Some(v) = super::optional(self.collection_values(ctx, c, None).await)? {
                slots.extend(
                    v.into_iter()
                        .filter_map(|v| serde_json::from_value::<VirtualMedia>(v).ok()),
                );
            }
        }
        if slots.iter().any(VirtualMedia::is_optical) {
            return Ok(slots);
        }
        for m in sys.links.iter().flat_map(|l| l.managed_by.iter()) {
            let Some(mgr) = super::optional(self.get_ctx::<Manager>(ctx, &m.odata_id).await)?
            else {
                continue;
            };
            let Some(l) = mgr.virtual_media else { continue };
            if collections.contains(&l.odata_id) {
                continue;
            }
            collections.push(l.odata_id.clone());
            if let Some(v) = super::optional(self.collection_values(ctx, &l.odata_id, None).await)?
            {
                slots.extend(
                    v.into_iter()
                        .filter_map(|v| serde_json::from_value::<VirtualMedia>(v).ok()),
                );
            }
        }
        Ok(slots)
    }

    async fn cd_slot(&self, ctx: &Ctx, system: &str) -> Result<VirtualMedia, Error> {
        let slots = self.virtual_media_ctx(ctx, system).await?;
        slots
            .into_iter()
            .find(VirtualMedia::is_optical)
            .ok_or_else(|| {
                self.err(ErrorKind::NotSupported(format!(
                    "{system} has no CD/DVD virtual media slot"
                )))
            })
    }

    async fn eject_slot(&self, ctx: &Ctx, slot: &VirtualMedia) -> Result<(), Error> {
        let path = slot.odata_id.clone().unwrap_or_default();
        match slot
            .actions
            .as_ref()
            .and_then(|a| a.eject_media.as_ref())
            .and_then(|a| a.target.clone())
        {
            Some(target) => {
                self.send_json(ctx, Method::POST, &target, &json!({}))
                    .await?
            }
            None => {
                self.send_json(
                    ctx,
                    Method::PATCH,
                    &path,
                    &json!({ "Image": null, "Inserted": false }),
                )
                .await?
            }
        };
        Ok(())
    }

    /// Inserts an image into the CD/DVD slot. Skipped when the same image is already inserted; a
    /// different image is ejected first.
    pub async fn insert_media(
        &self,
        system: &str,
        media: &InsertMedia,
    ) -> Result<MediaOutcome, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let slot = self.cd_slot(&ctx, system).await?;
            let mut ejected = None;
            if slot.is_inserted() {
                if slot.image.as_deref() == Some(media.image.as_str()) {
                    return Ok(MediaOutcome::AlreadyInserted);
                }
                self.eject_slot(&ctx, &slot).await?;
                ejected = Some(slot.image.clone().unwrap_or_default());
            }
            let mut body = json!({
                "Image": media.image,
                "Inserted": true,
                "WriteProtected": media.write_protected.unwrap_or(true),
            });
            if let Some(t) = &media.transfer_protocol_type {
                body["TransferProtocolType"] = json!(t);
            }
            if let Some(u) = &media.username {
                body["UserName"] = json!(u);
            }
            if let Some(p) = &media.password {
                body["Password"] = json!(p.expose());
            }
            let path = slot.odata_id.clone().unwrap_or_default();
            let (method, target) = match slot.actions.as_ref().and_then(|a| a.insert_media.as_ref()).and_then(|a| a.target.clone()) {
                Some(t) => (Method::POST, t),
                None => (Method::PATCH, path),
            };
            let mut req = Req::new(method, &target).json(&body);
            if let Some(p) = &media.password {
                req = req.secret(p.expose());
            }
            self.execute(&ctx, req).await?;
            tracing::info!(bmc = %self.inner.bmc, system, image = %media.image, "virtual media inserted");
            Ok(MediaOutcome::Inserted { ejected })
        })
        .await
    }

    /// Ejects the CD/DVD slot (skipped when empty).
    pub async fn eject_media(&self, system: &str) -> Result<MediaOutcome, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let slot = self.cd_slot(&ctx, system).await?;
            if !slot.is_inserted() {
                return Ok(MediaOutcome::NothingToEject);
            }
            self.eject_slot(&ctx, &slot).await?;
            Ok(MediaOutcome::Ejected)
        })
        .await
    }
}
