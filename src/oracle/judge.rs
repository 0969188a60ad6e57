//! The judge of one client: everything the client does and sees, as `(time, what happened)`,
//! turned into verdicts. No sockets and no clock: the virtual user performs operations and
//! forwards what it receives, the judge keeps the client's judging state ([`Client`]) and
//! asks the room model ([`Oracle`]) about broadcasts.
//!
//! Each received event is judged against the dialect's table (shape, forbidden fields), then
//! as a reply, a broadcast (content id or FIFO attribution) or an error.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use super::attribution::{attribute_error, ErrorAnswer, ErrorSource, Unanswered};
use super::json::Json;
use super::rules::{Cap, Check, Level};
use super::shape::{self, Node as _, Problem};
use super::{contest, ClientId, IntMap, Micros, Oracle, Outgoing, Receipt, ReportWindow, RoomKey};
use crate::dialect::{
    field_text, named_room, user_room, Attribution, DialectSpec, Effect, ErrorStyle, EventSpec,
    Precondition, RoomOf, SenderKey, EVERYONE,
};
use crate::heartbeat::{Advertised, Window};
use crate::metrics::Metrics;
use crate::roster::Roster;

/// What the judge of a run reads: the room model, the dialect's table, the users, and where
/// latencies go. Cheap to build (references only).
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    pub oracle: &'a Oracle,
    pub spec: &'static DialectSpec,
    pub roster: &'a Roster,
    pub metrics: &'a Metrics,
}

/// A request whose reply or error has not come yet.
#[derive(Debug)]
pub struct Pending {
    kind: PendingKind,
    /// The request's event name.
    request: &'static str,
    intended: Micros,
    sent: Micros,
    /// After this the answer is `late`; none by `due` + deadline is `missing`.
    due: Micros,
    /// The request expects what the seed does not state: its violations are judged at most
    /// at this level.
    cap: Option<Cap>,
    /// The server may or may not send it (a request it should refuse but may accept).
    optional: bool,
}

#[derive(Debug, PartialEq)]
enum PendingKind {
    /// A reply event (e.g. `last_data`) must come; it confirms the join of `joins`.
    Reply {
        event: &'static str,
        joins: Option<RoomKey>,
    },
    /// An error must come (on the request's own event, or on the dialect's error channel),
    /// with this text when given. `instead` is the reply a valid request would get: its
    /// arrival means the server accepted the request (the error is missing, not pending).
    Error {
        text: Option<String>,
        instead: Option<&'static str>,
    },
    /// The HTTP response of the request must have one of these statuses, and its body these
    /// fields.
    Http {
        accept: &'static [u16],
        body: &'static [crate::dialect::BodyField],
        /// Where an absent field is judged (see [`Effect::HttpBodyAbsent`]).
        absent: Option<&'static str>,
    },
}

/// A request sent lately, not yet seen answered.
#[derive(Debug)]
struct Recent {
    request: &'static str,
    sent: Micros,
    /// The broadcast whose copy reaches the sender when the server accepted the request.
    echo: Option<&'static str>,
}

/// How a close by the server is judged.
#[derive(Debug)]
enum Closing {
    /// The client is healthy: a close is a violation.
    Unexpected,
    /// The client dropped its heartbeat at `since`: the server must close it inside
    /// `window` (from what it advertised, `adv`).
    HeartbeatDropped {
        since: Micros,
        window: Window,
        adv: Advertised,
    },
    /// The client stalled: the server may drop a slow consumer.
    Tolerated,
}

/// A login racing for a room only the first may take ([`Effect::JoinFirst`]).
#[derive(Debug)]
struct Contending {
    room: RoomKey,
    sent: Micros,
    request: &'static str,
    /// The error code that refuses it.
    refusal: &'static str,
}

/// How a request is meant (the scenario's `expect_error` / `lenient`).
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// A valid request: its effects must happen.
    Valid,
    /// The server must refuse it with an error (with this text when given).
    Refused(Option<String>),
    /// Hostile input: only the other clients are judged on its outcome.
    Lenient,
}

/// What a close by the server meant for the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseVerdict {
    /// Not connected any more (already counted).
    NotConnected,
    /// A close the client caused or may get: the flow goes on.
    Expected,
    /// The server closed a healthy client: a violation, and the flow ends.
    Unexpected,
    /// The client closed the connection itself because the server broke a rule (see
    /// [`GaveUp`]): a violation, and the flow ends.
    Abandoned,
}

/// Why a client ended its connection itself: what the server did that left it no other way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaveUp {
    /// No heartbeat from the server for `waited` (pingInterval + pingTimeout, or an
    /// unanswered ping's timeout, of what the server advertised).
    Silent { waited: Micros },
    /// A write stayed blocked for `waited` ([`crate::transport::write_bound`]): the server
    /// stopped reading.
    NotReading { waited: Micros },
    /// A frame of `size` bytes, over the client's cap of `max`
    /// ([`crate::transport::frame_cap`] of the advertised maxPayload).
    FrameTooBig { size: u64, max: u64 },
    /// A text frame that is not UTF-8, or another websocket protocol violation.
    BrokenFrame(String),
}

/// One client's judging state: its rooms, what it waits for, what it may receive.
pub struct Client {
    pub me: ClientId,
    /// Rooms whose join the server confirmed, with their names (for departure notices).
    joined: Vec<(RoomKey, String)>,
    /// Rooms whose join was sent but not confirmed yet.
    joining: Vec<(RoomKey, String)>,
    /// Rooms this connection asked to leave: its own broadcasts there are still owed to it
    /// (see `Oracle::left_by_request`), so its flow waits for them, and a close ends them.
    left_by_request: Vec<RoomKey>,
    /// The departure notices were registered already (at the heartbeat drop).
    departure_announced: bool,
    /// Connected (between `connected` and `departed`).
    connected: bool,
    pending: Vec<Pending>,
    /// The requests sent within the last two deadlines that got no answer this client could
    /// see (a reply, an error, or its own copy of the broadcast), oldest first: what an error
    /// may answer.
    recent: VecDeque<Recent>,
    /// Arrival times of errors on an event no recent request used, when more than one request
    /// was waiting for an error (which one it answers is unknown): each excuses one
    /// `error-missing` of a request that was waiting then, as the `error-wrong-event` already
    /// reported it.
    foreign_errors: Vec<Micros>,
    /// Rooms whose join was never confirmed and is assumed (see `Oracle::join_assumed`).
    assumed: Vec<RoomKey>,
    /// Connections made so far (the current one's number once connected).
    session: u32,
    /// When the current connection was made.
    session_began: Micros,
    /// Errors allowed on an event because its request was sent while not a confirmed member.
    tolerated_errors: HashMap<&'static str, u32>,
    /// Highest content sequence seen per sender (order check).
    last_seq: IntMap<ClientId, u64>,
    /// Event names received since the current step began (for `expect`).
    received_since_step: Vec<String>,
    /// The sequence number of the next attributable send.
    pub seq: u64,
    closing: Closing,
    /// Its logins racing for a room only the first may take, not answered yet (see
    /// [`crate::oracle::contest`]).
    contending: Vec<Contending>,
    /// The client sent lenient (hostile) input: the server may close it, and nothing it
    /// receives is judged any more.
    lenient: bool,
    /// What the end of this connection owes to whom (see [`Effect::OnDeparture`]).
    on_departure: Vec<(&'static str, RoomKey)>,
}

impl Client {
    /// When the current connection was made.
    pub fn session_began(&self) -> Micros {
        self.session_began
    }

    pub fn new(me: ClientId) -> Client {
        Client {
            me,
            joined: Vec::new(),
            joining: Vec::new(),
            left_by_request: Vec::new(),
            departure_announced: false,
            connected: false,
            pending: Vec::new(),
            recent: VecDeque::new(),
            foreign_errors: Vec::new(),
            assumed: Vec::new(),
            session: 0,
            session_began: 0,
            tolerated_errors: HashMap::new(),
            last_seq: IntMap::default(),
            received_since_step: Vec::new(),
            seq: 0,
            closing: Closing::Unexpected,
            contending: Vec::new(),
            lenient: false,
            on_departure: Vec::new(),
        }
    }

    /// The rooms whose join the server confirmed (or that are assumed).
    pub fn joined_rooms(&self) -> impl Iterator<Item = RoomKey> + '_ {
        self.joined.iter().map(|(r, _)| *r)
    }

    /// The earliest time a pending reply or error runs out (to wake up for it).
    pub fn next_expiry(&self, deadline: Micros) -> Option<Micros> {
        self.pending.iter().map(|p| p.due + deadline).min()
    }

