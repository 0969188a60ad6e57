//! The client runtimes: one single-threaded tokio runtime per core, each on its own thread.
//!
//! A client's task, its socket and its timers stay on one thread, so a received frame wakes
//! its task without cross-thread wake-ups, work stealing or atomic hand-offs. On the
//! dorm-throughput benchmark this cost about 10 % less CPU per delivery than tokio's
//! multi-thread scheduler. Clients are placed by fixture room, so the members of a room share
//! a thread and the oracle's room locks are rarely contended.

use std::collections::HashMap;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The running shards; dropping them stops the runtimes (and any task still on them).
pub struct Shards {
    shards: Vec<Shard>,
    /// The runtime of each room placed so far.
    placed: HashMap<u64, usize>,
    /// Clients placed so far (the turn of a client without a room).
    clients: usize,
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
        Ok(Shards {
            shards,
            placed: HashMap::new(),
            clients: 0,
        })
    }

    /// The runtime for a client of fixture room `room`. Rooms take the runtimes in turn as they
    /// first appear, not by number: a worker process holds every n-th room, and a modulo of
    /// the room number would put all of them on one runtime.
    pub fn for_client(&mut self, room: Option<u64>) -> &Handle {
        let turn = self.turn(room);
        &self.shards[turn].handle
    }

    fn turn(&mut self, room: Option<u64>) -> usize {
        let turn = match room {
            Some(room) => {
                let next = self.placed.len() % self.shards.len();
                *self.placed.entry(room).or_insert(next)
            }
            None => self.clients % self.shards.len(),
        };
        self.clients += 1;
        turn
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_room_still_spreads_over_the_runtimes() {
        let mut shards = Shards::start(2).expect("runtimes");
        // A worker of two holds rooms 1, 3, 5, ... (four clients each).
        let turns: Vec<usize> = (0..8u64)
            .flat_map(|r| std::iter::repeat_n(1 + 2 * r, 4))
            .map(|room| shards.turn(Some(room)))
            .collect();
        assert_eq!(turns.iter().filter(|&&t| t == 0).count(), 16);
        assert_eq!(turns.iter().filter(|&&t| t == 1).count(), 16);
        // The members of a room share a runtime.
        assert!(turns
            .chunks(4)
            .all(|room| room.iter().all(|&t| t == room[0])));
    }
}
