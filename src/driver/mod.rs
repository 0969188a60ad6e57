//! The driver: plans the open-loop schedule, starts the embedded reference server when the
//! scenario names no target, runs every simulated client, and gathers what the oracle and the
//! histograms saw into a [`RunResult`]. Presenting it is the report module's job.

mod backend;
mod embedded;
mod http;
mod live;
mod progress;
mod vu;
mod websocket;

pub use progress::{Snapshot, View as ProgressView};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reference_server::fixtures::Fixtures;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::dialect::{self, DialectSpec, RoomOf};
use crate::metrics::{Metrics, Pair};
use crate::oracle::judge::Judge;
use crate::oracle::{Micros, Oracle, RuleTally};
use crate::resources::Usage;
use crate::roster::{Roster, UserInfo};
use crate::scenario::{Scenario, UsersSpec};
use crate::schedule;
use crate::transport::socketio::{ClientConfig, Connection};

/// A monotonically updated counter shown live and in the report.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Live counters of a run.
#[derive(Default)]
pub struct Counters {
    pub planned: Counter,
    pub connecting: Counter,
    pub connected: Counter,
    pub active: Counter,
    pub connect_errors: Counter,
    pub sent: Counter,
    pub received: Counter,
    pub unexpected_closes: Counter,
}

/// What every client task of a run shares.
pub struct Shared {
    pub scenario: Arc<Scenario>,
    pub spec: &'static DialectSpec,
    pub target: String,
    pub client_config: ClientConfig,
    /// Set for a dialect spoken over a plain WebSocket: its clients connect so, not with
    /// `client_config`'s Socket.IO.
    pub websocket: Option<websocket::Setup>,
    /// Every client's user.
    pub roster: Roster,
    pub oracle: Oracle,
    pub metrics: Metrics,
    pub counters: Counters,
    pub start: Instant,
    pub stop: tokio::sync::watch::Sender<bool>,
    /// A send later than this behind its schedule aborts the run as invalid.
    pub abort_lateness: Micros,
    /// Set when the generator fell hopelessly behind and stopped the run.
    pub overloaded: AtomicBool,
    /// Set when an `abort_on_fail` threshold failed and stopped the run.
    pub aborted: std::sync::OnceLock<crate::thresholds::Aborted>,
    /// Each client's operations, when the run keeps an operation log (`--op-log`).
    pub oplog: Option<std::sync::Mutex<OpLog>>,
    /// Requests sent per operation, in the order of the dialect's `ops`.
    pub sent_by_op: Box<[Counter]>,
    /// The embedded reference server (none against a target): `restart_server` restarts it.
    pub embedded: Option<Arc<embedded::Embedded>>,
}

impl Shared {
    /// Microseconds since the start of the run.
    pub fn now(&self) -> Micros {
        self.micros_of(Instant::now())
    }
    /// The server states no heartbeat timeout of its own (see [`websocket::Setup`]).
    pub fn heartbeat_timeout_assumed(&self) -> bool {
        self.websocket.as_ref().is_some_and(|s| s.timeout_assumed)
    }
    pub fn micros_of(&self, at: Instant) -> Micros {
        at.saturating_duration_since(self.start).as_micros() as u64
    }
    pub fn instant_of(&self, at: Micros) -> Instant {
        self.start + Duration::from_micros(at.min(u64::MAX / 4))
    }
    /// The judge of this run's clients.
    pub fn judge(&self) -> Judge<'_> {
        Judge {
            oracle: &self.oracle,
            spec: self.spec,
            roster: &self.roster,
            metrics: &self.metrics,
        }
    }
}

