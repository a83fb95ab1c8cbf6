//! The shop's accounts (seed 002's users): registration with an emailed confirmation,
//! login to a session, rotating refresh tokens, logout, and email change confirmed at the
//! new address.
//!
//! - [`store`]: the `AccountStore` port, its types, and the in-memory adapter;
//! - [`postgres`]: the PostgreSQL adapter (tables in `shared/db/migrations`);
//! - [`secrets`]: password hashing and the one-time tokens mailed or handed out;
//! - [`http`]: the endpoints, one router each.

pub mod http;
pub mod postgres;
pub mod secrets;
pub mod store;

pub use store::{
    AccountError, AccountStore, MemoryAccounts, NewUser, Refresh, SharedAccounts, TokenKind, User,
};
