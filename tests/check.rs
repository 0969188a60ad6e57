//! `roomrig check`: the healthy reference server passes every case of every suite, each defect
//! fails the case it breaks with the documented exit code, and a missing target fails fast.

mod common;

use std::process::Command;

use common::Served;

/// At most this many `check` runs at once in this binary. A run is nearly all waiting (the
/// dorm suite: 40 s of wall time, 0.8 s of CPU), so runs go side by side; the verdicts must
/// not depend on how loaded the machine is anyway, and a flaky case here would say they do.
const RUNS_AT_ONCE: usize = 8;

/// The `check` runs (each with its server) of this binary.
static CHECK_RUNS: common::Pool = common::Pool::new(RUNS_AT_ONCE);

fn permit() -> common::Permit<'static> {
    CHECK_RUNS.permit()
}

fn side_by_side<T: Sync>(items: &[T], each: impl Fn(&T) + Sync) {
    CHECK_RUNS.side_by_side(items, each)
}

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
        .arg("--report-dir")
        .arg(dir.path().join("report"))
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
    // chat: a store per server, not the default file shared by every test.
    all.extend_from_slice(&["--chat-db", ":memory:"]);
    all.extend_from_slice(args);
    Served::start(&all)
}

/// `check --dialect DIALECT --target URL --case CASE EXTRA...`
fn check_one(dialect: &str, url: &str, case: &str, extra: &[&str]) -> Checked {
    let mut args = vec!["--dialect", dialect, "--target", url, "--case", case];
    args.extend_from_slice(extra);
    roomrig_check(&args)
}

/// The run exited `code` and `case` ended `status` with exactly `rules` violated.
fn assert_case(c: &Checked, case: &str, code: i32, status: &str, rules: &[&str]) {
    assert_eq!(c.code, code, "{}\n{}", c.stdout, c.stderr);
    assert_eq!(status_of(c, case), status, "{}", c.stdout);
    assert_eq!(rules_of(c, case), rules, "{}", c.stdout);
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
    let runs: Vec<(&str, &str)> = ["dorm", "lobby", "chat", "push"]
        .into_iter()
        .flat_map(|d| [(d, "3"), (d, "4")])
        .collect();
    side_by_side(&runs, |&(dialect, eio)| {
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
    });
}

