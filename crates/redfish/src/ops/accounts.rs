//! BMC user accounts: create, update, delete, with the fixed-slot fallback of iDRAC.

use std::fmt;

use http::Method;
use serde_json::{Value, json};

use crate::client::{Client, Ctx, Req};
use crate::error::{Error, ErrorKind};
use crate::models::{AccountService, ManagerAccount};
use crate::secret::Secret;
use crate::vendor::{QuirkId, has_quirk};

/// A new account.
#[derive(Clone)]
pub struct NewAccount {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Role (Administrator, Operator, ReadOnly, ...).
    pub role: String,
    /// Enabled.
    pub enabled: bool,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Changes to an existing account (unset fields are left alone).
#[derive(Clone, Default)]
pub struct AccountUpdate {
    /// New password.
    pub password: Option<Secret>,
    /// New role.
    pub role: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

impl fmt::Debug for AccountUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountUpdate")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("role", &self.role)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Client {
    async fn account_collection(&self, ctx: &Ctx) -> Result<(String, Vec<ManagerAccount>), Error> {
        let root = self.service_root_ctx(ctx).await?;
        let Some(link) = &root.account_service else {
            return Err(self.err(ErrorKind::NotSupported(
                "service has no AccountService".into(),
            )));
        };
        let svc: AccountService = self.get_ctx(ctx, &link.odata_id).await?;
        let accounts = svc
            .accounts
            .map(|l| l.odata_id)
            .unwrap_or_else(|| format!("{}/Accounts", link.odata_id.trim_end_matches('/')));
        let values = self
            .collection_values(ctx, &accounts, self.expand_levels(&root).map(|_| 1))
            .await?;
        Ok((
            accounts,
            values
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        ))
    }

    /// Lists the BMC accounts (free iDRAC slots have an empty user name).
    pub async fn accounts(&self) -> Result<Vec<ManagerAccount>, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async { Ok(self.account_collection(&ctx).await?.1) })
            .await
    }

    async fn fill_slot(
        &self,
        ctx: &Ctx,
        accounts: &[ManagerAccount],
        new: &NewAccount,
    ) -> Result<String, Error> {
        let free = accounts.iter().find(|a| {
            a.user_name.as_deref().unwrap_or("").is_empty() && a.id.as_deref() != Some("1")
        });
        let Some(slot) = free.and_then(|a| a.odata_id.clone()) else {
            return Err(self.err(ErrorKind::NotSupported(format!(
                "no free account slot (all {} slots used)",
                accounts.len()
            ))));
        };
        let body = json!({"UserName": new.username, "Password": new.password.expose(), "RoleId": new.role, "Enabled": new.enabled});
        self.execute(
            ctx,
            Req::new(Method::PATCH, &slot)
                .json(&body)
                .secret(new.password.expose()),
        )
        .await?;
        Ok(slot)
    }

    /// Creates an account, or updates it (password, role, enabled) when the user name exists. Returns
    /// the account's `@odata.id`. iDRAC: fills the first free slot instead of POSTing (quirk
    /// `AccountSlots`); other BMCs fall back to that when POST answers 405.
    pub async fn create_account(&self, new: &NewAccount) -> Result<String, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (collection, accounts) = self.account_collection(&ctx).await?;
            if let Some(existing) = accounts.iter().find(|a| a.user_name.as_deref() == Some(new.username.as_str())) {
                let path = existing.odata_id.clone().unwrap_or_default();
                let upd = AccountUpdate { password: Some(new.password.clone()), role: Some(new.role.clone()), enabled: Some(new.enabled) };
                self.patch_account(&ctx, &path, &upd).await?;
                return Ok(path);
            }
            let vendor = self.vendor_ctx(&ctx, None).await?;
            if has_quirk(&vendor, QuirkId::AccountSlots) {
                return self.fill_slot(&ctx, &accounts, new).await;
            }
            let body = json!({"UserName": new.username, "Password": new.password.expose(), "RoleId": new.role, "Enabled": new.enabled});
            match self.execute(&ctx, Req::new(Method::POST, &collection).json(&body).secret(new.password.expose())).await {
                Ok(resp) => {
                    let v: Value = resp.json_value();
                    resp.location()
                        .map(crate::client::path_of)
                        .or_else(|| v.get("@odata.id").and_then(Value::as_str).map(str::to_owned))
                        .ok_or_else(|| self.err(ErrorKind::Unexpected("account created without Location".into())))
                }
                Err(e) if e.status() == Some(405) => self.fill_slot(&ctx, &accounts, new).await,
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn patch_account(&self, ctx: &Ctx, path: &str, upd: &AccountUpdate) -> Result<(), Error> {
        let vendor = self.vendor_ctx(ctx, None).await?;
        if upd.password.is_none() && has_quirk(&vendor, QuirkId::AccountPatchNeedsPassword) {
            return Err(self.err(ErrorKind::InvalidInput(
                "this BMC (iDRAC) requires the password in every account update".into(),
            )));
        }
        let mut body = serde_json::Map::new();
        if let Some(p) = &upd.password {
            body.insert("Password".into(), json!(p.expose()));
        }
        if let Some(r) = &upd.role {
            body.insert("RoleId".into(), json!(r));
        }
        if let Some(e) = upd.enabled {
            body.insert("Enabled".into(), json!(e));
        }
        if body.is_empty() {
            return Ok(());
        }
        let mut req = Req::new(Method::PATCH, path).json(&Value::Object(body));
        if let Some(p) = &upd.password {
            req = req.secret(p.expose());
        }
        self.execute(ctx, req).await?;
        Ok(())
    }

    /// Updates an existing account (`NotSupported`/not found when there is none).
    pub async fn update_account(
        &self,
        username: &str,
        update: &AccountUpdate,
    ) -> Result<(), Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (_, accounts) = self.account_collection(&ctx).await?;
            let Some(path) = accounts
                .iter()
                .find(|a| a.user_name.as_deref() == Some(username))
                .and_then(|a| a.odata_id.clone())
            else {
                return Err(self.err(ErrorKind::NotFound(format!("account {username}"))));
            };
            self.patch_account(&ctx, &path, update).await
        })
        .await
    }

    /// Changes an account's password.
    pub async fn update_account_password(
        &self,
        username: &str,
        password: Secret,
    ) -> Result<(), Error> {
        self.update_account(
            username,
            &AccountUpdate {
                password: Some(password),
                ..AccountUpdate::default()
            },
        )
        .await
    }

    /// Deletes an account (returns `false` when there was none). iDRAC: blanks the slot with PATCH
    /// `{UserName: "", Enabled: false}`; others fall back to that when DELETE answers 405.
    pub async fn delete_account(&self, username: &str) -> Result<bool, Error> {
        let ctx = self.ctx();
        self.within(&ctx, async {
            let (_, accounts) = self.account_collection(&ctx).await?;
            let Some(path) = accounts
                .iter()
                .find(|a| a.user_name.as_deref() == Some(username))
                .and_then(|a| a.odata_id.clone())
            else {
                return Ok(false);
            };
            let blank = json!({"UserName": "", "Enabled": false});
            let vendor = self.vendor_ctx(&ctx, None).await?;
            if has_quirk(&vendor, QuirkId::AccountSlots) {
                self.send_json(&ctx, Method::PATCH, &path, &blank).await?;
                return Ok(true);
            }
            match self.execute(&ctx, Req::new(Method::DELETE, &path)).await {
                Ok(_) => Ok(true),
                Err(e) if e.status() == Some(405) => {
                    self.send_json(&ctx, Method::PATCH, &path, &blank).await?;
                    Ok(true)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }
}
