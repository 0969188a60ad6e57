//! One simulated client (a virtual user): connects at its intended arrival time, runs its
//! group's flow on the open-loop schedule, and hands everything it does and receives to the
//! judge ([`crate::oracle::judge`]), which keeps the client's judging state.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

mod decode;
mod lifecycle;

use super::Shared;
use crate::dialect::{self, EXPECT_ERROR, LENIENT};
use crate::oracle::judge::{self, Intent};
use crate::oracle::shape;
use crate::oracle::{ClientId, Micros};
use crate::scenario::{SendStep, Step, Think};
use crate::schedule::{client_rng, Arrival};
use crate::transport::{
    Client, ClientError, CloseReason, Incoming, RawEvent, RawIncoming, Transport,
};

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
        client: judge::Client::new(me),
        rng: client_rng(shared.scenario.seed, me),
        conn: None,
        shared: shared.clone(),
        ended: false,
        oplog: shared.oplog.is_some().then(Vec::new),
        answers: Vec::new(),
        vanish_on: shared.scenario.clients[arrival.group].vanish_on.clone(),
        vanish_now: false,
        wake: Box::pin(tokio::time::sleep_until(start_at)),
        http: None,
        withhold_answers: false,
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
    shared.oracle.release_transcript(me);
}

struct Vu {
    me: ClientId,
    /// What the judge knows of this client.
    client: judge::Client,
    rng: ChaCha8Rng,
    /// None while disconnected (after `vanish`, `close` or a server close, before `reconnect`).
    conn: Option<Client>,
    shared: Arc<Shared>,
    /// The flow cannot go on (stopped, or closed by the server while healthy).
    ended: bool,
    /// The operations performed, when the run keeps an operation log.
    oplog: Option<Vec<String>>,
    /// The timer of [`Vu::serve_once`], reset in place.
    wake: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Operations that answer received events, to perform next (see
    /// [`crate::dialect::WebSocketDialect::answers`]).
    answers: Vec<crate::scenario::OpStep>,
    /// The event on whose receipt this client vanishes instead of answering (the group's
    /// `vanish_on`), and whether it has arrived.
    vanish_on: Option<String>,
    vanish_now: bool,
    /// Where this client's HTTP operations hand their responses back (made by the first).
    http: Option<HttpReplies>,
    /// `withhold_answers`: events the dialect answers by itself go unanswered.
    withhold_answers: bool,
}

type HttpReplies = (
    tokio::sync::mpsc::UnboundedSender<super::http::HttpDone>,
    tokio::sync::mpsc::UnboundedReceiver<super::http::HttpDone>,
);

/// The next HTTP response of a client; never resolves for a client that sent no request.
async fn http_reply(http: &mut Option<HttpReplies>) -> super::http::HttpDone {
    match http.as_mut() {
        Some((_, rx)) => match rx.recv().await {
            Some(done) => done,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
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
                        self.client.step_begins();
                        let now = self.shared.now();
                        waiting = Some(Waiting {
                            event: e.event.clone(),
                            until: sched.max(now) + e.within.0.as_micros() as u64,
                            absent: true,
                        });
                    }
                    Step::Expect(e) => {
                        let now = self.shared.now();
                        if self.client.seen_since_step(&e.event) {
                            sched = sched.max(now);
                            self.client.step_begins();
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
            if self.client.seen_since_step(&w.event) {
                self.client.step_begins();
                if !w.absent {
                    sched = sched.max(now);
                    waiting = None;
                    continue;
                }
                self.shared
                    .judge()
                    .expect_breached(&self.client, &w.event, w.until, now);
            }
            if now >= w.until {
                if !w.absent {
                    self.shared
                        .judge()
                        .expect_missed(&self.client, &w.event, w.until, now);
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
        // An HTTP request needs no connection: its response is waited for after a `vanish`
        // too (a 150 ms target answered `users_me` after the flow had ended, which was then
        // charged `reply-missing`).
        let flow_end = self.shared.now();
        while !self.ended && (self.conn.is_some() || self.client.has_pending()) {
            let Some(until) = self.shared.judge().settled_at(&self.client, flow_end) else {
                break;
            };
            if self.shared.now() >= until || !self.serve_once(until, stop).await {
                break;
            }
        }
        if !self.ended {
            // Stopped or closed by the server: pending replies are moot then.
            let shared = self.shared.clone();
            shared.judge().expire_pending(&mut self.client, Micros::MAX);
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
            timeout_assumed: self.shared.heartbeat_timeout_assumed(),
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
        let wake = self.client.next_expiry(deadline).map_or(at, |d| d.min(at));
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
                done = http_reply(&mut self.http) => self.on_http(done),
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
                    Err(ClientError::Protocol(e)) => {
                        self.shared.judge().malformed(&self.client, now, e.to_string());
                    }
                    Err(e) => self.on_closed(closed_reason(e), now),
                }
            }
            done = http_reply(&mut self.http) => self.on_http(done),
            _ = self.wake.as_mut() => {}
        }
        if self.client.has_pending() {
            let shared = self.shared.clone();
            shared
                .judge()
                .expire_pending(&mut self.client, shared.now());
        }
        if self.vanish_now {
            // Told what it would answer, it dies first: no answer goes out.
            self.answers.clear();
            let on = self.vanish_on.clone().unwrap_or_default();
            self.note(|| format!("vanish (on {on})"));
            self.vanish();
            self.ended = true;
            return false;
        }
        for answer in std::mem::take(&mut self.answers) {
            let now = self.shared.now();
            self.perform(&answer, now).await;
        }
        !self.ended
    }

    /// Judges the response of one HTTP operation; a request that got none stays pending until
    /// its deadline (`reply-missing`).
    fn on_http(&mut self, done: super::http::HttpDone) {
        let shared = self.shared.clone();
        let at = shared.micros_of(done.at);
        match done.status {
            Ok(status) => {
                shared.judge().http_response_to(
                    &mut self.client,
                    done.request,
                    Some(done.sent),
                    status,
                    Some(&done.body),
                    at,
                );
                shared
                    .oracle
                    .log_raw(self.me, at, "<<", done.request, &format!("HTTP {status}"));
            }
            Err(e) => {
                tracing::debug!(
                    client = self.me,
                    request = done.request,
                    "HTTP request failed: {e}"
                );
                shared.oracle.log_raw(
                    self.me,
                    at,
                    "<<",
                    done.request,
                    &format!("HTTP failed: {e}"),
                );
            }
        }
    }

    /// Sends one HTTP operation in its own task (open-loop: the client goes on reading its
    /// socket), after registering what it must cause.
    fn perform_http(
        &mut self,
        request: dialect::Request,
        intent: Intent,
        intended: Micros,
        (method, path): (&'static str, &'static str),
    ) {
        let shared = self.shared.clone();
        let dialect::Request {
            event,
            args,
            effects,
        } = request;
        // A GET carries its argument's fields as the query (voice: `users/me?sid=`) and no
        // body.
        let mut query = String::new();
        let args = if method == "GET" {
            if let Some(Value::Object(fields)) = args.first() {
                query = super::http::query(fields);
            }
            Vec::new()
        } else {
            args
        };
        // A string argument is a body sent as it is (hostile input); anything else is JSON.
        let body = match args.into_iter().next() {
            Some(Value::String(raw)) => raw.into_bytes(),
            Some(v) => serde_json::to_vec(&v).unwrap_or_default(),
            None => query.clone().into_bytes(),
        };
        let sent = shared.now();
        shared
            .judge()
            .request(&mut self.client, event, effects, intent, intended, sent);
        shared.oracle.log_raw(
            self.me,
            sent,
            ">>",
            event,
            &String::from_utf8_lossy(&body[..body.len().min(512)]),
        );
        let tx = self
            .http
            .get_or_insert_with(tokio::sync::mpsc::unbounded_channel)
            .0
            .clone();
        let url = super::http::url(&shared.target, path) + &query;
        let body = if method == "GET" { Vec::new() } else { body };
        tokio::spawn(async move {
            tx.send(super::http::exchange(method, &url, body, event, sent).await)
                .ok();
        });
        shared.counters.sent.inc();
        if let Some(i) = shared.spec.ops.iter().position(|o| o.name == event) {
            shared.sent_by_op[i].inc();
        }
        shared
            .metrics
            .record(("send", "lateness"), sent.saturating_sub(intended), 0);
    }

    /// Judges one received event.
    fn on_event(&mut self, event: RawEvent, now: Micros) {
        let shared = &*self.shared;
        let parsed = match event.namespace() {
            Some(_) => decode::parse_event(event.args()),
            None => decode::parse_frame(&event),
        };
        let Some(parsed) = parsed else {
            // Malformed arguments: reported as the parsing client reports them.
            let reason = match event.parse() {
                Err(e) => e.to_string(),
                Ok(_) => "Socket.IO EVENT arguments the driver could not read".to_string(),
            };
            shared.judge().malformed(&self.client, now, reason);
            return;
        };
        shared.counters.received.inc();
        // `/` is the connection's own namespace; the others are the table's (chat).
        let namespace = event.namespace().unwrap_or("/");
        shared.judge().received(
            &mut self.client,
            namespace,
            &parsed.name,
            &parsed.payload,
            now,
        );
        if namespace == "/" {
            shared
                .oracle
                .log_raw(self.me, now, "<<", &parsed.name, &parsed.text);
        } else {
            let name = format!("{namespace} {}", parsed.name);
            shared
                .oracle
                .log_raw(self.me, now, "<<", &name, &parsed.text);
        }
        if self.vanish_on.as_deref() == Some(&*parsed.name) {
            self.vanish_now = true;
            return;
        }
        if let Some(ws) = shared.websocket.as_ref().filter(|_| !self.withhold_answers) {
            let answer = ws.dialect.answers.iter().find(|(e, _)| *e == parsed.name);
            if let Some((_, op)) = answer {
                let mut params = std::collections::BTreeMap::new();
                for (field, param) in [("user_id", "user_id"), ("channel_name", "channel")] {
                    if let Some(v) = parsed.payload.to_value().get(field) {
                        params.insert(param.to_string(), v.clone());
                    }
                }
                self.answers.push(crate::scenario::OpStep {
                    op: op.to_string(),
                    params,
                });
            }
        }
    }

    /// Builds, sends and registers one dialect operation.
    async fn perform(&mut self, op: &crate::scenario::OpStep, intended: Micros) {
        let shared = self.shared.clone();
        let spec = shared.spec.op(&op.op).expect("validated op");
        let ctx = shared.roster.context(self.me, self.client.seq);
        let request = (spec.build)(&ctx, &op.params, &mut self.rng);
        self.client.step_begins();
        self.note(|| {
            format!(
                "{} {}",
                request.event,
                shape::excerpt(&Value::Array(request.args.clone()))
            )
        });
        let intent = match (op.params.get(EXPECT_ERROR), op.params.get(LENIENT)) {
            (_, Some(Value::Bool(true))) => Intent::Lenient,
            (Some(Value::Bool(true)), _) => Intent::Refused(None),
            (Some(Value::String(text)), _) => Intent::Refused(Some(text.clone())),
            _ => Intent::Valid,
        };
        // An HTTP operation does not need the socket.
        if let dialect::Via::Http { method, path } = spec.via {
            self.perform_http(request, intent, intended, (method, path));
            return;
        }
        if self.conn.is_none() {
            tracing::warn!(client = self.me, op = %op.op, "operation skipped: the client is disconnected (add a `reconnect` step)");
            return;
        }
        let dialect::Request {
            event,
            args,
            effects,
        } = request;
        // Register what the request must cause *before* writing it: on loopback the first
        // receipts can arrive at other clients before this task runs again.
        let sent = shared.now();
        shared
            .judge()
            .request(&mut self.client, event, effects, intent, intended, sent);
        let conn = self.conn.as_mut().expect("connected");
        // `/` is the connection's own namespace (the target URL's path).
        let namespace = match spec.via {
            dialect::Via::Emit { namespace: "/" } => None,
            dialect::Via::Emit { namespace } => Some(namespace),
            dialect::Via::Http { .. } => unreachable!("refused before registering"),
        };
        let frame = conn.encode_event(namespace, event, &args);
        // The payload as the transcript shows it: the one argument, or the array of them.
        let payload = frame.payload().into_owned();
        if let Err(e) = conn.send_raw(frame.into_text()).await {
            self.on_closed(closed_reason(e), shared.now());
            return;
        }
        shared.counters.sent.inc();
        if let Some(i) = shared.spec.ops.iter().position(|o| std::ptr::eq(o, spec)) {
            shared.sent_by_op[i].inc();
        }
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
        shared.oracle.log_raw(self.me, sent, ">>", event, &payload);
    }

    /// Sends hostile or malformed input: an arbitrary event, or a raw frame.
    async fn send(&mut self, step: &SendStep, intended: Micros) {
        let shared = self.shared.clone();
        let ctx = shared.roster.context(self.me, self.client.seq);
        self.client.step_begins();
        if self.conn.is_none() {
            tracing::warn!(
                client = self.me,
                "send skipped: the client is disconnected (add a `reconnect` step)"
            );
            return;
        }
        if step.lenient {
            shared.judge().become_lenient(&mut self.client);
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
                shared
                    .judge()
                    .free_event(&mut self.client, event, text, intended, sent);
                shared.oracle.log(self.me, sent, ">>", event, &payload);
                let conn = self.conn.as_mut().expect("connected");
                match &step.spoil {
                    None => conn.send_event(None, event, &args).await,
                    Some(spoil) => {
                        let text = conn.encode_event(None, event, &args).into_text();
                        let spoiled = spoil_frame(text, spoil, &ctx);
                        shared.oracle.log(
                            self.me,
                            sent,
                            ">>",
                            "(spoiled frame)",
                            &Value::String(spoiled.clone()),
                        );
                        conn.send_raw(spoiled).await
                    }
                }
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
            Err(e) => self.on_closed(closed_reason(e), shared.now()),
        }
    }
}

/// An encoded JSON-object frame with `spoil`'s fields written over it (after its signature).
fn spoil_frame(
    text: String,
    spoil: &serde_json::Map<String, Value>,
    ctx: &dialect::OpContext,
) -> String {
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut fields)) => {
            for (k, v) in spoil {
                fields.insert(k.clone(), dialect::expand_value(v, ctx));
            }
            Value::Object(fields).to_string()
        }
        // Validated: only plain-WebSocket dialects, whose frames are JSON objects.
        _ => text,
    }
}

/// How a connection that failed with `e` ended: as the client ended it, or as a reset.
fn closed_reason(e: ClientError) -> CloseReason {
    match e {
        ClientError::Abandoned(reason) => reason,
        other => CloseReason::Reset(other.to_string()),
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
