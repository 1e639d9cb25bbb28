//! Body compression (spec §5.7): zlib streams as `java.util.zip.Deflater` writes them.
//! Decompression is bounded so a tiny body cannot expand into unbounded memory.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use super::sysflag::message as sysflag;
use crate::error::{ProtocolError, Result};

/// Java producers compress bodies at or over this size.
pub const COMPRESS_BODY_OVER_BYTES: usize = 4096;
/// Java's default zlib level.
pub const ZLIB_LEVEL_DEFAULT: u32 = 5;

/// Compresses with zlib (RFC 1950) at `level`.
pub fn zlib_compress(body: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(body.len() / 2), Compression::new(level));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Decompresses a body whose sysFlag has the COMPRESSED bit, choosing the algorithm from
/// the type bits (0 means zlib for pre-5.x producers). Output beyond `max_bytes` is an error.
pub fn decompress(body: &[u8], sys_flag: i32, max_bytes: usize) -> Result<Vec<u8>> {
    let compression = sys_flag & sysflag::COMPRESSION_MASK;
    if compression != 0 && compression != sysflag::COMPRESSION_ZLIB {
        return Err(ProtocolError::UnsupportedCompression { compression });
    }
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(2).min(max_bytes));
    ZlibDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|source| ProtocolError::Zlib { source })?;
    if out.len() > max_bytes {
        return Err(ProtocolError::DecompressTooLarge { max_bytes });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let body = b"hello hello hello hello".repeat(100);
        let packed = zlib_compress(&body, ZLIB_LEVEL_DEFAULT);
        assert_eq!(&packed[..1], &[0x78]); // zlib header, not raw deflate or gzip
        let flag = sysflag::COMPRESSED | sysflag::COMPRESSION_ZLIB;
        assert_eq!(decompress(&packed, flag, 1 << 20).unwrap(), body);
        assert_eq!(
            decompress(&packed, sysflag::COMPRESSED, 1 << 20).unwrap(),
            body
        );
    }

    #[test]
    fn bomb_is_refused() {
        let packed = zlib_compress(&vec![0u8; 10 << 20], 9);
        assert!(packed.len() < 20_000);
        assert!(matches!(
            decompress(&packed, sysflag::COMPRESSED, 1 << 20),
            Err(ProtocolError::DecompressTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decompress(b"\x78\x9cnot really", sysflag::COMPRESSED, 1024).is_err());
        assert!(decompress(b"x", sysflag::COMPRESSED | sysflag::COMPRESSION_LZ4, 1024).is_err());
    }
}
