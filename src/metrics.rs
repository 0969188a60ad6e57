//! Latency histograms, shared per worker thread rather than per client (one 1 µs–60 s
//! histogram at 3 significant figures is ~136 KiB), merged losslessly at the end.
//!
//! Each metric keeps two histograms: `co`, from the *intended* time of the open-loop schedule
//! (coordinated-omission correct: a stalled sender cannot hide latency), and `raw`, from the
//! moment the bytes were actually written.

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
        let h = || Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid bounds");
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
}

/// One worker's metrics.
type Shard = Vec<(MetricKey, Pair)>;

fn same_key(a: MetricKey, b: MetricKey) -> bool {
    (std::ptr::eq(a.0, b.0) && std::ptr::eq(a.1, b.1)) || a == b
}

static NEXT_THREAD_SLOT: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static THREAD_SLOT: Cell<usize> = Cell::new(NEXT_THREAD_SLOT.fetch_add(1, Ordering::Relaxed));
}

impl Metrics {
    /// `workers` shards: one per runtime worker thread is uncontended.
    pub fn new(workers: usize) -> Metrics {
        Metrics {
            shards: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// Records one sample in microseconds: from the intended time (`co`) and the actual send
    /// time (`raw`). Values are clamped into the histogram's range.
    pub fn record(&self, metric: MetricKey, co_us: u64, raw_us: u64) {
        let slot = THREAD_SLOT.with(Cell::get) % self.shards.len();
        let mut shard = lock(&self.shards[slot]);
        let i = match shard.iter().position(|(k, _)| same_key(*k, metric)) {
            Some(i) => i,
            None => {
                shard.push((metric, Pair::new()));
                shard.len() - 1
            }
        };
        let pair = &mut shard[i].1;
        pair.co.saturating_record(co_us.clamp(1, HIGHEST_US));
        pair.raw.saturating_record(raw_us.clamp(1, HIGHEST_US));
    }

    /// Every metric merged across shards.
    pub fn merged(&self) -> BTreeMap<String, Pair> {
        let mut out: BTreeMap<String, Pair> = BTreeMap::new();
        for shard in self.shards.iter() {
            for (key, pair) in lock(shard).iter() {
                out.entry(metric_name(*key))
                    .or_insert_with(Pair::new)
                    .add(pair);
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
            for (key, pair) in lock(shard).iter() {
                if metric_name(*key) == name {
                    out.get_or_insert_with(Pair::new).add(pair);
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
            for (key, pair) in lock(shard).iter() {
                if key.1 == part {
                    all.add(&pair.co).expect("same bounds");
                }
            }
        }
        (!all.is_empty()).then(|| all.value_at_quantile(0.99) as f64 / 1e3)
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
}
