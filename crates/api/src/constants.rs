//! Well-known names shared between controllers, the CLI and users: finalizers, the operation
//! annotation and its values, labels and annotations, condition types and reasons, and event
//! reasons. The strings match upstream metal-operator so existing objects keep working.

use std::collections::BTreeMap;

/// Finalizers, one per kind that needs cleanup before deletion.
pub mod finalizers {
    /// Server: deletes the server's boot configuration.
    pub const SERVER: &str = "metal.ironcore.dev/server";
    /// ServerClaim: deletes the claim's boot configuration and releases the server.
    pub const SERVER_CLAIM: &str = "metal.ironcore.dev/serverclaim";
    /// BMC: removes event subscriptions on the BMC.
    pub const BMC: &str = "metal.ironcore.dev/bmc";
    /// Endpoint: detaches the BMC and BMCSecret created from it.
    pub const ENDPOINT: &str = "metal.ironcore.dev/endpoint";
    /// BMCUser: deletes the account on the BMC.
    pub const BMC_USER: &str = "metal.ironcore.dev/bmcuser";
    /// ServerReadinessRule: removes the rule's taint from all servers.
    pub const SERVER_READINESS_RULE: &str = "readiness.metal.ironcore.dev/cleanup-taints";
    /// ServerMaintenance: hands the server back when maintenance ends.
    pub const SERVER_MAINTENANCE: &str = "metal.ironcore.dev/servermaintenance";
    /// BIOSSettings: releases the maintenance it requested.
    pub const BIOS_SETTINGS: &str = "metal.ironcore.dev/biossettings";
    /// BIOSSettingsSet: deletes the BIOSSettings it created.
    pub const BIOS_SETTINGS_SET: &str = "metal.ironcore.dev/biossettingsset";
    /// BIOSVersion: releases the maintenance it requested.
    pub const BIOS_VERSION: &str = "metal.ironcore.dev/biosversion";
    /// BIOSVersionSet: deletes the BIOSVersions it created.
    pub const BIOS_VERSION_SET: &str = "metal.ironcore.dev/biosversionset";
    /// BMCSettings: releases the maintenances it requested.
    pub const BMC_SETTINGS: &str = "metal.ironcore.dev/bmcsettings";
    /// BMCSettingsSet: deletes the BMCSettings it created.
    pub const BMC_SETTINGS_SET: &str = "metal.ironcore.dev/bmcsettingsset";
    /// BMCVersion: releases the maintenances it requested.
    pub const BMC_VERSION: &str = "metal.ironcore.dev/bmcversion";
    /// BMCVersionSet: deletes the BMCVersions it created.
    pub const BMC_VERSION_SET: &str = "metal.ironcore.dev/bmcversionset";

    /// Every finalizer above.
    pub const ALL: &[&str] = &[
        SERVER,
        SERVER_CLAIM,
        BMC,
        ENDPOINT,
        BMC_USER,
        SERVER_READINESS_RULE,
        SERVER_MAINTENANCE,
        BIOS_SETTINGS,
        BIOS_SETTINGS_SET,
        BIOS_VERSION,
        BIOS_VERSION_SET,
        BMC_SETTINGS,
        BMC_SETTINGS_SET,
        BMC_VERSION,
        BMC_VERSION_SET,
    ];
}

/// Annotation key through which users (and controllers) request one-off operations.
pub const OPERATION_ANNOTATION: &str = "metal.ironcore.dev/operation";

closed_enum! {
    /// Values of the [`OPERATION_ANNOTATION`]. Controllers remove the annotation once the
    /// operation is done, except for `ignore` which stays until the user removes it.
    pub enum Operation {
        /// Skip reconciling this object entirely.
        Ignore = "ignore",
        /// Set on a child by its parent's controller to make the child skip reconciling.
        IgnorePropagated = "ignore-propagated",
        /// Skip reconciling the object's children, keep reconciling the object.
        IgnoreChild = "ignore-child",
        /// Skip reconciling both the object and its children.
        IgnoreChildAndSelf = "ignore-child-and-self",
        /// Restart a failed object from its initial state.
        Retry = "retry",
        /// Set on a child by its parent's controller to restart the failed child.
        RetryPropagated = "retry-propagated",
        /// Restart the object's failed children.
        RetryChild = "retry-child",
        /// Restart the object and its failed children.
        RetryChildAndSelf = "retry-child-and-self",
        /// Allow deleting an object while its operation is in progress.
        AllowInProgressDelete = "allow-in-progress-delete",
        /// Allow updating an object while its operation is in progress.
        AllowInProgressUpdate = "allow-in-progress-update",
        /// Rotate the credentials of a BMCUser now.
        RotateCredentials = "rotate-credentials",
        /// Take a Server out of the claim lifecycle (only from Available or Reserved).
        Park = "park",
        /// Return a parked Server to the claim lifecycle.
        Unpark = "unpark",
        /// Gracefully restart the server's OS (Redfish `GracefulRestart`).
        GracefulRestartServer = "graceful-restart-server",
        /// Hard-reset the server (Redfish `ForceRestart`).
        HardRestartServer = "hard-restart-server",
        /// Power-cycle the server (Redfish `PowerCycle`).
        PowerCycleServer = "power-cycle-server",
        /// Cut the server's power (Redfish `ForceOff`).
        ForceOffServer = "force-off-server",
        /// Power the server on immediately (Redfish `ForceOn`).
        ForceOnServer = "force-on-server",
        /// Gracefully restart the BMC (Redfish `Manager.Reset` `GracefulRestart`).
        GracefulRestartBmc = "graceful-restart-bmc",
        /// Reset the BMC over SSH; set by the controller after Redfish resets failed with 5xx.
        ForceSshResetBmc = "force-ssh-reset-bmc",
    }
}

