//! End-to-end on the `push` dialect: the smoke scenario and the edge cases pass against the
//! healthy reference server, with the deliveries counted.

mod common;

use common::{repo_file, roomrig_run, serial};

fn count(s: &serde_json::Value, metric: &str) -> u64 {
    s["metrics"][metric]["co"]["count"].as_u64().unwrap_or(0)
}

#[test]
fn push_smoke_passes() {
    let _serial = serial();
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
    for (scenario, metric) in [
        ("push-when-last-storm.yaml", "downmsg-2005.fanout"),
        ("push-kicked-reconnect-loop.yaml", "downmsg-2005.fanout"),
        ("push-member-vanishes.yaml", "push.http"),
    ] {
        let _serial = serial();
        let o = roomrig_run(&repo_file(&format!("scenarios/edge-cases/{scenario}")), &[]);
        assert_eq!(o.code, 0, "{scenario}: {}", o.explain());
        assert!(count(&o.report(), metric) > 0, "{scenario}: {metric}");
    }
}

// Each push defect of the reference server is proved against its check case in tests/check.rs.
