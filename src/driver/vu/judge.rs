//! Judging what a client receives: every event against the dialect's table (shape, forbidden
//! fields), then as a reply, a broadcast (content id or FIFO attribution) or an error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, SeqAccess, Visitor};

use super::{Pending, PendingKind, Vu};
use crate::client::RawEvent;
use crate::dialect::{
    named_room, user_room, Attribution, ErrorStyle, EventSpec, RoomOf, SenderKey, EVERYONE,
};
use crate::oracle::attribution::{attribute_error, ErrorAnswer, ErrorSource, Unanswered};
use crate::oracle::json::Json;
use crate::oracle::rules::Check;
use crate::oracle::shape::{self, Node as _, Problem};
use crate::oracle::{ClientId, Micros, Receipt, RoomKey};
use crate::protocol::socketio;

/// An event's name and payload, parsed from the frame's text without copying: the payload is
/// the single argument, or the array of the arguments when there are not exactly one (as
/// before, when events were parsed into `serde_json::Value`).
struct Parsed<'a> {
    name: Cow<'a, str>,
    payload: Json<'a>,
    /// The payload's JSON text, for the transcript.
    text: Cow<'a, str>,
}

fn parse_event(args: &str) -> Option<Parsed<'_>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = (Cow<'de, str>, Vec<Json<'de>>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON array whose first element is the event name")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = match seq.next_element::<Json<'de>>()? {
                Some(Json::Str(s)) => s,
                // A numeric name (allowed by socket.io-parser), as its decimal text.
                Some(Json::Num(n)) => Cow::Owned(match n.as_f64() {
                    Some(f) if !n.is_u64() && !n.is_i64() => f.to_string(),
                    _ => n.to_string(),
                }),
                _ => return Err(de::Error::custom("no event name")),
            };
            let mut rest = Vec::new();
            while let Some(v) = seq.next_element::<Json<'de>>()? {
                rest.push(v);
            }
            Ok((name, rest))
        }
    }
    let mut de = serde_json::Deserializer::from_str(args);
    let (name, mut rest) = de.deserialize_seq(V).ok()?;
    de.end().ok()?;
    let after = socketio::event_args_after_name(args)?;
    let (payload, text) = match rest.len() {
        1 => (rest.pop().expect("one arg"), Cow::Borrowed(after)),
        _ => (Json::Arr(rest), Cow::Owned(format!("[{after}]"))),
    };
    Some(Parsed {
        name,
        payload,
        text,
    })
}

impl Vu {
    /// Judges one received event.
    pub(super) fn on_event(&mut self, event: RawEvent, now: Micros) {
        let Some(parsed) = parse_event(event.args()) else {
            // Malformed arguments: reported as the parsing client reports them.
            let reason = match event.parse() {
                Err(e) => e.to_string(),
                Ok(_) => "Socket.IO EVENT arguments the driver could not read".to_string(),
            };
            self.shared.oracle.violate(
                self.me,
                "connection",
                Check::Malformed,
                now,
                "a valid Engine.IO/Socket.IO frame".into(),
                reason,
            );
            return;
        };
        self.judge(&parsed.name, &parsed.payload, now);
        self.shared
            .oracle
            .log_raw(self.me, now, "<<", &parsed.name, &parsed.text);
    }

    fn judge(&mut self, name: &str, payload: &Json<'_>, now: Micros) {
        // No `Arc` clone of `shared` on this path: its count is one cache line that every
        // worker thread would bounce per event.
        let table = self.shared.spec;
        self.shared.counters.received.inc();
        // `DialectSpec::is_error` on the borrowed payload.
        let is_error = match table.errors {
            ErrorStyle::SameEvent { field } => payload.has_key(field),
            ErrorStyle::Channel { event } => name == event,
        };
        if is_error {
            self.on_error(name, payload, now);
        } else if let Some((_, spec)) = table.event(name) {
            let oracle = &self.shared.oracle;
            let mut problems = Vec::new();
            shape::check(payload, &spec.shape, spec.name, &mut problems);
            for p in problems {
                match p {
                    Problem::Shape(msg) => oracle.violate(
                        self.me,
                        spec.name,
                        Check::Shape,
                        now,
                        msg,
                        payload.excerpt(),
                    ),
                    Problem::TimeFormat(msg) => oracle.violate(
                        self.me,
                        spec.name,
                        Check::TimeFormat,
                        now,
                        "an RFC 3339 datetime".into(),
                        msg,
                    ),
                    Problem::Unstated(msg) => oracle.violate_capped(
                        self.me,
                        spec.name,
                        Check::Shape,
                        now,
                        msg,
                        payload.excerpt(),
                        Some(crate::oracle::rules::Cap {
                            level: crate::oracle::rules::Level::Should,
                            source: "reference-server decision: a field the seed's payload does not have",
                        }),
                    ),
                }
            }
            for field in spec.forbidden {
                if payload.has_key(field) {
                    oracle.violate(
                        self.me,
                        spec.name,
                        Check::Forbidden,
                        now,
                        format!("no `{field}` field"),
                        payload.excerpt(),
                    );
                }
            }
            match spec.attribution {
                Attribution::Reply => self.on_reply(spec.name, payload, now),
                Attribution::ContentId { field, sender } => {
                    self.on_content_broadcast(spec, payload, field, sender, now)
                }
                Attribution::SenderFifo {
                    sender,
                    value_field,
                } => self.on_fifo_broadcast(spec, payload, sender, value_field, now),
            }
        } else {
            self.shared.oracle.violate(
                self.me,
                "connection",
                Check::UnknownEvent,
                now,
                format!("one of the {} events", table.name),
                format!("{name} {}", payload.excerpt()),
            );
        }
        // Distinct names only: bounded by the dialect's events, not by traffic.
        if !self.received_since_step.iter().any(|n| n == name) {
            self.received_since_step.push(name.to_string());
        }
    }

