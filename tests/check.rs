//! `roomrig check`: the healthy reference server passes every case of every suite, each defect
//! fails the case it breaks with the documented exit code, and a missing target fails fast.

mod common;

use std::process::Command;

use common::{serial, Served};

struct Checked {
    code: i32,
    stdout: String,
    stderr: String,
    junit: String,
    json: serde_json::Value,
}

fn roomrig_check(args: &[&str]) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let (junit, json) = (dir.path().join("junit.xml"), dir.path().join("check.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("check")
        .args(args)
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    Checked {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        junit: std::fs::read_to_string(&junit).unwrap_or_default(),
        json: std::fs::read_to_string(&json)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    }
}

/// The reference server in its own process, with a fast heartbeat.
fn served(args: &[&str]) -> Served {
    let mut all = vec!["--ping-interval-ms", "500", "--ping-timeout-ms", "500"];
    all.extend_from_slice(args);
    Served::start(&all)
}

fn status_of<'a>(c: &'a Checked, id: &str) -> &'a str {
    c.json
        .as_array()
        .and_then(|cases| cases.iter().find(|r| r["id"] == id))
        .and_then(|r| r["status"].as_str())
        .unwrap_or("absent")
}

#[test]
fn healthy_reference_server_passes_every_case_eio3_and_eio4() {
    for dialect in ["dorm", "lobby"] {
        for eio in ["3", "4"] {
            let _serial = serial();
            let c = roomrig_check(&["--dialect", dialect, "--eio", eio]);
            assert_eq!(
                c.code, 0,
                "{dialect} EIO {eio}:\n{}\n{}",
                c.stdout, c.stderr
            );
            let cases = c.json.as_array().unwrap();
            assert!(cases.len() >= 4, "{dialect}: a real suite");
            assert!(cases.iter().all(|r| r["status"] == "pass"), "{}", c.stdout);
            assert!(c
                .junit
                .contains(&format!("tests=\"{}\" failures=\"0\"", cases.len())));
        }
    }
}

/// Each defect class of the issue: (dialect, server fault, the case that must fail, a rule
/// that must be among its violations).
const DEFECTS: &[(&str, &str, &str, &str)] = &[
    (
        "dorm",
        "drop-broadcast=0.5",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/missing",
    ),
    (
        "dorm",
        "duplicate-broadcast",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/duplicate",
    ),
    (
        "dorm",
        "reorder-broadcast",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/order",
    ),
    (
        "dorm",
        "leak-to-non-member",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/non-member",
    ),
    (
        "dorm",
        "wrong-field-type",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/shape",
    ),
    (
        "dorm",
        "error-on-wrong-event",
        "dorm/errors/invalid-action",
        "dorm/action/error-wrong-event",
    ),
    (
        "dorm",
        "never-timeout",
        "dorm/connection/dead-heartbeat-closed",
        "dorm/connection/heartbeat-timeout-missing",
    ),
    (
        "lobby",
        "never-timeout",
        "lobby/connection/dead-heartbeat-closed",
        "lobby/connection/heartbeat-timeout-missing",
    ),
    (
        "lobby",
        "socket-id-room",
        "lobby/robustness/hostile-names",
        "lobby/gotRoomMessage/non-member",
    ),
    (
        "lobby",
        "no-leave-notice",
        "lobby/disconnect/announced",
        "lobby/otherLeftRoom/missing",
    ),
    (
        "lobby",
        "notify-non-member",
        "lobby/room/join-message-leave",
        "lobby/otherJoinedRoom/non-member",
    ),
];

#[test]
fn each_defect_fails_its_case() {
    for &(dialect, fault, case, rule) in DEFECTS {
        let _serial = serial();
        let server = served(&["--dialect", dialect, "--fault", fault]);
        let c = roomrig_check(&[
            "--dialect",
            dialect,
            "--target",
            &server.url,
            "--case",
            case,
            "--heartbeat-deadline-ms",
            "3000",
        ]);
        assert_eq!(c.code, 1, "{fault}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, case), "fail", "{fault}:\n{}", c.stdout);
        let rules = rules_of(&c, case);
        assert!(
            rules.iter().any(|r| r == rule),
            "{fault}: {rule} not in {rules:?}\n{}",
            c.stdout
        );
        assert!(c.junit.contains(&format!("name=\"{case}\"")), "{fault}");
        assert!(
            c.junit.contains("<failure"),
            "{fault}: JUnit shows the failure"
        );
    }
    // The same server without a defect passes as a foreign target too.
    let _serial = serial();
    let server = served(&["--dialect", "dorm"]);
    let c = roomrig_check(&["--dialect", "dorm", "--target", &server.url]);
    assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
}

/// A server that dies on a hostile room name: the case that sent it fails as MUST with the
/// `unresponsive` rule, the cases after it are skipped with the reason, the report is written,
/// and the exit code is the one for failures.
#[test]
fn a_crash_fails_the_case_that_caused_it_and_the_run_reports_the_rest() {
    let _serial = serial();
    let server = served(&[
        "--dialect",
        "lobby",
        "--fault",
        "crash-on-hostile-room-name",
    ]);
    let c = roomrig_check(&["--dialect", "lobby", "--target", &server.url]);
    assert_eq!(c.code, 1, "{}\n{}", c.stdout, c.stderr);
    let hostile = "lobby/robustness/hostile-names";
    assert_eq!(status_of(&c, hostile), "fail", "{}", c.stdout);
    assert!(
        rules_of(&c, hostile).contains(&"lobby/server/unresponsive".to_string()),
        "{}",
        c.stdout
    );
    let cases = c.json.as_array().unwrap();
    let at = cases.iter().position(|r| r["id"] == hostile).unwrap();
    assert!(
        cases[..at].iter().all(|r| r["status"] == "pass"),
        "{}",
        c.stdout
    );
    assert!(at + 1 < cases.len(), "cases follow the crashing one");
    for r in &cases[at + 1..] {
        assert_eq!(r["status"], "skipped", "{}", c.stdout);
        assert!(r["reason"].as_str().unwrap().contains(hostile), "{r}");
    }
    assert!(c.stdout.contains("server/unresponsive"), "{}", c.stdout);
}

/// The rule ids a case's result names.
fn rules_of(c: &Checked, id: &str) -> Vec<String> {
    c.json
        .as_array()
        .and_then(|cases| cases.iter().find(|r| r["id"] == id))
        .and_then(|r| r["violations"].as_array())
        .map(|v| {
            v.iter()
                .filter_map(|pair| pair[0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn missing_or_non_socketio_target_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let c = roomrig_check(&[
        "--dialect",
        "dorm",
        "--target",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(c.code, 5, "{}", c.stderr);
    assert!(c.stderr.contains("unreachable"), "{}", c.stderr);
    assert!(started.elapsed().as_secs() < 10);
    // A web server that is not Socket.IO: the same exit, a message that says so.
    let addr = common::plain_http_server();
    let c = roomrig_check(&["--dialect", "lobby", "--target", &format!("http://{addr}")]);
    assert_eq!(c.code, 5, "{}", c.stderr);
    assert!(
        c.stderr.contains("does not speak Socket.IO"),
        "{}",
        c.stderr
    );
}

#[test]
fn list_and_usage_errors() {
    let c = roomrig_check(&["--dialect", "lobby", "--list"]);
    assert_eq!(c.code, 0);
    assert!(c.stdout.contains("lobby/err/error-strings"), "{}", c.stdout);
    assert_eq!(roomrig_check(&["--dialect", "nope"]).code, 2);
    assert_eq!(
        roomrig_check(&["--dialect", "dorm", "--case", "dorm/none"]).code,
        2
    );
}
