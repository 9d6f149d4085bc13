//! Connected accounts. Token fields are sealed with [`TokenCipher`] (row id and field name as
//! associated data) before any query sees them; [`Account`] carries no token at all, so listing
//! or serializing accounts cannot leak one.

use chrono::{DateTime, Utc};
use psn_domain::{AccountId, Platform};
use serde::Serialize;

use crate::audit::audit;
use crate::crypto::{Secret, TokenCipher};
use crate::time::{from_ms, now_ms, to_ms};
use crate::{Hub, StoreError, on_db, random_id_bytes, write_tx};

/// Whether an account can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    NeedsReauth,
    Disconnected,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::NeedsReauth => "needs_reauth",
            AccountStatus::Disconnected => "disconnected",
        }
    }

    fn parse(s: &str) -> Result<AccountStatus, StoreError> {
        match s {
            "active" => Ok(AccountStatus::Active),
            "needs_reauth" => Ok(AccountStatus::NeedsReauth),
            "disconnected" => Ok(AccountStatus::Disconnected),
            other => Err(StoreError::Corrupt(format!(
                "unknown account status '{other}'"
            ))),
        }
    }
}

/// The tokens of an account, in the clear: only ever held in memory.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
}

/// An account to connect (or reconnect: the same platform, service and external id update the
/// existing row).
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub platform: Platform,
    pub handle: String,
    pub external_id: String,
    /// Bluesky PDS or Mastodon instance; empty for the platforms with one API.
    pub service_url: String,
    pub tokens: TokenSet,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

/// A connected account as everyone may see it: no token fields.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: AccountId,
    pub platform: Platform,
    pub handle: String,
    pub external_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_url: String,
    pub status: AccountStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_refresh_at: Option<DateTime<Utc>>,
    pub last_check_at: Option<DateTime<Utc>>,
    /// Why the last health check failed (cleared by the next successful one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check_error: Option<String>,
    /// What the platform allows this account (e.g. TikTok unaudited, LinkedIn organization
    /// access pending, X API tier): a JSON object, `{}` when nothing is known.
    pub platform_status: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    platform: String,
    handle: String,
    external_id: String,
    service_url: String,
    status: String,
    expires_at: Option<i64>,
    last_refresh_at: Option<i64>,
    last_check_at: Option<i64>,
    last_check_error: Option<String>,
    platform_status: String,
    created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "id, platform, handle, external_id, service_url, status, \
    expires_at, last_refresh_at, last_check_at, last_check_error, platform_status, created_at";

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(r: AccountRow) -> Result<Account, StoreError> {
        Ok(Account {
            id: r
                .id
                .parse()
                .map_err(|e: psn_domain::ids::BadId| StoreError::Corrupt(e.to_string()))?,
            platform: r
                .platform
                .parse()
                .map_err(|e: psn_domain::platform::UnknownPlatform| {
                    StoreError::Corrupt(e.to_string())
                })?,
            handle: r.handle,
            external_id: r.external_id,
            service_url: r.service_url,
            status: AccountStatus::parse(&r.status)?,
            expires_at: r.expires_at.map(from_ms),
            last_refresh_at: r.last_refresh_at.map(from_ms),
            last_check_at: r.last_check_at.map(from_ms),
            last_check_error: r.last_check_error,
            platform_status: serde_json::from_str(&r.platform_status)
                .unwrap_or_else(|_| serde_json::json!({})),
            created_at: from_ms(r.created_at),
        })
    }
}

impl Hub {
    /// Connects an account, or reconnects it when the same platform identity exists. A
    /// reconnect never replaces a stored refresh token with an empty one (Postiz #1884).
    /// Returns the account and whether it was newly created.
    pub async fn upsert_account(
        &self,
        new: &NewAccount,
        cipher: &TokenCipher,
    ) -> Result<(Account, bool), StoreError> {
        self.ensure_writable()?;
        if new.tokens.access_token.is_empty() {
            return Err(StoreError::Invalid("the access token is empty".to_string()));
        }
        let now = now_ms();
        let expires = new.expires_at.map(to_ms);
        let refresh = new.tokens.refresh_token.as_ref().filter(|t| !t.is_empty());
        let (id, created) = write_tx!(&self.backend, tx => {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM accounts WHERE created_by = $1 AND platform = $2 \
                 AND service_url = $3 AND external_id = $4",
            )
            .bind(&new.created_by)
            .bind(new.platform.as_str())
            .bind(&new.service_url)
            .bind(&new.external_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (id, created) = match existing {
                Some(id) => (id, false),
                None => (AccountId::from_random(random_id_bytes()).to_string(), true),
            };
            let access = cipher.seal(&new.tokens.access_token, &id, "access_token")?;
            let refresh = refresh.map(|r| cipher.seal(r, &id, "refresh_token")).transpose()?;
            if created {
                sqlx::query(
                    "INSERT INTO accounts (id, created_by, platform, handle, external_id, service_url, \
                     access_token_enc, refresh_token_enc, expires_at, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10)",
                )
                .bind(&id)
                .bind(&new.created_by)
                .bind(new.platform.as_str())
                .bind(&new.handle)
                .bind(&new.external_id)
                .bind(&new.service_url)
                .bind(&access)
                .bind(&refresh)
                .bind(expires)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            } else {
                // The refresh token column is only named when there is a new one: on company
                // hubs the runtime role may write tokens but never read them, and
                // `COALESCE($4, refresh_token_enc)` would read the stored one.
                let query = match &refresh {
                    Some(refresh) => sqlx::query(
                        "UPDATE accounts SET handle = $2, access_token_enc = $3, \
                         refresh_token_enc = $4, expires_at = $5, \
                         status = 'active', updated_at = $6 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(&new.handle)
                    .bind(&access)
                    .bind(refresh)
                    .bind(expires)
                    .bind(now),
                    None => sqlx::query(
                        "UPDATE accounts SET handle = $2, access_token_enc = $3, \
                         expires_at = $4, status = 'active', updated_at = $5 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(&new.handle)
                    .bind(&access)
                    .bind(expires)
                    .bind(now),
                };
                query
                .execute(&mut *tx)
                .await?;
            }
            let action = if created { "account.connect" } else { "account.reconnect" };
            audit(&mut *tx, &new.created_by, action, "account", &id,
                &serde_json::json!({"platform": new.platform, "handle": new.handle})).await?;
            tx.commit().await?;
            (id, created)
        });
        let account = self
            .account(&id.parse().map_err(|_| StoreError::Corrupt(id.clone()))?)
            .await?;
        Ok((account, created))
    }

    /// One account by id.
    pub async fn account(&self, id: &AccountId) -> Result<Account, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row: Option<AccountRow> = on_db!(&self.backend, db =>
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(db).await?);
        row.ok_or_else(|| StoreError::NotFound {
            what: "account",
            id: id.to_string(),
        })?
        .try_into()
    }

    /// Every account, by platform then handle.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY platform, handle, id");
        let rows: Vec<AccountRow> =
            on_db!(&self.backend, db => sqlx::query_as(&sql).fetch_all(db).await?);
        rows.into_iter().map(Account::try_from).collect()
    }

