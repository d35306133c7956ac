//! Boot override (once or continuous) and boot order, with the boot-mode quirks.

use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::models::{
    Boot, BootSource, BootSourceOverrideEnabled, BootSourceOverrideMode, ComputerSystem,
};
use crate::vendor::{QuirkId, VendorInfo, has_quirk};

/// How long a boot override lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BootOverride {
    /// Next boot only.
    Once,
    /// Every boot until changed.
    Continuous,
}

impl BootOverride {
    fn enabled(self) -> BootSourceOverrideEnabled {
        match self {
            BootOverride::Once => BootSourceOverrideEnabled::Once,
            BootOverride::Continuous => BootSourceOverrideEnabled::Continuous,
        }
    }
}

/// Builds the PATCH body for a boot override (pure). Checks the target against
/// `BootSourceOverrideTarget@Redfish.AllowableValues` (when advertised) and adds
/// `BootSourceOverrideMode: UEFI` only when the system reports the mode and it is needed (not already
/// UEFI), or always when it is reported on Supermicro (quirk `BootModeAlwaysUefi`). Never sends the mode
/// when the system does not report it, or when UEFI is not among its allowable modes.
pub fn boot_patch(
    boot: &Boot,
    target: &BootSource,
    mode: BootOverride,
    vendor: &VendorInfo,
) -> Result<Value, String> {
    if !boot.override_target_allowable.is_empty()
        && !boot.override_target_allowable.contains(target)
    {
        let allowed: Vec<&str> = boot
            .override_target_allowable
            .iter()
            .map(BootSource::as_str)
            .collect();
        return Err(format!(
            "boot target {target} is not allowed; allowed: [{}]",
            allowed.join(", ")
        ));
    }
    let mut b = serde_json::Map::new();
    b.insert(
        "BootSourceOverrideEnabled".into(),
        json!(mode.enabled().as_str()),
    );
    b.insert("BootSourceOverrideTarget".into(), json!(target.as_str()));
    let uefi_allowed = boot.override_mode_allowable.is_empty()
        || boot
            .override_mode_allowable
            .contains(&BootSourceOverrideMode::Uefi);
    if let Some(current) = &boot.override_mode {
        let always = has_quirk(vendor, QuirkId::BootModeAlwaysUefi);
        if uefi_allowed && (always || *current != BootSourceOverrideMode::Uefi) {
            b.insert(
                "BootSourceOverrideMode".into(),
                json!(BootSourceOverrideMode::Uefi.as_str()),
            );
        }
    }
    Ok(json!({ "Boot": Value::Object(b) }))
}

impl Client {
    /// Sets a boot override (e.g. PXE once). Skipped (returns `false`) when the system already has
    /// exactly this override.
    pub async fn set_boot_override(
        &self,
        system: &str,
        target: BootSource,
        mode: BootOverride,
    ) -> Result<bool, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let sys: ComputerSystem = self.get_ctx(&ctx, system).await?;
            let Some(boot) = &sys.boot else {
                return Err(self.err(ErrorKind::NotSupported(format!(
                    "{system} has no Boot settings"
                ))));
            };
            if boot.override_target.as_ref() == Some(&target)
                && boot.override_enabled == Some(mode.enabled())
            {
                let uefi_ok = boot
                    .override_mode
                    .as_ref()
                    .is_none_or(|m| *m == BootSourceOverrideMode::Uefi);
                if uefi_ok {
                    return Ok(false);
                }
            }
            let vendor = self.vendor_ctx(&ctx, Some(&sys)).await?;
            let body = boot_patch(boot, &target, mode, &vendor)
                .map_err(|m| self.err(ErrorKind::NotSupported(m)))?;
            self.send_json(&ctx, Method::PATCH, system, &body).await?;
            tracing::info!(bmc = %self.inner.bmc, system, %target, ?mode, "boot override set");
            Ok(true)
        })
        .await
    }

    /// Reads the persistent boot order.
    pub async fn boot_order(&self, system: &str) -> Result<Vec<String>, Error> {
        let sys: ComputerSystem = self.get(system).await?;
        Ok(sys.boot.map(|b| b.boot_order).unwrap_or_default())
    }

    /// Sets the persistent boot order (skipped when already equal). Every entry must be one of the
    /// current entries (a permutation), which is what BMCs accept.
    pub async fn set_boot_order(&self, system: &str, order: &[String]) -> Result<bool, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let sys: ComputerSystem = self.get_ctx(&ctx, system).await?;
            let current = sys.boot.map(|b| b.boot_order).unwrap_or_default();
            if current == order {
                return Ok(false);
            }
            if let Some(unknown) = order.iter().find(|o| !current.contains(o)) {
                return Err(self.err(ErrorKind::InvalidInput(format!(
                    "boot order entry {unknown} is not one of the system's boot options [{}]",
                    current.join(", ")
                ))));
            }
            self.send_json(
                &ctx,
                Method::PATCH,
                system,
                &json!({ "Boot": { "BootOrder": order } }),
            )
            .await?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendor::Vendor;

    fn boot(json: &str) -> Boot {
        serde_json::from_str(json).unwrap()
    }

    fn vendor(v: Vendor) -> VendorInfo {
        VendorInfo {
            vendor: v,
            ..VendorInfo::default()
        }
    }

    #[test]
    fn generic_sends_mode_only_when_reported_and_not_uefi() {
        let b = boot(r#"{"BootSourceOverrideMode":"UEFI"}"#);
        let body = boot_patch(
            &b,
            &BootSource::Pxe,
            BootOverride::Once,
            &vendor(Vendor::Dell),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}})
        );
        let b = boot(r#"{"BootSourceOverrideMode":"Legacy"}"#);
        let body = boot_patch(
            &b,
            &BootSource::Pxe,
            BootOverride::Once,
            &vendor(Vendor::Generic),
        )
        .unwrap();
        assert_eq!(body["Boot"]["BootSourceOverrideMode"], "UEFI");
        let b = boot(r#"{}"#);
        let body = boot_patch(
            &b,
            &BootSource::Cd,
            BootOverride::Continuous,
            &vendor(Vendor::Generic),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"Boot": {"BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideTarget": "Cd"}})
        );
    }

    #[test]
    fn supermicro_always_sends_uefi_when_reported_never_when_absent() {
        let b = boot(r#"{"BootSourceOverrideMode":"UEFI"}"#);
        let body = boot_patch(
            &b,
            &BootSource::Pxe,
            BootOverride::Once,
            &vendor(Vendor::Supermicro),
        )
        .unwrap();
        assert_eq!(body["Boot"]["BootSourceOverrideMode"], "UEFI");
        let b = boot(r#"{"BootSourceOverrideTarget":"None"}"#);
        let body = boot_patch(
            &b,
            &BootSource::Pxe,
            BootOverride::Once,
            &vendor(Vendor::Supermicro),
        )
        .unwrap();
        assert!(body["Boot"].get("BootSourceOverrideMode").is_none());
    }

    #[test]
    fn target_checked_against_allowable_values() {
        let b =
            boot(r#"{"BootSourceOverrideTarget@Redfish.AllowableValues":["None","Pxe","Hdd"]}"#);
        let err = boot_patch(
            &b,
            &BootSource::UefiHttp,
            BootOverride::Once,
            &vendor(Vendor::Generic),
        )
        .unwrap_err();
        assert!(err.contains("UefiHttp") && err.contains("Pxe"), "{err}");
        assert!(
            boot_patch(
                &b,
                &BootSource::Hdd,
                BootOverride::Once,
                &vendor(Vendor::Generic)
            )
            .is_ok()
        );
    }
}
