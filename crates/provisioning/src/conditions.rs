//! Condition types and reasons this controller writes, so the names live in one place and
//! match `docs/controllers.md` (the ownership contract) and the README.

/// Server: a power-on that provisioning issued waits for the BMC to report `On`
/// (`True/ServerPowerOn`), or the last one finished (`False/...`). Recorded *before* the
/// power-on request is sent, so a restarted controller never sends it twice.
pub const POWERING_ON: &str = api::constants::condition_types::POWERING_ON;
/// Server: a power-off that provisioning issued waits for the BMC to report `Off`; `False` with
/// `PowerOffConfirmed` once the BMC reports `Off` (reservation relies on this when the claim
/// object is already gone).
pub const WAITING_FOR_POWER_OFF: &str = api::constants::condition_types::WAITING_FOR_POWER_OFF;
/// Server: a reset requested through the operation annotation is being issued (`True`, reason
/// = Redfish reset type) or was issued and the annotation removed (`False/ResetIssued`).
pub const RESET_IN_PROGRESS: &str = "ResetInProgress";
/// Server: the boot window of a network-boot power-on (`api::bootwindow`): opened with the
/// power-on record, closed by the boot server when it hands out the boot script.
pub const BOOT_WINDOW: &str = api::constants::condition_types::BOOT_WINDOW;
/// ServerClaim: the claim's server is powered on as the claim asks.
pub const POWERED_ON: &str = "PoweredOn";
/// ServerClaim: written while the claim is being deleted; `True/PowerOffConfirmed` once the
/// BMC reported the server `Off` (reservation releases the server only then).
pub const POWERED_OFF: &str = api::constants::condition_types::POWERED_OFF;
/// ServerBootConfiguration: whether the configuration can be served.
pub const READY: &str = api::constants::condition_types::READY;

/// Condition reasons (CamelCase).
pub mod reasons {
    /// PoweringOn=True: power-on recorded / requested, waiting for the BMC to report `On`.
    pub const SERVER_POWER_ON: &str = "ServerPowerOn";
    /// PoweringOn=False, PoweredOn=True: the BMC reports `On`.
    pub const SERVER_POWERED_ON: &str = "ServerPoweredOn";
    /// PoweringOn=False: the BMC did not report `On` within `--power-confirm-timeout`; the next
    /// reconcile starts a new boot.
    pub const POWER_ON_TIMED_OUT: &str = "PowerOnTimedOut";
    /// PoweringOn=False: the boot could not be started (override, media or power-on rejected).
    pub const POWER_ON_FAILED: &str = "PowerOnFailed";
    /// PoweringOn=False: power-on no longer wanted (claim asks for Off, or released).
    pub const POWER_ON_CANCELLED: &str = "PowerOnCancelled";

    /// WaitingForPowerOff=True: a graceful shutdown was requested.
    pub const WAITING_FOR_POWER_OFF: &str = "WaitingForPowerOff";
    /// WaitingForPowerOff=True: the graceful shutdown did not finish within
    /// `--power-off-timeout`; a forced power-off was requested.
    pub const FORCE_OFF_REQUESTED: &str = "ForceOffRequested";
    /// WaitingForPowerOff=True / PoweredOff=False: the BMC refused to power the server off
    /// (rejected the request, or accepted it and still reports `On`).
    pub const POWER_OFF_REFUSED: &str = "PowerOffRefused";
    /// WaitingForPowerOff=False / PoweredOff=True: the BMC reports `Off`.
    pub const POWER_OFF_CONFIRMED: &str = "PowerOffConfirmed";
    /// WaitingForPowerOff=False: power-off no longer wanted (the claim asks for On again).
    pub const POWER_OFF_CANCELLED: &str = "PowerOffCancelled";
    /// PoweredOff=False: the BMC cannot be reached (or its credentials are missing).
    pub const BMC_UNREACHABLE: &str = "BMCUnreachable";

    /// PoweredOn=False: the claim's ServerBootConfiguration is not Ready yet.
    pub const WAITING_FOR_BOOT_CONFIGURATION: &str = "WaitingForBootConfiguration";
    /// PoweredOn=False: power-on requested, waiting for the BMC.
    pub const POWERING_ON: &str = "PoweringOn";
    /// PoweredOn=False: the claim asks for `power: Off`.
    pub const POWER_OFF_REQUESTED: &str = "PowerOffRequested";
    /// PoweredOn=False: the claim is being deleted; the server is being released.
    pub const RELEASING: &str = "Releasing";

    /// ResetInProgress=False: the reset was issued and the annotation removed.
    pub const RESET_ISSUED: &str = "ResetIssued";
    /// ResetInProgress=False: the BMC rejected the reset.
    pub const RESET_FAILED: &str = "ResetFailed";

    /// Ready=True: the OCI image resolved to boot artifacts.
    pub const IMAGE_RESOLVED: &str = "ImageResolved";
    /// Ready=True: plain boot artifacts (`spec.bootArtifacts`) are given.
    pub const BOOT_ARTIFACTS_SPECIFIED: &str = "BootArtifactsSpecified";
    /// Ready=True: virtual media boot with `spec.isoURL`.
    pub const ISO_SPECIFIED: &str = "ISOSpecified";
    /// Ready=False (Pending): the ignition Secret does not exist (yet).
    pub const IGNITION_SECRET_MISSING: &str = "IgnitionSecretMissing";
    /// Ready=False (Pending): the ignition Secret has no `ignition` key.
    pub const IGNITION_KEY_MISSING: &str = "IgnitionKeyMissing";
    /// Ready=False (Error): the image reference cannot be resolved to boot artifacts.
    pub const IMAGE_UNRESOLVABLE: &str = "ImageUnresolvable";
    /// Ready=False (Pending): the registry could not be reached; retried with backoff.
    pub const REGISTRY_UNREACHABLE: &str = "RegistryUnreachable";
    /// Ready=False (Error): neither `image`, `bootArtifacts` nor (for VirtualMedia) `isoURL`.
    pub const NO_BOOT_SOURCE: &str = "NoBootSource";
    /// Ready=False (Error): the spec cannot be rendered (e.g. a URL with spaces).
    pub const INVALID_SPEC: &str = "InvalidSpec";
}
