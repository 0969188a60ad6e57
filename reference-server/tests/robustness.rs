//! Whatever one client sends, the server keeps serving the others.

mod common;

use std::time::Duration;

use common::{RawWs, SioClient, TestServer, WAIT};
use futures_util::SinkExt as _;
use serde_json::json;

/// Frames that a socket.io server must survive; each is sent on its own connection because
/// socketioxide closes a connection whose packet does not parse.
const HOSTILE_FRAMES: &[&str] = &[
    "42[",
    "42",
    "4",
    "42{}",
    "42[]",
    "42[1,2]",
    "42[null]",
    r#"42["message",1,2,3]"#,
    r#"42["message"]"#,
    r#"42["message",null]"#,
    r#"42["message",{"token":{"__proto__":{}},"message":[]}]"#,
    r#"42["join_room","__proto__"]"#,
    r#"42["join_room",{"__proto__":{"token":"x"},"constructor":{"prototype":{}}}]"#,
    r#"42["join_room",{"token":"toString"}]"#,
    r#"42["leave_room",[]]"#,
    r#"42["action",{"token":null}]"#,
    r#"42["action",{"token":"","action":{"$gt":""}}]"#,
    r#"42["constructor",{}]"#,
    r#"42["__proto__",{"token":1}]"#,
    r#"451-["message",{"_placeholder":true,"num":0}]"#,
    r#"43["join_room"]"#,
    "41",
    "44{}",
    "49",
    "\u{0}\u{ffff}",
    "6",
    "x",
];

#[test]
fn hostile_frames_do_not_disturb_other_clients() {
    let server = TestServer::dorm(4, 2, vec![]);
    let a = SioClient::connect(&server.url);
    a.join(&server.token(1));

    server.block_on(async {
        for frame in HOSTILE_FRAMES {
            let mut ws = RawWs::connect_v4(&server.ws_url(4)).await;
            assert!(ws.try_send(frame).await, "{frame:?}");
            // Also a normal-looking event afterwards on the same connection, if it survived.
            ws.try_send(r#"42["message",{"token":7,"message":"x"}]"#)
                .await;
            // Whatever the answer (an error event, or the connection being closed), it must come
            // quickly and must not be a broadcast.
            while let Some(text) = ws.next_text(Duration::from_millis(150)).await {
                assert!(
                    !text.contains("\"user_id\""),
                    "{frame:?} produced a broadcast: {text}"
                );
            }
        }

        // Replies for bad payloads arrive on the same event as an error.
        let mut ws = RawWs::connect_v4(&server.ws_url(4)).await;
        for (frame, event) in [
            (r#"42["message",1,2,3]"#, "message"),
            (r#"42["join_room","__proto__"]"#, "join_room"),
            (r#"42["join_room"]"#, "join_room"),
            (r#"42["action",{"token":null}]"#, "action"),
            (
                r#"42["leave_room",{"token":{"constructor":1}}]"#,
                "leave_room",
            ),
        ] {
            ws.send(frame).await;
            let (ev, data) = ws.next_event(WAIT).await.expect("an error reply");
            assert_eq!(ev, event, "{frame}");
            assert!(data["error"].is_string(), "{frame} -> {data}");
        }

        // A 200 KiB frame is over the 64 KiB limit: that connection is closed, nothing else.
        let mut ws = RawWs::connect_v4(&server.ws_url(4)).await;
        let huge = format!(
            "42{}",
            json!(["message", {"token": server.token(1), "message": "x".repeat(200 * 1024)}])
        );
        ws.ws
            .send(tokio_tungstenite::tungstenite::Message::text(huge))
            .await
            .ok();
        assert_eq!(
            ws.next_text(WAIT).await,
            None,
            "oversized frame closes that connection"
        );

        // Many sockets sending junk concurrently with a burst of huge strings under the limit.
        let mut handles = Vec::new();
        for i in 0..20 {
            let url = server.ws_url(4);
            let token = server.token(1 + (i % 4));
            handles.push(tokio::spawn(async move {
                let mut ws = RawWs::connect_v4(&url).await;
                let frames = [
                    format!(
                        "42{}",
                        json!(["message", {"token": token, "message": "y".repeat(40_000)}])
                    ),
                    format!(
                        "42{}",
                        json!(["action", {"token": token, "action": [1, {"a": null}]}])
                    ),
                    r#"42["join_room",1e999]"#.to_string(),
                ];
                for _ in 0..20 {
                    for frame in &frames {
                        ws.try_send(frame).await;
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });

    // The first client is still a member and still gets broadcasts; newcomers can join.
    let b = SioClient::connect(&server.url);
    let data = b.join(&server.token(2));
    assert_eq!(data["room_data"]["count"], 2);
    b.emit(
        "message",
        json!({"token": server.token(2), "message": "still alive"}),
    );
    assert_eq!(a.expect("message")["message"], "still alive");
    assert_eq!(b.expect("message")["message"], "still alive");
}

#[test]
fn polling_garbage_is_refused_without_harm() {
    let server = TestServer::dorm(2, 2, vec![]);
    let a = SioClient::connect(&server.url);
    a.join(&server.token(1));
    let addr = server.url.trim_start_matches("http://").to_string();
    server.block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        for request in [
            "GET /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "GET /socket.io/?EIO=9&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "POST /socket.io/?EIO=4&transport=polling&sid=zzz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n42[\"x".to_string(),
            format!(
                "POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
                200 * 1024,
                "4".repeat(200 * 1024)
            ),
            "GARBAGE\r\n\r\n".to_string(),
        ] {
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.ok();
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                .await
                .expect("server answers or closes")
                .unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(!head.starts_with("HTTP/1.1 200"), "{request:.60} -> {head}");
        }
    });
    a.emit(
        "message",
        json!({"token": server.token(1), "message": "ok"}),
    );
    assert_eq!(a.expect("message")["message"], "ok");
}
