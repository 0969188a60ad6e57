//! Push-only backend clients (a scenario's `push: {rate, room, size, after, duration}`): a
//! backend has no socket; it performs the dialect's HTTP `push` operation on a fixed open-loop
//! grid, each push registered with the judge before it is written (as a client's `push` step
//! is), so every delivery it causes is judged and timed from the push's intended send time,
//! and its HTTP response is judged and timed too (`push.http`).
//!
//! A backend is a client of the run without a connection: it has its own roster entry (a user
//! id no fixture user has, no room), so the `from` of its pushed data names it and each
//! delivery is tied to it by its content id.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng as _;
use serde_json::{json, Value};

use super::http::{self, HttpDone};
use super::Shared;
use crate::dialect::Via;
use crate::oracle::judge::{self, Intent};
use crate::oracle::{ClientId, Micros};
use crate::scenario::BackendRoom;
use crate::schedule::client_rng;

/// What one backend does: pushes at `rate` from `start` until `end` (run time, µs).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Its client number (after every user's).
    pub client: ClientId,
    pub rate: f64,
    pub start: Micros,
    pub end: Micros,
    pub room: BackendRoom,
    /// The fixture rooms `room: random` picks from (ids, sorted).
    pub rooms: Vec<u64>,
    pub size: Option<u64>,
}

/// The user name of a backend's roster entry.
pub const USERNAME: &str = "(backend)";

/// The plan of this process's backend, if the scenario has one: `rooms` are the fixture rooms
/// of the clients this process drives. With `--workers`, each worker pushes into its own
/// rooms at its share of the rate (its clients are the only ones it judges).
pub fn plan(
    scenario: &crate::scenario::Scenario,
    client: ClientId,
    rooms: Vec<u64>,
    worker: Option<(&crate::share::WorkerShare, &std::collections::BTreeSet<u64>)>,
) -> Result<Option<Plan>, String> {
    let Some(b) = &scenario.push else {
        return Ok(None);
    };
    let phases: std::time::Duration = scenario.phases.iter().map(|p| p.duration.0).sum();
    let start = b.after.map_or(0, |d| d.0.as_micros() as u64);
    let length = b.duration.map_or(phases, |d| d.0).as_micros() as u64;
    let mut rate = b.rate;
    if let Some((share, every_room)) = worker {
        match &b.room {
            BackendRoom::All => {
                return Err("`push: {room: all}` reaches the clients of every worker, and each worker judges only its own: run it without --workers".into())
            }
            // A named room is one worker's (whose clients' fixture room it is, else the first).
            BackendRoom::Named(name) => {
                let fixture = name.parse::<u64>().ok().filter(|r| every_room.contains(r));
                let mine = match fixture {
                    Some(room) => rooms.contains(&room),
                    None => share.index == 0,
                };
                if !mine {
                    return Ok(None);
                }
            }
            BackendRoom::Random => rate /= f64::from(share.count.max(1)),
        }
    }
    if b.room == BackendRoom::Random && rooms.is_empty() {
        return Err("`push: {room: random}` picks among the fixture rooms of the run's clients, and none of them has a room: name a room or use `all`".into());
    }
    Ok(Some(Plan {
        client,
        rate,
        start,
        end: start.saturating_add(length),
        room: b.room.clone(),
        rooms,
        size: b.size,
    }))
}

/// Runs one backend to the end of its plan (or until the run stops), then waits for the
/// responses still due.
pub async fn run(shared: Arc<Shared>, plan: Plan) {
    let op = shared
        .spec
        .op("push")
        .expect("validated: the dialect has `push`");
    let Via::Http { method, path } = op.via else {
        unreachable!("validated: `push` is an HTTP operation")
    };
    let mut backend = Backend {
        client: judge::Client::new(plan.client),
        rng: client_rng(shared.scenario.seed, plan.client),
        replies: tokio::sync::mpsc::unbounded_channel(),
        stop: shared.stop.subscribe(),
        url: http::url(&shared.target, path),
        method,
        shared,
    };
    let interval = 1e6 / plan.rate;
    for k in 0u64.. {
        let intended = plan.start + (k as f64 * interval) as Micros;
        if intended >= plan.end {
            break;
        }
        if !backend.serve_until(intended).await {
            return;
        }
        let params = backend.params(&plan);
        backend.push(op, &params, intended);
    }
    // The responses still on their way, each until its deadline.
    let deadline = backend.shared.oracle.deadline();
    while let Some(until) = backend.client.last_expiry(deadline) {
        if !backend.serve_until(until).await {
            return;
        }
    }
}

