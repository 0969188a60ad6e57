//! End-to-end on the `lobby` dialect: exact counts for both Engine.IO versions, and the
//! server's test-only defects caught under the right rule.

mod common;

use common::{permit, repo_file, roomrig_run, side_by_side};

fn exact(eio: &str) {
    let _permit = permit();
    let o = roomrig_run(
        &repo_file("tests/scenarios/lobby-exact.yaml"),
        &["--eio", eio],
    );
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["scenario"]["eio"], eio);
    assert_eq!(s["events"]["sent"], 56, "{}", o.explain());
    assert_eq!(s["events"]["received"], 268, "{}", o.explain());
    assert_eq!(s["violations"]["total"], 0);
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    assert_eq!(count("otherLogedin.fanout"), 56);
    assert_eq!(count("otherJoinedRoom.fanout"), 12);
    assert_eq!(count("gotRoomMessage.fanout"), 64);
    assert_eq!(count("gotPrivateMessage.fanout"), 8);
    assert_eq!(count("gotPublicMessage.fanout"), 64);
    assert_eq!(count("otherLeftRoom.fanout"), 12);
    assert_eq!(
        count("otherLogedout.after-fault"),
        28,
        "clean disconnects are announced"
    );
    assert_eq!(count("leaveRoom.leftRoom"), 8);
}

#[test]
fn exact_counts_and_no_violation_eio3() {
    exact("3");
}

#[test]
fn exact_counts_and_no_violation_eio4() {
    exact("4");
}

#[test]
fn lobby_smoke_passes() {
    let _permit = permit();
    let o = roomrig_run(&repo_file("scenarios/lobby-smoke.yaml"), &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0);
    assert_eq!(
        s["metrics"]["roomMessage.error"]["co"]["count"], 200,
        "expect_error ops got their err"
    );
}

/// Each lobby defect of the reference server fails the run with the matching rule.
#[test]
fn oracle_catches_each_lobby_fault() {
    let cases = [
        (
            "lobby-vanish-in-room.yaml",
            "no-leave-notice",
            "lobby/otherLeftRoom/missing",
        ),
        (
            "lobby-vanish-in-room.yaml",
            "notify-non-member",
            "lobby/otherJoinedRoom/non-member",
        ),
        (
            "lobby-heartbeat-dies.yaml",
            "never-timeout",
            "lobby/connection/heartbeat-timeout-missing",
        ),
    ];
    side_by_side(&cases, |&(scenario, fault, rule)| {
        let path = repo_file(&format!("scenarios/edge-cases/{scenario}"));
        let o = roomrig_run(&path, &["--server-fault", fault]);
        assert_eq!(o.code, 1, "{fault}: {}", o.explain());
        assert!(
            o.rules().iter().any(|r| r == rule),
            "{fault}: expected {rule}, got {:?}",
            o.rules()
        );
    });
}

/// For both Engine.IO versions: a member whose heartbeat dies is closed inside its window and
/// its room is told (`otherLeftRoom`, then everyone `otherLogedout`); healthy members under the
/// same load are never closed.
#[test]
fn dead_heartbeat_is_closed_and_announced_eio3_and_eio4() {
    side_by_side(&["3", "4"], |&eio| {
        let o = roomrig_run(
            &repo_file("scenarios/edge-cases/lobby-heartbeat-dies.yaml"),
            &["--eio", eio],
        );
        assert_eq!(o.code, 0, "EIO {eio}: {}", o.explain());
        let s = o.report();
        let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
        let dead = count("heartbeat.close");
        assert!(dead > 0, "EIO {eio}: some members dropped their heartbeat");
        assert!(
            count("otherLeftRoom.after-fault") >= dead,
            "EIO {eio}: rooms were told"
        );
        assert!(
            count("otherLogedout.after-fault") > dead,
            "EIO {eio}: everyone was told"
        );
        let latest = s["metrics"]["otherLeftRoom.after-fault"]["co"]["max_ms"]
            .as_f64()
            .unwrap();
        assert!(
            latest <= 2500.0 + 1000.0,
            "EIO {eio}: notice within the window: {latest} ms"
        );
        assert_eq!(s["clients"]["unexpected_closes"], 0, "EIO {eio}");
    });
}
