//! The order endpoints, one router each (one Lambda function each; `celeriac dev` merges
//! them):
//!
//! | method and path | router |
//! |---|---|
//! | `GET /api/v1/skus` | [`skus`] (cached; no login needed) |
//! | `POST /api/v1/orders` | [`create`] |
//! | `GET /api/v1/orders/{order_id}` | [`show`] |
//! | `POST /api/v1/orders/{order_id}/pay` | [`pay`] |
//!
//! Orders belong to the logged-in user (Bearer session or cookie); another user's order
//! answers 404. The catalogue is cached (`sku:all`) and invalidated whenever an order
//! moves stock, so a read after an order shows the new stock; the expiry sweep
//! invalidates it too.

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use celeriac_cache::{Cache, CacheConfig, CacheHeadersLayer, CacheKey};
use celeriac_platform::Error;
use celeriac_platform::json::JsonBody;
use celeriac_platform_functions::{Adapters, Database};
use celeriac_sessions::{Authenticated, SessionConfig, Sessions};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::postgres::PgOrders;
use super::store::{MemoryOrders, NewOrderItem, OrderError, SharedOrders, Sku};

/// Catalogue path.
pub const SKUS_PATH: &str = "/api/v1/skus";
/// Order creation path.
pub const ORDERS_PATH: &str = "/api/v1/orders";
/// One order.
pub const ORDER_PATH: &str = "/api/v1/orders/{order_id}";
/// Paying an order.
pub const PAY_PATH: &str = "/api/v1/orders/{order_id}/pay";

/// How long the cached catalogue lives between invalidations.
pub const CATALOGUE_TTL: Duration = Duration::from_secs(60);

/// The cache entry of the catalogue.
pub fn catalogue_key() -> CacheKey {
    CacheKey::new("sku", "all")
}

/// Most lines in one order, and most units per line: larger orders are refused as bad
/// input rather than reserving a shop's whole stock by mistake.
const MAX_LINES: usize = 20;
const MAX_UNITS: i32 = 100;

/// What every order endpoint works with.
#[derive(Debug, Clone)]
pub struct OrdersApi {
    /// SKUs and orders.
    pub orders: SharedOrders,
    /// Sessions, for the logged-in user.
    pub sessions: Sessions,
    /// The catalogue cache.
    pub cache: Cache,
}

impl FromRef<OrdersApi> for Sessions {
    fn from_ref(api: &OrdersApi) -> Self {
        api.sessions.clone()
    }
}

impl OrdersApi {
    /// The order endpoints over `orders` (use [`open_store`] for the deployment's) and
    /// the key-value store of `adapters` for sessions and the cache.
    pub fn open(adapters: &Adapters, orders: SharedOrders) -> anyhow::Result<Self> {
        let kv = adapters.kv.clone().ok_or_else(|| {
            anyhow::anyhow!("orders need Redis for sessions and the cache: set REDIS_URL")
        })?;
        Ok(Self {
            orders,
            sessions: Sessions::new(kv.clone(), SessionConfig::default()),
            cache: Cache::new(kv, CacheConfig::default()),
        })
    }
}

/// The order store of a deployment: PostgreSQL, or memory under the dev runner.
pub fn open_store(adapters: &Adapters) -> anyhow::Result<SharedOrders> {
    match &adapters.database {
        Some(Database::Postgres(pool)) => Ok(std::sync::Arc::new(PgOrders::new(pool.clone()))),
        Some(Database::Memory) => Ok(std::sync::Arc::new(MemoryOrders::new())),
        None => anyhow::bail!("orders need a database: set DATABASE_URL or DATABASE_SECRET_ARN"),
    }
}

