//! Memory modules from the raw SMBIOS table (`/sys/firmware/dmi/tables/DMI`).
//!
//! Only structure type 17 (Memory Device) is decoded; empty slots (size 0) are skipped as
//! upstream does. The layout follows DMTF DSP0134: a 4-byte header (type, length, handle), the
//! formatted area, then NUL-terminated strings ending with a double NUL.

use crate::report::MemoryDevice;

/// Decodes every populated Memory Device (type 17) structure of an SMBIOS table.
pub fn memory_devices(table: &[u8]) -> Vec<MemoryDevice> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= table.len() {
        let typ = table[pos];
        let len = table[pos + 1] as usize;
        if len < 4 || pos + len > table.len() {
            break;
        }
        let formatted = &table[pos..pos + len];
        // Strings follow the formatted area and end with two NULs.
        let mut end = pos + len;
        while end + 1 < table.len() && !(table[end] == 0 && table[end + 1] == 0) {
            end += 1;
        }
        let strings: Vec<String> = table[pos + len..end.min(table.len())]
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).trim().to_string())
            .collect();
        if typ == 17
            && let Some(dev) = memory_device(formatted, &strings)
        {
            out.push(dev);
        }
        if typ == 127 {
            break;
        }
        pos = end + 2;
    }
    out
}

fn memory_device(f: &[u8], strings: &[String]) -> Option<MemoryDevice> {
    let byte = |o: usize| f.get(o).copied();
    let word = |o: usize| Some(u16::from_le_bytes([*f.get(o)?, *f.get(o + 1)?]));
    let dword = |o: usize| {
        Some(u32::from_le_bytes([
            *f.get(o)?,
            *f.get(o + 1)?,
            *f.get(o + 2)?,
            *f.get(o + 3)?,
        ]))
    };
    let string = |o: usize| match byte(o) {
        Some(i) if i > 0 => strings.get(i as usize - 1).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let size = word(0x0C)?;
    let bytes: i64 = match size {
        0 | 0xFFFF => return None,
        0x7FFF => i64::from(dword(0x1C)? & 0x7FFF_FFFF) * 1024 * 1024,
        s if s & 0x8000 != 0 => i64::from(s & 0x7FFF) * 1024,
        s => i64::from(s) * 1024 * 1024,
    };
    let speed = |o: usize| match word(o) {
        Some(0) | None => String::new(),
        Some(s) => format!("{s} MT/s"),
    };
    let volts = |o: usize| match word(o) {
        Some(0) | None => String::new(),
        Some(mv) => format!("{} V", f64::from(mv) / 1000.0),
    };
    Some(MemoryDevice {
        size_bytes: bytes,
        device_set: match byte(0x0F) {
            Some(0) | None => String::new(),
            Some(0xFF) => "Unknown".to_string(),
            Some(s) => s.to_string(),
        },
        device_locator: string(0x10),
        bank_locator: string(0x11),
        memory_type: memory_type(byte(0x12).unwrap_or(2)).to_string(),
        speed: speed(0x15),
        vendor: string(0x17),
        serial_number: string(0x18),
        asset_tag: string(0x19),
        part_number: string(0x1A),
        configured_memory_speed: speed(0x20),
        minimum_voltage: volts(0x22),
        maximum_voltage: volts(0x24),
        configured_voltage: volts(0x26),
    })
}

fn memory_type(code: u8) -> &'static str {
    match code {
        0x01 => "Other",
        0x03 => "DRAM",
        0x0F => "SDRAM",
        0x12 => "DDR",
        0x13 => "DDR2",
        0x18 => "DDR3",
        0x1A => "DDR4",
        0x1B => "LPDDR",
        0x1C => "LPDDR2",
        0x1D => "LPDDR3",
        0x1E => "LPDDR4",
        0x1F => "Logical non-volatile device",
        0x20 => "HBM",
        0x21 => "HBM2",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        0x24 => "HBM3",
        _ => "Unknown",
    }
}

/// Encodes one type-17 structure; used to build test tables (and the captured fixture).
#[doc(hidden)]
pub fn encode_memory_device(
    handle: u16,
    dev: &MemoryDevice,
    type_code: u8,
    mts: u16,
    millivolts: u16,
) -> Vec<u8> {
    let mut f = vec![0u8; 0x28];
    f[0] = 17;
    f[1] = 0x28;
    f[2..4].copy_from_slice(&handle.to_le_bytes());
    let mb = (dev.size_bytes / (1024 * 1024)) as u32;
    if mb >= 0x7FFF {
        f[0x0C..0x0E].copy_from_slice(&0x7FFFu16.to_le_bytes());
        f[0x1C..0x20].copy_from_slice(&mb.to_le_bytes());
    } else {
        f[0x0C..0x0E].copy_from_slice(&(mb as u16).to_le_bytes());
    }
    f[0x0E] = 0x09; // DIMM
    f[0x12] = type_code;
    f[0x15..0x17].copy_from_slice(&mts.to_le_bytes());
    f[0x20..0x22].copy_from_slice(&mts.to_le_bytes());
    for o in [0x22, 0x24, 0x26] {
        f[o..o + 2].copy_from_slice(&millivolts.to_le_bytes());
    }
    let mut strings: Vec<u8> = Vec::new();
    let mut idx = 0u8;
    for (offset, s) in [
        (0x10, &dev.device_locator),
        (0x11, &dev.bank_locator),
        (0x17, &dev.vendor),
        (0x18, &dev.serial_number),
        (0x19, &dev.asset_tag),
        (0x1A, &dev.part_number),
    ] {
        if !s.is_empty() {
            idx += 1;
            f[offset] = idx;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
        }
    }
    if strings.is_empty() {
        strings.push(0);
    }
    strings.push(0);
    f.extend(strings);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dimm(slot: &str, gib: i64) -> MemoryDevice {
        MemoryDevice {
            size_bytes: gib << 30,
            device_locator: slot.into(),
            bank_locator: "BANK 0".into(),
            vendor: "Samsung".into(),
            serial_number: "0123ABCD".into(),
            part_number: "M393A4K40DB3-CWE".into(),
            ..MemoryDevice::default()
        }
    }

    #[test]
    fn roundtrip_table() {
        let mut table = Vec::new();
        // A type-0 BIOS structure with a string, to prove other structures are skipped.
        table.extend_from_slice(&[0, 4, 0, 0]);
        table.extend_from_slice(b"Dell Inc.\0\0");
        table.extend(encode_memory_device(
            0x1100,
            &dimm("A1", 32),
            0x1A,
            3200,
            1200,
        ));
        let mut empty = dimm("A2", 0);
        empty.vendor.clear();
        table.extend(encode_memory_device(0x1101, &empty, 0x02, 0, 0));
        table.extend(encode_memory_device(
            0x1102,
            &dimm("B1", 64),
            0x22,
            4800,
            1100,
        ));
        table.extend_from_slice(&[127, 4, 0xff, 0xff, 0, 0]);
        let devs = memory_devices(&table);
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].device_locator, "A1");
        assert_eq!(devs[0].size_bytes, 32 << 30);
        assert_eq!(devs[0].memory_type, "DDR4");
        assert_eq!(devs[0].speed, "3200 MT/s");
        assert_eq!(devs[0].configured_voltage, "1.2 V");
        assert_eq!(devs[0].part_number, "M393A4K40DB3-CWE");
        assert_eq!(devs[1].memory_type, "DDR5");
        assert_eq!(devs[1].size_bytes, 64 << 30);
        assert!(memory_devices(&[17, 2]).is_empty());
    }
}