impl Operation {
    /// The Redfish `ResetType` this operation maps to, for the server and BMC reset operations.
    pub fn redfish_reset_type(&self) -> Option<&'static str> {
        match self {
            Operation::GracefulRestartServer | Operation::GracefulRestartBmc => {
                Some("GracefulRestart")
            }
            Operation::HardRestartServer => Some("ForceRestart"),
            Operation::PowerCycleServer => Some("PowerCycle"),
            Operation::ForceOffServer => Some("ForceOff"),
            Operation::ForceOnServer => Some("ForceOn"),
            _ => None,
        }
    }

    /// Reads the operation requested in `annotations`. An unknown value is returned as an
    /// error so the controller can report it instead of silently ignoring it.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Option<Result<Operation, crate::UnknownValue>> {
        annotations
            .get(OPERATION_ANNOTATION)
            .map(|value| value.parse())
    }
}

/// Whether an object carries `metal.ironcore.dev/operation: ignore`, the user's request that
/// controllers leave it alone.
pub fn ignored(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(OPERATION_ANNOTATION))
        .is_some_and(|v| v == Operation::Ignore.as_str())
}

/// Annotation marking a Server as parked (written by the controller that parks it).
pub const PARKED_ANNOTATION: &str = "metal.ironcore.dev/parked";
/// Annotation on internal objects (e.g. the discovery boot configuration) created by controllers.
pub const TYPE_ANNOTATION: &str = "metal.ironcore.dev/type";
/// Value of [`TYPE_ANNOTATION`] for controller-internal objects.
pub const TYPE_INTERNAL: &str = "Internal";
/// Annotation set to `"true"` on a boot configuration that boots the default (discovery) image.
pub const IS_DEFAULT_OS_IMAGE_ANNOTATION: &str = "metal.ironcore.dev/is-default-os-image";
/// Annotation with a free-text reason on maintenance objects (shown by `kubectl get sm`).
pub const REASON_ANNOTATION: &str = "metal.ironcore.dev/reason";

/// Prefix of Server labels and annotations that the metadata service exposes to the server.
pub const METADATA_PREFIX: &str = "metadata.metal.ironcore.dev/";
/// Label: site or room of the server, e.g. `FRA-DC5-3F`.
pub const LABEL_LOCATION: &str = "metadata.metal.ironcore.dev/location";
/// Label: rack identifier within the location.
pub const LABEL_RACK: &str = "metadata.metal.ironcore.dev/rack";
/// Label: bottom-up rack unit the server sits in.
pub const LABEL_SHELF: &str = "metadata.metal.ironcore.dev/shelf";
/// Label: height of the server in rack units.
pub const LABEL_HEIGHT: &str = "metadata.metal.ironcore.dev/height";

/// Label on a ServerClaim: the claimed server needs maintenance.
pub const MAINTENANCE_NEEDED_LABEL: &str = "metal.ironcore.dev/maintenance-needed";
/// Label on a ServerClaim: the owner approves the pending maintenance.
pub const MAINTENANCE_APPROVED_LABEL: &str = "metal.ironcore.dev/maintenance-approved";
/// Label requesting maintenance for a server.
pub const MAINTENANCE_REQUESTED_LABEL: &str = "metal.ironcore.dev/maintenance-requested";
/// Label on a ServerBootConfiguration that a ServerMaintenance created from its template (the
/// value is the maintenance's name): maintenance watches only these.
pub const MAINTENANCE_BOOT_LABEL: &str = "metal.ironcore.dev/maintenance-boot";
/// Annotation carrying the reason of a maintenance request.
pub const MAINTENANCE_REASON_ANNOTATION: &str = "metal.ironcore.dev/maintenance-reason";

/// Prefix of the annotation marking that a BootstrapOnly readiness rule is done for a server.
pub const BOOTSTRAP_COMPLETED_PREFIX: &str = "readiness.metal.ironcore.dev/bootstrap-completed-";

/// Annotation key recording that the BootstrapOnly readiness rule `rule` completed on a server.
pub fn bootstrap_completed_annotation(rule: &str) -> String {
    format!("{BOOTSTRAP_COMPLETED_PREFIX}{rule}")
}

