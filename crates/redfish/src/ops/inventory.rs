//! Full inventory of one system with the fewest requests: `$expand` where the service advertises it,
//! otherwise a concurrent fan-out bounded by the per-BMC limit.

use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use crate::client::{Client, Ctx};
use crate::error::{Error, ErrorClass, ErrorKind};
use crate::models::{
    ComputerSystem, Drive, EthernetInterface, Health, IndicatorLed, LinkStatus, Manager, MediaType,
    Memory, PowerState, Processor, ProcessorType, SimpleStorage, State, Status, Storage,
    StorageController, Volume,
};
use crate::vendor::Vendor;

/// A processor as recorded in the inventory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessorInfo {
    /// Id.
    pub id: Option<String>,
    /// Socket.
    pub socket: Option<String>,
    /// CPU, GPU, ...
    pub processor_type: Option<ProcessorType>,
    /// Architecture.
    pub architecture: Option<String>,
    /// Instruction set.
    pub instruction_set: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Maximum speed in MHz.
    pub max_speed_mhz: Option<u32>,
    /// Cores.
    pub total_cores: Option<u32>,
    /// Threads.
    pub total_threads: Option<u32>,
    /// State (Absent sockets are kept with this set).
    pub state: Option<State>,
}

/// A memory module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimmInfo {
    /// Id.
    pub id: Option<String>,
    /// Slot label.
    pub device_locator: Option<String>,
    /// Capacity in MiB.
    pub capacity_mib: Option<u64>,
    /// DDR4, DDR5, ...
    pub memory_device_type: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Operating speed.
    pub operating_speed_mhz: Option<u32>,
    /// State.
    pub state: Option<State>,
}

/// A storage controller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageControllerInfo {
    /// Name.
    pub name: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
}

/// A drive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriveInfo {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// HDD/SSD.
    pub media_type: Option<MediaType>,
    /// Protocol.
    pub protocol: Option<String>,
    /// State.
    pub state: Option<State>,
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeInfo {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// RAID type.
    pub raid_type: Option<String>,
    /// State.
    pub state: Option<State>,
}

/// Where a storage entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StorageSource {
    /// The Storage collection.
    Storage,
    /// The SimpleStorage collection (fallback when there is no Storage).
    SimpleStorage,
}

/// A storage subsystem with its drives and volumes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageInfo {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Source collection.
    pub source: StorageSource,
    /// Controllers.
    pub controllers: Vec<StorageControllerInfo>,
    /// Drives.
    pub drives: Vec<DriveInfo>,
    /// Volumes.
    pub volumes: Vec<VolumeInfo>,
}

/// A network interface of the system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NicInfo {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Current MAC address.
    pub mac_address: Option<String>,
    /// Burned-in MAC address.
    pub permanent_mac_address: Option<String>,
    /// Link state.
    pub link_status: Option<LinkStatus>,
    /// Speed in Mbit/s.
    pub speed_mbps: Option<u64>,
    /// IPv4 addresses.
    pub ipv4_addresses: Vec<String>,
}

/// The BMC (manager) of the system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagerInfo {
    /// `@odata.id`.
    pub odata_id: Option<String>,
    /// UUID.
    pub uuid: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
}

/// Everything discovery records about a server, from one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemInventory {
    /// `@odata.id` of the system.
    pub odata_id: String,
    /// Id.
    pub id: Option<String>,
    /// System UUID.
    pub uuid: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// SKU.
    pub sku: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Power state.
    pub power_state: Option<PowerState>,
    /// Indicator LED.
    pub indicator_led: Option<IndicatorLed>,
    /// State.
    pub state: Option<State>,
    /// Health.
    pub health: Option<Health>,
    /// BIOS version.
    pub bios_version: Option<String>,
    /// BMC firmware version (from the manager).
    pub bmc_firmware_version: Option<String>,
    /// The managing BMC.
    pub manager: Option<ManagerInfo>,
    /// Detected vendor.
    pub vendor: Vendor,
    /// Processors (all types).
    pub processors: Vec<ProcessorInfo>,
    /// Number of CPUs (present CPU sockets; `ProcessorSummary.Count` when the list is empty).
    pub cpu_count: u32,
    /// Total memory in GiB (`MemorySummary`, else the sum of the DIMMs).
    pub total_memory_gib: Option<f64>,
    /// Memory modules.
    pub dimms: Vec<DimmInfo>,
    /// Storage subsystems with drives and volumes.
    pub storages: Vec<StorageInfo>,
    /// Network interfaces with MACs and link state.
    pub nics: Vec<NicInfo>,
    /// HTTP requests this inventory took (including the service root and login on a fresh client).
    pub requests: u32,
    /// Whether `$expand` was used.
    pub used_expand: bool,
}

