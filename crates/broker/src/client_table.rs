//! Producers and consumers known through HEART_BEAT, by group and connection (spec
//! remoting.md §3.4, §7.2). A client leaves when it unregisters, when its connection
//! closes, or when it has been silent for `channelExpiredTimeout`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use karman_protocol::LanguageCode;
use karman_protocol::body::{
    ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, SubscriptionData,
};
use karman_remoting::Channel;
use parking_lot::RwLock;
use tokio::time::Instant;
use tracing::info;

/// One client connection registered in a group.
#[derive(Debug, Clone)]
pub struct ClientChannel {
    pub channel: Channel,
    pub client_id: String,
    pub language: LanguageCode,
    pub version: i32,
    pub last_update: Instant,
    pub last_update_timestamp_ms: i64,
}

/// A consumer group as this broker sees it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupInfo {
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    pub subscriptions: BTreeMap<String, SubscriptionData>,
    pub channels: HashMap<u64, ClientChannel>,
}

/// What a consumer heartbeat changed, to decide whether to tell the group to rebalance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerChange {
    pub membership: bool,
    pub subscriptions: bool,
}

#[derive(Debug, Default)]
pub struct ClientTable {
    producers: RwLock<HashMap<String, HashMap<u64, ClientChannel>>>,
    consumers: RwLock<HashMap<String, ConsumerGroupInfo>>,
}

impl ClientTable {
    pub fn register_producer(&self, group: &str, client: ClientChannel) {
        self.producers
            .write()
            .entry(group.to_owned())
            .or_default()
            .insert(client.channel.id(), client);
    }

