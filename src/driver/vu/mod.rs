//! One simulated client (a virtual user): connects at its intended arrival time, runs its
//! group's flow on the open-loop schedule, and hands every received event to the oracle.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

mod judge;
mod lifecycle;

use super::Shared;
use crate::dialect::{self, Effect, ErrorStyle, OpContext, EXPECT_ERROR, LENIENT};
use crate::oracle::rules::{Cap, Check};
use crate::oracle::shape;
use crate::oracle::{ClientId, IntMap, Micros, Outgoing, RoomKey};
use crate::scenario::{SendStep, Step, Think};
use crate::schedule::{client_rng, Arrival};
use crate::transport::{Client, ClientError, CloseReason, Incoming, RawIncoming, Transport};

/// A request whose reply or error has not come yet.
struct Pending {
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

#[derive(PartialEq)]
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
}

/// A request sent lately, not yet seen answered.
struct Recent {
    request: &'static str,
    sent: Micros,
    /// The broadcast whose copy reaches the sender when the server accepted the request.
    echo: Option<&'static str>,
}

/// Position in a (possibly nested) flow.
struct Frame<'a> {
    steps: &'a [Step],
    pc: usize,
    remaining: Option<u32>,
    until: Option<Micros>,
}

/// What the client is waiting for before its next step.
struct Waiting {
    event: String,
    until: Micros,
    /// The event must not arrive before `until`.
    absent: bool,
}

/// Runs one client to the end of its flow (or until the run stops).
pub async fn run(shared: Arc<Shared>, arrival: Arrival) {
    // One stop future per client, polled by every wait: re-creating it per wait would
    // register and drop a waiter for every received event.
    let mut stop = stopped(shared.stop.subscribe());
    let start_at = shared.start + arrival.at;
    tokio::select! {
        _ = tokio::time::sleep_until(start_at) => {}
        _ = &mut stop => return,
    }
    let me = arrival.client;
    let intended = shared.micros_of(start_at);
    let mut vu = Vu {
        me,
        joined: Vec::new(),
        joining: Vec::new(),
        departure_announced: false,
        rng: client_rng(shared.scenario.seed, me),
        conn: None,
        shared: shared.clone(),
        pending: Vec::new(),
        recent: std::collections::VecDeque::new(),
        foreign_errors: Vec::new(),
        assumed: Vec::new(),
        session: 0,
        tolerated_errors: HashMap::new(),
        last_seq: IntMap::default(),
        received_since_step: Vec::new(),
        seq: 0,
        ended: false,
        closing: Closing::Unexpected,
        oplog: shared.oplog.is_some().then(Vec::new),
        lenient: false,
        wake: Box::pin(tokio::time::sleep_until(start_at)),
    };
    if vu
        .connect(intended, ("connect", ""), &mut stop)
        .await
        .is_err()
    {
        return;
    }
    shared.counters.connected.inc();
    let flow = &shared.scenario.clients[arrival.group].flow;
    // The connect is a synchronisation point, as an `expect` is: a server slow to accept
    // delays the flow, and that time is the connect's latency, not the generator's lateness.
    vu.run_flow(flow, intended.max(shared.now()), &mut stop)
        .await;
    if let (Some(log), Some(all)) = (vu.oplog.take(), shared.oplog.as_ref()) {
        crate::oracle::lock(all).push((me, log));
    }
}

/// How a close by the server is judged.
enum Closing {
    /// The client is healthy: a close is a violation.
    Unexpected,
    /// The client dropped its heartbeat at `since`: the server must close it inside
    /// `window` (from what it advertised, `adv`).
    HeartbeatDropped {
        since: Micros,
        window: crate::heartbeat::Window,
        adv: crate::heartbeat::Advertised,
    },
    /// The client stalled: the server may drop a slow consumer.
    Tolerated,
}

