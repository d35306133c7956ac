//! Errors of a reconcile, each with a short CamelCase reason for metrics and logs.

use crate::bmc::BmcError;

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Kubernetes API call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// A Redfish call failed.
    #[error("BMC: {0}")]
    Redfish(#[from] redfish::Error),
    /// The BMC cannot be used (missing object, secret, address, or backing off).
    #[error("BMC: {0}")]
    Bmc(#[from] BmcError),
}

impl ReconcileError {
    /// A CamelCase reason.
    pub fn reason(&self) -> String {
        match self {
            ReconcileError::Kube(_) => "KubernetesError".into(),
            ReconcileError::Redfish(e) => format!("BMC{:?}", e.class()),
            ReconcileError::Bmc(e) => e.reason().into(),
        }
    }
}

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("binding {what}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for registries could not be built.
    #[error("registry client: {0}")]
    Http(String),
    /// The server selector is not a label selector.
    #[error("invalid --server-selector {0:?}")]
    Selector(String),
    /// The boot token key could not be read or created.
    #[error(transparent)]
    TokenKey(#[from] crate::token::KeyError),
    /// The TLS certificate or key cannot be used.
    #[error("--tls-cert-file / --tls-key-file: {0}")]
    Tls(#[from] runtime::tls::TlsError),
    /// `--kill-at-step` was given inside a cluster.
    #[error(transparent)]
    KillHook(#[from] runtime::steps::InCluster),
}