    /// The tokens of an account, decrypted. For the engine and connectors only.
    pub async fn account_tokens(
        &self,
        id: &AccountId,
        cipher: &TokenCipher,
    ) -> Result<TokenSet, StoreError> {
        type SealedTokens = (Option<Vec<u8>>, Option<Vec<u8>>);
        let row: Option<SealedTokens> = on_db!(&self.backend, db =>
            sqlx::query_as("SELECT access_token_enc, refresh_token_enc FROM accounts WHERE id = $1")
                .bind(id.as_str()).fetch_optional(db).await?);
        let (access, refresh) = row.ok_or_else(|| StoreError::NotFound {
            what: "account",
            id: id.to_string(),
        })?;
        let access = access.ok_or_else(|| {
            StoreError::Invalid(format!("account {id} is disconnected: it has no token"))
        })?;
        Ok(TokenSet {
            access_token: cipher.open(&access, id.as_str(), "access_token")?,
            refresh_token: refresh
                .map(|r| cipher.open(&r, id.as_str(), "refresh_token"))
                .transpose()?,
        })
    }

    /// Opens every stored token with `cipher`, to prove the key is the right one. Returns the
    /// number of accounts checked.
    pub async fn verify_cipher(&self, cipher: &TokenCipher) -> Result<usize, StoreError> {
        let rows: Vec<(String, Option<Vec<u8>>)> = on_db!(&self.backend, db =>
            sqlx::query_as("SELECT id, access_token_enc FROM accounts WHERE access_token_enc IS NOT NULL")
                .fetch_all(db).await?);
        for (id, sealed) in &rows {
            if let Some(sealed) = sealed {
                cipher.open(sealed, id, "access_token")?;
            }
        }
        Ok(rows.len())
    }

    /// Disconnects an account: its tokens are erased and it can no longer publish. Deliveries
    /// still waiting for it are cancelled when `cancel_pending` is set, otherwise the disconnect
    /// is refused while any exist.
    pub async fn disconnect_account(
        &self,
        id: &AccountId,
        actor: &str,
        cancel_pending: bool,
    ) -> Result<(Account, u64), StoreError> {
        self.ensure_writable()?;
        let now = now_ms();
        let cancelled = write_tx!(&self.backend, tx => {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM accounts WHERE id = $1")
                .bind(id.as_str()).fetch_optional(&mut *tx).await?;
            if status.is_none() {
                return Err(StoreError::NotFound { what: "account", id: id.to_string() });
            }
            let pending: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, post_id FROM deliveries WHERE account_id = $1 \
                 AND status IN ('held', 'scheduled', 'retry_wait', 'claimed', 'processing', 'unconfirmed')")
                .bind(id.as_str()).fetch_all(&mut *tx).await?;
            if !pending.is_empty() && !cancel_pending {
                return Err(StoreError::Conflict(format!(
                    "account {id} has {} delivery(ies) waiting to publish; cancel those posts first, \
                     or run `psn accounts disconnect {id} --cancel-pending`", pending.len())));
            }
            let mut cancelled = 0u64;
            for (delivery_id, post_id) in &pending {
                let n = sqlx::query(
                    "UPDATE deliveries SET status = 'cancelled', updated_at = $2 WHERE id = $1 \
                     AND status IN ('held', 'scheduled', 'retry_wait')")
                    .bind(delivery_id).bind(now).execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(StoreError::Conflict(format!(
                        "delivery {delivery_id} is being published right now; wait for it, then disconnect")));
                }
                cancelled += n;
                crate::posts::refresh_post_status!(&mut *tx, post_id, now);
            }
            sqlx::query(
                "UPDATE accounts SET status = 'disconnected', access_token_enc = NULL, \
                 refresh_token_enc = NULL, updated_at = $2 WHERE id = $1")
                .bind(id.as_str()).bind(now).execute(&mut *tx).await?;
            audit(&mut *tx, actor, "account.disconnect", "account", id.as_str(),
                &serde_json::json!({"cancelled_deliveries": cancelled})).await?;
            tx.commit().await?;
            cancelled
        });
        Ok((self.account(id).await?, cancelled))
    }
}
