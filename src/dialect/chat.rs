//! `chat` (seed 001): a Socket.IO chat over four namespaces of one Engine.IO connection:
//! authentication on `/`, friend messages on `/friend`, group messages on `/group`, system
//! events on `/server`; presence notices; messages kept for an offline user and handed over
//! once in `saoff`; history.
//!
//! Wire ids are the fixture's user names; the session id (`sid`) is the user's token. The
//! friend graph and the groups come from the users file (or the derived graph of generated
//! users): see `reference_server::fixtures::social`.

pub mod suite;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    content_id, only_params, parse_content_id, template, user_room, Attribution, Departure,
    DialectSpec, Effect, ErrorStyle, EventSpec, OpContext, OpSpec, Precondition, Request, RoomOf,
    SenderKey, Via, Wire,
};
use crate::oracle::rules::{Check, Level, RuleSpec};
use crate::oracle::shape::{Field, Ty};

const FROM: Field = Field::req("from", Ty::Str);
const TO: Field = Field::req("to", Ty::Str);
const MSG: Field = Field::req("msg", Ty::Str);
const MESSAGE: Ty = Ty::Obj(&[FROM, TO, MSG]);
/// A presence notice's `msg` is the reference server's (`online` / `offline`): the seed's
/// template shows a string, so only its type is required.
const NOTICE: Ty = Ty::Obj(&[FROM, TO, Field::ours("msg", Ty::Str)]);

const BY_NAME: SenderKey = SenderKey::Username("from");

/// The namespaces of the dialect, beside `/`.
pub const FRIEND: &str = "/friend";
pub const GROUP: &str = "/group";
pub const SERVER: &str = "/server";

const fn reply(name: &'static str, wire: Wire, shape: Ty) -> EventSpec {
    EventSpec {
        name,
        wire,
        shape,
        forbidden: &[],
        attribution: Attribution::Reply,
        room: RoomOf::ReceiverUser,
    }
}

const fn message(name: &'static str, wire: Wire) -> EventSpec {
    EventSpec {
        name,
        wire,
        shape: MESSAGE,
        forbidden: &[],
        attribution: Attribution::ContentId {
            field: "msg",
            sender: BY_NAME,
        },
        room: RoomOf::ReceiverUser,
    }
}

const fn presence(name: &'static str) -> EventSpec {
    EventSpec {
        name,
        wire: Wire::on(FRIEND),
        shape: NOTICE,
        forbidden: &[],
        attribution: Attribution::SenderFifo {
            sender: BY_NAME,
            value_field: None,
        },
        room: RoomOf::ReceiverUser,
    }
}

