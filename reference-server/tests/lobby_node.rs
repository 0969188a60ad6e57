//! The official socket.io clients (Node) in a lobby session: socket.io-client 2 over Engine.IO v3
//! (what seed 004's App Inventor extension and its public server speak) and socket.io-client 4
//! over Engine.IO v4. `tests/node/lobby-client.js` does the checking; see its header. Skipped only
//! when `node` or `npm` is not installed at all.

mod common;

use std::time::Duration;

use common::{node_clients_ready, run_node_script, TestServer};
use serde_json::json;

const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

fn check_lobby_session(eio: u8, client: &str) {
    if !node_clients_ready() {
        return;
    }
    let server = TestServer::lobby(vec![]);
    let summary = run_node_script(
        "lobby-client.js",
        &[&server.url, &eio.to_string()],
        CLIENT_DEADLINE,
    );
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["eio"], eio);
    assert_eq!(summary["client"], client);
    assert_eq!(
        summary["engine_protocol"],
        json!({"a": eio, "b": eio}),
        "{summary}"
    );
    assert_eq!(
        summary["transports"],
        json!({"a": "polling", "b": "websocket"})
    );
    assert_eq!(summary["duplicate_error"], "duplicate username");
    assert_eq!(summary["userlist_after_joins"], json!(["alice", "bob"]));
    assert_eq!(summary["room_message"]["received_by"], json!(["a", "b"]));
    assert_eq!(
        summary["after_disconnect"],
        json!(["otherLeftRoom", "otherLogedout"])
    );
}

#[test]
fn socket_io_client_2_lobby_session_over_engine_io_v3() {
    check_lobby_session(3, "socket.io-client@2.5.0");
}

#[test]
fn socket_io_client_4_lobby_session_over_engine_io_v4() {
    check_lobby_session(4, "socket.io-client@4.8.1");
}
