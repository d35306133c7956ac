//! The probe's boot image (`metal-probe-boot`): a network-bootable Linux kernel and initramfs
//! that run the in-band agent, packaged as an OCI artifact whose two layers carry the media
//! types provisioning resolves (`application/vnd.ironcore.image.kernel` and
//! `application/vnd.ironcore.image.initramfs`, see crates/provisioning/src/oci.rs), so a
//! ServerBootConfiguration (discovery's `--probe-os-image`) or a ServerClaim can name it.
//!
//! Nothing is compiled here but the static `metal-probe`: the kernel is Debian's
//! ([`KERNEL_PACKAGE`] at [`KERNEL_VERSION`]) and the userland one static busybox
//! ([`BUSYBOX_PACKAGE`] at [`BUSYBOX_VERSION`]), both fetched with `apt-get download` into the
//! cache (`$METAL_CACHE` or `~/.cache/metal`, `deb-<package>-<version>/`) and unpacked with
//! `dpkg-deb -x` (never installed). The initramfs is a gzip'd newc cpio written by
//! [`cpio_newc`] (sorted, mtime 0, owner root, inode numbers in order: the same inputs give the
//! same bytes) holding busybox, the NIC modules QEMU's virtio-net needs
//! ([`NIC_MODULES`] and what their `depends=` pull in, in load order), `metal-probe` at
//! `/usr/local/bin/metal-probe` and the `/init` of [`init_script`].
//!
//! What `/init` takes from where, following the conventions discovery and provisioning already
//! use (crates/probe/src/ignition.rs, crates/provisioning/src/artifacts.rs):
//!
//! | setting | source |
//! |---|---|
//! | registry URL | kernel command line `metal.registry=`, else the Ignition's `metal-probe` unit (`ExecStart ... --registry-url`) |
//! | server UUID | kernel command line `metal.server-uuid=`, else the unit's `--server-uuid`, else metal-probe reads DMI |
//! | bearer token | the Ignition config at `ignition.config.url=` (the boot server appends it): the `data:,` file `/etc/metal/probe-token` |
//! | registry CA bundle | the same Ignition: the `data:;base64,` file `/etc/metal/registry-ca.pem` |
//! | cleaning (`--wipe MODE`) | the same Ignition: the unit's `--wipe` |
//!
//! Discovery writes `metal.registry=` and `metal.server-uuid=` only in the plain boot form
//! (`--probe-kernel-url`/`--probe-initrd-url`, `bootArtifacts.cmdline`); when the boot image is
//! named as `--probe-os-image`, provisioning boots it with its site-wide `--oci-kernel-args`
//! instead, so both then come from the Ignition's unit. The token never comes from the kernel
//! command line (discovery never puts it there: the command line is in the boot script, which
//! is fetched without the probe token), so a boot without `ignition.config.url` stops with a
//! message. The Ignition is fetched with busybox `wget`,
//! so it must be plain `http://` or an `https://` whose certificate busybox does not check.
//! Only the subset of Ignition that the discovery and cleaning configs use is read (those two
//! files and the unit's flags); other Ignition content is ignored.

use anyhow::{Context as _, bail};
// The paths discovery's ignition writes the token and CA bundle to (one definition for both sides).
use metal_probe::ignition::{CA_PATH, TOKEN_PATH};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The image's name (OCI layout `<out>/metal-probe-boot`, pushed as `<registry>/metal-probe-boot`).
pub const NAME: &str = "metal-probe-boot";
/// Debian's kernel package (bookworm-security), the one `linux-image-amd64` 6.1.192-3 depends on.
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-57-amd64";
/// Its pinned version.
pub const KERNEL_VERSION: &str = "6.1.192-3";
/// Its `uname -r` (the directory below `/lib/modules`, the name of `/boot/vmlinuz-*`).
pub const KERNEL_RELEASE: &str = "6.1.0-57-amd64";
/// Debian's statically linked busybox: the shell, `udhcpc`, `wget`, `insmod`, `mount`, `sed`.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// Its pinned version.
pub const BUSYBOX_VERSION: &str = "1:1.35.0-4+deb12u1+b1";
/// The modules asked for (virtio PCI transport and virtio-net; Debian builds both as modules);
/// their dependencies are added from the modules' own `depends=`.
pub const NIC_MODULES: &[&str] = &["virtio_pci", "virtio_net"];
/// Kernel layer media type (provisioning's `KERNEL_TYPES`).
pub const KERNEL_MEDIA_TYPE: &str = "application/vnd.ironcore.image.kernel";
/// Initramfs layer media type (provisioning's `INITRD_TYPES`).
pub const INITRD_MEDIA_TYPE: &str = "application/vnd.ironcore.image.initramfs";
/// Where `metal-probe` sits, as in the `metal-probe` image and the ignition's unit.
pub const PROBE_PATH: &str = "/usr/local/bin/metal-probe";

