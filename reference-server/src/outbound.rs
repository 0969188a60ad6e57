//! Each connection's outgoing bytes wait in a queue capped in bytes; a client that falls further
//! behind than the cap is a reader that stopped reading, and its connection is closed.
//!
//! Why here, below HTTP and websocket: socketioxide caps a socket's queue in packets (1,024
//! here, see [`crate::OUTBOUND_BUFFER_PACKETS`]), not bytes, and its websocket writer waits for
//! the socket to take each frame. 200 websocket clients that answered pings but never read,
//! while one client sent 8 KB public messages, took the lobby server from 22 MB to 1.67 GB
//! (8 MB queued per client), and a writer stuck on a client that never reads again kept that
//! memory for as long as the client kept its TCP connection. [`OutboundQueue`] never makes a
//! writer wait: what the kernel does not take at once is queued here, in bytes, and a drain
//! task hands it to the kernel as the client reads. So socketioxide's packet queue stays empty,
//! and the bytes a client may owe are bounded twice:
//!
//! - per connection, by [`OutboundLimits::per_connection`];
//! - across the server, by [`OutboundLimits::total`]: while the queues together would exceed
//!   it, a connection that holds at least its even share of them is closed. Clients that read
//!   hold little or nothing here (the kernel's buffers take their bursts), so the ones closed
//!   are the ones that stopped reading, however many there are.
//!
//! A closed connection is reset (`SO_LINGER` 0), so the kernel drops its unsent bytes too.
//! HTTP long-polling sessions keep socketioxide's packet cap: a session whose client stops
//! polling is closed at its next ping once 1,024 packets wait.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How long bytes still queued when the server is done with a connection may take to reach
/// the client before the connection is reset.
const LINGER_AFTER_CLOSE: Duration = Duration::from_secs(5);

/// A drained queue keeps at most this much of its allocation for the next burst.
const KEEP_ALLOCATED: usize = 64 * 1024;

/// The byte caps of outgoing queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// The most bytes one connection may have queued.
    pub per_connection: usize,
    /// The most bytes all connections together may have queued before the ones holding the
    /// most are closed.
    pub total: usize,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            per_connection: 1 << 20,
            total: 64 << 20,
        }
    }
}

/// The queues of one server, for its limits and its totals.
#[derive(Debug)]
pub struct OutboundBudget {
    limits: OutboundLimits,
    /// Bytes queued across all connections.
    queued: AtomicUsize,
    /// Connections with a non-empty queue.
    queues: AtomicUsize,
    /// Connections closed for falling behind, since the start.
    closed: AtomicUsize,
}

impl OutboundBudget {
    pub fn new(limits: OutboundLimits) -> Arc<OutboundBudget> {
        Arc::new(OutboundBudget {
            limits,
            queued: AtomicUsize::new(0),
            queues: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        })
    }

    /// Bytes queued across all connections now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Connections closed because their client fell behind.
    pub fn closed_slow_readers(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    /// May a queue of `len` bytes grow by `more`?
    fn admits(&self, len: usize, more: usize) -> bool {
        let after = len + more;
        if after > self.limits.per_connection {
            return false;
        }
        let total = self.queued.load(Ordering::Relaxed) + more;
        if total <= self.limits.total {
            return true;
        }
        // Over the server's budget: the queues above their even share are closed.
        let queues = self.queues.load(Ordering::Relaxed).max(1);
        after < total / queues
    }
}

/// A TCP connection whose writes never wait (see the module documentation).
pub struct OutboundQueue {
    shared: Arc<Shared>,
}

struct Shared {
    tcp: TcpStream,
    peer: SocketAddr,
    budget: Arc<OutboundBudget>,
    /// Set once the connection is closed for falling behind: reads and writes fail from then on.
    overflowed: AtomicBool,
    queue: Mutex<Queue>,
    /// Wakes the drain task when there is news (the connection overflowed or was dropped).
    news: Notify,
}

#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    /// Bytes of `bytes` already handed to the kernel.
    sent: usize,
    /// A drain task is running.
    draining: bool,
    /// The write side is to be shut down once the queue is empty.
    shutdown: bool,
    /// The server dropped the connection.
    dropped: bool,
}

