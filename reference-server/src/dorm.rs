//! The `dorm` dialect (seed 000): dorm rooms of 2 or 4 users who chat and show what they do.
//!
//! Namespace `/`. Every client event carries `{"token": ...}`; the token names a fixture user,
//! who belongs to one fixture room.
//!
//! | client event | success | error (requester only, same event) |
//! |---|---|---|
//! | `join_room {token}` | joiner gets `last_data {...}` | `join_room {error}` |
//! | `leave_room {token}` | nothing | `leave_room {error}` |
//! | `message {token, message}` | room gets `message {user_id, message, time}` | `message {error}` |
//! | `action {token, action}` | room gets `action {user_id, action, time}` | `action {error}` |
//!
//! Membership is per (socket, user): a socket joins as the user its token names. A user with
//! several joined sockets is one member (counted once, listed once in `roommates_data`, keeping
//! the join time and action of the first join) and every one of those sockets receives the
//! room's broadcasts. A member's action is reset when the member leaves the room completely
//! (last socket left or disconnected). The broadcast `message` carries `user_id`, never the
//! sender's token (see docs/dialects/dorm.md).
//!
//! Every handler runs inline in socketioxide's dispatch path (see [`crate::inline`]), so the
//! events of one socket are applied in arrival order and each room's broadcasts reach all of
//! its members in the same order (they are queued while the room's lock is held).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler as _;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::SocketIo;

use crate::faults::FaultSet;
use crate::fixtures::{Fixtures, Room};
use crate::inline::{EventData, Inline};
use crate::rfc3339_millis;

/// Longest chat message accepted, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// Name of the socket.io room that mirrors fixture room `room_id`.
pub fn socket_room_name(room_id: u64) -> String {
    format!("dorm:{room_id}")
}

/// The client events of the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    JoinRoom,
    LeaveRoom,
    Message,
    Action,
}

impl Request {
    const ALL: [Request; 4] = [
        Request::JoinRoom,
        Request::LeaveRoom,
        Request::Message,
        Request::Action,
    ];

    fn event(self) -> &'static str {
        match self {
            Request::JoinRoom => "join_room",
            Request::LeaveRoom => "leave_room",
            Request::Message => "message",
            Request::Action => "action",
        }
    }
}

/// A fixture user as the server needs it.
#[derive(Debug)]
struct UserEntry {
    user_id: u64,
    username: String,
    room_id: Option<u64>,
}

/// A fixture room and its live membership.
struct RoomSlot {
    info: Room,
    socket_room: String,
    live: Mutex<LiveRoom>,
}

#[derive(Default)]
struct LiveRoom {
    /// Current members, in join order.
    members: Vec<Member>,
    /// Broadcasts attempted so far in this room (drives the `drop-broadcast` fault).
    broadcasts: u64,
    /// The `reorder-broadcast` fault: each sender's message held back until its next one.
    held: HashMap<u64, Value>,
    /// Which room this is (the `leak-to-first-room` fault spares the first room itself).
    room_id: u64,
    /// The `latency-above` fault: the room's last held-back broadcast, which every later one
    /// waits for, so that delays never reorder a room's broadcasts.
    delayed: Option<tokio::task::JoinHandle<()>>,
}

struct Member {
    user_id: u64,
    username: String,
    join_time: String,
    action: Option<String>,
    /// The sockets joined as this user (usually one).
    sockets: Vec<SocketRef>,
}

/// Every socket connected to the namespace, for membership clean-up on disconnect and for the
/// `leak-to-non-member` fault.
#[derive(Default)]
struct Registry {
    next_seq: u64,
    entries: HashMap<Sid, RegistryEntry>,
    /// Connected sockets by connection order.
    by_seq: BTreeMap<u64, SocketRef>,
}

struct RegistryEntry {
    seq: u64,
    /// (user_id, room_id) of every membership held through this socket.
    joined: Vec<(u64, u64)>,
}