/// `GET /api/v1/skus`.
pub fn skus(api: OrdersApi) -> Router {
    Router::new()
        .route(SKUS_PATH, get(list_skus))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `POST /api/v1/orders`.
pub fn create(api: OrdersApi) -> Router {
    Router::new()
        .route(ORDERS_PATH, post(create_order))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /api/v1/orders/{order_id}`.
pub fn show(api: OrdersApi) -> Router {
    Router::new()
        .route(ORDER_PATH, get(show_order))
        .with_state(api)
}

/// `POST /api/v1/orders/{order_id}/pay`.
pub fn pay(api: OrdersApi) -> Router {
    Router::new()
        .route(PAY_PATH, post(pay_order))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// Every order router, merged (the dev runner's view).
pub fn all(api: OrdersApi) -> Router {
    Router::new()
        .merge(skus(api.clone()))
        .merge(create(api.clone()))
        .merge(show(api.clone()))
        .merge(pay(api))
}

async fn list_skus(State(api): State<OrdersApi>) -> Result<axum::Json<serde_json::Value>, Error> {
    let orders = api.orders.clone();
    let skus: Vec<Sku> = api
        .cache
        .get_or_compute(&catalogue_key(), CATALOGUE_TTL, || async move {
            orders.skus().await
        })
        .await?;
    Ok(axum::Json(json!({ "skus": skus })))
}

fn user_of(auth: &Authenticated) -> Result<Uuid, Error> {
    Uuid::parse_str(&auth.user_id)
        .map_err(|_| Error::Unauthorized("session is missing, invalid or expired".into()))
}

fn order_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::NotFound("no such order".into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    items: Vec<OrderLine>,
}

/// A line of the request body, as the API document states it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderLine {
    sku_id: String,
    #[serde(deserialize_with = "whole_number")]
    quantity: i32,
}

/// A JSON integer, also when written with a zero fraction (`14.0`): JSON Schema's
/// `integer`, which the API document uses, admits both spellings.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = match (number.as_i64(), number.as_f64()) {
        (Some(integer), _) => i32::try_from(integer).ok(),
        (None, Some(float)) if float.fract() == 0.0 && float.abs() <= f64::from(i32::MAX) => {
            // Checked above: whole and within i32's range, so the cast is exact.
            #[allow(clippy::cast_possible_truncation)]
            Some(float as i32)
        }
        _ => None,
    };
    whole.ok_or_else(|| serde::de::Error::custom("quantity: expected an integer from 1 to 100"))
}

/// The lines' shape, before any stock is looked at, each refusal naming its field
/// (`items[2].quantity`); the lines to reserve, one per SKU in the order they first
/// appear: a SKU on several lines is ordered once with their quantities added (the limit
/// of [`MAX_UNITS`] is per line as sent). A SKU id is only required to be non-empty here;
/// whether the catalogue has it is the store's answer (a conflict, like stock that ran
/// out).
fn order_lines(items: Vec<OrderLine>) -> Result<Vec<NewOrderItem>, Error> {
    if items.is_empty() || items.len() > MAX_LINES {
        return Err(Error::BadRequest(format!(
            "items: between 1 and {MAX_LINES} lines"
        )));
    }
    let mut lines: Vec<NewOrderItem> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        if item.sku_id.is_empty() {
            return Err(Error::BadRequest(format!(
                "items[{index}].sku_id: must not be empty"
            )));
        }
        if !(1..=MAX_UNITS).contains(&item.quantity) {
            return Err(Error::BadRequest(format!(
                "items[{index}].quantity: must be 1 to {MAX_UNITS}"
            )));
        }
        match lines.iter_mut().find(|line| line.sku_id == item.sku_id) {
            Some(line) => line.quantity += item.quantity,
            None => lines.push(NewOrderItem {
                sku_id: item.sku_id,
                quantity: item.quantity,
            }),
        }
    }
    Ok(lines)
}

async fn create_order(
    State(api): State<OrdersApi>,
    auth: Authenticated,
    JsonBody(body): JsonBody<NewOrder>,
) -> Result<Response, Error> {
    let user = user_of(&auth)?;
    let lines = order_lines(body.items)?;
    let order = api.orders.create_order(user, &lines).await?;
    // Stock moved: the next catalogue read must show it.
    api.cache.invalidate(&catalogue_key()).await;
    tracing::info!(order_id = %order.id, user_id = %user, total_cents = order.total_cents, "order placed; stock reserved");
    Ok((StatusCode::CREATED, axum::Json(json!({ "order": order }))).into_response())
}

async fn show_order(
    State(api): State<OrdersApi>,
    auth: Authenticated,
    Path(raw_id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, Error> {
    let user = user_of(&auth)?;
    let order = api
        .orders
        .order(user, order_id(&raw_id)?)
        .await?
        .ok_or(OrderError::NotFound)?;
    Ok(axum::Json(json!({ "order": order })))
}

async fn pay_order(
    State(api): State<OrdersApi>,
    auth: Authenticated,
    Path(raw_id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, Error> {
    let user = user_of(&auth)?;
    let order = api.orders.pay_order(user, order_id(&raw_id)?).await?;
    tracing::info!(order_id = %order.id, user_id = %user, "order paid");
    Ok(axum::Json(json!({ "order": order })))
}

/// Runs one order endpoint as a Lambda function.
pub async fn run_lambda_endpoint(
    service: &str,
    router: fn(OrdersApi) -> Router,
) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |_config, adapters| {
        Ok(router(OrdersApi::open(adapters, open_store(adapters)?)?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i32) -> OrderLine {
        OrderLine {
            sku_id: sku.into(),
            quantity,
        }
    }

    fn item(sku: &str, quantity: i32) -> NewOrderItem {
        NewOrderItem {
            sku_id: sku.into(),
            quantity,
        }
    }

    #[test]
    fn order_lines_are_checked_before_anything_is_reserved() {
        assert_eq!(
            order_lines(vec![line("sencha", 1)]).expect("valid"),
            vec![item("sencha", 1)]
        );
        assert!(order_lines(vec![]).is_err());
        assert!(order_lines(vec![line("sencha", 0)]).is_err());
        let too_many = order_lines(vec![line("sencha", 101)]).expect_err("101");
        assert_eq!(too_many.to_string(), "items[0].quantity: must be 1 to 100");
        let empty = order_lines(vec![line("sencha", 1), line("", 1)]).expect_err("empty");
        assert_eq!(empty.to_string(), "items[1].sku_id: must not be empty");
        assert!(order_lines((0..21).map(|i| line(&format!("t{i}"), 1)).collect()).is_err());
    }

    #[test]
    fn a_sku_on_several_lines_is_ordered_once() {
        let lines = vec![line("sencha", 2), line("oolong", 1), line("sencha", 100)];
        assert_eq!(
            order_lines(lines).expect("valid"),
            vec![item("sencha", 102), item("oolong", 1)]
        );
    }

    #[test]
    fn quantities_are_json_schema_integers() {
        let parse = |quantity: &str| {
            let body = format!(r#"{{"items": [{{"sku_id": "sencha", "quantity": {quantity}}}]}}"#);
            serde_json::from_str::<NewOrder>(&body).map(|order| order.items[0].quantity)
        };
        assert_eq!(parse("14").expect("an integer"), 14);
        assert_eq!(parse("14.0").expect("a zero fraction"), 14);
        for bad in ["14.5", "\"14\"", "1e10", "-3000000000", "null"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let extra = r#"{"items": [{"sku_id": "sencha", "quantity": 1, "gift": true}]}"#;
        assert!(serde_json::from_str::<NewOrder>(extra).is_err());
    }
}
