//! BIOS settings: read current and pending values, validate writes against the attribute registry,
//! write pending values to apply on the next reset.

use std::collections::BTreeMap;

use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{Client, Ctx};
use crate::error::{AttributeError, Error, ErrorKind};
use crate::models::{
    AttributeRegistry, AttributeType, AttributeValue, Bios, ComputerSystem, RegistryAttribute,
    RegistryFile,
};

/// The result of a settings write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BiosApply {
    /// The attributes actually written (those already current or pending with the same value are left
    /// out; empty = nothing to do).
    pub changed: BTreeMap<String, AttributeValue>,
    /// Whether a reset is needed for them to take effect.
    pub reset_required: bool,
    /// Where they were written.
    pub target: Option<String>,
}

/// What [`Client::bios_snapshot`] returns.
#[derive(Debug, Clone)]
pub struct BiosSnapshot {
    /// The ComputerSystem (power state, BIOS version).
    pub system: ComputerSystem,
    /// The BIOS resource with the current attributes.
    pub bios: Bios,
    /// Values pending for the next reset that differ from the current ones.
    pub pending: BTreeMap<String, AttributeValue>,
}

/// A difference between a desired and the current value of one attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeDiff {
    /// Attribute name.
    pub name: String,
    /// Current value.
    pub current: Option<AttributeValue>,
    /// Pending value, if one is staged.
    pub pending: Option<AttributeValue>,
    /// Desired value.
    pub desired: AttributeValue,
}

fn validate_one(
    name: &str,
    value: &AttributeValue,
    entry: &RegistryAttribute,
) -> Result<(), String> {
    if entry.is_read_only() {
        return Err("read-only".into());
    }
    if entry.immutable == Some(true) {
        return Err("immutable".into());
    }
    if entry.hidden == Some(true) {
        return Err("hidden".into());
    }
    let Some(t) = &entry.attribute_type else {
        return Err("registry gives no type".into());
    };
    match t {
        AttributeType::Enumeration => {
            let Some(s) = value.as_str() else {
                return Err(format!(
                    "expected one of the enumeration values, got {value}"
                ));
            };
            let allowed: Vec<&str> = entry
                .value
                .iter()
                .filter_map(|v| v.value_name.as_deref())
                .collect();
            if !allowed.contains(&s) {
                return Err(format!("{s:?} is not one of [{}]", allowed.join(", ")));
            }
        }
        AttributeType::String | AttributeType::Password => {
            let Some(s) = value.as_str() else {
                return Err(format!("expected a string, got {value}"));
            };
            let len = s.chars().count() as u64;
            if let Some(max) = entry.max_length
                && len > max
            {
                return Err(format!("longer than MaxLength {max}"));
            }
            if let Some(min) = entry.min_length
                && len < min
            {
                return Err(format!("shorter than MinLength {min}"));
            }
        }
        AttributeType::Integer => {
            let i = match value {
                AttributeValue::Integer(i) => *i,
                AttributeValue::Number(n) if n.fract() == 0.0 => *n as i64,
                other => return Err(format!("expected an integer, got {other}")),
            };
            if let Some(lo) = entry.lower_bound
                && i < lo
            {
                return Err(format!("{i} is below LowerBound {lo}"));
            }
            if let Some(hi) = entry.upper_bound
                && i > hi
            {
                return Err(format!("{i} is above UpperBound {hi}"));
            }
            if let (Some(step), Some(lo)) = (entry.scalar_increment, entry.lower_bound)
                && step > 0
                && (i - lo) % step != 0
            {
                return Err(format!(
                    "{i} is not LowerBound {lo} plus a multiple of ScalarIncrement {step}"
                ));
            }
        }
        AttributeType::Boolean => {
            if !matches!(value, AttributeValue::Bool(_)) {
                return Err(format!("expected a boolean, got {value}"));
            }
        }
        AttributeType::Unknown(t) => return Err(format!("unsupported attribute type {t}")),
    }
    let _ = name;
    Ok(())
}

