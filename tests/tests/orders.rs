//! The shop's orders as a new user meets them through `celeriac dev`: the sample
//! catalogue (cached, with the cache headers), an order reserving stock, paying one,
//! another left unpaid expiring through `check_expired_orders` with its stock back, bad
//! orders refused without touching stock, and a SKU on two lines ordered once.

use celeriac_testkit::{DevServer, free_port, standin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, json_of, signed_up, unique_email};

mod support;

async fn stock_of(client: &Client, sku: &str) -> (i64, reqwest::header::HeaderMap) {
    let response = client.get("/api/v1/skus", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let body = json_of(response).await;
    let quantity = body["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|s| s["id"] == sku)
        .unwrap_or_else(|| panic!("{sku} in the catalogue: {body}"))["quantity"]
        .as_i64()
        .expect("quantity");
    (quantity, headers)
}

async fn order(client: &Client, token: &str, items: Value) -> reqwest::Response {
    client
        .post("/api/v1/orders", json!({ "items": items }), Some(token))
        .await
}

async fn scenario(server: &DevServer, outbox: &std::path::Path) {
    let client = Client::new(server);
    let (before, headers) = stock_of(&client, "pu-erh-cake-357g").await;
    assert_eq!(headers["x-cache-misses"], "1", "first read fills the cache");
    let (again, headers) = stock_of(&client, "pu-erh-cake-357g").await;
    assert_eq!(
        (again, &headers["x-cache-hits"]),
        (before, &"1".parse().expect("hv"))
    );

    let anonymous = order(
        &client,
        "not-a-session",
        json!([{"sku_id": "pu-erh-cake-357g", "quantity": 1}]),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let token = signed_up(&client, outbox, &unique_email("buyer")).await;
    let unpaid = order(
        &client,
        &token,
        json!([{"sku_id": "pu-erh-cake-357g", "quantity": 1}]),
    )
    .await;
    assert_eq!(unpaid.status(), StatusCode::CREATED);
    let unpaid = json_of(unpaid).await["order"].clone();
    assert_eq!(unpaid["status"], "awaiting_payment");
    assert_eq!(
        stock_of(&client, "pu-erh-cake-357g").await.0,
        before - 1,
        "the read after an order shows it"
    );

    let paid = order(
        &client,
        &token,
        json!([{"sku_id": "pu-erh-cake-357g", "quantity": 1}]),
    )
    .await;
    let paid = json_of(paid).await["order"].clone();
    let id = paid["id"].as_str().expect("id");
    let response = client
        .post(&format!("/api/v1/orders/{id}/pay"), json!({}), Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await["order"]["status"], "paid");
    let twice = client
        .post(&format!("/api/v1/orders/{id}/pay"), json!({}), Some(&token))
        .await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);

    // Bad orders: a clear 4xx, stock untouched.
    let left = stock_of(&client, "pu-erh-cake-357g").await.0;
    for (items, status) in [
        (
            json!([{"sku_id": "pu-erh-cake-357g", "quantity": 1000}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{"sku_id": "pu-erh-cake-357g", "quantity": left + 1}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{"sku_id": "no-such-tea", "quantity": 1}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{"sku_id": "", "quantity": 1}]),
            StatusCode::BAD_REQUEST,
        ),
        (json!([]), StatusCode::BAD_REQUEST),
    ] {
        let refused = order(&client, &token, items.clone()).await;
        assert_eq!(refused.status(), status, "{items}");
    }
    assert_eq!(stock_of(&client, "pu-erh-cake-357g").await.0, left);
    let empty = json_of(order(&client, &token, json!([{"sku_id": "", "quantity": 1}])).await).await;
    assert_eq!(
        empty["error"]["message"], "items[0].sku_id: must not be empty",
        "{empty}"
    );

    // A SKU on two lines is one line of their sum (left unpaid: the sweep returns it).
    let rooibos = stock_of(&client, "rooibos-100g").await.0;
    let twice = order(
        &client,
        &token,
        json!([
            {"sku_id": "rooibos-100g", "quantity": 1},
            {"sku_id": "rooibos-100g", "quantity": 2}
        ]),
    )
    .await;
    assert_eq!(twice.status(), StatusCode::CREATED);
    let twice = json_of(twice).await;
    assert_eq!(
        twice["order"]["items"],
        json!([{"sku_id": "rooibos-100g", "quantity": 3}]),
        "{twice}"
    );
    assert_eq!(stock_of(&client, "rooibos-100g").await.0, rooibos - 3);

    // Another user sees neither order.
    let stranger = signed_up(&client, outbox, &unique_email("stranger")).await;
    let peek = client
        .get(&format!("/api/v1/orders/{id}"), Some(&stranger))
        .await;
    assert_eq!(peek.status(), StatusCode::NOT_FOUND);

    // The sweep, as beat would run it, with every unpaid order past its time.
    let task_id = client
        .call_task(
            "check_expired_orders",
            Some(json!({"older_than_minutes": 0})),
        )
        .await;
    let state = client.task_finished(&task_id).await;
    assert_eq!(state["state"], "SUCCESS", "{state}");
    let unpaid_id = unpaid["id"].as_str().expect("id");
    let expired = json_of(
        client
            .get(&format!("/api/v1/orders/{unpaid_id}"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(expired["order"]["status"], "cancelled");
    assert_eq!(
        stock_of(&client, "pu-erh-cake-357g").await.0,
        before - 1,
        "the unpaid unit came back; the paid one did not"
    );
}

#[tokio::test]
async fn order_pay_and_expire_on_embedded_defaults() {
    let outbox = std::env::temp_dir().join(format!("celeriac-orders-outbox-{}", free_port()));
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    scenario(&server, &outbox).await;
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn the_same_with_redis_and_postgres() {
    let (Some(redis), Some(db)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
    ) else {
        return;
    };
    // The stand-in database outlives a run: put the sample stock back first, so repeated
    // runs start from the same catalogue.
    let pool = celeriac_db::connect(&celeriac_testkit::database().expect("database"))
        .await
        .expect("connect");
    celeriac_db::migrate(&pool).await.expect("migrate");
    let store = celeriac_shop::orders::postgres::PgOrders::new(pool);
    for sku in celeriac_shop::orders::catalogue::sample() {
        celeriac_shop::orders::OrderStore::put_sku(&store, sku)
            .await
            .expect("restock");
    }
    // This test owns Redis database 4: start it empty (no cached catalogue, no counts).
    let redis_db = format!("{}/4", redis.trim_end_matches('/'));
    let mut conn = redis::Client::open(redis_db.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut conn)
        .await
        .expect("flushdb");
    let outbox = std::env::temp_dir().join(format!("celeriac-orders-outbox-{}", free_port()));
    let server = DevServer::start(&[
        // A database of its own: login limits count per client IP, and every test's client
        // is 127.0.0.1, so sharing the keys with other tests would trip them.
        ("REDIS_URL", redis_db),
        ("DATABASE_URL", db),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
    ]);
    scenario(&server, &outbox).await;
    let _ = std::fs::remove_dir_all(&outbox);
}
