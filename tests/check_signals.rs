//! `roomrig check` stops on Ctrl-C, SIGTERM and SIGHUP like `run`: what ran is reported (JUnit
//! included), the rest is skipped, and the code says which signal it was.

use std::process::Command;

#[test]
fn sigterm_stops_check_and_reports_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let child = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .args(["check", "--dialect", "dorm", "--junit"])
        .arg(&junit)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(143), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("interrupted"), "{xml}");
    assert!(stdout.contains("skipped"), "{stdout}");
}
