//! BMC (manager) attributes: Dell `DellAttributes` resources linked from the manager's OEM links, or
//! the manager's own `Attributes` with a `@Redfish.Settings` object.

use std::collections::BTreeMap;

use http::Method;
use http::header::IF_MATCH;
use serde::Serialize;
use serde_json::{Value, json};

use super::bios::{BiosApply, changes, validate_against_current, validate_attributes};
use crate::client::{Client, Ctx, Req};
use crate::error::{AttributeError, Error, ErrorKind};
use crate::models::{
    AttributeRegistry, AttributeType, AttributeValue, Bios, Manager, RegistryAttribute,
    RegistryEntries,
};
use crate::vendor::{QuirkId, has_quirk};

/// Where a manager's attributes live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ManagerAttributeSource {
    /// Dell: several `DellAttributes` resources.
    DellOem(Vec<String>),
    /// The manager's `Attributes` with this settings object.
    Settings(String),
}

/// Dell iDRAC attributes commonly set, used to validate when the (4 MiB) manager registry is absent.
fn dell_common_registry() -> AttributeRegistry {
    let attr = |name: &str, t: AttributeType, reset: bool| RegistryAttribute {
        attribute_name: Some(name.to_owned()),
        attribute_type: Some(t),
        read_only: Some(false),
        reset_required: Some(reset),
        ..RegistryAttribute::default()
    };
    AttributeRegistry {
        id: Some("dell-common-idrac-attributes".into()),
        registry_entries: Some(RegistryEntries {
            attributes: vec![
                attr("SysLog.1.SysLogEnable", AttributeType::Enumeration, true),
                attr("SysLog.1.Server1", AttributeType::String, false),
                attr("SysLog.1.Server2", AttributeType::String, false),
                attr(
                    "NTPConfigGroup.1.NTPEnable",
                    AttributeType::Enumeration,
                    true,
                ),
                attr("NTPConfigGroup.1.NTP1", AttributeType::String, true),
                attr("NTPConfigGroup.1.NTP2", AttributeType::String, true),
                attr("EmailAlert.1.Enable", AttributeType::Enumeration, false),
                attr("EmailAlert.1.Address", AttributeType::String, false),
                attr("SNMP.1.AgentEnable", AttributeType::Enumeration, true),
                attr("SNMP.1.AgentCommunity", AttributeType::String, true),
            ]
            .into_iter()
            .map(|mut a| {
                if a.attribute_type == Some(AttributeType::Enumeration) {
                    a.value = ["Enabled", "Disabled"]
                        .iter()
                        .map(|v| crate::models::AttributeEnumValue {
                            value_name: Some((*v).into()),
                            value_display_name: Some((*v).into()),
                        })
                        .collect();
                }
                a
            })
            .collect(),
        }),
        ..AttributeRegistry::default()
    }
}

/// Dell shows some enumeration values by display name; writes use value names.
fn display_to_value_names(
    registry: &AttributeRegistry,
    attrs: &BTreeMap<String, AttributeValue>,
) -> BTreeMap<String, AttributeValue> {
    let entries = registry.attributes();
    attrs
        .iter()
        .map(|(k, v)| {
            let mapped = match (entries.get(k.as_str()), v.as_str()) {
                (Some(e), Some(s)) if e.attribute_type == Some(AttributeType::Enumeration) => e
                    .value
                    .iter()
                    .find(|ev| {
                        ev.value_name.as_deref() != Some(s)
                            && ev.value_display_name.as_deref() == Some(s)
                    })
                    .and_then(|ev| ev.value_name.clone())
                    .map(AttributeValue::String),
                _ => None,
            };
            (k.clone(), mapped.unwrap_or_else(|| v.clone()))
        })
        .collect()
}

struct Resource {
    source: String,
    bios: Bios,
}

