//! The set controllers (BIOSSettingsSet, BIOSVersionSet): one child object per server matched by
//! the set's `serverSelector`, stamped from the set's template, named `<set>-<server>`, owned by
//! the set (so deleting the set deletes its children through garbage collection) and labelled
//! `metal.ironcore.dev/set: <set>`. The status counts the children by state.
//!
//! Children are created (POST) and their template kept equal to the set's (JSON merge patch);
//! neither is a server-side apply, so they never disturb the fields the child's own controller
//! applies under the same field manager (finalizer, `serverMaintenanceRef`). A child whose
//! server no longer matches is deleted unless it is in progress (a running update is not cut
//! short; it is deleted once it ended). With a `--server-selector`, an instance creates and
//! deletes children only for its own servers; every instance counts all children, so their
//! status writes agree.

use crate::{Caches, Ctx, Error, writes};
use api::biossettings::{BIOSSettings, BIOSSettingsState};
use api::biosversion::{BIOSVersion, VersionState};
use api::sets::{BIOSSettingsSet, BIOSVersionSet};
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt as _};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt as _};
use runtime::cache::SharedWatch;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Label on every child naming its set.
pub const SET_LABEL: &str = "metal.ironcore.dev/set";

/// Where a child stands, for the set's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    /// Not started or waiting.
    Pending,
    /// Being applied.
    InProgress,
    /// Done.
    Completed,
    /// Gave up.
    Failed,
}

/// A set kind and its child kind.
pub trait SetKind:
    Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    /// The child kind.
    type Child: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + serde::Serialize
        + Send
        + Sync
        + 'static;
    /// The set's server selector.
    fn selector(&self) -> &LabelSelector;
    /// The template every child's spec is stamped from (`None`: the set creates nothing).
    fn template(&self) -> Option<Value>;
    /// The server a child is for.
    fn child_server(child: &Self::Child) -> Option<&str>;
    /// The child's template as it is now.
    fn child_template(child: &Self::Child) -> Value;
    /// Where a child stands.
    fn progress(child: &Self::Child) -> Progress;
    /// The status to write: matched servers and the children's counts.
    fn status(matched: usize, counts: &BTreeMap<Progress, usize>, children: usize) -> Value;
}

fn counters(
    matched_key: &str,
    noun: &str,
    matched: usize,
    counts: &BTreeMap<Progress, usize>,
    children: usize,
) -> Value {
    let n = |p| counts.get(&p).copied().unwrap_or(0) as i64;
    json!({
        matched_key: matched as i64,
        format!("available{noun}"): children as i64,
        format!("pending{noun}"): n(Progress::Pending),
        format!("inProgress{noun}"): n(Progress::InProgress),
        format!("completed{noun}"): n(Progress::Completed),
        format!("failed{noun}"): n(Progress::Failed),
    })
}

fn template_of<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or_default()
}

impl SetKind for BIOSSettingsSet {
    type Child = BIOSSettings;
    fn selector(&self) -> &LabelSelector {
        &self.spec.server_selector
    }
    fn template(&self) -> Option<Value> {
        self.spec.bios_settings_template.as_ref().map(template_of)
    }
    fn child_server(child: &BIOSSettings) -> Option<&str> {
        child.spec.server_ref.as_ref().map(|r| r.name.as_str())
    }
    fn child_template(child: &BIOSSettings) -> Value {
        template_of(&child.spec.template)
    }
    fn progress(child: &BIOSSettings) -> Progress {
        match child.status.as_ref().and_then(|s| s.state) {
            Some(BIOSSettingsState::InProgress) => Progress::InProgress,
            Some(BIOSSettingsState::Applied) => Progress::Completed,
            Some(BIOSSettingsState::Failed) => Progress::Failed,
            Some(BIOSSettingsState::Pending) | None => Progress::Pending,
        }
    }
    fn status(matched: usize, counts: &BTreeMap<Progress, usize>, children: usize) -> Value {
        counters(
            "fullyLabeledServers",
            "BIOSSettings",
            matched,
            counts,
            children,
        )
    }
}

