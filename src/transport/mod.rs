//! The client transport seam: what a virtual user needs from a connection, and the two ways of
//! providing it.
//!
//! - [`socketio`]: Engine.IO v3 or v4 over the websocket transport, any number of Socket.IO
//!   namespaces multiplexed on one Engine.IO connection (as real clients do).
//! - [`websocket`]: plain WebSocket whose frames are shaped by the dialect's [`Framing`] (event
//!   name read from a field, an envelope with ids, tokens, a timestamp and a signature, an
//!   application-level heartbeat).
//!
//! Both implement [`Transport`]; [`Client`] holds either, chosen at connect time. Neither runs a
//! background task: everything happens inside the caller's task when it polls
//! [`Transport::poll_recv_raw`] or sends, so 10,000+ idle connections cost little more than
//! their socket buffers (the websocket layer is configured with a 4 KiB read buffer and no
//! write buffer). **The receive side must be polled regularly** for heartbeats to work; it is
//! cancel-safe.
//!
//! What each scenario fault step means on each transport is in the README ("Client faults on
//! each transport").

use std::future::{poll_fn, Future};
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::protocol::{EioVersion, ProtocolError};

mod event;
pub mod framing;
pub(crate) mod net;
pub mod socketio;
pub mod websocket;

pub use event::{CloseReason, Incoming, OutFrame, RawEvent, RawIncoming};
pub use framing::{AppHeartbeat, Framing, JsonFraming};
// The fuzz targets build events as the transports do.
#[cfg(test)]
pub(crate) use event::{NameAt, SioAt};

/// Whether `target` is a URL a client can drive (http:// or ws://, a host, no path), with
/// the reason when it is not.
pub fn check_target(target: &str) -> Result<(), ConnectError> {
    net::Target::parse(target).map(|_| ())
}

/// WebSocket message bytes written and read by the connections that share it (a run's
/// clients): the payloads as the transport writes and reads them, without handshakes and frame
/// headers. One relaxed atomic add per frame.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: std::sync::atomic::AtomicU64,
    received: std::sync::atomic::AtomicU64,
}

impl Traffic {
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }
    pub(crate) fn received(&self, bytes: usize) {
        self.received
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }
    /// Bytes written so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Bytes read so far.
    pub fn bytes_received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A counter is no setting: configurations that differ only in where they count are equal.
impl PartialEq for Traffic {
    fn eq(&self, _: &Traffic) -> bool {
        true
    }
}

/// Websocket read buffer per connection (tungstenite's default is 128 KiB).
pub const READ_BUFFER_SIZE: usize = 4096;

/// The `maxPayload` a server is held to when it advertises none: 1,000,000 bytes, what
/// socket.io 3/4 (Engine.IO 4) advertise by default (their `maxHttpBufferSize`). socket.io 2
/// (Engine.IO 3) advertises nothing (its OPEN is `0{"sid","upgrades","pingInterval",
/// "pingTimeout"}`) and itself accepts up to 1e8 bytes, no bound for 10,000 clients; a plain
/// WebSocket dialect has no handshake to say it.
pub const DEFAULT_MAX_PAYLOAD: u64 = 1_000_000;

/// Room for the packet around a payload (`42/namespace,ack["event",…]`) in [`frame_cap`].
const FRAMING_MARGIN: u64 = 4096;

/// The largest frame any connection reads, whatever the server advertises: the cap of
/// [`DEFAULT_MAX_PAYLOAD`], about 2 MB. It is the websocket library's limit, set before the
/// server's OPEN can say more (the library's own default, 64 MiB, let 64 clients of a hostile
/// server reach 1.17 GB); a frame whose header announces more is refused before it is read.
pub const FRAME_CEILING: u64 = 2 * DEFAULT_MAX_PAYLOAD + FRAMING_MARGIN;

/// The largest frame a client takes from a server that advertised `max_payload` (Engine.IO
/// 4's `maxPayload`; `None`: [`DEFAULT_MAX_PAYLOAD`]): twice it, since a server relays a
/// client's payload of up to maxPayload inside an event with fields of its own, plus 4 KiB of
/// packet framing; never above [`FRAME_CEILING`]. A larger frame is the server's fault: the
/// client fails the connection ([`CloseReason::FrameTooBig`]).
pub fn frame_cap(max_payload: Option<u64>) -> u64 {
    max_payload
        .unwrap_or(DEFAULT_MAX_PAYLOAD)
        .saturating_mul(2)
        .saturating_add(FRAMING_MARGIN)
        .min(FRAME_CEILING)
}

