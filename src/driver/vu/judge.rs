//! Judging what a client receives: every event against the dialect's table (shape, forbidden
//! fields), then as a reply, a broadcast (content id or FIFO attribution) or an error.

use serde_json::Value;

use super::{Pending, PendingKind, Vu};
use crate::dialect::{
    named_room, user_room, Attribution, ErrorStyle, EventSpec, RoomOf, SenderKey, EVERYONE,
};
use crate::oracle::rules::Check;
use crate::oracle::shape::{self, Problem};
use crate::oracle::{ClientId, Micros, Receipt, RoomKey};

impl Vu {
    /// Judges one received event.
    pub(super) fn on_event(&mut self, name: String, mut args: Vec<Value>, now: Micros) {
        let shared = self.shared.clone();
        shared.counters.received.inc();
        let oracle = &shared.oracle;
        let payload = if args.len() == 1 {
            args.pop().expect("one arg")
        } else {
            Value::Array(args)
        };
        if shared.spec.is_error(&name, &payload) {
            self.on_error(&name, &payload, now);
        } else if let Some((_, spec)) = shared.spec.event(&name) {
            let mut problems = Vec::new();
            shape::check(&payload, &spec.shape, spec.name, &mut problems);
            for p in problems {
                match p {
                    Problem::Shape(msg) => oracle.violate(
                        self.me,
                        spec.name,
                        Check::Shape,
                        now,
                        msg,
                        shape::excerpt(&payload),
                    ),
                    Problem::TimeFormat(msg) => oracle.violate(
                        self.me,
                        spec.name,
                        Check::TimeFormat,
                        now,
                        "an RFC 3339 datetime".into(),
                        msg,
                    ),
                }
            }
            for field in spec.forbidden {
                if payload.get(field).is_some() {
                    oracle.violate(
                        self.me,
                        spec.name,
                        Check::Forbidden,
                        now,
                        format!("no `{field}` field"),
                        shape::excerpt(&payload),
                    );
                }
            }
            match spec.attribution {
                Attribution::Reply => self.on_reply(spec.name, &payload, now),
                Attribution::ContentId { field, sender } => {
                    self.on_content_broadcast(spec, &payload, field, sender, now)
                }
                Attribution::SenderFifo {
                    sender,
                    value_field,
                } => self.on_fifo_broadcast(spec, &payload, sender, value_field, now),
            }
        } else {
            oracle.violate(
                self.me,
                "connection",
                Check::UnknownEvent,
                now,
                format!("one of the {} events", shared.spec.name),
                format!("{name} {}", shape::excerpt(&payload)),
            );
        }
        // Distinct names only: bounded by the dialect's events, not by traffic.
        if !self.received_since_step.contains(&name) {
            self.received_since_step.push(name.clone());
        }
        oracle.log(self.me, now, "<<", &name, &payload);
    }

    fn on_reply(&mut self, event: &'static str, payload: &Value, now: Micros) {
        let shared = self.shared.clone();
        let Some(i) = self
            .pending
            .iter()
            .position(|p| matches!(p.kind, PendingKind::Reply { event: e, .. } if e == event))
        else {
            shared.oracle.violate(
                self.me,
                event,
                Check::ReplyUnsolicited,
                now,
                "no reply: this client has no request waiting for one".into(),
                shape::excerpt(payload),
            );
            return;
        };
        let p = self.pending.remove(i);
        let metric = (p.request, event);
        shared.metrics.record(
            metric,
            now.saturating_sub(p.intended),
            now.saturating_sub(p.sent),
        );
        if now > p.due {
            shared.oracle.violate(
                self.me,
                event,
                Check::Late,
                now,
                format!(
                    "within {} ms of the request",
                    shared.oracle.deadline() / 1000
                ),
                format!("after {:.3} ms", now.saturating_sub(p.sent) as f64 / 1e3),
            );
        }
        let ctx = self.context(&shared);
        if let Err(msg) = (shared.spec.check_reply)(event, payload, &ctx) {
            shared.oracle.violate(
                self.me,
                event,
                Check::ReplyContent,
                now,
                msg,
                shape::excerpt(payload),
            );
        }
        if let PendingKind::Reply {
            joins: Some(room), ..
        } = p.kind
        {
            shared.oracle.join_confirmed(self.me, room, now);
            if let Some(i) = self.joining.iter().position(|(r, _)| *r == room) {
                let entry = self.joining.remove(i);
                if !self.joined.iter().any(|(r, _)| *r == room) {
                    self.joined.push(entry);
                }
            }
        }
    }

