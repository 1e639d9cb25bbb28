//! Bad requests karman-client can be made to send get the response code a Java client
//! expects and a remark saying what was wrong, karman-client surfaces both in its error,
//! and the broker keeps serving the same client. (Frames no well-behaved client sends,
//! such as missing required headers, are covered with raw frames in tests/interop
//! `malformed` and in the broker's own tests.)

use std::time::Duration;

use karman_client::consumer::{ConsumeConcurrentlyStatus, concurrently};
use karman_client::producer::ProducerConfig;
use karman_client::{ClientError, Message, Producer, SendStatus};
use karman_protocol::ResponseCode;
use karman_protocol::message::id::offset_msg_id;

use crate::harness::{Cluster, unique};

/// The code and remark of a broker's error answer, however the client wrapped it.
fn broker_answer(error: &ClientError) -> (ResponseCode, String) {
    let code = error
        .response_code()
        .unwrap_or_else(|| panic!("not a broker answer: {error}"));
    (code, error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_broker_does_not_have_gets_topic_not_exist() {
    let cluster = Cluster::start_with("noauto", |c| c.auto_create_topic_enable = false).await;
    // The route cache is refreshed rarely here, so the client still routes a deleted topic
    // to the broker, as a client does between two NameServer polls.
    let producer = Producer::builder()
        .client_config(karman_client::ClientConfig {
            poll_name_server_interval: Duration::from_secs(60),
            ..cluster.client_config("noauto")
        })
        .group(unique("noauto_pg"))
        .build()
        .await
        .expect("producer starts");

    // With auto-create off the NameServer has no TBW102 route: the client refuses an
    // unknown topic itself, naming it.
    let unknown = unique("UnknownTopic");
    let error = producer
        .send(Message::new(&unknown, "nowhere"))
        .await
        .expect_err("no route for an unknown topic");
    assert!(
        matches!(
            error,
            ClientError::NoRoute { .. } | ClientError::SendFailed { .. }
        ) && error.to_string().contains(&unknown),
        "{error}"
    );

    // A topic the broker dropped after the client cached its route: the broker answers
    // TOPIC_NOT_EXIST and the client reports code and remark.
    let doomed = unique("DoomedTopic");
    cluster.create_topic(&doomed, 1).await;
    let sent = producer
        .send(Message::new(&doomed, "before"))
        .await
        .expect("send before deletion");
    assert_eq!(sent.status, SendStatus::SendOk);
    cluster
        .admin()
        .delete_topic("E2eCluster", &doomed)
        .await
        .expect("delete topic");
    let error = producer
        .send(Message::new(&doomed, "after"))
        .await
        .expect_err("the broker no longer has the topic");
    let (code, text) = broker_answer(&error);
    assert_eq!(code, ResponseCode::TopicNotExist, "{text}");
    assert!(
        text.contains(&doomed) && text.contains("not exist"),
        "{text}"
    );

    // The same client keeps working.
    let kept = unique("KeptTopic");
    cluster.create_topic(&kept, 1).await;
    producer
        .send(Message::new(&kept, "still serving"))
        .await
        .expect("a send after the refused ones");
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_size_gets_message_illegal() {
    const MAX: u64 = 64 * 1024;
    let cluster = Cluster::start_with("maxsize", |c| c.store.max_message_size_bytes = MAX).await;
    let topic = unique("SizeTopic");
    cluster.create_topic(&topic, 2).await;
    let max = usize::try_from(MAX).unwrap();

    // The client's own limit refuses a body over it without asking the broker.
    let strict = Producer::builder()
        .client_config(cluster.client_config("strict"))
        .producer_config(ProducerConfig {
            group: unique("strict_pg"),
            max_message_bytes: max,
            ..ProducerConfig::default()
        })
        .build()
        .await
        .expect("producer");
    let error = strict
        .send(Message::new(&topic, vec![b'x'; max + 1]))
        .await
        .expect_err("over the client's limit");
    assert!(error.response_code().is_none(), "refused locally: {error}");
    strict.shutdown().await;

    // Raise the client's limit and switch compression off so the body reaches the broker
    // as is; the broker refuses it with MESSAGE_ILLEGAL, saying size and limit.
    let lax = Producer::builder()
        .client_config(cluster.client_config("lax"))
        .producer_config(ProducerConfig {
            group: unique("lax_pg"),
            max_message_bytes: 16 << 20,
            compress_body_over_bytes: usize::MAX,
            retry_times_when_send_failed: 0,
            send_timeout: Duration::from_secs(10),
            ..ProducerConfig::default()
        })
        .build()
        .await
        .expect("producer");
    let fits = lax
        .send(Message::new(&topic, vec![b'x'; max]))
        .await
        .expect("a body of maxMessageSize fits");
    assert_eq!(fits.status, SendStatus::SendOk);
    let error = lax
        .send(Message::new(&topic, vec![b'x'; max + 1]))
        .await
        .expect_err("over maxMessageSize");
    let (code, text) = broker_answer(&error);
    assert_eq!(code, ResponseCode::MessageIllegal, "{text}");
    assert!(
        text.contains(&(MAX + 1).to_string()) && text.contains(&MAX.to_string()),
        "the remark gives the size and the limit: {text}"
    );
    lax.send(Message::new(&topic, "small"))
        .await
        .expect("the broker keeps serving the client");
    lax.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_sql_expression_gets_subscription_parse_failed() {
    let cluster = Cluster::start_with("badsql", |c| c.enable_property_filter = true).await;
    let topic = unique("SqlTopic");
    cluster.create_topic(&topic, 2).await;
    let bad = "a > AND b = 'x'";
    // The consumer checks an SQL92 subscription with the broker when it starts
    // (CHECK_CLIENT_CONFIG); the broker's parse error fails the start.
    let started = cluster
        .push_consumer(&unique("badsql_cg"), "badsql")
        .subscribe_sql92(&topic, bad)
        .listener_concurrently(concurrently(|_| async {
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await;
    let error = started.expect_err("a consumer with an invalid SQL92 subscription does not start");
    let (code, text) = broker_answer(&error);
    assert_eq!(code, ResponseCode::SubscriptionParseFailed, "{text}");
    assert!(
        text.contains("SQL92") && text.contains("character 4") && text.contains("AND"),
        "the remark says the expression does not parse, where and why: {text}"
    );

    // A valid expression still starts on the same broker.
    let consumer = cluster
        .push_consumer(&unique("goodsql_cg"), "goodsql")
        .subscribe_sql92(&topic, "a > 5")
        .listener_concurrently(concurrently(|_| async {
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await
        .expect("a valid SQL92 subscription starts");
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_without_property_filtering_is_refused_at_start() {
    let cluster = Cluster::start("nosql").await;
    let topic = unique("SqlTopic");
    cluster.create_topic(&topic, 2).await;
    let error = cluster
        .push_consumer(&unique("nosql_cg"), "nosql")
        .subscribe_sql92(&topic, "a > 5")
        .listener_concurrently(concurrently(|_| async {
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await
        .expect_err("the broker does not filter by SQL92");
    let (code, text) = broker_answer(&error);
    assert_eq!(code, ResponseCode::SystemError, "{text}");
    assert!(text.contains("enablePropertyFilter"), "{text}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewing_an_offset_that_starts_no_message_gets_system_error() {
    let cluster = Cluster::start("badview").await;
    let topic = unique("ViewTopic");
    cluster.create_topic(&topic, 1).await;
    let producer = cluster.producer(&unique("view_pg")).await;
    let sent = producer
        .send(Message::new(&topic, "first"))
        .await
        .expect("send");
    let store_host = cluster.broker().local_addr();
    for offset in [7_i64, 1 << 40] {
        let id = offset_msg_id(store_host, offset);
        let error = cluster
            .admin()
            .view_message(&id)
            .await
            .expect_err("no message starts there");
        let (code, text) = broker_answer(&error);
        assert_eq!(code, ResponseCode::SystemError, "{text}");
        assert!(
            text.contains(&offset.to_string()),
            "the remark names the offset: {text}"
        );
    }
    let viewed = cluster
        .admin()
        .view_message(&sent.offset_msg_id)
        .await
        .expect("the broker keeps serving");
    assert_eq!(viewed.body.as_ref(), b"first");
    producer.shutdown().await;
    cluster.shutdown().await;
}
