//! `voice` (seed 003): voice rooms over a plain WebSocket carrying one JSON object per frame.
//!
//! - `GET /api/websocket/end_point` names the WebSocket (this server) and the heartbeat
//!   interval; `GET /api/users/me?sid=` says which room the user is in (`current_room_id`,
//!   empty once the user was put out of it: seed §2.2).
//! - `GET /?sid=<sid>` upgrades to the WebSocket (a sid is a user's token). The first frame is
//!   `create_token {online_token}`; every client frame then carries `action, sid,
//!   online_token, timestamp, sign`, `sign` being the md5 of PHP's `json_encode` of the frame
//!   without it, top-level keys sorted (see the `php-json` crate). A frame with a wrong sign, a
//!   sid or token that is not this connection's, an unknown action or a bad argument is
//!   refused with an error frame (`{action, error_code, error_reason}`) and has no effect.
//! - Rooms with seats: `enter_room`, `send_topic_msg`, `send_gift` (`bc` to the room, `ptp` to
//!   the receiver), `up`/`down` (a seat taken or freed), `call`/`hang_up`. Notices go to the
//!   other members; `enter_room` also to the one who entered (its confirmation).
//! - Heartbeat: a connection whose last `ping` is older than pingInterval + pingTimeout (seed:
//!   15 s + 5 s) is closed.
//! - Departure (close, reset, idle timeout): the member leaves its room and its seat is freed;
//!   exactly one remaining member gets `exit_room {user_id, channel_name, room_seat}` and
//!   answers `exit_room_report {user_id}`; without a report within the fail-over time (5 s by
//!   default) the next member is told. A call peer gets `hang_up`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{self, Query};
use axum::http::{header, HeaderMap, Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use php_json::PhpValue;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::faults::FaultSet;
use crate::fixtures::{splitmix64, Fixtures};
use crate::ServerConfig;

/// Seats of a channel that is not a fixture room.
pub const DEFAULT_SEATS: u32 = 8;
/// The longest channel name, text message or gift name accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

/// Error codes of the error frames (the reference server's choice; the seed names none).
pub mod errors {
    pub const NOT_JSON: (u32, &str) = (400, "not a JSON object with a string action");
    pub const BAD_SIGN: (u32, &str) = (401, "bad sign");
    pub const BAD_SID: (u32, &str) = (402, "sid is not this connection's");
    pub const STALE_TOKEN: (u32, &str) = (403, "stale online_token");
    pub const UNKNOWN_ACTION: (u32, &str) = (404, "unknown action");
    pub const BAD_ARGUMENT: (u32, &str) = (405, "bad argument");
    pub const NOT_IN_ROOM: (u32, &str) = (406, "not in a room");
    pub const ALREADY_IN_ROOM: (u32, &str) = (407, "already in a room");
    pub const NO_SUCH_SEAT: (u32, &str) = (408, "no such seat");
    pub const SEAT_TAKEN: (u32, &str) = (409, "seat taken");
    pub const NOT_SEATED: (u32, &str) = (410, "not on a seat");
    pub const ALREADY_SEATED: (u32, &str) = (411, "already on a seat");
    pub const NO_SUCH_USER: (u32, &str) = (412, "no such user in the room");
    pub const NOT_IN_CALL: (u32, &str) = (413, "not in a call");
    pub const BINARY: (u32, &str) = (415, "binary frames are not accepted");
}

type ErrorCode = (u32, &'static str);

/// The voice dialect's entry in [`crate::DIALECTS`].
pub const DIALECT: crate::Dialect = crate::Dialect {
    name: "voice",
    summary: "Voice rooms over plain WebSocket (seed 003): md5-signed JSON frames, seats, gifts, calls, one-member exit relay",
    // Nothing on Socket.IO: everything is in `routes`.
    serve: |_, _, _| {},
    http: crate::Http::Instead(routes),
    heartbeat: HEARTBEAT,
};

/// The seed's heartbeat (§2.1): the client pings every 15 s (the `ping_interval` `end_point`
/// advertises), and a connection without one for 20 s is closed: 5 s past the interval.
pub const HEARTBEAT: crate::Heartbeat = crate::Heartbeat {
    interval: Duration::from_secs(15),
    timeout: Duration::from_secs(5),
};

/// The timing of a voice server.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Advertised by `end_point`: how often a client sends `ping`.
    ping_interval: Duration,
    /// A connection without a `ping` for this long is closed.
    idle: Duration,
    /// How long the member told of a departure has to report it before the next one is told.
    failover: Duration,
}

/// The HTTP and WebSocket routes of the voice dialect.
fn routes(config: &ServerConfig, faults: FaultSet) -> axum::Router {
    let timing = Timing {
        ping_interval: config.ping_interval,
        idle: config.ping_interval + config.ping_timeout,
        failover: config.exit_report_timeout,
    };
    let voice = Arc::new(Voice::new(&config.fixtures, faults, timing));
    axum::Router::new()
        .route("/", axum::routing::get(websocket_or_banner))
        .route("/api/websocket/end_point", axum::routing::get(end_point))
        .route("/api/users/me", axum::routing::get(users_me))
        .with_state(voice)
}

/// A user of the fixtures, as the notices describe it.
struct Profile {
    user_id: u64,
    nickname: String,
    token: String,
}

impl Profile {
    fn sex(&self) -> u64 {
        self.user_id % 2
    }
    fn avatar_url(&self) -> String {
        format!("/avatar/{}.png", self.user_id)
    }
    fn avatar_small_url(&self) -> String {
        format!("/avatar/{}-small.png", self.user_id)
    }
}

/// One open WebSocket.
struct Session {
    user: usize,
    online_token: String,
    out: mpsc::UnboundedSender<Outgoing>,
    channel: Option<String>,
    seat: Option<u32>,
    /// The session this one is in a call with.
    call: Option<u64>,
    /// It made that call (for the `voice-hang-up-caller-only` fault).
    calling: bool,
}

enum Outgoing {
    Frame(String),
}

#[derive(Clone, Copy, Default)]
struct Seat {
    taken_by: Option<u64>,
    microphone: u8,
}

#[derive(Default)]
struct Room {
    /// Sessions, in the order they entered.
    members: Vec<u64>,
    /// Seat `i` has id `i + 1`.
    seats: Vec<Seat>,
}

/// A departure being relayed: who was told, whether the holder reported.
struct Exit {
    id: u64,
    user_id: u64,
    channel: String,
    notice: String,
    told: Vec<u64>,
    reported: bool,
}

#[derive(Default)]
struct Rooms {
    sessions: HashMap<u64, Session>,
    rooms: HashMap<String, Room>,
    exits: Vec<Exit>,
    /// The last room of each departed user (for the `voice-room-remembered` fault).
    remembered: HashMap<usize, String>,
}

struct Voice {
    users: Vec<Profile>,
    by_token: HashMap<String, usize>,
    /// Seats of each fixture room, by its name.
    fixture_seats: HashMap<String, u32>,
    faults: FaultSet,
    timing: Timing,
    next_id: AtomicU64,
    state: Mutex<Rooms>,
}

impl Voice {
    fn new(fixtures: &Fixtures, faults: FaultSet, timing: Timing) -> Voice {
        let users: Vec<Profile> = fixtures
            .users
            .iter()
            .map(|u| Profile {
                user_id: u.user_id,
                nickname: u.username.clone(),
                token: u.token.clone(),
            })
            .collect();
        let by_token = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.token.clone(), i))
            .collect();
        let fixture_seats = fixtures
            .rooms
            .iter()
            .map(|r| (r.room_name.clone(), r.room_size.max(1)))
            .collect();
        Voice {
            users,
            by_token,
            fixture_seats,
            faults,
            timing,
            next_id: AtomicU64::new(1),
            state: Mutex::new(Rooms::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// ---- HTTP ----

async fn end_point(
    extract::State(voice): extract::State<Arc<Voice>>,
    headers: HeaderMap,
) -> Response<Body> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let interval = voice.timing.ping_interval;
    // Seconds, as the seed's 15; a fraction only for the short intervals of tests.
    let ping_interval = if interval.subsec_millis() == 0 {
        json!(interval.as_secs())
    } else {
        json!(interval.as_secs_f64())
    };
    axum::Json(json!({
        "error_code": 0,
        "error_reason": "",
        "end_point": format!("ws://{host}"),
        "ping_interval": ping_interval,
    }))
    .into_response()
}

async fn users_me(
    extract::State(voice): extract::State<Arc<Voice>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response<Body> {
    let Some(&user) = query.get("sid").and_then(|sid| voice.by_token.get(sid)) else {
        let body = json!({"error_code": 401, "error_reason": "unknown sid"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    };
    let state = voice.lock();
    let room = state
        .sessions
        .values()
        .filter(|s| s.user == user)
        .find_map(|s| s.channel.clone())
        .or_else(|| state.remembered.get(&user).cloned())
        .unwrap_or_default();
    axum::Json(json!({
        "error_code": 0,
        "error_reason": "",
        "user_id": voice.users[user].user_id,
        "current_room_id": room,
    }))
    .into_response()
}

/// `GET /`: the WebSocket for a known `sid`, else a line naming the server.
async fn websocket_or_banner(
    extract::State(voice): extract::State<Arc<Voice>>,
    Query(query): Query<HashMap<String, String>>,
    mut req: Request<Body>,
) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return "roomrig reference server, dialect voice\n".into_response();
    }
    let Some(&user) = query.get("sid").and_then(|sid| voice.by_token.get(sid)) else {
        return (StatusCode::UNAUTHORIZED, "unknown sid\n").into_response();
    };
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key\n").into_response();
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("voice upgrade failed: {e}");
                return;
            }
        };
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(crate::MAX_PAYLOAD_BYTES))
            .max_frame_size(Some(crate::MAX_PAYLOAD_BYTES));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        run_session(voice, user, ws).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_default()
}

