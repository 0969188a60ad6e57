//! The official socket.io clients (Node) in a chat session, four namespaces multiplexed on one
//! Engine.IO connection per user: socket.io-client 2 over Engine.IO v3 (what seed 001's server
//! spoke) and socket.io-client 4 over Engine.IO v4. `tests/node/chat-client.js` does the
//! checking; see its header. Skipped only when `node` or `npm` is not installed at all.

mod common;

use std::time::Duration;

use common::{node_clients_ready, run_node_script, TestServer};
use reference_server::fixtures::Fixtures;
use reference_server::{chat, ServerConfig};
use serde_json::json;

const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

fn check_chat_session(eio: u8, client: &str) {
    if !node_clients_ready() {
        return;
    }
    let server = TestServer::start(ServerConfig::new(
        chat::DIALECT,
        "127.0.0.1:0".parse().unwrap(),
        Fixtures::generate(4, 2),
    ));
    let summary = run_node_script(
        "chat-client.js",
        &[
            &server.url,
            &eio.to_string(),
            &server.token(1),
            &server.token(2),
        ],
        CLIENT_DEADLINE,
    );
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["eio"], eio);
    assert_eq!(summary["client"], client);
    assert_eq!(
        summary["engine_connections"],
        json!({"a": 1, "b": 1}),
        "four namespaces on one connection: {summary}"
    );
    assert_eq!(
        summary["transports"],
        json!({"a": "polling", "b": "websocket"})
    );
    assert_eq!(summary["saoff_to"], "user2");
}

#[test]
fn socket_io_client_2_chat_session_over_engine_io_v3() {
    check_chat_session(3, "socket.io-client@2.5.0");
}

#[test]
fn socket_io_client_4_chat_session_over_engine_io_v4() {
    check_chat_session(4, "socket.io-client@4.8.1");
}
