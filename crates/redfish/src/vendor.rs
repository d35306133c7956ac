//! Vendor detection and the table of vendor quirks.
//!
//! The client follows the standard wherever it works on real hardware; where a BMC needs something
//! else, the deviation is one entry in [`QUIRKS`] (what, which vendor/firmware, where it is known from)
//! and the operations ask [`has_quirk`] instead of matching on vendors. `docs/redfish-quirks.md` is the
//! same table for humans; a unit test keeps the two in sync.

use serde::Serialize;

use crate::models::{ComputerSystem, Manager, ServiceRoot};

/// BMC vendor families with known behaviour differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Vendor {
    /// Dell iDRAC.
    Dell,
    /// HPE iLO.
    Hpe,
    /// Lenovo XClarity Controller.
    Lenovo,
    /// Supermicro BMC.
    Supermicro,
    /// Anything else (follows the standard): DMTF mockups, sushy-emulator, OpenBMC, simulators.
    Generic,
}

impl Vendor {
    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Vendor::Dell => "dell",
            Vendor::Hpe => "hpe",
            Vendor::Lenovo => "lenovo",
            Vendor::Supermicro => "supermicro",
            Vendor::Generic => "generic",
        }
    }

    fn from_text(s: &str) -> Option<Vendor> {
        let l = s.to_ascii_lowercase();
        if l.contains("dell") || l.contains("idrac") {
            Some(Vendor::Dell)
        } else if l == "hpe" || l == "hp" || l.contains("hewlett") || l.contains("ilo") {
            Some(Vendor::Hpe)
        } else if l.contains("lenovo") || l.contains("xclarity") {
            Some(Vendor::Lenovo)
        } else if l.contains("supermicro") || l == "smc" {
            Some(Vendor::Supermicro)
        } else {
            None
        }
    }
}

/// What is known about the BMC's make, from the service root, the manager and the system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VendorInfo {
    /// Vendor family.
    pub vendor: Vendor,
    /// Where the vendor was recognised (`root.Vendor`, `root.Oem`, `system.Manufacturer`, ...).
    pub detected_from: &'static str,
    /// System manufacturer, when known.
    pub manufacturer: Option<String>,
    /// Service root `Product`.
    pub product: Option<String>,
    /// Manager model (e.g. `iLO 6`, `15G Monolithic`).
    pub manager_model: Option<String>,
    /// Manager firmware version.
    pub manager_firmware: Option<String>,
    /// Redfish protocol version.
    pub redfish_version: Option<String>,
}

impl Default for VendorInfo {
    fn default() -> Self {
        Self {
            vendor: Vendor::Generic,
            detected_from: "default",
            manufacturer: None,
            product: None,
            manager_model: None,
            manager_firmware: None,
            redfish_version: None,
        }
    }
}

/// Detects the vendor. Order: root `Vendor`, root `Oem` keys, root `Product`, manager manufacturer,
/// system manufacturer.
pub fn detect(
    root: Option<&ServiceRoot>,
    manager: Option<&Manager>,
    system: Option<&ComputerSystem>,
) -> VendorInfo {
    let mut info = VendorInfo {
        manufacturer: system.and_then(|s| s.manufacturer.clone()),
        product: root.and_then(|r| r.product.clone()),
        manager_model: manager.and_then(|m| m.model.clone()),
        manager_firmware: manager.and_then(|m| m.firmware_version.clone()),
        redfish_version: root.and_then(|r| r.redfish_version.clone()),
        ..VendorInfo::default()
    };
    let candidates: [(&'static str, Option<Vendor>); 5] = [
        (
            "root.Vendor",
            root.and_then(|r| r.vendor.as_deref())
                .and_then(Vendor::from_text),
        ),
        (
            "root.Oem",
            root.and_then(|r| r.oem_keys().iter().find_map(|k| Vendor::from_text(k))),
        ),
        (
            "root.Product",
            root.and_then(|r| r.product.as_deref())
                .and_then(Vendor::from_text),
        ),
        (
            "manager.Manufacturer",
            manager
                .and_then(|m| m.manufacturer.as_deref())
                .and_then(Vendor::from_text),
        ),
        (
            "system.Manufacturer",
            system
                .and_then(|s| s.manufacturer.as_deref())
                .and_then(Vendor::from_text),
        ),
    ];
    if let Some((from, Some(v))) = candidates.into_iter().find(|(_, v)| v.is_some()) {
        info.vendor = v;
        info.detected_from = from;
    }
    info
}

/// Identifier of one quirk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum QuirkId {
    /// Send `BootSourceOverrideMode: UEFI` whenever the system reports the property.
    BootModeAlwaysUefi,
    /// Never send `If-Match` with `SimpleUpdate`.
    NoIfMatchOnSimpleUpdate,
    /// Add `@Redfish.OperationApplyTime: Immediate` to `SimpleUpdate`.
    SimpleUpdateApplyImmediate,
    /// Omit `DeliveryRetryPolicy` from event subscriptions.
    SubscriptionWithoutRetryPolicy,
    /// Account PATCH must carry the password.
    AccountPatchNeedsPassword,
    /// Fixed account slots: create by PATCHing an empty slot, delete by blanking it.
    AccountSlots,
    /// The manager may report no `PowerState`.
    ManagerPowerStateMissing,
    /// The task monitor URI may be in the body (`TaskMonitor`, `@odata.id`, `Task`) instead of
    /// `Location`.
    TaskMonitorInBody,
    /// A finished task monitor answers with an error body whose message id contains `Success`.
    TaskSuccessInErrorBody,
    /// A completed task hands over to a job (`OperationTransitionedToJob`).
    TaskTransitionsToJob,
    /// BMC attributes live in `Links.Oem.Dell.DellAttributes`, registry spells `Readonly`.
    ManagerAttributesViaDellOem,
    /// Virtual media lives under the manager, or both places; the system link may point there.
    VirtualMediaUnderManager,
    /// An empty virtual media slot reports `Image: ""`.
    EmptyImageString,
    /// No SessionService (404): basic auth only.
    NoSessionService,
    /// `$expand` limited to one level.
    ExpandMaxLevelsOne,
    /// Reset types advertised through `@Redfish.ActionInfo`, not inline allowable values.
    ResetTypesInActionInfo,
    /// Storage drives linked under a Chassis, not under the Storage resource.
    DrivesUnderChassis,
    /// BIOS settings writes carry `@Redfish.SettingsApplyTime` only where `SupportedApplyTimes` lists it.
    SettingsApplyTimeWhenAdvertised,
}

