//! The MAC-prefix database (upstream `--mac-prefixes-file`, `internal/api/macdb`): which BMC
//! model a MAC address belongs to, how to reach it and its default credentials.

use serde::{Deserialize, Deserializer};

/// Why the database could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MacDbError {
    /// The file could not be read.
    #[error("reading MAC-prefix database {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is invalid.
    #[error("parsing MAC-prefix database: {0}")]
    Parse(#[from] serde_yaml::Error),
}

/// The whole database.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MacDb {
    /// Entries, matched in order.
    #[serde(default)]
    pub mac_prefixes: Vec<MacPrefix>,
}

/// One entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MacPrefix {
    /// Hex prefix of the MAC (colons optional; YAML may write it as a number, e.g. `23`).
    #[serde(deserialize_with = "string_or_number")]
    pub mac_prefix: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: String,
    /// Protocol name (`Redfish`, `RedfishLocal`, `RedfishWithRegistryPatch`).
    #[serde(default)]
    pub protocol: String,
    /// `http` or `https` (empty: the controller default).
    #[serde(default)]
    pub protocol_scheme: String,
    /// Port of the management API.
    #[serde(default)]
    pub port: i32,
    /// Device type; only `bmc` entries are used.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Credentials to try, in order.
    #[serde(default)]
    pub default_credentials: Vec<Credential>,
    /// Console access.
    #[serde(default)]
    pub console: Option<Console>,
}

/// A default login. `Debug` hides the password.
#[derive(Clone, Default, Deserialize, PartialEq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Console access of a BMC model.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Console {
    /// `SSH`, `IPMI`, `SSHLenovo`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Port.
    #[serde(default)]
    pub port: i32,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        N(u64),
    }
    Ok(match V::deserialize(d)? {
        V::S(s) => s,
        V::N(n) => n.to_string(),
    })
}

fn hex_only(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_lowercase()
}

impl MacDb {
    /// Parses the YAML document.
    pub fn parse(yaml: &str) -> Result<Self, MacDbError> {
        Ok(serde_yaml::from_str(yaml)?)
    }

    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Self, MacDbError> {
        let text = std::fs::read_to_string(path).map_err(|source| MacDbError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The first `bmc` entry whose prefix starts the MAC (separators and case ignored).
    pub fn find(&self, mac: &str) -> Option<&MacPrefix> {
        let mac = hex_only(mac);
        self.mac_prefixes.iter().find(|m| {
            let p = hex_only(&m.mac_prefix);
            !p.is_empty() && m.type_.eq_ignore_ascii_case("bmc") && mac.starts_with(&p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = r#"
macPrefixes:
- macPrefix: 23
  manufacturer: Foo
  protocol: RedfishWithRegistryPatch
  port: 8000
  type: bmc
  defaultCredentials:
    - username: foo
      password: bar
  console:
    type: SSH
    port: 22
- macPrefix: "3C:EC:EF"
  manufacturer: Supermicro
  protocol: Redfish
  protocolScheme: https
  port: 443
  type: bmc
  defaultCredentials:
    - username: ADMIN
      password: wrong
    - username: ADMIN
      password: ADMIN
- macPrefix: "aabbcc"
  type: switch
"#;

    #[test]
    fn parses_upstream_format_and_matches_prefixes() {
        let db = MacDb::parse(DB).unwrap();
        assert_eq!(db.mac_prefixes.len(), 3);
        assert_eq!(db.mac_prefixes[0].mac_prefix, "23");
        let m = db.find("23:11:22:33:44:55").unwrap();
        assert_eq!(m.manufacturer, "Foo");
        assert_eq!(m.console.as_ref().unwrap().port, 22);
        let m = db.find("3c:ec:ef:01:02:03").unwrap();
        assert_eq!(m.protocol_scheme, "https");
        assert_eq!(m.default_credentials.len(), 2);
        assert!(
            db.find("aa:bb:cc:00:00:01").is_none(),
            "only bmc entries match"
        );
        assert!(db.find("42:00:00:00:00:00").is_none());
        assert!(!format!("{:?}", m.default_credentials).contains("wrong"));
    }

    #[test]
    fn empty_and_invalid() {
        assert!(
            MacDb::parse("macPrefixes: []")
                .unwrap()
                .find("00")
                .is_none()
        );
        assert!(MacDb::parse("macPrefixes: 5").is_err());
    }
}
