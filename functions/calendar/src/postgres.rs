//! The calendar store on PostgreSQL (tables from
//! `shared/db/migrations/0004_calendar.sql` and `0007_calendar_credentials.sql`).
//!
//! A sync is applied in one transaction: events, sync token and the channel's message
//! number change together or not at all, so a sync that fails half-way is simply run
//! again. Upserts carry the provider's `updated` time and replace a row only when they are
//! not older, so two syncs finishing out of order cannot roll an event back.

use std::collections::HashMap;

use async_trait::async_trait;
use celeriac_db::PgPool;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::keyring::Sealed;
use crate::secrets::TokenDigest;
use crate::store::{
    Applied, CalendarEvent, CalendarStore, Channel, StoreError, StoredCredential, SyncChanges,
    SyncState,
};

/// The calendar store in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgCalendarStore {
    pool: PgPool,
}

impl PgCalendarStore {
    /// The store in `pool`'s database (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn failed(err: sqlx::Error) -> StoreError {
    if celeriac_db::is_unique_violation(&err) {
        StoreError::DuplicateChannel
    } else if celeriac_db::is_transient(&err) {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Rejected(err.to_string())
    }
}

/// The columns [`channel`] reads, for `concat!` (sqlx takes only static SQL).
macro_rules! channel_columns {
    () => {
        "id, user_id, calendar_id, resource_id, token_hash, address, expires_at, created_at, \
         last_message_number, last_notification_at"
    };
}

fn channel(row: &PgRow) -> Result<Channel, StoreError> {
    let read = || -> Result<Channel, sqlx::Error> {
        let hash: Vec<u8> = row.try_get("token_hash")?;
        let token_digest = <[u8; 32]>::try_from(hash.as_slice())
            .map(TokenDigest)
            .map_err(|_| sqlx::Error::Decode("token_hash is not 32 bytes".into()))?;
        Ok(Channel {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            calendar_id: row.try_get("calendar_id")?,
            resource_id: row.try_get("resource_id")?,
            token_digest,
            address: row.try_get("address")?,
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
            last_message_number: row.try_get("last_message_number")?,
            last_notification_at: row.try_get("last_notification_at")?,
        })
    };
    read().map_err(failed)
}

fn credential(row: &PgRow) -> Result<StoredCredential, StoreError> {
    let read = || -> Result<StoredCredential, sqlx::Error> {
        Ok(StoredCredential {
            user_id: row.try_get("user_id")?,
            sealed: Sealed {
                key_id: row.try_get("key_id")?,
                bytes: row.try_get("sealed_token")?,
            },
            scope: row.try_get("scope")?,
            connected_at: row.try_get("connected_at")?,
            sealed_at: row.try_get("sealed_at")?,
        })
    };
    read().map_err(failed)
}

fn event(row: &PgRow) -> Result<CalendarEvent, StoreError> {
    let body: serde_json::Value = row.try_get("body").map_err(failed)?;
    serde_json::from_value(body)
        .map_err(|e| StoreError::Rejected(format!("stored event does not decode: {e}")))
}

#[async_trait]
impl CalendarStore for PgCalendarStore {
    async fn put_channel(&self, c: &Channel) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO calendar_channels (id, user_id, calendar_id, resource_id, token_hash, \
             address, expires_at, created_at, last_message_number, last_notification_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(&c.user_id)
        .bind(&c.calendar_id)
        .bind(&c.resource_id)
        .bind(c.token_digest.0.as_slice())
        .bind(&c.address)
        .bind(c.expires_at)
        .bind(c.created_at)
        .bind(c.last_message_number)
        .bind(c.last_notification_at)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn channel(&self, id: &str) -> Result<Option<Channel>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM calendar_channels WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.as_ref().map(channel).transpose()
    }