/// How long one write may stay blocked before the client gives the connection up
/// ([`CloseReason::WriteBlocked`]): the server's pingInterval + pingTimeout (a server that
/// read nothing from a client for that long would have dropped it for a dead heartbeat), at
/// least a second (timer slack on a loaded machine). Without a heartbeat, 30 s.
pub fn write_bound(ping_interval: Duration, ping_timeout: Duration) -> Duration {
    let advertised = ping_interval + ping_timeout;
    if advertised.is_zero() {
        Duration::from_secs(30)
    } else {
        advertised.max(Duration::from_secs(1))
    }
}

/// Whether the client keeps its side of the heartbeat.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Heartbeat {
    Normal,
    /// EIO4: stop answering server pings (and stop watching for server silence).
    /// EIO3 and plain WebSocket: stop sending pings (a ping already sent still expects its
    /// answer).
    Dropped,
}

/// Why a connect failed.
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
    /// Plain WebSocket: the connection ended before the frames the framing waits for (e.g. the
    /// one handing out a token).
    #[error("connection ended before the server's opening frames: {0}")]
    NotReady(String),
    #[error("protocol error while connecting: {0}")]
    Protocol(#[from] ProtocolError),
    /// The target URL is not usable (e.g. `https://`: TLS is not supported).
    #[error("bad target URL: {0}")]
    BadTarget(String),
}

/// Error from receiving or sending.
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
    /// The client ended the connection itself because of what the server did (a write blocked
    /// past [`write_bound`], ...); the connection is finished.
    #[error("{0}")]
    Abandoned(CloseReason),
}

/// Heartbeat counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatStats {
    /// Engine.IO pings received from the server (EIO4).
    pub pings_received: u32,
    /// Pings sent by the client (EIO3; plain WebSocket: application heartbeat frames).
    pub pings_sent: u32,
    /// Engine.IO pongs sent by the client (EIO4).
    pub pongs_sent: u32,
    /// Pongs received from the server (EIO3; plain WebSocket: the heartbeat's answers).
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
    /// EIO 3 and plain WebSocket: the last ping written.
    pub last_ping_sent: Option<Instant>,
    /// EIO 4: the last pong written.
    pub last_pong_sent: Option<Instant>,
    /// EIO 4: server pings answered.
    pub pongs_sent: u32,
}

/// What a virtual user does with a connection, whatever carries it.
///
/// Construction differs per transport (see [`Client::connect`]); everything after it is here.
pub trait Transport: Send {
    /// Encodes an event for `ns` (`None`: the connection's first namespace; a plain WebSocket
    /// has no namespaces and ignores it).
    fn encode_event(&mut self, ns: Option<&str>, name: &str, args: &[Value]) -> OutFrame;

    /// Sends a whole text frame as given (an encoded event, or malformed input on purpose).
    /// Returns once written to the kernel; a write blocked past [`write_bound`] gives the
    /// connection up ([`ClientError::Abandoned`] with [`CloseReason::WriteBlocked`]).
    fn send_raw(&mut self, frame: String) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Encodes and sends one event.
    fn send_event(
        &mut self,
        ns: Option<&str>,
        name: &str,
        args: &[Value],
    ) -> impl Future<Output = Result<(), ClientError>> + Send {
        let frame = self.encode_event(ns, name, args);
        self.send_raw(frame.into_text())
    }

