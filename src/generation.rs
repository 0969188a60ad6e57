//! Which Engine.IO generation a server speaks, told from what it sends during the handshake.
//!
//! An EIO 4 client against an EIO 3-only server (socket.io 2) sends a CONNECT the server did not
//! expect, gets a second socket and judges the wrong heartbeat direction; the run's verdict is
//! then noise. So one probe connection, before any load, reads what the server sends after its
//! OPEN packet, and the run either uses that generation (`--eio auto`) or refuses a mismatch.
//!
//! Signals, each one only a server of that generation gives (the OPEN packet's `maxPayload` is
//! not one: socketioxide sends it to EIO 3 clients too, and socket.io 3 omits it):
//!
//! - The server pings first: Engine.IO 4 (in v3 the client pings and the server answers).
//! - A bare `40` arrives before the client sent CONNECT: Engine.IO 3 (socket.io 2 connects the
//!   default namespace by itself; socket.io 3/4 waits for the client's CONNECT).
//! - The answer to the client's CONNECT: `40{"sid":…}` is Socket.IO 5 (EIO 4), a bare `40`
//!   Socket.IO 4 (EIO 3); a refusal `44{…}` (object) is EIO 4, `44"…"` (string) EIO 3.
//! - The websocket handshake asking for one version is refused over HTTP while the other is
//!   served (Node's engine.io 4+ answers `EIO=3` with 400 "Unsupported protocol version").

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, SioPacket};
use crate::protocol::{EioSetting, EioVersion};
use crate::transport::socketio::{open_session, ClientConfig};
use crate::transport::ConnectError;

/// How long the probe waits for the server to speak first after its OPEN (socket.io 2 sends its
/// `40` together with the OPEN), and then for the answer to its CONNECT.
const PROBE_WAIT: Duration = Duration::from_millis(1000);

/// The generation a server was seen to speak, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub eio: EioVersion,
    /// What the server sent that told it, for the user.
    pub signal: String,
}

/// Why a run cannot start with the Engine.IO version it asked for.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// The probe connection failed.
    #[error("{0}")]
    Connect(ConnectError),
    /// The server speaks the other generation.
    #[error(
        "the target speaks Engine.IO {} ({}: {}), the run asks for Engine.IO {}: use --eio {} or --eio auto",
        .spoken.eio, .spoken.eio.releases(), .spoken.signal, .asked, .spoken.eio
    )]
    Mismatch { asked: EioVersion, spoken: Detected },
    /// Nothing the server sent tells the generation.
    #[error(
        "cannot tell which Engine.IO generation the target speaks ({0}): use --eio 3 or --eio 4"
    )]
    Undetermined(String),
}

/// The version a run uses: the detected one for `auto`, the asked one when the server speaks
/// it (or gives no sign either way). `Some(detected)` says what the probe saw.
pub async fn resolve(
    target: &str,
    cfg: &ClientConfig,
    setting: EioSetting,
) -> Result<(EioVersion, Option<Detected>), GenerationError> {
    let first = match setting {
        EioSetting::Auto => EioVersion::V4,
        EioSetting::Fixed(v) => v,
    };
    let first_probe = probe(target, cfg, first).await;
    tracing::debug!(?first_probe, %first, "generation probe result");
    let found = match first_probe {
        Ok(Some(d)) => Some(d),
        Ok(None) => match setting {
            // Asked for 4 and no sign: a v3 server may still show itself when asked for 3.
            EioSetting::Auto => probe(target, cfg, EioVersion::V3).await.ok().flatten(),
            EioSetting::Fixed(_) => None,
        },
        // Refused over HTTP, or (Node's engine.io 4+ over websocket) an HTTP 400 written after
        // the 101: does the server speak the other generation?
        Err(e @ (ConnectError::Handshake(_) | ConnectError::NotEngineIo(_))) => {
            match probe(target, cfg, first.other()).await {
                Ok(Some(d)) if d.eio != first => {
                    let refused = e.to_string();
                    Some(Detected {
                        signal: format!(
                            "it failed the EIO={first} handshake ({}); asked for EIO={}, {}",
                            refused.split(" (").next().unwrap_or(&refused),
                            first.other(),
                            d.signal
                        ),
                        ..d
                    })
                }
                _ => return Err(GenerationError::Connect(e)),
            }
        }
        Err(e) => return Err(GenerationError::Connect(e)),
    };
    match (setting, found) {
        (EioSetting::Fixed(asked), Some(spoken)) if spoken.eio != asked => {
            Err(GenerationError::Mismatch { asked, spoken })
        }
        (EioSetting::Fixed(asked), found) => Ok((asked, found)),
        (EioSetting::Auto, Some(d)) => Ok((d.eio, Some(d))),
        (EioSetting::Auto, None) => Err(GenerationError::Undetermined(
            "it neither pinged, nor connected the default namespace by itself, nor answered CONNECT in a way only one generation does".into(),
        )),
    }
}

