//! BMCUser reconciler (upstream §2.7): an account on a BMC with a given or generated password,
//! rotated on `rotationPeriod` or the `rotate-credentials` operation.
//!
//! The candidate credentials (`spec.bmcSecretRef`) are written to the BMC account, then verified
//! by logging in with them; only verified credentials are promoted to
//! `status.effectiveBMCSecretRef`. A generated password lives in an immutable BMCSecret owned by
//! the BMCUser (`generateName: <user>-`), referenced from `spec.bmcSecretRef` as upstream does;
//! the previous generated secret is deleted once its successor is effective. Deleting the
//! BMCUser deletes the account (finalizer `metal.ironcore.dev/bmcuser`).
//!
//! Restart safety: a generated secret is annotated with the secret it succeeds, so a restart
//! before `spec.bmcSecretRef` points at it adopts it instead of generating another; the write
//! of candidate credentials is recorded (`CredentialsWritten=False`) before it is sent, so a
//! restart after it logs in with them and writes again only if they do not work.

use std::sync::Arc;
use std::time::Duration;

use api::bmcsecret::{BMCSecret, PASSWORD_KEY, USERNAME_KEY};
use api::bmcuser::{BMCUser, BMCUserStatus};
use api::conditions::{self, ConditionStatus};
use api::constants::{OPERATION_ANNOTATION, Operation, condition_types, finalizers, reasons};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use redfish::models::AccountService;
use redfish::{Client, Credentials, NewAccount, Secret};
use serde_json::json;

use crate::context::{Ctx, MANAGER, ignored, now, operation};
use crate::error::Result;
use crate::logic::password;

/// Parses a Go-style duration (`720h`, `1h30m`, `90s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(split);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * secs;
        rest = next;
    }
    Some(Duration::from_secs_f64(total))
}

/// Whether the password must be rotated now (pure).
pub fn rotation_due(user: &BMCUser, now: k8s_openapi::jiff::Timestamp) -> bool {
    if operation(&user.metadata) == Some(Operation::RotateCredentials.as_str()) {
        return true;
    }
    let status = user.status.clone().unwrap_or_default();
    if status
        .password_expiration
        .as_ref()
        .is_some_and(|t| t.0 <= now)
    {
        return true;
    }
    let period = user
        .spec
        .rotation_period
        .as_deref()
        .and_then(parse_go_duration)
        .filter(|d| !d.is_zero());
    match (period, status.last_rotation) {
        (Some(p), Some(last)) => {
            let p = k8s_openapi::jiff::SignedDuration::try_from(p)
                .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
            last.0.checked_add(p).map(|due| due <= now).unwrap_or(false)
        }
        _ => false,
    }
}

