//! The delivery kinds of the dialects still to come (chat, push, voice), proven on the judge
//! with small synthetic tables before those dialects exist: code-discriminated replies and
//! errors on one event, events told apart by namespace, kicks of other connections,
//! HTTP-caused deliveries, exactly one member with fail-over, and deliveries kept for a user's
//! next session. No sockets, no clock: times are microseconds.

use std::collections::BTreeMap;

use super::{Client, CloseVerdict, Intent, Judge};
use crate::dialect::{
    content_id, named_room, user_room, Attribution, DialectSpec, Effect, ErrorStyle, EventSpec,
    OpContext, RoomOf, SenderKey, Wire,
};
use crate::metrics::Metrics;
use crate::oracle::json::Json;
use crate::oracle::shape::Ty;
use crate::oracle::{Micros, Oracle, RoomKey, LONGEST_UNSTATED_REPORT_WINDOW};
use crate::roster::{Roster, UserInfo};

const D: Micros = 100_000;
const ANY: Ty = Ty::Obj(&[]);

fn no_check(_: &str, _: &serde_json::Value, _: &OpContext) -> Result<(), String> {
    Ok(())
}

const fn event(
    name: &'static str,
    wire: Wire,
    attribution: Attribution,
    room: RoomOf,
) -> EventSpec {
    EventSpec {
        name,
        wire,
        shape: ANY,
        forbidden: &[],
        attribution,
        room,
    }
}

const fn table(
    name: &'static str,
    events: &'static [EventSpec],
    errors: ErrorStyle,
) -> DialectSpec {
    DialectSpec {
        name,
        events,
        ops: &[],
        errors,
        error_causes: &[],
        error_shape: ANY,
        check_reply: no_check,
        placed_in: None,
        departure: None,
        uses_everyone: false,
        rules: &[],
        seed_errors: None,
        doc: "",
    }
}

/// push: replies and errors all on `downmsg`, told apart by `code`; kicks; HTTP pushes.
static PUSH: DialectSpec = table(
    "push",
    &[
        event(
            "downmsg-2002",
            Wire::tagged("/", "downmsg", "code", "2002"),
            Attribution::Reply,
            RoomOf::Everyone,
        ),
        event(
            "downmsg-2005",
            Wire::tagged("/", "downmsg", "code", "2005"),
            Attribution::Kicked,
            RoomOf::Everyone,
        ),
        event(
            "news",
            Wire::SAME,
            Attribution::ContentId {
                field: "id",
                sender: SenderKey::UserId("from"),
            },
            RoomOf::Field("room"),
        ),
    ],
    ErrorStyle::Coded {
        event: "downmsg",
        field: "code",
        codes: &["2003", "2004"],
    },
);

/// voice: one remaining member is told of a departure and reports back.
static VOICE: DialectSpec = table(
    "voice",
    &[event(
        "exit_room",
        Wire::SAME,
        Attribution::SenderFifo {
            sender: SenderKey::UserId("user_id"),
            value_field: None,
        },
        RoomOf::Field("channel_name"),
    )],
    ErrorStyle::SameEvent { field: "error" },
);

/// chat: one event name in two namespaces; friend messages kept for an offline user and
/// handed over in `saoff`.
static CHAT: DialectSpec = table(
    "chat",
    &[
        event(
            "auth-s",
            Wire::SAME,
            Attribution::Reply,
            RoomOf::ReceiverUser,
        ),
        event(
            "receivefsmg",
            Wire::on("/friend"),
            Attribution::ContentId {
                field: "msg",
                sender: SenderKey::Username("from"),
            },
            RoomOf::ReceiverUser,
        ),
        event(
            "group-receivefsmg",
            Wire {
                namespace: "/group",
                event: Some("receivefsmg"),
                tag: None,
            },
            Attribution::ContentId {
                field: "msg",
                sender: SenderKey::Username("from"),
            },
            RoomOf::Field("to"),
        ),
        event(
            "saoff",
            Wire::on("/server"),
            Attribution::KeptReply {
                lists: &["flogs", "glogs"],
                content: "msg",
            },
            RoomOf::ReceiverUser,
        ),
    ],
    ErrorStyle::SameEvent { field: "error" },
);

/// A run of `n` users (user0.., user id i+1), with its room model.
struct World {
    oracle: Oracle,
    roster: Roster,
    metrics: Metrics,
    spec: &'static DialectSpec,
}

impl World {
    fn new(spec: &'static DialectSpec, n: u32) -> (World, Vec<Client>) {
        let users: Vec<UserInfo> = (0..n)
            .map(|i| UserInfo {
                user_id: u64::from(i) + 1,
                username: format!("user{i}"),
                token: format!("token{i}"),
                room: Some(1),
                room_size: n,
                roommate: (i + 1) % n,
            })
            .collect();
        let world = World {
            oracle: Oracle::new(
                spec.name,
                D,
                D,
                users.iter().map(|u| u.username.clone()).collect(),
            ),
            roster: Roster::new(users),
            metrics: Metrics::new(1),
            spec,
        };
        (world, (0..n).map(Client::new).collect())
    }

    fn judge(&self) -> Judge<'_> {
        Judge {
            oracle: &self.oracle,
            spec: self.spec,
            roster: &self.roster,
            metrics: &self.metrics,
        }
    }

    /// Rule id → count, after sweeping everything due by `now`.
    fn verdicts(&self, now: Micros) -> BTreeMap<String, u64> {
        self.oracle.sweep_and_report(now);
        self.oracle
            .tallies()
            .into_iter()
            .map(|(rule, t)| (rule, t.count))
            .collect()
    }

    fn recv(&self, c: &mut Client, namespace: &str, name: &str, payload: &str, at: Micros) {
        let json = Json::parse(payload).expect("test payload is JSON");
        self.judge().received(c, namespace, name, &json, at);
    }
}

fn only(rules: &[(&str, u64)]) -> BTreeMap<String, u64> {
    rules.iter().map(|&(r, n)| (r.to_string(), n)).collect()
}

/// Connects `c` at `at` and joins `room` (confirmed by `reply` at `at + 10`).
fn joined(w: &World, c: &mut Client, room: RoomKey, reply: (&str, &str), at: Micros) {
    let j = w.judge();
    j.connected(c, at);
    j.request(
        c,
        "join",
        vec![Effect::Join {
            room,
            name: format!("{room}"),
            reply: w
                .spec
                .events
                .iter()
                .find(|e| e.name == reply.0)
                .unwrap()
                .name,
        }],
        Intent::Valid,
        at,
        at,
    );
    let wire = w
        .spec
        .events
        .iter()
        .find(|e| e.name == reply.0)
        .unwrap()
        .wire;
    w.recv(
        c,
        wire.namespace,
        wire.event.unwrap_or(reply.0),
        reply.1,
        at + 10,
    );
}

// ---- push: code-discriminated replies and errors on one event ----

const LOGIN_OK: (&str, &str) = (
    "downmsg-2002",
    r#"{"code":"2002","msg":"login room (id:7) success"}"#,
);