/// Shared state of one dorm server. Lock order: a room's `live`, then `registry`.
pub struct DormState {
    create_time: String,
    users: Vec<UserEntry>,
    by_token: HashMap<String, usize>,
    rooms: HashMap<u64, RoomSlot>,
    registry: Mutex<Registry>,
    faults: FaultSet,
    /// The first room of the fixture, which the `leak-to-first-room` fault copies into.
    first_room: Option<u64>,
    /// The `latency-above` fault: deliveries asked for over the last second.
    delivery_rate: Option<crate::faults::DeliveryRate>,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent before
/// anything that could panic, and one bad event must not take the whole server down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Reply = Result<(), String>;

impl DormState {
    pub fn new(fixtures: &Fixtures, faults: FaultSet, create_time: DateTime<Utc>) -> DormState {
        let users: Vec<UserEntry> = fixtures
            .users
            .iter()
            .map(|u| UserEntry {
                user_id: u.user_id,
                username: u.username.clone(),
                room_id: u.room_id,
            })
            .collect();
        let by_token = fixtures
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.token.clone(), i))
            .collect();
        let rooms = fixtures
            .rooms
            .iter()
            .map(|r| {
                let slot = RoomSlot {
                    info: r.clone(),
                    socket_room: socket_room_name(r.room_id),
                    live: Mutex::new(LiveRoom {
                        room_id: r.room_id,
                        ..LiveRoom::default()
                    }),
                };
                (r.room_id, slot)
            })
            .collect();
        DormState {
            create_time: rfc3339_millis(create_time),
            users,
            by_token,
            rooms,
            registry: Mutex::new(Registry::default()),
            faults,
            first_room: fixtures.rooms.first().map(|r| r.room_id),
            delivery_rate: faults.latency_above.map(|_| Default::default()),
        }
    }

    /// Number of members of room `room_id` (its `count`), for tests and diagnostics.
    pub fn member_count(&self, room_id: u64) -> usize {
        self.rooms
            .get(&room_id)
            .map_or(0, |slot| lock(&slot.live).members.len())
    }

    /// Number of sockets connected to the namespace.
    pub fn connected_sockets(&self) -> usize {
        lock(&self.registry).entries.len()
    }

    // ---- connection life cycle ----

    fn attach(self: &Arc<Self>, socket: &SocketRef) {
        {
            let mut reg = lock(&self.registry);
            let seq = reg.next_seq;
            reg.next_seq += 1;
            reg.entries.insert(
                socket.id,
                RegistryEntry {
                    seq,
                    joined: Vec::new(),
                },
            );
            reg.by_seq.insert(seq, socket.clone());
        }
        for req in Request::ALL {
            let state = Arc::clone(self);
            socket.on(
                req.event(),
                Inline(move |s: SocketRef, data: EventData| state.handle(req, &s, data)),
            );
        }
        let state = Arc::clone(self);
        socket.on_disconnect(Inline(move |s: SocketRef, _reason: DisconnectReason| {
            state.detach(&s)
        }));
    }

    fn detach(&self, socket: &SocketRef) {
        let joined = {
            let mut reg = lock(&self.registry);
            match reg.entries.remove(&socket.id) {
                Some(entry) => {
                    reg.by_seq.remove(&entry.seq);
                    entry.joined
                }
                None => return,
            }
        };
        for (user_id, room_id) in joined {
            if let Some(slot) = self.rooms.get(&room_id) {
                let mut live = lock(&slot.live);
                remove_socket(&mut live, user_id, socket.id);
            }
        }
    }

    // ---- dispatch ----

    fn handle(&self, req: Request, socket: &SocketRef, data: EventData) {
        let outcome = match req {
            Request::JoinRoom => self.join_room(socket, data),
            Request::LeaveRoom => self.leave_room(socket, data),
            Request::Message => self.message(socket, data),
            Request::Action => self.action(socket, data),
        };
        if let Err(reason) = outcome {
            let event = if req == Request::Action && self.faults.error_on_wrong_event {
                Request::Message.event()
            } else {
                req.event()
            };
            // A full or closed socket channel only affects this client.
            socket.emit(event, &json!({ "error": reason })).ok();
        }
    }

    /// Checks the payload shape and the token; returns the user and the payload object.
    fn authenticate(&self, data: EventData) -> Result<(&UserEntry, Map<String, Value>), String> {
        let obj = match data {
            Ok(Value::Object(obj)) => obj,
            Ok(_) | Err(_) => return Err("payload must be an object {\"token\": ...}".into()),
        };
        let token = match obj.get("token") {
            None | Some(Value::Null) => return Err("missing token".into()),
            Some(Value::String(t)) => t,
            Some(_) => return Err("token must be a string".into()),
        };
        let Some(&index) = self.by_token.get(token) else {
            return Err("invalid token".into());
        };
        Ok((&self.users[index], obj))
    }

    fn room_of(&self, user: &UserEntry) -> Result<&RoomSlot, String> {
        user.room_id
            .and_then(|id| self.rooms.get(&id))
            .ok_or_else(|| "user has no room".to_string())
    }

    // ---- handlers ----

    fn join_room(&self, socket: &SocketRef, data: EventData) -> Reply {
        let (user, _) = self.authenticate(data)?;
        let slot = self.room_of(user)?;
        let last_data = {
            let mut live = lock(&slot.live);
            let newly_attached = match live.members.iter_mut().find(|m| m.user_id == user.user_id) {
                Some(m) if m.sockets.iter().any(|s| s.id == socket.id) => false,
                Some(m) => {
                    m.sockets.push(socket.clone());
                    true
                }
                None => {
                    if live.members.len() >= slot.info.room_size as usize {
                        return Err("room is full".into());
                    }
                    live.members.push(Member {
                        user_id: user.user_id,
                        username: user.username.clone(),
                        join_time: rfc3339_millis(Utc::now()),
                        action: None,
                        sockets: vec![socket.clone()],
                    });
                    true
                }
            };
            if newly_attached {
                let mut reg = lock(&self.registry);
                match reg.entries.get_mut(&socket.id) {
                    Some(entry) => entry.joined.push((user.user_id, slot.info.room_id)),
                    None => {
                        // The socket disconnected meanwhile: undo, nothing will clean up later.
                        drop(reg);
                        remove_socket(&mut live, user.user_id, socket.id);
                        return Err("not connected".into());
                    }
                }
            }
            self.last_data(user, &slot.info, &live)
        };
        socket.join(slot.socket_room.clone());
        if !self.faults.no_join_reply {
            socket.emit("last_data", &last_data).ok();
        }
        Ok(())
    }

    fn last_data(&self, user: &UserEntry, room: &Room, live: &LiveRoom) -> Value {
        let roommates: Vec<Value> = live
            .members
            .iter()
            .map(|m| {
                json!({
                    "username": m.username,
                    "user_id": m.user_id,
                    "action": m.action,
                    "join_time": m.join_time,
                })
            })
            .collect();
        json!({
            "current_user_data": { "user_id": user.user_id, "username": user.username },
            "room_data": {
                "room_id": room.room_id,
                "room_name": room.room_name,
                "owner_id": room.owner_id,
                "room_size": room.room_size,
                "count": live.members.len(),
                "create_time": self.create_time,
                "notice": room.notice,
            },
            "roommates_data": roommates,
        })
    }

    fn leave_room(&self, socket: &SocketRef, data: EventData) -> Reply {
        let (user, _) = self.authenticate(data)?;
        let slot = self.room_of(user)?;
        let still_in_room = {
            let mut live = lock(&slot.live);
            if !remove_socket(&mut live, user.user_id, socket.id) {
                if self.faults.relay_non_member {
                    return Ok(());
                }
                return Err("not in room".into());
            }
            let mut reg = lock(&self.registry);
            if let Some(entry) = reg.entries.get_mut(&socket.id) {
                let pair = (user.user_id, slot.info.room_id);
                entry.joined.retain(|j| *j != pair);
            }
            live.members
                .iter()
                .any(|m| m.sockets.iter().any(|s| s.id == socket.id))
        };
        if !still_in_room {
            socket.leave(slot.socket_room.clone());
        }
        Ok(())
    }

    fn message(&self, socket: &SocketRef, data: EventData) -> Reply {
        let (user, obj) = self.authenticate(data)?;
        let text = match obj.get("message") {
            None => return Err("missing message".into()),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("message must be a string".into()),
        };
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(format!("message too long (max {MAX_MESSAGE_BYTES} bytes)"));
        }
        let slot = self.room_of(user)?;
        let mut live = lock(&slot.live);
        if member_index(&live, user.user_id, socket.id).is_none() && !self.faults.relay_non_member {
            return Err("not in room".into());
        }
        let time = rfc3339_millis(Utc::now());
        let out = MessageOut {
            user_id: user.user_id,
            message: text,
            time: match (self.faults.omit_time, self.faults.wrong_field_type) {
                (true, _) => None,
                (false, true) => Some(Value::from(Utc::now().timestamp_millis())),
                (false, false) => Some(Value::String(time)),
            },
        };
        if self.faults.seed_token_broadcast {
            // The seed's own form: the sender's token instead of its user_id.
            let out =
                serde_json::json!({ "token": obj["token"], "message": text, "time": out.time });
            self.broadcast(&mut live, "message", &out);
            return Ok(());
        }
        if self.faults.reorder_broadcast {
            let out = serde_json::to_value(&out).unwrap_or_default();
            match live.held.remove(&user.user_id) {
                Some(earlier) => {
                    self.broadcast(&mut live, "message", &out);
                    self.broadcast(&mut live, "message", &earlier);
                }
                None => {
                    live.held.insert(user.user_id, out);
                }
            }
            return Ok(());
        }
        self.broadcast(&mut live, "message", &out);
        Ok(())
    }

    fn action(&self, socket: &SocketRef, data: EventData) -> Reply {
        let (user, obj) = self.authenticate(data)?;
        let action = match obj.get("action") {
            None => return Err("missing action".into()),
            Some(Value::Null) => None,
            Some(Value::String(s)) if is_action_code(s) => Some(s.clone()),
            Some(_) => return Err("invalid action: must be \"00\"..\"09\" or null".into()),
        };
        let slot = self.room_of(user)?;
        let mut live = lock(&slot.live);
        match member_index(&live, user.user_id, socket.id) {
            Some(index) => live.members[index].action = action.clone(),
            None if self.faults.relay_non_member => {}
            None => return Err("not in room".into()),
        }
        let time = rfc3339_millis(Utc::now());
        let out = ActionOut {
            user_id: user.user_id,
            action: action.as_deref(),
            time: (!self.faults.omit_time).then_some(time.as_str()),
        };
        self.broadcast(&mut live, "action", &out);
        Ok(())
    }

    /// Emits `payload` on `event` to every socket of every member, while the room is locked so
    /// that all members see the room's broadcasts in one order. Applies the broadcast faults.
    fn broadcast<T: Serialize>(&self, live: &mut LiveRoom, event: &str, payload: &T) {
        live.broadcasts += 1;
        if self.faults.drops(live.broadcasts) {
            return;
        }
        let registry = self.faults.leak_to_non_member.then(|| lock(&self.registry));
        let mut targets: Vec<&SocketRef> = Vec::with_capacity(live.members.len() + 1);
        for socket in live.members.iter().flat_map(|m| m.sockets.iter()) {
            if !targets.iter().any(|t| t.id == socket.id) {
                targets.push(socket);
            }
        }
        if let Some(reg) = &registry {
            // The most recently connected socket that is not a member of this room.
            let outsider = reg
                .by_seq
                .values()
                .rev()
                .find(|s| s.connected() && !targets.iter().any(|t| t.id == s.id));
            if let Some(outsider) = outsider {
                targets.push(outsider);
            }
        }
        let copies = if self.faults.duplicate_broadcast {
            2
        } else {
            1
        };
        if self.held_back(&mut live.delayed, event, payload, &targets, copies) {
            return;
        }
        for _ in 0..copies {
            for socket in &targets {
                socket.emit(event, payload).ok();
            }
        }
        // Lock order: this room, then the first room (which never takes another's lock).
        let first = self
            .first_room
            .filter(|&id| self.faults.leak_to_first_room && id != live.room_id)
            .and_then(|id| self.rooms.get(&id));
        if let Some(first) = first {
            let first = lock(&first.live);
            for socket in first.members.iter().flat_map(|m| m.sockets.iter()) {
                if !targets.iter().any(|t| t.id == socket.id) {
                    socket.emit(event, payload).ok();
                }
            }
        }
    }
}

