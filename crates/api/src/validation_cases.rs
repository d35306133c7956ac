//! Executable examples of the CRD validation: for every CEL rule (and a few OpenAPI
//! constraints) one object the apiserver accepts and one change it must reject, with a
//! substring of the expected error message.
//!
//! Integration tests against a real apiserver iterate over [`cases`]:
//!
//! * `update == false`: create `valid` (must succeed, then delete it), create `invalid` (must
//!   fail with an error containing `message`).
//! * `update == true`: create `valid`, then replace it with `invalid` (a PUT carrying the
//!   current `resourceVersion`) and expect `message`; if `accepted_update` is set, replacing
//!   `valid` with it must succeed. Use replace, not server-side apply: an apply by another field
//!   manager does not remove fields set at creation, so "field removed" cases would pass.
//!
//! The apiserver skips all CEL rules when a "blocking" OpenAPI error occurs (unsupported enum
//! value, wrong type, too long, too many items) and then adds "some validation rules were not
//! checked"; the cases avoid mixing the two.
//!
//! Objects carry `apiVersion`, `kind` and `metadata.name` (the case name, unique across cases);
//! namespaced kinds carry no namespace. No other objects need to exist: references are not
//! resolved at admission.

use serde_json::{Value, json};

/// Which part of the schema rejects the invalid object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A CEL rule (`x-kubernetes-validations`) with its own message.
    Cel,
    /// An OpenAPI keyword (`enum`, `pattern`, `minimum`, `maxItems`, list-map keys, ...); the
    /// message is the apiserver's generic wording.
    OpenApi,
}

/// One validation example.
#[derive(Debug, Clone)]
pub struct CelCase {
    /// Unique name, also used as `metadata.name` of the objects.
    pub name: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Whether the kind is namespaced (objects then go into the test's namespace).
    pub namespaced: bool,
    /// JSON path of the schema node whose rule is exercised, e.g. `.spec.access`.
    pub field: &'static str,
    /// Which mechanism rejects `invalid`.
    pub check: Check,
    /// An object the apiserver accepts on create.
    pub valid: Value,
    /// The rejected object: created as is, or (for `update`) written over `valid`.
    pub invalid: Value,
    /// Whether `invalid` is an update of `valid` (transition rules only run on updates).
    pub update: bool,
    /// For update cases: a different update of `valid` that must be accepted, showing the
    /// rule does not over-reject.
    pub accepted_update: Option<Value>,
    /// Substring of the error message expected for `invalid`.
    pub message: &'static str,
}

const NAMESPACED: &[&str] = &[
    "ServerClaim",
    "ServerBootConfiguration",
    "ServerMaintenance",
];

/// Builds a full object of `kind` named `name` from its top-level fields.
fn object(kind: &str, name: &str, mut body: Value) -> Value {
    body["apiVersion"] = json!(crate::API_VERSION);
    body["kind"] = json!(kind);
    body["metadata"]["name"] = json!(name);
    body
}

/// Returns `base` with the value at JSON pointer `path` replaced (parents are created).
fn with(mut base: Value, path: &str, value: Value) -> Value {
    let mut node = &mut base;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (last, parents) = parts.split_last().expect("non-empty pointer");
    for part in parents {
        node = match node {
            Value::Array(items) => &mut items[part.parse::<usize>().expect("array index")],
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .expect("object")
                    .entry(part.to_string())
                    .or_insert_with(|| json!({}))
            }
        };
    }
    match node {
        Value::Array(items) => {
            let index = last.parse::<usize>().expect("array index");
            if index == items.len() {
                items.push(value);
            } else {
                items[index] = value;
            }
        }
        other => {
            other
                .as_object_mut()
                .expect("object")
                .insert(last.to_string(), value);
        }
    }
    base
}

/// Returns `base` without the value at JSON pointer `path`.
fn without(mut base: Value, path: &str) -> Value {
    let (parent, last) = path.rsplit_once('/').expect("pointer with a parent");
    if let Some(Value::Object(map)) = base.pointer_mut(parent) {
        map.remove(last);
    }
    base
}

fn endpoint() -> Value {
    json!({ "spec": { "macAddress": "00:1a:2b:3c:4d:5e", "ip": "10.0.0.5" } })
}

fn bmc() -> Value {
    json!({ "spec": {
        "access": { "macAddress": "00:1a:2b:3c:4d:5e", "ip": "10.0.0.5" },
        "bmcSecretRef": { "name": "bmc-credentials" },
        "protocol": { "name": "Redfish", "port": 443, "scheme": "https" },
    }})
}

fn bmc_secret(immutable: bool) -> Value {
    json!({
        "immutable": immutable,
        "data": { "username": "YWRtaW4=" },
        "stringData": { "password": "s3cr3t" },
    })
}

fn bmc_user() -> Value {
    json!({ "spec": {
        "userName": "operator",
        "roleID": "Operator",
        "rotationPeriod": "720h",
        "bmcRef": { "name": "bmc-1" },
    }})
}

fn server() -> Value {
    json!({ "spec": {
        "systemUUID": "38947555-7742-3448-3784-823347823834",
        "bmcRef": { "name": "bmc-1" },
        "taints": [ { "key": "example.com/burn-in", "effect": "NoBind" } ],
    }})
}

fn claimed_server() -> Value {
    with(
        server(),
        "/spec/serverClaimRef",
        json!({ "namespace": "tenant-a", "name": "web-0" }),
    )
}

fn claim() -> Value {
    json!({ "spec": {
        "power": "On",
        "image": "ghcr.io/example/os:1.0",
        "serverSelector": { "matchLabels": { "pool": "web" } },
        "tolerations": [ { "key": "example.com/burn-in", "operator": "Exists" } ],
    }})
}

fn claim_by_name() -> Value {
    without(
        with(claim(), "/spec/serverRef", json!({ "name": "server-1" })),
        "/spec/serverSelector",
    )
}

fn boot_configuration() -> Value {
    json!({ "spec": {
        "serverRef": { "name": "server-1" },
        "image": "ghcr.io/example/os:1.0",
        "ignitionSecretRef": { "name": "server-1-ignition" },
    }})
}

fn readiness_rule() -> Value {
    json!({ "spec": {
        "conditions": [ { "type": "Ready", "requiredStatus": "True" } ],
        "enforcementMode": "Continuous",
        "taint": { "key": "example.com/not-ready", "value": "yes", "effect": "NoBind" },
        "serverSelector": { "matchLabels": { "pool": "web" } },
    }})
}

