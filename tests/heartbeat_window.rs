//! Heartbeat windows come from what the server advertised and from the client's own last
//! heartbeat: clients that stop at any moment relative to their last ping are never closed
//! "early" by a healthy server; a server that never closes them, or closes them before the
//! window it advertised, is caught (MUST); a cap shorter
//! than the advertised window reports "not observed" (INFO), never a failure. EIO 3 and 4.

mod common;

use common::{alone, repo_file, roomrig_run, Served};

const MOMENTS: &str = "tests/scenarios/heartbeat-moments.yaml";
const CAPPED: &str = "tests/scenarios/heartbeat-cap.yaml";

fn rule<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    &report["violations"]["by_rule"][id]
}

#[test]
fn healthy_server_closes_inside_the_window_at_every_moment_eio3_and_eio4() {
    for eio in ["3", "4"] {
        let _alone = alone();
        let o = roomrig_run(&repo_file(MOMENTS), &["--eio", eio]);
        assert_eq!(o.code, 0, "EIO {eio}: {}", o.explain());
        let s = o.report();
        assert!(
            rule(&s, "dorm/connection/heartbeat-timeout-early").is_null(),
            "EIO {eio}: {}",
            o.stdout
        );
        assert_eq!(s["violations"]["total"], 0, "EIO {eio}: {}", o.stdout);
        // Every dying client was closed by the server; none sooner than pingTimeout after
        // its drop (a ping it no longer answers, or the next it no longer sends, is due at
        // most one interval after the last).
        let close = &s["metrics"]["heartbeat.close"]["raw"];
        assert_eq!(close["count"], 8, "EIO {eio}: {close}");
        assert!(close["min_ms"].as_f64().unwrap() >= 480.0, "{close}");
    }
}

#[test]
fn never_timeout_is_caught_as_must_eio3_and_eio4() {
    for eio in ["3", "4"] {
        let _alone = alone();
        let o = roomrig_run(
            &repo_file(MOMENTS),
            &["--eio", eio, "--server-fault", "never-timeout"],
        );
        assert_eq!(o.code, 1, "EIO {eio}: {}", o.explain());
        let s = o.report();
        let missing = rule(&s, "dorm/connection/heartbeat-timeout-missing");
        assert_eq!(missing["count"], 8, "EIO {eio}: {}", o.stdout);
        assert_eq!(missing["level"], "MUST");
        assert!(rule(&s, "dorm/connection/heartbeat-timeout-not-observed").is_null());
    }
}

/// `early-timeout` advertises four times the pingTimeout it enforces: its closes come before
/// the advertised window, and are caught as early.
#[test]
fn early_timeout_is_caught_as_must_eio3_and_eio4() {
    for eio in ["3", "4"] {
        let _alone = alone();
        let o = roomrig_run(
            &repo_file(MOMENTS),
            &["--eio", eio, "--server-fault", "early-timeout"],
        );
        assert_eq!(o.code, 1, "EIO {eio}: {}", o.explain());
        let s = o.report();
        let early = rule(&s, "dorm/connection/heartbeat-timeout-early");
        assert_eq!(early["count"], 8, "EIO {eio}: {}", o.stdout);
        assert_eq!(early["level"], "MUST");
        assert!(
            early["examples"][0]["expected"]
                .as_str()
                .unwrap()
                .contains("pingTimeout 2000 ms"),
            "the advertised figure: {early}"
        );
    }
}

#[test]
fn a_cap_shorter_than_advertised_is_info_not_must_eio3_and_eio4() {
    for (eio, fault) in [("3", None), ("4", None), ("3", Some("never-timeout"))] {
        let _alone = alone();
        let mut args = vec!["--eio", eio];
        if let Some(f) = fault {
            args.extend(["--server-fault", f]);
        }
        let o = roomrig_run(&repo_file(CAPPED), &args);
        assert_eq!(o.code, 0, "EIO {eio} {fault:?}: {}", o.explain());
        let s = o.report();
        let info = rule(&s, "dorm/connection/heartbeat-timeout-not-observed");
        // 300 ms is shorter than any legitimate close (pingTimeout alone is 500 ms).
        assert_eq!(info["count"], 8, "EIO {eio} {fault:?}: {}", o.stdout);
        assert_eq!(info["level"], "INFO");
        let example = info["examples"][0].to_string();
        assert!(
            example.contains("pingInterval 500 ms") && example.contains("300 ms"),
            "both figures in the evidence: {example}"
        );
        assert!(rule(&s, "dorm/connection/heartbeat-timeout-missing").is_null());
    }
}

/// Against a target, the windows come from what the target advertises (here 500 ms + 500 ms),
/// and the scenario's `server:` block is announced as not applying.
#[test]
fn target_windows_come_from_its_handshake_and_the_server_block_is_flagged() {
    for eio in ["3", "4"] {
        let _alone = alone();
        let server = Served::start(&[
            "--dialect",
            "dorm",
            "--generate-users",
            "8",
            "--ping-interval-ms",
            "500",
            "--ping-timeout-ms",
            "500",
        ]);
        let o = roomrig_run(
            &repo_file(MOMENTS),
            &["--eio", eio, "--target", &server.url],
        );
        assert_eq!(o.code, 0, "EIO {eio}: {}", o.explain());
        assert_eq!(
            o.stderr
                .matches("applies to the embedded reference server only")
                .count(),
            1,
            "{}",
            o.stderr
        );
    }
}

/// `check` against a target whose advertised heartbeat (2 s + 2 s) exceeds
/// `--heartbeat-deadline-ms`: the dead-heartbeat cases report "not observed", and pass.
#[test]
fn check_heartbeat_cases_beyond_the_cap_are_not_observed_not_failed() {
    for (dialect, case) in [
        ("dorm", "dorm/connection/dead-heartbeat-closed"),
        ("lobby", "lobby/connection/dead-heartbeat-closed"),
    ] {
        let _alone = alone();
        let server = Served::start(&[
            "--dialect",
            dialect,
            "--ping-interval-ms",
            "2000",
            "--ping-timeout-ms",
            "2000",
            "--fault",
            "never-timeout",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("check.json");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomrig"))
            .args(["check", "--dialect", dialect, "--target", &server.url])
            .args(["--case", case, "--heartbeat-deadline-ms", "1000", "--json"])
            .arg(&json)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{dialect}: {stdout}");
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(results[0]["status"], "pass", "{dialect}: {stdout}");
    }
}
