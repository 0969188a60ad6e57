//! The `chat` dialect (seed 001): friends and groups over four Socket.IO namespaces of one
//! Engine.IO connection, presence notices, offline messages that survive a restart, history.
//!
//! | ns | client event | answer |
//! |---|---|---|
//! | `/` | `auth-c {sid}` | `auth-s {code}`: 1 ok, 0 unknown session, -1 server error |
//! | `/friend` | `sendfsmg {from, to, msg}` | `receivefsmg {from, to, msg}` on `/friend` of every connection of `to` |
//! | `/group` | `sendfsmg {from, to: group, msg}` | `receivefsmg {from, to, msg}` on `/group` of every connection of every online member, the sender's included |
//! | `/server` | `ctime` | `stime {time}` |
//! | `/server` | `caoff {from}` | `saoff {from: "off-line", to, flogs, glogs}`: the messages kept while the user had no connection, once |
//! | `/server` | `chistory {id, to, type, len}` | `shistory {id, to, type, data}`: the newest `len` messages, oldest first |
//!
//! Presence, on `/friend` of each connection of each online friend: `fonline {from, to, msg:
//! "online"}` when a user's authenticated connections go from 0 to 1, `foffline {.., msg:
//! "offline"}` from 1 to 0 (its `/` socket closed, reset or timed out).
//!
//! Decisions where the seed is silent (docs/dialects/chat.md):
//! - User ids on the wire are the fixture's user names; `sid` is the user's token.
//! - The user of an Engine.IO connection is set by `auth-c` on `/`; its other namespaces belong
//!   to that user. Any event on `/friend`, `/group` or `/server` before that is refused with
//!   `err` [`errors::NOT_AUTHENTICATED`] and has no effect. Errors go to the asking namespace as
//!   `err {error, event}`.
//! - `from`, when given, must be the authenticated user ([`errors::FORGED_FROM`]); a friend
//!   message goes to friends only ([`errors::NOT_A_FRIEND`]), a group message from members only.
//!   `msg` is a string of at most [`MAX_MSG_BYTES`] bytes.
//! - A message that reaches none of a user's connections (no connection with that namespace
//!   open) is stored for that user and handed over in the `saoff` answering its next `caoff`,
//!   then deleted. Friend and group messages are kept in history ([`HISTORY_KEPT`] per
//!   conversation).
//!
//! The store is SQLite (`--chat-db PATH`, default [`crate::store::DEFAULT_FILE`]; `:memory:`
//! for tests), in WAL mode with `synchronous=NORMAL`: a committed message survives the process
//! being killed. A PostgreSQL store would implement the same four statements (keep, take, log,
//! recent) on a pool behind a `postgres://` URL; the send path would then await the insert
//! before answering, as it does here under the lock (see docs/dialects/chat.md).
//!
//! Every handler runs inline ([`crate::inline`]) under one lock: "is the user online" and
//! "keep it for later" are decided atomically with authentication and `caoff`, so a message is
//! either delivered live or kept, never neither.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler as _;
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;

use crate::faults::FaultSet;
use crate::fixtures::social::Social;
use crate::fixtures::Fixtures;
use crate::inline::{EventData, Inline};

/// Longest accepted `msg`, in bytes of UTF-8.
pub const MAX_MSG_BYTES: usize = 16 * 1024;

/// Messages kept per conversation for `chistory`; a larger `len` gets these.
pub const HISTORY_KEPT: usize = 1000;

/// The most bytes of kept messages (their JSON) one `saoff` carries: a larger backlog is handed
/// over in parts, one per `caoff`, each with `more: true` while more are kept. Under the 64 KiB
/// frame a client is told it may be sent ([`crate::MAX_PAYLOAD_BYTES`]) with room for the
/// envelope; one message (at most [`MAX_MSG_BYTES`], escaped) always fits.
pub const SAOFF_BUDGET_BYTES: usize = 48 * 1024;

/// The namespaces, in the order a client opens them.
pub const NAMESPACES: [&str; 4] = ["/", "/friend", "/group", "/server"];

/// The event errors are sent on, on the namespace of the refused request.
pub const ERROR_EVENT: &str = "err";