/// Header the metadata service requires on every request.
pub const METADATA_FLAVOR_HEADER: &str = "Metadata-Flavor";
/// Required value of [`METADATA_FLAVOR_HEADER`].
pub const METADATA_FLAVOR_VALUE: &str = "IronCore Metal";

/// Our addition: annotation on a Server choosing how its disks are cleaned when a `Recycle`
/// claim releases it (else reservation's `--cleaning-mode`).
pub const CLEANING_MODE_ANNOTATION: &str = "metal.ironcore.dev/cleaning-mode";

/// The objects of an agent boot (the in-band agent, `metal-probe`, booted for a discovery or a
/// cleaning) and how the registry finds the token of a report: shared by discovery, which
/// serves the registry, and maintenance, which boots the cleaning agent.
pub mod agent {
    /// Label on an agent Secret and its report: the server's system UUID (lowercase).
    pub const SYSTEM_UUID_LABEL: &str = "metal.ironcore.dev/system-uuid";
    /// Annotation on the agent objects naming their Server (names can exceed label limits).
    pub const SERVER_ANNOTATION: &str = "metal.ironcore.dev/server";
    /// Secret key holding the bearer token.
    pub const TOKEN_KEY: &str = "token";
    /// Secret key holding the Ignition config.
    pub const IGNITION_KEY: &str = "ignition";
    /// Label on every object of a cleaning boot (Secret, boot configuration, report).
    pub const CLEANING_LABEL: &str = "metal.ironcore.dev/cleaning";
    /// ConfigMap key holding the cleaning agent's report (JSON `CleaningPayload`).
    pub const CLEANING_REPORT_KEY: &str = "cleaning.json";

    /// The cleaning Secret (token + ignition) and boot configuration of a server.
    pub fn cleaning_name(server: &str) -> String {
        format!("{server}-cleaning")
    }

    /// The ConfigMap holding the cleaning agent's report.
    pub fn cleaning_report_name(server: &str) -> String {
        format!("{server}-cleaning-report")
    }

    /// The report JSON under `key` of an agent round, when `report` belongs to the round of
    /// `secret`: the registry makes each report owned by the token Secret it was posted
    /// with, so a report left over from an earlier round (an older Secret) never counts.
    pub fn round_report<'a>(
        report: &'a k8s_openapi::api::core::v1::ConfigMap,
        secret: &k8s_openapi::api::core::v1::Secret,
        key: &str,
    ) -> Option<&'a str> {
        let uid = secret.metadata.uid.as_ref()?;
        let owned = report
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| &r.uid == uid));
        owned
            .then(|| report.data.as_ref()?.get(key).map(String::as_str))
            .flatten()
    }
}

closed_enum! {
    /// Values of [`CLEANING_MODE_ANNOTATION`] (our addition, not in upstream metal-operator).
    pub enum CleaningMode {
        /// Released servers go straight back to Available (upstream behaviour).
        Disabled = "Disabled",
        /// Partition tables and filesystem signatures are wiped by the in-band agent.
        Metadata = "Metadata",
        /// Every drive is erased: Redfish SecureErase where the drive offers it, else
        /// overwritten by the in-band agent.
        Full = "Full",
    }
}

/// Our addition: annotation on a BMC or Server choosing how inventory is gathered.
pub const INSPECTION_ANNOTATION: &str = "metal.ironcore.dev/inspection";

closed_enum! {
    /// Values of [`INSPECTION_ANNOTATION`] (our addition, not in upstream metal-operator).
    pub enum InspectionMode {
        /// Inventory from Redfish only; the server is not booted into the discovery agent.
        OutOfBand = "out-of-band",
        /// Boot the discovery agent to add what Redfish cannot see (links, LLDP, IPs).
        InBand = "in-band",
    }
}

/// Condition types, grouped by the kind that carries them.
pub mod condition_types {
    /// BMC: the controller can talk to the BMC.
    pub const READY: &str = "Ready";
    /// BMC: a reset was requested or is settling.
    pub const RESET: &str = "Reset";
    /// Server: waiting for the server to report power on.
    pub const POWERING_ON: &str = "PoweringOn";
    /// Server: waiting for the BMC to confirm power off before the server is handed on.
    pub const WAITING_FOR_POWER_OFF: &str = "WaitingForPowerOff";
    /// ServerBootConfiguration: the booted agent reported back.
    pub const BOOT_STATE_RECEIVED: &str = "BootStateReceived";
    /// Server: whether discovery has read the server's inventory (and, in-band, received the
    /// probe agent's report); written by discovery.
    pub const DISCOVERED: &str = "Discovered";
    /// ServerClaim: whether the claim is bound to a server, and if not, why (reservation).
    pub const BOUND: &str = "Bound";

