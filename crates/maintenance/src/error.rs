//! Reconcile errors of the maintenance controllers, each with a CamelCase reason for metrics.

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A Kubernetes API call did not finish in time.
    #[error("{action}: timed out")]
    Timeout {
        /// What was being done.
        action: String,
    },
    /// A compare-and-swap write lost against a concurrent writer; the next reconcile rereads.
    #[error("{what} changed concurrently")]
    Conflict {
        /// The object written.
        what: String,
    },
    /// The BMC did not answer a request a step needs; the step is retried.
    #[error("{action}: {message}")]
    Bmc {
        /// What was being done.
        action: String,
        /// The BMC client's error.
        message: String,
    },
    /// The object's spec cannot be acted upon (the schema let it through).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The object lacks a field the API server always sets.
    #[error("{what} has no {field}")]
    MissingField {
        /// The object.
        what: String,
        /// The field.
        field: &'static str,
    },
}

impl Error {
    /// A Kubernetes client error while doing `action`.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// A short CamelCase reason (the `reason` label of `metal_reconcile_errors_total`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubeError",
            Error::Timeout { .. } => "KubeTimeout",
            Error::Conflict { .. } => "Conflict",
            Error::Bmc { .. } => "BMCError",
            Error::MissingField { .. } => "MissingField",
            Error::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

/// The HTTP status of an API error, if the API server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
