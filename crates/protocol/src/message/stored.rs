//! The stored message layout: one commit-log record, and exactly what pull, query and view
//! bodies carry (spec remoting.md §5.1, semantics.md §1.2).
//!
//! ```text
//! off  size  field                      (IPv4 hosts; IPv6 hosts are 20 bytes, not 8)
//!   0     4  TOTALSIZE                  whole record, this field included
//!   4     4  MAGICCODE                  0xDAA320A7 (v1, u8 topic length) | 0xDAA320AB (v2, i16)
//!   8     4  BODYCRC                    crc32(body) & 0x7FFFFFFF
//!  12     4  QUEUEID
//!  16     4  FLAG
//!  20     8  QUEUEOFFSET
//!  28     8  PHYSICALOFFSET
//!  36     4  SYSFLAG
//!  40     8  BORNTIMESTAMP
//!  48     8  BORNHOST                   ip + i32 port
//!  56     8  STORETIMESTAMP
//!  64     8  STOREHOST
//!  72     4  RECONSUMETIMES
//!  76     8  PREPAREDTRANSACTIONOFFSET
//!  84     4  BODYLENGTH, then BODY
//!   .   1|2  TOPICLENGTH, then TOPIC
//!   .     2  PROPERTIESLENGTH, then PROPERTIES
//! ```
//!
//! [`MessageView`] parses a record without allocating; [`MessageExt`] owns the decoded
//! message and shares its body with the buffer it came from; [`StoredRecord`] encodes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes};

use super::properties::{PROPERTIES_BYTES_MAX, Properties};
use super::sysflag::message as sysflag;
use crate::error::{ProtocolError, Result};

/// Record magic, v1: 1-byte topic length.
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Record magic, v2: 2-byte topic length (topics over 127 bytes).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// End-of-segment padding marker inside commit-log files; never on the wire.
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;

/// Byte positions readers use without parsing a whole record (IPv4 born host).
pub mod position {
    pub const TOTAL_SIZE: usize = 0;
    pub const MAGIC: usize = 4;
    pub const BODY_CRC: usize = 8;
    pub const QUEUE_ID: usize = 12;
    pub const FLAG: usize = 16;
    pub const QUEUE_OFFSET: usize = 20;
    pub const PHYSICAL_OFFSET: usize = 28;
    pub const SYS_FLAG: usize = 36;
    pub const BORN_TIMESTAMP: usize = 40;
    pub const BORN_HOST: usize = 48;
}

/// Topic length above which the v2 magic (2-byte topic length) is used.
pub const TOPIC_V1_BYTES_MAX: usize = i8::MAX as usize;

/// Fixed bytes of a v1 record with IPv4 hosts, excluding body, topic and properties.
pub const FIXED_V1_IPV4_BYTES: usize = 91;

