//! Dialects as data: the events a server sends (their shapes and who receives them) and the
//! operations a client can perform (how to build the request and what it must cause).
//!
//! The oracle and the driver are generic over this table; a dialect adds a module with its
//! table and a few request builders, never a copy of the checking logic, and one line in
//! [`DIALECTS`], the registry everything keyed by a dialect's name looks it up in.

pub mod chat;
pub mod dorm;
pub mod lobby;
pub mod push;
pub mod suite;
pub mod voice;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::oracle::rules::{Cap, Level, RuleSpec};
use crate::oracle::shape::Ty;
use crate::oracle::RoomKey;

/// Every dialect roomrig knows by name, implemented or not (see docs/dialects/ for the
/// implemented ones): a scenario naming one of the others is told it is not implemented yet.
pub const NAMES: &[&str] = &["dorm", "chat", "push", "voice", "lobby"];

/// One implemented dialect: everything the driver keys by a dialect's name.
pub struct Dialect {
    /// Its table: events, operations, rules, the text of its docs page.
    pub spec: &'static DialectSpec,
    /// Its conformance suite (`roomrig check`).
    pub suite: &'static suite::Suite,
    /// How its clients connect: Socket.IO when `None`, else a plain WebSocket shaped so.
    pub websocket: Option<&'static WebSocketDialect>,
    /// The heartbeat the embedded reference server keeps when a scenario's `server:` block
    /// names none: Engine.IO's for Socket.IO, the WebSocket dialect's own otherwise.
    pub heartbeat: Heartbeat,
}

/// A server's heartbeat: how often a ping goes, and how long past that a silent connection is
/// kept before the server closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
}

impl Heartbeat {
    /// Engine.IO's defaults (socket.io's pingInterval 25 s, pingTimeout 20 s).
    pub const ENGINE_IO: Heartbeat = Heartbeat {
        interval: std::time::Duration::from_secs(25),
        timeout: std::time::Duration::from_secs(20),
    };
}

/// A dialect spoken over a plain WebSocket: how a client of a user opens its connection.
pub struct WebSocketDialect {
    /// The framing of one connection of the user whose token is `sid`, with the heartbeat
    /// interval the server advertised and how long past it the server waits.
    pub framing: fn(
        sid: &str,
        ping_interval: std::time::Duration,
        ping_timeout: std::time::Duration,
    ) -> Box<dyn crate::transport::Framing>,
    /// The query parameter that names the user in the WebSocket URL (voice: `sid`).
    pub user_query: &'static str,
    /// `GET` path whose JSON answer advertises the heartbeat interval in seconds, and the field
    /// (voice: `/api/websocket/end_point`, `ping_interval`).
    pub discovery: Option<(&'static str, &'static str)>,
    /// The heartbeat interval when nothing advertises one, and the silence past it after which
    /// the server closes a connection.
    pub ping_interval: std::time::Duration,
    pub ping_timeout: std::time::Duration,
    /// Events the client answers at once with an operation, as the seed's client does (voice:
    /// `exit_room` with `exit_room_report`); the operation gets the event's `user_id` and
    /// `channel_name` as its `user_id` and `channel` parameters.
    pub answers: &'static [(&'static str, &'static str)],
}

/// The registry: every implemented dialect, in listing order (`rules`, `check`, messages). The
/// reference server registers its own modules (`reference_server::DIALECTS`); the two lists
/// agree on names only (see the tests), no judging code is shared.
pub static DIALECTS: &[Dialect] = &[
    Dialect::new(&dorm::SPEC, &dorm::suite::SUITE),
    Dialect::new(&lobby::SPEC, &lobby::suite::SUITE),
    Dialect::new(&chat::SPEC, &chat::suite::SUITE),
    Dialect::websocket(&voice::SPEC, &voice::suite::SUITE, &voice::WIRE),
    Dialect::new(&push::SPEC, &push::suite::SUITE),
];

