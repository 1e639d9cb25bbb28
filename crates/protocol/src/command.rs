//! `RemotingCommand`: the unit every request and response travels in (remoting.md §1.3–§1.8).
//!
//! A command is decoded from a [`Frame`] by its serialize type and encoded back either as
//! JSON (what Java sends by default) or as the ROCKETMQ binary header:
//!
//! ```text
//! ROCKETMQ binary header (all big-endian)
//! | code i16 | language u8 | version i16 | opaque i32 | flag i32 |
//! | remarkLen i32 | remark | extLen i32 | (keyLen i16 key valLen i32 val)* |
//! ```
//!
//! ```
//! use bytes::BytesMut;
//! use karman_protocol::command::RemotingCommand;
//! use karman_protocol::frame::{FrameDecoder, SerializeType};
//! use karman_protocol::RequestCode;
//!
//! let mut request = RemotingCommand::request(RequestCode::GetRouteinfoByTopic);
//! request.ext_fields.insert("topic".into(), "TopicTest".into());
//! request.opaque = 1;
//! let mut wire = BytesMut::new();
//! request.encode(SerializeType::RocketMq, &mut wire).unwrap();
//! assert_eq!(wire.len(), 49); // spec §1.7: length field 45, plus the prefix
//!
//! let frame = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
//! let decoded = RemotingCommand::decode(frame).unwrap();
//! assert_eq!(&decoded.ext_fields["topic"], "TopicTest");
//! ```

use std::fmt;
use std::io::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use compact_str::{CompactString, ToCompactString, format_compact};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::code::{LanguageCode, RequestCode, ResponseCode, version};
use crate::error::{ProtocolError, Result};
use crate::frame::{Frame, SerializeType, encode_frame_prefix};
use crate::header::ext;

pub use crate::ext_fields::ExtFields;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit 1: the requester expects no response.
pub const FLAG_ONEWAY: i32 = 0x2;

