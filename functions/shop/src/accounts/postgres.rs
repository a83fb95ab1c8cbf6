//! The accounts port on PostgreSQL (tables from `shared/db/migrations/0002_shop_accounts.sql`).
//!
//! Redeeming a token and rotating a refresh token are each one transaction whose first
//! statement locks the token's row, so concurrent uses serialize: one wins, the others see
//! it used. Issuing a link locks the user's row first, so of two links issued at once one
//! replaces the other.

use async_trait::async_trait;
use celeriac_db::PgPool;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::secrets::TokenDigest;
use super::store::{AccountError, AccountStore, NewUser, Refresh, TokenKind, User};

/// Accounts in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgAccounts {
    pool: PgPool,
}

impl PgAccounts {
    /// Accounts in `pool`'s database (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn failed(err: sqlx::Error) -> AccountError {
    if celeriac_db::is_unique_violation(&err) {
        AccountError::EmailTaken
    } else if celeriac_db::is_transient(&err) {
        AccountError::Unavailable(err.to_string())
    } else {
        AccountError::Rejected(err.to_string())
    }
}

/// The columns [`user`] reads, for `concat!` (sqlx takes only static SQL).
macro_rules! user_columns {
    () => {
        "id, email, name, confirmed_at, created_at"
    };
}

fn user(row: &PgRow) -> Result<User, AccountError> {
    let read = || -> Result<User, sqlx::Error> {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            confirmed_at: row.try_get("confirmed_at")?,
            created_at: row.try_get("created_at")?,
        })
    };
    read().map_err(failed)
}

