//! When a server may, and must, close a client whose heartbeat stopped: a pure function of what
//! the server advertised in its OPEN packet and of what the client itself wrote, so the verdict
//! does not depend on when the scenario's `drop_heartbeats` step happened to run.
//!
//! - **Engine.IO 3**: the client pings. A server closes a silent client pingInterval +
//!   pingTimeout after the last ping it *received* (socketioxide), or after the last packet of
//!   any kind (Node's engine.io 3). The client knows when it wrote both, and the server got
//!   them later: earliest = last ping sent + I + T, latest = last frame sent + I + T + grace.
//! - **Engine.IO 4**: the server pings every pingInterval and closes a client that leaves a
//!   ping unanswered for pingTimeout. The first unanswered ping is ping n + 1 (n = pings
//!   answered); no server sends it before its session opened + n·I (socketioxide pings at
//!   open, then every I; Node one I after each pong), and the session opened after the client
//!   began connecting: earliest = connect start + n·I + T. The next ping comes at most I after
//!   the last pong: latest = last frame sent + I + T + grace.
//!
//! Every earlier bound is taken before the client's own writes, so a loaded machine only moves
//! the observed close later, never before `earliest`.

use crate::oracle::Micros;
use crate::protocol::EioVersion;

/// Below `earliest` only by timer rounding (servers schedule in whole milliseconds).
pub const EARLY_SLACK: Micros = 20_000;

/// What the server advertised in its Engine.IO OPEN packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    pub eio: EioVersion,
    pub ping_interval: Micros,
    pub ping_timeout: Micros,
    /// The server did not state `ping_timeout`: it is the protocol source's silence allowance
    /// past an interval the server chose itself (voice against a target advertising another
    /// interval than the seed's), so a close before it is only a warning.
    pub timeout_assumed: bool,
}

/// The client's heartbeat history on the run's clock (see [`crate::transport::HeartbeatMarks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub connect_started: Micros,
    pub last_sent: Micros,
    pub last_ping_sent: Option<Micros>,
    pub pongs_sent: u32,
}

/// The window in which the server must close the client, and how long the client waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// A close before this is early: the server did not give the client its advertised time.
    pub earliest: Micros,
    /// A close before this is early on any reading: the client had not yet missed a single
    /// heartbeat of the advertised interval. Equals `earliest` unless the timeout is assumed.
    pub earliest_sure: Micros,
    /// The server must have closed the client by this (advertised values + grace).
    pub latest: Micros,
    /// The client waits until this: `latest`, or sooner when a cap ends the wait.
    pub wait_until: Micros,
}

impl Window {
    /// A cap ends the wait before the advertised window has passed: a connection still open
    /// then is "not observed", not a missing close.
    pub fn capped(&self) -> bool {
        self.wait_until < self.latest
    }
}

/// The window of a client whose heartbeat stopped at `dropped_at`; `cap` (from the drop) is
/// the longest the scenario lets it wait.
pub fn window(
    adv: Advertised,
    marks: Marks,
    dropped_at: Micros,
    grace: Micros,
    cap: Option<Micros>,
) -> Window {
    let (interval, timeout) = (adv.ping_interval, adv.ping_timeout);
    let slack = EARLY_SLACK.min(grace);
    let earliest = match adv.eio {
        EioVersion::V3 => {
            marks.last_ping_sent.unwrap_or(0).max(marks.connect_started) + interval + timeout
        }
        EioVersion::V4 => marks.connect_started + u64::from(marks.pongs_sent) * interval + timeout,
    }
    .saturating_sub(slack);
    let earliest_sure = if adv.timeout_assumed {
        earliest.saturating_sub(timeout)
    } else {
        earliest
    };
    let latest = marks.last_sent.max(marks.connect_started) + interval + timeout + grace;
    let wait_until = match cap {
        Some(cap) => latest.min(dropped_at + cap),
        None => latest,
    };
    Window {
        earliest,
        earliest_sure,
        latest,
        wait_until,
    }
}

