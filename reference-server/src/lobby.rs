//! The `lobby` dialect (seed 004): the server of the App Inventor SocketIO extension. Users log
//! in with a unique name, create or join named rooms and chat in a room, with everybody, or one to
//! one.
//!
//! Namespace `/`. Every argument is a positional Socket.IO argument; every error goes to the
//! requester alone as `err` with a bare string (see [`errors`]).
//!
//! | client event | success |
//! |---|---|
//! | `login(username)` | self `logedin {username, numusers}`; every other connected socket `otherLogedin` (same object) |
//! | `joinRoom(roomName, maxUser)` | self `joinedRoom {username, roomname, userlist}`; the other members `otherJoinedRoom` (same object) |
//! | `leaveRoom(roomName)` | self `leftRoom {username, roomname}`; the remaining members `otherLeftRoom {username, roomname, userlist}` |
//! | `roomMessage(roomName, content)` | every member, sender included, `gotRoomMessage {username, roomname, content}` |
//! | `publicMessage(content)` | every connected socket, sender included, `gotPublicMessage {username, content}` |
//! | `privateMessage(user, content)` | the target alone `gotPrivateMessage {username: sender, content}` |
//! | disconnect | remaining members of each of the leaver's rooms `otherLeftRoom`, then every other connected socket `otherLogedout {username, numusers}` |
//!
//! Decisions where the seed is silent (docs/dialects/lobby.md):
//! - A socket must log in before anything else ([`errors::NOT_LOGGED_IN`]) and logs in once
//!   ([`errors::ALREADY_LOGGED_IN`]); a name must be a non-empty string of at most
//!   [`MAX_NAME_BYTES`] bytes ([`errors::INVALID_USERNAME`]). `numusers` counts logged-in users.
//!   A name is free again once its socket's `otherLogedout` has been sent.
//! - "Every socket" means every connected socket, logged in or not: `otherLogedin`,
//!   `gotPublicMessage` and `otherLogedout` also reach sockets that never logged in (as the seed's
//!   public server does with `socket.broadcast.emit` / `io.sockets.emit`).
//! - `joinRoom`: the room name must be a non-empty string of at most [`MAX_NAME_BYTES`] bytes
//!   and not the id of a connected socket ([`errors::INVALID_ROOM_NAME`]); names such as
//!   `__proto__` are ordinary. The joiner that creates the room sets its capacity: `maxUser` a
//!   number with a positive integral value (`2` or `2.0`), absent or `null` for unlimited,
//!   anything else [`errors::INVALID_MAX_USER`] (and no room is created). A later joiner's
//!   `maxUser` is ignored, whatever it is. A member asking to join again gets
//!   [`errors::ALREADY_IN_ROOM`] even when the room is full (the seed's server says `room full`
//!   there). `userlist` holds the usernames in join order, after the change.
//! - A room is removed when its last member leaves or disconnects; a later joiner creates it
//!   afresh with its own capacity.
//! - `leaveRoom` / `roomMessage` with a room name that is not a string answer
//!   [`errors::NOT_IN_ROOM`]; `privateMessage` to a user name that is not a string (or not logged
//!   in) answers [`errors::NO_SUCH_USER`]. Sending a private message to oneself is allowed.
//! - `content` must be a string ([`errors::INVALID_CONTENT`]) of at most [`MAX_CONTENT_BYTES`]
//!   bytes ([`errors::MESSAGE_TOO_LONG`]). Arguments beyond the expected ones are ignored.
//! - The leaver's own `leftRoom` is sent before the others' `otherLeftRoom`; the joiner's
//!   `joinedRoom` before the others' `otherJoinedRoom`.
//!
//! Every handler runs inline in socketioxide's dispatch path (see [`crate::inline`]), so the
//! events of one socket are applied in arrival order. Room events are emitted while the room is
//! locked, and user-wide events (`otherLogedin`, `gotPublicMessage`, `otherLogedout`) while the
//! registry is locked, so every recipient sees each stream in one order.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler as _;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::SocketIo;

use crate::faults::FaultSet;
use crate::inline::{EventArgs, Inline, InlineArgs};

/// Longest accepted message `content`, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 8 * 1024;

/// Longest accepted username or room name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 128;

/// The event every error is sent on (a bare string argument).
pub const ERROR_EVENT: &str = "err";