// ---- one connection ----

async fn run_session<S>(voice: Arc<Voice>, user: usize, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let id = voice.next_id.fetch_add(1, Ordering::Relaxed);
    let online_token = format!("o{:016x}", splitmix64(id ^ 0x766f_6963_6500_0000));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hello = json!({"action": "create_token", "online_token": online_token}).to_string();
    voice.lock().sessions.insert(
        id,
        Session {
            user,
            online_token: online_token.clone(),
            out: tx,
            channel: None,
            seat: None,
            call: None,
            calling: false,
        },
    );
    let mut last_ping = Instant::now();
    // voice-idle-never: the idle timer waits for a first ping.
    let mut pinged = false;
    let mut ok = ws.send(Message::text(hello)).await.is_ok();
    while ok {
        let idle_deadline = last_ping + voice.timing.idle;
        let idle_timer = !voice.faults.never_timeout && (pinged || !voice.faults.voice_idle_never);
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if voice.on_frame(id, text.as_str()) == Handled::Heartbeat {
                        last_ping = Instant::now();
                        pinged = true;
                    }
                }
                Some(Ok(Message::Binary(_))) => voice.send_error(id, "error", errors::BINARY),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            Some(Outgoing::Frame(frame)) = rx.recv() => {
                ok = ws.send(Message::text(frame)).await.is_ok();
            }
            _ = tokio::time::sleep_until(idle_deadline), if idle_timer => {
                let close = CloseFrame {
                    code: CloseCode::Away,
                    reason: "no heartbeat".into(),
                };
                // The close handshake is not waited for: the client is presumed gone.
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(close))).await;
                break;
            }
        }
    }
    voice.depart(id);
}

