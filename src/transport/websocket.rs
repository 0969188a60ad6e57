//! The plain WebSocket transport: one JSON frame per event, shaped by the dialect's
//! [`Framing`] (the event name read from a field; an envelope of ids, tokens, a timestamp and
//! a signature; an application-level heartbeat).
//!
//! - Connect: TCP, websocket handshake (the target's query is passed on, e.g. `?sid=…`), then
//!   frames are read until the framing is [ready](Framing::ready) (e.g. it has the token the
//!   first frame hands out). Those frames are delivered afterwards like any other.
//! - Heartbeat: the client sends the framing's heartbeat event every interval, from the
//!   connect on. When the server answers it ([`AppHeartbeat::answer`]), the answers are taken
//!   here (counted, not delivered), and a server that leaves a heartbeat unanswered for the
//!   timeout (any frame counts as a sign of life, as in Engine.IO 3) is reported as
//!   [`CloseReason::HeartbeatTimeout`]. [`Heartbeat::Dropped`] stops sending it.
//!
//! The connection is generic over its byte stream so the framing and heartbeat logic run in
//! unit tests over an in-memory pipe; the driver's is a [`TcpStream`].

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{
    self,
    protocol::{frame::coding::CloseCode, CloseFrame},
    Message, Utf8Bytes,
};
use tokio_tungstenite::WebSocketStream;

use super::event::NameAt;
use super::net::{self, describe, Target};
use super::{
    ClientError, CloseReason, ConnectError, Framing, Heartbeat, HeartbeatMarks, HeartbeatStats,
    OutFrame, RawEvent, RawIncoming, Traffic, Transport,
};
use crate::protocol::{EioVersion, ProtocolError};

/// Makes a fresh framing for each connection (a framing holds what its connection learned).
pub type FramingFactory = Arc<dyn Fn() -> Box<dyn Framing> + Send + Sync>;

/// How to open a plain WebSocket [`Connection`].
#[derive(Clone)]
pub struct Config {
    /// HTTP path of the websocket endpoint, `/` by default.
    pub path: String,
    /// Bound on the whole connect (TCP, websocket handshake, the framing's opening frames).
    pub connect_timeout: Duration,
    /// Bind the TCP socket to this source address before connecting.
    pub local_addr: Option<IpAddr>,
    pub framing: FramingFactory,
    /// Where the connection counts the bytes it writes and reads (shared by a run's clients).
    pub traffic: Arc<Traffic>,
}

