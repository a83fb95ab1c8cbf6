//! Hit, miss and error counts per key family, kept in process and read as a snapshot
//! (for the staff statistics endpoint, metrics, and tests).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// The counts of one family since the cache was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FamilyStats {
    /// Lookups served from the cache (fresh, stale, or filled by another caller).
    pub hits: u64,
    /// Lookups that ran the compute function (including those the store failed).
    pub misses: u64,
    /// Store calls that failed or timed out (each also made a lookup a miss, or a write or
    /// invalidation not happen).
    pub errors: u64,
}

impl FamilyStats {
    /// Hits over lookups; `None` before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        // Counts stay far below 2^52, where the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// A snapshot of every family's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStats {
    /// Counts by family name; families never used are absent.
    pub families: BTreeMap<String, FamilyStats>,
}

impl CacheStats {
    /// One family's counts (zero when it was never used).
    pub fn family(&self, family: &str) -> FamilyStats {
        self.families.get(family).copied().unwrap_or_default()
    }

    /// All families together.
    pub fn total(&self) -> FamilyStats {
        self.families
            .values()
            .fold(FamilyStats::default(), |sum, f| FamilyStats {
                hits: sum.hits + f.hits,
                misses: sum.misses + f.misses,
                errors: sum.errors + f.errors,
            })
    }
}

/// What happened, for [`Counters::count`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Hit,
    Miss,
    Error,
}

/// The live counts behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters(Mutex<BTreeMap<&'static str, FamilyStats>>);

impl Counters {
    pub(crate) fn count(&self, family: &'static str, outcome: Outcome) {
        // A panic cannot leave a count half-updated, so a poisoned lock is still usable.
        let mut families = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stats = families.entry(family).or_default();
        match outcome {
            Outcome::Hit => stats.hits += 1,
            Outcome::Miss => stats.misses += 1,
            Outcome::Error => stats.errors += 1,
        }
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let families = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        CacheStats {
            families: families
                .iter()
                .map(|(name, stats)| ((*name).to_owned(), *stats))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_add_up_per_family_and_in_total() {
        let counters = Counters::default();
        counters.count("course", Outcome::Hit);
        counters.count("course", Outcome::Hit);
        counters.count("course", Outcome::Miss);
        counters.count("user", Outcome::Error);
        let stats = counters.snapshot();
        assert_eq!(
            stats.family("course"),
            FamilyStats {
                hits: 2,
                misses: 1,
                errors: 0
            }
        );
        assert_eq!(stats.family("never"), FamilyStats::default());
        assert_eq!(stats.total().errors, 1);
        assert_eq!(stats.family("course").hit_ratio(), Some(2.0 / 3.0));
        assert_eq!(stats.family("user").hit_ratio(), None);
    }
}
