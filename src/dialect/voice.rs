//! `voice` (seed 003): voice rooms over a plain WebSocket, one JSON object per frame, the
//! event named by `action`. Every client frame carries `sid`, the `online_token` the server's
//! first frame (`create_token`) handed out, a `timestamp` and an md5 `sign` over the rest (PHP's
//! `json_encode`, see the `php-json` crate); the driver signs what it sends. The client pings
//! every `ping_interval`; the seed's server closes a connection silent for 20 s.

pub mod suite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{
    content_id, dorm::check_size, named_room, only_params, template, user_room, Attribution,
    Departure, DialectSpec, Effect, ErrorStyle, EventSpec, OpContext, OpSpec, Precondition,
    Request, RoomOf, SenderKey, Via, Wire,
};
use crate::oracle::rules::{Check, Level, RuleSpec};
use crate::oracle::shape::{Field, Ty};
use crate::transport::framing::{AppHeartbeat, Clock, JsonFraming, Learn, Signer};
use crate::transport::Framing;

/// The heartbeat interval of the seed (`ping_interval` of `end_point`: 15).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The seed's server closes a connection without a heartbeat for 20 s: 5 s past the interval.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the member told of a departure has to report it before the server must tell
/// another one. The seed gives no time ("上报", report back); 5 s is the reference server's.
pub const EXIT_REPORT_TIMEOUT: Duration = Duration::from_secs(5);

const USER_ID: Field = Field::req("user_id", Ty::Id);
const CHANNEL: Field = Field::req("channel_name", Ty::Str);
const NICKNAME: Field = Field::req("nickname", Ty::Str);
const SEX: Field = Field::req("sex", Ty::Id);
const AVATAR: Field = Field::req("avatar_url", Ty::Str);
const AVATAR_SMALL: Field = Field::req("avatar_small_url", Ty::Str);
const SEAT_ID: Field = Field::req("currenr_room_seat_id", Ty::Id);

const BY_USER: SenderKey = SenderKey::UserId("user_id");

const fn notice(
    name: &'static str,
    shape: Ty,
    room: RoomOf,
    sender: SenderKey,
    value: Option<&'static str>,
) -> EventSpec {
    EventSpec {
        name,
        wire: Wire::SAME,
        shape,
        forbidden: &["online_token", "sign"],
        attribution: Attribution::SenderFifo {
            sender,
            value_field: value,
        },
        room,
    }
}

const GIFT: Ty = Ty::Obj(&[
    Field::req("id", Ty::Id),
    Field::req("name", Ty::Str),
    Field::req("dynamic_image_url", Ty::Str),
    Field::req("image_url", Ty::Str),
    Field::req("image_big_url", Ty::Str),
    Field::req("image_small_url", Ty::Str),
    Field::req("num", Ty::Id),
]);

const GIFT_NOTICE: Ty = Ty::Obj(&[
    Field::req("sender_room_seat_id", Ty::Id),
    Field::req("receiver_room_seat_id", Ty::Id),
    Field::req("sender_id", Ty::Id),
    Field::req("receiver_id", Ty::Id),
    Field::req("sender_nickname", Ty::Str),
    Field::req("receiver_nickname", Ty::Str),
    Field::req(
        "notify_type",
        Ty::Enum {
            values: &["bc", "ptp"],
            nullable: false,
        },
    ),
    CHANNEL,
    Field::req("gift", GIFT),
]);

const BY_SENDER: SenderKey = SenderKey::UserId("sender_id");

/// `users/me` of a user whose connection ended: no current room (seed §2.2: an empty
/// `current_room_id` tells a reconnecting client it was put out of its room).
const USERS_ME_AFTER_DEPARTURE: &[super::BodyField] = &[super::BodyField {
    status: 200,
    pointer: "/current_room_id",
    equals: "",
    scope: "current_room_id",
}];