/// The error strings of the dialect: the seed's own, then the reference server's decisions.
pub mod errors {
    /// login: the name is taken (seed).
    pub const DUPLICATE_USERNAME: &str = "duplicate username";
    /// joinRoom: the room has its capacity of members (seed).
    pub const ROOM_FULL: &str = "room full";
    /// joinRoom: the socket is a member already (seed).
    pub const ALREADY_IN_ROOM: &str = "already in room";
    /// leaveRoom / roomMessage: no such room, or the socket is not a member (seed).
    pub const NOT_IN_ROOM: &str = "no such room or not in it";
    /// privateMessage: nobody is logged in with that name (seed).
    pub const NO_SUCH_USER: &str = "no such user";
    /// Any event but login before a successful login.
    pub const NOT_LOGGED_IN: &str = "not logged in";
    /// login on a socket that is logged in.
    pub const ALREADY_LOGGED_IN: &str = "already logged in";
    /// login: missing, non-string, empty or overlong name.
    pub const INVALID_USERNAME: &str = "invalid username";
    /// joinRoom: missing, non-string, empty or overlong room name, or a connected socket's id.
    pub const INVALID_ROOM_NAME: &str = "invalid room name";
    /// joinRoom creating a room: maxUser is not a positive integer, absent or null.
    pub const INVALID_MAX_USER: &str = "invalid maxUser";
    /// roomMessage / publicMessage / privateMessage: content missing or not a string.
    pub const INVALID_CONTENT: &str = "invalid content";
    /// content longer than [`super::MAX_CONTENT_BYTES`].
    pub const MESSAGE_TOO_LONG: &str = "message too long";
    /// The event's arguments could not be decoded at all (e.g. a number JSON cannot hold).
    pub const INVALID_ARGUMENTS: &str = "invalid arguments";
    /// The socket is disconnecting (the client never sees it: its socket is closed).
    pub const NOT_CONNECTED: &str = "not connected";
}

/// The client events of the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Login,
    JoinRoom,
    LeaveRoom,
    RoomMessage,
    PublicMessage,
    PrivateMessage,
}

impl Request {
    const ALL: [Request; 6] = [
        Request::Login,
        Request::JoinRoom,
        Request::LeaveRoom,
        Request::RoomMessage,
        Request::PublicMessage,
        Request::PrivateMessage,
    ];

    fn event(self) -> &'static str {
        match self {
            Request::Login => "login",
            Request::JoinRoom => "joinRoom",
            Request::LeaveRoom => "leaveRoom",
            Request::RoomMessage => "roomMessage",
            Request::PublicMessage => "publicMessage",
            Request::PrivateMessage => "privateMessage",
        }
    }
}

/// Every connected socket.
#[derive(Default)]
struct Registry {
    next_seq: u64,
    conns: HashMap<Sid, Conn>,
    /// Connected sockets by connection order (the recipients of user-wide events).
    by_seq: BTreeMap<u64, SocketRef>,
    /// Logged-in users.
    names: HashMap<Arc<str>, Sid>,
}

struct Conn {
    seq: u64,
    username: Option<Arc<str>>,
    /// The rooms this socket is a member of, in join order.
    rooms: Vec<Arc<str>>,
    /// Set when the disconnect handler starts: no new memberships.
    leaving: bool,
}

impl Registry {
    fn socket_of(&self, sid: Sid) -> Option<&SocketRef> {
        self.conns.get(&sid).and_then(|c| self.by_seq.get(&c.seq))
    }
}

struct Room {
    /// Set by the joiner that created the room; `None` is unlimited.
    capacity: Option<usize>,
    /// In join order.
    members: Vec<Member>,
    /// Room messages relayed so far (the `drop-broadcast` fault counts them).
    messages: u64,
}

impl Room {
    fn userlist(&self) -> Vec<&str> {
        self.members.iter().map(|m| &*m.username).collect()
    }

    fn position(&self, sid: Sid) -> Option<usize> {
        self.members.iter().position(|m| m.socket.id == sid)
    }
}

struct Member {
    username: Arc<str>,
    socket: SocketRef,
}

