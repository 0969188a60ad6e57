//! `roomrig check`: a conformance suite per dialect. Each case is a small built-in scenario
//! (data, in `src/check/cases/`) tied to a section of the dialect's spec; it runs in isolation
//! (its own users, and against the embedded server its own server) and passes when the oracle
//! finds no MUST violation (and, with `--strict`, no SHOULD one).

use std::sync::LazyLock;
use std::time::Duration;

use serde::Serialize;

use crate::driver::{self, RunError, RunOptions};
use crate::oracle::rules::{rule_id, Check, Level};
use crate::protocol::{EioSetting, EioVersion};
use crate::scenario::Scenario;
use reference_server::fixtures::Fixtures;

pub mod plan;
pub mod watch;

/// One case of a suite.
#[derive(Clone)]
pub struct Case {
    /// Stable id: `<dialect>/<event>/<what>`, for a generated robustness case
    /// `<dialect>/robustness/<family>/<input>`.
    pub id: &'static str,
    pub level: Level,
    pub description: &'static str,
    /// Where the rule comes from.
    pub section: &'static str,
    scenario: &'static str,
    /// The one hostile request of a robustness case, named when the server dies after it.
    pub trigger: Option<&'static str>,
}

const fn case(
    id: &'static str,
    level: Level,
    section: &'static str,
    description: &'static str,
    scenario: &'static str,
) -> Case {
    Case {
        id,
        level,
        description,
        section,
        scenario,
        trigger: None,
    }
}

/// A robustness case that sends one hostile request, `trigger`.
const fn hostile(
    id: &'static str,
    description: &'static str,
    trigger: &'static str,
    scenario: &'static str,
) -> Case {
    Case {
        id,
        level: Level::Must,
        description,
        section: "common rule: keep serving every other client",
        scenario,
        trigger: Some(trigger),
    }
}