pub static SPEC: DialectSpec = DialectSpec {
    name: "chat",
    events: &[
        // `auth-s` is one event whose `code` says what it is: told apart by the tag.
        reply(
            "auth-s",
            Wire::tagged("/", "auth-s", "code", "1"),
            Ty::Obj(&[Field::req("code", Ty::Int)]),
        ),
        reply(
            "auth-s-unknown",
            Wire::tagged("/", "auth-s", "code", "0"),
            Ty::Obj(&[Field::req("code", Ty::Int)]),
        ),
        reply(
            "auth-s-error",
            Wire::tagged("/", "auth-s", "code", "-1"),
            Ty::Obj(&[Field::req("code", Ty::Int)]),
        ),
        message("receivefsmg", Wire::on(FRIEND)),
        message(
            "group-receivefsmg",
            Wire {
                namespace: GROUP,
                event: Some("receivefsmg"),
                tag: None,
            },
        ),
        presence("fonline"),
        presence("foffline"),
        reply(
            "stime",
            Wire::on(SERVER),
            Ty::Obj(&[Field::req("time", Ty::Time)]),
        ),
        EventSpec {
            attribution: Attribution::KeptReply {
                lists: &["flogs", "glogs"],
                content: "msg",
            },
            ..reply(
                "saoff",
                Wire::on(SERVER),
                Ty::Obj(&[
                    Field::req("from", Ty::Str),
                    TO,
                    Field::req("flogs", Ty::Arr(&MESSAGE)),
                    Field::req("glogs", Ty::Arr(&MESSAGE)),
                ]),
            )
        },
        reply(
            "shistory",
            Wire::on(SERVER),
            Ty::Obj(&[
                Field::req("to", Ty::Str),
                Field::req("type", Ty::Str),
                Field::req("data", Ty::Arr(&MESSAGE)),
            ]),
        ),
    ],
    ops: &[
        OpSpec {
            name: "auth",
            via: Via::EMIT,
            summary: "authenticate the connection: auth-c {sid} (default: the user's token) → auth-s {code: 1}, fonline to each online friend; {as: N}: as client N's user, a second device of a user already online (no fonline then)",
            check_params: |p| {
                only_params(p, &["sid", "as"])?;
                match p.get("as") {
                    None => Ok(()),
                    Some(v) if v.as_u64().is_some() => Ok(()),
                    Some(_) => Err("`as` must be a client number (0, 1, ...)".into()),
                }
            },
            build: |ctx, p, _| {
                // A second device: another client's user, already online, so no presence.
                let other = p
                    .get("as")
                    .and_then(Value::as_u64)
                    .and_then(|n| Some((ctx.run.username(n as usize)?, ctx.run.token(n as usize)?)));
                let (user, token) = other.unwrap_or((ctx.username, ctx.token));
                let mut effects = vec![Effect::Join {
                    room: user_room(user),
                    name: user.to_string(),
                    reply: "auth-s",
                }];
                if other.is_none() {
                    effects.extend(ctx.run.friends(ctx.user_id).into_iter().map(|f| {
                        Effect::Broadcast {
                            event: "fonline",
                            room: user_room(&f),
                            include_sender: false,
                            unless: Precondition::None,
                            seq: None,
                            value: None,
                        }
                    }));
                }
                let sid = match p.get("sid") {
                    Some(_) => template(p, "sid", "{token}", ctx),
                    None => token.to_string(),
                };
                Request {
                    event: "auth-c",
                    args: vec![json!({ "sid": sid })],
                    effects,
                }
            },
        },
        OpSpec {
            name: "auth_unknown",
            via: Via::EMIT,
            summary: "authenticate with a session the server does not know: auth-s {code: 0}, the connection stays unauthenticated; {sid}",
            check_params: |p| only_params(p, &["sid"]),
            build: |ctx, p, _| Request {
                event: "auth-c",
                args: vec![json!({"sid": template(p, "sid", "no-such-session", ctx)})],
                effects: vec![Effect::Reply {
                    event: "auth-s-unknown",
                }],
            },
        },
        OpSpec {
            name: "friend_message",
            via: Via::Emit { namespace: FRIEND },
            summary: "sendfsmg {from, to, msg} on /friend: receivefsmg to every connection of `to` (default: the user's first friend), or kept for its next saoff; {to, from, size}",
            check_params: |p| {
                only_params(p, &["to", "from", "size"])?;
                super::dorm::check_size(p)
            },
            build: |ctx, p, _| {
                let first_friend = ctx.run.friends(ctx.user_id).into_iter().next();
                let to = template(p, "to", first_friend.as_deref().unwrap_or(ctx.roommate), ctx);
                Request {
                    event: "sendfsmg",
                    args: vec![json!({
                        "from": template(p, "from", "{me}", ctx),
                        "to": to,
                        "msg": content(ctx, p),
                    })],
                    effects: vec![Effect::Deferrable {
                        event: "receivefsmg",
                        room: user_room(&to),
                        seq: ctx.seq,
                        via: "saoff",
                    }],
                }
            },
        },
        OpSpec {
            name: "group_message",
            via: Via::Emit { namespace: GROUP },
            summary: "sendfsmg {from, to: group, msg} on /group: receivefsmg to every connection of every member (kept for an offline one), the sender's own MAY; {group (default: the user's first group), from, size}",
            check_params: |p| {
                only_params(p, &["group", "from", "size"])?;
                super::dorm::check_size(p)
            },
            build: |ctx, p, _| {
                let first_group = ctx.run.groups_of(ctx.user_id).into_iter().next();
                let group = template(p, "group", first_group.as_deref().unwrap_or("g0"), ctx);
                let mut effects = Vec::new();
                for member in ctx.run.group_members(&group) {
                    if member == ctx.username {
                        // The sender's own copy: SHOULD (the public implementation echoes),
                        // so allowed, never required.
                        effects.push(Effect::Broadcast {
                            event: "group-receivefsmg",
                            room: user_room(&member),
                            include_sender: true,
                            unless: Precondition::Refused,
                            seq: Some(ctx.seq),
                            value: None,
                        });
                    } else {
                        effects.push(Effect::Deferrable {
                            event: "group-receivefsmg",
                            room: user_room(&member),
                            seq: ctx.seq,
                            via: "saoff",
                        });
                    }
                }
                Request {
                    event: "sendfsmg",
                    args: vec![json!({
                        "from": template(p, "from", "{me}", ctx),
                        "to": group,
                        "msg": content(ctx, p),
                    })],
                    effects,
                }
            },
        },
        OpSpec {
            name: "ctime",
            via: Via::Emit { namespace: SERVER },
            summary: "ctime on /server: stime {time}",
            check_params: super::no_params,
            build: |_, _, _| Request {
                event: "ctime",
                args: vec![json!({})],
                effects: vec![Effect::Reply { event: "stime" }],
            },
        },
        OpSpec {
            name: "caoff",
            via: Via::Emit { namespace: SERVER },
            summary: "caoff {from} on /server: saoff {from: \"off-line\", to, flogs, glogs} with every message kept while the user was offline, once",
            check_params: super::no_params,
            build: |ctx, _, _| Request {
                event: "caoff",
                args: vec![json!({"from": ctx.username})],
                effects: vec![Effect::Reply { event: "saoff" }],
            },
        },
        OpSpec {
            name: "chistory",
            via: Via::Emit { namespace: SERVER },
            summary: "chistory {id, to, type, len} on /server: shistory with the newest `len` messages, oldest first; {to (default: the first friend), type: friend|group, len (default 10)}",
            check_params: |p| {
                only_params(p, &["to", "type", "len"])?;
                match p.get("type").map(|t| t.as_str()) {
                    None | Some(Some("friend" | "group")) => {}
                    _ => return Err("`type` must be \"friend\" or \"group\"".into()),
                }
                match p.get("len") {
                    None => Ok(()),
                    Some(v) if v.as_u64().is_some_and(|n| n >= 1) => Ok(()),
                    Some(_) => Err("`len` must be a whole number from 1".into()),
                }
            },
            build: |ctx, p, _| {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("friend");
                let default = if kind == "group" {
                    ctx.run.groups_of(ctx.user_id).into_iter().next()
                } else {
                    ctx.run.friends(ctx.user_id).into_iter().next()
                };
                let to = template(p, "to", default.as_deref().unwrap_or(ctx.roommate), ctx);
                let len = p.get("len").and_then(Value::as_u64).unwrap_or(10);
                Request {
                    event: "chistory",
                    args: vec![json!({"id": ctx.username, "to": to, "type": kind, "len": len})],
                    effects: vec![Effect::Reply { event: "shistory" }],
                }
            },
        },
    ],
    errors: ErrorStyle::Channel { event: "err" },
    error_causes: &[],
    error_shape: Ty::Obj(&[Field::ours("error", Ty::Str)]),
    check_reply,
    placed_in: None,
    departure: Some(Departure {
        each_room: None,
        everyone: None,
        friends: Some("foffline"),
        one_member: None,
    }),
    uses_everyone: false,
    rules: RULES,
    // The seed names no error: the catalogue rates every error check SHOULD.
    seed_errors: None,
    doc: DOC,
};

