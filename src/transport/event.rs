//! What a transport hands its caller: received events (left unparsed, in the received frame),
//! closes with their reason, and outgoing frames with the payload the transcript shows.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::ClientError;
use crate::protocol::socketio;

/// What [`Connection::recv`](super::socketio::Connection::recv) delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A server event; `ack` is set when the server expects an acknowledgement
    /// (answer with [`Connection::ack`](super::socketio::Connection::ack)).
    Event {
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    },
    /// The server acknowledged one of our
    /// [`Connection::emit_with_ack`](super::socketio::Connection::emit_with_ack) events.
    Ack { ack: u64, args: Vec<Value> },
    /// The server ended the session or the transport; `reason` says how (socket.io disconnect
    /// packet, engine.io close, websocket close frame with code, TCP EOF/reset, ping timeout
    /// detected by the client). After this, `recv` and `emit` return [`ClientError::Closed`].
    Closed(CloseReason),
}

/// A server event still as JSON text, held in the received frame without a copy (see
/// [`Transport::poll_recv_raw`](super::Transport::poll_recv_raw)): a caller that judges
/// thousands of events per second parses only what it needs, borrowing from the frame.
#[derive(Debug, Clone)]
pub struct RawEvent {
    frame: Utf8Bytes,
    /// Socket.IO: where the `[name, args…]` array starts; plain WebSocket: 0.
    args_at: usize,
    origin: Origin,
    /// Set when the server expects an acknowledgement (Socket.IO only).
    pub ack: Option<u64>,
}

#[derive(Debug, Clone)]
enum Origin {
    /// Socket.IO: where the namespace is spelled in the frame (`len` 0: `/`, not spelled).
    SocketIo { ns_at: u32, ns_len: u32 },
    /// Plain WebSocket: the event's name as the framing read it.
    Framed(Name),
}

#[derive(Debug, Clone)]
enum Name {
    /// The name is this part of the frame (no escapes in it).
    At { at: u32, len: u32 },
    /// The frame spells the name with escapes (or it is not text there).
    Owned(Box<str>),
}

/// Where a Socket.IO event's namespace and arguments are in its frame, taken before the frame
/// moves into the [`RawEvent`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SioAt {
    args_at: usize,
    ns_at: u32,
    ns_len: u32,
}

impl SioAt {
    /// `ns` (`/` need not be part of the frame) and `args` (the `[name, args…]` array) are
    /// parts of `frame`.
    pub(crate) fn of(frame: &str, ns: &str, args: &str) -> SioAt {
        let args_at = span_in(frame, args).map_or(0, |(at, _)| at as usize);
        let (ns_at, ns_len) = match ns {
            "/" => (0, 0),
            ns => span_in(frame, ns).unwrap_or((0, 0)),
        };
        SioAt {
            args_at,
            ns_at,
            ns_len,
        }
    }
}

/// Where a plain WebSocket event's name is, taken before the frame moves into the
/// [`RawEvent`].
#[derive(Debug, Clone)]
pub(crate) struct NameAt(Name);

impl NameAt {
    /// `name` as the framing read it from `frame` (borrowed from it, or unescaped).
    pub(crate) fn of(frame: &str, name: Cow<'_, str>) -> NameAt {
        NameAt(match (&name, span_in(frame, &name)) {
            (Cow::Borrowed(_), Some((at, len))) => Name::At { at, len },
            _ => Name::Owned(name.into()),
        })
    }
}

/// Where `part` lies in `whole`, if it is a part of it.
fn span_in(whole: &str, part: &str) -> Option<(u32, u32)> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at + part.len() <= whole.len()).then_some((at as u32, part.len() as u32))
}

impl RawEvent {
    /// A Socket.IO event whose parts `at` points at in `frame`.
    pub(crate) fn socketio(frame: Utf8Bytes, at: SioAt, ack: Option<u64>) -> RawEvent {
        RawEvent {
            frame,
            args_at: at.args_at,
            origin: Origin::SocketIo {
                ns_at: at.ns_at,
                ns_len: at.ns_len,
            },
            ack,
        }
    }