    /// The latest time a pending reply or error can still arrive.
    pub fn last_expiry(&self, deadline: Micros) -> Option<Micros> {
        self.pending.iter().map(|p| p.due + deadline).max()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A new step begins: only what arrives from now on counts for its `expect`.
    pub fn step_begins(&mut self) {
        self.received_since_step.clear();
    }

    /// Whether `event` arrived since the step began.
    pub fn seen_since_step(&self, event: &str) -> bool {
        self.received_since_step.iter().any(|n| n == event)
    }
}

impl Judge<'_> {
    // ---- connections ----

    /// A connection (a session) was established at `now`.
    pub fn connected(&self, c: &mut Client, now: Micros) {
        c.session += 1;
        c.session_began = now;
        c.connected = true;
        if self.spec.uses_everyone {
            self.oracle.join_sent(c.me, EVERYONE, now);
            self.oracle.join_confirmed(c.me, EVERYONE, now);
        }
        c.closing = Closing::Unexpected;
        // What the server sends every new connection unasked is owed like a reply.
        for e in self.spec.events {
            if e.attribution == Attribution::Greeting {
                c.pending.push(Pending {
                    kind: PendingKind::Reply {
                        event: e.name,
                        joins: None,
                    },
                    request: "connect",
                    intended: now,
                    sent: now,
                    due: now + self.oracle.deadline(),
                    cap: None,
                    optional: false,
                });
            }
        }
    }

    /// The connection could not be established.
    pub fn connect_failed(&self, c: &Client, now: Micros, error: String) {
        self.oracle.violate(
            c.me,
            "connection",
            Check::ConnectFailed,
            now,
            "a Socket.IO session".into(),
            error,
        );
    }

    /// A frame the client could not read as the protocol's.
    pub fn malformed(&self, c: &Client, now: Micros, reason: String) {
        self.oracle.violate(
            c.me,
            "connection",
            Check::Malformed,
            now,
            "a valid Engine.IO/Socket.IO frame".into(),
            reason,
        );
    }

    /// The client stops reading from `now` until `until`: the server may drop it, and
    /// broadcasts it misses meanwhile are excused.
    pub fn stalled(&self, c: &mut Client, now: Micros, until: Micros) {
        for &(room, _) in &c.joined {
            self.oracle.excuse(c.me, room, now, until);
        }
        // The "every connection" room too: a stalled reader is excused its public backlog.
        if self.spec.uses_everyone {
            self.oracle.excuse(c.me, EVERYONE, now, until);
        }
        c.closing = Closing::Tolerated;
    }

    /// The client stopped answering heartbeats at `now`; the server must close it inside
    /// `window` (see [`crate::heartbeat::window`]). The departure it causes is announced with
    /// a deadline up to `notice_deadline`.
    pub fn heartbeat_dropped(
        &self,
        c: &mut Client,
        now: Micros,
        window: Window,
        adv: Advertised,
        notice_deadline: Micros,
    ) {
        c.closing = Closing::HeartbeatDropped {
            since: now,
            window,
            adv,
        };
        self.announce_departure(c, now, Some(notice_deadline));
    }

    /// The connection is still open at `at`, when the wait for the heartbeat close ended.
    pub fn heartbeat_close_not_seen(
        &self,
        c: &Client,
        at: Micros,
        grace: Micros,
        wait_end: Micros,
    ) {
        let Closing::HeartbeatDropped { since, window, adv } = c.closing else {
            return;
        };
        let (check, expected, received) = if window.capped() {
            (
                Check::HeartbeatTimeoutNotObserved,
                format!(
                    "a close by {:.0} ms after the heartbeat stopped (the server advertised pingInterval {:.0} ms + pingTimeout {:.0} ms, + grace {:.0} ms, from the last heartbeat)",
                    (window.latest.saturating_sub(since)) as f64 / 1e3,
                    adv.ping_interval as f64 / 1e3,
                    adv.ping_timeout as f64 / 1e3,
                    grace as f64 / 1e3,
                ),
                format!(
                    "still open when the heartbeat deadline of {:.0} ms ended the wait, before the advertised window had passed: not observed",
                    (wait_end - since) as f64 / 1e3
                ),
            )
        } else {
            (
                Check::HeartbeatTimeoutMissing,
                format!(
                    "closed within {:.0} ms of the heartbeat stopping (pingInterval {:.0} ms + pingTimeout {:.0} ms + grace {:.0} ms from the last frame sent)",
                    (window.latest.saturating_sub(since)) as f64 / 1e3,
                    adv.ping_interval as f64 / 1e3,
                    adv.ping_timeout as f64 / 1e3,
                    grace as f64 / 1e3,
                ),
                "still open".into(),
            )
        };
        self.oracle
            .violate(c.me, "connection", check, at, expected, received);
    }

    /// The connection is gone (closed by either side, reset, or vanished): the client leaves
    /// every room and its pending replies are moot.
    pub fn departed(&self, c: &mut Client, at: Micros) {
        self.announce_departure(c, at, None);
        c.on_departure.clear();
        for (room, _) in c.joined.drain(..).chain(c.joining.drain(..)) {
            self.oracle.left(c.me, room, at);
        }
        // A close may cut off the copies of its own broadcasts still owed after a leave.
        for room in c.left_by_request.drain(..) {
            self.oracle.left(c.me, room, at);
        }
        if self.spec.uses_everyone {
            self.oracle.left(c.me, EVERYONE, at);
        }
        c.connected = false;
        c.departure_announced = false;
        for x in std::mem::take(&mut c.contending) {
            let found =
                self.oracle
                    .contest_answered(c.me, x.room, x.sent, contest::Answer::None, at);
            self.report_contest(x.request, found, at, || "no answer before it closed".into());
        }
        c.pending.clear();
        c.recent.clear();
        c.foreign_errors.clear();
        c.assumed.clear();
        c.tolerated_errors.clear();
    }

    /// The connection was dropped by a restart of the server at `now` (see
    /// [`crate::oracle::Oracle::dropped_by_restart`]): expected, and the departure tells
    /// nobody (the stopped server cannot, the restarted one never knew it).
    pub fn closed_by_restart(&self, c: &mut Client, now: Micros) -> CloseVerdict {
        if !c.connected {
            return CloseVerdict::NotConnected;
        }
        c.departure_announced = true;
        self.departed(c, now);
        c.closing = Closing::Unexpected;
        CloseVerdict::Expected
    }

    /// The server (or the network) closed the connection at `now`, for `reason`.
    pub fn closed_by_server(&self, c: &mut Client, now: Micros, reason: &str) -> CloseVerdict {
        if !c.connected {
            return CloseVerdict::NotConnected;
        }
        // The server acted before this client saw it: a fail-over it sent on dropping this
        // client may have reached another member first.
        for &(room, _) in &c.joined {
            self.oracle.dropped_by_server(c.me, room, now);
        }
        self.departed(c, now);
        match std::mem::replace(&mut c.closing, Closing::Unexpected) {
            Closing::HeartbeatDropped { since, window, adv } => {
                self.metrics
                    .record(("heartbeat", "close"), now - since, now - since);
                if now < window.earliest {
                    // Past the advertised interval, a close before an assumed timeout is a
                    // server that chose a shorter silence: a warning, not a MUST.
                    let check = if now < window.earliest_sure {
                        Check::HeartbeatTimeoutEarly
                    } else {
                        Check::HeartbeatTimeoutShort
                    };
                    self.oracle.violate(
                        c.me,
                        "connection",
                        check,
                        now,
                        format!(
                            "no close before {:.0} ms after the heartbeat stopped (pingInterval {:.0} ms + pingTimeout {:.0} ms after the last heartbeat the server can have received{})",
                            window.earliest.saturating_sub(since) as f64 / 1e3,
                            adv.ping_interval as f64 / 1e3,
                            adv.ping_timeout as f64 / 1e3,
                            if adv.timeout_assumed {
                                "; that pingTimeout is the protocol source's, this server states none"
                            } else {
                                ""
                            },
                        ),
                        format!(
                            "closed after {:.3} ms ({reason})",
                            (now - since) as f64 / 1e3
                        ),
                    );
                } else if now > window.latest {
                    self.oracle.violate(
                        c.me,
                        "connection",
                        Check::HeartbeatTimeoutMissing,
                        now,
                        format!(
                            "closed within {:.0} ms",
                            window.latest.saturating_sub(since) as f64 / 1e3
                        ),
                        format!("closed after {:.3} ms", (now - since) as f64 / 1e3),
                    );
                }
                CloseVerdict::Expected
            }
            Closing::Tolerated => CloseVerdict::Expected,
            // After hostile input the server may close the connection; the flow goes on.
            Closing::Unexpected if c.lenient => CloseVerdict::Expected,
            Closing::Unexpected => {
                self.oracle.violate(
                    c.me,
                    "connection",
                    Check::UnexpectedClose,
                    now,
                    "the connection stays open while the client is healthy".into(),
                    reason.to_string(),
                );
                CloseVerdict::Unexpected
            }
        }
    }

