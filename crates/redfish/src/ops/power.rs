//! Power: reset types checked against what the system allows, idempotent by reading state first, and
//! waiting for a power state.

use std::time::Duration;

use http::Method;
use serde::Serialize;
use serde_json::json;

use crate::client::{Client, Ctx};
use crate::error::{Error, ErrorKind};
use crate::models::{Action, ActionInfo, ComputerSystem, IndicatorLed, PowerState, ResetType};

/// What the caller wants the power to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PowerAction {
    /// Power on (skipped when already On).
    On,
    /// Orderly shutdown (skipped when already Off).
    GracefulOff,
    /// Immediate power off (skipped when already Off).
    ForceOff,
    /// Orderly restart.
    GracefulRestart,
    /// Immediate restart.
    ForceRestart,
    /// Power cycle (off, then on).
    PowerCycle,
}

/// What a power call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PowerOutcome {
    /// Nothing sent: the system already was in the state asked for.
    AlreadyInState(PowerState),
    /// This reset type was sent.
    Issued(ResetType),
}

/// Picks the reset type for an action from what the system allows (pure). `allowed = None` means the
/// service does not say, so the standard reset type is used. Returns `None` when nothing fits.
pub fn choose_reset_type(action: PowerAction, allowed: Option<&[ResetType]>) -> Option<ResetType> {
    let candidates: &[ResetType] = match action {
        PowerAction::On => &[ResetType::On, ResetType::ForceOn],
        PowerAction::GracefulOff => &[ResetType::GracefulShutdown],
        PowerAction::ForceOff => &[ResetType::ForceOff],
        PowerAction::GracefulRestart => &[ResetType::GracefulRestart],
        PowerAction::ForceRestart => &[ResetType::ForceRestart, ResetType::PowerCycle],
        PowerAction::PowerCycle => &[ResetType::PowerCycle, ResetType::ForceRestart],
    };
    match allowed {
        None => candidates.first().cloned(),
        Some(list) => candidates.iter().find(|c| list.contains(c)).cloned(),
    }
}

impl Client {
    /// The reset types an action allows: inline `ResetType@Redfish.AllowableValues`, else the
    /// `@Redfish.ActionInfo` resource, else `None` (unknown).
    pub(crate) async fn allowed_reset_types(
        &self,
        ctx: &Ctx,
        action: &Action,
    ) -> Result<Option<Vec<ResetType>>, Error> {
        if let Some(list) = action.allowable("ResetType") {
            return Ok(Some(
                list.iter().map(|s| ResetType::from(s.as_str())).collect(),
            ));
        }
        if let Some(info) = &action.action_info {
            match super::optional(self.get_ctx::<ActionInfo>(ctx, info).await)? {
                Some(ai) => {
                    if let Some(list) = ai.allowable("ResetType") {
                        return Ok(Some(
                            list.iter().map(|s| ResetType::from(s.as_str())).collect(),
                        ));
                    }
                }
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Changes the power of a system. Reads the system first: `On` is skipped when already On, the
    /// off actions when already Off; the reset type is checked against the allowable values
    /// (`NotSupported` otherwise). The reset is sent once and never repeated.
    pub async fn power(&self, system: &str, action: PowerAction) -> Result<PowerOutcome, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let sys: ComputerSystem = self.get_ctx(&ctx, system).await?;
            match (action, &sys.power_state) {
                (PowerAction::On, Some(PowerState::On)) => {
                    return Ok(PowerOutcome::AlreadyInState(PowerState::On));
                }
                (PowerAction::GracefulOff | PowerAction::ForceOff, Some(PowerState::Off)) => {
                    return Ok(PowerOutcome::AlreadyInState(PowerState::Off));
                }
                _ => {}
            }
            let Some(reset) = sys.reset_action() else {
                return Err(self.err(ErrorKind::NotSupported(format!(
                    "{system} has no ComputerSystem.Reset action"
                ))));
            };
            let allowed = self.allowed_reset_types(&ctx, reset).await?;
            let Some(rt) = choose_reset_type(action, allowed.as_deref()) else {
                let list: Vec<&str> = allowed.iter().flatten().map(ResetType::as_str).collect();
                return Err(self.err(ErrorKind::NotSupported(format!(
                    "{action:?} is not possible on {system}: allowed reset types are [{}]",
                    list.join(", ")
                ))));
            };
            let target = reset
                .target
                .clone()
                .unwrap_or_else(|| format!("{system}/Actions/ComputerSystem.Reset"));
            self.send_json(
                &ctx,
                Method::POST,
                &target,
                &json!({ "ResetType": rt.as_str() }),
            )
            .await?;
            tracing::info!(bmc = %self.inner.bmc, system, reset_type = %rt, "reset issued");
            Ok(PowerOutcome::Issued(rt))
        })
        .await
    }

