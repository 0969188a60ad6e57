//! A client's connection over its life: connecting and reconnecting, the client faults of a
//! scenario (dropped heartbeat, reset, stall, close), and what a departure must cause.

use rand::Rng;

use super::{Stop, Vu};
use crate::heartbeat::{self, Advertised, Marks};
use crate::oracle::judge::{CloseVerdict, GaveUp};
use crate::oracle::Micros;
use crate::scenario::Fault;
use crate::transport::{Client, CloseReason, Heartbeat, Transport};

impl Vu {
    /// Connects (or reconnects) as this client's user. `Err` ends the client.
    pub(super) async fn connect(
        &mut self,
        intended: Micros,
        metric: crate::metrics::MetricKey,
        stop: &mut Stop,
    ) -> Result<(), ()> {
        let shared = self.shared.clone();
        let begun = shared.now();
        // Starting the connect late is the generator's own lateness.
        shared
            .metrics
            .record(("send", "lateness"), begun.saturating_sub(intended), 0);
        shared.counters.connecting.inc();
        let open = async {
            match &shared.websocket {
                Some(ws) => {
                    let token = &shared.roster.users[self.me as usize].token;
                    let traffic = shared.client_config.traffic.clone();
                    ws.connect(&shared.target, token, traffic).await
                }
                None => Client::socketio(&shared.target, &shared.client_config).await,
            }
        };
        let connect = tokio::select! {
            c = open => c,
            _ = &mut *stop => { shared.counters.connecting.dec(); self.ended = true; return Err(()) }
        };
        shared.counters.connecting.dec();
        let now = shared.now();
        match connect {
            Ok(conn) => {
                shared.metrics.record(
                    metric,
                    now.saturating_sub(intended),
                    now.saturating_sub(begun),
                );
                shared.counters.active.inc();
                // Socket.IO 2 (EIO 3) names a socket of `/` by its Engine.IO id.
                let id = conn.socket_id().unwrap_or(conn.sid()).to_string();
                *crate::oracle::lock(&shared.roster.socket_ids[self.me as usize]) = id;
                self.conn = Some(conn);
                shared.judge().connected(&mut self.client, now);
                Ok(())
            }
            Err(e) => {
                shared.counters.connect_errors.inc();
                // The server is down for a `restart_server`: the flow's reconnect retries.
                if !shared.oracle.restarting(now) {
                    shared
                        .judge()
                        .connect_failed(&self.client, now, e.to_string());
                }
                Err(())
            }
        }
    }

    /// Performs a client fault; returns the schedule time to resume from, or None if the
    /// client is done.
    pub(super) async fn fault(
        &mut self,
        fault: &Fault,
        intended: Micros,
        stop: &mut Stop,
    ) -> Option<Micros> {
        let shared = self.shared.clone();
        let now = shared.now();
        match fault {
            Fault::DropHeartbeats => {
                self.note(|| "drop_heartbeats".into());
                let Some(conn) = self.conn.as_mut() else {
                    return Some(now);
                };
                conn.set_heartbeat(Heartbeat::Dropped);
                // The window comes from the server's OPEN packet and the client's own last
                // heartbeat (see `crate::heartbeat`), not from when this step ran.
                let adv = Advertised {
                    eio: conn.heartbeat_model(),
                    ping_interval: conn.ping_interval().as_micros() as u64,
                    ping_timeout: conn.ping_timeout().as_micros() as u64,
                    timeout_assumed: shared.heartbeat_timeout_assumed(),
                };
                let m = conn.heartbeat_marks();
                let marks = Marks {
                    connect_started: shared.micros_of(m.connect_started),
                    last_sent: shared.micros_of(m.last_sent),
                    last_ping_sent: m.last_ping_sent.map(|t| shared.micros_of(t)),
                    pongs_sent: m.pongs_sent,
                };
                let grace = shared.scenario.heartbeat_grace.0.as_micros() as u64;
                let cap = shared
                    .scenario
                    .heartbeat_deadline
                    .map(|d| d.0.as_micros() as u64);
                let window = heartbeat::window(adv, marks, now, grace, cap);
                // The server announces the departure when it notices it, up to the end of the
                // wait (then the client vanishes, which the server notices at once).
                let until = window.wait_until.max(now);
                shared.judge().heartbeat_dropped(
                    &mut self.client,
                    now,
                    window,
                    adv,
                    until - now + shared.oracle.deadline(),
                );
                while self.conn.is_some() && shared.now() < until {
                    if !self.serve_once(until, stop).await {
                        return None;
                    }
                }
                if self.conn.is_some() {
                    shared.judge().heartbeat_close_not_seen(
                        &self.client,
                        shared.now(),
                        grace,
                        until,
                    );
                    self.vanish();
                }
                Some(shared.now())
            }
            Fault::Vanish => {
                self.note(|| "vanish".into());
                self.vanish();
                Some(now)
            }
            Fault::WithholdAnswers => {
                self.note(|| "withhold_answers".into());
                self.withhold_answers = true;
                Some(now)
            }
            Fault::Close => {
                self.note(|| "close".into());
                self.disconnect().await;
                Some(now)
            }
            Fault::RestartServer => {
                self.note(|| "restart_server".into());
                let Some(server) = shared.embedded.clone() else {
                    // Refused before the run against a target; nothing to restart.
                    return Some(now);
                };
                shared.oracle.restart_began(now);
                let restarted = server.restart().await;
                let at = shared.now();
                shared.oracle.restart_ended(at);
                if let Err(e) = restarted {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                }
                // This client's own connection went with the old server.
                if self.conn.take().is_some() {
                    shared.counters.active.dec();
                    shared.judge().closed_by_restart(&mut self.client, at);
                }
                Some(at)
            }
            Fault::Stall(d) => {
                self.note(|| format!("stall {d}"));
                let until = now + d.0.as_micros() as u64;
                shared.judge().stalled(&mut self.client, now, until);
                tokio::select! {
                    _ = tokio::time::sleep_until(shared.instant_of(until)) => {}
                    _ = &mut *stop => { self.ended = true; self.disconnect().await; return None }
                }
                Some(until)
            }
            Fault::Reconnect(r) => {
                if self.conn.is_some() {
                    // Reconnecting a live connection: a new session replaces it.
                    self.disconnect().await;
                }
                let mut wait = r.after.map_or(0, |d| d.0.as_micros() as u64);
                let jitter = r.jitter.map_or(0, |d| d.0.as_micros() as u64);
                let mut at = intended.max(now);
                for attempt in 1..=r.attempts {
                    let extra = if jitter > 0 {
                        self.rng.random_range(0..=jitter)
                    } else {
                        0
                    };
                    at += wait + extra;
                    self.note(|| {
                        format!(
                            "reconnect attempt {attempt} after {:.3}ms",
                            (wait + extra) as f64 / 1e3
                        )
                    });
                    tokio::select! {
                        _ = tokio::time::sleep_until(shared.instant_of(at)) => {}
                        _ = &mut *stop => { self.ended = true; return None }
                    }
                    if self.connect(at, ("reconnect", ""), stop).await.is_ok() {
                        return Some(shared.now());
                    }
                    if self.ended {
                        return None;
                    }
                    wait = ((wait.max(1000)) as f64 * r.backoff) as u64;
                }
                self.ended = true;
                None
            }
        }
    }

