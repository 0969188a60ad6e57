//! `roomrig capacity`: against a reference server whose latency grows once it is asked for
//! more than 1,000 deliveries per second (`latency-above=1000`), the search finds the knee
//! where the switch puts it, within the resolution; the healthy server passes every step up
//! to a small --max; an SLO broken at the first step exits 3, a generator that falls behind
//! exits 4, a usage error 2. The scenario (tests/scenarios/capacity-small.yaml) sends
//! 40 clients × 2 messages/s × 4 members = 320 deliveries/s at load ×1, so the fault puts the
//! knee at ×1000/320 = ×3.125.

mod common;

use std::path::Path;
use std::process::Command;

use common::repo_file;
use serde_json::Value;

const SCENARIO: &str = "tests/scenarios/capacity-small.yaml";

struct Capacity {
    code: i32,
    stdout: String,
    stderr: String,
    dir: tempfile::TempDir,
}

impl Capacity {
    fn json(&self) -> Value {
        let path = self.dir.path().join("out/capacity.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\nstdout:\n{}\nstderr:\n{}",
                path.display(),
                self.stdout,
                self.stderr
            )
        });
        serde_json::from_slice(&text).unwrap()
    }

    fn explain(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn capacity(args: &[&str]) -> Capacity {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .current_dir(dir.path())
        .arg("capacity")
        .arg(repo_file(SCENARIO))
        .args(args)
        .arg("--report-dir")
        .arg(dir.path().join("out"))
        .output()
        .expect("roomrig runs");
    Capacity {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

fn loads(c: &Value) -> Vec<f64> {
    c["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["load"].as_f64().unwrap())
        .collect()
}

#[test]
fn finds_the_knee_the_latency_fault_puts_there() {
    let knee_expected = 1000.0 / 320.0;
    let run = capacity(&[
        "--server-fault",
        "latency-above=1000",
        "--slo",
        "message.fanout.p99 < 200ms",
        "--start",
        "1",
        "--factor",
        "2",
        "--max",
        "8",
        "--resolution",
        "10%",
    ]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let c = run.json();
    assert_eq!(c["outcome"], "knee", "{}", run.explain());
    let pass = c["knee"]["load"].as_f64().unwrap();
    let fail = c["knee"]["first_fail"].as_f64().unwrap();
    assert!(
        (pass - knee_expected).abs() / knee_expected <= 0.10,
        "knee {pass}, expected {knee_expected}: {}",
        run.explain()
    );
    assert!(fail > pass && fail <= pass * 1.10 + 1e-9, "{pass} {fail}");
    // It stepped up by the factor, then bisected between the last pass and the first fail.
    assert_eq!(&loads(&c)[..3], &[1.0, 2.0, 4.0], "{}", run.explain());
    let steps = c["steps"].as_array().unwrap();
    for s in steps {
        let dir = run.dir.path().join("out").join(s["dir"].as_str().unwrap());
        assert!(dir.join("summary.json").is_file(), "{}", dir.display());
        assert!(s["server_cpu_cores"].is_number(), "{s}");
        // Below the knee the server kept up: the SLO's p99 is far below the fault's delays.
        let p99 = s["metrics"]["message.fanout"]["p99_ms"].as_f64().unwrap();
        let load = s["load"].as_f64().unwrap();
        assert_eq!(s["outcome"] == "pass", load <= pass, "{s}");
        if load >= knee_expected * 1.1 {
            assert!(p99 >= 200.0, "{s}");
        }
    }
    assert!(run.stdout.contains("knee at ×"), "{}", run.explain());
    // The page is a function of capacity.json: `roomrig report` renders the same page again.
    let out = run.dir.path().join("out");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains(&format!("data-points=\"{}\"", steps.len())));
    assert!(page.contains("capacity-throughput") && page.contains("capacity-latency-"));
    std::fs::remove_file(out.join("report.html")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("report.html")).unwrap(),
        page
    );
}

/// Shorter steps where the figures do not matter.
const SHORT: [&str; 2] = ["--set", "clients[0].flow[3].loop.duration=2s"];

#[test]
fn the_healthy_server_passes_every_step_up_to_max() {
    let mut args = SHORT.to_vec();
    args.extend(["--start", "1", "--factor", "2", "--max", "3"]);
    let run = capacity(&args);
    assert_eq!(run.code, 0, "{}", run.explain());
    let c = run.json();
    assert_eq!(c["outcome"], "no_knee_below_max", "{}", run.explain());
    assert_eq!(loads(&c), vec![1.0, 2.0, 3.0]);
    assert_eq!(c["knee"]["load"], 3.0);
    assert!(c["knee"]["first_fail"].is_null());
    assert!(run.stdout.contains("no knee below ×3"), "{}", run.explain());
}

#[test]
fn an_slo_broken_at_the_first_step_exits_3() {
    let mut args = SHORT.to_vec();
    args.extend(["--slo", "message.fanout.p50 < 0.001ms"]);
    let run = capacity(&args);
    assert_eq!(run.code, 3, "{}", run.explain());
    let c = run.json();
    assert_eq!(c["outcome"], "failed_at_first_step");
    assert_eq!(loads(&c), vec![1.0]);
    assert!(c["knee"].is_null());
    let reasons = c["steps"][0]["reasons"].to_string();
    assert!(
        reasons.contains("message.fanout.p50 < 0.001ms"),
        "{reasons}"
    );
}

#[test]
fn a_generator_that_falls_behind_is_not_the_servers_limit() {
    // Any lateness at all is over a 0 ms bound: the first step is invalid.
    let mut args = SHORT.to_vec();
    args.extend(["--max-lateness-ms", "0"]);
    let run = capacity(&args);
    assert_eq!(run.code, 4, "{}", run.explain());
    let c = run.json();
    assert_eq!(c["outcome"], "generator_limit");
    assert!(run.stdout.contains("--workers"), "{}", run.explain());
}

#[test]
fn usage_errors_exit_2_before_anything_runs() {
    for args in [
        &["--factor", "1"][..],
        &["--start", "4", "--max", "2"],
        &["--resolution", "0%"],
        &["--slo", "mesage.fanout.p99 < 1ms"],
        &["--slo", "message.fanout.p99 <"],
        &["--vary", "sideways"],
        &["--server-pid", "1"],
        &[
            "--target",
            "http://127.0.0.1:9",
            "--server-fault",
            "latency-above=10",
        ],
        &["--vary", "clients", "--max", "10000000"],
    ] {
        let run = capacity(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.explain());
        assert!(
            !Path::new(&run.dir.path().join("out/capacity.json")).exists(),
            "{args:?}"
        );
    }
}

#[test]
fn a_target_server_is_driven_and_its_cpu_read_from_its_pid() {
    use std::io::BufRead as _;
    let mut server = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--generate-users",
            "40",
            "--room-size",
            "4",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let pid = server.id().to_string();
    let mut args = SHORT.to_vec();
    args.extend([
        "--start",
        "1",
        "--max",
        "1",
        "--target",
        &url,
        "--server-pid",
        &pid,
    ]);
    let run = capacity(&args);
    server.kill().ok();
    server.wait().ok();
    assert_eq!(run.code, 0, "{}", run.explain());
    let c = run.json();
    assert_eq!(c["target"], url.as_str());
    assert_eq!(c["embedded_reference_server"], false);
    assert_eq!(c["outcome"], "no_knee_below_max");
    // Read from /proc/PID/stat (clock ticks: a light step may read 0).
    let cores = c["steps"][0]["server_cpu_cores"].as_f64().unwrap();
    assert!((0.0..2.0).contains(&cores), "{}", run.explain());
}

#[test]
fn varying_clients_runs_each_step_with_that_many_clients() {
    let mut args = SHORT.to_vec();
    args.extend(["--vary", "clients", "--start", "20", "--max", "40"]);
    let run = capacity(&args);
    assert_eq!(run.code, 0, "{}", run.explain());
    let c = run.json();
    assert_eq!(c["vary"], "clients");
    assert_eq!(c["base_clients"], 40);
    assert_eq!(loads(&c), vec![20.0, 40.0]);
    for s in c["steps"].as_array().unwrap() {
        assert_eq!(s["clients"].as_f64(), s["load"].as_f64(), "{s}");
    }
}
