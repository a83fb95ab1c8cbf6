//! Limits as values: what is counted ([`LimitKey`]), how ([`Algorithm`]) and what happens
//! when the limiter cannot be asked ([`FailurePolicy`]).
//!
//! Limits are meant to be declared once as constants next to the handlers they guard:
//!
//! ```
//! use std::time::Duration;
//! use celeriac_limits::{FailurePolicy, Limit};
//!
//! const LOGIN_PER_ACCOUNT: Limit =
//!     Limit::sliding_log("login-account", 3, Duration::from_secs(60), FailurePolicy::Closed);
//! const API_PER_IP: Limit =
//!     Limit::gcra("api-ip", 100, Duration::from_secs(3600), FailurePolicy::Open).with_burst(20);
//! ```
//!
//! The constructors are `const fn`s that refuse zero rates and empty windows, so a bad
//! declaration fails the build; [`Limit::validate`] checks the remaining bounds at run time
//! for limits built from their public fields.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::LimitError;

/// Longest period or window a limit may have. Longer windows belong in the database.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// Largest sliding-log quota: the log keeps one entry per admitted request, so a quota in
/// the hundreds of thousands should be a GCRA limit instead.
pub const MAX_QUOTA: u32 = 100_000;

/// How requests are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Generic cell rate algorithm: `rate` requests per `period` on average, with up to
    /// `burst` admitted back to back. Stores one timestamp per key, whatever the rate.
    Gcra {
        /// Requests per period.
        rate: u32,
        /// The period `rate` is counted over.
        period: Duration,
        /// Requests admitted at once when the key has been idle.
        burst: u32,
    },
    /// Exact sliding log: at most `quota` admitted requests in any `window`, however they
    /// are spread. Stores one entry per admitted request; for quotas such as "10
    /// generations per hour" where an 11th must never slip through.
    SlidingLog {
        /// Requests admitted per window.
        quota: u32,
        /// The window's length.
        window: Duration,
    },
}

impl Algorithm {
    /// Short name used in storage keys, so changing a limit's algorithm never meets state
    /// of the other kind.
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            Self::Gcra { .. } => "gcra",
            Self::SlidingLog { .. } => "log",
        }
    }

    /// The most requests a key can be granted at once (the `RateLimit-Limit` value).
    pub fn capacity(&self) -> u32 {
        match *self {
            Self::Gcra { burst, .. } => burst,
            Self::SlidingLog { quota, .. } => quota,
        }
    }
}

/// What a request gets when the limiter (Redis) is down or slower than its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Admit the request unchecked; the failure is logged and counted
    /// ([`crate::unchecked_total`]). For limits that protect capacity, where an outage of
    /// the limiter should not become an outage of the API.
    Open,
    /// Refuse with 503 "rate limiter is unavailable". For limits that protect security
    /// (login attempts, password resets), where unlimited guessing is worse than downtime.
    Closed,
}

/// One declared limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Stable name, part of every storage key and shown to clients who hit the limit.
    pub name: &'static str,
    /// How requests are counted.
    pub algorithm: Algorithm,
    /// What happens when the limiter cannot be asked.
    pub on_failure: FailurePolicy,
}

impl Limit {
    /// A GCRA limit of `rate` requests per `period`, with a burst of `rate` (use
    /// [`Limit::with_burst`] to change it).
    ///
    /// # Panics
    /// When `rate` is 0 or `period` is zero (at compile time for a `const`).
    pub const fn gcra(
        name: &'static str,
        rate: u32,
        period: Duration,
        on_failure: FailurePolicy,
    ) -> Self {
        assert!(rate > 0, "a GCRA limit needs a rate above 0");
        assert!(!period.is_zero(), "a GCRA limit needs a non-zero period");
        Self {
            name,
            algorithm: Algorithm::Gcra {
                rate,
                period,
                burst: rate,
            },
            on_failure,
        }
    }

