//! Shared helpers of the end-to-end tests: run the `roomrig` binary and read its report.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};

use serde_json::Value;

/// What one `roomrig run` did.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

impl Outcome {
    /// `summary.json`, if the run wrote one.
    pub fn summary(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("summary.json")).ok()?;
        Some(serde_json::from_str(&text).expect("summary.json is JSON"))
    }

    /// `summary.json`, which the run must have written.
    pub fn report(&self) -> Value {
        self.summary()
            .unwrap_or_else(|| panic!("no summary.json:\n{}\n{}", self.stdout, self.stderr))
    }

    /// The rule ids with violations.
    pub fn rules(&self) -> Vec<String> {
        self.report()["violations"]["by_rule"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn explain(&self) -> String {
        format!("exit {}\n{}\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Load runs at once in one test binary. A run is mostly waiting (heartbeat windows, report
/// windows, think times): one at a time left the 2-core CI box three quarters idle (7.5 CPU
/// minutes in 15 minutes of tests), two at a time keep it busy without saturating it. The
/// verdicts must not depend on the load anyway; a flaky run side by side would say they do.
pub const RUNS_AT_ONCE: usize = 2;

/// A counting semaphore over a test binary's load runs.
pub struct Pool {
    size: usize,
    running: Mutex<usize>,
    freed: Condvar,
}

/// A share of a [`Pool`], given back on drop.
pub struct Permit<'a> {
    pool: &'a Pool,
    n: usize,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.pool.running.lock().unwrap_or_else(|e| e.into_inner()) -= self.n;
        self.pool.freed.notify_all();
    }
}

impl Pool {
    pub const fn new(size: usize) -> Pool {
        Pool {
            size,
            running: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn take(&self, n: usize) -> Permit<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running + n > self.size {
            running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += n;
        Permit { pool: self, n }
    }

    /// One run's permit.
    pub fn permit(&self) -> Permit<'_> {
        self.take(1)
    }

    /// The whole pool, for a run that measures time (a latency or a window).
    pub fn alone(&self) -> Permit<'_> {
        self.take(self.size)
    }

    /// Runs `each` for every item on its own thread, each with a permit, and fails if any
    /// did. The caller must hold no permit of this pool itself.
    pub fn side_by_side<T: Sync>(&self, items: &[T], each: impl Fn(&T) + Sync) {
        std::thread::scope(|s| {
            for item in items {
                let each = &each;
                s.spawn(move || {
                    let _permit = self.permit();
                    each(item)
                });
            }
        });
    }
}

/// The load runs of this test binary: [`RUNS_AT_ONCE`].
pub static LOAD_RUNS: Pool = Pool::new(RUNS_AT_ONCE);

/// One load run's permit: at most [`RUNS_AT_ONCE`] at once per test binary.
pub fn permit() -> Permit<'static> {
    LOAD_RUNS.permit()
}

/// No other load run of this binary goes on meanwhile: for a run that measures time.
pub fn alone() -> Permit<'static> {
    LOAD_RUNS.alone()
}

/// [`Pool::side_by_side`] over [`LOAD_RUNS`].
pub fn side_by_side<T: Sync>(items: &[T], each: impl Fn(&T) + Sync) {
    LOAD_RUNS.side_by_side(items, each)
}

