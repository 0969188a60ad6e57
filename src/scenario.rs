//! The scenario file: what a run does, parsed from YAML with file, line and column in every error.
//!
//! Unknown keys are refused (a typo must not silently change a load test), and every check that
//! can run during parsing does, so the error points at the offending node.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::dialect;
use crate::protocol::EioSetting;
use crate::scenario_source::{Place, Source};
use crate::thresholds::Threshold;

/// A parsed, validated scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in reports; defaults to the file name.
    #[serde(default)]
    pub name: String,
    pub dialect: DialectName,
    /// Engine.IO version: 3 (socket.io 1/2), 4 (socket.io 3/4) or `auto` (the default: detect
    /// the server's generation before the load, then use it).
    #[serde(default)]
    pub eio: EioSetting,
    /// Seeds every random choice of the run: same seed, same schedule of operations.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Server to drive; absent means the embedded reference server on a free loopback port.
    #[serde(default)]
    pub target: Option<String>,
    pub users: UsersSpec,
    /// Settings of the embedded reference server (do not apply to a target: a run with one
    /// warns, and judges by what the target advertises).
    #[serde(default)]
    pub server: Option<ServerBlock>,
    /// A broadcast or reply not received within this time is late; twice this, missing.
    #[serde(default = "default_deadline")]
    pub deadline: Dur,
    /// Open-loop arrival of clients.
    pub phases: Vec<Phase>,
    /// Client groups: each arriving client picks one by weight and runs its flow.
    pub clients: Vec<ClientGroup>,
    /// How long a leave (or close) may race a broadcast sent just before it: a member that
    /// leaves later than this after a broadcast must have received it; one that leaves sooner
    /// only if a later broadcast of the same sender reached it. Default and maximum: the
    /// deadline (a shorter window makes the verdict depend on how fast the server and the
    /// machine are).
    #[serde(default)]
    pub membership_grace: Option<Dur>,
    /// Slack allowed to a server closing a dead-heartbeat connection after
    /// pingInterval + pingTimeout.
    #[serde(default = "default_heartbeat_grace")]
    pub heartbeat_grace: Dur,
    /// The longest a server may take to close a client whose heartbeat stopped: caps the
    /// pingInterval + pingTimeout the server advertised in its handshake plus
    /// `heartbeat_grace` (state it when a server's advertised values cannot be trusted).
    #[serde(default)]
    pub heartbeat_deadline: Option<Dur>,
    /// Pass/fail conditions evaluated at the end of the run, e.g. `message.fanout.p99 < 50ms`;
    /// one with `abort_on_fail` is also checked every second and stops the run when it fails.
    #[serde(default)]
    pub thresholds: Vec<Spanned<ThresholdEntry>>,
    /// Push-only backend clients beside the socket clients, for a dialect with an HTTP `push`
    /// operation (see [`Backend`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Backend>,
    /// What besides the file made this scenario (for the replay command).
    #[serde(skip)]
    pub inputs: Inputs,
    /// Where the first `restart_server` step stands (`FILE:LINE:COLUMN`, or its path in the
    /// file): a run against a target is refused with it before any connection.
    #[serde(skip)]
    pub restart_step: Option<String>,
}

/// The environment variables and `--set` arguments a scenario was read with.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Variables read from the environment, with their values (defaults used are not here).
    pub env: Vec<(String, String)>,
    /// The `--set` arguments, in order.
    pub sets: Vec<String>,
}

/// One `thresholds:` entry: `"message.fanout.p99 < 250ms"`, or as k6 writes it,
/// `{threshold: "...", abort_on_fail: true, delay_abort_eval: 10s}`.
#[derive(Debug, Clone)]
pub struct ThresholdEntry {
    pub threshold: Threshold,
    /// Check during the run (every second) and stop the run when it fails.
    pub abort_on_fail: bool,
    /// How long after the start of the run the check begins (figures of the first seconds
    /// rest on few samples).
    pub delay_abort_eval: Option<Dur>,
}

impl<'de> Deserialize<'de> for ThresholdEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            threshold: String,
            #[serde(default)]
            abort_on_fail: bool,
            #[serde(default)]
            delay_abort_eval: Option<Dur>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ThresholdEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a threshold (\"message.fanout.p99 < 250ms\") or {threshold, abort_on_fail, delay_abort_eval}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ThresholdEntry, E> {
                Ok(ThresholdEntry {
                    threshold: Threshold::parse(v).map_err(E::custom)?,
                    abort_on_fail: false,
                    delay_abort_eval: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ThresholdEntry, A::Error> {
                let full = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let threshold = Threshold::parse(&full.threshold).map_err(de::Error::custom)?;
                if full.abort_on_fail {
                    threshold
                        .checkable_during_run()
                        .map_err(de::Error::custom)?;
                } else if full.delay_abort_eval.is_some() {
                    return Err(de::Error::custom(
                        "`delay_abort_eval` goes with `abort_on_fail: true`",
                    ));
                }
                Ok(ThresholdEntry {
                    threshold,
                    abort_on_fail: full.abort_on_fail,
                    delay_abort_eval: full.delay_abort_eval,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ThresholdEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if !self.abort_on_fail {
            return s.serialize_str(&self.threshold.text);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("threshold", &self.threshold.text)?;
        m.serialize_entry("abort_on_fail", &true)?;
        if let Some(d) = &self.delay_abort_eval {
            m.serialize_entry("delay_abort_eval", d)?;
        }
        m.end()
    }
}

fn default_seed() -> u64 {
    1
}
fn default_deadline() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_heartbeat_grace() -> Dur {
    Dur(Duration::from_secs(1))
}

/// `push: {rate, room, size, after, duration}`: a backend without a socket that performs the
/// dialect's HTTP `push` operation open-loop, `rate` times per second on a fixed grid from
/// `after` for `duration` (default: until the arrival phases end), each push into a room
/// chosen by `room`. Every push is judged as a `push` step of a client is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Pushes per second, of all backends together.
    #[serde(deserialize_with = "push_rate")]
    pub rate: f64,
    #[serde(default)]
    pub room: BackendRoom,
    /// The size of each push's content id (as the `push` step's `size`).
    #[serde(default)]
    pub size: Option<u64>,
    /// When the first push is due, from the start of the run (default: at once).
    #[serde(default)]
    pub after: Option<Dur>,
    /// How long the backend pushes (default: until the last arrival phase ends).
    #[serde(default)]
    pub duration: Option<Dur>,
}

/// The highest backend push rate (pushes per second): far above what one HTTP client here
/// sends, low enough that a typo cannot plan billions.
pub const MAX_PUSH_RATE: f64 = 100_000.0;

fn push_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v <= 0.0 || v > MAX_PUSH_RATE {
        return Err(de::Error::custom(format!(
            "a push rate must be above 0 and at most {MAX_PUSH_RATE} pushes per second, not {v}"
        )));
    }
    Ok(v)
}

/// Where a backend pushes: `random` (a fixture room of the run's clients, seeded, per push;
/// the default), `all` (no room: every connection) or one room id (a string or a number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackendRoom {
    #[default]
    Random,
    All,
    Named(String),
}

impl Serialize for BackendRoom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            BackendRoom::Random => "random",
            BackendRoom::All => "all",
            BackendRoom::Named(n) => n,
        })
    }
}