/// Shared state of one lobby server. Lock order: `rooms` (the directory), then one room, then
/// `registry`. Joins, leaves and disconnects hold the directory throughout, so a room is never
/// removed while somebody joins it; room messages hold it only to find the room.
pub struct LobbyState {
    rooms: Mutex<HashMap<Arc<str>, Arc<Mutex<Room>>>>,
    registry: Mutex<Registry>,
    faults: FaultSet,
    /// The room the `leak-to-first-room` fault copies room events into.
    first_room: Option<Arc<str>>,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent before
/// anything that could panic, and one bad event must not take the whole server down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Reply = Result<(), &'static str>;

#[derive(Serialize)]
struct UserCount<'a> {
    username: &'a str,
    numusers: usize,
}

#[derive(Serialize)]
struct RoomUsers<'a> {
    username: &'a str,
    roomname: &'a str,
    userlist: Vec<&'a str>,
}

#[derive(Serialize)]
struct RoomLeft<'a> {
    username: &'a str,
    roomname: &'a str,
}

#[derive(Serialize)]
struct RoomMessageOut<'a> {
    username: &'a str,
    roomname: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    username: &'a str,
    content: &'a str,
}

impl LobbyState {
    pub fn new(faults: FaultSet) -> LobbyState {
        LobbyState {
            rooms: Mutex::new(HashMap::new()),
            registry: Mutex::new(Registry::default()),
            faults,
            first_room: None,
        }
    }

    /// Names the first room of the users file, for the `leak-to-first-room` fault.
    pub fn with_first_room(mut self, name: Option<&str>) -> LobbyState {
        self.first_room = name
            .filter(|_| self.faults.leak_to_first_room)
            .map(Arc::from);
        self
    }

    /// The `leak-to-first-room` fault: the first room, when it exists and is not `name`.
    fn leak_target(
        &self,
        dir: &HashMap<Arc<str>, Arc<Mutex<Room>>>,
        name: &str,
    ) -> Option<Arc<Mutex<Room>>> {
        let first = self.first_room.as_deref().filter(|&f| f != name)?;
        dir.get(first).cloned()
    }

    /// Number of logged-in users (`numusers`).
    pub fn logged_in_users(&self) -> usize {
        lock(&self.registry).names.len()
    }

    /// Number of sockets connected to the namespace.
    pub fn connected_sockets(&self) -> usize {
        lock(&self.registry).conns.len()
    }

