//! A restart of the server during a run (`restart_server`: the driver stops the embedded
//! reference server and starts it again on the same address with the same store).
//!
//! What the restart itself causes is not the server's fault, and is judged so:
//! - every connection made before the restart ended and closed after it began was dropped by
//!   it: not `unexpected-close`, and the departure tells nobody (a stopped server cannot send
//!   presence notices, the restarted one never knew the connection);
//! - connecting while the server is down fails: not `connect-failed` (the flow's `reconnect`
//!   retries);
//! - a request sent from one deadline before the restart began to one deadline after it ended
//!   may never have been read by the stopping server: a delivery it would keep for an offline
//!   user is owed only if it comes (once), never `missing`.
//!
//! What survives the restart is judged as before: a delivery kept before the restart is owed
//! in the user's next handover after it, exactly once (the model of kept deliveries and of
//! what was handed over lives in the driver, not in the server).

use super::{lock, Micros, Oracle};

/// One restart: from the moment the driver began stopping the server to the moment the new
/// one listened.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    began: Micros,
    ended: Option<Micros>,
}

/// Whether a request sent at `sent` may have been lost with a stopping server.
pub(super) fn may_lose(windows: &[Window], sent: Micros, deadline: Micros) -> bool {
    windows.iter().any(|w| {
        w.began <= sent.saturating_add(deadline)
            && w.ended.is_none_or(|e| sent <= e.saturating_add(deadline))
    })
}

impl Oracle {
    fn windows(&self) -> std::sync::RwLockReadGuard<'_, Vec<Window>> {
        self.restarts.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver begins stopping the server at `at`: deliveries kept from requests sent
    /// within the last deadline may have been lost with it.
    pub fn restart_began(&self, at: Micros) {
        let mut windows = self.restarts.write().unwrap_or_else(|e| e.into_inner());
        windows.push(Window {
            began: at,
            ended: None,
        });
        // Under the write lock: a request being stored now waits, then sees the window.
        let since = at.saturating_sub(self.deadline);
        for shard in self.rooms.iter() {
            for room in lock(shard).values_mut() {
                for s in room.stored.iter_mut().filter(|s| s.sent >= since) {
                    s.maybe_lost = true;
                }
            }
        }
    }

    /// The restarted server listens again at `at`.
    pub fn restart_ended(&self, at: Micros) {
        let mut windows = self.restarts.write().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = windows.iter_mut().rev().find(|w| w.ended.is_none()) {
            w.ended = Some(at);
        }
    }

    /// Whether a connection made at `connected` and closed at `closed` was dropped by a
    /// restart (it belonged to the server that was stopped).
    pub fn dropped_by_restart(&self, connected: Micros, closed: Micros) -> bool {
        self.windows()
            .iter()
            .any(|w| w.began <= closed && w.ended.is_none_or(|e| connected <= e))
    }

    /// Whether the server is being restarted at `at` (connecting fails then).
    pub fn restarting(&self, at: Micros) -> bool {
        self.windows()
            .iter()
            .any(|w| w.began <= at && w.ended.is_none_or(|e| at <= e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_near_a_restart_may_be_lost_and_one_long_before_or_after_may_not() {
        let w = [Window {
            began: 10_000,
            ended: Some(20_000),
        }];
        let deadline = 1_000;
        assert!(!may_lose(&w, 8_999, deadline));
        assert!(may_lose(&w, 9_000, deadline));
        assert!(may_lose(&w, 15_000, deadline));
        assert!(may_lose(&w, 21_000, deadline));
        assert!(!may_lose(&w, 21_001, deadline));
        let open = [Window {
            began: 10_000,
            ended: None,
        }];
        assert!(may_lose(&open, 1_000_000, deadline));
    }
}
