//! Test-only fault switches: each one makes the reference server break exactly one rule, so the
//! conformance checker can be shown to catch it. All faults are deterministic (no randomness).
//!
//! Spec syntax (`--fault SPEC`, repeatable): `drop-broadcast=F`, `leak-to-non-member`,
//! `omit-time`, `error-on-wrong-event`, `duplicate-broadcast`, `never-timeout`, `early-timeout`,
//! `no-leave-notice`, `notify-non-member`, `reorder-broadcast`, `wrong-field-type`,
//! `crash-on-hostile-room-name`, `crash-on-number-room-name`, `socket-id-room`, `no-join-reply`, `accept-rejoin`,
//! `no-left-room`, `ignore-second-login`, `relay-non-member`, `seed-token-broadcast`,
//! `leak-to-first-room`, `keep-name-on-disconnect`, `keep-room-on-disconnect`,
//! `prototype-names-exist`, `chat-lose-offline`, `chat-offline-twice`, `chat-misdeliver`,
//! `chat-presence-every-connection`, `chat-accept-before-auth`, `chat-history-unordered`,
//! `voice-exit-to-everyone`, `voice-exit-to-nobody`, `voice-no-failover`,
//! `voice-sign-unchecked`, `voice-seat-kept`, `push-no-kick`, `push-kicked-still-receives`,
//! `push-alter-data`, `push-no-room-taken`, `push-wrong-http-code`, `push-wrong-return-code`,
//! `chat-volatile-store`, `voice-idle-never`, `voice-room-remembered`,
//! `voice-hang-up-caller-only`, `latency-above=RATE`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The pingTimeout a server with [`Fault::NeverTimeout`] runs with: one day.
pub const NEVER_TIMEOUT_PING_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// One deliberate misbehaviour of the reference server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Skip every round(1/F)-th room broadcast entirely (counted per room); F in 0..=1. dorm:
    /// `message` and `action`; lobby: `gotRoomMessage`.
    DropBroadcast(f64),
    /// Also send every room broadcast to one connected socket that is not a member of the room.
    LeakToNonMember,
    /// Room broadcasts lack their `time` field.
    OmitTime,
    /// Errors caused by an `action` request are emitted on the `message` event instead.
    ErrorOnWrongEvent,
    /// Every room broadcast is emitted twice.
    DuplicateBroadcast,
    /// Every dialect: a client that misses heartbeats is never closed (pingTimeout becomes one day;
    /// the OPEN packet still advertises the configured one).
    NeverTimeout,
    /// Every dialect: the OPEN packet advertises four times the pingTimeout the server enforces,
    /// so a client that misses heartbeats is closed before the advertised window.
    EarlyTimeout,
    /// lobby: on disconnect, the remaining members of the leaver's rooms get no `otherLeftRoom`.
    NoLeaveNotice,
    /// lobby: `otherJoinedRoom` also goes to one logged-in socket that is not in the room.
    NotifyNonMember,
    /// dorm: each sender's `message` broadcasts are delivered in swapped pairs (the 1st after
    /// the 2nd, the 3rd after the 4th, …; an odd last one is never sent).
    ReorderBroadcast,
    /// dorm: `message` broadcasts carry `time` as epoch milliseconds (a number) instead of a
    /// datetime string.
    WrongFieldType,
    /// lobby: the process exits (as a crash) when a client joins a room named `__proto__`,
    /// `constructor`, `toString` or after a connected socket's id. Only for a server in its own
    /// process (`roomrig serve`): embedded, it would take the driver down with it.
    CrashOnHostileRoomName,
    /// lobby: the process exits (as a crash) when `joinRoom`'s room name is a number (what a
    /// server calling a string method on the name does). Only for a server in its own process.
    CrashOnNumberRoomName,
    /// lobby: a room named after a connected socket's id may be joined, and its room messages
    /// also reach that socket (what `io.to(name)` does in socket.io).
    SocketIdRoom,
    /// dorm: `join_room` joins the room but never answers with `last_data`.
    NoJoinReply,
    /// lobby: a member joining its room again is answered `joinedRoom`, not `already in room`.
    AcceptRejoin,
    /// lobby: `leaveRoom` sends no `leftRoom` self-notice (as the public server's earlier
    /// version): not in the seed, so not a violation.
    NoLeftRoom,
    /// lobby: a second `login` on a logged-in socket is ignored, not refused: refusing it is
    /// the reference server's decision (SHOULD).
    IgnoreSecondLogin,
    /// dorm: `message` and `action` from a socket that has not joined (or has left) are
    /// relayed to the user's room, and such a `leave_room` is ignored, instead of refused (as
    /// the seed's own server does): the seed names no such error, so it is SHOULD.
    RelayNonMember,
    /// dorm: `message` broadcasts are the seed's `{token, message, time}` (no `user_id`):
    /// `user_id` is the reference server's decision, the token a SHOULD NOT.
    SeedTokenBroadcast,
    /// Every room broadcast is also copied to the members of the first room of the users
    /// file (dorm: its first room; lobby: the room named like it), as a server that keys
    /// rooms wrongly might: only a listener in that room sees it.
    LeakToFirstRoom,
    /// lobby: a disconnected user's name stays taken (a later login with it is refused
    /// `duplicate username`); `otherLogedout` is still sent.
    KeepNameOnDisconnect,
    /// lobby: a room emptied by its last member's disconnect is not removed, so it keeps the
    /// capacity its creator set.
    KeepRoomOnDisconnect,
    /// lobby: rooms and users named `__proto__`, `constructor` or `toString` count as existing,
    /// as in a JavaScript server that looks them up in a plain object: a room message, leave or
    /// private message to such a name is silently accepted instead of refused.
    PrototypeNamesExist,
    /// chat: a message that reaches none of the target's connections is not kept (lost).
    ChatLoseOffline,
    /// chat: kept messages are not deleted once handed over: every `saoff` repeats them.
    ChatOfflineTwice,
    /// chat: a friend message goes to the user with the next user id instead of its target.
    ChatMisdeliver,
    /// chat: `fonline` / `foffline` go out on every connection a user opens or closes, not only the first and last.
    ChatPresenceEveryConnection,
    /// chat: events before `auth-c` are acted on, as the user their `from` names (and a forged `from` is accepted).
    ChatAcceptBeforeAuth,
    /// chat: `shistory` lists the messages newest first.
    ChatHistoryUnordered,
    /// chat: the store is kept in memory whatever `--chat-db` says: a restart of the server
    /// loses every kept message.
    ChatVolatileStore,
    /// voice: a departure's `exit_room` goes to every remaining member, not exactly one.
    VoiceExitToEveryone,
    /// voice: a departure's `exit_room` goes to nobody.
    VoiceExitToNobody,
    /// voice: when the member told of a departure does not report it, nobody else is told.
    VoiceNoFailover,
    /// voice: frames are acted on whatever their `sign`.
    VoiceSignUnchecked,
    /// voice: a seat stays taken after its user goes `down` or departs.
    VoiceSeatKept,
    /// push: a `loginWhenLast` login sends no 2005 and leaves the earlier connections in the room.
    PushNoKick,
    /// push: the kicked connections get their 2005 but stay in the room (they still receive its pushes).
    PushKickedStillReceives,
    /// push: pushed `data` is not passed through untouched (a `pushedAt` field is added to an object, anything else is wrapped).
    PushAlterData,
    /// push: `loginWhenFirst` into an occupied room is accepted (2002) instead of refused with 2004.
    PushNoRoomTaken,
    /// push: a push answers HTTP 500 (its deliveries still happen).
    PushWrongHttpCode,
    /// push: a push answers HTTP 200 with `RETURN_CODE` "9999" (its deliveries still happen).
    PushWrongReturnCode,
    /// voice: the idle timer starts with a connection's first `ping`, so a client that sends
    /// nothing at all is never closed.
    VoiceIdleNever,
    /// voice: `users/me` of a departed user still names the room it was in.
    VoiceRoomRemembered,
    /// voice: only the caller's departure tells the other side `hang_up`; the called member's
    /// departure ends the call silently.
    VoiceHangUpCallerOnly,
    /// dorm: a server that slows down under load, for `roomrig capacity`'s test. While the
    /// deliveries the server was asked for over the last second exceed RATE per second, each
    /// room broadcast is held back by [`load_delay`] (50 ms per percent the rate is above
    /// RATE, at most 1 s), in the room's order. At or below RATE it is the
    /// healthy server.
    LatencyAbove(u64),
}

