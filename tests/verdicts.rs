//! Verdicts that hold on servers nobody here wrote: what a conformant but different (or slow)
//! server does is not a violation, and what a faulty one does is charged to the right request.

mod common;

use std::time::Duration;

use common::{delaying_proxy, repo_file, roomrig_run, side_by_side, Served};

fn examples(report: &serde_json::Value, rule: &str) -> Vec<String> {
    report["violations"]["by_rule"][rule]["examples"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{} / {}", e["expected"], e["received"]))
                .collect()
        })
        .unwrap_or_default()
}

/// A server slow by 300 ms each way (deadline 2 s): clients that leave, close or vanish while
/// broadcasts and notices to them are in flight are not charged `missing`, and every flow
/// waits for what is due to it before it leaves.
#[test]
fn a_slow_conformant_server_passes() {
    side_by_side(
        &[
            ("lobby", "tests/scenarios/lobby-slow.yaml", "3"),
            ("dorm", "tests/scenarios/dorm-slow.yaml", "4"),
            ("lobby", "tests/scenarios/lobby-slow.yaml", "4"),
            ("dorm", "tests/scenarios/dorm-slow.yaml", "3"),
        ],
        |&(dialect, scenario, eio)| {
            let server = Served::start(&[
                "--dialect",
                dialect,
                "--generate-users",
                "24",
                "--room-size",
                "4",
            ]);
            let relay = delaying_proxy(&server.url, Duration::from_millis(300));
            let o = roomrig_run(&repo_file(scenario), &["--target", &relay, "--eio", eio]);
            let s = o.report();
            assert_eq!(o.code, 0, "{dialect} EIO {eio}: {}", o.explain());
            assert_eq!(s["violations"]["total"], 0, "{dialect}");
            // The relay's delay is in the latency figures, where it belongs.
            let fanout = if dialect == "dorm" {
                "message.fanout"
            } else {
                "gotRoomMessage.fanout"
            };
            let p50 = s["metrics"][fanout]["raw"]["p50_ms"].as_f64().unwrap();
            assert!(p50 >= 600.0, "{dialect}: {fanout} p50 {p50} ms");
        },
    );
}

/// lobby's errors all arrive on `err`: a request the server accepted although the scenario
/// expects a refusal is charged `error-missing` once, and the errors after it are paired with
/// their own requests (no `error-content` shifted by one).
#[test]
fn an_accepted_request_does_not_shift_the_errors_after_it() {
    side_by_side(&["3", "4"], |&eio| {
        let path = repo_file("tests/scenarios/lobby-errors-shift.yaml");
        let o = roomrig_run(&path, &["--server-fault", "accept-rejoin", "--eio", eio]);
        assert_eq!(o.code, 1, "{}", o.explain());
        let rules = o.rules();
        assert!(
            rules.contains(&"lobby/joinRoom/error-missing".to_string()),
            "{rules:?}"
        );
        assert!(
            rules.iter().all(|r| !r.ends_with("/error-content")),
            "{rules:?}"
        );
        assert_eq!(
            o.report()["violations"]["by_rule"]["lobby/joinRoom/error-missing"]["count"],
            4,
            "one per client"
        );
        let healthy = roomrig_run(&path, &["--eio", eio]);
        assert_eq!(healthy.code, 0, "{}", healthy.explain());
    });
}

/// A server that never answers `join_room` still has its broadcasts judged: from the join
/// request and the users file, flagged as assumed.
#[test]
fn members_are_judged_when_the_join_reply_never_comes() {
    side_by_side(&["3", "4"], |&eio| {
        let path = repo_file("tests/scenarios/dorm-no-reply.yaml");
        let o = roomrig_run(
            &path,
            &[
                "--server-fault",
                "no-join-reply",
                "--server-fault",
                "drop-broadcast=1",
                "--eio",
                eio,
            ],
        );
        assert_eq!(o.code, 1, "{}", o.explain());
        let s = o.report();
        let rules = o.rules();
        assert!(
            rules.contains(&"dorm/join_room/reply-missing".to_string()),
            "{rules:?}"
        );
        let missing = examples(&s, "dorm/message/missing");
        assert!(!missing.is_empty(), "{rules:?}");
        assert!(missing.iter().all(|e| e.contains("assumed")), "{missing:?}");
        // Near miss: the replies are missing, but every broadcast arrives.
        let o = roomrig_run(&path, &["--server-fault", "no-join-reply", "--eio", eio]);
        assert_eq!(o.code, 1);
        assert_eq!(o.rules(), vec!["dorm/join_room/reply-missing".to_string()]);
    });
}

/// Hostile input a server may accept is not `unknown` when it is relayed to the room; relayed
/// to a client outside the room it is `non-member`.
#[test]
fn a_relayed_hostile_message_is_judged_only_by_who_gets_it() {
    side_by_side(&["3", "4"], |&eio| {
        let path = repo_file("tests/scenarios/dorm-lenient-relay.yaml");
        let o = roomrig_run(&path, &["--eio", eio]);
        assert_eq!(o.code, 0, "{}", o.explain());
        let o = roomrig_run(
            &path,
            &["--server-fault", "leak-to-non-member", "--eio", eio],
        );
        assert_eq!(o.code, 1, "{}", o.explain());
        assert!(
            o.rules().contains(&"dorm/message/non-member".to_string()),
            "{:?}",
            o.rules()
        );
        assert!(
            !o.rules().contains(&"dorm/message/unknown".to_string()),
            "{:?}",
            o.rules()
        );
    });
}