/// Runs `roomrig run SCENARIO ARGS... --no-progress` with a private report directory.
pub fn roomrig_run(scenario: &Path, args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("run")
        .arg(scenario)
        .args(args)
        .arg("--no-progress")
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .expect("roomrig runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

/// A file of the repository.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A Python virtualenv `NAME` under the target directory with `requirements` (a file of the
/// repository) installed, once: the tests install what they need themselves. Returns the
/// virtualenv's directory (`bin/python` inside).
///
/// The tests of one binary run in parallel threads, so the build holds a lock: CI once failed
/// with two tests of one binary running `python3 -m venv` into the same directory at once
/// ("File exists"). Each virtualenv belongs to one test binary, and cargo runs the binaries
/// one after another, so a lock in the process is enough. A build that died half-way (no
/// `installed` marker) is started afresh.
pub fn python_venv(name: &str, requirements: &str) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_BIN_EXE_roomrig"))
        .parent()
        .and_then(|p| p.parent())
        .expect("the target directory")
        .to_path_buf();
    let venv = target.join(name);
    let ready = venv.join("installed");
    if ready.exists() {
        return venv;
    }
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if !ready.exists() {
        if venv.exists() {
            std::fs::remove_dir_all(&venv).expect("remove a half-built virtualenv");
        }
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap_or_else(|e| panic!("python3 runs (needed for {requirements}): {e}"));
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
        let pip = Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(repo_file(requirements))
            .status()
            .expect("pip runs");
        assert!(
            pip.success(),
            "pip could not install {requirements} (is PyPI reachable?)"
        );
        std::fs::write(&ready, "").unwrap();
    }
    venv
}

/// `roomrig serve --listen 127.0.0.1:0 ARGS...` in its own process, killed on drop.
pub struct Served {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`, from the server's first line.
    pub url: String,
}

impl Served {
    /// The dorm server of the 8 users in rooms of 4 that the small dorm scenarios use.
    pub fn dorm_of_eight() -> Served {
        Served::start(&[
            "--dialect",
            "dorm",
            "--generate-users",
            "8",
            "--room-size",
            "4",
        ])
    }

    pub fn start(args: &[&str]) -> Served {
        use std::io::BufRead as _;
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomrig"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("roomrig serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_string();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A loopback server that answers every request with a plain HTTP page (not Socket.IO).
pub fn plain_http_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten().take(16) {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    addr
}

/// What an interrupted run left: its exit, output, the seconds it took to stop, and its report.
pub struct Interrupted {
    pub code: Option<i32>,
    pub output: String,
    pub stop_seconds: f64,
    pub summary: Value,
    /// How many child processes the run had when it was signalled.
    pub children: usize,
    /// Child processes of the run (workers, servers) still alive 5 s after it exited.
    pub leftovers: Vec<u32>,
}

/// Runs `roomrig run SCENARIO ARGS... --no-progress`, sends it SIGINT (Ctrl-C) after 4 s and
/// reads the report it still writes.
pub fn interrupted_run(scenario: &str, args: &[&str]) -> Interrupted {
    signalled_run(scenario, args, libc::SIGINT)
}

/// The child processes of `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| {
                    let (_, rest) = st.rsplit_once(") ")?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// As [`interrupted_run`], with another signal (SIGTERM, SIGHUP).
pub fn signalled_run(scenario: &str, args: &[&str], signal: libc::c_int) -> Interrupted {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("run")
        .arg(scenario)
        .args(args)
        .args(["--no-progress", "--report-dir"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let children = children_of(child.id());
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let stop_seconds = started.elapsed().as_secs_f64();
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.json"))
        .map(|t| serde_json::from_str(&t).expect("summary.json is JSON"))
        .unwrap_or_else(|e| panic!("no summary.json ({e}):\n{output}"));
    let alive = |pid: &u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while children.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Interrupted {
        code: out.status.code(),
        output,
        stop_seconds,
        summary,
        children: children.len(),
        leftovers: children.into_iter().filter(alive).collect(),
    }
}

/// A TCP relay on loopback in front of `upstream` (`http://HOST:PORT`) that delays every byte
/// by `delay` in each direction, keeping their order: a conformant server made slow, as one
/// behind a long network path is. Returns its `http://` URL; it serves until the test ends.
pub fn delaying_proxy(upstream: &str, delay: std::time::Duration) -> String {
    let upstream: std::net::SocketAddr = upstream
        .trim_start_matches("http://")
        .parse()
        .expect("an http://IP:PORT upstream");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(delayed_copy(cr, sw, delay));
                    tokio::spawn(delayed_copy(sr, cw, delay));
                });
            }
        });
    });
    format!("http://{addr}")
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; EOF likewise.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: std::time::Duration,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if bytes.is_empty() || to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        let _ = tx.send((tokio::time::Instant::now() + delay, buf[..n].to_vec()));
        if n == 0 {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
