//! Park and unpark: the `metal.ironcore.dev/operation: park` / `unpark` annotations on a
//! Server.
//!
//! `park` is admitted in `Available` and `Reserved` only (elsewhere it waits, annotation kept,
//! `ParkDeferred` event): the state moves to `Parked` (compare-and-swap), the
//! `metal.ironcore.dev/parked` marker is set and the request removed, and the server is
//! powered off. While parked every other controller stands down (the state's side effects are
//! maintenance's) and server power operations are dropped (`ParkedOperationDropped`).
//! `unpark` returns the server to `Reserved` when a claim still holds it, else `Available`,
//! and removes the marker.
//!
//! The power-off is recorded in the Server's `Parked` condition before it is sent, so a
//! restarted controller polls instead of sending it again; it is sent again (forced) only
//! after the power timeout. Every step is decided by the pure [`next`].

use crate::servermaintenance::{PowerStep, power_step};
use crate::writes;
use crate::{Caches, Ctx, Error, now};
use api::conditions::{self, ConditionStatus};
use api::constants::{
    OPERATION_ANNOTATION, Operation, PARKED_ANNOTATION, condition_types, event_reasons, reasons,
};
use api::server::{Server, ServerState};
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use redfish::models::{ComputerSystem, PowerState};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a pending park power-off is polled.
const POWER_POLL: Duration = Duration::from_secs(2);

/// The next step for one Server (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing about parking concerns this server.
    Nothing,
    /// `park` was requested in a state that cannot be parked; keep the request.
    Defer(Option<ServerState>),
    /// Move the server to `Parked`.
    Enter,
    /// Set the parked marker; `drop_request`: also remove the `park` annotation.
    Mark {
        /// Whether the `park` annotation is still there.
        drop_request: bool,
    },
    /// Remove an operation the parked server does not carry out.
    DropOperation(String),
    /// Make sure the BMC reports Off.
    EnsureOff,
    /// Leave `Parked` for this state.
    Leave(ServerState),
    /// After leaving `Parked`: remove what parking left behind.
    Tidy {
        /// Remove the `unpark` (or stale `park`-free) request annotation.
        drop_request: bool,
        /// Remove the parked marker.
        drop_marker: bool,
        /// Record `Parked=False/Unparked`.
        record: bool,
    },
}

fn is_server_power_op(op: Operation) -> bool {
    op.redfish_reset_type().is_some() && op != Operation::GracefulRestartBmc
}

/// Decides what the park flow does next with `server`.
pub fn next(server: &Server) -> Step {
    let annotations = server.annotations();
    let op = Operation::from_annotations(annotations).and_then(Result::ok);
    let marked = annotations
        .get(PARKED_ANNOTATION)
        .is_some_and(|v| v == "true");
    let state = server.state();
    let parked_condition = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::PARKED))
        .filter(|c| c.reason != reasons::UNPARKED)
        .is_some();
    if state == Some(ServerState::Parked) {
        return match op {
            Some(Operation::Unpark) => Step::Leave(if server.spec.server_claim_ref.is_some() {
                ServerState::Reserved
            } else {
                ServerState::Available
            }),
            Some(Operation::Park) => Step::Mark { drop_request: true },
            _ if !marked => Step::Mark {
                drop_request: false,
            },
            Some(o) if is_server_power_op(o) => Step::DropOperation(o.as_str().to_string()),
            _ => Step::EnsureOff,
        };
    }
    match op {
        Some(Operation::Park) => match state {
            Some(ServerState::Available | ServerState::Reserved) => Step::Enter,
            s => Step::Defer(s),
        },
        Some(Operation::Unpark) => Step::Tidy {
            drop_request: true,
            drop_marker: marked,
            record: parked_condition,
        },
        _ if marked || parked_condition => Step::Tidy {
            drop_request: false,
            drop_marker: marked,
            record: parked_condition,
        },
        _ => Step::Nothing,
    }
}

