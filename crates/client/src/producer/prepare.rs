//! Turning user messages into what goes on the wire: validation, the client message id
//! (`UNIQ_KEY`), body compression, the batch body and its splitting at the size limit
//! (spec semantics.md §4, remoting.md §5.5, §5.7).

use bytes::{Bytes, BytesMut};
use karman_protocol::message::batch::{BATCH_ENTRY_FIXED_BYTES, encode_batch_entry};
use karman_protocol::message::compress::zlib_compress;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::message::{Message, property};

use crate::config::check_topic;
use crate::error::{ClientError, Result};
use crate::route::is_retry_topic;

/// A message ready to send: body possibly compressed, properties encoded.
#[derive(Debug, Clone)]
pub(crate) struct PreparedMessage {
    pub topic: String,
    pub body: Bytes,
    pub sys_flag: i32,
    pub flag: i32,
    pub properties: String,
    /// `SendResult.msg_id`: the UNIQ_KEY, comma-joined over a batch.
    pub msg_id: String,
    pub batch: bool,
    pub reconsume_times: i32,
    pub max_reconsume_times: Option<i32>,
}

/// Compression settings of a producer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compression {
    pub over_bytes: usize,
    pub level: u32,
}

/// Checks what Java's `Validators.checkMessage` checks.
pub(crate) fn check_message(message: &Message, max_bytes: usize) -> Result<()> {
    check_topic(&message.topic)?;
    let invalid = |reason: String| ClientError::InvalidMessage {
        topic: message.topic.clone(),
        reason,
    };
    if message.body.is_empty() {
        return Err(invalid("the body is empty".into()));
    }
    if message.body.len() > max_bytes {
        return Err(invalid(format!(
            "the body is {} bytes, over the {max_bytes}-byte limit",
            message.body.len()
        )));
    }
    Ok(())
}

/// Prepares one message: sets UNIQ_KEY if absent, compresses bodies at or over the
/// threshold (zlib, sysFlag `0x301`), marks half messages, and moves the retry-topic
/// bookkeeping properties into header fields.
pub(crate) fn prepare_single(
    mut message: Message,
    uniq_id: impl FnOnce() -> String,
    compression: Compression,
) -> PreparedMessage {
    let msg_id = match message.properties.uniq_key() {
        Some(id) => id.to_owned(),
        None => {
            let id = uniq_id();
            message
                .properties
                .insert(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, id.clone());
            id
        }
    };
    let mut sys_flag = 0;
    let mut body = message.body.clone();
    if body.len() >= compression.over_bytes {
        body = Bytes::from(zlib_compress(&body, compression.level));
        sys_flag |= sysflag::COMPRESSED | sysflag::COMPRESSION_ZLIB;
    }
    if message.properties.get(property::TRANSACTION_PREPARED) == Some("true") {
        sys_flag |= sysflag::TRANSACTION_PREPARED_TYPE;
    }
    let (mut reconsume_times, mut max_reconsume_times) = (0, None);
    if is_retry_topic(&message.topic) {
        if let Some(times) = message.properties.remove(property::RECONSUME_TIME) {
            reconsume_times = times.parse().unwrap_or(0);
        }
        if let Some(max) = message.properties.remove(property::MAX_RECONSUME_TIMES) {
            max_reconsume_times = max.parse().ok();
        }
    }
    PreparedMessage {
        topic: message.topic,
        body,
        sys_flag,
        flag: message.flag,
        properties: message.properties.encode(),
        msg_id,
        batch: false,
        reconsume_times,
        max_reconsume_times,
    }
}