/// The cases written out one by one.
static SINGLE: &[Case] = &[
    case(
        "dorm/join_room/last-data-to-joiner",
        Level::Must,
        "seed 000, join_room",
        "join_room is answered with last_data naming the joiner, its room and its roommates",
        include_str!("cases/dorm-join.yaml"),
    ),
    case(
        "dorm/message/broadcast-includes-sender",
        Level::Must,
        "seed 000, message",
        "every member, the sender included, gets each message once, in order, with user_id and time",
        include_str!("cases/dorm-message.yaml"),
    ),
    case(
        "dorm/action/broadcast-and-cancel",
        Level::Must,
        "seed 000, action",
        "a valid action code and null (cancel) are broadcast to every member",
        include_str!("cases/dorm-action.yaml"),
    ),
    case(
        "dorm/errors/not-in-room",
        Level::Must,
        "reference-server decision: seed 000 names no condition for {error}; errors on their own event are seed 000's (MUST)",
        "message, action and leave_room outside the room should get {error} on their own event only (a relay to the user's own room is allowed, to another room a non-member leak)",
        include_str!("cases/dorm-not-in-room.yaml"),
    ),
    case(
        "dorm/errors/invalid-action",
        Level::Must,
        "seed 000 §用户活动信息 (action codes); the refusal is a reference-server decision, its event seed 000's (MUST)",
        "an action other than \"00\"..\"09\" or null gets {error} on `action`; valid ones still go out",
        include_str!("cases/dorm-invalid-action.yaml"),
    ),
    case(
        "dorm/errors/bad-token",
        Level::Must,
        "seed 000, {token} on every event; the refusal is a reference-server decision, its event seed 000's (MUST)",
        "a missing, mistyped, unknown, empty, prototype-named or huge token gets {error} on its event",
        include_str!("cases/dorm-bad-token.yaml"),
    ),
    case(
        "dorm/errors/bad-payload",
        Level::Must,
        "seed 000, payloads; the refusal is a reference-server decision, its event seed 000's (MUST)",
        "a payload that is not the documented object, or a message that is not a string, gets {error}",
        include_str!("cases/dorm-bad-payload.yaml"),
    ),
    case(
        "dorm/connection/dead-heartbeat-closed",
        Level::Must,
        "common rule: Engine.IO heartbeat",
        "a client that stops its heartbeat is closed within pingInterval + pingTimeout + grace",
        include_str!("cases/dorm-heartbeat.yaml"),
    ),
    case(
        "lobby/login/announced",
        Level::Must,
        "seed 004 §Login",
        "login answers logedin and tells every other socket otherLogedin",
        include_str!("cases/lobby-login.yaml"),
    ),
    case(
        "lobby/login/name-free-after-disconnect",
        Level::Must,
        "seed 004, Login (duplicate username) and Logout",
        "after its user disconnects, a name logs in again on a new connection",
        include_str!("cases/lobby-name-free.yaml"),
    ),
    case(
        "lobby/login/reconnect-right-after-login",
        Level::Must,
        "seed 004, Login and Logout",
        "a login raced by its own disconnect leaves no ghost: the name logs in again",
        include_str!("cases/lobby-reconnect-after-login.yaml"),
    ),
    case(
        "lobby/login/second-login-refused",
        Level::Should,
        "reference-server decision: a socket logs in once (seed 004 says nothing)",
        "a second login on a logged-in socket is refused on err",
        include_str!("cases/lobby-second-login.yaml"),
    ),
    case(
        "lobby/room/join-message-leave",
        Level::Must,
        "seed 004, JoinOrCreateRoom, SendRoomMessage, SendPrivateMessage, SendPublicMessage, LeaveRoom",
        "room joins, room, private and public messages and leaves reach exactly who they must",
        include_str!("cases/lobby-room.yaml"),
    ),
    case(
        "lobby/err/error-strings",
        Level::Must,
        "seed 004 §GotError (MUST); `not logged in` is a reference-server decision (SHOULD)",
        "not logged in, already in room, no such room or not in it, no such user, on err",
        include_str!("cases/lobby-errors.yaml"),
    ),
    case(
        "lobby/err/room-full-and-duplicate-username",
        Level::Must,
        "seed 004, GotError",
        "a room at its maxUser answers `room full`, a taken name `duplicate username`, on err",
        include_str!("cases/lobby-full-and-taken.yaml"),
    ),
    case(
        "lobby/disconnect/announced",
        Level::Must,
        "seed 004, Logout / LeaveRoom on disconnect",
        "a vanished user's rooms get otherLeftRoom, every other socket otherLogedout",
        include_str!("cases/lobby-departure.yaml"),
    ),
    case(
        "lobby/disconnect/room-reopened",
        Level::Should,
        "seed 004 §LeaveRoom (a disconnect leaves every room); reference-server decision: an empty room is removed",
        "a room whose last member disconnected is joined again, with its new creator's maxUser",
        include_str!("cases/lobby-room-reopened.yaml"),
    ),
    case(
        "lobby/connection/dead-heartbeat-closed",
        Level::Must,
        "common rule: Engine.IO heartbeat; seed 004 §Logout (a lost connection is a logout)",
        "a member whose heartbeat stops is closed in time, and its room and everyone are told",
        include_str!("cases/lobby-heartbeat.yaml"),
    ),
    hostile(
        "lobby/robustness/unknown-prototype-rooms",
        "a message to or a leave of a room named __proto__, constructor, toString or hasOwnProperty that nobody created is `no such room or not in it`",
        "roomMessage and leaveRoom naming the rooms __proto__, constructor, toString, hasOwnProperty",
        include_str!("cases/lobby-hostile-unknown-rooms.yaml"),
    ),
    hostile(
        "lobby/robustness/private-to-prototype-names",
        "a private message to __proto__, constructor or toString (nobody's name) is `no such user`",
        "privateMessage to the users __proto__, constructor, toString",
        include_str!("cases/lobby-hostile-private.yaml"),
    ),
    hostile(
        "lobby/robustness/join-room-__proto__",
        "joining and talking in a room named __proto__ leaks nothing, and everyone else is served",
        "joinRoom(\"__proto__\", 2)",
        include_str!("cases/lobby-hostile-join-__proto__.yaml"),
    ),
    hostile(
        "lobby/robustness/join-room-constructor",
        "joining and talking in a room named constructor leaks nothing, and everyone else is served",
        "joinRoom(\"constructor\", 2)",
        include_str!("cases/lobby-hostile-join-constructor.yaml"),
    ),
    hostile(
        "lobby/robustness/join-room-toString",
        "joining and talking in a room named toString leaks nothing, and everyone else is served",
        "joinRoom(\"toString\", 2)",
        include_str!("cases/lobby-hostile-join-toString.yaml"),
    ),
    hostile(
        "lobby/robustness/join-room-socket-id",
        "another connection's socket id as a room name: that connection receives nothing of it",
        "joinRoom(<client 1's socket id>, 2)",
        include_str!("cases/lobby-hostile-join-socket-id.yaml"),
    ),
];

/// One hostile input of a robustness family: the last segment of its case id, the request as
/// the evidence names it when the server dies after it, and the scenario steps that send it.
struct Input {
    name: &'static str,
    trigger: &'static str,
    steps: &'static [&'static str],
}

/// Robustness cases generated from a template scenario, one case per hostile input, so that a
/// server that dies on one input is still judged on the others and the case id names it.
struct Family {
    id: &'static str,
    /// `{input}` stands for the input's trigger.
    description: &'static str,
    /// The line `- HOSTILE` is replaced by the input's steps.
    template: &'static str,
    inputs: &'static [Input],
}

const fn input(name: &'static str, trigger: &'static str, steps: &'static [&'static str]) -> Input {
    Input {
        name,
        trigger,
        steps,
    }
}

