//! Engine.IO generation detection: against a reference server that serves only EIO 3 (as
//! socket.io 2 does) or only EIO 4 (as socket.io 3/4 without `allowEIO3` does), `--eio auto`
//! (the default) detects the right one and runs clean, and a wrong explicit version is refused
//! with exit 5 and one sentence naming both versions, before any load.

mod common;

use std::process::Command;

use common::{permit, repo_file, roomrig_run, Served};

const SCENARIO: &str = "tests/scenarios/dorm-exact.yaml";

fn only(eio: &str, dialect: &str) -> Served {
    Served::start(&["--dialect", dialect, "--eio", eio])
}

#[test]
fn auto_detects_each_generation_and_runs_clean() {
    for eio in ["3", "4"] {
        let _permit = permit();
        let server = only(eio, "dorm");
        let o = roomrig_run(
            &repo_file(SCENARIO),
            &["--eio", "auto", "--target", &server.url],
        );
        assert_eq!(o.code, 0, "EIO {eio}: {}", o.explain());
        assert!(
            o.stdout.contains(&format!("detected Engine.IO {eio} at")),
            "{}",
            o.stdout
        );
        let s = o.report();
        assert_eq!(s["scenario"]["eio"], eio, "the report records the version");
        assert!(
            s["scenario"]["eio_detected"].is_string(),
            "{}",
            s["scenario"]
        );
        assert_eq!(s["violations"]["total"], 0);
        assert!(s["replay"]
            .as_str()
            .unwrap()
            .contains(&format!("--eio {eio}")));
    }
}

#[test]
fn a_wrong_explicit_version_is_refused_with_exit_5() {
    for (served, asked) in [("3", "4"), ("4", "3")] {
        let _permit = permit();
        let server = only(served, "dorm");
        let o = roomrig_run(
            &repo_file(SCENARIO),
            &["--eio", asked, "--target", &server.url],
        );
        assert_eq!(o.code, 5, "served {served}, asked {asked}: {}", o.explain());
        let sentence = format!("the target speaks Engine.IO {served} (");
        assert!(o.stderr.contains(&sentence), "{}", o.stderr);
        assert!(
            o.stderr.contains(&format!(
                "the run asks for Engine.IO {asked}: use --eio {served} or --eio auto"
            )),
            "{}",
            o.stderr
        );
        assert!(o.summary().is_none(), "nothing ran");
    }
}

#[test]
fn check_defaults_to_auto_and_refuses_a_mismatch() {
    for eio in ["3", "4"] {
        let _permit = permit();
        let server = only(eio, "lobby");
        let run = |extra: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_roomrig"))
                .args(["check", "--dialect", "lobby", "--target", &server.url])
                .args(["--case", "lobby/login/announced"])
                .args(extra)
                .output()
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let junit = dir.path().join("junit.xml");
        let out = run(&["--junit", junit.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "EIO {eio}: {stdout}");
        assert!(
            stdout.contains(&format!("detected Engine.IO {eio} at")),
            "{stdout}"
        );
        // The suite names the version it ran with, not "auto".
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains(&format!("(EIO={eio})")), "{xml}");
        let wrong = if eio == "3" { "4" } else { "3" };
        let out = run(&["--eio", wrong]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "EIO {eio}: {stderr}");
        assert!(
            stderr.contains(&format!("the target speaks Engine.IO {eio} (")),
            "{stderr}"
        );
    }
}

/// A server of both generations (the default reference server) is run with what was asked.
#[test]
fn a_two_generation_server_takes_either_explicit_version() {
    let _permit = permit();
    let server = Served::start(&["--dialect", "dorm"]);
    for eio in ["3", "4"] {
        let o = roomrig_run(
            &repo_file(SCENARIO),
            &["--eio", eio, "--target", &server.url],
        );
        assert_eq!(o.code, 0, "EIO {eio}: {}", o.explain());
        assert_eq!(o.report()["scenario"]["eio"], eio);
        assert!(o.report()["scenario"]["eio_detected"].is_null());
    }
}

/// Node's official servers, as independent targets: socket.io 2.5.0 (Engine.IO 3 only), 4.8.1
/// (Engine.IO 4 only) and 4.8.1 with `allowEIO3` (both).
mod node {
    use std::io::BufRead as _;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    use super::common::{permit, repo_file, roomrig_run};

