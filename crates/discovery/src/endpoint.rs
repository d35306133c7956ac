//! Endpoint reconciler (deprecated upstream path, still used): a MAC/IP pair plus the MAC-prefix
//! database becomes a BMCSecret and a BMC, both named after the Endpoint (upstream).
//!
//! The default credentials of the matching entry are tried in order against the Redfish
//! service; the first that works is written to the BMCSecret. Like upstream, the BMC and secret
//! are not owned by the Endpoint (deleting an Endpoint keeps them).

use std::sync::Arc;
use std::time::Duration;

use api::bmc::BMC;
use api::bmcsecret::{BMCSecret, PASSWORD_KEY, USERNAME_KEY};
use api::endpoint::Endpoint;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use redfish::{BmcEndpoint, Client, Credentials};
use serde_json::json;

use crate::context::{Ctx, ignored};
use crate::error::Result;
use crate::logic::macdb::MacPrefix;

/// Protocol names upstream's MAC database uses for Redfish BMCs.
fn protocol_name(p: &str) -> &'static str {
    match p {
        "RedfishLocal" => "RedfishLocal",
        "RedfishWithRegistryPatch" => "RedfishWithRegistryPatch",
        _ => "Redfish",
    }
}

/// The URL the BMC of `entry` answers on at `ip` (pure).
pub fn url(entry: &MacPrefix, ip: &str, default_scheme: &str) -> String {
    let scheme = if entry.protocol_scheme.is_empty() {
        default_scheme
    } else {
        entry.protocol_scheme.as_str()
    };
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("{scheme}://{host}:{}", entry.port)
}

async fn try_credentials(
    ctx: &Ctx,
    entry: &MacPrefix,
    url: &str,
) -> std::result::Result<(usize, Option<String>), String> {
    let mut last = String::from("the MAC-prefix entry has no default credentials");
    for (i, cred) in entry.default_credentials.iter().enumerate() {
        let mut endpoint = BmcEndpoint::parse(url).map_err(|e| e.to_string())?;
        if ctx.cfg.endpoint_insecure {
            endpoint = endpoint.insecure();
        } else if let Some(ca) = &ctx.default_ca {
            endpoint = endpoint.with_ca_bundle_pem(ca).map_err(|e| e.to_string())?;
        }
        let opts = redfish::ClientOptions {
            operation_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            observer: Some(ctx.metrics.redfish_observer()),
            ..Default::default()
        };
        let client = Client::new(
            endpoint,
            Credentials::new(cred.username.as_str(), cred.password.as_str()),
            opts,
        )
        .map_err(|e| e.to_string())?;
        match client.managers().await {
            Ok(managers) => {
                let uuid = crate::bmc::select_manager(&managers, None)
                    .and_then(|i| managers[i].uuid.clone());
                let _ = client.logout().await;
                return Ok((i, uuid));
            }
            Err(e) => {
                last = format!(
                    "credential {} of {}: {e}",
                    i + 1,
                    entry.default_credentials.len()
                )
            }
        }
    }
    Err(last)
}

/// Reconciles one Endpoint.
pub async fn reconcile(ep: Arc<Endpoint>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = ep.name_any();
    if ignored(&ep.metadata) || ep.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (Some(mac), Some(ip)) = (ep.spec.mac_address.clone(), ep.spec.ip.clone()) else {
        return Ok(Action::await_change());
    };
    let Some(db) = &ctx.macdb else {
        ctx.event(
            &*ep,
            EventType::Warning,
            "NoMACPrefixDatabase",
            "Match",
            "no --mac-prefixes-file configured".into(),
        )
        .await;
        return Ok(Action::await_change());
    };
    let Some(entry) = db.find(&mac) else {
        ctx.event(
            &*ep,
            EventType::Warning,
            "UnknownMACPrefix",
            "Match",
            format!("no BMC entry matches MAC {mac}"),
        )
        .await;
        return Ok(Action::await_change());
    };
    let url = url(entry, &ip, &ctx.cfg.endpoint_scheme);
    let existing = ctx.bmcs.get(&ObjectRef::new(&name));
    let (index, uuid) = match try_credentials(&ctx, entry, &url).await {
        Ok(found) => found,
        Err(why) => {
            ctx.event(
                &*ep,
                EventType::Warning,
                "DefaultCredentialsFailed",
                "Connect",
                format!("{url}: {why}"),
            )
            .await;
            return Ok(Action::requeue(
                ctx.backoff(&format!("endpoint/{name}"), Duration::from_secs(300)),
            ));
        }
    };
    let cred = &entry.default_credentials[index];
    let labels = ep.metadata.labels.clone().unwrap_or_default();
    let secrets: Api<BMCSecret> = Api::all(ctx.client.clone());
    let secret_up_to_date = ctx.secret(&name).is_some_and(|s| {
        s.spec.username().as_deref() == Some(cred.username.as_str())
            && s.spec.password().as_deref() == Some(cred.password.as_str())
    });
    if !secret_up_to_date {
        let body = json!({
            "apiVersion": api::API_VERSION, "kind": "BMCSecret",
            "metadata": {"name": name, "labels": labels},
            "stringData": {USERNAME_KEY: cred.username, PASSWORD_KEY: cred.password},
        });
        ctx.apply(&secrets, &name, &body, true).await?;
    }
    let mut spec = json!({
        "endpointRef": {"name": name},
        "bmcSecretRef": {"name": name},
        "protocol": {"name": protocol_name(&entry.protocol), "port": entry.port},
    });
    if !entry.protocol_scheme.is_empty() {
        spec["protocol"]["scheme"] = json!(entry.protocol_scheme);
    } else {
        spec["protocol"]["scheme"] = json!(ctx.cfg.endpoint_scheme);
    }
    if let Some(c) = entry.console.as_ref().filter(|c| !c.type_.is_empty()) {
        spec["consoleProtocol"] = json!({"name": c.type_, "port": c.port});
    }
    let known_uuid = existing.as_ref().and_then(|b| b.spec.bmc_uuid.clone());
    if let Some(u) = known_uuid.or(uuid) {
        spec["bmcUUID"] = json!(u);
    }
    let body = json!({"apiVersion": api::API_VERSION, "kind": "BMC", "metadata": {"name": name, "labels": labels}, "spec": spec});
    let bmcs: Api<BMC> = Api::all(ctx.client.clone());
    let unchanged = existing.as_ref().is_some_and(|b| {
        serde_json::to_value(&b.spec).ok().is_some_and(|have| {
            spec.as_object()
                .is_some_and(|want| want.iter().all(|(k, v)| have.get(k) == Some(v)))
        })
    });
    if !unchanged {
        ctx.apply(&bmcs, &name, &body, true).await?;
        ctx.event(
            &*ep,
            EventType::Normal,
            "BMCCreated",
            "Apply",
            format!("BMC {name} at {url} ({})", entry.manufacturer),
        )
        .await;
    }
    ctx.succeeded(&format!("endpoint/{name}"));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let mut e = MacPrefix {
            port: 8443,
            ..Default::default()
        };
        assert_eq!(url(&e, "10.0.0.1", "https"), "https://10.0.0.1:8443");
        e.protocol_scheme = "http".into();
        assert_eq!(url(&e, "fd00::1", "https"), "http://[fd00::1]:8443");
        assert_eq!(protocol_name("Redfish"), "Redfish");
        assert_eq!(protocol_name("RedfishLocal"), "RedfishLocal");
    }
}