    /// Day-2: a ServerMaintenance was created for the operation.
    pub const SERVER_MAINTENANCE_CREATED: &str = "ServerMaintenanceCreated";
    /// Day-2: the ServerMaintenance was deleted.
    pub const SERVER_MAINTENANCE_DELETED: &str = "ServerMaintenanceDeleted";
    /// Day-2: waiting for the owner to approve the maintenance.
    pub const SERVER_MAINTENANCE_WAITING: &str = "ServerMaintenanceWaiting";
    /// Day-2: a BMC or server reset was issued.
    pub const RESET_ISSUED: &str = "ResetIssued";
    /// Firmware: the update was issued to the BMC.
    pub const VERSION_UPGRADE_ISSUED: &str = "VersionUpgradeIssued";
    /// Firmware: the update task completed.
    pub const VERSION_UPGRADE_COMPLETED: &str = "VersionUpgradeCompleted";
    /// Firmware: the running version is being verified.
    pub const VERSION_UPGRADE_VERIFICATION: &str = "VersionUpgradeVerification";
    /// Firmware: reboot after the update.
    pub const VERSION_UPGRADE_REBOOT: &str = "VersionUpgradeReboot";
    /// Firmware: an update is staged and waits for a reboot.
    pub const VERSION_UPDATE_PENDING: &str = "VersionUpdatePending";
    /// Firmware: power off during the post-update reboot.
    pub const VERSION_UPGRADE_POWER_OFF: &str = "VersionUpgradePowerOff";
    /// Firmware: power on during the post-update reboot.
    pub const VERSION_UPGRADE_POWER_ON: &str = "VersionUpgradePowerOn";
    /// Day-2: a retry of a failed object was started.
    pub const RETRY_OF_FAILED_RESOURCE_ISSUED: &str = "RetryOfFailedResourceIssued";

    /// BIOSSettings: checking for settings already pending on the BMC.
    pub const PENDING_SETTINGS_CHECK: &str = "PendingSettingsCheck";
    /// BIOSSettings: the same attribute appears in several steps.
    pub const SETTINGS_DUPLICATE_KEYS: &str = "SettingsDuplicateKeys";
    /// BIOSSettings: when applying started.
    pub const SETTINGS_UPDATE_START_TIME: &str = "SettingsUpdateStartTime";
    /// BIOSSettings: applying took longer than allowed.
    pub const SETTINGS_TIMED_OUT: &str = "SettingsTimedOut";
    /// BIOSSettings: the server was powered on to apply settings.
    pub const SERVER_POWER_ON: &str = "ServerPowerOn";
    /// BIOSSettings: the settings were written to the BMC.
    pub const SETTINGS_UPDATE_ISSUED: &str = "SettingsUpdateIssued";
    /// BIOSSettings: pending settings not written by us were found.
    pub const UNKNOWN_PENDING_SETTING_STATE: &str = "UnknownPendingSettingState";
    /// BIOSSettings: reboot needed to apply the settings.
    pub const REBOOT_POST_UPDATE: &str = "RebootPostUpdate";
    /// BIOSSettings: power off during the reboot.
    pub const REBOOT_POWER_OFF: &str = "RebootPowerOff";
    /// BIOSSettings: power on during the reboot.
    pub const REBOOT_POWER_ON: &str = "RebootPowerOn";
    /// BIOSSettings: verifying the applied settings.
    pub const VERIFY_SETTINGS_POST_UPDATE: &str = "VerifySettingsPostUpdate";
    /// BIOSSettings/BMCSettings: the BMC rejected the settings (unknown or read-only attribute).
    pub const SETTINGS_VALIDATION_FAILED: &str = "SettingsValidationFailed";

    /// BMCSettings: BMC reset after applying settings.
    pub const RESET_POST_SETTING_APPLY: &str = "ResetPostSettingApply";
    /// BMCSettings: the servers were powered off. ServerClaim: provisioning confirmed (from the
    /// BMC) that the claim's server is off; reservation releases the server only after that.
    pub const POWERED_OFF: &str = "PoweredOff";
    /// BMCSettings: changes were written to the BMC.
    pub const CHANGES_ISSUED: &str = "ChangesIssued";
    /// BMCSettings: changes were read back and match.
    pub const CHANGES_VERIFIED: &str = "ChangesVerified";