    fn dir() -> PathBuf {
        repo_file("tests/node-servers")
    }

    /// `npm ci` once when node_modules is missing or older than the lockfile; false when node
    /// or npm is not installed.
    fn ready() -> bool {
        static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *READY.get_or_init(|| {
            let has = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
            if !has("node") || !has("npm") {
                eprintln!("SKIPPED: node and npm are not installed");
                return false;
            }
            let mtime = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let current = match (
                mtime(dir().join("node_modules/.package-lock.json")),
                mtime(dir().join("package-lock.json")),
            ) {
                (Some(installed), Some(locked)) => installed >= locked,
                _ => false,
            };
            if !current {
                let out = Command::new("npm")
                    .arg("ci")
                    .arg("--prefix")
                    .arg(dir())
                    .args(["--no-audit", "--no-fund"])
                    .output()
                    .expect("npm runs");
                assert!(out.status.success(), "npm ci: {out:?}");
            }
            true
        })
    }

    struct NodeServer {
        child: Child,
        url: String,
    }

    impl NodeServer {
        fn start(which: &str) -> NodeServer {
            NodeServer::with_args(&[which])
        }

        fn with_args(args: &[&str]) -> NodeServer {
            let mut child = Command::new("node")
                .arg(dir().join("server.js"))
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("node starts");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let url = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("first line: {line:?}"))
                .to_string();
            NodeServer { child, url }
        }
    }

    impl Drop for NodeServer {
        fn drop(&mut self) {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }

    #[test]
    fn node_servers_are_detected_and_a_mismatch_refused() {
        if !ready() {
            return;
        }
        let scenario = repo_file("tests/scenarios/connect-only.yaml");
        // (server, what auto detects, a version the server refuses)
        for (which, detected, wrong) in [
            ("2", "3", Some("4")),
            ("4", "4", Some("3")),
            ("4-eio3", "4", None),
        ] {
            let _permit = permit();
            let server = NodeServer::start(which);
            let o = roomrig_run(&scenario, &["--target", &server.url]);
            assert_eq!(o.code, 0, "socket.io {which}: {}", o.explain());
            assert!(
                o.stdout
                    .contains(&format!("detected Engine.IO {detected} at")),
                "socket.io {which}: {}",
                o.stdout
            );
            assert_eq!(o.report()["scenario"]["eio"], detected);
            assert_eq!(o.report()["clients"]["connected"], 4);
            if let Some(wrong) = wrong {
                let o = roomrig_run(&scenario, &["--target", &server.url, "--eio", wrong]);
                assert_eq!(o.code, 5, "socket.io {which}: {}", o.explain());
                assert!(
                    o.stderr
                        .contains(&format!("the target speaks Engine.IO {detected} ("))
                        && o.stderr.contains(&format!(
                        "the run asks for Engine.IO {wrong}: use --eio {detected} or --eio auto"
                    )),
                    "{}",
                    o.stderr
                );
            } else {
                // Both generations: either explicit version runs.
                for eio in ["3", "4"] {
                    let o = roomrig_run(&scenario, &["--target", &server.url, "--eio", eio]);
                    assert_eq!(o.code, 0, "socket.io {which} EIO {eio}: {}", o.explain());
                }
            }
        }
    }

    /// Point 3 on servers nobody here wrote: clients that stop their heartbeat at six moments
    /// relative to their last ping are closed inside the window derived from the handshake
    /// (500 ms + 500 ms), never early, by socket.io 2 (EIO 3) and 4 (EIO 4, and EIO 3 through
    /// allowEIO3).
    #[test]
    fn node_servers_close_dead_heartbeats_inside_the_window() {
        if !ready() {
            return;
        }
        let scenario = repo_file("tests/scenarios/connect-heartbeat-moments.yaml");
        for (which, eio) in [("2", "3"), ("4", "4"), ("4-eio3", "3")] {
            let _permit = permit();
            let server = NodeServer::with_args(&[which, "500", "500"]);
            let o = roomrig_run(&scenario, &["--target", &server.url, "--eio", eio]);
            assert_eq!(o.code, 0, "socket.io {which} EIO {eio}: {}", o.explain());
            let s = o.report();
            assert_eq!(s["violations"]["total"], 0, "{}", o.stdout);
            assert_eq!(
                s["metrics"]["heartbeat.close"]["raw"]["count"], 6,
                "{}",
                o.stdout
            );
        }
    }
}
