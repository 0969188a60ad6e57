//! `lobby` (seed 004): the App Inventor SocketIO extension's chat server. Positional
//! arguments; errors arrive on `err` as a bare string; a user logs in by name, joins any number
//! of named rooms (capacity set by the first joiner), and every departure is announced.

pub mod suite;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    content_id, dorm::check_size, named_room, only_params, template, user_room, Attribution,
    Departure, DialectSpec, Effect, ErrorStyle, EventSpec, OpContext, OpSpec, Precondition,
    Request, RoomOf, SenderKey, Via, Wire, EVERYONE,
};
use crate::oracle::rules::{Check, Level, RuleSpec};
use crate::oracle::shape::{Field, Ty};

const WHO: Field = Field::req("username", Ty::Str);
const NUMUSERS: Field = Field::req("numusers", Ty::Int);
const ROOMNAME: Field = Field::req("roomname", Ty::Str);
const USERLIST: Field = Field::req("userlist", Ty::Arr(&Ty::Str));
const CONTENT: Field = Field::req("content", Ty::Str);

const BY_NAME: SenderKey = SenderKey::Username("username");

const fn reply(name: &'static str, shape: Ty) -> EventSpec {
    EventSpec {
        name,
        wire: Wire::SAME,
        shape,
        forbidden: &[],
        attribution: Attribution::Reply,
        room: RoomOf::Everyone,
    }
}

const fn notice(
    name: &'static str,
    shape: Ty,
    room: RoomOf,
    value: Option<&'static str>,
) -> EventSpec {
    EventSpec {
        name,
        wire: Wire::SAME,
        shape,
        forbidden: &[],
        attribution: Attribution::SenderFifo {
            sender: BY_NAME,
            value_field: value,
        },
        room,
    }
}

const fn message(name: &'static str, shape: Ty, room: RoomOf) -> EventSpec {
    EventSpec {
        name,
        wire: Wire::SAME,
        shape,
        forbidden: &[],
        attribution: Attribution::ContentId {
            field: "content",
            sender: BY_NAME,
        },
        room,
    }
}

