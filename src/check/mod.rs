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

pub use crate::dialect::suite::Case;

/// The built-in suites, one per registered dialect: the cases written out, then its generated
/// robustness cases.
pub static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    let mut all = Vec::new();
    for dialect in crate::dialect::DIALECTS {
        all.extend(dialect.suite.cases.iter().cloned());
        for family in dialect.suite.families {
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

/// `check.json`: what a check ran and each case's result (the page `report.html` is made of).
#[derive(Serialize)]
pub struct CheckFile<'a> {
    pub dialect: String,
    pub target: String,
    pub eio: String,
    pub strict: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub verdict: CheckVerdict,
    pub machine: crate::resources::Machine,
    pub cases: &'a [CaseResult],
}

/// The verdict of a whole check and its exit code.
#[derive(Serialize)]
pub struct CheckVerdict {
    pub status: &'static str,
    pub exit_code: i32,
}

/// Writes `check.json` into `dir`, then `report.html` rendered from it.
pub fn write_report(file: &CheckFile<'_>, dir: &std::path::Path) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    json.push(b'\n');
    std::fs::write(dir.join(crate::report_cmd::CHECK_FILE), json)?;
    let page = crate::report_cmd::render_check_dir(dir).map_err(std::io::Error::other)?;
    crate::out::outln!("wrote {}", page.display());
    Ok(())
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
    /// The target's report window of a departure notice (voice's `exit_room_report`): the
    /// protocol advertises none, so the checker may be told; when not, the judge allows any
    /// window up to [`crate::oracle::LONGEST_UNSTATED_REPORT_WINDOW`] (the embedded server
    /// runs with [`EMBEDDED_REPORT_WINDOW`]).
    pub exit_report_timeout: Option<Duration>,
    /// Test-only defects of each case's embedded server (`--server-fault`; none against a
    /// target, whose defects are its own).
    pub server_faults: Vec<String>,
}

/// The heartbeat (pingInterval, pingTimeout) of each case's embedded server: fast, so that
/// dead clients are closed quickly.
pub const EMBEDDED_HEARTBEAT: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(1));

/// The report window the embedded server of each case runs with: short, so that a case whose
/// members withhold their reports is over quickly.
pub const EMBEDDED_REPORT_WINDOW: Duration = Duration::from_secs(1);

/// The users a case's own clients take (its scenario's generated count).
pub fn users_of(case: &Case) -> usize {
    match parse(case).users {
        crate::scenario::UsersSpec::Generate { count, .. } => count as usize,
        crate::scenario::UsersSpec::File(_) => 0,
    }
}

/// Why a case cannot run against the target (`None`: it can). A case that restarts the server
/// (`restart_server`) needs a server roomrig owns: check's own embedded one.
pub fn not_against_target(case: &Case, target: &str) -> Option<String> {
    parse(case).restart_step.map(|_| {
        format!(
            "this case restarts the server between the messages and the user's return, and \
             roomrig cannot restart {target}, which it does not own. Run it on check's own \
             server (`roomrig check --dialect {dialect} --case {id}` without --target), or \
             check your server by hand: send messages to a user who is offline, restart the \
             server, then have that user authenticate and send caoff: each message must come \
             in a saoff exactly once",
            dialect = case.id.split('/').next().unwrap_or(""),
            id = case.id,
        )
    })
}

