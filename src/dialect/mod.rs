//! Dialects as data: the events a server sends (their shapes and who receives them) and the
//! operations a client can perform (how to build the request and what it must cause).
//!
//! The oracle and the driver are generic over this table; a dialect adds a module with its
//! table and a few request builders, never a copy of the checking logic.

pub mod dorm;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::oracle::shape::Ty;

/// Every dialect roomrig knows by name (see ../shared/protocols.md).
pub const NAMES: &[&str] = &["dorm", "chat", "push", "voice", "lobby"];
/// The dialects whose driver, oracle and reference server exist today.
pub const IMPLEMENTED: &[&str] = &["dorm"];

/// The whole description of one dialect.
pub struct DialectSpec {
    pub name: &'static str,
    /// Events the server sends to clients.
    pub events: &'static [EventSpec],
    /// Operations a flow can perform.
    pub ops: &'static [OpSpec],
    /// The payload every error reply carries on the request's event name.
    pub error_shape: Ty,
    /// Content checks of a reply beyond its shape (e.g. `last_data` names the joiner).
    pub check_reply: fn(event: &str, payload: &Value, ctx: &OpContext) -> Result<(), String>,
}

impl DialectSpec {
    pub fn op(&self, name: &str) -> Option<&OpSpec> {
        self.ops.iter().find(|o| o.name == name)
    }
    pub fn event(&self, name: &str) -> Option<(usize, &EventSpec)> {
        self.events.iter().enumerate().find(|(_, e)| e.name == name)
    }
}

/// Looks a dialect up by name; only implemented dialects pass scenario parsing.
pub fn spec(name: &str) -> &'static DialectSpec {
    match name {
        "dorm" => &dorm::SPEC,
        other => panic!("dialect `{other}` has no spec (scenario parsing should have refused it)"),
    }
}

/// A server→client event.
pub struct EventSpec {
    pub name: &'static str,
    pub shape: Ty,
    /// Who must receive it.
    pub delivery: Delivery,
    /// Fields that must not appear (e.g. a credential), with the rule's level.
    pub forbidden: &'static [&'static str],
    /// How a receipt is matched to the send that caused it.
    pub attribution: Attribution,
}

/// Who must receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Only the client whose request caused it (a reply).
    Requester,
    /// Every member of the sender's room, the sender included.
    RoomInclSender,
}

/// How a receipt is tied to exactly one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// A reply: matched to the requester's pending request.
    Reply,
    /// The driver writes an id into this string field of the payload (sender, sequence):
    /// duplicates, strays and losses are exact.
    ContentId {
        field: &'static str,
        sender_field: &'static str,
    },
    /// The payload carries only the sender and a value: matched per sender in FIFO order on
    /// `value_field` (weaker: a loss and a reorder of equal values look alike).
    SenderFifo {
        sender_field: &'static str,
        value_field: &'static str,
    },
}

/// What the client knows when it builds a request.
pub struct OpContext<'a> {
    pub client: u32,
    pub user_id: u64,
    pub username: &'a str,
    pub token: &'a str,
    /// Per-client sequence number of the next attributable send.
    pub seq: u64,
}

/// A request ready to emit, and what the server must do about it.
pub struct Request {
    pub event: &'static str,
    pub args: Vec<Value>,
    pub effect: Effect,
}

/// What a valid server must do in reaction to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Join the user's room; the server confirms with `reply` to the requester.
    Join { reply: &'static str },
    /// Leave the room; no reply on success.
    Leave,
    /// Broadcast `event` (index in `events`) to the room; `value` is what FIFO attribution
    /// matches on, `seq` what content attribution matches on.
    Broadcast {
        event: &'static str,
        seq: Option<u64>,
        value: Option<Value>,
    },
    /// The request is invalid: an error must come back on the request's own event.
    Error,
}

/// One operation of a dialect.
pub struct OpSpec {
    pub name: &'static str,
    /// One line for `--help`-like listings and errors.
    pub summary: &'static str,
    pub check_params: fn(&BTreeMap<String, Value>) -> Result<(), String>,
    pub build: fn(&OpContext, &BTreeMap<String, Value>, &mut dyn rand::RngCore) -> Request,
}

/// Accepts no parameters.
pub fn no_params(p: &BTreeMap<String, Value>) -> Result<(), String> {
    match p.keys().next() {
        None => Ok(()),
        Some(k) => Err(format!("takes no parameters, got `{k}`")),
    }
}

/// Content ids: `rr:<client>:<seq>:` then padding. Parsed back by the oracle.
pub fn content_id(client: u32, seq: u64, size: usize) -> String {
    let mut s = format!("rr:{client}:{seq}:");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Parses a content id written by [`content_id`].
pub fn parse_content_id(s: &str) -> Option<(u32, u64)> {
    let rest = s.strip_prefix("rr:")?;
    let (client, rest) = rest.split_once(':')?;
    let (seq, _) = rest.split_once(':')?;
    Some((client.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_id_round_trips() {
        let id = super::content_id(42, 7, 40);
        assert_eq!(id.len(), 40);
        assert_eq!(super::parse_content_id(&id), Some((42, 7)));
        assert_eq!(super::parse_content_id("hello"), None);
    }
}
