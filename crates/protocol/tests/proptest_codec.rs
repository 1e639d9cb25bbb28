//! Property tests for every codec: `decode(encode(x)) == x`, arbitrary bytes never panic
//! and never allocate past the limit, every strict prefix of a frame is "need more", and
//! feeding bytes in arbitrary chunks yields the same frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use karman_protocol::command::ExtFields;
use karman_protocol::header::{
    PullMessageRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use karman_protocol::message::batch::{decode_batch, encode_batch_entry};
use karman_protocol::message::{MessageView, Properties, StoredRecord};
use karman_protocol::{Body, FrameDecoder, LanguageCode, RemotingCommand, SerializeType};
use proptest::prelude::*;

fn serialize_type() -> impl Strategy<Value = SerializeType> {
    prop_oneof![Just(SerializeType::Json), Just(SerializeType::RocketMq)]
}

fn language() -> impl Strategy<Value = LanguageCode> {
    (0u8..14).prop_map(LanguageCode::from_u8)
}

fn ext_fields() -> impl Strategy<Value = ExtFields> {
    // Binary headers cannot carry empty values (they decode as absent), so neither do we.
    prop::collection::btree_map("[a-zA-Z_]{1,12}", "\\PC{1,24}", 0..8)
        .prop_map(|fields| fields.into_iter().collect())
}

prop_compose! {
    fn command()(
        code in -32768i32..32768,
        language in language(),
        version in -32768i32..32768,
        opaque in any::<i32>(),
        flag in 0i32..4,
        remark in prop::option::of("\\PC{1,40}"),
        ext_fields in ext_fields(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) -> RemotingCommand {
        let mut command = RemotingCommand::request(karman_protocol::RequestCode::from_i32(code));
        command.language = language;
        command.version = version;
        command.opaque = opaque;
        command.flag = flag;
        command.remark = remark;
        command.ext_fields = ext_fields;
        command.body = Body::from(body);
        command
    }
}

fn encode(command: &RemotingCommand, serialize_type: SerializeType) -> Vec<u8> {
    let mut wire = BytesMut::new();
    command.encode(serialize_type, &mut wire).unwrap();
    wire.to_vec()
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn command_round_trips(command in command(), serialize_type in serialize_type()) {
        let mut wire = BytesMut::from(&encode(&command, serialize_type)[..]);
        let frame = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
        let mut decoded = RemotingCommand::decode(frame).unwrap();
        prop_assert!(wire.is_empty());
        decoded.serialize_type = command.serialize_type;
        prop_assert_eq!(decoded, command);
    }

    #[test]
    fn every_strict_prefix_needs_more(command in command(), serialize_type in serialize_type()) {
        let wire = encode(&command, serialize_type);
        let decoder = FrameDecoder::default();
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            prop_assert!(decoder.decode(&mut buf).unwrap().is_none());
        }
    }

    #[test]
    fn arbitrary_chunking_gives_the_same_frames(
        commands in prop::collection::vec(command(), 1..5),
        serialize_type in serialize_type(),
        chunk_sizes in prop::collection::vec(1usize..64, 1..32),
    ) {
        let wire: Vec<u8> = commands.iter().flat_map(|c| encode(c, serialize_type)).collect();
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut at = 0;
        let mut sizes = chunk_sizes.iter().cycle();
        while at < wire.len() {
            let n = (*sizes.next().unwrap()).min(wire.len() - at);
            buf.extend_from_slice(&wire[at..at + n]);
            at += n;
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                decoded.push(RemotingCommand::decode(frame).unwrap());
            }
        }
        prop_assert_eq!(decoded.len(), commands.len());
        for (got, want) in decoded.iter().zip(&commands) {
            prop_assert_eq!(got.opaque, want.opaque);
            prop_assert_eq!(&got.ext_fields, &want.ext_fields);
            prop_assert_eq!(got.body.to_bytes(), want.body.to_bytes());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let decoder = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let _ = RemotingCommand::decode(frame);
        }
        prop_assert!(buf.capacity() <= 2048);
    }

    #[test]
    fn arbitrary_headers_never_panic(header in prop::collection::vec(any::<u8>(), 0..256), st in serialize_type()) {
        let frame = karman_protocol::Frame { serialize_type: st, header: Bytes::from(header), body: Bytes::new() };
        let _ = RemotingCommand::decode(frame);
    }

    #[test]
    fn send_header_v2_round_trips_through_ext_fields(
        group in "[a-zA-Z0-9_-]{1,20}",
        topic in "[a-zA-Z0-9_%|-]{1,40}",
        queue_id in any::<i32>(),
        sys_flag in any::<i32>(),
        born in any::<i64>(),
        flag in any::<i32>(),
        props in prop::option::of("[a-zA-Z0-9\u{1}\u{2}]{1,30}"),
        reconsume in prop::option::of(any::<i32>()),
        batch in any::<bool>(),
    ) {
        let header = SendMessageRequestHeaderV2 {
            producer_group: group, topic, default_topic: "TBW102".into(), default_topic_queue_nums: 4,
            queue_id, sys_flag, born_timestamp: born, flag, properties: props, reconsume_times: reconsume,
            unit_mode: false, max_reconsume_times: None, batch, broker_name: None,
        };
        let mut command = RemotingCommand::request_with_header(karman_protocol::RequestCode::SendMessageV2, &header).unwrap();
        let v1 = SendMessageRequestHeader::decode_from(&command).unwrap();
        prop_assert_eq!(SendMessageRequestHeaderV2::from(v1.clone()), header);
        command = RemotingCommand::request_with_header(karman_protocol::RequestCode::SendMessage, &v1).unwrap();
        prop_assert_eq!(SendMessageRequestHeader::decode_from(&command).unwrap(), v1);
    }

    #[test]
    fn pull_header_round_trips(offset in any::<i64>(), queue_id in any::<i32>(), sub in prop::option::of("\\PC{1,30}")) {
        let header = PullMessageRequestHeader {
            consumer_group: "g".into(), topic: "t".into(), queue_id, queue_offset: offset, max_msg_nums: 32,
            sys_flag: 2, commit_offset: offset, suspend_timeout_millis: 15_000, subscription: sub,
            sub_version: 1, ..PullMessageRequestHeader::default()
        };
        let command = RemotingCommand::request_with_header(karman_protocol::RequestCode::PullMessage, &header).unwrap();
        prop_assert_eq!(command.decode_header::<PullMessageRequestHeader>().unwrap(), header);
    }

    #[test]
    fn stored_message_round_trips(
        topic in "[a-zA-Z0-9_%|-]{1,200}",
        queue_id in any::<i32>(),
        flag in any::<i32>(),
        queue_offset in any::<i64>(),
        physical_offset in any::<i64>(),
        sys_flag in any::<i32>(),
        born in any::<i64>(),
        born_host in socket_addr(),
        stored in any::<i64>(),
        store_host in socket_addr(),
        reconsume in any::<i32>(),
        prepared in any::<i64>(),
        body in prop::collection::vec(any::<u8>(), 0..512),
        properties in "[a-zA-Z0-9\u{1}\u{2}]{0,100}",
    ) {
        let record = StoredRecord {
            topic: &topic, queue_id, flag, queue_offset, physical_offset, sys_flag,
            born_timestamp_ms: born, born_host, store_timestamp_ms: stored, store_host,
            reconsume_times: reconsume, prepared_transaction_offset: prepared,
            body: &body, properties: properties.as_bytes(),
        };
        let mut out = Vec::new();
        record.encode(&mut out).unwrap();
        prop_assert_eq!(out.len(), record.encoded_len().unwrap());
        let view = MessageView::parse(&out).unwrap();
        view.verify_body_crc().unwrap();
        prop_assert_eq!(view.topic, topic.as_str());
        prop_assert_eq!(view.queue_offset, queue_offset);
        prop_assert_eq!(view.physical_offset, physical_offset);
        prop_assert_eq!(view.sys_flag, record.effective_sys_flag());
        prop_assert_eq!(view.born_host, born_host);
        prop_assert_eq!(view.store_host, store_host);
        prop_assert_eq!(view.body, &body[..]);
        prop_assert_eq!(view.properties, properties.as_str());
        // every strict prefix is refused, never misread
        for cut in 0..out.len() {
            prop_assert!(MessageView::parse(&out[..cut]).is_err());
        }
    }

    #[test]
    fn arbitrary_stored_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = MessageView::parse(&bytes);
        let _ = karman_protocol::message::MessageExt::decode_all(&Bytes::from(bytes));
    }

    #[test]
    fn batch_round_trips(entries in prop::collection::vec(
        (any::<i32>(), prop::collection::vec(any::<u8>(), 0..64), "[a-zA-Z0-9\u{1}\u{2}]{0,40}"), 0..8)
    ) {
        let mut out = Vec::new();
        for (flag, body, props) in &entries {
            encode_batch_entry(&mut out, *flag, body, props.as_bytes()).unwrap();
        }
        let decoded = decode_batch(&Bytes::from(out)).unwrap();
        prop_assert_eq!(decoded.len(), entries.len());
        for (got, (flag, body, props)) in decoded.iter().zip(&entries) {
            prop_assert_eq!(got.flag, *flag);
            prop_assert_eq!(&got.body[..], &body[..]);
            prop_assert_eq!(&got.properties[..], props.as_bytes());
        }
    }

    #[test]
    fn arbitrary_batch_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_batch(&Bytes::from(bytes));
    }

    #[test]
    fn properties_round_trip(pairs in prop::collection::vec(("[a-zA-Z_]{1,10}", "[^\u{1}\u{2}]{1,20}"), 0..10)) {
        let props: Properties = pairs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(Properties::decode(&props.encode()), props);
    }

    #[test]
    fn fastjson_normalize_never_panics(text in "[{}\\[\\]\":,0-9a-z -]{0,60}") {
        let _ = karman_protocol::body::fastjson::normalize(text.as_bytes());
    }
}
