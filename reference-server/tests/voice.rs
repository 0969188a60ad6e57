//! The voice dialect (seed 003) over real sockets on loopback: a small signed-frame client
//! (tokio-tungstenite + the php-json signature) for the HTTP API, the token, the signature
//! checks, rooms with seats, gifts, calls, the heartbeat close and the one-member exit relay
//! with its fail-over, and each voice fault switch.
//!
//! Recipients are checked both ways: after the expected frames, a quiet period must bring
//! nothing else.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reference_server::faults::Fault;
use reference_server::fixtures::Fixtures;
use reference_server::{voice, RunningServer, ServerConfig};
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(250);
const FAILOVER: Duration = Duration::from_millis(400);

/// A voice server for 8 users in rooms of 4 (`room1`, `room2`), with a 400 ms fail-over and
/// a heartbeat long enough not to matter unless asked.
async fn server(faults: Vec<Fault>) -> (RunningServer, Fixtures) {
    server_with(faults, Duration::from_secs(15), Duration::from_secs(5)).await
}

async fn server_with(
    faults: Vec<Fault>,
    ping_interval: Duration,
    ping_timeout: Duration,
) -> (RunningServer, Fixtures) {
    let fixtures = Fixtures::generate(8, 4);
    let mut config = ServerConfig::new(
        voice::DIALECT,
        "127.0.0.1:0".parse().unwrap(),
        fixtures.clone(),
    );
    config.faults = faults;
    config.ping_interval = ping_interval;
    config.ping_timeout = ping_timeout;
    config.exit_report_timeout = FAILOVER;
    (reference_server::start(config).await.unwrap(), fixtures)
}

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    sid: String,
    token: String,
    user_id: u64,
}

impl Client {
    async fn connect(server: &RunningServer, fixtures: &Fixtures, user: usize) -> Client {
        let sid = fixtures.users[user].token.clone();
        let url = format!("ws://{}/?sid={sid}", server.local_addr());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = next_frame(&mut ws, WAIT).await.expect("create_token");
        assert_eq!(first["action"], "create_token", "{first}");
        let token = first["online_token"].as_str().expect("a token").to_owned();
        Client {
            ws,
            sid,
            token,
            user_id: fixtures.users[user].user_id,
        }
    }

    /// The signed frame of `action` with `fields`.
    fn frame(&self, action: &str, fields: Value) -> String {
        let mut m: Map<String, Value> = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("action".into(), json!(action));
        m.entry("sid").or_insert(json!(self.sid));
        m.entry("online_token").or_insert(json!(self.token));
        m.entry("timestamp").or_insert(json!(1_700_000_000));
        let sign = php_json::sign_json(&m, "sign");
        m.entry("sign").or_insert(json!(sign));
        Value::Object(m).to_string()
    }

    async fn send(&mut self, action: &str, fields: Value) {
        let frame = self.frame(action, fields);
        self.ws.send(Message::text(frame)).await.unwrap();
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    async fn expect(&mut self, action: &str) -> Value {
        let got = next_frame(&mut self.ws, WAIT)
            .await
            .unwrap_or_else(|| panic!("no {action} frame"));
        assert_eq!(got["action"], action, "{got}");
        got
    }

    /// Everything that arrives within [`QUIET`].
    async fn drain(&mut self) -> Vec<Value> {
        let mut got = Vec::new();
        while let Some(v) = next_frame(&mut self.ws, QUIET).await {
            got.push(v);
        }
        got
    }

    async fn silent(&mut self) {
        let got = self.drain().await;
        assert!(got.is_empty(), "user {} got {got:?}", self.user_id);
    }

    async fn enter(&mut self, channel: &str) -> Value {
        self.send("enter_room", json!({"channel_name": channel}))
            .await;
        self.expect("enter_room").await
    }
}

/// The next text frame as JSON (`None`: nothing within `within`, or the connection ended).
async fn next_frame(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
    within: Duration,
) -> Option<Value> {
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// Clients for users `0..n`, all in `room1` (each one's entry seen by those already in).
async fn room_of(server: &RunningServer, fixtures: &Fixtures, n: usize) -> Vec<Client> {
    let mut cs = Vec::new();
    for i in 0..n {
        let mut c = Client::connect(server, fixtures, i).await;
        let own = c.enter("room1").await;
        assert_eq!(own["user_id"], c.user_id);
        for earlier in cs.iter_mut() {
            let seen = Client::expect(earlier, "enter_room").await;
            assert_eq!(seen, own);
        }
        cs.push(c);
    }
    cs
}

async fn http_get(server: &RunningServer, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: voice.test\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn end_point_and_users_me() {
    let (server, fixtures) = server(vec![]).await;
    let (status, body) = http_get(&server, "/api/websocket/end_point").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"error_code": 0, "error_reason": "", "end_point": "ws://voice.test", "ping_interval": 15})
    );
    let sid = &fixtures.users[0].token;
    let (status, body) = http_get(&server, &format!("/api/users/me?sid={sid}")).await;
    assert_eq!((status, &body["current_room_id"]), (200, &json!("")));
    let (status, _) = http_get(&server, "/api/users/me?sid=nope").await;
    assert_eq!(status, 401);

