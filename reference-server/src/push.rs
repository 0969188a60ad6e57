//! The `push` dialect (seed 002): a server that pushes events into rooms. Clients log into
//! rooms with a mode; every reply and error arrives on `downmsg` with a code; a backend pushes
//! events over HTTP.
//!
//! Namespace `/`:
//!
//! | when | to whom | `downmsg` |
//! |---|---|---|
//! | connect | the connection | `{code:"2001", msg:"connect success"}` |
//! | `loginRoom {roomId, type}` accepted | the requester | `{code:"2002", msg:"login room (id:<id>) success"}` |
//! | `loginRoom` invalid | the requester | `{code:"2003", msg:<why>}` |
//! | `loginWhenFirst` and another connection is in the room | the requester | `{code:"2004", msg:"your room id(<id>) already exist"}` |
//! | `loginWhenLast` | every earlier connection of the room (they leave it) | `{code:"2005", msg:"you have kicked out room (id<id>)"}` |
//!
//! HTTP: `POST /api/push` with `{"ROOT":{"BODY":{"roomId"?, "eventName", "data"}}}` emits
//! `eventName` with `data` untouched to every connection of the room, or to every connection
//! when `roomId` is absent, and answers `{"ROOT":{"BODY":{"RETURN_CODE":"0000","RETURN_MSG":"ok"}}}`.
//!
//! Decisions where the seed is silent (docs/dialects/push.md):
//! - `type` absent or null is `loginWhenFirst`; another value is 2003. `roomId` is a non-empty
//!   string of at most [`MAX_ROOM_BYTES`] bytes or a non-negative integer; `"456"` and `456`
//!   are one room. Names such as `__proto__` are ordinary rooms.
//! - "The room already has a connection" means a connection other than the asking one; one
//!   connection may be in several rooms; any number of connections per room (the seed's own
//!   server has a bug there, which this one does not copy). A repeated login of a member is
//!   answered 2002 again and changes nothing.
//! - A push without `eventName` is not sent and still answers 0000 (the seed: 0000 whatever
//!   happened). A body that is not JSON, not the envelope, or with a `roomId` / `eventName` of
//!   the wrong type, or an `eventName` Socket.IO reserves, answers HTTP 400; a body over
//!   [`MAX_PUSH_BODY_BYTES`] answers 413. A push into an empty room answers 0000.
//!
//! Handlers run inline (see [`crate::inline`]) and every emit happens under the state's lock,
//! so a kick and the pushes into a room reach every member in one order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use serde_json::{json, Value};
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler as _;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::SocketIo;

use crate::faults::FaultSet;
use crate::fixtures::Fixtures;
use crate::inline::{EventData, Inline};

/// The largest accepted `POST /api/push` body: what it pushes must stay well inside the
/// Socket.IO frame limit ([`crate::MAX_PAYLOAD_BYTES`]) clients were told.
pub const MAX_PUSH_BODY_BYTES: usize = 32 * 1024;

/// Bodies up to this size are read whole before a 413, so that the answer reaches a client
/// still writing its body (answering early and closing resets it); larger ones are cut off.
pub const MAX_READ_BODY_BYTES: usize = 4 << 20;

/// Longest accepted room id, in bytes of UTF-8.
pub const MAX_ROOM_BYTES: usize = 256;

/// The event every reply and error is sent on.
pub const DOWNMSG: &str = "downmsg";

/// The HTTP path of the push API.
pub const PUSH_PATH: &str = "/api/push";

/// Event names Socket.IO reserves: a push cannot use them.
const RESERVED: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// How a login treats a room that already has connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    WhenFirst,
    WhenLast,
    Whenever,
}

struct Conn {
    socket: SocketRef,
    rooms: Vec<Arc<str>>,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<Sid, Conn>,
    /// Room id → members, in login order.
    rooms: HashMap<Arc<str>, Vec<SocketRef>>,
}

