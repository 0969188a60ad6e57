//! The live view of a running load (drawn on stderr, hidden when stderr is not a terminal).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Shared;

/// Redraws four times a second until aborted.
pub async fn show(shared: Arc<Shared>, schedule_end: Duration) {
    let bar = ProgressBar::new(shared.counters.planned.get());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} arrived  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
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

/// Clears the bar when the task is aborted.
struct BarGuard(ProgressBar);

impl Drop for BarGuard {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
