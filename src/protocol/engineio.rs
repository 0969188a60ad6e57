//! Engine.IO packets over the websocket transport (one packet per text frame).
//!
//! | type | packet  | notes |
//! |------|---------|-------|
//! | `0`  | OPEN    | `0{"sid":…,"upgrades":[],"pingInterval":…,"pingTimeout":…[,"maxPayload":…]}` |
//! | `1`  | CLOSE   | |
//! | `2`  | PING    | optional payload (`2probe` during upgrades) |
//! | `3`  | PONG    | optional payload |
//! | `4`  | MESSAGE | payload is a Socket.IO packet |
//! | `5`  | UPGRADE | |
//! | `6`  | NOOP    | |
//!
//! The same framing serves Engine.IO v3 and v4; only the direction of heartbeats and the
//! presence of `maxPayload` (v4) differ.

use std::time::Duration;

use super::{excerpt, Layer, ProtocolError};

/// Contents of the Engine.IO OPEN packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInfo {
    /// Engine.IO session id (16 characters for socketioxide, 20 for Node; any non-empty length
    /// is accepted).
    pub sid: String,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Engine.IO v4 only.
    pub max_payload: Option<u64>,
}

/// One decoded Engine.IO packet, borrowing from the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket<'a> {
    Open(OpenInfo),
    Close,
    Ping(&'a str),
    Pong(&'a str),
    /// The Socket.IO packet text (without the leading `4`).
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Encoded packets the client sends.
pub const PING: &str = "2";
pub const PONG: &str = "3";
pub const CLOSE: &str = "1";

#[derive(serde::Deserialize)]
struct OpenRaw {
    sid: String,
    #[serde(rename = "pingInterval")]
    ping_interval: u64,
    #[serde(rename = "pingTimeout")]
    ping_timeout: u64,
    #[serde(rename = "maxPayload", default)]
    max_payload: Option<u64>,
}

/// Decodes one websocket text frame into an Engine.IO packet.
pub fn decode(frame: &str) -> Result<EioPacket<'_>, ProtocolError> {
    let Some(&ty) = frame.as_bytes().first() else {
        return Err(ProtocolError::Empty(Layer::EngineIo));
    };
    // `ty` is ASCII whenever it matches, so slicing at 1 is on a char boundary.
    match ty {
        b'0' => decode_open(&frame[1..]).map(EioPacket::Open),
        b'1' => Ok(EioPacket::Close),
        b'2' => Ok(EioPacket::Ping(&frame[1..])),
        b'3' => Ok(EioPacket::Pong(&frame[1..])),
        b'4' => Ok(EioPacket::Message(&frame[1..])),
        b'5' => Ok(EioPacket::Upgrade),
        b'6' => Ok(EioPacket::Noop),
        _ => Err(ProtocolError::UnknownType {
            layer: Layer::EngineIo,
            ty: frame.chars().next().unwrap_or('\0'),
            excerpt: excerpt(frame),
        }),
    }
}

fn decode_open(json: &str) -> Result<OpenInfo, ProtocolError> {
    let raw: OpenRaw = serde_json::from_str(json)
        .map_err(|e| ProtocolError::malformed("Engine.IO OPEN packet", e, json))?;
    if raw.sid.is_empty() {
        return Err(ProtocolError::malformed(
            "Engine.IO OPEN packet",
            "empty sid",
            json,
        ));
    }
    if raw.ping_interval == 0 {
        return Err(ProtocolError::malformed(
            "Engine.IO OPEN packet",
            "pingInterval is 0",
            json,
        ));
    }
    Ok(OpenInfo {
        sid: raw.sid,
        ping_interval: Duration::from_millis(raw.ping_interval),
        ping_timeout: Duration::from_millis(raw.ping_timeout),
        max_payload: raw.max_payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_v4_socketioxide() {
        let p = decode(
            r#"0{"sid":"AAAAAAAAAAAAAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            EioPacket::Open(OpenInfo {
                sid: "AAAAAAAAAAAAAAAA".into(),
                ping_interval: Duration::from_secs(25),
                ping_timeout: Duration::from_secs(20),
                max_payload: Some(100000),
            })
        );
    }

    #[test]
    fn open_v3_node_20_char_sid() {
        // Engine.IO v3 has no maxPayload; Node's sids are 20 characters.
        let p = decode(
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}"#,
        )
        .unwrap();
        let EioPacket::Open(info) = p else {
            panic!("not open: {p:?}")
        };
        assert_eq!(info.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(info.sid.len(), 20);
        assert_eq!(info.ping_timeout, Duration::from_secs(5));
        assert_eq!(info.max_payload, None);
    }

    #[test]
    fn simple_packets() {
        assert_eq!(decode("1").unwrap(), EioPacket::Close);
        assert_eq!(decode("2").unwrap(), EioPacket::Ping(""));
        assert_eq!(decode("2probe").unwrap(), EioPacket::Ping("probe"));
        assert_eq!(decode("3").unwrap(), EioPacket::Pong(""));
        assert_eq!(decode("3probe").unwrap(), EioPacket::Pong("probe"));
        assert_eq!(decode("5").unwrap(), EioPacket::Upgrade);
        assert_eq!(decode("6").unwrap(), EioPacket::Noop);
        assert_eq!(
            decode(r#"42["a",1]"#).unwrap(),
            EioPacket::Message(r#"2["a",1]"#)
        );
        assert_eq!(decode("4").unwrap(), EioPacket::Message(""));
    }

    #[test]
    fn malformed_is_error_not_panic() {
        assert_eq!(decode(""), Err(ProtocolError::Empty(Layer::EngineIo)));
        assert!(matches!(
            decode("7"),
            Err(ProtocolError::UnknownType { ty: '7', .. })
        ));
        assert!(matches!(
            decode("é"),
            Err(ProtocolError::UnknownType { ty: 'é', .. })
        ));
        for bad in [
            "0",
            "0{",
            "0{}",
            r#"0{"sid":"","pingInterval":1,"pingTimeout":1}"#,
            r#"0{"sid":"x","pingInterval":0,"pingTimeout":1}"#,
            r#"0{"sid":"x","pingInterval":-1,"pingTimeout":1}"#,
            r#"0{"sid":5,"pingInterval":1,"pingTimeout":1}"#,
            "0[1,2]",
        ] {
            let e = decode(bad).unwrap_err();
            assert!(matches!(e, ProtocolError::Malformed { .. }), "{bad}: {e:?}");
        }
        let long = format!("0{{\"sid\":{}", "x".repeat(1000));
        let msg = decode(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{msg}");
        assert!(msg.contains("Engine.IO OPEN packet"), "{msg}");
    }
}
