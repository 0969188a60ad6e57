//! `push` (seed 002): a server that pushes events into rooms. A connection logs into rooms with
//! a mode (`loginRoom {roomId, type}`); every reply and error arrives on `downmsg`, told apart
//! by `code`; a backend pushes events into a room, or to every connection, with
//! `POST /api/push`.
//!
//! The pushed `data` is passed through untouched, so the driver makes it self-describing:
//! `{id: <content id>, from: <user id>, room: <room id>}` (`room` absent for a global push):
//! each delivery is tied to exactly one push by its content id.

pub mod suite;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    content_id, dorm::check_size, named_room, only_params, template, Attribution, BodyField,
    DialectSpec, Effect, ErrorStyle, EventSpec, OpContext, OpSpec, Precondition, Request, RoomOf,
    SenderKey, Via, Wire, EVERYONE,
};
use crate::oracle::rules::{Check, Level, RuleSpec};
use crate::oracle::shape::{Field, Ty};

/// The event a room push is delivered as.
pub const ROOM_PUSH: &str = "news";
/// The event a global push (no `roomId`) is delivered as.
pub const GLOBAL_PUSH: &str = "bulletin";

/// What the body of every push reply with HTTP 200 holds: `RETURN_CODE` "0000" whether the
/// delivery succeeded or not (the seed's words), and `RETURN_MSG` "ok" (only the seed's
/// example shows it: INFO).
const PUSH_REPLY: &[BodyField] = &[
    BodyField {
        status: 200,
        pointer: "/ROOT/BODY/RETURN_CODE",
        equals: "0000",
        scope: "push",
    },
    BodyField {
        status: 200,
        pointer: "/ROOT/BODY/RETURN_MSG",
        equals: "ok",
        scope: RETURN_MSG,
    },
];

/// The rule scope of the reply's `RETURN_MSG`.
const RETURN_MSG: &str = "push-return-msg";

const CODE: Field = Field::req("code", Ty::Id);
const MSG: Field = Field::req("msg", Ty::Str);
const DOWNMSG: Ty = Ty::Obj(&[CODE, MSG]);

const fn downmsg(name: &'static str, code: &'static str, attribution: Attribution) -> EventSpec {
    EventSpec {
        name,
        wire: Wire::tagged("/", "downmsg", "code", code),
        shape: DOWNMSG,
        forbidden: &[],
        attribution,
        room: RoomOf::Everyone,
    }
}

const PUSHED: Attribution = Attribution::ContentId {
    field: "id",
    sender: SenderKey::UserId("from"),
};

pub static SPEC: DialectSpec = DialectSpec {
    name: "push",
    events: &[
        downmsg("downmsg-2001", "2001", Attribution::Greeting),
        downmsg("downmsg-2002", "2002", Attribution::Reply),
        // A kick names its room only inside `msg`: it is matched to the rooms the receiver
        // is in.
        downmsg("downmsg-2005", "2005", Attribution::Kicked),
        EventSpec {
            name: ROOM_PUSH,
            wire: Wire::SAME,
            shape: Ty::Obj(&[
                Field::req("id", Ty::Str),
                Field::req("from", Ty::Int),
                Field::req("room", Ty::Str),
            ]),
            forbidden: &[],
            attribution: PUSHED,
            room: RoomOf::Field("room"),
        },
        EventSpec {
            name: GLOBAL_PUSH,
            wire: Wire::SAME,
            shape: Ty::Obj(&[Field::req("id", Ty::Str), Field::req("from", Ty::Int)]),
            forbidden: &[],
            attribution: PUSHED,
            room: RoomOf::Everyone,
        },
    ],
    ops: &[
        OpSpec {
            name: "loginRoom",
            via: Via::EMIT,
            summary: "log into a room: {room: \"{room}\" (default: the fixture room id), mode: loginWhenFirst|loginWhenLast|loginWhenever (default: none sent, which is loginWhenFirst), numeric: true sends the id as a number}",
            check_params: |p| {
                only_params(p, &["room", "mode", "numeric"])?;
                match p.get("mode").map(|m| m.as_str()) {
                    None
                    | Some(Some("loginWhenFirst" | "loginWhenLast" | "loginWhenever")) => Ok(()),
                    _ => Err(
                        "`mode` must be loginWhenFirst, loginWhenLast or loginWhenever".into(),
                    ),
                }
            },
            build: |ctx, p, _| {
                let name = room_name(ctx, p);
                let room = named_room(&name);
                let mode = p.get("mode").and_then(Value::as_str);
                let mut body = serde_json::Map::new();
                body.insert("roomId".into(), room_value(&name, p));
                if let Some(m) = mode {
                    body.insert("type".into(), json!(m));
                }
                // loginWhenFirst (also when no mode is sent): admitted only into a room nobody
                // else is in, else 2004; logins racing for one room are judged as a race.
                let join = match mode {
                    None | Some("loginWhenFirst") => Effect::JoinFirst {
                        room,
                        name: name.clone(),
                        reply: "downmsg-2002",
                        refusal: "2004",
                    },
                    _ => Effect::Join {
                        room,
                        name: name.clone(),
                        reply: "downmsg-2002",
                    },
                };
                let mut effects = vec![join];
                if mode == Some("loginWhenLast") {
                    effects.push(Effect::Kick {
                        event: "downmsg-2005",
                        room,
                    });
                }
                Request {
                    event: "loginRoom",
                    args: vec![Value::Object(body)],
                    effects,
                }
            },
        },
        OpSpec {
            name: "push",
            via: Via::Http {
                method: "POST",
                path: "/api/push",
            },
            summary: "POST /api/push into a room: {room: \"{room}\" (default: the fixture room id), global: true (no roomId: every connection), numeric: true, size, no_event: true (no eventName: nothing delivered, 0000 or a 4xx), raw: \"a body sent as it is\" (400 or 0000, nothing delivered)}",
            check_params: |p| {
                only_params(p, &["room", "global", "numeric", "size", "no_event", "raw"])?;
                check_size(p)
            },
            build: build_push,
        },
    ],
    errors: ErrorStyle::Coded {
        event: "downmsg",
        field: "code",
        codes: &["2003", "2004"],
    },
    // An error's text is its code.
    error_causes: &[("2003", &["loginRoom"]), ("2004", &["loginRoom"])],
    error_shape: DOWNMSG,
    check_reply: |_, _, _| Ok(()),
    placed_in: None,
    departure: None,
    // Global pushes reach every connection, in a room or not.
    uses_everyone: true,
    rules: RULES,
    seed_errors: Some(&["2003", "2004"]),
    doc: DOC,
};

