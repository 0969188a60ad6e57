//! Listeners outside a case: bystanders in the rooms next to a case's, and against a target a
//! watch that stays connected for the whole suite in rooms no case uses plus one connection
//! that joined nothing. They send nothing after joining, so every room event they receive that
//! names a room they are not in is a leak (`<dialect>/<event>/non-member`, MUST): a case's own
//! clients only see their own rooms, and a server that copies broadcasts elsewhere would pass.
//!
//! The judgement is deliberately this narrow: which room an event belongs to is read from the
//! event itself (dorm: the sender's `user_id`, whose room the users file states; lobby: its
//! `roomname`; see each dialect's [`Listening`]), never from timing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::dialect::suite::Listening;
use crate::dialect::Dialect;
use crate::oracle::rules::{rule_id, Check};
use crate::oracle::Violation;
use crate::protocol::EioVersion;
use crate::transport::socketio::{ClientConfig, Connection};
use crate::transport::Incoming;
use reference_server::fixtures::Fixtures;

/// How long a listener waits for the answer to its join before it listens anyway (a server
/// that never answers a join still must not leak into the room).
const JOIN_WAIT: Duration = Duration::from_secs(2);

/// A group of listening connections; leaks are collected until [`Listeners::take`].
pub struct Listeners {
    leaks: Arc<Mutex<Vec<Violation>>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Who one listener is.
struct Seat {
    label: String,
    /// The token and the name to join with. `None`: joins nothing.
    user: Option<(String, String)>,
    /// The room it joins, as the dialect names it (see [`Listening::room`]).
    room: Option<String>,
}

impl Listeners {
    /// Connects one listener per user in `users` (joined to its room) and, with `unjoined`,
    /// one that joins nothing; returns once each has joined or given up.
    pub async fn start(
        dialect: &'static Dialect,
        target: &str,
        eio: EioVersion,
        fixtures: &Fixtures,
        users: &[usize],
        role: &str,
        unjoined: bool,
    ) -> Listeners {
        let rooms: Arc<HashMap<u64, u64>> = Arc::new(
            fixtures
                .users
                .iter()
                .filter_map(|u| u.room_id.map(|r| (u.user_id, r)))
                .collect(),
        );
        let mut seats: Vec<Seat> = users
            .iter()
            .map(|&i| seat(&dialect.suite.listening, fixtures, i, role))
            .collect();
        if unjoined {
            seats.push(Seat {
                label: format!("{role} connection that joined nothing"),
                user: None,
                room: None,
            });
        }
        let leaks = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio::sync::watch::channel(false).0;
        let started = Instant::now();
        let config = ClientConfig {
            eio,
            connect_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let mut tasks = Vec::new();
        let mut joined = Vec::new();
        for seat in seats {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let listener = Listener {
                dialect,
                seat,
                rooms: Arc::clone(&rooms),
                leaks: Arc::clone(&leaks),
                started,
            };
            let target = target.to_string();
            let config = config.clone();
            let stop = stop.subscribe();
            tasks.push(tokio::spawn(listener.run(target, config, ready_tx, stop)));
            joined.push(ready_rx);
        }
        for ready in joined {
            let _ = ready.await;
        }
        Listeners { leaks, stop, tasks }
    }

    /// The leaks seen so far (and forgets them).
    pub fn take(&self) -> Vec<Violation> {
        std::mem::take(&mut *crate::oracle::lock(&self.leaks))
    }

    /// Closes every listener; returns the leaks not taken yet.
    pub async fn stop(mut self) -> Vec<Violation> {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.take()
    }
}

fn seat(listening: &Listening, f: &Fixtures, i: usize, role: &str) -> Seat {
    let user = &f.users[i];
    let fixture_room = user.room_id.map(|id| {
        f.rooms
            .iter()
            .find(|r| r.room_id == id)
            .map_or_else(|| format!("room{id}"), |r| r.room_name.clone())
    });
    let room = (listening.room)(user, fixture_room.as_deref(), role);
    Seat {
        label: format!(
            "{role} {} (in room {})",
            user.username,
            fixture_room
                .or_else(|| room.clone())
                .as_deref()
                .unwrap_or("none")
        ),
        user: Some((user.token.clone(), user.username.clone())),
        room,
    }
}

struct Listener {
    dialect: &'static Dialect,
    seat: Seat,
    /// user_id → fixture room, to tell whose room a dorm broadcast is from.
    rooms: Arc<HashMap<u64, u64>>,
    leaks: Arc<Mutex<Vec<Violation>>>,
    started: Instant,
}

impl Listener {
    async fn run(
        self,
        target: String,
        config: ClientConfig,
        ready: tokio::sync::oneshot::Sender<()>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        // Unreachable: the case's own run reports that; a listener has nothing to judge.
        let Ok(mut conn) = Connection::connect(&target, &config).await else {
            let _ = ready.send(());
            return;
        };
        if self.join(&mut conn).await.is_err() {
            let _ = ready.send(());
            return;
        }
        let _ = ready.send(());
        loop {
            tokio::select! {
                incoming = conn.recv() => match incoming {
                    Ok(Incoming::Event { name, args, .. }) => self.judge(&name, &args),
                    Ok(Incoming::Ack { .. }) => {}
                    // Closed by the server: nothing more to see (the case judges the server).
                    Ok(Incoming::Closed(_)) | Err(_) => return,
                },
                _ = stop.changed() => break,
            }
        }
        conn.close().await;
    }

