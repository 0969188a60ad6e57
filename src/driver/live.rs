//! The driver's side of `--metrics-listen`: once a second, just after a second of the schedule
//! ends, the counters, the violations per rule and that second's histograms go on the
//! [`Board`] as one snapshot. The whole-run histograms grow by each second read (lossless: the
//! same buckets), so no snapshot merges the run's full histograms. A worker of `--workers`
//! tells its parent each second instead ([`feed`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::Shared;
use crate::live_metrics::{level_label, Board, Figures, Latency, RuleCount};

/// After a second ends, how long before it is read: a sample that took the time just before
/// the end is recorded by then (the shard lock is held only to record).
const SETTLE: Duration = Duration::from_millis(20);

/// Publishes a snapshot after every second of the run, until aborted.
pub async fn collect(shared: Arc<Shared>, board: Board) {
    board.begin();
    let mut run: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut second = 0u64;
    loop {
        tokio::time::sleep_until(shared.start + Duration::from_secs(second + 1) + SETTLE).await;
        let began = std::time::Instant::now();
        let figures = snapshot(&shared, second, &mut run);
        board.publish(figures, began.elapsed());
        second += 1;
    }
}

/// The figures after `second` ended; adds that second into the whole-run histograms `run`.
fn snapshot(shared: &Shared, second: u64, run: &mut BTreeMap<String, Histogram<u64>>) -> Figures {
    let c = &shared.counters;
    let mut latency_second = BTreeMap::new();
    for (name, pair) in shared.metrics.second(second) {
        let h = pair.co.histogram();
        run.entry(name.clone())
            .or_insert_with(crate::metrics::empty_histogram)
            .add(&h)
            .expect("same bounds");
        latency_second.insert(name, Latency::of(&h));
    }
    let rules: BTreeMap<String, RuleCount> = shared
        .oracle
        .rule_counts()
        .into_iter()
        .map(|(rule, level, count)| {
            (
                rule,
                RuleCount {
                    level: level_label(level),
                    count,
                },
            )
        })
        .collect();
    Figures {
        elapsed_s: shared.start.elapsed().as_secs_f64(),
        finished: false,
        planned: c.planned.get(),
        open: c.active.get(),
        connected: c.connected.get(),
        connect_errors: c.connect_errors.get(),
        unexpected_closes: Some(c.unexpected_closes.get()),
        sent: c.sent.get(),
        sent_by_op: sent_by_op(shared),
        received: c.received.get(),
        violations: shared.oracle.violation_count(),
        rules,
        latency_run: run
            .iter()
            .map(|(n, h)| (n.clone(), Latency::of(h)))
            .collect(),
        latency_second,
    }
}

/// In a worker of `--workers N`: tells the parent each second's histograms and counts per rule
/// (see [`crate::live_feed`]), until aborted.
pub async fn feed(shared: Arc<Shared>) {
    let mut second = 0u64;
    loop {
        tokio::time::sleep_until(shared.start + Duration::from_secs(second + 1) + SETTLE).await;
        let told = crate::live_feed::WorkerSecond {
            second,
            latency: shared
                .metrics
                .second(second)
                .into_iter()
                .map(|(name, pair)| (name, pair.co))
                .collect(),
            rules: shared
                .oracle
                .rule_counts()
                .into_iter()
                .map(|(rule, level, count)| (rule, (level_label(level), count)))
                .collect(),
            unexpected_closes: shared.counters.unexpected_closes.get(),
            sent_by_op: sent_by_op(&shared),
        };
        crate::out::outln!("{}", told.line());
        second += 1;
    }
}

/// Requests sent per operation so far, operations without any left out.
fn sent_by_op(shared: &Shared) -> BTreeMap<String, u64> {
    shared
        .spec
        .ops
        .iter()
        .zip(shared.sent_by_op.iter())
        .filter(|(_, n)| n.get() > 0)
        .map(|(op, n)| (op.name.to_string(), n.get()))
        .collect()
}