impl<'de> Deserialize<'de> for BackendRoom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BackendRoom;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`random`, `all` or a room id")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BackendRoom, E> {
                Ok(match v {
                    "random" => BackendRoom::Random,
                    "all" => BackendRoom::All,
                    "" => return Err(E::custom("a room id is not empty")),
                    _ if v.len() > 1024 => {
                        return Err(E::custom("a room id of a backend is at most 1024 bytes"))
                    }
                    room => BackendRoom::Named(room.to_string()),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BackendRoom, E> {
                Ok(BackendRoom::Named(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BackendRoom, E> {
                Ok(BackendRoom::Named(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where the users come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum UsersSpec {
    /// Deterministic users `user1..userN` in rooms of `room_size` (see the README).
    Generate {
        #[serde(deserialize_with = "user_count")]
        count: u64,
        #[serde(deserialize_with = "room_size")]
        room_size: u32,
    },
    /// A users file (JSON), relative to the scenario file.
    File(PathBuf),
}

/// The scenario's `server:` block as written: what it leaves out is the dialect's default
/// (see [`Scenario::server_settings`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_interval: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_timeout: Option<Dur>,
    /// voice: the report window of a departure notice (see [`ServerSettings`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_report_timeout: Option<Dur>,
}

/// The embedded reference server's settings, the dialect's defaults filled in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(default = "default_ping_interval")]
    pub ping_interval: Dur,
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout: Dur,
    /// voice: how long the member told of a departure has to report it back
    /// (`exit_room_report`) before the server must tell another member. The protocol
    /// advertises no such time: the embedded server runs with it, and the judge expects it of
    /// a target too. Default: the dialect's (voice: 5 s).
    #[serde(default)]
    pub exit_report_timeout: Option<Dur>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            ping_interval: default_ping_interval(),
            ping_timeout: default_ping_timeout(),
            exit_report_timeout: None,
        }
    }
}
fn default_ping_interval() -> Dur {
    Dur(Duration::from_secs(25))
}
fn default_ping_timeout() -> Dur {
    Dur(Duration::from_secs(20))
}

/// One phase of open-loop arrivals: `arrival_rate` clients per second, optionally ramping
/// linearly to `ramp_to` by the end of the phase. A rate of 0 is a pause.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    #[serde(default)]
    pub name: Option<String>,
    pub duration: Dur,
    #[serde(deserialize_with = "rate")]
    pub arrival_rate: f64,
    #[serde(default, deserialize_with = "some_rate")]
    pub ramp_to: Option<f64>,
}

/// The highest arrival rate a phase may ask for (clients per second): far above what one
/// machine connects (about 5,000/s here), low enough that a typo cannot plan billions.
pub const MAX_ARRIVAL_RATE: f64 = 100_000.0;

/// The longest duration a scenario may state anywhere: 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The largest scenario file read.
pub const MAX_SCENARIO_FILE: u64 = 4 << 20;

/// The largest room a generated fixture may have.
pub const MAX_ROOM_SIZE: u32 = 100_000;

/// Ranges are checked while parsing, so that the error names the line and column of the value.
fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || !(0.0..=MAX_ARRIVAL_RATE).contains(&v) {
        return Err(de::Error::custom(format!(
            "an arrival rate must be between 0 and {MAX_ARRIVAL_RATE} clients per second, not {v}"
        )));
    }
    Ok(v)
}

fn some_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    rate(d).map(Some)
}

fn user_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let max = reference_server::fixtures::MAX_GENERATED_USERS;
    let v = u64::deserialize(d)?;
    if !(1..=max).contains(&v) {
        return Err(de::Error::custom(format!(
            "the number of generated users must be between 1 and {max}, not {v}"
        )));
    }
    Ok(v)
}

fn room_size<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if !(1..=MAX_ROOM_SIZE).contains(&v) {
        return Err(de::Error::custom(format!(
            "a room size must be between 1 and {MAX_ROOM_SIZE}, not {v}"
        )));
    }
    Ok(v)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    pub name: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Exactly this many clients run the group: the earliest arrivals go to counted groups,
    /// in file order, before any arrival is picked by weight (so a case can say "client 0 is
    /// the hostile one, its roommates are bystanders").
    #[serde(default)]
    pub count: Option<u32>,
    pub flow: Vec<Step>,
    /// The client vanishes (a TCP reset, as `vanish`) the moment it receives this event, before
    /// answering it, and its flow ends there (voice: the member told of a departure dies
    /// before it reports back, whichever member the server chose to tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vanish_on: Option<String>,
}
fn default_weight() -> u32 {
    1
}

/// One step of a flow. Generic steps are `think`, `loop` and `expect`; every other step names an
/// operation of the dialect (`join_room`, `message`, …) with optional parameters.
#[derive(Debug, Clone, Serialize)]
pub enum Step {
    Think(Think),
    Loop(LoopStep),
    Expect(ExpectStep),
    Op(OpStep),
    Fault(Fault),
    Send(SendStep),
}

