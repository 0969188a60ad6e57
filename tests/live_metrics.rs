//! `roomrig run --metrics-listen`: a real run serves its live figures in the Prometheus text
//! format; an independent parser (the reference Python client's, installed by this test into
//! a virtualenv under the target directory) reads every scrape; the last scrape, taken after
//! the report is written, equals `summary.json`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::repo_file;
use serde_json::Value;

/// The virtualenv's python, with tests/python/prometheus-requirements.txt installed (once).
fn python() -> PathBuf {
    common::python_venv(
        "prometheus-pyvenv",
        "tests/python/prometheus-requirements.txt",
    )
    .join("bin/python")
}

/// One series: its name and labels (without `scenario`, checked on every sample).
type Key = (String, BTreeMap<String, String>);

/// A sample as the parser prints it: family, type, name, labels, value.
type Sample = (String, String, String, BTreeMap<String, String>, f64);

/// A scrape as the independent parser read it.
struct Scrape(BTreeMap<Key, f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut child = Command::new(python())
            .arg(repo_file("tests/python/parse_metrics.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the parser runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the parser rejected the text: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let samples: Vec<Sample> = serde_json::from_slice(&out.stdout).unwrap();
        let mut all = BTreeMap::new();
        for (family, kind, name, mut labels, value) in samples {
            assert!(name.starts_with("roomrig_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} of {family}");
            }
            assert_eq!(
                labels.remove("scenario").as_deref(),
                Some("dorm-exact"),
                "{name}"
            );
            all.insert((name, labels), value);
        }
        Scrape(all)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.get(&(name.to_string(), labels)).copied()
    }

    fn value(&self, name: &str) -> f64 {
        self.get(name, &[])
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.0.keys()))
    }

    /// Every counter series (`_total`, or a summary's `_count`).
    fn counters(&self) -> BTreeMap<&Key, f64> {
        self.0
            .iter()
            .filter(|((n, _), _)| n.ends_with("_total") || n.ends_with("_count"))
            .filter(|((n, _), _)| !n.starts_with("roomrig_latency_last_second"))
            .map(|(k, v)| (k, *v))
            .collect()
    }
}