/// Dialects over plain WebSocket have no Engine.IO generation: their healthy suite runs once.
#[test]
fn healthy_reference_server_passes_every_plain_websocket_case() {
    side_by_side(&["voice"], |&dialect| {
        let c = roomrig_check(&["--dialect", dialect]);
        assert_eq!(c.code, 0, "{dialect}:\n{}\n{}", c.stdout, c.stderr);
        let cases = c.json.as_array().unwrap();
        assert!(!cases.is_empty(), "{dialect}: a suite");
        assert!(cases.iter().all(|r| r["status"] == "pass"), "{}", c.stdout);
        assert!(!c.stderr.contains("warning"), "{}", c.stderr);
    });
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
        "lobby/robustness/join-room-socket-id",
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
        "keep-name-on-disconnect",
        "lobby/login/name-free-after-disconnect",
        "lobby/login/error-unexpected",
    ),
    (
        "lobby",
        "keep-name-on-disconnect",
        "lobby/login/reconnect-right-after-login",
        "lobby/login/error-unexpected",
    ),
    (
        "lobby",
        "prototype-names-exist",
        "lobby/robustness/unknown-prototype-rooms",
        "lobby/roomMessage/error-missing",
    ),
    (
        "lobby",
        "prototype-names-exist",
        "lobby/robustness/private-to-prototype-names",
        "lobby/privateMessage/error-missing",
    ),
    (
        "lobby",
        "notify-non-member",
        "lobby/room/join-message-leave",
        "lobby/otherJoinedRoom/non-member",
    ),
    (
        "chat",
        "chat-lose-offline",
        "chat/saoff/offline-exactly-once",
        "chat/saoff/missing",
    ),
    (
        "chat",
        "chat-offline-twice",
        "chat/saoff/offline-exactly-once",
        "chat/saoff/duplicate",
    ),
    (
        "chat",
        "chat-misdeliver",
        "chat/receivefsmg/friend-and-group-delivery",
        "chat/receivefsmg/missing",
    ),
    (
        "chat",
        "chat-accept-before-auth",
        "chat/sendfsmg/no-effect-before-auth-or-forged",
        "chat/receivefsmg/unknown",
    ),
    (
        "voice",
        "voice-exit-to-nobody",
        "voice/exit_room/one-member-told",
        "voice/exit_room/missing",
    ),
    (
        "voice",
        "voice-exit-to-everyone",
        "voice/exit_room/one-member-told",
        "voice/exit_room/duplicate",
    ),
    (
        "voice",
        "voice-room-remembered",
        "voice/users_me/room-emptied-on-departure",
        "voice/current_room_id/reply-content",
    ),
    (
        "voice",
        "voice-hang-up-caller-only",
        "voice/hang_up/caller-told-when-called-departs",
        "voice/hang_up/missing",
    ),
    (
        "voice",
        "voice-no-failover",
        "voice/exit_room/fail-over-when-unreported",
        "voice/exit_room/missing",
    ),
    (
        "push",
        "push-no-kick",
        "push/login/modes",
        "push/downmsg-2005/missing",
    ),
    (
        "push",
        "push-no-room-taken",
        "push/login/modes",
        "push/loginRoom/error-missing",
    ),
    (
        "push",
        "push-kicked-still-receives",
        "push/http/kicked-receives-nothing",
        "push/news/non-member",
    ),
    (
        "push",
        "leak-to-non-member",
        "push/http/room-and-global",
        "push/news/non-member",
    ),
    (
        "push",
        "push-alter-data",
        "push/http/room-and-global",
        "push/news/shape",
    ),
    (
        "push",
        "push-wrong-http-code",
        "push/http/room-and-global",
        "push/push/reply-content",
    ),
    (
        "push",
        "push-wrong-return-code",
        "push/http/room-and-global",
        "push/push/reply-content",
    ),
    // A room that gets none of its broadcasts (no receipt is evidence of a skip): still
    // missing, at the senders and at the members that stay past the grace window.
    (
        "dorm",
        "drop-broadcast=1",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/missing",
    ),
    (
        "lobby",
        "drop-broadcast=1",
        "lobby/room/join-message-leave",
        "lobby/gotRoomMessage/missing",
    ),
    (
        "chat",
        "never-timeout",
        "chat/connection/dead-heartbeat-closed",
        "chat/connection/heartbeat-timeout-missing",
    ),
    // A store that a restart empties: the case restarts check's own server (see
    // `ON_CHECKS_OWN_SERVER`).
    (
        "chat",
        "chat-volatile-store",
        "chat/saoff/survives-restart",
        "chat/saoff/missing",
    ),
];

/// Cases that restart the server: skipped against a target (roomrig cannot restart it), so
/// their defects are switched on in check's own embedded server (`--server-fault`).
const ON_CHECKS_OWN_SERVER: &[&str] = &["chat/saoff/survives-restart"];

#[test]
fn each_defect_fails_its_case() {
    side_by_side(DEFECTS, |&(dialect, fault, case, rule)| {
        let c = if ON_CHECKS_OWN_SERVER.contains(&case) {
            roomrig_check(&[
                "--dialect",
                dialect,
                "--server-fault",
                fault,
                "--case",
                case,
            ])
        } else {
            let server = served(&["--dialect", dialect, "--fault", fault]);
            roomrig_check(&[
                "--dialect",
                dialect,
                "--target",
                &server.url,
                "--case",
                case,
                "--heartbeat-deadline-ms",
                "3000",
            ])
        };
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
    });
    // The same server without a defect passes as a foreign target too.
    let _permit = permit();
    let server = served(&["--dialect", "dorm"]);
    let c = roomrig_check(&["--dialect", "dorm", "--target", &server.url]);
    assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
}

