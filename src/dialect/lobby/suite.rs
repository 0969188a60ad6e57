//! The lobby conformance suite (`roomrig check --dialect lobby`): its cases, whose scenarios are
//! in `src/check/cases/lobby-*.yaml`, and how the suite's listeners sit in a lobby room.

use std::collections::HashMap;

use reference_server::fixtures::User;
use serde_json::{json, Value};

use crate::dialect::suite::{
    case, hostile, input, malformed_frames, Family, JoinStep, Listening, Suite,
};
use crate::oracle::rules::Level;

pub static SUITE: Suite = Suite {
    cases: &[
        case(
            "lobby/login/announced",
            Level::Must,
            "seed 004 §Login",
            "login answers logedin and tells every other socket otherLogedin",
            include_str!("../../check/cases/lobby-login.yaml"),
        ),
        case(
            "lobby/login/name-free-after-disconnect",
            Level::Must,
            "seed 004, Login (duplicate username) and Logout",
            "after its user disconnects, a name logs in again on a new connection",
            include_str!("../../check/cases/lobby-name-free.yaml"),
        ),
        case(
            "lobby/login/reconnect-right-after-login",
            Level::Must,
            "seed 004, Login and Logout",
            "a login raced by its own disconnect leaves no ghost: the name logs in again",
            include_str!("../../check/cases/lobby-reconnect-after-login.yaml"),
        ),
        case(
            "lobby/login/second-login-refused",
            Level::Should,
            "reference-server decision: a socket logs in once (seed 004 says nothing)",
            "a second login on a logged-in socket is refused on err",
            include_str!("../../check/cases/lobby-second-login.yaml"),
        ),
        case(
            "lobby/room/join-message-leave",
            Level::Must,
            "seed 004, JoinOrCreateRoom, SendRoomMessage, SendPrivateMessage, SendPublicMessage, LeaveRoom",
            "room joins, room, private and public messages and leaves reach exactly who they must",
            include_str!("../../check/cases/lobby-room.yaml"),
        ),
        case(
            "lobby/err/error-strings",
            Level::Must,
            "seed 004 §GotError (MUST); `not logged in` is a reference-server decision (SHOULD)",
            "not logged in, already in room, no such room or not in it, no such user, on err",
            include_str!("../../check/cases/lobby-errors.yaml"),
        ),
        case(
            "lobby/err/room-full-and-duplicate-username",
            Level::Must,
            "seed 004, GotError",
            "a room at its maxUser answers `room full`, a taken name `duplicate username`, on err",
            include_str!("../../check/cases/lobby-full-and-taken.yaml"),
        ),
        case(
            "lobby/disconnect/announced",
            Level::Must,
            "seed 004, Logout / LeaveRoom on disconnect",
            "a vanished user's rooms get otherLeftRoom, every other socket otherLogedout",
            include_str!("../../check/cases/lobby-departure.yaml"),
        ),
        case(
            "lobby/disconnect/room-reopened",
            Level::Should,
            "seed 004 §LeaveRoom (a disconnect leaves every room); reference-server decision: an empty room is removed",
            "a room whose last member disconnected is joined again, with its new creator's maxUser",
            include_str!("../../check/cases/lobby-room-reopened.yaml"),
        ),
        case(
            "lobby/connection/dead-heartbeat-closed",
            Level::Must,
            "common rule: Engine.IO heartbeat; seed 004 §Logout (a lost connection is a logout)",
            "a member whose heartbeat stops is closed in time, and its room and everyone are told",
            include_str!("../../check/cases/lobby-heartbeat.yaml"),
        ),
        hostile(
            "lobby/robustness/unknown-prototype-rooms",
            "a message to or a leave of a room named __proto__, constructor, toString or hasOwnProperty that nobody created is `no such room or not in it`",
            "roomMessage and leaveRoom naming the rooms __proto__, constructor, toString, hasOwnProperty",
            include_str!("../../check/cases/lobby-hostile-unknown-rooms.yaml"),
        ),
        hostile(
            "lobby/robustness/private-to-prototype-names",
            "a private message to __proto__, constructor or toString (nobody's name) is `no such user`",
            "privateMessage to the users __proto__, constructor, toString",
            include_str!("../../check/cases/lobby-hostile-private.yaml"),
        ),
        hostile(
            "lobby/robustness/join-room-__proto__",
            "joining and talking in a room named __proto__ leaks nothing, and everyone else is served",
            "joinRoom(\"__proto__\", 2)",
            include_str!("../../check/cases/lobby-hostile-join-__proto__.yaml"),
        ),
        hostile(
            "lobby/robustness/join-room-constructor",
            "joining and talking in a room named constructor leaks nothing, and everyone else is served",
            "joinRoom(\"constructor\", 2)",
            include_str!("../../check/cases/lobby-hostile-join-constructor.yaml"),
        ),
        hostile(
            "lobby/robustness/join-room-toString",
            "joining and talking in a room named toString leaks nothing, and everyone else is served",
            "joinRoom(\"toString\", 2)",
            include_str!("../../check/cases/lobby-hostile-join-toString.yaml"),
        ),
        hostile(
            "lobby/robustness/join-room-socket-id",
            "another connection's socket id as a room name: that connection receives nothing of it",
            "joinRoom(<client 1's socket id>, 2)",
            include_str!("../../check/cases/lobby-hostile-join-socket-id.yaml"),
        ),
    ],
    families: &[
        Family {
            id: "lobby/robustness/hostile-types",
            description: "after {input}, later clients are served",
            template: include_str!("../../check/cases/lobby-hostile-type.yaml"),
            inputs: &[
                input(
                    "login-no-arguments",
                    "login with no arguments",
                    &[r#"send: { event: login, args: [], lenient: true }"#],
                ),
                input(
                    "login-number",
                    "login(5)",
                    &[r#"send: { event: login, args: [ 5 ], lenient: true }"#],
                ),
                input(
                    "login-object",
                    "login({name})",
                    &[r#"send: { event: login, args: [ { name: "{me}" } ], lenient: true }"#],
                ),
                input(
                    "login-null",
                    "login(null)",
                    &[r#"send: { event: login, args: [ null ], lenient: true }"#],
                ),
                input(
                    "login-array",
                    "login([name])",
                    &[r#"send: { event: login, args: [ [ "{me}" ] ], lenient: true }"#],
                ),
                input(
                    "login-over-1mb",
                    "login(<a 2 MB string>)",
                    &[r#"send: { event: login, args: [ "{pad:2000000}" ], lenient: true }"#],
                ),
                input(
                    "join-room-no-arguments",
                    "joinRoom with no arguments",
                    &[
                        "login",
                        r#"send: { event: joinRoom, args: [], lenient: true }"#,
                    ],
                ),
                input(
                    "join-room-number-name",
                    "joinRoom(5, \"x\")",
                    &[
                        "login",
                        r#"send: { event: joinRoom, args: [ 5, "x" ], lenient: true }"#,
                    ],
                ),
                input(
                    "join-room-object-name",
                    "joinRoom({name: \"r\"}, -1)",
                    &[
                        "login",
                        r#"send: { event: joinRoom, args: [ { name: "r" }, -1 ], lenient: true }"#,
                    ],
                ),
                input(
                    "join-room-string-capacity",
                    "joinRoom(name, <a 100-character string>)",
                    &[
                        "login",
                        r#"send: { event: joinRoom, args: [ "t-{me}", "{pad:100}" ], lenient: true }"#,
                    ],
                ),
                input(
                    "room-message-wrong-types",
                    "roomMessage({}, [])",
                    &[
                        "login",
                        r#"send: { event: roomMessage, args: [ {}, [] ], lenient: true }"#,
                    ],
                ),
                input(
                    "room-message-over-1mb",
                    "roomMessage(its room, <a 2 MB string>)",
                    &[
                        "login",
                        r#"joinRoom: { room: "t-{me}", lenient: true }"#,
                        r#"send: { event: roomMessage, args: [ "t-{me}", "{pad:2000000}" ], lenient: true }"#,
                    ],
                ),
                input(
                    "private-message-nulls",
                    "privateMessage(null, null)",
                    &[
                        "login",
                        r#"send: { event: privateMessage, args: [ null, null ], lenient: true }"#,
                    ],
                ),
                input(
                    "public-message-object",
                    "publicMessage({content: 1})",
                    &[
                        "login",
                        r#"send: { event: publicMessage, args: [ { content: 1 } ], lenient: true }"#,
                    ],
                ),
                input(
                    "leave-room-number",
                    "leaveRoom(42)",
                    &[
                        "login",
                        r#"send: { event: leaveRoom, args: [ 42 ], lenient: true }"#,
                    ],
                ),
                input(
                    "prototype-event-__proto__",
                    "the event __proto__(\"x\")",
                    &[
                        "login",
                        r#"send: { event: __proto__, args: [ "x" ], lenient: true }"#,
                    ],
                ),
            ],
        },
        Family {
            id: "lobby/robustness/malformed-frames",
            description: "after {input}, everyone else is served",
            template: include_str!("../../check/cases/lobby-malformed-frame.yaml"),
            inputs: malformed_frames!(
                "login",
                r#"42{\"login\":1}"#,
                "42[\"login\",\"…\"",
                r#"42[\"login\",\"{me}\""#,
                r#"42[\"publicMessage\",\"{pad:2000000}\"]"#
            ),
        },
    ],
    listening: Listening {
        room,
        join,
        foreign,
    },
};

/// A listener logs in with its name and joins its fixture room by name (a user without one: a
/// room of its own); a room event names its room in `roomname`.
fn room(user: &User, fixture_room: Option<&str>, role: &str) -> Option<String> {
    Some(fixture_room.map_or_else(
        || format!("roomrig-{role}-{}", user.username),
        str::to_string,
    ))
}

fn join(_token: &str, username: &str, room: Option<&str>) -> Vec<JoinStep> {
    vec![
        JoinStep {
            event: "login",
            args: vec![json!(username)],
            answers: &["logedin", "err"],
        },
        JoinStep {
            event: "joinRoom",
            args: vec![json!(room), Value::Null],
            answers: &["joinedRoom", "err"],
        },
    ]
}

fn foreign(event: &str, payload: &Value, room: Option<&str>, _homes: &HashMap<u64, u64>) -> bool {
    matches!(
        event,
        "gotRoomMessage" | "otherJoinedRoom" | "otherLeftRoom"
    ) && (room.is_none() || payload["roomname"].as_str() != room)
}