    /// A plain WebSocket event, its name as the dialect's framing read it from `frame`.
    pub(crate) fn framed(frame: Utf8Bytes, name: NameAt) -> RawEvent {
        RawEvent {
            frame,
            args_at: 0,
            origin: Origin::Framed(name.0),
            ack: None,
        }
    }

    /// Socket.IO: the event's JSON array text `[name, args…]`, unparsed. Plain WebSocket: the
    /// whole frame (one JSON object, its name in a field).
    pub fn args(&self) -> &str {
        &self.frame.as_str()[self.args_at..]
    }

    /// The whole received text frame.
    pub fn frame(&self) -> &str {
        self.frame.as_str()
    }

    /// The Socket.IO namespace the event came on; `None` on a plain WebSocket.
    pub fn namespace(&self) -> Option<&str> {
        match self.origin {
            Origin::SocketIo { ns_len: 0, .. } => Some("/"),
            Origin::SocketIo { ns_at, ns_len } => {
                Some(&self.frame.as_str()[ns_at as usize..(ns_at + ns_len) as usize])
            }
            Origin::Framed(_) => None,
        }
    }

    /// The event's name (`None`: a Socket.IO event whose array has no readable name).
    pub fn name(&self) -> Option<Cow<'_, str>> {
        match &self.origin {
            Origin::SocketIo { .. } => socketio_name(self.args()),
            Origin::Framed(Name::At { at, len }) => Some(Cow::Borrowed(
                &self.frame.as_str()[*at as usize..(*at + *len) as usize],
            )),
            Origin::Framed(Name::Owned(n)) => Some(Cow::Borrowed(n)),
        }
    }

    /// The event's payload as JSON text: Socket.IO, the one argument, or the array of the
    /// arguments when there are not exactly one; plain WebSocket, the whole frame.
    pub fn payload(&self) -> Option<Cow<'_, str>> {
        match self.origin {
            Origin::SocketIo { .. } => {
                let after = socketio::event_args_after_name(self.args())?;
                let count = serde_json::from_str::<Vec<IgnoredAny>>(self.args())
                    .ok()?
                    .len();
                Some(match count {
                    2 => Cow::Borrowed(after),
                    _ => Cow::Owned(format!("[{after}]")),
                })
            }
            Origin::Framed(_) => Some(Cow::Borrowed(self.frame.as_str())),
        }
    }

    /// The event as [`Connection::recv`](super::socketio::Connection::recv) delivers it
    /// (`Err(Protocol)` for malformed arguments). A plain WebSocket frame is the one argument.
    pub fn parse(&self) -> Result<Incoming, ClientError> {
        match &self.origin {
            Origin::SocketIo { .. } => socketio::parse_event_args(self.args())
                .map(|(name, args)| Incoming::Event {
                    name,
                    args,
                    ack: self.ack,
                })
                .map_err(ClientError::from),
            Origin::Framed(_) => {
                let frame: Value = serde_json::from_str(self.frame.as_str()).map_err(|e| {
                    crate::protocol::ProtocolError::malformed(
                        "plain WebSocket frame",
                        e.to_string(),
                        self.frame.as_str(),
                    )
                })?;
                Ok(Incoming::Event {
                    name: self.name().unwrap_or_default().into_owned(),
                    args: vec![frame],
                    ack: None,
                })
            }
        }
    }
}

/// The first element of a Socket.IO event array, borrowed when it has no escapes (a numeric
/// name, allowed by socket.io-parser, as its decimal text).
fn socketio_name(args: &str) -> Option<Cow<'_, str>> {
    struct NameSeed;
    impl<'de> DeserializeSeed<'de> for NameSeed {
        type Value = Cow<'de, str>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for NameSeed {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an event name")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
    }
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON array whose first element is the event name")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = seq
                .next_element_seed(NameSeed)?
                .ok_or_else(|| de::Error::custom("no event name"))?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(name)
        }
    }
    let mut de = serde_json::Deserializer::from_str(args);
    let name = de.deserialize_seq(First).ok()?;
    de.end().ok()?;
    Some(name)
}

/// What [`Transport::poll_recv_raw`](super::Transport::poll_recv_raw) delivers: an event left
/// unparsed, or anything else as [`Connection::recv`](super::socketio::Connection::recv)
/// gives it.
#[derive(Debug, Clone)]
pub enum RawIncoming {
    Event(RawEvent),
    Other(Incoming),
}

