//! Pure decision and mapping logic, unit-tested without a client: error class → condition
//! reason, Redfish inventory → Server status, probe report → network interfaces, MAC-prefix
//! matching, the Server state decisions, names and the discovery ignition, passwords.

pub mod autoreset;
pub mod ignition;
pub mod inventory;
pub mod macdb;
pub mod merge;
pub mod password;
pub mod reasons;
pub mod state;
