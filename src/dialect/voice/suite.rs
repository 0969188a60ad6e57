//! The voice conformance suite (`roomrig check --dialect voice`). Its cases are not written
//! yet (see the issue's `check --dialect voice` section): the suite is empty, and its
//! listeners would sit in the fixture room's channel.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::dialect::suite::{JoinStep, Listening, Suite};

pub static SUITE: Suite = Suite {
    cases: &[],
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
