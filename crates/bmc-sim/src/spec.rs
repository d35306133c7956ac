//! The rack description: how many BMCs, from which templates, on which addresses, with which knobs.
//!
//! A [`RackSpec`] is what [`crate::Simulator::start`] takes; the binary reads it from YAML
//! (`--config rack.yaml`) or builds it from flags (`--count 20`). Example:
//!
//! ```yaml
//! base_address: 127.0.1.1   # first BMC; the next ones count up, skipping .0 and .255
//! port: 8443                # one port for all BMCs; 0 picks a free one
//! tls: true
//! admin_address: 127.0.0.1:9100
//! identity: keep_first      # keep_first | keep_all | derive_all
//! groups:
//!   - count: 18
//!     template: default     # built-in template, or a DMTF mockup directory
//!     username: admin
//!     password: secret      # omitted: a random password per BMC (see the credentials file)
//!     knobs: { power_delay_ms: 2000 }
//!   - count: 2
//!     template: /work/shared/fixtures/redfish/dell-poweredge-r750
//!     systems: 1
//!     knobs: { latency_ms: 150, jitter_ms: 100 }
//! ```

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::boot::BootHook;
use crate::error::SimError;
use crate::knobs::Knobs;

/// The whole simulated rack.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RackSpec {
    /// Address of the first BMC; must be in 127.0.0.0/8. Later BMCs take the next addresses,
    /// skipping those whose last octet is 0 or 255.
    pub base_address: Ipv4Addr,
    /// The TCP port every BMC listens on. `0` picks one port that is free on every BMC address.
    pub port: u16,
    /// Serve HTTPS with certificates from a generated CA (`true`) or plain HTTP (`false`).
    pub tls: bool,
    /// Where to write the generated CA certificate (PEM); not written when unset.
    pub ca_path: Option<PathBuf>,
    /// Where to write the credentials file (YAML, mode 0600); not written when unset.
    pub credentials_path: Option<PathBuf>,
    /// Address of the admin HTTP API (plain HTTP); no admin API when unset. Port 0 picks one.
    pub admin_address: Option<SocketAddr>,
    /// Which BMCs keep the template's identity (UUIDs, serial numbers, MAC addresses).
    pub identity: IdentityMode,
    /// Added to the BMC index before deriving identities, so two racks started side by side can
    /// have distinct identities.
    pub identity_seed: u32,
    /// Boot server URL handed to the boot hook when a system boots from the network.
    pub boot_server: Option<String>,
    /// The BMCs, group by group; indices count on across groups.
    pub groups: Vec<GroupSpec>,
    /// Called every time a simulated system powers on; see [`BootHook`]. Not part of the YAML.
    #[serde(skip)]
    pub boot_hook: Option<Arc<dyn BootHook>>,
}

impl Default for RackSpec {
    fn default() -> Self {
        Self {
            base_address: Ipv4Addr::new(127, 0, 1, 1),
            port: 8443,
            tls: true,
            ca_path: None,
            credentials_path: None,
            admin_address: None,
            identity: IdentityMode::KeepFirst,
            identity_seed: 0,
            boot_server: None,
            groups: vec![GroupSpec::default()],
            boot_hook: None,
        }
    }
}

impl fmt::Debug for RackSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RackSpec")
            .field("base_address", &self.base_address)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ca_path", &self.ca_path)
            .field("credentials_path", &self.credentials_path)
            .field("admin_address", &self.admin_address)
            .field("identity", &self.identity)
            .field("identity_seed", &self.identity_seed)
            .field("boot_server", &self.boot_server)
            .field("groups", &self.groups)
            .field("boot_hook", &self.boot_hook.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

impl RackSpec {
    /// A rack of `count` BMCs from the built-in template with default settings.
    pub fn with_count(count: usize) -> Self {
        Self {
            groups: vec![GroupSpec {
                count,
                ..GroupSpec::default()
            }],
            ..Self::default()
        }
    }

    /// Parses a YAML rack description.
    pub fn from_yaml(text: &str) -> Result<Self, SimError> {
        let spec: RackSpec = serde_yaml::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Total number of BMCs.
    pub fn count(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Checks addresses, counts and knobs.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.base_address.octets()[0] != 127 {
            return Err(SimError::InvalidSpec(format!(
                "base_address {} is not a loopback address (127.0.0.0/8)",
                self.base_address
            )));
        }
        let last = self.base_address.octets()[3];
        if last == 0 || last == 255 {
            return Err(SimError::InvalidSpec(
                "base_address must not end in .0 or .255".into(),
            ));
        }
        let count = self.count();
        if count == 0 {
            return Err(SimError::InvalidSpec("the rack has no BMC".into()));
        }
        if bmc_address(self.base_address, count - 1).is_none() {
            return Err(SimError::InvalidSpec(format!(
                "{count} BMCs starting at {} do not fit in 127.0.0.0/8",
                self.base_address
            )));
        }
        for g in &self.groups {
            g.knobs.validate()?;
            if g.systems == Some(0) {
                return Err(SimError::InvalidSpec("systems must be at least 1".into()));
            }
            if g.username.is_empty() || g.username.contains(':') {
                return Err(SimError::InvalidSpec(
                    "username must be non-empty without ':'".into(),
                ));
            }
        }
        if let Some(url) = &self.boot_server {
            url::Url::parse(url)
                .map_err(|e| SimError::InvalidSpec(format!("boot_server {url:?}: {e}")))?;
        }
        Ok(())
    }
}

/// The address of the BMC with this index: `base` counted up `index` times, skipping addresses
/// whose last octet is 0 or 255. `None` when it would leave 127.0.0.0/8.
pub fn bmc_address(base: Ipv4Addr, index: usize) -> Option<Ipv4Addr> {
    let b = u32::from(base);
    let last = (b & 0xff) as u64;
    if last == 0 || last == 255 {
        return None;
    }
    let pos = last - 1 + index as u64;
    let upper = (b >> 8) as u64 + pos / 254;
    let octet = pos % 254 + 1;
    if upper >> 16 != 127 {
        return None;
    }
    Some(Ipv4Addr::from(((upper << 8) | octet) as u32))
}

/// A group of BMCs that share a template, credentials and knobs.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSpec {
    /// How many BMCs.
    pub count: usize,
    /// Which Redfish tree each BMC serves.
    pub template: TemplateSource,
    /// Systems per BMC. Extra systems beyond the template's own are copies of its first system
    /// (ids with the trailing number counted up, e.g. `1` → `2`, `System.Embedded.1` →
    /// `System.Embedded.2`). Default: the template's own systems.
    pub systems: Option<usize>,
    /// The user name of the administrator account on each BMC.
    pub username: String,
    /// Its password; `None` generates a random one per BMC.
    pub password: Option<Secret>,
    /// Knobs each BMC of the group starts with.
    pub knobs: Knobs,
}

impl Default for GroupSpec {
    fn default() -> Self {
        Self {
            count: 1,
            template: TemplateSource::default(),
            systems: None,
            username: "admin".into(),
            password: None,
            knobs: Knobs::default(),
        }
    }
}

impl fmt::Debug for GroupSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSpec")
            .field("count", &self.count)
            .field("template", &self.template)
            .field("systems", &self.systems)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("knobs", &self.knobs)
            .finish()
    }
}

