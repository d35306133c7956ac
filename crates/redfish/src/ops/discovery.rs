//! Discovery: which systems and managers a BMC exposes.

use serde::Serialize;

use crate::client::{Client, Ctx};
use crate::error::{Error, ErrorKind};
use crate::models::{Chassis, ComputerSystem, Manager, PowerState};

/// A system behind a BMC, as discovery records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemSummary {
    /// `@odata.id` of the system (the handle every other call takes).
    pub odata_id: String,
    /// Id.
    pub id: Option<String>,
    /// System UUID.
    pub uuid: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Power state.
    pub power_state: Option<PowerState>,
    /// `@odata.id` of the manager managing it.
    pub manager: Option<String>,
    /// Whether it reports `Boot.BootSourceOverrideTarget`, i.e. it can be booted through Redfish
    /// (discovery creates Servers only for these, like upstream).
    pub bootable: bool,
}

/// A manager (BMC) of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagerSummary {
    /// `@odata.id`.
    pub odata_id: String,
    /// Id.
    pub id: Option<String>,
    /// Manager UUID.
    pub uuid: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// BMC, EnclosureManager, ...
    pub manager_type: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
    /// Power state (absent on some BMCs).
    pub power_state: Option<PowerState>,
    /// Whether it offers a graphical console (how the "real" BMC is told apart from satellites).
    pub has_graphical_console: bool,
}

impl Client {
    /// Lists the ComputerSystems behind the BMC with their `@odata.id` and UUID.
    pub async fn systems(&self) -> Result<Vec<SystemSummary>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.systems_ctx(&ctx)).await
    }

    pub(crate) async fn systems_ctx(&self, ctx: &Ctx) -> Result<Vec<SystemSummary>, Error> {
        let root = self.service_root_ctx(ctx).await?;
        let Some(link) = &root.systems else {
            return Err(self.err(ErrorKind::NotSupported(
                "service root has no Systems collection".into(),
            )));
        };
        let levels = self.expand_levels(&root).map(|_| 1);
        let values = self.collection_values(ctx, &link.odata_id, levels).await?;
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let s: ComputerSystem = serde_json::from_value(v).unwrap_or_default();
            let Some(odata_id) = s.odata_id.clone() else {
                continue;
            };
            out.push(SystemSummary {
                odata_id,
                manager: s.manager_link().map(|l| l.odata_id.clone()),
                bootable: s.boot.as_ref().is_some_and(|b| b.override_target.is_some()),
                id: s.id,
                uuid: s.uuid,
                name: s.name,
                manufacturer: s.manufacturer,
                model: s.model,
                serial_number: s.serial_number,
                power_state: s.power_state,
            });
        }
        Ok(out)
    }

    /// Lists the managers (BMCs) of the service, whole: a caller that needs one of them in full
    /// need not read it again.
    pub async fn manager_resources(&self) -> Result<Vec<Manager>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let root = self.service_root_ctx(&ctx).await?;
            let Some(link) = &root.managers else {
                return Ok(Vec::new());
            };
            let levels = self.expand_levels(&root).map(|_| 1);
            let values = self.collection_values(&ctx, &link.odata_id, levels).await?;
            Ok(values
                .into_iter()
                .filter_map(|v| serde_json::from_value::<Manager>(v).ok())
                .filter(|m| m.odata_id.is_some())
                .collect())
        })
        .await
    }

    /// Lists the managers (BMCs) of the service.
    pub async fn managers(&self) -> Result<Vec<ManagerSummary>, Error> {
        Ok(self
            .manager_resources()
            .await?
            .iter()
            .filter_map(ManagerSummary::of)
            .collect())
    }
}

impl ManagerSummary {
    /// The summary of a Manager resource; `None` without `@odata.id`.
    pub fn of(m: &Manager) -> Option<Self> {
        let m = m.clone();
        Some(ManagerSummary {
            odata_id: m.odata_id.clone()?,
            has_graphical_console: m.graphical_console.as_ref().is_some_and(|g| {
                g.max_concurrent_sessions.unwrap_or(0) > 0 || !g.connect_types_supported.is_empty()
            }),
            id: m.id,
            uuid: m.uuid,
            name: m.name,
            manager_type: m.manager_type,
            manufacturer: m.manufacturer,
            model: m.model,
            firmware_version: m.firmware_version,
            power_state: m.power_state,
        })
    }
}

impl Client {
    /// Reads one ComputerSystem.
    pub async fn system(&self, system: &str) -> Result<ComputerSystem, Error> {
        self.get(system).await
    }

    /// Reads one Manager.
    pub async fn manager(&self, manager: &str) -> Result<Manager, Error> {
        self.get(manager).await
    }

    /// Lists the chassis.
    pub async fn chassis(&self) -> Result<Vec<Chassis>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let root = self.service_root_ctx(&ctx).await?;
            let Some(link) = &root.chassis else {
                return Ok(Vec::new());
            };
            let values = self.collection_values(&ctx, &link.odata_id, None).await?;
            Ok(values
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect())
        })
        .await
    }
}
