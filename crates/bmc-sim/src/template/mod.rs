//! Templates: a Redfish tree loaded once and shared (`Arc`) by every BMC built from it, with the
//! index of the resources the simulator gives behaviour to (systems, managers, BIOS, firmware,
//! virtual media, actions, service collections).

mod load;
mod metadata;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::SimError;
use crate::identity::Tokens;
use crate::json::{ROOT, canon, last_segment, link, members, odata_id, strings, type_name};
use crate::spec::TemplateSource;
use crate::state::bios::BiosRegistry;

use load::RawEntry;

/// One served resource of a template.
pub(crate) enum Entry {
    /// A JSON resource; identity tokens and overlays apply.
    Json(JsonResource),
    /// A verbatim document (`$metadata`, schema files).
    Raw {
        /// Its `Content-Type`.
        content_type: &'static str,
        /// Its bytes.
        body: Bytes,
    },
}

/// A JSON resource of a template.
pub(crate) struct JsonResource {
    /// The resource as captured, minus any captured `@odata.etag`.
    pub value: Value,
    /// Whether identity tokens occur in it.
    pub has_tokens: bool,
    /// The captured `@odata.etag`: served while the resource is unchanged, recomputed otherwise.
    pub captured_etag: Option<String>,
    /// The serialized body and ETag when served unchanged.
    pub cached: OnceLock<(Bytes, Arc<str>)>,
}

/// A computer system of the template.
#[derive(Debug)]
pub(crate) struct SystemTpl {
    pub id: String,
    pub path: String,
    pub reset_types: Vec<String>,
    pub power_on: bool,
    pub boot_enabled: String,
    pub boot_target: String,
    pub boot_mode: Option<String>,
    pub boot_order: Vec<String>,
    pub boot_targets_allowed: Option<Vec<String>>,
    pub boot_modes_allowed: Option<Vec<String>>,
    pub bios_path: Option<String>,
    pub bios_settings_path: Option<String>,
    pub bios_attributes: Arc<Map<String, Value>>,
    /// The captured settings object lists every attribute (pending or not), not just pending ones.
    pub bios_settings_full: bool,
    /// Attributes pending in the capture (settings values that differ from the current ones).
    pub bios_pending: Vec<(String, Value)>,
    pub bios_registry: Option<Arc<BiosRegistry>>,
    pub bios_version: Option<String>,
    pub bios_inventory: Option<String>,
    pub ethernet: Vec<String>,
    pub manager: Option<usize>,
}

/// A manager (BMC) of the template.
#[derive(Debug)]
pub(crate) struct ManagerTpl {
    pub path: String,
    pub reset_types: Vec<String>,
    pub firmware_version: Option<String>,
    pub inventory: Option<String>,
    /// Attribute resources of the BMC (Dell: `Links.Oem.Dell.DellAttributes`).
    pub attributes: Vec<AttributesTpl>,
}

/// A resource holding BMC attributes, and its settings object (pending values).
#[derive(Debug)]
pub(crate) struct AttributesTpl {
    pub path: String,
    pub settings_path: Option<String>,
    pub attributes: Arc<Map<String, Value>>,
}

/// A virtual media slot of the template.
#[derive(Debug)]
pub(crate) struct MediaTpl {
    pub path: String,
    pub image: Option<String>,
    pub inserted: bool,
    pub write_protected: bool,
}

/// The behaviour behind a POST target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    SystemReset(usize),
    ManagerReset(usize),
    InsertMedia(usize),
    EjectMedia(usize),
    SimpleUpdate,
    ResetBios(usize),
    SubmitTestEvent,
    /// `Drive.SecureErase` (of the drive the target path names).
    SecureErase,
    /// An action the template advertises but the simulator does not implement.
    Unsupported,
}

/// Resources whose served form mixes template and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    System(usize),
    Bios(usize),
    BiosSettings(usize),
    Manager(usize),
    Media(usize),
    BiosFirmware(usize),
    BmcFirmware(usize),
    /// Attribute resource `.1` of manager `.0`.
    ManagerAttributes(usize, usize),
    /// Its settings object.
    ManagerAttributesSettings(usize, usize),
    SystemsCollection,
}