pub static SPEC: DialectSpec = DialectSpec {
    name: "voice",
    events: &[
        EventSpec {
            name: "create_token",
            wire: Wire::SAME,
            shape: Ty::Obj(&[Field::req("online_token", Ty::Str)]),
            forbidden: &[],
            attribution: Attribution::Greeting,
            room: RoomOf::ReceiverUser,
        },
        // The entrant's own copy confirms its `enter_room`; the others' copies are notices.
        EventSpec {
            name: "enter_room",
            wire: Wire::SAME,
            shape: Ty::Obj(&[USER_ID, NICKNAME, SEX, AVATAR, AVATAR_SMALL, CHANNEL]),
            forbidden: &["online_token", "sign"],
            attribution: Attribution::ReplyToSelf {
                sender: BY_USER,
                value_field: None,
            },
            room: RoomOf::Field("channel_name"),
        },
        EventSpec {
            name: "send_topic_msg",
            wire: Wire::SAME,
            shape: Ty::Obj(&[
                USER_ID,
                NICKNAME,
                SEX,
                AVATAR,
                AVATAR_SMALL,
                Field::req("content", Ty::Str),
                CHANNEL,
            ]),
            forbidden: &["online_token", "sign"],
            attribution: Attribution::ContentId {
                field: "content",
                sender: BY_USER,
            },
            room: RoomOf::Field("channel_name"),
        },
        EventSpec {
            wire: Wire::tagged("/", "send_gift", "notify_type", "bc"),
            ..notice(
                "send_gift-bc",
                GIFT_NOTICE,
                RoomOf::Field("channel_name"),
                BY_SENDER,
                None,
            )
        },
        EventSpec {
            wire: Wire::tagged("/", "send_gift", "notify_type", "ptp"),
            ..notice(
                "send_gift-ptp",
                GIFT_NOTICE,
                RoomOf::ReceiverUser,
                BY_SENDER,
                None,
            )
        },
        notice(
            "up",
            Ty::Obj(&[
                USER_ID,
                SEAT_ID,
                SEX,
                AVATAR,
                AVATAR_SMALL,
                NICKNAME,
                CHANNEL,
            ]),
            RoomOf::Field("channel_name"),
            BY_USER,
            Some("currenr_room_seat_id"),
        ),
        notice(
            "down",
            Ty::Obj(&[USER_ID, SEAT_ID, CHANNEL]),
            RoomOf::Field("channel_name"),
            BY_USER,
            Some("currenr_room_seat_id"),
        ),
        notice(
            "call",
            Ty::Obj(&[USER_ID, Field::req("receiver_id", Ty::Id), CHANNEL]),
            RoomOf::ReceiverUser,
            BY_USER,
            None,
        ),
        notice(
            "hang_up",
            Ty::Obj(&[USER_ID, Field::req("receiver_id", Ty::Id), CHANNEL]),
            RoomOf::ReceiverUser,
            BY_USER,
            None,
        ),
        notice(
            "exit_room",
            Ty::Obj(&[USER_ID, CHANNEL]),
            RoomOf::Field("channel_name"),
            BY_USER,
            None,
        ),
    ],
    ops: &[
        OpSpec {
            name: "enter_room",
            via: Via::EMIT,
            summary: "enter a voice room: {channel: \"room{room}\"}; every member gets enter_room (the entrant's own copy confirms it)",
            check_params: |p| only_params(p, &["channel"]),
            build: |ctx, p, _| {
                let channel = channel(ctx, p);
                let room = named_room(&channel);
                Request {
                    event: "enter_room",
                    args: vec![json!({ "channel_name": channel })],
                    effects: vec![
                        Effect::Join {
                            room,
                            name: channel.clone(),
                            reply: "enter_room",
                        },
                        to_others("enter_room", room, None, None),
                    ],
                }
            },
        },
        OpSpec {
            name: "send_topic_msg",
            via: Via::EMIT,
            summary: "public-screen message to the room's other members: {channel, size, text (appended to the content), extra (more fields for the frame, signed with it)}",
            check_params: |p| {
                only_params(p, &["channel", "size", "text", "extra"])?;
                match (p.get("text"), p.get("extra")) {
                    (Some(t), _) if !t.is_string() => Err("`text` is a string".to_string()),
                    (_, Some(e)) if !e.is_object() => {
                        Err("`extra` is a map of fields".to_string())
                    }
                    _ => check_size(p),
                }
            },
            build: |ctx, p, _| {
                let channel = channel(ctx, p);
                let size = p.get("size").and_then(Value::as_u64).unwrap_or(32) as usize;
                let mut content = content_id(ctx.client, ctx.seq, size);
                content.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""));
                // Extra fields first: the message's own fields are not overridden.
                let mut frame = p
                    .get("extra")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                frame.insert("channel_name".into(), json!(channel));
                frame.insert("content".into(), json!(content));
                Request {
                    event: "send_topic_msg",
                    args: vec![Value::Object(frame)],
                    effects: vec![Effect::Broadcast {
                        event: "send_topic_msg",
                        room: named_room(&channel),
                        include_sender: false,
                        unless: Precondition::SenderIsMember,
                        seq: Some(ctx.seq),
                        value: None,
                    }],
                }
            },
        },
        OpSpec {
            name: "send_gift",
            via: Via::EMIT,
            summary: "a gift: {to: \"{mate}\" (a user name), notify_type: bc (the room's other members) | ptp (the receiver only), gift_id, num, channel}",
            check_params: |p| {
                only_params(p, &["to", "notify_type", "gift_id", "num", "channel"])?;
                match p.get("notify_type").and_then(Value::as_str) {
                    None | Some("bc" | "ptp") => Ok(()),
                    Some(other) => Err(format!("`notify_type` is bc or ptp, not {other:?}")),
                }
            },
            build: |ctx, p, _| {
                let channel = channel(ctx, p);
                let to = template(p, "to", ctx.roommate, ctx);
                let ptp = p.get("notify_type").and_then(Value::as_str) == Some("ptp");
                let gift_id = p.get("gift_id").and_then(Value::as_u64).unwrap_or(1);
                let num = p.get("num").and_then(Value::as_u64).unwrap_or(1);
                let (event, room) = if ptp {
                    ("send_gift-ptp", user_room(&to))
                } else {
                    ("send_gift-bc", named_room(&channel))
                };
                Request {
                    event: "send_gift",
                    args: vec![json!({
                        "channel_name": channel,
                        "receiver_id": ctx.run.user_id(&to).map_or(Value::Null, Value::from),
                        "notify_type": if ptp { "ptp" } else { "bc" },
                        "gift": {"id": gift_id, "name": format!("gift{gift_id}"), "num": num},
                    })],
                    effects: vec![Effect::Broadcast {
                        event,
                        room,
                        include_sender: false,
                        unless: Precondition::SenderIsMember,
                        seq: None,
                        value: None,
                    }],
                }
            },
        },
        OpSpec {
            name: "up",
            via: Via::EMIT,
            summary: "take a seat: {seat: N (default: the user's place in its generated fixture room), channel}; the room's other members get up",
            check_params: |p| only_params(p, &["seat", "channel"]),
            build: |ctx, p, _| {
                let channel = channel(ctx, p);
                let seat = p.get("seat").cloned().unwrap_or_else(|| json!(own_seat(ctx)));
                Request {
                    event: "up",
                    args: vec![json!({"channel_name": channel, "room_seat_id": seat})],
                    effects: vec![to_others(
                        "up",
                        named_room(&channel),
                        Some(seat),
                        Some(Precondition::SenderIsMember),
                    )],
                }
            },
        },
        OpSpec {
            name: "down",
            via: Via::EMIT,
            summary: "leave the seat taken with `up` {seat: N (the one taken), channel}; the room's other members get down",
            check_params: |p| only_params(p, &["seat", "channel"]),
            build: |ctx, p, _| {
                let channel = channel(ctx, p);
                let seat = p.get("seat").cloned().unwrap_or_else(|| json!(own_seat(ctx)));
                Request {
                    event: "down",
                    args: vec![json!({"channel_name": channel})],
                    effects: vec![to_others(
                        "down",
                        named_room(&channel),
                        Some(seat),
                        Some(Precondition::SenderIsMember),
                    )],
                }
            },
        },
        OpSpec {
            name: "call",
            via: Via::EMIT,
            summary: "call a member of the room: {to: \"{mate}\", channel}; the receiver gets call",
            check_params: |p| only_params(p, &["to", "channel"]),
            build: |ctx, p, _| {
                let to = template(p, "to", ctx.roommate, ctx);
                Request {
                    event: "call",
                    args: vec![json!({
                        "channel_name": channel(ctx, p),
                        "receiver_id": ctx.run.user_id(&to).map_or(Value::Null, Value::from),
                    })],
                    effects: vec![
                        to_others(
                            "call",
                            user_room(&to),
                            None,
                            Some(Precondition::RecipientExists),
                        ),
                        // Should this client's connection end during the call, the peer is
                        // told (seed §3.2 挂断电话).
                        Effect::OnDeparture {
                            event: "hang_up",
                            room: Some(user_room(&to)),
                        },
                        // And the other way: the seed's hang_up is owed to the other side of
                        // a call cut by either side's network failure or killed process.
                        Effect::PeerOnDeparture {
                            event: "hang_up",
                            peer: user_room(&to),
                            back: Some(user_room(ctx.username)),
                        },
                    ],
                }
            },
        },
        OpSpec {
            name: "hang_up",
            via: Via::EMIT,
            summary: "end the call made with `call` {to: the peer}; the peer gets hang_up",
            check_params: |p| only_params(p, &["to"]),
            build: |ctx, p, _| {
                let to = template(p, "to", ctx.roommate, ctx);
                Request {
                    event: "hang_up",
                    args: vec![json!({})],
                    effects: vec![
                        to_others(
                            "hang_up",
                            user_room(&to),
                            None,
                            Some(Precondition::RecipientExists),
                        ),
                        Effect::OnDeparture {
                            event: "hang_up",
                            room: None,
                        },
                        Effect::PeerOnDeparture {
                            event: "hang_up",
                            peer: user_room(&to),
                            back: None,
                        },
                    ],
                }
            },
        },
        OpSpec {
            name: "exit_room_report",
            via: Via::EMIT,
            summary: "report a departure this client was told of: {user_id, channel} (sent by itself on each exit_room)",
            check_params: |p| only_params(p, &["user_id", "channel"]),
            build: |ctx, p, _| {
                let channel = channel(ctx, p);
                let user_id = p.get("user_id").cloned().unwrap_or(Value::Null);
                let about = match &user_id {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                Request {
                    event: "exit_room_report",
                    args: vec![json!({ "user_id": user_id })],
                    effects: vec![Effect::Report {
                        event: "exit_room",
                        room: named_room(&channel),
                        about,
                    }],
                }
            },
        },
        OpSpec {
            name: "users_me",
            via: Via::Http {
                method: "GET",
                path: "/api/users/me",
            },
            summary: "GET /api/users/me?sid= (the user's token; no socket needed) after this user's connection ended: current_room_id must be empty (seed 2.2, the reconnect rule)",
            check_params: |p| only_params(p, &[]),
            build: |ctx, _, _| Request {
                event: "users_me",
                args: vec![json!({ "sid": ctx.token })],
                effects: vec![
                    Effect::HttpStatus { accept: &[200] },
                    Effect::HttpBody {
                        fields: USERS_ME_AFTER_DEPARTURE,
                    },
                    Effect::HttpBodyAbsent { scope: "users_me" },
                ],
            },
        },
    ],
    errors: ErrorStyle::SameEvent {
        field: "error_code",
    },
    error_causes: &[],
    error_shape: Ty::Obj(&[Field::req("error_code", Ty::Int)]),
    check_reply,
    placed_in: None,
    departure: Some(Departure {
        each_room: None,
        everyone: None,
        one_member: Some(("exit_room", EXIT_REPORT_TIMEOUT.as_micros() as u64)),
        friends: None,
    }),
    uses_everyone: false,
    rules: RULES,
    // The seed names no error: every refusal is the reference server's decision (SHOULD).
    seed_errors: Some(&[]),
    doc: DOC,
};

