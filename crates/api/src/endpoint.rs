//! `Endpoint` (deprecated): a MAC/IP pair that the old discovery path turned into a BMC.
//! Kept so upstream manifests still apply; `BMC.spec.access` replaces it.

use crate::common::{IP_MESSAGE, IP_RULE, MAC_MESSAGE, MAC_RULE};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of an Endpoint.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "Endpoint",
    singular = "endpoint",
    plural = "endpoints",
    shortname = "mep",
    category = "metal",
    status = "EndpointStatus",
    derive = "PartialEq",
    deprecated = "metal.ironcore.dev/v1alpha1 Endpoint is deprecated; set BMC.spec.access (macAddress and ip) instead",
    doc = "Deprecated: a BMC's MAC and IP address; use BMC.spec.access instead.",
    printcolumn(name = "MACAddress", type_ = "string", json_path = ".spec.macAddress"),
    printcolumn(name = "IP", type_ = "string", json_path = ".spec.ip"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// MAC address of the BMC's management port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 17))]
    #[x_kube(validation = Rule::new(MAC_RULE).message(MAC_MESSAGE))]
    pub mac_address: Option<String>,
    /// IP address of the BMC's management port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 45))]
    #[x_kube(validation = Rule::new(IP_RULE).message(IP_MESSAGE))]
    pub ip: Option<String>,
}

/// Observed state of an Endpoint (empty; the kind carries no status).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct EndpointStatus {}