/// The CRC stored in BODYCRC.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// A stored record parsed in place: nothing is copied or allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    pub total_size: i32,
    pub magic: i32,
    pub body_crc: u32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_timestamp_ms: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let slice = self
            .at
            .checked_add(n)
            .and_then(|end| self.buf.get(self.at..end));
        match slice {
            Some(slice) => {
                self.at += n;
                Ok(slice)
            }
            None => Err(ProtocolError::Truncated {
                what,
                offset: self.at,
                need: n,
                have: self.buf.len().saturating_sub(self.at),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    fn host(&mut self, v6: bool, what: &'static str) -> Result<SocketAddr> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>(what)?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>(what)?))
        };
        let port = self.i32(what)?;
        let port = u16::try_from(port).map_err(|_| ProtocolError::LengthOutOfRange {
            what: "host port",
            length: i64::from(port),
        })?;
        Ok(SocketAddr::new(ip, port))
    }

    fn sized(&mut self, length: i64, what: &'static str) -> Result<&'a [u8]> {
        let n = usize::try_from(length)
            .map_err(|_| ProtocolError::LengthOutOfRange { what, length })?;
        self.take(n, what)
    }
}

impl<'a> MessageView<'a> {
    /// Parses the record at the start of `buf`. The declared TOTALSIZE must equal the sum
    /// of the fields; bytes after the record are left alone.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { buf, at: 0 };
        let total_size = c.i32("TOTALSIZE")?;
        let magic = c.i32("MAGICCODE")?;
        if magic != MAGIC_V1 && magic != MAGIC_V2 {
            return Err(ProtocolError::BadMagic {
                magic: magic as u32,
                offset: position::MAGIC,
            });
        }
        if total_size < 0 || usize::try_from(total_size).map_or(true, |n| n > buf.len()) {
            return Err(ProtocolError::Truncated {
                what: "stored message",
                offset: 0,
                need: usize::try_from(total_size).unwrap_or(0),
                have: buf.len(),
            });
        }
        let body_crc = c.i32("BODYCRC")? as u32;
        let queue_id = c.i32("QUEUEID")?;
        let flag = c.i32("FLAG")?;
        let queue_offset = c.i64("QUEUEOFFSET")?;
        let physical_offset = c.i64("PHYSICALOFFSET")?;
        let sys_flag = c.i32("SYSFLAG")?;
        let born_timestamp_ms = c.i64("BORNTIMESTAMP")?;
        let born_host = c.host(sys_flag & sysflag::BORNHOST_V6 != 0, "BORNHOST")?;
        let store_timestamp_ms = c.i64("STORETIMESTAMP")?;
        let store_host = c.host(sys_flag & sysflag::STOREHOST_V6 != 0, "STOREHOST")?;
        let reconsume_times = c.i32("RECONSUMETIMES")?;
        let prepared_transaction_offset = c.i64("PREPAREDTRANSACTIONOFFSET")?;
        let body_len = c.i32("BODYLENGTH")?;
        let body = c.sized(i64::from(body_len), "BODY")?;
        let topic_len = if magic == MAGIC_V1 {
            let [len] = c.array::<1>("TOPICLENGTH")?;
            i64::from(len)
        } else {
            i64::from(i16::from_be_bytes(c.array("TOPICLENGTH")?))
        };
        let topic = std::str::from_utf8(c.sized(topic_len, "TOPIC")?)
            .map_err(|_| ProtocolError::InvalidUtf8 { what: "topic" })?;
        let properties_len = i16::from_be_bytes(c.array("PROPERTIESLENGTH")?);
        let properties = std::str::from_utf8(c.sized(i64::from(properties_len), "PROPERTIES")?)
            .map_err(|_| ProtocolError::InvalidUtf8 { what: "properties" })?;
        if i64::from(total_size) != c.at as i64 {
            return Err(ProtocolError::TotalSizeMismatch {
                declared: i64::from(total_size),
                computed: c.at as i64,
            });
        }
        Ok(Self {
            total_size,
            magic,
            body_crc,
            queue_id,
            flag,
            queue_offset,
            physical_offset,
            sys_flag,
            born_timestamp_ms,
            born_host,
            store_timestamp_ms,
            store_host,
            reconsume_times,
            prepared_transaction_offset,
            body,
            topic,
            properties,
        })
    }

    /// Bytes this record occupies.
    pub fn record_len(&self) -> usize {
        usize::try_from(self.total_size).unwrap_or(0)
    }

    /// Recomputes the body CRC and compares it with BODYCRC.
    pub fn verify_body_crc(&self) -> Result<()> {
        let computed = body_crc(self.body);
        if computed == self.body_crc {
            Ok(())
        } else {
            Err(ProtocolError::BodyCrcMismatch {
                stored: self.body_crc,
                computed,
            })
        }
    }

    /// One property, looked up in the encoded string.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        super::properties::find(self.properties, name)
    }
}

/// A decoded stored message (Java `MessageExt`). Its body shares the buffer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    /// Commit-log offset of the record's first byte.
    pub commit_log_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_timestamp_ms: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body_crc: u32,
    pub store_size: i32,
    pub body: Bytes,
    pub properties: Properties,
}

impl MessageExt {
    /// Decodes the record at the start of `buf`, sharing the body with it.
    pub fn decode(buf: &Bytes) -> Result<Self> {
        let view = MessageView::parse(buf)?;
        Ok(Self::from_view(&view, buf))
    }

    /// Decodes every record of a pull or query body, back to back.
    pub fn decode_all(buf: &Bytes) -> Result<Vec<Self>> {
        let mut messages = Vec::new();
        let mut rest = buf.clone();
        while !rest.is_empty() {
            let view = MessageView::parse(&rest)?;
            let len = view.record_len();
            messages.push(Self::from_view(&view, &rest));
            let _ = rest.split_to(len);
        }
        Ok(messages)
    }

    /// Owns a parsed view; `backing` must be the buffer the view was parsed from.
    pub fn from_view(view: &MessageView<'_>, backing: &Bytes) -> Self {
        Self {
            topic: view.topic.to_owned(),
            queue_id: view.queue_id,
            flag: view.flag,
            queue_offset: view.queue_offset,
            commit_log_offset: view.physical_offset,
            sys_flag: view.sys_flag,
            born_timestamp_ms: view.born_timestamp_ms,
            born_host: view.born_host,
            store_timestamp_ms: view.store_timestamp_ms,
            store_host: view.store_host,
            reconsume_times: view.reconsume_times,
            prepared_transaction_offset: view.prepared_transaction_offset,
            body_crc: view.body_crc,
            store_size: view.total_size,
            body: backing.slice_ref(view.body),
            properties: Properties::decode(view.properties),
        }
    }

