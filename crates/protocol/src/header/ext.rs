//! Typed headers to and from `extFields`, with Java's conversion rules (spec §1.11).
//!
//! Writing: each field becomes `key -> String.valueOf(value)`; `None` is omitted; enums are
//! written by variant name. Reading: integers parse like `Integer.parseInt` (optional sign,
//! digits only), booleans like `Boolean.parseBoolean` (case-insensitive `true`, anything else
//! false), a missing required field is an error naming the key, unknown keys are ignored.
//!
//! Header structs only derive `Serialize`/`Deserialize`; no header has a hand-written map.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use karman_protocol::header::ext::{from_ext_fields, to_ext_fields};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! #[serde(rename_all = "camelCase")]
//! struct Probe { topic: String, queue_id: i32, order: bool, tag: Option<String> }
//!
//! let fields = to_ext_fields(&Probe { topic: "T".into(), queue_id: -1, order: true, tag: None }).unwrap();
//! assert_eq!(&fields["queueId"], "-1");
//! assert_eq!(&fields["order"], "true");
//! assert!(!fields.contains_key("tag"));
//! let back: Probe = from_ext_fields(&fields).unwrap();
//! assert_eq!(back.queue_id, -1);
//! ```

use std::borrow::Cow;

use compact_str::{CompactString, ToCompactString, format_compact};
use serde::de::{self, IntoDeserializer, Visitor, value::MapDeserializer};
use serde::ser::{self, Impossible, Serialize};

use crate::command::ExtFields;
use crate::error::{ProtocolError, Result};

/// Converts a typed header into ext fields.
pub fn to_ext_fields<H: Serialize + ?Sized>(header: &H) -> Result<ExtFields> {
    let mut fields = ExtFields::new();
    header.serialize(HeaderSerializer {
        fields: &mut fields,
    })?;
    Ok(fields)
}

/// Converts ext fields into a typed header.
pub fn from_ext_fields<'de, H: de::Deserialize<'de>>(fields: &'de ExtFields) -> Result<H> {
    let entries = fields
        .iter()
        .map(|(key, value)| (key, ExtValue { key, value }));
    H::deserialize(MapDeserializer::new(entries))
}

// ---------------------------------------------------------------------------------------
// Writing

struct HeaderSerializer<'a> {
    fields: &'a mut ExtFields,
}

fn unsupported(what: &str) -> ProtocolError {
    ProtocolError::Header {
        message: format!("a command header must be a struct of scalars, found {what}"),
    }
}

macro_rules! reject_ser {
    ($($method:ident($($ty:ty),*) => $what:literal;)*) => {
        $(fn $method(self $(, _: $ty)*) -> Result<Self::Ok> { Err(unsupported($what)) })*
    };
}

impl<'a> ser::Serializer for HeaderSerializer<'a> {
    type Ok = ();
    type Error = ProtocolError;
    type SerializeSeq = Impossible<(), ProtocolError>;
    type SerializeTuple = Impossible<(), ProtocolError>;
    type SerializeTupleStruct = Impossible<(), ProtocolError>;
    type SerializeTupleVariant = Impossible<(), ProtocolError>;
    type SerializeMap = Impossible<(), ProtocolError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), ProtocolError>;

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Self> {
        self.fields.reserve(len);
        Ok(self)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }

    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }

    reject_ser! {
        serialize_bool(bool) => "a bool";
        serialize_i8(i8) => "an integer";
        serialize_i16(i16) => "an integer";
        serialize_i32(i32) => "an integer";
        serialize_i64(i64) => "an integer";
        serialize_u8(u8) => "an integer";
        serialize_u16(u16) => "an integer";
        serialize_u32(u32) => "an integer";
        serialize_u64(u64) => "an integer";
        serialize_f32(f32) => "a float";
        serialize_f64(f64) => "a float";
        serialize_char(char) => "a char";
        serialize_str(&str) => "a string";
        serialize_bytes(&[u8]) => "bytes";
        serialize_none() => "an option";
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<()> {
        Err(unsupported("an enum"))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<()> {
        Err(unsupported("an enum"))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(unsupported("a sequence"))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(unsupported("a tuple"))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(unsupported("a tuple struct"))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(unsupported("an enum"))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(unsupported("a map"))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(unsupported("an enum"))
    }
}

impl ser::SerializeStruct for HeaderSerializer<'_> {
    type Ok = ();
    type Error = ProtocolError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        if let Some(text) = value.serialize(ValueSerializer)? {
            self.fields.insert(CompactString::const_new(key), text);
        }
        Ok(())
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

/// Turns one scalar into its Java `String.valueOf` text; `None` means "omit the key".
struct ValueSerializer;

macro_rules! display_ser {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method(self, v: $ty) -> Result<Option<CompactString>> {
            Ok(Some(v.to_compact_string()))
        })*
    };
}