#[derive(Debug, PartialEq, Eq)]
enum Handled {
    Heartbeat,
    Other,
}

/// A string field of a decoded frame.
fn text_of<'a>(frame: &'a PhpValue, name: &str) -> Option<&'a str> {
    match frame.get(name) {
        Some(PhpValue::Str(s)) => Some(s),
        _ => None,
    }
}

/// An integer field (or an integer written as a string, as PHP clients do).
fn int_of(frame: &PhpValue, name: &str) -> Option<u64> {
    match frame.get(name) {
        Some(PhpValue::Int(i)) => u64::try_from(*i).ok(),
        Some(PhpValue::Str(s)) => s.parse().ok(),
        _ => None,
    }
}

impl Voice {
    /// Sends `frame` to session `to`, if it is still open.
    fn send_to(state: &Rooms, to: u64, frame: &str) {
        if let Some(s) = state.sessions.get(&to) {
            let _ = s.out.send(Outgoing::Frame(frame.to_owned()));
        }
    }

    fn send_error(&self, id: u64, action: &str, (code, reason): ErrorCode) {
        let frame = json!({"action": action, "error_code": code, "error_reason": reason});
        Voice::send_to(&self.lock(), id, &frame.to_string());
    }

    /// Checks and acts on one client frame.
    fn on_frame(&self, id: u64, text: &str) -> Handled {
        let frame = match php_json::decode(text) {
            Ok(f @ PhpValue::Array(_)) => f,
            _ => {
                self.send_error(id, "error", errors::NOT_JSON);
                return Handled::Other;
            }
        };
        let Some(action) = text_of(&frame, "action").map(str::to_owned) else {
            self.send_error(id, "error", errors::NOT_JSON);
            return Handled::Other;
        };
        // Errors name the action they refuse, a bounded echo of it.
        let echo: String = action.chars().take(64).collect();
        if !self.faults.voice_sign_unchecked {
            let signed = php_json::sign(&frame, "sign");
            if signed.is_none() || signed.as_deref() != text_of(&frame, "sign") {
                self.send_error(id, &echo, errors::BAD_SIGN);
                return Handled::Other;
            }
        }
        let mut state = self.lock();
        let Some(session) = state.sessions.get(&id) else {
            return Handled::Other;
        };
        let user = &self.users[session.user];
        let reject = |state: &Rooms, e: ErrorCode| {
            let frame = json!({"action": echo, "error_code": e.0, "error_reason": e.1});
            Voice::send_to(state, id, &frame.to_string());
            Handled::Other
        };
        if text_of(&frame, "sid") != Some(user.token.as_str()) {
            return reject(&state, errors::BAD_SID);
        }
        if text_of(&frame, "online_token") != Some(session.online_token.as_str()) {
            return reject(&state, errors::STALE_TOKEN);
        }
        let result = match action.as_str() {
            "ping" => return Handled::Heartbeat,
            "enter_room" => self.enter_room(&mut state, id, &frame),
            "send_topic_msg" => self.topic_message(&state, id, &frame),
            "send_gift" => self.gift(&state, id, &frame),
            "up" => self.seat_up(&mut state, id, &frame),
            "down" => self.seat_down(&mut state, id),
            "call" => self.call(&mut state, id, &frame),
            "hang_up" => self.hang_up(&mut state, id),
            "exit_room_report" => self.exit_report(&mut state, id, &frame),
            _ => Err(errors::UNKNOWN_ACTION),
        };
        match result {
            Ok(()) => Handled::Other,
            Err(e) => reject(&state, e),
        }
    }

