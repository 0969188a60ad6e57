//! Reports of a run: the console summary, `summary.json`, and the histograms as an
//! HdrHistogram interval log (V2, deflate) that other tools and later merges can read.
//! Measuring and presenting stay apart: everything here reads a finished [`RunResult`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::driver::RunResult;
use crate::exit::Exit;
use crate::metrics::Summary;
use crate::oracle::rules::Level;
use crate::oracle::RuleTally;
use crate::scenario::Scenario;
use crate::thresholds::{Aborted, Outcome, Stat};

/// The verdict of a run and why.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub exit_code: i32,
    pub reasons: Vec<String>,
}

/// What a run's verdict says, written as [`Status::as_str`] in `summary.json` and JUnit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Violations,
    Thresholds,
    Invalid,
    Interrupted,
    /// The target could not be reached: nothing ran.
    Unreachable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Violations => "violations",
            Status::Thresholds => "thresholds",
            Status::Invalid => "invalid",
            Status::Interrupted => "interrupted",
            Status::Unreachable => "unreachable",
        }
    }

    /// The exit code of a run with this verdict.
    pub fn exit(self) -> Exit {
        match self {
            Status::Pass => Exit::Pass,
            Status::Violations => Exit::Violations,
            Status::Thresholds => Exit::Thresholds,
            Status::Invalid => Exit::InvalidRun,
            Status::Interrupted => Exit::Interrupted,
            Status::Unreachable => Exit::Unreachable,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `summary.json`.
#[derive(Debug, Serialize)]
pub struct SummaryFile {
    pub tool: Tool,
    pub run_id: String,
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    pub started_at: String,
    pub duration_s: f64,
    pub interrupted: bool,
    pub clients: ClientsInfo,
    pub events: EventsInfo,
    /// Per metric: `co` (from the intended send time) and `raw` (from the actual send).
    pub metrics: BTreeMap<String, MetricInfo>,
    pub violations: ViolationsInfo,
    pub thresholds: Vec<Outcome>,
    /// The `abort_on_fail` threshold that stopped the run early, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
    /// What the roomrig process cost (includes the embedded server when there is one).
    pub driver: DriverCost,
    pub verdict: Verdict,
    /// The command that replays this run (same scenario, same seed).
    pub replay: String,
    /// With `--workers N`: each driver process and reference-server process of the run
    /// (see the workers module); absent for a run in one process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Processes>,
    /// The run second by second (connections, sends, deliveries, violations by rule id).
    pub timeline: crate::timeline::Timeline,
    /// The machine the report was made on.
    pub machine: crate::resources::Machine,
}

// The fields of the `processes` structs stand in alphabetical order: the section was first
// written from a JSON map, which sorts its keys, and reports stay byte-compatible.

/// The `processes` section of a `--workers N` run.
#[derive(Debug, Serialize)]
pub struct Processes {
    /// The most connections open at once, from the workers' live counts.
    pub peak_open: u64,
    pub servers: Vec<ServerInfo>,
    pub workers: Vec<WorkerInfo>,
}

/// One worker process of a `--workers N` run.
#[derive(Debug, Serialize)]
pub struct WorkerInfo {
    pub connected: u64,
    pub cpu_s: f64,
    /// Its report directory.
    pub dir: String,
    /// Its exit code (none when a signal ended it).
    pub exit_code: Option<i32>,
    pub peak_rss_mb: f64,
    pub planned: u64,
    pub received: u64,
    pub sent: u64,
    pub source_addr: Option<String>,
    pub status: WorkerStatus,
    pub target: String,
    pub violations: u64,
    pub worker: u32,
}

/// A worker's verdict on its own share, or that it left no results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStatus {
    Judged(Status),
    NoResults,
}

impl WorkerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Judged(s) => s.as_str(),
            WorkerStatus::NoResults => "no results",
        }
    }
}

impl Serialize for WorkerStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One reference-server process of a `--workers N` run.
#[derive(Debug, Serialize)]
pub struct ServerInfo {
    pub cpu_s: f64,
    pub peak_rss_mb: f64,
    pub url: String,
}

