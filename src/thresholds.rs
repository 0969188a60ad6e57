//! Pass/fail conditions on a run's figures: `message.fanout.p99 < 50ms`, `violations == 0`,
//! `connect.errors < 1%`. Latency statistics are the coordinated-omission-corrected ones; add
//! `.raw` before the statistic (`message.fanout.raw.p99`) for the raw figures.
//!
//! Everything a threshold names is checked when the scenario is read, so that a misspelt
//! metric fails before any connection instead of after the whole run: the statistic and the
//! unit here, the metric against the dialect with [`known_metrics`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dialect::{Attribution, DialectSpec, Via};
use crate::metrics::{Metrics, Summary};
use crate::oracle::rules::Level;
use crate::oracle::Oracle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

/// A statistic of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Min,
    P50,
    P75,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Stat {
    /// Every statistic by its name in a figure.
    pub const ALL: [(&'static str, Stat); 9] = [
        ("min", Stat::Min),
        ("p50", Stat::P50),
        ("p75", Stat::P75),
        ("p90", Stat::P90),
        ("p95", Stat::P95),
        ("p99", Stat::P99),
        ("p999", Stat::P999),
        ("max", Stat::Max),
        ("mean", Stat::Mean),
    ];

    /// The statistic of a histogram's summary, in milliseconds.
    pub fn of(self, s: &Summary) -> f64 {
        match self {
            Stat::Min => s.min_ms,
            Stat::P50 => s.p50_ms,
            Stat::P75 => s.p75_ms,
            Stat::P90 => s.p90_ms,
            Stat::P95 => s.p95_ms,
            Stat::P99 => s.p99_ms,
            Stat::P999 => s.p999_ms,
            Stat::Max => s.max_ms,
            Stat::Mean => s.mean_ms,
        }
    }
}

/// What a threshold's figure measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    /// A statistic of a latency metric, in ms: CO-corrected, or `raw`.
    Latency {
        metric: String,
        raw: bool,
        stat: Stat,
    },
    /// How many samples a metric has.
    Count {
        metric: String,
    },
    /// Violations so far: all of them, or of one level.
    Violations(Option<Level>),
    /// Connect errors, in percent of the planned clients.
    ConnectErrors,
    Sent,
    Received,
}

/// The unit of a figure's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    #[serde(rename = "ms")]
    Ms,
    #[serde(rename = "%")]
    Percent,
    /// A plain number.
    #[serde(rename = "count")]
    Count,
}

impl Unit {
    /// A value in this unit, as the console shows it.
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Ms => format!("{v:.3} ms"),
            Unit::Percent => format!("{v:.2} %"),
            Unit::Count => format!("{v}"),
        }
    }
}

const NAMED_FIGURES: &str = "violations, violations.must, violations.should, violations.info, connect.errors, sent, received";

impl Figure {
    /// Parses a figure's name; the metric it names is checked later, against the dialect.
    pub fn parse(name: &str) -> Result<Figure, String> {
        let fixed = match name {
            "violations" => Some(Figure::Violations(None)),
            "violations.must" => Some(Figure::Violations(Some(Level::Must))),
            "violations.should" => Some(Figure::Violations(Some(Level::Should))),
            "violations.info" => Some(Figure::Violations(Some(Level::Info))),
            "connect.errors" => Some(Figure::ConnectErrors),
            "sent" => Some(Figure::Sent),
            "received" => Some(Figure::Received),
            _ => None,
        };
        if let Some(f) = fixed {
            return Ok(f);
        }
        let known_stats = || {
            let mut names: Vec<&str> = Stat::ALL.iter().map(|(n, _)| *n).collect();
            names.push("count");
            names.join(", ")
        };
        let Some((rest, last)) = name.rsplit_once('.') else {
            return Err(format!(
                "unknown figure `{name}`; expected <metric>.<statistic> (statistics: {}) or one of: {NAMED_FIGURES}",
                known_stats()
            ));
        };
        let (metric, raw) = match rest.strip_suffix(".raw") {
            Some(m) => (m, true),
            None => (rest, false),
        };
        if metric.is_empty() || metric.split('.').any(str::is_empty) {
            return Err(format!("`{name}` names no metric before `.{last}`"));
        }
        if last == "count" {
            if raw {
                return Err(format!(
                    "`{name}`: a metric's count is the same raw or not; write `{metric}.count`"
                ));
            }
            return Ok(Figure::Count {
                metric: metric.to_string(),
            });
        }
        match Stat::ALL.iter().find(|(n, _)| *n == last) {
            Some((_, stat)) => Ok(Figure::Latency {
                metric: metric.to_string(),
                raw,
                stat: *stat,
            }),
            None => Err(format!(
                "unknown statistic `{last}` in `{name}`; known statistics: {}",
                known_stats()
            )),
        }
    }

