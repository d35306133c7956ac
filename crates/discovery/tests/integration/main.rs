//! Integration tests: discovery in-process against the real control plane (metal-testenv) and
//! the BMC simulator. Each test uses its own simulator address range (127.6x.0.1) and its own
//! run label, which discovery's `--bmc-selector` scopes to.

mod support;

mod accounts;
mod bmc_conditions;
mod cost;
mod inband;
mod onboard;
mod process;
mod rbac;
mod safety;
mod sharding;
mod tls;
