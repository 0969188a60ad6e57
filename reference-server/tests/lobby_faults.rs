//! Each lobby fault switch really breaks the server as a socket.io client sees it, and a healthy
//! server does not show the same symptom (`never-timeout` is in `lobby_heartbeat.rs`).

mod common;

use std::time::Duration;

use common::{SioClient, TestServer};
use reference_server::faults::Fault;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

/// `a` and `b` logged in and members of room `r`; `outsider` logged in last, in no room.
fn room_and_outsider(faults: Vec<Fault>) -> (TestServer, SioClient, SioClient, SioClient) {
    let leaky = faults.contains(&Fault::NotifyNonMember);
    let server = TestServer::lobby(faults);
    // Each one logs in before the next connects.
    let login = |name: &str| {
        let c = SioClient::connect(&server.url);
        c.emit("login", json!(name));
        c.expect("logedin");
        c
    };
    let a = login("a");
    let b = login("b");
    let outsider = login("outsider");
    // The later logins as the earlier clients saw them.
    assert_eq!(names(&a.take(2, Duration::ZERO)), ["otherLogedin"; 2]);
    assert_eq!(names(&b.take(1, Duration::ZERO)), ["otherLogedin"]);
    a.emit_args("joinRoom", vec![json!("r"), json!(4)]);
    a.expect("joinedRoom");
    b.emit_args("joinRoom", vec![json!("r")]);
    b.expect("joinedRoom");
    assert_eq!(names(&a.take(1, QUIET)), ["otherJoinedRoom"]);
    assert!(b.drain(Duration::ZERO).is_empty());
    // Only notify-non-member tells the outsider about those joins (checked in `third_join`).
    let seen = outsider.drain(QUIET);
    assert!(leaky || seen.is_empty(), "{seen:?}");
    (server, a, b, outsider)
}

/// What `b` receives when its roommate `a` disconnects.
fn disconnect_of_a_member(faults: Vec<Fault>) -> Events {
    let (_server, a, b, outsider) = room_and_outsider(faults);
    a.disconnect();
    assert_eq!(names(&outsider.take(1, QUIET)), ["otherLogedout"]);
    b.drain(QUIET)
}

#[test]
fn no_leave_notice_drops_other_left_room_on_disconnect() {
    let healthy = disconnect_of_a_member(vec![]);
    assert_eq!(names(&healthy), ["otherLeftRoom", "otherLogedout"]);
    let faulty = disconnect_of_a_member(vec![Fault::NoLeaveNotice]);
    assert_eq!(names(&faulty), ["otherLogedout"], "{faulty:?}");
    assert_eq!(
        faulty[0].1,
        json!({"username": "a", "numusers": 2}),
        "the rest is intact"
    );
}

#[test]
fn no_leave_notice_keeps_explicit_leave_notices() {
    let (_server, a, b, _outsider) = room_and_outsider(vec![Fault::NoLeaveNotice]);
    a.emit("leaveRoom", json!("r"));
    a.expect("leftRoom");
    assert_eq!(
        b.take(1, QUIET),
        [(
            "otherLeftRoom".to_string(),
            json!({"username": "a", "roomname": "r", "userlist": ["b"]})
        )]
    );
}

/// Events received by one client.
type Events = Vec<(String, Value)>;

/// What the outsider and the joiner receive (beyond `joinedRoom`) when `c` joins `r`.
fn third_join(faults: Vec<Fault>) -> (Events, Events) {
    let (server, a, b, outsider) = room_and_outsider(faults);
    let c = SioClient::connect(&server.url);
    c.emit("login", json!("c"));
    c.expect("logedin");
    for other in [&a, &b, &outsider] {
        other.expect("otherLogedin");
    }
    c.emit_args("joinRoom", vec![json!("r")]);
    c.expect("joinedRoom");
    let members = [a.take(1, QUIET), b.take(1, QUIET)];
    for got in &members {
        assert_eq!(
            got,
            &[(
                "otherJoinedRoom".to_string(),
                json!({"username": "c", "roomname": "r", "userlist": ["a", "b", "c"]})
            )]
        );
    }
    (outsider.drain(QUIET), c.drain(QUIET))
}

#[test]
fn notify_non_member_sends_other_joined_room_to_an_outsider() {
    let (outsider, joiner) = third_join(vec![]);
    assert!(outsider.is_empty(), "{outsider:?}");
    assert!(joiner.is_empty(), "{joiner:?}");
    let (outsider, joiner) = third_join(vec![Fault::NotifyNonMember]);
    assert_eq!(
        outsider,
        [(
            "otherJoinedRoom".to_string(),
            json!({"username": "c", "roomname": "r", "userlist": ["a", "b", "c"]})
        )],
        "leaked to the outsider"
    );
    assert!(
        joiner.is_empty(),
        "the joiner gets joinedRoom only: {joiner:?}"
    );
}