    /// An exact sliding-log limit of `quota` requests in any `window`.
    ///
    /// # Panics
    /// When `quota` is 0 or `window` is zero (at compile time for a `const`).
    pub const fn sliding_log(
        name: &'static str,
        quota: u32,
        window: Duration,
        on_failure: FailurePolicy,
    ) -> Self {
        assert!(quota > 0, "a sliding-log limit needs a quota above 0");
        assert!(
            !window.is_zero(),
            "a sliding-log limit needs a non-zero window"
        );
        Self {
            name,
            algorithm: Algorithm::SlidingLog { quota, window },
            on_failure,
        }
    }

    /// The same GCRA limit with `burst` requests admitted back to back.
    ///
    /// # Panics
    /// When `burst` is 0 or the limit is not a GCRA limit.
    pub const fn with_burst(self, burst: u32) -> Self {
        assert!(burst > 0, "a burst must be at least 1");
        match self.algorithm {
            Algorithm::Gcra { rate, period, .. } => Self {
                algorithm: Algorithm::Gcra {
                    rate,
                    period,
                    burst,
                },
                ..self
            },
            Algorithm::SlidingLog { .. } => panic!("a burst applies to GCRA limits only"),
        }
    }

    /// Checks the bounds the constructors cannot (or that were skipped by building the
    /// struct from its fields). Adapters call it before every check.
    pub fn validate(&self) -> Result<(), LimitError> {
        let invalid = |why: &str| Err(LimitError::Invalid(format!("limit {:?}: {why}", self.name)));
        if self.name.is_empty() {
            return invalid("the name is empty");
        }
        match self.algorithm {
            Algorithm::Gcra {
                rate,
                period,
                burst,
            } => {
                if rate == 0 || burst == 0 {
                    return invalid("rate and burst must be at least 1");
                }
                if period > MAX_WINDOW {
                    return invalid("the period is longer than a year");
                }
                // Both adapters count in whole microseconds.
                if period.as_micros() < u128::from(rate) {
                    return invalid("more than one request per microsecond");
                }
                if gcra_interval(period, rate).saturating_mul(burst) > MAX_WINDOW {
                    return invalid("the burst spans more than a year");
                }
            }
            Algorithm::SlidingLog { quota, window } => {
                if quota == 0 || quota > MAX_QUOTA {
                    return invalid("the quota must be between 1 and 100000");
                }
                if window < Duration::from_millis(1) || window > MAX_WINDOW {
                    return invalid("the window must be between 1 ms and a year");
                }
            }
        }
        Ok(())
    }

    /// The storage key (Redis key, memory map key) that counts `key` under this limit.
    /// Everything that identifies the counter sits inside one `{hash tag}`, so a script on
    /// it is cluster-safe however many keys a later version adds.
    pub fn storage_key(&self, key: &LimitKey) -> String {
        let mut out = String::from("celeriac:rl:{");
        escape_into(&mut out, self.name);
        for (label, value) in key.parts() {
            out.push('|');
            out.push_str(label);
            out.push('=');
            escape_into(&mut out, value);
        }
        out.push_str("}:");
        out.push_str(self.algorithm.tag());
        out
    }
}

/// The time between two requests at a steady `rate` per `period`, whole microseconds
/// (what both adapters count in).
pub(crate) fn gcra_interval(period: Duration, rate: u32) -> Duration {
    let micros = period.as_micros() / u128::from(rate.max(1));
    Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// Whose requests a limit counts: a user, a client IP, a route, or a combination
/// (`LimitKey::user(id).and_route("/api/generate")`). Parts are kept in a fixed order, so
/// the order of the builder calls does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LimitKey {
    user: Option<String>,
    ip: Option<String>,
    route: Option<String>,
}

impl LimitKey {
    /// Counts per user (an account id, or a normalised login name for limits that apply
    /// before anyone is authenticated).
    pub fn user(id: impl std::fmt::Display) -> Self {
        Self::default().and_user(id)
    }

    /// Counts per client address; see [`LimitKey::and_ip`].
    pub fn ip(ip: IpAddr) -> Self {
        Self::default().and_ip(ip)
    }

    /// Counts per route (the matched path pattern, e.g. `/api/v1/tasks/{id}`).
    pub fn route(route: impl Into<String>) -> Self {
        Self::default().and_route(route)
    }

    /// Adds the user to the key.
    pub fn and_user(mut self, id: impl std::fmt::Display) -> Self {
        self.user = Some(id.to_string());
        self
    }