/// When the password is due next: the earlier of `passwordExpiration` and
/// `lastRotation + rotationPeriod` (pure).
pub fn next_rotation(user: &BMCUser) -> Option<k8s_openapi::jiff::Timestamp> {
    let status = user.status.clone().unwrap_or_default();
    let by_period = user
        .spec
        .rotation_period
        .as_deref()
        .and_then(parse_go_duration)
        .filter(|d| !d.is_zero())
        .and_then(|d| k8s_openapi::jiff::SignedDuration::try_from(d).ok())
        .zip(status.last_rotation.as_ref())
        .and_then(|(d, last)| last.0.checked_add(d).ok());
    match (by_period, status.password_expiration.map(|t| t.0)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn bmc_client(
    ctx: &Ctx,
    user: &BMCUser,
) -> std::result::Result<(Arc<api::bmc::BMC>, Client), String> {
    let Some(bmc_name) = user.spec.bmc_ref.as_ref().map(|r| r.name.clone()) else {
        return Err("spec.bmcRef is not set".into());
    };
    let Some(bmc) = ctx.bmc(&bmc_name) else {
        return Err(format!("BMC {bmc_name} not found"));
    };
    let client = crate::bmc::client_for(ctx, &bmc).map_err(|e| e.to_string())?;
    Ok((bmc, client))
}

async fn set_ready(
    ctx: &Ctx,
    user: &BMCUser,
    mut status: BMCUserStatus,
    ok: bool,
    reason: &str,
    msg: &str,
) -> Result<()> {
    conditions::set(
        &mut status.conditions,
        conditions::new(
            condition_types::READY,
            ConditionStatus::from(ok),
            reason,
            msg,
            user.metadata.generation,
            now(),
        ),
    );
    write_status(ctx, user, &status).await
}

/// Applies `status` unless it is what the user already has.
async fn write_status(ctx: &Ctx, user: &BMCUser, status: &BMCUserStatus) -> Result<()> {
    if Some(status) == user.status.as_ref() {
        return Ok(());
    }
    let api: Api<BMCUser> = Api::all(ctx.client.clone());
    let body = json!({"apiVersion": api::API_VERSION, "kind": "BMCUser", "metadata": {"name": user.name_any()}, "status": status});
    ctx.apply_status(&api, &user.name_any(), &body).await?;
    Ok(())
}

/// Logs in as the user's account with `password` (a fresh client, logged out after).
async fn verify(
    ctx: &Ctx,
    client: &Client,
    user: &BMCUser,
    password: &str,
) -> std::result::Result<(), redfish::Error> {
    let opts = redfish::ClientOptions {
        observer: Some(ctx.metrics.redfish_observer()),
        ..client.options().clone()
    };
    let probe = Client::new(
        client.endpoint().clone(),
        Credentials::new(user.spec.user_name.as_str(), password),
        opts,
    )?;
    let verified = probe
        .get::<AccountService>("/redfish/v1/AccountService")
        .await
        .map(|_| ());
    let _ = probe.logout().await;
    verified
}

/// The account's path when an earlier write of `password` reached the BMC (the account
/// exists and accepts it); `None` when it has to be written.
async fn written_account(
    ctx: &Ctx,
    client: &Client,
    user: &BMCUser,
    password: &str,
) -> Option<String> {
    let accounts = client.accounts().await.ok()?;
    let path = accounts
        .iter()
        .find(|a| a.user_name.as_deref() == Some(user.spec.user_name.as_str()))?
        .odata_id
        .clone()?;
    verify(ctx, client, user, password)
        .await
        .ok()
        .map(|()| path)
}

async fn account_limits(client: &Client) -> (Option<u32>, Option<u32>) {
    match client
        .get::<AccountService>("/redfish/v1/AccountService")
        .await
    {
        Ok(a) => (a.min_password_length, a.max_password_length),
        Err(_) => (None, None),
    }
}

/// Annotation on a generated BMCSecret: the effective secret it succeeds (empty for the
/// first). A restart between creating the secret and referencing it finds and adopts it
/// instead of generating a second one.
const ROTATION_OF_ANNOTATION: &str = "metal.ironcore.dev/rotation-of";

/// The generated secret that already succeeds `effective` for `user`, if a previous attempt
/// created it (controlled by the user, annotated with what it succeeds).
fn generated_successor(ctx: &Ctx, user: &BMCUser, effective: &str) -> Option<String> {
    let uid = user.metadata.uid.as_ref()?;
    ctx.secrets
        .state()
        .into_iter()
        .find(|s| {
            s.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && &o.uid == uid)
                && s.annotations()
                    .get(ROTATION_OF_ANNOTATION)
                    .map(String::as_str)
                    == Some(effective)
        })
        .map(|s| s.name_any())
}

/// Creates a generated, immutable BMCSecret for `user` and points `spec.bmcSecretRef` at it.
async fn generate_secret(ctx: &Ctx, user: &BMCUser, client: &Client) -> Result<String> {
    let effective = user
        .status
        .as_ref()
        .and_then(|s| s.effective_bmc_secret_ref.as_ref())
        .map(|r| r.name.clone())
        .unwrap_or_default();
    if let Some(existing) = generated_successor(ctx, user, &effective) {
        point_at(ctx, user, &existing).await?;
        return Ok(existing);
    }
    let (min, max) = account_limits(client).await;
    let pw = password::generate(password::length(min, max));
    let owner = user.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    });
    let secret: BMCSecret = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "BMCSecret",
        "metadata": {
            "generateName": format!("{}-", user.name_any()),
            "labels": user.metadata.labels.clone().unwrap_or_default(),
            "annotations": {ROTATION_OF_ANNOTATION: effective},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "immutable": true,
        "stringData": {USERNAME_KEY: user.spec.user_name, PASSWORD_KEY: pw},
    }))?;
    let api: Api<BMCSecret> = Api::all(ctx.client.clone());
    ctx.metrics.write("BMCSecret", "create");
    let created = api
        .create(
            &PostParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &secret,
        )
        .await?;
    let secret_name = created.name_any();
    ctx.step("bmc-secret-created").await;
    point_at(ctx, user, &secret_name).await?;
    Ok(secret_name)
}

/// Points `spec.bmcSecretRef` at `secret` (and consumes a `rotate-credentials` operation).
async fn point_at(ctx: &Ctx, user: &BMCUser, secret: &str) -> Result<()> {
    let users: Api<BMCUser> = Api::all(ctx.client.clone());
    let mut patch = json!({"spec": {"bmcSecretRef": {"name": secret}}});
    if operation(&user.metadata) == Some(Operation::RotateCredentials.as_str()) {
        patch["metadata"] = json!({"annotations": {OPERATION_ANNOTATION: null}});
    }
    ctx.merge_patch(&users, &user.name_any(), &patch).await?;
    Ok(())
}

