//! What one received frame costs a client process on this machine before roomrig does
//! anything with it: the floor under "driver CPU per received event" (issue 5's ≤ 2 µs target).
//!
//! A sender thread writes small server-to-client WebSocket text frames (the size of a dorm
//! broadcast) round-robin to SOCKETS loopback connections at RATE frames per second for
//! SECONDS. The receiving side, on one thread, is each of:
//! - `epoll`: a bare edge-triggered epoll loop reading until EAGAIN (no runtime, no parsing);
//! - `tokio`: one tokio task per socket reading bytes (tokio's current-thread runtime);
//! - `tungstenite`: one task per socket reading frames with tokio-tungstenite.
//!
//! It prints the receiving thread's CPU (user + system, getrusage RUSAGE_THREAD) per frame.
//! The kernel's share (the recv system call and the ACK it sends on loopback) is what no
//! user-space design with one TCP socket per client avoids.
//!   cargo bench --bench recv_floor                 # defaults: SOCKETS=2000 RATE=32000 SECONDS=10
//!   SOCKETS=4000 RATE=64000 cargo bench --bench recv_floor

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// A dorm `last_data` broadcast as the server frames it (42["last_data",{...}]): 64 bytes.
const PAYLOAD: &[u8] = br#"42["last_data",{"action":"m","room":"17","user":"u123","n":12345}]"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn frame() -> Vec<u8> {
    let mut f = vec![0x81, PAYLOAD.len() as u8];
    f.extend_from_slice(PAYLOAD);
    f
}

/// CPU seconds (user + system) of the calling thread.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Connected pairs: (the sender's end, the receiver's end).
fn pairs(n: usize) -> Vec<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(addr).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            client.set_nodelay(true).expect("nodelay");
            server.set_nodelay(true).expect("nodelay");
            (server, client)
        })
        .collect()
}

/// Writes `total` frames round-robin, paced at `rate` per second.
fn send(mut senders: Vec<TcpStream>, rate: u64, total: u64) {
    let frame = frame();
    let start = Instant::now();
    let n = senders.len();
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        senders[i as usize % n].write_all(&frame).expect("send");
    }
    // Keep the connections open until the receiver has read everything.
    std::thread::sleep(Duration::from_secs(2));
}

fn receive_epoll(receivers: Vec<TcpStream>, total: u64) -> u64 {
    // SAFETY: plain epoll calls on descriptors this function owns for its whole duration.
    let ep = unsafe { libc::epoll_create1(0) };
    for (i, s) in receivers.iter().enumerate() {
        s.set_nonblocking(true).expect("nonblocking");
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
    }
    let mut receivers = receivers;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = [0u8; 4096];
    let mut bytes = 0u64;
    let want = total * frame().len() as u64;
    while bytes < want {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 1000) };
        if n <= 0 {
            break;
        }
        for ev in &events[..n as usize] {
            let s = &mut receivers[ev.u64 as usize];
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                bytes += k as u64;
            }
        }
    }
    unsafe { libc::close(ep) };
    bytes / frame().len() as u64
}

/// One tokio task per socket on a current-thread runtime, reading frames with tokio-tungstenite
/// (`frames`) or bare bytes. Returns the frames received.
fn receive_tokio(receivers: Vec<TcpStream>, total: u64, frames: bool) -> u64 {
    // What the tasks count: frames, or bytes of frames.
    let unit = if frames { 1 } else { frame().len() as u64 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let count = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for s in receivers {
            s.set_nonblocking(true).expect("nonblocking");
            let s = tokio::net::TcpStream::from_std(s).expect("register");
            let count = count.clone();
            if frames {
                tasks.spawn(async move {
                    let config =
                        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                            .read_buffer_size(4096)
                            .write_buffer_size(0);
                    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        s,
                        tokio_tungstenite::tungstenite::protocol::Role::Client,
                        Some(config),
                    )
                    .await;
                    while let Some(Ok(_)) = ws.next().await {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            } else {
                tasks.spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut s = s;
                    let mut buf = vec![0u8; 4096];
                    while let Ok(k) = s.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        count.fetch_add(k as u64, Ordering::Relaxed);
                    }
                });
            }
        }
        while count.load(Ordering::Relaxed) < total * unit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tasks.abort_all();
    });
    count.load(Ordering::Relaxed) / unit
}

fn main() {
    let sockets = env_or("SOCKETS", 2000) as usize;
    let rate = env_or("RATE", 32_000);
    let seconds = env_or("SECONDS", 10);
    let total = rate * seconds;
    println!(
        "recv_floor: {sockets} loopback sockets, {rate} frames/s of {} bytes for {seconds} s, one receiving thread",
        frame().len()
    );
    println!(
        "{:<12} {:>10} {:>12} {:>14}",
        "receiver", "frames", "CPU s", "CPU µs/frame"
    );
    for kind in ["epoll", "tokio", "tungstenite"] {
        let (senders, receivers): (Vec<_>, Vec<_>) = pairs(sockets).into_iter().unzip();
        let sender = std::thread::spawn(move || send(senders, rate, total));
        let before = thread_cpu();
        let frames = match kind {
            "epoll" => receive_epoll(receivers, total),
            "tokio" => receive_tokio(receivers, total, false),
            _ => receive_tokio(receivers, total, true),
        };
        let cpu = thread_cpu() - before;
        sender.join().expect("sender");
        println!(
            "{:<12} {:>10} {:>12.2} {:>14.2}",
            kind,
            frames,
            cpu,
            cpu * 1e6 / frames.max(1) as f64
        );
    }
}
