//! What a run did second by second: connections open, made and failed, messages sent, events
//! received, violations by rule id. The driver samples its counters at each second of the
//! schedule; reports present the series (the `timeline` section of `summary.json`, the charts
//! of `report.html`). Totals stay exact: the last entry runs to the end of the run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The counters at one moment (cumulative, except `open`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub open: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub sent: u64,
    pub received: u64,
}

/// The per-second series of a run; every series has one entry per second of the run, the
/// last second possibly partial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The length of an entry in seconds (1).
    pub interval_s: f64,
    /// Connections open at the end of each second.
    pub open: Vec<u64>,
    /// Connections made in each second.
    pub connected: Vec<u64>,
    /// Connections that failed in each second.
    pub connect_errors: Vec<u64>,
    /// Requests sent in each second.
    pub sent: Vec<u64>,
    /// Events received (deliveries, replies, errors) in each second.
    pub received: Vec<u64>,
    /// Per rule id: `[second, violations raised in it]`, seconds without one left out.
    pub violations: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Timeline {
    /// The series from the samples taken at the end of second 1, 2, … and at the end of the run
    /// (`samples` in time order, the last one at the end), and the violations by second.
    pub fn from_samples(
        samples: &[Sample],
        violations: BTreeMap<String, Vec<(u64, u64)>>,
    ) -> Timeline {
        let mut t = Timeline {
            interval_s: 1.0,
            ..Timeline::default()
        };
        let mut before = Sample::default();
        for s in samples {
            t.open.push(s.open);
            t.connected
                .push(s.connected.saturating_sub(before.connected));
            t.connect_errors
                .push(s.connect_errors.saturating_sub(before.connect_errors));
            t.sent.push(s.sent.saturating_sub(before.sent));
            t.received.push(s.received.saturating_sub(before.received));
            before = *s;
        }
        // A violation judged after the last sample (the final sweep) belongs to the last second.
        let last = t.seconds().saturating_sub(1) as u64;
        t.violations = violations
            .into_iter()
            .map(|(rule, seconds)| {
                let mut by: BTreeMap<u64, u64> = BTreeMap::new();
                for (s, n) in seconds {
                    *by.entry(s.min(last)).or_default() += n;
                }
                (rule, by.into_iter().collect())
            })
            .collect();
        t
    }

    /// How many seconds the series cover.
    pub fn seconds(&self) -> usize {
        self.sent.len()
    }

    /// Adds another process's timeline of the same schedule, second by second.
    pub fn add(&mut self, other: &Timeline) {
        fn add_series(into: &mut Vec<u64>, from: &[u64]) {
            if into.len() < from.len() {
                into.resize(from.len(), 0);
            }
            for (a, b) in into.iter_mut().zip(from) {
                *a += b;
            }
        }
        self.interval_s = other.interval_s.max(self.interval_s);
        add_series(&mut self.open, &other.open);
        add_series(&mut self.connected, &other.connected);
        add_series(&mut self.connect_errors, &other.connect_errors);
        add_series(&mut self.sent, &other.sent);
        add_series(&mut self.received, &other.received);
        for (rule, seconds) in &other.violations {
            let mine = self.violations.entry(rule.clone()).or_default();
            let mut by: BTreeMap<u64, u64> = mine.iter().copied().collect();
            for (s, n) in seconds {
                *by.entry(*s).or_default() += n;
            }
            *mine = by.into_iter().collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(open: u64, connected: u64, sent: u64, received: u64) -> Sample {
        Sample {
            open,
            connected,
            connect_errors: 0,
            sent,
            received,
        }
    }

    #[test]
    fn cumulative_samples_become_counts_per_second_with_exact_totals() {
        let t = Timeline::from_samples(
            &[
                sample(3, 3, 0, 0),
                sample(3, 3, 10, 30),
                sample(0, 3, 12, 36),
            ],
            BTreeMap::from([("r".to_string(), vec![(1, 2), (u64::MAX / 1_000_000, 1)])]),
        );
        assert_eq!(t.seconds(), 3);
        assert_eq!(t.open, [3, 3, 0]);
        assert_eq!(t.connected, [3, 0, 0]);
        assert_eq!(t.sent, [0, 10, 2]);
        assert_eq!(t.received.iter().sum::<u64>(), 36);
        assert_eq!(t.violations["r"], [(1, 2), (2, 1)]);
    }

    #[test]
    fn timelines_of_workers_add_up() {
        let mut a = Timeline::from_samples(&[sample(1, 1, 1, 1)], BTreeMap::new());
        let b = Timeline::from_samples(
            &[sample(2, 2, 2, 2), sample(0, 2, 3, 3)],
            BTreeMap::from([("r".to_string(), vec![(0, 1)])]),
        );
        a.add(&b);
        assert_eq!(a.open, [3, 0]);
        assert_eq!(a.sent, [3, 1]);
        assert_eq!(a.violations["r"], [(0, 1)]);
    }
}
