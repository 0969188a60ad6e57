//! Shared helpers of the reference-server integration tests: a server on its own runtime, a
//! rust_socketio (EIO4) test client and a raw websocket client for hand-written frames.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use reference_server::faults::Fault;
use reference_server::fixtures::Fixtures;
use reference_server::{dorm, lobby, start, RunningServer, ServerConfig};
use rust_socketio::{ClientBuilder, Event, Payload, TransportType};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub const WAIT: Duration = Duration::from_secs(3);

/// A reference server on a private 2-worker runtime, so that tests may block freely.
pub struct TestServer {
    pub url: String,
    pub fixtures: Fixtures,
    server: Option<RunningServer>,
    rt: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Dorm server on 127.0.0.1:0 with `users` generated users in rooms of `room_size`.
    pub fn dorm(users: u64, room_size: u32, faults: Vec<Fault>) -> TestServer {
        let fixtures = Fixtures::generate(users, room_size);
        let mut config = ServerConfig::new(
            dorm::DIALECT,
            "127.0.0.1:0".parse().unwrap(),
            fixtures.clone(),
        );
        config.faults = faults;
        TestServer::start(config)
    }

    /// Lobby server on 127.0.0.1:0 (no fixtures needed) with the given heartbeat.
    pub fn lobby_with(
        ping_interval: Duration,
        ping_timeout: Duration,
        faults: Vec<Fault>,
    ) -> TestServer {
        let mut config = ServerConfig::new(
            lobby::DIALECT,
            "127.0.0.1:0".parse().unwrap(),
            Fixtures::generate(0, 2),
        );
        config.ping_interval = ping_interval;
        config.ping_timeout = ping_timeout;
        config.faults = faults;
        TestServer::start(config)
    }

    /// Push server with Engine.IO's default heartbeat.
    pub fn push(faults: Vec<Fault>) -> TestServer {
        let mut config = ServerConfig::new(
            reference_server::push::DIALECT,
            "127.0.0.1:0".parse().unwrap(),
            Fixtures::generate(0, 2),
        );
        config.faults = faults;
        TestServer::start(config)
    }

    /// Lobby server with Engine.IO's default heartbeat.
    pub fn lobby(faults: Vec<Fault>) -> TestServer {
        TestServer::lobby_with(Duration::from_secs(25), Duration::from_secs(20), faults)
    }

    pub fn start(config: ServerConfig) -> TestServer {
        let fixtures = config.fixtures.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(start(config)).expect("server starts");
        TestServer {
            url: server.url(),
            fixtures,
            server: Some(server),
            rt: Some(rt),
        }
    }

    pub fn token(&self, user_id: u64) -> String {
        self.fixtures
            .users
            .iter()
            .find(|u| u.user_id == user_id)
            .unwrap()
            .token
            .clone()
    }

    /// The running server (for its counters).
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// Runs `fut` on the server's runtime (for async test clients).
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.rt.as_ref().unwrap().block_on(fut)
    }

    pub fn ws_url(&self, eio: u8) -> String {
        format!(
            "{}/socket.io/?EIO={eio}&transport=websocket",
            self.url.replacen("http://", "ws://", 1)
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let (Some(rt), Some(server)) = (self.rt.take(), self.server.take()) {
            rt.block_on(server.shutdown());
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// A rust_socketio client whose received events are queued for the test to inspect.
pub struct SioClient {
    client: rust_socketio::client::Client,
    rx: mpsc::Receiver<(String, Value)>,
}

impl SioClient {
    pub fn connect(url: &str) -> SioClient {
        SioClient::connect_with(url, TransportType::Websocket)
    }

    /// Connects and waits until the namespace is connected (rust_socketio's `connect()` returns
    /// before CONNECT is answered, and events emitted earlier may be dropped by the server).
    pub fn connect_with(url: &str, transport: TransportType) -> SioClient {
        let (tx, rx) = mpsc::channel();
        let (open_tx, open_rx) = mpsc::channel();
        let client = ClientBuilder::new(url)
            .transport_type(transport)
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                open_tx.send(()).ok();
            })
            .on_any(move |event, payload, _| {
                let value = match payload {
                    Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
                    other => Value::String(format!("{other:?}")),
                };
                tx.send((String::from(event), value)).ok();
            })
            .connect()
            .expect("rust_socketio connects");
        open_rx
            .recv_timeout(WAIT)
            .expect("namespace connected in time");
        SioClient { client, rx }
    }

    pub fn emit(&self, event: &str, data: Value) {
        self.client.emit(event, data).expect("emit");
    }

    /// Emits `event` with positional arguments (none, one, or several).
    pub fn emit_args(&self, event: &str, args: Vec<Value>) {
        self.client.emit(event, Payload::Text(args)).expect("emit");
    }

    pub fn recv(&self, timeout: Duration) -> Option<(String, Value)> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event, which must be `event`.
    pub fn expect(&self, event: &str) -> Value {
        match self.recv(WAIT) {
            Some((name, value)) if name == event => value,
            Some((name, value)) => panic!("expected {event}, got {name} {value}"),
            None => panic!("expected {event}, got nothing within {WAIT:?}"),
        }
    }

    /// Everything that arrives within `window`.
    pub fn drain(&self, window: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(ev) => out.push(ev),
                Err(_) => break,
            }
        }
        out
    }

    /// The next `n` events (waiting up to [`WAIT`] in all), then anything else that arrives
    /// within `quiet` (to catch surplus events).
    pub fn take(&self, n: usize, quiet: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.rx.recv_timeout(left) {
                Ok(ev) => out.push(ev),
                Err(_) => break,
            }
        }
        out.extend(self.drain(quiet));
        out
    }

    /// Joins with `token` and returns `last_data`.
    pub fn join(&self, token: &str) -> Value {
        self.emit("join_room", serde_json::json!({ "token": token }));
        self.expect("last_data")
    }

    pub fn disconnect(&self) {
        self.client.disconnect().ok();
    }
}

