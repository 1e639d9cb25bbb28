//! The fastjson dialect of Java's JSON bodies (spec remoting.md §4.0).
//!
//! fastjson writes two things standard JSON forbids: integer map keys without quotes
//! (`{0:"127.0.0.1:10911"}`) and objects as map keys
//! (`{{"brokerName":"b","queueId":0,"topic":"T"}:5}`). Reading: [`normalize`] rewrites both
//! into standard JSON (the unquoted number becomes a string key, the object key becomes a
//! string holding the object's JSON text) so serde can take it from there. Writing:
//! [`to_vec`] prints integer keys unquoted, and keys made with [`ObjectKey`] as raw objects.
//!
//! ```
//! use std::collections::BTreeMap;
//! use karman_protocol::body::fastjson;
//!
//! let addrs: BTreeMap<i64, String> = [(0, "127.0.0.1:10911".to_string())].into();
//! assert_eq!(fastjson::to_vec(&addrs), br#"{0:"127.0.0.1:10911"}"#);
//! let back: BTreeMap<i64, String> = fastjson::from_slice(br#"{0:"127.0.0.1:10911"}"#, "addrs").unwrap();
//! assert_eq!(back, addrs);
//! ```

use std::borrow::Cow;
use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter};

use crate::error::{ProtocolError, Result};

/// Marks a string map key that holds raw JSON to print unquoted.
const RAW_KEY_SENTINEL: char = '\u{0}';

/// Parses a body that may be in the fastjson dialect.
pub fn from_slice<T: DeserializeOwned>(input: &[u8], what: &'static str) -> Result<T> {
    let normalized = normalize(input).map_err(|reason| ProtocolError::BodyMalformed {
        what,
        reason: reason.to_owned(),
    })?;
    serde_json::from_slice(&normalized).map_err(|source| ProtocolError::BodyJson { what, source })
}

/// Writes standard JSON (numeric keys quoted).
pub fn to_standard_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing our own body types into a Vec cannot fail: every map key is a string or
    // an integer.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Writes the fastjson dialect: integer keys unquoted, [`ObjectKey`] keys as raw objects.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, FastjsonFormatter::default());
    if value.serialize(&mut serializer).is_err() {
        return Vec::new();
    }
    out
}

/// A map key serialized as a JSON object (fastjson's `Map<MessageQueue, V>` form).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey<K>(pub K);

impl<K: Serialize> Serialize for ObjectKey<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let json = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        let mut key = String::with_capacity(json.len() + 1);
        key.push(RAW_KEY_SENTINEL);
        key.push_str(&json);
        serializer.serialize_str(&key)
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for ObjectKey<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        serde_json::from_str(&text)
            .map(ObjectKey)
            .map_err(serde::de::Error::custom)
    }
}

/// A serde_json formatter that drops the quotes around integer map keys and prints
/// sentinel-marked string keys raw.
#[derive(Default)]
struct FastjsonFormatter {
    in_key: bool,
    /// A key string has begun but nothing is written yet: we do not know if it is an
    /// integer (no quote), a raw key (no quote) or a plain string (quote).
    quote_pending: bool,
    key_unquoted: bool,
    key_raw: bool,
}

impl FastjsonFormatter {
    fn flush_quote<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.quote_pending {
            self.quote_pending = false;
            writer.write_all(b"\"")?;
        }
        Ok(())
    }

    fn number_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, text: &str) -> io::Result<()> {
        if self.in_key && self.quote_pending {
            self.quote_pending = false;
            self.key_unquoted = true;
        }
        writer.write_all(text.as_bytes())
    }
}

macro_rules! number_methods {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: $ty) -> io::Result<()> {
            self.number_key(writer, &value.to_string())
        })*
    };
}

impl Formatter for FastjsonFormatter {
    number_methods! {
        write_i8(i8);
        write_i16(i16);
        write_i32(i32);
        write_i64(i64);
        write_i128(i128);
        write_u8(u8);
        write_u16(u16);
        write_u32(u32);
        write_u64(u64);
        write_u128(u128);
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.in_key = true;
        self.key_unquoted = false;
        self.key_raw = false;
        if first {
            Ok(())
        } else {
            writer.write_all(b",")
        }
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.in_key = false;
        Ok(())
    }

    fn begin_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.in_key {
            self.quote_pending = true;
            Ok(())
        } else {
            writer.write_all(b"\"")
        }
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.in_key {
            self.flush_quote(writer)?;
            if self.key_unquoted || self.key_raw {
                return Ok(());
            }
        }
        writer.write_all(b"\"")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.flush_quote(writer)?;
        writer.write_all(fragment.as_bytes())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        if self.in_key && self.quote_pending && matches!(escape, CharEscape::AsciiControl(0)) {
            // The sentinel opens a raw key: print the rest of it unescaped.
            self.quote_pending = false;
            self.key_raw = true;
            return Ok(());
        }
        self.flush_quote(writer)?;
        if self.key_raw {
            let raw: &[u8] = match escape {
                CharEscape::Quote => b"\"",
                CharEscape::ReverseSolidus => b"\\",
                CharEscape::Solidus => b"/",
                CharEscape::Backspace => b"\x08",
                CharEscape::FormFeed => b"\x0c",
                CharEscape::LineFeed => b"\n",
                CharEscape::CarriageReturn => b"\r",
                CharEscape::Tab => b"\t",
                CharEscape::AsciiControl(byte) => return writer.write_all(&[byte]),
            };
            return writer.write_all(raw);
        }
        serde_json::ser::CompactFormatter.write_char_escape(writer, escape)
    }
}