/// Where the service-level resources are.
#[derive(Debug)]
pub(crate) struct ServicePaths {
    pub systems: String,
    pub session_service: String,
    pub sessions: String,
    pub account_service: String,
    pub accounts: String,
    pub tasks: String,
    pub task_monitors: String,
    pub event_service: String,
    pub subscriptions: String,
    pub update_service: Option<String>,
}

/// What `$expand` the service root advertises.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExpandCaps {
    pub all: bool,
    pub links: bool,
    pub no_links: bool,
    pub levels: bool,
    pub max_levels: u32,
}

/// An account captured in the template.
#[derive(Clone, Debug)]
pub(crate) struct TplAccount {
    pub id: String,
    pub username: String,
    pub role: String,
    pub enabled: bool,
}

/// A loaded, indexed template.
pub(crate) struct Template {
    pub name: String,
    pub resources: HashMap<Box<str>, Entry>,
    pub systems: Vec<SystemTpl>,
    pub managers: Vec<ManagerTpl>,
    pub media: Vec<MediaTpl>,
    pub actions: HashMap<Box<str>, Action>,
    pub roles_of: HashMap<Box<str>, Role>,
    pub paths: ServicePaths,
    pub tokens: Tokens,
    pub expand: Option<ExpandCaps>,
    pub select_query: bool,
    pub only_query: bool,
    pub top_skip_query: bool,
    pub accounts: Vec<TplAccount>,
    pub account_roles: Vec<String>,
    pub session_timeout_s: u64,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("resources", &self.resources.len())
            .field("systems", &self.systems)
            .field("managers", &self.managers)
            .finish_non_exhaustive()
    }
}