const DOC: &str = "Seed 003, voice rooms. `GET /api/websocket/end_point` names the WebSocket \
and the heartbeat interval (`ping_interval`, 15 s); the client connects to it with `?sid=` and \
gets `create_token {online_token}` first. Every client frame is one JSON object `{action, sid, \
online_token, timestamp, sign, ...}`, `sign` being the md5 of PHP's `json_encode` (unescaped \
Unicode) of the frame without `sign`, its top-level keys sorted; roomrig signs what it sends. \
The client sends `ping` every interval; a server closes a connection that sent no heartbeat for \
20 s. Rooms (channels) have seats: `enter_room`, `send_topic_msg`, `send_gift` (`bc` to the \
room, `ptp` to the receiver), `up`/`down` (a seat taken or freed), `call`/`hang_up`; the seed \
gives the notices' fields (`currenr_room_seat_id` spelled as the seed spells it) but not who \
gets them: that the other members of the room do is the reference server's decision (SHOULD). \
When a member's connection ends, the seed's server tells exactly one other member (`exit_room`), \
who relays it and reports back (`exit_room_report`); the other side of a call it was in, caller \
or called, gets `hang_up`. Refusing a frame \
with a wrong sign, a stale token or an unknown action is the reference server's decision: errors \
are `{action, error_code, error_reason}` on the request's own action.";

