//! `cargo xtask images`: one OCI image per deployable, built without a container engine.
//!
//! The binaries are built once, statically linked against musl (`--target
//! x86_64-unknown-linux-musl`, one cargo invocation so the dependencies build once). Each image
//! is a single layer written here as a deterministic tar: the binary at
//! `/usr/local/bin/<name>`, and `/etc/passwd` + `/etc/group` naming uid/gid 65532 (`nonroot`) —
//! nothing else, so there is no shell and nothing to write to (the Deployments set
//! `readOnlyRootFilesystem`). go-containerregistry's `crane` (installed from the Go module proxy
//! into the cache) does the OCI part: it appends the layer to the empty OCI base in a registry it
//! serves in memory on loopback, sets entrypoint, user and platform, and pulls the result as an
//! OCI image layout to `<out>/<name>` (`crane push <out>/<name> <ref>` publishes it; `--push`
//! does that for every image). TLS roots are compiled in (webpki-roots), so no CA bundle ships.
//!
//! `metal-probe` is the agent's layer: its binary sits where the discovery ignition's unit
//! starts it (`/usr/local/bin/metal-probe`), so a probe OS (kernel, initrd, systemd + Ignition)
//! takes this layer as is. The network-bootable probe OS itself is `metal-probe-boot` (see
//! [`crate::bootimage`]): Debian's kernel and an initramfs written here (busybox, the virtio-net
//! modules, the same static `metal-probe`, an `/init`), as an OCI artifact whose layers carry the
//! kernel and initramfs media types provisioning resolves (crates/provisioning/src/oci.rs). It is
//! built last, from the same static binary, and written as an OCI layout directly (its layers
//! are not tars, so crane's append does not apply); `--push` pushes it with crane like the rest.

use anyhow::{Context as _, bail};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned crane release (go-containerregistry).
pub const CRANE_VERSION: &str = "v0.22.1";
/// The target every image binary is built for: static, no libc in the image.
pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// uid and gid the images run as (distroless' `nonroot`, as the Deployments' `runAsUser`).
pub const NONROOT: u32 = 65532;
/// Every image: the deployables (their kustomize Deployments name `ghcr.io/metal-rs/<name>`),
/// the CLI, and the probe's boot image. Each binary is its package's only binary.
pub const IMAGES: &[&str] = &[
    "metal-discovery",
    "metal-reservation",
    "metal-provisioning",
    "metal-maintenance",
    "metal-probe",
    "metalctl",
];
/// The version every image is tagged and labelled with (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The path of an image's binary (and entrypoint) inside the image.
pub fn entrypoint(name: &str) -> String {
    format!("/usr/local/bin/{name}")
}

/// One built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// Image (and binary) name.
    pub name: String,
    /// Its OCI image layout directory.
    pub layout: PathBuf,
    /// Size of the static binary.
    pub binary_bytes: u64,
    /// Size of the compressed layer (what a pull downloads, with the config and manifest).
    pub layer_bytes: u64,
    /// Manifest + config + layers.
    pub total_bytes: u64,
}

