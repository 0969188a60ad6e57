//! The driver against a hostile target (issue 11): a server that stops reading, one that sends
//! frames over the advertised maximum, one that never answers; and the report directory two
//! runs would share.
//!
//! The hostile server is written here on raw TCP, so it can do what no library server does:
//! complete the Engine.IO 4 / Socket.IO handshake over WebSocket, keep pinging, and then never
//! read again, or send a frame of any size.

mod common;

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// What the hostile server does once a session is connected.
#[derive(Clone, Copy)]
enum Hostility {
    /// Never reads again (keeps pinging).
    StopsReading,
    /// Every other session gets one text frame of `sizes[k % 2]` bytes (k counts those
    /// sessions); the server keeps reading and pinging.
    BigFrames { sizes: [usize; 2] },
}

/// The advertised heartbeat (ms) and maxPayload (bytes).
const PING_INTERVAL: u64 = 300;
const PING_TIMEOUT: u64 = 300;
const MAX_PAYLOAD: usize = 65_536;

/// Starts the hostile server on a loopback port, in its own thread; returns its URL.
fn hostile_server(how: Hostility) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            let sessions = Arc::new(AtomicU32::new(0));
            let victims = Arc::new(AtomicU32::new(0));
            while let Ok((socket, _)) = listener.accept().await {
                let (sessions, victims) = (sessions.clone(), victims.clone());
                tokio::spawn(async move {
                    let _ = session(socket, how, &sessions, &victims).await;
                });
            }
        });
    });
    format!("http://{addr}")
}

