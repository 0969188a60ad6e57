//! End-to-end on the `push` dialect: the smoke scenario and the edge cases pass against the
//! healthy reference server, with the deliveries counted.

mod common;

use common::{permit, repo_file, roomrig_run, side_by_side};

fn count(s: &serde_json::Value, metric: &str) -> u64 {
    s["metrics"][metric]["co"]["count"].as_u64().unwrap_or(0)
}

#[test]
fn push_smoke_passes() {
    let _permit = permit();
    let o = roomrig_run(&repo_file("scenarios/push-smoke.yaml"), &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0);
    // Two backends, 41 pushes each, every one answered.
    assert_eq!(count(&s, "push.http"), 82, "{}", o.explain());
    // Each global push reaches all 40 connections.
    assert_eq!(count(&s, "bulletin.fanout"), 80, "{}", o.explain());
    assert_eq!(count(&s, "connect.downmsg-2001"), 40);
    assert!(count(&s, "news.fanout") > 0);
    assert!(
        count(&s, "downmsg-2005.fanout") > 0,
        "takers kicked someone"
    );
}

/// The edge cases pass, and they do exercise what they are about.
#[test]
fn push_edge_cases_pass() {
    side_by_side(
        &[
            ("push-when-last-storm.yaml", "downmsg-2005.fanout"),
            ("push-kicked-reconnect-loop.yaml", "downmsg-2005.fanout"),
            ("push-member-vanishes.yaml", "push.http"),
        ],
        |&(scenario, metric)| {
            let o = roomrig_run(&repo_file(&format!("scenarios/edge-cases/{scenario}")), &[]);
            assert_eq!(o.code, 0, "{scenario}: {}", o.explain());
            assert!(count(&o.report(), metric) > 0, "{scenario}: {metric}");
        },
    );
}

// Each push defect of the reference server is proved against its check case in tests/check.rs.

/// A backend without a socket pushes at a rate into random fixture rooms: every push is
/// answered and reaches exactly the 4 connections of its room; with `room: all` each reaches
/// all 20 connections; and a server that alters the data is caught on the backend's pushes.
#[test]
fn push_backend_at_a_rate() {
    let _permit = permit();
    let scenario = repo_file("scenarios/push-backend.yaml");
    let o = roomrig_run(&scenario, &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    // 50 pushes/s for 2 s, each answered; every room has its 4 members logged in by then.
    assert_eq!(count(&s, "push.http"), 100, "{}", o.explain());
    assert_eq!(count(&s, "news.fanout"), 400, "{}", o.explain());
    assert_eq!(s["violations"]["total"], 0);

    let o = roomrig_run(&scenario, &["--set", "push.room=all"]);
    assert_eq!(o.code, 0, "{}", o.explain());
    assert_eq!(
        count(&o.report(), "bulletin.fanout"),
        20 * 100,
        "{}",
        o.explain()
    );

    let o = roomrig_run(&scenario, &["--server-fault", "push-alter-data"]);
    assert_eq!(o.code, 1, "{}", o.explain());
    let by_rule = &o.report()["violations"]["by_rule"];
    assert!(by_rule.get("push/news/shape").is_some(), "{by_rule}");
}

/// A backend block is parsed strictly, with the place of each error.
#[test]
fn push_backend_errors_are_located() {
    let scenario = repo_file("scenarios/push-backend.yaml");
    for (set, says) in [
        ("push.rate=0", "push rate must be above 0"),
        ("push.size=3", "`size` must be between"),
        ("push.speed=3", "unknown field `speed`"),
    ] {
        let o = roomrig_run(&scenario, &["--set", set]);
        assert_eq!(o.code, 2, "{set}: {}", o.explain());
        assert!(o.stderr.contains(says), "{set}: {}", o.stderr);
    }
    let dorm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        dorm.path(),
        "dialect: dorm\nusers: { generate: { count: 4, room_size: 4 } }\nphases: [ { duration: 1s, arrival_rate: 4 } ]\nclients: [ { name: a, flow: [ join_room ] } ]\npush: { rate: 5 }\n",
    )
    .unwrap();
    let o = roomrig_run(dorm.path(), &[]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(
        o.stderr.contains(":5:") && o.stderr.contains("no HTTP `push` operation"),
        "{}",
        o.stderr
    );
}

/// Twenty loginWhenFirst logins racing for one empty room: one admitted, nineteen refused,
/// whoever the server took first; a server that admits them all is caught by the race.
#[test]
fn a_first_login_race_is_judged_as_a_race() {
    let _permit = permit();
    let scenario = repo_file("scenarios/edge-cases/push-first-login-race.yaml");
    let o = roomrig_run(&scenario, &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(count(&s, "loginRoom.downmsg-2002"), 1, "{}", o.explain());
    assert_eq!(count(&s, "loginRoom.error"), 19, "{}", o.explain());
    // The backend's pushes into the room reach the winner only.
    assert_eq!(count(&s, "news.fanout"), 20, "{}", o.explain());

    let o = roomrig_run(&scenario, &["--server-fault", "push-no-room-taken"]);
    assert_eq!(o.code, 1, "{}", o.explain());
    let by_rule = &o.report()["violations"]["by_rule"];
    assert!(
        by_rule.get("push/loginRoom/error-missing").is_some(),
        "{by_rule}"
    );
}
