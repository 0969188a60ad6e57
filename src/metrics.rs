//! Latency histograms, shared per worker thread rather than per client (one 1 µs–60 s
//! histogram at 3 significant figures is ~136 KiB), merged losslessly at the end.
//!
//! Each metric keeps two histograms: `co`, from the *intended* time of the open-loop schedule
//! (coordinated-omission correct: a stalled sender cannot hide latency), and `raw`, from the
//! moment the bytes were actually written.
//!
//! Besides the whole run, each shard keeps the second it is in: when a sample falls in a later
//! second, the closed second's histograms are kept as [`Sparse`] (their non-empty buckets, a
//! few hundred bytes where a full histogram is ~136 KiB), so `histograms.hlog` can hold one
//! interval per second per metric. A sample belongs to the second in which it was recorded.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::oracle::lock;

/// Highest trackable latency: 60 s, in microseconds.
const HIGHEST_US: u64 = 60_000_000;

/// A pair of histograms for one metric.
#[derive(Clone)]
pub struct Pair {
    pub co: Histogram<u64>,
    pub raw: Histogram<u64>,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            co: empty_histogram(),
            raw: empty_histogram(),
        }
    }
    /// A pair that grows with the largest value it holds (the same buckets as [`Pair::new`]'s,
    /// where most seconds need a fraction of the 60 s range).
    fn growing() -> Pair {
        let h = || Histogram::new(3).expect("valid precision");
        Pair { co: h(), raw: h() }
    }

    fn add(&mut self, other: &Pair) {
        self.co.add(&other.co).expect("same bounds");
        self.raw.add(&other.raw).expect("same bounds");
    }
}

/// A pair travels (from a worker to its parent) as its two histograms in the HdrHistogram V2
/// deflate encoding, base64: lossless, and the encoding `histograms.hlog` uses.
#[derive(Serialize, Deserialize)]
struct EncodedPair {
    co: String,
    raw: String,
}

impl Serialize for Pair {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let encoded = EncodedPair {
            co: encode(&self.co).map_err(S::Error::custom)?,
            raw: encode(&self.raw).map_err(S::Error::custom)?,
        };
        encoded.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let encoded = EncodedPair::deserialize(d)?;
        Ok(Pair {
            co: decode(&encoded.co).map_err(D::Error::custom)?,
            raw: decode(&encoded.raw).map_err(D::Error::custom)?,
        })
    }
}

fn encode(h: &Histogram<u64>) -> Result<String, String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("cannot encode a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn decode(text: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("a histogram is not base64: {e}"))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("cannot decode a histogram: {e:?}"))
}

/// A metric's name in two static parts, joined with a dot in reports (`message` + `fanout`):
/// recording never formats or allocates a name.
pub type MetricKey = (&'static str, &'static str);

/// The report name of a metric key.
pub fn metric_name((a, b): MetricKey) -> String {
    if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// All metrics of a run, sharded by worker thread.
pub struct Metrics {
    /// A handful of metrics per shard: a vector searched by the keys' addresses first (the
    /// keys are static strings) beats a map that compares strings.
    shards: Box<[Mutex<Shard>]>,
    /// Second 0 of the intervals.
    start: std::time::Instant,
}

/// One worker's metrics.
#[derive(Default)]
struct Shard {
    /// The second (since `start`) that the entries' `current` histograms cover.
    second: u64,
    entries: Vec<Entry>,
}

/// One metric of a shard.
struct Entry {
    key: MetricKey,
    /// The whole run so far.
    total: Pair,
    /// The shard's current second (growing histograms: one per metric and shard beside the
    /// whole run's would otherwise double their memory).
    current: Pair,
    /// The closed seconds with samples, in order.
    closed: Vec<(u64, SparsePair)>,
}

impl Shard {
    /// Keeps the current second's histograms and starts `second`.
    fn move_to(&mut self, second: u64) {
        for e in &mut self.entries {
            if !e.current.co.is_empty() || !e.current.raw.is_empty() {
                e.closed.push((self.second, SparsePair::of(&e.current)));
                e.current.co.reset();
                e.current.raw.reset();
            }
        }
        self.second = second;
    }
}

fn same_key(a: MetricKey, b: MetricKey) -> bool {
    (std::ptr::eq(a.0, b.0) && std::ptr::eq(a.1, b.1)) || a == b
}

static NEXT_THREAD_SLOT: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static THREAD_SLOT: Cell<usize> = Cell::new(NEXT_THREAD_SLOT.fetch_add(1, Ordering::Relaxed));
}

