//! Caching over the key-value port ([`celeriac_kv::SharedKv`]): cache-aside reads
//! ([`Cache::get_or_compute`]), write-through ([`Cache::put`]), invalidation of one key or
//! of a tagged group, hit/miss/error counts per key family ([`Cache::stats`]) and a tower
//! layer that reports each request's hits and misses in `X-Cache-Hits` / `X-Cache-Misses`
//! ([`CacheHeadersLayer`]).
//!
//! # Keys
//!
//! An entry of family `course` with id `42` lives at `{prefix}:{version}:course:42`
//! (`cache:v1:course:42` by default). Bumping [`CacheConfig::version`] abandons every old
//! entry at once (they expire on their own), which is how a change of a cached type's
//! shape ships. A version of `1` gives Django's `KEY_PREFIX:VERSION:key` layout, so a
//! team moving from a Django cache keeps its keys. Refresh locks and tag sets live under
//! the reserved families `lock` and `tag`.
//!
//! # A cache that fails is a miss
//!
//! Every store call is bounded by [`CacheConfig::timeout`] (100 ms by default). An error
//! or a timeout is logged (`warn`, with family, operation and key), counted as an error
//! of the family, and treated as a miss: the value is computed and returned, and the
//! caller never sees a cache error. A failed read does not try to lock or write back, so
//! a cache that is down costs each request one bounded wait, not three.
//!
//! # Stampede protection: a refresh lock with stale-while-revalidate
//!
//! Chosen over probabilistic early refresh (XFetch) because that leaves a cold key (first
//! use, or just invalidated) unprotected and bounds recomputes only in probability,
//! and over in-process single-flight because each Lambda execution environment serves one
//! request at a time: the callers that stampede are in different processes, so only the
//! store can coordinate them.
//!
//! - Each entry carries the time it stops being fresh; the store keeps it
//!   [`CacheConfig::stale_for`] longer. A fresh entry is a hit in one `GET`.
//! - A stale entry: the caller that wins a short lock (`SET NX PX`, expiring after
//!   [`CacheConfig::refresh_lock`]) recomputes; everyone else is served the stale value at
//!   once. A hot key that expires under load is recomputed once, and nobody waits.
//! - No entry at all: the lock winner computes; the others poll the entry (10 ms doubling
//!   to 100 ms) and take it when it lands. A waiter that finds the lock gone without an
//!   entry (the winner failed) takes the lock itself; one that has waited
//!   [`CacheConfig::refresh_lock`] computes on its own, so a lost winner delays but never
//!   blocks.
//!
//! The lock is released after the write unless the compute outlasted it (then it may
//! already be another caller's); the cost of a stolen lock is one extra recompute.
//!
//! # Group invalidation: tag sets
//!
//! A [`CacheKey`] may carry tags ([`CacheKey::tagged`]). Writing the entry first adds its
//! key to a set per tag (`{prefix}:{version}:tag:{tag}`, TTL at least the entry's), and
//! writes the entry only if that worked, so no live entry escapes its tags.
//! [`Cache::invalidate_tag`] reads the set, deletes each member with its own command and
//! removes exactly those members from the set. Chosen over version keys because a version
//! key must be read before every lookup (two round trips per hit), while a tag costs
//! nothing on the read path: a hit stays one `GET`. Nothing calls `KEYS` or `SCAN`, no
//! command spans two keys, so it runs unchanged on a cluster.
//!
//! As with any cache-aside cache, a fill that read the source before a write and stores
//! after that write's invalidation leaves the old value for at most the entry's TTL.

mod cache;
mod headers;
mod key;
mod stats;

pub use cache::{Cache, CacheConfig};
pub use headers::{CACHE_HITS_HEADER, CACHE_MISSES_HEADER, CacheHeaders, CacheHeadersLayer};
pub use key::CacheKey;
pub use stats::{CacheStats, FamilyStats};
