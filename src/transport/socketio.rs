//! The Socket.IO transport: Engine.IO v3 or v4 over the websocket transport only.
//!
//! One [`Connection`] is one websocket carrying one Engine.IO session, on which any number of
//! Socket.IO namespaces are multiplexed, as a socket.io-client manager does: the connect sends
//! a CONNECT for each and waits for every confirmation (each CONNECT answer names the socket
//! id of its namespace); every received event says its namespace; an emit names its namespace
//! (the first one by default). No background task, no channel: everything happens inside the caller's task when
//! it calls [`Connection::recv`], [`Connection::emit`] and friends.
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

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{
    self,
    protocol::{frame::coding::CloseCode, CloseFrame},
    Message, Utf8Bytes,
};
use tokio_tungstenite::WebSocketStream;

use super::event::SioAt;
use super::net::{self, describe, millis_u32, Target};
use super::{
    ClientError, CloseReason, ConnectError, Heartbeat, HeartbeatMarks, HeartbeatStats, Incoming,
    OutFrame, RawEvent, RawIncoming, Traffic, Transport,
};
use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, SioPacket};
use crate::protocol::{excerpt, EioVersion, ProtocolError};

/// How to open a [`Connection`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub eio: EioVersion,
    /// Socket.IO namespace, `/` by default: the one events go to unless another is named.
    pub namespace: String,
    /// Further namespaces on the same Engine.IO connection, connected with `namespace`
    /// (chat: `/friend`, `/group`, `/server` beside `/`).
    pub more_namespaces: Vec<String>,
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
    /// Where the connection counts the bytes it writes and reads (shared by a run's clients).
    pub traffic: Arc<Traffic>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            eio: EioVersion::V4,
            namespace: "/".to_owned(),
            more_namespaces: Vec::new(),
            path: "/socket.io/".to_owned(),
            connect_timeout: Duration::from_secs(10),
            local_addr: None,
            auth: None,
            traffic: Arc::default(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// EIO3: time to send a ping.
    Ping,
    /// No heartbeat from the server in time.
    Timeout,
}

/// One connected namespace.
#[derive(Debug)]
struct Namespace {
    name: Box<str>,
    /// From the server's CONNECT (EIO4).
    socket_id: Option<Box<str>>,
}

