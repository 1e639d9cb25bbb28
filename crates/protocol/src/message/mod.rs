//! Messages on the wire and on disk (spec remoting.md §5, §6).

pub mod batch;
pub mod compress;
pub mod id;
pub mod properties;
pub mod stored;
pub mod sysflag;

use bytes::Bytes;

pub use properties::{Properties, key as property};
pub use stored::{MessageExt, MessageView, StoredRecord};

/// Java `String.hashCode()` over UTF-16 code units: the consume-queue tag code (spec §6.4).
///
/// ```
/// use karman_protocol::message::java_string_hash;
/// assert_eq!(java_string_hash("TagA"), 2598919);
/// assert_eq!(java_string_hash("*"), 42);
/// ```
pub fn java_string_hash(text: &str) -> i32 {
    java_string_hash_from(0, text)
}

/// Continues [`java_string_hash`] over `text` from `hash`, the hash of what precedes it,
/// so that a concatenation (the index's `topic#key`) hashes without being built.
pub fn java_string_hash_from(hash: i32, text: &str) -> i32 {
    let step = |h: i32, unit: i32| h.wrapping_mul(31).wrapping_add(unit);
    // Keys and tags are nearly always ASCII, where each byte is one UTF-16 unit; the
    // UTF-16 decode costs about three times as much per character (the index hashes
    // every message key on the writer thread).
    if text.is_ascii() {
        text.bytes().fold(hash, |h, byte| step(h, i32::from(byte)))
    } else {
        text.encode_utf16()
            .fold(hash, |h, unit| step(h, i32::from(unit)))
    }
}

/// The consume-queue tag code of a message: the hash of its TAGS, 0 without tags.
pub fn tag_code(tags: Option<&str>) -> i64 {
    tags.filter(|t| !t.is_empty())
        .map_or(0, |t| i64::from(java_string_hash(t)))
}

/// A message as a producer sends it (Java `Message`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub flag: i32,
    pub body: Bytes,
    pub properties: Properties,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        let mut properties = Properties::new();
        properties.insert(property::WAIT_STORE_MSG_OK, "true");
        Self {
            topic: topic.into(),
            flag: 0,
            body: body.into(),
            properties,
        }
    }

    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties.insert(property::TAGS, tags);
        self
    }

    /// Business keys, indexed for QUERY_MESSAGE; joined with single spaces.
    pub fn with_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let joined = keys
            .into_iter()
            .map(|k| k.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        self.properties.insert(property::KEYS, joined);
        self
    }

    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name, value);
        self
    }

    /// Delay level 1..=18 (0 = none).
    pub fn with_delay_level(mut self, level: i32) -> Self {
        if level > 0 {
            self.properties
                .insert(property::DELAY_TIME_LEVEL, level.to_string());
        } else {
            self.properties.remove(property::DELAY_TIME_LEVEL);
        }
        self
    }

    /// 5.x timer message: deliver at an absolute epoch time (`TIMER_DELIVER_MS`). The broker
    /// floors it to its 1 s precision and refuses more than 3 days ahead (spec §7.4).
    pub fn with_deliver_timestamp_ms(mut self, deliver_timestamp_ms: i64) -> Self {
        self.properties
            .insert(property::TIMER_DELIVER_MS, deliver_timestamp_ms.to_string());
        self
    }

    /// 5.x timer message: deliver this many milliseconds after the broker stores it
    /// (`TIMER_DELAY_MS`). A delay level, if also set, wins on the broker.
    pub fn with_delay_ms(mut self, delay_ms: i64) -> Self {
        self.properties
            .insert(property::TIMER_DELAY_MS, delay_ms.to_string());
        self
    }

    pub fn tags(&self) -> Option<&str> {
        self.properties.tags()
    }

    pub fn delay_level(&self) -> i32 {
        self.properties
            .get(property::DELAY_TIME_LEVEL)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn wait_store_msg_ok(&self) -> bool {
        self.properties
            .get(property::WAIT_STORE_MSG_OK)
            .is_none_or(|v| v != "false")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_java() {
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("TagB"), 2_598_920);
        assert_eq!(java_string_hash(""), 0);
        // Java: "日本".hashCode() == 835616 (UTF-16 units 0x65E5, 0x672C)
        assert_eq!(java_string_hash("日本"), 0x65E5 * 31 + 0x672C);
        // overflow wraps like Java int arithmetic
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(tag_code(None), 0);
    }

    proptest::proptest! {
        #[test]
        fn hashing_in_parts_matches_java_over_utf16(a in ".*", b in "[ -~]*") {
            let java = |text: &str| {
                text.encode_utf16()
                    .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
            };
            let whole = format!("{a}{b}");
            proptest::prop_assert_eq!(java_string_hash(&whole), java(&whole));
            proptest::prop_assert_eq!(java_string_hash_from(java_string_hash(&a), &b), java(&whole));
        }
    }

    #[test]
    fn message_builder_sets_properties() {
        let msg = Message::new("T", "body")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_delay_level(3);
        assert_eq!(msg.tags(), Some("TagA"));
        assert_eq!(msg.properties.get("KEYS"), Some("k1 k2"));
        assert_eq!(msg.delay_level(), 3);
        assert!(msg.wait_store_msg_ok());
    }

    #[test]
    fn timer_setters_use_the_5x_property_keys() {
        let msg = Message::new("T", "b")
            .with_deliver_timestamp_ms(1_700_000_000_000)
            .with_delay_ms(1500);
        assert_eq!(
            msg.properties.get("TIMER_DELIVER_MS"),
            Some("1700000000000")
        );
        assert_eq!(msg.properties.get("TIMER_DELAY_MS"), Some("1500"));
    }
}
