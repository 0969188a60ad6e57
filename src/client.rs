//! The driver's Socket.IO client: Engine.IO v3 or v4 over the websocket transport only.
//!
//! One [`Connection`] is one websocket: no background task, no channel. Everything happens
//! inside the caller's task when it calls [`Connection::recv`], [`Connection::emit`] and
//! friends, so 10,000+ idle connections cost little more than their socket buffers (the
//! websocket layer is configured with a 4 KiB read buffer and no write buffer).
//!
//! Heartbeats are handled inside [`Connection::recv`]:
//!
//! - Engine.IO v4 (socket.io 3/4): the server pings (`2`), `recv` answers `3` unless the
//!   heartbeat is [`Heartbeat::Dropped`]. While the heartbeat is normal, a server that sends no
//!   ping for `pingInterval + pingTimeout` is reported as [`CloseReason::HeartbeatTimeout`]
//!   (as socket.io-client does).
//! - Engine.IO v3 (socket.io 1/2): `recv` sends a ping `pingInterval` after the session opened
//!   and `pingInterval` after each pong; a server that, once pinged, stays silent for
//!   `pingTimeout` (`pingInterval + pingTimeout` after its last packet, as engine.io-client 3
//!   counts any packet) is reported as [`CloseReason::HeartbeatTimeout`]. Dropped stops sending
//!   pings.
//!
//! **`recv` must be polled regularly** (typically in a `tokio::select!` loop) for heartbeats to
//! work; it is cancel-safe.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{
    self,
    protocol::{frame::coding::CloseCode, CloseFrame, WebSocketConfig},
    Message, Utf8Bytes,
};
use tokio_tungstenite::WebSocketStream;

use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, SioPacket};
use crate::protocol::{excerpt, EioVersion, ProtocolError};

/// Websocket read buffer per connection (tungstenite's default is 128 KiB).
pub const READ_BUFFER_SIZE: usize = 4096;

/// How to open a [`Connection`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub eio: EioVersion,
    /// Socket.IO namespace, `/` by default.
    pub namespace: String,
    /// HTTP path of the Engine.IO endpoint, `/socket.io/` by default.
    pub path: String,
    /// Bound on the whole connect (TCP, websocket handshake, OPEN, namespace CONNECT).
    pub connect_timeout: Duration,
    /// Bind the TCP socket to this source address (e.g. 127.0.0.2) before connecting, to get
    /// past the ~28k ephemeral ports of one source address.
    pub local_addr: Option<IpAddr>,
    /// Engine.IO v4 only: the CONNECT payload (`40{…}`), socket.io's `auth` option.
    /// Socket.IO v2 has no CONNECT payload; pass credentials in the target URL's query instead.
    pub auth: Option<Value>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            eio: EioVersion::V4,
            namespace: "/".to_owned(),
            path: "/socket.io/".to_owned(),
            connect_timeout: Duration::from_secs(10),
            local_addr: None,
            auth: None,
        }
    }
}

/// Whether the client keeps its side of the Engine.IO heartbeat.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Heartbeat {
    Normal,
    /// EIO4: stop answering server pings (and stop watching for server silence).
    /// EIO3: stop sending pings (a ping already sent still expects its pong).
    Dropped,
}

/// What [`Connection::recv`] delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A server event; `ack` is set when the server expects an acknowledgement
    /// (answer with [`Connection::ack`]).
    Event {
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    },
    /// The server acknowledged one of our [`Connection::emit_with_ack`] events.
    Ack { ack: u64, args: Vec<Value> },
    /// The server ended the session or the transport; `reason` says how (socket.io disconnect
    /// packet, engine.io close, websocket close frame with code, TCP EOF/reset, ping timeout
    /// detected by the client). After this, `recv` and `emit` return [`ClientError::Closed`].
    Closed(CloseReason),
}

/// A server event whose arguments are still JSON text, held in the received frame without a
/// copy (see [`Connection::poll_recv_raw`]): a caller that judges thousands of events per
/// second parses only what it needs, borrowing from the frame.
#[derive(Debug, Clone)]
pub struct RawEvent {
    frame: Utf8Bytes,
    args_at: usize,
    /// Set when the server expects an acknowledgement.
    pub ack: Option<u64>,
}

