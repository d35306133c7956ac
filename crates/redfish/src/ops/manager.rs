//! Manager (BMC) reset and waiting for the BMC to come back.

use std::time::Duration;

use http::Method;
use serde_json::json;

use crate::client::{Client, Ctx};
use crate::error::{Error, ErrorKind};
use crate::models::{Manager, PowerState, ResetType, State};

impl Client {
    /// Resets the BMC itself (e.g. `GracefulRestart`), after checking the reset type against the
    /// manager's allowable values (`NotSupported` otherwise). Sent once, never repeated.
    pub async fn reset_manager(&self, manager: &str, reset: ResetType) -> Result<(), Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let m: Manager = self.get_ctx(&ctx, manager).await?;
            let Some(action) = m.reset_action() else {
                return Err(self.err(ErrorKind::NotSupported(format!("{manager} has no Manager.Reset action"))));
            };
            if let Some(allowed) = self.allowed_reset_types(&ctx, action).await?
                && !allowed.contains(&reset) {
                    let list: Vec<&str> = allowed.iter().map(ResetType::as_str).collect();
                    return Err(self.err(ErrorKind::NotSupported(format!(
                        "manager reset {reset} not allowed; allowed: [{}]",
                        list.join(", ")
                    ))));
                }
            let target = action.target.clone().unwrap_or_else(|| format!("{manager}/Actions/Manager.Reset"));
            self.send_json(&ctx, Method::POST, &target, &json!({ "ResetType": reset.as_str() })).await?;
            tracing::info!(bmc = %self.inner.bmc, manager, reset_type = %reset, "manager reset issued");
            Ok(())
        })
        .await
    }

    /// Waits until the manager answers again and looks up (PowerState On, or no PowerState at all as on
    /// HPE iLO 6, and not Starting). Pooled connections are dropped by the reset; new ones are opened.
    pub async fn wait_for_manager(
        &self,
        manager: &str,
        timeout: Duration,
    ) -> Result<Manager, Error> {
        let ctx = Ctx::new(timeout);
        self.within(&ctx, async {
            loop {
                match self.get_ctx::<Manager>(&ctx, manager).await {
                    Ok(m) => {
                        let power_ok = matches!(m.power_state, None | Some(PowerState::On));
                        let starting = m.status.as_ref().and_then(|s| s.state.as_ref())
                            == Some(&State::Starting);
                        if power_ok && !starting {
                            return Ok(m);
                        }
                    }
                    Err(e) if e.class().is_transient() || e.status() == Some(401) => {
                        tracing::debug!(error = %e, "manager not back yet");
                    }
                    Err(e) => return Err(e),
                }
                tokio::time::sleep(self.inner.opts.poll_interval.min(ctx.remaining())).await;
            }
        })
        .await
    }
}
