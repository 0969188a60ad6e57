//! Socket.IO packets (the payload of an Engine.IO MESSAGE), text encoding only.
//!
//! Layout: `<type>[<attachments>-][/<namespace>,][<ack id>][<JSON data>]`
//!
//! | type | packet        | data |
//! |------|---------------|------|
//! | `0`  | CONNECT       | v5: optional auth object (client) / `{"sid":…}` (server); v4 (socket.io 2): none |
//! | `1`  | DISCONNECT    | none |
//! | `2`  | EVENT         | JSON array `[name, args…]` |
//! | `3`  | ACK           | JSON array `[args…]`, ack id required |
//! | `4`  | CONNECT_ERROR | v5: `{"message":…[,"data":…]}`; v4: a JSON string or object (`ERROR`) |
//! | `5`  | BINARY_EVENT  | attachments follow in binary frames (not supported by the driver) |
//! | `6`  | BINARY_ACK    | idem |
//!
//! The namespace is `/` when absent. As in Node's socket.io-parser, a namespace runs up to the
//! first `,` or to the end of the packet (`0/chat` and `0/chat,` both mean `/chat`).

use std::fmt::{self, Write as _};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::{excerpt, Layer, ProtocolError};

/// One decoded Socket.IO packet, borrowing from the message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SioPacket<'a> {
    /// `0`: `data` is the raw JSON after the namespace (`{"sid":…}` from a v5 server, absent
    /// from a v4 server).
    Connect { ns: &'a str, data: Option<&'a str> },
    /// `1`
    Disconnect { ns: &'a str },
    /// `2`: `args` is the JSON array text `[name, args…]`, unparsed (see [`parse_event_args`]).
    Event {
        ns: &'a str,
        ack: Option<u64>,
        args: &'a str,
    },
    /// `3`: `args` is the JSON array text, unparsed (see [`parse_ack_args`]).
    Ack {
        ns: &'a str,
        ack: u64,
        args: &'a str,
    },
    /// `4`: `data` is the raw JSON (possibly empty).
    ConnectError { ns: &'a str, data: &'a str },
    /// `5`: recognised only; the driver reports it as unsupported.
    BinaryEvent {
        ns: &'a str,
        ack: Option<u64>,
        attachments: usize,
        args: &'a str,
    },
    /// `6`: recognised only; the driver reports it as unsupported.
    BinaryAck {
        ns: &'a str,
        ack: u64,
        attachments: usize,
        args: &'a str,
    },
}

impl<'a> SioPacket<'a> {
    /// The namespace the packet belongs to.
    pub fn ns(&self) -> &'a str {
        match *self {
            SioPacket::Connect { ns, .. }
            | SioPacket::Disconnect { ns }
            | SioPacket::Event { ns, .. }
            | SioPacket::Ack { ns, .. }
            | SioPacket::ConnectError { ns, .. }
            | SioPacket::BinaryEvent { ns, .. }
            | SioPacket::BinaryAck { ns, .. } => ns,
        }
    }
}

/// Splits `s` after a run of ASCII digits; returns `(digits, rest)`.
fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