/// How to run a scenario, beyond the scenario itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's target.
    pub target: Option<String>,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides the scenario's users with a users file.
    pub users_file: Option<std::path::PathBuf>,
    /// Test-only defects of the embedded reference server (`--server-fault`).
    pub server_faults: Vec<String>,
    /// Show the live progress view.
    pub progress: bool,
    /// Without a terminal: how often the view prints a progress line (0: the default, 10 s).
    pub progress_interval: Duration,
    /// A run whose send lateness p99 exceeds this is invalid (the generator fell behind).
    pub max_lateness: Duration,
    /// Keep every client's sequence of operations (written as `ops.log`).
    pub op_log: bool,
    /// Use these users instead of the scenario's (the conformance suite shares one fixture
    /// between its cases).
    pub fixtures: Option<Fixtures>,
    /// The driver leaves out the first `users_skip` users (each conformance case gets its own).
    pub users_skip: usize,
    /// Bind every client socket to this source address (`--workers` gives each worker its
    /// own, so the ~28k ephemeral ports of one address are no ceiling).
    pub local_addr: Option<std::net::IpAddr>,
    /// In a worker process of `--workers N`: run only this worker's share of the clients, and
    /// start the schedule when the parent says so.
    pub worker: Option<crate::share::WorkerShare>,
    /// The report window of a departure notice the target runs with (voice's
    /// `exit_room_report`), overriding the scenario's `server: {exit_report_timeout}`: the
    /// protocol advertises none, so whoever started the target says it (`roomrig check`).
    pub report_window: Option<Duration>,
    /// The target's (pingInterval, pingTimeout) when whoever started it knows them (`roomrig
    /// check`'s embedded server): a plain-WebSocket server advertises only its interval.
    pub target_heartbeat: Option<(Duration, Duration)>,
    /// `--metrics-listen`: where this run puts a snapshot of its figures every second (in a
    /// worker of `--workers`: it tells the parent each second instead).
    pub live_metrics: Option<crate::live_metrics::Board>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("target {target} is unreachable or does not speak Socket.IO (EIO={eio}): {reason}")]
    Unreachable {
        target: String,
        eio: String,
        reason: String,
    },
    /// The target speaks another Engine.IO generation than the run asks for, or none that can
    /// be told apart (exit 5, before any load).
    #[error("{0}")]
    Generation(String),
    #[error("{0}")]
    Setup(String),
    /// A stop signal (Ctrl-C, SIGTERM, SIGHUP) came before the load started.
    #[error("stopped before the load started")]
    Interrupted,
    /// A shard (`--shard K/N --start-at`) was ready after its start time and its bound: it
    /// ran no load (exit 4, an invalid part).
    #[error("{0}")]
    LateStart(String),
}

/// `work`, unless a stop signal comes first: a connect to a target that accepts TCP and never
/// answers must not hold Ctrl-C for its whole timeout.
async fn unless_stopped<T>(
    work: impl std::future::Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    tokio::select! {
        r = work => r,
        _ = crate::signals::stop_requested() => Err(RunError::Interrupted),
    }
}

/// Everything a run measured, ready for reports (which also read the scenario that ran). A
/// worker of `--workers N` hands its own to the parent as JSON.
#[derive(Serialize, Deserialize)]
pub struct RunResult {
    pub target: String,
    pub embedded: bool,
    /// The Engine.IO version the run spoke.
    pub eio: crate::protocol::EioVersion,
    /// With `--eio auto`: what the server sent that told its generation.
    pub eio_detected: Option<String>,
    pub seed: u64,
    #[serde(with = "rfc3339")]
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    pub interrupted: bool,
    /// The generator fell so far behind that the run was stopped early.
    pub overloaded: bool,
    /// An `abort_on_fail` threshold failed and stopped the run early.
    pub aborted: Option<crate::thresholds::Aborted>,
    /// The users file given on the command line, if any.
    pub users_file: Option<std::path::PathBuf>,
    pub planned_clients: u64,
    pub users_available: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub unexpected_closes: u64,
    pub sent: u64,
    pub received: u64,
    pub metrics: BTreeMap<String, Pair>,
    pub violations: BTreeMap<String, RuleTally>,
    pub max_lateness: Duration,
    /// The process's resource use before the first client and at the end.
    pub usage_before: Usage,
    pub usage_after: Usage,
    /// Per client, in client order: the operations it performed (with `op_log`).
    pub op_log: Option<OpLog>,
    /// Transcripts of the clients with violations (at most [`TRANSCRIPTS_KEPT`]).
    pub transcripts: Vec<(u32, String, Vec<String>)>,
    /// The server disagreed with the users file (e.g. put a user in another room) and the run
    /// was stopped: a usage error, not a verdict on the server.
    #[serde(default)]
    pub fixture_mismatch: Option<String>,
    /// WebSocket message bytes the clients wrote and read (payloads, as the transport counts
    /// them; handshakes and frame headers not included).
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub bytes_received: u64,
    /// Requests sent per operation of the dialect (`join_room`, `message`, …).
    #[serde(default)]
    pub sent_by_op: BTreeMap<String, u64>,
    /// Per metric: one entry per second with samples (`histograms.hlog`'s intervals).
    #[serde(default)]
    pub intervals: crate::metrics::Intervals,
    /// The counters and violations second by second.
    #[serde(default)]
    pub timeline: crate::timeline::Timeline,
}