/// How a session ended (see [`Incoming::Closed`]), and who ended it: the server (or the
/// network) for the first five, the client itself for the others ([`CloseReason::by_client`]),
/// because of what the server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Socket.IO DISCONNECT (`41`) for one of our namespaces.
    ServerDisconnect,
    /// Engine.IO CLOSE (`1`).
    EngineClose,
    /// Websocket close frame, with its status code if it had one.
    WebSocketClose(Option<u16>),
    /// TCP connection closed without a websocket close frame.
    Eof,
    /// TCP reset or another transport error.
    Reset(String),
    /// The client saw no heartbeat from the server in time (EIO3 and plain WebSocket with an
    /// answered heartbeat: pinged server silent for pingTimeout; EIO4: no ping within
    /// pingInterval + pingTimeout) and gave the connection up.
    HeartbeatTimeout,
    /// The client failed the connection: the server sent a frame of `size` bytes, over the
    /// client's cap of `max` (see [`frame_cap`](super::frame_cap)).
    FrameTooBig { size: u64, max: u64 },
    /// The client failed the connection: a text frame that is not UTF-8 (RFC 6455 §8.1).
    InvalidUtf8(String),
    /// The client failed the connection: another websocket protocol violation of the server
    /// (e.g. a masked or fragmented control frame).
    WebSocketProtocol(String),
    /// The client gave up a write that stayed blocked for `waited`: the server stopped reading.
    WriteBlocked { waited: std::time::Duration },
}

impl CloseReason {
    /// The client ended the connection itself (because of what the server did), rather than
    /// the server or the network.
    pub fn by_client(&self) -> bool {
        matches!(
            self,
            CloseReason::HeartbeatTimeout
                | CloseReason::FrameTooBig { .. }
                | CloseReason::InvalidUtf8(_)
                | CloseReason::WebSocketProtocol(_)
                | CloseReason::WriteBlocked { .. }
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ServerDisconnect => f.write_str("server sent a Socket.IO disconnect"),
            CloseReason::EngineClose => f.write_str("server sent an Engine.IO close"),
            CloseReason::WebSocketClose(Some(c)) => {
                write!(f, "server closed the websocket with code {c}")
            }
            CloseReason::WebSocketClose(None) => {
                f.write_str("server closed the websocket without code")
            }
            CloseReason::Eof => f.write_str("connection closed by the server (EOF)"),
            CloseReason::Reset(e) => write!(f, "connection reset: {e}"),
            CloseReason::HeartbeatTimeout => {
                f.write_str("the client closed the connection: no heartbeat from the server in time")
            }
            CloseReason::FrameTooBig { size, max } => write!(
                f,
                "the client closed the connection: the server sent a frame of {size} bytes, over the client's cap of {max} bytes"
            ),
            CloseReason::InvalidUtf8(e) => write!(
                f,
                "the client closed the connection: the server sent a text frame that is not UTF-8 ({e})"
            ),
            CloseReason::WebSocketProtocol(e) => write!(
                f,
                "the client closed the connection: websocket protocol violation by the server ({e})"
            ),
            CloseReason::WriteBlocked { waited } => write!(
                f,
                "the client closed the connection: a write stayed blocked for {} ms (the server stopped reading)",
                waited.as_millis()
            ),
        }
    }
}

/// An encoded outgoing event: the whole text frame, and where its payload is, for the
/// transcript (so the payload is not serialised twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    text: String,
    payload: PayloadAt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PayloadAt {
    /// `text[start..end]` is the payload.
    Span(usize, usize),
    /// `[` + `text[start..end]` + `]` is the payload (several or no Socket.IO arguments).
    Wrapped(usize, usize),
}

impl OutFrame {
    /// A Socket.IO event frame `…[name,args…]` whose arguments start at `args_at`.
    pub(crate) fn socketio(text: String, args_at: usize, arg_count: usize) -> OutFrame {
        // The arguments run to the closing `]`, after the name's trailing `,` when there are any.
        let end = text.len() - 1;
        let start = args_at.min(end);
        let payload = match arg_count {
            1 => PayloadAt::Span(start, end),
            _ => PayloadAt::Wrapped(start, end),
        };
        OutFrame { text, payload }
    }