/// A command body: empty, one buffer, or several buffers written back to back (a pull
/// response made of commit-log slices is sent without copying them together).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Body {
    #[default]
    Empty,
    Single(Bytes),
    Chain(Vec<Bytes>),
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Single(bytes) => bytes.len(),
            Self::Chain(parts) => parts.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts in write order.
    pub fn parts(&self) -> &[Bytes] {
        match self {
            Self::Empty => &[],
            Self::Single(bytes) => std::slice::from_ref(bytes),
            Self::Chain(parts) => parts,
        }
    }

    /// The body as one buffer; copies only a multi-part body.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::Single(bytes) => bytes.clone(),
            Self::Chain(parts) => {
                let mut joined = BytesMut::with_capacity(self.len());
                for part in parts {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            }
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Body({} bytes in {} parts)",
            self.len(),
            self.parts().len()
        )
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            Self::Empty
        } else {
            Self::Single(bytes)
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<Vec<Bytes>> for Body {
    fn from(parts: Vec<Bytes>) -> Self {
        match parts.len() {
            0 => Self::Empty,
            _ => Self::Chain(parts),
        }
    }
}

/// One request or response.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    /// Request code for requests, response code for responses.
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub body: Body,
    /// How the header arrived; responses and encoders may choose otherwise.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    fn new(code: i32, flag: i32) -> Self {
        Self {
            code,
            language: LanguageCode::Java,
            version: version::KARMAN,
            opaque: 0,
            flag,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Body::Empty,
            serialize_type: SerializeType::Json,
        }
    }

    /// A request with no header; the transport assigns the opaque.
    pub fn request(code: RequestCode) -> Self {
        Self::new(code.as_i32(), 0)
    }

    /// A request carrying a typed header.
    pub fn request_with_header<H: Serialize>(code: RequestCode, header: &H) -> Result<Self> {
        let mut command = Self::request(code);
        command.ext_fields = ext::to_ext_fields(header)?;
        Ok(command)
    }

    /// A response to nothing in particular; [`RemotingCommand::response_to`] is the usual
    /// constructor.
    pub fn response(code: ResponseCode) -> Self {
        Self::new(code.as_i32(), FLAG_RESPONSE)
    }

    /// A response to `request`: same opaque, response flag set.
    pub fn response_to(request: &RemotingCommand, code: ResponseCode) -> Self {
        let mut response = Self::response(code);
        response.opaque = request.opaque;
        response
    }

    /// Replaces the ext fields with a typed header (spec §1.11).
    pub fn set_header<H: Serialize>(&mut self, header: &H) -> Result<()> {
        self.ext_fields = ext::to_ext_fields(header)?;
        Ok(())
    }

    pub fn with_header<H: Serialize>(mut self, header: &H) -> Result<Self> {
        self.set_header(header)?;
        Ok(self)
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Decodes the ext fields into a typed header, with Java's parsing rules.
    pub fn decode_header<H: DeserializeOwned>(&self) -> Result<H> {
        ext::from_ext_fields(&self.ext_fields)
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    pub fn request_code(&self) -> RequestCode {
        RequestCode::from_i32(self.code)
    }

    pub fn response_code(&self) -> ResponseCode {
        ResponseCode::from_i32(self.code)
    }

    /// Decodes the header of a frame. A header that cannot be parsed at all is a framing
    /// error; one whose `code` and `opaque` are readable but a field is not becomes
    /// [`ProtocolError::HeaderRejected`] so the server can answer it.
    pub fn decode(frame: Frame) -> Result<Self> {
        let mut command = match frame.serialize_type {
            SerializeType::Json => decode_json_header(&frame.header)?,
            SerializeType::RocketMq => decode_binary_header(&frame.header)?,
        };
        command.serialize_type = frame.serialize_type;
        command.body = frame.body.into();
        Ok(command)
    }

    /// Encodes the header alone in the given serialization.
    pub fn encode_header(&self, serialize_type: SerializeType) -> Result<Vec<u8>> {
        match serialize_type {
            SerializeType::Json => Ok(encode_json_header(self)),
            SerializeType::RocketMq => encode_binary_header(self),
        }
    }

    /// Writes length prefix, header-length word and header; the body is the caller's to
    /// write after it (possibly without copying).
    pub fn encode_head(&self, serialize_type: SerializeType, dst: &mut BytesMut) -> Result<()> {
        let header = self.encode_header(serialize_type)?;
        encode_frame_prefix(dst, serialize_type, header.len(), self.body.len())?;
        dst.extend_from_slice(&header);
        Ok(())
    }

    /// Writes the whole frame, body included.
    pub fn encode(&self, serialize_type: SerializeType, dst: &mut BytesMut) -> Result<()> {
        self.encode_head(serialize_type, dst)?;
        for part in self.body.parts() {
            dst.extend_from_slice(part);
        }
        Ok(())
    }
}

/// JSON header as received: lenient about absent, null and non-string values (spec §1.4).
#[derive(Deserialize)]
struct JsonHeaderIn {
    code: i32,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<JsonExtFields>,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    version: i32,
}

/// Only what is needed to answer a header whose other fields are unusable.
#[derive(Deserialize)]
struct JsonHeaderIdentity {
    code: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    opaque: i32,
}

/// The `extFields` object as received. Entries are gathered in arrival order and resolved
/// at the end, so a repeated key ends as its last occurrence says, a null included.
struct JsonExtFields(ExtFields);

impl<'de> Deserialize<'de> for JsonExtFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonExtFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonExtFields, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) =
                    map.next_entry::<CompactString, Option<LenientString>>()?
                {
                    entries.push((key, value.map(|LenientString(value)| value)));
                }
                Ok(JsonExtFields(ExtFields::from_unsorted_nullable(entries)))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// An ext-field value that Java would have produced as a string; numbers and booleans from
