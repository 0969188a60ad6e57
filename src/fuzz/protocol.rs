//! The Engine.IO / Socket.IO codec and the transport's view of a received event.
//!
//! Properties: decoding never panics and an error's message stays short; a decoded packet
//! encodes back to a frame that decodes to the same packet; the hand-written scanner of an
//! event's arguments ([`socketio::event_args_after_name`]) and the transport's [`RawEvent`]
//! agree with a full JSON parse; and encoding generated packets then decoding them gives back
//! what was encoded.

use bolero::produce;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{fuzz_target, JSON_TOKENS};
use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, SioPacket};
use crate::protocol::{ProtocolError, DETAIL_CHARS, EXCERPT_CHARS};
use crate::transport::Incoming;
use crate::transport::{RawEvent, SioAt};

const TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "40",
    "42",
    "43",
    "44",
    "451-",
    "/",
    "/chat,",
    ",",
    "-",
    "99999999999999999999",
    r#"{"sid":"x","pingInterval":1,"pingTimeout":1}"#,
    r#""maxPayload":"#,
    "[",
    "]",
    r#"["a"]"#,
    "\"",
    "{",
    "}",
    "null",
    "1e400",
    "\\u0000",
];

fuzz_target!(
    engineio_packet,
    engineio_packet_mutated,
    &[TOKENS, JSON_TOKENS].concat(),
    check_frame
);

/// An error is a value whose message stays short however long the input: an excerpt and a
/// detail of bounded length (each character at most 10 once escaped, as `\u{10ffff}`).
pub(crate) fn check_error(e: &ProtocolError) {
    let message = e.to_string();
    assert!(
        message.chars().count() <= 10 * EXCERPT_CHARS + DETAIL_CHARS + 100,
        "error message too long: {message}"
    );
}

/// One received websocket text frame, as the Socket.IO transport reads it.
pub(crate) fn check_frame(frame: &str) {
    let packet = match engineio::decode(frame) {
        Ok(p) => p,
        Err(e) => return check_error(&e),
    };
    match packet {
        EioPacket::Message(m) => check_message(frame, m),
        EioPacket::Ping(p) => assert_eq!(engineio::decode(&format!("2{p}")), Ok(packet)),
        EioPacket::Pong(p) => assert_eq!(engineio::decode(&format!("3{p}")), Ok(packet)),
        EioPacket::Open(info) => {
            assert!(!info.sid.is_empty());
            assert!(!info.ping_interval.is_zero());
        }
        EioPacket::Close | EioPacket::Upgrade | EioPacket::Noop => {}
    }
}

/// The namespace as an encoder takes it back (`/` is not spelled).
fn decode_message(frame: &str) -> SioPacket<'_> {
    match engineio::decode(frame) {
        Ok(EioPacket::Message(m)) => {
            socketio::decode(m).unwrap_or_else(|e| panic!("re-encoded {frame:?}: {e}"))
        }
        other => panic!("re-encoded {frame:?} is not a MESSAGE: {other:?}"),
    }
}

fn check_message(frame: &str, m: &str) {
    let packet = match socketio::decode(m) {
        Ok(p) => p,
        Err(e) => return check_error(&e),
    };
    assert!(packet.ns().starts_with('/'), "namespace {:?}", packet.ns());
    match packet {
        SioPacket::Event { ns, ack, args } => {
            check_raw_event(frame, ns, ack, args);
            let Ok((name, values)) = socketio::parse_event_args(args) else {
                return;
            };
            let after = socketio::event_args_after_name(args)
                .unwrap_or_else(|| panic!("no arguments found in valid {args:?}"));
            let rest: Vec<Value> = serde_json::from_str(&format!("[{after}]"))
                .unwrap_or_else(|e| panic!("arguments {after:?} of {args:?}: {e}"));
            assert_eq!(rest, values, "arguments after the name of {args:?}");
            let again = socketio::encode_event_with_ack(ns, ack, &name, &values);
            match decode_message(&again) {
                SioPacket::Event {
                    ns: ns2,
                    ack: ack2,
                    args: args2,
                } => {
                    assert_eq!((ns2, ack2), (ns, ack), "{again:?}");
                    assert_eq!(
                        socketio::parse_event_args(args2).as_ref(),
                        Ok(&(name, values)),
                        "{again:?}"
                    );
                }
                other => panic!("{again:?} decoded as {other:?}"),
            }
        }
        SioPacket::Ack { ns, ack, args } => {
            let Ok(values) = socketio::parse_ack_args(args) else {
                return;
            };
            let again = socketio::encode_ack(ns, ack, &values);
            match decode_message(&again) {
                SioPacket::Ack {
                    ns: ns2,
                    ack: ack2,
                    args: args2,
                } => {
                    assert_eq!((ns2, ack2), (ns, ack), "{again:?}");
                    assert_eq!(socketio::parse_ack_args(args2).as_ref(), Ok(&values));
                }
                other => panic!("{again:?} decoded as {other:?}"),
            }
        }
        SioPacket::Connect { ns, data } => {
            let value = match data.map(serde_json::from_str::<Value>) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => return,
                None => None,
            };
            let again = socketio::encode_connect(ns, value.as_ref());
            match decode_message(&again) {
                SioPacket::Connect { ns: ns2, data } => {
                    assert_eq!(ns2, ns, "{again:?}");
                    let data = data.map(|d| serde_json::from_str::<Value>(d).unwrap());
                    assert_eq!(data, value, "{again:?}");
                }
                other => panic!("{again:?} decoded as {other:?}"),
            }
        }
        SioPacket::Disconnect { ns } => {
            let again = socketio::encode_disconnect(ns);
            assert_eq!(decode_message(&again), SioPacket::Disconnect { ns });
        }
        SioPacket::ConnectError { .. }
        | SioPacket::BinaryEvent { .. }
        | SioPacket::BinaryAck { .. } => {}
    }
}

