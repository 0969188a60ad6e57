//! `histograms.hlog`: the run's latency histograms as an HdrHistogram interval log (V2,
//! deflate, values in µs, max column in ms), one interval per second per tag. Tags are
//! `<metric>.co` (from the intended send time) and `<metric>.raw` (from the actual write); a
//! metric has an interval for each second in which it had samples, starting at that second
//! (since the run's start, the log's base time) and one second long, the last one ending with
//! the run. HdrHistogram's own tools read it (`HistogramLogProcessor -tag message.fanout.co`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::metrics::{Intervals, Sparse};

/// One interval of the log.
pub struct Interval {
    pub tag: String,
    /// Since the log's base time (the run's start), in seconds.
    pub start_s: f64,
    pub length_s: f64,
    pub histogram: Histogram<u64>,
}

/// Writes the intervals of a run that started at `started_at` and lasted `duration`.
pub fn write(
    intervals: &Intervals,
    started_at: chrono::DateTime<chrono::Utc>,
    duration: Duration,
    scenario_name: &str,
    path: &Path,
) -> std::io::Result<()> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut buf = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let start: std::time::SystemTime = started_at.into();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "roomrig {} run of {scenario_name}",
            env!("CARGO_PKG_VERSION"),
        ))
        .add_comment(
            "values in microseconds; tags <metric>.co (from intended send) and <metric>.raw; one interval per second with samples",
        )
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut buf, &mut serializer)?;
    // In time order, as interval logs are read; within a second, by tag.
    let mut lines: Vec<(u64, String, &Sparse)> = Vec::new();
    for (name, seconds) in intervals {
        for (second, pair) in seconds {
            // Both variants, so a tag is in the log whenever its metric is (readers find
            // `<metric>.raw` of a metric measured from the intended time only, empty).
            for (variant, h) in [("co", &pair.co), ("raw", &pair.raw)] {
                lines.push((*second, format!("{name}.{variant}"), h));
            }
        }
    }
    lines.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut h = crate::metrics::empty_histogram();
    for (second, tag, sparse) in lines {
        sparse.fill(&mut h);
        let from = Duration::from_secs(second);
        // The last second ends with the run; a sample at the very end still gets a moment.
        let length = duration
            .saturating_sub(from)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(1));
        writer
            .write_histogram(&h, from, length, Tag::new(&tag))
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    std::fs::File::create(path)?.write_all(&buf)
}

/// Reads an interval log (V2, deflate or not): every interval, in file order.
pub fn read(path: &Path) -> std::io::Result<Vec<Interval>> {
    let bytes = std::fs::read(path)?;
    parse(&bytes).map_err(|what| std::io::Error::other(format!("{}: {what}", path.display())))
}

/// Parses the text of an interval log.
pub fn parse(bytes: &[u8]) -> Result<Vec<Interval>, String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let mut out = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let LogEntry::Interval(interval) = entry.map_err(|e| format!("{e:?}"))? else {
            continue;
        };
        let tag = interval
            .tag()
            .map(|t| t.as_str().to_string())
            .ok_or("an interval without a tag")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| format!("interval {tag}: {e}"))?;
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut std::io::Cursor::new(raw))
            .map_err(|e| format!("interval {tag}: {e:?}"))?;
        out.push(Interval {
            tag,
            start_s: interval.start_timestamp().as_secs_f64(),
            length_s: interval.duration().as_secs_f64(),
            histogram,
        });
    }
    Ok(out)
}

/// Intervals by tag, in time order.
pub fn by_tag(intervals: Vec<Interval>) -> BTreeMap<String, Vec<Interval>> {
    let mut out: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
    for i in intervals {
        out.entry(i.tag.clone()).or_default().push(i);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SparsePair;

    #[test]
    fn one_interval_per_second_with_samples_reads_back_losslessly() {
        let sparse = |values: &[u64]| {
            let mut h = crate::metrics::empty_histogram();
            for &v in values {
                h.record(v).unwrap();
            }
            Sparse::of(&h)
        };
        let pair = |co: &[u64], raw: &[u64]| SparsePair {
            co: sparse(co),
            raw: sparse(raw),
        };
        let intervals: Intervals = BTreeMap::from([
            (
                "message.fanout".to_string(),
                vec![
                    (0, pair(&[900, 1100], &[800])),
                    (2, pair(&[5_000], &[4_000])),
                ],
            ),
            ("join_room.reply".to_string(), vec![(0, pair(&[300], &[]))]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.hlog");
        let at = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        write(&intervals, at, Duration::from_millis(2500), "t", &path).unwrap();
        let tags = by_tag(read(&path).unwrap());
        let fanout = &tags["message.fanout.co"];
        let starts: Vec<f64> = fanout.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, [0.0, 2.0]);
        assert_eq!(fanout[1].length_s, 0.5);
        assert_eq!(
            fanout[0].histogram,
            intervals["message.fanout"][0].1.co.histogram()
        );
        // A second of a metric has both tags, one of them empty here.
        assert!(tags["join_room.reply.raw"][0].histogram.is_empty());
        assert_eq!(tags["join_room.reply.co"].len(), 1);
        // The merge's reader adds a tag's intervals up.
        let sums = crate::workers::read_hlog(&path).unwrap();
        assert_eq!(sums["message.fanout.co"].len(), 3);
        assert!(parse(b"Tag=x,0.0,1.0,1.0,!!!\n").is_err());
    }
}