impl Dialect {
    pub const fn new(spec: &'static DialectSpec, suite: &'static suite::Suite) -> Dialect {
        Dialect {
            spec,
            suite,
            websocket: None,
            heartbeat: Heartbeat::ENGINE_IO,
        }
    }

    /// A dialect whose clients connect over a plain WebSocket.
    pub const fn websocket(
        spec: &'static DialectSpec,
        suite: &'static suite::Suite,
        websocket: &'static WebSocketDialect,
    ) -> Dialect {
        Dialect {
            spec,
            suite,
            websocket: Some(websocket),
            heartbeat: Heartbeat {
                interval: websocket.ping_interval,
                timeout: websocket.ping_timeout,
            },
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }
}

/// The implemented dialect of this name.
pub fn find(name: &str) -> Option<&'static Dialect> {
    DIALECTS.iter().find(|d| d.name() == name)
}

/// The implemented dialects' names, in listing order.
pub fn implemented() -> Vec<&'static str> {
    DIALECTS.iter().map(Dialect::name).collect()
}

/// The whole description of one dialect.
pub struct DialectSpec {
    pub name: &'static str,
    /// Events the server sends to clients.
    pub events: &'static [EventSpec],
    /// Operations a flow can perform.
    pub ops: &'static [OpSpec],
    /// Where errors arrive.
    pub errors: ErrorStyle,
    /// For errors on one channel: which requests can cause each known error text, so an error
    /// is paired by what it says, not by queue position alone. A text not listed may answer
    /// any request.
    pub error_causes: &'static [(&'static str, &'static [&'static str])],
    /// The payload of an error.
    pub error_shape: Ty,
    /// Content checks of a reply beyond its shape (e.g. `last_data` names the joiner).
    pub check_reply: fn(event: &str, payload: &Value, ctx: &OpContext) -> Result<(), String>,
    /// The fixture room a join reply says the server put the joiner in (dorm:
    /// `last_data.room_data.room_id`), compared with the users file's room: a difference means
    /// the users file does not describe the server (a fixture mismatch stops the run, exit 2),
    /// not that the server broke a rule. `None` where replies name no fixture room.
    pub placed_in: Option<fn(event: &str, payload: &Value) -> Option<u64>>,
    /// What the server must tell the others when a logged-in client departs (close, reset,
    /// dead heartbeat); `None`: nobody is told.
    pub departure: Option<Departure>,
    /// Whether every connection is in the [`EVERYONE`] room (dialects with "every socket"
    /// broadcasts).
    pub uses_everyone: bool,
    /// The rule catalogue: the level of each rule id and the seed section it comes from.
    pub rules: &'static [RuleSpec],
    /// The error texts the seed names, where it names any: an `expect_error` with another
    /// text (or none) expects what only the reference server chose, judged at most SHOULD.
    pub seed_errors: Option<&'static [&'static str]>,
    /// The protocol in this project's words, for `roomrig rules --markdown`.
    pub doc: &'static str,
}

/// Where a dialect's errors arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// On the request's own event, as an object with this field (`{error: "..."}`).
    SameEvent { field: &'static str },
    /// On one event for every request (`err`), so an error names no request.
    Channel { event: &'static str },
    /// On one event shared with the replies, told apart by a field: an error is a message on
    /// `event` whose `field` is one of `codes` (push: `downmsg` with `code` 2003 or 2004); the
    /// code is its text. Like a channel, an error names no request.
    Coded {
        event: &'static str,
        field: &'static str,
        codes: &'static [&'static str],
    },
}

impl ErrorStyle {
    /// Whether a received `event` with this payload is an error.
    pub fn is_error(&self, event: &str, payload: &crate::oracle::json::Json<'_>) -> bool {
        match *self {
            ErrorStyle::SameEvent { field } => payload.has_key(field),
            ErrorStyle::Channel { event: channel } => event == channel,
            ErrorStyle::Coded {
                event: on,
                field,
                codes,
            } => event == on && field_text(payload, field).is_some_and(|c| codes.contains(&&*c)),
        }
    }
}

