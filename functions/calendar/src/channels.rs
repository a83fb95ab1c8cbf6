//! Opening and closing watch channels, shared by the setup and unsubscribe endpoints and
//! by the daily renewal (`renew_calendar_channels`), which opens a successor for each
//! channel about to expire (Google cannot extend a channel) and closes the old one.

use std::time::Duration;

use async_trait::async_trait;
use celeriac_tasks::{Task, TaskContext, TaskError, TaskSpec};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::provider::{ProviderError, SharedProvider, WatchRequest};
use crate::secrets::ChannelToken;
use crate::store::{Channel, SharedCalendarStore, StoreError};
use crate::sync::CALENDAR_QUEUE;

/// Channels renewed per run at most; the next day's run takes the rest.
const RENEW_BATCH: usize = 500;

/// Why a channel could not be opened or closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelError {
    /// The provider failed or refused.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ChannelError> for celeriac_platform::Error {
    fn from(err: ChannelError) -> Self {
        match err {
            ChannelError::Provider(e) => e.into(),
            ChannelError::Store(e) => e.into(),
        }
    }
}

impl From<ChannelError> for TaskError {
    fn from(err: ChannelError) -> Self {
        match err {
            ChannelError::Provider(e) => e.into(),
            ChannelError::Store(e) => e.into(),
        }
    }
}

/// Watches `calendar_id` of `user_id`, notifications to `address`, and stores the channel.
/// If the store fails, the provider's channel is stopped again, so no channel posts
/// notifications nobody can verify.
pub async fn open_channel(
    store: &SharedCalendarStore,
    provider: &SharedProvider,
    user_id: &str,
    calendar_id: &str,
    address: &str,
    ttl: Duration,
) -> Result<Channel, ChannelError> {
    let id = Uuid::new_v4().to_string();
    let token = ChannelToken::generate();
    let watched = provider
        .watch(&WatchRequest {
            user_id,
            calendar_id,
            channel_id: &id,
            token: token.reveal(),
            address,
            ttl,
        })
        .await?;
    let channel = Channel {
        id,
        user_id: user_id.to_owned(),
        calendar_id: calendar_id.to_owned(),
        resource_id: watched.resource_id,
        token_digest: token.digest(),
        address: address.to_owned(),
        expires_at: watched.expires_at,
        created_at: Utc::now(),
        last_message_number: None,
        last_notification_at: None,
    };
    if let Err(err) = store.put_channel(&channel).await {
        if let Err(stop) = provider
            .stop(&channel.user_id, &channel.id, &channel.resource_id)
            .await
        {
            tracing::warn!(channel_id = %channel.id, error = %stop, "channel not stored and not stopped; it expires on its own");
        }
        return Err(err.into());
    }
    tracing::info!(channel_id = %channel.id, user_id, calendar_id, expires_at = %channel.expires_at, "calendar channel opened");
    Ok(channel)
}

/// Stops `channel` at the provider (already gone there counts as stopped) and removes it;
/// returns whether it was still stored.
pub async fn close_channel(
    store: &SharedCalendarStore,
    provider: &SharedProvider,
    channel: &Channel,
) -> Result<bool, ChannelError> {
    match provider
        .stop(&channel.user_id, &channel.id, &channel.resource_id)
        .await
    {
        Ok(()) | Err(ProviderError::NotFound(_)) => {}
        Err(err) => return Err(err.into()),
    }
    let removed = store.remove_channel(&channel.id).await?.is_some();
    tracing::info!(channel_id = %channel.id, user_id = %channel.user_id, "calendar channel closed");
    Ok(removed)
}

/// `renew_calendar_channels`: daily, replaces every channel that expires within a day.
#[derive(Debug, Clone)]
pub struct RenewCalendarChannels {
    store: SharedCalendarStore,
    provider: SharedProvider,
    channel_ttl: Duration,
}

impl RenewCalendarChannels {
    /// Renews channels of `store` at `provider`, each successor asked to live `channel_ttl`.
    pub fn new(
        store: SharedCalendarStore,
        provider: SharedProvider,
        channel_ttl: Duration,
    ) -> Self {
        Self {
            store,
            provider,
            channel_ttl,
        }
    }
}

/// Arguments: none needed; `within_hours` overrides the one-day horizon for one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewArgs {
    /// Renew channels expiring within this many hours (24).
    #[serde(default)]
    pub within_hours: Option<u32>,
}

/// What a renewal run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewReport {
    /// Channels replaced by a successor.
    pub renewed: usize,
    /// Channels whose calendar no longer exists at the provider, removed.
    pub dropped: usize,
    /// Channels that could not be renewed this time.
    pub failed: usize,
}

#[async_trait]
impl Task for RenewCalendarChannels {
    type Args = RenewArgs;
    type Output = RenewReport;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("renew_calendar_channels")
            .queue(CALENDAR_QUEUE)
            .time_limit(Duration::from_secs(300))
    }

    async fn run(&self, args: RenewArgs, _ctx: &TaskContext) -> Result<RenewReport, TaskError> {
        let horizon = chrono::Duration::hours(i64::from(args.within_hours.unwrap_or(24)));
        let expiring = self
            .store
            .channels_expiring_before(Utc::now() + horizon, RENEW_BATCH)
            .await?;
        let mut report = RenewReport::default();
        let mut retryable = None;
        for old in expiring {
            let opened = open_channel(
                &self.store,
                &self.provider,
                &old.user_id,
                &old.calendar_id,
                &old.address,
                self.channel_ttl,
            )
            .await;
            match opened {
                Ok(successor) => {
                    // The old channel expires soon anyway: failing to stop it costs a few
                    // duplicate notifications, which the sync ignores.
                    if let Err(err) = close_channel(&self.store, &self.provider, &old).await {
                        tracing::warn!(channel_id = %old.id, error = %err, "old channel not closed after renewal");
                    }
                    tracing::info!(old = %old.id, new = %successor.id, user_id = %old.user_id, "calendar channel renewed");
                    report.renewed += 1;
                }
                Err(ChannelError::Provider(ProviderError::NotFound(what))) => {
                    tracing::warn!(channel_id = %old.id, user_id = %old.user_id, what, "calendar gone at the provider; channel dropped");
                    self.store.remove_channel(&old.id).await?;
                    report.dropped += 1;
                }
                Err(err) => {
                    tracing::warn!(channel_id = %old.id, user_id = %old.user_id, error = %err, "channel renewal failed");
                    report.failed += 1;
                    let err = TaskError::from(err);
                    if err.is_retryable() {
                        retryable = Some(err);
                    }
                }
            }
        }
        tracing::info!(
            renewed = report.renewed,
            dropped = report.dropped,
            failed = report.failed,
            "calendar channels renewed"
        );
        // Renewed channels no longer expire within the horizon, so a retry redoes only
        // the failures.
        match retryable {
            Some(err) => Err(err),
            None => Ok(report),
        }
    }
}
