//! The shop's orders (seed 002): SKUs with stock, orders that reserve it while awaiting
//! payment, and the expiry sweep (`check_expired_orders`) that cancels unpaid orders and
//! returns their stock exactly once.
//!
//! - [`store`]: the `OrderStore` port, its types, and the in-memory adapter;
//! - [`postgres`]: the PostgreSQL adapter (tables in `shared/db/migrations`);
//! - [`expiry`]: the `check_expired_orders` task;
//! - [`http`]: the endpoints, one router each;
//! - [`catalogue`]: the sample SKUs `celeriac dev` starts with.

pub mod catalogue;
pub mod expiry;
pub mod http;
pub mod postgres;
pub mod store;

pub use store::{
    MemoryOrders, NewOrderItem, Order, OrderError, OrderItem, OrderStatus, OrderStore,
    SharedOrders, Sku,
};