/// The error texts (all the reference server's own: the seed names none).
pub mod errors {
    pub const NOT_AUTHENTICATED: &str = "not authenticated";
    pub const ALREADY_AUTHENTICATED: &str = "already authenticated as another user";
    pub const INVALID_PAYLOAD: &str = "invalid payload";
    pub const FORGED_FROM: &str = "from is not the authenticated user";
    pub const NO_SUCH_USER: &str = "no such user";
    pub const NOT_A_FRIEND: &str = "not a friend";
    pub const NO_SUCH_GROUP: &str = "no such group";
    pub const NOT_A_MEMBER: &str = "not a member of the group";
    pub const MESSAGE_TOO_LONG: &str = "message too long";
    pub const UNKNOWN_EVENT: &str = "unknown event on this namespace";
    pub const STORE_FAILED: &str = "server error";
}

/// One Engine.IO connection: its user once authenticated, and its namespace sockets.
#[derive(Default)]
struct Link {
    user: Option<u64>,
    sockets: HashMap<&'static str, SocketRef>,
}

#[derive(Default)]
struct Conns {
    links: HashMap<usize, Link>,
    /// User id → its authenticated connections.
    online: HashMap<u64, BTreeSet<usize>>,
}

impl Conns {
    /// The `ns` sockets of every connection of `user`.
    fn sockets_of(&self, user: u64, ns: &str) -> Vec<SocketRef> {
        self.online
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|key| self.links.get(key)?.sockets.get(ns).cloned())
            .collect()
    }
}

struct Inner {
    conns: Conns,
    store: Store,
}

/// The shared state of one chat server.
pub struct ChatState {
    by_token: HashMap<String, u64>,
    by_name: HashMap<String, u64>,
    names: HashMap<u64, String>,
    social: Social,
    faults: FaultSet,
    inner: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Engine.IO connection a namespace socket belongs to. socketioxide gives every namespace
/// socket its own id and keeps the Engine.IO socket private; the HTTP request that opened the
/// connection is one object shared by all its namespace sockets, so its address names the
/// connection for as long as any of them lives (entries are removed with the last one).
fn link_key(socket: &SocketRef) -> usize {
    std::ptr::from_ref(socket.req_parts()) as usize
}

type Outcome = Result<(), &'static str>;

impl ChatState {
    /// Opens (or creates) the store at `location` (`:memory:` for none).
    pub fn open(
        fixtures: &Fixtures,
        faults: FaultSet,
        location: &str,
    ) -> Result<ChatState, String> {
        let store = Store::open(location)
            .map_err(|e| format!("cannot open the chat store {location:?}: {e}"))?;
        Ok(ChatState {
            by_token: fixtures
                .users
                .iter()
                .map(|u| (u.token.clone(), u.user_id))
                .collect(),
            by_name: fixtures
                .users
                .iter()
                .map(|u| (u.username.clone(), u.user_id))
                .collect(),
            names: fixtures
                .users
                .iter()
                .map(|u| (u.user_id, u.username.clone()))
                .collect(),
            social: Social::of(fixtures),
            faults,
            inner: Mutex::new(Inner {
                conns: Conns::default(),
                store,
            }),
        })
    }

    /// Messages kept for `user` (by name), not yet handed over.
    pub fn pending_offline(&self, user: &str) -> usize {
        let Some(&id) = self.by_name.get(user) else {
            return 0;
        };
        lock(&self.inner).store.pending(id).unwrap_or(0)
    }

    fn name(&self, id: u64) -> &str {
        self.names.get(&id).map_or("", String::as_str)
    }

    // ---- connection life cycle ----

    fn attach(self: &Arc<Self>, ns: &'static str, socket: &SocketRef) {
        lock(&self.inner)
            .conns
            .links
            .entry(link_key(socket))
            .or_default()
            .sockets
            .insert(ns, socket.clone());
        let events: &[&'static str] = match ns {
            "/" => &["auth-c"],
            "/friend" | "/group" => &["sendfsmg"],
            _ => &["ctime", "caoff", "chistory"],
        };
        for &event in events {
            let state = Arc::clone(self);
            socket.on(
                event,
                Inline(move |s: SocketRef, data: EventData| {
                    let outcome = match data {
                        Err(_) => Err(errors::INVALID_PAYLOAD),
                        Ok(data) => state.handle(ns, event, &s, &data),
                    };
                    if let Err(reason) = outcome {
                        s.emit(ERROR_EVENT, &json!({"error": reason, "event": event}))
                            .ok();
                    }
                }),
            );
        }
        socket.on_fallback(Inline(|s: SocketRef, _: EventData| {
            s.emit(ERROR_EVENT, &json!({"error": errors::UNKNOWN_EVENT}))
                .ok();
        }));
        let state = Arc::clone(self);
        socket.on_disconnect(Inline(move |s: SocketRef, reason: DisconnectReason| {
            // A server shutting down tells nobody: its users did not go offline by themselves,
            // and a killed process could not tell them either.
            let announce = !matches!(reason, DisconnectReason::ClosingServer);
            state.detach(ns, &s, announce)
        }));
    }