    /// Number of rooms that exist (have members).
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
    }

    // ---- connection life cycle ----

    fn attach(self: &Arc<Self>, socket: &SocketRef) {
        {
            let mut reg = lock(&self.registry);
            let seq = reg.next_seq;
            reg.next_seq += 1;
            reg.conns.insert(
                socket.id,
                Conn {
                    seq,
                    username: None,
                    rooms: Vec::new(),
                    leaving: false,
                },
            );
            reg.by_seq.insert(seq, socket.clone());
        }
        for req in Request::ALL {
            let state = Arc::clone(self);
            socket.on(
                req.event(),
                InlineArgs(move |s: SocketRef, args: EventArgs| state.handle(req, &s, args)),
            );
        }
        let state = Arc::clone(self);
        socket.on_disconnect(Inline(move |s: SocketRef, _reason: DisconnectReason| {
            state.detach(&s)
        }));
    }

    /// Whatever the reason (client close, transport error, heartbeat timeout, shutdown): leaves
    /// every room (`otherLeftRoom` to the remaining members), then logs out (`otherLogedout` to
    /// every other socket) and frees the name.
    fn detach(&self, socket: &SocketRef) {
        let username = {
            let mut reg = lock(&self.registry);
            let Some(conn) = reg.conns.get_mut(&socket.id) else {
                return;
            };
            conn.leaving = true;
            conn.username.clone()
        };
        if let Some(username) = &username {
            let mut dir = lock(&self.rooms);
            // Joins hold the directory, so this list is complete and stays so (`leaving` is set).
            let rooms = match lock(&self.registry).conns.get_mut(&socket.id) {
                Some(conn) => std::mem::take(&mut conn.rooms),
                None => Vec::new(),
            };
            for name in rooms {
                let Some(room) = dir.get(&name).cloned() else {
                    continue;
                };
                let mut r = lock(&room);
                let Some(index) = r.position(socket.id) else {
                    continue;
                };
                r.members.remove(index);
                if r.members.is_empty() {
                    if !self.faults.keep_room_on_disconnect {
                        dir.remove(&name);
                    }
                } else if !self.faults.no_leave_notice {
                    let out = RoomUsers {
                        username,
                        roomname: &name,
                        userlist: r.userlist(),
                    };
                    for m in &r.members {
                        m.socket.emit("otherLeftRoom", &out).ok();
                    }
                }
            }
        }
        let mut reg = lock(&self.registry);
        let Some(conn) = reg.conns.remove(&socket.id) else {
            return;
        };
        reg.by_seq.remove(&conn.seq);
        if let Some(username) = conn.username {
            let numusers = reg.names.len().saturating_sub(1);
            if !self.faults.keep_name_on_disconnect {
                reg.names.remove(&username);
            }
            let out = UserCount {
                username: &username,
                numusers,
            };
            for s in reg.by_seq.values() {
                s.emit("otherLogedout", &out).ok();
            }
        }
    }

    // ---- dispatch ----

    fn handle(&self, req: Request, socket: &SocketRef, args: EventArgs) {
        let outcome = match args {
            Err(_) => Err(errors::INVALID_ARGUMENTS),
            Ok(args) => match req {
                Request::Login => self.login(socket, &args),
                Request::JoinRoom => self.join_room(socket, &args),
                Request::LeaveRoom => self.leave_room(socket, &args),
                Request::RoomMessage => self.room_message(socket, &args),
                Request::PublicMessage => self.public_message(socket, &args),
                Request::PrivateMessage => self.private_message(socket, &args),
            },
        };
        if let Err(reason) = outcome {
            // A full or closed socket channel only affects this client.
            socket.emit(ERROR_EVENT, reason).ok();
        }
    }

    /// The username of a logged-in socket.
    fn username_of(&self, socket: &SocketRef) -> Result<Arc<str>, &'static str> {
        logged_in(&lock(&self.registry), socket)
    }

    // ---- handlers ----

    fn login(&self, socket: &SocketRef, args: &[Value]) -> Reply {
        let mut guard = lock(&self.registry);
        let reg = &mut *guard;
        let conn = match reg.conns.get_mut(&socket.id) {
            Some(conn) if !conn.leaving => conn,
            _ => return Err(errors::NOT_CONNECTED),
        };
        if conn.username.is_some() {
            if self.faults.ignore_second_login {
                return Ok(());
            }
            return Err(errors::ALREADY_LOGGED_IN);
        }
        let name = match args.first() {
            Some(Value::String(s)) if is_valid_name(s) => s.as_str(),
            _ => return Err(errors::INVALID_USERNAME),
        };
        if reg.names.contains_key(name) {
            return Err(errors::DUPLICATE_USERNAME);
        }
        let name: Arc<str> = Arc::from(name);
        conn.username = Some(Arc::clone(&name));
        reg.names.insert(Arc::clone(&name), socket.id);
        let out = UserCount {
            username: &name,
            numusers: reg.names.len(),
        };
        socket.emit("logedin", &out).ok();
        for s in reg.by_seq.values().filter(|s| s.id != socket.id) {
            s.emit("otherLogedin", &out).ok();
        }
        Ok(())
    }

    fn join_room(&self, socket: &SocketRef, args: &[Value]) -> Reply {
        if self.faults.crash_on_hostile_room_name {
            self.crash_on_hostile(args.first());
        }
        if self.faults.crash_on_number_room_name {
            if let Some(Value::Number(n)) = args.first() {
                eprintln!("fault crash-on-number-room-name: crashing on room name {n}");
                std::process::exit(101);
            }
        }
        let username = self.username_of(socket)?;
        let name = match args.first() {
            Some(Value::String(s)) if is_valid_name(s) => s.as_str(),
            _ => return Err(errors::INVALID_ROOM_NAME),
        };
        let mut dir = lock(&self.rooms);
        {
            let reg = lock(&self.registry);
            match reg.conns.get(&socket.id) {
                Some(conn) if !conn.leaving => {}
                _ => return Err(errors::NOT_CONNECTED),
            }
            // In socket.io every connection is in a room named by its id; refusing those names
            // keeps a client from ever addressing another connection (or itself) as a room.
            if !self.faults.socket_id_room
                && Sid::from_str(name).is_ok_and(|sid| reg.conns.contains_key(&sid))
            {
                return Err(errors::INVALID_ROOM_NAME);
            }
        }
        let (name, room) = match dir.get_key_value(name) {
            Some((key, room)) => (Arc::clone(key), Arc::clone(room)),
            None => {
                let capacity = parse_capacity(args.get(1))?;
                let key: Arc<str> = Arc::from(name);
                let room = Arc::new(Mutex::new(Room {
                    capacity,
                    members: Vec::new(),
                    messages: 0,
                }));
                dir.insert(Arc::clone(&key), Arc::clone(&room));
                (key, room)
            }
        };
        let leak = self.leak_target(&dir, &name);
        let mut r = lock(&room);
        if r.position(socket.id).is_some() {
            if self.faults.accept_rejoin {
                let out = RoomUsers {
                    username: &username,
                    roomname: &name,
                    userlist: r.userlist(),
                };
                socket.emit("joinedRoom", &out).ok();
                return Ok(());
            }
            return Err(errors::ALREADY_IN_ROOM);
        }
        if r.capacity.is_some_and(|cap| r.members.len() >= cap) {
            return Err(errors::ROOM_FULL);
        }
        r.members.push(Member {
            username: Arc::clone(&username),
            socket: socket.clone(),
        });
        let out = RoomUsers {
            username: &username,
            roomname: &name,
            userlist: r.userlist(),
        };
        let outsider = {
            let mut reg = lock(&self.registry);
            // Present: the disconnect handler removes it only after taking the directory.
            if let Some(conn) = reg.conns.get_mut(&socket.id) {
                conn.rooms.push(Arc::clone(&name));
            }
            if self.faults.notify_non_member {
                // The most recently connected logged-in socket that is not a member.
                reg.by_seq
                    .values()
                    .rev()
                    .find(|s| {
                        s.connected()
                            && r.position(s.id).is_none()
                            && reg
                                .conns
                                .get(&s.id)
                                .is_some_and(|c| c.username.is_some() && !c.leaving)
                    })
                    .cloned()
            } else {
                None
            }
        };
        socket.emit("joinedRoom", &out).ok();
        for m in r.members.iter().filter(|m| m.socket.id != socket.id) {
            m.socket.emit("otherJoinedRoom", &out).ok();
        }
        if let Some(outsider) = outsider {
            outsider.emit("otherJoinedRoom", &out).ok();
        }
        // Lock order: directory, this room, then the first room.
        if let Some(first) = leak {
            for m in &lock(&first).members {
                m.socket.emit("otherJoinedRoom", &out).ok();
            }
        }
        Ok(())
    }

    fn leave_room(&self, socket: &SocketRef, args: &[Value]) -> Reply {
        let username = self.username_of(socket)?;
        let Some(Value::String(name)) = args.first() else {
            return Err(errors::NOT_IN_ROOM);
        };
        if self.prototype_name(name) {
            return Ok(());
        }
        let mut dir = lock(&self.rooms);
        let Some((name, room)) = dir
            .get_key_value(name.as_str())
            .map(|(k, r)| (Arc::clone(k), Arc::clone(r)))
        else {
            return Err(errors::NOT_IN_ROOM);
        };
        let mut r = lock(&room);
        let Some(index) = r.position(socket.id) else {
            return Err(errors::NOT_IN_ROOM);
        };
        r.members.remove(index);
        if let Some(conn) = lock(&self.registry).conns.get_mut(&socket.id) {
            conn.rooms.retain(|n| *n != name);
        }
        if !self.faults.no_left_room {
            socket
                .emit(
                    "leftRoom",
                    &RoomLeft {
                        username: &username,
                        roomname: &name,
                    },
                )
                .ok();
        }
        if r.members.is_empty() {
            dir.remove(&name);
        } else {
            let out = RoomUsers {
                username: &username,
                roomname: &name,
                userlist: r.userlist(),
            };
            for m in &r.members {
                m.socket.emit("otherLeftRoom", &out).ok();
            }
        }
        Ok(())
    }

    fn room_message(&self, socket: &SocketRef, args: &[Value]) -> Reply {
        let username = self.username_of(socket)?;
        let Some(Value::String(name)) = args.first() else {
            return Err(errors::NOT_IN_ROOM);
        };
        let content = content_arg(args.get(1))?;
        if self.prototype_name(name) {
            return Ok(());
        }
        let (room, leak) = {
            let dir = lock(&self.rooms);
            let Some(room) = dir.get(name.as_str()).cloned() else {
                return Err(errors::NOT_IN_ROOM);
            };
            (room, self.leak_target(&dir, name))
        };
        // Looked up before the room is locked: the registry is never taken under a room lock.
        let owner = self
            .faults
            .socket_id_room
            .then(|| {
                let reg = lock(&self.registry);
                Sid::from_str(name)
                    .ok()
                    .and_then(|sid| reg.socket_of(sid).cloned())
            })
            .flatten();
        let mut r = lock(&room);
        if r.position(socket.id).is_none() {
            return Err(errors::NOT_IN_ROOM);
        }
        r.messages += 1;
        if self.faults.drops(r.messages) {
            return Ok(());
        }
        let out = RoomMessageOut {
            username: &username,
            roomname: name,
            content,
        };
        for m in &r.members {
            m.socket.emit("gotRoomMessage", &out).ok();
        }
        // As `io.to(name)` would: the connection named by the room also gets it.
        if let Some(owner) = owner.filter(|o| r.position(o.id).is_none()) {
            owner.emit("gotRoomMessage", &out).ok();
        }
        if let Some(first) = leak {
            for m in lock(&first).members.iter() {
                if r.position(m.socket.id).is_none() {
                    m.socket.emit("gotRoomMessage", &out).ok();
                }
            }
        }
        Ok(())
    }

    fn public_message(&self, socket: &SocketRef, args: &[Value]) -> Reply {
        // One registry lock from the login check to the last emit: a concurrent disconnect of
        // the sender cannot slip its `otherLogedout` in before this message.
        let reg = lock(&self.registry);
        let username = logged_in(&reg, socket)?;
        let content = content_arg(args.first())?;
        let out = MessageOut {
            username: &username,
            content,
        };
        for s in reg.by_seq.values() {
            s.emit("gotPublicMessage", &out).ok();
        }
        Ok(())
    }

    fn private_message(&self, socket: &SocketRef, args: &[Value]) -> Reply {
        let reg = lock(&self.registry);
        let username = logged_in(&reg, socket)?;
        let Some(Value::String(target)) = args.first() else {
            return Err(errors::NO_SUCH_USER);
        };
        let content = content_arg(args.get(1))?;
        if self.prototype_name(target) {
            return Ok(());
        }
        let Some(target) = reg
            .names
            .get(target.as_str())
            .and_then(|&sid| reg.socket_of(sid))
        else {
            return Err(errors::NO_SUCH_USER);
        };
        let out = MessageOut {
            username: &username,
            content,
        };
        target.emit("gotPrivateMessage", &out).ok();
        Ok(())
    }
}

