//! Metrics hooks: controllers observe every request without this crate depending on a metrics library.

use std::time::Duration;

use http::Method;

use crate::error::ErrorClass;

/// One finished HTTP request to a BMC (each retry, redirect and login is its own event).
#[derive(Debug, Clone)]
pub struct RequestEvent<'a> {
    /// BMC address (`host:port`).
    pub bmc: &'a str,
    /// HTTP method.
    pub method: &'a Method,
    /// Path with resource ids replaced by `{id}` (low cardinality, see [`path_template`]).
    pub path_template: &'a str,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Error class, when the request failed (transport error or error status).
    pub class: Option<ErrorClass>,
    /// Time from sending to having the whole body.
    pub latency: Duration,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
}

/// Receives [`RequestEvent`]s; implement it to feed Prometheus histograms or counters. Called inline on
/// the request path, so it must be cheap and must not block.
pub trait Observer: Send + Sync + 'static {
    /// Called once per HTTP request.
    fn on_request(&self, event: &RequestEvent<'_>);
}

impl<F> Observer for F
where
    F: Fn(&RequestEvent<'_>) + Send + Sync + 'static,
{
    fn on_request(&self, event: &RequestEvent<'_>) {
        self(event)
    }
}

/// Segments after which the next segment is a resource id (collections of the Redfish tree).
const COLLECTIONS: &[&str] = &[
    "Systems",
    "Managers",
    "Chassis",
    "Processors",
    "Memory",
    "EthernetInterfaces",
    "NetworkInterfaces",
    "NetworkAdapters",
    "NetworkDeviceFunctions",
    "NetworkPorts",
    "Ports",
    "Storage",
    "Drives",
    "Volumes",
    "Controllers",
    "SimpleStorage",
    "Accounts",
    "Roles",
    "Sessions",
    "Tasks",
    "Jobs",
    "Subscriptions",
    "FirmwareInventory",
    "SoftwareInventory",
    "VirtualMedia",
    "LogServices",
    "Entries",
    "Certificates",
    "Registries",
    "BootOptions",
    "PCIeDevices",
    "PCIeFunctions",
    "DellAttributes",
    "TaskMonitors",
    "Sensors",
    "PowerSupplies",
    "Fans",
];

/// Turns a request path into a low-cardinality template for metrics labels:
/// `/redfish/v1/Systems/System.Embedded.1/Processors/CPU.1?$expand=.` becomes
/// `/redfish/v1/Systems/{id}/Processors/{id}`.
pub fn path_template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut out = String::with_capacity(path.len());
    let mut prev_is_collection = false;
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if prev_is_collection {
            out.push_str("{id}");
            prev_is_collection = false;
        } else {
            out.push_str(seg);
            prev_is_collection = COLLECTIONS.contains(&seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            path_template(
                "/redfish/v1/Systems/System.Embedded.1/Processors/CPU.1?$expand=.($levels=1)"
            ),
            "/redfish/v1/Systems/{id}/Processors/{id}"
        );
        assert_eq!(path_template("/redfish/v1/Systems"), "/redfish/v1/Systems");
        assert_eq!(
            path_template("/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"),
            "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"
        );
        assert_eq!(
            path_template("/redfish/v1/SessionService/Sessions/abc123"),
            "/redfish/v1/SessionService/Sessions/{id}"
        );
        assert_eq!(path_template("/redfish/v1/"), "/redfish/v1");
        assert_eq!(path_template(""), "/");
    }
}
