//! `--metrics-listen ADDR`: the live figures of a run served as `GET /metrics` in the
//! Prometheus text exposition format (version 0.0.4), so a soak or capacity run can sit in an
//! existing Prometheus and Grafana.
//!
//! The run never waits for a scraper: whoever measures (the driver once a second, or the
//! parent of `--workers N` from its workers' progress lines) puts a finished [`Figures`] on the
//! [`Board`]; a scrape renders the latest one. At the end of the run the report's own figures
//! replace it (`roomrig_run_finished 1`), and the listener stays up until the report is written
//! (and `--metrics-linger` longer), so the last scrape can equal `summary.json`.
//!
//! The text is written here rather than by a client library: the figures are a snapshot taken
//! elsewhere (no registry of live instruments), and latency percentiles are exposed as
//! Prometheus summaries, a type the `prometheus-client` crate does not encode. An independent
//! parser reads the output in tests/live_metrics.rs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::oracle::lock;

/// The quantiles of a latency summary; `1` is the largest sample (as other exporters do).
const QUANTILES: [(f64, &str); 5] = [
    (0.5, "0.5"),
    (0.9, "0.9"),
    (0.99, "0.99"),
    (0.999, "0.999"),
    (1.0, "1"),
];

/// A latency distribution as a summary shows it (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub sum_s: f64,
    /// In the order of [`QUANTILES`].
    pub quantiles_s: [f64; 5],
}

impl Latency {
    /// From a histogram of microseconds (the metrics' unit).
    pub fn of(h: &Histogram<u64>) -> Latency {
        let s = |us: u64| us as f64 / 1e6;
        let mut quantiles_s = [0.0; 5];
        if !h.is_empty() {
            for (out, (q, _)) in quantiles_s.iter_mut().zip(QUANTILES) {
                *out = if q >= 1.0 {
                    s(h.max())
                } else {
                    s(h.value_at_quantile(q))
                };
            }
        }
        Latency {
            count: h.len(),
            sum_s: h.mean() * h.len() as f64 / 1e6,
            quantiles_s,
        }
    }
}

/// A violation rule's live count.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCount {
    /// `must`, `should` or `info`.
    pub level: String,
    pub count: u64,
}

/// One moment of a run, as `/metrics` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Seconds since the schedule started.
    pub elapsed_s: f64,
    /// The run is over: these are the report's figures.
    pub finished: bool,
    pub planned: u64,
    pub open: u64,
    pub connected: u64,
    pub connect_errors: u64,
    /// `None` where not known live (the workers' progress lines do not carry it).
    pub unexpected_closes: Option<u64>,
    pub sent: u64,
    pub sent_by_op: BTreeMap<String, u64>,
    pub received: u64,
    /// All violations, whatever their rule.
    pub violations: u64,
    /// Per rule id, where known (one process; a `--workers` run only at its end).
    pub rules: BTreeMap<String, RuleCount>,
    /// Per metric: from the intended send time, the whole run so far.
    pub latency_run: BTreeMap<String, Latency>,
    /// Per metric: the last completed second of the run.
    pub latency_second: BTreeMap<String, Latency>,
}

/// Where a run puts its latest figures and the endpoint reads them. Cloning shares it.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    figures: Figures,
    /// Time spent making snapshots (the collector's work), to expose what it costs.
    snapshot_cost: Duration,
    snapshots: u64,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Board {
    /// A new run starts on this board (a capacity search runs many on one endpoint): its live
    /// figures replace the last run's final ones.
    pub fn begin(&self) {
        lock(&self.0).figures = Figures::default();
    }

    /// The latest figures, replaced whole (`cost`: the time it took to make them).
    pub fn publish(&self, figures: Figures, cost: Duration) {
        let mut s = lock(&self.0);
        // The report's figures are final: a late live snapshot must not replace them.
        if s.figures.finished && !figures.finished {
            return;
        }
        s.figures = figures;
        s.snapshot_cost += cost;
        s.snapshots += 1;
    }

    /// Changes the latest figures in place (the parent of `--workers` updates them from its
    /// workers' lines); counted as a snapshot.
    pub fn update(&self, change: impl FnOnce(&mut Figures)) {
        let began = std::time::Instant::now();
        let mut s = lock(&self.0);
        if !s.figures.finished {
            change(&mut s.figures);
            s.snapshot_cost += began.elapsed();
            s.snapshots += 1;
        }
    }

    /// The latest figures.
    #[cfg(test)]
    pub fn figures(&self) -> Figures {
        lock(&self.0).figures.clone()
    }

    /// The exposition text of the latest figures, with `scenario` on every series.
    pub fn render(&self, scenario: &str) -> String {
        let (figures, cost, snapshots) = {
            let s = lock(&self.0);
            (s.figures.clone(), s.snapshot_cost, s.snapshots)
        };
        let mut out = render(&figures, scenario);
        let labels = Labels::new(scenario);
        family(
            &mut out,
            "roomrig_metrics_snapshot_seconds_total",
            "counter",
            "Time roomrig spent making the snapshots this endpoint serves.",
        );
        sample(
            &mut out,
            "roomrig_metrics_snapshot_seconds_total",
            &labels,
            cost.as_secs_f64(),
        );
        family(
            &mut out,
            "roomrig_metrics_snapshots_total",
            "counter",
            "Snapshots made for this endpoint.",
        );
        sample(
            &mut out,
            "roomrig_metrics_snapshots_total",
            &labels,
            snapshots as f64,
        );
        out
    }
}