/// The username of `socket` if it is logged in and not disconnecting.
fn logged_in(reg: &Registry, socket: &SocketRef) -> Result<Arc<str>, &'static str> {
    match reg.conns.get(&socket.id) {
        Some(conn) if !conn.leaving => conn.username.clone().ok_or(errors::NOT_LOGGED_IN),
        _ => Err(errors::NOT_CONNECTED),
    }
}

/// A username or room name: a non-empty string of at most [`MAX_NAME_BYTES`] bytes.
impl LobbyState {
    /// The `prototype-names-exist` fault: `name` is a property of every JavaScript object.
    fn prototype_name(&self, name: &str) -> bool {
        self.faults.prototype_names_exist
            && ["__proto__", "constructor", "toString"].contains(&name)
    }

    /// The `crash-on-hostile-room-name` fault: what a server that keys rooms by a plain object,
    /// or lets a client address socket.io's per-connection rooms, may do.
    fn crash_on_hostile(&self, name: Option<&Value>) {
        let Some(Value::String(name)) = name else {
            return;
        };
        let hostile = ["__proto__", "constructor", "toString"].contains(&name.as_str())
            || Sid::from_str(name).is_ok_and(|sid| lock(&self.registry).conns.contains_key(&sid));
        if hostile {
            eprintln!("fault crash-on-hostile-room-name: crashing on room name {name:?}");
            std::process::exit(101);
        }
    }
}

fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_BYTES
}

/// `maxUser` of the joiner that creates a room: a number with a positive integral value, or
/// absent / null for unlimited.
fn parse_capacity(v: Option<&Value>) -> Result<Option<usize>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return match u {
                    0 => Err(errors::INVALID_MAX_USER),
                    u => Ok(Some(usize::try_from(u).unwrap_or(usize::MAX))),
                };
            }
            match n.as_f64() {
                // A float such as 2.0 (clients whose numbers are all doubles); i64 negatives
                // and fractions are refused.
                Some(f) if f >= 1.0 && f.fract() == 0.0 && f.is_finite() => {
                    Ok(Some(if f >= usize::MAX as f64 {
                        usize::MAX
                    } else {
                        f as usize
                    }))
                }
                _ => Err(errors::INVALID_MAX_USER),
            }
        }
        Some(_) => Err(errors::INVALID_MAX_USER),
    }
}

/// A message `content`: a string of at most [`MAX_CONTENT_BYTES`] bytes.
fn content_arg(v: Option<&Value>) -> Result<&str, &'static str> {
    match v {
        Some(Value::String(s)) if s.len() <= MAX_CONTENT_BYTES => Ok(s),
        Some(Value::String(_)) => Err(errors::MESSAGE_TOO_LONG),
        _ => Err(errors::INVALID_CONTENT),
    }
}

