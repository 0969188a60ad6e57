//! voice: a call cut by either side's departure. The caller's departure owes the called member
//! `hang_up` (`Effect::OnDeparture`); the called member's departure owes it to the caller
//! (`Effect::PeerOnDeparture`), once the call was due (the server had set it up).

use super::*;

/// Three members of "ch"; client 0 calls client 1 at 100 (the effects voice's `call` has),
/// and, with `hung_up`, ends the call itself at 200.
fn called(hung_up: bool) -> (World, Vec<Client>) {
    let (w, mut cs) = World::new(&VOICE_TABLE, 3);
    for (i, c) in cs.iter_mut().enumerate() {
        w.judge().connected(c, 0);
        w.recv(c, "/", "create_token", HI, 1);
        enter(&w, c, 10 + i as Micros);
    }
    let caller = user_room(&w.roster.users[0].username);
    let callee = user_room(&w.roster.users[1].username);
    let call = vec![
        Effect::OnDeparture {
            event: "hang_up",
            room: Some(callee),
        },
        Effect::PeerOnDeparture {
            event: "hang_up",
            peer: callee,
            back: Some(caller),
        },
    ];
    w.judge()
        .request(&mut cs[0], "call", call, Intent::Valid, 100, 100);
    if hung_up {
        let hang_up = vec![
            Effect::OnDeparture {
                event: "hang_up",
                room: None,
            },
            Effect::PeerOnDeparture {
                event: "hang_up",
                peer: callee,
                back: None,
            },
        ];
        w.judge()
            .request(&mut cs[0], "hang_up", hang_up, Intent::Valid, 200, 200);
    }
    (w, cs)
}

/// Client 1 (the called member) departs at `at`; client 2 is told and reports it.
fn callee_departs(w: &World, cs: &mut [Client], at: Micros) {
    w.judge().departed(&mut cs[1], at);
    w.recv(&mut cs[2], "/", "exit_room", CALLEE_LEFT, at + 20);
    report(w, &mut cs[2], named_room("ch"), at + 30);
}

const CALLEE_LEFT: &str =
    r#"{"action":"exit_room","user_id":2,"channel_name":"ch","room_seat":null}"#;
/// The called member (user 2) is gone; its caller (user 1) is told.
const CALLEE_HUNG_UP: &str =
    r#"{"action":"hang_up","user_id":2,"receiver_id":1,"channel_name":"ch"}"#;