const DELIVERY: &[Check] = &[
    Check::Missing,
    Check::Duplicate,
    Check::NonMember,
    Check::Unknown,
    Check::WrongSender,
];

const CONNECT: &str = "seed 003 §3.1 (online_token: generated by the server when the WebSocket connects and handed to the client)";
const NOTICES: &str =
    "seed 003 §3.2 服务端通知客户端的消息结构 (the server's notices and their fields)";
const RECIPIENTS: &str = "reference-server decision: the seed gives the notices' fields, not who gets them; the other members of the room (the entrant's own enter_room confirms it)";
const EXIT: &str = "seed 003 §2.4 断线通知 (departure notice): the server tells one other member of the room, who reports back";
const HANG_UP: &str = "seed 003 §3.2 挂断电话 (hang up: a call cut by a network failure or a killed process, on either side; user_id the side that is gone, receiver_id the other, 对方用户id)";
const CALL: &str = "reference-server decision: the seed has no call notice; the receiver is told";
const REFUSALS: &str = "reference-server decision: the seed names no error; a frame with a wrong sign, a stale token or an unknown action is refused with {error_code} on its own action";
const LATE: &str = "reference-server decision: the seed states no delivery time; the scenario's deadline (latency belongs in thresholds)";
const ORDERED: &str = "reference-server decision: the seed does not state per-sender order";