#[test]
fn a_reply_is_told_from_an_error_by_its_code() {
    let (w, mut cs) = World::new(&PUSH, 2);
    let room = named_room("7");
    joined(&w, &mut cs[0], room, LOGIN_OK, 0);
    // The same code as a number is the same reply.
    joined(
        &w,
        &mut cs[1],
        room,
        ("downmsg-2002", r#"{"code":2002,"msg":"ok"}"#),
        0,
    );
    assert_eq!(w.verdicts(10 * D), only(&[]));
    // An error code answering a valid login: the server refused what it had to accept.
    let j = w.judge();
    j.request(
        &mut cs[0],
        "loginRoom",
        vec![Effect::Join {
            room: named_room("8"),
            name: "8".into(),
            reply: "downmsg-2002",
        }],
        Intent::Valid,
        20 * D,
        20 * D,
    );
    w.recv(
        &mut cs[0],
        "/",
        "downmsg",
        r#"{"code":"2004","msg":"your room id(8) already exist"}"#,
        20 * D + 5,
    );
    assert_eq!(
        w.verdicts(21 * D),
        only(&[("push/loginRoom/error-unexpected", 1)])
    );
}

#[test]
fn a_refusal_by_code_is_expected_and_its_acceptance_is_an_error_missing() {
    let (w, mut cs) = World::new(&PUSH, 2);
    let j = w.judge();
    let login = |c: &mut Client, at| {
        j.connected(c, at);
        j.request(
            c,
            "loginRoom",
            vec![Effect::Join {
                room: named_room("7"),
                name: "7".into(),
                reply: "downmsg-2002",
            }],
            Intent::Refused(Some("2004".into())),
            at,
            at,
        );
    };
    login(&mut cs[0], 0);
    w.recv(
        &mut cs[0],
        "/",
        "downmsg",
        r#"{"code":2004,"msg":"your room id(7) already exist"}"#,
        50,
    );
    assert_eq!(w.verdicts(10 * D), only(&[]), "the expected refusal");
    login(&mut cs[1], 0);
    w.recv(&mut cs[1], "/", "downmsg", LOGIN_OK.1, 50);
    assert_eq!(
        w.verdicts(10 * D),
        only(&[("push/loginRoom/error-missing", 1)])
    );
}

#[test]
fn an_unasked_reply_code_is_unsolicited() {
    let (w, mut cs) = World::new(&PUSH, 1);
    w.judge().connected(&mut cs[0], 0);
    w.recv(&mut cs[0], "/", "downmsg", LOGIN_OK.1, 10);
    assert_eq!(
        w.verdicts(10 * D),
        only(&[("push/downmsg-2002/reply-unsolicited", 1)])
    );
}

// ---- push: a login that kicks the other connections out of the room ----

/// Clients 0 and 1 are in room 7; client 2 logs in with `loginWhenLast` at `at`.
fn kick_scene(at: Micros) -> (World, Vec<Client>, RoomKey) {
    let (w, mut cs) = World::new(&PUSH, 3);
    let room = named_room("7");
    joined(&w, &mut cs[0], room, LOGIN_OK, 0);
    joined(&w, &mut cs[1], room, LOGIN_OK, 0);
    let j = w.judge();
    j.connected(&mut cs[2], at);
    j.request(
        &mut cs[2],
        "loginRoom",
        vec![
            Effect::Join {
                room,
                name: "7".into(),
                reply: "downmsg-2002",
            },
            Effect::Kick {
                event: "downmsg-2005",
                room,
            },
        ],
        Intent::Valid,
        at,
        at,
    );
    w.recv(&mut cs[2], "/", "downmsg", LOGIN_OK.1, at + 20);
    (w, cs, room)
}

const KICKED: &str = r#"{"code":"2005","msg":"you have kicked out room (id7)"}"#;

#[test]
fn every_other_connection_is_kicked_once_and_is_out_of_the_room() {
    let (w, mut cs, room) = kick_scene(D);
    w.recv(&mut cs[0], "/", "downmsg", KICKED, D + 30);
    w.recv(&mut cs[1], "/", "downmsg", KICKED, D + 40);
    assert_eq!(w.verdicts(10 * D), only(&[]));
    assert_eq!(
        cs[0].joined_rooms().count(),
        0,
        "the kicked client left the room"
    );
    assert_eq!(cs[2].joined_rooms().collect::<Vec<_>>(), vec![room]);
    // A second kick notice, or one to the connection that logged in, is not owed.
    w.recv(&mut cs[0], "/", "downmsg", KICKED, 11 * D);
    w.recv(&mut cs[2], "/", "downmsg", KICKED, 11 * D);
    assert_eq!(
        w.verdicts(12 * D),
        only(&[("push/downmsg-2005/non-member", 2)])
    );
}

/// `c` logs into room 7 with `loginWhenLast` at `at`: it joins and kicks the others.
fn login_when_last(w: &World, c: &mut Client, room: RoomKey, at: Micros) {
    let j = w.judge();
    j.connected(c, at);
    j.request(
        c,
        "loginRoom",
        vec![
            Effect::Join {
                room,
                name: "7".into(),
                reply: "downmsg-2002",
            },
            Effect::Kick {
                event: "downmsg-2005",
                room,
            },
        ],
        Intent::Valid,
        at,
        at,
    );
}

#[test]
fn a_login_kicked_by_one_sent_while_it_was_in_flight_is_out_of_the_room() {
    let (w, mut cs) = World::new(&PUSH, 4);
    let room = named_room("7");
    joined(&w, &mut cs[0], room, LOGIN_OK, 0);
    // Clients 1 and 2 log in at once; the server takes 1 first, so 2's login kicks it.
    login_when_last(&w, &mut cs[1], room, D);
    login_when_last(&w, &mut cs[2], room, D + 5);
    w.recv(&mut cs[0], "/", "downmsg", KICKED, D + 15);
    w.recv(&mut cs[1], "/", "downmsg", LOGIN_OK.1, D + 20);
    w.recv(&mut cs[1], "/", "downmsg", KICKED, D + 25);
    w.recv(&mut cs[2], "/", "downmsg", LOGIN_OK.1, D + 30);
    // A later login owes a kick to client 2 only.
    login_when_last(&w, &mut cs[3], room, 3 * D);
    w.recv(&mut cs[2], "/", "downmsg", KICKED, 3 * D + 20);
    w.recv(&mut cs[3], "/", "downmsg", LOGIN_OK.1, 3 * D + 30);
    assert_eq!(w.verdicts(10 * D), only(&[]));
}

#[test]
fn a_kick_to_a_connection_whose_login_came_after_it_is_non_member() {
    let (w, mut cs) = World::new(&PUSH, 3);
    let room = named_room("7");
    joined(&w, &mut cs[0], room, LOGIN_OK, 0);
    login_when_last(&w, &mut cs[1], room, D);
    w.recv(&mut cs[0], "/", "downmsg", KICKED, D + 15);
    w.recv(&mut cs[1], "/", "downmsg", LOGIN_OK.1, D + 20);
    // Client 2 logs in two deadlines later: no earlier kick can be its.
    login_when_last(&w, &mut cs[2], room, 3 * D);
    w.recv(&mut cs[1], "/", "downmsg", KICKED, 3 * D + 20);
    w.recv(&mut cs[2], "/", "downmsg", LOGIN_OK.1, 3 * D + 25);
    w.recv(&mut cs[2], "/", "downmsg", KICKED, 3 * D + 30);
    assert_eq!(
        w.verdicts(10 * D),
        only(&[("push/downmsg-2005/non-member", 1)])
    );
}

#[test]
fn a_connection_not_told_of_its_kick_is_missing_it() {
    let (w, mut cs, _) = kick_scene(D);
    w.recv(&mut cs[0], "/", "downmsg", KICKED, D + 30);
    assert_eq!(
        w.verdicts(D + 2 * D),
        only(&[]),
        "not before twice the deadline"
    );
    assert_eq!(
        w.verdicts(10 * D),
        only(&[("push/downmsg-2005/missing", 1)])
    );
}

// ---- push: deliveries caused by an HTTP request ----

/// Client 2 (in no room) pushes `news` into room 7 over HTTP at `at`.
fn http_push(w: &World, c: &mut Client, room: RoomKey, at: Micros) -> u64 {
    let seq = c.seq;
    w.judge().request(
        c,
        "POST /api/push",
        vec![
            Effect::HttpStatus { accept: &[200] },
            Effect::Broadcast {
                event: "news",
                room,
                include_sender: false,
                unless: crate::dialect::Precondition::None,
                seq: Some(seq),
                value: None,
            },
        ],
        Intent::Valid,
        at,
        at,
    );
    c.seq += 1;
    seq
}

fn news(from: u64, sender: u32, seq: u64) -> String {
    format!(
        r#"{{"from":{from},"room":"7","id":"{}"}}"#,
        content_id(sender, seq, 16)
    )
}

#[test]
fn an_http_push_reaches_every_member_and_its_response_is_judged() {
    let (w, mut cs) = World::new(&PUSH, 3);
    let room = named_room("7");
    joined(&w, &mut cs[0], room, LOGIN_OK, 0);
    joined(&w, &mut cs[1], room, LOGIN_OK, 0);
    let seq = http_push(&w, &mut cs[2], room, D);
    w.judge()
        .http_response(&mut cs[2], "POST /api/push", 200, D + 5);
    w.recv(&mut cs[0], "/", "news", &news(3, 2, seq), D + 20);
    w.recv(&mut cs[1], "/", "news", &news(3, 2, seq), D + 30);
    assert_eq!(w.verdicts(10 * D), only(&[]));

    let seq = http_push(&w, &mut cs[2], room, 20 * D);
    w.judge()
        .http_response(&mut cs[2], "POST /api/push", 500, 20 * D + 5);
    w.recv(&mut cs[0], "/", "news", &news(3, 2, seq), 20 * D + 20);
    assert_eq!(
        w.verdicts(30 * D),
        only(&[
            ("push/POST /api/push/reply-content", 1),
            ("push/news/missing", 1)
        ])
    );
}

#[test]
fn an_http_push_without_a_response_is_reply_missing() {
    let (w, mut cs) = World::new(&PUSH, 1);
    http_push(&w, &mut cs[0], named_room("7"), 0);
    w.judge().expire_pending(&mut cs[0], 2 * D - 1);
    assert_eq!(
        w.verdicts(2 * D - 1),
        only(&[]),
        "inside twice the deadline"
    );
    w.judge().expire_pending(&mut cs[0], 2 * D);
    assert_eq!(
        w.verdicts(2 * D),
        only(&[("push/POST /api/push/reply-missing", 1)])
    );
}

// ---- voice: exactly one member is told, another one if it does not report back ----

const FAILOVER: Micros = 5 * D;

/// Clients 0, 1, 2 in the channel; client 0 leaves at `D`, which one other member is told of.
fn departure_scene() -> (World, Vec<Client>, RoomKey) {
    let (w, mut cs) = World::new(&VOICE, 3);
    let room = named_room("ch");
    let j = w.judge();
    for c in cs.iter_mut() {
        j.connected(c, 0);
        w.oracle.join_sent(c.me, room, 0);
        w.oracle.join_confirmed(c.me, room, 10);
    }
    j.request(
        &mut cs[0],
        "exit",
        vec![Effect::NotifyOne {
            event: "exit_room",
            room,
            value: None,
            failover: FAILOVER,
        }],
        Intent::Valid,
        D,
        D,
    );
    (w, cs, room)
}

const EXIT: &str = r#"{"user_id":1,"channel_name":"ch","room_seat":null}"#;

fn report(w: &World, c: &mut Client, room: RoomKey, at: Micros) {
    w.judge().request(
        c,
        "exit_room_report",
        vec![Effect::Report {
            event: "exit_room",
            room,
            about: None,
        }],
        Intent::Valid,
        at,
        at,
    );
}

fn delivery_rules(w: &World, now: Micros) -> BTreeMap<String, u64> {
    w.verdicts(now)
}

/// A report naming the departed user (`exit_room_report {user_id}`) by its client.
fn report_about(
    w: &World,
    c: &mut Client,
    room: RoomKey,
    about: crate::oracle::ClientId,
    at: Micros,
) {
    w.judge().request(
        c,
        "exit_room_report",
        vec![Effect::Report {
            event: "exit_room",
            room,
            about: Some(u64::from(about) + 1),
        }],
        Intent::Valid,
        at,
        at,
    );
}

/// Clients 0..4 in the channel; clients 0 and 2 depart at once and client 1 is told of both
/// (the reference server tells members in the order they entered).
fn two_departures_told_to_one() -> (World, Vec<Client>, RoomKey) {
    let (w, mut cs) = World::new(&VOICE, 4);
    let room = named_room("ch");
    let j = w.judge();
    for c in cs.iter_mut() {
        j.connected(c, 0);
        w.oracle.join_sent(c.me, room, 0);
        w.oracle.join_confirmed(c.me, room, 10);
    }
    for (k, at) in [(0, D), (2, D + 5)] {
        j.request(
            &mut cs[k],
            "exit",
            vec![Effect::NotifyOne {
                event: "exit_room",
                room,
                value: None,
                failover: FAILOVER,
            }],
            Intent::Valid,
            at,
            at,
        );
    }
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    let exit_of_2 = r#"{"user_id":3,"channel_name":"ch","room_seat":null}"#;
    w.recv(&mut cs[1], "/", "exit_room", exit_of_2, D + 25);
    (w, cs, room)
}

#[test]
fn a_member_holding_two_departures_reports_each_by_its_user() {
    let (w, mut cs, room) = two_departures_told_to_one();
    // The newer one first: a report is matched by the user it names, not by position.
    report_about(&w, &mut cs[1], room, 2, D + 30);
    report_about(&w, &mut cs[1], room, 0, D + 35);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn a_member_reporting_one_of_two_departures_twice_leaves_the_other_owed() {
    let (w, mut cs, room) = two_departures_told_to_one();
    report_about(&w, &mut cs[1], room, 2, D + 30);
    report_about(&w, &mut cs[1], room, 2, D + 35);
    // Client 0's departure was never reported: client 3 was owed the fail-over.
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}

#[test]
fn one_member_told_and_reporting_back_is_enough() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    report(&w, &mut cs[1], room, D + 30);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn a_second_member_told_while_the_first_may_still_report_is_a_duplicate() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    w.recv(&mut cs[2], "/", "exit_room", EXIT, D + 30);
    report(&w, &mut cs[1], room, D + 40);
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/duplicate", 1)])
    );
}

