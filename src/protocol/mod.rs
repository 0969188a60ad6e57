//! Hand-written Engine.IO / Socket.IO codec for the driver's websocket-only client.
//!
//! # Why not `socketioxide-parser-common`?
//!
//! socketioxide's parser crates (socketioxide-core, socketioxide-parser-common) can encode and
//! decode Socket.IO packets, but as a *client* codec they fall short on three points that
//! matter here:
//!
//! - they do not parse the Engine.IO OPEN packet (`0{"sid":…,"pingInterval":…}`), which the
//!   client needs for the session id and heartbeat timings;
//! - they reject session ids that are not exactly 16 characters long, while Node's engine.io
//!   issues 20-character ids, so every Node server would look broken;
//! - they reject CONNECT_ERROR (`44…`), the packet a server uses to refuse a namespace
//!   connection, which the client must report as a refusal.
//!
//! The codec here is small, borrows from the received frame instead of allocating, and accepts
//! both protocol generations: Engine.IO v3 / Socket.IO v2 (socket.io 1/2) and Engine.IO v4 /
//! Socket.IO v5 (socket.io 3/4).
//!
//! Decoding never panics: malformed input gives a [`ProtocolError`] that says what was
//! malformed and carries a short excerpt of the offending text.

pub mod engineio;
pub mod socketio;

use std::fmt;
use std::str::FromStr;

/// Engine.IO protocol revision spoken on the wire (`EIO=` query parameter).
///
/// - `V3`: socket.io 1.x/2.x. The **client** pings (`2`) every `pingInterval` and the server
///   answers `3`; the server connects the default namespace unprompted with a bare `40`.
/// - `V4`: socket.io 3.x/4.x. The **server** pings (`2`) and the client answers `3`; the client
///   sends `40` and the server answers `40{"sid":…}`.
///
/// Serialized as the integers `3` and `4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum EioVersion {
    V3,
    V4,
}

impl EioVersion {
    /// The value of the `EIO=` query parameter.
    pub fn as_query_value(self) -> &'static str {
        match self {
            EioVersion::V3 => "3",
            EioVersion::V4 => "4",
        }
    }
}

impl EioVersion {
    /// The other generation.
    pub fn other(self) -> EioVersion {
        match self {
            EioVersion::V3 => EioVersion::V4,
            EioVersion::V4 => EioVersion::V3,
        }
    }

    /// The socket.io releases that speak this generation, for messages.
    pub fn releases(self) -> &'static str {
        match self {
            EioVersion::V3 => "socket.io 1/2",
            EioVersion::V4 => "socket.io 3/4",
        }
    }
}

/// The Engine.IO version a run asks for: `auto` (detect the server's generation in the
/// preflight connection, then use it) or a fixed one, which a server of the other generation
/// makes the run refuse to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EioSetting {
    #[default]
    Auto,
    Fixed(EioVersion),
}

impl fmt::Display for EioSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EioSetting::Auto => f.write_str("auto"),
            EioSetting::Fixed(v) => v.fmt(f),
        }
    }
}

impl FromStr for EioSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(EioSetting::Auto),
            "3" => Ok(EioSetting::Fixed(EioVersion::V3)),
            "4" => Ok(EioSetting::Fixed(EioVersion::V4)),
            other => Err(format!(
                "Engine.IO version must be 3, 4 or auto, not {other:?}"
            )),
        }
    }
}

impl serde::Serialize for EioSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EioSetting::Auto => s.serialize_str("auto"),
            EioSetting::Fixed(v) => s.serialize_u8(u8::from(*v)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for EioSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = EioSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("3, 4 or auto")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EioSetting, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EioSetting, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EioSetting, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl TryFrom<u8> for EioVersion {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            3 => Ok(EioVersion::V3),
            4 => Ok(EioVersion::V4),
            other => Err(format!(
                "unsupported Engine.IO version {other} (expected 3 or 4)"
            )),
        }
    }
}

impl From<EioVersion> for u8 {
    fn from(v: EioVersion) -> u8 {
        match v {
            EioVersion::V3 => 3,
            EioVersion::V4 => 4,
        }
    }
}

