//! Hostile numbers, files and paths: refused with exit 2 and a clear sentence before anything
//! is allocated or connected; a scenario that plans nobody never passes; an unreachable target
//! still leaves a JUnit file and a summary.

mod common;

use std::path::Path;
use std::process::Command;

use common::{repo_file, roomrig_run};

#[test]
fn a_scenario_that_plans_no_client_is_a_usage_error() {
    let o = roomrig_run(&repo_file("tests/scenarios/nobody.yaml"), &[]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(o.stderr.contains("plans no client"), "{}", o.stderr);
    assert!(o.summary().is_none(), "nothing ran");
}

#[test]
fn a_device_as_scenario_is_refused_without_filling_memory() {
    let o = roomrig_run(Path::new("/dev/zero"), &[]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(o.stderr.contains("larger than"), "{}", o.stderr);
}

#[test]
fn serve_refuses_a_billion_generated_users() {
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--generate-users",
            "1000000000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1000000000"), "{stderr}");
}

/// An output path that cannot be written is found before the run, not after it.
#[test]
fn unwritable_outputs_are_refused_before_the_run() {
    let scenario = repo_file("scenarios/dorm-smoke.yaml");
    for args in [
        vec!["--report-dir", "/proc/roomrig-nowhere/run"],
        vec!["--junit", "/proc/roomrig-nowhere.xml"],
    ] {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
            .arg("run")
            .arg(&scenario)
            .args(&args)
            .arg("--no-progress")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write /proc/roomrig-nowhere"),
            "{stderr}"
        );
        // dorm-smoke runs for ~20 s: nothing of it ran.
        assert!(started.elapsed().as_secs() < 10, "{args:?}");
    }
}

/// Exit 5 (the server is not there) writes a JUnit file with one failed case and a summary.
#[test]
fn an_unreachable_target_still_writes_junit_and_summary() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let report = dir.path().join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("run")
        .arg(repo_file("scenarios/dorm-smoke.yaml"))
        .args([
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--no-progress",
        ])
        .arg("--junit")
        .arg(&junit)
        .arg("--report-dir")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("target-reachable") && xml.contains("failures=\"1\""),
        "{xml}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["verdict"]["status"], "unreachable");
    assert_eq!(summary["verdict"]["exit_code"], 5);
}

/// A target roomrig cannot drive is the user's mistake (exit 2, with the reason), not an
/// unreachable server (exit 5).
#[test]
fn an_https_or_malformed_target_is_a_usage_error() {
    let scenario = repo_file("scenarios/dorm-smoke.yaml");
    for (target, says) in [
        ("https://127.0.0.1:1", "TLS"),
        ("http://", "no host"),
        ("ftp://127.0.0.1:1", "http:// or ws://"),
    ] {
        let o = roomrig_run(&scenario, &["--target", target]);
        assert_eq!(o.code, 2, "{target}: {}", o.explain());
        assert!(o.stderr.contains(says), "{target}: {}", o.stderr);
    }
}