impl Fault {
    /// Whether the fault ends the process, so it cannot run inside the driver.
    pub fn kills_the_process(&self) -> bool {
        matches!(
            self,
            Fault::CrashOnHostileRoomName | Fault::CrashOnNumberRoomName
        )
    }
}

/// Why a `--fault` spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    #[error(
        "unknown fault {0:?} (known: drop-broadcast=F, leak-to-non-member, omit-time, \
         error-on-wrong-event, duplicate-broadcast, never-timeout, early-timeout, no-leave-notice, \
         notify-non-member, reorder-broadcast, wrong-field-type, crash-on-hostile-room-name, \
         crash-on-number-room-name, socket-id-room, no-join-reply, accept-rejoin, no-left-room, ignore-second-login, \
         relay-non-member, seed-token-broadcast, leak-to-first-room, keep-name-on-disconnect, \
         keep-room-on-disconnect, prototype-names-exist, chat-lose-offline, chat-offline-twice, \
         chat-misdeliver, chat-presence-every-connection, chat-accept-before-auth, \
         chat-history-unordered, voice-exit-to-everyone, voice-exit-to-nobody, \
         voice-no-failover, voice-sign-unchecked, voice-seat-kept, push-no-kick, \
         push-kicked-still-receives, push-alter-data, push-no-room-taken, push-wrong-http-code, \
         push-wrong-return-code, chat-volatile-store, voice-idle-never, voice-room-remembered, \
         voice-hang-up-caller-only, latency-above=RATE)"
    )]
    Unknown(String),
    #[error("fault {0} takes no value")]
    UnexpectedValue(String),
    #[error("fault drop-broadcast needs a fraction, as in drop-broadcast=0.2")]
    MissingValue,
    #[error("drop-broadcast fraction {0:?} is not a number between 0 and 1")]
    BadFraction(String),
    #[error("fault latency-above needs a rate of deliveries per second above 0, as in latency-above=1000 (got {0:?})")]
    BadRate(String),
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec, None),
        };
        let bare = |fault: Fault| match value {
            None => Ok(fault),
            Some(_) => Err(FaultParseError::UnexpectedValue(name.to_string())),
        };
        match name {
            "drop-broadcast" => {
                let v = value.ok_or(FaultParseError::MissingValue)?;
                let f: f64 = v
                    .parse()
                    .map_err(|_| FaultParseError::BadFraction(v.to_string()))?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(FaultParseError::BadFraction(v.to_string()));
                }
                Ok(Fault::DropBroadcast(f))
            }
            "leak-to-non-member" => bare(Fault::LeakToNonMember),
            "omit-time" => bare(Fault::OmitTime),
            "error-on-wrong-event" => bare(Fault::ErrorOnWrongEvent),
            "duplicate-broadcast" => bare(Fault::DuplicateBroadcast),
            "never-timeout" => bare(Fault::NeverTimeout),
            "early-timeout" => bare(Fault::EarlyTimeout),
            "no-leave-notice" => bare(Fault::NoLeaveNotice),
            "notify-non-member" => bare(Fault::NotifyNonMember),
            "reorder-broadcast" => bare(Fault::ReorderBroadcast),
            "wrong-field-type" => bare(Fault::WrongFieldType),
            "crash-on-hostile-room-name" => bare(Fault::CrashOnHostileRoomName),
            "crash-on-number-room-name" => bare(Fault::CrashOnNumberRoomName),
            "socket-id-room" => bare(Fault::SocketIdRoom),
            "no-join-reply" => bare(Fault::NoJoinReply),
            "accept-rejoin" => bare(Fault::AcceptRejoin),
            "no-left-room" => bare(Fault::NoLeftRoom),
            "ignore-second-login" => bare(Fault::IgnoreSecondLogin),
            "relay-non-member" => bare(Fault::RelayNonMember),
            "seed-token-broadcast" => bare(Fault::SeedTokenBroadcast),
            "leak-to-first-room" => bare(Fault::LeakToFirstRoom),
            "keep-name-on-disconnect" => bare(Fault::KeepNameOnDisconnect),
            "keep-room-on-disconnect" => bare(Fault::KeepRoomOnDisconnect),
            "prototype-names-exist" => bare(Fault::PrototypeNamesExist),
            "chat-lose-offline" => bare(Fault::ChatLoseOffline),
            "chat-offline-twice" => bare(Fault::ChatOfflineTwice),
            "chat-misdeliver" => bare(Fault::ChatMisdeliver),
            "chat-presence-every-connection" => bare(Fault::ChatPresenceEveryConnection),
            "chat-accept-before-auth" => bare(Fault::ChatAcceptBeforeAuth),
            "chat-history-unordered" => bare(Fault::ChatHistoryUnordered),
            "chat-volatile-store" => bare(Fault::ChatVolatileStore),
            "voice-exit-to-everyone" => bare(Fault::VoiceExitToEveryone),
            "voice-exit-to-nobody" => bare(Fault::VoiceExitToNobody),
            "voice-no-failover" => bare(Fault::VoiceNoFailover),
            "voice-sign-unchecked" => bare(Fault::VoiceSignUnchecked),
            "voice-seat-kept" => bare(Fault::VoiceSeatKept),
            "push-no-kick" => bare(Fault::PushNoKick),
            "push-kicked-still-receives" => bare(Fault::PushKickedStillReceives),
            "push-alter-data" => bare(Fault::PushAlterData),
            "push-no-room-taken" => bare(Fault::PushNoRoomTaken),
            "push-wrong-http-code" => bare(Fault::PushWrongHttpCode),
            "push-wrong-return-code" => bare(Fault::PushWrongReturnCode),
            "voice-idle-never" => bare(Fault::VoiceIdleNever),
            "voice-room-remembered" => bare(Fault::VoiceRoomRemembered),
            "voice-hang-up-caller-only" => bare(Fault::VoiceHangUpCallerOnly),
            "latency-above" => {
                let v = value.unwrap_or_default();
                match v.parse::<u64>() {
                    Ok(rate) if rate > 0 => Ok(Fault::LatencyAbove(rate)),
                    _ => Err(FaultParseError::BadRate(v.to_string())),
                }
            }
            _ => Err(FaultParseError::Unknown(spec.to_string())),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::DropBroadcast(x) => write!(f, "drop-broadcast={x}"),
            Fault::LeakToNonMember => f.write_str("leak-to-non-member"),
            Fault::OmitTime => f.write_str("omit-time"),
            Fault::ErrorOnWrongEvent => f.write_str("error-on-wrong-event"),
            Fault::DuplicateBroadcast => f.write_str("duplicate-broadcast"),
            Fault::NeverTimeout => f.write_str("never-timeout"),
            Fault::EarlyTimeout => f.write_str("early-timeout"),
            Fault::NoLeaveNotice => f.write_str("no-leave-notice"),
            Fault::NotifyNonMember => f.write_str("notify-non-member"),
            Fault::ReorderBroadcast => f.write_str("reorder-broadcast"),
            Fault::WrongFieldType => f.write_str("wrong-field-type"),
            Fault::CrashOnHostileRoomName => f.write_str("crash-on-hostile-room-name"),
            Fault::CrashOnNumberRoomName => f.write_str("crash-on-number-room-name"),
            Fault::SocketIdRoom => f.write_str("socket-id-room"),
            Fault::NoJoinReply => f.write_str("no-join-reply"),
            Fault::AcceptRejoin => f.write_str("accept-rejoin"),
            Fault::NoLeftRoom => f.write_str("no-left-room"),
            Fault::IgnoreSecondLogin => f.write_str("ignore-second-login"),
            Fault::RelayNonMember => f.write_str("relay-non-member"),
            Fault::SeedTokenBroadcast => f.write_str("seed-token-broadcast"),
            Fault::LeakToFirstRoom => f.write_str("leak-to-first-room"),
            Fault::KeepNameOnDisconnect => f.write_str("keep-name-on-disconnect"),
            Fault::KeepRoomOnDisconnect => f.write_str("keep-room-on-disconnect"),
            Fault::PrototypeNamesExist => f.write_str("prototype-names-exist"),
            Fault::ChatLoseOffline => f.write_str("chat-lose-offline"),
            Fault::ChatOfflineTwice => f.write_str("chat-offline-twice"),
            Fault::ChatMisdeliver => f.write_str("chat-misdeliver"),
            Fault::ChatPresenceEveryConnection => f.write_str("chat-presence-every-connection"),
            Fault::ChatAcceptBeforeAuth => f.write_str("chat-accept-before-auth"),
            Fault::ChatHistoryUnordered => f.write_str("chat-history-unordered"),
            Fault::ChatVolatileStore => f.write_str("chat-volatile-store"),
            Fault::VoiceExitToEveryone => f.write_str("voice-exit-to-everyone"),
            Fault::VoiceExitToNobody => f.write_str("voice-exit-to-nobody"),
            Fault::VoiceNoFailover => f.write_str("voice-no-failover"),
            Fault::VoiceSignUnchecked => f.write_str("voice-sign-unchecked"),
            Fault::VoiceSeatKept => f.write_str("voice-seat-kept"),
            Fault::PushNoKick => f.write_str("push-no-kick"),
            Fault::PushKickedStillReceives => f.write_str("push-kicked-still-receives"),
            Fault::PushAlterData => f.write_str("push-alter-data"),
            Fault::PushNoRoomTaken => f.write_str("push-no-room-taken"),
            Fault::PushWrongHttpCode => f.write_str("push-wrong-http-code"),
            Fault::PushWrongReturnCode => f.write_str("push-wrong-return-code"),
            Fault::VoiceIdleNever => f.write_str("voice-idle-never"),
            Fault::VoiceRoomRemembered => f.write_str("voice-room-remembered"),
            Fault::VoiceHangUpCallerOnly => f.write_str("voice-hang-up-caller-only"),
            Fault::LatencyAbove(rate) => write!(f, "latency-above={rate}"),
        }
    }
}