impl Metrics {
    /// `workers` shards: one per runtime worker thread is uncontended. Intervals count from
    /// now.
    #[cfg(test)]
    pub fn new(workers: usize) -> Metrics {
        Metrics::starting_at(workers, std::time::Instant::now())
    }

    /// As [`Metrics::new`], with second 0 of the intervals at `start` (the run's schedule
    /// start; samples before it fall in second 0).
    pub fn starting_at(workers: usize, start: std::time::Instant) -> Metrics {
        Metrics {
            shards: (0..workers.max(1))
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            start,
        }
    }

    /// Records one sample in microseconds: from the intended time (`co`) and the actual send
    /// time (`raw`). Values are clamped into the histogram's range.
    pub fn record(&self, metric: MetricKey, co_us: u64, raw_us: u64) {
        let slot = THREAD_SLOT.with(Cell::get) % self.shards.len();
        let mut shard = lock(&self.shards[slot]);
        // Read under the lock: the shard's seconds only go forward.
        let second = self.start.elapsed().as_secs();
        if second > shard.second {
            shard.move_to(second);
        }
        let i = match shard.entries.iter().position(|e| same_key(e.key, metric)) {
            Some(i) => i,
            None => {
                shard.entries.push(Entry {
                    key: metric,
                    total: Pair::new(),
                    current: Pair::growing(),
                    closed: Vec::new(),
                });
                shard.entries.len() - 1
            }
        };
        let e = &mut shard.entries[i];
        let (co, raw) = (co_us.clamp(1, HIGHEST_US), raw_us.clamp(1, HIGHEST_US));
        e.total.co.saturating_record(co);
        e.total.raw.saturating_record(raw);
        e.current.co.saturating_record(co);
        e.current.raw.saturating_record(raw);
    }

    /// Every metric's seconds with samples, merged across shards (see [`Intervals`]).
    pub fn intervals(&self) -> Intervals {
        let mut by_second: BTreeMap<String, BTreeMap<u64, SparsePair>> = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for e in &shard.entries {
                let seconds = by_second.entry(metric_name(e.key)).or_default();
                for (second, pair) in &e.closed {
                    seconds.entry(*second).or_default().add(pair);
                }
                if !e.current.co.is_empty() || !e.current.raw.is_empty() {
                    seconds
                        .entry(shard.second)
                        .or_default()
                        .add(&SparsePair::of(&e.current));
                }
            }
        }
        by_second
            .into_iter()
            .map(|(name, seconds)| (name, seconds.into_iter().collect()))
            .collect()
    }

    /// Every metric's histograms of `second` (since the run's start), merged across shards:
    /// complete once that second is over (a shard records only into its current second). The
    /// live endpoint reads each second once, instead of merging whole-run histograms.
    pub fn second(&self, second: u64) -> BTreeMap<String, SparsePair> {
        let mut out: BTreeMap<String, SparsePair> = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for e in &shard.entries {
                let pair = if shard.second == second {
                    (!e.current.co.is_empty() || !e.current.raw.is_empty())
                        .then(|| SparsePair::of(&e.current))
                } else {
                    e.closed
                        .iter()
                        .rev()
                        .find(|(s, _)| *s == second)
                        .map(|(_, p)| p.clone())
                };
                if let Some(pair) = pair {
                    out.entry(metric_name(e.key)).or_default().add(&pair);
                }
            }
        }
        out
    }

    /// Every metric merged across shards.
    pub fn merged(&self) -> BTreeMap<String, Pair> {
        let mut out: BTreeMap<String, Pair> = BTreeMap::new();
        for shard in self.shards.iter() {
            for e in lock(shard).entries.iter() {
                out.entry(metric_name(e.key))
                    .or_insert_with(Pair::new)
                    .add(&e.total);
            }
        }
        out
    }

    /// One metric merged across shards, while the run goes on (`abort_on_fail` thresholds read
    /// it every second: merging one metric costs far less than [`Metrics::merged`]). `None`
    /// until the metric has a sample.
    pub fn merged_one(&self, name: &str) -> Option<Pair> {
        let mut out: Option<Pair> = None;
        for shard in self.shards.iter() {
            for e in lock(shard).entries.iter() {
                if metric_name(e.key) == name {
                    out.get_or_insert_with(Pair::new).add(&e.total);
                }
            }
        }
        out
    }

    /// The p99 so far (ms, from the intended send time) of every metric whose second part is
    /// `part` taken together, e.g. all fan-outs for the live view; `None` before any sample.
    pub fn live_p99(&self, part: &str) -> Option<f64> {
        let mut all = Pair::new().co;
        for shard in self.shards.iter() {
            for e in lock(shard).entries.iter() {
                if e.key.1 == part {
                    all.add(&e.total.co).expect("same bounds");
                }
            }
        }
        (!all.is_empty()).then(|| all.value_at_quantile(0.99) as f64 / 1e3)
    }
}