impl Family {
    fn cases(&self) -> impl Iterator<Item = Case> + '_ {
        let (_, indent) = self
            .template
            .split_once("- HOSTILE\n")
            .and_then(|(head, _)| head.rsplit_once('\n'))
            .unwrap_or_else(|| panic!("template of {} has no `- HOSTILE` line", self.id));
        let placeholder = format!("{indent}- HOSTILE\n");
        self.inputs.iter().map(move |i| {
            let steps: String = i
                .steps
                .iter()
                .map(|step| format!("{indent}- {step}\n"))
                .collect();
            // Generated once per process (CASES is built once), so leaking is bounded.
            let leak = |s: String| -> &'static str { s.leak() };
            Case {
                id: leak(format!("{}/{}", self.id, i.name)),
                level: Level::Must,
                description: leak(self.description.replace("{input}", i.trigger)),
                section: "common rule: keep serving every other client",
                scenario: leak(self.template.replace(&placeholder, &steps)),
                trigger: Some(i.trigger),
            }
        })
    }
}

/// Frames that are not valid Socket.IO: `event` is an event of the dialect, then a `42` frame
/// with an object payload, an unterminated request (as shown, as sent) and a 2 MB event frame.
macro_rules! malformed_frames {
    ($event:literal, $object:literal, $unterminated_shown:literal, $unterminated:literal, $huge:literal) => {
        &[
            input(
                "event-without-payload",
                "the frame `42`",
                &[r#"send: { frame: "42", lenient: true }"#],
            ),
            input(
                "unterminated-array",
                "the frame `42[`",
                &[r#"send: { frame: "42[", lenient: true }"#],
            ),
            input(
                "unterminated-event",
                concat!("the frame `42[\"", $event, "\"` (unterminated)"),
                &[concat!(
                    r#"send: { frame: "42[\""#,
                    $event,
                    r#"\"", lenient: true }"#
                )],
            ),
            input(
                "object-not-array",
                "a `42` frame whose payload is an object",
                &[concat!(
                    r#"send: { frame: ""#,
                    $object,
                    r#"", lenient: true }"#
                )],
            ),
            input(
                "empty-array",
                "the frame `42[]`",
                &[r#"send: { frame: "42[]", lenient: true }"#],
            ),
            input(
                "null-event-name",
                "the frame `42[null]`",
                &[r#"send: { frame: "42[null]", lenient: true }"#],
            ),
            input(
                "number-event-name",
                "the frame `42[1,2,3]`",
                &[r#"send: { frame: "42[1,2,3]", lenient: true }"#],
            ),
            input(
                "bare-message-packet",
                "the frame `4`",
                &[r#"send: { frame: "4", lenient: true }"#],
            ),
            input(
                "unknown-packet-type",
                "the frame `49[]`",
                &[r#"send: { frame: "49[]", lenient: true }"#],
            ),
            input(
                "unknown-namespace",
                "an event to the namespace /no-such-namespace",
                &[concat!(
                    r#"send: { frame: "42/no-such-namespace,[\""#,
                    $event,
                    r#"\",{}]", lenient: true }"#
                )],
            ),
            input(
                "binary-without-attachment",
                "a binary event (`451-`) whose attachment never comes",
                &[concat!(
                    r#"send: { frame: "451-[\""#,
                    $event,
                    r#"\",{\"_placeholder\":true,\"num\":0}]", lenient: true }"#
                )],
            ),
            input(
                "unknown-engine-packet",
                "the Engine.IO frame `9`",
                &[r#"send: { frame: "9", lenient: true }"#],
            ),
            input(
                "empty-frame",
                "an empty frame",
                &[r#"send: { frame: "", lenient: true }"#],
            ),
            input(
                "unterminated-request",
                concat!("the unterminated frame `", $unterminated_shown, "`"),
                &[concat!(
                    r#"send: { frame: ""#,
                    $unterminated,
                    r#"", lenient: true }"#
                )],
            ),
            input(
                "over-1mb",
                "a 2 MB event frame",
                &[concat!(
                    r#"send: { frame: ""#,
                    $huge,
                    r#"", lenient: true }"#
                )],
            ),
        ]
    };
}

static FAMILIES: &[Family] = &[
    Family {
        id: "dorm/robustness/hostile-requests",
        description: "after {input}, everyone else (and a later wave) is served",
        template: include_str!("cases/dorm-hostile-input.yaml"),
        inputs: &[
            input(
                "join-room-no-arguments",
                "join_room with no arguments",
                &[r#"send: { event: join_room, args: [], lenient: true }"#],
            ),
            input(
                "join-room-extra-arguments",
                "join_room({token}, \"extra\", 1, null)",
                &[
                    r#"send: { event: join_room, args: [ { token: "{token}" }, "extra", 1, null ], lenient: true }"#,
                ],
            ),
            input(
                "message-nested-arrays",
                "message with a message nested 6 arrays deep",
                &[
                    r#"send: { event: message, args: [ { token: "{token}", message: [ [ [ [ [ [ "deep" ] ] ] ] ] ] } ], lenient: true }"#,
                ],
            ),
            input(
                "prototype-event-__proto__",
                "the event __proto__({token})",
                &[r#"send: { event: __proto__, args: [ { token: "{token}" } ], lenient: true }"#],
            ),
            input(
                "prototype-event-constructor",
                "the event constructor({token})",
                &[r#"send: { event: constructor, args: [ { token: "{token}" } ], lenient: true }"#],
            ),
            input(
                "prototype-event-toString",
                "the event toString()",
                &[r#"send: { event: toString, args: [], lenient: true }"#],
            ),
            input(
                "prototype-event-hasOwnProperty",
                "the event hasOwnProperty(\"join_room\")",
                &[r#"send: { event: hasOwnProperty, args: [ "join_room" ], lenient: true }"#],
            ),
            input(
                "message-over-1mb",
                "a 2 MB message",
                &[
                    r#"send: { event: message, args: [ { token: "{token}", message: "{pad:2000000}" } ], lenient: true }"#,
                ],
            ),
        ],
    },
    Family {
        id: "dorm/robustness/malformed-frames",
        description: "after {input}, everyone else (and a later wave) is served",
        template: include_str!("cases/dorm-hostile-input.yaml"),
        inputs: malformed_frames!(
            "message",
            r#"42{\"token\":\"{token}\"}"#,
            "42[\"join_room\",{…}",
            r#"42[\"join_room\",{\"token\":\"{token}\"}"#,
            r#"42[\"message\",{\"token\":\"{token}\",\"message\":\"{pad:2000000}\"}]"#
        ),
    },
    Family {
        id: "lobby/robustness/hostile-types",
        description: "after {input}, later clients are served",
        template: include_str!("cases/lobby-hostile-type.yaml"),
        inputs: &[
            input(
                "login-no-arguments",
                "login with no arguments",
                &[r#"send: { event: login, args: [], lenient: true }"#],
            ),
            input(
                "login-number",
                "login(5)",
                &[r#"send: { event: login, args: [ 5 ], lenient: true }"#],
            ),
            input(
                "login-object",
                "login({name})",
                &[r#"send: { event: login, args: [ { name: "{me}" } ], lenient: true }"#],
            ),
            input(
                "login-null",
                "login(null)",
                &[r#"send: { event: login, args: [ null ], lenient: true }"#],
            ),
            input(
                "login-array",
                "login([name])",
                &[r#"send: { event: login, args: [ [ "{me}" ] ], lenient: true }"#],
            ),
            input(
                "login-over-1mb",
                "login(<a 2 MB string>)",
                &[r#"send: { event: login, args: [ "{pad:2000000}" ], lenient: true }"#],
            ),
            input(
                "join-room-no-arguments",
                "joinRoom with no arguments",
                &[
                    "login",
                    r#"send: { event: joinRoom, args: [], lenient: true }"#,
                ],
            ),
            input(
                "join-room-number-name",
                "joinRoom(5, \"x\")",
                &[
                    "login",
                    r#"send: { event: joinRoom, args: [ 5, "x" ], lenient: true }"#,
                ],
            ),
            input(
                "join-room-object-name",
                "joinRoom({name: \"r\"}, -1)",
                &[
                    "login",
                    r#"send: { event: joinRoom, args: [ { name: "r" }, -1 ], lenient: true }"#,
                ],
            ),
            input(
                "join-room-string-capacity",
                "joinRoom(name, <a 100-character string>)",
                &[
                    "login",
                    r#"send: { event: joinRoom, args: [ "t-{me}", "{pad:100}" ], lenient: true }"#,
                ],
            ),
            input(
                "room-message-wrong-types",
                "roomMessage({}, [])",
                &[
                    "login",
                    r#"send: { event: roomMessage, args: [ {}, [] ], lenient: true }"#,
                ],
            ),
            input(
                "room-message-over-1mb",
                "roomMessage(its room, <a 2 MB string>)",
                &[
                    "login",
                    r#"joinRoom: { room: "t-{me}", lenient: true }"#,
                    r#"send: { event: roomMessage, args: [ "t-{me}", "{pad:2000000}" ], lenient: true }"#,
                ],
            ),
            input(
                "private-message-nulls",
                "privateMessage(null, null)",
                &[
                    "login",
                    r#"send: { event: privateMessage, args: [ null, null ], lenient: true }"#,
                ],
            ),
            input(
                "public-message-object",
                "publicMessage({content: 1})",
                &[
                    "login",
                    r#"send: { event: publicMessage, args: [ { content: 1 } ], lenient: true }"#,
                ],
            ),
            input(
                "leave-room-number",
                "leaveRoom(42)",
                &[
                    "login",
                    r#"send: { event: leaveRoom, args: [ 42 ], lenient: true }"#,
                ],
            ),
            input(
                "prototype-event-__proto__",
                "the event __proto__(\"x\")",
                &[
                    "login",
                    r#"send: { event: __proto__, args: [ "x" ], lenient: true }"#,
                ],
            ),
        ],
    },
    Family {
        id: "lobby/robustness/malformed-frames",
        description: "after {input}, everyone else is served",
        template: include_str!("cases/lobby-malformed-frame.yaml"),
        inputs: malformed_frames!(
            "login",
            r#"42{\"login\":1}"#,
            "42[\"login\",\"…\"",
            r#"42[\"login\",\"{me}\""#,
            r#"42[\"publicMessage\",\"{pad:2000000}\"]"#
        ),
    },
];

/// The built-in suites: the cases written out, then per dialect its generated robustness
/// cases.
pub static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    let mut all = Vec::new();
    for dialect in ["dorm", "lobby"] {
        let of = |id: &str| id.split('/').next() == Some(dialect);
        all.extend(SINGLE.iter().filter(|c| of(c.id)).cloned());
        for family in FAMILIES.iter().filter(|f| of(f.id)) {
            all.extend(family.cases());
        }
    }
    all
});

/// The cases of a dialect, in suite order.
pub fn suite(dialect: &str) -> Vec<&'static Case> {
    CASES
        .iter()
        .filter(|c| c.id.split('/').next() == Some(dialect))
        .collect()
}

/// Whether `--case id` selects `case`: its own id, or the id of its family (the robustness
/// cases generated one per hostile input).
pub fn selects(id: &str, case: &Case) -> bool {
    case.id
        .strip_prefix(id)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Only SHOULD violations (a failure with `--strict`).
    Warn,
    Skipped,
}

/// One case's verdict with its first evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: &'static str,
    pub level: Level,
    pub description: &'static str,
    pub section: &'static str,
    pub status: Status,
    pub seconds: f64,
    /// Rule ids violated, with counts.
    pub violations: Vec<(String, u64)>,
    /// The first violation of the most severe level in full: expected vs received and the
    /// client's transcript around it.
    pub evidence: Option<crate::oracle::Violation>,
    /// The most severe level among the violations (SHOULD for a `warn`).
    pub violation_level: Option<Level>,
    /// Every rule violated (INFO included), with its level, source and examples.
    pub rules: std::collections::BTreeMap<String, crate::oracle::RuleTally>,
    /// Why the case was skipped.
    pub reason: Option<String>,
}

/// What `check` needs besides the case list.
pub struct CheckOptions {
    pub target: Option<String>,
    /// `auto`: detected once against the target, before the first case.
    pub eio: EioSetting,
    pub users: Option<Fixtures>,
    pub strict: bool,
    /// Caps the heartbeat window a server advertises (a server that never closes a dead
    /// client would otherwise make the case wait as long as it claims).
    pub heartbeat_deadline: Duration,
}

/// The users a case's own clients take (its scenario's generated count).
pub fn users_of(case: &Case) -> usize {
    match parse(case).users {
        crate::scenario::UsersSpec::Generate { count, .. } => count as usize,
        crate::scenario::UsersSpec::File(_) => 0,
    }
}

fn parse(case: &Case) -> Scenario {
    Scenario::parse(case.scenario, case.id)
        .unwrap_or_else(|e| panic!("built-in case {} does not parse: {e}", case.id))
}

/// The users file the cases share: the given one, or against a target the users
/// `roomrig serve` generates by default. `None`: each case generates its own.
fn shared_users(opts: &CheckOptions) -> Option<Fixtures> {
    match (&opts.users, &opts.target) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(_)) => Some(Fixtures::generate(
            reference_server::DEFAULT_GENERATED_USERS,
            4,
        )),
        (None, None) => None,
    }
}

/// How many users the cases take from the shared users file, bystanders and (against a
/// target) the watch included; `None` when each case generates its own.
pub fn users_needed(cases: &[&'static Case], opts: &CheckOptions) -> Option<usize> {
    let counts: Vec<usize> = cases.iter().map(|c| users_of(c)).collect();
    shared_users(opts).map(|f| plan::needed(&counts, &f, opts.target.is_some()))
}

/// Runs the cases one after the other. A users file too small for the cases, or an
/// unreachable target, ends the suite before the first case (`Err`); a target that stops
/// answering later (a crash or a hang) fails the case that caused it as a MUST failure and
/// skips the rest, so the report still says what ran.
pub async fn run(
    cases: &[&'static Case],
    opts: &CheckOptions,
) -> Result<(Vec<CaseResult>, EioSetting), RunError> {
    let scenarios: Vec<Scenario> = cases.iter().map(|c| parse(c)).collect();
    let counts: Vec<usize> = cases.iter().map(|c| users_of(c)).collect();
    let shared = shared_users(opts);
    let plan = match &shared {
        Some(f) => Some(
            plan::plan(&counts, f, opts.target.is_some()).map_err(|needed| {
                RunError::Setup(format!(
                    "these {} cases need {needed} users (their own, one bystander in each of \
                     {} neighbouring rooms per case{}), but the users file has {}",
                    cases.len(),
                    plan::BYSTANDER_ROOMS,
                    if opts.target.is_some() {
                        ", and the first and last rooms for the watch"
                    } else {
                        ""
                    },
                    f.users.len()
                ))
            })?,
        ),
        None => None,
    };
    // The target's generation, once: every case then runs with it.
    let eio = match &opts.target {
        Some(target) => {
            let (eio, detected) =
                driver::resolve_eio(target, &Default::default(), opts.eio).await?;
            if let (EioSetting::Auto, Some(d)) = (opts.eio, detected) {
                println!("detected Engine.IO {eio} at {target}: {}", d.signal);
            }
            EioSetting::Fixed(eio)
        }
        None => opts.eio,
    };
    let dialect = cases
        .first()
        .map_or("", |c| c.id.split('/').next().unwrap_or(""));
    // The generation the suite's own connections (probe, watch, bystanders) speak.
    let version = match eio {
        EioSetting::Fixed(v) => v,
        EioSetting::Auto => EioVersion::V4,
    };
    let config = crate::client::ClientConfig {
        eio: version,
        ..Default::default()
    };
    // Against a target: listeners that stay for the whole suite, in rooms no case uses.
    let watch = match (&opts.target, &shared, &plan) {
        (Some(target), Some(f), Some(p)) => {
            driver::preflight(target, &config).await?;
            Some(
                watch::Listeners::start(dialect, target, version, f, &p.watch, "watch", true).await,
            )
        }
        _ => None,
    };
    let mut results: Vec<CaseResult> = Vec::new();
    let mut gone: Option<&'static str> = None;
    for (k, (case, mut scenario)) in cases.iter().zip(scenarios).enumerate() {
        // Stopped (Ctrl-C, SIGTERM, SIGHUP): what ran is reported, the rest is skipped.
        if crate::signals::requested() {
            results.push(CaseResult::skipped(case, "interrupted".to_string()));
            continue;
        }
        if let Some(culprit) = gone {
            results.push(CaseResult::skipped(
                case,
                format!("the target stopped answering during {culprit}"),
            ));
            continue;
        }
        let started = std::time::Instant::now();
        scenario.eio = eio;
        scenario.name = case.id.replace('/', "_");
        if opts.target.is_some() {
            scenario.heartbeat_deadline = Some(crate::scenario::Dur(opts.heartbeat_deadline));
        }
        // The case's users and bystanders: from the shared file, or generated for this case
        // alone (its own users, then one room per bystander).
        let (fixtures, users_skip, bystanders) = match (&shared, &plan) {
            (Some(f), Some(p)) => (f.clone(), p.cases[k].skip, p.cases[k].bystanders.clone()),
            _ => {
                let size = match scenario.users {
                    crate::scenario::UsersSpec::Generate { room_size, .. } => room_size,
                    crate::scenario::UsersSpec::File(_) => 4,
                };
                let extra = plan::BYSTANDER_ROOMS as u64 * u64::from(size);
                let f = Fixtures::generate(counts[k] as u64 + extra, size);
                let p = plan::plan(&counts[k..=k], &f, false).expect("room for the bystanders");
                (f, 0, p.cases[0].bystanders.clone())
            }
        };
        // Against the embedded server each case gets its own, started here so that the
        // bystanders can join it before the case's clients arrive.
        let embedded = match &opts.target {
            Some(_) => None,
            // A fast heartbeat, so that dead clients are closed quickly.
            None => Some(
                driver::start_reference_server(
                    dialect,
                    &fixtures,
                    (Duration::from_secs(1), Duration::from_secs(1)),
                    &[],
                )
                .await?,
            ),
        };
        let target = opts
            .target
            .clone()
            .unwrap_or_else(|| embedded.as_ref().expect("embedded").url());
        let neighbours = watch::Listeners::start(
            dialect,
            &target,
            version,
            &fixtures,
            &bystanders,
            "bystander",
            false,
        )
        .await;
        let outcome = driver::run(
            scenario,
            RunOptions {
                target: Some(target.clone()),
                progress: false,
                max_lateness: Duration::from_millis(500),
                fixtures: Some(fixtures.clone()),
                users_skip,
                ..RunOptions::default()
            },
        )
        .await;
        let mut leaks = neighbours.stop().await;
        let mut result = match outcome {
            Ok(outcome) => CaseResult::judged(case, &outcome, opts.strict),
            // Reachable before, unreachable now: an earlier case took the server down.
            Err(RunError::Unreachable { reason, .. }) if !results.is_empty() => {
                gone = Some(case.id);
                CaseResult::unresponsive(case, "the case's first connection", reason)
            }
            Err(e) => return Err(e),
        };
        // After each case against a target: is the server still there?
        if let (Some(target), None) = (&opts.target, gone) {
            if let Err(RunError::Unreachable { reason, .. }) =
                driver::preflight(target, &config).await
            {
                gone = Some(case.id);
                let who = fixtures
                    .users
                    .get(users_skip)
                    .map_or("(probe)", |u| u.username.as_str());
                result = CaseResult::unresponsive_after(case, who, reason).with_violations(result);
            }
        }
        if let Some(watch) = &watch {
            leaks.extend(watch.take());
        }
        result = result.with_leaks(leaks);
        if let Some(server) = embedded {
            server.shutdown().await;
        }
        result.seconds = started.elapsed().as_secs_f64();
        results.push(result);
    }
    if let Some(watch) = watch {
        // A leak still on its way after the last case belongs to it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let late = watch.stop().await;
        if let Some(last) = results.pop() {
            results.push(last.with_leaks(late));
        }
    }
    Ok((results, eio))
}

impl CaseResult {
    fn new(case: &'static Case, status: Status) -> CaseResult {
        CaseResult {
            id: case.id,
            level: case.level,
            description: case.description,
            section: case.section,
            status,
            seconds: 0.0,
            violations: Vec::new(),
            evidence: None,
            violation_level: None,
            rules: Default::default(),
            reason: None,
        }
    }

    fn skipped(case: &'static Case, reason: String) -> CaseResult {
        CaseResult {
            reason: Some(reason),
            ..CaseResult::new(case, Status::Skipped)
        }
    }

    /// The oracle's verdict on a case's run: the worst level among its violations decides.
    fn judged(case: &'static Case, outcome: &driver::RunResult, strict: bool) -> CaseResult {
        let mut violations: Vec<(String, u64)> = Vec::new();
        let mut worst = None;
        let mut evidence = None;
        for (rule, tally) in &outcome.violations {
            // A SHOULD case holds a server to what only our reference server chose: whatever
            // rule its steps break, it warns (leaks and crashes still fail, see below). A case
            // that also checks a seed's MUST (an error's event) is a MUST case whose SHOULD
            // parts are capped per rule by the catalogue, so that the MUST part can fail.
            let level = tally.level.unwrap_or(Level::Info).max(case.level);
            if level == Level::Info {
                continue;
            }
            violations.push((rule.clone(), tally.count));
            if worst.is_none_or(|w| level < w) {
                worst = Some(level);
                evidence = tally.examples.first().cloned();
            }
        }
        let status = match worst {
            None => Status::Pass,
            Some(Level::Must) => Status::Fail,
            Some(_) if strict => Status::Fail,
            Some(_) => Status::Warn,
        };
        CaseResult {
            violations,
            evidence,
            violation_level: worst,
            rules: outcome.violations.clone(),
            ..CaseResult::new(case, status)
        }
    }

    /// The server crashed or hangs: a MUST failure whatever the case's own level.
    fn unresponsive(case: &'static Case, what: &str, reason: String) -> CaseResult {
        Self::unresponsive_with(
            case,
            "(probe)".into(),
            format!("{what} is served (the server answered before this case)"),
            reason,
        )
    }

    /// The server stopped answering during this case: the evidence names the case's
    /// request that preceded it (a hostile case sends one hostile input, from its client 0).
    fn unresponsive_after(case: &'static Case, user: &str, reason: String) -> CaseResult {
        let (user, expected) = match case.trigger {
            Some(request) => (
                format!("{user} (client 0, which sent {request})"),
                format!("the server keeps serving everyone after {request}"),
            ),
            None => (
                user.to_string(),
                "the server keeps serving everyone after this case's requests".to_string(),
            ),
        };
        Self::unresponsive_with(
            case,
            user,
            expected,
            format!("a new connection after the case: {reason}"),
        )
    }

    fn unresponsive_with(
        case: &'static Case,
        user: String,
        expected: String,
        received: String,
    ) -> CaseResult {
        let rule = rule_id(
            case.id.split('/').next().unwrap_or(""),
            "server",
            Check::Unresponsive,
        );
        CaseResult {
            violations: vec![(rule.clone(), 1)],
            violation_level: Some(Level::Must),
            evidence: Some(crate::oracle::Violation {
                rule,
                level: Level::Must,
                source: crate::oracle::rules::rate(&[], "server", Check::Unresponsive)
                    .source
                    .to_string(),
                client: 0,
                user,
                at_ms: 0.0,
                expected,
                received,
                transcript: Vec::new(),
            }),
            ..CaseResult::new(case, Status::Fail)
        }
    }

    /// Adds what the bystanders and the watch saw during the case: leaks into rooms the
    /// case does not use, each a MUST violation.
    fn with_leaks(mut self, leaks: Vec<crate::oracle::Violation>) -> CaseResult {
        if leaks.is_empty() {
            return self;
        }
        for leak in &leaks {
            match self
                .violations
                .iter_mut()
                .find(|(rule, _)| *rule == leak.rule)
            {
                Some((_, n)) => *n += 1,
                None => self.violations.push((leak.rule.clone(), 1)),
            }
        }
        let stronger = self
            .evidence
            .as_ref()
            .is_some_and(|e| e.level == Level::Must);
        if !stronger {
            self.evidence = leaks.into_iter().next();
        }
        if self.status != Status::Skipped {
            self.status = Status::Fail;
        }
        self
    }

    /// Keeps the rules the case's own run violated after the first one.
    fn with_violations(mut self, earlier: CaseResult) -> CaseResult {
        self.violations.extend(earlier.violations);
        for (rule, tally) in earlier.rules {
            self.rules.entry(rule).or_insert(tally);
        }
        self
    }

    /// The level a row shows: the violations' when they decided it (a `warn` is SHOULD),
    /// else the case's own.
    pub fn shown_level(&self) -> Level {
        match self.status {
            Status::Warn | Status::Fail => self.violation_level.unwrap_or(self.level),
            _ => self.level,
        }
    }
}

/// The results as JUnit test cases.
pub fn junit_cases(results: &[CaseResult]) -> Vec<crate::junit::TestCase> {
    use crate::junit::{Outcome, TestCase};
    results
        .iter()
        .map(|r| {
            let mut body = format!("{} ({}): {}\n", r.id, r.shown_level(), r.description);
            // Every rule's examples, not only the first rule's.
            for (rule, t) in &r.rules {
                let level = t.level.map_or("?".into(), |l| l.to_string());
                body.push_str(&format!("{level} {rule} x{} [{}]\n", t.count, t.source));
                for e in &t.examples {
                    body.push_str(&format!(
                        "  client {} ({}): expected {}; received {}\n",
                        e.client, e.user, e.expected, e.received
                    ));
                    for line in &e.transcript {
                        body.push_str(&format!("    {line}\n"));
                    }
                }
            }
            if r.rules.is_empty() {
                if let Some(e) = &r.evidence {
                    body.push_str(&format!(
                        "client {} ({}): expected {}; received {}\n",
                        e.client, e.user, e.expected, e.received
                    ));
                }
            }
            let rules: Vec<String> = r
                .violations
                .iter()
                .map(|(rule, n)| format!("{rule} x{n}"))
                .collect();
            let outcome = match r.status {
                Status::Pass => Outcome::Pass,
                Status::Fail => Outcome::Fail {
                    kind: r.shown_level().to_string(),
                    message: rules.join(", "),
                    body,
                },
                Status::Warn => Outcome::Warn { body },
                Status::Skipped => Outcome::Skip {
                    reason: r.reason.clone().unwrap_or_else(|| "skipped".into()),
                },
            };
            TestCase {
                name: r.id.to_string(),
                seconds: r.seconds,
                outcome,
            }
        })
        .collect()
}

/// The lines of a transcript around its violation marker (`!!`): `before` lines before it,
/// the marker, `after` lines after it; without a marker, the last `before` lines.
pub fn around(transcript: &[String], before: usize, after: usize) -> &[String] {
    let mark = transcript
        .iter()
        .position(|l| l.contains(" !! "))
        .unwrap_or(transcript.len());
    let from = mark.saturating_sub(before);
    let to = (mark + 1 + after).min(transcript.len());
    &transcript[from..to]
}

/// The console table.
pub fn table(results: &[CaseResult]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for r in results {
        let status = match r.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Warn => "warn",
            Status::Skipped => "skip",
        };
        let _ = writeln!(
            out,
            "{status:<5} {:<6} {:<64} {:>6.1}s  {}",
            r.shown_level().to_string(),
            r.id,
            r.seconds,
            r.description
        );
        for (rule, n) in &r.violations {
            let level = r
                .rules
                .get(rule)
                .and_then(|t| t.level)
                .map_or(String::new(), |l| format!("{l} "));
            let _ = writeln!(out, "        {level}{rule} x{n}");
        }
        if let Some(e) = &r.evidence {
            let _ = writeln!(
                out,
                "        client {} ({}): expected {}; received {}",
                e.client, e.user, e.expected, e.received
            );
            if !e.source.is_empty() {
                let _ = writeln!(out, "        rule source: {}", e.source);
            }
            for line in around(&e.transcript, 5, 3) {
                let _ = writeln!(out, "          {line}");
            }
        }
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "        skipped: {reason}");
        }
    }
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let _ = writeln!(
        out,
        "\n{} cases: {} passed, {} failed, {} warned, {} skipped",
        results.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Skipped)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every generated case parses, sends its own input and nothing of the placeholder, names
    /// its input as the trigger, and has an id no other case has.
    #[test]
    fn families_give_one_parsed_case_per_input() {
        let mut ids = std::collections::BTreeSet::new();
        for case in CASES.iter() {
            assert!(ids.insert(case.id), "duplicate id {}", case.id);
            assert!(!case.scenario.contains("- HOSTILE\n"), "{}", case.id);
            parse(case);
        }
        for family in FAMILIES {
            let cases: Vec<&Case> = CASES.iter().filter(|c| selects(family.id, c)).collect();
            assert_eq!(cases.len(), family.inputs.len(), "{}", family.id);
            for (case, input) in cases.iter().zip(family.inputs) {
                assert_eq!(case.id, format!("{}/{}", family.id, input.name));
                assert_eq!(case.trigger, Some(input.trigger));
                for step in input.steps {
                    assert!(case.scenario.contains(step), "{}: {step}", case.id);
                }
            }
        }
        assert!(!selects(
            "lobby/robustness/malformed",
            &CASES[CASES.len() - 1]
        ));
    }
}