/// Per client: the lines of the operations it performed.
pub type OpLog = Vec<(u32, Vec<String>)>;

/// A time as RFC 3339 text (chrono is built without its serde feature).
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// How many violating clients' transcripts a report keeps.
pub const TRANSCRIPTS_KEPT: usize = 200;

/// Loads the users a scenario names.
pub fn load_fixtures(
    scenario: &Scenario,
    users_file: Option<&std::path::Path>,
) -> Result<Fixtures, RunError> {
    match (users_file, &scenario.users) {
        (Some(path), _) => Fixtures::load(path).map_err(|e| RunError::Setup(e.to_string())),
        (None, UsersSpec::File(path)) => {
            Fixtures::load(path).map_err(|e| RunError::Setup(e.to_string()))
        }
        (None, UsersSpec::Generate { count, room_size }) => {
            Ok(Fixtures::generate(*count, *room_size))
        }
    }
}

/// Runs a scenario to the end (or to Ctrl-C) and returns what it measured.
pub async fn run(scenario: Scenario, opts: RunOptions) -> Result<RunResult, RunError> {
    let mut scenario = scenario;
    if let Some(seed) = opts.seed {
        scenario.seed = seed;
    }
    let scenario = Arc::new(scenario);
    let fixtures = match &opts.fixtures {
        Some(f) => f.clone(),
        None => load_fixtures(&scenario, opts.users_file.as_deref())?,
    };
    let spec = dialect::spec(&scenario.dialect.0);
    let usable = fixtures.users.len().saturating_sub(opts.users_skip);
    if let Some(reason) = schedule::plans_nobody(&scenario, usable) {
        return Err(RunError::Setup(reason));
    }
    // Said once, by the process the user started (a conformance case plans its own users).
    if opts.fixtures.is_none() && opts.worker.is_none() {
        warn_schedule(&scenario, usable);
    }

    // The target: a given server, or the embedded reference server on a free loopback port.
    let explicit_target = opts.target.clone().or_else(|| scenario.target.clone());
    let has_target = explicit_target.is_some();
    if let (Some(target), Some(at)) = (&explicit_target, &scenario.restart_step) {
        return Err(RunError::Setup(restart_refused(at, target)));
    }
    let embedded = match &explicit_target {
        Some(_) => None,
        None => Some(Arc::new(
            start_embedded(&scenario, &fixtures, &opts.server_faults).await?,
        )),
    };
    let target = explicit_target.unwrap_or_else(|| embedded.as_ref().expect("embedded").url());

    if has_target && scenario.server.is_some() && opts.worker.is_none() {
        warn_server_block();
    }
    let mut client_config = ClientConfig {
        local_addr: opts.local_addr,
        // The namespaces the dialect's table names beside `/` (chat: /friend, /group, /server).
        more_namespaces: spec.namespaces(),
        ..ClientConfig::default()
    };
    // The dialect's table says how its clients connect.
    let ws_dialect = dialect::find(&scenario.dialect.0).and_then(|d| d.websocket);
    let (websocket, eio, detected) = match ws_dialect {
        Some(ws) => {
            let settings = scenario.server_settings();
            let known = embedded
                .is_some()
                .then_some((settings.ping_interval.0, settings.ping_timeout.0))
                .or(opts.target_heartbeat);
            let setup = websocket::Setup::discover(&target, ws, known, opts.local_addr).await?;
            (Some(setup), client_config.eio, None)
        }
        None => {
            let (eio, detected) = resolve_eio(&target, &client_config, scenario.eio).await?;
            if let Some(d) = &detected {
                // The embedded server speaks both generations: only a target's is news.
                if scenario.eio == crate::protocol::EioSetting::Auto
                    && has_target
                    && opts.worker.is_none()
                {
                    crate::out::outln!("detected Engine.IO {eio} at {target}: {}", d.signal);
                }
            }
            client_config.eio = eio;
            preflight(&target, &client_config).await?;
            (None, eio, detected)
        }
    };

    let mut users = user_infos(&fixtures);
    if opts.users_skip > 0 {
        let skip = opts.users_skip.min(users.len());
        users.drain(..skip);
        for u in users.iter_mut() {
            u.roommate = u.roommate.saturating_sub(skip as u32);
        }
    }
    let mut arrivals = schedule::arrivals(&scenario, users.len());
    if let Some(share) = &opts.worker {
        // The same schedule as one process, but only the clients of this worker's rooms.
        let owners = crate::share::owners(users.iter().map(|u| u.room), share.count);
        arrivals.retain(|a| owners[a.client as usize] == share.index);
    }
    // A backend (`push:`) is one more client, after every user, without a socket: it pushes
    // into the fixture rooms of the clients this process drives.
    let backend = {
        let mine: std::collections::BTreeSet<u64> = arrivals
            .iter()
            .filter_map(|a| users[a.client as usize].room)
            .collect();
        let every: std::collections::BTreeSet<u64> = users.iter().filter_map(|u| u.room).collect();
        backend::plan(
            &scenario,
            users.len() as u32,
            mine.into_iter().collect(),
            opts.worker.as_ref().map(|w| (w, &every)),
        )
        .map_err(RunError::Setup)?
    };
    if let Some(plan) = &backend {
        users.push(UserInfo {
            user_id: users.iter().map(|u| u.user_id).max().unwrap_or(0) + 1,
            username: backend::USERNAME.to_string(),
            token: String::new(),
            room: None,
            room_size: 0,
            roommate: plan.client,
        });
    }
    // A worker starts when the parent says, in step with the other workers.
    let worker_start = match &opts.worker {
        Some(share) => Some(share.start().await.map_err(|e| match e {
            crate::share::StartError::Late(why) => RunError::LateStart(why),
            crate::share::StartError::Other(why) => RunError::Setup(why),
        })?),
        None => None,
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // A short lead so the first arrivals are not late before the tasks exist.
    let start = worker_start.unwrap_or_else(|| Instant::now() + Duration::from_millis(50));
    let shared = Arc::new(Shared {
        spec,
        target: target.clone(),
        client_config,
        websocket,
        oracle: Oracle::new(
            spec.name,
            scenario.deadline().as_micros() as u64,
            scenario
                .membership_grace
                .map_or(scenario.deadline(), |g| g.0)
                .as_micros() as u64,
            users.iter().map(|u| u.username.clone()).collect(),
        ),
        roster: Roster::new(users).with_social(&fixtures),
        metrics: Metrics::starting_at(workers * 2, start.into_std()),
        counters: Counters::default(),
        start,
        stop: tokio::sync::watch::channel(false).0,
        oplog: opts.op_log.then(|| std::sync::Mutex::new(Vec::new())),
        sent_by_op: spec.ops.iter().map(|_| Counter::default()).collect(),
        // Ten times the invalid-run bound, and at least a second.
        abort_lateness: (opts.max_lateness.as_micros() as u64 * 10).max(1_000_000),
        overloaded: AtomicBool::new(false),
        aborted: std::sync::OnceLock::new(),
        scenario: scenario.clone(),
        embedded: embedded.clone(),
    });
    // The protocol advertises no report window: the one the target was started with.
    let report_window = opts
        .report_window
        .or(scenario.server_settings().exit_report_timeout.map(|d| d.0));
    match report_window {
        Some(window) => shared
            .oracle
            .set_report_window(window.as_micros().max(1) as u64),
        // The embedded server runs with the dialect's default; a target's is nobody's word.
        None if has_target => shared.oracle.set_report_window_unstated(),
        None => {}
    }
    // Names for reports: fixture rooms by their names, users' own rooms by the user.
    for r in &fixtures.rooms {
        shared.oracle.name_room(r.room_id, &r.room_name);
    }
    if spec.events.iter().any(|e| e.room == RoomOf::ReceiverUser) {
        for u in &shared.roster.users {
            shared
                .oracle
                .label_room(crate::dialect::user_room(&u.username), || {
                    format!("the connections of user {:?}", u.username)
                });
        }
    }
    shared
        .counters
        .planned
        .0
        .store(arrivals.len() as u64, Ordering::Relaxed);
    let started_at = chrono::Utc::now();
    let planned = arrivals.len() as u64;
    let expected_end = schedule::expected_end(&scenario, &arrivals).max(
        backend
            .as_ref()
            .map_or(Duration::ZERO, |b| Duration::from_micros(b.end)),
    );

    let usage_before = Usage::now();
    let mut tasks = tokio::task::JoinSet::new();
    let sweeper = tokio::spawn(sweep_loop(shared.clone()));
    // A worker sees only its share: `--workers` judges thresholds on the merged run only.
    let abort_watch = opts
        .worker
        .is_none()
        .then(|| tokio::spawn(abort_watch(shared.clone())));
    let lag = tokio::spawn(lag_probe(shared.clone()));
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample_each_second(shared.clone(), samples.clone()));
    // A worker tells its parent, which serves the endpoint; a shard has no parent and serves
    // its own.
    let live_metrics = opts.live_metrics.clone().map(|board| match &opts.worker {
        Some(w) if !w.is_shard() => tokio::spawn(live::feed(shared.clone())),
        _ => tokio::spawn(live::collect(shared.clone(), board)),
    });
    // A worker always reports its counters to the parent, which draws the view (or not).
    let progress = match &opts.worker {
        Some(w) if !w.is_shard() => Some(tokio::spawn(progress::lines(shared.clone()))),
        _ => opts.progress.then(|| {
            tokio::spawn(progress::show(
                shared.clone(),
                expected_end,
                progress_interval(opts.progress_interval),
            ))
        }),
    };

    let interrupted = Arc::new(AtomicBool::new(false));
    if let Some(plan) = backend {
        tasks.spawn(backend::run(shared.clone(), plan));
    }
    {
        let all_done = spawn_and_join(&shared, arrivals, &mut tasks);
        tokio::pin!(all_done);
        tokio::select! {
            _ = &mut all_done => {}
            _ = crate::signals::stop_requested() => {
                interrupted.store(true, Ordering::Relaxed);
                shared.stop.send_replace(true);
                // Clients close their connections; give them a moment, then stop waiting.
                let _ = tokio::time::timeout(Duration::from_secs(3), &mut all_done).await;
            }
        }
    }
    tasks.abort_all();
    // An aborted client stops at its next poll; wait for that so that nothing records after
    // the results are read.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    sweeper.abort();
    lag.abort();
    sampler.abort();
    if let Some(l) = live_metrics {
        l.abort();
    }
    if let Some(w) = abort_watch {
        w.abort();
    }
    // Everything still in flight is now either received or missing, unless the generator
    // stopped the run for falling behind (then what it failed to read is its own fault) or a
    // threshold stopped it (what was on its way when the clients closed proves nothing).
    if !shared.overloaded.load(Ordering::Relaxed) && shared.aborted.get().is_none() {
        // What settled by now is judged as of now (a fail-over whose time ran out is missing),
        // then everything else is flushed.
        shared.oracle.sweep_and_report(shared.now());
        shared.oracle.sweep_and_report(Micros::MAX);
    }
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
    }
    let duration = shared.start.elapsed();
    let usage_after = Usage::now();
    let timeline = {
        let mut samples = std::mem::take(&mut *crate::oracle::lock(&samples));
        samples.push(sample(&shared));
        crate::timeline::Timeline::from_samples(&samples, shared.oracle.violations_per_second())
    };
    if let Some(server) = &embedded {
        server.shutdown().await;
    }

    let c = &shared.counters;
    Ok(RunResult {
        target,
        embedded: scenario.target.is_none() && opts.target.is_none(),
        eio,
        eio_detected: detected
            .filter(|_| scenario.eio == crate::protocol::EioSetting::Auto)
            .map(|d| d.signal),
        seed: scenario.seed,
        started_at,
        duration,
        interrupted: interrupted.load(Ordering::Relaxed),
        overloaded: shared.overloaded.load(Ordering::Relaxed),
        aborted: shared.aborted.get().cloned(),
        users_file: opts.users_file.clone(),
        planned_clients: planned,
        users_available: fixtures.users.len() as u64,
        connected: c.connected.get(),
        connect_errors: c.connect_errors.get(),
        unexpected_closes: c.unexpected_closes.get(),
        sent: c.sent.get(),
        received: c.received.get(),
        metrics: shared.metrics.merged(),
        violations: shared.oracle.tallies(),
        max_lateness: opts.max_lateness,
        usage_before,
        usage_after,
        op_log: shared.oplog.as_ref().map(|log| {
            let mut log = std::mem::take(&mut *crate::oracle::lock(log));
            log.sort_by_key(|(client, _)| *client);
            log
        }),
        transcripts: shared
            .oracle
            .violating_clients(TRANSCRIPTS_KEPT)
            .into_iter()
            .map(|c| {
                (
                    c,
                    shared.roster.users[c as usize].username.clone(),
                    shared.oracle.transcript(c),
                )
            })
            .collect(),
        fixture_mismatch: shared.oracle.fixture_mismatch(),
        bytes_sent: shared.client_config.traffic.bytes_sent(),
        bytes_received: shared.client_config.traffic.bytes_received(),
        sent_by_op: spec
            .ops
            .iter()
            .zip(shared.sent_by_op.iter())
            .filter(|(_, n)| n.get() > 0)
            .map(|(op, n)| (op.name.to_string(), n.get()))
            .collect(),
        intervals: shared.metrics.intervals(),
        timeline,
    })
}