    /// Ends the TCP connection with a reset (as a killed process does).
    pub(super) fn vanish(&mut self) {
        if let Some(conn) = self.conn.take() {
            // The departure is registered before the reset goes out: on loopback the server's
            // notices of it can reach other clients before this task runs again.
            self.departed(self.shared.now());
            conn.vanish();
        }
    }

    /// Clean disconnect, if connected.
    pub(super) async fn disconnect(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            self.departed(self.shared.now());
            conn.close_in_place().await;
        }
    }

    /// The connection is gone: the client leaves every room and its pending replies are moot.
    pub(super) fn departed(&mut self, at: Micros) {
        let shared = self.shared.clone();
        shared.judge().departed(&mut self.client, at);
        shared.counters.active.dec();
    }

    pub(super) fn on_closed(&mut self, reason: CloseReason, now: Micros) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let shared = self.shared.clone();
        shared.counters.active.dec();
        let us = |d: std::time::Duration| d.as_micros() as u64;
        let gave_up = match &reason {
            CloseReason::HeartbeatTimeout => Some(GaveUp::Silent {
                waited: us(conn.ping_interval() + conn.ping_timeout()),
            }),
            CloseReason::WriteBlocked { waited } => Some(GaveUp::NotReading {
                waited: us(*waited),
            }),
            &CloseReason::FrameTooBig { size, max } => Some(GaveUp::FrameTooBig { size, max }),
            CloseReason::InvalidUtf8(e) => Some(GaveUp::BrokenFrame(format!(
                "a text frame that is not UTF-8 ({e})"
            ))),
            CloseReason::WebSocketProtocol(e) => Some(GaveUp::BrokenFrame(format!(
                "a websocket protocol violation ({e})"
            ))),
            _ => None,
        };
        debug_assert_eq!(gave_up.is_some(), reason.by_client(), "{reason:?}");
        drop(conn);
        let began = self.client.session_began();
        let verdict = match gave_up {
            // A `restart_server` dropped it (whoever noticed first).
            _ if shared.oracle.dropped_by_restart(began, now) => {
                shared.judge().closed_by_restart(&mut self.client, now)
            }
            Some(why) => shared.judge().gave_up(&mut self.client, now, why),
            None => shared
                .judge()
                .closed_by_server(&mut self.client, now, &reason.to_string()),
        };
        match verdict {
            CloseVerdict::Unexpected => {
                self.ended = true;
                shared.counters.unexpected_closes.inc();
            }
            CloseVerdict::Abandoned => self.ended = true,
            CloseVerdict::Expected | CloseVerdict::NotConnected => {}
        }
    }
}
