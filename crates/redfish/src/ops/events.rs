//! Event subscriptions, with recovery of duplicates.

use http::Method;
use serde_json::{Value, json};

use crate::client::{Client, Ctx};
use crate::error::{Error, ErrorKind};
use crate::models::{EventDestination, EventService};
use crate::vendor::{QuirkId, has_quirk};

/// Context string marking subscriptions made by this project (the same as the Go metal-operator, so
/// subscriptions it made are recognised).
pub const SUBSCRIPTION_CONTEXT: &str = "metal-operator";

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct EventSubscriptionRequest {
    /// Where the BMC sends events.
    pub destination: String,
    /// Context echoed in events (default [`SUBSCRIPTION_CONTEXT`]).
    pub context: String,
    /// `Event` or `MetricReport`.
    pub event_format_type: String,
    /// `TerminateAfterRetries`, `SuspendRetries`, `RetryForever` (omitted on HPE iLO).
    pub delivery_retry_policy: Option<String>,
    /// Event types (empty: all).
    pub event_types: Vec<String>,
}

impl EventSubscriptionRequest {
    /// A subscription for Redfish events to `destination` with the defaults.
    pub fn new(destination: impl Into<String>) -> Self {
        Self {
            destination: destination.into(),
            context: SUBSCRIPTION_CONTEXT.into(),
            event_format_type: "Event".into(),
            delivery_retry_policy: Some("TerminateAfterRetries".into()),
            event_types: Vec::new(),
        }
    }
}

impl Client {
    async fn event_service(&self, ctx: &Ctx) -> Result<EventService, Error> {
        let root = self.service_root_ctx(ctx).await?;
        let Some(link) = &root.event_service else {
            return Err(self.err(ErrorKind::NotSupported(
                "service has no EventService".into(),
            )));
        };
        self.get_ctx(ctx, &link.odata_id).await
    }

    async fn subscriptions_ctx(
        &self,
        ctx: &Ctx,
        svc: &EventService,
    ) -> Result<Vec<EventDestination>, Error> {
        let Some(link) = &svc.subscriptions else {
            return Ok(Vec::new());
        };
        let values = self.collection_values(ctx, &link.odata_id, None).await?;
        Ok(values
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
    }

    /// Lists event subscriptions.
    pub async fn event_subscriptions(&self) -> Result<Vec<EventDestination>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let svc = self.event_service(&ctx).await?;
            self.subscriptions_ctx(&ctx, &svc).await
        })
        .await
    }

    /// Creates an event subscription and returns its `@odata.id`. Idempotent: an existing subscription
    /// with the same destination and context is returned instead of creating another, also when the BMC
    /// answers that it already exists (`ResourceAlreadyExists`, 409, or Dell's `PropertyValueModified`
    /// naming the destination) to a subscription the listing did not show yet.
    pub async fn create_event_subscription(
        &self,
        req: &EventSubscriptionRequest,
    ) -> Result<String, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let svc = self.event_service(&ctx).await?;
            if svc.service_enabled == Some(false) {
                return Err(self.err(ErrorKind::NotSupported("event service is disabled".into())));
            }
            let Some(link) = &svc.subscriptions else {
                return Err(self.err(ErrorKind::NotSupported(
                    "event service has no Subscriptions collection".into(),
                )));
            };
            // Level-triggered callers create again after a crash: reuse ours if it is there (not every
            // BMC rejects duplicates).
            let mine = |subs: Vec<EventDestination>| {
                subs.into_iter()
                    .find(|s| {
                        s.destination.as_deref() == Some(req.destination.as_str())
                            && s.context.as_deref() == Some(req.context.as_str())
                    })
                    .and_then(|s| s.odata_id)
            };
            if let Some(existing) = mine(self.subscriptions_ctx(&ctx, &svc).await?) {
                return Ok(existing);
            }
            let mut body = json!({
                "Destination": req.destination,
                "EventFormatType": req.event_format_type,
                "Protocol": "Redfish",
                "Context": req.context,
            });
            let vendor = self.vendor_ctx(&ctx, None).await?;
            if let Some(p) = &req.delivery_retry_policy
                && !has_quirk(&vendor, QuirkId::SubscriptionWithoutRetryPolicy)
            {
                body["DeliveryRetryPolicy"] = json!(p);
            }
            if !req.event_types.is_empty() {
                body["EventTypes"] = json!(req.event_types);
            } else if svc.resource_types.is_empty() {
                body["EventTypes"] = json!([]);
            }
            match self
                .send_json(&ctx, Method::POST, &link.odata_id, &body)
                .await
            {
                Ok(resp) => {
                    let v: Value = resp.json_value();
                    resp.location()
                        .map(crate::client::path_of)
                        .or_else(|| {
                            v.get("@odata.id")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        })
                        .ok_or_else(|| {
                            self.err(ErrorKind::Unexpected(
                                "subscription created without Location".into(),
                            ))
                        })
                }
                Err(e) => {
                    let dup = e.status() == Some(409)
                        || e.message_ids()
                            .iter()
                            .any(|id| id.contains("ResourceAlreadyExists"))
                        || (e
                            .message_ids()
                            .iter()
                            .any(|id| id.contains("PropertyValueModified"))
                            && e.redfish_message()
                                .is_some_and(|m| m.contains(&req.destination)));
                    if !dup {
                        return Err(e);
                    }
                    mine(self.subscriptions_ctx(&ctx, &svc).await?).ok_or(e)
                }
            }
        })
        .await
    }

    /// Deletes an event subscription (returns `false` when it did not exist).
    pub async fn delete_event_subscription(&self, subscription: &str) -> Result<bool, Error> {
        match self.delete(subscription).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