/// `GET /metrics` at `addr`: the body of a 200 answer.
fn scrape(addr: &str) -> Scrape {
    let mut s = std::net::TcpStream::connect(addr).expect("the endpoint accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    Scrape::parse(body)
}

/// A `roomrig run --metrics-listen 127.0.0.1:0` in its own process, its output read as it
/// comes.
struct LiveRun {
    child: Child,
    addr: String,
    stdout: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

/// A test that fails does not leave its run lingering (`--metrics-linger 10m`).
impl Drop for LiveRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LiveRun {
    fn start(scenario: &str, args: &[&str]) -> LiveRun {
        // The parser is ready before the run starts: its first install takes a while.
        python();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomrig"))
            .arg("run")
            .arg(repo_file(scenario))
            .args(args)
            // Long enough to scrape after the report; the test ends it with Ctrl-C.
            .args(["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "10m"])
            .args(["--no-progress", "--report-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roomrig runs");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut addr = None;
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(url) = line.trim().strip_prefix("metrics: serving http://") {
                addr = url.strip_suffix("/metrics").map(str::to_string);
                break;
            }
            seen.push_str(&line);
            line.clear();
        }
        let addr = addr.unwrap_or_else(|| panic!("no address on stderr:\n{seen}"));
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let (tx, stdout) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        LiveRun {
            child,
            addr,
            stdout,
            dir,
        }
    }

    /// Waits until the run says it wrote `summary.json`: the report is complete, the endpoint
    /// still up (lingering).
    fn wait_for_report(&self) {
        loop {
            let line = self
                .stdout
                .recv_timeout(Duration::from_secs(120))
                .expect("the run writes its report");
            if line.starts_with("wrote ") && line.ends_with("summary.json") {
                return;
            }
        }
    }

    fn summary(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("summary.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Ctrl-C ends the lingering; the verdict's exit code stays.
    fn stop(mut self) -> i32 {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// Scrapes until `done` holds of a live (unfinished) scrape; `None` if the run finished first.
fn scrape_until(addr: &str, done: impl Fn(&Scrape) -> bool) -> Option<Scrape> {
    loop {
        let s = scrape(addr);
        if s.value("roomrig_run_finished") == 1.0 {
            return None;
        }
        if done(&s) {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each counter of `later` is at least the same counter of `earlier`.
fn assert_grown(earlier: &Scrape, later: &Scrape) {
    let later_counters = later.counters();
    for (key, before) in earlier.counters() {
        let after = later_counters
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} went away"));
        assert!(*after >= before, "{key:?} went from {before} to {after}");
    }
}

#[test]
fn a_run_serves_growing_figures_and_at_the_end_the_report_s() {
    let _permit = common::permit();
    // Drops a fifth of the broadcasts: violations by rule id to count.
    let run = LiveRun::start(
        "tests/scenarios/dorm-exact.yaml",
        &["--server-fault", "drop-broadcast=0.2"],
    );
    // Two scrapes while the run goes: the first snapshot, then one a moment later.
    let first = scrape_until(&run.addr, |s| s.value("roomrig_elapsed_seconds") > 0.0)
        .expect("a live snapshot before the run ends");
    assert_eq!(first.value("roomrig_clients_planned"), 8.0);
    assert!(first
        .get(
            "roomrig_latency_last_second_seconds_count",
            &[("metric", "connect")]
        )
        .is_some());
    std::thread::sleep(Duration::from_millis(800));
    let second = scrape(&run.addr);
    assert_grown(&first, &second);

    run.wait_for_report();
    let last = scrape(&run.addr);
    assert_grown(&second, &last);
    assert_eq!(last.value("roomrig_run_finished"), 1.0);
    let s = run.summary();
    let n = |v: &Value| v.as_f64().unwrap();
    for (metric, field) in [
        ("roomrig_events_received_total", &s["events"]["received"]),
        ("roomrig_requests_sent_total", &s["events"]["sent"]),
        ("roomrig_connects_total", &s["clients"]["connected"]),
        (
            "roomrig_connect_errors_total",
            &s["clients"]["connect_errors"],
        ),
        (
            "roomrig_unexpected_closes_total",
            &s["clients"]["unexpected_closes"],
        ),
        ("roomrig_violations_all_total", &s["violations"]["total"]),
    ] {
        assert_eq!(last.value(metric), n(field), "{metric}");
    }
    let by_rule = s["violations"]["by_rule"].as_object().unwrap();
    assert!(!by_rule.is_empty(), "the fault is caught");
    for (rule, tally) in by_rule {
        let level = tally["level"].as_str().unwrap().to_lowercase();
        assert_eq!(
            last.get(
                "roomrig_violations_total",
                &[("rule", rule), ("level", &level)]
            ),
            Some(n(&tally["count"])),
            "{rule}"
        );
    }
    for (op, count) in s["events"]["sent_by_operation"].as_object().unwrap() {
        assert_eq!(
            last.get(
                "roomrig_requests_sent_by_operation_total",
                &[("operation", op)]
            ),
            Some(n(count)),
            "{op}"
        );
    }
    // The whole run's latencies are the report's, to the microsecond.
    for (metric, m) in s["metrics"].as_object().unwrap() {
        let co = &m["co"];
        let l = [("metric", metric.as_str())];
        assert_eq!(
            last.get("roomrig_latency_seconds_count", &l),
            Some(n(&co["count"])),
            "{metric}"
        );
        for (q, field) in [
            ("0.5", "p50_ms"),
            ("0.99", "p99_ms"),
            ("0.999", "p999_ms"),
            ("1", "max_ms"),
        ] {
            let served = last
                .get(
                    "roomrig_latency_seconds",
                    &[("metric", metric.as_str()), ("quantile", q)],
                )
                .unwrap_or_else(|| panic!("{metric} {q}"));
            assert!(
                (served * 1e3 - n(&co[field])).abs() < 1e-6,
                "{metric} quantile {q}: served {served} s, report {} ms",
                co[field]
            );
        }
    }
    assert!(last.value("roomrig_metrics_snapshots_total") >= 2.0);
    assert_eq!(run.stop(), 1, "the verdict's exit code: violations");
}

#[test]
fn a_busy_or_bad_address_is_a_usage_error_before_any_connection() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    for (addr, says) in [
        (busy.as_str(), "cannot listen there"),
        ("nowhere", "not an address"),
    ] {
        let o = common::roomrig_run(
            &repo_file("tests/scenarios/dorm-exact.yaml"),
            &["--metrics-listen", addr],
        );
        assert_eq!(o.code, 2, "{}", o.explain());
        assert!(o.stderr.contains(says), "{}", o.explain());
        assert!(o.summary().is_none(), "nothing ran: {}", o.explain());
    }
}

#[test]
fn with_two_workers_the_parent_serves_their_sum() {
    let _permit = common::permit();
    let run = LiveRun::start("tests/scenarios/dorm-exact.yaml", &["--workers", "2"]);
    // Each worker drives one room of 4: 8 connections, and 8 connect latencies, seen live are
    // both workers' together.
    let connects = [("metric", "connect")];
    let live = scrape_until(&run.addr, |s| {
        s.value("roomrig_connects_total") == 8.0
            && s.get("roomrig_latency_seconds_count", &connects) == Some(8.0)
    })
    .expect("all 8 connections seen live before the run ends");
    assert_eq!(live.value("roomrig_clients_planned"), 8.0);

    run.wait_for_report();
    let last = scrape(&run.addr);
    assert_grown(&live, &last);
    let s = run.summary();
    assert_eq!(
        last.value("roomrig_events_received_total"),
        s["events"]["received"].as_f64().unwrap()
    );
    assert_eq!(
        last.get(
            "roomrig_latency_seconds_count",
            &[("metric", "message.fanout")]
        ),
        s["metrics"]["message.fanout"]["co"]["count"].as_f64()
    );
    assert_eq!(run.stop(), 0);
}

/// A shard (`run --shard K/N`) has no parent to serve its figures: it serves its own, and at
/// its end its own report's.
#[test]
fn a_shard_serves_its_own_figures() {
    let _permit = common::permit();
    let server = common::Served::dorm_of_eight();
    // The parser first: on a clean machine its install takes longer than the start margin,
    // which made the shard start late (exit 4, no endpoint left to scrape) in CI.
    python();
    let start = std::time::SystemTime::now() + Duration::from_secs(3);
    let start = start
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .to_string();
    let run = LiveRun::start(
        "tests/scenarios/dorm-exact.yaml",
        &[
            "--shard",
            "0/1",
            "--start-at",
            &start,
            "--target",
            &server.url,
        ],
    );
    let live = scrape_until(&run.addr, |s| s.value("roomrig_connects_total") == 8.0)
        .expect("the shard's 8 connections seen live before it ends");
    run.wait_for_report();
    let last = scrape(&run.addr);
    assert_grown(&live, &last);
    assert_eq!(last.value("roomrig_run_finished"), 1.0);
    let s = run.summary();
    assert_eq!(
        last.value("roomrig_events_received_total"),
        s["events"]["received"].as_f64().unwrap()
    );
    assert_eq!(s["events"]["received"].as_f64(), Some(136.0));
    assert_eq!(run.stop(), 0);
}
