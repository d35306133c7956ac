//! EventService and event subscriptions.

use serde::{Deserialize, Serialize};

use super::{Link, de};

/// The EventService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventService {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Enabled.
    #[serde(rename = "ServiceEnabled", deserialize_with = "de::opt_bool")]
    pub service_enabled: Option<bool>,
    /// Subscriptions collection.
    #[serde(rename = "Subscriptions", deserialize_with = "de::opt_link")]
    pub subscriptions: Option<Link>,
    /// Event types accepted in subscriptions (deprecated).
    #[serde(
        rename = "EventTypesForSubscription",
        deserialize_with = "de::vec_string"
    )]
    pub event_types_for_subscription: Vec<String>,
    /// Resource types accepted in subscriptions.
    #[serde(rename = "ResourceTypes", deserialize_with = "de::vec_string")]
    pub resource_types: Vec<String>,
    /// Registry prefixes accepted in subscriptions.
    #[serde(rename = "RegistryPrefixes", deserialize_with = "de::vec_string")]
    pub registry_prefixes: Vec<String>,
    /// Delivery retry attempts.
    #[serde(rename = "DeliveryRetryAttempts", deserialize_with = "de::opt_u32")]
    pub delivery_retry_attempts: Option<u32>,
}

/// An EventDestination (subscription).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventDestination {
    /// Path.
    #[serde(rename = "@odata.id", deserialize_with = "de::opt_string")]
    pub odata_id: Option<String>,
    /// Id.
    #[serde(rename = "Id", deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Where events are sent.
    #[serde(rename = "Destination", deserialize_with = "de::opt_string")]
    pub destination: Option<String>,
    /// Opaque context echoed in events (identifies our subscriptions).
    #[serde(rename = "Context", deserialize_with = "de::opt_string")]
    pub context: Option<String>,
    /// Redfish, SNMPv2c, ...
    #[serde(rename = "Protocol", deserialize_with = "de::opt_string")]
    pub protocol: Option<String>,
    /// Event or MetricReport.
    #[serde(rename = "EventFormatType", deserialize_with = "de::opt_string")]
    pub event_format_type: Option<String>,
    /// Event types.
    #[serde(rename = "EventTypes", deserialize_with = "de::vec_string")]
    pub event_types: Vec<String>,
    /// RedfishEvent, SSE, ...
    #[serde(rename = "SubscriptionType", deserialize_with = "de::opt_string")]
    pub subscription_type: Option<String>,
    /// Retry policy.
    #[serde(rename = "DeliveryRetryPolicy", deserialize_with = "de::opt_string")]
    pub delivery_retry_policy: Option<String>,
}
