//! The orders port on PostgreSQL (tables from `shared/db/migrations/0003_shop_orders.sql`).
//!
//! Reserving stock is a conditional decrement (`quantity >= n`), SKUs taken in id order so
//! concurrent orders cannot deadlock; the `CHECK (quantity >= 0)` backs it up. The expiry
//! sweep takes one order at a time with `FOR UPDATE SKIP LOCKED` and cancels it and returns
//! its stock in the same transaction: a sweep overlapping another skips the order the other
//! holds, and once that commits the order is no longer `awaiting_payment`, so each order's
//! stock comes back exactly once.

use async_trait::async_trait;
use celeriac_db::PgPool;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::store::{NewOrderItem, Order, OrderError, OrderItem, OrderStatus, OrderStore, Sku};

/// Orders in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOrders {
    pool: PgPool,
}

impl PgOrders {
    /// Orders in `pool`'s database (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn failed(err: sqlx::Error) -> OrderError {
    if celeriac_db::is_transient(&err) {
        OrderError::Unavailable(err.to_string())
    } else {
        OrderError::Rejected(err.to_string())
    }
}

fn sku(row: &PgRow) -> Result<Sku, OrderError> {
    Ok(Sku {
        id: row.try_get("id").map_err(failed)?,
        name: row.try_get("name").map_err(failed)?,
        price_cents: row.try_get("price_cents").map_err(failed)?,
        quantity: row.try_get("quantity").map_err(failed)?,
    })
}

