//! What listeners received, and bounded waits on it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rocketmq_model::common::message::message_ext::MessageExt;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One delivery of one message to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Which consumer got it (tests with several consumers label them).
    pub consumer: String,
    pub body: String,
    /// The client message id (`UNIQ_KEY`), what Java's `MessageExt.getMsgId()` returns to
    /// a listener. `rocketmq-client-rust` 1.0.0 hands listeners a plain `MessageExt`
    /// whose `msg_id()` is the offset message id, so this is read from the property.
    pub msg_id: String,
    /// The offset message id (store host + commit-log offset) the client decoded.
    pub offset_msg_id: String,
    /// The topic as the client reports it (the original topic for retried messages).
    pub topic: String,
    pub tags: Option<String>,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub reconsume_times: i32,
    pub properties: Vec<(String, String)>,
    /// When the listener saw it, on the test's clock.
    pub at: Instant,
}

impl Received {
    pub fn from_ext(consumer: &str, msg: &MessageExt) -> Self {
        let mut properties: Vec<(String, String)> = msg
            .properties()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        properties.sort();
        Self {
            consumer: consumer.to_owned(),
            body: msg
                .body()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            msg_id: msg
                .properties()
                .get("UNIQ_KEY")
                .map_or_else(|| msg.msg_id().to_string(), |id| id.to_string()),
            offset_msg_id: msg.msg_id().to_string(),
            topic: msg.topic().to_string(),
            tags: msg.get_tags().map(|t| t.to_string()),
            queue_id: msg.queue_id(),
            queue_offset: msg.queue_offset(),
            reconsume_times: msg.reconsume_times(),
            properties,
            at: Instant::now(),
        }
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A shared log of deliveries that tests wait on.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    inner: Arc<(Mutex<Vec<Received>>, Notify)>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, received: Received) {
        self.inner.0.lock().push(received);
        self.inner.1.notify_waiters();
    }

    pub fn record(&self, consumer: &str, msg: &MessageExt) {
        self.push(Received::from_ext(consumer, msg));
    }

    pub fn all(&self) -> Vec<Received> {
        self.inner.0.lock().clone()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.all().into_iter().map(|r| r.body).collect()
    }

    /// Waits until `done` holds over everything received, or `within` passes; returns
    /// whether it held.
    pub async fn wait_until(
        &self,
        within: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.inner.0.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.inner.0.lock());
            }
        }
    }

    /// Waits until at least `n` deliveries arrived.
    pub async fn wait_count(&self, n: usize, within: Duration) -> bool {
        self.wait_until(within, |all| all.len() >= n).await
    }
}
