//! A new user's first hour (issue 12): a replay command that runs as printed, progress lines
//! in CI logs, the summary's headline and traffic, a run that survives `| head`, warnings, a
//! users file that does not match the server, and users as CSV.

mod common;

use std::process::{Command, Stdio};

use common::{permit, repo_file, roomrig_run, Served};

fn scenario() -> std::path::PathBuf {
    repo_file("tests/scenarios/first-hour.yaml")
}

/// The replay command of the summary runs as given (here the binary is not `roomrig` on
/// PATH, so it names the binary's path) and gives the same verdict.
#[test]
fn the_replay_command_runs_as_printed() {
    let _one = permit();
    let first = roomrig_run(&scenario(), &[]);
    assert_eq!(first.code, 0, "{}", first.explain());
    let replay = first.report()["replay"].as_str().unwrap().to_string();
    assert!(!replay.starts_with("roomrig "), "{replay}");
    assert!(
        replay.contains(" run ") && replay.contains("--seed 3"),
        "{replay}"
    );
    let dir = tempfile::tempdir().unwrap();
    let again = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{replay} --no-progress --report-dir {}",
            dir.path().display()
        ))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{replay}: {again:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["events"]["sent"], first.report()["events"]["sent"]);
}

/// Without a terminal, progress comes as lines (every second here), with elapsed time,
/// clients, sends, receipts, rates and violations; the summary leads with each operation's
/// rate and latency, and counts messages and bytes.
#[test]
fn a_ci_log_gets_progress_lines_and_the_summary_its_headline() {
    let _one = permit();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("run")
        .arg(scenario())
        .args(["--progress-interval", "1s", "--report-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("[    1s] clients "))
        .unwrap_or_else(|| panic!("no progress line at 1 s:\n{stderr}"));
    for part in ["sent ", "/s)", "received ", "violations 0", "fan-out p99"] {
        assert!(line.contains(part), "{part}: {line}");
    }
    let headline = stdout
        .lines()
        .position(|l| l.starts_with("operation"))
        .expect("headline");
    let metrics = stdout
        .lines()
        .position(|l| l.starts_with("metric (ms)"))
        .unwrap();
    assert!(headline < metrics, "headline first:\n{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("message ") && l.contains("fan-out (")),
        "{stdout}"
    );
    assert!(
        stdout.contains("co = from the intended send time"),
        "{stdout}"
    );
    assert!(
        stdout.contains("runtime.lag                co=raw"),
        "one row:\n{stdout}"
    );
    assert!(stdout.contains("messages sent ("), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let events = &summary["events"];
    assert_eq!(events["sent_by_operation"]["message"], 16, "{events}");
    assert_eq!(events["sent_by_operation"]["join_room"], 8, "{events}");
    // Every sent frame is at least its event name.
    assert!(events["bytes_sent"].as_u64().unwrap() > 16 * 32, "{events}");
    assert!(
        events["bytes_received"].as_u64().unwrap() > events["bytes_sent"].as_u64().unwrap(),
        "each message reaches four members: {events}"
    );
}

/// `roomrig run … | head`: a reader that goes away early does not make the run panic; it
/// ends with its verdict's exit code.
#[test]
fn a_closed_stdout_is_no_panic() {
    let _one = permit();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("run")
        .arg(scenario())
        .args(["--no-progress", "--report-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        dir.path().join("summary.json").is_file(),
        "the report is written"
    );
}

/// More arrivals than users, and a counted group the arrivals never reach: the run says so.
#[test]
fn a_schedule_that_leaves_out_clients_is_warned() {
    let _one = permit();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario())
        .unwrap()
        .replace("arrival_rate: 8 }", "arrival_rate: 10 }")
        .replace("  - name: talker\n", "  - name: talker\n    count: 8\n")
        .replace(
            "      - leave_room\n",
            "      - leave_room\n  - name: late\n    count: 1\n    flow: [join_room, leave_room]\n",
        );
    let path = dir.path().join("warned.yaml");
    std::fs::write(&path, text).unwrap();
    let o = roomrig_run(&path, &[]);
    assert_eq!(o.code, 0, "{}", o.explain());
    assert_eq!(
        o.stderr
            .matches("warning: the phases plan 9 arrivals but there are 8 users")
            .count(),
        1,
        "{}",
        o.stderr
    );
    assert_eq!(
        o.stderr
            .matches("warning: client group `late` (count: 1) gets 0 of its 1")
            .count(),
        1,
        "{}",
        o.stderr
    );
}

/// Rooms of 2 in the users file, rooms of 4 on the server: the run stops with exit 2 and
/// says which user the server put where, instead of blaming the server with violations.
#[test]
fn a_users_file_that_does_not_match_the_server_stops_the_run() {
    let _one = permit();
    let server = Served::dorm_of_eight();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario())
        .unwrap()
        .replace("room_size: 4", "room_size: 2");
    let path = dir.path().join("rooms-of-2.yaml");
    std::fs::write(&path, text).unwrap();
    let o = roomrig_run(&path, &["--target", &server.url]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(
        o.stderr
            .contains("the users file does not describe the server"),
        "{}",
        o.stderr
    );
    // User n is in room (n-1)/4+1 on the server and (n-1)/2+1 in the users file.
    let said = o
        .stderr
        .split("the server put user ")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", o.stderr));
    let numbers: Vec<u64> = said
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(|w| w.parse().unwrap())
        .collect();
    let [user, server_room, file_room] = numbers[..] else {
        panic!("{said}")
    };
    assert_eq!(server_room, (user - 1) / 4 + 1, "{said}");
    assert_eq!(file_room, (user - 1) / 2 + 1, "{said}");
    assert!(o.summary().is_none(), "no verdict on the server");
    assert!(!o.stdout.contains("violations:"), "{}", o.stdout);
}

/// Users as CSV (Artillery's payload format), by extension or by content, for the driver and
/// for `roomrig serve`; the run against the served CSV users passes.
#[test]
fn users_as_csv_drive_a_run_and_a_server() {
    let _one = permit();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("user_id,username,token,room_id\n");
    for i in 1..=8u64 {
        csv.push_str(&format!("{i},user{i},tok-{i},{}\n", (i - 1) / 4 + 1));
    }
    let with_extension = dir.path().join("users.csv");
    let without = dir.path().join("users.payload");
    std::fs::write(&with_extension, &csv).unwrap();
    std::fs::write(&without, &csv).unwrap();
    let server = Served::start(&[
        "--dialect",
        "dorm",
        "--users",
        with_extension.to_str().unwrap(),
    ]);
    let o = roomrig_run(
        &scenario(),
        &[
            "--target",
            &server.url,
            "--users",
            without.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.explain());
    assert_eq!(o.report()["clients"]["connected"], 8);
    assert_eq!(o.report()["violations"]["total"], 0);
}