impl SetKind for BIOSVersionSet {
    type Child = BIOSVersion;
    fn selector(&self) -> &LabelSelector {
        &self.spec.server_selector
    }
    fn template(&self) -> Option<Value> {
        self.spec.bios_version_template.as_ref().map(template_of)
    }
    fn child_server(child: &BIOSVersion) -> Option<&str> {
        child.spec.server_ref.as_ref().map(|r| r.name.as_str())
    }
    fn child_template(child: &BIOSVersion) -> Value {
        template_of(&child.spec.template)
    }
    fn progress(child: &BIOSVersion) -> Progress {
        match child.status.as_ref().and_then(|s| s.state) {
            Some(VersionState::InProgress) => Progress::InProgress,
            Some(VersionState::Completed) => Progress::Completed,
            Some(VersionState::Failed) => Progress::Failed,
            Some(VersionState::Pending) | None => Progress::Pending,
        }
    }
    fn status(matched: usize, counts: &BTreeMap<Progress, usize>, children: usize) -> Value {
        counters(
            "fullyLabeledServers",
            "BIOSVersion",
            matched,
            counts,
            children,
        )
    }
}

/// Name of the child of `set` for `server`: `<set>-<server>`, shortened with a hash suffix
/// when it would exceed the 253 characters of a name.
pub fn child_name(set: &str, server: &str) -> String {
    let name = format!("{set}-{server}");
    if name.len() <= 253 {
        return name;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    format!("{}-{:016x}", &name[..253 - 17], h.finish())
}

/// What one reconcile of a set changes (pure).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SetPlan {
    /// Servers that need a child.
    pub create: Vec<String>,
    /// Children whose template differs from the set's.
    pub update: Vec<String>,
    /// Children whose server no longer matches and that are not in progress.
    pub delete: Vec<String>,
}

/// Plans the children: `selected` are the matched servers this instance may act for; `mine`
/// says whether a server is this instance's at all.
pub fn plan<S: SetKind>(
    set: &S,
    selected: &[String],
    children: &[Arc<S::Child>],
    mine: impl Fn(&str) -> bool,
) -> SetPlan {
    let mut plan = SetPlan::default();
    let Some(template) = set.template() else {
        return plan;
    };
    let by_server: BTreeMap<&str, &Arc<S::Child>> = children
        .iter()
        .filter_map(|c| S::child_server(c).map(|s| (s, c)))
        .collect();
    for server in selected {
        match by_server.get(server.as_str()) {
            None => plan.create.push(server.clone()),
            Some(c) if S::child_template(c) != template => plan.update.push(c.name_any()),
            Some(_) => {}
        }
    }
    for (server, child) in by_server {
        if mine(server)
            && !selected.iter().any(|s| s == server)
            && S::progress(child) != Progress::InProgress
            && child.meta().deletion_timestamp.is_none()
        {
            plan.delete.push(child.name_any());
        }
    }
    plan
}

pub(crate) async fn run<S: SetKind>(
    ctx: Arc<Ctx>,
    sets: &SharedWatch<S>,
    children: &SharedWatch<S::Child>,
    caches: &Caches,
    shutdown: CancellationToken,
) {
    let all_sets = sets.store();
    let children_store = children.store();
    let reconcile = move |set: Arc<S>, ctx: Arc<Ctx>| {
        let children = children_store.clone();
        async move {
            let work = reconcile_set(set.as_ref(), &ctx, &children);
            crate::window::instrumented(set.as_ref(), &ctx, work).await
        }
    };
    Controller::for_shared_stream(sets.applied(), sets.store())
        // Any server change may change which servers a set selects.
        .watches_shared_stream(caches.servers.touched(), move |_server| {
            all_sets
                .state()
                .iter()
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(children.touched(), |child| {
            child
                .owner_references()
                .iter()
                .filter(|o| o.kind == S::kind(&()))
                .map(|o| ObjectRef::<S>::new(&o.name))
                .collect::<Vec<_>>()
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, crate::window::backoff::<S>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, kind = %S::kind(&()), "set controller");
            }
        })
        .await;
}

