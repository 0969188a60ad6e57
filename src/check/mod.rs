//! `roomrig check`: a conformance suite per dialect. Each case is a small built-in scenario
//! (data, in `src/check/cases/`) tied to a section of the dialect's spec; it runs in isolation
//! (its own users, and against the embedded server its own server) and passes when the oracle
//! finds no MUST violation (and, with `--strict`, no SHOULD one).

use std::time::Duration;

use serde::Serialize;

use crate::driver::{self, RunError, RunOptions};
use crate::oracle::rules::{rule_id, Check, Level};
use crate::protocol::{EioSetting, EioVersion};
use crate::scenario::Scenario;
use reference_server::fixtures::Fixtures;

/// One case of a suite.
pub struct Case {
    /// Stable id: `<dialect>/<event>/<what>`.
    pub id: &'static str,
    pub level: Level,
    pub description: &'static str,
    /// Where the rule comes from.
    pub section: &'static str,
    scenario: &'static str,
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
    }
}

/// The built-in suites.
pub static CASES: &[Case] = &[
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
        "seed 000, errors; protocols.md decisions",
        "message, action and leave_room outside the room get {error} on their own event only",
        include_str!("cases/dorm-not-in-room.yaml"),
    ),
    case(
        "dorm/errors/invalid-action",
        Level::Must,
        "seed 000, action codes",
        "an action other than \"00\"..\"09\" or null gets {error} on `action`; valid ones still go out",
        include_str!("cases/dorm-invalid-action.yaml"),
    ),
    case(
        "dorm/errors/bad-token",
        Level::Must,
        "seed 000, {token} on every event",
        "a missing, mistyped, unknown, empty, prototype-named or huge token gets {error} on its event",
        include_str!("cases/dorm-bad-token.yaml"),
    ),
    case(
        "dorm/errors/bad-payload",
        Level::Must,
        "seed 000, payloads",
        "a payload that is not the documented object, or a message that is not a string, gets {error}",
        include_str!("cases/dorm-bad-payload.yaml"),
    ),
    case(
        "dorm/connection/dead-heartbeat-closed",
        Level::Must,
        "protocols.md, Engine.IO heartbeat",
        "a client that stops its heartbeat is closed within pingInterval + pingTimeout + grace",
        include_str!("cases/dorm-heartbeat.yaml"),
    ),
    case(
        "dorm/robustness/hostile-requests",
        Level::Must,
        "protocols.md, common rules",
        "after requests without payload, with extra arguments, prototype event names or over 1 MB, everyone else is served",
        include_str!("cases/dorm-hostile-requests.yaml"),
    ),
    case(
        "dorm/robustness/malformed-frames",
        Level::Must,
        "protocols.md, common rules",
        "after frames that are not valid Socket.IO, everyone else (and a later wave) is served",
        include_str!("cases/dorm-malformed-frames.yaml"),
    ),
    case(
        "lobby/login/announced",
        Level::Must,
        "seed 004, Login",
        "login answers logedin and tells every other socket otherLogedin; a second login is refused",
        include_str!("cases/lobby-login.yaml"),
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
        "seed 004, GotError",
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
        "lobby/connection/dead-heartbeat-closed",
        Level::Must,
        "protocols.md, Engine.IO heartbeat; seed 004, disconnect",
        "a member whose heartbeat stops is closed in time, and its room and everyone are told",
        include_str!("cases/lobby-heartbeat.yaml"),
    ),
    case(
        "lobby/robustness/hostile-names",
        Level::Must,
        "protocols.md, common rules",
        "prototype names as rooms and users, and another connection's id as a room, leak nothing",
        include_str!("cases/lobby-hostile-names.yaml"),
    ),
    case(
        "lobby/robustness/hostile-types",
        Level::Must,
        "protocols.md, common rules",
        "after missing arguments, wrong types and huge strings, later clients are served",
        include_str!("cases/lobby-hostile-types.yaml"),
    ),
    case(
        "lobby/robustness/malformed-frames",
        Level::Must,
        "protocols.md, common rules",
        "after frames that are not valid Socket.IO, everyone else is served",
        include_str!("cases/lobby-malformed-frames.yaml"),
    ),
];

/// The cases of a dialect, in suite order.
pub fn suite(dialect: &str) -> Vec<&'static Case> {
    CASES
        .iter()
        .filter(|c| c.id.split('/').next() == Some(dialect))
        .collect()
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
    /// The first violation in full: expected vs received and the client's transcript.
    pub evidence: Option<crate::oracle::Violation>,
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

