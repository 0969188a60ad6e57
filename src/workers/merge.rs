//! What a worker leaves in its directory for the parent, and the lossless merge of those parts
//! into one [`RunResult`] that the ordinary report code presents.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::driver::{OpLog, RunResult, TRANSCRIPTS_KEPT};
use crate::metrics::Pair;
use crate::oracle::{RuleTally, EXAMPLES_PER_RULE};
use crate::report::SummaryFile;
use crate::resources::Usage;
use crate::scenario::Scenario;

/// The file a worker writes next to its `summary.json` and `histograms.hlog`.
pub const PART_FILE: &str = "worker.json";

/// A worker's results in raw form (the histograms are in its `histograms.hlog`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Part {
    pub worker: u32,
    pub workers: u32,
    pub target: String,
    pub source_addr: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub duration_us: u64,
    pub interrupted: bool,
    pub overloaded: bool,
    pub planned_clients: u64,
    pub users_available: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub unexpected_closes: u64,
    pub sent: u64,
    pub received: u64,
    pub violations: BTreeMap<String, RuleTally>,
    pub usage_before: Usage,
    pub usage_after: Usage,
    pub transcripts: Vec<(u32, String, Vec<String>)>,
    pub op_log: Option<OpLog>,
    /// The worker's own verdict on its share (`invalid` makes the merged run invalid).
    pub status: String,
    pub exit_code: i32,
    pub reasons: Vec<String>,
}

impl Part {
    pub fn of(
        result: &RunResult,
        summary: &SummaryFile,
        share: &super::WorkerShare,
        source_addr: Option<std::net::IpAddr>,
    ) -> Part {
        Part {
            worker: share.index,
            workers: share.count,
            target: result.target.clone(),
            source_addr: source_addr.map(|a| a.to_string()),
            started_at: result.started_at.to_rfc3339(),
            duration_us: result.duration.as_micros() as u64,
            interrupted: result.interrupted,
            overloaded: result.overloaded,
            planned_clients: result.planned_clients,
            users_available: result.users_available,
            connected: result.connected,
            connect_errors: result.connect_errors,
            unexpected_closes: result.unexpected_closes,
            sent: result.sent,
            received: result.received,
            violations: result.violations.clone(),
            usage_before: result.usage_before,
            usage_after: result.usage_after,
            transcripts: result.transcripts.clone(),
            op_log: result.op_log.clone(),
            status: summary.verdict.status.to_string(),
            exit_code: summary.verdict.exit_code,
            reasons: summary.verdict.reasons.clone(),
        }
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(PART_FILE), json)
    }

    pub fn read(dir: &Path) -> std::io::Result<Part> {
        let text = std::fs::read(dir.join(PART_FILE))?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}

/// Reads an HdrHistogram interval log (V2, deflate or not): every interval's histogram by tag,
/// intervals of one tag added together.
pub fn read_hlog(path: &Path) -> std::io::Result<BTreeMap<String, Histogram<u64>>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let bytes = std::fs::read(path)?;
    let bad = |what: String| std::io::Error::other(format!("{}: {what}", path.display()));
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.map_err(|e| bad(format!("{e:?}")))? else {
            continue;
        };
        let tag = interval
            .tag()
            .map(|t| t.as_str().to_string())
            .ok_or_else(|| bad("an interval without a tag".into()))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| bad(e.to_string()))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut std::io::Cursor::new(raw))
            .map_err(|e| bad(format!("{e:?}")))?;
        match out.get_mut(&tag) {
            Some(sum) => sum.add(&h).map_err(|e| bad(format!("{e:?}")))?,
            None => {
                out.insert(tag, h);
            }
        }
    }
    Ok(out)
}