    /// The client ended its connection at `now` because of what the server did (`why`). A
    /// server that stopped serving the client (silent, not reading) is `unresponsive`; a frame
    /// the client could not take is `malformed`. After its own hostile input or a stall the
    /// client excuses a server that stopped serving it (the server may drop such a client); a
    /// broken frame is judged as any frame is (not after hostile input).
    pub fn gave_up(&self, c: &mut Client, now: Micros, why: GaveUp) -> CloseVerdict {
        if !c.connected {
            return CloseVerdict::NotConnected;
        }
        self.departed(c, now);
        let closing = std::mem::replace(&mut c.closing, Closing::Unexpected);
        if c.lenient {
            return CloseVerdict::Expected;
        }
        let ms = |us: Micros| us as f64 / 1e3;
        let (check, expected, received) = match &why {
            GaveUp::Silent { .. } | GaveUp::NotReading { .. }
                if matches!(closing, Closing::Tolerated) =>
            {
                return CloseVerdict::Expected;
            }
            GaveUp::Silent { waited } => (
                Check::Unresponsive,
                "the server keeps its heartbeat with every client (a ping, or the answer to the client's, within the advertised pingInterval + pingTimeout)".to_string(),
                format!("nothing from the server for {:.0} ms: the client closed the connection", ms(*waited)),
            ),
            GaveUp::NotReading { waited } => (
                Check::Unresponsive,
                "the server reads what every client sends (a write completes within the advertised pingInterval + pingTimeout)".to_string(),
                format!("a write stayed blocked for {:.0} ms (the server stopped reading): the client closed the connection", ms(*waited)),
            ),
            GaveUp::FrameTooBig { size, max } => (
                Check::Malformed,
                format!("frames of at most {max} bytes (twice the maxPayload the server advertised, 1,000,000 when it advertised none, + 4 KiB of framing; 2,004,096 at most)"),
                format!("a frame of {size} bytes: the client closed the connection"),
            ),
            GaveUp::BrokenFrame(what) => (
                Check::Malformed,
                "valid websocket frames (text in UTF-8, RFC 6455)".to_string(),
                format!("{what}: the client closed the connection"),
            ),
        };
        // `maxPayload` bounds what the server accepts; neither a seed nor Engine.IO bounds what
        // it sends, so a frame over the client's cap is a warning, never a failure.
        let cap = matches!(why, GaveUp::FrameTooBig { .. }).then_some(Cap {
            level: Level::Should,
            source: "roomrig decision: the client caps frames at twice the advertised maxPayload; no seed or Engine.IO rule bounds what a server sends",
        });
        self.oracle
            .violate_capped(c.me, "connection", check, now, expected, received, cap);
        CloseVerdict::Abandoned
    }

    /// The server's greeting (see [`Attribution::Greeting`]) makes the connection its user's:
    /// it is in the user's own room from then on (deliveries to the user reach it).
    fn greeted(&self, c: &mut Client, now: Micros) {
        let name = &self.roster.users[c.me as usize].username;
        let me = user_room(name);
        if !c.joined.iter().any(|(r, _)| *r == me) {
            self.oracle.join_sent(c.me, me, now);
            self.oracle.join_confirmed(c.me, me, now);
            c.joined.push((me, name.clone()));
        }
    }

    /// Registers what the server must tell the others about this client's departure (once per
    /// connection; only for a logged-in client: one whose own user room is confirmed).
    fn announce_departure(&self, c: &mut Client, at: Micros, deadline: Option<Micros>) {
        let Some(departure) = self.spec.departure else {
            return;
        };
        let me = user_room(&self.roster.users[c.me as usize].username);
        if let Some((event, failover)) = departure.one_member {
            let failover = self.oracle.report_window(failover);
            // One remaining member of each room is told; no login is involved.
            if c.departure_announced {
                return;
            }
            // After hostile input the server may have dropped the connection at any moment
            // since: when its notice went out is unknown, so only who gets it is judged (a
            // notice of a lenient sender is judged by membership, see `broadcast_receipt`).
            if c.lenient {
                c.departure_announced = true;
                c.on_departure.clear();
                self.oracle.peer_departed(c.me, me, at);
                return;
            }
            // A call peer is told the call ended (voice: `hang_up`); only allowed when the peer
            // ended the call itself first (a server that took the peer's request first has no
            // call left to cut, one that took the departure first tells it).
            for (event, room) in std::mem::take(&mut c.on_departure) {
                let unless = if self.oracle.ended_by(room, me, event, at) {
                    Precondition::Refused
                } else {
                    Precondition::None
                };
                let send = Outgoing {
                    deadline,
                    metric: "after-fault",
                    unless,
                    ..self.outgoing(c, room, event, None, at, at)
                };
                self.oracle.broadcast_sent(send);
            }
            // What it owes as the other side of a peer's request (voice: the called member
            // tells its caller); only allowed when that request was not yet due.
            for (event, room, required) in self.oracle.peer_departed(c.me, me, at) {
                let send = Outgoing {
                    deadline,
                    metric: "after-fault",
                    unless: if required {
                        Precondition::None
                    } else {
                        Precondition::Refused
                    },
                    ..self.outgoing(c, room, event, None, at, at)
                };
                self.oracle.broadcast_sent(send);
            }
            c.departure_announced = true;
            for (room, _) in c.joined.iter().filter(|(r, _)| *r != me) {
                let send = Outgoing {
                    deadline,
                    metric: "after-fault",
                    ..self.outgoing(c, *room, event, None, at, at)
                };
                self.oracle.notify_one_sent(send, failover);
            }
            return;
        }
        // A login the server never confirmed (assumed) announces nothing. One still unanswered
        // when the connection ended may have been taken by the server before the departure
        // (its reply in flight: a distant target, 150 ms each way, gave a false MUST
        // `unknown` here): then the others may be told, but are owed nothing.
        let logged_in = c.joined.iter().any(|(r, _)| *r == me) && !c.assumed.contains(&me);
        let login_in_flight = !logged_in && c.joining.iter().any(|(r, _)| *r == me);
        if c.departure_announced || !(logged_in || login_in_flight) {
            return;
        }
        c.departure_announced = true;
        let session = c.session;
        let unless = if logged_in {
            Precondition::None
        } else {
            Precondition::Refused
        };
        let send = |room, event, value| Outgoing {
            sender: c.me,
            session,
            room,
            event,
            include_sender: false,
            unless,
            seq: None,
            value,
            intended: at,
            sent: at,
            metric: "after-fault",
            deadline,
        };
        if let Some(event) = departure.each_room {
            for (room, name) in c.joined.iter().filter(|(r, _)| *r != me) {
                self.oracle
                    .broadcast_sent(send(*room, event, Some(Value::String(name.clone()))));
            }
        }
        if let Some(event) = departure.everyone {
            self.oracle.broadcast_sent(send(EVERYONE, event, None));
        }
        // After hostile input the server may have dropped the connection before the client
        // noticed (a frame over maxPayload is cut off while it is still being written) and told
        // the friends then: when that notice went out is unknown, so only who gets it is judged
        // (see `broadcast_receipt`), as for a departure told to one member.
        if let Some(event) = departure.friends.filter(|_| !c.lenient) {
            use crate::dialect::RunClients as _;
            let user_id = self.roster.users[c.me as usize].user_id;
            for friend in self.roster.friends(user_id) {
                self.oracle
                    .broadcast_sent(send(user_room(&friend), event, None));
            }
        }
    }

    // ---- what the client sends ----

