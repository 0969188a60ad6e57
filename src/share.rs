//! A worker's share of a `--workers N` run, as the worker process itself sees it: which
//! clients it drives ([`owners`]), how it starts in step with the others
//! ([`WorkerShare::wait_for_start`]) and the progress lines it tells the parent ([`Live`]).
//!
//! The driver needs this to run a share, and the workers module (the parent) to plan and
//! follow the shares; both depend on this module, it depends on neither.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most workers of one run: worker `k` binds 127.0.0.(k + 2), so 250 keeps below .255.
pub const MAX_WORKERS: u32 = 250;

/// Which share of a run this process drives: worker `index` of `count` (`--worker K/N`), or
/// shard `index` of `count` (`--shard K/N`, see [`crate::shard`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerShare {
    pub index: u32,
    pub count: u32,
    /// A shard starts at a wall-clock time agreed in advance (`--start-at`) instead of the one
    /// a parent sends; none for a worker of `--workers`.
    pub shard_start: Option<ShardStart>,
}

/// When a shard's schedule starts, and how late it may begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStart {
    /// The agreed start of the open-loop schedule (`--start-at`).
    pub at: SystemTime,
    /// A shard that is ready only after `at + bound` does not run: its load would not overlap
    /// the other shards' as planned.
    pub bound: Duration,
}

impl ShardStart {
    /// The schedule's start as an instant of this process: `at` ahead, or behind by up to the
    /// bound (the first sends then count as late as they are); `Err` when later than that.
    pub fn instant(&self, shard: u32) -> Result<tokio::time::Instant, String> {
        let now = tokio::time::Instant::now();
        match self.at.duration_since(SystemTime::now()) {
            Ok(ahead) => Ok(now + ahead),
            Err(behind) => {
                let late = behind.duration();
                if late > self.bound {
                    return Err(late_start(shard, late, self.bound));
                }
                Ok(now.checked_sub(late).unwrap_or(now))
            }
        }
    }
}

/// What a shard that was ready too late says (on stderr, in its part and in the merge).
pub fn late_start(shard: u32, late: Duration, bound: Duration) -> String {
    format!(
        "shard {shard} was ready {:.3} s after --start-at, more than its bound of {:.3} s \
         (--max-start-lateness-ms): it ran no load, since its clients would not have overlapped \
         the other shards' as planned (a clock out of step, or a process started late)",
        late.as_secs_f64(),
        bound.as_secs_f64()
    )
}

/// Why a share did not start.
#[derive(Debug)]
pub enum StartError {
    /// A shard was ready too late (or its start time had passed): no load ran.
    Late(String),
    Other(String),
}

impl FromStr for WorkerShare {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/N, not {s:?}"))?;
        let (index, count) = (
            k.trim().parse::<u32>().map_err(|e| e.to_string())?,
            n.trim().parse::<u32>().map_err(|e| e.to_string())?,
        );
        if index >= count || count > MAX_WORKERS {
            return Err(format!("worker {index} of {count} does not exist"));
        }
        Ok(WorkerShare {
            index,
            count,
            shard_start: None,
        })
    }
}

impl WorkerShare {
    /// Whether this is a shard of a run across machines (no parent process).
    pub fn is_shard(&self) -> bool {
        self.shard_start.is_some()
    }

    /// The instant this share's schedule starts: a shard's agreed time (refused when it is
    /// more than its bound ago), a worker's from its parent ([`Self::wait_for_start`]).
    pub async fn start(&self) -> Result<tokio::time::Instant, StartError> {
        match &self.shard_start {
            Some(s) => s.instant(self.index).map_err(StartError::Late),
            None => self.wait_for_start().await.map_err(StartError::Other),
        }
    }