    pub fn unit(&self) -> Unit {
        match self {
            Figure::Latency { .. } => Unit::Ms,
            Figure::ConnectErrors => Unit::Percent,
            Figure::Count { .. } | Figure::Violations(_) | Figure::Sent | Figure::Received => {
                Unit::Count
            }
        }
    }

    /// The metric the figure reads, if any.
    pub fn metric(&self) -> Option<&str> {
        match self {
            Figure::Latency { metric, .. } | Figure::Count { metric } => Some(metric),
            _ => None,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    pub text: String,
    /// The figure's name as written (`message.fanout.p99`).
    pub figure: String,
    #[serde(skip)]
    pub kind: Figure,
    pub op: Op,
    /// In the figure's unit: milliseconds for latencies, percent for rates, plain counts.
    pub limit: f64,
}

/// A threshold's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub threshold: String,
    /// The figure's value; `None` when it has none (a latency metric without samples).
    pub actual: Option<f64>,
    /// The unit of `actual` and of the limit: `ms`, `%`, or `count`.
    pub unit: Unit,
    pub passed: bool,
}

/// A run stopped early by an `abort_on_fail` threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aborted {
    /// The threshold and its value when it failed.
    pub outcome: Outcome,
    /// Seconds from the start of the run to the check that failed.
    pub at_s: f64,
}

impl Outcome {
    /// `12.345 ms`, or `no samples`.
    pub fn actual_shown(&self) -> String {
        self.actual
            .map_or("no samples".to_string(), |a| self.unit.show(a))
    }
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (pos, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| text.find(sym).map(|p| (p, *sym, *op)))
            .min_by_key(|(p, sym, _)| (*p, std::cmp::Reverse(sym.len())))
            .ok_or("expected `<figure> <op> <value>` with op one of < <= > >= ==")?;
        let figure = text[..pos].trim();
        let value = text[pos + sym.len()..].trim();
        if figure.is_empty() {
            return Err("the figure name is missing".into());
        }
        let kind = Figure::parse(figure)?;
        let limit = parse_value(value, kind.unit())?;
        Ok(Threshold {
            text: text.trim().to_string(),
            figure: figure.to_string(),
            kind,
            op,
            limit,
        })
    }

    /// Whether the figure can be judged while the run goes on (`abort_on_fail`): a latency
    /// statistic, or a violation count held below a limit (a count only grows, so it can fail
    /// early but never pass early).
    pub fn checkable_during_run(&self) -> Result<(), String> {
        match &self.kind {
            Figure::Latency { .. } => Ok(()),
            Figure::Violations(_) if matches!(self.op, Op::Lt | Op::Le | Op::Eq) => Ok(()),
            Figure::Violations(_) => Err(format!(
                "`{}`: a violation count only grows, so only `<`, `<=` or `==` can fail during the run",
                self.text
            )),
            _ => Err(format!(
                "`{}`: abort_on_fail needs a figure that can be judged during the run: a latency statistic (e.g. message.fanout.p99) or a violation count",
                self.text
            )),
        }
    }

    /// Whether `actual` meets the threshold.
    pub fn holds(&self, actual: f64) -> bool {
        match self.op {
            Op::Lt => actual < self.limit,
            Op::Le => actual <= self.limit,
            Op::Gt => actual > self.limit,
            Op::Ge => actual >= self.limit,
            Op::Eq => (actual - self.limit).abs() < 1e-9,
        }
    }

    /// Evaluates against a run's figures (see `report::figures`). A latency metric without
    /// samples has no value and fails; a metric without samples counts 0.
    pub fn evaluate(&self, figures: &BTreeMap<String, f64>) -> Outcome {
        let actual = figures.get(&self.figure).copied().or(match self.kind {
            Figure::Count { .. } => Some(0.0),
            _ => None,
        });
        self.outcome(actual)
    }

    /// The outcome for a figure's value.
    pub fn outcome(&self, actual: Option<f64>) -> Outcome {
        Outcome {
            threshold: self.text.clone(),
            actual,
            unit: self.kind.unit(),
            passed: actual.is_some_and(|a| self.holds(a)),
        }
    }
}