/// Builds the boot image around the static `probe` binary into `<out>/metal-probe-boot` and
/// returns that layout.
pub fn build(probe: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let kernel_pkg = debian_package(KERNEL_PACKAGE, KERNEL_VERSION)?;
    let busybox_pkg = debian_package(BUSYBOX_PACKAGE, BUSYBOX_VERSION)?;
    let kernel = std::fs::read(kernel_pkg.join(format!("boot/vmlinuz-{KERNEL_RELEASE}")))
        .context("reading the kernel of the Debian package")?;
    let module_dir = kernel_pkg.join(format!("lib/modules/{KERNEL_RELEASE}/kernel"));
    let mut found = BTreeMap::new();
    find_modules(&module_dir, &mut found)?;
    let mut depends = BTreeMap::new();
    for (name, path) in &found {
        let ko = std::fs::read(path)?;
        let deps = modinfo_depends(&ko).with_context(|| format!("{}: no .modinfo", name))?;
        depends.insert(name.clone(), deps);
    }
    let modules = load_order(&depends, NIC_MODULES)?;
    let mut files = vec![
        File::exec(
            "bin/busybox",
            std::fs::read(busybox_pkg.join("bin/busybox"))?,
        ),
        File::symlink("bin/sh", "busybox"),
        File::char_device("dev/console", 0o600, 5, 1),
        File::exec("init", init_script(&modules).into_bytes()),
        File::exec(
            "etc/udhcpc/default.script",
            UDHCPC_SCRIPT.as_bytes().to_vec(),
        ),
        File::exec(&PROBE_PATH[1..], std::fs::read(probe)?),
    ];
    for dir in ["proc", "sys", "run", "tmp", "etc/metal"] {
        files.push(File::dir(dir));
    }
    for m in &modules {
        files.push(File::regular(
            &module_path(m)[1..],
            0o644,
            std::fs::read(&found[m])?,
        ));
    }
    let initrd = gzip(&cpio_newc(&files))?;
    let layout = out.join(NAME);
    let _ = std::fs::remove_dir_all(&layout);
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let oci = oci_layout(&kernel, &initrd, crate::images::VERSION);
    for (digest, bytes) in [
        (&oci.kernel, &kernel[..]),
        (&oci.initrd, &initrd[..]),
        (&oci.config.0, &oci.config.1[..]),
        (&oci.manifest.0, &oci.manifest.1[..]),
    ] {
        std::fs::write(blobs.join(hex_of(digest)), bytes)?;
    }
    std::fs::write(layout.join("index.json"), &oci.index)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    eprintln!(
        "{NAME}: {KERNEL_PACKAGE}={KERNEL_VERSION}, {BUSYBOX_PACKAGE}={BUSYBOX_VERSION}, \
         modules {}",
        modules.join(" ")
    );
    Ok(layout)
}

/// The kernel and initramfs blobs of a boot image layout, picked by media type from its one
/// manifest as provisioning picks them from a registry (what the boot test boots).
#[cfg(test)]
pub fn layers(layout: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let json = |p: PathBuf| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(
            &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
        )?)
    };
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(hex_of(d.as_str().unwrap_or("")))
    };
    let index = json(layout.join("index.json"))?;
    let manifest = json(blob(&index["manifests"][0]["digest"]))?;
    let find = |media: &str| {
        manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["mediaType"] == media)
            .map(|l| blob(&l["digest"]))
            .with_context(|| format!("no {media} layer in {}", layout.display()))
    };
    Ok((find(KERNEL_MEDIA_TYPE)?, find(INITRD_MEDIA_TYPE)?))
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// Where `/init` finds module `name`.
pub fn module_path(name: &str) -> String {
    format!("/lib/modules/{KERNEL_RELEASE}/{name}.ko")
}

