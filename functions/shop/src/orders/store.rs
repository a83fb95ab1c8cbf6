//! The orders port and its in-memory adapter; both pass `tests/orders_store.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A product with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    /// Its code, e.g. `sencha-100g`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Units in stock (never below zero).
    pub quantity: i32,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock reserved, waiting to be paid.
    AwaitingPayment,
    /// Paid.
    Paid,
    /// Cancelled (expired unpaid); its stock went back.
    Cancelled,
}

impl OrderStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingPayment => "awaiting_payment",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "awaiting_payment" => Some(Self::AwaitingPayment),
            "paid" => Some(Self::Paid),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Which SKU.
    pub sku_id: String,
    /// How many units.
    pub quantity: i32,
}

/// A line as ordered (validated: quantity above zero, each SKU once).
pub type NewOrderItem = OrderItem;

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Id.
    pub id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// Where it is.
    pub status: OrderStatus,
    /// Its lines, by SKU id.
    pub items: Vec<OrderItem>,
    /// Sum of the lines at the prices when ordered.
    pub total_cents: i64,
    /// Placed.
    pub created_at: DateTime<Utc>,
    /// Paid, if it was.
    pub paid_at: Option<DateTime<Utc>>,
    /// Cancelled, if it was.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Why an order operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderError {
    /// Not enough stock of this SKU for the order; nothing was reserved.
    #[error("not enough stock of {0}")]
    OutOfStock(String),
    /// No such SKU in the catalogue (it may have been withdrawn since the client read it).
    #[error("sku_id: no SKU {0:?} in the catalogue")]
    UnknownSku(String),
    /// No such order (or not this user's).
    #[error("no such order")]
    NotFound,
    /// The order is not awaiting payment (already paid, or cancelled).
    #[error("order is {}", .0.as_str())]
    WrongStatus(OrderStatus),
    /// The database cannot be reached; retrying later can help.
    #[error("orders store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request; retrying will not help.
    #[error("orders store error: {0}")]
    Rejected(String),
}

impl OrderError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<OrderError> for celeriac_platform::Error {
    fn from(err: OrderError) -> Self {
        match err {
            // An unknown SKU is the catalogue's state, as stock that ran out is: a
            // well-formed order that this catalogue cannot fill.
            OrderError::OutOfStock(_) | OrderError::WrongStatus(_) | OrderError::UnknownSku(_) => {
                Self::Conflict(err.to_string())
            }
            OrderError::NotFound => Self::NotFound(err.to_string()),
            OrderError::Unavailable(reason) => Self::Unavailable {
                component: "database",
                reason,
            },
            OrderError::Rejected(reason) => Self::internal(reason),
        }
    }
}

/// Where SKUs and orders live.
#[async_trait]
pub trait OrderStore: Send + Sync + std::fmt::Debug {
    /// Creates or replaces a SKU (catalogue set-up and restocking).
    async fn put_sku(&self, sku: Sku) -> Result<(), OrderError>;

    /// A SKU.
    async fn sku(&self, id: &str) -> Result<Option<Sku>, OrderError>;

    /// Every SKU, by id.
    async fn skus(&self) -> Result<Vec<Sku>, OrderError>;

    /// Places an order for `user_id`, reserving each line's stock, all or nothing: with
    /// too little of any SKU nothing is reserved ([`OrderError::OutOfStock`]). Concurrent
    /// orders never take stock below zero.
    async fn create_order(
        &self,
        user_id: Uuid,
        items: &[NewOrderItem],
    ) -> Result<Order, OrderError>;

    /// The order `id` of `user_id`.
    async fn order(&self, user_id: Uuid, id: Uuid) -> Result<Option<Order>, OrderError>;

    /// Marks `user_id`'s order paid, if it is still awaiting payment.
    async fn pay_order(&self, user_id: Uuid, id: Uuid) -> Result<Order, OrderError>;

