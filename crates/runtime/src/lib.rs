//! The shared runtime of the metal controllers: everything each deployable would otherwise
//! repeat. A controller's `main` parses [`flags::CommonArgs`], calls [`logging::init`], starts the
//! [`admin`] server with a [`metrics::Metrics`] registry and a [`admin::Readiness`] gate, waits for
//! leadership from [`lease`], and runs its reconcilers until [`shutdown`] or loss of the lease.
//! Controllers share watch caches through [`cache::SharedWatch`]; those that talk to BMCs share Redfish clients through [`bmc::BmcClients`].

pub mod admin;
pub mod backoff;
pub mod bmc;
pub mod cache;
pub mod checkpoint;
pub mod events;
pub mod flags;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod shards;
pub mod shutdown;
pub mod steps;
pub mod tls;
