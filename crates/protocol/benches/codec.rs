//! Codec hot paths: building a command from a typed header, command header encode/decode in
//! both serializations, the typed send header, and stored-message decode.
//!
//! `cargo bench -p karman-protocol --bench codec`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use karman_protocol::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use karman_protocol::message::{MessageExt, MessageView, StoredRecord};
use karman_protocol::{FrameDecoder, RemotingCommand, RequestCode, ResponseCode, SerializeType};

fn send_request_header() -> SendMessageRequestHeaderV2 {
    SendMessageRequestHeaderV2 {
        producer_group: "benchmark_producer".into(),
        topic: "BenchmarkTest".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 3,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some("UNIQ_KEY\u{1}7F0000010E6C1B6D35860000000A0001\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}".into()),
        reconsume_times: Some(0),
        unit_mode: false,
        max_reconsume_times: None,
        batch: false,
        broker_name: Some("broker-a".into()),
    }
}

fn send_request() -> RemotingCommand {
    let mut command =
        RemotingCommand::request_with_header(RequestCode::SendMessageV2, &send_request_header())
            .unwrap();
    command.opaque = 42;
    command.with_body(Bytes::from(vec![b'x'; 128]))
}

fn send_response_header() -> SendMessageResponseHeader {
    SendMessageResponseHeader {
        msg_id: "7F00000100002A9F0000000000001234".into(),
        queue_id: 3,
        queue_offset: 123_456,
        transaction_id: Some("7F0000010E6C1B6D35860000000A0001".into()),
        msg_region: Some("DefaultRegion".into()),
        trace_on: Some("true".into()),
        ..SendMessageResponseHeader::default()
    }
}

fn send_response() -> RemotingCommand {
    RemotingCommand::response(ResponseCode::Success)
        .with_header(&send_response_header())
        .unwrap()
}

fn encoded(command: &RemotingCommand, serialize_type: SerializeType) -> BytesMut {
    let mut wire = BytesMut::new();
    command.encode(serialize_type, &mut wire).unwrap();
    wire
}

fn headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    // What the client pays per send and the broker per answer before any encoding.
    let request_header = send_request_header();
    group.bench_function("build_send_request", |b| {
        b.iter(|| {
            black_box(
                RemotingCommand::request_with_header(RequestCode::SendMessageV2, &request_header)
                    .unwrap(),
            )
        })
    });
    let response_header = send_response_header();
    group.bench_function("build_send_response", |b| {
        b.iter(|| {
            black_box(
                RemotingCommand::response(ResponseCode::Success)
                    .with_header(&response_header)
                    .unwrap(),
            )
        })
    });
    for (name, serialize_type) in [
        ("json", SerializeType::Json),
        ("rocketmq", SerializeType::RocketMq),
    ] {
        let request = send_request();
        group.bench_function(format!("encode_send_request_{name}"), |b| {
            b.iter(|| black_box(request.encode_header(serialize_type).unwrap()))
        });
        let response = send_response();
        group.bench_function(format!("encode_send_response_{name}"), |b| {
            b.iter(|| black_box(response.encode_header(serialize_type).unwrap()))
        });
        let wire = encoded(&request, serialize_type).freeze();
        let decoder = FrameDecoder::default();
        group.bench_function(format!("decode_send_request_{name}"), |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                let frame = decoder.decode(&mut buf).unwrap().unwrap();
                black_box(RemotingCommand::decode(frame).unwrap())
            })
        });
        let decoded = {
            let mut buf = BytesMut::from(&wire[..]);
            RemotingCommand::decode(decoder.decode(&mut buf).unwrap().unwrap()).unwrap()
        };
        group.bench_function(format!("typed_send_header_{name}"), |b| {
            b.iter(|| black_box(SendMessageRequestHeader::decode_from(&decoded).unwrap()))
        });
    }
    group.finish();
}

fn messages(c: &mut Criterion) {
    let body = vec![b'm'; 1024];
    let properties = b"UNIQ_KEY\x017F0000010E6C1B6D35860000000A0001\x02WAIT\x01true\x02TAGS\x01TagA\x02KEYS\x01order-1\x02";
    let record = StoredRecord {
        topic: "BenchmarkTest",
        queue_id: 3,
        flag: 0,
        queue_offset: 1000,
        physical_offset: 1 << 30,
        sys_flag: 0,
        born_timestamp_ms: 1_700_000_000_000,
        born_host: "10.0.0.5:54321".parse().unwrap(),
        store_timestamp_ms: 1_700_000_000_005,
        store_host: "10.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: &body,
        properties,
    };
    let mut raw = Vec::new();
    record.encode(&mut raw).unwrap();
    let raw = Bytes::from(raw);
    let mut group = c.benchmark_group("message_1k");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("encode_stored", |b| {
        let mut out = Vec::with_capacity(raw.len());
        b.iter(|| {
            out.clear();
            record.encode(&mut out).unwrap();
            black_box(&out);
        })
    });
    group.bench_function("parse_view", |b| {
        b.iter(|| black_box(MessageView::parse(&raw).unwrap()))
    });
    group.bench_function("parse_view_and_check_crc", |b| {
        b.iter(|| {
            let view = MessageView::parse(&raw).unwrap();
            view.verify_body_crc().unwrap();
            black_box(view)
        })
    });
    group.bench_function("decode_message_ext", |b| {
        b.iter(|| black_box(MessageExt::decode(&raw).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, headers, messages);
criterion_main!(benches);
