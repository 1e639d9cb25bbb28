//! A transactional producer process that sends one half message, answers UNKNOW from its
//! local transaction and exits without shutting down, as a producer that crashes before
//! deciding would. `tests/client/transaction.rs` runs it as a child process and lets a new
//! producer of the same group settle the transaction through the broker's check-back.
//!
//! Usage: `karman-interop-orphan-half <namesrv addr> <producer group> <topic> <body>`
//!
//! On success it prints one line, `msgId=<UNIQ_KEY> offsetMsgId=<id> queueOffset=<n>`,
//! and exits with 0 right after the END_TRANSACTION (UNKNOW) went out: no shutdown, no
//! UNREGISTER_CLIENT; the operating system closes its connections.

use std::any::Any;
use std::io::Write;

use karman_interop_tests::{client_runtime, error_chain, unique};
use rocketmq_client_rust::{
    ClientConfig, LocalTransactionState, TransactionListener, TransactionMQProducer,
};
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;

/// Never decides: the process is gone before anyone could ask it again.
struct Undecided;

impl TransactionListener for Undecided {
    fn execute_local_transaction(
        &self,
        _msg: &dyn MessageTrait,
        _arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }

    fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [namesrv, group, topic, body] = args.as_slice() else {
        eprintln!(
            "usage: karman-interop-orphan-half <namesrv addr> <producer group> <topic> <body>"
        );
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let line = runtime.block_on(async {
        let config = ClientConfig::builder()
            .namesrv_addr(namesrv.clone())
            .instance_name(unique("orphan"))
            .build()
            .expect("client config");
        let mut producer = TransactionMQProducer::builder(client_runtime(group))
            .client_config(config)
            .producer_group(group.clone())
            .send_msg_timeout(10_000)
            .transaction_listener(Undecided)
            .build();
        if let Err(error) = producer.start().await {
            eprintln!("producer start failed: {}", error_chain(&error));
            std::process::exit(1);
        }
        let message = Message::builder()
            .topic(topic.as_str())
            .tags("Tx")
            .body_slice(body.as_bytes())
            .build_unchecked();
        let result = match producer
            .send_message_in_transaction::<(), _>(message, None)
            .await
        {
            Ok(result) => result,
            Err(error) => {
                eprintln!("half send failed: {}", error_chain(&error));
                std::process::exit(1);
            }
        };
        let send = result.send_result.expect("a transaction send result");
        format!(
            "msgId={} offsetMsgId={} queueOffset={}",
            send.msg_id.as_deref().unwrap_or_default(),
            send.offset_msg_id.as_deref().unwrap_or_default(),
            send.queue_offset
        )
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
    // Gone without deciding or saying goodbye.
    std::process::exit(0);
}
