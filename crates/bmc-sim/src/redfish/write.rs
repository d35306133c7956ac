//! PATCH, POST (collections and actions) and DELETE.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::bmc::Bmc;
use crate::fetch::{FetchError, probe};
use crate::json::{canon, type_name};
use crate::server::ConnCtx;
use crate::state::accounts::{Account, LoginError, Principal, Privilege};
use crate::state::power::{ResetError, ResetOutcome, ResetType};
use crate::state::task::{Component, version_from_image};
use crate::state::{BmcMachine, Subscription, bios};
use crate::template::{Action, Role};

use super::Resp;
use super::errors::{
    bad_parameter, conflict, error, error_many, forbidden, json_response, malformed, message,
    method_not_allowed, missing, not_found,
};
use super::render::{Rendered, finish, render, resolve, slot_of};

/// Value kinds of writable properties.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int(i64, i64),
    Enum(&'static [&'static str]),
}

const LED: Kind = Kind::Enum(&["Lit", "Blinking", "Off"]);
const U32: Kind = Kind::Int(0, u32::MAX as i64);

/// Writable plain properties by resource type; `None`: the type is read-only.
fn writable(type_name: &str) -> Option<&'static [(&'static str, Kind)]> {
    Some(match type_name {
        "ComputerSystem" => &[
            ("IndicatorLED", LED),
            ("LocationIndicatorActive", Kind::Bool),
            ("AssetTag", Kind::Str),
            ("HostName", Kind::Str),
            (
                "PowerRestorePolicy",
                Kind::Enum(&["AlwaysOn", "AlwaysOff", "LastState"]),
            ),
        ],
        "Chassis" | "Drive" => &[
            ("IndicatorLED", LED),
            ("LocationIndicatorActive", Kind::Bool),
            ("AssetTag", Kind::Str),
        ],
        "Manager" => &[
            ("DateTime", Kind::Str),
            ("DateTimeLocalOffset", Kind::Str),
            ("LocationIndicatorActive", Kind::Bool),
        ],
        "SessionService" => &[
            ("SessionTimeout", Kind::Int(30, 86400)),
            ("ServiceEnabled", Kind::Bool),
        ],
        "AccountService" => &[
            ("AccountLockoutThreshold", U32),
            ("AccountLockoutDuration", U32),
            ("AccountLockoutCounterResetAfter", U32),
            ("AuthFailureLoggingThreshold", U32),
        ],
        "EventService" => &[
            ("ServiceEnabled", Kind::Bool),
            ("DeliveryRetryAttempts", U32),
            ("DeliveryRetryIntervalSeconds", U32),
        ],
        _ => return None,
    })
}

fn admin_only(type_name: &str) -> bool {
    matches!(type_name, "SessionService" | "AccountService")
}

fn member<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    path.strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty() && !r.contains('/'))
}

/// The `Allow` header of a path.
pub(crate) fn allow_for(bmc: &Bmc, path: &str) -> &'static str {
    let p = &bmc.template.paths;
    if path == p.sessions || path == p.accounts || path == p.subscriptions {
        return "GET, HEAD, POST";
    }
    if member(path, &p.sessions).is_some() {
        return "GET, HEAD, DELETE";
    }
    if member(path, &p.accounts).is_some() || member(path, &p.subscriptions).is_some() {
        return "GET, HEAD, PATCH, DELETE";
    }
    let target = resolve(bmc, path);
    let tpl = &bmc.template;
    if tpl.actions.contains_key(target.tpl_path.as_ref()) {
        return "POST";
    }
    match tpl.roles_of.get(target.tpl_path.as_ref()) {
        Some(
            Role::BiosSettings(_)
            | Role::ManagerAttributes(..)
            | Role::ManagerAttributesSettings(..),
        ) => return "GET, HEAD, PATCH",
        Some(Role::Bios(_)) => return "GET, HEAD",
        _ => {}
    }
    match tpl.json(&target.tpl_path).and_then(type_name) {
        Some(t) if writable(t).is_some() => "GET, HEAD, PATCH",
        _ => "GET, HEAD",
    }
}

fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Box<Resp>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(Box::new(malformed())),
    }
}

fn unknown(name: &str) -> Value {
    message(
        "PropertyUnknown",
        &format!("The property {name} is not in the list of valid properties for the resource."),
        &[name.to_string()],
    )
}

fn not_writable(name: &str) -> Value {
    message(
        "PropertyNotWritable",
        &format!("The property {name} is a read only property and cannot be assigned a value."),
        &[name.to_string()],
    )
}

fn type_error(name: &str, v: &Value) -> Value {
    message(
        "PropertyValueTypeError",
        &format!(
            "The value '{v}' for the property {name} is of a different type than the property can accept."
        ),
        &[v.to_string(), name.to_string()],
    )
}

fn not_in_list(name: &str, v: &Value) -> Value {
    message(
        "PropertyValueNotInList",
        &format!(
            "The value '{v}' for the property {name} is not in the list of acceptable values."
        ),
        &[v.to_string(), name.to_string()],
    )
}

