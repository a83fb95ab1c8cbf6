//! Platform functions every app shares. `GET /api/health/` and the task status endpoints.
//!
//! The handlers live here, next to their tests; `src/bin/<function>.rs` only wires a
//! Lambda around them, and the dev runner merges the same routers into one server.

pub mod adapters;
pub mod endpoint;
pub mod health;
pub mod task_status;

pub use adapters::{Adapters, Database, Defaults};
pub use endpoint::run_endpoint;