/// Which Redfish tree a BMC serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TemplateSource {
    /// A template compiled into the simulator; only `default` exists.
    Builtin(String),
    /// A DMTF mockup directory (`redfish/v1/.../index.json`, or the service root's `index.json`
    /// directly in the directory).
    Path(PathBuf),
}

impl Default for TemplateSource {
    fn default() -> Self {
        TemplateSource::Builtin("default".into())
    }
}

impl TemplateSource {
    /// Parses the YAML/flag form: `default` or `builtin:NAME` for built-ins, anything else a path.
    pub fn parse(s: &str) -> Self {
        if s == "default" {
            TemplateSource::Builtin("default".into())
        } else if let Some(name) = s.strip_prefix("builtin:") {
            TemplateSource::Builtin(name.into())
        } else {
            TemplateSource::Path(PathBuf::from(s))
        }
    }
}

impl fmt::Display for TemplateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateSource::Builtin(n) if n == "default" => f.write_str("default"),
            TemplateSource::Builtin(n) => write!(f, "builtin:{n}"),
            TemplateSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Serialize for TemplateSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TemplateSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(TemplateSource::parse(&s))
    }
}

/// Which BMCs keep the template's identity.
///
/// The *identity number* of a BMC is `identity_seed + index`. UUIDs, serial numbers (and Dell
/// service tags) and MAC addresses of the template are rewritten deterministically from it; the
/// rule is in [`crate::identity`].
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// The BMC with identity number 0 serves the template unchanged; all others derive.
    #[default]
    KeepFirst,
    /// Every BMC serves the template's identity unchanged (copies of one machine).
    KeepAll,
    /// Every BMC derives, including number 0.
    DeriveAll,
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_zero_and_broadcast_octets() {
        let base = Ipv4Addr::new(127, 0, 1, 1);
        assert_eq!(bmc_address(base, 0), Some(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(bmc_address(base, 253), Some(Ipv4Addr::new(127, 0, 1, 254)));
        assert_eq!(bmc_address(base, 254), Some(Ipv4Addr::new(127, 0, 2, 1)));
        assert_eq!(
            bmc_address(base, 9_999),
            Some(Ipv4Addr::new(127, 0, 40, 94))
        );
        let mid = Ipv4Addr::new(127, 10, 0, 200);
        assert_eq!(bmc_address(mid, 54), Some(Ipv4Addr::new(127, 10, 0, 254)));
        assert_eq!(bmc_address(mid, 55), Some(Ipv4Addr::new(127, 10, 1, 1)));
        assert_eq!(bmc_address(Ipv4Addr::new(127, 255, 255, 254), 1), None);
        assert_eq!(bmc_address(Ipv4Addr::new(127, 0, 0, 0), 0), None);
    }

    #[test]
    fn yaml_round_trip_and_defaults() {
        let spec = RackSpec::from_yaml(
            "base_address: 127.20.0.1\nport: 0\ntls: false\ngroups:\n  - count: 3\n    password: pw\n    knobs: {latency_ms: 5}\n  - count: 2\n    template: /tmp/tree\n    systems: 2\n",
        )
        .unwrap();
        assert_eq!(spec.count(), 5);
        assert_eq!(spec.groups[0].template, TemplateSource::default());
        assert_eq!(spec.groups[0].knobs.latency_ms, 5);
        assert_eq!(spec.groups[0].username, "admin");
        assert_eq!(
            spec.groups[1].template,
            TemplateSource::Path("/tmp/tree".into())
        );
        assert!(
            !format!("{spec:?}").contains("pw\""),
            "password leaked in Debug"
        );
        let text = serde_yaml::to_string(&spec).unwrap();
        let again = RackSpec::from_yaml(&text).unwrap();
        assert_eq!(again.count(), 5);
    }

    #[test]
    fn invalid_specs_are_rejected() {
        assert!(RackSpec::from_yaml("base_address: 10.0.0.1").is_err());
        assert!(RackSpec::from_yaml("groups: []").is_err());
        assert!(RackSpec::from_yaml("bogus: 1").is_err());
        assert!(RackSpec::from_yaml("groups: [{count: 1, knobs: {error_rate: 2}}]").is_err());
    }
}
