//! The catalogue of checks. A rule id is `<dialect>/<event or scope>/<check>`, e.g.
//! `dorm/message/missing`; the check part, its level and its reason are fixed here, so ids are
//! stable and every dialect reports the same kind of fault under the same name.

use serde::{Deserialize, Serialize};

/// RFC 2119 levels: MUST fails a run, SHOULD warns (fails with `--strict`), INFO only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Must,
    Should,
    Info,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::Info => "INFO",
        })
    }
}

/// What went wrong, independent of dialect and event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    Shape,
    TimeFormat,
    Forbidden,
    Missing,
    Late,
    Duplicate,
    NonMember,
    Unknown,
    UnknownEvent,
    Order,
    WrongSender,
    ReplyMissing,
    ReplyContent,
    ReplyUnsolicited,
    ErrorMissing,
    ErrorWrongEvent,
    ErrorUnexpected,
    ExpectMissing,
    ExpectAbsent,
    ErrorContent,
    ConnectFailed,
    UnexpectedClose,
    HeartbeatTimeoutMissing,
    HeartbeatTimeoutEarly,
    HeartbeatTimeoutShort,
    HeartbeatTimeoutNotObserved,
    Malformed,
    Unresponsive,
}

impl Check {
    pub const ALL: &'static [Check] = &[
        Check::Shape,
        Check::TimeFormat,
        Check::Forbidden,
        Check::Missing,
        Check::Late,
        Check::Duplicate,
        Check::NonMember,
        Check::Unknown,
        Check::UnknownEvent,
        Check::Order,
        Check::WrongSender,
        Check::ReplyMissing,
        Check::ReplyContent,
        Check::ReplyUnsolicited,
        Check::ErrorMissing,
        Check::ErrorWrongEvent,
        Check::ErrorUnexpected,
        Check::ExpectMissing,
        Check::ExpectAbsent,
        Check::ErrorContent,
        Check::ConnectFailed,
        Check::UnexpectedClose,
        Check::HeartbeatTimeoutMissing,
        Check::HeartbeatTimeoutEarly,
        Check::HeartbeatTimeoutShort,
        Check::HeartbeatTimeoutNotObserved,
        Check::Malformed,
        Check::Unresponsive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Shape => "shape",
            Check::TimeFormat => "time-format",
            Check::Forbidden => "forbidden-field",
            Check::Missing => "missing",
            Check::Late => "late",
            Check::Duplicate => "duplicate",
            Check::NonMember => "non-member",
            Check::Unknown => "unknown",
            Check::UnknownEvent => "unknown-event",
            Check::Order => "order",
            Check::WrongSender => "wrong-sender",
            Check::ReplyMissing => "reply-missing",
            Check::ReplyContent => "reply-content",
            Check::ReplyUnsolicited => "reply-unsolicited",
            Check::ErrorMissing => "error-missing",
            Check::ErrorWrongEvent => "error-wrong-event",
            Check::ErrorUnexpected => "error-unexpected",
            Check::ExpectMissing => "expect-missing",
            Check::ExpectAbsent => "expect-absent",
            Check::ErrorContent => "error-content",
            Check::ConnectFailed => "connect-failed",
            Check::UnexpectedClose => "unexpected-close",
            Check::HeartbeatTimeoutMissing => "heartbeat-timeout-missing",
            Check::HeartbeatTimeoutEarly => "heartbeat-timeout-early",
            Check::HeartbeatTimeoutShort => "heartbeat-timeout-short",
            Check::HeartbeatTimeoutNotObserved => "heartbeat-timeout-not-observed",
            Check::Malformed => "malformed",
            Check::Unresponsive => "unresponsive",
        }
    }

    pub fn level(self) -> Level {
        match self {
            Check::TimeFormat | Check::UnknownEvent | Check::HeartbeatTimeoutNotObserved => {
                Level::Info
            }
            Check::Forbidden | Check::HeartbeatTimeoutShort => Level::Should,
            _ => Level::Must,
        }
    }

    /// One line: why this is a fault.
    pub fn reason(self) -> &'static str {
        match self {
            Check::Shape => "a required field is missing or has the wrong type",
            Check::TimeFormat => {
                "a datetime is in the accepted `YYYY-MM-DD HH:MM:SS` form, not RFC 3339"
            }
            Check::Forbidden => "the payload carries a field it should not (e.g. a credential)",
            Check::Missing => {
                "a member of the room never received a broadcast (none within twice the deadline)"
            }
            Check::Late => "a broadcast arrived after the scenario's deadline",
            Check::Duplicate => "a client received the same broadcast twice",
            Check::NonMember => "a client that was not a member of the room received its broadcast",
            Check::Unknown => {
                "a broadcast that matches no send (never sent, wrong room, or altered)"
            }
            Check::UnknownEvent => {
                "an event the dialect does not define (e.g. a notice dorm does not have)"
            }
            Check::Order => "broadcasts from one sender arrived out of send order",
            Check::WrongSender => "the broadcast names another user than the one who sent it",
            Check::ReplyMissing => "a request's reply did not arrive within the deadline",
            Check::ReplyContent => {
                "a reply's content contradicts the request (e.g. names another user)"
            }
            Check::ReplyUnsolicited => "a reply arrived that no request of this client asked for",
            Check::ErrorMissing => {
                "an invalid request got no error on its own event within the deadline"
            }
            Check::ErrorWrongEvent => {
                "an error arrived on another event than the request that caused it"
            }
            Check::ErrorUnexpected => "a valid request was answered with an error",
            Check::ExpectMissing => "an `expect` step of the scenario timed out",
            Check::ExpectAbsent => "an event that an `expect: {absent: true}` step forbids arrived",
            Check::ErrorContent => "an error arrived, but not the one the protocol names",
            Check::ConnectFailed => "the server refused or dropped a connection attempt",
            Check::UnexpectedClose => "the server closed a healthy client's connection",
            Check::HeartbeatTimeoutMissing => {
                "a client whose heartbeat stopped was not closed within pingInterval + pingTimeout + grace"
            }
            Check::HeartbeatTimeoutEarly => {
                "a client whose heartbeat stopped was closed before the advertised pingInterval + pingTimeout had passed since its last heartbeat"
            }
            Check::HeartbeatTimeoutShort => {
                "a silent client was closed after it missed a heartbeat of the advertised interval, but before the silence the protocol's source allows; the server advertises no timeout of its own, so this only warns"
            }
            Check::HeartbeatTimeoutNotObserved => {
                "the heartbeat deadline ended the wait before the server's advertised window had passed: no close observed, nothing judged"
            }
            Check::Malformed => {
                "the server sent a frame that is not valid Engine.IO/Socket.IO, websocket or UTF-8 (a frame over the client's cap is reported here as SHOULD: no rule bounds what a server sends)"
            }
            Check::Unresponsive => {
                "the server stopped serving: no new connection after a check case (crashed or hangs), or no heartbeat to a client, or no longer reading what a client sends"
            }
        }
    }
}

