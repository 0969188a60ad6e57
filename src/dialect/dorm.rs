//! `dorm` (seed 000): dorm-room life game. Every request carries `{token}`; members of a room
//! receive each `message` and `action` broadcast, the sender included; errors come back on the
//! request's own event as `{error}`.

pub mod suite;

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{json, Value};

use super::{
    content_id, no_params, only_params, Attribution, DialectSpec, Effect, ErrorStyle, EventSpec,
    OpContext, OpSpec, Precondition, Request, RoomOf, SenderKey, Via, Wire,
};
use crate::oracle::rules::{Check, Level, RuleSpec};
use crate::oracle::shape::{Field, Ty};

/// The action codes of the seed: 00 snacks, 01 toilet, 02 shower, 03 wash basin, 04 washing
/// machine, 05 bed, 06 computer, 07 phone, 08 wardrobe, 09 desk; null cancels.
const ACTION_CODES: &[&str] = &["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"];
const ACTION: Ty = Ty::Enum {
    values: ACTION_CODES,
    nullable: true,
};

const ROOMMATE: &[Field] = &[
    Field::req("username", Ty::Str),
    Field::req("user_id", Ty::Id),
    Field::req("action", ACTION),
    Field::req("join_time", Ty::Time),
];

pub static SPEC: DialectSpec = DialectSpec {
    name: "dorm",
    events: &[
        EventSpec {
            name: "last_data",
            wire: Wire::SAME,
            shape: Ty::Obj(&[
                Field::req(
                    "current_user_data",
                    Ty::Obj(&[
                        Field::req("user_id", Ty::Id),
                        Field::req("username", Ty::Str),
                    ]),
                ),
                Field::req(
                    "room_data",
                    Ty::Obj(&[
                        Field::req("room_id", Ty::Id),
                        Field::req("room_name", Ty::Str),
                        Field::req("owner_id", Ty::Id),
                        Field::req("room_size", Ty::Int),
                        Field::req("count", Ty::Int),
                        Field::req("create_time", Ty::Time),
                        Field::req("notice", Ty::StrOrNull),
                    ]),
                ),
                Field::req("roommates_data", Ty::Arr(&Ty::Obj(ROOMMATE))),
            ]),
            forbidden: &[],
            attribution: Attribution::Reply,
            room: RoomOf::SenderHome,
        },
        EventSpec {
            name: "message",
            wire: Wire::SAME,
            // The seed's broadcast is {token, message, time}: `user_id` instead of the token is
            // the reference server's decision, so a seed-literal server is identified by token.
            shape: Ty::Obj(&[
                Field::ours("user_id", Ty::Id),
                Field::req("message", Ty::Str),
                Field::req("time", Ty::Time),
            ]),
            // The seed echoes the sender's token to the room; that leaks a credential.
            forbidden: &["token"],
            attribution: Attribution::ContentId {
                field: "message",
                sender: SenderKey::UserIdOrToken {
                    id: "user_id",
                    token: "token",
                },
            },
            room: RoomOf::SenderHome,
        },
        EventSpec {
            name: "action",
            wire: Wire::SAME,
            shape: Ty::Obj(&[
                Field::req("user_id", Ty::Id),
                Field::req("action", ACTION),
                Field::req("time", Ty::Time),
            ]),
            forbidden: &["token"],
            attribution: Attribution::SenderFifo {
                sender: SenderKey::UserId("user_id"),
                value_field: Some("action"),
            },
            room: RoomOf::SenderHome,
        },
    ],
    ops: &[
        OpSpec {
            name: "join_room",
            via: Via::EMIT,
            summary: "join the user's dorm room; the server answers last_data",
            check_params: no_params,
            build: |ctx, _, _| Request {
                event: "join_room",
                args: vec![json!({ "token": ctx.token })],
                effects: home(ctx)
                    .map(|room| Effect::Join {
                        room,
                        name: format!("room{room}"),
                        reply: "last_data",
                    })
                    .into_iter()
                    .collect(),
            },
        },
        OpSpec {
            name: "leave_room",
            via: Via::EMIT,
            summary: "leave the room; no reply on success",
            check_params: no_params,
            build: |ctx, _, _| Request {
                event: "leave_room",
                args: vec![json!({ "token": ctx.token })],
                effects: home(ctx)
                    .map(|room| Effect::Leave { room })
                    .into_iter()
                    .collect(),
            },
        },
        OpSpec {
            name: "message",
            via: Via::EMIT,
            summary: "chat message to the room: {size: bytes} (default 32)",
            check_params: check_message,
            build: build_message,
        },
        OpSpec {
            name: "action",
            via: Via::EMIT,
            summary: "set an action: \"00\"..\"09\", null (cancel), random, or an invalid code",
            check_params: check_action,
            build: build_action,
        },
    ],
    errors: ErrorStyle::SameEvent { field: "error" },
    error_shape: Ty::Obj(&[Field::req("error", Ty::Str)]),
    check_reply,
    placed_in: Some(placed_in),
    // A dorm departure is not announced (a notification would be INFO, not a failure).
    // Errors arrive on the request's own event: the event names the request.
    error_causes: &[],
    departure: None,
    uses_everyone: false,
    rules: RULES,
    // The seed names no error text: any `{error}` refuses.
    seed_errors: None,
    doc: DOC,
};

