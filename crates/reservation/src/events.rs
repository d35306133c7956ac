//! Kubernetes Events for what an operator wants to see in `kubectl describe serverclaim`.
//!
//! Events are published in the background: a slow or failing event write never delays binding.

pub use runtime::events::Events;

/// Event reasons reservation publishes on ServerClaims.
pub mod reasons {
    /// The claim was bound to a server.
    pub const BOUND: &str = "Bound";
    /// The claim is unbound, or the reason why changed (the note says why).
    pub const UNBOUND: &str = "Unbound";
    /// A server the claim tried was taken by a concurrent writer; the next candidate is tried.
    pub const BIND_CONFLICT: &str = "BindConflict";
    /// The claim's server was released (Retain → Released, Recycle → Available).
    pub const RELEASED: &str = "Released";
}
