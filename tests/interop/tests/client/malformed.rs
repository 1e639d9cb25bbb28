//! Malformed requests get the response code a Java client expects and a remark saying what
//! was wrong, never a panic, and the broker keeps serving (on the same connection).
//!
//! The third-party client produces the situations it can (a message over the broker's
//! `maxMessageSize`, a send to a topic the broker no longer has, an invalid SQL92
//! subscription); raw remoting frames cover what a well-behaved client never sends
//! (missing required headers, a send to an unknown topic with auto-create off).

use std::time::{SystemTime, UNIX_EPOCH};

use karman_interop_tests::{Cluster, ClusterOptions, error_chain, unique};
use karman_protocol::header::{
    PullMessageRequestHeader, SendMessageRequestHeaderV2, TopicRequestHeader,
};
use karman_protocol::message::sysflag::pull as pull_flag;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::Channel;
use rocketmq_client_rust::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer, MQClientException,
    MQPushConsumer, MessageSelector,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;

use super::{client_config, message, producer, push_consumer_builder};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("ms fit i64")
}

/// A well-formed SEND_MESSAGE_V2 to `topic`, as a Java 5.x client builds it.
fn send_v2(topic: &str, body: &str) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2 {
        producer_group: "raw_pg".to_owned(),
        topic: topic.to_owned(),
        default_topic: "TBW102".to_owned(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: 0,
        properties: Some("TAGS\u{1}raw\u{2}WAIT\u{1}true\u{2}".to_owned()),
        reconsume_times: Some(0),
        unit_mode: false,
        max_reconsume_times: None,
        batch: false,
        broker_name: None,
    };
    RemotingCommand::request_with_header(RequestCode::SendMessageV2, &header)
        .expect("encode send header")
        .with_body(body.as_bytes().to_vec())
}

async fn invoke(channel: &Channel, request: RemotingCommand) -> RemotingCommand {
    channel
        .invoke(request, TIMEOUT)
        .await
        .expect("the broker answers")
}

/// The broker still serves a well-formed send on the same connection.
async fn assert_still_serving(channel: &Channel, topic: &str) {
    assert!(
        !channel.is_closed(),
        "an application error must not close the connection"
    );
    let response = invoke(channel, send_v2(topic, "still serving")).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "the broker keeps serving after a bad request: {:?}",
        response.remark
    );
    assert!(!channel.is_closed());
}

