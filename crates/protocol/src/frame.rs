//! The remoting frame (remoting.md §1.2).
//!
//! ```text
//! +----------------+---------------------------+--------------------+--------------+
//! | length (i32)   | header-length word (i32)  | header (N bytes)   | body         |
//! +----------------+---------------------------+--------------------+--------------+
//!   counts what       byte 0: serialize type       JSON or ROCKETMQ     length-4-N
//!   follows it        bytes 1..3: N (24 bits)      binary header        bytes
//! ```
//!
//! [`FrameDecoder::decode`] follows the three buffer states of a streaming decoder: too few
//! bytes gives `Ok(None)` (and reserves only what the checked length needs), exactly one or
//! more frames gives the first one split off without copying, and a broken frame gives an
//! error, after which the connection must be closed.
//!
//! ```
//! use bytes::BytesMut;
//! use karman_protocol::frame::{FrameDecoder, SerializeType};
//!
//! let decoder = FrameDecoder::default();
//! let mut buf = BytesMut::from(&[0u8, 0, 0, 6, 0, 0, 0, 2, b'{', b'}'][..]);
//! let frame = decoder.decode(&mut buf).unwrap().unwrap();
//! assert_eq!(frame.serialize_type, SerializeType::Json);
//! assert_eq!(&frame.header[..], b"{}");
//! assert!(frame.body.is_empty() && buf.is_empty());
//!
//! // A length prefix over the limit is refused before anything is allocated.
//! let mut huge = BytesMut::from(&[0x7Fu8, 0xFF, 0xFF, 0xFF][..]);
//! assert!(decoder.decode(&mut huge).is_err());
//! ```

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};

/// Largest frame accepted by default, 4-byte length prefix included (Java
/// `com.rocketmq.remoting.frameMaxLength`).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// The header length is a 24-bit field.
pub const HEADER_BYTES_MAX: usize = 0x00FF_FFFF;

const LENGTH_PREFIX_BYTES: usize = 4;
const HEADER_WORD_BYTES: usize = 4;

/// How a command header is encoded (byte 0 of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

impl SerializeType {
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }

    pub fn from_u8(byte: u8) -> Result<Self> {
        match byte {
            0 => Ok(Self::Json),
            1 => Ok(Self::RocketMq),
            byte => Err(ProtocolError::UnknownSerializeType { byte }),
        }
    }

    /// The name Java writes in `serializeTypeCurrentRPC` and reads from
    /// `ROCKETMQ_SERIALIZE_TYPE`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

/// One frame split off the stream: header and body still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub serialize_type: SerializeType,
    pub header: Bytes,
    pub body: Bytes,
}

/// Splits frames off a byte stream, refusing any frame larger than `frame_bytes_max`.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// `frame_bytes_max` counts the whole frame, length prefix included.
    pub fn new(frame_bytes_max: usize) -> Self {
        assert!(
            frame_bytes_max >= LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES,
            "a frame limit of {frame_bytes_max} bytes cannot hold an empty frame"
        );
        Self { frame_bytes_max }
    }

    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Returns the next whole frame, `Ok(None)` when more bytes are needed, or an error
    /// when the stream is broken (the caller closes the connection).
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>> {
        let Some(length) = peek_i32(src, 0) else {
            return Ok(None);
        };
        let frame_bytes = self.check_length(length)?;
        // The serialize type is known as soon as the word arrives: fail fast on garbage
        // instead of waiting for up to 16 MiB of it.
        if let Some(word) = peek_i32(src, LENGTH_PREFIX_BYTES) {
            let (serialize_type, header_bytes) = split_header_word(word)?;
            if header_bytes > frame_bytes - HEADER_WORD_BYTES {
                return Err(ProtocolError::HeaderLengthInvalid {
                    header_bytes,
                    frame_bytes,
                });
            }
            let total_bytes = LENGTH_PREFIX_BYTES + frame_bytes;
            if src.len() < total_bytes {
                src.reserve(total_bytes - src.len());
                return Ok(None);
            }
            src.advance(LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES);
            let header = src.split_to(header_bytes).freeze();
            let body = src
                .split_to(frame_bytes - HEADER_WORD_BYTES - header_bytes)
                .freeze();
            return Ok(Some(Frame {
                serialize_type,
                header,
                body,
            }));
        }
        src.reserve(LENGTH_PREFIX_BYTES + frame_bytes - src.len());
        Ok(None)
    }

    /// Validates the length prefix and returns it as the number of bytes after the prefix.
    fn check_length(&self, length: i32) -> Result<usize> {
        if length < 0
            || (length as i64) + (LENGTH_PREFIX_BYTES as i64) > self.frame_bytes_max as i64
        {
            return Err(ProtocolError::FrameTooLarge {
                declared_bytes: i64::from(length) + LENGTH_PREFIX_BYTES as i64,
                max_bytes: self.frame_bytes_max,
            });
        }
        let frame_bytes =
            usize::try_from(length).map_err(|_| ProtocolError::FrameLengthInvalid { length })?;
        if frame_bytes < HEADER_WORD_BYTES {
            return Err(ProtocolError::FrameLengthInvalid { length });
        }
        Ok(frame_bytes)
    }
}