/// A log's histograms as metric pairs (`<metric>.co` and `<metric>.raw`).
pub fn metric_pairs(tags: BTreeMap<String, Histogram<u64>>) -> BTreeMap<String, Pair> {
    type Halves = (Option<Histogram<u64>>, Option<Histogram<u64>>);
    let mut halves: BTreeMap<String, Halves> = BTreeMap::new();
    for (tag, h) in tags {
        if let Some(name) = tag.strip_suffix(".co") {
            halves.entry(name.to_string()).or_default().0 = Some(h);
        } else if let Some(name) = tag.strip_suffix(".raw") {
            halves.entry(name.to_string()).or_default().1 = Some(h);
        }
    }
    halves
        .into_iter()
        .filter_map(|(name, halves)| {
            let pair = match halves {
                (Some(co), Some(raw)) => Pair { co, raw },
                (Some(co), None) => Pair {
                    raw: Histogram::new_from(&co),
                    co,
                },
                (None, Some(raw)) => Pair {
                    co: Histogram::new_from(&raw),
                    raw,
                },
                (None, None) => return None,
            };
            Some((name, pair))
        })
        .collect()
}

/// Adds `from`'s histograms into `into`, metric by metric (lossless: HdrHistogram `add`).
pub fn add_metrics(
    into: &mut BTreeMap<String, Pair>,
    from: BTreeMap<String, Pair>,
) -> Result<(), String> {
    for (name, pair) in from {
        match into.get_mut(&name) {
            Some(sum) => {
                sum.co.add(&pair.co).map_err(|e| format!("{name}: {e:?}"))?;
                sum.raw
                    .add(&pair.raw)
                    .map_err(|e| format!("{name}: {e:?}"))?;
            }
            None => {
                into.insert(name, pair);
            }
        }
    }
    Ok(())
}

/// Adds violation tallies by rule id: counts summed, the earliest examples kept.
pub fn add_tallies(into: &mut BTreeMap<String, RuleTally>, from: BTreeMap<String, RuleTally>) {
    for (rule, t) in from {
        let sum = into.entry(rule).or_insert_with(|| RuleTally {
            level: t.level,
            source: t.source.clone(),
            reason: t.reason.clone(),
            count: 0,
            examples: Vec::new(),
        });
        // The most severe level of any worker's (a request may cap its own violations).
        if t.level.is_some_and(|l| sum.level.is_none_or(|s| l < s)) {
            sum.level = t.level;
            sum.source = t.source.clone();
        }
        sum.count += t.count;
        sum.examples.extend(t.examples);
        sum.examples
            .sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms).then(a.client.cmp(&b.client)));
        sum.examples.truncate(EXAMPLES_PER_RULE);
    }
}

/// What the parent knows beyond the parts.
pub struct Context {
    pub scenario: Arc<Scenario>,
    pub target: String,
    pub embedded: bool,
    pub eio: crate::protocol::EioVersion,
    pub eio_detected: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub interrupted: bool,
    pub users_file: Option<std::path::PathBuf>,
    pub max_lateness: Duration,
    pub op_log: bool,
}

/// Merges the parts (with each part's metrics) into the result of the whole run.
pub fn merge(
    ctx: Context,
    parts: Vec<(Part, BTreeMap<String, Pair>)>,
) -> Result<RunResult, String> {
    let mut r = RunResult {
        seed: ctx.scenario.seed,
        scenario: ctx.scenario,
        target: ctx.target,
        embedded: ctx.embedded,
        eio: ctx.eio,
        eio_detected: ctx.eio_detected,
        started_at: ctx.started_at,
        duration: Duration::ZERO,
        interrupted: ctx.interrupted,
        overloaded: false,
        aborted: None,
        users_file: ctx.users_file,
        planned_clients: 0,
        users_available: 0,
        connected: 0,
        connect_errors: 0,
        unexpected_closes: 0,
        sent: 0,
        received: 0,
        metrics: BTreeMap::new(),
        violations: BTreeMap::new(),
        max_lateness: ctx.max_lateness,
        usage_before: Usage::default(),
        usage_after: Usage::default(),
        op_log: ctx.op_log.then(Vec::new),
        transcripts: Vec::new(),
    };
    let mut earliest: Option<chrono::DateTime<chrono::Utc>> = None;
    for (p, metrics) in parts {
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&p.started_at) {
            let at = at.with_timezone(&chrono::Utc);
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
        r.duration = r.duration.max(Duration::from_micros(p.duration_us));
        r.interrupted |= p.interrupted;
        r.overloaded |= p.overloaded;
        r.planned_clients += p.planned_clients;
        r.users_available = r.users_available.max(p.users_available);
        r.connected += p.connected;
        r.connect_errors += p.connect_errors;
        r.unexpected_closes += p.unexpected_closes;
        r.sent += p.sent;
        r.received += p.received;
        add_metrics(&mut r.metrics, metrics)?;
        add_tallies(&mut r.violations, p.violations);
        add_usage(&mut r.usage_before, &p.usage_before);
        add_usage(&mut r.usage_after, &p.usage_after);
        if let (Some(all), Some(log)) = (r.op_log.as_mut(), p.op_log) {
            all.extend(log);
        }
        r.transcripts.extend(p.transcripts);
    }
    if let Some(e) = earliest {
        r.started_at = e;
    }
    if let Some(log) = r.op_log.as_mut() {
        log.sort_by_key(|(client, _)| *client);
    }
    r.transcripts.sort_by_key(|(client, _, _)| *client);
    r.transcripts.truncate(TRANSCRIPTS_KEPT);
    Ok(r)
}