/// Runs the cases one after the other. An unreachable target before the first case ends the
/// suite (`Err`); a target that stops answering later (a crash or a hang) fails the case that
/// caused it as a MUST failure and skips the rest, so the report still says what ran.
pub async fn run(
    cases: &[&'static Case],
    opts: &CheckOptions,
) -> Result<Vec<CaseResult>, RunError> {
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
    let mut results: Vec<CaseResult> = Vec::new();
    let mut skip = 0usize;
    let mut gone: Option<&'static str> = None;
    for case in cases {
        if let Some(culprit) = gone {
            results.push(CaseResult::skipped(
                case,
                format!("the target stopped answering during {culprit}"),
            ));
            continue;
        }
        let started = std::time::Instant::now();
        let mut scenario = Scenario::parse(case.scenario, case.id)
            .unwrap_or_else(|e| panic!("built-in case {} does not parse: {e}", case.id));
        scenario.eio = eio;
        scenario.name = case.id.replace('/', "_");
        if opts.target.is_none() {
            // The embedded server: a fast heartbeat, so dead clients are closed quickly.
            scenario.server = Some(crate::scenario::ServerSettings {
                ping_interval: crate::scenario::Dur(Duration::from_secs(1)),
                ping_timeout: crate::scenario::Dur(Duration::from_secs(1)),
            });
        } else {
            scenario.heartbeat_deadline = Some(crate::scenario::Dur(opts.heartbeat_deadline));
        }
        let needed = match scenario.users {
            crate::scenario::UsersSpec::Generate { count, .. } => count as usize,
            crate::scenario::UsersSpec::File(_) => 0,
        };
        // A foreign server shares one fixture: each case takes the next users.
        let (fixtures, users_skip) = match (&opts.users, &opts.target) {
            (Some(f), _) => (Some(f.clone()), skip),
            (None, Some(_)) => (Some(Fixtures::generate(4096, 4)), skip),
            (None, None) => (None, 0),
        };
        if let Some(f) = &fixtures {
            if f.users.len() < users_skip + needed {
                results.push(CaseResult::skipped(
                    case,
                    format!(
                        "needs {needed} more users than the users file has left ({} of {})",
                        f.users.len().saturating_sub(users_skip),
                        f.users.len()
                    ),
                ));
                continue;
            }
        }
        skip += needed;
        let outcome = driver::run(
            scenario,
            RunOptions {
                target: opts.target.clone(),
                progress: false,
                max_lateness: Duration::from_millis(500),
                fixtures,
                users_skip,
                ..RunOptions::default()
            },
        )
        .await;
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
            let config = crate::client::ClientConfig {
                eio: match eio {
                    EioSetting::Fixed(v) => v,
                    EioSetting::Auto => EioVersion::V4,
                },
                ..Default::default()
            };
            if let Err(RunError::Unreachable { reason, .. }) =
                driver::preflight(target, &config).await
            {
                gone = Some(case.id);
                result = CaseResult::unresponsive(case, "a new connection after the case", reason)
                    .with_violations(result.violations);
            }
        }
        result.seconds = started.elapsed().as_secs_f64();
        results.push(result);
    }
    Ok(results)
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
            let level = tally.level.unwrap_or(Level::Info);
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
            ..CaseResult::new(case, status)
        }
    }

    /// The server crashed or hangs: a MUST failure whatever the case's own level.
    fn unresponsive(case: &'static Case, what: &str, reason: String) -> CaseResult {
        let rule = rule_id(
            case.id.split('/').next().unwrap_or(""),
            "server",
            Check::Unresponsive,
        );
        CaseResult {
            violations: vec![(rule.clone(), 1)],
            evidence: Some(crate::oracle::Violation {
                rule,
                level: Level::Must,
                client: 0,
                user: "(probe)".into(),
                at_ms: 0.0,
                expected: format!("{what} is served (the server answered before this case)"),
                received: reason,
                transcript: Vec::new(),
            }),
            ..CaseResult::new(case, Status::Fail)
        }
    }

    /// Keeps the rules the case's own run violated after the first one.
    fn with_violations(mut self, earlier: Vec<(String, u64)>) -> CaseResult {
        self.violations.extend(earlier);
        self
    }
}

/// The results as JUnit test cases.
pub fn junit_cases(results: &[CaseResult]) -> Vec<crate::junit::TestCase> {
    use crate::junit::{Outcome, TestCase};
    results
        .iter()
        .map(|r| {
            let mut body = format!("{} ({}): {}\n", r.id, r.level, r.description);
            if let Some(e) = &r.evidence {
                body.push_str(&format!(
                    "client {} ({}): expected {}; received {}\n",
                    e.client, e.user, e.expected, e.received
                ));
                for line in &e.transcript {
                    body.push_str(&format!("  {line}\n"));
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
                    kind: r.level.to_string(),
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
            "{status:<5} {:<6} {:<44} {:>6.1}s  {}",
            r.level.to_string(),
            r.id,
            r.seconds,
            r.description
        );
        for (rule, n) in &r.violations {
            let _ = writeln!(out, "        {rule} x{n}");
        }
        if let Some(e) = &r.evidence {
            let _ = writeln!(
                out,
                "        client {} ({}): expected {}; received {}",
                e.client, e.user, e.expected, e.received
            );
            for line in e.transcript.iter().rev().take(6).rev() {
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
