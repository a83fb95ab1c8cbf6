//! The wellness endpoints, one router each (one Lambda function each; `celeriac dev`
//! merges them):
//!
//! | method and path | router |
//! |---|---|
//! | `POST /chat` | [`chat`]: the model's reply now, the topic work queued |
//! | `GET /user/{user_id}/topic` | [`user_topic`] |
//! | `GET /user/{user_id}/recommendations` | [`recommendations`] |
//! | `GET /content/articles?topic=` | [`articles`] |
//! | `GET /content/videos?topic=` | [`videos`] |
//! | `GET /content/quotes?topic=` | [`quotes`] |
//!
//! Who may call: the content routes are public (a catalogue). Chat, a user's topic and
//! recommendations are the caller's own: they need the accounts' session (Bearer token or
//! cookie), the user comes from it (never from the body or the path alone), and another
//! user's id answers 404 as an unknown one would. What a user talks about in a wellness
//! chat is the most sensitive data this product holds.
//!
//! Task states are read at the platform's `GET /task/{task_id}/status`; the chat's tasks
//! are enqueued on the user's behalf, so only their session sees them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{FromRef, Path, Query, State};
use axum::response::Json;
use axum::routing::{get, post};
use celeriac_cache::CacheHeadersLayer;
use celeriac_limits::{
    FailurePolicy, KeyBy, Limit, LimitKey, RateLimitLayer, SharedLimiter, enforce,
};
use celeriac_llm::{ChatRequest, Language, usable_text};
use celeriac_platform::Error;
use celeriac_platform::json::JsonBody;
use celeriac_platform_functions::Adapters;
use celeriac_sessions::{Authenticated, SessionConfig, Sessions};
use celeriac_tasks::TaskClient;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::WellnessBackend;
use crate::cache;
use crate::catalogue::Search;
use crate::tasks::{
    ExtractTopicFromMessage, MAX_MESSAGE_CHARS, MessageArgs, UpdateUserRecommendations,
};
use crate::topic::{parse_label, topic_id};

/// `POST /chat`.
pub const CHAT_PATH: &str = "/chat";
/// `GET /user/{user_id}/topic`.
pub const USER_TOPIC_PATH: &str = "/user/{user_id}/topic";
/// `GET /user/{user_id}/recommendations`.
pub const RECOMMENDATIONS_PATH: &str = "/user/{user_id}/recommendations";
/// `GET /content/articles`.
pub const ARTICLES_PATH: &str = "/content/articles";
/// `GET /content/videos`.
pub const VIDEOS_PATH: &str = "/content/videos";
/// `GET /content/quotes`.
pub const QUOTES_PATH: &str = "/content/quotes";

/// Chat messages per user: each costs a model call on the request path. Fails open: a
/// limiter outage should not silence the chat.
pub const CHAT_PER_USER: Limit = Limit::gcra(
    "chat per user",
    20,
    Duration::from_secs(60),
    FailurePolicy::Open,
);

/// Catalogue entries listed at most.
const LIST_LIMIT: usize = 20;

/// What every wellness endpoint works with.
#[derive(Debug, Clone)]
pub struct WellnessApi {
    /// Cache, model, catalogue.
    pub backend: WellnessBackend,
    /// Enqueues the chat's tasks (only `POST /chat` needs it).
    pub client: Option<TaskClient>,
    /// Counts chat messages.
    pub limiter: Option<SharedLimiter>,
    /// The accounts' sessions (in the backend's key-value store): who is calling.
    pub sessions: Sessions,
}

impl FromRef<WellnessApi> for Sessions {
    fn from_ref(api: &WellnessApi) -> Self {
        api.sessions.clone()
    }
}

impl WellnessApi {
    /// The endpoints over `backend`, enqueuing with `client`; sessions are read from the
    /// backend's key-value store, where the accounts' login writes them.
    pub fn new(
        backend: WellnessBackend,
        client: Option<TaskClient>,
        limiter: Option<SharedLimiter>,
    ) -> Self {
        Self {
            sessions: Sessions::new(backend.kv.clone(), SessionConfig::default()),
            backend,
            client,
            limiter,
        }
    }
}

/// Chat messages per client address, beside the per-user limit: one client with many
/// accounts still cannot spend more than this on model calls.
pub const CHAT_PER_IP: Limit = Limit::gcra(
    "chat per address",
    60,
    Duration::from_secs(60),
    FailurePolicy::Open,
);

/// `POST /chat`.
pub fn chat(api: WellnessApi) -> Router {
    let routes = Router::new().route(CHAT_PATH, post(post_chat));
    let routes = match api.limiter.clone() {
        Some(limiter) => routes.route_layer(RateLimitLayer::new(limiter, CHAT_PER_IP, KeyBy::Ip)),
        None => routes,
    };
    routes.with_state(api).layer(CacheHeadersLayer)
}

