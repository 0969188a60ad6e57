//! The official socket.io clients (Node) against the reference server: socket.io-client 4 over
//! Engine.IO v4 and socket.io-client 2 over Engine.IO v3, each with one polling and one websocket
//! client. `tests/node` (workspace root) holds the pinned clients; this test installs them with
//! `npm ci` when `node_modules` is missing or older than the lockfile. It is skipped only when
//! `node` or `npm` is not installed at all.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;

const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("tests")
        .join("node")
}

fn tool_exists(tool: &str) -> bool {
    match Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

/// node_modules is up to date when npm's hidden lockfile is at least as new as package-lock.json.
fn node_modules_current(dir: &Path) -> bool {
    let mtime = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let required = ["socket.io-client", "socket.io-client-v2"]
        .iter()
        .all(|pkg| {
            dir.join("node_modules")
                .join(pkg)
                .join("package.json")
                .is_file()
        });
    match (
        mtime(dir.join("node_modules").join(".package-lock.json")),
        mtime(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => required && installed >= locked,
        _ => false,
    }
}

/// Installs the Node clients once per test binary. `false` means node/npm are not installed.
fn node_clients_ready() -> bool {
    static SETUP: OnceLock<Result<bool, String>> = OnceLock::new();
    let setup = SETUP.get_or_init(|| {
        if !tool_exists("node") || !tool_exists("npm") {
            return Ok(false);
        }
        let dir = node_dir();
        if !node_modules_current(&dir) {
            let out = Command::new("npm")
                .arg("ci")
                .arg("--prefix")
                .arg(&dir)
                .args(["--no-audit", "--no-fund"])
                .output()
                .map_err(|e| format!("cannot run npm ci: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "npm ci --prefix {} failed ({}):\n{}\n{}",
                    dir.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(true)
    });
    match setup {
        Ok(true) => true,
        Ok(false) => {
            eprintln!("SKIPPED: node and npm are not installed; the Node socket.io client tests need them");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

/// Runs `node tests/node/dorm-client.js` and returns its JSON summary.
fn run_dorm_client(url: &str, eio: u8, token_a: &str, token_b: &str) -> Value {
    let script = node_dir().join("dorm-client.js");
    let mut child = Command::new("node")
        .arg(&script)
        .args([url, &eio.to_string(), token_a, token_b])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CLIENT_DEADLINE {
            child.kill().ok();
            child.wait().ok();
            panic!("dorm-client.js (EIO {eio}) still running after {CLIENT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .ok();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .ok();
    assert!(
        status.success(),
        "dorm-client.js EIO {eio} failed ({status}):\n{stderr}\n{stdout}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}

fn check_node_client(eio: u8, client: &str) {
    if !node_clients_ready() {
        return;
    }
    let server = TestServer::dorm(4, 2, vec![]);
    let summary = run_dorm_client(&server.url, eio, &server.token(1), &server.token(2));
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["eio"], eio);
    assert_eq!(summary["client"], client);
    assert_eq!(summary["engine_protocol"]["a"], eio, "{summary}");
    assert_eq!(summary["engine_protocol"]["b"], eio, "{summary}");
    assert_eq!(summary["transports"]["a"], "polling");
    assert_eq!(summary["transports"]["b"], "websocket");
    assert_eq!(summary["room_id"], 1);
    assert_eq!(summary["user_ids"]["a"], 1);
    assert_eq!(summary["user_ids"]["b"], 2);
    assert_eq!(summary["count_after_joins"], 2);
    assert_eq!(
        summary["message"]["received_by"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(summary["action"]["action"], "05");
    assert!(summary["action_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
}

#[test]
fn socket_io_client_4_over_engine_io_v4() {
    check_node_client(4, "socket.io-client@4.8.1");
}

#[test]
fn socket_io_client_2_over_engine_io_v3() {
    check_node_client(3, "socket.io-client@2.5.0");
}