/// A voice server that never closes a client sending nothing fails the silent-client case. A
/// target advertises only its ping interval, so the checker allows the seed's 20 s of silence
/// (the server runs with exactly that: 1 s + 19 s): the case waits that long, side by side
/// with the other tests of this binary.
#[test]
fn voice_idle_never_fails_the_silent_client_case() {
    let _permit = permit();
    let case = "voice/connection/silent-client-closed";
    let server = Served::start(&[
        "--dialect",
        "voice",
        "--fault",
        "voice-idle-never",
        "--ping-interval-ms",
        "1000",
        "--ping-timeout-ms",
        "19000",
    ]);
    let c = check_one(
        "voice",
        &server.url,
        case,
        &["--heartbeat-deadline-ms", "30000"],
    );
    assert_eq!(c.code, 1, "{}\n{}", c.stdout, c.stderr);
    assert_eq!(status_of(&c, case), "fail", "{}", c.stdout);
    let rules = rules_of(&c, case);
    assert!(
        rules.contains(&"voice/connection/heartbeat-timeout-missing".to_string()),
        "{rules:?}"
    );
}

/// A voice target advertising a 0.5 s interval that closes a silent client after 1 s (the
/// reference server run so) is not held to the seed's 20 s as a MUST: the seed states that
/// silence only with its own 15 s interval. The case warns; it fails only with `--strict`.
#[test]
fn a_short_advertised_interval_makes_a_short_silence_a_warning() {
    let _permit = permit();
    let case = "voice/connection/silent-client-closed";
    let server = served(&["--dialect", "voice"]);
    let c = check_one("voice", &server.url, case, &[]);
    assert_case(
        &c,
        case,
        0,
        "warn",
        &["voice/connection/heartbeat-timeout-short"],
    );
}

/// A voice target that waits 8 s for `exit_room_report` (the seed gives no time; the reference
/// server's 5 s is only ours) fails over later than roomrig assumes: unstated, that is a late
/// notice (SHOULD), not a missing one. Told the window, the checker expects exactly it.
#[test]
fn a_longer_unstated_report_window_is_late_not_missing() {
    let _permit = permit();
    let case = "voice/exit_room/fail-over-when-unreported";
    let server = served(&["--dialect", "voice", "--exit-report-timeout-ms", "8000"]);
    let c = check_one("voice", &server.url, case, &[]);
    assert_case(&c, case, 0, "warn", &["voice/exit_room/late"]);
    // A fresh server: the first one may still tell the case's users of the first run's last
    // departures (its own 8 s report windows), which the second run would rightly call unknown.
    drop(server);
    let server = served(&["--dialect", "voice", "--exit-report-timeout-ms", "8000"]);
    let c = check_one(
        "voice",
        &server.url,
        case,
        &["--exit-report-timeout-ms", "8000"],
    );
    assert_case(&c, case, 0, "pass", &[]);
}

/// A healthy server 150 ms away (each way) passes the cases where a distant target once
/// gave false alarms: a login cut off by its own disconnect, whose departure the server may
/// announce (lobby), and `users_me` asked after the client's connection ended, whose HTTP
/// response comes after the flow's end (voice).
#[test]
fn a_distant_healthy_server_passes_the_racy_cases() {
    side_by_side(
        &[
            ("lobby", "lobby/login/reconnect-right-after-login"),
            ("voice", "voice/users_me/room-emptied-on-departure"),
        ],
        |&(dialect, case)| {
            let server = served(&["--dialect", dialect]);
            let relay = common::delaying_proxy(&server.url, std::time::Duration::from_millis(150));
            let c = check_one(dialect, &relay, case, &["--strict"]);
            assert_case(&c, case, 0, "pass", &[]);
        },
    );
}

/// Defects of what the seeds do not state (per-sender order): the case warns with the SHOULD
/// rule, and fails only with `--strict`.
const SHOULD_DEFECTS: &[(&str, &str, &str, &str)] = &[
    (
        "dorm",
        "reorder-broadcast",
        "dorm/message/broadcast-includes-sender",
        "dorm/message/order",
    ),
    (
        "chat",
        "chat-history-unordered",
        "chat/receivefsmg/friend-and-group-delivery",
        "chat/shistory/reply-content",
    ),
    (
        "chat",
        "chat-presence-every-connection",
        "chat/receivefsmg/every-device-presence-once",
        "chat/foffline/unknown",
    ),
    (
        "voice",
        "voice-sign-unchecked",
        "voice/frames/refused-without-effect",
        "voice/send_topic_msg/unknown",
    ),
    (
        "voice",
        "voice-seat-kept",
        "voice/up/seat-freed-on-departure",
        "voice/up/missing",
    ),
];