impl Registry {
    fn leave(&mut self, room: &Arc<str>, sid: Sid) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.retain(|m| m.id != sid);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
        if let Some(c) = self.conns.get_mut(&sid) {
            c.rooms.retain(|r| r != room);
        }
    }
}

/// Shared state of one push server.
pub struct PushState {
    registry: Mutex<Registry>,
    faults: FaultSet,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn downmsg(code: &str, msg: String) -> Value {
    json!({ "code": code, "msg": msg })
}

/// A room id as text (`"456"` and `456` are one room), or why it is not one.
fn room_id(v: Option<&Value>) -> Result<Arc<str>, &'static str> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ROOM_BYTES => {
            Ok(s.as_str().into())
        }
        Some(Value::String(_)) => Err("roomId must be 1 to 256 bytes"),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string().into()),
        Some(_) => Err("roomId must be a string or a non-negative integer"),
        None => Err("roomId is required"),
    }
}

fn login_mode(v: Option<&Value>) -> Result<Mode, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(Mode::WhenFirst),
        Some(Value::String(s)) if s == "loginWhenFirst" => Ok(Mode::WhenFirst),
        Some(Value::String(s)) if s == "loginWhenLast" => Ok(Mode::WhenLast),
        Some(Value::String(s)) if s == "loginWhenever" => Ok(Mode::Whenever),
        Some(_) => Err("type must be loginWhenFirst, loginWhenLast or loginWhenever"),
    }
}

impl PushState {
    pub fn new(faults: FaultSet) -> PushState {
        PushState {
            registry: Mutex::new(Registry::default()),
            faults,
        }
    }

    fn attach(self: &Arc<Self>, socket: &SocketRef) {
        lock(&self.registry).conns.insert(
            socket.id,
            Conn {
                socket: socket.clone(),
                rooms: Vec::new(),
            },
        );
        let state = Arc::clone(self);
        socket.on(
            "loginRoom",
            Inline(move |s: SocketRef, data: EventData| state.login(&s, data)),
        );
        let state = Arc::clone(self);
        socket.on_disconnect(Inline(move |s: SocketRef, _: DisconnectReason| {
            state.detach(&s)
        }));
    }

    fn detach(&self, socket: &SocketRef) {
        let mut reg = lock(&self.registry);
        let Some(conn) = reg.conns.remove(&socket.id) else {
            return;
        };
        for room in conn.rooms {
            reg.leave(&room, socket.id);
        }
    }

    fn login(&self, socket: &SocketRef, data: EventData) {
        let parsed = data
            .map_err(|_| "loginRoom takes one object {roomId, type}")
            .and_then(|v| match v {
                Value::Object(o) => Ok((room_id(o.get("roomId"))?, login_mode(o.get("type"))?)),
                _ => Err("loginRoom takes one object {roomId, type}"),
            });
        let (room, mode) = match parsed {
            Ok(p) => p,
            Err(why) => {
                socket.emit(DOWNMSG, &downmsg("2003", why.to_string())).ok();
                return;
            }
        };
        let mut reg = lock(&self.registry);
        let others: Vec<SocketRef> = reg
            .rooms
            .get(&room)
            .map(|m| m.iter().filter(|s| s.id != socket.id).cloned().collect())
            .unwrap_or_default();
        match mode {
            Mode::WhenFirst if !others.is_empty() && !self.faults.push_no_room_taken => {
                let msg = format!("your room id({room}) already exist");
                socket.emit(DOWNMSG, &downmsg("2004", msg)).ok();
                return;
            }
            Mode::WhenLast if !self.faults.push_no_kick => {
                let kicked = downmsg("2005", format!("you have kicked out room (id{room})"));
                for other in &others {
                    other.emit(DOWNMSG, &kicked).ok();
                    if !self.faults.push_kicked_still_receives {
                        reg.leave(&room, other.id);
                    }
                }
            }
            _ => {}
        }
        let members = reg.rooms.entry(room.clone()).or_default();
        if !members.iter().any(|m| m.id == socket.id) {
            members.push(socket.clone());
            if let Some(c) = reg.conns.get_mut(&socket.id) {
                c.rooms.push(room.clone());
            }
        }
        let msg = format!("login room (id:{room}) success");
        socket.emit(DOWNMSG, &downmsg("2002", msg)).ok();
    }