#[async_trait]
impl AccountStore for PgAccounts {
    async fn create_user(&self, new: NewUser) -> Result<User, AccountError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        // A pending user does not own the address: the new registration replaces it (its
        // tokens go with it, ON DELETE CASCADE). A confirmed one makes the insert fail.
        sqlx::query("DELETE FROM shop_users WHERE email = $1 AND confirmed_at IS NULL")
            .bind(&new.email)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        let row = sqlx::query(concat!(
            "INSERT INTO shop_users (id, email, name, password_hash, pending_until) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            user_columns!()
        ))
        .bind(Uuid::new_v4())
        .bind(&new.email)
        .bind(&new.name)
        .bind(&new.password_hash)
        .bind(new.pending_until)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        user(&row)
    }

    async fn delete_unconfirmed_user(&self, id: Uuid) -> Result<bool, AccountError> {
        let deleted = sqlx::query("DELETE FROM shop_users WHERE id = $1 AND confirmed_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, AccountError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM shop_users WHERE email = $1 \
             AND (confirmed_at IS NOT NULL OR pending_until > now())"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.map(|row| Ok((user(&row)?, row.try_get("password_hash").map_err(failed)?)))
            .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM shop_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.as_ref().map(user).transpose()
    }

    async fn put_email_token(
        &self,
        digest: &TokenDigest,
        user_id: Uuid,
        kind: TokenKind,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AccountError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let user = if kind == TokenKind::Registration {
            sqlx::query(
                "UPDATE shop_users SET pending_until = $2 WHERE id = $1 \
                 AND confirmed_at IS NULL AND pending_until > now() RETURNING id",
            )
            .bind(user_id)
            .bind(expires_at)
            .fetch_optional(&mut *tx)
            .await
        } else {
            sqlx::query("SELECT id FROM shop_users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
        }
        .map_err(failed)?;
        if user.is_none() {
            return Ok(false);
        }
        let name = kind.name();
        let new_email = match kind {
            TokenKind::EmailChange { new_email } => Some(new_email),
            TokenKind::Registration | TokenKind::PasswordReset => None,
        };
        sqlx::query(
            "DELETE FROM shop_email_tokens WHERE user_id = $1 AND kind = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        sqlx::query(
            "INSERT INTO shop_email_tokens (token_hash, user_id, kind, new_email, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest.0.as_slice())
        .bind(user_id)
        .bind(name)
        .bind(new_email)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn redeem_email_token(&self, digest: &TokenDigest) -> Result<Option<User>, AccountError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let token = sqlx::query(
            "SELECT t.user_id, t.kind, t.new_email FROM shop_email_tokens t \
             JOIN shop_users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now() \
             AND t.kind IN ('registration', 'email_change') \
             AND (u.confirmed_at IS NOT NULL OR u.pending_until > now()) FOR UPDATE OF t",
        )
        .bind(digest.0.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        let Some(token) = token else {
            return Ok(None);
        };
        let user_id: Uuid = token.try_get("user_id").map_err(failed)?;
        let kind: String = token.try_get("kind").map_err(failed)?;
        let applied = if kind == "email_change" {
            let new_email: Option<String> = token.try_get("new_email").map_err(failed)?;
            // The mailbox's owner confirmed: a pending registration of the address yields.
            sqlx::query("DELETE FROM shop_users WHERE email = $1 AND confirmed_at IS NULL")
                .bind(&new_email)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            sqlx::query(concat!(
                "UPDATE shop_users SET email = $2 WHERE id = $1 RETURNING ",
                user_columns!()
            ))
            .bind(user_id)
            .bind(new_email)
            .fetch_optional(&mut *tx)
            .await
        } else {
            sqlx::query(concat!(
                "UPDATE shop_users SET confirmed_at = COALESCE(confirmed_at, now()) \
                 WHERE id = $1 RETURNING ",
                user_columns!()
            ))
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
        }
        .map_err(failed)?;
        let Some(row) = applied else {
            return Ok(None);
        };
        sqlx::query("UPDATE shop_email_tokens SET used_at = now() WHERE token_hash = $1")
            .bind(digest.0.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        user(&row).map(Some)
    }

    async fn reset_password(
        &self,
        digest: &TokenDigest,
        password_hash: String,
    ) -> Result<Option<User>, AccountError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let token = sqlx::query(
            "UPDATE shop_email_tokens SET used_at = now() \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() \
             AND kind = 'password_reset' RETURNING user_id",
        )
        .bind(digest.0.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        let Some(token) = token else {
            return Ok(None);
        };
        let user_id: Uuid = token.try_get("user_id").map_err(failed)?;
        let row = sqlx::query(concat!(
            "UPDATE shop_users SET password_hash = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(user_id)
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE shop_refresh_tokens SET revoked_at = COALESCE(revoked_at, now()) \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        user(&row).map(Some)
    }

    async fn put_refresh_token(
        &self,
        digest: &TokenDigest,
        family: Uuid,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        sqlx::query(
            "INSERT INTO shop_refresh_tokens (token_hash, family_id, user_id, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest.0.as_slice())
        .bind(family)
        .bind(user_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenDigest,
        successor: &TokenDigest,
        expires_at: DateTime<Utc>,
    ) -> Result<Refresh, AccountError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let current = sqlx::query(
            "UPDATE shop_refresh_tokens SET used_at = now() \
             WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL \
             AND expires_at > now() RETURNING family_id, user_id",
        )
        .bind(presented.0.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        if let Some(row) = current {
            let family: Uuid = row.try_get("family_id").map_err(failed)?;
            let user_id: Uuid = row.try_get("user_id").map_err(failed)?;
            sqlx::query(
                "INSERT INTO shop_refresh_tokens (token_hash, family_id, user_id, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(successor.0.as_slice())
            .bind(family)
            .bind(user_id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            return Ok(Refresh::Rotated { user_id });
        }
        let reused = sqlx::query(
            "SELECT family_id, user_id FROM shop_refresh_tokens \
             WHERE token_hash = $1 AND used_at IS NOT NULL AND revoked_at IS NULL \
             AND expires_at > now()",
        )
        .bind(presented.0.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        let Some(row) = reused else {
            return Ok(Refresh::Invalid);
        };
        let family: Uuid = row.try_get("family_id").map_err(failed)?;
        let user_id: Uuid = row.try_get("user_id").map_err(failed)?;
        sqlx::query(
            "UPDATE shop_refresh_tokens SET revoked_at = now() \
             WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(Refresh::Reused { user_id })
    }

    async fn revoke_refresh_family(&self, presented: &TokenDigest) -> Result<bool, AccountError> {
        let revoked = sqlx::query(
            "UPDATE shop_refresh_tokens SET revoked_at = COALESCE(revoked_at, now()) \
             WHERE family_id = (SELECT family_id FROM shop_refresh_tokens WHERE token_hash = $1)",
        )
        .bind(presented.0.as_slice())
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(revoked.rows_affected() > 0)
    }
}