    /// Registers what a dialect request must cause, *before* it is written: on loopback the
    /// first receipts can arrive at other clients before the sender runs again.
    pub fn request(
        &self,
        c: &mut Client,
        request_event: &'static str,
        request_effects: Vec<Effect>,
        intent: Intent,
        intended: Micros,
        sent: Micros,
    ) {
        c.received_since_step.clear();
        // The reply a valid request would get: if it comes, the server accepted the request.
        let instead = request_effects.iter().find_map(|e| match e {
            Effect::Join { reply, .. } | Effect::JoinFirst { reply, .. } => Some(*reply),
            Effect::Reply { event } => Some(*event),
            _ => None,
        });
        // The broadcast whose copy comes back to the sender when the server accepts it.
        let echo = request_effects.iter().find_map(|e| match e {
            Effect::Broadcast {
                event,
                include_sender: true,
                ..
            } => Some(*event),
            _ => None,
        });
        // `expect_error` turns any operation into one the server must refuse; `lenient` into
        // one whose outcome only the other clients are judged on.
        let (mut effects, error_text, cap) = match &intent {
            Intent::Lenient => {
                self.become_lenient(c);
                (Vec::new(), None, None)
            }
            Intent::Refused(text) => (
                vec![Effect::Error],
                text.clone(),
                self.spec.error_cap(text.as_deref()),
            ),
            Intent::Valid => (Vec::new(), None, None),
        };
        // A refusal the seed does not state (`cap`): the server should refuse, but may accept,
        // so the request's own effects are allowed, never required. Either way a relay of a
        // refused broadcast may reach the room's members (dorm: a non-member's message relayed
        // to the user's room), never anyone else.
        let expects_error = matches!(intent, Intent::Refused(_));
        let optional = expects_error;
        match intent {
            Intent::Valid => effects = request_effects,
            Intent::Refused(_) => {
                effects.extend(request_effects.into_iter().filter_map(|e| match e {
                    Effect::Broadcast {
                        event,
                        room,
                        include_sender,
                        seq,
                        value,
                        ..
                    } => Some(Effect::Broadcast {
                        event,
                        room,
                        include_sender,
                        unless: Precondition::Refused,
                        seq,
                        value,
                    }),
                    e @ (Effect::Join { .. } | Effect::Reply { .. }) if cap.is_some() => Some(e),
                    _ => None,
                }))
            }
            Intent::Lenient => {}
        }
        // Broadcasts carried by HTTP requests are in flight together on several connections.
        if effects
            .iter()
            .any(|e| matches!(e, Effect::HttpStatus { .. }))
            && effects
                .iter()
                .any(|e| matches!(e, Effect::Broadcast { .. }))
        {
            self.oracle.sends_unordered(c.me);
        }
        let due = sent + self.oracle.deadline();
        let error_key = self.error_key(request_event);
        for effect in effects {
            // A login that races is a join whose answer the race judges as well.
            let effect = match effect {
                Effect::JoinFirst {
                    room,
                    name,
                    reply,
                    refusal,
                } => {
                    c.contending.push(Contending {
                        room,
                        sent,
                        request: request_event,
                        refusal,
                    });
                    self.oracle.contest_entered(c.me, room, sent);
                    Effect::Join { room, name, reply }
                }
                other => other,
            };
            match effect {
                Effect::JoinFirst { .. } => unreachable!("turned into a join above"),
                Effect::Join { room, name, reply } => {
                    self.oracle.name_room(room, &name);
                    self.oracle.join_sent(c.me, room, sent);
                    c.left_by_request.retain(|r| *r != room);
                    if !c.joining.iter().any(|(r, _)| *r == room) {
                        c.joining.push((room, name));
                    }
                    c.pending.push(Pending {
                        kind: PendingKind::Reply {
                            event: reply,
                            joins: Some(room),
                        },
                        request: request_event,
                        intended,
                        sent,
                        due,
                        cap,
                        optional,
                    });
                }
                Effect::Reply { event } => c.pending.push(Pending {
                    kind: PendingKind::Reply { event, joins: None },
                    request: request_event,
                    intended,
                    sent,
                    due,
                    cap,
                    optional,
                }),
                Effect::Leave { room } => {
                    self.oracle.left_by_request(c.me, room, sent);
                    if !c.left_by_request.contains(&room) {
                        c.left_by_request.push(room);
                    }
                    let was_member = c.joined.iter().any(|(r, _)| *r == room);
                    c.joined.retain(|(r, _)| *r != room);
                    c.joining.retain(|(r, _)| *r != room);
                    if !was_member {
                        *c.tolerated_errors.entry(error_key).or_default() += 1;
                    }
                }
                Effect::Broadcast {
                    event,
                    room,
                    include_sender,
                    unless,
                    seq,
                    value,
                } => {
                    if seq.is_some() {
                        c.seq += 1;
                    }
                    let allowed = self.oracle.broadcast_sent(Outgoing {
                        sender: c.me,
                        session: c.session,
                        room,
                        event,
                        include_sender,
                        unless,
                        seq,
                        value,
                        intended,
                        sent,
                        metric: "fanout",
                        deadline: None,
                    });
                    // A refused request's error is awaited as such, not merely tolerated.
                    if !allowed && unless != Precondition::Refused {
                        *c.tolerated_errors.entry(error_key).or_default() += 1;
                    }
                }
                Effect::Kick { event, room } => {
                    self.oracle
                        .kick_sent(self.outgoing(c, room, event, None, intended, sent));
                }
                Effect::NotifyOne {
                    event,
                    room,
                    value,
                    failover,
                } => {
                    self.oracle.notify_one_sent(
                        self.outgoing(c, room, event, value, intended, sent),
                        ReportWindow {
                            window: failover,
                            owed_by: failover,
                        },
                    );
                }
                Effect::Report { event, room, about } => {
                    // The departed user the report names (a user outside the roster matches
                    // nothing, so it reports nothing).
                    let about = about.map(|id| self.roster.by_user_id.get(&id).copied());
                    self.oracle.reported(c.me, room, event, about)
                }
                Effect::PeerOnDeparture { event, peer, back } => {
                    let me = user_room(&self.roster.users[c.me as usize].username);
                    self.oracle.peer_owes(c.me, me, event, peer, back, sent);
                }
                Effect::OnDeparture { event, room } => {
                    c.on_departure.retain(|(e, _)| *e != event);
                    if let Some(room) = room {
                        c.on_departure.push((event, room));
                    }
                }
                Effect::Deferrable {
                    event,
                    room,
                    seq,
                    via,
                } => {
                    c.seq += 1;
                    let send = Outgoing {
                        seq: Some(seq),
                        ..self.outgoing(c, room, event, None, intended, sent)
                    };
                    self.oracle.deferrable_sent(send, via);
                }
                Effect::HttpStatus { accept } => c.pending.push(Pending {
                    kind: PendingKind::Http {
                        accept,
                        body: &[],
                        absent: None,
                    },
                    request: request_event,
                    intended,
                    sent,
                    due,
                    cap,
                    optional: false,
                }),
                Effect::HttpBodyAbsent { scope } => {
                    let awaited = c.pending.iter_mut().rev().find(|p| {
                        p.sent == sent
                            && p.request == request_event
                            && matches!(p.kind, PendingKind::Http { .. })
                    });
                    if let Some(Pending {
                        kind: PendingKind::Http { absent, .. },
                        ..
                    }) = awaited
                    {
                        *absent = Some(scope);
                    }
                }
                Effect::HttpBody { fields } => {
                    // The body of the response its status is awaited with.
                    let awaited = c.pending.iter_mut().rev().find(|p| {
                        p.sent == sent
                            && p.request == request_event
                            && matches!(p.kind, PendingKind::Http { .. })
                    });
                    if let Some(Pending {
                        kind: PendingKind::Http { body, .. },
                        ..
                    }) = awaited
                    {
                        *body = fields;
                    }
                }
                Effect::Error => c.pending.push(Pending {
                    kind: PendingKind::Error {
                        text: error_text.clone(),
                        instead,
                    },
                    request: request_event,
                    intended,
                    sent,
                    due,
                    cap,
                    optional: false,
                }),
            }
        }
        self.remember_request(c, request_event, sent, echo);
    }

    /// A broadcast of this client's current connection, that it does not get itself.
    fn outgoing(
        &self,
        c: &Client,
        room: RoomKey,
        event: &'static str,
        value: Option<Value>,
        intended: Micros,
        sent: Micros,
    ) -> Outgoing {
        Outgoing {
            sender: c.me,
            session: c.session,
            room,
            event,
            include_sender: false,
            unless: Precondition::None,
            seq: None,
            value,
            intended,
            sent,
            metric: "fanout",
            deadline: None,
        }
    }

    /// The HTTP response to this client's `request` (a [`crate::dialect::Via::Http`]
    /// operation) came with `status` at `now`.
    #[cfg(test)]
    pub fn http_response(&self, c: &mut Client, request: &str, status: u16, now: Micros) {
        self.http_response_to(c, request, None, status, None, now);
    }

