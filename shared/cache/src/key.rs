//! What names a cache entry: its family (the unit of statistics), its id within the
//! family, and the tags that group it for invalidation.

/// Families the cache uses for its own keys.
const RESERVED_FAMILIES: [&str; 2] = ["lock", "tag"];

/// The name of one cache entry: `{family}:{id}` under the cache's prefix and version,
/// plus the tags it is invalidated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub(crate) family: &'static str,
    pub(crate) id: String,
    pub(crate) tags: Vec<String>,
}

impl CacheKey {
    /// The entry `id` of `family` (`CacheKey::new("course", "42")`). The id may hold any
    /// text, colons included (`"events:42"`).
    ///
    /// # Panics
    ///
    /// When `family` is empty, holds anything but ASCII letters, digits, `-` and `_`, or is
    /// `lock` or `tag` (the cache's own). Families are constants in code, so this is a bug
    /// found by the first test that touches the key, never a runtime surprise.
    pub fn new(family: &'static str, id: impl Into<String>) -> Self {
        assert!(
            !family.is_empty()
                && family
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                && !RESERVED_FAMILIES.contains(&family),
            "invalid cache family {family:?}: use ASCII letters, digits, - and _, not lock or tag"
        );
        Self {
            family,
            id: id.into(),
            tags: Vec::new(),
        }
    }

    /// The same key, also invalidated by [`crate::Cache::invalidate_tag`] with `tag`
    /// (e.g. `course:42` on each of a course's keys, `courses` on every list).
    #[must_use]
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        let tag = tag.into();
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }

    /// The family, as [`crate::CacheStats`] reports it.
    pub fn family(&self) -> &'static str {
        self.family
    }

    /// The id within the family.
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_may_hold_anything_and_tags_are_kept_once() {
        let key = CacheKey::new("calendar", "events:42")
            .tagged("user:42")
            .tagged("user:42");
        assert_eq!(key.family(), "calendar");
        assert_eq!(key.id(), "events:42");
        assert_eq!(key.tags, ["user:42"]);
    }

    #[test]
    #[should_panic(expected = "invalid cache family")]
    fn a_family_with_a_colon_is_refused() {
        let _ = CacheKey::new("course:list", "1");
    }

    #[test]
    #[should_panic(expected = "invalid cache family")]
    fn the_reserved_families_are_refused() {
        let _ = CacheKey::new("lock", "1");
    }
}
