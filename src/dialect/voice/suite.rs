//! The voice conformance suite (`roomrig check --dialect voice`): its cases, whose scenarios
//! are in `src/check/cases/voice-*.yaml`, and how the suite's listeners sit in a channel.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::dialect::suite::{case, JoinStep, Listening, Suite};
use crate::oracle::rules::Level;

pub static SUITE: Suite = Suite {
    cases: &[case(
        "voice/exit_room/one-member-told",
        Level::Must,
        "seed 003 §2.4 断线通知 (departure notice)",
        "each departure is told to exactly one remaining member of the room",
        include_str!("../../check/cases/voice-departure.yaml"),
    )],
    families: &[],
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