impl Queue {
    fn len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.bytes.len() {
            self.sent = 0;
            self.bytes.clear();
            if self.bytes.capacity() > KEEP_ALLOCATED {
                self.bytes = Vec::new();
            }
        } else if self.sent > KEEP_ALLOCATED && self.sent > self.bytes.len() / 2 {
            self.bytes.drain(..self.sent);
            self.sent = 0;
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

fn fell_behind() -> io::Error {
    io::Error::other("closed: the client fell too far behind in reading")
}

impl OutboundQueue {
    pub fn new(tcp: TcpStream, budget: Arc<OutboundBudget>) -> OutboundQueue {
        let peer = tcp
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        OutboundQueue {
            shared: Arc::new(Shared {
                tcp,
                peer,
                budget,
                overflowed: AtomicBool::new(false),
                queue: Mutex::new(Queue::default()),
                news: Notify::new(),
            }),
        }
    }
}

impl Shared {
    /// Takes `more` bytes off the queue's share of the budget.
    fn release(&self, queue: &Queue, more: usize) {
        self.budget.queued.fetch_sub(more, Ordering::Relaxed);
        if queue.len() == 0 && more > 0 {
            self.budget.queues.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Closes a connection whose client fell behind: its queue is dropped, the kernel resets
    /// the connection (dropping its unsent bytes) once the last handle is gone, and the reader
    /// wakes to an error, which ends the session.
    fn overflow(&self, queue: &mut Queue, refused: usize) {
        let len = queue.len();
        tracing::info!(
            peer = %self.peer,
            queued = len,
            refused,
            "closing a connection whose client does not read fast enough"
        );
        self.overflowed.store(true, Ordering::Relaxed);
        queue.bytes = Vec::new();
        queue.sent = 0;
        self.release(queue, len);
        self.budget.closed.fetch_add(1, Ordering::Relaxed);
        let sock = socket2::SockRef::from(&self.tcp);
        sock.set_linger(Some(Duration::ZERO)).ok();
        // Wakes a reader waiting on the socket (it reads end-of-file, then fails below).
        sock.shutdown(std::net::Shutdown::Both).ok();
        self.news.notify_one();
    }

    /// Hands queued bytes to the kernel until it takes no more; `Err` on a broken connection.
    fn send_queued(&self, queue: &mut Queue) -> io::Result<()> {
        while queue.len() > 0 {
            match self.tcp.try_write(&queue.bytes[queue.sent..]) {
                Ok(n) => {
                    queue.advance(n);
                    self.release(queue, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Hands the queue to the kernel as the client reads; ends when it is empty, when the
/// connection overflowed, or [`LINGER_AFTER_CLOSE`] after the server dropped it.
async fn drain(shared: Arc<Shared>) {
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        {
            let mut queue = lock(&shared.queue);
            if shared.overflowed.load(Ordering::Relaxed) {
                queue.draining = false;
                return;
            }
            let sent = shared.send_queued(&mut queue);
            if sent.is_err() || queue.len() == 0 {
                if sent.is_err() {
                    let len = queue.len();
                    queue.bytes = Vec::new();
                    queue.sent = 0;
                    shared.release(&queue, len);
                } else if queue.shutdown {
                    socket2::SockRef::from(&shared.tcp)
                        .shutdown(std::net::Shutdown::Write)
                        .ok();
                }
                queue.draining = false;
                return;
            }
            if queue.dropped && give_up.is_none() {
                give_up = Some(tokio::time::Instant::now() + LINGER_AFTER_CLOSE);
            }
        }
        let deadline = async {
            match give_up {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.tcp.writable() => {}
            _ = shared.news.notified() => {}
            _ = deadline => {
                let mut queue = lock(&shared.queue);
                shared.overflow(&mut queue, 0);
                queue.draining = false;
                return;
            }
        }
    }
}

impl AsyncWrite for OutboundQueue {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        if shared.overflowed.load(Ordering::Relaxed) {
            return Poll::Ready(Err(fell_behind()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut queue = lock(&shared.queue);
        let mut rest = buf;
        if queue.len() == 0 {
            // The common case: the kernel takes it all and nothing is queued.
            match shared.tcp.try_write(buf) {
                Ok(n) if n == buf.len() => return Poll::Ready(Ok(n)),
                Ok(n) => rest = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if !shared.budget.admits(queue.len(), rest.len()) {
            shared.overflow(&mut queue, rest.len());
            return Poll::Ready(Err(fell_behind()));
        }
        if queue.len() == 0 {
            shared.budget.queues.fetch_add(1, Ordering::Relaxed);
        }
        shared
            .budget
            .queued
            .fetch_add(rest.len(), Ordering::Relaxed);
        queue.bytes.extend_from_slice(rest);
        if !queue.draining {
            queue.draining = true;
            tokio::spawn(drain(Arc::clone(shared)));
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Queued bytes are the drain task's: flushing never waits for a client.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return Poll::Ready(Err(fell_behind()));
        }
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down once the queue is empty (at once when it is).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut queue = lock(&self.shared.queue);
        if queue.draining {
            queue.shutdown = true;
        } else {
            socket2::SockRef::from(&self.shared.tcp)
                .shutdown(std::net::Shutdown::Write)
                .ok();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for OutboundQueue {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        loop {
            if shared.overflowed.load(Ordering::Relaxed) {
                return Poll::Ready(Err(fell_behind()));
            }
            ready!(shared.tcp.poll_read_ready(cx))?;
            match shared.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Drop for OutboundQueue {
    fn drop(&mut self) {
        let mut queue = lock(&self.shared.queue);
        queue.dropped = true;
        if queue.draining {
            self.shared.news.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn pair(limits: OutboundLimits) -> (OutboundQueue, TcpStream, Arc<OutboundBudget>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let budget = OutboundBudget::new(limits);
        (OutboundQueue::new(server, budget.clone()), client, budget)
    }

    /// Writes `chunk` until a write fails; the bytes written.
    async fn write_until_refused(queue: &mut OutboundQueue, chunk: &[u8]) -> usize {
        let mut written = 0;
        while queue.write_all(chunk).await.is_ok() {
            written += chunk.len();
            assert!(written < 1 << 30, "writes are never refused");
        }
        written
    }

    #[tokio::test]
    async fn a_client_that_reads_gets_everything_in_order() {
        let limits = OutboundLimits {
            per_connection: 64 << 10,
            total: 1 << 20,
        };
        let (mut queue, mut client, budget) = pair(limits).await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut sent = Vec::new();
        for i in 0..2000u32 {
            let chunk = vec![(i % 251) as u8; 1000 + (i as usize % 7)];
            queue.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        queue.shutdown().await.unwrap();
        drop(queue);
        assert_eq!(reader.await.unwrap(), sent);
        assert_eq!(budget.queued_bytes(), 0);
        assert_eq!(budget.closed_slow_readers(), 0);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_closed_at_the_cap_and_reset() {
        let limits = OutboundLimits {
            per_connection: 256 << 10,
            total: 64 << 20,
        };
        let (mut queue, mut client, budget) = pair(limits).await;
        let written = write_until_refused(&mut queue, &[7u8; 8192]).await;
        // The kernel's buffers took some, the queue at most its cap.
        assert!(written >= limits.per_connection, "{written}");
        assert_eq!(budget.closed_slow_readers(), 1);
        assert_eq!(budget.queued_bytes(), 0, "the queue is freed at once");
        // The server's reader fails too, which ends the session.
        let mut byte = [0u8; 1];
        assert!(queue.read(&mut byte).await.is_err());
        drop(queue);
        // The client finds its connection reset or ended, not held open.
        let mut sink = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut sink))
            .await
            .expect("the connection ends");
        assert!(sink.len() < written, "{} of {written}", sink.len());
        let _ = end;
    }

    #[tokio::test]
    async fn over_the_servers_budget_the_biggest_queues_are_closed() {
        let limits = OutboundLimits {
            per_connection: 1 << 20,
            total: 256 << 10,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let budget = OutboundBudget::new(limits);
        let mut conns = Vec::new();
        for _ in 0..4 {
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            conns.push((OutboundQueue::new(server, budget.clone()), client));
        }
        // Four clients that do not read, written to in turn: none reaches its own cap, but
        // together they exceed the budget, and then the ones holding the most are closed.
        let chunk = [1u8; 4096];
        let mut open = vec![true; conns.len()];
        for _ in 0..10_000 {
            for (k, (queue, _)) in conns.iter_mut().enumerate() {
                if open[k] && queue.write_all(&chunk).await.is_err() {
                    open[k] = false;
                }
            }
            if !open.iter().any(|o| *o) {
                break;
            }
            assert!(budget.queued_bytes() <= limits.total + conns.len() * chunk.len());
        }
        assert_eq!(budget.closed_slow_readers(), 4);
        assert_eq!(budget.queued_bytes(), 0);
    }
}