    /// The client a payload names as the sender.
    fn sender_of(&self, payload: &Value, key: SenderKey) -> Option<ClientId> {
        let shared = &self.shared;
        match key {
            SenderKey::UserId(f) => match &payload[f] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .and_then(|id| shared.by_user_id.get(&id).copied()),
            SenderKey::Username(f) => payload[f]
                .as_str()
                .and_then(|n| shared.by_username.get(n).copied()),
        }
    }

    /// The room a received broadcast belongs to.
    fn room_of(&self, spec: &EventSpec, payload: &Value, sender: ClientId) -> Option<RoomKey> {
        match spec.room {
            RoomOf::SenderHome => self.shared.users[sender as usize].room,
            RoomOf::Field(f) => payload[f].as_str().map(named_room),
            RoomOf::Everyone => Some(EVERYONE),
            RoomOf::ReceiverUser => Some(user_room(&self.shared.users[self.me as usize].username)),
        }
    }

    fn on_content_broadcast(
        &mut self,
        spec: &'static EventSpec,
        payload: &Value,
        field: &str,
        sender_key: SenderKey,
        now: Micros,
    ) {
        let shared = self.shared.clone();
        let event = spec.name;
        let Some((sender, seq)) = payload
            .get(field)
            .and_then(Value::as_str)
            .and_then(crate::dialect::parse_content_id)
            .filter(|(s, _)| (*s as usize) < shared.users.len())
        else {
            shared.oracle.violate(
                self.me,
                event,
                Check::Unknown,
                now,
                format!("`{field}` carrying a roomrig content id"),
                shape::excerpt(payload),
            );
            return;
        };
        if self.sender_of(payload, sender_key) != Some(sender) {
            let user = &shared.users[sender as usize];
            shared.oracle.violate(
                self.me,
                event,
                Check::WrongSender,
                now,
                format!(
                    "{} naming user {} ({})",
                    sender_key.field(),
                    user.user_id,
                    user.username
                ),
                shape::excerpt(&payload[sender_key.field()]),
            );
        }
        let last = self.last_seq.entry(sender).or_insert(seq);
        if seq < *last {
            shared.oracle.violate(
                self.me,
                event,
                Check::Order,
                now,
                format!("sequence after {} from client {sender}", *last),
                format!("sequence {seq}"),
            );
        } else {
            *last = seq;
        }
        let Some(room) = self.room_of(spec, payload, sender) else {
            return;
        };
        let receipt =
            shared
                .oracle
                .broadcast_received(self.me, room, event, sender, Some(seq), None, now);
        self.on_receipt(event, receipt, payload, now);
    }

    fn on_fifo_broadcast(
        &mut self,
        spec: &'static EventSpec,
        payload: &Value,
        sender_key: SenderKey,
        value_field: Option<&str>,
        now: Micros,
    ) {
        let shared = self.shared.clone();
        let event = spec.name;
        let Some(sender) = self.sender_of(payload, sender_key) else {
            shared.oracle.violate(
                self.me,
                event,
                Check::Unknown,
                now,
                format!("`{}` naming a user of the run", sender_key.field()),
                shape::excerpt(payload),
            );
            return;
        };
        let Some(room) = self.room_of(spec, payload, sender) else {
            return;
        };
        let receipt = shared.oracle.broadcast_received(
            self.me,
            room,
            event,
            sender,
            None,
            value_field.and_then(|f| payload.get(f)),
            now,
        );
        self.on_receipt(event, receipt, payload, now);
    }