/// `send`: an arbitrary event (`event` + `args`) or a raw Engine.IO/Socket.IO text frame
/// (`frame`), for hostile and malformed input. Strings may use the templates of operation
/// parameters plus `{token}`, `{user:N}`, `{sid:N}` (client N's name and Socket.IO id) and
/// `{pad:N}` (N characters). Without `expect_error` or `lenient`, the server must ignore it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendStep {
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    #[serde(default)]
    pub frame: Option<String>,
    /// The server must answer with an error (`true`), or with exactly this text.
    #[serde(default)]
    pub expect_error: Option<serde_json::Value>,
    /// The server may answer anything or close this connection; from then on only what the
    /// other clients see is judged.
    #[serde(default)]
    pub lenient: bool,
    /// Plain-WebSocket dialects: fields written over the encoded frame *after* its envelope
    /// and signature were built (voice: `spoil: { sign: "0" }` sends an otherwise valid frame
    /// with a wrong signature).
    #[serde(default)]
    pub spoil: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A client fault: what a dying or misbehaving client does to its connection.
#[derive(Debug, Clone, Serialize)]
pub enum Fault {
    /// Stop the heartbeat but keep the TCP connection open (EIO 4: stop answering the
    /// server's pings; EIO 3: stop sending pings). The step waits until the server closes the
    /// connection, which must happen within pingInterval + pingTimeout + `heartbeat_grace`
    /// and not before pingTimeout.
    DropHeartbeats,
    /// End the TCP connection with a reset: no WebSocket close, no Engine.IO close.
    Vanish,
    /// Stop reading from the socket for this long while the server keeps sending.
    Stall(Dur),
    /// A clean disconnect (Socket.IO, Engine.IO and WebSocket close).
    Close,
    /// Connect again as the same user, after a delay.
    Reconnect(ReconnectStep),
    /// Not the client's own fault: the driver stops the embedded reference server and starts
    /// it again on the same address with the same store (`restart_server`); every client's
    /// connection drops, and each reconnects as its flow says. Refused against a target.
    RestartServer,
    /// Stop answering the events the dialect's clients answer by themselves, for the rest of
    /// the client's life (voice: no `exit_room_report`, so the server must tell another member).
    WithholdAnswers,
}

/// `reconnect`: wait `after` (plus up to `jitter`, seeded), connect again; a failed attempt is
/// retried up to `attempts` times, each wait multiplied by `backoff`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectStep {
    #[serde(default)]
    pub after: Option<Dur>,
    #[serde(default)]
    pub jitter: Option<Dur>,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_backoff")]
    pub backoff: f64,
}

fn default_attempts() -> u32 {
    1
}
fn default_backoff() -> f64 {
    2.0
}

/// Pause before the next step: fixed, or uniformly random in `[min, max]` (seeded).
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Think {
    Fixed(Dur),
    Range { min: Dur, max: Dur },
}

/// Repeat `steps` `count` times, or until `duration` has passed on the schedule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoopStep {
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub duration: Option<Dur>,
    pub steps: Vec<Step>,
}

/// Wait until `event` arrives at this client, at most `within`; a miss is a violation. With
/// `absent: true`, wait `within` and flag the event if it arrives. Every client of the group
/// runs the step, so in a room-wide flow it is an expectation at every member.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectStep {
    pub event: String,
    #[serde(default = "default_deadline")]
    pub within: Dur,
    /// The event must *not* arrive within `within` (the step always lasts that long).
    #[serde(default)]
    pub absent: bool,
    /// The event follows another client's heartbeat close: the wait also allows the longest
    /// close the server advertised (pingInterval + pingTimeout + `heartbeat_grace`, capped by
    /// `heartbeat_deadline`), so a server with long heartbeats is waited for, not failed.
    #[serde(default)]
    pub heartbeat: bool,
}

/// A dialect operation with its parameters (checked against the dialect's table).
#[derive(Debug, Clone, Serialize)]
pub struct OpStep {
    pub op: String,
    pub params: BTreeMap<String, serde_json::Value>,
}

/// Why a scenario could not be used; `Display` names the file and where.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Semantic { path: String, message: String },
    /// A `--set` argument that cannot be applied, or whose value is refused.
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

impl Scenario {
    /// The embedded reference server's settings (the defaults when the file has none).
    /// The embedded server's heartbeat: the `server:` block's values, the dialect's default
    /// heartbeat for what it leaves out (Engine.IO's 25 s / 20 s; voice: the seed's 15 s / 5 s).
    pub fn server_settings(&self) -> ServerSettings {
        let default = dialect::find(&self.dialect.0)
            .map(|d| d.heartbeat)
            .unwrap_or(dialect::Heartbeat::ENGINE_IO);
        let block = self.server.clone().unwrap_or_default();
        ServerSettings {
            ping_interval: block.ping_interval.unwrap_or(Dur(default.interval)),
            ping_timeout: block.ping_timeout.unwrap_or(Dur(default.timeout)),
            exit_report_timeout: block.exit_report_timeout,
        }
    }