#[test]
fn after_a_missing_report_another_member_is_told() {
    let (w, mut cs, _) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    // The fail-over, just after the first member's report time ran out.
    w.recv(&mut cs[2], "/", "exit_room", EXIT, D + 20 + FAILOVER);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn a_fail_over_within_a_deadline_of_a_late_holder_receipt_is_no_duplicate() {
    let (w, mut cs, _) = departure_scene();
    // The holder read its notice late; the server's timer ran from when it wrote it.
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20 + D / 2);
    w.recv(&mut cs[2], "/", "exit_room", EXIT, D + 20 + FAILOVER);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn no_fail_over_after_a_missing_report_is_missing_once() {
    let (w, mut cs, _) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    assert_eq!(
        delivery_rules(&w, D + 20 + FAILOVER + D),
        only(&[]),
        "within the fail-over's deadline"
    );
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}

#[test]
fn nobody_told_is_one_missing_not_one_per_member() {
    let (w, _cs, _) = departure_scene();
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}

/// Client 0 departs a second time (reconnected, entered again) after its first departure was
/// told to client 1, who reported it: the second one is owed to one member again.
fn second_departure(w: &World, cs: &mut [Client], room: RoomKey) {
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    report(w, &mut cs[1], room, D + 30);
    w.judge().request(
        &mut cs[0],
        "exit",
        vec![Effect::NotifyOne {
            event: "exit_room",
            room,
            value: None,
            failover: FAILOVER,
        }],
        Intent::Valid,
        3 * D,
        3 * D,
    );
}

#[test]
fn a_later_departure_of_the_same_member_is_not_matched_to_a_reported_one() {
    let (w, mut cs, room) = departure_scene();
    second_departure(&w, &mut cs, room);
    // Another member is told of the second departure: not a duplicate of the first.
    w.recv(&mut cs[2], "/", "exit_room", EXIT, 3 * D + 20);
    report(&w, &mut cs[2], room, 3 * D + 30);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn a_later_departure_told_to_two_is_still_a_duplicate() {
    let (w, mut cs, room) = departure_scene();
    second_departure(&w, &mut cs, room);
    w.recv(&mut cs[2], "/", "exit_room", EXIT, 3 * D + 20);
    w.recv(&mut cs[1], "/", "exit_room", EXIT, 3 * D + 21);
    report(&w, &mut cs[2], room, 3 * D + 30);
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/duplicate", 1)])
    );
}

// ---- chat: namespaces, and messages kept for a user's next session ----

/// Client `c` authenticates (joins its own user room) at `at`.
fn authenticate(w: &World, c: &mut Client, at: Micros) {
    let room = user_room(&w.roster.users[c.me as usize].username);
    joined(w, c, room, ("auth-s", r#"{"code":1}"#), at);
}

/// Client `from` sends a friend message to user `to` at `at`; returns its content id.
fn friend_message(w: &World, c: &mut Client, to: &str, at: Micros) -> String {
    let seq = c.seq;
    w.judge().request(
        c,
        "sendfsmg",
        vec![Effect::Deferrable {
            event: "receivefsmg",
            room: user_room(to),
            seq,
            via: "saoff",
        }],
        Intent::Valid,
        at,
        at,
    );
    content_id(c.me, seq, 16)
}

fn ask_kept(w: &World, c: &mut Client, at: Micros) {
    w.judge().request(
        c,
        "caoff",
        vec![Effect::Reply { event: "saoff" }],
        Intent::Valid,
        at,
        at,
    );
}

fn saoff(ids: &[&str]) -> String {
    let flogs: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"from":"user0","msg":"{id}"}}"#))
        .collect();
    format!(
        r#"{{"from":"off-line","to":"user1","flogs":[{}],"glogs":[]}}"#,
        flogs.join(",")
    )
}

#[test]
fn one_event_name_in_two_namespaces_is_two_events() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    authenticate(&w, &mut cs[1], 0);
    let id = friend_message(&w, &mut cs[0], "user1", D);
    let live = format!(r#"{{"from":"user0","to":"user1","msg":"{id}"}}"#);
    w.recv(&mut cs[1], "/friend", "receivefsmg", &live, D + 10);
    assert_eq!(w.verdicts(10 * D), only(&[]));
    // The same frame on `/group` is a group message, to a group this client is not in.
    w.recv(
        &mut cs[1],
        "/group",
        "receivefsmg",
        &live.replace(r#""to":"user1""#, r#""to":"g1""#),
        11 * D,
    );
    // And on a namespace the dialect does not use, no event at all.
    w.recv(&mut cs[1], "/server", "receivefsmg", &live, 11 * D);
    let v = w.verdicts(12 * D);
    assert_eq!(
        v.get("chat/group-receivefsmg/non-member"),
        Some(&1),
        "{v:?}"
    );
    assert_eq!(v.get("chat/connection/unknown-event"), Some(&1), "{v:?}");
}

#[test]
fn a_message_to_an_offline_user_is_handed_over_once_at_its_next_session() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    // user1 is offline: the message is kept.
    let id = friend_message(&w, &mut cs[0], "user1", D);
    authenticate(&w, &mut cs[1], 10 * D);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[&id]), 10 * D + 200);
    assert_eq!(w.verdicts(20 * D), only(&[]));
    // Handed over again in a later answer: a duplicate.
    ask_kept(&w, &mut cs[1], 30 * D);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[&id]), 30 * D + 100);
    assert_eq!(w.verdicts(40 * D), only(&[("chat/saoff/duplicate", 1)]));
}

