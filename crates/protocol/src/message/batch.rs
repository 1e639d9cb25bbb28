//! The SEND_BATCH_MESSAGE body (spec §5.5).
//!
//! ```text
//! | TOTALSIZE i32 = 22 + bodyLen + propLen | MAGICCODE i32 (0) | BODYCRC i32 (0) |
//! | FLAG i32 | BODYLEN i32 | BODY | PROPLEN i16 | PROPERTIES |        repeated
//! ```

use bytes::{BufMut, Bytes};

use super::properties::PROPERTIES_BYTES_MAX;
use crate::error::{ProtocolError, Result};

/// Fixed bytes of one batch entry, excluding body and properties.
pub const BATCH_ENTRY_FIXED_BYTES: usize = 22;

/// One message of a batch; body and properties share the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    /// The entry's own properties string.
    pub properties: Bytes,
}

fn read_i32(buf: &[u8], at: usize, what: &'static str) -> Result<i32> {
    let bytes: [u8; 4] =
        buf.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or(ProtocolError::Truncated {
                what,
                offset: at,
                need: 4,
                have: buf.len().saturating_sub(at),
            })?;
    Ok(i32::from_be_bytes(bytes))
}

fn checked_len(length: i64, what: &'static str) -> Result<usize> {
    usize::try_from(length).map_err(|_| ProtocolError::LengthOutOfRange { what, length })
}

/// Splits a batch body into its entries without copying. Every entry must be exactly as
/// long as its TOTALSIZE says.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchEntry>> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let total = checked_len(
            i64::from(read_i32(body, at, "batch TOTALSIZE")?),
            "batch TOTALSIZE",
        )?;
        let end = at
            .checked_add(total)
            .filter(|end| *end <= body.len())
            .ok_or(ProtocolError::Truncated {
                what: "batch entry",
                offset: at,
                need: total,
                have: body.len() - at,
            })?;
        let flag = read_i32(body, at + 12, "batch FLAG")?;
        let body_len = checked_len(
            i64::from(read_i32(body, at + 16, "batch BODYLEN")?),
            "batch BODYLEN",
        )?;
        let body_start = at + 20;
        let body_end = body_start
            .checked_add(body_len)
            .filter(|e| *e + 2 <= end)
            .ok_or(ProtocolError::Truncated {
                what: "batch BODY",
                offset: body_start,
                need: body_len + 2,
                have: end.saturating_sub(body_start),
            })?;
        let prop_len_bytes: [u8; 2] = body
            .get(body_end..body_end + 2)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0, 0]);
        let prop_len = checked_len(
            i64::from(i16::from_be_bytes(prop_len_bytes)),
            "batch PROPLEN",
        )?;
        let props_start = body_end + 2;
        if props_start + prop_len != end {
            return Err(ProtocolError::TotalSizeMismatch {
                declared: total as i64,
                computed: (props_start + prop_len - at) as i64,
            });
        }
        entries.push(BatchEntry {
            flag,
            body: body.slice(body_start..body_end),
            properties: body.slice(props_start..end),
        });
        at = end;
    }
    Ok(entries)
}

/// Appends one batch entry.
pub fn encode_batch_entry(
    dst: &mut impl BufMut,
    flag: i32,
    body: &[u8],
    properties: &[u8],
) -> Result<()> {
    let properties_len = i16::try_from(properties.len()).map_err(|_| ProtocolError::TooLong {
        what: "message properties",
        length: properties.len(),
        max_bytes: PROPERTIES_BYTES_MAX,
    })?;
    let total = BATCH_ENTRY_FIXED_BYTES + body.len() + properties.len();
    let total = i32::try_from(total).map_err(|_| ProtocolError::TooLong {
        what: "batch entry",
        length: total,
        max_bytes: i32::MAX as usize,
    })?;
    dst.put_i32(total);
    dst.put_i32(0);
    dst.put_i32(0);
    dst.put_i32(flag);
    // The total fits in an i32, so the body length does too.
    dst.put_i32(i32::try_from(body.len()).unwrap_or(i32::MAX));
    dst.put_slice(body);
    dst.put_i16(properties_len);
    dst.put_slice(properties);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_ENTRY: [u8; 37] = [
        0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00, 0x0E, 0x55, 0x4E, 0x49, 0x51, 0x5F, 0x4B, 0x45,
        0x59, 0x01, 0x41, 0x41, 0x41, 0x41, 0x02,
    ];

    #[test]
    fn golden_entry_from_spec_5_5_encodes() {
        let mut out = Vec::new();
        encode_batch_entry(&mut out, 0, b"a", b"UNIQ_KEY\x01AAAA\x02").unwrap();
        assert_eq!(out, GOLDEN_ENTRY);
    }

    #[test]
    fn golden_entry_from_spec_5_5_decodes() {
        let entries = decode_batch(&Bytes::from_static(&GOLDEN_ENTRY)).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(&entries[0].body[..], b"a");
        assert_eq!(&entries[0].properties[..], b"UNIQ_KEY\x01AAAA\x02");
    }

    #[test]
    fn entry_whose_body_overruns_its_size_is_refused() {
        let mut raw = GOLDEN_ENTRY.to_vec();
        raw[19] = 200;
        assert!(decode_batch(&Bytes::from(raw)).is_err());
    }

    #[test]
    fn truncated_batch_is_refused() {
        for cut in 1..GOLDEN_ENTRY.len() {
            assert!(
                decode_batch(&Bytes::copy_from_slice(&GOLDEN_ENTRY[..cut])).is_err(),
                "cut {cut}"
            );
        }
    }
}