/// The counters now, for the timeline.
fn sample(shared: &Shared) -> crate::timeline::Sample {
    let c = &shared.counters;
    crate::timeline::Sample {
        open: c.active.get(),
        connected: c.connected.get(),
        connect_errors: c.connect_errors.get(),
        sent: c.sent.get(),
        received: c.received.get(),
    }
}

/// Samples the counters at the end of every second of the schedule (the timeline's entries;
/// the run's end adds the last one).
async fn sample_each_second(
    shared: Arc<Shared>,
    samples: Arc<std::sync::Mutex<Vec<crate::timeline::Sample>>>,
) {
    let mut next = shared.start + Duration::from_secs(1);
    loop {
        tokio::time::sleep_until(next).await;
        crate::oracle::lock(&samples).push(sample(&shared));
        next += Duration::from_secs(1);
    }
}

/// The interval of progress lines without a terminal: `--progress-interval`, 10 s by default.
pub fn progress_interval(asked: Duration) -> Duration {
    if asked.is_zero() {
        Duration::from_secs(10)
    } else {
        asked
    }
}

/// The driver's view of the fixture: each user with its room's capacity and its roommate.
fn user_infos(fixtures: &Fixtures) -> Vec<UserInfo> {
    let capacity: HashMap<u64, u32> = fixtures
        .rooms
        .iter()
        .map(|r| (r.room_id, r.room_size))
        .collect();
    let mut by_room: HashMap<u64, Vec<u32>> = HashMap::new();
    for (i, u) in fixtures.users.iter().enumerate() {
        if let Some(room) = u.room_id {
            by_room.entry(room).or_default().push(i as u32);
        }
    }
    fixtures
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let roommate = u
                .room_id
                .and_then(|r| by_room.get(&r))
                .and_then(|mates| {
                    let at = mates.iter().position(|&m| m == i as u32)?;
                    Some(mates[(at + 1) % mates.len()])
                })
                .unwrap_or(i as u32);
            UserInfo {
                user_id: u.user_id,
                username: u.username.clone(),
                token: u.token.clone(),
                room: u.room_id,
                room_size: u
                    .room_id
                    .and_then(|r| capacity.get(&r).copied())
                    .unwrap_or(0),
                roommate,
            }
        })
        .collect()
}