const DOC: &str =
    "Seed 000, a dorm-room life game. Namespace `/`; every request carries `{token}` (no \
connect-time authentication). A user belongs to one dorm room of 2 or 4; users, tokens and rooms \
come from the users file. `join_room` puts the socket in its user's room and answers `last_data`; \
`message` and `action` go to every member of the room, the sender included; `leave_room` \
answers nothing. Errors come back on the request's own event as `{error: reason}`; the seed names \
no condition for them, so which requests are refused (a bad token, a non-member, an invalid \
action code) is the reference server's choice, judged SHOULD. Departures are not announced. \
The seed's `message` broadcast carries the sender's `token`; the reference server sends \
`user_id` instead, and a `token` in a broadcast is flagged SHOULD NOT.";

/// Broadcast checks the seed states for a room event ("return(all)": every member of the room).
const DELIVERY: &[Check] = &[
    Check::Missing,
    Check::Duplicate,
    Check::NonMember,
    Check::Unknown,
    Check::WrongSender,
    Check::Shape,
];
/// What only the reference server promises about a broadcast.
const TIMING: &[Check] = &[Check::Late];
const ORDER: &[Check] = &[Check::Order];

const JOIN: &str = "seed 000 §加入房间及获取房间内用户信息 (join a room and get its users): join_room is answered with last_data to the joiner";
const CHAT: &str = "seed 000 §聊天信息 (chat message): return(all), every user in the room gets each message, the sender included";
const ACTIVITY: &str = "seed 000 §用户活动信息 (user activity): return(all), every user in the room gets each action, codes 00-09 or null";
const ERRORS: &str =
    "seed 000 §异常 (error) of every event: {error: reason} on the request's own event";
const LATE: &str = "reference-server decision: the seed states no delivery time; the scenario's deadline (latency belongs in thresholds)";
const ORDERED: &str = "reference-server decision: the seed does not state per-sender order (the reference server handles a socket's events in order)";
const REFUSALS: &str = "reference-server decision: the seed shows an {error} return on each event but names no condition (a server that relays a non-member's message to the user's own room is not wrong)";

/// The catalogue of dorm's rules (see `crate::oracle::rules`).
pub const RULES: &[RuleSpec] = &[
    RuleSpec { scope: "join_room", checks: &[Check::ReplyMissing], level: Level::Must, source: JOIN },
    RuleSpec { scope: "last_data", checks: &[Check::Shape, Check::ReplyContent, Check::ReplyUnsolicited], level: Level::Must, source: JOIN },
    RuleSpec { scope: "last_data", checks: TIMING, level: Level::Should, source: LATE },
    RuleSpec { scope: "message", checks: DELIVERY, level: Level::Must, source: CHAT },
    RuleSpec { scope: "message", checks: &[Check::Forbidden], level: Level::Should, source: "reference-server decision (security): the seed echoes the sender's token to the room; a broadcast should not carry a credential" },
    RuleSpec { scope: "action", checks: DELIVERY, level: Level::Must, source: ACTIVITY },
    RuleSpec { scope: "action", checks: &[Check::Forbidden], level: Level::Should, source: "reference-server decision (security): a broadcast should not carry a credential" },
    RuleSpec { scope: "*", checks: TIMING, level: Level::Should, source: LATE },
    RuleSpec { scope: "*", checks: ORDER, level: Level::Should, source: ORDERED },
    RuleSpec { scope: "error", checks: &[Check::Shape], level: Level::Must, source: ERRORS },
    RuleSpec { scope: "*", checks: &[Check::ErrorWrongEvent], level: Level::Must, source: ERRORS },
    RuleSpec { scope: "*", checks: &[Check::ErrorMissing, Check::ErrorContent], level: Level::Should, source: REFUSALS },
    RuleSpec { scope: "*", checks: &[Check::ErrorUnexpected], level: Level::Must, source: "seed 000 §正常 (normal return) of every event: a valid request gets its normal result, not an error" },
];