    /// Powers on (no-op when already On).
    pub async fn power_on(&self, system: &str) -> Result<PowerOutcome, Error> {
        self.power(system, PowerAction::On).await
    }

    /// Graceful shutdown (no-op when already Off).
    pub async fn power_off(&self, system: &str) -> Result<PowerOutcome, Error> {
        self.power(system, PowerAction::GracefulOff).await
    }

    /// Immediate power off (no-op when already Off).
    pub async fn force_off(&self, system: &str) -> Result<PowerOutcome, Error> {
        self.power(system, PowerAction::ForceOff).await
    }

    /// Restart, graceful or forced.
    pub async fn restart(&self, system: &str, graceful: bool) -> Result<PowerOutcome, Error> {
        self.power(
            system,
            if graceful {
                PowerAction::GracefulRestart
            } else {
                PowerAction::ForceRestart
            },
        )
        .await
    }

    /// Power cycle.
    pub async fn power_cycle(&self, system: &str) -> Result<PowerOutcome, Error> {
        self.power(system, PowerAction::PowerCycle).await
    }

    /// Polls the system until it reports `target`, for at most `timeout`. Transient read failures while
    /// the BMC is busy with the transition are tolerated until the deadline.
    pub async fn wait_for_power_state(
        &self,
        system: &str,
        target: PowerState,
        timeout: Duration,
    ) -> Result<(), Error> {
        let ctx = Ctx::new(timeout);
        let mut last: Option<PowerState> = None;
        let r = self
            .within(&ctx, async {
                loop {
                    match self.get_ctx::<ComputerSystem>(&ctx, system).await {
                        Ok(s) if s.power_state.as_ref() == Some(&target) => return Ok(()),
                        Ok(s) => last = s.power_state,
                        Err(e) if e.class().is_transient() => {
                            tracing::debug!(error = %e, "power state poll failed, will retry");
                        }
                        Err(e) => return Err(e),
                    }
                    tokio::time::sleep(self.inner.opts.poll_interval.min(ctx.remaining())).await;
                }
            })
            .await;
        match r {
            Err(e) if matches!(e.kind(), ErrorKind::DeadlineExceeded) => Err(self
                .err(ErrorKind::DeadlineExceeded)
                .with_request(&Method::GET, system)
                .with_redfish(
                    Some(format!(
                        "power state still {} after {timeout:?}, waiting for {target}",
                        last.map(|s| s.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    )),
                    Vec::new(),
                )),
            other => other,
        }
    }

    /// Sets the indicator LED (`IndicatorLED`, or `LocationIndicatorActive` on newer services).
    /// Skipped when already in that state.
    pub async fn set_indicator_led(&self, system: &str, led: IndicatorLed) -> Result<bool, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let sys: ComputerSystem = self.get_ctx(&ctx, system).await?;
            let body = if let Some(cur) = &sys.indicator_led {
                if *cur == led {
                    return Ok(false);
                }
                json!({ "IndicatorLED": led.as_str() })
            } else if let Some(active) = sys.location_indicator_active {
                let want = led != IndicatorLed::Off;
                if active == want {
                    return Ok(false);
                }
                json!({ "LocationIndicatorActive": want })
            } else {
                return Err(self.err(ErrorKind::NotSupported(format!(
                    "{system} has no indicator LED"
                ))));
            };
            self.send_json(&ctx, Method::PATCH, system, &body).await?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_type_choice() {
        use ResetType::*;
        assert_eq!(choose_reset_type(PowerAction::On, None), Some(On));
        assert_eq!(
            choose_reset_type(PowerAction::On, Some(&[ForceOn, ForceOff])),
            Some(ForceOn)
        );
        assert_eq!(
            choose_reset_type(PowerAction::PowerCycle, Some(&[ForceRestart])),
            Some(ForceRestart)
        );
        assert_eq!(
            choose_reset_type(PowerAction::ForceRestart, Some(&[PowerCycle, ForceRestart])),
            Some(ForceRestart)
        );
        assert_eq!(
            choose_reset_type(PowerAction::GracefulOff, Some(&[On, ForceOff])),
            None
        );
        assert_eq!(
            choose_reset_type(PowerAction::GracefulRestart, Some(&[GracefulRestart])),
            Some(GracefulRestart)
        );
    }
}
