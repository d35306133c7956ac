//! iPXE scripts (pure rendering, no I/O): the chain-loader every server fetches first
//! (`/boot.ipxe`), and the per-server script that boots its configuration.
//!
//! The per-server script sets the iPXE variables `kernel-url`, `initrd-url`, `rootfs-url` and
//! `ignition-url`, so a command line may refer to them (`gl.url=${rootfs-url}`); the `kernel` and
//! `initrd` lines carry the literal URLs.

/// Why a script cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A URL is empty or contains whitespace or control characters (it would break the script).
    #[error(
        "{what} {value:?} is not usable in an iPXE script: it must be non-empty without spaces or control characters"
    )]
    BadUrl {
        /// Which URL.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The command line contains control characters (a newline would inject commands).
    #[error("the kernel command line must be a single line without control characters")]
    BadCmdline,
}

/// What a per-server script boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// Kernel URL.
    pub kernel_url: String,
    /// Initial ramdisk URL.
    pub initrd_url: Option<String>,
    /// Root file system image URL (for `${rootfs-url}`).
    pub rootfs_url: Option<String>,
    /// Kernel command line (without the ignition URL).
    pub cmdline: String,
    /// Ignition URL appended as `ignition.config.url=`, when the configuration has ignition.
    pub ignition_url: Option<String>,
}