/// One vendor quirk: what deviates, where, how we know, and a predicate deciding whether it applies.
#[derive(Debug, Clone, Copy)]
pub struct Quirk {
    /// Identifier.
    pub id: QuirkId,
    /// Affected vendors (empty = handled generically for every vendor).
    pub vendors: &'static [Vendor],
    /// Affected firmware, as far as known.
    pub firmware: &'static str,
    /// What deviates and what the client does about it.
    pub what: &'static str,
    /// Where this is known from.
    pub source: &'static str,
    /// Whether the quirk applies to a BMC.
    pub applies: fn(&VendorInfo) -> bool,
}

fn is_dell(i: &VendorInfo) -> bool {
    i.vendor == Vendor::Dell
}
fn is_hpe(i: &VendorInfo) -> bool {
    i.vendor == Vendor::Hpe
}
fn is_supermicro(i: &VendorInfo) -> bool {
    i.vendor == Vendor::Supermicro
}
fn is_dell_or_lenovo_or_hpe(i: &VendorInfo) -> bool {
    matches!(i.vendor, Vendor::Dell | Vendor::Hpe | Vendor::Lenovo)
}
fn always(_: &VendorInfo) -> bool {
    true
}

/// Every known quirk.
pub const QUIRKS: &[Quirk] = &[
    Quirk {
        id: QuirkId::BootModeAlwaysUefi,
        vendors: &[Vendor::Supermicro],
        firmware: "X12/X13/H13 BMCs (Redfish 1.11+); X10 boards omit the property",
        what: "Newer boards ignore a boot override unless BootSourceOverrideMode=UEFI is sent with it, so it is sent \
               whenever the system reports the property; old X10 boards reject the PATCH if it is present, so it is \
               never sent when the property is absent. Other vendors get the mode only when reported and not UEFI.",
        source: "ironcore-dev/metal-operator bmc/redfish_supermicro.go SetBootOverride",
        applies: is_supermicro,
    },
    Quirk {
        id: QuirkId::NoIfMatchOnSimpleUpdate,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC9",
        what: "SimpleUpdate with an If-Match header fails with 412 Precondition Failed; the client never sends If-Match \
               on actions.",
        source: "ironcore-dev/metal-operator #1020, bmc/oem_helpers.go upgradeVersion (DisableEtagMatch)",
        applies: is_dell,
    },
    Quirk {
        id: QuirkId::SimpleUpdateApplyImmediate,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC9",
        what: "SimpleUpdate body gets \"@Redfish.OperationApplyTime\": \"Immediate\" so the update is not merely staged.",
        source: "ironcore-dev/metal-operator bmc/redfish_dell.go dellBuildRequestBody",
        applies: is_dell,
    },
    Quirk {
        id: QuirkId::SubscriptionWithoutRetryPolicy,
        vendors: &[Vendor::Hpe],
        firmware: "iLO 5/6",
        what: "iLO rejects event subscriptions that carry DeliveryRetryPolicy; the field is omitted.",
        source: "ironcore-dev/metal-operator bmc/redfish_hpe.go CreateEventSubscription",
        applies: is_hpe,
    },
    Quirk {
        id: QuirkId::AccountPatchNeedsPassword,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC9",
        what: "PATCH of a ManagerAccount without Password is answered 400; account updates on Dell require the password.",
        source: "ironcore-dev/metal-operator bmc/redfish.go CreateOrUpdateAccount",
        applies: is_dell,
    },
    Quirk {
        id: QuirkId::AccountSlots,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC8/9 (16 fixed slots)",
        what: "POST to Accounts answers 405: an account is created by PATCHing the first empty slot (never Id 1), and \
               deleted by PATCHing {UserName: \"\", Enabled: false} when DELETE answers 405. On Dell the slot path is \
               taken directly; for others it is the fallback after a 405.",
        source: "ironcore-dev/metal-operator bmc/redfish.go CreateOrUpdateAccount/DeleteAccount",
        applies: is_dell,
    },
    Quirk {
        id: QuirkId::ManagerPowerStateMissing,
        vendors: &[Vendor::Hpe],
        firmware: "iLO 6 1.70",
        what: "The Manager has no PowerState; a manager that answers is treated as up instead of waiting for On.",
        source: "ironcore-dev/metal-operator issue #594",
        applies: is_hpe,
    },
    Quirk {
        id: QuirkId::TaskMonitorInBody,
        vendors: &[Vendor::Dell, Vendor::Hpe, Vendor::Lenovo],
        firmware: "iDRAC9, iLO 5/6, XCC",
        what: "After a 202 the task is found in the Location header (Dell, standard) or in the body: TaskMonitor (HPE), \
               @odata.id (Lenovo, Dell) or Task.@odata.id (Dell). The client looks at all of them, in that order.",
        source: "ironcore-dev/metal-operator bmc/redfish_{dell,hpe,lenovo}.go *ExtractTaskMonitorURI",
        applies: is_dell_or_lenovo_or_hpe,
    },
    Quirk {
        id: QuirkId::TaskSuccessInErrorBody,
        vendors: &[Vendor::Hpe],
        firmware: "iLO 5/6",
        what: "A finished task monitor answers with an error body whose first @Message.ExtendedInfo MessageId contains \
               \"Success\"; that is read as Completed/OK.",
        source: "ironcore-dev/metal-operator bmc/redfish_hpe.go hpeParseTaskDetails",
        applies: always,
    },
    Quirk {
        id: QuirkId::TaskTransitionsToJob,
        vendors: &[Vendor::Lenovo],
        firmware: "XCC",
        what: "A completed task whose message is OperationTransitionedToJob hands over to the job in MessageArgs[0]; the \
               client follows the job and maps JobState to TaskState.",
        source: "ironcore-dev/metal-operator bmc/redfish_lenovo.go lenovoParseTaskDetails",
        applies: always,
    },
    Quirk {
        id: QuirkId::ManagerAttributesViaDellOem,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC9",
        what: "BMC attributes are split over the DellAttributes resources in Manager Links.Oem.Dell (iDRAC, System, \
               LifecycleController), each with its own @Redfish.Settings and ETag; writes PATCH the settings object with \
               @Redfish.SettingsApplyTime Immediate and If-Match. ManagerAttributeRegistry spells ReadOnly as Readonly \
               and has negative bounds; when it is absent, a built-in list of common iDRAC attributes validates.",
        source: "ironcore-dev/metal-operator bmc/redfish_dell.go",
        applies: is_dell,
    },
    Quirk {
        id: QuirkId::VirtualMediaUnderManager,
        vendors: &[Vendor::Supermicro, Vendor::Dell],
        firmware: "Supermicro X12+ (system link points to the manager); iDRAC9 6.x (both, manager deprecated)",
        what: "Virtual media is looked up at the system's VirtualMedia link first, then under each manager of the system.",
        source: "fixtures supermicro-sys-821ge and dell-poweredge-r750; metal-operator #604",
        applies: always,
    },
    Quirk {
        id: QuirkId::EmptyImageString,
        vendors: &[],
        firmware: "sushy-emulator 2.2.0",
        what: "An empty slot reports Image: \"\" instead of null; empty strings are read as no image.",
        source: "shared/docs/reference/sushy-emulator.md",
        applies: always,
    },
    Quirk {
        id: QuirkId::NoSessionService,
        vendors: &[],
        firmware: "sushy-emulator 2.2.0 (fake driver)",
        what: "SessionService answers 404; AuthMode::Auto falls back to basic auth on 404/405/501 or when the root has no \
               SessionService.",
        source: "shared/docs/reference/sushy-emulator.md",
        applies: always,
    },
    Quirk {
        id: QuirkId::ExpandMaxLevelsOne,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC9 (ExpandQuery.MaxLevels = 1)",
        what: "$levels is capped by ProtocolFeaturesSupported.ExpandQuery.MaxLevels; members not expanded are fetched \
               individually.",
        source: "fixture dell-poweredge-r750 service root",
        applies: always,
    },
    Quirk {
        id: QuirkId::ResetTypesInActionInfo,
        vendors: &[Vendor::Supermicro],
        firmware: "X12+",
        what: "ComputerSystem.Reset has @Redfish.ActionInfo instead of ResetType@Redfish.AllowableValues; the ActionInfo \
               is read to check the reset type.",
        source: "fixture supermicro-sys-821ge Systems/1",
        applies: always,
    },
    Quirk {
        id: QuirkId::DrivesUnderChassis,
        vendors: &[Vendor::Supermicro],
        firmware: "X12+",
        what: "Storage.Drives links point under /Chassis/...StorageBackplane/Drives; links are followed as given, never \
               rebuilt from the storage path.",
        source: "fixture supermicro-sys-821ge Systems/1/Storage/NVMeSSD",
        applies: always,
    },
    Quirk {
        id: QuirkId::SettingsApplyTimeWhenAdvertised,
        vendors: &[Vendor::Dell],
        firmware: "iDRAC9",
        what: "BIOS settings PATCH carries @Redfish.SettingsApplyTime {ApplyTime: OnReset} only when \
               @Redfish.Settings.SupportedApplyTimes lists OnReset; services that do not advertise it get the bare \
               attributes.",
        source: "fixture dell-poweredge-r750 Bios; DMTF DSP0266 settings apply time",
        applies: always,
    },
];