/// Per metric: its seconds since the run's start that have samples, in order, each with both
/// histograms of that second. What `histograms.hlog` writes as one interval per second.
pub type Intervals = BTreeMap<String, Vec<(u64, SparsePair)>>;

/// A histogram as its non-empty buckets: each bucket's highest equivalent value with its
/// count, ascending. Recorded back into a histogram of the same bounds it gives the same
/// buckets, so keeping a second this way loses nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sparse(pub Vec<(u64, u64)>);

impl Sparse {
    pub fn of(h: &Histogram<u64>) -> Sparse {
        Sparse(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Adds `other`'s counts bucket by bucket.
    pub fn add(&mut self, other: &Sparse) {
        let (a, b) = (&self.0, &other.0);
        let mut out = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push((x.0, x.1 + y.1));
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    out.push(*x);
                    i += 1;
                }
                (Some(x), None) => {
                    out.push(*x);
                    i += 1;
                }
                (_, Some(y)) => {
                    out.push(*y);
                    j += 1;
                }
                (None, None) => unreachable!("the loop stops first"),
            }
        }
        self.0 = out;
    }

    /// How many samples.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records the buckets into `into` (cleared first), a histogram of the metrics' bounds.
    pub fn fill(&self, into: &mut Histogram<u64>) {
        into.reset();
        for &(value, count) in &self.0 {
            into.saturating_record_n(value, count);
        }
    }

    /// A histogram of the metrics' bounds holding these buckets.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = empty_histogram();
        self.fill(&mut h);
        h
    }
}

/// An empty histogram of the bounds every metric has (1 µs to 60 s, 3 significant figures).
pub fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid bounds")
}

/// One second of one metric: both histograms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparsePair {
    pub co: Sparse,
    pub raw: Sparse,
}

impl SparsePair {
    pub fn of(p: &Pair) -> SparsePair {
        SparsePair {
            co: Sparse::of(&p.co),
            raw: Sparse::of(&p.raw),
        }
    }

    pub fn add(&mut self, other: &SparsePair) {
        self.co.add(&other.co);
        self.raw.add(&other.raw);
    }
}

/// Adds `from`'s seconds into `into`, metric by metric and second by second (lossless).
pub fn add_intervals(into: &mut Intervals, from: Intervals) {
    for (name, seconds) in from {
        let mine = into.entry(name).or_default();
        let mut all: BTreeMap<u64, SparsePair> = std::mem::take(mine).into_iter().collect();
        for (second, pair) in seconds {
            all.entry(second).or_default().add(&pair);
        }
        *mine = all.into_iter().collect();
    }
}

