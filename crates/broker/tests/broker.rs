//! The broker end to end over TCP, with the commands a Java client sends.

mod support;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use karman_protocol::body::{HeartbeatData, TopicRouteData, fastjson};
use karman_protocol::header::{
    ConsumerSendMsgBackRequestHeader, CreateTopicRequestHeader, GetMaxOffsetRequestHeader,
    GetRouteInfoRequestHeader, OffsetResponseHeader, PullMessageResponseHeader,
    QueryConsumerOffsetRequestHeader, QueryMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader, UpdateConsumerOffsetRequestHeader, ViewMessageRequestHeader,
};
use karman_protocol::message::batch::encode_batch_entry;
use karman_protocol::message::id::parse_offset_msg_id;
use karman_protocol::message::{MessageExt, property};
use karman_protocol::{FrameDecoder, RemotingCommand, RequestCode, ResponseCode, SerializeType};
use support::{Cluster, messages, now_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn props(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect()
}

#[tokio::test]
async fn send_then_pull_returns_the_stored_message() {
    let cluster = Cluster::start().await;
    let response = cluster
        .send(
            "Orders",
            1,
            "hello",
            &props(&[("TAGS", "TagA"), ("KEYS", "order-1")]),
        )
        .await;
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "{:?}",
        response.remark
    );
    let header: SendMessageResponseHeader = response.decode_header().unwrap();
    assert_eq!(header.queue_id, 1);
    assert_eq!(header.queue_offset, 0);
    assert_eq!(header.msg_region.as_deref(), Some("DefaultRegion"));
    let (host, _) = parse_offset_msg_id(&header.msg_id).unwrap();
    assert_eq!(host.to_string(), cluster.broker_addr());

    let pulled = cluster.pull("g", "Orders", 1, 0, 0).await;
    assert_eq!(pulled.response_code(), ResponseCode::Success);
    let pull_header: PullMessageResponseHeader = pulled.decode_header().unwrap();
    assert_eq!(
        (pull_header.next_begin_offset, pull_header.max_offset),
        (1, 1)
    );
    let got = messages(&pulled);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"hello");
    assert_eq!(got[0].tags(), Some("TagA"));
    assert_eq!(
        got[0].properties.get(property::CLUSTER),
        Some("DefaultCluster")
    );
    assert_eq!(got[0].offset_msg_id(), header.msg_id);
    assert_eq!(
        got[0].properties.uniq_key(),
        header.transaction_id.as_deref()
    );

    // nothing further: 19 with the next offset
    let empty = cluster.pull("g", "Orders", 1, 1, 0).await;
    assert_eq!(empty.response_code(), ResponseCode::PullNotFound);
    // past the end: 21 with the corrected offset
    let moved = cluster.pull("g", "Orders", 1, 5, 0).await;
    assert_eq!(moved.response_code(), ResponseCode::PullOffsetMoved);
    let moved_header: PullMessageResponseHeader = moved.decode_header().unwrap();
    assert_eq!(moved_header.next_begin_offset, 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn auto_created_topic_is_routed_by_the_namesrv() {
    let cluster = Cluster::start().await;
    assert_eq!(
        cluster.send("Fresh", 0, "x", "").await.response_code(),
        ResponseCode::Success
    );
    let request = RemotingCommand::request_with_header(
        RequestCode::GetRouteinfoByTopic,
        &GetRouteInfoRequestHeader {
            topic: "Fresh".into(),
            accept_standard_json_only: None,
        },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = cluster
            .client
            .invoke(&cluster.namesrv_addr(), request.clone(), support::TIMEOUT)
            .await
            .unwrap();
        if response.response_code() == ResponseCode::Success {
            let route: TopicRouteData =
                fastjson::from_slice(&response.body.to_bytes(), "route").unwrap();
            assert_eq!(
                route.queue_datas[0].write_queue_nums, 4,
                "min(client 4, TBW102 8)"
            );
            assert_eq!(
                route.broker_datas[0].broker_addrs[&0],
                cluster.broker_addr()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "auto-created topic never reached the NameServer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn held_pull_answers_as_soon_as_a_message_arrives() {
    let cluster = Cluster::start().await;
    cluster.send("Hold", 0, "first", "").await;
    let started = Instant::now();
    let pull = {
        let request = Cluster::pull_request("g", "Hold", 0, 1, 15_000);
        let client = karman_remoting::RemotingClient::new(Default::default(), Default::default());
        let addr = cluster.broker_addr();
        tokio::spawn(async move {
            client
                .invoke(&addr, request, support::TIMEOUT)
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.send("Hold", 0, "second", "").await;
    let response = pull.await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.response_code(), ResponseCode::Success);
    assert_eq!(&messages(&response)[0].body[..], b"second");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn held_pull_times_out_with_pull_not_found() {
    let cluster = Cluster::start().await;
    cluster.send("Quiet", 0, "only", "").await;
    let started = Instant::now();
    let response = cluster.pull("g", "Quiet", 0, 1, 500).await;
    assert_eq!(response.response_code(), ResponseCode::PullNotFound);
    assert!(started.elapsed() >= Duration::from_millis(500));
    cluster.shutdown().await;
}

#[tokio::test]
async fn batch_send_stores_each_message_with_its_own_id() {
    let cluster = Cluster::start().await;
    let mut body = Vec::new();
    for i in 0..3 {
        let entry_props = props(&[
            ("UNIQ_KEY", &format!("BATCH{i}")),
            ("KEYS", &format!("k{i}")),
        ]);
        encode_batch_entry(
            &mut body,
            0,
            format!("m{i}").as_bytes(),
            entry_props.as_bytes(),
        )
        .unwrap();
    }
    let header = SendMessageRequestHeaderV2 {
        producer_group: "p".into(),
        topic: "Batch".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 2,
        born_timestamp: now_ms(),
        properties: Some(props(&[("WAIT", "true")])),
        batch: true,
        ..SendMessageRequestHeaderV2::default()
    };
    let request = RemotingCommand::request_with_header(RequestCode::SendBatchMessage, &header)
        .unwrap()
        .with_body(Bytes::from(body));
    let response = cluster.call(request).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "{:?}",
        response.remark
    );
    let header: SendMessageResponseHeader = response.decode_header().unwrap();
    let ids: Vec<&str> = header.msg_id.split(',').collect();
    assert_eq!(ids.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let (_, offset) = parse_offset_msg_id(id).unwrap();
        let view = cluster
            .call(
                RemotingCommand::request_with_header(
                    RequestCode::ViewMessageById,
                    &ViewMessageRequestHeader {
                        topic: None,
                        offset,
                    },
                )
                .unwrap(),
            )
            .await;
        let message = MessageExt::decode(&view.body.to_bytes()).unwrap();
        assert_eq!(message.body, Bytes::from(format!("m{i}")));
        assert_eq!(message.queue_offset, i as i64);
        assert_eq!(
            message.properties.uniq_key(),
            Some(format!("BATCH{i}").as_str())
        );
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn unknown_topic_with_auto_create_off_gets_topic_not_exist() {
    let cluster = Cluster::start_with(|c| c.auto_create_topic_enable = false).await;
    let response = cluster.send("Nope", 0, "x", "").await;
    assert_eq!(response.response_code(), ResponseCode::TopicNotExist);
    let remark = response.remark.unwrap();
    assert!(
        remark.contains("topic[Nope] not exist") && remark.contains("autoCreateTopicEnable=false"),
        "{remark}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn oversized_body_gets_message_illegal() {
    let cluster = Cluster::start_with(|c| c.store.max_message_size_bytes = 1024).await;
    let response = cluster.send("Big", 0, &"x".repeat(2048), "").await;
    assert_eq!(response.response_code(), ResponseCode::MessageIllegal);
    assert!(response.remark.unwrap().contains("MESSAGE_ILLEGAL"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn missing_required_header_names_the_key() {
    let cluster = Cluster::start().await;
    let mut request = RemotingCommand::request(RequestCode::SendMessageV2);
    request.ext_fields.insert("a".into(), "p".into());
    let response = cluster.call(request).await;
    assert_eq!(response.response_code(), ResponseCode::SystemError);
    assert_eq!(response.remark.as_deref(), Some("ext field `b` is missing"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn delayed_message_appears_in_its_topic_when_due() {
    let cluster = Cluster::start_with(|c| c.store.message_delay_level = "1s 2s".into()).await;
    let sent_at = Instant::now();
    let response = cluster
        .send("Later", 0, "delayed", &props(&[("DELAY", "1")]))
        .await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    let header: SendMessageResponseHeader = response.decode_header().unwrap();
    assert_eq!(
        header.queue_id, 0,
        "the real queue id, not the schedule queue"
    );
    let first = cluster.pull("g", "Later", 0, 0, 0).await;
    assert_ne!(
        first.response_code(),
        ResponseCode::Success,
        "not visible before its delay"
    );
    let response = cluster.pull("g", "Later", 0, 0, 5_000).await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    let elapsed = sent_at.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
    let message = &messages(&response)[0];
    assert_eq!(&message.body[..], b"delayed");
    assert!(message.properties.get(property::DELAY_TIME_LEVEL).is_none());
    assert_eq!(
        message.properties.uniq_key(),
        header.transaction_id.as_deref()
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn timer_message_is_delivered_no_earlier_than_asked() {
    let cluster = Cluster::start().await;
    let due = now_ms() + 1_500;
    let response = cluster
        .send(
            "Timed",
            0,
            "at-time",
            &props(&[(property::START_DELIVER_TIME, &due.to_string())]),
        )
        .await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    let pulled = cluster.pull("g", "Timed", 0, 0, 5_000).await;
    assert_eq!(pulled.response_code(), ResponseCode::Success);
    let delivered_at = now_ms();
    assert!(
        delivered_at >= due,
        "delivered {} ms early",
        due - delivered_at
    );
    assert!(
        delivered_at < due + 1_500,
        "delivered {} ms late",
        delivered_at - due
    );
    assert_eq!(&messages(&pulled)[0].body[..], b"at-time");
    cluster.shutdown().await;
}

#[tokio::test]
async fn committed_offsets_survive_a_broker_restart() {
    let mut cluster = Cluster::start().await;
    cluster.send("Offsets", 0, "m", "").await;
    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: "g".into(),
        topic: "Offsets".into(),
        queue_id: 0,
        commit_offset: 1,
        bname: None,
    };
    let response = cluster
        .call(
            RemotingCommand::request_with_header(RequestCode::UpdateConsumerOffset, &update)
                .unwrap(),
        )
        .await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    cluster.restart_broker(|_| {}).await;
    let query = QueryConsumerOffsetRequestHeader {
        consumer_group: "g".into(),
        topic: "Offsets".into(),
        queue_id: 0,
        ..QueryConsumerOffsetRequestHeader::default()
    };
    let response = cluster
        .call(
            RemotingCommand::request_with_header(RequestCode::QueryConsumerOffset, &query).unwrap(),
        )
        .await;
    let offset: OffsetResponseHeader = response.decode_header().unwrap();
    assert_eq!(offset.offset, 1);
    let max = cluster
        .call(
            RemotingCommand::request_with_header(
                RequestCode::GetMaxOffset,
                &GetMaxOffsetRequestHeader {
                    topic: "Offsets".into(),
                    queue_id: 0,
                    ..GetMaxOffsetRequestHeader::default()
                },
            )
            .unwrap(),
        )
        .await;
    assert_eq!(
        max.decode_header::<OffsetResponseHeader>().unwrap().offset,
        1
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn query_by_key_finds_the_message() {
    let cluster = Cluster::start().await;
    cluster
        .send("Keyed", 0, "k", &props(&[("KEYS", "order-42 customer-7")]))
        .await;
    let query = QueryMessageRequestHeader {
        topic: "Keyed".into(),
        key: "customer-7".into(),
        max_num: 10,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        unique_key_query: None,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = cluster
            .call(RemotingCommand::request_with_header(RequestCode::QueryMessage, &query).unwrap())
            .await;
        if response.response_code() == ResponseCode::Success {
            assert_eq!(&messages(&response)[0].body[..], b"k");
            break;
        }
        assert_eq!(response.response_code(), ResponseCode::QueryNotFound);
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn send_back_goes_to_retry_then_dlq() {
    let cluster = Cluster::start_with(|c| c.store.message_delay_level = "1s 1s 1s 1s".into()).await;
    cluster.send("Work", 0, "job", "").await;
    let pulled = messages(&cluster.pull("g", "Work", 0, 0, 0).await);
    let send_back = |offset: i64, max: i32| ConsumerSendMsgBackRequestHeader {
        offset,
        group: "g".into(),
        delay_level: 0,
        max_reconsume_times: Some(max),
        ..ConsumerSendMsgBackRequestHeader::default()
    };
    let response = cluster
        .call(
            RemotingCommand::request_with_header(
                RequestCode::ConsumerSendMsgBack,
                &send_back(pulled[0].commit_log_offset, 1),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "{:?}",
        response.remark
    );
    let retry = cluster.pull("g", "%RETRY%g", 0, 0, 5_000).await;
    assert_eq!(
        retry.response_code(),
        ResponseCode::Success,
        "{:?}",
        retry.remark
    );
    let retried = &messages(&retry)[0];
    assert_eq!(retried.reconsume_times, 1);
    assert_eq!(retried.properties.get(property::RETRY_TOPIC), Some("Work"));
    assert_eq!(
        retried.properties.uniq_key(),
        pulled[0].properties.uniq_key()
    );

    // reconsumeTimes 1 >= max 1: dead letter
    let response = cluster
        .call(
            RemotingCommand::request_with_header(
                RequestCode::ConsumerSendMsgBack,
                &send_back(retried.commit_log_offset, 1),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    let dlq = cluster.pull("g", "%DLQ%g", 0, 0, 0).await;
    assert_eq!(
        dlq.response_code(),
        ResponseCode::Success,
        "{:?}",
        dlq.remark
    );
    assert_eq!(&messages(&dlq)[0].body[..], b"job");
    cluster.shutdown().await;
}

#[tokio::test]
async fn heartbeat_registers_consumers_and_rejects_unparsable_sql() {
    let cluster = Cluster::start_with(|c| c.enable_property_filter = true).await;
    let mut data = HeartbeatData {
        client_id: "127.0.0.1@1".into(),
        ..HeartbeatData::default()
    };
    data.consumer_data_set
        .push(karman_protocol::body::ConsumerData {
            group_name: "cg".into(),
            subscription_data_set: vec![
                karman_protocol::body::SubscriptionData::from_tag_expression("T", "*", 1),
            ],
            ..Default::default()
        });
    let heartbeat =
        RemotingCommand::request(RequestCode::HeartBeat).with_body(fastjson::to_vec(&data));
    let response = cluster.call(heartbeat).await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    let list = cluster
        .call(
            RemotingCommand::request_with_header(
                RequestCode::GetConsumerListByGroup,
                &karman_protocol::header::GetConsumerListByGroupRequestHeader {
                    consumer_group: "cg".into(),
                },
            )
            .unwrap(),
        )
        .await;
    assert!(String::from_utf8_lossy(&list.body.to_bytes()).contains("127.0.0.1@1"));

    let mut pull = Cluster::pull_request("cg", "T", 0, 0, 0);
    pull.ext_fields.insert("subscription".into(), "a >".into());
    pull.ext_fields
        .insert("expressionType".into(), "SQL92".into());
    cluster.send("T", 0, "x", "").await;
    let response = cluster.call(pull).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::SubscriptionParseFailed
    );
    assert!(response.remark.unwrap().contains("character 3"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn admin_creates_a_topic_that_reaches_the_route() {
    let cluster = Cluster::start_with(|c| c.auto_create_topic_enable = false).await;
    let create = CreateTopicRequestHeader {
        topic: "Admin".into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 2,
        write_queue_nums: 2,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        ..CreateTopicRequestHeader::default()
    };
    let response = cluster
        .call(
            RemotingCommand::request_with_header(RequestCode::UpdateAndCreateTopic, &create)
                .unwrap(),
        )
        .await;
    assert_eq!(response.response_code(), ResponseCode::Success);
    assert_eq!(
        cluster.send("Admin", 1, "x", "").await.response_code(),
        ResponseCode::Success
    );
    let out_of_range = cluster.send("Admin", 2, "x", "").await;
    assert_eq!(out_of_range.response_code(), ResponseCode::InvalidParameter);
    let stats = cluster
        .call(
            RemotingCommand::request_with_header(
                RequestCode::GetTopicStatsInfo,
                &karman_protocol::header::TopicRequestHeader {
                    topic: "Admin".into(),
                },
            )
            .unwrap(),
        )
        .await;
    let text = String::from_utf8_lossy(&stats.body.to_bytes()).into_owned();
    assert!(
        text.contains(r#""queueId":1,"topic":"Admin"}:{"lastUpdateTimestamp":"#),
        "{text}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn vip_port_serves_sends_too() {
    let cluster = Cluster::start().await;
    let vip = cluster.broker().local_addrs()[1].to_string();
    let header = SendMessageRequestHeaderV2 {
        producer_group: "p".into(),
        topic: "Vip".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        born_timestamp: now_ms(),
        ..SendMessageRequestHeaderV2::default()
    };
    let request = RemotingCommand::request_with_header(RequestCode::SendMessageV2, &header)
        .unwrap()
        .with_body(Bytes::from_static(b"v"));
    let response = cluster
        .client
        .invoke(&vip, request, support::TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response.response_code(), ResponseCode::Success);
    cluster.shutdown().await;
}

#[tokio::test]
async fn scheduled_messages_survive_a_restart_and_arrive_once() {
    let mut cluster = Cluster::start_with(|c| c.store.message_delay_level = "2s".into()).await;
    let due_at = Instant::now() + Duration::from_secs(2);
    cluster
        .send("Sched", 0, "delayed", &props(&[("DELAY", "1")]))
        .await;
    let timer_due = now_ms() + 2_000;
    cluster
        .send(
            "Sched",
            1,
            "timed",
            &props(&[(property::TIMER_DELIVER_MS, &timer_due.to_string())]),
        )
        .await;
    cluster
        .restart_broker(|c| c.store.message_delay_level = "2s".into())
        .await;
    let delayed = cluster.pull("g", "Sched", 0, 0, 10_000).await;
    assert_eq!(
        delayed.response_code(),
        ResponseCode::Success,
        "{:?}",
        delayed.remark
    );
    assert!(Instant::now() >= due_at);
    let timed = cluster.pull("g", "Sched", 1, 0, 10_000).await;
    assert_eq!(
        timed.response_code(),
        ResponseCode::Success,
        "{:?}",
        timed.remark
    );
    assert!(now_ms() >= timer_due);
    // a further restart does not deliver them again
    cluster
        .restart_broker(|c| c.store.message_delay_level = "2s".into())
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for queue_id in [0, 1] {
        let again = cluster.pull("g", "Sched", queue_id, 1, 0).await;
        assert_eq!(
            again.response_code(),
            ResponseCode::PullNotFound,
            "queue {queue_id} got a second copy"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn full_send_queue_answers_system_busy_with_a_reason() {
    let cluster = Cluster::start_with(|c| {
        c.send_thread_pool_queue_capacity = 1;
        c.wait_time_mills_in_send_queue = 0;
    })
    .await;
    // The topic first, so that the burst below is all plain sends.
    assert_eq!(
        cluster.send("Busy", 0, "first", "").await.response_code(),
        ResponseCode::Success
    );
    // All 50 requests in one write: the broker reads them in one go and starts them
    // together, so the queue of 1 overflows however fast the store is. Sent one by one
    // they may each finish before the next arrives on a slow machine.
    let mut burst = BytesMut::new();
    for opaque in 1..=50 {
        let mut request = support::send_request("Busy", 0, &format!("m{opaque}"), "");
        request.opaque = opaque;
        request.encode(SerializeType::Json, &mut burst).unwrap();
    }
    let mut stream = tokio::net::TcpStream::connect(cluster.broker_addr())
        .await
        .unwrap();
    stream.write_all(&burst).await.unwrap();
    let decoder = FrameDecoder::default();
    let mut buffer = BytesMut::new();
    let mut responses = Vec::new();
    while responses.len() < 50 {
        if let Some(frame) = decoder.decode(&mut buffer).unwrap() {
            responses.push(RemotingCommand::decode(frame).unwrap());
        } else {
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buffer))
                .await
                .expect("50 responses within 10 s")
                .unwrap();
            assert!(read > 0, "the broker closed the connection");
        }
    }
    let busy: Vec<_> = responses
        .iter()
        .filter(|r| r.response_code() == ResponseCode::SystemBusy)
        .collect();
    let ok = responses
        .iter()
        .filter(|r| r.response_code() == ResponseCode::Success)
        .count();
    assert!(
        !busy.is_empty(),
        "50 concurrent sends through a queue of 1 never overflowed"
    );
    assert!(ok > 0);
    assert!(
        busy[0]
            .remark
            .as_deref()
            .unwrap()
            .contains("[PCBUSY_CLEAN_QUEUE]")
    );
    cluster.shutdown().await;
}