fn state(s: &Option<Status>) -> Option<State> {
    s.as_ref().and_then(|s| s.state.clone())
}

fn parse<T: serde::de::DeserializeOwned + Default>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_default()
}

fn processor_info(p: Processor) -> ProcessorInfo {
    ProcessorInfo {
        state: state(&p.status),
        id: p.id,
        socket: p.socket,
        processor_type: p.processor_type,
        architecture: p.processor_architecture,
        instruction_set: p.instruction_set,
        manufacturer: p.manufacturer,
        model: p.model,
        max_speed_mhz: p.max_speed_mhz,
        total_cores: p.total_cores,
        total_threads: p.total_threads,
    }
}

fn dimm_info(m: Memory) -> DimmInfo {
    DimmInfo {
        state: state(&m.status),
        id: m.id,
        device_locator: m.device_locator,
        capacity_mib: m.capacity_mib,
        memory_device_type: m.memory_device_type,
        manufacturer: m.manufacturer,
        part_number: m.part_number,
        serial_number: m.serial_number,
        operating_speed_mhz: m.operating_speed_mhz,
    }
}

fn nic_info(n: EthernetInterface) -> NicInfo {
    NicInfo {
        ipv4_addresses: n
            .ipv4_addresses
            .into_iter()
            .filter_map(|a| a.address)
            .collect(),
        id: n.id,
        name: n.name,
        mac_address: n.mac_address,
        permanent_mac_address: n.permanent_mac_address,
        link_status: n.link_status,
        speed_mbps: n.speed_mbps,
    }
}

fn drive_info(d: Drive) -> DriveInfo {
    DriveInfo {
        state: state(&d.status),
        id: d.id,
        name: d.name,
        manufacturer: d.manufacturer,
        model: d.model,
        serial_number: d.serial_number,
        capacity_bytes: d.capacity_bytes,
        media_type: d.media_type,
        protocol: d.protocol,
    }
}

fn volume_info(v: Volume) -> VolumeInfo {
    VolumeInfo {
        state: state(&v.status),
        id: v.id,
        name: v.name,
        capacity_bytes: v.capacity_bytes,
        raid_type: v.raid_type,
    }
}

fn controller_info(c: StorageController) -> StorageControllerInfo {
    StorageControllerInfo {
        name: c.name,
        manufacturer: c.manufacturer,
        model: c.model,
        firmware_version: c.firmware_version,
    }
}

/// Counts present CPU sockets (pure; exposed for tests).
pub(crate) fn cpu_count(processors: &[ProcessorInfo], summary_count: Option<u32>) -> u32 {
    if processors.is_empty() {
        return summary_count.unwrap_or(0);
    }
    processors
        .iter()
        .filter(|p| matches!(p.processor_type, Some(ProcessorType::Cpu) | None))
        .filter(|p| p.state != Some(State::Absent))
        .count() as u32
}