const DOC: &str = "Seed 001, a Socket.IO chat (the seed's server ran socket.io 1.x, Engine.IO 3) \
over four namespaces of one Engine.IO connection: `/` authenticates (`auth-c {sid}` → \
`auth-s {code}`: 1 ok, 0 unknown session, -1 server error), `/friend` carries one-to-one \
messages (`sendfsmg {from, to, msg}` → `receivefsmg` to every connection of `to`), `/group` \
group messages (`sendfsmg {from, to: group, msg}` → `receivefsmg` to every connection of every \
online member, the sender's own SHOULD), `/server` system events: `ctime` → `stime {time}`, \
`caoff` → `saoff {from: \"off-line\", to, flogs, glogs}` and `chistory {id, to, type, len}` → \
`shistory {id, to, type, data}` (the newest `len` messages, oldest first). The user of a \
connection is set by `auth-c` on `/`; events before it MUST have no effect (an answer is \
allowed, none too). A forged `from` MUST have no effect. A message that reached none of the \
target's connections MUST NOT be lost: it comes once, in the `saoff` answering the target's next \
`caoff`, also across a restart of the server. How a backlog is split is the server's choice \
(one `saoff`, several answering one `caoff`, one part per `caoff`, or parts pushed unasked: a \
`saoff` no request waits for is a further part, not unsolicited); every message MUST come exactly \
once, and a `saoff` whose lists are both empty ends the handover: what is still owed then is \
`missing` (a checker asks again until it gets one). A message sent within a deadline of its \
target's logout or login may be delivered live or kept, either once; kept just before a login \
it may still come live after the empty `saoff`, and is missing only if it has come neither way \
twice the deadline after the send while that connection stayed. The reference server sends at most 48 KiB \
of messages per `saoff`, with `more: true` while more are kept. A restart (the scenario step \
`restart_server`, embedded server only; refused against a target, and the check case \
`chat/saoff/survives-restart` is skipped there with the reason) is judged so: a connection \
the restart dropped is no `unexpected-close` and its departure is owed to nobody, a connect \
while the server is down is no `connect-failed`, a message sent within one deadline of the \
restart may have been lost with the stopping server (owed only if it comes, once), and every \
message kept before that is owed after the restart exactly once. `fonline` / `foffline` go to each online friend \
when a user's connection count goes 0→1 / 1→0 (the seed marks them client events, copied from \
its template: the server-sent direction, the event names `caoff`/`saoff`/`ctime`/`stime`/\
`chistory`/`shistory` and the error event `err` are decisions, SHOULD or INFO). After a \
client's hostile input (a frame over maxPayload is cut off while it is still being written) \
the server may drop the connection and tell the friends before the client notices: only who \
gets that `foffline` is judged (its friends may, nobody else), not whether or when. User ids on \
the wire are the users file's user names; the session id is the user's token. Friends and \
groups come from the users file (`friends`: pairs of user ids; `groups`: `{group_id, \
members}`); generated users get a derived graph: users of one fixture room are friends and form \
the group `g<room>`, and consecutive users are friends.";

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