/// Decodes a Socket.IO packet: `msg` is the Engine.IO MESSAGE payload (after the leading `4`).
pub fn decode(msg: &str) -> Result<SioPacket<'_>, ProtocolError> {
    let Some(&ty) = msg.as_bytes().first() else {
        return Err(ProtocolError::Empty(Layer::SocketIo));
    };
    if !(b'0'..=b'6').contains(&ty) {
        return Err(ProtocolError::UnknownType {
            layer: Layer::SocketIo,
            ty: msg.chars().next().unwrap_or('\0'),
            excerpt: excerpt(msg),
        });
    }
    let mut rest = &msg[1..];

    // Binary packets: attachment count followed by '-'.
    let mut attachments = 0usize;
    if ty == b'5' || ty == b'6' {
        let (digits, after) = split_digits(rest);
        let Some(after) = after.strip_prefix('-') else {
            return Err(ProtocolError::malformed(
                "Socket.IO binary packet",
                "attachment count must be followed by '-'",
                msg,
            ));
        };
        attachments = digits.parse().map_err(|_| {
            ProtocolError::malformed("Socket.IO binary packet", "bad attachment count", msg)
        })?;
        rest = after;
    }

    // Namespace: '/' … up to the first ',' (consumed) or the end.
    let ns = if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => {
                let ns = &rest[..i];
                rest = &rest[i + 1..];
                ns
            }
            None => {
                let ns = rest;
                rest = "";
                ns
            }
        }
    } else {
        "/"
    };

    // Ack id (only meaningful for events and acks).
    let mut ack = None;
    if matches!(ty, b'2' | b'3' | b'5' | b'6') {
        let (digits, after) = split_digits(rest);
        if !digits.is_empty() {
            ack = Some(digits.parse::<u64>().map_err(|_| {
                ProtocolError::malformed("Socket.IO packet", "ack id out of range", msg)
            })?);
            rest = after;
        }
    }

    let need_array = |what: &'static str| -> Result<(), ProtocolError> {
        if rest.starts_with('[') {
            Ok(())
        } else if rest.is_empty() {
            Err(ProtocolError::malformed(what, "missing JSON array", msg))
        } else {
            Err(ProtocolError::malformed(
                what,
                "data is not a JSON array",
                msg,
            ))
        }
    };
    let need_ack = |what: &'static str| -> Result<u64, ProtocolError> {
        ack.ok_or_else(|| ProtocolError::malformed(what, "missing ack id", msg))
    };

    Ok(match ty {
        b'0' => SioPacket::Connect {
            ns,
            data: (!rest.is_empty()).then_some(rest),
        },
        b'1' => SioPacket::Disconnect { ns },
        b'2' => {
            need_array("Socket.IO EVENT")?;
            SioPacket::Event {
                ns,
                ack,
                args: rest,
            }
        }
        b'3' => {
            let ack = need_ack("Socket.IO ACK")?;
            need_array("Socket.IO ACK")?;
            SioPacket::Ack {
                ns,
                ack,
                args: rest,
            }
        }
        b'4' => SioPacket::ConnectError { ns, data: rest },
        b'5' => {
            need_array("Socket.IO BINARY_EVENT")?;
            SioPacket::BinaryEvent {
                ns,
                ack,
                attachments,
                args: rest,
            }
        }
        _ => {
            let ack = need_ack("Socket.IO BINARY_ACK")?;
            need_array("Socket.IO BINARY_ACK")?;
            SioPacket::BinaryAck {
                ns,
                ack,
                attachments,
                args: rest,
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Appends `s` as a JSON string literal (RFC 8259 escaping, non-ASCII kept raw).
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `4<ty>` + `/ns,` (unless `/`) + ack id.
fn push_header(out: &mut String, ty: char, ns: &str, ack: Option<u64>) {
    out.push('4');
    out.push(ty);
    if !ns.is_empty() && ns != "/" {
        out.push_str(ns);
        out.push(',');
    }
    if let Some(id) = ack {
        let _ = write!(out, "{id}");
    }
}

fn frame_capacity(ns: &str, event: &str, args: usize) -> usize {
    8 + ns.len() + event.len() + 20 + args
}

/// Whole websocket text frame for an event: `42` + optional `/ns,` + JSON array
/// `[event, args…]`.
pub fn encode_event(ns: &str, event: &str, args: &[Value]) -> String {
    encode_event_with_ack(ns, None, event, args)
}

/// Like [`encode_event`], and where the arguments start in the frame: `frame[at..len - 1]` is
/// their JSON text, comma-separated (empty without arguments).
pub fn encode_event_parts(ns: &str, event: &str, args: &[Value]) -> (String, usize) {
    let mut out = String::with_capacity(frame_capacity(ns, event, args.len() * 32));
    push_header(&mut out, '2', ns, None);
    out.push('[');
    push_json_str(&mut out, event);
    let at = out.len() + usize::from(!args.is_empty());
    for a in args {
        out.push(',');
        let _ = write!(out, "{a}");
    }
    out.push(']');
    (out, at)
}

/// Like [`encode_event`], with an optional ack id (`42/ns,17[...]`).
pub fn encode_event_with_ack(ns: &str, ack: Option<u64>, event: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(frame_capacity(ns, event, args.len() * 32));
    push_header(&mut out, '2', ns, ack);
    out.push('[');
    push_json_str(&mut out, event);
    for a in args {
        out.push(',');
        // `Display` for `Value` writes compact JSON straight into the string.
        let _ = write!(out, "{a}");
    }
    out.push(']');
    out
}

/// Like [`encode_event`], but the arguments are already JSON-encoded. The caller guarantees
/// each element of `args_json` is one valid JSON value. Only the tests write frames this way.
#[cfg(test)]
fn encode_event_raw(ns: &str, event: &str, args_json: &[&str]) -> String {
    encode_event_raw_with_ack(ns, None, event, args_json)
}

/// Like [`encode_event_raw`], with an optional ack id.
#[cfg(test)]
fn encode_event_raw_with_ack(
    ns: &str,
    ack: Option<u64>,
    event: &str,
    args_json: &[&str],
) -> String {
    let args_len: usize = args_json.iter().map(|a| a.len() + 1).sum();
    let mut out = String::with_capacity(frame_capacity(ns, event, args_len));
    push_header(&mut out, '2', ns, ack);
    out.push('[');
    push_json_str(&mut out, event);
    for a in args_json {
        out.push(',');
        out.push_str(a);
    }
    out.push(']');
    out
}

/// Whole websocket text frame acknowledging server event `ack`: `43` + `/ns,` + id + `[args…]`.
pub fn encode_ack(ns: &str, ack: u64, args: &[Value]) -> String {
    let mut out = String::with_capacity(frame_capacity(ns, "", args.len() * 32));
    push_header(&mut out, '3', ns, Some(ack));
    out.push('[');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{a}");
    }
    out.push(']');
    out
}

/// Whole websocket text frame for a namespace CONNECT: `40` + `/ns,` + optional JSON data.
pub fn encode_connect(ns: &str, data: Option<&Value>) -> String {
    let mut out = String::with_capacity(8 + ns.len());
    push_header(&mut out, '0', ns, None);
    if let Some(d) = data {
        let _ = write!(out, "{d}");
    }
    out
}

/// Whole websocket text frame for a namespace DISCONNECT: `41` + `/ns,`.
pub fn encode_disconnect(ns: &str) -> String {
    let mut out = String::with_capacity(4 + ns.len());
    push_header(&mut out, '1', ns, None);
    out
}

// ---------------------------------------------------------------------------------------------
// Argument parsing

/// Parses an EVENT's args text (`[name, args…]`) into (event name, remaining args).
///
/// A numeric event name (allowed by socket.io-parser) is returned as its decimal text.
pub fn parse_event_args(args: &str) -> Result<(String, Vec<Value>), ProtocolError> {
    let mut de = serde_json::Deserializer::from_str(args);
    let parsed = de
        .deserialize_seq(EventArrayVisitor)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| ProtocolError::malformed("Socket.IO EVENT arguments", e, args))?;
    Ok(parsed)
}

/// In a valid EVENT args text (`[name, args…]`), the text of the arguments after the name,
/// without the brackets and the separating comma (`""` when there are none). None when the
/// text is not a JSON array starting with a string or number. Does not validate the rest.
pub fn event_args_after_name(args: &str) -> Option<&str> {
    let b = args.as_bytes();
    let ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    let mut i = 0;
    ws(&mut i);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    ws(&mut i);
    if b.get(i) == Some(&b'"') {
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        i += 1;
    } else {
        while i < b.len() && !matches!(b[i], b',' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
    }
    ws(&mut i);
    let end = args.trim_end().strip_suffix(']')?.len();
    match b.get(i)? {
        b',' if i < end => Some(args[i + 1..end].trim()),
        b']' => Some(""),
        _ => None,
    }
}

/// Parses an ACK's args text (`[args…]`).
pub fn parse_ack_args(args: &str) -> Result<Vec<Value>, ProtocolError> {
    serde_json::from_str(args)
        .map_err(|e| ProtocolError::malformed("Socket.IO ACK arguments", e, args))
}

struct EventArrayVisitor;

impl<'de> Visitor<'de> for EventArrayVisitor {
    type Value = (String, Vec<Value>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array whose first element is the event name")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let name: EventName = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("empty array: no event name"))?;
        let mut rest = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            rest.push(v);
        }
        Ok((name.0, rest))
    }
}

struct EventName(String);

impl<'de> serde::Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EventName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event name (string or number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventName, E> {
                Ok(EventName(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EventName, E> {
                Ok(EventName(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventName, E> {
                Ok(EventName(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventName, E> {
                Ok(EventName(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EventName, E> {
                Ok(EventName(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_forms() {
        assert_eq!(
            decode("0").unwrap(),
            SioPacket::Connect {
                ns: "/",
                data: None
            }
        );
        assert_eq!(
            decode(r#"0{"sid":"abc"}"#).unwrap(),
            SioPacket::Connect {
                ns: "/",
                data: Some(r#"{"sid":"abc"}"#)
            }
        );
        assert_eq!(
            decode(r#"0/admin,{"sid":"abc"}"#).unwrap(),
            SioPacket::Connect {
                ns: "/admin",
                data: Some(r#"{"sid":"abc"}"#)
            }
        );
        // socket.io 2 forms: with and without the trailing comma.
        assert_eq!(
            decode("0/chat").unwrap(),
            SioPacket::Connect {
                ns: "/chat",
                data: None
            }
        );
        assert_eq!(
            decode("0/chat,").unwrap(),
            SioPacket::Connect {
                ns: "/chat",
                data: None
            }
        );
    }

    #[test]
    fn disconnect_and_connect_error() {
        assert_eq!(decode("1").unwrap(), SioPacket::Disconnect { ns: "/" });
        assert_eq!(
            decode("1/chat,").unwrap(),
            SioPacket::Disconnect { ns: "/chat" }
        );
        assert_eq!(
            decode(r#"4{"message":"Not authorized"}"#).unwrap(),
            SioPacket::ConnectError {
                ns: "/",
                data: r#"{"message":"Not authorized"}"#
            }
        );
        assert_eq!(
            decode(r#"4/admin,"Not authorized""#).unwrap(),
            SioPacket::ConnectError {
                ns: "/admin",
                data: r#""Not authorized""#
            }
        );
        assert_eq!(
            decode("4").unwrap(),
            SioPacket::ConnectError { ns: "/", data: "" }
        );
    }

    #[test]
    fn events_and_acks() {
        assert_eq!(
            decode(r#"2["hello",1]"#).unwrap(),
            SioPacket::Event {
                ns: "/",
                ack: None,
                args: r#"["hello",1]"#
            }
        );
        assert_eq!(
            decode(r#"212["hello"]"#).unwrap(),
            SioPacket::Event {
                ns: "/",
                ack: Some(12),
                args: r#"["hello"]"#
            }
        );
        assert_eq!(
            decode(r#"2/chat,7["m",{"a":[1,2]}]"#).unwrap(),
            SioPacket::Event {
                ns: "/chat",
                ack: Some(7),
                args: r#"["m",{"a":[1,2]}]"#
            }
        );
        assert_eq!(
            decode(r#"2/chat,["m"]"#).unwrap(),
            SioPacket::Event {
                ns: "/chat",
                ack: None,
                args: r#"["m"]"#
            }
        );
        assert_eq!(
            decode(r#"3/chat,5["ok"]"#).unwrap(),
            SioPacket::Ack {
                ns: "/chat",
                ack: 5,
                args: r#"["ok"]"#
            }
        );
        assert_eq!(
            decode("30[]").unwrap(),
            SioPacket::Ack {
                ns: "/",
                ack: 0,
                args: "[]"
            }
        );
        assert_eq!(
            decode(r#"51-["up",{"_placeholder":true,"num":0}]"#).unwrap(),
            SioPacket::BinaryEvent {
                ns: "/",
                ack: None,
                attachments: 1,
                args: r#"["up",{"_placeholder":true,"num":0}]"#
            }
        );
        assert_eq!(
            decode(r#"62-/x,9[{"_placeholder":true,"num":0}]"#).unwrap(),
            SioPacket::BinaryAck {
                ns: "/x",
                ack: 9,
                attachments: 2,
                args: r#"[{"_placeholder":true,"num":0}]"#
            }
        );
    }

    #[test]
    fn malformed_is_error_not_panic() {
        assert_eq!(decode(""), Err(ProtocolError::Empty(Layer::SocketIo)));
        assert!(matches!(
            decode("9[]"),
            Err(ProtocolError::UnknownType { ty: '9', .. })
        ));
        assert!(matches!(
            decode("x"),
            Err(ProtocolError::UnknownType { .. })
        ));
        for bad in [
            "2",
            "2{}",
            "2\"a\"",
            "2/chat,",
            "3[1]",
            "3",
            "35",
            "299999999999999999999999[\"a\"]",
            "5[\"a\"]",
            "5x-[\"a\"]",
            "51[\"a\"]",
            "61-[\"a\"]",
        ] {
            let e = decode(bad).unwrap_err();
            assert!(matches!(e, ProtocolError::Malformed { .. }), "{bad}: {e:?}");
        }
        // Multi-byte characters right after the type must not panic.
        assert!(decode("2é").is_err());
        assert!(decode("5é").is_err());
        assert!(decode("0/é").is_ok());
    }

    #[test]
    fn parse_event_args_works() {
        let (name, args) = parse_event_args(r#"["echo",{"a":1},"x",null]"#).unwrap();
        assert_eq!(name, "echo");
        assert_eq!(args, vec![json!({"a":1}), json!("x"), Value::Null]);
        let (name, args) = parse_event_args(r#"  ["only"] "#).unwrap();
        assert_eq!(name, "only");
        assert!(args.is_empty());
        assert_eq!(parse_event_args("[42, true]").unwrap().0, "42");
        for bad in ["[]", "[1", "{}", "[{\"a\":1}]", "[\"a\"] x", "", "[null]"] {
            assert!(
                matches!(parse_event_args(bad), Err(ProtocolError::Malformed { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse_ack_args("[1,\"b\"]").unwrap(),
            vec![json!(1), json!("b")]
        );
        assert!(parse_ack_args("[1,").is_err());
    }

    #[test]
    fn event_parts() {
        let (f, at) = encode_event_parts("/", "ev", &[json!({"a":1}), json!(2)]);
        assert_eq!(f, encode_event("/", "ev", &[json!({"a":1}), json!(2)]));
        assert_eq!(&f[at..f.len() - 1], r#"{"a":1},2"#);
        let (f, at) = encode_event_parts("/n", "ev", &[]);
        assert_eq!((&*f, &f[at..f.len() - 1]), (r#"42/n,["ev"]"#, ""));
    }

    #[test]
    fn args_after_name() {
        let f = event_args_after_name;
        assert_eq!(f(r#"["m",{"a":[1,"]"]}]"#), Some(r#"{"a":[1,"]"]}"#));
        assert_eq!(f(r#" [ "a\"b," , 1 , "x" ] "#), Some(r#"1 , "x""#));
        assert_eq!(f(r#"["only"]"#), Some(""));
        assert_eq!(f("[42,true]"), Some("true"));
        assert_eq!(f("{}"), None);
        assert_eq!(f(r#"["open"#), None);
    }

    #[test]
    fn encode_shapes() {
        assert_eq!(encode_event("/", "ev", &[]), r#"42["ev"]"#);
        assert_eq!(
            encode_event("/chat", "ev", &[json!({"a":1}), json!(2)]),
            r#"42/chat,["ev",{"a":1},2]"#
        );
        assert_eq!(
            encode_event_with_ack("/", Some(3), "ev", &[json!("x")]),
            r#"423["ev","x"]"#
        );
        assert_eq!(
            encode_event_with_ack("/n", Some(3), "ev", &[]),
            r#"42/n,3["ev"]"#
        );
        assert_eq!(
            encode_event_raw("/", "message", &[r#"{"token":"t"}"#, "1"]),
            r#"42["message",{"token":"t"},1]"#
        );
        assert_eq!(encode_ack("/", 4, &[json!("ok")]), r#"434["ok"]"#);
        assert_eq!(encode_ack("/n", 4, &[]), r#"43/n,4[]"#);
        assert_eq!(encode_connect("/", None), "40");
        assert_eq!(encode_connect("/a", None), "40/a,");
        assert_eq!(
            encode_connect("/", Some(&json!({"token":"x"}))),
            r#"40{"token":"x"}"#
        );
        assert_eq!(encode_disconnect("/"), "41");
        assert_eq!(encode_disconnect("/a"), "41/a,");
    }

    #[test]
    fn json_string_escaping_matches_serde() {
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "nl\n cr\r tab\t",
            "\u{0}\u{1}\u{1f}\u{8}\u{c}",
            "ünïcødé 漢字 🎉",
            "</script>",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn round_trip() {
        let args = vec![
            json!({"token":"t","message":"hi \"there\" ✓"}),
            json!([1, 2.5, null, true]),
            json!("s"),
        ];
        for ns in ["/", "/chat"] {
            for ack in [None, Some(0), Some(123456)] {
                let frame = encode_event_with_ack(ns, ack, "ev\"nt", &args);
                let super::super::engineio::EioPacket::Message(msg) =
                    super::super::engineio::decode(&frame).unwrap()
                else {
                    panic!("not a message: {frame}")
                };
                let SioPacket::Event {
                    ns: dns,
                    ack: dack,
                    args: dargs,
                } = decode(msg).unwrap()
                else {
                    panic!("not an event: {frame}")
                };
                assert_eq!(dns, ns);
                assert_eq!(dack, ack);
                let (name, parsed) = parse_event_args(dargs).unwrap();
                assert_eq!(name, "ev\"nt");
                assert_eq!(parsed, args);
            }
        }
        let frame = encode_ack("/chat", 9, &args);
        let SioPacket::Ack { ns, ack, args: a } = decode(&frame[1..]).unwrap() else {
            panic!()
        };
        assert_eq!((ns, ack), ("/chat", 9));
        assert_eq!(parse_ack_args(a).unwrap(), args);
        let raw = encode_event_raw("/", "e", &["{\"k\":[1]}"]);
        let SioPacket::Event { args: a, .. } = decode(&raw[1..]).unwrap() else {
            panic!()
        };
        assert_eq!(parse_event_args(a).unwrap().1, vec![json!({"k":[1]})]);
    }

    /// Found by the `engineio_packet` fuzz targets: serde_json's default number parser can
    /// land one unit in the last place off, so a float read from a frame and written back
    /// changed (`4.040404040404043e38` came back as `…042e38`). The workspace enables
    /// `float_roundtrip`.
    #[test]
    fn a_float_reads_back_as_the_same_number() {
        for text in [
            "4.040404040404043e38",
            "6.1076987098193915e-304",
            "0.30000000000000004",
            "1.7976931348623157e308",
            "5e-324",
        ] {
            let args = format!("[\"n\",{text}]");
            let (_, values) = parse_event_args(&args).unwrap();
            let expected: f64 = text.parse().unwrap();
            assert_eq!(values[0].as_f64(), Some(expected), "{text}");
            let frame = encode_event("/", "n", &values);
            let (_, again) = parse_event_args(&frame[2..]).unwrap();
            assert_eq!(again, values, "{frame}");
        }
    }
}
