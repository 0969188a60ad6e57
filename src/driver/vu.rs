//! One simulated client (a virtual user): connects at its intended arrival time, runs its
//! group's flow on the open-loop schedule, and hands every received event to the oracle.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::Shared;
use crate::client::{ClientError, CloseReason, Connection, Heartbeat, Incoming};
use crate::dialect::{
    named_room, user_room, Attribution, Effect, ErrorStyle, EventSpec, OpContext, Precondition,
    RoomOf, SenderKey, EVERYONE, EXPECT_ERROR,
};
use crate::oracle::rules::Check;
use crate::oracle::shape::{self, Problem};
use crate::oracle::{ClientId, Micros, Outgoing, Receipt, RoomKey};
use crate::scenario::{Fault, Step, Think};
use crate::schedule::{client_rng, Arrival};

/// A request whose reply or error has not come yet.
struct Pending {
    kind: PendingKind,
    /// The request's event name.
    request: &'static str,
    intended: Micros,
    sent: Micros,
    due: Micros,
}

#[derive(PartialEq)]
enum PendingKind {
    /// A reply event (e.g. `last_data`) must come; it confirms the join of `joins`.
    Reply {
        event: &'static str,
        joins: Option<RoomKey>,
    },
    /// An error must come (on the request's own event, or on the dialect's error channel),
    /// with this text when given.
    Error { text: Option<String> },
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
        tolerated_errors: HashMap::new(),
        last_seq: HashMap::new(),
        received_since_step: Vec::new(),
        seq: 0,
        ended: false,
        closing: Closing::Unexpected,
        oplog: shared.oplog.is_some().then(Vec::new),
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
    vu.run_flow(flow, intended, &mut stop).await;
    if let (Some(log), Some(all)) = (vu.oplog.take(), shared.oplog.as_ref()) {
        crate::oracle::lock(all).push((me, log));
    }
}