/// The unpacked Debian package `name` at `version`, downloaded and extracted on first use.
fn debian_package(name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let cache = crate::images::cache_dir();
    let dir = cache.join(format!("deb-{name}-{}", version.replace(':', "_")));
    if dir.is_dir() {
        return Ok(dir);
    }
    // Downloaded and unpacked beside its place and renamed: an interrupted run leaves nothing.
    let staging = cache.join(format!("deb-{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join("root"))?;
    eprintln!(
        "==> apt-get download {name}={version} into {}",
        dir.display()
    );
    let status = Command::new("apt-get")
        .args(["download", "-q", &format!("{name}={version}")])
        .current_dir(&staging)
        .status()
        .context("running apt-get download (Debian's apt is needed for the probe boot image)")?;
    if !status.success() {
        bail!(
            "apt-get download {name}={version} failed ({status}): run `apt-get update`; if the \
             version left the archive, pin a newer one in xtask/src/bootimage.rs"
        );
    }
    let deb = std::fs::read_dir(&staging)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download wrote no .deb")?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(staging.join("root"))
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    if std::fs::rename(staging.join("root"), &dir).is_err() && !dir.is_dir() {
        bail!("could not move the unpacked {name} to {}", dir.display());
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(dir)
}

/// Every `*.ko` below `dir` by module name (file name without `.ko`).
fn find_modules(dir: &Path, found: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        if path.is_dir() {
            find_modules(&path, found)?;
        } else if let Some(m) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            found.insert(m.to_string(), path.clone());
        }
    }
    Ok(())
}

/// Pipes `data` through `gzip -n -9` (no name, no timestamp: the output depends on the input
/// only; no compression crate is in the workspace).
fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("gzip")
        .args(["-n", "-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer"))??;
    if !out.status.success() {
        bail!("gzip failed ({})", out.status);
    }
    Ok(out.stdout)
}

