//! The child processes of a `--workers` run: reference servers (`roomrig serve`) and workers
//! (`roomrig run --worker K/N`). Each is a plain child process of its own (own open-file
//! limit) in its own process group, so a Ctrl-C at the terminal reaches only the parent, which
//! forwards it to the workers and stops the servers after them.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::share::Live;

/// How long a server may take to load its users and listen.
const SERVER_START: Duration = Duration::from_secs(60);

/// A reference server in its own process.
pub struct ServerProc {
    pub child: Child,
    pub url: String,
}

/// What a child process cost, read from `/proc` just before it is stopped.
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub cpu_s: f64,
    pub peak_rss_mb: f64,
}

/// Reads a live process's CPU time and peak resident memory (Linux; zeros elsewhere).
pub fn cost_of(pid: u32) -> Cost {
    let u = crate::resources::Usage::of_process(pid);
    Cost {
        cpu_s: u.cpu_s(),
        peak_rss_mb: u.peak_rss_mb(),
    }
}

/// Sends a signal to a child process.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill only sends a signal to the given process, one of our children.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

fn command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.process_group(0)
        .kill_on_drop(true)
        .stderr(Stdio::inherit());
    // No child outlives the parent, even one killed with SIGKILL (where no handler runs): the
    // kernel sends the child SIGTERM when the parent dies, and it stops and reports as usual.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG is async-signal-safe and touches only this child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Starts `roomrig serve` on a free loopback port with the given arguments and waits for its
/// `listening on URL` line.
pub async fn start_server(exe: &Path, args: &[String]) -> Result<ServerProc, String> {
    let mut child = command(exe)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{} serve`: {e}", exe.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(SERVER_START, lines.next_line())
        .await
        .map_err(|_| "the reference server did not start listening in time".to_string())?
        .map_err(|e| format!("reading the reference server's output: {e}"))?;
    let url = first
        .as_deref()
        .and_then(|l| l.trim().strip_prefix("listening on "))
        .map(str::to_string)
        .ok_or_else(|| format!("the reference server did not start (first line {first:?})"))?;
    // Keep reading (and dropping) its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(ServerProc { child, url })
}

impl ServerProc {
    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and returns its cost.
    pub async fn stop(mut self) -> Cost {
        let Some(pid) = self.child.id() else {
            return Cost::default();
        };
        let cost = cost_of(pid);
        signal(pid, libc::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.ok();
        }
        cost
    }
}

/// A worker process.
pub struct WorkerProc {
    pub index: u32,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    /// Fires when the worker has connected once and waits for the start.
    pub ready: tokio::sync::oneshot::Receiver<()>,
}

/// Starts `roomrig run ... --worker K/N` and follows its stdout: `@ready` once it waits for the
/// start, `@progress ...` lines (stored in `live[index]`) while it runs, and with
/// `--metrics-listen` its `@second ...` lines (given to `seconds`).
pub fn start_worker(
    exe: &Path,
    index: u32,
    args: &[std::ffi::OsString],
    live: Arc<Mutex<Vec<Live>>>,
    seconds: Option<Arc<crate::live_feed::Gatherer>>,
) -> Result<WorkerProc, String> {
    let mut child = command(exe)
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start worker {index}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stdin = child.stdin.take();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "@ready" {
                if let Some(tx) = ready_tx.take() {
                    tx.send(()).ok();
                }
            } else if let Some(l) = Live::parse(&line) {
                crate::oracle::lock(&live)[index as usize] = l;
            } else if let (Some(g), Some(s)) =
                (&seconds, crate::live_feed::WorkerSecond::parse(&line))
            {
                g.take(index, s);
            } else {
                crate::out::outln!("[worker {index}] {line}");
            }
        }
        if let Some(g) = &seconds {
            g.done(index);
        }
    });
    Ok(WorkerProc {
        index,
        child,
        stdin,
        ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cost() {
        let c = cost_of(std::process::id());
        assert!(c.peak_rss_mb > 0.0);
    }
}
