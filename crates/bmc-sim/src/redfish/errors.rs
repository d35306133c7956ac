//! Redfish-format error responses (`{"error": {..., "@Message.ExtendedInfo": [...]}}`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

/// The Base message registry version used in `MessageId`s.
pub(crate) const BASE: &str = "Base.1.12";

fn resolution(key: &str) -> &'static str {
    match key {
        "PropertyUnknown" => {
            "Remove the unknown property from the request body and resubmit the request if the operation failed."
        }
        "PropertyNotWritable" => {
            "Remove the property from the request body and resubmit the request if the operation failed."
        }
        "PropertyValueTypeError"
        | "PropertyValueFormatError"
        | "PropertyValueNotInList"
        | "PropertyValueOutOfRange" => {
            "Correct the value for the property in the request body and resubmit the request if the operation failed."
        }
        "PropertyMissing" | "CreateFailedMissingReqProperties" => {
            "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed."
        }
        "ActionParameterMissing"
        | "ActionParameterValueTypeError"
        | "ActionParameterValueFormatError"
        | "ActionParameterNotSupported"
        | "ActionParameterValueNotInList" => {
            "Correct the parameter in the request body and resubmit the request if the operation failed."
        }
        "MalformedJSON" | "UnrecognizedRequestBody" => {
            "Ensure that the request body is valid JSON and resubmit the request."
        }
        "ResourceNotFound" | "ResourceMissingAtURI" => {
            "Place a valid resource at the URI or correct the URI and resubmit the request."
        }
        "NoValidSession" => "Establish a session before attempting any operations.",
        "InsufficientPrivilege" => {
            "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed."
        }
        "SessionLimitExceeded" => {
            "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions (if supported)."
        }
        "ServiceTemporarilyUnavailable" => {
            "Wait for the indicated retry duration and retry the operation."
        }
        "PreconditionFailed" => "Try the operation again using the appropriate ETag.",
        "OperationNotAllowed" => {
            "Do not attempt this operation with this HTTP method on this resource."
        }
        "ResourceInUse" => "Remove the condition and resubmit the request if the operation failed.",
        "ResourceAlreadyExists" => {
            "Do not repeat the create operation as the resource has already been created."
        }
        "CouldNotEstablishConnection"
        | "ResourceAtUriUnauthorized"
        | "SourceDoesNotSupportProtocol" => {
            "Ensure that the URI contains a valid and accessible node name, IP address, or RFC-3986-conformant URI."
        }
        "ActionNotSupported" => {
            "The action supplied cannot be resubmitted to the implementation.  Perhaps the action was invalid, the wrong resource was the target or the implementation documentation may be of assistance."
        }
        "QueryNotSupported" => {
            "Remove the query parameters and resubmit the request if the operation failed."
        }
        "InternalError" | "GeneralError" => {
            "Resubmit the request.  If the problem persists, consider resetting the service."
        }
        _ => "None.",
    }
}

/// One `@Message.ExtendedInfo` entry.
pub(crate) fn message(key: &str, text: &str, args: &[String]) -> Value {
    let severity = match key {
        "InternalError"
        | "ServiceTemporarilyUnavailable"
        | "SessionLimitExceeded"
        | "CouldNotEstablishConnection" => "Critical",
        _ => "Warning",
    };
    json!({
        "@odata.type": "#Message.v1_1_1.Message",
        "MessageId": format!("{BASE}.{key}"),
        "Message": text,
        "MessageArgs": args,
        "Severity": severity,
        "MessageSeverity": severity,
        "Resolution": resolution(key),
    })
}

/// An error response with one message.
pub(crate) fn error(
    status: StatusCode,
    key: &str,
    text: &str,
    args: &[String],
) -> Response<Full<Bytes>> {
    error_many(status, vec![message(key, text, args)])
}

/// An error response with several messages.
pub(crate) fn error_many(status: StatusCode, messages: Vec<Value>) -> Response<Full<Bytes>> {
    let (code, text) = if messages.len() == 1 {
        (
            messages[0]["MessageId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            messages[0]["Message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    } else {
        (
            format!("{BASE}.GeneralError"),
            "A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.".to_string(),
        )
    };
    let body = json!({"error": {"code": code, "message": text, "@Message.ExtendedInfo": messages}});
    json_response(status, Bytes::from(body.to_string()))
}

/// A JSON response with the Redfish headers.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert("odata-version", HeaderValue::from_static("4.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `401` with a `WWW-Authenticate` challenge.
pub(crate) fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "NoValidSession",
        "There is no valid session established with the implementation.",
        &[],
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Redfish\""),
    );
    r
}

/// `403`.
pub(crate) fn forbidden() -> Response<Full<Bytes>> {
    error(
        StatusCode::FORBIDDEN,
        "InsufficientPrivilege",
        "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.",
        &[],
    )
}

/// `404` for a path.
pub(crate) fn not_found(path: &str) -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        "ResourceMissingAtURI",
        &format!("The resource at the URI {path} was not found."),
        &[path.to_string()],
    )
}

/// `405` with the allowed methods.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "OperationNotAllowed",
        "The HTTP method is not allowed on this resource.",
        &[],
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// `400` for a request body that is not a JSON object.
pub(crate) fn malformed() -> Response<Full<Bytes>> {
    error(
        StatusCode::BAD_REQUEST,
        "MalformedJSON",
        "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
        &[],
    )
}

/// `400` for a missing property or action parameter.
pub(crate) fn missing(name: &str, action: Option<&str>) -> Response<Full<Bytes>> {
    match action {
        Some(a) => error(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            &format!(
                "The action {a} requires the parameter {name} to be present in the request body."
            ),
            &[a.to_string(), name.to_string()],
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            &format!(
                "The property {name} is a required property and must be included in the request."
            ),
            &[name.to_string()],
        ),
    }
}

/// `400` for an action parameter with a bad value.
pub(crate) fn bad_parameter(action: &str, name: &str, value: &Value) -> Response<Full<Bytes>> {
    error(
        StatusCode::BAD_REQUEST,
        "ActionParameterValueNotInList",
        &format!(
            "The value '{value}' for the parameter {name} in the action {action} is not in the list of acceptable values."
        ),
        &[value.to_string(), name.to_string(), action.to_string()],
    )
}

/// `409` for a request that conflicts with the current state.
pub(crate) fn conflict(text: &str) -> Response<Full<Bytes>> {
    error(StatusCode::CONFLICT, "ResourceInUse", text, &[])
}