#[test]
fn a_kept_message_left_out_of_the_next_session_is_missing() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    friend_message(&w, &mut cs[0], "user1", D);
    authenticate(&w, &mut cs[1], 10 * D);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 10 * D + 200);
    assert_eq!(w.verdicts(20 * D), only(&[("chat/saoff/missing", 1)]));
}

#[test]
fn a_message_delivered_live_is_not_kept() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    authenticate(&w, &mut cs[1], 0);
    let id = friend_message(&w, &mut cs[0], "user1", D);
    w.recv(
        &mut cs[1],
        "/friend",
        "receivefsmg",
        &format!(r#"{{"from":"user0","to":"user1","msg":"{id}"}}"#),
        D + 10,
    );
    ask_kept(&w, &mut cs[1], 2 * D);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[&id]), 2 * D + 10);
    assert_eq!(w.verdicts(10 * D), only(&[("chat/saoff/duplicate", 1)]));
}

#[test]
fn a_message_sent_while_the_user_was_coming_online_may_go_either_way() {
    for live in [true, false] {
        let (w, mut cs) = World::new(&CHAT, 2);
        authenticate(&w, &mut cs[0], 0);
        // user1's login is on its way when the message is sent: the server may order the two
        // either way, so it is delivered live or kept, once.
        let id = friend_message(&w, &mut cs[0], "user1", 10 * D);
        authenticate(&w, &mut cs[1], 10 * D + 50);
        if live {
            let frame = format!(r#"{{"from":"user0","to":"user1","msg":"{id}"}}"#);
            w.recv(&mut cs[1], "/friend", "receivefsmg", &frame, 10 * D + 80);
        }
        ask_kept(&w, &mut cs[1], 10 * D + 100);
        let kept: &[&str] = if live { &[] } else { &[&id] };
        w.recv(&mut cs[1], "/server", "saoff", &saoff(kept), 10 * D + 200);
        assert_eq!(w.verdicts(20 * D), only(&[]), "live: {live}");
    }
}

#[test]
fn a_message_lost_both_ways_is_missing() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    friend_message(&w, &mut cs[0], "user1", 10 * D);
    authenticate(&w, &mut cs[1], 10 * D + 50);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 10 * D + 200);
    // Not kept: it may still come live, the server having read it after the login.
    assert_eq!(w.verdicts(11 * D), only(&[]));
    assert_eq!(w.verdicts(20 * D), only(&[("chat/saoff/missing", 1)]));
}

#[test]
fn a_message_read_after_the_login_comes_live_after_the_empty_handover() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    let id = friend_message(&w, &mut cs[0], "user1", 10 * D);
    authenticate(&w, &mut cs[1], 10 * D + 50);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 10 * D + 200);
    let frame = format!(r#"{{"from":"user0","to":"user1","msg":"{id}"}}"#);
    w.recv(&mut cs[1], "/friend", "receivefsmg", &frame, 11 * D);
    assert_eq!(w.verdicts(20 * D), only(&[]));
}

#[test]
fn a_message_owed_live_to_a_connection_that_went_away_is_not_missing() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    friend_message(&w, &mut cs[0], "user1", 10 * D);
    authenticate(&w, &mut cs[1], 10 * D + 50);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 10 * D + 200);
    // Gone before its deadline: the live delivery may have gone with it.
    w.judge().departed(&mut cs[1], 11 * D);
    assert_eq!(w.verdicts(20 * D), only(&[]));
}