/// The catalogue of voice's rules (see `crate::oracle::rules`).
pub const RULES: &[RuleSpec] = &[
    // The greeting is owed to every new connection, as a reply to the connect.
    RuleSpec {
        scope: "connect",
        checks: &[Check::ReplyMissing],
        level: Level::Must,
        source: CONNECT,
    },
    RuleSpec {
        scope: "create_token",
        checks: &[Check::Shape],
        level: Level::Must,
        source: CONNECT,
    },
    RuleSpec {
        scope: "create_token",
        checks: &[Check::ReplyContent, Check::ReplyUnsolicited],
        level: Level::Should,
        source: "reference-server decision: the seed hands out the token when the WebSocket connects and does not say it is never handed out again",
    },
    RuleSpec {
        scope: "enter_room",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "enter_room",
        checks: &[
            Check::ReplyMissing,
            Check::ReplyContent,
            Check::ReplyUnsolicited,
        ],
        level: Level::Info,
        source: RECIPIENTS,
    },
    RuleSpec {
        scope: "enter_room",
        checks: DELIVERY,
        level: Level::Should,
        source: RECIPIENTS,
    },
    RuleSpec {
        scope: "send_topic_msg",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "send_topic_msg",
        checks: DELIVERY,
        level: Level::Should,
        source: RECIPIENTS,
    },
    RuleSpec {
        scope: "send_gift-bc",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "send_gift-bc",
        checks: DELIVERY,
        level: Level::Should,
        source: "seed 003 §3.2 送礼物 (gift): notify_type bc is a broadcast to the room; who is in it is the reference server's reading",
    },
    RuleSpec {
        scope: "send_gift-ptp",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "send_gift-ptp",
        checks: DELIVERY,
        level: Level::Should,
        source: "seed 003 §3.2 送礼物 (gift): notify_type ptp is point to point, the receiver only",
    },
    RuleSpec {
        scope: "up",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "up",
        checks: DELIVERY,
        level: Level::Should,
        source: RECIPIENTS,
    },
    RuleSpec {
        scope: "down",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "down",
        checks: DELIVERY,
        level: Level::Should,
        source: RECIPIENTS,
    },
    RuleSpec {
        scope: "call",
        checks: DELIVERY,
        level: Level::Info,
        source: CALL,
    },
    RuleSpec {
        scope: "call",
        checks: &[Check::Shape],
        level: Level::Should,
        source: CALL,
    },
    RuleSpec {
        scope: "hang_up",
        checks: &[Check::Shape],
        level: Level::Must,
        source: HANG_UP,
    },
    RuleSpec {
        scope: "hang_up",
        checks: DELIVERY,
        level: Level::Must,
        source: HANG_UP,
    },
    RuleSpec {
        scope: "exit_room",
        checks: &[Check::Shape],
        level: Level::Must,
        source: NOTICES,
    },
    RuleSpec {
        scope: "exit_room",
        checks: DELIVERY,
        level: Level::Must,
        source: EXIT,
    },
    RuleSpec {
        scope: "connection",
        checks: &[
            Check::HeartbeatTimeoutMissing,
            Check::HeartbeatTimeoutEarly,
        ],
        level: Level::Must,
        source: "seed 003 §2.1 长连接断开情况 (when the connection ends): the client pings every 15 s, the server ends a connection without a heartbeat for 20 s",
    },
    // The seed states 20 s of silence with its own 15 s interval only: against a server that
    // advertises another interval, a close after a missed heartbeat but before 20 s warns.
    RuleSpec {
        scope: "connection",
        checks: &[Check::HeartbeatTimeoutShort],
        level: Level::Should,
        source: "seed 003 §2.1: 20 s of silence goes with the seed's 15 s interval; a server advertising another interval states no silence of its own",
    },
    // A wait capped below the advertised window judges nothing: never more than INFO.
    RuleSpec {
        scope: "connection",
        checks: &[Check::HeartbeatTimeoutNotObserved],
        level: Level::Info,
        source: "seed 003 §2.1: a wait capped below the 20 s window judges nothing",
    },
    RuleSpec {
        scope: "*",
        checks: &[Check::Forbidden],
        level: Level::Should,
        source: "reference-server decision (security): a notice should not carry a client's token or signature",
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
        level: Level::Should,
        source: REFUSALS,
    },
    // The seed states what an empty current_room_id means and that a departed user is put out
    // of its room; the endpoint, its status and its body's shape are the reference server's.
    RuleSpec {
        scope: "current_room_id",
        checks: &[Check::ReplyContent],
        level: Level::Must,
        source: "seed 003 §2.2 网络重新连接处理 (after reconnecting, an empty current_room_id in the user's basic info means the user was put out of the room) with §2.3/§2.4 (the server puts a departed user out of its room)",
    },
    RuleSpec {
        scope: "users_me",
        checks: &[Check::ReplyContent, Check::ReplyMissing, Check::Late],
        level: Level::Should,
        source: "reference-server decision: the seed has the client fetch the user's basic info, not where: GET /api/users/me?sid= answers 200 with {current_room_id}",
    },
    RuleSpec {
        scope: "*",
        checks: &[
            Check::ErrorMissing,
            Check::ErrorContent,
            Check::ErrorUnexpected,
            Check::ErrorWrongEvent,
        ],
        level: Level::Should,
        source: REFUSALS,
    },
];