/// A payload field's value as text: a string as it is, a number in decimal (`"2002"` and
/// `2002` name the same code).
pub fn field_text<'p>(
    payload: &'p crate::oracle::json::Json<'_>,
    field: &str,
) -> Option<std::borrow::Cow<'p, str>> {
    use crate::oracle::json::Json;
    match payload.get(field)? {
        Json::Str(s) => Some(std::borrow::Cow::Borrowed(&**s)),
        Json::Num(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Where an event travels, and how it is told apart from other events of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    /// The Socket.IO namespace (`/` for a one-namespace dialect: the connection's own; and for
    /// plain WebSocket).
    pub namespace: &'static str,
    /// The event's name on the wire, when it is not the spec's name (several specs share one
    /// wire name and differ by `tag`).
    pub event: Option<&'static str>,
    /// A payload field and the value that make a message this event (push: `downmsg` with
    /// `code` "2002" is the login reply).
    pub tag: Option<(&'static str, &'static str)>,
}

impl Wire {
    /// The spec's own name, on the dialect's only namespace, with no tag.
    pub const SAME: Wire = Wire {
        namespace: "/",
        event: None,
        tag: None,
    };
    /// The spec's own name on `namespace`.
    pub const fn on(namespace: &'static str) -> Wire {
        Wire {
            namespace,
            event: None,
            tag: None,
        }
    }
    /// `event` on `namespace` whose `field` is `value`.
    pub const fn tagged(
        namespace: &'static str,
        event: &'static str,
        field: &'static str,
        value: &'static str,
    ) -> Wire {
        Wire {
            namespace,
            event: Some(event),
            tag: Some((field, value)),
        }
    }
}

/// The notices a departure causes (sender: the departed user).
#[derive(Debug, Clone, Copy)]
pub struct Departure {
    /// Sent to the remaining members of each room the user was in; FIFO value: the room name.
    pub each_room: Option<&'static str>,
    /// Then sent to every other connection; FIFO value: none.
    pub everyone: Option<&'static str>,
    /// Then sent to every connection of each friend of the departed user (chat: `foffline`;
    /// friends from the users file); FIFO value: none. One client per user: its departure is
    /// the user's last.
    pub friends: Option<&'static str>,
    /// Sent to exactly one remaining member of each room the user was in (no login needed),
    /// another one after `failover` microseconds without its report (voice: `exit_room`).
    pub one_member: Option<(&'static str, u64)>,
}

impl DialectSpec {
    /// The namespaces a client opens beside `/`, on the same Engine.IO connection: every one
    /// the table's events or operations travel on, in table order (none for a one-namespace
    /// dialect).
    pub fn namespaces(&self) -> Vec<String> {
        let events = self.events.iter().map(|e| e.wire.namespace);
        let ops = self.ops.iter().filter_map(|o| match o.via {
            Via::Emit { namespace } => Some(namespace),
            Via::Http { .. } => None,
        });
        let mut out: Vec<String> = Vec::new();
        for ns in events.chain(ops) {
            if ns != "/" && !out.iter().any(|n| n == ns) {
                out.push(ns.to_string());
            }
        }
        out
    }

    pub fn op(&self, name: &str) -> Option<&OpSpec> {
        self.ops.iter().find(|o| o.name == name)
    }
    /// The event a received message is: by namespace, wire name and tag.
    pub fn classify(
        &self,
        namespace: &str,
        name: &str,
        payload: &crate::oracle::json::Json<'_>,
    ) -> Option<&EventSpec> {
        self.events.iter().find(|e| {
            e.wire.namespace == namespace
                && e.wire.event.unwrap_or(e.name) == name
                && e.wire
                    .tag
                    .is_none_or(|(f, v)| field_text(payload, f).is_some_and(|t| t == v))
        })
    }

    pub fn event(&self, name: &str) -> Option<(usize, &EventSpec)> {
        self.events.iter().enumerate().find(|(_, e)| e.name == name)
    }
    /// The requests that can cause an error with this text (`None`: unknown text, any request).
    pub fn error_sources(&self, text: &str) -> Option<&'static [&'static str]> {
        self.error_causes
            .iter()
            .find(|(t, _)| *t == text)
            .map(|(_, requests)| *requests)
    }

    /// The cap on what an `expect_error` (`true` or a text) may be judged at: none when the
    /// seed names that text, SHOULD when it names texts but not this one.
    pub fn error_cap(&self, text: Option<&str>) -> Option<Cap> {
        let named = self.seed_errors?;
        match text {
            Some(t) if named.contains(&t) => None,
            _ => Some(Cap {
                level: Level::Should,
                source: "reference-server decision: the seed does not name this error",
            }),
        }
    }
}

/// Looks a dialect's table up by name; only implemented dialects pass scenario parsing.
pub fn spec(name: &str) -> &'static DialectSpec {
    match find(name) {
        Some(d) => d.spec,
        None => panic!("dialect `{name}` has no spec (scenario parsing should have refused it)"),
    }
}

