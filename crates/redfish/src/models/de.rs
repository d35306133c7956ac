//! Lenient deserializers: vendors send numbers as strings, `null` where a value is optional, odd
//! types where the schema says otherwise. A field that cannot be read becomes `None` (or empty)
//! instead of failing the whole resource.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

/// Any optional value: missing, `null` or unreadable becomes `None`.
pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| T::deserialize(v).ok()))
}

/// A list: `null` or a non-list becomes empty; unreadable elements are skipped.
pub fn vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| T::deserialize(i).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// A string; numbers and booleans are turned into their text.
pub fn opt_string<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

/// A string where the empty string means "none" (e.g. an empty virtual media slot's `Image: ""`).
pub fn opt_nonempty_string<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(opt_string(d)?.filter(|s| !s.trim().is_empty()))
}

/// Strings in a list, numbers accepted.
pub fn vec_string<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                u64::from_str_radix(hex, 16).ok().map(|n| n as f64)
            } else {
                t.parse::<f64>().ok()
            }
        }
        _ => None,
    }
}

/// A non-negative integer; numeric strings accepted; fractions truncated; negatives rejected.
pub fn opt_u64<'de, D>(d: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| match &v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.is_finite())
                .map(|f| f as u64)
        }),
        other => number_of(other)
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(|f| f as u64),
    }))
}

/// A non-negative 32-bit integer; numeric strings accepted.
pub fn opt_u32<'de, D>(d: D) -> Result<Option<u32>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(opt_u64(d)?.and_then(|n| u32::try_from(n).ok()))
}

/// A signed integer; numeric strings accepted (Dell registries send negative bounds).
pub fn opt_i64<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| match &v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        other => number_of(other).filter(|f| f.is_finite()).map(|f| f as i64),
    }))
}

/// A floating-point number; numeric strings accepted.
pub fn opt_f64<'de, D>(d: D) -> Result<Option<f64>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(number_of).filter(|f| f.is_finite()))
}

/// A boolean; `"true"`/`"false"`/`"yes"`/`"no"` strings and 0/1 accepted.
pub fn opt_bool<'de, D>(d: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "enabled" | "1" => Some(true),
            "false" | "no" | "disabled" | "0" => Some(false),
            _ => None,
        },
        Some(Value::Number(n)) => n.as_u64().map(|n| n != 0),
        _ => None,
    })
}

/// An `@odata.id` that may be sent as an object `{"@odata.id": ...}` or, by some BMCs, a plain string.
pub fn opt_link<'de, D>(d: D) -> Result<Option<super::Link>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::String(s)) if !s.is_empty() => Some(super::Link { odata_id: s }),
        Some(v @ Value::Object(_)) => super::Link::deserialize(v)
            .ok()
            .filter(|l| !l.odata_id.is_empty()),
        _ => None,
    })
}

/// A list of links, tolerating `null`, plain strings and expanded members.
pub fn vec_link<'de, D>(d: D) -> Result<Vec<super::Link>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::String(s) if !s.is_empty() => Some(super::Link { odata_id: s }),
                v @ Value::Object(_) => super::Link::deserialize(v)
                    .ok()
                    .filter(|l| !l.odata_id.is_empty()),
                _ => None,
            })
            .collect(),
        Some(Value::Object(o)) => {
            // A collection expanded in place of a link list.
            o.get("Members")
                .map(|m| vec_link(m.clone()).unwrap_or_default())
                .unwrap_or_default()
        }
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Default, Debug)]
    #[serde(default)]
    struct T {
        #[serde(deserialize_with = "super::opt_u64")]
        a: Option<u64>,
        #[serde(deserialize_with = "super::opt_f64")]
        b: Option<f64>,
        #[serde(deserialize_with = "super::opt_string")]
        c: Option<String>,
        #[serde(deserialize_with = "super::opt_bool")]
        d: Option<bool>,
        #[serde(deserialize_with = "super::vec_string")]
        e: Vec<String>,
        #[serde(deserialize_with = "super::opt_i64")]
        f: Option<i64>,
    }

    #[test]
    fn lenient_values() {
        let t: T =
            serde_json::from_str(r#"{"a":"42","b":"1.5","c":7,"d":"true","e":null,"f":"-3"}"#)
                .unwrap();
        assert_eq!(
            (t.a, t.b, t.c.as_deref(), t.d, t.e.len(), t.f),
            (Some(42), Some(1.5), Some("7"), Some(true), 0, Some(-3))
        );
        let t: T = serde_json::from_str(
            r#"{"a":null,"b":{},"c":null,"d":"maybe","e":["x",1,null],"f":1e300}"#,
        )
        .unwrap();
        assert_eq!((t.a, t.b, t.c, t.d), (None, None, None, None));
        assert_eq!(t.e, ["x", "1"]);
        let t: T = serde_json::from_str(r#"{"a":-1,"b":"NaN","c":true,"f":"0x10"}"#).unwrap();
        assert_eq!(
            (t.a, t.b, t.c.as_deref(), t.f),
            (None, None, Some("true"), Some(16))
        );
    }
}
