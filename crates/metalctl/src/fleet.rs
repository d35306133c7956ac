//! Fleet commands: read and change Servers, ServerMaintenances and their claims through the
//! Kubernetes API, and read a server's console offer through its BMC.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use api::bmc::BMC;
use api::bmcsecret::BMCSecret;
use api::common::ServerMaintenancePolicy;
use api::constants::Operation;
use api::endpoint::Endpoint;
use api::server::{Server, ServerState};
use api::serverclaim::ServerClaim;
use api::servermaintenance::ServerMaintenance;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::console;
use crate::patch::{self, FIELD_MANAGER};
use crate::view::ServerView;

/// Where the Kubernetes API is: `--kubeconfig`, else `$KUBECONFIG` / `~/.kube/config` /
/// in-cluster, as kubectl finds it.
#[derive(clap::Args, Clone, Debug)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
}

impl KubeArgs {
    /// A client for the selected cluster.
    pub async fn client(&self) -> Result<kube::Client> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options).await?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
            None => kube::Config::infer()
                .await
                .context("no Kubernetes configuration (set KUBECONFIG or --kubeconfig)")?,
        };
        Ok(kube::Client::try_from(config)?)
    }
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// `server NAME`, or the error "server NAME not found".
pub async fn get_server(client: &kube::Client, name: &str) -> Result<Server> {
    Api::<Server>::all(client.clone())
        .get_opt(name)
        .await
        .with_context(|| format!("reading server {name}"))?
        .ok_or_else(|| anyhow!("server {name} not found"))
}

/// Every server matching `selector`, summarised, by name.
pub async fn list(client: &kube::Client, selector: Option<&str>) -> Result<Vec<ServerView>> {
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let servers = Api::<Server>::all(client.clone())
        .list(&lp)
        .await
        .context("listing servers")?;
    let mut views: Vec<ServerView> = servers.items.iter().map(ServerView::of).collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(views)
}

async fn patch_server(client: &kube::Client, name: &str, body: Value) -> Result<Server> {
    Api::<Server>::all(client.clone())
        .patch(name, &params(), &Patch::Merge(body))
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                anyhow!("server {name} not found")
            } else {
                anyhow!(e).context(format!("patching server {name}"))
            }
        })
}

/// Sets or clears `spec.unclaimable`; returns what to tell the operator.
pub async fn cordon(client: &kube::Client, name: &str, on: bool) -> Result<String> {
    let server = get_server(client, name).await?;
    if server.is_unclaimable() == on {
        return Ok(format!(
            "server {name} already {}",
            if on { "cordoned" } else { "uncordoned" }
        ));
    }
    patch_server(client, name, patch::cordon(on)).await?;
    Ok(if on {
        format!("server {name} cordoned: no new claim binds to it (a bound claim stays)")
    } else {
        format!("server {name} uncordoned")
    })
}

/// Requests park (`on`) or unpark through the operation annotation maintenance acts on.
pub async fn park(client: &kube::Client, name: &str, on: bool) -> Result<String> {
    let server = get_server(client, name).await?;
    let view = ServerView::of(&server);
    let op = if on {
        Operation::Park
    } else {
        Operation::Unpark
    };
    if view.parked == on && view.pending.is_none() {
        return Ok(format!(
            "server {name} is {}parked; nothing to do",
            if on { "already " } else { "not " }
        ));
    }
    if view.pending.as_deref() == Some(op.as_str()) {
        return Ok(format!("server {name}: {} already requested", op.as_str()));
    }
    patch_server(client, name, patch::operation(op)).await?;
    let state = server.state();
    Ok(match (on, state) {
        (true, Some(ServerState::Available | ServerState::Reserved)) => {
            format!("server {name}: park requested; it will be powered off and Parked")
        }
        (true, s) => format!(
            "server {name}: park requested; it waits until the server is Available or Reserved (now {})",
            s.map_or("-".to_string(), |s| s.to_string())
        ),
        (false, _) => format!("server {name}: unpark requested"),
    })
}

/// Approves the ServerMaintenance `name` in `namespace` for the claim owner: labels the claim
/// of the maintained server as maintenance reads it.
pub async fn approve(client: &kube::Client, namespace: &str, name: &str) -> Result<String> {
    let sm = Api::<ServerMaintenance>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .with_context(|| format!("reading servermaintenance {namespace}/{name}"))?
        .ok_or_else(|| anyhow!("servermaintenance {namespace}/{name} not found"))?;
    if sm.spec.policy == Some(ServerMaintenancePolicy::Enforced) {
        return Ok(format!(
            "servermaintenance {namespace}/{name} has policy Enforced: it needs no approval"
        ));
    }
    let server_name = &sm.spec.server_ref.name;
    let server = get_server(client, server_name).await?;
    let Some(claim) = server.spec.server_claim_ref else {
        bail!(
            "server {server_name} of servermaintenance {namespace}/{name} is not claimed: there is no owner to approve"
        );
    };
    let claims = Api::<ServerClaim>::namespaced(client.clone(), &claim.namespace);
    let current = claims
        .get_opt(&claim.name)
        .await
        .with_context(|| format!("reading serverclaim {}/{}", claim.namespace, claim.name))?
        .ok_or_else(|| anyhow!("serverclaim {}/{} not found", claim.namespace, claim.name))?;
    let approved = current
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(api::constants::MAINTENANCE_APPROVED_LABEL))
        .is_some_and(|v| v == "true");
    if approved {
        return Ok(format!(
            "serverclaim {}/{} already approves maintenance",
            claim.namespace, claim.name
        ));
    }
    claims
        .patch(&claim.name, &params(), &Patch::Merge(patch::approve()))
        .await
        .with_context(|| format!("labelling serverclaim {}/{}", claim.namespace, claim.name))?;
    Ok(format!(
        "servermaintenance {namespace}/{name}: approved on serverclaim {}/{} (server {server_name})",
        claim.namespace, claim.name
    ))
}