    /// The channel `id` is in, checked against a `channel_name` the frame may give.
    fn channel_of(state: &Rooms, id: u64, frame: &PhpValue) -> Result<String, ErrorCode> {
        let channel = state.sessions[&id]
            .channel
            .clone()
            .ok_or(errors::NOT_IN_ROOM)?;
        match frame.get("channel_name") {
            None => Ok(channel),
            Some(PhpValue::Str(c)) if *c == channel => Ok(channel),
            Some(_) => Err(errors::NOT_IN_ROOM),
        }
    }

    /// Sends `frame` to the members of `channel` but `except`.
    fn to_room(state: &Rooms, channel: &str, except: Option<u64>, frame: &Value) {
        let text = frame.to_string();
        if let Some(room) = state.rooms.get(channel) {
            for &m in room.members.iter().filter(|&&m| Some(m) != except) {
                Voice::send_to(state, m, &text);
            }
        }
    }

    fn profile(&self, state: &Rooms, id: u64) -> &Profile {
        &self.users[state.sessions[&id].user]
    }

    fn enter_room(&self, state: &mut Rooms, id: u64, frame: &PhpValue) -> Result<(), ErrorCode> {
        let channel = match text_of(frame, "channel_name") {
            Some(c) if !c.is_empty() && c.len() <= MAX_TEXT_BYTES => c.to_owned(),
            _ => return Err(errors::BAD_ARGUMENT),
        };
        if state.sessions[&id].channel.is_some() {
            return Err(errors::ALREADY_IN_ROOM);
        }
        let seats = self
            .fixture_seats
            .get(&channel)
            .copied()
            .unwrap_or(DEFAULT_SEATS);
        let room = state.rooms.entry(channel.clone()).or_insert_with(|| Room {
            members: Vec::new(),
            seats: vec![Seat::default(); seats as usize],
        });
        room.members.push(id);
        state.sessions.get_mut(&id).expect("session").channel = Some(channel.clone());
        let u = self.profile(state, id);
        let notice = json!({
            "action": "enter_room",
            "user_id": u.user_id,
            "nickname": u.nickname,
            "sex": u.sex(),
            "avatar_url": u.avatar_url(),
            "avatar_small_url": u.avatar_small_url(),
            "channel_name": channel,
        });
        // The one who entered gets it too: its confirmation.
        Voice::to_room(state, &channel, None, &notice);
        Ok(())
    }