    /// The `/` socket gone ends the connection's session: the user is offline on it (and
    /// `foffline` goes out if it was the user's last, when `announce`).
    fn detach(&self, ns: &'static str, socket: &SocketRef, announce: bool) {
        let key = link_key(socket);
        let mut inner = lock(&self.inner);
        let conns = &mut inner.conns;
        let Some(link) = conns.links.get_mut(&key) else {
            return;
        };
        if link.sockets.get(ns).is_some_and(|s| s.id == socket.id) {
            link.sockets.remove(ns);
        }
        let user = if ns == "/" { link.user.take() } else { None };
        if link.sockets.is_empty() {
            conns.links.remove(&key);
        }
        if let Some(user) = user {
            let last = match conns.online.get_mut(&user) {
                Some(set) => {
                    set.remove(&key);
                    set.is_empty()
                }
                None => false,
            };
            if last {
                conns.online.remove(&user);
            }
            if announce && (last || self.faults.chat_presence_every_connection) {
                self.presence(conns, user, "foffline", "offline");
            }
        }
    }

    /// `event` on `/friend` to every connection of every online friend of `user`.
    fn presence(&self, conns: &Conns, user: u64, event: &str, msg: &str) {
        let from = self.name(user);
        for friend in self.social.friends_of(user) {
            let out = json!({"from": from, "to": self.name(friend), "msg": msg});
            for s in conns.sockets_of(friend, "/friend") {
                s.emit(event, &out).ok();
            }
        }
    }

    // ---- dispatch ----

    fn handle(&self, ns: &'static str, event: &str, socket: &SocketRef, data: &Value) -> Outcome {
        let key = link_key(socket);
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if event == "auth-c" {
            return self.auth(inner, key, socket, data);
        }
        let user = inner.conns.links.get(&key).and_then(|l| l.user);
        let user = match user {
            Some(user) => user,
            None if self.faults.chat_accept_before_auth => {
                // The fault: act as the user the payload claims to be.
                let claimed = data.get("from").and_then(Value::as_str).unwrap_or("");
                *self.by_name.get(claimed).ok_or(errors::NOT_AUTHENTICATED)?
            }
            None => return Err(errors::NOT_AUTHENTICATED),
        };
        match (ns, event) {
            ("/friend", _) => self.friend_message(inner, user, data),
            ("/group", _) => self.group_message(inner, user, data),
            (_, "ctime") => {
                let time = crate::rfc3339_millis(chrono::Utc::now());
                socket.emit("stime", &json!({ "time": time })).ok();
                Ok(())
            }
            (_, "caoff") => self.offline_sync(inner, user, socket),
            _ => self.history(inner, user, socket, data),
        }
    }

    fn auth(&self, inner: &mut Inner, key: usize, socket: &SocketRef, data: &Value) -> Outcome {
        let user = data
            .get("sid")
            .and_then(Value::as_str)
            .and_then(|sid| self.by_token.get(sid).copied());
        let Some(user) = user else {
            socket.emit("auth-s", &json!({"code": 0})).ok();
            return Ok(());
        };
        let conns = &mut inner.conns;
        let Some(link) = conns.links.get_mut(&key) else {
            // The `/` socket is disconnecting.
            return Ok(());
        };
        match link.user {
            Some(u) if u == user => {}
            Some(_) => return Err(errors::ALREADY_AUTHENTICATED),
            None => {
                link.user = Some(user);
                let set = conns.online.entry(user).or_default();
                set.insert(key);
                let first = set.len() == 1;
                if first || self.faults.chat_presence_every_connection {
                    self.presence(conns, user, "fonline", "online");
                }
            }
        }
        socket.emit("auth-s", &json!({"code": 1})).ok();
        Ok(())
    }

