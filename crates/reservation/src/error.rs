//! Reconcile errors, each with a short CamelCase reason for the
//! `metal_reconcile_errors_total{reason}` metric (a bounded set, never free text).

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, e.g. `patching server s1`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A compare-and-swap write lost to a concurrent writer and could not be retried now.
    #[error("write conflict on {what}; retrying")]
    Conflict {
        /// The object written.
        what: String,
    },
    /// Several servers were tried for a claim and all were taken concurrently.
    #[error("claim {claim}: every candidate was taken concurrently; retrying")]
    Contention {
        /// `namespace/name` of the claim.
        claim: String,
    },
    /// An API call did not answer in time (its outcome is unknown).
    #[error("{action}: timed out")]
    Timeout {
        /// What was being done.
        action: String,
    },
    /// The state machine forbids a transition this controller was about to write.
    #[error("server {server}: transition {from} -> {to} is not reservation's to write")]
    Transition {
        /// The server.
        server: String,
        /// Current state.
        from: String,
        /// Wanted state.
        to: String,
    },
    /// An object the controller needs is missing a field the API server always sets.
    #[error("{what} has no {field}")]
    MissingField {
        /// The object.
        what: String,
        /// The field.
        field: &'static str,
    },
    /// Building a request body failed.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// The object.
        what: String,
        /// The serializer error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Short CamelCase reason for metrics.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) if s.code == 404 => "NotFound",
                kube::Error::Api(s) if s.code == 409 => "Conflict",
                kube::Error::Api(s) if s.code == 422 => "Invalid",
                kube::Error::Api(s) if s.code == 403 => "Forbidden",
                kube::Error::Api(_) => "ApiError",
                _ => "ClientError",
            },
            Error::Conflict { .. } => "Conflict",
            Error::Contention { .. } => "BindContention",
            Error::Timeout { .. } => "Timeout",
            Error::Transition { .. } => "TransitionNotAllowed",
            Error::MissingField { .. } => "MissingField",
            Error::Serialize { .. } => "Serialize",
        }
    }

    /// Wraps a client error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }
}

/// The HTTP status code of a client error, if the API server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_camel_case_reason() {
        let api = |code| {
            Error::kube(
                "x",
                kube::Error::Api(Box::new(kube::core::Status {
                    code,
                    ..Default::default()
                })),
            )
        };
        let errors = [
            api(404),
            api(409),
            api(422),
            api(403),
            api(500),
            Error::Conflict { what: "s".into() },
            Error::Contention { claim: "c".into() },
            Error::Timeout { action: "a".into() },
            Error::Transition {
                server: "s".into(),
                from: "Initial".into(),
                to: "Reserved".into(),
            },
            Error::MissingField {
                what: "s".into(),
                field: "resourceVersion",
            },
            Error::Serialize {
                what: "s".into(),
                source: serde_json::from_str::<u8>("x").unwrap_err(),
            },
        ];
        for e in &errors {
            let r = e.metric_reason();
            assert!(api::conditions::is_valid_reason(r), "{r}");
            assert!(r.chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(errors[0].metric_reason(), "NotFound");
        assert_eq!(
            status_code(&kube::Error::LinesCodecMaxLineLengthExceeded),
            None
        );
    }
}
