//! `ServerBootConfiguration`: what a server boots (image and ignition); the provisioning
//! controller serves it and reports readiness.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a ServerBootConfiguration.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "ServerBootConfiguration",
    singular = "serverbootconfiguration",
    plural = "serverbootconfigurations",
    shortname = "sbc",
    category = "metal",
    namespaced,
    status = "ServerBootConfigurationStatus",
    derive = "PartialEq",
    doc = "The boot image and ignition for one server; ready once the boot side can serve it.",
    printcolumn(
        name = "ServerRef",
        type_ = "string",
        json_path = ".spec.serverRef.name"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(
        name = "IgnitionRef",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.bootMethod) || self.bootMethod != 'VirtualMedia' || (has(self.isoURL) && self.isoURL != '')"
).message("isoURL is required when bootMethod is VirtualMedia"))]
pub struct ServerBootConfigurationSpec {
    /// The server that boots with this configuration.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "serverRef is immutable; create a new ServerBootConfiguration for another server"
    ))]
    pub server_ref: LocalObjectReference,
    /// OS image to boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Secret with the ignition configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
    /// Our addition: how the server boots this configuration. `Network` (the default when
    /// unset) serves iPXE / UEFI HTTP boot from the boot server; `VirtualMedia` inserts
    /// `isoURL` into the BMC's virtual CD and boots from it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_method: Option<BootMethod>,
    /// Our addition: boot these kernel / initrd / root image URLs with this command line
    /// instead of resolving `image` from an OCI registry. When set it takes precedence over
    /// `image` (which then only documents what is booted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_artifacts: Option<BootArtifacts>,
    /// Our addition: ISO image the BMC inserts as virtual CD when `bootMethod` is
    /// `VirtualMedia`.
    #[serde(rename = "isoURL", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self)").message(
        "isoURL must be an absolute URL such as https://images.example.com/os.iso"
    ))]
    pub iso_url: Option<String>,
}

closed_enum! {
    /// How a server boots its ServerBootConfiguration (our addition).
    pub enum BootMethod {
        /// Network boot (PXE / iPXE or UEFI HTTP) from the provisioning boot server.
        Network = "Network",
        /// Boot once from an ISO inserted as virtual CD through the BMC.
        VirtualMedia = "VirtualMedia",
    }
}

/// Boot artifacts given as plain URLs (our addition): what an OCI `image` would otherwise be
/// resolved to. The boot server renders them into the server's iPXE script; the command line
/// may use the iPXE variables `${kernel-url}`, `${initrd-url}`, `${rootfs-url}` and
/// `${ignition-url}`, which the script sets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.kernelURL) && self.kernelURL != ''").message(
    "bootArtifacts.kernelURL is required: the kernel is the one artifact every network boot needs"
))]
pub struct BootArtifacts {
    /// URL of the kernel (required).
    #[serde(rename = "kernelURL", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self)").message(
        "kernelURL must be an absolute URL such as http://boot.example.com/vmlinuz"
    ))]
    pub kernel_url: Option<String>,
    /// URL of the initial ramdisk.
    #[serde(rename = "initrdURL", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self)").message(
        "initrdURL must be an absolute URL such as http://boot.example.com/initrd"
    ))]
    pub initrd_url: Option<String>,
    /// URL of the root file system image (e.g. a squashfs), available to the command line as
    /// `${rootfs-url}`.
    #[serde(
        rename = "rootImageURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = Rule::new("isURL(self)").message(
        "rootImageURL must be an absolute URL such as http://boot.example.com/root.squashfs"
    ))]
    pub root_image_url: Option<String>,
    /// Kernel command line. `ignition.config.url=<boot server>/ignition/<system UUID>` is
    /// appended by the boot server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    #[x_kube(validation = Rule::new("!self.matches('[\\x00-\\x1f\\x7f]')").message(
        "cmdline must be a single line without control characters"
    ))]
    pub cmdline: Option<String>,
}

closed_enum! {
    /// Readiness of a boot configuration.
    pub enum ServerBootConfigurationState {
        /// Not yet servable.
        Pending = "Pending",
        /// Servable; the server may be booted.
        Ready = "Ready",
        /// Cannot be served.
        Error = "Error",
    }
}

/// Observed state of a ServerBootConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBootConfigurationStatus {
    /// Readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerBootConfigurationState>,
    /// Observations such as `BootStateReceived`, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A named ServerBootConfiguration spec, used where another object tells a controller which
/// boot configuration to create (e.g. during maintenance).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServerBootConfigurationTemplate {
    /// Name of the ServerBootConfiguration to create.
    pub name: String,
    /// Its spec.
    pub spec: ServerBootConfigurationSpec,
}