/// The room of every connection (for "every socket" deliveries).
pub const EVERYONE: RoomKey = u64::MAX;

/// The room key of a named room (FNV-1a; the top bit is set so fixture ids never collide).
pub fn named_room(name: &str) -> RoomKey {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h | (1 << 63)).min(EVERYONE - 1)
}

/// The room that holds a user's own connections (for "to one user" deliveries).
pub fn user_room(username: &str) -> RoomKey {
    named_room(&format!("\0user:{username}"))
}

/// A server→client event.
pub struct EventSpec {
    /// The event's id in rule ids (its wire name unless `wire` says otherwise).
    pub name: &'static str,
    /// Namespace, wire name and tag.
    pub wire: Wire,
    pub shape: Ty,
    /// Fields that must not appear (e.g. a credential).
    pub forbidden: &'static [&'static str],
    /// How a receipt is matched to the send that caused it.
    pub attribution: Attribution,
    /// Which room's broadcast a receipt belongs to.
    pub room: RoomOf,
}

/// Which room a received broadcast belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomOf {
    /// The sender's fixture room (dorm: the payload names no room).
    SenderHome,
    /// The room named by this payload field.
    Field(&'static str),
    /// Every connection.
    Everyone,
    /// The receiving user's own room (a private message).
    ReceiverUser,
}

/// How the payload names the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKey {
    UserId(&'static str),
    /// The user id field, or failing it the sender's token (a seed that echoes the token).
    UserIdOrToken {
        id: &'static str,
        token: &'static str,
    },
    Username(&'static str),
}

impl SenderKey {
    pub fn field(self) -> &'static str {
        match self {
            SenderKey::UserId(f) | SenderKey::Username(f) => f,
            SenderKey::UserIdOrToken { id, .. } => id,
        }
    }
}

/// How a receipt is tied to exactly one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// A reply: matched to the requester's pending request.
    Reply,
    /// The driver writes an id into this string field of the payload (sender, sequence):
    /// duplicates, strays and losses are exact.
    ContentId {
        field: &'static str,
        sender: SenderKey,
    },
    /// The payload carries only the sender and maybe a value: matched per sender in FIFO
    /// order on `value_field` (weaker: a loss and a reorder of equal values look alike).
    SenderFifo {
        sender: SenderKey,
        value_field: Option<&'static str>,
    },
    /// A kick ([`Effect::Kick`]): it names no sender, so it is matched to the oldest kick the
    /// receiver is owed in the room its `room` names; the receiver is out of that room.
    Kicked,
    /// A reply that also hands over the deliveries kept for this user while it was offline
    /// ([`Effect::Deferrable`]): each element of the arrays `lists` carries a content id in
    /// `content`.
    KeptReply {
        lists: &'static [&'static str],
        content: &'static str,
    },
    /// Sent once to every new connection, unasked (push: `downmsg` 2001 `connect success`;
    /// voice: `create_token`): owed like a reply to the connect (whose request is `connect`),
    /// and it makes the connection its user's (deliveries to the user reach it).
    Greeting,
    /// A notice to a room whose copy to the sender itself answers its request (voice:
    /// `enter_room`): the sender's copy is a [`Attribution::Reply`], the others' are matched
    /// as [`Attribution::SenderFifo`].
    ReplyToSelf {
        sender: SenderKey,
        value_field: Option<&'static str>,
    },
}