/// `summary.json` of a run whose target could not be reached: the scenario and why.
#[derive(Debug, Serialize)]
pub struct UnreachableSummary {
    pub scenario: String,
    pub verdict: Verdict,
}

impl UnreachableSummary {
    pub fn new(scenario: &str, reason: &str) -> UnreachableSummary {
        UnreachableSummary {
            scenario: scenario.to_string(),
            verdict: Verdict {
                status: Status::Unreachable,
                exit_code: Status::Unreachable.exit().code(),
                reasons: vec![reason.to_string()],
            },
        }
    }

    /// The file's text. Its keys are sorted, as in the reports before this type existed.
    pub fn json(&self) -> String {
        let sorted = serde_json::to_value(self).unwrap_or_default();
        format!("{sorted:#}\n")
    }
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    pub dialect: String,
    /// The Engine.IO version the run spoke.
    pub eio: String,
    /// With `--eio auto`: what the target sent that told its generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eio_detected: Option<String>,
    pub seed: u64,
    pub deadline_ms: f64,
    /// The scenario as parsed, defaults filled in.
    pub config: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct TargetInfo {
    pub url: String,
    pub embedded_reference_server: bool,
}

#[derive(Debug, Serialize)]
pub struct ClientsInfo {
    pub planned: u64,
    pub users_available: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub unexpected_closes: u64,
}

#[derive(Debug, Serialize)]
pub struct EventsInfo {
    pub sent: u64,
    pub received: u64,
    /// Requests sent per operation (`sent` also counts hostile `send` steps).
    pub sent_by_operation: BTreeMap<String, u64>,
    /// WebSocket message bytes the clients wrote and read (handshakes and frame headers not
    /// included).
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Serialize)]
pub struct DriverCost {
    pub cpu_s: f64,
    pub peak_rss_mb: f64,
    /// Resident memory added during the run, per connected client.
    pub rss_per_client_kib: f64,
    /// CPU microseconds per received (and checked) event.
    pub cpu_us_per_received_event: f64,
    pub includes_embedded_server: bool,
}

#[derive(Debug, Serialize)]
pub struct MetricInfo {
    pub co: Summary,
    pub raw: Summary,
}

#[derive(Debug, Serialize)]
pub struct ViolationsInfo {
    pub total: u64,
    pub must: u64,
    pub should: u64,
    pub info: u64,
    pub by_rule: BTreeMap<String, RuleTally>,
}

