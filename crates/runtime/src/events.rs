//! Kubernetes Events for what an operator wants to see in `kubectl describe`.
//!
//! Events are published in the background: a slow or failing event write never delays work.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes events as one controller.
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
    /// A publisher reporting as `controller` (its field manager name), instance `identity`.
    pub fn new(client: kube::Client, controller: &str, identity: &str) -> Self {
        Self {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: controller.to_string(),
                    instance: Some(identity.to_string()),
                },
            ),
        }
    }

    /// Publishes a Normal event about `object`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: String) {
        self.publish(object, EventType::Normal, reason, note);
    }

    /// Publishes a Warning event about `object`.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: String) {
        self.publish(object, EventType::Warning, reason, note);
    }

    fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let recorder = self.recorder.clone();
        let reference = object.object_ref(&());
        let reason = reason.to_string();
        tokio::spawn(async move {
            let event = Event {
                type_,
                reason,
                note: Some(note),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "publishing event failed");
            }
        });
    }
}