/// The faults of one server folded into flags, for cheap checks on the hot path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSet {
    /// Drop the n-th broadcast of a room when `n % period == 0`; `None` drops nothing.
    pub drop_period: Option<u64>,
    pub leak_to_non_member: bool,
    pub omit_time: bool,
    pub error_on_wrong_event: bool,
    pub duplicate_broadcast: bool,
    pub never_timeout: bool,
    pub early_timeout: bool,
    pub no_leave_notice: bool,
    pub notify_non_member: bool,
    pub reorder_broadcast: bool,
    pub wrong_field_type: bool,
    pub crash_on_hostile_room_name: bool,
    pub crash_on_number_room_name: bool,
    pub socket_id_room: bool,
    pub no_join_reply: bool,
    pub accept_rejoin: bool,
    pub no_left_room: bool,
    pub ignore_second_login: bool,
    pub relay_non_member: bool,
    pub seed_token_broadcast: bool,
    pub leak_to_first_room: bool,
    pub keep_name_on_disconnect: bool,
    pub keep_room_on_disconnect: bool,
    pub prototype_names_exist: bool,
    pub chat_lose_offline: bool,
    pub chat_offline_twice: bool,
    pub chat_misdeliver: bool,
    pub chat_presence_every_connection: bool,
    pub chat_accept_before_auth: bool,
    pub chat_history_unordered: bool,
    pub chat_volatile_store: bool,
    pub voice_exit_to_everyone: bool,
    pub voice_exit_to_nobody: bool,
    pub voice_no_failover: bool,
    pub voice_sign_unchecked: bool,
    pub voice_seat_kept: bool,
    pub push_no_kick: bool,
    pub push_kicked_still_receives: bool,
    pub push_alter_data: bool,
    pub push_no_room_taken: bool,
    pub push_wrong_http_code: bool,
    pub push_wrong_return_code: bool,
    pub voice_idle_never: bool,
    pub voice_room_remembered: bool,
    pub voice_hang_up_caller_only: bool,
    /// `latency-above=RATE`: deliveries per second above which broadcasts are delayed.
    pub latency_above: Option<u64>,
}