/// The user's fixture room: where every dorm broadcast goes.
fn home(ctx: &OpContext) -> Option<u64> {
    ctx.home.map(|(id, _)| id)
}

/// `last_data` must describe the joiner and a room that contains it, with `count` members.
fn check_reply(event: &str, payload: &Value, ctx: &OpContext) -> Result<(), String> {
    if event != "last_data" {
        return Ok(());
    }
    let me = &payload["current_user_data"]["user_id"];
    if !same_id(me, ctx.user_id) {
        return Err(format!(
            "current_user_data.user_id is {me}, the joiner is {}",
            ctx.user_id
        ));
    }
    let mates = payload["roommates_data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if !mates.iter().any(|m| same_id(&m["user_id"], ctx.user_id)) {
        return Err(format!(
            "roommates_data does not list the joiner {}",
            ctx.user_id
        ));
    }
    let count = &payload["room_data"]["count"];
    if count.as_u64() != Some(mates.len() as u64) {
        return Err(format!(
            "room_data.count is {count}, roommates_data lists {}",
            mates.len()
        ));
    }
    Ok(())
}

/// The room `last_data` says the joiner is in (`room_data.room_id`, a number or a numeric
/// string).
fn placed_in(event: &str, payload: &Value) -> Option<u64> {
    if event != "last_data" {
        return None;
    }
    match &payload["room_data"]["room_id"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Ids may be numbers or strings on the wire; `7` and `"7"` are the same user.
pub fn same_id(v: &Value, id: u64) -> bool {
    match v {
        Value::Number(n) => n.as_u64() == Some(id),
        Value::String(s) => s.parse::<u64>().ok() == Some(id),
        _ => false,
    }
}

/// A valid action code (see [`ACTION_CODES`]) or `null`.
pub fn is_valid_action(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => ACTION_CODES.contains(&s.as_str()),
        _ => false,
    }
}

/// `size`: bytes of message text, 16..=65536 (room for the content id).
pub fn check_size(p: &BTreeMap<String, Value>) -> Result<(), String> {
    if let Some(v) = p.get("size") {
        let n = v.as_u64().ok_or("`size` must be a whole number of bytes")?;
        if !(16..=65536).contains(&n) {
            return Err("`size` must be between 16 and 65536 bytes".into());
        }
    }
    Ok(())
}

fn check_message(p: &BTreeMap<String, Value>) -> Result<(), String> {
    only_params(p, &["size"])?;
    check_size(p)
}

fn build_message(
    ctx: &OpContext,
    p: &BTreeMap<String, Value>,
    _: &mut dyn rand::RngCore,
) -> Request {
    let size = p.get("size").and_then(Value::as_u64).unwrap_or(32) as usize;
    Request {
        event: "message",
        args: vec![json!({ "token": ctx.token, "message": content_id(ctx.client, ctx.seq, size) })],
        effects: home(ctx)
            .map(|room| Effect::Broadcast {
                event: "message",
                room,
                include_sender: true,
                unless: Precondition::SenderIsMember,
                seq: Some(ctx.seq),
                value: None,
            })
            .into_iter()
            .collect(),
    }
}

fn check_action(p: &BTreeMap<String, Value>) -> Result<(), String> {
    only_params(p, &["value"])
        .map_err(|e| format!("{e} (write `action: \"05\"`, `action: null` or `action: random`)"))
}

fn build_action(
    ctx: &OpContext,
    p: &BTreeMap<String, Value>,
    rng: &mut dyn rand::RngCore,
) -> Request {
    let value = match p.get("value") {
        None => Value::Null,
        Some(Value::String(s)) if s == "random" => {
            Value::String(format!("0{}", rng.random_range(0..10)))
        }
        Some(v) => v.clone(),
    };
    let effects = if is_valid_action(&value) {
        home(ctx)
            .map(|room| Effect::Broadcast {
                event: "action",
                room,
                include_sender: true,
                unless: Precondition::SenderIsMember,
                seq: None,
                value: Some(value.clone()),
            })
            .into_iter()
            .collect()
    } else {
        vec![Effect::Error]
    };
    Request {
        event: "action",
        args: vec![json!({ "token": ctx.token, "action": value })],
        effects,
    }
}
