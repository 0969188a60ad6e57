//! Thresholds checked before the run (a typo is exit 2 before any connection) and during it
//! (`abort_on_fail`); the scenario changed from the command line (`--set`) and from the
//! environment (`${VAR}`).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use common::{permit, repo_file, Outcome};

fn scenario(name: &str) -> PathBuf {
    repo_file("tests/scenarios").join(name)
}

/// `roomrig run SCENARIO ARGS... --no-progress` with `env` set (`None`: removed).
fn run_with_env(
    scenario: &std::path::Path,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> Outcome {
    let _permit = permit();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomrig"));
    cmd.arg("run")
        .arg(scenario)
        .args(args)
        .arg("--no-progress")
        .arg("--report-dir")
        .arg(dir.path());
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().expect("roomrig runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

fn run(scenario: &std::path::Path, args: &[&str]) -> Outcome {
    run_with_env(scenario, args, &[])
}

/// A target that only listens: after the run, whether anything connected to it.
struct Listener(TcpListener);

impl Listener {
    fn new() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Listener(l)
    }
    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().unwrap())
    }
    fn was_connected(&self) -> bool {
        self.0.accept().is_ok()
    }
}

#[test]
fn a_misspelt_metric_is_refused_before_any_connection() {
    let target = Listener::new();
    let path = scenario("threshold-typo.yaml");
    let o = run(&path, &["--target", &target.url()]);
    assert_eq!(o.code, 2, "{}", o.explain());
    // The file, line and column of the threshold, the metric, and the names it could be.
    assert!(
        o.stderr.contains(&format!("{}:12:5: ", path.display())),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("no metric `mesage.fanout`"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("did you mean `message.fanout`?"),
        "{}",
        o.stderr
    );
    for known in ["join_room.last_data", "action.fanout", "connect"] {
        assert!(o.stderr.contains(known), "{known}: {}", o.stderr);
    }
    assert!(
        !target.was_connected(),
        "nothing connects before the scenario is valid"
    );
    assert!(o.summary().is_none(), "nothing ran");
}

#[test]
fn unknown_statistics_and_units_are_refused_before_any_connection() {
    let target = Listener::new();
    for (set, says) in [
        (
            "thresholds[1]=message.fanout.p98 < 250ms",
            "unknown statistic `p98`",
        ),
        (
            "thresholds[1]=message.fanout.p99 < 250 parsecs",
            "unknown unit `parsecs`",
        ),
        ("thresholds[1]=violations < 3ms", "takes no unit"),
    ] {
        let o = run(
            &scenario("threshold-typo.yaml"),
            &["--target", &target.url(), "--set", set],
        );
        assert_eq!(o.code, 2, "{set}: {}", o.explain());
        assert!(o.stderr.contains(says), "{set}: {}", o.stderr);
        // The value came from the command line: the error names the argument.
        assert!(o.stderr.contains(&format!("--set {set}: ")), "{}", o.stderr);
    }
    assert!(!target.was_connected());
}

/// p75 and p95 are statistics; every threshold shows its actual value with its unit; `--set`
/// changes the number of users before the scenario is read.
#[test]
fn percentiles_and_a_count_set_on_the_command_line() {
    let o = run(
        &scenario("threshold-percentiles.yaml"),
        &["--set", "users.generate.count=8"],
    );
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    // The file says 4 users; 10 arrivals are planned, so the 8 users bound them.
    assert_eq!(s["clients"]["planned"], 8, "{}", o.stdout);
    assert_eq!(s["scenario"]["config"]["users"]["generate"]["count"], 8);
    let outcomes = s["thresholds"].as_array().unwrap();
    let units: Vec<&str> = outcomes
        .iter()
        .map(|t| t["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["count", "ms", "ms", "%"]);
    for t in outcomes {
        assert_eq!(t["passed"], true, "{t}");
        assert!(t["actual"].is_number(), "{t}");
    }
    let p95 = outcomes[1]["actual"].as_f64().unwrap();
    assert!(p95 > 0.0, "{p95}");
    assert!(
        o.stdout.contains("message.fanout.p95 < 10s") && o.stdout.contains(" ms"),
        "{}",
        o.stdout
    );
    // The replay command reads the scenario the same way.
    let replay = s["replay"].as_str().unwrap();
    assert!(
        replay.ends_with(" --set users.generate.count=8"),
        "{replay}"
    );
}

#[test]
fn an_unknown_set_path_is_a_usage_error_naming_it() {
    let target = Listener::new();
    for (set, says) in [
        ("users.generate.cont=3", "unknown field `cont`"),
        ("phases[4].duration=3s", "`phases[4]` does not exist"),
        ("users.generate.count=0", "between 1 and"),
    ] {
        let o = run(
            &scenario("threshold-percentiles.yaml"),
            &["--target", &target.url(), "--set", set],
        );
        assert_eq!(o.code, 2, "{set}: {}", o.explain());
        assert!(o.stderr.contains(&format!("--set {set}: ")), "{}", o.stderr);
        assert!(o.stderr.contains(says), "{set}: {}", o.stderr);
    }
    assert!(!target.was_connected());
}

#[test]
fn an_unset_variable_is_located_and_a_set_one_is_used() {
    let path = scenario("env-duration.yaml");
    let o = run_with_env(&path, &[], &[("ROOMRIG_TEST_DURATION", None)]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(
        o.stderr.contains(&format!(
            "{}:5:17: environment variable `ROOMRIG_TEST_DURATION` is not set",
            path.display()
        )),
        "{}",
        o.stderr
    );
    // A value is checked like the rest of the file, at the variable's place.
    let o = run_with_env(
        &path,
        &[],
        &[("ROOMRIG_TEST_DURATION", Some("3 fortnights"))],
    );
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(
        o.stderr.contains(":5:17: ")
            && o.stderr
                .contains("in the value of ${ROOMRIG_TEST_DURATION}"),
        "{}",
        o.stderr
    );
    let o = run_with_env(&path, &[], &[("ROOMRIG_TEST_DURATION", Some("200ms"))]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["scenario"]["config"]["phases"][0]["duration"], "200ms");
    let replay = s["replay"].as_str().unwrap();
    assert!(
        replay.starts_with("ROOMRIG_TEST_DURATION=200ms roomrig run "),
        "{replay}"
    );
}

/// A latency threshold no server meets stops a minute-long run after its delay, as Ctrl-C
/// would: a report of what ran, the threshold as the reason, exit 3.
#[test]
fn abort_on_fail_stops_the_run_early() {
    let o = run(&scenario("threshold-abort.yaml"), &[]);
    assert_eq!(o.code, 3, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["verdict"]["status"], "thresholds");
    assert_eq!(
        s["aborted"]["outcome"]["threshold"],
        "message.fanout.p99 < 0.001ms"
    );
    assert_eq!(s["aborted"]["outcome"]["unit"], "ms");
    let reason = s["verdict"]["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("stopped early") && reason.contains("0.001ms"),
        "{reason}"
    );
    // Checked from 1 s on, every second: far below the scenario's 60 s.
    let at = s["aborted"]["at_s"].as_f64().unwrap();
    assert!(at >= 1.0, "{at}");
    let duration = s["duration_s"].as_f64().unwrap();
    assert!(duration < 20.0, "the run lasted {duration} s");
    assert_eq!(s["interrupted"], false);
    assert!(
        s["metrics"]["message.fanout"]["co"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// A violation count stops the run too: a server that drops every other broadcast.
#[test]
fn abort_on_fail_on_violations_stops_a_faulty_server_early() {
    let o = run(
        &scenario("threshold-abort.yaml"),
        &[
            "--set",
            "thresholds[0].threshold=violations.must == 0",
            "--server-fault",
            "drop-broadcast=0.5",
        ],
    );
    assert_eq!(o.code, 3, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["aborted"]["outcome"]["threshold"], "violations.must == 0");
    assert!(s["aborted"]["outcome"]["actual"].as_f64().unwrap() >= 1.0);
    assert!(s["violations"]["must"].as_u64().unwrap() >= 1);
    let duration = s["duration_s"].as_f64().unwrap();
    assert!(duration < 20.0, "the run lasted {duration} s");
}

/// Every worker process reads the scenario with the same `--set` arguments.
#[test]
fn workers_read_the_scenario_with_the_same_overrides() {
    let o = run(
        &scenario("threshold-percentiles.yaml"),
        &["--workers", "2", "--set", "users.generate.count=8"],
    );
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["clients"]["planned"], 8, "{}", o.stdout);
    assert_eq!(s["clients"]["connected"], 8, "{}", o.stdout);
}
