//! `check_expired_orders` as its scheduled Lambda handler runs it: a tick cancels the
//! unpaid orders past their time and returns their stock; the same tick delivered again
//! changes nothing.

use std::sync::Arc;
use std::time::Duration;

use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_shop::orders::expiry::CheckExpiredOrders;
use celeriac_shop::orders::{MemoryOrders, NewOrderItem, OrderStatus, SharedOrders, Sku};
use celeriac_tasks::lambda::run_tick;
use celeriac_tasks::schedule::{Tick, TickLock};
use celeriac_tasks::{Registry, Runner, TaskState, TaskStore};
use uuid::Uuid;

#[tokio::test]
async fn a_tick_expires_unpaid_orders_once_even_when_delivered_twice() {
    let orders: SharedOrders = Arc::new(MemoryOrders::new());
    orders
        .put_sku(Sku {
            id: "sencha".into(),
            name: "Sencha".into(),
            price_cents: 900,
            quantity: 5,
        })
        .await
        .expect("sku");
    let user = Uuid::new_v4();
    let line = [NewOrderItem {
        sku_id: "sencha".into(),
        quantity: 2,
    }];
    let unpaid = orders.create_order(user, &line).await.expect("order");
    let paid = orders.create_order(user, &line).await.expect("order");
    orders.pay_order(user, paid.id).await.expect("pay");
    assert_eq!(
        orders
            .sku("sencha")
            .await
            .expect("sku")
            .expect("sku")
            .quantity,
        1
    );

    // A max age of zero: every unpaid order is past its time.
    let registry =
        Arc::new(Registry::new().register(CheckExpiredOrders::new(orders.clone(), Duration::ZERO)));
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let runner = Runner::new(registry.clone(), kv.clone());
    let lock = TickLock::new(kv.clone());
    let tick: Tick = serde_json::from_value(serde_json::json!({
        "schedule": "check_expired_orders",
        "task": "check_expired_orders",
        "args": {},
        "scheduled_time": "2026-11-22T06:00:00Z",
    }))
    .expect("tick");
    run_tick(&runner, &registry, &lock, &tick, None)
        .await
        .expect("first delivery");
    run_tick(&runner, &registry, &lock, &tick, None)
        .await
        .expect("duplicate delivery");

    assert_eq!(
        orders
            .order(user, unpaid.id)
            .await
            .expect("get")
            .expect("order")
            .status,
        OrderStatus::Cancelled
    );
    assert_eq!(
        orders
            .order(user, paid.id)
            .await
            .expect("get")
            .expect("order")
            .status,
        OrderStatus::Paid
    );
    assert_eq!(
        orders
            .sku("sencha")
            .await
            .expect("sku")
            .expect("sku")
            .quantity,
        3,
        "the unpaid order's two units came back once"
    );
    let record = TaskStore::new(kv)
        .get(&tick.task_id())
        .await
        .expect("state")
        .expect("recorded");
    assert_eq!(record.status, TaskState::Success);
    assert_eq!(record.result, Some(serde_json::json!({"cancelled": 1})));
}

#[test]
fn bad_arguments_are_refused() {
    let parsed: Result<celeriac_shop::orders::expiry::ExpiryArgs, _> =
        serde_json::from_value(serde_json::json!({"older_than": 5}));
    assert!(parsed.is_err(), "unknown fields are refused, not ignored");
}
