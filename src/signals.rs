//! Stop requests from outside. Ctrl-C (SIGINT), `timeout` and CI cancellation (SIGTERM) and a
//! closed terminal (SIGHUP) all stop a run the same way: the clients close, the report of what
//! ran is written, and the exit code says which signal it was (128 + its number: 130, 143,
//! 129). Without handlers SIGTERM and SIGHUP would end the process at once, with no report and
//! with its child processes left running.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use tokio::sync::watch;

/// The signal that asked to stop (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
static STOP: OnceLock<watch::Sender<bool>> = OnceLock::new();

/// Installs the handlers; call once, inside the runtime, before anything starts. From then on
/// these signals no longer end the process: [`stop_requested`] reports them.
pub fn install() {
    let (tx, _) = watch::channel(false);
    if STOP.set(tx).is_err() {
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for (kind, number) in [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::hangup(), libc::SIGHUP),
        ] {
            // Registered now, not when first awaited: a signal in between must not kill us.
            let Ok(mut stream) = signal(kind) else {
                continue;
            };
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    note(number);
                }
            });
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            note(2);
        }
    });
}

fn note(number: i32) {
    // The first signal names the stop; a repeated one changes nothing.
    let _ = RECEIVED.compare_exchange(0, number, Ordering::Relaxed, Ordering::Relaxed);
    if let Some(tx) = STOP.get() {
        tx.send_replace(true);
    }
}

/// Resolves once a stop was requested (at once if it already was). Without [`install`] (a
/// library user, a test), it falls back to Ctrl-C.
pub async fn stop_requested() {
    match STOP.get() {
        Some(tx) => {
            let mut rx = tx.subscribe();
            let _ = rx.wait_for(|stop| *stop).await;
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
            note(2);
        }
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    RECEIVED.load(Ordering::Relaxed) != 0
}

/// The exit code of a run stopped by a signal: 128 + the signal's number (130 when none was
/// recorded, the code of an interrupted run).
pub fn interrupted_code() -> i32 {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => 130,
        n => 128 + n,
    }
}