    fn topic_message(&self, state: &Rooms, id: u64, frame: &PhpValue) -> Result<(), ErrorCode> {
        let channel = Voice::channel_of(state, id, frame)?;
        let content = match frame.get("content") {
            Some(PhpValue::Str(c)) if c.len() <= MAX_TEXT_BYTES => c.clone(),
            _ => return Err(errors::BAD_ARGUMENT),
        };
        let u = self.profile(state, id);
        let notice = json!({
            "action": "send_topic_msg",
            "user_id": u.user_id,
            "nickname": u.nickname,
            "sex": u.sex(),
            "avatar_url": u.avatar_url(),
            "avatar_small_url": u.avatar_small_url(),
            "content": content,
            "channel_name": channel,
        });
        Voice::to_room(state, &channel, Some(id), &notice);
        Ok(())
    }

    /// The member of `channel` with this user id, if any.
    fn member_by_user_id(&self, state: &Rooms, channel: &str, user_id: u64) -> Option<u64> {
        let room = state.rooms.get(channel)?;
        room.members
            .iter()
            .copied()
            .find(|m| self.profile(state, *m).user_id == user_id)
    }

    fn gift(&self, state: &Rooms, id: u64, frame: &PhpValue) -> Result<(), ErrorCode> {
        let channel = Voice::channel_of(state, id, frame)?;
        let notify_type = match text_of(frame, "notify_type") {
            Some(t @ ("bc" | "ptp")) => t,
            _ => return Err(errors::BAD_ARGUMENT),
        };
        let receiver_id = int_of(frame, "receiver_id").ok_or(errors::BAD_ARGUMENT)?;
        let receiver = self
            .member_by_user_id(state, &channel, receiver_id)
            .ok_or(errors::NO_SUCH_USER)?;
        let gift = match frame.get("gift") {
            Some(g @ PhpValue::Array(_)) => g,
            _ => return Err(errors::BAD_ARGUMENT),
        };
        let gift_id = int_of(gift, "id").ok_or(errors::BAD_ARGUMENT)?;
        let num = int_of(gift, "num").unwrap_or(1);
        let name = match gift.get("name") {
            Some(PhpValue::Str(n)) if n.len() <= MAX_TEXT_BYTES => n.clone(),
            None => format!("gift{gift_id}"),
            Some(_) => return Err(errors::BAD_ARGUMENT),
        };
        let (sender, receiver_u) = (self.profile(state, id), self.profile(state, receiver));
        let seat_of = |s: u64| state.sessions[&s].seat.map_or(0, u64::from);
        let notice = json!({
            "action": "send_gift",
            "sender_room_seat_id": seat_of(id),
            "receiver_room_seat_id": seat_of(receiver),
            "sender_id": sender.user_id,
            "receiver_id": receiver_u.user_id,
            "sender_nickname": sender.nickname,
            "receiver_nickname": receiver_u.nickname,
            "notify_type": notify_type,
            "channel_name": channel,
            "gift": {
                "id": gift_id,
                "name": name,
                "dynamic_image_url": format!("/gift/{gift_id}.gif"),
                "image_url": format!("/gift/{gift_id}.png"),
                "image_big_url": format!("/gift/{gift_id}-big.png"),
                "image_small_url": format!("/gift/{gift_id}-small.png"),
                "num": num,
            },
        });
        if notify_type == "bc" {
            Voice::to_room(state, &channel, Some(id), &notice);
        } else if receiver != id {
            Voice::send_to(state, receiver, &notice.to_string());
        }
        Ok(())
    }

