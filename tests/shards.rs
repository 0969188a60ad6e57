//! End-to-end: a run across machines, played on loopback. Shard processes of `roomrig run
//! --shard K/N --start-at TIME` are started independently (no parent; each its own source
//! address and report directory) against one reference server in its own process, then
//! `roomrig merge` joins their directories: the merged totals, verdict and ops.log equal one
//! process with the same seed; a shard killed mid-run or ready after its start bound makes the
//! merged run invalid, which still reports the rest.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{permit, repo_file, Served};

const SCENARIO: &str = "tests/scenarios/dorm-exact.yaml";

fn roomrig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roomrig"))
}

/// The dorm server of the scenario's users, in its own process.
fn server() -> Served {
    Served::dorm_of_eight()
}

/// Unix seconds `ahead` from now: the start every shard is given. Far enough ahead that a
/// debug build on a busy machine is connected and waiting by then.
fn start_in(ahead: Duration) -> (String, SystemTime) {
    let at = SystemTime::now() + ahead;
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    (format!("{secs:.3}"), at)
}

/// Starts shard `k` of `n` into `dir`, binding 127.0.0.(k + 2).
fn spawn_shard(k: u32, n: u32, start_at: &str, target: &str, dir: &Path, more: &[&str]) -> Child {
    roomrig()
        .arg("run")
        .arg(repo_file(SCENARIO))
        .args(["--shard", &format!("{k}/{n}"), "--start-at", start_at])
        .args([
            "--target",
            target,
            "--source-addr",
            &format!("127.0.0.{}", k + 2),
        ])
        .arg("--report-dir")
        .arg(dir)
        .args(["--op-log", "--no-progress"])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roomrig run --shard starts")
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("the shard ends")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn explain(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn merge(dirs: &[&Path], out: &Path) -> Output {
    roomrig()
        .arg("merge")
        .args(dirs)
        .arg("--report-dir")
        .arg(out)
        .output()
        .expect("roomrig merge runs")
}

fn summary(dir: &Path) -> Value {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The figures that must not depend on how many processes ran the clients (as in
/// tests/run_workers.rs).
fn totals(s: &Value) -> BTreeMap<String, Value> {
    let mut t = BTreeMap::new();
    for k in [
        "planned",
        "connected",
        "connect_errors",
        "unexpected_closes",
    ] {
        t.insert(format!("clients.{k}"), s["clients"][k].clone());
    }
    for k in ["sent", "received"] {
        t.insert(format!("events.{k}"), s["events"][k].clone());
    }
    for (name, m) in s["metrics"].as_object().unwrap() {
        if name == "runtime.lag" {
            continue;
        }
        t.insert(format!("{name}.co.count"), m["co"]["count"].clone());
    }
    t.insert("violations.total".into(), s["violations"]["total"].clone());
    t.insert("verdict".into(), s["verdict"]["status"].clone());
    t
}

fn reasons(s: &Value) -> String {
    s["verdict"]["reasons"].to_string()
}

/// A copy of a shard's directory with one field of its shard.json changed.
fn altered(dir: &Path, to: &Path, field: &str, value: Value) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let mut f: Value = serde_json::from_str(&read(&to.join("shard.json"))).unwrap();
    f[field] = value;
    std::fs::write(to.join("shard.json"), f.to_string()).unwrap();
    to.to_path_buf()
}

#[test]
fn shards_merge_into_the_run_of_one_process() {
    let _permit = permit();
    let served = server();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..2)
        .map(|k| tmp.path().join(format!("shard-{k}")))
        .collect();
    let (at, _) = start_in(Duration::from_millis(2500));
    // A threshold only the whole run meets: each shard receives 68 of the 136 events.
    let threshold = ["--set", "thresholds=[\"received > 100\"]"];
    let shards: Vec<Child> = (0..2)
        .map(|k| {
            spawn_shard(
                k,
                2,
                &at,
                &served.url,
                &dirs[k as usize],
                &["--max-lateness-ms", "60000", threshold[0], threshold[1]],
            )
        })
        .collect();
    for (k, out) in shards.into_iter().map(finish).enumerate() {
        assert_eq!(code(&out), 3, "shard {k} alone fails it: {}", explain(&out));
    }
    // The same scenario and seed in one process, against the same server.
    let one_dir = tmp.path().join("one");
    let one = roomrig()
        .arg("run")
        .arg(repo_file(SCENARIO))
        .args(["--target", &served.url, "--op-log", "--no-progress"])
        .args(threshold)
        .args(["--max-lateness-ms", "60000", "--report-dir"])
        .arg(&one_dir)
        .output()
        .unwrap();
    assert_eq!(code(&one), 0, "{}", explain(&one));

    let merged = tmp.path().join("merged");
    let out = merge(&[&dirs[0], &dirs[1]], &merged);
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let (s1, sm) = (summary(&one_dir), summary(&merged));
    assert_eq!(totals(&sm), totals(&s1));
    // Judged on the merged data, as one process judges it.
    assert_eq!(sm["thresholds"][0]["passed"], true, "{}", sm["thresholds"]);
    assert_eq!(sm["thresholds"], s1["thresholds"]);
    assert_eq!(sm["events"]["received"], 136);
    assert_eq!(
        read(&merged.join("ops.log")),
        read(&one_dir.join("ops.log"))
    );
    assert!(merged.join("report.html").is_file() && merged.join("histograms.hlog").is_file());
    // Whole rooms per shard, each from its own source address.
    let shards = sm["processes"]["workers"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    for (k, w) in shards.iter().enumerate() {
        assert_eq!(w["planned"], 4, "{w}");
        assert_eq!(w["source_addr"], format!("127.0.0.{}", k + 2));
        assert_eq!(w["status"], "thresholds");
        let f: Value = serde_json::from_str(&read(&dirs[k].join("shard.json"))).unwrap();
        assert_eq!(
            (f["shard"].as_u64(), f["shards"].as_u64()),
            (Some(k as u64), Some(2))
        );
        assert_eq!(f["state"], "ran");
    }

    // Parts of another run, or one shard twice, are refused, naming the parts.
    let refused = |dirs: &[&Path], names: &str| {
        let out = merge(dirs, &tmp.path().join(format!("refused-{}", dirs.len())));
        assert_eq!(code(&out), 2, "{}", explain(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{names}: {err}");
    };
    refused(&[&dirs[0], &dirs[0]], "are both shard 0 of 2");
    for (field, value, says) in [
        ("seed", Value::from(8), "seeds differ"),
        ("shards", Value::from(3), "shard counts differ"),
        ("scenario_hash", Value::from("sha256:00"), "scenarios"),
    ] {
        let other = altered(
            &dirs[1],
            &tmp.path().join(format!("other-{field}")),
            field,
            value,
        );
        refused(&[&dirs[0], &other], says);
        refused(&[&dirs[0], &other], &other.display().to_string());
    }

    // A missing shard: the merged run is invalid and reports the shard that ran.
    let half = tmp.path().join("half");
    let out = merge(&[&dirs[0]], &half);
    assert_eq!(code(&out), 4, "{}", explain(&out));
    let s = summary(&half);
    assert_eq!(s["verdict"]["status"], "invalid");
    assert_eq!(s["clients"]["connected"], 4);
    assert!(
        reasons(&s).contains("shard 1") && reasons(&s).contains("missing"),
        "{s}"
    );
}

#[test]
fn a_shard_killed_mid_run_makes_the_merged_run_invalid_and_the_rest_still_reports() {
    let _permit = permit();
    let served = server();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..2)
        .map(|k| tmp.path().join(format!("shard-{k}")))
        .collect();
    let (at, when) = start_in(Duration::from_millis(2500));
    let mut shards: Vec<Child> = (0..2)
        .map(|k| {
            spawn_shard(
                k,
                2,
                &at,
                &served.url,
                &dirs[k as usize],
                &["--max-lateness-ms", "60000"],
            )
        })
        .collect();
    // The scenario runs ~3 s: at 1.5 s every client of shard 1 is connected and in its flow.
    let kill_at = when + Duration::from_millis(1500);
    std::thread::sleep(
        kill_at
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    );
    shards[1].kill().unwrap(); // SIGKILL
    let mut outs = shards.into_iter().map(finish);
    let first = outs.next().unwrap();
    assert_eq!(code(&first), 0, "{}", explain(&first));
    let killed = outs.next().unwrap();
    assert_eq!(killed.status.code(), None, "ended by the signal");

    let merged = tmp.path().join("merged");
    let out = merge(&[&dirs[0], &dirs[1]], &merged);
    assert_eq!(code(&out), 4, "{}", explain(&out));
    let s = summary(&merged);
    assert_eq!(s["verdict"]["status"], "invalid");
    let why = reasons(&s);
    assert!(
        why.contains("shard 1") && why.contains("stopped before its end"),
        "{why}"
    );
    // Shard 0's share is all there.
    assert_eq!(s["clients"]["connected"], 4);
    assert_eq!(s["events"]["received"], 68);
    assert_eq!(s["processes"]["workers"][1]["status"], "no results");
    // What it was to run is still said.
    assert_eq!(s["processes"]["workers"][1]["planned"], 4);
}

#[test]
fn a_shard_ready_after_its_start_bound_runs_nothing_and_is_invalid() {
    let _permit = permit();
    let served = server();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("late");
    // The agreed start passed 2 s ago; the bound is the run's lateness bound (100 ms).
    let (at, _) = start_in(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(300));
    let out = finish(spawn_shard(1, 2, &at, &served.url, &dir, &[]));
    assert_eq!(code(&out), 4, "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("after --start-at") && err.contains("ran no load"),
        "{err}"
    );
    let f: Value = serde_json::from_str(&read(&dir.join("shard.json"))).unwrap();
    assert_eq!(f["state"], "late");
    assert_eq!(f["exit_code"], 4);
    // Its part makes a merge invalid, naming it and why.
    let merged = tmp.path().join("merged");
    let out = merge(&[&dir], &merged);
    assert_eq!(code(&out), 4, "{}", explain(&out));
    let why = reasons(&summary(&merged));
    assert!(
        why.contains("shard 1") && why.contains("after --start-at"),
        "{why}"
    );
    assert!(why.contains("shard 0") && why.contains("missing"), "{why}");

    // A bound that allows it: the same lateness runs (its first sends count as late).
    let ok_dir = tmp.path().join("allowed");
    let (at, _) = start_in(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(300));
    let out = finish(spawn_shard(
        0,
        2,
        &at,
        &served.url,
        &ok_dir,
        &[
            "--max-start-lateness-ms",
            "30000",
            "--max-lateness-ms",
            "60000",
        ],
    ));
    assert_eq!(code(&out), 0, "{}", explain(&out));
    let s = summary(&ok_dir);
    assert_eq!(s["clients"]["connected"], 4);
    assert!(
        s["metrics"]["send.lateness"]["co"]["max_ms"]
            .as_f64()
            .unwrap()
            >= 300.0,
        "{s}"
    );
}

#[test]
fn shards_need_a_target_a_report_dir_and_a_splittable_dialect() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        roomrig()
            .arg("run")
            .args(args)
            .args(["--start-at", "2030-01-01T00:00:00Z", "--report-dir"])
            .arg(tmp.path().join(format!("d{}", args.len())))
            .output()
            .unwrap()
    };
    let scenario = repo_file(SCENARIO).display().to_string();
    let no_target = run(&[&scenario, "--shard", "0/2"]);
    assert_eq!(code(&no_target), 2, "{}", explain(&no_target));
    assert!(String::from_utf8_lossy(&no_target.stderr).contains("needs a target"));
    let bad = run(&[
        &scenario,
        "--shard",
        "2/2",
        "--target",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code(&bad), 2, "{}", explain(&bad));
    let lobby = repo_file("scenarios/lobby-smoke.yaml")
        .display()
        .to_string();
    let out = run(&[&lobby, "--shard", "0/2", "--target", "http://127.0.0.1:9"]);
    assert_eq!(code(&out), 2, "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be split"),
        "{}",
        explain(&out)
    );
    // Not a shard's directory.
    let out = merge(&[tmp.path()], &tmp.path().join("m"));
    assert_eq!(code(&out), 2, "{}", explain(&out));
}
