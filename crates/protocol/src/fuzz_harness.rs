//! Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and the corpus
//! replay test, so stable `cargo test` exercises exactly what the fuzzer does. Each
//! function must never panic and never allocate past the limits, whatever the input.

use bytes::{Bytes, BytesMut};

use crate::body::{HeartbeatData, RegisterBrokerBody, TopicRouteData, fastjson};
use crate::command::RemotingCommand;
use crate::frame::{FrameDecoder, SerializeType};
use crate::header::{PullMessageRequestHeader, SendMessageRequestHeader};
use crate::message::batch::decode_batch;
use crate::message::{MessageExt, MessageView, Properties};

/// Frame limit used while fuzzing: small enough that oversized declarations are common.
pub const FUZZ_FRAME_BYTES_MAX: usize = 64 * 1024;

/// Feeds `data` to a frame decoder in chunks whose sizes come from the first byte, then
/// decodes each command, its typed headers and its body the way a server would.
pub fn frame(data: &[u8]) {
    let Some((&chunk_seed, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk_seed % 61) + 1;
    let decoder = FrameDecoder::new(FUZZ_FRAME_BYTES_MAX);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Ok(command) = RemotingCommand::decode(frame) {
                        command_parts(&command);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buf.capacity() <= 2 * FUZZ_FRAME_BYTES_MAX + 4096,
            "decoder buffer grew past the limit"
        );
    }
}

fn command_parts(command: &RemotingCommand) {
    let _ = SendMessageRequestHeader::decode_from(command);
    let _ = command.decode_header::<PullMessageRequestHeader>();
    let body = command.body.to_bytes();
    let _ = fastjson::from_slice::<HeartbeatData>(&body, "fuzz");
    // Re-encoding what decoded must work in both serializations.
    for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
        let mut out = BytesMut::new();
        let _ = command.encode(serialize_type, &mut out);
    }
}

/// Parses a JSON command header directly.
pub fn header_json(data: &[u8]) {
    let frame = crate::frame::Frame {
        serialize_type: SerializeType::Json,
        header: Bytes::copy_from_slice(data),
        body: Bytes::new(),
    };
    if let Ok(command) = RemotingCommand::decode(frame) {
        command_parts(&command);
    }
}

/// Parses a ROCKETMQ binary command header directly.
pub fn header_binary(data: &[u8]) {
    let frame = crate::frame::Frame {
        serialize_type: SerializeType::RocketMq,
        header: Bytes::copy_from_slice(data),
        body: Bytes::new(),
    };
    if let Ok(command) = RemotingCommand::decode(frame) {
        command_parts(&command);
    }
}

/// Stored records back to back (pull bodies), and the record at the start.
pub fn message(data: &[u8]) {
    if let Ok(view) = MessageView::parse(data) {
        let _ = view.verify_body_crc();
        assert!(view.record_len() <= data.len());
    }
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(messages) = MessageExt::decode_all(&bytes) {
        for message in messages {
            let _ = message.to_bytes();
        }
    }
}

/// SEND_BATCH_MESSAGE bodies.
pub fn batch(data: &[u8]) {
    if let Ok(entries) = decode_batch(&Bytes::copy_from_slice(data)) {
        for entry in entries {
            let _ = Properties::decode_bytes(&entry.properties);
        }
    }
}

/// Properties strings.
pub fn properties(data: &[u8]) {
    let props = Properties::decode_bytes(data);
    assert_eq!(Properties::decode(&props.encode()), props);
}

/// JSON bodies in either dialect.
pub fn body_json(data: &[u8]) {
    let _ = fastjson::from_slice::<TopicRouteData>(data, "fuzz");
    let _ = fastjson::from_slice::<HeartbeatData>(data, "fuzz");
    let _ = RegisterBrokerBody::decode(data, false, crate::code::version::V5_3_3);
    let _ = RegisterBrokerBody::decode(data, true, crate::code::version::V5_3_3);
}
