//! The driver's Socket.IO client against a real socketioxide server (EIO3 and EIO4) on
//! loopback sockets.
//!
//! The server pings fast (300 ms interval, 200 ms timeout) so heartbeat behaviour shows within a
//! second or two.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomrig::protocol::EioVersion;
use roomrig::transport::socketio::{ClientConfig, Connection};
use roomrig::transport::{ClientError, CloseReason, ConnectError, Heartbeat, Incoming};
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use tokio::time::Instant;

const PING_INTERVAL: Duration = Duration::from_millis(300);
const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on loopback (two test threads run in parallel).
const SLACK: Duration = Duration::from_millis(400);

#[derive(Debug, Clone)]
enum ServerEvent {
    Connected {
        ns: String,
        sid: String,
    },
    Disconnected {
        sid: String,
        reason: DisconnectReason,
        at: Instant,
    },
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<ServerEvent>>>);

impl Log {
    fn push(&self, e: ServerEvent) {
        self.0.lock().unwrap().push(e);
    }

    fn connects(&self, sid: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, ServerEvent::Connected { sid: s, .. } if s == sid))
            .count()
    }

    fn disconnect_of(&self, sid: &str) -> Option<(DisconnectReason, Instant)> {
        self.0.lock().unwrap().iter().find_map(|e| match e {
            ServerEvent::Disconnected { sid: s, reason, at } if s == sid => Some((*reason, *at)),
            _ => None,
        })
    }

    async fn wait_disconnect(&self, sid: &str, within: Duration) -> (DisconnectReason, Instant) {
        let end = Instant::now() + within;
        loop {
            if let Some(d) = self.disconnect_of(sid) {
                return d;
            }
            assert!(
                Instant::now() < end,
                "server saw no disconnect of {sid} within {within:?}: {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    log: Log,
}

impl TestServer {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Debug)]
struct Rejected;
impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no entry")
    }
}
impl std::error::Error for Rejected {}

/// Registers the test handlers. Called from a connect middleware: socketioxide awaits it before
/// sending CONNECT, while the connect handler proper is spawned after CONNECT is queued (handlers
/// registered there could miss a fast client's first events). socketioxide spawns every message
/// handler as its own task, so replies to back-to-back events may come in either order.
fn install(s: &SocketRef, ns: &str, log: &Log) {
    log.push(ServerEvent::Connected {
        ns: ns.to_owned(),
        sid: s.id.to_string(),
    });
    s.on("echo", async |s: SocketRef, Data(v): Data<Value>| {
        s.emit("echo", &v).ok();
    });
    s.on("ack_me", async |Data(v): Data<Value>, ack: AckSender| {
        ack.send(&v).ok();
    });
    // {"n": count, "pad": bytes}: emits `n` events {"i": index, "pad": "xxx…"}.
    s.on("burst", async |s: SocketRef, Data(req): Data<Value>| {
        let pad = "x".repeat(req["pad"].as_u64().unwrap_or(0) as usize);
        for i in 0..req["n"].as_u64().unwrap_or(0) {
            s.emit("n", &json!({"i": i, "pad": pad}))
                .expect("server send buffer full");
        }
    });
    s.on("kick", async |s: SocketRef| {
        s.disconnect().ok();
    });
    s.on("ask", async |s: SocketRef| {
        let ack = s
            .timeout(Duration::from_secs(2))
            .emit_with_ack::<_, Value>("question", &json!(41))
            .unwrap()
            .await;
        if let Ok(v) = ack {
            s.emit("answer", &v).ok();
        }
    });
    let log = log.clone();
    s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| {
        let log = log.clone();
        async move {
            log.push(ServerEvent::Disconnected {
                sid: s.id.to_string(),
                reason,
                at: Instant::now(),
            });
        }
    });
}

fn installer(
    ns: &'static str,
    log: &Log,
) -> impl Fn(SocketRef) -> std::future::Ready<Result<(), Rejected>> + Clone + Send + Sync + 'static
{
    let log = log.clone();
    move |s: SocketRef| {
        install(&s, ns, &log);
        std::future::ready(Ok(()))
    }
}