    /// Reads a scenario file, expands `${VAR}` from the environment, applies the `--set`
    /// arguments, then parses and validates the result (see [`crate::env_expand`],
    /// [`crate::overrides`]).
    pub fn load_with(path: &Path, sets: &[String]) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text =
            reference_server::fixtures::read_capped(path, MAX_SCENARIO_FILE).map_err(|source| {
                ScenarioError::Read {
                    path: shown.clone(),
                    source,
                }
            })?;
        let mut source = Source::new(text);
        let env = crate::env_expand::expand(&mut source, |name| std::env::var(name).ok()).map_err(
            |e| {
                let (line, column) = crate::scenario_source::line_column(&source.text, e.offset);
                ScenarioError::Invalid {
                    path: shown.clone(),
                    line,
                    column,
                    message: e.message,
                }
            },
        )?;
        crate::overrides::apply(&mut source, sets).map_err(|e| ScenarioError::Override {
            arg: e.arg,
            message: e.message,
        })?;
        let mut scenario = Scenario::parse_source(&source, &shown)?;
        scenario.inputs = Inputs {
            env,
            sets: sets.to_vec(),
        };
        if scenario.name.is_empty() {
            scenario.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        if let UsersSpec::File(file) = &mut scenario.users {
            if file.is_relative() {
                if let Some(dir) = path.parent() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(scenario)
    }

    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse_source(&Source::new(text.to_string()), origin)
    }

    /// Parses the text of `source`; errors name the place in the file (or the `--set`
    /// argument) the offending text came from.
    pub fn parse_source(source: &Source, origin: &str) -> Result<Scenario, ScenarioError> {
        let located = |line: u64, column: u64, message: String| match source.place(line, column) {
            Place::File { line, column, note } => ScenarioError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message: match note {
                    Some(note) => format!("{message} ({note})"),
                    None => message,
                },
            },
            Place::Set(arg) => ScenarioError::Override { arg, message },
        };
        let scenario: Scenario = serde_saphyr::from_str(&source.text).map_err(|e| {
            // The parser's own "line L column C" counts in the edited text: the place says it.
            let message = without_position(&first_line(&e.to_string())).to_string();
            match e.location() {
                Some(l) => located(l.line(), l.column(), message),
                None => ScenarioError::Invalid {
                    path: origin.to_string(),
                    line: 0,
                    column: 0,
                    message,
                },
            }
        })?;
        scenario.validate().map_err(|message| {
            // A check of the whole file names the node by its path: point at it too.
            match crate::yaml_path::locate_message(&source.text, &message) {
                Some((line, column)) => located(line, column, message),
                None => ScenarioError::Semantic {
                    path: origin.to_string(),
                    message,
                },
            }
        })?;
        scenario
            .check_threshold_metrics()
            .map_err(|(at, message)| {
                located(
                    at.line(),
                    at.column(),
                    format!("field `thresholds`: {message}"),
                )
            })?;
        let mut scenario = scenario;
        scenario.restart_step = scenario.restart_step_path().map(|path| {
            let place = crate::yaml_path::locate(&source.text, &path)
                .map(|(line, column)| source.place(line, column));
            match place {
                Some(Place::File { line, column, .. }) => format!("{origin}:{line}:{column}"),
                Some(Place::Set(arg)) => format!("--set {arg}"),
                None => format!("{origin}: {path}"),
            }
        });
        Ok(scenario)
    }

    /// The path in the file of the first `restart_server` step (`clients[NAME].flow[I]...`).
    fn restart_step_path(&self) -> Option<String> {
        fn find(steps: &[Step], at: &str) -> Option<String> {
            steps.iter().enumerate().find_map(|(i, step)| match step {
                Step::Fault(Fault::RestartServer) => Some(format!("{at}[{i}]")),
                Step::Loop(l) => find(&l.steps, &format!("{at}[{i}].loop.steps")),
                _ => None,
            })
        }
        self.clients
            .iter()
            .find_map(|g| find(&g.flow, &format!("clients[{}].flow", g.name)))
    }

    /// Each threshold's metric is one the dialect can record (a typo must not run the whole
    /// scenario to fail with no value at the end).
    fn check_threshold_metrics(&self) -> Result<(), (serde_saphyr::Location, String)> {
        let spec = dialect::spec(self.dialect.0.as_str());
        let mut sends = Vec::new();
        for group in &self.clients {
            send_events(&group.flow, &mut sends);
        }
        let known = crate::thresholds::known_metrics(spec, &sends);
        for t in &self.thresholds {
            crate::thresholds::check_metric(&t.value.threshold, &known, spec.name)
                .map_err(|e| (t.referenced, e))?;
        }
        Ok(())
    }

    /// Checks that need the whole file (the dialect's operations, phases, weights).
    fn validate(&self) -> Result<(), String> {
        if self.phases.is_empty() {
            return Err("field `phases`: at least one phase is needed".into());
        }
        if self.clients.is_empty() {
            return Err("field `clients`: at least one client group is needed".into());
        }
        if self
            .clients
            .iter()
            .all(|g| g.weight == 0 && g.count.is_none())
        {
            return Err("field `clients`: every weight is 0, so no client can run".into());
        }
        if let Some(g) = self.clients.iter().find(|g| g.count == Some(0)) {
            return Err(format!(
                "field `clients[{}].count`: must be at least 1",
                g.name
            ));
        }
        let spec = dialect::spec(self.dialect.0.as_str());
        for group in &self.clients {
            check_steps(&group.flow, spec, &format!("clients[{}].flow", group.name))?;
            if let Some(event) = &group.vanish_on {
                if !spec.events.iter().any(|ev| ev.name == event) {
                    let known: Vec<&str> = spec.events.iter().map(|ev| ev.name).collect();
                    return Err(format!(
                        "field `clients[{}].vanish_on`: `{event}` is not an event of dialect `{}`; expected one of: {}",
                        group.name,
                        spec.name,
                        known.join(", ")
                    ));
                }
            }
        }
        if let Some(backend) = &self.push {
            check_backend(backend, spec)?;
        }
        Ok(())
    }

    /// The broadcast/reply deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline.0
    }
}

/// A backend needs the dialect's HTTP `push` operation, and its `size` is that operation's.
fn check_backend(backend: &Backend, spec: &dialect::DialectSpec) -> Result<(), String> {
    let op = spec
        .op("push")
        .filter(|op| matches!(op.via, dialect::Via::Http { .. }));
    if op.is_none() {
        return Err(format!(
            "field `push`: dialect `{}` has no HTTP `push` operation for a backend to perform",
            spec.name
        ));
    }
    if let (Some(op), Some(size)) = (op, backend.size) {
        let params = BTreeMap::from([("size".to_string(), serde_json::json!(size))]);
        (op.check_params)(&params).map_err(|e| format!("field `push.size`: {e}"))?;
    }
    Ok(())
}

