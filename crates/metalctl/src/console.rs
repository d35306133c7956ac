//! What console a BMC offers, read from its Redfish Manager (`SerialConsole`, `CommandShell`,
//! `GraphicalConsole`) and ComputerSystem (`SerialConsole` with per-protocol settings, Redfish
//! 2020.4 and later), and how to open it. Pure: the caller fetches the JSON. Credentials are
//! never part of the output: commands name placeholders and the BMCSecret.

use redfish::models::CommandConnectService;
use serde::Serialize;
use serde_json::Value;

/// One console service the BMC advertises as enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    /// Where it was found, e.g. `Manager CommandShell`.
    pub service: String,
    /// `ConnectTypesSupported`, or the enabled protocols of a system's `SerialConsole`.
    pub connect_types: Vec<String>,
    /// `MaxConcurrentSessions`, when given.
    pub max_sessions: Option<u32>,
    /// Command lines (or URLs) to open it.
    pub how: Vec<String>,
}

/// How to reach the BMC, for the printed commands.
pub struct Target<'a> {
    /// Host name or IP of the BMC.
    pub host: &'a str,
    /// The port of `BMC.spec.consoleProtocol` for that protocol, if configured.
    pub configured_port: &'a dyn Fn(&str) -> Option<i32>,
}

fn how_to(kind: &str, port: Option<i64>, entry: Option<&str>, t: &Target<'_>) -> Vec<String> {
    let configured = (t.configured_port)(kind).map(i64::from);
    let port = port.or(configured);
    let mut how = match kind {
        "SSH" => vec![format!(
            "ssh -p {} <username>@{}",
            port.unwrap_or(22),
            t.host
        )],
        "IPMI" => vec![format!(
            "IPMI_PASSWORD=<password> ipmitool -I lanplus -H {} -p {} -U <username> -E sol activate",
            t.host,
            port.unwrap_or(623)
        )],
        "Telnet" => vec![format!("telnet {} {}", t.host, port.unwrap_or(23))],
        "KVMIP" => vec![format!(
            "open https://{}/ in a browser (KVM over IP)",
            t.host
        )],
        "Oem" => vec!["vendor-specific (Oem): see the BMC's documentation".to_string()],
        other => vec![format!("{other}: no command known")],
    };
    if let Some(e) = entry.filter(|e| !e.is_empty()) {
        how.push(format!("then run on the BMC: {e}"));
    }
    how
}

fn from_service(name: &str, v: &Value, t: &Target<'_>) -> Option<Offer> {
    let svc: CommandConnectService = serde_json::from_value(v.clone()).ok()?;
    if svc.service_enabled == Some(false) || svc.connect_types_supported.is_empty() {
        return None;
    }
    let how = svc
        .connect_types_supported
        .iter()
        .flat_map(|k| how_to(k, None, None, t))
        .collect();
    Some(Offer {
        service: name.to_string(),
        connect_types: svc.connect_types_supported,
        max_sessions: svc.max_concurrent_sessions,
        how,
    })
}

/// The system's `SerialConsole` in its per-protocol form (`SSH`, `IPMI`, `Telnet` objects).
fn from_system_serial(v: &Value, t: &Target<'_>) -> Option<Offer> {
    let mut types = Vec::new();
    let mut how = Vec::new();
    for kind in ["SSH", "IPMI", "Telnet"] {
        let Some(p) = v.get(kind) else { continue };
        if p.get("ServiceEnabled").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        types.push(kind.to_string());
        how.extend(how_to(
            kind,
            p.get("Port").and_then(Value::as_i64),
            p.get("ConsoleEntryCommand").and_then(Value::as_str),
            t,
        ));
        if let Some(k) = p.get("HotKeySequenceDisplay").and_then(Value::as_str) {
            how.push(format!("to leave: {k}"));
        }
    }
    (!types.is_empty()).then(|| Offer {
        service: "System SerialConsole".to_string(),
        connect_types: types,
        max_sessions: v
            .get("MaxConcurrentSessions")
            .and_then(Value::as_u64)
            .map(|n| n as u32),
        how,
    })
}