/// One Socket.IO client connection (one websocket, one Engine.IO session, its namespaces).
pub struct Connection {
    ws: WebSocketStream<TcpStream>,
    /// The single heartbeat timer, re-armed in place.
    timer: Pin<Box<Sleep>>,
    sid: Box<str>,
    /// The first is the default of `emit`.
    namespaces: Box<[Namespace]>,
    /// Frames read while connecting the namespaces, not handled yet (events of a namespace
    /// confirmed before the others). Boxed, one pointer: rarely any, and a connection stays
    /// within 512 bytes.
    #[allow(clippy::box_collection)]
    early: Option<Box<VecDeque<Utf8Bytes>>>,
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
    /// The largest frame taken from the server ([`super::frame_cap`] of its maxPayload).
    frame_cap: u32,
    traffic: Arc<Traffic>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("sid", &self.sid)
            .field("namespaces", &self.namespaces)
            .field("eio", &self.eio)
            .field("heartbeat", &self.heartbeat)
            .field("closed", &self.closed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
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

/// TCP connect, websocket handshake asking for Engine.IO `eio`, and the server's OPEN packet.
/// Shared by [`Connection::connect`] and the generation probe, which reads what follows the
/// OPEN itself.
pub(crate) async fn open_session(
    target: &str,
    cfg: &ClientConfig,
    eio: EioVersion,
) -> Result<(WebSocketStream<TcpStream>, engineio::OpenInfo), ConnectError> {
    let target = Target::parse(target)?;
    let mut query = format!("EIO={eio}&transport=websocket");
    if !target.query.is_empty() {
        query.push('&');
        query.push_str(&target.query);
    }
    let path = net::absolute_path(&cfg.path);
    let mut ws = net::open_websocket(&target, &path, &query, cfg.local_addr).await?;

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
    /// buffers, read the Engine.IO OPEN, connect the Socket.IO namespaces (send `40` where the
    /// protocol version requires it; wait for the server's CONNECT of each), all within
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
        let mut namespaces: Vec<Namespace> = Vec::with_capacity(1 + cfg.more_namespaces.len());
        for ns in std::iter::once(&cfg.namespace).chain(&cfg.more_namespaces) {
            let name = normalize_ns(ns)?;
            if !namespaces.iter().any(|n| n.name == name) {
                namespaces.push(Namespace {
                    name,
                    socket_id: None,
                });
            }
        }
        let (ws, open) = open_session(target, cfg, cfg.eio).await?;
        let opened_at = Instant::now();

        let mut conn = Connection {
            ws,
            timer: Box::pin(tokio::time::sleep_until(
                opened_at + Duration::from_secs(86_400),
            )),
            sid: open.sid.into(),
            namespaces: namespaces.into_boxed_slice(),
            early: None,
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
            frame_cap: u32::try_from(super::frame_cap(open.max_payload)).unwrap_or(u32::MAX),
            traffic: cfg.traffic.clone(),
        };
        conn.join_namespaces(cfg.auth.as_ref()).await?;
        conn.hb_at = Some(match conn.eio {
            EioVersion::V3 => opened_at + conn.ping_interval(),
            EioVersion::V4 => Instant::now() + conn.ping_interval() + conn.ping_timeout(),
        });
        Ok(conn)
    }

    /// Sends a CONNECT for each namespace where needed, all at once as a socket.io-client
    /// manager does, and waits for the server's CONNECT of each.
    async fn join_namespaces(&mut self, auth: Option<&Value>) -> Result<(), ConnectError> {
        let mut sent = false;
        for ns in self.namespaces.iter() {
            let send_connect = match self.eio {
                EioVersion::V4 => true,
                // socket.io 2 connects "/" by itself; a second "40" would make a Node v2 server
                // create a second socket. Other namespaces are requested with "40/ns,".
                EioVersion::V3 => &*ns.name != "/",
            };
            if send_connect {
                let auth = if self.eio == EioVersion::V4 {
                    auth
                } else {
                    None
                };
                let frame = socketio::encode_connect(&ns.name, auth);
                self.ws
                    .feed(Message::text(frame))
                    .await
                    .map_err(|e| ConnectError::Closed(format!("sending CONNECT failed: {e}")))?;
                sent = true;
            }
        }
        if sent {
            self.ws
                .flush()
                .await
                .map_err(|e| ConnectError::Closed(format!("sending CONNECT failed: {e}")))?;
            self.last_sent = Instant::now();
        }
        let mut confirmed = vec![false; self.namespaces.len()];
        let several = self.namespaces.len() > 1;
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
                    let ours = self.namespaces.iter().position(|n| *n.name == *p.ns());
                    let pending = ours.filter(|&i| !confirmed[i]);
                    match p {
                        SioPacket::Connect { data, .. } if pending.is_some() => {
                            let i = pending.expect("pending");
                            self.namespaces[i].socket_id = data.and_then(|d| {
                                #[derive(serde::Deserialize)]
                                struct ConnectData {
                                    sid: Option<String>,
                                }
                                serde_json::from_str::<ConnectData>(d)
                                    .ok()
                                    .and_then(|c| c.sid)
                                    .map(String::into_boxed_str)
                            });
                            confirmed[i] = true;
                            if confirmed.iter().all(|&c| c) {
                                return Ok(());
                            }
                        }
                        // In socket.io 2, "/" is implicit: refusing it refuses every namespace.
                        SioPacket::ConnectError { ns, data }
                            if pending.is_some() || (self.eio == EioVersion::V3 && ns == "/") =>
                        {
                            let reason = refusal_message(data);
                            return Err(ConnectError::Refused(if several {
                                format!("{ns}: {reason}")
                            } else {
                                reason
                            }));
                        }
                        SioPacket::Disconnect { ns } if ours.is_some() => {
                            return Err(ConnectError::Closed(if several {
                                format!("Socket.IO DISCONNECT packet for {ns}")
                            } else {
                                "Socket.IO DISCONNECT packet".to_owned()
                            }));
                        }
                        // An event of a namespace already confirmed (or of none of ours, which
                        // `recv` drops): handled once connected.
                        _ => self.early.get_or_insert_default().push_back(text),
                    }
                }
            }
        }
    }

    /// Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Socket.IO socket id of the first namespace from the server's CONNECT (EIO4); `None`
    /// for EIO3.
    pub fn socket_id(&self) -> Option<&str> {
        self.namespaces[0].socket_id.as_deref()
    }

    /// The socket id of namespace `ns` (EIO4), if connected.
    pub fn socket_id_of(&self, ns: &str) -> Option<&str> {
        self.namespaces
            .iter()
            .find(|n| *n.name == *ns)
            .and_then(|n| n.socket_id.as_deref())
    }

    pub fn eio(&self) -> EioVersion {
        self.eio
    }

    /// The first connected namespace: where [`emit`](Self::emit) sends.
    pub fn namespace(&self) -> &str {
        &self.namespaces[0].name
    }

    /// Every connected namespace, the first one first.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().map(|n| &*n.name)
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

    /// Sends one event on the first namespace now (awaits the socket write). Returns when
    /// written to the kernel.
    pub async fn emit(&mut self, event: &str, args: &[Value]) -> Result<(), ClientError> {
        let frame = socketio::encode_event(self.namespace(), event, args);
        self.send_text(frame).await
    }

    /// [`emit`](Self::emit) on namespace `ns` (one this connection did not connect, too: the
    /// server must cope with that).
    pub async fn emit_to(
        &mut self,
        ns: &str,
        event: &str,
        args: &[Value],
    ) -> Result<(), ClientError> {
        let frame = socketio::encode_event(ns, event, args);
        self.send_text(frame).await
    }

    /// Sends one event that asks for an acknowledgement; returns the ack id that the matching
    /// [`Incoming::Ack`] will carry.
    pub async fn emit_with_ack(&mut self, event: &str, args: &[Value]) -> Result<u64, ClientError> {
        let id = self.next_ack;
        self.next_ack += 1;
        let frame = socketio::encode_event_with_ack(self.namespace(), Some(id), event, args);
        self.send_text(frame).await?;
        Ok(id)
    }

    /// Acknowledges a server event that carried `ack`.
    pub async fn ack(&mut self, ack: u64, args: &[Value]) -> Result<(), ClientError> {
        let frame = socketio::encode_ack(self.namespace(), ack, args);
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
        let bytes = frame.len();
        let bound = super::write_bound(self.ping_interval(), self.ping_timeout());
        let written = tokio::time::timeout(bound, self.ws.send(Message::text(frame))).await;
        let Ok(written) = written else {
            // Half a frame may be written: the connection cannot carry another one.
            self.abandon();
            return Err(ClientError::Abandoned(CloseReason::WriteBlocked {
                waited: bound,
            }));
        };
        match written {
            Ok(()) => {
                self.traffic.sent(bytes);
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
            if let Some(early) = self.early.as_mut() {
                let Some(frame) = early.pop_front() else {
                    self.early = None;
                    continue;
                };
                match self.on_text(frame) {
                    Some(out) => return Poll::Ready(out),
                    None => continue,
                }
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
                Poll::Ready(Some(Ok(msg))) if net::data_len(&msg) > u64::from(self.frame_cap) => {
                    let reason = CloseReason::FrameTooBig {
                        size: net::data_len(&msg),
                        max: u64::from(self.frame_cap),
                    };
                    return Poll::Ready(Ok(RawIncoming::Other(self.fail(reason))));
                }
                Poll::Ready(Some(Ok(msg))) => {
                    self.traffic.received(msg.len());
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

    /// The client fails the connection for what the server did: nothing more is read, and
    /// dropping the connection resets it (the server may be in the middle of a huge frame).
    fn fail(&mut self, reason: CloseReason) -> Incoming {
        self.abandon();
        self.finish(reason)
    }

    /// Closed by the client: dropping the connection resets it.
    fn abandon(&mut self) {
        net::reset_on_drop(self.ws.get_ref());
        self.closed = true;
    }

    /// Queues a control frame without waiting; `poll_recv` flushes it.
    fn queue_control(&mut self, text: &'static str) -> Instant {
        let now = Instant::now();
        if Pin::new(&mut self.ws)
            .start_send(Message::Text(Utf8Bytes::from_static(text)))
            .is_ok()
        {
            self.traffic.sent(text.len());
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
        if let Some(reason) = net::failed_by_client(&e, u64::from(self.frame_cap)) {
            return Ok(self.fail(reason));
        }
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
                Ok(Err((ack, ns, args))) => {
                    let at = SioAt::of(text, ns, args);
                    return Some(Ok(RawIncoming::Event(RawEvent::socketio(frame, at, ack))));
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

    /// An event is handed back unparsed: `Ok(Err((ack, namespace, args text)))`.
    #[allow(clippy::type_complexity)]
    fn on_socketio<'m>(
        &mut self,
        m: &'m str,
    ) -> Option<Result<Result<Incoming, (Option<u64>, &'m str, &'m str)>, ClientError>> {
        let packet = match socketio::decode(m) {
            Ok(p) => p,
            Err(e) => return Some(Err(e.into())),
        };
        let ns = packet.ns();
        if !self.namespaces.iter().any(|n| *n.name == *ns) {
            // Another namespace of the same session (e.g. "/" under socket.io 2): not ours.
            return None;
        }
        Some(match packet {
            SioPacket::Event { ack, args, .. } => Ok(Err((ack, ns, args))),
            SioPacket::Ack { ack, args, .. } => socketio::parse_ack_args(args)
                .map(|args| Ok(Incoming::Ack { ack, args }))
                .map_err(ClientError::from),
            // Any namespace's: none of the dialects disconnects one namespace and keeps the
            // others, and a client left half connected would be judged on events it can no
            // longer receive.
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

    /// Clean disconnect: Socket.IO `41` for each namespace, Engine.IO `1`, websocket close
    /// frame; waits at most 1 s for the close handshake.
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
        let disconnects: Vec<String> = self
            .namespaces
            .iter()
            .map(|n| socketio::encode_disconnect(&n.name))
            .collect();
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(Duration::from_secs(1), async move {
            for d in disconnects {
                let _ = ws.feed(Message::text(d)).await;
            }
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
        net::reset_on_drop(self.ws.get_ref());
        drop(self);
    }
}

impl Transport for Connection {
    fn encode_event(&mut self, ns: Option<&str>, name: &str, args: &[Value]) -> OutFrame {
        let ns = ns.unwrap_or_else(|| self.namespace());
        let (text, args_at) = socketio::encode_event_parts(ns, name, args);
        OutFrame::socketio(text, args_at, args.len())
    }

    async fn send_raw(&mut self, frame: String) -> Result<(), ClientError> {
        self.send_text(frame).await
    }

    fn poll_recv_raw(&mut self, cx: &mut Context<'_>) -> Poll<Result<RawIncoming, ClientError>> {
        Connection::poll_recv_raw(self, cx)
    }

    fn set_heartbeat(&mut self, hb: Heartbeat) {
        Connection::set_heartbeat(self, hb)
    }

    fn heartbeat(&self) -> Heartbeat {
        self.heartbeat
    }

    fn heartbeat_stats(&self) -> HeartbeatStats {
        self.stats
    }

    fn heartbeat_marks(&self) -> HeartbeatMarks {
        Connection::heartbeat_marks(self)
    }

    fn heartbeat_model(&self) -> EioVersion {
        self.eio
    }

    fn ping_interval(&self) -> Duration {
        Connection::ping_interval(self)
    }

    fn ping_timeout(&self) -> Duration {
        Connection::ping_timeout(self)
    }

    fn sid(&self) -> &str {
        &self.sid
    }

    fn socket_id(&self) -> Option<&str> {
        Connection::socket_id(self)
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    async fn close_in_place(&mut self) {
        Connection::close_in_place(self).await
    }

    fn vanish(self) {
        Connection::vanish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