fn check_url(what: &'static str, value: &str) -> Result<(), RenderError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RenderError::BadUrl {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// Checks a command line: one line, no control characters.
pub fn check_cmdline(cmdline: &str) -> Result<(), RenderError> {
    if cmdline.chars().any(char::is_control) {
        return Err(RenderError::BadCmdline);
    }
    Ok(())
}

impl ScriptSpec {
    /// Checks every URL and the command line.
    pub fn validate(&self) -> Result<(), RenderError> {
        check_url("kernel URL", &self.kernel_url)?;
        if let Some(u) = &self.initrd_url {
            check_url("initrd URL", u)?;
        }
        if let Some(u) = &self.rootfs_url {
            check_url("root image URL", u)?;
        }
        if let Some(u) = &self.ignition_url {
            check_url("ignition URL", u)?;
        }
        check_cmdline(&self.cmdline)
    }

    /// The full kernel command line as booted (with `initrd=` and the ignition URL).
    pub fn full_cmdline(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.initrd_url.is_some() {
            parts.push("initrd=initrd".into());
        }
        let base = self.cmdline.trim();
        if !base.is_empty() {
            parts.push(base.to_string());
        }
        if let Some(u) = &self.ignition_url {
            parts.push(format!("ignition.config.url={u}"));
        }
        parts.join(" ")
    }
}

/// Renders the per-server script.
pub fn render_server_script(spec: &ScriptSpec) -> Result<String, RenderError> {
    spec.validate()?;
    let mut s = String::from("#!ipxe\n");
    s.push_str(&format!("set kernel-url {}\n", spec.kernel_url));
    if let Some(u) = &spec.initrd_url {
        s.push_str(&format!("set initrd-url {u}\n"));
    }
    if let Some(u) = &spec.rootfs_url {
        s.push_str(&format!("set rootfs-url {u}\n"));
    }
    if let Some(u) = &spec.ignition_url {
        s.push_str(&format!("set ignition-url {u}\n"));
    }
    let cmdline = spec.full_cmdline();
    if cmdline.is_empty() {
        s.push_str(&format!("kernel {} || goto failed\n", spec.kernel_url));
    } else {
        s.push_str(&format!(
            "kernel {} {cmdline} || goto failed\n",
            spec.kernel_url
        ));
    }
    if let Some(u) = &spec.initrd_url {
        s.push_str(&format!("initrd --name initrd {u} || goto failed\n"));
    }
    s.push_str("boot || goto failed\n");
    s.push_str(":failed\necho metal-provisioning: boot failed, rebooting in 10 seconds\nsleep 10\nreboot\n");
    Ok(s)
}

/// Attempts of the chain-loader to get a machine's script before it gives up.
pub const CHAIN_ATTEMPTS: u32 = 6;
/// Seconds between two attempts.
pub const CHAIN_RETRY_SECS: u32 = 5;

/// Renders the chain-loader: it asks the boot server for this machine's script, identified by
/// its first NIC's MAC and its SMBIOS UUID, retrying for a while (a configuration that has just
/// become Ready may reach this replica's cache a moment after the BMC was told to boot), and
/// falls back to the next boot device when there is none.
pub fn render_chain_script(boot_server_url: &str) -> String {
    let base = boot_server_url.trim_end_matches('/');
    let chain = format!("chain {base}/ipxe?mac=${{net0/mac}}&uuid=${{uuid}}");
    let mut s = format!("#!ipxe\n{chain} || goto retry1\n");
    for attempt in 1..CHAIN_ATTEMPTS {
        let next = if attempt + 1 < CHAIN_ATTEMPTS {
            format!("retry{}", attempt + 1)
        } else {
            "none".to_string()
        };
        s.push_str(&format!(
            ":retry{attempt}\n\
             echo metal-provisioning: no boot configuration yet, retrying in {CHAIN_RETRY_SECS} s\n\
             sleep {CHAIN_RETRY_SECS}\n\
             {chain} || goto {next}\n"
        ));
    }
    s.push_str(
        ":none\n\
         echo metal-provisioning: no boot configuration for this machine\n\
         exit\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScriptSpec {
        ScriptSpec {
            kernel_url: "http://img/vmlinuz".into(),
            initrd_url: Some("http://img/initrd".into()),
            rootfs_url: Some("http://img/root.squashfs".into()),
            cmdline: "gl.url=${rootfs-url} gl.live=1 console=ttyS0".into(),
            ignition_url: Some("http://boot:8082/ignition/uuid-1".into()),
        }
    }

    #[test]
    fn server_script_boots_kernel_initrd_with_ignition() {
        let s = render_server_script(&spec()).unwrap();
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("set rootfs-url http://img/root.squashfs\n"));
        assert!(s.contains(
            "kernel http://img/vmlinuz initrd=initrd gl.url=${rootfs-url} gl.live=1 console=ttyS0 ignition.config.url=http://boot:8082/ignition/uuid-1 || goto failed\n"
        ));
        assert!(s.contains("initrd --name initrd http://img/initrd || goto failed\n"));
        assert!(s.contains("\nboot || goto failed\n"));
    }

    #[test]
    fn without_initrd_or_ignition_nothing_dangling() {
        let mut sp = spec();
        sp.initrd_url = None;
        sp.ignition_url = None;
        sp.cmdline = String::new();
        let s = render_server_script(&sp).unwrap();
        assert!(s.contains("kernel http://img/vmlinuz || goto failed\n"));
        assert!(!s.contains("initrd"));
        assert!(!s.contains("ignition"));
        assert_eq!(sp.full_cmdline(), "");
    }

    #[test]
    fn injection_is_rejected() {
        let mut sp = spec();
        sp.cmdline = "console=ttyS0\nshell".into();
        assert_eq!(render_server_script(&sp), Err(RenderError::BadCmdline));
        let mut sp = spec();
        sp.kernel_url = "http://img/vmlinuz shell".into();
        assert!(matches!(
            render_server_script(&sp),
            Err(RenderError::BadUrl { .. })
        ));
    }

    #[test]
    fn chain_script_passes_mac_and_uuid() {
        let s = render_chain_script("http://10.0.0.1:8082/");
        let chain = "chain http://10.0.0.1:8082/ipxe?mac=${net0/mac}&uuid=${uuid} || goto";
        assert_eq!(s.matches(chain).count(), CHAIN_ATTEMPTS as usize);
        assert!(s.contains(&format!("{chain} retry1\n")));
        assert!(s.contains(&format!("{chain} none\n")));
        assert_eq!(
            s.matches(&format!("sleep {CHAIN_RETRY_SECS}\n")).count(),
            CHAIN_ATTEMPTS as usize - 1
        );
        assert!(s.trim_end().ends_with(
            ":none\necho metal-provisioning: no boot configuration for this machine\nexit"
        ));
    }
}