/// The enabled consoles of `manager` (and `system`, when read), serial ones first.
pub fn offers(manager: &Value, system: Option<&Value>, t: &Target<'_>) -> Vec<Offer> {
    let mut out = Vec::new();
    if let Some(o) = system
        .and_then(|s| s.get("SerialConsole"))
        .and_then(|v| from_system_serial(v, t))
    {
        out.push(o);
    }
    for name in ["SerialConsole", "CommandShell", "GraphicalConsole"] {
        if let Some(o) = manager
            .get(name)
            .and_then(|v| from_service(&format!("Manager {name}"), v, t))
        {
            out.push(o);
        }
    }
    out
}

/// The human-readable listing of `offers`.
pub fn render(server: &str, bmc: &str, secret: &str, offers: &[Offer]) -> String {
    let mut out = format!("Consoles of server {server} (BMC {bmc}):\n");
    for o in offers {
        out.push_str(&format!(
            "  {}: {}{}\n",
            o.service,
            o.connect_types.join(", "),
            match o.max_sessions {
                Some(1) => " (max 1 session)".to_string(),
                Some(n) if n > 1 => format!(" (max {n} sessions)"),
                _ => String::new(),
            }
        ));
        for h in &o.how {
            out.push_str(&format!("    {h}\n"));
        }
    }
    out.push_str(&format!(
        "Login: the username and password in BMCSecret {secret} (not printed).\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target<'a>(ports: &'a dyn Fn(&str) -> Option<i32>) -> Target<'a> {
        Target {
            host: "10.0.0.9",
            configured_port: ports,
        }
    }

    #[test]
    fn disabled_and_empty_services_are_not_offered() {
        let none = |_: &str| None;
        let m = json!({
            "SerialConsole": { "ServiceEnabled": false, "ConnectTypesSupported": [] },
            "CommandShell": { "ServiceEnabled": true, "ConnectTypesSupported": ["SSH", "IPMI"],
                              "MaxConcurrentSessions": 5 },
            "GraphicalConsole": { "ServiceEnabled": false, "ConnectTypesSupported": ["KVMIP"] },
        });
        let o = offers(&m, None, &target(&none));
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].service, "Manager CommandShell");
        assert_eq!(o[0].max_sessions, Some(5));
        assert_eq!(
            o[0].how,
            [
                "ssh -p 22 <username>@10.0.0.9",
                "IPMI_PASSWORD=<password> ipmitool -I lanplus -H 10.0.0.9 -p 623 -U <username> -E sol activate"
            ]
        );
        assert!(offers(&json!({}), None, &target(&none)).is_empty());
    }

    #[test]
    fn system_serial_console_gives_ports_and_entry_command() {
        let ports = |k: &str| (k == "SSH").then_some(2222);
        let sys = json!({ "SerialConsole": {
            "MaxConcurrentSessions": 1,
            "SSH": { "ServiceEnabled": true, "Port": 22, "ConsoleEntryCommand": "cd system1/sol1; start",
                     "HotKeySequenceDisplay": "press <Esc> T" },
            "IPMI": { "ServiceEnabled": true },
            "Telnet": { "ServiceEnabled": false, "Port": 23 },
        }});
        let o = offers(&json!({}), Some(&sys), &target(&ports));
        assert_eq!(o[0].connect_types, ["SSH", "IPMI"]);
        assert_eq!(
            o[0].how,
            [
                "ssh -p 22 <username>@10.0.0.9",
                "then run on the BMC: cd system1/sol1; start",
                "to leave: press <Esc> T",
                "IPMI_PASSWORD=<password> ipmitool -I lanplus -H 10.0.0.9 -p 623 -U <username> -E sol activate"
            ]
        );
        let text = render("srv", "bmc", "sec", &o);
        assert!(text.contains("BMCSecret sec (not printed)"), "{text}");
    }

    #[test]
    fn configured_port_fills_a_missing_one() {
        let ports = |k: &str| (k == "SSH").then_some(2222);
        let m = json!({ "CommandShell": { "ConnectTypesSupported": ["SSH"] } });
        assert_eq!(
            offers(&m, None, &target(&ports))[0].how,
            ["ssh -p 2222 <username>@10.0.0.9"]
        );
    }
}
