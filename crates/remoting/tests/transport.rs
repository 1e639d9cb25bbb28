//! The transport end to end on loopback: dispatch, oneway, ordering, limits, shutdown,
//! server-initiated requests, reconnects, and one test per kind of bad input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use karman_protocol::header::GetRouteInfoRequestHeader;
use karman_protocol::{FrameDecoder, RemotingCommand, RequestCode, ResponseCode, SerializeType};
use karman_remoting::{
    Channel, ChannelEventListener, ClientConfig, Dispatcher, ProcessResult, RemotingClient,
    RemotingError, RequestProcessor, ServerConfig, ServerHandle, server,
};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Echoes the `topic` header back as the remark; sleeps `sleepMs` first if given.
struct Echo {
    calls: AtomicUsize,
}

#[async_trait]
impl RequestProcessor for Echo {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(ms) = request
            .ext_fields
            .get("sleepMs")
            .and_then(|v| v.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let header: GetRouteInfoRequestHeader = request.decode_header()?;
        Ok(Some(
            RemotingCommand::response(ResponseCode::Success)
                .with_remark(header.topic)
                .with_body(request.body.to_bytes()),
        ))
    }
}

/// Keeps the channel of every caller so the test can call back into the client.
#[derive(Default)]
struct Remember {
    channels: Mutex<Vec<Channel>>,
}

#[async_trait]
impl RequestProcessor for Remember {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        self.channels.lock().push(channel.clone());
        Ok(Some(RemotingCommand::response_to(
            &request,
            ResponseCode::Success,
        )))
    }
}

#[derive(Default)]
struct CloseCounter {
    closed: AtomicUsize,
}

impl ChannelEventListener for CloseCounter {
    fn on_close(&self, _channel: &Channel) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn echo_server(mut config: ServerConfig) -> (ServerHandle, Arc<Echo>, Arc<CloseCounter>) {
    let echo = Arc::new(Echo {
        calls: AtomicUsize::new(0),
    });
    let closes = Arc::new(CloseCounter::default());
    let mut dispatcher = Dispatcher::new();
    dispatcher.register(&[RequestCode::GetRouteinfoByTopic], echo.clone());
    dispatcher.add_listener(closes.clone());
    config.listen_addr = loopback();
    (
        server::start(config, dispatcher).await.unwrap(),
        echo,
        closes,
    )
}

fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request_with_header(
        RequestCode::GetRouteinfoByTopic,
        &GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        },
    )
    .unwrap()
}

fn client(serialize_type: SerializeType) -> RemotingClient {
    RemotingClient::new(
        ClientConfig {
            request_serialize_type: serialize_type,
            ..ClientConfig::default()
        },
        Dispatcher::new(),
    )
}

async fn read_frame(stream: &mut TcpStream) -> Option<RemotingCommand> {
    let decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    loop {
        if let Some(frame) = decoder.decode(&mut buf).unwrap() {
            return Some(RemotingCommand::decode(frame).unwrap());
        }
        let read = tokio::time::timeout(TIMEOUT, stream.read_buf(&mut buf))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
    }
}

