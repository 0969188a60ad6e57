//! Heartbeats in the lobby dialect, with raw websocket clients: a member that stops answering
//! pings (EIO4) or stops sending them (EIO3) is closed within pingInterval + pingTimeout (+ grace)
//! and announced to the rest of its room (`otherLeftRoom`, then `otherLogedout`); a healthy client
//! under the same settings stays. With the `never-timeout` fault, the dead client stays too.

mod common;

use std::time::{Duration, Instant};

use common::{RawWs, TestServer, WAIT};
use futures_util::{SinkExt as _, StreamExt as _};
use reference_server::faults::Fault;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on a busy 2-core machine.
const GRACE: Duration = Duration::from_millis(700);
/// How often an EIO3 client pings (it must, at least every pingInterval).
const KEEPALIVE: Duration = Duration::from_millis(150);

fn bound() -> Duration {
    INTERVAL + TIMEOUT + GRACE
}

#[derive(Debug, PartialEq)]
enum Got {
    Event(String, Value),
    Closed,
    Timeout,
}

/// A raw client that keeps its session alive while it reads: answers server pings (EIO4) or
/// sends its own every [`KEEPALIVE`] (EIO3).
struct Peer {
    ws: RawWs,
    open: Value,
    last_ping: Instant,
}

impl Peer {
    async fn connect(server: &TestServer, eio: u8) -> Peer {
        let (mut ws, open) = RawWs::open(&server.ws_url(eio), eio).await;
        if eio == 4 {
            ws.send("40").await;
            let connect = ws.next_text(WAIT).await.unwrap();
            assert!(connect.starts_with("40{"), "{connect}");
        } else {
            assert_eq!(ws.next_text(WAIT).await.as_deref(), Some("40"));
        }
        Peer {
            ws,
            open,
            last_ping: Instant::now(),
        }
    }

    async fn emit(&mut self, event: &str, args: &[Value]) {
        let mut all = vec![json!(event)];
        all.extend_from_slice(args);
        self.ws.send(&format!("42{}", Value::Array(all))).await;
    }

    async fn read(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Got::Timeout;
            }
            if self.ws.eio == 3 && now.duration_since(self.last_ping) >= KEEPALIVE {
                if !self.ws.try_send("2").await {
                    return Got::Closed;
                }
                self.last_ping = now;
            }
            let mut slice = deadline - now;
            if self.ws.eio == 3 {
                slice = slice.min(KEEPALIVE.saturating_sub(now.duration_since(self.last_ping)));
            }
            let msg = match tokio::time::timeout(slice, self.ws.ws.next()).await {
                Err(_) => continue,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Got::Closed
                }
                Ok(Some(Ok(msg))) => msg,
            };
            let Message::Text(text) = msg else { continue };
            match text.as_str() {
                "2" if self.ws.eio == 4 => {
                    if !self.ws.try_send("3").await {
                        return Got::Closed;
                    }
                }
                "1" => return Got::Closed,
                other => {
                    if let Some(json) = other.strip_prefix("42") {
                        let mut v: Vec<Value> = serde_json::from_str(json).unwrap();
                        let data = if v.len() > 1 {
                            v.remove(1)
                        } else {
                            Value::Null
                        };
                        return Got::Event(v[0].as_str().unwrap().to_string(), data);
                    }
                }
            }
        }
    }

    async fn expect(&mut self, event: &str) -> Value {
        match self.read(WAIT).await {
            Got::Event(name, data) if name == event => data,
            other => panic!("expected {event}, got {other:?}"),
        }
    }
}

