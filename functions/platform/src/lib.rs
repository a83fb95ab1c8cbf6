//! Platform functions every app shares. Today: `GET /api/health/`.
//!
//! The handlers live here, next to their tests; `src/bin/<function>.rs` only wires a
//! Lambda around them, and the dev runner merges the same routers into one server.

pub mod adapters;
pub mod health;

pub use adapters::{Adapters, Defaults};
