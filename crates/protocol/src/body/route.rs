//! Route and registration bodies (spec §4.2–§4.4).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::fastjson;
use crate::error::{ProtocolError, Result};
use crate::message::sysflag::perm;

/// A table's version: equal iff all three fields match (spec §4.0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

impl DataVersion {
    pub fn new(now_ms: i64) -> Self {
        Self {
            counter: 0,
            state_version: 0,
            timestamp: now_ms,
        }
    }

    /// Records a change.
    pub fn next_version(&mut self, now_ms: i64) {
        self.timestamp = now_ms;
        self.counter += 1;
    }
}

/// `SINGLE_TAG` or `MULTI_TAG`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicFilterType {
    #[default]
    #[serde(rename = "SINGLE_TAG")]
    SingleTag,
    #[serde(rename = "MULTI_TAG")]
    MultiTag,
}

impl TopicFilterType {
    pub fn name(self) -> &'static str {
        match self {
            Self::SingleTag => "SINGLE_TAG",
            Self::MultiTag => "MULTI_TAG",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SINGLE_TAG" => Some(Self::SingleTag),
            "MULTI_TAG" => Some(Self::MultiTag),
            _ => None,
        }
    }
}

/// One topic's configuration on a broker (spec §4.4). Fields in fastjson's alphabetical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    pub attributes: BTreeMap<String, String>,
    pub order: bool,
    pub perm: i32,
    pub read_queue_nums: i32,
    pub topic_filter_type: TopicFilterType,
    pub topic_name: String,
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            attributes: BTreeMap::new(),
            order: false,
            perm: perm::READ_WRITE,
            read_queue_nums: 16,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: 16,
        }
    }
}

impl TopicConfig {
    pub fn new(
        topic_name: impl Into<String>,
        read_queue_nums: i32,
        write_queue_nums: i32,
        perm: i32,
    ) -> Self {
        Self {
            topic_name: topic_name.into(),
            read_queue_nums,
            write_queue_nums,
            perm,
            ..Self::default()
        }
    }

    /// The space-separated text form: `name read write perm filterType [attributesJson]`.
    pub fn encode_text(&self) -> String {
        let mut text = format!(
            "{} {} {} {} {}",
            self.topic_name,
            self.read_queue_nums,
            self.write_queue_nums,
            self.perm,
            self.topic_filter_type.name()
        );
        text.push(' ');
        text.push_str(&String::from_utf8_lossy(&fastjson::to_standard_vec(
            &self.attributes,
        )));
        text
    }

    pub fn decode_text(text: &str) -> Result<Self> {
        let malformed = |reason: &str| ProtocolError::BodyMalformed {
            what: "topic config text",
            reason: format!("{reason} in {text:?}"),
        };
        let mut parts = text.splitn(6, ' ');
        let mut next = |name: &str| {
            parts
                .next()
                .ok_or_else(|| malformed(&format!("missing {name}")))
        };
        let topic_name = next("topic name")?.to_owned();
        let number = |s: &str, name: &str| {
            s.parse::<i32>()
                .map_err(|_| malformed(&format!("bad {name}")))
        };
        let read_queue_nums = number(next("read queue count")?, "read queue count")?;
        let write_queue_nums = number(next("write queue count")?, "write queue count")?;
        let perm = number(next("perm")?, "perm")?;
        let topic_filter_type = TopicFilterType::from_name(next("filter type")?)
            .ok_or_else(|| malformed("bad filter type"))?;
        let attributes = match parts.next() {
            Some(json) if !json.is_empty() => {
                fastjson::from_slice(json.as_bytes(), "topic attributes")?
            }
            _ => BTreeMap::new(),
        };
        Ok(Self {
            attributes,
            order: false,
            perm,
            read_queue_nums,
            topic_filter_type,
            topic_name,
            topic_sys_flag: 0,
            write_queue_nums,
        })
    }
}

/// One broker's queues for one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    pub broker_name: String,
    pub perm: i32,
    pub read_queue_nums: i32,
    /// Java clients up to 4.8 name it `topicSynFlag`.
    #[serde(alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

/// One broker group: its cluster and the address of each member by broker id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    /// 0 is the master; 1.. are slaves.
    pub broker_addrs: BTreeMap<i64, String>,
    pub broker_name: String,
    pub cluster: String,
    pub enable_acting_master: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

impl BrokerData {
    /// The master's address, or the lowest-id member's when no master is registered.
    pub fn select_broker_addr(&self) -> Option<&str> {
        self.broker_addrs
            .get(&0)
            .or_else(|| self.broker_addrs.values().next())
            .map(String::as_str)
    }
}

/// GET_ROUTEINFO_BY_TOPIC body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    pub broker_datas: Vec<BrokerData>,
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, serde_json::Value>>,
}

/// GET_BROKER_CLUSTER_INFO body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// Topic list bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    pub topic_list: BTreeSet<String>,
}

