//! Reconcile errors, one variant per failure reason; [`Error::reason`] is the metric label.

/// Why a reconcile (or a registry request) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A BMC call failed.
    #[error("BMC: {0}")]
    Redfish(#[from] redfish::Error),
    /// The BMC's connection parameters are unusable.
    #[error("{0}")]
    Resolve(#[from] runtime::bmc::ResolveError),
    /// An object this one needs does not exist (yet).
    #[error("{kind} {name} not found")]
    Missing {
        /// Kind of the missing object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The side-effect guard refused a BMC side effect (the server's state belongs to another
    /// controller, or the object is ignored).
    #[error("refused {effect} on server {server}: {why}")]
    Refused {
        /// The effect.
        effect: &'static str,
        /// The server.
        server: String,
        /// Why.
        why: String,
    },
    /// A `status.state` write lost against a concurrent writer (resourceVersion precondition).
    #[error("state write for {0} conflicted; will re-read")]
    Conflict(String),
    /// The reconcile ran past `--reconcile-timeout`.
    #[error("reconcile exceeded its deadline")]
    Deadline,
    /// The configuration does not allow the requested operation.
    #[error("configuration: {0}")]
    Config(String),
    /// Encoding or decoding failed.
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A short CamelCase reason for metrics (bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(_) => "KubeApi",
            Error::Redfish(e) => e.class().as_str(),
            Error::Resolve(e) => e.reason(),
            Error::Missing { .. } => "Missing",
            Error::Refused { .. } => "SideEffectRefused",
            Error::Conflict(_) => "Conflict",
            Error::Deadline => "Deadline",
            Error::Config(_) => "Configuration",
            Error::Json(_) => "Serialization",
        }
    }

    /// Whether this is an API conflict (lost optimistic-concurrency race): retry soon.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
            || matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a kube error is "not found".
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded_words() {
        let e = Error::Missing {
            kind: "BMC",
            name: "x".into(),
        };
        assert_eq!(e.reason(), "Missing");
        assert!(Error::Conflict("s".into()).is_conflict());
        assert_eq!(Error::Deadline.reason(), "Deadline");
    }
}