    fn on_reply(&mut self, event: &'static str, payload: &Json<'_>, now: Micros) {
        let shared = self.shared.clone();
        let Some(i) = self
            .pending
            .iter()
            .position(|p| matches!(p.kind, PendingKind::Reply { event: e, .. } if e == event))
        else {
            // The reply a request expecting an error would have got: the server accepted it.
            if let Some(i) = self.pending.iter().position(
                |p| matches!(p.kind, PendingKind::Error { instead: Some(e), .. } if e == event),
            ) {
                let p = self.take_pending(i);
                shared.oracle.violate_capped(
                    self.me,
                    p.request,
                    Check::ErrorMissing,
                    now,
                    format!("an error refusing this `{}`", p.request),
                    format!(
                        "the reply {event} (the request was accepted): {}",
                        payload.excerpt()
                    ),
                    p.cap,
                );
                return;
            }
            shared.oracle.violate(
                self.me,
                event,
                Check::ReplyUnsolicited,
                now,
                "no reply: this client has no request waiting for one".into(),
                payload.excerpt(),
            );
            return;
        };
        let p = self.take_pending(i);
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
        // Replies are rare: the dialect's check reads a `Value`.
        let value = payload.to_value();
        if let Err(msg) = (shared.spec.check_reply)(event, &value, &ctx) {
            shared.oracle.violate(
                self.me,
                event,
                Check::ReplyContent,
                now,
                msg,
                shape::excerpt(&value),
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

    /// Takes the pending request at `i`: it got its answer, so it no longer explains errors
    /// that arrive later.
    fn take_pending(&mut self, i: usize) -> Pending {
        let p = self.pending.remove(i);
        // Answered: the other answer it might have had instead will not come.
        self.pending
            .retain(|q| !(q.optional && q.sent == p.sent && q.request == p.request));
        if let Some(i) = self
            .recent
            .iter()
            .position(|r| r.request == p.request && r.sent == p.sent)
        {
            self.recent.remove(i);
        }
        p
    }

    /// The client a payload names as the sender.
    fn sender_of(&self, payload: &Json<'_>, key: SenderKey) -> Option<ClientId> {
        let shared = &self.shared;
        match key {
            SenderKey::UserId(f) => match payload.field(f) {
                Json::Num(n) => n.as_u64(),
                Json::Str(s) => s.parse().ok(),
                _ => None,
            }
            .and_then(|id| shared.by_user_id.get(&id).copied()),
            // The seed's own form names the sender by its token.
            SenderKey::UserIdOrToken { id, token } => {
                self.sender_of(payload, SenderKey::UserId(id)).or_else(|| {
                    payload
                        .field(token)
                        .as_str()
                        .and_then(|t| shared.by_token.get(t).copied())
                })
            }
            SenderKey::Username(f) => payload
                .field(f)
                .as_str()
                .and_then(|n| shared.by_username.get(n).copied()),
        }
    }

    /// The room a received broadcast belongs to.
    fn room_of(&self, spec: &EventSpec, payload: &Json<'_>, sender: ClientId) -> Option<RoomKey> {
        match spec.room {
            RoomOf::SenderHome => self.shared.users[sender as usize].room,
            RoomOf::Field(f) => payload.field(f).as_str().map(named_room),
            RoomOf::Everyone => Some(EVERYONE),
            RoomOf::ReceiverUser => Some(user_room(&self.shared.users[self.me as usize].username)),
        }
    }

    fn on_content_broadcast(
        &mut self,
        spec: &'static EventSpec,
        payload: &Json<'_>,
        field: &str,
        sender_key: SenderKey,
        now: Micros,
    ) {
        let shared = &*self.shared;
        let event = spec.name;
        let Some((sender, seq)) = payload
            .get(field)
            .and_then(Json::as_str)
            .and_then(crate::dialect::parse_content_id)
            .filter(|(s, _)| (*s as usize) < shared.users.len())
        else {
            // Hostile input a lenient client sent may be relayed as it is (a server may
            // accept it): only who receives it is judged.
            if let Some(sender) = self
                .sender_of(payload, sender_key)
                .filter(|&s| shared.oracle.is_lenient(s))
            {
                if let Some(room) = self.room_of(spec, payload, sender) {
                    let receipt = shared.oracle.relay_received(self.me, room, now);
                    self.on_receipt(event, sender, receipt, payload, now);
                }
                return;
            }
            shared.oracle.violate(
                self.me,
                event,
                Check::Unknown,
                now,
                format!("`{field}` carrying a roomrig content id"),
                payload.excerpt(),
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
                payload.field(sender_key.field()).excerpt(),
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
        let mut receipt =
            shared
                .oracle
                .broadcast_received(self.me, room, event, sender, Some(seq), None, now);
        if matches!(receipt, Receipt::Fault(Check::Unknown, _)) && shared.oracle.is_lenient(sender)
        {
            receipt = shared.oracle.relay_received(self.me, room, now);
        }
        self.on_receipt(event, sender, receipt, payload, now);
    }

    fn on_fifo_broadcast(
        &mut self,
        spec: &'static EventSpec,
        payload: &Json<'_>,
        sender_key: SenderKey,
        value_field: Option<&str>,
        now: Micros,
    ) {
        let shared = &*self.shared;
        let event = spec.name;
        let Some(sender) = self.sender_of(payload, sender_key) else {
            shared.oracle.violate(
                self.me,
                event,
                Check::Unknown,
                now,
                format!("`{}` naming a user of the run", sender_key.field()),
                payload.excerpt(),
            );
            return;
        };
        let Some(room) = self.room_of(spec, payload, sender) else {
            return;
        };
        let value = value_field.and_then(|f| payload.get(f)).map(Json::to_value);
        let mut receipt = shared.oracle.broadcast_received(
            self.me,
            room,
            event,
            sender,
            None,
            value.as_ref(),
            now,
        );
        if matches!(receipt, Receipt::Fault(Check::Unknown, _)) && shared.oracle.is_lenient(sender)
        {
            receipt = shared.oracle.relay_received(self.me, room, now);
        }
        self.on_receipt(event, sender, receipt, payload, now);
    }

    fn on_receipt(
        &mut self,
        event: &'static str,
        sender: ClientId,
        receipt: Receipt,
        payload: &Json<'_>,
        now: Micros,
    ) {
        if sender == self.me && matches!(receipt, Receipt::Delivered(_) | Receipt::Allowed(_)) {
            // Its own copy: the server accepted the request, which so explains no error.
            if let Some(i) = self.recent.iter().position(|r| r.echo == Some(event)) {
                self.recent.remove(i);
            }
        }
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
            Receipt::Fault(check, expected) => {
                shared
                    .oracle
                    .violate(self.me, event, check, now, expected, payload.excerpt())
            }
        }
    }

    fn on_error(&mut self, event: &str, payload: &Json<'_>, now: Micros) {
        let shared = self.shared.clone();
        let mut problems = Vec::new();
        shape::check(payload, &shared.spec.error_shape, event, &mut problems);
        for p in problems {
            if let Problem::Shape(msg) = p {
                shared
                    .oracle
                    .violate(self.me, "error", Check::Shape, now, msg, payload.excerpt());
            }
        }
        let (channel, text) = match shared.spec.errors {
            ErrorStyle::SameEvent { field } => (false, payload.field(field).as_str()),
            ErrorStyle::Channel { .. } => (true, payload.as_str()),
        };
        let source = if channel {
            ErrorSource::Channel(text.and_then(|t| shared.spec.error_sources(t)))
        } else {
            ErrorSource::OwnEvent(event)
        };
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
        // A reply the server may or may not send (to a request it should refuse) stands for no
        // request of its own: its request is waiting for the error.
        let waiting: Vec<usize> = (0..self.pending.len())
            .filter(|&i| !self.pending[i].optional)
            .collect();
        let unanswered: Vec<Unanswered> = waiting
            .iter()
            .map(|&i| Unanswered {
                request: self.pending[i].request,
                expects_error: matches!(self.pending[i].kind, PendingKind::Error { .. }),
            })
            .collect();
        let recent: Vec<&'static str> = self.recent.iter().map(|r| r.request).collect();
        let tolerated = self.tolerated_errors.get(key).is_some_and(|n| *n > 0);
        let received = || format!("{event} {}", payload.excerpt());
        match attribute_error(source, &unanswered, &recent, tolerated) {
            ErrorAnswer::Expected { index, ambiguous } => {
                let p = self.take_pending(waiting[index]);
                if let PendingKind::Error {
                    text: Some(want), ..
                } = &p.kind
                {
                    if text != Some(want.as_str()) {
                        let mut expected = format!("the error {want:?}");
                        if ambiguous {
                            expected.push_str(
                                " (ambiguous: the error names no request and requests of \
                                 other events were waiting for one too; paired with the oldest)",
                            );
                        }
                        shared.oracle.violate_capped(
                            self.me,
                            p.request,
                            Check::ErrorContent,
                            now,
                            expected,
                            payload.excerpt(),
                            p.cap,
                        );
                    }
                }
                shared.metrics.record(
                    (p.request, "error"),
                    now.saturating_sub(p.intended),
                    now.saturating_sub(p.sent),
                );
            }
            ErrorAnswer::Tolerated => {
                if let Some(n) = self.tolerated_errors.get_mut(key) {
                    *n -= 1;
                }
            }
            ErrorAnswer::Refused { index } => {
                let p = self.take_pending(waiting[index]);
                shared.oracle.violate(
                    self.me,
                    p.request,
                    Check::ErrorUnexpected,
                    now,
                    "the reply to a valid request".into(),
                    payload.excerpt(),
                );
            }
            ErrorAnswer::Unexpected => shared.oracle.violate(
                self.me,
                key,
                Check::ErrorUnexpected,
                now,
                format!("no error: every request this client sent on `{event}` was valid"),
                payload.excerpt(),
            ),
            ErrorAnswer::WrongEvent { request, index } => {
                if let Some(i) = index {
                    self.take_pending(waiting[i]);
                }
                shared.oracle.violate(
                    self.me,
                    request,
                    Check::ErrorWrongEvent,
                    now,
                    format!("the error on `{request}`, the event of the request"),
                    received(),
                );
            }
            ErrorAnswer::AmbiguousWrongEvent { candidates } => {
                // It stands for one missing error of a request waiting now (see
                // `expire_pending`), since it may have been that one's.
                self.foreign_errors.push(now);
                shared.oracle.violate(
                    self.me,
                    "error",
                    Check::ErrorWrongEvent,
                    now,
                    format!(
                        "errors on the event of their request; this one answers one of `{}` \
                         (ambiguous: which one is not known, so none of them is charged a \
                         missing error for it)",
                        candidates.join("`, `")
                    ),
                    received(),
                );
            }
            ErrorAnswer::NoCause => shared.oracle.violate(
                self.me,
                "error",
                Check::ErrorUnexpected,
                now,
                "no error: no request of this client was waiting for an answer".into(),
                received(),
            ),
        }
    }

    /// Flags replies and errors that did not come: late after their deadline, missing after
    /// twice it (as broadcasts). `now = Micros::MAX` flushes every one.
    pub(super) fn expire_pending(&mut self, now: Micros) {
        let shared = self.shared.clone();
        let deadline = shared.oracle.deadline();
        let (expired, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| now >= p.due.saturating_add(deadline));
        self.pending = kept;
        for p in expired {
            if p.optional {
                continue;
            }
            let at = now.min(p.due + deadline);
            match p.kind {
                PendingKind::Reply { event, joins } => {
                    shared.oracle.violate_capped(
                        self.me,
                        p.request,
                        Check::ReplyMissing,
                        at,
                        format!("`{event}` within {} ms", 2 * deadline / 1000),
                        "nothing".into(),
                        p.cap,
                    );
                    // Judge the room all the same, as the request and the users file say.
                    if let Some(room) = joins {
                        self.assume_joined(room, at);
                    }
                }
                PendingKind::Error { .. } => {
                    // An error on another event, when it was unknown which request it
                    // answered, was reported then; it stands for one missing error here.
                    if let Some(i) = self.foreign_errors.iter().position(|&t| t >= p.sent) {
                        self.foreign_errors.remove(i);
                        continue;
                    }
                    shared.oracle.violate_capped(
                        self.me,
                        p.request,
                        Check::ErrorMissing,
                        at,
                        format!(
                            "an error on `{}` within {} ms",
                            p.request,
                            2 * deadline / 1000
                        ),
                        "nothing".into(),
                        p.cap,
                    );
                }
            }
        }
    }

    /// The join of `room` was never confirmed: take the client for a member from `at` on.
    fn assume_joined(&mut self, room: RoomKey, at: Micros) {
        self.shared.oracle.join_assumed(self.me, room, at);
        if let Some(i) = self.joining.iter().position(|(r, _)| *r == room) {
            let entry = self.joining.remove(i);
            if !self.joined.iter().any(|(r, _)| *r == room) {
                self.joined.push(entry);
                self.assumed.push(room);
            }
        }
    }
}