/// `channel` parameter; default: the fixture room's name.
fn channel(ctx: &OpContext, p: &BTreeMap<String, Value>) -> String {
    template(p, "channel", "room{room}", ctx)
}

/// The seat a generated user takes by default: its place in its fixture room (user `i` of
/// rooms of `s` sits on seat `(i - 1) % s + 1`), so the members of a room never compete.
fn own_seat(ctx: &OpContext) -> u64 {
    let size = ctx.home.map_or(1, |(_, size)| u64::from(size.max(1)));
    ctx.user_id.saturating_sub(1) % size + 1
}

/// A notice to the other members of `room` (the sender may get its own copy).
fn to_others(
    event: &'static str,
    room: u64,
    value: Option<Value>,
    unless: Option<Precondition>,
) -> Effect {
    Effect::Broadcast {
        event,
        room,
        include_sender: false,
        unless: unless.unwrap_or(Precondition::None),
        seq: None,
        value,
    }
}

/// The entrant's own `enter_room` names it.
fn check_reply(event: &str, payload: &Value, ctx: &OpContext) -> Result<(), String> {
    if event == "enter_room" && !super::dorm::same_id(&payload["user_id"], ctx.user_id) {
        return Err(format!(
            "enter_room.user_id is {}, the entrant is {}",
            payload["user_id"], ctx.user_id
        ));
    }
    Ok(())
}