/// A stable rule id: `<dialect>/<scope>/<check>`.
pub fn rule_id(dialect: &str, scope: &str, check: Check) -> String {
    format!("{dialect}/{scope}/{}", check.name())
}

/// One row of a dialect's rule catalogue: the level of `checks` on `scope` and where that
/// level comes from. The level is the seed's word only where the seed states the rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleSpec {
    /// The middle part of the id: an event or request name, `connection`, `server`, `error`,
    /// or `*` for any scope not named by an earlier row.
    pub scope: &'static str,
    pub checks: &'static [Check],
    pub level: Level,
    /// The seed section it comes from (heading and English gloss), "common rule: ..." or
    /// "reference-server decision: ...".
    pub source: &'static str,
}

/// What the catalogue says about one rule id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rating {
    pub level: Level,
    pub source: &'static str,
}

/// Rules every dialect shares (after the dialect's own rows): the common rules of all
/// protocols, and the scenario's own expectations.
pub const COMMON: &[RuleSpec] = &[
    RuleSpec {
        scope: "connection",
        checks: &[Check::Malformed],
        level: Level::Must,
        source: "common rule: the server sends valid Engine.IO/Socket.IO frames",
    },
    RuleSpec {
        scope: "connection",
        checks: &[Check::ConnectFailed, Check::UnexpectedClose],
        level: Level::Must,
        source: "common rule: the server keeps serving every client whatever another one sends",
    },
    RuleSpec {
        scope: "connection",
        checks: &[Check::Unresponsive],
        level: Level::Must,
        source: "common rule: the server keeps serving every client (keeps its heartbeat, reads what the client sends)",
    },
    RuleSpec {
        scope: "connection",
        checks: &[Check::HeartbeatTimeoutMissing, Check::HeartbeatTimeoutEarly],
        level: Level::Must,
        source: "common rule: Engine.IO heartbeat (pingInterval + pingTimeout of the handshake)",
    },
    RuleSpec {
        scope: "connection",
        checks: &[Check::HeartbeatTimeoutNotObserved],
        level: Level::Info,
        source: "common rule: Engine.IO heartbeat; a wait capped below the advertised window judges nothing",
    },
    RuleSpec {
        scope: "connection",
        checks: &[Check::HeartbeatTimeoutShort],
        level: Level::Should,
        source: "common rule: a heartbeat timeout the server does not state (Engine.IO's handshake states it) is assumed from the protocol's source",
    },
    RuleSpec {
        scope: "connection",
        checks: &[Check::UnknownEvent],
        level: Level::Info,
        source: "common rule: events beyond the dialect's table are reported, not judged",
    },
    RuleSpec {
        scope: "server",
        checks: &[Check::Unresponsive],
        level: Level::Must,
        source: "common rule: the server keeps serving every client whatever another one sends",
    },
    RuleSpec {
        scope: "*",
        checks: &[Check::TimeFormat],
        level: Level::Info,
        source: "common rule: datetimes as RFC 3339; `YYYY-MM-DD HH:MM:SS` is accepted",
    },
    RuleSpec {
        scope: "*",
        checks: &[Check::ExpectMissing, Check::ExpectAbsent],
        level: Level::Must,
        source: "the scenario: an `expect` step its author wrote",
    },
];

/// The level and source of `<dialect>/<scope>/<check>`: the dialect's first matching row,
/// then [`COMMON`], then the check's generic level.
pub fn rate(table: &[RuleSpec], scope: &str, check: Check) -> Rating {
    table
        .iter()
        .chain(COMMON)
        .find(|r| (r.scope == scope || r.scope == "*") && r.checks.contains(&check))
        .map_or(
            Rating {
                level: check.level(),
                source: "generic default (no catalogue row)",
            },
            |r| Rating {
                level: r.level,
                source: r.source,
            },
        )
}

/// A request whose expectation the seed does not state (e.g. an error text only the reference
/// server chose): the violations it causes are judged at most at this level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub level: Level,
    pub source: &'static str,
}

impl Rating {
    /// The rating under a per-request cap: the milder level wins, with the cap's source.
    pub fn capped(self, cap: Option<Cap>) -> Rating {
        match cap {
            Some(c) if c.level > self.level => Rating {
                level: c.level,
                source: c.source,
            },
            _ => self,
        }
    }
}
