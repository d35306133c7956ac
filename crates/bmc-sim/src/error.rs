//! The library's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why starting or controlling the simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A template directory could not be read.
    #[error("cannot read template {path}: {source}")]
    TemplateIo {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A template is not a usable Redfish tree.
    #[error("invalid template {name}: {reason}")]
    TemplateInvalid {
        /// The template's name or path.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The rack description is inconsistent.
    #[error("invalid rack spec: {0}")]
    InvalidSpec(String),
    /// The rack description could not be parsed.
    #[error("cannot parse rack spec: {0}")]
    SpecParse(#[from] serde_yaml::Error),
    /// A listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address that failed.
        addr: SocketAddr,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No single port was free on every BMC address.
    #[error("no port free on all {count} BMC addresses after {attempts} attempts")]
    NoCommonPort {
        /// How many addresses had to share the port.
        count: usize,
        /// How many ports were tried.
        attempts: usize,
    },
    /// Certificates could not be generated or loaded.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A file the simulator writes (CA, credentials) could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No BMC has that index.
    #[error("no BMC with index {0}")]
    NoSuchBmc(usize),
    /// The BMC has no system with that id.
    #[error("BMC {index} has no system {system}")]
    NoSuchSystem {
        /// The BMC index.
        index: usize,
        /// The system id asked for.
        system: String,
    },
    /// The knobs are out of range.
    #[error("invalid knobs: {0}")]
    InvalidKnobs(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = SimError> = std::result::Result<T, E>;