/// Templates already loaded in this process, so several simulators (tests) share one copy.
fn cache() -> &'static Mutex<HashMap<TemplateSource, Weak<Template>>> {
    static CACHE: OnceLock<Mutex<HashMap<TemplateSource, Weak<Template>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl Template {
    /// Loads (or reuses) the template of a source.
    pub(crate) fn get(source: &TemplateSource) -> Result<Arc<Template>, SimError> {
        let key = match source {
            TemplateSource::Path(p) => {
                TemplateSource::Path(std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p)))
            }
            other => other.clone(),
        };
        if let Some(t) = cache()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(Weak::upgrade)
        {
            return Ok(t);
        }
        let (name, raw) = match &key {
            TemplateSource::Builtin(n) => (n.clone(), load::builtin(n)?),
            TemplateSource::Path(p) => (p.display().to_string(), load::mockup_dir(p)?),
        };
        let t = Arc::new(Template::index(name, raw)?);
        cache()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::downgrade(&t));
        Ok(t)
    }

    /// The JSON value of a template resource.
    pub(crate) fn json(&self, path: &str) -> Option<&Value> {
        match self.resources.get(path) {
            Some(Entry::Json(r)) => Some(&r.value),
            _ => None,
        }
    }

    fn index(name: String, raw: HashMap<String, RawEntry>) -> Result<Template, SimError> {
        let invalid = |reason: &str| SimError::TemplateInvalid {
            name: name.clone(),
            reason: reason.into(),
        };
        let mut values: HashMap<String, Value> = HashMap::new();
        let mut resources: HashMap<Box<str>, Entry> = HashMap::with_capacity(raw.len() + 2);
        for (path, e) in raw {
            match e {
                RawEntry::Json(v) => {
                    values.insert(path, v);
                }
                RawEntry::Raw(ct, body) => {
                    resources.insert(
                        path.into(),
                        Entry::Raw {
                            content_type: ct,
                            body,
                        },
                    );
                }
            }
        }
        let root = values
            .get(ROOT)
            .ok_or_else(|| invalid("no service root"))?
            .clone();
        if root
            .get("@odata.type")
            .and_then(Value::as_str)
            .is_none_or(|t| !t.contains("ServiceRoot"))
        {
            return Err(invalid("the root resource is not a ServiceRoot"));
        }
        let get = |p: &str| values.get(p);

        // Service paths.
        let sub = |base: &str, key: &str, default: &str| -> String {
            get(base)
                .and_then(|v| link(v, key))
                .unwrap_or_else(|| format!("{base}/{default}"))
        };
        let session_service =
            link(&root, "SessionService").unwrap_or_else(|| format!("{ROOT}/SessionService"));
        let account_service =
            link(&root, "AccountService").unwrap_or_else(|| format!("{ROOT}/AccountService"));
        let task_service = link(&root, "Tasks").unwrap_or_else(|| format!("{ROOT}/TaskService"));
        let event_service =
            link(&root, "EventService").unwrap_or_else(|| format!("{ROOT}/EventService"));
        let paths = ServicePaths {
            systems: link(&root, "Systems").unwrap_or_else(|| format!("{ROOT}/Systems")),
            sessions: sub(&session_service, "Sessions", "Sessions"),
            accounts: sub(&account_service, "Accounts", "Accounts"),
            tasks: sub(&task_service, "Tasks", "Tasks"),
            task_monitors: format!("{task_service}/TaskMonitors"),
            subscriptions: sub(&event_service, "Subscriptions", "Subscriptions"),
            update_service: link(&root, "UpdateService"),
            session_service,
            account_service,
            event_service,
        };

        let firmware_members: Vec<String> = paths
            .update_service
            .as_deref()
            .and_then(get)
            .and_then(|u| link(u, "FirmwareInventory"))
            .and_then(|p| get(&p).map(members))
            .unwrap_or_default();

        // Managers.
        let manager_paths: Vec<String> = link(&root, "Managers")
            .and_then(|p| get(&p).map(members))
            .unwrap_or_default();
        let mut managers = Vec::new();
        let mut media_paths: Vec<String> = Vec::new();
        for mp in manager_paths
            .iter()
            .filter(|p| values.contains_key(p.as_str()))
        {
            let m = &values[mp.as_str()];
            let reset_types = action_allowable(m, "#Manager.Reset", "ResetType", &values)
                .unwrap_or_else(|| vec!["GracefulRestart".into(), "ForceRestart".into()]);
            let inventory = m
                .get("Links")
                .and_then(|l| link(l, "ActiveSoftwareImage"))
                .or_else(|| {
                    find_firmware(&firmware_members, &values, mp, &["BMC", "IDRAC", "MANAGER"])
                });
            if let Some(vm) = link(m, "VirtualMedia").and_then(|p| get(&p).map(members)) {
                media_paths.extend(vm);
            }
            let attributes = m
                .pointer("/Links/Oem/Dell/DellAttributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l.get("@odata.id").and_then(Value::as_str))
                .filter_map(|p| {
                    let p = canon(p).into_owned();
                    let v = get(&p)?;
                    Some(AttributesTpl {
                        settings_path: v
                            .pointer("/@Redfish.Settings/SettingsObject/@odata.id")
                            .and_then(Value::as_str)
                            .map(|s| canon(s).into_owned())
                            .filter(|s| get(s).is_some()),
                        attributes: Arc::new(
                            v.get("Attributes")
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default(),
                        ),
                        path: p,
                    })
                })
                .collect();
            managers.push(ManagerTpl {
                path: mp.clone(),
                reset_types,
                firmware_version: m
                    .get("FirmwareVersion")
                    .and_then(Value::as_str)
                    .map(String::from),
                inventory,
                attributes,
            });
        }

        // Systems.
        let system_paths = get(&paths.systems).map(members).unwrap_or_default();
        let mut systems = Vec::new();
        for sp in system_paths
            .iter()
            .filter(|p| values.contains_key(p.as_str()))
        {
            let s = &values[sp.as_str()];
            let boot = s.get("Boot").cloned().unwrap_or(Value::Null);
            let bios_path = link(s, "Bios");
            let bios = bios_path.as_deref().and_then(get);
            let bios_settings_path = bios
                .and_then(|b| b.get("@Redfish.Settings"))
                .and_then(|st| link(st, "SettingsObject"))
                .or_else(|| bios_path.as_ref().map(|b| format!("{b}/Settings")));
            let bios_attributes = bios
                .and_then(|b| b.get("Attributes"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let bios_registry = bios.and_then(|b| find_bios_registry(b, &values));
            let captured_settings = bios_settings_path
                .as_deref()
                .and_then(get)
                .and_then(|v| v.get("Attributes"))
                .and_then(Value::as_object);
            let bios_settings_full = captured_settings
                .is_some_and(|c| !c.is_empty() && c.len() * 2 >= bios_attributes.len());
            let bios_pending: Vec<(String, Value)> = captured_settings
                .map(|c| {
                    c.iter()
                        .filter(|(k, v)| bios_attributes.get(k.as_str()) != Some(v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let bios_inventory = bios
                .and_then(|b| b.get("Links"))
                .and_then(|l| link(l, "ActiveSoftwareImage"))
                .or_else(|| {
                    let related = bios_path.clone().unwrap_or_else(|| sp.clone());
                    find_firmware(&firmware_members, &values, &related, &["BIOS", "UEFI"])
                });
            let ethernet = link(s, "EthernetInterfaces")
                .and_then(|p| get(&p).map(members))
                .unwrap_or_default();
            if let Some(vm) = link(s, "VirtualMedia").and_then(|p| get(&p).map(members)) {
                media_paths.extend(vm);
            }
            let manager = s
                .get("Links")
                .and_then(|l| l.get("ManagedBy"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(odata_id)
                .and_then(|p| managers.iter().position(|m| m.path == p))
                .or(if managers.is_empty() { None } else { Some(0) });
            systems.push(SystemTpl {
                id: s
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or(last_segment(sp))
                    .to_string(),
                path: sp.clone(),
                reset_types: action_allowable(s, "#ComputerSystem.Reset", "ResetType", &values)
                    .unwrap_or_else(default_reset_types),
                power_on: s.get("PowerState").and_then(Value::as_str) == Some("On"),
                boot_enabled: str_or(&boot, "BootSourceOverrideEnabled", "Disabled"),
                boot_target: str_or(&boot, "BootSourceOverrideTarget", "None"),
                boot_mode: boot
                    .get("BootSourceOverrideMode")
                    .and_then(Value::as_str)
                    .map(String::from),
                boot_order: strings(&boot, "BootOrder").unwrap_or_default(),
                boot_targets_allowed: strings(
                    &boot,
                    "BootSourceOverrideTarget@Redfish.AllowableValues",
                ),
                boot_modes_allowed: strings(
                    &boot,
                    "BootSourceOverrideMode@Redfish.AllowableValues",
                ),
                bios_path,
                bios_settings_path,
                bios_attributes: Arc::new(bios_attributes),
                bios_settings_full,
                bios_pending,
                bios_registry: bios_registry.map(Arc::new),
                bios_version: s
                    .get("BiosVersion")
                    .and_then(Value::as_str)
                    .map(String::from),
                bios_inventory,
                ethernet,
                manager,
            });
        }
        if systems.is_empty() {
            return Err(invalid("no ComputerSystem in the Systems collection"));
        }

        // Virtual media, deduplicated (a system's collection often links the manager's).
        let mut seen = BTreeSet::new();
        let mut media = Vec::new();
        for p in media_paths {
            if !seen.insert(p.clone()) {
                continue;
            }
            if let Some(v) = get(&p) {
                media.push(MediaTpl {
                    image: v
                        .get("Image")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                    inserted: v.get("Inserted").and_then(Value::as_bool).unwrap_or(false),
                    write_protected: v
                        .get("WriteProtected")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                    path: p,
                });
            }
        }

        // Actions: everything advertised, then the ones with behaviour.
        let mut actions: HashMap<Box<str>, Action> = HashMap::new();
        for v in values.values() {
            collect_action_targets(v, &mut actions);
        }
        let mut set_action = |v: Option<&Value>, name: &str, default: Option<String>, a: Action| {
            let target = v
                .and_then(|v| v.get("Actions"))
                .and_then(|x| x.get(name))
                .and_then(|x| x.get("target"))
                .and_then(Value::as_str)
                .map(|t| canon(t).into_owned())
                .or(default);
            if let Some(t) = target {
                actions.insert(t.into(), a);
            }
        };
        for (i, s) in systems.iter().enumerate() {
            set_action(
                get(&s.path),
                "#ComputerSystem.Reset",
                Some(format!("{}/Actions/ComputerSystem.Reset", s.path)),
                Action::SystemReset(i),
            );
            if let Some(b) = &s.bios_path {
                set_action(get(b), "#Bios.ResetBios", None, Action::ResetBios(i));
            }
        }
        for (i, m) in managers.iter().enumerate() {
            set_action(
                get(&m.path),
                "#Manager.Reset",
                Some(format!("{}/Actions/Manager.Reset", m.path)),
                Action::ManagerReset(i),
            );
        }
        for (i, m) in media.iter().enumerate() {
            let v = get(&m.path);
            set_action(
                v,
                "#VirtualMedia.InsertMedia",
                Some(format!("{}/Actions/VirtualMedia.InsertMedia", m.path)),
                Action::InsertMedia(i),
            );
            set_action(
                v,
                "#VirtualMedia.EjectMedia",
                Some(format!("{}/Actions/VirtualMedia.EjectMedia", m.path)),
                Action::EjectMedia(i),
            );
        }
        if let Some(u) = &paths.update_service {
            set_action(
                get(u),
                "#UpdateService.SimpleUpdate",
                Some(format!("{u}/Actions/UpdateService.SimpleUpdate")),
                Action::SimpleUpdate,
            );
        }
        set_action(
            get(&paths.event_service),
            "#EventService.SubmitTestEvent",
            None,
            Action::SubmitTestEvent,
        );
        for v in values.values() {
            let is_drive = v
                .get("@odata.type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("#Drive."));
            if is_drive {
                set_action(Some(v), "#Drive.SecureErase", None, Action::SecureErase);
            }
        }

        // Roles of resources with state.
        let mut roles_of: HashMap<Box<str>, Role> = HashMap::new();
        roles_of.insert(paths.systems.as_str().into(), Role::SystemsCollection);
        for (i, s) in systems.iter().enumerate() {
            roles_of.insert(s.path.as_str().into(), Role::System(i));
            if let Some(b) = &s.bios_path {
                roles_of.insert(b.as_str().into(), Role::Bios(i));
            }
            if let Some(b) = &s.bios_settings_path {
                roles_of.insert(b.as_str().into(), Role::BiosSettings(i));
            }
            if let Some(f) = &s.bios_inventory {
                roles_of
                    .entry(f.as_str().into())
                    .or_insert(Role::BiosFirmware(i));
            }
        }
        for (i, m) in managers.iter().enumerate() {
            roles_of.insert(m.path.as_str().into(), Role::Manager(i));
            for (a, attrs) in m.attributes.iter().enumerate() {
                roles_of.insert(attrs.path.as_str().into(), Role::ManagerAttributes(i, a));
                if let Some(sp) = &attrs.settings_path {
                    roles_of.insert(sp.as_str().into(), Role::ManagerAttributesSettings(i, a));
                }
            }
            if let Some(f) = &m.inventory {
                roles_of
                    .entry(f.as_str().into())
                    .or_insert(Role::BmcFirmware(i));
            }
        }
        for (i, m) in media.iter().enumerate() {
            roles_of.insert(m.path.as_str().into(), Role::Media(i));
        }

        // Accounts and roles.
        let accounts = get(&paths.accounts)
            .map(members)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| get(p))
            .map(|a| TplAccount {
                id: a
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                username: a
                    .get("UserName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                role: a
                    .get("RoleId")
                    .and_then(Value::as_str)
                    .unwrap_or("ReadOnly")
                    .to_string(),
                enabled: a.get("Enabled").and_then(Value::as_bool).unwrap_or(true),
            })
            .filter(|a| !a.id.is_empty())
            .collect();
        let mut account_roles: Vec<String> = get(&paths.account_service)
            .and_then(|a| link(a, "Roles"))
            .and_then(|p| get(&p).map(members))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| get(p))
            .filter_map(|r| {
                r.get("RoleId")
                    .or_else(|| r.get("Id"))
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        for r in ["Administrator", "Operator", "ReadOnly"] {
            if !account_roles.iter().any(|x| x == r) {
                account_roles.push(r.into());
            }
        }
        let session_timeout_s = get(&paths.session_service)
            .and_then(|s| s.get("SessionTimeout"))
            .and_then(Value::as_u64)
            .unwrap_or(1800);

        let expand = root
            .get("ProtocolFeaturesSupported")
            .and_then(|p| p.get("ExpandQuery"))
            .map(|e| {
                let b = |k: &str| e.get(k).and_then(Value::as_bool).unwrap_or(false);
                ExpandCaps {
                    all: b("ExpandAll"),
                    links: b("Links"),
                    no_links: b("NoLinks"),
                    levels: b("Levels"),
                    max_levels: e
                        .get("MaxLevels")
                        .and_then(Value::as_u64)
                        .unwrap_or(1)
                        .clamp(1, 6) as u32,
                }
            })
            .filter(|c| c.all || c.links || c.no_links);

        let feature = |k: &str| {
            root.get("ProtocolFeaturesSupported")
                .and_then(|p| p.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let (select_query, only_query, top_skip_query) = (
            feature("SelectQuery"),
            feature("OnlyMemberQuery"),
            feature("TopSkipQuery"),
        );

        // Dynamic collections replace captured members (sessions, tasks, subscriptions).
        let dynamic_prefixes = [
            format!("{}/", paths.sessions),
            format!("{}/", paths.tasks),
            format!("{}/", paths.subscriptions),
        ];
        values.retain(|p, _| !dynamic_prefixes.iter().any(|d| p.starts_with(d.as_str())));

        if !resources.contains_key(format!("{ROOT}/$metadata").as_str()) {
            let xml = metadata::generate(values.values());
            resources.insert(
                format!("{ROOT}/$metadata").into(),
                Entry::Raw {
                    content_type: "application/xml; charset=utf-8",
                    body: Bytes::from(xml),
                },
            );
        }
        let odata_path = format!("{ROOT}/odata");
        values
            .entry(odata_path)
            .or_insert_with(|| metadata::service_document(&root));

        let tokens = Tokens::scan(values.values());
        for (path, mut value) in values {
            let captured_etag = value
                .as_object_mut()
                .and_then(|o| o.remove("@odata.etag"))
                .map(|e| {
                    e.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| e.to_string())
                });
            let has_tokens = tokens.occurs_in(&value);
            resources.insert(
                path.into(),
                Entry::Json(JsonResource {
                    value,
                    has_tokens,
                    captured_etag,
                    cached: OnceLock::new(),
                }),
            );
        }

        Ok(Template {
            name,
            resources,
            systems,
            managers,
            media,
            actions,
            roles_of,
            paths,
            tokens,
            expand,
            select_query,
            only_query,
            top_skip_query,
            accounts,
            account_roles,
            session_timeout_s,
        })
    }
}

fn default_reset_types() -> Vec<String> {
    [
        "On",
        "ForceOff",
        "GracefulShutdown",
        "GracefulRestart",
        "ForceRestart",
        "PowerCycle",
        "Nmi",
        "PushPowerButton",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn str_or(v: &Value, key: &str, default: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Allowable values of an action parameter: inline `Param@Redfish.AllowableValues`, or the
/// `Parameters` of the linked `@Redfish.ActionInfo`.
fn action_allowable(
    v: &Value,
    action: &str,
    param: &str,
    values: &HashMap<String, Value>,
) -> Option<Vec<String>> {
    let a = v.get("Actions")?.get(action)?;
    if let Some(list) = strings(a, &format!("{param}@Redfish.AllowableValues")) {
        return Some(list);
    }
    let info = a.get("@Redfish.ActionInfo").and_then(Value::as_str)?;
    let info = values.get(canon(info).as_ref())?;
    info.get("Parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("Name").and_then(Value::as_str) == Some(param))
        .and_then(|p| strings(p, "AllowableValues"))
}

/// Every action `target` advertised anywhere (including `Oem` actions), as unsupported.
fn collect_action_targets(v: &Value, out: &mut HashMap<Box<str>, Action>) {
    fn targets(actions: &Value, out: &mut HashMap<Box<str>, Action>) {
        if let Some(o) = actions.as_object() {
            for (k, a) in o {
                if k == "Oem" {
                    targets(a, out);
                } else if let Some(t) = a.get("target").and_then(Value::as_str) {
                    out.insert(canon(t).into(), Action::Unsupported);
                }
            }
        }
    }
    if let Some(a) = v.get("Actions") {
        targets(a, out);
    }
}

/// A firmware inventory entry for a component: one whose `RelatedItem` links `related`, else one
/// whose Id names it (preferring active images over backup/previous ones).
fn find_firmware(
    members: &[String],
    values: &HashMap<String, Value>,
    related: &str,
    names: &[&str],
) -> Option<String> {
    let related_hit = members.iter().find(|m| {
        values
            .get(m.as_str())
            .and_then(|v| v.get("RelatedItem"))
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .filter_map(odata_id)
                    .any(|r| r == related || related.starts_with(&format!("{r}/")))
            })
            && {
                let id = last_segment(m).to_ascii_uppercase();
                names.iter().any(|n| id.contains(n))
            }
    });
    if let Some(m) = related_hit {
        return Some(m.clone());
    }
    let inactive = [
        "BACKUP", "GOLDEN", "STAGING", "PREVIOUS", "CAPSULE", "RECOVERY",
    ];
    let mut candidates: Vec<&String> = members
        .iter()
        .filter(|m| {
            let id = last_segment(m).to_ascii_uppercase();
            names.iter().any(|n| id.contains(n)) && !inactive.iter().any(|x| id.contains(x))
        })
        .collect();
    candidates.sort_by_key(|m| {
        let id = last_segment(m).to_ascii_uppercase();
        (
            !names.iter().any(|n| id == *n),
            !id.starts_with("INSTALLED"),
            m.len(),
        )
    });
    candidates.first().map(|m| (*m).clone())
}

/// The attribute registry a Bios resource names, wherever the tree keeps it.
fn find_bios_registry(bios: &Value, values: &HashMap<String, Value>) -> Option<BiosRegistry> {
    let name = bios.get("AttributeRegistry").and_then(Value::as_str);
    let is_registry = |v: &Value| {
        v.get("RegistryEntries").is_some()
            && (type_name(v) == Some("AttributeRegistry")
                || v.get("@odata.type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains("AttributeRegistry")))
    };
    let mut found: Option<&Value> = None;
    if let Some(name) = name {
        found = values
            .values()
            .find(|v| is_registry(v) && v.get("Id").and_then(Value::as_str) == Some(name));
        if found.is_none() {
            // A MessageRegistryFile whose Location points at a local copy.
            let prefix = name.split('.').next().unwrap_or(name);
            found = values
                .values()
                .filter(|v| {
                    v.get("Registry")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r == name || r.starts_with(prefix))
                })
                .filter_map(|f| f.get("Location").and_then(Value::as_array))
                .flatten()
                .filter_map(|l| l.get("Uri").and_then(Value::as_str))
                .find_map(|u| values.get(canon(u).as_ref()).filter(|v| is_registry(v)));
        }
    }
    if found.is_none() {
        let candidates: Vec<&Value> = values
            .values()
            .filter(|v| is_registry(v))
            .filter(|v| {
                v.get("Id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.to_ascii_lowercase().contains("bios"))
            })
            .collect();
        if candidates.len() == 1 {
            found = Some(candidates[0]);
        }
    }
    found.and_then(BiosRegistry::from_value)
}

/// Writes a template as a DMTF mockup tree under `out` (`redfish/v1/.../index.json`, `index.xml`
/// for verbatim documents); returns how many resources were written.
pub(crate) fn export(source: &TemplateSource, out: &std::path::Path) -> Result<usize, SimError> {
    let t = Template::get(source)?;
    let mut n = 0;
    for (path, entry) in &t.resources {
        let dir = out.join(path.trim_start_matches('/'));
        let err = |source| SimError::Write {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        match entry {
            Entry::Json(r) => {
                let text = serde_json::to_string_pretty(&r.value).unwrap_or_default();
                std::fs::write(dir.join("index.json"), text + "\n").map_err(err)?;
            }
            Entry::Raw { body, .. } => std::fs::write(dir.join("index.xml"), body).map_err(err)?,
        }
        n += 1;
    }
    Ok(n)
}