/// Builds the summary of a finished run of `scenario` (as it ran: the seed of the run).
/// `strict` makes SHOULD violations fail the run.
pub fn summarize(
    result: &RunResult,
    scenario: &Scenario,
    scenario_path: &Path,
    run_id: &str,
    strict: bool,
) -> SummaryFile {
    let metrics: BTreeMap<String, MetricInfo> = result
        .metrics
        .iter()
        .map(|(name, pair)| {
            (
                name.to_string(),
                MetricInfo {
                    co: Summary::of(&pair.co),
                    raw: Summary::of(&pair.raw),
                },
            )
        })
        .collect();
    let count_level = |level: Level| -> u64 {
        result
            .violations
            .values()
            .filter(|t| t.level == Some(level))
            .map(|t| t.count)
            .sum()
    };
    let (must, should, info) = (
        count_level(Level::Must),
        count_level(Level::Should),
        count_level(Level::Info),
    );
    let figures = figures(result, &metrics, must, should);
    let thresholds: Vec<Outcome> = scenario
        .thresholds
        .iter()
        .map(|t| t.value.threshold.evaluate(&figures))
        .collect();
    let verdict = verdict(result, &metrics, must, should, strict, &thresholds);
    let s = scenario;
    SummaryFile {
        tool: Tool {
            name: "roomrig",
            version: env!("CARGO_PKG_VERSION"),
        },
        run_id: run_id.to_string(),
        scenario: ScenarioInfo {
            name: s.name.clone(),
            path: scenario_path.display().to_string(),
            dialect: s.dialect.0.clone(),
            eio: result.eio.to_string(),
            eio_detected: result.eio_detected.clone(),
            seed: result.seed,
            deadline_ms: s.deadline().as_secs_f64() * 1e3,
            config: serde_json::to_value(s).unwrap_or_default(),
        },
        target: TargetInfo {
            url: result.target.clone(),
            embedded_reference_server: result.embedded,
        },
        started_at: result.started_at.to_rfc3339(),
        duration_s: result.duration.as_secs_f64(),
        interrupted: result.interrupted,
        clients: ClientsInfo {
            planned: result.planned_clients,
            users_available: result.users_available,
            connected: result.connected,
            connect_errors: result.connect_errors,
            unexpected_closes: result.unexpected_closes,
        },
        events: EventsInfo {
            sent: result.sent,
            received: result.received,
            sent_by_operation: result.sent_by_op.clone(),
            bytes_sent: result.bytes_sent,
            bytes_received: result.bytes_received,
        },
        metrics,
        violations: ViolationsInfo {
            total: must + should + info,
            must,
            should,
            info,
            by_rule: result.violations.clone(),
        },
        thresholds,
        aborted: result.aborted.clone(),
        driver: {
            let cpu = result.usage_after.cpu_s() - result.usage_before.cpu_s();
            let grown = result
                .usage_after
                .peak_rss_bytes
                .saturating_sub(result.usage_before.rss_bytes);
            DriverCost {
                cpu_s: cpu,
                peak_rss_mb: result.usage_after.peak_rss_mb(),
                rss_per_client_kib: grown as f64 / 1024.0 / result.connected.max(1) as f64,
                cpu_us_per_received_event: cpu * 1e6 / result.received.max(1) as f64,
                includes_embedded_server: result.embedded,
            }
        },
        verdict,
        replay: with_inputs(
            &s.inputs,
            format!(
                "roomrig run {} --seed {} --eio {}{}{}",
                scenario_path.display(),
                result.seed,
                result.eio,
                if result.embedded {
                    String::new()
                } else {
                    format!(" --target {}", result.target)
                },
                result
                    .users_file
                    .as_ref()
                    .map_or(String::new(), |f| format!(" --users {}", f.display())),
            ),
        ),
        processes: None,
        timeline: result.timeline.clone(),
        machine: crate::resources::Machine::this(),
    }
}

/// The verdict on a run, as its summary gives it (the parent of `--workers N` judges each
/// worker's share with it).
pub fn verdict_of(result: &RunResult, scenario: &Scenario, strict: bool) -> Verdict {
    summarize(result, scenario, Path::new(""), "", strict).verdict
}

/// A command that reads the scenario as this run did: with the environment variables it
/// expanded set before it, and its `--set` arguments after it.
fn with_inputs(inputs: &crate::scenario::Inputs, command: String) -> String {
    let mut out = String::new();
    for (name, value) in &inputs.env {
        let _ = write!(out, "{name}={} ", shell_word(value));
    }
    out.push_str(&command);
    for set in &inputs.sets {
        let _ = write!(out, " --set {}", shell_word(set));
    }
    out
}

/// `word` as one POSIX shell word: as it is when it is safe, else in single quotes.
fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The figures thresholds can name: `<metric>.<stat>` (CO-corrected, ms),
/// `<metric>.raw.<stat>`, `<metric>.count`, `violations`, `violations.must`,
/// `violations.should`, `violations.info`, `connect.errors` (percent of planned clients),
/// `sent`, `received` (see [`crate::thresholds::Figure`]).
pub fn figures(
    result: &RunResult,
    metrics: &BTreeMap<String, MetricInfo>,
    must: u64,
    should: u64,
) -> BTreeMap<String, f64> {
    let mut f = BTreeMap::new();
    for (name, m) in metrics {
        for (prefix, s) in [(name.clone(), &m.co), (format!("{name}.raw"), &m.raw)] {
            for (stat, which) in Stat::ALL {
                f.insert(format!("{prefix}.{stat}"), which.of(s));
            }
        }
        f.insert(format!("{name}.count"), m.co.count as f64);
    }
    let total: u64 = result.violations.values().map(|t| t.count).sum();
    f.insert("violations".into(), total as f64);
    f.insert("violations.must".into(), must as f64);
    f.insert("violations.should".into(), should as f64);
    f.insert(
        "violations.info".into(),
        total.saturating_sub(must + should) as f64,
    );
    let planned = result.planned_clients.max(1) as f64;
    f.insert(
        "connect.errors".into(),
        result.connect_errors as f64 * 100.0 / planned,
    );
    f.insert("sent".into(), result.sent as f64);
    f.insert("received".into(), result.received as f64);
    f
}

