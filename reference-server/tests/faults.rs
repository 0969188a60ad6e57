//! Each fault switch really breaks the server, as a socket.io client sees it.

mod common;

use std::time::Duration;

use common::{SioClient, TestServer};
use reference_server::faults::Fault;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

/// A server with `fault`, and two connected members of room 1 (users 1 and 2).
fn room_of_two(fault: Fault) -> (TestServer, SioClient, SioClient) {
    let server = TestServer::dorm(4, 2, vec![fault]);
    let a = SioClient::connect(&server.url);
    let b = SioClient::connect(&server.url);
    a.join(&server.token(1));
    b.join(&server.token(2));
    (server, a, b)
}

fn messages(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .filter(|(ev, _)| ev == "message")
        .map(|(_, d)| d["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn drop_broadcast_half_drops_every_second_broadcast() {
    let (server, a, b) = room_of_two(Fault::DropBroadcast(0.5));
    for i in 0..10 {
        a.emit(
            "message",
            json!({"token": server.token(1), "message": i.to_string()}),
        );
    }
    let expected = ["0", "2", "4", "6", "8"];
    assert_eq!(messages(&a.take(5, QUIET)), expected);
    assert_eq!(messages(&b.take(5, QUIET)), expected);
}

#[test]
fn leak_to_non_member_sends_room_traffic_to_an_outsider() {
    let (server, a, b) = room_of_two(Fault::LeakToNonMember);
    // The most recently connected socket, a member of another room.
    let outsider = SioClient::connect(&server.url);
    outsider.join(&server.token(3));
    a.emit(
        "message",
        json!({"token": server.token(1), "message": "private"}),
    );
    assert_eq!(messages(&a.take(1, QUIET)), ["private"]);
    assert_eq!(messages(&b.take(1, QUIET)), ["private"]);
    assert_eq!(messages(&outsider.take(1, QUIET)), ["private"], "leaked");
}

#[test]
fn omit_time_drops_the_time_field() {
    let (server, a, b) = room_of_two(Fault::OmitTime);
    a.emit("message", json!({"token": server.token(1), "message": "m"}));
    a.emit("action", json!({"token": server.token(1), "action": "02"}));
    for client in [&a, &b] {
        let m = client.expect("message");
        assert_eq!(m, json!({"user_id": 1, "message": "m"}));
        let act = client.expect("action");
        assert_eq!(act, json!({"user_id": 1, "action": "02"}));
    }
}

#[test]
fn error_on_wrong_event_sends_action_errors_on_message() {
    let (server, a, _b) = room_of_two(Fault::ErrorOnWrongEvent);
    a.emit("action", json!({"token": server.token(1), "action": "99"}));
    let (event, data) = a.recv(common::WAIT).expect("an error");
    assert_eq!(event, "message");
    assert!(data["error"].is_string(), "{data}");
    // Other events keep their own error event.
    a.emit("join_room", json!({"token": "bogus"}));
    assert!(a.expect("join_room")["error"].is_string());
}

#[test]
fn duplicate_broadcast_sends_everything_twice() {
    let (server, a, b) = room_of_two(Fault::DuplicateBroadcast);
    a.emit(
        "message",
        json!({"token": server.token(1), "message": "twice"}),
    );
    assert_eq!(messages(&a.take(2, QUIET)), ["twice", "twice"]);
    assert_eq!(messages(&b.take(2, QUIET)), ["twice", "twice"]);
}

#[test]
fn healthy_server_has_none_of_these_faults() {
    let server = TestServer::dorm(4, 2, vec![]);
    let a = SioClient::connect(&server.url);
    let b = SioClient::connect(&server.url);
    a.join(&server.token(1));
    b.join(&server.token(2));
    let outsider = SioClient::connect(&server.url);
    outsider.join(&server.token(3));
    for i in 0..4 {
        a.emit(
            "message",
            json!({"token": server.token(1), "message": i.to_string()}),
        );
    }
    a.emit("action", json!({"token": server.token(1), "action": "99"}));
    let got = a.take(5, QUIET);
    assert_eq!(messages(&got), ["0", "1", "2", "3"]);
    assert!(got
        .iter()
        .all(|(ev, d)| ev != "message" || d["time"].is_string()));
    assert_eq!(got.last().unwrap().0, "action");
    assert_eq!(messages(&b.take(4, QUIET)), ["0", "1", "2", "3"]);
    assert!(outsider.drain(QUIET).is_empty());
}