pub static SPEC: DialectSpec = DialectSpec {
    name: "lobby",
    events: &[
        reply("logedin", Ty::Obj(&[WHO, NUMUSERS])),
        notice("otherLogedin", Ty::Obj(&[WHO, NUMUSERS]), RoomOf::Everyone, None),
        // The reply names the room it answers: paired by that, not by queue position.
        EventSpec {
            room: RoomOf::Field("roomname"),
            ..reply("joinedRoom", Ty::Obj(&[WHO, ROOMNAME, USERLIST]))
        },
        notice(
            "otherJoinedRoom",
            Ty::Obj(&[WHO, ROOMNAME, USERLIST]),
            RoomOf::Field("roomname"),
            Some("roomname"),
        ),
        reply("leftRoom", Ty::Obj(&[WHO, ROOMNAME])),
        notice(
            "otherLeftRoom",
            Ty::Obj(&[WHO, ROOMNAME, USERLIST]),
            RoomOf::Field("roomname"),
            Some("roomname"),
        ),
        message(
            "gotRoomMessage",
            Ty::Obj(&[WHO, ROOMNAME, CONTENT]),
            RoomOf::Field("roomname"),
        ),
        message("gotPublicMessage", Ty::Obj(&[WHO, CONTENT]), RoomOf::Everyone),
        message("gotPrivateMessage", Ty::Obj(&[WHO, CONTENT]), RoomOf::ReceiverUser),
        notice("otherLogedout", Ty::Obj(&[WHO, NUMUSERS]), RoomOf::Everyone, None),
    ],
    ops: &[
        OpSpec {
            name: "login",
            via: Via::EMIT,
            summary: "log in with the user's name: logedin to self, otherLogedin to every other socket",
            check_params: |p| only_params(p, &["name"]),
            build: |ctx, p, _| Request {
                event: "login",
                // `name` (e.g. "{mate}", a roommate's) is for refusals: with `expect_error`.
                args: vec![json!(template(p, "name", "{me}", ctx))],
                effects: vec![
                    Effect::Join {
                        room: user_room(ctx.username),
                        name: ctx.username.to_string(),
                        reply: "logedin",
                    },
                    broadcast("otherLogedin", EVERYONE, false, None, None),
                ],
            },
        },
        OpSpec {
            name: "joinRoom",
            via: Via::EMIT,
            summary: "join or create a room: {room: \"room{room}\", max_users: N|null (default: the fixture room size)}",
            check_params: |p| only_params(p, &["room", "max_users"]),
            build: |ctx, p, _| {
                let name = room_name(ctx, p);
                let max = match p.get("max_users") {
                    Some(v) => v.clone(),
                    None => ctx.home.map_or(Value::Null, |(_, size)| json!(size)),
                };
                let room = named_room(&name);
                Request {
                    event: "joinRoom",
                    args: vec![json!(name), max],
                    effects: vec![
                        Effect::Join {
                            room,
                            name: name.clone(),
                            reply: "joinedRoom",
                        },
                        broadcast("otherJoinedRoom", room, false, None, Some(json!(name))),
                    ],
                }
            },
        },
        OpSpec {
            name: "leaveRoom",
            via: Via::EMIT,
            summary: "leave a room: {room: \"room{room}\"}; leftRoom to self, otherLeftRoom to the rest",
            check_params: |p| only_params(p, &["room"]),
            build: |ctx, p, _| {
                let name = room_name(ctx, p);
                let room = named_room(&name);
                Request {
                    event: "leaveRoom",
                    args: vec![json!(name)],
                    effects: vec![
                        broadcast("otherLeftRoom", room, false, None, Some(json!(name))),
                        Effect::Reply { event: "leftRoom" },
                        Effect::Leave { room },
                    ],
                }
            },
        },
        OpSpec {
            name: "roomMessage",
            via: Via::EMIT,
            summary: "message to every member of a room, sender included: {room, size}",
            check_params: |p| {
                only_params(p, &["room", "size"])?;
                check_size(p)
            },
            build: |ctx, p, _| {
                let name = room_name(ctx, p);
                Request {
                    event: "roomMessage",
                    args: vec![json!(name), json!(content(ctx, p))],
                    effects: vec![Effect::Broadcast {
                        event: "gotRoomMessage",
                        room: named_room(&name),
                        include_sender: true,
                        unless: Precondition::SenderIsMember,
                        seq: Some(ctx.seq),
                        value: None,
                    }],
                }
            },
        },
        OpSpec {
            name: "publicMessage",
            via: Via::EMIT,
            summary: "message to every socket, sender included: {size}",
            check_params: |p| {
                only_params(p, &["size"])?;
                check_size(p)
            },
            build: |ctx, p, _| Request {
                event: "publicMessage",
                args: vec![json!(content(ctx, p))],
                effects: vec![broadcast("gotPublicMessage", EVERYONE, true, Some(ctx.seq), None)],
            },
        },
        OpSpec {
            name: "privateMessage",
            via: Via::EMIT,
            summary: "message to one user: {to: \"user7\" (default: the next user of the fixture room), size}",
            check_params: |p| {
                only_params(p, &["to", "size"])?;
                check_size(p)
            },
            build: |ctx, p, _| {
                let to = template(p, "to", ctx.roommate, ctx);
                Request {
                    event: "privateMessage",
                    args: vec![json!(to), json!(content(ctx, p))],
                    effects: vec![Effect::Broadcast {
                        event: "gotPrivateMessage",
                        room: user_room(&to),
                        include_sender: true,
                        // A target that logged out meanwhile is `no such user`.
                        unless: Precondition::RecipientExists,
                        seq: Some(ctx.seq),
                        value: None,
                    }],
                }
            },
        },
    ],
    errors: ErrorStyle::Channel { event: "err" },
    // The seed's texts, and the reference server's own for a socket not logged in or logging
    // in twice ("not logged in" may answer any request, so it is not listed).
    error_causes: &[
        ("duplicate username", &["login"]),
        ("already logged in", &["login"]),
        ("room full", &["joinRoom"]),
        ("already in room", &["joinRoom"]),
        ("no such room or not in it", &["leaveRoom", "roomMessage"]),
        ("no such user", &["privateMessage"]),
    ],
    error_shape: Ty::Str,
    check_reply,
    // Lobby rooms are named by the scenario, not the users file.
    placed_in: None,
    departure: Some(Departure {
        each_room: Some("otherLeftRoom"),
        everyone: Some("otherLogedout"),
        friends: None,
        one_member: None,
    }),
    uses_everyone: true,
    rules: RULES,
    seed_errors: Some(SEED_ERRORS),
    doc: DOC,
};