impl DormState {
    /// The `latency-above` fault: when the server is over its rate, or the room still has a
    /// held-back broadcast, the broadcast goes out from a task after its delay and after the
    /// room's previous held-back one. Returns whether it was taken.
    fn held_back<T: Serialize>(
        &self,
        delayed: &mut Option<tokio::task::JoinHandle<()>>,
        event: &str,
        payload: &T,
        targets: &[&SocketRef],
        copies: usize,
    ) -> bool {
        let (Some(limit), Some(meter)) = (self.faults.latency_above, &self.delivery_rate) else {
            return false;
        };
        let rate = meter.add((targets.len() * copies) as u64);
        let delay = crate::faults::load_delay(limit, rate);
        let before = delayed.take().filter(|h| !h.is_finished());
        if delay.is_zero() && before.is_none() {
            return false;
        }
        let due = tokio::time::Instant::now() + delay;
        let sockets: Vec<SocketRef> = targets.iter().map(|s| (*s).clone()).collect();
        let payload = serde_json::to_value(payload).unwrap_or_default();
        let event = event.to_string();
        *delayed = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            tokio::time::sleep_until(due).await;
            for _ in 0..copies {
                for socket in &sockets {
                    socket.emit(&event, &payload).ok();
                }
            }
        }));
        true
    }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    user_id: u64,
    message: &'a str,
    /// A datetime string; epoch milliseconds (a number) under the `wrong-field-type` fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<Value>,
}