/// The `CredentialsWritten=False` message recorded before `candidate` is written.
fn write_message(candidate: &str) -> String {
    format!("writing the credentials of BMCSecret {candidate} to the BMC account")
}

/// Reconciles one BMCUser.
pub async fn reconcile(user: Arc<BMCUser>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = user.name_any();
    if ignored(&user.metadata) {
        return Ok(Action::await_change());
    }
    let api: Api<BMCUser> = Api::all(ctx.client.clone());
    let has_finalizer = user.finalizers().iter().any(|f| f == finalizers::BMC_USER);
    if user.metadata.deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        match bmc_client(&ctx, &user) {
            Ok((_, client)) => match client.delete_account(&user.spec.user_name).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            },
            // Without a BMC there is no account left to remove.
            Err(why) => tracing::info!(user = %name, %why, "no BMC to delete the account from"),
        }
        let rest: Vec<String> = user
            .finalizers()
            .iter()
            .filter(|f| *f != finalizers::BMC_USER)
            .cloned()
            .collect();
        ctx.merge_patch(
            &api,
            &name,
            &json!({"metadata": {"finalizers": rest, "resourceVersion": user.resource_version()}}),
        )
        .await?;
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        let mut all = user.finalizers().to_vec();
        all.push(finalizers::BMC_USER.into());
        ctx.merge_patch(
            &api,
            &name,
            &json!({"metadata": {"finalizers": all, "resourceVersion": user.resource_version()}}),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let status = user.status.clone().unwrap_or_default();
    let (_bmc, client) = match bmc_client(&ctx, &user) {
        Ok(x) => x,
        Err(why) => {
            set_ready(&ctx, &user, status, false, reasons::BMC_NOT_READY, &why).await?;
            return Ok(Action::requeue(
                ctx.cfg.poll_interval.max(Duration::from_secs(10)),
            ));
        }
    };
    let ts_now = k8s_openapi::jiff::Timestamp::now();
    // Generate a password when none is given, or rotate a generated/given one when due.
    // A candidate that is not effective yet is promoted (or rejected) before any new rotation.
    let pending = user.spec.bmc_secret_ref.as_ref().map(|r| r.name.as_str())
        != status
            .effective_bmc_secret_ref
            .as_ref()
            .map(|r| r.name.as_str());
    if user.spec.bmc_secret_ref.is_none() || (!pending && rotation_due(&user, ts_now)) {
        let secret = generate_secret(&ctx, &user, &client).await?;
        ctx.event(
            &*user,
            EventType::Normal,
            "PasswordGenerated",
            "Rotate",
            format!("new credentials in BMCSecret {secret}"),
        )
        .await;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let candidate_name = user
        .spec
        .bmc_secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let Some(candidate) = ctx.secret(&candidate_name) else {
        set_ready(
            &ctx,
            &user,
            status,
            false,
            reasons::MISSING_CREDENTIALS,
            &format!("BMCSecret {candidate_name} not found"),
        )
        .await?;
        return Ok(Action::requeue(ctx.cfg.poll_interval));
    };
    let Some(pw) = candidate.spec.password() else {
        set_ready(
            &ctx,
            &user,
            status,
            false,
            reasons::MISSING_CREDENTIALS,
            &format!("BMCSecret {candidate_name} has no password"),
        )
        .await?;
        return Ok(Action::requeue(ctx.cfg.poll_interval));
    };
    let effective = status
        .effective_bmc_secret_ref
        .as_ref()
        .map(|r| r.name.clone());
    if effective.as_deref() != Some(candidate_name.as_str()) || status.id.is_none() {
        let account = NewAccount {
            username: user.spec.user_name.clone(),
            password: Secret::from(pw.clone()),
            role: user.spec.role_id.clone(),
            enabled: true,
        };
        // A write recorded by an instance that then stopped may have reached the BMC: verify
        // it instead of sending it again.
        let requested = conditions::get(&status.conditions, condition_types::CREDENTIALS_WRITTEN)
            .is_some_and(|c| {
                c.status == ConditionStatus::False.as_str()
                    && c.message == write_message(&candidate_name)
            });
        let earlier = if requested {
            written_account(&ctx, &client, &user, &pw).await
        } else {
            None
        };
        let (path, verified) = match earlier {
            Some(path) => (path, Ok(())),
            None => {
                let mut s = status.clone();
                conditions::set(
                    &mut s.conditions,
                    conditions::new(
                        condition_types::CREDENTIALS_WRITTEN,
                        ConditionStatus::False,
                        reasons::CREDENTIALS_WRITE_REQUESTED,
                        &write_message(&candidate_name),
                        user.metadata.generation,
                        now(),
                    ),
                );
                write_status(&ctx, &user, &s).await?;
                ctx.step("bmc-account-write-recorded").await;
                let path = client.create_account(&account).await?;
                ctx.step("bmc-account-written").await;
                // Verify with a fresh client logged in as the account itself.
                (path, verify(&ctx, &client, &user, &pw).await)
            }
        };
        if let Err(e) = verified {
            if e.class() == redfish::ErrorClass::AuthenticationFailed {
                let msg = format!(
                    "the BMC rejected the credentials of BMCSecret {candidate_name}; keeping {effective:?}"
                );
                ctx.event(
                    &*user,
                    EventType::Warning,
                    reasons::CREDENTIALS_REJECTED,
                    "Verify",
                    msg.clone(),
                )
                .await;
                set_ready(
                    &ctx,
                    &user,
                    status,
                    false,
                    reasons::CREDENTIALS_REJECTED,
                    &msg,
                )
                .await?;
                return Ok(Action::requeue(
                    ctx.backoff(&format!("bmcuser/{name}"), Duration::from_secs(300)),
                ));
            }
            return Err(e.into());
        }
        let mut s = status.clone();
        s.effective_bmc_secret_ref = Some(k8s_openapi::api::core::v1::LocalObjectReference {
            name: candidate_name.clone(),
        });
        s.id = Some(path.rsplit('/').next().unwrap_or(&path).to_string());
        conditions::set(
            &mut s.conditions,
            conditions::new(
                condition_types::CREDENTIALS_WRITTEN,
                ConditionStatus::True,
                reasons::ACCOUNT_READY,
                &format!("the credentials of BMCSecret {candidate_name} are on the BMC"),
                user.metadata.generation,
                now(),
            ),
        );
        s.last_rotation = Some(Time(ts_now));
        s.password_expiration = user
            .spec
            .rotation_period
            .as_deref()
            .and_then(parse_go_duration)
            .filter(|d| !d.is_zero())
            .and_then(|d| k8s_openapi::jiff::SignedDuration::try_from(d).ok())
            .and_then(|d| ts_now.checked_add(d).ok())
            .map(Time);
        set_ready(
            &ctx,
            &user,
            s,
            true,
            reasons::ACCOUNT_READY,
            "account exists and its credentials were verified",
        )
        .await?;
        ctx.event(
            &*user,
            EventType::Normal,
            reasons::ACCOUNT_READY,
            "Verify",
            format!("credentials of BMCSecret {candidate_name} are effective"),
        )
        .await;
        // The previous generated secret is no longer needed.
        if let Some(old) = effective.filter(|o| o != &candidate_name)
            && let Some(old_secret) = ctx.secret(&old)
            && old_secret
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| Some(&r.uid) == user.metadata.uid.as_ref()))
        {
            let secrets: Api<BMCSecret> = Api::all(ctx.client.clone());
            ctx.delete(&secrets, &old).await?;
        }
        ctx.succeeded(&format!("bmcuser/{name}"));
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    set_ready(
        &ctx,
        &user,
        status.clone(),
        true,
        reasons::ACCOUNT_READY,
        "account exists and its credentials were verified",
    )
    .await?;
    // Requeue when the next rotation is due (capped so clock changes are noticed).
    let next = next_rotation(&user)
        .map(|t| t.duration_since(ts_now).unsigned_abs())
        .unwrap_or(Duration::from_secs(3600))
        .min(Duration::from_secs(3600));
    Ok(Action::requeue(next.max(Duration::from_secs(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("720h"),
            Some(Duration::from_secs(720 * 3600))
        );
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("3d"), None);
        assert_eq!(parse_go_duration("h"), None);
    }

    fn user(period: Option<&str>, last: Option<i64>, annotation: bool) -> BMCUser {
        let mut v = json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCUser",
            "metadata": {"name": "u", "annotations": {}},
            "spec": {"userName": "ops", "roleID": "ReadOnly"},
            "status": {}
        });
        if let Some(p) = period {
            v["spec"]["rotationPeriod"] = json!(p);
        }
        if let Some(l) = last {
            v["status"]["lastRotation"] = json!(
                k8s_openapi::jiff::Timestamp::from_second(l)
                    .unwrap()
                    .to_string()
            );
        }
        if annotation {
            v["metadata"]["annotations"][OPERATION_ANNOTATION] = json!("rotate-credentials");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rotation() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
        assert!(!rotation_due(&user(None, None, false), now));
        assert!(rotation_due(&user(None, None, true), now));
        assert!(!rotation_due(
            &user(Some("1h"), Some(1_700_000_000 - 100), false),
            now
        ));
        assert!(rotation_due(
            &user(Some("1h"), Some(1_700_000_000 - 3600), false),
            now
        ));
        assert_eq!(
            next_rotation(&user(Some("1h"), Some(1_700_000_000), false))
                .unwrap()
                .as_second(),
            1_700_003_600
        );
        assert!(next_rotation(&user(None, Some(1_700_000_000), false)).is_none());
    }
}
