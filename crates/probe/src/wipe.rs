//! Wiping disks for cleaning: what the agent does when it is booted with `--wipe`.
//!
//! `Metadata` zeroes the first and the last MiB of every disk: partition tables (MBR, the
//! primary and the backup GPT), and the signatures filesystems, LVM, RAID and Ceph keep at
//! either end, so the next tenant's installer finds a blank disk. `Full` overwrites every
//! byte with zeros (for drives whose BMC offers no SecureErase). Each disk is synced before it
//! counts as wiped; a disk that cannot be opened or written is reported with its error, and
//! the round fails rather than pass a disk it could not clean.
//!
//! Disks are the entries of `/sys/block` (below `--root`), without virtual devices (loop,
//! RAM, device-mapper, MD, NBD), optical drives and removable media (the BMC's virtual media
//! and USB sticks are not the tenant's disks); each is written through `/dev/<name>`.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How thoroughly the disks are wiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WipeMode {
    /// Partition tables and signatures at either end of each disk.
    Metadata,
    /// Every byte.
    Full,
}

impl WipeMode {
    /// The flag and payload spelling (as the Server's cleaning modes).
    pub fn as_str(self) -> &'static str {
        match self {
            WipeMode::Metadata => "Metadata",
            WipeMode::Full => "Full",
        }
    }
}

impl std::str::FromStr for WipeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "metadata" => Ok(WipeMode::Metadata),
            "full" => Ok(WipeMode::Full),
            _ => Err(format!("unknown wipe mode {s:?} (Metadata or Full)")),
        }
    }
}

/// Bytes zeroed at each end of a disk in `Metadata` mode.
pub const METADATA_SPAN: u64 = 1 << 20;
const CHUNK: usize = 4 << 20;

/// One disk's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WipedDisk {
    /// Kernel name (`sda`, `nvme0n1`).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Bytes zeroed and synced.
    pub bytes_written: u64,
    /// Why the disk could not be wiped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /cleaning`: which system wiped what, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleaningPayload {
    /// The system's UUID.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// The mode the disks were wiped in.
    pub mode: WipeMode,
    /// Every disk found, wiped or not.
    pub disks: Vec<WipedDisk>,
}

impl CleaningPayload {
    /// Whether the report proves the disks clean: at least one disk, each wiped (in
    /// `mode`, so a metadata wipe cannot pass for a full one); else why not.
    pub fn verdict(&self, mode: WipeMode) -> Result<(), String> {
        if self.mode != mode {
            return Err(format!(
                "the agent wiped in {} mode, {} was asked for",
                self.mode.as_str(),
                mode.as_str()
            ));
        }
        if self.disks.is_empty() {
            return Err("the agent found no disks; nothing proves the disks are clean".into());
        }
        let failed: Vec<String> = self
            .disks
            .iter()
            .filter_map(|d| d.error.as_ref().map(|e| format!("{}: {e}", d.name)))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("the agent could not wipe {}", failed.join("; ")))
        }
    }
}

fn read_num(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The disks below `root`: `(name, size in bytes, read-only)`, sorted by name.
pub fn disks(root: &Path) -> std::io::Result<Vec<(String, u64, bool)>> {
    const VIRTUAL: [&str; 9] = ["loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd", "zd"];
    let dir = root.join("sys/block");
    let mut out = Vec::new();
    for e in fs::read_dir(&dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if VIRTUAL.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let d = dir.join(&name);
        if read_num(&d.join("removable")) == Some(1) {
            continue;
        }
        // `size` counts 512-byte sectors regardless of the device's block size.
        let size = read_num(&d.join("size")).unwrap_or(0) * 512;
        out.push((name, size, read_num(&d.join("ro")) == Some(1)));
    }
    out.sort();
    Ok(out)
}

/// The byte ranges `mode` zeroes on a disk of `size` bytes.
pub fn spans(size: u64, mode: WipeMode) -> Vec<(u64, u64)> {
    match mode {
        WipeMode::Metadata if size > 2 * METADATA_SPAN => {
            vec![(0, METADATA_SPAN), (size - METADATA_SPAN, METADATA_SPAN)]
        }
        _ if size == 0 => Vec::new(),
        _ => vec![(0, size)],
    }
}

/// Zeroes `spans` of the device at `path` and syncs it; the bytes written.
pub fn wipe_device(path: &Path, spans: &[(u64, u64)]) -> std::io::Result<u64> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let zeros = vec![0u8; CHUNK];
    let mut written = 0;
    for &(start, len) in spans {
        f.seek(SeekFrom::Start(start))?;
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
            written += n as u64;
        }
    }
    f.sync_all()?;
    Ok(written)
}