/// `GET /user/{user_id}/topic`.
pub fn user_topic(api: WellnessApi) -> Router {
    Router::new()
        .route(USER_TOPIC_PATH, get(get_user_topic))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /user/{user_id}/recommendations`.
pub fn recommendations(api: WellnessApi) -> Router {
    Router::new()
        .route(RECOMMENDATIONS_PATH, get(get_recommendations))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /content/articles?topic=`.
pub fn articles(api: WellnessApi) -> Router {
    Router::new()
        .route(ARTICLES_PATH, get(get_articles))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /content/videos?topic=`.
pub fn videos(api: WellnessApi) -> Router {
    Router::new()
        .route(VIDEOS_PATH, get(get_videos))
        .with_state(api)
}

/// `GET /content/quotes?topic=`.
pub fn quotes(api: WellnessApi) -> Router {
    Router::new()
        .route(QUOTES_PATH, get(get_quotes))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// Every wellness router, merged (the dev runner's view).
pub fn all(api: WellnessApi) -> Router {
    Router::new()
        .merge(chat(api.clone()))
        .merge(user_topic(api.clone()))
        .merge(recommendations(api.clone()))
        .merge(articles(api.clone()))
        .merge(videos(api.clone()))
        .merge(quotes(api))
}

/// Runs one wellness read endpoint as a Lambda function: `router` over the deployment's
/// adapters.
pub async fn run_lambda_endpoint(
    service: &str,
    router: fn(WellnessApi) -> Router,
) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |_config, adapters: &Adapters| {
        let backend = WellnessBackend::open(adapters)?;
        Ok(router(WellnessApi::new(
            backend,
            None,
            adapters.limiter.clone(),
        )))
    })
    .await
}

/// Runs `POST /chat` as a Lambda function. It enqueues its tasks, so a queue must be
/// configured: without one the function fails at init, naming what to set, rather than
/// answering chats whose topics are never extracted.
pub async fn run_chat_lambda(service: &str) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |config, adapters: &Adapters| {
        let backend = WellnessBackend::open(adapters)?;
        let client = adapters.task_client(config, service).context(
            "POST /chat enqueues its tasks: set TASK_QUEUE_URL (SQS) or TASK_TRANSPORT=redis",
        )?;
        Ok(chat(WellnessApi::new(
            backend,
            Some(client),
            adapters.limiter.clone(),
        )))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    /// The seed's clients send it; the session decides who writes, so it may only name
    /// the caller.
    #[serde(default)]
    user_id: Option<String>,
    message: String,
}

/// `user_id` from a path or a body, if it is the caller's; any other id is 404, the same
/// answer an unknown user would get, so ids cannot be probed.
fn own_user_id<'a>(auth: &'a Authenticated, named: &str) -> Result<&'a str, Error> {
    if named == auth.user_id {
        Ok(&auth.user_id)
    } else {
        Err(Error::NotFound(format!(
            "no user {named:?} here: a session reads and writes only its own user's data"
        )))
    }
}

async fn post_chat(
    State(api): State<WellnessApi>,
    auth: Authenticated,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Json<Value>, Error> {
    let user_id = match &body.user_id {
        Some(named) => own_user_id(&auth, named)?,
        None => auth.user_id.as_str(),
    };
    let message = usable_text("message", &body.message)?;
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::BadRequest(format!(
            "message: at most {MAX_MESSAGE_CHARS} characters"
        )));
    }
    if let Some(limiter) = &api.limiter {
        enforce(&**limiter, &CHAT_PER_USER, &LimitKey::user(user_id)).await?;
    }
    let backend = &api.backend;
    let topic = backend.user_topic(user_id).await;
    let reply = backend
        .llm
        .chat_reply(&ChatRequest {
            message: message.to_owned(),
            topic: topic.as_ref().map(|t| t.label.clone()),
        })
        .await
        .inspect_err(|err| tracing::warn!(user_id, error = %err, "chat reply failed"))?;

    let args = MessageArgs {
        user_id: user_id.to_owned(),
        message: Some(message.to_owned()),
    };
    let task_ids = match &api.client {
        Some(client) => enqueue_chat_tasks(client, backend, &args).await,
        None => None,
    };
    Ok(Json(json!({
        "user_id": user_id,
        "reply": reply.text,
        "language": reply.language,
        "topic": topic.as_ref().map(|t| &t.label),
        "task_ids": task_ids,
    })))
}

/// Enqueues the two tasks a message starts. The reply is already written, so a queue
/// outage does not fail the chat: the answer says no tasks were started
/// (`task_ids: null`) and the topic stays as it was until the next message.
async fn enqueue_chat_tasks(
    client: &TaskClient,
    backend: &WellnessBackend,
    args: &MessageArgs,
) -> Option<Value> {
    let topic_task = ExtractTopicFromMessage(backend.clone());
    let recommendations_task = UpdateUserRecommendations(backend.clone());
    let sent = futures::future::try_join(
        client.delay_for(&topic_task, args, &args.user_id),
        client.delay_for(&recommendations_task, args, &args.user_id),
    )
    .await;
    match sent {
        Ok((topic_id, recommendations_id)) => Some(json!({
            "extract_topic_from_message": topic_id,
            "update_user_recommendations": recommendations_id,
        })),
        Err(err) => {
            tracing::error!(user_id = %args.user_id, error = %err, "chat tasks not enqueued; the topic is not updated for this message");
            None
        }
    }
}

async fn get_user_topic(
    State(api): State<WellnessApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, Error> {
    let user_id = own_user_id(&auth, &user_id)?;
    let topic = api.backend.user_topic(user_id).await;
    Ok(Json(json!({
        "user_id": user_id,
        "topic": topic.as_ref().map(|t| &t.label),
        "topic_id": topic.as_ref().and_then(|t| t.topic_id.as_ref()),
        "language": topic.as_ref().map(|t| t.language),
        "updated_at": topic.as_ref().map(|t| t.updated_at),
    })))
}

async fn get_recommendations(
    State(api): State<WellnessApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, Error> {
    let user_id = own_user_id(&auth, &user_id)?;
    let backend = &api.backend;
    // Built here only when the task's entry expired or never landed: from the stored
    // topic, and stored like the task stores it.
    let recommendations = backend
        .cache
        .get_or_compute(
            &cache::recommendations(user_id),
            cache::RECOMMENDATIONS_TTL,
            || async {
                let topic = backend.user_topic(user_id).await;
                backend
                    .build_recommendations(user_id, topic, Utc::now().date_naive())
                    .await
            },
        )
        .await?;
    Ok(Json(
        serde_json::to_value(recommendations).map_err(Error::internal)?,
    ))
}

/// The `?topic=` of a content request, normalised, with its lexicon id.
fn topic_query(
    query: &HashMap<String, String>,
) -> Result<Option<(String, Option<&'static str>)>, Error> {
    match query.get("topic") {
        None => Ok(None),
        Some(raw) => {
            let label = parse_label(raw)?;
            let id = topic_id(&label);
            Ok(Some((label, id)))
        }
    }
}

fn search(topic: Option<&(String, Option<&'static str>)>) -> Search<'static> {
    Search {
        topic_id: topic.and_then(|(_, id)| *id),
        language: topic.map(|(label, _)| Language::detect(label)),
        limit: LIST_LIMIT,
    }
}

async fn get_articles(
    State(api): State<WellnessApi>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let topic = topic_query(&query)?;
    let backend = &api.backend;
    // A topic outside the lexicon has no catalogue entries, but still its own article.
    let listed = match &topic {
        Some((_, None)) => Vec::new(),
        _ => backend.catalogue.articles(search(topic.as_ref())),
    };
    let of_the_day = match &topic {
        Some((label, _)) => Some(backend.article(label, Utc::now().date_naive()).await?),
        None => None,
    };
    Ok(Json(json!({
        "topic": topic.as_ref().map(|(label, _)| label),
        "topic_id": topic.as_ref().and_then(|(_, id)| *id),
        "articles": listed,
        "article_of_the_day": of_the_day,
    })))
}

async fn get_videos(
    State(api): State<WellnessApi>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let topic = topic_query(&query)?;
    let videos = match &topic {
        Some((_, None)) => Vec::new(),
        _ => api.backend.catalogue.videos(search(topic.as_ref())),
    };
    Ok(Json(json!({
        "topic": topic.as_ref().map(|(label, _)| label),
        "topic_id": topic.as_ref().and_then(|(_, id)| *id),
        "videos": videos,
    })))
}

async fn get_quotes(
    State(api): State<WellnessApi>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let topic = topic_query(&query)?;
    let backend = &api.backend;
    let today = Utc::now().date_naive();
    let quotes: Vec<Value> = match &topic {
        Some((label, _)) => {
            let quote = backend.quote(label, today).await?;
            vec![json!({ "topic": label, "quote": quote })]
        }
        // No topic: the day's quotes for the popular topics (the daily content).
        None => backend
            .daily_content(today)
            .await?
            .items
            .into_iter()
            .map(|item| json!({ "topic": item.topic, "quote": item.quote }))
            .collect(),
    };
    Ok(Json(json!({
        "date": today,
        "topic": topic.as_ref().map(|(label, _)| label),
        "quotes": quotes,
    })))
}
