//! Rendering resources: the template's JSON, overlaid with the BMC's state and PATCHes, with its
//! identity rewritten; dynamic collections (sessions, accounts, tasks, subscriptions) from state.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::bmc::Bmc;
use crate::identity::rewrite_strings;
use crate::json::{ROOT, reference};
use crate::state::BmcMachine;
use crate::state::task::Task;
use crate::template::{Entry, JsonResource, Role};

/// A resource ready to be served.
pub(crate) enum Rendered {
    /// Served unchanged from the template: shared bytes and ETag.
    Cached(Bytes, Arc<str>),
    /// Built for this request.
    Value { value: Value, etag_in_body: bool },
    /// A verbatim document.
    Raw(&'static str, Bytes),
}

impl Rendered {
    /// The JSON value (parsing cached bytes back is avoided by callers that only need bytes).
    pub(crate) fn into_value(self) -> Option<Value> {
        match self {
            Rendered::Value { value, .. } => Some(value),
            Rendered::Cached(b, _) => serde_json::from_slice(&b).ok(),
            Rendered::Raw(..) => None,
        }
    }
}

/// Serializes a value and computes its ETag (inserting `@odata.etag` when the tree carries it).
pub(crate) fn finish(mut value: Value, etag_in_body: bool) -> (Bytes, Arc<str>) {
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    let etag: Arc<str> = format!("\"{:016x}\"", h.finish()).into();
    if etag_in_body && let Some(o) = value.as_object_mut() {
        o.insert("@odata.etag".into(), Value::String(etag.to_string()));
        return (
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            etag,
        );
    }
    (Bytes::from(body), etag)
}

fn cached(res: &JsonResource) -> Rendered {
    let (b, e) = res.cached.get_or_init(|| match &res.captured_etag {
        // Served unchanged: the captured ETag stays valid, in the body and the header.
        Some(etag) => {
            let mut v = res.value.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert("@odata.etag".into(), Value::String(etag.clone()));
            }
            (
                Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                Arc::from(etag.as_str()),
            )
        }
        None => finish(res.value.clone(), false),
    });
    Rendered::Cached(b.clone(), e.clone())
}

/// Where a request path falls in the template.
pub(crate) struct Target<'a> {
    /// The template path serving it.
    pub tpl_path: Cow<'a, str>,
    /// System replica (0 outside replicas).
    pub replica: u16,
}

/// Maps a served path to its template path (replicated systems are served from the first one).
pub(crate) fn resolve<'a>(bmc: &Bmc, path: &'a str) -> Target<'a> {
    for slot in bmc.systems.iter().filter(|s| s.replica > 0) {
        if let Some(rest) = path.strip_prefix(slot.path.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            let base = &bmc.template.systems[slot.tpl].path;
            return Target {
                tpl_path: Cow::Owned(format!("{base}{rest}")),
                replica: slot.replica,
            };
        }
    }
    Target {
        tpl_path: Cow::Borrowed(path),
        replica: 0,
    }
}

/// The slot of template system `tpl` in replica `replica`.
pub(crate) fn slot_of(bmc: &Bmc, tpl: usize, replica: u16) -> Option<usize> {
    bmc.systems
        .iter()
        .position(|s| s.tpl == tpl && s.replica == replica)
}

/// Replaces the template system path prefix by the replica's in every string (paths and targets).
fn rewrite_prefix(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix(from)
                && (rest.is_empty() || rest.starts_with('/') || rest.starts_with('#'))
            {
                *s = format!("{to}{rest}");
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_prefix(x, from, to)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite_prefix(x, from, to)),
        _ => {}
    }
}

fn set(v: &mut Value, key: &str, val: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), val);
    }
}