/// What the client knows when it builds a request.
pub struct OpContext<'a> {
    pub client: u32,
    pub user_id: u64,
    pub username: &'a str,
    pub token: &'a str,
    /// The user's fixture room and its capacity, if any.
    pub home: Option<(u64, u32)>,
    /// The user after this one in the same fixture room (wrapping), for private messages.
    pub roommate: &'a str,
    /// Per-client sequence number of the next attributable send.
    pub seq: u64,
    /// Every client of the run, by index: `{user:N}` and `{sid:N}` read them.
    pub run: &'a (dyn RunClients + Sync),
}

/// What a request builder may know about the other clients of the run.
pub trait RunClients {
    /// The user name of client `n`.
    fn username(&self, n: usize) -> Option<&str>;
    /// Client `n`'s current Socket.IO id (empty while it is not connected).
    fn socket_id(&self, n: usize) -> Option<String>;
    /// The token of client `n`'s user (chat: a second device authenticates with it).
    fn token(&self, _n: usize) -> Option<&str> {
        None
    }
    /// The user names of the friends of user `user_id` (chat), in user id order.
    fn friends(&self, _user_id: u64) -> Vec<String> {
        Vec::new()
    }
    /// The groups user `user_id` is a member of (chat), in group id order.
    fn groups_of(&self, _user_id: u64) -> Vec<String> {
        Vec::new()
    }
    /// The user names of the members of `group` (chat), in user id order.
    fn group_members(&self, _group: &str) -> Vec<String> {
        Vec::new()
    }
    /// The user id of the user with this name (voice names a receiver by id).
    fn user_id(&self, _username: &str) -> Option<u64> {
        None
    }
}

/// A request ready to emit, and what the server must do about it.
pub struct Request {
    pub event: &'static str,
    pub args: Vec<Value>,
    pub effects: Vec<Effect>,
}