impl Client {
    async fn manager_sources(
        &self,
        ctx: &Ctx,
        manager: &str,
    ) -> Result<(Manager, Vec<Resource>), Error> {
        let m: Manager = self.get_ctx(ctx, manager).await?;
        let vendor = self.vendor_ctx(ctx, None).await?;
        let dell = m.dell_attribute_links();
        if has_quirk(&vendor, QuirkId::ManagerAttributesViaDellOem) && !dell.is_empty() {
            let values = self.fetch_all(ctx, dell.clone()).await?;
            let res = dell
                .into_iter()
                .zip(values)
                .map(|(source, v)| Resource {
                    source,
                    bios: serde_json::from_value(v).unwrap_or_default(),
                })
                .collect();
            return Ok((m, res));
        }
        if m.settings.is_some() || !m.attributes.is_empty() {
            let bios = Bios {
                odata_id: m.odata_id.clone(),
                attributes: m.attributes.clone(),
                settings: m.settings.clone(),
                ..Bios::default()
            };
            return Ok((
                m,
                vec![Resource {
                    source: manager.to_owned(),
                    bios,
                }],
            ));
        }
        Err(self.err(ErrorKind::NotSupported(format!(
            "{manager} exposes no BMC attributes"
        ))))
    }

    /// Where the attributes of a manager live.
    pub async fn manager_attribute_source(
        &self,
        manager: &str,
    ) -> Result<ManagerAttributeSource, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (_, res) = self.manager_sources(&ctx, manager).await?;
            match res.as_slice() {
                [only] if only.source == manager => Ok(ManagerAttributeSource::Settings(
                    only.bios
                        .settings_object()
                        .map(str::to_owned)
                        .unwrap_or_else(|| manager.to_owned()),
                )),
                _ => Ok(ManagerAttributeSource::DellOem(
                    res.into_iter().map(|r| r.source).collect(),
                )),
            }
        })
        .await
    }

    /// Current BMC attributes (Dell: merged over all DellAttributes resources).
    pub async fn manager_attributes(
        &self,
        manager: &str,
    ) -> Result<BTreeMap<String, AttributeValue>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (_, res) = self.manager_sources(&ctx, manager).await?;
            let mut out = BTreeMap::new();
            for r in res {
                for (k, v) in r.bios.attributes {
                    if out.insert(k.clone(), v).is_some() {
                        return Err(self.err(ErrorKind::Unexpected(format!(
                            "attribute {k} appears in several attribute resources"
                        ))));
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Pending BMC attributes (staged in the settings objects, differing from the current values).
    pub async fn manager_pending_attributes(
        &self,
        manager: &str,
    ) -> Result<BTreeMap<String, AttributeValue>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (_, res) = self.manager_sources(&ctx, manager).await?;
            let mut out = BTreeMap::new();
            for r in res {
                let Some(so) = r.bios.settings_object() else {
                    continue;
                };
                if let Some(p) = super::optional(self.get_ctx::<Bios>(&ctx, so).await)? {
                    for (k, v) in p.attributes {
                        if !r.bios.attributes.get(&k).is_some_and(|c| c.loosely_eq(&v)) {
                            out.insert(k, v);
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// The attribute resources, `attrs` in the names the BMC writes, the current values, and
    /// whether a write of `attrs` needs a BMC reset; invalid attributes are an error.
    async fn manager_plan(
        &self,
        ctx: &Ctx,
        manager: &str,
        attrs: &BTreeMap<String, AttributeValue>,
    ) -> Result<
        (
            Vec<Resource>,
            BTreeMap<String, AttributeValue>,
            BTreeMap<String, AttributeValue>,
            bool,
        ),
        Error,
    > {
        let (_, res) = self.manager_sources(ctx, manager).await?;
        let dell = res.len() > 1 || res.first().is_some_and(|r| r.source != manager);
        let registry = self
            .attribute_registry(
                ctx,
                None,
                if dell {
                    "ManagerAttributeRegistry"
                } else {
                    "AttributeRegistry"
                },
            )
            .await?;
        let registry = match registry {
            Some(r) => Some(r),
            None if dell => Some(dell_common_registry()),
            None => None,
        };
        let attrs = match &registry {
            Some(r) => display_to_value_names(r, attrs),
            None => attrs.clone(),
        };
        let mut current = BTreeMap::new();
        for r in &res {
            current.extend(r.bios.attributes.clone());
        }
        let reset_required = match &registry {
            Some(r) => validate_attributes(r, &attrs),
            None => validate_against_current(&current, &attrs),
        }
        .map_err(|e| self.err(ErrorKind::InvalidAttributes(e)))?;
        Ok((res, attrs, current, reset_required))
    }

    /// Validates BMC attributes without writing them: whether writing them needs a BMC reset
    /// (by the manager attribute registry), so a caller can record that before it writes.
    pub async fn check_manager_attributes(
        &self,
        manager: &str,
        attrs: &BTreeMap<String, AttributeValue>,
    ) -> Result<bool, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (_, _, _, reset_required) = self.manager_plan(&ctx, manager, attrs).await?;
            Ok(reset_required)
        })
        .await
    }

    /// Writes BMC attributes to apply immediately. Validates against the manager attribute registry
    /// (Dell: `ManagerAttributeRegistry`, else a built-in list of common iDRAC attributes), groups the
    /// writes per attribute resource and PATCHes each settings object with `If-Match` when it has an
    /// ETag. Values already current are not written.
    pub async fn set_manager_attributes(
        &self,
        manager: &str,
        attrs: &BTreeMap<String, AttributeValue>,
    ) -> Result<BiosApply, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (res, attrs, current, reset_required) = self.manager_plan(&ctx, manager, attrs).await?;
            let changed = changes(&current, &BTreeMap::new(), &attrs);
            if changed.is_empty() {
                return Ok(BiosApply { changed, reset_required: false, target: None });
            }
            // Group per resource that holds the attribute.
            let mut groups: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
            let mut missing = Vec::new();
            for (k, v) in &changed {
                match res.iter().find(|r| r.bios.attributes.contains_key(k)).or(if res.len() == 1 { res.first() } else { None }) {
                    Some(r) => {
                        let target = r.bios.settings_object().map(str::to_owned).unwrap_or_else(|| r.source.clone());
                        groups.entry(target).or_default().insert(k.clone(), v.to_json());
                    }
                    None => missing.push(AttributeError { name: k.clone(), reason: "not present in any attribute resource of the manager".into() }),
                }
            }
            if !missing.is_empty() {
                return Err(self.err(ErrorKind::InvalidAttributes(missing)));
            }
            let mut last = None;
            for (target, group) in groups {
                let etag = match self.get_with_etag::<Value>(&ctx, &target).await {
                    Ok((_, etag)) => etag,
                    Err(e) if e.status() == Some(404) => None,
                    Err(e) => return Err(e),
                };
                let body = json!({ "Attributes": group, "@Redfish.SettingsApplyTime": { "ApplyTime": "Immediate" } });
                let mut req = Req::new(Method::PATCH, &target).json(&body);
                if let Some(etag) = &etag {
                    req = req.header(IF_MATCH, etag);
                }
                self.execute(&ctx, req).await?;
                last = Some(target);
            }
            Ok(BiosApply { changed, reset_required, target: last })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dell_display_names_become_value_names() {
        let reg: AttributeRegistry = serde_json::from_value(json!({"RegistryEntries": {"Attributes": [
            {"AttributeName": "IPMILan.1.Enable", "Type": "Enumeration", "Readonly": false,
             "Value": [{"ValueName": "1", "ValueDisplayName": "Enabled"}, {"ValueName": "0", "ValueDisplayName": "Disabled"}]}
        ]}}))
        .unwrap();
        let attrs: BTreeMap<String, AttributeValue> = [(
            "IPMILan.1.Enable".to_owned(),
            AttributeValue::from("Disabled"),
        )]
        .into();
        let mapped = display_to_value_names(&reg, &attrs);
        assert_eq!(mapped["IPMILan.1.Enable"], AttributeValue::from("0"));
        assert!(validate_attributes(&reg, &mapped).is_ok());
        assert!(
            validate_attributes(
                &dell_common_registry(),
                &[(
                    "SNMP.1.AgentEnable".to_owned(),
                    AttributeValue::from("Enabled")
                )]
                .into()
            )
            .is_ok()
        );
    }
}