impl ser::Serializer for ValueSerializer {
    type Ok = Option<CompactString>;
    type Error = ProtocolError;
    type SerializeSeq = Impossible<Option<CompactString>, ProtocolError>;
    type SerializeTuple = Impossible<Option<CompactString>, ProtocolError>;
    type SerializeTupleStruct = Impossible<Option<CompactString>, ProtocolError>;
    type SerializeTupleVariant = Impossible<Option<CompactString>, ProtocolError>;
    type SerializeMap = Impossible<Option<CompactString>, ProtocolError>;
    type SerializeStruct = Impossible<Option<CompactString>, ProtocolError>;
    type SerializeStructVariant = Impossible<Option<CompactString>, ProtocolError>;

    display_ser! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_char(char);
    }

    fn serialize_str(self, v: &str) -> Result<Option<CompactString>> {
        Ok(Some(v.into()))
    }

    fn serialize_f32(self, v: f32) -> Result<Option<CompactString>> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<Option<CompactString>> {
        // Java's Double.toString always shows a fraction: 1.0, not 1. std's formatting is kept
        // on purpose: `to_compact_string` writes some floats differently (1e+20, 1e-7).
        Ok(Some(if v.fract() == 0.0 && v.is_finite() {
            format_compact!("{v:.1}")
        } else {
            format_compact!("{v}")
        }))
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<Option<CompactString>> {
        Err(unsupported("bytes"))
    }

    fn serialize_none(self) -> Result<Option<CompactString>> {
        Ok(None)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Option<CompactString>> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Option<CompactString>> {
        Ok(None)
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<Option<CompactString>> {
        Ok(None)
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Option<CompactString>> {
        Ok(Some(CompactString::const_new(variant)))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Option<CompactString>> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Option<CompactString>> {
        Err(unsupported("a data-carrying enum field"))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(unsupported("a sequence field"))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(unsupported("a tuple field"))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(unsupported("a tuple field"))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(unsupported("an enum field"))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(unsupported("a map field"))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(unsupported("a nested struct field"))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(unsupported("an enum field"))
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// One ext-field value, with its key so errors can name it.
#[derive(Clone, Copy)]
struct ExtValue<'de> {
    key: &'de str,
    value: &'de str,
}

impl<'de> ExtValue<'de> {
    fn invalid(&self, expected: &'static str) -> ProtocolError {
        ProtocolError::InvalidField {
            key: self.key.to_owned(),
            value: self.value.to_owned(),
            expected,
        }
    }

    fn parse<T: std::str::FromStr>(&self, expected: &'static str) -> Result<T> {
        self.value.parse().map_err(|_| self.invalid(expected))
    }

    /// `Boolean.parseBoolean`: only a case-insensitive "true" is true.
    fn java_bool(&self) -> bool {
        self.value.eq_ignore_ascii_case("true")
    }
}

impl<'de> IntoDeserializer<'de, ProtocolError> for ExtValue<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_de {
    ($($method:ident => $visit:ident($ty:ty, $expected:literal);)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            visitor.$visit(self.parse::<$ty>($expected)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ExtValue<'de> {
    type Error = ProtocolError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.value)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bool(self.java_bool())
    }

    parse_de! {
        deserialize_i8 => visit_i8(i8, "byte");
        deserialize_i16 => visit_i16(i16, "short");
        deserialize_i32 => visit_i32(i32, "int");
        deserialize_i64 => visit_i64(i64, "long");
        deserialize_u8 => visit_u8(u8, "unsigned byte");
        deserialize_u16 => visit_u16(u16, "unsigned short");
        deserialize_u32 => visit_u32(u32, "unsigned int");
        deserialize_u64 => visit_u64(u64, "unsigned long");
        deserialize_f32 => visit_f32(f32, "float");
        deserialize_f64 => visit_f64(f64, "double");
        deserialize_char => visit_char(char, "char");
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.value)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.value)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.value.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.value.as_bytes())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(self.invalid("sequence"))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(self.invalid("tuple"))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value> {
        Err(self.invalid("tuple"))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(self.invalid("map"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(self.invalid("struct"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if !variants.contains(&self.value) {
            return Err(self.invalid("enum constant"));
        }
        let name = de::value::BorrowedStrDeserializer::<'de, ProtocolError>::new(self.value);
        visitor.visit_enum(name)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.value)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

/// Names a missing key the way a remark should: "ext field `topic` is missing".
pub fn missing(key: &'static str) -> ProtocolError {
    ProtocolError::MissingField {
        key: Cow::Borrowed(key),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum FilterType {
        #[serde(rename = "SINGLE_TAG")]
        SingleTag,
        #[serde(rename = "MULTI_TAG")]
        MultiTag,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        topic: String,
        queue_id: i32,
        commit_offset: i64,
        unit_mode: bool,
        filter: FilterType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_reconsume_times: Option<i32>,
        tps: f64,
    }

    fn sample() -> Sample {
        Sample {
            topic: "T".into(),
            queue_id: 3,
            commit_offset: -1,
            unit_mode: false,
            filter: FilterType::MultiTag,
            max_reconsume_times: None,
            tps: 2.0,
        }
    }

    #[test]
    fn written_like_java_string_value_of() {
        let fields = to_ext_fields(&sample()).unwrap();
        assert_eq!(&fields["queueId"], "3");
        assert_eq!(&fields["commitOffset"], "-1");
        assert_eq!(&fields["unitMode"], "false");
        assert_eq!(&fields["filter"], "MULTI_TAG");
        assert_eq!(&fields["tps"], "2.0");
        assert!(!fields.contains_key("maxReconsumeTimes"));
    }

    #[test]
    fn round_trips() {
        let fields = to_ext_fields(&sample()).unwrap();
        assert_eq!(from_ext_fields::<Sample>(&fields).unwrap(), sample());
    }

    #[test]
    fn booleans_parse_like_java() {
        let mut fields = to_ext_fields(&sample()).unwrap();
        fields.insert("unitMode".into(), "TRUE".into());
        assert!(from_ext_fields::<Sample>(&fields).unwrap().unit_mode);
        fields.insert("unitMode".into(), "yes".into());
        assert!(!from_ext_fields::<Sample>(&fields).unwrap().unit_mode);
    }

    #[test]
    fn integers_accept_a_plus_sign_and_refuse_spaces() {
        let mut fields = to_ext_fields(&sample()).unwrap();
        fields.insert("queueId".into(), "+7".into());
        assert_eq!(from_ext_fields::<Sample>(&fields).unwrap().queue_id, 7);
        fields.insert("queueId".into(), " 7".into());
        let err = from_ext_fields::<Sample>(&fields).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ext field `queueId` = \" 7\" is not a valid int"
        );
    }

    #[test]
    fn missing_required_field_names_the_key() {
        let mut fields = to_ext_fields(&sample()).unwrap();
        fields.remove("topic");
        let err = from_ext_fields::<Sample>(&fields).unwrap_err();
        assert_eq!(err.to_string(), "ext field `topic` is missing");
    }

    #[test]
    fn unknown_keys_are_ignored_and_options_are_read() {
        let mut fields = to_ext_fields(&sample()).unwrap();
        fields.insert("bname".into(), "broker-a".into());
        fields.insert("maxReconsumeTimes".into(), "16".into());
        let parsed = from_ext_fields::<Sample>(&fields).unwrap();
        assert_eq!(parsed.max_reconsume_times, Some(16));
    }

    #[test]
    fn unknown_enum_constant_is_an_error() {
        let mut fields = to_ext_fields(&sample()).unwrap();
        fields.insert("filter".into(), "BOGUS".into());
        assert!(from_ext_fields::<Sample>(&fields).is_err());
    }
}
