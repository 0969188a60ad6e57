//! The oracle: judges every received event against the dialect's table and a model of the rooms
//! built from what the clients did.
//!
//! # Membership windows (what a user can predict)
//! Times are those of the driver's clock. For a broadcast sent at `S` with deadline `D`:
//! - a client is **required** to receive it if the server had confirmed its join before `S`
//!   (the join reply had arrived) and it did not leave, close or fault before `S + G`, where
//!   `G` is the scenario's `membership_grace` (default and at most `D`): the time within
//!   which the server may act on the leave before the broadcast. A member that leaves inside
//!   that window is required to have received it only on evidence: a *later* broadcast of the
//!   same sender to the same room reached it (a server delivers one sender's broadcasts to one
//!   connection in order, so it skipped this one). Without such evidence nothing is said: a
//!   slow but conformant server, or a loaded machine, may still have had it in flight. The
//!   sender is owed its own copy even so when it leaves by a request (see
//!   [`Oracle::left_by_request`]): otherwise a room whose broadcasts reach nobody gives no
//!   evidence at all;
//! - a client **may** receive it if it sent its join before `S + D` and did not leave before
//!   `S - D` (one deadline of uncertainty on each side, since the server orders requests from
//!   different sockets as it likes);
//! - anybody else receiving it is a `non-member` violation.
//!
//! A required receipt after `S + D` is `late`; none by `S + 2D` is `missing`.

pub mod attribution;
pub mod contest;
pub mod json;
pub mod judge;
mod restart;
pub mod rules;
pub mod shape;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use rules::{Cap, Check, Level, Rating, RuleSpec};

use crate::dialect::Precondition;

/// Microseconds since the start of the run (one monotonic clock per process).
pub type Micros = u64;
/// A room of the dialect (dorm room id).
pub type RoomKey = u64;
/// A client's index in the run.
pub type ClientId = u32;

const SHARDS: usize = 64;

/// A map keyed by small integers (rooms, clients), with FxHash: SipHash's DoS resistance buys
/// nothing for keys the driver chose, and costs a few ns per event. (rustc-hash 2 finishes with
/// a rotation, so the rooms of one shard, which share their low bits, still spread.)
pub type IntMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Violations kept in full per rule (the rest are counted).
pub const EXAMPLES_PER_RULE: usize = 5;
const TRANSCRIPT_LEN: usize = 16;
/// Events of the client kept after a violation in its example (what the server did next).
pub const TRANSCRIPT_AFTER: u8 = 6;

/// One recorded violation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Violation {
    pub rule: String,
    pub level: Level,
    /// Where the rule comes from (a seed section, a common rule, a reference decision).
    #[serde(default)]
    pub source: String,
    pub client: ClientId,
    pub user: String,
    pub at_ms: f64,
    pub expected: String,
    pub received: String,
    /// The client's events around the violation, oldest first: the last ones before it, a
    /// `!!` line marking it, then the next few (up to [`TRANSCRIPT_AFTER`]).
    pub transcript: Vec<String>,
}

/// Violations counted per rule, with the first few in full.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RuleTally {
    /// The most severe level among the rule's violations (a request may cap its own).
    pub level: Option<Level>,
    /// Where the rule comes from.
    #[serde(default)]
    pub source: String,
    pub reason: String,
    pub count: u64,
    pub examples: Vec<Violation>,
}

/// A broadcast on its way to a room.
struct Broadcast {
    event: &'static str,
    sender: ClientId,
    session: u32,
    /// Content attribution: the sender's sequence number.
    seq: Option<u64>,
    /// FIFO attribution: the value the receipt must carry.
    value: Option<Value>,
    intended: Micros,
    sent: Micros,
    /// Receipts after this are late; none by `due + deadline`, missing.
    due: Micros,
    /// A member that leaves before this is excused (the server may act on the leave first).
    excuse_until: Micros,
    metric: &'static str,
    required: Vec<ClientId>,
    /// Members that left while it was in flight: required only on evidence (see the module
    /// docs).
    conditional: Vec<ClientId>,
    /// Conditional members whose evidence was settled when they joined again: a later
    /// broadcast of the same sender had reached them before they asked to rejoin, so within
    /// the membership this one belonged to.
    skipped: Vec<ClientId>,
    received: Vec<ClientId>,
    /// Exactly one member at a time must get it (see [`Oracle::notify_one_sent`]).
    one: Option<OneMember>,
    /// A kick (see [`Oracle::kick_sent`]): matched by room and receiver, not by sender.
    kick: bool,
    /// A delivery the server keeps for the user when none of its connections gets it, handed
    /// over in this reply (see [`Oracle::deferrable_sent`]).
    kept_via: Option<&'static str>,
}

impl Broadcast {
    /// When nothing more can be judged about it: its deadline has passed twice, and for an
    /// exactly-one delivery the holder's report time and the fail-over's deadline too.
    fn settles(&self, deadline: Micros) -> Micros {
        let takeover = self
            .one
            .as_ref()
            .and_then(|o| o.takeover(self, deadline))
            .map_or(0, |t| t + deadline);
        (self.due + deadline).max(takeover)
    }
}

impl OneMember {
    /// Whether a member may have been told unseen: one that left just before the send
    /// (`maybe_unseen`), or one that left while it was in flight (a conditional receiver: the
    /// server may have acted on the departure only after that member's client stopped
    /// reading, the order of two sockets' events being the server's within the grace).
    fn told_unseen(&self, b: &Broadcast) -> bool {
        self.maybe_unseen || b.conditional.iter().any(|c| !b.received.contains(c))
    }

    /// From when a fail-over is owed to a member still in the room (it must stay a deadline
    /// past it to be owed it): the seen holder's report time; for a tell nobody was seen to
    /// get but a leaving member may have had unseen, that member's report time counted from
    /// the latest on-time tell. `None`: a first tell is owed, no fail-over.
    fn takeover(&self, b: &Broadcast, deadline: Micros) -> Option<Micros> {
        match self.got.last() {
            Some(&(_, at)) => Some(at + self.owed_by),
            None if self.told_unseen(b) => Some(b.sent + deadline + self.owed_by),
            None => None,
        }
    }

    /// What an exactly-one delivery missed when it is swept at `now`: nobody got it, or the
    /// holder did not report back and no other member got it after the fail-over time. At the
    /// end of a run (`now = Micros::MAX`) a fail-over still running is not judged.
    fn missing(
        &self,
        b: &Broadcast,
        members: &[Membership],
        now: Micros,
        deadline: Micros,
    ) -> Option<MissingDelivery> {
        let not_told =
            |c: &ClientId| !self.got.iter().any(|(g, _)| g == c) && !b.received.contains(c);
        let unseen = self.told_unseen(b);
        let because = match self.got.last() {
            None if unseen => {
                "a member leaving at that moment may have been told unseen, but then another member still in the room had to get it once its report time ran out, and none did"
            }
            None => "exactly one of the room's other members had to get it, and none did",
            Some(&(_, at)) if !self.reported && now != Micros::MAX && at + self.owed_by + deadline < now => {
                "the member that got it did not report back in time, so another member had to get it"
            }
            Some(_) => return None,
        };
        // Present in the room from `from` until a deadline after it: owed a delivery then.
        let stayed = |c: ClientId, from: Micros| {
            members.iter().any(|m| {
                m.client == c && m.join_sent <= from && m.left.is_none_or(|l| l > from + deadline)
            })
        };
        let candidate = match self.got.last() {
            // A member leaving around the departure (just before it, or within the grace
            // after it) may have been told, its receipt unseen (the server had not yet seen it
            // leave, or acted on the departure after its client stopped reading): then the
            // fail-over was owed, to a member still in the room when that member's report
            // window ran out. A member leaving later than the grace was reading when the
            // server had to tell the room: its receipt would be seen.
            None if unseen => {
                let takeover = self.takeover(b, deadline)?;
                b.required
                    .iter()
                    .copied()
                    .filter(not_told)
                    .find(|&c| stayed(c, takeover))?
            }
            None => b.required.iter().copied().find(not_told)?,
            // The fail-over is owed to a member still in the room when the holder's report
            // time ran out, and for a deadline after it: one that left sooner cannot be told.
            Some(&(_, at)) => {
                let takeover = at + self.owed_by;
                b.required
                    .iter()
                    .copied()
                    .filter(not_told)
                    .find(|&c| stayed(c, takeover))?
            }
        };
        Some(MissingDelivery {
            receiver: candidate,
            event: b.event,
            sender: b.sender,
            sent: b.sent,
            because: Some(because),
        })
    }
}

/// A server whose report window nobody stated (the protocol advertises none, the seed gives
/// no time) may take up to this long before it tells another member; only then is a missing
/// fail-over a fault. A target with a longer window needs `--exit-report-timeout-ms`.
pub const LONGEST_UNSTATED_REPORT_WINDOW: Micros = 30_000_000;

/// How long the member told of an exactly-one delivery has to report it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportWindow {
    /// The server's window (stated, or the dialect's default when nobody stated it): another
    /// member told sooner, while the holder is live and silent, is suspect of a duplicate.
    pub window: Micros,
    /// From when another member is owed it: `window` when stated, else up to
    /// [`LONGEST_UNSTATED_REPORT_WINDOW`] (a server that chose a longer window is no fault).
    pub owed_by: Micros,
}

/// The state of an exactly-one delivery with fail-over.
struct OneMember {
    /// How long the member that got it has to report back before another one may get it.
    failover: Micros,
    /// How long past a tell, without a report, another member must have got it.
    owed_by: Micros,
    /// Who got it, when (the last one is the current holder).
    got: Vec<(ClientId, Micros)>,
    /// The current holder reported back: nobody else may get it.
    reported: bool,
    /// When the current holder left the room without reporting back (see [`Room::leave`]).
    holder_left: Option<Micros>,
    /// A member left the room just before the send (within the deadline): a server that had
    /// not yet seen it leave may have told it, and its receipt is never seen.
    maybe_unseen: bool,
    /// Another member got it while the holder was still live and inside its report time.
    suspect: Option<Suspect>,
}

/// A second member told of an exactly-one delivery while the holder still had time to report
/// and was not seen gone: a duplicate, unless the server dropped the holder (a heartbeat
/// timeout) within a deadline of it. A server may fail over the moment it drops the holder,
/// and the holder's client sees its close after the other member sees the fail-over: so it is
/// judged when that close comes (see [`Oracle::dropped_by_server`]), a report of the holder,
/// or the sweep.
#[derive(Clone, Copy)]
struct Suspect {
    client: ClientId,
    at: Micros,
    /// The suspect reported it back meanwhile (it holds the report once promoted).
    reported: bool,
}

/// A call ended by one side's own request (voice: `hang_up`): the user of room `by` ended the
/// call with the user of room `peer` at `at`. Neither side's later departure owes `event` for
/// it any more.
struct Ended {
    by: RoomKey,
    peer: RoomKey,
    event: &'static str,
    at: Micros,
}