async fn start_embedded(
    scenario: &Scenario,
    fixtures: &Fixtures,
    faults: &[String],
) -> Result<embedded::Embedded, RunError> {
    let settings = scenario.server_settings();
    let config = reference_server_config(
        &scenario.dialect.0,
        fixtures,
        (settings.ping_interval.0, settings.ping_timeout.0),
        faults,
        settings.exit_report_timeout.map(|d| d.0),
    )?;
    embedded::Embedded::start(config, scenario.restart_step.is_some())
        .await
        .map_err(|e| RunError::Setup(format!("cannot start the embedded reference server: {e}")))
}

/// Why a scenario with a `restart_server` step (at `at`) cannot run against `target`.
pub fn restart_refused(at: &str, target: &str) -> String {
    format!(
        "{at}: `restart_server` restarts the embedded reference server; roomrig cannot restart \
         the target {target}. Run the scenario without a target, or remove the step and restart \
         the target yourself"
    )
}

/// Starts the bundled reference server in this process on a free loopback port, with the
/// given heartbeat (pingInterval, pingTimeout), test-only faults and the report window of a
/// departure notice (voice's `exit_room_report`; `None`: the server's default).
pub async fn start_reference_server_with(
    dialect: &str,
    fixtures: &Fixtures,
    heartbeat: (Duration, Duration),
    faults: &[String],
    exit_report_timeout: Option<Duration>,
) -> Result<reference_server::RunningServer, RunError> {
    let config =
        reference_server_config(dialect, fixtures, heartbeat, faults, exit_report_timeout)?;
    reference_server::start(config)
        .await
        .map_err(|e| RunError::Setup(format!("cannot start the embedded reference server: {e}")))
}