/// Whether a quirk applies to a BMC.
pub fn has_quirk(info: &VendorInfo, id: QuirkId) -> bool {
    QUIRKS.iter().any(|q| q.id == id && (q.applies)(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(json: &str) -> ServiceRoot {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn detects_vendors() {
        assert_eq!(
            detect(Some(&root(r#"{"Vendor":"Dell"}"#)), None, None).vendor,
            Vendor::Dell
        );
        let r = root(r#"{"Oem":{"Supermicro":{}}}"#);
        let i = detect(Some(&r), None, None);
        assert_eq!(
            (i.vendor, i.detected_from),
            (Vendor::Supermicro, "root.Oem")
        );
        assert_eq!(
            detect(Some(&root(r#"{"Oem":{"Hpe":{}}}"#)), None, None).vendor,
            Vendor::Hpe
        );
        assert_eq!(
            detect(Some(&root(r#"{"Vendor":"Lenovo"}"#)), None, None).vendor,
            Vendor::Lenovo
        );
        let sys: ComputerSystem = serde_json::from_str(r#"{"Manufacturer":"HPE"}"#).unwrap();
        let i = detect(Some(&root("{}")), None, Some(&sys));
        assert_eq!(
            (i.vendor, i.detected_from),
            (Vendor::Hpe, "system.Manufacturer")
        );
        let sys: ComputerSystem = serde_json::from_str(r#"{"Manufacturer":"Contoso"}"#).unwrap();
        assert_eq!(
            detect(Some(&root("{}")), None, Some(&sys)).vendor,
            Vendor::Generic
        );
    }

    #[test]
    fn quirks_apply_by_vendor() {
        let dell = VendorInfo {
            vendor: Vendor::Dell,
            ..VendorInfo::default()
        };
        let smc = VendorInfo {
            vendor: Vendor::Supermicro,
            ..VendorInfo::default()
        };
        let hpe = VendorInfo {
            vendor: Vendor::Hpe,
            ..VendorInfo::default()
        };
        assert!(has_quirk(&smc, QuirkId::BootModeAlwaysUefi));
        assert!(!has_quirk(&dell, QuirkId::BootModeAlwaysUefi));
        assert!(has_quirk(&dell, QuirkId::AccountSlots));
        assert!(has_quirk(&dell, QuirkId::AccountPatchNeedsPassword));
        assert!(!has_quirk(&hpe, QuirkId::AccountSlots));
        assert!(has_quirk(&hpe, QuirkId::SubscriptionWithoutRetryPolicy));
        assert!(!has_quirk(&dell, QuirkId::SubscriptionWithoutRetryPolicy));
        assert!(has_quirk(&dell, QuirkId::SimpleUpdateApplyImmediate));
    }

    #[test]
    fn every_quirk_is_documented() {
        let doc = include_str!("../../../docs/redfish-quirks.md");
        for q in QUIRKS {
            let name = format!("{:?}", q.id);
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/redfish-quirks.md lacks `{name}`"
            );
            assert!(!q.what.is_empty() && !q.source.is_empty());
        }
        let mut ids: Vec<_> = QUIRKS.iter().map(|q| format!("{:?}", q.id)).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), QUIRKS.len(), "duplicate quirk ids");
    }
}
