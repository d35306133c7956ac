//! Operations: one call each for what the controllers do with a BMC.

pub mod accounts;
pub mod bios;
pub mod boot;
pub mod discovery;
pub mod events;
pub mod inventory;
pub mod manager;
pub mod manager_attrs;
pub mod power;
pub mod storage;
pub mod update;
pub mod vmedia;

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use crate::client::{Client, Ctx};
use crate::error::{Error, ErrorClass};
use crate::models::{ComputerSystem, Manager, ServiceRoot};
use crate::vendor::{self, VendorInfo};

/// True when a JSON object is only a reference (`{"@odata.id": ...}`), i.e. was not expanded.
pub(crate) fn is_stub(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.contains_key("@odata.id") && m.keys().all(|k| k.starts_with("@odata."))
        }
        _ => false,
    }
}

fn odata_id(v: &Value) -> Option<&str> {
    v.get("@odata.id").and_then(Value::as_str)
}

/// `?$expand=.($levels=n)` appended to a path.
pub(crate) fn with_expand(path: &str, levels: u32) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}$expand=.($levels={levels})")
}

impl Client {
    /// The `$levels` usable for `$expand=.` on this BMC, if expansion is enabled and advertised.
    pub(crate) fn expand_levels(&self, root: &ServiceRoot) -> Option<u32> {
        if !self.inner.opts.use_expand {
            return None;
        }
        root.expand_levels()
    }