impl PgOrders {
    async fn load(&self, conn: &mut sqlx::PgConnection, row: &PgRow) -> Result<Order, OrderError> {
        let id: Uuid = row.try_get("id").map_err(failed)?;
        let status: String = row.try_get("status").map_err(failed)?;
        let items = sqlx::query(
            "SELECT sku_id, quantity FROM shop_order_items WHERE order_id = $1 ORDER BY sku_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?
        .iter()
        .map(|item| {
            Ok(OrderItem {
                sku_id: item.try_get("sku_id").map_err(failed)?,
                quantity: item.try_get("quantity").map_err(failed)?,
            })
        })
        .collect::<Result<Vec<_>, OrderError>>()?;
        Ok(Order {
            id,
            user_id: row.try_get("user_id").map_err(failed)?,
            status: OrderStatus::parse(&status)
                .ok_or_else(|| OrderError::Rejected(format!("unknown order status {status}")))?,
            items,
            total_cents: row.try_get("total_cents").map_err(failed)?,
            created_at: row.try_get("created_at").map_err(failed)?,
            paid_at: row.try_get("paid_at").map_err(failed)?,
            cancelled_at: row.try_get("cancelled_at").map_err(failed)?,
        })
    }
}

#[async_trait]
impl OrderStore for PgOrders {
    async fn put_sku(&self, sku: Sku) -> Result<(), OrderError> {
        sqlx::query(
            "INSERT INTO shop_skus (id, name, price_cents, quantity) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
             price_cents = EXCLUDED.price_cents, quantity = EXCLUDED.quantity",
        )
        .bind(&sku.id)
        .bind(&sku.name)
        .bind(sku.price_cents)
        .bind(sku.quantity)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn sku(&self, id: &str) -> Result<Option<Sku>, OrderError> {
        let row =
            sqlx::query("SELECT id, name, price_cents, quantity FROM shop_skus WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed)?;
        row.as_ref().map(sku).transpose()
    }

    async fn skus(&self) -> Result<Vec<Sku>, OrderError> {
        sqlx::query("SELECT id, name, price_cents, quantity FROM shop_skus ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?
            .iter()
            .map(sku)
            .collect()
    }

    async fn create_order(
        &self,
        user_id: Uuid,
        items: &[NewOrderItem],
    ) -> Result<Order, OrderError> {
        let mut sorted = items.to_vec();
        sorted.sort_by(|a, b| a.sku_id.cmp(&b.sku_id));
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let mut total_cents = 0i64;
        for item in &sorted {
            let reserved = sqlx::query(
                "UPDATE shop_skus SET quantity = quantity - $2 \
                 WHERE id = $1 AND quantity >= $2 RETURNING price_cents",
            )
            .bind(&item.sku_id)
            .bind(item.quantity)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
            let Some(row) = reserved else {
                let exists = sqlx::query("SELECT 1 FROM shop_skus WHERE id = $1")
                    .bind(&item.sku_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed)?;
                // Dropping the transaction rolls back what was reserved so far.
                return Err(if exists.is_some() {
                    OrderError::OutOfStock(item.sku_id.clone())
                } else {
                    OrderError::UnknownSku(item.sku_id.clone())
                });
            };
            let price: i64 = row.try_get("price_cents").map_err(failed)?;
            total_cents += price * i64::from(item.quantity);
        }
        let id = Uuid::new_v4();
        let row = sqlx::query(
            "INSERT INTO shop_orders (id, user_id, status, total_cents) \
             VALUES ($1, $2, 'awaiting_payment', $3) \
             RETURNING id, user_id, status, total_cents, created_at, paid_at, cancelled_at",
        )
        .bind(id)
        .bind(user_id)
        .bind(total_cents)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
        for item in &sorted {
            sqlx::query(
                "INSERT INTO shop_order_items (order_id, sku_id, quantity) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(&item.sku_id)
            .bind(item.quantity)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        }
        let order = self.load(&mut tx, &row).await?;
        tx.commit().await.map_err(failed)?;
        Ok(order)
    }

    async fn order(&self, user_id: Uuid, id: Uuid) -> Result<Option<Order>, OrderError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let row = sqlx::query(
            "SELECT id, user_id, status, total_cents, created_at, paid_at, cancelled_at \
             FROM shop_orders WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(failed)?;
        match row {
            Some(row) => self.load(&mut conn, &row).await.map(Some),
            None => Ok(None),
        }
    }

    async fn pay_order(&self, user_id: Uuid, id: Uuid) -> Result<Order, OrderError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let paid = sqlx::query(
            "UPDATE shop_orders SET status = 'paid', paid_at = now() \
             WHERE id = $1 AND user_id = $2 AND status = 'awaiting_payment' \
             RETURNING id, user_id, status, total_cents, created_at, paid_at, cancelled_at",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(failed)?;
        if let Some(row) = paid {
            return self.load(&mut conn, &row).await;
        }
        let current = self.order(user_id, id).await?.ok_or(OrderError::NotFound)?;
        Err(OrderError::WrongStatus(current.status))
    }

    async fn expire_orders(
        &self,
        placed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Uuid>, OrderError> {
        let mut cancelled = Vec::new();
        while cancelled.len() < limit {
            let mut tx = self.pool.begin().await.map_err(failed)?;
            let due = sqlx::query(
                "SELECT id FROM shop_orders \
                 WHERE status = 'awaiting_payment' AND created_at < $1 \
                 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(placed_before)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
            let Some(row) = due else {
                break;
            };
            let id: Uuid = row.try_get("id").map_err(failed)?;
            sqlx::query(
                "UPDATE shop_orders SET status = 'cancelled', cancelled_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            // SKUs in id order, as orders take them, so the two cannot deadlock.
            let items = sqlx::query(
                "SELECT sku_id, quantity FROM shop_order_items WHERE order_id = $1 ORDER BY sku_id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
            for item in &items {
                let sku_id: String = item.try_get("sku_id").map_err(failed)?;
                let quantity: i32 = item.try_get("quantity").map_err(failed)?;
                sqlx::query("UPDATE shop_skus SET quantity = quantity + $2 WHERE id = $1")
                    .bind(&sku_id)
                    .bind(quantity)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            tx.commit().await.map_err(failed)?;
            tracing::info!(order_id = %id, "unpaid order expired; stock returned");
            cancelled.push(id);
        }
        Ok(cancelled)
    }
}