/// The cases that take users of the shared users file: against a target, not those it skips.
fn planned<'a>(cases: &[&'a Case], opts: &CheckOptions) -> Vec<&'a Case> {
    cases
        .iter()
        .copied()
        .filter(|c| {
            opts.target
                .as_deref()
                .is_none_or(|t| not_against_target(c, t).is_none())
        })
        .collect()
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
    let counts: Vec<usize> = planned(cases, opts).iter().map(|c| users_of(c)).collect();
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
    // Against a target, the cases it skips take no users: the plan's k-th case is the k-th
    // of these.
    let planned_cases = planned(cases, opts);
    let planned_counts: Vec<usize> = planned_cases.iter().map(|c| users_of(c)).collect();
    let shared = shared_users(opts);
    let plan = match &shared {
        Some(f) => Some(
            plan::plan(&planned_counts, f, opts.target.is_some()).map_err(|needed| {
                RunError::Setup(format!(
                    "these {} cases need {needed} users (their own, one bystander in each of \
                     {} neighbouring rooms per case{}), but the users file has {}",
                    planned_cases.len(),
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
    // A suite over a plain WebSocket has no Engine.IO generation and no Socket.IO listeners.
    let plain_websocket = cases
        .first()
        .and_then(|c| crate::dialect::find(c.id.split('/').next().unwrap_or("")))
        .is_some_and(|d| d.websocket.is_some());
    // The target's generation, once: every case then runs with it.
    let eio = match &opts.target {
        Some(target) if !plain_websocket => {
            let (eio, detected) =
                driver::resolve_eio(target, &Default::default(), opts.eio).await?;
            if let (EioSetting::Auto, Some(d)) = (opts.eio, detected) {
                crate::out::outln!("detected Engine.IO {eio} at {target}: {}", d.signal);
            }
            EioSetting::Fixed(eio)
        }
        _ => opts.eio,
    };
    // The cases of one suite: its dialect is the first segment of their ids.
    let Some(dialect) = cases
        .first()
        .and_then(|c| crate::dialect::find(c.id.split('/').next().unwrap_or("")))
    else {
        return Ok((Vec::new(), eio));
    };
    // The generation the suite's own connections (probe, watch, bystanders) speak.
    let version = match eio {
        EioSetting::Fixed(v) => v,
        EioSetting::Auto => EioVersion::V4,
    };
    let config = crate::transport::socketio::ClientConfig {
        eio: version,
        ..Default::default()
    };
    // Against a target: listeners that stay for the whole suite, in rooms no case uses.
    let watch = match (&opts.target, &shared, &plan) {
        (Some(target), Some(f), Some(p)) if !plain_websocket => {
            driver::preflight(target, &config).await?;
            Some(
                watch::Listeners::start(dialect, target, version, f, &p.watch, "watch", true).await,
            )
        }
        _ => None,
    };
    let mut results: Vec<CaseResult> = Vec::new();
    let mut gone: Option<&'static str> = None;
    // The index into the plan of the next case that runs.
    let mut slot = 0;
    for (k, (case, mut scenario)) in cases.iter().zip(scenarios).enumerate() {
        if let Some(reason) = opts
            .target
            .as_deref()
            .and_then(|t| not_against_target(case, t))
        {
            results.push(CaseResult::skipped(case, reason));
            continue;
        }
        let planned_slot = slot;
        slot += 1;
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
            (Some(f), Some(p)) => (
                f.clone(),
                p.cases[planned_slot].skip,
                p.cases[planned_slot].bystanders.clone(),
            ),
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
        // A case that restarts the server runs on the driver's embedded server, the one a
        // `restart_server` step restarts (with its store in a file). It has no bystanders: the
        // restart would drop them too, and the case's users are the only ones on its server.
        let restarts = opts.target.is_none() && scenario.restart_step.is_some();
        if restarts {
            scenario.server = Some(crate::scenario::ServerBlock {
                ping_interval: Some(crate::scenario::Dur(EMBEDDED_HEARTBEAT.0)),
                ping_timeout: Some(crate::scenario::Dur(EMBEDDED_HEARTBEAT.1)),
                exit_report_timeout: Some(crate::scenario::Dur(EMBEDDED_REPORT_WINDOW)),
            });
        }
        // Against the embedded server each case gets its own, started here so that the
        // bystanders can join it before the case's clients arrive.
        let embedded = match &opts.target {
            Some(_) => None,
            None if restarts => None,
            // A fast heartbeat, so that dead clients are closed quickly.
            None => Some(
                driver::start_reference_server_with(
                    dialect.name(),
                    &fixtures,
                    EMBEDDED_HEARTBEAT,
                    &opts.server_faults,
                    Some(EMBEDDED_REPORT_WINDOW),
                )
                .await?,
            ),
        };
        let target = opts
            .target
            .clone()
            .or_else(|| embedded.as_ref().map(|e| e.url()));
        let neighbours = match &target {
            Some(target) => Some(
                watch::Listeners::start(
                    dialect,
                    target,
                    version,
                    &fixtures,
                    &bystanders,
                    "bystander",
                    false,
                )
                .await,
            ),
            None => None,
        };
        let outcome = driver::run(
            scenario,
            RunOptions {
                target: target.clone(),
                server_faults: if restarts {
                    opts.server_faults.clone()
                } else {
                    Vec::new()
                },
                progress: false,
                max_lateness: Duration::from_millis(500),
                fixtures: Some(fixtures.clone()),
                users_skip,
                report_window: match &opts.target {
                    Some(_) => opts.exit_report_timeout,
                    None => Some(EMBEDDED_REPORT_WINDOW),
                },
                // A plain-WebSocket server advertises only its interval: the embedded one's
                // silence limit is known here.
                target_heartbeat: opts.target.is_none().then_some(EMBEDDED_HEARTBEAT),
                ..RunOptions::default()
            },
        )
        .await;
        let mut leaks = match neighbours {
            Some(n) => n.stop().await,
            None => Vec::new(),
        };
        let mut result = match outcome {
            // The server serves other users than the users file says: no case can be judged.
            Ok(outcome) if outcome.fixture_mismatch.is_some() => {
                return Err(RunError::Setup(format!(
                    "the users file does not describe the server: {}",
                    outcome.fixture_mismatch.unwrap_or_default()
                )))
            }
            Ok(outcome) => CaseResult::judged(case, &outcome, opts.strict),
            // Reachable before, unreachable now: an earlier case took the server down.
            Err(RunError::Unreachable { reason, .. }) if !results.is_empty() => {
                gone = Some(case.id);
                CaseResult::unresponsive(case, "the case's first connection", reason)
            }
            Err(e) => return Err(e),
        };
        // After each case against a target: is the server still there? (A Socket.IO probe:
        // a plain-WebSocket suite's next case finds out by its own connects.)
        if let (Some(target), None, false) = (&opts.target, gone, plain_websocket) {
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
        for family in crate::dialect::DIALECTS
            .iter()
            .flat_map(|d| d.suite.families)
        {
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

    /// A dialect's suite holds its own cases only: `suite` finds them by the id's first segment.
    #[test]
    fn every_case_is_of_its_dialect() {
        for d in crate::dialect::DIALECTS {
            let ids = d
                .suite
                .cases
                .iter()
                .map(|c| c.id)
                .chain(d.suite.families.iter().map(|f| f.id));
            for id in ids {
                assert_eq!(id.split('/').next(), Some(d.name()), "{id}");
            }
            assert!(!suite(d.name()).is_empty(), "{}", d.name());
        }
    }
}
