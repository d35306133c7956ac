//! Processors and memory modules.

use serde::{Deserialize, Serialize};

use super::{Status, de, redfish_enum};

redfish_enum! {
    /// `ProcessorType`.
    ProcessorType {
        /// Central processing unit.
        Cpu = "CPU",
        /// Graphics processing unit.
        Gpu = "GPU",
        /// FPGA.
        Fpga = "FPGA",
        /// DSP.
        Dsp = "DSP",
        /// Accelerator.
        Accelerator = "Accelerator",
        /// A core of a processor.
        Core = "Core",
        /// A thread.
        Thread = "Thread",
        /// OEM-defined.
        Oem = "OEM",
    }
}

/// A Processor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Processor {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Socket label.
    #[serde(rename = "Socket", deserialize_with = "de::opt_string")]
    pub socket: Option<String>,
    /// CPU, GPU, FPGA, ...
    #[serde(rename = "ProcessorType", deserialize_with = "de::opt")]
    pub processor_type: Option<ProcessorType>,
    /// Architecture (x86, ARM, ...).
    #[serde(rename = "ProcessorArchitecture", deserialize_with = "de::opt_string")]
    pub processor_architecture: Option<String>,
    /// Instruction set (x86-64, ARM-A64, ...).
    #[serde(rename = "InstructionSet", deserialize_with = "de::opt_string")]
    pub instruction_set: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(rename = "Model", deserialize_with = "de::opt_string")]
    pub model: Option<String>,
    /// Maximum speed in MHz.
    #[serde(rename = "MaxSpeedMHz", deserialize_with = "de::opt_u32")]
    pub max_speed_mhz: Option<u32>,
    /// Operating speed in MHz.
    #[serde(rename = "OperatingSpeedMHz", deserialize_with = "de::opt_u32")]
    pub operating_speed_mhz: Option<u32>,
    /// Cores.
    #[serde(rename = "TotalCores", deserialize_with = "de::opt_u32")]
    pub total_cores: Option<u32>,
    /// Enabled cores.
    #[serde(rename = "TotalEnabledCores", deserialize_with = "de::opt_u32")]
    pub total_enabled_cores: Option<u32>,
    /// Threads.
    #[serde(rename = "TotalThreads", deserialize_with = "de::opt_u32")]
    pub total_threads: Option<u32>,
    /// Serial number.
    #[serde(rename = "SerialNumber", deserialize_with = "de::opt_string")]
    pub serial_number: Option<String>,
    /// Part number.
    #[serde(rename = "PartNumber", deserialize_with = "de::opt_string")]
    pub part_number: Option<String>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}

/// A Memory module (DIMM).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(rename = "Name", deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Capacity in MiB.
    #[serde(rename = "CapacityMiB", deserialize_with = "de::opt_u64")]
    pub capacity_mib: Option<u64>,
    /// DDR4, DDR5, ...
    #[serde(rename = "MemoryDeviceType", deserialize_with = "de::opt_string")]
    pub memory_device_type: Option<String>,
    /// DRAM, NVDIMM_N, ...
    #[serde(rename = "MemoryType", deserialize_with = "de::opt_string")]
    pub memory_type: Option<String>,
    /// RDIMM, LRDIMM, ...
    #[serde(rename = "BaseModuleType", deserialize_with = "de::opt_string")]
    pub base_module_type: Option<String>,
    /// Manufacturer.
    #[serde(rename = "Manufacturer", deserialize_with = "de::opt_string")]
    pub manufacturer: Option<String>,
    /// Part number.
    #[serde(rename = "PartNumber", deserialize_with = "de::opt_string")]
    pub part_number: Option<String>,
    /// Serial number.
    #[serde(rename = "SerialNumber", deserialize_with = "de::opt_string")]
    pub serial_number: Option<String>,
    /// Operating speed (the schema spells it `OperatingSpeedMhz`).
    #[serde(rename = "OperatingSpeedMhz", deserialize_with = "de::opt_u32")]
    pub operating_speed_mhz: Option<u32>,
    /// Allowed speeds.
    #[serde(rename = "AllowedSpeedsMHz", deserialize_with = "de::vec")]
    pub allowed_speeds_mhz: Vec<u32>,
    /// Slot label.
    #[serde(rename = "DeviceLocator", deserialize_with = "de::opt_string")]
    pub device_locator: Option<String>,
    /// Ranks.
    #[serde(rename = "RankCount", deserialize_with = "de::opt_u32")]
    pub rank_count: Option<u32>,
    /// Data width in bits.
    #[serde(rename = "DataWidthBits", deserialize_with = "de::opt_u32")]
    pub data_width_bits: Option<u32>,
    /// Bus width in bits.
    #[serde(rename = "BusWidthBits", deserialize_with = "de::opt_u32")]
    pub bus_width_bits: Option<u32>,
    /// Error correction.
    #[serde(rename = "ErrorCorrection", deserialize_with = "de::opt_string")]
    pub error_correction: Option<String>,
    /// Status.
    #[serde(rename = "Status", deserialize_with = "de::opt")]
    pub status: Option<Status>,
}
