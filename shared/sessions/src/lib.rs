//! Server-side sessions in the key-value store, for login, logout and authenticated
//! requests.
//!
//! - A session token is 256 bits from the operating system's CSPRNG, as 64 lowercase hex
//!   characters. It is opaque: it means nothing without the store.
//! - The store never sees the token: the record lives at `{prefix}:{sha256(token) in hex}`
//!   (`session:…`), so a leaked dump or `MONITOR` output cannot be replayed as a login.
//! - The record holds the user id, when the session was created and when it was last seen.
//!   Each use resets its TTL (sliding expiry, [`SessionConfig::idle_timeout`]) in the same
//!   round trip as the read (`GETEX`); `last_seen` is rewritten at most once per
//!   [`SessionConfig::touch_interval`], with a write that cannot resurrect a session
//!   logged out meanwhile. A session also ends [`SessionConfig::max_lifetime`] after
//!   login, however busy.
//! - Login ([`Sessions::create`]) always issues a fresh token (session fixation cannot
//!   work) and can end the session the client presented.
//! - Each user has a set of their sessions' hashes (`{prefix}:user:{user_id}`) for
//!   [`Sessions::revoke_all`]. The set and the records hash to different cluster slots,
//!   so every step is its own single-key command. The set is written before the record
//!   and outlives every record it lists, so no live session escapes it.
//! - A token travels as `Authorization: Bearer <token>` or in the cookie built by
//!   [`Sessions::set_cookie`] (`HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age`).
//! - [`Authenticated`] is the axum extractor: 401 when no valid session is presented, 503
//!   when the store cannot say (fail closed: an outage never lets a request through).
//!
//! A `revoke_all` that runs while the same user logs in may miss that new session (its
//! record can land after the revocation read the set); the login is then simply later.

mod cookie;
mod extract;
mod store;

pub use cookie::SameSite;
pub use extract::{Authenticated, caller, presented, presented_in};
pub use store::{NewSession, Session, SessionConfig, SessionError, SessionToken, Sessions};