    /// `POST /api/push`: the HTTP status and the reply body.
    pub fn push(&self, body: &[u8]) -> (StatusCode, Value) {
        let request = match parse_push(body) {
            Ok(r) => r,
            Err(why) => return (StatusCode::BAD_REQUEST, reply("4000", why)),
        };
        let Some((event, data)) = request.event else {
            // The seed: a push without eventName is not sent; the reply is 0000 regardless.
            return (StatusCode::OK, reply("0000", "ok"));
        };
        let data = if self.faults.push_alter_data {
            altered(data)
        } else {
            data
        };
        let reg = lock(&self.registry);
        match &request.room {
            Some(room) => {
                for s in reg.rooms.get(room).into_iter().flatten() {
                    s.emit(&event, &data).ok();
                }
                if self.faults.leak_to_non_member {
                    let members = reg.rooms.get(room);
                    let outsider = reg
                        .conns
                        .values()
                        .find(|c| members.is_none_or(|m| !m.iter().any(|s| s.id == c.socket.id)));
                    if let Some(c) = outsider {
                        c.socket.emit(&event, &data).ok();
                    }
                }
            }
            None => {
                for c in reg.conns.values() {
                    c.socket.emit(&event, &data).ok();
                }
            }
        }
        if self.faults.push_wrong_http_code {
            return (StatusCode::INTERNAL_SERVER_ERROR, reply("0000", "ok"));
        }
        if self.faults.push_wrong_return_code {
            return (StatusCode::OK, reply("9999", "ok"));
        }
        (StatusCode::OK, reply("0000", "ok"))
    }
}

/// `push-alter-data`: what a server that "enriches" pushes sends.
fn altered(data: Value) -> Value {
    match data {
        Value::Object(mut o) => {
            o.insert("pushedAt".into(), json!(0));
            Value::Object(o)
        }
        other => json!({ "data": other }),
    }
}

fn reply(code: &str, msg: &str) -> Value {
    json!({"ROOT": {"BODY": {"RETURN_CODE": code, "RETURN_MSG": msg}}})
}

/// A parsed push: the room (`None`: every connection) and, unless `eventName` is absent,
/// the event and its data.
struct PushRequest {
    room: Option<Arc<str>>,
    event: Option<(String, Value)>,
}

fn parse_push(body: &[u8]) -> Result<PushRequest, &'static str> {
    let mut root: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON")?;
    let Some(Value::Object(body)) = root.pointer_mut("/ROOT/BODY").map(Value::take) else {
        return Err("the body is not {\"ROOT\":{\"BODY\":{...}}}");
    };
    let room = match body.get("roomId") {
        None | Some(Value::Null) => None,
        v => Some(room_id(v)?),
    };
    let event = match body.get("eventName") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if !e.is_empty() && !RESERVED.contains(&e.as_str()) => {
            Some((e.clone(), body.get("data").cloned().unwrap_or(Value::Null)))
        }
        Some(_) => return Err("eventName must be a non-empty string Socket.IO does not reserve"),
    };
    Ok(PushRequest { room, event })
}