async fn reconcile_set<S: SetKind>(
    set: &S,
    ctx: &Ctx,
    children: &Store<S::Child>,
) -> Result<Action, Error> {
    if api::constants::ignored(set.meta()) || set.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = set.uid().unwrap_or_default();
    let mine: Vec<Arc<S::Child>> = children
        .state()
        .into_iter()
        .filter(|c| c.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    let selector = Selector::try_from(set.selector().clone())
        .map_err(|e| Error::InvalidSpec(format!("serverSelector: {}", e.0)))?;
    let selected: Vec<String> = ctx
        .servers
        .state()
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none() && selector.matches(s.labels()))
        .map(|s| s.name_any())
        .collect();
    let p = plan(set, &selected, &mine, |server| ctx.in_scope(server));
    let api: Api<S::Child> = Api::all(ctx.client.clone());
    let template = set.template().unwrap_or_default();
    let owner = set
        .controller_owner_ref(&())
        .expect("a stored object has a name and uid");
    for server in &p.create {
        let name = child_name(&set.name_any(), server);
        let mut spec = template.clone();
        spec["serverRef"] = json!({ "name": server });
        let child: S::Child = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": S::Child::kind(&()),
            "metadata": { "name": name, "ownerReferences": [owner], "labels": { SET_LABEL: set.name_any() } },
            "spec": spec,
        }))
        .map_err(|e| Error::InvalidSpec(format!("template: {e}")))?;
        let pp = PostParams {
            field_manager: Some(writes::FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match writes::call(format!("creating {name}"), api.create(&pp, &child)).await {
            Ok(_) | Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for name in &p.update {
        let pp = PatchParams {
            field_manager: Some(writes::FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        writes::call(
            format!("updating the template of {name}"),
            api.patch(name, &pp, &Patch::Merge(json!({ "spec": template }))),
        )
        .await?;
    }
    for name in &p.delete {
        match writes::call(
            format!("deleting {name}"),
            api.delete(name, &DeleteParams::default()),
        )
        .await
        {
            Ok(_) => {}
            Err(Error::Kube { source, .. }) if crate::error::status_code(&source) == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    let mut counts = BTreeMap::new();
    for c in &mine {
        *counts.entry(S::progress(c)).or_insert(0) += 1;
    }
    let status = S::status(selected.len(), &counts, mine.len());
    let api_sets: Api<S> = Api::all(ctx.client.clone());
    let current = serde_json::to_value(set)
        .ok()
        .and_then(|v| v.get("status").cloned());
    if current.as_ref() != Some(&status) {
        writes::apply_status(&api_sets, &set.name_any(), status).await?;
    }
    Ok(Action::requeue(ctx.config.resync))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(template: bool) -> BIOSSettingsSet {
        let mut spec = json!({ "serverSelector": { "matchLabels": { "pool": "a" } } });
        if template {
            spec["biosSettingsTemplate"] = json!({
                "version": "1.0",
                "settingsFlow": [{ "name": "s", "priority": 1, "settings": { "A": "1" } }],
            });
        }
        serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BIOSSettingsSet",
            "metadata": { "name": "set", "uid": "u" }, "spec": spec,
        }))
        .unwrap()
    }

    fn child(server: &str, value: &str, state: Option<&str>) -> Arc<BIOSSettings> {
        let mut v = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BIOSSettings",
            "metadata": { "name": format!("set-{server}") },
            "spec": { "version": "1.0", "serverRef": { "name": server },
                      "settingsFlow": [{ "name": "s", "priority": 1, "settings": { "A": value } }] },
        });
        if let Some(s) = state {
            v["status"] = json!({ "state": s });
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn children_are_created_updated_and_deleted_but_never_cut_short() {
        let s = set(true);
        let selected = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let children = vec![
            child("a", "1", Some("Applied")),
            child("b", "2", None),
            child("gone", "1", Some("Applied")),
            child("busy", "1", Some("InProgress")),
            child("other-shard", "1", None),
        ];
        let p = plan(&s, &selected, &children, |server| server != "other-shard");
        assert_eq!(p.create, ["c"]);
        assert_eq!(p.update, ["set-b"]);
        assert_eq!(p.delete, ["set-gone"]);
        assert_eq!(
            plan(&set(false), &selected, &children, |_| true),
            SetPlan::default()
        );
    }

    #[test]
    fn names_stay_valid_and_counters_are_named_like_upstream() {
        assert_eq!(child_name("set", "srv"), "set-srv");
        let long = child_name(&"s".repeat(200), &"v".repeat(200));
        assert_eq!(long.len(), 253);
        assert_ne!(long, child_name(&"s".repeat(200), &"w".repeat(200)));
        let counts = BTreeMap::from([(Progress::Completed, 2), (Progress::Failed, 1)]);
        let st = BIOSSettingsSet::status(4, &counts, 3);
        assert_eq!(st["fullyLabeledServers"], 4);
        assert_eq!(st["availableBIOSSettings"], 3);
        assert_eq!(st["completedBIOSSettings"], 2);
        assert_eq!(st["failedBIOSSettings"], 1);
        assert_eq!(st["pendingBIOSSettings"], 0);
        // Every counter is a field of the API type.
        let parsed: api::sets::BIOSSettingsSetStatus = serde_json::from_value(st).unwrap();
        assert_eq!(parsed.completed, Some(2));
        let v = BIOSVersionSet::status(1, &BTreeMap::new(), 0);
        let parsed: api::sets::BIOSVersionSetStatus = serde_json::from_value(v).unwrap();
        assert_eq!(parsed.fully_labeled_servers, Some(1));
    }
}