    /// Tells the parent this worker is ready (`@ready` on stdout) and waits for the start time
    /// it sends on stdin (`start <µs since the Unix epoch>`), returned as an instant.
    pub async fn wait_for_start(&self) -> Result<tokio::time::Instant, String> {
        use std::io::Write as _;
        use tokio::io::AsyncBufReadExt as _;
        // From now on a Ctrl-C forwarded by the parent must not kill the worker before the
        // run watches for it (the parent repeats it until the worker stops).
        #[cfg(unix)]
        let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "@ready")
                .and_then(|()| out.flush())
                .map_err(|e| format!("worker {}: cannot talk to the parent: {e}", self.index))?;
        }
        let mut line = String::new();
        tokio::io::BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await
            .map_err(|e| format!("worker {}: cannot read the start: {e}", self.index))?;
        let micros: u64 = line
            .trim()
            .strip_prefix("start ")
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| {
                format!(
                    "worker {}: the parent sent no start time (got {:?})",
                    self.index,
                    line.trim()
                )
            })?;
        let at = UNIX_EPOCH + Duration::from_micros(micros);
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Ok(tokio::time::Instant::now() + wait)
    }
}

/// The worker (`0..n`) of each client, given each client's fixture room in client order.
///
/// Every member of a fixture room lives in the same worker, so a broadcast and all its
/// receivers are timed by one process clock and judged by one oracle. Rooms are dealt
/// round-robin in order of first appearance: users arrive in user order and fill rooms in
/// order, so every worker gets its share of the arrivals all along the schedule. A client
/// without a fixture room is dealt round-robin by its index.
pub fn owners(rooms: impl IntoIterator<Item = Option<u64>>, n: u32) -> Vec<u32> {
    let n = n.max(1);
    let mut ordinal: HashMap<u64, u32> = HashMap::new();
    rooms
        .into_iter()
        .enumerate()
        .map(|(client, room)| match room {
            Some(room) => {
                let next = ordinal.len() as u32;
                *ordinal.entry(room).or_insert(next) % n
            }
            None => client as u32 % n,
        })
        .collect()
}

/// Live figures of a worker, told to the parent as `@progress` lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub planned: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub active: u64,
    pub sent: u64,
    pub received: u64,
    pub violations: u64,
}

impl Live {
    pub fn parse(line: &str) -> Option<Live> {
        let v: Vec<u64> = line
            .strip_prefix("@progress ")?
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let [planned, connected, connect_errors, active, sent, received, violations] = v[..] else {
            return None;
        };
        Some(Live {
            planned,
            connected,
            connect_errors,
            active,
            sent,
            received,
            violations,
        })
    }

    pub fn line(&self) -> String {
        format!(
            "@progress {} {} {} {} {} {} {}",
            self.planned,
            self.connected,
            self.connect_errors,
            self.active,
            self.sent,
            self.received,
            self.violations
        )
    }

    pub fn add(&mut self, o: &Live) {
        self.planned += o.planned;
        self.connected += o.connected;
        self.connect_errors += o.connect_errors;
        self.active += o.active;
        self.sent += o.sent;
        self.received += o.received;
        self.violations += o.violations;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_share_parses() {
        assert_eq!(
            "1/3".parse::<WorkerShare>(),
            Ok(WorkerShare {
                index: 1,
                count: 3,
                shard_start: None
            })
        );
        assert!("3/3".parse::<WorkerShare>().is_err());
        assert!("x".parse::<WorkerShare>().is_err());
        assert!("0/1000".parse::<WorkerShare>().is_err());
    }

    #[test]
    fn rooms_stay_whole_and_are_dealt_round_robin() {
        // Rooms of 4 in user order, then two users without a room.
        let rooms: Vec<Option<u64>> = (0..16u64)
            .map(|i| Some(i / 4 + 1))
            .chain([None, None])
            .collect();
        let o = owners(rooms.clone(), 2);
        assert_eq!(&o[..8], &[0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(&o[8..16], &[0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(&o[16..], &[0, 1]);
        assert!(owners(rooms.clone(), 1).iter().all(|&w| w == 0));
        // Rooms in any order: one worker per room, whatever the order of the users.
        let mixed = [Some(9), Some(3), Some(9), Some(5), Some(3)];
        let o = owners(mixed, 3);
        assert_eq!(o, vec![0, 1, 0, 2, 1]);
    }

    #[test]
    fn progress_lines_round_trip() {
        let l = Live {
            planned: 1,
            connected: 2,
            connect_errors: 3,
            active: 4,
            sent: 5,
            received: 6,
            violations: 7,
        };
        let back = Live::parse(&l.line()).unwrap();
        assert_eq!(back.line(), l.line());
        assert!(Live::parse("@progress 1 2").is_none());
        assert!(Live::parse("hello").is_none());
    }
}
