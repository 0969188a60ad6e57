//! The client runtimes: one single-threaded tokio runtime per core, each on its own thread.
//!
//! A client's task, its socket and its timers stay on one thread, so a received frame wakes
//! its task without cross-thread wake-ups, work stealing or atomic hand-offs. On the
//! dorm-throughput benchmark this cost about 10 % less CPU per delivery than tokio's
//! multi-thread scheduler. Clients are placed by fixture room, so the members of a room share
//! a thread and the oracle's room locks are rarely contended.

use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The running shards; dropping them stops the runtimes (and any task still on them).
pub struct Shards {
    shards: Vec<Shard>,
}

struct Shard {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Shards {
    /// Starts `count` runtimes (at least one).
    pub fn start(count: usize) -> std::io::Result<Shards> {
        let shards = (0..count.max(1))
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name(format!("roomrig-clients-{i}"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        })
                    })?;
                Ok(Shard {
                    handle,
                    stop: Some(stop),
                    thread: Some(thread),
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Shards { shards })
    }

    /// The runtime for everything keyed `key` (a fixture room).
    pub fn for_key(&self, key: u64) -> &Handle {
        // Fixture rooms are numbered consecutively: a modulo spreads them evenly.
        &self.shards[(key % self.shards.len() as u64) as usize].handle
    }

    pub fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.shards.iter().map(|s| &s.handle)
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        for s in &mut self.shards {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(());
            }
        }
        // The runtimes drop their remaining tasks on their own threads; wait for that so
        // nothing of the run outlives it.
        for s in &mut self.shards {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}
