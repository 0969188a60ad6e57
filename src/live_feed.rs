//! `--metrics-listen` with `--workers N`: each worker tells the parent, after every second of
//! the schedule, that second's latency histograms (sparse, lossless) and its counts per rule
//! (an `@second {json}` line on stdout, beside its `@progress` lines); the parent adds the
//! workers' seconds up once every worker still running has told it, so its `/metrics` shows
//! the latencies of all workers merged, as one process would.

use std::collections::BTreeMap;
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::live_metrics::{Figures, Latency, RuleCount};
use crate::metrics::Sparse;
use crate::oracle::lock;

/// One second of one worker, as it tells the parent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerSecond {
    /// Since the run's start (the one start every worker was given).
    pub second: u64,
    /// Per metric: the second's histogram from the intended send time.
    pub latency: BTreeMap<String, Sparse>,
    /// Per rule id: its level and count so far.
    pub rules: BTreeMap<String, (String, u64)>,
    pub unexpected_closes: u64,
    pub sent_by_op: BTreeMap<String, u64>,
}

const PREFIX: &str = "@second ";

impl WorkerSecond {
    pub fn line(&self) -> String {
        format!(
            "{PREFIX}{}",
            serde_json::to_string(self).expect("plain data")
        )
    }

    pub fn parse(line: &str) -> Option<WorkerSecond> {
        serde_json::from_str(line.strip_prefix(PREFIX)?).ok()
    }
}

/// The parent's gathering of its workers' seconds.
pub struct Gatherer(Mutex<State>);

struct State {
    /// Per worker: how many seconds it told (they come in order from 0), or `None` once its
    /// output ended.
    told: Vec<Option<u64>>,
    /// Seconds not every worker has told yet: the sum so far.
    pending: BTreeMap<u64, BTreeMap<String, Sparse>>,
    /// The next second to add to the whole run.
    next: u64,
    /// The whole run, up to `next`.
    run: BTreeMap<String, Histogram<u64>>,
    last_second: BTreeMap<String, Latency>,
    /// Per worker: its latest counts.
    latest: Vec<WorkerSecond>,
}

impl Gatherer {
    pub fn new(workers: u32) -> Gatherer {
        Gatherer(Mutex::new(State {
            told: vec![Some(0); workers as usize],
            pending: BTreeMap::new(),
            next: 0,
            run: BTreeMap::new(),
            last_second: BTreeMap::new(),
            latest: vec![WorkerSecond::default(); workers as usize],
        }))
    }

    /// Worker `k` told its second `s`.
    pub fn take(&self, k: u32, s: WorkerSecond) {
        let mut st = lock(&self.0);
        let k = k as usize;
        if k >= st.told.len() {
            return;
        }
        if s.second >= st.next {
            let sum = st.pending.entry(s.second).or_default();
            for (metric, sparse) in &s.latency {
                sum.entry(metric.clone()).or_default().add(sparse);
            }
        }
        if let Some(told) = &mut st.told[k] {
            *told = (*told).max(s.second + 1);
        }
        st.latest[k] = s;
        st.settle();
    }

    /// Worker `k`'s output ended: no second waits for it any more.
    pub fn done(&self, k: u32) {
        let mut st = lock(&self.0);
        if let Some(told) = st.told.get_mut(k as usize) {
            *told = None;
        }
        st.settle();
    }

    /// Puts the merged latencies and the summed counts per rule into `f`.
    pub fn fill(&self, f: &mut Figures) {
        let st = lock(&self.0);
        f.latency_run = st
            .run
            .iter()
            .map(|(n, h)| (n.clone(), Latency::of(h)))
            .collect();
        f.latency_second = st.last_second.clone();
        let mut rules: BTreeMap<String, RuleCount> = BTreeMap::new();
        let (mut closes, mut by_op) = (0, BTreeMap::<String, u64>::new());
        for w in &st.latest {
            for (rule, (level, count)) in &w.rules {
                let r = rules.entry(rule.clone()).or_insert(RuleCount {
                    level: level.clone(),
                    count: 0,
                });
                r.count += count;
                // A request may cap a rule's level in one worker: the most severe is shown.
                if severity(level) > severity(&r.level) {
                    r.level = level.clone();
                }
            }
            closes += w.unexpected_closes;
            for (op, n) in &w.sent_by_op {
                *by_op.entry(op.clone()).or_default() += n;
            }
        }
        f.rules = rules;
        f.unexpected_closes = Some(closes);
        f.sent_by_op = by_op;
    }
}

fn severity(level: &str) -> u8 {
    match level {
        "must" => 3,
        "should" => 2,
        "info" => 1,
        _ => 0,
    }
}

impl State {
    /// Adds every second that all running workers have told to the whole run, in order.
    fn settle(&mut self) {
        let ready = self.told.iter().flatten().min().copied();
        let ready = ready.unwrap_or(u64::MAX);
        while self.next < ready {
            let Some((&second, _)) = self.pending.first_key_value() else {
                break;
            };
            if second >= ready {
                break;
            }
            let sum = self.pending.remove(&second).expect("present");
            let mut last = BTreeMap::new();
            for (metric, sparse) in sum {
                let h = sparse.histogram();
                self.run
                    .entry(metric.clone())
                    .or_insert_with(crate::metrics::empty_histogram)
                    .add(&h)
                    .expect("same bounds");
                last.insert(metric, Latency::of(&h));
            }
            self.last_second = last;
            self.next = second + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(s: u64, values: &[u64], rule_count: u64) -> WorkerSecond {
        let mut h = crate::metrics::empty_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        WorkerSecond {
            second: s,
            latency: BTreeMap::from([("message.fanout".to_string(), Sparse::of(&h))]),
            rules: BTreeMap::from([("r".to_string(), ("should".to_string(), rule_count))]),
            unexpected_closes: 1,
            sent_by_op: BTreeMap::from([("message".to_string(), 2)]),
        }
    }

    #[test]
    fn a_second_counts_once_every_running_worker_told_it() {
        let g = Gatherer::new(2);
        let line = second(0, &[1_000, 2_000], 1).line();
        g.take(0, WorkerSecond::parse(&line).unwrap());
        let mut f = Figures::default();
        g.fill(&mut f);
        assert!(f.latency_run.is_empty(), "worker 1 has not told second 0");
        assert_eq!(f.rules["r"].count, 1);
        g.take(1, second(0, &[3_000], 2));
        g.take(0, second(1, &[4_000], 1));
        g.fill(&mut f);
        assert_eq!(f.latency_run["message.fanout"].count, 3);
        assert_eq!(f.latency_second["message.fanout"].count, 3);
        assert_eq!(f.rules["r"].count, 3);
        assert_eq!(f.unexpected_closes, Some(2));
        assert_eq!(f.sent_by_op["message"], 4);
        // Worker 1 ended: second 1 is complete with worker 0's alone.
        g.done(1);
        g.fill(&mut f);
        assert_eq!(f.latency_run["message.fanout"].count, 4);
        assert_eq!(f.latency_second["message.fanout"].count, 1);
        assert!(WorkerSecond::parse("@progress 1 2 3").is_none());
    }
}