/// What a valid server must do in reaction to a request, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Join `room` (named `name`); the server confirms with `reply` to the requester.
    Join {
        room: RoomKey,
        name: String,
        reply: &'static str,
    },
    /// Join `room` only if no other connection is in it, else be refused with the error
    /// `refusal` (push: `loginWhenFirst` and 2004). Logins racing for one room are judged as a
    /// race, whatever order the server took them in (see `crate::oracle::contest`).
    JoinFirst {
        room: RoomKey,
        name: String,
        reply: &'static str,
        refusal: &'static str,
    },
    /// A reply to the requester that changes no membership.
    Reply { event: &'static str },
    /// Leave `room`.
    Leave { room: RoomKey },
    /// Broadcast `event` to the members of `room`; `seq` is what content attribution matches
    /// on, `value` what FIFO attribution matches on. With both, `value` is the exact payload
    /// every receipt must equal (push: `data` passed through untouched).
    Broadcast {
        event: &'static str,
        room: RoomKey,
        include_sender: bool,
        /// When the server may refuse with an error instead.
        unless: Precondition,
        seq: Option<u64>,
        value: Option<Value>,
    },
    /// The request is invalid: an error must come back.
    Error,
    /// Every *other* current connection in `room` gets `event` and is out of the room from
    /// then on (push: a `loginWhenLast` login kicks the earlier connections with code 2005).
    Kick { event: &'static str, room: RoomKey },
    /// Exactly one other member of `room` gets `event`; if it does not report back (its
    /// [`Effect::Report`]) within `failover`, another member must get it (voice: `exit_room`
    /// to one remaining member).
    NotifyOne {
        event: &'static str,
        room: RoomKey,
        value: Option<Value>,
        failover: u64,
    },
    /// This client reports back on the `event` of `room` it got (voice: `exit_room_report`),
    /// naming the user the event was about when the report says (voice: its `user_id`): one
    /// member may hold several departures of one room at once, and the report's key says which.
    Report {
        event: &'static str,
        room: RoomKey,
        about: Option<u64>,
    },
    /// `event` to every connection of a user (`room`: the user's own room); when none is
    /// online the server keeps it and hands it over once, in the reply `via` of the user's
    /// next session (chat: a friend message to an offline user comes in `saoff`).
    Deferrable {
        event: &'static str,
        room: RoomKey,
        seq: u64,
        via: &'static str,
    },
    /// The HTTP response of a [`Via::Http`] request must have one of these statuses.
    HttpStatus { accept: &'static [u16] },
    /// If this client's connection ends from now on, `event` must reach `room` (voice: a
    /// `call` makes the peer's own room owed `hang_up`); `room: None` cancels the `event`
    /// owed (the client hung up itself).
    OnDeparture {
        event: &'static str,
        room: Option<RoomKey>,
    },
    /// Fields its JSON body must have (with an [`Effect::HttpStatus`] of the same request).
    HttpBody { fields: &'static [BodyField] },
    /// The other side of [`Effect::OnDeparture`]: if the user of `peer` (its own room)
    /// departs once this request is due, `event` from it must reach `back` (voice: the called
    /// member's connection ends, the caller gets `hang_up`). `back: None` cancels what peers
    /// owe this client for `event` (it hung up itself).
    PeerOnDeparture {
        event: &'static str,
        peer: RoomKey,
        back: Option<RoomKey>,
    },
    /// A field of the request's [`Effect::HttpBody`] that is absent from the body (or a body
    /// that is no JSON) is judged at `scope` instead of the field's own: where the response's
    /// shape is a decision and only its value the seed's (voice: `users/me`'s
    /// `current_room_id`).
    HttpBodyAbsent { scope: &'static str },
}

/// A field of an HTTP response's JSON body that must hold `equals` when the status is `status`
/// (push: `RETURN_CODE` "0000" with HTTP 200). Anything else is `reply-content` of `scope`, at
/// the level the dialect's catalogue gives that scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyField {
    pub status: u16,
    /// A JSON pointer (`/ROOT/BODY/RETURN_CODE`).
    pub pointer: &'static str,
    pub equals: &'static str,
    pub scope: &'static str,
}

/// What a broadcast request needs; without it the server answers with an error instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: the server always broadcasts.
    None,
    /// The sender is a confirmed member of the room.
    SenderIsMember,
    /// The room has a confirmed member (e.g. the target user of a private message).
    RecipientExists,
    /// The request is expected to be refused: nobody is required to receive it, the room's
    /// members may (a server that relays instead of refusing is judged on its other rules).
    Refused,
}

/// One operation of a dialect.
pub struct OpSpec {
    pub name: &'static str,
    /// How its request travels.
    pub via: Via,
    /// One line for listings and errors.
    pub summary: &'static str,
    pub check_params: fn(&BTreeMap<String, Value>) -> Result<(), String>,
    pub build: fn(&OpContext, &BTreeMap<String, Value>, &mut dyn rand::RngCore) -> Request,
}

/// How an operation's request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An event on the client's connection, on this namespace (`/`: the connection's own).
    Emit { namespace: &'static str },
    /// An HTTP request to the target (push: `POST /api/push`); the request's one argument is
    /// the JSON body. Its response is judged by the request's [`Effect::HttpStatus`], the
    /// deliveries it causes by its other effects.
    Http {
        method: &'static str,
        path: &'static str,
    },
}

impl Via {
    /// An event on the connection's own namespace.
    pub const EMIT: Via = Via::Emit { namespace: "/" };
}

/// Accepts no parameters (but the generic `expect_error`).
pub fn no_params(p: &BTreeMap<String, Value>) -> Result<(), String> {
    only_params(p, &[])
}

/// Accepts only the named parameters (and the generic `expect_error` and `lenient`).
pub fn only_params(p: &BTreeMap<String, Value>, known: &[&str]) -> Result<(), String> {
    for k in p.keys() {
        if k != EXPECT_ERROR && k != LENIENT && !known.contains(&k.as_str()) {
            return Err(if known.is_empty() {
                format!("takes no parameters, got `{k}`")
            } else {
                format!(
                    "unknown parameter `{k}`; expected one of: {}",
                    known.join(", ")
                )
            });
        }
    }
    match p.get(EXPECT_ERROR) {
        None | Some(Value::Bool(_)) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(format!(
                "`{EXPECT_ERROR}` must be true, false, or the error's exact text"
            ))
        }
    }
    match p.get(LENIENT) {
        None | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Bool(true)) if p.contains_key(EXPECT_ERROR) => Err(format!(
            "`{EXPECT_ERROR}` and `{LENIENT}` exclude each other"
        )),
        Some(Value::Bool(true)) => Ok(()),
        Some(_) => Err(format!("`{LENIENT}` must be true or false")),
    }
}