/// Checks the batch rules: one topic, one `WAIT` setting, no delay level, no retry topic.
pub(crate) fn check_batch(messages: &[Message], max_bytes: usize) -> Result<()> {
    let Some(first) = messages.first() else {
        return Err(ClientError::InvalidMessage {
            topic: String::new(),
            reason: "the batch is empty".into(),
        });
    };
    let invalid = |reason: &str| ClientError::InvalidMessage {
        topic: first.topic.clone(),
        reason: reason.to_owned(),
    };
    for message in messages {
        check_message(message, max_bytes)?;
        if message.topic != first.topic {
            return Err(invalid("every message of a batch must have the same topic"));
        }
        if message.wait_store_msg_ok() != first.wait_store_msg_ok() {
            return Err(invalid(
                "every message of a batch must have the same WAIT setting",
            ));
        }
        if message.delay_level() > 0 {
            return Err(invalid("a batch may not carry delay levels"));
        }
    }
    if is_retry_topic(&first.topic) {
        return Err(invalid("a batch may not go to a retry topic"));
    }
    Ok(())
}

/// The encoded size of one message as a batch entry.
pub(crate) fn batch_entry_bytes(message: &Message) -> usize {
    BATCH_ENTRY_FIXED_BYTES + message.body.len() + message.properties.encoded_len()
}

