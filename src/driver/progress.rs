//! The live view of a running load (drawn on stderr, hidden when stderr is not a terminal),
//! or, in a worker of `--workers N`, the live counters told to the parent.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Shared;
use crate::share::Live;

/// The bar of a run's live view: clients arrived of `planned` (one process or the sum of the
/// workers'), figures in its message.
pub fn bar(planned: u64) -> ProgressBar {
    let bar = ProgressBar::new(planned);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} arrived  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Redraws four times a second until aborted.
pub async fn show(shared: Arc<Shared>, schedule_end: Duration) {
    let bar = bar(shared.counters.planned.get());
    let guard = BarGuard(bar.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let (mut last_sent, mut last_recv, mut last_at) = (0u64, 0u64, tokio::time::Instant::now());
    loop {
        tick.tick().await;
        let c = &shared.counters;
        let (sent, recv) = (c.sent.get(), c.received.get());
        let dt = last_at.elapsed().as_secs_f64().max(1e-3);
        let rate = |now: u64, before: u64| (now - before) as f64 / dt;
        bar.set_position(c.connected.get() + c.connect_errors.get());
        bar.set_message(format!(
            "open {}  sent {} ({:.0}/s)  recv {} ({:.0}/s)  errors {}  violations {}{}",
            c.active.get(),
            sent,
            rate(sent, last_sent),
            recv,
            rate(recv, last_recv),
            c.connect_errors.get(),
            shared.oracle.violation_count(),
            if shared.now() > schedule_end.as_micros() as u64 {
                "  (all arrived)"
            } else {
                ""
            },
        ));
        bar.tick();
        (last_sent, last_recv, last_at) = (sent, recv, tokio::time::Instant::now());
        let _ = &guard;
    }
}

/// A worker's live counters for the parent, twice a second on stdout, until aborted.
pub async fn lines(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let c = &shared.counters;
        let live = Live {
            planned: c.planned.get(),
            connected: c.connected.get(),
            connect_errors: c.connect_errors.get(),
            active: c.active.get(),
            sent: c.sent.get(),
            received: c.received.get(),
            violations: shared.oracle.violation_count(),
        };
        println!("{}", live.line());
    }
}

/// Clears the bar when the task is aborted.
struct BarGuard(ProgressBar);

impl Drop for BarGuard {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