/// Builds every image into `out` (one OCI layout per image) and returns them with their sizes.
pub fn build(root: &Path, target_dir: &Path, out: &Path) -> anyhow::Result<Vec<Built>> {
    let started = Instant::now();
    let bins = build_binaries(root, target_dir)?;
    let crane = crane()?;
    std::fs::create_dir_all(out)?;
    let registry = Registry::start(&crane)?;
    let mut built = Vec::new();
    for name in IMAGES {
        let binary = bins.join(name);
        let layer = out.join(format!("{name}.layer.tar"));
        std::fs::write(&layer, layer_tar(name, &std::fs::read(&binary)?))?;
        let tag = format!("{}/{name}:v{VERSION}", registry.host);
        crane_run(
            &crane,
            &["append", "--oci-empty-base", "-t", &tag, "-f"],
            &layer,
        )?;
        let entry = entrypoint(name);
        let user = format!("{NONROOT}:{NONROOT}");
        let title = format!("org.opencontainers.image.title={name}");
        let version = format!("org.opencontainers.image.version={VERSION}");
        let mutate = [
            "mutate",
            "--set-platform=linux/amd64",
            "--entrypoint",
            &entry,
            "--user",
            &user,
            "--workdir=/",
            "-l",
            &title,
            "-l",
            &version,
            "-l",
            "org.opencontainers.image.source=https://github.com/metal-rs/metal",
            "-t",
            &tag,
            &tag,
        ];
        crane_run(&crane, &mutate, Path::new(""))?;
        let layout = out.join(name);
        // `crane pull` adds to an existing layout; a rebuild starts from an empty one.
        let _ = std::fs::remove_dir_all(&layout);
        crane_run(&crane, &["pull", "--format=oci", &tag], &layout)?;
        std::fs::remove_file(&layer)?;
        let image = Layout::open(&layout)?;
        if image.config["config"]["User"] != user.as_str() {
            bail!(
                "{name}: crane mutate left the user at {}",
                image.config["config"]["User"]
            );
        }
        built.push(Built {
            name: name.to_string(),
            binary_bytes: std::fs::metadata(&binary)?.len(),
            layer_bytes: image.layers.iter().map(|l| l.1).sum(),
            total_bytes: image.total_bytes,
            layout,
        });
    }
    drop(registry);
    let probe = bins.join("metal-probe");
    let boot = crate::bootimage::build(&probe, out)?;
    let image = Layout::open(&boot)?;
    built.push(Built {
        name: crate::bootimage::NAME.to_string(),
        binary_bytes: std::fs::metadata(&probe)?.len(),
        layer_bytes: image.layers.iter().map(|l| l.1).sum(),
        total_bytes: image.total_bytes,
        layout: boot,
    });
    let table = size_table(&built);
    std::fs::write(out.join("sizes.md"), &table)?;
    eprint!("{table}");
    eprintln!(
        "built {} images into {} in {:.1?}",
        built.len(),
        out.display(),
        started.elapsed()
    );
    Ok(built)
}

/// Pushes every built image to `registry` as `<registry>/<name>:v<version>`, the tag the site
/// overlay names (crane's credentials: `crane auth login` or the docker config).
pub fn push(built: &[Built], registry: &str) -> anyhow::Result<()> {
    let crane = crane()?;
    for b in built {
        let dest = format!("{}/{}:v{VERSION}", registry.trim_end_matches('/'), b.name);
        let status = Command::new(&crane)
            .arg("push")
            .arg(&b.layout)
            .arg(&dest)
            .status()
            .context("running crane push")?;
        if !status.success() {
            bail!("crane push {dest} failed ({status})");
        }
    }
    Ok(())
}

/// The markdown table of image sizes (for `metal-probe-boot` the binary is the `metal-probe` it
/// carries and the layers are the kernel and the gzip'd initramfs).
pub fn size_table(built: &[Built]) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    let mut s =
        String::from("| image | binary | layers (gzip) | image total |\n|---|---|---|---|\n");
    for b in built {
        s += &format!(
            "| {}:v{VERSION} | {} | {} | {} |\n",
            b.name,
            mib(b.binary_bytes),
            mib(b.layer_bytes),
            mib(b.total_bytes)
        );
    }
    s
}

/// Builds the static binaries in their own target directory (`<target>/images-build`), so a
/// build from inside `cargo test` never waits on the lock of the workspace's. Returns the
/// directory holding them.
fn build_binaries(root: &Path, target_dir: &Path) -> anyhow::Result<PathBuf> {
    ensure_target()?;
    let cargo_dir = target_dir.join("images-build");
    let mut cmd = crate::cargo();
    cmd.args(["build", "--release", "--locked", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &cargo_dir)
        .current_dir(root);
    for name in IMAGES {
        cmd.args(["-p", name]);
    }
    // ring compiles a little C; cc-rs looks for a musl cross gcc. ring's C needs no libc
    // headers, so the host's cc builds it for musl when no musl-gcc is installed.
    let cc_var = "CC_x86_64_unknown_linux_musl";
    if std::env::var_os(cc_var).is_none() && !on_path("x86_64-linux-musl-gcc") {
        cmd.env(
            cc_var,
            if on_path("musl-gcc") {
                "musl-gcc"
            } else {
                "cc"
            },
        );
    }
    let started = Instant::now();
    eprintln!(
        "==> cargo build --release --target {TARGET} ({})",
        IMAGES.join(", ")
    );
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --target {TARGET} failed ({status})");
    }
    eprintln!("<== static binaries built in {:.1?}", started.elapsed());
    Ok(cargo_dir.join(TARGET).join("release"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Adds the musl standard library with rustup when it is missing.
fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        });
    match installed {
        Ok(true) => Ok(()),
        Ok(false) => {
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()?;
            if !status.success() {
                bail!("rustup target add {TARGET} failed ({status})");
            }
            Ok(())
        }
        // Without rustup the toolchain must already have it; cargo says so if not.
        Err(_) => Ok(()),
    }
}