/// The embedded server's configuration: a free loopback port, the heartbeat (pingInterval,
/// pingTimeout), test-only faults and the report window of a departure notice.
fn reference_server_config(
    dialect: &str,
    fixtures: &Fixtures,
    (ping_interval, ping_timeout): (Duration, Duration),
    faults: &[String],
    exit_report_timeout: Option<Duration>,
) -> Result<reference_server::ServerConfig, RunError> {
    let dialect = dialect
        .parse::<reference_server::Dialect>()
        .map_err(|e| RunError::Setup(format!("embedded server: {e}")))?;
    let mut config = reference_server::ServerConfig::new(
        dialect,
        "127.0.0.1:0".parse().expect("loopback address"),
        fixtures.clone(),
    );
    config.ping_interval = ping_interval;
    config.ping_timeout = ping_timeout;
    config.faults = faults
        .iter()
        .map(|f| {
            let fault: reference_server::faults::Fault = f
                .parse()
                .map_err(|e| RunError::Setup(format!("--server-fault {f}: {e}")))?;
            if fault.kills_the_process() {
                return Err(RunError::Setup(format!(
                    "--server-fault {f} ends the server's process: run it with `roomrig serve --fault {f}` and `--target`"
                )));
            }
            Ok(fault)
        })
        .collect::<Result<_, _>>()?;
    if let Some(window) = exit_report_timeout {
        config.exit_report_timeout = window;
    }
    Ok(config)
}

