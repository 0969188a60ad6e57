//! End-to-end: the `roomrig` binary drives the embedded reference server over real loopback
//! sockets, and the report says exactly what happened.

mod common;

use std::path::PathBuf;

use serde_json::Value;

use common::{permit, repo_file, Outcome};

fn scenario(name: &str) -> PathBuf {
    repo_file("tests/scenarios").join(name)
}

/// Runs `roomrig run ARGS...` (the scenario first), one load at a time.
fn roomrig_run(args: &[&str]) -> Outcome {
    let _permit = permit();
    common::roomrig_run(std::path::Path::new(args[0]), &args[1..])
}

fn rules(summary: &Value) -> Vec<String> {
    summary["violations"]["by_rule"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn exact_run(eio: &str) {
    let path = scenario("dorm-exact.yaml");
    let o = roomrig_run(&[path.to_str().unwrap(), "--eio", eio]);
    let s = &o.report();
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(s["scenario"]["eio"], eio);
    assert_eq!(s["clients"]["connected"], 8);
    assert_eq!(s["events"]["sent"], 48, "{}", o.stdout);
    assert_eq!(s["events"]["received"], 136, "{}", o.stdout);
    assert_eq!(s["violations"]["total"], 0, "{}", o.stdout);
    assert_eq!(s["metrics"]["message.fanout"]["co"]["count"], 96);
    assert_eq!(s["metrics"]["action.fanout"]["co"]["count"], 32);
    assert_eq!(s["metrics"]["join_room.last_data"]["co"]["count"], 8);
    assert_eq!(s["verdict"]["status"], "pass");
    // CO-corrected latency counts from the intended time, so it is never below the raw one.
    let co = s["metrics"]["message.fanout"]["co"]["max_ms"]
        .as_f64()
        .unwrap();
    let raw = s["metrics"]["message.fanout"]["raw"]["max_ms"]
        .as_f64()
        .unwrap();
    assert!(co >= raw, "co max {co} < raw max {raw}");
}

#[test]
fn exact_counts_and_no_violation_eio4() {
    exact_run("4");
}

#[test]
fn exact_counts_and_no_violation_eio3() {
    exact_run("3");
}

/// Each test-only defect of the reference server is caught under the matching rule, and the
/// run exits with the violations code (1).
#[test]
fn oracle_catches_each_server_fault() {
    let cases = [
        ("drop-broadcast=0.2", "dorm/message/missing"),
        ("leak-to-non-member", "dorm/message/non-member"),
        ("omit-time", "dorm/message/shape"),
        ("error-on-wrong-event", "dorm/action/error-wrong-event"),
        ("duplicate-broadcast", "dorm/message/duplicate"),
    ];
    let path = scenario("dorm-faults.yaml");
    for (fault, rule) in cases {
        let o = roomrig_run(&[path.to_str().unwrap(), "--server-fault", fault]);
        let s = &o.report();
        assert_eq!(o.code, 1, "{fault}: {}\n{}", o.stdout, o.stderr);
        assert!(
            rules(s).iter().any(|r| r == rule),
            "{fault}: expected rule {rule}, got {:?}",
            rules(s)
        );
        let example = &s["violations"]["by_rule"][rule]["examples"][0];
        assert!(
            !example["transcript"].as_array().unwrap().is_empty(),
            "{fault}: a violation carries the client's transcript"
        );
        // The replay names the binary that ran (it is not `roomrig` on PATH here).
        assert!(
            o.stdout
                .lines()
                .any(|l| l.starts_with("replay: ") && l.contains("roomrig run ")),
            "{fault}"
        );
    }
    // The same scenario against the healthy server is clean.
    let o = roomrig_run(&[path.to_str().unwrap()]);
    let s = &o.report();
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(s["violations"]["total"], 0);
    assert!(
        s["metrics"]["action.error"]["co"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn bad_scenario_names_file_line_and_field() {
    let path = scenario("bad-field.yaml");
    let o = roomrig_run(&[path.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.summary().is_none(), "nothing runs");
    assert!(o.stderr.contains("bad-field.yaml:5:"), "{}", o.stderr);
    assert!(o.stderr.contains("arival_rate"), "{}", o.stderr);
}

#[test]
fn missing_scenario_file_is_a_usage_error() {
    let o = roomrig_run(&["tests/scenarios/no-such-file.yaml"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("no-such-file.yaml"), "{}", o.stderr);
}

#[test]
fn unreachable_target_fails_fast_with_its_own_code() {
    // Bind then drop a listener: the port is closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let o = roomrig_run(&[
        scenario("dorm-exact.yaml").to_str().unwrap(),
        "--target",
        &target,
    ]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(o.stderr.contains("unreachable"), "{}", o.stderr);
    assert!(o.stderr.contains(&target), "{}", o.stderr);
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn plain_http_target_is_refused_as_not_socketio() {
    let addr = common::plain_http_server();
    let o = roomrig_run(&[
        scenario("dorm-exact.yaml").to_str().unwrap(),
        "--target",
        &format!("http://{addr}"),
    ]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(
        o.stderr.contains("does not speak Socket.IO"),
        "{}",
        o.stderr
    );
}

/// Ctrl-C (SIGINT) stops the load, and the report of what ran is still written.
#[test]
fn interrupt_still_writes_the_report() {
    let r = common::interrupted_run("scenarios/dorm-smoke.yaml", &[]);
    assert!(r.stop_seconds < 10.0, "stops promptly");
    assert_eq!(r.code, Some(130), "{}", r.output);
    let s = &r.summary;
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["verdict"]["status"], "interrupted");
    assert!(
        s["events"]["sent"].as_u64().unwrap() > 0,
        "the report covers what ran"
    );
    assert!(s["duration_s"].as_f64().unwrap() < 10.0);
}

/// SIGTERM (`timeout`, CI cancellation) and SIGHUP (a closed terminal) stop a run as Ctrl-C
/// does, with the report, and the code says which signal it was.
#[test]
fn sigterm_and_sighup_stop_like_ctrl_c() {
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let r = common::signalled_run("scenarios/dorm-smoke.yaml", &[], signal);
        assert_eq!(r.code, Some(code), "{}", r.output);
        assert_eq!(r.summary["verdict"]["status"], "interrupted");
        assert!(r.summary["events"]["sent"].as_u64().unwrap() > 0);
    }
}

/// A generator starved of CPU gives the invalid-run verdict, not a latency report.
#[test]
fn overloaded_generator_is_an_invalid_run() {
    let o = roomrig_run(&[scenario("dorm-overload.yaml").to_str().unwrap()]);
    assert_eq!(o.code, 4, "{}\n{}", o.stdout, o.stderr);
    let s = o.report();
    assert_eq!(s["verdict"]["status"], "invalid");
    let reason = s["verdict"]["reasons"][0].as_str().unwrap();
    assert!(reason.contains("generator fell behind"), "{reason}");
    assert!(
        s["metrics"]["send.lateness"]["co"]["p99_ms"]
            .as_f64()
            .unwrap()
            > 100.0
    );
}

/// `roomrig serve` runs the reference server on its own, and `roomrig run --target` drives it
/// with a users file of its own accounts (ids, names, tokens and rooms the driver was given).
#[test]
fn drives_a_separate_server_with_a_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let mut list = Vec::new();
    for i in 0..8u64 {
        list.push(serde_json::json!({
            "user_id": 500 + i,
            "username": format!("resident-{i}"),
            "token": format!("secret-{}", 7919 * (i + 3)),
            "room_id": 70 + i / 4,
        }));
    }
    let rooms: Vec<Value> = (0..2u64)
        .map(|r| serde_json::json!({"room_id": 70 + r, "room_name": format!("A-{r}"), "owner_id": 500 + 4 * r, "room_size": 4}))
        .collect();
    std::fs::write(
        &users,
        serde_json::to_string(&serde_json::json!({"users": list, "rooms": rooms})).unwrap(),
    )
    .unwrap();
    let server = common::Served::start(&["--dialect", "dorm", "--users", users.to_str().unwrap()]);
    let url = server.url.clone();
    let o = roomrig_run(&[
        scenario("dorm-exact.yaml").to_str().unwrap(),
        "--target",
        &url,
        "--users",
        users.to_str().unwrap(),
    ]);
    drop(server);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let s = o.report();
    assert_eq!(s["target"]["url"], url.as_str());
    assert_eq!(s["target"]["embedded_reference_server"], false);
    assert_eq!(s["events"]["received"], 136);
    assert_eq!(s["violations"]["total"], 0);
    let replay = s["replay"].as_str().unwrap();
    assert!(
        replay.contains(&format!("--target {url}")) && replay.contains("--users"),
        "{replay}"
    );
}

/// A conforming run that misses a threshold exits 3, and the JUnit output names the threshold.
#[test]
fn failed_threshold_has_its_own_exit_code_and_junit_case() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("run.xml");
    let o = roomrig_run(&[
        scenario("dorm-threshold.yaml").to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 3, "{}\n{}", o.stdout, o.stderr);
    let s = o.report();
    assert_eq!(s["verdict"]["status"], "thresholds");
    let outcomes = s["thresholds"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0]["passed"], true);
    assert_eq!(outcomes[1]["passed"], false);
    assert_eq!(
        outcomes[2]["passed"], true,
        "16 deliveries: 4 messages x 4 members"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"5\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains("name=\"threshold: message.fanout.p99 &lt; 1us\" time=\"0.000\"><failure"),
        "{xml}"
    );
    assert!(xml.contains("name=\"conformance\""), "{xml}");
}