/// Three messages kept for user1, which comes back at `10 D`; returns their ids.
fn kept_three(w: &World, cs: &mut [Client]) -> Vec<String> {
    authenticate(w, &mut cs[0], 0);
    let ids = (0..3)
        .map(|i| friend_message(w, &mut cs[0], "user1", D + i))
        .collect();
    authenticate(w, &mut cs[1], 10 * D);
    ids
}

#[test]
fn a_message_racing_its_targets_departure_may_be_kept_instead_once() {
    for copies in [1, 2] {
        let (w, mut cs) = World::new(&CHAT, 2);
        authenticate(&w, &mut cs[0], 0);
        authenticate(&w, &mut cs[1], 0);
        // Sent while user1 was online, which leaves right after: the server may have seen it
        // gone first and kept the message, never delivering it live.
        let id = friend_message(&w, &mut cs[0], "user1", 5 * D);
        w.judge().departed(&mut cs[1], 5 * D + D / 4);
        authenticate(&w, &mut cs[1], 10 * D);
        for k in 0..copies {
            ask_kept(&w, &mut cs[1], 10 * D + 100 * (k + 1));
            w.recv(
                &mut cs[1],
                "/server",
                "saoff",
                &saoff(&[&id]),
                10 * D + 100 * (k + 1) + 10,
            );
        }
        let expected: &[(&str, u64)] = if copies == 1 {
            &[]
        } else {
            &[("chat/saoff/duplicate", 1)]
        };
        assert_eq!(w.verdicts(20 * D), only(expected), "copies: {copies}");
    }
    // Nothing kept is no fault either: it may have been lost with the departing connection.
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    authenticate(&w, &mut cs[1], 0);
    friend_message(&w, &mut cs[0], "user1", 5 * D);
    w.judge().departed(&mut cs[1], 5 * D + D / 4);
    authenticate(&w, &mut cs[1], 10 * D);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 10 * D + 110);
    assert_eq!(w.verdicts(20 * D), only(&[]));
}

#[test]
fn a_backlog_split_over_several_saoff_passes_however_it_is_split() {
    // One part per request; two parts to one request and one unasked; all at once.
    let splits: [&[&[usize]]; 3] = [&[&[0], &[1], &[2]], &[&[0, 1], &[], &[2]], &[&[0, 1, 2]]];
    for (k, parts) in splits.iter().enumerate() {
        let (w, mut cs) = World::new(&CHAT, 2);
        let ids = kept_three(&w, &mut cs);
        let mut at = 10 * D + 100;
        for (i, part) in parts.iter().enumerate() {
            // The second split answers its first request twice, then hands over unasked.
            if k != 1 || i == 0 {
                ask_kept(&w, &mut cs[1], at);
            }
            let part: Vec<&str> = part.iter().map(|&n| ids[n].as_str()).collect();
            if !part.is_empty() {
                w.recv(&mut cs[1], "/server", "saoff", &saoff(&part), at + 10);
            }
            at += 100;
        }
        // Nothing more kept: the handover is complete.
        ask_kept(&w, &mut cs[1], at);
        w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), at + 10);
        assert_eq!(w.verdicts(30 * D), only(&[]), "split {k}: {parts:?}");
        assert_eq!(w.metrics.merged()["saoff.offline"].co.len(), 3);
    }
}

#[test]
fn a_split_backlog_that_ends_short_is_missing_and_a_repeated_part_is_a_duplicate() {
    let (w, mut cs) = World::new(&CHAT, 2);
    let ids = kept_three(&w, &mut cs);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(
        &mut cs[1],
        "/server",
        "saoff",
        &saoff(&[&ids[0]]),
        10 * D + 110,
    );
    // A part that leaves the rest out says nothing yet.
    assert_eq!(w.verdicts(20 * D), only(&[]));
    ask_kept(&w, &mut cs[1], 20 * D);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 20 * D + 10);
    assert_eq!(w.verdicts(30 * D), only(&[("chat/saoff/missing", 2)]));

    let (w, mut cs) = World::new(&CHAT, 2);
    let ids = kept_three(&w, &mut cs);
    ask_kept(&w, &mut cs[1], 10 * D + 100);
    w.recv(
        &mut cs[1],
        "/server",
        "saoff",
        &saoff(&[&ids[0], &ids[1]]),
        10 * D + 110,
    );
    w.recv(
        &mut cs[1],
        "/server",
        "saoff",
        &saoff(&[&ids[1], &ids[2]]),
        10 * D + 120,
    );
    assert_eq!(w.verdicts(30 * D), only(&[("chat/saoff/duplicate", 1)]));
}

#[test]
fn a_message_kept_as_the_server_restarted_is_owed_only_if_it_comes() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    let before = friend_message(&w, &mut cs[0], "user1", D);
    // Sent within a deadline of the restart: the stopping server may never have read it.
    let racing = friend_message(&w, &mut cs[0], "user1", 10 * D);
    w.oracle.restart_began(10 * D + D / 2);
    assert!(w.oracle.restarting(10 * D + D / 2 + 1));
    let during = friend_message(&w, &mut cs[0], "user1", 11 * D);
    w.oracle.restart_ended(12 * D);
    assert!(!w.oracle.restarting(12 * D + 1));
    authenticate(&w, &mut cs[1], 20 * D);
    ask_kept(&w, &mut cs[1], 20 * D + 100);
    // The one kept well before the restart comes; the racing ones are lost or come once.
    w.recv(
        &mut cs[1],
        "/server",
        "saoff",
        &saoff(&[&before, &racing]),
        20 * D + 110,
    );
    ask_kept(&w, &mut cs[1], 20 * D + 200);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 20 * D + 210);
    assert_eq!(w.verdicts(30 * D), only(&[]));
    // Once is all: the racing one again is a duplicate.
    ask_kept(&w, &mut cs[1], 30 * D);
    w.recv(
        &mut cs[1],
        "/server",
        "saoff",
        &saoff(&[&racing]),
        30 * D + 10,
    );
    assert_eq!(w.verdicts(40 * D), only(&[("chat/saoff/duplicate", 1)]));
    let _ = during;

    // A message kept long before the restart and not handed over after it is missing.
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    friend_message(&w, &mut cs[0], "user1", D);
    w.oracle.restart_began(10 * D);
    w.oracle.restart_ended(11 * D);
    authenticate(&w, &mut cs[1], 20 * D);
    ask_kept(&w, &mut cs[1], 20 * D + 100);
    w.recv(&mut cs[1], "/server", "saoff", &saoff(&[]), 20 * D + 110);
    assert_eq!(w.verdicts(30 * D), only(&[("chat/saoff/missing", 1)]));
}

#[test]
fn a_connection_dropped_by_a_restart_is_expected_and_one_made_after_it_is_not() {
    let (w, mut cs) = World::new(&CHAT, 2);
    authenticate(&w, &mut cs[0], 0);
    authenticate(&w, &mut cs[1], 0);
    w.oracle.restart_began(10 * D);
    w.oracle.restart_ended(11 * D);
    // Both connections were the stopped server's: the restart dropped them, and their
    // departures are owed to nobody.
    for c in cs.iter_mut() {
        assert!(w.oracle.dropped_by_restart(c.session_began(), 10 * D + 5));
        assert_eq!(
            w.judge().closed_by_restart(c, 10 * D + 5),
            CloseVerdict::Expected
        );
    }
    assert_eq!(w.verdicts(20 * D), only(&[]));
    // A connection to the restarted server that the server closes is unexpected.
    authenticate(&w, &mut cs[0], 12 * D);
    assert!(!w.oracle.dropped_by_restart(cs[0].session_began(), 13 * D));
    assert_eq!(
        w.judge().closed_by_server(&mut cs[0], 13 * D, "reset"),
        CloseVerdict::Unexpected
    );
    assert_eq!(
        w.verdicts(20 * D),
        only(&[("chat/connection/unexpected-close", 1)])
    );
}