/// Wipes every disk below `root` in `mode`; one result per disk.
pub fn wipe(root: &Path, mode: WipeMode) -> std::io::Result<Vec<WipedDisk>> {
    Ok(disks(root)?
        .into_iter()
        .map(|(name, size, read_only)| {
            let result = if read_only {
                Err("the device is read-only".to_string())
            } else if size == 0 {
                Err("the device reports size 0".to_string())
            } else {
                wipe_device(&root.join("dev").join(&name), &spans(size, mode))
                    .map_err(|e| e.to_string())
            };
            match result {
                Ok(bytes_written) => WipedDisk {
                    name,
                    size_bytes: size,
                    bytes_written,
                    error: None,
                },
                Err(e) => WipedDisk {
                    name,
                    size_bytes: size,
                    bytes_written: 0,
                    error: Some(e),
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A root with `disks` of (name, MiB, removable, read-only) filled with 0xAA.
    fn tree(disks: &[(&str, u64, bool, bool)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("dev")).unwrap();
        for &(name, mib, removable, ro) in disks {
            let d = t.path().join("sys/block").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("size"), format!("{}\n", mib * MIB / 512)).unwrap();
            fs::write(d.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
            fs::write(d.join("ro"), if ro { "1\n" } else { "0\n" }).unwrap();
            fs::write(
                t.path().join("dev").join(name),
                vec![0xAA; (mib * MIB) as usize],
            )
            .unwrap();
        }
        t
    }

    fn content(t: &tempfile::TempDir, name: &str) -> Vec<u8> {
        fs::read(t.path().join("dev").join(name)).unwrap()
    }

    #[test]
    fn metadata_zeroes_both_ends_and_keeps_the_middle() {
        let t = tree(&[("sda", 8, false, false), ("nvme0n1", 1, false, false)]);
        let out = wipe(t.path(), WipeMode::Metadata).unwrap();
        assert_eq!(
            out.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["nvme0n1", "sda"]
        );
        assert!(out.iter().all(|d| d.error.is_none()), "{out:?}");
        let sda = content(&t, "sda");
        assert!(sda[..MIB as usize].iter().all(|b| *b == 0));
        assert!(sda[(7 * MIB) as usize..].iter().all(|b| *b == 0));
        assert!(
            sda[MIB as usize..(7 * MIB) as usize]
                .iter()
                .all(|b| *b == 0xAA)
        );
        assert_eq!(out[1].bytes_written, 2 * MIB);
        // A disk smaller than both spans is zeroed whole.
        assert!(content(&t, "nvme0n1").iter().all(|b| *b == 0));
        let payload = CleaningPayload {
            system_uuid: "u".into(),
            mode: WipeMode::Metadata,
            disks: out,
        };
        assert_eq!(payload.verdict(WipeMode::Metadata), Ok(()));
        assert!(
            payload.verdict(WipeMode::Full).is_err(),
            "a metadata wipe is not a full one"
        );
    }

    #[test]
    fn full_zeroes_every_byte() {
        let t = tree(&[("sdb", 6, false, false)]);
        let out = wipe(t.path(), WipeMode::Full).unwrap();
        assert_eq!(out[0].bytes_written, 6 * MIB);
        assert!(content(&t, "sdb").iter().all(|b| *b == 0));
    }

    #[test]
    fn virtual_and_removable_devices_are_left_alone_and_a_failed_disk_fails_the_round() {
        let t = tree(&[
            ("loop0", 3, false, false),
            ("sr0", 3, false, false),
            ("sdc", 3, true, false),
            ("sdd", 3, false, true),
            ("sde", 3, false, false),
        ]);
        fs::remove_file(t.path().join("dev/sde")).unwrap();
        let out = wipe(t.path(), WipeMode::Metadata).unwrap();
        let names: Vec<_> = out.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdd", "sde"]);
        assert!(content(&t, "loop0").iter().all(|b| *b == 0xAA));
        assert!(content(&t, "sdc").iter().all(|b| *b == 0xAA));
        assert!(out.iter().all(|d| d.error.is_some()), "{out:?}");
        let payload = CleaningPayload {
            system_uuid: "u".into(),
            mode: WipeMode::Metadata,
            disks: out,
        };
        let err = payload.verdict(WipeMode::Metadata).unwrap_err();
        assert!(err.contains("sdd: the device is read-only"), "{err}");
        let none = CleaningPayload {
            disks: vec![],
            ..payload
        };
        assert!(
            none.verdict(WipeMode::Metadata)
                .unwrap_err()
                .contains("no disks")
        );
    }

    #[test]
    fn modes_parse_in_any_case() {
        assert_eq!("metadata".parse(), Ok(WipeMode::Metadata));
        assert_eq!("Full".parse(), Ok(WipeMode::Full));
        assert!("Disabled".parse::<WipeMode>().is_err());
    }
}