    pub fn unregister_producer(&self, group: &str, channel_id: u64) {
        let mut producers = self.producers.write();
        if let Some(channels) = producers.get_mut(group) {
            channels.remove(&channel_id);
            if channels.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// Registers or refreshes a consumer and replaces the group's subscriptions with the
    /// ones it reported.
    pub fn register_consumer(&self, data: &ConsumerData, client: ClientChannel) -> ConsumerChange {
        let mut consumers = self.consumers.write();
        let info = consumers
            .entry(data.group_name.clone())
            .or_insert_with(|| ConsumerGroupInfo {
                consume_type: data.consume_type,
                message_model: data.message_model,
                consume_from_where: data.consume_from_where,
                subscriptions: BTreeMap::new(),
                channels: HashMap::new(),
            });
        info.consume_type = data.consume_type;
        info.message_model = data.message_model;
        info.consume_from_where = data.consume_from_where;
        let id = client.channel.id();
        let membership = match info.channels.insert(id, client.clone()) {
            None => {
                info!(group = %data.group_name, client = %client.client_id, "consumer joined");
                true
            }
            Some(previous) => previous.client_id != client.client_id,
        };
        let subscriptions =
            update_subscriptions(&mut info.subscriptions, &data.subscription_data_set);
        ConsumerChange {
            membership,
            subscriptions,
        }
    }

    /// Removes one connection from a consumer group; true when it was a member.
    pub fn unregister_consumer(&self, group: &str, channel_id: u64) -> bool {
        let mut consumers = self.consumers.write();
        let Some(info) = consumers.get_mut(group) else {
            return false;
        };
        let removed = info.channels.remove(&channel_id).is_some();
        if info.channels.is_empty() {
            consumers.remove(group);
        }
        removed
    }

    /// A connection closed: drops it everywhere; returns the consumer groups it left.
    pub fn channel_closed(&self, channel_id: u64) -> Vec<String> {
        self.producers.write().retain(|_, channels| {
            channels.remove(&channel_id);
            !channels.is_empty()
        });
        let mut left = Vec::new();
        self.consumers.write().retain(|group, info| {
            if info.channels.remove(&channel_id).is_some() {
                info!(group = %group, channel = channel_id, "consumer left (connection closed)");
                left.push(group.clone());
            }
            !info.channels.is_empty()
        });
        left
    }

    /// Channels silent for longer than `timeout`, to be closed (their close event then
    /// removes them).
    pub fn expired_channels(&self, now: Instant, timeout: Duration) -> Vec<Channel> {
        let expired =
            |client: &ClientChannel| now.saturating_duration_since(client.last_update) > timeout;
        let mut channels: Vec<Channel> = Vec::new();
        for clients in self.producers.read().values() {
            channels.extend(
                clients
                    .values()
                    .filter(|c| expired(c))
                    .map(|c| c.channel.clone()),
            );
        }
        for info in self.consumers.read().values() {
            channels.extend(
                info.channels
                    .values()
                    .filter(|c| expired(c))
                    .map(|c| c.channel.clone()),
            );
        }
        channels.sort_by_key(Channel::id);
        channels.dedup_by_key(|c| c.id());
        channels
    }

    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroupInfo> {
        self.consumers.read().get(group).cloned()
    }

    /// Client ids of a group, sorted.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .consumers
            .read()
            .get(group)
            .map(|info| {
                info.channels
                    .values()
                    .map(|c| c.client_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn consumer_channels(&self, group: &str) -> Vec<Channel> {
        self.consumers
            .read()
            .get(group)
            .map(|info| info.channels.values().map(|c| c.channel.clone()).collect())
            .unwrap_or_default()
    }

    /// The consumer channel of one client id.
    pub fn consumer_channel(&self, group: &str, client_id: &str) -> Option<Channel> {
        self.consumers
            .read()
            .get(group)?
            .channels
            .values()
            .find(|c| c.client_id == client_id)
            .map(|c| c.channel.clone())
    }

    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.consumers
            .read()
            .get(group)?
            .subscriptions
            .get(topic)
            .cloned()
    }

    /// Online groups subscribed to a topic.
    pub fn groups_subscribing(&self, topic: &str) -> Vec<String> {
        self.consumers
            .read()
            .iter()
            .filter(|(_, info)| info.subscriptions.contains_key(topic))
            .map(|(group, _)| group.clone())
            .collect()
    }

    pub fn consumer_group_names(&self) -> Vec<String> {
        self.consumers.read().keys().cloned().collect()
    }

    /// A live connection of a producer group (transaction check-back goes to one).
    pub fn producer_channel(&self, group: &str) -> Option<Channel> {
        self.producers
            .read()
            .get(group)?
            .values()
            .filter(|c| !c.channel.is_closed())
            .max_by_key(|c| c.last_update)
            .map(|c| c.channel.clone())
    }

    pub fn producer_clients(&self, group: &str) -> Vec<ClientChannel> {
        self.producers
            .read()
            .get(group)
            .map(|clients| clients.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn all_producers(&self) -> BTreeMap<String, Vec<ClientChannel>> {
        self.producers
            .read()
            .iter()
            .map(|(group, clients)| (group.clone(), clients.values().cloned().collect()))
            .collect()
    }
}

/// Applies a heartbeat's subscription set: new topics and newer versions replace what is
/// there, topics no longer reported are dropped. True when anything changed.
fn update_subscriptions(
    current: &mut BTreeMap<String, SubscriptionData>,
    reported: &[SubscriptionData],
) -> bool {
    let mut changed = false;
    for sub in reported {
        match current.get(&sub.topic) {
            Some(existing)
                if existing.sub_version >= sub.sub_version
                    && existing.sub_string == sub.sub_string => {}
            _ => {
                current.insert(sub.topic.clone(), sub.clone());
                changed = true;
            }
        }
    }
    let before = current.len();
    current.retain(|topic, _| reported.iter().any(|s| &s.topic == topic));
    changed || current.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_follow_the_latest_heartbeat() {
        let mut current = BTreeMap::new();
        let a = SubscriptionData::from_tag_expression("A", "*", 1);
        let b = SubscriptionData::from_tag_expression("B", "x", 1);
        assert!(update_subscriptions(&mut current, &[a.clone(), b.clone()]));
        assert!(!update_subscriptions(&mut current, &[a.clone(), b.clone()]));
        let newer = SubscriptionData::from_tag_expression("B", "y", 2);
        assert!(update_subscriptions(&mut current, &[a.clone(), newer]));
        assert_eq!(current["B"].sub_string, "y");
        assert!(update_subscriptions(&mut current, &[a]));
        assert!(!current.contains_key("B"));
    }
}