async fn start_server_with(interval: Duration, timeout: Duration) -> TestServer {
    let (layer, io) = SocketIo::builder()
        .ping_interval(interval)
        .ping_timeout(timeout)
        // The burst test emits more than the default 128 packets at once.
        .max_buffer_size(1024)
        .build_layer();
    let log = Log::default();

    io.ns(
        "/",
        (async |s: SocketRef| {
            s.emit("welcome", &s.id.to_string()).ok();
        })
        .with(installer("/", &log)),
    );
    io.ns(
        "/chat",
        (async |_: SocketRef| {}).with(installer("/chat", &log)),
    );
    let reject = async |_: SocketRef| -> Result<(), Rejected> { Err(Rejected) };
    io.ns("/private", (async |_: SocketRef| {}).with(reject));

    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestServer { addr, log }
}

async fn start_server() -> TestServer {
    start_server_with(PING_INTERVAL, PING_TIMEOUT).await
}

fn config(eio: EioVersion, ns: &str) -> ClientConfig {
    ClientConfig {
        eio,
        namespace: ns.to_owned(),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

async fn recv_within(conn: &mut Connection, d: Duration) -> Incoming {
    tokio::time::timeout(d, conn.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing received within {d:?}"))
        .expect("recv failed")
}

/// Connects to "/" and consumes the server's `welcome` event.
async fn connect_root(server: &TestServer, eio: EioVersion) -> Connection {
    let mut conn = Connection::connect(&server.url(), &config(eio, "/"))
        .await
        .expect("connect");
    match recv_within(&mut conn, Duration::from_secs(2)).await {
        Incoming::Event { name, args, ack } => {
            assert_eq!(name, "welcome");
            assert_eq!(args, vec![json!(conn.sid())]);
            assert_eq!(ack, None);
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    conn
}

/// Calls `recv` in short slices (exercising cancel-safety) for `d`; fails on anything received.
async fn idle_for(conn: &mut Connection, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let Ok(item) = tokio::time::timeout(Duration::from_millis(7), conn.recv()).await {
            panic!("unexpected item while idle: {item:?}");
        }
    }
}

/// Receives until `Closed`, in short slices, for at most `d`; returns the reason.
async fn until_closed(conn: &mut Connection, d: Duration) -> CloseReason {
    let end = Instant::now() + d;
    loop {
        assert!(Instant::now() < end, "connection not closed within {d:?}");
        match tokio::time::timeout(Duration::from_millis(7), conn.recv()).await {
            Err(_) => {}
            Ok(Ok(Incoming::Closed(r))) => return r,
            Ok(other) => panic!("unexpected item before close: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------

async fn echo_and_acks(eio: EioVersion) {
    let server = start_server().await;
    let mut conn = connect_root(&server, eio).await;
    assert_eq!(conn.eio(), eio);
    assert_eq!(conn.ping_interval(), PING_INTERVAL);
    assert_eq!(conn.ping_timeout(), PING_TIMEOUT);
    assert_eq!(conn.sid().len(), 16, "socketioxide sids are 16 chars");
    match eio {
        // socketioxide's socket id is its engine.io sid.
        EioVersion::V4 => assert_eq!(conn.socket_id(), Some(conn.sid())),
        EioVersion::V3 => assert_eq!(conn.socket_id(), None),
    }
    assert_eq!(server.log.connects(conn.sid()), 1);

    let payload = json!({"token": "t", "message": "héllo \"w\"", "n": [1, 2.5, null]});
    conn.emit("echo", std::slice::from_ref(&payload))
        .await
        .unwrap();
    assert_eq!(
        recv_within(&mut conn, Duration::from_secs(2)).await,
        Incoming::Event {
            name: "echo".into(),
            args: vec![payload.clone()],
            ack: None
        }
    );

    // Pre-encoded frame.
    conn.emit_raw(r#"42["echo",[1,2]]"#.to_string())
        .await
        .unwrap();
    match recv_within(&mut conn, Duration::from_secs(2)).await {
        Incoming::Event { name, args, .. } => {
            assert_eq!(name, "echo");
            assert_eq!(args, vec![json!([1, 2])]);
        }
        other => panic!("{other:?}"),
    }

    // Client ack request, server acknowledges.
    let id0 = conn.emit_with_ack("ack_me", &[json!("a")]).await.unwrap();
    let id1 = conn.emit_with_ack("ack_me", &[json!("b")]).await.unwrap();
    assert_ne!(id0, id1);
    let mut acks = Vec::new();
    for _ in 0..2 {
        match recv_within(&mut conn, Duration::from_secs(2)).await {
            Incoming::Ack { ack, args } => acks.push((ack, args)),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    acks.sort_by_key(|a| a.0);
    assert_eq!(acks, vec![(id0, vec![json!("a")]), (id1, vec![json!("b")])]);

    // Server ack request, client acknowledges.
    conn.emit("ask", &[]).await.unwrap();
    let Incoming::Event { name, args, ack } = recv_within(&mut conn, Duration::from_secs(2)).await
    else {
        panic!("expected question");
    };
    assert_eq!((name.as_str(), args), ("question", vec![json!(41)]));
    let ack = ack.expect("server asked for an ack");
    conn.ack(ack, &[json!(42)]).await.unwrap();
    let Incoming::Event { name, args, .. } = recv_within(&mut conn, Duration::from_secs(2)).await
    else {
        panic!("expected answer");
    };
    assert_eq!(name, "answer");
    // socketioxide hands a single ack argument over as the value itself (EIO4) or wrapped in
    // the argument array (socket.io 2 acks).
    assert!(
        args == vec![json!(42)] || args == vec![json!([42])],
        "{args:?}"
    );
    conn.close().await;
}

#[tokio::test]
async fn eio3_echo_and_acks() {
    echo_and_acks(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_echo_and_acks() {
    echo_and_acks(EioVersion::V4).await;
}

async fn custom_namespace(eio: EioVersion) {
    let server = start_server().await;
    let mut conn = Connection::connect(&server.url(), &config(eio, "/chat"))
        .await
        .expect("connect /chat");
    assert_eq!(conn.namespace(), "/chat");
    conn.emit("echo", &[json!(7)]).await.unwrap();
    // Nothing from "/" (e.g. its welcome under socket.io 2) leaks into "/chat".
    assert_eq!(
        recv_within(&mut conn, Duration::from_secs(2)).await,
        Incoming::Event {
            name: "echo".into(),
            args: vec![json!(7)],
            ack: None
        }
    );
    let chat_connects = server
        .log
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, ServerEvent::Connected { ns, .. } if ns == "/chat"))
        .count();
    assert_eq!(chat_connects, 1);
    conn.close().await;
}

#[tokio::test]
async fn eio3_custom_namespace() {
    custom_namespace(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_custom_namespace() {
    custom_namespace(EioVersion::V4).await;
}

async fn heartbeats_keep_alive(eio: EioVersion) {
    let server = start_server().await;
    let mut conn = connect_root(&server, eio).await;
    idle_for(&mut conn, PING_INTERVAL * 4 + PING_INTERVAL / 2).await;
    let st = conn.heartbeat_stats();
    match eio {
        EioVersion::V4 => {
            assert!(st.pings_received >= 4, "{st:?}");
            assert_eq!(st.pongs_sent, st.pings_received, "{st:?}");
            assert_eq!(st.pings_sent, 0, "{st:?}");
        }
        EioVersion::V3 => {
            assert!(st.pings_sent >= 3, "{st:?}");
            assert!(st.pongs_received + 1 >= st.pings_sent, "{st:?}");
            assert_eq!(st.pings_received, 0, "{st:?}");
        }
    }
    assert!(server.log.disconnect_of(conn.sid()).is_none());
    conn.emit("echo", &[json!("still here")]).await.unwrap();
    assert!(matches!(
        recv_within(&mut conn, Duration::from_secs(2)).await,
        Incoming::Event { .. }
    ));
    conn.close().await;
}

#[tokio::test]
async fn eio3_heartbeats_keep_alive() {
    heartbeats_keep_alive(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_heartbeats_keep_alive() {
    heartbeats_keep_alive(EioVersion::V4).await;
}

async fn dropped_heartbeat_gets_closed(eio: EioVersion) {
    let server = start_server().await;
    let mut conn = connect_root(&server, eio).await;
    // Wait for one completed heartbeat exchange, then drop right after it.
    let done = |c: &Connection| match eio {
        EioVersion::V4 => c.heartbeat_stats().pongs_sent,
        EioVersion::V3 => c.heartbeat_stats().pongs_received,
    };
    let before = done(&conn);
    let end = Instant::now() + PING_INTERVAL * 3;
    while done(&conn) == before {
        assert!(Instant::now() < end, "no heartbeat exchange");
        if let Ok(item) = tokio::time::timeout(Duration::from_millis(2), conn.recv()).await {
            panic!("unexpected {item:?}");
        }
    }
    conn.set_heartbeat(Heartbeat::Dropped);
    let t0 = Instant::now();
    let stats_at_drop = conn.heartbeat_stats();

    let reason = until_closed(&mut conn, PING_INTERVAL + PING_TIMEOUT + SLACK * 2).await;
    let elapsed = t0.elapsed();
    assert!(
        !matches!(reason, CloseReason::HeartbeatTimeout),
        "the server, not the client, must end it: {reason:?}"
    );
    assert!(
        elapsed >= PING_INTERVAL,
        "closed after {elapsed:?}, before one ping interval"
    );
    assert!(
        elapsed <= PING_INTERVAL + PING_TIMEOUT + SLACK,
        "closed after {elapsed:?}"
    );
    let st = conn.heartbeat_stats();
    assert_eq!(
        st.pongs_sent, stats_at_drop.pongs_sent,
        "answered while dropped"
    );
    assert_eq!(
        st.pings_sent, stats_at_drop.pings_sent,
        "pinged while dropped"
    );
    let (server_reason, _) = server
        .log
        .wait_disconnect(conn.sid(), Duration::from_secs(1))
        .await;
    assert_eq!(server_reason, DisconnectReason::HeartbeatTimeout);
    eprintln!("{eio:?}: dropped heartbeat -> client saw {reason:?} after {elapsed:?}");
    assert!(matches!(conn.recv().await, Err(ClientError::Closed)));
    assert!(matches!(
        conn.emit("echo", &[]).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn eio3_dropped_heartbeat_gets_closed() {
    dropped_heartbeat_gets_closed(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_dropped_heartbeat_gets_closed() {
    dropped_heartbeat_gets_closed(EioVersion::V4).await;
}

async fn vanish_is_a_disconnect(eio: EioVersion) {
    let server = start_server().await;
    let conn = connect_root(&server, eio).await;
    let sid = conn.sid().to_owned();
    let t0 = Instant::now();
    conn.vanish();
    let (reason, at) = server
        .log
        .wait_disconnect(&sid, Duration::from_secs(2))
        .await;
    eprintln!("{eio:?}: vanish -> server reason {reason:?}");
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportError | DisconnectReason::TransportClose
        ),
        "{reason:?}"
    );
    // Seen at once, not through a heartbeat timeout.
    assert!(at - t0 < PING_INTERVAL, "{:?}", at - t0);
}

#[tokio::test]
async fn eio3_vanish_is_a_disconnect() {
    vanish_is_a_disconnect(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_vanish_is_a_disconnect() {
    vanish_is_a_disconnect(EioVersion::V4).await;
}

async fn close_is_clean(eio: EioVersion) {
    let server = start_server().await;
    let conn = connect_root(&server, eio).await;
    let sid = conn.sid().to_owned();
    let t0 = Instant::now();
    conn.close().await;
    assert!(t0.elapsed() < Duration::from_millis(1100));
    let (reason, _) = server
        .log
        .wait_disconnect(&sid, Duration::from_secs(2))
        .await;
    assert_eq!(reason, DisconnectReason::ClientNSDisconnect);
}

#[tokio::test]
async fn eio3_close_is_clean() {
    close_is_clean(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_close_is_clean() {
    close_is_clean(EioVersion::V4).await;
}

async fn server_disconnect(eio: EioVersion) {
    let server = start_server().await;
    let mut conn = connect_root(&server, eio).await;
    conn.emit("kick", &[]).await.unwrap();
    assert_eq!(
        recv_within(&mut conn, Duration::from_secs(2)).await,
        Incoming::Closed(CloseReason::ServerDisconnect)
    );
    assert!(matches!(conn.recv().await, Err(ClientError::Closed)));
    let (reason, _) = server
        .log
        .wait_disconnect(conn.sid(), Duration::from_secs(2))
        .await;
    assert_eq!(reason, DisconnectReason::ServerNSDisconnect);
}

#[tokio::test]
async fn eio3_server_disconnect() {
    server_disconnect(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_server_disconnect() {
    server_disconnect(EioVersion::V4).await;
}

async fn refused_namespace(eio: EioVersion) {
    let server = start_server().await;
    let t0 = Instant::now();
    match Connection::connect(&server.url(), &config(eio, "/private")).await {
        Err(ConnectError::Refused(msg)) => assert_eq!(msg, "no entry"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn eio3_refused_namespace() {
    refused_namespace(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_refused_namespace() {
    refused_namespace(EioVersion::V4).await;
}

/// recv is cancelled over and over (a competing branch wins whenever recv is pending) while a
/// burst of frames larger than the 4 KiB read buffer arrives: nothing is lost or reordered.
async fn recv_is_cancel_safe(eio: EioVersion) {
    // 8 MB through a debug build may delay heartbeats past the fast test timings.
    let server = start_server_with(Duration::from_secs(5), Duration::from_secs(5)).await;
    let mut conn = connect_root(&server, eio).await;
    const N: u64 = 400;
    const PAD: usize = 20_000;
    conn.emit("burst", &[json!({"n": N, "pad": PAD})])
        .await
        .unwrap();
    let mut next = 0u64;
    let end = Instant::now() + Duration::from_secs(8);
    let mut cancelled = 0u32;
    while next < N {
        assert!(Instant::now() < end, "got {next} of {N}");
        tokio::select! {
            item = conn.recv() => match item.unwrap() {
                Incoming::Event { name, args, .. } => {
                    assert_eq!(name, "n");
                    assert_eq!(args[0]["i"], json!(next));
                    assert_eq!(args[0]["pad"].as_str().map(str::len), Some(PAD));
                    next += 1;
                }
                other => panic!("{other:?}"),
            },
            _ = tokio::task::yield_now() => cancelled += 1,
        }
    }
    eprintln!("{eio:?}: {N} events of {PAD} bytes, recv cancelled {cancelled} times");
    assert!(cancelled > 0);
    conn.close().await;
}

#[tokio::test]
async fn eio3_recv_is_cancel_safe() {
    recv_is_cancel_safe(EioVersion::V3).await;
}

#[tokio::test]
async fn eio4_recv_is_cancel_safe() {
    recv_is_cancel_safe(EioVersion::V4).await;
}

/// socket.io 2 connects "/" by itself; a client "40" must not create a second socket.
#[tokio::test]
async fn eio3_duplicate_root_connect_is_ignored() {
    let server = start_server().await;
    let mut conn = connect_root(&server, EioVersion::V3).await;
    conn.emit_raw("40".to_owned()).await.unwrap();
    conn.emit("echo", &[json!(1)]).await.unwrap();
    // The echo arrives, no second welcome / CONNECT does.
    assert_eq!(
        recv_within(&mut conn, Duration::from_secs(2)).await,
        Incoming::Event {
            name: "echo".into(),
            args: vec![json!(1)],
            ack: None
        }
    );
    assert_eq!(server.log.connects(conn.sid()), 1);
    conn.close().await;
}

#[tokio::test]
async fn closed_port_is_tcp_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for eio in [EioVersion::V3, EioVersion::V4] {
        let t0 = Instant::now();
        let r = Connection::connect(&format!("http://127.0.0.1:{port}"), &config(eio, "/")).await;
        assert!(matches!(r, Err(ConnectError::Tcp(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_millis(500));
    }
}

#[tokio::test]
async fn plain_http_server_is_handshake_error() {
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for eio in [EioVersion::V3, EioVersion::V4] {
        match Connection::connect(&format!("http://{addr}"), &config(eio, "/")).await {
            Err(ConnectError::Handshake(msg)) => assert!(msg.contains("404"), "{msg}"),
            other => panic!("expected Handshake, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn bind_local_addr() {
    let server = start_server().await;
    let cfg = ClientConfig {
        local_addr: Some("127.0.0.2".parse().unwrap()),
        ..config(EioVersion::V4, "/")
    };
    let conn = Connection::connect(&server.url(), &cfg).await.unwrap();
    assert_eq!(conn.local_addr().unwrap().ip().to_string(), "127.0.0.2");
    conn.close().await;
}

#[tokio::test]
async fn connect_timeout() {
    // A listener that accepts but never answers the websocket handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let cfg = ClientConfig {
        connect_timeout: Duration::from_millis(200),
        ..config(EioVersion::V4, "/")
    };
    let t0 = Instant::now();
    let r = Connection::connect(&format!("http://{addr}"), &cfg).await;
    assert!(matches!(r, Err(ConnectError::Timeout)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_millis(600));
}

// ---------------------------------------------------------------------------------------------
// Scripted websocket servers, for what socketioxide cannot be made to do (stay silent, send
// Node-style or malformed packets).

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Accepts one websocket connection and runs `script` on it; returns the base URL and the
/// request URI the client used.
// The handshake callback's error type is tungstenite's (a whole HTTP response).
#[allow(clippy::result_large_err)]
async fn scripted_server<F, Fut>(script: F) -> (String, tokio::sync::oneshot::Receiver<String>)
where
    F: FnOnce(ServerWs) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (uri_tx, uri_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
            uri_tx.send(req.uri().to_string()).ok();
            Ok(resp)
        })
        .await
        .unwrap();
        script(ws).await;
    });
    (url, uri_rx)
}

async fn send(ws: &mut ServerWs, text: &str) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        text.to_owned(),
    ))
    .await
    .unwrap();
}

async fn next_text(ws: &mut ServerWs) -> String {
    use futures_util::StreamExt;
    loop {
        match ws.next().await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("client went away: {other:?}"),
        }
    }
}

/// Reads frames until the client goes away, recording them.
async fn drain(mut ws: ServerWs, seen: Arc<Mutex<Vec<String>>>) {
    use futures_util::StreamExt;
    while let Some(Ok(m)) = ws.next().await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            seen.lock().unwrap().push(t.to_string());
        }
    }
}

const NODE_SID: &str = "lv_VI97HAXpY6yYWAAAC"; // 20 characters, as Node's engine.io

#[tokio::test]
async fn eio3_client_detects_silent_server() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let (url, uri) = scripted_server(move |mut ws| async move {
        send(
            &mut ws,
            &format!(
                r#"0{{"sid":"{NODE_SID}","upgrades":[],"pingInterval":200,"pingTimeout":150}}"#
            ),
        )
        .await;
        send(&mut ws, "40").await;
        drain(ws, s2).await; // never answers pings
    })
    .await;
    let mut conn = Connection::connect(&url, &config(EioVersion::V3, "/"))
        .await
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(uri.await.unwrap(), "/socket.io/?EIO=3&transport=websocket");
    assert_eq!(conn.sid(), NODE_SID);
    assert_eq!(conn.socket_id(), None);
    let reason = until_closed(&mut conn, Duration::from_secs(2)).await;
    let elapsed = t0.elapsed();
    assert_eq!(reason, CloseReason::HeartbeatTimeout);
    assert!(
        elapsed >= Duration::from_millis(340) && elapsed < Duration::from_millis(350) + SLACK,
        "{elapsed:?}"
    );
    assert_eq!(conn.heartbeat_stats().pings_sent, 1);
    // The client never sent "40" for "/" under EIO3; its only frame was the ping.
    assert_eq!(*seen.lock().unwrap(), vec!["2".to_owned()]);
}

#[tokio::test]
async fn eio4_client_detects_silent_server() {
    let (url, uri) = scripted_server(|mut ws| async move {
        send(
            &mut ws,
            r#"0{"sid":"AAAAAAAAAAAAAAAA","upgrades":[],"pingInterval":200,"pingTimeout":150,"maxPayload":1000000}"#,
        )
        .await;
        assert_eq!(next_text(&mut ws).await, r#"40{"token":"t"}"#);
        send(&mut ws, r#"40{"sid":"BBBBBBBBBBBBBBBBBBBB"}"#).await;
        drain(ws, Arc::default()).await; // never pings
    })
    .await;
    let cfg = ClientConfig {
        auth: Some(json!({"token": "t"})),
        path: "/custom/".into(),
        ..config(EioVersion::V4, "/")
    };
    let mut conn = Connection::connect(&format!("{url}/?x=1"), &cfg)
        .await
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(uri.await.unwrap(), "/custom/?EIO=4&transport=websocket&x=1");
    assert_eq!(conn.socket_id(), Some("BBBBBBBBBBBBBBBBBBBB"));
    let reason = until_closed(&mut conn, Duration::from_secs(2)).await;
    let elapsed = t0.elapsed();
    assert_eq!(reason, CloseReason::HeartbeatTimeout);
    assert!(
        elapsed >= Duration::from_millis(340) && elapsed < Duration::from_millis(350) + SLACK,
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn node_style_connect_error_with_data() {
    let (url, _) = scripted_server(|mut ws| async move {
        send(
            &mut ws,
            &format!(
                r#"0{{"sid":"{NODE_SID}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
            ),
        )
        .await;
        assert_eq!(next_text(&mut ws).await, "40/admin,");
        send(
            &mut ws,
            r#"44/admin,{"message":"bad token","data":{"code":1}}"#,
        )
        .await;
        drain(ws, Arc::default()).await;
    })
    .await;
    match Connection::connect(&url, &config(EioVersion::V4, "/admin")).await {
        Err(ConnectError::Refused(m)) => assert_eq!(m, r#"bad token (data: {"code":1})"#),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn websocket_but_not_engineio() {
    let (url, _) = scripted_server(|mut ws| async move {
        send(&mut ws, "hello").await;
        drain(ws, Arc::default()).await;
    })
    .await;
    match Connection::connect(&url, &config(EioVersion::V4, "/")).await {
        Err(ConnectError::NotEngineIo(m)) => assert!(m.contains("hello"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_frames_are_per_frame_errors() {
    let (url, _) = scripted_server(|mut ws| async move {
        send(
            &mut ws,
            r#"0{"sid":"AAAAAAAAAAAAAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#,
        )
        .await;
        next_text(&mut ws).await;
        send(&mut ws, "40").await;
        for f in [
            "9garbage",
            "42not json",
            r#"42[{"no":"name"}]"#,
            r#"451-["bin",{"_placeholder":true,"num":0}]"#,
            "6",
            r#"42/other,["elsewhere"]"#,
            r#"42["ok",1]"#,
            "41",
        ] {
            send(&mut ws, f).await;
        }
        drain(ws, Arc::default()).await;
    })
    .await;
    let mut conn = Connection::connect(&url, &config(EioVersion::V4, "/"))
        .await
        .unwrap();
    let d = Duration::from_secs(2);
    for _ in 0..4 {
        match tokio::time::timeout(d, conn.recv()).await.unwrap() {
            Err(ClientError::Protocol(e)) => eprintln!("rejected: {e}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
    // NOOP and other namespaces are skipped; the connection still works.
    assert_eq!(
        recv_within(&mut conn, d).await,
        Incoming::Event {
            name: "ok".into(),
            args: vec![json!(1)],
            ack: None
        }
    );
    assert_eq!(
        recv_within(&mut conn, d).await,
        Incoming::Closed(CloseReason::ServerDisconnect)
    );
}

// ---------------------------------------------------------------------------------------------
// Memory per idle connection (run with: cargo test --release --test client_engine -- --ignored
// --nocapture idle_connection_memory). The server runs in a child process (this test binary
// re-executed) so that only the driver side is measured.

const MEM_CHILD_ENV: &str = "ROOMRIG_MEM_SERVER_CHILD";

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of idle_connection_memory"]
async fn memory_server_child() {
    if std::env::var_os(MEM_CHILD_ENV).is_none() {
        return;
    }
    let server = start_server_with(Duration::from_secs(25), Duration::from_secs(20)).await;
    println!("PORT={}", server.addr.port());
    // Serve until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "memory measurement; run explicitly"]
async fn idle_connection_memory() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "memory_server_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MEM_CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
    // Keep reading the child's stdout to its end (it prints its test result when it exits).
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // The harness may print "test memory_server_child ... " on the same line.
            if let Some((_, p)) = line.split_once("PORT=") {
                port_tx.send(p.trim().parse().unwrap()).ok();
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("child printed no port");
    let url = format!("http://127.0.0.1:{port}");

    const N: usize = 2000;
    let mut held = Vec::new();
    for eio in [EioVersion::V4, EioVersion::V3] {
        let cfg = config(eio, "/");
        // Warm up allocator and runtime.
        let warm = Connection::connect(&url, &cfg).await.unwrap();
        warm.close().await;
        let rss0 = vm_rss_kib();
        let mut conns = Vec::with_capacity(N);
        for _ in 0..N {
            conns.push(Connection::connect(&url, &cfg).await.unwrap());
        }
        // Let each connection take its first frames (welcome, ping) as an idle client would.
        for c in conns.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_millis(1), c.recv()).await;
        }
        let rss1 = vm_rss_kib();
        let per = (rss1.saturating_sub(rss0)) as f64 * 1024.0 / N as f64;
        println!(
            "EIO{eio}: {N} idle connections: RSS {rss0} KiB -> {rss1} KiB, {per:.0} bytes \
             ({:.1} KiB) per connection; size_of::<Connection>() = {}",
            per / 1024.0,
            std::mem::size_of::<Connection>()
        );
        // Kept open during the next round, so that its allocations are not reused.
        held.push(conns);
    }
    for c in held.into_iter().flatten() {
        c.vanish();
    }
    drop(child.stdin.take());
    let _ = child.wait();
    reader.join().unwrap();
}