/// One probe connection asking for `asked`: what the server's first packets say, or `None`
/// when they say nothing either way.
pub async fn probe(
    target: &str,
    cfg: &ClientConfig,
    asked: EioVersion,
) -> Result<Option<Detected>, ConnectError> {
    let probe = async {
        let (mut ws, _open) = open_session(target, cfg, asked).await?;
        let found = match first_sign(&mut ws, false).await {
            Some(d) => Some(d),
            None => {
                let connect = socketio::encode_connect("/", None);
                match ws.send(Message::text(connect)).await {
                    Ok(()) => first_sign(&mut ws, true).await,
                    Err(_) => None,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
        Ok(found)
    };
    match tokio::time::timeout(cfg.connect_timeout, probe).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// Reads what the server sends for [`PROBE_WAIT`]; `connect_sent` says whether a `40` of ours
/// is out (then a CONNECT is an answer, not the server speaking first).
async fn first_sign(ws: &mut WebSocketStream<TcpStream>, connect_sent: bool) -> Option<Detected> {
    let deadline = tokio::time::Instant::now() + PROBE_WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        let Ok(Message::Text(text)) = msg else {
            match msg {
                Ok(Message::Close(_)) | Err(_) => return None,
                _ => continue,
            }
        };
        tracing::debug!(frame = %text, connect_sent, "generation probe");
        if let Some(d) = sign_of(&text, connect_sent) {
            return Some(d);
        }
    }
}

/// The generation one frame after the OPEN proves, if any.
pub fn sign_of(frame: &str, connect_sent: bool) -> Option<Detected> {
    let detected = |eio, signal: &str| {
        Some(Detected {
            eio,
            signal: signal.to_owned(),
        })
    };
    match engineio::decode(frame).ok()? {
        EioPacket::Ping(_) => detected(
            EioVersion::V4,
            "it pinged the client (in Engine.IO 3 the client pings)",
        ),
        EioPacket::Message(m) => match socketio::decode(m).ok()? {
            SioPacket::Connect { ns: "/", data: None } if !connect_sent => detected(
                EioVersion::V3,
                "it connected the default namespace with a bare `40` before the client sent CONNECT",
            ),
            SioPacket::Connect { ns: "/", data: None } => detected(
                EioVersion::V3,
                "it answered CONNECT with a bare `40`, without a socket id",
            ),
            SioPacket::Connect {
                ns: "/",
                data: Some(_),
            } => detected(EioVersion::V4, "it answered CONNECT with a socket id"),
            SioPacket::ConnectError { ns: "/", data } if data.trim_start().starts_with('{') => {
                detected(EioVersion::V4, "it refused CONNECT with an object (`44{…}`)")
            }
            SioPacket::ConnectError { ns: "/", .. } => {
                detected(EioVersion::V3, "it refused CONNECT with a string (`44\"…\"`)")
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_that_tell_the_generation() {
        let eio = |f: &str, sent: bool| sign_of(f, sent).map(|d| d.eio);
        assert_eq!(eio("40", false), Some(EioVersion::V3));
        assert_eq!(eio("40", true), Some(EioVersion::V3));
        assert_eq!(
            eio(r#"40{"sid":"abcdefghijklmnop"}"#, true),
            Some(EioVersion::V4)
        );
        assert_eq!(eio("2", false), Some(EioVersion::V4));
        assert_eq!(
            eio(r#"44{"message":"Not authorized"}"#, true),
            Some(EioVersion::V4)
        );
        assert_eq!(eio(r#"44"Not authorized""#, true), Some(EioVersion::V3));
        // Another namespace, events, noops and garbage tell nothing.
        assert_eq!(eio("40/admin,", false), None);
        assert_eq!(eio(r#"42["hello"]"#, false), None);
        assert_eq!(eio("6", false), None);
        assert_eq!(eio("x", false), None);
    }

    #[test]
    fn mismatch_is_one_sentence_naming_both_versions() {
        let e = GenerationError::Mismatch {
            asked: EioVersion::V4,
            spoken: Detected {
                eio: EioVersion::V3,
                signal: "it connected the default namespace with a bare `40` before the client sent CONNECT".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "the target speaks Engine.IO 3 (socket.io 1/2: it connected the default namespace with a bare `40` before the client sent CONNECT), the run asks for Engine.IO 4: use --eio 3 or --eio auto"
        );
    }
}
