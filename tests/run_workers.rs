//! End-to-end: `roomrig run --workers N` splits a scenario's clients across driver processes
//! (whole fixture rooms each), merges their results losslessly and gives one report and one
//! verdict, the same as one process on the same scenario and seed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use common::{permit, repo_file, Outcome};

/// Runs `roomrig run SCENARIO ARGS...` (scenario relative to the repository), one load at a time.
/// These tests are about splitting and merging, not timing: a generator slowed by other jobs
/// on the machine must not turn a run invalid, so the lateness bound is far away.
fn run(scenario: &str, args: &[&str]) -> Outcome {
    let _permit = permit();
    let mut all = args.to_vec();
    all.extend(["--max-lateness-ms", "60000"]);
    common::roomrig_run(&repo_file(scenario), &all)
}

/// The figures that must not depend on how many processes ran the clients.
fn totals(s: &Value) -> BTreeMap<String, Value> {
    let mut t = BTreeMap::new();
    for k in [
        "planned",
        "users_available",
        "connected",
        "connect_errors",
        "unexpected_closes",
    ] {
        t.insert(format!("clients.{k}"), s["clients"][k].clone());
    }
    for k in ["sent", "received"] {
        t.insert(format!("events.{k}"), s["events"][k].clone());
    }
    // Checked deliveries and every other latency sample, per metric; not `runtime.lag`, a
    // timer each process samples for as long as it runs.
    for (name, m) in s["metrics"].as_object().unwrap() {
        if name == "runtime.lag" {
            continue;
        }
        t.insert(format!("{name}.co.count"), m["co"]["count"].clone());
        t.insert(format!("{name}.raw.count"), m["raw"]["count"].clone());
    }
    t.insert("violations.total".into(), s["violations"]["total"].clone());
    t.insert("verdict".into(), s["verdict"]["status"].clone());
    t
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Samples per tag and second of an interval log.
fn hlog_seconds(path: &Path) -> BTreeMap<(String, u64), u64> {
    let mut out = BTreeMap::new();
    for i in roomrig::hlog::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        *out.entry((i.tag, i.start_s as u64)).or_default() += i.histogram.len();
    }
    out
}

fn hlog_counts(path: &Path) -> BTreeMap<String, u64> {
    roomrig::workers::read_hlog(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|(tag, h)| (tag, h.len()))
        .collect()
}