/// The lobby dialect's entry in [`crate::DIALECTS`].
pub const DIALECT: crate::Dialect = crate::Dialect {
    name: "lobby",
    summary:
        "Named rooms and users (seed 004): login, joinRoom, leaveRoom, room/public/private messages",
    serve: |io, fixtures, faults| {
        // Rooms are created by their first joiner; the fixtures only name the first room
        // (for the `leak-to-first-room` fault).
        let first = fixtures.rooms.first().map(|r| r.room_name.as_str());
        install(io, Arc::new(LobbyState::new(faults).with_first_room(first)));
    },
    http: crate::Http::Banner,
    heartbeat: crate::Heartbeat::ENGINE_IO,
};

/// Registers the lobby dialect on namespace `/` of `io`.
///
/// Event handlers are registered in a connect middleware, which socketioxide awaits before it
/// sends CONNECT to the client (see [`crate::dorm::install`]).
pub fn install(io: &SocketIo, state: Arc<LobbyState>) {
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
    use serde_json::json;

    #[test]
    fn capacity_of_the_first_joiner() {
        let ok = [
            (None, None),
            (Some(json!(null)), None),
            (Some(json!(1)), Some(1)),
            (Some(json!(4)), Some(4)),
            (Some(json!(2.0)), Some(2)),
            (Some(json!(u64::MAX)), Some(usize::MAX)),
            (Some(json!(1e300)), Some(usize::MAX)),
        ];
        for (v, expected) in ok {
            assert_eq!(parse_capacity(v.as_ref()), Ok(expected), "{v:?}");
        }
        for bad in [
            json!(0),
            json!(-1),
            json!(0.5),
            json!(2.5),
            json!(-2.0),
            json!("2"),
            json!([2]),
            json!({"max": 2}),
            json!(true),
        ] {
            assert_eq!(
                parse_capacity(Some(&bad)),
                Err(errors::INVALID_MAX_USER),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_and_contents() {
        assert!(is_valid_name("a"));
        assert!(is_valid_name("__proto__"));
        assert!(is_valid_name(&"x".repeat(MAX_NAME_BYTES)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"x".repeat(MAX_NAME_BYTES + 1)));

        let max = json!("y".repeat(MAX_CONTENT_BYTES));
        assert_eq!(content_arg(Some(&max)).unwrap().len(), MAX_CONTENT_BYTES);
        assert_eq!(content_arg(Some(&json!(""))), Ok(""));
        let over = json!("y".repeat(MAX_CONTENT_BYTES + 1));
        assert_eq!(content_arg(Some(&over)), Err(errors::MESSAGE_TOO_LONG));
        for bad in [json!(1), json!(null), json!({}), json!(["a"])] {
            assert_eq!(
                content_arg(Some(&bad)),
                Err(errors::INVALID_CONTENT),
                "{bad}"
            );
        }
        assert_eq!(content_arg(None), Err(errors::INVALID_CONTENT));
    }
}