    fn on_receipt(&mut self, event: &'static str, receipt: Receipt, payload: &Value, now: Micros) {
        let shared = &self.shared;
        match receipt {
            Receipt::Delivered(m) | Receipt::Allowed(m) => {
                shared.metrics.record(
                    (event, m.metric),
                    now.saturating_sub(m.intended),
                    now.saturating_sub(m.sent),
                );
                if m.late && matches!(receipt, Receipt::Delivered(_)) {
                    shared.oracle.violate(
                        self.me,
                        event,
                        Check::Late,
                        now,
                        "within the deadline of the send".into(),
                        format!("after {:.3} ms", now.saturating_sub(m.sent) as f64 / 1e3),
                    );
                }
            }
            Receipt::Backlog => {}
            Receipt::Fault(check, expected) => shared.oracle.violate(
                self.me,
                event,
                check,
                now,
                expected,
                shape::excerpt(payload),
            ),
        }
    }

    fn on_error(&mut self, event: &str, payload: &Value, now: Micros) {
        let shared = self.shared.clone();
        let mut problems = Vec::new();
        shape::check(payload, &shared.spec.error_shape, event, &mut problems);
        for p in problems {
            if let Problem::Shape(msg) = p {
                shared.oracle.violate(
                    self.me,
                    "error",
                    Check::Shape,
                    now,
                    msg,
                    shape::excerpt(payload),
                );
            }
        }
        let channel = matches!(shared.spec.errors, ErrorStyle::Channel { .. });
        // Which pending request this error answers: on a channel, the oldest that expects one.
        let answers = |p: &Pending| {
            matches!(p.kind, PendingKind::Error { .. }) && (channel || p.request == event)
        };
        if let Some(i) = self.pending.iter().position(answers) {
            let p = self.pending.remove(i);
            if let PendingKind::Error { text: Some(want) } = &p.kind {
                let got = match shared.spec.errors {
                    ErrorStyle::SameEvent { field } => payload[field].as_str(),
                    ErrorStyle::Channel { .. } => payload.as_str(),
                };
                if got != Some(want.as_str()) {
                    shared.oracle.violate(
                        self.me,
                        p.request,
                        Check::ErrorContent,
                        now,
                        format!("the error {want:?}"),
                        shape::excerpt(payload),
                    );
                }
            }
            shared.metrics.record(
                (p.request, "error"),
                now.saturating_sub(p.intended),
                now.saturating_sub(p.sent),
            );
            return;
        }
        let key = if channel {
            self.error_key("")
        } else {
            shared
                .spec
                .ops
                .iter()
                .map(|o| o.name)
                .find(|n| *n == event)
                .unwrap_or("error")
        };
        if let Some(n) = self.tolerated_errors.get_mut(key).filter(|n| **n > 0) {
            *n -= 1;
            return;
        }
        if let Some(p) = self
            .pending
            .iter()
            .find(|p| matches!(p.kind, PendingKind::Error { .. }))
            .filter(|_| !channel)
        {
            shared.oracle.violate(
                self.me,
                p.request,
                Check::ErrorWrongEvent,
                now,
                format!("the error on `{}`, the event of the request", p.request),
                format!("{event} {}", shape::excerpt(payload)),
            );
        } else if let Some(i) = self.pending.iter().position(|p| {
            matches!(p.kind, PendingKind::Reply { .. }) && (channel || p.request == event)
        }) {
            let p = self.pending.remove(i);
            shared.oracle.violate(
                self.me,
                p.request,
                Check::ErrorUnexpected,
                now,
                "the reply to a valid request".into(),
                shape::excerpt(payload),
            );
        } else {
            shared.oracle.violate(
                self.me,
                key,
                Check::ErrorUnexpected,
                now,
                format!("no error: every request this client sent on `{event}` was valid"),
                shape::excerpt(payload),
            );
        }
    }

    /// Flags replies and errors whose deadline has passed.
    pub(super) fn expire_pending(&mut self, now: Micros) {
        let shared = self.shared.clone();
        let deadline_ms = shared.oracle.deadline() / 1000;
        self.pending.retain(|p| {
            if now < p.due {
                return true;
            }
            let (scope, check, expected) = match p.kind {
                PendingKind::Reply { event, .. } => (
                    p.request,
                    Check::ReplyMissing,
                    format!("`{event}` within {deadline_ms} ms"),
                ),
                PendingKind::Error { .. } => (
                    p.request,
                    Check::ErrorMissing,
                    format!("an error on `{}` within {deadline_ms} ms", p.request),
                ),
            };
            shared.oracle.violate(
                self.me,
                scope,
                check,
                now.min(p.due),
                expected,
                "nothing".into(),
            );
            false
        });
    }
}
