//! How a plain-WebSocket dialect shapes its frames: the [`Framing`] trait the dialect
//! implements, and [`JsonFraming`], a configurable one (JSON object, event name in a field,
//! an envelope of ids, learned tokens, a timestamp and a signature hook).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::protocol::ProtocolError;

/// The application-level heartbeat of a plain-WebSocket dialect: the client sends the event
/// `event` every `interval`; a server closes a client silent for `interval + timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHeartbeat {
    /// The heartbeat frame's event name (the frame is built by [`Framing::encode`], so it
    /// carries the envelope like any event).
    pub event: String,
    pub interval: Duration,
    /// How long past `interval` the server waits before closing a silent client; when the
    /// server answers, how long the client waits for the answer.
    pub timeout: Duration,
    /// The event that answers a heartbeat, if the server answers one: those frames are taken
    /// by the transport (counted, not delivered), and a server that leaves a heartbeat
    /// unanswered for `timeout` is reported as a heartbeat timeout.
    pub answer: Option<String>,
}

/// A dialect's frame format on a plain WebSocket.
pub trait Framing: Send + 'static {
    /// Reads the event name of a received text frame, learning what later frames need from it
    /// (e.g. a token the first frame hands out). The name borrows from `frame` when it can.
    fn read<'f>(&mut self, frame: &'f str) -> Result<Cow<'f, str>, ProtocolError>;

    /// Builds the text frame of an outgoing event: the envelope around `args`. `now` is the
    /// send time, for a timestamp field.
    fn encode(&mut self, name: &str, args: &[Value], now: SystemTime) -> String;

    /// Whether the client may send: false until the frames the dialect waits for at connect
    /// (a token) were read. The connect reads frames until this is true.
    fn ready(&self) -> bool {
        true
    }

    /// The application heartbeat, if the dialect has one.
    fn heartbeat(&self) -> Option<&AppHeartbeat>;

    /// What the server names this session by (e.g. a token it handed out), if anything.
    fn session_id(&self) -> Option<&str> {
        None
    }
}

impl Framing for Box<dyn Framing> {
    fn read<'f>(&mut self, frame: &'f str) -> Result<Cow<'f, str>, ProtocolError> {
        (**self).read(frame)
    }
    fn encode(&mut self, name: &str, args: &[Value], now: SystemTime) -> String {
        (**self).encode(name, args, now)
    }
    fn ready(&self) -> bool {
        (**self).ready()
    }
    fn heartbeat(&self) -> Option<&AppHeartbeat> {
        (**self).heartbeat()
    }
    fn session_id(&self) -> Option<&str> {
        (**self).session_id()
    }
}

/// A value the client learns from a received event and puts into every frame it sends from
/// then on, under the same field name (voice: `online_token` from `create_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learn {
    pub event: String,
    pub field: String,
    /// The connect waits for it: nothing may be sent before.
    pub required: bool,
}

/// A signature over a frame's fields (the signature's own field absent).
pub type SignFn = Arc<dyn Fn(&Map<String, Value>) -> Value + Send + Sync>;

/// Where a frame's signature goes and how it is computed (voice: an md5 over the frame).
#[derive(Clone)]
pub struct Signer {
    pub field: String,
    pub sign: SignFn,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

/// Units of a timestamp field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    UnixSeconds,
    UnixMillis,
}

/// Frames that are one JSON object each, the event named by one field.
///
/// An outgoing frame is `{name_field: name}` plus, in this order (a later one overrides an
/// earlier field of the same name): the `fixed` fields, the learned values, the fields of each
/// object argument, the timestamp (unless an argument set it), and last the signature over all
/// of them. Non-object arguments go, as an array, under `args_field`.
#[derive(Debug, Clone)]
pub struct JsonFraming {
    /// The field that names the event (`action`).
    pub name_field: String,
    /// Fields every outgoing frame carries (ids such as `sid`).
    pub fixed: Map<String, Value>,
    pub learn: Vec<Learn>,
    /// A field for the send time.
    pub timestamp: Option<(String, Clock)>,
    pub sign: Option<Signer>,
    pub heartbeat: Option<AppHeartbeat>,
    /// Where arguments that are not JSON objects go.
    pub args_field: String,
    learned: Map<String, Value>,
    /// The first learned value, as text: the session's name.
    session: Option<Box<str>>,
}

