//! QUERY_MESSAGE (12) by key or unique key through the index, and VIEW_MESSAGE_BY_ID (33)
//! by commit-log offset (spec remoting.md §3.9).

use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::header::{
    QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader,
};
use karman_protocol::{Body, RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ProcessResult, RequestProcessor};
use karman_store::{CommitLogOffset, MessageStore};

use super::{fail, ok};
use crate::SharedConfig;

pub const CODES: &[RequestCode] = &[RequestCode::QueryMessage, RequestCode::ViewMessageById];

#[derive(Debug)]
pub struct QueryProcessor {
    pub config: SharedConfig,
    pub store: Arc<MessageStore>,
}

#[async_trait]
impl RequestProcessor for QueryProcessor {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        match request.request_code() {
            RequestCode::QueryMessage => self.query(&request),
            RequestCode::ViewMessageById => {
                let header: ViewMessageRequestHeader = request.decode_header()?;
                match self.store.read_message(CommitLogOffset(header.offset)) {
                    Some(record) => Ok(Some(ok(&request).with_body(record))),
                    None => Err(fail(
                        ResponseCode::SystemError,
                        format!("can not find message by the offset, {}", header.offset),
                    )),
                }
            }
            _ => Ok(Some(karman_remoting::processor::not_supported(&request))),
        }
    }
}

impl QueryProcessor {
    fn query(&self, request: &RemotingCommand) -> ProcessResult {
        let header: QueryMessageRequestHeader = request.decode_header()?;
        let max_num = if header.unique_key_query == Some(true) {
            self.config.read().default_query_max_num
        } else {
            header.max_num
        };
        let result = self.store.query_message(
            &header.topic,
            &header.key,
            usize::try_from(max_num.max(1)).unwrap_or(1),
            header.begin_timestamp,
            header.end_timestamp,
        );
        if result.messages.is_empty() {
            return Err(fail(
                ResponseCode::QueryNotFound,
                "can not find message, maybe time range not correct",
            ));
        }
        let response = ok(request).with_header(&QueryMessageResponseHeader {
            index_last_update_timestamp: result.index_last_update_timestamp_ms,
            index_last_update_phyoffset: result.index_last_update_phy_offset,
        })?;
        Ok(Some(response.with_body(Body::from(result.messages))))
    }
}
