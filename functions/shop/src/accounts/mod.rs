//! The shop's accounts (seed 002's users): registration with an emailed confirmation
//! (pending accounts expire with their link), login to a session, rotating refresh tokens,
//! logout, email change confirmed at the new address, and password reset by mailed link.
//!
//! - [`store`]: the `AccountStore` port, its types, and the in-memory adapter;
//! - [`postgres`]: the PostgreSQL adapter (tables in `shared/db/migrations`);
//! - [`secrets`]: password hashing and the one-time tokens mailed or handed out;
//! - [`http`]: the endpoints, one router each;
//! - [`pages`]: the pages a mailed link opens (a form that posts; fetching acts on nothing).

pub mod http;
pub mod pages;
pub mod postgres;
pub mod secrets;
pub mod store;

pub use store::{
    AccountError, AccountStore, MemoryAccounts, NewUser, Refresh, SharedAccounts, TokenKind, User,
};