const DOC: &str =
    "Seed 004, the chat server of the App Inventor SocketIO extension. Every argument is \
a positional Socket.IO argument. A socket logs in with a user name; `logedin` answers it and every \
other socket gets `otherLogedin`. A user joins any number of named rooms (`joinRoom roomName, \
maxUser`: the first joiner sets the capacity, later values are ignored); the joiner gets \
`joinedRoom`, the other members `otherJoinedRoom`, with the user list in join order. Room \
messages reach every member, the sender included; public messages every socket; private \
messages only the named user. A leave or a disconnect (wanted or not) sends `otherLeftRoom` to \
the remaining members of each room, and a disconnect `otherLogedout` to every other socket. \
Errors arrive on `err` as a bare string; the seed names five texts, which stay MUST. The \
self-notice `leftRoom`, the texts `not logged in` and `already logged in`, and refusing a second \
login are the reference server's choices (SHOULD or INFO). The seed's own server runs \
Socket.IO 2 (Engine.IO 3).";

/// Broadcast checks of a notice or message the seed states.
const DELIVERY: &[Check] = &[
    Check::Missing,
    Check::Duplicate,
    Check::NonMember,
    Check::Unknown,
    Check::WrongSender,
    Check::Shape,
];
/// On a reply event (on its request's scope: `reply-missing`).
const REPLY: &[Check] = &[Check::ReplyContent, Check::ReplyUnsolicited, Check::Shape];
const ASKED: &[Check] = &[Check::ReplyMissing];

const LOGIN: &str = "seed 004 §Login 连接到服务器 (log in): the user gets Logedin, every other online user OtherLogedin, with the name and the number online";
const LOGOUT: &str = "seed 004 §Logout 断开服务器连接 (log out): on a disconnect, wanted or not, every other user gets OtherLogedout";
const JOIN: &str = "seed 004 §JoinOrCreateRoom 加入或创建房间 (join or create a room): the joiner gets JoinedRoom, the others OtherJoinedRoom, with the user list";
const LEAVE: &str = "seed 004 §LeaveRoom 离开房间 (leave a room): the others get OtherLeftRoom, also when a member disconnects";
const ROOM_MSG: &str = "seed 004 §SendRoomMessage 发送房间消息 (room message): every user in the room, the sender included";
const PUBLIC_MSG: &str = "seed 004 §SendPublicMessage 发送公共消息 (public message): every connected user, the sender included";
const PRIVATE_MSG: &str =
    "seed 004 §SendPrivateMessage 发送私人信息 (private message): only the named user gets it";
const ERRORS: &str = "seed 004 §GotError 发生错误 (error): an error arrives as a reason string (on `err`); the seed names duplicate username, room full, already in room, no such room or not in it, no such user (an expected text the seed does not name, or none, is judged at most SHOULD)";
const LEFT_ROOM: &str = "not in the seed: `leftRoom` exists only in the public server's later code (its earlier version sends none); reported, not required";
const LATE: &str = "reference-server decision: the seed states no delivery time; the scenario's deadline (latency belongs in thresholds)";
const ORDERED: &str = "reference-server decision: the seed does not state per-sender order";