/// A collection resource: the template's (for its type and name) or a synthesized one.
pub(crate) fn collection(
    bmc: &Bmc,
    path: &str,
    type_name: &str,
    name: &str,
    members: Vec<String>,
) -> Value {
    let mut v = bmc.template.json(path).cloned().unwrap_or_else(|| {
        json!({"@odata.id": path, "@odata.type": format!("#{type_name}.{type_name}"), "Name": name})
    });
    set(&mut v, "Members@odata.count", Value::from(members.len()));
    set(
        &mut v,
        "Members",
        Value::Array(members.iter().map(|m| reference(m)).collect()),
    );
    v
}

/// Renders the resource at a served path, or `None` if there is none.
pub(crate) fn render(bmc: &Bmc, m: &BmcMachine, path: &str, now: Instant) -> Option<Rendered> {
    let tpl = &bmc.template;
    if path == "/redfish" {
        return Some(Rendered::Value {
            value: json!({"v1": format!("{ROOT}/")}),
            etag_in_body: false,
        });
    }
    if let Some(v) = dynamic(bmc, m, path, now) {
        return v.map(|value| Rendered::Value {
            value,
            etag_in_body: false,
        });
    }
    let target = resolve(bmc, path);
    let entry = match tpl.resources.get(target.tpl_path.as_ref()) {
        Some(e) => e,
        None => {
            // A settings object the template links but did not capture.
            let (i, s) =
                tpl.systems.iter().enumerate().find(|(_, s)| {
                    s.bios_settings_path.as_deref() == Some(target.tpl_path.as_ref())
                })?;
            let slot = slot_of(bmc, i, target.replica)?;
            let mut v = json!({
                "@odata.id": path,
                "@odata.type": tpl.json(s.bios_path.as_deref()?)?.get("@odata.type").cloned().unwrap_or(Value::Null),
                "Id": "Settings",
                "Name": "BIOS Pending Settings",
            });
            set(
                &mut v,
                "Attributes",
                Value::Object(m.systems[slot].bios_pending.clone().into_iter().collect()),
            );
            return Some(Rendered::Value {
                value: v,
                etag_in_body: false,
            });
        }
    };
    let res = match entry {
        Entry::Raw { content_type, body } => {
            return Some(Rendered::Raw(content_type, body.clone()));
        }
        Entry::Json(r) => r,
    };
    let role = tpl.roles_of.get(target.tpl_path.as_ref()).copied();
    let patch = m.patches.get(path);
    let identity = bmc.identity(target.replica);
    let rewrite = res.has_tokens && !identity.keep;
    if role.is_none() && patch.is_none() && !rewrite && target.replica == 0 {
        return Some(cached(res));
    }
    let mut v = res.value.clone();
    if let Some(role) = role {
        overlay(bmc, m, role, target.replica, path, &mut v);
    }
    if let Some(patch) = patch {
        apply_patch(&mut v, patch);
    }
    if !rewrite && target.replica == 0 && v == res.value {
        // State that matches the capture: serve it as captured (same bytes, same ETag).
        return Some(cached(res));
    }
    if rewrite {
        rewrite_strings(&mut v, &|s| tpl.tokens.rewrite(identity, s));
    }
    if target.replica > 0
        && let Some(slot) = bmc.systems.iter().find(|s| s.replica == target.replica)
    {
        rewrite_prefix(&mut v, &tpl.systems[slot.tpl].path, &slot.path);
        if path == slot.path {
            set(&mut v, "Id", Value::String(slot.id.clone()));
        }
    }
    Some(Rendered::Value {
        value: v,
        etag_in_body: res.captured_etag.is_some(),
    })
}

