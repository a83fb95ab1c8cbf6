//! `process_calendar_webhook`: what a notification sets off. Channel → user, an
//! incremental sync from the stored sync token (a full one when there is none, or when the
//! provider answers that it expired), events upserted and deleted in the store together
//! with the new sync token, then the user's cache entries dropped.
//!
//! Duplicates and reordering do no harm, on three levels: the webhook enqueues with an
//! idempotency key per (channel, message number), so a notification delivered twice runs
//! once; a message number not above the channel's last processed one is ignored; and the
//! store never replaces an event with an older version of it. Provider and database
//! failures are retried (3 times, exponential backoff with jitter: the
//! [`TaskSpec`] defaults), then the message goes to the dead letters.

use std::time::Duration;

use async_trait::async_trait;
use celeriac_tasks::{Task, TaskContext, TaskError, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::cache::CalendarCache;
use crate::provider::{ProviderError, SharedProvider};
use crate::store::{Applied, CalendarEvent, SharedCalendarStore, SyncChanges};

/// Queue of the calendar's tasks (SQS queue `<stack>-calendar`).
pub const CALENDAR_QUEUE: &str = "calendar";

/// Name, queue and retry policy of `process_calendar_webhook`, for producers.
pub const PROCESS_CALENDAR_WEBHOOK: TaskSpec = TaskSpec::new("process_calendar_webhook")
    .queue(CALENDAR_QUEUE)
    .time_limit(Duration::from_secs(120));

/// More pages than this in one sync is a provider bug (a page token loop), not a calendar.
const MAX_PAGES: usize = 10_000;

/// Arguments: the channel, and the notification's message number (none for the initial
/// sync the setup endpoint enqueues).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookArgs {
    /// `X-Goog-Channel-ID`.
    pub channel_id: String,
    /// `X-Goog-Message-Number`.
    #[serde(default)]
    pub message_number: Option<i64>,
    /// `X-Goog-Resource-State` (`exists`, `not_exists`), for the record.
    #[serde(default)]
    pub resource_state: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// `synced`, or `ignored` with a reason.
    pub status: String,
    /// Why nothing was synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whose calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Whether it was a full sync (first sync, or the token had expired).
    pub full_sync: bool,
    /// Events written.
    pub upserted: usize,
    /// Events removed.
    pub deleted: usize,
}

impl SyncReport {
    fn ignored(reason: &str, user_id: Option<String>) -> Self {
        Self {
            status: "ignored".into(),
            reason: Some(reason.into()),
            user_id,
            full_sync: false,
            upserted: 0,
            deleted: 0,
        }
    }
}

/// The task.
#[derive(Debug, Clone)]
pub struct ProcessCalendarWebhook {
    store: SharedCalendarStore,
    provider: SharedProvider,
    cache: CalendarCache,
}

impl ProcessCalendarWebhook {
    /// Syncs into `store` from `provider`, invalidating `cache`.
    pub fn new(store: SharedCalendarStore, provider: SharedProvider, cache: CalendarCache) -> Self {
        Self {
            store,
            provider,
            cache,
        }
    }
}

/// Every page of one `events.list` run, and the sync token at its end.
async fn list_all(
    provider: &SharedProvider,
    user_id: &str,
    calendar_id: &str,
    sync_token: Option<&str>,
) -> Result<(Vec<CalendarEvent>, Option<String>), ProviderError> {
    let mut items = Vec::new();
    let mut page: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let answer = provider
            .list_events(user_id, calendar_id, sync_token, page.as_deref())
            .await?;
        items.extend(answer.items);
        match answer.next_page_token {
            Some(next) => page = Some(next),
            None => return Ok((items, answer.next_sync_token)),
        }
    }
    Err(ProviderError::Rejected(format!(
        "events.list did not end after {MAX_PAGES} pages"
    )))
}

/// Syncs one user's calendar into the store: incrementally from the stored token, fully
/// when there is none or the provider says it expired. Returns whether it was full and
/// what changed.
pub async fn sync_calendar(
    store: &SharedCalendarStore,
    provider: &SharedProvider,
    user_id: &str,
    calendar_id: &str,
    notification: Option<(String, i64)>,
) -> Result<(bool, Applied), TaskError> {
    let state = store.sync_state(user_id).await?;
    let mut token = state
        .filter(|s| s.calendar_id == calendar_id)
        .and_then(|s| s.sync_token);
    let (items, next_token) = loop {
        match list_all(provider, user_id, calendar_id, token.as_deref()).await {
            Ok(listed) => break listed,
            Err(ProviderError::SyncTokenExpired) if token.is_some() => {
                tracing::info!(user_id, calendar_id, "sync token expired; full resync");
                token = None;
            }
            Err(err) => {
                tracing::warn!(user_id, calendar_id, error = %err, retryable = err.is_retryable(), "calendar provider failed during sync");
                return Err(err.into());
            }
        }
    };
    let full = token.is_none();
    let (cancelled, upserts): (Vec<CalendarEvent>, Vec<CalendarEvent>) =
        items.into_iter().partition(CalendarEvent::is_cancelled);
    let changes = SyncChanges {
        user_id: user_id.to_owned(),
        calendar_id: calendar_id.to_owned(),
        full,
        upserts,
        deletions: cancelled.into_iter().map(|e| e.id).collect(),
        sync_token: next_token,
        notification,
    };
    let applied = store.apply_sync(&changes).await?;
    Ok((full, applied))
}

#[async_trait]
impl Task for ProcessCalendarWebhook {
    type Args = WebhookArgs;
    type Output = SyncReport;

    fn spec(&self) -> TaskSpec {
        PROCESS_CALENDAR_WEBHOOK
    }

    async fn run(&self, args: WebhookArgs, ctx: &TaskContext) -> Result<SyncReport, TaskError> {
        let Some(channel) = self.store.channel(&args.channel_id).await? else {
            // Unsubscribed after the notification was accepted: nothing to sync for.
            tracing::info!(channel_id = %args.channel_id, "channel no longer exists; notification ignored");
            return Ok(SyncReport::ignored("unknown channel", None));
        };
        if let (Some(number), Some(last)) = (args.message_number, channel.last_message_number)
            && number <= last
        {
            tracing::info!(channel_id = %channel.id, message_number = number, last_processed = last, "notification already covered by a later one");
            return Ok(SyncReport::ignored(
                "message number already processed",
                Some(channel.user_id),
            ));
        }
        let notification = args.message_number.map(|n| (channel.id.clone(), n));
        let (full, applied) = sync_calendar(
            &self.store,
            &self.provider,
            &channel.user_id,
            &channel.calendar_id,
            notification,
        )
        .await?;
        let changed = applied.upserted.iter().chain(&applied.deleted);
        if !self.cache.invalidate_user(&channel.user_id, changed).await {
            // The entries then live out their TTL; the sync itself is done and kept.
            tracing::warn!(user_id = %channel.user_id, "some calendar cache entries could not be invalidated");
        }
        tracing::info!(
            user_id = %channel.user_id,
            channel_id = %channel.id,
            message_number = ?args.message_number,
            full_sync = full,
            upserted = applied.upserted.len(),
            deleted = applied.deleted.len(),
            attempt = ctx.retries + 1,
            "calendar synced"
        );
        Ok(SyncReport {
            status: "synced".into(),
            reason: None,
            user_id: Some(channel.user_id),
            full_sync: full,
            upserted: applied.upserted.len(),
            deleted: applied.deleted.len(),
        })
    }
}