/// What the departure of the user of `peer` (its own room) owes: `event` to `back`, on behalf
/// of client `by`'s request sent at `since` (voice: the called member owes its caller
/// `hang_up`).
struct PeerDue {
    peer: RoomKey,
    event: &'static str,
    back: RoomKey,
    by: ClientId,
    since: Micros,
}

/// A delivery kept for a user with no connection online, owed once in the reply `via` of the
/// user's next session (see [`Oracle::deferrable_sent`]).
struct Stored {
    event: &'static str,
    via: &'static str,
    sender: ClientId,
    seq: u64,
    sent: Micros,
    /// A connection of the user was in its join or leave window when it was sent: it may have
    /// been delivered live instead.
    maybe_live: bool,
    /// Sent while the server was being restarted (or just before): the stopping server may
    /// never have read it, so it is owed only if it comes (see [`restart`]).
    maybe_lost: bool,
    /// The connection (client, join time) of the user that joined less than a deadline after
    /// the send: the server may have read the send after that login and delivered it live.
    live_to: Option<(ClientId, Micros)>,
    /// A handover on that connection said nothing more is kept: unless it arrives live there
    /// by this time (while the connection stays), it is missing (see [`Oracle::sweep`]).
    live_by: Option<Micros>,
}

/// A member's interval in a room.
#[derive(Clone, Copy)]
struct Membership {
    client: ClientId,
    join_sent: Micros,
    confirmed: Option<Micros>,
    /// The confirmation never came; membership was assumed from the join request and the
    /// users file at `confirmed` (so broadcasts are judged even against a server that sends
    /// no join reply). Reported with every `missing` it causes.
    assumed: bool,
    left: Option<Micros>,
    /// Not required to receive broadcasts sent before this (a stalled reader's backlog).
    excused_until: Micros,
}

#[derive(Default)]
struct Room {
    members: Vec<Membership>,
    outstanding: VecDeque<Broadcast>,
    /// Deliveries kept for the room's user until its next session.
    stored: Vec<Stored>,
    /// Kept deliveries handed over already (sender, seq): a second copy is a duplicate.
    handed_over: Vec<(ClientId, u64)>,
}

impl Room {
    /// Kept deliveries a handover left to arrive live on the connection that logged in just
    /// after they were sent, past their time: missing if that connection stayed, forgotten
    /// (no longer owed) if it went away first, as the delivery may have gone with it.
    fn kept_not_live(&mut self, now: Micros) -> Vec<MissingDelivery> {
        let mut missing = Vec::new();
        let members = &self.members;
        self.stored.retain_mut(|s| {
            let (Some(by), Some((client, joined))) = (s.live_by, s.live_to) else {
                return true;
            };
            if now != Micros::MAX && now <= by {
                return true;
            }
            let stayed = members.iter().any(|m| {
                m.client == client && m.join_sent == joined && m.left.is_none_or(|l| l > by)
            });
            if !stayed {
                s.live_by = None;
                s.live_to = None;
                return true;
            }
            missing.push(MissingDelivery {
                receiver: client,
                event: s.via,
                sender: s.sender,
                sent: s.sent,
                because: Some(
                    "kept for this user just before it logged in: owed live or in the handover, and neither came",
                ),
            });
            false
        });
        missing
    }

    /// Nobody in it, nothing in flight, nothing kept or handed over.
    fn is_idle(&self) -> bool {
        self.members.is_empty()
            && self.outstanding.is_empty()
            && self.stored.is_empty()
            && self.handed_over.is_empty()
    }

