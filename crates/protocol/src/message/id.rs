//! Message ids: the offsetMsgId a broker derives from where a record is stored (spec §6.3)
//! and the client UNIQ_KEY (spec §6.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::error::{ProtocolError, Result};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0F] {
            let digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
            out.push(char::from(digit));
        }
    }
}

fn parse_hex(id: &str) -> Result<Vec<u8>> {
    let invalid = |reason| ProtocolError::InvalidMessageId {
        id: id.to_owned(),
        reason,
    };
    if !id.len().is_multiple_of(2) {
        return Err(invalid("odd number of hex digits"));
    }
    id.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| invalid("not hex"))?;
            u8::from_str_radix(text, 16).map_err(|_| invalid("not hex"))
        })
        .collect()
}

/// `offsetMsgId`: store IP, store port (i32) and commit-log offset (i64) in upper-case hex;
/// 32 characters for IPv4, 56 for IPv6.
pub fn offset_msg_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut out = String::with_capacity(56);
    match store_host.ip() {
        IpAddr::V4(ip) => push_hex(&mut out, &ip.octets()),
        IpAddr::V6(ip) => push_hex(&mut out, &ip.octets()),
    }
    push_hex(&mut out, &i32::from(store_host.port()).to_be_bytes());
    push_hex(&mut out, &commit_log_offset.to_be_bytes());
    out
}

/// Decodes an offsetMsgId into the broker address and commit-log offset. As in Java, a
/// 32-character id is IPv4 and anything else is tried as IPv6.
pub fn parse_offset_msg_id(id: &str) -> Result<(SocketAddr, i64)> {
    let bytes = parse_hex(id)?;
    let invalid = |reason| ProtocolError::InvalidMessageId {
        id: id.to_owned(),
        reason,
    };
    let ip_len = match bytes.len() {
        16 => 4,
        28 => 16,
        _ => return Err(invalid("expected 32 or 56 hex digits")),
    };
    let (ip, rest) = bytes.split_at(ip_len);
    let (port, offset) = rest.split_at(4);
    let ip = match ip_len {
        4 => IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(ip).map_err(|_| invalid("bad ip"))?,
        )),
        _ => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(ip).map_err(|_| invalid("bad ip"))?,
        )),
    };
    let port = i32::from_be_bytes(port.try_into().map_err(|_| invalid("bad port"))?);
    let port = u16::try_from(port).map_err(|_| invalid("port out of range"))?;
    let offset = i64::from_be_bytes(offset.try_into().map_err(|_| invalid("bad offset"))?);
    Ok((SocketAddr::new(ip, port), offset))
}

/// Generates client message ids (UNIQ_KEY): ip, pid (2 bytes), a process-constant 4 bytes,
/// milliseconds since the start of the current month (4 bytes), a counter (2 bytes).
#[derive(Debug)]
pub struct UniqIdGenerator {
    prefix: String,
    counter: AtomicU16,
}

impl UniqIdGenerator {
    /// `process_tag` stands in for Java's class-loader hash: any 32 bits constant for the
    /// process (a random value at start is best).
    pub fn new(ip: IpAddr, pid: u32, process_tag: u32) -> Self {
        let mut prefix = String::with_capacity(40);
        match ip {
            IpAddr::V4(ip) => push_hex(&mut prefix, &ip.octets()),
            IpAddr::V6(ip) => push_hex(&mut prefix, &ip.octets()),
        }
        push_hex(&mut prefix, &((pid & 0xFFFF) as u16).to_be_bytes());
        push_hex(&mut prefix, &process_tag.to_be_bytes());
        Self {
            prefix,
            counter: AtomicU16::new(0),
        }
    }

    /// The next id; `now_ms` is wall-clock epoch milliseconds.
    pub fn next_id(&self, now_ms: i64) -> String {
        let since_month = now_ms.saturating_sub(month_start_ms(now_ms));
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 12);
        id.push_str(&self.prefix);
        // Under 31 days of milliseconds: always fits.
        let since_month = i32::try_from(since_month).unwrap_or(i32::MAX);
        push_hex(&mut id, &since_month.to_be_bytes());
        push_hex(&mut id, &counter.to_be_bytes());
        id
    }
}

/// Epoch milliseconds of 00:00 UTC on the first day of the month containing `now_ms`.
/// (Java uses the local zone; the id is opaque to brokers, so UTC is as good.)
fn month_start_ms(now_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let days = now_ms.div_euclid(DAY_MS);
    let (year, month, _) = civil_from_days(days);
    days_from_civil(year, month, 1) * DAY_MS
}

// Howard Hinnant's days/civil conversions (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_offset_msg_id_from_spec_6_3() {
        let host: SocketAddr = "192.168.0.1:10911".parse().unwrap();
        assert_eq!(
            offset_msg_id(host, 0x1234),
            "C0A8000100002A9F0000000000001234"
        );
        assert_eq!(
            parse_offset_msg_id("C0A8000100002A9F0000000000001234").unwrap(),
            (host, 0x1234)
        );
    }

    #[test]
    fn golden_offset_msg_id_from_spec_5_1() {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        assert_eq!(offset_msg_id(host, 0), "7F00000100002A9F0000000000000000");
    }

    #[test]
    fn ipv6_offset_msg_id_round_trips() {
        let host: SocketAddr = "[fe80::1]:10911".parse().unwrap();
        let id = offset_msg_id(host, 42);
        assert_eq!(id.len(), 56);
        assert_eq!(parse_offset_msg_id(&id).unwrap(), (host, 42));
    }

    #[test]
    fn bad_offset_msg_ids_are_errors() {
        for id in ["", "ABC", "ZZ00000100002A9F0000000000001234", "C0A80001"] {
            assert!(parse_offset_msg_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn uniq_id_layout_matches_spec_6_2() {
        let generator = UniqIdGenerator::new("192.168.0.1".parse().unwrap(), 12345, 0x1B6D_3586);
        // 2023-11-14T22:13:20Z is 13 days, 22h13m20s after the start of November.
        let id = generator.next_id(1_700_000_000_000);
        assert_eq!(id.len(), 32);
        assert_eq!(&id[..20], "C0A8000130391B6D3586");
        let expected_ms: i64 = ((13 * 24 + 22) * 3600 + 13 * 60 + 20) * 1000;
        assert_eq!(&id[20..28], format!("{:08X}", expected_ms as i32));
        assert_eq!(&id[28..], "0000");
        assert!(generator.next_id(1_700_000_000_000).ends_with("0001"));
    }

    #[test]
    fn month_start_handles_leap_years() {
        // 2024-02-29T12:00:00Z -> 2024-02-01T00:00:00Z
        assert_eq!(month_start_ms(1_709_208_000_000), 1_706_745_600_000);
    }
}
