//! The dorm conformance suite (`roomrig check --dialect dorm`): its cases, whose scenarios are
//! in `src/check/cases/dorm-*.yaml`, and how the suite's listeners sit in a dorm room.

use std::collections::HashMap;

use reference_server::fixtures::User;
use serde_json::{json, Value};

use crate::dialect::suite::{case, input, malformed_frames, Family, JoinStep, Listening, Suite};
use crate::oracle::rules::Level;

pub static SUITE: Suite = Suite {
    cases: &[
        case(
            "dorm/join_room/last-data-to-joiner",
            Level::Must,
            "seed 000, join_room",
            "join_room is answered with last_data naming the joiner, its room and its roommates",
            include_str!("../../check/cases/dorm-join.yaml"),
        ),
        case(
            "dorm/message/broadcast-includes-sender",
            Level::Must,
            "seed 000, message",
            "every member, the sender included, gets each message once, in order, with user_id and time",
            include_str!("../../check/cases/dorm-message.yaml"),
        ),
        case(
            "dorm/action/broadcast-and-cancel",
            Level::Must,
            "seed 000, action",
            "a valid action code and null (cancel) are broadcast to every member",
            include_str!("../../check/cases/dorm-action.yaml"),
        ),
        case(
            "dorm/errors/not-in-room",
            Level::Must,
            "reference-server decision: seed 000 names no condition for {error}; errors on their own event are seed 000's (MUST)",
            "message, action and leave_room outside the room should get {error} on their own event only (a relay to the user's own room is allowed, to another room a non-member leak)",
            include_str!("../../check/cases/dorm-not-in-room.yaml"),
        ),
        case(
            "dorm/errors/invalid-action",
            Level::Must,
            "seed 000 §用户活动信息 (action codes); the refusal is a reference-server decision, its event seed 000's (MUST)",
            "an action other than \"00\"..\"09\" or null gets {error} on `action`; valid ones still go out",
            include_str!("../../check/cases/dorm-invalid-action.yaml"),
        ),
        case(
            "dorm/errors/bad-token",
            Level::Must,
            "seed 000, {token} on every event; the refusal is a reference-server decision, its event seed 000's (MUST)",
            "a missing, mistyped, unknown, empty, prototype-named or huge token gets {error} on its event",
            include_str!("../../check/cases/dorm-bad-token.yaml"),
        ),
        case(
            "dorm/errors/bad-payload",
            Level::Must,
            "seed 000, payloads; the refusal is a reference-server decision, its event seed 000's (MUST)",
            "a payload that is not the documented object, or a message that is not a string, gets {error}",
            include_str!("../../check/cases/dorm-bad-payload.yaml"),
        ),
        case(
            "dorm/connection/dead-heartbeat-closed",
            Level::Must,
            "common rule: Engine.IO heartbeat",
            "a client that stops its heartbeat is closed within pingInterval + pingTimeout + grace",
            include_str!("../../check/cases/dorm-heartbeat.yaml"),
        ),
    ],
    families: &[
        Family {
            id: "dorm/robustness/hostile-requests",
            description: "after {input}, everyone else (and a later wave) is served",
            template: include_str!("../../check/cases/dorm-hostile-input.yaml"),
            inputs: &[
                input(
                    "join-room-no-arguments",
                    "join_room with no arguments",
                    &[r#"send: { event: join_room, args: [], lenient: true }"#],
                ),
                input(
                    "join-room-extra-arguments",
                    "join_room({token}, \"extra\", 1, null)",
                    &[
                        r#"send: { event: join_room, args: [ { token: "{token}" }, "extra", 1, null ], lenient: true }"#,
                    ],
                ),
                input(
                    "message-nested-arrays",
                    "message with a message nested 6 arrays deep",
                    &[
                        r#"send: { event: message, args: [ { token: "{token}", message: [ [ [ [ [ [ "deep" ] ] ] ] ] ] } ], lenient: true }"#,
                    ],
                ),
                input(
                    "prototype-event-__proto__",
                    "the event __proto__({token})",
                    &[r#"send: { event: __proto__, args: [ { token: "{token}" } ], lenient: true }"#],
                ),
                input(
                    "prototype-event-constructor",
                    "the event constructor({token})",
                    &[r#"send: { event: constructor, args: [ { token: "{token}" } ], lenient: true }"#],
                ),
                input(
                    "prototype-event-toString",
                    "the event toString()",
                    &[r#"send: { event: toString, args: [], lenient: true }"#],
                ),
                input(
                    "prototype-event-hasOwnProperty",
                    "the event hasOwnProperty(\"join_room\")",
                    &[r#"send: { event: hasOwnProperty, args: [ "join_room" ], lenient: true }"#],
                ),
                input(
                    "message-over-1mb",
                    "a 2 MB message",
                    &[
                        r#"send: { event: message, args: [ { token: "{token}", message: "{pad:2000000}" } ], lenient: true }"#,
                    ],
                ),
            ],
        },
        Family {
            id: "dorm/robustness/malformed-frames",
            description: "after {input}, everyone else (and a later wave) is served",
            template: include_str!("../../check/cases/dorm-hostile-input.yaml"),
            inputs: malformed_frames!(
                "message",
                r#"42{\"token\":\"{token}\"}"#,
                "42[\"join_room\",{…}",
                r#"42[\"join_room\",{\"token\":\"{token}\"}"#,
                r#"42[\"message\",{\"token\":\"{token}\",\"message\":\"{pad:2000000}\"}]"#
            ),
        },
    ],
    listening: Listening {
        room,
        join,
        foreign,
    },
};

/// A listener joins its fixture room with its token; which room a broadcast belongs to is read
/// from its sender's `user_id`, whose room the users file states.
fn room(user: &User, _fixture_room: Option<&str>, _role: &str) -> Option<String> {
    user.room_id.map(|r| r.to_string())
}

fn join(token: &str, _username: &str, _room: Option<&str>) -> Vec<JoinStep> {
    vec![JoinStep {
        event: "join_room",
        args: vec![json!({ "token": token })],
        answers: &["last_data", "join_room"],
    }]
}

fn foreign(event: &str, payload: &Value, room: Option<&str>, homes: &HashMap<u64, u64>) -> bool {
    if !matches!(event, "message" | "action") {
        return false;
    }
    let from = payload["user_id"].as_u64().and_then(|u| homes.get(&u));
    let mine = room.and_then(|r| r.parse::<u64>().ok());
    // An error answer is not a broadcast; this listener sent nothing to get one.
    payload.get("error").is_none() && (mine.is_none() || from != mine.as_ref())
}
