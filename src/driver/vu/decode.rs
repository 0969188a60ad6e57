//! Reading a received event (Socket.IO, or a plain WebSocket frame) into its name and payload,
//! without copying, for the judge.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, SeqAccess, Visitor};

use crate::oracle::json::Json;
use crate::protocol::socketio;

/// An event's name and payload, parsed from the frame's text without copying: the payload is
/// the single argument, or the array of the arguments when there are not exactly one (as
/// before, when events were parsed into `serde_json::Value`).
pub(super) struct Parsed<'a> {
    pub name: Cow<'a, str>,
    pub payload: Json<'a>,
    /// The payload's JSON text, for the transcript.
    pub text: Cow<'a, str>,
}

pub(super) fn parse_event(args: &str) -> Option<Parsed<'_>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = (Cow<'de, str>, Vec<Json<'de>>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON array whose first element is the event name")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = match seq.next_element::<Json<'de>>()? {
                Some(Json::Str(s)) => s,
                // A numeric name (allowed by socket.io-parser), as its decimal text.
                Some(Json::Num(n)) => Cow::Owned(match n.as_f64() {
                    Some(f) if !n.is_u64() && !n.is_i64() => f.to_string(),
                    _ => n.to_string(),
                }),
                _ => return Err(de::Error::custom("no event name")),
            };
            let mut rest = Vec::new();
            while let Some(v) = seq.next_element::<Json<'de>>()? {
                rest.push(v);
            }
            Ok((name, rest))
        }
    }
    let mut de = serde_json::Deserializer::from_str(args);
    let (name, mut rest) = de.deserialize_seq(V).ok()?;
    de.end().ok()?;
    let after = socketio::event_args_after_name(args)?;
    let (payload, text) = match rest.len() {
        1 => (rest.pop().expect("one arg"), Cow::Borrowed(after)),
        _ => (Json::Arr(rest), Cow::Owned(format!("[{after}]"))),
    };
    Some(Parsed {
        name,
        payload,
        text,
    })
}

/// A plain WebSocket event: its name as the framing read it, the whole frame as the payload.
pub(super) fn parse_frame(event: &crate::transport::RawEvent) -> Option<Parsed<'_>> {
    let text = event.frame();
    let payload: Json<'_> = serde_json::from_str(text).ok()?;
    Some(Parsed {
        name: event.name()?,
        payload,
        text: Cow::Borrowed(text),
    })
}
