//! The voice conformance suite (`roomrig check --dialect voice`): its cases, whose scenarios
//! are in `src/check/cases/voice-*.yaml`, and how the suite's listeners sit in a channel.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::dialect::suite::{case, input, Family, JoinStep, Listening, Suite};
use crate::oracle::rules::Level;

pub static SUITE: Suite = Suite {
    cases: &[
    case(
        "voice/exit_room/one-member-told",
        Level::Must,
        "seed 003 §2.4 断线通知 (departure notice)",
        "each departure is told to exactly one remaining member of the room",
        include_str!("../../check/cases/voice-departure.yaml"),
    ),
    case(
        "voice/exit_room/fail-over-when-unreported",
        Level::Must,
        "seed 003 §2.4 断线通知 (B reports back once it relayed the departure, 防止用户B也出现异常: in case B fails too)",
        "when the member told of a departure does not report it within the server's report window, exactly one other member is told",
        include_str!("../../check/cases/voice-failover.yaml"),
    ),
    case(
        "voice/connection/silent-client-closed",
        Level::Must,
        "seed 003 §2.1 长连接断开情况 (the server ends a connection that sent no heartbeat for 20 s)",
        "a client that sends nothing at all after connecting is closed within the advertised heartbeat window, not before",
        include_str!("../../check/cases/voice-idle.yaml"),
    ),
    case(
        "voice/up/seat-freed-on-departure",
        Level::Should,
        "seed 003 §3.2 上麦/下麦 (up/down notices) and 退出房间 (exit_room names the departed member's seat); freeing it is the reference server's reading",
        "up and down reach the room's other members, and a departed member's seat is free again for the next up",
        include_str!("../../check/cases/voice-seats.yaml"),
    ),
    case(
        "voice/send_gift/bc-to-room-ptp-to-receiver",
        Level::Should,
        "seed 003 §3.2 送礼物 (notify_type: bc broadcast, ptp point to point)",
        "a bc gift reaches the room's other members, a ptp gift its receiver only",
        include_str!("../../check/cases/voice-gifts.yaml"),
    ),
    case(
        "voice/hang_up/call-peer-told",
        Level::Should,
        "seed 003 §3.2 挂断电话 (hang_up names the user and the peer); the call notice is the reference server's decision",
        "a call and its hang_up reach the called member only",
        include_str!("../../check/cases/voice-calls.yaml"),
    ),
    case(
        "voice/sign/php-encoding-vectors",
        Level::Should,
        "seed 003 §3.1 (every client frame carries `sign`); the algorithm, md5 of PHP's json_encode with unescaped Unicode, is the public implementation's",
        "frames whose PHP encoding escapes `/`, U+2028/U+2029, keeps other non-ASCII raw, writes floats PHP's way and an empty object as [] are accepted and acted on",
        include_str!("../../check/cases/voice-sign-vectors.yaml"),
    ),
    case(
        "voice/frames/refused-without-effect",
        Level::Should,
        "reference-server decision (the seed names `sign` and `online_token`, not what a server does with a wrong one): refused with an error frame, acted on by nobody",
        "a frame with a wrong sign, a stale online_token, a sid that is nobody's, or an unknown action reaches no other member and is answered with an error",
        include_str!("../../check/cases/voice-refused.yaml"),
    ),
    case(
        "voice/hang_up/caller-told-when-called-departs",
        Level::Must,
        "seed 003 §3.2 挂断电话 (hang_up: a call cut by a network failure or a killed process, on either side; user_id the side that is gone, receiver_id the other)",
        "when the called member's connection ends mid-call, the caller gets hang_up",
        include_str!("../../check/cases/voice-callee-departs.yaml"),
    ),
    case(
        "voice/users_me/room-emptied-on-departure",
        Level::Must,
        "seed 003 §2.2 网络重新连接处理 (an empty current_room_id tells a reconnecting client it was put out of the room) with §2.3/§2.4 (the server puts a departed user out of its room); the endpoint GET /api/users/me?sid= is the reference server's",
        "after a user's connection ended, users/me shows an empty current_room_id",
        include_str!("../../check/cases/voice-users-me.yaml"),
    ),
    ],
    families: &[Family {
        id: "voice/robustness/hostile-frames",
        description: "after {input}, everyone else (and a later wave) is served",
        template: include_str!("../../check/cases/voice-hostile-input.yaml"),
        inputs: HOSTILE_FRAMES,
    }],
    listening: Listening {
        room: |_, fixture_room, _| fixture_room.map(str::to_owned),
        join: |_, _, room| {
            room.map(|r| JoinStep {
                event: "enter_room",
                args: vec![json!({ "channel_name": r })],
                answers: &["enter_room"],
            })
            .into_iter()
            .collect()
        },
        foreign,
    },
};

/// A room notice naming another channel.
fn foreign(_: &str, payload: &Value, room: Option<&str>, _: &HashMap<u64, u64>) -> bool {
    match (payload.get("channel_name").and_then(Value::as_str), room) {
        (Some(channel), Some(mine)) => channel != mine,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Frames a voice server must survive (refuse, ignore, or close that connection).
const HOSTILE_FRAMES: &[crate::dialect::suite::Input] = &[
    input(
        "not-json",
        "the text frame `not json`",
        &[r#"send: { frame: "not json", lenient: true }"#],
    ),
    input(
        "over-2mb",
        "a 2 MB send_topic_msg frame",
        &[
            r#"send: { frame: '{"action":"send_topic_msg","content":"{pad:2000000}"}', lenient: true }"#,
        ],
    ),
    input(
        "envelope-wrong-types",
        "a frame whose action is an array, sid a number, online_token an object, sign null",
        &[
            r#"send: { frame: '{"action":["enter_room"],"sid":7,"online_token":{},"timestamp":"x","sign":null}', lenient: true }"#,
        ],
    ),
    input(
        "arguments-wrong-types",
        "a signed send_topic_msg whose channel_name is an array and content an object",
        &[
            r#"send: { event: send_topic_msg, args: [ { channel_name: [ "room{room}" ], content: { text: 1 } } ], lenient: true }"#,
        ],
    ),
    input(
        "gift-wrong-types",
        "a signed send_gift whose receiver_id is text, notify_type a number and gift a string",
        &[
            r#"send: { event: send_gift, args: [ { channel_name: "room{room}", receiver_id: "x", notify_type: 7, gift: "rose" } ], lenient: true }"#,
        ],
    ),
    input(
        "__proto__-keys",
        "a frame with `__proto__` and `constructor` keys and the action `__proto__`",
        &[
            r#"send: { frame: '{"__proto__":{"action":"enter_room"},"action":"__proto__","constructor":1}', lenient: true }"#,
        ],
    ),
    input(
        "__proto__-channel",
        "a signed enter_room of the channel `__proto__` carrying a `__proto__` object",
        &[
            r#"send: { event: enter_room, args: [ { channel_name: "__proto__", __proto__: { admin: true } } ], lenient: true }"#,
        ],
    ),
];
