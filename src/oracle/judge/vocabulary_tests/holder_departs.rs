//! voice: the member told of a departure (the holder) leaves before it reports back. A holder
//! whose connection ended can never report, so the server may tell the next member at once;
//! and the fail-over is owed only to a member still in the room when the report time ran out.

use super::*;

#[test]
fn the_next_member_may_be_told_as_soon_as_the_holder_is_gone() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    w.oracle.left(cs[1].me, room, D + 25);
    w.recv(&mut cs[2], "/", "exit_room", EXIT, D + 30);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn the_next_member_told_before_the_holder_left_is_a_duplicate() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    w.recv(&mut cs[2], "/", "exit_room", EXIT, D + 22);
    w.oracle.left(cs[1].me, room, D + 25);
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/duplicate", 1)])
    );
}

#[test]
fn a_holder_that_reported_then_left_still_excludes_everyone_else() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    report(&w, &mut cs[1], room, D + 22);
    w.oracle.left(cs[1].me, room, D + 25);
    w.recv(&mut cs[2], "/", "exit_room", EXIT, D + 30);
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/duplicate", 1)])
    );
}

#[test]
fn no_fail_over_is_owed_when_everyone_else_left_before_the_report_time_ran_out() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    // Client 2, the only other member, leaves long before the holder's report time ends.
    w.oracle.left(cs[2].me, room, 2 * D);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn a_member_still_there_after_the_report_time_is_owed_the_fail_over() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    w.oracle.left(cs[1].me, room, D + 25);
    // Client 2 stays past the report time and its deadline, and is never told.
    w.oracle.left(cs[2].me, room, D + 20 + FAILOVER + 2 * D);
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}

#[test]
fn a_server_that_waits_out_the_report_window_after_the_holder_left_is_on_time() {
    let (w, mut cs, room) = departure_scene();
    w.recv(&mut cs[1], "/", "exit_room", EXIT, D + 20);
    w.oracle.left(cs[1].me, room, D + 25);
    // Not `late`: the server may tell the next member any time up to the report window's end.
    w.recv(
        &mut cs[2],
        "/",
        "exit_room",
        EXIT,
        D + 20 + FAILOVER + D / 2,
    );
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

// ---- a member that left just before the departure may have been told, its receipt unseen ----

/// As [`departure_scene`], but client 2 leaves at `D - 10`, just before client 0's departure
/// at `D`: a server that had not yet seen it leave may tell it.
fn departure_just_after_a_leave() -> (World, Vec<Client>, RoomKey) {
    let (w, mut cs) = World::new(&VOICE, 3);
    let room = named_room("ch");
    let j = w.judge();
    for c in cs.iter_mut() {
        j.connected(c, 0);
        w.oracle.join_sent(c.me, room, 0);
        w.oracle.join_confirmed(c.me, room, 10);
    }
    w.oracle.left(cs[2].me, room, D - 10);
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

#[test]
fn nobody_seen_told_just_after_a_member_left_is_owed_only_a_fail_over() {
    let (w, cs, room) = departure_just_after_a_leave();
    // Client 1 stays 3 s only, less than the report window: owed nothing.
    w.oracle.left(cs[1].me, room, D + 3 * D);
    assert_eq!(delivery_rules(&w, 100 * D), only(&[]));
}

#[test]
fn nobody_told_just_after_a_member_left_and_no_fail_over_is_missing() {
    let (w, _cs, _) = departure_just_after_a_leave();
    // Client 1 stays past the report window and its deadline, and is never told.
    assert_eq!(
        delivery_rules(&w, D + FAILOVER),
        only(&[]),
        "not before the fail-over was due"
    );
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}

#[test]
fn nobody_told_while_the_others_leave_after_the_departure_is_missing() {
    // Client 2 leaves after the departure (it was live when the server told the room) and
    // client 1 stays: the first tell was owed at once, no fail-over excuse.
    let (w, cs, room) = departure_scene();
    w.oracle.left(cs[2].me, room, D + D / 2);
    w.oracle.left(cs[1].me, room, D + 3 * D);
    assert_eq!(
        delivery_rules(&w, 100 * D),
        only(&[("voice/exit_room/missing", 1)])
    );
}