// ---- chat: a departure told to the departed user's friends ----

/// chat's presence: `foffline` to every connection of each friend of a departed user.
static CHAT_PRESENCE: DialectSpec = DialectSpec {
    departure: Some(crate::dialect::Departure {
        each_room: None,
        everyone: None,
        friends: Some("foffline"),
        one_member: None,
    }),
    ..table(
        "chat",
        &[
            event(
                "auth-s",
                Wire::SAME,
                Attribution::Reply,
                RoomOf::ReceiverUser,
            ),
            event(
                "foffline",
                Wire::on("/friend"),
                Attribution::SenderFifo {
                    sender: SenderKey::Username("from"),
                    value_field: None,
                },
                RoomOf::ReceiverUser,
            ),
        ],
        ErrorStyle::SameEvent { field: "error" },
    )
};

/// Users 0 and 1 are friends, user 2 is nobody's; all three authenticate, then user 0 leaves.
fn presence_scene() -> (World, Vec<Client>) {
    let (mut w, mut cs) = World::new(&CHAT_PRESENCE, 3);
    w.roster.social.friends.insert(1, vec!["user1".into()]);
    w.roster.social.friends.insert(2, vec!["user0".into()]);
    for c in cs.iter_mut() {
        authenticate(&w, c, 0);
    }
    w.judge().departed(&mut cs[0], D);
    (w, cs)
}

const OFFLINE_0: &str = r#"{"from":"user0","to":"user1","msg":"offline"}"#;

#[test]
fn a_departed_users_friend_is_told() {
    let (w, mut cs) = presence_scene();
    w.recv(&mut cs[1], "/friend", "foffline", OFFLINE_0, D + 20);
    assert_eq!(w.verdicts(10 * D), only(&[]));
}

#[test]
fn a_departed_users_friend_not_told_is_missing_and_a_stranger_told_is_unknown() {
    let (w, mut cs) = presence_scene();
    w.recv(&mut cs[2], "/friend", "foffline", OFFLINE_0, D + 20);
    let v = w.verdicts(10 * D);
    assert_eq!(v.get("chat/foffline/missing"), Some(&1), "{v:?}");
    assert_eq!(v.get("chat/foffline/unknown"), Some(&1), "{v:?}");
}

/// As [`presence_scene`], but user 0 sent hostile input (lenient) before its connection ended
/// at `D`; `told_early`: the server dropped it at the hostile input and told its friend then,
/// before the client noticed (the 2 MB frame's race).
fn lenient_presence_scene(told_early: bool) -> (World, Vec<Client>) {
    let (mut w, mut cs) = World::new(&CHAT_PRESENCE, 3);
    w.roster.social.friends.insert(1, vec!["user1".into()]);
    w.roster.social.friends.insert(2, vec!["user0".into()]);
    for c in cs.iter_mut() {
        authenticate(&w, c, 0);
    }
    w.judge().become_lenient(&mut cs[0]);
    if told_early {
        w.recv(&mut cs[1], "/friend", "foffline", OFFLINE_0, D / 2);
    }
    w.judge().departed(&mut cs[0], D);
    (w, cs)
}

#[test]
fn a_lenient_users_departure_is_judged_by_who_gets_it_only() {
    // Told before the client noticed its connection was gone: no second notice is owed.
    let (w, _cs) = lenient_presence_scene(true);
    assert_eq!(w.verdicts(10 * D), only(&[]));
    // Told when the client noticed, or not at all (when the server dropped it is unknown).
    let (w, mut cs) = lenient_presence_scene(false);
    w.recv(&mut cs[1], "/friend", "foffline", OFFLINE_0, D + 20);
    assert_eq!(w.verdicts(10 * D), only(&[]));
    let (w, _cs) = lenient_presence_scene(false);
    assert_eq!(w.verdicts(10 * D), only(&[]));
    // A stranger told is still told what it is owed nothing of.
    let (w, mut cs) = lenient_presence_scene(true);
    w.recv(&mut cs[2], "/friend", "foffline", OFFLINE_0, D + 20);
    assert_eq!(w.verdicts(10 * D), only(&[("chat/foffline/unknown", 1)]));
}

/// The near miss: a friend of a user that sent nothing hostile is owed its `foffline` even
/// when a lenient user's departure (told early) is excused beside it.
#[test]
fn a_healthy_users_departure_is_owed_beside_a_lenient_one() {
    let (mut w, mut cs) = World::new(&CHAT_PRESENCE, 3);
    w.roster.social.friends.insert(1, vec!["user1".into()]);
    w.roster
        .social
        .friends
        .insert(2, vec!["user0".into(), "user2".into()]);
    w.roster.social.friends.insert(3, vec!["user1".into()]);
    for c in cs.iter_mut() {
        authenticate(&w, c, 0);
    }
    w.judge().become_lenient(&mut cs[0]);
    w.recv(&mut cs[1], "/friend", "foffline", OFFLINE_0, D / 2);
    w.judge().departed(&mut cs[0], D);
    // User 2 leaves without hostile input: its friend user 1 is told nothing.
    w.judge().departed(&mut cs[2], D);
    assert_eq!(w.verdicts(10 * D), only(&[("chat/foffline/missing", 1)]));
}

// ---- chat: a second device of a user ----

