//! One conformance suite for the orders port, run against the in-memory adapter and
//! PostgreSQL. Each PostgreSQL case gets a schema of its own: the expiry sweep is global
//! by design, so cases sharing tables would expire each other's orders.

use std::sync::Arc;

use celeriac_shop::orders::postgres::PgOrders;
use celeriac_shop::orders::{
    MemoryOrders, NewOrderItem, OrderError, OrderStatus, SharedOrders, Sku,
};
use chrono::{Duration, Utc};
use uuid::Uuid;

async fn postgres() -> Option<SharedOrders> {
    let config = celeriac_testkit::database_in_fresh_schema("orders").await?;
    let pool = celeriac_db::connect(&config).await.expect("connect");
    celeriac_db::migrate(&pool).await.expect("migrate");
    Some(Arc::new(PgOrders::new(pool)))
}

fn tea(id: &str, quantity: i32) -> Sku {
    Sku {
        id: id.into(),
        name: format!("Tea {id}"),
        price_cents: 450,
        quantity,
    }
}

fn line(sku: &str, quantity: i32) -> NewOrderItem {
    NewOrderItem {
        sku_id: sku.into(),
        quantity,
    }
}

async fn stock(store: &SharedOrders, id: &str) -> i32 {
    store.sku(id).await.expect("sku").expect("exists").quantity
}

async fn an_order_reserves_stock_all_or_nothing(store: SharedOrders) {
    store.put_sku(tea("sencha", 5)).await.expect("put");
    store.put_sku(tea("oolong", 1)).await.expect("put");
    let user = Uuid::new_v4();
    let order = store
        .create_order(user, &[line("sencha", 2), line("oolong", 1)])
        .await
        .expect("order");
    assert_eq!(order.status, OrderStatus::AwaitingPayment);
    assert_eq!(order.total_cents, 3 * 450);
    assert_eq!(stock(&store, "sencha").await, 3);
    assert_eq!(stock(&store, "oolong").await, 0);

    let short = store
        .create_order(user, &[line("sencha", 1), line("oolong", 1)])
        .await;
    assert!(
        matches!(short, Err(OrderError::OutOfStock(ref s)) if s == "oolong"),
        "{short:?}"
    );
    assert_eq!(
        stock(&store, "sencha").await,
        3,
        "nothing reserved by a refused order"
    );
    let unknown = store.create_order(user, &[line("matcha", 1)]).await;
    assert!(
        matches!(unknown, Err(OrderError::UnknownSku(_))),
        "{unknown:?}"
    );

    assert_eq!(
        store.order(user, order.id).await.expect("get"),
        Some(order.clone())
    );
    assert_eq!(
        store.order(Uuid::new_v4(), order.id).await.expect("get"),
        None,
        "another user's order is not found"
    );
}

async fn fifty_concurrent_orders_for_ten_items_sell_ten(store: SharedOrders) {
    store.put_sku(tea("last-ten", 10)).await.expect("put");
    let attempts = (0..50).map(|_| {
        let store = store.clone();
        async move {
            store
                .create_order(Uuid::new_v4(), &[line("last-ten", 1)])
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let sold = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(OrderError::OutOfStock(_))))
        .count();
    assert_eq!((sold, refused), (10, 40), "{results:?}");
    assert_eq!(stock(&store, "last-ten").await, 0);
}

async fn paying_once_and_only_while_awaiting(store: SharedOrders) {
    store.put_sku(tea("genmaicha", 3)).await.expect("put");
    let user = Uuid::new_v4();
    let order = store
        .create_order(user, &[line("genmaicha", 1)])
        .await
        .expect("order");
    let paid = store.pay_order(user, order.id).await.expect("pay");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert!(paid.paid_at.is_some());
    let again = store.pay_order(user, order.id).await;
    assert!(
        matches!(again, Err(OrderError::WrongStatus(OrderStatus::Paid))),
        "{again:?}"
    );
    let stranger = store.pay_order(Uuid::new_v4(), order.id).await;
    assert!(
        matches!(stranger, Err(OrderError::NotFound)),
        "{stranger:?}"
    );
}

async fn overlapping_expiry_sweeps_return_stock_once(store: SharedOrders) {
    store.put_sku(tea("pu-erh", 20)).await.expect("put");
    store.put_sku(tea("rooibos", 20)).await.expect("put");
    let user = Uuid::new_v4();
    let mut unpaid = Vec::new();
    for _ in 0..6 {
        unpaid.push(
            store
                .create_order(user, &[line("pu-erh", 2), line("rooibos", 1)])
                .await
                .expect("order")
                .id,
        );
    }
    let paid = store
        .create_order(user, &[line("pu-erh", 1)])
        .await
        .expect("order");
    store.pay_order(user, paid.id).await.expect("pay");
    assert_eq!(stock(&store, "pu-erh").await, 20 - 12 - 1);

    // Every order so far is "older than" a cut-off a second from now; four sweeps at once.
    let cutoff = Utc::now() + Duration::seconds(1);
    let sweeps = (0..4).map(|_| {
        let store = store.clone();
        async move { store.expire_orders(cutoff, 100).await.expect("sweep") }
    });
    let swept: Vec<Uuid> = futures::future::join_all(sweeps)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut sorted = swept.clone();
    sorted.sort();
    let mut expected = unpaid.clone();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "each unpaid order cancelled by exactly one sweep"
    );
    assert_eq!(
        stock(&store, "pu-erh").await,
        20 - 1,
        "stock back once; the paid order keeps its unit"
    );
    assert_eq!(stock(&store, "rooibos").await, 20);
    for id in &unpaid {
        let order = store.order(user, *id).await.expect("get").expect("exists");
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert!(order.cancelled_at.is_some());
    }
    assert_eq!(
        store
            .order(user, paid.id)
            .await
            .expect("get")
            .expect("exists")
            .status,
        OrderStatus::Paid
    );
    assert!(
        store
            .expire_orders(cutoff, 100)
            .await
            .expect("sweep")
            .is_empty()
    );
    let late = store.pay_order(user, unpaid[0]).await;
    assert!(
        matches!(late, Err(OrderError::WrongStatus(OrderStatus::Cancelled))),
        "{late:?}"
    );
}

async fn a_sweep_leaves_recent_orders_alone(store: SharedOrders) {
    store.put_sku(tea("hojicha", 4)).await.expect("put");
    let user = Uuid::new_v4();
    let order = store
        .create_order(user, &[line("hojicha", 1)])
        .await
        .expect("order");
    let cutoff = Utc::now() - Duration::minutes(30);
    assert!(
        store
            .expire_orders(cutoff, 100)
            .await
            .expect("sweep")
            .is_empty()
    );
    assert_eq!(
        store
            .order(user, order.id)
            .await
            .expect("get")
            .expect("exists")
            .status,
        OrderStatus::AwaitingPayment
    );
    assert_eq!(stock(&store, "hojicha").await, 3);
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedOrders> { $open }
            conformance!(@cases
                an_order_reserves_stock_all_or_nothing,
                fifty_concurrent_orders_for_ten_items_sell_ten,
                paying_once_and_only_while_awaiting,
                overlapping_expiry_sweeps_return_stock_once,
                a_sweep_leaves_recent_orders_alone);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(store) = store().await else { return };
            super::$case(store).await;
        }
    )*};
}

conformance! {
    memory => Some(Arc::new(MemoryOrders::new()) as SharedOrders);
    postgres => postgres().await;
}
