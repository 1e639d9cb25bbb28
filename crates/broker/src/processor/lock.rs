//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): queue locks of orderly consumers (spec
//! remoting.md §3.8).

use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::body::{LockBatchRequestBody, LockBatchResponseBody, fastjson};
use karman_protocol::{RemotingCommand, RequestCode};
use karman_remoting::{Channel, ProcessResult, RequestProcessor};

use super::{json_body, ok};
use crate::lock_table::LockTable;

pub const CODES: &[RequestCode] = &[RequestCode::LockBatchMq, RequestCode::UnlockBatchMq];

#[derive(Debug)]
pub struct LockProcessor {
    pub locks: Arc<LockTable>,
}

#[async_trait]
impl RequestProcessor for LockProcessor {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let body: LockBatchRequestBody =
            fastjson::from_slice(&request.body.to_bytes(), "LockBatchRequestBody")?;
        let now = tokio::time::Instant::now();
        if request.request_code() == RequestCode::UnlockBatchMq {
            self.locks
                .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
            return Ok(Some(ok(&request)));
        }
        let granted = self
            .locks
            .try_lock(&body.consumer_group, &body.client_id, &body.mq_set, now);
        Ok(Some(json_body(
            &request,
            &LockBatchResponseBody {
                lock_ok_mq_set: granted,
            },
        )))
    }
}
