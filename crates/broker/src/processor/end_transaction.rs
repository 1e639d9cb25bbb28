//! END_TRANSACTION (37): the producer's commit or rollback of a half message (spec
//! remoting.md §3.7). Java producers send it oneway; the answer matters only to callers
//! that wait for it.

use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::header::EndTransactionRequestHeader;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ProcessResult, RequestProcessor};
use tracing::{debug, warn};

use super::{fail, ok};
use crate::SharedConfig;
use crate::transaction::{Decision, EndError, TransactionService};

pub const CODES: &[RequestCode] = &[RequestCode::EndTransaction];

#[derive(Debug)]
pub struct EndTransactionProcessor {
    pub config: SharedConfig,
    pub transactions: Arc<TransactionService>,
}

#[async_trait]
impl RequestProcessor for EndTransactionProcessor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let header: EndTransactionRequestHeader = request.decode_header()?;
        if !self.config.read().is_master() {
            return Err(fail(
                ResponseCode::SlaveNotAvailable,
                "Can not process transaction on slave broker",
            ));
        }
        let decision = match header.commit_or_rollback {
            sysflag::TRANSACTION_COMMIT_TYPE => Decision::Commit,
            sysflag::TRANSACTION_ROLLBACK_TYPE => Decision::Rollback,
            // Unknown: the check-back will ask again later; RocketMQ answers nothing.
            _ => {
                debug!(msg_id = %header.msg_id, from = %channel.remote_addr(), "transaction state unknown; left for check-back");
                return Ok(None);
            }
        };
        let from_check = header.from_transaction_check.unwrap_or(false);
        match self
            .transactions
            .end(
                decision,
                &header.producer_group,
                header.tran_state_table_offset,
                header.commit_log_offset,
                from_check,
            )
            .await
        {
            Ok(_) => Ok(Some(ok(&request))),
            Err(error @ EndError::ImmunityPassed { .. }) => {
                Err(fail(ResponseCode::IllegalOperation, error.to_string()))
            }
            Err(error) => {
                warn!(%error, msg_id = %header.msg_id, group = %header.producer_group, "END_TRANSACTION refused");
                Err(fail(ResponseCode::SystemError, error.to_string()))
            }
        }
    }
}