/// The figures a report shows for one histogram, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        let ms = |us: u64| us as f64 / 1e3;
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        Summary {
            count: h.len(),
            min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
            p50_ms: q(0.5),
            p75_ms: q(0.75),
            p90_ms: q(0.9),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1e3 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_losslessly() {
        let m = std::sync::Arc::new(Metrics::new(4));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        m.record(("x", ""), 1000 + i + t, 500 + i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let merged = m.merged();
        assert_eq!(merged["x"].co.len(), 4000);
        assert_eq!(merged["x"].raw.len(), 4000);
        assert_eq!(merged["x"].raw.min(), 500);
    }

    #[test]
    fn a_pair_round_trips_through_json() {
        let m = Metrics::new(1);
        for v in [1, 250, 9_999, 3_000_000, HIGHEST_US] {
            m.record(("x", ""), v, v / 2 + 1);
        }
        let pair = &m.merged()["x"];
        let json = serde_json::to_string(pair).unwrap();
        let back: Pair = serde_json::from_str(&json).unwrap();
        assert_eq!(back.co, pair.co);
        assert_eq!(back.raw, pair.raw);
        assert!(serde_json::from_str::<Pair>(r#"{"co":"!","raw":""}"#).is_err());
    }

    #[test]
    fn a_sparse_histogram_gives_back_the_same_buckets() {
        let mut h = empty_histogram();
        for v in [1, 2, 999, 1000, 1001, 123_456, 59_000_000, HIGHEST_US] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let sparse = Sparse::of(&h);
        assert_eq!(sparse.histogram(), h);
        assert_eq!(sparse.len(), h.len());
        let mut sum = sparse.clone();
        sum.add(&Sparse::of(&h));
        let mut doubled = h.clone();
        doubled.add(&h).unwrap();
        assert_eq!(sum.histogram(), doubled);
    }

    #[test]
    fn samples_fall_in_the_second_they_are_recorded_in() {
        // Second 0 two and a half seconds ago: these samples are in second 2.
        let start = std::time::Instant::now() - std::time::Duration::from_millis(2500);
        let m = Metrics::starting_at(2, start);
        for i in 0..10u64 {
            m.record(("x", "y"), 100 + i, 50);
        }
        let intervals = m.intervals();
        let seconds: Vec<u64> = intervals["x.y"].iter().map(|(s, _)| *s).collect();
        assert_eq!(seconds, [2]);
        let total = &m.merged()["x.y"];
        assert_eq!(intervals["x.y"][0].1.co.histogram(), total.co);
        assert_eq!(intervals["x.y"][0].1.raw.histogram(), total.raw);
    }

    #[test]
    fn one_second_is_read_across_shards() {
        let start = std::time::Instant::now() - std::time::Duration::from_millis(3500);
        let m = Metrics::starting_at(2, start);
        m.record(("x", "y"), 100, 50);
        m.record(("x", "y"), 200, 50);
        assert_eq!(m.second(3)["x.y"].co.len(), 2);
        assert!(m.second(2).is_empty());
        assert_eq!(m.second(3)["x.y"].co, m.intervals()["x.y"][0].1.co);
    }

    #[test]
    fn intervals_add_second_by_second() {
        let one = |v: u64| {
            let mut h = empty_histogram();
            h.record(v).unwrap();
            SparsePair {
                co: Sparse::of(&h),
                raw: Sparse::of(&h),
            }
        };
        let mut a: Intervals = BTreeMap::from([("m".into(), vec![(0, one(5)), (2, one(7))])]);
        add_intervals(
            &mut a,
            BTreeMap::from([
                ("m".into(), vec![(1, one(6)), (2, one(8))]),
                ("n".into(), vec![(3, one(1))]),
            ]),
        );
        let counts: Vec<(u64, u64)> = a["m"].iter().map(|(s, p)| (*s, p.co.len())).collect();
        assert_eq!(counts, [(0, 1), (1, 1), (2, 2)]);
        assert_eq!(a["n"].len(), 1);
    }
}