/// A raw Engine.IO websocket connection, to send arbitrary frames.
pub struct RawWs {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub eio: u8,
}

impl RawWs {
    /// Opens the websocket and reads the Engine.IO OPEN packet (`0{...}`).
    pub async fn open(url: &str, eio: u8) -> (RawWs, Value) {
        RawWs::open_within(url, eio, WAIT).await
    }

    /// [`RawWs::open`] with a custom time budget for the OPEN packet.
    pub async fn open_within(url: &str, eio: u8, wait: Duration) -> (RawWs, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        let mut raw = RawWs { ws, eio };
        let open = raw.next_text(wait).await.expect("open packet");
        let handshake = open.strip_prefix('0').expect("OPEN packet starts with 0");
        (raw, serde_json::from_str(handshake).unwrap())
    }

    /// EIO4: opens and connects namespace `/` (sends `40`, waits for `40{"sid":...}`).
    pub async fn connect_v4(url: &str) -> RawWs {
        RawWs::connect_v4_within(url, WAIT).await
    }

    /// [`RawWs::connect_v4`] with a custom time budget for each answer.
    pub async fn connect_v4_within(url: &str, wait: Duration) -> RawWs {
        let (mut raw, _) = RawWs::open_within(url, 4, wait).await;
        raw.send("40").await;
        let connect = raw.next_text(wait).await.expect("CONNECT answer");
        assert!(connect.starts_with("40{"), "{connect}");
        raw
    }

    pub async fn send(&mut self, frame: &str) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send frame");
    }

    /// Sends a frame; false if the connection is gone.
    pub async fn try_send(&mut self, frame: &str) -> bool {
        self.ws.send(Message::text(frame.to_string())).await.is_ok()
    }

    /// Next text frame within `timeout`, answering EIO4 pings on the way (engineioxide sends the
    /// first one right after the handshake); `None` on timeout or close.
    pub async fn next_text(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match msg {
                Ok(Message::Text(t)) if t.as_str() == "2" && self.eio == 4 => {
                    if !self.try_send("3").await {
                        return None;
                    }
                }
                Ok(Message::Text(t)) => return Some(t.as_str().to_string()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Next Socket.IO EVENT (`42[...]`) as (event, first argument).
    pub async fn next_event(&mut self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            let text = self.next_text(left).await?;
            if let Some(json) = text.strip_prefix("42") {
                let v: Vec<Value> = serde_json::from_str(json).expect("event is a JSON array");
                let name = v[0].as_str().unwrap().to_string();
                return Some((name, v.get(1).cloned().unwrap_or(Value::Null)));
            }
        }
    }

    /// Emits `event` with one JSON argument.
    pub async fn emit(&mut self, event: &str, data: &Value) {
        let frame = format!("42{}", serde_json::json!([event, data]));
        self.send(&frame).await;
    }
}

/// True for `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn is_rfc3339_millis_utc(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

// ---- the official Node socket.io clients (tests/node at the workspace root) ----

/// `tests/node` of the workspace: the pinned socket.io clients and the scripts that drive them.
pub fn node_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("tests")
        .join("node")
}

fn tool_exists(tool: &str) -> bool {
    match std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

/// node_modules is up to date when npm's hidden lockfile is at least as new as package-lock.json.
fn node_modules_current(dir: &std::path::Path) -> bool {
    let mtime = |p: std::path::PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
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

/// Installs the Node clients (`npm ci`) once per test binary when node_modules is missing or
/// older than the lockfile. `false` means node/npm are not installed (the caller skips).
pub fn node_clients_ready() -> bool {
    use std::sync::OnceLock;
    static SETUP: OnceLock<Result<bool, String>> = OnceLock::new();
    let setup = SETUP.get_or_init(|| {
        if !tool_exists("node") || !tool_exists("npm") {
            return Ok(false);
        }
        let dir = node_dir();
        if !node_modules_current(&dir) {
            let out = std::process::Command::new("npm")
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
            eprintln!(
                "SKIPPED: node and npm are not installed; the Node socket.io client tests need them"
            );
            false
        }
        Err(e) => panic!("{e}"),
    }
}

/// Runs `node tests/node/SCRIPT ARGS...`, which must exit 0 within `deadline` and print a JSON
/// summary as its last stdout line; returns that summary.
pub fn run_node_script(script: &str, args: &[&str], deadline: Duration) -> Value {
    use std::io::Read as _;
    let path = node_dir().join(script);
    let mut child = std::process::Command::new("node")
        .arg(&path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    // Drain both pipes on their own threads so that a chatty script cannot block on a full pipe.
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            pipe.read_to_string(&mut out).ok();
            out
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("{script} {args:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    assert!(
        status.success(),
        "{script} {args:?} failed ({status}):\n{stderr}\n{stdout}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}