    /// The offsetMsgId: store host and commit-log offset (spec §6.3).
    pub fn offset_msg_id(&self) -> String {
        super::id::offset_msg_id(self.store_host, self.commit_log_offset)
    }

    /// What a consumer calls the message id: UNIQ_KEY when present, else the offsetMsgId.
    pub fn msg_id(&self) -> String {
        self.properties
            .uniq_key()
            .map_or_else(|| self.offset_msg_id(), str::to_owned)
    }

    pub fn tags(&self) -> Option<&str> {
        self.properties.tags()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.properties.keys()
    }

    /// Encodes the message in the stored layout, recomputing TOTALSIZE, the body CRC and
    /// the host bits of the sysFlag.
    pub fn encode(&self, dst: &mut impl BufMut) -> Result<()> {
        let properties = self.properties.encode();
        self.as_record(properties.as_bytes()).encode(dst)
    }

    pub fn to_bytes(&self) -> Result<Bytes> {
        let properties = self.properties.encode();
        let record = self.as_record(properties.as_bytes());
        let mut out = Vec::with_capacity(record.encoded_len()?);
        record.encode(&mut out)?;
        Ok(out.into())
    }

    fn as_record<'a>(&'a self, properties: &'a [u8]) -> StoredRecord<'a> {
        StoredRecord {
            topic: &self.topic,
            queue_id: self.queue_id,
            flag: self.flag,
            queue_offset: self.queue_offset,
            physical_offset: self.commit_log_offset,
            sys_flag: self.sys_flag,
            born_timestamp_ms: self.born_timestamp_ms,
            born_host: self.born_host,
            store_timestamp_ms: self.store_timestamp_ms,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body: &self.body,
            properties,
        }
    }
}

/// The fields of one record to encode. The encoder computes TOTALSIZE, the magic, the
/// body CRC and the host bits of the sysFlag; the caller supplies everything else.
#[derive(Debug, Clone, Copy)]
pub struct StoredRecord<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_timestamp_ms: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub properties: &'a [u8],
}

fn host_len(host: &SocketAddr) -> usize {
    match host {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

fn put_host(dst: &mut impl BufMut, host: &SocketAddr) {
    match host.ip() {
        IpAddr::V4(ip) => dst.put_slice(&ip.octets()),
        IpAddr::V6(ip) => dst.put_slice(&ip.octets()),
    }
    dst.put_i32(i32::from(host.port()));
}

impl StoredRecord<'_> {
    /// Topic longer than 127 bytes switches to the v2 magic.
    pub fn magic(&self) -> i32 {
        if self.topic.len() > TOPIC_V1_BYTES_MAX {
            MAGIC_V2
        } else {
            MAGIC_V1
        }
    }

    /// The sysFlag as written: host bits follow the actual address families.
    pub fn effective_sys_flag(&self) -> i32 {
        let mut flag = self.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            flag |= sysflag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            flag |= sysflag::STOREHOST_V6;
        }
        flag
    }

    /// Size of the encoded record; fails when a field exceeds what its length prefix holds.
    pub fn encoded_len(&self) -> Result<usize> {
        self.lengths().map(|lengths| lengths.total_bytes)
    }

    fn lengths(&self) -> Result<WireLengths> {
        let too_long = |what, length, max_bytes| ProtocolError::TooLong {
            what,
            length,
            max_bytes,
        };
        let properties = i16::try_from(self.properties.len()).map_err(|_| {
            too_long(
                "message properties",
                self.properties.len(),
                PROPERTIES_BYTES_MAX,
            )
        })?;
        let topic = i16::try_from(self.topic.len())
            .map_err(|_| too_long("topic", self.topic.len(), i16::MAX as usize))?;
        let body = i32::try_from(self.body.len())
            .map_err(|_| too_long("message body", self.body.len(), i32::MAX as usize))?;
        let topic_len_bytes = if self.magic() == MAGIC_V1 { 1 } else { 2 };
        let total_bytes = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(&self.born_host)
            + 8
            + host_len(&self.store_host)
            + 4
            + 8
            + 4
            + self.body.len()
            + topic_len_bytes
            + self.topic.len()
            + 2
            + self.properties.len();
        let total = i32::try_from(total_bytes)
            .map_err(|_| too_long("stored message", total_bytes, i32::MAX as usize))?;
        Ok(WireLengths {
            total,
            total_bytes,
            body,
            topic,
            properties,
        })
    }

    /// Writes the record.
    pub fn encode(&self, dst: &mut impl BufMut) -> Result<()> {
        let lengths = self.lengths()?;
        let magic = self.magic();
        dst.put_i32(lengths.total);
        dst.put_i32(magic);
        dst.put_u32(body_crc(self.body));
        dst.put_i32(self.queue_id);
        dst.put_i32(self.flag);
        dst.put_i64(self.queue_offset);
        dst.put_i64(self.physical_offset);
        dst.put_i32(self.effective_sys_flag());
        dst.put_i64(self.born_timestamp_ms);
        put_host(dst, &self.born_host);
        dst.put_i64(self.store_timestamp_ms);
        put_host(dst, &self.store_host);
        dst.put_i32(self.reconsume_times);
        dst.put_i64(self.prepared_transaction_offset);
        dst.put_i32(lengths.body);
        dst.put_slice(self.body);
        match u8::try_from(lengths.topic) {
            Ok(short) if magic == MAGIC_V1 => dst.put_u8(short),
            _ => dst.put_i16(lengths.topic),
        }
        dst.put_slice(self.topic.as_bytes());
        dst.put_i16(lengths.properties);
        dst.put_slice(self.properties);
        Ok(())
    }
}