/// Rewrites fastjson's non-standard keys into standard JSON. Returns the input unchanged
/// (borrowed) when it has none.
pub fn normalize(input: &[u8]) -> std::result::Result<Cow<'_, [u8]>, &'static str> {
    if !needs_rewrite(input)? {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut stack: Vec<u8> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'"' => {
                let end = string_end(input, i)?;
                out.extend_from_slice(input.get(i..end).ok_or("string out of bounds")?);
                i = end;
                expect_key = false;
                continue;
            }
            b'{' if expect_key => {
                let end = value_end(input, i)?;
                let text = std::str::from_utf8(input.get(i..end).ok_or("key out of bounds")?)
                    .map_err(|_| "object key is not UTF-8")?;
                let quoted = serde_json::to_string(text).map_err(|_| "object key")?;
                out.extend_from_slice(quoted.as_bytes());
                i = end;
                expect_key = false;
                continue;
            }
            b'-' | b'0'..=b'9' if expect_key => {
                let end = input
                    .get(i + 1..)
                    .and_then(|rest| {
                        rest.iter().position(|b| {
                            !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                        })
                    })
                    .map_or(input.len(), |p| i + 1 + p);
                out.push(b'"');
                out.extend_from_slice(input.get(i..end).ok_or("number out of bounds")?);
                out.push(b'"');
                i = end;
                expect_key = false;
                continue;
            }
            b'{' => {
                stack.push(b'{');
                expect_key = true;
            }
            b'[' => {
                stack.push(b'[');
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&b'{'),
            b':' => expect_key = false,
            _ => {}
        }
        out.push(byte);
        i += 1;
    }
    Ok(Cow::Owned(out))
}

/// True when some object key is not a quoted string.
fn needs_rewrite(input: &[u8]) -> std::result::Result<bool, &'static str> {
    let mut stack: Vec<u8> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'"' => {
                i = string_end(input, i)?;
                expect_key = false;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'}' if expect_key => {
                stack.pop();
                expect_key = false;
            }
            _ if expect_key => return Ok(true),
            b'{' => {
                stack.push(b'{');
                expect_key = true;
            }
            b'[' => stack.push(b'['),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => expect_key = stack.last() == Some(&b'{'),
            _ => {}
        }
        i += 1;
    }
    Ok(false)
}

/// Index one past the closing quote of the string starting at `start`.
fn string_end(input: &[u8], start: usize) -> std::result::Result<usize, &'static str> {
    let mut i = start + 1;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string")
}

/// Index one past the object or array starting at `start`.
fn value_end(input: &[u8], start: usize) -> std::result::Result<usize, &'static str> {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'"' => {
                i = string_end(input, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or("unbalanced brackets")?;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err("unterminated object key")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mq {
        broker_name: String,
        queue_id: i32,
        topic: String,
    }

    #[test]
    fn standard_json_passes_through_untouched() {
        let input = br#"{"a":{"0":"x"},"b":[1,{"c":"d"}]}"#;
        assert!(matches!(normalize(input).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn unquoted_numeric_keys_are_quoted() {
        let input = br#"{"brokerAddrs":{0:"a:1",1:"b:2"},"x":[{-3:"y"}]}"#;
        let out = normalize(input).unwrap();
        assert_eq!(
            &out[..],
            br#"{"brokerAddrs":{"0":"a:1","1":"b:2"},"x":[{"-3":"y"}]}"#
        );
    }

    #[test]
    fn object_keys_become_strings() {
        let input =
            br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"maxOffset":3}}}"#;
        let parsed: BTreeMap<String, BTreeMap<ObjectKey<Mq>, BTreeMap<String, i64>>> =
            from_slice(input, "test").unwrap();
        let table = &parsed["offsetTable"];
        let (key, value) = table.iter().next().unwrap();
        assert_eq!(key.0.topic, "T");
        assert_eq!(value["maxOffset"], 3);
    }

    #[test]
    fn object_keys_are_written_raw() {
        let mut table = BTreeMap::new();
        table.insert(
            ObjectKey(Mq {
                broker_name: "broker-a".into(),
                queue_id: 0,
                topic: "T".into(),
            }),
            5i64,
        );
        assert_eq!(
            String::from_utf8(to_vec(&table)).unwrap(),
            r#"{{"brokerName":"broker-a","queueId":0,"topic":"T"}:5}"#
        );
        let back: BTreeMap<ObjectKey<Mq>, i64> = from_slice(&to_vec(&table), "test").unwrap();
        assert_eq!(back, table);
    }

    #[test]
    fn string_keys_that_look_numeric_stay_quoted() {
        let table: BTreeMap<String, i64> = [("123".to_string(), 1)].into();
        assert_eq!(to_vec(&table), br#"{"123":1}"#);
    }

    #[test]
    fn strings_with_braces_and_escapes_are_not_confused_for_keys() {
        let input = br#"{"a":"{0:\"x\"}","b":{1:"\\"}}"#;
        let out = normalize(input).unwrap();
        assert_eq!(&out[..], br#"{"a":"{0:\"x\"}","b":{"1":"\\"}}"#);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [&b"{\"a"[..], b"{{", b"{0", b"\"", b"{{\"a\":1"] {
            let _ = normalize(input);
            assert!(from_slice::<serde_json::Value>(input, "x").is_err());
        }
    }
}