/// other clients are stringified.
struct LenientString(CompactString);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LenientString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LenientString, E> {
                Ok(LenientString(v.into()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<LenientString, E> {
                Ok(LenientString(v.into()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<LenientString, E> {
                Ok(LenientString(v.to_compact_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LenientString, E> {
                Ok(LenientString(v.to_compact_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LenientString, E> {
                Ok(LenientString(v.to_compact_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LenientString, E> {
                // Not `to_compact_string`: it writes some floats differently from std (1e+20).
                Ok(LenientString(format_compact!("{v}")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand> {
    let parsed: JsonHeaderIn = match serde_json::from_slice(header) {
        Ok(parsed) => parsed,
        Err(source) => {
            return Err(match serde_json::from_slice::<JsonHeaderIdentity>(header) {
                Ok(id) => ProtocolError::HeaderRejected {
                    code: id.code,
                    opaque: id.opaque,
                    flag: id.flag,
                    reason: format!("JSON command header has an unusable field: {source}"),
                },
                Err(_) => ProtocolError::HeaderJson { source },
            });
        }
    };
    let ext_fields = parsed
        .ext_fields
        .map_or_else(ExtFields::new, |JsonExtFields(fields)| fields);
    Ok(RemotingCommand {
        code: parsed.code,
        language: parsed
            .language
            .as_deref()
            .map_or(LanguageCode::Other, LanguageCode::from_name),
        version: parsed.version,
        opaque: parsed.opaque,
        flag: parsed.flag,
        remark: parsed.remark,
        ext_fields,
        body: Body::Empty,
        serialize_type: SerializeType::Json,
    })
}

/// Writes the JSON header the way fastjson does: top-level keys in alphabetical order,
/// null members omitted, every ext-field value a string (spec §1.4).
fn encode_json_header(command: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + command.ext_fields.len() * 32);
    // Writes into a Vec cannot fail, and strings always serialize.
    let _ = write!(out, "{{\"code\":{}", command.code);
    if !command.ext_fields.is_empty() {
        out.extend_from_slice(b",\"extFields\":{");
        for (i, (key, value)) in command.ext_fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            let _ = serde_json::to_writer(&mut out, value);
        }
        out.push(b'}');
    }
    let _ = write!(
        out,
        ",\"flag\":{},\"language\":\"{}\",\"opaque\":{}",
        command.flag,
        command.language.name(),
        command.opaque
    );
    if let Some(remark) = &command.remark {
        out.extend_from_slice(b",\"remark\":");
        let _ = serde_json::to_writer(&mut out, remark);
    }
    let _ = write!(
        out,
        ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":{}}}",
        command.version
    );
    out
}

const BINARY_FIXED_BYTES: usize = 21;

/// A cursor over a binary header that checks every length against what remains.
struct HeaderReader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> HeaderReader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.buf.len());
        let Some(end) = end else {
            return Err(ProtocolError::Truncated {
                what,
                offset: self.at,
                need: n,
                have: self.buf.len().saturating_sub(self.at),
            });
        };
        let bytes = self.buf.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn len_prefixed(&mut self, length: i64, what: &'static str) -> Result<&'a [u8]> {
        let n = usize::try_from(length)
            .map_err(|_| ProtocolError::LengthOutOfRange { what, length })?;
        self.take(n, what)
    }

    fn string(&mut self, length: i64, what: &'static str) -> Result<String> {
        let bytes = self.len_prefixed(length, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ProtocolError::InvalidUtf8 { what })
    }

    fn compact_string(&mut self, length: i64, what: &'static str) -> Result<CompactString> {
        let bytes = self.len_prefixed(length, what)?;
        CompactString::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8 { what })
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand> {
    let mut reader = HeaderReader { buf: header, at: 0 };
    let code = i32::from(reader.i16("binary header code")?);
    let [language] = reader.array::<1>("binary header language")?;
    let version = i32::from(reader.i16("binary header version")?);
    let opaque = reader.i32("binary header opaque")?;
    let flag = reader.i32("binary header flag")?;
    let remark_len = reader.i32("binary header remark length")?;
    let remark = match remark_len {
        0 => None,
        n => Some(reader.string(i64::from(n), "binary header remark")?),
    };
    let ext_len = reader.i32("binary header ext-fields length")?;
    let ext_bytes = reader.len_prefixed(i64::from(ext_len), "binary header ext fields")?;
    let ext_fields = decode_binary_ext_fields(ext_bytes)?;
    Ok(RemotingCommand {
        code,
        language: LanguageCode::from_u8(language),
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Body::Empty,
        serialize_type: SerializeType::RocketMq,
    })
}

fn decode_binary_ext_fields(bytes: &[u8]) -> Result<ExtFields> {
    let mut reader = HeaderReader { buf: bytes, at: 0 };
    let mut entries = Vec::new();
    while reader.remaining() > 0 {
        let key_len = reader.i16("ext-field key length")?;
        let key = reader.compact_string(i64::from(key_len), "ext-field key")?;
        let value_len = reader.i32("ext-field value length")?;
        let value = reader.compact_string(i64::from(value_len), "ext-field value")?;
        // A zero-length value is Java's null: indistinguishable from absent (spec §1.5).
        if !value.is_empty() {
            entries.push((key, value));
        }
    }
    Ok(ExtFields::from_unsorted(entries))
}

fn encode_binary_header(command: &RemotingCommand) -> Result<Vec<u8>> {
    let remark = command.remark.as_deref().unwrap_or("");
    let ext_bytes: usize = command
        .ext_fields
        .iter()
        .filter(|(key, value)| !key.is_empty() && !value.is_empty())
        .map(|(key, value)| 2 + key.len() + 4 + value.len())
        .sum();
    let mut out = Vec::with_capacity(BINARY_FIXED_BYTES + remark.len() + ext_bytes);
    // Codes above i16 (POP, 2000xx) keep their low 16 bits, as Java writes them.
    let [_, _, code_high, code_low] = command.code.to_be_bytes();
    out.put_slice(&[code_high, code_low]);
    out.put_u8(command.language.as_u8());
    out.put_i16(i16::try_from(command.version).unwrap_or(i16::MAX));
    out.put_i32(command.opaque);
    out.put_i32(command.flag);
    out.put_i32(length_i32(remark.len(), "remark")?);
    out.put_slice(remark.as_bytes());
    out.put_i32(length_i32(ext_bytes, "ext fields")?);
    for (key, value) in &command.ext_fields {
        if key.is_empty() || value.is_empty() {
            continue;
        }
        let key_len = i16::try_from(key.len()).map_err(|_| ProtocolError::TooLong {
            what: "ext-field key",
            length: key.len(),
            max_bytes: i16::MAX as usize,
        })?;
        out.put_i16(key_len);
        out.put_slice(key.as_bytes());
        out.put_i32(length_i32(value.len(), "ext-field value")?);
        out.put_slice(value.as_bytes());
    }
    Ok(out)
}

fn length_i32(length: usize, what: &'static str) -> Result<i32> {
    i32::try_from(length).map_err(|_| ProtocolError::TooLong {
        what,
        length,
        max_bytes: i32::MAX as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;

    fn round_trip(command: &RemotingCommand, serialize_type: SerializeType) -> RemotingCommand {
        let mut wire = BytesMut::new();
        command.encode(serialize_type, &mut wire).unwrap();
        let frame = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
        assert!(wire.is_empty());
        RemotingCommand::decode(frame).unwrap()
    }

    fn sample() -> RemotingCommand {
        let mut command = RemotingCommand::request(RequestCode::SendMessageV2);
        command.opaque = 77;
        command.remark = Some("héllo \u{1} \"quoted\"".into());
        command.ext_fields.insert("a".into(), "group".into());
        command
            .ext_fields
            .insert("i".into(), "TAGS\u{1}A\u{2}".into());
        command.body = Bytes::from_static(b"payload").into();
        command
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let command = sample();
        let decoded = round_trip(&command, SerializeType::Json);
        assert_eq!(decoded.code, 310);
        assert_eq!(decoded.opaque, 77);
        assert_eq!(decoded.remark, command.remark);
        assert_eq!(decoded.ext_fields, command.ext_fields);
        assert_eq!(decoded.body.to_bytes(), Bytes::from_static(b"payload"));
        assert_eq!(decoded.serialize_type, SerializeType::Json);
    }

    #[test]
    fn binary_round_trip_keeps_every_field() {
        let command = sample();
        let decoded = round_trip(&command, SerializeType::RocketMq);
        assert_eq!(decoded.code, 310);
        assert_eq!(decoded.remark, command.remark);
        assert_eq!(decoded.ext_fields, command.ext_fields);
        assert_eq!(decoded.version, version::KARMAN);
    }

    #[test]
    fn json_accepts_numbers_booleans_and_nulls_in_ext_fields() {
        let header = br#"{"code":14,"extFields":{"queueId":3,"flag":true,"x":null,"d":1.5},"opaque":9,"language":"GO","extra":[1]}"#;
        let command = decode_json_header(header).unwrap();
        assert_eq!(&command.ext_fields["queueId"], "3");
        assert_eq!(&command.ext_fields["flag"], "true");
        assert_eq!(&command.ext_fields["d"], "1.5");
        assert!(!command.ext_fields.contains_key("x"));
        assert_eq!(command.language, LanguageCode::Go);
        assert_eq!(command.flag, 0);
    }

    #[test]
    fn json_repeated_ext_field_ends_as_its_last_occurrence() {
        let header = br#"{"code":14,"extFields":{"b":"1","a":"x","b":"2","a":null}}"#;
        let command = decode_json_header(header).unwrap();
        assert_eq!(command.ext_fields.iter().collect::<Vec<_>>(), [("b", "2")]);
    }

    fn binary_ext_entry(out: &mut Vec<u8>, key: &str, value: &str) {
        out.put_i16(i16::try_from(key.len()).unwrap());
        out.put_slice(key.as_bytes());
        out.put_i32(i32::try_from(value.len()).unwrap());
        out.put_slice(value.as_bytes());
    }

    #[test]
    fn binary_ext_fields_in_any_order_decode_sorted_and_last_one_wins() {
        let mut bytes = Vec::new();
        for (key, value) in [("z", "1"), ("a", "2"), ("z", "3"), ("z", ""), ("m", "")] {
            binary_ext_entry(&mut bytes, key, value);
        }
        let fields = decode_binary_ext_fields(&bytes).unwrap();
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("a", "2"), ("z", "3")]);
    }

    #[test]
    fn binary_ext_field_of_bad_utf8_is_refused() {
        let mut bytes = Vec::new();
        binary_ext_entry(&mut bytes, "k", "v");
        let last = bytes.len() - 1;
        bytes[last] = 0xFF;
        assert!(matches!(
            decode_binary_ext_fields(&bytes),
            Err(ProtocolError::InvalidUtf8 {
                what: "ext-field value"
            })
        ));
    }

    #[test]
    fn json_ext_field_of_wrong_type_is_rejected_with_opaque() {
        let header = br#"{"code":14,"extFields":{"queueId":{"nested":1}},"opaque":9,"flag":0}"#;
        match decode_json_header(header) {
            Err(ProtocolError::HeaderRejected { code, opaque, .. }) => {
                assert_eq!((code, opaque), (14, 9));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn json_garbage_closes_the_connection() {
        let err = decode_json_header(b"not json at all").unwrap_err();
        assert!(err.closes_connection());
    }

    #[test]
    fn binary_remark_longer_than_header_is_refused() {
        let mut header = encode_binary_header(&sample()).unwrap();
        header[13..17].copy_from_slice(&1_000_000i32.to_be_bytes());
        let err = decode_binary_header(&header).unwrap_err();
        assert!(err.closes_connection(), "{err}");
    }

    #[test]
    fn binary_negative_key_length_is_refused() {
        let mut command = RemotingCommand::request(RequestCode::HeartBeat);
        command.ext_fields.insert("k".into(), "v".into());
        let mut header = encode_binary_header(&command).unwrap();
        header[21..23].copy_from_slice(&(-5i16).to_be_bytes());
        assert!(matches!(
            decode_binary_header(&header),
            Err(ProtocolError::LengthOutOfRange { .. })
        ));
    }

    #[test]
    fn response_to_copies_opaque_and_sets_flag() {
        let request = sample();
        let response = RemotingCommand::response_to(&request, ResponseCode::Success);
        assert!(response.is_response());
        assert!(!response.is_oneway());
        assert_eq!(response.opaque, 77);
    }

    #[test]
    fn chained_body_is_written_back_to_back() {
        let command = RemotingCommand::response(ResponseCode::Success)
            .with_body(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        let decoded = round_trip(&command, SerializeType::Json);
        assert_eq!(decoded.body.to_bytes(), Bytes::from_static(b"abcd"));
    }
}