/// Generic operation parameter: the server must refuse this request with an error (`true`), or
/// with exactly this error text (a string).
pub const EXPECT_ERROR: &str = "expect_error";

/// Generic operation parameter: the server may accept or refuse this (hostile) request, or
/// close the connection; from then on what this client receives is not judged, only what the
/// others receive.
pub const LENIENT: &str = "lenient";

/// Longest `{pad:N}` a scenario may ask for.
pub const MAX_PAD: usize = 16 << 20;

/// A string parameter with its templates filled in (see [`expand`]).
pub fn template(p: &BTreeMap<String, Value>, key: &str, default: &str, ctx: &OpContext) -> String {
    expand(p.get(key).and_then(Value::as_str).unwrap_or(default), ctx)
}

/// Fills in `{room}` (the fixture room id), `{me}` (the user name), `{mate}` (the next user of
/// the fixture room), `{token}`, `{user:N}` and `{sid:N}` (client N's user name and current
/// Socket.IO id; clients are numbered from 0 in arrival order) and `{pad:N}` (N `x`
/// characters, for huge strings).
pub fn expand(raw: &str, ctx: &OpContext) -> String {
    if !raw.contains('{') {
        return raw.to_string();
    }
    let mut out = raw
        .replace("{room}", &ctx.home.map_or(0, |(id, _)| id).to_string())
        .replace("{me}", ctx.username)
        .replace("{mate}", ctx.roommate)
        .replace("{token}", ctx.token);
    for key in ["{user:", "{sid:", "{pad:"] {
        let mut from = 0;
        while let Some(found) = out[from..].find(key) {
            let start = from + found;
            let Some(len) = out[start..].find('}') else {
                break;
            };
            let n: usize = out[start + key.len()..start + len]
                .parse()
                .unwrap_or(usize::MAX);
            let value = match key {
                "{user:" => ctx.run.username(n).unwrap_or_default().to_string(),
                "{sid:" => ctx.run.socket_id(n).unwrap_or_default(),
                _ => "x".repeat(n.min(MAX_PAD)),
            };
            out.replace_range(start..start + len + 1, &value);
            from = start + value.len();
        }
    }
    out
}