impl JsonFraming {
    /// Names in `name_field`; no envelope, no heartbeat.
    pub fn new(name_field: &str) -> JsonFraming {
        JsonFraming {
            name_field: name_field.to_owned(),
            fixed: Map::new(),
            learn: Vec::new(),
            timestamp: None,
            sign: None,
            heartbeat: None,
            args_field: "args".to_owned(),
            learned: Map::new(),
            session: None,
        }
    }

    /// The values learned so far.
    pub fn learned(&self) -> &Map<String, Value> {
        &self.learned
    }
}

/// The string value of `field` in a JSON object, borrowed when unescaped, and whether the text
/// is an object at all. Other fields are skipped unparsed.
fn field_str<'f>(frame: &'f str, field: &str) -> Result<Option<Cow<'f, str>>, serde_json::Error> {
    struct Find<'a>(&'a str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                if found.is_none() && key == self.0 {
                    found = Some(map.next_value::<Text<'de>>()?.0);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(frame);
    let found = de.deserialize_map(Find(field))?;
    de.end()?;
    Ok(found)
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl Framing for JsonFraming {
    fn read<'f>(&mut self, frame: &'f str) -> Result<Cow<'f, str>, ProtocolError> {
        let name = match field_str(frame, &self.name_field) {
            Ok(Some(name)) => name,
            Ok(None) => {
                return Err(ProtocolError::malformed(
                    "plain WebSocket frame",
                    format!("no string field `{}` naming the event", self.name_field),
                    frame,
                ))
            }
            Err(e) => {
                return Err(ProtocolError::malformed(
                    "plain WebSocket frame",
                    format!("not a JSON object: {e}"),
                    frame,
                ))
            }
        };
        if self.learn.iter().any(|l| l.event == name) {
            // Rare (a token frame): parsed in full.
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(frame) {
                for l in self.learn.iter().filter(|l| l.event == name) {
                    if let Some(v) = fields.get(&l.field) {
                        self.learned.insert(l.field.clone(), v.clone());
                    }
                }
                if self.session.is_none() {
                    self.session =
                        self.learn
                            .iter()
                            .find_map(|l| match self.learned.get(&l.field) {
                                Some(Value::String(s)) => Some(s.as_str().into()),
                                Some(v) => Some(v.to_string().into()),
                                None => None,
                            });
                }
            }
        }
        Ok(name)
    }

    fn encode(&mut self, name: &str, args: &[Value], now: SystemTime) -> String {
        let mut frame = self.fixed.clone();
        frame.extend(self.learned.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut loose = Vec::new();
        for a in args {
            match a {
                Value::Object(fields) => {
                    frame.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())))
                }
                other => loose.push(other.clone()),
            }
        }
        if !loose.is_empty() {
            frame.insert(self.args_field.clone(), Value::Array(loose));
        }
        if let Some((field, clock)) = &self.timestamp {
            if !frame.contains_key(field) {
                let since = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                let t = match clock {
                    Clock::UnixSeconds => since.as_secs(),
                    Clock::UnixMillis => since.as_millis() as u64,
                };
                frame.insert(field.clone(), Value::from(t));
            }
        }
        frame.insert(self.name_field.clone(), Value::String(name.to_owned()));
        if let Some(s) = &self.sign {
            frame.remove(&s.field);
            let signature = (s.sign)(&frame);
            frame.insert(s.field.clone(), signature);
        }
        Value::Object(frame).to_string()
    }

    fn ready(&self) -> bool {
        self.learn
            .iter()
            .all(|l| !l.required || self.learned.contains_key(&l.field))
    }

    fn heartbeat(&self) -> Option<&AppHeartbeat> {
        self.heartbeat.as_ref()
    }

    fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape of the voice dialect's frames, with a stand-in signature.
    fn tokened() -> JsonFraming {
        let mut f = JsonFraming::new("action");
        f.fixed.insert("sid".into(), json!("s-1"));
        f.learn.push(Learn {
            event: "create_token".into(),
            field: "online_token".into(),
            required: true,
        });
        f.timestamp = Some(("timestamp".into(), Clock::UnixSeconds));
        f.sign = Some(Signer {
            field: "sign".into(),
            // The sorted keys, joined: what the fields were when the hook saw them.
            sign: Arc::new(|m: &Map<String, Value>| {
                json!(m.keys().cloned().collect::<Vec<_>>().join("+"))
            }),
        });
        f
    }

    const T: fn() -> SystemTime = || SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    #[test]
    fn reads_the_name_field() {
        let mut f = JsonFraming::new("action");
        let frame = r#"{"n":[1,{"action":"x"}],"action":"enter_room","x":{}}"#;
        let name = f.read(frame).unwrap();
        assert_eq!(name, "enter_room");
        assert!(matches!(name, Cow::Borrowed(_)), "borrowed from the frame");
        let name = f.read(r#"{"action":"up\u0031"}"#).unwrap();
        assert_eq!(name, "up1");
    }

    #[test]
    fn rejects_frames_without_a_name() {
        let mut f = JsonFraming::new("action");
        for bad in [
            r#"{"type":"x"}"#,
            r#"{"action":3}"#,
            r#"["action","x"]"#,
            "not json",
            r#"{"action":"x"} trailing"#,
        ] {
            let e = f.read(bad).expect_err(bad);
            assert!(e.to_string().contains("plain WebSocket frame"), "{e}");
        }
    }

    #[test]
    fn learns_a_token_and_is_ready_then() {
        let mut f = tokened();
        assert!(!f.ready());
        assert_eq!(f.session_id(), None);
        f.read(r#"{"action":"hello","online_token":"not this one"}"#)
            .unwrap();
        assert!(!f.ready(), "only the named event hands out the token");
        f.read(r#"{"action":"create_token","online_token":"tok-9"}"#)
            .unwrap();
        assert!(f.ready());
        assert_eq!(f.session_id(), Some("tok-9"));
        assert_eq!(f.learned().get("online_token"), Some(&json!("tok-9")));
    }

    #[test]
    fn builds_the_envelope() {
        let mut f = tokened();
        f.read(r#"{"action":"create_token","online_token":"tok-9"}"#)
            .unwrap();
        let text = f.encode("up", &[json!({"room_seat_id": 3})], T());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({
                "action": "up",
                "sid": "s-1",
                "online_token": "tok-9",
                "room_seat_id": 3,
                "timestamp": 1_700_000_000u64,
                "sign": "action+online_token+room_seat_id+sid+timestamp",
            })
        );
        // Keys sorted, compact: the frame text is deterministic.
        assert!(
            text.starts_with(r#"{"action":"up","online_token":"tok-9","#),
            "{text}"
        );
    }

    #[test]
    fn arguments_override_the_envelope_but_not_the_name() {
        let mut f = tokened();
        f.read(r#"{"action":"create_token","online_token":"tok-9"}"#)
            .unwrap();
        // A stale token and an old timestamp, on purpose (hostile input).
        let text = f.encode(
            "down",
            &[
                json!({"online_token": "stale", "timestamp": 5, "action": "forged"}),
                json!(7),
            ],
            T(),
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["action"], "down");
        assert_eq!(v["online_token"], "stale");
        assert_eq!(v["timestamp"], 5);
        assert_eq!(v["args"], json!([7]));
        assert_eq!(v["sign"], "action+args+online_token+sid+timestamp");
    }

    #[test]
    fn millisecond_clock_and_no_envelope() {
        let mut f = JsonFraming::new("type");
        f.timestamp = Some(("ts".into(), Clock::UnixMillis));
        let v: Value = serde_json::from_str(&f.encode("ping", &[], T())).unwrap();
        assert_eq!(v, json!({"type": "ping", "ts": 1_700_000_000_000u64}));
        let plain = JsonFraming::new("type").encode("ping", &[], T());
        assert_eq!(plain, r#"{"type":"ping"}"#);
    }
}
