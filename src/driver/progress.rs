//! The live view of a running load, on stderr: in a terminal a two-line bar (clients arrived,
//! time left, rates, live fan-out p99, violations; at most 80 columns), elsewhere (CI logs) one
//! line every `--progress-interval` (10 s). In a worker of `--workers N`, the live counters told
//! to the parent instead.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Shared;
use crate::share::Live;

/// The figures of one moment of a run (one process, or the workers' sum).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Since the schedule started.
    pub elapsed: Duration,
    pub planned: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub active: u64,
    pub sent: u64,
    pub received: u64,
    pub violations: u64,
    /// Fan-out p99 so far (ms, from the intended send time), where known.
    pub p99_ms: Option<f64>,
}

impl Snapshot {
    /// The sum of workers' live counters at `elapsed`.
    pub fn of_live(live: &Live, elapsed: Duration) -> Snapshot {
        Snapshot {
            elapsed,
            planned: live.planned,
            connected: live.connected,
            connect_errors: live.connect_errors,
            active: live.active,
            sent: live.sent,
            received: live.received,
            violations: live.violations,
            p99_ms: None,
        }
    }
}

/// How the live view is drawn.
pub struct View {
    kind: Kind,
    /// About when the scenario ends (see [`crate::schedule::expected_end`]).
    expected_end: Duration,
    /// The snapshot rates are measured from, and the rates last measured (sent, received /s).
    before: Snapshot,
    rates: (f64, f64),
}

enum Kind {
    Bar(ProgressBar),
    Lines { every: Duration, next: Duration },
}

/// How often the bar's rates and p99 are refreshed (redraws are four a second).
const BAR_RATE_WINDOW: Duration = Duration::from_secs(1);

impl View {
    /// A bar when stderr is a terminal, else a line every `every`.
    pub fn new(planned: u64, expected_end: Duration, every: Duration) -> View {
        let kind = if std::io::stderr().is_terminal() {
            Kind::Bar(bar(planned))
        } else {
            Kind::Lines { every, next: every }
        };
        View {
            kind,
            expected_end,
            before: Snapshot::default(),
            rates: (0.0, 0.0),
        }
    }

    /// Whether [`View::show`] at `elapsed` will draw figures that need the live p99.
    pub fn wants_p99(&self, elapsed: Duration) -> bool {
        match &self.kind {
            Kind::Bar(_) => elapsed >= self.before.elapsed + BAR_RATE_WINDOW,
            Kind::Lines { next, .. } => elapsed >= *next,
        }
    }

    /// Shows the run at `now` (called four times a second).
    pub fn show(&mut self, now: Snapshot) {
        let window = now.elapsed.saturating_sub(self.before.elapsed);
        match &mut self.kind {
            Kind::Bar(bar) => {
                if window >= BAR_RATE_WINDOW {
                    self.rates = rates(&self.before, &now);
                    self.before = now;
                }
                let mut shown = now;
                shown.p99_ms = self.before.p99_ms;
                bar.set_position(now.connected + now.connect_errors);
                bar.set_prefix(bar_prefix(&now, self.expected_end));
                bar.set_message(bar_figures(&shown, self.rates));
                bar.tick();
            }
            Kind::Lines { every, next } => {
                if now.elapsed < *next {
                    return;
                }
                while *next <= now.elapsed {
                    *next += *every;
                }
                self.rates = rates(&self.before, &now);
                self.before = now;
                eprintln!("{}", line(&now, self.rates, self.expected_end));
            }
        }
    }
}

impl Drop for View {
    /// Clears the bar when the view ends (the task drawing it is aborted).
    fn drop(&mut self) {
        if let Kind::Bar(bar) = &self.kind {
            bar.finish_and_clear();
        }
    }
}

/// The bar: clients arrived of `planned`, time left and figures on two lines.
fn bar(planned: u64) -> ProgressBar {
    let bar = ProgressBar::new(planned);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:20}] {pos}/{len} arrived{prefix}\n  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Sends and receipts per second between two snapshots.
fn rates(before: &Snapshot, now: &Snapshot) -> (f64, f64) {
    let dt = now
        .elapsed
        .saturating_sub(before.elapsed)
        .as_secs_f64()
        .max(1e-3);
    let per_s = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
    (
        per_s(now.sent, before.sent),
        per_s(now.received, before.received),
    )
}

/// The end of the bar's first line: time left, failed connects.
fn bar_prefix(now: &Snapshot, expected_end: Duration) -> String {
    let mut out = format!("  {}", left(now.elapsed, expected_end));
    if now.connect_errors > 0 {
        out.push_str(&format!("  {} failed", compact(now.connect_errors)));
    }
    out
}

/// The bar's second line.
fn bar_figures(now: &Snapshot, (sent_rate, recv_rate): (f64, f64)) -> String {
    format!(
        "open {}  sent {} {}/s  recv {} {}/s  p99 {}  viol {}",
        now.active,
        compact(now.sent),
        compact(sent_rate as u64),
        compact(now.received),
        compact(recv_rate as u64),
        now.p99_ms.map_or("-".to_string(), short_ms),
        compact(now.violations),
    )
}