#[derive(Serialize)]
struct ActionOut<'a> {
    user_id: u64,
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
}

/// "00" to "09".
fn is_action_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 2 && b[0] == b'0' && b[1].is_ascii_digit()
}

/// Index of the member `user_id` if `sid` is joined as that user.
fn member_index(live: &LiveRoom, user_id: u64, sid: Sid) -> Option<usize> {
    live.members
        .iter()
        .position(|m| m.user_id == user_id && m.sockets.iter().any(|s| s.id == sid))
}

/// Detaches `sid` from member `user_id`; the member leaves when no socket is left. Returns
/// whether the socket was joined as that user.
fn remove_socket(live: &mut LiveRoom, user_id: u64, sid: Sid) -> bool {
    let Some(index) = member_index(live, user_id, sid) else {
        return false;
    };
    let member = &mut live.members[index];
    member.sockets.retain(|s| s.id != sid);
    if member.sockets.is_empty() {
        live.members.remove(index);
    }
    true
}

/// The dorm dialect's entry in [`crate::DIALECTS`].
pub const DIALECT: crate::Dialect = crate::Dialect {
    name: "dorm",
    summary: "Dorm rooms of 2 or 4 (seed 000): join_room, leave_room, message, action",
    serve: |io, fixtures, faults| {
        install(io, Arc::new(DormState::new(fixtures, faults, Utc::now())));
    },
    http: crate::Http::Banner,
    heartbeat: crate::Heartbeat::ENGINE_IO,
};