    let mut c = Client::connect(&server, &fixtures, 0).await;
    c.enter("room1").await;
    let (_, body) = http_get(&server, &format!("/api/users/me?sid={sid}")).await;
    assert_eq!(body["current_room_id"], "room1");
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_sid_gets_no_websocket() {
    let (server, _) = server(vec![]).await;
    let url = format!("ws://{}/?sid=unknown", server.local_addr());
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn rejected_frames_have_no_effect() {
    let (server, fixtures) = server(vec![]).await;
    let mut cs = room_of(&server, &fixtures, 2).await;
    let content = json!({"content": "hello"});

    let mut bad = cs[0].frame("send_topic_msg", content.clone());
    bad = bad.replace("hello", "hellO");
    cs[0].send_raw(&bad).await;
    let e = cs[0].expect("send_topic_msg").await;
    assert_eq!(e["error_code"], 401, "{e}");

    let stale = json!({"content": "hello", "online_token": "o-stale"});
    cs[0].send("send_topic_msg", stale).await;
    assert_eq!(cs[0].expect("send_topic_msg").await["error_code"], 403);

    let other_sid = json!({"content": "hello", "sid": fixtures.users[1].token});
    cs[0].send("send_topic_msg", other_sid).await;
    assert_eq!(cs[0].expect("send_topic_msg").await["error_code"], 402);

    cs[0].send("fly", json!({})).await;
    assert_eq!(cs[0].expect("fly").await["error_code"], 404);

    for hostile in [
        "not json",
        "[1,2]",
        r#"{"action":5}"#,
        r#"{"__proto__":{"action":"up"}}"#,
    ] {
        cs[0].send_raw(hostile).await;
        let e = cs[0].expect("error").await;
        assert_eq!(e["error_code"], 400, "{hostile}: {e}");
    }
    cs[1].silent().await;

    // The same frame, correctly signed, is acted on.
    cs[0].send("send_topic_msg", content).await;
    let got = cs[1].expect("send_topic_msg").await;
    assert_eq!(got["content"], "hello");
    assert_eq!(got["user_id"], cs[0].user_id);
    assert_eq!(got["channel_name"], "room1");
    cs[0].silent().await;
}

#[tokio::test]
async fn seats_gifts_and_calls() {
    let (server, fixtures) = server(vec![]).await;
    let mut cs = room_of(&server, &fixtures, 3).await;

    cs[0].send("up", json!({"room_seat_id": 2})).await;
    for i in [1, 2] {
        let up = cs[i].expect("up").await;
        assert_eq!(up["currenr_room_seat_id"], 2);
        assert_eq!(up["user_id"], cs[0].user_id);
    }
    cs[0].silent().await;
    cs[1].send("up", json!({"room_seat_id": 2})).await;
    assert_eq!(cs[1].expect("up").await["error_code"], 409);
    cs[1].send("up", json!({"room_seat_id": 9})).await;
    assert_eq!(cs[1].expect("up").await["error_code"], 408);

    // bc reaches the room (not the sender), ptp the receiver only.
    let gift = json!({"id": 7, "name": "rose", "num": 1});
    let bc = json!({"receiver_id": cs[1].user_id, "notify_type": "bc", "gift": gift});
    cs[0].send("send_gift", bc).await;
    for i in [1, 2] {
        let g = cs[i].expect("send_gift").await;
        assert_eq!(g["notify_type"], "bc");
        assert_eq!(g["sender_room_seat_id"], 2);
        assert_eq!(g["gift"]["id"], 7);
    }
    let ptp = json!({"receiver_id": cs[2].user_id, "notify_type": "ptp", "gift": gift});
    cs[0].send("send_gift", ptp).await;
    assert_eq!(cs[2].expect("send_gift").await["notify_type"], "ptp");
    cs[0].silent().await;
    cs[1].silent().await;

    cs[0].send("down", json!({})).await;
    for i in [1, 2] {
        assert_eq!(cs[i].expect("down").await["currenr_room_seat_id"], 2);
    }
    // The seat is free again.
    cs[1].send("up", json!({"room_seat_id": 2})).await;
    cs[0].expect("up").await;
    cs[2].expect("up").await;

    let callee = cs[2].user_id;
    cs[0].send("call", json!({"receiver_id": callee})).await;
    assert_eq!(cs[2].expect("call").await["user_id"], cs[0].user_id);
    cs[0].send("hang_up", json!({})).await;
    let h = cs[2].expect("hang_up").await;
    assert_eq!(h["user_id"], cs[0].user_id);
    assert_eq!(h["receiver_id"], cs[2].user_id);
    cs[0].send("hang_up", json!({})).await;
    assert_eq!(cs[0].expect("hang_up").await["error_code"], 413);
    for c in cs.iter_mut() {
        c.silent().await;
    }
}

/// Who of `cs` got an `exit_room` within the quiet period (and nothing else).
async fn told(cs: &mut [Client]) -> Vec<usize> {
    let mut who = Vec::new();
    for (i, c) in cs.iter_mut().enumerate() {
        for f in c.drain().await {
            assert_eq!(f["action"], "exit_room", "{f}");
            who.push(i);
        }
    }
    who
}

#[tokio::test]
async fn a_departure_is_told_to_exactly_one_member_who_reports_it() {
    let (server, fixtures) = server(vec![]).await;
    let mut cs = room_of(&server, &fixtures, 4).await;
    let mut leaver = cs.remove(0);
    leaver.send("up", json!({"room_seat_id": 3})).await;
    for c in cs.iter_mut() {
        c.expect("up").await;
    }
    let sid = leaver.sid.clone();
    drop(leaver);
    // Read well within the fail-over time: the notice is on its way at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut first = None;
    for (i, c) in cs.iter_mut().enumerate() {
        if let Some(f) = next_frame(&mut c.ws, Duration::from_millis(50)).await {
            assert!(first.is_none(), "a second member told at once");
            assert_eq!(f["action"], "exit_room");
            assert_eq!(f["user_id"], 1);
            assert_eq!(f["channel_name"], "room1");
            assert_eq!(
                f["room_seat"],
                json!({"id": 3, "status": 0, "microphone": 0})
            );
            first = Some(i);
        }
    }
    let b = first.expect("one member told");
    cs[b].send("exit_room_report", json!({"user_id": 1})).await;
    tokio::time::sleep(FAILOVER * 2).await;
    assert_eq!(
        told(&mut cs).await,
        Vec::<usize>::new(),
        "reported: nobody else"
    );
    let (_, me) = http_get(&server, &format!("/api/users/me?sid={sid}")).await;
    assert_eq!(me["current_room_id"], "");
    // The seat is free.
    cs[0].send("up", json!({"room_seat_id": 3})).await;
    assert!(cs[1].expect("up").await.get("error_code").is_none());
}

#[tokio::test]
async fn without_a_report_the_next_member_is_told() {
    let (server, fixtures) = server(vec![]).await;
    let mut cs = room_of(&server, &fixtures, 3).await;
    let callee = cs[2].user_id;
    cs[0].send("call", json!({"receiver_id": callee})).await;
    cs[2].expect("call").await;
    drop(cs.remove(0));
    let h = cs[1].expect("hang_up").await;
    assert_eq!(h["user_id"], 1);
    // One member now, the other after the fail-over time, then nobody.
    let mut who = told(&mut cs).await;
    tokio::time::sleep(FAILOVER).await;
    who.extend(told(&mut cs).await);
    who.sort();
    assert_eq!(who, vec![0, 1]);
    tokio::time::sleep(FAILOVER * 2).await;
    assert!(told(&mut cs).await.is_empty());
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_a_pinging_one_is_not() {
    let (server, fixtures) = server_with(
        vec![],
        Duration::from_millis(200),
        Duration::from_millis(200),
    )
    .await;
    let (_, ep) = http_get(&server, "/api/websocket/end_point").await;
    assert_eq!(ep["ping_interval"], 0.2);
    let mut silent = Client::connect(&server, &fixtures, 0).await;
    let mut pinging = Client::connect(&server, &fixtures, 1).await;
    let closed = async {
        loop {
            match silent.ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    };
    let pings = async {
        loop {
            pinging.send("ping", json!({})).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = closed => {}
        _ = pings => unreachable!(),
        _ = tokio::time::sleep(WAIT) => panic!("the silent client is still open"),
    }
    // The pinging one was open all along, and still works.
    pinging
        .send("enter_room", json!({"channel_name": "x"}))
        .await;
    pinging.expect("enter_room").await;
}

#[tokio::test]
async fn fault_exit_to_everyone_and_to_nobody() {
    for (fault, expected) in [
        (Fault::VoiceExitToEveryone, vec![0, 1, 2]),
        (Fault::VoiceExitToNobody, vec![]),
    ] {
        let (server, fixtures) = server(vec![fault]).await;
        let mut cs = room_of(&server, &fixtures, 4).await;
        drop(cs.remove(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(told(&mut cs).await, expected, "{fault}");
    }
}

#[tokio::test]
async fn fault_no_failover() {
    let (server, fixtures) = server(vec![Fault::VoiceNoFailover]).await;
    let mut cs = room_of(&server, &fixtures, 3).await;
    drop(cs.remove(0));
    assert_eq!(told(&mut cs).await.len(), 1);
    tokio::time::sleep(FAILOVER * 2).await;
    assert!(told(&mut cs).await.is_empty());
}

#[tokio::test]
async fn fault_sign_unchecked_and_seat_kept() {
    let (server, fixtures) = server(vec![Fault::VoiceSignUnchecked, Fault::VoiceSeatKept]).await;
    let mut cs = room_of(&server, &fixtures, 2).await;
    let bad = cs[0]
        .frame("up", json!({"room_seat_id": 1}))
        .replace("\"sign\":\"", "\"sign\":\"0");
    cs[0].send_raw(&bad).await;
    assert_eq!(cs[1].expect("up").await["currenr_room_seat_id"], 1);
    cs[0].send("down", json!({})).await;
    cs[1].expect("down").await;
    cs[1].send("up", json!({"room_seat_id": 1})).await;
    assert_eq!(
        cs[1].expect("up").await["error_code"],
        409,
        "the seat was kept"
    );
}

#[tokio::test]
async fn fault_never_timeout_keeps_a_silent_connection() {
    let (server, fixtures) = server_with(
        vec![Fault::NeverTimeout],
        Duration::from_millis(100),
        Duration::from_millis(100),
    )
    .await;
    let mut c = Client::connect(&server, &fixtures, 0).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.send("enter_room", json!({"channel_name": "x"})).await;
    c.expect("enter_room").await;
}

/// The called member's departure ends the call too: its caller gets `hang_up` naming it
/// (unless `voice-hang-up-caller-only`); a departed user's users/me names no room (unless
/// `voice-room-remembered`).
#[tokio::test]
async fn a_called_members_departure_tells_the_caller_and_empties_its_room() {
    for faults in [
        vec![],
        vec![Fault::VoiceHangUpCallerOnly, Fault::VoiceRoomRemembered],
    ] {
        let healthy = faults.is_empty();
        let (server, fixtures) = server(faults).await;
        let mut cs = room_of(&server, &fixtures, 3).await;
        let callee = cs[1].user_id;
        cs[0].send("call", json!({"receiver_id": callee})).await;
        cs[1].expect("call").await;
        let mut called = cs.remove(1);
        let sid = called.sid.clone();
        called.silent().await;
        drop(called);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let frames = cs[0].drain().await;
        let hang_ups: Vec<_> = frames.iter().filter(|f| f["action"] == "hang_up").collect();
        if healthy {
            assert_eq!(hang_ups.len(), 1, "{frames:?}");
            assert_eq!(hang_ups[0]["user_id"], callee);
            assert_eq!(hang_ups[0]["receiver_id"], cs[0].user_id);
        } else {
            assert!(hang_ups.is_empty(), "{frames:?}");
        }
        let (_, me) = http_get(&server, &format!("/api/users/me?sid={sid}")).await;
        let expected = if healthy { "" } else { "room1" };
        assert_eq!(me["current_room_id"], expected);
    }
}