    /// The next event or close. Heartbeats are handled inside; an event is left unparsed.
    /// Cancel-safe: all state lives in the connection, a frame is never lost. `Err(Protocol)`
    /// concerns one frame; the connection remains usable.
    fn poll_recv_raw(&mut self, cx: &mut Context<'_>) -> Poll<Result<RawIncoming, ClientError>>;

    /// Future form of [`poll_recv_raw`](Self::poll_recv_raw).
    fn recv_raw(&mut self) -> impl Future<Output = Result<RawIncoming, ClientError>> + Send
    where
        Self: Sized,
    {
        poll_fn(move |cx| self.poll_recv_raw(cx))
    }

    /// Keeps or drops the client's side of the heartbeat (see [`Heartbeat`]).
    fn set_heartbeat(&mut self, hb: Heartbeat);
    fn heartbeat(&self) -> Heartbeat;
    fn heartbeat_stats(&self) -> HeartbeatStats;
    /// What the client did that bounds when the server may close it for a dead heartbeat.
    fn heartbeat_marks(&self) -> HeartbeatMarks;
    /// Which side pings, named by the Engine.IO generation with that rule (what
    /// [`crate::heartbeat`] judges by): `V4` the server pings and the client answers; `V3` the
    /// client pings, as a plain WebSocket's application heartbeat does.
    fn heartbeat_model(&self) -> EioVersion;
    /// The heartbeat interval: Engine.IO's advertised pingInterval; plain WebSocket, how often
    /// the client sends its heartbeat.
    fn ping_interval(&self) -> Duration;
    /// Engine.IO's advertised pingTimeout; plain WebSocket, how long past the interval the
    /// server waits before closing a silent client.
    fn ping_timeout(&self) -> Duration;
    /// The session id the server gave (Engine.IO sid; plain WebSocket: what the framing names
    /// the session by, e.g. a token from the first frame; empty if none).
    fn sid(&self) -> &str;
    /// The socket id of the first namespace (Socket.IO v4 CONNECT); `None` otherwise.
    fn socket_id(&self) -> Option<&str>;
    /// True once the receive side has reported `Closed` (or a fatal error), or after a close.
    fn is_closed(&self) -> bool;
    /// Clean disconnect (the transport's goodbye, then a websocket close frame); waits at most
    /// 1 s for the close handshake. Does nothing if already closed.
    fn close_in_place(&mut self) -> impl Future<Output = ()> + Send;
    /// Abrupt end: a TCP reset, no close frame (as when a process is killed).
    fn vanish(self)
    where
        Self: Sized;
}

/// How to open a [`Client`].
#[derive(Clone, Debug)]
pub enum TransportConfig {
    SocketIo(socketio::ClientConfig),
    WebSocket(websocket::Config),
}

/// A connection over either transport, chosen at connect time (the dialect says which).
#[derive(Debug)]
pub enum Client {
    SocketIo(socketio::Connection),
    WebSocket(websocket::Connection),
}

impl Client {
    /// Connects over the transport `cfg` names, within its connect timeout.
    pub async fn connect(target: &str, cfg: &TransportConfig) -> Result<Client, ConnectError> {
        match cfg {
            TransportConfig::SocketIo(c) => Self::socketio(target, c).await,
            TransportConfig::WebSocket(c) => websocket::Connection::connect(target, c)
                .await
                .map(Client::WebSocket),
        }
    }

    /// Connects over Socket.IO.
    pub async fn socketio(
        target: &str,
        cfg: &socketio::ClientConfig,
    ) -> Result<Client, ConnectError> {
        socketio::Connection::connect(target, cfg)
            .await
            .map(Client::SocketIo)
    }
}

/// Forwards a [`Transport`] method to whichever connection the [`Client`] holds.
macro_rules! each {
    ($self:expr, $c:ident => $e:expr) => {
        match $self {
            Client::SocketIo($c) => $e,
            Client::WebSocket($c) => $e,
        }
    };
}

impl Transport for Client {
    fn encode_event(&mut self, ns: Option<&str>, name: &str, args: &[Value]) -> OutFrame {
        each!(self, c => c.encode_event(ns, name, args))
    }

    async fn send_raw(&mut self, frame: String) -> Result<(), ClientError> {
        each!(self, c => Transport::send_raw(c, frame).await)
    }

    fn poll_recv_raw(&mut self, cx: &mut Context<'_>) -> Poll<Result<RawIncoming, ClientError>> {
        each!(self, c => Transport::poll_recv_raw(c, cx))
    }

    fn set_heartbeat(&mut self, hb: Heartbeat) {
        each!(self, c => Transport::set_heartbeat(c, hb))
    }

    fn heartbeat(&self) -> Heartbeat {
        each!(self, c => Transport::heartbeat(c))
    }

    fn heartbeat_stats(&self) -> HeartbeatStats {
        each!(self, c => Transport::heartbeat_stats(c))
    }

    fn heartbeat_marks(&self) -> HeartbeatMarks {
        each!(self, c => Transport::heartbeat_marks(c))
    }

    fn heartbeat_model(&self) -> EioVersion {
        each!(self, c => c.heartbeat_model())
    }

    fn ping_interval(&self) -> Duration {
        each!(self, c => Transport::ping_interval(c))
    }

    fn ping_timeout(&self) -> Duration {
        each!(self, c => Transport::ping_timeout(c))
    }

    fn sid(&self) -> &str {
        each!(self, c => Transport::sid(c))
    }

    fn socket_id(&self) -> Option<&str> {
        each!(self, c => Transport::socket_id(c))
    }

    fn is_closed(&self) -> bool {
        each!(self, c => Transport::is_closed(c))
    }

    async fn close_in_place(&mut self) {
        each!(self, c => Transport::close_in_place(c).await)
    }

    fn vanish(self) {
        each!(self, c => Transport::vanish(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_small() {
        // One per simulated client, 10,000+ per process: the read buffer (4 KiB, on the heap)
        // must stay the bulk of a connection.
        let size = std::mem::size_of::<Client>();
        assert!(size <= 512, "size_of::<Client>() = {size}");
    }
}
