//! The protocol crate's one error type.
//!
//! Variants carry the facts an operator needs (which length, which limit, which field) and
//! keep the underlying cause. Two families matter to a server:
//! - framing errors ([`ProtocolError::closes_connection`] is true): the byte stream can no
//!   longer be trusted, so the connection is closed, as the Java server does;
//! - everything else: a well-framed command with a bad part, answered with a response code.

use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame length {declared_bytes} exceeds the limit of {max_bytes} bytes")]
    FrameTooLarge {
        declared_bytes: i64,
        max_bytes: usize,
    },

    #[error("frame length {length} is too small to hold the 4-byte header-length word")]
    FrameLengthInvalid { length: i32 },

    #[error("header length {header_bytes} does not fit in a frame of {frame_bytes} bytes")]
    HeaderLengthInvalid {
        header_bytes: usize,
        frame_bytes: usize,
    },

    #[error("unknown header serialize type {byte} (expected 0 = JSON or 1 = ROCKETMQ)")]
    UnknownSerializeType { byte: u8 },

    #[error("JSON command header is not valid: {source}")]
    HeaderJson {
        #[source]
        source: serde_json::Error,
    },

    /// The header parsed far enough to read `code` and `opaque`, but a field is unusable.
    /// A server answers it with SYSTEM_ERROR instead of closing the connection.
    #[error("command header rejected (code {code}, opaque {opaque}): {reason}")]
    HeaderRejected {
        code: i32,
        opaque: i32,
        flag: i32,
        reason: String,
    },

    #[error("truncated {what}: need {need} bytes at offset {offset}, only {have} present")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },

    #[error("{what} length {length} is negative or out of range")]
    LengthOutOfRange { what: &'static str, length: i64 },

    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },

    #[error("ext field `{key}` is missing")]
    MissingField { key: Cow<'static, str> },

    #[error("ext field `{key}` = {value:?} is not a valid {expected}")]
    InvalidField {
        key: String,
        value: String,
        expected: &'static str,
    },

    #[error("header conversion failed: {message}")]
    Header { message: String },

    #[error("bad message magic code {magic:#010X} at offset {offset}")]
    BadMagic { magic: u32, offset: usize },

    #[error("message TOTALSIZE {declared} does not match its fields, which add up to {computed}")]
    TotalSizeMismatch { declared: i64, computed: i64 },

    #[error("message body CRC mismatch: stored {stored:#010X}, computed {computed:#010X}")]
    BodyCrcMismatch { stored: u32, computed: u32 },

    #[error("{what} is {length} bytes, over the limit of {max_bytes}")]
    TooLong {
        what: &'static str,
        length: usize,
        max_bytes: usize,
    },

    #[error("message id {id:?} is not valid: {reason}")]
    InvalidMessageId { id: String, reason: &'static str },

    #[error("decompressed body would exceed {max_bytes} bytes")]
    DecompressTooLarge { max_bytes: usize },

    #[error("body compression type {compression} is not supported (only zlib)")]
    UnsupportedCompression { compression: i32 },

    #[error("zlib stream is corrupt: {source}")]
    Zlib {
        #[source]
        source: std::io::Error,
    },

    #[error("{what} JSON body is not valid: {source}")]
    BodyJson {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what} body is malformed: {reason}")]
    BodyMalformed { what: &'static str, reason: String },
}

impl ProtocolError {
    /// True when the byte stream is no longer trustworthy and the connection must close.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::FrameTooLarge { .. }
                | Self::FrameLengthInvalid { .. }
                | Self::HeaderLengthInvalid { .. }
                | Self::UnknownSerializeType { .. }
                | Self::HeaderJson { .. }
                | Self::Truncated { .. }
                | Self::LengthOutOfRange { .. }
                | Self::InvalidUtf8 { .. }
        )
    }
}

impl serde::ser::Error for ProtocolError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Header {
            message: msg.to_string(),
        }
    }
}

impl serde::de::Error for ProtocolError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Header {
            message: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::MissingField {
            key: Cow::Borrowed(field),
        }
    }
}

pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;
