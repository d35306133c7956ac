//! Drives and their Redfish erase action, for cleaning released servers.

use crate::client::Client;
use crate::error::Error;
use crate::ops::update::{TaskHandle, messages_of, task_monitor_from_response};
use serde::Serialize;
use serde_json::{Value, json};

/// One drive of a system, as cleaning needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriveErase {
    /// The drive resource.
    pub path: String,
    /// Its `Id` (the last path segment when the BMC gives none).
    pub id: String,
    /// Where to POST `Drive.SecureErase`, when the drive offers it.
    pub secure_erase: Option<String>,
}

fn links(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("@odata.id").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a drive resource into a [`DriveErase`] (pure).
pub fn drive_erase(path: &str, v: &Value) -> DriveErase {
    let id = v
        .get("Id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_string());
    let secure_erase = v
        .pointer("/Actions/#Drive.SecureErase/target")
        .and_then(Value::as_str)
        .map(str::to_string);
    DriveErase {
        path: path.to_string(),
        id,
        secure_erase,
    }
}

impl Client {
    /// Every drive of `system`, through its Storage subsystems (a system without a `Storage`
    /// collection has none that Redfish can erase).
    pub async fn drives(&self, system: &str) -> Result<Vec<DriveErase>, Error> {
        let sys: Value = self.get(system).await?;
        let Some(storage) = sys.pointer("/Storage/@odata.id").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let collection: Value = self.get(storage).await?;
        let mut out = Vec::new();
        for s in links(&collection, "Members") {
            let subsystem: Value = self.get(&s).await?;
            for d in links(&subsystem, "Drives") {
                if out.iter().any(|x: &DriveErase| x.path == d) {
                    continue;
                }
                let drive: Value = self.get(&d).await?;
                out.push(drive_erase(&d, &drive));
            }
        }
        Ok(out)
    }

    /// Sends `Drive.SecureErase` to `target`. A BMC that runs it as a task returns its monitor
    /// (poll it with [`Client::task_progress`]); `monitor: None` means it finished.
    pub async fn secure_erase(&self, target: &str) -> Result<TaskHandle, Error> {
        let resp = self.post(target, &json!({})).await?;
        let v = resp.json_value();
        let monitor = if resp.status == 202 {
            task_monitor_from_response(resp.location(), &v)
        } else {
            None
        };
        tracing::info!(bmc = %self.inner.bmc, target, monitor = ?monitor, "secure erase sent");
        Ok(TaskHandle {
            monitor,
            status: resp.status,
            messages: messages_of(&v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drive_offers_secure_erase_only_with_its_action() {
        let d = drive_erase(
            "/redfish/v1/Systems/1/Storage/1/Drives/0",
            &json!({"Id": "0", "Actions": {"#Drive.SecureErase": {"target": "/x/Actions/Drive.SecureErase"}}}),
        );
        assert_eq!(
            d.secure_erase.as_deref(),
            Some("/x/Actions/Drive.SecureErase")
        );
        let plain = drive_erase("/redfish/v1/Chassis/1/Drives/3", &json!({}));
        assert_eq!((plain.id.as_str(), plain.secure_erase), ("3", None));
    }
}