fn maintenance() -> Value {
    json!({ "spec": {
        "serverRef": { "name": "server-1" },
        "policy": "OwnerApproval",
        "serverPower": "Off",
    }})
}

fn flow() -> Value {
    json!([
        { "name": "virtualization", "priority": 1, "settings": { "ProcVirtualization": "Enabled" } },
        { "name": "boot", "priority": 2, "settings": { "BootMode": "Uefi" } },
    ])
}

fn bios_settings() -> Value {
    json!({ "spec": {
        "version": "2.19.1",
        "serverRef": { "name": "server-1" },
        "settingsFlow": flow(),
        "retryPolicy": { "maxAttempts": 3 },
    }})
}

fn image() -> Value {
    json!({ "URI": "https://firmware.example.com/bios-2.19.1.exe", "transferProtocol": "HTTPS" })
}

fn bios_version() -> Value {
    json!({ "spec": { "version": "2.19.1", "image": image(), "serverRef": { "name": "server-1" } } })
}

fn variables() -> Value {
    json!([
        { "key": "Name", "valueFrom": { "fieldRef": { "fieldPath": "spec.BMCRef.name" } } },
        { "key": "Domain", "valueFrom": { "configMapKeyRef": {
            "name": "bmc-network", "namespace": "metal-system", "key": "search-domain" } } },
    ])
}

fn bmc_settings() -> Value {
    json!({ "spec": {
        "version": "7.10.30.00",
        "BMCRef": { "name": "bmc-1" },
        "settings": { "NTPConfigGroup.1.NTP1": "ntp.example.com", "NIC.1.DNSDomainName": "$(Domain)" },
        "variables": variables(),
    }})
}

fn bmc_version() -> Value {
    json!({ "spec": { "version": "7.10.30.00", "image": image(), "bmcRef": { "name": "bmc-1" } } })
}

fn bios_settings_set() -> Value {
    json!({ "spec": {
        "biosSettingsTemplate": { "version": "2.19.1", "settingsFlow": flow() },
        "serverSelector": { "matchLabels": { "pool": "web" } },
    }})
}

fn bios_version_set() -> Value {
    json!({ "spec": {
        "biosVersionTemplate": { "version": "2.19.1", "image": image() },
        "serverSelector": { "matchLabels": { "pool": "web" } },
    }})
}

fn bmc_settings_set() -> Value {
    json!({ "spec": {
        "bmcSettingsTemplate": { "version": "7.10.30.00", "variables": variables() },
        "bmcSelector": { "matchLabels": { "vendor": "dell" } },
    }})
}

fn bmc_version_set() -> Value {
    json!({ "spec": {
        "bmcVersionTemplate": { "version": "7.10.30.00", "image": image() },
        "bmcSelector": { "matchLabels": { "vendor": "dell" } },
    }})
}

struct Builder {
    cases: Vec<CelCase>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &'static str,
        kind: &'static str,
        field: &'static str,
        check: Check,
        valid: Value,
        invalid: Value,
        update: bool,
        accepted_update: Option<Value>,
        message: &'static str,
    ) {
        self.cases.push(CelCase {
            name,
            kind,
            namespaced: NAMESPACED.contains(&kind),
            field,
            check,
            valid: object(kind, name, valid),
            invalid: object(kind, name, invalid),
            update,
            accepted_update: accepted_update.map(|v| object(kind, name, v)),
            message,
        });
    }

    /// A create-time CEL rule: `invalid` is rejected on create.
    fn cel(
        &mut self,
        name: &'static str,
        kind: &'static str,
        field: &'static str,
        valid: Value,
        invalid: Value,
        message: &'static str,
    ) {
        self.push(
            name,
            kind,
            field,
            Check::Cel,
            valid,
            invalid,
            false,
            None,
            message,
        );
    }

    /// A transition CEL rule: updating `valid` to `invalid` is rejected, to `accepted` is not.
    #[allow(clippy::too_many_arguments)]
    fn cel_update(
        &mut self,
        name: &'static str,
        kind: &'static str,
        field: &'static str,
        valid: Value,
        invalid: Value,
        accepted: Option<Value>,
        message: &'static str,
    ) {
        self.push(
            name,
            kind,
            field,
            Check::Cel,
            valid,
            invalid,
            true,
            accepted,
            message,
        );
    }

    /// An OpenAPI constraint: `invalid` is rejected on create.
    fn openapi(
        &mut self,
        name: &'static str,
        kind: &'static str,
        field: &'static str,
        valid: Value,
        invalid: Value,
        message: &'static str,
    ) {
        self.push(
            name,
            kind,
            field,
            Check::OpenApi,
            valid,
            invalid,
            false,
            None,
            message,
        );
    }
}