const DOC: &str = "Seed 002, a server that pushes into rooms over Socket.IO, fed over HTTP. \
On connect the server sends `downmsg {code: \"2001\", msg: \"connect success\"}`. A connection \
logs into a room with `loginRoom {roomId, type}`; every answer arrives on `downmsg` with a code: \
2002 joined, 2003 an invalid request, 2004 refused because the mode is `loginWhenFirst` (the \
default) and another connection is in the room. `loginWhenLast` joins and sends 2005 to every \
earlier connection of the room, which leave it; `loginWhenever` joins without checks. A backend \
posts `{\"ROOT\":{\"BODY\":{\"roomId\"?, \"eventName\", \"data\"}}}` to `/api/push`: `data` goes \
untouched as the payload of `eventName` to every connection of the room, or to every connection \
when `roomId` is absent, and the answer is `{\"ROOT\":{\"BODY\":{\"RETURN_CODE\":\"0000\", \
\"RETURN_MSG\":\"ok\"}}}` whether anything was delivered or not. A push without `eventName` is \
not sent. The driver pushes self-describing data (`{id, from, room}`) as the events `news` (into \
a room) and `bulletin` (to everyone), and ties each delivery to its push by the content id. \
Decisions of the reference server, judged at most SHOULD: `\"456\"` and `456` are one room; \
a body that is not JSON or not the envelope answers HTTP 400, one over 32 KiB 413; the 2001 \
greeting's and replies' texts are not checked. loginWhenFirst logins in flight together are \
judged as a race, never by guessing which one the server took first: while an admitted one \
stays in the room, another admitted one had to be refused (`error-missing`); when every one \
of them is refused although nobody else was in the room or on the way in, one had to be \
admitted (`error-unexpected`, charged to the earliest); where the evidence cannot decide (a \
racer never answered, or the winner left while the other login was in flight) the finding is \
INFO.";

const CONNECT: &str = "seed 002 §code: 2001 `connect success` when the connection is made";
const LOGIN: &str = "seed 002 §连接房间 and §code: loginRoom answers 2002 on success, 2003 on an error, 2004 when loginWhenFirst finds the room in use";
const KICK: &str = "seed 002 §连接房间 (loginWhenLast: only the last connection stays, the earlier ones are removed) and §code (2005 you have kicked out room)";
const PUSHED_TO_ROOM: &str = "seed 002 §消息下发服务 and §监听事件: a push with roomId reaches the room's connections, `data` passed through untouched";
const PUSHED_TO_ALL: &str = "seed 002 §消息下发服务 and §监听事件: a push without roomId reaches every connection, in a room or not";
const HTTP: &str = "seed 002 §消息下发服务: the reply is 0000 whether the delivery succeeded or not (`RETURN_CODE` \"0000\" in the body of every HTTP 200 answer; a 4xx for a body that is not a push request is a reference-server decision)";
const REPLY_MSG: &str = "seed 002 §消息下发服务 shows `RETURN_MSG: \"ok\"` in its example reply only and states nothing of it";
const LATE: &str = "reference-server decision: the seed states no delivery time; the scenario's deadline (latency belongs in thresholds)";
const ORDERED: &str = "reference-server decision: the seed does not state per-sender order (and pushes over HTTP, several in flight at once on pooled connections, have none: they are not judged)";
const ERRORS: &str = "seed 002 §code: 2003 and 2004 on downmsg are the refusals of loginRoom; §连接房间: under loginWhenFirst only the first connection into a room stays, the others are refused";