/// Gives every message its UNIQ_KEY, then splits the list into runs whose encoded size
/// stays within `limit_bytes`. A message bigger than the limit on its own travels alone.
pub(crate) fn split_batch(
    mut messages: Vec<Message>,
    limit_bytes: usize,
    mut uniq_id: impl FnMut() -> String,
) -> Vec<Vec<Message>> {
    for message in &mut messages {
        if message.properties.uniq_key().is_none() {
            message
                .properties
                .insert(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, uniq_id());
        }
    }
    let mut chunks = Vec::new();
    let mut current: Vec<Message> = Vec::new();
    let mut current_bytes = 0usize;
    for message in messages {
        let bytes = batch_entry_bytes(&message);
        if !current.is_empty() && current_bytes + bytes > limit_bytes {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += bytes;
        current.push(message);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Encodes one run of messages (each with its UNIQ_KEY) as a SEND_BATCH_MESSAGE request.
/// The batch has its own UNIQ_KEY in the header properties; batches are never compressed.
pub(crate) fn prepare_batch(
    messages: &[Message],
    batch_uniq_id: String,
) -> Result<PreparedMessage> {
    let topic = messages
        .first()
        .map(|m| m.topic.clone())
        .unwrap_or_default();
    let mut body = BytesMut::with_capacity(messages.iter().map(batch_entry_bytes).sum());
    // One scratch string for every entry's properties and the id list built in place:
    // a batch of small messages otherwise spends much of its client CPU in the allocator.
    let mut properties = String::new();
    let mut msg_id = String::new();
    for (index, message) in messages.iter().enumerate() {
        properties.clear();
        message.properties.encode_into(&mut properties);
        encode_batch_entry(
            &mut body,
            message.flag,
            &message.body,
            properties.as_bytes(),
        )
        .map_err(|source| ClientError::Encode {
            what: "batch entry",
            source,
        })?;
        if index > 0 {
            msg_id.push(',');
        }
        msg_id.push_str(message.properties.uniq_key().unwrap_or_default());
    }
    let mut header_properties = karman_protocol::message::Properties::new();
    let wait = messages.first().is_none_or(Message::wait_store_msg_ok);
    header_properties.insert(property::WAIT_STORE_MSG_OK, wait.to_string());
    header_properties.insert(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, batch_uniq_id);
    Ok(PreparedMessage {
        topic,
        body: body.freeze(),
        sys_flag: 0,
        flag: 0,
        properties: header_properties.encode(),
        msg_id,
        batch: true,
        reconsume_times: 0,
        max_reconsume_times: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use karman_protocol::message::batch::decode_batch;
    use karman_protocol::message::compress::decompress;

    const COMPRESSION: Compression = Compression {
        over_bytes: 4096,
        level: 5,
    };

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("ID{n}")
        }
    }

    #[test]
    fn bodies_from_4096_bytes_are_zlib_compressed_with_type_bits() {
        let small = prepare_single(
            Message::new("T", vec![b'a'; 4095]),
            || "X".into(),
            COMPRESSION,
        );
        assert_eq!(small.sys_flag, 0);
        assert_eq!(small.body.len(), 4095);
        let big = prepare_single(
            Message::new("T", vec![b'a'; 4096]),
            || "X".into(),
            COMPRESSION,
        );
        assert_eq!(big.sys_flag, 0x301);
        assert!(big.body.len() < 100);
        assert_eq!(
            decompress(&big.body, big.sys_flag, 1 << 20).unwrap(),
            vec![b'a'; 4096]
        );
    }

    #[test]
    fn uniq_key_is_set_once_and_becomes_the_msg_id() {
        let prepared = prepare_single(Message::new("T", "x"), || "AB12".into(), COMPRESSION);
        assert_eq!(prepared.msg_id, "AB12");
        assert!(prepared.properties.contains("UNIQ_KEY\u{1}AB12\u{2}"));
        let kept = prepare_single(
            Message::new("T", "x").with_property("UNIQ_KEY", "MINE"),
            || "NEW".into(),
            COMPRESSION,
        );
        assert_eq!(kept.msg_id, "MINE");
    }

    #[test]
    fn half_messages_get_the_prepared_flag() {
        let prepared = prepare_single(
            Message::new("T", "x").with_property("TRAN_MSG", "true"),
            || "X".into(),
            COMPRESSION,
        );
        assert_eq!(prepared.sys_flag & 0xC, 0x4);
    }

    #[test]
    fn retry_topic_properties_move_to_header_fields() {
        let prepared = prepare_single(
            Message::new("%RETRY%g", "x")
                .with_property("RECONSUME_TIME", "3")
                .with_property("MAX_RECONSUME_TIMES", "16"),
            || "X".into(),
            COMPRESSION,
        );
        assert_eq!(prepared.reconsume_times, 3);
        assert_eq!(prepared.max_reconsume_times, Some(16));
        assert!(!prepared.properties.contains("RECONSUME_TIME"));
    }

    #[test]
    fn batches_split_at_the_byte_limit_and_keep_order() {
        let messages: Vec<_> = (0..10)
            .map(|i| Message::new("T", vec![i as u8; 100]))
            .collect();
        let one = batch_entry_bytes(&{
            let mut m = messages[0].clone();
            m.properties.insert("UNIQ_KEY", "ID10");
            m
        });
        let chunks = split_batch(messages, one * 3, counter());
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let flat: Vec<u8> = chunks.iter().flatten().map(|m| m.body[0]).collect();
        assert_eq!(flat, (0..10).collect::<Vec<u8>>());
        for chunk in &chunks {
            assert!(chunk.iter().map(batch_entry_bytes).sum::<usize>() <= one * 3);
        }
    }

    #[test]
    fn an_oversized_message_travels_alone() {
        let messages = vec![
            Message::new("T", "a"),
            Message::new("T", vec![0u8; 1000]),
            Message::new("T", "b"),
        ];
        let chunks = split_batch(messages, 200, counter());
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn batch_body_decodes_and_is_never_compressed() {
        let chunks = split_batch(
            vec![Message::new("T", vec![b'z'; 8000]), Message::new("T", "b")],
            1 << 22,
            counter(),
        );
        let prepared = prepare_batch(&chunks[0], "BATCH".into()).unwrap();
        assert_eq!(prepared.sys_flag, 0);
        assert!(prepared.batch);
        assert_eq!(prepared.msg_id, "ID1,ID2");
        assert!(prepared.properties.contains("UNIQ_KEY\u{1}BATCH\u{2}"));
        let entries = decode_batch(&prepared.body).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].body.len(), 8000);
    }

    #[test]
    fn batch_rules_are_enforced() {
        let ok = vec![Message::new("T", "a"), Message::new("T", "b")];
        assert!(check_batch(&ok, 1 << 22).is_ok());
        assert!(check_batch(&[], 1 << 22).is_err());
        assert!(check_batch(&[Message::new("T", "a"), Message::new("U", "b")], 1 << 22).is_err());
        assert!(check_batch(&[Message::new("T", "a").with_delay_level(2)], 1 << 22).is_err());
        assert!(check_batch(&[Message::new("%RETRY%g", "a")], 1 << 22).is_err());
        assert!(check_message(&Message::new("T", ""), 10).is_err());
        assert!(check_message(&Message::new("T", "12345678901"), 10).is_err());
    }
}