impl Config {
    /// Defaults with `framing`.
    pub fn new(framing: FramingFactory) -> Config {
        Config {
            path: "/".to_owned(),
            connect_timeout: Duration::from_secs(10),
            local_addr: None,
            framing,
            traffic: Arc::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("connect_timeout", &self.connect_timeout)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// Time to send the heartbeat.
    Ping,
    /// The heartbeat's answer is overdue.
    Timeout,
}

/// One plain WebSocket client connection.
pub struct Connection<F: Framing = Box<dyn Framing>, S = TcpStream> {
    ws: WebSocketStream<S>,
    framing: F,
    /// The single heartbeat timer, re-armed in place.
    timer: Pin<Box<Sleep>>,
    /// Events read while connecting, not delivered yet.
    early: VecDeque<RawEvent>,
    /// When the next heartbeat is due (None: no heartbeat, or while an answer is awaited).
    ping_at: Option<Instant>,
    /// A heartbeat is unanswered and its answer must arrive by then.
    answer_deadline: Option<Instant>,
    connect_started: Instant,
    last_sent: Instant,
    last_ping_sent: Option<Instant>,
    stats: HeartbeatStats,
    heartbeat: Heartbeat,
    closed: bool,
    /// A heartbeat frame was queued and may not be fully written yet.
    needs_flush: bool,
    traffic: Arc<Traffic>,
}

impl<F: Framing, S> fmt::Debug for Connection<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("websocket::Connection")
            .field("session", &self.framing.session_id())
            .field("heartbeat", &self.heartbeat)
            .field("closed", &self.closed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects `target` (`ws://host:port/?sid=…`: the query is passed on) with a fresh
    /// framing from `cfg`, within `cfg.connect_timeout`.
    pub async fn connect(target: &str, cfg: &Config) -> Result<Connection, ConnectError> {
        Self::connect_with(target, cfg, (cfg.framing)()).await
    }
}

impl<F: Framing> Connection<F> {
    /// [`connect`](Connection::connect) with a given framing.
    pub async fn connect_with(
        target: &str,
        cfg: &Config,
        framing: F,
    ) -> Result<Connection<F>, ConnectError> {
        let connect = async {
            let connect_started = Instant::now();
            let target = Target::parse(target)?;
            let path = net::absolute_path(&cfg.path);
            let ws = net::open_websocket(&target, &path, &target.query, cfg.local_addr).await?;
            let mut conn = Connection::open(ws, framing, connect_started).await?;
            conn.traffic = cfg.traffic.clone();
            Ok(conn)
        };
        match tokio::time::timeout(cfg.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Local socket address of the TCP connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ws.get_ref().local_addr()
    }

    /// Abrupt end: SO_LINGER=0 then drop, so the kernel sends a TCP RST (no close frame, as
    /// when a process is killed).
    pub fn vanish(self) {
        net::reset_on_drop(self.ws.get_ref());
        drop(self);
    }
}

impl<F: Framing, S: AsyncRead + AsyncWrite + Unpin + Send> Connection<F, S> {
    /// Opens a connection over an established websocket: reads frames until the framing is
    /// ready. `connect_started` is when the connect began (before the TCP connect).
    pub async fn open(
        ws: WebSocketStream<S>,
        framing: F,
        connect_started: Instant,
    ) -> Result<Connection<F, S>, ConnectError> {
        let mut conn = Connection {
            ws,
            framing,
            timer: Box::pin(tokio::time::sleep_until(
                Instant::now() + Duration::from_secs(86_400),
            )),
            early: VecDeque::new(),
            ping_at: None,
            answer_deadline: None,
            connect_started,
            last_sent: connect_started,
            last_ping_sent: None,
            stats: HeartbeatStats::default(),
            heartbeat: Heartbeat::Normal,
            closed: false,
            needs_flush: false,
            traffic: Arc::default(),
        };
        while !conn.framing.ready() {
            let text = match conn.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(other)) => {
                    return Err(ConnectError::NotReady(format!(
                        "received a {}",
                        describe(&other)
                    )))
                }
                Some(Err(e)) => return Err(ConnectError::NotReady(e.to_string())),
                None => return Err(ConnectError::NotReady("connection closed".to_owned())),
            };
            let name = conn.framing.read(&text)?;
            let at = NameAt::of(&text, name);
            conn.early.push_back(RawEvent::framed(text, at));
        }
        conn.ping_at = conn
            .framing
            .heartbeat()
            .map(|hb| Instant::now() + hb.interval);
        Ok(conn)
    }

    /// Sends one event now (awaits the socket write). Returns when written to the kernel.
    pub async fn emit(&mut self, event: &str, args: &[Value]) -> Result<(), ClientError> {
        let frame = self.framing.encode(event, args, SystemTime::now());
        self.send_text(frame).await
    }

    /// Sends a whole text frame as given.
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
            self.closed = true;
            return Err(ClientError::Abandoned(CloseReason::WriteBlocked {
                waited: bound,
            }));
        };
        match written {
            Ok(()) => {
                self.traffic.sent(bytes);
                // `send` flushes everything, a queued heartbeat included.
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

    /// The framing, with what it learned.
    pub fn framing(&self) -> &F {
        &self.framing
    }

    /// Next event or close, unparsed (see [`Transport::poll_recv_raw`]).
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
            if let Some(e) = self.early.pop_front() {
                return Poll::Ready(Ok(RawIncoming::Event(e)));
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
                // No handshake advertises a maximum: the default cap.
                Poll::Ready(Some(Ok(msg))) if net::data_len(&msg) > super::frame_cap(None) => {
                    let reason = CloseReason::FrameTooBig {
                        size: net::data_len(&msg),
                        max: super::frame_cap(None),
                    };
                    return Poll::Ready(Ok(self.finish(reason)));
                }
                Poll::Ready(Some(Ok(msg))) => {
                    self.traffic.received(msg.len());
                    if let Some(out) = self.on_message(msg) {
                        if matches!(
                            out,
                            Ok(RawIncoming::Other(super::Incoming::Closed(
                                CloseReason::WebSocketClose(_)
                            )))
                        ) {
                            // Best effort: push out tungstenite's close reply.
                            let _ = Pin::new(&mut self.ws).poll_flush(cx);
                        }
                        return Poll::Ready(out);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(self.on_ws_error(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(self.finish(CloseReason::Eof))),
                Poll::Pending => {
                    // A Pending caused by an exhausted coop budget says nothing about the
                    // socket: the task is woken again and the check repeats.
                    if timed_out && tokio::task::coop::has_budget_remaining() {
                        return Poll::Ready(Ok(self.finish(CloseReason::HeartbeatTimeout)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn timer_deadline(&self) -> Option<(Instant, TimerKind)> {
        match self.answer_deadline {
            Some(d) => Some((d, TimerKind::Timeout)),
            None if self.heartbeat == Heartbeat::Normal => {
                self.ping_at.map(|d| (d, TimerKind::Ping))
            }
            None => None,
        }
    }

    fn finish(&mut self, reason: CloseReason) -> RawIncoming {
        self.closed = true;
        RawIncoming::Other(super::Incoming::Closed(reason))
    }

    /// Queues the heartbeat frame without waiting; `poll_recv_raw` flushes it.
    fn send_ping(&mut self) {
        let Some(hb) = self.framing.heartbeat() else {
            self.ping_at = None;
            return;
        };
        let (event, interval, timeout) = (hb.event.clone(), hb.interval, hb.timeout);
        let answered = hb.answer.is_some();
        let frame = self.framing.encode(&event, &[], SystemTime::now());
        let now = Instant::now();
        let bytes = frame.len();
        if Pin::new(&mut self.ws)
            .start_send(Message::text(frame))
            .is_ok()
        {
            self.traffic.sent(bytes);
            self.needs_flush = true;
            self.last_sent = now;
        }
        self.last_ping_sent = Some(now);
        self.stats.pings_sent += 1;
        if answered {
            self.ping_at = None;
            self.answer_deadline = Some(now + timeout);
        } else {
            self.ping_at = Some(now + interval);
        }
    }

    fn on_ws_error(&mut self, e: tungstenite::Error) -> Result<RawIncoming, ClientError> {
        use tungstenite::error::ProtocolError as WsProto;
        if let Some(reason) = net::failed_by_client(&e, super::frame_cap(None)) {
            return Ok(self.finish(reason));
        }
        self.closed = true;
        match e {
            tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed
            | tungstenite::Error::Protocol(WsProto::ResetWithoutClosingHandshake) => {
                Ok(self.finish(CloseReason::Eof))
            }
            tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                Ok(self.finish(CloseReason::Eof))
            }
            tungstenite::Error::Io(io) => Ok(self.finish(CloseReason::Reset(io.to_string()))),
            other => Err(ClientError::Io(other.to_string())),
        }
    }

    fn on_message(&mut self, msg: Message) -> Option<Result<RawIncoming, ClientError>> {
        match msg {
            Message::Text(t) => self.on_text(t),
            Message::Binary(b) => Some(Err(ClientError::Protocol(ProtocolError::Unsupported {
                what: "binary websocket frame on a JSON dialect",
                excerpt: format!("{} bytes", b.len()),
            }))),
            Message::Close(frame) => Some(Ok(self.finish(CloseReason::WebSocketClose(
                frame.map(|f| u16::from(f.code)),
            )))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    fn on_text(&mut self, frame: Utf8Bytes) -> Option<Result<RawIncoming, ClientError>> {
        let hb = self.framing.heartbeat();
        if let (Some(_), Some(hb)) = (self.answer_deadline, hb) {
            // As engine.io-client 3: while an answer is awaited, any frame proves the server
            // alive for another interval + timeout.
            let alive = Instant::now() + hb.interval + hb.timeout;
            self.answer_deadline = self.answer_deadline.max(Some(alive));
        }
        let name = match self.framing.read(&frame) {
            Ok(name) => name,
            Err(e) => return Some(Err(e.into())),
        };
        let answer = self
            .framing
            .heartbeat()
            .and_then(|hb| (hb.answer.as_deref() == Some(&*name)).then_some(hb.interval));
        if let Some(interval) = answer {
            self.stats.pongs_received += 1;
            if self.answer_deadline.take().is_some() {
                self.ping_at = Some(Instant::now() + interval);
            }
            return None;
        }
        let at = NameAt::of(&frame, name);
        Some(Ok(RawIncoming::Event(RawEvent::framed(frame, at))))
    }

    /// `Dropped` stops sending the heartbeat; `Normal` resumes (an overdue one is sent at the
    /// next receive).
    pub fn set_heartbeat(&mut self, hb: Heartbeat) {
        self.heartbeat = hb;
    }

    pub fn heartbeat_marks(&self) -> HeartbeatMarks {
        HeartbeatMarks {
            connect_started: self.connect_started,
            last_sent: self.last_sent,
            last_ping_sent: self.last_ping_sent,
            last_pong_sent: None,
            pongs_sent: 0,
        }
    }

    pub fn heartbeat_stats(&self) -> HeartbeatStats {
        self.stats
    }

    /// The heartbeat interval (zero without a heartbeat).
    pub fn ping_interval(&self) -> Duration {
        self.framing
            .heartbeat()
            .map_or(Duration::ZERO, |hb| hb.interval)
    }

    /// How long past the interval the server waits (zero without a heartbeat).
    pub fn ping_timeout(&self) -> Duration {
        self.framing
            .heartbeat()
            .map_or(Duration::ZERO, |hb| hb.timeout)
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Clean disconnect: a websocket close frame (1000); waits at most 1 s for the close
    /// handshake. Does nothing if already closed.
    pub async fn close_in_place(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(Duration::from_secs(1), async move {
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
}

impl<F: Framing> Transport for Connection<F> {
    fn encode_event(&mut self, _ns: Option<&str>, name: &str, args: &[Value]) -> OutFrame {
        OutFrame::whole(self.framing.encode(name, args, SystemTime::now()))
    }

    fn send_raw(&mut self, frame: String) -> impl Future<Output = Result<(), ClientError>> + Send {
        self.send_text(frame)
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
        EioVersion::V3
    }

    fn ping_interval(&self) -> Duration {
        Connection::ping_interval(self)
    }

    fn ping_timeout(&self) -> Duration {
        Connection::ping_timeout(self)
    }

    fn sid(&self) -> &str {
        self.framing.session_id().unwrap_or("")
    }

    fn socket_id(&self) -> Option<&str> {
        None
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    fn close_in_place(&mut self) -> impl Future<Output = ()> + Send {
        Connection::close_in_place(self)
    }

    fn vanish(self) {
        Connection::vanish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::framing::{Clock, JsonFraming, Learn};
    use crate::transport::{AppHeartbeat, Incoming};
    use serde_json::json;
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    type Server = WebSocketStream<DuplexStream>;

    /// A client (configured as over TCP) over an in-memory pipe, and the server's end of it.
    async fn pipe() -> (WebSocketStream<DuplexStream>, Server) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let client =
            WebSocketStream::from_raw_socket(a, Role::Client, Some(net::ws_config())).await;
        let server = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        (client, server)
    }

    /// The voice dialect's shape: a token handed out by the first frame, a heartbeat.
    fn framing(answer: Option<&str>) -> JsonFraming {
        let mut f = JsonFraming::new("action");
        f.fixed.insert("sid".into(), json!("s-7"));
        f.learn.push(Learn {
            event: "create_token".into(),
            field: "online_token".into(),
            required: true,
        });
        f.timestamp = Some(("timestamp".into(), Clock::UnixSeconds));
        f.heartbeat = Some(AppHeartbeat {
            event: "ping".into(),
            interval: Duration::from_millis(40),
            timeout: Duration::from_millis(60),
            answer: answer.map(str::to_owned),
        });
        f
    }

    async fn server_send(server: &mut Server, v: Value) {
        server.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next text frame the server receives, as JSON.
    async fn server_recv(server: &mut Server) -> Value {
        loop {
            match server.next().await.expect("open").expect("frame") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(_) => panic!("closed"),
                _ => {}
            }
        }
    }

    /// Opens a client: the server hands out `tok-1` first.
    async fn opened(answer: Option<&str>) -> (Connection<JsonFraming, DuplexStream>, Server) {
        let (ws, mut server) = pipe().await;
        let open = Connection::open(ws, framing(answer), Instant::now());
        let (conn, ()) = tokio::join!(open, async {
            server_send(
                &mut server,
                json!({"action": "create_token", "online_token": "tok-1"}),
            )
            .await
        });
        (conn.expect("opened"), server)
    }

    fn event_name(item: RawIncoming) -> String {
        match item {
            RawIncoming::Event(e) => e.name().expect("name").into_owned(),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[tokio::test]
    async fn opening_waits_for_the_token_and_delivers_its_frame() {
        let (mut conn, _server) = opened(None).await;
        assert_eq!(conn.framing().session_id(), Some("tok-1"));
        let first = conn.recv_raw().await.unwrap();
        let RawIncoming::Event(e) = first else {
            panic!("{first:?}")
        };
        assert_eq!(e.name().as_deref(), Some("create_token"));
        assert_eq!(e.namespace(), None);
    }

    #[tokio::test]
    async fn events_carry_the_envelope_and_come_back_by_name() {
        let (mut conn, mut server) = opened(None).await;
        conn.emit("enter_room", &[json!({"channel_name": "c1"})])
            .await
            .unwrap();
        let got = server_recv(&mut server).await;
        assert_eq!(got["action"], "enter_room");
        assert_eq!(got["channel_name"], "c1");
        assert_eq!(got["sid"], "s-7");
        assert_eq!(
            got["online_token"], "tok-1",
            "the learned token is in every frame"
        );
        assert!(got["timestamp"].as_u64().unwrap() > 1_600_000_000);

        server_send(
            &mut server,
            json!({"x": 1, "action": "enter_room", "user_id": 9}),
        )
        .await;
        assert_eq!(event_name(conn.recv_raw().await.unwrap()), "create_token");
        let item = conn.recv_raw().await.unwrap();
        let RawIncoming::Event(e) = item else {
            panic!("{item:?}")
        };
        assert_eq!(e.name().as_deref(), Some("enter_room"));
        assert_eq!(
            e.parse().unwrap(),
            Incoming::Event {
                name: "enter_room".into(),
                args: vec![json!({"x": 1, "action": "enter_room", "user_id": 9})],
                ack: None,
            }
        );
    }

    #[tokio::test]
    async fn a_frame_without_a_name_is_one_bad_frame() {
        let (mut conn, mut server) = opened(None).await;
        conn.recv_raw().await.unwrap();
        server.send(Message::text("{\"type\":1}")).await.unwrap();
        server_send(&mut server, json!({"action": "after"})).await;
        match conn.recv_raw().await {
            Err(ClientError::Protocol(e)) => assert!(e.to_string().contains("action"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(event_name(conn.recv_raw().await.unwrap()), "after");
    }

    #[tokio::test]
    async fn heartbeat_is_sent_with_the_envelope_until_dropped() {
        let (mut conn, mut server) = opened(None).await;
        let client = async {
            // Serves the heartbeat; nothing else comes.
            loop {
                let item = conn.recv_raw().await;
                assert_eq!(event_name(item.unwrap()), "create_token");
            }
        };
        let pings = async {
            for _ in 0..3 {
                let ping = server_recv(&mut server).await;
                assert_eq!(ping["action"], "ping");
                assert_eq!(ping["online_token"], "tok-1");
            }
        };
        tokio::select! {
            _ = client => unreachable!(),
            _ = pings => {}
        }
        assert_eq!(conn.heartbeat_stats().pings_sent, 3);
        let marks = conn.heartbeat_marks();
        assert_eq!(marks.last_ping_sent, Some(marks.last_sent));

        conn.set_heartbeat(Heartbeat::Dropped);
        let sent = conn.heartbeat_stats().pings_sent;
        // Five intervals of serving: no heartbeat goes out.
        let _ = tokio::time::timeout(Duration::from_millis(200), conn.recv_raw()).await;
        assert_eq!(conn.heartbeat_stats().pings_sent, sent);
    }

    #[tokio::test]
    async fn an_unanswered_heartbeat_is_a_timeout_and_answers_are_not_delivered() {
        let (mut conn, mut server) = opened(Some("pong")).await;
        assert_eq!(event_name(conn.recv_raw().await.unwrap()), "create_token");
        // Two pings answered: the answers are taken by the transport.
        let serve = async {
            for _ in 0..2 {
                assert_eq!(server_recv(&mut server).await["action"], "ping");
                server_send(&mut server, json!({"action": "pong"})).await;
            }
            assert_eq!(server_recv(&mut server).await["action"], "ping");
            // The third goes unanswered, and the server stays silent.
            std::future::pending::<()>().await
        };
        let closed = tokio::select! {
            item = conn.recv_raw() => item,
            _ = serve => unreachable!(),
        };
        match closed.unwrap() {
            RawIncoming::Other(Incoming::Closed(CloseReason::HeartbeatTimeout)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(conn.heartbeat_stats().pongs_received, 2);
        assert_eq!(conn.heartbeat_stats().pings_sent, 3);
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn a_close_frame_ends_the_connection_with_its_code() {
        let (mut conn, mut server) = opened(None).await;
        assert_eq!(event_name(conn.recv_raw().await.unwrap()), "create_token");
        server
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: Utf8Bytes::from_static("silent"),
            })))
            .await
            .unwrap();
        match conn.recv_raw().await.unwrap() {
            RawIncoming::Other(Incoming::Closed(CloseReason::WebSocketClose(Some(1008)))) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(conn.recv_raw().await, Err(ClientError::Closed)));
        assert!(matches!(
            conn.emit("x", &[]).await,
            Err(ClientError::Closed)
        ));
    }

    /// The client's own closes say so: the server did not close these connections.
    async fn closed_by_the_client(conn: &mut Connection<JsonFraming, DuplexStream>) -> CloseReason {
        match conn.recv_raw().await.unwrap() {
            RawIncoming::Other(Incoming::Closed(reason)) => {
                assert!(reason.by_client(), "{reason:?}");
                assert!(
                    reason.to_string().starts_with("the client closed"),
                    "{reason}"
                );
                assert!(conn.is_closed());
                reason
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_text_frame_that_is_not_utf8_fails_the_connection() {
        use tungstenite::protocol::frame::{
            coding::{Data, OpCode},
            Frame,
        };
        let (mut conn, mut server) = opened(None).await;
        assert_eq!(event_name(conn.recv_raw().await.unwrap()), "create_token");
        let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
        server.send(Message::Frame(bad)).await.unwrap();
        let reason = closed_by_the_client(&mut conn).await;
        assert!(matches!(reason, CloseReason::InvalidUtf8(_)), "{reason:?}");
    }

    /// A frame whose header announces more than the ceiling is refused before it is read.
    #[tokio::test]
    async fn a_frame_over_the_cap_fails_the_connection() {
        let (mut conn, mut server) = opened(None).await;
        assert_eq!(event_name(conn.recv_raw().await.unwrap()), "create_token");
        let size = crate::transport::FRAME_CEILING + 1;
        let big = "a".repeat(size as usize);
        let reason = tokio::select! {
            r = closed_by_the_client(&mut conn) => r,
            // The client stops reading: the server's write never finishes.
            _ = server.send(Message::text(big)) => unreachable!("the client read it all"),
        };
        assert_eq!(
            reason,
            CloseReason::FrameTooBig {
                size,
                max: crate::transport::FRAME_CEILING
            }
        );
    }

    /// A server that stops reading: the write gives up after the bound (here its 1 s floor).
    #[tokio::test]
    async fn a_write_the_server_never_reads_gives_the_connection_up() {
        let (mut conn, _server) = opened(None).await;
        let big = "a".repeat(256 * 1024);
        let started = Instant::now();
        match conn.emit("say", &[json!(big)]).await {
            Err(ClientError::Abandoned(CloseReason::WriteBlocked { waited })) => {
                assert_eq!(waited, Duration::from_secs(1));
                assert!(started.elapsed() >= waited);
            }
            other => panic!("{other:?}"),
        }
        assert!(conn.is_closed());
        assert!(matches!(
            conn.emit("x", &[]).await,
            Err(ClientError::Closed)
        ));
    }

    #[tokio::test]
    async fn the_connection_ending_before_the_token_fails_the_connect() {
        let (ws, mut server) = pipe().await;
        let open = Connection::open(ws, framing(None), Instant::now());
        let (conn, ()) = tokio::join!(open, async {
            server_send(&mut server, json!({"action": "hello"})).await;
            server.close(None).await.unwrap();
        });
        match conn {
            Err(ConnectError::NotReady(m)) => assert!(m.contains("close"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_clean_close_sends_a_close_frame() {
        let (mut conn, mut server) = opened(None).await;
        let (_, seen) = tokio::join!(conn.close_in_place(), async {
            loop {
                match server.next().await {
                    Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    other => panic!("{other:?}"),
                }
            }
        });
        assert_eq!(seen, Some(1000));
        assert!(conn.is_closed());
    }

    #[test]
    fn connection_is_small() {
        let size = std::mem::size_of::<Connection>();
        assert!(size <= 512, "size_of::<websocket::Connection>() = {size}");
    }
}
