//! The official socket.io clients (Node) against the reference server: socket.io-client 4 over
//! Engine.IO v4 and socket.io-client 2 over Engine.IO v3, each with one polling and one websocket
//! client. `tests/node` (workspace root) holds the pinned clients; this test installs them with
//! `npm ci` when `node_modules` is missing or older than the lockfile. It is skipped only when
//! `node` or `npm` is not installed at all.

mod common;

use std::time::Duration;

use common::{node_clients_ready, run_node_script, TestServer};

const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

fn check_node_client(eio: u8, client: &str) {
    if !node_clients_ready() {
        return;
    }
    let server = TestServer::dorm(4, 2, vec![]);
    let eio_arg = eio.to_string();
    let summary = run_node_script(
        "dorm-client.js",
        &[&server.url, &eio_arg, &server.token(1), &server.token(2)],
        CLIENT_DEADLINE,
    );
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["eio"], eio);
    assert_eq!(summary["client"], client);
    assert_eq!(summary["engine_protocol"]["a"], eio, "{summary}");
    assert_eq!(summary["engine_protocol"]["b"], eio, "{summary}");
    assert_eq!(summary["transports"]["a"], "polling");
    assert_eq!(summary["transports"]["b"], "websocket");
    assert_eq!(summary["room_id"], 1);
    assert_eq!(summary["user_ids"]["a"], 1);
    assert_eq!(summary["user_ids"]["b"], 2);
    assert_eq!(summary["count_after_joins"], 2);
    assert_eq!(
        summary["message"]["received_by"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(summary["action"]["action"], "05");
    assert!(summary["action_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
}

#[test]
fn socket_io_client_4_over_engine_io_v4() {
    check_node_client(4, "socket.io-client@4.8.1");
}

#[test]
fn socket_io_client_2_over_engine_io_v3() {
    check_node_client(3, "socket.io-client@2.5.0");
}