fn peek_i32(src: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 4] = src.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

fn split_header_word(word: i32) -> Result<(SerializeType, usize)> {
    let word = word as u32;
    let serialize_type = SerializeType::from_u8((word >> 24) as u8)?;
    let header_bytes = (word & 0x00FF_FFFF) as usize;
    Ok((serialize_type, header_bytes))
}

/// Writes the length prefix and header-length word for a frame with the given header and
/// body sizes. Fails when the header does not fit in 24 bits or the frame in an i32.
pub fn encode_frame_prefix(
    dst: &mut BytesMut,
    serialize_type: SerializeType,
    header_bytes: usize,
    body_bytes: usize,
) -> Result<()> {
    if header_bytes > HEADER_BYTES_MAX {
        return Err(ProtocolError::TooLong {
            what: "command header",
            length: header_bytes,
            max_bytes: HEADER_BYTES_MAX,
        });
    }
    let length = HEADER_WORD_BYTES
        .checked_add(header_bytes)
        .and_then(|n| n.checked_add(body_bytes))
        .and_then(|n| i32::try_from(n).ok())
        .ok_or(ProtocolError::TooLong {
            what: "frame",
            length: header_bytes.saturating_add(body_bytes),
            max_bytes: i32::MAX as usize,
        })?;
    let header_len = u32::try_from(header_bytes).unwrap_or(0);
    let word = (u32::from(serialize_type.as_u8()) << 24) | header_len;
    dst.extend_from_slice(&length.to_be_bytes());
    dst.extend_from_slice(&word.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(serialize: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let length = (4 + header.len() + body.len()) as i32;
        out.extend_from_slice(&length.to_be_bytes());
        let word = (u32::from(serialize) << 24) | header.len() as u32;
        out.extend_from_slice(&word.to_be_bytes());
        out.extend_from_slice(header);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn decode_splits_two_frames_in_one_buffer() {
        let mut raw = frame_bytes(0, b"{}", b"abc");
        raw.extend(frame_bytes(1, b"xyz", b""));
        let mut buf = BytesMut::from(&raw[..]);
        let decoder = FrameDecoder::default();
        let first = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&first.body[..], b"abc");
        let second = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(second.serialize_type, SerializeType::RocketMq);
        assert!(buf.is_empty());
        assert!(decoder.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn decode_returns_none_for_every_strict_prefix() {
        let raw = frame_bytes(0, b"{\"code\":1}", b"body");
        let decoder = FrameDecoder::default();
        for cut in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..cut]);
            assert!(decoder.decode(&mut buf).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn decode_rejects_length_over_max() {
        let decoder = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&frame_bytes(0, &[b' '; 80], b"")[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn decode_rejects_negative_length() {
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
        assert!(err.closes_connection());
    }

    #[test]
    fn decode_rejects_length_below_header_word() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            FrameDecoder::default().decode(&mut buf),
            Err(ProtocolError::FrameLengthInvalid { length: 2 })
        ));
    }

    #[test]
    fn decode_rejects_header_longer_than_frame() {
        let mut raw = frame_bytes(0, b"{}", b"");
        raw[7] = 200; // header length 200 in a 6-byte frame
        let mut buf = BytesMut::from(&raw[..]);
        assert!(matches!(
            FrameDecoder::default().decode(&mut buf),
            Err(ProtocolError::HeaderLengthInvalid { .. })
        ));
    }

    #[test]
    fn decode_rejects_unknown_serialize_type_before_body_arrives() {
        let raw = frame_bytes(7, b"{}", &[0u8; 1000]);
        let mut buf = BytesMut::from(&raw[..8]);
        assert!(matches!(
            FrameDecoder::default().decode(&mut buf),
            Err(ProtocolError::UnknownSerializeType { byte: 7 })
        ));
    }

    #[test]
    fn huge_length_prefix_reserves_nothing() {
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decoder.decode(&mut buf).is_err());
        assert!(buf.capacity() < 1024);
    }
}