impl Client {
    /// Reads the full inventory of one system (`system` is its `@odata.id`).
    pub async fn inventory(&self, system: &str) -> Result<SystemInventory, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.inventory_ctx(&ctx, system)).await
    }

    async fn inventory_ctx(&self, ctx: &Ctx, system: &str) -> Result<SystemInventory, Error> {
        let root = self.service_root_ctx(ctx).await?;
        let levels = self.expand_levels(&root);
        let sys_value = self.system_expanded(ctx, system, levels).await?;
        let sys = ComputerSystem::deserialize(&sys_value).map_err(|e| {
            self.err(ErrorKind::Unexpected(format!(
                "{system}: not a ComputerSystem: {e}"
            )))
        })?;
        let one = levels.map(|_| 1);
        // Each collection is taken from the expanded System when it is there (its missing
        // members fetched), else read on its own with one level of `$expand`.
        let members = async |key: &str| -> Result<Vec<Value>, Error> {
            Ok(
                super::optional(self.resolve_nav(ctx, sys_value.get(key), one).await)?
                    .unwrap_or_default(),
            )
        };
        let processors = members("Processors");
        let memory = members("Memory");
        let nics = members("EthernetInterfaces");
        let storages = self.storage_inventory(ctx, &sys, sys_value.get("Storage"), levels);
        let manager = async {
            let link = match sys.manager_link() {
                Some(l) => Some(l.odata_id.clone()),
                // No ManagedBy link: the service's (first) manager is the BMC.
                None => match &root.managers {
                    Some(m) => super::optional(self.collection_links(ctx, &m.odata_id).await)?
                        .and_then(|l| l.into_iter().next()),
                    None => None,
                },
            };
            match link {
                Some(l) => super::optional(self.get_ctx::<Manager>(ctx, &l).await),
                None => Ok(None),
            }
        };
        let (processors, memory, nics, storages, manager) =
            futures::try_join!(processors, memory, nics, storages, manager)?;

        let vendor = self
            .vendor_ctx(ctx, Some(&sys))
            .await
            .map(|v| v.vendor)
            .unwrap_or(Vendor::Generic);
        let processors: Vec<ProcessorInfo> = processors
            .into_iter()
            .map(|v| processor_info(parse(v)))
            .collect();
        let dimms: Vec<DimmInfo> = memory.into_iter().map(|v| dimm_info(parse(v))).collect();
        let nics: Vec<NicInfo> = nics.into_iter().map(|v| nic_info(parse(v))).collect();
        let summary_count = sys.processor_summary.as_ref().and_then(|p| p.count);
        let total_memory_gib = sys
            .memory_summary
            .as_ref()
            .and_then(|m| m.total_system_memory_gib)
            .or_else(|| {
                let mib: u64 = dimms.iter().filter_map(|d| d.capacity_mib).sum();
                (mib > 0).then(|| mib as f64 / 1024.0)
            });
        let manager = manager.map(|m| ManagerInfo {
            odata_id: m.odata_id,
            uuid: m.uuid,
            manufacturer: m.manufacturer,
            model: m.model,
            firmware_version: m.firmware_version,
        });
        Ok(SystemInventory {
            odata_id: sys.odata_id.clone().unwrap_or_else(|| system.to_owned()),
            cpu_count: cpu_count(&processors, summary_count),
            state: state(&sys.status),
            health: sys.status.as_ref().and_then(|s| s.health.clone()),
            bmc_firmware_version: manager.as_ref().and_then(|m| m.firmware_version.clone()),
            id: sys.id,
            uuid: sys.uuid,
            manufacturer: sys.manufacturer,
            model: sys.model,
            serial_number: sys.serial_number,
            sku: sys.sku,
            part_number: sys.part_number,
            power_state: sys.power_state,
            indicator_led: sys.indicator_led,
            bios_version: sys.bios_version,
            manager,
            vendor,
            processors,
            total_memory_gib,
            dimms,
            storages,
            nics,
            requests: ctx.requests(),
            used_expand: levels.is_some(),
        })
    }

    /// The System once, with `$expand` of up to three levels where the BMC offers two or more (its
    /// collections and their members in the same answer: one request instead of five); a BMC that
    /// refuses the expansion is read plainly.
    async fn system_expanded(
        &self,
        ctx: &Ctx,
        system: &str,
        levels: Option<u32>,
    ) -> Result<Value, Error> {
        if let Some(l) = levels.filter(|l| *l >= 2) {
            match self
                .get_ctx::<Value>(ctx, &super::with_expand(system, l.min(3)))
                .await
            {
                Err(e) if matches!(e.status(), Some(400 | 405 | 412 | 501)) => {
                    tracing::debug!(system, error = %e, "$expand refused, reading the system plainly");
                }
                other => return other,
            }
        }
        self.get_ctx(ctx, system).await
    }

    async fn storage_inventory(
        &self,
        ctx: &Ctx,
        sys: &ComputerSystem,
        expanded: Option<&Value>,
        levels: Option<u32>,
    ) -> Result<Vec<StorageInfo>, Error> {
        let mut out = Vec::new();
        if let Some(link) = &sys.storage {
            // storage collection -> storage -> Drives/Volumes/Controllers -> their members
            let lvl = levels.map(|m| m.min(3));
            let listed = match expanded {
                Some(v) if v.get("Members").is_some() => self.resolve_nav(ctx, Some(v), lvl).await,
                _ => self.collection_values(ctx, &link.odata_id, lvl).await,
            };
            let storages = match listed {
                Ok(v) => v,
                Err(e) if e.status() == Some(404) => Vec::new(),
                Err(e) => return Err(e),
            };
            let n = self.inner.opts.max_in_flight.max(1);
            use futures::{StreamExt, TryStreamExt};
            out = futures::stream::iter(storages)
                .map(|v| self.one_storage(ctx, v, levels))
                .buffered(n)
                .try_collect()
                .await?;
        }
        if out.is_empty()
            && let Some(link) = &sys.simple_storage
        {
            let values = match self
                .collection_values(ctx, &link.odata_id, levels.map(|_| 1))
                .await
            {
                Ok(v) => v,
                Err(e) if e.status() == Some(404) => Vec::new(),
                Err(e) => return Err(e),
            };
            for v in values {
                let s: SimpleStorage = parse(v);
                out.push(StorageInfo {
                    id: s.id,
                    name: s.name,
                    source: StorageSource::SimpleStorage,
                    controllers: Vec::new(),
                    drives: s
                        .devices
                        .into_iter()
                        .map(|d| DriveInfo {
                            id: None,
                            state: state(&d.status),
                            name: d.name,
                            manufacturer: d.manufacturer,
                            model: d.model,
                            serial_number: None,
                            capacity_bytes: d.capacity_bytes,
                            media_type: None,
                            protocol: None,
                        })
                        .collect(),
                    volumes: Vec::new(),
                });
            }
        }
        Ok(out)
    }

    async fn one_storage(
        &self,
        ctx: &Ctx,
        v: Value,
        levels: Option<u32>,
    ) -> Result<StorageInfo, Error> {
        let drives = self.resolve_nav(ctx, v.get("Drives"), levels);
        // Volumes and controller collections are secondary: a BMC that fails them (sushy-emulator
        // answers 500 when none are configured) must not fail the whole inventory.
        let best_effort = |what: &'static str, r: Result<Vec<Value>, Error>| match r {
            Ok(v) => Ok(v),
            Err(e)
                if matches!(
                    e.class(),
                    ErrorClass::Busy | ErrorClass::BadResponse | ErrorClass::NotSupported
                ) =>
            {
                tracing::warn!(bmc = %self.inner.bmc, error = %e, "{what} unreadable, left out of the inventory");
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        };
        let volumes = async {
            best_effort(
                "volumes",
                self.resolve_nav(ctx, v.get("Volumes"), levels).await,
            )
        };
        let inline_controllers = v
            .get("StorageControllers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let controllers = async {
            if inline_controllers {
                Ok(Vec::new())
            } else {
                best_effort(
                    "storage controllers",
                    self.resolve_nav(ctx, v.get("Controllers"), levels).await,
                )
            }
        };
        let (drives, volumes, controllers) = futures::try_join!(drives, volumes, controllers)?;
        let s: Storage = parse(v.clone());
        let controllers = if inline_controllers {
            s.storage_controllers
                .into_iter()
                .map(controller_info)
                .collect()
        } else {
            controllers
                .into_iter()
                .map(|c| controller_info(parse(c)))
                .collect()
        };
        Ok(StorageInfo {
            id: s.id,
            name: s.name,
            source: StorageSource::Storage,
            controllers,
            drives: drives.into_iter().map(|d| drive_info(parse(d))).collect(),
            volumes: volumes.into_iter().map(|d| volume_info(parse(d))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: Option<ProcessorType>, s: Option<State>) -> ProcessorInfo {
        ProcessorInfo {
            id: None,
            socket: None,
            processor_type: t,
            architecture: None,
            instruction_set: None,
            manufacturer: None,
            model: None,
            max_speed_mhz: None,
            total_cores: None,
            total_threads: None,
            state: s,
        }
    }

    #[test]
    fn counts_present_cpus_only() {
        let list = [
            p(Some(ProcessorType::Cpu), Some(State::Enabled)),
            p(Some(ProcessorType::Cpu), Some(State::Absent)),
            p(Some(ProcessorType::Gpu), Some(State::Enabled)),
            p(None, None),
        ];
        assert_eq!(cpu_count(&list, Some(9)), 2);
        assert_eq!(cpu_count(&[], Some(2)), 2);
        assert_eq!(cpu_count(&[], None), 0);
    }
}
