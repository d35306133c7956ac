//! The set controllers (BIOSSettingsSet, BIOSVersionSet, BMCVersionSet): one child object per
//! target (a server matched by `serverSelector`, or a BMC matched by `bmcSelector`), stamped from
//! the set's template, named `<set>-<target>`, owned by the set (so deleting the set deletes its
//! children through garbage collection) and labelled `metal.ironcore.dev/set: <set>`. The status
//! counts the children by state.
//!
//! Roll-out (`spec.rollout`): at most `maxInMaintenance` targets are worked on at once. A target
//! is worked on while its child is not Completed or Failed, or while a server of the target is
//! still held by a maintenance (a finished child's server is handed back a moment later);
//! children this instance created or changed count too until their controller has acted on
//! that write (`status.observedGeneration`), so neither a stale cache nor a finished child's old
//! state starts more. Starting a target is creating its child, or changing the template of a finished
//! one. Once `pauseAfterFailures` children have failed no target is started (running ones go on):
//! `status.paused`. For BMC sets the limit counts BMCs, each holding every server it manages.
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
use api::bmcsettings::{BMCSettings, BMCSettingsState};
use api::bmcversion::BMCVersion;
use api::common::Rollout;
use api::sets::{BIOSSettingsSet, BIOSVersionSet, BMCSettingsSet, BMCVersionSet};
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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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

/// What a set's children are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// One child per selected server (`spec.serverRef`).
    Server,
    /// One child per selected BMC (`spec.bmcRef`).
    Bmc,
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
    /// What the children are for.
    const TARGET: TargetKind;
    /// The set's selector of targets.
    fn selector(&self) -> &LabelSelector;
    /// How fast the set rolls out.
    fn rollout(&self) -> Option<&Rollout>;
    /// The template every child's spec is stamped from (`None`: the set creates nothing).
    fn template(&self) -> Option<Value>;
    /// The target (server or BMC) a child is for.
    fn child_target(child: &Self::Child) -> Option<&str>;
    /// The generation of the child's spec its controller last acted on.
    fn observed(child: &Self::Child) -> Option<i64>;
    /// The child's template as it is now.
    fn child_template(child: &Self::Child) -> Value;
    /// Where a child stands.
    fn progress(child: &Self::Child) -> Progress;
    /// The status to write: matched targets and the children's counts.
    fn status(counts: &Counts) -> Value;
}

/// A set's counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Targets the selector matches.
    pub matched: usize,
    /// Children by progress.
    pub by_progress: BTreeMap<Progress, usize>,
    /// Children.
    pub children: usize,
    /// Targets worked on now (what the limit bounds).
    pub in_maintenance: usize,
    /// Whether the roll-out is paused.
    pub paused: bool,
}

fn counters(matched_key: &str, noun: &str, c: &Counts) -> Value {
    let n = |p| c.by_progress.get(&p).copied().unwrap_or(0) as i64;
    json!({
        matched_key: c.matched as i64,
        format!("available{noun}"): c.children as i64,
        format!("pending{noun}"): n(Progress::Pending),
        format!("inProgress{noun}"): n(Progress::InProgress),
        format!("completed{noun}"): n(Progress::Completed),
        format!("failed{noun}"): n(Progress::Failed),
        "inMaintenance": c.in_maintenance as i64,
        "paused": c.paused,
    })
}

fn version_progress(state: Option<VersionState>) -> Progress {
    match state {
        Some(VersionState::InProgress) => Progress::InProgress,
        Some(VersionState::Completed) => Progress::Completed,
        Some(VersionState::Failed) => Progress::Failed,
        Some(VersionState::Pending) | None => Progress::Pending,
    }
}

fn template_of<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or_default()
}

