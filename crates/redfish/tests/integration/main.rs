//! Integration tests of the client against the in-test static Redfish server (tests/support): transport
//! faults, authentication, every operation on the trimmed vendor trees, exact inventories of the real
//! trees, and TLS.

#![allow(missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod faults;
mod ops;
mod tls;
mod trees;

use std::path::PathBuf;
use std::time::Duration;

use redfish::{BmcEndpoint, Client, ClientOptions, RetryPolicy};
use support::TreeServer;

/// Tree names and their system paths.
pub const DELL: &str = "dell-poweredge-r750";
pub const SMC: &str = "supermicro-sys-821ge";
pub const DMTF: &str = "dmtf-public-rackmount1";
pub const DELL_SYS: &str = "/redfish/v1/Systems/System.Embedded.1";
pub const SMC_SYS: &str = "/redfish/v1/Systems/1";
pub const DMTF_SYS: &str = "/redfish/v1/Systems/437XR1138R2";

/// Options with short timers so that fault tests stay fast.
pub fn fast() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(3),
        operation_timeout: Duration::from_secs(15),
        poll_interval: Duration::from_millis(30),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        ..ClientOptions::default()
    }
}

/// A trimmed fixture tree.
pub fn tree(name: &str) -> PathBuf {
    support::fixtures_dir().join(name)
}

/// A client for a test server (trusting its CA when it speaks TLS).
pub fn client(server: &TreeServer, opts: ClientOptions) -> Client {
    let mut ep = BmcEndpoint::parse(&server.url()).unwrap();
    if let Some(ca) = &server.ca_pem {
        ep = ep.with_ca_bundle_pem(ca.as_bytes()).unwrap();
    }
    Client::new(ep, server.credentials(), opts).unwrap()
}

/// Starts a server on a trimmed tree with default options.
pub fn serve(name: &str) -> TreeServer {
    TreeServer::start(tree(name), support::ServerOptions::default())
}