/// KV bodies and broker runtime info.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KVTable {
    pub table: BTreeMap<String, String>,
}

/// Group list bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupList {
    pub group_list: BTreeSet<String>,
}

/// The topic table a broker registers, with its version (5.x adds the static-topic maps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    pub data_version: DataVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_data_version: Option<DataVersion>,
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_detail_map: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_info_map: Option<BTreeMap<String, serde_json::Value>>,
}

/// REGISTER_BROKER body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    pub filter_server_list: Vec<String>,
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

/// Decompressed register bodies larger than this are refused (a 16 MiB frame of zlib could
/// otherwise claim gigabytes).
pub const REGISTER_BODY_DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

impl RegisterBrokerBody {
    /// Decodes the body of a REGISTER_BROKER request: JSON, the bare wrapper of brokers
    /// older than V3_0_11, or the compressed binary form.
    pub fn decode(body: &[u8], compressed: bool, request_version: i32) -> Result<Self> {
        if compressed {
            return Self::decode_compressed(body, request_version);
        }
        if request_version < crate::code::version::V3_0_11 {
            let wrapper = fastjson::from_slice(body, "TopicConfigSerializeWrapper")?;
            return Ok(Self {
                filter_server_list: Vec::new(),
                topic_config_serialize_wrapper: wrapper,
            });
        }
        fastjson::from_slice(body, "RegisterBrokerBody")
    }

    /// The compressed form (spec §4.4).
    pub fn encode_compressed(&self, request_version: i32) -> Vec<u8> {
        let mut raw = Vec::new();
        let wrapper = &self.topic_config_serialize_wrapper;
        put_len_prefixed(&mut raw, &fastjson::to_standard_vec(&wrapper.data_version));
        put_count(&mut raw, wrapper.topic_config_table.len());
        for config in wrapper.topic_config_table.values() {
            put_len_prefixed(&mut raw, config.encode_text().as_bytes());
        }
        put_len_prefixed(
            &mut raw,
            &fastjson::to_standard_vec(&self.filter_server_list),
        );
        if request_version >= crate::code::version::V5_0_0 {
            let infos = wrapper
                .topic_queue_mapping_info_map
                .clone()
                .unwrap_or_default();
            put_count(&mut raw, infos.len());
            for info in infos.values() {
                put_len_prefixed(&mut raw, &fastjson::to_standard_vec(info));
            }
        }
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = encoder.write_all(&raw);
        encoder.finish().unwrap_or_default()
    }

    fn decode_compressed(body: &[u8], request_version: i32) -> Result<Self> {
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .take(REGISTER_BODY_DECOMPRESSED_BYTES_MAX as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(|source| ProtocolError::Zlib { source })?;
        if raw.len() > REGISTER_BODY_DECOMPRESSED_BYTES_MAX {
            return Err(ProtocolError::DecompressTooLarge {
                max_bytes: REGISTER_BODY_DECOMPRESSED_BYTES_MAX,
            });
        }
        let mut reader = LenReader { buf: &raw, at: 0 };
        let data_version = fastjson::from_slice(reader.chunk()?, "DataVersion")?;
        let topic_count = reader.count()?;
        let mut topic_config_table = BTreeMap::new();
        for _ in 0..topic_count {
            let text =
                std::str::from_utf8(reader.chunk()?).map_err(|_| ProtocolError::InvalidUtf8 {
                    what: "topic config text",
                })?;
            let config = TopicConfig::decode_text(text)?;
            topic_config_table.insert(config.topic_name.clone(), config);
        }
        let filter_server_list = fastjson::from_slice(reader.chunk()?, "filterServerList")?;
        let mut mapping_infos = None;
        if request_version >= crate::code::version::V5_0_0 && reader.remaining() > 0 {
            let count = reader.count()?;
            let mut infos = BTreeMap::new();
            for i in 0..count {
                let info: serde_json::Value =
                    fastjson::from_slice(reader.chunk()?, "TopicQueueMappingInfo")?;
                let topic = info
                    .get("topic")
                    .and_then(|t| t.as_str())
                    .map_or_else(|| i.to_string(), str::to_owned);
                infos.insert(topic, info);
            }
            mapping_infos = Some(infos);
        }
        Ok(Self {
            filter_server_list,
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                data_version,
                mapping_data_version: None,
                topic_config_table,
                topic_queue_mapping_detail_map: None,
                topic_queue_mapping_info_map: mapping_infos,
            },
        })
    }
}

fn put_count(out: &mut Vec<u8>, count: usize) {
    out.extend_from_slice(&i32::try_from(count).unwrap_or(i32::MAX).to_be_bytes());
}

fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct LenReader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> LenReader<'a> {
    fn i32(&mut self) -> Result<i32> {
        let bytes: [u8; 4] = self
            .buf
            .get(self.at..self.at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or(ProtocolError::Truncated {
                what: "compressed register body",
                offset: self.at,
                need: 4,
                have: self.remaining(),
            })?;
        self.at += 4;
        Ok(i32::from_be_bytes(bytes))
    }

    fn count(&mut self) -> Result<usize> {
        let n = self.i32()?;
        // Each entry needs at least its 4-byte length, which bounds a lying count.
        usize::try_from(n)
            .ok()
            .filter(|n| n.saturating_mul(4) <= self.remaining())
            .ok_or(ProtocolError::LengthOutOfRange {
                what: "compressed register body count",
                length: i64::from(n),
            })
    }

    fn chunk(&mut self) -> Result<&'a [u8]> {
        let n = self.i32()?;
        let len = usize::try_from(n).map_err(|_| ProtocolError::LengthOutOfRange {
            what: "compressed register body chunk",
            length: i64::from(n),
        })?;
        let chunk = self
            .at
            .checked_add(len)
            .and_then(|end| self.buf.get(self.at..end))
            .ok_or(ProtocolError::Truncated {
                what: "compressed register body chunk",
                offset: self.at,
                need: len,
                have: self.remaining(),
            })?;
        self.at += len;
        Ok(chunk)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker_a() -> BrokerData {
        BrokerData {
            broker_addrs: [(0, "127.0.0.1:10911".to_string())].into(),
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            enable_acting_master: false,
            zone_name: None,
        }
    }

    fn route() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![broker_a()],
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm: 6,
                read_queue_nums: 4,
                topic_sys_flag: 0,
                write_queue_nums: 4,
            }],
            ..TopicRouteData::default()
        }
    }

    /// Spec §4.2, standard dialect, verbatim.
    const GOLDEN_ROUTE_STANDARD: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

    #[test]
    fn golden_route_standard_dialect() {
        assert_eq!(
            String::from_utf8(fastjson::to_standard_vec(&route())).unwrap(),
            GOLDEN_ROUTE_STANDARD
        );
        let back: TopicRouteData =
            fastjson::from_slice(GOLDEN_ROUTE_STANDARD.as_bytes(), "route").unwrap();
        assert_eq!(back, route());
    }

    #[test]
    fn golden_route_fastjson_dialect() {
        let text = String::from_utf8(fastjson::to_vec(&route())).unwrap();
        assert!(text.starts_with(
            r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":["#
        ));
        let back: TopicRouteData = fastjson::from_slice(text.as_bytes(), "route").unwrap();
        assert_eq!(back, route());
    }

    #[test]
    fn old_clients_topic_syn_flag_is_accepted() {
        let q: QueueData = serde_json::from_str(r#"{"brokerName":"b","topicSynFlag":3}"#).unwrap();
        assert_eq!(q.topic_sys_flag, 3);
    }

    #[test]
    fn topic_config_text_form_round_trips() {
        let config = TopicConfig::new("TopicTest", 8, 8, 6);
        assert_eq!(config.encode_text(), "TopicTest 8 8 6 SINGLE_TAG {}");
        assert_eq!(
            TopicConfig::decode_text("TopicTest 8 8 6 SINGLE_TAG {}").unwrap(),
            config
        );
        assert_eq!(
            TopicConfig::decode_text("TopicTest 8 8 6 SINGLE_TAG").unwrap(),
            config
        );
        assert!(TopicConfig::decode_text("TopicTest 8 x 6 SINGLE_TAG").is_err());
    }

    #[test]
    fn compressed_register_body_round_trips() {
        let mut body = RegisterBrokerBody::default();
        body.topic_config_serialize_wrapper.data_version = DataVersion {
            counter: 3,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        for name in ["A", "B"] {
            body.topic_config_serialize_wrapper
                .topic_config_table
                .insert(name.into(), TopicConfig::new(name, 4, 4, 6));
        }
        let packed = body.encode_compressed(crate::code::version::V5_3_3);
        let back = RegisterBrokerBody::decode(&packed, true, crate::code::version::V5_3_3).unwrap();
        assert_eq!(
            back.topic_config_serialize_wrapper.data_version,
            body.topic_config_serialize_wrapper.data_version
        );
        assert_eq!(
            back.topic_config_serialize_wrapper.topic_config_table,
            body.topic_config_serialize_wrapper.topic_config_table
        );
    }

    #[test]
    fn compressed_register_body_with_lying_count_is_refused() {
        let mut raw = Vec::new();
        put_len_prefixed(&mut raw, b"{}");
        raw.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&raw).unwrap();
        let packed = encoder.finish().unwrap();
        assert!(RegisterBrokerBody::decode(&packed, true, 479).is_err());
    }

    #[test]
    fn cluster_info_uses_unquoted_ids() {
        let mut info = ClusterInfo::default();
        info.broker_addr_table.insert("broker-a".into(), broker_a());
        info.cluster_addr_table
            .insert("DefaultCluster".into(), ["broker-a".to_string()].into());
        let text = String::from_utf8(fastjson::to_vec(&info)).unwrap();
        assert_eq!(
            text,
            r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#
        );
    }
}