    /// Server (our addition, owner discovery): whether the server can be trusted to do its job;
    /// `False` with `BMCUnreachable` / `InventoryUnreadable` explains a discovery-written `Error`.
    pub const HEALTHY: &str = "Healthy";
    /// Server (our addition, owner reservation): a released server must be cleaned; the reason
    /// is the mode (`Metadata`, `Full`), recorded with the move to `Cleaning`.
    pub const CLEANING_REQUESTED: &str = "CleaningRequested";
    /// Server (our addition, owner maintenance): progress and result of disk cleaning
    /// (Unknown `Cleaning`, True `Cleaned`, False `CleaningFailed`).
    pub const CLEANED: &str = "Cleaned";
    /// Server (our addition, owner maintenance): the cleaning agent's network boot of this
    /// round (False `BootRequested` recorded before it is sent, True `Booted` once the boot
    /// server handed out its script).
    pub const CLEANING_AGENT_BOOT: &str = "CleaningAgentBoot";
    /// BMCUser (our addition, owner discovery): the candidate credentials' write to the BMC
    /// account (False `CredentialsWriteRequested` recorded before the request, True
    /// `AccountReady` once verified), so a restart verifies a write instead of repeating it.
    pub const CREDENTIALS_WRITTEN: &str = "CredentialsWritten";
    /// Server (our addition): a network boot the boot server answers. Opened (`True`
    /// `BootWindowOpen`) by whoever records the network-boot power-on (discovery for the
    /// discovery boot, provisioning for claims and resets), in the same write; closed (`False`
    /// `BootScriptServed`) by provisioning's boot server when it hands out the boot script, so
    /// each power-on yields one script (see `api::bootwindow`).
    pub const BOOT_WINDOW: &str = "BootWindow";
    /// Server (our addition, owner maintenance): the `park` operation. `False`
    /// `ParkPowerOffRequested` records the power-off before it is sent (its transition time
    /// is the request's age), `True` `ServerParked` once the BMC reports Off, `False`
    /// `Unparked` after `unpark`.
    pub const PARKED: &str = "Parked";
}

/// Condition reasons (CamelCase), grouped by the condition types that use them.
pub mod reasons {
    /// Ready=True: connected to the BMC.
    pub const CONNECTED: &str = "Connected";
    /// Ready=False: the BMC rejected the credentials (HTTP 401).
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// Ready=False: the BMC could not be reached (or answered 503).
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    /// Ready=False: the BMC answered with an internal error (HTTP 500).
    pub const INTERNAL_SERVER_ERROR: &str = "InternalServerError";
    /// Ready=False: any other failure.
    pub const UNKNOWN_ERROR: &str = "UnknownError";

    /// Reset=True: a user asked for the reset.
    pub const USER_REQUESTED: &str = "UserRequested";
    /// Reset=True: the controller resets a BMC that stayed unreachable.
    pub const AUTO_RESETTING: &str = "AutoResetting";
    /// Reset=False: the reset finished and the BMC answers again.
    pub const RESET_COMPLETE: &str = "ResetComplete";
    /// ResetIssued: the reset request was sent.
    pub const RESET_ISSUED: &str = "ResetIssued";
    /// A reset is required but not yet issued.
    pub const RESET_REQUIRED: &str = "ResetRequired";
    /// No reset is required in this apply cycle.
    pub const NO_RESET_REQUIRED: &str = "NoResetRequired";

    /// PoweringOn: power-on was requested.
    pub const SERVER_POWER_ON: &str = "ServerPowerOn";
    /// WaitingForPowerOff=True: power-off was requested, not yet confirmed.
    pub const WAITING_FOR_POWER_OFF: &str = "WaitingForPowerOff";
    /// WaitingForPowerOff=False: the BMC confirmed power off.
    pub const POWER_OFF_CONFIRMED: &str = "PowerOffConfirmed";

    /// BootStateReceived=True: the discovery agent reported that it booted.
    pub const BOOT_STATE_RECEIVED: &str = "BootStateReceived";

    /// Discovered=True: the inventory was read over Redfish (out-of-band inspection).
    pub const INVENTORY_READ: &str = "InventoryRead";
    /// Discovered=True: the probe agent's in-band report was received and merged.
    pub const IN_BAND_DATA_RECEIVED: &str = "InBandDataReceived";
    /// Discovered=Unknown: a discovery round started (server created, or back in Initial).
    pub const DISCOVERY_STARTED: &str = "DiscoveryStarted";
    /// Discovered=Unknown: the discovery boot is under way; waiting for the probe agent's report.
    pub const WAITING_FOR_AGENT: &str = "WaitingForAgent";
    /// Discovered=False: no report within `--discovery-timeout`; the server went back to Initial.
    pub const DISCOVERY_TIMED_OUT: &str = "DiscoveryTimedOut";
    /// Discovered=False: the server's BMC is not reachable (its `Ready` condition is not True).
    pub const BMC_NOT_READY: &str = "BMCNotReady";
    /// BMC Ready=False: the BMCSecret is missing or lacks `username`/`password`.
    pub const MISSING_CREDENTIALS: &str = "MissingCredentials";
    /// BMC Ready=False: no address is known (neither `spec.access.ip` nor an Endpoint IP).
    pub const NO_ADDRESS: &str = "NoAddress";
    /// BMC Ready=False: the address or CA bundle is not usable.
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
    /// BMCUser Ready=True: the account exists and its credentials were verified on the BMC.
    pub const ACCOUNT_READY: &str = "AccountReady";
    /// BMCUser Ready=False: the BMC rejected the candidate credentials; they were not promoted.
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    /// BMCUser CredentialsWritten=False: the candidate credentials are being written to the
    /// BMC account.
    pub const CREDENTIALS_WRITE_REQUESTED: &str = "CredentialsWriteRequested";