struct Vu {
    me: ClientId,
    /// Rooms whose join the server confirmed, with their names (for departure notices).
    joined: Vec<(RoomKey, String)>,
    /// Rooms whose join was sent but not confirmed yet.
    joining: Vec<(RoomKey, String)>,
    /// The departure notices were registered already (at the heartbeat drop).
    departure_announced: bool,
    rng: ChaCha8Rng,
    /// None while disconnected (after `vanish`, `close` or a server close, before `reconnect`).
    conn: Option<Client>,
    shared: Arc<Shared>,
    pending: Vec<Pending>,
    /// The requests sent within the last two deadlines that got no answer this client could
    /// see (a reply, an error, or its own copy of the broadcast), oldest first: what an error
    /// may answer.
    recent: std::collections::VecDeque<Recent>,
    /// Arrival times of errors on an event no recent request used, when more than one request
    /// was waiting for an error (which one it answers is unknown): each excuses one
    /// `error-missing` of a request that was waiting then, as the `error-wrong-event` already
    /// reported it.
    foreign_errors: Vec<Micros>,
    /// Rooms whose join was never confirmed and is assumed (see `Oracle::join_assumed`).
    assumed: Vec<RoomKey>,
    /// Connections made so far (the current one's number once connected).
    session: u32,
    /// Errors allowed on an event because its request was sent while not a confirmed member.
    tolerated_errors: HashMap<&'static str, u32>,
    /// Highest content sequence seen per sender (order check).
    last_seq: IntMap<ClientId, u64>,
    /// Event names received since the current step began (for `expect`).
    received_since_step: Vec<String>,
    seq: u64,
    /// The flow cannot go on (stopped, or closed by the server while healthy).
    ended: bool,
    closing: Closing,
    /// The operations performed, when the run keeps an operation log.
    oplog: Option<Vec<String>>,
    /// The client sent lenient (hostile) input: the server may close it, and nothing it
    /// receives is judged any more.
    lenient: bool,
    /// The timer of [`Vu::serve_once`], reset in place.
    wake: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Vu {
    async fn run_flow(&mut self, flow: &[Step], mut sched: Micros, stop: &mut Stop) {
        let mut stack = vec![Frame {
            steps: flow,
            pc: 0,
            remaining: None,
            until: None,
        }];
        let mut waiting: Option<Waiting> = None;
        loop {
            if self.ended {
                return;
            }
            // Decide the next step unless an `expect` is still open.
            if waiting.is_none() {
                let Some(step) = next_step(&mut stack, sched) else {
                    break;
                };
                match step {
                    Step::Think(t) => {
                        sched += self.think(t);
                        continue;
                    }
                    Step::Loop(l) => {
                        stack.push(Frame {
                            steps: &l.steps,
                            pc: 0,
                            remaining: l.count,
                            until: l.duration.map(|d| sched + d.0.as_micros() as u64),
                        });
                        continue;
                    }
                    Step::Expect(e) if e.absent => {
                        // Only what arrives from now on counts against an absence.
                        self.received_since_step.clear();
                        let now = self.shared.now();
                        waiting = Some(Waiting {
                            event: e.event.clone(),
                            until: sched.max(now) + e.within.0.as_micros() as u64,
                            absent: true,
                        });
                    }
                    Step::Expect(e) => {
                        let now = self.shared.now();
                        if self.received_since_step.contains(&e.event) {
                            sched = sched.max(now);
                            self.received_since_step.clear();
                            continue;
                        }
                        let extra = if e.heartbeat {
                            self.longest_heartbeat_close()
                        } else {
                            0
                        };
                        waiting = Some(Waiting {
                            event: e.event.clone(),
                            until: sched.max(now) + e.within.0.as_micros() as u64 + extra,
                            absent: false,
                        });
                    }
                    Step::Op(op) => {
                        // Wait for the op's intended time while serving the socket.
                        if !self.serve_until(sched, stop).await {
                            return;
                        }
                        self.perform(op, sched).await;
                        continue;
                    }
                    Step::Send(send) => {
                        if !self.serve_until(sched, stop).await {
                            return;
                        }
                        self.send(send, sched).await;
                        continue;
                    }
                    Step::Fault(fault) => {
                        if !self.serve_until(sched, stop).await {
                            return;
                        }
                        match self.fault(fault, sched, stop).await {
                            Some(resumed) => sched = sched.max(resumed),
                            None => return,
                        }
                        continue;
                    }
                }
            }
            // An `expect` is open: serve the socket until it is met, breached or times out.
            let w = waiting.as_ref().expect("waiting is set");
            let now = self.shared.now();
            if self.received_since_step.contains(&w.event) {
                self.received_since_step.clear();
                if !w.absent {
                    sched = sched.max(now);
                    waiting = None;
                    continue;
                }
                self.shared.oracle.violate(
                    self.me,
                    &w.event,
                    Check::ExpectAbsent,
                    now,
                    format!("no `{}` before {:.3} ms", w.event, w.until as f64 / 1e3),
                    format!("`{}` at {:.3} ms", w.event, now as f64 / 1e3),
                );
            }
            if now >= w.until {
                if !w.absent {
                    self.shared.oracle.violate(
                        self.me,
                        &w.event,
                        Check::ExpectMissing,
                        now,
                        format!("`{}` by {:.3} ms", w.event, w.until as f64 / 1e3),
                        "nothing".into(),
                    );
                }
                sched = w.until;
                waiting = None;
                continue;
            }
            let until = w.until;
            if !self.serve_once(until, stop).await {
                return;
            }
        }
        // The flow is over: stay until its schedule ends (a trailing `think` keeps the client
        // connected), give in-flight replies their deadline, then leave cleanly.
        if !self.serve_until(sched, stop).await {
            return;
        }
        // What is due to this client must arrive or run out of time before it leaves: a client
        // that left while a broadcast to it was still in flight would prove nothing.
        let flow_end = self.shared.now();
        let deadline = self.shared.oracle.deadline();
        let settle = flow_end + 2 * deadline;
        let mut rooms: Vec<RoomKey> = self.joined.iter().map(|(r, _)| *r).collect();
        if self.shared.spec.uses_everyone {
            rooms.push(dialect::EVERYONE);
        }
        while !self.ended && self.conn.is_some() {
            let replies = self.pending.iter().map(|p| p.due + deadline).max();
            let broadcasts = self.shared.oracle.awaited(self.me, &rooms, flow_end);
            let Some(until) = replies.max(broadcasts).map(|u| u.min(settle)) else {
                break;
            };
            if self.shared.now() >= until || !self.serve_once(until, stop).await {
                break;
            }
        }
        if !self.ended {
            // Stopped or closed by the server: pending replies are moot then.
            self.expire_pending(Micros::MAX);
        }
        self.disconnect().await;
    }

    fn think(&mut self, t: &Think) -> Micros {
        let us = match *t {
            Think::Fixed(d) => d.0.as_micros() as u64,
            Think::Range { min, max } => {
                let (lo, hi) = (min.0.as_micros() as u64, max.0.as_micros() as u64);
                if lo == hi {
                    lo
                } else {
                    self.rng.random_range(lo..=hi)
                }
            }
        };
        self.note(|| format!("think {:.3}ms", us as f64 / 1e3));
        us
    }

    /// How long the server may take to close a client whose heartbeat stops now, from what it
    /// advertised to this client (0 when disconnected).
    fn longest_heartbeat_close(&self) -> Micros {
        let Some(conn) = self.conn.as_ref() else {
            return 0;
        };
        let adv = crate::heartbeat::Advertised {
            eio: conn.heartbeat_model(),
            ping_interval: conn.ping_interval().as_micros() as u64,
            ping_timeout: conn.ping_timeout().as_micros() as u64,
        };
        let scenario = &self.shared.scenario;
        crate::heartbeat::longest_close(
            adv,
            scenario.heartbeat_grace.0.as_micros() as u64,
            scenario.heartbeat_deadline.map(|d| d.0.as_micros() as u64),
        )
    }

    /// Appends to the operation log, when the run keeps one.
    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(log) = self.oplog.as_mut() {
            log.push(line());
        }
    }

