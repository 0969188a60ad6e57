//! `roomrig serve` keeps each dialect's own heartbeat unless told otherwise: voice advertises
//! the seed's 15 s `ping_interval`, the Socket.IO dialects Engine.IO's 25 s / 20 s.

mod common;

use std::io::{Read as _, Write as _};

use common::Served;

/// The body of `GET path` on a `roomrig serve` URL.
fn get(url: &str, path: &str) -> String {
    let authority = url.strip_prefix("http://").unwrap();
    let mut tcp = std::net::TcpStream::connect(authority).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    body.to_string()
}

fn advertised_ping_interval(url: &str) -> serde_json::Value {
    let body = get(url, "/api/websocket/end_point");
    let v: serde_json::Value = serde_json::from_str(&body).expect(&body);
    v["ping_interval"].clone()
}

#[test]
fn serve_voice_advertises_the_seeds_ping_interval() {
    let server = Served::start(&["--dialect", "voice", "--generate-users", "4"]);
    assert_eq!(advertised_ping_interval(&server.url), 15);
    // An explicit interval still wins.
    let server = Served::start(&[
        "--dialect",
        "voice",
        "--generate-users",
        "4",
        "--ping-interval-ms",
        "2000",
    ]);
    assert_eq!(advertised_ping_interval(&server.url), 2);
}

#[test]
fn serve_dorm_keeps_engine_ios_heartbeat() {
    let server = Served::start(&["--dialect", "dorm", "--generate-users", "4"]);
    let open = get(&server.url, "/socket.io/?EIO=4&transport=polling");
    assert!(open.contains("\"pingInterval\":25000"), "{open}");
    assert!(open.contains("\"pingTimeout\":20000"), "{open}");
}