/// The catalogue of lobby's rules (see `crate::oracle::rules`). Error texts are judged per
/// request: an expected text the seed does not name is SHOULD (see `SEED_ERRORS`).
pub const RULES: &[RuleSpec] = &[
    RuleSpec {
        scope: "login",
        checks: ASKED,
        level: Level::Must,
        source: LOGIN,
    },
    RuleSpec {
        scope: "logedin",
        checks: REPLY,
        level: Level::Must,
        source: LOGIN,
    },
    RuleSpec {
        scope: "otherLogedin",
        checks: DELIVERY,
        level: Level::Must,
        source: LOGIN,
    },
    RuleSpec {
        scope: "joinRoom",
        checks: ASKED,
        level: Level::Must,
        source: JOIN,
    },
    RuleSpec {
        scope: "joinedRoom",
        checks: REPLY,
        level: Level::Must,
        source: JOIN,
    },
    RuleSpec {
        scope: "otherJoinedRoom",
        checks: DELIVERY,
        level: Level::Must,
        source: JOIN,
    },
    RuleSpec {
        scope: "leaveRoom",
        checks: ASKED,
        level: Level::Info,
        source: LEFT_ROOM,
    },
    RuleSpec {
        scope: "leftRoom",
        checks: REPLY,
        level: Level::Should,
        source: LEFT_ROOM,
    },
    RuleSpec {
        scope: "otherLeftRoom",
        checks: DELIVERY,
        level: Level::Must,
        source: LEAVE,
    },
    RuleSpec {
        scope: "gotRoomMessage",
        checks: DELIVERY,
        level: Level::Must,
        source: ROOM_MSG,
    },
    RuleSpec {
        scope: "gotPublicMessage",
        checks: DELIVERY,
        level: Level::Must,
        source: PUBLIC_MSG,
    },
    RuleSpec {
        scope: "gotPrivateMessage",
        checks: DELIVERY,
        level: Level::Must,
        source: PRIVATE_MSG,
    },
    RuleSpec {
        scope: "otherLogedout",
        checks: DELIVERY,
        level: Level::Must,
        source: LOGOUT,
    },
    RuleSpec {
        scope: "*",
        checks: &[Check::Late],
        level: Level::Should,
        source: LATE,
    },
    RuleSpec {
        scope: "*",
        checks: &[Check::Order],
        level: Level::Should,
        source: ORDERED,
    },
    RuleSpec {
        scope: "error",
        checks: &[Check::Shape],
        level: Level::Must,
        source: ERRORS,
    },
    RuleSpec {
        scope: "*",
        checks: &[
            Check::ErrorMissing,
            Check::ErrorContent,
            Check::ErrorUnexpected,
            Check::ErrorWrongEvent,
        ],
        level: Level::Must,
        source: ERRORS,
    },
];

/// The error texts the seed names (`not able to connect server` is the client's own).
pub const SEED_ERRORS: &[&str] = &[
    "duplicate username",
    "room full",
    "already in room",
    "no such room or not in it",
    "no such user",
];

fn broadcast(
    event: &'static str,
    room: u64,
    include_sender: bool,
    seq: Option<u64>,
    value: Option<Value>,
) -> Effect {
    Effect::Broadcast {
        event,
        room,
        include_sender,
        unless: Precondition::None,
        seq,
        value,
    }
}

/// `room` parameter; default: the fixture room's name.
fn room_name(ctx: &OpContext, p: &BTreeMap<String, Value>) -> String {
    template(p, "room", "room{room}", ctx)
}

fn content(ctx: &OpContext, p: &BTreeMap<String, Value>) -> String {
    let size = p.get("size").and_then(Value::as_u64).unwrap_or(32) as usize;
    content_id(ctx.client, ctx.seq, size)
}

/// Replies name the requester; a join's `userlist` includes it.
fn check_reply(event: &str, payload: &Value, ctx: &OpContext) -> Result<(), String> {
    let who = &payload["username"];
    if who.as_str() != Some(ctx.username) {
        return Err(format!(
            "{event}.username is {who}, the requester is {:?}",
            ctx.username
        ));
    }
    if event == "joinedRoom" {
        let listed = payload["userlist"]
            .as_array()
            .is_some_and(|l| l.iter().any(|u| u.as_str() == Some(ctx.username)));
        if !listed {
            return Err(format!(
                "userlist does not list the joiner {:?}",
                ctx.username
            ));
        }
    }
    Ok(())
}