/// The Engine.IO version to run with: detected for `auto`, or the fixed one if the target
/// speaks it (see [`crate::generation`]).
pub async fn resolve_eio(
    target: &str,
    config: &ClientConfig,
    setting: crate::protocol::EioSetting,
) -> Result<
    (
        crate::protocol::EioVersion,
        Option<crate::generation::Detected>,
    ),
    RunError,
> {
    use crate::generation::GenerationError;
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(5),
        ..config.clone()
    };
    let resolved =
        unless_stopped(async { Ok(crate::generation::resolve(target, &config, setting).await) })
            .await?;
    resolved.map_err(|e| match e {
        GenerationError::Connect(e) => RunError::Unreachable {
            target: target.to_string(),
            eio: setting.to_string(),
            reason: e.to_string(),
        },
        other => RunError::Generation(other.to_string()),
    })
}

/// Warns (stderr) of what the schedule leaves out: see [`schedule::warnings`].
pub fn warn_schedule(scenario: &Scenario, users: usize) {
    for w in schedule::warnings(scenario, users) {
        eprintln!("warning: {w}");
    }
}

/// The scenario's `server:` block configures the embedded reference server only.
pub fn warn_server_block() {
    eprintln!(
        "warning: the scenario's `server:` block (ping_interval, ping_timeout) applies to the embedded reference server only, not to a target; heartbeat windows come from what the target advertises (an exit_report_timeout in it is what the judge expects of the target: no server advertises one)"
    );
}

