//! Logins that race for a room where only the first may stay (push's `loginWhenFirst`,
//! [`crate::dialect::Effect::JoinFirst`]). Logins in flight together cannot be ordered by the
//! model, so it never guesses which one the server took first; it judges what holds whatever
//! the server's order:
//! - a contender admitted while an earlier admitted one is still in the room, or while a
//!   connection confirmed in the room before the login was sent still is: it had to be
//!   refused (MUST, `error-missing` of its login);
//! - every contender of a race refused, although nobody else was in the room or on the way in
//!   during it: the first the server took had to be admitted (MUST, `error-unexpected`, charged
//!   to the earliest login, as which refusal is the wrong one is not known);
//! - where the evidence cannot decide (the earlier winner left while the later login was in
//!   flight; a contender's answer never came while the others were refused), an INFO says so
//!   and nothing fails.

use super::{ClientId, Micros, Oracle, RoomKey};

/// One race for a room: the contenders since the room was last without a winner.
#[derive(Debug, Default)]
pub(super) struct Contest {
    /// Every contender (client, login sent), in send order.
    entrants: Vec<(ClientId, Micros)>,
    /// Contenders not answered yet.
    open: usize,
    /// Admitted contenders (client, when its admission came).
    winners: Vec<(ClientId, Micros)>,
    /// A contender's answer never came: who won is unknown.
    unknown: bool,
}

/// How a contender's login was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Admitted,
    Refused,
    /// No answer by the deadline (judged as missing elsewhere).
    None,
}

/// What a race proves about the server, to report on one client's login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The login charged.
    pub client: ClientId,
    /// An admission that had to be a refusal (`error-missing`), or the other way round
    /// (`error-unexpected`).
    pub admitted_wrongly: bool,
    pub expected: String,
    /// The evidence cannot decide: report it as INFO.
    pub ambiguous: bool,
}

impl Oracle {
    /// A login that may take `room` only if it is empty was sent at `sent`.
    pub fn contest_entered(&self, client: ClientId, room: RoomKey, sent: Micros) {
        let mut contests = super::lock(&self.contests);
        let settled = contests
            .get(&room)
            .is_some_and(|c| c.open == 0 && c.winners.iter().all(|&(w, _)| !self.present(room, w)));
        if settled {
            contests.remove(&room);
        }
        let c = contests.entry(room).or_default();
        c.entrants.push((client, sent));
        c.open += 1;
    }

    /// The contender `client` (its login sent at `sent`) got `answer` at `now`.
    pub fn contest_answered(
        &self,
        client: ClientId,
        room: RoomKey,
        sent: Micros,
        answer: Answer,
        now: Micros,
    ) -> Option<Finding> {
        let mut contests = super::lock(&self.contests);
        let c = contests.get_mut(&room)?;
        if !c.entrants.contains(&(client, sent)) {
            return None;
        }
        c.open = c.open.saturating_sub(1);
        let mut finding = None;
        match answer {
            Answer::Admitted => {
                // An earlier winner still in the room: this login found it occupied.
                let rival = c
                    .winners
                    .iter()
                    .filter(|&&(w, _)| w != client)
                    .find_map(|&(w, at)| self.left_at(room, w).map(|left| (w, at, left)));
                if let Some((w, won_at, left)) = rival {
                    let still_there = left.is_none_or(|l| l >= now);
                    // It left after this login was sent: the server may have taken this one
                    // after it had gone.
                    let left_in_flight = left.is_some_and(|l| l > sent && l < now);
                    if still_there || left_in_flight {
                        finding = Some(Finding {
                            client,
                            admitted_wrongly: true,
                            expected: format!(
                                "a refusal: client {w} had taken the room with this mode (admitted at {:.3} ms){}",
                                won_at as f64 / 1e3,
                                if still_there {
                                    " and was still in it"
                                } else {
                                    "; ambiguous: it left while this login was in flight, so the server may have taken this one after it had gone"
                                }
                            ),
                            ambiguous: !still_there,
                        });
                    }
                }
                // Someone else confirmed in the room before this login was sent and still in
                // it: the room was occupied all the while the server could have taken it.
                if finding.is_none() {
                    if let Some(other) = self.occupant(room, &c.entrants, sent) {
                        finding = Some(Finding {
                            client,
                            admitted_wrongly: true,
                            expected: format!(
                                "a refusal: client {other} was in the room before this login was sent and still is"
                            ),
                            ambiguous: false,
                        });
                    }
                }
                c.winners.push((client, now));
            }
            Answer::Refused => {}
            Answer::None => c.unknown = true,
        }
        if c.open == 0 && c.winners.is_empty() {
            let first = c.entrants[0];
            let began = first.1;
            // Anybody else in the room, or on the way in or out, during the race explains
            // the refusals.
            let others = self.others_during(room, &c.entrants, began, now);
            if !others {
                finding = Some(Finding {
                    client: first.0,
                    admitted_wrongly: false,
                    expected: format!(
                        "one of the {} logins racing for the room admitted (nobody else was in it or on the way in; which refusal is wrong is not known, the earliest login is charged){}",
                        c.entrants.len(),
                        if c.unknown {
                            "; ambiguous: a contender's answer never came, it may have been the one admitted"
                        } else {
                            ""
                        }
                    ),
                    ambiguous: c.unknown,
                });
            }
            contests.remove(&room);
        }
        finding
    }

    /// Whether `client` is in `room` now (a membership not ended).
    fn present(&self, room: RoomKey, client: ClientId) -> bool {
        matches!(self.left_at(room, client), Some(None))
    }

    /// `client`'s latest membership of `room`: `Some(None)` while it lasts, `Some(Some(t))`
    /// when it ended at `t`, `None` without one.
    fn left_at(&self, room: RoomKey, client: ClientId) -> Option<Option<Micros>> {
        let shard = self.shard(room);
        let r = shard.get(&room)?;
        r.members
            .iter()
            .rev()
            .find(|m| m.client == client)
            .map(|m| m.left)
    }

    /// A connection other than the contenders whose membership of `room` was confirmed by
    /// `since` and has not ended.
    fn occupant(
        &self,
        room: RoomKey,
        entrants: &[(ClientId, Micros)],
        since: Micros,
    ) -> Option<ClientId> {
        let shard = self.shard(room);
        let r = shard.get(&room)?;
        r.members
            .iter()
            .find(|m| {
                !entrants.iter().any(|&(e, _)| e == m.client)
                    && m.left.is_none()
                    && !m.assumed
                    && m.confirmed.is_some_and(|c| c <= since)
            })
            .map(|m| m.client)
    }

    /// Whether a connection other than the contenders was, or may have been, in `room` between
    /// `from` and `to`: joined by `to`, and not gone a deadline before `from`.
    fn others_during(
        &self,
        room: RoomKey,
        entrants: &[(ClientId, Micros)],
        from: Micros,
        to: Micros,
    ) -> bool {
        let shard = self.shard(room);
        let Some(r) = shard.get(&room) else {
            return false;
        };
        r.members.iter().any(|m| {
            !entrants.iter().any(|&(e, _)| e == m.client)
                && m.join_sent <= to
                && m.left.is_none_or(|l| l + self.deadline >= from)
        })
    }
}