impl RawEvent {
    /// The event's JSON array text `[name, args…]`, unparsed.
    pub fn args(&self) -> &str {
        &self.frame.as_str()[self.args_at..]
    }

    /// The event as [`Connection::recv`] delivers it (`Err(Protocol)` for malformed
    /// arguments).
    pub fn parse(&self) -> Result<Incoming, ClientError> {
        socketio::parse_event_args(self.args())
            .map(|(name, args)| Incoming::Event {
                name,
                args,
                ack: self.ack,
            })
            .map_err(ClientError::from)
    }
}

/// What [`Connection::poll_recv_raw`] delivers: an event left unparsed, or anything else as
/// [`Connection::recv`] gives it.
#[derive(Debug, Clone)]
pub enum RawIncoming {
    Event(RawEvent),
    Other(Incoming),
}

/// How a session ended (see [`Incoming::Closed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Socket.IO DISCONNECT (`41`) for our namespace.
    ServerDisconnect,
    /// Engine.IO CLOSE (`1`).
    EngineClose,
    /// Websocket close frame, with its status code if it had one.
    WebSocketClose(Option<u16>),
    /// TCP connection closed without a websocket close frame.
    Eof,
    /// TCP reset or another transport error.
    Reset(String),
    /// The client saw no heartbeat from the server in time (EIO3: pinged server silent for
    /// pingTimeout; EIO4: no ping within pingInterval + pingTimeout).
    HeartbeatTimeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ServerDisconnect => f.write_str("server sent a Socket.IO disconnect"),
            CloseReason::EngineClose => f.write_str("server sent an Engine.IO close"),
            CloseReason::WebSocketClose(Some(c)) => write!(f, "websocket closed with code {c}"),
            CloseReason::WebSocketClose(None) => f.write_str("websocket closed without code"),
            CloseReason::Eof => f.write_str("connection closed (EOF)"),
            CloseReason::Reset(e) => write!(f, "connection reset: {e}"),
            CloseReason::HeartbeatTimeout => f.write_str("heartbeat timeout (detected by client)"),
        }
    }
}

/// Why [`Connection::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection failed (refused, unreachable, bind failure).
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] io::Error),
    #[error("connect timed out")]
    Timeout,
    /// The websocket handshake failed (e.g. HTTP 404: not a socket.io endpoint).
    #[error("websocket handshake failed: {0}")]
    Handshake(String),
    /// The websocket works but its first frame is not an Engine.IO OPEN packet.
    #[error("not an Engine.IO server: {0}")]
    NotEngineIo(String),
    /// The server answered the namespace CONNECT with CONNECT_ERROR (`44…`).
    #[error("namespace connection refused: {0}")]
    Refused(String),
    /// The server closed the session before confirming the namespace.
    #[error("server closed the session before the namespace was connected: {0}")]
    Closed(String),
    #[error("protocol error while connecting: {0}")]
    Protocol(#[from] ProtocolError),
    /// The target URL is not usable (e.g. `https://`: TLS is not supported).
    #[error("bad target URL: {0}")]
    BadTarget(String),
}

/// Error from [`Connection::recv`] / [`Connection::emit`].
///
/// `Protocol` concerns one received frame only: the connection stays usable. After `Io` or
/// `Closed` the connection is finished.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error: {0}")]
    Io(String),
    #[error("connection closed")]
    Closed,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Heartbeat counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatStats {
    /// Engine.IO pings received from the server (EIO4).
    pub pings_received: u32,
    /// Engine.IO pings sent by the client (EIO3).
    pub pings_sent: u32,
    /// Engine.IO pongs sent by the client (EIO4).
    pub pongs_sent: u32,
    /// Engine.IO pongs received from the server (EIO3).
    pub pongs_received: u32,
}

/// The client's own heartbeat history, all times taken *before* the write, so a server
/// cannot have seen any of it earlier: the basis of the window in which the server may close a
/// client whose heartbeat stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatMarks {
    /// Before the TCP connect: the server's session (and its heartbeat timers) began later.
    pub connect_started: Instant,
    /// The last frame of any kind written (EIO 3 servers such as Node's engine.io 3 count any
    /// packet as a sign of life).
    pub last_sent: Instant,
    /// EIO 3: the last ping written.
    pub last_ping_sent: Option<Instant>,
    /// EIO 4: the last pong written.
    pub last_pong_sent: Option<Instant>,
    /// EIO 4: server pings answered.
    pub pongs_sent: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// EIO3: time to send a ping.
    Ping,
    /// No heartbeat from the server in time.
    Timeout,
}