/// How a voice client connects: a plain WebSocket at the target's `/?sid=`, the heartbeat
/// interval from `end_point`.
pub static WIRE: super::WebSocketDialect = super::WebSocketDialect {
    framing,
    user_query: "sid",
    discovery: Some(("/api/websocket/end_point", "ping_interval")),
    ping_interval: PING_INTERVAL,
    ping_timeout: PING_TIMEOUT,
    answers: &[("exit_room", "exit_room_report")],
};

/// The frames of one voice connection: `action` names the event; `sid` (the user's token),
/// the learned `online_token`, a `timestamp` in seconds and the md5 `sign` go into every frame;
/// `ping` every `ping_interval`.
pub fn framing(sid: &str, ping_interval: Duration, ping_timeout: Duration) -> Box<dyn Framing> {
    let mut f = JsonFraming::new("action");
    f.fixed.insert("sid".into(), json!(sid));
    f.learn.push(Learn {
        event: "create_token".into(),
        field: "online_token".into(),
        required: true,
    });
    f.timestamp = Some(("timestamp".into(), Clock::UnixSeconds));
    f.sign = Some(Signer {
        field: "sign".into(),
        sign: Arc::new(|fields| json!(php_json::sign_json(fields, "sign"))),
    });
    f.heartbeat = Some(AppHeartbeat {
        event: "ping".into(),
        interval: ping_interval,
        timeout: ping_timeout,
        answer: None,
    });
    Box::new(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn frames_are_signed_as_php_would() {
        let mut f = framing("t1", PING_INTERVAL, PING_TIMEOUT);
        assert!(!f.ready());
        f.read(r#"{"action":"create_token","online_token":"o1"}"#)
            .unwrap();
        assert!(f.ready());
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let text = f.encode(
            "up",
            &[json!({"room_seat_id": 2, "channel_name": "a/b"})],
            t,
        );
        assert_eq!(php_json::verify_text(&text, "sign"), Ok(true), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["sid"], "t1");
        assert_eq!(v["online_token"], "o1");
        assert_eq!(v["timestamp"], 1_700_000_000u64);
        assert_eq!(f.heartbeat().unwrap().interval, PING_INTERVAL);
    }
}
