//! The requests a broker sends to a client over the client's own connection (spec
//! remoting.md §3.12): transaction check-backs, "the consumer ids of your group changed",
//! offset resets, running-info and consume-directly queries.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use karman_protocol::body::{ResetOffsetBody, fastjson};
use karman_protocol::header::{
    CheckTransactionStateRequestHeader, ConsumeMessageDirectlyResultRequestHeader,
    GetConsumerRunningInfoRequestHeader, NotifyConsumerIdsChangedRequestHeader,
    ResetOffsetRequestHeader,
};
use karman_protocol::message::{MessageExt, property};
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, Dispatcher, ProcessError, ProcessResult, RequestProcessor};
use tracing::{debug, info, warn};

use crate::instance::ClientInstance;

const CODES: &[RequestCode] = &[
    RequestCode::CheckTransactionState,
    RequestCode::NotifyConsumerIdsChanged,
    RequestCode::ResetConsumerClientOffset,
    RequestCode::GetConsumerRunningInfo,
    RequestCode::ConsumeMessageDirectly,
];

pub(crate) fn register(dispatcher: &mut Dispatcher, instance: Weak<ClientInstance>) {
    dispatcher.register(CODES, Arc::new(ClientProcessor { instance }));
}

struct ClientProcessor {
    instance: Weak<ClientInstance>,
}

#[async_trait]
impl RequestProcessor for ClientProcessor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let Some(instance) = self.instance.upgrade() else {
            return Err(ProcessError::new(
                ResponseCode::SystemError,
                "the client is shutting down",
            ));
        };
        match request.request_code() {
            RequestCode::CheckTransactionState => {
                check_transaction_state(&instance, channel, &request)
            }
            RequestCode::NotifyConsumerIdsChanged => {
                let header: NotifyConsumerIdsChangedRequestHeader = request.decode_header()?;
                info!(group = %header.consumer_group, broker = %channel.remote_addr(), "consumer ids changed; rebalancing");
                instance.rebalance_immediately();
                Ok(None)
            }
            RequestCode::ResetConsumerClientOffset => reset_offset(&instance, &request).await,
            RequestCode::GetConsumerRunningInfo => running_info(&instance, &request),
            RequestCode::ConsumeMessageDirectly => consume_directly(&instance, &request).await,
            other => Err(ProcessError::new(
                ResponseCode::RequestCodeNotSupported,
                format!("request type {other} not supported"),
            )),
        }
    }
}

fn check_transaction_state(
    instance: &ClientInstance,
    channel: &Channel,
    request: &RemotingCommand,
) -> ProcessResult {
    let header: CheckTransactionStateRequestHeader = request.decode_header()?;
    let message = match MessageExt::decode(&request.body.to_bytes()) {
        Ok(message) => message,
        Err(error) => {
            warn!(%error, "CHECK_TRANSACTION_STATE body is not a message; ignored");
            return Ok(None);
        }
    };
    let group = message
        .properties
        .get(property::PRODUCER_GROUP)
        .unwrap_or_default()
        .to_owned();
    match instance.producer(&group) {
        Some(producer) => producer.check_transaction(channel.clone(), header, message),
        None => debug!(
            group,
            "transaction check for a producer group this client does not have"
        ),
    }
    Ok(None)
}

async fn reset_offset(instance: &ClientInstance, request: &RemotingCommand) -> ProcessResult {
    let header: ResetOffsetRequestHeader = request.decode_header()?;
    let body: ResetOffsetBody = fastjson::from_slice(&request.body.to_bytes(), "ResetOffsetBody")?;
    let offsets: BTreeMap<_, _> = body
        .offset_table
        .into_iter()
        .map(|(k, v)| (k.0, v))
        .collect();
    if let Some(consumer) = instance.consumer(&header.group) {
        info!(group = %header.group, topic = %header.topic, queues = offsets.len(), "broker reset the group's offsets");
        consumer.reset_offsets(&header.topic, offsets).await;
    }
    Ok(None)
}

fn running_info(instance: &ClientInstance, request: &RemotingCommand) -> ProcessResult {
    let header: GetConsumerRunningInfoRequestHeader = request.decode_header()?;
    let Some(consumer) = instance.consumer(&header.consumer_group) else {
        return Err(ProcessError::system_error(format!(
            "The Consumer Group <{}> not exist in this consumer",
            header.consumer_group
        )));
    };
    let info = consumer.running_info();
    Ok(Some(
        RemotingCommand::response_to(request, ResponseCode::Success)
            .with_body(fastjson::to_vec(&info)),
    ))
}

async fn consume_directly(instance: &ClientInstance, request: &RemotingCommand) -> ProcessResult {
    let header: ConsumeMessageDirectlyResultRequestHeader = request.decode_header()?;
    let Some(consumer) = instance.consumer(&header.consumer_group) else {
        return Err(ProcessError::system_error(format!(
            "The Consumer Group <{}> not exist in this consumer",
            header.consumer_group
        )));
    };
    let message = MessageExt::decode(&request.body.to_bytes())?;
    let result = consumer.consume_directly(message, header.broker_name).await;
    Ok(Some(
        RemotingCommand::response_to(request, ResponseCode::Success)
            .with_body(fastjson::to_vec(&result)),
    ))
}