    /// ServerClaim Bound=True: the claim is bound to a server.
    pub const BOUND: &str = "Bound";
    /// ServerClaim Bound=False: no server matches the claim's selector (or its serverRef does
    /// not match its selector).
    pub const NO_MATCHING_SERVER: &str = "NoMatchingServer";
    /// ServerClaim Bound=False: every matching server is claimed by another claim.
    pub const ALL_MATCHING_SERVERS_TAKEN: &str = "AllMatchingServersTaken";
    /// ServerClaim Bound=False: the server named by `spec.serverRef` does not exist.
    pub const SERVER_NOT_FOUND: &str = "ServerNotFound";
    /// ServerClaim Bound=False: matching servers exist but are not claimable (state not
    /// Available, powered on, or cordoned).
    pub const SERVER_NOT_AVAILABLE: &str = "ServerNotAvailable";
    /// ServerClaim Bound=False: matching servers carry NoBind taints the claim does not tolerate.
    pub const NOT_TOLERATED: &str = "NotTolerated";
    /// ServerClaim Bound=True: the claim is being deleted; its server stays bound until
    /// provisioning confirmed power off and the server is released.
    pub const RELEASING: &str = "Releasing";

    /// Maintenance created.
    pub const SERVER_MAINTENANCE_CREATED: &str = "ServerMaintenanceHasBeenCreated";
    /// Maintenance deleted.
    pub const SERVER_MAINTENANCE_DELETED: &str = "ServerMaintenanceHasBeenDeleted";
    /// Maintenance waits for the owner's approval.
    pub const SERVER_MAINTENANCE_WAITING: &str = "ServerMaintenanceWaitingOnApproval";
    /// Maintenance approved.
    pub const SERVER_MAINTENANCE_APPROVED: &str = "ServerMaintenanceApproval";
    /// A retry of a failed object was started.
    pub const RETRY_OF_FAILED_RESOURCE_ISSUED: &str = "RetryOfFailedResourceIssued";

    /// Firmware update issued.
    pub const UPGRADE_ISSUED: &str = "UpgradeIssued";
    /// Firmware update could not be issued.
    pub const UPGRADE_ISSUE_FAILED: &str = "UpgradeIssueFailed";
    /// Firmware update task failed.
    pub const UPGRADE_TASK_FAILED: &str = "UpgradeTaskFailed";
    /// Firmware update task completed.
    pub const UPGRADE_TASK_COMPLETED: &str = "UpgradeTaskCompleted";
    /// The new version is running.
    pub const VERSION_UPDATE_VERIFIED: &str = "VersionUpdateVerified";
    /// The new version is not running after the update.
    pub const VERSION_VERIFICATION_FAILED: &str = "VersionVerificationFailed";
    /// A staged update waits for a reboot.
    pub const VERSION_UPGRADE_PENDING: &str = "VersionUpgradePending";
    /// Power off during a reboot completed.
    pub const REBOOT_POWER_OFF: &str = "RebootPowerOff";
    /// Power on during a reboot completed.
    pub const REBOOT_POWER_ON: &str = "RebootPowerOn";

    /// Pending BIOS settings found on the BMC.
    pub const PENDING_SETTINGS_FOUND: &str = "PendingSettingsFound";
    /// The same BIOS attribute appears in several steps.
    pub const SETTINGS_DUPLICATE_KEYS_FOUND: &str = "SettingsDuplicateKeysFound";
    /// Applying settings started.
    pub const SETTINGS_UPDATE_STARTED: &str = "SettingsUpdateStarted";
    /// Applying settings timed out.
    pub const SETTINGS_TIMED_OUT_DURING_UPDATE: &str = "SettingsTimedOutDuringUpdate";
    /// The server was powered on.
    pub const SERVER_POWERED_ON: &str = "ServerPoweredOn";
    /// Settings were written to the BMC.
    pub const SETTINGS_UPDATE_ISSUED: &str = "SettingsUpdateIssued";
    /// Pending settings on the BMC that we did not write.
    pub const UNEXPECTED_PENDING_SETTINGS: &str = "UnexpectedPendingSettings";
    /// No reboot needed for these settings.
    pub const SKIP_SERVER_REBOOT: &str = "SkipServerReboot";
    /// A reboot is needed for these settings.
    pub const REBOOT_POST_SETTING_UPDATE: &str = "RebootPostSettingUpdate";
    /// Power off during the settings reboot completed.
    pub const POWER_OFF_COMPLETED_DURING_REBOOT: &str = "PowerOffCompletedDuringReboot";
    /// Power on during the settings reboot completed.
    pub const POWER_ON_COMPLETED_DURING_REBOOT: &str = "PowerOnCompletedDuringReboot";
    /// Settings read back and match.
    pub const VERIFICATION_COMPLETED: &str = "VerificationCompleted";
    /// Settings read back and do not match yet.
    pub const VERIFICATION_NOT_COMPLETED: &str = "VerificationNotCompleted";
    /// The BMC rejected the settings.
    pub const SETTINGS_VALIDATION_FAILED: &str = "SettingsValidationFailed";