/// [`expand`] on every string inside a JSON value.
pub fn expand_value(v: &Value, ctx: &OpContext) -> Value {
    match v {
        Value::String(s) => Value::String(expand(s, ctx)),
        Value::Array(a) => Value::Array(a.iter().map(|x| expand_value(x, ctx)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (expand(k, ctx), expand_value(x, ctx)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A `&'static str` for a name that lives as long as the run (event names of `send` steps):
/// interned, so repeated runs in one process do not grow memory.
pub fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// Content ids: `rr:<client>:<seq>:` then padding. Parsed back by the oracle.
pub fn content_id(client: u32, seq: u64, size: usize) -> String {
    let mut s = format!("rr:{client}:{seq}:");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Parses a content id written by [`content_id`].
pub fn parse_content_id(s: &str) -> Option<(u32, u64)> {
    let rest = s.strip_prefix("rr:")?;
    let (client, rest) = rest.split_once(':')?;
    let (seq, _) = rest.split_once(':')?;
    Some((client.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    /// The driver and the reference server list the same dialects, and every name is one
    /// roomrig knows (so that its messages name it).
    #[test]
    fn registries_agree_on_names() {
        let served: Vec<&str> = reference_server::DIALECTS.iter().map(|d| d.name).collect();
        assert_eq!(super::implemented(), served);
        for d in super::DIALECTS {
            assert!(super::NAMES.contains(&d.name()), "{}", d.name());
            assert!(
                std::ptr::eq(super::find(d.name()).unwrap(), d),
                "{} twice",
                d.name()
            );
            assert!(std::ptr::eq(super::spec(d.name()), d.spec));
        }
        assert!(super::find("nosuch").is_none());
        assert!(super::find("dorm").unwrap().websocket.is_none());
        assert!(super::find("voice").unwrap().websocket.is_some());
    }

    /// Each dialect's default heartbeat is the same on both sides (the embedded server is
    /// started with the driver's, `roomrig serve` uses the server's): Engine.IO's for the
    /// Socket.IO dialects, seed 003's 15 s + 5 s for voice.
    #[test]
    fn registries_agree_on_default_heartbeats() {
        for served in reference_server::DIALECTS {
            let d = super::find(served.name).unwrap();
            assert_eq!(
                d.heartbeat.interval,
                served.heartbeat.interval,
                "{}",
                d.name()
            );
            assert_eq!(
                d.heartbeat.timeout,
                served.heartbeat.timeout,
                "{}",
                d.name()
            );
        }
        let voice = super::find("voice").unwrap().heartbeat;
        assert_eq!(
            voice.interval + voice.timeout,
            std::time::Duration::from_secs(20)
        );
        for name in ["dorm", "lobby", "chat", "push"] {
            assert_eq!(
                super::find(name).unwrap().heartbeat,
                super::Heartbeat::ENGINE_IO
            );
        }
    }

    struct Two;
    impl super::RunClients for Two {
        fn username(&self, n: usize) -> Option<&str> {
            ["alice", "bob"].get(n).copied()
        }
        fn socket_id(&self, n: usize) -> Option<String> {
            (n < 2).then(|| format!("sid{n}"))
        }
    }

    #[test]
    fn templates_expand() {
        let ctx = super::OpContext {
            client: 0,
            user_id: 1,
            username: "alice",
            token: "t1",
            home: Some((7, 4)),
            roommate: "bob",
            seq: 0,
            run: &Two,
        };
        assert_eq!(
            super::expand("{me}/{mate}/{room}/{token}/{user:1}/{sid:0}/{pad:3}", &ctx),
            "alice/bob/7/t1/bob/sid0/xxx"
        );
        // Unknown clients expand to nothing; text without templates is kept.
        assert_eq!(super::expand("a{user:9}b{sid:x}c", &ctx), "abc");
        assert_eq!(super::expand("plain", &ctx), "plain");
        let v = super::expand_value(
            &serde_json::json!({"k": ["{me}", 1, {"{mate}": "{pad:2}"}]}),
            &ctx,
        );
        assert_eq!(v, serde_json::json!({"k": ["alice", 1, {"bob": "xx"}]}));
    }

    #[test]
    fn content_id_round_trips() {
        let id = super::content_id(42, 7, 40);
        assert_eq!(id.len(), 40);
        assert_eq!(super::parse_content_id(&id), Some((42, 7)));
        assert_eq!(super::parse_content_id("hello"), None);
    }
}
