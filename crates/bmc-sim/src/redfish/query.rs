//! OData query parameters: `$expand`, `$select`, `only`, `$top`/`$skip`, as far as the service
//! root advertises them in `ProtocolFeaturesSupported`.

use std::time::Instant;

use serde_json::Value;

use crate::bmc::Bmc;
use crate::json::percent_decode;
use crate::state::BmcMachine;

use super::render::render;

/// Which references `$expand` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExpandKind {
    /// `*`: all.
    All,
    /// `~`: only those under `Links`.
    Links,
    /// `.`: only those not under `Links`.
    NoLinks,
}

/// Parsed query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Query {
    pub expand: Option<(ExpandKind, u32)>,
    pub select: Option<Vec<String>>,
    pub only: bool,
    pub top: Option<usize>,
    pub skip: Option<usize>,
}

/// Why a query is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QueryError {
    /// `501`: the service does not support it.
    NotSupported(String),
    /// `400`: malformed value.
    Malformed(String),
}

/// Parses the query string against what the template advertises.
pub(crate) fn parse(bmc: &Bmc, raw: Option<&str>) -> Result<Query, QueryError> {
    let mut q = Query::default();
    let Some(raw) = raw else { return Ok(q) };
    let tpl = &bmc.template;
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k);
        let v = percent_decode(v);
        match k.as_ref() {
            "$expand" => {
                let caps = tpl
                    .expand
                    .ok_or_else(|| QueryError::NotSupported("$expand".into()))?;
                let first = v.chars().next().map(char::len_utf8).unwrap_or(0);
                let (sym, rest) = v.split_at(first);
                let kind = match sym {
                    "*" if caps.all => ExpandKind::All,
                    "~" if caps.links => ExpandKind::Links,
                    "." if caps.no_links => ExpandKind::NoLinks,
                    "*" | "~" | "." => {
                        return Err(QueryError::NotSupported(format!("$expand={v}")));
                    }
                    _ => return Err(QueryError::Malformed(format!("$expand={v}"))),
                };
                let levels = if rest.is_empty() {
                    1
                } else {
                    let inner = rest
                        .strip_prefix("($levels=")
                        .and_then(|r| r.strip_suffix(')'))
                        .ok_or_else(|| QueryError::Malformed(format!("$expand={v}")))?;
                    let n: u32 = inner
                        .parse()
                        .map_err(|_| QueryError::Malformed(format!("$expand={v}")))?;
                    if !caps.levels && n != 1 {
                        return Err(QueryError::NotSupported("$levels".into()));
                    }
                    if n == 0 || n > caps.max_levels {
                        return Err(QueryError::Malformed(format!(
                            "$levels={n} (MaxLevels is {})",
                            caps.max_levels
                        )));
                    }
                    n
                };
                q.expand = Some((kind, levels));
            }
            "$select" => {
                if !tpl.select_query {
                    return Err(QueryError::NotSupported("$select".into()));
                }
                q.select = Some(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            "only" => {
                if !tpl.only_query {
                    return Err(QueryError::NotSupported("only".into()));
                }
                q.only = true;
            }
            "$top" | "$skip" => {
                if !tpl.top_skip_query {
                    return Err(QueryError::NotSupported(k.into_owned()));
                }
                let n: usize = v
                    .parse()
                    .map_err(|_| QueryError::Malformed(format!("{k}={v}")))?;
                if k == "$top" {
                    q.top = Some(n)
                } else {
                    q.skip = Some(n)
                }
            }
            other if other.starts_with('$') || other == "excerpt" => {
                return Err(QueryError::NotSupported(other.to_string()));
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Largest number of resources one `$expand` may pull in.
const EXPAND_BUDGET: usize = 5000;

/// Replaces references by the resources they point to.
pub(crate) fn expand(
    bmc: &Bmc,
    m: &BmcMachine,
    v: &mut Value,
    kind: ExpandKind,
    levels: u32,
    now: Instant,
) {
    let mut budget = EXPAND_BUDGET;
    walk(bmc, m, v, kind, levels, false, now, &mut budget);
}

fn is_reference(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    o.get("@odata.id")?.as_str().filter(|p| !p.contains('#'))
}

#[allow(clippy::too_many_arguments)]
fn walk(
    bmc: &Bmc,
    m: &BmcMachine,
    v: &mut Value,
    kind: ExpandKind,
    levels: u32,
    in_links: bool,
    now: Instant,
    budget: &mut usize,
) {
    let Some(o) = v.as_object_mut() else { return };
    for (k, child) in o.iter_mut() {
        if k.starts_with('@') || k.contains('@') {
            continue;
        }
        let links = in_links || k == "Links";
        visit(bmc, m, child, kind, levels, links, now, budget);
    }
}

#[allow(clippy::too_many_arguments)]
fn visit(
    bmc: &Bmc,
    m: &BmcMachine,
    child: &mut Value,
    kind: ExpandKind,
    levels: u32,
    links: bool,
    now: Instant,
    budget: &mut usize,
) {
    let wanted = match kind {
        ExpandKind::All => true,
        ExpandKind::Links => links,
        ExpandKind::NoLinks => !links,
    };
    if let Some(path) = is_reference(child) {
        if !wanted || *budget == 0 {
            return;
        }
        let path = crate::json::canon(path).into_owned();
        if let Some(mut sub) = render(bmc, m, &path, now).and_then(|r| r.into_value()) {
            *budget -= 1;
            if levels > 1 {
                walk(bmc, m, &mut sub, kind, levels - 1, false, now, budget);
            }
            *child = sub;
        }
        return;
    }
    match child {
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| visit(bmc, m, x, kind, levels, links, now, budget)),
        Value::Object(_) => walk(bmc, m, child, kind, levels, links, now, budget),
        _ => {}
    }
}

/// Keeps only the selected top-level properties (and `@odata.*`).
pub(crate) fn select(v: &mut Value, names: &[String]) {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| {
            k.starts_with("@odata.")
                || names
                    .iter()
                    .any(|n| n == k || n.split('/').next() == Some(k))
        });
    }
}

/// Applies `$skip`/`$top` to a collection's members.
pub(crate) fn page(v: &mut Value, path: &str, top: Option<usize>, skip: Option<usize>) {
    let Some(members) = v.get_mut("Members").and_then(Value::as_array_mut) else {
        return;
    };
    let total = members.len();
    let skip = skip.unwrap_or(0).min(total);
    let end = top
        .map(|t| skip.saturating_add(t).min(total))
        .unwrap_or(total);
    let page: Vec<Value> = members[skip..end].to_vec();
    *members = page;
    if end < total
        && let Some(o) = v.as_object_mut()
    {
        let n = top.unwrap_or(total);
        o.insert(
            "Members@odata.nextLink".into(),
            Value::from(format!("{path}?$skip={end}&$top={n}")),
        );
    }
}