/// Every validation example.
pub fn cases() -> Vec<CelCase> {
    let mut b = Builder { cases: Vec::new() };
    let mac = "must be a MAC address";
    let ip = "must be a valid IPv4 or IPv6 address";
    let port = "port must be between 1 and 65535";

    // Endpoint
    b.cel(
        "cel-endpoint-mac",
        "Endpoint",
        ".spec.macAddress",
        endpoint(),
        with(endpoint(), "/spec/macAddress", json!("00:1a:2b:3c:4d")),
        mac,
    );
    b.cel(
        "cel-endpoint-ip",
        "Endpoint",
        ".spec.ip",
        endpoint(),
        with(endpoint(), "/spec/ip", json!("10.0.0.256")),
        ip,
    );

    // BMC
    b.cel(
        "cel-bmc-access-and-endpointref",
        "BMC",
        ".spec",
        bmc(),
        with(bmc(), "/spec/endpointRef", json!({ "name": "legacy" })),
        "exactly one of access or endpointRef must be set",
    );
    b.cel(
        "cel-bmc-neither-access-nor-endpointref",
        "BMC",
        ".spec",
        bmc(),
        without(bmc(), "/spec/access"),
        "exactly one of access or endpointRef must be set",
    );
    b.cel_update(
        "cel-bmc-access-immutable",
        "BMC",
        ".spec.access",
        bmc(),
        with(bmc(), "/spec/access/ip", json!("10.0.0.6")),
        Some(with(bmc(), "/spec/hostname", json!("bmc-1.example.com"))),
        "access is immutable",
    );
    let legacy = with(
        without(bmc(), "/spec/access"),
        "/spec/endpointRef",
        json!({ "name": "legacy" }),
    );
    b.cel_update(
        "cel-bmc-endpointref-immutable",
        "BMC",
        ".spec.endpointRef",
        legacy.clone(),
        with(legacy.clone(), "/spec/endpointRef/name", json!("other")),
        Some(with(
            without(legacy, "/spec/endpointRef"),
            "/spec/access",
            json!({ "macAddress": "00:1a:2b:3c:4d:5e", "ip": "10.0.0.5" }),
        )),
        "endpointRef is immutable",
    );
    b.cel(
        "cel-bmc-access-mac",
        "BMC",
        ".spec.access.macAddress",
        bmc(),
        with(bmc(), "/spec/access/macAddress", json!("zz:1a:2b:3c:4d:5e")),
        mac,
    );
    b.cel(
        "cel-bmc-access-ip",
        "BMC",
        ".spec.access.ip",
        bmc(),
        with(bmc(), "/spec/access/ip", json!("10.0.0.5/24")),
        ip,
    );
    b.cel(
        "cel-bmc-protocol-port",
        "BMC",
        ".spec.protocol.port",
        bmc(),
        with(bmc(), "/spec/protocol/port", json!(0)),
        port,
    );
    b.cel(
        "cel-bmc-console-port",
        "BMC",
        ".spec.consoleProtocol.port",
        with(
            bmc(),
            "/spec/consoleProtocol",
            json!({ "name": "SSH", "port": 22 }),
        ),
        with(
            bmc(),
            "/spec/consoleProtocol",
            json!({ "name": "SSH", "port": 65536 }),
        ),
        port,
    );
    b.openapi(
        "openapi-bmc-protocol-name",
        "BMC",
        ".spec.protocol.name",
        bmc(),
        with(bmc(), "/spec/protocol/name", json!("Telnet")),
        "Unsupported value",
    );

    // BMCSecret (root-level transition rules replace upstream's webhook)
    b.cel_update(
        "cel-bmcsecret-immutable-stays",
        "BMCSecret",
        ".",
        bmc_secret(true),
        with(bmc_secret(true), "/immutable", json!(false)),
        Some(with(
            bmc_secret(true),
            "/metadata/labels",
            json!({ "rack": "r1" }),
        )),
        "immutable cannot be unset",
    );
    b.cel_update(
        "cel-bmcsecret-data-frozen",
        "BMCSecret",
        ".",
        bmc_secret(true),
        with(bmc_secret(true), "/data/username", json!("cm9vdA==")),
        None,
        "data cannot change while immutable is true",
    );
    b.cel_update(
        "cel-bmcsecret-stringdata-frozen",
        "BMCSecret",
        ".",
        bmc_secret(true),
        with(bmc_secret(true), "/stringData/password", json!("rotated")),
        None,
        "stringData cannot change while immutable is true",
    );
    b.cel_update(
        "cel-bmcsecret-data-removed",
        "BMCSecret",
        ".",
        bmc_secret(true),
        without(bmc_secret(true), "/data"),
        None,
        "data cannot change while immutable is true",
    );

    // BMCUser
    b.cel(
        "cel-bmcuser-username",
        "BMCUser",
        ".spec.userName",
        bmc_user(),
        with(bmc_user(), "/spec/userName", json!("")),
        "userName must not be empty",
    );
    b.cel(
        "cel-bmcuser-rotation-period",
        "BMCUser",
        ".spec.rotationPeriod",
        bmc_user(),
        with(bmc_user(), "/spec/rotationPeriod", json!("30 days")),
        "rotationPeriod must be a duration",
    );

    // Server
    b.cel_update(
        "cel-server-claimref-name",
        "Server",
        ".spec.serverClaimRef.name",
        claimed_server(),
        with(
            claimed_server(),
            "/spec/serverClaimRef/name",
            json!("web-1"),
        ),
        Some(server()),
        "name of this reference is immutable",
    );
    b.cel_update(
        "cel-server-claimref-namespace",
        "Server",
        ".spec.serverClaimRef.namespace",
        claimed_server(),
        with(
            claimed_server(),
            "/spec/serverClaimRef/namespace",
            json!("tenant-b"),
        ),
        Some(server()),
        "namespace of this reference is immutable",
    );
    b.cel(
        "cel-server-taint-key",
        "Server",
        ".spec.taints[*].key",
        server(),
        with(server(), "/spec/taints/0/key", json!("")),
        "taint key must not be empty",
    );
    b.cel(
        "cel-server-inline-bmc-port",
        "Server",
        ".spec.bmc.protocol.port",
        with(
            server(),
            "/spec/bmc",
            json!({ "protocol": { "name": "Redfish", "port": 443 },
            "address": "10.0.0.5", "bmcSecretRef": { "name": "bmc-credentials" } }),
        ),
        with(
            server(),
            "/spec/bmc",
            json!({ "protocol": { "name": "Redfish", "port": 99999 },
            "address": "10.0.0.5", "bmcSecretRef": { "name": "bmc-credentials" } }),
        ),
        port,
    );
    b.openapi(
        "openapi-server-duplicate-taint",
        "Server",
        ".spec.taints",
        server(),
        with(
            server(),
            "/spec/taints/1",
            json!({ "key": "example.com/burn-in", "value": "again" }),
        ),
        "Duplicate value",
    );
    b.openapi(
        "openapi-server-reclaim-policy",
        "Server",
        ".spec.reclaimPolicy",
        server(),
        with(server(), "/spec/reclaimPolicy", json!("Delete")),
        "Unsupported value",
    );

    // ServerClaim
    b.cel_update(
        "cel-serverclaim-serverref-immutable",
        "ServerClaim",
        ".spec.serverRef",
        claim_by_name(),
        with(claim_by_name(), "/spec/serverRef/name", json!("server-2")),
        Some(with(claim_by_name(), "/spec/power", json!("Off"))),
        "serverRef is immutable",
    );
    b.cel_update(
        "cel-serverclaim-serverref-kept",
        "ServerClaim",
        ".spec",
        claim_by_name(),
        without(claim_by_name(), "/spec/serverRef"),
        None,
        "serverRef cannot be removed once set",
    );
    b.cel_update(
        "cel-serverclaim-selector-immutable",
        "ServerClaim",
        ".spec.serverSelector",
        claim(),
        with(
            claim(),
            "/spec/serverSelector/matchLabels/pool",
            json!("db"),
        ),
        Some(with(
            claim(),
            "/spec/serverRef",
            json!({ "name": "server-1" }),
        )),
        "serverSelector is immutable",
    );
    b.cel_update(
        "cel-serverclaim-selector-kept",
        "ServerClaim",
        ".spec",
        claim(),
        without(claim(), "/spec/serverSelector"),
        None,
        "serverSelector cannot be removed once set",
    );
    b.cel(
        "cel-serverclaim-toleration-key",
        "ServerClaim",
        ".spec.tolerations[*].key",
        claim(),
        with(claim(), "/spec/tolerations/0/key", json!("")),
        "toleration key must not be empty",
    );
    b.cel(
        "cel-serverclaim-toleration-exists-value",
        "ServerClaim",
        ".spec.tolerations[*]",
        claim(),
        with(claim(), "/spec/tolerations/0/value", json!("yes")),
        "value must be empty when operator is Exists",
    );
    b.openapi(
        "openapi-serverclaim-power",
        "ServerClaim",
        ".spec.power",
        claim(),
        with(claim(), "/spec/power", json!("Standby")),
        "Unsupported value",
    );

    // ServerBootConfiguration
    b.cel_update(
        "cel-sbc-serverref-immutable",
        "ServerBootConfiguration",
        ".spec.serverRef",
        boot_configuration(),
        with(
            boot_configuration(),
            "/spec/serverRef/name",
            json!("server-2"),
        ),
        Some(with(
            boot_configuration(),
            "/spec/image",
            json!("ghcr.io/example/os:1.1"),
        )),
        "serverRef is immutable",
    );

    // ServerBootConfiguration: our additions (boot method, plain boot artifacts, ISO).
    b.cel(
        "cel-sbc-virtualmedia-needs-iso",
        "ServerBootConfiguration",
        ".spec",
        with(
            with(
                boot_configuration(),
                "/spec/bootMethod",
                json!("VirtualMedia"),
            ),
            "/spec/isoURL",
            json!("https://images.example.com/os.iso"),
        ),
        with(
            boot_configuration(),
            "/spec/bootMethod",
            json!("VirtualMedia"),
        ),
        "isoURL is required when bootMethod is VirtualMedia",
    );
    b.cel(
        "cel-sbc-iso-url",
        "ServerBootConfiguration",
        ".spec.isoURL",
        with(
            boot_configuration(),
            "/spec/isoURL",
            json!("https://images.example.com/os.iso"),
        ),
        with(boot_configuration(), "/spec/isoURL", json!("os.iso")),
        "isoURL must be an absolute URL",
    );
    let artifacts = || {
        with(
            boot_configuration(),
            "/spec/bootArtifacts",
            json!({
                "kernelURL": "http://boot.example.com/vmlinuz",
                "initrdURL": "http://boot.example.com/initrd",
                "rootImageURL": "http://boot.example.com/root.squashfs",
                "cmdline": "console=ttyS0 gl.url=${rootfs-url}",
            }),
        )
    };
    b.cel(
        "cel-sbc-artifacts-kernel-required",
        "ServerBootConfiguration",
        ".spec.bootArtifacts",
        artifacts(),
        with(
            boot_configuration(),
            "/spec/bootArtifacts",
            json!({ "initrdURL": "http://boot.example.com/initrd" }),
        ),
        "bootArtifacts.kernelURL is required",
    );
    b.cel(
        "cel-sbc-artifacts-kernel-url",
        "ServerBootConfiguration",
        ".spec.bootArtifacts.kernelURL",
        artifacts(),
        with(
            artifacts(),
            "/spec/bootArtifacts/kernelURL",
            json!("vmlinuz"),
        ),
        "kernelURL must be an absolute URL",
    );
    b.cel(
        "cel-sbc-artifacts-initrd-url",
        "ServerBootConfiguration",
        ".spec.bootArtifacts.initrdURL",
        artifacts(),
        with(
            artifacts(),
            "/spec/bootArtifacts/initrdURL",
            json!("initrd"),
        ),
        "initrdURL must be an absolute URL",
    );
    b.cel(
        "cel-sbc-artifacts-root-url",
        "ServerBootConfiguration",
        ".spec.bootArtifacts.rootImageURL",
        artifacts(),
        with(
            artifacts(),
            "/spec/bootArtifacts/rootImageURL",
            json!("root"),
        ),
        "rootImageURL must be an absolute URL",
    );
    b.cel(
        "cel-sbc-artifacts-cmdline-one-line",
        "ServerBootConfiguration",
        ".spec.bootArtifacts.cmdline",
        artifacts(),
        with(
            artifacts(),
            "/spec/bootArtifacts/cmdline",
            json!("console=ttyS0\nshell"),
        ),
        "cmdline must be a single line",
    );

    // ServerReadinessRule
    let rule = readiness_rule;
    b.cel_update(
        "cel-srr-spec-immutable",
        "ServerReadinessRule",
        ".spec",
        rule(),
        with(rule(), "/spec/enforcementMode", json!("BootstrapOnly")),
        None,
        "spec is immutable",
    );
    b.cel_update(
        "cel-srr-conditions-immutable",
        "ServerReadinessRule",
        ".spec.conditions",
        rule(),
        with(rule(), "/spec/conditions/0/requiredStatus", json!("False")),
        None,
        "conditions is immutable",
    );
    b.cel_update(
        "cel-srr-enforcement-immutable",
        "ServerReadinessRule",
        ".spec.enforcementMode",
        rule(),
        with(rule(), "/spec/enforcementMode", json!("BootstrapOnly")),
        None,
        "enforcementMode is immutable",
    );
    b.cel_update(
        "cel-srr-taint-key-immutable",
        "ServerReadinessRule",
        ".spec.taint",
        rule(),
        with(rule(), "/spec/taint/key", json!("example.com/other")),
        None,
        "taint key is immutable",
    );
    b.cel_update(
        "cel-srr-taint-value-immutable",
        "ServerReadinessRule",
        ".spec.taint",
        rule(),
        with(rule(), "/spec/taint/value", json!("no")),
        None,
        "taint value is immutable",
    );
    b.cel_update(
        "cel-srr-taint-effect-immutable",
        "ServerReadinessRule",
        ".spec.taint",
        rule(),
        with(rule(), "/spec/taint/effect", json!("Evict")),
        None,
        "taint effect is immutable",
    );
    b.cel_update(
        "cel-srr-selector-immutable",
        "ServerReadinessRule",
        ".spec.serverSelector",
        rule(),
        with(rule(), "/spec/serverSelector/matchLabels/pool", json!("db")),
        None,
        "serverSelector is immutable",
    );
    b.cel(
        "cel-srr-taint-key-length",
        "ServerReadinessRule",
        ".spec.taint",
        rule(),
        with(rule(), "/spec/taint/key", json!("k".repeat(254))),
        "taint key must be at most 253 characters",
    );
    b.cel(
        "cel-srr-taint-key-empty",
        "ServerReadinessRule",
        ".spec.taint.key",
        rule(),
        with(rule(), "/spec/taint/key", json!("")),
        "taint key must not be empty",
    );
    b.openapi(
        "openapi-srr-conditions-min",
        "ServerReadinessRule",
        ".spec.conditions",
        rule(),
        with(rule(), "/spec/conditions", json!([])),
        "should have at least 1 items",
    );
    b.openapi(
        "openapi-srr-conditions-unique",
        "ServerReadinessRule",
        ".spec.conditions",
        rule(),
        with(
            rule(),
            "/spec/conditions/1",
            json!({ "type": "Ready", "requiredStatus": "False" }),
        ),
        "Duplicate value",
    );

    // ServerMaintenance
    b.cel_update(
        "cel-sm-serverref-immutable",
        "ServerMaintenance",
        ".spec.serverRef",
        maintenance(),
        with(maintenance(), "/spec/serverRef/name", json!("server-2")),
        Some(with(maintenance(), "/spec/policy", json!("Enforced"))),
        "serverRef is immutable",
    );
    let templated = with(
        maintenance(),
        "/spec/serverBootConfigurationTemplate",
        json!({
            "name": "server-1-maintenance",
            "spec": { "serverRef": { "name": "server-1" }, "image": "ghcr.io/example/diag:1.0" },
        }),
    );
    b.cel_update(
        "cel-sm-template-serverref-immutable",
        "ServerMaintenance",
        ".spec.serverBootConfigurationTemplate.spec.serverRef",
        templated.clone(),
        with(
            templated.clone(),
            "/spec/serverBootConfigurationTemplate/spec/serverRef/name",
            json!("server-2"),
        ),
        Some(with(
            templated,
            "/spec/serverBootConfigurationTemplate/spec/image",
            json!("ghcr.io/example/diag:1.1"),
        )),
        "serverRef is immutable",
    );
    b.cel(
        "cel-sm-template-names-the-server",
        "ServerMaintenance",
        ".spec",
        with(
            maintenance(),
            "/spec/serverBootConfigurationTemplate",
            json!({
                "name": "server-1-maintenance",
                "spec": { "serverRef": { "name": "server-1" }, "image": "ghcr.io/example/diag:1.0" },
            }),
        ),
        with(
            maintenance(),
            "/spec/serverBootConfigurationTemplate",
            json!({
                "name": "server-1-maintenance",
                "spec": { "serverRef": { "name": "server-9" }, "image": "ghcr.io/example/diag:1.0" },
            }),
        ),
        "serverBootConfigurationTemplate.spec.serverRef must name the maintained server",
    );
    // The template embeds a ServerBootConfiguration spec, so our SBC additions are checked
    // there too.
    let sm_sbc = |spec: Value| {
        with(
            maintenance(),
            "/spec/serverBootConfigurationTemplate",
            json!({ "name": "server-1-maintenance", "spec": spec }),
        )
    };
    let sbc_spec = |extra: Value| {
        let mut spec = json!({ "serverRef": { "name": "server-1" } });
        for (k, v) in extra.as_object().expect("object") {
            spec[k] = v.clone();
        }
        spec
    };
    let good_artifacts = json!({
        "kernelURL": "http://boot.example.com/vmlinuz",
        "initrdURL": "http://boot.example.com/initrd",
        "rootImageURL": "http://boot.example.com/root.squashfs",
        "cmdline": "console=ttyS0",
    });
    let artifacts_with = |key: &str, value: Value| {
        let mut a = good_artifacts.clone();
        a[key] = value;
        sm_sbc(sbc_spec(json!({ "bootArtifacts": a })))
    };
    let iso = "https://images.example.com/os.iso";
    b.cel(
        "cel-sm-template-virtualmedia-needs-iso",
        "ServerMaintenance",
        ".spec.serverBootConfigurationTemplate.spec",
        sm_sbc(sbc_spec(
            json!({ "bootMethod": "VirtualMedia", "isoURL": iso }),
        )),
        sm_sbc(sbc_spec(json!({ "bootMethod": "VirtualMedia" }))),
        "isoURL is required when bootMethod is VirtualMedia",
    );
    b.cel(
        "cel-sm-template-iso-url",
        "ServerMaintenance",
        ".spec.serverBootConfigurationTemplate.spec.isoURL",
        sm_sbc(sbc_spec(json!({ "isoURL": iso }))),
        sm_sbc(sbc_spec(json!({ "isoURL": "os.iso" }))),
        "isoURL must be an absolute URL",
    );
    b.cel(
        "cel-sm-template-artifacts-kernel-required",
        "ServerMaintenance",
        ".spec.serverBootConfigurationTemplate.spec.bootArtifacts",
        sm_sbc(sbc_spec(json!({ "bootArtifacts": good_artifacts.clone() }))),
        sm_sbc(sbc_spec(
            json!({ "bootArtifacts": { "initrdURL": "http://boot.example.com/initrd" } }),
        )),
        "bootArtifacts.kernelURL is required",
    );
    for (name, key, message) in [
        (
            "cel-sm-template-artifacts-kernel-url",
            "kernelURL",
            "kernelURL must be an absolute URL",
        ),
        (
            "cel-sm-template-artifacts-initrd-url",
            "initrdURL",
            "initrdURL must be an absolute URL",
        ),
        (
            "cel-sm-template-artifacts-root-url",
            "rootImageURL",
            "rootImageURL must be an absolute URL",
        ),
    ] {
        b.cel(
            name,
            "ServerMaintenance",
            ".spec.serverBootConfigurationTemplate.spec.bootArtifacts",
            sm_sbc(sbc_spec(json!({ "bootArtifacts": good_artifacts.clone() }))),
            artifacts_with(key, json!("relative/path")),
            message,
        );
    }
    b.cel(
        "cel-sm-template-artifacts-cmdline-one-line",
        "ServerMaintenance",
        ".spec.serverBootConfigurationTemplate.spec.bootArtifacts.cmdline",
        artifacts_with("cmdline", json!("console=ttyS0")),
        artifacts_with("cmdline", json!("console=ttyS0\rshell")),
        "cmdline must be a single line",
    );

    // BIOSSettings
    b.cel_update(
        "cel-bioss-serverref-immutable",
        "BIOSSettings",
        ".spec.serverRef",
        bios_settings(),
        with(bios_settings(), "/spec/serverRef/name", json!("server-2")),
        Some(with(bios_settings(), "/spec/version", json!("2.19.2"))),
        "serverRef is immutable",
    );
    b.cel(
        "cel-bioss-flow-names",
        "BIOSSettings",
        ".spec.settingsFlow",
        bios_settings(),
        with(
            bios_settings(),
            "/spec/settingsFlow/1/name",
            json!("virtualization"),
        ),
        "settingsFlow names must be unique",
    );
    b.cel(
        "cel-bioss-flow-priorities",
        "BIOSSettings",
        ".spec.settingsFlow",
        bios_settings(),
        with(bios_settings(), "/spec/settingsFlow/1/priority", json!(1)),
        "settingsFlow priorities must be unique",
    );
    b.openapi(
        "openapi-bioss-priority-min",
        "BIOSSettings",
        ".spec.settingsFlow[*].priority",
        bios_settings(),
        with(bios_settings(), "/spec/settingsFlow/0/priority", json!(0)),
        "should be greater than or equal to 1",
    );
    b.openapi(
        "openapi-bioss-retry-max",
        "BIOSSettings",
        ".spec.retryPolicy.maxAttempts",
        bios_settings(),
        with(bios_settings(), "/spec/retryPolicy/maxAttempts", json!(11)),
        "should be less than or equal to 10",
    );

    // BIOSVersion
    b.cel_update(
        "cel-biosv-serverref-immutable",
        "BIOSVersion",
        ".spec.serverRef",
        bios_version(),
        with(bios_version(), "/spec/serverRef/name", json!("server-2")),
        Some(with(bios_version(), "/spec/updatePolicy", json!("Force"))),
        "serverRef is immutable",
    );
    b.cel(
        "cel-biosv-image-uri",
        "BIOSVersion",
        ".spec.image.URI",
        bios_version(),
        with(bios_version(), "/spec/image/URI", json!("")),
        "image URI must not be empty",
    );

    // Roll-out limits of the sets: a positive count or a percentage; a positive threshold.
    b.cel(
        "cel-bmcvs-rollout-percent",
        "BMCVersionSet",
        ".spec.rollout.maxInMaintenance",
        with(
            bmc_version_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": "10%", "pauseAfterFailures": 2 }),
        ),
        with(
            bmc_version_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": "ten" }),
        ),
        "maxInMaintenance must be a positive count",
    );
    b.cel(
        "cel-biosvs-rollout-count",
        "BIOSVersionSet",
        ".spec.rollout.maxInMaintenance",
        with(
            bios_version_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": 5 }),
        ),
        with(
            bios_version_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": 0 }),
        ),
        "maxInMaintenance must be a positive count",
    );
    b.cel(
        "cel-biosss-rollout-failures",
        "BIOSSettingsSet",
        ".spec.rollout.pauseAfterFailures",
        with(
            bios_settings_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 1 }),
        ),
        with(
            bios_settings_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 0 }),
        ),
        "pauseAfterFailures must be at least 1",
    );
    b.cel(
        "cel-biosss-rollout-count",
        "BIOSSettingsSet",
        ".spec.rollout.maxInMaintenance",
        with(
            bios_settings_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": "100%" }),
        ),
        with(
            bios_settings_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": "101%" }),
        ),
        "maxInMaintenance must be a positive count",
    );
    b.cel(
        "cel-biosvs-rollout-failures",
        "BIOSVersionSet",
        ".spec.rollout.pauseAfterFailures",
        with(
            bios_version_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 3 }),
        ),
        with(
            bios_version_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": -1 }),
        ),
        "pauseAfterFailures must be at least 1",
    );
    b.cel(
        "cel-bmcvs-rollout-failures",
        "BMCVersionSet",
        ".spec.rollout.pauseAfterFailures",
        with(
            bmc_version_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 3 }),
        ),
        with(
            bmc_version_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 0 }),
        ),
        "pauseAfterFailures must be at least 1",
    );
    b.cel(
        "cel-bmcss-rollout-count",
        "BMCSettingsSet",
        ".spec.rollout.maxInMaintenance",
        with(
            bmc_settings_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": 2 }),
        ),
        with(
            bmc_settings_set(),
            "/spec/rollout",
            json!({ "maxInMaintenance": "0%" }),
        ),
        "maxInMaintenance must be a positive count",
    );
    b.cel(
        "cel-bmcss-rollout-failures",
        "BMCSettingsSet",
        ".spec.rollout.pauseAfterFailures",
        with(
            bmc_settings_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 1 }),
        ),
        with(
            bmc_settings_set(),
            "/spec/rollout",
            json!({ "pauseAfterFailures": 0 }),
        ),
        "pauseAfterFailures must be at least 1",
    );
    b.cel(
        "cel-biosv-stone-version",
        "BIOSVersion",
        ".spec.steppingStones[].version",
        with(
            bios_version(),
            "/spec/steppingStones",
            json!([{ "version": "2.0", "image": image() }]),
        ),
        with(
            bios_version(),
            "/spec/steppingStones",
            json!([{ "version": "", "image": image() }]),
        ),
        "steppingStones[].version must not be empty",
    );
    b.cel(
        "cel-biosv-stone-uri",
        "BIOSVersion",
        ".spec.steppingStones[].image.URI",
        with(
            bios_version(),
            "/spec/steppingStones",
            json!([{ "version": "1.0", "image": image() }]),
        ),
        with(
            bios_version(),
            "/spec/steppingStones",
            json!([{ "version": "2.0", "image": { "URI": "" } }]),
        ),
        "image URI must not be empty",
    );
    b.cel(
        "cel-bmcv-stone-uri",
        "BMCVersion",
        ".spec.steppingStones[].image.URI",
        with(
            bmc_version(),
            "/spec/steppingStones",
            json!([{ "version": "1.0", "image": image() }]),
        ),
        with(
            bmc_version(),
            "/spec/steppingStones",
            json!([{ "version": "6.0", "image": { "URI": "" } }]),
        ),
        "image URI must not be empty",
    );
    b.cel(
        "cel-biosvs-stone-version",
        "BIOSVersionSet",
        ".spec.biosVersionTemplate.steppingStones[].version",
        with(
            bios_version_set(),
            "/spec/biosVersionTemplate/steppingStones",
            json!([{ "version": "1.0", "image": image() }]),
        ),
        with(
            bios_version_set(),
            "/spec/biosVersionTemplate/steppingStones",
            json!([{ "version": "", "image": image() }]),
        ),
        "steppingStones[].version must not be empty",
    );
    b.cel(
        "cel-biosvs-stone-uri",
        "BIOSVersionSet",
        ".spec.biosVersionTemplate.steppingStones[].image.URI",
        with(
            bios_version_set(),
            "/spec/biosVersionTemplate/steppingStones",
            json!([{ "version": "1.0", "image": image() }]),
        ),
        with(
            bios_version_set(),
            "/spec/biosVersionTemplate/steppingStones",
            json!([{ "version": "2.0", "image": { "URI": "" } }]),
        ),
        "image URI must not be empty",
    );
    b.cel(
        "cel-bmcvs-stone-version",
        "BMCVersionSet",
        ".spec.bmcVersionTemplate.steppingStones[].version",
        with(
            bmc_version_set(),
            "/spec/bmcVersionTemplate/steppingStones",
            json!([{ "version": "1.0", "image": image() }]),
        ),
        with(
            bmc_version_set(),
            "/spec/bmcVersionTemplate/steppingStones",
            json!([{ "version": "", "image": image() }]),
        ),
        "steppingStones[].version must not be empty",
    );
    b.cel(
        "cel-bmcvs-stone-uri",
        "BMCVersionSet",
        ".spec.bmcVersionTemplate.steppingStones[].image.URI",
        with(
            bmc_version_set(),
            "/spec/bmcVersionTemplate/steppingStones",
            json!([{ "version": "1.0", "image": image() }]),
        ),
        with(
            bmc_version_set(),
            "/spec/bmcVersionTemplate/steppingStones",
            json!([{ "version": "6.0", "image": { "URI": "" } }]),
        ),
        "image URI must not be empty",
    );
    b.cel(
        "cel-bmcv-stone-version",
        "BMCVersion",
        ".spec.steppingStones[].version",
        with(
            bmc_version(),
            "/spec/steppingStones",
            json!([{ "version": "6.0", "image": image() }]),
        ),
        with(
            bmc_version(),
            "/spec/steppingStones",
            json!([{ "version": "", "image": image() }]),
        ),
        "steppingStones[].version must not be empty",
    );

    // Every kind naming a firmware version: the version must not be empty.
    b.cel(
        "cel-bios-version-empty",
        "BIOSSettings",
        ".spec.version",
        bios_settings(),
        with(bios_settings(), "/spec/version", json!("")),
        "version must not be empty",
    );
    b.cel(
        "cel-biosv-version-empty",
        "BIOSVersion",
        ".spec.version",
        bios_version(),
        with(bios_version(), "/spec/version", json!("")),
        "version must not be empty",
    );
    b.cel(
        "cel-bmcs-version-empty",
        "BMCSettings",
        ".spec.version",
        bmc_settings(),
        with(bmc_settings(), "/spec/version", json!("")),
        "version must not be empty",
    );
    b.cel(
        "cel-bmcv-version-empty",
        "BMCVersion",
        ".spec.version",
        bmc_version(),
        with(bmc_version(), "/spec/version", json!("")),
        "version must not be empty",
    );
    b.cel(
        "cel-biosss-version-empty",
        "BIOSSettingsSet",
        ".spec.biosSettingsTemplate.version",
        bios_settings_set(),
        with(
            bios_settings_set(),
            "/spec/biosSettingsTemplate/version",
            json!(""),
        ),
        "version must not be empty",
    );
    b.cel(
        "cel-biosvs-version-empty",
        "BIOSVersionSet",
        ".spec.biosVersionTemplate.version",
        bios_version_set(),
        with(
            bios_version_set(),
            "/spec/biosVersionTemplate/version",
            json!(""),
        ),
        "version must not be empty",
    );
    b.cel(
        "cel-bmcss-version-empty",
        "BMCSettingsSet",
        ".spec.bmcSettingsTemplate.version",
        bmc_settings_set(),
        with(
            bmc_settings_set(),
            "/spec/bmcSettingsTemplate/version",
            json!(""),
        ),
        "version must not be empty",
    );
    b.cel(
        "cel-bmcvs-version-empty",
        "BMCVersionSet",
        ".spec.bmcVersionTemplate.version",
        bmc_version_set(),
        with(
            bmc_version_set(),
            "/spec/bmcVersionTemplate/version",
            json!(""),
        ),
        "version must not be empty",
    );

    // BMCSettings
    b.cel_update(
        "cel-bmcs-bmcref-immutable",
        "BMCSettings",
        ".spec.BMCRef",
        bmc_settings(),
        with(bmc_settings(), "/spec/BMCRef/name", json!("bmc-2")),
        Some(with(bmc_settings(), "/spec/version", json!("7.10.50.00"))),
        "BMCRef is immutable",
    );
    b.cel(
        "cel-bmcs-variable-keys",
        "BMCSettings",
        ".spec.variables",
        bmc_settings(),
        with(bmc_settings(), "/spec/variables/1/key", json!("Name")),
        "variable keys must be unique",
    );
    b.cel(
        "cel-bmcs-variable-two-sources",
        "BMCSettings",
        ".spec.variables[*].valueFrom",
        bmc_settings(),
        with(
            bmc_settings(),
            "/spec/variables/0/valueFrom/secretKeyRef",
            json!({ "name": "licenses", "namespace": "metal-system", "key": "bmc-1" }),
        ),
        "set exactly one of fieldRef, objectFieldRef, configMapKeyRef or secretKeyRef",
    );
    b.cel(
        "cel-bmcs-variable-no-source",
        "BMCSettings",
        ".spec.variables[*].valueFrom",
        bmc_settings(),
        with(bmc_settings(), "/spec/variables/0/valueFrom", json!({})),
        "set exactly one of fieldRef, objectFieldRef, configMapKeyRef or secretKeyRef",
    );
    b.cel("cel-bmcs-object-field-kind", "BMCSettings", ".spec.variables[*].valueFrom",
        with(bmc_settings(), "/spec/variables/0/valueFrom",
            json!({ "objectFieldRef": { "kind": "BMC", "name": "bmc-1", "fieldPath": "status.ip" } })),
        with(bmc_settings(), "/spec/variables/0/valueFrom",
            json!({ "objectFieldRef": { "kind": "Server", "name": "server-1", "fieldPath": "status.sku" } })),
        "objectFieldRef.kind must be BMC");
    let many: Vec<Value> = (0..65)
        .map(|i| json!({ "key": format!("V{i}"), "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }))
        .collect();
    b.openapi(
        "openapi-bmcs-variables-max",
        "BMCSettings",
        ".spec.variables",
        bmc_settings(),
        with(bmc_settings(), "/spec/variables", Value::Array(many)),
        "must have at most 64 items",
    );

    // BMCVersion
    b.cel_update(
        "cel-bmcv-bmcref-immutable",
        "BMCVersion",
        ".spec.bmcRef",
        bmc_version(),
        with(bmc_version(), "/spec/bmcRef/name", json!("bmc-2")),
        Some(with(bmc_version(), "/spec/version", json!("7.10.50.00"))),
        "bmcRef is immutable",
    );
    b.cel(
        "cel-bmcv-image-uri",
        "BMCVersion",
        ".spec.image.URI",
        bmc_version(),
        with(bmc_version(), "/spec/image/URI", json!("")),
        "image URI must not be empty",
    );

    // Sets
    b.cel(
        "cel-biosss-selector",
        "BIOSSettingsSet",
        ".spec.serverSelector",
        bios_settings_set(),
        with(bios_settings_set(), "/spec/serverSelector", json!({})),
        "serverSelector must have matchLabels or matchExpressions",
    );
    b.cel(
        "cel-biosss-flow-names",
        "BIOSSettingsSet",
        ".spec.biosSettingsTemplate.settingsFlow",
        bios_settings_set(),
        with(
            bios_settings_set(),
            "/spec/biosSettingsTemplate/settingsFlow/1/name",
            json!("virtualization"),
        ),
        "settingsFlow names must be unique",
    );
    b.cel(
        "cel-biosss-flow-priorities",
        "BIOSSettingsSet",
        ".spec.biosSettingsTemplate.settingsFlow",
        bios_settings_set(),
        with(
            bios_settings_set(),
            "/spec/biosSettingsTemplate/settingsFlow/1/priority",
            json!(1),
        ),
        "settingsFlow priorities must be unique",
    );
    b.cel(
        "cel-biosvs-selector",
        "BIOSVersionSet",
        ".spec.serverSelector",
        bios_version_set(),
        with(
            bios_version_set(),
            "/spec/serverSelector",
            json!({ "matchLabels": {} }),
        ),
        "serverSelector must have matchLabels or matchExpressions",
    );
    b.cel(
        "cel-biosvs-image-uri",
        "BIOSVersionSet",
        ".spec.biosVersionTemplate.image.URI",
        bios_version_set(),
        with(
            bios_version_set(),
            "/spec/biosVersionTemplate/image/URI",
            json!(""),
        ),
        "image URI must not be empty",
    );
    b.cel(
        "cel-bmcss-selector",
        "BMCSettingsSet",
        ".spec.bmcSelector",
        bmc_settings_set(),
        with(bmc_settings_set(), "/spec/bmcSelector", json!({})),
        "bmcSelector must have matchLabels or matchExpressions",
    );
    b.cel(
        "cel-bmcss-variable-keys",
        "BMCSettingsSet",
        ".spec.bmcSettingsTemplate.variables",
        bmc_settings_set(),
        with(
            bmc_settings_set(),
            "/spec/bmcSettingsTemplate/variables/1/key",
            json!("Name"),
        ),
        "variable keys must be unique",
    );
    b.cel(
        "cel-bmcss-variable-two-sources",
        "BMCSettingsSet",
        ".spec.bmcSettingsTemplate.variables[*].valueFrom",
        bmc_settings_set(),
        with(
            bmc_settings_set(),
            "/spec/bmcSettingsTemplate/variables/0/valueFrom/secretKeyRef",
            json!({ "name": "licenses", "namespace": "metal-system", "key": "bmc-1" }),
        ),
        "set exactly one of fieldRef, objectFieldRef, configMapKeyRef or secretKeyRef",
    );
    b.cel("cel-bmcss-object-field-kind", "BMCSettingsSet",
        ".spec.bmcSettingsTemplate.variables[*].valueFrom", bmc_settings_set(),
        with(bmc_settings_set(), "/spec/bmcSettingsTemplate/variables/0/valueFrom",
            json!({ "objectFieldRef": { "kind": "Server", "name": "server-1", "fieldPath": "status.sku" } })),
        "objectFieldRef.kind must be BMC");
    b.cel(
        "cel-bmcvs-selector",
        "BMCVersionSet",
        ".spec.bmcSelector",
        bmc_version_set(),
        with(
            bmc_version_set(),
            "/spec/bmcSelector",
            json!({ "matchExpressions": [] }),
        ),
        "bmcSelector must have matchLabels or matchExpressions",
    );
    b.cel(
        "cel-bmcvs-image-uri",
        "BMCVersionSet",
        ".spec.bmcVersionTemplate.image.URI",
        bmc_version_set(),
        with(
            bmc_version_set(),
            "/spec/bmcVersionTemplate/image/URI",
            json!(""),
        ),
        "image URI must not be empty",
    );

    b.cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_dns_labels() {
        let cases = cases();
        let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        for n in names {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
    }

    #[test]
    fn objects_carry_kind_and_name() {
        for c in cases() {
            for obj in [Some(&c.valid), Some(&c.invalid), c.accepted_update.as_ref()]
                .into_iter()
                .flatten()
            {
                assert_eq!(obj["kind"], c.kind);
                assert_eq!(obj["apiVersion"], crate::API_VERSION);
                assert_eq!(obj["metadata"]["name"], c.name);
                assert!(obj["metadata"].get("namespace").is_none());
            }
            assert_ne!(c.valid, c.invalid, "{}", c.name);
            assert!(c.update || c.accepted_update.is_none(), "{}", c.name);
        }
    }

    #[test]
    fn pointer_helpers() {
        let v = with(json!({}), "/a/b", json!(1));
        assert_eq!(v, json!({ "a": { "b": 1 } }));
        let v = with(json!({ "l": [1, 2] }), "/l/1", json!(3));
        assert_eq!(v, json!({ "l": [1, 3] }));
        assert_eq!(
            without(json!({ "a": { "b": 1, "c": 2 } }), "/a/b"),
            json!({ "a": { "c": 2 } })
        );
    }
}
