//! The accept loop: every connection gets an [`OutboundQueue`] and an HTTP/1 server whose
//! request head must arrive within the handshake timeout.
//!
//! axum's `serve` has no header-read timeout: 1,000 half-open TCP connections and 1,000 that
//! sent one header byte every 5 s were all held forever, and with a lower open-file limit they
//! locked new clients out. hyper's `header_read_timeout` bounds the time from a connection's
//! first byte awaited to its request head's last (it is not reset by a byte arriving), and
//! again between the requests of a kept-alive connection; the websocket upgrade is one such
//! request, and socketioxide's `connect_timeout` bounds the Socket.IO CONNECT after it.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::outbound::{OutboundBudget, OutboundQueue};

/// Serves `app` on `listener` until `stop` fires, then lets the connections finish (each is
/// asked to close after its current request) and returns when they have.
pub(crate) async fn serve<S>(
    listener: TcpListener,
    app: S,
    handshake_timeout: Duration,
    budget: Arc<OutboundBudget>,
    stop: oneshot::Receiver<()>,
) -> io::Result<()>
where
    S: tower::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let (closing_tx, closing_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Small Socket.IO frames must not wait for Nagle's algorithm: latency is what we
        // measure.
        tcp.set_nodelay(true).ok();
        let io = TokioIo::new(OutboundQueue::new(tcp, budget.clone()));
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout);
            let mut conn = std::pin::pin!(builder.serve_connection(io, service).with_upgrades());
            let mut asked_to_close = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("connection ended: {e}");
                        }
                        break;
                    }
                    _ = closing.wait_for(|closing| *closing), if !asked_to_close => {
                        asked_to_close = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    closing_tx.send(true).ok();
    drop(open_tx);
    open_rx.recv().await;
    Ok(())
}

/// A failed accept: the next one may succeed at once, unless the process is out of file
/// descriptors, when a short pause lets some close (as hyper and axum do, with a shorter pause:
/// new clients wait for it).
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