    /// `{from?, to, msg}` checked: the target and the text.
    fn message<'d>(&self, user: u64, data: &'d Value) -> Result<(&'d str, &'d str), &'static str> {
        let Value::Object(o) = data else {
            return Err(errors::INVALID_PAYLOAD);
        };
        match o.get("from") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) if *f == self.name(user) => {}
            Some(_) if self.faults.chat_accept_before_auth => {}
            Some(_) => return Err(errors::FORGED_FROM),
        }
        let (Some(Value::String(to)), Some(Value::String(msg))) = (o.get("to"), o.get("msg"))
        else {
            return Err(errors::INVALID_PAYLOAD);
        };
        if msg.len() > MAX_MSG_BYTES {
            return Err(errors::MESSAGE_TOO_LONG);
        }
        Ok((to, msg))
    }

    fn friend_message(&self, inner: &mut Inner, user: u64, data: &Value) -> Outcome {
        let (to, msg) = self.message(user, data)?;
        let &target = self.by_name.get(to).ok_or(errors::NO_SUCH_USER)?;
        if !self.social.are_friends(user, target) {
            return Err(errors::NOT_A_FRIEND);
        }
        let out = json!({"from": self.name(user), "to": to, "msg": msg});
        let body = out.to_string();
        inner
            .store
            .log(&conversation(user, target), &body)
            .map_err(|_| errors::STORE_FAILED)?;
        // The `misdeliver` fault: the message goes to the target's next user instead.
        let receiver = if self.faults.chat_misdeliver {
            self.names
                .keys()
                .copied()
                .filter(|&id| id > target)
                .min()
                .unwrap_or(target)
        } else {
            target
        };
        self.deliver(inner, receiver, "/friend", &out, &body, Kind::Friend)
    }

    fn group_message(&self, inner: &mut Inner, user: u64, data: &Value) -> Outcome {
        let (to, msg) = self.message(user, data)?;
        let members = self.social.members(to).ok_or(errors::NO_SUCH_GROUP)?;
        if !members.contains(&user) {
            return Err(errors::NOT_A_MEMBER);
        }
        let out = json!({"from": self.name(user), "to": to, "msg": msg});
        let body = out.to_string();
        inner
            .store
            .log(&format!("g:{to}"), &body)
            .map_err(|_| errors::STORE_FAILED)?;
        for &member in members {
            self.deliver(inner, member, "/group", &out, &body, Kind::Group)?;
        }
        Ok(())
    }

    /// `receivefsmg` on `ns` of every connection of `user`; kept for it when none gets it.
    fn deliver(
        &self,
        inner: &mut Inner,
        user: u64,
        ns: &str,
        out: &Value,
        body: &str,
        kind: Kind,
    ) -> Outcome {
        let reached = inner
            .conns
            .sockets_of(user, ns)
            .iter()
            .filter(|s| s.emit("receivefsmg", out).is_ok())
            .count();
        if reached == 0 && !self.faults.chat_lose_offline {
            inner
                .store
                .keep(user, kind, body)
                .map_err(|_| errors::STORE_FAILED)?;
        }
        Ok(())
    }

    fn offline_sync(&self, inner: &mut Inner, user: u64, socket: &SocketRef) -> Outcome {
        let (kept, more) = inner
            .store
            .take(user, SAOFF_BUDGET_BYTES)
            .map_err(|_| errors::STORE_FAILED)?;
        let (mut flogs, mut glogs) = (Vec::new(), Vec::new());
        let mut last = 0;
        for (seq, kind, body) in kept {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            match kind {
                Kind::Friend => flogs.push(v),
                Kind::Group => glogs.push(v),
            }
            last = seq;
        }
        let out = json!({
            "from": "off-line",
            "to": self.name(user),
            "flogs": flogs,
            "glogs": glogs,
            "more": more,
        });
        // Deleted only once the answer is on its way: a connection already closing keeps them.
        if socket.emit("saoff", &out).is_ok() && last > 0 && !self.faults.chat_offline_twice {
            inner
                .store
                .forget(user, last)
                .map_err(|_| errors::STORE_FAILED)?;
        }
        Ok(())
    }

    fn history(&self, inner: &mut Inner, user: u64, socket: &SocketRef, data: &Value) -> Outcome {
        let (Some(Value::String(to)), Some(Value::String(kind))) =
            (data.get("to"), data.get("type"))
        else {
            return Err(errors::INVALID_PAYLOAD);
        };
        let len = match data.get("len").and_then(Value::as_u64) {
            Some(n) => (n as usize).min(HISTORY_KEPT),
            None => return Err(errors::INVALID_PAYLOAD),
        };
        let conv = match kind.as_str() {
            "friend" => conversation(user, *self.by_name.get(to).ok_or(errors::NO_SUCH_USER)?),
            "group" => {
                let members = self.social.members(to).ok_or(errors::NO_SUCH_GROUP)?;
                if !members.contains(&user) {
                    return Err(errors::NOT_A_MEMBER);
                }
                format!("g:{to}")
            }
            _ => return Err(errors::INVALID_PAYLOAD),
        };
        let mut data_out: Vec<Value> = inner
            .store
            .recent(&conv, len)
            .map_err(|_| errors::STORE_FAILED)?
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or(Value::Null))
            .collect();
        if self.faults.chat_history_unordered {
            data_out.reverse();
        }
        let id = data
            .get("id")
            .cloned()
            .unwrap_or_else(|| json!(self.name(user)));
        socket
            .emit(
                "shistory",
                &json!({"id": id, "to": to, "type": kind, "data": data_out}),
            )
            .ok();
        Ok(())
    }
}

