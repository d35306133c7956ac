//! Redfish error class → BMC `Ready` condition reason (upstream's reasons).

use api::constants::reasons;
use redfish::ErrorClass;

/// The `Ready=False` reason for a failed BMC call: upstream maps HTTP 401 to
/// `AuthenticationFailed`, 500 to `InternalServerError`, 503 (and unreachable) to
/// `ConnectionFailed`, anything else to `UnknownError`; the redfish error class refines this
/// (timeouts count as connection failures, other 5xx as internal errors).
pub fn ready_reason(class: ErrorClass, status: Option<u16>) -> &'static str {
    match (class, status) {
        (ErrorClass::AuthenticationFailed, _) => reasons::AUTHENTICATION_FAILED,
        (ErrorClass::Unreachable | ErrorClass::Timeout, _) => reasons::CONNECTION_FAILED,
        (_, Some(401 | 403)) => reasons::AUTHENTICATION_FAILED,
        (_, Some(503 | 429)) => reasons::CONNECTION_FAILED,
        (_, Some(500..=599)) => reasons::INTERNAL_SERVER_ERROR,
        (ErrorClass::Busy, _) => reasons::CONNECTION_FAILED,
        _ => reasons::UNKNOWN_ERROR,
    }
}

/// Whether a failure with this class is worth retrying soon (versus waiting for a spec or
/// secret change).
pub fn is_transient(class: ErrorClass) -> bool {
    class.is_transient()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_mapping() {
        assert_eq!(
            ready_reason(ErrorClass::AuthenticationFailed, Some(401)),
            "AuthenticationFailed"
        );
        assert_eq!(
            ready_reason(ErrorClass::Unreachable, None),
            "ConnectionFailed"
        );
        assert_eq!(ready_reason(ErrorClass::Timeout, None), "ConnectionFailed");
        assert_eq!(
            ready_reason(ErrorClass::Busy, Some(503)),
            "ConnectionFailed"
        );
        assert_eq!(
            ready_reason(ErrorClass::Busy, Some(500)),
            "InternalServerError"
        );
        assert_eq!(
            ready_reason(ErrorClass::Busy, Some(502)),
            "InternalServerError"
        );
        assert_eq!(
            ready_reason(ErrorClass::BadResponse, Some(200)),
            "UnknownError"
        );
        assert_eq!(
            ready_reason(ErrorClass::NotSupported, Some(404)),
            "UnknownError"
        );
        assert_eq!(ready_reason(ErrorClass::Internal, None), "UnknownError");
        assert_eq!(
            ready_reason(ErrorClass::Rejected, Some(403)),
            "AuthenticationFailed"
        );
    }
}
