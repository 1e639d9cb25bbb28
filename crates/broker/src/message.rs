//! A message on its way into the store (RocketMQ's `MessageExtBrokerInner`): what the
//! send path, retries, delay and timer deliveries and transactions build and rewrite.

use std::net::SocketAddr;

use bytes::Bytes;
use karman_protocol::message::{MessageView, Properties, property};
use karman_store::AppendMessage;

#[derive(Debug, Clone)]
pub struct InnerMessage {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    pub properties: Properties,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

impl InnerMessage {
    /// Rebuilds a stored record for re-putting (retry, delay and timer delivery, commit).
    pub fn from_stored(view: &MessageView<'_>, backing: &Bytes) -> Self {
        Self {
            topic: view.topic.to_owned(),
            queue_id: view.queue_id,
            flag: view.flag,
            body: backing.slice_ref(view.body),
            properties: Properties::decode(view.properties),
            sys_flag: view.sys_flag,
            born_timestamp_ms: view.born_timestamp_ms,
            born_host: view.born_host,
            reconsume_times: view.reconsume_times,
            prepared_transaction_offset: view.prepared_transaction_offset,
        }
    }

    /// Whether the producer waits for durability (the WAIT property, default true).
    pub fn wait_store_msg_ok(&self) -> bool {
        self.properties.get(property::WAIT_STORE_MSG_OK) != Some("false")
    }

    pub fn delay_level(&self) -> i32 {
        self.properties
            .get(property::DELAY_TIME_LEVEL)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn uniq_key(&self) -> Option<&str> {
        self.properties.uniq_key()
    }

    /// Moves the message to a system topic, remembering where it really belongs.
    pub fn park(&mut self, system_topic: &str, system_queue_id: i32) {
        self.properties
            .insert(property::REAL_TOPIC, self.topic.clone());
        self.properties
            .insert(property::REAL_QUEUE_ID, self.queue_id.to_string());
        self.topic = system_topic.to_owned();
        self.queue_id = system_queue_id;
    }

    /// Undoes [`InnerMessage::park`]; false when the real destination is missing.
    pub fn unpark(&mut self) -> bool {
        let topic = self.properties.remove(property::REAL_TOPIC);
        let queue_id = self
            .properties
            .remove(property::REAL_QUEUE_ID)
            .and_then(|q| q.parse().ok());
        match (topic, queue_id) {
            (Some(topic), Some(queue_id)) => {
                self.topic = topic;
                self.queue_id = queue_id;
                true
            }
            _ => false,
        }
    }

    pub fn into_append(self, store_host: SocketAddr) -> AppendMessage {
        let wait_store_msg_ok = self.wait_store_msg_ok();
        AppendMessage {
            topic: self.topic,
            queue_id: self.queue_id,
            flag: self.flag,
            body: self.body,
            properties: Bytes::from(self.properties.encode()),
            sys_flag: self.sys_flag,
            born_timestamp_ms: self.born_timestamp_ms,
            born_host: self.born_host,
            store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            wait_store_msg_ok,
        }
    }
}