/// The value of a figure while the run goes on, for the figures
/// [`Threshold::checkable_during_run`] admits; `None` while a metric has no sample.
pub fn live_value(figure: &Figure, metrics: &Metrics, oracle: &Oracle) -> Option<f64> {
    match figure {
        Figure::Latency { metric, raw, stat } => {
            let pair = metrics.merged_one(metric)?;
            Some(stat.of(&Summary::of(if *raw { &pair.raw } else { &pair.co })))
        }
        Figure::Violations(None) => Some(oracle.violation_count() as f64),
        Figure::Violations(Some(Level::Must)) => Some(oracle.must_count() as f64),
        Figure::Violations(Some(level)) => Some(
            oracle
                .tallies()
                .values()
                .filter(|t| t.level == Some(*level))
                .map(|t| t.count)
                .sum::<u64>() as f64,
        ),
        _ => None,
    }
}

/// Checks `checks` (each threshold with the delay before its first check) every second from
/// `start`, and returns the first that fails: the caller stops the run. Never returns while
/// they hold.
pub async fn watch(
    checks: Vec<(Threshold, Duration)>,
    metrics: &Metrics,
    oracle: &Oracle,
    start: tokio::time::Instant,
) -> Aborted {
    const EVERY: Duration = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(start + EVERY, EVERY);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        for (t, _) in checks.iter().filter(|(_, delay)| elapsed >= *delay) {
            let Some(actual) = live_value(&t.kind, metrics, oracle) else {
                continue;
            };
            if !t.holds(actual) {
                return Aborted {
                    outcome: t.outcome(Some(actual)),
                    at_s: elapsed.as_secs_f64(),
                };
            }
        }
    }
}

/// Parses a limit in the figure's unit: latencies take us/µs, ms (the default) or s; rates
/// take % (the default); counts take no unit.
fn parse_value(v: &str, unit: Unit) -> Result<f64, String> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| {
        format!("`{v}` is not a number with an optional unit (us, ms, s for latencies; % for connect.errors)")
    })?;
    if !n.is_finite() {
        return Err(format!("`{v}` is not a finite number"));
    }
    let suffix = suffix.trim();
    let scale = match (unit, suffix) {
        (Unit::Ms, "us" | "µs") => 1e-3,
        (Unit::Ms, "ms" | "") => 1.0,
        (Unit::Ms, "s") => 1e3,
        (Unit::Percent, "%" | "") => 1.0,
        (Unit::Count, "") => 1.0,
        (_, s) if !["us", "µs", "ms", "s", "%"].contains(&s) => {
            return Err(format!(
                "unknown unit `{s}` in `{v}`; known units: us, ms, s, %"
            ))
        }
        (Unit::Ms, s) => {
            return Err(format!(
                "`{v}`: a latency is a time; use us, ms or s, not `{s}`"
            ))
        }
        (Unit::Percent, s) => {
            return Err(format!(
                "`{v}`: connect.errors is a percentage of the planned clients; use %, not `{s}`"
            ))
        }
        (Unit::Count, s) => {
            return Err(format!(
                "`{v}`: this figure is a count and takes no unit (`{s}`)"
            ))
        }
    };
    Ok(n * scale)
}