    /// A frame that is its own payload (plain WebSocket).
    pub(crate) fn whole(text: String) -> OutFrame {
        let len = text.len();
        OutFrame {
            text,
            payload: PayloadAt::Span(0, len),
        }
    }

    /// The whole text frame.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The payload as the transcript shows it: Socket.IO, the one argument or the array of the
    /// arguments; plain WebSocket, the whole frame.
    pub fn payload(&self) -> Cow<'_, str> {
        match self.payload {
            PayloadAt::Span(s, e) => Cow::Borrowed(&self.text[s..e]),
            PayloadAt::Wrapped(s, e) => Cow::Owned(format!("[{}]", &self.text[s..e])),
        }
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sio(frame: &'static str) -> RawEvent {
        let m = frame.strip_prefix('4').expect("message");
        match socketio::decode(m).expect("packet") {
            socketio::SioPacket::Event { ns, args, ack, .. } => {
                let at = SioAt::of(frame, ns, args);
                RawEvent::socketio(Utf8Bytes::from_static(frame), at, ack)
            }
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn socketio_event_parts() {
        let e = sio(r#"42["msg",{"a":1}]"#);
        assert_eq!(e.namespace(), Some("/"));
        assert_eq!(e.name().as_deref(), Some("msg"));
        assert!(matches!(e.name(), Some(Cow::Borrowed(_))));
        assert_eq!(e.payload().as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(e.args(), r#"["msg",{"a":1}]"#);

        let e = sio(r#"42/friend,7["receivefsmg",1,"x"]"#);
        assert_eq!(e.namespace(), Some("/friend"));
        assert_eq!(e.ack, Some(7));
        assert_eq!(e.name().as_deref(), Some("receivefsmg"));
        assert_eq!(e.payload().as_deref(), Some(r#"[1,"x"]"#));

        let e = sio(r#"42/group,["n\u0041me"]"#);
        assert_eq!(e.namespace(), Some("/group"));
        assert_eq!(e.name().as_deref(), Some("nAme"));
        assert_eq!(e.payload().as_deref(), Some("[]"));
        assert_eq!(
            e.parse().unwrap(),
            Incoming::Event {
                name: "nAme".into(),
                args: vec![],
                ack: None
            }
        );
    }

    #[test]
    fn framed_event_parts() {
        let frame = Utf8Bytes::from_static(r#"{"action":"up","room_seat_id":3}"#);
        let name = NameAt::of(frame.as_str(), Cow::Borrowed(&frame.as_str()[11..13]));
        assert!(matches!(name.0, Name::At { at: 11, len: 2 }));
        let e = RawEvent::framed(frame.clone(), name);
        assert_eq!(e.namespace(), None);
        assert_eq!(e.name().as_deref(), Some("up"));
        assert_eq!(e.payload().as_deref(), Some(frame.as_str()));
        assert_eq!(
            e.parse().unwrap(),
            Incoming::Event {
                name: "up".into(),
                args: vec![serde_json::json!({"action":"up","room_seat_id":3})],
                ack: None
            }
        );
        // A name the framing had to unescape is kept as its own string.
        let name = NameAt::of(frame.as_str(), Cow::Owned("down".into()));
        let e = RawEvent::framed(frame, name);
        assert_eq!(e.name().as_deref(), Some("down"));
    }

    #[test]
    fn outgoing_payload() {
        let (text, at) =
            socketio::encode_event_parts("/", "message", &[serde_json::json!({"m": 1})]);
        let f = OutFrame::socketio(text, at, 1);
        assert_eq!(f.payload(), r#"{"m":1}"#);
        let (text, at) = socketio::encode_event_parts(
            "/chat",
            "two",
            &[serde_json::json!(1), serde_json::json!("b")],
        );
        let f = OutFrame::socketio(text, at, 2);
        assert_eq!(f.text(), r#"42/chat,["two",1,"b"]"#);
        assert_eq!(f.payload(), r#"[1,"b"]"#);
        let (text, at) = socketio::encode_event_parts("/", "none", &[]);
        assert_eq!(OutFrame::socketio(text, at, 0).payload(), "[]");
        assert_eq!(OutFrame::whole("{}".into()).payload(), "{}");
    }
}