    async fn channels_of_user(&self, user_id: &str) -> Result<Vec<Channel>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM calendar_channels WHERE user_id = $1 ORDER BY expires_at, id COLLATE \"C\""
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        rows.iter().map(channel).collect()
    }

    async fn remove_channel(&self, id: &str) -> Result<Option<Channel>, StoreError> {
        let row = sqlx::query(concat!(
            "DELETE FROM calendar_channels WHERE id = $1 RETURNING ",
            channel_columns!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.as_ref().map(channel).transpose()
    }

    async fn channels_expiring_before(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM calendar_channels WHERE expires_at < $1 \
             ORDER BY expires_at, id COLLATE \"C\" LIMIT $2"
        ))
        .bind(at)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        rows.iter().map(channel).collect()
    }

    async fn sync_state(&self, user_id: &str) -> Result<Option<SyncState>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, calendar_id, sync_token, last_synced_at, last_full_sync_at \
             FROM calendar_sync_state WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.map(|row| {
            Ok(SyncState {
                user_id: row.try_get("user_id")?,
                calendar_id: row.try_get("calendar_id")?,
                sync_token: row.try_get("sync_token")?,
                last_synced_at: row.try_get("last_synced_at")?,
                last_full_sync_at: row.try_get("last_full_sync_at")?,
            })
        })
        .transpose()
        .map_err(failed)
    }

    async fn apply_sync(&self, changes: &SyncChanges) -> Result<Applied, StoreError> {
        // One row per id (the latest version): a statement may not touch a row twice.
        let mut latest: HashMap<&str, &CalendarEvent> = HashMap::new();
        for event in &changes.upserts {
            match latest.get(event.id.as_str()) {
                Some(kept) if !newer_or_same(event, kept) => {}
                _ => {
                    latest.insert(&event.id, event);
                }
            }
        }
        let mut ids = Vec::with_capacity(latest.len());
        let mut starts = Vec::with_capacity(latest.len());
        let mut updated = Vec::with_capacity(latest.len());
        let mut bodies = Vec::with_capacity(latest.len());
        for event in latest.values() {
            ids.push(event.id.clone());
            starts.push(event.starts_at());
            updated.push(event.updated);
            bodies.push(
                serde_json::to_value(event)
                    .map_err(|e| StoreError::Rejected(format!("event does not encode: {e}")))?,
            );
        }

        let mut tx = self.pool.begin().await.map_err(failed)?;
        let mut applied = Applied::default();
        if changes.full {
            let gone = sqlx::query(
                "DELETE FROM calendar_events WHERE user_id = $1 AND NOT (id = ANY($2)) \
                 RETURNING id",
            )
            .bind(&changes.user_id)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
            for row in gone {
                applied.deleted.push(row.try_get("id").map_err(failed)?);
            }
        }
        if !ids.is_empty() {
            let written = sqlx::query(
                "INSERT INTO calendar_events (user_id, id, calendar_id, starts_at, updated, body) \
                 SELECT $1, u.id, $2, u.starts_at, u.updated, u.body \
                 FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[], $6::jsonb[]) \
                   AS u(id, starts_at, updated, body) \
                 ON CONFLICT (user_id, id) DO UPDATE SET calendar_id = EXCLUDED.calendar_id, \
                   starts_at = EXCLUDED.starts_at, updated = EXCLUDED.updated, body = EXCLUDED.body \
                 WHERE calendar_events.updated IS NULL OR EXCLUDED.updated IS NULL \
                   OR calendar_events.updated <= EXCLUDED.updated \
                 RETURNING id",
            )
            .bind(&changes.user_id)
            .bind(&changes.calendar_id)
            .bind(&ids)
            .bind(&starts)
            .bind(&updated)
            .bind(&bodies)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
            for row in written {
                applied.upserted.push(row.try_get("id").map_err(failed)?);
            }
        }
        if !changes.deletions.is_empty() {
            let deleted = sqlx::query(
                "DELETE FROM calendar_events WHERE user_id = $1 AND id = ANY($2) RETURNING id",
            )
            .bind(&changes.user_id)
            .bind(&changes.deletions)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
            for row in deleted {
                applied.deleted.push(row.try_get("id").map_err(failed)?);
            }
        }
        sqlx::query(
            "INSERT INTO calendar_sync_state \
               (user_id, calendar_id, sync_token, last_synced_at, last_full_sync_at) \
             VALUES ($1, $2, $3, now(), CASE WHEN $4 THEN now() END) \
             ON CONFLICT (user_id) DO UPDATE SET calendar_id = EXCLUDED.calendar_id, \
               sync_token = EXCLUDED.sync_token, last_synced_at = now(), \
               last_full_sync_at = CASE WHEN $4 THEN now() \
                 ELSE calendar_sync_state.last_full_sync_at END",
        )
        .bind(&changes.user_id)
        .bind(&changes.calendar_id)
        .bind(&changes.sync_token)
        .bind(changes.full)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        if let Some((channel_id, number)) = &changes.notification {
            sqlx::query(
                "UPDATE calendar_channels \
                 SET last_message_number = GREATEST(COALESCE(last_message_number, $2), $2), \
                   last_notification_at = now() \
                 WHERE id = $1",
            )
            .bind(channel_id)
            .bind(number)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        applied.upserted.sort_unstable();
        applied.deleted.sort_unstable();
        Ok(applied)
    }

    async fn events(&self, user_id: &str) -> Result<Vec<CalendarEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM calendar_events WHERE user_id = $1 \
             ORDER BY starts_at NULLS LAST, id COLLATE \"C\"",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        rows.iter().map(event).collect()
    }

    async fn event(
        &self,
        user_id: &str,
        event_id: &str,
    ) -> Result<Option<CalendarEvent>, StoreError> {
        let row = sqlx::query("SELECT body FROM calendar_events WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        row.as_ref().map(event).transpose()
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO calendar_credentials \
               (user_id, key_id, sealed_token, scope, connected_at, sealed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id) DO UPDATE SET key_id = EXCLUDED.key_id, \
               sealed_token = EXCLUDED.sealed_token, scope = EXCLUDED.scope, \
               connected_at = EXCLUDED.connected_at, sealed_at = EXCLUDED.sealed_at",
        )
        .bind(&c.user_id)
        .bind(&c.sealed.key_id)
        .bind(c.sealed.bytes.as_slice())
        .bind(&c.scope)
        .bind(c.connected_at)
        .bind(c.sealed_at)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn credential(&self, user_id: &str) -> Result<Option<StoredCredential>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, key_id, sealed_token, scope, connected_at, sealed_at \
             FROM calendar_credentials WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.as_ref().map(credential).transpose()
    }

    async fn reseal_credential(
        &self,
        user_id: &str,
        expected: &Sealed,
        resealed: &Sealed,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE calendar_credentials SET key_id = $4, sealed_token = $5, sealed_at = now() \
             WHERE user_id = $1 AND key_id = $2 AND sealed_token = $3",
        )
        .bind(user_id)
        .bind(&expected.key_id)
        .bind(expected.bytes.as_slice())
        .bind(&resealed.key_id)
        .bind(resealed.bytes.as_slice())
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn forget_user(&self, user_id: &str) -> Result<Option<StoredCredential>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        for statement in [
            "DELETE FROM calendar_channels WHERE user_id = $1",
            "DELETE FROM calendar_sync_state WHERE user_id = $1",
            "DELETE FROM calendar_events WHERE user_id = $1",
        ] {
            sqlx::query(statement)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        let removed = sqlx::query(
            "DELETE FROM calendar_credentials WHERE user_id = $1 \
             RETURNING user_id, key_id, sealed_token, scope, connected_at, sealed_at",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        let removed = removed.as_ref().map(credential).transpose()?;
        tx.commit().await.map_err(failed)?;
        Ok(removed)
    }
}

fn newer_or_same(event: &CalendarEvent, kept: &CalendarEvent) -> bool {
    match (event.updated, kept.updated) {
        (Some(a), Some(b)) => a >= b,
        _ => true,
    }
}