/// Field lengths as they go on the wire, checked against their prefixes.
struct WireLengths {
    total: i32,
    total_bytes: usize,
    body: i32,
    topic: i16,
    properties: i16,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn golden_record() -> StoredRecord<'static> {
        StoredRecord {
            topic: "TopicTest",
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp_ms: 1_700_000_000_000,
            born_host: "127.0.0.1:54321".parse().unwrap(),
            store_timestamp_ms: 1_700_000_000_005,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"hello",
            properties: b"WAIT\x01true\x02TAGS\x01TagA\x02",
        }
    }

    #[test]
    fn v2_magic_for_long_topics() {
        let topic = format!("%RETRY%{}", "g".repeat(130));
        let mut record = golden_record();
        record.topic = &topic;
        let mut out = Vec::new();
        record.encode(&mut out).unwrap();
        let view = MessageView::parse(&out).unwrap();
        assert_eq!(view.magic, MAGIC_V2);
        assert_eq!(view.topic, topic);
    }

    #[test]
    fn ipv6_hosts_set_sysflag_bits_and_round_trip() {
        let mut record = golden_record();
        record.born_host = "[::1]:5000".parse().unwrap();
        record.store_host = "[fe80::1]:10911".parse().unwrap();
        let mut out = Vec::new();
        record.encode(&mut out).unwrap();
        assert_eq!(out.len(), 125 + 24);
        let view = MessageView::parse(&out).unwrap();
        assert_eq!(view.sys_flag, sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
        assert_eq!(view.born_host, record.born_host);
        assert_eq!(view.store_host, record.store_host);
    }

    #[test]
    fn parse_rejects_total_size_that_disagrees_with_fields() {
        let mut out = Vec::new();
        golden_record().encode(&mut out).unwrap();
        out.extend_from_slice(&[0; 4]);
        out[3] = 129; // TOTALSIZE 129 but fields add up to 125
        assert!(matches!(
            MessageView::parse(&out),
            Err(ProtocolError::TotalSizeMismatch {
                declared: 129,
                computed: 125
            })
        ));
    }

    #[test]
    fn parse_rejects_blank_magic() {
        let mut out = vec![0, 0, 0, 8];
        out.extend_from_slice(&BLANK_MAGIC.to_be_bytes());
        assert!(matches!(
            MessageView::parse(&out),
            Err(ProtocolError::BadMagic { .. })
        ));
    }

    #[test]
    fn crc_check_catches_a_flipped_body_byte() {
        let mut out = Vec::new();
        golden_record().encode(&mut out).unwrap();
        out[88] ^= 0xFF;
        let view = MessageView::parse(&out).unwrap();
        assert!(view.verify_body_crc().is_err());
    }

    #[test]
    fn too_long_properties_are_refused() {
        let props = vec![b'a'; PROPERTIES_BYTES_MAX + 1];
        let mut record = golden_record();
        record.properties = &props;
        assert!(record.encoded_len().is_err());
    }

    #[test]
    fn decode_all_reads_records_back_to_back() {
        let mut out = Vec::new();
        golden_record().encode(&mut out).unwrap();
        let mut second = golden_record();
        second.queue_offset = 1;
        second.physical_offset = 125;
        second.encode(&mut out).unwrap();
        let messages = MessageExt::decode_all(&Bytes::from(out)).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].queue_offset, 1);
        assert_eq!(messages[1].tags(), Some("TagA"));
        assert_eq!(&messages[1].body[..], b"hello");
    }
}