fn remark(response: &RemotingCommand) -> String {
    response.remark.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_headers_get_system_error_naming_the_field() {
    let cluster = Cluster::start("missing").await;
    let topic = unique("MissingTopic");
    cluster.create_topic(&topic, 2).await;
    let channel = cluster.broker_channel().await;

    // SEND_MESSAGE_V2 without `b` (topic), then without `a` (producer group).
    for (key, name) in [
        ("b", "topic"),
        ("a", "producerGroup"),
        ("g", "bornTimestamp"),
    ] {
        let mut request = send_v2(&topic, "no header");
        request.ext_fields.remove(key);
        let response = invoke(&channel, request).await;
        assert_eq!(
            response.response_code(),
            ResponseCode::SystemError,
            "send without `{key}`: {:?}",
            response.remark
        );
        let remark = remark(&response);
        assert!(
            remark.contains(key) || remark.contains(name),
            "the remark names the missing field `{key}` ({name}): {remark:?}"
        );
        assert_still_serving(&channel, &topic).await;
    }

    // PULL_MESSAGE without consumerGroup.
    let header = PullMessageRequestHeader {
        consumer_group: "g".to_owned(),
        topic: topic.clone(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: pull_flag::SUBSCRIPTION,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some("*".to_owned()),
        sub_version: 0,
        ..PullMessageRequestHeader::default()
    };
    let mut request = RemotingCommand::request_with_header(RequestCode::PullMessage, &header)
        .expect("encode pull header");
    request.ext_fields.remove("consumerGroup");
    let response = invoke(&channel, request).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::SystemError,
        "{:?}",
        response.remark
    );
    assert!(
        remark(&response).contains("consumerGroup"),
        "{:?}",
        response.remark
    );

    // A header with an unparsable number.
    let mut request = send_v2(&topic, "bad number");
    request.ext_fields.insert("e".into(), "zero".into());
    let response = invoke(&channel, request).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::SystemError,
        "{:?}",
        response.remark
    );
    assert!(remark(&response).contains('e'), "{:?}", response.remark);
    assert_still_serving(&channel, &topic).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_with_auto_create_off_gets_topic_not_exist() {
    let cluster = Cluster::start_with(
        "noauto",
        ClusterOptions {
            broker: |c| c.auto_create_topic_enable = false,
            ..ClusterOptions::default()
        },
    )
    .await;
    let topic = unique("KnownTopic");
    cluster.create_topic(&topic, 2).await;
    let channel = cluster.broker_channel().await;

    // Raw: what a client with a stale or forged route sends.
    let unknown = unique("UnknownTopic");
    let response = invoke(&channel, send_v2(&unknown, "nowhere")).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::TopicNotExist,
        "{:?}",
        response.remark
    );
    let text = remark(&response);
    assert!(
        text.contains(&unknown) && text.contains("not exist"),
        "{text:?}"
    );
    assert_still_serving(&channel, &topic).await;

    // The stock client: with auto-create off there is no TBW102 route, so it refuses the
    // unknown topic itself without asking the broker.
    let mut producer = producer(&cluster, &unique("noauto_pg")).await;
    let error = producer
        .send(message(&unknown, "T", "nowhere"))
        .await
        .expect_err("no route for an unknown topic");
    eprintln!(
        "[interop] client refuses the unknown topic: {}",
        error_chain(&error)
    );

    // The stock client against a topic the broker dropped after the client cached its route
    // (an admin deleted it): the broker answers TOPIC_NOT_EXIST and the client surfaces it.
    let doomed = unique("DoomedTopic");
    cluster.create_topic(&doomed, 1).await;
    let sent = producer
        .send(message(&doomed, "T", "before"))
        .await
        .expect("send before deletion")
        .expect("send result");
    assert_eq!(sent.send_status, SendStatus::SendOk);
    let request = RemotingCommand::request_with_header(
        RequestCode::DeleteTopicInBroker,
        &TopicRequestHeader {
            topic: doomed.clone(),
        },
    )
    .expect("encode delete header");
    let deleted = invoke(&channel, request).await;
    assert_eq!(
        deleted.response_code(),
        ResponseCode::Success,
        "{:?}",
        deleted.remark
    );
    let error = producer
        .send(message(&doomed, "T", "after"))
        .await
        .expect_err("the broker no longer has the topic");
    assert_eq!(
        error.broker_response_code(),
        Some(ResponseCode::TopicNotExist.as_i32()),
        "{error:?}"
    );
    producer.shutdown().await;
    assert_still_serving(&channel, &topic).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_message_size_gets_message_illegal() {
    const MAX: u64 = 64 * 1024;
    let cluster = Cluster::start_with(
        "maxsize",
        ClusterOptions {
            broker: |c| c.store.max_message_size_bytes = MAX,
            ..ClusterOptions::default()
        },
    )
    .await;
    let topic = unique("SizeTopic");
    cluster.create_topic(&topic, 2).await;
    // The client's own limit (4 MiB) and compression (bodies over 4 KiB) would hide the
    // broker's check; raise both so the oversized body reaches the broker as is.
    let group = unique("size_pg");
    let mut producer = DefaultMQProducer::builder(karman_interop_tests::client_runtime(&group))
        .client_config(client_config(&cluster, &group))
        .producer_group(group.clone())
        .max_message_size(16 * 1024 * 1024)
        .compress_msg_body_over_howmuch(u32::MAX)
        .retry_times_when_send_failed(0)
        .send_msg_timeout(10_000)
        .build();
    producer.start().await.expect("producer starts");

    let at_limit = vec![b'x'; usize::try_from(MAX).unwrap()];
    let fits = Message::builder()
        .topic(topic.as_str())
        .body(at_limit)
        .build_unchecked();
    let result = producer
        .send(fits)
        .await
        .expect("a body of maxMessageSize fits");
    assert_eq!(result.expect("send result").send_status, SendStatus::SendOk);

    let over = vec![b'x'; usize::try_from(MAX).unwrap() + 1];
    let too_big = Message::builder()
        .topic(topic.as_str())
        .body(over)
        .build_unchecked();
    let error = producer
        .send(too_big)
        .await
        .expect_err("a body over maxMessageSize is refused");
    assert_eq!(
        error.broker_response_code(),
        Some(ResponseCode::MessageIllegal.as_i32()),
        "{error:?}"
    );
    // The client keeps only the code of a failed send (it drops the remark:
    // client_error.rs `broker_operation_failed`); the same send as a raw frame shows it.
    let channel = cluster.broker_channel().await;
    let oversized = "y".repeat(usize::try_from(MAX).unwrap() + 1);
    let response = invoke(&channel, send_v2(&topic, &oversized)).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::MessageIllegal,
        "{:?}",
        response.remark
    );
    let text = remark(&response);
    assert!(
        text.contains(&(MAX + 1).to_string()) && text.contains(&MAX.to_string()),
        "the remark gives the size and the limit: {text:?}"
    );
    assert_still_serving(&channel, &topic).await;

    // And the broker keeps serving the same client.
    let result = producer
        .send(message(&topic, "T", "small"))
        .await
        .expect("a small send after the refused one");
    assert_eq!(result.expect("send result").send_status, SendStatus::SendOk);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sql_expression_gets_subscription_parse_failed() {
    let cluster = Cluster::start_with(
        "badsql",
        ClusterOptions {
            broker: |c| c.enable_property_filter = true,
            ..ClusterOptions::default()
        },
    )
    .await;
    let topic = unique("SqlTopic");
    cluster.create_topic(&topic, 2).await;
    let bad = "a > AND b = 'x'";

    // The stock client checks an SQL92 subscription with the broker when it starts
    // (CHECK_CLIENT_CONFIG); the broker's parse error fails the start.
    let mut consumer = push_consumer_builder(&cluster, &unique("badsql_cg"), "badsql").build();
    consumer
        .subscribe_with_selector(&topic, Some(MessageSelector::by_sql(bad)))
        .await
        .expect("the client accepts the expression locally");
    consumer.register_message_listener_concurrently(
        |_msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    let started = consumer.start().await;
    let error = started.expect_err("a consumer with an invalid SQL92 subscription does not start");
    // The client wraps the broker's answer in an MQClientException carrying code and remark.
    let exception = error
        .source_ref::<MQClientException>()
        .unwrap_or_else(|| panic!("no broker answer in {}", error_chain(&error)));
    assert_eq!(
        exception.response_code(),
        ResponseCode::SubscriptionParseFailed.as_i32(),
        "{}",
        error_chain(&error)
    );
    let text = exception.error_message().unwrap_or_default();
    assert!(
        text.contains("SQL92") && text.contains("character 4") && text.contains("AND"),
        "the remark says the SQL92 expression does not parse, where and why: {text:?}"
    );
    consumer.shutdown().await;

    // Raw: a pull carrying the same expression.
    let channel = cluster.broker_channel().await;
    let header = PullMessageRequestHeader {
        consumer_group: unique("badsql_raw"),
        topic: topic.clone(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: pull_flag::SUBSCRIPTION,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some(bad.to_owned()),
        sub_version: now_ms(),
        expression_type: Some("SQL92".to_owned()),
        ..PullMessageRequestHeader::default()
    };
    let request = RemotingCommand::request_with_header(RequestCode::PullMessage, &header)
        .expect("encode pull header");
    let response = invoke(&channel, request).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::SubscriptionParseFailed,
        "{:?}",
        response.remark
    );
    assert!(
        remark(&response).contains(bad),
        "the remark quotes the expression: {:?}",
        response.remark
    );
    assert_still_serving(&channel, &topic).await;
    cluster.shutdown().await;
}

/// A request with the given code, ext fields and body.
fn raw(code: RequestCode, fields: &[(&str, &str)], body: &[u8]) -> RemotingCommand {
    let mut request = RemotingCommand::request(code);
    for (key, value) in fields {
        request.ext_fields.insert((*key).into(), (*value).into());
    }
    request.with_body(body.to_vec())
}

/// Sends `request` and checks the answer's code and that its remark contains `says`.
async fn expect_answer(
    channel: &Channel,
    what: &str,
    request: RemotingCommand,
    code: ResponseCode,
    says: &str,
) {
    let response = invoke(channel, request).await;
    let text = remark(&response);
    eprintln!("[interop] {what}: code {} remark {text:?}", response.code);
    assert_eq!(response.response_code(), code, "{what}: {text:?}");
    assert!(
        text.contains(says),
        "{what}: the remark should say {says:?}: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_of_every_kind_get_java_codes_and_the_broker_keeps_serving() {
    let cluster = Cluster::start("badreq").await;
    let topic = unique("BadReqTopic");
    cluster.create_topic(&topic, 2).await;
    let channel = cluster.broker_channel().await;
    let first = invoke(&channel, send_v2(&topic, "first")).await;
    assert_eq!(first.response_code(), ResponseCode::Success);

    expect_answer(
        &channel,
        "unknown request code",
        raw(RequestCode::from_i32(9999), &[], b""),
        ResponseCode::RequestCodeNotSupported,
        "9999",
    )
    .await;
    expect_answer(
        &channel,
        "heartbeat with a body that is not JSON",
        raw(RequestCode::HeartBeat, &[], b"{not json"),
        ResponseCode::SystemError,
        "HeartbeatData",
    )
    .await;
    let mut batch = send_v2(&topic, "");
    batch.code = RequestCode::SendBatchMessage.as_i32();
    batch.ext_fields.insert("m".into(), "true".into());
    batch.body = vec![0u8, 0, 0, 200, 1, 2, 3].into();
    expect_answer(
        &channel,
        "truncated batch body",
        batch,
        ResponseCode::MessageIllegal,
        "batch",
    )
    .await;
    let mut wrong_queue = send_v2(&topic, "q");
    wrong_queue.ext_fields.insert("e".into(), "99".into());
    expect_answer(
        &channel,
        "send to a queue the topic does not have",
        wrong_queue,
        ResponseCode::InvalidParameter,
        "queueId[99]",
    )
    .await;
    let pull_fields = [
        ("consumerGroup", "bad_pull_cg"),
        ("topic", topic.as_str()),
        ("queueId", "99"),
        ("queueOffset", "0"),
        ("maxMsgNums", "32"),
        ("sysFlag", "4"),
        ("commitOffset", "0"),
        ("suspendTimeoutMillis", "0"),
        ("subscription", "*"),
        ("subVersion", "0"),
    ];
    expect_answer(
        &channel,
        "pull from a queue the topic does not have",
        raw(RequestCode::PullMessage, &pull_fields, b""),
        ResponseCode::InvalidParameter,
        "queueId[99]",
    )
    .await;
    let unknown_topic_pull: Vec<(&str, &str)> = pull_fields
        .iter()
        .map(|&(k, v)| match k {
            "topic" => (k, "NoSuchTopic"),
            "queueId" => (k, "0"),
            _ => (k, v),
        })
        .collect();
    expect_answer(
        &channel,
        "pull from an unknown topic",
        raw(RequestCode::PullMessage, &unknown_topic_pull, b""),
        ResponseCode::TopicNotExist,
        "NoSuchTopic",
    )
    .await;
    // Offsets that do not start a record: inside the first one, negative, past the end.
    for offset in ["7", "-1", "1099511627776"] {
        expect_answer(
            &channel,
            &format!("send back the message at commit-log offset {offset}"),
            raw(
                RequestCode::ConsumerSendMsgBack,
                &[("offset", offset), ("group", "bad_cg"), ("delayLevel", "0")],
                b"",
            ),
            ResponseCode::SystemError,
            offset,
        )
        .await;
        expect_answer(
            &channel,
            &format!("view the message at commit-log offset {offset}"),
            raw(
                RequestCode::ViewMessageById,
                &[("topic", topic.as_str()), ("offset", offset)],
                b"",
            ),
            ResponseCode::SystemError,
            offset,
        )
        .await;
    }
    expect_answer(
        &channel,
        "query offset without queueId",
        raw(
            RequestCode::QueryConsumerOffset,
            &[("consumerGroup", "bad_cg"), ("topic", topic.as_str())],
            b"",
        ),
        ResponseCode::SystemError,
        "queueId",
    )
    .await;
    // Spec remoting.md §3.3 says 5.x answers a missing queueId/commitOffset with
    // INVALID_PARAMETER, but Apache's UpdateConsumerOffsetRequestHeader marks both fields
    // @CFNotNull, so header decoding fails first and Java answers SYSTEM_ERROR ("the
    // custom field <queueId> is null"); the processor's INVALID_PARAMETER checks are
    // unreachable. Karman matches Java.
    expect_answer(
        &channel,
        "update offset without queueId",
        raw(
            RequestCode::UpdateConsumerOffset,
            &[
                ("consumerGroup", "bad_cg"),
                ("topic", topic.as_str()),
                ("commitOffset", "3"),
            ],
            b"",
        ),
        ResponseCode::SystemError,
        "queueId",
    )
    .await;
    expect_answer(
        &channel,
        "update offset without commitOffset",
        raw(
            RequestCode::UpdateConsumerOffset,
            &[
                ("consumerGroup", "bad_cg"),
                ("topic", topic.as_str()),
                ("queueId", "0"),
            ],
            b"",
        ),
        ResponseCode::SystemError,
        "commitOffset",
    )
    .await;
    expect_answer(
        &channel,
        "query messages without a key",
        raw(
            RequestCode::QueryMessage,
            &[
                ("topic", topic.as_str()),
                ("maxNum", "32"),
                ("beginTimestamp", "0"),
                ("endTimestamp", "9"),
            ],
            b"",
        ),
        ResponseCode::SystemError,
        "key",
    )
    .await;

    // After all that, the first message is still there and new ones are accepted.
    assert_still_serving(&channel, &topic).await;
    let offset = offset_in(&first);
    let viewed = invoke(
        &channel,
        raw(
            RequestCode::ViewMessageById,
            &[("topic", topic.as_str()), ("offset", &offset)],
            b"",
        ),
    )
    .await;
    assert_eq!(
        viewed.response_code(),
        ResponseCode::Success,
        "{:?}",
        viewed.remark
    );
    cluster.shutdown().await;
}

/// The commit-log offset encoded in a send response's offsetMsgId (its last 16 hex digits).
fn offset_in(send_response: &RemotingCommand) -> String {
    let id = send_response
        .ext_fields
        .get("msgId")
        .expect("msgId in the send response");
    let offset = i64::from_str_radix(&id[16..], 16).expect("hex offset");
    offset.to_string()
}