    /// Fetches many resources concurrently (bounded by the per-BMC limit), preserving order. Resources
    /// answering 404 are skipped.
    pub(crate) async fn fetch_all(
        &self,
        ctx: &Ctx,
        paths: Vec<String>,
    ) -> Result<Vec<Value>, Error> {
        let n = self.inner.opts.max_in_flight.max(1);
        let results: Vec<Option<Value>> = futures::stream::iter(paths)
            .map(|p| async move {
                match self.get_ctx::<Value>(ctx, &p).await {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.status() == Some(404) => {
                        tracing::debug!(path = %p, "linked resource missing, skipped");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .buffered(n)
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    /// Replaces reference stubs by the resources they point to (expanded items are kept as they are).
    pub(crate) async fn resolve_items(
        &self,
        ctx: &Ctx,
        items: Vec<Value>,
    ) -> Result<Vec<Value>, Error> {
        let mut out: Vec<Option<Value>> = Vec::with_capacity(items.len());
        let mut missing = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if is_stub(&item) {
                match odata_id(&item) {
                    Some(id) if !id.contains('#') => missing.push((i, id.to_owned())),
                    _ => {}
                }
                out.push(None);
            } else {
                out.push(Some(item));
            }
        }
        if !missing.is_empty() {
            let paths: Vec<String> = missing.iter().map(|(_, p)| p.clone()).collect();
            let n = self.inner.opts.max_in_flight.max(1);
            let fetched: Vec<Option<Value>> = futures::stream::iter(paths)
                .map(|p| async move {
                    match self.get_ctx::<Value>(ctx, &p).await {
                        Ok(v) => Ok(Some(v)),
                        Err(e) if e.status() == Some(404) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffered(n)
                .try_collect()
                .await?;
            for ((i, _), v) in missing.into_iter().zip(fetched) {
                out[i] = v;
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Member links of a collection, following `Members@odata.nextLink`.
    pub(crate) async fn collection_links(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<Vec<String>, Error> {
        let mut links = Vec::new();
        let mut next = Some(path.to_owned());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            let v: Value = self.get_ctx(ctx, &p).await?;
            for m in v
                .get("Members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = odata_id(m) {
                    links.push(id.to_owned());
                }
            }
            next = v
                .get("Members@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if pages > 100 {
                break;
            }
        }
        Ok(links)
    }

    /// Members of a collection as JSON, using `$expand` when `levels` is given and fetching whatever was
    /// not expanded.
    pub(crate) async fn collection_values(
        &self,
        ctx: &Ctx,
        path: &str,
        levels: Option<u32>,
    ) -> Result<Vec<Value>, Error> {
        if let Some(l) = levels {
            // Some BMCs advertise $expand but reject it on some collections: read without it then.
            match self.collection_pages(ctx, &with_expand(path, l)).await {
                Err(e) if matches!(e.status(), Some(400 | 405 | 412 | 501)) => {
                    tracing::debug!(path, error = %e, "$expand refused, reading members one by one");
                }
                other => return self.resolve_items(ctx, other?).await,
            }
        }
        let items = self.collection_pages(ctx, path).await?;
        self.resolve_items(ctx, items).await
    }

    /// Raw members of every page of a collection (following `Members@odata.nextLink`).
    async fn collection_pages(&self, ctx: &Ctx, first: &str) -> Result<Vec<Value>, Error> {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            let mut v: Value = self.get_ctx(ctx, &p).await?;
            if let Some(Value::Array(members)) = v.get_mut("Members").map(Value::take) {
                items.extend(members);
            }
            next = v
                .get("Members@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if pages > 100 {
                break;
            }
        }
        Ok(items)
    }

    /// Resolves a navigation property of an (possibly expanded) resource into the resources it names:
    /// an array of links/objects, an expanded collection, or a link to a collection.
    pub(crate) async fn resolve_nav(
        &self,
        ctx: &Ctx,
        v: Option<&Value>,
        levels: Option<u32>,
    ) -> Result<Vec<Value>, Error> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => self.resolve_items(ctx, items.clone()).await,
            Some(obj @ Value::Object(m)) => {
                if m.contains_key("Members") && !m.contains_key("Members@odata.nextLink") {
                    let members = m
                        .get("Members")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    self.resolve_items(ctx, members).await
                } else if let Some(id) = odata_id(obj) {
                    self.collection_values(ctx, id, levels.map(|_| 1)).await
                } else {
                    Ok(Vec::new())
                }
            }
            Some(_) => Ok(Vec::new()),
        }
    }

    /// Vendor information (cached per client once detected): from the service root, and when that is
    /// not conclusive, from the first system and manager.
    pub async fn vendor(&self) -> Result<VendorInfo, Error> {
        let ctx = self.ctx();
        self.within(&ctx, self.vendor_ctx(&ctx, None)).await
    }

    /// Vendor detection within an operation; `system` is used when the caller already has it.
    pub(crate) async fn vendor_ctx(
        &self,
        ctx: &Ctx,
        system: Option<&ComputerSystem>,
    ) -> Result<VendorInfo, Error> {
        if let Some(v) = self.inner.vendor.get() {
            return Ok(v.clone());
        }
        let root = self.service_root_ctx(ctx).await?;
        let info = vendor::detect(Some(&root), None, system);
        if info.vendor != vendor::Vendor::Generic || system.is_some() {
            let _ = self.inner.vendor.set(info.clone());
            return Ok(info);
        }
        // Root not conclusive: look at the first system and manager.
        let mut sys = None;
        if let Some(systems) = &root.systems
            && let Some(first) = self
                .collection_links(ctx, &systems.odata_id)
                .await?
                .into_iter()
                .next()
        {
            sys = Some(self.get_ctx::<ComputerSystem>(ctx, &first).await?);
        }
        let mut mgr = None;
        if let Some(managers) = &root.managers
            && let Some(first) = self
                .collection_links(ctx, &managers.odata_id)
                .await?
                .into_iter()
                .next()
        {
            mgr = self.get_ctx::<Manager>(ctx, &first).await.ok();
        }
        let info = vendor::detect(Some(&root), mgr.as_ref(), sys.as_ref());
        let _ = self.inner.vendor.set(info.clone());
        Ok(info)
    }
}

/// Keeps only errors that should fail an operation; "not there" becomes `None`.
pub(crate) fn optional<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.class() == ErrorClass::NotSupported => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs() {
        assert!(is_stub(&serde_json::json!({"@odata.id": "/a"})));
        assert!(!is_stub(&serde_json::json!({"@odata.id": "/a", "Id": "a"})));
        assert!(!is_stub(&serde_json::json!({"Id": "a"})));
        assert!(!is_stub(&serde_json::json!("x")));
        assert_eq!(
            with_expand("/r/v1/Systems", 2),
            "/r/v1/Systems?$expand=.($levels=2)"
        );
    }
}