/// One progress line of a log (no terminal): everything so far, rates over the last interval.
pub fn line(now: &Snapshot, (sent_rate, recv_rate): (f64, f64), expected_end: Duration) -> String {
    format!(
        "[{:>6}] clients {}/{} (open {}, {} failed) · sent {} ({:.0}/s) · received {} ({:.0}/s) · \
         violations {} · fan-out p99 {} · {}",
        clock(now.elapsed),
        now.connected,
        now.planned,
        now.active,
        now.connect_errors,
        now.sent,
        sent_rate,
        now.received,
        recv_rate,
        now.violations,
        now.p99_ms.map_or("-".to_string(), short_ms),
        left(now.elapsed, expected_end),
    )
}

/// `~1m05s left`, or `finishing` past the expected end.
fn left(elapsed: Duration, expected_end: Duration) -> String {
    match expected_end.checked_sub(elapsed) {
        Some(rest) if !rest.is_zero() => {
            format!("~{} left", clock(rest + Duration::from_millis(999)))
        }
        _ => "finishing".to_string(),
    }
}

/// `7s`, `1m05s`, `2h03m` (whole seconds, rounded down).
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A count in at most five characters: `9999`, `12.3k`, `4.56M`.
fn compact(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..999_500 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

/// A latency in at most six characters: `0.8ms`, `12ms`, `1.2s`.
fn short_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1e3)
    }
}

/// Draws the view of this process's run until aborted.
pub async fn show(shared: Arc<Shared>, expected_end: Duration, every: Duration) {
    let mut view = View::new(shared.counters.planned.get(), expected_end, every);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let c = &shared.counters;
        let elapsed = Duration::from_micros(shared.now());
        view.show(Snapshot {
            elapsed,
            planned: c.planned.get(),
            connected: c.connected.get(),
            connect_errors: c.connect_errors.get(),
            active: c.active.get(),
            sent: c.sent.get(),
            received: c.received.get(),
            violations: shared.oracle.violation_count(),
            // Merging the histograms costs: only when the view shows a new figure.
            p99_ms: if view.wants_p99(elapsed) {
                shared.metrics.live_p99("fanout")
            } else {
                None
            },
        });
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
        crate::out::outln!("{}", live.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> Snapshot {
        Snapshot {
            elapsed: Duration::from_secs(3599),
            planned: 50_000,
            connected: 49_000,
            connect_errors: 9_999,
            active: 49_000,
            sent: 123_456_789,
            received: 987_654_321,
            violations: 456_789,
            p99_ms: Some(1234.5),
        }
    }

    #[test]
    fn the_bar_fits_80_columns() {
        let now = busy();
        let first = format!(
            "⠁ 00:59:59 [{}] {}/{} arrived{}",
            " ".repeat(20),
            now.connected + now.connect_errors,
            now.planned,
            bar_prefix(&now, Duration::from_secs(7198)),
        );
        let second = format!("  {}", bar_figures(&now, (99_999.0, 999_999.0)));
        for l in [&first, &second] {
            assert!(
                l.chars().count() <= 80,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(first.contains("~59m59s left"), "{first}");
        assert!(second.contains("p99 1.2s"), "{second}");
    }

    #[test]
    fn a_log_line_says_everything_so_far() {
        let now = Snapshot {
            elapsed: Duration::from_secs(20),
            planned: 400,
            connected: 398,
            connect_errors: 2,
            active: 390,
            sent: 1000,
            received: 4000,
            violations: 3,
            p99_ms: Some(5.46),
        };
        let l = line(&now, (50.0, 200.0), Duration::from_secs(25));
        assert_eq!(
            l,
            "[   20s] clients 398/400 (open 390, 2 failed) · sent 1000 (50/s) · received 4000 \
             (200/s) · violations 3 · fan-out p99 5.5ms · ~5s left"
        );
        assert!(line(&now, (0.0, 0.0), Duration::from_secs(20)).ends_with("finishing"));
    }

    #[test]
    fn log_lines_come_once_per_interval_with_rates_over_it() {
        let mut view = View {
            kind: Kind::Lines {
                every: Duration::from_secs(10),
                next: Duration::from_secs(10),
            },
            expected_end: Duration::from_secs(60),
            before: Snapshot::default(),
            rates: (0.0, 0.0),
        };
        let at = |s: u64, sent: u64| Snapshot {
            elapsed: Duration::from_secs(s),
            sent,
            ..Snapshot::default()
        };
        assert!(!view.wants_p99(Duration::from_secs(9)));
        view.show(at(9, 90));
        assert_eq!(view.before, Snapshot::default(), "no line before 10 s");
        assert!(view.wants_p99(Duration::from_secs(10)));
        view.show(at(10, 100));
        assert_eq!(view.rates.0, 10.0);
        view.show(at(15, 300));
        assert_eq!(view.before.elapsed, Duration::from_secs(10));
        view.show(at(20, 400));
        assert_eq!(view.rates.0, 30.0);
    }

    #[test]
    fn counts_and_times_are_short() {
        assert_eq!(compact(9_999), "9999");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(4_560_000), "4.56M");
        assert_eq!(clock(Duration::from_secs(65)), "1m05s");
        assert_eq!(clock(Duration::from_secs(7380)), "2h03m");
        assert_eq!(short_ms(0.84), "0.8ms");
        assert_eq!(short_ms(1234.0), "1.2s");
    }
}