fn verdict(
    result: &RunResult,
    metrics: &BTreeMap<String, MetricInfo>,
    must: u64,
    should: u64,
    strict: bool,
    thresholds: &[Outcome],
) -> Verdict {
    let mut reasons = Vec::new();
    let lateness_p99 = metrics.get("send.lateness").map_or(0.0, |m| m.co.p99_ms);
    let bound_ms = result.max_lateness.as_secs_f64() * 1e3;
    let lag_p99 = metrics.get("runtime.lag").map_or(0.0, |m| m.co.p99_ms);
    let saturated = lag_p99 > bound_ms;
    let invalid = lateness_p99 > bound_ms || saturated || result.overloaded;
    if result.overloaded {
        reasons.push(format!(
            "stopped early: a send fell more than {:.0} ms behind its schedule (the generator fell behind)",
            bound_ms * 10.0
        ));
    }
    if saturated && !result.overloaded {
        reasons.push(format!(
            "runtime lag p99 {lag_p99:.1} ms exceeds {bound_ms:.0} ms: the generator's runtime was saturated, so receipts were judged late"
        ));
    }
    if lateness_p99 > bound_ms && !result.overloaded {
        reasons.push(format!(
            "send lateness p99 {lateness_p99:.1} ms exceeds {bound_ms:.0} ms: the generator fell behind its schedule, so latencies describe the generator"
        ));
    }
    if must > 0 {
        reasons.push(format!("{must} MUST violation(s)"));
    }
    if strict && should > 0 {
        reasons.push(format!("{should} SHOULD violation(s) (--strict)"));
    }
    let failed: Vec<&Outcome> = thresholds.iter().filter(|t| !t.passed).collect();
    for t in &failed {
        reasons.push(format!(
            "threshold `{}` failed (actual {})",
            t.threshold,
            t.actual_shown()
        ));
    }
    if let Some(a) = &result.aborted {
        reasons.insert(
            0,
            format!(
                "stopped early at {:.1} s: threshold `{}` (abort_on_fail) failed with {}; the report covers what ran",
                a.at_s,
                a.outcome.threshold,
                a.outcome.actual_shown()
            ),
        );
    }
    // A run stopped by a threshold ends as Ctrl-C ends one: what it cut short proves nothing,
    // so the stop decides the verdict.
    let status = if result.interrupted {
        Status::Interrupted
    } else if invalid {
        Status::Invalid
    } else if result.aborted.is_some() {
        Status::Thresholds
    } else if must > 0 || (strict && should > 0) {
        Status::Violations
    } else if !failed.is_empty() {
        Status::Thresholds
    } else {
        Status::Pass
    };
    if result.interrupted {
        reasons.insert(0, "interrupted (Ctrl-C): the report covers what ran".into());
    }
    Verdict {
        status,
        exit_code: status.exit().code(),
        reasons,
    }
}

impl Verdict {
    /// An invalid (or lost) worker makes the merged run invalid, unless it was interrupted.
    pub fn invalid_if_a_worker_was(&mut self, worker_reasons: Vec<String>) {
        if worker_reasons.is_empty() {
            return;
        }
        if self.status != Status::Interrupted {
            self.status = Status::Invalid;
            self.exit_code = Status::Invalid.exit().code();
        }
        self.reasons.extend(worker_reasons);
    }
}