/// The HTTP API of a push server: `POST /api/push`.
pub fn routes(state: Arc<PushState>) -> axum::Router {
    axum::Router::new()
        .route(
            PUSH_PATH,
            axum::routing::post(move |body: Bytes| {
                let state = Arc::clone(&state);
                async move {
                    if body.len() > MAX_PUSH_BODY_BYTES {
                        let why = "the body is over 32 KiB";
                        return (
                            StatusCode::PAYLOAD_TOO_LARGE,
                            axum::Json(reply("4130", why)),
                        );
                    }
                    let (status, reply) = state.push(&body);
                    (status, axum::Json(reply))
                }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_READ_BODY_BYTES))
}

/// Registers the push dialect on namespace `/` of `io` and returns its HTTP routes.
pub fn install(io: &SocketIo, _fixtures: &Fixtures, faults: FaultSet) -> axum::Router {
    let state = Arc::new(PushState::new(faults));
    let attach = Arc::clone(&state);
    let middleware = move |socket: SocketRef| {
        let state = Arc::clone(&attach);
        async move {
            state.attach(&socket);
            Ok::<(), Infallible>(())
        }
    };
    // 2001 goes out from the connect handler, which socketioxide runs once CONNECT is queued
    // (an emit from the middleware would precede CONNECT).
    io.ns(
        "/",
        (async |s: SocketRef| {
            crate::inline::wait_until_connected(&s);
            s.emit(DOWNMSG, &downmsg("2001", "connect success".into()))
                .ok();
        })
        .with(middleware),
    );
    routes(state)
}

pub const DIALECT: crate::Dialect = crate::Dialect {
    name: "push",
    summary: "Server push into rooms (seed 002): loginRoom modes that kick, downmsg codes, POST /api/push",
    serve: |io, fixtures, faults| {
        // Without the HTTP API (`start` calls `install` instead and serves its routes).
        drop(install(io, fixtures, faults));
    },
    http: crate::Http::Beside(install),
    heartbeat: crate::Heartbeat::ENGINE_IO,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids() {
        assert_eq!(
            room_id(Some(&json!("456"))).unwrap(),
            room_id(Some(&json!(456))).unwrap()
        );
        assert_eq!(&*room_id(Some(&json!("__proto__"))).unwrap(), "__proto__");
        for bad in [
            json!(""),
            json!(-1),
            json!(1.5),
            json!(null),
            json!({}),
            json!([1]),
        ] {
            assert!(room_id(Some(&bad)).is_err(), "{bad}");
        }
        assert!(room_id(None).is_err());
        assert!(room_id(Some(&json!("x".repeat(MAX_ROOM_BYTES + 1)))).is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(login_mode(None), Ok(Mode::WhenFirst));
        assert_eq!(
            login_mode(Some(&json!("loginWhenLast"))),
            Ok(Mode::WhenLast)
        );
        assert_eq!(
            login_mode(Some(&json!("loginWhenever"))),
            Ok(Mode::Whenever)
        );
        assert!(login_mode(Some(&json!("loginWhenEver"))).is_err());
        assert!(login_mode(Some(&json!(1))).is_err());
    }

    #[test]
    fn push_bodies() {
        let ok = |b: &str| parse_push(b.as_bytes());
        let r = ok(r#"{"ROOT":{"BODY":{"roomId":456,"eventName":"e","data":{"a":[1]}}}}"#).unwrap();
        assert_eq!(r.room.as_deref(), Some("456"));
        assert_eq!(r.event, Some(("e".into(), json!({"a":[1]}))));
        let global = ok(r#"{"ROOT":{"BODY":{"eventName":"e"}}}"#).unwrap();
        assert!(global.room.is_none());
        assert_eq!(global.event, Some(("e".into(), Value::Null)));
        assert!(ok(r#"{"ROOT":{"BODY":{"roomId":"1"}}}"#)
            .unwrap()
            .event
            .is_none());
        for bad in [
            "not json",
            "[]",
            r#"{"ROOT":{}}"#,
            r#"{"ROOT":{"BODY":[]}}"#,
            r#"{"ROOT":{"BODY":{"eventName":5}}}"#,
            r#"{"ROOT":{"BODY":{"eventName":"disconnect"}}}"#,
            r#"{"ROOT":{"BODY":{"roomId":true,"eventName":"e"}}}"#,
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }
}