fn check_kind(name: &str, kind: Kind, v: &Value, allowed: Option<Vec<String>>) -> Option<Value> {
    match kind {
        Kind::Str => (!v.is_string()).then(|| type_error(name, v)),
        Kind::Bool => (!v.is_boolean()).then(|| type_error(name, v)),
        Kind::Int(lo, hi) => match v.as_i64() {
            None => Some(type_error(name, v)),
            Some(n) if n < lo || n > hi => Some(message(
                "PropertyValueOutOfRange",
                &format!(
                    "The value '{n}' for the property {name} is not in the supported range of acceptable values."
                ),
                &[n.to_string(), name.to_string()],
            )),
            Some(_) => None,
        },
        Kind::Enum(values) => match v.as_str() {
            None => Some(type_error(name, v)),
            Some(s) => {
                let ok = match &allowed {
                    Some(a) => a.iter().any(|x| x == s),
                    None => values.contains(&s),
                };
                (!ok).then(|| not_in_list(name, v))
            }
        },
    }
}

/// The current ETag of a resource (for `If-Match`).
fn current_etag(bmc: &Bmc, m: &BmcMachine, path: &str, now: Instant) -> Option<String> {
    match render(bmc, m, path, now)? {
        Rendered::Cached(_, e) => Some(e.to_string()),
        Rendered::Value {
            value,
            etag_in_body,
        } => Some(finish(value, etag_in_body).1.to_string()),
        Rendered::Raw(..) => None,
    }
}