    /// Adds the client address to the key. An IPv6 client counts by its /64 network: one
    /// subscriber usually holds a whole /64 and can rotate addresses inside it at will.
    /// IPv4-mapped IPv6 addresses count as the IPv4 address.
    pub fn and_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip_scope(ip));
        self
    }

    /// Adds the route to the key.
    pub fn and_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    fn parts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("u", self.user.as_deref()),
            ("ip", self.ip.as_deref()),
            ("r", self.route.as_deref()),
        ]
        .into_iter()
        .filter_map(|(label, value)| Some((label, value?)))
    }
}

fn ip_scope(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        },
    }
}

/// Percent-encodes what would change a key's meaning: braces (the hash tag), the part
/// separators and control characters. So a user named `a|ip=1.2.3.4` cannot share a
/// counter with user `a` from that address.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        if matches!(c, '{' | '}' | '|' | '=' | '%') || c.is_control() {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: Limit =
        Limit::sliding_log("login", 3, Duration::from_secs(60), FailurePolicy::Closed);

    #[test]
    fn keys_share_one_hash_tag_and_ignore_builder_order() {
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let a = LOGIN.storage_key(&LimitKey::user("42").and_ip(ip).and_route("/login"));
        let b = LOGIN.storage_key(&LimitKey::route("/login").and_ip(ip).and_user(42));
        assert_eq!(a, b);
        assert_eq!(a, "celeriac:rl:{login|u=42|ip=192.0.2.7|r=/login}:log");
        assert_eq!(a.matches('{').count(), 1);
        assert_eq!(a.matches('}').count(), 1);
    }

    #[test]
    fn hostile_parts_cannot_forge_another_key_or_break_the_hash_tag() {
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let forged = LOGIN.storage_key(&LimitKey::user("a|ip=192.0.2.7"));
        let real = LOGIN.storage_key(&LimitKey::user("a").and_ip(ip));
        assert_ne!(forged, real);
        let braces = LOGIN.storage_key(&LimitKey::user("}x{y}"));
        assert_eq!(braces.matches('{').count(), 1, "{braces}");
        assert_eq!(braces.matches('}').count(), 1, "{braces}");
        assert_ne!(
            LOGIN.storage_key(&LimitKey::user("%7C")),
            LOGIN.storage_key(&LimitKey::user("|"))
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(LimitKey::ip(one), LimitKey::ip(same_64));
        assert_ne!(LimitKey::ip(one), LimitKey::ip(other_64));
        let mapped: IpAddr = "::ffff:198.51.100.4".parse().expect("ip");
        let v4: IpAddr = "198.51.100.4".parse().expect("ip");
        assert_eq!(LimitKey::ip(mapped), LimitKey::ip(v4));
    }

    #[test]
    fn declarations_are_checked() {
        assert!(LOGIN.validate().is_ok());
        let gcra = Limit::gcra("api", 100, Duration::from_secs(3600), FailurePolicy::Open);
        assert_eq!(gcra.algorithm.capacity(), 100);
        assert_eq!(gcra.with_burst(7).algorithm.capacity(), 7);

        let zero_quota = Limit {
            algorithm: Algorithm::SlidingLog {
                quota: 0,
                window: Duration::from_secs(1),
            },
            ..LOGIN
        };
        assert!(matches!(zero_quota.validate(), Err(LimitError::Invalid(_))));
        let too_fast = Limit::gcra(
            "fast",
            2_000_000,
            Duration::from_secs(1),
            FailurePolicy::Open,
        );
        assert!(too_fast.validate().is_err());
        let year_long_burst = Limit::gcra(
            "slow",
            1,
            Duration::from_secs(3600 * 24),
            FailurePolicy::Open,
        )
        .with_burst(400);
        assert!(year_long_burst.validate().is_err());
        let unnamed = Limit { name: "", ..LOGIN };
        assert!(unnamed.validate().is_err());
    }

    #[test]
    #[should_panic(expected = "GCRA limits only")]
    fn a_burst_on_a_sliding_log_is_refused() {
        let _ = LOGIN.with_burst(2);
    }
}
