//! The message properties string (spec §5.4) and the well-known keys (§6.1).
//!
//! `name 0x01 value 0x02`, repeated; every pair ends with `0x02`. Decoding follows Java:
//! split on `0x02`, ignore segments shorter than 3 characters or without a name and value
//! around the first `0x01`; a later duplicate wins.
//!
//! ```
//! use karman_protocol::message::Properties;
//!
//! let mut props = Properties::new();
//! props.insert("WAIT", "true");
//! props.insert("TAGS", "TagA");
//! assert_eq!(props.encode(), "WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}");
//! assert_eq!(Properties::decode("TAGS\u{1}A\u{2}bad\u{2}TAGS\u{1}B\u{2}").get("TAGS"), Some("B"));
//! ```

/// Separates a name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends every pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// The properties string has an i16 length on the wire and on disk.
pub const PROPERTIES_BYTES_MAX: usize = i16::MAX as usize;

/// Well-known property names (spec §6.1).
pub mod key {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const WAIT_STORE_MSG_OK: &str = "WAIT";
    pub const DELAY_TIME_LEVEL: &str = "DELAY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
    pub const PRODUCER_GROUP: &str = "PGROUP";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const BUYER_ID: &str = "BUYER_ID";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const TRACE_SWITCH: &str = "TRACE_ON";
    pub const UNIQ_CLIENT_MESSAGE_ID_KEYIDX: &str = "UNIQ_KEY";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const CONSUME_START_TIMESTAMP: &str = "CONSUME_START_TIME";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const TRANSACTION_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const MESSAGE_REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    pub const MESSAGE_TTL: &str = "TTL";
    pub const MSG_TYPE: &str = "MSG_TYPE";
    pub const CLUSTER: &str = "CLUSTER";
    pub const POP_CK: &str = "POP_CK";
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
    pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
    pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
    pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
    pub const CRC32: &str = "__CRC32#";
    pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
    pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
    /// Alibaba Cloud SDKs' absolute delivery time (ms); Apache brokers ignore it.
    pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
}

/// An ordered property map: insertion order is kept (so encodings are reproducible) and
/// a later insert of the same name replaces the value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, String)>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a properties string with Java's rules.
    pub fn decode(text: &str) -> Self {
        let mut props = Self::new();
        for (name, value) in iter_pairs(text) {
            props.insert(name, value);
        }
        props
    }

    /// Parses properties bytes; invalid UTF-8 is replaced, never rejected, as Java does.
    pub fn decode_bytes(bytes: &[u8]) -> Self {
        Self::decode(&String::from_utf8_lossy(bytes))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Inserts or replaces; empty names or values are not representable and are ignored.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if name.is_empty() || value.is_empty() {
            return;
        }
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum()
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut String) {
        for (name, value) in &self.entries {
            out.push_str(name);
            out.push(NAME_VALUE_SEPARATOR);
            out.push_str(value);
            out.push(PROPERTY_SEPARATOR);
        }
    }

    /// The TAGS value.
    pub fn tags(&self) -> Option<&str> {
        self.get(key::TAGS)
    }

    /// The space-separated KEYS, each non-empty token.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.get(key::KEYS)
            .unwrap_or("")
            .split(' ')
            .filter(|k| !k.is_empty())
    }

    /// The client message id (UNIQ_KEY).
    pub fn uniq_key(&self) -> Option<&str> {
        self.get(key::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut props = Self::new();
        for (name, value) in iter {
            props.insert(name, value);
        }
        props
    }
}

/// Iterates the valid pairs of a properties string in order, duplicates included.
pub fn iter_pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(PROPERTY_SEPARATOR).filter_map(|segment| {
        // At least three characters, counted without walking the whole value.
        segment.chars().nth(2)?;
        let (name, value) = segment.split_once(NAME_VALUE_SEPARATOR)?;
        (!name.is_empty() && !value.is_empty()).then_some((name, value))
    })
}

/// Finds one property in an encoded string without building a map; the last occurrence
/// wins, as in a decoded map.
pub fn find<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    iter_pairs(text)
        .filter(|(n, _)| *n == name)
        .last()
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_properties_from_spec_5_1() {
        let props: Properties = [("WAIT", "true"), ("TAGS", "TagA")].into_iter().collect();
        let hex: Vec<u8> = vec![
            0x57, 0x41, 0x49, 0x54, 0x01, 0x74, 0x72, 0x75, 0x65, 0x02, 0x54, 0x41, 0x47, 0x53,
            0x01, 0x54, 0x61, 0x67, 0x41, 0x02,
        ];
        assert_eq!(props.encode().as_bytes(), &hex[..]);
        assert_eq!(Properties::decode_bytes(&hex), props);
    }

    #[test]
    fn decode_ignores_short_and_nameless_segments() {
        let props = Properties::decode("\u{1}v\u{2}ab\u{2}k\u{1}\u{2}x\u{1}y\u{2}");
        assert_eq!(props.len(), 1);
        assert_eq!(props.get("x"), Some("y"));
    }

    #[test]
    fn value_may_contain_the_name_separator() {
        let props = Properties::decode("k\u{1}a\u{1}b\u{2}");
        assert_eq!(props.get("k"), Some("a\u{1}b"));
    }

    #[test]
    fn find_matches_decoded_map() {
        let text = "KEYS\u{1}a b\u{2}TAGS\u{1}x\u{2}KEYS\u{1}c\u{2}";
        assert_eq!(find(text, "KEYS"), Properties::decode(text).get("KEYS"));
        assert_eq!(find(text, "NOPE"), None);
    }

    #[test]
    fn keys_split_on_spaces() {
        let props = Properties::decode("KEYS\u{1}order-1  order-2\u{2}");
        assert_eq!(props.keys().collect::<Vec<_>>(), vec!["order-1", "order-2"]);
    }
}