#[test]
fn two_workers_give_the_same_totals_and_verdict_as_one_process() {
    let scenario = "tests/scenarios/dorm-exact.yaml";
    let one = run(scenario, &["--workers", "1", "--op-log"]);
    let two = run(scenario, &["--workers", "2", "--op-log"]);
    assert_eq!(one.code, 0, "{}", one.explain());
    assert_eq!(two.code, one.code, "{}", two.explain());
    let (s1, s2) = (one.report(), two.report());
    assert_eq!(totals(&s2), totals(&s1), "{}", two.stdout);
    assert_eq!(s2["events"]["received"], 136);
    assert_eq!(s2["metrics"]["message.fanout"]["co"]["count"], 96);
    // The union of the workers is exactly the single-process run: the same operations.
    assert_eq!(
        read(&two.dir.path().join("ops.log")),
        read(&one.dir.path().join("ops.log"))
    );
    // Whole rooms per worker (2 rooms of 4), each worker on its own source address.
    let workers = s2["processes"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for (k, w) in workers.iter().enumerate() {
        assert_eq!(w["planned"], 4, "{w}");
        assert_eq!(w["source_addr"], format!("127.0.0.{}", k + 2));
        assert_eq!(w["status"], "pass");
    }
    assert!(
        s1.get("processes").is_none(),
        "one process has no processes section"
    );
    assert!(s2["replay"].as_str().unwrap().ends_with("--workers 2"));
}

#[test]
fn merged_histogram_counts_are_the_sums_of_the_workers() {
    let o = run("tests/scenarios/dorm-faults.yaml", &["--workers", "2"]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let dir = o.dir.path();
    let merged = hlog_counts(&dir.join("histograms.hlog"));
    let parts: Vec<BTreeMap<String, u64>> = (0..2)
        .map(|k| hlog_counts(&dir.join(format!("worker-{k}/histograms.hlog"))))
        .collect();
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for p in &parts {
        assert!(!p.is_empty(), "each worker measured something");
        for (tag, n) in p {
            *sum.entry(tag.clone()).or_default() += n;
        }
    }
    assert_eq!(merged, sum);
    assert!(merged["message.fanout.co"] > 0);
    // Second by second too: the merged log's intervals are the workers' added up.
    let merged_seconds = hlog_seconds(&dir.join("histograms.hlog"));
    let mut sum_seconds: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for k in 0..2 {
        for (key, n) in hlog_seconds(&dir.join(format!("worker-{k}/histograms.hlog"))) {
            *sum_seconds.entry(key).or_default() += n;
        }
    }
    assert_eq!(merged_seconds, sum_seconds);
    let fanout_seconds = merged_seconds
        .keys()
        .filter(|(tag, _)| tag == "message.fanout.co")
        .count();
    assert!(
        fanout_seconds >= 2,
        "one interval per second: {merged_seconds:?}"
    );
    // The logs agree with the summaries written from the in-memory histograms.
    let check = |summary: &Value, counts: &BTreeMap<String, u64>| {
        for (name, m) in summary["metrics"].as_object().unwrap() {
            assert_eq!(m["co"]["count"], counts[&format!("{name}.co")], "{name}");
            assert_eq!(m["raw"]["count"], counts[&format!("{name}.raw")], "{name}");
        }
    };
    check(&o.report(), &merged);
    let mut planned = 0;
    for (k, counts) in parts.iter().enumerate() {
        let s: Value =
            serde_json::from_str(&read(&dir.join(format!("worker-{k}/summary.json")))).unwrap();
        check(&s, counts);
        planned += s["clients"]["planned"].as_u64().unwrap();
    }
    assert_eq!(o.report()["clients"]["planned"], planned);
}

/// A defect of the server is caught with two workers exactly as with one process.
#[test]
fn a_defect_is_caught_with_two_workers_as_with_one() {
    let scenario = "tests/scenarios/dorm-faults.yaml";
    let rule = "dorm/message/missing";
    for args in [
        &["--workers", "1"][..],
        &["--workers", "2"],
        &["--workers", "2", "--server-procs", "2"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--server-fault", "drop-broadcast=0.2"]);
        let o = run(scenario, &all);
        assert_eq!(o.code, 1, "{args:?}: {}", o.explain());
        let s = o.report();
        assert_eq!(s["verdict"]["status"], "violations", "{args:?}");
        assert!(
            o.rules().iter().any(|r| r == rule),
            "{args:?}: {:?}",
            o.rules()
        );
        let example = &s["violations"]["by_rule"][rule]["examples"][0];
        assert!(!example["transcript"].as_array().unwrap().is_empty());
        // The replay names the binary that ran (it is not `roomrig` on PATH here).
        assert!(
            o.stdout
                .lines()
                .any(|l| l.starts_with("replay: ") && l.contains("roomrig run ")),
            "{args:?}"
        );
    }
}

#[test]
fn several_server_processes_serve_the_workers() {
    let o = run(
        "tests/scenarios/dorm-exact.yaml",
        &["--workers", "2", "--server-procs", "2"],
    );
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["events"]["received"], 136);
    assert_eq!(s["violations"]["total"], 0);
    let servers = s["processes"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    let workers = s["processes"]["workers"].as_array().unwrap();
    assert_eq!(workers[0]["target"], servers[0]["url"]);
    assert_eq!(workers[1]["target"], servers[1]["url"]);
    assert!(s["replay"]
        .as_str()
        .unwrap()
        .ends_with("--workers 2 --server-procs 2"));
}

#[test]
fn workers_are_refused_where_they_cannot_judge_everything() {
    // lobby delivers to every connection: no worker could see every receiver.
    let o = run("tests/scenarios/lobby-exact.yaml", &["--workers", "2"]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(o.stderr.contains("cannot be split"), "{}", o.stderr);
    assert!(o.summary().is_none(), "nothing runs");
    let o = run("tests/scenarios/dorm-exact.yaml", &["--server-procs", "2"]);
    assert_eq!(o.code, 2, "{}", o.explain());
    let o = run(
        "tests/scenarios/dorm-exact.yaml",
        &["--workers", "2", "--server-procs", "3"],
    );
    assert_eq!(o.code, 2, "{}", o.explain());
}

/// Ctrl-C reaches the parent only; it forwards it to the workers and still writes the merged
/// report of what ran.
#[test]
fn interrupt_with_workers_still_writes_the_merged_report() {
    let _permit = permit();
    let r = common::interrupted_run("scenarios/dorm-smoke.yaml", &["--workers", "2"]);
    assert_eq!(r.code, Some(130), "{}", r.output);
    let s = &r.summary;
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["verdict"]["status"], "interrupted");
    assert!(
        s["events"]["sent"].as_u64().unwrap() > 0,
        "the report covers what ran"
    );
    for w in s["processes"]["workers"].as_array().unwrap() {
        assert_eq!(w["status"], "interrupted", "{w}");
    }
}

/// SIGTERM to the parent of a `--workers` run reaches every child: the merged report is
/// written, the code is 143, and no worker or server outlives the run.
#[test]
fn sigterm_with_workers_leaves_no_process_behind() {
    let _permit = permit();
    let r = common::signalled_run(
        "scenarios/dorm-smoke.yaml",
        &["--workers", "2", "--server-procs", "2"],
        libc::SIGTERM,
    );
    assert_eq!(r.code, Some(143), "{}", r.output);
    assert_eq!(r.summary["verdict"]["status"], "interrupted");
    assert_eq!(r.children, 4, "two workers and two servers were running");
    assert!(r.leftovers.is_empty(), "still running: {:?}", r.leftovers);
}