impl SetKind for BIOSSettingsSet {
    type Child = BIOSSettings;
    const TARGET: TargetKind = TargetKind::Server;
    fn selector(&self) -> &LabelSelector {
        &self.spec.server_selector
    }
    fn rollout(&self) -> Option<&Rollout> {
        self.spec.rollout.as_ref()
    }
    fn template(&self) -> Option<Value> {
        self.spec.bios_settings_template.as_ref().map(template_of)
    }
    fn child_target(child: &BIOSSettings) -> Option<&str> {
        child.spec.server_ref.as_ref().map(|r| r.name.as_str())
    }
    fn observed(child: &BIOSSettings) -> Option<i64> {
        child.status.as_ref()?.observed_generation
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
    fn status(c: &Counts) -> Value {
        counters("fullyLabeledServers", "BIOSSettings", c)
    }
}

impl SetKind for BIOSVersionSet {
    type Child = BIOSVersion;
    const TARGET: TargetKind = TargetKind::Server;
    fn selector(&self) -> &LabelSelector {
        &self.spec.server_selector
    }
    fn rollout(&self) -> Option<&Rollout> {
        self.spec.rollout.as_ref()
    }
    fn template(&self) -> Option<Value> {
        self.spec.bios_version_template.as_ref().map(template_of)
    }
    fn child_target(child: &BIOSVersion) -> Option<&str> {
        child.spec.server_ref.as_ref().map(|r| r.name.as_str())
    }
    fn observed(child: &BIOSVersion) -> Option<i64> {
        child.status.as_ref()?.observed_generation
    }
    fn child_template(child: &BIOSVersion) -> Value {
        template_of(&child.spec.template)
    }
    fn progress(child: &BIOSVersion) -> Progress {
        version_progress(child.status.as_ref().and_then(|s| s.state))
    }
    fn status(c: &Counts) -> Value {
        counters("fullyLabeledServers", "BIOSVersion", c)
    }
}

impl SetKind for BMCSettingsSet {
    type Child = BMCSettings;
    const TARGET: TargetKind = TargetKind::Bmc;
    fn selector(&self) -> &LabelSelector {
        &self.spec.bmc_selector
    }
    fn rollout(&self) -> Option<&Rollout> {
        self.spec.rollout.as_ref()
    }
    fn template(&self) -> Option<Value> {
        Some(template_of(&self.spec.bmc_settings_template))
    }
    fn child_target(child: &BMCSettings) -> Option<&str> {
        Some(child.spec.bmc_ref.name.as_str())
    }
    fn observed(child: &BMCSettings) -> Option<i64> {
        child.status.as_ref()?.observed_generation
    }
    fn child_template(child: &BMCSettings) -> Value {
        template_of(&child.spec.template)
    }
    fn progress(child: &BMCSettings) -> Progress {
        match child.status.as_ref().and_then(|s| s.state) {
            Some(BMCSettingsState::InProgress) => Progress::InProgress,
            Some(BMCSettingsState::Applied) => Progress::Completed,
            Some(BMCSettingsState::Failed) => Progress::Failed,
            Some(BMCSettingsState::Pending) | None => Progress::Pending,
        }
    }
    fn status(c: &Counts) -> Value {
        counters("fullyLabeledBMCs", "BMCSettings", c)
    }
}

impl SetKind for BMCVersionSet {
    type Child = BMCVersion;
    const TARGET: TargetKind = TargetKind::Bmc;
    fn selector(&self) -> &LabelSelector {
        &self.spec.bmc_selector
    }
    fn rollout(&self) -> Option<&Rollout> {
        self.spec.rollout.as_ref()
    }
    fn template(&self) -> Option<Value> {
        self.spec.bmc_version_template.as_ref().map(template_of)
    }
    fn child_target(child: &BMCVersion) -> Option<&str> {
        child.spec.bmc_ref.as_ref().map(|r| r.name.as_str())
    }
    fn observed(child: &BMCVersion) -> Option<i64> {
        child.status.as_ref()?.observed_generation
    }
    fn child_template(child: &BMCVersion) -> Value {
        template_of(&child.spec.template)
    }
    fn progress(child: &BMCVersion) -> Progress {
        version_progress(child.status.as_ref().and_then(|s| s.state))
    }
    fn status(c: &Counts) -> Value {
        counters("fullyLabeledBMCs", "BMCVersion", c)
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
    /// Targets that need a child (each starts a target).
    pub create: Vec<String>,
    /// Children whose template differs from the set's.
    pub update: Vec<String>,
    /// Children whose target no longer matches and that are not in progress.
    pub delete: Vec<String>,
    /// Targets worked on after this plan is carried out.
    pub in_maintenance: usize,
    /// Whether starting targets is paused by failures.
    pub paused: bool,
    /// Targets that need a start the limit or the pause holds back.
    pub waiting: usize,
}

/// The roll-out state a plan starts from.
#[derive(Debug, Default, Clone)]
pub struct Flight {
    /// Children worked on (by name), as the cache shows them.
    pub active: BTreeSet<String>,
    /// Children created or changed by this instance that the cache does not show yet.
    pub expected: BTreeSet<String>,
}

/// Plans the children: `selected` are the matched targets, `mine` says whether a target is this
/// instance's to create and delete children for, `flight` what is worked on now.
pub fn plan<S: SetKind>(
    set: &S,
    selected: &[String],
    children: &[Arc<S::Child>],
    mine: impl Fn(&str) -> bool,
    flight: &Flight,
) -> SetPlan {
    let mut plan = SetPlan::default();
    let busy: BTreeSet<&String> = flight.active.iter().chain(&flight.expected).collect();
    plan.in_maintenance = busy.len();
    let failed = children
        .iter()
        .filter(|c| S::progress(c) == Progress::Failed)
        .count();
    let rollout = set.rollout().cloned().unwrap_or_default();
    plan.paused = rollout
        .pause_after_failures
        .is_some_and(|n| failed >= n.max(1) as usize);
    let Some(template) = set.template() else {
        return plan;
    };
    let limit = rollout.limit(selected.len());
    let by_target: BTreeMap<&str, &Arc<S::Child>> = children
        .iter()
        .filter_map(|c| S::child_target(c).map(|s| (s, c)))
        .collect();
    let mut sorted: Vec<&String> = selected.iter().collect();
    sorted.sort();
    for target in sorted {
        let child = by_target.get(target.as_str());
        let starts = match child {
            // Created, not cached yet: already counted.
            None if busy.contains(&child_name(&set.name_any(), target)) => false,
            None => true,
            Some(c) if S::child_template(c) != template => {
                // A child being worked on follows the new template in its slot.
                if busy.contains(&c.name_any()) {
                    plan.update.push(c.name_any());
                    continue;
                }
                true
            }
            Some(_) => false,
        };
        if !starts || !mine(target) {
            continue;
        }
        if plan.paused || limit.is_some_and(|l| plan.in_maintenance >= l) {
            plan.waiting += 1;
            continue;
        }
        plan.in_maintenance += 1;
        match child {
            None => plan.create.push(target.clone()),
            Some(c) => plan.update.push(c.name_any()),
        }
    }
    for (target, child) in by_target {
        if mine(target)
            && !selected.iter().any(|s| s == target)
            && S::progress(child) != Progress::InProgress
            && child.meta().deletion_timestamp.is_none()
        {
            plan.delete.push(child.name_any());
        }
    }
    plan
}

/// How long a write this instance made may stay invisible in its cache before it is no longer
/// counted (a watch that lost it relists within this).
const EXPECTATION_TTL: Duration = Duration::from_secs(60);

/// Children this instance created or changed (by set uid and child name), with the generation
/// their controller has to have acted on (its `status.observedGeneration` in the cache) before
/// they count by their state alone: a finished child whose template was just changed still
/// shows its old state.
#[derive(Debug, Default)]
pub(crate) struct Expectations(Mutex<HashMap<(String, String), (i64, Instant)>>);

impl Expectations {
    fn expect(&self, set: &str, child: &str, generation: i64) {
        self.0.lock().expect("not poisoned").insert(
            (set.to_string(), child.to_string()),
            (generation, Instant::now()),
        );
    }