/// The label set of a series, always starting with `scenario`.
#[derive(Clone)]
struct Labels(Vec<(&'static str, String)>);

impl Labels {
    fn new(scenario: &str) -> Labels {
        Labels(vec![("scenario", scenario.to_string())])
    }
    fn with(&self, name: &'static str, value: &str) -> Labels {
        let mut l = self.clone();
        l.0.push((name, value.to_string()));
        l
    }
}

/// A label value as the text format writes it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &Labels, value: f64) {
    out.push_str(name);
    out.push('{');
    for (i, (k, v)) in labels.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    out.push('}');
    // Integers print without a fraction; every value here is finite.
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = writeln!(out, " {}", value as i64);
    } else {
        let _ = writeln!(out, " {value}");
    }
}

/// The exposition text of `f`.
pub fn render(f: &Figures, scenario: &str) -> String {
    let mut out = String::new();
    let labels = Labels::new(scenario);
    let gauges: [(&str, &str, f64); 4] = [
        (
            "roomrig_elapsed_seconds",
            "Seconds since the run's schedule started.",
            f.elapsed_s,
        ),
        (
            "roomrig_run_finished",
            "1 once the run is over and these are the report's figures, else 0.",
            if f.finished { 1.0 } else { 0.0 },
        ),
        (
            "roomrig_clients_planned",
            "Clients the schedule plans.",
            f.planned as f64,
        ),
        (
            "roomrig_connections_open",
            "Client connections open now.",
            f.open as f64,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        sample(&mut out, name, &labels, value);
    }
    let mut counters: Vec<(&str, &str, u64)> = vec![
        (
            "roomrig_connects_total",
            "Client connections made (handshake completed).",
            f.connected,
        ),
        (
            "roomrig_connect_errors_total",
            "Client connections that failed.",
            f.connect_errors,
        ),
        (
            "roomrig_requests_sent_total",
            "Requests the clients sent.",
            f.sent,
        ),
        (
            "roomrig_events_received_total",
            "Events the clients received: deliveries, replies, errors.",
            f.received,
        ),
        (
            "roomrig_violations_all_total",
            "Protocol violations the oracle found, all rules together.",
            f.violations,
        ),
    ];
    if let Some(closes) = f.unexpected_closes {
        counters.push((
            "roomrig_unexpected_closes_total",
            "Connections the server closed when the client did not ask.",
            closes,
        ));
    }
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        sample(&mut out, name, &labels, value as f64);
    }
    if !f.sent_by_op.is_empty() {
        let name = "roomrig_requests_sent_by_operation_total";
        family(
            &mut out,
            name,
            "counter",
            "Requests sent per operation of the dialect.",
        );
        for (op, n) in &f.sent_by_op {
            sample(&mut out, name, &labels.with("operation", op), *n as f64);
        }
    }
    if !f.rules.is_empty() {
        let name = "roomrig_violations_total";
        family(
            &mut out,
            name,
            "counter",
            "Protocol violations per rule id and level.",
        );
        for (rule, c) in &f.rules {
            let l = labels.with("rule", rule).with("level", &c.level);
            sample(&mut out, name, &l, c.count as f64);
        }
    }
    for (name, help, latencies) in [
        (
            "roomrig_latency_seconds",
            "Latency per roomrig metric over the whole run so far, from the intended send time.",
            &f.latency_run,
        ),
        (
            "roomrig_latency_last_second_seconds",
            "Latency per roomrig metric over the last completed second, from the intended send time.",
            &f.latency_second,
        ),
    ] {
        if latencies.is_empty() {
            continue;
        }
        family(&mut out, name, "summary", help);
        for (metric, lat) in latencies {
            let l = labels.with("metric", metric);
            for ((_, q), v) in QUANTILES.iter().zip(lat.quantiles_s) {
                sample(&mut out, name, &l.with("quantile", q), v);
            }
            sample(&mut out, &format!("{name}_sum"), &l, lat.sum_s);
            sample(&mut out, &format!("{name}_count"), &l, lat.count as f64);
        }
    }
    out
}