/// Validates attribute writes against a registry (pure). Returns whether a reset is required (an
/// attribute without `ResetRequired` counts as requiring one), or one error per invalid attribute.
pub fn validate_attributes(
    registry: &AttributeRegistry,
    attrs: &BTreeMap<String, AttributeValue>,
) -> Result<bool, Vec<AttributeError>> {
    let entries = registry.attributes();
    let mut errors = Vec::new();
    let mut reset = false;
    for (name, value) in attrs {
        match entries.get(name.as_str()) {
            None => errors.push(AttributeError {
                name: name.clone(),
                reason: "not in the attribute registry".into(),
            }),
            Some(entry) => match validate_one(name, value, entry) {
                Ok(()) => reset |= entry.reset_required.unwrap_or(true),
                Err(reason) => errors.push(AttributeError {
                    name: name.clone(),
                    reason,
                }),
            },
        }
    }
    if errors.is_empty() {
        Ok(reset)
    } else {
        Err(errors)
    }
}

/// Without a registry: each attribute must exist and keep the JSON type of its current value.
pub(crate) fn validate_against_current(
    current: &BTreeMap<String, AttributeValue>,
    attrs: &BTreeMap<String, AttributeValue>,
) -> Result<bool, Vec<AttributeError>> {
    let mut errors = Vec::new();
    for (name, value) in attrs {
        let Some(cur) = current.get(name) else {
            errors.push(AttributeError {
                name: name.clone(),
                reason: "no such attribute".into(),
            });
            continue;
        };
        let same_type = matches!(
            (cur, value),
            (AttributeValue::String(_), AttributeValue::String(_))
                | (AttributeValue::Bool(_), AttributeValue::Bool(_))
                | (
                    AttributeValue::Integer(_) | AttributeValue::Number(_),
                    AttributeValue::Integer(_) | AttributeValue::Number(_)
                )
                | (AttributeValue::Null, _)
        );
        if !same_type {
            errors.push(AttributeError {
                name: name.clone(),
                reason: format!("expected the type of the current value {cur}, got {value}"),
            });
        }
    }
    if errors.is_empty() {
        Ok(true)
    } else {
        Err(errors)
    }
}