    /// Joins the seat's room, judging what arrives meanwhile.
    async fn join(&self, conn: &mut Connection) -> Result<(), ()> {
        let Some((token, name)) = &self.seat.user else {
            return Ok(());
        };
        let steps = (self.dialect.suite.listening.join)(token, name, self.seat.room.as_deref());
        for step in steps {
            conn.emit(step.event, &step.args).await.map_err(|_| ())?;
            let until = tokio::time::Instant::now() + JOIN_WAIT;
            loop {
                match tokio::time::timeout_at(until, conn.recv()).await {
                    Err(_) => break,
                    Ok(Ok(Incoming::Event { name, args, .. })) => {
                        if step.answers.contains(&name.as_str()) {
                            break;
                        }
                        self.judge(&name, &args);
                    }
                    Ok(Ok(Incoming::Ack { .. })) => {}
                    Ok(_) => return Err(()),
                }
            }
        }
        Ok(())
    }

    /// A room event that is not of this listener's room is a leak.
    fn judge(&self, event: &str, args: &[Value]) {
        let payload = args.first().unwrap_or(&Value::Null);
        // A listener that joined nothing is in no room, whatever its seat says.
        let room = self.seat.user.as_ref().and(self.seat.room.as_deref());
        let foreign = (self.dialect.suite.listening.foreign)(event, payload, room, &self.rooms);
        if !foreign {
            return;
        }
        let mut received = format!("{event} {payload}");
        if received.len() > 300 {
            let mut end = 300;
            while !received.is_char_boundary(end) {
                end -= 1;
            }
            received.truncate(end);
            received.push('…');
        }
        let rating = crate::oracle::rules::rate(self.dialect.spec.rules, event, Check::NonMember);
        let violation = Violation {
            rule: rule_id(self.dialect.name(), event, Check::NonMember),
            level: rating.level,
            source: rating.source.to_string(),
            client: 0,
            user: self.seat.label.clone(),
            at_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            expected: match self.seat.room.as_deref() {
                Some(_) if self.seat.user.is_some() => {
                    format!("no `{event}` of a room this listener is not in")
                }
                _ => format!("no `{event}` at all: this connection joined no room"),
            },
            received,
            transcript: Vec::new(),
        };
        crate::oracle::lock(&self.leaks).push(violation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listener(name: &str, user: usize) -> Listener {
        let f = Fixtures::generate(12, 4);
        let dialect = crate::dialect::find(name).unwrap();
        Listener {
            dialect,
            seat: seat(&dialect.suite.listening, &f, user, "bystander"),
            rooms: Arc::new(
                f.users
                    .iter()
                    .map(|u| (u.user_id, u.room_id.unwrap()))
                    .collect(),
            ),
            leaks: Arc::default(),
            started: Instant::now(),
        }
    }

    #[test]
    fn dorm_broadcasts_of_other_rooms_are_leaks() {
        // User index 4 is user5, in room 2.
        let l = listener("dorm", 4);
        l.judge(
            "message",
            &[json!({"user_id": 6, "message": "hi", "time": "t"})],
        );
        l.judge(
            "action",
            &[json!({"user_id": 5, "action": "01", "time": "t"})],
        );
        l.judge("message", &[json!({"error": "not in room"})]);
        assert!(crate::oracle::lock(&l.leaks).is_empty());
        l.judge(
            "message",
            &[json!({"user_id": 1, "message": "hi", "time": "t"})],
        );
        l.judge("action", &[json!({"user_id": 999, "action": "01"})]);
        let leaks = l.leaks.lock().unwrap();
        assert_eq!(leaks.len(), 2);
        assert_eq!(leaks[0].rule, "dorm/message/non-member");
        assert_eq!(leaks[1].rule, "dorm/action/non-member");
        assert!(leaks[0].user.contains("user5"), "{}", leaks[0].user);
    }

    #[test]
    fn lobby_room_events_of_other_rooms_are_leaks() {
        let l = listener("lobby", 0);
        assert_eq!(l.seat.room.as_deref(), Some("room1"));
        l.judge(
            "gotRoomMessage",
            &[json!({"username": "a", "roomname": "room1", "content": "x"})],
        );
        l.judge(
            "gotPublicMessage",
            &[json!({"username": "a", "content": "x"})],
        );
        l.judge("otherLogedin", &[json!({"username": "a", "numusers": 2})]);
        assert!(crate::oracle::lock(&l.leaks).is_empty());
        l.judge(
            "gotRoomMessage",
            &[json!({"username": "a", "roomname": "check-2", "content": "x"})],
        );
        l.judge(
            "otherJoinedRoom",
            &[json!({"username": "a", "roomname": "x", "userlist": []})],
        );
        let leaks = l.leaks.lock().unwrap();
        assert_eq!(leaks[0].rule, "lobby/gotRoomMessage/non-member");
        assert_eq!(leaks[1].rule, "lobby/otherJoinedRoom/non-member");
    }

    #[test]
    fn a_connection_that_joined_nothing_gets_no_room_event() {
        let mut l = listener("lobby", 0);
        l.seat = Seat {
            label: "watch connection that joined nothing".into(),
            user: None,
            room: None,
        };
        l.judge("otherLogedin", &[json!({"username": "a", "numusers": 2})]);
        l.judge(
            "gotRoomMessage",
            &[json!({"username": "a", "roomname": "room1", "content": "x"})],
        );
        assert_eq!(l.leaks.lock().unwrap().len(), 1);
        l.dialect = crate::dialect::find("dorm").unwrap();
        l.judge(
            "message",
            &[json!({"user_id": 1, "message": "hi", "time": "t"})],
        );
        assert_eq!(l.leaks.lock().unwrap().len(), 2);
    }
}