/// The latency metrics a run of `spec` can record, by name: the connects, the generator's own
/// (`send.lateness`, `runtime.lag`), `heartbeat.close`, each delivery event's `fanout`, each
/// departure notice's `after-fault`, and per request (each operation, and each event a `send`
/// step emits, in `requests`) its replies, `error`, and `http` for an HTTP request.
pub fn known_metrics(spec: &DialectSpec, requests: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = [
        "connect",
        "reconnect",
        "send.lateness",
        "runtime.lag",
        "heartbeat.close",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let is_reply = |a: &Attribution| {
        matches!(
            a,
            Attribution::Reply | Attribution::KeptReply { .. } | Attribution::Greeting
        )
    };
    for e in spec.events.iter().filter(|e| !is_reply(&e.attribution)) {
        names.push(format!("{}.fanout", e.name));
    }
    if let Some(d) = spec.departure {
        for e in [d.each_room, d.everyone].into_iter().flatten() {
            names.push(format!("{e}.after-fault"));
        }
    }
    let replies: Vec<&str> = spec
        .events
        .iter()
        .filter(|e| is_reply(&e.attribution))
        .map(|e| e.name)
        .collect();
    let ops = spec
        .ops
        .iter()
        .map(|o| (o.name, matches!(o.via, Via::Http { .. })));
    let sends = requests.iter().map(|r| (*r, false));
    for (request, http) in ops.chain(sends) {
        for reply in &replies {
            names.push(format!("{request}.{reply}"));
        }
        names.push(format!("{request}.error"));
        if http {
            names.push(format!("{request}.http"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Checks the metric a threshold names against the known ones; the error lists them and
/// suggests the nearest.
pub fn check_metric(t: &Threshold, known: &[String], dialect: &str) -> Result<(), String> {
    let Some(metric) = t.kind.metric() else {
        return Ok(());
    };
    if known.iter().any(|k| k == metric) {
        return Ok(());
    }
    let nearest = known
        .iter()
        .map(|k| (edit_distance(k, metric), k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .map_or(String::new(), |(_, k)| format!("did you mean `{k}`? "));
    Err(format!(
        "`{}`: dialect `{dialect}` has no metric `{metric}`; {nearest}known metrics: {}",
        t.text,
        known.join(", ")
    ))
}

/// Levenshtein distance, for suggesting the metric a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let t = Threshold::parse("message.fanout.p99 < 50ms").unwrap();
        assert_eq!(t.figure, "message.fanout.p99");
        assert_eq!(t.limit, 50.0);
        let mut f = BTreeMap::new();
        f.insert("message.fanout.p99".to_string(), 12.0);
        assert!(t.evaluate(&f).passed);
        f.insert("message.fanout.p99".to_string(), 60.0);
        assert!(!t.evaluate(&f).passed);
        assert_eq!(Threshold::parse("violations <= 0").unwrap().op, Op::Le);
        assert_eq!(Threshold::parse("connect.errors < 1%").unwrap().limit, 1.0);
        assert_eq!(Threshold::parse("x.y.p99 < 1s").unwrap().limit, 1000.0);
        assert_eq!(Threshold::parse("x.y.p99 < 250us").unwrap().limit, 0.25);
        let missing = Threshold::parse("missing.figure.p50 < 1")
            .unwrap()
            .evaluate(&f);
        assert!(!missing.passed);
        assert_eq!(missing.actual_shown(), "no samples");
        // A metric without samples counts none.
        let none = Threshold::parse("missing.figure.count == 0")
            .unwrap()
            .evaluate(&f);
        assert!(none.passed, "{none:?}");
    }

    #[test]
    fn figures_name_their_statistic_and_unit() {
        for (text, unit) in [
            ("message.fanout.p95 < 5ms", Unit::Ms),
            ("message.fanout.p75 < 5ms", Unit::Ms),
            ("message.fanout.raw.p95 < 5ms", Unit::Ms),
            ("message.fanout.count == 16", Unit::Count),
            ("violations.should == 0", Unit::Count),
            ("connect.errors < 1%", Unit::Percent),
        ] {
            let t = Threshold::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.kind.unit(), unit, "{text}");
        }
        let t = Threshold::parse("message.fanout.raw.p95 < 5ms").unwrap();
        assert_eq!(
            t.kind,
            Figure::Latency {
                metric: "message.fanout".into(),
                raw: true,
                stat: Stat::P95
            }
        );
        assert_eq!(
            t.outcome(Some(1.5)).actual_shown(),
            "1.500 ms",
            "the actual value shows its unit"
        );
    }

    #[test]
    fn rejects_unknown_statistics_and_units() {
        for (text, says) in [
            ("message.fanout.p98 < 5ms", "unknown statistic `p98`"),
            ("message.fanout < 5ms", "unknown statistic `fanout`"),
            ("message.fanout.p99 < 5msec", "unknown unit `msec`"),
            ("message.fanout.p99 < 5%", "a latency is a time"),
            ("violations < 5ms", "takes no unit"),
            ("connect.errors < 5s", "percentage"),
            ("latency < 5", "unknown figure `latency`"),
            (".p99 < 5", "names no metric"),
        ] {
            let err = Threshold::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let err = Threshold::parse("message.fanout.p98 < 5ms").unwrap_err();
        assert!(err.contains("p95") && err.contains("p75"), "{err}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Threshold::parse("p99 fast").is_err());
        assert!(Threshold::parse("< 5").is_err());
        assert!(Threshold::parse("a.p99 < lots").is_err());
    }

    #[test]
    fn only_figures_known_during_the_run_can_abort_it() {
        for ok in [
            "message.fanout.p99 < 5ms",
            "violations == 0",
            "violations.must < 3",
        ] {
            assert!(
                Threshold::parse(ok).unwrap().checkable_during_run().is_ok(),
                "{ok}"
            );
        }
        for bad in ["violations > 2", "sent > 10", "message.fanout.count == 16"] {
            assert!(
                Threshold::parse(bad)
                    .unwrap()
                    .checkable_during_run()
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn metrics_are_checked_against_the_dialect() {
        let dorm = crate::dialect::spec("dorm");
        let known = known_metrics(dorm, &[]);
        for name in [
            "message.fanout",
            "action.fanout",
            "join_room.last_data",
            "action.error",
            "connect",
            "send.lateness",
        ] {
            assert!(known.iter().any(|k| k == name), "{name} in {known:?}");
        }
        assert!(
            !known.iter().any(|k| k == "last_data.fanout"),
            "a reply fans out to no room"
        );
        let typo = Threshold::parse("mesage.fanout.p99 < 250ms").unwrap();
        let err = check_metric(&typo, &known, "dorm").unwrap_err();
        assert!(err.contains("did you mean `message.fanout`"), "{err}");
        assert!(
            err.contains("join_room.last_data"),
            "lists the known names: {err}"
        );
        assert!(check_metric(
            &Threshold::parse("violations == 0").unwrap(),
            &known,
            "dorm"
        )
        .is_ok());
        // A `send` step's event has error and reply metrics too.
        let with_send = known_metrics(dorm, &["hello"]);
        assert!(with_send.iter().any(|k| k == "hello.error"));
        let lobby = known_metrics(crate::dialect::spec("lobby"), &[]);
        for name in [
            "otherLogedout.after-fault",
            "login.logedin",
            "gotRoomMessage.fanout",
        ] {
            assert!(lobby.iter().any(|k| k == name), "{name} in {lobby:?}");
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("mesage", "message"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