/// The BMC object of `server`: `spec.bmcRef`, or one built from the inline `spec.bmc`.
async fn bmc_of(client: &kube::Client, server: &Server, name: &str) -> Result<BMC> {
    if let Some(r) = &server.spec.bmc_ref {
        return Api::<BMC>::all(client.clone())
            .get_opt(&r.name)
            .await
            .with_context(|| format!("reading bmc {}", r.name))?
            .ok_or_else(|| anyhow!("bmc {} of server {name} not found", r.name));
    }
    let Some(inline) = &server.spec.bmc else {
        bail!("server {name} has no BMC (neither spec.bmcRef nor spec.bmc)");
    };
    // The same shape discovery resolves: address inline, the server's secret and protocol.
    let bmc = serde_json::json!({
        "apiVersion": api::API_VERSION, "kind": "BMC",
        "metadata": { "name": name },
        "spec": { "access": { "ip": inline.address }, "bmcSecretRef": inline.bmc_secret_ref,
                  "protocol": inline.protocol },
    });
    Ok(serde_json::from_value(bmc)?)
}

/// Reads what console the BMC of server `name` offers and renders it (no credentials).
pub async fn console(
    client: &kube::Client,
    name: &str,
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<String> {
    let server = get_server(client, name).await?;
    let bmc = bmc_of(client, &server, name).await?;
    let bmc_name = bmc.metadata.name.clone().unwrap_or_default();
    let secret_name = bmc.spec.bmc_secret_ref.name.clone();
    let secret = Api::<BMCSecret>::all(client.clone())
        .get_opt(&secret_name)
        .await
        .with_context(|| format!("reading bmcsecret {secret_name}"))?
        .ok_or_else(|| anyhow!("bmcsecret {secret_name} of bmc {bmc_name} not found"))?;
    let endpoint_ip = match (&bmc.spec.access, &bmc.spec.endpoint_ref) {
        (None, Some(r)) => Api::<Endpoint>::all(client.clone())
            .get_opt(&r.name)
            .await
            .with_context(|| format!("reading endpoint {}", r.name))?
            .and_then(|e| e.spec.ip),
        _ => None,
    };
    let default_ca = match ca_file {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading CA file {}", p.display()))?)
        }
        None => None,
    };
    let target =
        runtime::bmc::resolve(&bmc, &secret, endpoint_ip.as_deref(), default_ca.as_deref())?;
    let host = target.endpoint.host().to_string();
    let client = redfish::Client::new(
        target.endpoint,
        target.credentials,
        redfish::ClientOptions {
            operation_timeout: timeout,
            ..redfish::ClientOptions::default()
        },
    )?;
    let result = read_offers(&client, &server).await;
    let _ = client.logout().await;
    let (system, manager) = result?;
    let configured = |kind: &str| {
        bmc.spec
            .console_protocol
            .as_ref()
            .filter(|c| c.name.to_string().eq_ignore_ascii_case(kind))
            .map(|c| c.port)
    };
    let offers = console::offers(
        &manager,
        system.as_ref(),
        &console::Target {
            host: &host,
            configured_port: &configured,
        },
    );
    if offers.is_empty() {
        bail!(
            "the BMC {bmc_name} of server {name} offers no console (no enabled SerialConsole, CommandShell or GraphicalConsole)"
        );
    }
    Ok(console::render(name, &bmc_name, &secret_name, &offers))
}

/// The server's ComputerSystem (when found) and its Manager, as raw JSON.
async fn read_offers(client: &redfish::Client, server: &Server) -> Result<(Option<Value>, Value)> {
    let system_path = match server.spec.system_uri.clone().filter(|s| !s.is_empty()) {
        Some(p) => Some(p),
        None => client
            .systems()
            .await?
            .into_iter()
            .find(|s| {
                s.uuid
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&server.spec.system_uuid))
            })
            .map(|s| s.odata_id),
    };
    let system: Option<Value> = match &system_path {
        Some(p) => Some(client.get(p).await?),
        None => None,
    };
    let managed_by = system
        .as_ref()
        .and_then(|s| s.pointer("/Links/ManagedBy/0/@odata.id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let manager_path = match managed_by {
        Some(p) => p,
        None => {
            let managers = client.managers().await?;
            managers
                .iter()
                .find(|m| m.manager_type.as_deref() == Some("BMC"))
                .or(managers.first())
                .map(|m| m.odata_id.clone())
                .ok_or_else(|| anyhow!("the BMC exposes no Manager"))?
        }
    };
    let manager: Value = client.get(&manager_path).await?;
    Ok((system, manager))
}