/// Writes `summary.json`, `histograms.hlog` (and `transcripts.txt`, `ops.log` when there are
/// any) into `dir`, creating it, then `report.html` rendered from those files.
pub fn write_files(
    summary: &SummaryFile,
    result: &RunResult,
    dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json_path = dir.join("summary.json");
    let mut json = serde_json::to_vec_pretty(summary).map_err(std::io::Error::other)?;
    json.push(b'\n');
    std::fs::write(&json_path, json)?;
    let hlog_path = dir.join("histograms.hlog");
    crate::hlog::write(
        &result.intervals,
        result.started_at,
        result.duration,
        &summary.scenario.name,
        &hlog_path,
    )?;
    let mut written = vec![json_path, hlog_path];
    if !result.transcripts.is_empty() {
        let path = dir.join("transcripts.txt");
        let mut text = String::new();
        for (client, user, lines) in &result.transcripts {
            let _ = writeln!(text, "== client {client} ({user})");
            for l in lines {
                let _ = writeln!(text, "{l}");
            }
            text.push('\n');
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    if let Some(log) = &result.op_log {
        let path = dir.join("ops.log");
        let mut text = String::new();
        for (client, ops) in log {
            for (i, op) in ops.iter().enumerate() {
                let _ = writeln!(text, "client {client} #{i} {op}");
            }
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    written.push(crate::report_cmd::render_run_dir(dir).map_err(std::io::Error::other)?);
    Ok(written)
}

/// The run as JUnit test cases: `conformance` (the oracle's verdict), `valid-run` (the
/// generator kept its schedule) and one `threshold: ...` per threshold.
pub fn junit_cases(summary: &SummaryFile) -> Vec<crate::junit::TestCase> {
    use crate::junit::{Outcome, TestCase};
    let v = &summary.violations;
    let mut body = String::new();
    for (rule, t) in &v.by_rule {
        let level = t.level.map_or("?".to_string(), |l| l.to_string());
        let _ = writeln!(body, "{level} {rule} x{}: {}", t.count, t.reason);
        if !t.source.is_empty() {
            let _ = writeln!(body, "  source: {}", t.source);
        }
        if let Some(e) = t.examples.first() {
            let _ = writeln!(
                body,
                "  client {} ({}): expected {}; received {}",
                e.client, e.user, e.expected, e.received
            );
            for line in crate::check::around(&e.transcript, 5, 3) {
                let _ = writeln!(body, "    {line}");
            }
        }
    }
    let failed_rules: Vec<&str> = v
        .by_rule
        .iter()
        .filter(|(_, t)| t.level == Some(Level::Must))
        .map(|(rule, _)| rule.as_str())
        .collect();
    let conformance = if summary.verdict.status == Status::Violations {
        Outcome::Fail {
            kind: "violations".into(),
            message: failed_rules.join(", "),
            body,
        }
    } else if v.total > 0 {
        Outcome::Warn { body }
    } else {
        Outcome::Pass
    };
    let mut cases = vec![TestCase {
        name: "conformance".into(),
        seconds: summary.duration_s,
        outcome: conformance,
    }];
    cases.push(TestCase {
        name: "valid-run".into(),
        seconds: 0.0,
        outcome: if summary.verdict.status == Status::Invalid {
            Outcome::Fail {
                kind: "invalid".into(),
                message: "the generator fell behind its schedule".into(),
                body: summary.verdict.reasons.join("\n"),
            }
        } else {
            Outcome::Pass
        },
    });
    for t in &summary.thresholds {
        cases.push(TestCase {
            name: format!("threshold: {}", t.threshold),
            seconds: 0.0,
            outcome: if t.passed {
                Outcome::Pass
            } else {
                Outcome::Fail {
                    kind: "threshold".into(),
                    message: format!("actual {}", t.actual_shown()),
                    body: t.threshold.clone(),
                }
            },
        });
    }
    cases
}

/// The console summary: what was run, the headline figures (each operation's rate and its
/// latency), clients and traffic, every latency histogram, the cost, the violations, the
/// thresholds and the verdict.
pub fn console(summary: &SummaryFile) -> String {
    let mut out = String::new();
    let s = summary;
    let _ = writeln!(
        out,
        "\nroomrig {} · {} · dialect {} · EIO={}{} · seed {} · {:.1}s",
        s.tool.version,
        s.scenario.name,
        s.scenario.dialect,
        s.scenario.eio,
        if s.scenario.eio_detected.is_some() {
            " (detected)"
        } else {
            ""
        },
        s.scenario.seed,
        s.duration_s
    );
    let _ = writeln!(
        out,
        "target {}{}\n",
        s.target.url,
        if s.target.embedded_reference_server {
            " (embedded reference server)"
        } else {
            ""
        }
    );
    headline(&mut out, s);
    let seconds = s.duration_s.max(1e-3);
    let _ = writeln!(
        out,
        "\nclients  {} planned, {} connected, {} connect errors, {} closed by the server",
        s.clients.planned,
        s.clients.connected,
        s.clients.connect_errors,
        s.clients.unexpected_closes
    );
    let _ = writeln!(
        out,
        "traffic  {} messages sent ({:.1}/s), {} received ({:.1}/s); {} sent, {} received",
        s.events.sent,
        s.events.sent as f64 / seconds,
        s.events.received,
        s.events.received as f64 / seconds,
        bytes(s.events.bytes_sent),
        bytes(s.events.bytes_received),
    );
    let _ = writeln!(
        out,
        "\nlatency: co = from the intended send time of the schedule (coordinated omission \
         corrected), raw = from the actual write"
    );
    let _ = writeln!(
        out,
        "{:<26} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "metric (ms)", "", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, m) in &s.metrics {
        // send.lateness has no raw figure; a metric measured from one time (runtime.lag)
        // has twice the same row: one row each.
        let rows: &[(&str, &Summary)] = if name == "send.lateness" {
            &[("co", &m.co)]
        } else if m.co == m.raw {
            &[("co=raw", &m.co)]
        } else {
            &[("co", &m.co), ("raw", &m.raw)]
        };
        for (variant, h) in rows {
            let _ = writeln!(
                out,
                "{:<26} {:>6} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name, variant, h.count, h.p50_ms, h.p90_ms, h.p99_ms, h.p999_ms, h.max_ms
            );
        }
    }
    let d = &s.driver;
    let _ = writeln!(
        out,
        "\n{}: {:.2} CPU s, {:.2} µs CPU per received event, peak RSS {:.1} MB ({:.1} KiB per client)",
        if s.processes.is_some() {
            "roomrig worker processes (summed)"
        } else if d.includes_embedded_server {
            "roomrig process (with the embedded server)"
        } else {
            "roomrig process"
        },
        d.cpu_s, d.cpu_us_per_received_event, d.peak_rss_mb, d.rss_per_client_kib
    );
    let v = &s.violations;
    let _ = writeln!(
        out,
        "\nviolations: {} (MUST {}, SHOULD {}, INFO {})",
        v.total, v.must, v.should, v.info
    );
    for (rule, t) in &v.by_rule {
        let level = t.level.map_or("?".to_string(), |l| l.to_string());
        let _ = writeln!(
            out,
            "  {:<6} {:<40} {:>7}  {}",
            level, rule, t.count, t.reason
        );
        if !t.source.is_empty() {
            let _ = writeln!(out, "         source: {}", t.source);
        }
        if let Some(e) = t.examples.first() {
            let _ = writeln!(
                out,
                "         e.g. client {} ({}) at {:.3} ms: expected {}; received {}",
                e.client, e.user, e.at_ms, e.expected, e.received
            );
        }
    }
    for t in &s.thresholds {
        let _ = writeln!(
            out,
            "threshold {:<40} {:<6} actual {}",
            t.threshold,
            if t.passed { "ok" } else { "FAILED" },
            t.actual_shown()
        );
    }
    let _ = writeln!(
        out,
        "\nverdict: {} (exit {})",
        s.verdict.status.as_str().to_uppercase(),
        s.verdict.exit_code
    );
    for r in &s.verdict.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    if s.verdict.status != Status::Pass {
        let _ = writeln!(out, "replay: {}", s.replay);
    }
    out
}

/// The headline: per operation, how many were sent and how fast, and the latency that
/// matters for it (its fan-out, or its reply), CO-corrected p50 / p99.
fn headline(out: &mut String, s: &SummaryFile) {
    let seconds = s.duration_s.max(1e-3);
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>10}   {:<26} {:>9} {:>9}",
        "operation", "sent", "rate", "latency (co, ms)", "p50", "p99"
    );
    for (op, &sent) in &s.events.sent_by_operation {
        let prefix = format!("{op}.");
        // The fan-out where the operation broadcasts, else its reply (errors are no headline).
        let latency = s
            .metrics
            .get(&format!("{op}.fanout"))
            .map(|m| ("fanout", m))
            .or_else(|| {
                s.metrics
                    .iter()
                    .find(|(name, _)| name.starts_with(&prefix) && !name.ends_with(".error"))
                    .map(|(name, m)| (&name[prefix.len()..], m))
            });
        let (what, p50, p99) = match latency {
            Some(("fanout", m)) => (
                format!("fan-out ({} deliveries)", m.co.count),
                format!("{:.3}", m.co.p50_ms),
                format!("{:.3}", m.co.p99_ms),
            ),
            Some((reply, m)) => (
                format!("reply {reply}"),
                format!("{:.3}", m.co.p50_ms),
                format!("{:.3}", m.co.p99_ms),
            ),
            None => ("-".to_string(), "-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            out,
            "{op:<14} {sent:>8} {:>10}   {what:<26} {p50:>9} {p99:>9}",
            format!("{:.1}/s", sent as f64 / seconds)
        );
    }
}

/// A byte count for people: `812 B`, `4.3 kB`, `12.0 MB`, `1.25 GB` (decimal units).
fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1e3 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} kB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.2} GB", n / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_written_as_before() {
        let all = [
            (Status::Pass, "pass", 0),
            (Status::Violations, "violations", 1),
            (Status::Thresholds, "thresholds", 3),
            (Status::Invalid, "invalid", 4),
            (Status::Interrupted, "interrupted", 130),
            (Status::Unreachable, "unreachable", 5),
        ];
        for (status, text, code) in all {
            assert_eq!(serde_json::to_value(status).unwrap(), text);
            assert_eq!(status.exit().code(), code);
        }
        assert_eq!(
            serde_json::to_value(WorkerStatus::NoResults).unwrap(),
            "no results"
        );
        assert_eq!(
            serde_json::to_value(WorkerStatus::Judged(Status::Pass)).unwrap(),
            "pass"
        );
    }

    #[test]
    fn an_unreachable_summary_is_written_as_before() {
        let text = UnreachableSummary::new("smoke", "connection refused").json();
        // How the file was written before it had a type: a JSON map (sorted keys), pretty.
        let before = serde_json::json!({
            "scenario": "smoke",
            "verdict": { "status": "unreachable", "exit_code": 5, "reasons": ["connection refused"] },
        });
        assert_eq!(text, format!("{before:#}\n"));
    }

    #[test]
    fn an_invalid_worker_makes_the_run_invalid_unless_interrupted() {
        let mut v = Verdict {
            status: Status::Violations,
            exit_code: 1,
            reasons: vec!["2 MUST violation(s)".into()],
        };
        v.invalid_if_a_worker_was(vec![]);
        assert_eq!(v.status, Status::Violations);
        v.invalid_if_a_worker_was(vec!["worker 1: behind".into()]);
        assert_eq!((v.status, v.exit_code), (Status::Invalid, 4));
        assert_eq!(v.reasons.len(), 2);
        let mut v = Verdict {
            status: Status::Interrupted,
            exit_code: 130,
            reasons: vec![],
        };
        v.invalid_if_a_worker_was(vec!["worker 0 left no results".into()]);
        assert_eq!((v.status, v.exit_code), (Status::Interrupted, 130));
    }
}