const DELIVERY: &[Check] = &[
    Check::Missing,
    Check::Duplicate,
    Check::NonMember,
    Check::Unknown,
    Check::WrongSender,
    Check::Shape,
];
const REPLY: &[Check] = &[Check::ReplyContent, Check::ReplyUnsolicited, Check::Shape];
const ASKED: &[Check] = &[Check::ReplyMissing];

/// The catalogue of push's rules (see `crate::oracle::rules`).
pub const RULES: &[RuleSpec] = &[
    RuleSpec {
        scope: "connect",
        checks: ASKED,
        level: Level::Must,
        source: CONNECT,
    },
    RuleSpec {
        scope: "downmsg-2001",
        checks: REPLY,
        level: Level::Must,
        source: CONNECT,
    },
    RuleSpec {
        scope: "loginRoom",
        checks: ASKED,
        level: Level::Must,
        source: LOGIN,
    },
    RuleSpec {
        scope: "downmsg-2002",
        checks: REPLY,
        level: Level::Must,
        source: LOGIN,
    },
    RuleSpec {
        scope: "downmsg-2005",
        checks: DELIVERY,
        level: Level::Must,
        source: KICK,
    },
    RuleSpec {
        scope: ROOM_PUSH,
        checks: DELIVERY,
        level: Level::Must,
        source: PUSHED_TO_ROOM,
    },
    RuleSpec {
        scope: GLOBAL_PUSH,
        checks: DELIVERY,
        level: Level::Must,
        source: PUSHED_TO_ALL,
    },
    RuleSpec {
        scope: "push",
        checks: &[Check::ReplyMissing, Check::ReplyContent],
        level: Level::Must,
        source: HTTP,
    },
    RuleSpec {
        scope: RETURN_MSG,
        checks: &[Check::ReplyContent],
        level: Level::Info,
        source: REPLY_MSG,
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

/// `room` parameter; default: the fixture room's id.
fn room_name(ctx: &OpContext, p: &BTreeMap<String, Value>) -> String {
    template(p, "room", "{room}", ctx)
}

/// The room id as sent: a number with `numeric: true` (when it is one), else a string.
fn room_value(name: &str, p: &BTreeMap<String, Value>) -> Value {
    match (p.get("numeric"), name.parse::<u64>()) {
        (Some(Value::Bool(true)), Ok(n)) => json!(n),
        _ => json!(name),
    }
}

fn build_push(ctx: &OpContext, p: &BTreeMap<String, Value>, _: &mut dyn rand::RngCore) -> Request {
    let size = p.get("size").and_then(Value::as_u64).unwrap_or(32) as usize;
    let id = content_id(ctx.client, ctx.seq, size);
    // Not a push request at all, or one the seed says is not sent: nothing may be delivered.
    if let Some(raw) = p.get("raw").and_then(Value::as_str) {
        return Request {
            event: "push",
            args: vec![json!(super::expand(raw, ctx))],
            effects: vec![
                Effect::HttpStatus {
                    accept: &[200, 400, 413],
                },
                Effect::HttpBody { fields: PUSH_REPLY },
            ],
        };
    }
    let global = p.get("global") == Some(&Value::Bool(true));
    let name = room_name(ctx, p);
    let mut data = serde_json::Map::new();
    data.insert("id".into(), json!(id));
    data.insert("from".into(), json!(ctx.user_id));
    let mut body = serde_json::Map::new();
    let (event, room) = if global {
        (GLOBAL_PUSH, EVERYONE)
    } else {
        data.insert("room".into(), json!(name));
        body.insert("roomId".into(), room_value(&name, p));
        (ROOM_PUSH, named_room(&name))
    };
    if p.get("no_event") == Some(&Value::Bool(true)) {
        body.insert("data".into(), Value::Object(data));
        return Request {
            event: "push",
            args: vec![json!({"ROOT": {"BODY": body}})],
            effects: vec![
                Effect::HttpStatus {
                    accept: &[200, 400, 404, 409, 422],
                },
                Effect::HttpBody { fields: PUSH_REPLY },
            ],
        };
    }
    body.insert("eventName".into(), json!(event));
    let data = Value::Object(data);
    body.insert("data".into(), data.clone());
    Request {
        event: "push",
        args: vec![json!({"ROOT": {"BODY": body}})],
        effects: vec![
            Effect::HttpStatus { accept: &[200] },
            Effect::HttpBody { fields: PUSH_REPLY },
            Effect::Broadcast {
                event,
                room,
                include_sender: true,
                unless: Precondition::None,
                seq: Some(ctx.seq),
                // Delivered exactly as pushed (seed 002: data is passed through untouched).
                value: Some(data),
            },
        ],
    }
}
