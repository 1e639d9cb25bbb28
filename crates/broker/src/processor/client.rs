//! Client registration and membership: HEART_BEAT (34), UNREGISTER_CLIENT (35),
//! GET_CONSUMER_LIST_BY_GROUP (38), CHECK_CLIENT_CONFIG (46), and the
//! NOTIFY_CONSUMER_IDS_CHANGED (40) the broker sends when a group changes (spec remoting.md
//! §3.4, §3.5).

use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::body::{
    CheckClientRequestBody, GetConsumerListByGroupResponseBody, HeartbeatData, MessageModel,
    fastjson,
};
use karman_protocol::header::{
    GetConsumerListByGroupRequestHeader, HeartbeatResponseHeader,
    NotifyConsumerIdsChangedRequestHeader, UnregisterClientRequestHeader,
};
use karman_protocol::message::sysflag::perm;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ChannelEventListener, ProcessResult, RequestProcessor};
use karman_store::Clock;
use tracing::{debug, warn};

use super::{fail, json_body, ok};
use crate::SharedConfig;
use crate::client_table::{ClientChannel, ClientTable};
use crate::filter::SubscriptionFilter;
use crate::group_table::GroupTable;
use crate::topic_table::{TopicTable, name};

pub const CODES: &[RequestCode] = &[
    RequestCode::HeartBeat,
    RequestCode::UnregisterClient,
    RequestCode::GetConsumerListByGroup,
    RequestCode::CheckClientConfig,
];

/// Tells every member of a group to rebalance now, when both the broker and the group
/// allow it.
#[derive(Debug)]
pub struct GroupNotifier {
    pub config: SharedConfig,
    pub groups: Arc<GroupTable>,
    pub clients: Arc<ClientTable>,
}

impl GroupNotifier {
    pub fn consumer_ids_changed(&self, group: &str) {
        if !self.config.read().notify_consumer_ids_changed_enable
            || !self
                .groups
                .get(group)
                .is_none_or(|g| g.notify_consumer_ids_changed_enable)
        {
            return;
        }
        let channels = self.clients.consumer_channels(group);
        let header = NotifyConsumerIdsChangedRequestHeader {
            consumer_group: group.to_owned(),
        };
        let Ok(command) =
            RemotingCommand::request_with_header(RequestCode::NotifyConsumerIdsChanged, &header)
        else {
            return;
        };
        debug!(
            group,
            members = channels.len(),
            "notifying consumers to rebalance"
        );
        for channel in channels {
            let command = command.clone();
            tokio::spawn(async move {
                if let Err(error) = channel.invoke_oneway(command).await {
                    debug!(%error, "rebalance notification not delivered");
                }
            });
        }
    }
}

#[derive(Debug)]
pub struct ClientProcessor {
    pub config: SharedConfig,
    pub clock: Arc<dyn Clock>,
    pub topics: Arc<TopicTable>,
    pub groups: Arc<GroupTable>,
    pub clients: Arc<ClientTable>,
    pub notifier: Arc<GroupNotifier>,
}

#[async_trait]
impl RequestProcessor for ClientProcessor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        match request.request_code() {
            RequestCode::HeartBeat => self.heartbeat(channel, &request),
            RequestCode::UnregisterClient => self.unregister(channel, &request),
            RequestCode::GetConsumerListByGroup => self.consumer_list(&request),
            RequestCode::CheckClientConfig => self.check_client_config(&request),
            _ => Ok(Some(karman_remoting::processor::not_supported(&request))),
        }
    }
}