    /// Like [`Judge::http_response`], for the request sent at `sent` when known: responses
    /// on several pooled connections come back in any order.
    pub fn http_response_to(
        &self,
        c: &mut Client,
        request: &str,
        sent: Option<Micros>,
        status: u16,
        body: Option<&[u8]>,
        now: Micros,
    ) {
        let Some(i) = c.pending.iter().position(|p| {
            p.request == request
                && matches!(p.kind, PendingKind::Http { .. })
                && sent.is_none_or(|s| s == p.sent)
        }) else {
            return;
        };
        let p = take_pending(c, i);
        self.metrics.record(
            (p.request, "http"),
            now.saturating_sub(p.intended),
            now.saturating_sub(p.sent),
        );
        if let PendingKind::Http {
            accept,
            body: fields,
            absent,
        } = p.kind
        {
            if let Some(body) = body {
                self.http_body(c.me, fields, absent, status, body, now);
            }
            if !accept.contains(&status) {
                self.oracle.violate_capped(
                    c.me,
                    p.request,
                    Check::ReplyContent,
                    now,
                    format!("an HTTP response with status {accept:?}"),
                    format!("status {status}"),
                    p.cap,
                );
            }
        }
        if now > p.due {
            self.oracle.violate(
                c.me,
                p.request,
                Check::Late,
                now,
                format!("within {} ms of the request", self.oracle.deadline() / 1000),
                format!("after {:.3} ms", now.saturating_sub(p.sent) as f64 / 1e3),
            );
        }
    }

    /// Judges the fields an HTTP response's body must have with its `status`.
    fn http_body(
        &self,
        me: ClientId,
        fields: &[crate::dialect::BodyField],
        absent: Option<&'static str>,
        status: u16,
        body: &[u8],
        now: Micros,
    ) {
        let mut fields = fields.iter().filter(|f| f.status == status).peekable();
        if fields.peek().is_none() {
            return;
        }
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        for f in fields {
            let found = parsed.as_ref().and_then(|v| v.pointer(f.pointer));
            let text = found.map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            if text.as_deref() != Some(f.equals) {
                let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                self.oracle.violate(
                    me,
                    match (found, absent) {
                        (None, Some(scope)) => scope,
                        _ => f.scope,
                    },
                    Check::ReplyContent,
                    now,
                    format!(
                        "`{}` = {:?} in the JSON body of the HTTP {status} response",
                        f.pointer, f.equals
                    ),
                    match found {
                        Some(v) => format!("{v} in {shown}"),
                        None => format!("no such field: {shown}"),
                    },
                );
            }
        }
    }

    /// Registers an arbitrary event (hostile or malformed input) the client sends; with
    /// `expect_error` the server must refuse it (with this text when given).
    pub fn free_event(
        &self,
        c: &mut Client,
        event: &'static str,
        expect_error: Option<Option<String>>,
        intended: Micros,
        sent: Micros,
    ) {
        c.received_since_step.clear();
        self.remember_request(c, event, sent, None);
        if let Some(text) = expect_error {
            let cap = self.spec.error_cap(text.as_deref());
            c.pending.push(Pending {
                kind: PendingKind::Error {
                    text,
                    instead: None,
                },
                request: event,
                intended,
                sent,
                due: sent + self.oracle.deadline(),
                cap,
                optional: false,
            });
        }
    }

    /// After hostile input: the server may answer anything, or close this connection.
    pub fn become_lenient(&self, c: &mut Client) {
        c.lenient = true;
        self.oracle.set_lenient(c.me);
    }

    /// Keeps the requests of the last two deadlines (bounded: an error answers a recent one).
    fn remember_request(
        &self,
        c: &mut Client,
        request: &'static str,
        at: Micros,
        echo: Option<&'static str>,
    ) {
        let horizon = 2 * self.oracle.deadline();
        while c
            .recent
            .front()
            .is_some_and(|r| r.sent + horizon < at || c.recent.len() >= 64)
        {
            c.recent.pop_front();
        }
        c.recent.push_back(Recent {
            request,
            sent: at,
            echo,
        });
    }