#[test]
fn each_should_defect_warns_and_fails_with_strict() {
    side_by_side(SHOULD_DEFECTS, |&(dialect, fault, case, rule)| {
        let server = served(&["--dialect", dialect, "--fault", fault]);
        let args = [
            "--dialect",
            dialect,
            "--target",
            &server.url,
            "--case",
            case,
        ];
        let c = roomrig_check(&args);
        assert_eq!(c.code, 0, "{fault}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, case), "warn", "{fault}:\n{}", c.stdout);
        assert!(rules_of(&c, case).iter().any(|r| r == rule), "{}", c.stdout);
        let mut strict = args.to_vec();
        strict.push("--strict");
        let c = roomrig_check(&strict);
        assert_eq!(c.code, 1, "{fault} --strict:\n{}", c.stdout);
        assert_eq!(status_of(&c, case), "fail", "{fault}:\n{}", c.stdout);
    });
}

/// A server that dies on a hostile room name: the case that sent it fails as MUST with the
/// `unresponsive` rule, the cases after it are skipped with the reason, the report is written,
/// and the exit code is the one for failures.
#[test]
fn a_crash_fails_the_case_that_caused_it_and_the_run_reports_the_rest() {
    let _permit = permit();
    let server = served(&[
        "--dialect",
        "lobby",
        "--fault",
        "crash-on-hostile-room-name",
    ]);
    let c = roomrig_check(&["--dialect", "lobby", "--target", &server.url]);
    assert_eq!(c.code, 1, "{}\n{}", c.stdout, c.stderr);
    // One hostile input per case: the first join of a prototype-named room is the crash.
    let hostile = "lobby/robustness/join-room-__proto__";
    assert_eq!(status_of(&c, hostile), "fail", "{}", c.stdout);
    let evidence = c
        .json
        .as_array()
        .and_then(|cases| cases.iter().find(|r| r["id"] == hostile))
        .map(|r| r["evidence"].clone())
        .unwrap_or_default();
    // The evidence names the request that preceded the crash, not the probe.
    assert!(
        evidence["user"]
            .as_str()
            .unwrap_or("")
            .contains("joinRoom(\"__proto__\", 2)"),
        "{evidence}"
    );
    assert!(
        evidence["expected"]
            .as_str()
            .unwrap_or("")
            .contains("__proto__"),
        "{evidence}"
    );
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

/// One hostile input per case: a server that dies on `joinRoom(5, "x")` fails exactly that
/// case of the hostile-types family, with evidence naming the input; the inputs before it were
/// judged (and passed) on the same server, the ones after it are skipped with the reason.
#[test]
fn a_crash_on_one_hostile_input_fails_only_that_inputs_case() {
    let _permit = permit();
    let server = served(&["--dialect", "lobby", "--fault", "crash-on-number-room-name"]);
    let family = "lobby/robustness/hostile-types";
    let c = roomrig_check(&[
        "--dialect",
        "lobby",
        "--target",
        &server.url,
        "--case",
        family,
    ]);
    assert_eq!(c.code, 1, "{}\n{}", c.stdout, c.stderr);
    let cases = c.json.as_array().unwrap();
    assert!(cases.len() > 10, "the family's cases: {}", c.stdout);
    assert!(
        cases
            .iter()
            .all(|r| r["id"].as_str().unwrap().starts_with(&format!("{family}/"))),
        "{}",
        c.stdout
    );
    let crashed = format!("{family}/join-room-number-name");
    let at = cases.iter().position(|r| r["id"] == crashed).unwrap();
    assert!(
        at >= 6,
        "login inputs and joinRoom() run first: {}",
        c.stdout
    );
    assert!(
        cases[..at].iter().all(|r| r["status"] == "pass"),
        "{}",
        c.stdout
    );
    assert_eq!(cases[at]["status"], "fail", "{}", c.stdout);
    assert!(
        rules_of(&c, &crashed).contains(&"lobby/server/unresponsive".to_string()),
        "{}",
        c.stdout
    );
    let evidence = &cases[at]["evidence"];
    assert!(
        evidence["user"]
            .as_str()
            .unwrap_or("")
            .contains("joinRoom(5, \"x\")"),
        "{evidence}"
    );
    assert!(at + 1 < cases.len(), "inputs follow the crashing one");
    for r in &cases[at + 1..] {
        assert_eq!(r["status"], "skipped", "{}", c.stdout);
        assert!(r["reason"].as_str().unwrap().contains(&crashed), "{r}");
    }
}

/// Rules only the reference server chose are not failures: a missing `leftRoom` (the public
/// server's earlier version sends none) passes, a second login that is ignored instead of
/// refused is a `warn` shown as SHOULD (a failure only with `--strict`), at EIO 3 and 4; the
/// JSON gives every violated rule with its level, source and examples.
#[test]
fn reference_decisions_warn_and_fail_only_with_strict() {
    side_by_side(&["3", "4"], |&eio| {
        let server = served(&["--dialect", "lobby", "--fault", "no-left-room"]);
        let room = "lobby/room/join-message-leave";
        let c = roomrig_check(&[
            "--dialect",
            "lobby",
            "--eio",
            eio,
            "--target",
            &server.url,
            "--case",
            room,
        ]);
        assert_eq!(c.code, 0, "EIO {eio}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, room), "pass", "{}", c.stdout);
        let rules = &c.json[0]["rules"];
        assert_eq!(
            rules["lobby/leaveRoom/reply-missing"]["level"], "INFO",
            "{rules}"
        );
        drop(server);

        let server = served(&["--dialect", "lobby", "--fault", "ignore-second-login"]);
        let login = "lobby/login/second-login-refused";
        let args = [
            "--dialect",
            "lobby",
            "--eio",
            eio,
            "--target",
            &server.url,
            "--case",
            login,
        ];
        let c = roomrig_check(&args);
        assert_eq!(c.code, 0, "EIO {eio}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, login), "warn", "{}", c.stdout);
        assert!(
            c.stdout.contains(&format!("warn  SHOULD {login}")),
            "{}",
            c.stdout
        );
        assert!(
            c.junit.contains(&format!("{login} (SHOULD)")),
            "JUnit labels the warning SHOULD: {}",
            c.junit
        );
        let tally = &c.json[0]["rules"]["lobby/login/error-missing"];
        assert_eq!(tally["level"], "SHOULD", "{tally}");
        assert!(
            tally["source"]
                .as_str()
                .unwrap()
                .contains("reference-server decision"),
            "{tally}"
        );
        let example = &tally["examples"][0];
        assert!(
            example["transcript"].as_array().unwrap().iter().any(|l| l
                .as_str()
                .unwrap()
                .contains("!! lobby/login/error-missing (SHOULD)")),
            "{example}"
        );
        let mut strict = args.to_vec();
        strict.push("--strict");
        let c = roomrig_check(&strict);
        assert_eq!(c.code, 1, "EIO {eio} --strict:\n{}", c.stdout);
        assert_eq!(status_of(&c, login), "fail", "{}", c.stdout);
    });
}

/// dorm: a server that relays a non-member's `message` and `action` to the user's own room
/// (as the seed's own server does) instead of refusing them is not wrong: the case warns
/// (SHOULD error-missing) and nothing it relayed is a MUST violation; at EIO 3 and 4.
#[test]
fn dorm_relay_of_a_non_member_is_a_warning_not_a_failure() {
    side_by_side(&["3", "4"], |&eio| {
        let server = served(&["--dialect", "dorm", "--fault", "relay-non-member"]);
        let case = "dorm/errors/not-in-room";
        let c = roomrig_check(&[
            "--dialect",
            "dorm",
            "--eio",
            eio,
            "--target",
            &server.url,
            "--case",
            case,
        ]);
        assert_eq!(c.code, 0, "EIO {eio}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, case), "warn", "{}", c.stdout);
        let rules = c.json[0]["rules"].as_object().unwrap();
        assert!(
            rules.contains_key("dorm/message/error-missing"),
            "{rules:?}"
        );
        for (rule, t) in rules {
            assert_ne!(t["level"], "MUST", "{rule}: {}", c.stdout);
        }
    });
}

/// dorm: a server that sends the seed's own `message` broadcast, `{token, message, time}`, is
/// identified by token and warned about (the token leaks a credential; `user_id` is ours),
/// never failed; at EIO 3 and 4.
#[test]
fn dorm_seed_literal_broadcast_warns() {
    side_by_side(&["3", "4"], |&eio| {
        let server = served(&["--dialect", "dorm", "--fault", "seed-token-broadcast"]);
        let case = "dorm/message/broadcast-includes-sender";
        let c = roomrig_check(&[
            "--dialect",
            "dorm",
            "--eio",
            eio,
            "--target",
            &server.url,
            "--case",
            case,
        ]);
        assert_eq!(c.code, 0, "EIO {eio}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, case), "warn", "{}", c.stdout);
        let rules = c.json[0]["rules"].as_object().unwrap();
        assert_eq!(rules["dorm/message/shape"]["level"], "SHOULD", "{rules:?}");
        assert_eq!(
            rules["dorm/message/forbidden-field"]["level"], "SHOULD",
            "{rules:?}"
        );
        assert!(
            !rules.contains_key("dorm/message/wrong-sender"),
            "{rules:?}"
        );
        assert!(!rules.contains_key("dorm/message/missing"), "{rules:?}");
    });
}

/// `check --json` keeps every violated rule's examples, not only the first rule's, with
/// rooms named as the protocol names them.
#[test]
fn json_keeps_every_rules_examples() {
    let _permit = permit();
    let server = served(&["--dialect", "lobby", "--fault", "notify-non-member"]);
    let case = "lobby/room/join-message-leave";
    let c = roomrig_check(&[
        "--dialect",
        "lobby",
        "--target",
        &server.url,
        "--case",
        case,
    ]);
    assert_eq!(c.code, 1, "{}\n{}", c.stdout, c.stderr);
    let rules = c.json[0]["rules"].as_object().unwrap();
    assert!(!rules.is_empty());
    for (rule, t) in rules {
        let examples = t["examples"].as_array().unwrap();
        assert!(!examples.is_empty(), "{rule} has no example");
        assert!(
            t["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{rule}"
        );
        for e in examples {
            let text = e.to_string();
            assert!(!text.contains("18446744073709551615"), "{rule}: {text}");
            assert!(
                !text.contains("room 9"),
                "{rule}: a room key, not a name: {text}"
            );
        }
    }
    let leak = &rules["lobby/otherJoinedRoom/non-member"]["examples"][0]["expected"];
    assert!(leak.as_str().unwrap().contains("room \"check-"), "{leak}");
}

/// A room that survives its last member's disconnect keeps its old capacity: only our
/// reference server's decision says it must not, so the case warns (exit 0) and fails only
/// with `--strict`; the healthy server passes it.
#[test]
fn a_room_kept_after_its_last_member_left_is_a_should() {
    let case = "lobby/disconnect/room-reopened";
    side_by_side(&["3", "4"], |&eio| {
        let server = served(&["--dialect", "lobby", "--fault", "keep-room-on-disconnect"]);
        let args = [
            "--dialect",
            "lobby",
            "--eio",
            eio,
            "--target",
            &server.url,
            "--case",
            case,
        ];
        let c = roomrig_check(&args);
        assert_eq!(c.code, 0, "EIO {eio}:\n{}\n{}", c.stdout, c.stderr);
        assert_eq!(status_of(&c, case), "warn", "{}", c.stdout);
        assert!(
            rules_of(&c, case).contains(&"lobby/joinRoom/error-unexpected".to_string()),
            "{}",
            c.stdout
        );
        let mut strict = args.to_vec();
        strict.push("--strict");
        assert_eq!(roomrig_check(&strict).code, 1);
    });
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

/// A server that copies every room broadcast into the first room of the users file, which
/// no case uses: only the suite's watch is there to see it, at EIO 3 and 4.
#[test]
fn a_leak_into_a_room_no_case_uses_fails_the_case_during_which_it_arrived() {
    let leaks = [
        (
            "dorm",
            "dorm/message/broadcast-includes-sender",
            "dorm/message/non-member",
        ),
        (
            "lobby",
            "lobby/room/join-message-leave",
            "lobby/gotRoomMessage/non-member",
        ),
    ];
    let runs: Vec<_> = leaks
        .into_iter()
        .flat_map(|l| [(l, "3"), (l, "4")])
        .collect();
    side_by_side(&runs, |&((dialect, case, rule), eio)| {
        let server = served(&["--dialect", dialect, "--fault", "leak-to-first-room"]);
        let c = roomrig_check(&[
            "--dialect",
            dialect,
            "--eio",
            eio,
            "--target",
            &server.url,
            "--case",
            case,
        ]);
        assert_eq!(
            c.code, 1,
            "{dialect} EIO {eio}:\n{}\n{}",
            c.stdout, c.stderr
        );
        assert_eq!(status_of(&c, case), "fail", "{}", c.stdout);
        assert!(
            rules_of(&c, case).iter().any(|r| r == rule),
            "{dialect} EIO {eio}: {rule} not in {:?}\n{}",
            rules_of(&c, case),
            c.stdout
        );
        assert!(c.stdout.contains("watch user1"), "{}", c.stdout);
    });
}

/// The healthy server as a target: the watch and the bystanders see nothing of other rooms.
#[test]
fn healthy_target_with_watch_and_bystanders_passes_eio3_and_eio4() {
    side_by_side(&[("dorm", "3"), ("lobby", "4")], |&(dialect, eio)| {
        let server = served(&["--dialect", dialect]);
        let c = roomrig_check(&[
            "--dialect",
            dialect,
            "--eio",
            eio,
            "--target",
            &server.url,
            "--heartbeat-deadline-ms",
            "3000",
        ]);
        assert_eq!(
            c.code, 0,
            "{dialect} EIO {eio}:\n{}\n{}",
            c.stdout, c.stderr
        );
    });
}

/// Too few users for the selected cases is a usage error before any case runs, saying how
/// many the suite needs and how many the file has; `--list` shows what each case takes.
#[test]
fn too_few_users_is_a_usage_error_before_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let list: Vec<serde_json::Value> = (1..=12)
        .map(|i| {
            serde_json::json!({"user_id": i, "username": format!("u{i}"),
                               "token": format!("tok{i}"), "room_id": (i - 1) / 4 + 1})
        })
        .collect();
    let rooms: Vec<serde_json::Value> = (1..=3)
        .map(|r| {
            serde_json::json!({"room_id": r, "room_name": format!("r{r}"),
                               "owner_id": (r - 1) * 4 + 1, "room_size": 4})
        })
        .collect();
    std::fs::write(
        &users,
        serde_json::json!({"users": list, "rooms": rooms}).to_string(),
    )
    .unwrap();
    let users = users.to_str().unwrap();
    let started = std::time::Instant::now();
    // Nothing listens there: a case that ran would fail with exit 5, not 2.
    let c = roomrig_check(&[
        "--dialect",
        "dorm",
        "--target",
        "http://127.0.0.1:9",
        "--users",
        users,
    ]);
    assert_eq!(c.code, 2, "{}\n{}", c.stdout, c.stderr);
    assert!(started.elapsed().as_secs() < 5);
    assert!(c.stderr.contains("users file has 12"), "{}", c.stderr);
    let needed: usize = c
        .stderr
        .split(" cases need ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {}", c.stderr));
    assert!(needed > 12, "{}", c.stderr);
    let list = roomrig_check(&["--dialect", "dorm", "--list", "--target", "http://x"]);
    assert_eq!(list.code, 0);
    assert!(
        list.stdout.contains(&format!("need {needed} users")),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains(" 8+2 users"), "{}", list.stdout);
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
    // A family id selects each of its cases (one per hostile input), a partial segment none.
    let family = "lobby/robustness/malformed-frames";
    let c = roomrig_check(&["--dialect", "lobby", "--list", "--case", family]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let ids: Vec<&str> = c
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.contains('/'))
        .collect();
    assert!(ids.len() > 10, "{}", c.stdout);
    assert!(
        ids.iter().all(|id| id.starts_with(&format!("{family}/"))),
        "{ids:?}"
    );
    assert!(ids.contains(&"lobby/robustness/malformed-frames/unterminated-array"));
    assert_eq!(
        roomrig_check(&["--dialect", "lobby", "--case", "lobby/robustness/malformed"]).code,
        2
    );
}

/// A case that restarts the server cannot run against a target: it is skipped with the reason
/// and what the user can do instead, in the table, JUnit (`<skipped>`), `--json`, check.json
/// and report.html; a skip is no failure, not even with `--strict`. On check's own server the
/// same case runs and the healthy server passes it.
#[test]
fn a_restart_case_is_skipped_against_a_target_and_runs_on_checks_own_server() {
    let _permit = permit();
    let restart = "chat/saoff/survives-restart";
    let server = served(&["--dialect", "chat"]);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .args([
            "check",
            "--dialect",
            "chat",
            "--strict",
            "--target",
            &server.url,
        ])
        .args([
            "--case",
            restart,
            "--case",
            "chat/saoff/offline-exactly-once",
        ])
        .args(["--heartbeat-deadline-ms", "3000", "--report-dir"])
        .arg(&report)
        .arg("--junit")
        .arg(dir.path().join("junit.xml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a skip is no failure:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("skip  MUST   {restart}")),
        "{stdout}"
    );
    assert!(stdout.contains("roomrig cannot restart"), "{stdout}");
    assert!(
        stdout.contains("1 passed, 0 failed, 0 warned, 1 skipped"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"1\""),
        "{junit}"
    );
    assert!(
        junit.contains("<skipped message=\"this case restarts the server"),
        "{junit}"
    );
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("check.json")).unwrap()).unwrap();
    assert_eq!(check["verdict"]["status"], "pass");
    let row = check["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == restart)
        .unwrap();
    assert_eq!(row["status"], "skipped");
    assert!(
        row["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without --target") && r.contains("restart the server")),
        "{row}"
    );
    let page = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(page.contains("<tr class=\"skipped\">"), "{page}");
    assert!(page.contains("1 pass, 0 fail, 0 warn, 1 skipped"), "{page}");

    // Check's own server: the case runs, and passes on the healthy server.
    let c = roomrig_check(&["--dialect", "chat", "--strict", "--case", restart]);
    assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
    assert_eq!(status_of(&c, restart), "pass", "{}", c.stdout);
    // Defects of check's own server do not mix with a target's.
    let c = roomrig_check(&[
        "--dialect",
        "chat",
        "--target",
        &server.url,
        "--server-fault",
        "chat-volatile-store",
    ]);
    assert_eq!(c.code, 2, "{}\n{}", c.stdout, c.stderr);
}

/// A separate chat server as the target, `--strict`: the 2 MB inputs, which the server cuts
/// off while they are still being written (telling the friends `foffline` before the client
/// notices), owe the friends no second notice, so no SHOULD `foffline/missing` turns up.
#[test]
fn chat_hostile_inputs_against_a_target_pass_strict() {
    let _permit = permit();
    let server = served(&["--dialect", "chat"]);
    let c = roomrig_check(&[
        "--dialect",
        "chat",
        "--strict",
        "--target",
        &server.url,
        "--case",
        "chat/robustness/hostile-requests",
        "--heartbeat-deadline-ms",
        "3000",
    ]);
    assert_eq!(c.code, 0, "{}\n{}", c.stdout, c.stderr);
    assert!(!c.stdout.contains("foffline"), "{}", c.stdout);
}
