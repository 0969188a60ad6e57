//! The plain-WebSocket frame reader ([`JsonFraming`]) and the transport's view of its events.
//!
//! Properties: a frame whose event name is read is valid JSON; a valid JSON object with one
//! string member naming the event is read, with that name; a value learned from a frame goes
//! into the frames sent after it; a built frame reads back with the name it was built with.

use std::time::SystemTime;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{fuzz_target, JSON_TOKENS};
use crate::oracle::json::Json;
use crate::transport::framing::{Clock, Learn};
use crate::transport::{Framing, JsonFraming, NameAt, RawEvent};

const TOKENS: &[&str] = &[
    r#""action""#,
    r#""action":"#,
    r#""hello""#,
    r#""token""#,
    r#""token":"t1""#,
    r#"{"action":"x"}"#,
    r#""\u0061ction""#,
];

fuzz_target!(
    ws_framing,
    ws_framing_mutated,
    &[TOKENS, JSON_TOKENS].concat(),
    check
);

fn framing() -> JsonFraming {
    let mut f = JsonFraming::new("action");
    f.fixed.insert("sid".into(), json!(7));
    f.learn.push(Learn {
        event: "hello".into(),
        field: "token".into(),
        required: true,
    });
    f.timestamp = Some(("time".into(), Clock::UnixMillis));
    f
}

pub(crate) fn check(frame: &str) {
    let mut f = framing();
    let read = f.read(frame);
    let value = serde_json::from_str::<Value>(frame);
    // JSON syntax alone: `Value` also refuses numbers beyond f64 (`1e400`), which the name
    // reader skips unread.
    let syntax = serde_json::from_str::<serde::de::IgnoredAny>(frame);
    // The event name when the object has exactly one `action` member, a string (members as
    // written, duplicates kept).
    let expected: Option<String> = match Json::parse(frame) {
        Ok(Json::Obj(pairs)) => {
            let mut names = pairs.iter().filter(|(k, _)| k == "action").map(|(_, v)| v);
            match (names.next(), names.next()) {
                (Some(Json::Str(name)), None) => Some(name.to_string()),
                _ => None,
            }
        }
        _ => None,
    };
    match &read {
        Ok(name) => {
            assert!(
                syntax.is_ok() && frame.trim_start().starts_with('{'),
                "read {name:?} from a frame that is not a JSON object: {frame:?}"
            );
        }
        Err(e) => super::protocol::check_error(e),
    }
    if let Some(expected) = &expected {
        assert_eq!(
            read.as_deref().ok(),
            Some(expected.as_str()),
            "the event name of {frame:?}"
        );
    }
    let Ok(name) = read else { return };
    // As the transport does: the name's place in the frame, then the frame moves.
    let raw = RawEvent::framed(
        Utf8Bytes::from(frame.to_owned()),
        NameAt::of(frame, name.clone()),
    );
    let name = name.into_owned();
    assert_eq!(raw.name().as_deref(), Some(name.as_str()));
    assert_eq!(raw.parse().is_ok(), value.is_ok(), "{frame:?}");

    if name == "hello" {
        if let Ok(Value::Object(fields)) = &value {
            assert_eq!(f.learned().get("token"), fields.get("token"), "{frame:?}");
        }
    }
    let args = match value {
        Ok(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    let built = f.encode(&name, &args, SystemTime::UNIX_EPOCH);
    let mut reader = framing();
    assert_eq!(
        reader.read(&built).as_deref(),
        Ok(name.as_str()),
        "{built:?}"
    );
    if let Some(token) = f.learned().get("token") {
        let sent: Value = serde_json::from_str(&built).unwrap();
        assert_eq!(sent.get("token"), Some(token), "{built:?}");
    }
}