async fn session(
    socket: TcpStream,
    how: Hostility,
    sessions: &AtomicU32,
    victims: &AtomicU32,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let (mut rd, wr) = socket.into_split();
    let wr = Arc::new(Mutex::new(wr));
    // The websocket handshake (an EIO 3 request is refused, as Node's engine.io 4 does).
    let mut request = Vec::new();
    while !request.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if rd.read(&mut b).await? == 0 {
            return Ok(());
        }
        request.push(b[0]);
    }
    let request = String::from_utf8_lossy(&request).into_owned();
    if request.contains("EIO=3") {
        let mut w = wr.lock().await;
        w.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let key = request
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let n = sessions.fetch_add(1, Ordering::Relaxed);
    {
        let mut w = wr.lock().await;
        w.write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let open = format!(
            r#"0{{"sid":"hostile{n}","upgrades":[],"pingInterval":{PING_INTERVAL},"pingTimeout":{PING_TIMEOUT},"maxPayload":{MAX_PAYLOAD}}}"#
        );
        write_text(&mut w, open.as_bytes()).await?;
    }
    // The server pings, as socket.io 4 does, until the client is gone.
    let pinger = wr.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(PING_INTERVAL)).await;
            if write_text(&mut *pinger.lock().await, b"2").await.is_err() {
                return;
            }
        }
    });
    // The client's Socket.IO CONNECT, answered.
    loop {
        match read_frame(&mut rd).await? {
            Some((1, text)) if text.starts_with(b"40") => break,
            Some(_) => continue,
            None => return Ok(()),
        }
    }
    write_text(&mut *wr.lock().await, br#"40{"sid":"socket"}"#).await?;
    match how {
        Hostility::StopsReading => {
            // Hold the socket open, read nothing, until the client resets it (the pinger's
            // writes fail then).
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        Hostility::BigFrames { sizes } => {
            if n % 2 == 1 {
                let k = victims.fetch_add(1, Ordering::Relaxed) as usize;
                let size = sizes[k % 2];
                let wr = wr.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let head = br#"42["message",""#;
                    let tail = br#""]"#;
                    let mut frame = Vec::with_capacity(size);
                    frame.extend_from_slice(head);
                    frame.resize(size - tail.len(), b'a');
                    frame.extend_from_slice(tail);
                    // The client resets the connection part way: the write fails then.
                    let _ = write_text(&mut *wr.lock().await, &frame).await;
                });
            }
            // Reads (and drops) what the client sends, until its close frame or EOF.
            while let Some((opcode, _)) = read_frame(&mut rd).await? {
                if opcode == 8 {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// One unfragmented, unmasked server text frame.
async fn write_text(w: &mut OwnedWriteHalf, payload: &[u8]) -> std::io::Result<()> {
    let mut head = vec![0x81u8];
    match payload.len() {
        n if n < 126 => head.push(n as u8),
        n if n <= 0xffff => {
            head.push(126);
            head.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            head.push(127);
            head.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    w.write_all(&head).await?;
    w.write_all(payload).await
}

/// One (masked) client frame: its opcode and unmasked payload; `None` at EOF.
async fn read_frame(r: &mut OwnedReadHalf) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 2];
    if r.read_exact(&mut head).await.is_err() {
        return Ok(None);
    }
    let len = match head[1] & 0x7f {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    if head[1] & 0x80 != 0 {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some((head[0] & 0x0f, payload)))
}

/// A scenario file of `body` (YAML) in `dir`.
fn scenario(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("scenario.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

/// Waits for `child`, killing it (and failing) if it runs past `limit`: a hang guard.
fn wait_or_kill(mut child: Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "roomrig still running after {limit:?}: killed\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn spawn_run(scenario: &std::path::Path, target: &str, report: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("run")
        .arg(scenario)
        .args(["--target", target, "--no-progress", "--report-dir"])
        .arg(report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn summary(report: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap()).unwrap()
}

/// A server that completes the handshake, keeps pinging and never reads again: each client's
/// first blocked write ends its flow within pingInterval + pingTimeout (at least 1 s) as
/// `connection/unresponsive`, and the run ends by itself (it used to hang until killed).
#[test]
fn a_target_that_stops_reading_ends_the_run_with_unresponsive() {
    let _permit = common::permit();
    let target = hostile_server(Hostility::StopsReading);
    let tmp = tempfile::tempdir().unwrap();
    let big = "a".repeat(64 * 1024);
    let path = scenario(
        tmp.path(),
        &format!(
            "name: stops-reading\ndialect: dorm\neio: 4\nusers: {{ generate: {{ count: 4, room_size: 4 }} }}\n\
             phases: [ {{ duration: 200ms, arrival_rate: 20 }} ]\nclients:\n  - name: writer\n    flow:\n      \
             - loop:\n          count: 400\n          steps:\n            - send: {{ event: note, args: [ \"{big}\" ] }}\n            \
             - think: 5ms\n"
        ),
    );
    let report = tmp.path().join("report");
    let out = wait_or_kill(spawn_run(&path, &target, &report), Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let explain = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{explain}");
    let s = summary(&report);
    let by_rule = &s["violations"]["by_rule"];
    let unresponsive = &by_rule["dorm/connection/unresponsive"];
    assert_eq!(unresponsive["count"], 4, "every client: {explain}");
    assert!(
        unresponsive.to_string().contains("stopped reading"),
        "{unresponsive}"
    );
    assert!(
        by_rule.get("dorm/connection/unexpected-close").is_none(),
        "the client closed, not the server: {by_rule}"
    );
    assert!(stdout.contains("dorm/connection/unresponsive"), "{stdout}");
}

/// Frames over the cap (twice the advertised maxPayload + 4 KiB; the library's ceiling of
/// about 2 MB whatever is advertised) are the server's malformed frames, a SHOULD: that client's
/// connection ends, the others go on, and a 32 MiB frame is refused from its header, never
/// buffered.
#[test]
fn frames_over_the_cap_are_the_servers_malformed_frames() {
    let _permit = common::permit();
    let target = hostile_server(Hostility::BigFrames {
        sizes: [200_000, 32 << 20],
    });
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(
        tmp.path(),
        "name: big-frames\ndialect: dorm\neio: 4\nusers: { generate: { count: 12, room_size: 4 } }\n\
         phases: [ { duration: 300ms, arrival_rate: 40 } ]\nclients:\n  - name: visitor\n    flow: [ { think: 1s } ]\n",
    );
    let report = tmp.path().join("report");
    let out = wait_or_kill(spawn_run(&path, &target, &report), Duration::from_secs(120));
    let explain = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A SHOULD (no seed bounds what a server sends): the run passes with warnings.
    assert_eq!(out.status.code(), Some(0), "{explain}");
    let s = summary(&report);
    let by_rule = &s["violations"]["by_rule"];
    let malformed = &by_rule["dorm/connection/malformed"];
    assert_eq!(malformed["level"], "SHOULD", "{explain}");
    let count = malformed["count"].as_u64().unwrap();
    // Every other session is hit (the probe and preflight sessions may take some turns).
    assert!((4..12).contains(&count), "{count}: {explain}");
    assert_eq!(s["clients"]["connected"], 12, "{explain}");
    let text = malformed.to_string();
    let cap = 2 * MAX_PAYLOAD + 4096;
    assert!(text.contains(&format!("at most {cap} bytes")), "{text}");
    assert!(
        text.contains("a frame of 200000 bytes") || text.contains("a frame of 33554432 bytes"),
        "{text}"
    );
    assert!(
        by_rule.get("dorm/connection/unexpected-close").is_none(),
        "{by_rule}"
    );
    // Three 32 MiB frames were sent: buffered, they alone would take 96 MiB.
    let peak = s["driver"]["peak_rss_mb"].as_f64().unwrap();
    assert!(peak < 64.0, "peak RSS {peak} MB");
}

/// Ctrl-C while the preflight (here the Engine.IO detection) waits on a target that accepts
/// TCP and never answers stops the run at once, exit 130, instead of waiting for the connect
/// timeout and reporting the target unreachable (exit 5).
#[test]
fn ctrl_c_during_the_preflight_stops_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(8).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn_run(
        &common::repo_file("tests/scenarios/connect-only.yaml"),
        &format!("http://{addr}"),
        &tmp.path().join("report"),
    );
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = wait_or_kill(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("timed out"), "{stderr}");
}

/// A report directory is one run's: refused while another run holds it, refused when it
/// holds a report unless `--overwrite`, which removes the earlier run's files first.
#[test]
fn a_report_directory_belongs_to_one_run() {
    let _permit = common::permit();
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_roomrig"))
            .arg("run")
            .arg(common::repo_file("tests/scenarios/connect-only.yaml"))
            .args(["--no-progress", "--report-dir"])
            .arg(&report)
            .args(extra)
            .output()
            .unwrap()
    };
    // Another run holds the directory (its lock, taken here).
    std::fs::create_dir_all(&report).unwrap();
    let lock = std::fs::File::create(report.join(".roomrig.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let out = run(&["--overwrite"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use by another roomrig run"), "{stderr}");
    // Released (as by a run that died): the lock file left behind blocks nothing.
    drop(lock);
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A failing run's transcripts, left beside that report.
    std::fs::write(report.join("transcripts.txt"), "== client 0 (user1)\n").unwrap();
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not empty") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    let out = run(&["--overwrite"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.join("summary.json").exists());
    assert!(
        !report.join("transcripts.txt").exists(),
        "a stale transcript beside a passing summary"
    );
}