    /// Cancels up to `limit` orders awaiting payment since before `placed_before` and
    /// returns their stock, each order in one transaction: an order is cancelled and its
    /// stock returned exactly once, however many sweeps overlap. Returns the ids cancelled
    /// by this call.
    async fn expire_orders(
        &self,
        placed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Uuid>, OrderError>;
}

/// The store as handlers hold it.
pub type SharedOrders = Arc<dyn OrderStore>;

#[derive(Debug, Default)]
struct Tables {
    skus: BTreeMap<String, Sku>,
    orders: HashMap<Uuid, Order>,
}

/// Orders in process memory: the embedded default of `celeriac dev`. One lock makes each
/// operation atomic, which is what the PostgreSQL adapter gets from transactions.
#[derive(Debug, Default)]
pub struct MemoryOrders {
    tables: Mutex<Tables>,
}

impl MemoryOrders {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Operations check everything before they change anything.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl OrderStore for MemoryOrders {
    async fn put_sku(&self, sku: Sku) -> Result<(), OrderError> {
        if sku.quantity < 0 || sku.price_cents < 0 {
            return Err(OrderError::Rejected(
                "quantity and price cannot be negative".into(),
            ));
        }
        self.lock().skus.insert(sku.id.clone(), sku);
        Ok(())
    }

    async fn sku(&self, id: &str) -> Result<Option<Sku>, OrderError> {
        Ok(self.lock().skus.get(id).cloned())
    }

    async fn skus(&self) -> Result<Vec<Sku>, OrderError> {
        Ok(self.lock().skus.values().cloned().collect())
    }

    async fn create_order(
        &self,
        user_id: Uuid,
        items: &[NewOrderItem],
    ) -> Result<Order, OrderError> {
        let mut tables = self.lock();
        let mut total_cents = 0i64;
        for item in items {
            let sku = tables
                .skus
                .get(&item.sku_id)
                .ok_or_else(|| OrderError::UnknownSku(item.sku_id.clone()))?;
            if sku.quantity < item.quantity {
                return Err(OrderError::OutOfStock(item.sku_id.clone()));
            }
            total_cents += sku.price_cents * i64::from(item.quantity);
        }
        for item in items {
            if let Some(sku) = tables.skus.get_mut(&item.sku_id) {
                sku.quantity -= item.quantity;
            }
        }
        let order = Order {
            id: Uuid::new_v4(),
            user_id,
            status: OrderStatus::AwaitingPayment,
            items: items.to_vec(),
            total_cents,
            created_at: Utc::now(),
            paid_at: None,
            cancelled_at: None,
        };
        tables.orders.insert(order.id, order.clone());
        Ok(order)
    }

    async fn order(&self, user_id: Uuid, id: Uuid) -> Result<Option<Order>, OrderError> {
        Ok(self
            .lock()
            .orders
            .get(&id)
            .filter(|o| o.user_id == user_id)
            .cloned())
    }

    async fn pay_order(&self, user_id: Uuid, id: Uuid) -> Result<Order, OrderError> {
        let mut tables = self.lock();
        let order = tables
            .orders
            .get_mut(&id)
            .filter(|o| o.user_id == user_id)
            .ok_or(OrderError::NotFound)?;
        if order.status != OrderStatus::AwaitingPayment {
            return Err(OrderError::WrongStatus(order.status));
        }
        order.status = OrderStatus::Paid;
        order.paid_at = Some(Utc::now());
        Ok(order.clone())
    }

    async fn expire_orders(
        &self,
        placed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Uuid>, OrderError> {
        let now = Utc::now();
        let mut tables = self.lock();
        let mut due: Vec<(DateTime<Utc>, Uuid)> = tables
            .orders
            .values()
            .filter(|o| o.status == OrderStatus::AwaitingPayment && o.created_at < placed_before)
            .map(|o| (o.created_at, o.id))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut cancelled = Vec::with_capacity(due.len());
        for (_, id) in due {
            let Some(order) = tables.orders.get_mut(&id) else {
                continue;
            };
            order.status = OrderStatus::Cancelled;
            order.cancelled_at = Some(now);
            let items = order.items.clone();
            for item in items {
                if let Some(sku) = tables.skus.get_mut(&item.sku_id) {
                    sku.quantity += item.quantity;
                }
            }
            cancelled.push(id);
        }
        Ok(cancelled)
    }
}