    /// The children of `set` still expected, forgetting those whose observed generation
    /// (`seen`) caught up.
    fn pending(&self, set: &str, seen: impl Fn(&str) -> Option<i64>) -> BTreeSet<String> {
        let mut map = self.0.lock().expect("not poisoned");
        map.retain(|(s, name), (generation, at)| {
            at.elapsed() < EXPECTATION_TTL
                && (s != set || seen(name).is_none_or(|g| g < *generation))
        });
        map.keys()
            .filter(|(s, _)| s == set)
            .map(|(_, n)| n.clone())
            .collect()
    }
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
    let expectations = Arc::new(Expectations::default());
    let reconcile = move |set: Arc<S>, ctx: Arc<Ctx>| {
        let children = children_store.clone();
        let expectations = expectations.clone();
        async move {
            let work = reconcile_set(set.as_ref(), &ctx, &children, &expectations);
            // A set is one replica's as a whole (its roll-out limits count all its children);
            // each child is then driven by the holder of its BMC's shard.
            let key = format!("{}/{}", S::kind(&()), set.name_any());
            crate::window::instrumented(set.as_ref(), &ctx, &key, work).await
        }
    };
    Controller::for_shared_stream(sets.applied(), sets.store())
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        // Any server change may change which servers a set selects, or free a slot of its
        // roll-out (a server handed back); a BMC's labels select it.
        .watches_shared_stream(caches.servers.touched(), {
            let all_sets = all_sets.clone();
            move |_server| {
                all_sets
                    .state()
                    .iter()
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            }
        })
        .watches_shared_stream(caches.bmcs.touched(), move |_bmc| {
            if S::TARGET != TargetKind::Bmc {
                return Vec::new();
            }
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

/// The targets `set` selects, sorted.
fn selected<S: SetKind>(set: &S, ctx: &Ctx) -> Result<Vec<String>, Error> {
    let selector = Selector::try_from(set.selector().clone()).map_err(|e| {
        let field = match S::TARGET {
            TargetKind::Server => "serverSelector",
            TargetKind::Bmc => "bmcSelector",
        };
        Error::InvalidSpec(format!("{field}: {}", e.0))
    })?;
    let mut names: Vec<String> = match S::TARGET {
        TargetKind::Server => ctx
            .servers
            .state()
            .iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none() && selector.matches(s.labels()))
            .map(|s| s.name_any())
            .collect(),
        TargetKind::Bmc => ctx
            .caches
            .bmcs
            .store()
            .state()
            .iter()
            .filter(|b| b.metadata.deletion_timestamp.is_none() && selector.matches(b.labels()))
            .map(|b| b.name_any())
            .collect(),
    };
    names.sort();
    Ok(names)
}

/// Whether `target` is this instance's (a BMC is, when one of its servers is).
fn mine<S: SetKind>(ctx: &Ctx, target: &str) -> bool {
    match S::TARGET {
        TargetKind::Server => ctx.in_scope(target),
        TargetKind::Bmc => {
            ctx.config.server_selector.is_none()
                || !crate::bmclevel::servers_of(ctx, target).is_empty()
        }
    }
}

/// Whether a server of `target` is held by a maintenance.
fn held<S: SetKind>(ctx: &Ctx, target: &str) -> bool {
    let held = |s: &api::server::Server| s.spec.server_maintenance_ref.is_some();
    match S::TARGET {
        TargetKind::Server => ctx
            .servers
            .get(&ObjectRef::new(target))
            .is_some_and(|s| held(&s)),
        TargetKind::Bmc => crate::bmclevel::servers_of(ctx, target)
            .iter()
            .any(|s| held(s)),
    }
}

async fn reconcile_set<S: SetKind>(
    set: &S,
    ctx: &Ctx,
    children: &Store<S::Child>,
    expectations: &Expectations,
) -> Result<Action, Error> {
    if api::constants::ignored(set.meta()) || set.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = set.uid().unwrap_or_default();
    let mine_children: Vec<Arc<S::Child>> = children
        .state()
        .into_iter()
        .filter(|c| c.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    let selected = selected(set, ctx)?;
    let set_name = set.name_any();
    let flight = Flight {
        active: mine_children
            .iter()
            .filter(|c| {
                !matches!(S::progress(c), Progress::Completed | Progress::Failed)
                    || S::child_target(c).is_some_and(|t| held::<S>(ctx, t))
            })
            .map(|c| c.name_any())
            .collect(),
        expected: expectations.pending(&uid, |name| {
            children
                .get(&ObjectRef::new(name))
                .and_then(|c| S::observed(&c))
        }),
    };
    let p = plan(
        set,
        &selected,
        &mine_children,
        |t| mine::<S>(ctx, t),
        &flight,
    );
    let api: Api<S::Child> = Api::all(ctx.client.clone());
    let template = set.template().unwrap_or_default();
    let owner = set
        .controller_owner_ref(&())
        .expect("a stored object has a name and uid");
    let target_ref = match S::TARGET {
        TargetKind::Server => "serverRef",
        // BMCSettings spells it upstream's way.
        TargetKind::Bmc if S::Child::kind(&()) == "BMCSettings" => "BMCRef",
        TargetKind::Bmc => "bmcRef",
    };
    for target in &p.create {
        let name = child_name(&set_name, target);
        let mut spec = template.clone();
        spec[target_ref] = json!({ "name": target });
        let child: S::Child = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": S::Child::kind(&()),
            "metadata": { "name": name, "ownerReferences": [owner], "labels": { SET_LABEL: set_name } },
            "spec": spec,
        }))
        .map_err(|e| Error::InvalidSpec(format!("template: {e}")))?;
        let pp = PostParams {
            field_manager: Some(writes::FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match writes::call(format!("creating {name}"), api.create(&pp, &child)).await {
            Ok(c) => expectations.expect(&uid, &name, c.meta().generation.unwrap_or(1)),
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for name in &p.update {
        let pp = PatchParams {
            field_manager: Some(writes::FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let c = writes::call(
            format!("updating the template of {name}"),
            api.patch(name, &pp, &Patch::Merge(json!({ "spec": template }))),
        )
        .await?;
        expectations.expect(&uid, name, c.meta().generation.unwrap_or(0));
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
    let mut counts = Counts {
        matched: selected.len(),
        children: mine_children.len(),
        in_maintenance: p.in_maintenance,
        paused: p.paused,
        ..Counts::default()
    };
    for c in &mine_children {
        *counts.by_progress.entry(S::progress(c)).or_insert(0) += 1;
    }
    let status = S::status(&counts);
    let api_sets: Api<S> = Api::all(ctx.client.clone());
    let current = serde_json::to_value(set)
        .ok()
        .and_then(|v| v.get("status").cloned());
    if current.as_ref() != Some(&status) {
        writes::apply_status(&api_sets, &set_name, status).await?;
    }
    // Waiting targets start as slots free up (child and server events); the resync is the net.
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
        let flight = Flight::default();
        let p = plan(
            &s,
            &selected,
            &children,
            |server| server != "other-shard",
            &flight,
        );
        assert_eq!(p.create, ["c"]);
        assert_eq!(p.update, ["set-b"]);
        assert_eq!(p.delete, ["set-gone"]);
        assert_eq!(p.in_maintenance, 2, "b and c start");
        let none = plan(&set(false), &selected, &children, |_| true, &flight);
        assert!(none.create.is_empty() && none.update.is_empty() && none.delete.is_empty());
    }

    fn limited(max: Value, pause: Option<i32>) -> BIOSSettingsSet {
        let mut s = set(true);
        s.spec.rollout = Some(
            serde_json::from_value(json!({ "maxInMaintenance": max, "pauseAfterFailures": pause }))
                .unwrap(),
        );
        s
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i:02}")).collect()
    }

    #[test]
    fn a_limit_starts_only_as_many_targets_as_slots_are_free() {
        let s = limited(json!(3), None);
        let selected = names(10);
        // Nothing runs: the first three (by name) start.
        let p = plan(&s, &selected, &[], |_| true, &Flight::default());
        assert_eq!(p.create, ["s00", "s01", "s02"]);
        assert_eq!((p.in_maintenance, p.waiting), (3, 7));
        // Two children in flight (one seen, one only expected): one more starts.
        let children = vec![
            child("s00", "1", Some("InProgress")),
            child("s01", "1", Some("Applied")),
        ];
        let flight = Flight {
            active: BTreeSet::from(["set-s00".to_string()]),
            expected: BTreeSet::from(["set-s02".to_string()]),
        };
        let p = plan(&s, &selected, &children, |_| true, &flight);
        assert_eq!(
            p.create,
            ["s03"],
            "s02 is expected: created already, counted once"
        );
        assert_eq!(p.in_maintenance, 3);
        // A full roll-out starts nothing, but a running child follows a new template.
        let children = vec![
            child("s00", "2", Some("InProgress")),
            child("s09", "2", Some("Applied")),
        ];
        let flight = Flight {
            active: ["set-s00", "set-s01", "set-s02"].map(String::from).into(),
            expected: BTreeSet::new(),
        };
        let p = plan(&s, &selected, &children, |_| true, &flight);
        assert!(p.create.is_empty());
        assert_eq!(p.update, ["set-s00"], "in its slot; s09 waits for one");
        assert_eq!(p.waiting, 7, "s03 to s08 and s09 (s01, s02 are in flight)");
        // Percentages of the selected targets, rounded down, at least one.
        let p = plan(
            &limited(json!("25%"), None),
            &selected,
            &[],
            |_| true,
            &Flight::default(),
        );
        assert_eq!(p.create.len(), 2);
        let p = plan(
            &limited(json!("1%"), None),
            &selected,
            &[],
            |_| true,
            &Flight::default(),
        );
        assert_eq!(p.create.len(), 1);
    }

    #[test]
    fn failures_pause_the_roll_out_but_not_what_runs() {
        let s = limited(json!(5), Some(2));
        let selected = names(6);
        let children = vec![
            child("s00", "1", Some("Failed")),
            child("s01", "1", Some("Failed")),
            child("s02", "2", Some("InProgress")),
        ];
        let flight = Flight {
            active: BTreeSet::from(["set-s02".to_string()]),
            expected: BTreeSet::new(),
        };
        let p = plan(&s, &selected, &children, |_| true, &flight);
        assert!(p.paused);
        assert!(p.create.is_empty(), "nothing new starts");
        assert_eq!(
            p.update,
            ["set-s02"],
            "a running child still follows the template"
        );
        assert_eq!(p.waiting, 3);
        let p = plan(
            &limited(json!(5), Some(3)),
            &selected,
            &children,
            |_| true,
            &flight,
        );
        assert!(!p.paused, "a higher threshold resumes");
        assert_eq!(p.create, ["s03", "s04", "s05"]);
    }

    #[test]
    fn expectations_last_until_the_cache_shows_the_write() {
        let e = Expectations::default();
        e.expect("u1", "a", 1);
        e.expect("u1", "b", 3);
        e.expect("u2", "c", 1);
        let seen = |n: &str| match n {
            "a" => Some(1),
            "b" => Some(2),
            _ => None,
        };
        assert_eq!(e.pending("u1", seen), BTreeSet::from(["b".to_string()]));
        assert_eq!(e.pending("u2", seen), BTreeSet::from(["c".to_string()]));
        assert_eq!(e.pending("u1", |_| Some(3)), BTreeSet::new());
    }

    #[test]
    fn names_stay_valid_and_counters_are_named_like_upstream() {
        assert_eq!(child_name("set", "srv"), "set-srv");
        let long = child_name(&"s".repeat(200), &"v".repeat(200));
        assert_eq!(long.len(), 253);
        assert_ne!(long, child_name(&"s".repeat(200), &"w".repeat(200)));
        let counts = Counts {
            matched: 4,
            by_progress: BTreeMap::from([(Progress::Completed, 2), (Progress::Failed, 1)]),
            children: 3,
            in_maintenance: 1,
            paused: true,
        };
        let st = BIOSSettingsSet::status(&counts);
        assert_eq!(st["fullyLabeledServers"], 4);
        assert_eq!(st["availableBIOSSettings"], 3);
        assert_eq!(st["completedBIOSSettings"], 2);
        assert_eq!(st["failedBIOSSettings"], 1);
        assert_eq!(st["pendingBIOSSettings"], 0);
        // Every counter is a field of the API type.
        let parsed: api::sets::BIOSSettingsSetStatus = serde_json::from_value(st).unwrap();
        assert_eq!(parsed.completed, Some(2));
        assert_eq!(
            (parsed.in_maintenance, parsed.paused),
            (Some(1), Some(true))
        );
        let one = Counts {
            matched: 1,
            ..Counts::default()
        };
        let parsed: api::sets::BIOSVersionSetStatus =
            serde_json::from_value(BIOSVersionSet::status(&one)).unwrap();
        assert_eq!(parsed.fully_labeled_servers, Some(1));
        let parsed: api::sets::BMCVersionSetStatus =
            serde_json::from_value(BMCVersionSet::status(&one)).unwrap();
        assert_eq!(parsed.fully_labeled_bmcs, Some(1));
    }
}