/// Writes PATCHed properties over a resource (objects merge, everything else, `null` included,
/// replaces).
pub(crate) fn apply_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(cur) if cur.is_object() && v.is_object() => apply_patch(cur, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// State mixed into template resources.
fn overlay(bmc: &Bmc, m: &BmcMachine, role: Role, replica: u16, path: &str, v: &mut Value) {
    match role {
        Role::System(i) => {
            let Some(slot) = slot_of(bmc, i, replica) else {
                return;
            };
            let s = &m.systems[slot];
            set(v, "PowerState", Value::from(s.power_state().as_str()));
            if let Some(b) = s.bios_version.as_ref() {
                set(v, "BiosVersion", Value::from(b.as_str()));
            }
            if let Some(t) = s.last_reset
                && v.get("LastResetTime").is_some()
            {
                set(
                    v,
                    "LastResetTime",
                    Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
            }
            if let Some(boot) = v.get_mut("Boot").and_then(Value::as_object_mut) {
                boot.insert(
                    "BootSourceOverrideEnabled".into(),
                    Value::from(s.boot.enabled.as_str()),
                );
                boot.insert(
                    "BootSourceOverrideTarget".into(),
                    Value::from(s.boot.target.as_str()),
                );
                if let Some(mode) = &s.boot.mode {
                    boot.insert("BootSourceOverrideMode".into(), Value::from(mode.as_str()));
                }
                if boot.contains_key("BootOrder") {
                    boot.insert("BootOrder".into(), Value::from(s.boot.order.clone()));
                }
            }
        }
        Role::Bios(i) => {
            let Some(slot) = slot_of(bmc, i, replica) else {
                return;
            };
            let s = &m.systems[slot];
            if !s.bios_overrides.is_empty()
                && let Some(attrs) = v.get_mut("Attributes").and_then(Value::as_object_mut)
            {
                for (k, val) in &s.bios_overrides {
                    attrs.insert(k.clone(), val.clone());
                }
            }
        }
        Role::BiosSettings(i) => {
            let Some(slot) = slot_of(bmc, i, replica) else {
                return;
            };
            let s = &m.systems[slot];
            let ts = &bmc.template.systems[i];
            let mut attrs = Map::new();
            if ts.bios_settings_full {
                // This BMC lists every attribute as it will be after the next boot.
                attrs = (*ts.bios_attributes).clone();
                if !s.bios_reset_pending {
                    attrs.extend(s.bios_overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            attrs.extend(s.bios_pending.iter().map(|(k, v)| (k.clone(), v.clone())));
            if !attrs.is_empty() || v.get("Attributes").is_some() {
                set(v, "Attributes", Value::Object(attrs));
            }
        }
        Role::ManagerAttributes(i, _) => {
            let st = &m.managers[i];
            if let Some(attrs) = v.get_mut("Attributes").and_then(Value::as_object_mut) {
                for (k, val) in attrs.iter_mut() {
                    if let Some(changed) = st.attributes.get(k) {
                        *val = changed.clone();
                    }
                }
            }
        }
        Role::ManagerAttributesSettings(i, a) => {
            let keys = &bmc.template.managers[i].attributes[a].attributes;
            let pending: Map<String, Value> = m.managers[i]
                .attributes_pending
                .iter()
                .filter(|(k, _)| keys.contains_key(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            set(v, "Attributes", Value::Object(pending));
        }
        Role::Manager(i) => {
            if let Some(fw) = &m.managers[i].firmware_version {
                set(v, "FirmwareVersion", Value::from(fw.as_str()));
            }
            if let Some(t) = m.managers[i].last_reset
                && v.get("LastResetTime").is_some()
            {
                set(
                    v,
                    "LastResetTime",
                    Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
            }
        }
        Role::Media(i) => {
            let st = &m.media[i];
            let t = &bmc.template.media[i];
            if st.image == t.image
                && st.inserted == t.inserted
                && st.write_protected == t.write_protected
            {
                return; // as captured
            }
            set(v, "Inserted", Value::from(st.inserted));
            set(
                v,
                "Image",
                st.image.as_deref().map(Value::from).unwrap_or(Value::Null),
            );
            set(v, "WriteProtected", Value::from(st.write_protected));
            if v.get("ImageName").is_some() || st.image.is_some() {
                let name = st
                    .image
                    .as_deref()
                    .map(|i| i.rsplit('/').next().unwrap_or(i).to_string());
                set(v, "ImageName", name.map(Value::from).unwrap_or(Value::Null));
            }
            if v.get("ConnectedVia").is_some() || st.inserted {
                set(
                    v,
                    "ConnectedVia",
                    Value::from(if st.inserted { "URI" } else { "NotConnected" }),
                );
            }
        }
        Role::BiosFirmware(i) => {
            if let Some(b) = slot_of(bmc, i, 0).and_then(|s| m.systems[s].bios_version.as_ref()) {
                set(v, "Version", Value::from(b.as_str()));
            }
        }
        Role::BmcFirmware(i) => {
            if let Some(fw) = &m.managers[i].firmware_version {
                set(v, "Version", Value::from(fw.as_str()));
            }
        }
        Role::SystemsCollection => {
            let extra: Vec<Value> = bmc
                .systems
                .iter()
                .filter(|s| s.replica > 0)
                .map(|s| reference(&s.path))
                .collect();
            if !extra.is_empty()
                && let Some(members) = v.get_mut("Members").and_then(Value::as_array_mut)
            {
                members.extend(extra);
                let n = members.len();
                set(v, "Members@odata.count", Value::from(n));
            }
            let _ = path;
        }
    }
}

/// Dynamic resources: `Some(None)` means the path is in a dynamic collection but does not exist.
fn dynamic(bmc: &Bmc, m: &BmcMachine, path: &str, now: Instant) -> Option<Option<Value>> {
    let p = &bmc.template.paths;
    let member = |base: &str| {
        path.strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| !r.contains('/'))
    };
    if path == p.sessions {
        let ids = m
            .accounts
            .sessions()
            .iter()
            .map(|s| format!("{}/{}", p.sessions, s.id))
            .collect();
        return Some(Some(collection(
            bmc,
            path,
            "SessionCollection",
            "Session Collection",
            ids,
        )));
    }
    if let Some(id) = member(&p.sessions) {
        return Some(m.accounts.session(id).map(|s| {
            json!({
                "@odata.id": path,
                "@odata.type": "#Session.v1_6_0.Session",
                "Id": s.id,
                "Name": "User Session",
                "Description": "Manager User Session",
                "UserName": s.username,
                "Password": null,
                "SessionType": "Redfish",
                "CreatedTime": bmc.shared.clock.utc(s.created).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        }));
    }
    if path == p.accounts {
        let ids = m
            .accounts
            .list
            .iter()
            .map(|a| format!("{}/{}", p.accounts, a.id))
            .collect();
        return Some(Some(collection(
            bmc,
            path,
            "ManagerAccountCollection",
            "Accounts Collection",
            ids,
        )));
    }
    if let Some(id) = member(&p.accounts) {
        return Some(m.accounts.get(id).map(|a| account_value(bmc, path, a)));
    }
    if path == p.tasks {
        let ids = m
            .tasks
            .iter()
            .map(|t| format!("{}/{}", p.tasks, t.id))
            .collect();
        return Some(Some(collection(
            bmc,
            path,
            "TaskCollection",
            "Task Collection",
            ids,
        )));
    }
    if let Some(id) = member(&p.tasks) {
        return Some(
            m.tasks
                .iter()
                .find(|t| t.id.to_string() == id)
                .map(|t| task_value(bmc, m, t, now)),
        );
    }
    if path == p.subscriptions {
        let ids = m
            .subscriptions
            .iter()
            .map(|s| format!("{}/{}", p.subscriptions, s.id))
            .collect();
        return Some(Some(collection(
            bmc,
            path,
            "EventDestinationCollection",
            "Event Subscriptions Collection",
            ids,
        )));
    }
    if let Some(id) = member(&p.subscriptions) {
        return Some(m.subscriptions.iter().find(|s| s.id == id).map(|s| {
            let mut v = Value::Object(s.body.clone());
            set(&mut v, "@odata.id", Value::from(path));
            set(
                &mut v,
                "@odata.type",
                Value::from("#EventDestination.v1_13_0.EventDestination"),
            );
            set(&mut v, "Id", Value::from(s.id.as_str()));
            set(&mut v, "Name", Value::from("Event Subscription"));
            v
        }));
    }
    None
}

fn account_value(bmc: &Bmc, path: &str, a: &crate::state::accounts::Account) -> Value {
    let mut v = bmc.template.json(path).cloned().unwrap_or_else(|| {
        json!({
            "@odata.id": path,
            "@odata.type": "#ManagerAccount.v1_10_0.ManagerAccount",
            "Name": "User Account",
            "Description": "User Account",
            "AccountTypes": ["Redfish"],
        })
    });
    set(&mut v, "Id", Value::from(a.id.as_str()));
    set(&mut v, "UserName", Value::from(a.username.as_str()));
    set(&mut v, "RoleId", Value::from(a.role.as_str()));
    set(&mut v, "Enabled", Value::from(a.enabled));
    set(&mut v, "Locked", Value::from(a.locked));
    set(&mut v, "Password", Value::Null);
    let roles = format!("{}/Roles", bmc.template.paths.account_service);
    if bmc.template.json(&roles).is_some() {
        let role_path = format!("{roles}/{}", a.role);
        if bmc.template.json(&role_path).is_some() {
            let links = v
                .as_object_mut()
                .map(|o| o.entry("Links").or_insert_with(|| json!({})));
            if let Some(Value::Object(l)) = links {
                l.insert("Role".into(), reference(&role_path));
            }
        }
    }
    v
}

/// The Task resource of a task at `now`.
pub(crate) fn task_value(bmc: &Bmc, m: &BmcMachine, t: &Task, now: Instant) -> Value {
    let p = &bmc.template.paths;
    let state = t.state(now);
    let mut messages = vec![json!({
        "MessageId": "TaskEvent.1.0.TaskStarted",
        "Message": format!("The task with Id '{}' has started.", t.id),
        "MessageArgs": [t.id.to_string()],
        "MessageSeverity": "OK",
    })];
    let status = match state {
        crate::state::task::TaskState::Completed => {
            messages.push(json!({
                "MessageId": "TaskEvent.1.0.TaskCompletedOK",
                "Message": format!("The task with Id '{}' has completed.", t.id),
                "MessageArgs": [t.id.to_string()],
                "MessageSeverity": "OK",
            }));
            "OK"
        }
        crate::state::task::TaskState::Exception => {
            messages.push(json!({
                "MessageId": "TaskEvent.1.0.TaskAborted",
                "Message": format!("The task with Id '{}' has been aborted. {}", t.id, t.failure.clone().unwrap_or_default()),
                "MessageArgs": [t.id.to_string()],
                "MessageSeverity": "Critical",
            }));
            "Critical"
        }
        _ => "OK",
    };
    let mut v = json!({
        "@odata.id": format!("{}/{}", p.tasks, t.id),
        "@odata.type": "#Task.v1_7_0.Task",
        "Id": t.id.to_string(),
        "Name": "Firmware Update Task",
        "TaskState": state.as_str(),
        "TaskStatus": status,
        "PercentComplete": t.percent(now),
        "StartTime": t.start_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "TaskMonitor": format!("{}/{}", p.task_monitors, t.id),
        "HidePayload": false,
        "Payload": {
            "TargetUri": bmc.template.paths.update_service.as_deref().map(|u| format!("{u}/Actions/UpdateService.SimpleUpdate")),
            "HttpOperation": "POST",
            "JsonBody": json!({"ImageURI": t.image}).to_string(),
            "HttpHeaders": [],
        },
        "Messages": messages,
    });
    if state.is_done() {
        let end = m.clock.utc(t.done_at());
        set(
            &mut v,
            "EndTime",
            Value::from(end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
    }
    v
}