/// A module's dependencies, from the `depends=` string of its `.modinfo` section (what
/// `modinfo -F depends` prints; the kernel package ships no modules.dep, depmod writes that at
/// install). `None` when the file has no such string.
pub fn modinfo_depends(ko: &[u8]) -> Option<Vec<String>> {
    const KEY: &[u8] = b"\0depends=";
    let at = ko.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = ko[at..].iter().position(|&b| b == 0)? + at;
    let list = std::str::from_utf8(&ko[at..end]).ok()?;
    Some(
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// `roots` and everything they depend on, each after its dependencies (the order `insmod`
/// needs), each once.
pub fn load_order(
    depends: &BTreeMap<String, Vec<String>>,
    roots: &[&str],
) -> anyhow::Result<Vec<String>> {
    fn visit(
        depends: &BTreeMap<String, Vec<String>>,
        name: &str,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        if order.iter().any(|o| o == name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            bail!("module dependency cycle: {} -> {name}", path.join(" -> "));
        }
        let deps = depends
            .get(name)
            .with_context(|| format!("module {name} is not in the kernel package"))?;
        path.push(name.to_string());
        for d in deps {
            visit(depends, d, path, order)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for r in roots {
        visit(depends, r, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// One initramfs member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path without the leading `/`.
    pub path: String,
    /// `st_mode`: file type bits and permissions.
    pub mode: u32,
    /// Contents (a symlink's target).
    pub data: Vec<u8>,
    /// Device number of a device node (major, minor).
    pub rdev: (u32, u32),
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl File {
    /// A regular file.
    pub fn regular(path: &str, perm: u32, data: Vec<u8>) -> Self {
        File {
            path: path.to_string(),
            mode: S_IFREG | perm,
            data,
            rdev: (0, 0),
        }
    }
    /// An executable (0755).
    pub fn exec(path: &str, data: Vec<u8>) -> Self {
        Self::regular(path, 0o755, data)
    }
    /// A directory (0755).
    pub fn dir(path: &str) -> Self {
        File {
            path: path.to_string(),
            mode: S_IFDIR | 0o755,
            data: Vec::new(),
            rdev: (0, 0),
        }
    }
    /// A symlink to `target`.
    pub fn symlink(path: &str, target: &str) -> Self {
        File {
            path: path.to_string(),
            mode: S_IFLNK | 0o777,
            data: target.as_bytes().to_vec(),
            rdev: (0, 0),
        }
    }
    /// A character device node (the kernel opens `/dev/console` before `/init` mounts devtmpfs).
    pub fn char_device(path: &str, perm: u32, major: u32, minor: u32) -> Self {
        File {
            path: path.to_string(),
            mode: S_IFCHR | perm,
            data: Vec::new(),
            rdev: (major, minor),
        }
    }
}

/// The newc ("070701") cpio archive of `files`, as the kernel unpacks an initramfs: every
/// missing parent directory added, members sorted by path (a parent before its children),
/// inode numbers 1.. in that order, owner root, mtime 0, then the `TRAILER!!!` member. Names
/// and data are padded to 4 bytes; the archive is not padded further (gzip follows).
pub fn cpio_newc(files: &[File]) -> Vec<u8> {
    let mut all: BTreeMap<String, File> = BTreeMap::new();
    for f in files {
        let mut parent = Path::new(&f.path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let p = p.to_string_lossy().into_owned();
            all.entry(p.clone()).or_insert_with(|| File::dir(&p));
            parent = Path::new(&f.path[..p.len()]).parent();
        }
        all.insert(f.path.clone(), f.clone());
    }
    let mut out = Vec::new();
    for (ino, f) in all.values().enumerate() {
        let nlink = if f.mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        cpio_member(&mut out, ino as u32 + 1, f, nlink);
    }
    cpio_member(
        &mut out,
        0,
        &File {
            path: "TRAILER!!!".into(),
            mode: 0,
            data: Vec::new(),
            rdev: (0, 0),
        },
        1,
    );
    out
}

fn cpio_member(out: &mut Vec<u8>, ino: u32, f: &File, nlink: u32) {
    let fields = [
        ino,
        f.mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        f.data.len() as u32,
        0, // devmajor
        0, // devminor
        f.rdev.0,
        f.rdev.1,
        f.path.len() as u32 + 1, // namesize, with the NUL
        0,                       // check (newc: unused)
    ];
    out.extend_from_slice(b"070701");
    for v in fields {
        out.extend_from_slice(format!("{v:08X}").as_bytes());
    }
    out.extend_from_slice(f.path.as_bytes());
    out.push(0);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out.extend_from_slice(&f.data);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// udhcpc's event script: on a lease, the address, the default route and the resolvers.
pub const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# udhcpc calls this with the event as $1 and the lease in the environment.
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    echo "metal-probe-boot: $interface $ip/${mask:-24} via ${router:-none}"
    ;;
esac
exit 0
"#;

/// Shell functions reading what `/init` needs: `arg NAME` from `$cmdline` (the kernel command
/// line), and from an Ignition config file (one line of JSON, as discovery writes it):
/// `ignition_token`, `ignition_ca` (base64) and `ignition_flag NAME` (the value of `--NAME` in
/// the `metal-probe` unit's `ExecStart`). Kept apart from the rest of
/// `/init` so a host test runs them against the Ignition discovery builds.
pub const INIT_FUNCTIONS: &str = r#"arg() {
  for a in $cmdline; do
    case "$a" in "$1="*) echo "${a#*=}"; return 0 ;; esac
  done
  return 1
}
ignition_token() { sed -n 's/.*"source":"data:,\([A-Za-z0-9_-]*\)".*/\1/p' "$1"; }
ignition_ca() { sed -n 's/.*"source":"data:;base64,\([A-Za-z0-9+\/=]*\)".*/\1/p' "$1"; }
ignition_flag() { sed -n "s/.*ExecStart=[^\"]* --$1 \([^ \"\\\\]*\).*/\1/p" "$2"; }
"#;

/// The initramfs' `/init` (busybox sh, PID 1): mounts proc, sys and dev, loads `modules` in
/// order, brings a NIC up with `udhcpc`, fetches the Ignition, writes the token (and CA) where
/// the ignition puts them and runs `metal-probe` with the flags discovery's unit passes,
/// restarting it after 5 s when it fails (as the unit's `Restart=on-failure` does). PID 1 never
/// exits (the kernel would panic); on a missing setting it says why and keeps a shell open.
pub fn init_script(modules: &[String]) -> String {
    let mods = modules
        .iter()
        .map(|m| module_path(m))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"#!/bin/sh
# metal-probe-boot /init: see xtask/src/bootimage.rs.
/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /etc/metal
echo "metal-probe-boot: kernel $(uname -r) up in $(cut -d' ' -f1 /proc/uptime)s"
fail() {{
  echo "metal-probe-boot: $*"
  exec sh
}}
{INIT_FUNCTIONS}
for m in {mods}; do
  insmod "$m" || echo "metal-probe-boot: insmod $m failed"
done
cmdline=$(cat /proc/cmdline)
ignition=$(arg ignition.config.url) || fail "no ignition.config.url= on the kernel command line: the probe token comes only from the Ignition"
ip link set lo up
until [ -s /etc/resolv.conf ] || ip -4 route | grep -q default; do
  for dev in /sys/class/net/*; do
    n=${{dev##*/}}
    [ "$n" = lo ] && continue
    ip link set "$n" up
    udhcpc -i "$n" -s /etc/udhcpc/default.script -n -q -t 5 -T 2 && break 2
  done
  echo "metal-probe-boot: no DHCP lease yet, retrying"
  sleep 2
done
until wget -q -O /run/ignition.json "$ignition"; do
  echo "metal-probe-boot: fetching the Ignition failed, retrying"
  sleep 5
done
token=$(ignition_token /run/ignition.json)
[ -n "$token" ] || fail "the Ignition holds no probe token"
umask 077
echo "$token" > {TOKEN_PATH}
umask 022
registry=$(arg metal.registry) || registry=$(ignition_flag registry-url /run/ignition.json)
[ -n "$registry" ] || fail "no registry URL: neither metal.registry= nor the Ignition's unit names one"
set -- --registry-url "$registry" --token-file {TOKEN_PATH}
uuid=$(arg metal.server-uuid) || uuid=$(ignition_flag server-uuid /run/ignition.json)
[ -n "$uuid" ] && set -- "$@" --server-uuid "$uuid"
ca=$(ignition_ca /run/ignition.json)
if [ -n "$ca" ]; then
  echo "$ca" | base64 -d > {CA_PATH}
  set -- "$@" --registry-ca-file {CA_PATH}
fi
wipe=$(ignition_flag wipe /run/ignition.json)
[ -n "$wipe" ] && set -- "$@" --wipe "$wipe"
echo "metal-probe-boot: starting metal-probe at $(cut -d' ' -f1 /proc/uptime)s"
until {PROBE_PATH} "$@"; do
  echo "metal-probe-boot: metal-probe failed, restarting in 5 s"
  sleep 5
done
echo "metal-probe-boot: metal-probe finished"
while :; do sleep 3600; done
"#
    )
}

/// The OCI layout documents of the boot image: digests of the two layers, the config and the
/// manifest (digest and bytes each), and `index.json`.
#[derive(Debug)]
pub struct OciDocs {
    /// Kernel blob digest (`sha256:...`).
    pub kernel: String,
    /// Initramfs blob digest.
    pub initrd: String,
    /// Image config.
    pub config: (String, Vec<u8>),
    /// Image manifest.
    pub manifest: (String, Vec<u8>),
    /// The layout's `index.json`.
    pub index: Vec<u8>,
}

/// The manifest (kernel then initramfs layer, by provisioning's media types), an image config
/// (linux/amd64; the layers are not tars, so their diff IDs are their digests) and the index
/// naming the manifest with its platform and tag, for `crane push` and provisioning's resolver.
pub fn oci_layout(kernel: &[u8], initrd: &[u8], version: &str) -> OciDocs {
    let digest = |b: &[u8]| format!("sha256:{:x}", Sha256::digest(b));
    let (kd, id) = (digest(kernel), digest(initrd));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {
            "org.opencontainers.image.title": NAME,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.source": "https://github.com/metal-rs/metal",
            "dev.metal-rs.kernel": format!("{KERNEL_PACKAGE}={KERNEL_VERSION}"),
            "dev.metal-rs.busybox": format!("{BUSYBOX_PACKAGE}={BUSYBOX_VERSION}"),
        }},
        "rootfs": {"type": "layers", "diff_ids": [kd, id]},
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let cd = digest(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cd, "size": config.len(),
        },
        "layers": [
            {"mediaType": KERNEL_MEDIA_TYPE, "digest": kd, "size": kernel.len(),
             "annotations": {"org.opencontainers.image.title": "vmlinuz"}},
            {"mediaType": INITRD_MEDIA_TYPE, "digest": id, "size": initrd.len(),
             "annotations": {"org.opencontainers.image.title": "initrd.gz"}},
        ],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    let md = digest(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": format!("v{version}")},
        }],
    });
    OciDocs {
        kernel: kd,
        initrd: id,
        config: (cd, config),
        manifest: (md, manifest),
        index: serde_json::to_vec(&index).unwrap_or_default(),
    }
}