/// True when the server closed the raw connection.
async fn is_closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(TIMEOUT, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn json_frame(header: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((header.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&(header.len() as i32).to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

#[tokio::test]
async fn request_and_response_in_both_serializations() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let addr = server.local_addr().to_string();
    for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
        let client = client(serialize_type);
        let request = route_request("TopicTest").with_body(b"payload".to_vec());
        let response = client.invoke(&addr, request, TIMEOUT).await.unwrap();
        assert!(response.is_response());
        assert_eq!(response.response_code(), ResponseCode::Success);
        assert_eq!(response.remark.as_deref(), Some("TopicTest"));
        assert_eq!(&response.body.to_bytes()[..], b"payload");
        // answered in the request's own serialization
        assert_eq!(response.serialize_type, serialize_type);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_code_gets_request_code_not_supported() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let client = client(SerializeType::Json);
    let response = client
        .invoke(
            &server.local_addr().to_string(),
            RemotingCommand::request(RequestCode::Unknown(777)),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(
        response.response_code(),
        ResponseCode::RequestCodeNotSupported
    );
    assert_eq!(
        response.remark.as_deref(),
        Some(" request type 777 not supported")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn oneway_request_is_processed_and_never_answered() {
    let (server, echo, _) = echo_server(ServerConfig::new(loopback())).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut oneway = route_request("A");
    oneway.mark_oneway();
    oneway.opaque = 1;
    let mut normal = route_request("B");
    normal.opaque = 2;
    let mut wire = BytesMut::new();
    oneway.encode(SerializeType::Json, &mut wire).unwrap();
    normal.encode(SerializeType::Json, &mut wire).unwrap();
    stream.write_all(&wire).await.unwrap();
    let response = read_frame(&mut stream).await.unwrap();
    assert_eq!(response.opaque, 2, "only the normal request is answered");
    assert_eq!(echo.calls.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn responses_come_back_as_requests_complete() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut wire = BytesMut::new();
    let mut slow = route_request("slow");
    slow.ext_fields.insert("sleepMs".into(), "300".into());
    slow.opaque = 1;
    let mut fast = route_request("fast");
    fast.opaque = 2;
    slow.encode(SerializeType::Json, &mut wire).unwrap();
    fast.encode(SerializeType::Json, &mut wire).unwrap();
    stream.write_all(&wire).await.unwrap();
    assert_eq!(read_frame(&mut stream).await.unwrap().opaque, 2);
    assert_eq!(read_frame(&mut stream).await.unwrap().opaque, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn in_flight_limit_answers_system_busy() {
    let mut config = ServerConfig::new(loopback());
    config.connection.in_flight_requests_max = 1;
    let (server, _, _) = echo_server(config).await;
    let client = Arc::new(client(SerializeType::Json));
    let addr = server.local_addr().to_string();
    let mut slow = route_request("slow");
    slow.ext_fields.insert("sleepMs".into(), "500".into());
    let first = {
        let client = client.clone();
        let addr = addr.clone();
        tokio::spawn(async move { client.invoke(&addr, slow, TIMEOUT).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = client
        .invoke(&addr, route_request("x"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(busy.response_code(), ResponseCode::SystemBusy);
    assert!(busy.remark.unwrap().contains("[OVERLOAD]"));
    assert_eq!(
        first.await.unwrap().unwrap().response_code(),
        ResponseCode::Success
    );
    server.shutdown().await;
}

/// Log lines written while `f` runs on this thread (the test runtime is single-threaded,
/// so the server's tasks log here too).
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_overload_is_logged_when_it_starts_and_ends_not_per_refused_request() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || Captured(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut config = ServerConfig::new(loopback());
    config.connection.in_flight_requests_max = 1;
    let (server, echo, _) = echo_server(config).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut wire = BytesMut::new();
    let mut slow = route_request("slow");
    slow.ext_fields.insert("sleepMs".into(), "300".into());
    slow.opaque = 1;
    slow.encode(SerializeType::Json, &mut wire).unwrap();
    const FLOOD: usize = 50;
    for opaque in 0..FLOOD {
        let mut oneway = route_request("flood");
        oneway.opaque = 100 + opaque as i32;
        oneway.mark_oneway();
        oneway.encode(SerializeType::Json, &mut wire).unwrap();
    }
    stream.write_all(&wire).await.unwrap();
    assert_eq!(read_frame(&mut stream).await.unwrap().opaque, 1);

    let mut after = route_request("after");
    after.opaque = 2;
    let mut wire = BytesMut::new();
    after.encode(SerializeType::Json, &mut wire).unwrap();
    stream.write_all(&wire).await.unwrap();
    assert_eq!(read_frame(&mut stream).await.unwrap().opaque, 2);
    assert_eq!(
        echo.calls.load(Ordering::SeqCst),
        2,
        "the flood was refused"
    );
    server.shutdown().await;

    let log = String::from_utf8(log.lock().clone()).unwrap();
    let started: Vec<_> = log
        .lines()
        .filter(|l| l.contains("too many requests"))
        .collect();
    let ended: Vec<_> = log
        .lines()
        .filter(|l| l.contains("taking requests"))
        .collect();
    assert_eq!(started.len(), 1, "{log}");
    assert_eq!(ended.len(), 1, "{log}");
    assert!(ended[0].contains(&format!("refused={FLOOD}")), "{log}");
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let mut config = ServerConfig::new(loopback());
    config.connection.idle_timeout = Duration::from_millis(200);
    let (server, _, closes) = echo_server(config).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    assert!(is_closed_by_server(&mut stream).await);
    assert_eq!(closes.closed.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_answers_requests_already_in_flight() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let client = Arc::new(client(SerializeType::Json));
    let addr = server.local_addr().to_string();
    let mut slow = route_request("drained");
    slow.ext_fields.insert("sleepMs".into(), "300".into());
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.invoke(&addr, slow, TIMEOUT).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown().await;
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.remark.as_deref(), Some("drained"));
}

#[tokio::test]
async fn extra_listen_address_serves_the_same_processors() {
    let mut config = ServerConfig::new(loopback());
    config.extra_listen_addrs.push(loopback());
    let (server, _, _) = echo_server(config).await;
    assert_eq!(server.local_addrs().len(), 2);
    let client = client(SerializeType::Json);
    for addr in server.local_addrs() {
        let response = client
            .invoke(&addr.to_string(), route_request("vip"), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.remark.as_deref(), Some("vip"));
    }
    server.shutdown().await;
}

/// The client's own processor answers what the server sends over the same connection.
struct ClientSide;

#[async_trait]
impl RequestProcessor for ClientSide {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        Ok(Some(
            RemotingCommand::response_to(&request, ResponseCode::Success)
                .with_remark("from client"),
        ))
    }
}

#[tokio::test]
async fn server_initiated_request_reaches_client_processor() {
    let remember = Arc::new(Remember::default());
    let mut dispatcher = Dispatcher::new();
    dispatcher.register(&[RequestCode::HeartBeat], remember.clone());
    let server = server::start(ServerConfig::new(loopback()), dispatcher)
        .await
        .unwrap();
    let mut client_dispatcher = Dispatcher::new();
    client_dispatcher.register(&[RequestCode::GetConsumerRunningInfo], Arc::new(ClientSide));
    let client = RemotingClient::new(ClientConfig::default(), client_dispatcher);
    client
        .invoke(
            &server.local_addr().to_string(),
            RemotingCommand::request(RequestCode::HeartBeat),
            TIMEOUT,
        )
        .await
        .unwrap();
    let channel = remember.channels.lock()[0].clone();
    let answer = channel
        .invoke(
            RemotingCommand::request(RequestCode::GetConsumerRunningInfo),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(answer.remark.as_deref(), Some("from client"));
    server.shutdown().await;
    client.shutdown().await;
}

#[tokio::test]
async fn client_redials_after_the_connection_fails() {
    let remember = Arc::new(Remember::default());
    let mut dispatcher = Dispatcher::new();
    dispatcher.register(&[RequestCode::HeartBeat], remember.clone());
    let server = server::start(ServerConfig::new(loopback()), dispatcher)
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let client = client(SerializeType::Json);
    client
        .invoke(
            &addr,
            RemotingCommand::request(RequestCode::HeartBeat),
            TIMEOUT,
        )
        .await
        .unwrap();
    let first = remember.channels.lock()[0].clone();
    first.close();
    // the client notices the closed connection and dials a new one
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client
            .invoke(
                &addr,
                RemotingCommand::request(RequestCode::HeartBeat),
                TIMEOUT,
            )
            .await
        {
            Ok(_) => break,
            Err(RemotingError::ChannelClosed { .. }) if attempts < 10 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let last_id = remember.channels.lock().last().unwrap().id();
    assert_ne!(last_id, first.id());
    server.shutdown().await;
}

#[tokio::test]
async fn invoke_times_out_and_forgets_the_request() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let client = client(SerializeType::Json);
    let mut slow = route_request("slow");
    slow.ext_fields.insert("sleepMs".into(), "1000".into());
    let error = client
        .invoke(
            &server.local_addr().to_string(),
            slow,
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, RemotingError::Timeout { .. }), "{error}");
    server.shutdown().await;
}

// ---- bad input: one test per case; the server keeps serving everyone else -------------

async fn assert_still_serving(server: &ServerHandle) {
    let client = client(SerializeType::Json);
    let response = client
        .invoke(
            &server.local_addr().to_string(),
            route_request("alive"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(response.remark.as_deref(), Some("alive"));
}

#[tokio::test]
async fn bad_input_frame_over_the_limit_closes_the_connection() {
    let mut config = ServerConfig::new(loopback());
    config.connection.frame_bytes_max = 1024;
    let (server, _, _) = echo_server(config).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let header = format!(
        r#"{{"code":105,"opaque":1,"extFields":{{"topic":"{}"}}}}"#,
        "x".repeat(2000)
    );
    stream.write_all(&json_frame(&header)).await.unwrap();
    assert!(is_closed_by_server(&mut stream).await);
    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_huge_length_prefix_closes_without_waiting_for_data() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
    assert!(is_closed_by_server(&mut stream).await);
    let mut negative = TcpStream::connect(server.local_addr()).await.unwrap();
    negative.write_all(&(-1i32).to_be_bytes()).await.unwrap();
    assert!(is_closed_by_server(&mut negative).await);
    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_truncated_frame_is_dropped_with_its_connection() {
    let (server, echo, closes) = echo_server(ServerConfig::new(loopback())).await;
    let mut wire = BytesMut::new();
    route_request("T")
        .encode(SerializeType::Json, &mut wire)
        .unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(&wire[..wire.len() - 3]).await.unwrap();
    drop(stream);
    assert_still_serving(&server).await;
    assert_eq!(
        echo.calls.load(Ordering::SeqCst),
        1,
        "only the healthy request ran"
    );
    tokio::time::timeout(TIMEOUT, async {
        while closes.closed.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_header_neither_json_nor_rocketmq_closes_the_connection() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut frame = json_frame(r#"{"code":105,"opaque":1}"#);
    frame[4] = 5; // serialize type 5
    stream.write_all(&frame).await.unwrap();
    assert!(is_closed_by_server(&mut stream).await);

    let mut garbage = TcpStream::connect(server.local_addr()).await.unwrap();
    garbage
        .write_all(&json_frame("this is not json"))
        .await
        .unwrap();
    assert!(is_closed_by_server(&mut garbage).await);
    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_ext_field_of_the_wrong_type_gets_an_error_response() {
    let (server, _, _) = echo_server(ServerConfig::new(loopback())).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    // an object where a string belongs: answered, not dropped, and the connection lives on
    stream
        .write_all(&json_frame(
            r#"{"code":105,"opaque":41,"flag":0,"extFields":{"topic":{"nested":1}}}"#,
        ))
        .await
        .unwrap();
    let response = read_frame(&mut stream).await.unwrap();
    assert_eq!(
        (response.opaque, response.response_code()),
        (41, ResponseCode::SystemError)
    );
    assert!(response.remark.unwrap().contains("unusable field"));

    // a typed header whose required key is missing names the key
    stream
        .write_all(&json_frame(
            r#"{"code":105,"opaque":42,"flag":0,"extFields":{"other":"1"}}"#,
        ))
        .await
        .unwrap();
    let response = read_frame(&mut stream).await.unwrap();
    assert_eq!(
        (response.opaque, response.response_code()),
        (42, ResponseCode::SystemError)
    );
    assert_eq!(
        response.remark.as_deref(),
        Some("ext field `topic` is missing")
    );

    // the same connection still works
    let mut ok = route_request("still-here");
    ok.opaque = 43;
    let mut wire = BytesMut::new();
    ok.encode(SerializeType::RocketMq, &mut wire).unwrap();
    stream.write_all(&wire).await.unwrap();
    assert_eq!(
        read_frame(&mut stream).await.unwrap().remark.as_deref(),
        Some("still-here")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_many_connections_at_the_frame_limit_stay_bounded() {
    let mut config = ServerConfig::new(loopback());
    config.connection.frame_bytes_max = 64 * 1024;
    let (server, _, _) = echo_server(config).await;
    // Each claims a frame at the limit and sends a few bytes of it: the server holds at
    // most the limit per connection and closes each when the peer gives up.
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream
            .write_all(&(64i32 * 1024 - 4).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&[0, 0, 0, 2, b'{']).await.unwrap();
        streams.push(stream);
    }
    assert_still_serving(&server).await;
    drop(streams);
    server.shutdown().await;
}