#[test]
fn the_caller_is_owed_hang_up_when_the_called_member_departs() {
    let (w, mut cs) = called(false);
    callee_departs(&w, &mut cs, 2 * D);
    w.recv(&mut cs[0], "/", "hang_up", CALLEE_HUNG_UP, 2 * D + 25);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

#[test]
fn a_called_member_departing_without_hang_up_to_the_caller_is_missing() {
    let (w, mut cs) = called(false);
    callee_departs(&w, &mut cs, 2 * D);
    assert_eq!(w.verdicts(100 * D), only(&[("voice/hang_up/missing", 1)]));
}

#[test]
fn a_called_member_departing_before_the_call_was_due_owes_nothing_but_may_tell() {
    // Gone within a deadline of the call: the server may not have set the call up.
    let (w, mut cs) = called(false);
    callee_departs(&w, &mut cs, 100 + D / 2);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    let (w, mut cs) = called(false);
    callee_departs(&w, &mut cs, 100 + D / 2);
    w.recv(&mut cs[0], "/", "hang_up", CALLEE_HUNG_UP, 100 + D / 2 + 25);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

#[test]
fn a_call_the_caller_ended_owes_the_caller_nothing_when_the_called_member_departs() {
    let (w, mut cs) = called(true);
    callee_departs(&w, &mut cs, 2 * D);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    // Nor to anybody else: a hang_up for a call that is over is unknown.
    let (w, mut cs) = called(true);
    callee_departs(&w, &mut cs, 2 * D);
    w.recv(&mut cs[2], "/", "hang_up", CALLEE_HUNG_UP, 2 * D + 25);
    assert!(w.verdicts(100 * D).contains_key("voice/hang_up/unknown"));
}

#[test]
fn a_caller_gone_first_is_owed_nothing_by_the_called_member() {
    let (w, mut cs) = called(false);
    w.judge().departed(&mut cs[0], 2 * D);
    let caller_left = r#"{"action":"exit_room","user_id":1,"channel_name":"ch","room_seat":null}"#;
    let caller_hung_up = r#"{"action":"hang_up","user_id":1,"receiver_id":2,"channel_name":"ch"}"#;
    w.recv(&mut cs[1], "/", "hang_up", caller_hung_up, 2 * D + 10);
    w.recv(&mut cs[2], "/", "exit_room", caller_left, 2 * D + 20);
    report(&w, &mut cs[2], named_room("ch"), 2 * D + 30);
    callee_departs(&w, &mut cs, 4 * D);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

/// As [`called`] (no hang-up by the caller), then the called member (client 1) ends the call
/// itself at 200: voice's `hang_up` with `to` the caller.
fn callee_hangs_up() -> (World, Vec<Client>) {
    let (w, mut cs) = called(false);
    let caller = user_room(&w.roster.users[0].username);
    let hang_up = vec![
        Effect::OnDeparture {
            event: "hang_up",
            room: None,
        },
        Effect::PeerOnDeparture {
            event: "hang_up",
            peer: caller,
            back: None,
        },
    ];
    w.judge()
        .request(&mut cs[1], "hang_up", hang_up, Intent::Valid, 200, 200);
    (w, cs)
}

#[test]
fn a_call_the_called_member_ended_owes_nothing_when_either_side_departs_later() {
    // The called member departs later: its caller is owed no second hang_up.
    let (w, mut cs) = callee_hangs_up();
    callee_departs(&w, &mut cs, 2 * D);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    // The caller departs later: the called member, who ended the call, is owed nothing ...
    let (w, mut cs) = callee_hangs_up();
    w.judge().departed(&mut cs[0], 2 * D);
    let caller_left = r#"{"action":"exit_room","user_id":1,"channel_name":"ch","room_seat":null}"#;
    w.recv(&mut cs[2], "/", "exit_room", caller_left, 2 * D + 20);
    report(&w, &mut cs[2], named_room("ch"), 2 * D + 30);
    assert_eq!(w.verdicts(100 * D), only(&[]));
    // ... but may still be told (a server that took the departure before the hang_up).
    let (w, mut cs) = callee_hangs_up();
    w.judge().departed(&mut cs[0], 150 + D / 4);
    let caller_hung_up = r#"{"action":"hang_up","user_id":1,"receiver_id":2,"channel_name":"ch"}"#;
    w.recv(&mut cs[1], "/", "hang_up", caller_hung_up, 150 + D / 4 + 10);
    w.recv(&mut cs[2], "/", "exit_room", caller_left, 150 + D / 4 + 20);
    report(&w, &mut cs[2], named_room("ch"), 150 + D / 4 + 30);
    assert_eq!(w.verdicts(100 * D), only(&[]));
}

/// The near miss: a new call after the called member ended the earlier one is owed again.
#[test]
fn a_new_call_after_the_called_member_hung_up_is_owed_again() {
    let (w, mut cs) = callee_hangs_up();
    let caller = user_room(&w.roster.users[0].username);
    let callee = user_room(&w.roster.users[1].username);
    let call = vec![
        Effect::OnDeparture {
            event: "hang_up",
            room: Some(callee),
        },
        Effect::PeerOnDeparture {
            event: "hang_up",
            peer: callee,
            back: Some(caller),
        },
    ];
    w.judge()
        .request(&mut cs[0], "call", call, Intent::Valid, 300, 300);
    callee_departs(&w, &mut cs, 2 * D);
    assert_eq!(w.verdicts(100 * D), only(&[("voice/hang_up/missing", 1)]));
}