    /// Serves the socket until the schedule reaches `at`. False if the client is done.
    async fn serve_until(&mut self, at: Micros, stop: &mut Stop) -> bool {
        // At least once, even when the schedule is already due: a client behind its schedule
        // must still read what arrived, or it would only ever send.
        loop {
            if !self.serve_once(at, stop).await {
                return false;
            }
            if self.shared.now() >= at {
                return !self.ended;
            }
        }
    }

    /// Waits for one incoming item or until `at` (or the earliest pending deadline).
    async fn serve_once(&mut self, at: Micros, stop: &mut Stop) -> bool {
        let deadline = self.shared.oracle.deadline();
        let wake = self
            .pending
            .iter()
            .map(|p| p.due + deadline)
            .min()
            .map_or(at, |d| d.min(at));
        let wake_at = self.shared.instant_of(wake);
        // One timer per client, moved only when the wake time changes: a new `Sleep` per
        // received event would register and cancel a timer entry each time.
        if self.wake.deadline() != wake_at {
            self.wake.as_mut().reset(wake_at);
        }
        let Some(conn) = self.conn.as_mut() else {
            // Disconnected: only time passes.
            tokio::select! {
                biased;
                _ = &mut *stop => { self.ended = true; return false }
                _ = self.wake.as_mut() => {}
            }
            return !self.ended;
        };
        tokio::select! {
            biased;
            _ = &mut *stop => {
                self.ended = true;
                self.disconnect().await;
                return false;
            }
            item = conn.recv_raw() => {
                let now = self.shared.now();
                match item {
                    Ok(RawIncoming::Event(event)) => self.on_event(event, now),
                    Ok(RawIncoming::Other(Incoming::Event { .. } | Incoming::Ack { .. })) => {}
                    Ok(RawIncoming::Other(Incoming::Closed(reason))) => self.on_closed(reason, now),
                    Err(e) => {
                        let closed = matches!(e, ClientError::Closed | ClientError::Io(_));
                        if closed {
                            self.on_closed(CloseReason::Reset(e.to_string()), now);
                        } else {
                            self.shared.oracle.violate(self.me, "connection", Check::Malformed, now,
                                "a valid Engine.IO/Socket.IO frame".into(), e.to_string());
                        }
                    }
                }
            }
            _ = self.wake.as_mut() => {}
        }
        if !self.pending.is_empty() {
            self.expire_pending(self.shared.now());
        }
        !self.ended
    }