/// A level as the `level` label says it: `must`, `should`, `info` (`unknown` if none).
pub fn level_label(level: Option<crate::oracle::rules::Level>) -> String {
    level.map_or("unknown".to_string(), |l| l.to_string().to_lowercase())
}

/// The final figures of a run, from what the report shows.
pub fn final_figures(result: &crate::driver::RunResult) -> Figures {
    Figures {
        elapsed_s: result.duration.as_secs_f64(),
        finished: true,
        planned: result.planned_clients,
        open: 0,
        connected: result.connected,
        connect_errors: result.connect_errors,
        unexpected_closes: Some(result.unexpected_closes),
        sent: result.sent,
        sent_by_op: result.sent_by_op.clone(),
        received: result.received,
        violations: result.violations.values().map(|t| t.count).sum(),
        rules: result
            .violations
            .iter()
            .map(|(rule, t)| {
                (
                    rule.clone(),
                    RuleCount {
                        level: level_label(t.level),
                        count: t.count,
                    },
                )
            })
            .collect(),
        latency_run: result
            .metrics
            .iter()
            .map(|(name, pair)| (name.clone(), Latency::of(&pair.co)))
            .collect(),
        latency_second: result
            .intervals
            .iter()
            .filter_map(|(name, seconds)| {
                let (_, last) = seconds.last()?;
                Some((name.clone(), Latency::of(&last.co.histogram())))
            })
            .collect(),
    }
}

/// The summed progress lines of `--workers`' workers, `elapsed` into the run, and what
/// `seconds` gathered of their seconds (merged latencies, counts per rule).
pub fn show_live(
    board: &Board,
    live: &crate::share::Live,
    elapsed: Duration,
    seconds: Option<&crate::live_feed::Gatherer>,
) {
    board.update(|f| {
        f.elapsed_s = elapsed.as_secs_f64();
        f.planned = live.planned;
        f.open = live.active;
        f.connected = live.connected;
        f.connect_errors = live.connect_errors;
        f.unexpected_closes = None;
        f.sent = live.sent;
        f.received = live.received;
        f.violations = live.violations;
        if let Some(g) = seconds {
            g.fill(f);
        }
    });
}

/// The `/metrics` endpoint of a run: bound before anything connects, serving until dropped.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub board: Board,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    /// Listens on `addr` (`host:port`; port 0 picks a free one). A bad or busy address is the
    /// caller's usage error, said before the run starts.
    pub fn bind(addr: &str, scenario: &str) -> Result<Endpoint, String> {
        use std::net::ToSocketAddrs as _;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| format!("--metrics-listen {addr}: not an address to listen on (HOST:PORT, e.g. 127.0.0.1:9464): {e}"))?
            .collect();
        let listener = std::net::TcpListener::bind(&addrs[..])
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("--metrics-listen {addr}: cannot listen there: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
        let board = Board::default();
        let task = tokio::spawn(serve(listener, board.clone(), scenario.to_string()));
        Ok(Endpoint {
            addr: bound,
            board,
            task,
        })
    }
}

/// The most scrape connections served at once.
const MAX_SCRAPERS: usize = 16;