/// The QEMU arguments booting `kernel` + `initrd` with one virtio NIC (`mac`) on user
/// networking (the guest sees the host's loopback as 10.0.2.2), the serial console on stdio,
/// TCG (no KVM assumed), no reboot (a panic ends QEMU), SMBIOS system UUID `uuid` (the boot
/// test's machine).
#[cfg(test)]
pub fn qemu_args(kernel: &Path, initrd: &Path, mac: &str, uuid: &str, append: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "-accel",
        "tcg",
        "-m",
        "512",
        "-smp",
        "1",
        "-nographic",
        "-no-reboot",
        "-netdev",
        "user,id=n0",
        "-device",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("virtio-net-pci,netdev=n0,mac={mac}"));
    a.extend(["-uuid".into(), uuid.into(), "-kernel".into()]);
    a.push(kernel.to_string_lossy().into_owned());
    a.push("-initrd".into());
    a.push(initrd.to_string_lossy().into_owned());
    a.extend(["-append".into(), append.into()]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(member: &[u8], i: usize) -> u32 {
        let s = std::str::from_utf8(&member[6 + 8 * i..14 + 8 * i]).unwrap_or("");
        u32::from_str_radix(s, 16).unwrap_or(u32::MAX)
    }

    /// Members of a newc archive: (header offset, name, data).
    fn members(a: &[u8]) -> Vec<(usize, String, Vec<u8>)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < a.len() {
            let h = &a[at..];
            assert_eq!(&h[..6], b"070701", "magic at {at}");
            let namesize = field(h, 11) as usize;
            let size = field(h, 6) as usize;
            let name = String::from_utf8(h[110..110 + namesize - 1].to_vec()).unwrap_or_default();
            assert_eq!(h[110 + namesize - 1], 0, "name NUL");
            let data_at = (110 + namesize).div_ceil(4) * 4;
            assert!(h[110 + namesize..data_at].iter().all(|&b| b == 0));
            let data = h[data_at..data_at + size].to_vec();
            out.push((at, name.clone(), data));
            at += (data_at + size).div_ceil(4) * 4;
            if name == "TRAILER!!!" {
                assert_eq!(at, a.len(), "bytes after the trailer");
            }
        }
        out
    }

    #[test]
    fn cpio_is_newc_sorted_with_parents_deterministic_and_padded() {
        let files = vec![
            File::exec("usr/local/bin/metal-probe", b"\x7fELF12345".to_vec()),
            File::symlink("bin/sh", "busybox"),
            File::char_device("dev/console", 0o600, 5, 1),
            File::exec("init", b"#!/bin/sh\n".to_vec()),
        ];
        let a = cpio_newc(&files);
        assert_eq!(a, cpio_newc(&files), "same input, same bytes");
        assert_eq!(a.len() % 4, 0);
        let m = members(&a);
        let names: Vec<_> = m.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "usr",
                "usr/local",
                "usr/local/bin",
                "usr/local/bin/metal-probe",
                "TRAILER!!!"
            ]
        );
        for (i, (at, name, data)) in m.iter().enumerate() {
            let h = &a[*at..];
            let ino = field(h, 0);
            if name != "TRAILER!!!" {
                assert_eq!(ino, i as u32 + 1, "{name}: inode");
            }
            assert_eq!((field(h, 2), field(h, 3)), (0, 0), "{name}: owner root");
            assert_eq!(field(h, 5), 0, "{name}: mtime");
            assert_eq!(field(h, 6) as usize, data.len());
            assert_eq!(field(h, 12), 0, "{name}: check");
            // Upper-case hex, as the kernel's and GNU cpio's writers produce.
            assert!(
                h[6..110]
                    .iter()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            );
        }
        let mode = |name: &str| {
            let (at, ..) = m.iter().find(|x| x.1 == name).expect(name);
            field(&a[*at..], 1)
        };
        assert_eq!(mode("usr/local"), 0o040755);
        assert_eq!(mode("init"), 0o100755);
        assert_eq!(mode("bin/sh"), 0o120777);
        assert_eq!(mode("dev/console"), 0o020600);
        let (at, ..) = m.iter().find(|x| x.1 == "dev/console").expect("console");
        assert_eq!((field(&a[*at..], 9), field(&a[*at..], 10)), (5, 1));
        assert_eq!(
            m.iter().find(|x| x.1 == "bin/sh").expect("sh").2,
            b"busybox"
        );
        // The first header byte for byte: ino 1, a directory, nlink 2, name "bin" (+ NUL,
        // padded from 114 to 116).
        let first = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}bin\0\0\0",
            1, 0o040755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0
        );
        assert_eq!(&a[..116], first.as_bytes());
    }

    #[test]
    fn cpio_is_what_gnu_cpio_lists_when_installed() -> anyhow::Result<()> {
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            return Ok(()); // cpio is optional; the byte-level test above is the check
        };
        let a = cpio_newc(&[File::exec("a/b", b"x".to_vec())]);
        child.stdin.take().context("stdin")?.write_all(&a)?;
        let out = child.wait_with_output()?;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a\na/b\n");
        Ok(())
    }

    #[test]
    fn modinfo_depends_reads_the_modinfo_string() {
        let ko =
            b"\x7fELF....\0license=GPL\0depends=virtio_ring,virtio,net_failover\0retpoline=Y\0";
        assert_eq!(
            modinfo_depends(ko),
            Some(vec![
                "virtio_ring".to_string(),
                "virtio".into(),
                "net_failover".into()
            ])
        );
        assert_eq!(modinfo_depends(b"\0depends=\0"), Some(vec![]));
        assert_eq!(modinfo_depends(b"\0license=GPL\0"), None);
    }

    #[test]
    fn load_order_puts_dependencies_first_once() -> anyhow::Result<()> {
        // As Debian's 6.1 modules declare them (`modinfo -F depends`).
        let deps: BTreeMap<String, Vec<String>> = [
            ("virtio_net", "virtio_ring,virtio,net_failover"),
            ("net_failover", "failover"),
            ("failover", ""),
            ("virtio", "virtio_ring"),
            ("virtio_ring", ""),
            (
                "virtio_pci",
                "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
            ),
            ("virtio_pci_modern_dev", ""),
            ("virtio_pci_legacy_dev", ""),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )
        })
        .collect();
        assert_eq!(
            load_order(&deps, NIC_MODULES)?,
            [
                "virtio_ring",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        assert!(load_order(&deps, &["e1000"]).is_err());
        let mut cyclic = deps.clone();
        cyclic.insert("failover".into(), vec!["virtio_net".into()]);
        assert!(load_order(&cyclic, &["virtio_net"]).is_err());
        Ok(())
    }

    /// The `/init` functions run by the host's `sh` against the Ignition crates/probe builds
    /// for discovery (token only), an HTTPS registry (CA) and cleaning (wipe), and a command
    /// line as provisioning boots it: the boot image reads what discovery writes.
    #[test]
    fn init_functions_read_discoverys_cmdline_and_ignition() -> anyhow::Result<()> {
        use metal_probe::ignition::{AgentBoot, cmdline, ignition};
        let dir = std::env::temp_dir().join(format!("metal-bootimage-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let run = |ign: &str, script: &str| -> anyhow::Result<String> {
            std::fs::write(dir.join("ign.json"), ign)?;
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("{INIT_FUNCTIONS}\n{script}"))
                .arg("sh")
                .arg(dir.join("ign.json"))
                .output()?;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let token = "AbC-_123xyzAbC-_123xyzAbC-_123xyzAbC-_1234";
        let mut boot = AgentBoot {
            registry_url: "http://10.0.0.1:10000",
            system_uuid: "1e0a0b0c-0000-4000-8000-000000000001",
            token,
            registry_ca: None,
            wipe: None,
        };
        let line = format!(
            "initrd=initrd console=ttyS0 {} ignition.config.url=http://boot:8082/ignition/u/t",
            cmdline(boot.registry_url, boot.system_uuid)
        );
        let script = format!(
            "cmdline='{line}'\narg metal.registry; arg metal.server-uuid; arg ignition.config.url; arg metal.none || echo missing"
        );
        assert_eq!(
            run("{}", &script)?,
            "http://10.0.0.1:10000\n1e0a0b0c-0000-4000-8000-000000000001\nhttp://boot:8082/ignition/u/t\nmissing\n"
        );
        let fns = r#"echo "t=$(ignition_token "$1") ca=$(ignition_ca "$1") w=$(ignition_flag wipe "$1") r=$(ignition_flag registry-url "$1") u=$(ignition_flag server-uuid "$1")""#;
        let tail = format!(" r={} u={}\n", boot.registry_url, boot.system_uuid);
        assert_eq!(
            run(&ignition(&boot), fns)?,
            format!("t={token} ca= w={tail}")
        );
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        boot.registry_ca = Some(pem);
        boot.wipe = Some(metal_probe::WipeMode::Metadata);
        let out = run(&ignition(&boot), fns)?;
        let ca_b64 = out.split("ca=").nth(1).and_then(|s| s.split(' ').next());
        let decoded = Command::new("sh")
            .arg("-c")
            .arg(format!("echo '{}' | base64 -d", ca_b64.unwrap_or("")))
            .output()?;
        assert_eq!(String::from_utf8_lossy(&decoded.stdout), pem);
        assert!(out.starts_with(&format!("t={token} ca=")), "{out}");
        assert!(
            out.ends_with(&format!(
                " w={}{tail}",
                metal_probe::WipeMode::Metadata.as_str()
            )),
            "{out}"
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn init_script_loads_modules_in_order_and_runs_the_probe_as_discoverys_unit_does() {
        let s = init_script(&["failover".into(), "net_failover".into()]);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(&format!(
            "for m in {} {}; do",
            module_path("failover"),
            module_path("net_failover")
        )));
        assert!(s.contains("--registry-url \"$registry\" --token-file /etc/metal/probe-token"));
        assert!(s.contains("set -- \"$@\" --server-uuid \"$uuid\""));
        assert!(s.contains("--registry-ca-file /etc/metal/registry-ca.pem"));
        assert!(s.contains(&format!("until {PROBE_PATH} \"$@\"; do")));
        assert!(s.contains("mount -t devtmpfs devtmpfs /dev"));
        assert!(s.trim_end().ends_with("while :; do sleep 3600; done"));
    }

    #[test]
    fn oci_layout_has_provisionings_media_types_in_order() -> anyhow::Result<()> {
        // provisioning resolves these (its KERNEL_TYPES / INITRD_TYPES): keep them in step.
        let oci_rs = include_str!("../../crates/provisioning/src/oci.rs");
        for t in [KERNEL_MEDIA_TYPE, INITRD_MEDIA_TYPE] {
            assert!(oci_rs.contains(&format!("    \"{t}\",\n")), "{t}");
        }
        let docs = oci_layout(b"kernel", b"initrd", "1.2.3");
        let m: serde_json::Value = serde_json::from_slice(&docs.manifest.1)?;
        let layers = m["layers"].as_array().cloned().unwrap_or_default();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["mediaType"], KERNEL_MEDIA_TYPE);
        assert_eq!(layers[0]["digest"], docs.kernel);
        assert_eq!(layers[0]["size"], 6);
        assert_eq!(layers[1]["mediaType"], INITRD_MEDIA_TYPE);
        assert_eq!(
            docs.kernel,
            "sha256:6923dd1bc0460082c5d55a831908c24a282860b7f1cd6c2b79cf1bc8857c639c"
        );
        assert_eq!(m["config"]["digest"], docs.config.0);
        let index: serde_json::Value = serde_json::from_slice(&docs.index)?;
        assert_eq!(index["manifests"][0]["digest"], docs.manifest.0);
        assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1.2.3"
        );
        let config: serde_json::Value = serde_json::from_slice(&docs.config.1)?;
        assert_eq!(config["rootfs"]["diff_ids"][1], docs.initrd);
        Ok(())
    }

    #[test]
    fn qemu_args_boot_tcg_without_reboot_on_a_virtio_nic() {
        let a = qemu_args(
            Path::new("/k"),
            Path::new("/i"),
            "52:54:00:12:34:56",
            "u-1",
            "console=ttyS0",
        );
        let s = a.join(" ");
        assert!(s.starts_with("-accel tcg "), "{s}");
        assert!(s.contains("-nographic -no-reboot"));
        assert!(
            s.contains("-netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56")
        );
        assert!(
            s.ends_with("-uuid u-1 -kernel /k -initrd /i -append console=ttyS0"),
            "{s}"
        );
    }
}