    /// What the dialect's request builders and reply checks know about this client.
    fn context<'a>(&self, shared: &'a Shared) -> OpContext<'a> {
        let user = &shared.users[self.me as usize];
        OpContext {
            client: self.me,
            user_id: user.user_id,
            username: &user.username,
            token: &user.token,
            home: user.room.map(|r| (r, user.room_size)),
            roommate: &shared.users[user.roommate as usize].username,
            seq: self.seq,
            run: shared,
        }
    }

    /// Builds, sends and registers one dialect operation.
    async fn perform(&mut self, op: &crate::scenario::OpStep, intended: Micros) {
        let shared = self.shared.clone();
        let spec = shared.spec.op(&op.op).expect("validated op");
        let ctx = self.context(&shared);
        let request = (spec.build)(&ctx, &op.params, &mut self.rng);
        self.received_since_step.clear();
        self.note(|| {
            format!(
                "{} {}",
                request.event,
                shape::excerpt(&Value::Array(request.args.clone()))
            )
        });
        if self.conn.is_none() {
            tracing::warn!(client = self.me, op = %op.op, "operation skipped: the client is disconnected (add a `reconnect` step)");
            return;
        }
        // `expect_error: true` turns any operation into one the server must refuse;
        // `lenient: true` into one whose outcome only the other clients are judged on.
        // The reply a valid request would get: if it comes, the server accepted the request.
        let instead = request.effects.iter().find_map(|e| match e {
            Effect::Join { reply, .. } => Some(*reply),
            Effect::Reply { event } => Some(*event),
            _ => None,
        });
        // The broadcast whose copy comes back to the sender when the server accepts it.
        let echo = request.effects.iter().find_map(|e| match e {
            Effect::Broadcast {
                event,
                include_sender: true,
                ..
            } => Some(*event),
            _ => None,
        });
        let (mut effects, error_text) = match (op.params.get(EXPECT_ERROR), op.params.get(LENIENT))
        {
            (_, Some(Value::Bool(true))) => {
                self.become_lenient();
                (Vec::new(), None)
            }
            (Some(Value::Bool(true)), _) => (vec![Effect::Error], None),
            (Some(Value::String(text)), _) => (vec![Effect::Error], Some(text.clone())),
            _ => (Vec::new(), None),
        };
        // A refusal the seed does not state (`cap`): the server should refuse, but may accept,
        // so the request's own effects are allowed, never required. Either way a relay of a
        // refused broadcast may reach the room's members (dorm: a non-member's message relayed
        // to the user's room), never anyone else.
        let expects_error = !effects.is_empty();
        let cap = match op.params.get(EXPECT_ERROR) {
            Some(Value::Bool(true)) => shared.spec.error_cap(None),
            Some(Value::String(text)) => shared.spec.error_cap(Some(text)),
            _ => None,
        };
        let optional = expects_error;
        let hostile = matches!(op.params.get(LENIENT), Some(Value::Bool(true)));
        if !expects_error && !hostile {
            effects = request.effects;
        } else if expects_error {
            effects.extend(request.effects.into_iter().filter_map(|e| match e {
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
                    unless: crate::dialect::Precondition::Refused,
                    seq,
                    value,
                }),
                e @ (Effect::Join { .. } | Effect::Reply { .. }) if cap.is_some() => Some(e),
                _ => None,
            }));
        }
        // Register what the request must cause *before* writing it: on loopback the first
        // receipts can arrive at other clients before this task runs again.
        let sent = shared.now();
        let due = sent + shared.oracle.deadline();
        let error_key = self.error_key(request.event);
        for effect in effects {
            match effect {
                Effect::Join { room, name, reply } => {
                    shared.oracle.name_room(room, &name);
                    shared.oracle.join_sent(self.me, room, sent);
                    if !self.joining.iter().any(|(r, _)| *r == room) {
                        self.joining.push((room, name));
                    }
                    self.pending.push(Pending {
                        kind: PendingKind::Reply {
                            event: reply,
                            joins: Some(room),
                        },
                        request: request.event,
                        intended,
                        sent,
                        due,
                        cap,
                        optional,
                    });
                }
                Effect::Reply { event } => self.pending.push(Pending {
                    kind: PendingKind::Reply { event, joins: None },
                    request: request.event,
                    intended,
                    sent,
                    due,
                    cap,
                    optional,
                }),
                Effect::Leave { room } => {
                    shared.oracle.left(self.me, room, sent);
                    let was_member = self.joined.iter().any(|(r, _)| *r == room);
                    self.joined.retain(|(r, _)| *r != room);
                    self.joining.retain(|(r, _)| *r != room);
                    if !was_member {
                        *self.tolerated_errors.entry(error_key).or_default() += 1;
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
                        self.seq += 1;
                    }
                    let allowed = shared.oracle.broadcast_sent(Outgoing {
                        sender: self.me,
                        session: self.session,
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
                    if !allowed && unless != crate::dialect::Precondition::Refused {
                        *self.tolerated_errors.entry(error_key).or_default() += 1;
                    }
                }
                Effect::Error => self.pending.push(Pending {
                    kind: PendingKind::Error {
                        text: error_text.clone(),
                        instead,
                    },
                    request: request.event,
                    intended,
                    sent,
                    due,
                    cap,
                    optional: false,
                }),
            }
        }
        self.remember_request(request.event, sent, echo);
        let conn = self.conn.as_mut().expect("connected");
        let frame = conn.encode_event(None, request.event, &request.args);
        // The payload as the transcript shows it: the one argument, or the array of them.
        let payload = frame.payload().into_owned();
        if let Err(e) = conn.send_raw(frame.into_text()).await {
            self.on_closed(CloseReason::Reset(e.to_string()), sent);
            return;
        }
        shared.counters.sent.inc();
        let lateness = sent.saturating_sub(intended);
        shared.metrics.record(("send", "lateness"), lateness, 0);
        if lateness > shared.abort_lateness {
            // Hopelessly behind its schedule: nothing this run measures from now on describes
            // the server. Stop everyone; the verdict is `invalid`.
            if !shared
                .overloaded
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                shared.stop.send_replace(true);
            }
        }
        shared
            .oracle
            .log_raw(self.me, sent, ">>", request.event, &payload);
    }

    /// Sends hostile or malformed input: an arbitrary event, or a raw frame.
    async fn send(&mut self, step: &SendStep, intended: Micros) {
        let shared = self.shared.clone();
        let ctx = self.context(&shared);
        self.received_since_step.clear();
        if self.conn.is_none() {
            tracing::warn!(
                client = self.me,
                "send skipped: the client is disconnected (add a `reconnect` step)"
            );
            return;
        }
        if step.lenient {
            self.become_lenient();
        }
        let sent = shared.now();
        let written = match (&step.event, &step.frame) {
            (Some(event), _) => {
                let event = dialect::intern(event);
                let args: Vec<Value> = step
                    .args
                    .iter()
                    .map(|a| dialect::expand_value(a, &ctx))
                    .collect();
                let payload = Value::Array(args.clone());
                self.note(|| format!("send {event} {}", shape::excerpt(&payload)));
                let text = match &step.expect_error {
                    Some(Value::Bool(true)) => Some(None),
                    Some(Value::String(t)) => Some(Some(t.clone())),
                    _ => None,
                };
                self.remember_request(event, sent, None);
                if let Some(text) = text {
                    let cap = shared.spec.error_cap(text.as_deref());
                    self.pending.push(Pending {
                        kind: PendingKind::Error {
                            text,
                            instead: None,
                        },
                        request: event,
                        intended,
                        sent,
                        due: sent + shared.oracle.deadline(),
                        cap,
                        optional: false,
                    });
                }
                shared.oracle.log(self.me, sent, ">>", event, &payload);
                let conn = self.conn.as_mut().expect("connected");
                conn.send_event(None, event, &args).await
            }
            (None, Some(frame)) => {
                let frame = dialect::expand(frame, &ctx);
                let shown = Value::String(frame.clone());
                self.note(|| format!("send frame {}", shape::excerpt(&shown)));
                shared
                    .oracle
                    .log(self.me, sent, ">>", "(raw frame)", &shown);
                let conn = self.conn.as_mut().expect("connected");
                conn.send_raw(frame).await
            }
            (None, None) => unreachable!("validated: a send has an event or a frame"),
        };
        match written {
            Ok(()) => shared.counters.sent.inc(),
            Err(e) => self.on_closed(CloseReason::Reset(e.to_string()), sent),
        }
    }

    /// Keeps the requests of the last two deadlines (bounded: an error answers a recent one).
    fn remember_request(&mut self, request: &'static str, at: Micros, echo: Option<&'static str>) {
        let horizon = 2 * self.shared.oracle.deadline();
        while self
            .recent
            .front()
            .is_some_and(|r| r.sent + horizon < at || self.recent.len() >= 64)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            request,
            sent: at,
            echo,
        });
    }

    /// After hostile input: the server may answer anything, or close this connection.
    fn become_lenient(&mut self) {
        self.lenient = true;
        self.shared.oracle.set_lenient(self.me);
    }

    /// The key errors of a request are counted under: its event, or the error channel.
    fn error_key(&self, request: &'static str) -> &'static str {
        match self.shared.spec.errors {
            ErrorStyle::SameEvent { .. } => request,
            ErrorStyle::Channel { event } => event,
        }
    }
}