    fn seat_up(&self, state: &mut Rooms, id: u64, frame: &PhpValue) -> Result<(), ErrorCode> {
        let channel = Voice::channel_of(state, id, frame)?;
        let seat_id = int_of(frame, "room_seat_id").ok_or(errors::BAD_ARGUMENT)?;
        if state.sessions[&id].seat.is_some() {
            return Err(errors::ALREADY_SEATED);
        }
        let room = state.rooms.get_mut(&channel).ok_or(errors::NOT_IN_ROOM)?;
        let seat = usize::try_from(seat_id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| room.seats.get_mut(i))
            .ok_or(errors::NO_SUCH_SEAT)?;
        if seat.taken_by.is_some() {
            return Err(errors::SEAT_TAKEN);
        }
        *seat = Seat {
            taken_by: Some(id),
            microphone: 1,
        };
        state.sessions.get_mut(&id).expect("session").seat = Some(seat_id as u32);
        let u = self.profile(state, id);
        let notice = json!({
            "action": "up",
            "user_id": u.user_id,
            "currenr_room_seat_id": seat_id,
            "sex": u.sex(),
            "avatar_url": u.avatar_url(),
            "avatar_small_url": u.avatar_small_url(),
            "nickname": u.nickname,
            "channel_name": channel,
        });
        Voice::to_room(state, &channel, Some(id), &notice);
        Ok(())
    }

    /// Frees the seat of `id`, if it has one; returns its id.
    fn free_seat(&self, state: &mut Rooms, id: u64) -> Option<u32> {
        let session = state.sessions.get_mut(&id)?;
        let seat_id = session.seat.take()?;
        let channel = session.channel.clone()?;
        if self.faults.voice_seat_kept {
            return Some(seat_id);
        }
        if let Some(seat) = state
            .rooms
            .get_mut(&channel)
            .and_then(|r| r.seats.get_mut(seat_id as usize - 1))
        {
            *seat = Seat::default();
        }
        Some(seat_id)
    }

    fn seat_down(&self, state: &mut Rooms, id: u64) -> Result<(), ErrorCode> {
        let channel = state.sessions[&id]
            .channel
            .clone()
            .ok_or(errors::NOT_IN_ROOM)?;
        let seat_id = self.free_seat(state, id).ok_or(errors::NOT_SEATED)?;
        let notice = json!({
            "action": "down",
            "user_id": self.profile(state, id).user_id,
            "currenr_room_seat_id": seat_id,
            "channel_name": channel,
        });
        Voice::to_room(state, &channel, Some(id), &notice);
        Ok(())
    }

    fn call(&self, state: &mut Rooms, id: u64, frame: &PhpValue) -> Result<(), ErrorCode> {
        let channel = Voice::channel_of(state, id, frame)?;
        let receiver_id = int_of(frame, "receiver_id").ok_or(errors::BAD_ARGUMENT)?;
        let peer = self
            .member_by_user_id(state, &channel, receiver_id)
            .filter(|&p| p != id)
            .ok_or(errors::NO_SUCH_USER)?;
        // A new call ends the calls either side was in.
        for side in [id, peer] {
            let _ = self.end_call(state, side);
        }
        let caller = state.sessions.get_mut(&id).expect("session");
        caller.call = Some(peer);
        caller.calling = true;
        let called = state.sessions.get_mut(&peer).expect("session");
        called.call = Some(id);
        called.calling = false;
        let notice = json!({
            "action": "call",
            "user_id": self.profile(state, id).user_id,
            "receiver_id": receiver_id,
            "channel_name": channel,
        });
        Voice::send_to(state, peer, &notice.to_string());
        Ok(())
    }

    /// Ends the call of `id`, telling the peer with `hang_up`.
    fn end_call(&self, state: &mut Rooms, id: u64) -> Result<(), ErrorCode> {
        let peer = state
            .sessions
            .get_mut(&id)
            .and_then(|s| s.call.take())
            .ok_or(errors::NOT_IN_CALL)?;
        if let Some(p) = state.sessions.get_mut(&peer) {
            p.call = None;
        }
        let channel = state.sessions.get(&id).and_then(|s| s.channel.clone());
        let notice = json!({
            "action": "hang_up",
            "user_id": self.profile(state, id).user_id,
            "receiver_id": state.sessions.get(&peer).map(|p| self.users[p.user].user_id),
            "channel_name": channel.unwrap_or_default(),
        });
        Voice::send_to(state, peer, &notice.to_string());
        Ok(())
    }

    fn hang_up(&self, state: &mut Rooms, id: u64) -> Result<(), ErrorCode> {
        self.end_call(state, id)
    }

