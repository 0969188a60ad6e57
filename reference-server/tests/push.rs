//! The push dialect (seed 002) over real sockets on loopback: rust_socketio (EIO4) clients for
//! the login modes and their codes, plain HTTP/1.1 for `POST /api/push`, and the official
//! socket.io clients (Node, `tests/node/push-client.js`) with Node's fetch.

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::{node_clients_ready, run_node_script, SioClient, TestServer};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(250);

/// `POST /api/push` with `body` as it is: the status and the reply body.
fn post(server: &TestServer, body: &[u8]) -> (u16, String) {
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST /api/push HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    // A server may answer 413 before reading a huge body, and close.
    let _ = tcp.write_all(body);
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reply = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, reply)
}

fn push_json(server: &TestServer, body: Value) -> (u16, String) {
    post(server, body.to_string().as_bytes())
}

fn code(v: &Value) -> String {
    match &v["code"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn connected(server: &TestServer) -> SioClient {
    let c = SioClient::connect(&server.url);
    assert_eq!(
        c.expect("downmsg"),
        json!({"code": "2001", "msg": "connect success"})
    );
    c
}

#[test]
fn login_modes_and_their_codes() {
    let server = TestServer::push(vec![]);
    let (a, b, c) = (connected(&server), connected(&server), connected(&server));
    a.emit("loginRoom", json!({"roomId": "456"}));
    assert_eq!(
        a.expect("downmsg"),
        json!({"code": "2002", "msg": "login room (id:456) success"})
    );
    // The number is the same room: occupied, refused under the default mode.
    b.emit(
        "loginRoom",
        json!({"roomId": 456, "type": "loginWhenFirst"}),
    );
    assert_eq!(
        b.expect("downmsg"),
        json!({"code": "2004", "msg": "your room id(456) already exist"})
    );
    b.emit("loginRoom", json!({"roomId": 456, "type": "loginWhenever"}));
    assert_eq!(code(&b.expect("downmsg")), "2002");
    // b is "another connection" now: a's repeated loginWhenFirst is refused too.
    a.emit("loginRoom", json!({"roomId": "456"}));
    assert_eq!(code(&a.expect("downmsg")), "2004");
    c.emit(
        "loginRoom",
        json!({"roomId": "456", "type": "loginWhenLast"}),
    );
    assert_eq!(code(&c.expect("downmsg")), "2002");
    for kicked in [&a, &b] {
        assert_eq!(
            kicked.take(1, QUIET),
            [(
                "downmsg".to_string(),
                json!({"code": "2005", "msg": "you have kicked out room (id456)"})
            )]
        );
    }
    // Only c is in the room now.
    let (status, reply) = push_json(
        &server,
        json!({"ROOT": {"BODY": {"roomId": "456", "eventName": "news", "data": {"k": [1, null]}}}}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&reply).unwrap(),
        json!({"ROOT": {"BODY": {"RETURN_CODE": "0000", "RETURN_MSG": "ok"}}})
    );
    assert_eq!(
        c.take(1, QUIET),
        [("news".to_string(), json!({"k": [1, null]}))]
    );
    assert!(a.drain(QUIET).is_empty() && b.drain(Duration::ZERO).is_empty());
    // Invalid logins: 2003.
    for bad in [
        json!({}),
        json!({"roomId": true}),
        json!({"roomId": "x", "type": "now"}),
        json!("456"),
    ] {
        a.emit("loginRoom", bad.clone());
        assert_eq!(code(&a.expect("downmsg")), "2003", "{bad}");
    }
}

#[test]
fn http_push_bodies() {
    let server = TestServer::push(vec![]);
    let (member, loner) = (connected(&server), connected(&server));
    member.emit("loginRoom", json!({"roomId": "r"}));
    member.expect("downmsg");
    // A global push reaches every connection, in a room or not.
    let (status, _) = push_json(
        &server,
        json!({"ROOT": {"BODY": {"eventName": "all", "data": "x"}}}),
    );
    assert_eq!(status, 200);
    for c in [&member, &loner] {
        assert_eq!(c.take(1, QUIET), [("all".to_string(), json!("x"))]);
    }
    // Not sent: no eventName (0000), not a push request (400), too big (413), empty room (0000).
    let cases: [(&[u8], u16); 6] = [
        (br#"{"ROOT":{"BODY":{"roomId":"r","data":1}}}"#, 200),
        (b"not json", 400),
        (
            br#"{"ROOT":{"BODY":{"roomId":{"a":1},"eventName":"e"}}}"#,
            400,
        ),
        (br#"{"ROOT":{"BODY":{"roomId":"r","eventName":7}}}"#, 400),
        (
            br#"{"ROOT":{"BODY":{"roomId":"__proto__","eventName":"e","data":1}}}"#,
            200,
        ),
        (br#"{"ROOT":[]}"#, 400),
    ];
    for (body, expected) in cases {
        assert_eq!(
            post(&server, body).0,
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let huge = format!(
        r#"{{"ROOT":{{"BODY":{{"roomId":"r","eventName":"e","data":"{}"}}}}}}"#,
        "x".repeat(2 << 20)
    );
    assert_eq!(post(&server, huge.as_bytes()).0, 413);
    assert!(member.drain(QUIET).is_empty() && loner.drain(Duration::ZERO).is_empty());
}

#[test]
fn official_socketio_clients_and_fetch() {
    if !node_clients_ready() {
        return;
    }
    for eio in [3u8, 4] {
        let server = TestServer::push(vec![]);
        let summary = run_node_script(
            "push-client.js",
            &[&server.url, &eio.to_string()],
            Duration::from_secs(30),
        );
        assert_eq!(summary["ok"], true, "{summary}");
        assert_eq!(summary["no_event_status"], 200, "{summary}");
        assert_eq!(summary["not_json_status"], 400, "{summary}");
    }
}
