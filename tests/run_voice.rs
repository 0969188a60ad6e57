//! End-to-end on the `voice` dialect (plain WebSocket, md5-signed frames): the smoke scenario
//! passes against the embedded reference server, and each voice defect of the server fails
//! the run under the rule that names it.

mod common;

use common::{permit, repo_file, roomrig_run, side_by_side};

#[test]
fn voice_smoke_passes() {
    let _permit = permit();
    let o = roomrig_run(&repo_file("scenarios/voice-smoke.yaml"), &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0);
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    // 10 rooms of 4: every message and notice reaches the 3 others.
    assert_eq!(count("send_topic_msg.fanout"), 40 * 3 * 3);
    assert_eq!(count("up.fanout"), 40 * 3);
    assert_eq!(count("send_gift-ptp.fanout"), 40);
    assert_eq!(
        count("send_topic_msg.error"),
        40,
        "expect_error ops got their error"
    );
    // Each of the first three leavers of a room is told to one remaining member.
    assert_eq!(count("exit_room.after-fault"), 30, "{}", o.explain());
}

/// Each voice defect of the reference server fails the run with the matching rule.
#[test]
fn oracle_catches_each_voice_fault() {
    // (scenario, fault, rule, exit): a SHOULD rule fails the run by its threshold (exit 3).
    side_by_side(
        &[
            (
                "scenarios/voice-smoke.yaml",
                "voice-exit-to-everyone",
                "voice/exit_room/duplicate",
                1,
            ),
            (
                "scenarios/voice-smoke.yaml",
                "voice-exit-to-nobody",
                "voice/exit_room/missing",
                1,
            ),
            (
                "tests/scenarios/voice-seat.yaml",
                "voice-seat-kept",
                "voice/up/missing",
                3,
            ),
            (
                "scenarios/edge-cases/voice-heartbeat-dies.yaml",
                "never-timeout",
                "voice/connection/heartbeat-timeout-missing",
                1,
            ),
            // The healthy server passes the seat scenario.
            ("tests/scenarios/voice-seat.yaml", "", "", 0),
        ],
        |&(scenario, fault, rule, code)| {
            let faults: &[&str] = if fault.is_empty() {
                &[]
            } else {
                &["--server-fault", fault]
            };
            let o = roomrig_run(&repo_file(scenario), faults);
            assert_eq!(o.code, code, "{fault}: {}", o.explain());
            assert!(
                code == 0 || o.rules().iter().any(|r| r == rule),
                "{fault}: {rule} not in {:?}",
                o.rules()
            );
        },
    );
}