fn if_match_ok(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// `200` with the resource as it is now.
fn current(bmc: &Bmc, path: &str, now: Instant) -> Resp {
    let m = bmc.lock();
    match render(bmc, &m, path, now) {
        Some(Rendered::Cached(b, e)) => with_etag(json_response(StatusCode::OK, b), &e),
        Some(Rendered::Value {
            value,
            etag_in_body,
        }) => {
            let (b, e) = finish(value, etag_in_body);
            with_etag(json_response(StatusCode::OK, b), &e)
        }
        _ => json_response(StatusCode::NO_CONTENT, Bytes::new()),
    }
}

fn with_etag(mut r: Resp, etag: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn no_content() -> Resp {
    let mut r = json_response(StatusCode::NO_CONTENT, Bytes::new());
    r.headers_mut().remove(header::CONTENT_TYPE);
    r
}

fn created(location: &str, value: Value) -> Resp {
    let (b, e) = finish(value, false);
    let mut r = with_etag(json_response(StatusCode::CREATED, b), &e);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Answers a method the resource does not support.
pub(crate) fn not_allowed(bmc: &Bmc, path: &str, now: Instant) -> Resp {
    let exists = {
        let m = bmc.lock();
        render(bmc, &m, path, now).is_some()
    } || bmc
        .template
        .actions
        .contains_key(resolve(bmc, path).tpl_path.as_ref());
    if exists {
        method_not_allowed(allow_for(bmc, path))
    } else {
        not_found(path)
    }
}

// ---------------------------------------------------------------------------------------------
// PATCH

/// PATCH of a resource.
pub(crate) fn patch(
    bmc: &Arc<Bmc>,
    who: &Principal,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    now: Instant,
) -> Resp {
    let body = match parse_object(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let p = &bmc.template.paths;
    let result = {
        let mut m = bmc.lock();
        let Some(etag) = current_etag(bmc, &m, path, now) else {
            drop(m);
            return not_allowed(bmc, path, now);
        };
        if let Some(im) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
            && !if_match_ok(im, &etag)
        {
            return error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "The ETag supplied did not match the ETag required to change this resource.",
                &[],
            );
        }
        if let Some(id) = member(path, &p.accounts) {
            patch_account(&mut m, who, id, &body, bmc)
        } else if let Some(id) = member(path, &p.subscriptions) {
            patch_subscription(&mut m, who, id, &body)
        } else {
            let target = resolve(bmc, path);
            match bmc.template.roles_of.get(target.tpl_path.as_ref()).copied() {
                Some(Role::BiosSettings(i)) => match slot_of(bmc, i, target.replica) {
                    Some(slot) if who.privilege >= Privilege::Operator => {
                        patch_bios(bmc, &mut m, i, slot, &body)
                    }
                    Some(_) => Err(Box::new(forbidden())),
                    None => Err(Box::new(not_found(path))),
                },
                Some(Role::ManagerAttributes(i, a) | Role::ManagerAttributesSettings(i, a)) => {
                    if who.privilege >= Privilege::Operator {
                        patch_manager_attributes(bmc, &mut m, i, a, &body)
                    } else {
                        Err(Box::new(forbidden()))
                    }
                }
                Some(Role::Bios(i)) => {
                    let settings = bmc.template.systems[i]
                        .bios_settings_path
                        .clone()
                        .unwrap_or_default();
                    let mut r = error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "OperationNotAllowed",
                        &format!(
                            "The current BIOS settings are read-only; PATCH the settings object {settings} instead."
                        ),
                        &[],
                    );
                    r.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    Err(Box::new(r))
                }
                role => patch_plain(bmc, &mut m, who, path, role, target.replica, &body),
            }
        }
    };
    match result {
        Ok(()) => {
            bmc.tick();
            current(bmc, path, now)
        }
        Err(r) => *r,
    }
}

fn patch_plain(
    bmc: &Bmc,
    m: &mut BmcMachine,
    who: &Principal,
    path: &str,
    role: Option<Role>,
    replica: u16,
    body: &Map<String, Value>,
) -> Result<(), Box<Resp>> {
    let Some(current) = render(bmc, m, path, Instant::now()).and_then(Rendered::into_value) else {
        return Err(Box::new(not_found(path)));
    };
    let ty = type_name(&current).unwrap_or_default().to_string();
    let Some(props) = writable(&ty) else {
        return Err(Box::new(method_not_allowed(allow_for(bmc, path))));
    };
    if who.privilege < Privilege::Operator
        || (admin_only(&ty) && who.privilege < Privilege::Administrator)
    {
        return Err(Box::new(forbidden()));
    }
    let system_slot = match role {
        Some(Role::System(i)) => slot_of(bmc, i, replica),
        _ => None,
    };
    let mut problems = Vec::new();
    let mut plain = Map::new();
    let mut boot: Option<&Map<String, Value>> = None;
    for (k, v) in body {
        if k.starts_with("@odata.") {
            continue;
        }
        if k == "Boot"
            && let Some(slot) = system_slot
        {
            match v.as_object() {
                Some(b) => {
                    problems.extend(check_boot(bmc, m, slot, current.get("Boot"), b));
                    boot = Some(b);
                }
                None => problems.push(type_error(k, v)),
            }
            continue;
        }
        match props.iter().find(|(n, _)| n == k) {
            Some((_, kind)) if current.get(k).is_some() => {
                let allowed =
                    crate::json::strings(&current, &format!("{k}@Redfish.AllowableValues"));
                match check_kind(k, *kind, v, allowed) {
                    Some(p) => problems.push(p),
                    None => {
                        plain.insert(k.clone(), v.clone());
                    }
                }
            }
            _ if current.get(k).is_some() => problems.push(not_writable(k)),
            _ => problems.push(unknown(k)),
        }
    }
    if !problems.is_empty() {
        return Err(Box::new(error_many(StatusCode::BAD_REQUEST, problems)));
    }
    if let (Some(b), Some(slot)) = (boot, system_slot) {
        let s = &mut m.systems[slot].boot;
        let mut extra = Map::new();
        for (k, v) in b {
            match (k.as_str(), v.as_str()) {
                ("BootSourceOverrideEnabled", Some(x)) => s.enabled = x.to_string(),
                ("BootSourceOverrideTarget", Some(x)) => s.target = x.to_string(),
                ("BootSourceOverrideMode", Some(x)) => s.mode = Some(x.to_string()),
                ("BootOrder", _) => {
                    s.order = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                }
                _ => {
                    extra.insert(k.clone(), v.clone());
                }
            }
        }
        if !extra.is_empty() {
            plain.insert("Boot".into(), Value::Object(extra));
        }
    }
    if ty == "SessionService"
        && let Some(t) = plain.get("SessionTimeout").and_then(Value::as_u64)
    {
        m.session_timeout = Duration::from_secs(t);
    }
    if !plain.is_empty() {
        let entry = m
            .patches
            .entry(path.to_string())
            .or_insert_with(|| json!({}));
        super::render::apply_patch(entry, &Value::Object(plain));
    }
    Ok(())
}

const OVERRIDE_ENABLED: &[&str] = &["Disabled", "Once", "Continuous"];
const DEFAULT_TARGETS: &[&str] = &[
    "None",
    "Pxe",
    "Floppy",
    "Cd",
    "Usb",
    "Hdd",
    "BiosSetup",
    "Utilities",
    "Diags",
    "UefiShell",
    "UefiTarget",
    "SDCard",
    "UefiHttp",
    "RemoteDrive",
    "UefiBootNext",
    "Recovery",
];

fn check_boot(
    bmc: &Bmc,
    m: &BmcMachine,
    slot: usize,
    current: Option<&Value>,
    b: &Map<String, Value>,
) -> Vec<Value> {
    let ts = &bmc.template.systems[bmc.systems[slot].tpl];
    let cur = current.cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    for (k, v) in b {
        let name = format!("Boot/{k}");
        match k.as_str() {
            "BootSourceOverrideEnabled" => {
                let allowed =
                    crate::json::strings(&cur, "BootSourceOverrideEnabled@Redfish.AllowableValues");
                out.extend(check_kind(&name, Kind::Enum(OVERRIDE_ENABLED), v, allowed));
            }
            "BootSourceOverrideTarget" => {
                out.extend(check_kind(
                    &name,
                    Kind::Enum(DEFAULT_TARGETS),
                    v,
                    ts.boot_targets_allowed.clone(),
                ));
            }
            "BootSourceOverrideMode" if cur.get(k).is_some() => {
                out.extend(check_kind(
                    &name,
                    Kind::Enum(&["UEFI", "Legacy"]),
                    v,
                    ts.boot_modes_allowed.clone(),
                ));
            }
            "BootOrder" if cur.get(k).is_some() => {
                let Some(list) = v.as_array().filter(|a| a.iter().all(Value::is_string)) else {
                    out.push(type_error(&name, v));
                    continue;
                };
                let known: HashSet<&str> = m.systems[slot]
                    .boot
                    .order
                    .iter()
                    .map(String::as_str)
                    .collect();
                let mut seen = HashSet::new();
                for item in list {
                    let s = item.as_str().unwrap_or_default();
                    if !known.contains(s) {
                        out.push(not_in_list(&name, item));
                    } else if !seen.insert(s) {
                        out.push(message(
                            "PropertyValueFormatError",
                            &format!("The value '{item}' appears more than once in {name}."),
                            &[item.to_string(), name.clone()],
                        ));
                    }
                }
            }
            "BootNext" | "UefiTargetBootSourceOverride" if cur.get(k).is_some() => {
                if !(v.is_string() || v.is_null()) {
                    out.push(type_error(&name, v));
                }
            }
            _ if cur.get(k).is_some() => out.push(not_writable(&name)),
            _ => out.push(unknown(&name)),
        }
    }
    out
}

fn patch_bios(
    bmc: &Bmc,
    m: &mut BmcMachine,
    tpl: usize,
    slot: usize,
    body: &Map<String, Value>,
) -> Result<(), Box<Resp>> {
    let ts = &bmc.template.systems[tpl];
    let mut problems = Vec::new();
    let mut attrs = None;
    for (k, v) in body {
        match k.as_str() {
            "Attributes" => match v.as_object() {
                Some(a) => attrs = Some(a),
                None => problems.push(type_error(k, v)),
            },
            "@Redfish.SettingsApplyTime" => {
                let at = v
                    .get("ApplyTime")
                    .and_then(Value::as_str)
                    .unwrap_or("OnReset");
                if at != "OnReset" {
                    problems.push(not_in_list(
                        "@Redfish.SettingsApplyTime/ApplyTime",
                        &Value::from(at),
                    ));
                }
            }
            k if k.starts_with("@odata.") => {}
            _ => problems.push(unknown(k)),
        }
    }
    if let Some(a) = attrs {
        let mut current = (*ts.bios_attributes).clone();
        for (k, v) in &m.systems[slot].bios_overrides {
            current.insert(k.clone(), v.clone());
        }
        for violation in bios::validate(ts.bios_registry.as_deref(), &current, a) {
            problems.push(message(violation.key, &violation.message, &violation.args));
        }
    } else if problems.is_empty() {
        return Err(Box::new(missing("Attributes", None)));
    }
    if !problems.is_empty() {
        return Err(Box::new(error_many(StatusCode::BAD_REQUEST, problems)));
    }
    if let Some(a) = attrs {
        for (k, v) in a {
            m.systems[slot].bios_pending.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

/// PATCH `{"Attributes": {...}}` of a BMC attribute resource (or its settings object): every
/// name must exist in the resource and keep its JSON type; values of the knob
/// `bmc_attributes_need_reset` wait for the next BMC restart.
fn patch_manager_attributes(
    bmc: &Bmc,
    m: &mut BmcMachine,
    manager: usize,
    resource: usize,
    body: &Map<String, Value>,
) -> Result<(), Box<Resp>> {
    let known = &bmc.template.managers[manager].attributes[resource].attributes;
    let mut problems = Vec::new();
    let mut attrs = None;
    for (k, v) in body {
        match k.as_str() {
            "Attributes" => match v.as_object() {
                Some(a) => attrs = Some(a),
                None => problems.push(type_error(k, v)),
            },
            "@Redfish.SettingsApplyTime" => {}
            k if k.starts_with("@odata.") => {}
            _ => problems.push(unknown(k)),
        }
    }
    let Some(attrs) = attrs else {
        if problems.is_empty() {
            return Err(Box::new(missing("Attributes", None)));
        }
        return Err(Box::new(error_many(StatusCode::BAD_REQUEST, problems)));
    };
    for (k, v) in attrs {
        let name = format!("Attributes/{k}");
        match known.get(k) {
            None => problems.push(unknown(&name)),
            Some(cur) if std::mem::discriminant(cur) != std::mem::discriminant(v) => {
                problems.push(type_error(&name, v));
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(Box::new(error_many(StatusCode::BAD_REQUEST, problems)));
    }
    let st = &mut m.managers[manager];
    for (k, v) in attrs {
        if m.knobs.bmc_attributes_need_reset.iter().any(|r| r == k) {
            st.attributes_pending.insert(k.clone(), v.clone());
        } else {
            st.attributes_pending.remove(k);
            st.attributes.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

fn patch_account(
    m: &mut BmcMachine,
    who: &Principal,
    id: &str,
    body: &Map<String, Value>,
    bmc: &Bmc,
) -> Result<(), Box<Resp>> {
    let Some(acc) = m.accounts.get(id).cloned() else {
        return Err(Box::new(not_found(&format!(
            "{}/{id}",
            bmc.template.paths.accounts
        ))));
    };
    let own = acc.username == who.username;
    let admin = who.privilege >= Privilege::Administrator;
    let mut problems = Vec::new();
    for (k, v) in body {
        match k.as_str() {
            "Password" => {
                if !admin && !own {
                    return Err(Box::new(forbidden()));
                }
                if let Some(p) = check_password(bmc, v) {
                    problems.push(p);
                }
            }
            "UserName" | "RoleId" | "Enabled" | "Locked" if !admin => {
                return Err(Box::new(forbidden()));
            }
            "UserName" => match v.as_str() {
                Some(u) if !u.is_empty() && !u.contains(':') => {
                    if m.accounts
                        .list
                        .iter()
                        .any(|a| a.username == u && a.id != id)
                    {
                        problems.push(message(
                            "ResourceAlreadyExists",
                            &format!("The requested resource of type ManagerAccount with the property UserName with the value '{u}' already exists."),
                            &["ManagerAccount".into(), "UserName".into(), u.to_string()],
                        ));
                    }
                }
                _ => problems.push(type_error(k, v)),
            },
            "RoleId" => match v.as_str() {
                Some(r) if bmc.template.account_roles.iter().any(|x| x == r) => {}
                _ => problems.push(not_in_list(k, v)),
            },
            "Enabled" | "Locked" => {
                if !v.is_boolean() {
                    problems.push(type_error(k, v));
                }
            }
            k if k.starts_with("@odata.") => {}
            "Id" | "Name" | "Description" | "AccountTypes" | "Links" => {
                problems.push(not_writable(k))
            }
            _ => problems.push(unknown(k)),
        }
    }
    if !problems.is_empty() {
        return Err(Box::new(error_many(StatusCode::BAD_REQUEST, problems)));
    }
    let old_name = acc.username.clone();
    if let Some(a) = m.accounts.get_mut(id) {
        for (k, v) in body {
            match k.as_str() {
                "Password" => a.password = v.as_str().map(String::from),
                "UserName" => a.username = v.as_str().unwrap_or_default().to_string(),
                "RoleId" => a.role = v.as_str().unwrap_or_default().to_string(),
                "Enabled" => a.enabled = v.as_bool().unwrap_or(true),
                "Locked" => a.locked = v.as_bool().unwrap_or(false),
                _ => {}
            }
        }
        if a.username != old_name || !a.enabled {
            m.accounts.drop_sessions_of(&old_name);
        }
    }
    Ok(())
}

fn check_password(bmc: &Bmc, v: &Value) -> Option<Value> {
    let Some(p) = v.as_str() else {
        return Some(type_error("Password", v));
    };
    let svc = bmc.template.json(&bmc.template.paths.account_service);
    let min = svc
        .and_then(|s| s.get("MinPasswordLength"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let max = svc
        .and_then(|s| s.get("MaxPasswordLength"))
        .and_then(Value::as_u64)
        .unwrap_or(128);
    let len = p.chars().count() as u64;
    (len < min || len > max).then(|| {
        message(
            "PropertyValueFormatError",
            &format!("The value for the property Password must be {min} to {max} characters long."),
            &["<hidden>".into(), "Password".into()],
        )
    })
}

fn patch_subscription(
    m: &mut BmcMachine,
    who: &Principal,
    id: &str,
    body: &Map<String, Value>,
) -> Result<(), Box<Resp>> {
    if who.privilege < Privilege::Operator {
        return Err(Box::new(forbidden()));
    }
    let Some(sub) = m.subscriptions.iter_mut().find(|s| s.id == id) else {
        return Err(Box::new(not_found(id)));
    };
    let mut problems = Vec::new();
    for (k, v) in body {
        match k.as_str() {
            "Context" if v.is_string() => {}
            "DeliveryRetryPolicy" => {
                if let Some(p) = check_kind(
                    k,
                    Kind::Enum(&[
                        "TerminateAfterRetries",
                        "SuspendRetries",
                        "RetryForever",
                        "RetryForeverWithBackoff",
                    ]),
                    v,
                    None,
                ) {
                    problems.push(p);
                }
            }
            "Context" => problems.push(type_error(k, v)),
            k if k.starts_with("@odata.") => {}
            _ if sub.body.contains_key(k) => problems.push(not_writable(k)),
            _ => problems.push(unknown(k)),
        }
    }
    if !problems.is_empty() {
        return Err(Box::new(error_many(StatusCode::BAD_REQUEST, problems)));
    }
    for (k, v) in body {
        if !k.starts_with("@odata.") {
            sub.body.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// POST

/// POST to a collection or an action target.
pub(crate) async fn post(
    bmc: &Arc<Bmc>,
    conn: &ConnCtx,
    who: Option<&Principal>,
    path: &str,
    body: &Bytes,
    now: Instant,
) -> Resp {
    let body = match parse_object(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let p = &bmc.template.paths;
    if path == p.sessions {
        return login(bmc, &body, now);
    }
    let Some(who) = who else {
        return super::errors::unauthorized();
    };
    if path == p.accounts {
        return create_account(bmc, who, &body);
    }
    if path == p.subscriptions {
        return create_subscription(bmc, who, &body);
    }
    let target = resolve(bmc, path);
    let Some(action) = bmc.template.actions.get(target.tpl_path.as_ref()).copied() else {
        return not_allowed(bmc, path, now);
    };
    if who.privilege < Privilege::Operator {
        return forbidden();
    }
    let replica = target.replica;
    let resp = match action {
        Action::SystemReset(i) => system_reset(bmc, i, replica, &body, now),
        Action::ManagerReset(i) => manager_reset(bmc, conn, i, &body, now),
        Action::InsertMedia(i) => insert_media(bmc, i, &body).await,
        Action::EjectMedia(i) => {
            let mut m = bmc.lock();
            m.media[i].inserted = false;
            m.media[i].image = None;
            no_content()
        }
        Action::SimpleUpdate => simple_update(bmc, &body, now).await,
        Action::ResetBios(i) => match slot_of(bmc, i, replica) {
            Some(slot) => {
                bmc.lock().systems[slot].bios_reset_pending = true;
                no_content()
            }
            None => not_found(path),
        },
        Action::SubmitTestEvent => no_content(),
        Action::SecureErase => {
            let fails = bmc
                .lock()
                .knobs
                .secure_erase_fails
                .iter()
                .any(|d| path.contains(&format!("/Drives/{d}/")));
            if fails {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "The drive could not be erased.",
                    &[path.to_string()],
                )
            } else {
                no_content()
            }
        }
        Action::Unsupported => error(
            StatusCode::BAD_REQUEST,
            "ActionNotSupported",
            &format!("The action {path} is not supported by the resource."),
            &[path.to_string()],
        ),
    };
    bmc.tick();
    resp
}

fn login(bmc: &Bmc, body: &Map<String, Value>, now: Instant) -> Resp {
    let (Some(user), Some(pass)) = (
        body.get("UserName").and_then(Value::as_str),
        body.get("Password").and_then(Value::as_str),
    ) else {
        let name = if body.get("UserName").and_then(Value::as_str).is_none() {
            "UserName"
        } else {
            "Password"
        };
        return error(
            StatusCode::BAD_REQUEST,
            "CreateFailedMissingReqProperties",
            &format!(
                "The create operation failed because the required property {name} was missing from the request."
            ),
            &[name.to_string()],
        );
    };
    let mut m = bmc.lock();
    if m.knobs.reject_auth {
        return super::errors::unauthorized();
    }
    let (timeout, limit) = (m.session_timeout, m.knobs.session_limit);
    let result = m
        .accounts
        .login(user, pass, now, timeout, limit, &mut rand::rng());
    match result {
        Ok(s) => {
            let location = format!("{}/{}", bmc.template.paths.sessions, s.id);
            let value = render(bmc, &m, &location, now)
                .and_then(Rendered::into_value)
                .unwrap_or(Value::Null);
            let mut r = created(&location, value);
            if let Ok(v) = HeaderValue::from_str(&s.token) {
                r.headers_mut().insert("x-auth-token", v);
            }
            r
        }
        Err(LoginError::BadCredentials) => super::errors::unauthorized(),
        Err(LoginError::LimitExceeded) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.",
                &[],
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            r
        }
    }
}

fn create_account(bmc: &Bmc, who: &Principal, body: &Map<String, Value>) -> Resp {
    if who.privilege < Privilege::Administrator {
        return forbidden();
    }
    for req in ["UserName", "Password", "RoleId"] {
        if !body.contains_key(req) {
            return error(
                StatusCode::BAD_REQUEST,
                "CreateFailedMissingReqProperties",
                &format!(
                    "The create operation failed because the required property {req} was missing from the request."
                ),
                &[req.to_string()],
            );
        }
    }
    let mut m = bmc.lock();
    let id = m.accounts.next_id();
    let probe = Principal {
        username: String::new(),
        privilege: Privilege::Administrator,
        session: None,
    };
    // Validate like a PATCH of a fresh account.
    m.accounts.list.push(Account {
        id: id.clone(),
        username: String::new(),
        password: None,
        role: "ReadOnly".into(),
        enabled: false,
        locked: false,
    });
    let mut fields = body.clone();
    fields.entry("Enabled").or_insert(Value::Bool(true));
    fields.retain(|k, _| k != "AccountTypes");
    if let Err(r) = patch_account(&mut m, &probe, &id, &fields, bmc) {
        m.accounts.list.retain(|a| a.id != id);
        return *r;
    }
    let location = format!("{}/{id}", bmc.template.paths.accounts);
    let value = render(bmc, &m, &location, Instant::now())
        .and_then(Rendered::into_value)
        .unwrap_or(Value::Null);
    created(&location, value)
}

/// Largest number of event subscriptions per BMC.
const SUBSCRIPTION_LIMIT: usize = 32;

fn create_subscription(bmc: &Bmc, who: &Principal, body: &Map<String, Value>) -> Resp {
    if who.privilege < Privilege::Operator {
        return forbidden();
    }
    let Some(dest) = body.get("Destination") else {
        return error(
            StatusCode::BAD_REQUEST,
            "CreateFailedMissingReqProperties",
            "The create operation failed because the required property Destination was missing from the request.",
            &["Destination".into()],
        );
    };
    let valid = dest
        .as_str()
        .and_then(|d| url::Url::parse(d).ok())
        .is_some_and(|u| u.scheme() == "http" || u.scheme() == "https");
    if !valid {
        return error(
            StatusCode::BAD_REQUEST,
            "PropertyValueFormatError",
            &format!(
                "The value '{dest}' for the property Destination is of a different format than the property can accept."
            ),
            &[dest.to_string(), "Destination".into()],
        );
    }
    if let Some(p) = body.get("Protocol")
        && p.as_str() != Some("Redfish")
    {
        return error_many(StatusCode::BAD_REQUEST, vec![not_in_list("Protocol", p)]);
    }
    let mut stored = Map::new();
    for key in [
        "Destination",
        "Context",
        "EventTypes",
        "RegistryPrefixes",
        "ResourceTypes",
        "MessageIds",
        "OriginResources",
        "DeliveryRetryPolicy",
        "EventFormatType",
        "SubordinateResources",
        "IncludeOriginOfCondition",
    ] {
        if let Some(v) = body.get(key) {
            stored.insert(key.into(), v.clone());
        }
    }
    stored.insert("Protocol".into(), Value::from("Redfish"));
    stored.entry("Context").or_insert(Value::from(""));
    stored.insert("SubscriptionType".into(), Value::from("RedfishEvent"));
    let mut m = bmc.lock();
    if m.subscriptions.len() >= SUBSCRIPTION_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            "EventSubscriptionLimitExceeded",
            "The event subscription failed due to the number of simultaneous subscriptions exceeding the limit of the implementation.",
            &[],
        );
    }
    m.next_subscription += 1;
    let id = m.next_subscription.to_string();
    m.subscriptions.push(Subscription {
        id: id.clone(),
        body: stored,
    });
    let location = format!("{}/{id}", bmc.template.paths.subscriptions);
    let value = render(bmc, &m, &location, Instant::now())
        .and_then(Rendered::into_value)
        .unwrap_or(Value::Null);
    created(&location, value)
}

fn reset_type(
    body: &Map<String, Value>,
    action: &str,
    allowed: &[String],
    default: Option<&str>,
) -> Result<String, Box<Resp>> {
    let v = match body.get("ResetType") {
        Some(v) => v.clone(),
        None => match default {
            Some(d) => Value::from(d),
            None => return Err(Box::new(missing("ResetType", Some(action)))),
        },
    };
    let Some(s) = v.as_str() else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "ActionParameterValueTypeError",
            &format!(
                "The value '{v}' for the parameter ResetType in the action {action} is of a different type than the parameter can accept."
            ),
            &[v.to_string(), "ResetType".into(), action.to_string()],
        )));
    };
    if !allowed.iter().any(|a| a == s) {
        return Err(Box::new(bad_parameter(action, "ResetType", &v)));
    }
    Ok(s.to_string())
}

fn system_reset(
    bmc: &Bmc,
    tpl: usize,
    replica: u16,
    body: &Map<String, Value>,
    now: Instant,
) -> Resp {
    let action = "ComputerSystem.Reset";
    let allowed = &bmc.template.systems[tpl].reset_types;
    let rt = match reset_type(body, action, allowed, None) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Ok(parsed) = rt.parse::<ResetType>() else {
        return bad_parameter(action, "ResetType", &Value::from(rt));
    };
    let Some(slot) = slot_of(bmc, tpl, replica) else {
        return not_found(action);
    };
    let mut m = bmc.lock();
    m.advance(now);
    let (delay, refuse) = (m.knobs.power_delay(), m.knobs.refuse_power_off);
    match m.systems[slot].reset(parsed, now, delay, refuse) {
        Ok(outcome) => {
            if outcome == ResetOutcome::Ignored {
                bmc.shared.metrics.fault("refuse_power_off");
            }
            no_content()
        }
        Err(ResetError::Conflict(why)) => conflict(why),
    }
}

fn manager_reset(
    bmc: &Bmc,
    conn: &ConnCtx,
    i: usize,
    body: &Map<String, Value>,
    now: Instant,
) -> Resp {
    let allowed = &bmc.template.managers[i].reset_types;
    let default = allowed.first().map(String::as_str);
    if let Err(r) = reset_type(body, "Manager.Reset", allowed, default) {
        return *r;
    }
    let mut m = bmc.lock();
    let downtime = m.knobs.bmc_downtime();
    m.begin_restart(now, downtime);
    conn.exempt.store(true, Ordering::Relaxed);
    no_content()
}

async fn insert_media(bmc: &Bmc, i: usize, body: &Map<String, Value>) -> Resp {
    let action = "VirtualMedia.InsertMedia";
    let Some(image) = body.get("Image") else {
        return missing("Image", Some(action));
    };
    let Some(image) = image.as_str().map(String::from) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ActionParameterValueTypeError",
            &format!(
                "The value '{image}' for the parameter Image in the action {action} is of a different type than the parameter can accept."
            ),
            &[image.to_string(), "Image".into(), action.into()],
        );
    };
    for (k, v) in body {
        let ok = match k.as_str() {
            "Image" => true,
            "Inserted" | "WriteProtected" => v.is_boolean(),
            "TransferProtocolType" | "TransferMethod" | "UserName" | "Password" | "MediaType" => {
                v.is_string()
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "ActionParameterUnknown",
                    &format!("The action {action} was submitted with the invalid parameter {k}."),
                    &[action.into(), k.clone()],
                );
            }
        };
        if !ok {
            return error(
                StatusCode::BAD_REQUEST,
                "ActionParameterValueTypeError",
                &format!(
                    "The value '{v}' for the parameter {k} in the action {action} is of a different type than the parameter can accept."
                ),
                &[v.to_string(), k.clone(), action.into()],
            );
        }
    }
    let timeout = {
        let m = bmc.lock();
        if m.media[i].inserted {
            return conflict("A virtual media image is already inserted; eject it first.");
        }
        Duration::from_millis(m.knobs.media_fetch_timeout_ms)
    };
    if let Err(e) = probe(&image, timeout).await {
        let (key, text) = match &e {
            FetchError::BadUrl(_) => (
                "ActionParameterValueFormatError",
                format!(
                    "The value '{image}' for the parameter Image in the action {action} is of a different format than the parameter can accept: {e}."
                ),
            ),
            FetchError::Scheme(s) => (
                "SourceDoesNotSupportProtocol",
                format!(
                    "The other end of the connection at '{image}' does not support the specified protocol {s}."
                ),
            ),
            FetchError::Unauthorized(_) => (
                "ResourceAtUriUnauthorized",
                format!(
                    "While accessing the resource at '{image}', the service received an authorization error: {e}."
                ),
            ),
            _ => (
                "CouldNotEstablishConnection",
                format!(
                    "The service failed to establish a connection with the URI '{image}': {e}."
                ),
            ),
        };
        return error(
            StatusCode::BAD_REQUEST,
            key,
            &text,
            std::slice::from_ref(&image),
        );
    }
    let mut m = bmc.lock();
    let st = &mut m.media[i];
    st.image = Some(image);
    st.inserted = body
        .get("Inserted")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    st.write_protected = body
        .get("WriteProtected")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    no_content()
}

/// Which components an update targets: its `Targets`, else guessed from the image name.
fn components(
    bmc: &Bmc,
    body: &Map<String, Value>,
    image: &str,
) -> Result<Vec<Component>, Box<Resp>> {
    let tpl = &bmc.template;
    let action = "UpdateService.SimpleUpdate";
    let Some(targets) = body.get("Targets") else {
        let name = image
            .rsplit('/')
            .next()
            .unwrap_or(image)
            .to_ascii_lowercase();
        let bmc_image = ["bmc", "idrac", "ipmi", "manager", "ilo", "xcc"]
            .iter()
            .any(|k| name.contains(k));
        return Ok(vec![if bmc_image && !tpl.managers.is_empty() {
            Component::Bmc(0)
        } else {
            Component::Bios(0)
        }]);
    };
    let Some(list) = targets.as_array().filter(|a| !a.is_empty()) else {
        return Err(Box::new(bad_parameter(action, "Targets", targets)));
    };
    let mut out = Vec::new();
    for t in list {
        let Some(path) = t.as_str().map(|s| canon(s).into_owned()) else {
            return Err(Box::new(bad_parameter(action, "Targets", t)));
        };
        let target = resolve(bmc, &path);
        let tp = target.tpl_path.as_ref();
        let sys = tpl.systems.iter().position(|s| {
            s.path == tp
                || s.bios_path.as_deref() == Some(tp)
                || s.bios_inventory.as_deref() == Some(tp)
        });
        let mgr = tpl
            .managers
            .iter()
            .position(|m| m.path == tp || m.inventory.as_deref() == Some(tp));
        match (sys.and_then(|s| slot_of(bmc, s, target.replica)), mgr) {
            (Some(slot), _) => out.push(Component::Bios(slot)),
            (None, Some(m)) => out.push(Component::Bmc(m)),
            _ => return Err(Box::new(bad_parameter(action, "Targets", t))),
        }
    }
    out.dedup();
    Ok(out)
}

async fn simple_update(bmc: &Bmc, body: &Map<String, Value>, now: Instant) -> Resp {
    let action = "UpdateService.SimpleUpdate";
    let Some(uri) = body.get("ImageURI") else {
        return missing("ImageURI", Some(action));
    };
    let Some(mut image) = uri.as_str().map(String::from) else {
        return bad_parameter(action, "ImageURI", uri);
    };
    if !image.contains("://") {
        // Redfish allows a bare host/path with the protocol in TransferProtocol.
        let proto = body
            .get("TransferProtocol")
            .and_then(Value::as_str)
            .unwrap_or("HTTP")
            .to_ascii_lowercase();
        image = format!("{proto}://{image}");
    }
    if url::Url::parse(&image).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "ActionParameterValueFormatError",
            &format!(
                "The value '{uri}' for the parameter ImageURI in the action {action} is of a different format than the parameter can accept."
            ),
            &[uri.to_string(), "ImageURI".into(), action.into()],
        );
    }
    let comps = match components(bmc, body, &image) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (verify, timeout) = {
        let m = bmc.lock();
        (
            m.knobs.verify_update_image,
            Duration::from_millis(m.knobs.media_fetch_timeout_ms),
        )
    };
    let failure = if verify {
        probe(&image, timeout)
            .await
            .err()
            .map(|e| format!("Cannot fetch {image}: {e}."))
    } else {
        None
    };
    let version = version_from_image(&image);
    let mut m = bmc.lock();
    let id = m.start_update(now, image, version, comps, failure);
    let Some(task) = m.tasks.iter().find(|t| t.id == id) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The task vanished.",
            &[],
        );
    };
    let value = super::render::task_value(bmc, &m, task, now);
    let (b, _) = finish(value, false);
    let mut r = json_response(StatusCode::ACCEPTED, b);
    let monitor = format!("{}/{id}", bmc.template.paths.task_monitors);
    if let Ok(v) = HeaderValue::from_str(&monitor) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

// ---------------------------------------------------------------------------------------------
// DELETE

/// DELETE of a session, account or subscription.
pub(crate) fn delete(bmc: &Arc<Bmc>, who: &Principal, path: &str, now: Instant) -> Resp {
    let p = &bmc.template.paths;
    let mut m = bmc.lock();
    if let Some(id) = member(path, &p.sessions) {
        let Some(s) = m.accounts.session(id) else {
            return not_found(path);
        };
        if who.privilege < Privilege::Administrator && s.username != who.username {
            return forbidden();
        }
        m.accounts.logout(id);
        return no_content();
    }
    if let Some(id) = member(path, &p.accounts) {
        if who.privilege < Privilege::Administrator {
            return forbidden();
        }
        let Some(a) = m.accounts.get(id).cloned() else {
            return not_found(path);
        };
        m.accounts.list.retain(|x| x.id != id);
        m.accounts.drop_sessions_of(&a.username);
        return no_content();
    }
    if let Some(id) = member(path, &p.subscriptions) {
        if who.privilege < Privilege::Operator {
            return forbidden();
        }
        let before = m.subscriptions.len();
        m.subscriptions.retain(|s| s.id != id);
        return if m.subscriptions.len() < before {
            no_content()
        } else {
            not_found(path)
        };
    }
    drop(m);
    not_allowed(bmc, path, now)
}