/// How a close by the server is judged.
enum Closing {
    /// The client is healthy: a close is a violation.
    Unexpected,
    /// The client dropped its heartbeat at `since`: the server must close it within
    /// [`since + earliest`, `since + latest`].
    HeartbeatDropped {
        since: Micros,
        earliest: Micros,
        latest: Micros,
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
    conn: Option<Connection>,
    shared: Arc<Shared>,
    pending: Vec<Pending>,
    /// Errors allowed on an event because its request was sent while not a confirmed member.
    tolerated_errors: HashMap<&'static str, u32>,
    /// Highest content sequence seen per sender (order check).
    last_seq: HashMap<ClientId, u64>,
    /// Event names received since the current step began (for `expect`).
    received_since_step: Vec<String>,
    seq: u64,
    /// The flow cannot go on (stopped, or closed by the server while healthy).
    ended: bool,
    closing: Closing,
    /// The operations performed, when the run keeps an operation log.
    oplog: Option<Vec<String>>,
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
                        waiting = Some(Waiting {
                            event: e.event.clone(),
                            until: sched.max(now) + e.within.0.as_micros() as u64,
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
            // An `expect` is open: serve the socket until it is met or times out.
            let w = waiting.as_ref().expect("waiting is set");
            if w.absent {
                let now = self.shared.now();
                if self.received_since_step.contains(&w.event) {
                    self.shared.oracle.violate(
                        self.me,
                        &w.event,
                        Check::ExpectAbsent,
                        now,
                        format!("no `{}` before {:.3} ms", w.event, w.until as f64 / 1e3),
                        format!("`{}` at {:.3} ms", w.event, now as f64 / 1e3),
                    );
                    self.received_since_step.clear();
                }
                if now >= w.until {
                    sched = w.until;
                    waiting = None;
                    continue;
                }
                let until = w.until;
                if !self.serve_once(until, stop).await {
                    return;
                }
                continue;
            }
            if self.received_since_step.contains(&w.event) {
                sched = sched.max(self.shared.now());
                self.received_since_step.clear();
                waiting = None;
                continue;
            }
            let now = self.shared.now();
            if now >= w.until {
                self.shared.oracle.violate(
                    self.me,
                    &w.event,
                    Check::ExpectMissing,
                    now,
                    format!("`{}` by {:.3} ms", w.event, w.until as f64 / 1e3),
                    "nothing".into(),
                );
                sched = w.until;
                waiting = None;
                continue;
            }
            let until = w.until;
            if !self.serve_once(until, stop).await {
                return;
            }
        }
        // The flow is over: give in-flight replies their deadline, then leave cleanly.
        let settle = self.shared.now() + self.shared.oracle.deadline();
        while !self.pending.is_empty() && !self.ended && self.conn.is_some() {
            if !self.serve_once(settle, stop).await || self.shared.now() >= settle {
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

    /// Appends to the operation log, when the run keeps one.
    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(log) = self.oplog.as_mut() {
            log.push(line());
        }
    }

    /// Connects (or reconnects) as this client's user. `Err` ends the client.
    async fn connect(
        &mut self,
        intended: Micros,
        metric: crate::metrics::MetricKey,
        stop: &mut Stop,
    ) -> Result<(), ()> {
        let shared = self.shared.clone();
        let begun = shared.now();
        shared.counters.connecting.inc();
        let connect = tokio::select! {
            c = Connection::connect(&shared.target, &shared.client_config) => c,
            _ = &mut *stop => { shared.counters.connecting.dec(); self.ended = true; return Err(()) }
        };
        shared.counters.connecting.dec();
        let now = shared.now();
        match connect {
            Ok(conn) => {
                shared.metrics.record(
                    metric,
                    now.saturating_sub(intended),
                    now.saturating_sub(begun),
                );
                shared.counters.active.inc();
                self.conn = Some(conn);
                if shared.spec.uses_everyone {
                    shared.oracle.join_sent(self.me, EVERYONE, now);
                    shared.oracle.join_confirmed(self.me, EVERYONE, now);
                }
                self.closing = Closing::Unexpected;
                Ok(())
            }
            Err(e) => {
                shared.counters.connect_errors.inc();
                shared.oracle.violate(
                    self.me,
                    "connection",
                    Check::ConnectFailed,
                    now,
                    "a Socket.IO session".into(),
                    e.to_string(),
                );
                Err(())
            }
        }
    }

    /// Performs a client fault; returns the schedule time to resume from, or None if the
    /// client is done.
    async fn fault(&mut self, fault: &Fault, intended: Micros, stop: &mut Stop) -> Option<Micros> {
        let shared = self.shared.clone();
        let now = shared.now();
        match fault {
            Fault::DropHeartbeats => {
                self.note(|| "drop_heartbeats".into());
                let Some(conn) = self.conn.as_mut() else {
                    return Some(now);
                };
                conn.set_heartbeat(Heartbeat::Dropped);
                // EIO 4: a ping may already be on its way, answered by nobody: the earliest
                // legitimate close is one pingTimeout away. EIO 3: the last ping was sent at
                // most one interval ago. Either way the latest is interval + timeout + grace.
                let (interval, timeout) = (
                    conn.ping_interval().as_micros() as u64,
                    conn.ping_timeout().as_micros() as u64,
                );
                let grace = shared.scenario.heartbeat_grace.0.as_micros() as u64;
                let earliest = timeout.saturating_sub(grace.min(timeout));
                let latest = match shared.scenario.heartbeat_deadline {
                    Some(d) => d.0.as_micros() as u64,
                    None => interval + timeout + grace,
                };
                self.closing = Closing::HeartbeatDropped {
                    since: now,
                    earliest,
                    latest,
                };
                // The server announces the departure when it notices it, up to `latest` away.
                self.announce_departure(now, Some(latest + shared.oracle.deadline()));
                while self.conn.is_some() && shared.now() < now + latest {
                    if !self.serve_once(now + latest, stop).await {
                        return None;
                    }
                }
                if self.conn.is_some() {
                    let at = shared.now();
                    shared.oracle.violate(
                        self.me,
                        "connection",
                        Check::HeartbeatTimeoutMissing,
                        at,
                        format!(
                            "closed within {:.0} ms of the last heartbeat (pingInterval + pingTimeout + grace)",
                            latest as f64 / 1e3
                        ),
                        "still open".into(),
                    );
                    self.vanish();
                }
                Some(shared.now())
            }
            Fault::Vanish => {
                self.note(|| "vanish".into());
                self.vanish();
                Some(now)
            }
            Fault::Close => {
                self.note(|| "close".into());
                self.disconnect().await;
                Some(now)
            }
            Fault::Stall(d) => {
                self.note(|| format!("stall {d}"));
                let until = now + d.0.as_micros() as u64;
                for &(room, _) in &self.joined {
                    shared.oracle.excuse(self.me, room, now, until);
                }
                self.closing = Closing::Tolerated;
                tokio::select! {
                    _ = tokio::time::sleep_until(shared.instant_of(until)) => {}
                    _ = &mut *stop => { self.ended = true; self.disconnect().await; return None }
                }
                Some(until)
            }
            Fault::Reconnect(r) => {
                if self.conn.is_some() {
                    // Reconnecting a live connection: a new session replaces it.
                    self.disconnect().await;
                }
                let mut wait = r.after.map_or(0, |d| d.0.as_micros() as u64);
                let jitter = r.jitter.map_or(0, |d| d.0.as_micros() as u64);
                let mut at = intended.max(now);
                for attempt in 1..=r.attempts {
                    let extra = if jitter > 0 {
                        self.rng.random_range(0..=jitter)
                    } else {
                        0
                    };
                    at += wait + extra;
                    self.note(|| {
                        format!(
                            "reconnect attempt {attempt} after {:.3}ms",
                            (wait + extra) as f64 / 1e3
                        )
                    });
                    tokio::select! {
                        _ = tokio::time::sleep_until(shared.instant_of(at)) => {}
                        _ = &mut *stop => { self.ended = true; return None }
                    }
                    if self.connect(at, ("reconnect", ""), stop).await.is_ok() {
                        return Some(shared.now());
                    }
                    if self.ended {
                        return None;
                    }
                    wait = ((wait.max(1000)) as f64 * r.backoff) as u64;
                }
                self.ended = true;
                None
            }
        }
    }

    /// Ends the TCP connection with a reset (as a killed process does).
    fn vanish(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.vanish();
            self.departed(self.shared.now());
        }
    }

    /// Clean disconnect, if connected.
    async fn disconnect(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            self.departed(self.shared.now());
            conn.close_in_place().await;
        }
    }

    /// The connection is gone: the client leaves every room and its pending replies are moot.
    fn departed(&mut self, at: Micros) {
        self.announce_departure(at, None);
        for (room, _) in self.joined.drain(..).chain(self.joining.drain(..)) {
            self.shared.oracle.left(self.me, room, at);
        }
        if self.shared.spec.uses_everyone {
            self.shared.oracle.left(self.me, EVERYONE, at);
        }
        self.departure_announced = false;
        self.pending.clear();
        self.tolerated_errors.clear();
        self.shared.counters.active.dec();
    }

    /// Registers what the server must tell the others about this client's departure (once per
    /// connection; only for a logged-in client: one whose own user room is confirmed).
    fn announce_departure(&mut self, at: Micros, deadline: Option<Micros>) {
        let shared = self.shared.clone();
        let Some(departure) = shared.spec.departure else {
            return;
        };
        let me = user_room(&shared.users[self.me as usize].username);
        if self.departure_announced || !self.joined.iter().any(|(r, _)| *r == me) {
            return;
        }
        self.departure_announced = true;
        let send = |room, event, value| Outgoing {
            sender: self.me,
            room,
            event,
            include_sender: false,
            unless: Precondition::None,
            seq: None,
            value,
            intended: at,
            sent: at,
            metric: "after-fault",
            deadline,
        };
        if let Some(event) = departure.each_room {
            for (room, name) in self.joined.iter().filter(|(r, _)| *r != me) {
                shared
                    .oracle
                    .broadcast_sent(send(*room, event, Some(Value::String(name.clone()))));
            }
        }
        if let Some(event) = departure.everyone {
            shared.oracle.broadcast_sent(send(EVERYONE, event, None));
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
        let wake = self
            .pending
            .iter()
            .map(|p| p.due)
            .min()
            .map_or(at, |d| d.min(at));
        let wake_at = self.shared.instant_of(wake);
        let Some(conn) = self.conn.as_mut() else {
            // Disconnected: only time passes.
            tokio::select! {
                biased;
                _ = &mut *stop => { self.ended = true; return false }
                _ = tokio::time::sleep_until(wake_at) => {}
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
            item = conn.recv() => {
                let now = self.shared.now();
                match item {
                    Ok(Incoming::Event { name, args, .. }) => self.on_event(name, args, now),
                    Ok(Incoming::Ack { .. }) => {}
                    Ok(Incoming::Closed(reason)) => self.on_closed(reason, now),
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
            _ = tokio::time::sleep_until(wake_at) => {}
        }
        self.expire_pending(self.shared.now());
        !self.ended
    }

    /// Builds, sends and registers one dialect operation.
    async fn perform(&mut self, op: &crate::scenario::OpStep, intended: Micros) {
        let shared = self.shared.clone();
        let user = &shared.users[self.me as usize];
        let spec = shared.spec.op(&op.op).expect("validated op");
        let ctx = OpContext {
            client: self.me,
            user_id: user.user_id,
            username: &user.username,
            token: &user.token,
            home: user.room.map(|r| (r, user.room_size)),
            roommate: &shared.users[user.roommate as usize].username,
            seq: self.seq,
        };
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
        // `expect_error: true` turns any operation into one the server must refuse.
        let (effects, error_text) = match op.params.get(EXPECT_ERROR) {
            Some(Value::Bool(true)) => (vec![Effect::Error], None),
            Some(Value::String(text)) => (vec![Effect::Error], Some(text.clone())),
            _ => (request.effects, None),
        };
        // Register what the request must cause *before* writing it: on loopback the first
        // receipts can arrive at other clients before this task runs again.
        let sent = shared.now();
        let due = sent + shared.oracle.deadline();
        let error_key = self.error_key(request.event);
        for effect in effects {
            match effect {
                Effect::Join { room, name, reply } => {
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
                    });
                }
                Effect::Reply { event } => self.pending.push(Pending {
                    kind: PendingKind::Reply { event, joins: None },
                    request: request.event,
                    intended,
                    sent,
                    due,
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
                    if !allowed {
                        *self.tolerated_errors.entry(error_key).or_default() += 1;
                    }
                }
                Effect::Error => self.pending.push(Pending {
                    kind: PendingKind::Error {
                        text: error_text.clone(),
                    },
                    request: request.event,
                    intended,
                    sent,
                    due,
                }),
            }
        }
        let conn = self.conn.as_mut().expect("connected");
        if let Err(e) = conn.emit(request.event, &request.args).await {
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
        let payload = match request.args.len() {
            1 => request.args.into_iter().next().unwrap_or_default(),
            _ => Value::Array(request.args),
        };
        shared
            .oracle
            .log(self.me, sent, ">>", request.event, &payload);
    }

    /// The key errors of a request are counted under: its event, or the error channel.
    fn error_key(&self, request: &'static str) -> &'static str {
        match self.shared.spec.errors {
            ErrorStyle::SameEvent { .. } => request,
            ErrorStyle::Channel { event } => event,
        }
    }

    /// Judges one received event.
    fn on_event(&mut self, name: String, mut args: Vec<Value>, now: Micros) {
        let shared = self.shared.clone();
        shared.counters.received.inc();
        let oracle = &shared.oracle;
        let payload = if args.len() == 1 {
            args.pop().expect("one arg")
        } else {
            Value::Array(args)
        };
        if shared.spec.is_error(&name, &payload) {
            self.on_error(&name, &payload, now);
        } else if let Some((_, spec)) = shared.spec.event(&name) {
            let mut problems = Vec::new();
            shape::check(&payload, &spec.shape, spec.name, &mut problems);
            for p in problems {
                match p {
                    Problem::Shape(msg) => oracle.violate(
                        self.me,
                        spec.name,
                        Check::Shape,
                        now,
                        msg,
                        shape::excerpt(&payload),
                    ),
                    Problem::TimeFormat(msg) => oracle.violate(
                        self.me,
                        spec.name,
                        Check::TimeFormat,
                        now,
                        "an RFC 3339 datetime".into(),
                        msg,
                    ),
                }
            }
            for field in spec.forbidden {
                if payload.get(field).is_some() {
                    oracle.violate(
                        self.me,
                        spec.name,
                        Check::Forbidden,
                        now,
                        format!("no `{field}` field"),
                        shape::excerpt(&payload),
                    );
                }
            }
            match spec.attribution {
                Attribution::Reply => self.on_reply(spec.name, &payload, now),
                Attribution::ContentId { field, sender } => {
                    self.on_content_broadcast(spec, &payload, field, sender, now)
                }
                Attribution::SenderFifo {
                    sender,
                    value_field,
                } => self.on_fifo_broadcast(spec, &payload, sender, value_field, now),
            }
        } else {
            oracle.violate(
                self.me,
                "unknown-event",
                Check::Unknown,
                now,
                format!("one of the {} events", shared.spec.name),
                format!("{name} {}", shape::excerpt(&payload)),
            );
        }
        // Distinct names only: bounded by the dialect's events, not by traffic.
        if !self.received_since_step.contains(&name) {
            self.received_since_step.push(name.clone());
        }
        oracle.log(self.me, now, "<<", &name, &payload);
    }

    fn on_reply(&mut self, event: &'static str, payload: &Value, now: Micros) {
        let shared = self.shared.clone();
        let Some(i) = self
            .pending
            .iter()
            .position(|p| matches!(p.kind, PendingKind::Reply { event: e, .. } if e == event))
        else {
            shared.oracle.violate(
                self.me,
                event,
                Check::ReplyUnsolicited,
                now,
                "no reply: this client has no request waiting for one".into(),
                shape::excerpt(payload),
            );
            return;
        };
        let p = self.pending.remove(i);
        let metric = (p.request, event);
        shared.metrics.record(
            metric,
            now.saturating_sub(p.intended),
            now.saturating_sub(p.sent),
        );
        if now > p.due {
            shared.oracle.violate(
                self.me,
                event,
                Check::Late,
                now,
                format!(
                    "within {} ms of the request",
                    shared.oracle.deadline() / 1000
                ),
                format!("after {:.3} ms", now.saturating_sub(p.sent) as f64 / 1e3),
            );
        }
        let user = &shared.users[self.me as usize];
        let ctx = OpContext {
            client: self.me,
            user_id: user.user_id,
            username: &user.username,
            token: &user.token,
            home: user.room.map(|r| (r, user.room_size)),
            roommate: "",
            seq: self.seq,
        };
        if let Err(msg) = (shared.spec.check_reply)(event, payload, &ctx) {
            shared.oracle.violate(
                self.me,
                event,
                Check::ReplyContent,
                now,
                msg,
                shape::excerpt(payload),
            );
        }
        if let PendingKind::Reply {
            joins: Some(room), ..
        } = p.kind
        {
            shared.oracle.join_confirmed(self.me, room, now);
            if let Some(i) = self.joining.iter().position(|(r, _)| *r == room) {
                let entry = self.joining.remove(i);
                if !self.joined.iter().any(|(r, _)| *r == room) {
                    self.joined.push(entry);
                }
            }
        }
    }

    /// The client a payload names as the sender.
    fn sender_of(&self, payload: &Value, key: SenderKey) -> Option<ClientId> {
        let shared = &self.shared;
        match key {
            SenderKey::UserId(f) => match &payload[f] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .and_then(|id| shared.by_user_id.get(&id).copied()),
            SenderKey::Username(f) => payload[f]
                .as_str()
                .and_then(|n| shared.by_username.get(n).copied()),
        }
    }

    /// The room a received broadcast belongs to.
    fn room_of(&self, spec: &EventSpec, payload: &Value, sender: ClientId) -> Option<RoomKey> {
        match spec.room {
            RoomOf::SenderHome => self.shared.users[sender as usize].room,
            RoomOf::Field(f) => payload[f].as_str().map(named_room),
            RoomOf::Everyone => Some(EVERYONE),
            RoomOf::ReceiverUser => Some(user_room(&self.shared.users[self.me as usize].username)),
        }
    }

    fn on_content_broadcast(
        &mut self,
        spec: &'static EventSpec,
        payload: &Value,
        field: &str,
        sender_key: SenderKey,
        now: Micros,
    ) {
        let shared = self.shared.clone();
        let event = spec.name;
        let Some((sender, seq)) = payload
            .get(field)
            .and_then(Value::as_str)
            .and_then(crate::dialect::parse_content_id)
            .filter(|(s, _)| (*s as usize) < shared.users.len())
        else {
            shared.oracle.violate(
                self.me,
                event,
                Check::Unknown,
                now,
                format!("`{field}` carrying a roomrig content id"),
                shape::excerpt(payload),
            );
            return;
        };
        if self.sender_of(payload, sender_key) != Some(sender) {
            let user = &shared.users[sender as usize];
            shared.oracle.violate(
                self.me,
                event,
                Check::WrongSender,
                now,
                format!(
                    "{} naming user {} ({})",
                    sender_key.field(),
                    user.user_id,
                    user.username
                ),
                shape::excerpt(&payload[sender_key.field()]),
            );
        }
        let last = self.last_seq.entry(sender).or_insert(seq);
        if seq < *last {
            shared.oracle.violate(
                self.me,
                event,
                Check::Order,
                now,
                format!("sequence after {} from client {sender}", *last),
                format!("sequence {seq}"),
            );
        } else {
            *last = seq;
        }
        let Some(room) = self.room_of(spec, payload, sender) else {
            return;
        };
        let receipt =
            shared
                .oracle
                .broadcast_received(self.me, room, event, sender, Some(seq), None, now);
        self.on_receipt(event, receipt, payload, now);
    }

    fn on_fifo_broadcast(
        &mut self,
        spec: &'static EventSpec,
        payload: &Value,
        sender_key: SenderKey,
        value_field: Option<&str>,
        now: Micros,
    ) {
        let shared = self.shared.clone();
        let event = spec.name;
        let Some(sender) = self.sender_of(payload, sender_key) else {
            shared.oracle.violate(
                self.me,
                event,
                Check::Unknown,
                now,
                format!("`{}` naming a user of the run", sender_key.field()),
                shape::excerpt(payload),
            );
            return;
        };
        let Some(room) = self.room_of(spec, payload, sender) else {
            return;
        };
        let receipt = shared.oracle.broadcast_received(
            self.me,
            room,
            event,
            sender,
            None,
            value_field.and_then(|f| payload.get(f)),
            now,
        );
        self.on_receipt(event, receipt, payload, now);
    }

    fn on_receipt(&mut self, event: &'static str, receipt: Receipt, payload: &Value, now: Micros) {
        let shared = &self.shared;
        match receipt {
            Receipt::Delivered(m) | Receipt::Allowed(m) => {
                shared.metrics.record(
                    (event, m.metric),
                    now.saturating_sub(m.intended),
                    now.saturating_sub(m.sent),
                );
                if m.late && matches!(receipt, Receipt::Delivered(_)) {
                    shared.oracle.violate(
                        self.me,
                        event,
                        Check::Late,
                        now,
                        "within the deadline of the send".into(),
                        format!("after {:.3} ms", now.saturating_sub(m.sent) as f64 / 1e3),
                    );
                }
            }
            Receipt::Backlog => {}
            Receipt::Fault(check, expected) => shared.oracle.violate(
                self.me,
                event,
                check,
                now,
                expected,
                shape::excerpt(payload),
            ),
        }
    }

    fn on_error(&mut self, event: &str, payload: &Value, now: Micros) {
        let shared = self.shared.clone();
        let mut problems = Vec::new();
        shape::check(payload, &shared.spec.error_shape, event, &mut problems);
        for p in problems {
            if let Problem::Shape(msg) = p {
                shared.oracle.violate(
                    self.me,
                    "error",
                    Check::Shape,
                    now,
                    msg,
                    shape::excerpt(payload),
                );
            }
        }
        let channel = matches!(shared.spec.errors, ErrorStyle::Channel { .. });
        // Which pending request this error answers: on a channel, the oldest that expects one.
        let answers = |p: &Pending| {
            matches!(p.kind, PendingKind::Error { .. }) && (channel || p.request == event)
        };
        if let Some(i) = self.pending.iter().position(answers) {
            let p = self.pending.remove(i);
            if let PendingKind::Error { text: Some(want) } = &p.kind {
                let got = match shared.spec.errors {
                    ErrorStyle::SameEvent { field } => payload[field].as_str(),
                    ErrorStyle::Channel { .. } => payload.as_str(),
                };
                if got != Some(want.as_str()) {
                    shared.oracle.violate(
                        self.me,
                        p.request,
                        Check::ErrorContent,
                        now,
                        format!("the error {want:?}"),
                        shape::excerpt(payload),
                    );
                }
            }
            shared.metrics.record(
                (p.request, "error"),
                now.saturating_sub(p.intended),
                now.saturating_sub(p.sent),
            );
            return;
        }
        let key = if channel {
            self.error_key("")
        } else {
            shared
                .spec
                .ops
                .iter()
                .map(|o| o.name)
                .find(|n| *n == event)
                .unwrap_or("error")
        };
        if let Some(n) = self.tolerated_errors.get_mut(key).filter(|n| **n > 0) {
            *n -= 1;
            return;
        }
        if let Some(p) = self
            .pending
            .iter()
            .find(|p| matches!(p.kind, PendingKind::Error { .. }))
            .filter(|_| !channel)
        {
            shared.oracle.violate(
                self.me,
                p.request,
                Check::ErrorWrongEvent,
                now,
                format!("the error on `{}`, the event of the request", p.request),
                format!("{event} {}", shape::excerpt(payload)),
            );
        } else if let Some(i) = self.pending.iter().position(|p| {
            matches!(p.kind, PendingKind::Reply { .. }) && (channel || p.request == event)
        }) {
            let p = self.pending.remove(i);
            shared.oracle.violate(
                self.me,
                p.request,
                Check::ErrorUnexpected,
                now,
                "the reply to a valid request".into(),
                shape::excerpt(payload),
            );
        } else {
            shared.oracle.violate(
                self.me,
                key,
                Check::ErrorUnexpected,
                now,
                format!("no error: every request this client sent on `{event}` was valid"),
                shape::excerpt(payload),
            );
        }
    }

    /// Flags replies and errors whose deadline has passed.
    fn expire_pending(&mut self, now: Micros) {
        let shared = self.shared.clone();
        let deadline_ms = shared.oracle.deadline() / 1000;
        self.pending.retain(|p| {
            if now < p.due {
                return true;
            }
            let (scope, check, expected) = match p.kind {
                PendingKind::Reply { event, .. } => (
                    p.request,
                    Check::ReplyMissing,
                    format!("`{event}` within {deadline_ms} ms"),
                ),
                PendingKind::Error { .. } => (
                    p.request,
                    Check::ErrorMissing,
                    format!("an error on `{}` within {deadline_ms} ms", p.request),
                ),
            };
            shared.oracle.violate(
                self.me,
                scope,
                check,
                now.min(p.due),
                expected,
                "nothing".into(),
            );
            false
        });
    }

    fn on_closed(&mut self, reason: CloseReason, now: Micros) {
        if self.conn.take().is_none() {
            return;
        }
        self.departed(now);
        let shared = self.shared.clone();
        match std::mem::replace(&mut self.closing, Closing::Unexpected) {
            Closing::HeartbeatDropped {
                since,
                earliest,
                latest,
            } => {
                shared
                    .metrics
                    .record(("heartbeat", "close"), now - since, now - since);
                if now < since + earliest {
                    shared.oracle.violate(
                        self.me,
                        "connection",
                        Check::HeartbeatTimeoutEarly,
                        now,
                        format!(
                            "no close before pingTimeout ({:.0} ms after the heartbeat stopped)",
                            earliest as f64 / 1e3
                        ),
                        format!(
                            "closed after {:.3} ms ({reason:?})",
                            (now - since) as f64 / 1e3
                        ),
                    );
                } else if now > since + latest {
                    shared.oracle.violate(
                        self.me,
                        "connection",
                        Check::HeartbeatTimeoutMissing,
                        now,
                        format!("closed within {:.0} ms", latest as f64 / 1e3),
                        format!("closed after {:.3} ms", (now - since) as f64 / 1e3),
                    );
                }
            }
            Closing::Tolerated => {}
            Closing::Unexpected => {
                self.ended = true;
                shared.counters.unexpected_closes.inc();
                shared.oracle.violate(
                    self.me,
                    "connection",
                    Check::UnexpectedClose,
                    now,
                    "the connection stays open while the client is healthy".into(),
                    format!("{reason:?}"),
                );
            }
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
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) -> Stop {
    Box::pin(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
}
