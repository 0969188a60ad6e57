//! End-to-end on the `chat` dialect: the smoke scenario on both Engine.IO generations (four
//! namespaces on one connection), and offline messages kept once.

mod common;

use common::{permit, repo_file, roomrig_run};

fn smoke(eio: &str) {
    let _permit = permit();
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
    let _permit = permit();
    let o = roomrig_run(&repo_file("src/check/cases/chat-offline.yaml"), &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0, "{}", o.explain());
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    // Three friend and three group messages, all kept for the away client.
    assert_eq!(count("saoff.offline"), 6, "{}", o.explain());
    assert_eq!(count("caoff.saoff"), 2);
}

const RESTART: &str = "scenarios/edge-cases/chat-restart-with-1000-pending.yaml";

/// The embedded server is restarted with 1,000 messages kept for an away user: all of them
/// come once after the restart, and the drops and reconnects it causes are no violations.
#[test]
fn a_restart_keeps_1000_pending_messages_and_hands_each_over_once() {
    let _permit = permit();
    let o = roomrig_run(&repo_file(RESTART), &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0, "{}", o.explain());
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    assert_eq!(count("saoff.offline"), 1000, "{}", o.explain());
    // The three clients reconnected to the restarted server and authenticated again.
    assert_eq!(count("reconnect"), 3, "{}", o.explain());
    assert_eq!(s["clients"]["unexpected_closes"], 0);
}

/// A server whose store does not survive a restart (`chat-volatile-store`) loses the kept
/// messages: the handover after the restart is judged against what was kept before it.
#[test]
fn a_store_lost_in_a_restart_is_caught() {
    let _permit = permit();
    let o = roomrig_run(
        &repo_file(RESTART),
        &["--server-fault", "chat-volatile-store"],
    );
    assert_ne!(o.code, 0, "{}", o.explain());
    assert_eq!(o.rules(), vec!["chat/saoff/missing"], "{}", o.explain());
    let s = o.report();
    assert_eq!(
        s["violations"]["by_rule"]["chat/saoff/missing"]["count"],
        1000,
        "{}",
        o.explain()
    );
}

/// Against a target roomrig cannot restart the server: the run is refused before it
/// connects, naming the step.
#[test]
fn restart_server_against_a_target_is_refused_naming_the_step() {
    let o = roomrig_run(&repo_file(RESTART), &["--target", "http://127.0.0.1:9"]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(
        o.stderr
            .contains("chat-restart-with-1000-pending.yaml:22:9: `restart_server`"),
        "{}",
        o.explain()
    );
    assert!(o.summary().is_none(), "nothing ran: {}", o.explain());
}

/// 10,000 messages kept for one user, more than one frame carries: the user asks until an
/// answer hands over nothing, and gets each exactly once.
#[test]
fn a_10000_message_backlog_is_handed_over_in_parts_each_message_once() {
    let _permit = permit();
    let o = roomrig_run(
        &repo_file("scenarios/edge-cases/chat-offline-backlog-10000.yaml"),
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.explain());
    let s = o.report();
    assert_eq!(s["violations"]["total"], 0, "{}", o.explain());
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    assert_eq!(count("saoff.offline"), 10_000, "{}", o.explain());
    assert_eq!(count("caoff.saoff"), 16, "{}", o.explain());
}

/// The embedded server of a split run lives in other processes: the step is refused there too.
#[test]
fn restart_server_with_workers_is_refused_naming_the_step() {
    let o = roomrig_run(&repo_file(RESTART), &["--workers", "2"]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(
        o.stderr.contains("pending.yaml:22:9: `restart_server`") && o.stderr.contains("--workers"),
        "{}",
        o.explain()
    );
}
