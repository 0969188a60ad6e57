//! The plain WebSocket transport against a small tokio-tungstenite server on loopback: the
//! server hands out a token in its first frame, echoes every event, and closes a client whose
//! heartbeat stops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomrig::transport::framing::{JsonFraming, Learn};
use roomrig::transport::{
    websocket, AppHeartbeat, Client, CloseReason, Heartbeat, Incoming, RawEvent, RawIncoming,
    Transport, TransportConfig,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
use tokio_tungstenite::tungstenite::Message;

const INTERVAL: Duration = Duration::from_millis(100);
/// The server closes a client that sent no heartbeat for this long (generous: a loaded test
/// machine must not make a live client look silent).
const SILENCE: Duration = Duration::from_millis(1500);

/// What the server saw of one client.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Frame(Value),
    /// The client closed with this code.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Reset,
    /// The server closed the client for its silence.
    ClosedSilent,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn pings(&self) -> usize {
        self.all()
            .iter()
            .filter(|s| matches!(s, Seen::Frame(f) if f["action"] == "ping"))
            .count()
    }

    /// Waits (5 s at most) for the client's end.
    async fn ending(&self) -> Seen {
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(s) = self
                .all()
                .into_iter()
                .find(|s| !matches!(s, Seen::Frame(_)))
            {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "no end seen: {:?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn start_server() -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Log::default();
    let server_log = log.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            n += 1;
            let log = server_log.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let hello = json!({"action": "create_token", "online_token": format!("tok-{n}")});
                ws.send(Message::text(hello.to_string())).await.unwrap();
                let push = |s| log.0.lock().unwrap().push(s);
                let mut silent_until = tokio::time::Instant::now() + SILENCE;
                loop {
                    let msg = tokio::select! {
                        m = ws.next() => m,
                        _ = tokio::time::sleep_until(silent_until) => {
                            push(Seen::ClosedSilent);
                            let close = CloseFrame { code: CloseCode::Library(4000), reason: "silent".into() };
                            let _ = ws.close(Some(close)).await;
                            return;
                        }
                    };
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            let frame: Value = serde_json::from_str(&t).unwrap();
                            push(Seen::Frame(frame.clone()));
                            if frame["action"] == "ping" {
                                silent_until = tokio::time::Instant::now() + SILENCE;
                            } else {
                                let echo = json!({"action": "echo", "got": frame});
                                ws.send(Message::text(echo.to_string())).await.unwrap();
                            }
                        }
                        Some(Ok(Message::Close(f))) => {
                            push(Seen::Closed(f.map(|f| u16::from(f.code))));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            push(Seen::Reset);
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, log)
}

fn config() -> TransportConfig {
    let factory: websocket::FramingFactory = Arc::new(|| {
        let mut f = JsonFraming::new("action");
        f.fixed.insert("sid".into(), json!("s-1"));
        f.learn.push(Learn {
            event: "create_token".into(),
            field: "online_token".into(),
            required: true,
        });
        f.heartbeat = Some(AppHeartbeat {
            event: "ping".into(),
            interval: INTERVAL,
            timeout: SILENCE - INTERVAL,
            answer: None,
        });
        Box::new(f)
    });
    let mut cfg = websocket::Config::new(factory);
    cfg.connect_timeout = Duration::from_secs(5);
    TransportConfig::WebSocket(cfg)
}

async fn next(conn: &mut Client) -> RawIncoming {
    tokio::time::timeout(Duration::from_secs(5), conn.recv_raw())
        .await
        .expect("something within 5 s")
        .expect("recv")
}

async fn next_event(conn: &mut Client) -> RawEvent {
    match next(conn).await {
        RawIncoming::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn connected(addr: SocketAddr) -> Client {
    let mut conn = Client::connect(&format!("ws://{addr}/?sid=s-1"), &config())
        .await
        .expect("connect");
    let first = next_event(&mut conn).await;
    assert_eq!(first.name().as_deref(), Some("create_token"));
    conn
}

#[tokio::test]
async fn token_envelope_echo_and_heartbeat() {
    let (addr, log) = start_server().await;
    let mut conn = connected(addr).await;
    assert_eq!(conn.sid(), "tok-1");
    assert_eq!(conn.socket_id(), None);
    assert_eq!(conn.ping_interval(), INTERVAL);
    assert_eq!(conn.ping_interval() + conn.ping_timeout(), SILENCE);

    conn.send_event(None, "enter_room", &[json!({"channel_name": "c1"})])
        .await
        .unwrap();
    let echo = next_event(&mut conn).await;
    assert_eq!(echo.name().as_deref(), Some("echo"));
    assert_eq!(echo.namespace(), None);
    let Incoming::Event { args, .. } = echo.parse().unwrap() else {
        unreachable!()
    };
    assert_eq!(
        args[0]["got"],
        json!({"action": "enter_room", "channel_name": "c1", "sid": "s-1", "online_token": "tok-1"})
    );

    // Served until the server has seen three heartbeats, each in the envelope.
    while log.pings() < 3 {
        let _ = tokio::time::timeout(INTERVAL, conn.recv_raw()).await;
    }
    assert!(log.all().iter().all(|s| match s {
        Seen::Frame(f) => f["online_token"] == "tok-1",
        _ => false,
    }));
    assert!(conn.heartbeat_stats().pings_sent >= 3);
    let marks = conn.heartbeat_marks();
    assert!(marks.last_ping_sent.is_some());

    // Heartbeat dropped: the server closes the client for its silence.
    conn.set_heartbeat(Heartbeat::Dropped);
    match next(&mut conn).await {
        RawIncoming::Other(Incoming::Closed(CloseReason::WebSocketClose(Some(4000)))) => {}
        other => panic!("expected the server's close, got {other:?}"),
    }
    assert_eq!(log.ending().await, Seen::ClosedSilent);
    assert!(conn.is_closed());
}

#[tokio::test]
async fn vanish_ends_without_a_close_frame() {
    let (addr, log) = start_server().await;
    let conn = connected(addr).await;
    conn.vanish();
    assert_eq!(log.ending().await, Seen::Reset);
}

#[tokio::test]
async fn close_sends_a_normal_close_frame() {
    let (addr, log) = start_server().await;
    let mut conn = connected(addr).await;
    conn.send_raw(r#"{"action":"raw","x":1}"#.to_owned())
        .await
        .unwrap();
    let echo = next_event(&mut conn).await;
    assert_eq!(echo.name().as_deref(), Some("echo"));
    conn.close_in_place().await;
    assert!(conn.is_closed());
    assert_eq!(log.ending().await, Seen::Closed(Some(1000)));
    // The raw frame went out as given: no envelope.
    assert!(log
        .all()
        .contains(&Seen::Frame(json!({"action": "raw", "x": 1}))));
}
