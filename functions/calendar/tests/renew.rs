//! `renew_calendar_channels` as its scheduled Lambda handler runs it: channels expiring
//! within a day are replaced by successors at the provider and in the store, the old ones
//! stopped; later channels are left alone; the same tick delivered twice renews once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use celeriac_calendar::channels::RenewCalendarChannels;
use celeriac_calendar::channels::open_channel;
use celeriac_calendar::postgres::PgCalendarStore;
use celeriac_calendar::provider::fixture::FixtureProvider;
use celeriac_calendar::provider::{ProviderError, SharedProvider};
use celeriac_calendar::store::{MemoryCalendarStore, SharedCalendarStore};
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_tasks::lambda::run_tick;
use celeriac_tasks::schedule::{Tick, TickLock};
use celeriac_tasks::{Registry, Runner, TaskState, TaskStore};
use chrono::Utc;

const ADDRESS: &str = "https://api.example.test/webhook/google-calendar";

async fn renews_what_expires_within_a_day_once(store: SharedCalendarStore) {
    let provider: SharedProvider = Arc::new(FixtureProvider::new());
    let hour = Duration::from_secs(3600);
    let expiring = open_channel(&store, &provider, "mei", "primary", ADDRESS, hour * 5)
        .await
        .expect("open");
    let lasting = open_channel(&store, &provider, "kai", "primary", ADDRESS, hour * 72)
        .await
        .expect("open");

    let registry = Arc::new(Registry::new().register(RenewCalendarChannels::new(
        store.clone(),
        provider.clone(),
        hour * 24 * 7,
    )));
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let runner = Runner::new(registry.clone(), kv.clone());
    let lock = TickLock::new(kv.clone());
    let tick: Tick = serde_json::from_value(serde_json::json!({
        "schedule": "renew_calendar_channels",
        "task": "renew_calendar_channels",
        "args": {},
        "scheduled_time": "2026-11-22T04:00:00Z",
    }))
    .expect("tick");
    run_tick(&runner, &registry, &lock, &tick, None)
        .await
        .expect("first delivery");
    run_tick(&runner, &registry, &lock, &tick, None)
        .await
        .expect("duplicate delivery");
    let record = TaskStore::new(kv)
        .get(&tick.task_id())
        .await
        .expect("store")
        .expect("record");
    assert_eq!(record.status, TaskState::Success, "{record:?}");
    assert_eq!(record.result.expect("report")["renewed"], 1);

    assert_eq!(store.channel(&expiring.id).await.expect("get"), None);
    let renewed = store.channels_of_user("mei").await.expect("list");
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    let successor = &renewed[0];
    assert_ne!(successor.id, expiring.id);
    assert_eq!(successor.address, ADDRESS);
    assert!(successor.expires_at > Utc::now() + chrono::Duration::days(6));
    let stopped = provider
        .stop("mei", &expiring.id, &expiring.resource_id)
        .await;
    assert!(
        matches!(stopped, Err(ProviderError::NotFound(_))),
        "old one stopped"
    );
    let kept: Vec<String> = store
        .channels_of_user("kai")
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(kept, [lasting.id], "a channel with days left is kept");
}

#[tokio::test]
async fn memory_renews_what_expires_within_a_day_once() {
    renews_what_expires_within_a_day_once(Arc::new(MemoryCalendarStore::new())).await;
}

#[tokio::test]
async fn postgres_renews_what_expires_within_a_day_once() {
    let Some(pool) = support::postgres_pool().await else {
        return;
    };
    renews_what_expires_within_a_day_once(Arc::new(PgCalendarStore::new(pool))).await;
}
