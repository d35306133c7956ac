//! Kubernetes Events for what an operator wants to see in `kubectl describe serverclaim`.
//!
//! Events are published in the background: a slow or failing event write never delays binding.

use api::serverclaim::ServerClaim;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

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

/// Publishes events as the reservation controller.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// A publisher reporting as `metal-reservation`, instance `identity`.
    pub fn new(client: kube::Client, identity: &str) -> Self {
        Self {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: crate::writes::FIELD_MANAGER.to_string(),
                    instance: Some(identity.to_string()),
                },
            ),
        }
    }

    /// Publishes a Normal event about `claim` in the background.
    pub fn normal(&self, claim: &ServerClaim, reason: &'static str, note: String) {
        self.publish(claim, EventType::Normal, reason, note);
    }

    /// Publishes a Warning event about `claim` in the background.
    pub fn warning(&self, claim: &ServerClaim, reason: &'static str, note: String) {
        self.publish(claim, EventType::Warning, reason, note);
    }

    fn publish(&self, claim: &ServerClaim, type_: EventType, reason: &'static str, note: String) {
        let recorder = self.recorder.clone();
        let reference = claim.object_ref(&());
        tokio::spawn(async move {
            let event = Event {
                type_,
                reason: reason.to_string(),
                note: Some(note),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, reason, "publishing event failed");
            }
        });
    }
}
