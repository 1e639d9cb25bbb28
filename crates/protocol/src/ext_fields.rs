//! `ExtFields`: the string map every command header carries (spec §1.11).
//!
//! A SEND_MESSAGE_V2 request holds about fifteen short entries, and every request and
//! response builds, walks and drops one of these maps on both ends of the connection. A
//! `BTreeMap<String, String>` spent two heap strings plus tree nodes per entry on that; here
//! the entries sit in one `Vec`, and [`CompactString`] keeps keys and values of up to 24
//! bytes inline, so a typical header costs a single allocation.
//!
//! The entries stay sorted by key, with at most one entry per key: encoders write them in
//! that order, so encoded headers are deterministic, and two maps with the same content
//! compare equal.
//!
//! ```
//! use karman_protocol::ExtFields;
//!
//! let mut fields = ExtFields::new();
//! fields.insert("topic".into(), "TopicTest".into());
//! fields.insert("queueId".into(), "3".into());
//! assert_eq!(fields.insert("queueId".into(), "4".into()).as_deref(), Some("3"));
//! assert_eq!(&fields["queueId"], "4");
//! let keys: Vec<&str> = fields.iter().map(|(key, _)| key).collect();
//! assert_eq!(keys, ["queueId", "topic"]);
//! ```

use std::fmt;
use std::iter::FusedIterator;
use std::mem;
use std::ops::Index;
use std::slice;

use compact_str::CompactString;

type Entry = (CompactString, CompactString);

/// The ext fields of one command: string keys to string values, sorted by key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExtFields {
    /// Sorted by key, keys unique.
    entries: Vec<Entry>,
}

impl ExtFields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Builds the map from entries in any order; for a repeated key the entry that comes
    /// last wins, as if they had been inserted one by one. Sorting once keeps this
    /// O(n log n) where inserting each entry into the sorted `Vec` would be O(n²): a
    /// 16 MiB binary header can declare two million fields.
    pub(crate) fn from_unsorted(mut entries: Vec<Entry>) -> Self {
        sort_keep_last(&mut entries);
        Self { entries }
    }

    /// Like [`ExtFields::from_unsorted`], where `None` is a JSON null: it hides any earlier
    /// value of its key and leaves the key absent unless a later value follows.
    pub(crate) fn from_unsorted_nullable(
        mut entries: Vec<(CompactString, Option<CompactString>)>,
    ) -> Self {
        sort_keep_last(&mut entries);
        Self {
            entries: entries
                .into_iter()
                .filter_map(|(key, value)| value.map(|value| (key, value)))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(probe, _)| probe.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let at = self.position(key).ok()?;
        self.entries.get(at).map(|(_, value)| value.as_str())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value` and returns the value it replaces.
    pub fn insert(&mut self, key: CompactString, value: CompactString) -> Option<CompactString> {
        // Typed headers insert their fields in declaration order, which is often key order
        // (SEND_MESSAGE_V2's `a` to `n`): appending then costs one comparison, not a search.
        if self
            .entries
            .last()
            .is_none_or(|(last, _)| last.as_str() < key.as_str())
        {
            self.entries.push((key, value));
            return None;
        }
        match self.position(&key) {
            Ok(at) => self
                .entries
                .get_mut(at)
                .map(|(_, old)| mem::replace(old, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        let at = self.position(key).ok()?;
        Some(self.entries.remove(at).1)
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            entries: self.entries.iter(),
        }
    }
}

/// Sorts by key and keeps, for each key, the entry that came last in `entries`.
fn sort_keep_last<V>(entries: &mut Vec<(CompactString, V)>) {
    // A stable sort leaves equal keys in arrival order; `dedup_by` keeps the first of a run,
    // so each later value is moved into the kept slot before its own slot is dropped.
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    entries.dedup_by(|(later_key, later_value), (kept_key, kept_value)| {
        if later_key == kept_key {
            mem::swap(later_value, kept_value);
            true
        } else {
            false
        }
    });
}

impl Index<&str> for ExtFields {
    type Output = str;

    /// # Panics
    ///
    /// When `key` is absent, like `BTreeMap`'s index.
    fn index(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no ext field `{key}`"))
    }
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_unsorted(
            iter.into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The entries of an [`ExtFields`] in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    entries: slice::Iter<'a, Entry>,
}

fn as_strs((key, value): &Entry) -> (&str, &str) {
    (key.as_str(), value.as_str())
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(as_strs)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.entries.next_back().map(as_strs)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn insert_replaces_and_returns_the_old_value() {
        let mut fields = ExtFields::new();
        assert_eq!(fields.insert("b".into(), "1".into()), None);
        assert_eq!(fields.insert("a".into(), "2".into()), None);
        assert_eq!(fields.insert("b".into(), "3".into()).as_deref(), Some("1"));
        assert_eq!(fields.len(), 2);
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
    }

    #[test]
    fn remove_returns_the_value_and_forgets_the_key() {
        let mut fields: ExtFields = [("k", "v"), ("j", "w")].into_iter().collect();
        assert_eq!(fields.remove("k").as_deref(), Some("v"));
        assert_eq!(fields.remove("k"), None);
        assert!(!fields.contains_key("k"));
        assert_eq!(fields.get("j"), Some("w"));
    }

    #[test]
    fn collecting_keeps_the_last_value_of_a_repeated_key() {
        let fields: ExtFields = [("b", "1"), ("a", "x"), ("b", "2"), ("b", "3")]
            .into_iter()
            .collect();
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("a", "x"), ("b", "3")]);
    }

    #[test]
    fn a_null_hides_earlier_values_until_a_later_one() {
        let entries = vec![
            ("a".into(), Some("1".into())),
            ("a".into(), None),
            ("b".into(), None),
            ("b".into(), Some("2".into())),
        ];
        let fields = ExtFields::from_unsorted_nullable(entries);
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("b", "2")]);
    }

    #[test]
    fn debug_prints_like_a_map() {
        let fields: ExtFields = [("b", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(format!("{fields:?}"), r#"{"a": "1", "b": "2"}"#);
    }

    #[test]
    #[should_panic(expected = "no ext field `missing`")]
    fn indexing_an_absent_key_panics() {
        let _ = &ExtFields::new()["missing"];
    }

    proptest! {
        #[test]
        fn behaves_like_a_btree_map(
            ops in prop::collection::vec(("[a-d]{0,3}", prop::option::of("[x-z]{0,2}")), 0..40),
        ) {
            let mut ours = ExtFields::new();
            let mut model = BTreeMap::new();
            for (key, value) in &ops {
                match value {
                    Some(value) => prop_assert_eq!(
                        ours.insert(key.into(), value.into()).map(String::from),
                        model.insert(key.clone(), value.clone())
                    ),
                    None => prop_assert_eq!(
                        ours.remove(key).map(String::from),
                        model.remove(key)
                    ),
                }
            }
            let want: Vec<(&str, &str)> =
                model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(ours.iter().collect::<Vec<_>>(), want);
            let collected: ExtFields = ops
                .iter()
                .filter_map(|(key, value)| value.as_deref().map(|value| (key.as_str(), value)))
                .collect();
            let mut inserted = ExtFields::new();
            for (key, value) in ops.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))) {
                inserted.insert(key.into(), value.into());
            }
            prop_assert_eq!(collected, inserted);
        }
    }
}
