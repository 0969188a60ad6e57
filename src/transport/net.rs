//! What both transports share below their framing: the target URL, the TCP connect (with the
//! loopback source spreading), and the websocket handshake with small buffers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig, Message};
use tokio_tungstenite::WebSocketStream;

use super::{ConnectError, FRAME_CEILING, READ_BUFFER_SIZE};
use crate::protocol::excerpt;

/// Parsed target URL.
pub(crate) struct Target {
    /// `host:port`, as given (IPv6 in brackets).
    pub(crate) authority: String,
    /// Query string of the target (without `?`), appended to the Engine.IO query.
    pub(crate) query: String,
}

impl Target {
    /// The host part of the authority (an IPv6 literal keeps its brackets).
    pub(crate) fn host(&self) -> &str {
        match self.authority.strip_prefix('[') {
            Some(v6) => &self.authority[..v6.find(']').map_or(self.authority.len(), |i| i + 2)],
            None => self
                .authority
                .rsplit_once(':')
                .map_or(&*self.authority, |(h, _)| h),
        }
    }
}

impl Target {
    pub(crate) fn parse(target: &str) -> Result<Target, ConnectError> {
        let t = target.trim();
        let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
        let rest = if lower.starts_with("ws://") {
            &t[5..]
        } else if lower.starts_with("http://") {
            &t[7..]
        } else if lower.starts_with("https://") || lower.starts_with("wss://") {
            return Err(ConnectError::BadTarget(format!(
                "{target}: TLS (https/wss) is not supported"
            )));
        } else if t.contains("://") {
            return Err(ConnectError::BadTarget(format!(
                "{target}: expected an http:// or ws:// URL"
            )));
        } else {
            t
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(ConnectError::BadTarget(format!("{target}: no host")));
        }
        let (path, query) = match tail.find('?') {
            Some(q) => (&tail[..q], &tail[q + 1..]),
            None => (tail, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(ConnectError::BadTarget(format!(
                "{target}: the target is a base URL; set the Engine.IO path in ClientConfig::path"
            )));
        }
        // Default port 80 when none is given (IPv6 literals are bracketed).
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.find(']').is_some_and(|i| v6[i + 1..].starts_with(':')),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            authority,
            query: query.to_owned(),
        })
    }
}

pub(crate) fn ws_config() -> WebSocketConfig {
    let ceiling = usize::try_from(FRAME_CEILING).unwrap_or(usize::MAX);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(0)
        .max_frame_size(Some(ceiling))
        .max_message_size(Some(ceiling))
}

/// How the client fails a connection on a websocket error of the server's making (a frame
/// over `cap`, invalid UTF-8, another protocol violation); `None` for the other errors.
pub(crate) fn failed_by_client(e: &tungstenite::Error, cap: u64) -> Option<super::CloseReason> {
    use super::CloseReason;
    use tungstenite::error::{CapacityError, ProtocolError as WsProto};
    match e {
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, .. }) => {
            Some(CloseReason::FrameTooBig {
                size: *size as u64,
                max: cap,
            })
        }
        tungstenite::Error::Utf8(e) => Some(CloseReason::InvalidUtf8(excerpt(e))),
        tungstenite::Error::Protocol(WsProto::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(p) => Some(CloseReason::WebSocketProtocol(p.to_string())),
        _ => None,
    }
}

/// The size of a data frame, for the cap check (control frames are small by protocol).
pub(crate) fn data_len(msg: &Message) -> u64 {
    match msg {
        Message::Text(t) => t.len() as u64,
        Message::Binary(b) => b.len() as u64,
        _ => 0,
    }
}

pub(crate) async fn tcp_connect(
    authority: &str,
    local: Option<IpAddr>,
) -> Result<TcpStream, ConnectError> {
    let addrs = tokio::net::lookup_host(authority)
        .await
        .map_err(ConnectError::Tcp)?;
    let mut last_err = None;
    for addr in addrs {
        if let Some(l) = local {
            if l.is_ipv4() != addr.is_ipv4() {
                continue;
            }
        }
        match tcp_connect_one(addr, local).await {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some(e),
        }
    }
    Err(ConnectError::Tcp(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{authority}: no address of the local address' family"),
        )
    })))
}