/// Client 2 is a second device of user0: it authenticated as user0.
fn second_device_scene() -> (World, Vec<Client>, String) {
    let (w, mut cs) = World::new(&CHAT, 3);
    authenticate(&w, &mut cs[0], 0);
    authenticate(&w, &mut cs[1], 0);
    // Its join is named after the user it authenticated as (as chat's `auth` names it).
    let j = w.judge();
    j.connected(&mut cs[2], 0);
    j.request(
        &mut cs[2],
        "auth-c",
        vec![Effect::Join {
            room: user_room("user0"),
            name: "user0".into(),
            reply: "auth-s",
        }],
        Intent::Valid,
        0,
        0,
    );
    w.recv(&mut cs[2], "/", "auth-s", r#"{"code":1}"#, 10);
    let id = friend_message(&w, &mut cs[1], "user0", D);
    let frame = format!(r#"{{"from":"user1","to":"user0","msg":"{id}"}}"#);
    (w, cs, frame)
}

#[test]
fn a_message_reaches_every_device_of_its_user() {
    let (w, mut cs, frame) = second_device_scene();
    w.recv(&mut cs[0], "/friend", "receivefsmg", &frame, D + 10);
    w.recv(&mut cs[2], "/friend", "receivefsmg", &frame, D + 20);
    assert_eq!(w.verdicts(10 * D), only(&[]));
}

#[test]
fn a_device_left_out_is_missing_its_users_message() {
    let (w, mut cs, frame) = second_device_scene();
    w.recv(&mut cs[0], "/friend", "receivefsmg", &frame, D + 10);
    assert_eq!(w.verdicts(10 * D), only(&[("chat/receivefsmg/missing", 1)]));
}

// ---- voice's own table: the greeting, the entrant's own notice, departures ----

use crate::dialect::voice::SPEC as VOICE_TABLE;

const HI: &str = r#"{"action":"create_token","online_token":"o1"}"#;

/// `user{i}` entering channel "ch" at `at`; its own copy of `enter_room` confirms it.
fn enter(w: &World, c: &mut Client, at: Micros) {
    let me = c.me;
    let j = w.judge();
    j.request(
        c,
        "enter_room",
        vec![Effect::Join {
            room: named_room("ch"),
            name: "ch".into(),
            reply: "enter_room",
        }],
        Intent::Valid,
        at,
        at,
    );
    let own = format!(
        r#"{{"action":"enter_room","user_id":{},"nickname":"user{me}","sex":1,"avatar_url":"a","avatar_small_url":"b","channel_name":"ch"}}"#,
        me + 1
    );
    w.recv(c, "/", "enter_room", &own, at + 10);
}

#[test]
fn the_greeting_makes_the_connection_its_users() {
    let (w, mut cs) = World::new(&VOICE_TABLE, 2);
    for c in cs.iter_mut() {
        w.judge().connected(c, 0);
    }
    w.recv(&mut cs[1], "/", "create_token", HI, 5);
    // A call notice to user1 (client 1): its connection is the user's now.
    w.judge().request(
        &mut cs[0],
        "call",
        vec![Effect::Broadcast {
            event: "call",
            room: user_room("user1"),
            include_sender: false,
            unless: crate::dialect::Precondition::None,
            seq: None,
            value: None,
        }],
        Intent::Valid,
        D,
        D,
    );
    let call = r#"{"action":"call","user_id":1,"receiver_id":2,"channel_name":"ch"}"#;
    w.recv(&mut cs[1], "/", "call", call, D + 10);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

#[test]
fn without_its_greeting_a_connection_is_not_its_users() {
    let (w, mut cs) = World::new(&VOICE_TABLE, 2);
    for c in cs.iter_mut() {
        w.judge().connected(c, 0);
    }
    let call = r#"{"action":"call","user_id":1,"receiver_id":2,"channel_name":"ch"}"#;
    w.recv(&mut cs[1], "/", "call", call, D + 10);
    let verdicts = w.verdicts(100 * D);
    assert!(!verdicts.is_empty(), "a notice nobody sent is judged");
}

#[test]
fn the_entrants_own_notice_confirms_its_entry_and_the_others_are_notices() {
    let (w, mut cs) = World::new(&VOICE_TABLE, 2);
    for c in cs.iter_mut() {
        w.judge().connected(c, 0);
        w.recv(c, "/", "create_token", HI, 1);
    }
    enter(&w, &mut cs[0], 10);
    // Client 1 enters; client 0 is told, as a notice from user 2.
    let (first, second) = cs.split_at_mut(1);
    w.judge().request(
        &mut second[0],
        "enter_room",
        vec![
            Effect::Join {
                room: named_room("ch"),
                name: "ch".into(),
                reply: "enter_room",
            },
            Effect::Broadcast {
                event: "enter_room",
                room: named_room("ch"),
                include_sender: false,
                unless: crate::dialect::Precondition::None,
                seq: None,
                value: None,
            },
        ],
        Intent::Valid,
        D,
        D,
    );
    let notice = r#"{"action":"enter_room","user_id":2,"nickname":"user1","sex":0,"avatar_url":"a","avatar_small_url":"b","channel_name":"ch"}"#;
    w.recv(&mut first[0], "/", "enter_room", notice, D + 5);
    w.recv(&mut second[0], "/", "enter_room", notice, D + 6);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    assert_eq!(
        cs[1].joined_rooms().count(),
        2,
        "its own room and the channel"
    );
}

#[test]
fn an_own_enter_room_without_a_request_is_unsolicited() {
    let (w, mut cs) = World::new(&VOICE_TABLE, 1);
    w.judge().connected(&mut cs[0], 0);
    let own = r#"{"action":"enter_room","user_id":1,"nickname":"user0","sex":1,"avatar_url":"a","avatar_small_url":"b","channel_name":"ch"}"#;
    w.recv(&mut cs[0], "/", "enter_room", own, D);
    assert_eq!(
        w.verdicts(100 * D),
        only(&[("voice/enter_room/reply-unsolicited", 1)])
    );
}

/// Three members of "ch"; client 0's connection ends at `D`.
fn voice_departure() -> (World, Vec<Client>) {
    let (w, mut cs) = World::new(&VOICE_TABLE, 3);
    for (i, c) in cs.iter_mut().enumerate() {
        w.judge().connected(c, 0);
        w.recv(c, "/", "create_token", HI, 1);
        enter(&w, c, 10 + i as Micros);
    }
    w.judge().departed(&mut cs[0], D);
    (w, cs)
}

const LEFT: &str = r#"{"action":"exit_room","user_id":1,"channel_name":"ch","room_seat":null}"#;

#[test]
fn a_departure_is_owed_to_exactly_one_remaining_member() {
    let (w, mut cs) = voice_departure();
    w.recv(&mut cs[2], "/", "exit_room", LEFT, D + 20);
    report(&w, &mut cs[2], named_room("ch"), D + 30);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

#[test]
fn the_other_members_stay_for_the_fail_over_only_while_it_is_owed() {
    let (w, mut cs) = World::new(&VOICE_TABLE, 3);
    // The run's server was set up with this report window (it advertises none).
    w.oracle.set_report_window(FAILOVER);
    for (i, c) in cs.iter_mut().enumerate() {
        w.judge().connected(c, 0);
        w.recv(c, "/", "create_token", HI, 1);
        enter(&w, c, 10 + i as Micros);
    }
    w.judge().departed(&mut cs[0], D);
    w.recv(&mut cs[1], "/", "exit_room", LEFT, D + 20);
    let takeover = D + 20 + FAILOVER + D + 1;
    // The member told first is not owed it again; the other waits past the report window.
    assert_eq!(w.judge().settled_at(&cs[1], 2 * D), None);
    assert_eq!(w.judge().settled_at(&cs[2], 2 * D), Some(takeover));
    // Once the holder reported back, nobody else is owed it.
    report(&w, &mut cs[1], named_room("ch"), D + 30);
    assert_eq!(w.judge().settled_at(&cs[2], 2 * D), None);
}

/// A target's report window nobody stated (the protocol advertises none): a fail-over later
/// than the reference server's 5 s is no missing notice (a slow one is at most late), and
/// none at all is missing once the longest window allowed has passed.
#[test]
fn an_unstated_report_window_owes_the_fail_over_only_after_the_longest_window() {
    const S: Micros = 1_000_000;
    let told = D + 20;
    let scene = || {
        let (w, mut cs) = World::new(&VOICE_TABLE, 3);
        w.oracle.set_report_window_unstated();
        for (i, c) in cs.iter_mut().enumerate() {
            w.judge().connected(c, 0);
            w.recv(c, "/", "create_token", HI, 1);
            enter(&w, c, 10 + i as Micros);
        }
        w.judge().departed(&mut cs[0], D);
        w.recv(&mut cs[1], "/", "exit_room", LEFT, told);
        (w, cs)
    };
    // A server with a 9 s window: told after 9 s, never missing.
    let (w, mut cs) = scene();
    let late = told + 9 * S;
    assert!(w.verdicts(late - 1).is_empty());
    w.recv(&mut cs[2], "/", "exit_room", LEFT, late);
    report(&w, &mut cs[2], named_room("ch"), late + 10);
    let v = w.verdicts(late + 40 * S);
    assert!(!v.contains_key("voice/exit_room/missing"), "{v:?}");
    assert!(!v.contains_key("voice/exit_room/duplicate"), "{v:?}");
    // The other member waits for it as long as it may be owed.
    let (w, cs) = scene();
    assert_eq!(
        w.judge().settled_at(&cs[2], 2 * D),
        Some(told + LONGEST_UNSTATED_REPORT_WINDOW + D + 1)
    );
    // No fail-over at all: missing, but only past the longest window.
    assert!(w.verdicts(told + 20 * S).is_empty());
    assert_eq!(
        w.verdicts(told + LONGEST_UNSTATED_REPORT_WINDOW + 3 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}

/// Client 0 of a `voice_departure` scene, before its departure, called client 1 (and, with
/// `hung_up`, ended the call itself).
fn call_then_depart(hung_up: bool) -> (World, Vec<Client>) {
    let (w, mut cs) = World::new(&VOICE_TABLE, 3);
    for (i, c) in cs.iter_mut().enumerate() {
        w.judge().connected(c, 0);
        w.recv(c, "/", "create_token", HI, 1);
        enter(&w, c, 10 + i as Micros);
    }
    let peer = user_room(&w.roster.users[1].username);
    let mut effects = vec![Effect::OnDeparture {
        event: "hang_up",
        room: Some(peer),
    }];
    if hung_up {
        effects.push(Effect::OnDeparture {
            event: "hang_up",
            room: None,
        });
    }
    w.judge()
        .request(&mut cs[0], "call", effects, Intent::Valid, 100, 100);
    w.judge().departed(&mut cs[0], D);
    w.recv(&mut cs[2], "/", "exit_room", LEFT, D + 20);
    report(&w, &mut cs[2], named_room("ch"), D + 30);
    (w, cs)
}

const HUNG_UP: &str = r#"{"action":"hang_up","user_id":1,"receiver_id":2,"channel_name":"ch"}"#;

#[test]
fn a_call_peer_is_owed_hang_up_when_the_caller_departs() {
    let (w, _cs) = call_then_depart(false);
    assert_eq!(w.verdicts(100 * D), only(&[("voice/hang_up/missing", 1)]));
    let (w, mut cs) = call_then_depart(false);
    w.recv(&mut cs[1], "/", "hang_up", HUNG_UP, D + 25);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

#[test]
fn a_call_ended_before_the_departure_owes_nothing_more() {
    let (w, _cs) = call_then_depart(true);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    // Nor does it reach anybody but the peer.
    let (w, mut cs) = call_then_depart(false);
    w.recv(&mut cs[2], "/", "hang_up", HUNG_UP, D + 25);
    w.recv(&mut cs[1], "/", "hang_up", HUNG_UP, D + 26);
    assert_eq!(w.verdicts(100 * D), only(&[("voice/hang_up/unknown", 1)]));
}

#[test]
fn a_departure_told_to_nobody_or_to_two_is_a_violation() {
    let (w, _cs) = voice_departure();
    assert_eq!(w.verdicts(100 * D), only(&[("voice/exit_room/missing", 1)]));
    let (w, mut cs) = voice_departure();
    w.recv(&mut cs[1], "/", "exit_room", LEFT, D + 20);
    w.recv(&mut cs[2], "/", "exit_room", LEFT, D + 21);
    report(&w, &mut cs[1], named_room("ch"), D + 30);
    assert_eq!(
        w.verdicts(100 * D),
        only(&[("voice/exit_room/duplicate", 1)])
    );
}

/// Three members of "ch" and a fourth client in no channel; client 0 sent hostile input
/// (lenient) before its connection ended at `D`.
fn lenient_departure() -> (World, Vec<Client>) {
    let (w, mut cs) = World::new(&VOICE_TABLE, 4);
    for (i, c) in cs.iter_mut().enumerate() {
        w.judge().connected(c, 0);
        w.recv(c, "/", "create_token", HI, 1);
        if i < 3 {
            enter(&w, c, 10 + i as Micros);
        }
    }
    w.judge().become_lenient(&mut cs[0]);
    w.judge().departed(&mut cs[0], D);
    (w, cs)
}

#[test]
fn a_lenient_members_departure_is_judged_by_who_gets_it_only() {
    // The server may have dropped it at the hostile input, before `D`: nobody told at all, or
    // told early, is no violation.
    let (w, _cs) = lenient_departure();
    assert_eq!(w.verdicts(100 * D), only(&[]));
    let (w, mut cs) = lenient_departure();
    w.recv(&mut cs[1], "/", "exit_room", LEFT, D / 2);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    // Outside the channel, it is still a leak.
    let (w, mut cs) = lenient_departure();
    w.recv(&mut cs[3], "/", "exit_room", LEFT, D + 20);
    assert_eq!(
        w.verdicts(100 * D),
        only(&[("voice/exit_room/non-member", 1)])
    );
}

// ---- push: a greeting every new connection is owed; data delivered exactly as pushed ----

/// push with its `downmsg` 2001 greeting.
static GREETING: DialectSpec = table(
    "push",
    &[
        event(
            "downmsg-2001",
            Wire::tagged("/", "downmsg", "code", "2001"),
            Attribution::Greeting,
            RoomOf::Everyone,
        ),
        event(
            "news",
            Wire::SAME,
            Attribution::ContentId {
                field: "id",
                sender: SenderKey::UserId("from"),
            },
            RoomOf::Field("room"),
        ),
    ],
    ErrorStyle::Coded {
        event: "downmsg",
        field: "code",
        codes: &["2003", "2004"],
    },
);

const HELLO: &str = r#"{"code":"2001","msg":"connect success"}"#;

#[test]
fn every_connection_is_greeted_once() {
    let (w, mut cs) = World::new(&GREETING, 2);
    let j = w.judge();
    j.connected(&mut cs[0], 0);
    j.connected(&mut cs[1], 0);
    w.recv(&mut cs[0], "/", "downmsg", HELLO, 10);
    j.expire_pending(&mut cs[0], 10 * D);
    assert_eq!(w.verdicts(10 * D), only(&[]), "greeted");
    // Client 1 never got its greeting; client 0 gets a second one.
    j.expire_pending(&mut cs[1], 10 * D);
    w.recv(&mut cs[0], "/", "downmsg", HELLO, 10 * D);
    assert_eq!(
        w.verdicts(11 * D),
        only(&[
            ("push/connect/reply-missing", 1),
            ("push/downmsg-2001/reply-unsolicited", 1)
        ])
    );
    // A new session is owed a new greeting.
    j.connected(&mut cs[0], 20 * D);
    w.recv(&mut cs[0], "/", "downmsg", HELLO, 20 * D + 5);
    assert_eq!(w.verdicts(30 * D).len(), 2, "nothing new");
}

/// Client 1 pushes `data` into room 7 (client 0 a member): the broadcast carries it whole.
fn exact_push(w: &World, cs: &mut [Client], data: &serde_json::Value) {
    let room = named_room("7");
    w.oracle.join_sent(cs[0].me, room, 0);
    w.oracle.join_confirmed(cs[0].me, room, 0);
    w.judge().request(
        &mut cs[1],
        "push",
        vec![Effect::Broadcast {
            event: "news",
            room,
            include_sender: false,
            unless: crate::dialect::Precondition::None,
            seq: Some(0),
            value: Some(data.clone()),
        }],
        Intent::Valid,
        D,
        D,
    );
}

#[test]
fn pushed_data_arrives_exactly_as_sent() {
    let data = serde_json::json!({"from": 2, "room": "7", "id": content_id(1, 0, 16)});
    let (w, mut cs) = World::new(&GREETING, 2);
    exact_push(&w, &mut cs, &data);
    // Key order does not matter: JSON-equal.
    let reordered = format!(r#"{{"id":"{}","room":"7","from":2}}"#, content_id(1, 0, 16));
    w.recv(&mut cs[0], "/", "news", &reordered, D + 10);
    assert_eq!(w.verdicts(10 * D), only(&[]));

    // Near miss of the same send with a field added: altered.
    let (w, mut cs) = World::new(&GREETING, 2);
    exact_push(&w, &mut cs, &data);
    let added = format!(
        r#"{{"id":"{}","room":"7","from":2,"pushedAt":0}}"#,
        content_id(1, 0, 16)
    );
    w.recv(&mut cs[0], "/", "news", &added, D + 10);
    assert_eq!(w.verdicts(10 * D), only(&[("push/news/shape", 1)]));
}

mod call_peer;
mod holder_departs;
mod users_me;
