//! The ServerReadinessRule controller: keeps the finalizer
//! `readiness.metal.ironcore.dev/cleanup-taints` on rules and, when a rule is deleted, removes
//! its taint from every server in scope before letting the rule go.

use crate::error::Error;
use crate::readiness;
use crate::writes;
use crate::{Caches, Ctx};
use api::constants::finalizers;
use api::serverreadinessrule::ServerReadinessRule;
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::runtime::controller::{Action, Controller};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    Controller::for_shared_stream(caches.rules.applied(), ctx.rules.clone())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "rule controller");
            }
        })
        .await;
}

fn error_policy(rule: Arc<ServerReadinessRule>, error: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(rule = %rule.name_any(), error = %error, "reconciling rule failed");
    Action::requeue(ctx.backoff.failed(format!("rule/{}", rule.name_any())))
}

async fn reconcile(rule: Arc<ServerReadinessRule>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.caches.ready().await;
    let timer = ctx.metrics.reconcile.start("ServerReadinessRule");
    let result = reconcile_rule(&rule, &ctx).await;
    match &result {
        Ok(_) => {
            timer.success();
            ctx.backoff.succeeded(&format!("rule/{}", rule.name_any()));
        }
        Err(e) => timer.failure(e.metric_reason()),
    }
    result
}

async fn reconcile_rule(rule: &ServerReadinessRule, ctx: &Ctx) -> Result<Action, Error> {
    let has = writes::has_finalizer(rule, finalizers::SERVER_READINESS_RULE);
    if rule.metadata.deletion_timestamp.is_none() {
        if !has {
            writes::set_rule_finalizer(&ctx.rule_api(), rule, true).await?;
        }
        return Ok(Action::await_change());
    }
    if !has {
        return Ok(Action::await_change());
    }
    // Deleting: re-evaluate every server carrying the rule's taint without the rule (deleting
    // rules are ignored by the evaluation), which drops our entry.
    let taint = readiness::rule_taint(rule);
    let carriers = ctx.servers.state_filter(|s| {
        s.spec
            .taints
            .iter()
            .any(|t| t.key == taint.key && t.effect() == taint.effect())
    });
    for server in carriers {
        crate::server::reapply_readiness(&server, ctx).await?;
    }
    writes::set_rule_finalizer(&ctx.rule_api(), rule, false).await?;
    tracing::info!(rule = %rule.name_any(), "rule taints cleaned up");
    Ok(Action::await_change())
}