impl ClientProcessor {
    fn heartbeat(&self, channel: &Channel, request: &RemotingCommand) -> ProcessResult {
        let data: HeartbeatData = fastjson::from_slice(&request.body.to_bytes(), "HeartbeatData")?;
        let client = ClientChannel {
            channel: channel.clone(),
            client_id: data.client_id.clone(),
            language: request.language,
            version: request.version,
            last_update: tokio::time::Instant::now(),
            last_update_timestamp_ms: self.clock.now_ms(),
        };
        for consumer in &data.consumer_data_set {
            let Some(group) = self.groups.find_or_create(&consumer.group_name) else {
                warn!(group = %consumer.group_name, client = %data.client_id, "heartbeat for an unknown group ignored (autoCreateSubscriptionGroup=false)");
                continue;
            };
            if consumer.message_model == MessageModel::Clustering {
                let retry = name::retry_topic(&consumer.group_name);
                let mut retry_config = self.topics.find_or_create_system(
                    &retry,
                    group.retry_queue_nums.max(1),
                    perm::READ_WRITE,
                );
                let order = consumer
                    .subscription_data_set
                    .iter()
                    .any(|s| self.topics.get(&s.topic).is_some_and(|t| t.order));
                if order && !retry_config.order {
                    retry_config.order = true;
                    self.topics.upsert(retry_config);
                }
            }
            let change = self.clients.register_consumer(consumer, client.clone());
            if change.membership || change.subscriptions {
                self.notifier.consumer_ids_changed(&consumer.group_name);
            }
        }
        for producer in &data.producer_data_set {
            self.clients
                .register_producer(&producer.group_name, client.clone());
        }
        // Karman does not implement heartbeat v2 fingerprints: clients keep sending full
        // subscriptions (spec §3.4).
        let header = HeartbeatResponseHeader {
            is_support_heart_beat_v2: Some(false),
            is_sub_change: Some(true),
        };
        Ok(Some(ok(request).with_header(&header)?))
    }

    fn unregister(&self, channel: &Channel, request: &RemotingCommand) -> ProcessResult {
        let header: UnregisterClientRequestHeader = request.decode_header()?;
        if let Some(group) = header.producer_group.as_deref() {
            self.clients.unregister_producer(group, channel.id());
        }
        if let Some(group) = header.consumer_group.as_deref()
            && self.clients.unregister_consumer(group, channel.id())
        {
            debug!(group, client = %header.client_id, "consumer unregistered");
            self.notifier.consumer_ids_changed(group);
        }
        Ok(Some(ok(request)))
    }

    fn consumer_list(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetConsumerListByGroupRequestHeader = request.decode_header()?;
        let ids = self.clients.consumer_ids(&header.consumer_group);
        if ids.is_empty() {
            return Err(fail(
                ResponseCode::SystemError,
                format!("no consumer for this group, {}", header.consumer_group),
            ));
        }
        Ok(Some(json_body(
            request,
            &GetConsumerListByGroupResponseBody {
                consumer_id_list: ids,
            },
        )))
    }

    fn check_client_config(&self, request: &RemotingCommand) -> ProcessResult {
        let body: CheckClientRequestBody =
            fastjson::from_slice(&request.body.to_bytes(), "CheckClientRequestBody")?;
        let subscription = &body.subscription_data;
        if subscription.is_tag_type() {
            return Ok(Some(ok(request)));
        }
        if !self.config.read().enable_property_filter {
            return Err(fail(
                ResponseCode::SystemError,
                "The broker does not support consumer to filter message by SQL92; set enablePropertyFilter=true in broker.conf",
            ));
        }
        match SubscriptionFilter::new(subscription) {
            Ok(_) => Ok(Some(ok(request))),
            Err(error) => Err(fail(
                ResponseCode::SubscriptionParseFailed,
                format!(
                    "the SQL92 subscription of group {} does not parse: {error}",
                    body.group
                ),
            )),
        }
    }
}

/// Forgets the clients of a closed connection and tells the groups they left.
#[derive(Debug)]
pub struct ClientChannelListener {
    pub clients: Arc<ClientTable>,
    pub notifier: Arc<GroupNotifier>,
}

impl ChannelEventListener for ClientChannelListener {
    fn on_close(&self, channel: &Channel) {
        for group in self.clients.channel_closed(channel.id()) {
            self.notifier.consumer_ids_changed(&group);
        }
    }
}