    /// `client` leaves at `at`: broadcasts still in their race window (except the one at
    /// `except`) keep it as a conditional receiver. With `keeps_own`, its own broadcasts stay
    /// required (see [`Oracle::left_by_request`]).
    fn leave(&mut self, client: ClientId, at: Micros, except: Option<usize>, keeps_own: bool) {
        for m in self.members.iter_mut() {
            if m.client == client && m.left.is_none() {
                m.left = Some(at);
            }
        }
        for (i, b) in self.outstanding.iter_mut().enumerate() {
            if let Some(one) = b.one.as_mut() {
                if one.got.last().is_some_and(|&(c, _)| c == client) && !one.reported {
                    one.holder_left.get_or_insert(at);
                }
            }
            if keeps_own && b.sender == client {
                continue;
            }
            if Some(i) != except && at < b.excuse_until {
                if let Some(k) = b.required.iter().position(|&c| c == client) {
                    b.required.swap_remove(k);
                    if !b.received.contains(&client) {
                        b.conditional.push(client);
                    }
                    // The server may have seen the user gone first and kept it: then it is
                    // handed over once later, but owed only if it comes.
                    if let (Some(via), Some(seq), true) = (b.kept_via, b.seq, b.received.is_empty())
                    {
                        let (sender, event, sent) = (b.sender, b.event, b.sent);
                        if !self
                            .stored
                            .iter()
                            .any(|s| s.sender == sender && s.seq == seq)
                        {
                            self.stored.push(Stored {
                                event,
                                via,
                                sender,
                                seq,
                                sent,
                                maybe_live: true,
                                maybe_lost: false,
                                live_to: None,
                                live_by: None,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Whether `client` may be a member at `at` (joined by `at + deadline`, not left before
    /// `at - deadline`).
    fn maybe_member(&self, client: ClientId, at: Micros, deadline: Micros) -> bool {
        self.members.iter().any(|m| {
            m.client == client
                && m.join_sent <= at + deadline
                && m.left.is_none_or(|l| l + deadline >= at)
        })
    }
}

/// A broadcast request, as the oracle registers it.
pub struct Outgoing {
    pub sender: ClientId,
    /// The sender's connection, counted per client: a server keeps the order of what one
    /// connection sent, not of what two connections of one user sent (a departure notice and
    /// the next session's login may cross).
    pub session: u32,
    pub room: RoomKey,
    pub event: &'static str,
    /// Whether the sender itself must receive it.
    pub include_sender: bool,
    /// When the server may answer with an error instead of broadcasting.
    pub unless: Precondition,
    pub seq: Option<u64>,
    pub value: Option<Value>,
    pub intended: Micros,
    pub sent: Micros,
    /// The second half of the latency metric's name: `fanout` for requests, `after-fault`
    /// for the notices of a departure.
    pub metric: &'static str,
    /// A longer deadline than the run's (e.g. a departure noticed only after a heartbeat
    /// timeout).
    pub deadline: Option<Micros>,
}

/// The timing of the send a receipt was matched to.
#[derive(Debug, Clone, Copy)]
pub struct Matched {
    pub intended: Micros,
    pub sent: Micros,
    /// Received after the deadline (a `late` violation for a required receiver).
    pub late: bool,
    /// The latency metric this receipt counts in (`fanout`, `after-fault`).
    pub metric: &'static str,
}

/// What a receipt turned out to be.
pub enum Receipt {
    /// A receipt the client had to get, in time or late.
    Delivered(Matched),
    /// A receipt the client was allowed but not required to get (in-flight membership).
    Allowed(Matched),
    /// A fault: the check and what was expected.
    Fault(Check, String),
    /// Read from a stalled client's backlog after the oracle forgot the send: not judged.
    Backlog,
}

/// A missing delivery found by [`Oracle::sweep`].
pub struct MissingDelivery {
    pub receiver: ClientId,
    pub event: &'static str,
    pub sender: ClientId,
    pub sent: Micros,
    /// Why the receiver had to get it, when it is not plain membership.
    pub because: Option<&'static str>,
}

/// A ring of a client's last events, for reproducing a violation. Payloads are kept as the
/// JSON text that was received or sent (cut at [`TRANSCRIPT_KEEP`] bytes) and rendered as
/// compact JSON cut at [`TRANSCRIPT_PAYLOAD`] bytes only when a report asks: a parsed `Value`
/// would cost ten times the memory per client, and re-serializing every event costs CPU.
#[derive(Default)]
pub struct Transcript {
    entries: VecDeque<TranscriptEntry>,
}

struct TranscriptEntry {
    at: Micros,
    dir: &'static str,
    /// `event payload`, the payload as it was on the wire. A `String`, not a `Box<str>`, so
    /// that the entry a full ring drops lends its buffer to the next one (no malloc and free
    /// per event).
    line: String,
    /// Where the payload starts in `line`.
    payload_at: u32,
    /// The payload was cut at [`TRANSCRIPT_KEEP`].
    cut: bool,
}

/// Bytes of payload a transcript line shows.
const TRANSCRIPT_PAYLOAD: usize = 160;
/// Bytes of a line a transcript keeps (more than it shows, so that a payload sent with
/// whitespace still renders like its compact form).
const TRANSCRIPT_KEEP: usize = 256;

impl Transcript {
    pub fn push(&mut self, at: Micros, dir: &'static str, event: &str, payload: &Value) {
        self.push_raw(
            at,
            dir,
            event,
            &serde_json::to_string(payload).unwrap_or_default(),
        );
    }

    /// Appends an event whose payload is given as JSON text.
    pub fn push_raw(&mut self, at: Micros, dir: &'static str, event: &str, payload: &str) {
        let want = (event.len() + 1 + payload.len()).min(TRANSCRIPT_KEEP);
        let mut line = if self.entries.len() == TRANSCRIPT_LEN {
            let mut reused = self.entries.pop_front().map(|e| e.line).unwrap_or_default();
            reused.clear();
            reused.reserve(want);
            reused
        } else {
            String::with_capacity(want)
        };
        line.push_str(event);
        line.push(' ');
        let payload_at = line.len() as u32;
        let room = TRANSCRIPT_KEEP.saturating_sub(line.len());
        let cut = if payload.len() > room {
            let mut end = room;
            while !payload.is_char_boundary(end) {
                end -= 1;
            }
            line.push_str(&payload[..end]);
            true
        } else {
            line.push_str(payload);
            false
        };
        self.entries.push_back(TranscriptEntry {
            at,
            dir,
            line,
            payload_at,
            cut,
        });
    }

    pub fn lines(&self) -> Vec<String> {
        self.entries.iter().map(Self::render).collect()
    }

    /// The newest event as a line.
    pub fn last_line(&self) -> Option<String> {
        self.entries.back().map(Self::render)
    }

    fn render(e: &TranscriptEntry) -> String {
        let (event, payload) = e.line.split_at(e.payload_at as usize);
        // Compact JSON as the oracle parsed it (keys sorted), whatever the wire form.
        let parsed = (!e.cut)
            .then(|| serde_json::from_str::<Value>(payload).ok())
            .flatten();
        let mut line = match parsed {
            Some(v) => format!("{event}{v}"),
            None => e.line.to_string(),
        };
        if crate::text::cut_to_bytes(&mut line, TRANSCRIPT_PAYLOAD) || e.cut {
            line.push_str("...");
        }
        format!("{:>10.3}ms {} {line}", e.at as f64 / 1e3, e.dir)
    }
}

/// The shared state of the oracle for one run.
pub struct Oracle {
    dialect: &'static str,
    deadline: Micros,
    /// How long a membership change may race a broadcast (see the module docs).
    grace: Micros,
    rooms: Box<[Mutex<IntMap<RoomKey, Room>>]>,
    tallies: Mutex<BTreeMap<String, RuleTally>>,
    transcripts: Box<[Mutex<Transcript>]>,
    usernames: Vec<String>,
    must_count: AtomicU64,
    total_count: AtomicU64,
    /// Clients with at least one violation.
    violators: Mutex<std::collections::HashSet<ClientId>>,
    /// Clients that sent lenient (hostile) input: what they receive is no longer judged.
    lenient: Box<[std::sync::atomic::AtomicBool]>,
    /// The dialect's rule catalogue.
    rules: &'static [RuleSpec],
    /// A name per room key, for reports (keys are hashes of names).
    room_names: Mutex<IntMap<RoomKey, String>>,
    /// Per client: examples still collecting the events after their violation (a count, so
    /// that logging an event costs one atomic load when there is none).
    tails: Box<[std::sync::atomic::AtomicU8]>,
    /// The examples collecting: (client, rule, example index, events still to add).
    open_examples: Mutex<Vec<(ClientId, String, usize, u8)>>,
    /// The first sign that the users file does not describe the server (see
    /// [`Oracle::fixture_mismatch`]).
    fixture_mismatch: Mutex<Option<String>>,
    /// Some broadcast carries its exact payload (a `seq` and a `value`: push's data passed
    /// through untouched): only then do content receipts pay for a comparison.
    exact_payloads: AtomicBool,
    /// Per rule id: violations by the second (since the run's start) they were raised at, for
    /// the report's timeline.
    per_second: Mutex<BTreeMap<String, BTreeMap<u64, u64>>>,
    /// Logins racing for a room only the first may take, per room (see [`contest`]).
    contests: Mutex<IntMap<RoomKey, contest::Contest>>,
    /// Clients whose broadcasts travel as HTTP requests, several in flight at once on pooled
    /// connections: a server cannot keep an order among them, so none is judged.
    unordered: Box<[std::sync::atomic::AtomicBool]>,
    /// The restarts of the embedded server during the run (see [`restart`]).
    restarts: std::sync::RwLock<Vec<restart::Window>>,
    /// How long the member told of a departure has to report it back (see
    /// [`Oracle::notify_one_sent`]), when the scenario states it; 0: the dialect's default.
    report_window: AtomicU64,
    /// Nobody stated the server's report window (a target; the protocol advertises none):
    /// the dialect's default is assumed for when a fail-over may come, and a missing one is
    /// judged only after [`LONGEST_UNSTATED_REPORT_WINDOW`].
    report_window_unstated: AtomicBool,
    /// What a user's departure owes another client (see [`Oracle::peer_owes`]).
    peer_dues: Mutex<Vec<PeerDue>>,
    /// Calls ended by either side's request (see [`Oracle::peer_owes`]).
    ended: Mutex<Vec<Ended>>,
}

impl Oracle {
    /// `usernames[i]` names client `i` in reports.
    pub fn new(
        dialect: &'static str,
        deadline: Micros,
        grace: Micros,
        usernames: Vec<String>,
    ) -> Oracle {
        let usernames_len = usernames.len();
        Oracle {
            dialect,
            deadline,
            grace: grace.min(deadline),
            rooms: (0..SHARDS).map(|_| Mutex::new(IntMap::default())).collect(),
            tallies: Mutex::new(BTreeMap::new()),
            transcripts: (0..usernames.len())
                .map(|_| Mutex::new(Transcript::default()))
                .collect(),
            usernames,
            must_count: AtomicU64::new(0),
            total_count: AtomicU64::new(0),
            violators: Mutex::new(std::collections::HashSet::new()),
            lenient: (0..usernames_len).map(|_| Default::default()).collect(),
            rules: crate::dialect::find(dialect).map_or(&[], |d| d.spec.rules),
            room_names: Mutex::new(IntMap::default()),
            tails: (0..usernames_len).map(|_| Default::default()).collect(),
            open_examples: Mutex::new(Vec::new()),
            fixture_mismatch: Mutex::new(None),
            exact_payloads: AtomicBool::new(false),
            per_second: Mutex::new(BTreeMap::new()),
            contests: Mutex::new(IntMap::default()),
            unordered: (0..usernames_len).map(|_| Default::default()).collect(),
            restarts: std::sync::RwLock::new(Vec::new()),
            report_window: AtomicU64::new(0),
            report_window_unstated: AtomicBool::new(false),
            peer_dues: Mutex::new(Vec::new()),
            ended: Mutex::new(Vec::new()),
        }
    }

    /// Notes that the server disagrees with the users file (the first note is kept): the
    /// driver stops the run, which proves nothing about the server then.
    pub fn report_fixture_mismatch(&self, what: String) {
        lock(&self.fixture_mismatch).get_or_insert(what);
    }

    /// What disagreed between the server and the users file, if anything did.
    pub fn fixture_mismatch(&self) -> Option<String> {
        lock(&self.fixture_mismatch).clone()
    }

    /// Names a room for reports (the first name given wins).
    pub fn name_room(&self, room: RoomKey, name: &str) {
        self.label_room(room, || format!("room {name:?}"));
    }

    /// Labels a room key that is not a room of the protocol (e.g. a user's own connections).
    pub fn label_room(&self, room: RoomKey, label: impl FnOnce() -> String) {
        lock(&self.room_names).entry(room).or_insert_with(label);
    }

    /// A room as a person reads it: its name, not its key.
    pub fn room_label(&self, room: RoomKey) -> String {
        if room == crate::dialect::EVERYONE {
            return "every connection".to_string();
        }
        match lock(&self.room_names).get(&room) {
            Some(label) => label.clone(),
            None => format!("a room no client of this run named (key {room:#x})"),
        }
    }

    /// The level and source of a rule of this run's dialect.
    pub fn rate(&self, scope: &str, check: Check) -> Rating {
        rules::rate(self.rules, scope, check)
    }

    pub fn deadline(&self) -> Micros {
        self.deadline
    }

    fn shard(&self, room: RoomKey) -> std::sync::MutexGuard<'_, IntMap<RoomKey, Room>> {
        lock(&self.rooms[(room as usize) % SHARDS])
    }

    /// Appends to a client's transcript.
    pub fn log(
        &self,
        client: ClientId,
        at: Micros,
        dir: &'static str,
        event: &str,
        payload: &Value,
    ) {
        lock(&self.transcripts[client as usize]).push(at, dir, event, payload);
        self.extend_examples(client);
    }

    /// Appends to a client's transcript an event whose payload is JSON text.
    pub fn log_raw(
        &self,
        client: ClientId,
        at: Micros,
        dir: &'static str,
        event: &str,
        payload: &str,
    ) {
        lock(&self.transcripts[client as usize]).push_raw(at, dir, event, payload);
        self.extend_examples(client);
    }

    /// Adds the client's newest event to its examples that are still collecting.
    fn extend_examples(&self, client: ClientId) {
        if self.tails[client as usize].load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(line) = lock(&self.transcripts[client as usize]).last_line() else {
            return;
        };
        let mut open = lock(&self.open_examples);
        let mut tallies = lock(&self.tallies);
        open.retain_mut(|(c, rule, i, left)| {
            if *c != client {
                return true;
            }
            if let Some(e) = tallies
                .get_mut(rule.as_str())
                .and_then(|t| t.examples.get_mut(*i))
            {
                e.transcript.push(line.clone());
            }
            *left -= 1;
            if *left == 0 {
                self.tails[client as usize].fetch_sub(1, Ordering::Relaxed);
            }
            *left > 0
        });
    }

    /// Frees the transcript of a client whose flow is over, unless it has a violation: only
    /// violators' transcripts are reported, and a long run goes through many clients (each
    /// kept ~4 KB until the end: 6 MB a minute at 20 dorm arrivals/s, `bench/resource-soak.sh`).
    pub fn release_transcript(&self, client: ClientId) {
        if !lock(&self.violators).contains(&client) {
            *lock(&self.transcripts[client as usize]) = Transcript::default();
        }
    }

    /// A client's transcript as text lines, oldest first.
    pub fn transcript(&self, client: ClientId) -> Vec<String> {
        lock(&self.transcripts[client as usize]).lines()
    }

    /// From now on, nothing this client receives or misses is judged (it sent hostile input
    /// the server may answer in any way, or by closing it).
    pub fn set_lenient(&self, client: ClientId) {
        self.lenient[client as usize].store(true, Ordering::Relaxed);
    }

    /// Records a violation of `check` on `scope` (an event name or `connection`).
    pub fn violate(
        &self,
        client: ClientId,
        scope: &str,
        check: Check,
        at: Micros,
        expected: String,
        received: String,
    ) {
        self.violate_capped(client, scope, check, at, expected, received, None);
    }

    /// [`Oracle::violate`] for a request whose expectation the seed does not state: judged at
    /// most at the cap's level.
    #[allow(clippy::too_many_arguments)]
    pub fn violate_capped(
        &self,
        client: ClientId,
        scope: &str,
        check: Check,
        at: Micros,
        expected: String,
        received: String,
        cap: Option<Cap>,
    ) {
        if self.lenient[client as usize].load(Ordering::Relaxed) {
            return;
        }
        let rule = rules::rule_id(self.dialect, scope, check);
        let Rating { level, source } = self.rate(scope, check).capped(cap);
        self.total_count.fetch_add(1, Ordering::Relaxed);
        if level == Level::Must {
            self.must_count.fetch_add(1, Ordering::Relaxed);
        }
        {
            lock(&self.violators).insert(client);
        }
        let mut opened = None;
        let mut tallies = lock(&self.tallies);
        let tally = tallies.entry(rule.clone()).or_insert_with(|| RuleTally {
            level: Some(level),
            source: source.to_string(),
            reason: check.reason().to_string(),
            ..RuleTally::default()
        });
        if tally.level.is_none_or(|l| level < l) {
            tally.level = Some(level);
            tally.source = source.to_string();
        }
        tally.count += 1;
        *lock(&self.per_second)
            .entry(rule.clone())
            .or_default()
            .entry(at / 1_000_000)
            .or_default() += 1;
        if tally.examples.len() < EXAMPLES_PER_RULE {
            let mut transcript = lock(&self.transcripts[client as usize]).lines();
            transcript.push(format!("{:>10.3}ms !! {rule} ({level})", at as f64 / 1e3));
            opened = Some((rule.clone(), tally.examples.len()));
            tally.examples.push(Violation {
                rule,
                level,
                source: source.to_string(),
                client,
                user: self.usernames[client as usize].clone(),
                at_ms: at as f64 / 1e3,
                expected,
                received,
                transcript,
            });
        }
        drop(tallies);
        // Lock order: open examples, then tallies (as in `extend_examples`).
        if let Some((rule, index)) = opened {
            lock(&self.open_examples).push((client, rule, index, TRANSCRIPT_AFTER));
            self.tails[client as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Violations so far (all levels).
    pub fn violation_count(&self) -> u64 {
        self.total_count.load(Ordering::Relaxed)
    }

    /// MUST violations so far.
    pub fn must_count(&self) -> u64 {
        self.must_count.load(Ordering::Relaxed)
    }

    /// The `n` lowest-numbered clients that had a violation.
    pub fn violating_clients(&self, n: usize) -> Vec<ClientId> {
        let mut all: Vec<ClientId> = lock(&self.violators).iter().copied().collect();
        all.sort_unstable();
        all.truncate(n);
        all
    }

    /// Per rule id: the seconds since the run's start with violations, and how many, in order.
    pub fn violations_per_second(&self) -> BTreeMap<String, Vec<(u64, u64)>> {
        lock(&self.per_second)
            .iter()
            .map(|(rule, seconds)| {
                (
                    rule.clone(),
                    seconds.iter().map(|(s, n)| (*s, *n)).collect(),
                )
            })
            .collect()
    }

    /// The tallies by rule id.
    pub fn tallies(&self) -> BTreeMap<String, RuleTally> {
        lock(&self.tallies).clone()
    }

    /// Per rule id: its level and count so far, without the examples (the live endpoint reads
    /// it every second).
    pub fn rule_counts(&self) -> Vec<(String, Option<Level>, u64)> {
        lock(&self.tallies)
            .iter()
            .map(|(rule, t)| (rule.clone(), t.level, t.count))
            .collect()
    }

    /// The client sent a join for `room`.
    pub fn join_sent(&self, client: ClientId, room: RoomKey, at: Micros) {
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        // A rejoin while still a member keeps the earlier confirmation.
        if r.members
            .iter()
            .any(|m| m.client == client && m.left.is_none())
        {
            return;
        }
        // A delivery kept for the user less than a deadline ago may still be read by the server
        // after this login, and then go to this connection live instead (and be lost with it
        // if it closes): allowed in the next handover, no longer owed there.
        let since = at.saturating_sub(self.deadline);
        for s in r.stored.iter_mut().filter(|s| s.sent >= since) {
            s.maybe_live = true;
            s.live_to.get_or_insert((client, at));
        }
        // A new membership: what this client receives from now on may belong to it, so the
        // evidence against its earlier one is settled now, from what it had received so far.
        for i in 0..r.outstanding.len() {
            let Some(k) = r.outstanding[i]
                .conditional
                .iter()
                .position(|&c| c == client)
            else {
                continue;
            };
            let b = &r.outstanding[i];
            let later = r.outstanding.iter().any(|l| {
                l.sender == b.sender
                    && l.session == b.session
                    && l.sent > b.sent
                    && l.received.contains(&client)
            });
            let b = &mut r.outstanding[i];
            b.conditional.swap_remove(k);
            if later {
                b.skipped.push(client);
            }
        }
        r.members.push(Membership {
            client,
            join_sent: at,
            confirmed: None,
            assumed: false,
            left: None,
            excused_until: 0,
        });
    }

    /// The server confirmed the client's join (its reply arrived).
    pub fn join_confirmed(&self, client: ClientId, room: RoomKey, at: Micros) {
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        if let Some(m) = r
            .members
            .iter_mut()
            .find(|m| m.client == client && m.left.is_none())
        {
            m.confirmed.get_or_insert(at);
        }
    }

    /// The join's confirmation did not come by `at` (its deadline): the client is taken for a
    /// member from then on, as its request and the users file say, so that what the server
    /// broadcasts to the room is still judged. Its `missing` receipts say so.
    pub fn join_assumed(&self, client: ClientId, room: RoomKey, at: Micros) {
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        if let Some(m) = r
            .members
            .iter_mut()
            .find(|m| m.client == client && m.left.is_none() && m.confirmed.is_none())
        {
            m.confirmed = Some(at);
            m.assumed = true;
        }
    }

    /// The client left the room, closed, or faulted at `at`. Broadcasts still in their race
    /// window keep it as a conditional receiver: required only if it got a later one of the
    /// same sender (see the module docs).
    pub fn left(&self, client: ClientId, room: RoomKey, at: Micros) {
        let mut shard = self.shard(room);
        if let Some(r) = shard.get_mut(&room) {
            r.leave(client, at, None, false);
        }
    }

    /// The client asked to leave the room at `at` (a leave request on its connection). Like
    /// [`Oracle::left`], except that the broadcasts the client itself sent earlier stay owed
    /// to it: a server handles one connection's requests in order (the premise of error
    /// attribution and of the race-window evidence too), so it acted on each of them while
    /// the client was still a member. Without this, a client that leaves within the race
    /// window of its own sends was never owed its copy, and a server that relays none of a
    /// room's broadcasts gave no evidence against anybody: it passed.
    pub fn left_by_request(&self, client: ClientId, room: RoomKey, at: Micros) {
        let mut shard = self.shard(room);
        if let Some(r) = shard.get_mut(&room) {
            r.leave(client, at, None, true);
        }
    }

    /// The latest deadline among the broadcasts sent to `rooms` by `by` that `client` is
    /// required to receive and has not yet: a client ends its flow only after what is due to
    /// it has arrived or its deadline has passed.
    pub fn awaited(&self, client: ClientId, rooms: &[RoomKey], by: Micros) -> Option<Micros> {
        let mut latest = None;
        for &room in rooms {
            let shard = self.shard(room);
            let Some(r) = shard.get(&room) else {
                continue;
            };
            // An exactly-one delivery that somebody got is not awaited by the others.
            for b in r
                .outstanding
                .iter()
                .filter(|b| b.sent <= by && b.one.as_ref().is_none_or(|o| o.got.is_empty()))
            {
                if b.required.contains(&client) && !b.received.contains(&client) {
                    latest = latest.max(Some(b.due));
                }
            }
        }
        latest
    }

    /// When the fail-over of an exactly-one delivery that `client` may still be owed is over
    /// (see [`Oracle::notify_one_sent`]): its holder did not report back, so another member
    /// must get it by the holder's report window plus the deadline. Bounded by the report
    /// window, which the run was set up with, so it is not capped like [`Oracle::awaited`].
    pub fn awaited_takeover(&self, client: ClientId, rooms: &[RoomKey]) -> Option<Micros> {
        let mut latest = None;
        for &room in rooms {
            let shard = self.shard(room);
            let Some(r) = shard.get(&room) else {
                continue;
            };
            for b in &r.outstanding {
                let Some(one) = b.one.as_ref().filter(|o| !o.reported) else {
                    continue;
                };
                let Some(&(_, got_at)) = one.got.last() else {
                    continue;
                };
                if b.required.contains(&client) && !one.got.iter().any(|(c, _)| *c == client) {
                    latest = latest.max(Some(got_at + one.owed_by + self.deadline + 1));
                }
            }
        }
        latest
    }

    /// A broadcast that matches no registered send but whose sender sent hostile (lenient)
    /// input, which the server may relay as it is: allowed to any member of the room (in its
    /// window), a `non-member` fault for anyone else.
    pub fn relay_received(&self, receiver: ClientId, room: RoomKey, at: Micros) -> Receipt {
        let deadline = self.deadline;
        let shard = self.shard(room);
        let member = shard.get(&room).is_some_and(|r| {
            r.members.iter().any(|m| {
                m.client == receiver
                    && m.join_sent <= at
                    && m.left.is_none_or(|l| l + deadline >= at)
            })
        });
        if member {
            Receipt::Backlog
        } else {
            Receipt::Fault(
                Check::NonMember,
                "only members of the room receive what its members send".to_string(),
            )
        }
    }

    /// Whether `client` is a lenient (hostile) sender, whose relayed input matches no send.
    /// `client` broadcasts with HTTP requests (see `Oracle::unordered`).
    pub fn sends_unordered(&self, client: ClientId) {
        if let Some(u) = self.unordered.get(client as usize) {
            u.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_unordered(&self, client: ClientId) -> bool {
        self.unordered
            .get(client as usize)
            .is_some_and(|u| u.load(Ordering::Relaxed))
    }

    pub fn is_lenient(&self, client: ClientId) -> bool {
        self.lenient
            .get(client as usize)
            .is_some_and(|l| l.load(Ordering::Relaxed))
    }

    /// The client stops reading from `from` to `until`: it stays a member (it may receive), but
    /// is not required to receive what it could only read late (sent before `until` + deadline).
    pub fn excuse(&self, client: ClientId, room: RoomKey, from: Micros, until: Micros) {
        let mut shard = self.shard(room);
        let Some(r) = shard.get_mut(&room) else {
            return;
        };
        let excused_until = until + self.deadline;
        for m in r
            .members
            .iter_mut()
            .filter(|m| m.client == client && m.left.is_none())
        {
            m.excused_until = m.excused_until.max(excused_until);
        }
        for b in r.outstanding.iter_mut() {
            if from < b.due && !b.received.contains(&client) {
                b.required.retain(|&c| c != client);
            }
        }
    }

    /// The client sent a request that the server must broadcast to `room`. Returns false if
    /// the broadcast needs the sender to be a confirmed member and it is not (then the server
    /// may answer with an error instead, and nobody is required to get it).
    pub fn broadcast_sent(&self, send: Outgoing) -> bool {
        let mut shard = self.shard(send.room);
        let r = shard.entry(send.room).or_default();
        self.add_broadcast(r, send)
    }

    /// [`Oracle::broadcast_sent`] into a room whose shard the caller holds locked: what a
    /// caller then sets on the broadcast (`one`, `kick`) is set on this one, not on one that
    /// another client's request pushed behind it meanwhile (two departures of one room in the
    /// same instant: the 5,000-client run's false `missing`).
    fn add_broadcast(&self, r: &mut Room, send: Outgoing) -> bool {
        if send.seq.is_some() && send.value.is_some() {
            self.exact_payloads.store(true, Ordering::Relaxed);
        }
        let required: Vec<ClientId> = r
            .members
            .iter()
            .filter(|m| {
                m.left.is_none()
                    && m.confirmed.is_some_and(|c| c <= send.sent)
                    && m.excused_until <= send.sent
                    && (send.include_sender || m.client != send.sender)
            })
            .map(|m| m.client)
            .collect();
        let allowed = match send.unless {
            Precondition::None => true,
            Precondition::SenderIsMember => r.members.iter().any(|m| {
                m.client == send.sender
                    && m.left.is_none()
                    && m.confirmed.is_some_and(|c| c <= send.sent)
            }),
            Precondition::RecipientExists => !required.is_empty(),
            Precondition::Refused => false,
        };
        r.outstanding.push_back(Broadcast {
            event: send.event,
            sender: send.sender,
            session: send.session,
            seq: send.seq,
            value: send.value,
            intended: send.intended,
            sent: send.sent,
            due: send.sent + send.deadline.unwrap_or(self.deadline),
            // A notice with its own deadline is sent when the server notices the cause, so any
            // leave before that deadline may come first; a request's broadcast is ordered
            // against a leave sent `grace` later.
            excuse_until: match send.deadline {
                Some(d) => send.sent + d,
                None => send.sent + self.grace,
            },
            metric: send.metric,
            required: if allowed { required } else { Vec::new() },
            conditional: Vec::new(),
            skipped: Vec::new(),
            received: Vec::new(),
            one: None,
            kick: false,
            kept_via: None,
        });
        allowed
    }

    /// Like [`Oracle::broadcast_sent`], but exactly one member (other than the sender) must get
    /// it; if that member does not report back (see [`Oracle::reported`]) within `failover`,
    /// another one must (voice: one remaining member is told of a departure).
    pub fn notify_one_sent(&self, send: Outgoing, failover: ReportWindow) -> bool {
        let room = send.room;
        let deadline = self.deadline;
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        let allowed = self.add_broadcast(
            r,
            Outgoing {
                include_sender: false,
                ..send
            },
        );
        let maybe_unseen = r.outstanding.back().is_some_and(|b| {
            r.members.iter().any(|m| {
                m.client != b.sender
                    && m.left
                        .is_some_and(|l| l <= b.sent && l + deadline >= b.sent)
            })
        });
        if let Some(b) = r.outstanding.back_mut() {
            b.one = Some(OneMember {
                failover: failover.window,
                owed_by: failover.owed_by,
                got: Vec::new(),
                reported: false,
                holder_left: None,
                maybe_unseen,
                suspect: None,
            });
            // The holder's report time and the fail-over's deadline come after the first
            // deadline: the send stays in the model until both have passed.
            b.excuse_until = b.excuse_until.max(b.sent);
        }
        allowed
    }

    /// `client` reported back on the `event` it got in `room` (see
    /// [`Oracle::notify_one_sent`]): nobody else may get it now. `about` is the sender the
    /// report names (voice: the departed user's id), `Some(None)` when it names nobody the run
    /// knows; without it, the newest notice the client holds unreported. A client may hold
    /// several departures of one room at once (fail-overs land on the same member), so a
    /// report settles only the one it names, never one already reported.
    pub fn reported(
        &self,
        client: ClientId,
        room: RoomKey,
        event: &str,
        about: Option<Option<ClientId>>,
    ) {
        let mut shard = self.shard(room);
        let Some(r) = shard.get_mut(&room) else {
            return;
        };
        let named = |b: &Broadcast| about.is_none_or(|a| a == Some(b.sender));
        let mut duplicate = None;
        for b in r.outstanding.iter_mut().rev().filter(|b| b.event == event) {
            if !named(b) {
                continue;
            }
            if let Some(one) = b.one.as_mut() {
                if !one.reported && one.got.last().is_some_and(|&(c, _)| c == client) {
                    one.reported = true;
                    // The holder was live after all: the member told meanwhile had one too many.
                    duplicate = one.suspect.take().map(|s| (s, b.sender, b.event));
                    break;
                }
                if let Some(s) = one.suspect.as_mut().filter(|s| s.client == client) {
                    s.reported = true;
                    break;
                }
            }
        }
        drop(shard);
        if let Some((s, sender, event)) = duplicate {
            self.told_twice(&s, event, sender, client);
        }
    }

    /// The server closed `client`'s connection at `at` (as its client saw it): if it held an
    /// exactly-one delivery of `room` that another member got within a deadline before, the
    /// server may have failed over the moment it dropped it: that member holds it now.
    pub fn dropped_by_server(&self, client: ClientId, room: RoomKey, at: Micros) {
        let deadline = self.deadline;
        let mut shard = self.shard(room);
        let Some(r) = shard.get_mut(&room) else {
            return;
        };
        for b in r.outstanding.iter_mut() {
            let Some(one) = b.one.as_mut() else {
                continue;
            };
            if one.reported || one.got.last().is_none_or(|&(c, _)| c != client) {
                continue;
            }
            if let Some(s) = one.suspect.take_if(|s| at <= s.at + deadline) {
                one.got.push((s.client, s.at));
                one.reported = s.reported;
                one.holder_left = None;
            }
        }
    }

    /// Records a member told of an exactly-one delivery while `holder` still held it.
    fn told_twice(&self, s: &Suspect, event: &str, sender: ClientId, holder: ClientId) {
        self.violate(
            s.client,
            event,
            Check::Duplicate,
            s.at,
            format!(
                "exactly one member at a time: client {holder} held the {event} of client {sender} ({}), had time to report it back and was not dropped by the server",
                self.usernames[sender as usize]
            ),
            format!("the {event} at {:.3} ms", s.at as f64 / 1e3),
        );
    }

    /// The client's request makes the server move every *other* current connection out of
    /// `send.room`, telling each with `send.event` (push: a `loginWhenLast` login kicks the
    /// earlier connections). Returns the clients that must be told; from `send.sent` on they
    /// are no longer members (what was in flight to them may or may not arrive).
    pub fn kick_sent(&self, send: Outgoing) -> Vec<ClientId> {
        let room = send.room;
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        self.add_broadcast(
            r,
            Outgoing {
                include_sender: false,
                unless: Precondition::None,
                ..send
            },
        );
        let last = r.outstanding.len() - 1;
        r.outstanding[last].kick = true;
        let kicked = r.outstanding[last].required.clone();
        let at = r.outstanding[last].sent;
        for &c in &kicked {
            r.leave(c, at, Some(last), false);
        }
        // A connection whose own login is still unanswered may have been in the room when
        // the server took this one (a storm of logins): it may be kicked, never must.
        let in_flight: Vec<ClientId> = r
            .members
            .iter()
            .filter(|m| {
                m.left.is_none()
                    && m.client != send.sender
                    && m.confirmed.is_none_or(|c| c > at)
                    && !kicked.contains(&m.client)
            })
            .map(|m| m.client)
            .collect();
        r.outstanding[last].conditional.extend(in_flight);
        kicked
    }

    /// A kick arrived at `receiver`, naming one of `rooms` (or, when the payload names none,
    /// any room the receiver is in): matched to the oldest kick it is owed there. Returns the
    /// receipt and the room it is out of.
    pub fn kick_received(
        &self,
        receiver: ClientId,
        rooms: &[RoomKey],
        event: &str,
        at: Micros,
    ) -> (Receipt, Option<RoomKey>) {
        for &room in rooms {
            let mut shard = self.shard(room);
            let Some(r) = shard.get_mut(&room) else {
                continue;
            };
            let unanswered = |b: &Broadcast| {
                b.kick && b.event == event && b.sent <= at && !b.received.contains(&receiver)
            };
            // The oldest kick it was owed; failing that, one sent while its own login may have
            // been in the room already (sent before that kick, answered after it was sent):
            // the server may have taken the logins in either order.
            let Some(index) = r
                .outstanding
                .iter()
                .position(|b| {
                    unanswered(b)
                        && (b.required.contains(&receiver) || b.conditional.contains(&receiver))
                })
                .or_else(|| {
                    r.outstanding.iter().position(|b| {
                        unanswered(b)
                            && b.sender != receiver
                            && r.maybe_member(receiver, b.sent, self.deadline)
                    })
                })
            else {
                continue;
            };
            let b = &mut r.outstanding[index];
            let required = b.required.contains(&receiver);
            b.received.push(receiver);
            let matched = Matched {
                intended: b.intended,
                sent: b.sent,
                late: at > b.due,
                metric: b.metric,
            };
            if !required {
                // It was in the room after all, and is out of it since this kick: later kicks
                // no longer owe it anything.
                let kick_sent = b.sent;
                r.leave(receiver, kick_sent, Some(index), false);
            }
            let receipt = if required {
                Receipt::Delivered(matched)
            } else {
                Receipt::Allowed(matched)
            };
            return (receipt, Some(room));
        }
        (
            Receipt::Fault(
                Check::NonMember,
                "a kick only to a connection that another login moved out of its room".to_string(),
            ),
            None,
        )
    }

    /// A broadcast to a user's own room that the server must keep when none of the user's
    /// connections is online, and hand over once in the reply `via` of the user's next
    /// session (chat: a friend message to an offline user comes in `saoff`).
    pub fn deferrable_sent(&self, send: Outgoing, via: &'static str) -> bool {
        let (room, sender, seq, event, at) =
            (send.room, send.sender, send.seq, send.event, send.sent);
        let allowed = self.broadcast_sent(send);
        let Some(seq) = seq else {
            return allowed;
        };
        // Held while it is stored, so a restart that begins meanwhile marks it (see
        // [`restart`]).
        let restarts = self.restarts.read().unwrap_or_else(|e| e.into_inner());
        let maybe_lost = restart::may_lose(&restarts, at, self.deadline);
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        let this = r
            .outstanding
            .iter_mut()
            .rev()
            .find(|b| b.sender == sender && b.seq == Some(seq) && b.event == event);
        let required = match this {
            Some(b) => {
                b.kept_via = Some(via);
                !b.required.is_empty()
            }
            None => false,
        };
        if allowed && !required {
            let maybe_live = r
                .members
                .iter()
                .any(|m| r.maybe_member(m.client, at, self.deadline));
            r.stored.push(Stored {
                event,
                via,
                sender,
                seq,
                sent: at,
                maybe_live,
                maybe_lost,
                live_to: None,
                live_by: None,
            });
        }
        allowed
    }

    /// The reply `via` handed the kept deliveries `items` (sender, seq) of a user's room to
    /// one of its connections, in a session that began at `session_began` (`handed` gets the send time of each
    /// item handed over). Returns the faults: an item not kept (or handed over before) and,
    /// when the reply is `complete` (its lists are empty: the server says nothing more is
    /// kept), every item kept before the session began and not handed over yet. A non-empty
    /// reply may be one part of a backlog the server splits (several replies to one request,
    /// or one per request): what it leaves out is owed by a later one.
    pub fn deferred_received(
        &self,
        room: RoomKey,
        via: &str,
        items: &[(ClientId, u64)],
        (receiver, session_began): (ClientId, Micros),
        complete: bool,
        handed: &mut Vec<Micros>,
    ) -> Vec<(Check, String)> {
        let mut faults = Vec::new();
        let mut shard = self.shard(room);
        let r = shard.entry(room).or_default();
        for &(sender, seq) in items {
            if let Some(i) = r
                .stored
                .iter()
                .position(|s| s.via == via && s.sender == sender && s.seq == seq)
            {
                handed.push(r.stored.swap_remove(i).sent);
                r.handed_over.push((sender, seq));
            } else if r.handed_over.contains(&(sender, seq))
                || r.outstanding
                    .iter()
                    .any(|b| b.sender == sender && b.seq == Some(seq) && !b.received.is_empty())
            {
                faults.push((
                    Check::Duplicate,
                    format!("a kept delivery handed over once: message {seq} of client {sender} was delivered before"),
                ));
            } else {
                faults.push((
                    Check::Unknown,
                    format!("only deliveries kept for this user: message {seq} of client {sender} was never kept"),
                ));
            }
        }
        if !complete {
            return faults;
        }
        // One that may still come live on this very connection: owed there, by its deadline.
        for s in r.stored.iter_mut() {
            if s.via == via
                && !s.maybe_lost
                && s.live_to
                    .is_some_and(|(c, joined)| c == receiver && joined >= session_began)
            {
                s.live_by.get_or_insert(s.sent + 2 * self.deadline);
            }
        }
        let owed: Vec<usize> = (0..r.stored.len())
            .filter(|&i| {
                r.stored[i].via == via
                    && r.stored[i].sent < session_began
                    && !r.stored[i].maybe_live
                    && !r.stored[i].maybe_lost
            })
            .collect();
        for &i in owed.iter().rev() {
            let s = r.stored.swap_remove(i);
            faults.push((
                Check::Missing,
                format!(
                    "the {} that client {} sent at {:.3} ms while this user was offline, kept and handed over in this {via}",
                    s.event, s.sender, s.sent as f64 / 1e3
                ),
            ));
        }
        faults
    }

    /// Whether some content broadcast must arrive exactly as sent (see
    /// [`Oracle::broadcast_received`]).
    /// The report window the run's server was set up with (voice: the time `exit_room_report`
    /// has before the server tells another member), overriding the dialect's default.
    pub fn set_report_window(&self, window: Micros) {
        self.report_window.store(window, Ordering::Relaxed);
    }

    /// Nobody stated the server's report window: see [`ReportWindow`].
    pub fn set_report_window_unstated(&self) {
        self.report_window_unstated.store(true, Ordering::Relaxed);
    }

    /// The report window: the one set for the run, else `default` (the dialect's); when it
    /// is unstated, a fail-over is owed only after the longest window roomrig allows.
    pub fn report_window(&self, default: Micros) -> ReportWindow {
        let window = match self.report_window.load(Ordering::Relaxed) {
            0 => default,
            set => set,
        };
        ReportWindow {
            window,
            owed_by: if self.report_window_unstated.load(Ordering::Relaxed) {
                window.max(LONGEST_UNSTATED_REPORT_WINDOW)
            } else {
                window
            },
        }
    }

    pub fn exact_payloads(&self) -> bool {
        self.exact_payloads.load(Ordering::Relaxed)
    }

    /// A broadcast arrived at `receiver`, attributed to `sender` by content `seq` or FIFO `value`.
    /// With a `seq`, `value` is the whole received payload, and a send that carries a value
    /// must have arrived equal to it (JSON-equal: nothing added, dropped or changed).
    #[allow(clippy::too_many_arguments)]
    pub fn broadcast_received(
        &self,
        receiver: ClientId,
        room: RoomKey,
        event: &'static str,
        sender: ClientId,
        seq: Option<u64>,
        value: Option<&Value>,
        at: Micros,
    ) -> Receipt {
        let deadline = self.deadline;
        let mut shard = self.shard(room);
        let Some(r) = shard.get_mut(&room) else {
            return Receipt::Fault(
                Check::NonMember,
                format!(
                    "no delivery: this client was never in {}",
                    self.room_label(room)
                ),
            );
        };
        let may_receive = |b: &Broadcast| {
            b.required.contains(&receiver)
                || b.conditional.contains(&receiver)
                || r.members.iter().any(|m| {
                    m.client == receiver
                        && m.join_sent <= b.sent + deadline
                        && m.left.is_none_or(|l| l + deadline >= b.sent)
                })
        };
        // Cheap integer comparisons first: this scan runs for every receipt.
        let same_send = |b: &Broadcast| {
            b.sender == sender && (std::ptr::eq(b.event, event) || b.event == event)
        };
        let found = match seq {
            // A (sender, seq, event) is sent once per room, and a receipt usually follows its
            // send closely: search from the newest.
            Some(seq) => r
                .outstanding
                .iter()
                .rposition(|b| b.seq == Some(seq) && same_send(b)),
            // FIFO: the oldest matching send this receiver was required to get (and that was
            // sent before this receipt); failing that, the oldest it was allowed to get. A
            // send the receiver was only allowed to get (it joined meanwhile) may never come,
            // so it must not absorb the receipt of a later required one.
            None => {
                let candidate = |b: &Broadcast| {
                    same_send(b)
                        && b.seq.is_none()
                        && b.value.as_ref() == value
                        && b.sent <= at
                        && !b.received.contains(&receiver)
                };
                // An exactly-one send whose holder reported back (or still has time to) is
                // settled: a later departure of the same sender is told to someone else.
                let open = |b: &Broadcast| {
                    b.one.as_ref().is_none_or(|o| {
                        !o.reported && o.got.last().is_none_or(|&(_, t)| at >= t + o.failover)
                    })
                };
                r.outstanding
                    .iter()
                    .position(|b| candidate(b) && open(b) && b.required.contains(&receiver))
                    .or_else(|| {
                        r.outstanding
                            .iter()
                            .position(|b| candidate(b) && b.required.contains(&receiver))
                    })
                    .or_else(|| {
                        r.outstanding
                            .iter()
                            .position(|b| candidate(b) && may_receive(b))
                    })
            }
        };
        // No FIFO match for this receiver, but the send exists: it had it already (a
        // duplicate), or it was never entitled to it (a non-member).
        if found.is_none() && seq.is_none() {
            let mut sends = r.outstanding.iter().filter(|b| {
                same_send(b) && b.seq.is_none() && b.value.as_ref() == value && b.sent <= at
            });
            if let Some(b) = sends.next() {
                let had_it =
                    b.received.contains(&receiver) || sends.any(|b| b.received.contains(&receiver));
                return if had_it {
                    Receipt::Fault(
                        Check::Duplicate,
                        "each broadcast exactly once per member".to_string(),
                    )
                } else {
                    Receipt::Fault(
                        Check::NonMember,
                        format!(
                            "only members of {} receive its {event}",
                            self.room_label(room)
                        ),
                    )
                };
            }
        }
        let Some(i) = found else {
            // A reader that stalled may read its backlog after the broadcasts were forgotten.
            let recovering = r.members.iter().any(|m| {
                m.client == receiver && m.excused_until + 2 * deadline >= at && m.excused_until > 0
            });
            if recovering {
                return Receipt::Backlog;
            }
            return Receipt::Fault(
                Check::Unknown,
                format!(
                    "a {event} that client {sender} ({}) sent to {}, still in flight",
                    self.usernames[sender as usize],
                    self.room_label(room)
                ),
            );
        };
        let b = &r.outstanding[i];
        if b.received.contains(&receiver) {
            return Receipt::Fault(
                Check::Duplicate,
                "each broadcast exactly once per member".to_string(),
            );
        }
        let required = b.required.contains(&receiver);
        if !required && !may_receive(b) {
            return Receipt::Fault(
                Check::NonMember,
                format!(
                    "only members of {} receive its broadcasts",
                    self.room_label(room)
                ),
            );
        }
        let b = &mut r.outstanding[i];
        // A first tell nobody was seen to get, which a leaving member may have had unseen:
        // this one may be the fail-over, due by that tell's report time and a deadline.
        let mut due = match &b.one {
            Some(one) if one.got.is_empty() => one
                .takeover(b, deadline)
                .map_or(b.due, |t| (t + deadline).max(b.due)),
            _ => b.due,
        };
        if let Some(one) = b.one.as_mut() {
            if let Some(&(holder, got_at)) = one.got.last() {
                // A holder whose connection ended can never report: the server may pass the
                // notice on as soon as it sees that, before the report window runs out. The
                // window runs from when the server told the holder, which its receipt follows
                // by up to a deadline: only a tell more than a deadline early is certain.
                let takeover = got_at + one.failover;
                let earliest = one.holder_left.map_or(takeover, |l| l.min(takeover));
                if one.reported || at + deadline < earliest {
                    b.received.push(receiver);
                    if !one.reported && one.holder_left.is_none() && one.suspect.is_none() {
                        one.suspect = Some(Suspect {
                            client: receiver,
                            at,
                            reported: false,
                        });
                        return Receipt::Allowed(Matched {
                            intended: b.intended,
                            sent: b.sent,
                            late: false,
                            metric: b.metric,
                        });
                    }
                    // It has it now, too many: it is owed no fail-over.
                    return Receipt::Fault(
                        Check::Duplicate,
                        format!(
                            "exactly one member at a time: client {holder} got it at {:.3} ms and {}",
                            got_at as f64 / 1e3,
                            if one.reported {
                                "reported back".to_string()
                            } else {
                                format!("had until {:.3} ms to report back", takeover as f64 / 1e3)
                            }
                        ),
                    );
                }
                due = takeover + deadline;
            }
            one.got.push((receiver, at));
            one.holder_left = None;
        }
        b.received.push(receiver);
        if let (Some(_), Some(expected), Some(got)) = (seq, b.value.as_ref(), value) {
            if expected != got {
                return Receipt::Fault(
                    Check::Shape,
                    format!(
                        "the payload exactly as sent: {}",
                        crate::oracle::shape::excerpt(expected)
                    ),
                );
            }
        }
        let matched = Matched {
            intended: b.intended,
            sent: b.sent,
            late: at > due,
            metric: b.metric,
        };
        // A kept delivery that reached a connection of the user live is owed no more.
        if let Some(seq) = b.seq {
            let sender = b.sender;
            if let Some(k) = r
                .stored
                .iter()
                .position(|s| s.sender == sender && s.seq == seq)
            {
                r.stored.swap_remove(k);
                r.handed_over.push((sender, seq));
            }
        }
        if required {
            Receipt::Delivered(matched)
        } else {
            Receipt::Allowed(matched)
        }
    }

    /// Forgets broadcasts older than twice the deadline, returning the deliveries they missed.
    /// `now = Micros::MAX` flushes everything (end of run).
    pub fn sweep(&self, now: Micros) -> Vec<MissingDelivery> {
        let horizon = 2 * self.deadline;
        let mut missing = Vec::new();
        // Second members told while the holder was never seen dropped (see [`Suspect`]):
        // recorded as duplicates once the room locks are released.
        let mut duplicates = Vec::new();
        for shard in self.rooms.iter() {
            let mut shard = lock(shard);
            for r in shard.values_mut() {
                missing.extend(r.kept_not_live(now));
                while r
                    .outstanding
                    .front()
                    .is_some_and(|b| now == Micros::MAX || b.settles(self.deadline) < now)
                {
                    let b = r.outstanding.pop_front().expect("front exists");
                    if let Some(one) = &b.one {
                        if let (Some(s), Some(&(holder, _))) = (one.suspect, one.got.last()) {
                            duplicates.push((s, b.event, b.sender, holder));
                        }
                        missing.extend(one.missing(&b, &r.members, now, self.deadline));
                        continue;
                    }
                    let assumed = |c: ClientId| {
                        r.members
                            .iter()
                            .any(|m| m.client == c && m.assumed && m.left.is_none())
                    };
                    for &c in b.required.iter().filter(|c| !b.received.contains(c)) {
                        missing.push(MissingDelivery {
                            receiver: c,
                            event: b.event,
                            sender: b.sender,
                            sent: b.sent,
                            because: assumed(c).then_some(
                                "membership assumed from the join request and the users file: \
                                 the server never confirmed the join",
                            ),
                        });
                    }
                    // A member that left during the race window: missing only if a later
                    // broadcast of the same sender reached it (still queued behind this one;
                    // it has not joined again, so that was within the same membership).
                    let skipped = b.conditional.iter().filter(|&&c| {
                        r.outstanding.iter().any(|l| {
                            l.sender == b.sender
                                && l.session == b.session
                                && l.sent > b.sent
                                && l.received.contains(&c)
                        })
                    });
                    for &c in skipped
                        .chain(b.skipped.iter())
                        .filter(|c| !b.received.contains(c))
                    {
                        missing.push(MissingDelivery {
                            receiver: c,
                            event: b.event,
                            sender: b.sender,
                            sent: b.sent,
                            because: Some(
                                "it left while this was in flight, but a later broadcast of the \
                                 same sender reached it: the server skipped this one",
                            ),
                        });
                    }
                }
                r.members.retain(|m| {
                    m.left
                        .is_none_or(|l| now != Micros::MAX && l + horizon >= now)
                });
                // A room nobody is in and nothing is owed in gives its buffers back (a long run
                // visits many rooms). It stays in the map: a stray receipt there is judged as
                // before (`unknown`), not as in a room nobody was ever in.
                if r.is_idle() {
                    r.members.shrink_to_fit();
                    r.outstanding.shrink_to_fit();
                }
            }
        }
        for (s, event, sender, holder) in &duplicates {
            self.told_twice(s, event, *sender, *holder);
        }
        missing
    }

    /// `by`'s request at `sent` makes the user of `peer` owe `event` to `back` if it departs
    /// (see [`crate::dialect::Effect::PeerOnDeparture`]); a new one replaces `by`'s earlier one
    /// (one call at a time). `back: None`: `by` (the user of room `by_room`) ended its call with
    /// the user of `peer` itself, whichever side called: what any peer owes `by` for `event` is
    /// cancelled, and so is what `by`'s own departure would owe `peer` (see
    /// [`Oracle::ended_by`]).
    pub fn peer_owes(
        &self,
        by: ClientId,
        by_room: RoomKey,
        event: &'static str,
        peer: RoomKey,
        back: Option<RoomKey>,
        sent: Micros,
    ) {
        let mut dues = lock(&self.peer_dues);
        dues.retain(|d| !(d.by == by && d.event == event));
        let mut ended = lock(&self.ended);
        match back {
            Some(back) => {
                // A new call: an earlier one between the two that the peer ended is not this one.
                ended.retain(|e| !(e.by == peer && e.peer == back && e.event == event));
                dues.push(PeerDue {
                    peer,
                    event,
                    back,
                    by,
                    since: sent,
                });
            }
            None => {
                // The called member hung up: its departure no longer owes its caller.
                dues.retain(|d| !(d.peer == by_room && d.back == peer && d.event == event));
                ended.push(Ended {
                    by: by_room,
                    peer,
                    event,
                    at: sent,
                });
            }
        }
    }

    /// Whether the user of room `by` ended its call with the user of room `me` by its own
    /// request (`event`) sent at or before `at`: the departure of `me` at `at` then owes `by`
    /// nothing for that call (a server that took the request first has no call left to cut).
    pub fn ended_by(&self, by: RoomKey, me: RoomKey, event: &'static str, at: Micros) -> bool {
        lock(&self.ended)
            .iter()
            .any(|e| e.by == by && e.peer == me && e.event == event && e.at <= at)
    }

    /// `client` (the user of room `me`) departs at `at`: what it owes as a peer, each with
    /// whether it is required (the request that made it owed was due, so the server had acted
    /// on it) or only allowed; and what peers owed `client` is over (it is gone).
    pub fn peer_departed(
        &self,
        client: ClientId,
        me: RoomKey,
        at: Micros,
    ) -> Vec<(&'static str, RoomKey, bool)> {
        let deadline = self.deadline;
        let mut owed = Vec::new();
        lock(&self.ended).retain(|e| e.by != me && e.peer != me);
        lock(&self.peer_dues).retain(|d| {
            if d.peer == me && d.by != client {
                owed.push((d.event, d.back, d.since + deadline <= at));
                return false;
            }
            d.by != client
        });
        owed
    }

    /// Sweeps and records every missing delivery as a violation.
    pub fn sweep_and_report(&self, now: Micros) {
        for m in self.sweep(now) {
            self.violate(
                m.receiver,
                m.event,
                Check::Missing,
                m.sent + 2 * self.deadline,
                match m.because {
                    None => format!(
                        "the {} sent by client {} ({}) at {:.3} ms",
                        m.event,
                        m.sender,
                        self.usernames[m.sender as usize],
                        m.sent as f64 / 1e3
                    ),
                    Some(why) => format!(
                        "the {} sent by client {} ({}) at {:.3} ms ({why})",
                        m.event,
                        m.sender,
                        self.usernames[m.sender as usize],
                        m.sent as f64 / 1e3
                    ),
                },
                "nothing".to_string(),
            );
        }
    }
}

/// Locks a mutex, ignoring poisoning: a panicking client task must not hide the others' results.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle() -> Oracle {
        Oracle::new(
            "dorm",
            1000,
            1000,
            (0..4).map(|i| format!("user{i}")).collect(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn bs(
        o: &Oracle,
        sender: ClientId,
        room: RoomKey,
        event: &'static str,
        seq: Option<u64>,
        value: Option<Value>,
        at: Micros,
    ) -> bool {
        o.broadcast_sent(Outgoing {
            sender,
            session: 0,
            room,
            event,
            include_sender: true,
            unless: Precondition::SenderIsMember,
            seq,
            value,
            intended: at,
            sent: at,
            metric: "fanout",
            deadline: None,
        })
    }

    /// Departures of one room told while other clients' requests reach it at the same
    /// instant (other threads): each exit_room is an exactly-one delivery, whatever was pushed
    /// behind it meanwhile. (The 5,000-client run's false `missing`: the exactly-one state
    /// had been set on whichever broadcast was last by the time the room was locked again.)
    #[test]
    fn an_exactly_one_delivery_stays_one_under_concurrent_sends() {
        let o = oracle();
        confirmed(&o, &[0, 1, 2, 3]);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..2000 {
                    o.notify_one_sent(
                        Outgoing {
                            sender: 0,
                            session: 0,
                            room: 1,
                            event: "exit_room",
                            include_sender: false,
                            unless: Precondition::None,
                            seq: None,
                            value: None,
                            intended: 100 + i,
                            sent: 100 + i,
                            metric: "after-fault",
                            deadline: None,
                        },
                        ReportWindow {
                            window: 5000,
                            owed_by: 5000,
                        },
                    );
                }
            });
            for sender in 1..4 {
                let o = &o;
                s.spawn(move || {
                    for i in 0..2000 {
                        bs(o, sender, 1, "message", None, None, 100 + i);
                    }
                });
            }
        });
        let shard = o.shard(1);
        let r = &shard[&1];
        assert_eq!(r.outstanding.len(), 8000);
        for b in &r.outstanding {
            assert_eq!(b.one.is_some(), b.event == "exit_room", "{}", b.event);
        }
    }

    fn confirmed(o: &Oracle, clients: &[ClientId]) {
        for &c in clients {
            o.join_sent(c, 1, 0);
            o.join_confirmed(c, 1, 10);
        }
    }

    #[test]
    fn int_hash_spreads_the_keys_of_one_shard() {
        use std::hash::BuildHasher;
        let slots: std::collections::HashSet<u64> = (0..64u64)
            .map(|i| rustc_hash::FxBuildHasher.hash_one(i * SHARDS as u64 + 5) & 63)
            .collect();
        assert!(slots.len() > 32, "{} of 64 slots", slots.len());
    }

    #[test]
    fn every_member_must_receive_once() {
        let o = oracle();
        confirmed(&o, &[0, 1, 2]);
        assert!(bs(&o, 0, 1, "message", Some(1), None, 100));
        assert!(matches!(
            o.broadcast_received(1, 1, "message", 0, Some(1), None, 200),
            Receipt::Delivered(_)
        ));
        assert!(matches!(
            o.broadcast_received(1, 1, "message", 0, Some(1), None, 210),
            Receipt::Fault(Check::Duplicate, _)
        ));
        let missing = o.sweep(100 + 2001);
        let mut who: Vec<_> = missing.iter().map(|m| m.receiver).collect();
        who.sort();
        assert_eq!(who, vec![0, 2]);
    }

    #[test]
    fn non_member_is_caught_and_joiner_is_allowed() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 5000);
        o.join_sent(2, 1, 5500);
        assert!(matches!(
            o.broadcast_received(2, 1, "message", 0, Some(1), None, 5600),
            Receipt::Allowed(_)
        ));
        o.join_sent(3, 2, 0);
        assert!(matches!(
            o.broadcast_received(3, 1, "message", 0, Some(1), None, 5600),
            Receipt::Fault(Check::NonMember, _)
        ));
    }

    #[test]
    fn leaver_is_excused_and_fifo_matches_values() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        let a = Value::String("05".into());
        bs(&o, 0, 1, "action", None, Some(a.clone()), 100);
        o.left(1, 1, 300);
        assert!(matches!(
            o.broadcast_received(0, 1, "action", 0, None, Some(&a), 400),
            Receipt::Delivered(_)
        ));
        let again = o.broadcast_received(0, 1, "action", 0, None, Some(&a), 400);
        assert!(matches!(again, Receipt::Fault(Check::Duplicate, _)));
        let other = Value::String("06".into());
        let unknown = o.broadcast_received(0, 1, "action", 0, None, Some(&other), 400);
        assert!(matches!(unknown, Receipt::Fault(Check::Unknown, _)));
        assert!(o.sweep(Micros::MAX).is_empty());
    }

    /// A send the receiver was only allowed to get (it joined meanwhile) must not absorb the
    /// receipt of a later send it was required to get.
    #[test]
    fn fifo_prefers_the_required_send() {
        let o = oracle();
        confirmed(&o, &[0]);
        let a = Value::String("05".into());
        o.join_sent(1, 1, 90);
        bs(&o, 0, 1, "action", None, Some(a.clone()), 100);
        o.join_confirmed(1, 1, 150);
        bs(&o, 0, 1, "action", None, Some(a.clone()), 200);
        assert!(matches!(
            o.broadcast_received(1, 1, "action", 0, None, Some(&a), 210),
            Receipt::Delivered(Matched { sent: 200, .. })
        ));
        assert!(o.sweep(Micros::MAX).iter().all(|m| m.receiver != 1));
        // A client of another room receiving the room's FIFO broadcast is a non-member.
        let o = oracle();
        confirmed(&o, &[0]);
        o.join_sent(3, 2, 0);
        bs(&o, 0, 1, "action", None, Some(a.clone()), 100);
        assert!(matches!(
            o.broadcast_received(3, 1, "action", 0, None, Some(&a), 120),
            Receipt::Fault(Check::NonMember, _)
        ));
    }

    #[test]
    fn late_receipt_is_late() {
        let o = oracle();
        confirmed(&o, &[0]);
        bs(&o, 0, 1, "message", Some(9), None, 100);
        assert!(matches!(
            o.broadcast_received(0, 1, "message", 0, Some(9), None, 1500),
            Receipt::Delivered(Matched { late: true, .. })
        ));
    }

    /// A member that leaves while a broadcast is in flight (a slow server, a loaded machine)
    /// is not charged a `missing` for it: it may still have been on its way.
    #[test]
    fn leaver_in_the_race_window_is_not_missing_without_evidence() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        // Leaves 350 µs after the send, the deadline being 1000 µs: inside the window.
        o.left(1, 1, 450);
        let missing = o.sweep(Micros::MAX);
        assert!(
            missing.iter().all(|m| m.receiver != 1),
            "no evidence, no verdict"
        );
        assert!(
            missing.iter().any(|m| m.receiver == 0),
            "the sender stayed: missing"
        );
    }

    /// Near miss of the test above: a later broadcast of the same sender reached the leaver,
    /// so the server skipped the earlier one (it delivers one sender's broadcasts in order).
    #[test]
    fn leaver_that_got_a_later_broadcast_was_skipped() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        bs(&o, 0, 1, "message", Some(2), None, 200);
        assert!(matches!(
            o.broadcast_received(1, 1, "message", 0, Some(2), None, 300),
            Receipt::Delivered(_)
        ));
        o.left(1, 1, 400);
        let missing = o.sweep(Micros::MAX);
        let charged: Vec<_> = missing.iter().filter(|m| m.receiver == 1).collect();
        assert_eq!(charged.len(), 1);
        assert!(charged[0]
            .because
            .is_some_and(|b| b.contains("later broadcast")));
        // A member leaving after the window must have had it, evidence or not.
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        o.left(1, 1, 100 + 1000 + 1);
        assert!(o.sweep(Micros::MAX).iter().any(|m| m.receiver == 1));
    }

    /// A join whose reply never came is assumed from its request, so a server that sends no
    /// reply and drops broadcasts is still caught; the evidence says it was assumed.
    #[test]
    fn an_assumed_member_is_judged_and_says_so() {
        let o = oracle();
        confirmed(&o, &[0]);
        o.join_sent(1, 1, 0);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        assert!(o.sweep(Micros::MAX).iter().all(|m| m.receiver != 1));
        o.join_assumed(1, 1, 2000);
        bs(&o, 0, 1, "message", Some(2), None, 2100);
        let missing = o.sweep(Micros::MAX);
        let m = missing.iter().find(|m| m.receiver == 1).expect("judged");
        assert!(m.because.is_some_and(|b| b.contains("assumed")));
    }

    #[test]
    fn awaited_names_the_latest_deadline_of_what_is_due() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        bs(&o, 0, 1, "message", Some(2), None, 300);
        assert_eq!(o.awaited(1, &[1], 1000), Some(1300));
        // Sent after the flow ended: not waited for.
        assert_eq!(o.awaited(1, &[1], 200), Some(1100));
        o.broadcast_received(1, 1, "message", 0, Some(1), None, 400);
        o.broadcast_received(1, 1, "message", 0, Some(2), None, 400);
        assert_eq!(o.awaited(1, &[1], 1000), None);
    }

    /// Hostile input a lenient client sent may be relayed; only who receives it is judged.
    #[test]
    fn lenient_relay_is_allowed_to_members_only() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        o.join_sent(2, 2, 0);
        o.set_lenient(0);
        assert!(o.is_lenient(0) && !o.is_lenient(1));
        assert!(matches!(o.relay_received(1, 1, 500), Receipt::Backlog));
        assert!(matches!(
            o.relay_received(2, 1, 500),
            Receipt::Fault(Check::NonMember, _)
        ));
    }

    /// The soak's false alarm: a member that left while a broadcast was in flight and joined
    /// again may get the sender's later broadcasts in its new membership; that is no evidence
    /// against the old one. Evidence gathered before it asked to rejoin still counts.
    #[test]
    fn a_rejoin_ends_the_evidence_of_the_old_membership() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        o.left(1, 1, 300);
        o.join_sent(1, 1, 400);
        o.join_confirmed(1, 1, 500);
        bs(&o, 0, 1, "message", Some(2), None, 600);
        o.broadcast_received(1, 1, "message", 0, Some(2), None, 700);
        assert!(o.sweep(Micros::MAX).iter().all(|m| m.receiver != 1));
        // Near miss: the later one arrived before the rejoin was sent.
        let o = oracle();
        confirmed(&o, &[0, 1]);
        bs(&o, 0, 1, "message", Some(1), None, 100);
        bs(&o, 0, 1, "message", Some(2), None, 150);
        o.broadcast_received(1, 1, "message", 0, Some(2), None, 200);
        o.left(1, 1, 300);
        o.join_sent(1, 1, 400);
        let missing = o.sweep(Micros::MAX);
        assert_eq!(missing.iter().filter(|m| m.receiver == 1).count(), 1);
    }

    /// What two connections of one user caused is not ordered at the server: a later
    /// broadcast of the sender's next session is no evidence against an earlier one.
    #[test]
    fn evidence_comes_only_from_the_same_connection() {
        let o = oracle();
        confirmed(&o, &[0, 1]);
        let notice = |session, seq, at| Outgoing {
            sender: 0,
            session,
            room: 1,
            event: "message",
            include_sender: false,
            unless: Precondition::None,
            seq: Some(seq),
            value: None,
            intended: at,
            sent: at,
            metric: "fanout",
            deadline: None,
        };
        o.broadcast_sent(notice(1, 1, 100));
        o.broadcast_sent(notice(2, 2, 200));
        o.broadcast_received(1, 1, "message", 0, Some(2), None, 250);
        o.left(1, 1, 300);
        assert!(o.sweep(Micros::MAX).iter().all(|m| m.receiver != 1));
    }

    /// An example's transcript holds the events before the violation, a marker, and the
    /// client's next events (what the server did next), up to TRANSCRIPT_AFTER.
    #[test]
    fn example_transcript_goes_around_the_violation() {
        let o = oracle();
        for i in 0..3u64 {
            o.log(1, i * 10, "<<", "message", &serde_json::json!({ "n": i }));
        }
        o.violate(1, "message", Check::Missing, 35, "x".into(), "y".into());
        for i in 3..20u64 {
            o.log(1, i * 10, "<<", "message", &serde_json::json!({ "n": i }));
        }
        // Another client's events do not enter this example.
        o.log(
            2,
            500,
            "<<",
            "message",
            &serde_json::json!({ "other": true }),
        );
        let t = &o.tallies()["dorm/message/missing"].examples[0].transcript;
        assert_eq!(t.len(), 3 + 1 + TRANSCRIPT_AFTER as usize, "{t:#?}");
        assert!(t[3].contains("!! dorm/message/missing (MUST)"), "{t:#?}");
        assert!(
            t[2].contains(r#"{"n":2}"#) && t[4].contains(r#"{"n":3}"#),
            "{t:#?}"
        );
        assert!(t.last().unwrap().contains(r#"{"n":8}"#), "{t:#?}");
        assert!(t.iter().all(|l| !l.contains("other")));
    }

    /// Levels and sources come from the dialect's catalogue; a request's cap only lowers them,
    /// and a rule's tally shows its most severe level.
    #[test]
    fn levels_come_from_the_catalogue_and_caps_lower_them() {
        let o = Oracle::new("lobby", 1000, 1000, vec!["a".into(), "b".into()]);
        o.violate(
            0,
            "leaveRoom",
            Check::ReplyMissing,
            1,
            "e".into(),
            "r".into(),
        );
        let cap = Some(Cap {
            level: Level::Should,
            source: "reference-server decision: test",
        });
        o.violate_capped(
            0,
            "joinRoom",
            Check::ErrorContent,
            2,
            "e".into(),
            "r".into(),
            cap,
        );
        let t = o.tallies();
        assert_eq!(t["lobby/leaveRoom/reply-missing"].level, Some(Level::Info));
        assert!(t["lobby/leaveRoom/reply-missing"]
            .source
            .contains("leftRoom"));
        let content = &t["lobby/joinRoom/error-content"];
        assert_eq!(content.level, Some(Level::Should));
        assert_eq!(
            content.examples[0].source,
            "reference-server decision: test"
        );
        assert_eq!(o.must_count(), 0);
        // The same rule without a cap (a seed text): MUST, and the tally says so.
        o.violate(
            1,
            "joinRoom",
            Check::ErrorContent,
            3,
            "e".into(),
            "r".into(),
        );
        let content = &o.tallies()["lobby/joinRoom/error-content"];
        assert_eq!(content.level, Some(Level::Must));
        assert!(content.source.starts_with("seed 004"), "{}", content.source);
        assert_eq!(o.must_count(), 1);
    }

    /// Reports name rooms, never by their key.
    #[test]
    fn rooms_are_named_in_evidence() {
        let o = oracle();
        let room = crate::dialect::named_room("lobby-7");
        o.name_room(room, "lobby-7");
        o.join_sent(0, room, 0);
        o.join_confirmed(0, room, 1);
        bs(&o, 0, room, "message", Some(1), None, 100);
        let Receipt::Fault(Check::NonMember, why) =
            o.broadcast_received(3, room, "message", 0, Some(1), None, 150)
        else {
            panic!("a non-member")
        };
        assert!(why.contains("room \"lobby-7\""), "{why}");
        assert!(!why.contains(&room.to_string()), "{why}");
        let Receipt::Fault(_, why) = o.broadcast_received(3, 77, "message", 0, Some(1), None, 150)
        else {
            panic!("no such room")
        };
        assert!(!why.contains("18446744073709551615"), "{why}");
        assert_eq!(o.room_label(crate::dialect::EVERYONE), "every connection");
    }

    /// A request the server should refuse: nobody must receive it, a relay may reach the
    /// room's members (dorm: a non-member's message relayed to its room), nobody else.
    #[test]
    fn refused_request_relay_reaches_members_only() {
        let o = oracle();
        confirmed(&o, &[1, 2]);
        o.join_sent(3, 2, 0);
        let allowed = o.broadcast_sent(Outgoing {
            session: 0,
            sender: 0,
            room: 1,
            event: "message",
            include_sender: true,
            unless: Precondition::Refused,
            seq: Some(4),
            value: None,
            intended: 100,
            sent: 100,
            metric: "fanout",
            deadline: None,
        });
        assert!(!allowed);
        assert!(matches!(
            o.broadcast_received(1, 1, "message", 0, Some(4), None, 120),
            Receipt::Allowed(_)
        ));
        assert!(matches!(
            o.broadcast_received(3, 1, "message", 0, Some(4), None, 120),
            Receipt::Fault(Check::NonMember, _)
        ));
        assert!(o.sweep(Micros::MAX).is_empty(), "nobody was required");
    }
}