impl fmt::Display for EioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_query_value())
    }
}

impl FromStr for EioVersion {
    type Err = String;
    /// Accepts `3`, `4`, `v3`, `v4`, `eio3`, `eio4` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .strip_prefix("eio")
            .or_else(|| t.strip_prefix('v'))
            .unwrap_or(&t);
        match t {
            "3" => Ok(EioVersion::V3),
            "4" => Ok(EioVersion::V4),
            _ => Err(format!(
                "unsupported Engine.IO version {s:?} (expected 3 or 4)"
            )),
        }
    }
}

/// Which protocol layer a packet belongs to (used in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    EngineIo,
    SocketIo,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::EngineIo => "Engine.IO",
            Layer::SocketIo => "Socket.IO",
        })
    }
}

/// A received packet could not be decoded, or uses a feature the driver does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The packet was empty (no type character).
    #[error("empty {0} packet")]
    Empty(Layer),
    /// The packet type character is not one the protocol defines.
    #[error("unknown {layer} packet type {ty:?} in {excerpt:?}")]
    UnknownType {
        layer: Layer,
        ty: char,
        excerpt: String,
    },
    /// The packet has a known type but its body is malformed.
    #[error("malformed {what}: {detail} in {excerpt:?}")]
    Malformed {
        what: &'static str,
        detail: String,
        excerpt: String,
    },
    /// A well-formed packet that the driver does not handle (binary attachments).
    #[error("unsupported {what} in {excerpt:?}")]
    Unsupported { what: &'static str, excerpt: String },
}

/// Longest excerpt kept in an error, in characters.
pub(crate) const EXCERPT_CHARS: usize = 80;

/// Longest detail kept in an error, in characters.
pub(crate) const DETAIL_CHARS: usize = 160;

/// A short, char-boundary-safe excerpt of `s` for error messages.
pub(crate) fn excerpt(s: &str) -> String {
    crate::text::excerpt(s, EXCERPT_CHARS)
}

impl ProtocolError {
    pub(crate) fn malformed(what: &'static str, detail: impl fmt::Display, input: &str) -> Self {
        ProtocolError::Malformed {
            what,
            // A JSON parser's message quotes the offending value whole (`invalid type: string
            // "…"`): cut it like the excerpt, or one long frame makes a long error per event.
            detail: crate::text::excerpt(&detail.to_string(), DETAIL_CHARS),
            excerpt: excerpt(input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eio_version_serde_and_display() {
        assert_eq!(
            serde_json::from_str::<EioVersion>("3").unwrap(),
            EioVersion::V3
        );
        assert_eq!(
            serde_json::from_str::<EioVersion>("4").unwrap(),
            EioVersion::V4
        );
        assert!(serde_json::from_str::<EioVersion>("5").is_err());
        assert!(serde_json::from_str::<EioVersion>("\"4\"").is_err());
        assert_eq!(serde_json::to_string(&EioVersion::V3).unwrap(), "3");
        assert_eq!(EioVersion::V4.to_string(), "4");
        assert_eq!("v3".parse::<EioVersion>().unwrap(), EioVersion::V3);
        assert_eq!("EIO4".parse::<EioVersion>().unwrap(), EioVersion::V4);
        assert!("2".parse::<EioVersion>().is_err());
    }

    /// Found by the `ws_framing` fuzz target: serde_json's message for a frame of the wrong
    /// type quotes the whole value, so a frame holding a long string gave an error as long as
    /// the frame.
    #[test]
    fn a_malformed_frame_gives_a_short_error() {
        let frame = format!("\"{}\"", "ac".repeat(5000));
        let json_error =
            serde_json::from_str::<std::collections::BTreeMap<String, u8>>(&frame).unwrap_err();
        assert!(json_error.to_string().len() > 10_000, "the detail is long");
        let e = ProtocolError::malformed("plain WebSocket frame", json_error, &frame);
        let message = e.to_string();
        assert!(message.chars().count() < 300, "{message}");
        assert!(message.contains("invalid type: string"), "{message}");
    }

    #[test]
    fn excerpt_is_char_safe() {
        let long: String = "é".repeat(200);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("short"), "short");
    }
}
