//! `lobby` (seed 004): the App Inventor SocketIO extension's chat server. Positional
//! arguments; errors arrive on `err` as a bare string; a user logs in by name, joins any number
//! of named rooms (capacity set by the first joiner), and every departure is announced.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    content_id, dorm::check_size, named_room, only_params, template, user_room, Attribution,
    Departure, DialectSpec, Effect, ErrorStyle, EventSpec, OpContext, OpSpec, Precondition,
    Request, RoomOf, SenderKey, EVERYONE,
};
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
        reply("joinedRoom", Ty::Obj(&[WHO, ROOMNAME, USERLIST])),
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
    departure: Some(Departure {
        each_room: Some("otherLeftRoom"),
        everyone: Some("otherLogedout"),
    }),
    uses_everyone: true,
};

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