async fn tcp_connect_one(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(l) = local {
        sock.bind(SocketAddr::new(l, 0))?;
    } else {
        spread_loopback_source(&sock, addr)?;
    }
    sock.set_nodelay(true)?;
    sock.connect(addr).await
}

/// Source addresses a loopback connection is spread over (see [`spread_loopback_source`]).
const LOOPBACK_SOURCES: u32 = 8;

/// Without a `local_addr`, connections to an IPv4 loopback target take their source address in
/// turn from 127.0.0.1..=127.0.0.8 (the port is still chosen by `connect`, as
/// `IP_BIND_ADDRESS_NO_PORT` asks). From one source address Linux gives `connect` the even
/// half of the ephemeral ports first (about 14,000 here) and, past it, scans all of them
/// before each connect: a driver holding 19,000 clients then stalls for seconds.
fn spread_loopback_source(sock: &TcpSocket, target: SocketAddr) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let IpAddr::V4(ip) = target.ip() {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if ip.is_loopback() {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % LOOPBACK_SOURCES;
            let one: libc::c_int = 1;
            // SAFETY: a valid socket and a c_int option value of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Ok(());
            }
            let source = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::LOCALHOST) + n);
            sock.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (sock, target);
    Ok(())
}

pub(crate) fn handshake_error(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_deref()
                .map(|b| excerpt(&String::from_utf8_lossy(b)))
                .unwrap_or_default();
            if body.is_empty() {
                ConnectError::Handshake(format!("HTTP {status}"))
            } else {
                ConnectError::Handshake(format!("HTTP {status}: {body:?}"))
            }
        }
        other => ConnectError::Handshake(other.to_string()),
    }
}

/// A short description of an unexpected frame for error messages.
pub(crate) fn describe(msg: &Message) -> String {
    match msg {
        Message::Text(t) => format!("text frame {:?}", excerpt(t)),
        Message::Binary(b) => format!("binary frame of {} bytes", b.len()),
        Message::Close(Some(c)) => format!("websocket close frame (code {})", u16::from(c.code)),
        Message::Close(None) => "websocket close frame".to_owned(),
        Message::Ping(_) => "websocket ping".to_owned(),
        Message::Pong(_) => "websocket pong".to_owned(),
        Message::Frame(_) => "raw frame".to_owned(),
    }
}

pub(crate) fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
/// TCP connect to `target` (from `local` when given) and the websocket handshake for `path`
/// plus `query` (without `?`, may be empty), with the 4 KiB read buffer and no write buffer.
pub(crate) async fn open_websocket(
    target: &Target,
    path: &str,
    query: &str,
    local: Option<IpAddr>,
) -> Result<WebSocketStream<TcpStream>, ConnectError> {
    let mut url = format!("ws://{}{}", target.authority, path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let stream = tcp_connect(&target.authority, local).await?;
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
            .await
            .map_err(handshake_error)?;
    Ok(ws)
}

/// `path` with a leading `/`.
pub(crate) fn absolute_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// Abrupt end of a TCP connection: SO_LINGER=0, so dropping the socket sends a TCP RST (no
/// close frame, as when a process is killed).
pub(crate) fn reset_on_drop(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<(String, String), String> {
        Target::parse(t)
            .map(|t| (t.authority, t.query))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn target_parsing() {
        assert_eq!(
            parse("http://127.0.0.1:3000").unwrap(),
            ("127.0.0.1:3000".into(), "".into())
        );
        assert_eq!(
            parse("ws://localhost:3000/").unwrap(),
            ("localhost:3000".into(), "".into())
        );
        assert_eq!(
            parse("HTTP://h:1/?token=a&b=c").unwrap(),
            ("h:1".into(), "token=a&b=c".into())
        );
        assert_eq!(parse("h:2?x=1").unwrap(), ("h:2".into(), "x=1".into()));
        assert_eq!(parse("http://h").unwrap(), ("h:80".into(), "".into()));
        assert_eq!(
            parse("http://[::1]:3000").unwrap(),
            ("[::1]:3000".into(), "".into())
        );
        assert_eq!(
            parse("http://[::1]").unwrap(),
            ("[::1]:80".into(), "".into())
        );
        assert!(parse("https://h:1").unwrap_err().contains("TLS"));
        assert!(parse("wss://h:1").is_err());
        assert!(parse("ftp://h:1").is_err());
        assert!(parse("http://h:1/socket.io/").is_err());
        assert!(parse("http://").is_err());
    }
}
