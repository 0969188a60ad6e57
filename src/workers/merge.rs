//! What a worker leaves in its directory for the parent (its [`RunResult`]), and the lossless
//! merge of those results into the one [`RunResult`] that the ordinary report code presents.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::driver::{RunResult, TRANSCRIPTS_KEPT};
use crate::metrics::Pair;
use crate::oracle::{RuleTally, EXAMPLES_PER_RULE};
use crate::resources::Usage;

/// The file a worker writes next to its `summary.json` and `histograms.hlog`: its
/// [`RunResult`] as JSON.
pub const PART_FILE: &str = "worker.json";

/// Writes a worker's result for the parent into its directory.
pub fn write_result(result: &RunResult, dir: &Path) -> std::io::Result<()> {
    let json = serde_json::to_vec(result).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(PART_FILE), json)
}

/// Reads back the result a worker wrote into its directory.
pub fn read_result(dir: &Path) -> std::io::Result<RunResult> {
    let text = std::fs::read(dir.join(PART_FILE))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
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

/// What the parent knows beyond the workers' results.
pub struct Context {
    pub seed: u64,
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

/// Merges the workers' results into the result of the whole run.
pub fn merge(ctx: Context, parts: Vec<RunResult>) -> Result<RunResult, String> {
    let mut r = RunResult {
        seed: ctx.seed,
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
        fixture_mismatch: None,
        bytes_sent: 0,
        bytes_received: 0,
        sent_by_op: BTreeMap::new(),
        intervals: BTreeMap::new(),
        timeline: Default::default(),
    };
    let mut earliest: Option<chrono::DateTime<chrono::Utc>> = None;
    for p in parts {
        earliest = Some(earliest.map_or(p.started_at, |e| e.min(p.started_at)));
        r.duration = r.duration.max(p.duration);
        r.interrupted |= p.interrupted;
        r.fixture_mismatch = r.fixture_mismatch.or(p.fixture_mismatch);
        r.bytes_sent += p.bytes_sent;
        r.bytes_received += p.bytes_received;
        for (op, n) in p.sent_by_op {
            *r.sent_by_op.entry(op).or_default() += n;
        }
        r.overloaded |= p.overloaded;
        r.planned_clients += p.planned_clients;
        r.users_available = r.users_available.max(p.users_available);
        r.connected += p.connected;
        r.connect_errors += p.connect_errors;
        r.unexpected_closes += p.unexpected_closes;
        r.sent += p.sent;
        r.received += p.received;
        add_metrics(&mut r.metrics, p.metrics)?;
        // Every worker counts seconds from the one start the parent gave them all.
        crate::metrics::add_intervals(&mut r.intervals, p.intervals);
        r.timeline.add(&p.timeline);
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

    /// A worker's result: `clients` connected, each sent one message, all with one latency.
    fn share(clients: u64, latency_us: u64, at: &str) -> RunResult {
        RunResult {
            target: "http://127.0.0.1:1".into(),
            embedded: false,
            eio: crate::protocol::EioVersion::V4,
            eio_detected: None,
            seed: 7,
            started_at: chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&chrono::Utc),
            duration: Duration::from_millis(1500),
            interrupted: false,
            overloaded: false,
            aborted: None,
            users_file: None,
            planned_clients: clients,
            users_available: 100,
            connected: clients,
            connect_errors: 0,
            unexpected_closes: 0,
            sent: clients,
            received: clients * clients,
            metrics: BTreeMap::from([(
                "message.fanout".to_string(),
                Pair {
                    co: hist(&vec![latency_us; clients as usize]),
                    raw: hist(&[latency_us]),
                },
            )]),
            violations: BTreeMap::new(),
            max_lateness: Duration::from_millis(100),
            usage_before: Usage::default(),
            usage_after: Usage {
                cpu_user_s: 1.0,
                cpu_sys_s: 0.5,
                rss_bytes: 1 << 20,
                peak_rss_bytes: 2 << 20,
            },
            op_log: Some(vec![(clients as u32, vec!["join_room".into()])]),
            transcripts: Vec::new(),
            fixture_mismatch: None,
            bytes_sent: clients * 100,
            bytes_received: clients * 1000,
            sent_by_op: BTreeMap::from([("message".to_string(), clients)]),
            intervals: BTreeMap::new(),
            timeline: Default::default(),
        }
    }

    #[test]
    fn a_worker_result_reads_back_as_it_was_written() {
        let dir = std::env::temp_dir().join(format!("rr-part-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = share(3, 1200, "2024-05-06T07:08:09.123456Z");
        write_result(&written, &dir).unwrap();
        let read = read_result(&dir).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&written).unwrap()
        );
        assert_eq!(read.started_at, written.started_at);
        assert_eq!(
            read.metrics["message.fanout"].co,
            written.metrics["message.fanout"].co
        );
        assert!(read_result(Path::new("/nonexistent-roomrig-dir")).is_err());
    }

    #[test]
    fn results_merge_into_the_whole_run() {
        let ctx = Context {
            seed: 7,
            target: "a, b".into(),
            embedded: true,
            eio: crate::protocol::EioVersion::V4,
            eio_detected: None,
            started_at: chrono::Utc::now(),
            interrupted: false,
            users_file: None,
            max_lateness: Duration::from_millis(100),
            op_log: true,
        };
        let r = merge(
            ctx,
            vec![
                share(2, 1000, "2024-05-06T07:08:10Z"),
                share(3, 5000, "2024-05-06T07:08:09Z"),
            ],
        )
        .unwrap();
        assert_eq!((r.connected, r.sent, r.received), (5, 5, 13));
        assert_eq!((r.bytes_sent, r.bytes_received), (500, 5000));
        assert_eq!(r.sent_by_op["message"], 5);
        assert_eq!(r.metrics["message.fanout"].co.len(), 5);
        assert_eq!(r.metrics["message.fanout"].raw.len(), 2);
        assert_eq!(r.started_at.to_rfc3339(), "2024-05-06T07:08:09+00:00");
        assert_eq!(r.usage_after.peak_rss_bytes, 4 << 20);
        let clients: Vec<u32> = r.op_log.unwrap().iter().map(|(c, _)| *c).collect();
        assert_eq!(clients, vec![2, 3]);
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
        let tags = read_hlog(&path).unwrap();
        assert_eq!(tags["m.co"], co);
        assert_eq!(tags["m.raw"], raw);
        std::fs::remove_dir_all(&dir).ok();
    }
}