/// Registers the dorm dialect on namespace `/` of `io`.
///
/// Event handlers are registered in a connect middleware, which socketioxide awaits before it
/// sends CONNECT to the client; the connect handler proper is spawned after CONNECT is queued, so
/// handlers registered there could miss a fast client's first events.
pub fn install(io: &SocketIo, state: Arc<DormState>) {
    let middleware = move |socket: SocketRef| {
        let state = Arc::clone(&state);
        async move {
            state.attach(&socket);
            Ok::<(), Infallible>(())
        }
    };
    io.ns("/", (async |_: SocketRef| {}).with(middleware));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_codes() {
        for ok in ["00", "05", "09"] {
            assert!(is_action_code(ok), "{ok}");
        }
        for bad in ["10", "0", "000", "0a", "", "９９", "-1"] {
            assert!(!is_action_code(bad), "{bad}");
        }
    }

    #[test]
    fn authenticate_rejects_bad_payloads() {
        let state = DormState::new(&Fixtures::generate(4, 2), FaultSet::default(), Utc::now());
        let token = Fixtures::generate(4, 2).users[0].token.clone();
        let cases = [
            (json!("__proto__"), "payload must be an object"),
            (json!([1, 2]), "payload must be an object"),
            (json!({}), "missing token"),
            (json!({"token": null}), "missing token"),
            (json!({"token": 5}), "token must be a string"),
            (json!({"token": "constructor"}), "invalid token"),
        ];
        for (payload, expected) in cases {
            let err = state.authenticate(Ok(payload.clone())).unwrap_err();
            assert!(err.contains(expected), "{payload}: {err}");
        }
        let (user, _) = state.authenticate(Ok(json!({ "token": token }))).unwrap();
        assert_eq!(user.user_id, 1);
    }
}