/// Accepts scrapers until aborted; each connection is served on its own task (aborted with
/// this one).
async fn serve(listener: tokio::net::TcpListener, board: Board, scenario: String) {
    let scenario: Arc<str> = scenario.into();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of descriptors or the like: a scraper may try again; the run goes on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        // A few scrapers at once are plenty; more connections are closed unanswered, so no
        // client of the endpoint can take the run's descriptors or time.
        if connections.len() >= MAX_SCRAPERS {
            continue;
        }
        let (board, scenario) = (board.clone(), scenario.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, &board, &scenario);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            // A scraper that hangs up or speaks nonsense ends only its own connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = http_body_util::Full<hyper::body::Bytes>;

fn respond<B>(req: &hyper::Request<B>, board: &Board, scenario: &str) -> hyper::Response<Body> {
    use hyper::{header, Method, Response, StatusCode};
    let plain = |status: StatusCode, text: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::new(text.into()))
            .expect("a valid response")
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => Response::builder()
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Body::new(board.render(scenario).into()))
            .expect("a valid response"),
        (&Method::GET | &Method::HEAD, _) => plain(
            StatusCode::NOT_FOUND,
            "roomrig serves its live metrics at /metrics\n".into(),
        ),
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        let mut h = crate::metrics::empty_histogram();
        for v in [1_000, 2_000, 3_000, 100_000] {
            h.record(v).unwrap();
        }
        Figures {
            elapsed_s: 2.5,
            planned: 10,
            open: 8,
            connected: 9,
            connect_errors: 1,
            unexpected_closes: Some(0),
            sent: 40,
            sent_by_op: BTreeMap::from([("message".into(), 30), ("join_room".into(), 10)]),
            received: 160,
            violations: 3,
            rules: BTreeMap::from([(
                "dorm/fanout/missing".into(),
                RuleCount {
                    level: "must".into(),
                    count: 3,
                },
            )]),
            latency_run: BTreeMap::from([("message.fanout".into(), Latency::of(&h))]),
            ..Figures::default()
        }
    }

    #[test]
    fn the_text_names_every_series_with_its_labels_and_units() {
        let text = render(&figures(), "dorm \"smoke\"\n");
        let s = r#"{scenario="dorm \"smoke\"\n"}"#;
        for line in [
            format!("roomrig_connects_total{s} 9"),
            format!("roomrig_events_received_total{s} 160"),
            format!("roomrig_connections_open{s} 8"),
            format!("roomrig_elapsed_seconds{s} 2.5"),
            r#"roomrig_violations_total{scenario="dorm \"smoke\"\n",rule="dorm/fanout/missing",level="must"} 3"#.into(),
            r#"roomrig_requests_sent_by_operation_total{scenario="dorm \"smoke\"\n",operation="message"} 30"#.into(),
            r#"roomrig_latency_seconds{scenario="dorm \"smoke\"\n",metric="message.fanout",quantile="0.5"} 0.002"#.into(),
            r#"roomrig_latency_seconds{scenario="dorm \"smoke\"\n",metric="message.fanout",quantile="1"} 0.100031"#.into(),
            r#"roomrig_latency_seconds_count{scenario="dorm \"smoke\"\n",metric="message.fanout"} 4"#.into(),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
        }
        assert!(text.contains("# TYPE roomrig_latency_seconds summary\n"));
        assert!(text.contains("# TYPE roomrig_connects_total counter\n"));
        // No second has completed: no last-second family.
        assert!(!text.contains("roomrig_latency_last_second_seconds"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn final_figures_stay_once_published() {
        let board = Board::default();
        let mut last = figures();
        last.finished = true;
        board.publish(last.clone(), Duration::ZERO);
        board.publish(Figures::default(), Duration::ZERO);
        board.update(|f| f.sent = 0);
        assert_eq!(board.figures(), last);
        assert!(board
            .render("s")
            .contains("roomrig_run_finished{scenario=\"s\"} 1\n"));
        // The next run on the same endpoint starts afresh.
        board.begin();
        board.publish(figures(), Duration::ZERO);
        assert!(!board.figures().finished);
    }

    #[tokio::test]
    async fn a_busy_or_bad_address_is_refused_and_the_endpoint_answers_scrapes() {
        let endpoint = Endpoint::bind("127.0.0.1:0", "s").unwrap();
        let busy = Endpoint::bind(&endpoint.addr.to_string(), "s")
            .err()
            .unwrap();
        assert!(busy.contains("cannot listen there"), "{busy}");
        let bad = Endpoint::bind("no-port", "s").err().unwrap();
        assert!(bad.contains("not an address"), "{bad}");
        endpoint.board.publish(figures(), Duration::from_micros(5));
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("roomrig_requests_sent_total{scenario=\"s\"} 40\n"));
        let mut s = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
        s.write_all(b"garbage\r\n\r\n").await.unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text).await;
        assert!(!text.contains("roomrig_"), "{text}");
    }

    #[tokio::test]
    async fn idle_connections_past_the_cap_are_closed_and_scrapes_resume() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let endpoint = Endpoint::bind("127.0.0.1:0", "s").unwrap();
        let mut idle = Vec::new();
        for _ in 0..MAX_SCRAPERS {
            idle.push(tokio::net::TcpStream::connect(endpoint.addr).await.unwrap());
        }
        let mut one_more = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
        let _ = one_more
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut text = String::new();
        let _ = one_more.read_to_string(&mut text).await;
        assert!(text.is_empty(), "closed unanswered: {text}");
        drop(idle);
        // Once the idle connections are gone a scrape is answered again.
        for attempt in 0.. {
            let mut s = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
            let _ = s
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut text = String::new();
            let _ = s.read_to_string(&mut text).await;
            if text.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(attempt < 100, "no answer after the idle connections closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
