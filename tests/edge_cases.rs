//! Every scenario in `scenarios/edge-cases/` passes against the reference server, client faults
//! are judged by the server's reaction, and a seed fixes the schedule of operations and faults.

mod common;

use std::path::{Path, PathBuf};

use common::{permit, roomrig_run, side_by_side};

fn edge_case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/edge-cases")
        .join(name)
}

#[test]
fn every_edge_case_passes_against_the_reference_server() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/edge-cases");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "the edge cases are there");
    side_by_side(&names, |path| {
        let o = roomrig_run(path, &[]);
        assert_eq!(o.code, 0, "{}:\n{}\n{}", path.display(), o.stdout, o.stderr);
        let s = o.report();
        assert_eq!(s["violations"]["total"], 0, "{}", path.display());
        assert!(
            s["events"]["sent"].as_u64().unwrap() > 0,
            "{}",
            path.display()
        );
        exercised(path, &s);
    });
}

/// What a case must have made the reference server do, beyond passing: a case that passes
/// without reaching its situation proves nothing.
fn exercised(path: &Path, s: &serde_json::Value) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let count = |m: &str| s["metrics"][m]["co"]["count"].as_u64().unwrap_or(0);
    match name {
        // Leaver -> silent 1 (vanishes) -> silent 2 (vanishes) -> a witness; both unreported
        // exits fail over to a witness; the first witness to leave at the end is told to the
        // other: 6 exit_room, 4 reports, from exactly one member each time.
        "voice-b-vanishes-before-reporting.yaml" => {
            assert_eq!(count("exit_room.after-fault"), 6, "{name}");
            assert_eq!(
                s["events"]["sent_by_operation"]["exit_room_report"], 4,
                "{name}"
            );
        }
        // 500 departures inside the second, then 250 of the members who stayed leave at the
        // end: each told to one member, who reports it.
        "voice-500-leave-in-one-second.yaml" => {
            assert_eq!(count("exit_room.after-fault"), 750, "{name}");
            assert_eq!(s["clients"]["connected"], 1000, "{name}");
        }
        // The called member's reset: its caller gets the one hang_up (judged as owed), one
        // remaining member the exit_room; then the caller's close is told to the bystander.
        "voice-callee-vanishes-during-call.yaml" => {
            assert_eq!(count("hang_up.after-fault"), 1, "{name}");
            assert_eq!(count("exit_room.after-fault"), 2, "{name}");
        }
        _ => {}
    }
}

/// The two voice departure cases catch a server that breaks the exactly-one relay: one that
/// never fails over when the member it told vanishes, one that tells every member.
#[test]
fn voice_departure_cases_catch_a_broken_relay() {
    side_by_side(
        &[
            (
                "voice-b-vanishes-before-reporting.yaml",
                "voice-no-failover",
                "voice/exit_room/missing",
            ),
            (
                "voice-500-leave-in-one-second.yaml",
                "voice-exit-to-everyone",
                "voice/exit_room/duplicate",
            ),
        ],
        |&(case, fault, rule)| {
            let o = roomrig_run(&edge_case(case), &["--server-fault", fault]);
            assert_eq!(o.code, 1, "{case} {fault}: {}", o.explain());
            assert!(
                o.rules().iter().any(|r| r == rule),
                "{case} {fault}: {rule} not in {:?}",
                o.rules()
            );
        },
    );
}

/// A dropped heartbeat is closed by the server inside its window, for both Engine.IO versions;
/// healthy clients under the same load are never closed.
#[test]
fn dropped_heartbeat_is_closed_in_its_window_eio3_and_eio4() {
    side_by_side(&["3", "4"], |&eio| {
        let o = roomrig_run(&edge_case("dorm-heartbeat-dies.yaml"), &["--eio", eio]);
        assert_eq!(o.code, 0, "EIO {eio}:\n{}\n{}", o.stdout, o.stderr);
        let s = o.report();
        assert_eq!(s["scenario"]["eio"], eio);
        let closes = &s["metrics"]["heartbeat.close"]["co"];
        let dying = closes["count"].as_u64().unwrap();
        assert!(dying > 0, "EIO {eio}: some clients dropped their heartbeat");
        // pingInterval 1 s + pingTimeout 1 s + grace 0.5 s; never before pingTimeout - grace.
        assert!(
            closes["max_ms"].as_f64().unwrap() <= 2500.0,
            "EIO {eio}: {closes}"
        );
        assert!(
            closes["min_ms"].as_f64().unwrap() >= 500.0,
            "EIO {eio}: {closes}"
        );
        assert_eq!(
            s["clients"]["unexpected_closes"], 0,
            "EIO {eio}: healthy clients stay"
        );
        assert_eq!(
            s["metrics"]["reconnect"]["co"]["count"].as_u64(),
            Some(dying)
        );
    });
}

/// A server that never times out a dead client is caught with the heartbeat rule.
#[test]
fn server_that_never_times_out_is_caught() {
    let _permit = permit();
    let o = roomrig_run(
        &edge_case("dorm-heartbeat-dies-during-join.yaml"),
        &["--server-fault", "never-timeout"],
    );
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    let s = o.report();
    let rule = &s["violations"]["by_rule"]["dorm/connection/heartbeat-timeout-missing"];
    assert_eq!(rule["count"], 8, "{}", o.stdout);
    assert_eq!(rule["level"], "MUST");
    assert!(o.dir.path().join("transcripts.txt").exists());
    let transcripts = std::fs::read_to_string(o.dir.path().join("transcripts.txt")).unwrap();
    assert!(transcripts.contains(">> join_room"), "{transcripts}");
}

/// The same seed gives the same schedule of operations and faults; another seed does not.
#[test]
fn same_seed_same_operation_log() {
    let path = edge_case("dorm-vanish-mid-broadcast.yaml");
    let log = |seed: &str| {
        let _permit = permit();
        let o = roomrig_run(&path, &["--op-log", "--seed", seed]);
        assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
        std::fs::read_to_string(o.dir.path().join("ops.log")).unwrap()
    };
    let (a, b, c) = (log("303"), log("303"), log("304"));
    assert!(a.lines().count() > 500, "a real schedule");
    assert!(a.contains(" vanish"), "faults are in the log");
    assert!(a.contains(" think "), "random think times are in the log");
    assert_eq!(a, b, "same seed, same operations");
    assert_ne!(a, c, "another seed, other operations");
}
