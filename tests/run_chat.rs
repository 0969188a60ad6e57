//! End-to-end on the `chat` dialect: the smoke scenario on both Engine.IO generations (four
//! namespaces on one connection), and offline messages kept once.

mod common;

use common::{repo_file, roomrig_run, serial};

fn smoke(eio: &str) {
    let _serial = serial();
    let o = roomrig_run(&repo_file("scenarios/chat-smoke.yaml"), &["--eio", eio]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["scenario"]["eio"], eio);
    assert_eq!(s["violations"]["total"], 0, "{}", o.explain());
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    assert_eq!(count("auth-c.auth-s"), 40, "{}", o.explain());
    assert_eq!(count("caoff.saoff"), 40);
    assert_eq!(count("ctime.stime"), 40);
    assert_eq!(count("chistory.shistory"), 40);
    // Each friend message reaches its target once, live or kept.
    assert!(count("receivefsmg.fanout") > 0, "{}", o.explain());
    assert!(count("group-receivefsmg.fanout") > 0, "{}", o.explain());
}

#[test]
fn chat_smoke_passes_eio3() {
    smoke("3");
}

#[test]
fn chat_smoke_passes_eio4() {
    smoke("4");
}

/// Messages sent while their target was away come in its next `saoff`, once; the offline
/// delivery latency (send → `saoff`) is measured for each.
#[test]
fn kept_messages_are_handed_over_once_with_their_latency() {
    let _serial = serial();
    let o = roomrig_run(&repo_file("src/check/cases/chat-offline.yaml"), &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0, "{}", o.explain());
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    // Three friend and three group messages, all kept for the away client.
    assert_eq!(count("saoff.offline"), 6, "{}", o.explain());
    assert_eq!(count("caoff.saoff"), 2);
}