/// Age of the recorded park power-off request, if the last record is one.
pub fn requested_age(server: &Server, now: k8s_openapi::jiff::Timestamp) -> Option<Duration> {
    let c = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::PARKED))?;
    (c.reason == reasons::PARK_POWER_OFF_REQUESTED).then(|| {
        let secs = now.duration_since(c.last_transition_time.0).as_secs();
        Duration::from_secs(secs.max(0) as u64)
    })
}

pub(crate) async fn run(ctx: Arc<Ctx>, caches: &Caches, shutdown: CancellationToken) {
    Controller::for_shared_stream(caches.servers.applied(), ctx.servers.clone())
        .reconcile_all_on(ctx.shards.acquisition_ticks())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, crate::window::backoff::<Server>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "park controller");
            }
        })
        .await;
}

async fn reconcile(server: Arc<Server>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if matches!(next(&server), Step::Nothing) {
        return Ok(Action::await_change());
    }
    let key = ctx.server_shard_key(Some(&server.name_any()));
    crate::window::instrumented(server.as_ref(), &ctx, &key, reconcile_one(&server, &ctx)).await
}

fn condition(server: &Server, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    conditions::new(
        condition_types::PARKED,
        status,
        reason,
        message,
        server.metadata.generation,
        now(),
    )
}

async fn record(api: &Api<Server>, server: &Server, c: Condition) -> Result<Server, Error> {
    writes::apply_server_conditions(api, server, vec![c]).await
}

async fn reconcile_one(server: &Server, ctx: &Ctx) -> Result<Action, Error> {
    if crate::ignored(&server.metadata) {
        return Ok(Action::await_change());
    }
    let api: Api<Server> = Api::all(ctx.client.clone());
    let mut server = server.clone();
    // Each write continues with the API server's answer; at most one of each kind.
    for _ in 0..6 {
        let step = next(&server);
        tracing::debug!(server = %server.name_any(), ?step, "park step");
        match step {
            Step::Nothing => return Ok(Action::await_change()),
            Step::Defer(state) => {
                ctx.events.normal(
                    &server,
                    event_reasons::PARK_DEFERRED,
                    format!(
                        "park waits: a server in state {} cannot be parked (only Available or Reserved); the request is kept",
                        state.map_or("(none)".to_string(), |s| s.to_string())
                    ),
                );
                return Ok(Action::requeue(ctx.config.resync));
            }
            Step::Enter => {
                let from = server.state();
                server = writes::set_state(&api, &server, ServerState::Parked).await?;
                ctx.events.normal(
                    &server,
                    event_reasons::PARKED,
                    format!(
                        "server parked (was {}); powering it off",
                        from.map_or("(none)".to_string(), |s| s.to_string())
                    ),
                );
            }
            Step::Mark { drop_request } => {
                let mut changes = vec![(PARKED_ANNOTATION, Some("true"))];
                if drop_request {
                    changes.push((OPERATION_ANNOTATION, None));
                }
                server = writes::set_annotations(&api, &server, &changes).await?;
            }
            Step::DropOperation(op) => {
                server =
                    writes::set_annotations(&api, &server, &[(OPERATION_ANNOTATION, None)]).await?;
                ctx.events.warning(
                    &server,
                    event_reasons::PARKED_OPERATION_DROPPED,
                    format!("operation {op} dropped: the server is parked (unpark it first)"),
                );
            }
            Step::EnsureOff => return ensure_off(ctx, &api, &server).await,
            Step::Leave(to) => {
                ctx.events.normal(
                    &server,
                    event_reasons::UNPARKING,
                    format!("unparking to {to}"),
                );
                server = writes::set_state(&api, &server, to).await?;
            }
            Step::Tidy {
                drop_request,
                drop_marker,
                record: write_record,
            } => {
                if write_record {
                    server = record(
                        &api,
                        &server,
                        condition(
                            &server,
                            ConditionStatus::False,
                            reasons::UNPARKED,
                            "unparked: back in the claim lifecycle",
                        ),
                    )
                    .await?;
                }
                let mut changes = Vec::new();
                if drop_request {
                    changes.push((OPERATION_ANNOTATION, None));
                }
                if drop_marker {
                    changes.push((PARKED_ANNOTATION, None));
                }
                if !changes.is_empty() {
                    server = writes::set_annotations(&api, &server, &changes).await?;
                }
                if write_record {
                    ctx.events.normal(
                        &server,
                        event_reasons::RESUMED,
                        format!(
                            "server back in the claim lifecycle as {}",
                            server
                                .state()
                                .map_or("(none)".to_string(), |s| s.to_string())
                        ),
                    );
                }
                return Ok(Action::await_change());
            }
        }
    }
    Ok(Action::requeue(Duration::from_millis(200)))
}