/// The history key of a friend conversation (the same both ways).
fn conversation(a: u64, b: u64) -> String {
    format!("f:{}:{}", a.min(b), a.max(b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Friend,
    Group,
}

/// The SQLite store: messages kept for offline users, and the history.
struct Store {
    db: Connection,
}

impl Store {
    fn open(location: &str) -> rusqlite::Result<Store> {
        let db = Connection::open(location)?;
        // WAL with NORMAL sync: a commit survives the process being killed (not a power cut),
        // at a fraction of FULL's fsyncs.
        db.pragma_update(None, "journal_mode", "WAL").ok();
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS offline (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 user_id INTEGER NOT NULL,
                 kind INTEGER NOT NULL,
                 body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS offline_user ON offline(user_id, seq);
             CREATE TABLE IF NOT EXISTS history (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 conv TEXT NOT NULL,
                 body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS history_conv ON history(conv, seq);",
        )?;
        Ok(Store { db })
    }

    fn keep(&self, user: u64, kind: Kind, body: &str) -> rusqlite::Result<()> {
        let kind = matches!(kind, Kind::Group) as i64;
        self.db
            .prepare_cached("INSERT INTO offline (user_id, kind, body) VALUES (?1, ?2, ?3)")?
            .execute(params![user as i64, kind, body])?;
        Ok(())
    }

    /// The oldest messages kept for `user`, as (seq, kind, body), as many as fit in `budget`
    /// bytes of bodies (at least one); and whether more are kept.
    #[allow(clippy::type_complexity)]
    fn take(&self, user: u64, budget: usize) -> rusqlite::Result<(Vec<(i64, Kind, String)>, bool)> {
        let mut stmt = self.db.prepare_cached(
            "SELECT seq, kind, body FROM offline WHERE user_id = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query_map(params![user as i64], |r| {
            let kind = if r.get::<_, i64>(1)? == 1 {
                Kind::Group
            } else {
                Kind::Friend
            };
            Ok((r.get(0)?, kind, r.get::<_, String>(2)?))
        })?;
        let (mut taken, mut bytes) = (Vec::new(), 0);
        for row in rows.by_ref() {
            let row = row?;
            bytes += row.2.len();
            if bytes > budget && !taken.is_empty() {
                return Ok((taken, true));
            }
            taken.push(row);
        }
        Ok((taken, false))
    }

    fn forget(&self, user: u64, through: i64) -> rusqlite::Result<()> {
        self.db
            .prepare_cached("DELETE FROM offline WHERE user_id = ?1 AND seq <= ?2")?
            .execute(params![user as i64, through])?;
        Ok(())
    }

    fn pending(&self, user: u64) -> rusqlite::Result<usize> {
        self.db
            .prepare_cached("SELECT COUNT(*) FROM offline WHERE user_id = ?1")?
            .query_row(params![user as i64], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
    }

    fn log(&self, conv: &str, body: &str) -> rusqlite::Result<()> {
        self.db
            .prepare_cached("INSERT INTO history (conv, body) VALUES (?1, ?2)")?
            .execute(params![conv, body])?;
        let seq = self.db.last_insert_rowid();
        // Keep the newest HISTORY_KEPT of the conversation; pruning every 64th insert keeps
        // the cost per message flat.
        if seq % 64 == 0 {
            self.db
                .prepare_cached(
                    "DELETE FROM history WHERE conv = ?1 AND seq <= (SELECT seq FROM history \
                     WHERE conv = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![conv, HISTORY_KEPT as i64])?;
        }
        Ok(())
    }

    /// The newest `len` messages of `conv`, oldest first.
    fn recent(&self, conv: &str, len: usize) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT body FROM (SELECT seq, body FROM history WHERE conv = ?1 \
             ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![conv, len as i64], |r| r.get(0))?;
        rows.collect()
    }
}

/// Registers the four namespaces; handlers are set in a connect middleware, before CONNECT is
/// answered (see [`crate::inline`]).
pub fn install(io: &SocketIo, state: Arc<ChatState>) {
    for ns in NAMESPACES {
        let state = Arc::clone(&state);
        let middleware = move |socket: SocketRef| {
            let state = Arc::clone(&state);
            async move {
                state.attach(ns, &socket);
                Ok::<(), Infallible>(())
            }
        };
        io.ns(ns, (async |_: SocketRef| {}).with(middleware));
    }
}

/// The chat dialect's entry in [`crate::DIALECTS`].
pub const DIALECT: crate::Dialect = crate::Dialect {
    name: "chat",
    summary: "Friends and groups on four namespaces (seed 001): auth-c, sendfsmg, presence, offline sync, history",
    serve: |io, fixtures, faults| {
        // The `volatile-store` fault: memory, whatever the server was told.
        let location = if faults.chat_volatile_store {
            crate::store::IN_MEMORY.to_string()
        } else {
            crate::store::location()
        };
        match ChatState::open(fixtures, faults, &location) {
            Ok(state) => install(io, Arc::new(state)),
            Err(why) => crate::store::fail(why),
        }
    },
    http: crate::Http::Banner,
    heartbeat: crate::Heartbeat::ENGINE_IO,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_keeps_takes_and_orders_history() {
        let s = Store::open(":memory:").unwrap();
        s.keep(1, Kind::Friend, "a").unwrap();
        s.keep(1, Kind::Group, "b").unwrap();
        s.keep(2, Kind::Friend, "c").unwrap();
        let (kept, more) = s.take(1, usize::MAX).unwrap();
        assert!(!more);
        assert_eq!(
            kept.iter()
                .map(|(_, k, b)| (*k, b.as_str()))
                .collect::<Vec<_>>(),
            vec![(Kind::Friend, "a"), (Kind::Group, "b")]
        );
        s.forget(1, kept[1].0).unwrap();
        assert_eq!(s.pending(1).unwrap(), 0);
        assert_eq!(s.pending(2).unwrap(), 1);
        for i in 0..5 {
            s.log("f:1:2", &i.to_string()).unwrap();
        }
        assert_eq!(s.recent("f:1:2", 3).unwrap(), vec!["2", "3", "4"]);
        assert_eq!(conversation(2, 1), conversation(1, 2));
    }

    #[test]
    fn a_backlog_is_taken_in_parts_of_the_budget_oldest_first() {
        let s = Store::open(":memory:").unwrap();
        for i in 0..10 {
            s.keep(1, Kind::Friend, &format!("{i:>10}")).unwrap();
        }
        // 25 bytes hold two bodies of 10; one body always goes, whatever its size.
        let (part, more) = s.take(1, 25).unwrap();
        assert_eq!(part.len(), 2);
        assert!(more);
        let (part, more) = s.take(1, 5).unwrap();
        assert_eq!(part.len(), 1);
        assert!(more);
        s.forget(1, part[0].0).unwrap();
        let (rest, more) = s.take(1, 1000).unwrap();
        assert_eq!(rest.len(), 9);
        assert_eq!(rest[0].2, format!("{:>10}", 1));
        assert!(!more);
    }

    #[test]
    fn a_file_store_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("roomrig-chat-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.sqlite3");
        let path = path.to_str().unwrap();
        Store::open(path)
            .unwrap()
            .keep(7, Kind::Friend, "x")
            .unwrap();
        assert_eq!(Store::open(path).unwrap().pending(7).unwrap(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