    /// The key errors of a request are counted under: its event, or the error channel.
    fn error_key(&self, request: &'static str) -> &'static str {
        match self.spec.errors {
            ErrorStyle::SameEvent { .. } => request,
            ErrorStyle::Channel { event } | ErrorStyle::Coded { event, .. } => event,
        }
    }

    // ---- `expect` steps ----

    /// An `expect … absent` step saw `event` at `now`.
    pub fn expect_breached(&self, c: &Client, event: &str, until: Micros, now: Micros) {
        self.oracle.violate(
            c.me,
            event,
            Check::ExpectAbsent,
            now,
            format!("no `{event}` before {:.3} ms", until as f64 / 1e3),
            format!("`{event}` at {:.3} ms", now as f64 / 1e3),
        );
    }

    /// An `expect` step's event did not come by `until`.
    pub fn expect_missed(&self, c: &Client, event: &str, until: Micros, now: Micros) {
        self.oracle.violate(
            c.me,
            event,
            Check::ExpectMissing,
            now,
            format!("`{event}` by {:.3} ms", until as f64 / 1e3),
            "nothing".into(),
        );
    }

    /// When the client may leave after its flow ended at `flow_end`: the latest time a reply
    /// or a broadcast due to it can still arrive (none: it may leave now).
    pub fn settled_at(&self, c: &Client, flow_end: Micros) -> Option<Micros> {
        let deadline = self.oracle.deadline();
        let mut rooms: Vec<RoomKey> = c.joined_rooms().collect();
        rooms.extend(c.left_by_request.iter().copied());
        if self.spec.uses_everyone {
            rooms.push(EVERYONE);
        }
        let replies = c.last_expiry(deadline);
        let broadcasts = self.oracle.awaited(c.me, &rooms, flow_end);
        let takeover = self.oracle.awaited_takeover(c.me, &rooms);
        replies
            .max(broadcasts)
            .map(|u| u.min(flow_end + 2 * deadline))
            .max(takeover)
    }

    // ---- what the client receives ----

    /// Judges one received event: `name` on `namespace` (the dialect's: `/` is the
    /// connection's own) with its payload.
    pub fn received(
        &self,
        c: &mut Client,
        namespace: &str,
        name: &str,
        payload: &Json<'_>,
        now: Micros,
    ) {
        let table = self.spec;
        if table.errors.is_error(name, payload) {
            self.on_error(c, name, payload, now);
        } else if let Some(spec) = table.classify(namespace, name, payload) {
            let oracle = self.oracle;
            let mut problems = Vec::new();
            shape::check(payload, &spec.shape, spec.name, &mut problems);
            for p in problems {
                match p {
                    Problem::Shape(msg) => oracle.violate(
                        c.me,
                        spec.name,
                        Check::Shape,
                        now,
                        msg,
                        payload.excerpt(),
                    ),
                    Problem::TimeFormat(msg) => oracle.violate(
                        c.me,
                        spec.name,
                        Check::TimeFormat,
                        now,
                        "an RFC 3339 datetime".into(),
                        msg,
                    ),
                    Problem::Unstated(msg) => oracle.violate_capped(
                        c.me,
                        spec.name,
                        Check::Shape,
                        now,
                        msg,
                        payload.excerpt(),
                        Some(Cap {
                            level: Level::Should,
                            source: "reference-server decision: a field the seed's payload does not have",
                        }),
                    ),
                }
            }
            for field in spec.forbidden {
                if payload.has_key(field) {
                    oracle.violate(
                        c.me,
                        spec.name,
                        Check::Forbidden,
                        now,
                        format!("no `{field}` field"),
                        payload.excerpt(),
                    );
                }
            }
            match spec.attribution {
                Attribution::Reply => self.on_reply(c, spec, payload, now),
                Attribution::ContentId { field, sender } => {
                    self.on_content_broadcast(c, spec, payload, field, sender, now)
                }
                Attribution::SenderFifo {
                    sender,
                    value_field,
                } => self.on_fifo_broadcast(c, spec, payload, sender, value_field, now),
                Attribution::Kicked => self.on_kick(c, spec, payload, now),
                Attribution::KeptReply { lists, content } => {
                    // A server may split a backlog over several replies to one request, or
                    // hand it over unasked: one with no request waiting is a further part.
                    let asked = c.pending.iter().any(
                        |p| matches!(p.kind, PendingKind::Reply { event, .. } if event == spec.name),
                    );
                    if asked {
                        self.on_reply(c, spec, payload, now);
                    } else {
                        self.check_reply_content(c, spec.name, payload, now);
                    }
                    self.on_kept(c, spec.name, payload, lists, content, now);
                }
                Attribution::Greeting => {
                    self.on_reply(c, spec, payload, now);
                    self.greeted(c, now);
                }
                Attribution::ReplyToSelf {
                    sender,
                    value_field,
                } => {
                    if self.sender_of(payload, sender) == Some(c.me) {
                        self.on_reply(c, spec, payload, now);
                    } else {
                        self.on_fifo_broadcast(c, spec, payload, sender, value_field, now);
                    }
                }
            }
        } else {
            self.oracle.violate(
                c.me,
                "connection",
                Check::UnknownEvent,
                now,
                format!("one of the {} events", table.name),
                format!("{name} {}", payload.excerpt()),
            );
        }
        // Distinct names only: bounded by the dialect's events, not by traffic.
        if !c.received_since_step.iter().any(|n| n == name) {
            c.received_since_step.push(name.to_string());
        }
    }

    /// The dialect's check of a reply's content; returns the reply as a `Value`.
    fn check_reply_content(
        &self,
        c: &Client,
        event: &'static str,
        payload: &Json<'_>,
        now: Micros,
    ) -> Value {
        let ctx = self.roster.context(c.me, c.seq);
        // Replies are rare: the dialect's check reads a `Value`.
        let value = payload.to_value();
        if let Err(msg) = (self.spec.check_reply)(event, &value, &ctx) {
            self.oracle.violate(
                c.me,
                event,
                Check::ReplyContent,
                now,
                msg,
                shape::excerpt(&value),
            );
        }
        value
    }

    fn on_reply(&self, c: &mut Client, spec: &'static EventSpec, payload: &Json<'_>, now: Micros) {
        let event = spec.name;
        // A reply that names its room (lobby's `joinedRoom {roomname}`) answers the join of
        // that room, whatever its place in the queue; failing that, the oldest request.
        let keyed = match spec.room {
            RoomOf::Field(f) => payload.field(f).as_str().map(named_room),
            _ => None,
        };
        let is_reply =
            |p: &Pending| matches!(p.kind, PendingKind::Reply { event: e, .. } if e == event);
        let Some(i) = keyed
            .and_then(|room| {
                c.pending.iter().position(|p| {
                    is_reply(p)
                        && matches!(p.kind, PendingKind::Reply { joins: Some(r), .. } if r == room)
                })
            })
            .or_else(|| c.pending.iter().position(is_reply))
        else {
            // The reply a request expecting an error would have got: the server accepted it.
            if let Some(i) = c.pending.iter().position(
                |p| matches!(p.kind, PendingKind::Error { instead: Some(e), .. } if e == event),
            ) {
                let p = take_pending(c, i);
                self.oracle.violate_capped(
                    c.me,
                    p.request,
                    Check::ErrorMissing,
                    now,
                    format!("an error refusing this `{}`", p.request),
                    format!(
                        "the reply {event} (the request was accepted): {}",
                        payload.excerpt()
                    ),
                    p.cap,
                );
                return;
            }
            self.oracle.violate(
                c.me,
                event,
                Check::ReplyUnsolicited,
                now,
                "no reply: this client has no request waiting for one".into(),
                payload.excerpt(),
            );
            return;
        };
        let p = take_pending(c, i);
        self.metrics.record(
            (p.request, event),
            now.saturating_sub(p.intended),
            now.saturating_sub(p.sent),
        );
        if now > p.due {
            self.oracle.violate(
                c.me,
                event,
                Check::Late,
                now,
                format!("within {} ms of the request", self.oracle.deadline() / 1000),
                format!("after {:.3} ms", now.saturating_sub(p.sent) as f64 / 1e3),
            );
        }
        let ctx = self.roster.context(c.me, c.seq);
        let value = self.check_reply_content(c, event, payload, now);
        // A server that places the joiner in another room than the users file says serves
        // other users than the run assumes: every later membership verdict would blame it.
        if let (Some(placed_in), Some((home, _))) = (self.spec.placed_in, ctx.home) {
            match placed_in(event, &value) {
                Some(room) if room != home => self.oracle.report_fixture_mismatch(format!(
                    "the server put user {} in room {room}, the users file says room {home}",
                    ctx.user_id
                )),
                _ => {}
            }
        }
        if let PendingKind::Reply {
            joins: Some(room), ..
        } = p.kind
        {
            if let Some(k) = c
                .contending
                .iter()
                .position(|x| x.room == room && x.sent == p.sent)
            {
                let x = c.contending.remove(k);
                let found = self.oracle.contest_answered(
                    c.me,
                    room,
                    x.sent,
                    contest::Answer::Admitted,
                    now,
                );
                self.report_contest(x.request, found, now, || payload.excerpt());
            }
            self.oracle.join_confirmed(c.me, room, now);
            if let Some(i) = c.joining.iter().position(|(r, _)| *r == room) {
                let entry = c.joining.remove(i);
                if !c.joined.iter().any(|(r, _)| *r == room) {
                    c.joined.push(entry);
                }
            }
        }
    }

    /// The client a payload names as the sender.
    fn sender_of(&self, payload: &Json<'_>, key: SenderKey) -> Option<ClientId> {
        let roster = self.roster;
        match key {
            SenderKey::UserId(f) => match payload.field(f) {
                Json::Num(n) => n.as_u64(),
                Json::Str(s) => s.parse().ok(),
                _ => None,
            }
            .and_then(|id| roster.by_user_id.get(&id).copied()),
            // The seed's own form names the sender by its token.
            SenderKey::UserIdOrToken { id, token } => {
                self.sender_of(payload, SenderKey::UserId(id)).or_else(|| {
                    payload
                        .field(token)
                        .as_str()
                        .and_then(|t| roster.by_token.get(t).copied())
                })
            }
            SenderKey::Username(f) => payload
                .field(f)
                .as_str()
                .and_then(|n| roster.by_username.get(n).copied()),
        }
    }

    /// The room a received broadcast belongs to.
    fn room_of(
        &self,
        c: &Client,
        spec: &EventSpec,
        payload: &Json<'_>,
        sender: ClientId,
    ) -> Option<RoomKey> {
        match spec.room {
            RoomOf::SenderHome => self.roster.users[sender as usize].room,
            RoomOf::Field(f) => payload.field(f).as_str().map(named_room),
            RoomOf::Everyone => Some(EVERYONE),
            RoomOf::ReceiverUser => Some(self.receiver_room(c)),
        }
    }

    /// The user room a client receives as: its own user's, or, for a connection that joined
    /// another user's room and not its own (chat: a second device authenticated as that user),
    /// that user's.
    fn receiver_room(&self, c: &Client) -> RoomKey {
        let own = user_room(&self.roster.users[c.me as usize].username);
        let mut rooms = c.joined.iter().chain(&c.joining);
        if rooms.clone().any(|(r, _)| *r == own) {
            return own;
        }
        rooms
            .find(|(r, name)| {
                self.roster.by_username.contains_key(name.as_str()) && user_room(name) == *r
            })
            .map_or(own, |(r, _)| *r)
    }

    /// A kick: the receiver is out of the room it names (or the one it was kicked from).
    fn on_kick(&self, c: &mut Client, spec: &'static EventSpec, payload: &Json<'_>, now: Micros) {
        let rooms: Vec<RoomKey> = match spec.room {
            RoomOf::Field(f) => payload
                .field(f)
                .as_str()
                .map(named_room)
                .into_iter()
                .collect(),
            _ => c.joined.iter().chain(&c.joining).map(|(r, _)| *r).collect(),
        };
        let (receipt, room) = self.oracle.kick_received(c.me, &rooms, spec.name, now);
        if let Some(room) = room {
            c.joined.retain(|(r, _)| *r != room);
            c.joining.retain(|(r, _)| *r != room);
        }
        self.on_receipt(c, spec.name, c.me, receipt, payload, now);
    }

    /// The deliveries kept for this user while it was offline, handed over in a reply.
    fn on_kept(
        &self,
        c: &mut Client,
        event: &'static str,
        payload: &Json<'_>,
        lists: &[&str],
        content: &str,
        now: Micros,
    ) {
        let mut items = Vec::new();
        // Empty lists end a handover: whatever is still owed was lost.
        let mut complete = true;
        for list in lists {
            let Some(Json::Arr(elements)) = payload.get(list) else {
                continue;
            };
            complete &= elements.is_empty();
            for e in elements {
                match e
                    .get(content)
                    .and_then(Json::as_str)
                    .and_then(crate::dialect::parse_content_id)
                {
                    Some(item) => items.push(item),
                    None => self.oracle.violate(
                        c.me,
                        event,
                        Check::Unknown,
                        now,
                        format!("`{content}` carrying a roomrig content id"),
                        e.excerpt(),
                    ),
                }
            }
        }
        let room = user_room(&self.roster.users[c.me as usize].username);
        let mut handed = Vec::new();
        let faults = self.oracle.deferred_received(
            room,
            event,
            &items,
            (c.me, c.session_began),
            complete,
            &mut handed,
        );
        // Offline delivery latency: from the send to the reply that handed it over.
        for sent in handed {
            let waited = now.saturating_sub(sent);
            self.metrics.record((event, "offline"), waited, waited);
        }
        for (check, expected) in faults {
            let received = if check == Check::Missing {
                "not in it".to_string()
            } else {
                payload.excerpt()
            };
            self.oracle
                .violate(c.me, event, check, now, expected, received);
        }
    }

    fn on_content_broadcast(
        &self,
        c: &mut Client,
        spec: &'static EventSpec,
        payload: &Json<'_>,
        field: &str,
        sender_key: SenderKey,
        now: Micros,
    ) {
        let event = spec.name;
        let Some((sender, seq)) = payload
            .get(field)
            .and_then(Json::as_str)
            .and_then(crate::dialect::parse_content_id)
            .filter(|(s, _)| (*s as usize) < self.roster.len())
        else {
            // Hostile input a lenient client sent may be relayed as it is (a server may
            // accept it): only who receives it is judged.
            if let Some(sender) = self
                .sender_of(payload, sender_key)
                .filter(|&s| self.oracle.is_lenient(s))
            {
                if let Some(room) = self.room_of(c, spec, payload, sender) {
                    let receipt = self.oracle.relay_received(c.me, room, now);
                    self.on_receipt(c, event, sender, receipt, payload, now);
                }
                return;
            }
            self.oracle.violate(
                c.me,
                event,
                Check::Unknown,
                now,
                format!("`{field}` carrying a roomrig content id"),
                payload.excerpt(),
            );
            return;
        };
        if self.sender_of(payload, sender_key) != Some(sender) {
            let user = &self.roster.users[sender as usize];
            self.oracle.violate(
                c.me,
                event,
                Check::WrongSender,
                now,
                format!(
                    "{} naming user {} ({})",
                    sender_key.field(),
                    user.user_id,
                    user.username
                ),
                payload.field(sender_key.field()).excerpt(),
            );
        }
        let last = c.last_seq.entry(sender).or_insert(seq);
        if seq < *last && !self.oracle.is_unordered(sender) {
            self.oracle.violate(
                c.me,
                event,
                Check::Order,
                now,
                format!("sequence after {} from client {sender}", *last),
                format!("sequence {seq}"),
            );
        } else {
            *last = seq;
        }
        let Some(room) = self.room_of(c, spec, payload, sender) else {
            return;
        };
        // Where a send must arrive exactly as sent, the receipt is compared whole.
        let exact = self.oracle.exact_payloads().then(|| payload.to_value());
        let receipt =
            self.broadcast_receipt(c, room, event, sender, Some(seq), exact.as_ref(), now);
        self.on_receipt(c, event, sender, receipt, payload, now);
    }

    /// The receipt of a broadcast attributed to `sender`: matched to its send, or, for a
    /// hostile sender whose input the server may relay as it is, judged by membership only.
    #[allow(clippy::too_many_arguments)]
    fn broadcast_receipt(
        &self,
        c: &Client,
        room: RoomKey,
        event: &'static str,
        sender: ClientId,
        seq: Option<u64>,
        value: Option<&Value>,
        now: Micros,
    ) -> Receipt {
        let receipt = self
            .oracle
            .broadcast_received(c.me, room, event, sender, seq, value, now);
        if matches!(receipt, Receipt::Fault(Check::Unknown, _)) && self.oracle.is_lenient(sender) {
            // A departure notice told to the friends only: anyone else is owed none of it.
            if self.spec.departure.and_then(|d| d.friends) == Some(event)
                && !self.are_friends(sender, c.me)
            {
                return receipt;
            }
            return self.oracle.relay_received(c.me, room, now);
        }
        receipt
    }

    /// Whether the user of `receiver` is a friend of the user of `sender`.
    fn are_friends(&self, sender: ClientId, receiver: ClientId) -> bool {
        use crate::dialect::RunClients as _;
        let user_id = self.roster.users[sender as usize].user_id;
        let name = &self.roster.users[receiver as usize].username;
        self.roster.friends(user_id).iter().any(|f| f == name)
    }

    fn on_fifo_broadcast(
        &self,
        c: &mut Client,
        spec: &'static EventSpec,
        payload: &Json<'_>,
        sender_key: SenderKey,
        value_field: Option<&str>,
        now: Micros,
    ) {
        let event = spec.name;
        let Some(sender) = self.sender_of(payload, sender_key) else {
            self.oracle.violate(
                c.me,
                event,
                Check::Unknown,
                now,
                format!("`{}` naming a user of the run", sender_key.field()),
                payload.excerpt(),
            );
            return;
        };
        let Some(room) = self.room_of(c, spec, payload, sender) else {
            return;
        };
        let value = value_field.and_then(|f| payload.get(f)).map(Json::to_value);
        let receipt = self.broadcast_receipt(c, room, event, sender, None, value.as_ref(), now);
        self.on_receipt(c, event, sender, receipt, payload, now);
    }

    fn on_receipt(
        &self,
        c: &mut Client,
        event: &'static str,
        sender: ClientId,
        receipt: Receipt,
        payload: &Json<'_>,
        now: Micros,
    ) {
        if sender == c.me && matches!(receipt, Receipt::Delivered(_) | Receipt::Allowed(_)) {
            // Its own copy: the server accepted the request, which so explains no error.
            if let Some(i) = c.recent.iter().position(|r| r.echo == Some(event)) {
                c.recent.remove(i);
            }
        }
        match receipt {
            Receipt::Delivered(m) | Receipt::Allowed(m) => {
                self.metrics.record(
                    (event, m.metric),
                    now.saturating_sub(m.intended),
                    now.saturating_sub(m.sent),
                );
                if m.late && matches!(receipt, Receipt::Delivered(_)) {
                    self.oracle.violate(
                        c.me,
                        event,
                        Check::Late,
                        now,
                        "within the deadline of the send".into(),
                        format!("after {:.3} ms", now.saturating_sub(m.sent) as f64 / 1e3),
                    );
                }
            }
            Receipt::Backlog => {}
            Receipt::Fault(check, expected) => {
                self.oracle
                    .violate(c.me, event, check, now, expected, payload.excerpt())
            }
        }
    }

    fn on_error(&self, c: &mut Client, event: &str, payload: &Json<'_>, now: Micros) {
        let spec = self.spec;
        let mut problems = Vec::new();
        shape::check(payload, &spec.error_shape, event, &mut problems);
        for p in problems {
            if let Problem::Shape(msg) = p {
                self.oracle
                    .violate(c.me, "error", Check::Shape, now, msg, payload.excerpt());
            }
        }
        let (channel, text) = match spec.errors {
            ErrorStyle::SameEvent { field } => {
                (false, payload.field(field).as_str().map(Cow::Borrowed))
            }
            ErrorStyle::Channel { .. } => (true, payload.as_str().map(Cow::Borrowed)),
            ErrorStyle::Coded { field, .. } => (true, field_text(payload, field)),
        };
        let text = text.as_deref();
        if let Some(k) = c.contending.iter().position(|x| Some(x.refusal) == text) {
            self.contest_refused(c, k, now, payload);
            return;
        }
        let source = if channel {
            ErrorSource::Channel(text.and_then(|t| spec.error_sources(t)))
        } else {
            ErrorSource::OwnEvent(event)
        };
        let key = if channel {
            self.error_key("")
        } else {
            spec.ops
                .iter()
                .map(|o| o.name)
                .find(|n| *n == event)
                .unwrap_or("error")
        };
        // A reply the server may or may not send (to a request it should refuse) stands for no
        // request of its own: its request is waiting for the error.
        let waiting: Vec<usize> = (0..c.pending.len())
            .filter(|&i| !c.pending[i].optional)
            .collect();
        let unanswered: Vec<Unanswered> = waiting
            .iter()
            .map(|&i| Unanswered {
                request: c.pending[i].request,
                expects_error: matches!(c.pending[i].kind, PendingKind::Error { .. }),
            })
            .collect();
        let recent: Vec<&'static str> = c.recent.iter().map(|r| r.request).collect();
        let tolerated = c.tolerated_errors.get(key).is_some_and(|n| *n > 0);
        let received = || format!("{event} {}", payload.excerpt());
        match attribute_error(source, &unanswered, &recent, tolerated) {
            ErrorAnswer::Expected { index, ambiguous } => {
                let p = take_pending(c, waiting[index]);
                if let PendingKind::Error {
                    text: Some(want), ..
                } = &p.kind
                {
                    if text != Some(want.as_str()) {
                        let mut expected = format!("the error {want:?}");
                        if ambiguous {
                            expected.push_str(
                                " (ambiguous: the error names no request and requests of \
                                 other events were waiting for one too; paired with the oldest)",
                            );
                        }
                        self.oracle.violate_capped(
                            c.me,
                            p.request,
                            Check::ErrorContent,
                            now,
                            expected,
                            payload.excerpt(),
                            p.cap,
                        );
                    }
                }
                self.metrics.record(
                    (p.request, "error"),
                    now.saturating_sub(p.intended),
                    now.saturating_sub(p.sent),
                );
            }
            ErrorAnswer::Tolerated => {
                if let Some(n) = c.tolerated_errors.get_mut(key) {
                    *n -= 1;
                }
            }
            ErrorAnswer::Refused { index } => {
                let p = take_pending(c, waiting[index]);
                self.oracle.violate(
                    c.me,
                    p.request,
                    Check::ErrorUnexpected,
                    now,
                    "the reply to a valid request".into(),
                    payload.excerpt(),
                );
            }
            ErrorAnswer::Unexpected => self.oracle.violate(
                c.me,
                key,
                Check::ErrorUnexpected,
                now,
                format!("no error: every request this client sent on `{event}` was valid"),
                payload.excerpt(),
            ),
            ErrorAnswer::WrongEvent { request, index } => {
                if let Some(i) = index {
                    take_pending(c, waiting[i]);
                }
                self.oracle.violate(
                    c.me,
                    request,
                    Check::ErrorWrongEvent,
                    now,
                    format!("the error on `{request}`, the event of the request"),
                    received(),
                );
            }
            ErrorAnswer::AmbiguousWrongEvent { candidates } => {
                // It stands for one missing error of a request waiting now (see
                // `expire_pending`), since it may have been that one's.
                c.foreign_errors.push(now);
                self.oracle.violate(
                    c.me,
                    "error",
                    Check::ErrorWrongEvent,
                    now,
                    format!(
                        "errors on the event of their request; this one answers one of `{}` \
                         (ambiguous: which one is not known, so none of them is charged a \
                         missing error for it)",
                        candidates.join("`, `")
                    ),
                    received(),
                );
            }
            ErrorAnswer::NoCause => self.oracle.violate(
                c.me,
                "error",
                Check::ErrorUnexpected,
                now,
                "no error: no request of this client was waiting for an answer".into(),
                received(),
            ),
        }
    }

    /// The racing login `k` of this client was refused: it is not in the room, and the race
    /// may now be decided.
    fn contest_refused(&self, c: &mut Client, k: usize, now: Micros, payload: &Json<'_>) {
        let x = c.contending.remove(k);
        let answered = c.pending.iter().position(|p| {
            p.sent == x.sent
                && matches!(p.kind, PendingKind::Reply { joins: Some(r), .. } if r == x.room)
        });
        if let Some(i) = answered {
            let p = take_pending(c, i);
            self.metrics.record(
                (p.request, "error"),
                now.saturating_sub(p.intended),
                now.saturating_sub(p.sent),
            );
            if now > p.due {
                self.oracle.violate(
                    c.me,
                    p.request,
                    Check::Late,
                    now,
                    format!("within {} ms of the request", self.oracle.deadline() / 1000),
                    format!("after {:.3} ms", now.saturating_sub(p.sent) as f64 / 1e3),
                );
            }
        }
        // Refused: not in the room (unless it was in it before this login).
        if c.joining.iter().any(|(r, _)| *r == x.room)
            && !c.joined.iter().any(|(r, _)| *r == x.room)
        {
            c.joining.retain(|(r, _)| *r != x.room);
            self.oracle.left(c.me, x.room, now);
        }
        let found =
            self.oracle
                .contest_answered(c.me, x.room, x.sent, contest::Answer::Refused, now);
        self.report_contest(x.request, found, now, || payload.excerpt());
    }

    /// Reports what a race proved (INFO where the evidence cannot decide).
    fn report_contest(
        &self,
        request: &'static str,
        found: Option<contest::Finding>,
        now: Micros,
        received: impl FnOnce() -> String,
    ) {
        let Some(f) = found else {
            return;
        };
        let (check, received) = if f.admitted_wrongly {
            (Check::ErrorMissing, format!("admitted: {}", received()))
        } else {
            (
                Check::ErrorUnexpected,
                "every one of them refused".to_string(),
            )
        };
        let cap = f.ambiguous.then_some(Cap {
            level: Level::Info,
            source: "the evidence of a login race cannot decide it (see the expected text)",
        });
        self.oracle
            .violate_capped(f.client, request, check, now, f.expected, received, cap);
    }

    /// Flags replies and errors that did not come: late after their deadline, missing after
    /// twice it (as broadcasts). `now = Micros::MAX` flushes every one.
    pub fn expire_pending(&self, c: &mut Client, now: Micros) {
        let deadline = self.oracle.deadline();
        let (expired, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut c.pending)
            .into_iter()
            .partition(|p| now >= p.due.saturating_add(deadline));
        c.pending = kept;
        for p in expired {
            if p.optional {
                continue;
            }
            let at = now.min(p.due + deadline);
            match p.kind {
                PendingKind::Reply { event, joins } => {
                    self.oracle.violate_capped(
                        c.me,
                        p.request,
                        Check::ReplyMissing,
                        at,
                        format!("`{event}` within {} ms", 2 * deadline / 1000),
                        "nothing".into(),
                        p.cap,
                    );
                    let raced = joins.and_then(|room| {
                        c.contending
                            .iter()
                            .position(|x| x.room == room && x.sent == p.sent)
                    });
                    if let Some(k) = raced {
                        // Whether a racing login got in is unknown: the race says so.
                        let x = c.contending.remove(k);
                        let found = self.oracle.contest_answered(
                            c.me,
                            x.room,
                            x.sent,
                            contest::Answer::None,
                            at,
                        );
                        self.report_contest(x.request, found, at, || "no answer".into());
                    } else if let Some(room) = joins {
                        // Judge the room all the same, as the request and the users file say.
                        self.assume_joined(c, room, at);
                    }
                }
                PendingKind::Http { accept, .. } => self.oracle.violate_capped(
                    c.me,
                    p.request,
                    Check::ReplyMissing,
                    at,
                    format!(
                        "an HTTP response with status {accept:?} within {} ms",
                        2 * deadline / 1000
                    ),
                    "nothing".into(),
                    p.cap,
                ),
                PendingKind::Error { .. } => {
                    // An error on another event, when it was unknown which request it
                    // answered, was reported then; it stands for one missing error here.
                    if let Some(i) = c.foreign_errors.iter().position(|&t| t >= p.sent) {
                        c.foreign_errors.remove(i);
                        continue;
                    }
                    self.oracle.violate_capped(
                        c.me,
                        p.request,
                        Check::ErrorMissing,
                        at,
                        format!(
                            "an error on `{}` within {} ms",
                            p.request,
                            2 * deadline / 1000
                        ),
                        "nothing".into(),
                        p.cap,
                    );
                }
            }
        }
    }

    /// The join of `room` was never confirmed: take the client for a member from `at` on.
    fn assume_joined(&self, c: &mut Client, room: RoomKey, at: Micros) {
        self.oracle.join_assumed(c.me, room, at);
        if let Some(i) = c.joining.iter().position(|(r, _)| *r == room) {
            let entry = c.joining.remove(i);
            if !c.joined.iter().any(|(r, _)| *r == room) {
                c.joined.push(entry);
                c.assumed.push(room);
            }
        }
    }
}

/// Takes the pending request at `i`: it got its answer, so it no longer explains errors that
/// arrive later.
fn take_pending(c: &mut Client, i: usize) -> Pending {
    let p = c.pending.remove(i);
    // Answered: the other answer it might have had instead will not come.
    c.pending
        .retain(|q| !(q.optional && q.sent == p.sent && q.request == p.request));
    if let Some(i) = c
        .recent
        .iter()
        .position(|r| r.request == p.request && r.sent == p.sent)
    {
        c.recent.remove(i);
    }
    p
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vocabulary_tests;