impl FaultSet {
    pub fn new(faults: &[Fault]) -> FaultSet {
        let mut set = FaultSet::default();
        for fault in faults {
            match *fault {
                Fault::DropBroadcast(f) => set.drop_period = drop_period(f),
                Fault::LeakToNonMember => set.leak_to_non_member = true,
                Fault::OmitTime => set.omit_time = true,
                Fault::ErrorOnWrongEvent => set.error_on_wrong_event = true,
                Fault::DuplicateBroadcast => set.duplicate_broadcast = true,
                Fault::NeverTimeout => set.never_timeout = true,
                Fault::EarlyTimeout => set.early_timeout = true,
                Fault::NoLeaveNotice => set.no_leave_notice = true,
                Fault::NotifyNonMember => set.notify_non_member = true,
                Fault::ReorderBroadcast => set.reorder_broadcast = true,
                Fault::WrongFieldType => set.wrong_field_type = true,
                Fault::CrashOnHostileRoomName => set.crash_on_hostile_room_name = true,
                Fault::CrashOnNumberRoomName => set.crash_on_number_room_name = true,
                Fault::SocketIdRoom => set.socket_id_room = true,
                Fault::NoJoinReply => set.no_join_reply = true,
                Fault::AcceptRejoin => set.accept_rejoin = true,
                Fault::NoLeftRoom => set.no_left_room = true,
                Fault::IgnoreSecondLogin => set.ignore_second_login = true,
                Fault::RelayNonMember => set.relay_non_member = true,
                Fault::SeedTokenBroadcast => set.seed_token_broadcast = true,
                Fault::LeakToFirstRoom => set.leak_to_first_room = true,
                Fault::KeepNameOnDisconnect => set.keep_name_on_disconnect = true,
                Fault::KeepRoomOnDisconnect => set.keep_room_on_disconnect = true,
                Fault::PrototypeNamesExist => set.prototype_names_exist = true,
                Fault::ChatLoseOffline => set.chat_lose_offline = true,
                Fault::ChatOfflineTwice => set.chat_offline_twice = true,
                Fault::ChatMisdeliver => set.chat_misdeliver = true,
                Fault::ChatPresenceEveryConnection => set.chat_presence_every_connection = true,
                Fault::ChatAcceptBeforeAuth => set.chat_accept_before_auth = true,
                Fault::ChatHistoryUnordered => set.chat_history_unordered = true,
                Fault::ChatVolatileStore => set.chat_volatile_store = true,
                Fault::VoiceExitToEveryone => set.voice_exit_to_everyone = true,
                Fault::VoiceExitToNobody => set.voice_exit_to_nobody = true,
                Fault::VoiceNoFailover => set.voice_no_failover = true,
                Fault::VoiceSignUnchecked => set.voice_sign_unchecked = true,
                Fault::VoiceSeatKept => set.voice_seat_kept = true,
                Fault::PushNoKick => set.push_no_kick = true,
                Fault::PushKickedStillReceives => set.push_kicked_still_receives = true,
                Fault::PushAlterData => set.push_alter_data = true,
                Fault::PushNoRoomTaken => set.push_no_room_taken = true,
                Fault::PushWrongHttpCode => set.push_wrong_http_code = true,
                Fault::PushWrongReturnCode => set.push_wrong_return_code = true,
                Fault::VoiceIdleNever => set.voice_idle_never = true,
                Fault::VoiceRoomRemembered => set.voice_room_remembered = true,
                Fault::VoiceHangUpCallerOnly => set.voice_hang_up_caller_only = true,
                Fault::LatencyAbove(rate) => set.latency_above = Some(rate),
            }
        }
        set
    }