    /// BMCSettings: the servers are powered off.
    pub const POWERED_OFF: &str = "PoweredOff";
    /// BMCSettings: the BMC runs the version the settings are meant for.
    pub const VERSION_MATCHING: &str = "VersionMatching";
    /// BMCSettings: changes written.
    pub const CHANGES_ISSUED: &str = "ChangesIssued";
    /// BMCSettings: changes verified.
    pub const CHANGES_VERIFIED: &str = "ChangesVerified";
    /// BMCSettings: verification still pending.
    pub const SETTINGS_VERIFICATION_PENDING: &str = "SettingsVerificationPending";

    /// Healthy=True: the BMC answers and the inventory reads.
    pub const HEALTHY: &str = "Healthy";
    /// Healthy=False: the BMC has not answered for longer than the error threshold.
    pub const BMC_UNREACHABLE: &str = "BMCUnreachable";
    /// Healthy=False: the BMC answers but the server's inventory cannot be read.
    pub const INVENTORY_UNREADABLE: &str = "InventoryUnreadable";
    /// CleaningRequested=True: wipe partition tables and signatures.
    pub const CLEANING_METADATA: &str = "Metadata";
    /// CleaningRequested=True: erase every drive completely.
    pub const CLEANING_FULL: &str = "Full";
    /// Cleaned=Unknown: cleaning is in progress.
    pub const CLEANING: &str = "Cleaning";
    /// Cleaned=True: every drive was cleaned as the mode requires.
    pub const CLEANED: &str = "Cleaned";
    /// Cleaned=False: cleaning failed; the server stays out of the pool (state Error).
    pub const CLEANING_FAILED: &str = "CleaningFailed";
    /// BootWindow=True: a network boot was started; the next identifying request gets the script.
    pub const BOOT_WINDOW_OPEN: &str = "BootWindowOpen";
    /// BootWindow=False: the boot script of this power-on was handed out.
    pub const BOOT_SCRIPT_SERVED: &str = "BootScriptServed";
    /// Parked=False: the parked server's power-off was requested from the BMC.
    pub const PARK_POWER_OFF_REQUESTED: &str = "ParkPowerOffRequested";
    /// Parked=True: the server is parked and the BMC reports it Off.
    pub const SERVER_PARKED: &str = "ServerParked";
    /// Parked=False: the server was unparked and is back in the claim lifecycle.
    pub const UNPARKED: &str = "Unparked";

    /// Every reason above, for validation in tests and tooling.
    pub const ALL: &[&str] = &[
        CONNECTED,
        AUTHENTICATION_FAILED,
        CONNECTION_FAILED,
        INTERNAL_SERVER_ERROR,
        UNKNOWN_ERROR,
        USER_REQUESTED,
        AUTO_RESETTING,
        RESET_COMPLETE,
        RESET_ISSUED,
        RESET_REQUIRED,
        NO_RESET_REQUIRED,
        SERVER_POWER_ON,
        WAITING_FOR_POWER_OFF,
        POWER_OFF_CONFIRMED,
        BOOT_STATE_RECEIVED,
        INVENTORY_READ,
        IN_BAND_DATA_RECEIVED,
        DISCOVERY_STARTED,
        WAITING_FOR_AGENT,
        DISCOVERY_TIMED_OUT,
        BMC_NOT_READY,
        MISSING_CREDENTIALS,
        NO_ADDRESS,
        INVALID_CONFIGURATION,
        ACCOUNT_READY,
        CREDENTIALS_REJECTED,
        CREDENTIALS_WRITE_REQUESTED,
        BOUND,
        NO_MATCHING_SERVER,
        ALL_MATCHING_SERVERS_TAKEN,
        SERVER_NOT_FOUND,
        SERVER_NOT_AVAILABLE,
        NOT_TOLERATED,
        RELEASING,
        SERVER_MAINTENANCE_CREATED,
        SERVER_MAINTENANCE_DELETED,
        SERVER_MAINTENANCE_WAITING,
        SERVER_MAINTENANCE_APPROVED,
        RETRY_OF_FAILED_RESOURCE_ISSUED,
        UPGRADE_ISSUED,
        UPGRADE_ISSUE_FAILED,
        UPGRADE_TASK_FAILED,
        UPGRADE_TASK_COMPLETED,
        VERSION_UPDATE_VERIFIED,
        VERSION_VERIFICATION_FAILED,
        VERSION_UPGRADE_PENDING,
        REBOOT_POWER_OFF,
        REBOOT_POWER_ON,
        PENDING_SETTINGS_FOUND,
        SETTINGS_DUPLICATE_KEYS_FOUND,
        SETTINGS_UPDATE_STARTED,
        SETTINGS_TIMED_OUT_DURING_UPDATE,
        SERVER_POWERED_ON,
        SETTINGS_UPDATE_ISSUED,
        UNEXPECTED_PENDING_SETTINGS,
        SKIP_SERVER_REBOOT,
        REBOOT_POST_SETTING_UPDATE,
        POWER_OFF_COMPLETED_DURING_REBOOT,
        POWER_ON_COMPLETED_DURING_REBOOT,
        VERIFICATION_COMPLETED,
        VERIFICATION_NOT_COMPLETED,
        SETTINGS_VALIDATION_FAILED,
        POWERED_OFF,
        VERSION_MATCHING,
        CHANGES_ISSUED,
        CHANGES_VERIFIED,
        SETTINGS_VERIFICATION_PENDING,
        HEALTHY,
        BMC_UNREACHABLE,
        INVENTORY_UNREADABLE,
        CLEANING_METADATA,
        CLEANING_FULL,
        CLEANING,
        CLEANED,
        CLEANING_FAILED,
        BOOT_WINDOW_OPEN,
        BOOT_SCRIPT_SERVED,
        PARK_POWER_OFF_REQUESTED,
        SERVER_PARKED,
        UNPARKED,
    ];
}