struct Backend {
    client: judge::Client,
    rng: rand_chacha::ChaCha8Rng,
    replies: (
        tokio::sync::mpsc::UnboundedSender<HttpDone>,
        tokio::sync::mpsc::UnboundedReceiver<HttpDone>,
    ),
    stop: tokio::sync::watch::Receiver<bool>,
    url: String,
    method: &'static str,
    shared: Arc<Shared>,
}

impl Backend {
    /// The parameters of the next push (as a `push` step would give them).
    fn params(&mut self, plan: &Plan) -> BTreeMap<String, Value> {
        let mut p = BTreeMap::new();
        match &plan.room {
            BackendRoom::Random => {
                let room = plan.rooms[self.rng.random_range(0..plan.rooms.len())];
                p.insert("room".into(), json!(room.to_string()));
            }
            BackendRoom::All => {
                p.insert("global".into(), json!(true));
            }
            BackendRoom::Named(name) => {
                p.insert("room".into(), json!(name));
            }
        }
        if let Some(size) = plan.size {
            p.insert("size".into(), json!(size));
        }
        p
    }

    /// Judges the responses that come and the replies that run out until `until`. False when
    /// the run stopped.
    async fn serve_until(&mut self, until: Micros) -> bool {
        let shared = self.shared.clone();
        let deadline = shared.oracle.deadline();
        loop {
            let now = shared.now();
            if self.client.has_pending() {
                shared.judge().expire_pending(&mut self.client, now);
            }
            if now >= until {
                return true;
            }
            let wake = self
                .client
                .next_expiry(deadline)
                .map_or(until, |d| d.min(until));
            let done = tokio::select! {
                biased;
                _ = self.stop.wait_for(|s| *s) => return false,
                Some(done) = self.replies.1.recv() => Some(done),
                _ = tokio::time::sleep_until(shared.instant_of(wake)) => None,
            };
            if let Some(done) = done {
                self.on_http(done);
            }
        }
    }

    /// Registers one push with the judge, then sends it in its own task (open loop: the next
    /// push does not wait for this one's response).
    fn push(&mut self, op: &crate::dialect::OpSpec, params: &BTreeMap<String, Value>, at: Micros) {
        let shared = self.shared.clone();
        let ctx = shared.roster.context(self.client.me, self.client.seq);
        let crate::dialect::Request {
            event,
            args,
            effects,
        } = (op.build)(&ctx, params, &mut self.rng);
        let body = match args.into_iter().next() {
            Some(Value::String(raw)) => raw.into_bytes(),
            Some(v) => serde_json::to_vec(&v).unwrap_or_default(),
            None => Vec::new(),
        };
        let sent = shared.now();
        shared
            .judge()
            .request(&mut self.client, event, effects, Intent::Valid, at, sent);
        shared.oracle.log_raw(
            self.client.me,
            sent,
            ">>",
            event,
            &String::from_utf8_lossy(&body[..body.len().min(512)]),
        );
        let tx = self.replies.0.clone();
        let (method, url) = (self.method, self.url.clone());
        tokio::spawn(async move {
            tx.send(http::exchange(method, &url, body, event, sent).await)
                .ok();
        });
        shared.counters.sent.inc();
        if let Some(i) = shared.spec.ops.iter().position(|o| std::ptr::eq(o, op)) {
            shared.sent_by_op[i].inc();
        }
        let lateness = sent.saturating_sub(at);
        shared.metrics.record(("send", "lateness"), lateness, 0);
        if lateness > shared.abort_lateness
            && !shared
                .overloaded
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            // Hopelessly behind: nothing measured from now on describes the server.
            shared.stop.send_replace(true);
        }
    }

    fn on_http(&mut self, done: HttpDone) {
        let shared = self.shared.clone();
        let at = shared.micros_of(done.at);
        let me = self.client.me;
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
                    .log_raw(me, at, "<<", done.request, &format!("HTTP {status}"));
            }
            Err(e) => {
                tracing::debug!(client = me, "backend push failed: {e}");
                shared
                    .oracle
                    .log_raw(me, at, "<<", done.request, &format!("HTTP failed: {e}"));
            }
        }
    }
}
