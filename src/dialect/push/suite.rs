//! The push conformance suite (`roomrig check --dialect push`): its cases, whose scenarios are
//! in `src/check/cases/push-*.yaml`, and how the suite's listeners sit in a push room.

use std::collections::HashMap;

use reference_server::fixtures::User;
use serde_json::{json, Value};

use crate::dialect::suite::{case, hostile, JoinStep, Listening, Suite};
use crate::oracle::rules::Level;

pub static SUITE: Suite = Suite {
    cases: &[
        case(
            "push/login/modes",
            Level::Must,
            "seed 002 §连接房间 and §code",
            "2001 on connect; loginWhenFirst answers 2002 into an empty room and 2004 into an occupied one; loginWhenever joins anyway; loginWhenLast kicks every earlier connection once with 2005",
            include_str!("../../check/cases/push-login.yaml"),
        ),
        case(
            "push/login/storm-of-50-per-mode",
            Level::Must,
            "seed 002 §连接房间 and §code (the seed's own server mishandles several connections per room; the modes as the seed states them)",
            "50 logins into one room per mode: loginWhenever admits all, loginWhenLast kicks each earlier one once, loginWhenFirst refuses the 49 later ones with 2004; a push reaches exactly who is in",
            include_str!("../../check/cases/push-login-storm.yaml"),
        ),
        case(
            "push/http/room-and-global",
            Level::Must,
            "seed 002 §消息下发服务",
            "a push reaches every connection of its room and nobody else, data untouched; a push without roomId reaches every connection; each answers 0000",
            include_str!("../../check/cases/push-http.yaml"),
        ),
        case(
            "push/http/kicked-receives-nothing",
            Level::Must,
            "seed 002 §连接房间 (loginWhenLast removes the earlier connections)",
            "after its 2005, a kicked connection receives nothing pushed into that room",
            include_str!("../../check/cases/push-kicked.yaml"),
        ),
        case(
            "push/http/not-a-push",
            Level::Must,
            "seed 002 §消息下发服务 (eventName is required, else nothing is sent); 400/413 are reference-server decisions",
            "a push without eventName, a body that is not JSON, a 2 MB body, wrong types and roomId __proto__ deliver nothing and are answered 0000 or a 4xx",
            include_str!("../../check/cases/push-hostile-http.yaml"),
        ),
        hostile(
            "push/robustness/hostile-logins",
            "invalid logins get 2003; no argument, a 2 MB room id and the event __proto__ take nothing down, and a member of another room is still served",
            "loginRoom({}), loginRoom({type: \"loginWhenEver\"}), loginRoom({roomId: true}), loginRoom(), loginRoom({roomId: <2 MB>}), __proto__(\"x\")",
            include_str!("../../check/cases/push-hostile-socket.yaml"),
        ),
    ],
    families: &[],
    listening: Listening {
        room,
        join,
        foreign,
    },
};

/// A listener logs into its fixture room (a user without one: a room of its own) with
/// `loginWhenever`, so that it never refuses or kicks a case's client.
fn room(user: &User, fixture_room: Option<&str>, role: &str) -> Option<String> {
    Some(fixture_room.map_or_else(
        || format!("roomrig-{role}-{}", user.username),
        str::to_string,
    ))
}

fn join(_token: &str, _username: &str, room: Option<&str>) -> Vec<JoinStep> {
    vec![JoinStep {
        event: "loginRoom",
        args: vec![json!({"roomId": room, "type": "loginWhenever"})],
        answers: &["downmsg"],
    }]
}

/// A room push names its room in `room` (the driver's data); a kick is the listener's own.
fn foreign(event: &str, payload: &Value, room: Option<&str>, _homes: &HashMap<u64, u64>) -> bool {
    event == super::ROOM_PUSH && (room.is_none() || payload["room"].as_str() != room)
}