/// The parked server must be off: read the BMC, record a request before sending it (graceful
/// first, forced after the power timeout), report `Parked=True` once the BMC says Off. Checked
/// again on every resync: a parked server someone powered on is powered off again.
async fn ensure_off(ctx: &Ctx, api: &Api<Server>, server: &Server) -> Result<Action, Error> {
    let observed = match ctx.bmcs.for_server(server).await {
        Ok((bmc, system)) => match bmc.get::<ComputerSystem>(&system).await {
            Ok(sys) => Ok((bmc, system, sys.power_state)),
            Err(e) => {
                let e = crate::bmc::BmcError::from(e);
                Err((e.reason(), e.to_string()))
            }
        },
        Err(e) => Err((e.reason(), e.to_string())),
    };
    let (bmc, system, power) = match observed {
        Ok(v) => v,
        Err((reason, message)) => {
            // Nothing was sent; keep a pending record as it is (its age still counts).
            if requested_age(server, k8s_openapi::jiff::Timestamp::now()).is_none() {
                let c = condition(
                    server,
                    ConditionStatus::False,
                    reason,
                    &format!("parked; the BMC cannot be read: {message}"),
                );
                record_if_changed(api, server, c).await?;
            }
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    };
    let step = power_step(
        PowerState::Off,
        power,
        requested_age(server, k8s_openapi::jiff::Timestamp::now()),
        ctx.config.power_timeout,
    );
    match step {
        PowerStep::Reached => {
            let c = condition(
                server,
                ConditionStatus::True,
                reasons::SERVER_PARKED,
                "parked; the BMC reports the server Off",
            );
            record_if_changed(api, server, c).await?;
            Ok(Action::requeue(ctx.config.resync))
        }
        PowerStep::Wait => Ok(Action::requeue(POWER_POLL)),
        PowerStep::Issue { retry } => {
            let c = condition(
                server,
                ConditionStatus::False,
                reasons::PARK_POWER_OFF_REQUESTED,
                if retry {
                    "parked; forced power-off requested (the graceful one timed out)"
                } else {
                    "parked; graceful power-off requested"
                },
            );
            // Recorded first (resourceVersion precondition): a second reconcile working from
            // the same read cannot also send.
            record(api, server, c).await?;
            ctx.step("park-power-off-recorded").await;
            ctx.send_power_off(server, &bmc, &system, retry, "park")
                .await;
            ctx.step("park-power-off-sent").await;
            Ok(Action::requeue(POWER_POLL))
        }
    }
}

/// Writes `c` unless the Server already carries it with the same status, reason and message.
async fn record_if_changed(api: &Api<Server>, server: &Server, c: Condition) -> Result<(), Error> {
    let same = server
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition_types::PARKED))
        .is_some_and(|o| o.status == c.status && o.reason == c.reason && o.message == c.message);
    if !same {
        record(api, server, c).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::server::ServerStatus;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn server(state: Option<ServerState>, annotations: &[(&str, &str)], claimed: bool) -> Server {
        let mut s: Server = serde_json::from_value(json!({
            "apiVersion": api::API_VERSION, "kind": "Server",
            "metadata": { "name": "s" },
            "spec": { "systemUUID": "u" },
        }))
        .unwrap();
        s.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        if claimed {
            s.spec.server_claim_ref =
                Some(serde_json::from_value(json!({"namespace": "n", "name": "c"})).unwrap());
        }
        s.status = Some(ServerStatus {
            state,
            ..Default::default()
        });
        s
    }

    fn with_condition(mut s: Server, reason: &str) -> Server {
        s.status.as_mut().unwrap().conditions.push(conditions::new(
            condition_types::PARKED,
            ConditionStatus::False,
            reason,
            "m",
            None,
            now(),
        ));
        s
    }

    const PARK: (&str, &str) = (OPERATION_ANNOTATION, "park");
    const UNPARK: (&str, &str) = (OPERATION_ANNOTATION, "unpark");
    const MARK: (&str, &str) = (PARKED_ANNOTATION, "true");

    #[test]
    fn park_is_admitted_from_available_and_reserved_only() {
        use ServerState::*;
        for s in [Available, Reserved] {
            assert_eq!(next(&server(Some(s), &[PARK], false)), Step::Enter);
        }
        for s in [Initial, Discovery, Maintenance, Error, Cleaning, Released] {
            assert_eq!(next(&server(Some(s), &[PARK], false)), Step::Defer(Some(s)));
        }
        assert_eq!(next(&server(None, &[PARK], false)), Step::Defer(None));
    }

    #[test]
    fn parked_server_is_marked_then_kept_off() {
        let p = Some(ServerState::Parked);
        assert_eq!(
            next(&server(p, &[PARK], false)),
            Step::Mark { drop_request: true }
        );
        assert_eq!(
            next(&server(p, &[PARK, MARK], false)),
            Step::Mark { drop_request: true }
        );
        assert_eq!(
            next(&server(p, &[], false)),
            Step::Mark {
                drop_request: false
            }
        );
        assert_eq!(next(&server(p, &[MARK], false)), Step::EnsureOff);
        assert_eq!(
            next(&server(
                p,
                &[MARK, (OPERATION_ANNOTATION, "force-on-server")],
                false
            )),
            Step::DropOperation("force-on-server".into())
        );
        // Not a server power operation: left to its controller.
        assert_eq!(
            next(&server(
                p,
                &[MARK, (OPERATION_ANNOTATION, "graceful-restart-bmc")],
                false
            )),
            Step::EnsureOff
        );
    }

    #[test]
    fn unpark_returns_to_the_claim_or_the_pool_and_tidies_up() {
        let p = Some(ServerState::Parked);
        assert_eq!(
            next(&server(p, &[UNPARK, MARK], false)),
            Step::Leave(ServerState::Available)
        );
        assert_eq!(
            next(&server(p, &[UNPARK, MARK], true)),
            Step::Leave(ServerState::Reserved)
        );
        let left = with_condition(
            server(Some(ServerState::Available), &[UNPARK, MARK], false),
            reasons::SERVER_PARKED,
        );
        assert_eq!(
            next(&left),
            Step::Tidy {
                drop_request: true,
                drop_marker: true,
                record: true
            }
        );
        // Killed after the record: only the annotations remain to go.
        let recorded = with_condition(
            server(Some(ServerState::Available), &[UNPARK, MARK], false),
            reasons::UNPARKED,
        );
        assert_eq!(
            next(&recorded),
            Step::Tidy {
                drop_request: true,
                drop_marker: true,
                record: false
            }
        );
        let done = with_condition(
            server(Some(ServerState::Available), &[], false),
            reasons::UNPARKED,
        );
        assert_eq!(next(&done), Step::Nothing);
        assert_eq!(
            next(&server(Some(ServerState::Available), &[], false)),
            Step::Nothing
        );
        // Unpark of a server that never was parked: the request is just removed.
        assert_eq!(
            next(&server(Some(ServerState::Available), &[UNPARK], false)),
            Step::Tidy {
                drop_request: true,
                drop_marker: false,
                record: false
            }
        );
    }

    #[test]
    fn only_a_power_off_record_has_an_age() {
        let t = k8s_openapi::jiff::Timestamp::now();
        let s = server(Some(ServerState::Parked), &[MARK], false);
        assert_eq!(requested_age(&s, t), None);
        let s = with_condition(s, reasons::SERVER_PARKED);
        assert_eq!(requested_age(&s, t), None);
        let s = with_condition(
            server(Some(ServerState::Parked), &[MARK], false),
            reasons::PARK_POWER_OFF_REQUESTED,
        );
        assert!(requested_age(&s, t + Duration::from_secs(30)).unwrap() >= Duration::from_secs(29));
    }
}