    /// True when the `n`-th (1-based) broadcast of a room must be dropped.
    pub fn drops(&self, n: u64) -> bool {
        matches!(self.drop_period, Some(p) if n % p == 0)
    }
}

/// The delay of a broadcast under `latency-above=LIMIT` when the server was asked for `rate`
/// deliveries over the last second: none up to LIMIT, then 50 ms per percent over it (2 %
/// over: 100 ms; 10 % over: 500 ms), at most 1 s (below a scenario's usual 2 s deadline, so
/// the fault shows as latency, not as late or missing deliveries). Growing from zero, not
/// jumping, keeps a rate that wavers a little around LIMIT from reading as far over it.
pub fn load_delay(limit: u64, rate: u64) -> Duration {
    if rate <= limit {
        return Duration::ZERO;
    }
    let excess = (rate - limit) as f64 / limit as f64;
    Duration::from_secs_f64((5.0 * excess).min(1.0))
}

/// Deliveries asked of a server over the last second, for `latency-above`: a ring of
/// 100 ms slots; the rate is the sum of the ten slots before the current one (a whole second,
/// at most 100 ms old, so a steady rate reads as itself and not 10 % low).
#[derive(Debug)]
pub struct DeliveryRate {
    state: std::sync::Mutex<RateSlots>,
}