const AUTH: &str = "seed 001 §事件接口 room \"/\" (auth-c 客户端发起安全验证 / auth-s 服务器返回安全验证结果): the client sends its session id, the server answers code -1, 0 or 1";
const FRIEND_MSG: &str = "seed 001 §事件接口 room \"/friend\" (sendfsmg 双人聊天发送消息 / receivefsmg 双人聊天接收消息): a friend message reaches the user `to`";
const GROUP_MSG: &str = "seed 001 §事件接口 room \"/group\" (sendfsmg / receivefsmg 多人聊天): a group message reaches the group's members";
const OFFLINE: &str = "seed 001 §通信模型 (查看个人的离线数据: a user sees its offline data) and §系统事件 (离线消息同步 offline message sync): a message to an offline user is kept and handed over once";
const OFFLINE_NAMES: &str = "protocols decision: the seed names offline sync but not its events; `caoff` → `saoff` on /server is the public implementation's";
const PRESENCE: &str = "seed 001 §事件接口 fonline/foffline (好友上线/好友下线) are marked client events (a template copy); server → client on a user's first connection / last disconnect is a decision";
const SYSTEM: &str = "seed 001 §系统事件 (用户获取系统时间, 历史消息: system time, history): the event names and payloads are decisions";
const LATE: &str = "reference-server decision: the seed states no delivery time; the scenario's deadline (latency belongs in thresholds)";
const ORDERED: &str = "reference-server decision: the seed does not state per-sender order";
const ERRORS: &str = "reference-server decision: the seed names no error; refusals come as `err {error}` on the asking namespace (a server may answer nothing)";