/// Event reasons for the server parking flow (shown by `kubectl describe`).
pub mod event_reasons {
    /// The server was parked.
    pub const PARKED: &str = "Parked";
    /// Unparking started.
    pub const UNPARKING: &str = "Unparking";
    /// The server returned to the claim lifecycle.
    pub const RESUMED: &str = "Resumed";
    /// `park` was requested in a state that cannot be parked; the request is kept.
    pub const PARK_DEFERRED: &str = "ParkDeferred";
    /// An operation was requested on a parked server and dropped.
    pub const PARKED_OPERATION_DROPPED: &str = "ParkedOperationDropped";
    /// The operation annotation carries a value this controller does not handle.
    pub const UNSUPPORTED_OPERATION: &str = "UnsupportedOperation";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::is_valid_reason;

    #[test]
    fn reasons_are_valid_camel_case() {
        for r in reasons::ALL.iter().chain(
            [
                event_reasons::PARKED,
                event_reasons::UNPARKING,
                event_reasons::RESUMED,
                event_reasons::PARK_DEFERRED,
                event_reasons::PARKED_OPERATION_DROPPED,
                event_reasons::UNSUPPORTED_OPERATION,
            ]
            .iter(),
        ) {
            assert!(is_valid_reason(r), "{r}");
            assert!(r.starts_with(|c: char| c.is_ascii_uppercase()), "{r}");
            assert!(r.chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
        }
    }

    #[test]
    fn operations_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), *op);
        }
        assert_eq!(Operation::ALL.len(), 20);
        assert_eq!(
            Operation::HardRestartServer.redfish_reset_type(),
            Some("ForceRestart")
        );
        assert_eq!(
            Operation::GracefulRestartBmc.redfish_reset_type(),
            Some("GracefulRestart")
        );
        assert_eq!(Operation::Park.redfish_reset_type(), None);
    }

    #[test]
    fn operation_from_annotations() {
        let mut a = BTreeMap::new();
        assert!(Operation::from_annotations(&a).is_none());
        a.insert(OPERATION_ANNOTATION.to_owned(), "park".to_owned());
        assert_eq!(Operation::from_annotations(&a), Some(Ok(Operation::Park)));
        a.insert(OPERATION_ANNOTATION.to_owned(), "explode".to_owned());
        assert!(matches!(Operation::from_annotations(&a), Some(Err(_))));
    }

    #[test]
    fn well_known_keys() {
        assert_eq!(
            bootstrap_completed_annotation("gpu-ready"),
            "readiness.metal.ironcore.dev/bootstrap-completed-gpu-ready"
        );
        assert!(LABEL_RACK.starts_with(METADATA_PREFIX));
        assert_eq!(InspectionMode::OutOfBand.as_str(), "out-of-band");
        assert_eq!(
            "in-band".parse::<InspectionMode>().unwrap(),
            InspectionMode::InBand
        );
        let mut sorted = finalizers::ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), finalizers::ALL.len());
    }

    #[test]
    fn a_report_counts_only_for_the_secret_it_was_posted_with() {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let secret = |uid: &str| Secret {
            metadata: kube::api::ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let report = ConfigMap {
            metadata: kube::api::ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: "round-2".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: Some([("r.json".to_string(), "{}".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(
            agent::round_report(&report, &secret("round-2"), "r.json"),
            Some("{}")
        );
        assert_eq!(
            agent::round_report(&report, &secret("round-1"), "r.json"),
            None
        );
        assert_eq!(
            agent::round_report(&report, &secret("round-2"), "other"),
            None
        );
        assert_eq!(
            agent::round_report(&report, &Secret::default(), "r.json"),
            None
        );
    }
}
