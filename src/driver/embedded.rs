//! The embedded reference server of a run that names no target, and its restart: a
//! `restart_server` step stops it and starts it again on the same address with the same store
//! (for chat, an SQLite file in a directory of its own, removed at the end of the run), as an
//! operator restarting a server process would.

use std::path::PathBuf;
use std::time::Duration;

use reference_server::{RunningServer, ServerConfig};

/// The running embedded server, and how to start it again.
pub struct Embedded {
    config: ServerConfig,
    url: String,
    server: tokio::sync::Mutex<Option<RunningServer>>,
    /// The directory of the store file of a server that is restarted (ours to remove).
    store_dir: Option<PathBuf>,
}

/// How long a restart waits for the address to be free again.
const REBIND_FOR: Duration = Duration::from_secs(5);

impl Embedded {
    /// Starts the server of `config`. With `restartable`, its store is a file that outlives the
    /// process's server (a restart keeps what it stored), not memory.
    pub async fn start(mut config: ServerConfig, restartable: bool) -> std::io::Result<Embedded> {
        let mut store_dir = None;
        if restartable {
            let dir = std::env::temp_dir().join(format!(
                "roomrig-restart-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
            ));
            std::fs::create_dir_all(&dir)?;
            config.chat_db = dir.join("chat.sqlite3").display().to_string();
            store_dir = Some(dir);
        }
        let server = match reference_server::start(config.clone()).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(dir) = &store_dir {
                    std::fs::remove_dir_all(dir).ok();
                }
                return Err(e);
            }
        };
        // The restarted server listens where the clients connect: the port picked now.
        config.listen = server.local_addr();
        Ok(Embedded {
            url: server.url(),
            config,
            server: tokio::sync::Mutex::new(Some(server)),
            store_dir,
        })
    }

    /// The URL clients connect to (the same across restarts).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops the server (every connection drops) and starts it again on the same address and
    /// store; returns once it listens.
    pub async fn restart(&self) -> Result<(), String> {
        let mut server = self.server.lock().await;
        if let Some(old) = server.take() {
            old.shutdown().await;
        }
        let give_up = tokio::time::Instant::now() + REBIND_FOR;
        loop {
            match reference_server::start(self.config.clone()).await {
                Ok(s) => {
                    *server = Some(s);
                    return Ok(());
                }
                // The old listener's socket may take a moment to go.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && tokio::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot restart the embedded reference server on {}: {e}",
                        self.config.listen
                    ))
                }
            }
        }
    }

    /// Stops the server for good and removes its store.
    pub async fn shutdown(&self) {
        if let Some(server) = self.server.lock().await.take() {
            server.shutdown().await;
        }
        if let Some(dir) = &self.store_dir {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