/// The longest a client whose heartbeat stops now can stay open, from now: what a peer waiting
/// for the notice of its departure must allow (before the notice's own deadline).
pub fn longest_close(adv: Advertised, grace: Micros, cap: Option<Micros>) -> Micros {
    let advertised = adv.ping_interval + adv.ping_timeout + grace;
    cap.map_or(advertised, |c| c.min(advertised))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1000;

    fn adv(eio: EioVersion) -> Advertised {
        Advertised {
            eio,
            ping_interval: 500 * MS,
            ping_timeout: 500 * MS,
            timeout_assumed: false,
        }
    }

    fn marks(last_ping: Option<Micros>, last_sent: Micros, pongs: u32) -> Marks {
        Marks {
            connect_started: 0,
            last_sent,
            last_ping_sent: last_ping,
            pongs_sent: pongs,
        }
    }

    #[test]
    fn eio3_counts_from_the_last_ping_not_the_drop() {
        // Last ping at 10 s, dropped at 10.4 s: the server may close from 11 s on.
        let w = window(
            adv(EioVersion::V3),
            marks(Some(10_000 * MS), 10_000 * MS, 0),
            10_400 * MS,
            1000 * MS,
            None,
        );
        assert_eq!(w.earliest, 11_000 * MS - EARLY_SLACK);
        assert_eq!(w.latest, 12_000 * MS);
        assert_eq!(w.wait_until, w.latest);
        assert!(!w.capped());
        // The old rule (drop + pingTimeout - grace) put the earliest close at 9.9 s; counting
        // from the drop with interval + timeout would have said 11.4 s and flagged a healthy
        // close at 11.05 s as early.
        assert!(w.earliest < 11_050 * MS);
    }

    #[test]
    fn eio3_later_frames_extend_the_latest_only() {
        // A message written after the last ping: a Node server counts it, socketioxide not.
        let w = window(
            adv(EioVersion::V3),
            marks(Some(2_000 * MS), 2_300 * MS, 0),
            2_400 * MS,
            1000 * MS,
            None,
        );
        assert_eq!(w.earliest, 3_000 * MS - EARLY_SLACK);
        assert_eq!(w.latest, 4_300 * MS);
    }

    #[test]
    fn eio3_without_any_ping_counts_from_the_connect() {
        let w = window(
            adv(EioVersion::V3),
            Marks {
                connect_started: 5_000 * MS,
                last_sent: 5_010 * MS,
                last_ping_sent: None,
                pongs_sent: 0,
            },
            5_100 * MS,
            1000 * MS,
            None,
        );
        assert_eq!(w.earliest, 6_000 * MS - EARLY_SLACK);
        assert_eq!(w.latest, 7_010 * MS);
    }

    #[test]
    fn eio4_counts_the_pings_answered() {
        // Three pings answered: the fourth was not sent before 0 + 3 * 500 ms.
        let w = window(
            adv(EioVersion::V4),
            marks(None, 1_020 * MS, 3),
            1_200 * MS,
            1000 * MS,
            None,
        );
        assert_eq!(w.earliest, 2_000 * MS - EARLY_SLACK);
        assert_eq!(w.latest, 3_020 * MS);
    }

    #[test]
    fn a_short_cap_ends_the_wait_but_not_the_window() {
        // Server advertises 25 s + 20 s; the cap is 2.5 s after the drop.
        let a = Advertised {
            eio: EioVersion::V4,
            ping_interval: 25_000 * MS,
            ping_timeout: 20_000 * MS,
            timeout_assumed: false,
        };
        let w = window(a, marks(None, 0, 0), 100 * MS, 1000 * MS, Some(2_500 * MS));
        assert_eq!(w.latest, 46_000 * MS);
        assert_eq!(w.wait_until, 2_600 * MS);
        assert!(w.capped());
        // A long cap changes nothing.
        let w = window(a, marks(None, 0, 0), 100 * MS, 1000 * MS, Some(60_000 * MS));
        assert_eq!(w.wait_until, w.latest);
        assert!(!w.capped());
    }

    #[test]
    fn slack_never_exceeds_the_grace() {
        let w = window(adv(EioVersion::V3), marks(Some(0), 0, 0), 0, 5 * MS, None);
        assert_eq!(w.earliest, 1_000 * MS - 5 * MS);
        assert_eq!(w.latest, 1_005 * MS);
    }

    #[test]
    fn longest_close_is_capped() {
        let a = adv(EioVersion::V3);
        assert_eq!(longest_close(a, 1000 * MS, None), 2_000 * MS);
        assert_eq!(longest_close(a, 1000 * MS, Some(1_500 * MS)), 1_500 * MS);
    }

    #[test]
    fn an_assumed_timeout_is_sure_only_up_to_the_interval() {
        // voice against a target advertising 0.5 s: the seed's 20 s of silence is assumed
        // (19.5 s past the interval). Last ping at 3 s.
        let a = Advertised {
            eio: EioVersion::V3,
            ping_interval: 500 * MS,
            ping_timeout: 19_500 * MS,
            timeout_assumed: true,
        };
        let w = window(
            a,
            marks(Some(3_000 * MS), 3_000 * MS, 0),
            3_100 * MS,
            1000 * MS,
            None,
        );
        assert_eq!(w.earliest, 23_000 * MS - EARLY_SLACK);
        assert_eq!(w.earliest_sure, 3_500 * MS - EARLY_SLACK);
        assert_eq!(w.latest, 24_000 * MS);
        // Stated by the server: both bounds are one.
        let w = window(
            Advertised {
                timeout_assumed: false,
                ..a
            },
            marks(Some(3_000 * MS), 3_000 * MS, 0),
            3_100 * MS,
            1000 * MS,
            None,
        );
        assert_eq!(w.earliest_sure, w.earliest);
    }
}