/// The cache of downloaded tools and packages: `$METAL_CACHE`, else `~/.cache/metal` (as the
/// control plane's).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("METAL_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache")
            })
            .join("metal"),
    }
}

/// The cached crane binary (in [`cache_dir`]), `go install`ed on first use.
pub fn crane() -> anyhow::Result<PathBuf> {
    let cache = cache_dir();
    let dir = cache.join(format!("crane-{CRANE_VERSION}"));
    let bin = dir.join("crane");
    if bin.is_file() {
        return Ok(bin);
    }
    // Installed beside its place and renamed: an interrupted install leaves no half binary.
    let staging = cache.join(format!(
        "crane-{CRANE_VERSION}.partial-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&staging)?;
    eprintln!(
        "==> go install crane {CRANE_VERSION} into {}",
        dir.display()
    );
    let toolchain = match std::env::var("GOTOOLCHAIN") {
        Ok(t) if t != "local" => t,
        _ => "go1.27.3".into(),
    };
    let status = Command::new("go")
        .arg("install")
        .arg(format!(
            "github.com/google/go-containerregistry/cmd/crane@{CRANE_VERSION}"
        ))
        .env("GOBIN", &staging)
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", toolchain)
        .status()
        .context("running go install (Go is needed to build crane)")?;
    if !status.success() {
        bail!("go install crane@{CRANE_VERSION} failed ({status})");
    }
    if std::fs::rename(&staging, &dir).is_err() && !bin.is_file() {
        bail!("could not move {} to {}", staging.display(), dir.display());
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(bin)
}

/// Runs crane with `args` and then `path` (skipped when empty), failing with its stderr.
fn crane_run(crane: &Path, args: &[&str], path: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new(crane);
    cmd.args(args);
    if !path.as_os_str().is_empty() {
        cmd.arg(path);
    }
    let out = cmd.output().context("running crane")?;
    if !out.status.success() {
        bail!(
            "crane {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `crane registry serve` on a loopback port: the in-memory registry the images are assembled
/// in (crane's mutate works on registry images). Killed when dropped.
struct Registry {
    host: String,
    child: Child,
}

impl Registry {
    fn start(crane: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        let child = Command::new(crane)
            .args(["registry", "serve", "--address", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting crane registry serve")?;
        let registry = Registry { host, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&registry.host).is_err() {
            if Instant::now() > deadline {
                bail!("crane registry serve did not listen on {}", registry.host);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image's only layer: a deterministic tar (mtime 0, owner root, sorted) of the binary and
/// the nonroot user's passwd/group entries, read by whoever resolves the numeric user.
pub fn layer_tar(name: &str, binary: &[u8]) -> Vec<u8> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{NONROOT}:\n");
    let mut tar = Vec::new();
    for dir in ["etc/", "usr/", "usr/local/", "usr/local/bin/"] {
        tar_entry(&mut tar, dir, 0o755, b'5', &[]);
    }
    tar_entry(&mut tar, "etc/group", 0o644, b'0', group.as_bytes());
    tar_entry(&mut tar, "etc/passwd", 0o644, b'0', passwd.as_bytes());
    tar_entry(&mut tar, &entrypoint(name)[1..], 0o755, b'0', binary);
    tar.extend_from_slice(&[0; 1024]);
    tar
}

/// One ustar entry (names here are short, so no long-name extensions).
fn tar_entry(tar: &mut Vec<u8>, path: &str, mode: u32, kind: u8, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}", w = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, data.len() as u64);
    octal(&mut h, 136, 12, 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    tar.extend_from_slice(&h);
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// An OCI image layout holding one single-platform image, as `crane pull --format=oci` writes.
#[derive(Debug)]
pub struct Layout {
    /// The image config (`config` holds Entrypoint, User, ...).
    pub config: serde_json::Value,
    /// Layer blob paths, with their sizes.
    pub layers: Vec<(PathBuf, u64)>,
    /// Manifest + config + layers.
    pub total_bytes: u64,
}

impl Layout {
    /// Reads the layout's index, its one manifest and the config.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let blob = |digest: &str| {
            let (alg, hex) = digest.split_once(':').context("digest without algorithm")?;
            Ok::<_, anyhow::Error>(dir.join("blobs").join(alg).join(hex))
        };
        let json = |path: &Path| -> anyhow::Result<serde_json::Value> {
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(serde_json::from_slice(&text)?)
        };
        let index = json(&dir.join("index.json"))?;
        let [entry] = index["manifests"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        else {
            bail!("{} holds not exactly one image", dir.display());
        };
        let digest = |v: &serde_json::Value| v["digest"].as_str().unwrap_or("").to_string();
        let size = |v: &serde_json::Value| v["size"].as_u64().unwrap_or(0);
        let manifest = json(&blob(&digest(entry))?)?;
        let config = json(&blob(&digest(&manifest["config"]))?)?;
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().into_iter().flatten() {
            layers.push((blob(&digest(l))?, size(l)));
        }
        let total_bytes =
            size(entry) + size(&manifest["config"]) + layers.iter().map(|l| l.1).sum::<u64>();
        Ok(Layout {
            config,
            layers,
            total_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every image, built once per test process (the tests share the static release build and
    /// the output directory; `cargo xtask test` built them before, so cargo finds it fresh).
    fn built() -> &'static [Built] {
        static BUILT: std::sync::OnceLock<Vec<Built>> = std::sync::OnceLock::new();
        BUILT.get_or_init(|| {
            let target = crate::target_dir().expect("target dir");
            build(&crate::root(), &target, &target.join("images")).expect("building the images")
        })
    }

    /// Builds every image (reusing the cached build when `cargo xtask test` ran `images` first),
    /// unpacks each layout's layers and checks what the Deployments rely on: uid 65532, the
    /// entrypoint present and static, nothing but it and passwd/group in the filesystem (no
    /// shell), and that the unpacked entrypoint runs and prints the workspace version.
    #[test]
    fn every_image_is_nonroot_shell_free_and_runs_its_version() -> anyhow::Result<()> {
        let built = built();
        assert_eq!(
            built.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            [IMAGES, &[crate::bootimage::NAME]].concat()
        );
        let built = &built[..IMAGES.len()];
        for b in built {
            let image = Layout::open(&b.layout)?;
            let config = &image.config;
            let entry = entrypoint(&b.name);
            assert_eq!(config["os"], "linux", "{}", b.name);
            assert_eq!(config["architecture"], "amd64", "{}", b.name);
            assert_eq!(config["config"]["User"], "65532:65532", "{}", b.name);
            assert_eq!(config["config"]["Entrypoint"], serde_json::json!([entry]));
            assert!(config["config"]["Cmd"].is_null(), "{}: a Cmd", b.name);
            let rootfs = tempfile_dir(&format!("rootfs-{}", b.name))?;
            for (layer, _) in &image.layers {
                let status = Command::new("tar")
                    .arg("-xzf")
                    .arg(layer)
                    .arg("-C")
                    .arg(&rootfs)
                    .status()?;
                assert!(status.success(), "unpacking {}", layer.display());
            }
            let mut files = Vec::new();
            walk(&rootfs, &rootfs, &mut files)?;
            files.sort();
            assert_eq!(
                files,
                ["etc/group", "etc/passwd", &entry[1..]],
                "{}: the filesystem holds more than the binary (a shell?)",
                b.name
            );
            let passwd = std::fs::read_to_string(rootfs.join("etc/passwd"))?;
            assert!(passwd.contains(":65532:65532:"), "{passwd}");
            let bin = std::fs::read(rootfs.join(&entry[1..]))?;
            assert!(is_static_elf(&bin), "{}: not a static executable", b.name);
            let out = Command::new(rootfs.join(&entry[1..]))
                .arg("--version")
                .env_clear()
                .output()?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{} --version: {}", b.name, out.status);
            assert_eq!(stdout.trim(), format!("{} {VERSION}", b.name));
            std::fs::remove_dir_all(&rootfs)?;
        }
        Ok(())
    }

    #[test]
    fn layer_tar_is_deterministic_and_ustar() {
        let a = layer_tar("metal-x", b"\x7fELF");
        assert_eq!(a, layer_tar("metal-x", b"\x7fELF"));
        assert_eq!(a.len() % 512, 0);
        assert_eq!(&a[257..263], b"ustar\0");
    }

    /// One request the fake registry saw.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        authorization: String,
        body: Vec<u8>,
    }

    /// A minimal HTTP/1.1 server on 127.0.0.1 standing in for the boot server (it serves the
    /// Ignition at `/ignition/...`) and the registry (it answers 200 to every POST), recording
    /// every request. Stops accepting when dropped.
    struct FakeRegistry {
        port: u16,
        seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
        ignition: std::sync::Arc<std::sync::Mutex<String>>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl FakeRegistry {
        fn start() -> anyhow::Result<Self> {
            use std::io::{BufRead as _, BufReader, Read as _, Write as _};
            use std::sync::atomic::Ordering;
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let port = listener.local_addr()?.port();
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let ignition = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let (seen2, stop2, ignition2) = (seen.clone(), stop.clone(), ignition.clone());
            std::thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::new(&stream);
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let mut parts = line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_string(),
                        parts.next().unwrap_or("").to_string(),
                    );
                    let (mut length, mut authorization) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "content-length" => length = v.trim().parse().unwrap_or(0),
                                "authorization" => authorization = v.trim().to_string(),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let answer = if method == "GET" && path.starts_with("/ignition/") {
                        ignition2.lock().map(|i| i.clone()).unwrap_or_default()
                    } else if method == "POST" {
                        "{}".to_string()
                    } else {
                        String::new()
                    };
                    let status = if method == "GET" && answer.is_empty() {
                        "404 Not Found"
                    } else {
                        "200 OK"
                    };
                    let _ = write!(
                        &stream,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    if let Ok(mut s) = seen2.lock() {
                        s.push(Seen {
                            method,
                            path,
                            authorization,
                            body,
                        });
                    }
                }
            });
            Ok(FakeRegistry {
                port,
                seen,
                ignition,
                stop,
            })
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().map(|s| s.clone()).unwrap_or_default()
        }

        /// The requests so far, one `METHOD path (n bytes)` each, for failure messages.
        fn summary(&self) -> String {
            self.seen()
                .iter()
                .map(|r| format!("{} {} ({} bytes)", r.method, r.path, r.body.len()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    impl Drop for FakeRegistry {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// QEMU, killed (and reaped) when dropped, so a failed assertion leaves no VM behind.
    struct Vm(Child);

    impl Drop for Vm {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Boots `metal-probe-boot` for real: its kernel and initramfs (the layers provisioning
    /// would serve, found in the layout by media type) in QEMU (TCG, one virtio NIC with a
    /// fixed MAC on user networking), the kernel command line as discovery writes it
    /// (`metal.registry=`, `metal.server-uuid=`) plus the `ignition.config.url=` the boot
    /// server appends, pointing at 10.0.2.2 (the host's loopback seen from the guest) where a
    /// fake registry serves the Ignition crates/probe builds and records the posts. Passes when
    /// the probe's `POST /register` arrives with the token and the VM's UUID and MAC, within
    /// 180 s; QEMU is killed afterwards. The serial console is in the failure message.
    #[test]
    fn probe_boot_image_boots_in_qemu_and_registers_the_machine() -> anyhow::Result<()> {
        use metal_probe::ignition::{AgentBoot, cmdline, ignition};
        use std::io::Read as _;
        let qemu = "qemu-system-x86_64";
        if !on_path(qemu) {
            bail!("{qemu} is missing: apt-get install qemu-system-x86 (.ci/run installs it)");
        }
        let boot = built()
            .iter()
            .find(|b| b.name == crate::bootimage::NAME)
            .context("no boot image built")?;
        let (kernel, initrd) = crate::bootimage::layers(&boot.layout)?;
        // Pushed as `--push` does, the registry serves the manifest provisioning resolves.
        let crane = crane()?;
        let registry = Registry::start(&crane)?;
        let dest = format!("{}/{}:v{VERSION}", registry.host, boot.name);
        crane_run(
            &crane,
            &["push", &boot.layout.to_string_lossy(), &dest],
            Path::new(""),
        )?;
        let out = Command::new(&crane).args(["manifest", &dest]).output()?;
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            crate::bootimage::KERNEL_MEDIA_TYPE
        );
        assert_eq!(
            manifest["layers"][1]["mediaType"],
            crate::bootimage::INITRD_MEDIA_TYPE
        );
        drop(registry);
        let (uuid, mac) = ("6d657461-6c00-4000-8000-000000000010", "52:54:00:6d:65:74");
        let token = "bootimage-test-token_0123456789abcdefghijk";
        let reg = FakeRegistry::start()?;
        let registry_url = format!("http://10.0.2.2:{}", reg.port);
        let ign = ignition(&AgentBoot {
            registry_url: &registry_url,
            system_uuid: uuid,
            token,
            registry_ca: None,
            wipe: None,
        });
        *reg.ignition
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = ign;
        let append = format!(
            "console=ttyS0 panic=-1 {} ignition.config.url={registry_url}/ignition/{uuid}/boot-token",
            cmdline(&registry_url, uuid)
        );
        let started = Instant::now();
        let mut child = Command::new(qemu)
            .args(crate::bootimage::qemu_args(
                &kernel, &initrd, mac, uuid, &append,
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu")?;
        let serial = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        for mut out in [
            Box::new(child.stdout.take().context("stdout")?) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().context("stderr")?),
        ] {
            let serial = serial.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = serial.lock() {
                        s.extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
        let mut vm = Vm(child);
        let console = || {
            let s = serial.lock().map(|s| s.clone()).unwrap_or_default();
            String::from_utf8_lossy(&s).into_owned()
        };
        let deadline = started + Duration::from_secs(180);
        let register = loop {
            let seen = reg.seen();
            if let Some(r) = seen
                .iter()
                .find(|r| r.method == "POST" && r.path == "/register")
            {
                break r.clone();
            }
            if let Some(status) = vm.0.try_wait()? {
                panic!(
                    "qemu exited ({status}) before the probe registered; requests: {}\n--- serial console ---\n{}",
                    reg.summary(),
                    console()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "no POST /register within 180 s; requests: {}\n--- serial console ---\n{}",
                    reg.summary(),
                    console()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let took = started.elapsed();
        let seen = reg.seen();
        let ctx = || {
            format!(
                "requests: {}\n--- serial console ---\n{}",
                reg.summary(),
                console()
            )
        };
        assert!(
            seen.iter()
                .any(|r| r.method == "GET" && r.path == format!("/ignition/{uuid}/boot-token")),
            "the Ignition was not fetched; {}",
            ctx()
        );
        assert_eq!(
            register.authorization,
            format!("Bearer {token}"),
            "{}",
            ctx()
        );
        let body: serde_json::Value = serde_json::from_slice(&register.body)?;
        assert_eq!(body["systemUUID"], uuid, "{}", ctx());
        let nics = body["data"]["networkInterfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            nics.iter().any(|n| n["macAddress"] == mac),
            "no NIC with {mac} in {nics:?}; {}",
            ctx()
        );
        assert_eq!(
            body["data"]["systemInfo"]["systemInformation"]["uuid"]
                .as_str()
                .map(str::to_lowercase)
                .as_deref(),
            Some(uuid),
            "DMI UUID; {}",
            ctx()
        );
        let _ = vm.0.kill();
        let status = vm.0.wait()?;
        assert!(vm.0.try_wait()?.is_some(), "qemu still running");
        eprintln!(
            "bench probe-boot register_s={:.1} (qemu TCG, kernel {} {}, qemu ended: {status})",
            took.as_secs_f64(),
            crate::bootimage::KERNEL_PACKAGE,
            crate::bootimage::KERNEL_VERSION
        );
        Ok(())
    }

    fn tempfile_dir(name: &str) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("metal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Every non-directory below `dir`, relative to `base`.
    fn walk(base: &Path, dir: &Path, files: &mut Vec<String>) -> anyhow::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, files)?;
            } else {
                files.push(path.strip_prefix(base)?.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }

    /// An ELF executable without a `PT_INTERP` program header (no dynamic loader).
    fn is_static_elf(bin: &[u8]) -> bool {
        if bin.len() < 64 || &bin[..4] != b"\x7fELF" || bin[4] != 2 {
            return false;
        }
        let u16_at = |at: usize| u16::from_le_bytes([bin[at], bin[at + 1]]) as usize;
        let phoff = u64::from_le_bytes(bin[32..40].try_into().unwrap_or_default()) as usize;
        let (phentsize, phnum) = (u16_at(54), u16_at(56));
        (0..phnum).all(|i| {
            let at = phoff + i * phentsize;
            bin.get(at..at + 4)
                .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != 3)
        })
    }
}