/// Advances the flow to its next step, unwinding finished loops.
fn next_step<'a>(stack: &mut Vec<Frame<'a>>, sched: Micros) -> Option<&'a Step> {
    loop {
        let frame = stack.last_mut()?;
        if frame.pc < frame.steps.len() {
            frame.pc += 1;
            return Some(&frame.steps[frame.pc - 1]);
        }
        // End of this frame's steps: iterate the loop again or pop it.
        let again = stack.len() > 1 && {
            let f = stack.last_mut().expect("frame");
            if let Some(n) = f.remaining.as_mut() {
                *n -= 1;
            }
            let count_ok = f.remaining.is_none_or(|n| n > 0);
            let time_ok = f.until.is_none_or(|u| sched < u);
            count_ok && time_ok
        };
        if again {
            stack.last_mut().expect("frame").pc = 0;
        } else {
            stack.pop();
        }
    }
}

/// Resolves once the run is told to stop (Ctrl-C); never polled again after that.
///
/// Polled on every wake of its client, so the common case is one atomic load: once the wait
/// has registered the task's waker, it is polled again only after the stop flag changed.
pub(super) struct Stop {
    changed: tokio::sync::watch::Receiver<bool>,
    wait: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    registered: bool,
}

impl std::future::Future for Stop {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        // The waker registered by the first poll stays valid: a Stop is polled by its own
        // task only, whose waker does not change.
        if self.registered && matches!(self.changed.has_changed(), Ok(false)) {
            return std::task::Poll::Pending;
        }
        self.registered = true;
        self.wait.as_mut().poll(cx)
    }
}

fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) -> Stop {
    Stop {
        changed: stop.clone(),
        wait: Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        }),
        registered: false,
    }
}