fn check_steps(steps: &[Step], spec: &dialect::DialectSpec, at: &str) -> Result<(), String> {
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Op(op) => {
                let Some(op_spec) = spec.op(&op.op) else {
                    let known: Vec<&str> = spec.ops.iter().map(|o| o.name).collect();
                    return Err(format!(
                        "{at}[{i}]: `{}` is not an operation of dialect `{}`; expected one of: think, loop, expect, send, drop_heartbeats, vanish, stall, close, reconnect, restart_server, withhold_answers, {}",
                        op.op,
                        spec.name,
                        known.join(", ")
                    ));
                };
                (op_spec.check_params)(&op.params)
                    .map_err(|e| format!("{at}[{i}] ({}): {e}", op.op))?;
            }
            Step::Expect(e) => {
                let channel = match spec.errors {
                    dialect::ErrorStyle::Channel { event }
                    | dialect::ErrorStyle::Coded { event, .. } => event == e.event,
                    dialect::ErrorStyle::SameEvent { .. } => false,
                };
                if !channel && !spec.events.iter().any(|ev| ev.name == e.event) {
                    let known: Vec<&str> = spec.events.iter().map(|ev| ev.name).collect();
                    return Err(format!(
                        "{at}[{i}] (expect): `{}` is not an event of dialect `{}`; expected one of: {}",
                        e.event,
                        spec.name,
                        known.join(", ")
                    ));
                }
            }
            Step::Loop(l) => check_steps(&l.steps, spec, &format!("{at}[{i}].loop.steps"))?,
            Step::Send(SendStep { spoil: Some(_), .. })
                if dialect::find(spec.name).is_none_or(|d| d.websocket.is_none()) =>
            {
                return Err(format!(
                    "{at}[{i}] (send): `spoil` needs a dialect over plain WebSocket (JSON frames); `{}` speaks Socket.IO",
                    spec.name
                ));
            }
            Step::Think(_) | Step::Fault(_) | Step::Send(_) => {}
        }
    }
    Ok(())
}

/// The events `send` steps emit (their replies and errors are metrics too).
fn send_events<'a>(steps: &'a [Step], out: &mut Vec<&'a str>) {
    for step in steps {
        match step {
            Step::Send(SendStep {
                event: Some(event), ..
            }) => out.push(event),
            Step::Loop(l) => send_events(&l.steps, out),
            _ => {}
        }
    }
}