/// Reads raw frames without answering anything until the server closes the connection; the
/// time it took, or `None` if it is still open after `limit`.
async fn closed_within(ws: &mut RawWs, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    tokio::time::timeout(limit, async {
        while let Some(Ok(msg)) = ws.ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

/// `healthy` and `dead` logged in and members of room `hb` (in that order).
async fn room_of_two(server: &TestServer, eio: u8) -> (Peer, Peer) {
    let mut healthy = Peer::connect(server, eio).await;
    healthy.emit("login", &[json!("healthy")]).await;
    healthy.expect("logedin").await;
    let mut dead = Peer::connect(server, eio).await;
    dead.emit("login", &[json!("dead")]).await;
    dead.expect("logedin").await;
    assert_eq!(healthy.expect("otherLogedin").await["username"], "dead");
    healthy.emit("joinRoom", &[json!("hb"), json!(2)]).await;
    healthy.expect("joinedRoom").await;
    dead.emit("joinRoom", &[json!("hb")]).await;
    assert_eq!(
        dead.expect("joinedRoom").await["userlist"],
        json!(["healthy", "dead"])
    );
    healthy.expect("otherJoinedRoom").await;
    (healthy, dead)
}

fn dead_member_is_closed_and_announced(eio: u8) {
    let server = TestServer::lobby_with(INTERVAL, TIMEOUT, vec![]);
    server.block_on(async {
        let (mut healthy, mut dead) = room_of_two(&server, eio).await;
        assert_eq!(dead.open["pingInterval"], 300);
        assert_eq!(dead.open["pingTimeout"], 200);
        // From now on `dead` neither reads nor writes.
        let silent_since = Instant::now();
        let left = healthy.read(bound() + WAIT).await;
        let took = silent_since.elapsed();
        eprintln!("EIO{eio}: silent client announced after {took:?}");
        assert_eq!(
            left,
            Got::Event(
                "otherLeftRoom".into(),
                json!({"username": "dead", "roomname": "hb", "userlist": ["healthy"]})
            ),
            "EIO{eio}"
        );
        assert!(
            took <= bound(),
            "EIO{eio}: dead client announced after {took:?}, more than {:?}",
            bound()
        );
        assert!(
            took >= Duration::from_millis(100),
            "EIO{eio}: closed too early ({took:?})"
        );
        assert_eq!(
            healthy.read(WAIT).await,
            Got::Event(
                "otherLogedout".into(),
                json!({"username": "dead", "numusers": 1})
            )
        );
        assert!(
            closed_within(&mut dead.ws, WAIT).await.is_some(),
            "EIO{eio}: the dead client's connection is closed"
        );

        // The healthy client outlives several heartbeat periods and is still served.
        assert_eq!(healthy.read(4 * (INTERVAL + TIMEOUT)).await, Got::Timeout);
        healthy
            .emit("roomMessage", &[json!("hb"), json!("alone")])
            .await;
        assert_eq!(healthy.expect("gotRoomMessage").await["content"], "alone");
        // The name is free again.
        let mut again = Peer::connect(&server, eio).await;
        again.emit("login", &[json!("dead")]).await;
        assert_eq!(
            again.expect("logedin").await,
            json!({"username": "dead", "numusers": 2})
        );
    });
}

#[test]
fn eio4_client_that_stops_answering_pings_is_closed_and_announced() {
    dead_member_is_closed_and_announced(4);
}

#[test]
fn eio3_client_that_stops_pinging_is_closed_and_announced() {
    dead_member_is_closed_and_announced(3);
}

/// `never-timeout`: the same dead client is still connected and a member well after the
/// heartbeat window; it is only announced when it really closes.
fn never_timeout_keeps_dead_clients(eio: u8) {
    let server = TestServer::lobby_with(INTERVAL, TIMEOUT, vec![Fault::NeverTimeout]);
    server.block_on(async {
        let (mut healthy, mut dead) = room_of_two(&server, eio).await;
        // The fault looks healthy: it advertises the configured pingTimeout (a relay rewrites
        // the OPEN packet) while engineioxide enforces a day.
        assert_eq!(dead.open["pingInterval"], 300);
        assert_eq!(dead.open["pingTimeout"], TIMEOUT.as_millis() as u64);

        let window = bound() + INTERVAL + TIMEOUT;
        assert_eq!(
            healthy.read(window).await,
            Got::Timeout,
            "EIO{eio}: the dead client was dropped despite never-timeout"
        );
        // Still connected and still a member: it can talk to the room.
        dead.emit("roomMessage", &[json!("hb"), json!("I am back")])
            .await;
        assert_eq!(dead.expect("gotRoomMessage").await["content"], "I am back");
        assert_eq!(healthy.expect("gotRoomMessage").await["username"], "dead");

        // A real close is still announced.
        dead.ws.ws.close(None).await.ok();
        assert_eq!(healthy.expect("otherLeftRoom").await["username"], "dead");
        assert_eq!(
            healthy.expect("otherLogedout").await,
            json!({"username": "dead", "numusers": 1})
        );
    });
}

#[test]
fn never_timeout_fault_keeps_a_silent_eio4_client() {
    never_timeout_keeps_dead_clients(4);
}

#[test]
fn never_timeout_fault_keeps_a_silent_eio3_client() {
    never_timeout_keeps_dead_clients(3);
}

/// The fault applies to every dialect: a dorm server keeps a silent client too.
#[test]
fn never_timeout_fault_applies_to_dorm_as_well() {
    let mut config = reference_server::ServerConfig::new(
        reference_server::dorm::DIALECT,
        "127.0.0.1:0".parse().unwrap(),
        reference_server::fixtures::Fixtures::generate(2, 2),
    );
    config.ping_interval = INTERVAL;
    config.ping_timeout = TIMEOUT;
    config.faults = vec![Fault::NeverTimeout];
    let server = TestServer::start(config);
    server.block_on(async {
        let (mut ws, _) = RawWs::open(&server.ws_url(4), 4).await;
        assert_eq!(closed_within(&mut ws, bound()).await, None);
        ws.ws.send(Message::text("3")).await.expect("still open");
    });
}