/// One connection before the load, so an unreachable or non-speaking target fails fast.
pub async fn preflight(target: &str, config: &ClientConfig) -> Result<(), RunError> {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(5),
        ..config.clone()
    };
    let connected = unless_stopped(async { Ok(Connection::connect(target, &config).await) });
    match connected.await? {
        Ok(conn) => {
            conn.close().await;
            Ok(())
        }
        Err(e) => Err(RunError::Unreachable {
            target: target.to_string(),
            eio: config.eio.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// How long before its arrival a client's task is spawned.
const SPAWN_LEAD: Duration = Duration::from_millis(100);

/// Spawns each client's task shortly before its arrival and reaps the finished ones, until
/// every planned client has run or the run stops. Spawning all of them at the start kept a
/// waiting task's whole state machine alive per planned client, and finished clients' state
/// was only freed in bulk: measured with `bench/resource-soak.sh` (dorm, 20 arrivals/s, 36,000
/// planned), the driver sat at 202 MB one minute in and grew 6 MB a minute.
async fn spawn_and_join(
    shared: &Arc<Shared>,
    arrivals: Vec<schedule::Arrival>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let due = |a: &schedule::Arrival| shared.start + a.at.saturating_sub(SPAWN_LEAD);
    let mut pending = arrivals.into_iter().peekable();
    loop {
        if *shared.stop.borrow() {
            pending = Vec::new().into_iter().peekable();
        }
        let Some(next) = pending.peek().map(due) else {
            if tasks.join_next().await.is_none() {
                return;
            }
            continue;
        };
        tokio::select! {
            biased;
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                while let Some(arrival) = pending.next_if(|a| due(a) <= now) {
                    tasks.spawn(vu::run(shared.clone(), arrival));
                }
            }
        }
    }
}

/// How late the runtime runs a 10 ms timer (`runtime.lag`): a generator whose runtime is
/// saturated shows here even while its sends are still on time, and its receipts are then
/// judged late. The intended wake-ups stay on their grid (coordinated omission corrected).
async fn lag_probe(shared: Arc<Shared>) {
    const PERIOD: Duration = Duration::from_millis(10);
    let mut next = Instant::now() + PERIOD;
    loop {
        tokio::time::sleep_until(next).await;
        let lag = Instant::now().saturating_duration_since(next).as_micros() as u64;
        shared.metrics.record(("runtime", "lag"), lag, lag);
        // After a stall the missed wake-ups follow at once, each with its own lag.
        next += PERIOD;
    }
}

/// Stops the run, as Ctrl-C would, when an `abort_on_fail` threshold fails.
async fn abort_watch(shared: Arc<Shared>) {
    let checks: Vec<_> = (shared.scenario.thresholds.iter())
        .filter(|t| t.value.abort_on_fail)
        .map(|t| {
            let delay = t.value.delay_abort_eval.map_or(Duration::ZERO, |d| d.0);
            (t.value.threshold.clone(), delay)
        })
        .collect();
    if checks.is_empty() {
        return;
    }
    let failed =
        crate::thresholds::watch(checks, &shared.metrics, &shared.oracle, shared.start).await;
    let _ = shared.aborted.set(failed);
    shared.stop.send_replace(true);
}

/// Declares broadcasts missing as their deadline passes, so memory stays bounded; stops the
/// run (as Ctrl-C does) once the server disagrees with the users file.
async fn sweep_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if shared.oracle.fixture_mismatch().is_some() {
            shared.stop.send_replace(true);
            return;
        }
        shared.oracle.sweep_and_report(shared.now());
    }
}

#[cfg(test)]
mod embedded_heartbeat_tests;