    fn exit_report(&self, state: &mut Rooms, id: u64, frame: &PhpValue) -> Result<(), ErrorCode> {
        let user_id = int_of(frame, "user_id").ok_or(errors::BAD_ARGUMENT)?;
        // A report for a departure this member was not told of changes nothing.
        if let Some(exit) = state
            .exits
            .iter_mut()
            .find(|e| e.user_id == user_id && e.told.contains(&id))
        {
            exit.reported = true;
        }
        Ok(())
    }

    /// The connection `id` ended: out of its room, seat freed, call peer told, and one
    /// remaining member told of the departure (with fail-over).
    fn depart(self: &Arc<Self>, id: u64) {
        let mut state = self.lock();
        if !state.sessions.contains_key(&id) {
            return;
        }
        let calling = state.sessions.get(&id).is_some_and(|s| s.calling);
        if self.faults.voice_hang_up_caller_only && !calling {
            // The called side's departure: the call ends without a word to the caller.
            if let Some(peer) = state.sessions.get_mut(&id).and_then(|s| s.call.take()) {
                if let Some(p) = state.sessions.get_mut(&peer) {
                    p.call = None;
                }
            }
        }
        let _ = self.end_call(&mut state, id);
        let seat = self.free_seat(&mut state, id);
        let user_id = self.profile(&state, id).user_id;
        let session = state.sessions.remove(&id).expect("session");
        let Some(channel) = session.channel else {
            return;
        };
        if self.faults.voice_room_remembered {
            state.remembered.insert(session.user, channel.clone());
        }
        let Some(room) = state.rooms.get_mut(&channel) else {
            return;
        };
        room.members.retain(|&m| m != id);
        if room.members.is_empty() {
            state.rooms.remove(&channel);
            return;
        }
        let room_seat = seat.map(|s| {
            let now = state.rooms[&channel].seats[s as usize - 1];
            json!({"id": s, "status": u8::from(now.taken_by.is_some()), "microphone": now.microphone})
        });
        let notice = json!({
            "action": "exit_room",
            "user_id": user_id,
            "channel_name": channel,
            "room_seat": room_seat,
        })
        .to_string();
        if self.faults.voice_exit_to_nobody {
            return;
        }
        if self.faults.voice_exit_to_everyone {
            for &m in &state.rooms[&channel].members {
                Voice::send_to(&state, m, &notice);
            }
            return;
        }
        let exit_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        state.exits.push(Exit {
            id: exit_id,
            user_id,
            channel,
            notice,
            told: Vec::new(),
            reported: false,
        });
        if self.tell_next(&mut state, exit_id) && !self.faults.voice_no_failover {
            let voice = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(voice.timing.failover).await;
                    let mut state = voice.lock();
                    if !voice.tell_next(&mut state, exit_id) {
                        return;
                    }
                }
            });
        } else {
            state.exits.retain(|e| e.id != exit_id);
        }
    }

    /// Tells the next member of a departure not reported yet; false when the relay is over
    /// (reported, or nobody left to tell), and then forgets it.
    fn tell_next(&self, state: &mut Rooms, exit_id: u64) -> bool {
        let Some(i) = state.exits.iter().position(|e| e.id == exit_id) else {
            return false;
        };
        let exit = &state.exits[i];
        let next = (!exit.reported)
            .then(|| state.rooms.get(&exit.channel))
            .flatten()
            .and_then(|room| {
                room.members
                    .iter()
                    .copied()
                    .find(|m| !exit.told.contains(m))
            });
        match next {
            Some(m) => {
                Voice::send_to(state, m, &exit.notice);
                state.exits[i].told.push(m);
                true
            }
            None => {
                state.exits.remove(i);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_distinct() {
        let all = [
            errors::NOT_JSON,
            errors::BAD_SIGN,
            errors::BAD_SID,
            errors::STALE_TOKEN,
            errors::UNKNOWN_ACTION,
            errors::BAD_ARGUMENT,
            errors::NOT_IN_ROOM,
            errors::ALREADY_IN_ROOM,
            errors::NO_SUCH_SEAT,
            errors::SEAT_TAKEN,
            errors::NOT_SEATED,
            errors::ALREADY_SEATED,
            errors::NO_SUCH_USER,
            errors::NOT_IN_CALL,
            errors::BINARY,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|b| b.0 != a.0), "{a:?}");
        }
    }
}