/// A parser message without its leading `error: line L column C: `.
fn without_position(message: &str) -> &str {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    let Some(rest) = rest.strip_prefix("line ") else {
        return message;
    };
    let mut words = rest.splitn(4, ' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(line), Some("column"), Some(column), Some(text))
            if line.chars().all(|c| c.is_ascii_digit())
                && column
                    .strip_suffix(':')
                    .is_some_and(|c| c.chars().all(|c| c.is_ascii_digit())) =>
        {
            text
        }
        _ => message,
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim();
    without_location(line).to_string()
}

/// The parser's message without its own `error: line L column C: ` prefix: the error already
/// starts with `file:line:column:`.
fn without_location(message: &str) -> &str {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    let Some(rest) = rest.strip_prefix("line ") else {
        return message;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix(" column ") else {
        return message;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.strip_prefix(": ").unwrap_or(message)
}

/// The dialect name, checked against the dialects roomrig knows while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DialectName(pub String);

impl<'de> Deserialize<'de> for DialectName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if dialect::NAMES.contains(&name.as_str()) {
            if dialect::find(&name).is_some() {
                Ok(DialectName(name))
            } else {
                Err(de::Error::custom(format!(
                    "dialect `{name}` is not implemented yet; implemented: {}",
                    dialect::implemented().join(", ")
                )))
            }
        } else {
            Err(de::Error::custom(format!(
                "unknown dialect `{name}`; expected one of: {}",
                dialect::NAMES.join(", ")
            )))
        }
    }
}

/// A duration written as `250ms`, `2s`, `1.5s`, `3m`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (expected e.g. 250ms, 2s, 1m)"))?;
        let secs = match unit.trim() {
            "" | "s" => value,
            "ms" => value / 1e3,
            "us" | "µs" => value / 1e6,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{s}` (use us, ms, s, m, h)"
                ))
            }
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("`{s}` is not a valid duration"));
        }
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(format!(
                "`{s}` is longer than the longest duration, 30 days"
            ));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1e3;
        if ms >= 1000.0 && ms % 1000.0 == 0.0 {
            write!(f, "{}s", ms / 1000.0)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 250ms, 2s or 1m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a duration cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            min: Dur,
            max: Dur,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Think;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration (1s) or a range {min: 500ms, max: 2s}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Think, E> {
                Dur::parse(v).map(Think::Fixed).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Think, E> {
                Ok(Think::Fixed(Dur(Duration::from_secs(v))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Think, E> {
                Dur::parse(&v.to_string())
                    .map(Think::Fixed)
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Think, A::Error> {
                let r = Range::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if r.min > r.max {
                    return Err(de::Error::custom("think: `min` is greater than `max`"));
                }
                Ok(Think::Range {
                    min: r.min,
                    max: r.max,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl SendStep {
    fn validate(&self) -> Result<(), String> {
        match (&self.event, &self.frame) {
            (Some(_), Some(_)) | (None, None) => {
                return Err("send: give either `event` (with `args`) or `frame`".into())
            }
            (None, Some(_)) if !self.args.is_empty() => {
                return Err("send: `args` go with `event`, not with a raw `frame`".into())
            }
            (None, Some(_)) if self.expect_error.is_some() => {
                return Err(
                    "send: a raw `frame` names no event to answer on; use `lenient: true`".into(),
                )
            }
            _ => {}
        }
        match &self.expect_error {
            None | Some(serde_json::Value::String(_)) | Some(serde_json::Value::Bool(_)) => {}
            Some(_) => {
                return Err(
                    "send: `expect_error` must be true, false, or the error's exact text".into(),
                )
            }
        }
        if self.lenient && self.expect_error.is_some() {
            return Err("send: `expect_error` and `lenient` exclude each other".into());
        }
        if self.spoil.is_some() && self.event.is_none() {
            return Err(
                "send: `spoil` changes an encoded `event`; a raw `frame` is sent as written".into(),
            );
        }
        Ok(())
    }
}

const GENERIC_STEPS: &str = "think, loop, expect, send, drop_heartbeats, vanish, stall, close, reconnect, restart_server, withhold_answers, or an operation of the dialect";

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a step: a name (`join_room`) or a map with one key ({GENERIC_STEPS})"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Step, E> {
                match v {
                    "think" | "loop" | "expect" | "stall" | "send" => Err(E::custom(format!(
                        "step `{v}` needs a value, e.g. `{v}: ...`"
                    ))),
                    "drop_heartbeats" => Ok(Step::Fault(Fault::DropHeartbeats)),
                    "vanish" => Ok(Step::Fault(Fault::Vanish)),
                    "close" => Ok(Step::Fault(Fault::Close)),
                    "restart_server" => Ok(Step::Fault(Fault::RestartServer)),
                    "withhold_answers" => Ok(Step::Fault(Fault::WithholdAnswers)),
                    "reconnect" => Ok(Step::Fault(Fault::Reconnect(ReconnectStep {
                        after: None,
                        jitter: None,
                        attempts: default_attempts(),
                        backoff: default_backoff(),
                    }))),
                    op => Ok(Step::Op(OpStep {
                        op: op.to_string(),
                        params: BTreeMap::new(),
                    })),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty step; expected {GENERIC_STEPS}"
                    )));
                };
                let step = match key.as_str() {
                    "think" => Step::Think(map.next_value()?),
                    "loop" => {
                        let l: LoopStep = map.next_value()?;
                        match (l.count, l.duration) {
                            (None, None) => {
                                return Err(de::Error::custom(
                                    "loop: give `count` or `duration` (or both)",
                                ))
                            }
                            (Some(0), _) => return Err(de::Error::custom("loop: `count` is 0")),
                            _ => {}
                        }
                        if l.steps.is_empty() {
                            return Err(de::Error::custom("loop: `steps` is empty"));
                        }
                        Step::Loop(l)
                    }
                    "expect" => Step::Expect(map.next_value()?),
                    "send" => {
                        let send: SendStep = map.next_value()?;
                        send.validate().map_err(de::Error::custom)?;
                        Step::Send(send)
                    }
                    "stall" => Step::Fault(Fault::Stall(map.next_value()?)),
                    "reconnect" => {
                        let r: ReconnectStep = map.next_value()?;
                        if r.attempts == 0 || !(1.0..=60.0).contains(&r.backoff) {
                            return Err(de::Error::custom(
                                "reconnect: `attempts` must be at least 1 and `backoff` between 1 and 60",
                            ));
                        }
                        Step::Fault(Fault::Reconnect(r))
                    }
                    op => {
                        let value: serde_json::Value = map.next_value()?;
                        let params = match value {
                            serde_json::Value::Null => BTreeMap::new(),
                            serde_json::Value::Object(m) => m.into_iter().collect(),
                            // `action: "05"` is shorthand for the operation's main parameter.
                            other => BTreeMap::from([("value".to_string(), other)]),
                        };
                        Step::Op(OpStep {
                            op: op.to_string(),
                            params,
                        })
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a step has one key; `{key}` is followed by `{extra}` (start a new `- ` item)"
                    )));
                }
                Ok(step)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
dialect: dorm
users:
  generate: { count: 8, room_size: 4 }
phases:
  - { duration: 2s, arrival_rate: 4 }
clients:
  - name: talker
    flow:
      - join_room
      - expect: { event: last_data, within: 2s }
      - loop:
          count: 3
          steps:
            - message: { size: 16 }
            - think: { min: 100ms, max: 200ms }
            - action: \"05\"
      - leave_room
";

    /// `vanish_on` names an event of the dialect; anything else is refused with the known ones.
    #[test]
    fn vanish_on_names_an_event_of_the_dialect() {
        let text = |event: &str| {
            format!(
                "dialect: voice\nusers: {{ generate: {{ count: 4, room_size: 2 }} }}\n\
                 phases: [{{ duration: 1s, arrival_rate: 4 }}]\n\
                 clients: [{{ name: a, vanish_on: {event}, flow: [enter_room] }}]\n"
            )
        };
        let s = Scenario::parse(&text("exit_room"), "v.yaml").unwrap();
        assert_eq!(s.clients[0].vanish_on.as_deref(), Some("exit_room"));
        let e = Scenario::parse(&text("exit_rooom"), "v.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`clients[a].vanish_on`: `exit_rooom`"), "{e}");
        assert!(e.contains("exit_room"), "{e}");
    }

    /// What the `server:` block leaves out is the dialect's default heartbeat.
    #[test]
    fn server_settings_default_to_the_dialects_heartbeat() {
        let secs = |s: u64| Dur(Duration::from_secs(s));
        let dorm = Scenario::parse(GOOD, "good.yaml")
            .unwrap()
            .server_settings();
        assert_eq!(
            (dorm.ping_interval, dorm.ping_timeout),
            (secs(25), secs(20))
        );
        let voice = |server: &str| {
            let text = format!(
                "dialect: voice\n{server}users: {{ generate: {{ count: 4, room_size: 2 }} }}\n\
                 phases: [{{ duration: 1s, arrival_rate: 4 }}]\n\
                 clients: [{{ name: a, flow: [enter_room] }}]\n"
            );
            let s = Scenario::parse(&text, "voice.yaml")
                .unwrap()
                .server_settings();
            (s.ping_interval, s.ping_timeout)
        };
        assert_eq!(voice(""), (secs(15), secs(5)));
        assert_eq!(voice("server: { ping_interval: 2s }\n"), (secs(2), secs(5)));
        assert_eq!(
            voice("server: { ping_interval: 1s, ping_timeout: 1s }\n"),
            (secs(1), secs(1))
        );
    }

    #[test]
    fn a_restart_step_is_located_where_the_file_has_it() {
        let s = Scenario::parse(GOOD, "good.yaml").unwrap();
        assert_eq!(s.restart_step, None);
        let text = GOOD.replace(
            "            - action: \"05\"\n",
            "            - action: \"05\"\n            - restart_server\n",
        );
        let s = Scenario::parse(&text, "r.yaml").unwrap();
        assert_eq!(s.restart_step.as_deref(), Some("r.yaml:17:15"));
    }

    #[test]
    fn parses_a_good_scenario() {
        let s = Scenario::parse(GOOD, "good.yaml").unwrap();
        assert_eq!(s.eio, EioSetting::Auto);
        assert!(s.server.is_none());
        assert_eq!(s.clients[0].flow.len(), 4);
        let Step::Loop(l) = &s.clients[0].flow[2] else {
            panic!("expected a loop")
        };
        assert_eq!(l.count, Some(3));
        let Step::Op(action) = &l.steps[2] else {
            panic!("expected an op")
        };
        assert_eq!(action.params["value"], serde_json::json!("05"));
    }

    #[test]
    fn eio_is_3_4_or_auto() {
        use crate::protocol::EioVersion;
        for (text, want) in [
            ("3", EioSetting::Fixed(EioVersion::V3)),
            ("4", EioSetting::Fixed(EioVersion::V4)),
            ("auto", EioSetting::Auto),
        ] {
            let s = Scenario::parse(&format!("eio: {text}\n{GOOD}"), "e.yaml").unwrap();
            assert_eq!(s.eio, want, "{text}");
        }
        let err = Scenario::parse(&format!("eio: 5\n{GOOD}"), "e.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("3, 4 or auto"), "{err}");
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let bad = GOOD.replace("arrival_rate", "arival_rate");
        let err = Scenario::parse(&bad, "bad.yaml").unwrap_err().to_string();
        assert!(err.starts_with("bad.yaml:5:"), "{err}");
        assert!(err.contains("arival_rate"), "{err}");
    }

    #[test]
    fn bad_duration_is_located() {
        let bad = GOOD.replace("think: { min: 100ms", "think: { min: 100parsecs");
        let err = Scenario::parse(&bad, "bad.yaml").unwrap_err().to_string();
        assert!(err.starts_with("bad.yaml:15:"), "{err}");
        assert!(err.contains("parsecs"), "{err}");
    }

    /// Numbers that would allocate gigabytes or overflow are refused where they stand, before
    /// anything is planned.
    #[test]
    fn huge_and_negative_numbers_are_located() {
        for (from, to, line, says) in [
            ("arrival_rate: 4", "arrival_rate: .inf", 5, "arrival rate"),
            ("arrival_rate: 4", "arrival_rate: 1e12", 5, "arrival rate"),
            ("arrival_rate: 4", "arrival_rate: -1", 5, "arrival rate"),
            (
                "arrival_rate: 4",
                "arrival_rate: 4, ramp_to: 1e9",
                5,
                "arrival rate",
            ),
            (
                "duration: 2s",
                "duration: 9999999999999999999s",
                5,
                "30 days",
            ),
            ("duration: 2s", "duration: 99999999999", 5, "30 days"),
            ("count: 8", "count: 1000000000", 3, "generated users"),
            (
                "count: 8",
                "count: 18446744073709551615",
                3,
                "generated users",
            ),
            ("count: 8", "count: 0", 3, "generated users"),
            ("room_size: 4", "room_size: 0", 3, "room size"),
        ] {
            let bad = GOOD.replace(from, to);
            let err = Scenario::parse(&bad, "bad.yaml").unwrap_err().to_string();
            assert!(err.starts_with(&format!("bad.yaml:{line}:")), "{to}: {err}");
            assert!(err.contains(says), "{to}: {err}");
        }
    }

    /// A phase of a billion arrivals plans only as many as there are users.
    #[test]
    fn arrivals_stop_at_the_users() {
        let s = Scenario::parse(
            &GOOD.replace(
                "duration: 2s, arrival_rate: 4",
                "duration: 29d, arrival_rate: 99999",
            ),
            "big.yaml",
        );
        // `29d` is no unit: the longest is written in hours.
        assert!(s.is_err());
        let s = Scenario::parse(
            &GOOD.replace(
                "duration: 2s, arrival_rate: 4",
                "duration: 700h, arrival_rate: 99999",
            ),
            "big.yaml",
        )
        .unwrap();
        assert_eq!(crate::schedule::arrivals(&s, 8).len(), 8);
        assert!(crate::schedule::plans_nobody(&s, 8).is_none());
        assert!(crate::schedule::plans_nobody(&s, 0).is_some());
        let idle = Scenario::parse(
            &GOOD.replace("arrival_rate: 4", "arrival_rate: 0"),
            "idle.yaml",
        )
        .unwrap();
        let why = crate::schedule::plans_nobody(&idle, 8).expect("nobody");
        assert!(why.contains("arrival_rate"), "{why}");
    }

    #[test]
    fn unknown_operation_is_refused() {
        let bad = GOOD.replace("- leave_room", "- dance");
        let err = Scenario::parse(&bad, "bad.yaml").unwrap_err().to_string();
        assert!(err.contains("`dance` is not an operation"), "{err}");
        let line = bad.lines().position(|l| l.contains("- dance")).unwrap() + 1;
        let column = bad.lines().nth(line - 1).unwrap().find("dance").unwrap() + 1;
        assert!(
            err.starts_with(&format!("bad.yaml:{line}:{column}: ")),
            "{err}"
        );
    }

    #[test]
    fn a_location_is_said_once() {
        let bad = GOOD.replace("think: { min: 100ms", "think: { min: 100parsecs");
        let err = Scenario::parse(&bad, "bad.yaml").unwrap_err().to_string();
        assert!(!err.contains("line 15"), "{err}");
        assert_eq!(err.matches("error").count(), 0, "{err}");
        assert_eq!(without_location("error: line 3 column 4: bad"), "bad");
        assert_eq!(without_location("line 3 is odd"), "line 3 is odd");
    }

    #[test]
    fn unknown_dialect_is_located() {
        let bad = GOOD.replace("dialect: dorm", "dialect: dormm");
        let err = Scenario::parse(&bad, "bad.yaml").unwrap_err().to_string();
        assert!(err.starts_with("bad.yaml:1:"), "{err}");
        assert!(err.contains("unknown dialect"), "{err}");
    }

    #[test]
    fn send_steps_are_validated() {
        let with = |step: &str| GOOD.replace("- leave_room", step);
        let ok = Scenario::parse(
            &with("- send: { event: join_room, args: [ { token: \"{pad:10}\" } ], expect_error: true }"),
            "s.yaml",
        )
        .unwrap();
        assert!(matches!(ok.clients[0].flow[3], Step::Send(_)));
        Scenario::parse(&with("- send: { frame: \"42[\", lenient: true }"), "s.yaml").unwrap();
        for (bad, why) in [
            ("- send: { args: [] }", "either `event`"),
            ("- send: { event: a, frame: \"4\" }", "either `event`"),
            (
                "- send: { frame: \"4\", args: [1] }",
                "`args` go with `event`",
            ),
            (
                "- send: { frame: \"4\", expect_error: true }",
                "names no event",
            ),
            (
                "- send: { event: a, expect_error: true, lenient: true }",
                "exclude each other",
            ),
            ("- send: { event: a, expect_error: 5 }", "must be true"),
            (
                "- send: { frame: \"4\", spoil: { sign: x }, lenient: true }",
                "sent as written",
            ),
            (
                "- send: { event: a, spoil: { sign: x }, lenient: true }",
                "needs a dialect over plain WebSocket",
            ),
            (
                "- join_room: { lenient: true, expect_error: true }",
                "exclude each other",
            ),
        ] {
            let err = Scenario::parse(&with(bad), "s.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.starts_with("s.yaml"), "{err}");
        }
    }

    #[test]
    fn counted_groups_are_validated() {
        let bad = GOOD.replace("  - name: talker\n", "  - name: talker\n    count: 0\n");
        let err = Scenario::parse(&bad, "c.yaml").unwrap_err().to_string();
        assert!(err.contains("count`: must be at least 1"), "{err}");
        let good = GOOD.replace("  - name: talker\n", "  - name: talker\n    count: 2\n");
        assert_eq!(
            Scenario::parse(&good, "c.yaml").unwrap().clients[0].count,
            Some(2)
        );
    }

    #[test]
    fn thresholds_are_checked_where_they_stand() {
        let with = |entries: &str| format!("{GOOD}thresholds:\n{entries}");
        let err = Scenario::parse(
            &with("  - violations == 0\n  - mesage.fanout.p99 < 250ms\n"),
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.yaml:20:5: "), "{err}");
        assert!(err.contains("did you mean `message.fanout`?"), "{err}");
        for (entry, says) in [
            ("  - message.fanout.p42 < 1ms\n", "unknown statistic `p42`"),
            ("  - message.fanout.p99 < 1 lightyear\n", "unknown unit"),
            (
                "  - { threshold: sent > 1, abort_on_fail: true }\n",
                "judged during the run",
            ),
            (
                "  - { threshold: violations == 0, delay_abort_eval: 1s }\n",
                "goes with `abort_on_fail: true`",
            ),
            (
                "  - { threshold: violations == 0, abort: true }\n",
                "unknown field `abort`",
            ),
        ] {
            let err = Scenario::parse(&with(entry), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("t.yaml:19:"), "{entry}: {err}");
            assert!(err.contains(says), "{entry}: {err}");
        }
    }

    #[test]
    fn threshold_entries_as_k6_writes_them() {
        let text = format!(
            "{GOOD}thresholds:\n  - message.fanout.p95 < 250ms\n  - threshold: message.fanout.p99 < 1s\n    abort_on_fail: true\n    delay_abort_eval: 10s\n"
        );
        let s = Scenario::parse(&text, "k6.yaml").unwrap();
        let [plain, abort] = &s.thresholds[..] else {
            panic!("two thresholds")
        };
        assert!(!plain.value.abort_on_fail);
        assert!(abort.value.abort_on_fail);
        assert_eq!(abort.value.threshold.limit, 1000.0);
        assert_eq!(
            abort.value.delay_abort_eval.map(|d| d.0),
            Some(Duration::from_secs(10))
        );
        // summary.json's `config` shows each as it was written.
        let config = serde_json::to_value(&s).unwrap();
        assert_eq!(
            config["thresholds"],
            serde_json::json!([
                "message.fanout.p95 < 250ms",
                { "threshold": "message.fanout.p99 < 1s", "abort_on_fail": true, "delay_abort_eval": "10s" }
            ])
        );
    }

    #[test]
    fn parser_messages_lose_their_own_position() {
        assert_eq!(
            without_position("error: line 3 column 15: unknown field"),
            "unknown field"
        );
        assert_eq!(without_position("line 3 column 15: x: y"), "x: y");
        assert_eq!(without_position("line up: here"), "line up: here");
    }

    /// `push:` (a backend) is read strictly: its room is `random` by default, `all`, or an id
    /// given as a string or a number; bad values are located; a dialect without an HTTP
    /// `push` operation refuses it where it stands.
    #[test]
    fn backends_are_parsed_and_located() {
        let push = GOOD
            .replace("dialect: dorm", "dialect: push")
            .replace(
                "      - join_room\n      - expect: { event: last_data, within: 2s }\n",
                "",
            )
            .replace("            - message: { size: 16 }\n", "")
            .replace("            - action: \"05\"\n", "")
            .replace("      - leave_room\n", "");
        for (block, want) in [
            ("push: { rate: 5 }\n", BackendRoom::Random),
            ("push: { rate: 5, room: all }\n", BackendRoom::All),
            (
                "push: { rate: 5, room: 7 }\n",
                BackendRoom::Named("7".into()),
            ),
            (
                "push: { rate: 5, room: lobby }\n",
                BackendRoom::Named("lobby".into()),
            ),
        ] {
            let s = Scenario::parse(&format!("{push}{block}"), "p.yaml").unwrap();
            assert_eq!(s.push.unwrap().room, want, "{block}");
        }
        let lines = push.lines().count() + 1;
        for (block, says) in [
            ("push: { rate: -1 }\n", "push rate"),
            ("push: { rate: 5, room: \"\" }\n", "not empty"),
            ("push: { rate: 5, every: 1s }\n", "unknown field"),
        ] {
            let err = Scenario::parse(&format!("{push}{block}"), "p.yaml")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("p.yaml:{lines}:")),
                "{block}: {err}"
            );
            assert!(err.contains(says), "{block}: {err}");
        }
        let err = Scenario::parse(&format!("{GOOD}push: {{ rate: 5 }}\n"), "d.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no HTTP `push` operation"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Dur::parse("1.5s").unwrap().0, Duration::from_millis(1500));
        assert_eq!(Dur::parse("2m").unwrap().0, Duration::from_secs(120));
        assert!(Dur::parse("fast").is_err());
    }
}