/// One Socket.IO client connection (one websocket, one namespace).
pub struct Connection {
    ws: WebSocketStream<TcpStream>,
    /// The single heartbeat timer, re-armed in place.
    timer: Pin<Box<Sleep>>,
    sid: Box<str>,
    socket_id: Option<Box<str>>,
    ns: Box<str>,
    /// EIO3: when the next ping is due (None while a pong is awaited).
    /// EIO4: the server-silence deadline (last ping + interval + timeout).
    hb_at: Option<Instant>,
    /// EIO3: a ping is outstanding and its pong must arrive by then.
    pong_deadline: Option<Instant>,
    /// When and what the client wrote, for judging when a server may close a silent client
    /// (see [`HeartbeatMarks`]).
    connect_started: Instant,
    last_sent: Instant,
    last_ping_sent: Option<Instant>,
    last_pong_sent: Option<Instant>,
    next_ack: u64,
    ping_interval_ms: u32,
    ping_timeout_ms: u32,
    stats: HeartbeatStats,
    eio: EioVersion,
    heartbeat: Heartbeat,
    closed: bool,
    /// Control frames (pong/ping) were queued and may not be fully written yet.
    needs_flush: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("sid", &self.sid)
            .field("socket_id", &self.socket_id)
            .field("ns", &self.ns)
            .field("eio", &self.eio)
            .field("heartbeat", &self.heartbeat)
            .field("closed", &self.closed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Parsed target URL.
struct Target {
    /// `host:port`, as given (IPv6 in brackets).
    authority: String,
    /// Query string of the target (without `?`), appended to the Engine.IO query.
    query: String,
}

impl Target {
    fn parse(target: &str) -> Result<Target, ConnectError> {
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

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(0)
}

fn normalize_ns(ns: &str) -> Result<Box<str>, ConnectError> {
    let ns = ns.trim();
    if ns.is_empty() || ns == "/" {
        Ok("/".into())
    } else if ns.starts_with('/') && !ns.contains(',') {
        Ok(ns.into())
    } else {
        Err(ConnectError::BadTarget(format!(
            "namespace {ns:?} must start with '/' and contain no ','"
        )))
    }
}

async fn tcp_connect(authority: &str, local: Option<IpAddr>) -> Result<TcpStream, ConnectError> {
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

fn handshake_error(e: tungstenite::Error) -> ConnectError {
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
fn describe(msg: &Message) -> String {
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

/// The human-readable reason of a CONNECT_ERROR payload.
fn refusal_message(data: &str) -> String {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(m)) => match (m.get("message"), m.get("data")) {
            (Some(Value::String(s)), Some(d)) => format!("{s} (data: {d})"),
            (Some(Value::String(s)), None) => s.clone(),
            _ => excerpt(data),
        },
        _ if data.is_empty() => "(no reason given)".to_owned(),
        _ => excerpt(data),
    }
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// TCP connect, websocket handshake asking for Engine.IO `eio`, and the server's OPEN packet.
/// Shared by [`Connection::connect`] and the generation probe, which reads what follows the
/// OPEN itself.
pub(crate) async fn open_session(
    target: &str,
    cfg: &ClientConfig,
    eio: EioVersion,
) -> Result<(WebSocketStream<TcpStream>, engineio::OpenInfo), ConnectError> {
    let target = Target::parse(target)?;
    let path = if cfg.path.starts_with('/') {
        cfg.path.clone()
    } else {
        format!("/{}", cfg.path)
    };
    let mut url = format!(
        "ws://{}{}?EIO={}&transport=websocket",
        target.authority, path, eio
    );
    if !target.query.is_empty() {
        url.push('&');
        url.push_str(&target.query);
    }

    let stream = tcp_connect(&target.authority, cfg.local_addr).await?;
    let (mut ws, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
            .await
            .map_err(handshake_error)?;

    let open = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match engineio::decode(&t) {
                Ok(EioPacket::Open(info)) => break info,
                Ok(_) => {
                    return Err(ConnectError::NotEngineIo(format!(
                        "first frame is not an Engine.IO OPEN packet: {:?}",
                        excerpt(&t)
                    )))
                }
                Err(e) => return Err(ConnectError::NotEngineIo(e.to_string())),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(other)) => {
                return Err(ConnectError::NotEngineIo(format!(
                    "first frame is a {}",
                    describe(&other)
                )))
            }
            Some(Err(e)) => {
                return Err(ConnectError::NotEngineIo(format!(
                    "connection failed before the Engine.IO OPEN packet: {e}"
                )))
            }
            None => {
                return Err(ConnectError::NotEngineIo(
                    "connection closed before the Engine.IO OPEN packet".to_owned(),
                ))
            }
        }
    };
    Ok((ws, open))
}

impl Connection {
    /// TCP connect (optional bind to `local_addr`, TCP_NODELAY), websocket handshake with small
    /// buffers, read the Engine.IO OPEN, connect the Socket.IO namespace (send `40` where the
    /// protocol version requires it; wait for the server's CONNECT), all within
    /// `connect_timeout`.
    ///
    /// `target` is a base URL such as `http://127.0.0.1:3000` or `ws://host:port`; a query
    /// string on it (`http://h:3000/?token=x`) is passed on in the handshake request.
    pub async fn connect(target: &str, cfg: &ClientConfig) -> Result<Connection, ConnectError> {
        match tokio::time::timeout(cfg.connect_timeout, Self::connect_inner(target, cfg)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    async fn connect_inner(target: &str, cfg: &ClientConfig) -> Result<Connection, ConnectError> {
        let connect_started = Instant::now();
        let ns = normalize_ns(&cfg.namespace)?;
        let (ws, open) = open_session(target, cfg, cfg.eio).await?;
        let opened_at = Instant::now();

        let mut conn = Connection {
            ws,
            timer: Box::pin(tokio::time::sleep_until(
                opened_at + Duration::from_secs(86_400),
            )),
            sid: open.sid.into(),
            socket_id: None,
            ns,
            hb_at: None,
            pong_deadline: None,
            connect_started,
            last_sent: connect_started,
            last_ping_sent: None,
            last_pong_sent: None,
            next_ack: 0,
            ping_interval_ms: millis_u32(open.ping_interval),
            ping_timeout_ms: millis_u32(open.ping_timeout),
            stats: HeartbeatStats::default(),
            eio: cfg.eio,
            heartbeat: Heartbeat::Normal,
            closed: false,
            needs_flush: false,
        };
        conn.join_namespace(cfg.auth.as_ref()).await?;
        conn.hb_at = Some(match conn.eio {
            EioVersion::V3 => opened_at + conn.ping_interval(),
            EioVersion::V4 => Instant::now() + conn.ping_interval() + conn.ping_timeout(),
        });
        Ok(conn)
    }

    /// Sends the namespace CONNECT where needed and waits for the server's CONNECT.
    async fn join_namespace(&mut self, auth: Option<&Value>) -> Result<(), ConnectError> {
        let send_connect = match self.eio {
            EioVersion::V4 => true,
            // socket.io 2 connects "/" by itself; a second "40" would make a Node v2 server
            // create a second socket. Other namespaces are requested with "40/ns,".
            EioVersion::V3 => &*self.ns != "/",
        };
        if send_connect {
            let auth = if self.eio == EioVersion::V4 {
                auth
            } else {
                None
            };
            let frame = socketio::encode_connect(&self.ns, auth);
            self.ws
                .send(Message::text(frame))
                .await
                .map_err(|e| ConnectError::Closed(format!("sending CONNECT failed: {e}")))?;
            self.last_sent = Instant::now();
        }
        loop {
            let msg = match self.ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(ConnectError::Closed(e.to_string())),
                None => return Err(ConnectError::Closed("connection closed".to_owned())),
            };
            let text = match msg {
                Message::Text(t) => t,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                other => {
                    return Err(ConnectError::Closed(format!(
                        "received a {}",
                        describe(&other)
                    )))
                }
            };
            match engineio::decode(&text)? {
                EioPacket::Ping(_) => {
                    self.stats.pings_received += 1;
                    if self.heartbeat == Heartbeat::Normal {
                        self.ws
                            .send(Message::Text(Utf8Bytes::from_static(engineio::PONG)))
                            .await
                            .map_err(|e| {
                                ConnectError::Closed(format!("sending pong failed: {e}"))
                            })?;
                        self.stats.pongs_sent += 1;
                        self.last_pong_sent = Some(Instant::now());
                        self.last_sent = Instant::now();
                    }
                }
                EioPacket::Pong(_) => self.stats.pongs_received += 1,
                EioPacket::Noop | EioPacket::Upgrade => {}
                EioPacket::Close => {
                    return Err(ConnectError::Closed("Engine.IO CLOSE packet".to_owned()))
                }
                EioPacket::Open(_) => {
                    return Err(ConnectError::Protocol(ProtocolError::malformed(
                        "Engine.IO OPEN packet",
                        "second OPEN packet",
                        &text,
                    )))
                }
                EioPacket::Message(m) => {
                    let p = socketio::decode(m)?;
                    let ours = p.ns() == &*self.ns;
                    match p {
                        SioPacket::Connect { data, .. } if ours => {
                            self.socket_id = data.and_then(|d| {
                                #[derive(serde::Deserialize)]
                                struct ConnectData {
                                    sid: Option<String>,
                                }
                                serde_json::from_str::<ConnectData>(d)
                                    .ok()
                                    .and_then(|c| c.sid)
                                    .map(String::into_boxed_str)
                            });
                            return Ok(());
                        }
                        // In socket.io 2, "/" is implicit: refusing it refuses every namespace.
                        SioPacket::ConnectError { ns, data }
                            if ours || (self.eio == EioVersion::V3 && ns == "/") =>
                        {
                            return Err(ConnectError::Refused(refusal_message(data)));
                        }
                        SioPacket::Disconnect { .. } if ours => {
                            return Err(ConnectError::Closed(
                                "Socket.IO DISCONNECT packet".to_owned(),
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Socket.IO socket id from the server's CONNECT (EIO4); `None` for EIO3.
    pub fn socket_id(&self) -> Option<&str> {
        self.socket_id.as_deref()
    }

    pub fn eio(&self) -> EioVersion {
        self.eio
    }

    /// The connected namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.ping_interval_ms))
    }

    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.ping_timeout_ms))
    }

    /// Local socket address of the TCP connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ws.get_ref().local_addr()
    }

    /// `Dropped`: EIO4 stops answering server pings; EIO3 stops sending pings. `Normal` resumes
    /// (EIO3: an overdue ping is sent at the next `recv`).
    pub fn set_heartbeat(&mut self, hb: Heartbeat) {
        if hb == self.heartbeat {
            return;
        }
        self.heartbeat = hb;
        if hb == Heartbeat::Normal && self.eio == EioVersion::V4 {
            // Silence detection restarts from now: pings were ignored meanwhile.
            self.hb_at = Some(Instant::now() + self.ping_interval() + self.ping_timeout());
        }
    }

    pub fn heartbeat(&self) -> Heartbeat {
        self.heartbeat
    }

    /// Counters for tests/diagnostics.
    pub fn heartbeat_stats(&self) -> HeartbeatStats {
        self.stats
    }

    /// What the client did that bounds when the server may close it for a dead heartbeat.
    pub fn heartbeat_marks(&self) -> HeartbeatMarks {
        HeartbeatMarks {
            connect_started: self.connect_started,
            last_sent: self.last_sent,
            last_ping_sent: self.last_ping_sent,
            last_pong_sent: self.last_pong_sent,
            pongs_sent: self.stats.pongs_sent,
        }
    }

    /// True once `recv` has reported `Closed` (or a fatal error).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends one event now (awaits the socket write). Returns when written to the kernel.
    pub async fn emit(&mut self, event: &str, args: &[Value]) -> Result<(), ClientError> {
        let frame = socketio::encode_event(&self.ns, event, args);
        self.send_text(frame).await
    }

    /// Sends one event that asks for an acknowledgement; returns the ack id that the matching
    /// [`Incoming::Ack`] will carry.
    pub async fn emit_with_ack(&mut self, event: &str, args: &[Value]) -> Result<u64, ClientError> {
        let id = self.next_ack;
        self.next_ack += 1;
        let frame = socketio::encode_event_with_ack(&self.ns, Some(id), event, args);
        self.send_text(frame).await?;
        Ok(id)
    }

    /// Acknowledges a server event that carried `ack`.
    pub async fn ack(&mut self, ack: u64, args: &[Value]) -> Result<(), ClientError> {
        let frame = socketio::encode_ack(&self.ns, ack, args);
        self.send_text(frame).await
    }

    /// Sends a pre-encoded whole text frame (also used by tests to send malformed frames).
    pub async fn emit_raw(&mut self, frame: String) -> Result<(), ClientError> {
        self.send_text(frame).await
    }

    async fn send_text(&mut self, frame: String) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        // Stamped before the write: a server cannot have received it earlier.
        self.last_sent = Instant::now();
        match self.ws.send(Message::text(frame)).await {
            Ok(()) => {
                // `send` flushes everything, queued control frames included.
                self.needs_flush = false;
                Ok(())
            }
            Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing),
            ) => Err(ClientError::Closed),
            Err(e) => Err(ClientError::Io(e.to_string())),
        }
    }

    /// Next application-level item. Handles heartbeats internally and ignores NOOPs.
    ///
    /// Cancel-safe: all state lives in `self`, a frame is never lost if the future is dropped.
    /// `Err(Protocol)` concerns one frame; the connection remains usable.
    pub async fn recv(&mut self) -> Result<Incoming, ClientError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv), for callers that drive many connections by hand.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, ClientError>> {
        self.poll_recv_raw(cx).map(|r| match r? {
            RawIncoming::Event(e) => e.parse(),
            RawIncoming::Other(i) => Ok(i),
        })
    }

    /// [`recv`](Self::recv) without parsing event arguments: an event comes as a [`RawEvent`]
    /// holding the received frame. Same heartbeat handling and cancel safety.
    pub async fn recv_raw(&mut self) -> Result<RawIncoming, ClientError> {
        poll_fn(|cx| self.poll_recv_raw(cx)).await
    }

    /// Poll form of [`recv_raw`](Self::recv_raw).
    pub fn poll_recv_raw(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RawIncoming, ClientError>> {
        loop {
            if self.closed {
                return Poll::Ready(Err(ClientError::Closed));
            }
            if self.needs_flush {
                match Pin::new(&mut self.ws).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    // The read side reports what went wrong.
                    Poll::Ready(Err(_)) => self.needs_flush = false,
                    Poll::Pending => {}
                }
            }

            let mut timed_out = false;
            if let Some((deadline, kind)) = self.timer_deadline() {
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    match kind {
                        TimerKind::Ping => {
                            self.send_ping();
                            continue;
                        }
                        // Judged only once everything readable has been read.
                        TimerKind::Timeout => timed_out = true,
                    }
                }
            }

            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if self.pong_deadline.is_some() {
                        // EIO3, as engine.io-client 3: while a pong is awaited, any packet
                        // proves the server alive for another interval + timeout (a pong
                        // queued behind a flood of events is late but not lost).
                        let alive = Instant::now() + self.ping_interval() + self.ping_timeout();
                        self.pong_deadline = self.pong_deadline.max(Some(alive));
                    }
                    if let Some(out) = self.on_message(msg) {
                        if matches!(
                            out,
                            Ok(RawIncoming::Other(Incoming::Closed(
                                CloseReason::WebSocketClose(_)
                            )))
                        ) {
                            // Best effort: push out tungstenite's close reply.
                            let _ = Pin::new(&mut self.ws).poll_flush(cx);
                        }
                        return Poll::Ready(out);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(self.on_ws_error(e).map(RawIncoming::Other))
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Ok(RawIncoming::Other(self.finish(CloseReason::Eof))))
                }
                Poll::Pending => {
                    // A Pending caused by an exhausted coop budget says nothing about the
                    // socket: the task is woken again and the check repeats.
                    if timed_out && tokio::task::coop::has_budget_remaining() {
                        return Poll::Ready(Ok(RawIncoming::Other(
                            self.finish(CloseReason::HeartbeatTimeout),
                        )));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn timer_deadline(&self) -> Option<(Instant, TimerKind)> {
        match self.eio {
            EioVersion::V3 => match self.pong_deadline {
                Some(d) => Some((d, TimerKind::Timeout)),
                None if self.heartbeat == Heartbeat::Normal => {
                    self.hb_at.map(|d| (d, TimerKind::Ping))
                }
                None => None,
            },
            EioVersion::V4 if self.heartbeat == Heartbeat::Normal => {
                self.hb_at.map(|d| (d, TimerKind::Timeout))
            }
            EioVersion::V4 => None,
        }
    }

    fn finish(&mut self, reason: CloseReason) -> Incoming {
        self.closed = true;
        Incoming::Closed(reason)
    }

    /// Queues a control frame without waiting; `poll_recv` flushes it.
    fn queue_control(&mut self, text: &'static str) -> Instant {
        let now = Instant::now();
        if Pin::new(&mut self.ws)
            .start_send(Message::Text(Utf8Bytes::from_static(text)))
            .is_ok()
        {
            self.needs_flush = true;
            self.last_sent = now;
        }
        now
    }

    fn send_ping(&mut self) {
        let now = self.queue_control(engineio::PING);
        self.last_ping_sent = Some(now);
        self.stats.pings_sent += 1;
        self.hb_at = None;
        self.pong_deadline = Some(now + self.ping_timeout());
    }

    fn on_ws_error(&mut self, e: tungstenite::Error) -> Result<Incoming, ClientError> {
        use tungstenite::error::ProtocolError as WsProto;
        self.closed = true;
        match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Ok(Incoming::Closed(CloseReason::Eof))
            }
            tungstenite::Error::Protocol(WsProto::ResetWithoutClosingHandshake) => {
                Ok(Incoming::Closed(CloseReason::Eof))
            }
            tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                Ok(Incoming::Closed(CloseReason::Eof))
            }
            tungstenite::Error::Io(io) => Ok(Incoming::Closed(CloseReason::Reset(io.to_string()))),
            other => Err(ClientError::Io(other.to_string())),
        }
    }

    fn on_message(&mut self, msg: Message) -> Option<Result<RawIncoming, ClientError>> {
        let other = |r: Result<Incoming, ClientError>| Some(r.map(RawIncoming::Other));
        match msg {
            Message::Text(t) => self.on_text(t),
            Message::Binary(b) => other(Err(ClientError::Protocol(ProtocolError::Unsupported {
                what: "binary websocket frame (Socket.IO binary attachment)",
                excerpt: format!("{} bytes", b.len()),
            }))),
            Message::Close(frame) => other(Ok(self.finish(CloseReason::WebSocketClose(
                frame.map(|f| u16::from(f.code)),
            )))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    fn on_text(&mut self, frame: Utf8Bytes) -> Option<Result<RawIncoming, ClientError>> {
        let text = frame.as_str();
        let packet = match engineio::decode(text) {
            Ok(p) => p,
            Err(e) => return Some(Err(e.into())),
        };
        let out = match packet {
            EioPacket::Message(m) => match self.on_socketio(m)? {
                Ok(Ok(i)) => Ok(i),
                Ok(Err((ack, args))) => {
                    let args_at = args.as_ptr() as usize - text.as_ptr() as usize;
                    return Some(Ok(RawIncoming::Event(RawEvent {
                        frame,
                        args_at,
                        ack,
                    })));
                }
                Err(e) => Err(e),
            },
            EioPacket::Ping(_) => {
                self.stats.pings_received += 1;
                if self.eio == EioVersion::V4 {
                    self.hb_at = Some(Instant::now() + self.ping_interval() + self.ping_timeout());
                }
                if self.heartbeat == Heartbeat::Normal {
                    self.last_pong_sent = Some(self.queue_control(engineio::PONG));
                    self.stats.pongs_sent += 1;
                }
                return None;
            }
            EioPacket::Pong(_) => {
                self.stats.pongs_received += 1;
                if self.eio == EioVersion::V3 && self.pong_deadline.take().is_some() {
                    self.hb_at = Some(Instant::now() + self.ping_interval());
                }
                return None;
            }
            EioPacket::Close => Ok(self.finish(CloseReason::EngineClose)),
            EioPacket::Noop | EioPacket::Upgrade => return None,
            EioPacket::Open(_) => Err(ProtocolError::malformed(
                "Engine.IO OPEN packet",
                "unexpected OPEN in an open session",
                text,
            )
            .into()),
        };
        Some(out.map(RawIncoming::Other))
    }

    /// An event is handed back unparsed: `Ok(Err((ack, args text)))`.
    #[allow(clippy::type_complexity)]
    fn on_socketio<'m>(
        &mut self,
        m: &'m str,
    ) -> Option<Result<Result<Incoming, (Option<u64>, &'m str)>, ClientError>> {
        let packet = match socketio::decode(m) {
            Ok(p) => p,
            Err(e) => return Some(Err(e.into())),
        };
        if packet.ns() != &*self.ns {
            // Another namespace of the same session (e.g. "/" under socket.io 2): not ours.
            return None;
        }
        Some(match packet {
            SioPacket::Event { ack, args, .. } => Ok(Err((ack, args))),
            SioPacket::Ack { ack, args, .. } => socketio::parse_ack_args(args)
                .map(|args| Ok(Incoming::Ack { ack, args }))
                .map_err(ClientError::from),
            SioPacket::Disconnect { .. } => Ok(Ok(self.finish(CloseReason::ServerDisconnect))),
            // A repeated CONNECT confirmation is harmless.
            SioPacket::Connect { .. } => return None,
            SioPacket::ConnectError { .. } => Err(ProtocolError::malformed(
                "Socket.IO CONNECT_ERROR",
                "received after the namespace was connected",
                m,
            )
            .into()),
            SioPacket::BinaryEvent { .. } | SioPacket::BinaryAck { .. } => {
                Err(ProtocolError::Unsupported {
                    what: "Socket.IO binary packet",
                    excerpt: excerpt(m),
                }
                .into())
            }
        })
    }

    /// Clean disconnect: Socket.IO `41`, Engine.IO `1`, websocket close frame; waits at most
    /// 1 s for the close handshake.
    pub async fn close(mut self) {
        self.close_in_place().await;
    }

    /// [`close`](Self::close) for a connection that cannot be moved out of its owner. Afterwards
    /// the connection is closed (`recv`/`emit` return [`ClientError::Closed`]); drop it to
    /// release the socket. Does nothing if the connection was already closed.
    pub async fn close_in_place(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let ns_disconnect = socketio::encode_disconnect(&self.ns);
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(Duration::from_secs(1), async move {
            let _ = ws.feed(Message::text(ns_disconnect)).await;
            let _ = ws
                .feed(Message::Text(Utf8Bytes::from_static(engineio::CLOSE)))
                .await;
            let _ = ws
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: Utf8Bytes::from_static(""),
                })))
                .await;
            // Read until the server's close frame / EOF completes the handshake.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }

    /// Abrupt end: SO_LINGER=0 then drop, so the kernel sends a TCP RST (no close frame, as
    /// when a process is killed).
    pub fn vanish(self) {
        let _ = socket2::SockRef::from(self.ws.get_ref()).set_linger(Some(Duration::ZERO));
        drop(self);
    }
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

    #[test]
    fn namespaces() {
        assert_eq!(&*normalize_ns("").unwrap(), "/");
        assert_eq!(&*normalize_ns("/").unwrap(), "/");
        assert_eq!(&*normalize_ns("/chat").unwrap(), "/chat");
        assert!(normalize_ns("chat").is_err());
        assert!(normalize_ns("/a,b").is_err());
    }

    #[test]
    fn refusal_messages() {
        assert_eq!(refusal_message(r#"{"message":"nope"}"#), "nope");
        assert_eq!(
            refusal_message(r#"{"message":"nope","data":{"c":1}}"#),
            r#"nope (data: {"c":1})"#
        );
        assert_eq!(refusal_message(r#""Not authorized""#), "Not authorized");
        assert_eq!(refusal_message(""), "(no reason given)");
        assert_eq!(refusal_message("{bad"), "{bad");
    }

    #[test]
    fn connection_is_small() {
        let size = std::mem::size_of::<Connection>();
        assert!(size <= 512, "size_of::<Connection>() = {size}");
    }
}