/// Attributes that need writing: differs from the current value and is not already pending with the
/// desired value, or is pending with another value.
pub(crate) fn changes(
    current: &BTreeMap<String, AttributeValue>,
    pending: &BTreeMap<String, AttributeValue>,
    desired: &BTreeMap<String, AttributeValue>,
) -> BTreeMap<String, AttributeValue> {
    desired
        .iter()
        .filter(|(k, v)| match pending.get(*k) {
            Some(p) => !p.loosely_eq(v),
            None => !current.get(*k).is_some_and(|c| c.loosely_eq(v)),
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Client {
    /// Reads the BIOS resource (current attribute values) of a system.
    pub async fn bios(&self, system: &str) -> Result<Bios, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.bios_ctx(&ctx, system)).await
    }

    pub(crate) async fn bios_ctx(&self, ctx: &Ctx, system: &str) -> Result<Bios, Error> {
        let sys: ComputerSystem = self.get_ctx(ctx, system).await?;
        let Some(link) = sys.bios else {
            return Err(self.err(ErrorKind::NotSupported(format!(
                "{system} has no Bios resource"
            ))));
        };
        self.get_ctx(ctx, &link.odata_id).await
    }

    /// Values staged in the BIOS settings object that differ from the current ones (applied on the next
    /// reset).
    pub async fn bios_pending(
        &self,
        system: &str,
    ) -> Result<BTreeMap<String, AttributeValue>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let bios = self.bios_ctx(&ctx, system).await?;
            let pending = self.pending_of(&ctx, &bios).await?;
            Ok(pending
                .into_iter()
                .filter(|(k, v)| !bios.attributes.get(k).is_some_and(|c| c.loosely_eq(v)))
                .collect())
        })
        .await
    }

    async fn pending_of(
        &self,
        ctx: &Ctx,
        bios: &Bios,
    ) -> Result<BTreeMap<String, AttributeValue>, Error> {
        match bios.settings_object() {
            Some(p) => Ok(super::optional(self.get_ctx::<Bios>(ctx, p).await)?
                .map(|b| b.attributes)
                .unwrap_or_default()),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Finds and reads an attribute registry: the `Registries` member named `preferred` (or whose id
    /// contains `kind`), then its location.
    pub(crate) async fn attribute_registry(
        &self,
        ctx: &Ctx,
        preferred: Option<&str>,
        kind: &str,
    ) -> Result<Option<AttributeRegistry>, Error> {
        let root = self.service_root_ctx(ctx).await?;
        let Some(registries) = &root.registries else {
            return Ok(None);
        };
        let links = match super::optional(self.collection_links(ctx, &registries.odata_id).await)? {
            Some(l) => l,
            None => return Ok(None),
        };
        let last = |p: &str| p.rsplit('/').next().unwrap_or_default().to_owned();
        let pick = preferred
            .and_then(|name| links.iter().find(|l| last(l) == name))
            .or_else(|| links.iter().find(|l| last(l).contains(kind)));
        let Some(file_path) = pick else {
            return Ok(None);
        };
        let Some(file) = super::optional(self.get_ctx::<RegistryFile>(ctx, file_path).await)?
        else {
            return Ok(None);
        };
        let Some(uri) = file.uri() else {
            return Ok(None);
        };
        super::optional(self.get_ctx::<AttributeRegistry>(ctx, uri).await)
    }

    /// The system, its BIOS attributes and the values pending for the next reset (only those
    /// that differ from the current ones), in three requests: for a controller that reads the
    /// whole picture on every reconcile.
    pub async fn bios_snapshot(&self, system: &str) -> Result<BiosSnapshot, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let sys: ComputerSystem = self.get_ctx(&ctx, system).await?;
            let Some(link) = &sys.bios else {
                return Err(self.err(ErrorKind::NotSupported(format!(
                    "{system} has no Bios resource"
                ))));
            };
            let bios: Bios = self.get_ctx(&ctx, &link.odata_id).await?;
            let pending = self
                .pending_of(&ctx, &bios)
                .await?
                .into_iter()
                .filter(|(k, v)| !bios.attributes.get(k).is_some_and(|c| c.loosely_eq(v)))
                .collect();
            Ok(BiosSnapshot {
                system: sys,
                bios,
                pending,
            })
        })
        .await
    }

    /// The attribute registry `bios` names (`None` when the BMC publishes none).
    pub async fn registry_of(&self, bios: &Bios) -> Result<Option<AttributeRegistry>, Error> {
        let ctx = self.ctx();
        self.within(
            &ctx,
            self.attribute_registry(
                &ctx,
                bios.attribute_registry.as_deref(),
                "BiosAttributeRegistry",
            ),
        )
        .await
    }

    /// Reads the BIOS attribute registry of a system.
    pub async fn bios_registry(&self, system: &str) -> Result<AttributeRegistry, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let bios = self.bios_ctx(&ctx, system).await?;
            self.attribute_registry(
                &ctx,
                bios.attribute_registry.as_deref(),
                "BiosAttributeRegistry",
            )
            .await?
            .ok_or_else(|| self.err(ErrorKind::NotSupported("no BIOS attribute registry".into())))
        })
        .await
    }

    /// Compares desired BIOS values with the current and pending ones (read-only).
    pub async fn bios_diff(
        &self,
        system: &str,
        desired: &BTreeMap<String, AttributeValue>,
    ) -> Result<Vec<AttributeDiff>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let bios = self.bios_ctx(&ctx, system).await?;
            let pending = self.pending_of(&ctx, &bios).await?;
            Ok(changes(&bios.attributes, &pending, desired)
                .into_iter()
                .map(|(name, desired)| AttributeDiff {
                    current: bios.attributes.get(&name).cloned(),
                    pending: pending.get(&name).cloned(),
                    name,
                    desired,
                })
                .collect())
        })
        .await
    }

    /// Stages BIOS attribute values to apply on the next reset. Validates every attribute against the
    /// attribute registry first (`Rejected` with one message per invalid attribute); attributes already
    /// current or pending with the same value are not written again.
    pub async fn set_bios_attributes(
        &self,
        system: &str,
        attrs: &BTreeMap<String, AttributeValue>,
    ) -> Result<BiosApply, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let bios = self.bios_ctx(&ctx, system).await?;
            let registry = self
                .attribute_registry(&ctx, bios.attribute_registry.as_deref(), "BiosAttributeRegistry")
                .await?;
            let reset_required = match &registry {
                Some(r) => validate_attributes(r, attrs),
                None => validate_against_current(&bios.attributes, attrs),
            }
            .map_err(|errs| self.err(ErrorKind::InvalidAttributes(errs)))?;
            let pending = self.pending_of(&ctx, &bios).await?;
            let changed = changes(&bios.attributes, &pending, attrs);
            if changed.is_empty() {
                return Ok(BiosApply { changed, reset_required: false, target: None });
            }
            let target = bios
                .settings_object()
                .map(str::to_owned)
                .or_else(|| bios.odata_id.clone())
                .unwrap_or_else(|| format!("{system}/Bios"));
            let mut body = json!({ "Attributes": changed.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<String, Value>>() });
            let on_reset = bios.settings.as_ref().is_some_and(|s| s.supported_apply_times.iter().any(|t| t == "OnReset"));
            if on_reset {
                body["@Redfish.SettingsApplyTime"] = json!({ "ApplyTime": "OnReset" });
            }
            self.send_json(&ctx, Method::PATCH, &target, &body).await?;
            Ok(BiosApply { changed, reset_required, target: Some(target) })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> AttributeRegistry {
        serde_json::from_value(json!({"RegistryEntries": {"Attributes": [
            {"AttributeName": "BootMode", "Type": "Enumeration", "ReadOnly": false, "ResetRequired": true,
             "Value": [{"ValueName": "Uefi"}, {"ValueName": "Bios"}]},
            {"AttributeName": "SysName", "Type": "String", "MaxLength": 4, "ReadOnly": false, "ResetRequired": false},
            {"AttributeName": "Count", "Type": "Integer", "LowerBound": -2, "UpperBound": 10, "ScalarIncrement": 2, "ReadOnly": false, "ResetRequired": false},
            {"AttributeName": "Flag", "Type": "Boolean", "ReadOnly": false, "ResetRequired": false},
            {"AttributeName": "Model", "Type": "String", "ReadOnly": true},
            {"AttributeName": "Fixed", "Type": "String", "Immutable": true, "ReadOnly": false},
            {"AttributeName": "DellRo", "Type": "String", "Readonly": true}
        ]}}))
        .unwrap()
    }

    fn attrs(v: Value) -> BTreeMap<String, AttributeValue> {
        serde_json::from_value::<BTreeMap<String, AttributeValue>>(v).unwrap()
    }

    #[test]
    fn valid_writes_pass_and_report_reset() {
        assert_eq!(
            validate_attributes(&registry(), &attrs(json!({"BootMode": "Uefi"}))),
            Ok(true)
        );
        assert_eq!(
            validate_attributes(
                &registry(),
                &attrs(json!({"SysName": "ab", "Count": 4, "Flag": true}))
            ),
            Ok(false)
        );
    }

    #[test]
    fn each_invalid_attribute_gets_its_own_message() {
        let errs = validate_attributes(
            &registry(),
            &attrs(json!({"BootMode": "Legacy", "SysName": "toolong", "Count": 3, "Flag": "yes", "Model": "x",
                          "Fixed": "x", "DellRo": "x", "Nope": 1, "Count2": 1})),
        )
        .unwrap_err();
        let by: BTreeMap<_, _> = errs
            .iter()
            .map(|e| (e.name.as_str(), e.reason.as_str()))
            .collect();
        assert!(by["BootMode"].contains("Uefi"), "{by:?}");
        assert!(by["SysName"].contains("MaxLength"));
        assert!(by["Count"].contains("ScalarIncrement"));
        assert!(by["Flag"].contains("boolean"));
        assert_eq!(by["Model"], "read-only");
        assert_eq!(by["Fixed"], "immutable");
        assert_eq!(by["DellRo"], "read-only");
        assert!(by["Nope"].contains("not in the attribute registry"));
        assert_eq!(errs.len(), 9);
        let errs = validate_attributes(&registry(), &attrs(json!({"Count": 12}))).unwrap_err();
        assert!(errs[0].reason.contains("UpperBound"));
        let errs = validate_attributes(&registry(), &attrs(json!({"Count": -4}))).unwrap_err();
        assert!(errs[0].reason.contains("LowerBound"));
    }

    #[test]
    fn only_real_changes_are_written() {
        let current = attrs(json!({"A": "x", "B": 1, "C": true}));
        let pending = attrs(json!({"B": 2}));
        let desired = attrs(json!({"A": "x", "B": 2, "C": false, "D": "new"}));
        let c = changes(&current, &pending, &desired);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["C", "D"]);
        let desired = attrs(json!({"B": 1}));
        assert_eq!(
            changes(&current, &pending, &desired)
                .keys()
                .collect::<Vec<_>>(),
            ["B"],
            "overrides a different pending value"
        );
    }

    #[test]
    fn without_registry_types_follow_current_values() {
        let current = attrs(json!({"A": "x", "B": 1}));
        assert!(validate_against_current(&current, &attrs(json!({"A": "y", "B": 3}))).is_ok());
        let errs = validate_against_current(&current, &attrs(json!({"A": 1, "Z": 1}))).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