/// The catalogue of chat's rules.
pub const RULES: &[RuleSpec] = &[
    RuleSpec {
        scope: "auth-c",
        checks: ASKED,
        level: Level::Must,
        source: AUTH,
    },
    RuleSpec {
        scope: "auth-s",
        checks: REPLY,
        level: Level::Must,
        source: AUTH,
    },
    RuleSpec {
        scope: "auth-s-unknown",
        checks: REPLY,
        level: Level::Must,
        source: AUTH,
    },
    RuleSpec {
        scope: "auth-s-error",
        checks: REPLY,
        level: Level::Must,
        source: AUTH,
    },
    RuleSpec {
        scope: "receivefsmg",
        checks: DELIVERY,
        level: Level::Must,
        source: FRIEND_MSG,
    },
    RuleSpec {
        scope: "group-receivefsmg",
        checks: DELIVERY,
        level: Level::Must,
        source: GROUP_MSG,
    },
    RuleSpec {
        scope: "fonline",
        checks: DELIVERY,
        level: Level::Should,
        source: PRESENCE,
    },
    RuleSpec {
        scope: "foffline",
        checks: DELIVERY,
        level: Level::Should,
        source: PRESENCE,
    },
    RuleSpec {
        scope: "saoff",
        checks: &[Check::Missing, Check::Duplicate, Check::Unknown],
        level: Level::Must,
        source: OFFLINE,
    },
    RuleSpec {
        scope: "saoff",
        checks: REPLY,
        level: Level::Should,
        source: OFFLINE_NAMES,
    },
    RuleSpec {
        scope: "caoff",
        checks: ASKED,
        level: Level::Should,
        source: OFFLINE_NAMES,
    },
    RuleSpec {
        scope: "ctime",
        checks: ASKED,
        level: Level::Should,
        source: SYSTEM,
    },
    RuleSpec {
        scope: "stime",
        checks: REPLY,
        level: Level::Should,
        source: SYSTEM,
    },
    RuleSpec {
        scope: "chistory",
        checks: ASKED,
        level: Level::Should,
        source: SYSTEM,
    },
    RuleSpec {
        scope: "shistory",
        checks: REPLY,
        level: Level::Should,
        source: SYSTEM,
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
        level: Level::Should,
        source: ERRORS,
    },
];

fn content(ctx: &OpContext, p: &BTreeMap<String, Value>) -> String {
    let size = p.get("size").and_then(Value::as_u64).unwrap_or(32) as usize;
    content_id(ctx.client, ctx.seq, size)
}

/// `saoff` and `shistory` name the requester; `shistory` lists each sender's messages oldest
/// first (the only order the driver knows for sure: its own per-sender sequence).
fn check_reply(event: &str, payload: &Value, ctx: &OpContext) -> Result<(), String> {
    match event {
        "saoff" => {
            let to = &payload["to"];
            if to.as_str() != Some(ctx.username) {
                return Err(format!(
                    "saoff.to is {to}, the requester is {:?}",
                    ctx.username
                ));
            }
        }
        "shistory" => {
            let mut last: BTreeMap<u32, u64> = BTreeMap::new();
            for m in payload["data"].as_array().into_iter().flatten() {
                let Some((sender, seq)) = m["msg"].as_str().and_then(parse_content_id) else {
                    continue;
                };
                if let Some(&before) = last.get(&sender) {
                    if seq <= before {
                        return Err(format!(
                            "history oldest first: message {seq} of client {sender} is listed after its message {before}"
                        ));
                    }
                }
                last.insert(sender, seq);
            }
        }
        _ => {}
    }
    Ok(())
}