/// Resource use of several processes: CPU and memory summed (the peak is the sum of each
/// process's peak, an upper bound of the simultaneous one).
fn add_usage(into: &mut Usage, u: &Usage) {
    into.cpu_user_s += u.cpu_user_s;
    into.cpu_sys_s += u.cpu_sys_s;
    into.rss_bytes += u.rss_bytes;
    into.peak_rss_bytes += u.peak_rss_bytes;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::rules::Level;
    use crate::oracle::Violation;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn metrics_add_losslessly() {
        let mut a = BTreeMap::from([(
            "m".to_string(),
            Pair {
                co: hist(&[10, 20]),
                raw: hist(&[5]),
            },
        )]);
        let b = BTreeMap::from([
            (
                "m".to_string(),
                Pair {
                    co: hist(&[30]),
                    raw: hist(&[6, 7]),
                },
            ),
            (
                "n".to_string(),
                Pair {
                    co: hist(&[1]),
                    raw: hist(&[1]),
                },
            ),
        ]);
        add_metrics(&mut a, b).unwrap();
        assert_eq!(a["m"].co.len(), 3);
        assert_eq!(a["m"].raw.len(), 3);
        assert_eq!(a["m"].co.max(), hist(&[30]).max());
        assert_eq!(a["n"].co.len(), 1);
    }

    #[test]
    fn tallies_sum_and_keep_the_earliest_examples() {
        let example = |at: f64| Violation {
            rule: "dorm/message/missing".into(),
            level: Level::Must,
            source: String::new(),
            client: at as u32,
            user: "u".into(),
            at_ms: at,
            expected: String::new(),
            received: String::new(),
            transcript: Vec::new(),
        };
        let tally = |count, ats: &[f64]| RuleTally {
            level: Some(Level::Must),
            source: String::new(),
            reason: "r".into(),
            count,
            examples: ats.iter().map(|&a| example(a)).collect(),
        };
        let mut all = BTreeMap::new();
        add_tallies(
            &mut all,
            BTreeMap::from([("x".to_string(), tally(9, &[5.0, 6.0, 7.0, 8.0, 9.0]))]),
        );
        add_tallies(
            &mut all,
            BTreeMap::from([("x".to_string(), tally(2, &[1.0, 10.0]))]),
        );
        assert_eq!(all["x"].count, 11);
        let ats: Vec<f64> = all["x"].examples.iter().map(|e| e.at_ms).collect();
        assert_eq!(ats, vec![1.0, 5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn hlog_round_trips_through_the_report_writer_format() {
        use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
        use hdrhistogram::serialization::V2DeflateSerializer;
        let dir = std::env::temp_dir().join(format!("rr-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.hlog");
        let (co, raw) = (hist(&[100, 200, 300_000]), hist(&[50]));
        let mut buf = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("test")
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut buf, &mut ser)
            .unwrap();
        for (tag, h) in [("m.co", &co), ("m.raw", &raw)] {
            w.write_histogram(h, Duration::ZERO, Duration::from_secs(1), Tag::new(tag))
                .unwrap();
        }
        std::fs::write(&path, &buf).unwrap();
        let pairs = metric_pairs(read_hlog(&path).unwrap());
        assert_eq!(pairs["m"].co, co);
        assert_eq!(pairs["m"].raw, raw);
        std::fs::remove_dir_all(&dir).ok();
    }
}