/// The transport hands an event on unparsed ([`RawEvent`]); what it reads from it lazily
/// (name, namespace, payload) must be what a full parse says.
fn check_raw_event(frame: &str, ns: &str, ack: Option<u64>, args: &str) {
    let at = SioAt::of(frame, ns, args);
    let raw = RawEvent::socketio(Utf8Bytes::from(frame.to_owned()), at, ack);
    assert_eq!(raw.namespace(), Some(ns));
    assert_eq!(raw.args(), args);
    let parsed = socketio::parse_event_args(args);
    match raw.parse() {
        Ok(Incoming::Event {
            name,
            args: values,
            ack: ack2,
        }) => {
            assert_eq!(ack2, ack);
            let (name0, values0) = parsed.expect("RawEvent parsed what the codec refused");
            assert_eq!((&name, &values), (&name0, &values0));
            assert_eq!(raw.name().as_deref(), Some(name.as_str()), "{args:?}");
            let payload = raw
                .payload()
                .unwrap_or_else(|| panic!("no payload in valid {args:?}"));
            let payload: Value = serde_json::from_str(&payload)
                .unwrap_or_else(|e| panic!("payload {payload:?} of {args:?}: {e}"));
            let expected = match values.as_slice() {
                [one] => one.clone(),
                _ => Value::Array(values.clone()),
            };
            assert_eq!(payload, expected, "payload of {args:?}");
        }
        Ok(other) => panic!("an event parsed as {other:?}"),
        Err(_) => assert!(parsed.is_err(), "RawEvent refused what the codec parsed"),
    }
}

/// A JSON value bolero can generate (a tree of bounded depth).
#[derive(Debug, bolero::generator::TypeGenerator)]
enum Leaf {
    Null,
    Bool(bool),
    U(u64),
    I(i64),
    F(f64),
    S(String),
}

impl Leaf {
    fn value(&self) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::Bool(*b),
            Leaf::U(n) => Value::from(*n),
            Leaf::I(n) => Value::from(*n),
            Leaf::F(f) => Value::from(*f),
            Leaf::S(s) => Value::from(s.as_str()),
        }
    }
}

#[derive(Debug, bolero::generator::TypeGenerator)]
enum Arg {
    Leaf(Leaf),
    Array(Vec<Leaf>),
    Object(Vec<(String, Leaf)>),
}

impl Arg {
    fn value(&self) -> Value {
        match self {
            Arg::Leaf(l) => l.value(),
            Arg::Array(items) => Value::Array(items.iter().map(Leaf::value).collect()),
            Arg::Object(pairs) => {
                Value::Object(pairs.iter().map(|(k, v)| (k.clone(), v.value())).collect())
            }
        }
    }
}

/// A namespace as servers spell one: `/` and then anything but the `,` that ends it.
fn namespace(raw: &str) -> String {
    format!("/{}", raw.replace(',', ""))
}

#[test]
fn socketio_encode_roundtrip() {
    let mut rate = super::Rate::new("socketio_encode_roundtrip");
    bolero::check!()
        .with_generator((
            produce::<String>(),
            produce::<Option<u64>>(),
            produce::<String>(),
            // A few arguments: bolero's default of up to 64, each an array of up to 64,
            // made generation the cost.
            produce::<Vec<Arg>>().with().len(0usize..=6),
        ))
        .with_iterations(super::ITERATIONS / 20)
        .with_test_time(super::TIME_CAP)
        .for_each(|(ns, ack, name, args)| {
            rate.runs += 1;
            let ns = namespace(ns);
            let values: Vec<Value> = args.iter().map(Arg::value).collect();
            let frame = socketio::encode_event_with_ack(&ns, *ack, name, &values);
            check_frame(&frame);
            match decode_message(&frame) {
                SioPacket::Event {
                    ns: ns2,
                    ack: ack2,
                    args,
                } => {
                    assert_eq!((ns2, ack2), (ns.as_str(), *ack));
                    let (name2, values2) = socketio::parse_event_args(args).unwrap();
                    assert_eq!((&name2, &values2), (name, &values));
                }
                other => panic!("{frame:?} decoded as {other:?}"),
            }
            let ack = ack.unwrap_or_default();
            let frame = socketio::encode_ack(&ns, ack, &values);
            check_frame(&frame);
            assert!(
                matches!(decode_message(&frame), SioPacket::Ack { ns: n, ack: a, args }
                    if n == ns && a == ack
                        && socketio::parse_ack_args(args).as_ref() == Ok(&values)),
                "{frame:?}"
            );
            let data = values.first();
            let frame = socketio::encode_connect(&ns, data);
            check_frame(&frame);
        });
}