#[derive(Debug)]
struct RateSlots {
    epoch: std::time::Instant,
    /// The index (100 ms since `epoch`) of the slot counting now.
    current: u64,
    counts: [u64; 11],
}

impl Default for DeliveryRate {
    fn default() -> Self {
        DeliveryRate {
            state: std::sync::Mutex::new(RateSlots {
                epoch: std::time::Instant::now(),
                current: 0,
                counts: [0; 11],
            }),
        }
    }
}

impl DeliveryRate {
    /// Counts `n` deliveries asked for now; returns the rate over the last whole second.
    pub fn add(&self, n: u64) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = (s.epoch.elapsed().as_millis() / 100) as u64;
        Self::advance(&mut s, now);
        let slot = (now % 11) as usize;
        s.counts[slot] += n;
        s.counts.iter().sum::<u64>() - s.counts[slot]
    }

    /// Moves the ring to slot `now`, emptying the slots it passes.
    fn advance(s: &mut RateSlots, now: u64) {
        let from = s.current + 1;
        for i in from..=now.min(s.current + 11) {
            s.counts[(i % 11) as usize] = 0;
        }
        s.current = s.current.max(now);
    }
}

/// round(1/F): F = 0.2 drops every 5th broadcast, 0.5 every 2nd, 1 all of them, 0 none.
fn drop_period(fraction: f64) -> Option<u64> {
    if fraction.is_nan() || fraction <= 0.0 {
        return None;
    }
    // fraction <= 1, so the period is at least 1; clamp in case of rounding surprises.
    Some(((1.0 / fraction).round() as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        assert_eq!(
            "drop-broadcast=0.2".parse::<Fault>(),
            Ok(Fault::DropBroadcast(0.2))
        );
        assert_eq!("leak-to-non-member".parse(), Ok(Fault::LeakToNonMember));
        assert_eq!("omit-time".parse(), Ok(Fault::OmitTime));
        assert_eq!("error-on-wrong-event".parse(), Ok(Fault::ErrorOnWrongEvent));
        assert_eq!(
            " duplicate-broadcast ".parse(),
            Ok(Fault::DuplicateBroadcast)
        );
        assert_eq!("never-timeout".parse(), Ok(Fault::NeverTimeout));
        assert_eq!("no-leave-notice".parse(), Ok(Fault::NoLeaveNotice));
        assert_eq!("notify-non-member".parse(), Ok(Fault::NotifyNonMember));
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "drop-broadcast=0.25",
            "leak-to-non-member",
            "omit-time",
            "error-on-wrong-event",
            "duplicate-broadcast",
            "never-timeout",
            "early-timeout",
            "no-leave-notice",
            "notify-non-member",
            "reorder-broadcast",
            "wrong-field-type",
            "crash-on-hostile-room-name",
            "crash-on-number-room-name",
            "socket-id-room",
            "no-join-reply",
            "accept-rejoin",
            "no-left-room",
            "ignore-second-login",
            "relay-non-member",
            "seed-token-broadcast",
            "leak-to-first-room",
            "keep-name-on-disconnect",
            "keep-room-on-disconnect",
            "prototype-names-exist",
            "push-no-kick",
            "push-kicked-still-receives",
            "push-alter-data",
            "push-no-room-taken",
            "push-wrong-http-code",
            "push-wrong-return-code",
            "chat-volatile-store",
            "voice-idle-never",
            "voice-room-remembered",
            "voice-hang-up-caller-only",
            "latency-above=1500",
        ] {
            let fault: Fault = spec.parse().unwrap();
            assert_eq!(fault.to_string(), spec);
            assert_eq!(fault.to_string().parse::<Fault>().unwrap(), fault);
        }
    }

    #[test]
    fn rejects_bad_specs() {
        assert_eq!(
            "drop-broadcast".parse::<Fault>(),
            Err(FaultParseError::MissingValue)
        );
        for bad in [
            "drop-broadcast=1.5",
            "drop-broadcast=-0.1",
            "drop-broadcast=x",
        ] {
            assert!(
                matches!(bad.parse::<Fault>(), Err(FaultParseError::BadFraction(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "omit-time=1".parse::<Fault>(),
            Err(FaultParseError::UnexpectedValue(_))
        ));
        assert!(matches!(
            "explode".parse::<Fault>(),
            Err(FaultParseError::Unknown(_))
        ));
        assert!(matches!(
            "".parse::<Fault>(),
            Err(FaultParseError::Unknown(_))
        ));
    }

    #[test]
    fn latency_above_needs_a_positive_rate_and_grows_steeply_past_it() {
        assert_eq!(
            "latency-above=800".parse::<Fault>(),
            Ok(Fault::LatencyAbove(800))
        );
        for bad in ["latency-above", "latency-above=0", "latency-above=x"] {
            assert!(
                matches!(bad.parse::<Fault>(), Err(FaultParseError::BadRate(_))),
                "{bad}"
            );
        }
        assert_eq!(load_delay(1000, 1000), Duration::ZERO);
        assert_eq!(load_delay(1000, 1020), Duration::from_millis(100));
        assert_eq!(load_delay(1000, 1100), Duration::from_millis(500));
        assert_eq!(load_delay(1000, 5000), Duration::from_secs(1));
    }

    #[test]
    fn delivery_rate_counts_the_last_whole_second() {
        let meter = DeliveryRate::default();
        // Everything counted in the current slot is not yet part of the rate.
        assert_eq!(meter.add(5), 0);
        let mut s = meter.state.lock().unwrap();
        // Ten slots of 100 each, then the current one.
        for now in 1..=10 {
            DeliveryRate::advance(&mut s, now);
            s.counts[(now % 11) as usize] += 100;
        }
        DeliveryRate::advance(&mut s, 11);
        let sum =
            |s: &RateSlots| s.counts.iter().sum::<u64>() - s.counts[(s.current % 11) as usize];
        assert_eq!(sum(&s), 1000);
        // A long pause empties the ring.
        DeliveryRate::advance(&mut s, 100);
        assert_eq!(sum(&s), 0);
    }

    #[test]
    fn drop_period_is_round_one_over_f() {
        let period = |f| FaultSet::new(&[Fault::DropBroadcast(f)]).drop_period;
        assert_eq!(period(0.2), Some(5));
        assert_eq!(period(0.5), Some(2));
        assert_eq!(period(0.3), Some(3));
        assert_eq!(period(1.0), Some(1));
        assert_eq!(period(0.0), None);
        let set = FaultSet::new(&[Fault::DropBroadcast(0.5)]);
        let dropped = (1..=10).filter(|&n| set.drops(n)).count();
        assert_eq!(dropped, 5);
        assert!(!FaultSet::default().drops(1));
    }

    #[test]
    fn fault_set_folds_flags() {
        let set = FaultSet::new(&[Fault::OmitTime, Fault::DuplicateBroadcast]);
        assert!(set.omit_time && set.duplicate_broadcast);
        assert!(!set.leak_to_non_member && !set.error_on_wrong_event);
        assert_eq!(set.drop_period, None);
        assert!(!set.never_timeout && !set.no_leave_notice && !set.notify_non_member);
        let set = FaultSet::new(&[
            Fault::NeverTimeout,
            Fault::NoLeaveNotice,
            Fault::NotifyNonMember,
        ]);
        assert!(set.never_timeout && set.no_leave_notice && set.notify_non_member);
        assert!(!set.omit_time);
    }
}
